//! `/v1/customers`: create, retrieve, list.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::Response;

use super::error::ApiError;
use super::objects::ListObject;
use super::{missing_object_param, query_form, read_form, respond};
use crate::domain::CreateCustomer;
use crate::server::idempotency::{self, Written};
use crate::server::{App, Call};

pub(super) async fn create_customer(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut form = read_form(query, body)?;
    form.reject_unknown(&["email", "name", "description", "metadata", "expand"])?;
    form.expand(&[])?;
    let command = CreateCustomer {
        email: form.optional_text("email")?,
        name: form.optional_text("name")?,
        description: form.optional_text("description")?,
        metadata: form.metadata()?,
    };
    let Written { value, replayed } = idempotency::write(
        &app,
        &call,
        app.ledger
            .create_customer(&call.caller.account, command, call.request_meta()),
    )
    .await?;
    Ok(respond(&value, &call, replayed))
}

pub(super) async fn retrieve_customer(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(customer_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["expand"])?;
    form.expand(&[])?;
    let customer = app
        .ledger
        .get_customer(&call.caller.account, &customer_id)
        .await
        .map_err(|error| missing_object_param(error.into(), "customer", "id"))?;
    Ok(respond(&customer, &call, false))
}

pub(super) async fn list_customers(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["limit", "starting_after", "ending_before", "expand"])?;
    form.expand(&[])?;
    let limit = form.limit()?;
    let cursor = form.cursor()?;
    let page = app
        .ledger
        .list_customers(&call.caller.account, &cursor, limit)
        .await?;
    let list = ListObject::new(page.data, page.has_more, "/v1/customers");
    Ok(respond(&list, &call, false))
}
