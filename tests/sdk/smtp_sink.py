"""An SMTP server (aiosmtpd) that logs every message it accepts.

Usage: smtp_sink.py PORT_FILE LOG_FILE [USER PASSWORD]

Listens on 127.0.0.1 (a free port, written to PORT_FILE). With USER and PASSWORD it offers
AUTH (without TLS, for the test) and accepts only those credentials. Each message is logged to
LOG_FILE as a JSON line: envelope sender, recipients, the login used, and the raw message.
"""

import json
import os
import socket
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port_file, log_file = sys.argv[1:3]
credentials = tuple(sys.argv[3:5]) if len(sys.argv) >= 5 else None


class Sink:
    async def handle_DATA(self, server, session, envelope):
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode()
        with open(log_file, "a", encoding="utf-8") as out:
            out.write(json.dumps({
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "login": login,
                "content": envelope.content.decode("utf-8", "replace"),
            }) + "\n")
        return "250 Message accepted for delivery"


def authenticate(server, session, envelope, mechanism, auth_data):
    if not isinstance(auth_data, LoginPassword) or credentials is None:
        return AuthResult(success=False, handled=False)
    ok = (auth_data.login.decode(), auth_data.password.decode()) == credentials
    return AuthResult(success=ok, auth_data=auth_data)


probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
options = {}
if credentials:
    options = {"authenticator": authenticate, "auth_require_tls": False, "auth_required": True}
controller = Controller(Sink(), hostname="127.0.0.1", port=port, server_kwargs=options)
controller.start()
with open(port_file + ".tmp", "w", encoding="utf-8") as f:
    f.write(str(port))
os.rename(port_file + ".tmp", port_file)
while True:
    time.sleep(3600)
