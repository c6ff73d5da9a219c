//! `decide`: given the current state and a command, the events to append or the reason to refuse. Pure.
//!
//! Nothing here reads a clock, draws a random number or touches storage: the shell passes the
//! time and fresh identifiers in a `DecisionContext`, and any objects a command refers to.

use crate::domain::charge::{ChargeState, StripeDetails};
use crate::domain::events::{
    ChargeCaptured, ChargeCreated, ChargeFailed, ChargeRefunded, ChargeUpdated, CustomerCreated,
    EventPayload, FieldChange,
};
use crate::domain::policy::AccountPolicy;
use crate::domain::stripe::commands::{
    CaptureCharge, CreateCharge, CreateCustomer, RefundCharge, ShippingUpdate, UpdateCharge,
    fold_metadata_edits,
};
use crate::domain::stripe::error::{MoneyAction, RequestError};
use crate::domain::stripe::test_cards::{self, TestCard};
use crate::domain::stripe::validation::{
    self, DEFAULT_MAX_CHARS, DESCRIPTION_MAX_CHARS, check_email, check_length,
    check_metadata_edits, check_metadata_size, check_statement_descriptor, empty_as_none,
};
use crate::domain::values::{Customer, FraudDetails, Metadata, Refund};

/// Identifiers the shell drew for objects a command may create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshIds {
    pub charge: String,
    pub customer: String,
    pub payment_method: String,
    pub balance_transaction: String,
    pub refund: String,
}

/// Everything outside the command that a decision may depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionContext {
    /// The request time, in Unix seconds.
    pub now_unix: i64,
    /// Whether the account is in live mode (decided by its key).
    pub livemode: bool,
    pub ids: FreshIds,
}

/// Decide a charge creation. `customer` is the customer the command names, if it exists in the
/// caller's account.
pub fn create_charge(
    command: &CreateCharge,
    customer: Option<&Customer>,
    context: &DecisionContext,
) -> Result<EventPayload, RequestError> {
    let currency = validation::normalize_currency(&command.currency)?;
    validation::check_charge_amount(command.amount, &currency)?;
    if command.source.is_none() && command.card.is_none() && command.customer.is_none() {
        return Err(RequestError::MissingSourceOrCustomer);
    }
    if let Some(description) = &command.description {
        check_length("description", description, DESCRIPTION_MAX_CHARS)?;
    }
    check_metadata_edits(&command.metadata)?;
    let metadata = fold_metadata_edits(&Metadata::new(), &command.metadata);
    check_metadata_size(&metadata)?;
    let receipt_email = match command.receipt_email.as_deref() {
        Some(email) if !email.is_empty() => {
            check_email("receipt_email", email)?;
            Some(email.to_string())
        }
        _ => None,
    };
    let shipping = match &command.shipping {
        Some(input) => Some(validation::validate_shipping("shipping", input)?),
        None => None,
    };
    check_statement_descriptors(
        &command.statement_descriptor,
        &command.statement_descriptor_suffix,
    )?;
    if let Some(group) = &command.transfer_group {
        check_length("transfer_group", group, DEFAULT_MAX_CHARS)?;
    }
    let customer_id = match &command.customer {
        Some(id) => match customer {
            Some(found) if &found.id == id => Some(id.clone()),
            _ => return Err(RequestError::NoSuchCustomer { id: id.clone() }),
        },
        None => None,
    };
    let (source, paid_with) = match &command.card {
        Some(card) => (
            "card".to_string(),
            test_cards::from_number(card, context.livemode, context.now_unix)?,
        ),
        None => {
            // A customer without an explicit source pays with its default card: a test Visa.
            let source = command
                .source
                .clone()
                .unwrap_or_else(|| "tok_visa".to_string());
            let paid_with = test_cards::from_token(&source, context.now_unix)?;
            (source, paid_with)
        }
    };
    let TestCard { card, decline } = paid_with;
    // A declined attempt is recorded too, as Stripe records it: a charge that holds nothing.
    let captured = command.capture && decline.is_none();
    let attempt = ChargeCreated {
        charge_id: context.ids.charge.clone(),
        livemode: context.livemode,
        created: context.now_unix,
        amount: command.amount,
        currency,
        captured,
        customer: customer_id,
        source,
        payment_method: context.ids.payment_method.clone(),
        card,
        balance_transaction: captured.then(|| context.ids.balance_transaction.clone()),
        description: command.description.as_deref().and_then(empty_as_none),
        metadata,
        receipt_email,
        shipping,
        statement_descriptor: command
            .statement_descriptor
            .as_deref()
            .and_then(empty_as_none),
        statement_descriptor_suffix: command
            .statement_descriptor_suffix
            .as_deref()
            .and_then(empty_as_none),
        transfer_group: command.transfer_group.as_deref().and_then(empty_as_none),
        omise: None,
    };
    Ok(match decline {
        None => EventPayload::ChargeCreated(attempt),
        Some(failure) => EventPayload::ChargeFailed(ChargeFailed { attempt, failure }),
    })
}

/// Decide an update. Returns `Ok(None)` when the request changes nothing: no event is appended
/// for it. `referenced_customer` is the customer the command names, if it exists in the account.
pub fn update_charge(
    charge: &ChargeState,
    command: &UpdateCharge,
    referenced_customer: Option<&Customer>,
    policy: &AccountPolicy,
) -> Result<Option<EventPayload>, RequestError> {
    let details = stripe_details(charge)?;
    // Parameter rules first, so a malformed request is reported as such whatever the charge's state.
    if let Some(customer) = &command.customer {
        check_length("customer", customer, DEFAULT_MAX_CHARS)?;
    }
    if let Some(description) = &command.description {
        check_length("description", description, DESCRIPTION_MAX_CHARS)?;
    }
    check_metadata_edits(&command.metadata)?;
    if let Some(email) = command
        .receipt_email
        .as_deref()
        .filter(|email| !email.is_empty())
    {
        check_email("receipt_email", email)?;
    }
    let shipping = match &command.shipping {
        Some(ShippingUpdate::Set(input)) => {
            Some(Some(validation::validate_shipping("shipping", input)?))
        }
        Some(ShippingUpdate::Unset) => Some(None),
        None => None,
    };
    let fraud_user_report = match &command.fraud_details_user_report {
        Some(None) => {
            return Err(RequestError::MissingParam {
                param: "fraud_details[user_report]".into(),
            });
        }
        Some(Some(report)) => {
            if !matches!(report.as_str(), "" | "fraudulent" | "safe") {
                return Err(RequestError::InvalidEnum {
                    param: "fraud_details[user_report]".into(),
                    value: report.clone(),
                    allowed: "fraudulent or safe".into(),
                });
            }
            Some(empty_as_none(report))
        }
        None => None,
    };
    if let Some(group) = &command.transfer_group {
        check_length("transfer_group", group, DEFAULT_MAX_CHARS)?;
    }

    // Then the rules that depend on the charge as it stands.
    if policy.freeze_after_capture && charge.is_captured() {
        return Err(RequestError::ChargeFrozenAfterCapture {
            charge_id: charge.id.clone(),
        });
    }
    let mut changes = Vec::new();
    if let Some(customer) = &command.customer {
        match &charge.customer {
            Some(existing) if existing == customer => {}
            Some(existing) => {
                return Err(RequestError::CustomerAlreadySet {
                    charge_id: charge.id.clone(),
                    existing: existing.clone(),
                });
            }
            None => {
                if referenced_customer.is_none_or(|found| &found.id != customer) {
                    return Err(RequestError::NoSuchCustomer {
                        id: customer.clone(),
                    });
                }
                changes.push(FieldChange::Customer {
                    previous: None,
                    current: Some(customer.clone()),
                });
            }
        }
    }
    push_text_change(
        &mut changes,
        &charge.description,
        &command.description,
        |previous, current| FieldChange::Description { previous, current },
    );
    if !command.metadata.is_empty() {
        let merged = fold_metadata_edits(&charge.metadata, &command.metadata);
        check_metadata_size(&merged)?;
        if let Some(change) = FieldChange::metadata(&charge.metadata, &merged) {
            changes.push(change);
        }
    }
    push_text_change(
        &mut changes,
        &charge.receipt_email,
        &command.receipt_email,
        |previous, current| FieldChange::ReceiptEmail { previous, current },
    );
    if let Some(shipping) = shipping {
        push_if_changed(
            &mut changes,
            &charge.shipping,
            shipping,
            |previous, current| FieldChange::Shipping { previous, current },
        );
    }
    if let Some(user_report) = fraud_user_report {
        let current = FraudDetails {
            stripe_report: details.fraud_details.stripe_report.clone(),
            user_report,
        };
        push_if_changed(
            &mut changes,
            &details.fraud_details,
            current,
            |previous, current| FieldChange::FraudDetails { previous, current },
        );
    }
    if let Some(group) = &command.transfer_group
        && let Some(change) = transfer_group_change(charge, details, group)?
    {
        changes.push(change);
    }
    if changes.is_empty() {
        return Ok(None);
    }
    Ok(Some(EventPayload::ChargeUpdated(ChargeUpdated { changes })))
}

/// Decide a capture of an authorized charge.
pub fn capture_charge(
    charge: &ChargeState,
    command: &CaptureCharge,
    context: &DecisionContext,
) -> Result<EventPayload, RequestError> {
    let details = stripe_details(charge)?;
    if let Some(amount) = command.amount
        && amount <= 0
    {
        return Err(RequestError::AmountNotPositive {
            param: "amount".into(),
        });
    }
    if let Some(email) = command
        .receipt_email
        .as_deref()
        .filter(|email| !email.is_empty())
    {
        check_email("receipt_email", email)?;
    }
    check_statement_descriptors(
        &command.statement_descriptor,
        &command.statement_descriptor_suffix,
    )?;
    if let Some(group) = &command.transfer_group {
        check_length("transfer_group", group, DEFAULT_MAX_CHARS)?;
    }
    refuse_if_failed(charge, MoneyAction::Capture)?;
    if charge.is_captured() {
        return Err(RequestError::ChargeAlreadyCaptured {
            charge_id: charge.id.clone(),
        });
    }
    if charge.is_fully_returned() {
        return Err(RequestError::ChargeAlreadyRefunded {
            charge_id: charge.id.clone(),
        });
    }
    let authorized = charge.money.authorized;
    let amount_captured = command.amount.unwrap_or(authorized);
    if amount_captured > authorized {
        return Err(RequestError::CaptureAmountTooLarge {
            requested: amount_captured,
            authorized,
        });
    }
    let mut changes = Vec::new();
    push_text_change(
        &mut changes,
        &charge.receipt_email,
        &command.receipt_email,
        |previous, current| FieldChange::ReceiptEmail { previous, current },
    );
    push_text_change(
        &mut changes,
        &details.statement_descriptor,
        &command.statement_descriptor,
        |previous, current| FieldChange::StatementDescriptor { previous, current },
    );
    push_text_change(
        &mut changes,
        &details.statement_descriptor_suffix,
        &command.statement_descriptor_suffix,
        |previous, current| FieldChange::StatementDescriptorSuffix { previous, current },
    );
    if let Some(group) = &command.transfer_group
        && let Some(change) = transfer_group_change(charge, details, group)?
    {
        changes.push(change);
    }
    let remainder = authorized - amount_captured;
    let released_remainder = (remainder > 0).then(|| Refund {
        id: context.ids.refund.clone(),
        object: "refund".into(),
        amount: remainder,
        balance_transaction: None,
        charge: charge.id.clone(),
        created: context.now_unix,
        currency: charge.currency.clone(),
        metadata: Metadata::new(),
        reason: None,
        status: "succeeded".into(),
    });
    Ok(EventPayload::ChargeCaptured(ChargeCaptured {
        amount_captured,
        balance_transaction: context.ids.balance_transaction.clone(),
        released_remainder,
        changes,
        captured_at: None,
    }))
}

/// Decide a refund. An uncaptured charge can only be refunded in full, which releases the
/// authorization.
pub fn refund_charge(
    charge: &ChargeState,
    command: &RefundCharge,
    context: &DecisionContext,
) -> Result<EventPayload, RequestError> {
    stripe_details(charge)?;
    if let Some(amount) = command.amount
        && amount <= 0
    {
        return Err(RequestError::AmountNotPositive {
            param: "amount".into(),
        });
    }
    if let Some(reason) = &command.reason
        && !matches!(
            reason.as_str(),
            "duplicate" | "fraudulent" | "requested_by_customer"
        )
    {
        return Err(RequestError::InvalidEnum {
            param: "reason".into(),
            value: reason.clone(),
            allowed: "duplicate, fraudulent, or requested_by_customer".into(),
        });
    }
    check_metadata_edits(&command.metadata)?;
    let metadata = fold_metadata_edits(&Metadata::new(), &command.metadata);
    check_metadata_size(&metadata)?;
    refuse_if_failed(charge, MoneyAction::Refund)?;
    if charge.is_fully_returned() {
        return Err(RequestError::ChargeAlreadyRefunded {
            charge_id: charge.id.clone(),
        });
    }
    let refundable = charge.refundable_amount();
    let amount = command.amount.unwrap_or(refundable);
    if !charge.is_captured() && amount != refundable {
        return Err(RequestError::PartialRefundOfUncapturedCharge {
            charge_id: charge.id.clone(),
        });
    }
    if amount > refundable {
        return Err(RequestError::RefundAmountTooLarge {
            charge_id: charge.id.clone(),
            requested: amount,
            refundable,
        });
    }
    Ok(EventPayload::ChargeRefunded(ChargeRefunded {
        refund: Refund {
            id: context.ids.refund.clone(),
            object: "refund".into(),
            amount,
            balance_transaction: charge
                .is_captured()
                .then(|| context.ids.balance_transaction.clone()),
            charge: charge.id.clone(),
            created: context.now_unix,
            currency: charge.currency.clone(),
            metadata,
            reason: command.reason.clone(),
            status: "succeeded".into(),
        },
    }))
}

/// Decide a customer creation.
pub fn create_customer(
    command: &CreateCustomer,
    context: &DecisionContext,
) -> Result<EventPayload, RequestError> {
    let email = match command.email.as_deref() {
        Some(email) if !email.is_empty() => {
            check_email("email", email)?;
            Some(email.to_string())
        }
        _ => None,
    };
    if let Some(name) = &command.name {
        check_length("name", name, DEFAULT_MAX_CHARS)?;
    }
    if let Some(description) = &command.description {
        check_length("description", description, DEFAULT_MAX_CHARS)?;
    }
    check_metadata_edits(&command.metadata)?;
    let metadata = fold_metadata_edits(&Metadata::new(), &command.metadata);
    check_metadata_size(&metadata)?;
    Ok(EventPayload::CustomerCreated(CustomerCreated {
        customer_id: context.ids.customer.clone(),
        livemode: context.livemode,
        created: context.now_unix,
        email,
        name: command.name.as_deref().and_then(empty_as_none),
        description: command.description.as_deref().and_then(empty_as_none),
        metadata,
        card: None,
    }))
}

/// A failed charge holds no money: nothing to capture or refund. (`apply` keeps `failure` set
/// exactly when the lifecycle is `Failed`, so the failure alone tells.)
fn refuse_if_failed(charge: &ChargeState, action: MoneyAction) -> Result<(), RequestError> {
    match &charge.failure {
        Some(failure) => Err(RequestError::ChargeFailed {
            charge_id: charge.id.clone(),
            failure_code: failure.code.clone(),
            action,
        }),
        None => Ok(()),
    }
}

/// Stripe's rules decide only for charges of Stripe's own origin: an Omise charge gets a typed
/// refusal, never a decision made on state Stripe's rules do not know (such as a vault card).
fn stripe_details(charge: &ChargeState) -> Result<&StripeDetails, RequestError> {
    charge
        .stripe_details()
        .ok_or_else(|| RequestError::ChargeOfOtherDialect {
            charge_id: charge.id.clone(),
        })
}

/// `transfer_group` may only be provided while it is unset; repeating the current value is a no-op.
fn transfer_group_change(
    charge: &ChargeState,
    details: &StripeDetails,
    group: &str,
) -> Result<Option<FieldChange>, RequestError> {
    match &details.transfer_group {
        Some(existing) if existing == group => Ok(None),
        Some(existing) => Err(RequestError::TransferGroupAlreadySet {
            charge_id: charge.id.clone(),
            existing: existing.clone(),
        }),
        None if group.is_empty() => Ok(None),
        None => Ok(Some(FieldChange::TransferGroup {
            previous: None,
            current: Some(group.to_string()),
        })),
    }
}

/// Both statement descriptors are limited to 22 characters.
fn check_statement_descriptors(
    descriptor: &Option<String>,
    suffix: &Option<String>,
) -> Result<(), RequestError> {
    for (param, value) in [
        ("statement_descriptor", descriptor),
        ("statement_descriptor_suffix", suffix),
    ] {
        if let Some(value) = value {
            check_statement_descriptor(param, value)?;
        }
    }
    Ok(())
}

/// Record a requested optional text field (`""` unsets it) if it differs from the current value.
fn push_text_change(
    changes: &mut Vec<FieldChange>,
    current: &Option<String>,
    requested: &Option<String>,
    make_change: impl FnOnce(Option<String>, Option<String>) -> FieldChange,
) {
    if let Some(requested) = requested {
        push_if_changed(changes, current, empty_as_none(requested), make_change);
    }
}

fn push_if_changed<T: PartialEq + Clone>(
    changes: &mut Vec<FieldChange>,
    previous: &T,
    current: T,
    make_change: impl FnOnce(T, T) -> FieldChange,
) {
    if *previous != current {
        changes.push(make_change(previous.clone(), current));
    }
}
