//! Search queries over customers (the simplest projection), plans and index keys.

use super::*;
use crate::domain::{Customer, Projection};

fn customer(email: &str, name: &str, metadata: &[(&str, &str)]) -> Customer {
    Customer {
        id: "cus_1".into(),
        object: "customer".into(),
        created: 1_700_000_000,
        description: None,
        email: Some(email.into()),
        livemode: false,
        metadata: metadata
            .iter()
            .map(|(key, value)| (key.to_string(), serde_json::json!(value)))
            .collect(),
        name: Some(name.into()),
        cards: Vec::new(),
        default_card: None,
    }
}

fn matches(text: &str, object: &Customer) -> bool {
    Query::parse(Resource::Customers, text)
        .expect(text)
        .matches(object)
}

#[test]
fn string_fields_match_word_sequences_and_substrings_case_insensitively() {
    let amy = customer("Amy@RocketRides.io", "Amy Tan Lee", &[("tier", "Gold")]);
    assert!(matches("email:\"amy@rocketrides.io\"", &amy));
    assert!(matches("name:'tan lee'", &amy));
    assert!(!matches("name:'amy lee'", &amy));
    assert!(matches("email~\"rocket\"", &amy));
    assert!(!matches("email~\"rockets\"", &amy));
    assert!(matches("metadata['tier']:'gold'", &amy));
    assert!(!matches(
        "-metadata['tier']:null",
        &customer("a@b.c", "x", &[])
    ));
    assert!(matches("-metadata['tier']:null", &amy));
    assert!(matches("phone:null AND created>=1700000000", &amy));
    assert!(matches("name:'nobody' OR created<1700000001", &amy));
    assert!(!matches("name:'nobody' created<1700000001", &amy));
}

#[test]
fn types_decide_which_operators_are_allowed() {
    for (text, expected) in [
        ("email>'a'", "works only on numeric fields"),
        ("email~'am'", "at least 3 characters"),
        ("created~'170'", "works only on string fields"),
        ("created:'soon'", "is not an integer"),
        ("amount>5", "not a field that customer search supports"),
        ("created>null", "`null` can only be used with `:`"),
    ] {
        let error = Query::parse(Resource::Customers, text).expect_err(text);
        assert!(error.0.contains(expected), "{text}: {}", error.0);
    }
    let error = Query::parse(Resource::Charges, "disputed:'maybe'").expect_err("disputed");
    assert!(error.0.contains("\"true\" or \"false\""), "{}", error.0);
}

#[test]
fn plans_use_the_most_selective_lookup_and_scan_when_a_clause_has_none() {
    let plan = |text: &str| Query::parse(Resource::Charges, text).expect(text).plan();
    let metadata = keys::token_key(Resource::Charges, &Field::Metadata("order".into()), "a1");
    assert_eq!(
        plan("status:'succeeded' metadata['order']:'A1'"),
        Plan::Index(vec![Lookup::Exact(metadata.clone())])
    );
    assert_eq!(plan("-status:'failed'"), Plan::Scan);
    assert_eq!(plan("created>5"), Plan::Scan);
    assert_eq!(plan("metadata['order']:'a1' OR created>5"), Plan::Scan);
    let Plan::Index(lookups) = plan("metadata['order']:'a1' OR amount>=100") else {
        panic!("an OR of indexed clauses is looked up");
    };
    assert_eq!(lookups.len(), 2);
    // Fields never recorded here: a value can never match.
    assert_eq!(plan("disputed:'TRUE'"), Plan::Index(Vec::new()));
    assert_eq!(
        plan("billing_details.address.postal_code:'12345' status:'succeeded'"),
        Plan::Index(Vec::new())
    );
    assert_eq!(
        plan("payment_method_details.card_present.last4:'4242' OR metadata['order']:'a1'"),
        Plan::Index(vec![Lookup::Exact(metadata.clone())])
    );
    assert_eq!(
        plan("metadata['order']:'a1' OR metadata['order']:'A1'"),
        Plan::Index(vec![Lookup::Exact(metadata.clone())])
    );
    assert_eq!(plan("billing_details.address.postal_code:null"), Plan::Scan);
    // A contradiction looks up nothing.
    let Plan::Index(lookups) = plan("amount>10 amount<5") else {
        panic!("an amount range is looked up");
    };
    let [Lookup::Range { from, to }] = lookups.as_slice() else {
        panic!("one range: {lookups:?}");
    };
    assert!(from >= to);
}

#[test]
fn an_amount_range_spans_exactly_the_keys_of_its_amounts() {
    let plan = Query::parse(Resource::Charges, "amount>100 amount<=5000")
        .expect("a query")
        .plan();
    let Plan::Index(lookups) = plan else {
        panic!("an amount range is looked up");
    };
    let [Lookup::Range { from, to }] = lookups.as_slice() else {
        panic!("one range: {lookups:?}");
    };
    let entry = |amount: i64, sequence: u64| {
        let mut key = keys::number_key(Resource::Charges, &Field::Amount, amount);
        key.extend_from_slice(&sequence.to_be_bytes());
        key
    };
    let inside = |key: &Vec<u8>| from <= key && key < to;
    assert!(!inside(&entry(100, u64::MAX)));
    assert!(inside(&entry(101, 0)));
    // Both comparisons narrow the one range.
    assert!(inside(&entry(5000, u64::MAX)));
    assert!(!inside(&entry(5001, 0)));
    assert!(!inside(&entry(i64::MAX, u64::MAX)));
    assert!(!inside(&entry(-5, 7)));
    let below = Query::parse(Resource::Charges, "amount<0")
        .expect("a query")
        .plan();
    let Plan::Index(lookups) = below else {
        panic!("a range");
    };
    let [Lookup::Range { from, to }] = lookups.as_slice() else {
        panic!("one range");
    };
    assert!(from <= &entry(i64::MIN, 0) && &entry(-1, u64::MAX) < to);
    assert!(&entry(0, 0) >= to);
}

#[test]
fn key_changes_name_what_a_write_adds_and_removes() {
    let before = Projection::Customer(customer("a@b.c", "A", &[("tier", "gold")]));
    let after = Projection::Customer(customer("a@b.c", "A", &[("tier", "silver")]));
    let changes = key_changes(Some(&before), &after);
    let key =
        |value: &str| keys::token_key(Resource::Customers, &Field::Metadata("tier".into()), value);
    assert_eq!(changes.added, vec![key("silver")]);
    assert_eq!(changes.removed, vec![key("gold")]);
    assert_eq!(key_changes(None, &before).added, vec![key("gold")]);
    assert_eq!(
        key_changes(Some(&before), &before),
        SearchKeyChanges::default()
    );
}
