//! Print a charge's audit trail: every version, who made it, from which request, and each field's old → new value.
//!
//! Run: `cargo run --example audit_trail`

use chargeledger::{CreateCharge, Ledger, RequestMeta, UpdateCharge};

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temporary = tempfile::tempdir()?;
    let ledger = Ledger::open(temporary.path().join("chargeledger-data")).await?;
    let account = "sk_test_audited_shop";

    let charge = ledger
        .create_charge(
            account,
            CreateCharge::new(4200, "eur")
                .source("tok_mastercard")
                .metadata_set("order_id", "A-17"),
            RequestMeta::library().with_source("checkout-service"),
        )
        .await?;
    ledger
        .update_charge(
            account,
            &charge.id,
            UpdateCharge::new()
                .description("Two tickets")
                .receipt_email("buyer@example.com"),
            RequestMeta::library()
                .with_actor("sk_test_****shop")
                .with_idempotency_key("support-ticket-88"),
        )
        .await?;
    ledger
        .update_charge(
            account,
            &charge.id,
            UpdateCharge::new()
                .fraud_user_report("safe")
                .metadata_unset("order_id"),
            RequestMeta::library().with_actor("support-desk"),
        )
        .await?;
    // A rejected request leaves no trace in the history:
    let rejected = ledger
        .update_charge(
            account,
            &charge.id,
            UpdateCharge::new().receipt_email("not-an-email"),
            RequestMeta::library(),
        )
        .await;
    println!(
        "rejected: {}\n",
        rejected
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default()
    );

    println!("history of {}:", charge.id);
    for entry in ledger.history(account, &charge.id).await? {
        println!("{entry}");
    }
    ledger.close().await?;
    Ok(())
}
