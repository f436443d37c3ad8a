/* Tests for messages: every client data rule (MSG-020..050), error id echo
 * (MSG-012), type/version dispatch (MSG-014), every encoder's exact bytes,
 * decode(encode(x)) through the envelope codec, match.assigned validation
 * (MSG-060/061), allocation failures, and the language-neutral vectors in
 * spec/vectors/messages/. */
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
#include "envelope.h"
#include "error.h"
#include "json.h"
#include "messages.h"
#include "ticket.h"

#define TID "0f8e6b8a-7c1d-4a2b-9e3f-112233445566"
#define T0  1795779648123LL /* 2026-11-27T11:40:48.123Z */

/* ---- Helpers ---------------------------------------------------------------- */

static int decode(const char *s, struct mw_client_msg *m, struct mw_msg_error *e)
{
    return mw_msg_decode(s, strlen(s), m, e);
}

/* Decodes s expecting failure with code; id is the echo expected (NULL: none). */
static void expect_fail(const char *s, enum mw_code code, const char *id)
{
    struct mw_client_msg m;
    struct mw_msg_error e;
    int rc = decode(s, &m, &e);

    if (rc != MW_EINVAL || e.e.code != code)
        print_error("input: %s\n got rc %d code %s (%s), want %s\n", s, rc, mw_code_name(e.e.code),
                    e.e.message, mw_code_name(code));
    assert_int_equal(rc, MW_EINVAL);
    assert_int_equal(e.e.code, code);
    assert_true(e.e.message[0] != '\0');
    if (id) {
        assert_true(e.has_id);
        assert_string_equal(e.id, id);
    } else {
        assert_false(e.has_id);
    }
    mw_client_msg_clear(&m);
}

/* Wraps data into an enqueue envelope with id "r1". */
static void enqueue_text(char *out, size_t n, const char *data)
{
    int w = snprintf(out, n, "{\"type\":\"enqueue\",\"v\":1,\"id\":\"r1\",\"data\":%s}", data);
    assert_true(w > 0 && (size_t)w < n);
}

static void expect_enqueue_fail(const char *data, enum mw_code code)
{
    char text[4096];

    enqueue_text(text, sizeof(text), data);
    expect_fail(text, code, "r1");
}

static void expect_enqueue_ok(const char *data, struct mw_client_msg *m)
{
    char text[4096];
    struct mw_msg_error e;
    int rc;

    enqueue_text(text, sizeof(text), data);
    rc = decode(text, m, &e);
    if (rc)
        print_error("input: %s\n got %d %s (%s)\n", text, rc, mw_code_name(e.e.code), e.e.message);
    assert_int_equal(rc, 0);
    assert_int_equal(m->type, MW_MSG_ENQUEUE);
    assert_true(m->has_id);
    assert_string_equal(m->id, "r1");
    assert_true(m->enqueue.watched);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void sample_ticket(struct mw_ticket *t)
{
    memset(t, 0, sizeof(*t));
    memcpy(t->id, TID, sizeof(TID));
    snprintf(t->queue, sizeof(t->queue), "ranked-1v1");
    snprintf(t->player_id, sizeof(t->player_id), "alice");
    t->state = MW_TICKET_QUEUED;
    t->version = 1;
    t->created_ms = T0;
    t->expires_ms = T0 + 600000;
}

static void sample_match(struct mw_match *m)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->match_id, sizeof(m->match_id), "7d3b5b0e-1f2a-4c3d-8e4f-5a6b7c8d9e0f");
    snprintf(m->connection, sizeof(m->connection), "10.0.0.5:7777");
    m->assigned_ms = T0;
    m->n = 2;
    snprintf(m->ticket_ids[0], sizeof(m->ticket_ids[0]), TID);
    snprintf(m->ticket_ids[1], sizeof(m->ticket_ids[1]), "1a2b3c4d-5e6f-4a0b-8c0d-0e0f10111213");
    snprintf(m->player_ids[0], sizeof(m->player_ids[0]), "alice");
    snprintf(m->player_ids[1], sizeof(m->player_ids[1]), "bob \"the\" builder");
    m->versions[0] = m->versions[1] = 2;
}

/* ---- Dispatch, ids (MSG-010..015) -------------------------------------------- */

static void test_decode_each_type(void **state)
{
    struct mw_client_msg m;
    struct mw_msg_error e;

    (void)state;
    assert_int_equal(decode("{\"type\":\"ping\",\"v\":1,\"data\":{}}", &m, &e), 0);
    assert_int_equal(m.type, MW_MSG_PING);
    assert_false(m.has_id);
    assert_int_equal(e.e.code, MW_CODE_NONE);

    assert_int_equal(
        decode("{\"type\":\"ping\",\"v\":1,\"id\":\"p-1\",\"data\":{\"x\":[1,{}]}}", &m, &e), 0);
    assert_int_equal(m.type, MW_MSG_PING);
    assert_true(m.has_id);
    assert_string_equal(m.id, "p-1");

    assert_int_equal(
        decode("{\"type\":\"cancel\",\"v\":1,\"id\":\"c\",\"data\":{\"ticketId\":\"" TID "\"}}", &m,
               &e),
        0);
    assert_int_equal(m.type, MW_MSG_CANCEL);
    assert_string_equal(m.ticket_id, TID);

    assert_int_equal(decode("{\"data\":{\"ticketId\":\"" TID
                            "\",\"extra\":true},\"v\":1,\"type\":\"watch\"}",
                            &m, &e),
                     0);
    assert_int_equal(m.type, MW_MSG_WATCH);
    assert_string_equal(m.ticket_id, TID);
    assert_false(m.has_id);

    assert_int_equal(decode("{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"q\",\"playerId\":"
                            "\"p\"}}",
                            &m, &e),
                     0);
    assert_int_equal(m.type, MW_MSG_ENQUEUE);
    assert_string_equal(m.enqueue.queue, "q");
    assert_string_equal(m.enqueue.player_id, "p");
    assert_string_equal(m.enqueue.region, "");
    assert_false(m.enqueue.has_idem_key);
    assert_null(m.enqueue.attributes_json);
    assert_true(m.enqueue.watched);
    mw_client_msg_clear(&m);
    mw_client_msg_clear(NULL);
}

static void test_unknown_type_and_version(void **state)
{
    (void)state;
    /* MSG-014: not a client type, server types included */
    expect_fail("{\"type\":\"subscribe\",\"v\":1,\"id\":\"a\",\"data\":{}}", MW_CODE_UNKNOWN_TYPE,
                "a");
    expect_fail("{\"type\":\"enqueued\",\"v\":1,\"id\":\"a\",\"data\":{}}", MW_CODE_UNKNOWN_TYPE,
                "a");
    expect_fail("{\"type\":\"match.assigned\",\"v\":1,\"data\":{}}", MW_CODE_UNKNOWN_TYPE, NULL);
    expect_fail("{\"type\":\"pong\",\"v\":1,\"data\":{}}", MW_CODE_UNKNOWN_TYPE, NULL);
    expect_fail("{\"type\":\"ping.x\",\"v\":1,\"data\":{}}", MW_CODE_UNKNOWN_TYPE, NULL);
    /* unknown type is reported even with an unsupported v */
    expect_fail("{\"type\":\"nope\",\"v\":7,\"data\":{}}", MW_CODE_UNKNOWN_TYPE, NULL);
    /* known type, other v: version checked before data */
    expect_fail("{\"type\":\"ping\",\"v\":2,\"id\":\"z\",\"data\":{}}", MW_CODE_UNSUPPORTED_VERSION,
                "z");
    expect_fail("{\"type\":\"enqueue\",\"v\":2,\"data\":{\"queue\":1}}",
                MW_CODE_UNSUPPORTED_VERSION, NULL);
    expect_fail("{\"type\":\"cancel\",\"v\":99,\"data\":{}}", MW_CODE_UNSUPPORTED_VERSION, NULL);
    expect_fail("{\"type\":\"watch\",\"v\":2147483647,\"data\":{}}", MW_CODE_UNSUPPORTED_VERSION,
                NULL);
}

static void test_error_id_echo(void **state)
{
    (void)state;
    /* MSG-012: strict I-JSON object with a valid id: echo it, whatever else */
    expect_fail("{\"type\":\"ping\",\"v\":1,\"id\":\"keep\"}", MW_CODE_BAD_ENVELOPE, "keep");
    expect_fail("{\"id\":\"keep\",\"type\":\"ping\",\"v\":\"1\",\"data\":{}}", MW_CODE_BAD_ENVELOPE,
                "keep");
    expect_fail("{\"id\":\"keep\",\"type\":\"Ping\",\"v\":1,\"data\":{}}", MW_CODE_BAD_ENVELOPE,
                "keep");
    expect_fail("{\"id\":\"keep\",\"v\":1,\"data\":{}}", MW_CODE_BAD_ENVELOPE, "keep");
    expect_fail("{\"id\":\"keep\",\"type\":\"ping\",\"v\":1,\"data\":[]}", MW_CODE_BAD_ENVELOPE,
                "keep");
    expect_fail("{\"id\":\"k\\u0065ep\",\"type\":\"ping\",\"v\":1,\"data\":null}",
                MW_CODE_BAD_ENVELOPE, "keep");
    /* id itself invalid: no echo */
    expect_fail("{\"id\":\"\",\"type\":\"ping\",\"v\":1,\"data\":{}}", MW_CODE_BAD_ENVELOPE, NULL);
    expect_fail("{\"id\":5,\"type\":\"ping\",\"v\":1,\"data\":{}}", MW_CODE_BAD_ENVELOPE, NULL);
    expect_fail("{\"id\":\"tab\\there\",\"type\":\"ping\",\"v\":1,\"data\":{}}",
                MW_CODE_BAD_ENVELOPE, NULL);
    expect_fail("{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123"
                "4\",\"type\":\"ping\",\"v\":1,\"data\":{}}",
                MW_CODE_BAD_ENVELOPE, NULL);
    /* not strict I-JSON: no echo even when an id is visible */
    expect_fail("{\"id\":\"keep\",\"type\":\"ping\",\"v\":1,\"data\":{},}", MW_CODE_BAD_JSON, NULL);
    expect_fail("{\"id\":\"keep\",\"id\":\"keep\",\"type\":\"ping\",\"v\":1,\"data\":{}}",
                MW_CODE_BAD_JSON, NULL);
    expect_fail("{\"id\":\"keep\",\"type\":\"ping\",\"v\":01,\"data\":{}}", MW_CODE_BAD_JSON, NULL);
    expect_fail("[\"keep\"]", MW_CODE_BAD_ENVELOPE, NULL);
    expect_fail("", MW_CODE_BAD_JSON, NULL);
    {
        /* 33 levels: too_deep, no echo */
        char deep[256];
        size_t n = 0;
        n += (size_t)snprintf(deep, sizeof(deep),
                              "{\"id\":\"keep\",\"type\":\"ping\",\"v\":1,"
                              "\"data\":{\"a\":");
        for (int i = 0; i < 31; i++)
            deep[n++] = '[';
        for (int i = 0; i < 31; i++)
            deep[n++] = ']';
        memcpy(deep + n, "}}", 3);
        expect_fail(deep, MW_CODE_TOO_DEEP, NULL);
    }
    {
        /* over 65,536 bytes: too_large */
        size_t n = 70000;
        char *big = repeat(' ', n);
        struct mw_client_msg m;
        struct mw_msg_error e;
        memcpy(big, "{\"id\":\"x\"", 9);
        big[n - 1] = '}';
        assert_int_equal(mw_msg_decode(big, n, &m, &e), MW_EINVAL);
        assert_int_equal(e.e.code, MW_CODE_TOO_LARGE);
        assert_false(e.has_id);
        free(big);
    }
}

/* ---- enqueue (MSG-020..024) ---------------------------------------------------- */

static void test_enqueue_queue(void **state)
{
    struct mw_client_msg m;
    char data[512];
    char *q64 = repeat('a', 64), *q65 = repeat('a', 65);

    (void)state;
    expect_enqueue_ok("{\"queue\":\"abc-xyz_09\",\"playerId\":\"p\"}", &m);
    assert_string_equal(m.enqueue.queue, "abc-xyz_09");
    mw_client_msg_clear(&m);
    snprintf(data, sizeof(data), "{\"queue\":\"%s\",\"playerId\":\"p\"}", q64);
    expect_enqueue_ok(data, &m);
    assert_string_equal(m.enqueue.queue, q64);
    mw_client_msg_clear(&m);
    snprintf(data, sizeof(data), "{\"queue\":\"%s\",\"playerId\":\"p\"}", q65);
    expect_enqueue_fail(data, MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"\",\"playerId\":\"p\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"Ranked\",\"playerId\":\"p\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"a b\",\"playerId\":\"p\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"a.b\",\"playerId\":\"p\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"caf\\u00e9\",\"playerId\":\"p\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":7,\"playerId\":\"p\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":null,\"playerId\":\"p\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":[\"q\"],\"playerId\":\"p\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"playerId\":\"p\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"Queue\":\"q\",\"playerId\":\"p\"}", MW_CODE_BAD_MESSAGE);
    free(q64);
    free(q65);
}

static void test_enqueue_player(void **state)
{
    struct mw_client_msg m;
    char data[1024];
    char *p128 = repeat('x', 128), *p129 = repeat('x', 129);

    (void)state;
    snprintf(data, sizeof(data), "{\"queue\":\"q\",\"playerId\":\"%s\"}", p128);
    expect_enqueue_ok(data, &m);
    assert_string_equal(m.enqueue.player_id, p128);
    mw_client_msg_clear(&m);
    snprintf(data, sizeof(data), "{\"queue\":\"q\",\"playerId\":\"%s\"}", p129);
    expect_enqueue_fail(data, MW_CODE_BAD_MESSAGE);
    /* bytes, not characters: 64 x U+00E9 = 128 bytes ok, 65 = 130 bytes not */
    {
        size_t n = (size_t)snprintf(data, sizeof(data), "{\"queue\":\"q\",\"playerId\":\"");
        for (int i = 0; i < 64; i++) {
            data[n++] = (char)0xc3;
            data[n++] = (char)0xa9;
        }
        memcpy(data + n, "\"}", 3);
        expect_enqueue_ok(data, &m);
        assert_int_equal(strlen(m.enqueue.player_id), 128);
        mw_client_msg_clear(&m);
        data[n++] = (char)0xc3;
        data[n++] = (char)0xa9;
        memcpy(data + n, "\"}", 3);
        expect_enqueue_fail(data, MW_CODE_BAD_MESSAGE);
    }
    /* escapes are decoded before measuring */
    expect_enqueue_ok("{\"queue\":\"q\",\"playerId\":\"\\u00e9\\\"\"}", &m);
    assert_string_equal(m.enqueue.player_id, "\xc3\xa9\"");
    mw_client_msg_clear(&m);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":42}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":{}}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":true}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\"}", MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{}", MW_CODE_BAD_MESSAGE);
    free(p128);
    free(p129);
}

static void test_enqueue_attributes(void **state)
{
    struct mw_client_msg m;
    char data[4096];
    size_t n;
    char *s256 = repeat('v', 256), *s257 = repeat('v', 257), *r64 = repeat('r', 64),
         *r65 = repeat('r', 65);

    (void)state;
    /* canonical re-serialization, region extracted (MSG-022) */
    expect_enqueue_ok("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\": { \"region\" : "
                      "\"eu\", \"mmr\" : 1.50e3, \"n\":-0, \"s\":\"\\u0041\\/\"}}",
                      &m);
    assert_string_equal(m.enqueue.region, "eu");
    assert_non_null(m.enqueue.attributes_json);
    assert_string_equal(m.enqueue.attributes_json,
                        "{\"region\":\"eu\",\"mmr\":1500,\"n\":-0,\"s\":\"A/\"}");
    mw_client_msg_clear(&m);
    assert_null(m.enqueue.attributes_json);

    expect_enqueue_ok("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{}}", &m);
    assert_string_equal(m.enqueue.attributes_json, "{}");
    assert_string_equal(m.enqueue.region, "");
    mw_client_msg_clear(&m);

    /* 16 members ok, 17 not */
    n = (size_t)snprintf(data, sizeof(data),
                         "{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{");
    for (int i = 0; i < 16; i++)
        n += (size_t)snprintf(data + n, sizeof(data) - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    memcpy(data + n, "}}", 3);
    expect_enqueue_ok(data, &m);
    mw_client_msg_clear(&m);
    n += (size_t)snprintf(data + n, sizeof(data) - n, ",\"k16\":16}}");
    expect_enqueue_fail(data, MW_CODE_BAD_MESSAGE);

    /* string values: at most 256 bytes */
    snprintf(data, sizeof(data),
             "{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"s\":\"%s\"}}", s256);
    expect_enqueue_ok(data, &m);
    mw_client_msg_clear(&m);
    snprintf(data, sizeof(data),
             "{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"s\":\"%s\"}}", s257);
    expect_enqueue_fail(data, MW_CODE_BAD_MESSAGE);

    /* other value types */
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"b\":true}}",
                        MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"n\":null}}",
                        MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"a\":[]}}",
                        MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"o\":{}}}",
                        MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":[]}",
                        MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":null}",
                        MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":\"eu\"}",
                        MW_CODE_BAD_MESSAGE);

    /* region: string of 1..64 bytes */
    snprintf(data, sizeof(data),
             "{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"region\":\"%s\"}}", r64);
    expect_enqueue_ok(data, &m);
    assert_string_equal(m.enqueue.region, r64);
    mw_client_msg_clear(&m);
    snprintf(data, sizeof(data),
             "{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"region\":\"%s\"}}", r65);
    expect_enqueue_fail(data, MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"region\":\"\"}}",
                        MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"region\":3}}",
                        MW_CODE_BAD_MESSAGE);
    /* only the exact name is the region */
    expect_enqueue_ok("{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"Region\":\"eu\"}}",
                      &m);
    assert_string_equal(m.enqueue.region, "");
    mw_client_msg_clear(&m);
    free(s256);
    free(s257);
    free(r64);
    free(r65);
}

static void test_enqueue_idempotency_key(void **state)
{
    struct mw_client_msg m;
    char data[512];
    char *k64 = repeat('k', 64), *k65 = repeat('k', 65);

    (void)state;
    snprintf(data, sizeof(data), "{\"queue\":\"q\",\"playerId\":\"p\",\"idempotencyKey\":\"%s\"}",
             k64);
    expect_enqueue_ok(data, &m);
    assert_true(m.enqueue.has_idem_key);
    assert_string_equal(m.enqueue.idem_key, k64);
    mw_client_msg_clear(&m);
    snprintf(data, sizeof(data), "{\"queue\":\"q\",\"playerId\":\"p\",\"idempotencyKey\":\"%s\"}",
             k65);
    expect_enqueue_fail(data, MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"idempotencyKey\":\"\"}",
                        MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"idempotencyKey\":12}",
                        MW_CODE_BAD_MESSAGE);
    expect_enqueue_fail("{\"queue\":\"q\",\"playerId\":\"p\",\"idempotencyKey\":null}",
                        MW_CODE_BAD_MESSAGE);
    free(k64);
    free(k65);
}

static void test_enqueue_unknown_members_ignored(void **state)
{
    struct mw_client_msg m;

    (void)state;
    /* MSG-015 */
    expect_enqueue_ok("{\"future\":{\"deep\":[1,2,3]},\"queue\":\"q\",\"playerId\":\"p\","
                      "\"ticketId\":5,\"attributes\":{\"region\":\"na\"}}",
                      &m);
    assert_string_equal(m.enqueue.queue, "q");
    assert_string_equal(m.enqueue.region, "na");
    mw_client_msg_clear(&m);
}

static void test_enqueue_data_direct(void **state)
{
    struct mw_enqueue_req req;
    struct mw_parse_error pe;
    cJSON *obj = NULL;
    const char *body = "{\"queue\":\"q\",\"playerId\":\"p\",\"attributes\":{\"region\":\"eu\"}}";

    (void)state;
    /* The HTTP POST body path: the same rules without an envelope. */
    assert_int_equal(mw_json_parse(body, strlen(body), 0, &obj, NULL), 0);
    assert_int_equal(mw_msg_decode_enqueue_data(obj, &req, &pe), 0);
    assert_string_equal(req.region, "eu");
    assert_false(req.watched);
    assert_string_equal(req.attributes_json, "{\"region\":\"eu\"}");
    mw_free(req.attributes_json);
    cJSON_Delete(obj);

    assert_int_equal(mw_json_parse("[1]", 3, 0, &obj, NULL), 0);
    assert_int_equal(mw_msg_decode_enqueue_data(obj, &req, &pe), MW_EINVAL);
    assert_int_equal(pe.code, MW_CODE_BAD_MESSAGE);
    assert_null(req.attributes_json);
    cJSON_Delete(obj);
    assert_int_equal(mw_msg_decode_enqueue_data(NULL, &req, NULL), MW_EINVAL);
}

/* ---- cancel / watch (MSG-031, MSG-042) ------------------------------------------- */

static void test_ticket_refs(void **state)
{
    static const char *const types[] = {"cancel", "watch"};
    char text[512];

    (void)state;
    for (int i = 0; i < 2; i++) {
#define REF(data)                                                                                  \
    snprintf(text, sizeof(text), "{\"type\":\"%s\",\"v\":1,\"id\":\"t\",\"data\":%s}", types[i],   \
             data)
        REF("{}");
        expect_fail(text, MW_CODE_BAD_MESSAGE, "t");
        REF("{\"ticketId\":null}");
        expect_fail(text, MW_CODE_BAD_MESSAGE, "t");
        REF("{\"ticketId\":12}");
        expect_fail(text, MW_CODE_BAD_MESSAGE, "t");
        REF("{\"ticketId\":[\"" TID "\"]}");
        expect_fail(text, MW_CODE_BAD_MESSAGE, "t");
        /* syntactically invalid ids name no ticket: not_found */
        REF("{\"ticketId\":\"\"}");
        expect_fail(text, MW_CODE_NOT_FOUND, "t");
        REF("{\"ticketId\":\"nope\"}");
        expect_fail(text, MW_CODE_NOT_FOUND, "t");
        REF("{\"ticketId\":\"0F8E6B8A-7C1D-4A2B-9E3F-112233445566\"}"); /* uppercase */
        expect_fail(text, MW_CODE_NOT_FOUND, "t");
        REF("{\"ticketId\":\"0f8e6b8a-7c1d-1a2b-9e3f-112233445566\"}"); /* v1 */
        expect_fail(text, MW_CODE_NOT_FOUND, "t");
        REF("{\"ticketId\":\"0f8e6b8a-7c1d-4a2b-7e3f-112233445566\"}"); /* variant 0xxx */
        expect_fail(text, MW_CODE_NOT_FOUND, "t");
        REF("{\"ticketId\":\"0f8e6b8a7c1d4a2b9e3f112233445566\"}");
        expect_fail(text, MW_CODE_NOT_FOUND, "t");
        REF("{\"ticketId\":\"" TID "0\"}");
        expect_fail(text, MW_CODE_NOT_FOUND, "t");
#undef REF
    }
}

/* ---- Encoders: exact bytes (MSG-025, 030, 040, 050, 060..064) --------------------- */

static void expect_buf(struct mw_buf *b, const char *want)
{
    assert_string_equal(b->data, want);
    assert_int_equal(b->len, strlen(want));
    mw_buf_reset(b);
}

static void test_encoders_exact(void **state)
{
    struct mw_buf b;
    struct mw_ticket t;
    struct mw_match m;

    (void)state;
    mw_buf_init(&b, 0);
    sample_ticket(&t);

    assert_int_equal(mw_msg_encode_enqueued(&b, "r1", &t), 0);
    expect_buf(&b, "{\"type\":\"enqueued\",\"v\":1,\"id\":\"r1\",\"data\":{\"ticketId\":\"" TID
                   "\",\"queue\":\"ranked-1v1\",\"state\":\"queued\",\"version\":1,"
                   "\"expiresAt\":\"2026-11-27T11:50:48.123Z\"}}");
    assert_int_equal(mw_msg_encode_enqueued(&b, NULL, &t), 0);
    expect_buf(&b, "{\"type\":\"enqueued\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                   "\",\"queue\":\"ranked-1v1\",\"state\":\"queued\",\"version\":1,"
                   "\"expiresAt\":\"2026-11-27T11:50:48.123Z\"}}");

    t.state = MW_TICKET_CANCELLED;
    t.version = 2;
    assert_int_equal(mw_msg_encode_cancelled(&b, "c\"q", &t), 0);
    expect_buf(&b, "{\"type\":\"cancelled\",\"v\":1,\"id\":\"c\\\"q\",\"data\":{\"ticketId\":\"" TID
                   "\",\"version\":2}}");

    t.state = MW_TICKET_ASSIGNED;
    assert_int_equal(mw_msg_encode_watching(&b, "w", &t), 0);
    expect_buf(&b, "{\"type\":\"watching\",\"v\":1,\"id\":\"w\",\"data\":{\"ticketId\":\"" TID
                   "\",\"state\":\"assigned\",\"version\":2}}");

    assert_int_equal(mw_msg_encode_pong(&b, NULL), 0);
    expect_buf(&b, "{\"type\":\"pong\",\"v\":1,\"data\":{}}");
    assert_int_equal(mw_msg_encode_pong(&b, "p"), 0);
    expect_buf(&b, "{\"type\":\"pong\",\"v\":1,\"id\":\"p\",\"data\":{}}");

    assert_int_equal(mw_msg_encode_error(&b, "e", MW_CODE_BAD_JSON, "bad \"json\"\n", 17), 0);
    expect_buf(&b, "{\"type\":\"error\",\"v\":1,\"id\":\"e\",\"data\":{\"code\":\"bad_json\","
                   "\"message\":\"bad \\\"json\\\"\\n\",\"retryable\":false,\"offset\":17}}");
    assert_int_equal(mw_msg_encode_error(&b, NULL, MW_CODE_RATE_LIMITED, "slow down", SIZE_MAX), 0);
    expect_buf(&b, "{\"type\":\"error\",\"v\":1,\"data\":{\"code\":\"rate_limited\","
                   "\"message\":\"slow down\",\"retryable\":true}}");
    assert_int_equal(mw_msg_encode_error(&b, NULL, MW_CODE_NOT_FOUND, NULL, 0), 0);
    expect_buf(&b, "{\"type\":\"error\",\"v\":1,\"data\":{\"code\":\"not_found\","
                   "\"message\":\"not_found\",\"retryable\":false,\"offset\":0}}");

    sample_match(&m);
    assert_int_equal(mw_msg_encode_match_assigned(&b, &m, 0, 2), 0);
    expect_buf(&b, "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                   "\",\"version\":2,\"assignment\":{\"matchId\":\"7d3b5b0e-1f2a-4c3d-8e4f-"
                   "5a6b7c8d9e0f\",\"connection\":\"10.0.0.5:7777\",\"players\":[{\"playerId\":"
                   "\"alice\"},{\"playerId\":\"bob \\\"the\\\" builder\"}],\"assignedAt\":"
                   "\"2026-11-27T11:40:48.123Z\"}}}");
    assert_int_equal(mw_msg_encode_match_assigned(&b, &m, 1, 5), 0);
    expect_buf(&b, "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"1a2b3c4d-5e6f-"
                   "4a0b-8c0d-0e0f10111213\",\"version\":5,\"assignment\":{\"matchId\":\"7d3b5b0e-"
                   "1f2a-4c3d-8e4f-5a6b7c8d9e0f\",\"connection\":\"10.0.0.5:7777\",\"players\":[{"
                   "\"playerId\":\"alice\"},{\"playerId\":\"bob \\\"the\\\" builder\"}],"
                   "\"assignedAt\":\"2026-11-27T11:40:48.123Z\"}}}");
    assert_int_equal(mw_msg_encode_match_assigned(&b, &m, 2, 2), MW_EINVAL);
    assert_int_equal(b.len, 0);

    t.state = MW_TICKET_EXPIRED;
    t.version = 2;
    assert_int_equal(mw_msg_encode_ticket_ended(&b, &t), 0);
    expect_buf(&b, "{\"type\":\"ticket.expired\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                   "\",\"version\":2}}");
    t.state = MW_TICKET_CANCELLED;
    t.version = 3;
    assert_int_equal(mw_msg_encode_ticket_ended(&b, &t), 0);
    expect_buf(&b, "{\"type\":\"ticket.cancelled\",\"v\":1,\"data\":{\"ticketId\":\"" TID
                   "\",\"version\":3}}");
    t.state = MW_TICKET_QUEUED;
    assert_int_equal(mw_msg_encode_ticket_ended(&b, &t), MW_EINVAL);
    t.state = MW_TICKET_ASSIGNED;
    assert_int_equal(mw_msg_encode_ticket_ended(&b, &t), MW_EINVAL);
    assert_int_equal(b.len, 0);
    mw_buf_release(&b);
}

static void test_ticket_resource(void **state)
{
    struct mw_buf b, env;
    struct mw_ticket t;
    struct mw_match m;

    (void)state;
    mw_buf_init(&b, 0);
    mw_buf_init(&env, 0);
    sample_ticket(&t);
    assert_int_equal(mw_msg_encode_ticket_resource(&b, &t), 0);
    expect_buf(&b, "{\"ticketId\":\"" TID "\",\"queue\":\"ranked-1v1\",\"playerId\":\"alice\","
                   "\"state\":\"queued\",\"version\":1,\"createdAt\":\"2026-11-27T11:40:48.123Z\","
                   "\"expiresAt\":\"2026-11-27T11:50:48.123Z\"}");

    /* assigned: the assignment object of the stored envelope */
    sample_match(&m);
    m.assigned_ms = T0 + 5000;
    assert_int_equal(mw_msg_encode_match_assigned(&env, &m, 0, 2), 0);
    t.state = MW_TICKET_ASSIGNED;
    t.version = 2;
    t.assigned_envelope = env.data;
    t.assigned_envelope_len = env.len;
    assert_int_equal(mw_msg_encode_ticket_resource(&b, &t), 0);
    expect_buf(&b,
               "{\"ticketId\":\"" TID "\",\"queue\":\"ranked-1v1\",\"playerId\":\"alice\","
               "\"state\":\"assigned\",\"version\":2,\"createdAt\":\"2026-11-27T11:40:48.123Z\","
               "\"expiresAt\":\"2026-11-27T11:50:48.123Z\",\"assignment\":{\"matchId\":"
               "\"7d3b5b0e-1f2a-4c3d-8e4f-5a6b7c8d9e0f\",\"connection\":\"10.0.0.5:7777\","
               "\"players\":[{\"playerId\":\"alice\"},{\"playerId\":\"bob \\\"the\\\" "
               "builder\"}],\"assignedAt\":\"2026-11-27T11:40:53.123Z\"}}");

    /* an assigned ticket without (or with a broken) stored envelope is a fault */
    t.assigned_envelope = NULL;
    assert_int_equal(mw_msg_encode_ticket_resource(&b, &t), MW_EINVAL);
    assert_int_equal(b.len, 0);
    t.assigned_envelope = (char *)"{\"type\":\"match.assigned\"}";
    t.assigned_envelope_len = strlen(t.assigned_envelope);
    assert_int_equal(mw_msg_encode_ticket_resource(&b, &t), MW_EINVAL);
    assert_int_equal(b.len, 0);

    /* other states never show an assignment */
    t.state = MW_TICKET_CANCELLED;
    t.version = 2;
    assert_int_equal(mw_msg_encode_ticket_resource(&b, &t), 0);
    assert_null(strstr(b.data, "assignment"));
    mw_buf_release(&b);
    mw_buf_release(&env);
}

static void test_encoder_bounds(void **state)
{
    struct mw_buf b;
    struct mw_ticket t;
    struct mw_match m;

    (void)state;
    sample_ticket(&t);
    sample_match(&m);
    /* a buffer too small: MW_ELIMIT and the buffer keeps what it had */
    mw_buf_init(&b, 64);
    assert_int_equal(mw_buf_puts(&b, "keep"), 0);
    assert_int_equal(mw_msg_encode_enqueued(&b, "r", &t), MW_ELIMIT);
    assert_string_equal(b.data, "keep");
    assert_int_equal(mw_msg_encode_match_assigned(&b, &m, 0, 2), MW_ELIMIT);
    assert_string_equal(b.data, "keep");
    assert_int_equal(mw_msg_encode_pong(&b, "r"), 0);
    assert_string_equal(b.data, "keep{\"type\":\"pong\",\"v\":1,\"id\":\"r\",\"data\":{}}");
    mw_buf_release(&b);
}

/* ---- decode(encode(x)) through the envelope codec ---------------------------------- */

static void parse_env(const struct mw_buf *b, struct mw_envelope *env)
{
    struct mw_parse_error pe;
    int rc = mw_envelope_parse(b->data, b->len, env, &pe);
    if (rc)
        print_error("%s: %s\n", b->data, pe.message);
    assert_int_equal(rc, 0);
    assert_int_equal(env->v, 1);
}

static const char *dstr(const struct mw_envelope *env, const char *key)
{
    const cJSON *v = mw_json_get(env->data, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double dnum(const struct mw_envelope *env, const char *key)
{
    const cJSON *v = mw_json_get(env->data, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void test_roundtrip(void **state)
{
    struct mw_buf b;
    struct mw_envelope env;
    struct mw_ticket t;
    struct mw_match m;
    const char *tid;
    uint64_t version;
    int64_t at;

    (void)state;
    mw_buf_init(&b, 0);
    sample_ticket(&t);

    assert_int_equal(mw_msg_encode_enqueued(&b, "abc", &t), 0);
    parse_env(&b, &env);
    assert_string_equal(env.type, "enqueued");
    assert_true(env.has_id);
    assert_string_equal(env.id, "abc");
    assert_string_equal(dstr(&env, "ticketId"), TID);
    assert_string_equal(dstr(&env, "queue"), "ranked-1v1");
    assert_string_equal(dstr(&env, "state"), "queued");
    assert_true(dnum(&env, "version") == 1);
    assert_string_equal(dstr(&env, "expiresAt"), "2026-11-27T11:50:48.123Z");
    mw_envelope_clear(&env);
    mw_buf_reset(&b);

    assert_int_equal(mw_msg_encode_error(&b, "x", MW_CODE_INTERNAL, "\xc3\xa9t\xc3\xa9", 3), 0);
    parse_env(&b, &env);
    assert_string_equal(env.type, "error");
    assert_string_equal(dstr(&env, "code"), "internal");
    assert_string_equal(dstr(&env, "message"), "\xc3\xa9t\xc3\xa9");
    assert_true(cJSON_IsTrue(mw_json_get(env.data, "retryable")));
    assert_true(dnum(&env, "offset") == 3);
    {
        /* canonical: serializing the parsed envelope gives the same bytes */
        struct mw_buf c;
        mw_buf_init(&c, 0);
        assert_int_equal(mw_envelope_serialize(&env, &c), 0);
        assert_string_equal(c.data, b.data);
        mw_buf_release(&c);
    }
    mw_envelope_clear(&env);
    mw_buf_reset(&b);

    sample_match(&m);
    for (size_t i = 0; i < m.n; i++) {
        assert_int_equal(mw_msg_encode_match_assigned(&b, &m, i, 2 + i), 0);
        parse_env(&b, &env);
        assert_false(env.has_id); /* MSG-010: pushes carry no id */
        assert_int_equal(mw_msg_check_match_assigned(&env, &tid, &version, &at, NULL), 0);
        assert_string_equal(tid, m.ticket_ids[i]);
        assert_int_equal(version, 2 + i);
        assert_int_equal(at, T0);
        /* MSG-061: the other ticket's id appears nowhere */
        assert_null(strstr(b.data, m.ticket_ids[1 - i]));
        mw_envelope_clear(&env);
        mw_buf_reset(&b);
    }

    /* 16 players, the maximum */
    m.n = MW_MATCH_SIZE_MAX;
    for (size_t i = 0; i < m.n; i++) {
        snprintf(m.player_ids[i], sizeof(m.player_ids[i]), "player-%zu", i);
        snprintf(m.ticket_ids[i], sizeof(m.ticket_ids[i]), TID);
    }
    assert_int_equal(mw_msg_encode_match_assigned(&b, &m, 15, 2), 0);
    parse_env(&b, &env);
    assert_int_equal(mw_msg_check_match_assigned(&env, NULL, NULL, NULL, NULL), 0);
    assert_int_equal(
        cJSON_GetArraySize(mw_json_get(mw_json_get(env.data, "assignment"), "players")), 16);
    mw_envelope_clear(&env);
    mw_buf_release(&b);
}

/* ---- match.assigned validation (MSG-060/061) -------------------------------------- */

#define MA_HEAD "{\"type\":\"match.assigned\",\"v\":1,\"data\":"
#define MA_ASSIGNMENT_OK                                                                           \
    "{\"matchId\":\"m1\",\"connection\":\"gs.example.com:7777\",\"players\":[{\"playerId\":"       \
    "\"a\"},{\"playerId\":\"b\"}],\"assignedAt\":\"2026-11-27T11:40:48.123Z\"}"

static int check_ma(const char *text, int64_t *at, struct mw_parse_error *pe)
{
    struct mw_envelope env;
    struct mw_parse_error scratch;
    int rc = mw_envelope_parse(text, strlen(text), &env, &scratch);

    if (rc) {
        print_error("%s: %s\n", text, scratch.message);
        fail();
    }
    rc = mw_msg_check_match_assigned(&env, NULL, NULL, at, pe);
    mw_envelope_clear(&env);
    return rc;
}

static void ma_with_assignment(char *out, size_t n, const char *assignment)
{
    snprintf(out, n, MA_HEAD "{\"ticketId\":\"" TID "\",\"version\":2,\"assignment\":%s}}",
             assignment);
}

static void ma_with_at(char *out, size_t n, const char *at)
{
    snprintf(out, n,
             MA_HEAD "{\"ticketId\":\"" TID "\",\"version\":2,\"assignment\":{\"matchId\":\"m\","
                     "\"connection\":\"h:1\",\"players\":[{\"playerId\":\"a\"}],\"assignedAt\":"
                     "\"%s\"}}}",
             at);
}

static void test_check_match_assigned(void **state)
{
    struct mw_parse_error pe;
    char text[2048];
    int64_t at = 0;

    (void)state;
    ma_with_assignment(text, sizeof(text), MA_ASSIGNMENT_OK);
    assert_int_equal(check_ma(text, &at, &pe), 0);
    assert_int_equal(at, T0);

    /* envelope level */
    assert_int_equal(check_ma("{\"type\":\"match.assigned\",\"v\":2,\"data\":{}}", NULL, &pe),
                     MW_EINVAL);
    assert_int_equal(pe.code, MW_CODE_UNSUPPORTED_VERSION);
    assert_int_equal(check_ma("{\"type\":\"match.assign\",\"v\":1,\"data\":{}}", NULL, &pe),
                     MW_EINVAL);
    assert_int_equal(pe.code, MW_CODE_UNKNOWN_TYPE);

    /* data members */
    static const char *const bad_data[] = {
        "{\"version\":2,\"assignment\":" MA_ASSIGNMENT_OK "}",
        "{\"ticketId\":7,\"version\":2,\"assignment\":" MA_ASSIGNMENT_OK "}",
        "{\"ticketId\":\"\",\"version\":2,\"assignment\":" MA_ASSIGNMENT_OK "}",
        "{\"ticketId\":\"a\\nb\",\"version\":2,\"assignment\":" MA_ASSIGNMENT_OK "}",
        "{\"ticketId\":\"" TID "\",\"assignment\":" MA_ASSIGNMENT_OK "}",
        "{\"ticketId\":\"" TID "\",\"version\":0,\"assignment\":" MA_ASSIGNMENT_OK "}",
        "{\"ticketId\":\"" TID "\",\"version\":-1,\"assignment\":" MA_ASSIGNMENT_OK "}",
        "{\"ticketId\":\"" TID "\",\"version\":1.5,\"assignment\":" MA_ASSIGNMENT_OK "}",
        "{\"ticketId\":\"" TID "\",\"version\":\"2\",\"assignment\":" MA_ASSIGNMENT_OK "}",
        "{\"ticketId\":\"" TID "\",\"version\":9007199254740992,\"assignment\":" MA_ASSIGNMENT_OK
        "}",
        "{\"ticketId\":\"" TID "\",\"version\":2}",
        "{\"ticketId\":\"" TID "\",\"version\":2,\"assignment\":[]}",
    };
    for (size_t i = 0; i < sizeof(bad_data) / sizeof(bad_data[0]); i++) {
        snprintf(text, sizeof(text), MA_HEAD "%s}", bad_data[i]);
        if (check_ma(text, NULL, &pe) != MW_EINVAL)
            print_error("accepted: %s\n", text);
        assert_int_equal(check_ma(text, NULL, &pe), MW_EINVAL);
        assert_int_equal(pe.code, MW_CODE_BAD_MESSAGE);
    }

    static const char *const bad_assignments[] = {
        /* matchId */
        "{\"connection\":\"h:1\",\"players\":[{\"playerId\":\"a\"}],\"assignedAt\":"
        "\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"\",\"connection\":\"h:1\",\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":1,\"connection\":\"h:1\",\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        /* connection */
        "{\"matchId\":\"m\",\"players\":[{\"playerId\":\"a\"}],\"assignedAt\":"
        "\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"host\",\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\":7777\",\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h:\",\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h:0\",\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h:65536\",\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h:77a\",\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h h:1\",\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":7777,\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        /* players */
        "{\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":[],\"assignedAt\":"
        "\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h:1\",\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":{},\"assignedAt\":"
        "\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":[\"a\"],\"assignedAt\":"
        "\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":[{}],\"assignedAt\":"
        "\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":[{\"playerId\":\"\"}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":[{\"playerId\":1}],"
        "\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        /* MSG-061: no other ticket ids */
        "{\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":[{\"playerId\":\"a\",\"ticketId\":"
        "\"" TID "\"}],\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        "{\"ticketId\":\"" TID "\",\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":[{"
        "\"playerId\":\"a\"}],\"assignedAt\":\"2026-11-27T11:40:48Z\"}",
        /* assignedAt */
        "{\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":[{\"playerId\":\"a\"}]}",
        "{\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":[{\"playerId\":\"a\"}],"
        "\"assignedAt\":1795779648123}",
    };
    for (size_t i = 0; i < sizeof(bad_assignments) / sizeof(bad_assignments[0]); i++) {
        ma_with_assignment(text, sizeof(text), bad_assignments[i]);
        if (check_ma(text, NULL, &pe) != MW_EINVAL)
            print_error("accepted: %s\n", text);
        assert_int_equal(check_ma(text, NULL, &pe), MW_EINVAL);
        assert_int_equal(pe.code, MW_CODE_BAD_MESSAGE);
        assert_true(pe.message[0] != '\0');
    }

    /* 16 players ok, 17 not; long ids */
    {
        size_t n = (size_t)snprintf(text, sizeof(text),
                                    MA_HEAD "{\"ticketId\":\"x\",\"version\":2,\"assignment\":{"
                                            "\"matchId\":\"m\",\"connection\":\"[::1]:7777\","
                                            "\"players\":[");
        for (int i = 0; i < 16; i++)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s{\"playerId\":\"p%d\"}",
                                  i ? "," : "", i);
        snprintf(text + n, sizeof(text) - n,
                 "],\"assignedAt\":\"2026-11-27T11:40:48.1Z\",\"extra\":1},\"more\":[]}}");
        assert_int_equal(check_ma(text, &at, &pe), 0);
        assert_int_equal(at, T0 - 23);
        n = (size_t)snprintf(text, sizeof(text),
                             MA_HEAD "{\"ticketId\":\"x\",\"version\":2,\"assignment\":{"
                                     "\"matchId\":\"m\",\"connection\":\"h:1\",\"players\":[");
        for (int i = 0; i < 17; i++)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s{\"playerId\":\"p%d\"}",
                                  i ? "," : "", i);
        snprintf(text + n, sizeof(text) - n, "],\"assignedAt\":\"2026-11-27T11:40:48Z\"}}}");
        assert_int_equal(check_ma(text, NULL, &pe), MW_EINVAL);
    }
}

static void test_rfc3339_forms(void **state)
{
    static const struct {
        const char *at;
        int64_t ms; /* -1: must be refused */
    } cases[] = {
        {"2026-11-27T11:40:48.123Z", T0},
        {"2026-11-27T11:40:48Z", T0 - 123},
        {"2026-11-27T11:40:48.1Z", T0 - 23},
        {"2026-11-27T11:40:48.12Z", T0 - 3},
        {"2026-11-27T11:40:48.123456789Z", T0},
        {"2026-11-27t11:40:48.123z", T0},
        {"2000-02-29T23:59:59.999Z", 951868799999LL},
        {"1969-12-31T23:59:59.500Z", -500},
        {"1970-01-01T00:00:00Z", 0},
        {"2016-12-31T23:59:60Z", 1483228800000LL}, /* leap second */
        {"2026-11-27T11:40:48.Z", -1},
        {"2026-11-27T11:40:48", -1},
        {"2026-11-27T11:40:48.123", -1},
        {"2026-11-27T11:40:48+00:00", -1},
        {"2026-11-27T11:40:48.123+01:00", -1},
        {"2026-11-27 11:40:48Z", -1},
        {"2026-11-27T11:40:48ZZ", -1},
        {"2026-11-27T11:40:48.123Z ", -1},
        {"2026-13-27T11:40:48Z", -1},
        {"2026-00-27T11:40:48Z", -1},
        {"2026-02-29T11:40:48Z", -1},
        {"1900-02-29T11:40:48Z", -1},
        {"2026-04-31T11:40:48Z", -1},
        {"2026-11-00T11:40:48Z", -1},
        {"2026-11-27T24:00:00Z", -1},
        {"2026-11-27T11:60:48Z", -1},
        {"2026-11-27T11:40:61Z", -1},
        {"26-11-27T11:40:48Z", -1},
        {"2026-1-27T11:40:48Z", -1},
        {"+2026-11-27T11:40:48Z", -1},
        {"2026-11-27T11:40:4aZ", -1},
        {"", -1},
        {"Z", -1},
    };
    struct mw_parse_error pe;
    char text[512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t at = 42;
        int rc;
        ma_with_at(text, sizeof(text), cases[i].at);
        rc = check_ma(text, &at, &pe);
        if ((rc == 0) != (cases[i].ms != -1) || (rc == 0 && at != cases[i].ms))
            print_error("assignedAt '%s': rc %d at %lld\n", cases[i].at, rc, (long long)at);
        if (cases[i].ms == -1) {
            assert_int_equal(rc, MW_EINVAL);
            assert_int_equal(at, 42);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(at, cases[i].ms);
        }
    }
}

/* ---- Allocation failures ----------------------------------------------------------- */

static void test_oom_decode(void **state)
{
    const char *text = "{\"type\":\"enqueue\",\"v\":1,\"id\":\"r\",\"data\":{\"queue\":\"q\","
                       "\"playerId\":\"p\",\"attributes\":{\"region\":\"eu\",\"k\":1},"
                       "\"idempotencyKey\":\"k\"}}";
    const char *bad = "{\"id\":\"keep\",\"type\":\"ping\",\"v\":1}";
    bool passed = false;

    (void)state;
    for (long n = 0; n < 200 && !passed; n++) {
        struct mw_client_msg m;
        struct mw_msg_error e;
        int rc;
        mw_alloc_fail_after(n);
        rc = decode(text, &m, &e);
        mw_alloc_fail_reset();
        if (rc == 0) {
            assert_string_equal(m.enqueue.attributes_json, "{\"region\":\"eu\",\"k\":1}");
            mw_client_msg_clear(&m);
            passed = true;
        } else {
            /* an allocation failure is never reported as a client error */
            assert_int_equal(rc, MW_ENOMEM);
            assert_int_equal(e.e.code, MW_CODE_INTERNAL);
            assert_null(m.enqueue.attributes_json);
        }
    }
    assert_true(passed);

    /* the error path (id recovery) under allocation failure */
    passed = false;
    for (long n = 0; n < 200 && !passed; n++) {
        struct mw_client_msg m;
        struct mw_msg_error e;
        int rc;
        mw_alloc_fail_after(n);
        rc = decode(bad, &m, &e);
        mw_alloc_fail_reset();
        if (rc == MW_EINVAL) {
            assert_int_equal(e.e.code, MW_CODE_BAD_ENVELOPE);
            passed = e.has_id;
        } else {
            assert_int_equal(rc, MW_ENOMEM);
        }
    }
    assert_true(passed);
}

static void test_oom_encode(void **state)
{
    struct mw_ticket t;
    struct mw_match m;
    struct mw_buf env;
    bool done = false;

    (void)state;
    sample_ticket(&t);
    sample_match(&m);
    mw_buf_init(&env, 0);
    assert_int_equal(mw_msg_encode_match_assigned(&env, &m, 0, 2), 0);
    t.state = MW_TICKET_ASSIGNED;
    t.assigned_envelope = env.data;
    t.assigned_envelope_len = env.len;

    for (long n = 0; n < 400 && !done; n++) {
        struct mw_buf b;
        int rc;
        mw_buf_init(&b, 0);
        mw_alloc_fail_after(n);
        rc = mw_msg_encode_ticket_resource(&b, &t);
        mw_alloc_fail_reset();
        if (rc == 0) {
            assert_non_null(strstr(b.data, "\"assignment\":{\"matchId\""));
            done = true;
        } else {
            assert_int_equal(rc, MW_ENOMEM);
            assert_int_equal(b.len, 0);
        }
        mw_buf_release(&b);
    }
    assert_true(done);

    /* match.assigned: the only allocation is the buffer's */
    {
        struct mw_buf b;
        unsigned long before;
        mw_buf_init(&b, 0);
        mw_alloc_fail_after(0);
        assert_int_equal(mw_msg_encode_match_assigned(&b, &m, 0, 2), MW_ENOMEM);
        mw_alloc_fail_reset();
        assert_int_equal(b.len, 0);
        /* with storage already large enough, encoding allocates nothing */
        assert_int_equal(mw_buf_append(&b, env.data, env.len), 0);
        mw_buf_reset(&b);
        before = mw_alloc_count();
        assert_int_equal(mw_msg_encode_match_assigned(&b, &m, 0, 2), 0);
        assert_int_equal(mw_alloc_count(), before);
        mw_buf_release(&b);
    }
    mw_buf_release(&env);
}

/* ---- Vectors (spec/vectors/messages) ------------------------------------------------ */
/* Format: spec/vectors/messages/README.md. Client vectors go through
 * mw_msg_decode(); server vectors through the envelope codec, then
 * mw_msg_check_match_assigned() for match.assigned and the shape rules below
 * for every other server message. */

static char *read_path(const char *path, size_t *len);

static char *read_file(const char *rel, size_t *len)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/spec/vectors/messages/%s", MW_SOURCE_DIR, rel);
    return read_path(path, len);
}

static char *read_path(const char *path, size_t *len)
{
    FILE *f;
    char *data;
    long n;

    f = fopen(path, "rb");
    if (!f) {
        print_error("cannot open %s\n", path);
        return NULL;
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return data;
}

static bool is_int_at_least(const cJSON *v, double min)
{
    return cJSON_IsNumber(v) && v->valuedouble >= min && v->valuedouble <= 9007199254740991.0 &&
           (double)(int64_t)v->valuedouble == v->valuedouble;
}

/* MSG-083: what this server emits: YYYY-MM-DDTHH:MM:SS.sssZ */
static bool is_ms_timestamp(const cJSON *v)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    const char *s;

    if (!cJSON_IsString(v))
        return false;
    s = v->valuestring;
    if (strlen(s) != sizeof(shape) - 1)
        return false;
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    }
    return true;
}

/* MSG-073: an opaque 1 to 64 bytes of A-Z a-z 0-9 . _ ~ - (UUID v4 is only
 * the reference's choice). */
static bool is_ticket_id(const cJSON *v)
{
    size_t n;

    if (!cJSON_IsString(v))
        return false;
    n = strlen(v->valuestring);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v->valuestring[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '~' || c == '-'))
            return false;
    }
    return true;
}

static bool is_state(const cJSON *v)
{
    enum mw_ticket_state st;
    return cJSON_IsString(v) && mw_ticket_state_parse(v->valuestring, &st) == 0;
}

/* Shape of a server message other than match.assigned (MSG-025, 030, 040,
 * 050, 062, 063, 064). Returns the code a receiver would report, or NONE. */
static enum mw_code server_shape(const struct mw_envelope *env)
{
    const cJSON *d = env->data;
    bool push =
        strcmp(env->type, "ticket.expired") == 0 || strcmp(env->type, "ticket.cancelled") == 0;

    if (strcmp(env->type, "enqueued") == 0) {
        const cJSON *q = mw_json_get(d, "queue");
        if (!is_ticket_id(mw_json_get(d, "ticketId")) || !cJSON_IsString(q) ||
            !is_state(mw_json_get(d, "state")) || !is_int_at_least(mw_json_get(d, "version"), 1) ||
            !is_ms_timestamp(mw_json_get(d, "expiresAt")))
            return MW_CODE_BAD_MESSAGE;
    } else if (strcmp(env->type, "cancelled") == 0 || push) {
        if (push && env->has_id) /* MSG-010: pushes carry no id */
            return MW_CODE_BAD_MESSAGE;
        if (!is_ticket_id(mw_json_get(d, "ticketId")) ||
            !is_int_at_least(mw_json_get(d, "version"), 2))
            return MW_CODE_BAD_MESSAGE;
    } else if (strcmp(env->type, "watching") == 0) {
        if (!is_ticket_id(mw_json_get(d, "ticketId")) || !is_state(mw_json_get(d, "state")) ||
            !is_int_at_least(mw_json_get(d, "version"), 1))
            return MW_CODE_BAD_MESSAGE;
    } else if (strcmp(env->type, "pong") == 0) {
        /* any object */
    } else if (strcmp(env->type, "error") == 0) {
        const cJSON *code = mw_json_get(d, "code"), *msg = mw_json_get(d, "message"),
                    *retry = mw_json_get(d, "retryable"), *off = mw_json_get(d, "offset");
        int c;
        if (!cJSON_IsString(code) || !cJSON_IsString(msg) || !cJSON_IsBool(retry))
            return MW_CODE_BAD_MESSAGE;
        for (c = MW_CODE_NONE + 1; c < MW_CODE__COUNT; c++) {
            if (strcmp(mw_code_name((enum mw_code)c), code->valuestring) == 0)
                break;
        }
        if (c == MW_CODE__COUNT)
            return MW_CODE_BAD_MESSAGE;
        if (mw_code_retryable((enum mw_code)c) != cJSON_IsTrue(retry)) /* MSG-100 */
            return MW_CODE_BAD_MESSAGE;
        if (off && !is_int_at_least(off, 0))
            return MW_CODE_BAD_MESSAGE;
    } else {
        return MW_CODE_UNKNOWN_TYPE;
    }
    if (env->v != 1)
        return MW_CODE_UNSUPPORTED_VERSION;
    return MW_CODE_NONE;
}

static const char *type_name(enum mw_msg_type t)
{
    switch (t) {
    case MW_MSG_ENQUEUE:
        return "enqueue";
    case MW_MSG_CANCEL:
        return "cancel";
    case MW_MSG_WATCH:
        return "watch";
    case MW_MSG_PING:
        return "ping";
    }
    return "?";
}

static void expect_member_string(const cJSON *summary, const char *key, const char *got,
                                 bool got_present, const char *vid)
{
    const cJSON *want = mw_json_get(summary, key);

    if (!want) {
        if (got_present)
            print_error("vector %s: %s present ('%s'), not expected\n", vid, key, got);
        assert_false(got_present);
        return;
    }
    assert_true(cJSON_IsString(want));
    if (!got_present || strcmp(want->valuestring, got) != 0)
        print_error("vector %s: %s is '%s', want '%s'\n", vid, key, got_present ? got : "(none)",
                    want->valuestring);
    assert_true(got_present);
    assert_string_equal(got, want->valuestring);
}

static void replay_client(const cJSON *vector, const char *vid, const char *bytes, size_t n)
{
    const cJSON *expect = mw_json_get(vector, "expect"), *decoded = mw_json_get(vector, "decoded"),
                *code = mw_json_get(vector, "code");
    struct mw_client_msg m;
    struct mw_msg_error e;
    int rc = mw_msg_decode(bytes, n, &m, &e);

    if (strcmp(expect->valuestring, "ok") == 0) {
        const cJSON *attrs = mw_json_get(decoded, "attributes");
        if (rc)
            print_error("vector %s: got %s (%s)\n", vid, mw_code_name(e.e.code), e.e.message);
        assert_int_equal(rc, 0);
        assert_true(cJSON_IsObject(decoded));
        expect_member_string(decoded, "type", type_name(m.type), true, vid);
        expect_member_string(decoded, "id", m.id, m.has_id, vid);
        if (m.type == MW_MSG_ENQUEUE) {
            expect_member_string(decoded, "queue", m.enqueue.queue, true, vid);
            expect_member_string(decoded, "playerId", m.enqueue.player_id, true, vid);
            expect_member_string(decoded, "region", m.enqueue.region, m.enqueue.region[0] != 0,
                                 vid);
            expect_member_string(decoded, "idempotencyKey", m.enqueue.idem_key,
                                 m.enqueue.has_idem_key, vid);
            if (attrs) {
                struct mw_buf want;
                mw_buf_init(&want, 0);
                assert_int_equal(mw_json_write(&want, attrs), 0);
                assert_non_null(m.enqueue.attributes_json);
                assert_string_equal(m.enqueue.attributes_json, want.data);
                mw_buf_release(&want);
            } else {
                assert_null(m.enqueue.attributes_json);
            }
        } else if (m.type == MW_MSG_CANCEL || m.type == MW_MSG_WATCH) {
            expect_member_string(decoded, "ticketId", m.ticket_id, true, vid);
        }
        mw_client_msg_clear(&m);
        return;
    }
    if (rc != MW_EINVAL || strcmp(mw_code_name(e.e.code), code->valuestring) != 0)
        print_error("vector %s: rc %d code %s (%s), want %s\n", vid, rc, mw_code_name(e.e.code),
                    e.e.message, code->valuestring);
    assert_int_equal(rc, MW_EINVAL);
    assert_string_equal(mw_code_name(e.e.code), code->valuestring);
    /* MSG-012: the error's id is replyId, or none */
    expect_member_string(vector, "replyId", e.id, e.has_id, vid);
}

static void replay_server(const cJSON *vector, const char *vid, const char *bytes, size_t n)
{
    const cJSON *expect = mw_json_get(vector, "expect"), *decoded = mw_json_get(vector, "decoded"),
                *want_code = mw_json_get(vector, "code");
    struct mw_envelope env;
    struct mw_parse_error pe;
    enum mw_code code = MW_CODE_NONE;
    const char *tid = NULL;
    uint64_t version = 0;
    int64_t at = 0;
    bool parsed = false, assigned = false;

    if (mw_envelope_parse(bytes, n, &env, &pe) != 0) {
        code = pe.code;
    } else {
        parsed = true;
        assigned = strcmp(env.type, "match.assigned") == 0;
        if (assigned) {
            if (env.has_id) /* MSG-010 */
                code = MW_CODE_BAD_MESSAGE;
            else if (mw_msg_check_match_assigned(&env, &tid, &version, &at, &pe) != 0)
                code = pe.code;
        } else {
            code = server_shape(&env);
        }
    }
    if (strcmp(expect->valuestring, "ok") == 0) {
        if (code != MW_CODE_NONE)
            print_error("vector %s: got %s\n", vid, mw_code_name(code));
        assert_int_equal(code, MW_CODE_NONE);
        expect_member_string(decoded, "type", env.type, true, vid);
        if (assigned) {
            const cJSON *v = mw_json_get(decoded, "version"),
                        *ms = mw_json_get(decoded, "assignedAtMs");
            expect_member_string(decoded, "ticketId", tid, true, vid);
            assert_true(cJSON_IsNumber(v) && cJSON_IsNumber(ms));
            assert_int_equal(version, (uint64_t)v->valuedouble);
            assert_int_equal(at, (int64_t)ms->valuedouble);
        }
    } else {
        const char *want = want_code->valuestring;
        if (strcmp(mw_code_name(code), want) != 0)
            print_error("vector %s: got %s, want %s\n", vid, mw_code_name(code), want);
        assert_string_equal(mw_code_name(code), want);
    }
    if (parsed)
        mw_envelope_clear(&env);
}

static void test_vectors(void **state)
{
    size_t len, count = 0;
    char *manifest = read_file("index.json", &len);
    cJSON *root = NULL;
    const cJSON *v;
    struct mw_parse_error pe;

    (void)state;
    assert_non_null(manifest);
    if (mw_json_parse(manifest, len, 0, &root, &pe) != 0)
        print_error("index.json: %s at %zu\n", pe.message, pe.offset);
    assert_non_null(root);
    cJSON_ArrayForEach(v, mw_json_get(root, "vectors"))
    {
        const cJSON *id = mw_json_get(v, "id"), *dir = mw_json_get(v, "direction"),
                    *file = mw_json_get(v, "file"), *expect = mw_json_get(v, "expect"),
                    *reqs = mw_json_get(v, "requirements");
        size_t n;
        char *bytes;

        assert_true(cJSON_IsString(id) && cJSON_IsString(dir) && cJSON_IsString(file));
        assert_true(cJSON_IsArray(reqs) && cJSON_GetArraySize(reqs) > 0);
        assert_true(cJSON_IsString(expect));
        if (strcmp(expect->valuestring, "ok") == 0)
            assert_true(cJSON_IsObject(mw_json_get(v, "decoded")));
        else
            assert_true(strcmp(expect->valuestring, "error") == 0 &&
                        cJSON_IsString(mw_json_get(v, "code")));
        bytes = read_file(file->valuestring, &n);
        assert_non_null(bytes);
        if (strcmp(dir->valuestring, "client") == 0)
            replay_client(v, id->valuestring, bytes, n);
        else if (strcmp(dir->valuestring, "server") == 0)
            replay_server(v, id->valuestring, bytes, n);
        else
            fail_msg("vector %s: direction '%s'", id->valuestring, dir->valuestring);
        free(bytes);
        count++;
    }
    assert_true(count >= 60);
    cJSON_Delete(root);
    free(manifest);
}

/* str_field writes short plain-ASCII values in one append and everything
 * else through mw_json_write_string: the bytes must be the same. Each value
 * is encoded as an error message and compared with the key, then the value
 * written by mw_json_write_string itself; lengths straddle the 192-byte
 * one-append limit, and an escape or non-ASCII byte sits first, inside or
 * last. */
static void test_str_field_paths_agree(void **state)
{
    static const char *const odd[] = {"\"", "\\", "\n", "\x7f", "\xc3\xa9", "\x01", "~"};
    struct mw_buf got, want;
    char v[260];

    (void)state;
    mw_buf_init(&got, 0);
    mw_buf_init(&want, 0);
    for (size_t len = 0; len < 200; len++) {
        for (size_t o = 0; o <= sizeof(odd) / sizeof(odd[0]); o++) {
            for (int pos = 0; pos < 3; pos++) {
                size_t n = len;

                memset(v, 'a' + (int)(len % 26), len);
                v[len] = '\0';
                if (o < sizeof(odd) / sizeof(odd[0]) && len > 0) {
                    size_t at = pos == 0 ? 0 : pos == 1 ? len / 2 : len - 1;
                    size_t ol = strlen(odd[o]);
                    memcpy(v + at, odd[o], ol);
                    n = at + ol > len ? at + ol : len;
                    v[n] = '\0';
                }
                if (n == 0)
                    continue; /* an empty message is replaced by the code name */
                mw_buf_reset(&got);
                mw_buf_reset(&want);
                assert_int_equal(mw_msg_encode_error(&got, "i", MW_CODE_INTERNAL, v, SIZE_MAX), 0);
                assert_int_equal(mw_buf_puts(&want, "{\"type\":\"error\",\"v\":1,\"id\":\"i\","
                                                    "\"data\":{\"code\":\"internal\",\"message\":"),
                                 0);
                assert_int_equal(mw_json_write_string(&want, v, n), 0);
                assert_int_equal(mw_buf_puts(&want, ",\"retryable\":true}}"), 0);
                assert_int_equal(got.len, want.len);
                assert_memory_equal(got.data, want.data, want.len);
            }
        }
    }
    mw_buf_release(&got);
    mw_buf_release(&want);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_each_type),
        cmocka_unit_test(test_unknown_type_and_version),
        cmocka_unit_test(test_error_id_echo),
        cmocka_unit_test(test_enqueue_queue),
        cmocka_unit_test(test_enqueue_player),
        cmocka_unit_test(test_enqueue_attributes),
        cmocka_unit_test(test_enqueue_idempotency_key),
        cmocka_unit_test(test_enqueue_unknown_members_ignored),
        cmocka_unit_test(test_enqueue_data_direct),
        cmocka_unit_test(test_ticket_refs),
        cmocka_unit_test(test_encoders_exact),
        cmocka_unit_test(test_ticket_resource),
        cmocka_unit_test(test_encoder_bounds),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_check_match_assigned),
        cmocka_unit_test(test_rfc3339_forms),
        cmocka_unit_test(test_oom_decode),
        cmocka_unit_test(test_oom_encode),
        cmocka_unit_test(test_str_field_paths_agree),
        cmocka_unit_test(test_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
