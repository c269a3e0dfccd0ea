/* The CLI's small parsers and formatters (durations, times, enctype lists), apart from main()
 * so that tests/unit/test_cli_parse.c can include them. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/util.h"
#include "cli.h"

int
cli_parse_duration(const char *s, int64_t *out)
{
    int64_t total = 0;
    const char *p = s;

    if (s == NULL || *s == '\0')
        return ck_error_set(CK_ERR_INVAL, "empty duration");
    /* A bare number is seconds. */
    if (ck_parse_int64(s, 0, INT32_MAX, out) == 0)
        return 0;
    while (*p != '\0') {
        int64_t v = 0, mult;
        int digits = 0;

        while (isdigit((unsigned char)*p)) {
            v = v * 10 + (*p - '0');
            if (v > INT32_MAX || ++digits > 10)
                return ck_error_set(CK_ERR_INVAL, "duration '%s' too large", s);
            p++;
        }
        if (digits == 0)
            return ck_error_set(CK_ERR_INVAL, "bad duration '%s' (use e.g. 36000, 10h, 7d)", s);
        switch (*p) {
        case 'd': mult = 86400; break;
        case 'h': mult = 3600; break;
        case 'm': mult = 60; break;
        case 's': mult = 1; break;
        default:
            return ck_error_set(CK_ERR_INVAL, "bad duration '%s' (use e.g. 36000, 10h, 7d)", s);
        }
        p++;
        total += v * mult;
        if (total > INT32_MAX)
            return ck_error_set(CK_ERR_INVAL, "duration '%s' too large", s);
    }
    *out = total;
    return 0;
}

/* Reads exactly n digits. */
static bool
digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

int
cli_parse_time(const char *s, int64_t *out)
{
    const char *p = s;
    struct tm tm, back;
    int year, mon, day, hour = 0, min = 0, sec = 0;
    time_t t;

    if (s == NULL || *s == '\0')
        return ck_error_set(CK_ERR_INVAL, "empty time");
    if (isdigit((unsigned char)*s) && ck_parse_int64(s, 0, CLI_TIME_MAX, out) == 0)
        return 0;
    /* Fixed widths, no whitespace, nothing after: "2027-3-1" or "2027-03-01x" are typos. */
    if (!digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &mon) || *p++ != '-' ||
        !digits(&p, 2, &day))
        goto bad;
    if (*p == ' ' || *p == 'T') {
        p++;
        if (!digits(&p, 2, &hour) || *p++ != ':' || !digits(&p, 2, &min))
            goto bad;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                goto bad;
        }
    }
    if (*p != '\0')
        goto bad;
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
        sec > 59)
        return ck_error_set(CK_ERR_INVAL, "time '%s': a field is out of range", s);
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    /* timegm normalises 2027-02-30 to March 2nd: a date that does not come back unchanged
     * does not exist. */
    t = timegm(&tm); /* (normalises tm in place: compare with the parsed fields) */
    if (t == (time_t)-1 || gmtime_r(&t, &back) == NULL || back.tm_year != year - 1900 ||
        back.tm_mon != mon - 1 || back.tm_mday != day || back.tm_hour != hour ||
        back.tm_min != min || back.tm_sec != sec)
        return ck_error_set(CK_ERR_INVAL, "time '%s': no such date", s);
    *out = (int64_t)t;
    return 0;
bad:
    return ck_error_set(CK_ERR_INVAL,
                        "bad time '%s' (use epoch seconds, YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]', "
                        "UTC)", s);
}

int
cli_parse_enctypes(const char *s, int32_t *out, size_t max, size_t *n)
{
    char buf[512], *save = NULL, *tok;
    int ret;

    *n = 0;
    if (ck_strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
        return ck_error_set(CK_ERR_INVAL, "enctype list too long");
    for (tok = strtok_r(buf, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        int32_t e = 0;
        /* Accept MIT's "enctype:salttype" form for the normal salt only. */
        char *colon = strchr(tok, ':');
        if (colon != NULL) {
            if (strcmp(colon + 1, "normal") != 0)
                return ck_error_set(CK_ERR_UNSUPPORTED, "salt type '%s' (only normal)",
                                    colon + 1);
            *colon = '\0';
        }
        if ((ret = ck_enctype_from_name(tok, &e)) != 0 || !ck_enctype_is_supported(e))
            return ck_error_set(CK_ERR_UNSUPPORTED, "unknown or unsupported enctype '%s'", tok);
        for (size_t i = 0; i < *n; i++) {
            if (out[i] == e)
                return ck_error_set(CK_ERR_INVAL, "enctype '%s' listed twice", tok);
        }
        if (*n >= max)
            return ck_error_set(CK_ERR_LIMIT, "more than %zu enctypes", max);
        out[(*n)++] = e;
    }
    if (*n == 0)
        return ck_error_set(CK_ERR_INVAL, "empty enctype list");
    return 0;
}

void
cli_format_duration(int64_t secs, char *buf, size_t size)
{
    int64_t d = secs / 86400, h = secs % 86400 / 3600, m = secs % 3600 / 60, s = secs % 60;

    if (d > 0)
        snprintf(buf, size, "%lld days %02lld:%02lld:%02lld", (long long)d, (long long)h,
                 (long long)m, (long long)s);
    else
        snprintf(buf, size, "%02lld:%02lld:%02lld", (long long)h, (long long)m, (long long)s);
}

void
cli_format_time(int64_t t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
}
