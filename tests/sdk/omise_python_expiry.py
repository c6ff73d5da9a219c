"""omise-python, unchanged, against a server whose authorizations live one second.

Run by tests/sdk.rs: an uncaptured charge expires on its own (the server's sweep), the client
reads `status: expired`, and its capture raises the error Omise sends (`expired_charge`).
Environment: CHARGELEDGER_URL, CHARGELEDGER_OMISE_SECRET_KEY, CHARGELEDGER_OMISE_PUBLIC_KEY.
"""

import os
import time

import omise

omise.api_secret = os.environ["CHARGELEDGER_OMISE_SECRET_KEY"]
omise.api_public = os.environ["CHARGELEDGER_OMISE_PUBLIC_KEY"]
omise.api_version = "2019-05-29"
omise.api_main = os.environ["CHARGELEDGER_URL"]
omise.api_vault = os.environ["CHARGELEDGER_URL"]

token = omise.Token.create(
    name="Somchai Prasert", number="4242424242424242", expiration_month=10, expiration_year=2099,
    security_code=123,
)
charge = omise.Charge.create(amount=100000, currency="thb", card=token.id, capture=False)
assert charge.status == "pending" and charge.expired is False, charge.status
for _ in range(100):
    charge.reload()
    if charge.status == "expired":
        break
    time.sleep(0.1)
assert charge.status == "expired" and charge.expired is True and charge.expired_at, charge._attributes
try:
    charge.capture()
except omise.errors.BaseError as error:
    assert str(error) == "charge expired", str(error)
else:
    raise AssertionError("capturing an expired charge must fail")
print("omise-python expiry: ok")
