/* Tests for the channel payload codec: exact encoding, decode(encode(x)),
 * payloads as a NestJS worker publishes them (JSON.stringify), every drop
 * reason, the 65,536-byte and depth bounds, and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "alloc.h"
#include "channel.h"
#include "error.h"
#include "messages.h"

#define TID "0f8e6b8a-7c1d-4a2b-9e3f-112233445566"
#define T0  1795779648123LL /* 2026-11-27T11:40:48.123Z */

#define ASSIGNMENT                                                                                 \
    "{\"matchId\":\"7d3b5b0e-1f2a-4c3d-8e4f-5a6b7c8d9e0f\",\"connection\":\"10.0.0.5:7777\","      \
    "\"players\":[{\"playerId\":\"alice\"},{\"playerId\":\"bob\"}],"                               \
    "\"assignedAt\":\"2026-11-27T11:40:48.123Z\"}"
#define ENVELOPE                                                                                   \
    "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID "\",\"version\":2,"       \
    "\"assignment\":" ASSIGNMENT "}}"

static int decode(const char *s, struct mw_assigned_owned *o, enum mw_drop_reason *why)
{
    return mw_channel_payload_decode(s, strlen(s), o, why);
}

static void expect_drop(const char *payload, enum mw_drop_reason want)
{
    struct mw_assigned_owned o;
    enum mw_drop_reason why = MW_DROP__COUNT;
    int rc = decode(payload, &o, &why);

    if (rc != MW_EINVAL || why != want)
        print_error("payload %s\n got rc %d %s, want %s\n", payload, rc, mw_drop_reason_name(why),
                    mw_drop_reason_name(want));
    assert_int_equal(rc, MW_EINVAL);
    assert_int_equal(why, want);
    assert_null(o.envelope);
    mw_assigned_owned_clear(&o);
}

static void expect_ok(const char *payload, const char *canonical, uint64_t version,
                      int64_t assigned_ms)
{
    struct mw_assigned_owned o;
    struct mw_assigned view;
    enum mw_drop_reason why = MW_DROP__COUNT;
    int rc = decode(payload, &o, &why);

    if (rc)
        print_error("payload %s\n dropped: %s\n", payload, mw_drop_reason_name(why));
    assert_int_equal(rc, 0);
    assert_int_equal(why, MW_DROP_NONE);
    assert_string_equal(o.ticket_id, TID);
    assert_int_equal(o.version, version);
    assert_int_equal(o.assigned_ms, assigned_ms);
    memset(&view, 0xff, sizeof(view)); /* every field set by the view */
    mw_assigned_view(&o, &view);
    assert_false(view.recovery); /* received on the channel: a first delivery */
    assert_string_equal(view.ticket_id, TID);
    assert_int_equal(view.envelope_len, strlen(canonical));
    assert_memory_equal(view.envelope, canonical, view.envelope_len);
    assert_int_equal(view.version, version);
    assert_int_equal(view.assigned_ms, assigned_ms);
    mw_assigned_owned_clear(&o);
    assert_null(o.envelope);
    mw_assigned_owned_clear(NULL);
}

static void test_drop_names(void **state)
{
    (void)state;
    assert_string_equal(mw_drop_reason_name(MW_DROP_NONE), "none");
    assert_string_equal(mw_drop_reason_name(MW_DROP_TOO_LARGE), "too_large");
    assert_string_equal(mw_drop_reason_name(MW_DROP_BAD_JSON), "bad_json");
    assert_string_equal(mw_drop_reason_name(MW_DROP_BAD_PAYLOAD), "bad_payload");
    assert_string_equal(mw_drop_reason_name(MW_DROP_BAD_ENVELOPE), "bad_envelope");
    assert_string_equal(mw_drop_reason_name(MW_DROP_NOT_ASSIGNED), "not_match_assigned");
    assert_string_equal(mw_drop_reason_name(MW_DROP_TICKET_MISMATCH), "ticket_mismatch");
    assert_string_equal(mw_drop_reason_name(MW_DROP__COUNT), "unknown");
    assert_string_equal(mw_drop_reason_name((enum mw_drop_reason) - 1), "unknown");
}

static void test_encode_exact_and_roundtrip(void **state)
{
    struct mw_buf b, env;
    struct mw_match m;
    struct mw_assigned a = {0};

    (void)state;
    mw_buf_init(&b, 0);
    mw_buf_init(&env, 0);
    memset(&m, 0, sizeof(m));
    snprintf(m.match_id, sizeof(m.match_id), "7d3b5b0e-1f2a-4c3d-8e4f-5a6b7c8d9e0f");
    snprintf(m.connection, sizeof(m.connection), "10.0.0.5:7777");
    m.assigned_ms = T0;
    m.n = 2;
    snprintf(m.ticket_ids[0], sizeof(m.ticket_ids[0]), TID);
    snprintf(m.ticket_ids[1], sizeof(m.ticket_ids[1]), "1a2b3c4d-5e6f-4a0b-8c0d-0e0f10111213");
    snprintf(m.player_ids[0], sizeof(m.player_ids[0]), "alice");
    snprintf(m.player_ids[1], sizeof(m.player_ids[1]), "bob");
    assert_int_equal(mw_msg_encode_match_assigned(&env, &m, 0, 2), 0);
    assert_string_equal(env.data, ENVELOPE);

    a.ticket_id = TID;
    a.envelope = env.data;
    a.envelope_len = env.len;
    a.version = 2;
    a.assigned_ms = T0;
    assert_int_equal(mw_channel_payload_encode(&b, &a), 0);
    assert_string_equal(b.data, "{\"ticketId\":\"" TID "\",\"envelope\":" ENVELOPE "}");
    expect_ok(b.data, ENVELOPE, 2, T0);

    /* bounded: the buffer keeps its previous contents on failure */
    {
        struct mw_buf small;
        mw_buf_init(&small, 100);
        assert_int_equal(mw_buf_puts(&small, "x"), 0);
        assert_int_equal(mw_channel_payload_encode(&small, &a), MW_ELIMIT);
        assert_string_equal(small.data, "x");
        mw_buf_release(&small);
    }
    mw_buf_release(&b);
    mw_buf_release(&env);
}

/* What `redis.publish('matchmaking:assigned', JSON.stringify({ticketId,
 * envelope}))` in the seed's NestJS MatchAssignedChannel puts on the wire. */
static void test_nestjs_payloads(void **state)
{
    (void)state;
    /* JSON.stringify, compact, member order as the object literal */
    expect_ok("{\"ticketId\":\"" TID "\",\"envelope\":{\"type\":\"match.assigned\",\"v\":1,"
              "\"data\":{\"ticketId\":\"" TID "\",\"version\":2,\"assignment\":{\"matchId\":"
              "\"7d3b5b0e-1f2a-4c3d-8e4f-5a6b7c8d9e0f\",\"connection\":\"10.0.0.5:7777\","
              "\"players\":[{\"playerId\":\"alice\"},{\"playerId\":\"bob\"}],\"assignedAt\":"
              "\"2026-11-27T11:40:48.123Z\"}}}}",
              ENVELOPE, 2, T0);
    /* other member orders, JSON.stringify(x, null, 2) indentation, extra
     * members (forward compatible): canonical form is the same */
    expect_ok("{\n  \"envelope\": {\n    \"data\": {\n      \"assignment\": {\n        "
              "\"matchId\": \"7d3b5b0e-1f2a-4c3d-8e4f-5a6b7c8d9e0f\",\n        \"connection\": "
              "\"10.0.0.5:7777\",\n        \"players\": [\n          {\n            \"playerId\": "
              "\"alice\"\n          },\n          {\n            \"playerId\": \"bob\"\n          "
              "}\n        ],\n        \"assignedAt\": \"2026-11-27T11:40:48.123Z\"\n      },\n"
              "      \"ticketId\": \"" TID "\",\n      \"version\": 2\n    },\n    \"v\": 1,\n"
              "    \"type\": \"match.assigned\"\n  },\n  \"ticketId\": \"" TID "\",\n"
              "  \"publishedBy\": \"nest-worker-1\"\n}",
              "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"assignment\":" ASSIGNMENT
              ",\"ticketId\":\"" TID "\",\"version\":2}}",
              2, T0);
    /* new Date().toISOString() always has milliseconds; other workers may
     * send whole seconds; escaped solidus and \u escapes are normalised */
    expect_ok(
        "{\"ticketId\":\"" TID "\",\"envelope\":{\"type\":\"match.assigned\",\"v\":1,"
        "\"data\":{\"ticketId\":\"" TID "\",\"version\":7,\"assignment\":{\"matchId\":"
        "\"m\\/1\",\"connection\":\"gs-1.example:7777\",\"players\":[{\"playerId\":"
        "\"\\u00e9\"}],\"assignedAt\":\"2026-11-27T11:40:48Z\"}}}}",
        "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID "\",\"version\":"
        "7,\"assignment\":{\"matchId\":\"m/1\",\"connection\":\"gs-1.example:7777\","
        "\"players\":[{\"playerId\":\"\xc3\xa9\"}],\"assignedAt\":\"2026-11-27T11:40:48Z\"}}}",
        7, T0 - 123);
    /* v written 1.0 by some serializer: accepted from a tree, canonical 1 */
    expect_ok("{\"ticketId\":\"" TID "\",\"envelope\":{\"type\":\"match.assigned\",\"v\":1.0,"
              "\"data\":{\"ticketId\":\"" TID "\",\"version\":2,\"assignment\":" ASSIGNMENT "}}}",
              ENVELOPE, 2, T0);
}

/* Whether the decoded envelope was taken as received (borrowed from the
 * payload) or re-serialized; the text is the canonical one either way. */
static void expect_path(const char *payload, const char *canonical, bool as_received)
{
    struct mw_assigned_owned o;
    enum mw_drop_reason why = MW_DROP__COUNT;
    size_t len = strlen(payload);
    bool inside;

    if (decode(payload, &o, &why) != 0)
        print_error("payload %s\n dropped: %s\n", payload, mw_drop_reason_name(why));
    assert_int_equal(why, MW_DROP_NONE);
    assert_int_equal(o.envelope_len, strlen(canonical));
    assert_memory_equal(o.envelope, canonical, o.envelope_len);
    inside = o.envelope >= payload && o.envelope + o.envelope_len <= payload + len;
    if (inside != as_received)
        print_error("payload %s\n envelope %s, want %s\n", payload,
                    inside ? "as received" : "re-serialized",
                    as_received ? "as received" : "re-serialized");
    assert_true(inside == as_received);
    assert_true(as_received ? o.scratch.data == NULL : o.envelope == o.scratch.data);
    mw_assigned_owned_clear(&o);
    assert_null(o.envelope);
    assert_null(o.scratch.data);
}

#define PAYLOAD_OF(env) "{\"ticketId\":\"" TID "\",\"envelope\":" env "}"
#define ENV_DATA(assignment)                                                                       \
    "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID "\",\"version\":2,"       \
    "\"assignment\":" assignment "}}"
#define ASSIGNMENT_PLAYER(p)                                                                       \
    "{\"matchId\":\"7d3b5b0e-1f2a-4c3d-8e4f-5a6b7c8d9e0f\",\"connection\":\"10.0.0.5:7777\","      \
    "\"players\":[{\"playerId\":\"" p "\"}],\"assignedAt\":\"2026-11-27T11:40:48.123Z\"}"

/* A payload whose envelope is canonical already (ours, JSON.stringify's in
 * the usual case) is forwarded as received, with no copy and no
 * re-serialization; anything spelled otherwise is re-serialized, and the
 * text pushed is the canonical one in both cases (ENV-060..065, CHN-005). */
static void test_canonical_envelope_forwarded_as_received(void **state)
{
    (void)state;
    /* ours, and other members of the payload around it */
    expect_path(PAYLOAD_OF(ENVELOPE), ENVELOPE, true);
    expect_path("{\"publishedBy\":\"w1\",\"envelope\":" ENVELOPE ",\"ticketId\":\"" TID "\"}",
                ENVELOPE, true);
    expect_path("{ \"ticketId\" : \"" TID "\" , \"envelope\":" ENVELOPE " }", ENVELOPE, true);
    /* the escapes the canonical writer makes (JSON.stringify's too) */
    expect_path(PAYLOAD_OF(ENV_DATA(ASSIGNMENT_PLAYER("a\\\"b\\\\c\\n\\t\\u001f\\u0001"))),
                ENV_DATA(ASSIGNMENT_PLAYER("a\\\"b\\\\c\\n\\t\\u001f\\u0001")), true);
    /* raw UTF-8 and the largest integers of 15 digits */
    expect_path(PAYLOAD_OF("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                           "\",\"version\":999999999999999,\"assignment\":" ASSIGNMENT_PLAYER(
                               "\xc3\xa9") ",\"n\":-0,\"m\":-123456789012345}}"),
                "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                "\",\"version\":999999999999999,\"assignment\":" ASSIGNMENT_PLAYER(
                    "\xc3\xa9") ",\"n\":-0,\"m\":-123456789012345}}",
                true);

    /* whitespace inside the envelope */
    expect_path(PAYLOAD_OF("{\"type\":\"match.assigned\", \"v\":1,\"data\":{\"ticketId\":\"" TID
                           "\",\"version\":2,\"assignment\":" ASSIGNMENT "}}"),
                ENVELOPE, false);
    expect_path("{\"ticketId\":\"" TID "\",\"envelope\": " ENVELOPE "}", ENVELOPE, false);
    /* escapes the writer does not make: \/, \u for a printable character,
     * upper-case hex, \u000a for \n */
    expect_path(PAYLOAD_OF(ENV_DATA(ASSIGNMENT_PLAYER("a\\/b"))),
                ENV_DATA(ASSIGNMENT_PLAYER("a/b")), false);
    expect_path(PAYLOAD_OF(ENV_DATA(ASSIGNMENT_PLAYER("\\u0041"))),
                ENV_DATA(ASSIGNMENT_PLAYER("A")), false);
    expect_path(PAYLOAD_OF(ENV_DATA(ASSIGNMENT_PLAYER("\\u001F"))),
                ENV_DATA(ASSIGNMENT_PLAYER("\\u001f")), false);
    expect_path(PAYLOAD_OF(ENV_DATA(ASSIGNMENT_PLAYER("\\u000a"))),
                ENV_DATA(ASSIGNMENT_PLAYER("\\n")), false);
    expect_path(PAYLOAD_OF(ENV_DATA(ASSIGNMENT_PLAYER("\\ud83d\\ude00"))),
                ENV_DATA(ASSIGNMENT_PLAYER("\xf0\x9f\x98\x80")), false);
    /* an escape in a member name */
    expect_path(PAYLOAD_OF("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                           "\",\"version\":2,\"assignment\":" ASSIGNMENT ",\"\\u0078\":1}}"),
                "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                "\",\"version\":2,\"assignment\":" ASSIGNMENT ",\"x\":1}}",
                false);
    /* numbers: a fraction, an exponent, 16 digits (all integral) */
    expect_path(PAYLOAD_OF("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                           "\",\"version\":2.0,\"assignment\":" ASSIGNMENT "}}"),
                ENVELOPE, false);
    expect_path(PAYLOAD_OF("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                           "\",\"version\":2e0,\"assignment\":" ASSIGNMENT "}}"),
                ENVELOPE, false);
    expect_path(PAYLOAD_OF("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                           "\",\"version\":1000000000000000,\"assignment\":" ASSIGNMENT "}}"),
                "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                "\",\"version\":1000000000000000,\"assignment\":" ASSIGNMENT "}}",
                false);
    /* the envelope's members in another order, or one more of them */
    expect_path(PAYLOAD_OF("{\"v\":1,\"type\":\"match.assigned\",\"data\":{\"ticketId\":\"" TID
                           "\",\"version\":2,\"assignment\":" ASSIGNMENT "}}"),
                ENVELOPE, false);
    expect_path(PAYLOAD_OF("{\"type\":\"match.assigned\",\"data\":{\"ticketId\":\"" TID
                           "\",\"version\":2,\"assignment\":" ASSIGNMENT "},\"v\":1}"),
                ENVELOPE, false);
    expect_path(PAYLOAD_OF("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                           "\",\"version\":2,\"assignment\":" ASSIGNMENT "},\"trace\":\"t\"}"),
                ENVELOPE, false);
    expect_path(PAYLOAD_OF("{\"trace\":\"t\",\"type\":\"match.assigned\",\"v\":1,\"data\":{"
                           "\"ticketId\":\"" TID "\",\"version\":2,\"assignment\":" ASSIGNMENT
                           "}}"),
                ENVELOPE, false);
}

static void test_drop_too_large(void **state)
{
    size_t n = MW_CHANNEL_PAYLOAD_MAX;
    const char *p = "{\"ticketId\":\"" TID "\",\"envelope\":" ENVELOPE "}";
    char *big = malloc(n + 2);
    struct mw_assigned_owned o;
    enum mw_drop_reason why;

    (void)state;
    assert_non_null(big);
    /* exactly 65,536 bytes (whitespace padding) is accepted */
    memset(big, ' ', n + 1);
    memcpy(big, p, strlen(p));
    assert_int_equal(mw_channel_payload_decode(big, n, &o, &why), 0);
    assert_int_equal(o.version, 2);
    mw_assigned_owned_clear(&o);
    /* one more byte is dropped before any parsing */
    assert_int_equal(mw_channel_payload_decode(big, n + 1, &o, &why), MW_EINVAL);
    assert_int_equal(why, MW_DROP_TOO_LARGE);
    big[n] = '!'; /* not even JSON: still too_large first */
    assert_int_equal(mw_channel_payload_decode(big, n + 1, &o, &why), MW_EINVAL);
    assert_int_equal(why, MW_DROP_TOO_LARGE);
    free(big);
}

static void deep_payload(char *out, size_t size, int arrays)
{
    size_t n = (size_t)snprintf(out, size,
                                "{\"ticketId\":\"" TID "\",\"envelope\":{\"type\":\"match."
                                "assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID "\","
                                "\"version\":2,\"assignment\":" ASSIGNMENT ",\"x\":");
    assert_true(n + 2 * (size_t)arrays + 4 <= size);
    for (int i = 0; i < arrays; i++)
        out[n++] = '[';
    for (int i = 0; i < arrays; i++)
        out[n++] = ']';
    memcpy(out + n, "}}}", 4);
}

static void test_drop_bad_json(void **state)
{
    (void)state;
    expect_drop("", MW_DROP_BAD_JSON);
    expect_drop("not json", MW_DROP_BAD_JSON);
    expect_drop("{\"ticketId\":\"" TID "\",\"envelope\":" ENVELOPE ",}", MW_DROP_BAD_JSON);
    expect_drop("{\"ticketId\":\"" TID "\",\"ticketId\":\"" TID "\",\"envelope\":" ENVELOPE "}",
                MW_DROP_BAD_JSON);
    expect_drop("{\"ticketId\":\"\xff\",\"envelope\":" ENVELOPE "}", MW_DROP_BAD_JSON);
    expect_drop("{\"ticketId\":\"" TID "\",\"envelope\":" ENVELOPE "} x", MW_DROP_BAD_JSON);
    expect_drop("{\"ticketId\":\"" TID "\",\"envelope\":{\"type\":\"match.assigned\",\"v\":01,"
                "\"data\":{}}}",
                MW_DROP_BAD_JSON);
    expect_drop("{\"ticketId\":\"" TID "\",\"envelope\":" ENVELOPE ",\"x\":1e400}",
                MW_DROP_BAD_JSON);
    {
        /* depth: the envelope may use its 32 levels inside the payload
         * (33 in all: payload, envelope, data, then 30 arrays); one more
         * level is dropped */
        char deep[1024];
        struct mw_assigned_owned o;
        enum mw_drop_reason why;
        deep_payload(deep, sizeof(deep), 30);
        assert_int_equal(decode(deep, &o, &why), 0);
        mw_assigned_owned_clear(&o);
        deep_payload(deep, sizeof(deep), 31);
        expect_drop(deep, MW_DROP_BAD_JSON);
    }
}

static void test_drop_bad_payload(void **state)
{
    char long_id[80];

    (void)state;
    expect_drop("[]", MW_DROP_BAD_PAYLOAD);
    expect_drop("\"" TID "\"", MW_DROP_BAD_PAYLOAD);
    expect_drop("{}", MW_DROP_BAD_PAYLOAD);
    expect_drop("{\"envelope\":" ENVELOPE "}", MW_DROP_BAD_PAYLOAD);
    expect_drop("{\"ticketId\":\"" TID "\"}", MW_DROP_BAD_PAYLOAD);
    expect_drop("{\"ticketId\":42,\"envelope\":" ENVELOPE "}", MW_DROP_BAD_PAYLOAD);
    expect_drop("{\"ticketId\":null,\"envelope\":" ENVELOPE "}", MW_DROP_BAD_PAYLOAD);
    expect_drop("{\"ticketId\":\"\",\"envelope\":" ENVELOPE "}", MW_DROP_BAD_PAYLOAD);
    expect_drop("{\"ticketId\":\"a\\nb\",\"envelope\":" ENVELOPE "}", MW_DROP_BAD_PAYLOAD);
    expect_drop("{\"ticketId\":\"\\u00e9\",\"envelope\":" ENVELOPE "}", MW_DROP_BAD_PAYLOAD);
    expect_drop("{\"TicketId\":\"" TID "\",\"envelope\":" ENVELOPE "}", MW_DROP_BAD_PAYLOAD);
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    {
        char p[2048];
        snprintf(p, sizeof(p), "{\"ticketId\":\"%s\",\"envelope\":" ENVELOPE "}", long_id);
        expect_drop(p, MW_DROP_BAD_PAYLOAD);
    }
    /* the envelope JSON.stringify'd twice (a string, not an object) */
    expect_drop("{\"ticketId\":\"" TID "\",\"envelope\":\"{\\\"type\\\":\\\"match.assigned\\\"}\"}",
                MW_DROP_BAD_PAYLOAD);
    expect_drop("{\"ticketId\":\"" TID "\",\"envelope\":null}", MW_DROP_BAD_PAYLOAD);
    expect_drop("{\"ticketId\":\"" TID "\",\"envelope\":[" ENVELOPE "]}", MW_DROP_BAD_PAYLOAD);
}

static void test_drop_bad_envelope(void **state)
{
    (void)state;
#define P(env) "{\"ticketId\":\"" TID "\",\"envelope\":" env "}"
    expect_drop(P("{}"), MW_DROP_BAD_ENVELOPE);
    expect_drop(P("{\"v\":1,\"data\":{}}"), MW_DROP_BAD_ENVELOPE);
    expect_drop(P("{\"type\":\"match.assigned\",\"data\":{}}"), MW_DROP_BAD_ENVELOPE);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":1}"), MW_DROP_BAD_ENVELOPE);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":\"1\",\"data\":{}}"), MW_DROP_BAD_ENVELOPE);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":0,\"data\":{}}"), MW_DROP_BAD_ENVELOPE);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":1.5,\"data\":{}}"), MW_DROP_BAD_ENVELOPE);
    expect_drop(P("{\"type\":\"Match.Assigned\",\"v\":1,\"data\":{}}"), MW_DROP_BAD_ENVELOPE);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":1,\"data\":[]}"), MW_DROP_BAD_ENVELOPE);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":1,\"id\":\"\",\"data\":{}}"),
                MW_DROP_BAD_ENVELOPE);
}

static void test_drop_not_match_assigned(void **state)
{
    (void)state;
    expect_drop(P("{\"type\":\"ticket.cancelled\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                  "\",\"version\":2}}"),
                MW_DROP_NOT_ASSIGNED);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":2,\"data\":{\"ticketId\":\"" TID
                  "\",\"version\":2,\"assignment\":" ASSIGNMENT "}}"),
                MW_DROP_NOT_ASSIGNED);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":1,\"id\":\"r1\",\"data\":{\"ticketId\":\"" TID
                  "\",\"version\":2,\"assignment\":" ASSIGNMENT "}}"),
                MW_DROP_NOT_ASSIGNED);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                  "\",\"assignment\":" ASSIGNMENT "}}"),
                MW_DROP_NOT_ASSIGNED);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                  "\",\"version\":2}}"),
                MW_DROP_NOT_ASSIGNED);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                  "\",\"version\":2,\"assignment\":{\"matchId\":\"m\",\"connection\":\"h:1\","
                  "\"players\":[],\"assignedAt\":\"2026-11-27T11:40:48.123Z\"}}}"),
                MW_DROP_NOT_ASSIGNED);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                  "\",\"version\":2,\"assignment\":{\"matchId\":\"m\",\"connection\":\"h:1\","
                  "\"players\":[{\"playerId\":\"a\"}],\"assignedAt\":\"1795779648123\"}}}"),
                MW_DROP_NOT_ASSIGNED);
    expect_drop(P("{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                  "\",\"version\":2,\"assignment\":{\"matchId\":\"m\",\"connection\":\"h:1\","
                  "\"players\":[{\"playerId\":\"a\",\"ticketId\":\"x\"}],\"assignedAt\":"
                  "\"2026-11-27T11:40:48.123Z\"}}}"),
                MW_DROP_NOT_ASSIGNED);
}

static void test_drop_ticket_mismatch(void **state)
{
    (void)state;
    expect_drop("{\"ticketId\":\"1a2b3c4d-5e6f-4a0b-8c0d-0e0f10111213\",\"envelope\":" ENVELOPE "}",
                MW_DROP_TICKET_MISMATCH);
    expect_drop("{\"ticketId\":\"0F8E6B8A-7C1D-4A2B-9E3F-112233445566\",\"envelope\":" ENVELOPE "}",
                MW_DROP_TICKET_MISMATCH);
    expect_drop("{\"ticketId\":\"" TID " \",\"envelope\":" ENVELOPE "}", MW_DROP_TICKET_MISMATCH);
#undef P
}

static void test_oom(void **state)
{
    const char *p = "{\"ticketId\":\"" TID "\",\"envelope\":" ENVELOPE "}";
    bool done = false;

    (void)state;
    for (long n = 0; n < 500 && !done; n++) {
        struct mw_assigned_owned o;
        enum mw_drop_reason why = MW_DROP__COUNT;
        int rc;
        mw_alloc_fail_after(n);
        rc = decode(p, &o, &why);
        mw_alloc_fail_reset();
        if (rc == 0) {
            assert_int_equal(o.envelope_len, strlen(ENVELOPE));
            assert_memory_equal(o.envelope, ENVELOPE, o.envelope_len);
            mw_assigned_owned_clear(&o);
            done = true;
        } else {
            /* an allocation failure is never mistaken for a bad payload */
            assert_int_equal(rc, MW_ENOMEM);
            assert_null(o.envelope);
        }
    }
    assert_true(done);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_names),
        cmocka_unit_test(test_encode_exact_and_roundtrip),
        cmocka_unit_test(test_nestjs_payloads),
        cmocka_unit_test(test_canonical_envelope_forwarded_as_received),
        cmocka_unit_test(test_drop_too_large),
        cmocka_unit_test(test_drop_bad_json),
        cmocka_unit_test(test_drop_bad_payload),
        cmocka_unit_test(test_drop_bad_envelope),
        cmocka_unit_test(test_drop_not_match_assigned),
        cmocka_unit_test(test_drop_ticket_mismatch),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
