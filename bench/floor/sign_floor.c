/*
 * The floor of one SigV4 signature: the SHA-256 work a signature cannot
 * avoid, with the OpenSSL the module links, and nothing else. Per signature:
 * the hash of the body, the hash of the canonical request, the HMAC of the
 * string to sign under the signing key, with the key's HMAC pad states
 * prepared once (the derived key is cached for a day), one digest context
 * reused, and the hex encoding of the three results. No canonicalisation,
 * no allocation, no Lua.
 *
 *   sign_floor DIR ITERATIONS
 *
 * DIR holds body, canonical_request and string_to_sign, as a signature of
 * the benchmarked request produced them. Prints one line:
 *   {"us": <microseconds per signature>, "blocks": <SHA-256 blocks hashed per signature>}
 * (the pad blocks of the key, hashed once, are not counted)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    FILE *f;
    char *p;
    long n;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n)
        exit(2);
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

static void hex(const unsigned char *in, char *out)
{
    static const char digits[] = "0123456789abcdef";
    int i;
    for (i = 0; i < 32; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[64] = '\0';
}

/* SHA-256 blocks for a message of n bytes (padding included) */
static size_t blocks(size_t n)
{
    return (n + 9 + 63) / 64;
}

int main(int argc, char **argv)
{
    size_t body_len, cr_len, sts_len;
    char *body, *cr, *sts;
    unsigned char key[32], pad[64], md[32];
    char hex_out[65];
    unsigned int mdlen;
    EVP_MD *sha256;
    EVP_MD_CTX *ctx, *inner, *outer;
    long n, i;
    volatile unsigned sink = 0;
    double t0, t1;

    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR ITERATIONS\n", argv[0]);
        return 2;
    }
    body = read_file(argv[1], "body", &body_len);
    cr = read_file(argv[1], "canonical_request", &cr_len);
    sts = read_file(argv[1], "string_to_sign", &sts_len);
    n = atol(argv[2]);

    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    ctx = EVP_MD_CTX_new();
    inner = EVP_MD_CTX_new();
    outer = EVP_MD_CTX_new();
    if (!sha256 || !ctx || !inner || !outer)
        return 1;
    /* the signing key's pad states, once */
    memset(key, 0x5a, sizeof key);
    memset(pad, 0x36, sizeof pad);
    for (i = 0; i < 32; i++)
        pad[i] ^= key[i];
    EVP_DigestInit_ex(inner, sha256, NULL);
    EVP_DigestUpdate(inner, pad, 64);
    memset(pad, 0x5c, sizeof pad);
    for (i = 0; i < 32; i++)
        pad[i] ^= key[i];
    EVP_DigestInit_ex(outer, sha256, NULL);
    EVP_DigestUpdate(outer, pad, 64);

    t0 = now();
    for (i = 0; i < n; i++) {
        /* payload hash */
        EVP_DigestInit_ex(ctx, sha256, NULL);
        EVP_DigestUpdate(ctx, body, body_len);
        EVP_DigestFinal_ex(ctx, md, &mdlen);
        hex(md, hex_out);
        sink += (unsigned char)hex_out[0];
        /* canonical request hash */
        EVP_DigestInit_ex(ctx, sha256, NULL);
        EVP_DigestUpdate(ctx, cr, cr_len);
        EVP_DigestFinal_ex(ctx, md, &mdlen);
        hex(md, hex_out);
        sink += (unsigned char)hex_out[0];
        /* HMAC(key, string to sign) from the pad states */
        EVP_MD_CTX_copy_ex(ctx, inner);
        EVP_DigestUpdate(ctx, sts, sts_len);
        EVP_DigestFinal_ex(ctx, md, &mdlen);
        EVP_MD_CTX_copy_ex(ctx, outer);
        EVP_DigestUpdate(ctx, md, 32);
        EVP_DigestFinal_ex(ctx, md, &mdlen);
        hex(md, hex_out);
        sink += (unsigned char)hex_out[0];
    }
    t1 = now();
    printf("{\"us\": %.3f, \"blocks\": %zu}\n", n > 0 ? (t1 - t0) * 1e6 / (double)n : 0.0,
           blocks(body_len) + blocks(cr_len) + blocks(64 + sts_len) - 1 + blocks(64 + 32) - 1);
    (void)sink;
    EVP_MD_CTX_free(ctx);
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
    EVP_MD_free(sha256);
    free(body);
    free(cr);
    free(sts);
    return 0;
}
