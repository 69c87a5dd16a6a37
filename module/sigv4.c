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
    size_t i, run = 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/') || (keep_percent && c == '%')) {
            run++;
        } else {
            if (run)
                sb_add(b, s + i - run, run);
            run = 0;
            char enc[3];
            enc[0] = '%';
            enc[1] = HEX_UPPER[c >> 4];
            enc[2] = HEX_UPPER[c & 15];
            sb_add(b, enc, 3);
        }
    }
    if (run)
        sb_add(b, s + n - run, run);
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
        unsigned c = in[i];
        out[2 * i] = HEX_LOWER[c >> 4];
        out[2 * i + 1] = HEX_LOWER[c & 15];
    }
    out[2 * n] = '\0';
}

/* ------------------------------------------------------------------ */
/* OpenSSL: one fetched digest and one digest context, kept              */

struct dms_sigv4_crypto {
    EVP_MD *md;                     /* SHA-256, fetched once */
    EVP_MD_CTX *ctx;                /* reused for every hash */
    EVP_MD_CTX *ipad[DMS_SIGV4_CACHE_SLOTS];    /* per cached key: SHA-256 state after K ^ ipad */
    EVP_MD_CTX *opad[DMS_SIGV4_CACHE_SLOTS];    /* ... and after K ^ opad */
    sbuf text;                      /* canonical request, string to sign, Authorization */
    sbuf arena;                     /* lowercased names and trimmed values of the headers */
    int64_t date_time;              /* the last time formatted, and its X-Amz-Date */
    char date_value[17];
};

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

static int crypto_init(dms_sigv4_crypto *c)
{
    memset(c, 0, sizeof *c);
    c->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    c->ctx = EVP_MD_CTX_new();
    return c->md && c->ctx ? 0 : -1;
}

/* Releases what crypto_init and the signatures made; the text buffer only
 * when free_text (a result may own it). */
static void crypto_release(dms_sigv4_crypto *c, int free_text)
{
    size_t i;
    for (i = 0; i < DMS_SIGV4_CACHE_SLOTS; i++) {
        EVP_MD_CTX_free(c->ipad[i]);
        EVP_MD_CTX_free(c->opad[i]);
        c->ipad[i] = c->opad[i] = NULL;
    }
    EVP_MD_CTX_free(c->ctx);
    EVP_MD_free(c->md);
    c->ctx = NULL;
    c->md = NULL;
    if (c->arena.data)
        OPENSSL_cleanse(c->arena.data, c->arena.cap);
    sb_free(&c->arena);
    if (free_text) {
        if (c->text.data)
            OPENSSL_cleanse(c->text.data, c->text.cap);
        sb_free(&c->text);
    }
}

static int sha256(dms_sigv4_crypto *c, const void *data, size_t len, unsigned char out[32])
{
    unsigned int outlen = 0;
    return EVP_DigestInit_ex(c->ctx, c->md, NULL) == 1
        && EVP_DigestUpdate(c->ctx, data, len) == 1
        && EVP_DigestFinal_ex(c->ctx, out, &outlen) == 1 && outlen == 32;
}

int dms_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int outlen = 0;
    if (EVP_Digest(data, len, md, &outlen, EVP_sha256(), NULL) != 1 || outlen != 32) {
        ERR_clear_error();
        return -1;
    }
    hex_lower(md, 32, out);
    return 0;
}

/* HMAC-SHA256 (RFC 2104) over the kept digest context: H((K ^ opad) || H((K ^ ipad) || msg)).
 * The pads of a key can be hashed once and kept (hmac_pads, hmac_from_pads):
 * a cached signing key costs two blocks less per signature. */
#define HMAC_BLOCK 64

static void key_block(const unsigned char *key, size_t keylen, unsigned char pad,
                      unsigned char block[HMAC_BLOCK])
{
    size_t i;
    memset(block, pad, HMAC_BLOCK);
    for (i = 0; i < keylen; i++)
        block[i] ^= key[i];
}

/* the key as HMAC uses it: itself up to a block, its digest beyond */
static int hmac_key(dms_sigv4_crypto *c, const void *key, size_t *keylen, unsigned char hashed[32],
                    const unsigned char **k)
{
    *k = key;
    if (*keylen <= HMAC_BLOCK)
        return 1;
    if (!sha256(c, key, *keylen, hashed))
        return 0;
    *k = hashed;
    *keylen = 32;
    return 1;
}

static int hmac256(dms_sigv4_crypto *c, const void *key, size_t keylen, const void *msg, size_t msglen,
                   unsigned char out[32])
{
    unsigned char block[HMAC_BLOCK], inner[32], hashed[32];
    const unsigned char *k;
    unsigned int outlen = 0;
    int ok = hmac_key(c, key, &keylen, hashed, &k);
    if (ok) {
        key_block(k, keylen, 0x36, block);
        ok = EVP_DigestInit_ex(c->ctx, c->md, NULL) == 1 && EVP_DigestUpdate(c->ctx, block, HMAC_BLOCK) == 1
             && EVP_DigestUpdate(c->ctx, msg, msglen) == 1 && EVP_DigestFinal_ex(c->ctx, inner, &outlen) == 1;
    }
    if (ok) {
        key_block(k, keylen, 0x5c, block);
        ok = EVP_DigestInit_ex(c->ctx, c->md, NULL) == 1 && EVP_DigestUpdate(c->ctx, block, HMAC_BLOCK) == 1
             && EVP_DigestUpdate(c->ctx, inner, 32) == 1 && EVP_DigestFinal_ex(c->ctx, out, &outlen) == 1
             && outlen == 32;
    }
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(inner, sizeof inner);
    OPENSSL_cleanse(hashed, sizeof hashed);
    return ok;
}

/* the pad states of a 32-byte key into *ipad and *opad (made when NULL) */
static int hmac_pads(dms_sigv4_crypto *c, const unsigned char key[32], EVP_MD_CTX **ipad, EVP_MD_CTX **opad)
{
    unsigned char block[HMAC_BLOCK];
    int ok;
    if (!*ipad)
        *ipad = EVP_MD_CTX_new();
    if (!*opad)
        *opad = EVP_MD_CTX_new();
    if (!*ipad || !*opad)
        return 0;
    key_block(key, 32, 0x36, block);
    ok = EVP_DigestInit_ex(*ipad, c->md, NULL) == 1 && EVP_DigestUpdate(*ipad, block, HMAC_BLOCK) == 1;
    key_block(key, 32, 0x5c, block);
    ok = ok && EVP_DigestInit_ex(*opad, c->md, NULL) == 1 && EVP_DigestUpdate(*opad, block, HMAC_BLOCK) == 1;
    OPENSSL_cleanse(block, sizeof block);
    return ok;
}

static int hmac_from_pads(dms_sigv4_crypto *c, const EVP_MD_CTX *ipad, const EVP_MD_CTX *opad,
                          const void *msg, size_t msglen, unsigned char out[32])
{
    unsigned char inner[32];
    unsigned int outlen = 0;
    int ok = EVP_MD_CTX_copy_ex(c->ctx, ipad) == 1 && EVP_DigestUpdate(c->ctx, msg, msglen) == 1
             && EVP_DigestFinal_ex(c->ctx, inner, &outlen) == 1
             && EVP_MD_CTX_copy_ex(c->ctx, opad) == 1 && EVP_DigestUpdate(c->ctx, inner, 32) == 1
             && EVP_DigestFinal_ex(c->ctx, out, &outlen) == 1 && outlen == 32;
    OPENSSL_cleanse(inner, sizeof inner);
    return ok;
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

/* 1 unless the path is already what normalize_path would make of it: it
 * starts with '/' and has no empty, '.' or '..' segment */
static int needs_normalizing(const char *path)
{
    const char *p;
    if (path[0] != '/')
        return 1;
    for (p = path; *p; p++) {
        if (*p != '/')
            continue;
        if (p[1] == '/')
            return 1;
        if (p[1] == '.' && (p[2] == '/' || p[2] == '\0' || (p[2] == '.' && (p[3] == '/' || p[3] == '\0'))))
            return 1;
    }
    return 0;
}

static void canonical_uri(sbuf *cr, const char *path, int normalize)
{
    if (!path || !*path) {
        sb_addc(cr, '/');
        return;
    }
    if (normalize && !needs_normalizing(path)) {
        uri_encode(cr, path, strlen(path), 1, 0);
    } else if (normalize) {
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
    const char *name;       /* lowercase, in the arena */
    size_t name_len;
    const char *value;      /* trimmed, spaces collapsed, in the arena */
    size_t value_len;
    size_t order;           /* first appearance, for a stable sort */
} cheader;

static int cheader_cmp(const void *a, const void *b)
{
    const cheader *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int same_name(const cheader *x, const cheader *y)
{
    return x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0;
}

/* By name, then by first appearance (duplicates keep their order): an
 * insertion sort for the few headers of a request, qsort beyond. */
static void sort_headers(cheader *hs, size_t n)
{
    size_t i, j;
    if (n > 16) {
        qsort(hs, n, sizeof *hs, cheader_cmp);
        return;
    }
    for (i = 1; i < n; i++) {
        cheader h = hs[i];
        for (j = i; j > 0 && cheader_cmp(&hs[j - 1], &h) > 0; j--)
            hs[j] = hs[j - 1];
        hs[j] = h;
    }
}

/* Appends a header value trimmed and with runs of whitespace collapsed
 * (into room the caller reserved: at most n bytes); returns its length. */
static size_t add_trimmed(sbuf *b, const char *v, size_t n)
{
    size_t i = 0, end = n, start = b->len;
    int space = 0;
    if (n > 0 && v[0] != ' ' && v[n - 1] != ' ' && !memchr(v, '\t', n)) {
        const char *sp = memchr(v, ' ', n);
        while (sp && sp[1] != ' ')
            sp = memchr(sp + 1, ' ', (size_t)(v + n - sp - 1));
        if (!sp) {              /* nothing to trim or collapse */
            memcpy(b->data + b->len, v, n);
            b->len += n;
            b->data[b->len] = '\0';
            return n;
        }
    }
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
            b->data[b->len++] = ' ';
            space = 0;
        }
        b->data[b->len++] = v[i];
    }
    b->data[b->len] = '\0';
    return b->len - start;
}

static void add_lower(sbuf *b, const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        char c = s[i];
        b->data[b->len++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    b->data[b->len] = '\0';
}

static int has_ctl(const char *s, size_t n)
{
    return memchr(s, '\r', n) || memchr(s, '\n', n) || memchr(s, '\0', n);
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

static int name_is(const char *s, size_t n, const char *lower, size_t lower_len)
{
    size_t i;
    if (lower_len != n)
        return 0;
    for (i = 0; i < n; i++)
        if (tolower((unsigned char)s[i]) != lower[i])
            return 0;
    return 1;
}
#define NAME_IS(s, n, lit) name_is((s), (n), (lit), sizeof(lit) - 1)

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

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static int derive_key(dms_sigv4_crypto *c, const dms_sigv4_request *req, const char *date,
                      unsigned char key[32])
{
    unsigned char k1[32], k2[32], k3[32];
    unsigned char *kbuf;
    size_t klen = 4 + req->secret_key_len;
    int ok;

    kbuf = malloc(klen);
    if (!kbuf)
        return -2;
    memcpy(kbuf, "AWS4", 4);
    memcpy(kbuf + 4, req->secret_key, req->secret_key_len);
    ok = hmac256(c, kbuf, klen, date, strlen(date), k1)
         && hmac256(c, k1, 32, req->region, strlen(req->region), k2)
         && hmac256(c, k2, 32, req->service, strlen(req->service), k3)
         && hmac256(c, k3, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(kbuf, klen);
    free(kbuf);
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    OPENSSL_cleanse(k3, sizeof k3);
    return ok ? 0 : -1;
}

/* The credential scope: date/region/service/aws4_request */
static void add_scope(sbuf *text, const char *date, const dms_sigv4_request *req)
{
    sb_add(text, date, 8);
    sb_addc(text, '/');
    sb_adds(text, req->region);
    sb_addc(text, '/');
    sb_adds(text, req->service);
    sb_adds(text, "/aws4_request");
}

/* 3 and 4: the signature of the string to sign, with the cached key's pad
 * states when there is a cache (deriving and caching the key on a miss). */
static int sign_sts(dms_sigv4_crypto *c, dms_sigv4_cache *cache, const dms_sigv4_request *req,
                    const char *date, const char *sts, size_t sts_len, unsigned char sig[32])
{
    unsigned char digest[32], key[32];
    size_t i;
    int rc;
    dms_sigv4_cache_entry *e;

    if (!cache || strlen(req->region) >= sizeof cache->entries[0].region
        || strlen(req->service) >= sizeof cache->entries[0].service) {
        rc = derive_key(c, req, date, key);
        if (rc == 0 && !hmac256(c, key, 32, sts, sts_len, sig))
            rc = -1;
        OPENSSL_cleanse(key, sizeof key);
        return rc;
    }
    if (!sha256(c, req->secret_key, req->secret_key_len, digest))
        return -1;
    for (i = 0; i < DMS_SIGV4_CACHE_SLOTS; i++) {
        e = &cache->entries[i];
        if (e->used && memcmp(e->secret_digest, digest, 32) == 0 && strcmp(e->date, date) == 0
            && strcmp(e->region, req->region) == 0 && strcmp(e->service, req->service) == 0) {
            cache->hits++;
            return hmac_from_pads(c, c->ipad[i], c->opad[i], sts, sts_len, sig) ? 0 : -1;
        }
    }
    if ((rc = derive_key(c, req, date, key)) != 0) {
        OPENSSL_cleanse(key, sizeof key);
        return rc;
    }
    i = cache->next % DMS_SIGV4_CACHE_SLOTS;
    e = &cache->entries[i];
    cache->next++;
    cache->misses++;
    e->used = 0;
    if (!hmac_pads(c, key, &c->ipad[i], &c->opad[i])) {
        OPENSSL_cleanse(key, sizeof key);
        return c->ipad[i] && c->opad[i] ? -1 : -2;
    }
    memcpy(e->secret_digest, digest, 32);
    copy_bounded(e->date, sizeof e->date, date);
    copy_bounded(e->region, sizeof e->region, req->region);
    copy_bounded(e->service, sizeof e->service, req->service);
    memcpy(e->key, key, 32);
    e->used = 1;
    OPENSSL_cleanse(key, sizeof key);
    return hmac_from_pads(c, c->ipad[i], c->opad[i], sts, sts_len, sig) ? 0 : -1;
}

void dms_sigv4_cache_clear(dms_sigv4_cache *cache)
{
    if (cache->crypto) {
        crypto_release(cache->crypto, 1);
        free(cache->crypto);
    }
    OPENSSL_cleanse(cache, sizeof *cache);
    cache->crypto = NULL;
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

static void digits(char *out, int v, int n)
{
    while (n-- > 0) {
        out[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* 20150830T123600Z */
static int format_amz_date(int64_t t, char out[17])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return -1;
    digits(out, tm.tm_year + 1900, 4);
    digits(out + 4, tm.tm_mon + 1, 2);
    digits(out + 6, tm.tm_mday, 2);
    out[8] = 'T';
    digits(out + 9, tm.tm_hour, 2);
    digits(out + 11, tm.tm_min, 2);
    digits(out + 13, tm.tm_sec, 2);
    out[15] = 'Z';
    out[16] = '\0';
    return 0;
}

/* appends b[off, off + n) to b itself */
static void sb_add_own(sbuf *b, size_t off, size_t n)
{
    if (dms_buf_reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, b->data + off, n);
    b->len += n;
    b->data[b->len] = '\0';
}

#define FAIL(code, ...) do { snprintf(err, errlen, __VA_ARGS__); rc = (code); goto out; } while (0)
#define STACK_HEADERS 16

int dms_sigv4_sign(const dms_sigv4_request *req, dms_sigv4_cache *cache,
                   dms_sigv4_result *res, char *err, size_t errlen)
{
    dms_sigv4_crypto local, *c = NULL;
    cheader stack_hs[STACK_HEADERS], *hs = NULL;
    sbuf *text, *arena;
    size_t nh = 0, i, arena_need, token_len = 0, cr_len, sts_off, sts_len, auth_off, names_off, names_len;
    char date[9], hex[65];
    unsigned char md[32], sig[32];
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
    if (req->session_token) {
        token_len = strlen(req->session_token);
        if (has_ctl(req->session_token, token_len))
            FAIL(DMS_SIGV4_EINVAL, "session_token contains CR, LF or NUL");
    }

    /* the kept OpenSSL state and buffers of the cache, or this call's own */
    if (cache) {
        if (!cache->crypto) {
            cache->crypto = malloc(sizeof *cache->crypto);
            if (!cache->crypto)
                FAIL(DMS_SIGV4_ENOMEM, "out of memory");
            if (crypto_init(cache->crypto) != 0) {
                crypto_release(cache->crypto, 1);
                free(cache->crypto);
                cache->crypto = NULL;
                crypto_error(err, errlen, "SHA-256");
                rc = DMS_SIGV4_ECRYPTO;
                goto out;
            }
        }
        c = cache->crypto;
        dms_buf_reset(&c->text);
        dms_buf_reset(&c->arena);
    } else {
        c = &local;
        if (crypto_init(c) != 0) {
            crypto_error(err, errlen, "SHA-256");
            rc = DMS_SIGV4_ECRYPTO;
            goto out;
        }
    }
    text = &c->text;
    arena = &c->arena;

    /* 1c. headers: validate, lowercase, trim; note X-Amz-Date and the token.
     * Names and values go to the arena, reserved once so that they never move. */
    arena_need = 64 + token_len;
    for (i = 0; i < req->nheaders; i++) {
        const dms_sigv4_header *h = &req->headers[i];
        if (h->name_len > SIZE_MAX / 4 || h->value_len > SIZE_MAX / 4 || arena_need > SIZE_MAX / 2)
            FAIL(DMS_SIGV4_ENOMEM, "out of memory");
        arena_need += h->name_len + h->value_len + 2;
    }
    if (dms_buf_reserve(arena, arena_need) != 0)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");
    if (req->nheaders + 2 <= STACK_HEADERS) {
        hs = stack_hs;
    } else if (!(hs = calloc(req->nheaders + 2, sizeof *hs))) {
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");
    }
    for (i = 0; i < req->nheaders; i++) {
        const dms_sigv4_header *h = &req->headers[i];
        cheader *ch = &hs[nh];
        if (!valid_token(h->name, h->name_len))
            FAIL(DMS_SIGV4_EINVAL, "header #%zu has an invalid name", i + 1);
        if (has_ctl(h->value, h->value_len))
            FAIL(DMS_SIGV4_EINVAL, "header '%.*s' contains CR, LF or NUL",
                 (int)(h->name_len > 64 ? 64 : h->name_len), h->name);
        if (NAME_IS(h->name, h->name_len, "authorization"))
            FAIL(DMS_SIGV4_EINVAL, "the request already has an Authorization header");
        ch->name = arena->data + arena->len;
        ch->name_len = h->name_len;
        add_lower(arena, h->name, h->name_len);
        arena->len++;                       /* past the NUL */
        ch->value = arena->data + arena->len;
        ch->value_len = add_trimmed(arena, h->value, h->value_len);
        arena->len++;
        ch->order = nh++;
        if (ch->name_len == 10 && memcmp(ch->name, "x-amz-date", 10) == 0) {
            if (!valid_amz_date(ch->value, ch->value_len))
                FAIL(DMS_SIGV4_EINVAL, "X-Amz-Date must look like 20150830T123600Z");
            if (have_date && memcmp(ch->value, res->amz_date, 16) != 0)
                FAIL(DMS_SIGV4_EINVAL, "conflicting X-Amz-Date headers");
            memcpy(res->amz_date, ch->value, 16);
            res->amz_date[16] = '\0';
            have_date = 1;
        } else if (ch->name_len == 20 && memcmp(ch->name, "x-amz-security-token", 20) == 0) {
            have_token = 1;
        }
    }
    if (!have_date) {
        if (c->date_value[0] && c->date_time == req->time) {
            memcpy(res->amz_date, c->date_value, 17);
        } else {
            if (format_amz_date(req->time, res->amz_date) != 0)
                FAIL(DMS_SIGV4_EINVAL, "time is out of range");
            c->date_time = req->time;
            memcpy(c->date_value, res->amz_date, 17);
        }
        res->date_added = 1;
        hs[nh].name = "x-amz-date";
        hs[nh].name_len = 10;
        hs[nh].value = res->amz_date;
        hs[nh].value_len = 16;
        hs[nh].order = nh;
        nh++;
    }
    if (req->session_token && *req->session_token && !have_token) {
        res->token_added = 1;
        if (req->sign_session_token) {
            hs[nh].name = "x-amz-security-token";
            hs[nh].name_len = 20;
            hs[nh].value = arena->data + arena->len;
            hs[nh].value_len = add_trimmed(arena, req->session_token, token_len);
            arena->len++;
            hs[nh].order = nh;
            nh++;
        }
    }
    sort_headers(hs, nh);
    memcpy(date, res->amz_date, 8);
    date[8] = '\0';

    /* 1. canonical request: method, URI, query, headers (duplicates joined
     * with ','), signed header names, payload hash */
    sb_adds(text, req->method);
    sb_addc(text, '\n');
    canonical_uri(text, req->path, req->normalize_path);
    sb_addc(text, '\n');
    if (canonical_query(text, req->query) != 0)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");
    sb_addc(text, '\n');
    for (i = 0; i < nh; i++) {
        if (i > 0 && same_name(&hs[i], &hs[i - 1])) {
            text->len--;                    /* the previous value's '\n' */
            sb_addc(text, ',');
        } else {
            sb_add(text, hs[i].name, hs[i].name_len);
            sb_addc(text, ':');
        }
        sb_add(text, hs[i].value, hs[i].value_len);
        sb_addc(text, '\n');
    }
    sb_addc(text, '\n');
    names_off = text->len;
    for (i = 0; i < nh; i++) {
        if (i > 0 && same_name(&hs[i], &hs[i - 1]))
            continue;
        if (i > 0)
            sb_addc(text, ';');
        sb_add(text, hs[i].name, hs[i].name_len);
    }
    names_len = text->len - names_off;
    sb_addc(text, '\n');
    if (!sha256(c, req->body ? req->body : "", req->body ? req->body_len : 0, md)) {
        crypto_error(err, errlen, "SHA-256");
        rc = DMS_SIGV4_ECRYPTO;
        goto out;
    }
    hex_lower(md, 32, hex);
    sb_add(text, hex, 64);
    if (text->failed)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");
    cr_len = text->len;

    /* 2. string to sign: algorithm, date, scope, hash of the canonical request */
    if (!sha256(c, text->data, cr_len, md)) {
        crypto_error(err, errlen, "SHA-256");
        rc = DMS_SIGV4_ECRYPTO;
        goto out;
    }
    hex_lower(md, 32, hex);
    sb_addc(text, '\0');
    sts_off = text->len;
    sb_adds(text, "AWS4-HMAC-SHA256\n");
    sb_add(text, res->amz_date, 16);
    sb_addc(text, '\n');
    add_scope(text, date, req);
    sb_addc(text, '\n');
    sb_add(text, hex, 64);
    if (text->failed)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");
    sts_len = text->len - sts_off;

    /* 3. signing key and 4. signature */
    switch (sign_sts(c, cache, req, date, text->data + sts_off, sts_len, sig)) {
    case 0:
        break;
    case -2:
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");
    default:
        crypto_error(err, errlen, "HMAC-SHA256");
        rc = DMS_SIGV4_ECRYPTO;
        goto out;
    }
    hex_lower(sig, 32, res->signature);
    OPENSSL_cleanse(sig, sizeof sig);

    /* the Authorization header */
    sb_addc(text, '\0');
    auth_off = text->len;
    sb_adds(text, "AWS4-HMAC-SHA256 Credential=");
    sb_adds(text, req->access_key);
    sb_addc(text, '/');
    add_scope(text, date, req);
    sb_adds(text, ", SignedHeaders=");
    sb_add_own(text, names_off, names_len);
    sb_adds(text, ", Signature=");
    sb_add(text, res->signature, 64);
    if (text->failed)
        FAIL(DMS_SIGV4_ENOMEM, "out of memory");

    text->data[cr_len] = '\0';
    text->data[sts_off + sts_len] = '\0';
    res->canonical_request_len = cr_len;
    res->string_to_sign_len = sts_len;
    res->authorization_len = text->len - auth_off;
    res->canonical_request = text->data;
    res->string_to_sign = text->data + sts_off;
    res->authorization = text->data + auth_off;
    if (!cache) {
        res->owned = text->data;        /* the result's now */
        text->data = NULL;
        text->len = text->cap = 0;
    }

out:
    if (hs && hs != stack_hs)
        free(hs);
    if (c == &local)
        crypto_release(c, 1);
    else if (c && c->arena.data && token_len)
        OPENSSL_cleanse(c->arena.data, c->arena.len);      /* a session token was there */
    if (rc != DMS_SIGV4_OK)
        dms_sigv4_result_free(res);
    return rc;
}

void dms_sigv4_result_free(dms_sigv4_result *res)
{
    /* a result's own strings are wiped; a cache's are overwritten by its next
     * signature and wiped when it is cleared */
    if (res->owned && res->authorization)
        OPENSSL_cleanse(res->authorization, res->authorization_len);
    free(res->owned);
    res->owned = NULL;
    res->canonical_request = res->string_to_sign = res->authorization = NULL;
    res->canonical_request_len = res->string_to_sign_len = res->authorization_len = 0;
    OPENSSL_cleanse(res->signature, sizeof res->signature);
}
