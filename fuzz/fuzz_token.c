/* fuzz_token: the player-token verifier (token.c, spec/auth.md).
 *
 * The first input byte picks a mode and a policy, the rest is the data:
 *   mode 0  the data is a whole token (what a client sends at the handshake);
 *   mode 1  the data is a claims set, which the harness signs HS256 with a
 *           configured key, so the claims checks are reached;
 *   mode 2  the data is a JOSE header, signed with the same key over fixed
 *           valid claims, so the header checks and key choice are reached;
 *   mode 3  the data goes through base64url decode, then encode.
 * Policy bits: leeway 0 or 30, audience "mw" or none, issuer "iss" or none.
 *
 * Never a crash, leak, over-read or timeout; the verifier answers 0 or
 * MW_EAUTH only (no allocation fails here); and what it accepts is checked
 * here independently, with cJSON's lax parser and the rules of spec/auth.md
 * written out again: sub 1..128 bytes and the one reported, exp present and
 * not past (with leeway), nbf and iat respected, aud and iss as configured,
 * alg HS256 with an acceptable typ and no crit. Strict base64url is a
 * bijection: a decoded input encodes back to itself byte for byte. */
#include "fuzz_common.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "alloc.h"
#include "buf.h"
#include "error.h"
#include "token.h"

#define NOW_S    1800000000LL
#define SECRET_1 "fuzz-secret-number-one-0123456789"
#define SECRET_2 "fuzz-secret-number-two-0123456789"

static const char ED_PUB[] = "-----BEGIN PUBLIC KEY-----\n"
                             "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
                             "-----END PUBLIC KEY-----\n";

/* RFC 7515 A.2's RSA public key (RS256 paths: signature length, OpenSSL). */
static const char RSA_PUB[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAofgWCuLjybRlzo0tZWJj\n"
                              "NiuSfb4p4fAkd/wWJcyQoTbji9k0l8W26mPddxHmfHQp+Vaw+4qPCJrcS2mJPMEz\n"
                              "P1Pt0Bm4d4QlL+yRT+SFd2lZS+pCgNMsD1W/YpRPEwOWvG6b32690r2jZ47soMZo\n"
                              "9wGzjb/7OMg0LOL+bSf63kpaSHSXndS5z5rexMdbBYUsLA9e+KXBdQOS+UTo7WTB\n"
                              "EMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6/I5IhlJH7aGhyxX\n"
                              "FvUK+DWNmoudF8NAco9/h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXp\n"
                              "oQIDAQAB\n"
                              "-----END PUBLIC KEY-----\n";

static struct mw_token_keys *keys;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    mw_alloc_set(NULL);
    keys = mw_token_keys_new();
    FUZZ_CHECK(keys != NULL);
    FUZZ_CHECK(mw_token_keys_add_hs256(keys, SECRET_1, strlen(SECRET_1), "k1") == 0);
    FUZZ_CHECK(mw_token_keys_add_hs256(keys, SECRET_2, strlen(SECRET_2), NULL) == 0);
    FUZZ_CHECK(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_EDDSA, ED_PUB, strlen(ED_PUB), "ed") == 0);
    FUZZ_CHECK(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_RS256, RSA_PUB, strlen(RSA_PUB), "rsa") ==
               0);
    return 0;
}

/* header "." payload "." HMAC-SHA-256 with SECRET_1, built without the
 * module's signer (which refuses odd headers). Caller frees with mw_free(). */
static char *forge(const char *header, size_t hlen, const char *payload, size_t plen)
{
    unsigned char mac[32];
    unsigned int maclen = 0;
    struct mw_buf b;

    mw_buf_init(&b, 64 * 1024);
    FUZZ_CHECK(mw_base64url_encode(&b, header, hlen) == 0);
    FUZZ_CHECK(mw_buf_puts(&b, ".") == 0);
    FUZZ_CHECK(mw_base64url_encode(&b, payload, plen) == 0);
    FUZZ_CHECK(HMAC(EVP_sha256(), SECRET_1, (int)strlen(SECRET_1), (const unsigned char *)b.data,
                    b.len, mac, &maclen) != NULL);
    FUZZ_CHECK(mw_buf_puts(&b, ".") == 0);
    FUZZ_CHECK(mw_base64url_encode(&b, mac, maclen) == 0);
    return b.data;
}

static bool lower_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        int x = (*a >= 'A' && *a <= 'Z') ? *a + 32 : *a;
        int y = (*b >= 'A' && *b <= 'Z') ? *b + 32 : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

/* A NumericDate as spec/auth.md AUTH-032 defines it. */
static bool date_ok(const cJSON *v)
{
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0 &&
           v->valuedouble <= 9007199254740991.0;
}

/* Re-checks accepted claims (payload[0..plen)) against the rules. */
static void check_accepted_claims(const char *payload, size_t plen,
                                  const struct mw_token_policy *pol,
                                  const struct mw_token_claims *c)
{
    cJSON *t = cJSON_ParseWithLength(payload, plen);
    const cJSON *sub, *exp, *nbf, *iat, *aud, *iss;
    double now = (double)NOW_S, lw = (double)pol->leeway_s;

    FUZZ_CHECK_MSG(t != NULL, "accepted claims that cJSON cannot parse");
    FUZZ_CHECK(cJSON_IsObject(t));
    sub = cJSON_GetObjectItemCaseSensitive(t, "sub");
    FUZZ_CHECK(cJSON_IsString(sub));
    FUZZ_CHECK(strlen(sub->valuestring) >= 1 && strlen(sub->valuestring) <= MW_PLAYER_ID_MAX);
    FUZZ_CHECK(strcmp(sub->valuestring, c->sub) == 0);
    FUZZ_CHECK(fuzz_ijson_string_ok(c->sub));
    exp = cJSON_GetObjectItemCaseSensitive(t, "exp");
    FUZZ_CHECK(date_ok(exp));
    FUZZ_CHECK(c->exp == (int64_t)ceil(exp->valuedouble));
    FUZZ_CHECK(c->expires_at_s == c->exp + pol->leeway_s);
    FUZZ_CHECK_MSG(now < exp->valuedouble + lw, "expired token accepted (exp %.17g)",
                   exp->valuedouble);
    nbf = cJSON_GetObjectItemCaseSensitive(t, "nbf");
    FUZZ_CHECK(!nbf || (date_ok(nbf) && now + lw >= nbf->valuedouble));
    iat = cJSON_GetObjectItemCaseSensitive(t, "iat");
    FUZZ_CHECK(!iat || (date_ok(iat) && iat->valuedouble <= now + lw));
    aud = cJSON_GetObjectItemCaseSensitive(t, "aud");
    if (!pol->audience) {
        FUZZ_CHECK_MSG(aud == NULL, "aud accepted with no audience configured");
    } else if (cJSON_IsString(aud)) {
        FUZZ_CHECK(strcmp(aud->valuestring, pol->audience) == 0);
    } else {
        const cJSON *e;
        bool found = false;
        FUZZ_CHECK(cJSON_IsArray(aud));
        cJSON_ArrayForEach(e, aud)
        {
            FUZZ_CHECK(cJSON_IsString(e));
            found |= strcmp(e->valuestring, pol->audience) == 0;
        }
        FUZZ_CHECK(found);
    }
    iss = cJSON_GetObjectItemCaseSensitive(t, "iss");
    if (pol->issuer)
        FUZZ_CHECK(cJSON_IsString(iss) && strcmp(iss->valuestring, pol->issuer) == 0);
    cJSON_Delete(t);
}

/* Re-checks an accepted header (h[0..hlen)) signed with SECRET_1. */
static void check_accepted_header(const char *h, size_t hlen, const struct mw_token_claims *c)
{
    cJSON *t = cJSON_ParseWithLength(h, hlen);
    const cJSON *alg, *typ, *kid, *cty;

    FUZZ_CHECK_MSG(t != NULL, "accepted a header that cJSON cannot parse");
    FUZZ_CHECK(cJSON_IsObject(t));
    alg = cJSON_GetObjectItemCaseSensitive(t, "alg");
    FUZZ_CHECK(cJSON_IsString(alg) && strcmp(alg->valuestring, "HS256") == 0);
    FUZZ_CHECK(cJSON_GetObjectItemCaseSensitive(t, "crit") == NULL);
    typ = cJSON_GetObjectItemCaseSensitive(t, "typ");
    FUZZ_CHECK(!typ || (cJSON_IsString(typ) && lower_eq(typ->valuestring, "jwt")));
    cty = cJSON_GetObjectItemCaseSensitive(t, "cty");
    FUZZ_CHECK(!cty || (cJSON_IsString(cty) && !lower_eq(cty->valuestring, "jwt")));
    kid = cJSON_GetObjectItemCaseSensitive(t, "kid");
    /* Signed with SECRET_1: only key k1 verifies it, by kid or by trial. */
    FUZZ_CHECK(!kid || (cJSON_IsString(kid) && strcmp(kid->valuestring, "k1") == 0));
    FUZZ_CHECK(strcmp(c->kid, "k1") == 0);
    FUZZ_CHECK(c->alg == MW_TOKEN_ALG_HS256);
    cJSON_Delete(t);
}

static void run_verify(const char *tok, size_t len, const struct mw_token_policy *pol, int *rc_out,
                       struct mw_token_claims *c)
{
    const char *why = NULL;
    char *payload = NULL;
    size_t plen = 0;
    int rc = mw_token_verify(keys, pol, tok, len, NOW_S, c, &why), rc2;

    FUZZ_CHECK_MSG(rc == 0 || rc == MW_EAUTH, "rc %d", rc);
    FUZZ_CHECK(rc == 0 || why != NULL);
    /* The JWS layer alone accepts whatever the full verifier accepts. */
    rc2 = mw_token_verify_jws(keys, tok, len, &payload, &plen, NULL, NULL, NULL);
    FUZZ_CHECK(rc2 == 0 || rc2 == MW_EAUTH);
    FUZZ_CHECK(rc != 0 || rc2 == 0);
    FUZZ_CHECK(rc2 == 0 || payload == NULL);
    if (rc2 == 0)
        FUZZ_CHECK(payload != NULL && payload[plen] == '\0');
    mw_free(payload);
    if (rc == 0)
        FUZZ_CHECK(len <= MW_TOKEN_MAX_BYTES);
    *rc_out = rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mw_token_policy pol;
    struct mw_token_claims c;
    unsigned sel;
    char *buf;
    int rc;

    if (size < 1)
        return 0;
    sel = data[0];
    data++;
    size--;
    mw_token_policy_init(&pol);
    pol.leeway_s = (sel & 0x04) ? 0 : 30;
    pol.audience = (sel & 0x08) ? "mw" : NULL;
    pol.issuer = (sel & 0x10) ? "iss" : NULL;
    buf = fuzz_dup_exact(data, size);
    switch (sel & 3) {
    case 0:
        run_verify(buf, size, &pol, &rc, &c);
        break;
    case 1: {
        char *tok;
        if (size > MW_TOKEN_MAX_BYTES)
            break;
        tok = forge("{\"alg\":\"HS256\",\"kid\":\"k1\"}", 26, buf, size);
        run_verify(tok, strlen(tok), &pol, &rc, &c);
        if (rc == 0)
            check_accepted_claims(buf, size, &pol, &c);
        mw_free(tok);
        break;
    }
    case 2: {
        static const char claims[] =
            "{\"sub\":\"p\",\"exp\":1900000000,\"aud\":\"mw\",\"iss\":\"iss\"}";
        char *tok;
        if (size > MW_TOKEN_MAX_BYTES)
            break;
        pol.audience = "mw";
        tok = forge(buf, size, claims, strlen(claims));
        run_verify(tok, strlen(tok), &pol, &rc, &c);
        if (rc == 0)
            check_accepted_header(buf, size, &c);
        mw_free(tok);
        break;
    }
    default: {
        unsigned char *out = malloc(size * 3 / 4 + 1);
        size_t n = 0;
        FUZZ_CHECK(out != NULL);
        if (mw_base64url_decode(buf, size, out, &n) == 0) {
            struct mw_buf b;
            FUZZ_CHECK(n == size * 3 / 4);
            mw_buf_init(&b, 0);
            FUZZ_CHECK(mw_base64url_encode(&b, out, n) == 0);
            FUZZ_CHECK_MSG(b.len == size && (size == 0 || memcmp(b.data, buf, size) == 0),
                           "base64url not canonical");
            mw_buf_release(&b);
        }
        /* And every byte string encodes to something that decodes back. */
        {
            struct mw_buf b;
            unsigned char *back;
            size_t m = 0;
            mw_buf_init(&b, 0);
            FUZZ_CHECK(mw_base64url_encode(&b, buf, size) == 0);
            back = malloc(b.len * 3 / 4 + 1);
            FUZZ_CHECK(back != NULL);
            FUZZ_CHECK(mw_base64url_decode(b.data ? b.data : "", b.len, back, &m) == 0);
            FUZZ_CHECK(m == size && (size == 0 || memcmp(back, buf, size) == 0));
            free(back);
            mw_buf_release(&b);
        }
        free(out);
        break;
    }
    }
    free(buf);
    return 0;
}
