//! Stripe's rules: commands, parameter validation, refusals in Stripe's words, and the decisions for charges of Stripe origin.

pub mod commands;
pub mod decide;
pub mod error;
pub mod refunds;
pub mod test_cards;
pub mod validation;
pub mod webhooks;
