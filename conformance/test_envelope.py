"""envelope.md over the wire: every envelope and JSON vector of
spec/vectors/ is sent as one text message and must get its specified answer
(messages.md MSG-014, MSG-063, MSG-091, MSG-092, MSG-094).

Offsets (ENV-052..058) and the canonical form (ENV-06x) are verified by the
vectors themselves (coverage_elsewhere.json); over the wire an error's
`offset`, when a server sends one, must equal the vector's.
"""

import json
import os

import pytest

import ijson
from mwclient import MAX_MESSAGE, WS, Closed, http, uniq

pytestmark = pytest.mark.profile("core")

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = os.path.join(os.path.dirname(HERE), "spec", "vectors")
WIRE_ONLY_EXCLUDED = {"ENV-052", "ENV-053", "ENV-054", "ENV-055", "ENV-056", "ENV-057", "ENV-058",
                      "ENV-060", "ENV-061", "ENV-062", "ENV-063", "ENV-064", "ENV-065"}
CLIENT = {"enqueue", "cancel", "watch", "ping"}


def load(suite):
    path = os.path.join(VEC, suite, "index.json")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        idx = json.load(f)
    out = []
    for v in idx["vectors"]:
        with open(os.path.join(VEC, suite, v["file"]), "rb") as f:
            data = f.read()
        ids = [r for r in v["requirements"] if r not in WIRE_ONLY_EXCLUDED]
        extra = ["MSG-094"] if v["expect"] == "error" else ["MSG-014"]
        if len(data) > MAX_MESSAGE:
            extra = ["MSG-091"]
        elif not ijson.valid_utf8(data):
            extra = ["MSG-092"]
        out.append(pytest.param(v, data, id=v["id"], marks=pytest.mark.req(*(ids + extra))))
    return out


def expected(v, data):
    """What the server must answer: ('close', code) or ('error', code) or
    ('reply', None) for a well-formed envelope."""
    if len(data) > MAX_MESSAGE:
        return ("close", 1009)
    if not ijson.valid_utf8(data):
        return ("close", 1007)
    if v["expect"] == "error":
        return ("error", v["code"])
    if v["mode"] == "json-only":
        env = ijson.loads(data)
        if not isinstance(env, dict):
            return ("error", "bad_envelope")
        return ("any", None)
    env = ijson.loads(data)
    if env["type"] not in CLIENT:
        return ("error", "unknown_type")
    if env["v"] != 1:
        return ("error", "unsupported_version")
    return ("not", ("bad_json", "too_deep", "too_large", "bad_envelope", "unknown_type",
                    "unsupported_version"))


def request_id(data):
    try:
        env = ijson.loads(data)
    except ijson.Fault:
        return None
    i = env.get("id") if isinstance(env, dict) else None
    if isinstance(i, str) and 1 <= len(i.encode()) <= 64 and all(0x20 <= ord(c) <= 0x7E for c in i):
        return i
    return None


def run_vector(testee, v, data):
    kind, what = expected(v, data)
    ws = WS(testee)
    try:
        ws.send_text(data)
        if kind == "close":
            c = ws.expect_closed()
            assert c.code == what, "vector %s: expected close %d, got %s" % (v["id"], what, c)
            return
        try:
            r = ws.recv()
        except Closed as c:
            raise AssertionError("vector %s: connection closed (%s) instead of a reply" % (v["id"], c))
        rid = request_id(data)
        if kind == "error":
            assert r["type"] == "error" and r["data"]["code"] == what, \
                "vector %s (%s): expected error %s, got %s" % (v["id"], v["description"], what, ijson.dumps(r)[:300])
            if "offset" in r["data"] and "offset" in v:
                assert r["data"]["offset"] == v["offset"], \
                    "vector %s: error offset %s, the vector says %s (MSG-063)" % (v["id"], r["data"]["offset"], v["offset"])
        elif kind == "not":
            assert not (r["type"] == "error" and r["data"]["code"] in what), \
                "vector %s is a valid envelope but was answered %s" % (v["id"], ijson.dumps(r)[:300])
        elif kind == "any":
            assert not (r["type"] == "error" and r["data"]["code"] in ("bad_json", "too_deep")), \
                "vector %s is valid I-JSON but was answered %s" % (v["id"], ijson.dumps(r)[:300])
        if rid is not None:
            assert r.get("id") == rid, "vector %s: reply id %r, request id %r (MSG-012)" % (v["id"], r.get("id"), rid)
        elif r["type"] == "error":
            assert "id" not in r, "vector %s: error carries id %r but the request had no valid id (MSG-012)" % (
                v["id"], r.get("id"))
        # The connection stays open after an error (MSG-094).
        assert ws.ping()["type"] == "pong"
    finally:
        ws.close()


@pytest.mark.parametrize("v,data", load("envelope"))
def test_envelope_vector(testee, v, data):
    run_vector(testee, v, data)


@pytest.mark.parametrize("v,data", load("json"))
def test_json_vector(testee, v, data):
    run_vector(testee, v, data)


@pytest.mark.req("ENV-004", "MSG-021", "MSG-111")
@pytest.mark.parametrize("esc,char", [("\\uD800\\uDC00", "\U00010000"), ("\\uDBFF\\uDFFD", "\U0010FFFD"),
                                      ("\\ud83d\\ude00", "\U0001F600")], ids=["D800-DC00", "DBFF-DFFD", "emoji"])
def test_surrogate_pair_escape_decoded(testee, conns, esc, char):
    """A surrogate pair escape denotes one code point, the pairs at the edges
    of the surrogate ranges included (\\uD800\\uDC00 is U+10000): the
    playerId the server keeps (HTTP GET) is that character, not two halves."""
    ws = conns()
    raw = '{"type":"enqueue","v":1,"id":"sp","data":{"queue":"%s","playerId":"p%s"}}' % (uniq("sp"), esc)
    ws.send_text(raw)
    r = ws.reply("sp")
    assert r["type"] == "enqueued", "%s answered %s" % (raw, ijson.dumps(r))
    g = http(testee, "GET", "/v1/tickets/" + r["data"]["ticketId"])
    assert g.status == 200, g.body
    assert g.json["playerId"] == "p" + char, "playerId sent as p%s kept as %r" % (esc, g.json["playerId"])


@pytest.mark.req("ENV-007")
@pytest.mark.parametrize("members", [40, 130])
def test_duplicate_member_among_many(conns, members):
    """A member name repeated after many others (40, 130: more names than a
    server may keep in a first, small table) is still found: `bad_json`."""
    ws = conns()
    body = ",".join('"m%d":%d' % (i, i) for i in range(members))
    raw = '{"type":"ping","v":1,"id":"dup","data":{%s,"m0":0}}' % body
    ws.send_text(raw)
    r = ws.recv()   # an error may carry the id or not (MSG-094)
    assert r["type"] == "error" and r["data"]["code"] == "bad_json", (
        "data with %d members and 'm0' twice answered %s" % (members, ijson.dumps(r)))
    ws.send_text('{"type":"ping","v":1,"id":"nodup","data":{%s}}' % body)
    assert ws.reply("nodup")["type"] == "pong", "the same data without the repeat must be served"


@pytest.mark.req("ENV-003", "MSG-110")
@pytest.mark.parametrize("byte", [0x80, 0xBF, 0xFF])
def test_stray_byte_in_http_body_string(testee, byte):
    """A lone byte 0x80 (the first that is not ASCII), 0xBF or 0xFF inside a
    string of an HTTP body is not UTF-8: 400 `bad_json`. (Over WebSocket a
    text frame that is not UTF-8 closes 1007 before any JSON is read; an
    HTTP body reaches the JSON parser as it is.)"""
    body = b'{"queue":"q","playerId":"p' + bytes([byte]) + b'"}'
    r = http(testee, "POST", "/v1/tickets", body, {"Content-Type": "application/json"})
    assert r.status == 400 and r.json.get("code") == "bad_json", (
        "a body with a stray byte 0x%02X in a string: HTTP %d %r" % (byte, r.status, r.body[:200]))
