/*
 * JSON text for the shape walkers of shape.c: a writer that appends to a
 * buffer owned by Lua (a userdata in a fixed stack slot once it outgrows the
 * buffer inside the struct), and a reader that scans text in place. The
 * shapes decide what each value is (a list, a long, a double); these are the
 * tokens: strings with escapes and UTF-8 checks, exact 64-bit integers,
 * doubles with 17 significant digits at most (the shortest text that reads
 * back to the same double), literals, and whole values for document types.
 *
 * Nothing here keeps a pointer into a Lua value beyond the call that was
 * given it, and what is allocated outside Lua (the copy of a long number
 * for strtod) is freed before any Lua call: a Lua error raised in the middle
 * leaves nothing behind.
 */
#ifndef DMS_JSON_H
#define DMS_JSON_H

#include <stddef.h>
#include <string.h>

#include <lua.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)   /* only the luaopen_ functions are exported */
#endif

/* deepest nesting of arrays and objects read or written */
#define DMS_JSON_MAX_DEPTH 1000

/* ---------------------------------------------------------------- writer */

typedef struct {
    lua_State *L;
    char *buf;          /* fixed, or the block of the userdata in slot */
    size_t len, cap;
    int slot;           /* stack index reserved by dms_jw_init */
    char fixed[512];
} dms_jw;

/* Reserves one stack slot (at the top) for the buffer's userdata. */
void dms_jw_init(dms_jw *w, lua_State *L);
/* Makes room for n more bytes (raises a memory error when there is none). */
void dms_jw_grow(dms_jw *w, size_t n);
static inline void dms_jw_reserve(dms_jw *w, size_t n)
{
    if (w->cap - w->len < n)
        dms_jw_grow(w, n);
}
static inline void dms_jw_put(dms_jw *w, const char *s, size_t n)
{
    dms_jw_reserve(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}
static inline void dms_jw_putc(dms_jw *w, char c)
{
    if (w->len == w->cap)
        dms_jw_grow(w, 1);
    w->buf[w->len++] = c;
}
#define dms_jw_lit(w, s) dms_jw_put((w), "" s, sizeof(s) - 1)
/* A JSON string; returns 0 (writing part of it) when s is not valid UTF-8. */
int dms_jw_string(dms_jw *w, const char *s, size_t n);
void dms_jw_int(dms_jw *w, long long v);
/* A finite double: an integral value below 2^53 without a fraction, else the
 * shortest of %.15g, %.16g and %.17g that reads back to v. */
void dms_jw_double(dms_jw *w, double v);
/* Pushes the text written so far as a Lua string. */
void dms_jw_push(dms_jw *w);

/* ---------------------------------------------------------------- UTF-8 */

/* Returns 1 when s is valid UTF-8 (no overlong forms, no surrogates, nothing
 * beyond U+10FFFF), setting *chars to the number of code points. */
int dms_utf8_check(const char *s, size_t n, size_t *chars);

/* ---------------------------------------------------------------- reader */

typedef struct {
    const char *p, *end;
    int depth;
    const char *err;        /* why the text is not JSON, once it is known */
} dms_jr;

typedef struct {
    const char *text;       /* the number as written */
    size_t len;
    int integral;           /* no fraction, no exponent, and it fits in int i */
    long long i;
    double d;               /* the nearest double, always set */
} dms_jnum;

void dms_jr_init(dms_jr *r, const char *s, size_t n);
/* Skips white space; returns the next byte, or -1 at the end. */
int dms_jr_peek(dms_jr *r);
/* Consumes c after white space; returns 0 (setting err) if it is not there. */
int dms_jr_expect(dms_jr *r, char c);
/* After '{' or '[' was consumed: 1 if the container has another item
 * (consuming the ',' between items), 0 at its end (consuming the bracket),
 * -1 on a syntax error. first is 1 for the first call of a container. */
int dms_jr_next(dms_jr *r, char close, int first);
/* A string at the current position: pushes it (escapes decoded). */
int dms_jr_string(dms_jr *r, lua_State *L);
/* A string's raw span, for comparisons without pushing it: escapes are
 * reported through *escaped (then the span is not the value). */
int dms_jr_string_span(dms_jr *r, const char **s, size_t *n, int *escaped);
int dms_jr_number(dms_jr *r, dms_jnum *num);
/* true, false or null: returns 't', 'f' or 'n', or 0. */
int dms_jr_literal(dms_jr *r);
/* Validates and skips one value. */
int dms_jr_skip(dms_jr *r);
/* Pushes one value as Lua values: objects and arrays become tables, null
 * becomes the light userdata NULL (lua-cjson's cjson.null), or, with
 * drop_nulls, object members that are null are left out. */
int dms_jr_value(dms_jr *r, lua_State *L, int drop_nulls);
/* Converts number text to a double whatever the C locale. */
double dms_json_strtod(const char *s, size_t n, int *ok);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
