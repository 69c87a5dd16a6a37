/*
 * JSON text: a writer into a Lua-owned buffer and an in-place reader (json.h).
 */
#include "json.h"
#include "compat.h"

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* ------------------------------------------------------------------ */
/* writer                                                              */

void dms_jw_init(dms_jw *w, lua_State *L)
{
    w->L = L;
    w->buf = w->fixed;
    w->len = 0;
    w->cap = sizeof w->fixed;
    luaL_checkstack(L, 4, "JSON writer");
    lua_pushnil(L);
    w->slot = lua_gettop(L);
}

void dms_jw_grow(dms_jw *w, size_t n)
{
    size_t cap;
    char *nb;
    if (w->cap - w->len >= n)
        return;
    if (n > ((size_t)-1) / 4 - w->len)
        luaL_error(w->L, "JSON text too large");
    cap = w->cap * 2;
    while (cap - w->len < n)
        cap *= 2;
    /* a userdata owns the text: a Lua error anywhere leaves nothing to free */
    nb = lua_newuserdata(w->L, cap);
    memcpy(nb, w->buf, w->len);
    lua_replace(w->L, w->slot);
    w->buf = nb;
    w->cap = cap;
}


void dms_jw_push(dms_jw *w)
{
    lua_pushlstring(w->L, w->buf, w->len);
}

/* Length of the UTF-8 sequence at s (1..4), or 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0)
            lo = 0xA0;              /* overlong */
        else if (c == 0xED)
            hi = 0x9F;              /* surrogates */
        return n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xF0)
            lo = 0x90;              /* overlong */
        else if (c == 0xF4)
            hi = 0x8F;              /* beyond U+10FFFF */
        return n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80
               && (s[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

int dms_utf8_check(const char *s, size_t n, size_t *chars)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, count = 0;
    while (i < n) {
        size_t k, start = i;
        while (i < n && p[i] < 0x80)
            i++;
        count += i - start;
        if (i >= n)
            break;
        k = utf8_seq(p + i, n - i);
        if (k == 0)
            return 0;
        i += k;
        count++;
    }
    if (chars)
        *chars = count;
    return 1;
}

/*
 * Eight bytes at a time (SWAR): whether the word at p holds a byte below
 * 0x20, a '"' or a '\\' (and, with high, a byte of 0x80 or more). Exact
 * enough for a scan: never a false "no", and a rare false "yes" only sends
 * the scan to its byte loop.
 */
#define SWAR_ONES 0x0101010101010101ULL
#define SWAR_HIGHS 0x8080808080808080ULL
static inline int word_stops(const char *p, int high)
{
    uint64_t v, q, b;
    memcpy(&v, p, 8);
    q = v ^ (SWAR_ONES * '"');
    b = v ^ (SWAR_ONES * '\\');
    return ((((v - SWAR_ONES * 0x20) & ~v) | ((q - SWAR_ONES) & ~q) | ((b - SWAR_ONES) & ~b)
             | (high ? v : 0)) & SWAR_HIGHS) != 0;
}

/* 0: written as it is; 1: escaped; 2: the lead byte of a UTF-8 sequence (checked) */
static const unsigned char CLASS[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

int dms_jw_string(dms_jw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    /* room for the quotes and the text unescaped; escapes reserve their own */
    dms_jw_reserve(w, n + 2);
    w->buf[w->len++] = '"';
    while (i < n) {
        unsigned c;
        while (i + 8 <= n && !word_stops(s + i, 1))
            i += 8;
        while (i < n && CLASS[p[i]] == 0)
            i++;
        if (i >= n)
            break;
        c = p[i];
        if (c >= 0x80) {
            size_t k = utf8_seq(p + i, n - i);
            if (k == 0)
                return 0;
            i += k;
            continue;
        }
        /* flush the run before this byte, then its escape */
        dms_jw_put(w, s + run, i - run);
        dms_jw_reserve(w, 6 + (n - i));
        w->buf[w->len++] = '\\';
        switch (c) {
        case '"': w->buf[w->len++] = '"'; break;
        case '\\': w->buf[w->len++] = '\\'; break;
        case '\b': w->buf[w->len++] = 'b'; break;
        case '\f': w->buf[w->len++] = 'f'; break;
        case '\n': w->buf[w->len++] = 'n'; break;
        case '\r': w->buf[w->len++] = 'r'; break;
        case '\t': w->buf[w->len++] = 't'; break;
        default:
            w->buf[w->len++] = 'u';
            w->buf[w->len++] = '0';
            w->buf[w->len++] = '0';
            w->buf[w->len++] = hex[c >> 4];
            w->buf[w->len++] = hex[c & 15];
        }
        i++;
        run = i;
    }
    dms_jw_put(w, s + run, n - run);
    dms_jw_putc(w, '"');
    return 1;
}

void dms_jw_int(dms_jw *w, long long v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    dms_jw_put(w, p, (size_t)(tmp + sizeof tmp - p));
}

static char decimal_point(void)
{
    const char *dp = localeconv()->decimal_point;
    return dp && dp[0] ? dp[0] : '.';
}

void dms_jw_double(dms_jw *w, double v)
{
    char tmp[40];
    int prec, k = 0;
    char dp;
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        dms_jw_int(w, (long long)v);
        return;
    }
    for (prec = 15; prec <= 17; prec++) {
        int ok;
        k = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (prec == 17 || (dms_json_strtod(tmp, (size_t)k, &ok) == v && ok))
            break;
    }
    /* %g writes the decimal point of the C locale */
    dp = decimal_point();
    if (dp != '.') {
        int i;
        for (i = 0; i < k; i++)
            if (tmp[i] == dp)
                tmp[i] = '.';
    }
    dms_jw_put(w, tmp, (size_t)k);
}

/* ------------------------------------------------------------------ */
/* reader                                                              */

void dms_jr_init(dms_jr *r, const char *s, size_t n)
{
    r->p = s;
    r->end = s + n;
    r->depth = 0;
    r->err = NULL;
}

static int fail(dms_jr *r, const char *why)
{
    if (!r->err)
        r->err = why;
    return 0;
}

int dms_jr_peek(dms_jr *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

int dms_jr_expect(dms_jr *r, char c)
{
    if (dms_jr_peek(r) != (unsigned char)c)
        return fail(r, "unexpected character");
    r->p++;
    return 1;
}

int dms_jr_next(dms_jr *r, char close, int first)
{
    int c = dms_jr_peek(r);
    if (c == (unsigned char)close) {
        r->p++;
        return 0;
    }
    if (!first) {
        if (c != ',') {
            fail(r, "expected ',' or the end of a container");
            return -1;
        }
        r->p++;
        if (dms_jr_peek(r) == (unsigned char)close) {
            fail(r, "a trailing comma");
            return -1;
        }
    }
    if (dms_jr_peek(r) < 0) {
        fail(r, "the text ends inside a container");
        return -1;
    }
    return 1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_u4(const char *p, const char *end, unsigned *out)
{
    unsigned v = 0;
    int i;
    if (end - p < 4)
        return 0;
    for (i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0)
            return 0;
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return 1;
}

/* the bytes that end a run inside a string: '"', '\\' and control characters */
static const unsigned char SPAN_STOP[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

int dms_jr_string_span(dms_jr *r, const char **s, size_t *n, int *escaped)
{
    const char *p;
    *escaped = 0;
    if (dms_jr_peek(r) != '"')
        return fail(r, "expected a string");
    p = ++r->p;
    while (p < r->end) {
        unsigned char c;
        while (r->end - p >= 8 && !word_stops(p, 0))
            p += 8;
        while (p < r->end && !SPAN_STOP[(unsigned char)*p])
            p++;
        if (p >= r->end)
            break;
        c = (unsigned char)*p;
        if (c == '"') {
            *s = r->p;
            *n = (size_t)(p - r->p);
            r->p = p + 1;
            return 1;
        }
        if (c < 0x20)
            return fail(r, "a control character inside a string");
        if (c == '\\') {
            *escaped = 1;
            if (p + 1 >= r->end)
                break;
            if (p[1] == 'u') {
                unsigned u;
                if (!read_u4(p + 2, r->end, &u))
                    return fail(r, "a bad \\u escape");
                p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", p[1]) || p[1] == '\0')
                return fail(r, "a bad escape");
            p += 2;
            continue;
        }
        p++;
    }
    return fail(r, "the text ends inside a string");
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int dms_jr_string(dms_jr *r, lua_State *L)
{
    const char *s, *p, *end;
    size_t n;
    int escaped;
    char *out;
    size_t k = 0;
    if (!dms_jr_string_span(r, &s, &n, &escaped))
        return 0;
    if (!escaped) {
        lua_pushlstring(L, s, n);
        return 1;
    }
    /* the decoded text is never longer than the escaped one */
    out = lua_newuserdata(L, n ? n : 1);
    for (p = s, end = s + n; p < end;) {
        if (*p != '\\') {
            out[k++] = *p++;
            continue;
        }
        p++;
        switch (*p) {
        case 'b': out[k++] = '\b'; p++; break;
        case 'f': out[k++] = '\f'; p++; break;
        case 'n': out[k++] = '\n'; p++; break;
        case 'r': out[k++] = '\r'; p++; break;
        case 't': out[k++] = '\t'; p++; break;
        case 'u': {
            unsigned u = 0xFFFD, lo;
            read_u4(p + 1, end, &u);    /* checked by the span */
            p += 5;
            if (u >= 0xD800 && u <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u'
                && read_u4(p + 2, end, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else if (u >= 0xD800 && u <= 0xDFFF) {
                u = 0xFFFD;             /* a lone surrogate */
            }
            k += put_utf8(out + k, u);
            break;
        }
        default: out[k++] = *p++; break;   /* " \ / */
        }
    }
    lua_pushlstring(L, out, k);
    lua_remove(L, -2);
    return 1;
}

double dms_json_strtod(const char *s, size_t n, int *ok)
{
    char tmp[64], *buf = tmp, *endp;
    char dp = decimal_point();
    double v;
    size_t i;
    if (n >= sizeof tmp) {
        buf = malloc(n + 1);
        if (!buf) {
            *ok = 0;
            return 0;
        }
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (dp != '.')
        for (i = 0; i < n; i++)
            if (buf[i] == '.')
                buf[i] = dp;
    v = strtod(buf, &endp);
    *ok = endp == buf + n;
    if (buf != tmp)
        free(buf);
    return v;
}

/*
 * The double nearest to the number text [s, end) (valid JSON) when it can be
 * had exactly without strtod: at most 15 significant digits (the integer they
 * make is exact in a double) and a power of ten within 10^22 (exact too), so
 * that one multiplication or division, rounded once, gives what strtod gives
 * (Clinger's fast path). Returns 0 for any other number.
 */
static int exact_double(const char *s, const char *end, double *out)
{
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = s;
    unsigned long long m = 0;
    int neg = 0, ndigits = 0, scale = 0, e = 0, eneg = 0;
    double d;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    while (p < end && *p == '0')            /* leading zeros are not significant */
        p++;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (++ndigits > 15)
            return 0;
        m = m * 10 + (unsigned)(*p - '0');
    }
    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (m == 0 && *p == '0') {      /* 0.000x: zeros after the point scale */
                scale++;
                continue;
            }
            if (++ndigits > 15)
                return 0;
            m = m * 10 + (unsigned)(*p - '0');
            scale++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-')
            eneg = *p++ == '-';
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (e > 1000)
                return 0;
            e = e * 10 + (*p - '0');
        }
    }
    e = (eneg ? -e : e) - scale;
    d = (double)m;
    if (m == 0)
        d = 0;
    else if (e < 0 && e >= -22)
        d /= pow10[-e];
    else if (e >= 0 && e <= 22)
        d *= pow10[e];
    else
        return 0;
    *out = neg ? -d : d;
    return 1;
}

int dms_jr_number(dms_jr *r, dms_jnum *num)
{
    const char *p = r->p, *start = r->p, *end = r->end;
    int neg = 0, integral = 1, overflow = 0, ok;
    unsigned long long acc = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return fail(r, "expected a value");
    if (*p == '0') {
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            unsigned d = (unsigned)(*p - '0');
            if (acc > (~0ULL - d) / 10)
                overflow = 1;
            else
                acc = acc * 10 + d;
            p++;
        }
    }
    if (p < end && *p == '.') {
        integral = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail(r, "a number without digits after '.'");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integral = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail(r, "a number without exponent digits");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    num->text = start;
    num->len = (size_t)(p - start);
    num->integral = 0;
    if (integral && !overflow) {
        if (!neg && acc <= 9223372036854775807ULL) {
            num->integral = 1;
            num->i = (long long)acc;
        } else if (neg && acc <= 9223372036854775808ULL) {
            num->integral = 1;
            num->i = acc == 9223372036854775808ULL ? (-9223372036854775807LL - 1) : -(long long)acc;
        }
    }
    if (!exact_double(start, p, &num->d)) {
        num->d = dms_json_strtod(start, num->len, &ok);
        if (!ok)
            return fail(r, "a number the system cannot read");
    }
    r->p = p;
    return 1;
}

static int word(dms_jr *r, const char *w, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
        return 0;
    r->p += n;
    return 1;
}

int dms_jr_literal(dms_jr *r)
{
    int c = dms_jr_peek(r);
    if (c == 't' && word(r, "true", 4))
        return 't';
    if (c == 'f' && word(r, "false", 5))
        return 'f';
    if (c == 'n' && word(r, "null", 4))
        return 'n';
    return fail(r, "expected a value");
}

int dms_jr_skip(dms_jr *r)
{
    int c = dms_jr_peek(r), more, first = 1;
    switch (c) {
    case '{':
    case '[':
        if (++r->depth > DMS_JSON_MAX_DEPTH)
            return fail(r, "nested too deeply");
        r->p++;
        while ((more = dms_jr_next(r, c == '{' ? '}' : ']', first)) == 1) {
            first = 0;
            if (c == '{') {
                const char *s;
                size_t n;
                int esc;
                if (!dms_jr_string_span(r, &s, &n, &esc) || !dms_jr_expect(r, ':'))
                    return 0;
            }
            if (!dms_jr_skip(r))
                return 0;
        }
        r->depth--;
        return more == 0;
    case '"': {
        const char *s;
        size_t n;
        int esc;
        return dms_jr_string_span(r, &s, &n, &esc);
    }
    case 't':
    case 'f':
    case 'n':
        return dms_jr_literal(r);
    case -1:
        return fail(r, "the text ends where a value should be");
    default: {
        dms_jnum num;
        return dms_jr_number(r, &num);
    }
    }
}

int dms_jr_value(dms_jr *r, lua_State *L, int drop_nulls)
{
    int c = dms_jr_peek(r), more, first = 1;
    switch (c) {
    case '{':
    case '[': {
        int t, i = 0;
        if (++r->depth > DMS_JSON_MAX_DEPTH)
            return fail(r, "nested too deeply");
        luaL_checkstack(L, 4, "JSON nested too deeply");
        r->p++;
        lua_newtable(L);
        t = lua_gettop(L);
        while ((more = dms_jr_next(r, c == '{' ? '}' : ']', first)) == 1) {
            first = 0;
            if (c == '{') {
                if (!dms_jr_string(r, L) || !dms_jr_expect(r, ':'))
                    return 0;
                if (drop_nulls && dms_jr_peek(r) == 'n') {
                    lua_pop(L, 1);
                    if (!dms_jr_skip(r))
                        return 0;
                    continue;
                }
                if (!dms_jr_value(r, L, drop_nulls))
                    return 0;
                lua_rawset(L, t);
            } else {
                if (!dms_jr_value(r, L, drop_nulls))
                    return 0;
                lua_rawseti(L, t, ++i);
            }
        }
        r->depth--;
        return more == 0;
    }
    case '"':
        return dms_jr_string(r, L);
    case 't':
    case 'f':
    case 'n':
        c = dms_jr_literal(r);
        if (c == 'n')
            lua_pushlightuserdata(L, NULL);
        else if (c)
            lua_pushboolean(L, c == 't');
        return c != 0;
    case -1:
        return fail(r, "the text ends where a value should be");
    default: {
        dms_jnum num;
        if (!dms_jr_number(r, &num))
            return 0;
#if LUA_VERSION_NUM >= 503
        if (num.integral)
            lua_pushinteger(L, (lua_Integer)num.i);
        else
#endif
            lua_pushnumber(L, (lua_Number)num.d);
        return 1;
    }
    }
}
