//! Webhook endpoints, the side effects each write asks for (outbox entries), receipts recorded as sent, and deliveries read and resent.

use super::*;
use crate::domain::stripe::webhooks::{
    CreateWebhookEndpoint, EndpointContext, UpdateWebhookEndpoint, stripe_event_type,
};
use crate::domain::webhooks::{ChargeTransition, ReceiptSent, event_destinations, side_effects};
use crate::domain::{Destination, WEBHOOK_ENDPOINTS_STREAM, WebhookEndpoint, WebhookEndpoints};
use crate::store::{Delivery, DeliveryIntent, DeliveryReason, DeliveryState};

impl Ledger {
    /// The account's webhook endpoints, oldest first.
    pub async fn webhook_endpoints(&self, account: &str) -> Result<WebhookEndpoints, LedgerError> {
        let account = &AccountId::parse(account)?;
        Ok(self.load_endpoints(account).await?.0)
    }

    async fn load_endpoints(
        &self,
        account: &str,
    ) -> Result<(WebhookEndpoints, Option<StoredProjection>), LedgerError> {
        let stored = self.store.load(account, WEBHOOK_ENDPOINTS_STREAM).await?;
        let endpoints = endpoints_of(stored.as_ref())?;
        Ok((endpoints, stored))
    }

    /// Create a webhook endpoint; the result holds its secret (shown once, at creation).
    pub async fn create_webhook_endpoint(
        &self,
        account: &str,
        command: CreateWebhookEndpoint,
        request: RequestMeta,
    ) -> Result<WebhookEndpoint, LedgerError> {
        let account = &AccountId::parse(account)?;
        let context = EndpointContext {
            now_unix: self.clock.now_unix(),
            livemode: account.livemode(),
            endpoint_id: ids::random_id("we_", 24),
            secret: ids::random_id("whsec_", 32),
        };
        self.execute(
            account,
            WEBHOOK_ENDPOINTS_STREAM,
            || fingerprint("create_webhook_endpoint", "", &command),
            request,
            |current| {
                let endpoints = endpoints_of(current)?;
                let payload =
                    domain::stripe::webhooks::create_endpoint(&endpoints, &command, &context)?;
                fold_endpoints(current, payload, &context.endpoint_id)
            },
        )
        .await
    }

    /// Update a webhook endpoint; one that would not change is returned as it is.
    pub async fn update_webhook_endpoint(
        &self,
        account: &str,
        endpoint_id: &str,
        command: UpdateWebhookEndpoint,
        request: RequestMeta,
    ) -> Result<WebhookEndpoint, LedgerError> {
        let account = &AccountId::parse(account)?;
        self.execute(
            account,
            WEBHOOK_ENDPOINTS_STREAM,
            || fingerprint("update_webhook_endpoint", endpoint_id, &command),
            request,
            |current| {
                let endpoints = endpoints_of(current)?;
                match domain::stripe::webhooks::update_endpoint(&endpoints, endpoint_id, &command)?
                {
                    None => Ok(Decision::Unchanged(
                        domain::stripe::webhooks::existing(&endpoints, endpoint_id)?.clone(),
                    )),
                    Some(payload) => fold_endpoints(current, payload, endpoint_id),
                }
            },
        )
        .await
    }

    /// Delete a webhook endpoint: it receives nothing more, and its pending deliveries are
    /// cancelled when they next come due. Returns the endpoint as it was.
    pub async fn delete_webhook_endpoint(
        &self,
        account: &str,
        endpoint_id: &str,
        request: RequestMeta,
    ) -> Result<WebhookEndpoint, LedgerError> {
        let account = &AccountId::parse(account)?;
        self.execute(
            account,
            WEBHOOK_ENDPOINTS_STREAM,
            || fingerprint("delete_webhook_endpoint", endpoint_id, &()),
            request,
            |current| {
                let endpoints = endpoints_of(current)?;
                let deleted = domain::stripe::webhooks::existing(&endpoints, endpoint_id)?.clone();
                let payload = domain::stripe::webhooks::delete_endpoint(&endpoints, endpoint_id)?;
                let projection =
                    domain::apply(current.map(|stored| stored.projection.clone()), &payload)
                        .map_err(LedgerError::corrupt_stream(WEBHOOK_ENDPOINTS_STREAM))?;
                Ok(Decision::Append {
                    payloads: vec![payload],
                    projection,
                    outcome: deleted,
                    linked: Vec::new(),
                })
            },
        )
        .await
    }

    /// The outbox entries of the events a write is about to append: decided from the events,
    /// the charge around each and the account's endpoints as they are now.
    pub(super) async fn plan_side_effects(
        &self,
        account: &str,
        stream_id: &str,
        current: Option<&StoredProjection>,
        payloads: &[EventPayload],
    ) -> Result<Vec<DeliveryIntent>, LedgerError> {
        let wants_webhooks = payloads
            .iter()
            .any(|payload| stripe_event_type(payload).is_some());
        let is_charge = matches!(
            current.map(|stored| &stored.projection),
            None | Some(Projection::Charge(_))
        );
        let other_side_effects = is_charge && self.side_effect_rules.is_active();
        if !wants_webhooks && !other_side_effects {
            return Ok(Vec::new());
        }
        let endpoints = if wants_webhooks {
            self.load_endpoints(account).await?.0
        } else {
            WebhookEndpoints::default()
        };
        let mut state = current.map(|stored| stored.projection.clone());
        let mut intents = Vec::new();
        for (payload_index, payload) in payloads.iter().enumerate() {
            let after = domain::apply(state.clone(), payload)
                .map_err(LedgerError::corrupt_stream(stream_id))?;
            let before_charge = match &state {
                Some(Projection::Charge(charge)) => Some(charge.as_ref()),
                _ => None,
            };
            let transition = match &after {
                Projection::Charge(charge) => Some(ChargeTransition {
                    before: before_charge,
                    after: charge,
                }),
                _ => None,
            };
            for destination in
                side_effects(payload, transition, &endpoints, &self.side_effect_rules)
            {
                intents.push(DeliveryIntent {
                    payload_index,
                    destination,
                });
            }
            state = Some(after);
        }
        Ok(intents)
    }

    /// Record that a receipt was sent. Idempotent per delivery: a retried record (after a crash
    /// between sending and recording) appends nothing twice.
    pub async fn record_receipt_sent(
        &self,
        account: &str,
        charge_id: &str,
        sent: ReceiptSent,
    ) -> Result<ChargeState, LedgerError> {
        let account = &AccountId::parse(account)?;
        let mut request = RequestMeta::library();
        request.actor = "outbox".into();
        request.idempotency_key = Some(format!("receipt:{}", sent.delivery_id));
        self.execute(
            account,
            charge_id,
            || fingerprint("record_receipt_sent", charge_id, &sent),
            request,
            |current| {
                let charge = existing_charge(charge_id, current)?;
                fold_new_charge(
                    charge_id,
                    Some(charge),
                    EventPayload::ReceiptSent(sent.clone()),
                )
            },
        )
        .await
    }

    /// An event's deliveries (webhooks, receipts), oldest first.
    pub async fn event_deliveries(
        &self,
        account: &str,
        event: &RecordedEvent,
    ) -> Result<Vec<Delivery>, LedgerError> {
        let account = &AccountId::parse(account)?;
        Ok(self
            .store
            .event_deliveries(account, event.body.sequence)
            .await?)
    }

    /// How many of the event's webhook endpoints have not acknowledged it yet (Stripe's
    /// `pending_webhooks`): endpoints it went to with no delivery that succeeded.
    pub async fn pending_webhooks(
        &self,
        account: &str,
        event: &RecordedEvent,
    ) -> Result<usize, LedgerError> {
        let deliveries = self.event_deliveries(account, event).await?;
        Ok(pending_webhook_count(&deliveries))
    }

    /// Deliver an event again to the endpoints that receive it now (and, for an Omise event,
    /// to the Omise webhook). Returns the new deliveries, pending.
    pub async fn resend_event(
        &self,
        account: &str,
        event: &RecordedEvent,
    ) -> Result<Vec<Delivery>, LedgerError> {
        let account = &AccountId::parse(account)?;
        let endpoints = self.load_endpoints(account).await?.0;
        let charge = match self.store.load(account, &event.body.stream_id).await? {
            Some(StoredProjection {
                projection: Projection::Charge(charge),
                ..
            }) => Some(charge),
            _ => None,
        };
        let destinations = event_destinations(
            &event.body.payload,
            charge.as_ref().map(|charge| charge.origin()),
            &endpoints,
            &self.side_effect_rules,
        );
        let existing = self
            .store
            .event_deliveries(account, event.body.sequence)
            .await?;
        let first_number = existing
            .iter()
            .map(|delivery| delivery.number + 1)
            .max()
            .unwrap_or(0);
        let now_ms = self.clock.now_unix_ms();
        let deliveries: Vec<Delivery> = destinations
            .into_iter()
            .enumerate()
            .map(|(offset, destination)| Delivery {
                account: account.to_string(),
                event_id: event.body.event_id.clone(),
                event_sequence: event.body.sequence,
                number: first_number + offset as u32,
                destination,
                reason: DeliveryReason::Resend,
                created_at_ms: now_ms,
                state: DeliveryState::Pending {
                    next_attempt_at_ms: now_ms,
                },
                attempts: Vec::new(),
            })
            .collect();
        self.store.save_deliveries(deliveries.clone()).await?;
        Ok(deliveries)
    }
}

/// Endpoints that were sent the event and have no successful delivery of it.
pub fn pending_webhook_count(deliveries: &[Delivery]) -> usize {
    let mut pending = std::collections::BTreeSet::new();
    let mut delivered = std::collections::BTreeSet::new();
    for delivery in deliveries {
        if let Destination::Webhook { endpoint_id } = &delivery.destination {
            if matches!(delivery.state, DeliveryState::Delivered { .. }) {
                delivered.insert(endpoint_id.as_str());
            } else {
                pending.insert(endpoint_id.as_str());
            }
        }
    }
    pending.difference(&delivered).count()
}

fn endpoints_of(current: Option<&StoredProjection>) -> Result<WebhookEndpoints, LedgerError> {
    match current.map(|stored| &stored.projection) {
        None => Ok(WebhookEndpoints::default()),
        Some(Projection::WebhookEndpoints(endpoints)) => Ok(endpoints.clone()),
        Some(other) => Err(Failure::CorruptStream {
            stream_id: WEBHOOK_ENDPOINTS_STREAM.into(),
            source: FoldError::WrongStream {
                event_type: "webhook_endpoint.created",
                stream_kind: other.kind_name(),
            },
        }
        .into()),
    }
}

/// Fold an endpoint event onto the stream; the caller gets the endpoint as it now is.
fn fold_endpoints(
    current: Option<&StoredProjection>,
    payload: EventPayload,
    endpoint_id: &str,
) -> Result<Decision<WebhookEndpoint>, LedgerError> {
    let projection = domain::apply(current.map(|stored| stored.projection.clone()), &payload)
        .map_err(LedgerError::corrupt_stream(WEBHOOK_ENDPOINTS_STREAM))?;
    let Projection::WebhookEndpoints(endpoints) = &projection else {
        return Err(unexpected_payload(
            WEBHOOK_ENDPOINTS_STREAM,
            &payload,
            "webhook endpoints",
        ));
    };
    let endpoint =
        endpoints
            .get(endpoint_id)
            .cloned()
            .ok_or_else(|| RequestError::NoSuchWebhookEndpoint {
                id: endpoint_id.to_string(),
            })?;
    Ok(Decision::Append {
        payloads: vec![payload],
        projection,
        outcome: endpoint,
        linked: Vec::new(),
    })
}
