//! chargeledger: an event-sourced charge ledger.

pub mod chain;
pub mod domain;
pub mod events;
pub mod ids;
pub mod store;
