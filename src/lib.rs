//! chargeledger: an event-sourced ledger of payment charges, with an honest record of every change.
//!
//! Each request to create, update, capture or refund a charge is checked against the charge as
//! projected from its history, then appended as an immutable, hash-chained event to an embedded
//! sled log. Current state, a field-level audit trail, the charge at any past version or moment,
//! and a live feed of the log are all rebuilt from those events.
//!
//! ```
//! use chargeledger::{CreateCharge, Ledger, RequestMeta, UpdateCharge};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let directory = tempfile::tempdir()?;
//! # let data_directory = directory.path().join("chargeledger-data");
//! let ledger = Ledger::open(&data_directory).await?;
//! let account = "sk_test_merchant";
//!
//! let charge = ledger
//!     .create_charge(
//!         account,
//!         CreateCharge::new(2000, "usd").source("tok_visa").capture(false),
//!         RequestMeta::library(),
//!     )
//!     .await?;
//! let charge = ledger
//!     .update_charge(
//!         account,
//!         &charge.id,
//!         UpdateCharge::new().metadata_set("shipping", "express"),
//!         RequestMeta::library(),
//!     )
//!     .await?;
//! assert_eq!(charge.metadata["shipping"], "express");
//!
//! for entry in ledger.history(account, &charge.id).await? {
//!     println!("{entry}");
//! }
//! // The charge as it was before the update:
//! let original = ledger.charge_at_version(account, &charge.id, 1).await?;
//! assert!(original.metadata.is_empty());
//! # ledger.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The same ledger is served over HTTP by `chargeledger serve` ([`server`]), which speaks
//! Stripe's charge API and Omise's (vault tokens, `PATCH /charges/{id}`, capture, reverse) so
//! that the official SDKs of both work against it unchanged. Omise's rules are
//! [`domain::omise`]; their operations are methods on [`Ledger`] such as
//! [`Ledger::create_omise_charge`].
//!
//! # Cargo features
//!
//! - `server` (default): the HTTP shell, [`server`], on axum and hyper.
//! - `cli` (default, implies `server` and `postgres`): the `chargeledger` binary's commands, on
//!   clap and indicatif.
//! - `postgres` (default): [`store::PostgresStore`], the same ledger in a PostgreSQL database
//!   that several processes share ([`Ledger::open_postgres`]), on tokio-postgres, deadpool and
//!   rustls.
//!
//! A program that only embeds the ledger depends on
//! `chargeledger = { version = "0.1", default-features = false }` and builds none of those.
//!
//! Writes are acknowledged only once durable: with sled, after its `flush()` *and* an `fdatasync`
//! of its data file, shared by all writes waiting at that moment (group commit); with
//! PostgreSQL, once the batch's transaction has committed. See `ARCHITECTURE.md`
//! for the design and its invariants.

pub mod audit;
pub mod chain;
#[cfg(feature = "cli")]
pub mod cli;
pub mod clock;
pub mod domain;
pub mod events;
pub mod ids;
pub mod json_diff;
pub mod ledger;
pub mod maintenance;
#[cfg(feature = "server")]
pub mod server;
pub mod store;
pub mod subscription;

pub use audit::{FieldDiff, HistoryEntry};
pub use domain::{
    AccountPolicy, Address, CaptureCharge, ChargeState, CreateCharge, CreateCustomer, Customer,
    MetadataEdit, Refund, RefundCharge, RequestError, ShippingInput, UpdateCharge, UpdateRefund,
};
pub use events::{EventPayload, RecordedEvent, RequestMeta};
pub use ledger::{Ledger, LedgerError, ListCharges, Refunded};
pub use maintenance::{Fault, ReplayReport, VerifyReport};
pub use store::{EventStore, Page, PageCursor, SledStore, StoreError};
pub use subscription::Subscription;
