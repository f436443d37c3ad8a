/* error: library return codes (negative MW_E*) and the protocol's error-code
 * registry (the strings clients see in `error` envelopes, spec/envelope.md and
 * spec/messages.md). */
#ifndef MW_ERROR_H
#define MW_ERROR_H

#include <stdbool.h>

/* Return codes of mw_* functions: 0 on success or one of these. */
enum {
    MW_ENOMEM = -1,    /* allocation failed */
    MW_EINVAL = -2,    /* invalid argument or input */
    MW_ENOTFOUND = -3, /* no such ticket / item */
    MW_ESTATE = -4,    /* operation not allowed in the current state */
    MW_ELIMIT = -5,    /* a stated bound was reached */
    MW_EUNAVAIL = -6,  /* a backend (Redis) is not reachable */
    MW_EEXIST = -7,    /* already exists / already attached */
    MW_EIO = -8,       /* I/O or system call failure */
    MW_ECLOSED = -9,   /* object is closing or closed */
    MW_EAGAIN = -10,   /* try again later */
    MW_EAUTH = -11,    /* credentials missing, invalid or refused (spec/auth.md) */
};

/* Returns a static, human-readable string for an MW_E* code (or "ok"). */
const char *mw_strerror(int err);

/* The protocol's error codes (wire names in mw_code_name()). The order is not
 * part of the protocol; the names are. */
enum mw_code {
    MW_CODE_NONE = 0,
    /* envelope layer (spec/envelope.md) */
    MW_CODE_BAD_JSON,            /* "bad_json": not strict I-JSON text */
    MW_CODE_BAD_ENVELOPE,        /* "bad_envelope": JSON, but not an envelope */
    MW_CODE_TOO_LARGE,           /* "too_large": over 65,536 bytes */
    MW_CODE_TOO_DEEP,            /* "too_deep": nesting deeper than 32 */
    MW_CODE_UNKNOWN_TYPE,        /* "unknown_type" */
    MW_CODE_UNSUPPORTED_VERSION, /* "unsupported_version" */
    /* message layer (spec/messages.md) */
    MW_CODE_BAD_MESSAGE,      /* "bad_message": data does not match the schema */
    MW_CODE_NOT_FOUND,        /* "not_found" */
    MW_CODE_ALREADY_ASSIGNED, /* "already_assigned" */
    MW_CODE_TOO_MANY_TICKETS, /* "too_many_tickets" */
    MW_CODE_RATE_LIMITED,     /* "rate_limited" */
    MW_CODE_UNAVAILABLE,      /* "unavailable" */
    MW_CODE_INTERNAL,         /* "internal" */
    /* authentication (spec/auth.md) */
    MW_CODE_UNAUTHORIZED, /* "unauthorized": credentials missing or refused (HTTP 401) */
    MW_CODE_FORBIDDEN,    /* "forbidden": not allowed for this principal */
    MW_CODE__COUNT
};

/* Wire name of a code ("bad_json", ...); "internal" for out-of-range values. */
const char *mw_code_name(enum mw_code code);
/* Whether a client may retry the same request later (the `retryable` field). */
bool mw_code_retryable(enum mw_code code);

#endif /* MW_ERROR_H */
