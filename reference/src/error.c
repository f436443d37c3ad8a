/* error: MW_E* strings and the protocol error-code registry. */
#include "error.h"

const char *mw_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case MW_ENOMEM:
        return "out of memory";
    case MW_EINVAL:
        return "invalid argument";
    case MW_ENOTFOUND:
        return "not found";
    case MW_ESTATE:
        return "not allowed in this state";
    case MW_ELIMIT:
        return "limit reached";
    case MW_EUNAVAIL:
        return "backend unavailable";
    case MW_EEXIST:
        return "already exists";
    case MW_EIO:
        return "I/O error";
    case MW_ECLOSED:
        return "closed";
    case MW_EAGAIN:
        return "try again";
    case MW_EAUTH:
        return "authentication failed";
    default:
        return "unknown error";
    }
}

static const char *const code_names[MW_CODE__COUNT] = {
    [MW_CODE_NONE] = "none",
    [MW_CODE_BAD_JSON] = "bad_json",
    [MW_CODE_BAD_ENVELOPE] = "bad_envelope",
    [MW_CODE_TOO_LARGE] = "too_large",
    [MW_CODE_TOO_DEEP] = "too_deep",
    [MW_CODE_UNKNOWN_TYPE] = "unknown_type",
    [MW_CODE_UNSUPPORTED_VERSION] = "unsupported_version",
    [MW_CODE_BAD_MESSAGE] = "bad_message",
    [MW_CODE_NOT_FOUND] = "not_found",
    [MW_CODE_ALREADY_ASSIGNED] = "already_assigned",
    [MW_CODE_TOO_MANY_TICKETS] = "too_many_tickets",
    [MW_CODE_RATE_LIMITED] = "rate_limited",
    [MW_CODE_UNAVAILABLE] = "unavailable",
    [MW_CODE_INTERNAL] = "internal",
    [MW_CODE_UNAUTHORIZED] = "unauthorized",
    [MW_CODE_FORBIDDEN] = "forbidden",
};

const char *mw_code_name(enum mw_code code)
{
    if ((int)code < 0 || code >= MW_CODE__COUNT)
        return "internal";
    return code_names[code];
}

bool mw_code_retryable(enum mw_code code)
{
    return code == MW_CODE_RATE_LIMITED || code == MW_CODE_UNAVAILABLE || code == MW_CODE_INTERNAL;
}
