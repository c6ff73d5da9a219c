//! `GET /search` (and `/search/`, as omise-python and omise-php call it) with `scope=charge`: free text and `filters[…]`, paged by page number, answered as Omise's `search` object.

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::error::OmiseError;
use super::{OmiseInput, objects, respond};
use crate::domain::ChargeState;
use crate::domain::omise::search::{ChargeFilter, ChargeSearch};
use crate::server::{App, Call};

/// Omise's default page size for search.
const DEFAULT_PER_PAGE: usize = 30;
/// The largest page served (Omise's own maximum is not published).
const MAX_PER_PAGE: usize = 100;
/// The scopes Omise documents; only `charge` is kept by this ledger.
const DOCUMENTED_SCOPES: [&str; 15] = [
    "charge",
    "charge_schedule",
    "customer",
    "dispute",
    "event",
    "fund_account",
    "link",
    "log_entry",
    "receipt",
    "recipient",
    "refund",
    "sub_merchant",
    "transfer",
    "transfer_schedule",
    "transaction",
];

fn invalid(code: &'static str, message: impl Into<String>) -> OmiseError {
    OmiseError::new(StatusCode::BAD_REQUEST, code, message)
}

pub(super) async fn search(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let scope = params.string("scope")?.unwrap_or_default();
    match scope.as_str() {
        "charge" => {}
        "" => return Err(invalid("invalid_scope", "scope can't be blank")),
        documented if DOCUMENTED_SCOPES.contains(&documented) => {
            return Err(invalid(
                "invalid_scope",
                format!("scope {documented} is not searchable on this server: only charge is"),
            ));
        }
        other => {
            return Err(invalid(
                "invalid_scope",
                format!(
                    "scope {other} is not one of {}",
                    DOCUMENTED_SCOPES.join(", ")
                ),
            ));
        }
    }
    let query = params.string("query")?.unwrap_or_default();
    let (filters, echoed) = read_filters(&params)?;
    let newest_first = match params.string("order")?.as_deref() {
        None | Some("") | Some("reverse_chronological") => true,
        Some("chronological") => false,
        Some(other) => {
            return Err(OmiseError::bad_request(format!(
                "order must be chronological or reverse_chronological, not {other}"
            )));
        }
    };
    let page = positive(&params, "page", 1)?;
    let per_page = positive(&params, "per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE);
    let search = ChargeSearch {
        query: query.trim().to_lowercase(),
        filters,
    };
    let (total, page_charges) = app
        .ledger
        .charges_window(
            &call.caller.account,
            &|charge: &ChargeState| search.matches(charge),
            newest_first,
            (page - 1).saturating_mul(per_page),
            per_page,
        )
        .await?;
    let data: Vec<Value> = page_charges.iter().map(objects::charge_object).collect();
    let body = json!({
        "object": "search",
        "export": null,
        "data": data,
        "page": page,
        "per_page": per_page,
        "total": total,
        "total_pages": total.div_ceil(per_page),
        "filters": Value::Object(echoed),
        "location": "/search",
        "order": if newest_first { "reverse_chronological" } else { "chronological" },
        "query": query,
        "scope": scope,
        "aggregate_level": null,
    });
    Ok(respond(body, &call, false))
}

/// The `filters` object read, and echoed back as Omise does: every value as a string.
fn read_filters(
    params: &super::body::OmiseParams,
) -> Result<(Vec<ChargeFilter>, Map<String, Value>), OmiseError> {
    let mut filters = Vec::new();
    let mut echoed = Map::new();
    let Some(given) = params.object("filters")? else {
        return Ok((filters, echoed));
    };
    for (name, value) in given.entries() {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            _ => {
                return Err(invalid(
                    "invalid_filters",
                    format!("filters[{name}] must be a string"),
                ));
            }
        };
        let filter = ChargeFilter::parse(name, &text)
            .map_err(|error| invalid("invalid_filters", error.0))?;
        filters.push(filter);
        echoed.insert(name.clone(), Value::String(text));
    }
    Ok((filters, echoed))
}

/// A whole number of at least 1, or `default` when absent.
fn positive(
    params: &super::body::OmiseParams,
    name: &str,
    default: usize,
) -> Result<usize, OmiseError> {
    let code = if name == "page" {
        "invalid_page"
    } else {
        "bad_request"
    };
    let message = || format!("{name} must be an integer greater than 0");
    match params.integer_or(name, |_| invalid(code, message()))? {
        None => Ok(default),
        Some(number) if number >= 1 => Ok(usize::try_from(number).unwrap_or(usize::MAX)),
        Some(_) => Err(invalid(code, message())),
    }
}
