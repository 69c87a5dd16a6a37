/*
 * Lua tables <-> DMS shapes (AWS JSON 1.1 protocol).
 *
 * The request side walks params along the operation's input shape, checks
 * every rule before anything is sent, and builds a normalised copy (input
 * tables are never mutated) that lua-cjson turns into text. The response side
 * walks the decoded body along the output shape: timestamps become epoch
 * numbers, integers become integers, members the model does not know are kept.
 */
#include "shape.h"
#include "compat.h"
#include "error.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

/* upvalues of build and parse: a private lua-cjson instance's encode and decode */
#define UV_ENCODE 1
#define UV_DECODE 2

#define MAX_DEPTH 64
#define PATH_MAX_LEN 2048    /* room for MAX_DEPTH levels of DMS member names */

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
    int Y, M, D, h = 0, m = 0, sec = 0, oh = 0, om = 0, sign = 0;
    double frac = 0;

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
                double scale = 0.1;
                p++;
                if (p >= len || !isdigit((unsigned char)s[p]))
                    return -1;
                while (p < len && isdigit((unsigned char)s[p])) {
                    frac += (s[p++] - '0') * scale;
                    scale /= 10;
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
    *out = (double)(days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400LL
                    + h * 3600 + m * 60 + sec - sign * (oh * 3600 + om * 60)) + frac;
    return 0;
}

/* A number with no fraction: 3 and 3.0 alike, whatever the Lua version. */
static int is_integral(lua_State *L, int idx)
{
    double v;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    if (dms_compat_isinteger(L, idx))
        return 1;
    v = (double)lua_tonumber(L, idx);
    return isfinite(v) && v == floor(v);
}

static int table_int_field(lua_State *L, int idx, const char *k, int required, int dflt,
                           int lo, int hi, int *out)
{
    int ok = 1;
    lua_getfield(L, idx, k);
    if (lua_isnil(L, -1)) {
        ok = !required;
        *out = dflt;
    } else if (!is_integral(L, -1)) {
        ok = 0;
    } else {
        lua_Number v = lua_tonumber(L, -1);
        ok = v >= lo && v <= hi;
        if (ok)             /* converting a value beyond int is undefined */
            *out = (int)v;
    }
    lua_pop(L, 1);
    return ok;
}

/*
 * Converts the value at idx (epoch number, ISO-8601 string, or an
 * os.date("*t")-style table read as os.time() reads it: local time) to epoch
 * seconds. Returns 0, or -1 with a reason in why.
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
        if (t == (time_t)-1 && !(Y == 1969 || Y == 1970)) {
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

static void push_number(lua_State *L, double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        dms_compat_pushint64(L, (long long)v);
    else
        lua_pushnumber(L, (lua_Number)v);
}

/*
 * Pushes v as ISO-8601 UTC text with milliseconds when it has a fraction;
 * returns -1 (pushing nothing) outside the years 0001..9999.
 */
static int push_iso8601(lua_State *L, double v)
{
    char buf[40];
    struct tm tm;
    long long ms, secs;
    int frac;
    time_t t;
    /* 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z */
    if (!(v >= -62135596800.0 && v < 253402300800.0))
        return -1;
    /* round to the millisecond first, so that x.9996 becomes the next second */
    ms = (long long)floor(v * 1000.0 + 0.5);
    secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    frac = (int)(ms - secs * 1000);
    t = (time_t)secs;
    if (secs > 253402300799LL || !gmtime_r(&t, &tm))
        return -1;
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (frac > 0)
        snprintf(buf + 19, sizeof buf - 19, ".%03dZ", frac);
    else
        strcpy(buf + 19, "Z");
    lua_pushstring(L, buf);
    return 0;
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
/* the walker                                                          */

typedef struct {
    lua_State *L;
    int shapes;                 /* abs index of model.shapes */
    int depth;
    char path[PATH_MAX_LEN];
    size_t path_len;
    const char *code;           /* set on failure */
    char msg[PATH_MAX_LEN + 320];
} walker;

/* Appends fmt (one %s) with s to the path; returns the length to restore. */
static size_t path_push(walker *w, const char *fmt, const char *s)
{
    size_t old = w->path_len;
    int k = snprintf(w->path + old, sizeof w->path - old, fmt, s ? s : "?");
    if (k > 0) {
        if (old + (size_t)k < sizeof w->path) {
            w->path_len = old + (size_t)k;
        } else {
            /* too long to name exactly: say so rather than cut a name in two */
            w->path_len = sizeof w->path - 1;
            memcpy(w->path + w->path_len - 3, "...", 4);
        }
    }
    return old;
}

static void path_pop(walker *w, size_t old)
{
    w->path_len = old;
    w->path[old] = '\0';
}

static int fail(walker *w, const char *code, const char *fmt, const char *detail)
{
    char what[300];
    snprintf(what, sizeof what, fmt, detail ? detail : "");
    w->code = code;
    if (w->path_len)
        snprintf(w->msg, sizeof w->msg, "%s %s", w->path, what);
    else
        snprintf(w->msg, sizeof w->msg, "parameters %s", what);
    return 0;
}

/* Pushes model.shapes[name] (a table) or fails. */
static int get_shape(walker *w, const char *name)
{
    lua_getfield(w->L, w->shapes, name);
    if (!lua_istable(w->L, -1)) {
        lua_pop(w->L, 1);
        w->code = "ModelError";
        snprintf(w->msg, sizeof w->msg, "the model has no shape '%.100s'", name);
        return 0;
    }
    return 1;
}

static const char *shape_type(lua_State *L, int shape)
{
    const char *t;
    lua_getfield(L, shape, "type");
    t = lua_tostring(L, -1);
    lua_pop(L, 1);
    return t ? t : "";
}

static int opt_number(lua_State *L, int shape, const char *k, lua_Number *out)
{
    int has;
    lua_getfield(L, shape, k);
    has = lua_type(L, -1) == LUA_TNUMBER;
    if (has)
        *out = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return has;
}

static int in_list(lua_State *L, int list, const char *s)
{
    int i, n = (int)dms_compat_rawlen(L, list), found = 0;
    for (i = 1; i <= n && !found; i++) {
        lua_rawgeti(L, list, i);
        found = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), s) == 0;
        lua_pop(L, 1);
    }
    return found;
}

/* arn:partition:service:region:account:resource, the resource of type rtype when given */
static int valid_arn(const char *s, size_t len, const char *service, const char *rtype)
{
    const char *f[6];
    size_t flen[6], i = 0, k;
    const char *p = s, *end = s + len;
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
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] == 127)
            return 0;
    for (k = 0; k < flen[1]; k++)
        if (!islower((unsigned char)f[1][k]) && f[1][k] != '-')
            return 0;
    if (service) {
        size_t rl;
        if (flen[2] != strlen(service) || memcmp(f[2], service, flen[2]) != 0)
            return 0;
        if (flen[3] == 0 || flen[4] != 12)
            return 0;
        for (k = 0; k < 12; k++)
            if (!isdigit((unsigned char)f[4][k]))
                return 0;
        rl = strlen(rtype);
        if (flen[5] <= rl + 1 || memcmp(f[5], rtype, rl) != 0 || f[5][rl] != ':')
            return 0;
    }
    return 1;
}

static int to_wire(walker *w, const char *shape_name, int val);

/* A JSON document member: a string that must hold a JSON object, or a table encoded to one. */
static int json_member(walker *w, int val)
{
    lua_State *L = w->L;
    if (lua_type(L, val) == LUA_TSTRING) {
        size_t len, i = 0;
        const char *s = lua_tolstring(L, val, &len);
        while (i < len && isspace((unsigned char)s[i]))
            i++;
        if (i >= len || s[i] != '{')
            return fail(w, "InvalidParameterValue", "must be a JSON object (text or a Lua table)%s", NULL);
        lua_pushvalue(L, lua_upvalueindex(UV_DECODE));
        lua_pushvalue(L, val);
        if (lua_pcall(L, 1, 1, 0) != 0) {
            lua_pop(L, 1);
            return fail(w, "InvalidParameterValue", "must be a JSON object: the text is not valid JSON%s", NULL);
        }
        lua_pop(L, 1);
        lua_pushvalue(L, val);
        return 1;
    }
    if (lua_type(L, val) == LUA_TTABLE) {
        lua_rawgeti(L, val, 1);
        if (!lua_isnil(L, -1)) {
            lua_pop(L, 1);
            return fail(w, "InvalidParameterValue", "must be a JSON object, not a list%s", NULL);
        }
        lua_pop(L, 1);
        lua_pushvalue(L, lua_upvalueindex(UV_ENCODE));
        lua_pushvalue(L, val);
        if (lua_pcall(L, 1, 1, 0) != 0) {
            const char *e = lua_tostring(L, -1);
            char why[160];
            snprintf(why, sizeof why, "cannot be encoded as JSON: %.120s", e ? e : "?");
            lua_pop(L, 1);
            return fail(w, "InvalidParameterValue", "%s", why);
        }
        if (lua_type(L, -1) != LUA_TSTRING || lua_tostring(L, -1)[0] != '{') {
            /* integer keys only (e.g. {[2] = "x"}): cjson writes an array */
            lua_pop(L, 1);
            return fail(w, "InvalidParameterValue", "must be a JSON object, not a list%s", NULL);
        }
        return 1;
    }
    return fail(w, "InvalidParameterType", "must be a JSON object string or a table, not %s",
                luaL_typename(L, val));
}

static int check_traits(walker *w, int traits, const char *member, int val)
{
    lua_State *L = w->L;
    int ok = 1;
    if (!traits)
        return 1;
    lua_getfield(L, traits, member);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return 1;
    }
    lua_getfield(L, -1, "enum");
    if (lua_istable(L, -1) && lua_type(L, val) == LUA_TSTRING) {
        if (!in_list(L, lua_gettop(L), lua_tostring(L, val))) {
            int i, n = (int)dms_compat_rawlen(L, -1);
            char list[160] = "";
            size_t used = 0;
            for (i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                used += (size_t)snprintf(list + used, used < sizeof list ? sizeof list - used : 0,
                                         "%s%s", i > 1 ? " | " : "", lua_tostring(L, -1));
                lua_pop(L, 1);
                if (used >= sizeof list)
                    break;
            }
            ok = fail(w, "InvalidParameterValue", "must be one of: %s", list);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "arn");
    if (ok && !lua_isnil(L, -1) && lua_type(L, val) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, val, &len);
        const char *rtype = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!valid_arn(s, len, rtype ? "dms" : NULL, rtype)) {
            char why[160];
            if (rtype)
                snprintf(why, sizeof why,
                         "must be an ARN like arn:aws:dms:us-east-1:123456789012:%s:NAME", rtype);
            else
                snprintf(why, sizeof why, "must be an ARN (arn:partition:service:region:account:resource)");
            ok = fail(w, "InvalidParameterValue", "%s", why);
        }
    }
    lua_pop(L, 2);
    return ok;
}

static int is_json_member(lua_State *L, int traits, const char *member)
{
    int yes = 0;
    if (!traits)
        return 0;
    lua_getfield(L, traits, member);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "json");
        yes = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return yes;
}

static int structure_to_wire(walker *w, int shape, int val)
{
    lua_State *L = w->L;
    int members, out, traits = 0, i, n;

    if (!lua_istable(L, val))
        return fail(w, "InvalidParameterType", "must be a table (structure), not %s",
                    luaL_typename(L, val));
    lua_getfield(L, shape, "members");
    members = lua_gettop(L);
    lua_getfield(L, shape, "traits");
    if (lua_istable(L, -1))
        traits = lua_gettop(L);
    lua_newtable(L);
    out = lua_gettop(L);

    lua_pushnil(L);
    while (lua_next(L, val) != 0) {
        const char *member;
        size_t old;
        int ok;
        if (lua_type(L, -2) != LUA_TSTRING)
            return fail(w, "UnknownParameter", "has a key that is not a member name%s", NULL);
        member = lua_tostring(L, -2);
        lua_getfield(L, members, member);
        if (!lua_isstring(L, -1)) {
            char why[160];
            snprintf(why, sizeof why, "has an unknown member '%.100s'", member);
            fail(w, "UnknownParameter", "%s", why);
            /* err.member names the unknown member itself */
            path_push(w, w->path_len ? ".%s" : "%s", member);
            return 0;
        }
        old = path_push(w, w->path_len ? ".%s" : "%s", member);
        if (is_json_member(L, traits, member))
            ok = json_member(w, lua_gettop(L) - 1);
        else
            ok = to_wire(w, lua_tostring(L, -1), lua_gettop(L) - 1);
        if (ok)
            ok = check_traits(w, traits, member, lua_gettop(L) - 2);
        if (!ok)
            return 0;           /* to_wire drops what is left on the stack */
        path_pop(w, old);
        /* stack: key, value, shape name, converted */
        lua_pushvalue(L, -4);
        lua_insert(L, -2);
        lua_rawset(L, out);     /* nil (an omitted empty list) removes nothing */
        lua_pop(L, 2);
    }

    lua_getfield(L, shape, "required");
    n = lua_istable(L, -1) ? (int)dms_compat_rawlen(L, -1) : 0;
    for (i = 1; i <= n; i++) {
        const char *member;
        lua_rawgeti(L, -1, i);
        member = lua_tostring(L, -1);
        lua_getfield(L, out, member);
        if (lua_isnil(L, -1)) {
            path_push(w, w->path_len ? ".%s" : "%s", member);
            return fail(w, "MissingParameter", "is required%s", NULL);
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 1);

    lua_getfield(L, shape, "exclusive");
    n = lua_istable(L, -1) ? (int)dms_compat_rawlen(L, -1) : 0;
    for (i = 1; i <= n; i++) {
        int j, m, given = 0;
        char names[160] = "", first[120] = "";
        size_t used = 0;
        lua_rawgeti(L, -1, i);
        m = (int)dms_compat_rawlen(L, -1);
        for (j = 1; j <= m; j++) {
            const char *member;
            lua_rawgeti(L, -1, j);
            member = lua_tostring(L, -1);
            lua_getfield(L, out, member);
            if (!lua_isnil(L, -1)) {
                if (!given)
                    snprintf(first, sizeof first, "%s", member);
                given++;
                if (used < sizeof names)
                    used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                             given > 1 ? " and " : "", member);
            }
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
        if (given > 1) {
            char why[220];
            snprintf(why, sizeof why, "cannot have %s together: give only one", names);
            fail(w, "InvalidParameterCombination", "%s", why);
            path_push(w, w->path_len ? ".%s" : "%s", first);
            return 0;
        }
    }
    lua_pop(L, 1);

    /* leave only the output table */
    lua_replace(L, members);
    lua_settop(L, members);
    return 1;
}

static int list_to_wire(walker *w, int shape, int val)
{
    lua_State *L = w->L;
    int n, i, out, count = 0;
    const char *member;
    lua_Number lim;

    if (!lua_istable(L, val))
        return fail(w, "InvalidParameterType", "must be a list (table), not %s", luaL_typename(L, val));
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
    if (opt_number(L, shape, "min", &lim) && n < lim)
        return fail(w, "InvalidParameterValue", "has fewer items than the model allows%s", NULL);
    if (opt_number(L, shape, "max", &lim) && n > lim)
        return fail(w, "InvalidParameterValue", "has more items than the model allows%s", NULL);
    if (n == 0) {
        /* lua-cjson cannot write [] for an empty table: the member is left out,
         * which DMS reads the same way. */
        lua_pushnil(L);
        return 1;
    }
    lua_getfield(L, shape, "member");
    member = lua_tostring(L, -1);
    lua_createtable(L, n, 0);
    out = lua_gettop(L);
    for (i = 1; i <= n; i++) {
        char index[24];
        size_t old;
        snprintf(index, sizeof index, "%d", i);
        old = path_push(w, "[%s]", index);
        lua_rawgeti(L, val, i);
        if (!to_wire(w, member, lua_gettop(L)))
            return 0;
        path_pop(w, old);
        lua_rawseti(L, out, i);
        lua_pop(L, 1);
    }
    lua_remove(L, out - 1);
    return 1;
}

static int map_to_wire(walker *w, int shape, int val)
{
    lua_State *L = w->L;
    int out;
    const char *vshape;
    if (!lua_istable(L, val))
        return fail(w, "InvalidParameterType", "must be a table (map), not %s", luaL_typename(L, val));
    lua_getfield(L, shape, "value");
    vshape = lua_tostring(L, -1);
    lua_newtable(L);
    out = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, val) != 0) {
        size_t old;
        if (lua_type(L, -2) != LUA_TSTRING)
            return fail(w, "InvalidParameterType", "must have string keys (map)%s", NULL);
        old = path_push(w, "[%s]", lua_tostring(L, -2));
        if (!to_wire(w, vshape, lua_gettop(L)))
            return 0;
        path_pop(w, old);
        lua_pushvalue(L, -3);
        lua_insert(L, -2);
        lua_rawset(L, out);
        lua_pop(L, 1);
    }
    lua_remove(L, out - 1);
    return 1;
}

/* Validates the value at val against shape_name and pushes its wire form (or nil). */
static int to_wire(walker *w, const char *shape_name, int val)
{
    lua_State *L = w->L;
    int shape, ok = 1;
    const char *t;
    lua_Number lim;

    if (w->depth >= MAX_DEPTH)
        return fail(w, "InvalidParameterValue", "is nested too deeply (a cycle?)%s", NULL);
    luaL_checkstack(L, 12, "parameters nested too deeply");
    if (!get_shape(w, shape_name))
        return 0;
    shape = lua_gettop(L);
    t = shape_type(L, shape);
    w->depth++;

    if (strcmp(t, "structure") == 0) {
        ok = structure_to_wire(w, shape, val);
    } else if (strcmp(t, "list") == 0) {
        ok = list_to_wire(w, shape, val);
    } else if (strcmp(t, "map") == 0) {
        ok = map_to_wire(w, shape, val);
    } else if (strcmp(t, "string") == 0) {
        if (lua_type(L, val) != LUA_TSTRING) {
            ok = fail(w, "InvalidParameterType", "must be a string, not %s", luaL_typename(L, val));
        } else {
            size_t len;
            lua_tolstring(L, val, &len);
            if (opt_number(L, shape, "min", &lim) && (lua_Number)len < lim)
                ok = fail(w, "InvalidParameterValue", "is shorter than the model allows%s", NULL);
            else if (opt_number(L, shape, "max", &lim) && (lua_Number)len > lim)
                ok = fail(w, "InvalidParameterValue", "is longer than the model allows%s", NULL);
            else
                lua_pushvalue(L, val);
        }
    } else if (strcmp(t, "integer") == 0 || strcmp(t, "long") == 0) {
        if (!is_integral(L, val)) {
            ok = fail(w, "InvalidParameterType", "must be an integer, not %s",
                      lua_type(L, val) == LUA_TNUMBER ? "a fraction" : luaL_typename(L, val));
        } else if (t[0] == 'i' && (lua_tonumber(L, val) < -2147483648.0 || lua_tonumber(L, val) > 2147483647.0)) {
            ok = fail(w, "InvalidParameterValue", "is out of the 32-bit integer range%s", NULL);
        } else if (fabs((double)lua_tonumber(L, val)) >= 1e14) {
            /* lua-cjson writes at most 14 significant digits: refuse rather than round */
            ok = fail(w, "InvalidParameterValue", "is too large to send exactly (at most 14 digits)%s", NULL);
        } else if (opt_number(L, shape, "min", &lim) && lua_tonumber(L, val) < lim) {
            ok = fail(w, "InvalidParameterValue", "is below the minimum the model allows%s", NULL);
        } else if (opt_number(L, shape, "max", &lim) && lua_tonumber(L, val) > lim) {
            ok = fail(w, "InvalidParameterValue", "is above the maximum the model allows%s", NULL);
        } else {
            dms_compat_pushint64(L, (long long)lua_tonumber(L, val));
        }
    } else if (strcmp(t, "double") == 0 || strcmp(t, "float") == 0) {
        if (lua_type(L, val) != LUA_TNUMBER || !isfinite((double)lua_tonumber(L, val)))
            ok = fail(w, "InvalidParameterType", "must be a finite number, not %s", luaL_typename(L, val));
        else
            lua_pushvalue(L, val);
    } else if (strcmp(t, "boolean") == 0) {
        if (lua_type(L, val) != LUA_TBOOLEAN)
            ok = fail(w, "InvalidParameterType", "must be a boolean, not %s", luaL_typename(L, val));
        else
            lua_pushvalue(L, val);
    } else if (strcmp(t, "timestamp") == 0) {
        double v;
        const char *why = NULL;
        if (to_epoch(L, val, &v, &why) != 0) {
            int ty = lua_type(L, val);
            ok = fail(w, ty == LUA_TNUMBER || ty == LUA_TSTRING || ty == LUA_TTABLE
                         ? "InvalidParameterValue" : "InvalidParameterType", "%s", why);
        } else {
            int iso;
            lua_getfield(L, shape, "format");
            iso = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "iso8601") == 0;
            lua_pop(L, 1);
            if (!iso)
                push_number(L, v);
            else if (push_iso8601(L, v) != 0)
                ok = fail(w, "InvalidParameterValue",
                          "is outside the years 0001..9999 of an ISO-8601 timestamp%s", NULL);
        }
    } else if (strcmp(t, "blob") == 0) {
        if (lua_type(L, val) != LUA_TSTRING) {
            ok = fail(w, "InvalidParameterType", "must be a string of bytes, not %s", luaL_typename(L, val));
        } else {
            size_t len;
            const char *s = lua_tolstring(L, val, &len);
            luaL_Buffer b;
            size_t i;
            /* base64 in chunks of 48 bytes -> 64 characters, no allocation outside Lua */
            luaL_buffinit(L, &b);
            for (i = 0; i < len; i += 48) {
                unsigned char enc[65];
                size_t chunk = len - i < 48 ? len - i : 48;
                int k = EVP_EncodeBlock(enc, (const unsigned char *)s + i, (int)chunk);
                luaL_addlstring(&b, (const char *)enc, (size_t)k);
            }
            luaL_pushresult(&b);
        }
    } else {
        ok = fail(w, "ModelError", "has an unsupported shape type '%s'", t);
    }
    w->depth--;
    if (ok)
        lua_remove(L, shape);
    else
        lua_settop(L, shape - 1);
    return ok;
}

/* ------------------------------------------------------------------ */
/* build(model, operation, params) -> request | nil, err               */

static int push_model_parts(lua_State *L, const char *op, const char *which, const char **shape_out)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "operations");
    if (!lua_istable(L, -1))
        luaL_argerror(L, 1, "model has no operations");
    lua_getfield(L, -1, op);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 2);
        return 0;
    }
    lua_getfield(L, -1, which);
    *shape_out = lua_tostring(L, -1);
    lua_pop(L, 3);
    lua_getfield(L, 1, "shapes");
    if (!lua_istable(L, -1))
        luaL_argerror(L, 1, "model has no shapes");
    return 1;
}

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

static int shape_build(lua_State *L)
{
    const char *op = luaL_checkstring(L, 2);
    const char *input = NULL, *prefix;
    walker w;
    int params, out;

    if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3)) {
        lua_pushnil(L);
        dms_push_error(L, "validation", "InvalidParameterType", "parameters must be a table");
        return 2;
    }
    lua_settop(L, 3);
    if (lua_isnil(L, 3)) {
        lua_newtable(L);
        lua_replace(L, 3);
    }
    params = 3;
    if (!push_model_parts(L, op, "input", &input)) {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown operation '%.100s'", op);
        lua_pushnil(L);
        dms_push_error(L, "validation", "UnknownOperation", msg);
        return 2;
    }
    memset(&w, 0, sizeof w);
    w.L = L;
    w.shapes = lua_gettop(L);

    if (input) {
        if (!to_wire(&w, input, params))
            return return_walk_error(L, &w, "validation");
    } else {
        lua_newtable(L);
    }
    out = lua_gettop(L);

    /* serialize with lua-cjson */
    lua_pushvalue(L, lua_upvalueindex(UV_ENCODE));
    lua_pushvalue(L, out);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        const char *e = lua_tostring(L, -1);
        char msg[200];
        snprintf(msg, sizeof msg, "cannot encode parameters: %.150s", e ? e : "?");
        lua_pushnil(L);
        dms_push_error(L, "validation", "InvalidParameterValue", msg);
        return 2;
    }

    lua_createtable(L, 0, 5);
    lua_pushliteral(L, "POST");
    lua_setfield(L, -2, "method");
    lua_pushliteral(L, "/");
    lua_setfield(L, -2, "path");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, op);
    lua_setfield(L, -2, "operation");

    lua_getfield(L, 1, "target_prefix");
    prefix = lua_tostring(L, -1);
    lua_createtable(L, 2, 0);
    lua_createtable(L, 2, 0);
    lua_pushliteral(L, "Content-Type");
    lua_rawseti(L, -2, 1);
    lua_pushliteral(L, "application/x-amz-json-1.1");
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, 1);
    lua_createtable(L, 2, 0);
    lua_pushliteral(L, "X-Amz-Target");
    lua_rawseti(L, -2, 1);
    lua_pushfstring(L, "%s.%s", prefix ? prefix : "", op);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, -3, "headers");
    lua_pop(L, 1);
    return 1;
}

/* ------------------------------------------------------------------ */
/* parse(model, operation, status, headers, body) -> result | nil, err */

static void from_wire(walker *w, const char *shape_name, int val);

static int is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/*
 * Pushes a value the model does not describe: kept as decoded, except that
 * object members that are JSON null are dropped (cjson.null is truthy).
 */
static void push_plain(walker *w, int val)
{
    lua_State *L = w->L;
    int out;
    if (lua_type(L, val) == LUA_TNUMBER) {
        push_number(L, (double)lua_tonumber(L, val));   /* cjson decodes 1 as 1.0 */
        return;
    }
    if (!lua_istable(L, val) || w->depth >= MAX_DEPTH) {
        lua_pushvalue(L, val);
        return;
    }
    luaL_checkstack(L, 8, "response nested too deeply");
    w->depth++;
    lua_newtable(L);
    out = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, val) != 0) {
        if (!(is_null(L, -1) && lua_type(L, -2) == LUA_TSTRING)) {
            push_plain(w, lua_gettop(L));
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_rawset(L, out);
        }
        lua_pop(L, 1);
    }
    w->depth--;
}

/* Pushes the Lua form of the decoded value at val; unknown shapes pass through. */
static void from_wire(walker *w, const char *shape_name, int val)
{
    lua_State *L = w->L;
    int shape;
    const char *t;

    luaL_checkstack(L, 12, "response nested too deeply");
    lua_getfield(L, w->shapes, shape_name ? shape_name : "");
    if (!lua_istable(L, -1) || w->depth >= MAX_DEPTH) {
        lua_pop(L, 1);
        push_plain(w, val);
        return;
    }
    shape = lua_gettop(L);
    t = shape_type(L, shape);
    w->depth++;

    if (strcmp(t, "structure") == 0 && lua_istable(L, val)) {
        int members, out;
        lua_getfield(L, shape, "members");
        members = lua_gettop(L);
        lua_newtable(L);
        out = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, val) != 0) {
            if (!is_null(L, -1)) {
                const char *ms = NULL;
                if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, members)) {
                    lua_getfield(L, members, lua_tostring(L, -2));
                    ms = lua_tostring(L, -1);
                    lua_pop(L, 1);  /* the name stays alive in the model table */
                }
                if (ms)
                    from_wire(w, ms, lua_gettop(L));
                else
                    push_plain(w, lua_gettop(L));   /* a member the model does not know: kept */
                lua_pushvalue(L, -3);
                lua_insert(L, -2);
                lua_rawset(L, out);
            }
            lua_pop(L, 1);
        }
        lua_replace(L, members);
        lua_settop(L, members);
    } else if (strcmp(t, "list") == 0 && lua_istable(L, val)) {
        int i, n = (int)dms_compat_rawlen(L, val), out;
        const char *member;
        lua_getfield(L, shape, "member");
        member = lua_tostring(L, -1);
        lua_createtable(L, n, 0);
        out = lua_gettop(L);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, val, i);
            from_wire(w, member, lua_gettop(L));
            lua_rawseti(L, out, i);
            lua_pop(L, 1);
        }
        lua_remove(L, out - 1);
    } else if (strcmp(t, "map") == 0 && lua_istable(L, val)) {
        int out;
        const char *vs;
        lua_getfield(L, shape, "value");
        vs = lua_tostring(L, -1);
        lua_newtable(L);
        out = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, val) != 0) {
            if (!is_null(L, -1)) {
                from_wire(w, vs, lua_gettop(L));
                lua_pushvalue(L, -3);
                lua_insert(L, -2);
                lua_rawset(L, out);
            }
            lua_pop(L, 1);
        }
        lua_remove(L, out - 1);
    } else if (strcmp(t, "timestamp") == 0) {
        double v;
        const char *why;
        if (lua_type(L, val) == LUA_TNUMBER || lua_type(L, val) == LUA_TSTRING) {
            if (lua_type(L, val) == LUA_TSTRING && lua_isnumber(L, val))
                push_number(L, (double)lua_tonumber(L, val));
            else if (to_epoch(L, val, &v, &why) == 0)
                push_number(L, v);
            else
                lua_pushvalue(L, val);
        } else {
            lua_pushvalue(L, val);
        }
    } else if ((strcmp(t, "integer") == 0 || strcmp(t, "long") == 0) && lua_type(L, val) == LUA_TNUMBER) {
        push_number(L, (double)lua_tonumber(L, val));
    } else if (strcmp(t, "blob") == 0 && lua_type(L, val) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, val, &len);
        unsigned char *dec = lua_newuserdata(L, len / 4 * 3 + 3);
        int k = (len % 4 == 0) ? EVP_DecodeBlock(dec, (const unsigned char *)s, (int)len) : -1;
        if (k < 0) {
            lua_pop(L, 1);
            lua_pushvalue(L, val);
        } else {
            if (len >= 1 && s[len - 1] == '=')
                k--;
            if (len >= 2 && s[len - 2] == '=')
                k--;
            lua_pushlstring(L, (const char *)dec, (size_t)k);
            lua_remove(L, -2);
        }
    } else {
        lua_pushvalue(L, val);
    }
    w->depth--;
    lua_remove(L, shape);
}

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

/* Looks a header up in the headers table (lowercase names -> value). */
static const char *header(lua_State *L, int headers, const char *name)
{
    const char *v = NULL;
    if (!lua_istable(L, headers))
        return NULL;
    lua_getfield(L, headers, name);
    if (lua_type(L, -1) == LUA_TSTRING)
        v = lua_tostring(L, -1);
    lua_pop(L, 1);   /* the string stays referenced by the headers table */
    return v;
}

/* Code from "__type": text before the first ':', then after the last '#'. */
static void push_error_code(lua_State *L, const char *type)
{
    const char *colon = strchr(type, ':');
    size_t len = colon ? (size_t)(colon - type) : strlen(type);
    const char *start = type, *p;
    for (p = type; p < type + len; p++)
        if (*p == '#')
            start = p + 1;
    lua_pushlstring(L, start, len - (size_t)(start - type));
}

static int parse_error(lua_State *L, long status, int headers, int body, int decoded)
{
    const char *rid = header(L, headers, "x-amzn-requestid");
    int err, has_code = 0;

    lua_pushnil(L);
    dms_push_error(L, "service", "", "");
    err = lua_gettop(L);

    if (decoded && lua_istable(L, decoded)) {
        static const char *const code_keys[] = {"__type", "code", "Code", NULL};
        static const char *const msg_keys[] = {"message", "Message", "errorMessage", NULL};
        int i;
        for (i = 0; code_keys[i] && !has_code; i++) {
            lua_getfield(L, decoded, code_keys[i]);
            if (lua_type(L, -1) == LUA_TSTRING && dms_compat_rawlen(L, -1) > 0) {
                push_error_code(L, lua_tostring(L, -1));
                lua_setfield(L, err, "code");
                has_code = 1;
            }
            lua_pop(L, 1);
        }
        for (i = 0; msg_keys[i]; i++) {
            lua_getfield(L, decoded, msg_keys[i]);
            if (lua_type(L, -1) == LUA_TSTRING) {
                lua_setfield(L, err, "message");
                break;
            }
            lua_pop(L, 1);
        }
    }
    if (!has_code) {
        const char *type = header(L, headers, "x-amzn-errortype");
        if (type && *type) {
            push_error_code(L, type);
            lua_setfield(L, err, "code");
            has_code = 1;
        }
    }
    if (!has_code) {
        /* not a JSON 1.1 error (an HTML page from a proxy): the status is the code */
        lua_pushfstring(L, "%d", (int)status);
        lua_setfield(L, err, "code");
    }
    lua_getfield(L, err, "message");
    if (lua_type(L, -1) != LUA_TSTRING || dms_compat_rawlen(L, -1) == 0) {
        size_t blen;
        const char *b = lua_tolstring(L, body, &blen);
        if (!decoded && blen > 0) {
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
    lua_pop(L, 1);

    /* A refused signature comes back with the canonical request and string to
     * sign that the service expected: they hold the session token. Keep the
     * explanation, leave the echo out. */
    lua_getfield(L, err, "message");
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *m = lua_tostring(L, -1);
        const char *cut = strstr(m, "The Canonical String for this request should have been");
        if (!cut)
            cut = strstr(m, "The String-to-Sign should have been");
        if (cut) {
            while (cut > m && (cut[-1] == ' ' || cut[-1] == '\n' || cut[-1] == '\r'))
                cut--;
            lua_pushlstring(L, m, (size_t)(cut - m));
            lua_pushliteral(L, " (the canonical request the service echoed is left out: it holds credentials)");
            lua_concat(L, 2);
            lua_setfield(L, err, "message");
        }
    }
    lua_pop(L, 1);

    lua_pushinteger(L, (lua_Integer)status);
    lua_setfield(L, err, "status");
    if (rid) {
        lua_pushstring(L, rid);
        lua_setfield(L, err, "request_id");
    }
    lua_settop(L, err);
    return 2;
}

/* The text is a JSON object (not an array) once leading white space is skipped. */
static int json_is_object(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i < len && s[i] == '{';
}

static int shape_parse(lua_State *L)
{
    const char *op = luaL_checkstring(L, 2);
    long status = (long)luaL_checkinteger(L, 3);
    const char *output = NULL;
    size_t blen;
    int decoded = 0, ok_json;
    walker w;

    luaL_checkstring(L, 5);
    lua_settop(L, 5);
    lua_tolstring(L, 5, &blen);
    if (!push_model_parts(L, op, "output", &output)) {
        lua_pushfstring(L, "unknown operation '%s'", op);
        return dms_return_error(L, "validation", "UnknownOperation", lua_tostring(L, -1));
    }
    memset(&w, 0, sizeof w);
    w.L = L;
    w.shapes = lua_gettop(L);

    /* decode (pcall: cjson raises on bad JSON) */
    lua_pushvalue(L, lua_upvalueindex(UV_DECODE));
    lua_pushvalue(L, 5);
    ok_json = blen > 0 && lua_pcall(L, 1, 1, 0) == 0;
    if (blen == 0)
        lua_pop(L, 2);
    else if (!ok_json)
        lua_pop(L, 1);
    else
        decoded = lua_gettop(L);

    if (status < 200 || status >= 300)
        return parse_error(L, status, 4, 5, decoded);

    if (blen == 0 || (decoded && lua_istable(L, decoded) && json_is_object(lua_tostring(L, 5), blen))) {
        if (!decoded) {
            lua_newtable(L);
            decoded = lua_gettop(L);
        }
        if (output)
            from_wire(&w, output, decoded);
        else
            lua_pushvalue(L, decoded);
        return 1;
    }
    lua_pushnil(L);
    dms_push_error(L, "transport", "MalformedResponse",
                   "the response body is not a JSON object: the outcome of the call is unknown");
    lua_pushinteger(L, (lua_Integer)status);
    lua_setfield(L, -2, "status");
    {
        const char *rid = header(L, 4, "x-amzn-requestid");
        if (rid) {
            lua_pushstring(L, rid);
            lua_setfield(L, -2, "request_id");
        }
    }
    return 2;
}

static const luaL_Reg shape_funcs[] = {
    {"build", shape_build},
    {"parse", shape_parse},
    {"timestamp", shape_timestamp},
    {NULL, NULL}
};

void dms_shape_open(lua_State *L)
{
    /* a private lua-cjson instance, so that no setting of the application's
     * cjson changes what dms sends */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    lua_remove(L, -2);
    lua_getfield(L, -1, "encode_number_precision");
    lua_pushinteger(L, 14);     /* the most lua-cjson 2.1 allows */
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode_sparse_array");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode");      /* UV_ENCODE */
    lua_getfield(L, -2, "decode");      /* UV_DECODE */
    lua_remove(L, -3);
    dms_compat_setfuncs(L, shape_funcs, 2);
}
