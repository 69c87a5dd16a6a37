/*
 * libFuzzer harness for the SigV4 signer (module/sigv4.c).
 *
 * Build and run with test/fuzz/run.sh, or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -o /tmp/fuzz_sigv4 \
 *       test/fuzz/fuzz_sigv4.c module/sigv4.c -lcrypto
 *
 * The input reads like the .req files of the AWS SigV4 test suite, which are
 * the seed corpus:
 *
 *   [!region\tservice\taccess_key\tsecret_key\tsession_token\ttime\n]
 *   METHOD PATH[?QUERY][ HTTP/1.1]\n
 *   Name:value\n              (a line starting with a blank continues a value)
 *   ...
 *   \n
 *   body
 *
 * The optional first line overrides the credentials, scope and clock (the
 * secret key and header values may hold any byte, NUL included). Every input
 * is signed with and without path normalization, with no session token, a
 * token that is signed and a token that is not, each twice (with and without
 * the key cache), and these must hold:
 *   - nothing crashes, leaks or trips a sanitizer;
 *   - on success the Authorization starts "AWS4-HMAC-SHA256 Credential=",
 *     ends with ", Signature=" and the signature, which is 64 lowercase hex;
 *     the canonical request and string to sign are there;
 *   - signing the same input twice gives the same result;
 *   - on failure an error message is set and no string is left allocated.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../module/sigv4.h"

#define MAX_HEADERS 64

typedef struct {
    char *method, *path, *query;
    char *region, *service, *access_key, *session_token;
    char *secret_key;
    size_t secret_key_len;
    int64_t time;
    dms_sigv4_header headers[MAX_HEADERS];
    char *owned[MAX_HEADERS];       /* values rebuilt from continuation lines */
    size_t nheaders;
    const char *body;
    size_t body_len;
} fuzz_req;

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        abort();
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *dup_s(const char *s)
{
    return dup_n(s, strlen(s));
}

/* Next line of [*pos, end): returns its start and length (without '\n'). */
static const char *next_line(const char *data, size_t size, size_t *pos, size_t *len)
{
    const char *start, *nl;
    if (*pos >= size)
        return NULL;
    start = data + *pos;
    nl = memchr(start, '\n', size - *pos);
    if (nl) {
        *len = (size_t)(nl - start);
        *pos += *len + 1;
    } else {
        *len = size - *pos;
        *pos = size;
    }
    return start;
}

/* Splits s[0..n) on '\t' into at most max fields. */
static size_t split_tabs(const char *s, size_t n, const char **f, size_t *flen, size_t max)
{
    size_t k = 0, i, start = 0;
    for (i = 0; i <= n && k < max; i++) {
        if (i == n || s[i] == '\t') {
            f[k] = s + start;
            flen[k] = i - start;
            k++;
            start = i + 1;
        }
    }
    return k;
}

static void parse_input(const uint8_t *bytes, size_t size, fuzz_req *r)
{
    const char *data = (const char *)bytes, *line;
    size_t pos = 0, len;

    memset(r, 0, sizeof *r);
    r->region = dup_s("us-east-1");
    r->service = dup_s("service");
    r->access_key = dup_s("AKIDEXAMPLE");
    r->secret_key = dup_s("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    r->secret_key_len = strlen(r->secret_key);
    r->session_token = dup_s("AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW"
                             "LWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGd"
                             "QrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU"
                             "9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz"
                             "+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==");
    r->time = 1440938160;   /* 20150830T123600Z */

    line = next_line(data, size, &pos, &len);
    if (line && len > 0 && line[0] == '!') {
        const char *f[6];
        size_t flen[6], k = split_tabs(line + 1, len - 1, f, flen, 6);
        char num[32];
        if (k > 0) { free(r->region); r->region = dup_n(f[0], flen[0]); }
        if (k > 1) { free(r->service); r->service = dup_n(f[1], flen[1]); }
        if (k > 2) { free(r->access_key); r->access_key = dup_n(f[2], flen[2]); }
        if (k > 3) {
            free(r->secret_key);
            r->secret_key = dup_n(f[3], flen[3]);
            r->secret_key_len = flen[3];
        }
        if (k > 4) { free(r->session_token); r->session_token = dup_n(f[4], flen[4]); }
        if (k > 5) {
            snprintf(num, sizeof num, "%.*s", (int)(flen[5] < 31 ? flen[5] : 31), f[5]);
            r->time = (int64_t)strtoll(num, NULL, 10);
        }
        line = next_line(data, size, &pos, &len);
    }

    /* request line: METHOD PATH[?QUERY][ HTTP/1.1] */
    if (line) {
        const char *sp, *rest, *q, *end;
        size_t mlen, rlen;
        if (len && line[len - 1] == '\r')
            len--;
        sp = memchr(line, ' ', len);
        mlen = sp ? (size_t)(sp - line) : len;
        r->method = dup_n(line, mlen);
        if (sp) {
            rest = sp + 1;
            rlen = len - mlen - 1;
            if (rlen >= 9 && memcmp(rest + rlen - 9, " HTTP/1.1", 9) == 0)
                rlen -= 9;
            end = rest + rlen;
            q = memchr(rest, '?', rlen);
            if (q) {
                r->path = dup_n(rest, (size_t)(q - rest));
                r->query = dup_n(q + 1, (size_t)(end - q - 1));
            } else {
                r->path = dup_n(rest, rlen);
            }
        }
    } else {
        r->method = dup_s("GET");
    }

    /* headers, then a blank line and the body */
    while ((line = next_line(data, size, &pos, &len)) != NULL) {
        const char *colon;
        if (len && line[len - 1] == '\r')
            len--;
        if (len == 0) {
            r->body = data + pos;
            r->body_len = size - pos;
            break;
        }
        if ((line[0] == ' ' || line[0] == '\t') && r->nheaders > 0) {
            dms_sigv4_header *h = &r->headers[r->nheaders - 1];
            char *v = malloc(h->value_len + 1 + len);
            if (!v)
                abort();
            memcpy(v, h->value, h->value_len);
            v[h->value_len] = ' ';
            memcpy(v + h->value_len + 1, line, len);
            free(r->owned[r->nheaders - 1]);
            r->owned[r->nheaders - 1] = v;
            h->value = v;
            h->value_len += 1 + len;
        } else if (r->nheaders < MAX_HEADERS) {
            dms_sigv4_header *h = &r->headers[r->nheaders++];
            colon = memchr(line, ':', len);
            h->name = line;
            h->name_len = colon ? (size_t)(colon - line) : len;
            h->value = colon ? colon + 1 : line + len;
            h->value_len = colon ? len - h->name_len - 1 : 0;
        }
    }
}

static void free_input(fuzz_req *r)
{
    size_t i;
    free(r->method);
    free(r->path);
    free(r->query);
    free(r->region);
    free(r->service);
    free(r->access_key);
    free(r->secret_key);
    free(r->session_token);
    for (i = 0; i < MAX_HEADERS; i++)
        free(r->owned[i]);
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant broken: %s\n", what);
        abort();
    }
}

static void check_result(int rc, const dms_sigv4_result *res, const char *err)
{
    size_t i, alen;
    check(rc >= DMS_SIGV4_OK && rc <= DMS_SIGV4_ECRYPTO, "return code in range");
    if (rc != DMS_SIGV4_OK) {
        check(err[0] != '\0', "an error has a message");
        check(strlen(err) < 256, "the message fits the buffer");
        check(!res->canonical_request && !res->string_to_sign && !res->authorization,
              "nothing left allocated on failure");
        return;
    }
    check(res->canonical_request && res->string_to_sign && res->authorization, "strings present");
    check(strlen(res->canonical_request) == res->canonical_request_len
          && strlen(res->string_to_sign) == res->string_to_sign_len
          && strlen(res->authorization) == res->authorization_len, "lengths of the strings");
    check(strncmp(res->authorization, "AWS4-HMAC-SHA256 Credential=", 28) == 0,
          "Authorization starts with AWS4-HMAC-SHA256 Credential=");
    check(strlen(res->signature) == 64, "signature is 64 characters");
    for (i = 0; i < 64; i++)
        check((res->signature[i] >= '0' && res->signature[i] <= '9')
              || (res->signature[i] >= 'a' && res->signature[i] <= 'f'),
              "signature is lowercase hex");
    alen = strlen(res->authorization);
    check(alen > 64 + 12 && memcmp(res->authorization + alen - 64 - 12, ", Signature=", 12) == 0
          && strcmp(res->authorization + alen - 64, res->signature) == 0,
          "Authorization ends with the signature");
    check(strlen(res->amz_date) == 16 && res->amz_date[8] == 'T' && res->amz_date[15] == 'Z',
          "X-Amz-Date looks like 20150830T123600Z");
    check(strncmp(res->string_to_sign, "AWS4-HMAC-SHA256\n", 17) == 0, "string to sign header");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dms_sigv4_cache cache;
    fuzz_req r;
    int normalize, token_mode;

    parse_input(data, size, &r);
    for (normalize = 0; normalize <= 1; normalize++) {
        for (token_mode = 0; token_mode <= 2; token_mode++) {
            dms_sigv4_request q;
            dms_sigv4_result a, b;
            char erra[256], errb[256];
            int rca, rcb;

            memset(&q, 0, sizeof q);
            q.method = r.method;
            q.path = r.path;
            q.query = r.query;
            q.headers = r.headers;
            q.nheaders = r.nheaders;
            q.body = r.body;
            q.body_len = r.body_len;
            q.region = r.region;
            q.service = r.service;
            q.access_key = r.access_key;
            q.secret_key = r.secret_key;
            q.secret_key_len = r.secret_key_len;
            q.session_token = token_mode ? r.session_token : NULL;
            q.sign_session_token = token_mode == 2;
            q.time = r.time;
            q.normalize_path = normalize;

            rca = dms_sigv4_sign(&q, NULL, &a, erra, sizeof erra);
            check_result(rca, &a, erra);
            rcb = dms_sigv4_sign(&q, &cache, &b, errb, sizeof errb);
            check_result(rcb, &b, errb);
            check(rca == rcb, "same input, same outcome");
            if (rca == DMS_SIGV4_OK) {
                check(strcmp(a.signature, b.signature) == 0, "same input, same signature");
                check(strcmp(a.authorization, b.authorization) == 0, "same input, same Authorization");
                check(strcmp(a.canonical_request, b.canonical_request) == 0,
                      "same input, same canonical request");
                check(strcmp(a.string_to_sign, b.string_to_sign) == 0, "same input, same string to sign");
                check(a.date_added == b.date_added && a.token_added == b.token_added,
                      "same input, same flags");
            } else {
                check(strcmp(erra, errb) == 0 || rca != DMS_SIGV4_EINVAL, "same input, same error");
            }
            dms_sigv4_result_free(&a);
            dms_sigv4_result_free(&b);
            check(!a.authorization && !b.authorization, "result freed");
        }
    }
    free_input(&r);
    return 0;
}
