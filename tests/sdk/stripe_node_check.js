// Drives a chargeledger server with the official stripe-node SDK, unchanged.
//
// Run by tests/sdk.rs: `node stripe_node_check.js write STATE` against a fresh server, then
// `node stripe_node_check.js verify STATE` against the same data after a restart.
// Environment: CHARGELEDGER_URL, CHARGELEDGER_KEY, NODE_PATH (where stripe is installed).
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const Stripe = require('stripe');

const url = new URL(process.env.CHARGELEDGER_URL);
const stripe = new Stripe(process.env.CHARGELEDGER_KEY, {
  host: url.hostname,
  port: Number(url.port),
  protocol: 'http',
  maxNetworkRetries: 2,
});

async function expectError(call, status, fields = {}) {
  try {
    await call();
  } catch (error) {
    assert.equal(error.statusCode, status, error.message);
    for (const [name, value] of Object.entries(fields)) {
      assert.equal(error[name], value, `${name} of ${error.message}`);
    }
    return error;
  }
  assert.fail(`expected an error with status ${status}`);
}

async function write(statePath) {
  const customer = await stripe.customers.create({ email: 'node@example.com', name: 'Node Rosen' });
  assert.match(customer.id, /^cus_/);

  let charge = await stripe.charges.create({
    amount: 2500,
    currency: 'usd',
    source: 'tok_visa',
    capture: false,
    metadata: { order_id: '99' },
  });
  assert.equal(charge.captured, false);

  charge = await stripe.charges.update(charge.id, { description: 'from node' });
  assert.equal(charge.description, 'from node');
  charge = await stripe.charges.update(charge.id, { metadata: { channel: 'app' } });
  assert.deepEqual(charge.metadata, { order_id: '99', channel: 'app' });
  charge = await stripe.charges.update(charge.id, { receipt_email: 'node@example.com' });
  assert.equal(charge.receipt_email, 'node@example.com');
  charge = await stripe.charges.update(charge.id, {
    shipping: { name: 'Node Rosen', address: { line1: '2 Side St', country: 'GB' }, phone: '+44 20' },
  });
  assert.equal(charge.shipping.address.country, 'GB');
  charge = await stripe.charges.update(charge.id, { fraud_details: { user_report: 'fraudulent' } });
  assert.equal(charge.fraud_details.user_report, 'fraudulent');
  charge = await stripe.charges.update(charge.id, { customer: customer.id, expand: ['customer'] });
  assert.equal(charge.customer.name, 'Node Rosen');
  charge = await stripe.charges.update(charge.id, { transfer_group: 'node_group' });
  assert.equal(charge.transfer_group, 'node_group');

  // Unset semantics.
  charge = await stripe.charges.update(charge.id, { metadata: { channel: '' } });
  assert.deepEqual(charge.metadata, { order_id: '99' });
  charge = await stripe.charges.update(charge.id, { metadata: '' });
  assert.deepEqual(charge.metadata, {});
  charge = await stripe.charges.update(charge.id, { shipping: '' });
  assert.equal(charge.shipping, null);
  charge = await stripe.charges.update(charge.id, { metadata: { kept: 'yes' } });

  // Errors.
  await expectError(() => stripe.charges.update(charge.id, { colour: 'red' }), 400, {
    code: 'parameter_unknown',
    param: 'colour',
    message: 'Received unknown parameter: colour',
  });
  await expectError(() => stripe.charges.retrieve('ch_missing'), 404, { code: 'resource_missing' });
  await expectError(() => stripe.charges.update(charge.id, { fraud_details: { user_report: 'meh' } }), 400, {
    param: 'fraud_details[user_report]',
  });
  const stranger = new Stripe('pk_test_' + process.env.CHARGELEDGER_KEY.slice('sk_test_'.length), {
    host: url.hostname,
    port: Number(url.port),
    protocol: 'http',
  });
  await expectError(() => stranger.charges.update(charge.id, { description: 'x' }), 403);

  // Capture and refunds.
  const captured = await stripe.charges.capture(charge.id);
  assert.equal(captured.amount_captured, 2500);
  await expectError(() => stripe.charges.capture(charge.id), 400, { code: 'charge_already_captured' });
  const refund = await stripe.refunds.create({ charge: charge.id, amount: 1000 });
  assert.equal(refund.amount, 1000);

  // Refunds as a resource: listed account-wide, retrieved, their metadata updated.
  const refunds = await stripe.refunds.list({ charge: charge.id });
  assert.deepEqual(refunds.data.map((item) => item.id), [refund.id]);
  assert.equal((await stripe.refunds.retrieve(refund.id)).amount, 1000);
  const updated = await stripe.refunds.update(refund.id, { metadata: { ticket: 'N-1' } });
  assert.deepEqual(updated.metadata, { ticket: 'N-1' });
  const refundEvent = (await stripe.events.list({ type: 'refund.updated' })).data[0];
  assert.equal(refundEvent.data.object.id, refund.id);
  assert.deepEqual(refundEvent.data.previous_attributes, { metadata: { ticket: null } });
  await expectError(() => stripe.refunds.retrieve('re_missing'), 404, {
    code: 'resource_missing',
    param: 'id',
  });

  // A decline is recorded: StripeCardError naming a failed charge that can be read.
  const declined = await expectError(
    () => stripe.charges.create({ amount: 900, currency: 'usd', source: 'tok_chargeDeclinedStolenCard' }),
    402,
    { type: 'StripeCardError', code: 'card_declined', decline_code: 'stolen_card' },
  );
  const failed = await stripe.charges.retrieve(declined.raw.charge);
  assert.equal(failed.status, 'failed');
  assert.equal(failed.outcome.reason, 'stolen_card');

  // Pagination with autoPagingToArray (starting_after under the hood).
  for (let n = 0; n < 4; n += 1) {
    await stripe.charges.create({ amount: 300 + n, currency: 'eur', source: 'tok_mastercard' });
  }
  const all = await stripe.charges.list({ limit: 2 }).autoPagingToArray({ limit: 100 });
  // Newest first: the four above, the failed charge, then the first one.
  assert.equal(all.length, 6);
  assert.equal(all[4].id, failed.id);
  assert.equal(all[5].id, charge.id);

  // Events.
  const events = await stripe.events.list({ type: 'charge.updated', limit: 1 });
  assert.equal(events.data[0].data.object.id, charge.id);
  assert.deepEqual(events.data[0].data.previous_attributes, { metadata: { kept: null } });
  assert.match(events.data[0].request.idempotency_key, /^stripe-node-retry-/);

  // Idempotent retries.
  const first = await stripe.charges.create(
    { amount: 901, currency: 'usd', source: 'tok_visa' },
    { idempotencyKey: 'node-retry-1' },
  );
  const again = await stripe.charges.create(
    { amount: 901, currency: 'usd', source: 'tok_visa' },
    { idempotencyKey: 'node-retry-1' },
  );
  assert.equal(again.id, first.id);
  assert.equal(again.lastResponse.headers['idempotent-replayed'], 'true');
  await expectError(
    () => stripe.charges.create({ amount: 902, currency: 'usd', source: 'tok_visa' }, { idempotencyKey: 'node-retry-1' }),
    400,
    { type: 'StripeIdempotencyError' },
  );

  // Search: one page, then every page through autoPagingToArray (it throws if has_more and
  // next_page disagree); a malformed query is a StripeInvalidRequestError naming `query`.
  const tagged = [];
  for (const amount of [1201, 1202, 1203]) {
    tagged.push((await stripe.charges.create({ amount, currency: 'usd', source: 'tok_visa', metadata: { search_tag: 'node' } })).id);
  }
  const newestFirst = [...tagged].reverse();
  const page = await stripe.charges.search({ query: "metadata['search_tag']:'node'", limit: 2 });
  assert.equal(page.object, 'search_result');
  assert.equal(page.has_more, true);
  assert.deepEqual(page.data.map((found) => found.id), newestFirst.slice(0, 2));
  const every = await stripe.charges.search({ query: "metadata['search_tag']:'node'", limit: 2 }).autoPagingToArray({ limit: 10 });
  assert.deepEqual(every.map((found) => found.id), newestFirst);
  const customers = await stripe.customers.search({ query: "email:'node@example.com'" });
  assert.equal(customers.data[0].id, customer.id);
  await expectError(() => stripe.charges.search({ query: 'amount>1 AND amount<5 OR status:"failed"' }), 400, {
    type: 'StripeInvalidRequestError',
    param: 'query',
  });

  // Faults on demand (retries off, so the check is quick): Stripe's error classes, and nothing
  // is appended.
  const before = (await stripe.charges.list({ limit: 100 })).data.length;
  for (const [fault, status, type] of [
    ['rate_limit', 429, 'StripeRateLimitError'],
    ['api_error', 500, 'StripeAPIError'],
  ]) {
    await expectError(
      () =>
        stripe.charges.create(
          { amount: 500, currency: 'usd', source: 'tok_visa' },
          { headers: { 'Chargeledger-Simulate': fault }, maxNetworkRetries: 0 },
        ),
      status,
      { type },
    );
  }
  assert.equal((await stripe.charges.list({ limit: 100 })).data.length, before);

  fs.writeFileSync(statePath, JSON.stringify({ charge: charge.id, retried: first.id, refund: refund.id, tagged }));
}

async function verify(statePath) {
  const saved = JSON.parse(fs.readFileSync(statePath, 'utf8'));
  const charge = await stripe.charges.retrieve(saved.charge);
  assert.deepEqual(charge.metadata, { kept: 'yes' });
  assert.equal(charge.amount_refunded, 1000);
  const again = await stripe.charges.create(
    { amount: 901, currency: 'usd', source: 'tok_visa' },
    { idempotencyKey: 'node-retry-1' },
  );
  assert.equal(again.id, saved.retried);
  const all = await stripe.charges.list({ limit: 100 });
  assert.equal(all.data.length, 10);
  const found = await stripe.charges.search({ query: "metadata['search_tag']:'node'" });
  assert.deepEqual(found.data.map((charge) => charge.id), [...saved.tagged].reverse());
  assert.deepEqual((await stripe.refunds.retrieve(saved.refund)).metadata, { ticket: 'N-1' });
}

const [phase, statePath] = process.argv.slice(2);
({ write, verify })[phase](statePath).then(
  () => console.log(`stripe-node ${Stripe.PACKAGE_VERSION || ''}: ${phase} passed`),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
