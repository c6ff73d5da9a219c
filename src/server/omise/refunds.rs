//! Omise's refunds: `POST`/`GET /charges/{id}/refunds`, `GET /charges/{id}/refunds/{id}` and the account-wide `GET /refunds`.

use axum::extract::{Extension, Path, State};
use axum::response::Response;

use super::body::OmiseParams;
use super::error::OmiseError;
use super::{ListQuery, OmiseInput, objects, respond};
use crate::domain::omise::{OmiseRefusal, RefundOmiseCharge};
use crate::domain::{Metadata, Refund};
use crate::ledger::Refusal;
use crate::server::idempotency::{self, Written};
use crate::server::{App, Call};

/// `POST /charges/{id}/refunds`: `amount` (required), `metadata`, `void`.
pub(super) async fn create_refund(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let command = RefundOmiseCharge {
        amount: params.integer("amount")?,
        metadata: params.metadata()?.unwrap_or_else(Metadata::new),
        void: params.boolean("void")?.unwrap_or(false),
    };
    let Written { value, replayed } = idempotency::write(
        &app,
        &call,
        app.ledger.refund_omise_charge(
            &call.caller.account,
            &charge_id,
            command,
            call.request_meta(),
        ),
    )
    .await?;
    let body = objects::refund_object(&value.refund, call.caller.livemode);
    Ok(respond(body, &call, replayed))
}

/// `GET /charges/{id}/refunds`: the charge's refunds, paged as every Omise list.
pub(super) async fn list_charge_refunds(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let charge = app
        .ledger
        .get_charge(&call.caller.account, &charge_id)
        .await?;
    let location = format!("/charges/{charge_id}/refunds");
    refund_list(&call, &params, charge.refunds, &location)
}

/// `GET /charges/{id}/refunds/{refund_id}`.
pub(super) async fn retrieve_refund(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path((charge_id, refund_id)): Path<(String, String)>,
) -> Result<Response, OmiseError> {
    let charge = app
        .ledger
        .get_charge(&call.caller.account, &charge_id)
        .await?;
    let refund = charge
        .refunds
        .iter()
        .find(|refund| refund.id == refund_id)
        .ok_or(Refusal::OmiseRequest(OmiseRefusal::RefundNotFound {
            id: refund_id,
        }))?;
    let body = objects::refund_object(refund, call.caller.livemode);
    Ok(respond(body, &call, false))
}

/// `GET /refunds`: the account's refunds, counted and paged from the refund index; only the
/// page's charges are loaded.
pub(super) async fn list_refunds(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let query = ListQuery::read(&params)?;
    let account = &call.caller.account;
    let mut locations = app.ledger.refund_locations(account).await?;
    locations.retain(|location| query.includes(location.created));
    locations.reverse();
    let (window, page) = query.page(locations);
    let data = app
        .ledger
        .refunds_at(account, &page)
        .await?
        .iter()
        .map(|refund| objects::refund_object(refund, call.caller.livemode))
        .collect();
    Ok(respond(
        objects::list_object(&window, data, "/refunds"),
        &call,
        false,
    ))
}

/// A list object of `oldest_first` refunds within the query's `from`..`to`, paged by it.
fn refund_list(
    call: &Call,
    params: &OmiseParams,
    oldest_first: Vec<Refund>,
    location: &str,
) -> Result<Response, OmiseError> {
    let query = ListQuery::read(params)?;
    let within: Vec<Refund> = oldest_first
        .into_iter()
        .filter(|refund| query.includes(refund.created))
        .collect();
    let (window, page) = query.page(within);
    let data = page
        .iter()
        .map(|refund| objects::refund_object(refund, call.caller.livemode))
        .collect();
    Ok(respond(
        objects::list_object(&window, data, location),
        call,
        false,
    ))
}
