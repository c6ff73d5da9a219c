//! The rules an account chooses for itself, which both dialects' decisions read.

/// Rules an account chooses for itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountPolicy {
    /// Refuse updates to captured charges (the Omise seed's rule). Off by default, as on Stripe
    /// and Omise.
    pub freeze_after_capture: bool,
}
