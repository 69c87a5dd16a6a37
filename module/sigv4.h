/*
 * AWS Signature Version 4, pure C over OpenSSL. No Lua in here.
 *
 * The caller fills a dms_sigv4_request, calls dms_sigv4_sign(), reads the
 * strings of the result and releases them with dms_sigv4_result_free().
 */
#ifndef DMS_SIGV4_H
#define DMS_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)   /* only luaopen_dms_core is exported */
#endif

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} dms_sigv4_header;

typedef struct {
    const char *method;
    const char *path;               /* raw path, e.g. "/" */
    const char *query;              /* raw query string without '?', or NULL */
    const dms_sigv4_header *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
    const char *region;
    const char *service;
    const char *access_key;
    const char *secret_key;
    size_t secret_key_len;
    const char *session_token;      /* NULL when none */
    int64_t time;                   /* epoch seconds, used unless X-Amz-Date is among headers */
    int normalize_path;             /* RFC 3986 dot-segment removal and '//' collapsing */
    int sign_session_token;         /* add X-Amz-Security-Token to the signed headers */
} dms_sigv4_request;

/* Derived signing keys, cached per (secret, date, region, service), and the
 * OpenSSL state a signature needs, kept between signatures: the digest, one
 * digest context, and the HMAC pad states of each cached key. The secret
 * itself is never stored: entries are keyed by its SHA-256.
 *
 * A zeroed dms_sigv4_cache is an empty cache; the OpenSSL state is made on
 * first use. dms_sigv4_cache_clear() wipes the keys and releases that state
 * (a cache that was used must be cleared once done with). */
#define DMS_SIGV4_CACHE_SLOTS 8

typedef struct {
    unsigned char secret_digest[32];
    char date[9];
    char region[64];
    char service[64];
    unsigned char key[32];
    int used;
} dms_sigv4_cache_entry;

typedef struct dms_sigv4_crypto dms_sigv4_crypto;

typedef struct {
    dms_sigv4_cache_entry entries[DMS_SIGV4_CACHE_SLOTS];
    unsigned next;
    unsigned long hits;
    unsigned long misses;
    dms_sigv4_crypto *crypto;       /* contexts, pad states, text buffers; NULL until first use */
} dms_sigv4_cache;

/* The strings of a signature. Signed without a cache, they are allocated
 * for the result; signed with a cache, they live in the cache's buffers and
 * stay valid until the next signature with that cache (or its clearing).
 * dms_sigv4_result_free() releases or wipes them, in both cases. */
typedef struct {
    char *canonical_request;
    char *string_to_sign;
    char *authorization;
    size_t canonical_request_len;
    size_t string_to_sign_len;
    size_t authorization_len;
    char signature[65];
    char amz_date[17];              /* the X-Amz-Date value that was signed */
    int date_added;                 /* 1 when X-Amz-Date was not among the headers */
    int token_added;                /* 1 when X-Amz-Security-Token must be added */
    char *owned;                    /* the block holding the strings when they are the result's */
} dms_sigv4_result;

enum {
    DMS_SIGV4_OK = 0,
    DMS_SIGV4_EINVAL,               /* bad input; message in err */
    DMS_SIGV4_ENOMEM,
    DMS_SIGV4_ECRYPTO               /* OpenSSL failed; message in err */
};

int dms_sigv4_sign(const dms_sigv4_request *req, dms_sigv4_cache *cache,
                   dms_sigv4_result *out, char *err, size_t errlen);

void dms_sigv4_result_free(dms_sigv4_result *res);

/* Wipes every cached key and releases the cache's OpenSSL state and buffers;
 * the cache is empty (and usable) afterwards. Safe to call twice. */
void dms_sigv4_cache_clear(dms_sigv4_cache *cache);

/* Lowercase hex SHA-256 of data into out[65]. Returns 0 on success. */
int dms_sha256_hex(const void *data, size_t len, char out[65]);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
