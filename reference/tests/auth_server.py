#!/usr/bin/env python3
"""The server's auth configuration end to end (spec/auth.md), what the wire
suite cannot see: its log and its start-up refusals.

- AUTH-002: without a key the server starts and its log says, at warning
  level, that auth is off.
- AUTH-003: an unreadable key file, a PEM text as an HS256 secret, a short
  HS256 secret, an RSA key given as EdDSA, two keys with one kid, an
  audience without a key, a short service token: the server refuses to
  start (exit status non-zero), within seconds.
- AUTH-013, AUTH-080: with a debug log, tokens refused and accepted at the
  handshake (header and query) and over HTTP never appear in the log, nor
  does any secret (HS256 secret, service token, Redis password in a bad
  --redis URL); the errors of the refusals above name files, never content.

Usage: auth_server.py MATCHWIRE_SERVER_BINARY"""
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from mwtest import free_port

SECRET = b"auth-server-test-secret-0123456789abcdef"
SERVICE = b"auth-server-test-service-token-0123456789"
REDIS_PW = b"redis-password-that-must-not-leak"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(sub, exp_in=600, secret=SECRET, kid="k1"):
    h = {"alg": "HS256", "typ": "JWT", "kid": kid}
    now = int(time.time())
    p = {"sub": sub, "iat": now, "exp": now + exp_in}
    si = b64u(json.dumps(h).encode()) + "." + b64u(json.dumps(p).encode())
    return si + "." + b64u(hmac.new(secret, si.encode(), hashlib.sha256).digest())


def handshake(port, path="/realtime", auth=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    lines = ["GET %s HTTP/1.1" % path, "Host: x", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(),
             "Sec-WebSocket-Version: 13"]
    if auth:
        lines.append("Authorization: " + auth)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
    return int(buf.split(b" ", 2)[1]) if buf else 0


def http_get(port, path, auth=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if auth:
        req.add_header("Authorization", auth)
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code


def start(binary, args, log, env=None):
    return subprocess.Popen([binary] + args, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **(env or {})))


def wait_up(port, proc):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def main():
    binary = sys.argv[1]
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAIL: " + what)

    with tempfile.TemporaryDirectory() as d:
        def write(name, data):
            p = os.path.join(d, name)
            with open(p, "wb") as f:
                f.write(data)
            return p

        secret = write("hs.secret", SECRET + b"\n")
        service = write("service.token", SERVICE + b"\n")
        rsa_key = os.path.join(d, "rsa.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", rsa_key], check=True, capture_output=True)
        rsa_pub = os.path.join(d, "rsa.pub")
        subprocess.run(["openssl", "pkey", "-in", rsa_key, "-pubout", "-out", rsa_pub], check=True,
                       capture_output=True)
        with open(rsa_pub, "rb") as f:
            pem = write("pem-as-secret", f.read())
        short = write("short.secret", b"0123456789\n")
        short_svc = write("short.service", b"too-short\n")

        # AUTH-002: auth off says so.
        port = free_port()
        logp = os.path.join(d, "off.log")
        with open(logp, "wb") as log:
            p = start(binary, ["--listen", "127.0.0.1:%d" % port], log)
            ok = wait_up(port, p)
            p.terminate()
            p.wait(timeout=5)
        text = open(logp, "rb").read().decode("utf-8", "replace")
        check(ok, "AUTH-002: the server did not start without auth configuration")
        check("AUTH IS OFF: any client may act as any player" in text and " W: " in text,
              "AUTH-002: no warning that auth is off: %r" % text[-500:])

        # AUTH-003: refusals to start.
        bad = [
            ("unreadable key file", ["--auth-hs256-secret-file", os.path.join(d, "missing")], {}),
            ("PEM as an HS256 secret", ["--auth-hs256-secret-file", pem], {}),
            ("short HS256 secret", ["--auth-hs256-secret-file", short], {}),
            ("RSA key as EdDSA", ["--auth-public-key", "EdDSA:" + rsa_pub], {}),
            ("HS256 secret file as RS256", ["--auth-public-key", "RS256:" + secret], {}),
            ("two keys, one kid", ["--auth-hs256-secret-file", secret + ":k",
                                   "--auth-public-key", "RS256:%s:k" % rsa_pub], {}),
            ("audience without a key", ["--auth-audience", "a"], {}),
            ("short service token", ["--service-token-file", short_svc], {}),
            ("short HS256 secret in the environment", [],
             {"MATCHWIRE_AUTH_HS256_SECRET": "short"}),
            ("bad --redis URL with a password",
             ["--channel", "redis", "--redis", "redis://:%s@bad host:1/x" % REDIS_PW.decode()], {}),
        ]
        for what, args, env in bad:
            logp = os.path.join(d, "bad.log")
            with open(logp, "wb") as log:
                p = start(binary, ["--listen", "127.0.0.1:%d" % free_port()] + args, log, env)
                try:
                    rc = p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    rc = None
            text = open(logp, "rb").read()
            check(rc not in (None, 0), "AUTH-003: %s: the server started (rc %r)" % (what, rc))
            for s in (SECRET, SERVICE, REDIS_PW, b"BEGIN PUBLIC KEY", b"too-short", b"0123456789\n"):
                check(s not in text, "AUTH-080: %s: the error shows secret %r: %r" % (what, s, text[-300:]))

        # AUTH-013, AUTH-080: nothing secret in a debug log.
        port = free_port()
        logp = os.path.join(d, "on.log")
        good, expired = token("alice"), token("bob", exp_in=-3600)
        forged = token("eve", secret=b"x" * 40)
        with open(logp, "wb") as log:
            p = start(binary, ["--listen", "127.0.0.1:%d" % port, "--log-level", "4",
                               "--auth-hs256-secret-file", secret + ":k1",
                               "--auth-public-key", "RS256:%s:r1" % rsa_pub,
                               "--redis-password-file", write("redis.pw", REDIS_PW + b"\n")],
                      log, {"MATCHWIRE_SERVICE_TOKEN": SERVICE.decode()})
            try:
                check(wait_up(port, p), "the server with auth on did not start")
                check(handshake(port, auth="Bearer " + good) == 101, "a valid token was refused")
                check(handshake(port, "/realtime?access_token=" + good) == 101,
                      "a valid query token was refused")
                for t in (expired, forged):
                    check(handshake(port, auth="Bearer " + t) == 401, "a bad token was not refused")
                    check(handshake(port, "/realtime?access_token=" + t) == 401,
                          "a bad query token was not refused")
                check(handshake(port) == 401, "no token was not refused")
                check(http_get(port, "/metrics") == 401, "/metrics without the service token")
                check(http_get(port, "/metrics", "Bearer " + SERVICE.decode()) == 200,
                      "/metrics with the service token")
                check(http_get(port, "/metrics", "Bearer " + good) == 401,
                      "/metrics with a player token")
                check(http_get(port, "/v1/tickets/00000000-0000-4000-8000-000000000000",
                               "Bearer " + forged) == 401, "HTTP with a forged token")
            finally:
                p.terminate()
                p.wait(timeout=5)
        text = open(logp, "rb").read()
        check(b"upgrade refused with 401" in text, "the debug log has no refusal lines (log level?)")
        for what, s in (("valid token", good), ("expired token", expired), ("forged token", forged)):
            for part in s.split("."):
                check(part.encode() not in text, "AUTH-013: the log shows part of the %s" % what)
        for s in (SECRET, SERVICE, REDIS_PW):
            check(s not in text, "AUTH-080: the log shows secret %r" % s)

    if failures:
        sys.exit("%d failure(s)" % len(failures))
    print("auth_server: ok")


if __name__ == "__main__":
    main()
