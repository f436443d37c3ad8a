/* envelope: the v1 envelope codec (spec/envelope.md): parse + validate into a
 * typed struct, canonical serialization, equality. */
#include "envelope.h"

#include "alloc.h"
#include "invariant.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define V_MAX 2147483647

enum { T_TYPE, T_V, T_ID, T_DATA, T__COUNT };

static int bad(struct mw_parse_error *err, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(struct mw_parse_error *err, size_t offset, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mw_parse_error_vset(err, MW_CODE_BAD_ENVELOPE, offset, fmt, ap);
    va_end(ap);
    return MW_EINVAL;
}

bool mw_envelope_type_valid(const char *s, size_t n)
{
    size_t i;
    bool seg_start = true;

    if (!s || n == 0 || n > MW_TYPE_MAX)
        return false;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (seg_start) {
            if (c < 'a' || c > 'z')
                return false;
            seg_start = false;
        } else if (c == '.') {
            seg_start = true;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return !seg_start;
}

bool mw_envelope_id_valid(const char *s, size_t n)
{
    size_t i;

    if (!s || n == 0 || n > MW_ID_MAX)
        return false;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
            return false;
    return true;
}

/* Offset of a tracked member's value, or SIZE_MAX without source text. */
static size_t off_of(const struct mw_json_track *t, int which)
{
    return t ? t[which].offset : SIZE_MAX;
}

/* Reads v from its source text: [1-9][0-9]* with value <= 2^31-1. */
static bool v_from_text(const char *text, size_t n, int64_t *v)
{
    int64_t x = 0;
    size_t i;

    if (n == 0 || n > 10 || text[0] < '1' || text[0] > '9')
        return false;
    for (i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        x = x * 10 + (text[i] - '0');
    }
    if (x > V_MAX)
        return false;
    *v = x;
    return true;
}

/* Validates root's members and fills out (data borrowed from root: the
 * caller detaches or copies it). src/t are NULL without source text. */
static int check(const cJSON *root, const char *src, size_t root_off, const struct mw_json_track *t,
                 struct mw_envelope *out, struct mw_parse_error *err)
{
    const cJSON *type, *v, *id, *data;
    size_t n;

    if (!cJSON_IsObject(root))
        return bad(err, root_off, "the top-level value is not an object");

    type = mw_json_get(root, "type");
    if (!type)
        return bad(err, SIZE_MAX, "missing member \"type\"");
    if (!cJSON_IsString(type))
        return bad(err, off_of(t, T_TYPE), "\"type\" is not a string");
    n = strlen(type->valuestring);
    if (n == 0 || n > MW_TYPE_MAX)
        return bad(err, off_of(t, T_TYPE), "\"type\" must be 1 to 64 bytes");
    if (!mw_envelope_type_valid(type->valuestring, n))
        return bad(err, off_of(t, T_TYPE),
                   "\"type\" does not match ^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$");

    v = mw_json_get(root, "v");
    if (!v)
        return bad(err, SIZE_MAX, "missing member \"v\"");
    if (!cJSON_IsNumber(v))
        return bad(err, off_of(t, T_V), "\"v\" is not a number");
    if (t) {
        if (!t[T_V].plain_int || !v_from_text(src + t[T_V].offset, t[T_V].len, &out->v))
            return bad(err, off_of(t, T_V),
                       "\"v\" must be an integer 1 to 2147483647 written as [1-9][0-9]*");
    } else {
        double d = v->valuedouble;
        if (!(d >= 1 && d <= V_MAX) || d != floor(d))
            return bad(err, SIZE_MAX, "\"v\" must be an integer 1 to 2147483647");
        out->v = (int64_t)d;
    }

    id = mw_json_get(root, "id");
    if (id) {
        if (!cJSON_IsString(id))
            return bad(err, off_of(t, T_ID), "\"id\" is not a string");
        n = strlen(id->valuestring);
        if (!mw_envelope_id_valid(id->valuestring, n))
            return bad(err, off_of(t, T_ID),
                       "\"id\" must be 1 to 64 printable ASCII bytes (0x20..0x7E)");
        memcpy(out->id, id->valuestring, n + 1);
        out->has_id = true;
    }

    data = mw_json_get(root, "data");
    if (!data)
        return bad(err, SIZE_MAX, "missing member \"data\"");
    if (!cJSON_IsObject(data))
        return bad(err, off_of(t, T_DATA), "\"data\" is not an object");

    memcpy(out->type, type->valuestring, strlen(type->valuestring) + 1);
    return 0;
}

/* After a bad_envelope failure: keeps a valid top-level id so the error can
 * echo it (messages.md MSG-012). */
static void keep_id(const cJSON *root, struct mw_envelope *out)
{
    const cJSON *id = mw_json_get(root, "id");

    if (cJSON_IsString(id) && mw_envelope_id_valid(id->valuestring, strlen(id->valuestring))) {
        memcpy(out->id, id->valuestring, strlen(id->valuestring) + 1);
        out->has_id = true;
    }
}

static void reset(struct mw_envelope *e)
{
    e->type[0] = '\0';
    e->v = 0;
    e->data = NULL;
    e->has_id = false;
    e->id[0] = '\0';
}

static int oom(struct mw_parse_error *err)
{
    if (err) {
        err->code = MW_CODE_INTERNAL;
        err->offset = SIZE_MAX;
        snprintf(err->message, sizeof(err->message), "out of memory");
    }
    return MW_ENOMEM;
}

int mw_envelope_parse(const char *buf, size_t len, struct mw_envelope *out,
                      struct mw_parse_error *err)
{
    struct mw_json_track t[T__COUNT] = {
        [T_TYPE] = {.key = "type"},
        [T_V] = {.key = "v"},
        [T_ID] = {.key = "id"},
        [T_DATA] = {.key = "data"},
    };
    cJSON *root = NULL, *data;
    size_t root_off = 0;
    int rc;

    reset(out);
    if (len > MW_ENVELOPE_MAX_BYTES) {
        if (err) {
            err->code = MW_CODE_TOO_LARGE;
            err->offset = MW_ENVELOPE_MAX_BYTES;
            snprintf(err->message, sizeof(err->message), "envelope larger than 65,536 bytes");
        }
        return MW_EINVAL;
    }
    rc = mw_json_parse_tracked(buf, len, MW_ENVELOPE_MAX_DEPTH, t, T__COUNT, &root, err);
    if (rc)
        return rc;
    while (root_off < len && (buf[root_off] == ' ' || buf[root_off] == '\t' ||
                              buf[root_off] == '\n' || buf[root_off] == '\r'))
        root_off++;
    rc = check(root, buf, root_off, t, out, err);
    if (rc)
        goto out_free_root;
    data = cJSON_DetachItemViaPointer(root, cJSON_GetObjectItemCaseSensitive(root, "data"));
    mw_free(data->string);
    data->string = NULL;
    out->data = data;
    if (err) {
        err->code = MW_CODE_NONE;
        err->offset = SIZE_MAX;
        err->message[0] = '\0';
    }
out_free_root:
    if (rc) {
        reset(out);
        keep_id(root, out);
    }
    cJSON_Delete(root);
    return rc;
}

int mw_envelope_view_json(const cJSON *root, struct mw_envelope *out, struct mw_parse_error *err)
{
    int rc;

    reset(out);
    if (err) {
        err->code = MW_CODE_NONE;
        err->offset = SIZE_MAX;
        err->message[0] = '\0';
    }
    rc = check(root, NULL, SIZE_MAX, NULL, out, err);
    if (rc) {
        reset(out);
        if (rc == MW_EINVAL)
            keep_id(root, out);
        return rc;
    }
    /* Borrowed; read only (root is const to us, its members' links are
     * not). check() found "data". */
    for (cJSON *c = root->child; c; c = c->next)
        if (c->string && strcmp(c->string, "data") == 0)
            out->data = c;
    MW_ASSERT(out->data != NULL);
    return 0;
}

int mw_envelope_from_json(const cJSON *root, struct mw_envelope *out, struct mw_parse_error *err)
{
    int rc = mw_envelope_view_json(root, out, err);

    if (rc)
        return rc;
    out->data = cJSON_Duplicate(out->data, 1);
    if (!out->data) {
        reset(out);
        return oom(err);
    }
    mw_free(out->data->string);
    out->data->string = NULL;
    return 0;
}

void mw_envelope_clear(struct mw_envelope *e)
{
    if (!e)
        return;
    cJSON_Delete(e->data);
    reset(e);
}

/* Length of a NUL-terminated field of at most max bytes (max when unterminated). */
static size_t field_len(const char *s, size_t max)
{
    const char *nul = memchr(s, '\0', max);
    return nul ? (size_t)(nul - s) : max;
}

int mw_envelope_serialize(const struct mw_envelope *e, struct mw_buf *b)
{
    size_t mark = b->len, tl = field_len(e->type, sizeof(e->type)),
           il = field_len(e->id, sizeof(e->id));
    const cJSON *c;
    int rc;

    if (!mw_envelope_type_valid(e->type, tl) || e->v < 1 || e->v > V_MAX ||
        (e->has_id && !mw_envelope_id_valid(e->id, il)) || !cJSON_IsObject(e->data))
        return MW_EINVAL;
    rc = mw_buf_append(b, "{\"type\":", 8);
    if (!rc)
        rc = mw_json_write_string(b, e->type, tl);
    if (!rc)
        rc = mw_buf_append(b, ",\"v\":", 5);
    if (!rc)
        rc = mw_json_write_int(b, e->v);
    if (!rc && e->has_id) {
        rc = mw_buf_append(b, ",\"id\":", 6);
        if (!rc)
            rc = mw_json_write_string(b, e->id, il);
    }
    if (!rc)
        rc = mw_buf_append(b, ",\"data\":", 8);
    /* data's members in their order; the object itself has no name. */
    if (!rc)
        rc = mw_buf_append(b, "{", 1);
    for (c = e->data->child; !rc && c; c = c->next) {
        if (c != e->data->child)
            rc = mw_buf_append(b, ",", 1);
        if (!rc)
            rc = c->string ? mw_json_write_string(b, c->string, strlen(c->string)) : MW_EINVAL;
        if (!rc)
            rc = mw_buf_append(b, ":", 1);
        if (!rc)
            rc = mw_json_write(b, c);
    }
    if (!rc)
        rc = mw_buf_append(b, "}}", 2);
    if (rc)
        mw_buf_truncate(b, mark);
    return rc;
}

static bool json_equal(const cJSON *a, const cJSON *b)
{
    const cJSON *x, *y;

    if ((a->type & 0xFF) != (b->type & 0xFF))
        return false;
    switch (a->type & 0xFF) {
    case cJSON_Number:
        return memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) == 0;
    case cJSON_String:
        return a->valuestring && b->valuestring && strcmp(a->valuestring, b->valuestring) == 0;
    case cJSON_Array:
    case cJSON_Object:
        for (x = a->child, y = b->child; x && y; x = x->next, y = y->next) {
            if ((a->type & 0xFF) == cJSON_Object &&
                (!x->string || !y->string || strcmp(x->string, y->string) != 0))
                return false;
            if (!json_equal(x, y))
                return false;
        }
        return !x && !y;
    default:
        return true; /* true, false, null */
    }
}

bool mw_envelope_equal(const struct mw_envelope *a, const struct mw_envelope *b)
{
    if (strcmp(a->type, b->type) != 0 || a->v != b->v || a->has_id != b->has_id)
        return false;
    if (a->has_id && strcmp(a->id, b->id) != 0)
        return false;
    if (!a->data || !b->data)
        return a->data == b->data;
    return json_equal(a->data, b->data);
}
