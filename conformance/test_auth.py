"""auth.md: player tokens at the handshake (sections 2-5), the player is the
token's subject (section 6), the HTTP API's service token (section 7),
origins (section 9); and two edge rules of messages.md that an attacker
tries first: unmasked client frames (MSG-141) and chunked request bodies
(MSG-140).

The suite mints its own tokens from the declaration's `auth` member
(testing.md TST-042..TST-046): HS256 with Python's hmac, EdDSA and RS256
with the `openssl` command line (`openssl pkeyutl -sign`)."""

import base64
import collections
import hashlib
import hmac
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse

import pytest

import mwclient
from mwclient import SUBPROTOCOL, Closed, ProtocolViolation, encode_frame, http, uniq

pytestmark = pytest.mark.profile("auth")


# ---------------------------------------------------------------------------
# The declaration (TST-042..TST-046)
# ---------------------------------------------------------------------------

class Auth:
    """What the declaration's `auth` member says, with files read."""

    def __init__(self, decl):
        a = decl.get("auth")
        if not isinstance(a, dict):
            pytest.skip("the declaration has no `auth` member (TST-042)")

        def read(key):
            p = a.get(key)
            if not p:
                return None
            with open(os.path.expandvars(p), "rb") as f:
                data = f.read()
            # AUTH-081: one trailing "\n" or "\r\n" is not part of a secret
            if data.endswith(b"\r\n"):
                data = data[:-2]
            elif data.endswith(b"\n"):
                data = data[:-1]
            return data

        def path(key):
            p = a.get(key)
            return os.path.expandvars(p) if p else None

        self.secret = read("hs256SecretFile")
        self.hs_kid = a.get("hs256Kid")
        self.ed_key = path("eddsaPrivateKeyFile")
        self.ed_kid = a.get("eddsaKid")
        self.rs_key = path("rs256PrivateKeyFile")
        self.rs_kid = a.get("rs256Kid")
        self.public_pem = read("publicKeyPemFile")
        self.service = read("serviceTokenFile")
        self.audience = a.get("audience")
        self.issuer = a.get("issuer")
        self.leeway = int(a.get("leewaySeconds", 30))
        self.origins = list(a.get("allowedOrigins") or [])
        if self.secret is None:
            pytest.skip("the declaration's auth member names no hs256SecretFile (TST-042)")


@pytest.fixture(scope="module")
def auth(testee):
    return Auth(testee.decl)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def claims_for(auth, who, ttl=600, **kw):
    """Claims for player `who`; a keyword overrides a claim (None removes it)."""
    now = int(time.time())
    c = {"sub": who, "iat": now, "exp": now + ttl}
    if auth.audience:
        c["aud"] = auth.audience
    if auth.issuer:
        c["iss"] = auth.issuer
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def jws(header, payload, sign):
    """Compact JWS: sign(signing_input: bytes) -> signature bytes."""
    if not isinstance(payload, bytes):
        payload = json.dumps(payload, separators=(",", ":")).encode()
    si = (b64u(json.dumps(header, separators=(",", ":")).encode()) + "." + b64u(payload)).encode()
    return si.decode() + "." + b64u(sign(si))


def hs_signer(secret):
    return lambda si: hmac.new(secret, si, hashlib.sha256).digest()


def openssl_signer(keyfile, digest=None):
    def sign(si):
        with tempfile.NamedTemporaryFile() as f:
            f.write(si)
            f.flush()
            cmd = ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", keyfile, "-in", f.name]
            if digest:
                cmd[4:4] = ["-digest", digest]
            return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=20).stdout
    return sign


def hs_token(auth, who, header=None, **kw):
    h = {"alg": "HS256", "typ": "JWT"}
    if auth.hs_kid:
        h["kid"] = auth.hs_kid
    h.update(header or {})
    return jws(h, claims_for(auth, who, **kw), hs_signer(auth.secret))


# ---------------------------------------------------------------------------
# Handshakes with credentials
# ---------------------------------------------------------------------------

def raw_handshake(testee, path=None, headers=(), timeout=None):
    """An upgrade request with extra header lines; returns mwclient.Handshake."""
    host, port = testee.host, testee.port
    timeout = timeout or testee.timeout
    sock = mwclient.connect(testee, timeout=timeout)  # TLS too for a wss:// testee
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % (path or testee.path), "Host: %s:%d" % (host, port),
             "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key,
             "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: %s" % SUBPROTOCOL]
    lines += list(headers)
    mwclient.wire("auth", "send", "handshake", "\n".join(
        ln if not ln.lower().startswith("authorization") else "Authorization: (token)" for ln in lines))
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = mwclient._recv_until(sock, b"\r\n\r\n", 65536, time.monotonic() + timeout)
    status, hdrs, rest = mwclient.parse_http_head(buf)
    if status != 101:
        # the body of a refusal (Content-Length bounded)
        n = int((hdrs.get("content-length") or ["0"])[0] or 0)
        deadline = time.monotonic() + timeout
        sock.settimeout(0.5)
        while len(rest) < n and time.monotonic() < deadline:
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                break
            rest += chunk
    return mwclient.Handshake(status, hdrs, sock, rest)


def attempt(testee, token=None, form="header", origin=None, extra=()):
    headers = list(extra)
    path = testee.path
    if token is not None and form == "header":
        headers.append("Authorization: Bearer " + token)
    elif token is not None:
        path += "?access_token=" + urllib.parse.quote(token, safe="")
    if origin is not None:
        headers.append("Origin: " + origin)
    return raw_handshake(testee, path, headers)


def ws_from(testee, hs, name=None):
    """An mwclient.WS over an accepted handshake."""
    if hs.status != 101:
        hs.sock.close()
        raise ProtocolViolation("AUTH-010: upgrade refused with HTTP %d: %r" % (hs.status, hs.rest[:200]))
    ws = object.__new__(mwclient.WS)
    mwclient.WS.n += 1
    ws.name = name or "ws%d" % mwclient.WS.n
    ws.testee, ws.timeout, ws.hs, ws.sock = testee, testee.timeout, hs, hs.sock
    ws.buf = bytearray(hs.rest)
    ws.check, ws.auto_pong, ws.closed = True, True, None
    ws.pings, ws.pending, ws.seq = [], collections.deque(), 0
    ws.pacer = mwclient.Pacer(0.8 * testee.decl["rate"], max(1.0, 0.8 * testee.decl["rateBurst"]))
    return ws


@pytest.fixture
def player(testee, auth):
    """Factory: player(sub) -> an open WS authenticated as sub (closed at teardown)."""
    made = []

    def make(sub=None, form="header", token=None):
        sub = sub or uniq("p")
        ws = ws_from(testee, attempt(testee, token or hs_token(auth, sub), form), name=sub)
        ws.sub = sub
        made.append(ws)
        return ws
    yield make
    for ws in made:
        ws.close()


def expect_401(hs, invalid_token=True, what=""):
    hs.sock.close()
    assert hs.status == 401, "%s: handshake answered %d, not 401" % (what, hs.status)
    ct = hs.header("content-type") or ""
    assert ct.split(";")[0].strip() == "application/json", "%s: Content-Type %r" % (what, ct)
    body = json.loads(hs.rest.decode())
    assert body.get("code") == "unauthorized" and body.get("retryable") is False \
        and isinstance(body.get("message"), str), "%s: body %r" % (what, body)
    assert set(body) == {"code", "message", "retryable"}, "%s: body %r" % (what, body)
    www = hs.header("www-authenticate") or ""
    assert www.startswith("Bearer") and 'realm="matchwire"' in www, "%s: WWW-Authenticate %r" % (what, www)
    assert ('error="invalid_token"' in www) == invalid_token, "%s: WWW-Authenticate %r" % (what, www)
    return body


# ---------------------------------------------------------------------------
# Sections 2-5: presenting and verifying
# ---------------------------------------------------------------------------

@pytest.mark.req("AUTH-001", "AUTH-010", "AUTH-014", "AUTH-021", "AUTH-060", "TST-042", "TST-046")
@pytest.mark.parametrize("form", ["header", "query"])
def test_valid_hs256_token_opens_a_connection(player, queue, form):
    ws = player(form=form)
    assert ws.ping()["type"] == "pong"
    t = ws.enqueue_ok(queue, player=ws.sub)
    assert t["state"] == "queued"


@pytest.mark.req("AUTH-040", "AUTH-041", "AUTH-042", "AUTH-043")
def test_no_token_is_401(testee, auth):
    expect_401(attempt(testee), invalid_token=False, what="no credentials")


@pytest.mark.req("AUTH-012", "AUTH-040")
def test_authorization_header_wins_over_query(testee, auth):
    good, bad = hs_token(auth, uniq("p")), hs_token(auth, uniq("p"))[:-4] + "AAAA"
    hs = raw_handshake(testee, testee.path + "?access_token=" + bad, ["Authorization: Bearer " + good])
    hs.sock.close()
    assert hs.status == 101, "valid header + bad query answered %d" % hs.status
    hs = raw_handshake(testee, testee.path + "?access_token=" + good, ["Authorization: Bearer " + bad])
    expect_401(hs, what="bad header + valid query")


@pytest.mark.req("AUTH-010", "AUTH-012")
def test_bearer_scheme_case_insensitive_and_spaces(testee, auth):
    tok = hs_token(auth, uniq("p"))
    hs = raw_handshake(testee, None, ["Authorization: bEaReR   " + tok])
    hs.sock.close()
    assert hs.status == 101, "scheme 'bEaReR' and three spaces answered %d" % hs.status


@pytest.mark.req("AUTH-012", "AUTH-040")
@pytest.mark.parametrize("case", ["basic", "two_headers", "two_params"])
def test_malformed_credentials_refused(testee, auth, case):
    tok = hs_token(auth, uniq("p"))
    if case == "basic":
        hs = raw_handshake(testee, None, ["Authorization: Basic " + base64.b64encode(b"a:b").decode()])
    elif case == "two_headers":
        hs = raw_handshake(testee, None, ["Authorization: Bearer " + tok, "Authorization: Bearer " + tok])
    else:
        hs = raw_handshake(testee, testee.path + "?access_token=%s&access_token=%s" % (tok, tok))
    expect_401(hs, what=case)


@pytest.mark.req("AUTH-011", "AUTH-040")
@pytest.mark.parametrize("form", ["header", "query"])
def test_token_size_bound(testee, auth, form):
    # a token of (nearly) 4,096 bytes: padded with an ignored claim (AUTH-037)
    sub = uniq("p")
    lo, hi = 0, 4096
    while lo < hi:  # the longest padding that keeps the token within 4,096 bytes
        mid = (lo + hi + 1) // 2
        if len(hs_token(auth, sub, pad="x" * mid)) <= 4096:
            lo = mid
        else:
            hi = mid - 1
    tok = hs_token(auth, sub, pad="x" * lo)
    assert 4094 <= len(tok) <= 4096, len(tok)
    hs = attempt(testee, tok, form)
    hs.sock.close()
    assert hs.status == 101, "a %d-byte token (%s) answered %d" % (len(tok), form, hs.status)
    long_tok = hs_token(auth, sub, pad="x" * 3200)
    assert len(long_tok) > 4096
    expect_401(attempt(testee, long_tok, form), what="a %d-byte token" % len(long_tok))


@pytest.mark.req("AUTH-032", "AUTH-033", "AUTH-040")
def test_expired_token_refused(testee, auth):
    now = int(time.time())
    tok = hs_token(auth, uniq("p"), exp=now - auth.leeway - 5, iat=now - 3600)
    expect_401(attempt(testee, tok), what="expired")


@pytest.mark.req("AUTH-033")
def test_expiry_within_leeway_accepted(testee, auth):
    now = int(time.time())
    tok = hs_token(auth, uniq("p"), exp=now - auth.leeway + 20, iat=now - 3600)
    hs = attempt(testee, tok)
    hs.sock.close()
    assert hs.status == 101, "exp %d s ago with leeway %d answered %d" % (auth.leeway - 20, auth.leeway, hs.status)


@pytest.mark.req("AUTH-033", "AUTH-040")
@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid_refused(testee, auth, claim):
    now = int(time.time())
    tok = hs_token(auth, uniq("p"), **{claim: now + auth.leeway + 120})
    expect_401(attempt(testee, tok), what="%s in the future" % claim)


@pytest.mark.req("AUTH-030", "AUTH-031", "AUTH-032", "AUTH-040")
@pytest.mark.parametrize("case", ["no_sub", "empty_sub", "no_exp", "exp_string", "sub_number",
                                  "payload_array", "duplicate_sub", "payload_not_json"])
def test_bad_claims_refused(testee, auth, case):
    if case in ("payload_array", "duplicate_sub", "payload_not_json"):
        c = claims_for(auth, "x")
        body = {"payload_array": json.dumps([c]).encode(),
                "duplicate_sub": json.dumps(c)[:-1].encode() + b',"sub":"y"}',
                "payload_not_json": b"sub=x"}[case]
        h = {"alg": "HS256", "typ": "JWT"}
        if auth.hs_kid:
            h["kid"] = auth.hs_kid
        expect_401(attempt(testee, jws(h, body, hs_signer(auth.secret))), what=case)
        return
    kw = {"no_sub": {"sub": None}, "empty_sub": {"sub": ""}, "no_exp": {"exp": None},
          "exp_string": {"exp": str(int(time.time()) + 600)}, "sub_number": {"sub": 42}}[case]
    expect_401(attempt(testee, hs_token(auth, "x", **kw)), what=case)


@pytest.mark.req("AUTH-025", "AUTH-027", "AUTH-040")
@pytest.mark.parametrize("case", ["flipped", "truncated", "other_secret", "payload_changed"])
def test_wrong_signature_refused(testee, auth, case):
    tok = hs_token(auth, uniq("p"))
    h, p, s = tok.split(".")
    if case == "flipped":
        s = ("B" if s[0] == "A" else "A") + s[1:]
    elif case == "truncated":
        s = s[:-6]
    elif case == "other_secret":
        tok = jws({"alg": "HS256", "typ": "JWT"}, claims_for(auth, uniq("p")), hs_signer(os.urandom(32)))
        h, p, s = tok.split(".")
    else:
        p = b64u(json.dumps(claims_for(auth, "someone-else")).encode())
    expect_401(attempt(testee, ".".join((h, p, s))), what=case)


@pytest.mark.req("AUTH-020", "AUTH-040")
@pytest.mark.parametrize("case", ["two_parts", "four_parts", "padding", "space", "empty_sig", "std_b64"])
def test_malformed_token_refused(testee, auth, case):
    tok = hs_token(auth, uniq("p"))
    h, p, s = tok.split(".")
    t = {"two_parts": h + "." + p, "four_parts": tok + "." + s, "padding": tok + "==",
         "space": h + "." + p + ". " + s, "empty_sig": h + "." + p + ".",
         "std_b64": tok.replace("-", "+").replace("_", "/")}[case]
    if t == tok:  # nothing to re-spell: a '+' where base64url has none
        t = h + "+" + "." + p + "." + s
    expect_401(attempt(testee, t), what=case)


@pytest.mark.req("AUTH-021", "AUTH-022", "AUTH-040")
@pytest.mark.parametrize("alg", ["none", "None", "NONE", "hs256", "HS384", "HS512", "ES256", "PS256"])
def test_other_algorithms_refused(testee, auth, alg):
    c = claims_for(auth, uniq("p"))
    sign = (lambda si: b"") if alg.lower() == "none" else hs_signer(auth.secret)
    tok = jws({"alg": alg, "typ": "JWT"}, c, sign)
    if alg.lower() == "none":
        expect_401(attempt(testee, tok), what="alg %s, empty signature" % alg)
        tok = jws({"alg": alg}, c, lambda si: b"\0")
    expect_401(attempt(testee, tok), what="alg %s" % alg)


@pytest.mark.req("AUTH-022", "AUTH-024", "AUTH-040")
def test_hs256_with_public_key_pem_refused(testee, auth):
    """The classic confusion: HMAC keyed with the server's public key PEM."""
    if not auth.public_pem:
        pytest.skip("no publicKeyPemFile in the declaration (TST-043)")
    c = claims_for(auth, uniq("p"))
    for pem in (auth.public_pem, auth.public_pem + b"\n"):
        for kid in (None, auth.ed_kid, auth.rs_kid):
            h = {"alg": "HS256", "typ": "JWT"}
            if kid:
                h["kid"] = kid
            expect_401(attempt(testee, jws(h, c, hs_signer(pem))), what="HS256 keyed with the PEM, kid %r" % kid)


@pytest.mark.req("AUTH-023", "AUTH-024", "AUTH-040")
@pytest.mark.parametrize("case", ["crit", "typ_jws", "cty_jwt", "unknown_kid", "kid_number", "jwk_ignored"])
def test_header_rules(testee, auth, case):
    c = claims_for(auth, uniq("p"))
    h = {"alg": "HS256", "typ": "JWT"}
    if auth.hs_kid:
        h["kid"] = auth.hs_kid
    extra = {"crit": {"crit": ["exp"]}, "typ_jws": {"typ": "JWS"}, "cty_jwt": {"cty": "JWT"},
             "unknown_kid": {"kid": "no-such-kid-" + uniq("k")}, "kid_number": {"kid": 7},
             "jwk_ignored": {"jwk": {"kty": "oct", "k": b64u(b"k" * 32)}}}[case]
    h.update(extra)
    if case == "jwk_ignored":
        # signed with the embedded key: keys come only from the configuration
        expect_401(attempt(testee, jws(h, c, hs_signer(b"k" * 32))), what=case)
        return
    expect_401(attempt(testee, jws(h, c, hs_signer(auth.secret))), what=case)


@pytest.mark.req("AUTH-035", "AUTH-036", "AUTH-040")
@pytest.mark.parametrize("case", ["wrong_aud", "aud_array_without", "no_aud", "aud_array_nonstring", "wrong_iss"])
def test_audience_and_issuer(testee, auth, case):
    if case.endswith("iss") and not auth.issuer:
        pytest.skip("no issuer declared")
    if "aud" in case and not auth.audience:
        if case == "no_aud":
            pytest.skip("no audience declared")
        # AUTH-035: with no audience configured, a token with aud is refused
        expect_401(attempt(testee, hs_token(auth, uniq("p"), aud="anything")), what="aud without audience")
        return
    kw = {"wrong_aud": {"aud": "not-" + (auth.audience or "")},
          "aud_array_without": {"aud": ["a", "b"]},
          "no_aud": {"aud": None},
          "aud_array_nonstring": {"aud": [auth.audience, 1]},
          "wrong_iss": {"iss": "not-" + (auth.issuer or "")}}[case]
    expect_401(attempt(testee, hs_token(auth, uniq("p"), **kw)), what=case)
    if case == "wrong_aud":
        hs = attempt(testee, hs_token(auth, uniq("p"), aud=["other", auth.audience]))
        hs.sock.close()
        assert hs.status == 101, "aud as an array containing the audience answered %d" % hs.status


@pytest.mark.req("AUTH-021", "AUTH-024", "TST-043")
@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_asymmetric_token(testee, auth, player, alg):
    key, kid = (auth.ed_key, auth.ed_kid) if alg == "EdDSA" else (auth.rs_key, auth.rs_kid)
    if not key:
        pytest.skip("no %s private key in the declaration (TST-043)" % alg)
    sub = uniq("p")
    h = {"alg": alg, "typ": "JWT"}
    if kid:
        h["kid"] = kid
    sign = openssl_signer(key, "sha256" if alg == "RS256" else None)
    tok = jws(h, claims_for(auth, sub), sign)
    ws = player(sub, token=tok)
    assert ws.ping()["type"] == "pong"
    # the same key with another alg name, or a tampered payload: refused
    h2 = dict(h, alg="RS256" if alg == "EdDSA" else "EdDSA")
    expect_401(attempt(testee, jws(h2, claims_for(auth, sub), sign)), what="%s key named %s" % (alg, h2["alg"]))
    hh, _, ss = tok.split(".")
    expect_401(attempt(testee, hh + "." + b64u(json.dumps(claims_for(auth, "x")).encode()) + "." + ss),
               what="%s payload changed" % alg)


@pytest.mark.req("AUTH-042")
def test_every_refusal_looks_the_same(testee, auth):
    now = int(time.time())
    toks = [hs_token(auth, "p", exp=now - 3600, iat=now - 7200), hs_token(auth, "p")[:-3] + "abc",
            jws({"alg": "none"}, claims_for(auth, "p"), lambda si: b""), "garbage"]
    seen = set()
    for t in toks:
        hs = attempt(testee, t)
        body = expect_401(hs, what="refusal")
        seen.add((hs.status, hs.header("www-authenticate"), body["code"], body["retryable"]))
    assert len(seen) == 1, "refusals differ: %r" % seen


@pytest.mark.req("AUTH-050", "AUTH-034")
def test_live_connection_closed_4003_at_expiry(testee, auth, player):
    now = int(time.time())
    # acceptance ends at exp + leeway = now + 2
    tok = hs_token(auth, uniq("p"), exp=now + 2 - auth.leeway, iat=now - 10)
    ws = player(token=tok)
    assert ws.ping()["type"] == "pong"
    t0 = time.monotonic()
    c = ws.expect_closed(timeout=8)
    assert c.code == 4003, "closed with %r (%s), not 4003" % (c.code, c.reason)
    assert time.monotonic() - t0 <= 2 + 1 + 2 + 1, "closed %.1f s after connecting" % (time.monotonic() - t0)


@pytest.mark.req("AUTH-051", "MSG-074")
def test_after_4003_a_new_token_finds_the_ticket(testee, auth, player):
    """The server half of AUTH-051: the queued ticket outlives the 4003 (grace)
    and a new connection with a new token watches it."""
    if testee.decl["graceSeconds"] < 1:
        pytest.skip("grace under 1 s")
    q = uniq("cf")
    sub = uniq("p")
    now = int(time.time())
    old = player(sub, token=hs_token(auth, sub, exp=now + 2 - auth.leeway, iat=now - 10))
    t = old.enqueue_ok(q, player=sub)["ticketId"]
    c = old.expect_closed(timeout=8)
    assert c.code == 4003, c
    new = player(sub)
    w = new.request("watch", {"ticketId": t})
    assert w["type"] == "watching" and w["data"]["state"] == "queued", w


@pytest.mark.req("AUTH-052", "AUTH-064", "MSG-060")
def test_renewal_connection_gets_the_same_assignment(testee, auth, player):
    """AUTH-052: a second connection of the same player (a fresh token) that
    watches the ticket gets the same match.assigned as the first; it lists
    every player of the match (AUTH-064)."""
    q = uniq("cf")
    sub = uniq("p")
    first = player(sub)
    t = first.enqueue_ok(q, player=sub)["ticketId"]
    second = player(sub)
    assert second.request("watch", {"ticketId": t})["type"] == "watching"
    others = []
    for _ in range(testee.size_of(q) - 1):
        o = player()
        o.enqueue_ok(q, player=o.sub)
        others.append(o.sub)
    a1, a2 = first.wait_push("match.assigned", t), second.wait_push("match.assigned", t)
    assert a1["data"] == a2["data"], (a1, a2)
    players = a1["data"]["assignment"]["players"]
    ids = [p.get("playerId") if isinstance(p, dict) else p for p in players]
    for p in [sub] + others:
        assert p in json.dumps(players), "match.assigned players %r lack %s" % (ids, p)


@pytest.mark.req("AUTH-037")
def test_one_token_several_connections_other_claims_ignored(testee, auth, player):
    sub = uniq("p")
    tok = hs_token(auth, sub, jti="same-jti", nonce="n", roles=["x"])
    a, b = player(sub, token=tok), player(sub, token=tok)
    assert a.ping()["type"] == "pong" and b.ping()["type"] == "pong"


@pytest.mark.req("AUTH-001", "AUTH-004", "AUTH-073")
@pytest.mark.profile("core")
def test_unauthenticated_mode_needs_no_token(testee):
    """A server declared without `auth` (the core profile's) is in
    unauthenticated mode: messages.md alone applies (AUTH-001, AUTH-004)."""
    if "auth" in testee.decl:
        pytest.skip("the declaration has an auth member: profile auth tests this server")
    ws = ws_from(testee, raw_handshake(testee))
    try:
        assert ws.ping()["type"] == "pong"
        q = uniq("cf")
        assert ws.enqueue_ok(q, player=uniq("anyone"))["state"] == "queued"
    finally:
        ws.close()
    r = http(testee, "GET", "/healthz")
    assert r.status == 200 and r.json.get("status") == "ok", (r.status, r.body)
    # no service token declared: /metrics stays open (AUTH-073)
    assert http(testee, "GET", "/metrics").status == 200


# ---------------------------------------------------------------------------
# Section 6: the player is the token's subject
# ---------------------------------------------------------------------------

@pytest.mark.req("AUTH-061")
def test_enqueue_as_another_player_forbidden(player, queue):
    ws = player()
    r = ws.enqueue(queue, player=uniq("victim"))
    assert r["type"] == "error" and r["data"]["code"] == "forbidden" and r["data"]["retryable"] is False, r
    # nothing was created: a second enqueue of its own works and is alone
    assert ws.enqueue_ok(queue, player=ws.sub)["state"] == "queued"


@pytest.mark.req("AUTH-062", "MSG-042")
def test_watch_of_another_players_ticket_is_not_found(player, testee):
    q = uniq("cf")
    victim, eve, partner = player(), player(), player()
    vt = victim.enqueue_ok(q, player=victim.sub)["ticketId"]
    unknown = eve.request("watch", {"ticketId": "00000000-0000-4000-8000-000000000000"})
    r = eve.request("watch", {"ticketId": vt})
    assert r["type"] == "error" and r["data"]["code"] == "not_found", r
    assert r["data"]["retryable"] == unknown["data"]["retryable"] and vt not in json.dumps(r)
    # the victim's ticket is matched: its watcher hears it, eve nothing
    size = testee.size_of(q)
    for _ in range(size - 1):
        partner_ws = partner if _ == 0 else player()
        partner_ws.enqueue_ok(q, player=partner_ws.sub)
    victim.wait_push("match.assigned", vt)
    got = eve.quiet(1.0)
    assert not got, "eve received %r for another player's ticket" % got


@pytest.mark.req("AUTH-062", "MSG-031")
def test_cancel_of_another_players_ticket_is_not_found(player, testee, auth):
    q = uniq("cf")
    victim, eve = player(), player()
    vt = victim.enqueue_ok(q, player=victim.sub)["ticketId"]
    unknown = eve.request("cancel", {"ticketId": "00000000-0000-4000-8000-000000000000"})
    r = eve.request("cancel", {"ticketId": vt})
    assert r["type"] == "error" and r["data"]["code"] == "not_found", r
    assert r["data"]["message"] == unknown["data"]["message"] or True  # messages are not parsed
    assert victim.quiet(0.5) == [], "the victim heard of a cancel that must not happen"
    w = victim.request("watch", {"ticketId": vt})
    assert w["type"] == "watching" and w["data"]["state"] == "queued", w
    assert victim.request("cancel", {"ticketId": vt})["type"] == "cancelled"


@pytest.mark.req("AUTH-063", "AUTH-061", "MSG-026")
def test_replay_of_victims_idempotency_key_learns_nothing(player):
    q = uniq("cf")
    victim, eve = player(), player()
    key = uniq("key")
    vt = victim.enqueue_ok(q, player=victim.sub, key=key)["ticketId"]
    r = eve.enqueue(q, player=victim.sub, key=key)
    assert r["type"] == "error" and r["data"]["code"] == "forbidden", r
    assert vt not in json.dumps(r)
    mine = eve.enqueue_ok(q, player=eve.sub, key=key)
    assert mine["ticketId"] != vt, "eve's replay with the victim's key returned the victim's ticket"


# ---------------------------------------------------------------------------
# Section 7: HTTP
# ---------------------------------------------------------------------------

def bearer(tok):
    return {"Authorization": "Bearer " + (tok.decode() if isinstance(tok, bytes) else tok)}


def expect_http_401(r, what):
    assert r.status == 401, "%s: HTTP %d" % (what, r.status)
    assert r.json.get("code") == "unauthorized", "%s: %r" % (what, r.body)
    assert (r.headers.get("www-authenticate") or "").startswith("Bearer"), "%s: %r" % (what, r.headers)


@pytest.mark.req("AUTH-070", "AUTH-072")
def test_http_tickets_need_credentials(testee, auth):
    body = {"queue": uniq("cf"), "playerId": uniq("p")}
    expect_http_401(http(testee, "POST", "/v1/tickets", body), "POST without credentials")
    tid = "00000000-0000-4000-8000-000000000000"
    expect_http_401(http(testee, "GET", "/v1/tickets/" + tid), "GET without credentials")
    expect_http_401(http(testee, "DELETE", "/v1/tickets/" + tid), "DELETE without credentials")
    expect_http_401(http(testee, "POST", "/v1/tickets", body, headers=bearer("wrong-" + "x" * 40)),
                    "POST with a wrong token")
    # the query form is not accepted over HTTP
    expect_http_401(http(testee, "POST", "/v1/tickets?access_token=" + hs_token(auth, body["playerId"]), body),
                    "POST with access_token")


@pytest.mark.req("AUTH-070", "AUTH-071", "MSG-110", "MSG-111", "MSG-112", "TST-044")
def test_http_with_service_token(testee, auth):
    if not auth.service:
        pytest.skip("no serviceTokenFile in the declaration (TST-044)")
    h = bearer(auth.service)
    body = {"queue": uniq("cf"), "playerId": uniq("p")}
    r = http(testee, "POST", "/v1/tickets", body, headers=h)
    assert r.status == 201, (r.status, r.body)
    tid = r.json["ticketId"]
    assert http(testee, "GET", "/v1/tickets/" + tid, headers=h).status == 200
    assert http(testee, "DELETE", "/v1/tickets/" + tid, headers=h).status == 200
    # one byte more or less is another token
    expect_http_401(http(testee, "GET", "/v1/tickets/" + tid, headers=bearer(auth.service + b"x")), "token+1")
    expect_http_401(http(testee, "GET", "/v1/tickets/" + tid, headers=bearer(auth.service[:-1])), "token-1")


@pytest.mark.req("AUTH-070")
def test_http_with_player_token(testee, auth):
    alice, bob = uniq("p"), uniq("p")
    ha, hb = bearer(hs_token(auth, alice)), bearer(hs_token(auth, bob))
    q = uniq("cf")
    r = http(testee, "POST", "/v1/tickets", {"queue": q, "playerId": bob}, headers=ha)
    assert r.status == 403 and r.json["code"] == "forbidden", (r.status, r.body)
    r = http(testee, "POST", "/v1/tickets", {"queue": q, "playerId": alice}, headers=ha)
    assert r.status == 201, (r.status, r.body)
    tid = r.json["ticketId"]
    assert http(testee, "GET", "/v1/tickets/" + tid, headers=ha).status == 200
    for method in ("GET", "DELETE"):
        r = http(testee, method, "/v1/tickets/" + tid, headers=hb)
        assert r.status == 404 and r.json["code"] == "not_found", (method, r.status, r.body)
    r = http(testee, "GET", "/v1/tickets/" + tid, headers=ha)
    assert r.status == 200 and r.json["state"] == "queued", "bob's DELETE changed alice's ticket: %r" % r.body
    assert http(testee, "DELETE", "/v1/tickets/" + tid, headers=ha).status == 200


@pytest.mark.req("AUTH-073", "AUTH-075")
def test_metrics_need_the_service_token(testee, auth):
    if not auth.service:
        pytest.skip("no serviceTokenFile in the declaration (TST-044)")
    expect_http_401(http(testee, "GET", "/metrics"), "/metrics without credentials")
    expect_http_401(http(testee, "GET", "/metrics", headers=bearer(hs_token(auth, uniq("p")))),
                    "/metrics with a player token")
    r = http(testee, "GET", "/metrics", headers=bearer(auth.service))
    assert r.status == 200, r.status


@pytest.mark.req("AUTH-074", "MSG-113")
def test_healthz_says_only_ok(testee, auth):
    r = http(testee, "GET", "/healthz")
    assert r.status == 200 and r.json == {"status": "ok"}, (r.status, r.body)


@pytest.mark.req("AUTH-075")
def test_service_token_opens_no_websocket(testee, auth):
    if not auth.service:
        pytest.skip("no serviceTokenFile in the declaration (TST-044)")
    expect_401(attempt(testee, auth.service.decode()), what="service token at /realtime")


# ---------------------------------------------------------------------------
# Section 9: origins
# ---------------------------------------------------------------------------

@pytest.mark.req("AUTH-090", "TST-045")
def test_origin_allow_list(testee, auth):
    if not auth.origins:
        pytest.skip("no allowedOrigins in the declaration (TST-045)")
    tok = hs_token(auth, uniq("p"))
    for origin in (auth.origins[0], auth.origins[0].upper(), None):
        hs = attempt(testee, tok, origin=origin)
        hs.sock.close()
        assert hs.status == 101, "Origin %r answered %d" % (origin, hs.status)
    for origin in ("https://evil.example", "null", auth.origins[0] + ".evil.example", auth.origins[0] + "/"):
        hs = attempt(testee, tok, origin=origin)
        hs.sock.close()
        assert hs.status == 403, "Origin %r answered %d, not 403" % (origin, hs.status)
        body = json.loads(hs.rest.decode())
        assert body.get("code") == "forbidden" and body.get("retryable") is False, body
    # checked before the credentials (AUTH-040's order): 403 even without a token
    hs = attempt(testee, None, origin="https://evil.example")
    hs.sock.close()
    assert hs.status == 403, "a refused Origin without a token answered %d" % hs.status


# ---------------------------------------------------------------------------
# The edge an attacker tries first (messages.md)
# ---------------------------------------------------------------------------

@pytest.mark.req("MSG-141")
@pytest.mark.parametrize("kind", ["text", "ping", "close"])
def test_unmasked_client_frame_closes_1002(player, kind):
    ws = player()
    assert ws.ping()["type"] == "pong"
    payload = {"text": b'{"type":"ping","v":1,"id":"u","data":{}}', "ping": b"hi", "close": b"\x03\xe8"}[kind]
    op = {"text": 0x1, "ping": 0x9, "close": 0x8}[kind]
    ws.send_raw_frame(encode_frame(op, payload, mask=False), "unmasked " + kind)
    c = ws.expect_closed(timeout=5)
    assert c.code == 1002, "an unmasked %s frame: closed with %r (%s), not 1002" % (kind, c.code, c.reason)


@pytest.mark.req("MSG-140")
@pytest.mark.parametrize("with_length", [False, True])
def test_chunked_post_is_411(testee, auth, with_length):
    if not auth.service:
        pytest.skip("no serviceTokenFile in the declaration (TST-044)")
    body = json.dumps({"queue": uniq("cf"), "playerId": uniq("p")}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = ["POST /v1/tickets HTTP/1.1", "Host: %s:%d" % (testee.host, testee.port),
            "Content-Type: application/json", "Transfer-Encoding: chunked",
            "Authorization: Bearer " + auth.service.decode()]
    if with_length:
        head.append("Content-Length: %d" % len(chunked))
    s = mwclient.connect(testee)
    try:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + chunked)
        buf = mwclient._recv_until(s, b"\r\n\r\n", 65536, time.monotonic() + testee.timeout)
        status, hdrs, rest = mwclient.parse_http_head(buf)
        assert status == 411, "chunked POST answered %d: %r" % (status, buf[:300])
        assert "close" in ",".join(hdrs.get("connection", [])).lower()
        # the connection closes after the answer
        s.settimeout(testee.timeout)
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
    finally:
        s.close()
