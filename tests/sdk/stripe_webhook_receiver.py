"""A webhook receiver that checks every delivery with stripe-python's own verifier.

Usage: stripe_webhook_receiver.py PORT_FILE SECRET_FILE LOG_FILE REFUSE_FIRST

Listens on 127.0.0.1 (a free port, written to PORT_FILE). Each POST is checked with
stripe.Webhook.construct_event against the secret in SECRET_FILE (read per request, since the
endpoint's secret exists only once the endpoint does). The first REFUSE_FIRST requests are
answered 500 without looking at them. Every request is logged to LOG_FILE as a JSON line.
"""

import http.server
import json
import sys
import threading

import stripe

port_file, secret_file, log_file, refuse_first = sys.argv[1:5]
refuse_left = int(refuse_first)
lock = threading.Lock()


def log(entry):
    with lock, open(log_file, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global refuse_left
        payload = self.rfile.read(int(self.headers["Content-Length"]))
        signature = self.headers.get("Stripe-Signature")
        with lock:
            refuse = refuse_left > 0
            if refuse:
                refuse_left -= 1
        if refuse:
            log({"outcome": "refused", "signature": signature})
            self.answer(500, b"refused on purpose")
            return
        with open(secret_file, encoding="utf-8") as f:
            secret = f.read().strip()
        try:
            event = stripe.Webhook.construct_event(payload.decode("utf-8"), signature, secret)
        except stripe.SignatureVerificationError as error:
            log({"outcome": "bad signature", "error": str(error)})
            self.answer(400, b"bad signature")
            return
        log({
            "outcome": "verified",
            "id": event.id,
            "type": event.type,
            "object_id": event.data.object.id,
            "pending_webhooks": event.pending_webhooks,
            "signature": signature,
            "user_agent": self.headers.get("User-Agent"),
            "content_type": self.headers.get("Content-Type"),
        })
        # A wrong secret must fail: the check is real.
        try:
            stripe.Webhook.construct_event(payload.decode("utf-8"), signature, secret + "x")
            log({"outcome": "wrong secret accepted"})
        except stripe.SignatureVerificationError:
            pass
        self.answer(200, b"ok")

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
import os

os.rename(port_file + ".tmp", port_file)
server.serve_forever()
