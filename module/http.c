/*
 * One HTTP exchange over libcurl.
 *
 * Callbacks only append bytes to buffers owned by the handle: they never call
 * into Lua, so no Lua error can unwind through libcurl's frames.
 */
#include "http.h"
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>


/* the options set by a full reset, as the last exchange had them */
typedef struct {
    int valid;                      /* 0: reset before the next exchange */
    char method[24];                /* "" for a method name too long to remember */
    int custom_body;                /* a custom method with a body */
    long connect_timeout_ms;
    long timeout_ms;
    int insecure;
    char *ca_file;                  /* a copy, or NULL */
} applied_options;

struct dms_http {
    CURL *curl;
    dms_buf headers;
    dms_buf body;
    size_t max_bytes;
    int too_large;
    int nomem;
    dms_buf lines;                  /* the request's "Name: value" lines, NUL-separated */
    struct curl_slist *nodes;       /* the header list, its nodes pointing into lines */
    size_t nodes_cap;
    char *url;                      /* the URL last set (libcurl keeps its own copy) */
    applied_options applied;
    char errbuf[CURL_ERROR_SIZE];
    char message[CURL_ERROR_SIZE + 128];
};

int dms_http_global_init(void)
{
    static int done;
    if (!done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return -1;
        done = 1;
    }
    return 0;
}

const char *dms_http_version(void)
{
    /* curl_version() would probe libldap, whose one-time setup never frees */
    static char line[160];
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    snprintf(line, sizeof line, "libcurl/%s %s", v->version, v->ssl_version ? v->ssl_version : "");
    return line;
}

dms_http *dms_http_new(void)
{
    dms_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->curl = curl_easy_init();
    if (!h->curl) {
        free(h);
        return NULL;
    }
    return h;
}

void dms_http_free(dms_http *h)
{
    if (!h)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    dms_buf_free(&h->headers);
    dms_buf_free(&h->body);
    dms_buf_free(&h->lines);
    free(h->nodes);
    free(h->url);
    free(h->applied.ca_file);
    free(h);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    dms_http *h = ud;
    size_t n = size * nmemb;
    if (h->body.len + n > h->max_bytes) {
        h->too_large = 1;
        return 0;               /* makes curl abort with CURLE_WRITE_ERROR */
    }
    if (dms_buf_add(&h->body, ptr, n) != 0) {
        h->nomem = 1;
        return 0;
    }
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    dms_http *h = ud;
    size_t n = size * nmemb;
    /* A new status line starts a new response (after 100 Continue): keep only the last. */
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
        dms_buf_reset(&h->headers);
    if (n > 15 && strncasecmp(ptr, "content-length:", 15) == 0) {
        unsigned long long v = strtoull(ptr + 15, NULL, 10);
        if (v > h->max_bytes) {
            h->too_large = 1;
            return 0;           /* refuse before reading the body */
        }
    }
    if (h->headers.len + n > DMS_HTTP_MAX_HEAD_BYTES) {
        h->too_large = 1;       /* a response head no DMS answer comes near */
        return 0;
    }
    if (dms_buf_add(&h->headers, ptr, n) != 0) {
        h->nomem = 1;
        return 0;
    }
    return n;
}

static dms_http_status fail(dms_http *h, dms_http_response *res, dms_http_status st,
                            const char *fmt, const char *detail)
{
    snprintf(h->message, sizeof h->message, fmt, detail);
    res->error = h->message;
    return st;
}

/* The header list: "Name: value" lines in one buffer, and curl_slist nodes
 * (a public struct: libcurl only reads the list, during the transfer) in
 * an array, both kept by the handle: no allocation once they are large
 * enough. Returns the list, or NULL when out of memory. */
static struct curl_slist *header_list(dms_http *h, const dms_http_request *req)
{
    size_t i, need = 8, n = req->nheaders + 1, off;
    dms_buf_reset(&h->lines);
    for (i = 0; i < req->nheaders; i++)
        need += req->headers[i].name_len + req->headers[i].value_len + 3;
    if (dms_buf_reserve(&h->lines, need) != 0)
        return NULL;
    if (n > h->nodes_cap) {
        struct curl_slist *p = realloc(h->nodes, n * sizeof *p);
        if (!p)
            return NULL;
        h->nodes = p;
        h->nodes_cap = n;
    }
    for (i = 0; i < req->nheaders; i++) {
        const dms_http_header *hd = &req->headers[i];
        char *p = h->lines.data + h->lines.len;
        memcpy(p, hd->name, hd->name_len);
        p[hd->name_len] = ':';
        p[hd->name_len + 1] = ' ';
        memcpy(p + hd->name_len + 2, hd->value, hd->value_len);
        p[hd->name_len + 2 + hd->value_len] = '\0';
        h->lines.len += hd->name_len + hd->value_len + 3;
    }
    /* No 100-continue round trip. */
    memcpy(h->lines.data + h->lines.len, "Expect:", 8);
    for (i = 0, off = 0; i < n; i++) {
        h->nodes[i].data = h->lines.data + off;
        h->nodes[i].next = i + 1 < n ? &h->nodes[i + 1] : NULL;
        off += strlen(h->nodes[i].data) + 1;
    }
    return h->nodes;
}

static int same_string(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* 1 when the options a full reset sets are those the last exchange had */
static int options_unchanged(const dms_http *h, const dms_http_request *req, int custom_body)
{
    const applied_options *a = &h->applied;
    return a->valid && a->method[0] && strcmp(a->method, req->method) == 0 && a->custom_body == custom_body
           && a->connect_timeout_ms == req->connect_timeout_ms && a->timeout_ms == req->timeout_ms
           && a->insecure == (req->insecure != 0) && same_string(a->ca_file, req->ca_file);
}

static void remember_options(dms_http *h, const dms_http_request *req, int custom_body)
{
    applied_options *a = &h->applied;
    size_t n = strlen(req->method);
    free(a->ca_file);
    a->ca_file = req->ca_file ? strdup(req->ca_file) : NULL;
    if (n < sizeof a->method)
        memcpy(a->method, req->method, n + 1);
    else
        a->method[0] = '\0';
    a->custom_body = custom_body;
    a->connect_timeout_ms = req->connect_timeout_ms;
    a->timeout_ms = req->timeout_ms;
    a->insecure = req->insecure != 0;
    a->valid = !req->ca_file || a->ca_file;
}

#define SET(opt, val) do { if ((rc = curl_easy_setopt(c, opt, val)) != CURLE_OK) goto setopt_failed; } while (0)

dms_http_status dms_http_perform(dms_http *h, const dms_http_request *request, dms_http_response *res)
{
    dms_http_request r = *request, *req = &r;
    CURL *c = h->curl;
    struct curl_slist *list;
    CURLcode rc;
    long connects = 0, port = 0;
    double total = 0, pretransfer = 0;
    const char *detail;
    int is_get, is_post, custom_body;

    memset(res, 0, sizeof *res);
    dms_buf_reset(&h->headers);
    dms_buf_reset(&h->body);
    h->too_large = 0;
    h->nomem = 0;
    h->errbuf[0] = '\0';
    if (h->headers.data)
        h->headers.data[0] = '\0';

    if (!req->url || !req->method)
        return fail(h, res, DMS_HTTP_BAD_INPUT, "%s", "url and method are required");
    if (!(list = header_list(h, req)))
        return fail(h, res, DMS_HTTP_NOMEM, "%s", "out of memory");
    is_get = strcmp(req->method, "GET") == 0;
    is_post = strcmp(req->method, "POST") == 0;
    custom_body = !is_get && !is_post && req->body_len > 0;
    if (r.connect_timeout_ms <= 0)
        r.connect_timeout_ms = 5000L;
    if (r.timeout_ms <= 0)
        r.timeout_ms = 60000L;

    if (!options_unchanged(h, req, custom_body)) {
        /* Every option again: reset keeps only live connections and caches. */
        h->applied.valid = 0;
        free(h->url);
        h->url = NULL;
        curl_easy_reset(c);
#if LIBCURL_VERSION_NUM >= 0x075500
        SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
        SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_NOPROGRESS, 1L);
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        SET(CURLOPT_TCP_KEEPALIVE, 1L);
        SET(CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
        SET(CURLOPT_TIMEOUT_MS, req->timeout_ms);
        if (req->insecure) {
            SET(CURLOPT_SSL_VERIFYPEER, 0L);   /* insecure: asked for explicitly */
            SET(CURLOPT_SSL_VERIFYHOST, 0L);   /* insecure: asked for explicitly */
        } else {
            SET(CURLOPT_SSL_VERIFYPEER, 1L);
            SET(CURLOPT_SSL_VERIFYHOST, 2L);
        }
        if (req->ca_file)
            SET(CURLOPT_CAINFO, req->ca_file);
        SET(CURLOPT_ERRORBUFFER, h->errbuf);
        SET(CURLOPT_WRITEFUNCTION, on_body);
        SET(CURLOPT_WRITEDATA, h);
        SET(CURLOPT_HEADERFUNCTION, on_header);
        SET(CURLOPT_HEADERDATA, h);
        if (is_get)
            SET(CURLOPT_HTTPGET, 1L);
        else if (is_post)
            SET(CURLOPT_POST, 1L);
        else
            SET(CURLOPT_CUSTOMREQUEST, req->method);
        remember_options(h, req, custom_body);
    }
    /* What varies per request, on every exchange. */
    if (!h->url || strcmp(h->url, req->url) != 0) {
        free(h->url);
        h->url = NULL;
        SET(CURLOPT_URL, req->url);
        h->url = strdup(req->url);          /* when NULL, the URL is set again next time */
    }
    /* libcurl sends a request again, unasked, when a reused connection closes
     * before any answer: a non-idempotent call must not ride on one. */
    SET(CURLOPT_FRESH_CONNECT, req->fresh_connect ? 1L : 0L);
    SET(CURLOPT_HTTPHEADER, list);
    if (is_post || custom_body) {
        /* the body is the caller's, read during the transfer only */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
    }
    h->max_bytes = req->max_response_bytes ? req->max_response_bytes : (size_t)8 << 20;

    rc = curl_easy_perform(c);
    /* The list and the body stay referenced by the handle until the next
     * exchange sets them again; libcurl reads them only during a transfer. */

    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(c, CURLINFO_LOCAL_PORT, &port);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &total);
    res->new_connections = connects;
    res->local_port = port;
    res->total_seconds = total;
    curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME, &pretransfer);
    res->sent = pretransfer > 0;

    detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
    if (h->nomem)
        return fail(h, res, DMS_HTTP_NOMEM, "%s", "out of memory while reading the response");
    if (h->too_large || (rc == CURLE_OUT_OF_MEMORY && res->sent)) {
        /* libcurl answers CURLE_OUT_OF_MEMORY for a header line beyond its own limit */
        snprintf(h->message, sizeof h->message,
                 "response larger than max_response_bytes (%zu) or a head over %d bytes: transfer aborted",
                 h->max_bytes, DMS_HTTP_MAX_HEAD_BYTES);
        res->error = h->message;
        return DMS_HTTP_TOO_LARGE;
    }
    switch (rc) {
    case CURLE_OK:
        break;
    case CURLE_OPERATION_TIMEDOUT:
        return fail(h, res, DMS_HTTP_TIMEOUT, "timed out: %s", detail);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return fail(h, res, DMS_HTTP_CONNECT, "could not connect: %s", detail);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
        return fail(h, res, DMS_HTTP_TLS, "TLS failed: %s", detail);
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        return fail(h, res, DMS_HTTP_RECV, "connection lost: %s", detail);
    default:
        return fail(h, res, DMS_HTTP_OTHER, "HTTP exchange failed: %s", detail);
    }

    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
    res->headers = h->headers.data ? h->headers.data : "";
    res->headers_len = h->headers.len;
    res->body = h->body.data ? h->body.data : "";
    res->body_len = h->body.len;
    /* reason phrase: the status line's text after the code */
    if (h->headers.len > 0) {
        const char *sp = memchr(h->headers.data, ' ', h->headers.len);
        const char *eol = memchr(h->headers.data, '\r', h->headers.len);
        if (sp && eol && sp + 4 < eol) {
            res->reason = sp + 5;
            res->reason_len = (size_t)(eol - res->reason);
        }
    }
    return DMS_HTTP_OK;

setopt_failed:
    h->applied.valid = 0;               /* start from a reset next time */
    return fail(h, res, DMS_HTTP_OTHER, "curl option refused: %s", curl_easy_strerror(rc));
}
