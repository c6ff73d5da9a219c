//! Use chargeledger as a local, durable charge ledger inside your own program.
//!
//! Run: `cargo run --example embed` (data goes to a temporary directory; set `CHARGELEDGER_DATA`
//! to keep it).

use chargeledger::{
    Address, CaptureCharge, CreateCharge, CreateCustomer, Ledger, ListCharges, RefundCharge,
    RequestMeta, ShippingInput, UpdateCharge,
};

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temporary = tempfile::tempdir()?;
    let data_directory = std::env::var_os("CHARGELEDGER_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temporary.path().join("chargeledger-data"));
    let ledger = Ledger::open(&data_directory).await?;
    let account = "sk_test_embedded_shop";

    let customer = ledger
        .create_customer(
            account,
            CreateCustomer::new()
                .email("jenny@example.com")
                .name("Jenny Rosen"),
            RequestMeta::library(),
        )
        .await?;

    // Authorize now, capture when the order ships.
    let charge = ledger
        .create_charge(
            account,
            CreateCharge::new(2000, "usd")
                .source("tok_visa")
                .capture(false)
                .description("Order #1001"),
            RequestMeta::library().with_idempotency_key("order-1001-create"),
        )
        .await?;
    println!(
        "authorized {} for {} {}",
        charge.id, charge.money.authorized, charge.currency
    );

    let shipping = ShippingInput::new(
        "Jenny Rosen",
        Address {
            line1: Some("1 Main St".into()),
            city: Some("Springfield".into()),
            country: Some("US".into()),
            postal_code: Some("12345".into()),
            ..Address::default()
        },
    )
    .carrier("UPS");
    let charge = ledger
        .update_charge(
            account,
            &charge.id,
            UpdateCharge::new()
                .customer(&customer.id)
                .metadata_set("order_id", "1001")
                .shipping(shipping),
            RequestMeta::library(),
        )
        .await?;
    let charge = ledger
        .capture_charge(
            account,
            &charge.id,
            CaptureCharge::partial(1500),
            RequestMeta::library(),
        )
        .await?;
    println!(
        "captured {} of {}; {} released",
        charge.money.captured, charge.money.authorized, charge.money.released
    );
    let refunded = ledger
        .refund_charge(
            account,
            &charge.id,
            RefundCharge::partial(500),
            RequestMeta::library(),
        )
        .await?;
    println!(
        "refunded {} in {}",
        refunded.refund.amount, refunded.refund.id
    );

    // A retried request with the same idempotency key returns the first result, appending nothing.
    let retried = ledger
        .create_charge(
            account,
            CreateCharge::new(2000, "usd")
                .source("tok_visa")
                .capture(false)
                .description("Order #1001"),
            RequestMeta::library().with_idempotency_key("order-1001-create"),
        )
        .await?;
    assert_eq!(retried.id, charge.id);

    let page = ledger
        .list_charges(account, &ListCharges::default())
        .await?;
    println!("{} charge(s) in the account", page.data.len());
    println!(
        "{}",
        serde_json::to_string_pretty(&ledger.get_charge(account, &charge.id).await?)?
    );
    ledger.close().await?;
    Ok(())
}
