/* matchwire: command-line tool over the codec. `matchwire validate` checks
 * files as envelopes (spec/envelope.md) or as strict I-JSON texts. */
#include "alloc.h"
#include "envelope.h"
#include "error.h"
#include "json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define JSON_ONLY_MAX ((size_t)16 << 20) /* 16 MiB */

enum { EXIT_VALID = 0, EXIT_INVALID = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fputs("usage: matchwire validate [--json-only] [FILE...|-]\n"
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
          "error (an unreadable file is reported on stderr; the rest are checked).\n",
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

int main(int argc, char **argv)
{
    mw_alloc_set(NULL);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return EXIT_VALID;
    }
    if (argc >= 2 && strcmp(argv[1], "validate") == 0)
        return cmd_validate(argc - 2, argv + 2);
    if (argc >= 2)
        fprintf(stderr, "matchwire: unknown command %s\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
