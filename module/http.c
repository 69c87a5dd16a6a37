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


struct dms_http {
    CURL *curl;
    dms_buf headers;
    dms_buf body;
    size_t max_bytes;
    int too_large;
    int nomem;
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

#define SET(opt, val) do { if ((rc = curl_easy_setopt(c, opt, val)) != CURLE_OK) goto setopt_failed; } while (0)

dms_http_status dms_http_perform(dms_http *h, const dms_http_request *req, dms_http_response *res)
{
    CURL *c = h->curl;
    struct curl_slist *list = NULL, *tmp;
    CURLcode rc;
    size_t i;
    long connects = 0, port = 0;
    double total = 0, pretransfer = 0;
    const char *detail;

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

    for (i = 0; i < req->nheaders; i++) {
        tmp = curl_slist_append(list, req->headers[i]);
        if (!tmp)
            goto nomem;
        list = tmp;
    }
    /* No 100-continue round trip, and no Accept header we did not ask for. */
    if (!(tmp = curl_slist_append(list, "Expect:")))
        goto nomem;
    list = tmp;

    /* Every option, on every exchange: reset keeps only live connections and caches. */
    curl_easy_reset(c);
    SET(CURLOPT_URL, req->url);
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
    SET(CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 5000L);
    SET(CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 60000L);
    if (req->insecure) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);   /* insecure: asked for explicitly */
        SET(CURLOPT_SSL_VERIFYHOST, 0L);   /* insecure: asked for explicitly */
    } else {
        SET(CURLOPT_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_SSL_VERIFYHOST, 2L);
    }
    if (req->ca_file)
        SET(CURLOPT_CAINFO, req->ca_file);
    /* libcurl sends a request again, unasked, when a reused connection closes
     * before any answer: a non-idempotent call must not ride on one. */
    SET(CURLOPT_FRESH_CONNECT, req->fresh_connect ? 1L : 0L);
    SET(CURLOPT_HTTPHEADER, list);
    SET(CURLOPT_ERRORBUFFER, h->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, h);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, h);
    if (strcmp(req->method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "POST") == 0) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
    } else {
        SET(CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body_len) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            SET(CURLOPT_POSTFIELDS, req->body);
        }
    }
    h->max_bytes = req->max_response_bytes ? req->max_response_bytes : (size_t)8 << 20;

    rc = curl_easy_perform(c);
    curl_slist_free_all(list);
    list = NULL;
    /* The handle still points at the freed list: clear it before anything else. */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);

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
    curl_slist_free_all(list);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    return fail(h, res, DMS_HTTP_OTHER, "curl option refused: %s", curl_easy_strerror(rc));
nomem:
    curl_slist_free_all(list);
    return fail(h, res, DMS_HTTP_NOMEM, "%s", "out of memory");
}
