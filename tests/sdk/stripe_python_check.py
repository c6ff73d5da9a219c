"""Drives a chargeledger server with the official stripe-python SDK, unchanged.

Run by tests/sdk.rs: `python stripe_python_check.py write STATE` against a fresh server, then
`python stripe_python_check.py verify STATE` against the same data after a restart.
Environment: CHARGELEDGER_URL, CHARGELEDGER_KEY. Any failed check raises and exits non-zero.
"""

import json
import os
import sys

import stripe

stripe.api_key = os.environ["CHARGELEDGER_KEY"]
stripe.api_base = os.environ["CHARGELEDGER_URL"]
# With retries on, stripe-python sends an Idempotency-Key with every POST, as in production.
stripe.max_network_retries = 2


def expect_error(kind, call, status, code=None, param=None, message=None):
    try:
        call()
    except kind as error:
        assert error.http_status == status, (error.http_status, status, error)
        if code is not None:
            assert error.code == code, (error.code, code)
        if param is not None:
            assert error.param == param, (error.param, param)
        if message is not None:
            assert error.user_message == message, (error.user_message, message)
        return error
    raise AssertionError(f"expected {kind.__name__} ({status})")


def write(state_path):
    customer = stripe.Customer.create(email="jenny@example.com", name="Jenny Rosen")
    assert customer.id.startswith("cus_")

    charge = stripe.Charge.create(
        amount=2000,
        currency="usd",
        source="tok_visa",
        capture=False,
        description="created by stripe-python",
        metadata={"order_id": "6735"},
    )
    assert charge.object == "charge" and charge.captured is False
    assert charge.metadata["order_id"] == "6735"

    # Each update parameter.
    charge = stripe.Charge.modify(charge.id, description="updated")
    assert charge.description == "updated"
    charge = stripe.Charge.modify(charge.id, metadata={"channel": "web"})
    assert charge.metadata.to_dict() == {"order_id": "6735", "channel": "web"}
    charge = stripe.Charge.modify(charge.id, receipt_email="jenny@example.com")
    assert charge.receipt_email == "jenny@example.com"
    charge = stripe.Charge.modify(
        charge.id,
        shipping={
            "name": "Jenny Rosen",
            "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"},
            "carrier": "UPS",
            "tracking_number": "1Z999",
        },
    )
    assert charge.shipping.address.line1 == "1 Main St"
    charge = stripe.Charge.modify(charge.id, fraud_details={"user_report": "safe"})
    assert charge.fraud_details.user_report == "safe"
    charge = stripe.Charge.modify(charge.id, customer=customer.id, expand=["customer"])
    assert charge.customer.email == "jenny@example.com"
    charge = stripe.Charge.modify(charge.id, transfer_group="order_6735")
    assert charge.transfer_group == "order_6735"

    # Unset semantics: one key, then every key; an empty string unsets a field.
    charge = stripe.Charge.modify(charge.id, metadata={"channel": ""})
    assert charge.metadata.to_dict() == {"order_id": "6735"}
    charge = stripe.Charge.modify(charge.id, description="")
    assert charge.description is None
    charge = stripe.Charge.modify(charge.id, metadata="")
    assert charge.metadata.to_dict() == {}
    charge = stripe.Charge.modify(charge.id, metadata={"kept": "after restart"})

    # Errors, as Stripe words them.
    expect_error(
        stripe.InvalidRequestError,
        lambda: stripe.Charge.modify(charge.id, receipt_email="nope"),
        400,
        param="receipt_email",
        message="Invalid email address: nope",
    )
    expect_error(
        stripe.InvalidRequestError,
        lambda: stripe.Charge.modify(charge.id, shipping={"address": {"line1": "x"}}),
        400,
        code="parameter_missing",
        param="shipping[name]",
    )
    expect_error(
        stripe.InvalidRequestError,
        lambda: stripe.Charge.retrieve("ch_doesnotexist"),
        404,
        code="resource_missing",
        message="No such charge: 'ch_doesnotexist'",
    )
    expect_error(
        stripe.InvalidRequestError,
        lambda: stripe.Charge.modify(charge.id, transfer_group="another"),
        400,
        param="transfer_group",
    )
    expect_error(
        stripe.AuthenticationError,
        lambda: stripe.Charge.list(api_key="sk_test_notakeyatall1234"),
        401,
        message="Invalid API Key provided: sk_test_****1234",
    )

    # Capture, partially, then refund.
    captured = stripe.Charge.capture(charge.id, amount=1500)
    assert captured.captured is True and captured.amount_captured == 1500
    expect_error(
        stripe.InvalidRequestError,
        lambda: stripe.Charge.capture(charge.id),
        400,
        code="charge_already_captured",
    )
    refund = stripe.Refund.create(charge=charge.id, amount=500)
    assert refund.object == "refund" and refund.amount == 500
    refunds = stripe.Charge.list_refunds(charge.id)
    assert [item.amount for item in refunds.data] == [500, 500]

    # Refunds as a resource: listed account-wide, retrieved, and their metadata modified.
    assert [item.id for item in stripe.Refund.list(limit=1).data] == [refund.id]
    assert [item.id for item in stripe.Refund.list(charge=charge.id).data] == [item.id for item in refunds.data]
    assert stripe.Refund.retrieve(refund.id).amount == 500
    modified = stripe.Refund.modify(refund.id, metadata={"ticket": "T-1"})
    assert modified.metadata.to_dict() == {"ticket": "T-1"}
    updated_event = stripe.Event.list(type="refund.updated").data[0]
    assert updated_event.data.object.id == refund.id
    assert updated_event.data.previous_attributes.to_dict() == {"metadata": {"ticket": None}}
    expect_error(
        stripe.InvalidRequestError,
        lambda: stripe.Refund.retrieve("re_missing"),
        404,
        code="resource_missing",
        param="id",
        message="No such refund: 're_missing'",
    )

    # Pagination: auto_paging_iter walks every page with starting_after.
    created = [stripe.Charge.create(amount=100 + n, currency="usd", source="tok_mastercard").id for n in range(5)]
    page = stripe.Charge.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    walked = [item.id for item in stripe.Charge.list(limit=2).auto_paging_iter()]
    assert walked[:5] == list(reversed(created)), walked
    assert walked[5] == charge.id and len(walked) == 6
    mine = stripe.Charge.list(customer=customer.id)
    assert [item.id for item in mine.data] == [charge.id]

    # Events with previous_attributes and the request that caused them.
    events = stripe.Event.list(type="charge.updated", limit=100)
    newest = events.data[0]
    assert newest.data.object.id == charge.id
    assert newest.data.previous_attributes.to_dict() == {"metadata": {"kept": None}}, newest.data.previous_attributes
    assert newest.request.id.startswith("req_")
    assert newest.request.idempotency_key, "stripe-python sent an idempotency key"
    assert stripe.Event.retrieve(newest.id).id == newest.id

    # Idempotent retry: the same key and parameters replay the first result.
    first = stripe.Charge.create(amount=777, currency="usd", source="tok_amex", idempotency_key="python-retry-1")
    again = stripe.Charge.create(amount=777, currency="usd", source="tok_amex", idempotency_key="python-retry-1")
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    expect_error(
        stripe.IdempotencyError,
        lambda: stripe.Charge.create(amount=778, currency="usd", source="tok_amex", idempotency_key="python-retry-1"),
        400,
    )

    # A decline is recorded: CardError naming a failed charge that can be read and updated.
    declined = expect_error(
        stripe.CardError,
        lambda: stripe.Charge.create(amount=900, currency="usd", source="tok_chargeDeclinedInsufficientFunds"),
        402,
        code="card_declined",
    )
    assert declined.error.decline_code == "insufficient_funds", declined.error
    failed = stripe.Charge.retrieve(declined.error.charge)
    assert (failed.status, failed.failure_code, failed.outcome.type) == ("failed", "card_declined", "issuer_declined")
    failed = stripe.Charge.modify(failed.id, description="declined at checkout")
    assert (failed.status, failed.description) == ("failed", "declined at checkout")
    assert stripe.Event.list(type="charge.failed").data[0].data.object.id == failed.id

    # Faults on demand: the SDK sees Stripe's errors (after its own retries); nothing is appended.
    before = len(stripe.Charge.list(limit=100).data)
    for fault, kind, status in [("rate_limit", stripe.RateLimitError, 429), ("api_error", stripe.APIError, 500)]:
        expect_error(
            kind,
            lambda: stripe.Charge.create(
                amount=500, currency="usd", source="tok_visa", headers={"Chargeledger-Simulate": fault}
            ),
            status,
        )
    assert len(stripe.Charge.list(limit=100).data) == before

    # Search: a page, then every page through the SDK's own pager; the query language's errors.
    tagged = [
        stripe.Charge.create(amount=amount, currency="usd", source="tok_visa", metadata={"search_tag": "sdk"}).id
        for amount in (1101, 1102, 1103)
    ]
    page = stripe.Charge.search(query="metadata['search_tag']:'sdk'", limit=2)
    assert page.object == "search_result" and page.has_more and page.next_page, page
    assert [found.id for found in page.data] == tagged[::-1][:2]
    every = [found.id for found in stripe.Charge.search_auto_paging_iter(query="metadata['search_tag']:'sdk'", limit=2)]
    assert every == tagged[::-1], every
    ranged = stripe.Charge.search(query="amount>=1102 AND amount<=1103 AND metadata['search_tag']:'sdk'")
    assert [found.id for found in ranged.data] == tagged[:0:-1]
    assert stripe.Customer.search(query="email:'jenny@example.com'").data[0].id == customer.id
    assert stripe.Customer.search(query="name~'rose'").data[0].id == customer.id
    expect_error(
        stripe.InvalidRequestError,
        lambda: stripe.Charge.search(query="status:succeeded"),
        400,
        param="query",
    )

    with open(state_path, "w") as state:
        json.dump(
            {"charge": charge.id, "customer": customer.id, "retried": first.id, "failed": failed.id, "refund": refund.id, "tagged": tagged},
            state,
        )


def verify(state_path):
    with open(state_path) as state:
        saved = json.load(state)
    charge = stripe.Charge.retrieve(saved["charge"], expand=["customer"])
    assert charge.metadata.to_dict() == {"kept": "after restart"}
    assert charge.customer.id == saved["customer"]
    assert charge.amount_refunded == 1000 and charge.amount_captured == 1500
    again = stripe.Charge.create(amount=777, currency="usd", source="tok_amex", idempotency_key="python-retry-1")
    assert again.id == saved["retried"]
    failed = stripe.Charge.retrieve(saved["failed"])
    assert (failed.status, failed.description) == ("failed", "declined at checkout")
    assert len(stripe.Charge.list(limit=100).data) == 11
    found = [found.id for found in stripe.Charge.search_auto_paging_iter(query="metadata['search_tag']:'sdk'")]
    assert found == saved["tagged"][::-1], found
    assert stripe.Refund.retrieve(saved["refund"]).metadata.to_dict() == {"ticket": "T-1"}


if __name__ == "__main__":
    phase, state_path = sys.argv[1], sys.argv[2]
    {"write": write, "verify": verify}[phase](state_path)
    print(f"stripe-python {stripe.VERSION}: {phase} passed")
