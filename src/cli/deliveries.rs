//! The outbox on the command line: `serve`'s delivery options, `chargeledger deliveries` (every delivery and its attempts) and `chargeledger resend`.

use std::io::Write;
use std::path::Path;

use clap::Args;

use super::DataDirectory;
use crate::ledger::{Ledger, LedgerError};
use crate::server::delivery::objects::{delivery_line, delivery_object};
use crate::server::delivery::{DeliveryOptions, ReceiptTransport};
use crate::store::Delivery;

/// How `serve` delivers webhooks and receipts.
#[derive(Debug, Args)]
pub struct DeliveryArgs {
    /// Send receipts through this SMTP server: smtp://host:port, with credentials as
    /// smtp://user:password@host:port and STARTTLS as ?tls=required (smtps:// for TLS from the
    /// start). Without it receipts are written as .eml files under <data>/outbox/receipts.
    #[arg(
        long = "smtp-url",
        env = "CHARGELEDGER_SMTP_URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,
    /// The From: address of receipts.
    #[arg(
        long,
        default_value = "chargeledger receipts <receipts@chargeledger.localhost>"
    )]
    pub receipt_from: String,
    /// The address receipt links point at (default: the address the server listens on).
    #[arg(long)]
    pub public_url: Option<String>,
    /// POST Omise accounts' charge events (create, update, capture, reverse) to this URL.
    #[arg(long = "omise-webhook-url")]
    pub omise_webhook_url: Option<String>,
    /// The wait before the first retry of a failed delivery, in milliseconds; each later retry
    /// waits twice as long (with jitter), up to --webhook-retry-cap-ms.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_base_ms: u64,
    /// The longest wait between two attempts, in milliseconds.
    #[arg(long, default_value_t = 3_600_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_cap_ms: u64,
    /// Attempts before a delivery is given up as failed.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub webhook_max_attempts: u32,
    /// How long a receiver may take to answer, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_timeout_ms: u64,
}

impl DeliveryArgs {
    pub fn options(self, data_directory: &Path) -> DeliveryOptions {
        let mut options =
            DeliveryOptions::new(crate::server::data_directory_outbox(data_directory));
        if let Some(url) = self.smtp_url {
            options.receipts = ReceiptTransport::Smtp(url);
        }
        options.receipt_from = self.receipt_from;
        options.public_url = self.public_url.unwrap_or_default();
        options.omise_webhook_url = self.omise_webhook_url;
        options.retry_base_ms = self.webhook_retry_base_ms;
        options.retry_cap_ms = self.webhook_retry_cap_ms.max(self.webhook_retry_base_ms);
        options.max_attempts = self.webhook_max_attempts;
        options.attempt_timeout_ms = self.webhook_timeout_ms;
        options
    }
}

/// Every delivery in key order, keeping those `keep` accepts.
async fn all_deliveries(
    ledger: &Ledger,
    keep: impl Fn(&Delivery) -> bool,
) -> Result<Vec<Delivery>, LedgerError> {
    let mut kept = Vec::new();
    let mut after = None;
    loop {
        let page = ledger.store().deliveries_after(after, 1_000).await?;
        let Some(last) = page.last() else {
            return Ok(kept);
        };
        after = Some((last.account.clone(), last.event_sequence, last.number));
        kept.extend(page.into_iter().filter(|delivery| keep(delivery)));
    }
}

/// Omise shows `evt_X` as `evnt_test_X` (`evnt_X` live): either names the stored event.
fn stored_event_id(event_id: &str) -> String {
    for prefix in ["evnt_test_", "evnt_"] {
        if let Some(suffix) = event_id.strip_prefix(prefix) {
            return format!("evt_{suffix}");
        }
    }
    event_id.to_string()
}

/// `chargeledger deliveries`: one line per delivery (or JSON), optionally of one event or status.
pub async fn list(
    data: DataDirectory,
    event: Option<String>,
    status: Option<String>,
    json: bool,
) -> Result<(), LedgerError> {
    let ledger = data.open().await?;
    let event = event.as_deref().map(stored_event_id);
    let deliveries = all_deliveries(&ledger, |delivery| {
        event.as_ref().is_none_or(|id| &delivery.event_id == id)
            && status
                .as_ref()
                .is_none_or(|status| delivery.state.name() == status)
    })
    .await?;
    let mut output = std::io::stdout().lock();
    if json {
        let objects: Vec<_> = deliveries.iter().map(delivery_object).collect();
        serde_json::to_writer_pretty(&mut output, &objects).map_err(std::io::Error::other)?;
        writeln!(output)?;
    } else {
        writeln!(output, "{} deliveries", deliveries.len())?;
        for delivery in &deliveries {
            writeln!(output, "{}", delivery_line(delivery))?;
            for attempt in &delivery.attempts {
                writeln!(
                    output,
                    "  attempt at {} ms: {} {} in {} ms{}: {}",
                    attempt.at_ms,
                    if attempt.succeeded { "ok" } else { "failed" },
                    attempt
                        .status
                        .map_or_else(|| "-".into(), |status| status.to_string()),
                    attempt.latency_ms,
                    attempt
                        .chaos
                        .as_ref()
                        .map_or_else(String::new, |chaos| format!(" ({chaos})")),
                    attempt.detail.replace('\n', " "),
                )?;
            }
        }
    }
    ledger.close().await?;
    Ok(())
}

/// `chargeledger resend`: queue the event's delivery again to the endpoints that receive it now.
/// The account is found from the event's earlier deliveries unless given.
pub async fn resend(
    data: DataDirectory,
    event_id: String,
    account: Option<String>,
) -> Result<(), LedgerError> {
    let ledger = data.open().await?;
    let stored_id = stored_event_id(&event_id);
    let account = match account {
        Some(account) => account,
        None => {
            let known = all_deliveries(&ledger, |delivery| delivery.event_id == stored_id).await?;
            match known.first() {
                Some(delivery) => delivery.account.clone(),
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{event_id} has no earlier delivery to find its account by; name the account with --account"),
                    )
                    .into());
                }
            }
        }
    };
    let event = ledger.event(&account, &stored_id).await?.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("account {account} has no event {event_id}"),
        )
    })?;
    let deliveries = ledger.resend_event(&account, &event).await?;
    let mut output = std::io::stdout().lock();
    writeln!(
        output,
        "queued {} deliveries of {event_id}; a running server sends them now, a stopped one when it starts",
        deliveries.len()
    )?;
    for delivery in &deliveries {
        writeln!(output, "{}", delivery_line(delivery))?;
    }
    ledger.close().await?;
    Ok(())
}
