/* token: player tokens (spec/auth.md): JWT (RFC 7519) in JWS compact form
 * (RFC 7515), signed HS256, RS256 or EdDSA/Ed25519 (RFC 8037), verified
 * against a configured key set; plus the constant-time service-token
 * comparison and the signing the dev command and the tests need.
 *
 * Pure: no sockets, no clock of its own (`now_s` is an argument), no
 * logging. Uses OpenSSL's libcrypto for HMAC, RSA and Ed25519; its own
 * allocations go through mw_malloc (alloc.h), cJSON's through the hooks.
 *
 * Layers, each usable alone:
 *   mw_token_verify_jws()  compact form, header, key choice, signature
 *                          (AUTH-020..AUTH-027); the payload is any bytes;
 *   mw_token_verify()      the above, then the JWT claims (AUTH-030..).
 * Failures return a negative MW_E* code and, through `why`, a short static
 * reason ("expired", "bad signature", ...) for logs. The reason is not for
 * the peer: spec/auth.md gives every refusal the same HTTP answer. */
#ifndef MW_TOKEN_H
#define MW_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ticket.h" /* MW_PLAYER_ID_MAX */

#define MW_TOKEN_MAX_BYTES       4096               /* whole compact token (AUTH-011) */
#define MW_TOKEN_KID_MAX         64                 /* bytes of a configured kid (AUTH-024) */
#define MW_TOKEN_KEYS_MAX        16                 /* keys in one set (AUTH-024) */
#define MW_TOKEN_SECRET_MIN      32                 /* bytes of an HS256 secret (AUTH-021) */
#define MW_TOKEN_SECRET_MAX      1024               /* bytes of an HS256 secret */
#define MW_TOKEN_PEM_MAX         16384              /* bytes of one PEM text */
#define MW_TOKEN_RSA_MIN_BITS    2048               /* smallest RS256 modulus accepted (AUTH-021) */
#define MW_TOKEN_LEEWAY_DEFAULT  30                 /* seconds (AUTH-033) */
#define MW_TOKEN_LEEWAY_MAX      300                /* largest leeway a policy may set */
#define MW_TOKEN_CLAIM_MAX       256                /* bytes of a configured aud or iss */
#define MW_TOKEN_NUMERICDATE_MAX 9007199254740991.0 /* 2^53 - 1 (AUTH-032) */

/* Signature algorithms (the JWS `alg` names in mw_token_alg_name()). */
enum mw_token_alg {
    MW_TOKEN_ALG_NONE = 0, /* never accepted; "no algorithm" in results */
    MW_TOKEN_ALG_HS256,    /* "HS256": HMAC-SHA-256, shared secret */
    MW_TOKEN_ALG_RS256,    /* "RS256": RSASSA-PKCS1-v1_5 with SHA-256 */
    MW_TOKEN_ALG_EDDSA,    /* "EdDSA": Ed25519 (RFC 8037) */
};

/* "HS256", "RS256", "EdDSA"; "none" for anything else. Static string. */
const char *mw_token_alg_name(enum mw_token_alg alg);

/* ---- key set ------------------------------------------------------------ */

/* A set of verification keys, each bound to exactly one algorithm (AUTH-022)
 * and optionally named by a kid. Opaque; immutable once built, so one set may
 * be shared by every connection. */
struct mw_token_keys;

/* Empty set, or NULL when out of memory. Free with mw_token_keys_free(). */
struct mw_token_keys *mw_token_keys_new(void);
/* Frees the set and every key in it (secrets wiped first). NULL: no-op. */
void mw_token_keys_free(struct mw_token_keys *keys);
/* Number of keys in the set (0 for NULL). */
size_t mw_token_keys_count(const struct mw_token_keys *keys);

/* Adds an HS256 key. secret[0..len) is borrowed and copied; kid (borrowed,
 * NUL-terminated) may be NULL. Returns 0, MW_EINVAL (secret shorter than
 * MW_TOKEN_SECRET_MIN or longer than MW_TOKEN_SECRET_MAX, kid not 1..64
 * bytes of 0x21..0x7E), MW_EEXIST (kid already in the set), MW_ELIMIT
 * (MW_TOKEN_KEYS_MAX keys already) or MW_ENOMEM. */
int mw_token_keys_add_hs256(struct mw_token_keys *keys, const void *secret, size_t len,
                            const char *kid);

/* Adds a public key for RS256 or EdDSA from PEM text (pem[0..len), borrowed,
 * need not be NUL-terminated; a SubjectPublicKeyInfo "BEGIN PUBLIC KEY"
 * block). The key must fit the algorithm: RSA of at least
 * MW_TOKEN_RSA_MIN_BITS for RS256, Ed25519 for EdDSA. Returns 0, MW_EINVAL
 * (alg not RS256/EdDSA, PEM unreadable or over MW_TOKEN_PEM_MAX, wrong key
 * type or size, bad kid), MW_EEXIST, MW_ELIMIT or MW_ENOMEM. */
int mw_token_keys_add_pem(struct mw_token_keys *keys, enum mw_token_alg alg, const char *pem,
                          size_t len, const char *kid);

/* ---- verification ------------------------------------------------------- */

/* What the server requires of the claims (AUTH-030..AUTH-037). Public;
 * borrowed by mw_token_verify(). Zero-initialised means: leeway 0, no
 * audience, no issuer; use mw_token_policy_init() for the defaults. */
struct mw_token_policy {
    int64_t leeway_s;     /* 0..MW_TOKEN_LEEWAY_MAX seconds */
    const char *audience; /* NULL: a token that carries `aud` is refused (AUTH-035) */
    const char *issuer;   /* NULL: `iss` not checked */
};

/* leeway MW_TOKEN_LEEWAY_DEFAULT, no audience, no issuer. */
void mw_token_policy_init(struct mw_token_policy *p);

/* What a verified token says. Filled only on success. */
struct mw_token_claims {
    char sub[MW_PLAYER_ID_MAX + 1]; /* the player (AUTH-031), NUL-terminated */
    int64_t exp;                    /* `exp`, rounded up to whole seconds */
    int64_t expires_at_s;           /* first second at which the token is refused:
                                       exp + leeway (AUTH-034, AUTH-050) */
    enum mw_token_alg alg;          /* the algorithm that verified it */
    char kid[MW_TOKEN_KID_MAX + 1]; /* the verifying key's kid, "" when it has none */
};

/* The JWS layer alone (RFC 7515 compact serialization): checks the form and
 * size, decodes header and payload, parses the header as strict I-JSON,
 * picks the keys (alg and kid) and verifies the signature. The payload may be
 * any bytes. On success *payload (caller frees with mw_free(); NUL-terminated
 * for convenience, the terminator not counted) and *payload_len are set and
 * *alg_out / *key_index (either may be NULL) name the key that verified.
 * Returns 0, MW_EAUTH (why: the reason) or MW_ENOMEM. keys, token borrowed;
 * why may be NULL. */
int mw_token_verify_jws(const struct mw_token_keys *keys, const char *token, size_t len,
                        char **payload, size_t *payload_len, enum mw_token_alg *alg_out,
                        size_t *key_index, const char **why);

/* Verifies a player token: mw_token_verify_jws(), then the payload as a JWT
 * claims set (strict I-JSON object, `sub` a valid playerId, `exp` required,
 * `nbf`/`iat`/`aud`/`iss` as the policy says) at time now_s (unix seconds).
 * Returns 0 with *out filled, MW_EAUTH (why set) or MW_ENOMEM. All pointers
 * borrowed; policy NULL means mw_token_policy_init() defaults; why may be
 * NULL. Checks are made in a fixed order (form, signature, then claims) so
 * nothing about the claims is learned from an unsigned token. */
int mw_token_verify(const struct mw_token_keys *keys, const struct mw_token_policy *policy,
                    const char *token, size_t len, int64_t now_s, struct mw_token_claims *out,
                    const char **why);

/* Whether presented[0..plen) equals expected[0..elen) (the service token,
 * AUTH-071), in time independent of where they differ and of plen (both are
 * hashed with SHA-256, the digests compared with CRYPTO_memcmp). Borrowed. */
bool mw_token_service_equal(const void *expected, size_t elen, const void *presented, size_t plen);

/* The length of a secret read from a file (buf[0..len)) once one trailing
 * "\n" or "\r\n" is removed (AUTH-081). */
size_t mw_token_secret_trim(const char *buf, size_t len);

/* ---- signing (dev command, tests) --------------------------------------- */

/* Appends to out the claims set {"sub","iat","exp"[,"aud"][,"iss"]} as
 * compact JSON, exp = iat + ttl_s. sub, aud, iss borrowed (aud/iss may be
 * NULL). Returns 0, MW_EINVAL (sub not 1..128 bytes, ttl_s < 1), MW_ENOMEM
 * or MW_ELIMIT (buffer bound). */
int mw_token_write_claims(struct mw_buf *out, const char *sub, const char *aud, const char *iss,
                          int64_t iat, int64_t ttl_s);

/* Signs payload[0..plen) (borrowed; any bytes, normally a claims set) as a
 * compact JWS with header {"alg":"HS256","typ":"JWT"[,"kid":kid]} and
 * appends it to out. Same secret and kid rules as mw_token_keys_add_hs256().
 * Returns 0, MW_EINVAL, MW_ENOMEM or MW_ELIMIT. */
int mw_token_sign_hs256(struct mw_buf *out, const void *secret, size_t slen, const char *kid,
                        const char *payload, size_t plen);

/* As mw_token_sign_hs256() for RS256 or EdDSA with a private key in PEM
 * (PKCS#8 "BEGIN PRIVATE KEY", or "BEGIN RSA PRIVATE KEY"), borrowed.
 * Returns 0, MW_EINVAL (wrong alg, unreadable PEM, key not of the
 * algorithm's type), MW_ENOMEM or MW_ELIMIT. */
int mw_token_sign_pem(struct mw_buf *out, enum mw_token_alg alg, const char *pem, size_t pemlen,
                      const char *kid, const char *payload, size_t plen);

/* ---- base64url (RFC 4648 section 5, no padding) ------------------------ */

/* Decodes in[0..n) strictly: alphabet A-Z a-z 0-9 - _ only, no padding, no
 * whitespace, n % 4 != 1, and the unused low bits of the last character zero
 * (canonical). out must hold n * 3 / 4 bytes. Returns 0 (*outlen set) or
 * MW_EINVAL. */
int mw_base64url_decode(const char *in, size_t n, unsigned char *out, size_t *outlen);
/* Appends the unpadded base64url form of in[0..n) to out. 0, MW_ENOMEM or
 * MW_ELIMIT. */
int mw_base64url_encode(struct mw_buf *out, const void *in, size_t n);

#endif /* MW_TOKEN_H */
