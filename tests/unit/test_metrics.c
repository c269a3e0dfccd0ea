/* lib/metrics: registration limits, the text exposition format 0.0.4 line by line, histogram
 * buckets, exact sums under concurrent increments, and the /metrics endpoint.
 *
 * The rendered text is also checked by an independent parser: python3's prometheus_client is not
 * installed on the build machine, so check_exposition() below is a strict checker of the 0.0.4
 * grammar written from the format's description (POSIX regular expressions for the lines, plus
 * the family rules: TYPE before samples, one HELP/TYPE per family, contiguous families,
 * histogram suffixes, cumulative buckets ending in +Inf equal to _count). It is itself tested on
 * broken inputs so that it can fail. */
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/metrics.h"
#include "ck_test.h"

static const char *const req_types[] = {"as", "tgs", NULL};
static const char *const results[] = {"ok", "error", NULL};
static const struct ck_metric_label req_labels[] = {{"type", req_types}, {"result", results}};
static const double lat_buckets[] = {0.001, 0.01, 0.1};

/* ---- the independent checker ------------------------------------------------------------ */

#define RE_NAME "[a-zA-Z_:][a-zA-Z0-9_:]*"
#define RE_LNAME "[a-zA-Z_][a-zA-Z0-9_]*"
#define RE_LVAL "\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
#define RE_FLOAT "([+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?Inf|NaN)"

struct family_state {
    char name[128];
    char type[16];
    bool help, samples;
};

/* 0 if text is valid 0.0.4 exposition, else the 1-based number of the first bad line. */
static int
check_exposition(const char *text)
{
    regex_t re_help, re_type, re_sample, re_label;
    struct family_state fams[64];
    size_t n_fams = 0;
    char cur[128] = "";      /* family of the last sample */
    double last_le = -INFINITY;
    unsigned long long last_bucket = 0, inf_bucket = 0;
    bool saw_inf = false;
    int line_no = 0, bad = 0;
    const char *p = text;

    if (regcomp(&re_help, "^# HELP (" RE_NAME ") ([^\n\\\\]|\\\\[\\\\n])*$", REG_EXTENDED) != 0 ||
        regcomp(&re_type, "^# TYPE (" RE_NAME ") (counter|gauge|histogram|summary|untyped)$",
                REG_EXTENDED) != 0 ||
        regcomp(&re_sample,
                "^(" RE_NAME ")(\\{(" RE_LNAME "=" RE_LVAL "(," RE_LNAME "=" RE_LVAL ")*,?)?\\})? "
                RE_FLOAT "( -?[0-9]+)?$",
                REG_EXTENDED) != 0 ||
        regcomp(&re_label, RE_LNAME "=" RE_LVAL, REG_EXTENDED) != 0)
        abort();
    if (text[0] != '\0' && text[strlen(text) - 1] != '\n')
        bad = -1; /* the last line must end with a newline */
    while (*p != '\0' && bad == 0) {
        const char *nl = strchr(p, '\n');
        char line[2048];
        size_t len = (size_t)(nl - p);
        regmatch_t mt[4];

        line_no++;
        if (nl == NULL || len >= sizeof(line)) {
            bad = line_no;
            break;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl + 1;
        if (len == 0)
            continue;
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            bool is_help = line[2] == 'H';
            char name[128];
            struct family_state *f = NULL;
            if (regexec(is_help ? &re_help : &re_type, line, 2, mt, 0) != 0) {
                bad = line_no;
                break;
            }
            snprintf(name, sizeof(name), "%.*s", (int)(mt[1].rm_eo - mt[1].rm_so),
                     line + mt[1].rm_so);
            for (size_t i = 0; i < n_fams; i++)
                if (strcmp(fams[i].name, name) == 0)
                    f = &fams[i];
            if (f == NULL) {
                if (n_fams == 64)
                    abort();
                f = &fams[n_fams++];
                memset(f, 0, sizeof(*f));
                snprintf(f->name, sizeof(f->name), "%s", name);
            }
            if (f->samples || (is_help && f->help) || (!is_help && f->type[0] != '\0')) {
                bad = line_no; /* after its samples, or twice */
                break;
            }
            if (is_help)
                f->help = true;
            else
                snprintf(f->type, sizeof(f->type), "%s", line + mt[1].rm_eo + 1);
            continue;
        }
        if (line[0] == '#')
            continue; /* other comments are allowed */
        if (regexec(&re_sample, line, 2, mt, 0) != 0) {
            bad = line_no;
            break;
        }
        {
            char name[128], base[128], le[64] = "";
            const char *suffix = "";
            struct family_state *f = NULL;
            const char *lab = strchr(line, '{');
            double value = strtod(strrchr(line, ' ') + 1, NULL);
            snprintf(name, sizeof(name), "%.*s", (int)(mt[1].rm_eo - mt[1].rm_so), line);
            snprintf(base, sizeof(base), "%s", name);
            for (size_t i = 0; i < n_fams; i++) {
                size_t bl = strlen(fams[i].name);
                if (strcmp(fams[i].name, name) == 0) {
                    f = &fams[i];
                } else if (strcmp(fams[i].type, "histogram") == 0 &&
                           strncmp(name, fams[i].name, bl) == 0 &&
                           (strcmp(name + bl, "_bucket") == 0 || strcmp(name + bl, "_sum") == 0 ||
                            strcmp(name + bl, "_count") == 0)) {
                    f = &fams[i];
                    suffix = name + bl;
                }
            }
            if (f == NULL || f->type[0] == '\0' ||
                (strcmp(f->type, "histogram") == 0 && suffix[0] == '\0')) {
                bad = line_no; /* a sample needs its TYPE first; a histogram needs a suffix */
                break;
            }
            if (strcmp(cur, f->name) != 0) {
                if (f->samples) {
                    bad = line_no; /* a family's samples must be contiguous */
                    break;
                }
                snprintf(cur, sizeof(cur), "%s", f->name);
            }
            f->samples = true;
            /* labels: each name once; le only on buckets */
            if (lab != NULL) {
                const char *q = lab + 1;
                char seen[8][64];
                size_t n_seen = 0;
                while (*q != '}' && regexec(&re_label, q, 1, mt, 0) == 0 && mt[0].rm_so == 0) {
                    size_t nl2 = strcspn(q, "=");
                    if (n_seen == 8)
                        abort();
                    snprintf(seen[n_seen], sizeof(seen[0]), "%.*s", (int)nl2, q);
                    for (size_t i = 0; i < n_seen; i++)
                        if (strcmp(seen[i], seen[n_seen]) == 0)
                            bad = line_no;
                    if (strcmp(seen[n_seen], "le") == 0)
                        snprintf(le, sizeof(le), "%.*s", (int)(mt[0].rm_eo - nl2 - 3),
                                 q + nl2 + 2);
                    n_seen++;
                    q += mt[0].rm_eo;
                    if (*q == ',')
                        q++;
                }
                if (bad)
                    break;
            }
            if (strcmp(suffix, "_bucket") == 0) {
                double bound;
                if (le[0] == '\0') {
                    bad = line_no;
                    break;
                }
                bound = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
                if (saw_inf) { /* a new series of buckets */
                    saw_inf = false;
                    last_le = -INFINITY;
                    last_bucket = 0;
                }
                if (!(bound > last_le) || value < (double)last_bucket) {
                    bad = line_no; /* bounds ascending, counts cumulative */
                    break;
                }
                last_le = bound;
                last_bucket = (unsigned long long)value;
                if (isinf(bound)) {
                    saw_inf = true;
                    inf_bucket = last_bucket;
                }
            } else if (le[0] != '\0') {
                bad = line_no;
                break;
            } else if (strcmp(suffix, "_count") == 0) {
                if (!saw_inf || (unsigned long long)value != inf_bucket) {
                    bad = line_no; /* _count must follow a +Inf bucket and equal it */
                    break;
                }
            } else if (strcmp(suffix, "_sum") == 0 && !saw_inf) {
                bad = line_no;
                break;
            }
            if (strcmp(f->type, "counter") == 0 && value < 0) {
                bad = line_no;
                break;
            }
        }
    }
    regfree(&re_help);
    regfree(&re_type);
    regfree(&re_sample);
    regfree(&re_label);
    return bad;
}

static void
checker_rejects_bad_text(void)
{
    CHECK_INT_EQ(check_exposition("# HELP a x\n# TYPE a counter\na 1\n"), 0);
    CHECK_INT_EQ(check_exposition("# TYPE a counter\na{x=\"1\",y=\"a\\\"b\"} 1 1700000000\n"), 0);
    CHECK(check_exposition("a 1\n") == 1);                                  /* no TYPE */
    CHECK(check_exposition("# TYPE a counter\na 1") == -1);                 /* no newline */
    CHECK(check_exposition("# TYPE a counter\na{x=1} 1\n") == 2);           /* unquoted */
    CHECK(check_exposition("# TYPE a counter\na 1.2.3\n") == 2);            /* bad float */
    CHECK(check_exposition("# TYPE a counter\na{x=\"a\nb\"} 1\n") == 2);    /* raw newline */
    CHECK(check_exposition("# TYPE a foo\n") == 1);                         /* bad type */
    CHECK(check_exposition("# TYPE 1a counter\n") == 1);                    /* bad name */
    CHECK(check_exposition("# TYPE a counter\n# TYPE a counter\n") == 2);   /* twice */
    CHECK(check_exposition("# TYPE a counter\n# TYPE b counter\na 1\nb 1\na 2\n") == 5);
    CHECK(check_exposition("# TYPE a counter\na{x=\"1\",x=\"2\"} 1\n") == 2);
    CHECK(check_exposition("# TYPE h histogram\nh 1\n") == 2);             /* no suffix */
    CHECK(check_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n") ==
          3);                                                               /* not cumulative */
    CHECK(check_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\n"
                           "h_sum 1\nh_count 4\n") == 5);                   /* count != +Inf */
    CHECK(check_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\n"
                           "h_sum 1\nh_count 3\n") == 0);
}

/* ---- registration --------------------------------------------------------------------- */

static void
label_refusal(void)
{
    struct ck_metrics *r = NULL;
    struct ck_metric *m = NULL, *c = NULL;
    static const char *const names[] = {"alice@EXAMPLE.NET", NULL};
    static const char *const dup[] = {"a", "a", NULL};
    static const char *const none[] = {NULL};
    static const char *const ctl[] = {"a\nb", NULL};
    const struct ck_metric_label bad_principal[] = {{"principal", names}};
    const struct ck_metric_label bad_client[] = {{"client", names}};
    const struct ck_metric_label bad_le[] = {{"le", names}};
    const struct ck_metric_label bad_res[] = {{"__name", names}};
    const struct ck_metric_label bad_dup[] = {{"x", dup}};
    const struct ck_metric_label bad_none[] = {{"x", none}};
    const struct ck_metric_label bad_ctl[] = {{"x", ctl}};
    const struct ck_metric_label twice[] = {{"x", req_types}, {"x", results}};
    struct ck_metric_desc d = {"ck_x_total", "x", CK_METRIC_COUNTER, NULL, 1, NULL, 0};
    const char *vals[2];
    size_t s = 0;

    CHECK_OK(ck_metrics_new(&r));
    d.labels = bad_principal;
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_POLICY);
    d.labels = bad_client;
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_POLICY);
    d.labels = bad_le;
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_POLICY);
    d.labels = bad_res;
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_POLICY);
    d.labels = bad_dup;
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_INVAL);
    d.labels = bad_none;
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_INVAL);
    d.labels = bad_ctl;
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_INVAL);
    d.labels = twice;
    d.n_labels = 2;
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_INVAL);
    d.n_labels = 5;
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_LIMIT);
    d.name = "bad-name";
    d.n_labels = 0;
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_INVAL);
    d.name = "ck_h";
    d.type = CK_METRIC_HISTOGRAM; /* no buckets */
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_LIMIT);
    {
        static const double desc[] = {1, 0.5};
        d.buckets = desc;
        d.n_buckets = 2;
        CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_INVAL);
    }
    CHECK(m == NULL);

    /* A good one; then run-time values beyond the declared ones are refused. */
    d = (struct ck_metric_desc){"ck_req_total", "r", CK_METRIC_COUNTER, req_labels, 2, NULL, 0};
    CHECK_OK(ck_metrics_register(r, &d, &c));
    CHECK_INT_EQ(ck_metrics_register(r, &d, &m), CK_ERR_EXISTS);
    CHECK_INT_EQ(ck_metric_n_series(c), 4);
    vals[0] = "tgs";
    vals[1] = "error";
    CHECK_OK(ck_metric_series(c, vals, &s));
    CHECK_INT_EQ(s, 3);
    CHECK_INT_EQ(ck_metric_series_idx(c, (const unsigned[]){1, 1}), 3);
    CHECK_INT_EQ(ck_metric_series_idx(c, (const unsigned[]){2, 0}), SIZE_MAX);
    vals[0] = "alice@EXAMPLE.NET";
    CHECK_INT_EQ(ck_metric_series(c, vals, &s), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "label type") != NULL);
    vals[0] = NULL;
    CHECK_INT_EQ(ck_metric_series(c, vals, &s), CK_ERR_POLICY);
    /* Out-of-range series and wrong-type calls change nothing and are counted. */
    ck_metric_inc(c, 4);
    ck_metric_inc(c, SIZE_MAX);
    ck_metric_observe(c, 0, 1.0);
    ck_metric_set(c, 0, 1.0);
    CHECK_INT_EQ(ck_metrics_rejected(r), 4);
    for (size_t i = 0; i < 4; i++)
        CHECK(ck_metric_value(c, i) == 0);
    ck_metrics_free(r);
    ck_metrics_free(NULL);
}

/* ---- the text format ------------------------------------------------------------------- */

static void
exposition_lines(void)
{
    struct ck_metrics *r = NULL;
    struct ck_metric *c = NULL, *g = NULL, *h = NULL, *e = NULL;
    static const char *const odd[] = {"a\"b\\c", NULL};
    const struct ck_metric_label odd_label[] = {{"kind", odd}};
    const struct ck_metric_label type_label[] = {{"type", req_types}};
    struct ck_metric_desc dc = {"ck_kdc_requests_total", "KDC requests by type and result.",
                                CK_METRIC_COUNTER, req_labels, 2, NULL, 0};
    struct ck_metric_desc dg = {"ck_cache_entries", "Entries in the principal cache.",
                                CK_METRIC_GAUGE, NULL, 0, NULL, 0};
    struct ck_metric_desc dh = {"ck_kdc_latency_seconds", "Latency\\of a \"request\"\nhere.",
                                CK_METRIC_HISTOGRAM, type_label, 1, lat_buckets, 3};
    struct ck_metric_desc de = {"ck_odd_total", "Escapes.", CK_METRIC_COUNTER, odd_label, 1,
                                NULL, 0};
    char *text = NULL;
    size_t len = 0;
    const char *expected =
        "# HELP ck_kdc_requests_total KDC requests by type and result.\n"
        "# TYPE ck_kdc_requests_total counter\n"
        "ck_kdc_requests_total{type=\"as\",result=\"ok\"} 3\n"
        "ck_kdc_requests_total{type=\"as\",result=\"error\"} 0\n"
        "ck_kdc_requests_total{type=\"tgs\",result=\"ok\"} 0\n"
        "ck_kdc_requests_total{type=\"tgs\",result=\"error\"} 1000000007\n"
        "# HELP ck_cache_entries Entries in the principal cache.\n"
        "# TYPE ck_cache_entries gauge\n"
        "ck_cache_entries -2.5\n"
        "# HELP ck_kdc_latency_seconds Latency\\\\of a \"request\"\\nhere.\n"
        "# TYPE ck_kdc_latency_seconds histogram\n"
        "ck_kdc_latency_seconds_bucket{type=\"as\",le=\"0.001\"} 0\n"
        "ck_kdc_latency_seconds_bucket{type=\"as\",le=\"0.01\"} 0\n"
        "ck_kdc_latency_seconds_bucket{type=\"as\",le=\"0.1\"} 0\n"
        "ck_kdc_latency_seconds_bucket{type=\"as\",le=\"+Inf\"} 0\n"
        "ck_kdc_latency_seconds_sum{type=\"as\"} 0\n"
        "ck_kdc_latency_seconds_count{type=\"as\"} 0\n"
        "ck_kdc_latency_seconds_bucket{type=\"tgs\",le=\"0.001\"} 1\n"
        "ck_kdc_latency_seconds_bucket{type=\"tgs\",le=\"0.01\"} 1\n"
        "ck_kdc_latency_seconds_bucket{type=\"tgs\",le=\"0.1\"} 2\n"
        "ck_kdc_latency_seconds_bucket{type=\"tgs\",le=\"+Inf\"} 3\n"
        "ck_kdc_latency_seconds_sum{type=\"tgs\"} 2.5634765625\n"
        "ck_kdc_latency_seconds_count{type=\"tgs\"} 3\n"
        "# HELP ck_odd_total Escapes.\n"
        "# TYPE ck_odd_total counter\n"
        "ck_odd_total{kind=\"a\\\"b\\\\c\"} 1\n";

    CHECK_OK(ck_metrics_new(&r));
    CHECK_OK(ck_metrics_register(r, &dc, &c));
    CHECK_OK(ck_metrics_register(r, &dg, &g));
    CHECK_OK(ck_metrics_register(r, &dh, &h));
    CHECK_OK(ck_metrics_register(r, &de, &e));
    if (c == NULL || g == NULL || h == NULL || e == NULL)
        goto out;
    ck_metric_inc(c, 0);
    ck_metric_add(c, 0, 2);
    ck_metric_add(c, 3, 1000000007ull);
    ck_metric_set(g, 0, 1.5);
    ck_metric_gauge_add(g, 0, -4);
    /* Values exact in binary, so that the sum's text is known. */
    ck_metric_observe(h, 1, 0.0009765625);
    ck_metric_observe(h, 1, 0.0625);
    ck_metric_observe(h, 1, 2.5);
    ck_metric_inc(e, 0);
    CHECK_OK(ck_metrics_render(r, &text, &len));
    if (text == NULL)
        goto out;
    CHECK_INT_EQ(len, strlen(text));
    /* Line by line, so that a failure names the line. */
    {
        const char *a = text, *b = expected;
        int line = 1;
        while (*a != '\0' || *b != '\0') {
            size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
            if (la != lb || memcmp(a, b, la) != 0) {
                fprintf(stderr, "  line %d: got '%.*s', expected '%.*s'\n", line, (int)la, a,
                        (int)lb, b);
                ck_test_case_failed = 1;
                break;
            }
            a += la + (a[la] == '\n');
            b += lb + (b[lb] == '\n');
            line++;
        }
    }
    CHECK_INT_EQ(check_exposition(text), 0);
out:
    free(text);
    ck_metrics_free(r);
}

static void
histogram_buckets(void)
{
    struct ck_metrics *r = NULL;
    struct ck_metric *h = NULL;
    struct ck_metric_desc dh = {"ck_h_seconds", "h", CK_METRIC_HISTOGRAM, NULL, 0, lat_buckets, 3};
    char *text = NULL;
    size_t len = 0;

    CHECK_OK(ck_metrics_new(&r));
    CHECK_OK(ck_metrics_register(r, &dh, &h));
    if (h == NULL)
        goto out;
    /* A bound is inclusive (le = less or equal); NaN and +Inf go to +Inf only. */
    ck_metric_observe(h, 0, 0.001);
    ck_metric_observe(h, 0, 0.0010001);
    ck_metric_observe(h, 0, 0.1);
    ck_metric_observe(h, 0, -1);
    ck_metric_observe(h, 0, 1000);
    CHECK_INT_EQ(ck_metric_hist_count(h, 0), 5);
    CHECK(fabs(ck_metric_hist_sum(h, 0) - (0.001 + 0.0010001 + 0.1 - 1 + 1000)) < 1e-9);
    CHECK_OK(ck_metrics_render(r, &text, &len));
    if (text == NULL)
        goto out;
    CHECK(strstr(text, "ck_h_seconds_bucket{le=\"0.001\"} 2\n") != NULL);
    CHECK(strstr(text, "ck_h_seconds_bucket{le=\"0.01\"} 3\n") != NULL);
    CHECK(strstr(text, "ck_h_seconds_bucket{le=\"0.1\"} 4\n") != NULL);
    CHECK(strstr(text, "ck_h_seconds_bucket{le=\"+Inf\"} 5\n") != NULL);
    CHECK(strstr(text, "ck_h_seconds_count 5\n") != NULL);
    {
        const char *sum = strstr(text, "ck_h_seconds_sum ");
        CHECK(sum != NULL && strtod(sum + 17, NULL) == ck_metric_hist_sum(h, 0));
    }
    CHECK_INT_EQ(check_exposition(text), 0);
    free(text);
    text = NULL;
    ck_metric_observe(h, 0, NAN);
    CHECK_INT_EQ(ck_metric_hist_count(h, 0), 6);
    CHECK_OK(ck_metrics_render(r, &text, &len));
    if (text != NULL) {
        CHECK(strstr(text, "ck_h_seconds_bucket{le=\"+Inf\"} 6\n") != NULL);
        CHECK(strstr(text, "ck_h_seconds_sum NaN\n") != NULL);
        CHECK_INT_EQ(check_exposition(text), 0);
    }
out:
    free(text);
    ck_metrics_free(r);
}

/* ---- concurrency ----------------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 200000

struct worker {
    struct ck_metric *c, *h;
    unsigned id;
};

static void *
hammer(void *arg)
{
    struct worker *w = arg;

    for (unsigned i = 0; i < PER_THREAD; i++) {
        ck_metric_inc(w->c, i % 4);
        ck_metric_observe(w->h, w->id % 2, (double)(i % 3)); /* 0, 1, 2: exact in binary */
    }
    return NULL;
}

static void
concurrent_sums(void)
{
    struct ck_metrics *r = NULL;
    struct ck_metric *c = NULL, *h = NULL;
    const struct ck_metric_label type_label[] = {{"type", req_types}};
    static const double b[] = {0.5, 1.5};
    struct ck_metric_desc dc = {"ck_c_total", "c", CK_METRIC_COUNTER, req_labels, 2, NULL, 0};
    struct ck_metric_desc dh = {"ck_hh", "h", CK_METRIC_HISTOGRAM, type_label, 1, b, 2};
    pthread_t t[THREADS];
    struct worker w[THREADS];
    uint64_t total = 0;
    char *text = NULL;
    size_t len;

    CHECK_OK(ck_metrics_new(&r));
    CHECK_OK(ck_metrics_register(r, &dc, &c));
    CHECK_OK(ck_metrics_register(r, &dh, &h));
    if (c == NULL || h == NULL)
        goto out;
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){c, h, i};
        if (pthread_create(&t[i], NULL, hammer, &w[i]) != 0)
            abort();
    }
    /* Scrape while they run: every scrape must be well-formed. */
    for (int i = 0; i < 20; i++) {
        CHECK_OK(ck_metrics_render(r, &text, &len));
        if (text != NULL)
            CHECK_INT_EQ(check_exposition(text), 0);
        free(text);
        text = NULL;
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (size_t s = 0; s < 4; s++) {
        CHECK(ck_metric_value(c, s) == (double)(THREADS * PER_THREAD / 4));
        total += (uint64_t)ck_metric_value(c, s);
    }
    CHECK_INT_EQ(total, (uint64_t)THREADS * PER_THREAD);
    CHECK_INT_EQ(ck_metric_hist_count(h, 0) + ck_metric_hist_count(h, 1),
                 (uint64_t)THREADS * PER_THREAD);
    {
        /* per thread: 0,1,2 repeating: sum = (PER_THREAD/3)*3 + remainder */
        double per = 0;
        for (unsigned i = 0; i < PER_THREAD; i++)
            per += (double)(i % 3);
        CHECK(ck_metric_hist_sum(h, 0) == per * THREADS / 2);
        CHECK(ck_metric_hist_sum(h, 1) == per * THREADS / 2);
    }
out:
    ck_metrics_free(r);
}

/* ---- the endpoint ---------------------------------------------------------------------- */

struct body {
    char buf[65536];
    size_t len;
};

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t k = size * n;

    if (b->len + k >= sizeof(b->buf))
        return 0;
    memcpy(b->buf + b->len, p, k);
    b->len += k;
    b->buf[b->len] = '\0';
    return k;
}

static long
fetch(int port, const char *path, bool post, struct body *b, char *ctype, size_t ctype_size)
{
    CURL *c = curl_easy_init();
    char url[128];
    long status = 0;
    char *ct = NULL;

    if (c == NULL)
        abort();
    memset(b, 0, sizeof(*b));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (post)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ctype != NULL)
            snprintf(ctype, ctype_size, "%s", ct != NULL ? ct : "");
    }
    curl_easy_cleanup(c);
    return status;
}

static void
collect_hook(void *arg)
{
    static int scrapes;
    ck_metric_set(arg, 0, ++scrapes);
}

static void
http_endpoint(void)
{
    struct ck_metric *sampled = NULL;
    struct ck_metrics *r = NULL;
    struct ck_metric *c = NULL;
    struct ck_metrics_http *h = NULL;
    struct ck_metric_desc dc = {"ck_req_total", "r", CK_METRIC_COUNTER, req_labels, 2, NULL, 0};
    static struct body b;
    char ctype[128] = "", *text = NULL;
    size_t len;
    int port;

    CHECK_OK(ck_metrics_new(&r));
    CHECK_OK(ck_metrics_register(r, &dc, &c));
    /* Bind addresses: numeric only, a port required. */
    CHECK_INT_EQ(ck_metrics_http_start(r, "localhost:9188", &h), CK_ERR_CONFIG);
    CHECK_INT_EQ(ck_metrics_http_start(r, "127.0.0.1", &h), CK_ERR_CONFIG);
    CHECK_INT_EQ(ck_metrics_http_start(r, "127.0.0.1:70000", &h), CK_ERR_CONFIG);
    CHECK_INT_EQ(ck_metrics_http_start(r, "::1:80", &h), CK_ERR_CONFIG);
    CHECK_INT_EQ(ck_metrics_http_start(r, "[::1", &h), CK_ERR_CONFIG);
    CHECK_OK(ck_metrics_http_start(r, "127.0.0.1:0", &h));
    if (h == NULL || c == NULL)
        goto out;
    port = ck_metrics_http_port(h);
    CHECK(port > 0);
    ck_metric_add(c, 2, 42);
    CHECK_INT_EQ(fetch(port, "/metrics", false, &b, ctype, sizeof(ctype)), 200);
    CHECK(strcmp(ctype, CK_METRICS_CONTENT_TYPE) == 0);
    CHECK_OK(ck_metrics_render(r, &text, &len));
    if (text != NULL)
        CHECK_MEM_EQ(b.buf, b.len, text, len);
    CHECK(strstr(b.buf, "ck_req_total{type=\"tgs\",result=\"ok\"} 42\n") != NULL);
    CHECK_INT_EQ(check_exposition(b.buf), 0);
    /* The collect hook samples a gauge at each scrape. */
    {
        struct ck_metric_desc dg = {"ck_sampled", "s", CK_METRIC_GAUGE, NULL, 0, NULL, 0};
        CHECK_OK(ck_metrics_register(r, &dg, &sampled));
        ck_metrics_set_collect(r, collect_hook, sampled);
        CHECK_INT_EQ(fetch(port, "/metrics", false, &b, NULL, 0), 200);
        CHECK(strstr(b.buf, "\nck_sampled 1\n") != NULL);
        CHECK_INT_EQ(fetch(port, "/metrics", false, &b, NULL, 0), 200);
        CHECK(strstr(b.buf, "\nck_sampled 2\n") != NULL);
        ck_metrics_set_collect(r, NULL, NULL);
    }
    CHECK_INT_EQ(fetch(port, "/", false, &b, NULL, 0), 404);
    CHECK_INT_EQ(fetch(port, "/metrics/x", false, &b, NULL, 0), 404);
    CHECK_INT_EQ(fetch(port, "/metrics", true, &b, NULL, 0), 405);
out:
    free(text);
    ck_metrics_http_stop(h);
    ck_metrics_http_stop(NULL);
    ck_metrics_free(r);
}

CK_TEST_MAIN("metrics", CK_TEST_CASE(checker_rejects_bad_text), CK_TEST_CASE(label_refusal),
             CK_TEST_CASE(exposition_lines), CK_TEST_CASE(histogram_buckets),
             CK_TEST_CASE(concurrent_sums), CK_TEST_CASE(http_endpoint))
