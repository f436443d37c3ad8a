/* Tests for token (spec/auth.md): the JWS layer against the examples of RFC
 * 7515 A.1 (HS256), A.2 (RS256) and RFC 8037 A.4 (Ed25519), checked here
 * byte for byte; then the JWT rules: time claims and their leeway edges,
 * algorithm binding (alg none, alg not configured, HS256 keyed with an RSA
 * public key's PEM), kid selection and rotation, aud/iss, sub, size,
 * base64url strictness, strict JSON, the key set API, signing round trips,
 * the service-token comparison, and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "alloc.h"
#include "buf.h"
#include "error.h"
#include "token.h"

/* ---- fixtures: the RFC examples (verified with python3-cryptography and
 * hmac before being typed in; the PEMs are the RFCs' JWKs converted) ---- */

/* RFC 7515 A.1: JWK "k" of the HMAC key, base64url. */
static const char RFC7515_A1_K[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
#define RFC7515_PAYLOAD_B64                                                                        \
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl" \
    "fQ"
static const char RFC7515_PAYLOAD[] =
    "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
static const char RFC7515_A1_JWS[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." RFC7515_PAYLOAD_B64
                                     ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/* RFC 7515 A.2: RS256 over the same payload. */
static const char RFC7515_A2_JWS[] =
    "eyJhbGciOiJSUzI1NiJ9." RFC7515_PAYLOAD_B64
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7"
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4"
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv"
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB"
    "p0igcN_IoypGlUPQGe77Rw";
/* The A.2 JWK (n, e=AQAB) as a SubjectPublicKeyInfo PEM. */
static const char RFC7515_RSA_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAofgWCuLjybRlzo0tZWJj\n"
    "NiuSfb4p4fAkd/wWJcyQoTbji9k0l8W26mPddxHmfHQp+Vaw+4qPCJrcS2mJPMEz\n"
    "P1Pt0Bm4d4QlL+yRT+SFd2lZS+pCgNMsD1W/YpRPEwOWvG6b32690r2jZ47soMZo\n"
    "9wGzjb/7OMg0LOL+bSf63kpaSHSXndS5z5rexMdbBYUsLA9e+KXBdQOS+UTo7WTB\n"
    "EMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6/I5IhlJH7aGhyxX\n"
    "FvUK+DWNmoudF8NAco9/h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXp\n"
    "oQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
/* RFC 8037 A.4: Ed25519 over "Example of Ed25519 signing"; keys from A.1
 * (x = 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo, d = nWGxne_9...). */
static const char RFC8037_A4_JWS[] =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
static const char RFC8037_ED_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
    "-----END PUBLIC KEY-----\n";
static const char RFC8037_ED_PRIV[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";

#define SECRET_A "0123456789abcdef0123456789abcdef" /* 32 bytes */
#define SECRET_B "fedcba9876543210fedcba9876543210xyz"
#define NOW      1800000000LL

/* ---- helpers ------------------------------------------------------------ */

static struct mw_token_keys *keys_hs(const char *secret, const char *kid)
{
    struct mw_token_keys *k = mw_token_keys_new();

    assert_non_null(k);
    assert_int_equal(mw_token_keys_add_hs256(k, secret, strlen(secret), kid), 0);
    return k;
}

/* An HS256 token over claims text, via the module's signer. Caller frees. */
static char *mint(const char *secret, const char *kid, const char *claims)
{
    struct mw_buf b;

    mw_buf_init(&b, 0);
    assert_int_equal(mw_token_sign_hs256(&b, secret, strlen(secret), kid, claims, strlen(claims)),
                     0);
    return b.data;
}

/* A token with any header text, HMAC-SHA-256 keyed with key[0..klen),
 * computed here with OpenSSL directly (the attacker's view: no module rules
 * on the secret or the header). Caller frees with mw_free(). */
static char *forge(const void *key, size_t klen, const char *header, const char *payload)
{
    unsigned char mac[32];
    unsigned int maclen = 0;
    struct mw_buf b;

    mw_buf_init(&b, 0);
    assert_int_equal(mw_base64url_encode(&b, header, strlen(header)), 0);
    assert_int_equal(mw_buf_puts(&b, "."), 0);
    assert_int_equal(mw_base64url_encode(&b, payload, strlen(payload)), 0);
    assert_non_null(
        HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)b.data, b.len, mac, &maclen));
    assert_int_equal(mw_buf_puts(&b, "."), 0);
    assert_int_equal(mw_base64url_encode(&b, mac, maclen), 0);
    return b.data;
}

static int verify_at(const struct mw_token_keys *k, const struct mw_token_policy *p,
                     const char *tok, int64_t now, struct mw_token_claims *c, const char **why)
{
    *why = NULL;
    return mw_token_verify(k, p, tok, strlen(tok), now, c, why);
}

#define EXPECT_OK(k, p, tok, now)                                                                  \
    do {                                                                                           \
        struct mw_token_claims c_;                                                                 \
        const char *w_;                                                                            \
        int rc_ = verify_at((k), (p), (tok), (now), &c_, &w_);                                     \
        if (rc_)                                                                                   \
            fail_msg("refused: %s", w_ ? w_ : "?");                                                \
    } while (0)

#define EXPECT_REFUSED(k, p, tok, now, reason)                                                     \
    do {                                                                                           \
        struct mw_token_claims c_;                                                                 \
        const char *w_;                                                                            \
        int rc_ = verify_at((k), (p), (tok), (now), &c_, &w_);                                     \
        assert_int_equal(rc_, MW_EAUTH);                                                           \
        assert_non_null(w_);                                                                       \
        if (strcmp(w_, (reason)) != 0)                                                             \
            fail_msg("reason \"%s\", want \"%s\"", w_, (reason));                                  \
    } while (0)

/* Claims text with the given extra members, sub alice, exp NOW + 600. */
static char *claims_with(const char *extra)
{
    char *s = malloc(1024);

    assert_non_null(s);
    snprintf(s, 1024, "{\"sub\":\"alice\",\"exp\":%lld%s%s}", (long long)(NOW + 600),
             *extra ? "," : "", extra);
    return s;
}

static char *mint_extra(const char *secret, const char *kid, const char *extra)
{
    char *c = claims_with(extra), *t = mint(secret, kid, c);

    free(c);
    return t;
}

/* PEM text of a fresh RSA key (private or public). Caller frees with free(). */
static char *rsa_pem(EVP_PKEY *pkey, bool private_key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    assert_non_null(bio);
    if (private_key)
        assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    n = BIO_get_mem_data(bio, &data);
    out = malloc((size_t)n + 1);
    assert_non_null(out);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio);
    return out;
}

/* ---- base64url ---------------------------------------------------------- */

static int dec(const char *s, unsigned char *out, size_t *n)
{
    return mw_base64url_decode(s, strlen(s), out, n);
}

static void test_base64url(void **state)
{
    unsigned char out[64];
    size_t n;
    struct mw_buf b;
    /* RFC 4648 section 10 vectors, unpadded. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

    (void)state;
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(dec(enc[i], out, &n), 0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
        mw_buf_init(&b, 0);
        assert_int_equal(mw_base64url_encode(&b, plain[i], strlen(plain[i])), 0);
        assert_string_equal(b.data ? b.data : "", enc[i]);
        mw_buf_release(&b);
    }
    assert_int_equal(dec("-_8", out, &n), 0); /* the URL-safe characters */
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xFB);
    assert_int_equal(out[1], 0xFF);
    assert_int_equal(dec("Zg==", out, &n), MW_EINVAL);   /* padding */
    assert_int_equal(dec("Zm9v+g", out, &n), MW_EINVAL); /* standard alphabet */
    assert_int_equal(dec("Zm9v/g", out, &n), MW_EINVAL);
    assert_int_equal(dec("Zm 9v", out, &n), MW_EINVAL); /* whitespace */
    assert_int_equal(dec("Zm9vY", out, &n), MW_EINVAL); /* n % 4 == 1 */
    assert_int_equal(dec("Zh", out, &n), MW_EINVAL);    /* non-canonical: low bits set */
    assert_int_equal(dec("Zm9", out, &n), MW_EINVAL);
    assert_int_equal(mw_base64url_decode("Zg\0", 3, out, &n), MW_EINVAL); /* NUL */
}

/* ---- JWS layer: the RFC examples ---------------------------------------- */

static void test_rfc7515_a1_hs256(void **state)
{
    unsigned char k[64];
    size_t klen, plen, ki = 99;
    struct mw_token_keys *keys = mw_token_keys_new();
    enum mw_token_alg alg = MW_TOKEN_ALG_NONE;
    char *payload, *tok;
    const char *why;

    (void)state;
    assert_int_equal(dec(RFC7515_A1_K, k, &klen), 0);
    assert_int_equal(klen, 64);
    assert_int_equal(mw_token_keys_add_hs256(keys, k, klen, NULL), 0);
    assert_int_equal(mw_token_verify_jws(keys, RFC7515_A1_JWS, strlen(RFC7515_A1_JWS), &payload,
                                         &plen, &alg, &ki, &why),
                     0);
    assert_int_equal(plen, strlen(RFC7515_PAYLOAD));
    assert_memory_equal(payload, RFC7515_PAYLOAD, plen);
    assert_int_equal(alg, MW_TOKEN_ALG_HS256);
    assert_int_equal(ki, 0);
    mw_free(payload);
    /* As a player token it has no sub (it is not one of ours), whatever the
     * time: exp 1300819380 is 2011-03-22T18:43:00Z. */
    EXPECT_REFUSED(keys, NULL, RFC7515_A1_JWS, 1300819380 - 10, "missing sub");
    /* One changed signature character, one changed payload character. */
    tok = mw_strndup(RFC7515_A1_JWS, strlen(RFC7515_A1_JWS));
    tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'X' ? 'Y' : 'X';
    assert_int_equal(mw_token_verify_jws(keys, tok, strlen(tok), &payload, &plen, NULL, NULL, &why),
                     MW_EAUTH);
    assert_string_equal(why, "bad signature");
    assert_null(payload);
    memcpy(tok, RFC7515_A1_JWS, strlen(tok));
    tok[50] = tok[50] == 'a' ? 'b' : 'a';
    assert_int_equal(mw_token_verify_jws(keys, tok, strlen(tok), &payload, &plen, NULL, NULL, &why),
                     MW_EAUTH);
    mw_free(tok);
    mw_token_keys_free(keys);
}

static void test_rfc7515_a2_rs256(void **state)
{
    struct mw_token_keys *keys = mw_token_keys_new();
    enum mw_token_alg alg = MW_TOKEN_ALG_NONE;
    size_t plen;
    char *payload, *tok;
    const char *why;

    (void)state;
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_RS256, RFC7515_RSA_PUB,
                                           strlen(RFC7515_RSA_PUB), "rfc7515"),
                     0);
    assert_int_equal(mw_token_verify_jws(keys, RFC7515_A2_JWS, strlen(RFC7515_A2_JWS), &payload,
                                         &plen, &alg, NULL, &why),
                     0);
    assert_int_equal(alg, MW_TOKEN_ALG_RS256);
    assert_int_equal(plen, strlen(RFC7515_PAYLOAD));
    assert_memory_equal(payload, RFC7515_PAYLOAD, plen);
    mw_free(payload);
    tok = mw_strndup(RFC7515_A2_JWS, strlen(RFC7515_A2_JWS));
    tok[strlen(tok) - 5] ^= 1; /* a letter to its neighbour: still base64url */
    assert_int_equal(mw_token_verify_jws(keys, tok, strlen(tok), &payload, &plen, NULL, NULL, &why),
                     MW_EAUTH);
    assert_string_equal(why, "bad signature");
    /* A signature one byte short is refused before OpenSSL sees it. */
    tok[strlen(tok) - 3] = '\0';
    assert_int_equal(mw_token_verify_jws(keys, tok, strlen(tok), &payload, &plen, NULL, NULL, &why),
                     MW_EAUTH);
    mw_free(tok);
    mw_token_keys_free(keys);
}

static void test_rfc8037_a4_eddsa(void **state)
{
    struct mw_token_keys *keys = mw_token_keys_new();
    enum mw_token_alg alg = MW_TOKEN_ALG_NONE;
    size_t plen;
    char *payload;
    const char *why;
    struct mw_buf b;

    (void)state;
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PUB,
                                           strlen(RFC8037_ED_PUB), NULL),
                     0);
    assert_int_equal(mw_token_verify_jws(keys, RFC8037_A4_JWS, strlen(RFC8037_A4_JWS), &payload,
                                         &plen, &alg, NULL, &why),
                     0);
    assert_int_equal(alg, MW_TOKEN_ALG_EDDSA);
    assert_int_equal(plen, 26);
    assert_string_equal(payload, "Example of Ed25519 signing");
    mw_free(payload);
    /* Not a claims set: refused by the JWT layer, after the signature. */
    EXPECT_REFUSED(keys, NULL, RFC8037_A4_JWS, NOW, "claims are not strict JSON");
    /* Ed25519 is deterministic: our signer with the RFC's private key gives
     * the RFC's signature for the same signing input... except that our
     * header carries typ, so compare by verifying instead. */
    mw_buf_init(&b, 0);
    assert_int_equal(mw_token_sign_pem(&b, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PRIV,
                                       strlen(RFC8037_ED_PRIV), "ed1", "hello", 5),
                     0);
    assert_int_equal(mw_token_verify_jws(keys, b.data, b.len, &payload, &plen, NULL, NULL, &why),
                     MW_EAUTH); /* kid ed1 is not in the set */
    assert_string_equal(why, "unknown kid");
    mw_buf_release(&b);
    mw_token_keys_free(keys);
}

/* ---- JWT layer ---------------------------------------------------------- */

static void test_valid(void **state)
{
    struct mw_token_keys *keys = keys_hs(SECRET_A, "k1");
    struct mw_token_claims c;
    struct mw_buf claims;
    const char *why;
    char *tok;

    (void)state;
    mw_buf_init(&claims, 0);
    assert_int_equal(mw_token_write_claims(&claims, "alice", NULL, NULL, NOW, 3600), 0);
    assert_string_equal(claims.data, "{\"sub\":\"alice\",\"iat\":1800000000,\"exp\":1800003600}");
    tok = mint(SECRET_A, "k1", claims.data);
    assert_int_equal(verify_at(keys, NULL, tok, NOW, &c, &why), 0);
    assert_string_equal(c.sub, "alice");
    assert_int_equal(c.exp, NOW + 3600);
    assert_int_equal(c.expires_at_s, NOW + 3600 + MW_TOKEN_LEEWAY_DEFAULT);
    assert_int_equal(c.alg, MW_TOKEN_ALG_HS256);
    assert_string_equal(c.kid, "k1");
    mw_free(tok);
    /* Non-ASCII sub: any valid playerId (MSG-021). */
    tok = mint(SECRET_A, NULL, "{\"sub\":\"J\\u00fcrgen \xe2\x9c\x93\",\"exp\":1800000600}");
    assert_int_equal(verify_at(keys, NULL, tok, NOW, &c, &why), 0);
    assert_string_equal(c.sub, "J\xc3\xbcrgen \xe2\x9c\x93");
    assert_string_equal(c.kid, "k1"); /* no kid in the token: the key that verified */
    mw_free(tok);
    mw_buf_release(&claims);
    mw_token_keys_free(keys);
}

static void test_time_edges(void **state)
{
    struct mw_token_keys *keys = keys_hs(SECRET_A, NULL);
    struct mw_token_policy p, p0;
    char *tok;

    (void)state;
    mw_token_policy_init(&p); /* leeway 30 */
    mw_token_policy_init(&p0);
    p0.leeway_s = 0;
    /* exp 1000: accepted while now < exp + leeway. */
    tok = mint(SECRET_A, NULL, "{\"sub\":\"a\",\"exp\":1000}");
    EXPECT_OK(keys, &p, tok, 1029);
    EXPECT_REFUSED(keys, &p, tok, 1030, "expired");
    EXPECT_OK(keys, &p0, tok, 999);
    EXPECT_REFUSED(keys, &p0, tok, 1000, "expired");
    mw_free(tok);
    /* A fractional exp: 1000.5 is still valid at 1000, not at 1001. */
    tok = mint(SECRET_A, NULL, "{\"sub\":\"a\",\"exp\":1000.5}");
    EXPECT_OK(keys, &p0, tok, 1000);
    EXPECT_REFUSED(keys, &p0, tok, 1001, "expired");
    mw_free(tok);
    /* nbf 1000: accepted from nbf - leeway on. */
    tok = mint(SECRET_A, NULL, "{\"sub\":\"a\",\"exp\":5000,\"nbf\":1000}");
    EXPECT_REFUSED(keys, &p, tok, 969, "not yet valid (nbf)");
    EXPECT_OK(keys, &p, tok, 970);
    EXPECT_REFUSED(keys, &p0, tok, 999, "not yet valid (nbf)");
    EXPECT_OK(keys, &p0, tok, 1000);
    mw_free(tok);
    /* iat 1000: refused while iat > now + leeway. */
    tok = mint(SECRET_A, NULL, "{\"sub\":\"a\",\"exp\":5000,\"iat\":1000}");
    EXPECT_REFUSED(keys, &p, tok, 969, "issued in the future (iat)");
    EXPECT_OK(keys, &p, tok, 970);
    EXPECT_REFUSED(keys, &p0, tok, 999, "issued in the future (iat)");
    EXPECT_OK(keys, &p0, tok, 1000);
    mw_free(tok);
    /* exp is required; NumericDates are non-negative finite numbers. */
    tok = mint(SECRET_A, NULL, "{\"sub\":\"a\"}");
    EXPECT_REFUSED(keys, &p, tok, 0, "missing exp");
    mw_free(tok);
    static const char *const bad_dates[] = {
        "{\"sub\":\"a\",\"exp\":\"5000\"}",
        "{\"sub\":\"a\",\"exp\":-1}",
        "{\"sub\":\"a\",\"exp\":1e300}",
        "{\"sub\":\"a\",\"exp\":true}",
        "{\"sub\":\"a\",\"exp\":null}",
        "{\"sub\":\"a\",\"exp\":5000,\"nbf\":\"0\"}",
        "{\"sub\":\"a\",\"exp\":5000,\"iat\":[1]}",
    };
    for (size_t i = 0; i < sizeof(bad_dates) / sizeof(bad_dates[0]); i++) {
        tok = mint(SECRET_A, NULL, bad_dates[i]);
        EXPECT_REFUSED(keys, &p, tok, 100, "exp, nbf or iat is not a NumericDate");
        mw_free(tok);
    }
    /* A policy leeway out of range refuses everything. */
    p.leeway_s = MW_TOKEN_LEEWAY_MAX + 1;
    tok = mint(SECRET_A, NULL, "{\"sub\":\"a\",\"exp\":5000}");
    EXPECT_REFUSED(keys, &p, tok, 100, "bad leeway in policy");
    p.leeway_s = MW_TOKEN_LEEWAY_MAX;
    EXPECT_OK(keys, &p, tok, 100);
    mw_free(tok);
    mw_token_keys_free(keys);
}

static void test_wrong_signature(void **state)
{
    struct mw_token_keys *keys = keys_hs(SECRET_A, NULL);
    char *tok = mint_extra(SECRET_B, NULL, "");

    (void)state;
    EXPECT_REFUSED(keys, NULL, tok, NOW, "bad signature");
    mw_free(tok);
    mw_token_keys_free(keys);
}

static void test_alg_none_and_unconfigured(void **state)
{
    struct mw_token_keys *keys = keys_hs(SECRET_A, NULL);
    char *claims = claims_with(""), *tok;
    struct mw_buf b;

    (void)state;
    /* alg none, with an empty signature (the unsecured JWS form) and with
     * some signature bytes. */
    mw_buf_init(&b, 0);
    assert_int_equal(mw_base64url_encode(&b, "{\"alg\":\"none\"}", 14), 0);
    assert_int_equal(mw_buf_puts(&b, "."), 0);
    assert_int_equal(mw_base64url_encode(&b, claims, strlen(claims)), 0);
    assert_int_equal(mw_buf_puts(&b, "."), 0);
    EXPECT_REFUSED(keys, NULL, b.data, NOW, "not a compact JWS");
    assert_int_equal(mw_buf_puts(&b, "AAAA"), 0);
    EXPECT_REFUSED(keys, NULL, b.data, NOW, "algorithm not accepted");
    mw_buf_release(&b);
    /* alg none "signed" with HMAC anyway; wrong-case names; unknown names. */
    static const char *const headers[] = {
        "{\"alg\":\"none\"}",  "{\"alg\":\"None\"}",  "{\"alg\":\"hs256\"}",
        "{\"alg\":\"HS512\"}", "{\"alg\":\"ES256\"}", "{\"alg\":\"Ed25519\"}",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        tok = forge(SECRET_A, strlen(SECRET_A), headers[i], claims);
        EXPECT_REFUSED(keys, NULL, tok, NOW, "algorithm not accepted");
        mw_free(tok);
    }
    /* A well-formed EdDSA token when only HS256 is configured. */
    mw_buf_init(&b, 0);
    assert_int_equal(mw_token_sign_pem(&b, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PRIV,
                                       strlen(RFC8037_ED_PRIV), NULL, claims, strlen(claims)),
                     0);
    EXPECT_REFUSED(keys, NULL, b.data, NOW, "algorithm not accepted");
    mw_buf_release(&b);
    /* No key at all, or no key set. */
    tok = mint(SECRET_A, NULL, claims);
    {
        struct mw_token_keys *empty = mw_token_keys_new();
        EXPECT_REFUSED(empty, NULL, tok, NOW, "algorithm not accepted");
        EXPECT_REFUSED(NULL, NULL, tok, NOW, "algorithm not accepted");
        mw_token_keys_free(empty);
    }
    mw_free(tok);
    free(claims);
    mw_token_keys_free(keys);
}

/* The classic confusion: the server has an RS256 public key; the attacker
 * signs HS256 with that public key's PEM bytes as the HMAC secret. A key is
 * bound to its algorithm, so this never verifies. */
static void test_hs256_with_rsa_public_key(void **state)
{
    struct mw_token_keys *keys = mw_token_keys_new();
    char *claims = claims_with(""), *tok;

    (void)state;
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_RS256, RFC7515_RSA_PUB,
                                           strlen(RFC7515_RSA_PUB), "rsa1"),
                     0);
    tok = forge(RFC7515_RSA_PUB, strlen(RFC7515_RSA_PUB), "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                claims);
    EXPECT_REFUSED(keys, NULL, tok, NOW, "algorithm not accepted");
    mw_free(tok);
    tok = forge(RFC7515_RSA_PUB, strlen(RFC7515_RSA_PUB), "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}",
                claims);
    EXPECT_REFUSED(keys, NULL, tok, NOW, "algorithm not allowed for this key");
    mw_free(tok);
    /* The same bytes as a configured HS256 secret are refused outright. */
    assert_int_equal(
        mw_token_keys_add_hs256(keys, RFC7515_RSA_PUB, strlen(RFC7515_RSA_PUB), "as-secret"),
        MW_EINVAL);
    assert_int_equal(mw_token_keys_count(keys), 1);
    free(claims);
    mw_token_keys_free(keys);
}

static void test_kid(void **state)
{
    struct mw_token_keys *keys = mw_token_keys_new();
    struct mw_token_claims c;
    const char *why;
    char *tok;

    (void)state;
    assert_int_equal(mw_token_keys_add_hs256(keys, SECRET_A, strlen(SECRET_A), "2026-11"), 0);
    assert_int_equal(mw_token_keys_add_hs256(keys, SECRET_B, strlen(SECRET_B), "2026-12"), 0);
    /* Rotation: both keys accepted, each under its kid. */
    tok = mint_extra(SECRET_A, "2026-11", "");
    assert_int_equal(verify_at(keys, NULL, tok, NOW, &c, &why), 0);
    assert_string_equal(c.kid, "2026-11");
    mw_free(tok);
    tok = mint_extra(SECRET_B, "2026-12", "");
    assert_int_equal(verify_at(keys, NULL, tok, NOW, &c, &why), 0);
    assert_string_equal(c.kid, "2026-12");
    mw_free(tok);
    /* Without kid every HS256 key is tried. */
    tok = mint_extra(SECRET_B, NULL, "");
    assert_int_equal(verify_at(keys, NULL, tok, NOW, &c, &why), 0);
    assert_string_equal(c.kid, "2026-12");
    mw_free(tok);
    /* A kid names exactly one key: the other key's signature fails. */
    tok = mint_extra(SECRET_B, "2026-11", "");
    EXPECT_REFUSED(keys, NULL, tok, NOW, "bad signature");
    mw_free(tok);
    tok = mint_extra(SECRET_A, "2027-01", "");
    EXPECT_REFUSED(keys, NULL, tok, NOW, "unknown kid");
    mw_free(tok);
    /* A kid no configured key can have (empty, too long, not a string). */
    tok = forge(SECRET_A, strlen(SECRET_A), "{\"alg\":\"HS256\",\"kid\":\"\"}",
                "{\"sub\":\"a\",\"exp\":1900000000}");
    EXPECT_REFUSED(keys, NULL, tok, NOW, "unknown kid");
    mw_free(tok);
    tok = forge(SECRET_A, strlen(SECRET_A),
                "{\"alg\":\"HS256\",\"kid\":\"0123456789012345678901234567890123456789012345678901"
                "234567890123456789\"}",
                "{\"sub\":\"a\",\"exp\":1900000000}");
    EXPECT_REFUSED(keys, NULL, tok, NOW, "unknown kid");
    mw_free(tok);
    tok = forge(SECRET_A, strlen(SECRET_A), "{\"alg\":\"HS256\",\"kid\":1}",
                "{\"sub\":\"a\",\"exp\":1900000000}");
    EXPECT_REFUSED(keys, NULL, tok, NOW, "kid is not a string");
    mw_free(tok);
    mw_token_keys_free(keys);
}

static void test_aud_iss(void **state)
{
    struct mw_token_keys *keys = keys_hs(SECRET_A, NULL);
    struct mw_token_policy p, none;
    char *tok;

    (void)state;
    mw_token_policy_init(&p);
    mw_token_policy_init(&none);
    p.audience = "matchwire";
    p.issuer = "https://auth.example";
    static const struct {
        const char *extra, *why; /* why NULL: accepted */
    } cases[] = {
        {"\"aud\":\"matchwire\",\"iss\":\"https://auth.example\"", NULL},
        {"\"aud\":[\"other\",\"matchwire\"],\"iss\":\"https://auth.example\"", NULL},
        {"\"aud\":\"Matchwire\",\"iss\":\"https://auth.example\"", "wrong aud"},
        {"\"aud\":[\"other\"],\"iss\":\"https://auth.example\"", "wrong aud"},
        {"\"aud\":[],\"iss\":\"https://auth.example\"", "wrong aud"},
        {"\"aud\":[\"matchwire\",1],\"iss\":\"https://auth.example\"",
         "aud is not a string or array"},
        {"\"aud\":{\"a\":\"matchwire\"},\"iss\":\"https://auth.example\"",
         "aud is not a string or array"},
        {"\"iss\":\"https://auth.example\"", "missing aud"},
        {"\"aud\":\"matchwire\",\"iss\":\"https://evil.example\"", "wrong iss"},
        {"\"aud\":\"matchwire\",\"iss\":1", "wrong iss"},
        {"\"aud\":\"matchwire\"", "missing iss"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tok = mint_extra(SECRET_A, NULL, cases[i].extra);
        if (cases[i].why)
            EXPECT_REFUSED(keys, &p, tok, NOW, cases[i].why);
        else
            EXPECT_OK(keys, &p, tok, NOW);
        mw_free(tok);
    }
    /* No audience configured: a token for some audience is not for us
     * (RFC 7519 4.1.3); iss is then not checked. */
    tok = mint_extra(SECRET_A, NULL, "\"aud\":\"matchwire\"");
    EXPECT_REFUSED(keys, &none, tok, NOW, "aud present but no audience configured");
    mw_free(tok);
    tok = mint_extra(SECRET_A, NULL, "\"iss\":\"anyone\"");
    EXPECT_OK(keys, &none, tok, NOW);
    mw_free(tok);
    mw_token_keys_free(keys);
}

static void test_sub(void **state)
{
    struct mw_token_keys *keys = keys_hs(SECRET_A, NULL);
    char claims[400], *tok;
    char s128[129], s129[130];

    (void)state;
    memset(s128, 'p', 128);
    s128[128] = '\0';
    memset(s129, 'p', 129);
    s129[129] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":1900000000}", s128);
    tok = mint(SECRET_A, NULL, claims);
    EXPECT_OK(keys, NULL, tok, NOW);
    mw_free(tok);
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":1900000000}", s129);
    tok = mint(SECRET_A, NULL, claims);
    EXPECT_REFUSED(keys, NULL, tok, NOW, "sub is not a valid playerId");
    mw_free(tok);
    tok = mint(SECRET_A, NULL, "{\"sub\":\"\",\"exp\":1900000000}");
    EXPECT_REFUSED(keys, NULL, tok, NOW, "sub is not a valid playerId");
    mw_free(tok);
    tok = mint(SECRET_A, NULL, "{\"exp\":1900000000}");
    EXPECT_REFUSED(keys, NULL, tok, NOW, "missing sub");
    mw_free(tok);
    tok = mint(SECRET_A, NULL, "{\"sub\":42,\"exp\":1900000000}");
    EXPECT_REFUSED(keys, NULL, tok, NOW, "sub is not a string");
    mw_free(tok);
    /* \u0000 inside sub: not strict I-JSON (it would truncate the id). */
    tok = mint(SECRET_A, NULL, "{\"sub\":\"alice\\u0000bob\",\"exp\":1900000000}");
    EXPECT_REFUSED(keys, NULL, tok, NOW, "claims are not strict JSON");
    mw_free(tok);
    /* Invalid UTF-8 in sub. */
    tok = mint(SECRET_A, NULL, "{\"sub\":\"\xc3\x28\",\"exp\":1900000000}");
    EXPECT_REFUSED(keys, NULL, tok, NOW, "claims are not strict JSON");
    mw_free(tok);
    mw_token_keys_free(keys);
}

static void test_size(void **state)
{
    struct mw_token_keys *keys = keys_hs(SECRET_A, NULL);
    char *claims = malloc(4096), *tok = NULL;
    size_t pad;

    (void)state;
    assert_non_null(claims);
    /* Grow a padding claim until the token is exactly 4,096 bytes. */
    for (pad = 2000; pad < 4000; pad++) {
        snprintf(claims, 4096, "{\"sub\":\"a\",\"exp\":1900000000,\"pad\":\"%0*d\"}", (int)pad, 0);
        tok = mint(SECRET_A, NULL, claims);
        if (strlen(tok) >= MW_TOKEN_MAX_BYTES)
            break;
        mw_free(tok);
        tok = NULL;
    }
    assert_non_null(tok);
    if (strlen(tok) == MW_TOKEN_MAX_BYTES) {
        EXPECT_OK(keys, NULL, tok, NOW);
        mw_free(tok);
        snprintf(claims, 4096, "{\"sub\":\"a\",\"exp\":1900000000,\"pad\":\"%0*d\"}", (int)pad + 1,
                 0);
        tok = mint(SECRET_A, NULL, claims);
    }
    assert_true(strlen(tok) > MW_TOKEN_MAX_BYTES);
    EXPECT_REFUSED(keys, NULL, tok, NOW, "token too large");
    mw_free(tok);
    free(claims);
    EXPECT_REFUSED(keys, NULL, "", NOW, "empty token");
    mw_token_keys_free(keys);
}

static void test_form_and_base64url(void **state)
{
    struct mw_token_keys *keys = keys_hs(SECRET_A, NULL);
    char *good = mint_extra(SECRET_A, NULL, ""), *t;
    size_t n = strlen(good), d1 = (size_t)(strchr(good, '.') - good);
    char buf[2048];

    (void)state;
    EXPECT_OK(keys, NULL, good, NOW);
    /* Segment structure. */
    EXPECT_REFUSED(keys, NULL, "abc", NOW, "not a compact JWS");
    EXPECT_REFUSED(keys, NULL, "a.b", NOW, "not a compact JWS");
    EXPECT_REFUSED(keys, NULL, ".b.c", NOW, "not a compact JWS");
    EXPECT_REFUSED(keys, NULL, "a.b.", NOW, "not a compact JWS");
    snprintf(buf, sizeof(buf), "%s.x", good); /* trailing garbage: a fourth segment */
    EXPECT_REFUSED(keys, NULL, buf, NOW, "not a compact JWS");
    snprintf(buf, sizeof(buf), "%s.", good);
    EXPECT_REFUSED(keys, NULL, buf, NOW, "not a compact JWS");
    /* Bytes that are not base64url, in each segment. */
    snprintf(buf, sizeof(buf), "%s ", good);
    EXPECT_REFUSED(keys, NULL, buf, NOW, "signature is not base64url");
    snprintf(buf, sizeof(buf), "%s=", good);
    EXPECT_REFUSED(keys, NULL, buf, NOW, "signature is not base64url");
    snprintf(buf, sizeof(buf), "%s", good);
    buf[1] = '+';
    EXPECT_REFUSED(keys, NULL, buf, NOW, "header is not base64url");
    snprintf(buf, sizeof(buf), "%s", good);
    buf[d1 + 3] = '/';
    EXPECT_REFUSED(keys, NULL, buf, NOW, "payload is not base64url");
    /* An HMAC signature is 32 bytes = 43 characters, the last one carrying
     * 2 unused bits: setting them is a non-canonical spelling. */
    snprintf(buf, sizeof(buf), "%s", good);
    {
        static const char alpha[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int v = (int)(strchr(alpha, buf[n - 1]) - alpha);
        buf[n - 1] = alpha[v | 1];
    }
    EXPECT_REFUSED(keys, NULL, buf, NOW, "signature is not base64url");
    /* Embedded NUL: the length, not strlen, is what counts. */
    {
        struct mw_token_claims c;
        const char *why = NULL;
        memcpy(buf, good, n + 1);
        buf[5] = '\0';
        assert_int_equal(mw_token_verify(keys, NULL, buf, n, NOW, &c, &why), MW_EAUTH);
    }
    /* Header not an object, not strict JSON, with duplicate members. */
    static const struct {
        const char *header, *why;
    } hdrs[] = {
        {"[\"HS256\"]", "header is not a JSON object"},
        {"{\"alg\":\"HS256\",}", "header is not strict JSON"},
        {"{\"alg\":\"HS256\"} ", NULL}, /* trailing whitespace is JSON */
        {"{\"alg\":\"HS256\"}x", "header is not strict JSON"},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", "header is not strict JSON"},
        {"{\"alg\":\"none\",\"alg\":\"HS256\"}", "header is not strict JSON"},
        {"{\"ALG\":\"HS256\"}", "header has no alg"},
        {"{\"alg\":[\"HS256\"]}", "header has no alg"},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "crit header not supported"},
        {"{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", "typ is not JWT"},
        {"{\"alg\":\"HS256\",\"typ\":1}", "typ is not JWT"},
        {"{\"alg\":\"HS256\",\"cty\":\"JWT\"}", "nested token not supported"},
        {"{\"alg\":\"HS256\",\"b64\":false}", NULL}, /* without crit: ignored */
        {"{\"alg\":\"HS256\",\"typ\":\"jwt\"}", NULL},
        {"{\"alg\":\"HS256\",\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}}", NULL}, /* never used */
    };
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        char *claims = claims_with("");
        t = forge(SECRET_A, strlen(SECRET_A), hdrs[i].header, claims);
        free(claims);
        if (hdrs[i].why)
            EXPECT_REFUSED(keys, NULL, t, NOW, hdrs[i].why);
        else
            EXPECT_OK(keys, NULL, t, NOW);
        mw_free(t);
    }
    /* Claims: duplicates, trailing garbage, not an object, lax JSON. */
    static const char *const bad_claims[] = {
        "{\"sub\":\"alice\",\"sub\":\"bob\",\"exp\":1900000000}",
        "{\"sub\":\"alice\",\"exp\":1900000000}x",
        "{\"sub\":\"alice\",\"exp\":1900000000}{}",
        "{\"sub\":\"alice\",\"exp\":01900000000}",
        "{'sub':'alice','exp':1900000000}",
        "",
    };
    for (size_t i = 0; i < sizeof(bad_claims) / sizeof(bad_claims[0]); i++) {
        t = forge(SECRET_A, strlen(SECRET_A), "{\"alg\":\"HS256\"}", bad_claims[i]);
        EXPECT_REFUSED(keys, NULL, t, NOW, "claims are not strict JSON");
        mw_free(t);
    }
    t = forge(SECRET_A, strlen(SECRET_A), "{\"alg\":\"HS256\"}", "[\"alice\"]");
    EXPECT_REFUSED(keys, NULL, t, NOW, "claims are not a JSON object");
    mw_free(t);
    mw_free(good);
    mw_token_keys_free(keys);
}

/* ---- key set, signing, service token ------------------------------------ */

static void test_key_set(void **state)
{
    struct mw_token_keys *keys = mw_token_keys_new();
    EVP_PKEY *small = EVP_RSA_gen(1024);
    char *small_pem, kid[8], long_kid[MW_TOKEN_KID_MAX + 2];
    char big_secret[MW_TOKEN_SECRET_MAX + 1];

    (void)state;
    assert_non_null(small);
    small_pem = rsa_pem(small, false);
    mw_token_keys_free(NULL);
    assert_int_equal(mw_token_keys_count(NULL), 0);
    assert_int_equal(mw_token_keys_add_hs256(NULL, SECRET_A, 32, NULL), MW_EINVAL);
    assert_int_equal(mw_token_keys_add_pem(NULL, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PUB,
                                           strlen(RFC8037_ED_PUB), NULL),
                     MW_EINVAL);
    /* Secrets: 32..1024 bytes, not a PEM text. */
    assert_int_equal(mw_token_keys_add_hs256(keys, SECRET_A, 31, NULL), MW_EINVAL);
    assert_int_equal(mw_token_keys_add_hs256(keys, NULL, 32, NULL), MW_EINVAL);
    memset(big_secret, 's', sizeof(big_secret));
    assert_int_equal(mw_token_keys_add_hs256(keys, big_secret, sizeof(big_secret), NULL),
                     MW_EINVAL);
    assert_int_equal(mw_token_keys_add_hs256(keys, big_secret, MW_TOKEN_SECRET_MAX, NULL), 0);
    assert_int_equal(mw_token_keys_add_hs256(keys, SECRET_A, 32, NULL), 0); /* no kid: fine */
    /* kids: 1..64 visible ASCII, unique. */
    assert_int_equal(mw_token_keys_add_hs256(keys, SECRET_A, 32, ""), MW_EINVAL);
    assert_int_equal(mw_token_keys_add_hs256(keys, SECRET_A, 32, "a b"), MW_EINVAL);
    memset(long_kid, 'k', sizeof(long_kid) - 1);
    long_kid[sizeof(long_kid) - 1] = '\0';
    assert_int_equal(mw_token_keys_add_hs256(keys, SECRET_A, 32, long_kid), MW_EINVAL);
    long_kid[MW_TOKEN_KID_MAX] = '\0';
    assert_int_equal(mw_token_keys_add_hs256(keys, SECRET_A, 32, long_kid), 0);
    assert_int_equal(mw_token_keys_add_hs256(keys, SECRET_B, strlen(SECRET_B), long_kid),
                     MW_EEXIST);
    /* PEM keys must fit their algorithm. */
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_EDDSA, RFC7515_RSA_PUB,
                                           strlen(RFC7515_RSA_PUB), NULL),
                     MW_EINVAL);
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_RS256, RFC8037_ED_PUB,
                                           strlen(RFC8037_ED_PUB), NULL),
                     MW_EINVAL);
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_HS256, RFC7515_RSA_PUB,
                                           strlen(RFC7515_RSA_PUB), NULL),
                     MW_EINVAL);
    assert_int_equal(
        mw_token_keys_add_pem(keys, MW_TOKEN_ALG_RS256, small_pem, strlen(small_pem), NULL),
        MW_EINVAL); /* 1,024 bits */
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PRIV,
                                           strlen(RFC8037_ED_PRIV), NULL),
                     MW_EINVAL); /* a private key where a public one is meant */
    assert_int_equal(
        mw_token_keys_add_pem(keys, MW_TOKEN_ALG_EDDSA, "-----BEGIN PUBLIC KEY-----\n", 27, NULL),
        MW_EINVAL);
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PUB,
                                           strlen(RFC8037_ED_PUB) - 30, NULL),
                     MW_EINVAL); /* truncated */
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PUB,
                                           strlen(RFC8037_ED_PUB), long_kid),
                     MW_EEXIST);
    assert_int_equal(mw_token_keys_count(keys), 3);
    /* At most MW_TOKEN_KEYS_MAX keys. */
    for (int i = 3; i < MW_TOKEN_KEYS_MAX; i++) {
        snprintf(kid, sizeof(kid), "k%d", i);
        assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PUB,
                                               strlen(RFC8037_ED_PUB), kid),
                         0);
    }
    assert_int_equal(mw_token_keys_add_hs256(keys, SECRET_B, strlen(SECRET_B), "one-more"),
                     MW_ELIMIT);
    assert_int_equal(mw_token_keys_count(keys), MW_TOKEN_KEYS_MAX);
    free(small_pem);
    EVP_PKEY_free(small);
    mw_token_keys_free(keys);
}

static void test_sign_roundtrip(void **state)
{
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    char *priv, *pub;
    struct mw_token_keys *keys = mw_token_keys_new();
    struct mw_token_claims c;
    struct mw_buf claims, tok;
    const char *why;

    (void)state;
    assert_non_null(rsa);
    priv = rsa_pem(rsa, true);
    pub = rsa_pem(rsa, false);
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_RS256, pub, strlen(pub), "r1"), 0);
    assert_int_equal(mw_token_keys_add_pem(keys, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PUB,
                                           strlen(RFC8037_ED_PUB), "e1"),
                     0);
    mw_buf_init(&claims, 0);
    assert_int_equal(mw_token_write_claims(&claims, "bob", "mw", "iss\"x", NOW, 60), 0);
    assert_string_equal(claims.data, "{\"sub\":\"bob\",\"iat\":1800000000,\"exp\":1800000060,"
                                     "\"aud\":\"mw\",\"iss\":\"iss\\\"x\"}");
    struct mw_token_policy p;
    mw_token_policy_init(&p);
    p.audience = "mw";
    p.issuer = "iss\"x";
    /* RS256 */
    mw_buf_init(&tok, 0);
    assert_int_equal(mw_token_sign_pem(&tok, MW_TOKEN_ALG_RS256, priv, strlen(priv), "r1",
                                       claims.data, claims.len),
                     0);
    assert_int_equal(verify_at(keys, &p, tok.data, NOW, &c, &why), 0);
    assert_string_equal(c.sub, "bob");
    assert_int_equal(c.alg, MW_TOKEN_ALG_RS256);
    assert_string_equal(c.kid, "r1");
    mw_buf_release(&tok);
    /* EdDSA, no kid: found by algorithm. */
    mw_buf_init(&tok, 0);
    assert_int_equal(mw_token_sign_pem(&tok, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PRIV,
                                       strlen(RFC8037_ED_PRIV), NULL, claims.data, claims.len),
                     0);
    assert_int_equal(verify_at(keys, &p, tok.data, NOW, &c, &why), 0);
    assert_int_equal(c.alg, MW_TOKEN_ALG_EDDSA);
    assert_string_equal(c.kid, "e1");
    /* The RS256 key's kid on an EdDSA token: refused (key bound to RS256). */
    mw_buf_reset(&tok);
    assert_int_equal(mw_token_sign_pem(&tok, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PRIV,
                                       strlen(RFC8037_ED_PRIV), "r1", claims.data, claims.len),
                     0);
    EXPECT_REFUSED(keys, &p, tok.data, NOW, "algorithm not allowed for this key");
    /* Signing errors leave the buffer as it was. */
    mw_buf_reset(&tok);
    assert_int_equal(mw_buf_puts(&tok, "keep"), 0);
    assert_int_equal(mw_token_sign_pem(&tok, MW_TOKEN_ALG_RS256, RFC8037_ED_PRIV,
                                       strlen(RFC8037_ED_PRIV), NULL, "x", 1),
                     MW_EINVAL);
    assert_int_equal(mw_token_sign_pem(&tok, MW_TOKEN_ALG_EDDSA, priv, strlen(priv), NULL, "x", 1),
                     MW_EINVAL);
    assert_int_equal(mw_token_sign_pem(&tok, MW_TOKEN_ALG_HS256, priv, strlen(priv), NULL, "x", 1),
                     MW_EINVAL);
    assert_int_equal(mw_token_sign_hs256(&tok, "short", 5, NULL, "x", 1), MW_EINVAL);
    assert_int_equal(mw_token_sign_hs256(&tok, SECRET_A, 32, "bad kid", "x", 1), MW_EINVAL);
    assert_string_equal(tok.data, "keep");
    {
        struct mw_buf small;
        mw_buf_init(&small, 40);
        assert_int_equal(mw_token_sign_hs256(&small, SECRET_A, 32, NULL, "x", 1), MW_ELIMIT);
        assert_true(small.len == 0);
        mw_buf_release(&small);
    }
    /* An encrypted private key is unreadable without prompting for a pass
     * phrase (the signer never asks). */
    {
        BIO *bio = BIO_new(BIO_s_mem());
        char *data;
        long n;
        assert_non_null(bio);
        assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, rsa, EVP_aes_128_cbc(), NULL, 0, NULL,
                                                       (void *)"pass phrase"),
                         1);
        n = BIO_get_mem_data(bio, &data);
        assert_int_equal(mw_token_sign_pem(&tok, MW_TOKEN_ALG_RS256, data, (size_t)n, NULL, "x", 1),
                         MW_EINVAL);
        BIO_free(bio);
    }
    /* Claims writer arguments. */
    assert_int_equal(mw_token_write_claims(&tok, "", NULL, NULL, NOW, 60), MW_EINVAL);
    assert_int_equal(mw_token_write_claims(&tok, "a", NULL, NULL, NOW, 0), MW_EINVAL);
    assert_int_equal(mw_token_write_claims(&tok, "a", NULL, NULL, INT64_MAX, 60), MW_EINVAL);
    assert_string_equal(tok.data, "keep");
    mw_buf_release(&tok);
    mw_buf_release(&claims);
    free(priv);
    free(pub);
    EVP_PKEY_free(rsa);
    mw_token_keys_free(keys);
}

static void test_service_and_secret(void **state)
{
    (void)state;
    assert_true(mw_token_service_equal(SECRET_A, 32, SECRET_A, 32));
    assert_false(mw_token_service_equal(SECRET_A, 32, SECRET_A, 31));
    assert_false(mw_token_service_equal(SECRET_A, 32, SECRET_B, 32));
    assert_false(mw_token_service_equal(SECRET_A, 32, "", 0));
    assert_false(mw_token_service_equal("", 0, "", 0)); /* no expected token: nothing matches */
    assert_false(mw_token_service_equal(NULL, 0, "x", 1));
    assert_int_equal(mw_token_secret_trim("abc\n", 4), 3);
    assert_int_equal(mw_token_secret_trim("abc\r\n", 5), 3);
    assert_int_equal(mw_token_secret_trim("abc\n\n", 5), 4); /* one newline only */
    assert_int_equal(mw_token_secret_trim("abc", 3), 3);
    assert_int_equal(mw_token_secret_trim("\n", 1), 0);
    assert_int_equal(mw_token_secret_trim("", 0), 0);
    assert_string_equal(mw_token_alg_name(MW_TOKEN_ALG_EDDSA), "EdDSA");
    assert_string_equal(mw_token_alg_name(MW_TOKEN_ALG_NONE), "none");
    assert_string_equal(mw_strerror(MW_EAUTH), "authentication failed");
}

/* Every allocation of a verification, a key-set build and a signature fails
 * in turn: the result is the normal one or MW_ENOMEM, nothing leaks (ASan). */
static void test_oom(void **state)
{
    struct mw_token_keys *keys = keys_hs(SECRET_A, "k1");
    struct mw_token_policy p;
    char *tok = mint_extra(SECRET_A, "k1", "\"aud\":[\"x\",\"mw\"],\"nbf\":1,\"iat\":2");
    bool done = false;

    (void)state;
    mw_token_policy_init(&p);
    p.audience = "mw";
    for (long n = 0; n < 200 && !done; n++) {
        struct mw_token_claims c;
        const char *why = NULL;
        int rc;
        mw_alloc_fail_after(n);
        rc = mw_token_verify(keys, &p, tok, strlen(tok), NOW, &c, &why);
        mw_alloc_fail_reset();
        if (rc == 0) {
            assert_string_equal(c.sub, "alice");
            done = true;
        } else {
            assert_int_equal(rc, MW_ENOMEM); /* never mistaken for a bad token */
        }
    }
    assert_true(done);
    done = false;
    for (long n = 0; n < 50 && !done; n++) {
        struct mw_token_keys *k;
        int rc = MW_ENOMEM;
        mw_alloc_fail_after(n);
        k = mw_token_keys_new();
        if (k)
            rc = mw_token_keys_add_hs256(k, SECRET_B, strlen(SECRET_B), "k");
        mw_alloc_fail_reset();
        if (rc == 0) {
            assert_int_equal(mw_token_keys_count(k), 1);
            done = true;
        } else {
            assert_int_equal(rc, MW_ENOMEM);
            if (k)
                assert_int_equal(mw_token_keys_count(k), 0);
        }
        mw_token_keys_free(k);
    }
    assert_true(done);
    done = false;
    for (long n = 0; n < 50 && !done; n++) {
        struct mw_buf b;
        int rc;
        mw_buf_init(&b, 0);
        mw_alloc_fail_after(n);
        rc = mw_token_sign_pem(&b, MW_TOKEN_ALG_EDDSA, RFC8037_ED_PRIV, strlen(RFC8037_ED_PRIV),
                               "e", "{}", 2);
        mw_alloc_fail_reset();
        if (rc == 0)
            done = true;
        else
            assert_int_equal(rc, MW_ENOMEM);
        mw_buf_release(&b);
    }
    assert_true(done);
    mw_free(tok);
    mw_token_keys_free(keys);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_rfc7515_a1_hs256),
        cmocka_unit_test(test_rfc7515_a2_rs256),
        cmocka_unit_test(test_rfc8037_a4_eddsa),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_time_edges),
        cmocka_unit_test(test_wrong_signature),
        cmocka_unit_test(test_alg_none_and_unconfigured),
        cmocka_unit_test(test_hs256_with_rsa_public_key),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_aud_iss),
        cmocka_unit_test(test_sub),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_form_and_base64url),
        cmocka_unit_test(test_key_set),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_service_and_secret),
        cmocka_unit_test(test_oom),
    };
    mw_alloc_set(NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
