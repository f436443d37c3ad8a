/* matchwire: command-line tool over the codec. `matchwire validate` checks
 * files as envelopes (spec/envelope.md) or as strict I-JSON texts;
 * `matchwire token` mints an HS256 player token (spec/auth.md) for
 * development and tests. */
#include "alloc.h"
#include "buf.h"
#include "envelope.h"
#include "error.h"
#include "json.h"
#include "token.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOKEN_TTL_DEFAULT 3600
#define TOKEN_TTL_MAX     31536000 /* one year */
#define TOKEN_SECRET_ENV  "MATCHWIRE_AUTH_HS256_SECRET"

#define JSON_ONLY_MAX ((size_t)16 << 20) /* 16 MiB */

enum { EXIT_VALID = 0, EXIT_INVALID = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fputs("usage: matchwire validate [--json-only] [FILE...|-]\n"
          "       matchwire token (--secret S | --secret-file F) --sub PLAYER [--ttl SECONDS]\n"
          "                       [--kid KID] [--aud AUDIENCE] [--iss ISSUER] [--iat UNIX_TIME]\n"
          "       matchwire --help\n"
          "\n"
          "validate  Checks each FILE (or standard input, named '-', when no FILE\n"
          "          is given) as a Matchwire envelope (spec/envelope.md): strict\n"
          "          I-JSON, at most 65,536 bytes, nesting depth at most 32, and the\n"
          "          members type, v, data and optional id. Bytes past 65,537 are\n"
          "          not read: a longer input is too_large.\n"
          "  --json-only\n"
          "          Checks only that each input is one strict I-JSON text (RFC 8259\n"
          "          + RFC 7493: UTF-8, no duplicate names, no \\u0000, no lone\n"
          "          surrogates or noncharacters, numbers that fit a double) with\n"
          "          nesting depth at most 32. Inputs may be up to 16 MiB\n"
          "          (16,777,216 bytes); a longer input is reported as too_large.\n"
          "\n"
          "Prints one line per input:\n"
          "  FILE: ok\n"
          "  FILE: error CODE at byte N: MESSAGE   (\" at byte N\" only when an\n"
          "                                        offset applies; N is 0-based)\n"
          "Exit status: 0 all inputs valid, 1 some input invalid, 2 usage or I/O\n"
          "error (an unreadable file is reported on stderr; the rest are checked).\n"
          "\n"
          "token     Prints a player token (spec/auth.md): a JWT signed HS256 with\n"
          "          claims sub, iat, exp = iat + ttl, and aud and iss when given,\n"
          "          header {\"alg\":\"HS256\",\"typ\":\"JWT\"} plus kid when given.\n"
          "          For development and tests: a real deployment's tokens come from\n"
          "          its own issuer.\n"
          "  --secret S        the HS256 secret (32 to 1024 bytes; visible in the\n"
          "                    process list: prefer --secret-file)\n"
          "  --secret-file F   read the secret from F (one trailing newline removed);\n"
          "                    without either option, $" TOKEN_SECRET_ENV " is used\n"
          "  --sub PLAYER      the playerId (1 to 128 bytes)\n"
          "  --ttl SECONDS     lifetime, 1 to 31536000 (default 3600)\n"
          "  --kid KID         key id (1 to 64 visible ASCII bytes)\n"
          "  --aud A, --iss I  audience and issuer claims\n"
          "  --iat T           issue time in unix seconds (default: now)\n"
          "Exit status: 0 token printed, 2 usage or I/O error.\n",
          f);
}

/* Reads at most max bytes of f into an exact-size buffer (caller frees with
 * mw_free()). Returns 0, MW_EIO or MW_ENOMEM. */
static int read_bounded(FILE *f, size_t max, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = mw_malloc(cap), *exact;
    int rc = 0;

    if (!buf)
        return MW_ENOMEM;
    while (n < max) {
        size_t want, got;
        if (n == cap) {
            char *nb;
            cap = cap * 2 > max ? max : cap * 2;
            nb = mw_realloc(buf, cap);
            if (!nb) {
                rc = MW_ENOMEM;
                goto out_free;
            }
            buf = nb;
        }
        want = cap - n;
        got = fread(buf + n, 1, want, f);
        n += got;
        if (got < want) {
            if (ferror(f))
                rc = MW_EIO;
            break;
        }
    }
    if (rc)
        goto out_free;
    /* An exact-size copy, so sanitizers catch any read past the end. */
    exact = mw_malloc(n);
    if (!exact) {
        rc = MW_ENOMEM;
        goto out_free;
    }
    if (n)
        memcpy(exact, buf, n);
    *out = exact;
    *len = n;
out_free:
    mw_free(buf);
    return rc;
}

/* Validates one input; returns EXIT_VALID, EXIT_INVALID or EXIT_USAGE. */
static int validate_one(const char *name, bool json_only)
{
    size_t max = json_only ? JSON_ONLY_MAX + 1 : (size_t)MW_ENVELOPE_MAX_BYTES + 1;
    struct mw_parse_error err;
    struct mw_envelope env;
    bool is_stdin = strcmp(name, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(name, "rb");
    char *buf = NULL;
    size_t len = 0;
    int rc;

    if (!f) {
        fprintf(stderr, "matchwire: %s: %s\n", name, strerror(errno));
        return EXIT_USAGE;
    }
    rc = read_bounded(f, max, &buf, &len);
    if (!is_stdin)
        fclose(f);
    if (rc) {
        fprintf(stderr, "matchwire: %s: %s\n", name, mw_strerror(rc));
        return EXIT_USAGE;
    }
    if (json_only) {
        if (len > JSON_ONLY_MAX) {
            err.code = MW_CODE_TOO_LARGE;
            err.offset = JSON_ONLY_MAX;
            snprintf(err.message, sizeof(err.message),
                     "input larger than the --json-only bound of 16 MiB");
            rc = MW_EINVAL;
        } else {
            rc = mw_json_check(buf, len, MW_JSON_MAX_DEPTH, &err);
        }
    } else {
        rc = mw_envelope_parse(buf, len, &env, &err);
        if (!rc)
            mw_envelope_clear(&env);
    }
    mw_free(buf);
    if (rc == MW_ENOMEM) {
        fprintf(stderr, "matchwire: %s: out of memory\n", name);
        return EXIT_USAGE;
    }
    if (!rc) {
        printf("%s: ok\n", name);
        return EXIT_VALID;
    }
    if (err.offset != SIZE_MAX)
        printf("%s: error %s at byte %zu: %s\n", name, mw_code_name(err.code), err.offset,
               err.message);
    else
        printf("%s: error %s: %s\n", name, mw_code_name(err.code), err.message);
    return EXIT_INVALID;
}

static int cmd_validate(int argc, char **argv)
{
    bool json_only = false, opts = true, io_err = false, invalid = false;
    int i, nfiles = 0, r;

    for (i = 0; i < argc; i++) {
        if (opts && strcmp(argv[i], "--") == 0) {
            opts = false;
        } else if (opts && strcmp(argv[i], "--json-only") == 0) {
            json_only = true;
        } else if (opts && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
            usage(stdout);
            return EXIT_VALID;
        } else if (opts && argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "matchwire: unknown option %s\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    opts = true;
    for (i = 0; i < argc; i++) {
        if (opts && strcmp(argv[i], "--") == 0) {
            opts = false;
            continue;
        }
        if (opts && strcmp(argv[i], "--json-only") == 0)
            continue;
        nfiles++;
        r = validate_one(argv[i], json_only);
        io_err |= r == EXIT_USAGE;
        invalid |= r == EXIT_INVALID;
    }
    if (nfiles == 0) {
        r = validate_one("-", json_only);
        io_err |= r == EXIT_USAGE;
        invalid |= r == EXIT_INVALID;
    }
    if (fflush(stdout) != 0)
        io_err = true;
    return io_err ? EXIT_USAGE : invalid ? EXIT_INVALID : EXIT_VALID;
}

/* Parses a decimal integer in [lo, hi]; false otherwise. */
static bool parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Reads the secret file into an exact-size buffer (caller frees with
 * mw_free()), one trailing newline removed. Returns 0 or an MW_E* code. */
static int read_secret_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    int rc;

    if (!f) {
        fprintf(stderr, "matchwire: %s: %s\n", path, strerror(errno));
        return MW_EIO;
    }
    rc = read_bounded(f, MW_TOKEN_SECRET_MAX + 3, out, len);
    fclose(f);
    if (rc) {
        fprintf(stderr, "matchwire: %s: %s\n", path, mw_strerror(rc));
        return rc;
    }
    *len = mw_token_secret_trim(*out, *len);
    return 0;
}

static int cmd_token(int argc, char **argv)
{
    const char *secret = NULL, *secret_file = NULL, *sub = NULL, *kid = NULL, *aud = NULL,
               *iss = NULL;
    long long ttl = TOKEN_TTL_DEFAULT, iat = (long long)time(NULL);
    char *file_secret = NULL;
    size_t secret_len = 0;
    struct mw_buf claims, tok;
    int i, rc, ret = EXIT_USAGE;

    for (i = 0; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            usage(stdout);
            return EXIT_VALID;
        }
        if (!val) {
            fprintf(stderr, "matchwire: %s needs a value\n", opt);
            return EXIT_USAGE;
        }
        i++;
        if (strcmp(opt, "--secret") == 0) {
            secret = val;
        } else if (strcmp(opt, "--secret-file") == 0) {
            secret_file = val;
        } else if (strcmp(opt, "--sub") == 0) {
            sub = val;
        } else if (strcmp(opt, "--kid") == 0) {
            kid = val;
        } else if (strcmp(opt, "--aud") == 0) {
            aud = val;
        } else if (strcmp(opt, "--iss") == 0) {
            iss = val;
        } else if (strcmp(opt, "--ttl") == 0) {
            if (!parse_int(val, 1, TOKEN_TTL_MAX, &ttl)) {
                fprintf(stderr, "matchwire: --ttl must be 1 to %d seconds\n", TOKEN_TTL_MAX);
                return EXIT_USAGE;
            }
        } else if (strcmp(opt, "--iat") == 0) {
            if (!parse_int(val, 0, 4102444800LL, &iat)) { /* up to 2100-01-01 */
                fprintf(stderr, "matchwire: --iat must be unix seconds\n");
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "matchwire: unknown option %s\n", opt);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (secret && secret_file) {
        fprintf(stderr, "matchwire: give --secret or --secret-file, not both\n");
        return EXIT_USAGE;
    }
    if (!sub || !*sub || strlen(sub) > MW_PLAYER_ID_MAX) {
        fprintf(stderr, "matchwire: --sub PLAYER (1 to %d bytes) is required\n", MW_PLAYER_ID_MAX);
        return EXIT_USAGE;
    }
    if (secret_file) {
        if (read_secret_file(secret_file, &file_secret, &secret_len))
            return EXIT_USAGE;
        secret = file_secret;
    } else if (!secret) {
        secret = getenv(TOKEN_SECRET_ENV);
        if (!secret) {
            fprintf(stderr, "matchwire: no secret: --secret, --secret-file or $%s\n",
                    TOKEN_SECRET_ENV);
            return EXIT_USAGE;
        }
    }
    if (!secret_file)
        secret_len = strlen(secret);
    mw_buf_init(&claims, 0);
    mw_buf_init(&tok, 0);
    rc = mw_token_write_claims(&claims, sub, aud, iss, iat, ttl);
    if (rc) {
        fprintf(stderr, "matchwire: claims: %s (aud and iss must be valid UTF-8)\n",
                mw_strerror(rc));
        goto out;
    }
    rc = mw_token_sign_hs256(&tok, secret, secret_len, kid, claims.data, claims.len);
    if (rc == MW_EINVAL) {
        fprintf(stderr,
                "matchwire: the secret must be %d to %d bytes and not a PEM key; a kid "
                "1 to %d visible ASCII bytes\n",
                MW_TOKEN_SECRET_MIN, MW_TOKEN_SECRET_MAX, MW_TOKEN_KID_MAX);
        goto out;
    } else if (rc) {
        fprintf(stderr, "matchwire: signing failed: %s\n", mw_strerror(rc));
        goto out;
    }
    printf("%s\n", tok.data);
    ret = fflush(stdout) == 0 ? EXIT_VALID : EXIT_USAGE;
out:
    mw_buf_release(&tok);
    mw_buf_release(&claims);
    if (file_secret) {
        memset(file_secret, 0, secret_len);
        mw_free(file_secret);
    }
    return ret;
}

int main(int argc, char **argv)
{
    mw_alloc_set(NULL);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return EXIT_VALID;
    }
    if (argc >= 2 && strcmp(argv[1], "validate") == 0)
        return cmd_validate(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "token") == 0)
        return cmd_token(argc - 2, argv + 2);
    if (argc >= 2)
        fprintf(stderr, "matchwire: unknown command %s\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
