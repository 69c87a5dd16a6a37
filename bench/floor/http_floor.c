/*
 * The floor of one DMS call over HTTP: a C loop around one libcurl easy
 * handle that sends a fixed request (the method, header lines and body the
 * client sent, read from a file) and keeps the response head and body in
 * memory, as the client does. Options are set once; nothing is signed,
 * built or parsed.
 *
 *   http_floor URL REQUEST_FILE CALLS [fresh]
 *
 * REQUEST_FILE: the method on the first line, one "Name: value" header line
 * per line, an empty line, then the body. "fresh" opens a new connection for
 * every call (CURLOPT_FRESH_CONNECT, as the client does for a call that must
 * not be re-sent); otherwise the connection is kept alive.
 *
 * Prints one line: {"us": <microseconds per call>, "cpu_us": <CPU time of this
 * process per call>, "connects": <connections opened>, "body_bytes": <last body>}
 * after one untimed warm-up call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

typedef struct {
    char *data;
    size_t len, cap;
} buf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (!(p = realloc(b->data, cap)))
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p;
    long n;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        return NULL;
    p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n)
        return NULL;
    p[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return p;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t len, body_len;
    char *req, *p, *line, *body;
    struct curl_slist *headers = NULL;
    buf head = {0}, resp = {0};
    CURL *c;
    long calls, i, connects = 0, total_connects = 0, status = 0;
    int fresh;
    double t0, t1;
    clock_t c0 = 0, c1;

    if (argc < 4) {
        fprintf(stderr, "usage: %s URL REQUEST_FILE CALLS [fresh]\n", argv[0]);
        return 2;
    }
    calls = atol(argv[3]);
    fresh = argc > 4 && strcmp(argv[4], "fresh") == 0;
    if (!(req = read_file(argv[2], &len))) {
        fprintf(stderr, "cannot read %s\n", argv[2]);
        return 2;
    }
    /* method, header lines, empty line, body */
    line = req;
    p = strchr(line, '\n');
    if (!p)
        return 2;
    *p = '\0';
    line = p + 1;
    while ((p = strchr(line, '\n')) && p != line) {
        *p = '\0';
        headers = curl_slist_append(headers, line);
        line = p + 1;
    }
    if (!p)
        return 2;
    body = p + 1;
    body_len = len - (size_t)(body - req);
    headers = curl_slist_append(headers, "Expect:");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, argv[1]);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (strcmp(req, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
    } else if (strcmp(req, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req);
    }
    if (strcmp(req, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &head);

    t0 = 0;
    for (i = -1; i < calls; i++) {
        CURLcode rc;
        if (i == 0) {
            t0 = now();
            c0 = clock();
        }
        head.len = resp.len = 0;
        rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK || status != 200) {
            fprintf(stderr, "call %ld: %s, status %ld\n", i, curl_easy_strerror(rc), status);
            return 1;
        }
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
        if (i >= 0)
            total_connects += connects;
    }
    t1 = now();
    c1 = clock();
    printf("{\"us\": %.2f, \"cpu_us\": %.2f, \"connects\": %ld, \"body_bytes\": %zu}\n",
           calls > 0 ? (t1 - t0) * 1e6 / (double)calls : 0.0,
           calls > 0 ? (double)(c1 - c0) * 1e6 / CLOCKS_PER_SEC / (double)calls : 0.0, total_connects, resp.len);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    free(head.data);
    free(resp.data);
    free(req);
    return 0;
}
