"""Auth mode of the fault suite (spec/auth.md, issue 12): an HS256 secret and
a service token generated per run of the suite, and player tokens minted
with the standard library only (hmac, hashlib, base64, json).

The secret and the service token are written to files in a private
directory under the suite's private tmp dir (mode 0700, files 0600; never
in the repository), passed to every matchwire-server with
`--auth-hs256-secret-file` and `--service-token-file`, and deleted when the
suite ends (Auth.remove(), also from atexit).
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time

TOKEN_TTL = 3600


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def mint_hs256(secret, sub, ttl=TOKEN_TTL, now=None):
    """A compact JWS (RFC 7515 §7.1) signed HS256: header
    {"alg":"HS256","typ":"JWT"}, claims sub, iat, exp = iat + ttl."""
    now = int(time.time() if now is None else now)
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps({"sub": sub, "iat": now, "exp": now + ttl}, separators=(",", ":")).encode())
    signing_input = (head + "." + body).encode("ascii")
    sig = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return head + "." + body + "." + b64url(sig)


class Auth:
    """The run's credentials: `args` for matchwire-server, `token(sub)` for a
    player, `service` for the HTTP API."""

    def __init__(self, root):
        self.dir = os.path.join(root, "auth")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        # 48 random bytes, hex: 96 bytes of text (the secret is the file's
        # bytes, AUTH-081: printable, so no trailing newline can be eaten and
        # it can never look like a PEM text, AUTH-022).
        self.secret = secrets.token_hex(48).encode("ascii")
        self.service = secrets.token_urlsafe(48)   # 64 characters (32..1024, AUTH-070)
        self.secret_file = self._write("hs256.secret", self.secret)
        self.service_file = self._write("service.token", self.service.encode("ascii"))
        self.args = ["--auth-hs256-secret-file", self.secret_file, "--service-token-file", self.service_file]

    def _write(self, name, data):
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    def token(self, sub):
        """A fresh player token for `sub` (one per connection)."""
        return mint_hs256(self.secret, sub)

    def bearer(self, sub):
        return "Bearer " + self.token(sub)

    def service_header(self):
        return b"Authorization: Bearer " + self.service.encode("ascii") + b"\r\n"

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)
