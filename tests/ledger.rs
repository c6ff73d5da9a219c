//! The ledger through its public API: persistence, idempotency, isolation, history, time travel, feeds.

mod common;

use std::time::Duration;

use chargeledger::clock::{Clock, ManualClock};
use chargeledger::domain::{Lifecycle, Money, RequestError};
use chargeledger::ledger::LedgerOptions;
use chargeledger::ledger::Refusal;
use chargeledger::{
    AccountPolicy, CaptureCharge, CreateCharge, CreateCustomer, Ledger, LedgerError, ListCharges,
    PageCursor, RefundCharge, RequestMeta, UpdateCharge,
};
use common::{ACCOUNT, OTHER_ACCOUNT, create_test_charge, open_ledger};
use time::OffsetDateTime;

async fn head(ledger: &Ledger) -> u64 {
    ledger
        .store()
        .head()
        .await
        .expect("head")
        .map_or(0, |head| head.sequence)
}

async fn charges_and_their_history_survive_a_reopen() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    let updated = ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().metadata_set("shipping", "express"),
            RequestMeta::library(),
        )
        .await
        .expect("update");
    ledger.close().await.expect("close");
    drop(ledger);

    let reopened = open_ledger(&directory).await;
    let loaded = reopened.get_charge(ACCOUNT, &charge.id).await.expect("get");
    assert_eq!(loaded, updated);
    assert_eq!(loaded.metadata["shipping"], "express");
    let history = reopened
        .history(ACCOUNT, &charge.id)
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].event_type, "charge.updated");
    assert_eq!(history[1].changes[0].field, "metadata[shipping]");
    assert_eq!(history[1].changes[0].previous, serde_json::Value::Null);
    assert_eq!(history[1].changes[0].current, "express");
}

async fn a_rejected_update_appends_nothing_and_changes_nothing() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    let before = head(&ledger).await;
    let error = ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new()
                .description("fine")
                .receipt_email("broken"),
            RequestMeta::library(),
        )
        .await
        .expect_err("invalid email");
    assert!(matches!(
        error,
        LedgerError::Refused(Refusal::Request(RequestError::InvalidEmail { .. }))
    ));
    assert_eq!(head(&ledger).await, before);
    assert_eq!(
        ledger
            .get_charge(ACCOUNT, &charge.id)
            .await
            .expect("get")
            .description,
        None
    );
}

async fn an_update_that_changes_nothing_appends_nothing() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    let before = head(&ledger).await;
    let same = ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().metadata_unset("absent"),
            RequestMeta::library(),
        )
        .await
        .expect("no-op update");
    assert_eq!(same, charge);
    assert_eq!(head(&ledger).await, before);
}

async fn metadata_merges_unsets_one_key_and_unsets_all() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    let update = |command: UpdateCharge| {
        ledger.update_charge(ACCOUNT, &charge.id, command, RequestMeta::library())
    };
    update(
        UpdateCharge::new()
            .metadata_set("a", "1")
            .metadata_set("b", "2"),
    )
    .await
    .expect("set");
    let merged = update(UpdateCharge::new().metadata_set("c", "3"))
        .await
        .expect("merge");
    assert_eq!(merged.metadata.len(), 3);
    let one_gone = update(UpdateCharge::new().metadata_unset("a"))
        .await
        .expect("unset one");
    assert_eq!(one_gone.metadata.keys().collect::<Vec<_>>(), ["b", "c"]);
    let all_gone = update(UpdateCharge::new().metadata_unset_all())
        .await
        .expect("unset all");
    assert!(all_gone.metadata.is_empty());
    assert_eq!(
        serde_json::to_value(&all_gone).expect("json")["metadata"],
        serde_json::json!({})
    );
}

async fn accounts_never_see_each_others_objects() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    let customer = ledger
        .create_customer(
            ACCOUNT,
            CreateCustomer::new().email("a@example.com"),
            RequestMeta::library(),
        )
        .await
        .expect("customer");

    let error = ledger
        .get_charge(OTHER_ACCOUNT, &charge.id)
        .await
        .expect_err("isolated");
    assert_eq!(
        error.to_string(),
        format!("No such charge: '{}'", charge.id)
    );
    let error = ledger
        .update_charge(
            OTHER_ACCOUNT,
            &charge.id,
            UpdateCharge::new().description("x"),
            RequestMeta::library(),
        )
        .await
        .expect_err("isolated update");
    assert!(matches!(
        error,
        LedgerError::Refused(Refusal::Request(RequestError::NoSuchCharge { .. }))
    ));
    assert!(ledger.history(OTHER_ACCOUNT, &charge.id).await.is_err());
    assert!(
        ledger
            .get_customer(OTHER_ACCOUNT, &customer.id)
            .await
            .is_err()
    );
    // Another account's customer cannot be attached to a charge either.
    let own = create_test_charge(&ledger, OTHER_ACCOUNT).await;
    let error = ledger
        .update_charge(
            OTHER_ACCOUNT,
            &own.id,
            UpdateCharge::new().customer(&customer.id),
            RequestMeta::library(),
        )
        .await
        .expect_err("foreign customer");
    assert!(matches!(
        error,
        LedgerError::Refused(Refusal::Request(RequestError::NoSuchCustomer { .. }))
    ));
    let page = ledger
        .list_charges(OTHER_ACCOUNT, &ListCharges::default())
        .await
        .expect("list");
    assert_eq!(
        page.data
            .iter()
            .map(|charge| &charge.id)
            .collect::<Vec<_>>(),
        [&own.id]
    );
}

async fn an_idempotency_key_never_applies_twice() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    let request = RequestMeta::library().with_idempotency_key("retry-me");
    let command = UpdateCharge::new().metadata_set("attempt", "1");
    let first = ledger
        .update_charge(ACCOUNT, &charge.id, command.clone(), request.clone())
        .await
        .expect("first");
    let after_first = head(&ledger).await;
    // A concurrent change in between: the retry must still answer the first result.
    ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().description("later"),
            RequestMeta::library(),
        )
        .await
        .expect("other update");
    let retried = ledger
        .update_charge(ACCOUNT, &charge.id, command, request.clone())
        .await
        .expect("retry");
    assert_eq!(retried, first);
    assert_eq!(head(&ledger).await, after_first + 1);

    let error = ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().metadata_set("attempt", "2"),
            request,
        )
        .await
        .expect_err("other parameters");
    assert_eq!(
        error.to_string(),
        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'retry-me' if you meant to execute a different request."
    );
    // Keys are scoped per account.
    let other = create_test_charge(&ledger, OTHER_ACCOUNT).await;
    ledger
        .update_charge(
            OTHER_ACCOUNT,
            &other.id,
            UpdateCharge::new().metadata_set("attempt", "1"),
            RequestMeta::library().with_idempotency_key("retry-me"),
        )
        .await
        .expect("same key, other account");
}

async fn concurrent_creations_with_one_idempotency_key_create_one_charge() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            ledger
                .create_charge(
                    ACCOUNT,
                    CreateCharge::new(5000, "usd").source("tok_visa"),
                    RequestMeta::library().with_idempotency_key("one-order"),
                )
                .await
                .expect("create")
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("task").id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry must return the same charge");
    let page = ledger
        .list_charges(ACCOUNT, &ListCharges::default())
        .await
        .expect("list");
    assert_eq!(page.data.len(), 1);
    assert_eq!(head(&ledger).await, 1);
}

async fn a_validation_failure_does_not_consume_the_idempotency_key() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    let request = RequestMeta::library().with_idempotency_key("fix-and-retry");
    ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().receipt_email("bad"),
            request.clone(),
        )
        .await
        .expect_err("invalid");
    let fixed = ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().receipt_email("good@example.com"),
            request,
        )
        .await
        .expect("the corrected request is new");
    assert_eq!(fixed.receipt_email.as_deref(), Some("good@example.com"));
}

async fn freeze_after_capture_is_per_account_and_audited() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    ledger
        .set_account_policy(
            ACCOUNT,
            AccountPolicy {
                freeze_after_capture: true,
            },
            RequestMeta::cli(),
        )
        .await
        .expect("policy");
    let error = ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().description("late"),
            RequestMeta::library(),
        )
        .await
        .expect_err("frozen");
    assert!(matches!(
        error,
        LedgerError::Refused(Refusal::Request(
            RequestError::ChargeFrozenAfterCapture { .. }
        ))
    ));
    let other = create_test_charge(&ledger, OTHER_ACCOUNT).await;
    ledger
        .update_charge(
            OTHER_ACCOUNT,
            &other.id,
            UpdateCharge::new().description("fine"),
            RequestMeta::library(),
        )
        .await
        .expect("other account keeps the default");
    let policy_events = ledger.events_after(0, 100).await.expect("events");
    assert!(
        policy_events.iter().any(
            |event| event.body.payload.event_type() == "account.policy_set"
                && event.body.request.actor == "cli"
        )
    );
}

async fn capture_and_refund_move_the_amounts_like_stripe() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = ledger
        .create_charge(
            ACCOUNT,
            CreateCharge::new(1000, "usd")
                .source("tok_amex")
                .capture(false),
            RequestMeta::library(),
        )
        .await
        .expect("authorize");
    assert_eq!(charge.lifecycle, Lifecycle::Authorized);
    assert_eq!(charge.money.captured, 0);
    let captured = ledger
        .capture_charge(
            ACCOUNT,
            &charge.id,
            CaptureCharge::partial(600),
            RequestMeta::library(),
        )
        .await
        .expect("capture");
    assert_eq!(captured.lifecycle, Lifecycle::Captured);
    assert_eq!(
        captured.money,
        Money {
            authorized: 1000,
            captured: 600,
            refunded: 0,
            released: 400
        }
    );
    // Stripe shows the released remainder as a refund.
    assert_eq!(captured.refunds.len(), 1);
    assert_eq!(captured.refunds[0].amount, 400);
    let error = ledger
        .capture_charge(
            ACCOUNT,
            &charge.id,
            CaptureCharge::full(),
            RequestMeta::library(),
        )
        .await
        .expect_err("twice");
    assert_eq!(
        error.to_string(),
        format!("Charge {} has already been captured.", charge.id)
    );
    let refunded = ledger
        .refund_charge(
            ACCOUNT,
            &charge.id,
            RefundCharge::partial(250),
            RequestMeta::library(),
        )
        .await
        .expect("refund");
    assert_eq!(refunded.charge.money.refunded, 250);
    assert_eq!(refunded.charge.lifecycle, Lifecycle::Captured);
    assert_eq!(refunded.charge.refunds[1].id, refunded.refund.id);
    ledger
        .refund_charge(
            ACCOUNT,
            &charge.id,
            RefundCharge::partial(351),
            RequestMeta::library(),
        )
        .await
        .expect_err("more than captured");
    let rest = ledger
        .refund_charge(
            ACCOUNT,
            &charge.id,
            RefundCharge::full(),
            RequestMeta::library(),
        )
        .await
        .expect("rest");
    assert_eq!(rest.refund.amount, 350);
    assert_eq!(rest.charge.lifecycle, Lifecycle::Refunded);
    assert_eq!(rest.charge.money.refunded, 600);
    assert_eq!(rest.charge.refunds.len(), 3);
}

/// A ledger whose decisions and recorded times follow a clock the test moves by hand.
async fn open_ledger_on_manual_clock(
    directory: &tempfile::TempDir,
) -> (Ledger, std::sync::Arc<ManualClock>) {
    let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a moment");
    let clock = std::sync::Arc::new(ManualClock::starting_at(start));
    let options = LedgerOptions {
        clock: clock.clone(),
        ..LedgerOptions::default()
    };
    let ledger = common::backend::open_ledger_at(&directory.path().join("data"), options).await;
    (ledger, clock)
}

async fn time_travel_by_version_and_by_moment() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (ledger, clock) = open_ledger_on_manual_clock(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    let mut moments = vec![clock.now()];
    for description in ["one", "two", "three"] {
        clock.advance(Duration::from_secs(1));
        ledger
            .update_charge(
                ACCOUNT,
                &charge.id,
                UpdateCharge::new().description(description),
                RequestMeta::library(),
            )
            .await
            .expect("update");
        moments.push(clock.now());
    }
    for (version, expected) in [
        (1, None),
        (2, Some("one")),
        (3, Some("two")),
        (4, Some("three")),
    ] {
        let at = ledger
            .charge_at_version(ACCOUNT, &charge.id, version)
            .await
            .expect("at version");
        assert_eq!(at.description.as_deref(), expected, "version {version}");
        let as_of = ledger
            .charge_as_of(ACCOUNT, &charge.id, moments[version as usize - 1])
            .await
            .expect("as of");
        assert_eq!(
            as_of.description.as_deref(),
            expected,
            "moment after version {version}"
        );
    }
    let error = ledger
        .charge_at_version(ACCOUNT, &charge.id, 5)
        .await
        .expect_err("future version");
    assert_eq!(
        error.to_string(),
        format!(
            "charge {} has no version 5; its latest version is 4",
            charge.id
        )
    );
    let before_creation = moments[0] - time::Duration::hours(1);
    assert!(matches!(
        ledger
            .charge_as_of(ACCOUNT, &charge.id, before_creation)
            .await,
        Err(LedgerError::Refused(Refusal::NotYetCreated { .. }))
    ));
}

async fn charges_list_newest_first_with_cursors_and_filters() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let customer = ledger
        .create_customer(ACCOUNT, CreateCustomer::new(), RequestMeta::library())
        .await
        .expect("customer");
    let mut created = Vec::new();
    for index in 0..7 {
        let mut command = CreateCharge::new(1000 + index, "usd").source("tok_visa");
        if index % 2 == 0 {
            command = command.customer(&customer.id);
        }
        created.push(
            ledger
                .create_charge(ACCOUNT, command, RequestMeta::library())
                .await
                .expect("create")
                .id,
        );
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    let first_page = ledger
        .list_charges(
            ACCOUNT,
            &ListCharges {
                limit: 3,
                ..ListCharges::default()
            },
        )
        .await
        .expect("page 1");
    assert_eq!(
        first_page
            .data
            .iter()
            .map(|charge| charge.id.clone())
            .collect::<Vec<_>>(),
        newest_first[..3]
    );
    assert!(first_page.has_more);
    let second_page = ledger
        .list_charges(
            ACCOUNT,
            &ListCharges {
                limit: 3,
                cursor: PageCursor::StartingAfter(newest_first[2].clone()),
                ..ListCharges::default()
            },
        )
        .await
        .expect("page 2");
    assert_eq!(
        second_page
            .data
            .iter()
            .map(|charge| charge.id.clone())
            .collect::<Vec<_>>(),
        newest_first[3..6]
    );
    let last_page = ledger
        .list_charges(
            ACCOUNT,
            &ListCharges {
                limit: 3,
                cursor: PageCursor::StartingAfter(newest_first[5].clone()),
                ..ListCharges::default()
            },
        )
        .await
        .expect("page 3");
    assert_eq!(last_page.data.len(), 1);
    assert!(!last_page.has_more);
    let back = ledger
        .list_charges(
            ACCOUNT,
            &ListCharges {
                limit: 2,
                cursor: PageCursor::EndingBefore(newest_first[3].clone()),
                ..ListCharges::default()
            },
        )
        .await
        .expect("ending before");
    assert_eq!(
        back.data
            .iter()
            .map(|charge| charge.id.clone())
            .collect::<Vec<_>>(),
        newest_first[1..3]
    );
    assert!(back.has_more);
    let for_customer = ledger
        .list_charges(
            ACCOUNT,
            &ListCharges {
                limit: 100,
                customer: Some(customer.id.clone()),
                ..ListCharges::default()
            },
        )
        .await
        .expect("by customer");
    assert_eq!(for_customer.data.len(), 4);
}

async fn subscribe_catches_up_then_follows_without_gaps_or_repeats() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    common::update_metadata_repeatedly(&ledger, &charge.id, "i", 5).await;
    let mut subscription = ledger.subscribe(2);
    let writer = {
        let ledger = ledger.clone();
        let charge_id = charge.id.clone();
        tokio::spawn(async move {
            for index in 5..40 {
                ledger
                    .update_charge(
                        ACCOUNT,
                        &charge_id,
                        UpdateCharge::new().metadata_set("i", index.to_string()),
                        RequestMeta::library(),
                    )
                    .await
                    .expect("live update");
            }
        })
    };
    let mut sequences = Vec::new();
    while sequences.len() < 39 {
        let event = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("an event within 10 s")
            .expect("open")
            .expect("readable");
        sequences.push(event.body.sequence);
    }
    writer.await.expect("writer");
    assert_eq!(sequences, (3..=41).collect::<Vec<u64>>());
    let feed = ledger.events_after(39, 10).await.expect("feed");
    assert_eq!(
        feed.iter()
            .map(|event| event.body.sequence)
            .collect::<Vec<_>>(),
        [40, 41]
    );
}

#[tokio::test]
async fn a_data_directory_cannot_be_opened_twice_at_once() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let second = Ledger::open(directory.path().join("data")).await;
    assert!(second.is_err(), "sled allows one opener per directory");
    drop(ledger);
}

async fn invalid_account_names_are_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    for account in ["", "with\0nul", &"a".repeat(256)] {
        let error = ledger
            .get_charge(account, "ch_x")
            .await
            .expect_err("bad account");
        assert!(matches!(
            error,
            LedgerError::Refused(Refusal::InvalidAccount { .. })
        ));
    }
}

async fn expired_idempotency_keys_are_forgotten_and_fresh_ones_kept() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (ledger, clock) = open_ledger_on_manual_clock(&directory).await;
    let command = CreateCharge::new(2000, "usd").source("tok_visa");
    let request = RequestMeta::library().with_idempotency_key("expires");
    let first = ledger
        .create_charge(ACCOUNT, command.clone(), request.clone())
        .await
        .expect("create");

    // A day's retention keeps a key used a moment ago.
    let removed = ledger
        .purge_idempotency_keys(Duration::from_secs(24 * 3600))
        .await
        .expect("purge");
    assert_eq!(removed, 0);
    assert!(
        ledger
            .has_idempotency_record(ACCOUNT, "expires")
            .await
            .unwrap()
    );
    let replayed = ledger
        .create_charge(ACCOUNT, command.clone(), request.clone())
        .await
        .expect("replay");
    assert_eq!(replayed.id, first.id);

    // Once past retention the key is free again: the same request is a new charge.
    clock.advance(Duration::from_secs(2));
    let removed = ledger
        .purge_idempotency_keys(Duration::ZERO)
        .await
        .expect("purge");
    assert_eq!(removed, 1);
    assert!(
        !ledger
            .has_idempotency_record(ACCOUNT, "expires")
            .await
            .unwrap()
    );
    let second = ledger
        .create_charge(ACCOUNT, command, request)
        .await
        .expect("create again");
    assert_ne!(second.id, first.id);
}

async fn events_and_customers_are_listed_per_account_newest_first() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let first = ledger
        .create_customer(
            ACCOUNT,
            CreateCustomer::new().name("A"),
            RequestMeta::library(),
        )
        .await
        .unwrap();
    let second = ledger
        .create_customer(
            ACCOUNT,
            CreateCustomer::new().name("B"),
            RequestMeta::library(),
        )
        .await
        .unwrap();
    ledger
        .create_customer(OTHER_ACCOUNT, CreateCustomer::new(), RequestMeta::library())
        .await
        .unwrap();
    let page = ledger
        .list_customers(ACCOUNT, &PageCursor::Newest, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = page
        .data
        .iter()
        .map(|customer| customer.id.as_str())
        .collect();
    assert_eq!(ids, vec![second.id.as_str(), first.id.as_str()]);

    let everything = |_: &chargeledger::RecordedEvent| true;
    let events = ledger
        .list_events(ACCOUNT, &PageCursor::Newest, 1, &everything)
        .await
        .unwrap();
    assert!(events.has_more);
    assert_eq!(events.data[0].body.stream_id, second.id);
    let older = ledger
        .list_events(
            ACCOUNT,
            &PageCursor::StartingAfter(events.data[0].body.event_id.clone()),
            10,
            &everything,
        )
        .await
        .unwrap();
    assert_eq!(older.data.len(), 1);
    assert_eq!(older.data[0].body.stream_id, first.id);
    let event_id = &events.data[0].body.event_id;
    assert!(ledger.event(ACCOUNT, event_id).await.unwrap().is_some());
    assert!(
        ledger
            .event(OTHER_ACCOUNT, event_id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_layout_1_store_gains_its_event_and_customer_indexes_on_open() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("ledger");
    let ledger = Ledger::open(&path).await.expect("open");
    let customer = ledger
        .create_customer(ACCOUNT, CreateCustomer::new(), RequestMeta::library())
        .await
        .unwrap();
    create_test_charge(&ledger, ACCOUNT).await;
    ledger.close().await.expect("close");
    drop(ledger);

    // Turn the store back into layout 1: no per-account event or customer indexes.
    {
        let db = sled::open(&path).expect("sled opens the store");
        for tree in ["account_events", "event_ids", "customers_by_creation"] {
            db.open_tree(tree).unwrap().clear().unwrap();
        }
        db.open_tree("meta")
            .unwrap()
            .insert("format", "chargeledger-sled-1")
            .unwrap();
        db.flush().unwrap();
    }

    let ledger = Ledger::open(&path).await.expect("a layout-1 store opens");
    let everything = |_: &chargeledger::RecordedEvent| true;
    let events = ledger
        .list_events(ACCOUNT, &PageCursor::Newest, 10, &everything)
        .await
        .unwrap();
    assert_eq!(events.data.len(), 2);
    let customers = ledger
        .list_customers(ACCOUNT, &PageCursor::Newest, 10)
        .await
        .unwrap();
    assert_eq!(customers.data[0].id, customer.id);
    ledger.close().await.unwrap();
}

on_both_backends!(
    charges_and_their_history_survive_a_reopen,
    a_rejected_update_appends_nothing_and_changes_nothing,
    an_update_that_changes_nothing_appends_nothing,
    metadata_merges_unsets_one_key_and_unsets_all,
    accounts_never_see_each_others_objects,
    an_idempotency_key_never_applies_twice,
    concurrent_creations_with_one_idempotency_key_create_one_charge,
    a_validation_failure_does_not_consume_the_idempotency_key,
    freeze_after_capture_is_per_account_and_audited,
    capture_and_refund_move_the_amounts_like_stripe,
    time_travel_by_version_and_by_moment,
    charges_list_newest_first_with_cursors_and_filters,
    subscribe_catches_up_then_follows_without_gaps_or_repeats,
    invalid_account_names_are_refused,
    expired_idempotency_keys_are_forgotten_and_fresh_ones_kept,
    events_and_customers_are_listed_per_account_newest_first,
);
