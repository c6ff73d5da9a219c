//! Omise's refund rules: `POST /charges/{id}/refunds` decided against the charge. Pure.

use super::{OmiseContext, OmiseRefusal, REFUNDS_PER_CHARGE_MAX};
use crate::domain::charge::{ChargeState, Lifecycle};
use crate::domain::events::{ChargeRefunded, EventPayload};
use crate::domain::omise::commands::RefundOmiseCharge;
use crate::domain::values::Refund;

/// Decide a refund: only of a captured charge with money left to return and fewer than 15
/// refunds so far (15 at most), and for at most what is left.
pub fn refund_charge(
    charge: &ChargeState,
    command: &RefundOmiseCharge,
    context: &OmiseContext,
) -> Result<EventPayload, OmiseRefusal> {
    super::decide::omise_details(charge)?;
    let amount = command.amount.ok_or(OmiseRefusal::RefundAmountMissing)?;
    super::decide::check_metadata(&command.metadata)?;
    match charge.lifecycle {
        Lifecycle::Captured => {}
        // Omise's docs: only a captured charge can be refunded (an authorization is reversed).
        Lifecycle::Authorized | Lifecycle::Refunded | Lifecycle::Reversed | Lifecycle::Failed => {
            return Err(OmiseRefusal::ChargeNotRefundable);
        }
    }
    if charge.refunds.len() >= REFUNDS_PER_CHARGE_MAX {
        return Err(OmiseRefusal::ChargeNotRefundable);
    }
    if amount <= 0 {
        return Err(OmiseRefusal::RefundAmountNotPositive);
    }
    let refundable = charge.refundable_amount();
    if amount > refundable {
        return Err(OmiseRefusal::RefundAmountTooLarge { refundable });
    }
    Ok(EventPayload::ChargeRefunded(ChargeRefunded {
        refund: Refund {
            id: context.ids.refund.clone(),
            object: "refund".into(),
            amount,
            balance_transaction: Some(context.ids.transaction.clone()),
            charge: charge.id.clone(),
            created: context.now_unix,
            currency: charge.currency.clone(),
            metadata: command.metadata.clone(),
            reason: None,
            status: "closed".into(),
        },
    }))
}
