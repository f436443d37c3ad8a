#!/usr/bin/python3
"""Generates spec/vectors/messages/ (index.json + cases/): message-catalogue
vectors for spec/messages.md sections 3-4 (format: README.md here).

The tables below are the source of truth; the generated files are committed so
other implementations can use them without Python. Re-run after editing:

    /usr/bin/python3 spec/vectors/messages/gen_messages.py          # rewrite
    /usr/bin/python3 spec/vectors/messages/gen_messages.py --check  # fail if stale
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TID = "0f8e6b8a-7c1d-4a2b-9e3f-112233445566"
T0_TEXT = "2026-11-27T11:40:48.123Z"
T0_MS = 1795779648123

VECTORS = []
NOT_VECTOR_TESTABLE = {
    # Section 1, transport: WebSocket handshake and framing.
    "MSG-001": "transport: path /realtime (conformance suite, test_transport)",
    "MSG-002": "transport: one envelope per text message (conformance suite)",
    "MSG-003": "transport: subprotocol selection (conformance suite)",
    "MSG-004": "transport: no subprotocol offered (conformance suite)",
    "MSG-005": "transport: refused subprotocols (conformance suite)",
    "MSG-006": "withdrawn: client duties are spec/client.md (client conformance kit)",
    "MSG-013": "reply ordering on one connection (conformance suite)",
}
for n in (70, 71, 72, 73, 74, 75, 76, 77):
    NOT_VECTOR_TESTABLE["MSG-0%d" % n] = (
        "ticket semantics over time and connections (conformance suite; reference: "
        "test_session, test_ticket_store_memory, test_ticket)")
for n in (80, 81, 82):
    NOT_VECTOR_TESTABLE["MSG-0%d" % n] = (
        "matching behaviour (conformance suite; reference: test_matchmaker)")
for n in range(90, 100):
    NOT_VECTOR_TESTABLE["MSG-0%d" % n] = (
        "limits and their reactions on a live connection (conformance suite; reference: "
        "test_session, gateway)")
NOT_VECTOR_TESTABLE["MSG-101"] = "withdrawn: client duties are spec/client.md (client conformance kit)"
NOT_VECTOR_TESTABLE["MSG-102"] = "server configuration (SHOULD): nothing a message can show"
for n in (118, 119):
    NOT_VECTOR_TESTABLE["MSG-%d" % n] = "HTTP API (conformance suite; reference: http.c)"
for n in range(110, 116):
    NOT_VECTOR_TESTABLE["MSG-%d" % n] = "HTTP API (conformance suite; reference: http.c)"
for n in (116, 117, 120, 121, 122, 123):
    NOT_VECTOR_TESTABLE["MSG-%d" % n] = (
        "edge faults: pipelining, slow connections, reassembly budget, drain (conformance faults "
        "profile, test_faults_edge; reference: tests/edge_faults.py)")
NOT_VECTOR_TESTABLE["MSG-140"] = (
    "HTTP framing: a request with Transfer-Encoding (conformance auth profile, test_auth)")
NOT_VECTOR_TESTABLE["MSG-141"] = (
    "WebSocket framing: an unmasked client frame (conformance auth profile, test_auth)")
for n in range(150, 157):
    NOT_VECTOR_TESTABLE["MSG-%d" % n] = (
        "TLS transport: certificates, handshakes and frames inside TLS (conformance tls "
        "profile, test_tls; reference: tests/tls_server.py)")
for n in range(125, 129):
    NOT_VECTOR_TESTABLE["MSG-%d" % n] = (
        "backend stall: timing on a live connection (conformance faults profile; reference: "
        "test_redis_conn, tests/fault_redis_stall.py)")


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def env(type_, data, id_=None, v=1):
    """Envelope text in canonical member order."""
    parts = ['"type":' + compact(type_), '"v":' + compact(v)]
    if id_ is not None:
        parts.append('"id":' + compact(id_))
    parts.append('"data":' + (data if isinstance(data, str) else compact(data)))
    return "{" + ",".join(parts) + "}"


def client(vid, reqs, desc, text, decoded=None, code=None, reply_id=None):
    v = {"id": vid, "file": "cases/%s.json" % vid, "direction": "client",
         "requirements": reqs, "description": desc}
    if code is None:
        v["expect"] = "ok"
        v["decoded"] = decoded
    else:
        v["expect"] = "error"
        v["code"] = code
        if reply_id is not None:
            v["replyId"] = reply_id
    VECTORS.append((v, text.encode("utf-8") if isinstance(text, str) else text))


def server(vid, reqs, desc, text, decoded=None, code=None):
    v = {"id": vid, "file": "cases/%s.json" % vid, "direction": "server",
         "requirements": reqs, "description": desc}
    if code is None:
        v["expect"] = "ok"
        v["decoded"] = decoded
    else:
        v["expect"] = "error"
        v["code"] = code
    VECTORS.append((v, text.encode("utf-8")))


def enq(data):
    return env("enqueue", data, "r1")


def enq_ok(vid, reqs, desc, data, **summary):
    d = {"type": "enqueue", "id": "r1"}
    d.update(summary)
    client(vid, reqs, desc, enq(data), decoded=d)


def enq_bad(vid, reqs, desc, data):
    client(vid, reqs, desc, enq(data), code="bad_message", reply_id="r1")


# ---- 3.1 enqueue -----------------------------------------------------------
Q = '"queue":"ranked"'
P = '"playerId":"p1"'

enq_ok("enq-001-minimal", ["MSG-020", "MSG-021", "MSG-025", "MSG-027", "MSG-010", "MSG-011"],
       "queue and playerId only", "{%s,%s}" % (Q, P), queue="ranked", playerId="p1")
enq_ok("enq-002-full", ["MSG-020", "MSG-021", "MSG-022", "MSG-023", "MSG-026"],
       "every member: attributes with region, idempotencyKey",
       '{"queue":"ranked-1v1_eu","playerId":"alice","attributes":{"region":"eu","mmr":1500,'
       '"mode":"duo"},"idempotencyKey":"k-1"}',
       queue="ranked-1v1_eu", playerId="alice", region="eu", idempotencyKey="k-1",
       attributes={"region": "eu", "mmr": 1500, "mode": "duo"})
enq_ok("enq-003-queue-64", ["MSG-020"], "queue of 64 bytes",
       '{"queue":"%s",%s}' % ("a" * 64, P), queue="a" * 64, playerId="p1")
enq_bad("enq-004-queue-65", ["MSG-020", "MSG-024"], "queue of 65 bytes",
        '{"queue":"%s",%s}' % ("a" * 65, P))
enq_bad("enq-005-queue-empty", ["MSG-020", "MSG-024"], "empty queue", '{"queue":"",%s}' % P)
enq_bad("enq-006-queue-uppercase", ["MSG-020", "MSG-024"], "upper-case letter in queue",
        '{"queue":"Ranked",%s}' % P)
enq_bad("enq-007-queue-dot", ["MSG-020", "MSG-024"], "'.' is not a queue byte",
        '{"queue":"ranked.eu",%s}' % P)
enq_bad("enq-008-queue-non-ascii", ["MSG-020", "MSG-024"], "non-ASCII letter in queue",
        '{"queue":"caf\\u00e9",%s}' % P)
enq_bad("enq-009-queue-number", ["MSG-020", "MSG-024"], "queue of the wrong JSON type",
        '{"queue":5,%s}' % P)
enq_bad("enq-010-queue-missing", ["MSG-020", "MSG-024"], "queue missing", "{%s}" % P)
enq_ok("enq-011-player-128", ["MSG-021"], "playerId of 128 bytes",
       '{%s,"playerId":"%s"}' % (Q, "x" * 128), queue="ranked", playerId="x" * 128)
enq_bad("enq-012-player-129", ["MSG-021", "MSG-024"], "playerId of 129 bytes",
        '{%s,"playerId":"%s"}' % (Q, "x" * 129))
enq_bad("enq-013-player-empty", ["MSG-021", "MSG-024"], "empty playerId",
        '{%s,"playerId":""}' % Q)
enq_ok("enq-014-player-utf8-128-bytes", ["MSG-021"], "64 two-byte characters: 128 bytes",
       '{%s,"playerId":"%s"}' % (Q, "\u00e9" * 64), queue="ranked", playerId="\u00e9" * 64)
enq_bad("enq-015-player-utf8-130-bytes", ["MSG-021", "MSG-024"],
        "65 two-byte characters: 130 bytes (length is in bytes)",
        '{%s,"playerId":"%s"}' % (Q, "\u00e9" * 65))
enq_ok("enq-016-player-escapes", ["MSG-021"], "length counted after unescaping",
       '{%s,"playerId":"%s"}' % (Q, "\\u0041" * 128), queue="ranked", playerId="A" * 128)
enq_bad("enq-017-player-number", ["MSG-021", "MSG-024"], "playerId of the wrong JSON type",
        '{%s,"playerId":42}' % Q)
enq_bad("enq-018-player-missing", ["MSG-021", "MSG-024"], "playerId missing", "{%s}" % Q)
attrs16 = ",".join('"k%d":%d' % (i, i) for i in range(16))
enq_ok("enq-019-attributes-16", ["MSG-022"], "16 attributes",
       '{%s,%s,"attributes":{%s}}' % (Q, P, attrs16), queue="ranked", playerId="p1",
       attributes={"k%d" % i: i for i in range(16)})
enq_bad("enq-020-attributes-17", ["MSG-022", "MSG-024"], "17 attributes",
        '{%s,%s,"attributes":{%s,"k16":16}}' % (Q, P, attrs16))
enq_ok("enq-021-attribute-string-256", ["MSG-022"], "string attribute of 256 bytes",
       '{%s,%s,"attributes":{"s":"%s"}}' % (Q, P, "v" * 256), queue="ranked", playerId="p1",
       attributes={"s": "v" * 256})
enq_bad("enq-022-attribute-string-257", ["MSG-022", "MSG-024"], "string attribute of 257 bytes",
        '{%s,%s,"attributes":{"s":"%s"}}' % (Q, P, "v" * 257))
enq_bad("enq-023-attribute-bool", ["MSG-022", "MSG-024"], "boolean attribute value",
        '{%s,%s,"attributes":{"ranked":true}}' % (Q, P))
enq_bad("enq-024-attribute-null", ["MSG-022", "MSG-024"], "null attribute value",
        '{%s,%s,"attributes":{"x":null}}' % (Q, P))
enq_bad("enq-025-attribute-object", ["MSG-022", "MSG-024"], "object attribute value",
        '{%s,%s,"attributes":{"x":{"y":1}}}' % (Q, P))
enq_bad("enq-026-attribute-array", ["MSG-022", "MSG-024"], "array attribute value",
        '{%s,%s,"attributes":{"x":[1]}}' % (Q, P))
enq_bad("enq-027-attributes-not-object", ["MSG-022", "MSG-024"], "attributes is an array",
        '{%s,%s,"attributes":[]}' % (Q, P))
enq_ok("enq-028-region-64", ["MSG-022"], "region of 64 bytes",
       '{%s,%s,"attributes":{"region":"%s"}}' % (Q, P, "r" * 64), queue="ranked", playerId="p1",
       region="r" * 64, attributes={"region": "r" * 64})
enq_bad("enq-029-region-65", ["MSG-022", "MSG-024"], "region of 65 bytes",
        '{%s,%s,"attributes":{"region":"%s"}}' % (Q, P, "r" * 65))
enq_bad("enq-030-region-empty", ["MSG-022", "MSG-024"], "empty region",
        '{%s,%s,"attributes":{"region":""}}' % (Q, P))
enq_bad("enq-031-region-number", ["MSG-022", "MSG-024"], "region must be a string",
        '{%s,%s,"attributes":{"region":1}}' % (Q, P))
enq_ok("enq-032-attributes-canonical", ["MSG-022"],
       "attributes are carried in canonical form (numbers, escapes, whitespace)",
       '{%s,%s,"attributes": { "mmr" : 1.50e3 , "s" : "\\u0041\\/b", "neg":-0.25 }}' % (Q, P),
       queue="ranked", playerId="p1", attributes={"mmr": 1500, "s": "A/b", "neg": -0.25})
enq_ok("enq-033-attributes-empty", ["MSG-022"], "empty attributes object",
       '{%s,%s,"attributes":{}}' % (Q, P), queue="ranked", playerId="p1", attributes={})
enq_ok("enq-034-idempotency-key-64", ["MSG-023", "MSG-026", "MSG-028", "MSG-135"],
       "idempotencyKey of 64 bytes",
       '{%s,%s,"idempotencyKey":"%s"}' % (Q, P, "k" * 64), queue="ranked", playerId="p1",
       idempotencyKey="k" * 64)
enq_bad("enq-035-idempotency-key-65", ["MSG-023", "MSG-024"], "idempotencyKey of 65 bytes",
        '{%s,%s,"idempotencyKey":"%s"}' % (Q, P, "k" * 65))
enq_bad("enq-036-idempotency-key-empty", ["MSG-023", "MSG-024"], "empty idempotencyKey",
        '{%s,%s,"idempotencyKey":""}' % (Q, P))
enq_bad("enq-037-idempotency-key-number", ["MSG-023", "MSG-024"],
        "idempotencyKey of the wrong JSON type", '{%s,%s,"idempotencyKey":7}' % (Q, P))
enq_bad("enq-038-idempotency-key-null", ["MSG-023", "MSG-024"], "null is not absent",
        '{%s,%s,"idempotencyKey":null}' % (Q, P))
enq_ok("enq-039-unknown-members", ["MSG-015", "MSG-020", "MSG-021"],
       "members of data the schema does not name are ignored",
       '{"future":{"x":[1,2]},%s,"priority":9,%s}' % (Q, P), queue="ranked", playerId="p1")
client("enq-040-no-id", ["MSG-011", "MSG-025"], "a request without id: no id in the reply",
       env("enqueue", "{%s,%s}" % (Q, P)),
       decoded={"type": "enqueue", "queue": "ranked", "playerId": "p1"})
client("enq-041-v2", ["MSG-014"], "known type, unsupported version",
       env("enqueue", "{%s,%s}" % (Q, P), "r1", v=2), code="unsupported_version", reply_id="r1")
client("enq-042-data-missing", ["MSG-012"], "envelope without data: error echoes the valid id",
       '{"type":"enqueue","v":1,"id":"r1"}', code="bad_envelope", reply_id="r1")
client("enq-043-data-not-object", ["MSG-012", "MSG-024"], "data is not an object",
       '{"type":"enqueue","v":1,"id":"r1","data":"ranked"}', code="bad_envelope", reply_id="r1")

# ---- 3.2 cancel, 3.3 watch -------------------------------------------------
for kind, reqs_ok, reqs_nf in (("cancel", ["MSG-030"], ["MSG-031"]),
                               ("watch", ["MSG-040", "MSG-041", "MSG-043"], ["MSG-042"])):
    k = kind[:3]
    client("%s-001-ok" % k, reqs_ok, "%s a ticket" % kind,
           env(kind, {"ticketId": TID}, "c1"),
           decoded={"type": kind, "id": "c1", "ticketId": TID})
    client("%s-002-extra-members" % k, reqs_ok + ["MSG-015"], "unknown data members ignored",
           env(kind, {"reason": "x", "ticketId": TID}),
           decoded={"type": kind, "ticketId": TID})
    client("%s-003-ticket-id-missing" % k, reqs_nf, "ticketId missing",
           env(kind, {}, "c1"), code="bad_message", reply_id="c1")
    client("%s-004-ticket-id-number" % k, reqs_nf, "ticketId of the wrong JSON type",
           env(kind, {"ticketId": 12}, "c1"), code="bad_message", reply_id="c1")
    client("%s-005-ticket-id-garbage" % k, reqs_nf, "not a ticket id: not_found",
           env(kind, {"ticketId": "nope"}, "c1"), code="not_found", reply_id="c1")
    client("%s-006-ticket-id-uppercase" % k, reqs_nf + ["MSG-073"],
           "not an id the server issued (the reference issues lowercase UUID v4 text): not_found",
           env(kind, {"ticketId": TID.upper()}, "c1"), code="not_found", reply_id="c1")
    client("%s-007-ticket-id-not-v4" % k, reqs_nf, "UUID version 1: not_found",
           env(kind, {"ticketId": "0f8e6b8a-7c1d-1a2b-9e3f-112233445566"}, "c1"),
           code="not_found", reply_id="c1")
    client("%s-008-ticket-id-empty" % k, reqs_nf, "empty ticketId: not_found",
           env(kind, {"ticketId": ""}, "c1"), code="not_found", reply_id="c1")

# ---- 3.4 ping, dispatch, ids -----------------------------------------------
client("png-001-ok", ["MSG-050", "MSG-010", "MSG-011"], "ping with an id",
       env("ping", {}, "p-1"), decoded={"type": "ping", "id": "p-1"})
client("png-002-members-ignored", ["MSG-050", "MSG-015"], "members of ping data are ignored",
       env("ping", {"t": 1, "nested": {"a": [True]}}), decoded={"type": "ping"})
client("png-003-data-array", ["MSG-050", "MSG-012"], "data must be an object",
       '{"type":"ping","v":1,"id":"p-1","data":[]}', code="bad_envelope", reply_id="p-1")
client("png-004-v2", ["MSG-014"], "ping v2", env("ping", {}, "p-2", v=2),
       code="unsupported_version", reply_id="p-2")
client("typ-001-unknown", ["MSG-014"], "unknown type", env("subscribe", {}, "u1"),
       code="unknown_type", reply_id="u1")
client("typ-002-server-type", ["MSG-014"], "a server-to-client type sent by a client",
       env("enqueued", {}, "u2"), code="unknown_type", reply_id="u2")
client("typ-003-match-assigned", ["MSG-014", "MSG-060"], "match.assigned is not a client type",
       env("match.assigned", {}), code="unknown_type")
client("typ-004-unknown-type-other-v", ["MSG-014"], "unknown type wins over the version",
       env("nope", {}, "u3", v=9), code="unknown_type", reply_id="u3")
client("id-001-bad-json", ["MSG-012"], "not strict I-JSON: no id even though one is visible",
       '{"type":"ping","v":1,"id":"x","data":{},}', code="bad_json")
client("id-002-invalid-id", ["MSG-012"], "an invalid id is not echoed",
       '{"type":"ping","v":1,"id":"","data":{}}', code="bad_envelope")
client("id-003-id-wrong-type", ["MSG-012"], "a non-string id is not echoed",
       '{"type":"ping","v":1,"id":7,"data":{}}', code="bad_envelope")
client("id-004-escaped-id", ["MSG-011", "MSG-012"], "ids compare after unescaping",
       '{"type":"ping","v":1,"id":"\\u0061b","data":{}}', decoded={"type": "ping", "id": "ab"})
client("id-005-duplicate-member", ["MSG-012"], "duplicate member names are bad_json: no echo",
       '{"type":"ping","v":1,"id":"a","id":"a","data":{}}', code="bad_json")

# ---- 4. server to client ---------------------------------------------------
ASSIGNMENT = {"matchId": "7d3b5b0e-1f2a-4c3d-8e4f-5a6b7c8d9e0f", "connection": "10.0.0.5:7777",
              "players": [{"playerId": "alice"}, {"playerId": "bob"}], "assignedAt": T0_TEXT}


def ma(data_over=None, assign_over=None, drop=(), id_=None, v=1):
    a = dict(ASSIGNMENT)
    a.update(assign_over or {})
    d = {"ticketId": TID, "version": 2, "assignment": a}
    d.update(data_over or {})
    for k in drop:
        if k in d:
            del d[k]
        else:
            del a[k]
    return env("match.assigned", d, id_, v)


def ma_ok(vid, reqs, desc, text, version=2, ms=T0_MS):
    server(vid, reqs, desc, text, decoded={"type": "match.assigned", "ticketId": TID,
                                           "version": version, "assignedAtMs": ms})


def ma_bad(vid, reqs, desc, text, code="bad_message"):
    server(vid, reqs, desc, text, code=code)


ma_ok("srv-ma-001-ok", ["MSG-060", "MSG-064", "MSG-083"], "a match.assigned push", ma())
ma_ok("srv-ma-002-no-fraction", ["MSG-060", "MSG-083"],
      "a receiver accepts assignedAt without fractional seconds (a server sends milliseconds)",
      ma(assign_over={"assignedAt": "2026-11-27T11:40:48Z"}), ms=T0_MS - 123)
ma_ok("srv-ma-003-16-players", ["MSG-060"], "16 players, the maximum",
      ma(assign_over={"players": [{"playerId": "p%d" % i} for i in range(16)]}))
ma_ok("srv-ma-004-one-player", ["MSG-060"], "a match of one",
      ma(assign_over={"players": [{"playerId": "solo"}]}))
ma_ok("srv-ma-005-extra-members", ["MSG-060", "MSG-015"], "unknown members are ignored",
      ma(data_over={"hint": 1}, assign_over={"region": "eu"}), version=2)
ma_ok("srv-ma-006-ipv6-connection", ["MSG-060"], "connection host may be a bracketed IPv6",
      ma(assign_over={"connection": "[2001:db8::1]:7777"}))
ma_ok("srv-ma-007-version-large", ["MSG-060", "MSG-071"],
      "any integer version >= 2 (an assignment is a state change)",
      ma(data_over={"version": 9007199254740991}), version=9007199254740991)
ma_bad("srv-ma-008-17-players", ["MSG-060"], "17 players",
       ma(assign_over={"players": [{"playerId": "p%d" % i} for i in range(17)]}))
ma_bad("srv-ma-009-no-players", ["MSG-060"], "empty players",
       ma(assign_over={"players": []}))
ma_bad("srv-ma-010-player-empty-id", ["MSG-060"], "empty playerId",
       ma(assign_over={"players": [{"playerId": ""}]}))
ma_bad("srv-ma-011-player-with-ticket-id", ["MSG-061"], "a player entry reveals a ticket id",
       ma(assign_over={"players": [{"playerId": "alice", "ticketId": TID}]}))
ma_bad("srv-ma-012-assignment-ticket-id", ["MSG-061"], "the assignment carries a ticket id",
       ma(assign_over={"ticketId": TID}))
ma_bad("srv-ma-013-connection-no-port", ["MSG-060"], "connection without a port",
       ma(assign_over={"connection": "10.0.0.5"}))
ma_bad("srv-ma-014-connection-port-0", ["MSG-060"], "port 0",
       ma(assign_over={"connection": "10.0.0.5:0"}))
ma_bad("srv-ma-015-assigned-at-offset", ["MSG-060", "MSG-083"], "a numeric offset, not Z",
       ma(assign_over={"assignedAt": "2026-11-27T12:40:48.123+01:00"}))
ma_bad("srv-ma-016-assigned-at-epoch", ["MSG-060"], "assignedAt as a number",
       ma(assign_over={"assignedAt": T0_MS}))
ma_bad("srv-ma-017-assigned-at-invalid-date", ["MSG-060"], "February 30th",
       ma(assign_over={"assignedAt": "2026-02-30T11:40:48.123Z"}))
ma_bad("srv-ma-018-version-0", ["MSG-060", "MSG-071"], "version 0",
       ma(data_over={"version": 0}))
ma_bad("srv-ma-019-version-fraction", ["MSG-060"], "version 2.5",
       ma(data_over={"version": 2.5}))
ma_bad("srv-ma-020-ticket-id-missing", ["MSG-060"], "data.ticketId missing", ma(drop=("ticketId",)))
ma_bad("srv-ma-021-match-id-missing", ["MSG-060"], "matchId missing", ma(drop=("matchId",)))
ma_bad("srv-ma-022-with-id", ["MSG-010", "MSG-060"], "a push never carries an id",
       ma(id_="r1"))
ma_bad("srv-ma-023-v2", ["MSG-064"], "server messages are v1", ma(v=2),
       code="unsupported_version")
ma_bad("srv-ma-024-not-envelope", ["MSG-064"], "not an envelope (no v)",
       '{"type":"match.assigned","data":{}}', code="bad_envelope")
server("srv-ma-025-opaque-ticket-id", ["MSG-060", "MSG-073"],
       "ticket ids are opaque: a non-UUID id is as good (receivers never parse it)",
       ma(data_over={"ticketId": "tk_01HZX3QK7V"}),
       decoded={"type": "match.assigned", "ticketId": "tk_01HZX3QK7V", "version": 2,
                "assignedAtMs": T0_MS})
ma_ok("srv-ma-026-assigned-at-lowercase", ["MSG-060", "MSG-083"],
      "a receiver accepts RFC 3339's lower-case t and z",
      ma(assign_over={"assignedAt": T0_TEXT.replace("T", "t").replace("Z", "z")}))
ma_bad("srv-ma-027-version-1", ["MSG-060", "MSG-071"],
       "version 1 is a queued ticket's: a match.assigned is at least version 2",
       ma(data_over={"version": 1}))

server("srv-enq-001-ok", ["MSG-025", "MSG-064", "MSG-083"], "enqueued reply",
       env("enqueued", {"ticketId": TID, "queue": "ranked", "state": "queued", "version": 1,
                        "expiresAt": "2026-11-27T11:50:48.123Z"}, "r1"),
       decoded={"type": "enqueued"})
server("srv-enq-002-expires-at-seconds", ["MSG-025", "MSG-083"],
       "server timestamps carry milliseconds",
       env("enqueued", {"ticketId": TID, "queue": "ranked", "state": "queued", "version": 1,
                        "expiresAt": "2026-11-27T11:50:48Z"}, "r1"), code="bad_message")
server("srv-enq-005-ticket-id-empty", ["MSG-025", "MSG-073"],
       "a ticket id is 1 to 64 bytes: an empty one is not a ticket id",
       env("enqueued", {"ticketId": "", "queue": "ranked", "state": "queued", "version": 1,
                        "expiresAt": "2026-11-27T11:50:48.123Z"}, "r1"), code="bad_message")
server("srv-enq-004-replayed-assigned", ["MSG-026", "MSG-028", "MSG-029"],
       "enqueue answered from an existing, already assigned ticket (its match.assigned "
       "follows)",
       env("enqueued", {"ticketId": TID, "queue": "ranked", "state": "assigned", "version": 2,
                        "expiresAt": "2026-11-27T11:50:48.123Z"}, "r2"),
       decoded={"type": "enqueued"})
server("srv-can-001-ok", ["MSG-030"], "cancelled reply",
       env("cancelled", {"ticketId": TID, "version": 2}, "c1"), decoded={"type": "cancelled"})
server("srv-can-002-version-1", ["MSG-030", "MSG-071"], "a cancelled ticket has version >= 2",
       env("cancelled", {"ticketId": TID, "version": 1}, "c1"), code="bad_message")
server("srv-wat-001-queued", ["MSG-040", "MSG-043"], "watching a queued ticket",
       env("watching", {"ticketId": TID, "state": "queued", "version": 1}, "w1"),
       decoded={"type": "watching"})
server("srv-wat-002-assigned", ["MSG-040", "MSG-041"],
       "watching an assigned ticket (its match.assigned follows)",
       env("watching", {"ticketId": TID, "state": "assigned", "version": 2}, "w1"),
       decoded={"type": "watching"})
server("srv-wat-003-expired", ["MSG-042"], "watching an expired ticket replies its state",
       env("watching", {"ticketId": TID, "state": "expired", "version": 2}, "w1"),
       decoded={"type": "watching"})
server("srv-wat-004-bad-state", ["MSG-040", "MSG-070"], "state outside the four",
       env("watching", {"ticketId": TID, "state": "matched", "version": 2}, "w1"),
       code="bad_message")
server("srv-png-001-ok", ["MSG-050"], "pong reply", env("pong", {}, "p-1"),
       decoded={"type": "pong"})
server("srv-end-001-expired", ["MSG-062"], "ticket.expired push",
       env("ticket.expired", {"ticketId": TID, "version": 2}), decoded={"type": "ticket.expired"})
server("srv-end-002-cancelled", ["MSG-062"], "ticket.cancelled push",
       env("ticket.cancelled", {"ticketId": TID, "version": 2}),
       decoded={"type": "ticket.cancelled"})
server("srv-end-003-with-id", ["MSG-062", "MSG-010"], "pushes carry no id",
       env("ticket.expired", {"ticketId": TID, "version": 2}, "r1"), code="bad_message")
server("srv-err-001-offset", ["MSG-063", "MSG-100"], "error with an offset",
       env("error", {"code": "bad_json", "message": "unexpected ','", "retryable": False,
                     "offset": 31}, "r1"), decoded={"type": "error"})
server("srv-err-002-retryable", ["MSG-063", "MSG-100"], "retryable error without offset",
       env("error", {"code": "rate_limited", "message": "slow down", "retryable": True}),
       decoded={"type": "error"})
server("srv-err-003-retryable-wrong", ["MSG-063", "MSG-100"], "retryable must match the registry",
       env("error", {"code": "bad_message", "message": "x", "retryable": True}),
       code="bad_message")
server("srv-err-004-unknown-code", ["MSG-063"],
       "a v1 server sends registry codes only (a check of server output; a client handles an "
       "unknown code by its retryable flag, client.md CLI-024)",
       env("error", {"code": "oops", "message": "x", "retryable": False}), code="bad_message")
server("srv-err-005-negative-offset", ["MSG-063"], "offset is a non-negative integer",
       env("error", {"code": "bad_json", "message": "x", "retryable": False, "offset": -1}),
       code="bad_message")
server("srv-err-006-message-missing", ["MSG-063"], "message is required",
       env("error", {"code": "internal", "retryable": True}), code="bad_message")


def build():
    files = {}
    index_vectors = []
    for v, data in VECTORS:
        assert v["file"] not in files, v["id"]
        files[v["file"]] = data
        index_vectors.append(v)
    index = {"format": 1, "suite": "messages",
             "description": "see spec/vectors/messages/README.md",
             "not_vector_testable": NOT_VECTOR_TESTABLE, "vectors": index_vectors}
    lines = ['{', ' "format": 1,', ' "suite": "messages",',
             ' "description": %s,' % json.dumps(index["description"]),
             ' "not_vector_testable": %s,' % json.dumps(NOT_VECTOR_TESTABLE, indent=1)
             .replace("\n", "\n "),
             ' "vectors": [']
    lines.append(",\n".join("  " + json.dumps(v, ensure_ascii=False) for v in index_vectors))
    lines.append(' ]')
    lines.append('}')
    files["index.json"] = ("\n".join(lines) + "\n").encode("utf-8")
    json.loads(files["index.json"])  # well-formed
    return files


def main():
    check = "--check" in sys.argv
    files = build()
    stale = []
    for rel, data in sorted(files.items()):
        path = os.path.join(HERE, rel)
        old = open(path, "rb").read() if os.path.exists(path) else None
        if old != data:
            stale.append(rel)
            if not check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
    on_disk = set("cases/" + n for n in os.listdir(os.path.join(HERE, "cases"))) \
        if os.path.isdir(os.path.join(HERE, "cases")) else set()
    extra = sorted(on_disk - set(files))
    if check:
        for rel in stale:
            print("STALE", rel)
        for rel in extra:
            print("EXTRA", rel)
        print("%d vectors, %d stale files, %d extra files" % (len(VECTORS), len(stale), len(extra)))
        return 1 if stale or extra else 0
    for rel in extra:
        os.remove(os.path.join(HERE, rel))
    print("%d vectors written (%d files changed)" % (len(VECTORS), len(stale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
