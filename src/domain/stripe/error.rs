//! Why a request was refused: one typed variant per rule, naming the parameter exactly as Stripe does.
//!
//! The `Display` text is Stripe's wording where it is known (see `shared/spec/stripe-charges.md`,
//! section 4); `param()` and `code()` give the HTTP layer the rest of a Stripe error body.

use thiserror::Error;

/// What kind of Stripe error a refusal maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// A malformed or inconsistent request (`invalid_request_error`, HTTP 400).
    InvalidRequest,
    /// A referenced object does not exist in the caller's account (HTTP 404).
    NotFound,
    /// The card was declined (`card_error`, HTTP 402).
    Card,
}

/// What cannot be done to a failed charge (`RequestError::ChargeFailed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyAction {
    Capture,
    Refund,
}

impl std::fmt::Display for MoneyAction {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            MoneyAction::Capture => "captured",
            MoneyAction::Refund => "refunded",
        })
    }
}

/// A request the ledger refused. A refused request appends nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("Missing required param: {param}.")]
    MissingParam { param: String },

    #[error("Invalid string: {value}; must be at most {max_chars} characters")]
    StringTooLong {
        param: String,
        value: String,
        max_chars: usize,
    },

    #[error(
        "The statement descriptor must be at most 22 characters. {value} is {length_chars} characters long."
    )]
    StatementDescriptorTooLong {
        param: String,
        value: String,
        length_chars: usize,
    },

    #[error(
        "Metadata keys can have up to 40 characters, but you passed in a key that is {length_chars} characters. Invalid key: {key}"
    )]
    MetadataKeyTooLong { key: String, length_chars: usize },

    #[error(
        "Metadata values can have up to 500 characters, but you passed in a value that is {length_chars} characters. Invalid value: {value}"
    )]
    MetadataValueTooLong { value: String, length_chars: usize },

    #[error("Metadata can have up to 50 keys, but you've set {count}.")]
    TooManyMetadataKeys { count: usize },

    #[error("Metadata keys cannot contain '[' or ']'. Invalid key: {key}")]
    MetadataKeyHasBrackets { key: String },

    #[error("Metadata values must be strings. Invalid value for key: {key}")]
    MetadataValueNotString { key: String },

    #[error("Invalid email address: {value}")]
    InvalidEmail { param: String, value: String },

    #[error("Invalid {param}: must be one of {allowed}")]
    InvalidEnum {
        param: String,
        value: String,
        allowed: String,
    },

    #[error(
        "Country '{value}' is unknown. Try using a 2-character alphanumeric country code instead, such as 'US', 'EG', or 'GB'. A full list of country codes is available at https://stripe.com/docs/api/country_specs"
    )]
    InvalidCountry { param: String, value: String },

    #[error(
        "Invalid currency: {value}. Stripe currently supports these currencies: usd, eur, gbp, jpy and the other ISO 4217 codes."
    )]
    InvalidCurrency { value: String },

    #[error("Invalid integer: {value}")]
    InvalidInteger { param: String, value: String },

    #[error("This value must be greater than or equal to 1.")]
    AmountNotPositive { param: String },

    #[error("Amount must be at least {minimum_formatted} {currency}")]
    AmountTooSmall {
        minimum: i64,
        minimum_formatted: String,
        currency: String,
    },

    #[error("Amount must be no more than 99999999")]
    AmountTooLarge,

    #[error("Must provide source or customer.")]
    MissingSourceOrCustomer,

    #[error("No such charge: '{id}'")]
    NoSuchCharge { id: String },

    #[error("No such customer: '{id}'")]
    NoSuchCustomer { id: String },

    #[error("No such token: '{id}'")]
    NoSuchToken { id: String },

    #[error("Your card number is incorrect.")]
    IncorrectNumber,

    #[error(
        "Charge {charge_id} failed ({failure_code}), so it cannot be {action}: nothing was authorized."
    )]
    ChargeFailed {
        charge_id: String,
        failure_code: String,
        action: MoneyAction,
    },

    #[error(
        "The customer of charge {charge_id} is already set to {existing}; a charge's customer can only be set when it has none."
    )]
    CustomerAlreadySet { charge_id: String, existing: String },

    #[error(
        "The transfer_group of charge {charge_id} is already set to '{existing}'; transfer_group may only be provided if it has not been set."
    )]
    TransferGroupAlreadySet { charge_id: String, existing: String },

    /// Stripe's rules decide only for charges created through Stripe's API: an Omise charge's
    /// lifecycle (a reversed authorization, captures that release without refunding) is not
    /// Stripe's.
    #[error(
        "Charge {charge_id} was created through Omise's API; Stripe's operations cannot change it."
    )]
    ChargeOfOtherDialect { charge_id: String },

    #[error("Charge {charge_id} has already been captured.")]
    ChargeAlreadyCaptured { charge_id: String },

    #[error("Charge {charge_id} has already been refunded.")]
    ChargeAlreadyRefunded { charge_id: String },

    #[error(
        "The amount to capture ({requested}) must be less than or equal to the authorized amount ({authorized})."
    )]
    CaptureAmountTooLarge { requested: i64, authorized: i64 },

    #[error(
        "Refund amount ({requested}) is greater than the amount that can still be refunded on charge {charge_id} ({refundable})."
    )]
    RefundAmountTooLarge {
        charge_id: String,
        requested: i64,
        refundable: i64,
    },

    #[error(
        "Charge {charge_id} has not been captured; an uncaptured charge can only be refunded in full, which releases the authorization."
    )]
    PartialRefundOfUncapturedCharge { charge_id: String },

    #[error(
        "Charge {charge_id} has been captured and this account freezes captured charges (freeze_after_capture); it can no longer be updated."
    )]
    ChargeFrozenAfterCapture { charge_id: String },

    #[error("No such webhook endpoint: '{id}'")]
    NoSuchWebhookEndpoint { id: String },

    #[error("Invalid URL: {value}. URLs must begin with http:// or https:// and name a host.")]
    InvalidUrl { param: String, value: String },

    #[error("You have reached the maximum of {limit} webhook endpoints for this account.")]
    TooManyWebhookEndpoints { limit: usize },

    #[error("No such event: '{id}'")]
    NoSuchEvent { id: String },

    #[error("No such refund: '{id}'")]
    NoSuchRefund { id: String },

    /// The wording is chosen here: Stripe's own for a malformed query is not public.
    #[error(
        "Invalid search query: {detail}. See https://docs.stripe.com/search#search-query-language for the syntax."
    )]
    InvalidSearchQuery { detail: String },

    #[error(
        "Invalid page: '{value}' is not a page of this search. Send the previous result's next_page with the same query."
    )]
    InvalidSearchPage { value: String },
}

impl RequestError {
    /// The request parameter at fault, spelled as Stripe spells it (`shipping[name]`, `metadata`).
    pub fn param(&self) -> Option<&str> {
        use RequestError::*;
        match self {
            MissingParam { param }
            | StringTooLong { param, .. }
            | StatementDescriptorTooLong { param, .. }
            | InvalidEmail { param, .. }
            | InvalidEnum { param, .. }
            | InvalidCountry { param, .. }
            | InvalidInteger { param, .. }
            | InvalidUrl { param, .. }
            | AmountNotPositive { param } => Some(param),
            NoSuchWebhookEndpoint { .. } | NoSuchEvent { .. } | NoSuchRefund { .. } => Some("id"),
            TooManyWebhookEndpoints { .. } => None,
            MetadataKeyTooLong { .. }
            | MetadataValueTooLong { .. }
            | TooManyMetadataKeys { .. }
            | MetadataKeyHasBrackets { .. }
            | MetadataValueNotString { .. } => Some("metadata"),
            InvalidSearchQuery { .. } => Some("query"),
            InvalidSearchPage { .. } => Some("page"),
            InvalidCurrency { .. } => Some("currency"),
            AmountTooSmall { .. } | AmountTooLarge | CaptureAmountTooLarge { .. } => Some("amount"),
            RefundAmountTooLarge { .. } | PartialRefundOfUncapturedCharge { .. } => Some("amount"),
            MissingSourceOrCustomer | NoSuchToken { .. } => Some("source"),
            NoSuchCharge { .. } | ChargeOfOtherDialect { .. } => Some("id"),
            NoSuchCustomer { .. } | CustomerAlreadySet { .. } => Some("customer"),
            TransferGroupAlreadySet { .. } => Some("transfer_group"),
            IncorrectNumber => Some("number"),
            ChargeFailed { .. }
            | ChargeAlreadyCaptured { .. }
            | ChargeAlreadyRefunded { .. }
            | ChargeFrozenAfterCapture { .. } => None,
        }
    }

    /// Stripe's machine-readable error code, where Stripe has one for the situation.
    pub fn code(&self) -> Option<&'static str> {
        use RequestError::*;
        Some(match self {
            MissingParam { .. } | MissingSourceOrCustomer => "parameter_missing",
            StringTooLong { .. } | StatementDescriptorTooLong { .. } => {
                "string_length_exceeds_maximum"
            }
            InvalidEmail { .. } => "email_invalid",
            InvalidEnum { .. } | InvalidCountry { .. } | InvalidCurrency { .. } => {
                "parameter_invalid_string"
            }
            InvalidInteger { .. } => "parameter_invalid_integer",
            AmountNotPositive { .. } => "parameter_invalid_integer",
            AmountTooSmall { .. } => "amount_too_small",
            AmountTooLarge | CaptureAmountTooLarge { .. } | RefundAmountTooLarge { .. } => {
                "amount_too_large"
            }
            NoSuchCharge { .. }
            | NoSuchCustomer { .. }
            | NoSuchToken { .. }
            | NoSuchWebhookEndpoint { .. }
            | NoSuchEvent { .. }
            | NoSuchRefund { .. } => "resource_missing",
            InvalidUrl { .. } => "url_invalid",
            TooManyWebhookEndpoints { .. } => "webhook_endpoint_limit_reached",
            IncorrectNumber => "incorrect_number",
            ChargeFailed {
                action: MoneyAction::Refund,
                ..
            } => "charge_not_refundable",
            // Stripe has no code for capturing a failed charge.
            ChargeFailed {
                action: MoneyAction::Capture,
                ..
            } => return None,
            ChargeAlreadyCaptured { .. } => "charge_already_captured",
            ChargeAlreadyRefunded { .. } => "charge_already_refunded",
            ChargeFrozenAfterCapture { .. } => "charge_frozen_after_capture",
            CustomerAlreadySet { .. } | TransferGroupAlreadySet { .. } => {
                "parameter_invalid_string"
            }
            PartialRefundOfUncapturedCharge { .. } => "charge_not_captured",
            ChargeOfOtherDialect { .. } => "charge_of_other_dialect",
            MetadataKeyTooLong { .. }
            | MetadataValueTooLong { .. }
            | TooManyMetadataKeys { .. }
            | MetadataKeyHasBrackets { .. }
            | MetadataValueNotString { .. } => return None,
            InvalidSearchQuery { .. } | InvalidSearchPage { .. } => return None,
        })
    }

    /// Which family of Stripe error this is.
    pub fn kind(&self) -> RefusalKind {
        match self {
            RequestError::NoSuchCharge { .. }
            | RequestError::NoSuchCustomer { .. }
            | RequestError::NoSuchToken { .. }
            | RequestError::NoSuchWebhookEndpoint { .. }
            | RequestError::NoSuchEvent { .. }
            | RequestError::NoSuchRefund { .. } => RefusalKind::NotFound,
            RequestError::IncorrectNumber => RefusalKind::Card,
            _ => RefusalKind::InvalidRequest,
        }
    }
}
