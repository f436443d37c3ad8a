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
from mwclient import MAX_MESSAGE, WS, Closed

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
