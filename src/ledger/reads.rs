//! Reads of current state: charges, customers, events, the account's policy, idempotency records.

use super::*;

impl Ledger {
    /// Set an account's own rules (recorded as an event, so policy changes are audited too).
    pub async fn set_account_policy(
        &self,
        account: &str,
        policy: AccountPolicy,
        request: RequestMeta,
    ) -> Result<AccountPolicy, LedgerError> {
        let account = &AccountId::parse(account)?;
        self.execute(
            account,
            POLICY_STREAM,
            || fingerprint("set_account_policy", "", &policy),
            request,
            |current| {
                let existing = match current.map(|stored| &stored.projection) {
                    Some(Projection::AccountPolicy(existing)) => *existing,
                    _ => AccountPolicy::default(),
                };
                if current.is_some() && existing == policy {
                    return Ok(Decision::Unchanged(policy));
                }
                Ok(Decision::Append {
                    payloads: vec![EventPayload::AccountPolicySet(AccountPolicySet { policy })],
                    projection: Projection::AccountPolicy(policy),
                    outcome: policy,
                    linked: Vec::new(),
                })
            },
        )
        .await
    }

    /// An account's rules (the defaults until it sets any).
    pub async fn account_policy(&self, account: &str) -> Result<AccountPolicy, LedgerError> {
        let account = &AccountId::parse(account)?;
        Ok(self.account_policy_with_version(account).await?.0)
    }

    /// An account's rules and the version of its policy stream (0 while it has set none).
    pub(super) async fn account_policy_with_version(
        &self,
        account: &str,
    ) -> Result<(AccountPolicy, u64), LedgerError> {
        match self.store.load(account, POLICY_STREAM).await? {
            None => Ok((AccountPolicy::default(), 0)),
            Some(StoredProjection {
                projection: Projection::AccountPolicy(policy),
                version,
                ..
            }) => Ok((policy, version)),
            Some(other) => Err(Failure::CorruptStream {
                stream_id: POLICY_STREAM.to_string(),
                source: FoldError::WrongStream {
                    event_type: "account.policy_set",
                    stream_kind: other.projection.kind_name(),
                },
            }
            .into()),
        }
    }

    /// A charge as it is now.
    pub async fn get_charge(
        &self,
        account: &str,
        charge_id: &str,
    ) -> Result<ChargeState, LedgerError> {
        let account = &AccountId::parse(account)?;
        let stored = self.store.load(account, charge_id).await?;
        existing_charge(charge_id, stored.as_ref())
    }

    /// A charge and the version of its history it reflects.
    pub async fn get_charge_with_version(
        &self,
        account: &str,
        charge_id: &str,
    ) -> Result<(ChargeState, u64), LedgerError> {
        let account = &AccountId::parse(account)?;
        let stored = self.store.load(account, charge_id).await?;
        let version = stored.as_ref().map_or(0, |stored| stored.version);
        Ok((existing_charge(charge_id, stored.as_ref())?, version))
    }

    /// A customer.
    pub async fn get_customer(
        &self,
        account: &str,
        customer_id: &str,
    ) -> Result<Customer, LedgerError> {
        let account = &AccountId::parse(account)?;
        self.find_customer(account, customer_id)
            .await?
            .ok_or_else(|| {
                RequestError::NoSuchCustomer {
                    id: customer_id.to_string(),
                }
                .into()
            })
    }

    /// One page of an account's charges, newest first.
    pub async fn list_charges(
        &self,
        account: &str,
        query: &ListCharges,
    ) -> Result<Page<ChargeState>, LedgerError> {
        let account = &AccountId::parse(account)?;
        let limit = query.limit.clamp(1, 100);
        Ok(self
            .store
            .list_charges(account, &query.cursor, limit, &|charge| {
                query.matches(charge)
            })
            .await?)
    }

    /// One page of an account's customers, newest first.
    pub async fn list_customers(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
    ) -> Result<Page<Customer>, LedgerError> {
        let account = &AccountId::parse(account)?;
        Ok(self
            .store
            .list_customers(account, cursor, limit.clamp(1, 100))
            .await?)
    }

    /// One page of an account's events, newest first, keeping those `filter` accepts.
    pub async fn list_events(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'event> Fn(&'event RecordedEvent) -> bool + Send + Sync),
    ) -> Result<Page<RecordedEvent>, LedgerError> {
        let account = &AccountId::parse(account)?;
        Ok(self
            .store
            .list_events(account, cursor, limit.clamp(1, 100), filter)
            .await?)
    }

    /// One of an account's events by its `evt_…` id; `None` if the account has no such event.
    pub async fn event(
        &self,
        account: &str,
        event_id: &str,
    ) -> Result<Option<RecordedEvent>, LedgerError> {
        let account = &AccountId::parse(account)?;
        Ok(self.store.event(account, event_id).await?)
    }

    /// Forget idempotency keys first used more than `retention` ago; returns how many.
    pub async fn purge_idempotency_keys(&self, retention: Duration) -> Result<usize, LedgerError> {
        let retention_seconds = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        let cutoff = self
            .clock
            .now()
            .unix_timestamp()
            .saturating_sub(retention_seconds);
        Ok(self.store.purge_idempotency(cutoff).await?)
    }

    /// Whether a first response is stored for this account's idempotency key.
    pub async fn has_idempotency_record(
        &self,
        account: &str,
        key: &str,
    ) -> Result<bool, LedgerError> {
        let account = &AccountId::parse(account)?;
        Ok(self.store.idempotency_record(account, key).await?.is_some())
    }
}
