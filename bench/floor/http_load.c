/*
 * A small load generator: CONCURRENCY kept-alive connections (libcurl multi)
 * send GET URL until REQUESTS answers have come back, after one untimed
 * round of warm-up requests.
 *
 *   http_load URL REQUESTS CONCURRENCY ["Name: value" ...]
 *
 * Prints one line: {"rps": <answers per second>, "non_200": <count>, "connects": <connections opened>}
 * and exits non-zero when a transfer fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct curl_slist *headers = NULL;
    CURLM *m;
    CURL **easy;
    long requests, started = 0 /* in flight */, done = 0, non_200 = 0, connects = 0;
    int conc, i, running = 0, warm;
    double t0 = 0, t1;

    if (argc < 4) {
        fprintf(stderr, "usage: %s URL REQUESTS CONCURRENCY [\"Name: value\" ...]\n", argv[0]);
        return 2;
    }
    requests = atol(argv[2]);
    conc = atoi(argv[3]);
    if (conc < 1)
        conc = 1;
    for (i = 4; i < argc; i++)
        headers = curl_slist_append(headers, argv[i]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    m = curl_multi_init();
    easy = calloc((size_t)conc, sizeof *easy);
    if (!m || !easy)
        return 1;
    for (i = 0; i < conc; i++) {
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, argv[1]);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
        easy[i] = c;
    }
    /* warm-up: one request per connection, untimed */
    warm = conc;
    for (i = 0; i < conc; i++)
        curl_multi_add_handle(m, easy[i]);
    started = conc;
    while (warm > 0 || done < requests) {
        CURLMsg *msg;
        int left;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left))) {
            CURL *c;
            long status = 0, n = 0;
            if (msg->msg != CURLMSG_DONE)
                continue;
            c = msg->easy_handle;
            if (msg->data.result != CURLE_OK) {
                fprintf(stderr, "transfer failed: %s\n", curl_easy_strerror(msg->data.result));
                return 1;
            }
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n);
            curl_multi_remove_handle(m, c);
            if (warm > 0) {
                if (--warm == 0)
                    t0 = now();
            } else {
                done++;
                connects += n;
                if (status != 200)
                    non_200++;
            }
            started--;              /* in flight */
            if (warm > 0 || done + started < requests) {
                started++;
                curl_multi_add_handle(m, c);
            }
        }
        if (warm > 0 || done < requests)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    t1 = now();
    printf("{\"rps\": %.0f, \"non_200\": %ld, \"connects\": %ld}\n",
           (double)requests / (t1 - t0), non_200, connects);
    for (i = 0; i < conc; i++)
        curl_easy_cleanup(easy[i]);
    curl_multi_cleanup(m);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    free(easy);
    return non_200 ? 1 : 0;
}
