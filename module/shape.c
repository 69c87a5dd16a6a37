/*
 * Lua tables <-> the request and response shapes of an AWS JSON protocol
 * model (awsJson1_0, awsJson1_1), driven by the model table that
 * tools/gen_model.py generates.
 *
 * build walks params along the operation's input shape and writes the JSON
 * text as it goes (json.c): every rule is checked before anything is sent,
 * the shape says what each value is (an empty list is [], a long is written
 * exactly, a double with up to 17 significant digits, a timestamp in the
 * model's format), and the params are never mutated. parse reads the body
 * text along the output shape: timestamps become epoch seconds, integers and
 * longs exact integers, blobs bytes; members the model does not define are
 * dropped, as botocore drops them.
 *
 * Lua values are read with raw access (model, params, decoded values) except
 * the response headers and date tables, which may be proxies with __index:
 * every string taken from a Lua value stays on the stack while C uses it.
 */
#include "shape.h"
#include "compat.h"
#include "error.h"
#include "json.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

/* upvalues of build, parse and timestamp (LuaJIT: ffi int64 boxing; else nil) */
#define UV_BOX 1       /* function(hi, lo) -> int64 cdata */
#define UV_UNBOX 2     /* function(v) -> "123LL" for an int64/uint64 cdata, else nil */
#define UV_CACHE 3     /* model table -> its compiled form (weak keys) */

#define MAX_DEPTH 64
#define PATH_MAX_LEN 2048    /* room for MAX_DEPTH levels of member names */
#define MAX_ARN_LEN 2048     /* the longest ARN AWS documents for any service */

/* 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z */
#define EPOCH_MIN -62135596800.0
#define EPOCH_END 253402300800.0

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

/* An integral number pushed exactly: an integer on Lua 5.3+; on LuaJIT a
 * number up to 2^53 and beyond it an int64 cdata (ffi), or failing that its
 * decimal text. */
static void push_int64(lua_State *L, long long v)
{
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(L, (lua_Integer)v);
#else
    if (v >= -9007199254740992LL && v <= 9007199254740992LL) {
        lua_pushnumber(L, (lua_Number)v);
        return;
    }
    if (lua_isfunction(L, lua_upvalueindex(UV_BOX))) {
        unsigned long long u = (unsigned long long)v;
        long long hi = (long long)(int)(unsigned)(u >> 32);
        lua_pushvalue(L, lua_upvalueindex(UV_BOX));
        lua_pushnumber(L, (lua_Number)hi);
        lua_pushnumber(L, (lua_Number)(u & 0xFFFFFFFFULL));
        lua_call(L, 2, 1);
        return;
    }
    {
        char tmp[24];
        snprintf(tmp, sizeof tmp, "%lld", v);
        lua_pushstring(L, tmp);
    }
#endif
}

/* An integral double pushed as an integer when it is one exactly. */
static void push_number(lua_State *L, double v)
{
    if (v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
#if LUA_VERSION_NUM >= 503
        lua_pushinteger(L, (lua_Integer)(long long)v);
#else
        lua_pushnumber(L, (lua_Number)v);
#endif
    } else {
        lua_pushnumber(L, (lua_Number)v);
    }
}

/* Reads the 64-bit integer at idx: an integer, an integral float within
 * range, or (LuaJIT) an int64_t/uint64_t cdata. 1: ok, 0: not an integer,
 * -1: an integer outside the 64-bit range. */
static int to_int64(lua_State *L, int idx, long long *out)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNUMBER) {
        double d;
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(L, idx)) {
            *out = (long long)lua_tointeger(L, idx);
            return 1;
        }
#endif
        d = (double)lua_tonumber(L, idx);
        if (!isfinite(d) || d != floor(d))
            return 0;
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
            return -1;
        *out = (long long)d;
        return 1;
    }
#if LUA_VERSION_NUM < 503
    if (t != LUA_TNONE && strcmp(lua_typename(L, t), "cdata") == 0
        && lua_isfunction(L, lua_upvalueindex(UV_UNBOX))) {
        int r = 0;
        lua_pushvalue(L, lua_upvalueindex(UV_UNBOX));
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            int neg = s[0] == '-', uns = n >= 3 && memcmp(s + n - 3, "ULL", 3) == 0;
            size_t digits = n - (uns ? 3 : 2) - (size_t)neg;
            unsigned long long acc = 0;
            size_t i;
            r = digits > 0 && digits <= 20;
            for (i = 0; r && i < digits; i++) {
                unsigned d = (unsigned)(s[neg + i] - '0');
                if (d > 9 || acc > (~0ULL - d) / 10)
                    r = d > 9 ? 0 : -1;
                else
                    acc = acc * 10 + d;
            }
            if (r == 1) {
                if (!neg && acc <= 9223372036854775807ULL)
                    *out = (long long)acc;
                else if (neg && acc <= 9223372036854775808ULL)
                    *out = acc == 9223372036854775808ULL ? (-9223372036854775807LL - 1) : -(long long)acc;
                else
                    r = -1;
            }
        }
        lua_pop(L, 1);
        return r;
    }
#endif
    return 0;
}

/* ------------------------------------------------------------------ */
/* timestamps                                                          */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    long long era;
    unsigned yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* The date of a day number (the inverse of days_from_civil). */
static void civil_from_days(long long z, int *y, int *m, int *d)
{
    long long era, yy;
    unsigned doe, yoe, doy, mp;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    yy = (long long)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int days_in_month(long long y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

static int digits(const char *s, size_t len, size_t *pos, int n, int *out)
{
    int v = 0, i;
    if (*pos + (size_t)n > len)
        return -1;
    for (i = 0; i < n; i++) {
        char c = s[*pos + (size_t)i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *pos += (size_t)n;
    *out = v;
    return 0;
}

/* YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|(+|-)HH[:]MM]; no zone means UTC. */
static int parse_iso8601(const char *s, size_t len, double *out)
{
    size_t p = 0;
    int Y, M, D, h = 0, m = 0, sec = 0, oh = 0, om = 0, sign = 0, nfrac = 0;
    long long frac = 0;
    double v;

    if (digits(s, len, &p, 4, &Y) || p >= len || s[p++] != '-' || digits(s, len, &p, 2, &M)
        || p >= len || s[p++] != '-' || digits(s, len, &p, 2, &D))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M))
        return -1;
    if (p < len && (s[p] == 'T' || s[p] == 't' || s[p] == ' ')) {
        p++;
        if (digits(s, len, &p, 2, &h) || p >= len || s[p++] != ':' || digits(s, len, &p, 2, &m))
            return -1;
        if (p < len && s[p] == ':') {
            p++;
            if (digits(s, len, &p, 2, &sec))
                return -1;
            if (p < len && (s[p] == '.' || s[p] == ',')) {
                p++;
                if (p >= len || !isdigit((unsigned char)s[p]))
                    return -1;
                /* nanoseconds at most; further digits are read and dropped */
                while (p < len && isdigit((unsigned char)s[p])) {
                    if (nfrac < 9) {
                        frac = frac * 10 + (s[p] - '0');
                        nfrac++;
                    }
                    p++;
                }
            }
        }
        if (h > 23 || m > 59 || sec > 60)
            return -1;
        if (p < len && (s[p] == 'Z' || s[p] == 'z')) {
            p++;
        } else if (p < len && (s[p] == '+' || s[p] == '-')) {
            sign = s[p++] == '-' ? -1 : 1;
            if (digits(s, len, &p, 2, &oh))
                return -1;
            if (p < len && s[p] == ':')
                p++;
            if (digits(s, len, &p, 2, &om) || oh > 23 || om > 59)
                return -1;
        }
    }
    if (p != len)
        return -1;
    v = (double)(days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400LL
                 + h * 3600 + m * 60 + sec - sign * (oh * 3600 + om * 60));
    if (nfrac) {
        static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
        v += (double)frac / pow10[nfrac];
    }
    if (!(v >= EPOCH_MIN && v < EPOCH_END))
        return -1;
    *out = v;
    return 0;
}

static const char *const WEEKDAYS[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
static const char *const MONTHS[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* RFC 822/1123 dates of HTTP: [Sun, ]02 Jan 2000 20:34:56 (GMT|UTC|UT|Z|+hhmm|-hhmm) */
static int parse_rfc822(const char *s, size_t len, double *out)
{
    size_t p = 0;
    int D = 0, M = -1, Y, h, m, sec, i, sign = 0, off = 0;
    if (len >= 5 && s[3] == ',') {
        for (i = 0; i < 7 && strncmp(s, WEEKDAYS[i], 3) != 0; i++)
            ;
        if (i == 7)
            return -1;
        p = 4;
        while (p < len && s[p] == ' ')
            p++;
    }
    if (p + 2 <= len && isdigit((unsigned char)s[p]) && isdigit((unsigned char)s[p + 1]))
        digits(s, len, &p, 2, &D);
    else if (digits(s, len, &p, 1, &D))
        return -1;
    if (p >= len || s[p++] != ' ' || p + 3 > len)
        return -1;
    for (i = 0; i < 12; i++)
        if (strncmp(s + p, MONTHS[i], 3) == 0)
            M = i + 1;
    if (M < 0)
        return -1;
    p += 3;
    if (p >= len || s[p++] != ' ' || digits(s, len, &p, 4, &Y) || p >= len || s[p++] != ' '
        || digits(s, len, &p, 2, &h) || p >= len || s[p++] != ':' || digits(s, len, &p, 2, &m)
        || p >= len || s[p++] != ':' || digits(s, len, &p, 2, &sec))
        return -1;
    if (D < 1 || D > days_in_month(Y, M) || h > 23 || m > 59 || sec > 60)
        return -1;
    if (p < len) {
        if (s[p++] != ' ')
            return -1;
        if ((len - p == 3 && (memcmp(s + p, "GMT", 3) == 0 || memcmp(s + p, "UTC", 3) == 0))
            || (len - p == 2 && memcmp(s + p, "UT", 2) == 0) || (len - p == 1 && s[p] == 'Z')) {
            p = len;
        } else if (len - p == 5 && (s[p] == '+' || s[p] == '-')) {
            int oh, om;
            sign = s[p] == '-' ? -1 : 1;
            p++;
            if (digits(s, len, &p, 2, &oh) || digits(s, len, &p, 2, &om) || oh > 23 || om > 59)
                return -1;
            off = oh * 3600 + om * 60;
        } else {
            return -1;
        }
    }
    *out = (double)(days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400LL + h * 3600 + m * 60 + sec
                    - sign * off);
    return *out >= EPOCH_MIN && *out < EPOCH_END ? 0 : -1;
}

static int table_int_field(lua_State *L, int idx, const char *k, int required, int dflt,
                           int lo, int hi, int *out)
{
    int ok = 1;
    long long v;
    /* lua_getfield: a date table may be a proxy; the value stays on the
     * stack until it has been read */
    lua_getfield(L, idx, k);
    if (lua_isnil(L, -1)) {
        ok = !required;
        *out = dflt;
    } else if (lua_type(L, -1) != LUA_TNUMBER || to_int64(L, -1, &v) != 1) {
        ok = 0;
    } else {
        ok = v >= lo && v <= hi;
        if (ok)
            *out = (int)v;
    }
    lua_pop(L, 1);
    return ok;
}

/*
 * Converts the value at idx (epoch number, ISO-8601 string, or an
 * os.date("*t")-style table read as os.time() reads it: local time) to epoch
 * seconds in the years 0001..9999. Returns 0, or -1 with a reason in why.
 */
static int to_epoch(lua_State *L, int idx, double *out, const char **why)
{
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER: {
        double v = (double)lua_tonumber(L, idx);
        if (!isfinite(v)) {
            *why = "must be a finite number of seconds";
            return -1;
        }
        if (!(v >= EPOCH_MIN && v < EPOCH_END)) {
            *why = "must be a time in the years 0001..9999 (epoch seconds -62135596800 .. 253402300799)";
            return -1;
        }
        *out = v;
        return 0;
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (parse_iso8601(s, len, out) != 0) {
            *why = "must be an ISO-8601 date-time such as 2026-11-25T12:00:00Z";
            return -1;
        }
        return 0;
    }
    case LUA_TTABLE: {
        struct tm tm;
        int Y, M, D, h, m, s, isdst = -1;
        time_t t;
        idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
        if (!table_int_field(L, idx, "year", 1, 0, 1, 9999, &Y)
            || !table_int_field(L, idx, "month", 1, 0, 1, 12, &M)
            || !table_int_field(L, idx, "day", 1, 0, 1, 31, &D)
            || !table_int_field(L, idx, "hour", 0, 12, 0, 23, &h)
            || !table_int_field(L, idx, "min", 0, 0, 0, 59, &m)
            || !table_int_field(L, idx, "sec", 0, 0, 0, 60, &s)
            || D > days_in_month(Y, M)) {
            *why = "must be a date table with valid year, month, day (and hour, min, sec)";
            return -1;
        }
        lua_getfield(L, idx, "isdst");
        if (lua_isboolean(L, -1))
            isdst = lua_toboolean(L, -1);
        lua_pop(L, 1);
        memset(&tm, 0, sizeof tm);
        tm.tm_year = Y - 1900;
        tm.tm_mon = M - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = s;
        tm.tm_isdst = isdst;
        t = mktime(&tm);
        if ((t == (time_t)-1 && !(Y == 1969 || Y == 1970))
            || !((double)t >= EPOCH_MIN && (double)t < EPOCH_END)) {
            *why = "is a date this system cannot represent";
            return -1;
        }
        *out = (double)t;
        return 0;
    }
    default:
        *why = "must be an epoch number, an ISO-8601 string or a date table";
        return -1;
    }
}

/* Whole seconds and a fraction in units of 10^-digits, rounded. */
static void split_time(double v, int scale_digits, long long *secs, long long *frac)
{
    static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};
    long long scale = (long long)pow10[scale_digits];
    double whole = floor(v);
    long long f = (long long)floor((v - whole) * (double)scale + 0.5);
    *secs = (long long)whole;
    if (f >= scale) {
        (*secs)++;
        f -= scale;
    }
    *frac = f;
}

/* Breaks epoch seconds into the civil time of UTC. */
static void civil(long long secs, int *Y, int *M, int *D, int *h, int *m, int *s, int *wday)
{
    long long days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    long long rem = secs - days * 86400;
    civil_from_days(days, Y, M, D);
    *h = (int)(rem / 3600);
    *m = (int)(rem % 3600 / 60);
    *s = (int)(rem % 60);
    *wday = (int)(((days % 7) + 7) % 7);    /* 0 = Thursday */
}

/* ISO-8601 UTC with microseconds when there is a fraction (as botocore). */
static void write_iso8601(dms_jw *w, double v)
{
    char buf[48];
    long long secs, us;
    int Y, M, D, h, m, s, wd, k;
    split_time(v, 6, &secs, &us);
    if (secs > 253402300799LL) {        /* 9999-12-31T23:59:59.9999996 rounds up */
        secs = 253402300799LL;
        us = 999999;
    }
    civil(secs, &Y, &M, &D, &h, &m, &s, &wd);
    k = snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d", Y, M, D, h, m, s);
    if (us)
        k += snprintf(buf + k, sizeof buf - (size_t)k, ".%06lld", us);
    k += snprintf(buf + k, sizeof buf - (size_t)k, "Z\"");
    dms_jw_put(w, buf, (size_t)k);
}

/* RFC 822 (HTTP date) in whole seconds: RFC 822 has no fraction. */
static void write_rfc822(dms_jw *w, double v)
{
    char buf[48];
    int Y, M, D, h, m, s, wd, k;
    civil((long long)floor(v), &Y, &M, &D, &h, &m, &s, &wd);
    k = snprintf(buf, sizeof buf, "\"%s, %02d %s %04d %02d:%02d:%02d GMT\"", WEEKDAYS[wd], D,
                 MONTHS[M - 1], Y, h, m, s);
    dms_jw_put(w, buf, (size_t)k);
}

/* Epoch seconds, with milliseconds when there is a fraction. */
static void write_epoch(dms_jw *w, double v)
{
    char buf[40];
    long long secs, ms;
    int k;
    split_time(v, 3, &secs, &ms);
    if (ms == 0) {
        dms_jw_int(w, secs);
        return;
    }
    /* secs + ms/1000 exactly as decimal text: 1.25, -0.5 (= -1 + 0.5) */
    if (secs < 0) {
        long long total = secs * 1000 + ms;     /* negative */
        long long a = -total;
        k = snprintf(buf, sizeof buf, "-%lld.%03lld", a / 1000, a % 1000);
    } else {
        k = snprintf(buf, sizeof buf, "%lld.%03lld", secs, ms);
    }
    while (buf[k - 1] == '0')
        k--;
    dms_jw_put(w, buf, (size_t)k);
}

static int shape_timestamp(lua_State *L)
{
    double v;
    const char *why = NULL;
    if (to_epoch(L, 1, &v, &why) != 0) {
        lua_pushfstring(L, "timestamp %s", why);
        return dms_return_error(L, "validation", "InvalidTimestamp", lua_tostring(L, -1));
    }
    push_number(L, v);
    return 1;
}

/* ------------------------------------------------------------------ */
/* the compiled model                                                  */

/*
 * The walkers do not read the model table on every call: each model table
 * is compiled, on its first use, into C structures (a shape's kind, limits,
 * members in a hash table, traits, required members ...) kept in a table of
 * the module (weak keys: a model that is collected takes its compiled form
 * with it). A shape is compiled when a walker first reaches it, and the
 * reference to it is kept where it was followed, so a call reads no Lua
 * table of the model at all once its shapes have been seen.
 *
 * The compiled form of a model, C, is a Lua table:
 *   C[1]       the cmodel (a userdata)
 *   C[2]       shape name -> its cshape (a userdata)
 *   C[3]       an array anchoring every string and block the structures
 *              point to (so the pointers stay valid for as long as C lives)
 *   C[op]      operation name -> its cop (a userdata)
 * C holds nothing of the model itself (the strings are values, not
 * references): a weak key works on Lua 5.1 too, where a value that
 * referred to its key would keep it alive. The model is read raw, once: a
 * model is not expected to change after its first use, and a model table
 * changed afterwards keeps the form it had.
 */

enum kind {
    K_MISSING,                  /* the model has no shape of that name */
    K_UNKNOWN, K_STRUCTURE, K_LIST, K_MAP, K_STRING, K_INTEGER, K_LONG, K_DOUBLE, K_FLOAT,
    K_BOOLEAN, K_TIMESTAMP, K_BLOB
};

enum { TS_EPOCH, TS_ISO8601, TS_RFC822 };

#define C_MODEL 1
#define C_SHAPES 2
#define C_ANCHOR 3

typedef struct cshape cshape;

typedef struct {
    const char *s;              /* NULL: not a string */
    size_t len;
} cstr;

/* a shape named by the model, resolved on first use */
typedef struct {
    cstr name;
    cshape *shape;
} cref;

typedef struct {
    cstr name;
    int ref;                    /* the name's slot in C[3] */
    unsigned hash;
    cref shape;
    cstr json_key;              /* "Name": as JSON text */
    /* traits[name] */
    int has_rule, json, has_enum, nenum, has_arn;
    cstr *enums;                /* the enum's items, .s NULL for an item that is not a string */
    cstr rtype;                 /* the arn trait's resource type */
} cmember;

typedef struct {
    int member;                 /* index in members, -1 when it names no member */
    cstr name;
} cname;

typedef struct {
    int n;
    cname *names;
} cgroup;

struct cshape {
    int kind;
    cstr name;
    cstr type;                  /* K_UNKNOWN: the type the model gives */
    int document, is_union, has_min, has_max, format;
    double min, max;
    cref member;                /* list */
    cref key, value;            /* map */
    int nmembers;               /* structure */
    cmember *members;
    unsigned mask;
    int *slots;                 /* open addressing: index + 1 of a member, 0 when empty */
    int nrequired, ntokens, ngroups;
    cname *required, *tokens;
    cgroup *groups;
};

typedef struct {
    int has_ops, has_shapes;
    int json_version;           /* 1: 1.1, 0: 1.0, -1: neither */
    cstr target_prefix, arn_service;
    int nanchor;
} cmodel;

typedef struct {
    int has_input, has_output;  /* the operation names a shape */
    cref input, output;
    int target_ref;             /* "Prefix.Operation" in C[3] */
} cop;

/* What a walker needs to compile: the model and its compiled form, at
 * absolute stack indices. */
typedef struct {
    lua_State *L;
    int model, C;
    cmodel *cm;
} cctx;

/* Pushes t[k] without metamethods (t at an absolute index). */
static int rawfield(lua_State *L, int t, const char *k)
{
    lua_pushstring(L, k);
    lua_rawget(L, t);
    return lua_type(L, -1);
}

static int is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* A string at idx equal to the C string s (lengths compared, not C strings). */
static int lstr_eq(lua_State *L, int idx, const char *s, size_t n)
{
    size_t len;
    const char *v;
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    v = lua_tolstring(L, idx, &len);
    return len == n && memcmp(v, s, n) == 0;
}

/* A hash of a member name from its length and its first and last four
 * bytes: names of one shape differ there (a collision costs a comparison). */
static unsigned name_hash(const char *s, size_t n)
{
    uint32_t a = 0, b = 0, h;
    if (n >= 4) {
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
    } else {
        size_t i;
        for (i = 0; i < n; i++)
            a = (a << 8) | (unsigned char)s[i];
    }
    h = (uint32_t)n * 0x9E3779B1u ^ a * 0x85EBCA6Bu ^ b * 0xC2B2AE35u;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    return h;
}

/* Anchors the value at the top in C[3] (popping it); returns its slot. */
static int anchor_top(cctx *c)
{
    lua_State *L = c->L;
    lua_rawgeti(L, c->C, C_ANCHOR);
    lua_insert(L, -2);
    lua_rawseti(L, -2, ++c->cm->nanchor);
    lua_pop(L, 1);
    return c->cm->nanchor;
}

/* The string at idx (or NULL), anchored. */
static cstr anchor_string(cctx *c, int idx, int *ref)
{
    cstr r = {NULL, 0};
    if (lua_type(c->L, idx) == LUA_TSTRING) {
        r.s = lua_tolstring(c->L, idx, &r.len);
        lua_pushvalue(c->L, idx);
        if (ref)
            *ref = anchor_top(c);
        else
            anchor_top(c);
    }
    return r;
}

/* A zeroed block of n bytes that lives as long as the compiled model. */
static void *c_alloc(cctx *c, size_t n)
{
    void *p = lua_newuserdata(c->L, n ? n : 1);
    memset(p, 0, n ? n : 1);
    anchor_top(c);
    return p;
}

/* An array of the strings of the list at t[k] (items that are not strings
 * are kept as NULL when keep_all, else left out). */
static int string_list(cctx *c, int t, const char *k, int keep_all, cstr **out)
{
    lua_State *L = c->L;
    int n, i, count = 0;
    cstr *a;
    *out = NULL;
    if (rawfield(L, t, k) != LUA_TTABLE) {
        lua_pop(L, 1);
        return -1;
    }
    n = (int)dms_compat_rawlen(L, -1);
    a = c_alloc(c, (size_t)n * sizeof *a);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_type(L, -1) == LUA_TSTRING || keep_all)
            a[count++] = anchor_string(c, lua_gettop(L), NULL);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    *out = a;
    return count;
}

static cmember *find_member(const cshape *s, const char *k, size_t n)
{
    unsigned h, i;
    if (s->nmembers == 0)
        return NULL;
    h = name_hash(k, n);
    for (i = h & s->mask;; i = (i + 1) & s->mask) {
        int slot = s->slots[i];
        cmember *m;
        if (slot == 0)
            return NULL;
        m = &s->members[slot - 1];
        if (m->hash == h && m->name.len == n && (m->name.s == k || memcmp(m->name.s, k, n) == 0))
            return m;
    }
}

static int member_index(const cshape *s, cstr name)
{
    cmember *m = name.s ? find_member(s, name.s, name.len) : NULL;
    return m ? (int)(m - s->members) : -1;
}

static cname *name_list(cctx *c, int t, const char *k, const cshape *s, int *count)
{
    cstr *names;
    cname *out;
    int n = string_list(c, t, k, 0, &names), i;
    *count = n < 0 ? 0 : n;
    if (n <= 0)
        return NULL;
    out = c_alloc(c, (size_t)n * sizeof *out);
    for (i = 0; i < n; i++) {
        out[i].name = names[i];
        out[i].member = member_index(s, names[i]);
    }
    return out;
}

static int opt_number(lua_State *L, int shape, const char *k, double *out)
{
    int has = rawfield(L, shape, k) == LUA_TNUMBER;
    if (has)
        *out = (double)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return has;
}

static int shape_flag(lua_State *L, int shape, const char *flag)
{
    int yes;
    rawfield(L, shape, flag);
    yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

/* A reference to the shape named by t[k]. */
static cref shape_ref(cctx *c, int t, const char *k)
{
    cref r;
    rawfield(c->L, t, k);
    r.name = anchor_string(c, lua_gettop(c->L), NULL);
    r.shape = NULL;
    lua_pop(c->L, 1);
    return r;
}

/* The members of a structure (shape table at sh), its traits and lists. */
static void compile_structure(cctx *c, cshape *s, int sh)
{
    lua_State *L = c->L;
    int members, traits = 0, n = 0, size = 4, i, g;
    s->document = shape_flag(L, sh, "document");
    s->is_union = shape_flag(L, sh, "union");
    if (s->document)
        return;
    if (rawfield(L, sh, "members") == LUA_TTABLE) {
        members = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, members) != 0) {
            n += lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING;
            lua_pop(L, 1);
        }
        while (size < 2 * n)
            size *= 2;
        s->members = c_alloc(c, (size_t)n * sizeof *s->members);
        s->slots = c_alloc(c, (size_t)size * sizeof *s->slots);
        s->mask = (unsigned)size - 1;
        if (rawfield(L, sh, "traits") == LUA_TTABLE)
            traits = lua_gettop(L);
        else
            lua_pop(L, 1);
        lua_pushnil(L);
        while (lua_next(L, members) != 0) {
            int key = lua_gettop(L) - 1;
            if (lua_type(L, key) == LUA_TSTRING && lua_type(L, key + 1) == LUA_TSTRING
                && s->nmembers < n) {
                cmember *m = &s->members[s->nmembers];
                unsigned j;
                dms_jw jw;
                m->name = anchor_string(c, key, &m->ref);
                m->hash = name_hash(m->name.s, m->name.len);
                m->shape.name = anchor_string(c, key + 1, NULL);
                /* the member's name as the writer writes it, once */
                dms_jw_init(&jw, L);
                dms_jw_string(&jw, m->name.s, m->name.len);
                dms_jw_putc(&jw, ':');
                m->json_key.len = jw.len;
                m->json_key.s = c_alloc(c, jw.len);
                memcpy((char *)m->json_key.s, jw.buf, jw.len);
                lua_settop(L, key + 1);
                if (traits) {
                    lua_pushvalue(L, key);
                    lua_rawget(L, traits);
                    if (lua_istable(L, -1)) {
                        int rule = lua_gettop(L);
                        m->has_rule = 1;
                        m->json = shape_flag(L, rule, "json");
                        m->nenum = string_list(c, rule, "enum", 1, &m->enums);
                        m->has_enum = m->nenum >= 0;
                        if (m->nenum < 0)
                            m->nenum = 0;
                        m->has_arn = rawfield(L, rule, "arn") != LUA_TNIL;
                        m->rtype = anchor_string(c, lua_gettop(L), NULL);
                    }
                    lua_settop(L, key + 1);
                }
                for (j = m->hash & s->mask; s->slots[j]; j = (j + 1) & s->mask)
                    ;
                s->slots[j] = ++s->nmembers;
            }
            lua_pop(L, 1);
        }
    }
    lua_settop(L, sh);
    s->required = name_list(c, sh, "required", s, &s->nrequired);
    s->tokens = name_list(c, sh, "idempotency_tokens", s, &s->ntokens);
    if (rawfield(L, sh, "exclusive") == LUA_TTABLE) {
        int groups = lua_gettop(L);
        s->ngroups = (int)dms_compat_rawlen(L, groups);
        s->groups = c_alloc(c, (size_t)s->ngroups * sizeof *s->groups);
        for (g = 0; g < s->ngroups; g++) {
            lua_rawgeti(L, groups, g + 1);
            if (lua_istable(L, -1)) {
                int group = lua_gettop(L), m = (int)dms_compat_rawlen(L, group), k = 0;
                s->groups[g].names = c_alloc(c, (size_t)m * sizeof(cname));
                for (i = 1; i <= m; i++) {
                    lua_rawgeti(L, group, i);
                    if (lua_type(L, -1) == LUA_TSTRING) {
                        cname *e = &s->groups[g].names[k++];
                        e->name = anchor_string(c, lua_gettop(L), NULL);
                        e->member = member_index(s, e->name);
                    }
                    lua_pop(L, 1);
                }
                s->groups[g].n = k;
            }
            lua_settop(L, groups);
        }
    }
    lua_settop(L, sh);
}

/* Compiles the shape named by the string at idx (or finds it compiled). */
static cshape *compile_shape(cctx *c, int idx)
{
    static const struct { const char *name; size_t len; enum kind k; } kinds[] = {
        {"structure", 9, K_STRUCTURE}, {"string", 6, K_STRING}, {"list", 4, K_LIST},
        {"integer", 7, K_INTEGER}, {"long", 4, K_LONG}, {"boolean", 7, K_BOOLEAN},
        {"timestamp", 9, K_TIMESTAMP}, {"map", 3, K_MAP}, {"double", 6, K_DOUBLE},
        {"float", 5, K_FLOAT}, {"blob", 4, K_BLOB},
    };
    lua_State *L = c->L;
    int top = lua_gettop(L), shapes, name, sh, ud;
    size_t i;
    cshape *s;

    luaL_checkstack(L, 24, "compiling the model");
    lua_pushvalue(L, idx);
    name = lua_gettop(L);
    lua_rawgeti(L, c->C, C_SHAPES);
    shapes = lua_gettop(L);
    lua_pushvalue(L, name);
    lua_rawget(L, shapes);
    if (lua_type(L, -1) == LUA_TUSERDATA) {
        s = lua_touserdata(L, -1);
        lua_settop(L, top);
        return s;
    }
    lua_pop(L, 1);
    /* C[2][name] = s once s is complete (a memory error while compiling
     * leaves no half-made shape behind): it anchors s and its name */
    s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    ud = lua_gettop(L);
    s->name.s = lua_tolstring(L, name, &s->name.len);
    s->kind = K_MISSING;
    if (!c->cm->has_shapes || rawfield(L, c->model, "shapes") != LUA_TTABLE)
        goto done;
    lua_pushvalue(L, name);
    lua_rawget(L, -2);
    if (!lua_istable(L, -1))
        goto done;
    sh = lua_gettop(L);
    s->kind = K_UNKNOWN;
    rawfield(L, sh, "type");
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (lstr_eq(L, -1, kinds[i].name, kinds[i].len)) {
            s->kind = kinds[i].k;
            break;
        }
    if (s->kind == K_UNKNOWN)
        s->type = anchor_string(c, lua_gettop(L), NULL);
    lua_settop(L, sh);
    s->has_min = opt_number(L, sh, "min", &s->min);
    s->has_max = opt_number(L, sh, "max", &s->max);
    switch (s->kind) {
    case K_STRUCTURE:
        compile_structure(c, s, sh);
        break;
    case K_LIST:
        s->member = shape_ref(c, sh, "member");
        break;
    case K_MAP:
        s->key = shape_ref(c, sh, "key");
        s->value = shape_ref(c, sh, "value");
        break;
    case K_TIMESTAMP:
        rawfield(L, sh, "format");
        s->format = lstr_eq(L, -1, "iso8601", 7) ? TS_ISO8601 : lstr_eq(L, -1, "rfc822", 6) ? TS_RFC822 : TS_EPOCH;
        break;
    default:
        break;
    }
done:
    lua_pushvalue(L, name);
    lua_pushvalue(L, ud);
    lua_rawset(L, shapes);
    lua_settop(L, top);
    return s;
}

/* the shape r names: a compiled shape, K_MISSING when the model has none */
static cshape *resolve_slow(cctx *c, cref *r)
{
    static const cshape unnamed;        /* all zero: K_MISSING, no name */
    if (!r->name.s)
        return r->shape = (cshape *)&unnamed;
    lua_pushlstring(c->L, r->name.s, r->name.len);
    r->shape = compile_shape(c, lua_gettop(c->L));
    lua_pop(c->L, 1);
    return r->shape;
}

static inline cshape *resolve(cctx *c, cref *r)
{
    return r->shape ? r->shape : resolve_slow(c, r);
}

/* Pushes the compiled form of the model at idx 1 and returns its cmodel. */
static cmodel *push_compiled(lua_State *L, cctx *c)
{
    cmodel *cm;
    luaL_checktype(L, 1, LUA_TTABLE);
    c->L = L;
    c->model = 1;
    lua_pushvalue(L, 1);
    lua_rawget(L, lua_upvalueindex(UV_CACHE));
    if (lua_istable(L, -1)) {
        c->C = lua_gettop(L);
        lua_rawgeti(L, c->C, C_MODEL);
        c->cm = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return c->cm;
    }
    lua_pop(L, 1);
    luaL_checkstack(L, 12, "compiling the model");
    lua_createtable(L, 3, 0);
    c->C = lua_gettop(L);
    cm = lua_newuserdata(L, sizeof *cm);
    memset(cm, 0, sizeof *cm);
    c->cm = cm;
    lua_rawseti(L, c->C, C_MODEL);
    lua_newtable(L);
    lua_rawseti(L, c->C, C_SHAPES);
    lua_newtable(L);
    lua_rawseti(L, c->C, C_ANCHOR);
    cm->has_ops = rawfield(L, 1, "operations") == LUA_TTABLE;
    cm->has_shapes = rawfield(L, 1, "shapes") == LUA_TTABLE;
    lua_pop(L, 2);
    rawfield(L, 1, "json_version");
    cm->json_version = lua_isnil(L, -1) || lstr_eq(L, -1, "1.1", 3) ? 1 : lstr_eq(L, -1, "1.0", 3) ? 0 : -1;
    lua_pop(L, 1);
    rawfield(L, 1, "target_prefix");
    cm->target_prefix = anchor_string(c, lua_gettop(L), NULL);
    lua_pop(L, 1);
    rawfield(L, 1, "arn_service");
    cm->arn_service = anchor_string(c, lua_gettop(L), NULL);
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, c->C);
    lua_rawset(L, lua_upvalueindex(UV_CACHE));
    return cm;
}

/*
 * The operation named at op: its compiled form, or NULL when the model has
 * no such operation (pushing nothing either way). Raises, as a program
 * error, when the model has no operations or, for a known operation, no
 * shapes.
 */
static cop *find_op(cctx *c, int op)
{
    lua_State *L = c->L;
    cop *o;
    int def;
    if (!c->cm->has_ops)
        luaL_argerror(L, 1, "model has no operations");
    lua_pushvalue(L, op);
    lua_rawget(L, c->C);
    if (lua_type(L, -1) == LUA_TUSERDATA) {
        o = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (!c->cm->has_shapes)
            luaL_argerror(L, 1, "model has no shapes");
        return o;
    }
    lua_pop(L, 1);
    rawfield(L, c->model, "operations");
    lua_pushvalue(L, op);
    lua_rawget(L, -2);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 2);
        return NULL;            /* an unknown name is not kept: there is no end to them */
    }
    def = lua_gettop(L);
    if (!c->cm->has_shapes)
        luaL_argerror(L, 1, "model has no shapes");
    o = lua_newuserdata(L, sizeof *o);
    memset(o, 0, sizeof *o);
    o->input = shape_ref(c, def, "input");
    o->output = shape_ref(c, def, "output");
    o->has_input = o->input.name.s != NULL;
    o->has_output = o->output.name.s != NULL;
    if (c->cm->target_prefix.s)
        lua_pushlstring(L, c->cm->target_prefix.s, c->cm->target_prefix.len);
    else
        lua_pushliteral(L, "");
    lua_pushliteral(L, ".");
    lua_pushvalue(L, op);
    lua_concat(L, 3);
    o->target_ref = anchor_top(c);
    lua_pushvalue(L, op);                   /* C[op] = o, complete */
    lua_insert(L, -2);
    lua_rawset(L, c->C);
    lua_pop(L, 2);
    return o;
}

/* ------------------------------------------------------------------ */
/* build: the walker                                                   */

/* Where the walker is: a member name or map key (a string at a stack index,
 * there while the walker is below it) or a list index. The path is written
 * out only when something fails. */
typedef struct {
    int idx;                    /* stack index of a member name or map key; 0: a list index */
    int is_key;                 /* a map key: [key] rather than .name */
    int index;
} frame;

typedef struct {
    lua_State *L;
    cctx c;
    int depth;
    dms_jw *jw;
    int nframes;
    size_t path_len;
    const char *code;           /* set on failure */
    frame frames[2 * MAX_DEPTH + 8];
    char path[PATH_MAX_LEN];
    char msg[PATH_MAX_LEN + 320];
} walker;

/* Appends fmt (one %s) with s to the path. */
static void path_push(walker *w, const char *fmt, const char *s)
{
    size_t old = w->path_len;
    int k;
    if (old >= sizeof w->path - 1)
        return;
    k = snprintf(w->path + old, sizeof w->path - old, fmt, s ? s : "?");
    if (k > 0) {
        if (old + (size_t)k < sizeof w->path) {
            w->path_len = old + (size_t)k;
        } else {
            /* too long to name exactly: say so rather than cut a name in two */
            w->path_len = sizeof w->path - 1;
            memcpy(w->path + w->path_len - 3, "...", 4);
        }
    }
}

static inline void frame_push(walker *w, int idx, int is_key, int index)
{
    if (w->nframes < (int)(sizeof w->frames / sizeof w->frames[0])) {
        w->frames[w->nframes].idx = idx;
        w->frames[w->nframes].is_key = is_key;
        w->frames[w->nframes].index = index;
    }
    w->nframes++;
}

static inline void frame_pop(walker *w)
{
    w->nframes--;
}

/* The string at idx, printable: at most max bytes, a control character or
 * NUL as '?' (a key "Name\0x" must not read as "Name"). */
static void printable(lua_State *L, int idx, char *out, size_t max)
{
    size_t n, i, k = 0;
    const char *s = lua_tolstring(L, idx, &n);
    for (i = 0; i < n && k + 1 < max; i++) {
        unsigned char c = (unsigned char)s[i];
        out[k++] = (char)(c < 32 || c == 127 ? '?' : c);
    }
    out[k] = '\0';
}

/* Writes the path of the frames: Filters[2].Values[1], Labels[key]. */
static void render_path(walker *w)
{
    int i, n = w->nframes < (int)(sizeof w->frames / sizeof w->frames[0])
                   ? w->nframes : (int)(sizeof w->frames / sizeof w->frames[0]);
    w->path_len = 0;
    w->path[0] = '\0';
    for (i = 0; i < n; i++) {
        char name[PATH_MAX_LEN];
        if (w->frames[i].idx == 0) {
            snprintf(name, sizeof name, "%d", w->frames[i].index);
            path_push(w, "[%s]", name);
        } else {
            printable(w->L, w->frames[i].idx, name, sizeof name);
            path_push(w, w->frames[i].is_key ? "[%s]" : (w->path_len ? ".%s" : "%s"), name);
        }
    }
}

/* names the member at idx in the path of the error (err.member) */
static void path_member(walker *w, int idx)
{
    frame_push(w, idx, 0, 0);
    render_path(w);
}

/* names a member of the model in the path of the error (pushing its name) */
static void path_name(walker *w, cstr name)
{
    lua_pushlstring(w->L, name.s, name.len);
    path_member(w, lua_gettop(w->L));
}

static int fail(walker *w, const char *code, const char *fmt, const char *detail)
{
    char what[300];
    snprintf(what, sizeof what, fmt, detail ? detail : "");
    w->code = code;
    render_path(w);
    if (w->path_len)
        snprintf(w->msg, sizeof w->msg, "%s %s", w->path, what);
    else
        snprintf(w->msg, sizeof w->msg, "parameters %s", what);
    return 0;
}

/* arn:partition:service:region:account:resource; with service, the resource
 * must be of type rtype and the region and account must be there */
static int valid_arn(const char *s, size_t len, const char *service, size_t slen,
                     const char *rtype, size_t rlen)
{
    const char *f[6];
    size_t flen[6], i = 0, k;
    const char *p = s, *end = s + len;
    if (len > MAX_ARN_LEN)
        return 0;
    for (k = 0; k < 5; k++) {
        const char *c = memchr(p, ':', (size_t)(end - p));
        if (!c)
            return 0;
        f[k] = p;
        flen[k] = (size_t)(c - p);
        p = c + 1;
    }
    f[5] = p;
    flen[5] = (size_t)(end - p);
    if (flen[0] != 3 || memcmp(f[0], "arn", 3) != 0)
        return 0;
    if (flen[1] == 0 || flen[2] == 0 || flen[5] == 0)
        return 0;
    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 127)
            return 0;
    for (k = 0; k < flen[1]; k++)
        if (!islower((unsigned char)f[1][k]) && f[1][k] != '-')
            return 0;
    if (rtype) {
        if (service && (flen[2] != slen || memcmp(f[2], service, slen) != 0))
            return 0;
        if (flen[3] == 0 || flen[4] != 12)
            return 0;
        for (k = 0; k < 12; k++)
            if (!isdigit((unsigned char)f[4][k]))
                return 0;
        if (flen[5] <= rlen + 1 || memcmp(f[5], rtype, rlen) != 0 || f[5][rlen] != ':')
            return 0;
    }
    return 1;
}

/* The rules of the member's traits (enum, arn) for the value at val. */
static int check_traits(walker *w, const cmember *m, int val)
{
    lua_State *L = w->L;
    size_t vlen;
    const char *v;
    int i;
    if (!m->has_rule || lua_type(L, val) != LUA_TSTRING)
        return 1;
    v = lua_tolstring(L, val, &vlen);
    if (m->has_enum) {
        int found = 0;
        for (i = 0; i < m->nenum && !found; i++)
            found = m->enums[i].s && m->enums[i].len == vlen && memcmp(m->enums[i].s, v, vlen) == 0;
        if (!found) {
            char names[160] = "";
            size_t used = 0;
            for (i = 0; i < m->nenum && used < sizeof names; i++)
                if (m->enums[i].s)
                    used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                             i > 0 ? " | " : "", m->enums[i].s);
            return fail(w, "InvalidParameterValue", "must be one of: %s", names);
        }
    }
    if (m->has_arn) {
        const cstr *service = &w->c.cm->arn_service;
        if (!valid_arn(v, vlen, service->s, service->len, m->rtype.s, m->rtype.len)) {
            char why[220];
            if (vlen > MAX_ARN_LEN)
                snprintf(why, sizeof why, "must be an ARN of at most %d characters", MAX_ARN_LEN);
            else if (m->rtype.s)
                snprintf(why, sizeof why, "must be an ARN like arn:aws:%.20s:us-east-1:123456789012:%.60s:NAME",
                         service->s ? service->s : "service", m->rtype.s);
            else
                snprintf(why, sizeof why, "must be an ARN (arn:partition:service:region:account:resource)");
            return fail(w, "InvalidParameterValue", "%s", why);
        }
    }
    return 1;
}

static int write_value(walker *w, cshape *s, int val);

/* A Lua value as a JSON document: tables with keys 1..n are arrays, tables
 * with string keys objects ({} is {}), the light userdata NULL is null. */
static int write_document(walker *w, dms_jw *jw, int val, int depth)
{
    lua_State *L = w->L;
    int t = lua_type(L, val);
    switch (t) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, val, &n);
        if (!dms_jw_string(jw, s, n))
            return fail(w, "InvalidParameterValue", "cannot be encoded as JSON: a string is not valid UTF-8%s", NULL);
        return 1;
    }
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, val))
            dms_jw_lit(jw, "true");
        else
            dms_jw_lit(jw, "false");
        return 1;
    case LUA_TNUMBER: {
        long long i;
        double d;
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(L, val)) {
            to_int64(L, val, &i);
            dms_jw_int(jw, i);
            return 1;
        }
#endif
        (void)i;
        d = (double)lua_tonumber(L, val);
        if (!isfinite(d))
            return fail(w, "InvalidParameterValue", "cannot be encoded as JSON: JSON has no NaN or infinity%s", NULL);
        dms_jw_double(jw, d);
        return 1;
    }
    case LUA_TLIGHTUSERDATA:
        if (is_null(L, val)) {
            dms_jw_lit(jw, "null");
            return 1;
        }
        break;
    case LUA_TTABLE: {
        int n = (int)dms_compat_rawlen(L, val), count = 0, first = 1, ok = 1;
        if (depth >= DMS_JSON_MAX_DEPTH)
            return fail(w, "InvalidParameterValue", "cannot be encoded as JSON: nested too deeply (a cycle?)%s", NULL);
        luaL_checkstack(L, 6, "JSON document nested too deeply");
        lua_pushnil(L);
        while (lua_next(L, val) != 0) {
            int kt = lua_type(L, -2);
            if (n > 0 ? !(dms_compat_isinteger(L, -2) && lua_tonumber(L, -2) >= 1 && lua_tonumber(L, -2) <= n)
                      : kt != LUA_TSTRING) {
                lua_pop(L, 2);
                return fail(w, "InvalidParameterValue", n > 0
                            ? "cannot be encoded as JSON: a table mixes list items and named members%s"
                            : "cannot be encoded as JSON: a table key that is not a string%s", NULL);
            }
            count++;
            lua_pop(L, 1);
        }
        if (n > 0) {
            int i;
            if (count != n)
                return fail(w, "InvalidParameterValue", "cannot be encoded as JSON: a list with holes%s", NULL);
            dms_jw_putc(jw, '[');
            for (i = 1; i <= n && ok; i++) {
                if (i > 1)
                    dms_jw_putc(jw, ',');
                lua_rawgeti(L, val, i);
                ok = write_document(w, jw, lua_gettop(L), depth + 1);
                lua_pop(L, 1);
            }
            dms_jw_putc(jw, ']');
            return ok;
        }
        dms_jw_putc(jw, '{');
        lua_pushnil(L);
        while (ok && lua_next(L, val) != 0) {
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            if (!first)
                dms_jw_putc(jw, ',');
            first = 0;
            if (!dms_jw_string(jw, k, kl)) {
                lua_pop(L, 2);
                return fail(w, "InvalidParameterValue", "cannot be encoded as JSON: a key is not valid UTF-8%s", NULL);
            }
            dms_jw_putc(jw, ':');
            ok = write_document(w, jw, lua_gettop(L), depth + 1);
            lua_pop(L, ok ? 1 : 2);
        }
        dms_jw_putc(jw, '}');
        return ok;
    }
    default: {
        long long i;
        if (to_int64(L, val, &i) == 1) {     /* an int64 cdata */
            dms_jw_int(jw, i);
            return 1;
        }
        break;
    }
    }
    return fail(w, "InvalidParameterValue", "cannot be encoded as JSON: a %s", luaL_typename(L, val));
}

/* A member holding a JSON document as a string: a string that must hold a
 * JSON object (sent as it is), or a table written as one. */
static int write_json_member(walker *w, int val)
{
    lua_State *L = w->L;
    if (lua_type(L, val) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, val, &len);
        dms_jr r;
        dms_jr_init(&r, s, len);
        if (dms_jr_peek(&r) != '{')
            return fail(w, "InvalidParameterValue", "must be a JSON object (text or a Lua table)%s", NULL);
        if (!dms_jr_skip(&r) || dms_jr_peek(&r) != -1)
            return fail(w, "InvalidParameterValue", "must be a JSON object: the text is not valid JSON%s", NULL);
        if (!dms_jw_string(w->jw, s, len))
            return fail(w, "InvalidParameterValue", "is not valid UTF-8%s", NULL);
        return 1;
    }
    if (lua_type(L, val) == LUA_TTABLE) {
        dms_jw doc;
        int ok, top = lua_gettop(L);
        lua_rawgeti(L, val, 1);
        if (!lua_isnil(L, -1)) {
            lua_pop(L, 1);
            return fail(w, "InvalidParameterValue", "must be a JSON object, not a list%s", NULL);
        }
        lua_pop(L, 1);
        dms_jw_init(&doc, L);
        ok = write_document(w, &doc, val, 0);
        if (ok && doc.buf[0] != '{')
            ok = fail(w, "InvalidParameterValue", "must be a JSON object, not a list%s", NULL);
        if (ok)
            dms_jw_string(w->jw, doc.buf, doc.len);     /* our own text: valid UTF-8 */
        lua_settop(L, top);
        return ok;
    }
    return fail(w, "InvalidParameterType", "must be a JSON object string or a table, not %s",
                luaL_typename(L, val));
}

/* A version 4 UUID, as botocore fills idempotency tokens. */
static void write_uuid(dms_jw *jw)
{
    unsigned char b[16];
    char out[40];
    static const char hex[] = "0123456789abcdef";
    int i, k = 0;
    if (RAND_bytes(b, sizeof b) != 1) {
        /* no entropy from OpenSSL: the clock and address still make it unique enough */
        unsigned long long t = (unsigned long long)time(NULL) ^ (unsigned long long)(size_t)jw;
        for (i = 0; i < 16; i++)
            b[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)(i * 37 + (int)clock());
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    out[k++] = '"';
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[b[i] >> 4];
        out[k++] = hex[b[i] & 15];
    }
    out[k++] = '"';
    dms_jw_put(jw, out, (size_t)k);
}


/* A table that holds nothing itself and whose metatable answers reads
 * (__index, __len, __pairs): a proxy. Tables are read raw here (a metamethod
 * could free what C holds, or raise, or yield), which is right for a table
 * whose contents are its own, and silently wrong for a proxy: its list would
 * go out as [] and its filters as none. */
static int is_proxy(lua_State *L, int idx)
{
    static const char *const events[] = {"__index", "__len", "__pairs"};
    size_t i;
    int found = 0;
    lua_pushnil(L);
    if (lua_next(L, idx) != 0) {
        lua_pop(L, 2);
        return 0;               /* it holds something: read as it is */
    }
    if (!lua_getmetatable(L, idx))
        return 0;
    for (i = 0; i < sizeof events / sizeof events[0] && !found; i++) {
        lua_pushstring(L, events[i]);
        lua_rawget(L, -2);
        found = !lua_isnil(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return found;
}


static const char PROXY_MSG[] = "must be a table that holds its values (this one is empty "
                                "behind a metatable with __index, __len or __pairs: a proxy)%s";

static int write_structure(walker *w, cshape *s, int val)
{
    lua_State *L = w->L;
    int i, first = 1, given = 0;
    /* the members given (not null), by index */
    unsigned char seen_fixed[64], *seen = seen_fixed;

    if (s->document)
        return write_document(w, w->jw, val, 0);
    if (!lua_istable(L, val))
        return fail(w, "InvalidParameterType", "must be a table (structure), not %s",
                    luaL_typename(L, val));
    if (is_proxy(L, val))
        return fail(w, "InvalidParameterType", PROXY_MSG, NULL);
    if (s->nmembers > (int)sizeof seen_fixed)
        seen = lua_newuserdata(L, (size_t)s->nmembers);     /* popped with the walker's stack */
    memset(seen, 0, s->nmembers > 0 ? (size_t)s->nmembers : 1);

    dms_jw_putc(w->jw, '{');
    lua_pushnil(L);
    while (lua_next(L, val) != 0) {
        /* stack: key, value */
        int key = lua_gettop(L) - 1, value = key + 1, ok;
        size_t klen;
        const char *k;
        cmember *m;
        if (lua_type(L, key) != LUA_TSTRING)
            return fail(w, "UnknownParameter", "has a key that is not a member name%s", NULL);
        if (is_null(L, value)) {            /* JSON null: as if absent */
            lua_pop(L, 1);
            continue;
        }
        k = lua_tolstring(L, key, &klen);
        m = find_member(s, k, klen);        /* by the exact key */
        if (!m) {
            char why[160], kname[101];
            printable(L, key, kname, sizeof kname);
            snprintf(why, sizeof why, "has an unknown member '%s'", kname);
            fail(w, "UnknownParameter", "%s", why);
            path_member(w, key);            /* err.member names the unknown member itself */
            return 0;
        }
        frame_push(w, key, 0, 0);
        if (!first)
            dms_jw_putc(w->jw, ',');
        first = 0;
        dms_jw_put(w->jw, m->json_key.s, m->json_key.len);
        ok = m->json ? write_json_member(w, value) : write_value(w, resolve(&w->c, &m->shape), value);
        if (ok)
            ok = check_traits(w, m, value);
        if (!ok)
            return 0;
        frame_pop(w);
        seen[m - s->members] = 1;
        given++;
        lua_settop(L, key);
    }

    /* idempotency tokens the caller did not give: a fresh UUID each */
    for (i = 0; i < s->ntokens; i++) {
        const cname *t = &s->tokens[i];
        if (t->member < 0 || !seen[t->member]) {
            if (!first)
                dms_jw_putc(w->jw, ',');
            first = 0;
            dms_jw_string(w->jw, t->name.s, t->name.len);
            dms_jw_putc(w->jw, ':');
            write_uuid(w->jw);
        }
    }
    dms_jw_putc(w->jw, '}');

    for (i = 0; i < s->nrequired; i++) {
        const cname *r = &s->required[i];
        if (r->member < 0 || !seen[r->member]) {
            path_name(w, r->name);
            return fail(w, "MissingParameter", "is required%s", NULL);
        }
    }

    for (i = 0; i < s->ngroups; i++) {
        const cgroup *g = &s->groups[i];
        int j, count = 0, firstj = -1;
        char names[160] = "";
        size_t used = 0;
        for (j = 0; j < g->n; j++) {
            if (g->names[j].member >= 0 && seen[g->names[j].member]) {
                count++;
                if (firstj < 0)
                    firstj = j;
                if (used < sizeof names)
                    used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                             count > 1 ? " and " : "", g->names[j].name.s);
            }
        }
        if (count > 1) {
            char why[220];
            snprintf(why, sizeof why, "cannot have %s together: give only one", names);
            fail(w, "InvalidParameterCombination", "%s", why);
            path_name(w, g->names[firstj].name);
            return 0;
        }
    }

    if (s->is_union && given != 1)
        return fail(w, "InvalidParameterValue", given
                    ? "sets more than one member of a union: give exactly one%s"
                    : "sets no member of a union: give exactly one%s", NULL);
    return 1;
}

static int write_list(walker *w, cshape *s, int val)
{
    lua_State *L = w->L;
    int n, i, count = 0;
    cshape *member;

    if (!lua_istable(L, val))
        return fail(w, "InvalidParameterType", "must be a list (table), not %s", luaL_typename(L, val));
    if (is_proxy(L, val))
        return fail(w, "InvalidParameterType", PROXY_MSG, NULL);
    n = (int)dms_compat_rawlen(L, val);
    lua_pushnil(L);
    while (lua_next(L, val) != 0) {
        count++;
        if (!dms_compat_isinteger(L, -2) || lua_tonumber(L, -2) < 1 || lua_tonumber(L, -2) > n)
            return fail(w, "InvalidParameterType", "must be a list (a sequence 1..n)%s", NULL);
        lua_pop(L, 1);
    }
    if (count != n)
        return fail(w, "InvalidParameterType", "must be a list (a sequence 1..n)%s", NULL);
    if (s->has_min && n < s->min)
        return fail(w, "InvalidParameterValue", "has fewer items than the model allows%s", NULL);
    if (s->has_max && n > s->max)
        return fail(w, "InvalidParameterValue", "has more items than the model allows%s", NULL);
    member = n > 0 ? resolve(&w->c, &s->member) : NULL;
    dms_jw_putc(w->jw, '[');
    for (i = 1; i <= n; i++) {
        frame_push(w, 0, 0, i);
        if (i > 1)
            dms_jw_putc(w->jw, ',');
        lua_rawgeti(L, val, i);
        if (!write_value(w, member, lua_gettop(L)))
            return 0;
        frame_pop(w);
        lua_pop(L, 1);
    }
    dms_jw_putc(w->jw, ']');
    return 1;
}

/* Writes the string at val for a string shape (or a map key of one): valid
 * UTF-8, its length in characters (code points, as botocore counts them)
 * within the model's min..max. */
static int write_string(walker *w, const cshape *s, int val)
{
    lua_State *L = w->L;
    size_t len, chars;
    const char *str = lua_tolstring(L, val, &len);
    if (s && (s->has_min || s->has_max)) {
        if (!dms_utf8_check(str, len, &chars))
            return fail(w, "InvalidParameterValue", "is not valid UTF-8 text%s", NULL);
        if (s->has_min && (double)chars < s->min)
            return fail(w, "InvalidParameterValue", "is shorter than the model allows%s", NULL);
        if (s->has_max && (double)chars > s->max)
            return fail(w, "InvalidParameterValue", "is longer than the model allows%s", NULL);
    }
    if (!dms_jw_string(w->jw, str, len))
        return fail(w, "InvalidParameterValue", "is not valid UTF-8 text%s", NULL);
    return 1;
}

static int write_map(walker *w, cshape *s, int val)
{
    lua_State *L = w->L;
    int first = 1, count = 0, top = lua_gettop(L);
    cshape *kshape = NULL, *vshape = NULL;
    if (!lua_istable(L, val))
        return fail(w, "InvalidParameterType", "must be a table (map), not %s", luaL_typename(L, val));
    if (is_proxy(L, val))
        return fail(w, "InvalidParameterType", PROXY_MSG, NULL);
    dms_jw_putc(w->jw, '{');
    lua_pushnil(L);
    while (lua_next(L, val) != 0) {
        int key = lua_gettop(L) - 1;
        if (lua_type(L, key) != LUA_TSTRING)
            return fail(w, "InvalidParameterType", "must have string keys (map)%s", NULL);
        count++;
        if (is_null(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        if (!vshape) {
            kshape = resolve(&w->c, &s->key);
            if (kshape->kind != K_STRING)
                kshape = NULL;
            vshape = resolve(&w->c, &s->value);
        }
        frame_push(w, key, 1, 0);
        if (!first)
            dms_jw_putc(w->jw, ',');
        first = 0;
        if (!write_string(w, kshape, key))
            return 0;
        dms_jw_putc(w->jw, ':');
        if (!write_value(w, vshape, key + 1))
            return 0;
        frame_pop(w);
        lua_pop(L, 1);
    }
    dms_jw_putc(w->jw, '}');
    if (s->has_min && count < s->min)
        return fail(w, "InvalidParameterValue", "has fewer entries than the model allows%s", NULL);
    if (s->has_max && count > s->max)
        return fail(w, "InvalidParameterValue", "has more entries than the model allows%s", NULL);
    lua_settop(L, top);
    return 1;
}

static int write_integer(walker *w, const cshape *s, int val, int is_long)
{
    lua_State *L = w->L;
    long long v;
    int r = to_int64(L, val, &v);
    if (r == 0)
        return fail(w, "InvalidParameterType", "must be an integer, not %s",
                    lua_type(L, val) == LUA_TNUMBER ? "a fraction" : luaL_typename(L, val));
    if (r < 0 || (!is_long && (v < -2147483648LL || v > 2147483647LL)))
        return fail(w, "InvalidParameterValue", is_long ? "is out of the 64-bit integer range%s"
                                                        : "is out of the 32-bit integer range%s", NULL);
    if (s->has_min && (double)v < s->min)
        return fail(w, "InvalidParameterValue", "is below the minimum the model allows%s", NULL);
    if (s->has_max && (double)v > s->max)
        return fail(w, "InvalidParameterValue", "is above the maximum the model allows%s", NULL);
    dms_jw_int(w->jw, v);
    return 1;
}

/* doubles and floats: numbers, NaN and the infinities as the protocol writes
 * them ("NaN", "Infinity", "-Infinity"), and those three strings */
static int write_double(walker *w, const cshape *s, int val)
{
    lua_State *L = w->L;
    double d;
    if (lua_type(L, val) == LUA_TSTRING) {
        if (lstr_eq(L, val, "NaN", 3))
            d = NAN;
        else if (lstr_eq(L, val, "Infinity", 8))
            d = HUGE_VAL;
        else if (lstr_eq(L, val, "-Infinity", 9))
            d = -HUGE_VAL;
        else
            return fail(w, "InvalidParameterType", "must be a number (or \"NaN\", \"Infinity\", \"-Infinity\"), not %s",
                        "a string");
    } else if (lua_type(L, val) == LUA_TNUMBER) {
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(L, val)) {
            long long i = (long long)lua_tointeger(L, val);
            if ((s->has_min && (double)i < s->min) || (s->has_max && (double)i > s->max))
                return fail(w, "InvalidParameterValue", "is outside the range the model allows%s", NULL);
            dms_jw_int(w->jw, i);
            return 1;
        }
#endif
        d = (double)lua_tonumber(L, val);
    } else {
        return fail(w, "InvalidParameterType", "must be a number, not %s", luaL_typename(L, val));
    }
    if (isnan(d)) {
        dms_jw_lit(w->jw, "\"NaN\"");
        return 1;
    }
    if ((s->has_min && d < s->min) || (s->has_max && d > s->max))
        return fail(w, "InvalidParameterValue", "is outside the range the model allows%s", NULL);
    if (isinf(d))
        dms_jw_put(w->jw, d > 0 ? "\"Infinity\"" : "\"-Infinity\"", d > 0 ? 10 : 11);
    else
        dms_jw_double(w->jw, d);
    return 1;
}

static int write_timestamp(walker *w, const cshape *s, int val)
{
    lua_State *L = w->L;
    double v;
    const char *why = NULL;
    int t = lua_type(L, val);
    if (to_epoch(L, val, &v, &why) != 0)
        return fail(w, t == LUA_TNUMBER || t == LUA_TSTRING || t == LUA_TTABLE
                       ? "InvalidParameterValue" : "InvalidParameterType", "%s", why);
    if (s->format == TS_ISO8601)
        write_iso8601(w->jw, v);
    else if (s->format == TS_RFC822)
        write_rfc822(w->jw, v);
    else
        write_epoch(w->jw, v);          /* unixTimestamp, the JSON protocols' default */
    return 1;
}

static int write_blob(walker *w, int val)
{
    lua_State *L = w->L;
    size_t len, i;
    const char *s;
    if (lua_type(L, val) != LUA_TSTRING)
        return fail(w, "InvalidParameterType", "must be a string of bytes, not %s", luaL_typename(L, val));
    s = lua_tolstring(L, val, &len);
    /* base64 straight into the text, 48 bytes -> 64 characters at a time */
    dms_jw_reserve(w->jw, (len + 2) / 3 * 4 + 2);
    w->jw->buf[w->jw->len++] = '"';
    for (i = 0; i < len; i += 48) {
        size_t chunk = len - i < 48 ? len - i : 48;
        int k = EVP_EncodeBlock((unsigned char *)w->jw->buf + w->jw->len, (const unsigned char *)s + i,
                                (int)chunk);
        w->jw->len += (size_t)k;
    }
    w->jw->buf[w->jw->len++] = '"';
    return 1;
}

/* Validates the value at val against the shape s and writes it. */
static int write_value(walker *w, cshape *s, int val)
{
    lua_State *L = w->L;
    int ok = 0, top = lua_gettop(L);

    if (w->depth >= MAX_DEPTH)
        return fail(w, "InvalidParameterValue", "is nested too deeply (a cycle?)%s", NULL);
    luaL_checkstack(L, 16, "parameters nested too deeply");
    if (s->kind == K_MISSING) {
        w->code = "ModelError";
        snprintf(w->msg, sizeof w->msg, "the model has no shape '%.100s'", s->name.s ? s->name.s : "?");
        return 0;
    }
    w->depth++;
    switch (s->kind) {
    case K_STRUCTURE: ok = write_structure(w, s, val); break;
    case K_LIST: ok = write_list(w, s, val); break;
    case K_MAP: ok = write_map(w, s, val); break;
    case K_STRING:
        if (lua_type(L, val) != LUA_TSTRING)
            ok = fail(w, "InvalidParameterType", "must be a string, not %s", luaL_typename(L, val));
        else
            ok = write_string(w, s, val);
        break;
    case K_INTEGER: ok = write_integer(w, s, val, 0); break;
    case K_LONG: ok = write_integer(w, s, val, 1); break;
    case K_DOUBLE:
    case K_FLOAT: ok = write_double(w, s, val); break;
    case K_BOOLEAN:
        if (lua_type(L, val) != LUA_TBOOLEAN) {
            ok = fail(w, "InvalidParameterType", "must be a boolean, not %s", luaL_typename(L, val));
        } else {
            if (lua_toboolean(L, val))
                dms_jw_lit(w->jw, "true");
            else
                dms_jw_lit(w->jw, "false");
            ok = 1;
        }
        break;
    case K_TIMESTAMP: ok = write_timestamp(w, s, val); break;
    case K_BLOB: ok = write_blob(w, val); break;
    default: {
        char t[64] = "?";
        if (s->type.s)
            snprintf(t, sizeof t, "%s", s->type.s);
        ok = fail(w, "ModelError", "has an unsupported shape type '%s'", t);
    }
    }
    w->depth--;
    if (ok)
        lua_settop(L, top);
    return ok;
}

/* ------------------------------------------------------------------ */
/* build(model, operation, params) -> request | nil, err               */

static int return_walk_error(lua_State *L, walker *w, const char *kind)
{
    lua_pushnil(L);
    dms_push_error(L, kind, w->code ? w->code : "InvalidParameter", w->msg);
    if (w->path_len) {
        lua_pushstring(L, w->path);
        lua_setfield(L, -2, "member");
    }
    return 2;
}

static void push_header_pair(lua_State *L, const char *name, size_t len, int value_idx, int n)
{
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, name, len);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, value_idx);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, n);
}

static int unknown_operation(lua_State *L)
{
    char msg[200], name[101];
    printable(L, 2, name, sizeof name);
    snprintf(msg, sizeof msg, "unknown operation '%s'", name);
    return dms_return_error(L, "validation", "UnknownOperation", msg);
}

static int shape_build(lua_State *L)
{
    walker w;
    dms_jw jw;
    cop *op;
    int content_type, target;

    luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
        return dms_return_error(L, "validation", "InvalidParameterType", "parameters must be a table");
    lua_settop(L, 3);
    if (lua_isnil(L, 3)) {
        lua_newtable(L);
        lua_replace(L, 3);
    }
    push_compiled(L, &w.c);                 /* 4: the compiled model */
    op = find_op(&w.c, 2);
    if (!op)
        return unknown_operation(L);

    /* the protocol's headers, from the model's metadata */
    if (w.c.cm->json_version == 1)
        lua_pushliteral(L, "application/x-amz-json-1.1");
    else if (w.c.cm->json_version == 0)
        lua_pushliteral(L, "application/x-amz-json-1.0");
    else
        return luaL_argerror(L, 1, "model.json_version must be \"1.0\" or \"1.1\"");
    content_type = lua_gettop(L);
    lua_rawgeti(L, w.c.C, C_ANCHOR);
    lua_rawgeti(L, -1, op->target_ref);
    lua_remove(L, -2);
    target = lua_gettop(L);

    w.L = L;
    w.depth = 0;
    w.jw = &jw;
    w.nframes = 0;
    w.path_len = 0;
    w.path[0] = '\0';
    w.code = NULL;
    w.msg[0] = '\0';
    dms_jw_init(&jw, L);
    if (op->has_input) {
        if (!write_value(&w, resolve(&w.c, &op->input), 3))
            return return_walk_error(L, &w, "validation");
    } else {
        dms_jw_lit(&jw, "{}");              /* no input shape: always an empty object */
    }

    lua_createtable(L, 0, 5);
    lua_pushliteral(L, "POST");
    lua_setfield(L, -2, "method");
    lua_pushliteral(L, "/");
    lua_setfield(L, -2, "path");
    dms_jw_push(&jw);
    lua_setfield(L, -2, "body");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "operation");
    lua_createtable(L, 2, 0);
    push_header_pair(L, "Content-Type", 12, content_type, 1);
    push_header_pair(L, "X-Amz-Target", 12, target, 2);
    lua_setfield(L, -2, "headers");
    return 1;
}

/* ------------------------------------------------------------------ */
/* parse: the reader                                                   */

typedef struct {
    lua_State *L;
    cctx c;
    int anchor;                 /* C[3] on the stack: the members' names */
    int depth;
    dms_jr r;
} reader;

static int read_value(reader *rd, cshape *s);

/* a value the model does not describe, kept as it came (object nulls dropped) */
static int read_plain(reader *rd)
{
    return dms_jr_value(&rd->r, rd->L, 1);
}

/* Pushes the key of an object member at the reader's position (escapes
 * decoded; nil for a key that is dropped) and consumes the ':' after it; *m
 * is the structure's member of that name, or NULL. */
static int read_key(reader *rd, const cshape *s, cmember **m)
{
    lua_State *L = rd->L;
    const char *k, *start = rd->r.p;
    size_t n;
    int escaped;
    if (!dms_jr_string_span(&rd->r, &k, &n, &escaped))
        return 0;
    if (escaped) {
        rd->r.p = start;
        if (!dms_jr_string(&rd->r, L))
            return 0;
        k = lua_tolstring(L, -1, &n);
        *m = find_member(s, k, n);
    } else {
        *m = find_member(s, k, n);
        if (*m)
            lua_rawgeti(L, rd->anchor, (*m)->ref);  /* the model's own string */
        else if (s->is_union)
            lua_pushlstring(L, k, n);               /* named in SDK_UNKNOWN_MEMBER */
        else
            lua_pushnil(L);                         /* dropped */
    }
    return dms_jr_expect(&rd->r, ':');
}

static int read_structure(reader *rd, cshape *s)
{
    lua_State *L = rd->L;
    int out, more, first = 1;
    if (s->document)
        return dms_jr_value(&rd->r, L, 0);
    if (dms_jr_peek(&rd->r) != '{')
        return read_plain(rd);
    luaL_checkstack(L, 8, "response nested too deeply");
    lua_createtable(L, 0, s->nmembers < 16 ? s->nmembers : 16);
    out = lua_gettop(L);
    rd->r.p++;
    while ((more = dms_jr_next(&rd->r, '}', first)) == 1) {
        cmember *m;
        first = 0;
        if (!read_key(rd, s, &m))
            return 0;
        if (dms_jr_peek(&rd->r) == 'n') {        /* null: the member is absent */
            if (!dms_jr_skip(&rd->r))
                return 0;
            lua_settop(L, out);
            continue;
        }
        if (m) {
            if (!read_value(rd, resolve(&rd->c, &m->shape)))
                return 0;
            lua_rawset(L, out);
        } else {
            /* a member the model does not define is dropped; a union member
             * the model does not know is named, as botocore names it */
            if (!dms_jr_skip(&rd->r))
                return 0;
            if (s->is_union && lua_type(L, -1) == LUA_TSTRING && !lstr_eq(L, -1, "__type", 6)) {
                int key = lua_gettop(L);
                lua_createtable(L, 0, 1);
                lua_pushvalue(L, key);
                lua_setfield(L, -2, "name");
                lua_setfield(L, out, "SDK_UNKNOWN_MEMBER");
            }
            lua_settop(L, out);
        }
    }
    return more == 0;
}

static int read_list(reader *rd, cshape *s)
{
    lua_State *L = rd->L;
    int out, more, first = 1, i = 0;
    cshape *member = NULL;
    if (dms_jr_peek(&rd->r) != '[')
        return read_plain(rd);
    luaL_checkstack(L, 8, "response nested too deeply");
    lua_newtable(L);
    out = lua_gettop(L);
    rd->r.p++;
    while ((more = dms_jr_next(&rd->r, ']', first)) == 1) {
        first = 0;
        if (dms_jr_peek(&rd->r) == 'n') {
            if (!dms_jr_literal(&rd->r))
                return 0;
            lua_pushlightuserdata(L, NULL);     /* a null item keeps its place */
        } else {
            if (!member)
                member = resolve(&rd->c, &s->member);
            if (!read_value(rd, member))
                return 0;
        }
        lua_rawseti(L, out, ++i);
    }
    return more == 0;
}

static int read_map(reader *rd, cshape *s)
{
    lua_State *L = rd->L;
    int out, more, first = 1;
    cshape *vshape = NULL;
    if (dms_jr_peek(&rd->r) != '{')
        return read_plain(rd);
    luaL_checkstack(L, 8, "response nested too deeply");
    lua_newtable(L);
    out = lua_gettop(L);
    rd->r.p++;
    while ((more = dms_jr_next(&rd->r, '}', first)) == 1) {
        first = 0;
        if (!dms_jr_string(&rd->r, L) || !dms_jr_expect(&rd->r, ':'))
            return 0;
        if (dms_jr_peek(&rd->r) == 'n') {
            if (!dms_jr_skip(&rd->r))
                return 0;
            lua_pop(L, 1);
            continue;
        }
        if (!vshape)
            vshape = resolve(&rd->c, &s->value);
        if (!read_value(rd, vshape))
            return 0;
        lua_rawset(L, out);
    }
    return more == 0;
}

static int read_number(reader *rd, enum kind k)
{
    dms_jnum num;
    if (!dms_jr_number(&rd->r, &num))
        return 0;
    if (k == K_DOUBLE || k == K_FLOAT)
        lua_pushnumber(rd->L, (lua_Number)num.d);
    else if (num.integral)
        push_int64(rd->L, num.i);
    else
        push_number(rd->L, num.d);
    return 1;
}
/* Replaces the string at the top with what a string means for kind k. */
static void convert_string(lua_State *L, enum kind k)
{
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (k == K_DOUBLE || k == K_FLOAT) {
        double d = 0;
        int special = 1;
        if (len == 3 && memcmp(s, "NaN", 3) == 0)
            d = NAN;
        else if (len == 8 && memcmp(s, "Infinity", 8) == 0)
            d = HUGE_VAL;
        else if (len == 9 && memcmp(s, "-Infinity", 9) == 0)
            d = -HUGE_VAL;
        else
            special = 0;
        if (special) {
            lua_pop(L, 1);
            lua_pushnumber(L, (lua_Number)d);
        }
    } else if (k == K_TIMESTAMP) {
        double v;
        dms_jr r;
        dms_jnum num;
        dms_jr_init(&r, s, len);
        if (len > 0 && (s[0] == '-' || isdigit((unsigned char)s[0])) && dms_jr_number(&r, &num)
            && r.p == s + len) {
            lua_pop(L, 1);              /* epoch seconds as text */
            push_number(L, num.d);
        } else if (parse_iso8601(s, len, &v) == 0 || parse_rfc822(s, len, &v) == 0) {
            lua_pop(L, 1);
            push_number(L, v);
        }
        /* else: not a date, kept as it came */
    } else if (k == K_BLOB) {
        unsigned char *dec;
        int n;
        if (len % 4 != 0 || len / 4 * 3 > 0x7fffffff)
            return;
        dec = lua_newuserdata(L, len / 4 * 3 + 3);
        n = EVP_DecodeBlock(dec, (const unsigned char *)s, (int)len);
        if (n < 0) {
            lua_pop(L, 1);
            return;
        }
        if (len >= 1 && s[len - 1] == '=')
            n--;
        if (len >= 2 && s[len - 2] == '=')
            n--;
        lua_pushlstring(L, (const char *)dec, (size_t)n);
        lua_replace(L, -3);
        lua_pop(L, 1);
    }
}

/* Pushes the value at the reader's position, read as the shape named at
 * name_idx (0 or an unknown name: kept as it came). */

/* Pushes the value at the reader's position, read as the shape s (a shape
 * the model does not have: kept as it came). */
static int read_value(reader *rd, cshape *s)
{
    lua_State *L = rd->L;
    int c, ok = 0;
    enum kind k = (enum kind)s->kind;
    if (rd->depth >= MAX_DEPTH)
        return read_plain(rd);
    c = dms_jr_peek(&rd->r);
    rd->depth++;
    switch (k) {
    case K_STRUCTURE: ok = read_structure(rd, s); break;
    case K_LIST: ok = read_list(rd, s); break;
    case K_MAP: ok = read_map(rd, s); break;
    case K_STRING:
        ok = c == '"' ? dms_jr_string(&rd->r, L) : read_plain(rd);
        break;
    case K_INTEGER:
    case K_LONG:
    case K_DOUBLE:
    case K_FLOAT:
    case K_TIMESTAMP:
        if (c == '-' || (c >= '0' && c <= '9'))
            ok = read_number(rd, k == K_TIMESTAMP ? K_LONG : k);
        else if (c == '"' && (k == K_DOUBLE || k == K_FLOAT || k == K_TIMESTAMP))
            ok = dms_jr_string(&rd->r, L) && (convert_string(L, k), 1);
        else
            ok = read_plain(rd);
        break;
    case K_BLOB:
        ok = c == '"' ? dms_jr_string(&rd->r, L) && (convert_string(L, k), 1) : read_plain(rd);
        break;
    default:
        ok = read_plain(rd);
    }
    rd->depth--;
    return ok;
}

/* ------------------------------------------------------------------ */
/* parse(model, operation, status, headers, body) -> result | nil, err */

static const char *reason_phrase(long status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "HTTP error";
    }
}

/*
 * Pushes the response header `name` (a string) or nil. The headers table
 * (lowercase names) may be a proxy whose __index builds each value afresh:
 * the value stays on the stack for as long as the caller uses it. Names in
 * other cases are found by a raw scan.
 */
static int push_header(lua_State *L, int headers, const char *name)
{
    size_t n = strlen(name);
    if (!lua_istable(L, headers)) {
        lua_pushnil(L);
        return 0;
    }
    lua_getfield(L, headers, name);
    if (lua_type(L, -1) == LUA_TSTRING)
        return 1;
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, headers) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            if (kl == n && strncasecmp(k, name, n) == 0) {
                lua_remove(L, -2);
                return 1;
            }
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    return 0;
}

/* Pushes the error code in a type string (x-amzn-errortype, __type, code):
 * the text before the first ':', after the last '#'. Returns 0 (pushing
 * nothing) when that is empty or not a name. */
static int push_error_code(lua_State *L, int idx)
{
    size_t len, i;
    const char *type, *colon, *start, *p;
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    type = lua_tolstring(L, idx, &len);
    colon = memchr(type, ':', len);
    if (colon)
        len = (size_t)(colon - type);
    start = type;
    for (p = type; p < type + len; p++)
        if (*p == '#')
            start = p + 1;
    len -= (size_t)(start - type);
    if (len == 0 || len > 256)
        return 0;
    for (i = 0; i < len; i++)
        if ((unsigned char)start[i] <= ' ' || (unsigned char)start[i] >= 127)
            return 0;
    lua_pushlstring(L, start, len);
    return 1;
}

/* Pushes s on one line: every CR, LF (CR LF as one) and control character
 * becomes a space. */
static void push_one_line(lua_State *L, const char *s, size_t n)
{
    luaL_Buffer b;
    size_t i;
    luaL_buffinit(L, &b);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
            continue;
        luaL_addchar(&b, (char)(c < 32 || c == 127 ? ' ' : c));
    }
    luaL_pushresult(&b);
}

/* Sets err.request_id (err at the top) from the x-amzn-requestid header, on one line. */
static void set_request_id(lua_State *L, int headers)
{
    if (push_header(L, headers, "x-amzn-requestid")) {
        size_t n;
        const char *rid = lua_tolstring(L, -1, &n);
        push_one_line(L, rid, n);
        lua_setfield(L, -3, "request_id");
    }
    lua_pop(L, 1);
}

/* the text before the canonical request a refused signature echoes, or NULL */
static const char *echo_cut(const char *m, size_t len)
{
    static const char *const marks[] = {
        "The Canonical String for this request should have been", "The String-to-Sign should have been"
    };
    size_t i, j;
    for (i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        size_t ml = strlen(marks[i]);
        for (j = 0; j + ml <= len; j++)
            if (m[j] == 'T' && memcmp(m + j, marks[i], ml) == 0)
                return m + j;
    }
    return NULL;
}

/*
 * Pushes a message of the service as err.message carries it. A refused
 * signature comes back with the canonical request and string to sign that the
 * service expected: they hold the session token. The explanation is kept, the
 * echo left out. Then one line, whatever the service wrote.
 */
static void push_message(lua_State *L, const char *m, size_t len)
{
    const char *cut = echo_cut(m, len);
    if (!cut) {
        push_one_line(L, m, len);
        return;
    }
    while (cut > m && (cut[-1] == ' ' || cut[-1] == '\n' || cut[-1] == '\r'))
        cut--;
    push_one_line(L, m, (size_t)(cut - m));
    lua_pushliteral(L, " (the canonical request the service echoed is left out: it holds credentials)");
    lua_concat(L, 2);
}

static int malformed(lua_State *L, const char *message, long status, int headers)
{
    lua_pushnil(L);
    dms_push_error(L, "transport", "MalformedResponse", message);
    if (status >= 100 && status <= 599) {
        lua_pushinteger(L, (lua_Integer)status);
        lua_setfield(L, -2, "status");
    }
    set_request_id(L, headers);
    return 2;
}

static int is_blank(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

/* model (1), status, headers (4), body (5), the compiled model (rd->c.C, the top) */
static int parse_error(lua_State *L, long status, reader *rd)
{
    int base = lua_gettop(L);
    size_t blen, mlen;
    const char *b = lua_tolstring(L, 5, &blen);
    int decoded = 0, err, has_code = 0, has_message = 0;
    const char *m;

    /* the body, when it is a JSON object */
    {
        dms_jr r;
        dms_jr_init(&r, b, blen);
        if (dms_jr_peek(&r) == '{' && dms_jr_value(&r, L, 1) && dms_jr_peek(&r) == -1)
            decoded = lua_gettop(L);
        else
            lua_settop(L, base);
    }

    lua_pushnil(L);
    dms_push_error(L, "service", "", "");
    err = lua_gettop(L);

    /* the code: x-amzn-errortype, then __type, code, Code, then the status */
    push_header(L, 4, "x-amzn-errortype");
    if (push_error_code(L, -1)) {
        lua_setfield(L, err, "code");
        has_code = 1;
    }
    lua_settop(L, err);
    if (decoded) {
        static const char *const code_keys[] = {"__type", "code", "Code", NULL};
        static const char *const msg_keys[] = {"message", "Message", "errorMessage", NULL};
        int i;
        for (i = 0; code_keys[i] && !has_code; i++) {
            rawfield(L, decoded, code_keys[i]);
            if (push_error_code(L, -1)) {
                lua_setfield(L, err, "code");
                has_code = 1;
            }
            lua_settop(L, err);
        }
        for (i = 0; msg_keys[i] && !has_message; i++) {
            if (rawfield(L, decoded, msg_keys[i]) == LUA_TSTRING && dms_compat_rawlen(L, -1) > 0) {
                lua_setfield(L, err, "message");
                has_message = 1;
            }
            lua_settop(L, err);
        }
    }
    if (!has_code) {
        /* not an error of the protocol (an HTML page from a proxy): the status is the code */
        lua_pushfstring(L, "%d", (int)status);
        lua_setfield(L, err, "code");
    }
    if (!has_message) {
        if (!decoded && !is_blank(b, blen)) {
            /* a short, single-line excerpt of what the proxy said */
            char excerpt[121];
            size_t i, k = 0;
            int space = 0;
            for (i = 0; i < blen && k < sizeof excerpt - 1; i++) {
                unsigned char c = (unsigned char)b[i];
                if (c < 32 || c >= 127 || c == ' ') {
                    space = k > 0;
                    continue;
                }
                if (space) {
                    /* a space only with room for the character after it */
                    if (k + 2 > sizeof excerpt - 1)
                        break;
                    excerpt[k++] = ' ';
                }
                space = 0;
                excerpt[k++] = (char)c;
            }
            excerpt[k] = '\0';
            lua_pushfstring(L, "%s (HTTP %d, body not JSON: %s)", reason_phrase(status), (int)status, excerpt);
        } else {
            lua_pushstring(L, reason_phrase(status));
        }
        lua_setfield(L, err, "message");
    }

    lua_getfield(L, err, "message");
    m = lua_tolstring(L, -1, &mlen);
    push_message(L, m, mlen);
    lua_setfield(L, err, "message");
    lua_settop(L, err);

    lua_pushinteger(L, (lua_Integer)status);
    lua_setfield(L, err, "status");
    set_request_id(L, 4);

    /* the members of a modeled error (ResourceAlreadyExistsFault's resourceArn):
     * err.fields, read from the body along the error's shape */
    if (rawfield(L, 1, "errors") == LUA_TTABLE) {
        int errors = lua_gettop(L);
        cshape *s = NULL;
        lua_getfield(L, err, "code");
        lua_rawget(L, errors);
        if (lua_type(L, -1) == LUA_TSTRING)
            s = compile_shape(&rd->c, lua_gettop(L));
        if (s && s->kind == K_STRUCTURE) {
            int ok = 0;
            rd->depth = 0;
            dms_jr_init(&rd->r, b, blen);
            if (decoded)
                ok = read_value(rd, s);
            if (!ok) {
                lua_settop(L, errors + 1);
                lua_newtable(L);
            }
            /* a message member reads as err.message does: one line, no echo */
            {
                static const char *const msg_keys[] = {"message", "Message", "errorMessage", NULL};
                int i, fields = lua_gettop(L);
                for (i = 0; msg_keys[i]; i++) {
                    if (rawfield(L, fields, msg_keys[i]) == LUA_TSTRING) {
                        size_t fl;
                        const char *f = lua_tolstring(L, -1, &fl);
                        lua_pushstring(L, msg_keys[i]);
                        push_message(L, f, fl);
                        lua_rawset(L, fields);
                    }
                    lua_pop(L, 1);
                }
            }
            lua_setfield(L, err, "fields");
        }
    }
    lua_settop(L, err);
    return 2;
}

static int shape_parse(lua_State *L)
{
    long status;
    size_t blen;
    const char *b;
    reader rd;
    cop *op;
#if LUA_VERSION_NUM >= 503
    lua_Integer st = luaL_checkinteger(L, 3);
#else
    lua_Number st = luaL_checknumber(L, 3);
#endif

    luaL_checkstring(L, 2);
    luaL_checkstring(L, 5);
    lua_settop(L, 5);
    push_compiled(L, &rd.c);                /* 6: the compiled model */
    op = find_op(&rd.c, 2);
    if (!op)
        return unknown_operation(L);
    b = lua_tolstring(L, 5, &blen);
    rd.L = L;
    rd.depth = 0;
    rd.anchor = 0;

    /* a status no HTTP server sends: the answer cannot be read */
    if (!(st >= 100 && st <= 599)) {
        char msg[160];
        snprintf(msg, sizeof msg, "the HTTP status %.0f is not one of 100..599: the outcome of the call is unknown",
                 (double)st);
        return malformed(L, msg, 0, 4);
    }
    status = (long)st;
    lua_rawgeti(L, rd.c.C, C_ANCHOR);       /* 7 */
    rd.anchor = 7;
    if (status < 200 || status >= 300)
        return parse_error(L, status, &rd);

    if (is_blank(b, blen)) {
        lua_newtable(L);
        return 1;
    }
    {
        int ok;
        dms_jr_init(&rd.r, b, blen);
        if (dms_jr_peek(&rd.r) != '{') {
            ok = 0;
        } else if (op->has_output) {
            ok = read_value(&rd, resolve(&rd.c, &op->output));
        } else {
            /* no output shape: whatever JSON object came is ignored */
            ok = dms_jr_skip(&rd.r);
            if (ok)
                lua_newtable(L);
        }
        if (ok && dms_jr_peek(&rd.r) == -1 && lua_istable(L, -1))
            return 1;
        lua_settop(L, 7);
    }
    return malformed(L, "the response body is not a JSON object: the outcome of the call is unknown", status, 4);
}

static const luaL_Reg shape_funcs[] = {
    {"build", shape_build},
    {"parse", shape_parse},
    {"timestamp", shape_timestamp},
    {NULL, NULL}
};

#if LUA_VERSION_NUM < 503
/* LuaJIT: 64-bit integers as int64 cdata (ffi), when ffi is there */
static const char box_code[] =
    "local ok, ffi = pcall(require, 'ffi')\n"
    "if not ok then return nil, nil end\n"
    "local int64, uint64, istype, tostring, type = ffi.typeof('int64_t'), ffi.typeof('uint64_t'),"
    " ffi.istype, tostring, type\n"
    "return function(hi, lo) return int64(hi) * 4294967296 + lo end,\n"
    "  function(v)\n"
    "    if type(v) == 'cdata' and (istype(int64, v) or istype(uint64, v)) then return tostring(v) end\n"
    "  end\n";
#endif

void dms_shape_open(lua_State *L)
{
#if LUA_VERSION_NUM < 503
    if (luaL_loadbuffer(L, box_code, sizeof box_code - 1, "=dms.core") != 0 || lua_pcall(L, 0, 2, 0) != 0) {
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushnil(L);
    }
#else
    lua_pushnil(L);
    lua_pushnil(L);
#endif
    /* UV_CACHE: model table -> its compiled form (weak keys) */
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    dms_compat_setfuncs(L, shape_funcs, 3);
}
