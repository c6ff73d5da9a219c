//! Stripe search through the library on both stores: an update removes the index keys a charge lost, and on a few thousand charges every query's pages (index lookups past one read chunk, OR merges, a range wide enough to be walked, scans) equal a walk of every charge filtered by the query.

mod common;

use chargeledger::domain::search::{Field, Query, Resource, keys};
use chargeledger::ledger::SearchRequest;
use chargeledger::store::IndexScan;
use chargeledger::{
    ChargeState, CreateCharge, Ledger, ListCharges, PageCursor, RequestMeta, UpdateCharge,
};
use common::{ACCOUNT, OTHER_ACCOUNT, open_ledger};

async fn entries_of(ledger: &Ledger, account: &str, key: &[u8]) -> usize {
    // A library account's name is the account itself.
    ledger
        .store()
        .scan_search_index(
            account,
            IndexScan::Newest {
                key,
                below_sequence: u64::MAX,
            },
            100,
        )
        .await
        .expect("the index reads")
        .len()
}

async fn an_update_removes_the_index_keys_the_charge_lost() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = ledger
        .create_charge(
            ACCOUNT,
            CreateCharge::new(2000, "usd")
                .source("tok_visa")
                .metadata_set("order", "A-1"),
            RequestMeta::library(),
        )
        .await
        .expect("create");
    let key = |value: &str| {
        keys::token_key(
            Resource::Charges,
            &Field::Metadata("order".into()),
            &value.to_lowercase(),
        )
    };
    assert_eq!(entries_of(&ledger, ACCOUNT, &key("A-1")).await, 1);
    ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().metadata_set("order", "A-2"),
            RequestMeta::library(),
        )
        .await
        .expect("update");
    assert_eq!(entries_of(&ledger, ACCOUNT, &key("A-1")).await, 0);
    assert_eq!(entries_of(&ledger, ACCOUNT, &key("A-2")).await, 1);
    // Another account's index holds nothing of this one's.
    assert_eq!(entries_of(&ledger, OTHER_ACCOUNT, &key("A-2")).await, 0);
    ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().metadata_unset("order"),
            RequestMeta::library(),
        )
        .await
        .expect("update");
    assert_eq!(entries_of(&ledger, ACCOUNT, &key("A-2")).await, 0);
    ledger.close().await.expect("close");
}

/// Every page of a search, followed to the end.
async fn search_all(ledger: &Ledger, text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let result = ledger
            .search_charges(
                ACCOUNT,
                SearchRequest {
                    text,
                    limit: 100,
                    page: page.as_deref(),
                    count_total: false,
                },
            )
            .await
            .unwrap_or_else(|error| panic!("{text}: {error}"));
        assert!(result.data.len() <= 100);
        ids.extend(result.data.into_iter().map(|charge| charge.id));
        match result.next_page {
            Some(next) => page = Some(next),
            None => return ids,
        }
    }
}

/// Every charge of the account, newest first.
async fn every_charge(ledger: &Ledger) -> Vec<ChargeState> {
    let mut charges = Vec::new();
    let mut cursor = PageCursor::Newest;
    loop {
        let page = ledger
            .list_charges(
                ACCOUNT,
                &ListCharges {
                    limit: 100,
                    cursor: cursor.clone(),
                    ..ListCharges::default()
                },
            )
            .await
            .expect("list");
        let Some(last) = page.data.last() else {
            return charges;
        };
        cursor = PageCursor::StartingAfter(last.id.clone());
        let more = page.has_more;
        charges.extend(page.data);
        if !more {
            return charges;
        }
    }
}

async fn every_query_answers_what_a_walk_of_every_charge_finds() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let total = 2_400;
    let mut writers = Vec::new();
    for writer in 0..8 {
        let ledger = ledger.clone();
        writers.push(tokio::spawn(async move {
            for index in (writer..total).step_by(8) {
                // Tags `a` (every 3rd charge: 800, over the index's 200-entry read chunk),
                // `b`…`e` rarer; amounts mostly from 1,000 up (a range over 2,000 charges).
                let tag = ["a", "b", "a", "c", "a", "d", "a", "e", "a"][index % 9];
                let amount = if index % 10 == 0 {
                    500
                } else {
                    1_000 + (index * 37) % 9_000
                };
                let currency = if index % 7 == 0 { "eur" } else { "usd" };
                let mut command =
                    CreateCharge::new(amount as i64, currency).source(if index % 5 == 0 {
                        "tok_mastercard"
                    } else {
                        "tok_visa"
                    });
                if index % 11 != 0 {
                    command = command.metadata_set("tag", tag);
                }
                ledger
                    .create_charge(ACCOUNT, command, RequestMeta::library())
                    .await
                    .expect("create");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("a writer");
    }
    let everything = every_charge(&ledger).await;
    assert_eq!(everything.len(), total);
    for text in [
        "metadata['tag']:'a'",
        "metadata['tag']:'b'",
        "metadata['tag']:'A' AND currency:'eur'",
        "metadata['tag']:'b' OR metadata['tag']:'c' OR currency:'eur'",
        "amount>=1000",
        "amount>=1000 AND amount<1200",
        "amount<1000 OR metadata['tag']:'e'",
        "amount:500 metadata['tag']:'a'",
        "-metadata['tag']:null currency:'usd'",
        "metadata['tag']:null",
        "-metadata['tag']:'a'",
        "payment_method_details.card.brand:'mastercard' AND amount>5000",
        "status:'succeeded' AND -currency:'usd'",
        "refunded:null amount<=1010",
        "disputed:'true' OR amount>99999",
    ] {
        let query = Query::parse(Resource::Charges, text).expect(text);
        let expected: Vec<String> = everything
            .iter()
            .filter(|charge| query.matches(*charge))
            .map(|charge| charge.id.clone())
            .collect();
        assert_eq!(search_all(&ledger, text).await, expected, "{text}");
    }
    // `total_count` counts the same matches.
    let counted = ledger
        .search_charges(
            ACCOUNT,
            SearchRequest {
                text: "metadata['tag']:'a'",
                limit: 1,
                page: None,
                count_total: true,
            },
        )
        .await
        .expect("search");
    let tagged_a = everything
        .iter()
        .filter(|charge| charge.metadata.get("tag") == Some(&serde_json::json!("a")))
        .count();
    assert_eq!(counted.total_count, Some(tagged_a));
    assert!(tagged_a > 200, "{tagged_a}");
    ledger.close().await.expect("close");
}

on_both_backends!(
    multi_thread: an_update_removes_the_index_keys_the_charge_lost,
    every_query_answers_what_a_walk_of_every_charge_finds,
);
