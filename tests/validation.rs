//! Every validation rule of section 1 of the Stripe spec, with the exact parameter and wording.

mod common;

use chargeledger::domain::stripe::decide::{
    capture_charge, create_charge, create_customer, refund_charge, update_charge,
};
use chargeledger::domain::{AccountPolicy, Customer, Metadata, RequestError};
use chargeledger::{
    Address, CaptureCharge, CreateCharge, CreateCustomer, RefundCharge, ShippingInput, UpdateCharge,
};
use common::{captured_charge, context, uncaptured_charge};

fn refuse_update(command: UpdateCharge) -> RequestError {
    update_charge(
        &captured_charge(),
        &command,
        None,
        &AccountPolicy::default(),
    )
    .expect_err("update must be refused")
}

fn address() -> Address {
    Address {
        line1: Some("1 Main St".into()),
        country: Some("US".into()),
        ..Address::default()
    }
}

fn customer(id: &str) -> Customer {
    Customer {
        id: id.into(),
        object: "customer".into(),
        created: 0,
        description: None,
        email: None,
        livemode: false,
        metadata: Metadata::new(),
        name: None,
        cards: Vec::new(),
        default_card: None,
    }
}

#[test]
fn metadata_key_longer_than_40_characters_is_refused_with_stripes_wording() {
    let key = "k".repeat(41);
    let error = refuse_update(UpdateCharge::new().metadata_set(key.clone(), "v"));
    assert_eq!(error.param(), Some("metadata"));
    assert_eq!(
        error.to_string(),
        format!(
            "Metadata keys can have up to 40 characters, but you passed in a key that is 41 characters. Invalid key: {key}"
        )
    );
}

#[test]
fn metadata_key_of_exactly_40_characters_is_accepted() {
    let outcome = update_charge(
        &captured_charge(),
        &UpdateCharge::new().metadata_set("k".repeat(40), "v"),
        None,
        &AccountPolicy::default(),
    );
    assert!(matches!(outcome, Ok(Some(_))));
}

#[test]
fn metadata_value_longer_than_500_characters_is_refused() {
    let value = "v".repeat(801);
    let error = refuse_update(UpdateCharge::new().metadata_set("note", value.clone()));
    assert_eq!(error.param(), Some("metadata"));
    assert_eq!(
        error.to_string(),
        format!(
            "Metadata values can have up to 500 characters, but you passed in a value that is 801 characters. Invalid value: {value}"
        )
    );
}

#[test]
fn metadata_lengths_count_characters_not_bytes() {
    let outcome = update_charge(
        &captured_charge(),
        &UpdateCharge::new().metadata_set("é".repeat(40), "é".repeat(500)),
        None,
        &AccountPolicy::default(),
    );
    assert!(matches!(outcome, Ok(Some(_))));
}

#[test]
fn more_than_50_metadata_keys_are_refused_counting_existing_keys() {
    let mut command = CreateCharge::new(2000, "usd").source("tok_visa");
    for index in 0..50 {
        command = command.metadata_set(format!("key{index}"), "v");
    }
    let charge = common::charge_from(command);
    let error = update_charge(
        &charge,
        &UpdateCharge::new().metadata_set("one_more", "v"),
        None,
        &AccountPolicy::default(),
    )
    .expect_err("51 keys");
    assert_eq!(error.param(), Some("metadata"));
    assert_eq!(
        error.to_string(),
        "Metadata can have up to 50 keys, but you've set 51."
    );
    // Replacing a key keeps the count at 50 and is fine; so is unsetting one and adding one.
    let replace_and_swap = UpdateCharge::new()
        .metadata_set("key0", "new")
        .metadata_unset("key1")
        .metadata_set("fresh", "v");
    assert!(update_charge(&charge, &replace_and_swap, None, &AccountPolicy::default()).is_ok());
}

#[test]
fn metadata_keys_with_brackets_are_refused() {
    for key in ["a[b", "a]b"] {
        let error = refuse_update(UpdateCharge::new().metadata_set(key, "v"));
        assert_eq!(error.param(), Some("metadata"));
        assert_eq!(
            error.to_string(),
            format!("Metadata keys cannot contain '[' or ']'. Invalid key: {key}")
        );
    }
}

#[test]
fn shipping_without_name_names_shipping_name() {
    let input = ShippingInput {
        address: Some(address()),
        ..ShippingInput::default()
    };
    let error = refuse_update(UpdateCharge::new().shipping(input));
    assert_eq!(error.param(), Some("shipping[name]"));
    assert_eq!(error.code(), Some("parameter_missing"));
    assert_eq!(error.to_string(), "Missing required param: shipping[name].");
}

#[test]
fn shipping_without_address_names_shipping_address() {
    let input = ShippingInput {
        name: Some("Jenny".into()),
        ..ShippingInput::default()
    };
    let error = refuse_update(UpdateCharge::new().shipping(input));
    assert_eq!(error.param(), Some("shipping[address]"));
    assert_eq!(
        error.to_string(),
        "Missing required param: shipping[address]."
    );
}

#[test]
fn shipping_country_must_be_iso_3166_alpha_2() {
    for bad in ["USA", "us", "XX", "U"] {
        let mut address = address();
        address.country = Some(bad.into());
        let error =
            refuse_update(UpdateCharge::new().shipping(ShippingInput::new("Jenny", address)));
        assert_eq!(
            error.param(),
            Some("shipping[address][country]"),
            "country {bad}"
        );
    }
    let mut good = address();
    good.country = Some("TH".into());
    let outcome = update_charge(
        &captured_charge(),
        &UpdateCharge::new().shipping(ShippingInput::new("Jenny", good)),
        None,
        &AccountPolicy::default(),
    );
    assert!(matches!(outcome, Ok(Some(_))));
}

#[test]
fn shipping_parts_longer_than_5000_characters_name_the_part() {
    let long = "x".repeat(5001);
    let error = refuse_update(
        UpdateCharge::new().shipping(ShippingInput::new("Jenny", address()).carrier(long.clone())),
    );
    assert_eq!(error.param(), Some("shipping[carrier]"));
    let mut long_city = address();
    long_city.city = Some(long);
    let error = refuse_update(UpdateCharge::new().shipping(ShippingInput::new("Jenny", long_city)));
    assert_eq!(error.param(), Some("shipping[address][city]"));
}

#[test]
fn fraud_user_report_must_be_empty_fraudulent_or_safe() {
    let error = refuse_update(UpdateCharge::new().fraud_user_report("maybe"));
    assert_eq!(error.param(), Some("fraud_details[user_report]"));
    assert_eq!(
        error.to_string(),
        "Invalid fraud_details[user_report]: must be one of fraudulent or safe"
    );
    let missing = UpdateCharge {
        fraud_details_user_report: Some(None),
        ..UpdateCharge::default()
    };
    let error = refuse_update(missing);
    assert_eq!(error.param(), Some("fraud_details[user_report]"));
    assert_eq!(
        error.to_string(),
        "Missing required param: fraud_details[user_report]."
    );
}

#[test]
fn receipt_email_must_be_a_valid_address() {
    for bad in ["not-an-email", "a@b", "@example.com", "a b@example.com"] {
        let error = refuse_update(UpdateCharge::new().receipt_email(bad));
        assert_eq!(error.param(), Some("receipt_email"), "email {bad}");
        assert_eq!(error.code(), Some("email_invalid"));
        assert_eq!(error.to_string(), format!("Invalid email address: {bad}"));
    }
}

#[test]
fn description_may_have_40000_characters_but_not_more() {
    assert!(
        update_charge(
            &captured_charge(),
            &UpdateCharge::new().description("d".repeat(40000)),
            None,
            &AccountPolicy::default()
        )
        .is_ok()
    );
    let error = refuse_update(UpdateCharge::new().description("d".repeat(40001)));
    assert_eq!(error.param(), Some("description"));
}

#[test]
fn customer_and_transfer_group_are_limited_to_5000_characters() {
    assert_eq!(
        refuse_update(UpdateCharge::new().customer("c".repeat(5001))).param(),
        Some("customer")
    );
    assert_eq!(
        refuse_update(UpdateCharge::new().transfer_group("t".repeat(5001))).param(),
        Some("transfer_group")
    );
}

#[test]
fn customer_must_exist() {
    let error = refuse_update(UpdateCharge::new().customer("cus_missing"));
    assert_eq!(error.param(), Some("customer"));
    assert_eq!(error.code(), Some("resource_missing"));
    assert_eq!(error.to_string(), "No such customer: 'cus_missing'");
}

#[test]
fn customer_may_only_be_set_when_the_charge_has_none() {
    let first = customer("cus_first");
    let decision = update_charge(
        &captured_charge(),
        &UpdateCharge::new().customer("cus_first"),
        Some(&first),
        &AccountPolicy::default(),
    )
    .expect("set customer")
    .expect("changes");
    let charge = match chargeledger::domain::apply(
        Some(chargeledger::domain::Projection::Charge(Box::new(
            captured_charge(),
        ))),
        &decision,
    ) {
        Ok(chargeledger::domain::Projection::Charge(charge)) => *charge,
        other => panic!("{other:?}"),
    };
    let second = customer("cus_second");
    let error = update_charge(
        &charge,
        &UpdateCharge::new().customer("cus_second"),
        Some(&second),
        &AccountPolicy::default(),
    )
    .expect_err("already set");
    assert_eq!(error.param(), Some("customer"));
    assert!(matches!(error, RequestError::CustomerAlreadySet { .. }));
    // Naming the customer it already has changes nothing.
    let same = update_charge(
        &charge,
        &UpdateCharge::new().customer("cus_first"),
        Some(&first),
        &AccountPolicy::default(),
    );
    assert_eq!(same, Ok(None));
}

#[test]
fn transfer_group_may_only_be_provided_while_unset() {
    let charge = common::charge_from(
        CreateCharge::new(2000, "usd")
            .source("tok_visa")
            .transfer_group("group_a"),
    );
    let error = update_charge(
        &charge,
        &UpdateCharge::new().transfer_group("group_b"),
        None,
        &AccountPolicy::default(),
    )
    .expect_err("already set");
    assert_eq!(error.param(), Some("transfer_group"));
    assert!(matches!(
        error,
        RequestError::TransferGroupAlreadySet { .. }
    ));
    assert_eq!(
        update_charge(
            &charge,
            &UpdateCharge::new().transfer_group("group_a"),
            None,
            &AccountPolicy::default()
        ),
        Ok(None)
    );
}

#[test]
fn an_update_that_changes_nothing_decides_no_event() {
    let charge = common::charge_from(
        CreateCharge::new(2000, "usd")
            .source("tok_visa")
            .description("same")
            .metadata_set("a", "1"),
    );
    let same = UpdateCharge::new()
        .description("same")
        .metadata_set("a", "1")
        .metadata_unset("absent");
    assert_eq!(
        update_charge(&charge, &same, None, &AccountPolicy::default()),
        Ok(None)
    );
    assert_eq!(
        update_charge(
            &charge,
            &UpdateCharge::new(),
            None,
            &AccountPolicy::default()
        ),
        Ok(None)
    );
}

#[test]
fn freeze_after_capture_refuses_updates_to_captured_charges_only() {
    let frozen = AccountPolicy {
        freeze_after_capture: true,
    };
    let error = update_charge(
        &captured_charge(),
        &UpdateCharge::new().description("x"),
        None,
        &frozen,
    )
    .expect_err("frozen");
    assert!(matches!(
        error,
        RequestError::ChargeFrozenAfterCapture { .. }
    ));
    assert_eq!(error.code(), Some("charge_frozen_after_capture"));
    assert!(matches!(
        update_charge(
            &uncaptured_charge(),
            &UpdateCharge::new().description("x"),
            None,
            &frozen
        ),
        Ok(Some(_))
    ));
}

#[test]
fn capture_amount_may_not_exceed_the_authorized_amount() {
    let error = capture_charge(
        &uncaptured_charge(),
        &CaptureCharge::partial(2001),
        &context(),
    )
    .expect_err("too much");
    assert_eq!(error.param(), Some("amount"));
    assert_eq!(error.code(), Some("amount_too_large"));
    assert!(
        capture_charge(
            &uncaptured_charge(),
            &CaptureCharge::partial(2000),
            &context()
        )
        .is_ok()
    );
    let error = capture_charge(&uncaptured_charge(), &CaptureCharge::partial(0), &context())
        .expect_err("zero");
    assert_eq!(error.param(), Some("amount"));
}

#[test]
fn a_charge_cannot_be_captured_twice() {
    let error =
        capture_charge(&captured_charge(), &CaptureCharge::full(), &context()).expect_err("twice");
    assert_eq!(error.code(), Some("charge_already_captured"));
    assert_eq!(
        error.to_string(),
        format!("Charge {} has already been captured.", captured_charge().id)
    );
}

#[test]
fn refunds_may_not_exceed_what_was_captured() {
    let error = refund_charge(&captured_charge(), &RefundCharge::partial(2001), &context())
        .expect_err("too much");
    assert_eq!(error.param(), Some("amount"));
    assert_eq!(error.code(), Some("amount_too_large"));
    assert!(refund_charge(&captured_charge(), &RefundCharge::partial(2000), &context()).is_ok());
    // An uncaptured charge can only be released in full.
    let error = refund_charge(
        &uncaptured_charge(),
        &RefundCharge::partial(100),
        &context(),
    )
    .expect_err("partial");
    assert_eq!(error.param(), Some("amount"));
    assert!(refund_charge(&uncaptured_charge(), &RefundCharge::full(), &context()).is_ok());
    let error = refund_charge(
        &captured_charge(),
        &RefundCharge {
            reason: Some("bored".into()),
            ..RefundCharge::full()
        },
        &context(),
    )
    .expect_err("reason");
    assert_eq!(error.param(), Some("reason"));
}

#[test]
fn creation_rules_name_their_parameters() {
    let cases: Vec<(CreateCharge, &str, &str)> = vec![
        (
            CreateCharge::new(2000, "usd"),
            "source",
            "Must provide source or customer.",
        ),
        (
            CreateCharge::new(0, "usd").source("tok_visa"),
            "amount",
            "This value must be greater than or equal to 1.",
        ),
        (
            CreateCharge::new(49, "usd").source("tok_visa"),
            "amount",
            "Amount must be at least 0.50 usd",
        ),
        (
            CreateCharge::new(100_000_000, "usd").source("tok_visa"),
            "amount",
            "Amount must be no more than 99999999",
        ),
        (
            CreateCharge::new(2000, "zzz").source("tok_visa"),
            "currency",
            "",
        ),
        (
            CreateCharge::new(2000, "usd").source("tok_nope"),
            "source",
            "No such token: 'tok_nope'",
        ),
        (
            CreateCharge::new(2000, "usd")
                .source("tok_visa")
                .statement_descriptor("x".repeat(23)),
            "statement_descriptor",
            "",
        ),
        (
            CreateCharge::new(2000, "usd")
                .source("tok_visa")
                .statement_descriptor_suffix("x".repeat(23)),
            "statement_descriptor_suffix",
            "",
        ),
        (
            CreateCharge::new(2000, "usd")
                .source("tok_visa")
                .receipt_email("nope"),
            "receipt_email",
            "Invalid email address: nope",
        ),
        (
            CreateCharge::new(2000, "usd").customer("cus_missing"),
            "customer",
            "No such customer: 'cus_missing'",
        ),
    ];
    for (command, param, message) in cases {
        let error = create_charge(&command, None, &context()).expect_err("refused");
        assert_eq!(error.param(), Some(param), "{command:?}");
        if !message.is_empty() {
            assert_eq!(error.to_string(), message);
        }
    }
    // A decline is no refusal: the attempt is recorded as a failed charge.
    let declined = create_charge(
        &CreateCharge::new(2000, "usd").source("tok_chargeDeclined"),
        None,
        &context(),
    )
    .expect("a decline is decided, not refused");
    let chargeledger::EventPayload::ChargeFailed(failed) = declined else {
        panic!("expected charge.failed, got {declined:?}");
    };
    assert_eq!(failed.failure.code, "card_declined");
    assert_eq!(
        failed.failure.decline_code.as_deref(),
        Some("generic_decline")
    );
    assert!(!failed.attempt.captured);
    assert_eq!(failed.attempt.balance_transaction, None);
}

#[test]
fn currency_is_normalized_to_lower_case_and_zero_decimal_minimums_read_plainly() {
    let charge = common::charge_from(CreateCharge::new(2000, "EUR").source("tok_visa"));
    assert_eq!(charge.currency, "eur");
    let error = create_charge(
        &CreateCharge::new(10, "jpy").source("tok_visa"),
        None,
        &context(),
    )
    .expect_err("below");
    assert_eq!(error.to_string(), "Amount must be at least 50 jpy");
}

#[test]
fn customer_email_is_validated() {
    let error =
        create_customer(&CreateCustomer::new().email("bad"), &context()).expect_err("bad email");
    assert_eq!(error.param(), Some("email"));
}
