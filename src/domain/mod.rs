//! The functional core: charge state, each dialect's rules (`decide`) and the fold (`apply`). No IO, no clocks, no randomness.
//!
//! `charge` holds the dialect-neutral `ChargeState`; `stripe` and `omise` hold each dialect's
//! commands, refusals and decisions, and decide only for charges of their own origin;
//! `apply` folds either dialect's events onto the same state.

pub mod apply;
mod apply_streams;
pub mod card_number;
pub mod charge;
pub mod events;
mod field_change_serde;
pub mod omise;
pub mod policy;
pub mod search;
pub mod stripe;
pub mod values;
pub mod webhooks;

pub use apply::{FoldError, Projection, apply, fold};
pub use charge::{
    ChargeState, DialectDetails, Instrument, Lifecycle, Money, OmiseDetails, Origin, StripeDetails,
};
pub use omise::OmiseRefusal;
pub use policy::AccountPolicy;
pub use stripe::commands::{
    CaptureCharge, CreateCharge, CreateCustomer, MetadataEdit, RefundCharge, ShippingInput,
    ShippingUpdate, UpdateCharge,
};
pub use stripe::decide::{DecisionContext, FreshIds};
pub use stripe::error::{RefusalKind, RequestError};
pub use stripe::refunds::UpdateRefund;
pub use values::{
    Address, Card, Customer, FraudDetails, Metadata, Refund, SavedCard, Shipping, Token, VaultCard,
};
pub use webhooks::{
    DeliveryChaos, Destination, EndpointStatus, SideEffectRules, WEBHOOK_ENDPOINTS_STREAM,
    WebhookEndpoint, WebhookEndpoints,
};
