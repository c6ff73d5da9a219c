//! Stripe's operations on the ledger: create, update, capture and refund charges, create customers.

use super::*;

impl Ledger {
    /// Create a charge: authorize it, and capture it unless `command.capture` is false.
    pub async fn create_charge(
        &self,
        account: &str,
        command: CreateCharge,
        request: RequestMeta,
    ) -> Result<ChargeState, LedgerError> {
        let account = &AccountId::parse(account)?;
        let customer = match &command.customer {
            Some(id) => self.find_customer(account, id).await?,
            None => None,
        };
        let context = self.decision_context(account);
        let charge_id = context.ids.charge.clone();
        self.execute(
            account,
            &charge_id,
            || fingerprint("create_charge", "", &command),
            request,
            |current| {
                if current.is_some() {
                    // A freshly drawn id collided with an existing charge: vanishingly rare, and
                    // refusing is safer than overwriting. The caller may retry.
                    return Err(Refusal::Contention {
                        stream_id: charge_id.clone(),
                        attempts: 1,
                    }
                    .into());
                }
                let payload =
                    domain::stripe::decide::create_charge(&command, customer.as_ref(), &context)?;
                fold_new_charge(&charge_id, None, payload)
            },
        )
        .await
    }

    /// Update a charge. Parameters left `None` keep their value; an update that changes nothing
    /// appends nothing and returns the charge as it is.
    pub async fn update_charge(
        &self,
        account: &str,
        charge_id: &str,
        command: UpdateCharge,
        request: RequestMeta,
    ) -> Result<ChargeState, LedgerError> {
        let account = &AccountId::parse(account)?;
        let referenced_customer = match &command.customer {
            Some(id) => self.find_customer(account, id).await?,
            None => None,
        };
        self.execute_with_policy(
            account,
            charge_id,
            || fingerprint("update_charge", charge_id, &command),
            request,
            |current, policy| {
                let charge = existing_charge(charge_id, current)?;
                match domain::stripe::decide::update_charge(
                    &charge,
                    &command,
                    referenced_customer.as_ref(),
                    policy,
                )? {
                    None => Ok(Decision::Unchanged(charge)),
                    Some(payload) => fold_new_charge(charge_id, Some(charge), payload),
                }
            },
        )
        .await
    }

    /// Capture an authorized charge, in full or in part.
    pub async fn capture_charge(
        &self,
        account: &str,
        charge_id: &str,
        command: CaptureCharge,
        request: RequestMeta,
    ) -> Result<ChargeState, LedgerError> {
        let account = &AccountId::parse(account)?;
        let context = self.decision_context(account);
        self.execute(
            account,
            charge_id,
            || fingerprint("capture_charge", charge_id, &command),
            request,
            |current| {
                let charge = existing_charge(charge_id, current)?;
                let payload = domain::stripe::decide::capture_charge(&charge, &command, &context)?;
                fold_new_charge(charge_id, Some(charge), payload)
            },
        )
        .await
    }

    /// Refund a charge, in full or in part.
    pub async fn refund_charge(
        &self,
        account: &str,
        charge_id: &str,
        command: RefundCharge,
        request: RequestMeta,
    ) -> Result<Refunded, LedgerError> {
        let account = &AccountId::parse(account)?;
        let context = self.decision_context(account);
        self.execute(
            account,
            charge_id,
            || fingerprint("refund_charge", charge_id, &command),
            request,
            |current| {
                let charge = existing_charge(charge_id, current)?;
                let payload = domain::stripe::decide::refund_charge(&charge, &command, &context)?;
                let EventPayload::ChargeRefunded(refunded) = &payload else {
                    return Err(unexpected_payload(charge_id, &payload, "charge"));
                };
                let refund = refunded.refund.clone();
                fold_new_charge(charge_id, Some(charge), payload)
                    .map(|decision| decision.map(|charge| Refunded { refund, charge }))
            },
        )
        .await
    }

    /// Create a customer.
    pub async fn create_customer(
        &self,
        account: &str,
        command: CreateCustomer,
        request: RequestMeta,
    ) -> Result<Customer, LedgerError> {
        let account = &AccountId::parse(account)?;
        let context = self.decision_context(account);
        let customer_id = context.ids.customer.clone();
        self.execute(
            account,
            &customer_id,
            || fingerprint("create_customer", "", &command),
            request,
            |current| {
                if current.is_some() {
                    return Err(Refusal::Contention {
                        stream_id: customer_id.clone(),
                        attempts: 1,
                    }
                    .into());
                }
                let payload = domain::stripe::decide::create_customer(&command, &context)?;
                let projection = domain::apply(None, &payload)
                    .map_err(LedgerError::corrupt_stream(&customer_id))?;
                let Projection::Customer(customer) = &projection else {
                    return Err(unexpected_payload(&customer_id, &payload, "customer"));
                };
                Ok(Decision::Append {
                    outcome: customer.clone(),
                    payloads: vec![payload],
                    projection,
                    linked: Vec::new(),
                })
            },
        )
        .await
    }
}
