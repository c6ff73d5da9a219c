//! The fuzz targets: bytes in, no panic out.
//!
//! One file, two users: the AFL binaries in `fuzz/src/bin/` include it with `#[path]`, and so
//! does `tests/fuzz_corpus.rs`, which replays every file of `fuzz/corpus/<target>/` through
//! [`run`] on each `cargo test`. A target returns normally for every input, refused or not; a
//! panic (or an abort, a hang, a stack overflow) is the finding.

use chargeledger::domain::apply::apply_to_charge;
use chargeledger::domain::omise::UpdateOmiseCharge;
use chargeledger::domain::stripe::decide;
use chargeledger::domain::{
    AccountPolicy, ChargeState, CreateCharge, CreateCustomer, Customer, DecisionContext, FreshIds,
    Projection, UpdateCharge, apply,
};
use chargeledger::server::form;
use chargeledger::server::omise::body::OmiseParams;
use chargeledger::server::stripe::params::{Form, UPDATE_CHARGE_PARAMETERS};

/// A target: bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target by the name of its binary and of its corpus folder.
pub const TARGETS: [(&str, Target); 3] = [
    ("form", form_parse),
    ("omise_body", omise_body),
    ("update", update),
];

/// Run the target named `name` on `data`. Unknown names panic: that is a typo in the caller.
pub fn run(name: &str, data: &[u8]) {
    match TARGETS.iter().find(|(target, _)| *target == name) {
        Some((_, target)) => target(data),
        None => panic!("no fuzz target named {name}"),
    }
}

/// `form`: the Rack-style form and query parser, on any bytes.
pub fn form_parse(data: &[u8]) {
    let _ = form::parse(data);
}

/// `omise_body`: the Omise request reader. The first line of the input is the content-type
/// selector (its first byte) and the query string (the rest of the line); everything after the
/// first `\n` is the body. Selectors: `n` none, `j` JSON, `f` form, `t` text/plain,
/// `J` `Application/JSON; charset=utf-8`; any other byte picks one of these by its value.
pub fn omise_body(data: &[u8]) {
    let (content_type, query, body) = split_omise_input(data);
    let query = query.map(String::from_utf8_lossy);
    let Ok(params) = OmiseParams::parse(content_type, query.as_deref(), body) else {
        return;
    };
    read_omise_params(&params);
    if let Ok(Some(card)) = params.object("card") {
        read_omise_params(&card);
    }
    if let Ok(Some(fee)) = params.object("platform_fee") {
        read_omise_params(&fee);
    }
}

/// `update`: a Stripe charge update read from a form as `POST /v1/charges/{id}` reads it, then
/// decided against a captured and an uncaptured charge, under both account policies; and the
/// same bytes as an Omise `PATCH /charges/{id}` body (JSON when it starts with `{`, else a form).
/// An accepted update must apply to the charge it was decided on, and deciding it again on the
/// result must change nothing.
pub fn update(data: &[u8]) {
    let charges = [
        charge_from(CreateCharge::new(2000, "usd").source("tok_visa")),
        charge_from(
            CreateCharge::new(2000, "usd")
                .source("tok_visa")
                .capture(false),
        ),
    ];
    let customer = customer();
    let policies = [
        AccountPolicy::default(),
        AccountPolicy {
            freeze_after_capture: true,
        },
    ];

    if let Some(command) = stripe_update(data) {
        for charge in &charges {
            for policy in &policies {
                for referenced in [None, Some(&customer)] {
                    let decided = decide::update_charge(charge, &command, referenced, policy);
                    if let Ok(Some(payload)) = decided {
                        let updated = apply_to_charge(charge.clone(), &payload)
                            .expect("an accepted Stripe update applies to its charge");
                        let again = decide::update_charge(&updated, &command, referenced, policy);
                        assert!(
                            matches!(again, Ok(None)),
                            "the same Stripe update decided again changes nothing: {again:?}"
                        );
                    }
                }
            }
        }
    }

    if let Some(command) = omise_update(data) {
        for charge in &charges {
            for policy in &policies {
                let decided = chargeledger::domain::omise::update_charge(charge, &command, policy);
                if let Ok(Some(payload)) = decided {
                    let updated = apply_to_charge(charge.clone(), &payload)
                        .expect("an accepted Omise update applies to its charge");
                    let again =
                        chargeledger::domain::omise::update_charge(&updated, &command, policy);
                    assert!(
                        matches!(again, Ok(None)),
                        "the same Omise update decided again changes nothing: {again:?}"
                    );
                }
            }
        }
    }
}

/// `(content type, query, body)` from an `omise_body` input.
fn split_omise_input(data: &[u8]) -> (Option<&'static str>, Option<&[u8]>, &[u8]) {
    const CONTENT_TYPES: [Option<&str>; 5] = [
        None,
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("Application/JSON; charset=utf-8"),
    ];
    let Some((&selector, rest)) = data.split_first() else {
        return (None, None, &[]);
    };
    let content_type = match selector {
        b'n' => CONTENT_TYPES[0],
        b'j' => CONTENT_TYPES[1],
        b'f' => CONTENT_TYPES[2],
        b't' => CONTENT_TYPES[3],
        b'J' => CONTENT_TYPES[4],
        other => CONTENT_TYPES[usize::from(other) % CONTENT_TYPES.len()],
    };
    let (query, body) = match rest.iter().position(|&byte| byte == b'\n') {
        Some(end) => (&rest[..end], &rest[end + 1..]),
        None => (rest, &[][..]),
    };
    let query = (!query.is_empty()).then_some(query);
    (content_type, query, body)
}

/// Every typed reader, on the names the Omise handlers read.
fn read_omise_params(params: &OmiseParams) {
    for name in [
        "amount",
        "currency",
        "card",
        "customer",
        "description",
        "capture",
        "capture_amount",
        "metadata",
        "limit",
        "offset",
        "order",
        "from",
        "to",
        "name",
        "number",
        "expiration_month",
        "expiration_year",
        "security_code",
    ] {
        let _ = params.string(name);
        let _ = params.integer(name);
        let _ = params.boolean(name);
        let _ = params.object(name);
        let _ = params.time(name);
    }
    let _ = params.metadata();
}

/// The update as `update_charge` in `src/server/stripe.rs` reads it; `None` when it refuses.
fn stripe_update(data: &[u8]) -> Option<UpdateCharge> {
    let params = form::parse(data).ok()?;
    let mut form = Form::new(params);
    // The handler refuses unknown names first; read on regardless, to reach the rest.
    let _ = form.reject_unknown(&UPDATE_CHARGE_PARAMETERS);
    let _ = form.expand(&["customer", "application", "review", "transfer"]);
    form.update_charge().ok()
}

/// The update as the Omise `PATCH /charges/{id}` handler reads it; `None` when it refuses.
fn omise_update(data: &[u8]) -> Option<UpdateOmiseCharge> {
    let params = OmiseParams::parse(None, None, data).ok()?;
    Some(UpdateOmiseCharge {
        description: params.string("description").ok()?,
        metadata: params.metadata().ok()?,
    })
}

fn context() -> DecisionContext {
    DecisionContext {
        now_unix: 1_795_000_000,
        livemode: false,
        ids: FreshIds {
            charge: "ch_fuzz0000000000000000001".into(),
            customer: "cus_fuzz000000001".into(),
            payment_method: "card_fuzz0000000000000001".into(),
            balance_transaction: "txn_fuzz0000000000000001".into(),
            refund: "re_fuzz00000000000000001".into(),
        },
    }
}

fn charge_from(command: CreateCharge) -> ChargeState {
    let payload = decide::create_charge(&command, None, &context()).expect("a valid creation");
    match apply(None, &payload).expect("a creation folds") {
        Projection::Charge(charge) => *charge,
        other => panic!("not a charge: {other:?}"),
    }
}

/// The customer `customer=cus_fuzz000000001` names.
fn customer() -> Customer {
    let payload = decide::create_customer(
        &CreateCustomer::new().email("jenny@example.com"),
        &context(),
    )
    .expect("a valid customer");
    match apply(None, &payload).expect("a customer folds") {
        Projection::Customer(customer) => customer,
        other => panic!("not a customer: {other:?}"),
    }
}
