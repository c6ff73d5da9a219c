//! The outbox's rules and bookkeeping without HTTP: which events have which side effects (pure), the retry schedule, the signature, and deliveries written in the same append as their events on both stores.

mod common;

use chargeledger::domain::stripe::webhooks::CreateWebhookEndpoint;
use chargeledger::domain::webhooks::{ChargeTransition, side_effects};
use chargeledger::domain::{
    CaptureCharge, Destination, SideEffectRules, UpdateCharge, WebhookEndpoints,
};
use chargeledger::events::EventPayload;
use chargeledger::server::delivery::{DeliveryOptions, retry_delay_ms, stripe_signature};
use chargeledger::store::DeliveryState;
use chargeledger::{CreateCharge, RequestMeta};

use common::{ACCOUNT, captured_charge, context, uncaptured_charge};

fn receipts_only() -> SideEffectRules {
    SideEffectRules {
        receipts: true,
        omise_webhook_url: None,
    }
}

fn receipts_of(
    payload: &EventPayload,
    before: Option<&chargeledger::domain::ChargeState>,
) -> Vec<Destination> {
    let after = match chargeledger::domain::apply(
        before.map(|charge| chargeledger::domain::Projection::Charge(Box::new(charge.clone()))),
        payload,
    )
    .unwrap()
    {
        chargeledger::domain::Projection::Charge(charge) => *charge,
        other => panic!("{other:?}"),
    };
    side_effects(
        payload,
        Some(ChargeTransition {
            before,
            after: &after,
        }),
        &WebhookEndpoints::default(),
        &receipts_only(),
    )
}

#[test]
fn a_receipt_goes_out_when_a_charge_with_an_email_is_paid_or_its_email_changes() {
    let receipt = |email: &str| Destination::Receipt {
        email: email.to_string(),
    };
    let create = |command: CreateCharge| {
        chargeledger::domain::stripe::decide::create_charge(&command, None, &context()).unwrap()
    };
    // Paid at creation: a receipt. Only authorized: none, until the capture.
    let paid = create(
        CreateCharge::new(2000, "usd")
            .source("tok_visa")
            .receipt_email("a@example.com"),
    );
    assert_eq!(receipts_of(&paid, None), [receipt("a@example.com")]);
    let held = create(
        CreateCharge::new(2000, "usd")
            .source("tok_visa")
            .capture(false)
            .receipt_email("a@example.com"),
    );
    assert_eq!(receipts_of(&held, None), []);
    let mut authorized = uncaptured_charge();
    authorized.receipt_email = Some("a@example.com".into());
    let capture = chargeledger::domain::stripe::decide::capture_charge(
        &authorized,
        &CaptureCharge::full(),
        &context(),
    )
    .unwrap();
    assert_eq!(
        receipts_of(&capture, Some(&authorized)),
        [receipt("a@example.com")]
    );
    // A paid charge whose email changes: a receipt to the new address; other changes: none.
    let charge = captured_charge();
    let policy = chargeledger::domain::AccountPolicy::default();
    let update = |command: UpdateCharge| {
        chargeledger::domain::stripe::decide::update_charge(&charge, &command, None, &policy)
            .unwrap()
            .unwrap()
    };
    let new_email = update(UpdateCharge::new().receipt_email("b@example.com"));
    assert_eq!(
        receipts_of(&new_email, Some(&charge)),
        [receipt("b@example.com")]
    );
    let description = update(UpdateCharge::new().description("mug"));
    assert_eq!(receipts_of(&description, Some(&charge)), []);
    // An email set on an unpaid charge waits for the capture too.
    let unpaid = uncaptured_charge();
    let on_unpaid = chargeledger::domain::stripe::decide::update_charge(
        &unpaid,
        &UpdateCharge::new().receipt_email("c@example.com"),
        None,
        &policy,
    )
    .unwrap()
    .unwrap();
    assert_eq!(receipts_of(&on_unpaid, Some(&unpaid)), []);
}

#[test]
fn retries_back_off_exponentially_with_jitter_up_to_the_cap() {
    let mut options = DeliveryOptions::new("/nowhere".into());
    options.retry_base_ms = 1_000;
    options.retry_cap_ms = 60_000;
    // Equal jitter: each wait lies in the upper half of its exponential step.
    for (failures, full) in [
        (1, 1_000),
        (2, 2_000),
        (3, 4_000),
        (6, 32_000),
        (7, 60_000),
        (30, 60_000),
    ] {
        assert_eq!(
            retry_delay_ms(failures, &options, 0.0),
            full / 2,
            "after {failures}"
        );
        assert_eq!(
            retry_delay_ms(failures, &options, 1.0),
            full,
            "after {failures}"
        );
        let middle = retry_delay_ms(failures, &options, 0.5);
        assert!(
            middle > full / 2 && middle < full,
            "after {failures}: {middle}"
        );
    }
}

#[test]
fn signatures_are_stripes_hmac_of_timestamp_and_body() {
    // HMAC-SHA256 keyed with the whole secret over "1700000000.{}" (checked with Python's
    // hmac module: hmac.new(b"whsec_test", b"1700000000.{}", "sha256").hexdigest()).
    assert_eq!(
        stripe_signature("whsec_test", 1_700_000_000, b"{}"),
        "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
    );
}

async fn deliveries_are_written_with_their_events_and_only_then() {
    let directory = tempfile::tempdir().unwrap();
    let ledger = common::open_ledger(&directory)
        .await
        .with_side_effect_rules(receipts_only());
    let endpoint = ledger
        .create_webhook_endpoint(
            ACCOUNT,
            CreateWebhookEndpoint {
                url: Some("http://127.0.0.1:9/hook".into()),
                enabled_events: vec!["charge.updated".into()],
                ..CreateWebhookEndpoint::default()
            },
            RequestMeta::library(),
        )
        .await
        .unwrap();
    let charge = ledger
        .create_charge(
            ACCOUNT,
            CreateCharge::new(2000, "usd")
                .source("tok_visa")
                .receipt_email("a@example.com"),
            RequestMeta::library(),
        )
        .await
        .unwrap();
    let updated = ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().description("mug"),
            RequestMeta::library(),
        )
        .await
        .unwrap();
    assert_eq!(updated.description.as_deref(), Some("mug"));
    let events = ledger
        .charge_events(ACCOUNT, &charge.id, None)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    let created = ledger.event_deliveries(ACCOUNT, &events[0]).await.unwrap();
    assert_eq!(
        created.len(),
        1,
        "charge.succeeded is not subscribed; the receipt is due"
    );
    assert_eq!(
        created[0].destination,
        Destination::Receipt {
            email: "a@example.com".into()
        }
    );
    let update = ledger.event_deliveries(ACCOUNT, &events[1]).await.unwrap();
    assert_eq!(update.len(), 1);
    assert_eq!(
        update[0].destination,
        Destination::Webhook {
            endpoint_id: endpoint.id.clone()
        }
    );
    assert!(matches!(update[0].state, DeliveryState::Pending { .. }));
    assert_eq!(update[0].event_id, events[1].body.event_id);
    assert_eq!(
        ledger.pending_webhooks(ACCOUNT, &events[1]).await.unwrap(),
        1
    );
    assert_eq!(
        ledger.pending_webhooks(ACCOUNT, &events[0]).await.unwrap(),
        0
    );
    // A refused update appends nothing and queues nothing.
    let refused = ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().receipt_email("not an email"),
            RequestMeta::library(),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(
        ledger
            .charge_events(ACCOUNT, &charge.id, None)
            .await
            .unwrap()
            .len(),
        2
    );
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = ledger.store().deliveries_after(after, 1).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.account.clone(), last.event_sequence, last.number));
        all.extend(page);
    }
    assert_eq!(all.len(), 2, "{all:?}");
    // Claimed once, a delivery is not claimed again while leased; saved, it is due again.
    let now_ms = i64::MAX / 4;
    let claimed = ledger
        .store()
        .claim_deliveries(now_ms, 60_000, 10, "test")
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        ledger
            .store()
            .claim_deliveries(now_ms, 60_000, 10, "test")
            .await
            .unwrap()
            .is_empty()
    );
    ledger.store().save_deliveries(claimed).await.unwrap();
    assert_eq!(
        ledger
            .store()
            .claim_deliveries(now_ms, 60_000, 10, "test")
            .await
            .unwrap()
            .len(),
        2
    );
    // Other accounts see none of them.
    let other = ledger
        .event(common::OTHER_ACCOUNT, &events[1].body.event_id)
        .await
        .unwrap();
    assert!(other.is_none());
}

on_both_backends!(deliveries_are_written_with_their_events_and_only_then);
