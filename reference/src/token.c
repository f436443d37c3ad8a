/* token: JWS/JWT verification for player tokens (spec/auth.md), service-token
 * comparison, and HS256/RS256/EdDSA signing for the dev command and tests. */
#include "token.h"

#include <math.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "alloc.h"
#include "error.h"
#include "json.h"

/* Largest decoded segment: a 4,096-byte token has at most 4,094 base64url
 * characters in one segment. */
#define SEG_MAX       (MW_TOKEN_MAX_BYTES / 4 * 3 + 3)
#define HEADER_DEPTH  4    /* a JOSE header is flat; a little room for `crit` arrays */
#define SIG_MAX_BYTES 1024 /* RSA up to 8,192 bits */

struct token_key {
    enum mw_token_alg alg;
    char kid[MW_TOKEN_KID_MAX + 1]; /* "" when the key has none */
    unsigned char *secret;          /* HS256: owned, wiped on free */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS256, EdDSA: owned */
};

struct mw_token_keys {
    size_t n;
    struct token_key k[MW_TOKEN_KEYS_MAX];
};

static int fail(const char **why, int rc, const char *reason)
{
    if (why)
        *why = reason;
    return rc;
}

const char *mw_token_alg_name(enum mw_token_alg alg)
{
    switch (alg) {
    case MW_TOKEN_ALG_HS256:
        return "HS256";
    case MW_TOKEN_ALG_RS256:
        return "RS256";
    case MW_TOKEN_ALG_EDDSA:
        return "EdDSA";
    default:
        return "none";
    }
}

/* The JWS `alg` header value, exactly (names are case-sensitive, RFC 7515
 * 4.1.1); MW_TOKEN_ALG_NONE for "none" and every other name. */
static enum mw_token_alg alg_from_name(const char *s)
{
    if (strcmp(s, "HS256") == 0)
        return MW_TOKEN_ALG_HS256;
    if (strcmp(s, "RS256") == 0)
        return MW_TOKEN_ALG_RS256;
    if (strcmp(s, "EdDSA") == 0)
        return MW_TOKEN_ALG_EDDSA;
    return MW_TOKEN_ALG_NONE;
}

/* ====================================================================== */
/* base64url                                                              */
/* ====================================================================== */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int mw_base64url_decode(const char *in, size_t n, unsigned char *out, size_t *outlen)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t i, o = 0;

    if (n % 4 == 1)
        return MW_EINVAL; /* 6 bits cannot end a byte */
    for (i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return MW_EINVAL;
        acc = ((acc << 6) | (uint32_t)v) & 0xFFFFFFu;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* Canonical form: the bits past the last whole byte are zero (RFC 4648
     * 3.5), so one byte string has exactly one encoding. */
    if (bits && (acc & ((1u << bits) - 1)))
        return MW_EINVAL;
    *outlen = o;
    return 0;
}

int mw_base64url_encode(struct mw_buf *out, const void *in, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t start = out->len, i;
    char q[4];
    int rc = 0;

    for (i = 0; i + 3 <= n && !rc; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        q[0] = alphabet[v >> 18];
        q[1] = alphabet[(v >> 12) & 63];
        q[2] = alphabet[(v >> 6) & 63];
        q[3] = alphabet[v & 63];
        rc = mw_buf_append(out, q, 4);
    }
    if (!rc && n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        q[0] = alphabet[v >> 18];
        q[1] = alphabet[(v >> 12) & 63];
        rc = mw_buf_append(out, q, 2);
    } else if (!rc && n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        q[0] = alphabet[v >> 18];
        q[1] = alphabet[(v >> 12) & 63];
        q[2] = alphabet[(v >> 6) & 63];
        rc = mw_buf_append(out, q, 3);
    }
    if (rc && out->data) {
        out->len = start;
        out->data[start] = '\0';
    }
    return rc;
}

/* ====================================================================== */
/* key set                                                                */
/* ====================================================================== */

/* 1..MW_TOKEN_KID_MAX bytes of visible ASCII (0x21..0x7E). */
static bool kid_ok(const char *kid)
{
    size_t n = strlen(kid), i;

    if (n < 1 || n > MW_TOKEN_KID_MAX)
        return false;
    for (i = 0; i < n; i++)
        if ((unsigned char)kid[i] < 0x21 || (unsigned char)kid[i] > 0x7E)
            return false;
    return true;
}

/* 0, or the error a new key with this kid gets. */
static int check_new_key(const struct mw_token_keys *keys, const char *kid)
{
    size_t i;

    if (!keys)
        return MW_EINVAL;
    if (kid && !kid_ok(kid))
        return MW_EINVAL;
    if (keys->n >= MW_TOKEN_KEYS_MAX)
        return MW_ELIMIT;
    for (i = 0; kid && i < keys->n; i++)
        if (strcmp(keys->k[i].kid, kid) == 0)
            return MW_EEXIST;
    return 0;
}

struct mw_token_keys *mw_token_keys_new(void)
{
    return mw_calloc(1, sizeof(struct mw_token_keys));
}

void mw_token_keys_free(struct mw_token_keys *keys)
{
    size_t i;

    if (!keys)
        return;
    for (i = 0; i < keys->n; i++) {
        if (keys->k[i].secret) {
            OPENSSL_cleanse(keys->k[i].secret, keys->k[i].secret_len);
            mw_free(keys->k[i].secret);
        }
        EVP_PKEY_free(keys->k[i].pkey);
    }
    mw_free(keys);
}

size_t mw_token_keys_count(const struct mw_token_keys *keys)
{
    return keys ? keys->n : 0;
}

static bool secret_ok(const void *secret, size_t len)
{
    static const char pem_start[] = "-----BEGIN";

    if (!secret || len < MW_TOKEN_SECRET_MIN || len > MW_TOKEN_SECRET_MAX)
        return false;
    /* A PEM text is a key file given where a secret was meant (AUTH-022). */
    return memcmp(secret, pem_start, sizeof(pem_start) - 1) != 0;
}

int mw_token_keys_add_hs256(struct mw_token_keys *keys, const void *secret, size_t len,
                            const char *kid)
{
    struct token_key *k;
    int rc = check_new_key(keys, kid);

    if (rc)
        return rc;
    if (!secret_ok(secret, len))
        return MW_EINVAL;
    k = &keys->k[keys->n];
    memset(k, 0, sizeof(*k));
    k->secret = mw_malloc(len);
    if (!k->secret)
        return MW_ENOMEM;
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    k->alg = MW_TOKEN_ALG_HS256;
    if (kid)
        memcpy(k->kid, kid, strlen(kid) + 1);
    keys->n++;
    return 0;
}

/* Never prompts for a pass phrase: an encrypted PEM is simply unreadable. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Whether pkey is usable for alg (type, and size for RSA). */
static bool pkey_fits(EVP_PKEY *pkey, enum mw_token_alg alg)
{
    if (alg == MW_TOKEN_ALG_RS256)
        return EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) >= MW_TOKEN_RSA_MIN_BITS &&
               EVP_PKEY_get_size(pkey) <= SIG_MAX_BYTES;
    if (alg == MW_TOKEN_ALG_EDDSA)
        return EVP_PKEY_is_a(pkey, "ED25519");
    return false;
}

/* Reads one PEM key (public or private) from pem[0..len). NULL when
 * unreadable. Leaves OpenSSL's error queue empty. */
static EVP_PKEY *read_pem(const char *pem, size_t len, bool private_key)
{
    EVP_PKEY *pkey = NULL;
    BIO *bio;

    if (!pem || len == 0 || len > MW_TOKEN_PEM_MAX)
        return NULL;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio) {
        pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL)
                           : PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL);
        BIO_free(bio);
    }
    ERR_clear_error();
    return pkey;
}

int mw_token_keys_add_pem(struct mw_token_keys *keys, enum mw_token_alg alg, const char *pem,
                          size_t len, const char *kid)
{
    struct token_key *k;
    EVP_PKEY *pkey;
    int rc = check_new_key(keys, kid);

    if (rc)
        return rc;
    if (alg != MW_TOKEN_ALG_RS256 && alg != MW_TOKEN_ALG_EDDSA)
        return MW_EINVAL;
    pkey = read_pem(pem, len, false);
    if (!pkey)
        return MW_EINVAL;
    if (!pkey_fits(pkey, alg)) {
        EVP_PKEY_free(pkey);
        return MW_EINVAL;
    }
    k = &keys->k[keys->n];
    memset(k, 0, sizeof(*k));
    k->pkey = pkey;
    k->alg = alg;
    if (kid)
        memcpy(k->kid, kid, strlen(kid) + 1);
    keys->n++;
    return 0;
}

/* ====================================================================== */
/* JWS verification                                                       */
/* ====================================================================== */

/* Whether sig[0..slen) is key k's signature of in[0..ilen). */
static int check_signature(const struct token_key *k, const char *in, size_t ilen,
                           const unsigned char *sig, size_t slen, bool *ok)
{
    *ok = false;
    if (k->alg == MW_TOKEN_ALG_HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)in, ilen, mac,
                  &maclen)) {
            ERR_clear_error();
            return MW_ENOMEM;
        }
        /* The length is public (32); the contents are compared in constant
         * time (AUTH-026). */
        *ok = slen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
        OPENSSL_cleanse(mac, sizeof(mac));
        return 0;
    } else {
        const EVP_MD *md = k->alg == MW_TOKEN_ALG_RS256 ? EVP_sha256() : NULL;
        EVP_MD_CTX *ctx;
        if (k->alg == MW_TOKEN_ALG_EDDSA && slen != 64)
            return 0;
        if (k->alg == MW_TOKEN_ALG_RS256 && slen != (size_t)EVP_PKEY_get_size(k->pkey))
            return 0;
        ctx = EVP_MD_CTX_new();
        if (!ctx)
            return MW_ENOMEM;
        if (EVP_DigestVerifyInit(ctx, NULL, md, NULL, k->pkey) == 1)
            *ok = EVP_DigestVerify(ctx, sig, slen, (const unsigned char *)in, ilen) == 1;
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
        return 0;
    }
}

/* The JOSE header facts the verifier uses. */
struct jose_header {
    enum mw_token_alg alg;
    bool has_kid;
    char kid[MW_TOKEN_KID_MAX + 1];
};

/* ASCII case-insensitive equality of NUL-terminated a and b. */
static bool ascii_case_equal(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

/* Parses the decoded header h[0..n) (AUTH-023). */
static int parse_header(const char *h, size_t n, struct jose_header *hdr, const char **why)
{
    cJSON *tree = NULL;
    const cJSON *v;
    int rc = mw_json_parse(h, n, HEADER_DEPTH, &tree, NULL);

    if (rc == MW_ENOMEM)
        return fail(why, MW_ENOMEM, "out of memory");
    if (rc)
        return fail(why, MW_EAUTH, "header is not strict JSON");
    rc = MW_EAUTH;
    if (!cJSON_IsObject(tree)) {
        fail(why, rc, "header is not a JSON object");
        goto out_free_tree;
    }
    v = mw_json_get(tree, "alg");
    if (!cJSON_IsString(v)) {
        fail(why, rc, "header has no alg");
        goto out_free_tree;
    }
    hdr->alg = alg_from_name(v->valuestring);
    if (hdr->alg == MW_TOKEN_ALG_NONE) {
        fail(why, rc, "algorithm not accepted");
        goto out_free_tree;
    }
    if (mw_json_get(tree, "crit")) {
        fail(why, rc, "crit header not supported");
        goto out_free_tree;
    }
    v = mw_json_get(tree, "typ");
    if (v && (!cJSON_IsString(v) || !ascii_case_equal(v->valuestring, "JWT"))) {
        fail(why, rc, "typ is not JWT");
        goto out_free_tree;
    }
    v = mw_json_get(tree, "cty");
    if (v && (!cJSON_IsString(v) || ascii_case_equal(v->valuestring, "JWT"))) {
        fail(why, rc, "nested token not supported");
        goto out_free_tree;
    }
    v = mw_json_get(tree, "kid");
    hdr->has_kid = v != NULL;
    hdr->kid[0] = '\0';
    if (v) {
        size_t klen;
        if (!cJSON_IsString(v)) {
            fail(why, rc, "kid is not a string");
            goto out_free_tree;
        }
        klen = strlen(v->valuestring);
        /* A kid no configured key can carry matches nothing. */
        if (klen < 1 || klen > MW_TOKEN_KID_MAX) {
            fail(why, rc, "unknown kid");
            goto out_free_tree;
        }
        memcpy(hdr->kid, v->valuestring, klen + 1);
    }
    rc = 0;
out_free_tree:
    cJSON_Delete(tree);
    return rc;
}

/* Splits token into three non-empty segments (the payload may be empty):
 * dot1 and dot2 are the offsets of the two dots. */
static bool split_compact(const char *token, size_t len, size_t *dot1, size_t *dot2)
{
    const char *d1 = memchr(token, '.', len), *d2;

    if (!d1)
        return false;
    d2 = memchr(d1 + 1, '.', len - (size_t)(d1 - token) - 1);
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 - token) - 1))
        return false;
    *dot1 = (size_t)(d1 - token);
    *dot2 = (size_t)(d2 - token);
    return *dot1 > 0 && *dot2 + 1 < len;
}

int mw_token_verify_jws(const struct mw_token_keys *keys, const char *token, size_t len,
                        char **payload, size_t *payload_len, enum mw_token_alg *alg_out,
                        size_t *key_index, const char **why)
{
    unsigned char seg[SEG_MAX], sig[SEG_MAX];
    struct jose_header hdr;
    size_t dot1, dot2, n, slen, plen, i, tried = 0;
    char *pl = NULL;
    bool ok = false;
    int rc;

    *payload = NULL;
    *payload_len = 0;
    if (!token || len == 0)
        return fail(why, MW_EAUTH, "empty token");
    if (len > MW_TOKEN_MAX_BYTES)
        return fail(why, MW_EAUTH, "token too large");
    if (!split_compact(token, len, &dot1, &dot2))
        return fail(why, MW_EAUTH, "not a compact JWS");
    /* Header. */
    if (mw_base64url_decode(token, dot1, seg, &n))
        return fail(why, MW_EAUTH, "header is not base64url");
    rc = parse_header((const char *)seg, n, &hdr, why);
    if (rc)
        return rc;
    /* Signature, then payload, both decoded before any key is used. */
    if (mw_base64url_decode(token + dot2 + 1, len - dot2 - 1, sig, &slen))
        return fail(why, MW_EAUTH, "signature is not base64url");
    if (mw_base64url_decode(token + dot1 + 1, dot2 - dot1 - 1, seg, &plen))
        return fail(why, MW_EAUTH, "payload is not base64url");
    if (!keys)
        return fail(why, MW_EAUTH, "algorithm not accepted");
    /* Key choice (AUTH-022, AUTH-024): a kid names exactly one key, which
     * must be bound to the header's algorithm; without a kid every key of
     * that algorithm is tried. */
    for (i = 0; i < keys->n && !ok; i++) {
        const struct token_key *k = &keys->k[i];
        if (hdr.has_kid && strcmp(k->kid, hdr.kid) != 0)
            continue;
        if (k->alg != hdr.alg) {
            if (hdr.has_kid)
                return fail(why, MW_EAUTH, "algorithm not allowed for this key");
            continue;
        }
        tried++;
        rc = check_signature(k, token, dot2, sig, slen, &ok);
        if (rc)
            return fail(why, rc, "out of memory");
    }
    if (!ok) {
        if (tried)
            return fail(why, MW_EAUTH, "bad signature");
        return fail(why, MW_EAUTH, hdr.has_kid ? "unknown kid" : "algorithm not accepted");
    }
    i--;
    pl = mw_malloc(plen + 1);
    if (!pl)
        return fail(why, MW_ENOMEM, "out of memory");
    if (plen)
        memcpy(pl, seg, plen);
    pl[plen] = '\0';
    *payload = pl;
    *payload_len = plen;
    if (alg_out)
        *alg_out = hdr.alg;
    if (key_index)
        *key_index = i;
    return 0;
}

/* ====================================================================== */
/* JWT claims                                                             */
/* ====================================================================== */

void mw_token_policy_init(struct mw_token_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->leeway_s = MW_TOKEN_LEEWAY_DEFAULT;
}

/* A NumericDate (AUTH-032): a finite JSON number in 0..2^53-1, fractions
 * allowed. Returns false when v is present but not one; *present says
 * whether the claim was there. */
static bool numeric_date(const cJSON *obj, const char *name, double *out, bool *present)
{
    const cJSON *v = mw_json_get(obj, name);

    *present = v != NULL;
    if (!v)
        return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > MW_TOKEN_NUMERICDATE_MAX)
        return false;
    *out = v->valuedouble;
    return true;
}

/* AUTH-035: a string equal to want, or an array of strings one of which is.
 * Returns 0 or MW_EAUTH (why set). */
static int audience_check(const cJSON *aud, const char *want, const char **why)
{
    const cJSON *e;
    bool found = false;

    if (cJSON_IsString(aud))
        return strcmp(aud->valuestring, want) == 0 ? 0 : fail(why, MW_EAUTH, "wrong aud");
    if (!cJSON_IsArray(aud))
        return fail(why, MW_EAUTH, "aud is not a string or array");
    for (e = aud->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return fail(why, MW_EAUTH, "aud is not a string or array");
        found |= strcmp(e->valuestring, want) == 0;
    }
    return found ? 0 : fail(why, MW_EAUTH, "wrong aud");
}

/* Checks the claims tree at now_s; fills out. Returns 0 or MW_EAUTH. */
static int check_claims(const cJSON *c, const struct mw_token_policy *pol, int64_t now_s,
                        struct mw_token_claims *out, const char **why)
{
    const cJSON *sub, *aud, *iss;
    double exp = 0, nbf = 0, iat = 0, now = (double)now_s, lw;
    bool has_exp, has_nbf, has_iat;
    size_t n;

    if (pol->leeway_s < 0 || pol->leeway_s > MW_TOKEN_LEEWAY_MAX)
        return fail(why, MW_EAUTH, "bad leeway in policy");
    lw = (double)pol->leeway_s;
    if (!cJSON_IsObject(c))
        return fail(why, MW_EAUTH, "claims are not a JSON object");
    sub = mw_json_get(c, "sub");
    if (!sub)
        return fail(why, MW_EAUTH, "missing sub");
    if (!cJSON_IsString(sub))
        return fail(why, MW_EAUTH, "sub is not a string");
    /* Strict I-JSON already excludes NUL and invalid UTF-8 (MSG-021). */
    n = strlen(sub->valuestring);
    if (n < 1 || n > MW_PLAYER_ID_MAX)
        return fail(why, MW_EAUTH, "sub is not a valid playerId");
    if (!numeric_date(c, "exp", &exp, &has_exp) || !numeric_date(c, "nbf", &nbf, &has_nbf) ||
        !numeric_date(c, "iat", &iat, &has_iat))
        return fail(why, MW_EAUTH, "exp, nbf or iat is not a NumericDate");
    if (!has_exp)
        return fail(why, MW_EAUTH, "missing exp");
    /* AUTH-033: refused from exp + leeway on; before nbf - leeway; with an
     * iat later than now + leeway. now is whole seconds, so "now < exp +
     * leeway" is "now < ceil(exp) + leeway". */
    out->exp = (int64_t)ceil(exp);
    out->expires_at_s = out->exp + pol->leeway_s;
    if (now_s >= out->expires_at_s)
        return fail(why, MW_EAUTH, "expired");
    if (has_nbf && now + lw < nbf)
        return fail(why, MW_EAUTH, "not yet valid (nbf)");
    if (has_iat && iat > now + lw)
        return fail(why, MW_EAUTH, "issued in the future (iat)");
    aud = mw_json_get(c, "aud");
    if (pol->audience) {
        if (!aud)
            return fail(why, MW_EAUTH, "missing aud");
        if (audience_check(aud, pol->audience, why))
            return MW_EAUTH;
    } else if (aud) {
        return fail(why, MW_EAUTH, "aud present but no audience configured");
    }
    if (pol->issuer) {
        iss = mw_json_get(c, "iss");
        if (!iss)
            return fail(why, MW_EAUTH, "missing iss");
        if (!cJSON_IsString(iss) || strcmp(iss->valuestring, pol->issuer) != 0)
            return fail(why, MW_EAUTH, "wrong iss");
    }
    memcpy(out->sub, sub->valuestring, n + 1);
    return 0;
}

int mw_token_verify(const struct mw_token_keys *keys, const struct mw_token_policy *policy,
                    const char *token, size_t len, int64_t now_s, struct mw_token_claims *out,
                    const char **why)
{
    struct mw_token_policy defaults;
    struct mw_token_claims c;
    enum mw_token_alg alg = MW_TOKEN_ALG_NONE;
    cJSON *tree = NULL;
    char *payload = NULL;
    size_t plen = 0, ki = 0;
    int rc;

    if (!policy) {
        mw_token_policy_init(&defaults);
        policy = &defaults;
    }
    rc = mw_token_verify_jws(keys, token, len, &payload, &plen, &alg, &ki, why);
    if (rc)
        return rc;
    rc = mw_json_parse(payload, plen, MW_JSON_MAX_DEPTH, &tree, NULL);
    if (rc == MW_ENOMEM) {
        fail(why, rc, "out of memory");
        goto out_free_payload;
    }
    if (rc) {
        rc = fail(why, MW_EAUTH, "claims are not strict JSON");
        goto out_free_payload;
    }
    memset(&c, 0, sizeof(c));
    rc = check_claims(tree, policy, now_s, &c, why);
    if (rc)
        goto out_free_tree;
    c.alg = alg;
    memcpy(c.kid, keys->k[ki].kid, sizeof(c.kid));
    *out = c;
out_free_tree:
    cJSON_Delete(tree);
out_free_payload:
    mw_free(payload);
    return rc;
}

/* ====================================================================== */
/* service token, secrets                                                 */
/* ====================================================================== */

bool mw_token_service_equal(const void *expected, size_t elen, const void *presented, size_t plen)
{
    unsigned char a[32], b[32];
    bool eq;

    if (!expected || !presented || elen == 0)
        return false;
    if (!EVP_Digest(expected, elen, a, NULL, EVP_sha256(), NULL) ||
        !EVP_Digest(presented, plen, b, NULL, EVP_sha256(), NULL)) {
        ERR_clear_error();
        return false;
    }
    eq = CRYPTO_memcmp(a, b, sizeof(a)) == 0;
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    return eq;
}

size_t mw_token_secret_trim(const char *buf, size_t len)
{
    if (len && buf[len - 1] == '\n') {
        len--;
        if (len && buf[len - 1] == '\r')
            len--;
    }
    return len;
}

/* ====================================================================== */
/* signing                                                                */
/* ====================================================================== */

int mw_token_write_claims(struct mw_buf *out, const char *sub, const char *aud, const char *iss,
                          int64_t iat, int64_t ttl_s)
{
    size_t start = out->len, n = sub ? strlen(sub) : 0;
    int rc;

    if (n < 1 || n > MW_PLAYER_ID_MAX || ttl_s < 1 || iat < 0 || iat > INT64_MAX - ttl_s)
        return MW_EINVAL;
    rc = mw_buf_puts(out, "{\"sub\":");
    if (!rc)
        rc = mw_json_write_string(out, sub, n);
    if (!rc)
        rc = mw_buf_puts(out, ",\"iat\":");
    if (!rc)
        rc = mw_json_write_int(out, iat);
    if (!rc)
        rc = mw_buf_puts(out, ",\"exp\":");
    if (!rc)
        rc = mw_json_write_int(out, iat + ttl_s);
    if (!rc && aud) {
        rc = mw_buf_puts(out, ",\"aud\":");
        if (!rc)
            rc = mw_json_write_string(out, aud, strlen(aud));
    }
    if (!rc && iss) {
        rc = mw_buf_puts(out, ",\"iss\":");
        if (!rc)
            rc = mw_json_write_string(out, iss, strlen(iss));
    }
    if (!rc)
        rc = mw_buf_puts(out, "}");
    if (rc && out->data) {
        out->len = start;
        out->data[start] = '\0';
    }
    return rc;
}

/* Appends base64url(header) "." base64url(payload) to out. */
static int signing_input(struct mw_buf *out, enum mw_token_alg alg, const char *kid,
                         const char *payload, size_t plen)
{
    struct mw_buf h;
    int rc;

    if (kid && !kid_ok(kid))
        return MW_EINVAL;
    mw_buf_init(&h, 1024);
    rc = mw_buf_printf(&h, "{\"alg\":\"%s\",\"typ\":\"JWT\"", mw_token_alg_name(alg));
    if (!rc && kid) {
        rc = mw_buf_puts(&h, ",\"kid\":");
        if (!rc)
            rc = mw_json_write_string(&h, kid, strlen(kid));
    }
    if (!rc)
        rc = mw_buf_puts(&h, "}");
    if (!rc)
        rc = mw_base64url_encode(out, h.data, h.len);
    if (!rc)
        rc = mw_buf_puts(out, ".");
    if (!rc)
        rc = mw_base64url_encode(out, payload, plen);
    mw_buf_release(&h);
    return rc;
}

/* Appends "." base64url(sig). */
static int sign_finish(struct mw_buf *out, const unsigned char *sig, size_t slen)
{
    int rc = mw_buf_puts(out, ".");

    if (!rc)
        rc = mw_base64url_encode(out, sig, slen);
    return rc;
}

static void sign_undo(struct mw_buf *out, size_t start)
{
    if (out->data) {
        out->len = start;
        out->data[start] = '\0';
    }
}

int mw_token_sign_hs256(struct mw_buf *out, const void *secret, size_t slen, const char *kid,
                        const char *payload, size_t plen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t start = out->len;
    int rc;

    if (!secret_ok(secret, slen) || (!payload && plen))
        return MW_EINVAL;
    rc = signing_input(out, MW_TOKEN_ALG_HS256, kid, payload ? payload : "", plen);
    if (rc)
        goto out_undo;
    if (!HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)out->data + start,
              out->len - start, mac, &maclen)) {
        ERR_clear_error();
        rc = MW_ENOMEM;
        goto out_undo;
    }
    rc = sign_finish(out, mac, maclen);
    OPENSSL_cleanse(mac, sizeof(mac));
    if (!rc)
        return 0;
out_undo:
    sign_undo(out, start);
    return rc;
}

int mw_token_sign_pem(struct mw_buf *out, enum mw_token_alg alg, const char *pem, size_t pemlen,
                      const char *kid, const char *payload, size_t plen)
{
    const EVP_MD *md = alg == MW_TOKEN_ALG_RS256 ? EVP_sha256() : NULL;
    unsigned char *sig = NULL;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY *pkey;
    size_t start = out->len, slen = 0;
    int rc;

    if ((alg != MW_TOKEN_ALG_RS256 && alg != MW_TOKEN_ALG_EDDSA) || (!payload && plen))
        return MW_EINVAL;
    pkey = read_pem(pem, pemlen, true);
    if (!pkey)
        return MW_EINVAL;
    rc = MW_EINVAL;
    if (!pkey_fits(pkey, alg))
        goto out_free_key;
    rc = signing_input(out, alg, kid, payload ? payload : "", plen);
    if (rc)
        goto out_free_key;
    rc = MW_ENOMEM;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, md, NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, NULL, &slen, (const unsigned char *)out->data + start,
                       out->len - start) != 1)
        goto out_free_ctx;
    sig = mw_malloc(slen);
    if (!sig || EVP_DigestSign(ctx, sig, &slen, (const unsigned char *)out->data + start,
                               out->len - start) != 1)
        goto out_free_ctx;
    rc = sign_finish(out, sig, slen);
out_free_ctx:
    mw_free(sig);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
out_free_key:
    EVP_PKEY_free(pkey);
    if (rc)
        sign_undo(out, start);
    return rc;
}
