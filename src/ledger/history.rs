//! History and time travel: a charge's audit trail, its events, the charge at a version or a moment, the states around an event, the live feed.

use super::*;

impl Ledger {
    /// A charge's audit trail: every version with its time, request and field-level changes.
    pub async fn history(
        &self,
        account: &str,
        charge_id: &str,
    ) -> Result<Vec<HistoryEntry>, LedgerError> {
        self.history_in_view(account, charge_id, &audit::LEDGER_VIEW)
            .await
    }

    /// A charge's history as `view` shows each state (a dialect's wire object, say).
    pub async fn history_in_view(
        &self,
        account: &str,
        charge_id: &str,
        view: &audit::HistoryView,
    ) -> Result<Vec<HistoryEntry>, LedgerError> {
        let events = self.charge_events(account, charge_id, None).await?;
        audit::history_in_view(&events, view).map_err(LedgerError::corrupt_stream(charge_id))
    }

    /// The events of one charge, oldest first.
    pub async fn charge_events(
        &self,
        account: &str,
        charge_id: &str,
        max_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, LedgerError> {
        let account = &AccountId::parse(account)?;
        let events = self
            .store
            .read_stream(account, charge_id, max_version)
            .await?;
        let is_charge = events.first().is_some_and(|event| {
            matches!(
                event.body.payload,
                EventPayload::ChargeCreated(_) | EventPayload::ChargeFailed(_)
            )
        });
        if !is_charge {
            return Err(RequestError::NoSuchCharge {
                id: charge_id.to_string(),
            }
            .into());
        }
        Ok(events)
    }

    /// The charge as it was right after its `version`-th event.
    pub async fn charge_at_version(
        &self,
        account: &str,
        charge_id: &str,
        version: u64,
    ) -> Result<ChargeState, LedgerError> {
        let events = self
            .charge_events(account, charge_id, Some(version))
            .await?;
        let latest = events.last().map_or(0, |event| event.body.stream_version);
        if version == 0 || latest < version {
            let (_, latest) = self.get_charge_with_version(account, charge_id).await?;
            return Err(Refusal::NoSuchVersion {
                charge_id: charge_id.to_string(),
                version,
                latest,
            }
            .into());
        }
        fold_charge(charge_id, &events)
    }

    /// The charge as it was at a moment: every event recorded at or before `as_of`.
    pub async fn charge_as_of(
        &self,
        account: &str,
        charge_id: &str,
        as_of: OffsetDateTime,
    ) -> Result<ChargeState, LedgerError> {
        let events = self.charge_events(account, charge_id, None).await?;
        let created_at = events[0].body.recorded_at;
        if as_of < created_at {
            return Err(Refusal::NotYetCreated {
                charge_id: charge_id.to_string(),
                as_of,
                created_at,
            }
            .into());
        }
        let until: Vec<RecordedEvent> = events
            .into_iter()
            .take_while(|event| event.body.recorded_at <= as_of)
            .collect();
        fold_charge(charge_id, &until)
    }

    /// The state of an event's stream right before and right after it: what event objects show.
    pub async fn states_around(
        &self,
        account: &str,
        event: &RecordedEvent,
    ) -> Result<(Option<Projection>, Projection), LedgerError> {
        let account = &AccountId::parse(account)?;
        let stream_id = &event.body.stream_id;
        let stream = self
            .store
            .read_stream(account, stream_id, Some(event.body.stream_version))
            .await?;
        let corrupt = LedgerError::corrupt_stream(stream_id);
        let Some((last, earlier)) = stream.split_last() else {
            return Err(corrupt(FoldError::CannotStartStream {
                event_type: event.body.payload.event_type(),
            }));
        };
        let before =
            domain::fold(earlier.iter().map(|event| &event.body.payload)).map_err(corrupt)?;
        let after = domain::apply(before.clone(), &last.body.payload).map_err(corrupt)?;
        Ok((before, after))
    }

    /// Up to `limit` events of the whole log after `after_sequence`, in order.
    pub async fn events_after(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LedgerError> {
        Ok(self.store.read_all_after(after_sequence, limit).await?)
    }

    /// Follow the log: first every event after `after_sequence`, then each new one as it
    /// becomes durable, none missed and none twice.
    pub fn subscribe(&self, after_sequence: u64) -> Subscription {
        Subscription::new(self.store.clone(), after_sequence)
    }

    /// Finish pending writes and close the store.
    pub async fn close(&self) -> Result<(), LedgerError> {
        Ok(self.store.close().await?)
    }
}
