//! The Omise dialect: `/tokens`, `/charges` (with `PATCH` updates, capture, reverse and refunds), `/refunds`, `/customers` (and their cards), `/charges/{id}/events`, `/events` and `/search`, for accounts with `skey_` keys.
//!
//! Handlers read `OmiseParams` (JSON, form or query, see `body`), call the ledger once and
//! render Omise objects (`objects`). Every success is HTTP 200, creation included (omise-go
//! treats anything else as an error); every failure is an `OmiseError`. Writes go through the
//! same `idempotency::write` as the Stripe dialect, so an `Idempotency-Key` works here too.

pub mod body;
pub mod charge_object;
pub mod customers;
pub mod error;
pub mod objects;
mod refunds;
mod search;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, FromRequest, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::omise::{CaptureOmiseCharge, CreateOmiseCharge, CreateToken, UpdateOmiseCharge};
use crate::domain::{ChargeState, Projection};
use crate::events::{EventPayload, RecordedEvent};
use crate::server::idempotency::{self, Written};
use crate::server::{App, Call, MAX_BODY_BYTES};
use body::OmiseParams;
use error::OmiseError;
use objects::ListWindow;

/// What every Omise response says its body is.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// Omise's default and largest page sizes.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// The Omise routes. A known path with another method is not found, as any unknown path.
pub fn routes() -> Router<App> {
    let with_fallback = |methods: MethodRouter<App>| methods.fallback(unknown_path);
    Router::new()
        .route("/tokens", with_fallback(post(create_token)))
        .route("/tokens/{id}", with_fallback(get(retrieve_token)))
        .route(
            "/charges",
            with_fallback(post(create_charge).get(list_charges)),
        )
        .route(
            "/charges/{id}",
            with_fallback(get(retrieve_charge).patch(update_charge)),
        )
        .route("/charges/{id}/capture", with_fallback(post(capture_charge)))
        .route("/charges/{id}/reverse", with_fallback(post(reverse_charge)))
        .route(
            "/charges/{id}/refunds",
            with_fallback(post(refunds::create_refund).get(refunds::list_charge_refunds)),
        )
        .route(
            "/charges/{id}/refunds/{refund_id}",
            with_fallback(get(refunds::retrieve_refund)),
        )
        .route("/refunds", with_fallback(get(refunds::list_refunds)))
        .route("/charges/{id}/events", with_fallback(get(charge_events)))
        .route(
            "/customers",
            with_fallback(post(customers::create_customer).get(customers::list_customers)),
        )
        .route(
            "/customers/{id}",
            with_fallback(get(customers::retrieve_customer).patch(customers::update_customer)),
        )
        .route(
            "/customers/{id}/cards",
            with_fallback(get(customers::list_cards)),
        )
        .route(
            "/customers/{id}/cards/{card_id}",
            with_fallback(get(customers::retrieve_card)),
        )
        .route("/events", with_fallback(get(list_events)))
        // omise-python and omise-php call `/search/`; the others `/search`.
        .route("/search", with_fallback(get(search::search)))
        .route("/search/", with_fallback(get(search::search)))
        .route("/events/{id}", with_fallback(get(retrieve_event)))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Any path neither dialect knows, answered in Omise's shape.
pub async fn unknown_path(method: axum::http::Method, uri: axum::http::Uri) -> OmiseError {
    OmiseError::not_found(format!("{} {} was not found", method, uri.path()))
}

/// A request's parameters from its query string and body, whatever the client's dialect.
pub struct OmiseInput(pub OmiseParams);

impl<S: Send + Sync> FromRequest<S> for OmiseInput {
    type Rejection = OmiseError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let query = request.uri().query().map(str::to_string);
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    OmiseError::body_too_large(MAX_BODY_BYTES)
                } else {
                    OmiseError::bad_request(format!(
                        "the request body could not be read: {rejection}"
                    ))
                }
            })?;
        OmiseParams::parse(content_type.as_deref(), query.as_deref(), &body).map(OmiseInput)
    }
}

/// A 200 with an Omise JSON body, marked as a replay when it is one.
fn respond(body: Value, call: &Call, replayed: bool) -> Response {
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    idempotency::stamp_headers(&mut response, call, replayed);
    response
}

fn respond_with_charge(written: Written<ChargeState>, call: &Call) -> Response {
    respond(
        objects::charge_object(&written.value),
        call,
        written.replayed,
    )
}

async fn create_token(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let card = params.object("card")?.unwrap_or_default();
    let command = CreateToken {
        name: card.string("name")?,
        number: card.string("number")?,
        expiration_month: card.integer("expiration_month")?,
        expiration_year: card.integer("expiration_year")?,
        security_code: card.string("security_code")?,
        city: card.string("city")?,
        postal_code: card.string("postal_code")?,
        country: card.string("country")?,
        state: card.string("state")?,
        street1: card.string("street1")?,
        street2: card.string("street2")?,
        phone_number: card.string("phone_number")?,
    };
    let written = idempotency::write(
        &app,
        &call,
        app.ledger
            .create_token(&call.caller.account, command, call.request_meta()),
    )
    .await?;
    Ok(respond(
        objects::token_object(&written.value),
        &call,
        written.replayed,
    ))
}

async fn retrieve_token(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(token_id): Path<String>,
) -> Result<Response, OmiseError> {
    let token = app
        .ledger
        .get_token(&call.caller.account, &token_id)
        .await?;
    Ok(respond(objects::token_object(&token), &call, false))
}

async fn create_charge(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let amount = params
        .integer_or("amount", OmiseError::invalid_charge)?
        .ok_or_else(|| OmiseError::invalid_charge("amount is required"))?;
    let currency = params
        .string("currency")?
        .filter(|currency| !currency.is_empty())
        .ok_or_else(|| OmiseError::invalid_charge("currency is required"))?;
    // omise-go sends `"platform_fee":{}` on every create; fees for partner platforms are not
    // kept here, so only an empty one is accepted.
    if let Some(fee) = params.object("platform_fee")?
        && fee != OmiseParams::default()
    {
        return Err(OmiseError::bad_request(
            "platform_fee is not supported by this ledger",
        ));
    }
    let command = CreateOmiseCharge {
        amount,
        currency,
        card: params.string("card")?.filter(|card| !card.is_empty()),
        customer: params
            .string("customer")?
            .filter(|customer| !customer.is_empty()),
        source: params.string("source")?.filter(|source| !source.is_empty()),
        capture: params.boolean("capture")?.unwrap_or(true),
        description: params.string("description")?,
        metadata: params.metadata()?.unwrap_or_default(),
        return_uri: params.string("return_uri")?,
        ip: params.string("ip")?,
    };
    let written = idempotency::write(
        &app,
        &call,
        app.ledger
            .create_omise_charge(&call.caller.account, command, call.request_meta()),
    )
    .await?;
    Ok(respond_with_charge(written, &call))
}

async fn retrieve_charge(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
) -> Result<Response, OmiseError> {
    let charge = app
        .ledger
        .get_charge(&call.caller.account, &charge_id)
        .await?;
    Ok(respond(objects::charge_object(&charge), &call, false))
}

async fn update_charge(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let command = UpdateOmiseCharge {
        description: params.string("description")?,
        metadata: params.metadata()?,
    };
    let written = idempotency::write(
        &app,
        &call,
        app.ledger.update_omise_charge(
            &call.caller.account,
            &charge_id,
            command,
            call.request_meta(),
        ),
    )
    .await?;
    Ok(respond_with_charge(written, &call))
}

async fn capture_charge(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let command = CaptureOmiseCharge {
        capture_amount: params.integer("capture_amount")?,
    };
    let written = idempotency::write(
        &app,
        &call,
        app.ledger.capture_omise_charge(
            &call.caller.account,
            &charge_id,
            command,
            call.request_meta(),
        ),
    )
    .await?;
    Ok(respond_with_charge(written, &call))
}

async fn reverse_charge(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
) -> Result<Response, OmiseError> {
    let written = idempotency::write(
        &app,
        &call,
        app.ledger
            .reverse_charge(&call.caller.account, &charge_id, call.request_meta()),
    )
    .await?;
    Ok(respond_with_charge(written, &call))
}

/// Omise's list parameters.
pub(super) struct ListQuery {
    limit: usize,
    offset: usize,
    newest_first: bool,
    from: OffsetDateTime,
    to: OffsetDateTime,
}

impl ListQuery {
    pub(super) fn read(params: &OmiseParams) -> Result<Self, OmiseError> {
        let limit = match params.integer("limit")? {
            None => DEFAULT_LIMIT,
            Some(limit) if limit < 1 => {
                return Err(OmiseError::bad_request("limit must be greater than 0"));
            }
            // Omise serves at most 100 per page and says so in `limit`.
            Some(limit) => usize::try_from(limit).map_or(MAX_LIMIT, |limit| limit.min(MAX_LIMIT)),
        };
        let offset = match params.integer("offset")? {
            None => 0,
            Some(offset) => usize::try_from(offset)
                .map_err(|_| OmiseError::bad_request("offset must be 0 or greater"))?,
        };
        let newest_first = match params.string("order")?.as_deref() {
            None | Some("") | Some("chronological") => false,
            Some("reverse_chronological") => true,
            Some(other) => {
                return Err(OmiseError::bad_request(format!(
                    "order must be chronological or reverse_chronological, not {other}"
                )));
            }
        };
        let from = params.time("from")?.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let to = params.time("to")?.unwrap_or_else(OffsetDateTime::now_utc);
        Ok(ListQuery {
            limit,
            offset,
            newest_first,
            from,
            to,
        })
    }

    pub(super) fn includes(&self, unix_seconds: i64) -> bool {
        (self.from.unix_timestamp()..=self.to.unix_timestamp()).contains(&unix_seconds)
    }

    /// An event Omise shows (it has a key) recorded within `from`..`to`.
    fn includes_event(&self, event: &RecordedEvent) -> bool {
        objects::event_key(&event.body.payload).is_some()
            && self.includes(event.body.recorded_at.unix_timestamp())
    }

    /// The page of `oldest_first` items this query asks for, and the list's envelope.
    pub(super) fn page<T>(&self, mut oldest_first: Vec<T>) -> (ListWindow, Vec<T>) {
        if self.newest_first {
            oldest_first.reverse();
        }
        let total = oldest_first.len();
        let data = oldest_first
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        let window = ListWindow {
            limit: self.limit,
            offset: self.offset,
            total,
            order: if self.newest_first {
                "reverse_chronological"
            } else {
                "chronological"
            },
            from: self.from,
            to: self.to,
        };
        (window, data)
    }
}

async fn list_charges(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let query = ListQuery::read(&params)?;
    let mut charges = app
        .ledger
        .all_charges(&call.caller.account, &|charge: &ChargeState| {
            query.includes(charge.created)
        })
        .await?;
    charges.reverse();
    let (window, page) = query.page(charges);
    let data = page.iter().map(objects::charge_object).collect();
    Ok(respond(
        objects::list_object(&window, data, "/charges"),
        &call,
        false,
    ))
}

/// An event as Omise shows it, with the charge right after it; `None` for events Omise has no
/// key for.
async fn event_object(
    app: &App,
    call: &Call,
    event: &RecordedEvent,
) -> Result<Option<Value>, OmiseError> {
    Ok(render_event(
        &app.ledger,
        &call.caller.account,
        call.caller.livemode,
        event,
    )
    .await?)
}

/// A stored event as Omise's event object (`None` for events Omise shows none for): for API
/// responses and webhook deliveries alike.
pub(crate) async fn render_event(
    ledger: &crate::ledger::Ledger,
    account: &str,
    livemode: bool,
    event: &RecordedEvent,
) -> Result<Option<Value>, crate::ledger::LedgerError> {
    let Some(key) = objects::event_key(&event.body.payload) else {
        return Ok(None);
    };
    let (_, after) = ledger.states_around(account, event).await?;
    let data = match (&event.body.payload, &after) {
        // `refund.create` is about the refund.
        (EventPayload::ChargeRefunded(refunded), _) => {
            objects::refund_object(&refunded.refund, livemode)
        }
        (_, Projection::Charge(charge)) => objects::charge_object(charge),
        (_, Projection::Customer(customer)) => customers::customer_object(customer),
        (_, other) => other.to_json(),
    };
    Ok(Some(objects::event_object(event, key, livemode, data)))
}

async fn render_events(
    app: &App,
    call: &Call,
    events: Vec<RecordedEvent>,
    query: &ListQuery,
    location: &str,
) -> Result<Response, OmiseError> {
    let (window, page) = query.page(events);
    let mut data = Vec::with_capacity(page.len());
    for event in &page {
        if let Some(object) = event_object(app, call, event).await? {
            data.push(object);
        }
    }
    Ok(respond(
        objects::list_object(&window, data, location),
        call,
        false,
    ))
}

async fn charge_events(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let query = ListQuery::read(&params)?;
    let events: Vec<RecordedEvent> = app
        .ledger
        .charge_events(&call.caller.account, &charge_id, None)
        .await?
        .into_iter()
        .filter(|event| query.includes_event(event))
        .collect();
    let location = format!("/charges/{charge_id}/events");
    render_events(&app, &call, events, &query, &location).await
}

async fn list_events(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let query = ListQuery::read(&params)?;
    let mut events = app
        .ledger
        .all_events(&call.caller.account, &|event: &RecordedEvent| {
            query.includes_event(event)
        })
        .await?;
    events.reverse();
    render_events(&app, &call, events, &query, "/events").await
}

async fn retrieve_event(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(event_id): Path<String>,
) -> Result<Response, OmiseError> {
    let not_found = || OmiseError::not_found(format!("event {event_id} was not found"));
    let stored_id = objects::stored_event_id(&event_id).ok_or_else(not_found)?;
    let event = app
        .ledger
        .event(&call.caller.account, &stored_id)
        .await?
        .ok_or_else(not_found)?;
    let object = event_object(&app, &call, &event)
        .await?
        .ok_or_else(not_found)?;
    Ok(respond(object, &call, false))
}
