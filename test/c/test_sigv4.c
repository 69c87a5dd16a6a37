/*
 * The SigV4 signer on its own, in C: every case of the AWS SigV4 test suite,
 * plus input checks. Built with ASan/UBSan, and again for valgrind, by
 * tools/test.sh (`make test`). Usage: test_sigv4 REFERENCE_DIR
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../module/sigv4.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define MAX_HEADERS 16

static int passed, failed;

static void check(int ok, const char *name, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s: %s\n", name, what);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Parses a .req in place: request line, headers (obs-fold joined with a space), body. */
typedef struct {
    char *method, *path, *query, *body;
    dms_sigv4_header headers[MAX_HEADERS];
    size_t nheaders;
    char *folded[MAX_HEADERS];
} parsed_req;

static int parse_req(char *text, parsed_req *r)
{
    char *line = text, *next, *sp, *end;
    memset(r, 0, sizeof *r);
    next = strchr(line, '\n');
    if (!next)
        return -1;
    *next++ = '\0';
    sp = strchr(line, ' ');
    end = strstr(line, " HTTP/1.1");
    if (!sp || !end)
        return -1;
    *sp = '\0';
    *end = '\0';
    r->method = line;
    r->path = sp + 1;
    r->query = strchr(r->path, '?');
    if (r->query)
        *r->query++ = '\0';
    line = next;
    while (line && *line) {
        char *colon;
        if (*line == '\n' || (line[0] == '\r' && line[1] == '\n')) {
            r->body = strchr(line, '\n') + 1;   /* the blank line ends the headers */
            break;
        }
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if ((*line == ' ' || *line == '\t') && r->nheaders > 0) {
            dms_sigv4_header *h = &r->headers[r->nheaders - 1];
            size_t n = h->value_len + 1 + strlen(line) + 1;
            char *v = malloc(n);
            const char *cont = line;
            while (*cont == ' ' || *cont == '\t')
                cont++;
            snprintf(v, n, "%.*s %s", (int)h->value_len, h->value, cont);
            free(r->folded[r->nheaders - 1]);
            r->folded[r->nheaders - 1] = v;
            h->value = v;
            h->value_len = strlen(v);
        } else if ((colon = strchr(line, ':')) != NULL && r->nheaders < MAX_HEADERS) {
            dms_sigv4_header *h = &r->headers[r->nheaders++];
            h->name = line;
            h->name_len = (size_t)(colon - line);
            h->value = colon + 1;
            h->value_len = strlen(colon + 1);
        }
        line = next;
    }
    if (!r->body)
        r->body = "";
    return 0;
}

static void run_case(const char *dir, const char *name)
{
    char path[4096], *req_text, *creq, *sts, *authz, *sreq, *tok;
    parsed_req r;
    dms_sigv4_request q;
    dms_sigv4_result res;
    dms_sigv4_cache cache;
    char err[256];
    size_t i;

    memset(&cache, 0, sizeof cache);
#define LOAD(var, ext) do { snprintf(path, sizeof path, "%s/%s%s", dir, name, ext); var = slurp(path); } while (0)
    LOAD(req_text, ".req");
    LOAD(creq, ".creq");
    LOAD(sts, ".sts");
    LOAD(authz, ".authz");
    LOAD(sreq, ".sreq");
#undef LOAD
    if (!req_text || !creq || !sts || !authz || !sreq || parse_req(req_text, &r) != 0) {
        check(0, name, "cannot read the case");
        goto out;
    }
    memset(&q, 0, sizeof q);
    q.method = r.method;
    q.path = r.path;
    q.query = r.query;
    q.headers = r.headers;
    q.nheaders = r.nheaders;
    q.body = r.body;
    q.body_len = strlen(r.body);
    q.region = "us-east-1";
    q.service = "service";
    q.access_key = "AKIDEXAMPLE";
    q.secret_key = SECRET;
    q.secret_key_len = strlen(SECRET);
    q.time = 1440938160;
    q.normalize_path = 1;
    q.sign_session_token = 1;
    /* a token only in the signed request: signed or not as the expected Authorization says */
    tok = strstr(sreq, "X-Amz-Security-Token:");
    if (tok && !strstr(req_text, "X-Amz-Security-Token")) {
        char *e = strchr(tok, '\n');
        if (e)
            *e = '\0';
        q.session_token = tok + strlen("X-Amz-Security-Token:");
        q.sign_session_token = strstr(authz, "x-amz-security-token") != NULL;
    }
    if (dms_sigv4_sign(&q, &cache, &res, err, sizeof err) != DMS_SIGV4_OK) {
        check(0, name, err);
        goto out;
    }
    check(strcmp(res.canonical_request, creq) == 0, name, "canonical request");
    check(strcmp(res.string_to_sign, sts) == 0, name, "string to sign");
    check(strcmp(res.authorization, authz) == 0, name, "Authorization");
    check(res.canonical_request_len == strlen(creq) && res.string_to_sign_len == strlen(sts)
          && res.authorization_len == strlen(authz), name, "lengths of the strings");
    dms_sigv4_result_free(&res);
    /* without a cache: the strings are the result's own, and the same */
    if (dms_sigv4_sign(&q, NULL, &res, err, sizeof err) != DMS_SIGV4_OK) {
        check(0, name, err);
        goto out;
    }
    check(res.owned != NULL && strcmp(res.canonical_request, creq) == 0 && strcmp(res.string_to_sign, sts) == 0
          && strcmp(res.authorization, authz) == 0, name, "signed without a cache");
    dms_sigv4_result_free(&res);
    check(!res.owned && !res.authorization, name, "result freed");
out:
    dms_sigv4_cache_clear(&cache);
    for (i = 0; i < MAX_HEADERS; i++)
        free(r.folded[i]);
    free(req_text);
    free(creq);
    free(sts);
    free(authz);
    free(sreq);
}

static void walk(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char sub[2048], req[4096];
    struct stat st;
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        snprintf(req, sizeof req, "%s/%s.req", sub, e->d_name);
        if (stat(req, &st) == 0)
            run_case(sub, e->d_name);
        else
            walk(sub);
    }
    closedir(d);
}

static void input_checks(void)
{
    dms_sigv4_header h[2] = {{"Host", 4, "h", 1}, {"X-Bad", 5, "a\r\nb", 4}};
    dms_sigv4_request q;
    dms_sigv4_result res;
    dms_sigv4_cache cache;
    char err[256];
    memset(&q, 0, sizeof q);
    memset(&cache, 0, sizeof cache);
    q.method = "POST";
    q.path = "/";
    q.headers = h;
    q.nheaders = 2;
    q.region = "us-east-1";
    q.service = "dms";
    q.access_key = "AKID";
    q.secret_key = "secret";
    q.secret_key_len = 6;
    q.time = 1440938160;
    check(dms_sigv4_sign(&q, &cache, &res, err, sizeof err) == DMS_SIGV4_EINVAL, "input", "CRLF refused");
    check(strstr(err, "X-Bad") != NULL && strstr(err, "secret") == NULL, "input", "error names the header");
    q.nheaders = 1;
    check(dms_sigv4_sign(&q, &cache, &res, err, sizeof err) == DMS_SIGV4_OK, "input", "valid request signs");
    dms_sigv4_result_free(&res);
    check(dms_sigv4_sign(&q, &cache, &res, err, sizeof err) == DMS_SIGV4_OK && cache.hits == 1
          && cache.misses == 1, "cache", "second signature reuses the key");
    dms_sigv4_result_free(&res);
    q.region = NULL;
    check(dms_sigv4_sign(&q, &cache, &res, err, sizeof err) == DMS_SIGV4_EINVAL
          && strstr(err, "region"), "input", "missing region named");
    dms_sigv4_cache_clear(&cache);
    check(cache.crypto == NULL && cache.hits == 0 && !cache.entries[0].used, "cache", "clearing empties the cache");
    dms_sigv4_cache_clear(&cache);
}

int main(int argc, char **argv)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/aws4_testsuite", argc > 1 ? argv[1] : "../shared/reference");
    walk(dir);
    input_checks();
    if (passed < 90)
        check(0, "suite", "fewer cases than expected: is the reference data there?");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
