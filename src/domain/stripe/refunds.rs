//! Stripe's rules for a refund as a resource: updating its metadata (`POST /v1/refunds/{id}`).

use crate::domain::charge::ChargeState;
use crate::domain::events::{EventPayload, FieldChange, RefundUpdated};
use crate::domain::stripe::commands::{MetadataEdit, fold_metadata_edits};
use crate::domain::stripe::error::RequestError;
use crate::domain::stripe::validation::{check_metadata_edits, check_metadata_size};

/// Update a refund. Stripe lets only `metadata` change on a refund.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct UpdateRefund {
    pub metadata: Vec<MetadataEdit>,
}

/// Decide a refund update against the charge that holds the refund: the event, or `None`
/// when the update changes nothing (then nothing is appended, as for a charge).
pub fn update_refund(
    charge: &ChargeState,
    refund_id: &str,
    command: &UpdateRefund,
) -> Result<Option<EventPayload>, RequestError> {
    check_metadata_edits(&command.metadata)?;
    if charge.stripe_details().is_none() {
        return Err(RequestError::ChargeOfOtherDialect {
            charge_id: charge.id.clone(),
        });
    }
    let Some(refund) = charge.refunds.iter().find(|refund| refund.id == refund_id) else {
        return Err(RequestError::NoSuchRefund {
            id: refund_id.to_string(),
        });
    };
    let merged = fold_metadata_edits(&refund.metadata, &command.metadata);
    check_metadata_size(&merged)?;
    let Some(FieldChange::Metadata { previous, current }) =
        FieldChange::metadata(&refund.metadata, &merged)
    else {
        return Ok(None);
    };
    Ok(Some(EventPayload::RefundUpdated(RefundUpdated {
        refund_id: refund_id.to_string(),
        previous_metadata: previous,
        current_metadata: current,
    })))
}
