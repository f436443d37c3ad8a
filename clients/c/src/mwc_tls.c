/* mwc_tls: TLS for wss:// over memory BIOs (see mwc_tls.h). */
#include "mwc_tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "alloc.h"
#include "error.h"

struct mwc_tls_ctx {
    SSL_CTX *ssl_ctx;
};

struct mwc_tls {
    SSL *ssl;
    BIO *in;  /* ciphertext from the socket (SSL reads it) */
    BIO *out; /* ciphertext to the socket (SSL writes it) */
    char err[160];
};

struct mwc_tls_ctx *mwc_tls_ctx_new(const char *ca_file)
{
    struct mwc_tls_ctx *c = mw_calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ssl_ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file ? SSL_CTX_load_verify_locations(c->ssl_ctx, ca_file, NULL) != 1
                : SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1)
        goto fail;
    return c;
fail:
    ERR_clear_error();
    mwc_tls_ctx_free(c);
    return NULL;
}

void mwc_tls_ctx_free(struct mwc_tls_ctx *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ssl_ctx);
    mw_free(c);
}

struct mwc_tls *mwc_tls_new(struct mwc_tls_ctx *ctx, const char *host)
{
    struct mwc_tls *t = mw_calloc(1, sizeof(*t));
    X509_VERIFY_PARAM *param;
    char name[256]; /* SSL_set_tlsext_host_name() is a macro that casts const away */

    if (!t)
        return NULL;
    t->ssl = SSL_new(ctx->ssl_ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->in || !t->out)
        goto fail;
    SSL_set_bio(t->ssl, t->in, t->out); /* the SSL owns both from here */
    t->in = t->out = NULL;
    param = SSL_get0_param(t->ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
        /* not an IP address: a DNS name, also sent as SNI */
        ERR_clear_error();
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if ((size_t)snprintf(name, sizeof(name), "%s", host) >= sizeof(name) ||
            X509_VERIFY_PARAM_set1_host(param, host, 0) != 1 ||
            SSL_set_tlsext_host_name(t->ssl, name) != 1)
            goto fail;
    }
    SSL_set_connect_state(t->ssl);
    return t;
fail:
    ERR_clear_error();
    BIO_free(t->in);
    BIO_free(t->out);
    mwc_tls_free(t);
    return NULL;
}

void mwc_tls_free(struct mwc_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    mw_free(t);
}

static int failed(struct mwc_tls *t)
{
    unsigned long e = ERR_get_error();
    long v = SSL_get_verify_result(t->ssl);

    if (v != X509_V_OK)
        snprintf(t->err, sizeof(t->err), "certificate: %s", X509_verify_cert_error_string(v));
    else if (e)
        ERR_error_string_n(e, t->err, sizeof(t->err));
    else
        snprintf(t->err, sizeof(t->err), "TLS failure");
    ERR_clear_error();
    return MW_EIO;
}

bool mwc_tls_cert_refused(const struct mwc_tls *t)
{
    return SSL_get_verify_result(t->ssl) != X509_V_OK;
}

int mwc_tls_feed(struct mwc_tls *t, const void *p, size_t n)
{
    BIO *in = SSL_get_rbio(t->ssl);

    while (n > 0) {
        int k = BIO_write(in, p, n > 65536 ? 65536 : (int)n);
        if (k <= 0)
            return MW_ENOMEM;
        p = (const char *)p + k;
        n -= (size_t)k;
    }
    return 0;
}

int mwc_tls_handshake(struct mwc_tls *t)
{
    int r = SSL_do_handshake(t->ssl);

    if (r == 1)
        return 1;
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    default:
        return failed(t);
    }
}

int mwc_tls_read(struct mwc_tls *t, void *buf, size_t cap)
{
    int r = SSL_read(t->ssl, buf, cap > 65536 ? 65536 : (int)cap);

    if (r > 0)
        return r;
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    default:
        return failed(t);
    }
}

int mwc_tls_write(struct mwc_tls *t, const void *p, size_t n)
{
    while (n > 0) {
        int r = SSL_write(t->ssl, p, n > 65536 ? 65536 : (int)n);
        if (r <= 0)
            return failed(t);
        p = (const char *)p + r;
        n -= (size_t)r;
    }
    return 0;
}

int mwc_tls_drain(struct mwc_tls *t, struct mw_buf *out)
{
    BIO *wb = SSL_get_wbio(t->ssl);
    char chunk[4096];
    int n, rc;

    while ((n = BIO_read(wb, chunk, sizeof(chunk))) > 0)
        if ((rc = mw_buf_append(out, chunk, (size_t)n)) != 0)
            return rc;
    return 0;
}

const char *mwc_tls_error(const struct mwc_tls *t)
{
    return t && t->err[0] ? t->err : "TLS failure";
}
