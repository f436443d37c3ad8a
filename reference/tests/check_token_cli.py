#!/usr/bin/env python3
"""`matchwire token` (spec/auth.md section 10), checked independently of the
C code: the printed token is three base64url segments, the header and claims
are the documented ones, and the HMAC-SHA-256 signature is recomputed here
with Python's hmac. Then the usage errors exit 2 and print no token.

Usage: check_token_cli.py MATCHWIRE_BINARY"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile

SECRET = b"dev-secret-0123456789-0123456789-xx"


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def run(binary, args, env=None):
    return subprocess.run([binary, "token"] + args, capture_output=True, timeout=30,
                          env=env)


def main():
    binary = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "secret")
        with open(path, "wb") as f:
            f.write(SECRET + b"\r\n")  # one trailing newline is not part of it
        r = run(binary, ["--secret-file", path, "--sub", "alice", "--ttl", "600", "--kid",
                         "2026-12", "--aud", "matchwire", "--iss", "dev", "--iat", "1800000000"])
        if r.returncode != 0:
            sys.exit("token failed: %r" % r.stderr)
        out = r.stdout.decode()
        if not out.endswith("\n") or out.count("\n") != 1:
            failures.append("output is not one line")
        h, p, s = out.strip().split(".")
        for seg in (h, p, s):
            if "=" in seg or "+" in seg or "/" in seg:
                failures.append("segment not unpadded base64url: " + seg)
        if json.loads(b64d(h)) != {"alg": "HS256", "typ": "JWT", "kid": "2026-12"}:
            failures.append("header %r" % b64d(h))
        want = {"sub": "alice", "iat": 1800000000, "exp": 1800000600, "aud": "matchwire",
                "iss": "dev"}
        if json.loads(b64d(p)) != want:
            failures.append("claims %r" % b64d(p))
        mac = hmac.new(SECRET, (h + "." + p).encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, b64d(s)):
            failures.append("signature does not verify")
        # The same secret from the environment, no kid: same claims.
        env = dict(os.environ, MATCHWIRE_AUTH_HS256_SECRET=SECRET.decode())
        r = run(binary, ["--sub", "bob", "--iat", "1800000000"], env=env)
        h, p, s = r.stdout.decode().strip().split(".")
        if json.loads(b64d(h)) != {"alg": "HS256", "typ": "JWT"}:
            failures.append("env: header %r" % b64d(h))
        if json.loads(b64d(p)) != {"sub": "bob", "iat": 1800000000, "exp": 1800003600}:
            failures.append("env: claims %r" % b64d(p))
        mac = hmac.new(SECRET, (h + "." + p).encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, b64d(s)):
            failures.append("env: signature does not verify")
        env.pop("MATCHWIRE_AUTH_HS256_SECRET")
        bad = [
            ["--secret", "too-short", "--sub", "a"],
            ["--secret-file", path, "--sub", ""],
            ["--secret-file", path],
            ["--secret-file", path, "--sub", "a", "--ttl", "0"],
            ["--secret-file", path, "--sub", "a", "--kid", "a b"],
            ["--secret-file", path, "--secret", SECRET.decode(), "--sub", "a"],
            ["--secret-file", os.path.join(tmp, "missing"), "--sub", "a"],
            ["--sub", "a"],
            ["--secret-file", path, "--sub", "a", "--bogus", "1"],
        ]
        for args in bad:
            r = run(binary, args, env=env)
            if r.returncode != 2 or r.stdout:
                failures.append("%r: exit %d, stdout %r" % (args, r.returncode, r.stdout))
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
