/*
 * One HTTP exchange over libcurl. No Lua in here.
 *
 * A dms_http owns one curl easy handle, reused for every exchange so that
 * connections are kept alive, the buffers of the request's header lines and
 * of the last response. No state of a previous request leaks into the next
 * one: the options that vary per request (URL, header list, body, fresh
 * connection) are set on every exchange, and the handle is reset and every
 * other option set again whenever one of them (method, timeouts, TLS
 * settings) differs from the previous exchange's.
 */
#ifndef DMS_HTTP_H
#define DMS_HTTP_H

#include <stddef.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)   /* only luaopen_dms_curl is exported */
#endif

typedef struct dms_http dms_http;

/* the largest response head (status line and headers) accepted */
#define DMS_HTTP_MAX_HEAD_BYTES (64 * 1024)

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} dms_http_header;

typedef struct {
    const char *url;
    const char *method;
    const dms_http_header *headers; /* sent as "Name: value" lines, in this order */
    size_t nheaders;
    const char *body;
    size_t body_len;
    long connect_timeout_ms;
    long timeout_ms;
    size_t max_response_bytes;
    const char *ca_file;            /* NULL: the system store */
    int insecure;                   /* 1: no peer or host verification */
    int fresh_connect;              /* 1: a new connection, so that libcurl never re-sends
                                       the request after a kept-alive connection dies */
} dms_http_request;

typedef enum {
    DMS_HTTP_OK = 0,
    DMS_HTTP_TIMEOUT,               /* connect or total timeout */
    DMS_HTTP_CONNECT,               /* no connection made: the request was not sent */
    DMS_HTTP_TLS,                   /* TLS handshake or verification failed */
    DMS_HTTP_TOO_LARGE,             /* response exceeded max_response_bytes */
    DMS_HTTP_RECV,                  /* sent, but the answer was lost or cut */
    DMS_HTTP_BAD_INPUT,
    DMS_HTTP_NOMEM,
    DMS_HTTP_OTHER
} dms_http_status;

typedef struct {
    long status;
    const char *reason;             /* points into the handle's buffers */
    size_t reason_len;
    const char *headers;            /* raw header block of the final response */
    size_t headers_len;
    const char *body;
    size_t body_len;
    long new_connections;           /* connections opened by this exchange */
    long local_port;
    double total_seconds;
    int sent;                       /* 1 once the request started to go out */
    const char *error;              /* message when the status is not OK */
} dms_http_response;

dms_http *dms_http_new(void);
void dms_http_free(dms_http *h);
dms_http_status dms_http_perform(dms_http *h, const dms_http_request *req, dms_http_response *res);

/* libcurl's version line, e.g. "libcurl/7.88.1 OpenSSL/3.0.11 ...". */
const char *dms_http_version(void);

/* Process-wide libcurl initialisation; idempotent, returns 0 on success. */
int dms_http_global_init(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
