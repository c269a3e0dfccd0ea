/* Minimal in-house unit test harness: each test binary lists its cases with CK_TEST_MAIN, prints
 * one "ok"/"not ok" line per case and a closing "N passed, N failed" line, and exits non-zero if any
 * case failed. Cases run with the working directory set to tests/ (see CMakeLists.txt). */
#ifndef CK_TEST_H
#define CK_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"

struct ck_test_case {
    const char *name;
    void (*fn)(void);
};

static int ck_test_case_failed;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
            ck_test_case_failed = 1;                                                       \
        }                                                                                  \
    } while (0)

/* Expects a cablekey call to return 0; prints the error and its context otherwise. */
#define CHECK_OK(expr)                                                                     \
    do {                                                                                   \
        int ck_test_rc_ = (expr);                                                          \
        if (ck_test_rc_ != 0) {                                                            \
            fprintf(stderr, "  %s:%d: %s returned %d (%s: %s)\n", __FILE__, __LINE__, #expr, \
                    ck_test_rc_, ck_strerror(ck_test_rc_), ck_error_context());            \
            ck_test_case_failed = 1;                                                       \
        }                                                                                  \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                                 \
    do {                                                                                   \
        long long ck_test_a_ = (long long)(a), ck_test_b_ = (long long)(b);                \
        if (ck_test_a_ != ck_test_b_) {                                                    \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
                    #a, ck_test_a_, #b, ck_test_b_);                                       \
            ck_test_case_failed = 1;                                                       \
        }                                                                                  \
    } while (0)

#define CHECK_MEM_EQ(a, alen, b, blen)                                                     \
    do {                                                                                   \
        size_t ck_test_al_ = (alen), ck_test_bl_ = (blen);                                 \
        if (ck_test_al_ != ck_test_bl_ || memcmp((a), (b), ck_test_al_) != 0) {            \
            fprintf(stderr, "  %s:%d: %s (%zu bytes) != %s (%zu bytes)\n", __FILE__, __LINE__, \
                    #a, ck_test_al_, #b, ck_test_bl_);                                     \
            ck_test_case_failed = 1;                                                       \
        }                                                                                  \
    } while (0)

/* Decodes a hex string (whitespace ignored) into a malloc'd buffer; aborts on bad input because
 * a bad vector is a bug in the test itself. */
static inline unsigned char *
ck_test_hex(const char *hex, size_t *len)
{
    size_t n = strlen(hex), o = 0;
    unsigned char *out = malloc(n / 2 + 1);
    int hi = -1;

    if (out == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        char c = hex[i];
        int v;
        if (c == ' ' || c == '\n' || c == '\t' || c == ':')
            continue;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else {
            fprintf(stderr, "bad hex vector near '%s'\n", hex + i);
            abort();
        }
        if (hi < 0) {
            hi = v;
        } else {
            out[o++] = (unsigned char)(hi << 4 | v);
            hi = -1;
        }
    }
    if (hi >= 0)
        abort();
    *len = o;
    return out;
}

/* CK_TEST_CASES=NAME,NAME...: runs only those cases of the suite, and fails the run for a name
 * that is no case of it (tests/interop/t_unit_pg.sh runs the cases that make sense on
 * PostgreSQL so). Unset: every case. */
static inline int
ck_test_selected(const char *name)
{
    const char *list = getenv("CK_TEST_CASES"), *p;
    size_t n = strlen(name);

    if (list == NULL)
        return 1;
    for (p = list; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    }
    return 0;
}

static inline int
ck_test_run(const char *suite, const struct ck_test_case *cases, size_t n)
{
    int passed = 0, failed = 0;
    const char *list = getenv("CK_TEST_CASES");

    /* Every selected name must exist: a typo must not pass as "nothing to run". */
    for (const char *p = list; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ","), i;

        for (i = 0; i < n; i++) {
            if (strlen(cases[i].name) == len && strncmp(cases[i].name, p, len) == 0)
                break;
        }
        if (i == n) {
            printf("not ok - %s: CK_TEST_CASES names no case \"%.*s\"\n", suite, (int)len, p);
            failed++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ck_test_selected(cases[i].name))
            continue;
        ck_test_case_failed = 0;
        ck_error_clear();
        cases[i].fn();
        if (ck_test_case_failed) {
            printf("not ok %zu - %s: %s\n", i + 1, suite, cases[i].name);
            failed++;
        } else {
            printf("ok %zu - %s: %s\n", i + 1, suite, cases[i].name);
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

#define CK_TEST_CASE(fn) {#fn, fn}
#define CK_TEST_MAIN(suite, ...)                                                           \
    int main(void)                                                                         \
    {                                                                                      \
        static const struct ck_test_case cases[] = {__VA_ARGS__};                          \
        return ck_test_run(suite, cases, sizeof(cases) / sizeof(cases[0]));                \
    }

#endif
