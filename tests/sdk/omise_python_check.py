"""Drives a chargeledger server with the official omise-python client, unchanged.

Run by tests/sdk.rs: `python omise_python_check.py write STATE` against a fresh server, then
`python omise_python_check.py verify STATE` against the same data after a restart.
Environment: CHARGELEDGER_URL, CHARGELEDGER_OMISE_SECRET_KEY, CHARGELEDGER_OMISE_PUBLIC_KEY.
Any failed check raises and exits non-zero.
"""

import json
import os
import sys

import omise

omise.api_secret = os.environ["CHARGELEDGER_OMISE_SECRET_KEY"]
omise.api_public = os.environ["CHARGELEDGER_OMISE_PUBLIC_KEY"]
omise.api_version = "2019-05-29"
# The client's documented way to point it elsewhere: both the main API and the vault.
omise.api_main = os.environ["CHARGELEDGER_URL"]
omise.api_vault = os.environ["CHARGELEDGER_URL"]


def new_token(number="4242424242424242"):
    return omise.Token.create(
        name="Somchai Prasert",
        number=number,
        expiration_month=10,
        expiration_year=2099,
        city="Bangkok",
        postal_code="10320",
        security_code=123,
    )


def raw(value):
    """The JSON the client received: it wraps every object in its own classes."""
    return value._attributes if isinstance(value, omise.Base) else value


def expect_error(kind, call, message):
    try:
        call()
    except kind as error:
        assert str(error) == message, (str(error), message)
        return
    raise AssertionError(f"expected {kind.__name__}: {message}")


def write(state_path):
    token = new_token()
    assert token.id.startswith("tokn_test_") and token.used is False
    assert token.card.last_digits == "4242" and token.card.brand == "Visa"
    assert omise.Token.retrieve(token.id).id == token.id

    charge = omise.Charge.create(
        amount=100000,
        currency="thb",
        description="Order-384",
        ip="127.0.0.1",
        card=token.id,
        capture=False,
        metadata={"order": {"id": 384, "lines": ["a", "b"]}, "channel": "web"},
    )
    assert charge.id.startswith("chrg_test_")
    assert charge.status == "pending" and charge.authorized and not charge.paid
    assert charge.currency == "THB"
    assert raw(charge.metadata) == {"order": {"id": 384, "lines": ["a", "b"]}, "channel": "web"}
    assert omise.Token.retrieve(token.id).used is True

    # Retrieve, then update through the object as the client documents it.
    charge = omise.Charge.retrieve(charge.id)
    charge.update(description="Another description")
    assert charge.description == "Another description"
    charge.update(metadata={"order": {"id": 384}, "gift": True})
    assert raw(charge.metadata) == {"order": {"id": 384}, "gift": True}, raw(charge.metadata)
    charge.reload()
    assert charge.description == "Another description"

    # Partial capture.
    charge.capture(capture_amount=60000)
    assert charge.status == "successful" and charge.paid
    assert charge.captured_amount == 60000 and charge.authorized_amount == 100000
    assert charge.transaction.startswith("trxn_test_")
    expect_error(omise.errors.FailedCaptureError, charge.capture, "charge was already captured")

    # Full capture of a second charge; reverse of a third.
    full = omise.Charge.create(amount=2000, currency="thb", card=new_token().id, capture=False)
    full.capture()
    assert full.captured_amount == 2000 and full.status == "successful"
    reversed_charge = omise.Charge.create(
        amount=3000, currency="thb", card=new_token().id, capture=False
    )
    reversed_charge.reverse()
    assert reversed_charge.status == "reversed" and reversed_charge.reversed

    # Errors, as the client raises them.
    expect_error(
        omise.errors.InvalidChargeError,
        lambda: omise.Charge.create(amount=1999, currency="thb", card=new_token().id),
        "amount must be greater than or equal to 2000 (thb subunits)",
    )
    expect_error(
        omise.errors.InvalidChargeError,
        lambda: omise.Charge.create(amount=5000, currency="xyz", card=new_token().id),
        "currency is currently not supported",
    )
    expect_error(
        omise.errors.UsedTokenError,
        lambda: omise.Charge.create(amount=5000, currency="thb", card=token.id),
        "token was already used",
    )
    expect_error(
        omise.errors.InvalidCardError,
        lambda: new_token("4242424242424241"),
        "number is invalid and brand not supported (unknown)",
    )
    expect_error(
        omise.errors.NotFoundError,
        lambda: omise.Charge.retrieve("chrg_test_nope"),
        "charge chrg_test_nope was not found",
    )
    expect_error(
        omise.errors.BaseError,
        full.reverse,
        "only uncaptured authorized charges can be reversed",
    )

    # Lists: the client pages with limit/offset in a JSON body on GET.
    ids = [item.id for item in omise.Charge.list()]
    assert ids == [charge.id, full.id, reversed_charge.id], ids
    assert len(omise.Charge.list()) == 3
    assert [item.id for item in omise.Charge.list().offset(limit=1, offset=1)] == [full.id]

    keys = [event.key for event in charge.list_events()]
    assert keys == [
        "charge.create",
        "charge.update",
        "charge.update",
        "charge.capture",
    ], keys
    events = list(omise.Event.list())
    assert len(events) == 8, [event.key for event in events]
    event = omise.Event.retrieve(events[-1].id)
    assert event.key == "charge.reverse" and event.data.id == reversed_charge.id

    # Refunds: a partial refund, read back through the charge and the account's list; refunding
    # more than is left raises the client's FailedRefundError.
    refund = full.refund(amount=500)
    assert refund.amount == 500 and refund.id.startswith("rfnd_test_"), refund.id
    full = omise.Charge.retrieve(full.id)
    assert full.refunded_amount == 500
    assert full.refunds.retrieve(refund.id).amount == 500
    assert [item.id for item in omise.Refund.list()] == [refund.id]
    expect_error(
        omise.errors.FailedRefundError,
        lambda: full.refund(amount=1501),
        "amount must be less than or equal to the refundable amount (1500)",
    )

    # Search through the client's own Search (it builds `/search/?scope=…&filters[…]=…` by hand):
    # free text and filters in whole baht, the result a Search the client iterates as charges.
    wanted = omise.Charge.create(amount=123400, currency="thb", description="searchable-omise", card=new_token().id)
    omise.Charge.create(amount=123400, currency="thb", card=new_token().id, capture=False)
    found = omise.Search.execute("charge", query="searchable-omise", filters={"amount": "1234", "captured": "yes"})
    assert isinstance(found, omise.Search), found
    assert [item.id for item in found] == [wanted.id], raw(found)
    assert found._attributes["total"] == 1 and found._attributes["scope"] == "charge"
    both = omise.Search.execute("charge", filters={"amount": "1200..1300"})
    assert len(both) == 2 and both[0].amount == 123400, raw(both)
    expect_error(
        omise.errors.BaseError,
        lambda: omise.Search.execute("charge", filters={"captured": "maybe"}),
        "filters[captured] must be yes or no (or true, false, on, off), not 'maybe'",
    )

    # A failing test card is recorded as Omise records it: a charge with status failed.
    declined = omise.Charge.create(amount=100000, currency="thb", card=new_token("4111111111140011").id)
    assert (declined.status, declined.failure_code) == ("failed", "insufficient_fund"), raw(declined)
    assert declined.failure_message == "insufficient funds in the account or the card has reached the credit limit"
    assert omise.Charge.retrieve(declined.id).status == "failed"

    # Customers: a card saved from a token, a second one added, the default moved, charged on it.
    customer = omise.Customer.create(email="somchai@example.com", description="VIP", card=new_token().id)
    assert customer.id.startswith("cust_test_") and len(customer.cards) == 1, raw(customer)
    first_card = customer.cards[0].id
    assert customer.default_card == first_card
    customer.update(card=new_token("5555555555554444").id)
    assert len(customer.cards) == 2 and customer.default_card == first_card, raw(customer)
    second_card = customer.cards[1].id
    customer.update(default_card=second_card)
    assert omise.Customer.retrieve(customer.id).default_card == second_card
    assert [card.id for card in customer.list_cards()] == [first_card, second_card]
    paid = omise.Charge.create(amount=50000, currency="thb", customer=customer.id)
    assert paid.customer == customer.id and paid.card.id == second_card, raw(paid)
    cardless = omise.Customer.create(email="nocard@example.com")
    expect_error(
        omise.errors.MissingCardError,
        lambda: omise.Charge.create(amount=50000, currency="thb", customer=cardless.id),
        f"customer {cardless.id} has no card to charge; add one with a card token",
    )
    expect_error(
        omise.errors.NotFoundError,
        lambda: omise.Customer.retrieve("cust_test_nothere"),
        "customer cust_test_nothere was not found",
    )

    with open(state_path, "w") as state:
        json.dump(
            {"charge": charge.id, "reversed": reversed_charge.id, "refund": refund.id, "searched": wanted.id,
             "customer": customer.id, "card": second_card},
            state,
        )


def verify(state_path):
    with open(state_path) as state:
        saved = json.load(state)
    charge = omise.Charge.retrieve(saved["charge"])
    assert charge.description == "Another description"
    assert raw(charge.metadata) == {"order": {"id": 384}, "gift": True}
    assert charge.captured_amount == 60000 and charge.status == "successful"
    assert omise.Charge.retrieve(saved["reversed"]).status == "reversed"
    assert len(list(charge.list_events())) == 4
    assert [item.id for item in omise.Refund.list()] == [saved["refund"]]
    found = omise.Search.execute("charge", query="searchable-omise")
    assert [item.id for item in found] == [saved["searched"]], raw(found)
    kept = omise.Customer.retrieve(saved["customer"])
    assert kept.default_card == saved["card"] and len(kept.cards) == 2, raw(kept)
    assert omise.Charge.create(amount=50000, currency="thb", customer=kept.id).card.id == saved["card"]
    # The ledger keeps going after a restart.
    charge.update(description="after restart")
    assert omise.Charge.retrieve(charge.id).description == "after restart"


if __name__ == "__main__":
    phase, state_path = sys.argv[1], sys.argv[2]
    {"write": write, "verify": verify}[phase](state_path)
    print(f"omise-python {phase}: ok")
