/*
 * AWS Signature Version 4 over OpenSSL.
 *
 * The steps follow the AWS procedure, one block each:
 *   1. canonical request   (method, URI, query, headers, signed headers, payload hash)
 *   2. string to sign      (algorithm, date, scope, hash of the canonical request)
 *   3. signing key         (HMAC chain over date, region, service; cached)
 *   4. signature and the Authorization header
 */
#include "sigv4.h"
#include "buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* the growable buffer of buf.h, under the short names this file uses */
typedef dms_buf sbuf;
#define sb_add(b, s, n) ((void)dms_buf_add((b), (s), (n)))
#define sb_adds(b, s) ((void)dms_buf_adds((b), (s)))
#define sb_addc(b, c) ((void)dms_buf_addc((b), (c)))
#define sb_free(b) dms_buf_free(b)

/* ------------------------------------------------------------------ */
/* encoding helpers                                                    */

static const char HEX_UPPER[] = "0123456789ABCDEF";
static const char HEX_LOWER[] = "0123456789abcdef";

static int is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* RFC 3986 percent-encoding of every byte but the unreserved ones (and '/'
 * when keep_slash, and an existing '%' when keep_percent). */
static void uri_encode(sbuf *b, const char *s, size_t n, int keep_slash, int keep_percent)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/') || (keep_percent && c == '%')) {
            sb_addc(b, (char)c);
        } else {
            char enc[3];
            enc[0] = '%';
            enc[1] = HEX_UPPER[c >> 4];
            enc[2] = HEX_UPPER[c & 15];
            sb_add(b, enc, 3);
        }
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decoding; '+' stays '+' (SigV4 query strings are not form data). */
static void uri_decode(sbuf *b, const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0
            && (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            sb_addc(b, (char)(hi * 16 + lo));
            i += 2;
        } else {
            sb_addc(b, s[i]);
        }
    }
}

static void hex_lower(const unsigned char *in, size_t n, char *out)
{
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = HEX_LOWER[in[i] >> 4];
        out[2 * i + 1] = HEX_LOWER[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ------------------------------------------------------------------ */
/* OpenSSL wrappers                                                    */

static void crypto_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char detail[160];
    if (e) {
        ERR_error_string_n(e, detail, sizeof detail);
        snprintf(err, errlen, "%s: %s", what, detail);
    } else {
        snprintf(err, errlen, "%s failed", what);
    }
    ERR_clear_error();
}

static int sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int outlen = 0;
    return EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) == 1 && outlen == 32;
}

int dms_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    if (!sha256(data, len, md)) {
        ERR_clear_error();
        return -1;
    }
    hex_lower(md, 32, out);
    return 0;
}

static int hmac256(const void *key, size_t keylen, const void *msg, size_t msglen,
                   unsigned char out[32])
{
    unsigned int outlen = 0;
    return HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &outlen) != NULL
        && outlen == 32;
}

/* ------------------------------------------------------------------ */
/* 1a. canonical URI                                                   */

/* Removes '.' and '..' segments and empty segments ('//'), keeping a
 * trailing slash, as the SigV4 suite's normalize-path cases require. */
static void normalize_path(sbuf *out, const char *path)
{
    size_t n = strlen(path), i = 0;
    size_t *stack;          /* start offsets of segments in out */
    size_t depth = 0;
    int trailing = n > 0 && path[n - 1] == '/';

    stack = malloc((n + 1) * sizeof *stack);
    if (!stack) {
        out->failed = 1;
        return;
    }
    while (i < n) {
        size_t start, len;
        while (i < n && path[i] == '/')
            i++;
        start = i;
        while (i < n && path[i] != '/')
            i++;
        len = i - start;
        if (len == 0 || (len == 1 && path[start] == '.'))
            continue;
        if (len == 2 && path[start] == '.' && path[start + 1] == '.') {
            if (depth > 0)
                out->len = stack[--depth];
            if (out->data)
                out->data[out->len] = '\0';
            continue;
        }
        stack[depth++] = out->len;
        sb_addc(out, '/');
        sb_add(out, path + start, len);
    }
    free(stack);
    if (out->len == 0 || trailing)
        sb_addc(out, '/');
}

static void canonical_uri(sbuf *cr, const char *path, int normalize)
{
    if (!path || !*path) {
        sb_addc(cr, '/');
        return;
    }
    if (normalize) {
        sbuf norm = {0};
        normalize_path(&norm, path);
        if (norm.failed) {
            cr->failed = 1;
            sb_free(&norm);
            return;
        }
        uri_encode(cr, norm.data, norm.len, 1, 0);
        sb_free(&norm);
    } else {
        uri_encode(cr, path, strlen(path), 1, 1);
    }
}

/* ------------------------------------------------------------------ */
/* 1b. canonical query string                                          */

typedef struct {
    char *key;      /* encoded */
    char *value;    /* encoded */
} qparam;

static int qparam_cmp(const void *a, const void *b)
{
    const qparam *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

/* Decodes then re-encodes one component, so that "%E1%88%B4" and the raw
 * UTF-8 bytes give the same canonical form. */
static char *encode_component(const char *s, size_t n)
{
    sbuf dec = {0}, enc = {0};
    uri_decode(&dec, s, n);
    if (dec.failed) {
        sb_free(&dec);
        return NULL;
    }
    uri_encode(&enc, dec.data ? dec.data : "", dec.len, 0, 0);
    sb_free(&dec);
    if (enc.failed) {
        sb_free(&enc);
        return NULL;
    }
    if (!enc.data)
        return calloc(1, 1);
    return enc.data;
}

static int canonical_query(sbuf *cr, const char *query)
{
    size_t n, count = 0, i, cap = 0;
    qparam *params = NULL;
    const char *p;
    int rc = 0;

    if (!query || !*query)
        return 0;
    n = strlen(query);
    for (i = 0; i < n; i++)
        if (query[i] == '&')
            cap++;
    cap++;
    params = calloc(cap, sizeof *params);
    if (!params)
        return -1;

    p = query;
    while (p <= query + n) {
        const char *end = strchr(p, '&');
        const char *eq;
        if (!end)
            end = query + n;
        if (end > p) {
            eq = memchr(p, '=', (size_t)(end - p));
            if (eq) {
                params[count].key = encode_component(p, (size_t)(eq - p));
                params[count].value = encode_component(eq + 1, (size_t)(end - eq - 1));
            } else {
                params[count].key = encode_component(p, (size_t)(end - p));
                params[count].value = calloc(1, 1);
            }
            if (!params[count].key || !params[count].value) {
                count++;
                rc = -1;
                goto done;
            }
            count++;
        }
        if (end == query + n)
            break;          /* end + 1 would point past the string */
        p = end + 1;
    }
    qsort(params, count, sizeof *params, qparam_cmp);
    for (i = 0; i < count; i++) {
        if (i)
            sb_addc(cr, '&');
        sb_adds(cr, params[i].key);
        sb_addc(cr, '=');
        sb_adds(cr, params[i].value);
    }
done:
    for (i = 0; i < count; i++) {
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
    return rc;
}

/* ------------------------------------------------------------------ */
/* 1c. canonical headers                                               */

typedef struct {
    char *name;         /* lowercase */
    sbuf value;         /* trimmed, spaces collapsed, duplicates joined with ',' */
    size_t order;       /* first appearance, for a stable sort */
} cheader;

static int cheader_cmp(const void *a, const void *b)
{
    const cheader *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Appends a header value trimmed and with runs of whitespace collapsed. */
static void add_trimmed(sbuf *b, const char *v, size_t n)
{
    size_t i = 0, end = n;
    int space = 0;
    while (i < end && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    for (; i < end; i++) {
        if (v[i] == ' ' || v[i] == '\t') {
            space = 1;
            continue;
        }
        if (space) {
            sb_addc(b, ' ');
            space = 0;
        }
        sb_addc(b, v[i]);
    }
    if (!b->data)
        sb_add(b, "", 0);
}

static int has_ctl(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 1;
    return 0;
}

static int valid_token(const char *s, size_t n)
{
    size_t i;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || c == ':')
            return 0;
    }
    return 1;
}

static int name_is(const char *s, size_t n, const char *lower)
{
    size_t i;
    if (strlen(lower) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (tolower((unsigned char)s[i]) != lower[i])
            return 0;
    return 1;
}

static void free_headers(cheader *hs, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        free(hs[i].name);
        sb_free(&hs[i].value);
    }
    free(hs);
}

/* Merges duplicates and sorts; returns the number of distinct names. */
static size_t merge_headers(cheader *hs, size_t n)
{
    size_t i, out = 0;
    if (n == 0)
        return 0;
    qsort(hs, n, sizeof *hs, cheader_cmp);
    for (i = 1; i < n; i++) {
        if (strcmp(hs[i].name, hs[out].name) == 0) {
            sb_addc(&hs[out].value, ',');
            sb_add(&hs[out].value, hs[i].value.data, hs[i].value.len);
            if (hs[i].value.failed)
                hs[out].value.failed = 1;
            free(hs[i].name);
            sb_free(&hs[i].value);
        } else {
            hs[++out] = hs[i];
        }
    }
    return out + 1;
}

/* ------------------------------------------------------------------ */
/* 3. signing key                                                      */

static void copy_bounded(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int derive_key(const dms_sigv4_request *req, const char *date,
                      dms_sigv4_cache *cache, unsigned char key[32])
{
    unsigned char digest[32], k1[32], k2[32], k3[32];
    unsigned char *kbuf;
    size_t klen, i;
    int cacheable = cache && strlen(req->region) < sizeof cache->entries[0].region
                    && strlen(req->service) < sizeof cache->entries[0].service;

    if (cacheable) {
        if (!sha256(req->secret_key, req->secret_key_len, digest))
            return -1;
        for (i = 0; i < DMS_SIGV4_CACHE_SLOTS; i++) {
            dms_sigv4_cache_entry *e = &cache->entries[i];
            if (e->used && memcmp(e->secret_digest, digest, 32) == 0
                && strcmp(e->date, date) == 0 && strcmp(e->region, req->region) == 0
                && strcmp(e->service, req->service) == 0) {
                memcpy(key, e->key, 32);
                cache->hits++;
                return 0;
            }
        }
    }

    klen = 4 + req->secret_key_len;
    kbuf = malloc(klen);
    if (!kbuf)
        return -2;
    memcpy(kbuf, "AWS4", 4);
    memcpy(kbuf + 4, req->secret_key, req->secret_key_len);
    i = hmac256(kbuf, klen, date, strlen(date), k1)
        && hmac256(k1, 32, req->region, strlen(req->region), k2)
        && hmac256(k2, 32, req->service, strlen(req->service), k3)
        && hmac256(k3, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(kbuf, klen);
    free(kbuf);
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    OPENSSL_cleanse(k3, sizeof k3);
    if (!i)
        return -1;

    if (cacheable) {
        dms_sigv4_cache_entry *e = &cache->entries[cache->next % DMS_SIGV4_CACHE_SLOTS];
        cache->next++;
        cache->misses++;
        memcpy(e->secret_digest, digest, 32);
        copy_bounded(e->date, sizeof e->date, date);
        copy_bounded(e->region, sizeof e->region, req->region);
        copy_bounded(e->service, sizeof e->service, req->service);
        memcpy(e->key, key, 32);
        e->used = 1;
    }
    return 0;
}

void dms_sigv4_cache_clear(dms_sigv4_cache *cache)
{
    OPENSSL_cleanse(cache, sizeof *cache);
}

/* ------------------------------------------------------------------ */
/* the whole procedure                                                 */

static int valid_amz_date(const char *s, size_t n)
{
    size_t i;
    if (n != 16 || s[8] != 'T' || s[15] != 'Z')
        return 0;
    for (i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int format_amz_date(int64_t t, char out[17])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL)
        return -1;
    return strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) == 16 ? 0 : -1;
}

static char *sb_take(sbuf *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

#define FAIL(code, ...) do { snprintf(err, errlen, __VA_ARGS__); rc = (code); goto out; } while (0)

int dms_sigv4_sign(const dms_sigv4_request *req, dms_sigv4_cache *cache,
                   dms_sigv4_result *res, char *err, size_t errlen)
{
    sbuf cr = {0}, sts = {0}, auth = {0}, signed_names = {0};
    cheader *hs = NULL;
    size_t nh = 0, i;
    char date[9], payload_hex[65], cr_hex[65];
    unsigned char key[32], sig[32];
    int have_date = 0, have_token = 0, rc = DMS_SIGV4_OK;

    memset(res, 0, sizeof *res);
    err[0] = '\0';

    if (!req->method || !*req->method)
        FAIL(DMS_SIGV4_EINVAL, "method is required");
    if (!valid_token(req->method, strlen(req->method)))
        FAIL(DMS_SIGV4_EINVAL, "method is not a valid HTTP token");
    if (!req->region || !*req->region)
        FAIL(DMS_SIGV4_EINVAL, "region is required");
    if (!req->service || !*req->service)
        FAIL(DMS_SIGV4_EINVAL, "service is required");
    if (!req->access_key || !*req->access_key)
        FAIL(DMS_SIGV4_EINVAL, "access_key is required");
    if (!req->secret_key || req->secret_key_len == 0)
        FAIL(DMS_SIGV4_EINVAL, "secret_key is required");
    if (strchr(req->region, '/') || strchr(req->service, '/') || strchr(req->access_key, '/'))
        FAIL(DMS_SIGV4_EINVAL, "region, service and access_key must not contain '/'");
    if (has_ctl(req->access_key, strlen(req->access_key)) || has_ctl(req->region, strlen(req->region))
        || has_ctl(req->service, strlen(req->service)))
        FAIL(DMS_SIGV4_EINVAL, "access_key, region and service must not contain CR, LF or NUL");
    if (req->path && has_ctl(req->path, strlen(req->path)))
        FAIL(DMS_SIGV4_EINVAL, "path contains CR, LF or NUL");
    if (req->query && has_ctl(req->query, strlen(req->query)))
        FAIL(DMS_SIGV4_EINVAL, "query contains CR, LF or NUL");
    if (req->session_token && has_ctl(req->session_token, strlen(req->session_token)))
        FAIL(DMS_SIGV4_EINVAL, "session_token contains CR, LF or NUL");

    /* 1c. headers: validate, lowercase, trim; note X-Amz-Date and the token */
    hs = calloc(req->nheaders + 2, sizeof *hs);
    if (!hs)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");
    for (i = 0; i < req->nheaders; i++) {
        const dms_sigv4_header *h = &req->headers[i];
        size_t k;
        if (!valid_token(h->name, h->name_len))
            FAIL(DMS_SIGV4_EINVAL, "header #%zu has an invalid name", i + 1);
        if (has_ctl(h->value, h->value_len))
            FAIL(DMS_SIGV4_EINVAL, "header '%.*s' contains CR, LF or NUL",
                 (int)(h->name_len > 64 ? 64 : h->name_len), h->name);
        if (name_is(h->name, h->name_len, "authorization"))
            FAIL(DMS_SIGV4_EINVAL, "the request already has an Authorization header");
        if (name_is(h->name, h->name_len, "x-amz-date")) {
            char tmp[17];
            sbuf v = {0};
            add_trimmed(&v, h->value, h->value_len);
            if (v.failed || !valid_amz_date(v.data, v.len)) {
                sb_free(&v);
                FAIL(DMS_SIGV4_EINVAL, "X-Amz-Date must look like 20150830T123600Z");
            }
            memcpy(tmp, v.data, 17);
            sb_free(&v);
            if (have_date && strcmp(tmp, res->amz_date) != 0)
                FAIL(DMS_SIGV4_EINVAL, "conflicting X-Amz-Date headers");
            memcpy(res->amz_date, tmp, 17);
            have_date = 1;
        }
        if (name_is(h->name, h->name_len, "x-amz-security-token"))
            have_token = 1;
        hs[nh].name = malloc(h->name_len + 1);
        if (!hs[nh].name)
            FAIL(DMS_SIGV4_ENOMEM, "out of memory");
        for (k = 0; k < h->name_len; k++)
            hs[nh].name[k] = (char)tolower((unsigned char)h->name[k]);
        hs[nh].name[h->name_len] = '\0';
        hs[nh].order = nh;
        add_trimmed(&hs[nh].value, h->value, h->value_len);
        nh++;
        if (hs[nh - 1].value.failed)
            FAIL(DMS_SIGV4_ENOMEM, "out of memory");
    }
    if (!have_date) {
        if (format_amz_date(req->time, res->amz_date) != 0)
            FAIL(DMS_SIGV4_EINVAL, "time is out of range");
        res->date_added = 1;
        hs[nh].name = strdup("x-amz-date");
        hs[nh].order = nh;
        if (!hs[nh].name)
            FAIL(DMS_SIGV4_ENOMEM, "out of memory");
        sb_adds(&hs[nh].value, res->amz_date);
        nh++;
    }
    if (req->session_token && *req->session_token && !have_token) {
        res->token_added = 1;
        if (req->sign_session_token) {
            hs[nh].name = strdup("x-amz-security-token");
            hs[nh].order = nh;
            if (!hs[nh].name)
                FAIL(DMS_SIGV4_ENOMEM, "out of memory");
            add_trimmed(&hs[nh].value, req->session_token, strlen(req->session_token));
            nh++;
        }
    }
    nh = merge_headers(hs, nh);
    memcpy(date, res->amz_date, 8);
    date[8] = '\0';

    /* 1. canonical request */
    sb_adds(&cr, req->method);
    sb_addc(&cr, '\n');
    canonical_uri(&cr, req->path, req->normalize_path);
    sb_addc(&cr, '\n');
    if (canonical_query(&cr, req->query) != 0)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");
    sb_addc(&cr, '\n');
    for (i = 0; i < nh; i++) {
        sb_adds(&cr, hs[i].name);
        sb_addc(&cr, ':');
        sb_add(&cr, hs[i].value.data, hs[i].value.len);
        sb_addc(&cr, '\n');
        if (i)
            sb_addc(&signed_names, ';');
        sb_adds(&signed_names, hs[i].name);
    }
    sb_addc(&cr, '\n');
    sb_add(&cr, signed_names.data, signed_names.len);
    sb_addc(&cr, '\n');
    if (dms_sha256_hex(req->body ? req->body : "", req->body ? req->body_len : 0, payload_hex) != 0)
        FAIL(DMS_SIGV4_ECRYPTO, "SHA-256 failed");
    sb_adds(&cr, payload_hex);
    if (cr.failed || signed_names.failed)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");

    /* 2. string to sign */
    if (dms_sha256_hex(cr.data, cr.len, cr_hex) != 0)
        FAIL(DMS_SIGV4_ECRYPTO, "SHA-256 failed");
    sb_adds(&sts, "AWS4-HMAC-SHA256\n");
    sb_adds(&sts, res->amz_date);
    sb_addc(&sts, '\n');
    sb_adds(&sts, date);
    sb_addc(&sts, '/');
    sb_adds(&sts, req->region);
    sb_addc(&sts, '/');
    sb_adds(&sts, req->service);
    sb_adds(&sts, "/aws4_request\n");
    sb_adds(&sts, cr_hex);
    if (sts.failed)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");

    /* 3. signing key */
    switch (derive_key(req, date, cache, key)) {
    case 0:
        break;
    case -2:
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");
    default:
        crypto_error(err, errlen, "HMAC-SHA256");
        rc = DMS_SIGV4_ECRYPTO;
        goto out;
    }

    /* 4. signature and Authorization */
    if (!hmac256(key, 32, sts.data, sts.len, sig)) {
        crypto_error(err, errlen, "HMAC-SHA256");
        rc = DMS_SIGV4_ECRYPTO;
        goto out;
    }
    hex_lower(sig, 32, res->signature);
    sb_adds(&auth, "AWS4-HMAC-SHA256 Credential=");
    sb_adds(&auth, req->access_key);
    sb_addc(&auth, '/');
    sb_adds(&auth, date);
    sb_addc(&auth, '/');
    sb_adds(&auth, req->region);
    sb_addc(&auth, '/');
    sb_adds(&auth, req->service);
    sb_adds(&auth, "/aws4_request, SignedHeaders=");
    sb_add(&auth, signed_names.data, signed_names.len);
    sb_adds(&auth, ", Signature=");
    sb_adds(&auth, res->signature);
    if (auth.failed)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");

    res->canonical_request = sb_take(&cr);
    res->string_to_sign = sb_take(&sts);
    res->authorization = sb_take(&auth);
    if (!res->canonical_request || !res->string_to_sign || !res->authorization)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");

out:
    OPENSSL_cleanse(key, sizeof key);
    if (hs)
        free_headers(hs, nh);
    sb_free(&cr);
    sb_free(&sts);
    sb_free(&auth);
    sb_free(&signed_names);
    if (rc != DMS_SIGV4_OK)
        dms_sigv4_result_free(res);
    return rc;
}

void dms_sigv4_result_free(dms_sigv4_result *res)
{
    free(res->canonical_request);
    free(res->string_to_sign);
    if (res->authorization)
        OPENSSL_cleanse(res->authorization, strlen(res->authorization));
    free(res->authorization);
    res->canonical_request = res->string_to_sign = res->authorization = NULL;
    OPENSSL_cleanse(res->signature, sizeof res->signature);
}
