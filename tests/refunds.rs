//! Stripe's refunds as a resource over real HTTP on both stores: listed across the account newest first, filtered, paged, retrieved, their metadata updated as an event, and kept per account.

mod common;

use common::server::{OTHER_SECRET_KEY, TestServer};
use serde_json::{Value, json};

fn server() -> (tempfile::TempDir, TestServer) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&directory.path().join("data"));
    (directory, server)
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a list, got {list}"))
        .iter()
        .map(|object| object["id"].as_str().unwrap().to_string())
        .collect()
}

async fn refund(server: &TestServer, charge_id: &str, amount: &str) -> Value {
    let reply = server
        .post("/v1/refunds", &[("charge", charge_id), ("amount", amount)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// Three charges refunded out of order, and a partial capture whose released remainder Stripe
/// lists as a refund: `GET /v1/refunds` lists them newest first across charges.
async fn refunds_are_listed_newest_first_across_charges_with_cursors() {
    let (directory, mut server) = server();
    let first = server.create_charge(&[]).await;
    let second = server.create_charge(&[]).await;
    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();
    let a = refund(&server, second_id, "100").await;
    let b = refund(&server, first_id, "200").await;
    let c = refund(&server, second_id, "300").await;
    let uncaptured = server.create_charge(&[("capture", "false")]).await;
    let uncaptured_id = uncaptured["id"].as_str().unwrap();
    let captured = server
        .post(
            &format!("/v1/charges/{uncaptured_id}/capture"),
            &[("amount", "1500")],
        )
        .await;
    assert_eq!(captured.status, 200, "{}", captured.body);
    let remainder = captured.body["refunds"]["data"][0].clone();
    assert_eq!(remainder["amount"], 500);

    let all = server.get("/v1/refunds").await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["object"], "list");
    assert_eq!(all.body["url"], "/v1/refunds");
    assert_eq!(all.body["has_more"], false);
    let newest_first = vec![
        remainder["id"].as_str().unwrap().to_string(),
        c["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
        a["id"].as_str().unwrap().to_string(),
    ];
    assert_eq!(ids(&all.body), newest_first);
    // Each listed refund is the refund object the create answered.
    assert_eq!(all.body["data"][1], c);
    assert_eq!(all.body["data"][3]["charge"], second_id);
    assert_eq!(all.body["data"][3]["amount"], 100);

    // Pages of two, forwards then back.
    let page = server.get("/v1/refunds?limit=2").await;
    assert_eq!(ids(&page.body), newest_first[..2]);
    assert_eq!(page.body["has_more"], true);
    let next = server
        .get(&format!(
            "/v1/refunds?limit=2&starting_after={}",
            newest_first[1]
        ))
        .await;
    assert_eq!(ids(&next.body), newest_first[2..]);
    assert_eq!(next.body["has_more"], false);
    let back = server
        .get(&format!(
            "/v1/refunds?limit=2&ending_before={}",
            newest_first[3]
        ))
        .await;
    assert_eq!(ids(&back.body), newest_first[1..3]);
    assert_eq!(back.body["has_more"], true);

    // One charge's refunds, by `charge`, as `/v1/charges/{id}/refunds` lists them.
    let of_second = server.get(&format!("/v1/refunds?charge={second_id}")).await;
    assert_eq!(
        ids(&of_second.body),
        vec![newest_first[1].clone(), newest_first[3].clone()]
    );
    let nested = server
        .get(&format!("/v1/charges/{second_id}/refunds"))
        .await;
    assert_eq!(ids(&nested.body), ids(&of_second.body));
    let unknown = server.get("/v1/refunds?charge=ch_nothing").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error()["param"], "charge");
    assert_eq!(unknown.error()["message"], "No such charge: 'ch_nothing'");

    // `created` bounds: everything was created now, nothing before.
    let created = a["created"].as_i64().unwrap();
    let none_earlier = server
        .get(&format!("/v1/refunds?created[lt]={created}"))
        .await;
    assert_eq!(ids(&none_earlier.body), Vec::<String>::new());
    let since = server
        .get(&format!("/v1/refunds?created[gte]={created}&limit=3"))
        .await;
    assert_eq!(ids(&since.body), newest_first[..3]);
    assert_eq!(since.body["has_more"], true);

    // Expanding the charge, and an unknown parameter refused as Stripe refuses it.
    let expanded = server.get("/v1/refunds?limit=1&expand[]=data.charge").await;
    assert_eq!(expanded.body["data"][0]["charge"]["id"], uncaptured_id);
    assert_eq!(expanded.body["data"][0]["charge"]["object"], "charge");
    // One charge's list pages from its cursor both ways, with `created` bounds too.
    let after_newest_of_second = server
        .get(&format!(
            "/v1/refunds?charge={second_id}&created[gte]={created}&starting_after={}",
            newest_first[1]
        ))
        .await;
    assert_eq!(
        ids(&after_newest_of_second.body),
        vec![newest_first[3].clone()]
    );
    let before_oldest = server
        .get(&format!(
            "/v1/refunds?charge={second_id}&limit=1&ending_before={}",
            newest_first[3]
        ))
        .await;
    assert_eq!(ids(&before_oldest.body), vec![newest_first[1].clone()]);
    assert_eq!(before_oldest.body["has_more"], false);
    let intent = server.get("/v1/refunds?payment_intent=pi_123").await;
    assert_eq!(intent.status, 404);
    assert_eq!(intent.error()["param"], "payment_intent");
    assert_eq!(
        intent.error()["message"],
        "No such payment_intent: 'pi_123'"
    );
    let bad = server.get("/v1/refunds?colour=blue").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error()["message"], "Received unknown parameter: colour");

    // Another account sees none of them, and cannot read one by id.
    let other = server
        .request("GET", "/v1/refunds", &[], Some(OTHER_SECRET_KEY), None)
        .await;
    assert_eq!(ids(&other.body), Vec::<String>::new());
    let stolen = server
        .request(
            "GET",
            &format!("/v1/refunds/{}", newest_first[0]),
            &[],
            Some(OTHER_SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(stolen.status, 404);

    // After a restart the index still lists them, and the chain verifies.
    assert!(server.stop());
    let data = directory.path().join("data");
    let (sound, output) = common::server::verify_data_directory(&data);
    assert!(sound, "{output}");
    let server = TestServer::start(&data);
    let again = server.get("/v1/refunds").await;
    assert_eq!(ids(&again.body), newest_first);
}

async fn a_refund_is_retrieved_and_its_metadata_updated_as_an_event() {
    let (directory, mut server) = server();
    let charge = server.create_charge(&[]).await;
    let charge_id = charge["id"].as_str().unwrap();
    let created = server
        .post(
            "/v1/refunds",
            &[("charge", charge_id), ("metadata[reason_code]", "R1")],
        )
        .await;
    let refund_id = created.body["id"].as_str().unwrap().to_string();
    let path = format!("/v1/refunds/{refund_id}");

    let retrieved = server.get(&path).await;
    assert_eq!(retrieved.status, 200, "{}", retrieved.body);
    assert_eq!(retrieved.body, created.body);
    let with_charge = server.get(&format!("{path}?expand[]=charge")).await;
    assert_eq!(with_charge.body["charge"]["id"], charge_id);
    assert_eq!(with_charge.body["charge"]["refunded"], true);

    let missing = server.get("/v1/refunds/re_nothing").await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body,
        json!({"error": {
            "code": "resource_missing",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
            "message": "No such refund: 're_nothing'",
            "param": "id",
            "type": "invalid_request_error",
        }})
    );

    let updated = server
        .post_idempotent(
            &path,
            &[("metadata[ticket]", "T-7"), ("metadata[reason_code]", "")],
            "refund-update",
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["metadata"], json!({"ticket": "T-7"}));
    assert_eq!(updated.body["amount"], 2000);
    // The same key replays the answer and appends nothing more.
    let replayed = server
        .post_idempotent(
            &path,
            &[("metadata[ticket]", "T-7"), ("metadata[reason_code]", "")],
            "refund-update",
        )
        .await;
    assert_eq!(replayed.body, updated.body);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    // An update that changes nothing appends nothing.
    let unchanged = server.post(&path, &[("metadata[ticket]", "T-7")]).await;
    assert_eq!(unchanged.status, 200);
    // Only metadata can change on a refund.
    let refused = server.post(&path, &[("amount", "5")]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.error()["message"],
        "Received unknown parameter: amount"
    );
    let bad_metadata = server.post(&path, &[("metadata[a[b]]", "x")]).await;
    assert_eq!(bad_metadata.status, 400, "{}", bad_metadata.body);
    assert_eq!(bad_metadata.error()["param"], "metadata");

    // The charge shows the refund as updated; the feed has one refund.updated event whose
    // object is the refund and whose previous_attributes hold the old metadata.
    let charge_now = server.get(&format!("/v1/charges/{charge_id}")).await;
    assert_eq!(
        charge_now.body["refunds"]["data"][0]["metadata"],
        json!({"ticket": "T-7"})
    );
    let events = server.get("/v1/events").await;
    let types: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec!["refund.updated", "charge.refunded", "charge.succeeded"]
    );
    let event = &events.body["data"][0];
    assert_eq!(event["data"]["object"]["object"], "refund");
    assert_eq!(event["data"]["object"]["id"], refund_id.as_str());
    assert_eq!(
        event["data"]["object"]["metadata"],
        json!({"ticket": "T-7"})
    );
    assert_eq!(
        event["data"]["previous_attributes"],
        json!({"metadata": {"reason_code": "R1", "ticket": null}})
    );
    let history = server
        .get(&format!("/v1/charges/{charge_id}/history"))
        .await;
    let entries = history.body["data"].as_array().unwrap();
    assert_eq!(entries.last().unwrap()["type"], "refund.updated");
    assert_eq!(
        entries.last().unwrap()["request"]["idempotency_key"],
        "refund-update"
    );

    // After a restart the update is still there, and the chain verifies.
    assert!(server.stop());
    let data = directory.path().join("data");
    let (sound, output) = common::server::verify_data_directory(&data);
    assert!(sound, "{output}");
    let server = TestServer::start(&data);
    let after = server.get(&path).await;
    assert_eq!(after.body["metadata"], json!({"ticket": "T-7"}));
}

/// Take the refund index away, as a store written before it existed lacks it: sled's layout
/// 3 (no refund trees), or a PostgreSQL schema at migration 2.
fn forget_the_refund_index(data: &std::path::Path) {
    match common::backend::current() {
        common::backend::Backend::Sled => {
            let db = sled::open(data).expect("the store opens with sled");
            db.drop_tree("refunds_by_creation").expect("drop a tree");
            db.drop_tree("refund_ids").expect("drop a tree");
            db.open_tree("meta")
                .expect("meta tree")
                .insert("format", "chargeledger-sled-3")
                .expect("write meta/format");
            db.flush().expect("flush");
        }
        common::backend::Backend::Postgres => {
            let schema = common::postgres::schema_for(data);
            common::postgres::psql(&format!(
                "DROP TABLE {schema}.chargeledger_refunds; DROP TABLE {schema}.chargeledger_search_keys; DELETE FROM {schema}.chargeledger_schema_migrations WHERE version >= 3"
            ));
        }
    }
}

async fn a_store_from_before_the_refund_index_gets_it_on_open() {
    let (directory, mut server) = server();
    let charge = server.create_charge(&[]).await;
    let charge_id = charge["id"].as_str().unwrap();
    let partial = refund(&server, charge_id, "700").await;
    let uncaptured = server.create_charge(&[("capture", "false")]).await;
    let uncaptured_id = uncaptured["id"].as_str().unwrap();
    server
        .post(
            &format!("/v1/charges/{uncaptured_id}/capture"),
            &[("amount", "1200")],
        )
        .await;
    let rest = refund(&server, charge_id, "1300").await;
    let before = server.get("/v1/refunds").await;
    assert_eq!(ids(&before.body).len(), 3);
    assert!(server.stop());

    let data = directory.path().join("data");
    forget_the_refund_index(&data);
    let server = TestServer::start(&data);
    let after = server.get("/v1/refunds").await;
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.body, before.body);
    assert_eq!(after.body["data"][0], rest);
    assert_eq!(after.body["data"][2], partial);
    let one = server
        .get(&format!("/v1/refunds/{}", partial["id"].as_str().unwrap()))
        .await;
    assert_eq!(one.body, partial);
    if common::backend::current() == common::backend::Backend::Sled {
        let mut server = server;
        assert!(server.stop());
        let db = sled::open(&data).expect("the store opens with sled");
        let format = db
            .open_tree("meta")
            .unwrap()
            .get("format")
            .unwrap()
            .unwrap();
        assert_eq!(format.as_ref(), b"chargeledger-sled-5");
    }
}

on_both_backends!(
    refunds_are_listed_newest_first_across_charges_with_cursors,
    a_refund_is_retrieved_and_its_metadata_updated_as_an_event,
    a_store_from_before_the_refund_index_gets_it_on_open,
);
