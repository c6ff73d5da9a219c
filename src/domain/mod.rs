//! The functional core: charge state, commands, validation, `decide` and `apply`. No IO, no clocks, no randomness.

pub mod apply;
pub mod card_number;
pub mod charge;
pub mod commands;
pub mod decide;
pub mod error;
pub mod events;
pub mod omise;
pub mod validation;

pub use apply::{FoldError, Projection, apply, fold};
pub use charge::{
    Address, BillingDetails, Card, Charge, ChargeStatus, Customer, FraudDetails, Metadata,
    OmiseChargeState, Outcome, PaymentMethodDetails, Refund, RefundList, Shipping, Token,
    VaultCard,
};
pub use commands::{
    AccountPolicy, CaptureCharge, CreateCharge, CreateCustomer, MetadataEdit, RefundCharge,
    ShippingInput, ShippingUpdate, UpdateCharge,
};
pub use decide::{DecisionContext, FreshIds};
pub use error::{RefusalKind, RequestError};
pub use omise::OmiseRefusal;
