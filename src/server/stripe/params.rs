//! Typed reading of Rack-style parameters into ledger commands, refusing unknown and ill-shaped parameters with Stripe's errors.
//!
//! Shapes are checked here (a hash where a string belongs, `amount=abc`); the rules about values
//! (lengths, emails, countries, metadata limits) stay in the domain, so the library and every
//! HTTP dialect refuse the same things with the same words.

use crate::domain::stripe::commands::CardInput;
use crate::domain::{
    Address, MetadataEdit, RequestError, ShippingInput, ShippingUpdate, UpdateCharge,
};
pub use crate::ledger::CreatedRange;
use crate::server::form::{Param, Params};
use crate::server::stripe::error::ApiError;
use crate::store::PageCursor;

/// The largest page a Stripe list returns (`limit`), as on Stripe.
pub const MAX_PAGE_LIMIT: i64 = 100;

/// A request's parameters, taken one by one; what is left at the end was not expected.
pub struct Form {
    params: Params,
}

/// The parameters `POST /v1/charges/{id}` accepts.
pub const UPDATE_CHARGE_PARAMETERS: [&str; 8] = [
    "customer",
    "description",
    "expand",
    "fraud_details",
    "metadata",
    "receipt_email",
    "shipping",
    "transfer_group",
];

impl Form {
    /// The update a `POST /v1/charges/{id}` form asks for (its `expand` is read separately).
    pub fn update_charge(&mut self) -> Result<UpdateCharge, ApiError> {
        Ok(UpdateCharge {
            customer: self.text("customer")?,
            description: self.text("description")?,
            metadata: self.metadata()?,
            receipt_email: self.text("receipt_email")?,
            shipping: self.shipping_update()?,
            fraud_details_user_report: self.fraud_details()?,
            transfer_group: self.text("transfer_group")?,
        })
    }

    pub fn new(params: Params) -> Self {
        Form { params }
    }

    /// Refuse every top-level parameter not in `known`, before reading any value: Stripe names
    /// unknown parameters first.
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), ApiError> {
        let unknown: Vec<String> = self
            .params
            .keys()
            .filter(|name| !known.contains(&name.as_str()))
            .cloned()
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(ApiError::unknown_parameters(&unknown))
        }
    }

    pub fn take(&mut self, name: &str) -> Option<Param> {
        self.params.shift_remove(name)
    }

    /// A string parameter; `""` is kept (it unsets).
    pub fn text(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        self.take(name)
            .map(|value| expect_text(name, value))
            .transpose()
    }

    /// A string parameter where `""` means absent (on creation there is nothing to unset).
    pub fn optional_text(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        Ok(self.text(name)?.filter(|text| !text.is_empty()))
    }

    /// A required string parameter.
    pub fn required_text(&mut self, name: &str) -> Result<String, ApiError> {
        match self.text(name)? {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(missing(name)),
        }
    }

    /// An integer parameter; `""` means absent.
    pub fn integer(&mut self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.text(name)? {
            None => Ok(None),
            Some(text) if text.is_empty() => Ok(None),
            Some(text) => text.trim().parse::<i64>().map(Some).map_err(|_| {
                ApiError::from(RequestError::InvalidInteger {
                    param: name.to_string(),
                    value: text,
                })
            }),
        }
    }

    /// A boolean parameter (`true`/`false`); `""` means absent.
    pub fn boolean(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.text(name)?.as_deref() {
            None | Some("") => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid_request(
                format!("Invalid boolean: {other}"),
                Some(name),
                Some("parameter_invalid_boolean"),
            )),
        }
    }

    /// `metadata[key]=value` edits in request order; `metadata=` removes every key.
    pub fn metadata(&mut self) -> Result<Vec<MetadataEdit>, ApiError> {
        match self.take("metadata") {
            None => Ok(Vec::new()),
            Some(Param::Text(text)) if text.is_empty() => Ok(vec![MetadataEdit::UnsetAll]),
            Some(Param::Hash(entries)) => entries
                .into_iter()
                .map(|(key, value)| match value {
                    Param::Text(text) if text.is_empty() => Ok(MetadataEdit::Unset(key)),
                    Param::Text(text) => {
                        Ok(MetadataEdit::Set(key, serde_json::Value::String(text)))
                    }
                    _ => Err(RequestError::MetadataValueNotString { key }.into()),
                })
                .collect(),
            Some(other) => Err(invalid_hash("metadata", &other)),
        }
    }

    /// `shipping[…]` (a whole new shipping object) or `shipping=` (remove it).
    pub fn shipping_update(&mut self) -> Result<Option<ShippingUpdate>, ApiError> {
        match self.take("shipping") {
            None => Ok(None),
            Some(Param::Text(text)) if text.is_empty() => Ok(Some(ShippingUpdate::Unset)),
            Some(Param::Hash(fields)) => Ok(Some(ShippingUpdate::Set(shipping_input(fields)?))),
            Some(other) => Err(invalid_hash("shipping", &other)),
        }
    }

    /// `shipping[…]` on creation, where there is nothing to remove.
    pub fn shipping(&mut self) -> Result<Option<ShippingInput>, ApiError> {
        match self.take("shipping") {
            None => Ok(None),
            Some(Param::Text(text)) if text.is_empty() => Ok(None),
            Some(Param::Hash(fields)) => Ok(Some(shipping_input(fields)?)),
            Some(other) => Err(invalid_hash("shipping", &other)),
        }
    }

    /// `source=tok_…`, or a card by number: `source[object]=card&source[number]=…` with
    /// optional `exp_month`, `exp_year` and `cvc` (the legacy card hash).
    pub fn source(&mut self) -> Result<(Option<String>, Option<CardInput>), ApiError> {
        match self.take("source") {
            None => Ok((None, None)),
            Some(Param::Text(text)) if text.is_empty() => Ok((None, None)),
            Some(Param::Text(text)) => Ok((Some(text), None)),
            Some(Param::Hash(fields)) => Ok((None, Some(card_input(fields)?))),
            Some(other) => Err(invalid_string("source", &other)),
        }
    }

    /// `fraud_details[user_report]`: `Some(None)` when the hash lacks `user_report`, which the
    /// domain refuses as a missing parameter.
    pub fn fraud_details(&mut self) -> Result<Option<Option<String>>, ApiError> {
        match self.take("fraud_details") {
            None => Ok(None),
            Some(Param::Hash(mut fields)) => {
                let user_report = fields
                    .shift_remove("user_report")
                    .map(|value| expect_text("fraud_details[user_report]", value))
                    .transpose()?;
                reject_nested_unknown("fraud_details", &fields)?;
                Ok(Some(user_report))
            }
            Some(Param::Text(text)) if text.is_empty() => Ok(Some(None)),
            Some(other) => Err(invalid_hash("fraud_details", &other)),
        }
    }

    /// `name[]=a`, `name[0]=a` or `name=a`: an array of strings in index order.
    pub fn string_array(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
        match self.take(name) {
            None => Ok(Vec::new()),
            Some(Param::Text(text)) if text.is_empty() => Ok(Vec::new()),
            Some(Param::Text(text)) => Ok(vec![text]),
            Some(Param::List(items)) => items
                .into_iter()
                .map(|item| expect_text(name, item))
                .collect(),
            Some(Param::Hash(indexed)) => {
                let mut entries: Vec<(u64, Param)> = Vec::with_capacity(indexed.len());
                for (index, item) in indexed {
                    let position = index.parse::<u64>().map_err(|_| {
                        ApiError::invalid_request(
                            format!("Invalid array: {name}[{index}] is not an array index"),
                            Some(name),
                            Some("parameter_invalid_array"),
                        )
                    })?;
                    entries.push((position, item));
                }
                entries.sort_by_key(|(position, _)| *position);
                entries
                    .into_iter()
                    .map(|(_, item)| expect_text(name, item))
                    .collect()
            }
        }
    }

    /// `expand[]=a`, `expand[0]=a` or `expand=a`: the paths to expand, each checked against
    /// `expandable`.
    pub fn expand(&mut self, expandable: &[&str]) -> Result<Vec<String>, ApiError> {
        let paths = self.string_array("expand")?;
        for path in &paths {
            if !expandable.contains(&path.as_str()) {
                return Err(ApiError::invalid_request(
                    format!("This property cannot be expanded ({path})."),
                    Some("expand"),
                    None,
                ));
            }
        }
        Ok(paths)
    }

    /// `limit`, 1 to 100, default 10.
    pub fn limit(&mut self) -> Result<usize, ApiError> {
        match self.integer("limit")? {
            None => Ok(10),
            Some(limit) if limit < 1 => Err(ApiError::invalid_request(
                "This value must be greater than or equal to 1.",
                Some("limit"),
                Some("parameter_invalid_integer"),
            )),
            Some(limit) if limit > MAX_PAGE_LIMIT => Err(ApiError::invalid_request(
                format!("This value must be less than or equal to {MAX_PAGE_LIMIT}."),
                Some("limit"),
                Some("parameter_invalid_integer"),
            )),
            Some(limit) => Ok(usize::try_from(limit).unwrap_or(10)),
        }
    }

    /// `starting_after` or `ending_before` (not both).
    pub fn cursor(&mut self) -> Result<PageCursor, ApiError> {
        let starting_after = self.optional_text("starting_after")?;
        let ending_before = self.optional_text("ending_before")?;
        match (starting_after, ending_before) {
            (Some(_), Some(_)) => Err(ApiError::invalid_request(
                "You may only specify one of these parameters: ending_before, starting_after.",
                Some("ending_before"),
                None,
            )),
            (Some(id), None) => Ok(PageCursor::StartingAfter(id)),
            (None, Some(id)) => Ok(PageCursor::EndingBefore(id)),
            (None, None) => Ok(PageCursor::Newest),
        }
    }

    /// `created=N` or `created[gt|gte|lt|lte]=N`.
    pub fn created_range(&mut self) -> Result<CreatedRange, ApiError> {
        let mut range = CreatedRange::default();
        match self.take("created") {
            None => {}
            Some(Param::Text(text)) => {
                let exact = parse_integer("created", &text)?;
                range.gte = Some(exact);
                range.lte = Some(exact);
            }
            Some(Param::Hash(mut bounds)) => {
                for (name, slot) in [
                    ("gt", &mut range.gt),
                    ("gte", &mut range.gte),
                    ("lt", &mut range.lt),
                    ("lte", &mut range.lte),
                ] {
                    if let Some(value) = bounds.shift_remove(name) {
                        let param = format!("created[{name}]");
                        let text = expect_text(&param, value)?;
                        *slot = Some(parse_integer(&param, &text)?);
                    }
                }
                reject_nested_unknown("created", &bounds)?;
            }
            Some(other) => return Err(invalid_hash("created", &other)),
        }
        Ok(range)
    }
}

fn parse_integer(param: &str, text: &str) -> Result<i64, ApiError> {
    text.trim().parse::<i64>().map_err(|_| {
        RequestError::InvalidInteger {
            param: param.to_string(),
            value: text.to_string(),
        }
        .into()
    })
}

fn shipping_input(mut fields: Params) -> Result<ShippingInput, ApiError> {
    let mut text = |name: &str| -> Result<Option<String>, ApiError> {
        fields
            .shift_remove(name)
            .map(|value| expect_text(&format!("shipping[{name}]"), value))
            .transpose()
    };
    let name = text("name")?;
    let carrier = text("carrier")?;
    let phone = text("phone")?;
    let tracking_number = text("tracking_number")?;
    let address = match fields.shift_remove("address") {
        None => None,
        Some(Param::Hash(mut address_fields)) => {
            let mut part = |name: &str| -> Result<Option<String>, ApiError> {
                address_fields
                    .shift_remove(name)
                    .map(|value| expect_text(&format!("shipping[address][{name}]"), value))
                    .transpose()
            };
            let address = Address {
                city: part("city")?,
                country: part("country")?,
                line1: part("line1")?,
                line2: part("line2")?,
                postal_code: part("postal_code")?,
                state: part("state")?,
            };
            reject_nested_unknown("shipping[address]", &address_fields)?;
            Some(address)
        }
        Some(Param::Text(text)) if text.is_empty() => None,
        Some(other) => return Err(invalid_hash("shipping[address]", &other)),
    };
    reject_nested_unknown("shipping", &fields)?;
    Ok(ShippingInput {
        name,
        address,
        carrier,
        phone,
        tracking_number,
    })
}

fn card_input(mut fields: Params) -> Result<CardInput, ApiError> {
    let mut text = |name: &str| -> Result<Option<String>, ApiError> {
        fields
            .shift_remove(name)
            .map(|value| expect_text(&format!("source[{name}]"), value))
            .transpose()
    };
    if let Some(object) = text("object")?
        && object != "card"
    {
        return Err(RequestError::InvalidEnum {
            param: "source[object]".into(),
            value: object,
            allowed: "card".into(),
        }
        .into());
    }
    let number = text("number")?.ok_or_else(|| missing("source[number]"))?;
    let mut month_or_year = |name: &str, range: std::ops::RangeInclusive<i64>| {
        let Some(sent) = text(name)? else {
            return Ok(None);
        };
        let param = format!("source[{name}]");
        let value = parse_integer(&param, &sent)?;
        if !range.contains(&value) {
            return Err(ApiError::invalid_request(
                format!(
                    "Invalid {name}: must be between {} and {}",
                    range.start(),
                    range.end()
                ),
                Some(&param),
                Some(if name == "exp_month" {
                    "invalid_expiry_month"
                } else {
                    "invalid_expiry_year"
                }),
            ));
        }
        // Within the range checked above.
        Ok(Some(value as u32))
    };
    let exp_month = month_or_year("exp_month", 1..=12)?;
    let exp_year = month_or_year("exp_year", 2000..=2100)?;
    // Accepted as Stripe accepts it, and dropped: no test card checks it, and a security code
    // is never kept. Other card fields (name, address) are refused as unknown, not dropped.
    text("cvc")?;
    reject_nested_unknown("source", &fields)?;
    Ok(CardInput {
        number,
        exp_month,
        exp_year,
    })
}

fn reject_nested_unknown(parent: &str, leftover: &Params) -> Result<(), ApiError> {
    if leftover.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = leftover
        .keys()
        .map(|name| format!("{parent}[{name}]"))
        .collect();
    Err(ApiError::unknown_parameters(&names))
}

fn expect_text(name: &str, value: Param) -> Result<String, ApiError> {
    match value {
        Param::Text(text) => Ok(text),
        other => Err(invalid_string(name, &other)),
    }
}

fn invalid_string(name: &str, value: &Param) -> ApiError {
    ApiError::invalid_request(
        format!("Invalid string: {}", value.to_json()),
        Some(name),
        Some("parameter_invalid_string"),
    )
}

fn invalid_hash(name: &str, value: &Param) -> ApiError {
    ApiError::invalid_request(
        format!("Invalid hash: {}", value.to_json()),
        Some(name),
        Some("parameter_invalid_hash"),
    )
}

pub fn missing(name: &str) -> ApiError {
    RequestError::MissingParam {
        param: name.to_string(),
    }
    .into()
}
