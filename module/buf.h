/*
 * A growable byte buffer, always NUL-terminated, with a sticky failure flag:
 * after a failed allocation every later add is a no-op and `failed` stays
 * set, so a caller checks once at the end. Header-only: the signer and the
 * HTTP code both use it.
 */
#ifndef DMS_BUF_H
#define DMS_BUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    int failed;
} dms_buf;

/* room for `extra` more bytes (and the NUL); 0, or -1 once failed */
static inline int dms_buf_reserve(dms_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (b->failed)
        return -1;
    if (extra > SIZE_MAX / 2 - b->len - 1) {
        b->failed = 1;
        return -1;
    }
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline int dms_buf_add(dms_buf *b, const char *s, size_t n)
{
    /* room already there (the common case): no call */
    if ((b->failed || b->cap == 0 || n >= b->cap - b->len) && dms_buf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static inline int dms_buf_adds(dms_buf *b, const char *s) { return dms_buf_add(b, s, strlen(s)); }

static inline int dms_buf_addc(dms_buf *b, char c) { return dms_buf_add(b, &c, 1); }

/* empties the buffer, keeping its memory (and clearing a failure) */
static inline void dms_buf_reset(dms_buf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data)
        b->data[0] = '\0';
}

static inline void dms_buf_free(dms_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

#endif
