//! `GET /v1/charges/search` and `GET /v1/customers/search`: Stripe's search query language over the ledger's search index, answered as `search_result` objects.

use axum::extract::{Extension, RawQuery, State};
use axum::response::Response;
use serde::Serialize;

use super::error::ApiError;
use super::params::Form;
use super::{CHARGE_LIST_EXPANDABLE, charge_object, query_form, respond};
use crate::domain::RequestError;
use crate::domain::search::QUERY_MAX_CHARS;
use crate::ledger::{SEARCH_PAGE_MAX_CHARS, SearchPage, SearchRequest};
use crate::server::{App, Call};

/// `{"object": "search_result", "data": […], "has_more": …, "next_page": …, "url": …}`;
/// `total_count` only when `expand[]=total_count` asked for it.
#[derive(Debug, Serialize)]
struct SearchResult<T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
    next_page: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_count: Option<usize>,
    url: &'static str,
}

impl<T> SearchResult<T> {
    fn new<U>(page: SearchPage<U>, data: Vec<T>, url: &'static str) -> Self {
        SearchResult {
            object: "search_result",
            has_more: page.next_page.is_some(),
            next_page: page.next_page,
            total_count: page.total_count,
            data,
            url,
        }
    }
}

/// The parameters every search takes: `query`, `limit`, `page` and `expand[]`.
struct SearchParams {
    text: String,
    limit: usize,
    page: Option<String>,
    expand: Vec<String>,
}

impl SearchParams {
    fn read(form: &mut Form, expandable: &[&str]) -> Result<SearchParams, ApiError> {
        form.reject_unknown(&["query", "limit", "page", "expand"])?;
        let mut allowed = expandable.to_vec();
        allowed.push("total_count");
        let expand = form.expand(&allowed)?;
        let text = form.required_text("query")?;
        refuse_if_longer(&text, "query", QUERY_MAX_CHARS)?;
        let page = form.optional_text("page")?;
        if let Some(page) = &page {
            refuse_if_longer(page, "page", SEARCH_PAGE_MAX_CHARS)?;
        }
        Ok(SearchParams {
            text,
            limit: form.limit()?,
            page,
            expand,
        })
    }

    fn request(&self) -> SearchRequest<'_> {
        SearchRequest {
            text: &self.text,
            limit: self.limit,
            page: self.page.as_deref(),
            count_total: self.expand.iter().any(|path| path == "total_count"),
        }
    }
}

fn refuse_if_longer(value: &str, param: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.chars().count() > max_chars {
        return Err(RequestError::StringTooLong {
            param: param.to_string(),
            value: value.to_string(),
            max_chars,
        }
        .into());
    }
    Ok(())
}

pub(super) async fn search_charges(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    let params = SearchParams::read(&mut form, &CHARGE_LIST_EXPANDABLE)?;
    let account = &call.caller.account;
    let page = app.ledger.search_charges(account, params.request()).await?;
    let mut data = Vec::with_capacity(page.data.len());
    for charge in &page.data {
        data.push(charge_object(&app, account, charge, &params.expand).await?);
    }
    let result = SearchResult::new(page, data, "/v1/charges/search");
    Ok(respond(&result, &call, false))
}

pub(super) async fn search_customers(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    let params = SearchParams::read(&mut form, &[])?;
    let account = &call.caller.account;
    let mut page = app
        .ledger
        .search_customers(account, params.request())
        .await?;
    let data = std::mem::take(&mut page.data);
    let result = SearchResult::new(page, data, "/v1/customers/search");
    Ok(respond(&result, &call, false))
}
