//! Receipts: the mail (amount in major units with currency, description, charge id, receipt number), sent over SMTP or written as an `.eml` file, then recorded on the charge; and the receipt page its link opens.

use std::path::{Path, PathBuf};
use std::time::Instant;

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lettre::message::header::ContentType;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{DeliveryWorker, Outcome};
use crate::domain::ChargeState;
use crate::domain::stripe::validation::format_amount;
use crate::domain::webhooks::{ReceiptSent, receipt_number};
use crate::server::App;
use crate::store::{Attempt, Delivery};

/// Where receipts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptTransport {
    /// An SMTP server: `smtp://[user:password@]host:port[?tls=required]` (STARTTLS), or
    /// `smtps://…` (TLS from the start), as lettre reads it.
    Smtp(String),
    /// `.eml` files in this directory, so no receipt is dropped when no SMTP server is set.
    Files(PathBuf),
}

pub(super) enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

impl Mailer {
    pub(super) fn new(transport: &ReceiptTransport) -> Result<Self, String> {
        Ok(match transport {
            ReceiptTransport::Smtp(url) => Mailer::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|error| {
                        format!(
                            "--smtp-url is not a usable SMTP URL ({error}); expected smtp://[user:password@]host:port[?tls=required] or smtps://…"
                        )
                    })?
                    .build(),
            ),
            ReceiptTransport::Files(directory) => Mailer::Files(directory.clone()),
        })
    }

    fn transport_name(&self) -> &'static str {
        match self {
            Mailer::Smtp(_) => "smtp",
            Mailer::Files(_) => "file",
        }
    }

    /// Send (or write) the mail: the reply code and what was said, or why it failed.
    async fn deliver(
        &self,
        message: Message,
    ) -> Result<(Option<u16>, String), (Option<u16>, String)> {
        match self {
            Mailer::Smtp(transport) => match transport.send(message).await {
                Ok(response) => Ok((
                    response.code().to_string().parse().ok(),
                    response.message().collect::<Vec<_>>().join(" "),
                )),
                Err(error) => Err((
                    error
                        .status()
                        .and_then(|code| code.to_string().parse().ok()),
                    format!("SMTP: {error}"),
                )),
            },
            Mailer::Files(directory) => write_file(directory, message)
                .await
                .map(|path| (None, format!("written to {}", path.display())))
                .map_err(|detail| (None, detail)),
        }
    }
}

/// Write the mail as `<id>.eml` and make it durable (file and directory synced): a receipt
/// recorded as sent is on disk.
async fn write_file(directory: &Path, message: Message) -> Result<PathBuf, String> {
    tokio::fs::create_dir_all(directory)
        .await
        .map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
    let id = AsyncFileTransport::<Tokio1Executor>::new(directory)
        .send(message)
        .await
        .map_err(|error| {
            format!(
                "cannot write the receipt into {}: {error}",
                directory.display()
            )
        })?;
    let path = directory.join(format!("{id}.eml"));
    let sync = |path: PathBuf| async move {
        let file = tokio::fs::File::open(&path).await?;
        file.sync_all().await
    };
    sync(path.clone())
        .await
        .and(sync(directory.to_path_buf()).await)
        .map_err(|error| format!("cannot sync {}: {error}", path.display()))?;
    Ok(path)
}

/// Send the receipt of the delivery's charge to `email`, then record it on the charge.
pub(super) async fn send(worker: &DeliveryWorker, delivery: &Delivery, email: &str) -> Outcome {
    let ledger = &worker.ledger;
    let Some(event) = ledger
        .event(&delivery.account, &delivery.event_id)
        .await
        .ok()
        .flatten()
    else {
        return failed(
            worker,
            format!("event {} could not be read", delivery.event_id),
        );
    };
    let charge_id = event.body.stream_id.clone();
    let charge = match ledger.get_charge(&delivery.account, &charge_id).await {
        Ok(charge) => charge,
        Err(error) => {
            return failed(
                worker,
                format!("charge {charge_id} could not be read: {error}"),
            );
        }
    };
    let number = receipt_number(&delivery.account, &charge.id);
    let url = format!(
        "{}/receipts/{}/{}",
        worker.options.public_url.trim_end_matches('/'),
        delivery.account,
        charge.id
    );
    let message = match receipt_message(&worker.options.receipt_from, email, &charge, &number, &url)
    {
        Ok(message) => message,
        Err(reason) => return Outcome::Cancelled(reason),
    };
    let started = Instant::now();
    let at_ms = ledger.clock().now_unix_ms();
    let sent = worker.mailer.deliver(message).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (succeeded, status, detail) = match sent {
        Ok((status, detail)) => (true, status, detail),
        Err((status, detail)) => (false, status, detail),
    };
    let mut attempt = Attempt {
        at_ms,
        latency_ms,
        succeeded,
        status,
        detail,
        chaos: None,
    };
    if succeeded {
        let record = ReceiptSent {
            email: email.to_string(),
            receipt_number: number,
            receipt_url: url,
            delivery_id: delivery.id(),
            transport: worker.mailer.transport_name().into(),
        };
        if let Err(error) = ledger
            .record_receipt_sent(&delivery.account, &charge_id, record)
            .await
        {
            // The mail went out but the charge does not say so yet: try again (the receiver
            // may get it twice; at least once).
            attempt.succeeded = false;
            attempt.detail = format!("{}; but recording it failed: {error}", attempt.detail);
        }
    }
    Outcome::Attempted(vec![attempt])
}

fn failed(worker: &DeliveryWorker, detail: String) -> Outcome {
    Outcome::Attempted(vec![Attempt {
        at_ms: worker.ledger.clock().now_unix_ms(),
        latency_ms: 0,
        succeeded: false,
        status: None,
        detail,
        chaos: None,
    }])
}

/// The receipt mail. An address the mail library cannot use is a reason to stop, not retry.
fn receipt_message(
    from: &str,
    to: &str,
    charge: &ChargeState,
    number: &str,
    url: &str,
) -> Result<Message, String> {
    let from = from
        .parse()
        .map_err(|error| format!("the receipt sender {from} is not a usable address: {error}"))?;
    let to = to
        .parse()
        .map_err(|error| format!("{to} is not an address a receipt can be sent to: {error}"))?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Your receipt [#{number}]"))
        .header(ContentType::TEXT_PLAIN)
        .body(receipt_text(charge, number, url))
        .map_err(|error| format!("the receipt could not be built: {error}"))
}

/// What a receipt says, in the mail and on its page.
pub fn receipt_text(charge: &ChargeState, number: &str, url: &str) -> String {
    let currency = charge.currency.to_ascii_uppercase();
    let amount = format_amount(charge.money.captured, &charge.currency);
    let mut text = format!("Receipt #{number}\n\nAmount paid: {amount} {currency}\n");
    if charge.money.refunded > 0 {
        text.push_str(&format!(
            "Refunded: {} {currency}\n",
            format_amount(charge.money.refunded, &charge.currency)
        ));
    }
    text.push_str(&format!(
        "Description: {}\nCharge: {}\n",
        charge.description.as_deref().unwrap_or("(none)"),
        charge.id
    ));
    text.push_str(&format!("\nView this receipt: {url}\n"));
    text
}

/// `GET /receipts/{account}/{charge}`: the receipt of a charge that was sent one, as text.
/// Like Stripe's receipt links it needs no key: the link itself (a random charge id under its
/// account) is what is shared.
pub async fn receipt_page(
    State(app): State<App>,
    UrlPath((account, charge_id)): UrlPath<(String, String)>,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "No such receipt.\n").into_response();
    let Ok(charge) = app.ledger.get_charge(&account, &charge_id).await else {
        return not_found();
    };
    let (Some(number), Some(url)) = (&charge.receipt_number, &charge.receipt_url) else {
        return not_found();
    };
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        receipt_text(&charge, number, url),
    )
        .into_response()
}
