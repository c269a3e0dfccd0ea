/* cablekey-cms -> cablekey-prov (provclient.h): the report queue (per-MAC coalescing, bound,
 * backoff on an injected clock, permanent refusals), the lines long poll and its parser on
 * hostile answers, and what the call core does with the lines: dynamic lines routed, removed
 * live, static lines winning, and an unprovisioned restricted device without a line as a guest
 * that may call only what its restriction allows. A fake HTTP transport, no sockets. */
#define W_PHONES 6
#include <unistd.h>

#include "ck_test.h"
#include "call_world.h"
#include "cablekey/log.h"
#include "cablekey/prov_ad.h"
#include "provclient.h"

/* ---- a fake cablekey-prov -------------------------------------------------------------- */

#define F_MAX 32

struct fake {
    int64_t now;                     /* the injected clock, ms */
    int calls;
    char method[F_MAX][8], path[F_MAX][128], body[F_MAX][512];
    /* scripted answers, in order; past the end: the last one again */
    int rc[F_MAX];
    long status[F_MAX];
    const char *answer[F_MAX];
    int n_script;
    int64_t advance;                 /* the request "takes" this long */
};

static int64_t
f_clock(void *arg)
{
    return ((struct fake *)arg)->now;
}

static int
f_request(void *arg, const char *method, const char *path, const char *body, long timeout_s,
          long *status, char **answer, size_t *answer_len)
{
    struct fake *f = arg;
    int i = f->calls < f->n_script ? f->calls : f->n_script - 1;

    (void)timeout_s;
    if (f->calls < F_MAX) {
        snprintf(f->method[f->calls], sizeof(f->method[0]), "%s", method);
        snprintf(f->path[f->calls], sizeof(f->path[0]), "%s", path);
        snprintf(f->body[f->calls], sizeof(f->body[0]), "%s", body != NULL ? body : "");
    }
    f->calls++;
    f->now += f->advance;
    *status = 0;
    *answer = NULL;
    *answer_len = 0;
    if (i < 0 || f->rc[i] != 0)
        return ck_error_set(CK_ERR_IO, "fake: connection refused");
    *status = f->status[i];
    if (f->answer[i] != NULL) {
        *answer = strdup(f->answer[i]);
        *answer_len = strlen(f->answer[i]);
    }
    return 0;
}

static void
script(struct fake *f, int rc, long status, const char *answer)
{
    f->rc[f->n_script] = rc;
    f->status[f->n_script] = status;
    f->answer[f->n_script] = answer;
    f->n_script++;
}

static const uint8_t MAC1[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55};
static const uint8_t MAC2[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x66};
static const uint8_t MAC3[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x77};
static uint8_t KEY[32];

static struct cms_prov *
new_client(struct fake *f, size_t max_queue, struct cms_call_core *calls)
{
    struct cms_prov_opts o = {.controller = "cms/ctl@R", .max_queue = max_queue,
                              .backoff_min_ms = 1000, .backoff_max_ms = 8000,
                              .lines = calls != NULL};
    struct cms_prov_transport t = {f_request, f};
    struct cms_prov *p = NULL;

    memset(KEY, 0xab, sizeof(KEY));
    if (cms_prov_new(&o, &t, &t, f_clock, f, calls, &p) != 0)
        return NULL;
    return p;
}

/* ---- reports ---------------------------------------------------------------------------- */

static void
test_report_coalesced_and_sent(void)
{
    struct fake f = {.now = 100000};
    struct cms_prov *p;
    struct cms_prov_stats st;

    script(&f, 0, 200, "{\"mac\":\"00:11:22:33:44:55\"}");
    CHECK((p = new_client(&f, 8, NULL)) != NULL);
    CHECK_INT_EQ(cms_prov_report_step(p), -1);              /* nothing queued */
    cms_prov_report(p, MAC1, "10.0.0.1", KEY);
    cms_prov_report(p, MAC2, "10.0.0.2", KEY);
    cms_prov_report(p, MAC1, "10.0.0.9", KEY);               /* the same device again */
    cms_prov_get_stats(p, &st);
    CHECK_INT_EQ(st.pending, 2);
    CHECK_INT_EQ(st.coalesced, 1);
    CHECK_INT_EQ(cms_prov_report_step(p), 0);                /* one more due at once */
    CHECK_INT_EQ(f.calls, 1);
    CHECK(strcmp(f.method[0], "POST") == 0);
    CHECK(strcmp(f.path[0], "/api/v1/devices/report") == 0);
    /* The newest address, in the first device's place in the queue. */
    CHECK(strstr(f.body[0], "\"mac\":\"00:11:22:33:44:55\"") != NULL);
    CHECK(strstr(f.body[0], "\"ip\":\"10.0.0.9\"") != NULL);
    CHECK(strstr(f.body[0], "\"controller\":\"cms/ctl@R\"") != NULL);
    CHECK(strstr(f.body[0], "\"key_sha256\":\"abababab") != NULL);
    CHECK_INT_EQ(cms_prov_report_step(p), -1);
    CHECK_INT_EQ(f.calls, 2);
    CHECK(strstr(f.body[1], "\"ip\":\"10.0.0.2\"") != NULL);
    cms_prov_get_stats(p, &st);
    CHECK_INT_EQ(st.ok, 2);
    CHECK_INT_EQ(st.pending, 0);
    cms_prov_free(p);
}

static void
test_report_backoff(void)
{
    struct fake f = {.now = 100000};
    struct cms_prov *p;
    struct cms_prov_stats st;

    script(&f, -1, 0, NULL);                                  /* prov down */
    script(&f, 0, 503, "{\"error\":{\"code\":\"unavailable\",\"message\":\"back\\nend\"}}");
    script(&f, -1, 0, NULL);
    script(&f, -1, 0, NULL);
    script(&f, -1, 0, NULL);
    script(&f, 0, 200, "{}");
    CHECK((p = new_client(&f, 8, NULL)) != NULL);
    cms_prov_report(p, MAC1, "10.0.0.1", KEY);
    CHECK_INT_EQ(cms_prov_report_step(p), 1000);              /* failed: back off 1 s */
    CHECK_INT_EQ(f.calls, 1);
    f.now += 999;
    CHECK_INT_EQ(cms_prov_report_step(p), 1);                 /* not yet: no request */
    CHECK_INT_EQ(f.calls, 1);
    f.now += 1;
    CHECK_INT_EQ(cms_prov_report_step(p), 2000);              /* 503: retried, doubled */
    CHECK_INT_EQ(f.calls, 2);
    f.now += 2000;
    CHECK_INT_EQ(cms_prov_report_step(p), 4000);
    f.now += 4000;
    CHECK_INT_EQ(cms_prov_report_step(p), 8000);
    f.now += 8000;
    CHECK_INT_EQ(cms_prov_report_step(p), 8000);              /* capped at backoff_max */
    /* A report of another device waits its turn behind the backoff too. */
    cms_prov_report(p, MAC2, "10.0.0.2", KEY);
    CHECK_INT_EQ(cms_prov_report_step(p), 8000);
    CHECK_INT_EQ(f.calls, 5);
    f.now += 8000;
    CHECK_INT_EQ(cms_prov_report_step(p), 0);                 /* delivered; the next at once */
    CHECK(strstr(f.body[5], "00:11:22:33:44:55") != NULL);
    CHECK_INT_EQ(cms_prov_report_step(p), -1);
    CHECK(strstr(f.body[6], "00:11:22:33:44:66") != NULL);
    cms_prov_get_stats(p, &st);
    CHECK_INT_EQ(st.retries, 5);
    CHECK_INT_EQ(st.ok, 2);
    CHECK_INT_EQ(st.dropped, 0);
    cms_prov_free(p);
}

static void
test_report_bounded_and_refused(void)
{
    struct fake f = {.now = 5};
    struct cms_prov *p;
    struct cms_prov_stats st;

    script(&f, 0, 400, "{\"error\":{\"code\":\"invalid_field\",\"field\":\"ip\"}}");
    script(&f, -1, 0, NULL);
    CHECK((p = new_client(&f, 2, NULL)) != NULL);
    cms_prov_report(p, MAC1, "10.0.0.1", KEY);
    cms_prov_report(p, MAC2, "10.0.0.2", KEY);
    cms_prov_report(p, MAC3, "10.0.0.3", KEY);               /* queue full: dropped */
    cms_prov_get_stats(p, &st);
    CHECK_INT_EQ(st.pending, 2);
    CHECK_INT_EQ(st.dropped, 1);
    /* 400 will not change by retrying: dropped, no backoff. */
    CHECK_INT_EQ(cms_prov_report_step(p), 0);
    cms_prov_get_stats(p, &st);
    CHECK_INT_EQ(st.dropped, 2);
    CHECK_INT_EQ(st.pending, 1);
    /* A failed report waits at the head; a new report of its device replaces it in place. */
    CHECK_INT_EQ(cms_prov_report_step(p), 1000);
    cms_prov_get_stats(p, &st);
    CHECK_INT_EQ(st.pending, 1);
    cms_prov_report(p, MAC2, "10.0.0.22", KEY);
    cms_prov_get_stats(p, &st);
    CHECK_INT_EQ(st.coalesced, 1);
    CHECK_INT_EQ(st.pending, 1);
    cms_prov_free(p);
    cms_prov_free(NULL);
    cms_prov_report(NULL, MAC1, "10.0.0.1", KEY);
}

/* ---- lines ------------------------------------------------------------------------------ */

static void
test_lines_parse_hostile(void)
{
    static const char *const bad[] = {
        "",
        "nonsense",
        "[]",
        "{}",
        "{\"lines\":{},\"cursor\":1}",
        "{\"lines\":[],\"cursor\":\"1\"}",
        "{\"lines\":[],\"cursor\":-4}",
        "{\"lines\":[],\"cursor\":1,\"full\":\"yes\"}",
        "{\"lines\":[1],\"cursor\":1,\"full\":true}",
        "{\"lines\":[{\"number\":\"12a\",\"principal\":\"p@R\"}],\"cursor\":1,\"full\":true}",
        "{\"lines\":[{\"number\":\"1234567890123456\",\"principal\":\"p@R\"}],\"cursor\":1}",
        "{\"lines\":[{\"number\":\"\",\"principal\":\"p@R\"}],\"cursor\":1}",
        "{\"lines\":[{\"number\":5551000,\"principal\":\"p@R\"}],\"cursor\":1}",
        "{\"lines\":[{\"number\":\"5551000\",\"principal\":\"\"}],\"cursor\":1}",
        "{\"lines\":[{\"number\":\"5551000\",\"principal\":\"a\\nb\"}],\"cursor\":1}",
        "{\"lines\":[{\"number\":\"5551000\"}],\"cursor\":1}",
        "{\"lines\":[],\"lines\":[],\"cursor\":1}",
        "{\"lines\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        "],\"cursor\":1}",
        "{\"lines\":[{\"number\":\"5551000\",\"principal\":\"p@R\",\"mac\":\"aa:bb:cc:dd:ee:ff:00:11\"}"
        "],\"cursor\":1}",
        "{\"lines\":[],\"cursor\":99999999999999999999999}",
    };
    char big[CMS_MAX_PRINCIPAL + 64], why[300];
    struct cms_dyn_line *v = NULL;
    size_t n = 0;
    int64_t cursor = 0;
    bool full = false;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        if (cms_prov_lines_parse(bad[i], strlen(bad[i]), &v, &n, &cursor, &full, why,
                                 sizeof(why)) == 0) {
            printf("# accepted: %s\n", bad[i]);
            CHECK(0);
        }
        CHECK(v == NULL && n == 0);
        CHECK(why[0] != '\0');
    }
    /* A principal longer than the controller keeps. */
    snprintf(big, sizeof(big), "{\"lines\":[{\"number\":\"1\",\"principal\":\"%0*d\"}],"
             "\"cursor\":1}", CMS_MAX_PRINCIPAL, 7);
    CHECK(cms_prov_lines_parse(big, strlen(big), &v, &n, &cursor, &full, why, sizeof(why)) != 0);
    CHECK(strstr(why, "lines[0].principal") != NULL);
    /* The field is named. */
    CHECK(cms_prov_lines_parse(bad[9], strlen(bad[9]), &v, &n, &cursor, &full, why,
                               sizeof(why)) != 0);
    CHECK(strstr(why, "lines[0].number") != NULL);
    /* A good one. */
    {
        const char *ok = "{\"lines\":[{\"number\":\"15550100000\",\"principal\":\"mta-001122334455@R\","
                         "\"mac\":\"00:11:22:33:44:55\",\"state\":\"provisioned\"},"
                         "{\"number\":\"15550100001\",\"principal\":\"mta-001122334466@R\"}],"
                         "\"removed\":[],\"cursor\":42,\"full\":true}";
        CHECK_OK(cms_prov_lines_parse(ok, strlen(ok), &v, &n, &cursor, &full, why, sizeof(why)));
        CHECK_INT_EQ(n, 2);
        CHECK_INT_EQ(cursor, 42);
        CHECK(full);
        CHECK(strcmp(v[0].mac, "001122334455") == 0);
        CHECK(strcmp(v[1].mac, "") == 0);
        CHECK(strcmp(v[1].principal, "mta-001122334466@R") == 0);
        free(v);
    }
}

static void
test_lines_poll(void)
{
    struct fake f = {.now = 1000, .advance = 25000};
    struct cms_config cfg;
    struct cms_call_core *core = NULL;
    struct cms_call_io io;
    struct cms_prov *p;
    struct cms_prov_stats st;

    cms_config_init(&cfg);
    CHECK_OK(w_add_line(&cfg, "5551001", "mta/static@R", "", false));
    memset(&io, 0, sizeof(io));
    CHECK_OK(cms_call_core_new(&cfg, "cms@test", &io, &core));
    script(&f, 0, 200, "{\"lines\":[{\"number\":\"5551777\",\"principal\":\"mta-00000000d001@R\"},"
                       "{\"number\":\"5551001\",\"principal\":\"mta-00000000d002@R\"}],"
                       "\"removed\":[],\"cursor\":7,\"full\":true}");
    script(&f, 0, 200, "{\"lines\":[],\"removed\":[],\"cursor\":7,\"full\":false}");
    script(&f, 0, 200, "{\"lines\":[{\"number\":\"5551777\",\"principal\":\"mta-00000000d001@R\"}"
                       "],\"cursor\":9,\"full\":true}");
    script(&f, 0, 200, "{\"lines\":[{\"number\":\"5551888\",\"principal\":\"mta-00000000d003@R\"}"
                       "],\"cursor\":12,\"full\":true}");
    script(&f, 0, 403, "{\"error\":{\"code\":\"forbidden\"}}");
    script(&f, 0, 200, "{\"lines\":[{\"number\":\"x\"}],\"cursor\":13,\"full\":true}");
    script(&f, -1, 0, NULL);
    script(&f, 0, 200, "{\"lines\":[],\"cursor\":14,\"full\":true}");
    CHECK((p = new_client(&f, 8, core)) != NULL);
    /* The first poll: the full table at once (after=0, wait=0). */
    CHECK_INT_EQ(cms_prov_lines_step(p), 0);
    CHECK(strcmp(f.path[0], "/api/v1/lines?after=0&wait=0") == 0);
    CHECK(cms_call_is_party(core, "mta-00000000d001@R"));
    /* 5551001 is a static line's: the static line wins, the device is no party. */
    CHECK(!cms_call_is_party(core, "mta-00000000d002@R"));
    CHECK(cms_call_is_party(core, "mta/static@R"));
    CHECK_INT_EQ(cms_call_dynamic_lines(core), 1);
    /* Nothing new (after the 25 s wait): the table stays, the cursor too. */
    CHECK_INT_EQ(cms_prov_lines_step(p), 0);
    CHECK(strcmp(f.path[1], "/api/v1/lines?after=7&wait=25") == 0);
    CHECK_INT_EQ(cms_call_dynamic_lines(core), 1);
    /* The same snapshot with a new cursor: no change. */
    CHECK_INT_EQ(cms_prov_lines_step(p), 0);
    CHECK(cms_call_is_party(core, "mta-00000000d001@R"));
    /* Deprovisioned one, provisioned another: both at once. */
    CHECK_INT_EQ(cms_prov_lines_step(p), 0);
    CHECK(!cms_call_is_party(core, "mta-00000000d001@R"));
    CHECK(cms_call_is_party(core, "mta-00000000d003@R"));
    cms_prov_get_stats(p, &st);
    CHECK_INT_EQ(st.cursor, 12);
    CHECK_INT_EQ(st.lines_added, 2);
    CHECK_INT_EQ(st.lines_removed, 1);
    /* 403, then a hostile answer, then no answer: back off, the table is kept. */
    CHECK_INT_EQ(cms_prov_lines_step(p), 1000);
    CHECK_INT_EQ(cms_prov_lines_step(p), 2000);
    CHECK_INT_EQ(cms_prov_lines_step(p), 4000);
    CHECK(cms_call_is_party(core, "mta-00000000d003@R"));
    cms_prov_get_stats(p, &st);
    CHECK_INT_EQ(st.cursor, 12);
    CHECK_INT_EQ(st.poll_errors, 3);
    /* An empty table answered: every dynamic line goes. */
    CHECK_INT_EQ(cms_prov_lines_step(p), 0);
    CHECK(!cms_call_is_party(core, "mta-00000000d003@R"));
    CHECK_INT_EQ(cms_call_dynamic_lines(core), 0);
    /* A server that answers "nothing new" at once is not polled in a tight loop. */
    f.advance = 0;
    f.n_script = 0;
    f.calls = 0;
    script(&f, 0, 200, "{\"lines\":[],\"cursor\":14,\"full\":false}");
    CHECK_INT_EQ(cms_prov_lines_step(p), 1000);
    cms_prov_free(p);
    cms_call_core_free(core);
    cms_config_free(&cfg);
}

/* ---- the call core: dynamic lines and guests -------------------------------------------- */

enum { A = 0, A2 = 1, GW = 2, B = 3, D = 4, G = 5 };

static struct world w;

static void
rsip(int p)
{
    char text[128];
    int n = snprintf(text, sizeof(text), "RSIP %u aaln/1@%s MGCP 1.0 NCS 1.0\r\n",
                     w.ph[p].next_txid++, w.ph[p].name);

    w_phone_send(&w, p, text, (size_t)n);
    w_pump(&w);
}

static void
hangup_all(void)
{
    for (int p = 0; p < (int)w.n_ph; p++)
        if (p != GW)
            w_ntfy(&w, p, "hu");
    w_pump(&w);
    w.now += 60000;
    w_run_until(&w, w.now + 1000);
}

/* 5551777 for device d; 5551001, a static line's number, for another device. */
static void
fill(struct cms_dyn_line v[2])
{
    memset(v, 0, 2 * sizeof(*v));
    ck_strlcpy(v[0].number, "5551777", sizeof(v[0].number));
    ck_strlcpy(v[0].principal, "mta-00000000d001@R", sizeof(v[0].principal));
    ck_strlcpy(v[0].mac, "00000000d001", sizeof(v[0].mac));
    ck_strlcpy(v[1].number, "5551001", sizeof(v[1].number));
    ck_strlcpy(v[1].principal, "mta-00000000d009@R", sizeof(v[1].principal));
}

static void
test_dynamic_line_routed_and_removed(void)
{
    struct cms_dyn_line v[2];
    size_t added = 0, removed = 0;

    CHECK_OK(w_init(&w, false, false, 500, 4));
    w_phone_init(&w, "d", "mta-00000000d001@R", "5551777", 0, 0x1005, 40030);
    CHECK(!cms_call_is_party(w.core[0], "mta-00000000d001@R"));
    fill(v);
    CHECK_OK(cms_call_set_dynamic_lines(w.core[0], v, 2, &added, &removed));
    CHECK_INT_EQ(added, 1);
    CHECK_INT_EQ(removed, 0);
    CHECK(cms_call_is_party(w.core[0], "mta-00000000d001@R"));
    rsip(D);
    /* A calls the new number: routed to the device. */
    CHECK_OK(w_dial(&w, A, "5551777"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[D].crcx, 1);
    hangup_all();
    /* A call to the static number still reaches the static line. */
    CHECK_OK(w_dial(&w, A2, "5551001"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A].crcx, 2);
    hangup_all();
    /* The same snapshot again: nothing changes. */
    fill(v);
    CHECK_OK(cms_call_set_dynamic_lines(w.core[0], v, 2, &added, &removed));
    CHECK_INT_EQ(added + removed, 0);
    /* Deprovisioned: the number stops routing at once. */
    fill(v);
    CHECK_OK(cms_call_set_dynamic_lines(w.core[0], v + 1, 1, &added, &removed));
    CHECK_INT_EQ(removed, 1);
    CHECK(!cms_call_is_party(w.core[0], "mta-00000000d001@R"));
    CHECK_OK(w_dial(&w, A, "5551777"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[D].crcx, 1);
    CHECK(strcmp(w.ph[A].last_reason, "unknown-number") == 0);
    hangup_all();
    /* Provisioned again (the slot is reused). */
    fill(v);
    CHECK_OK(cms_call_set_dynamic_lines(w.core[0], v, 1, &added, &removed));
    CHECK_INT_EQ(added, 1);
    rsip(D);
    CHECK_OK(w_dial(&w, A, "5551777"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[D].crcx, 2);
    hangup_all();
    w_fini(&w);
}

static void
test_guest_calls_csr_only(void)
{
    ck_ad_restricted r;
    struct cms_call_stats st;
    struct cms_dyn_line v;
    size_t added, removed;

    CHECK_OK(w_init(&w, false, false, 500, 4));
    w_phone_init(&w, "d", "mta-00000000d001@R", "5551777", 0, 0x1005, 40030);
    w_phone_init(&w, "g", "mta-0011223344cc@R", "", 0, 0x1006, 40040);
    memset(&r, 0, sizeof(r));
    memcpy(r.mac, "\x00\x11\x22\x33\x44\xcc", 6);
    r.n_numbers = 2;
    ck_strlcpy(r.numbers[0], "5551002", sizeof(r.numbers[0]));
    ck_strlcpy(r.numbers[1], "911", sizeof(r.numbers[1]));
    /* Not a party by name alone; with a restricted SA under an unprovisioned name, yes. */
    CHECK(!cms_call_is_party(w.core[0], "mta-0011223344cc@R"));
    CHECK(cms_call_is_party_sa(w.core[0], "mta-0011223344cc@R", true));
    CHECK(!cms_call_is_party_sa(w.core[0], "mta-0011223344cc@R", false));
    CHECK(!cms_call_is_party_sa(w.core[0], "mta/other@R", true));
    CHECK(!cms_call_is_party_sa(w.core[0], "mta-0011223344CC@R", true));
    CHECK(!cms_call_is_party_sa(w.core[0], "mta-0011223344cc@", true));
    cms_call_set_restriction(w.core[0], "mta-0011223344cc@R", &r);
    CHECK(cms_call_is_party(w.core[0], "mta-0011223344cc@R"));
    rsip(G);
    /* The CSR's number: routed, the caller id is the MAC. */
    CHECK_OK(w_dial(&w, G, "5551002"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A2].crcx, 1);
    hangup_all();
    CHECK_INT_EQ(w_log_count(&w, 0, "from 0011223344cc to 5551002"), 1);
    /* Any other number: refused as unknown. */
    CHECK_OK(w_dial(&w, G, "5551001"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A].crcx, 0);
    CHECK(strcmp(w.ph[G].last_reason, "unknown-number") == 0);
    cms_call_get_stats(w.core[0], &st);
    CHECK_INT_EQ(st.restricted_refused, 1);
    hangup_all();
    /* Provisioned: the guest gives way to its line, reachable at once (no new RSIP). */
    memset(&v, 0, sizeof(v));
    ck_strlcpy(v.number, "5551999", sizeof(v.number));
    ck_strlcpy(v.principal, "mta-0011223344cc@R", sizeof(v.principal));
    CHECK_OK(cms_call_set_dynamic_lines(w.core[0], &v, 1, &added, &removed));
    CHECK_INT_EQ(added, 1);
    CHECK_INT_EQ(w.ph[G].crcx, 1);               /* its own side of the CSR call */
    CHECK_OK(w_dial(&w, A, "5551999"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[G].crcx, 2);
    hangup_all();
    /* Still on its restricted ticket until it reboots: the CSR only. */
    CHECK_INT_EQ(w.ph[A].crcx, 1);
    CHECK_OK(w_dial(&w, G, "5551001"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A].crcx, 1);
    hangup_all();
    CHECK_OK(w_dial(&w, G, "5551999"));
    w_pump(&w);
    hangup_all();
    /* An unrestricted SA without a line ends a guest. */
    cms_call_set_restriction(w.core[0], "mta-00000000d001@R", &r);
    CHECK(cms_call_is_party(w.core[0], "mta-00000000d001@R"));
    cms_call_set_restriction(w.core[0], "mta-00000000d001@R", NULL);
    CHECK(!cms_call_is_party(w.core[0], "mta-00000000d001@R"));
    w_fini(&w);
}

/* Many learnt lines: the index grows, removed slots are reused, lookups stay exact. */
static void
test_many_dynamic_lines(void)
{
    enum { N = 5000 };
    struct cms_config cfg;
    struct cms_call_core *core = NULL;
    struct cms_call_io io;
    struct cms_dyn_line *v = calloc(N, sizeof(*v));
    size_t added, removed, k;
    char name[64];

    CHECK(v != NULL);
    /* 12,500 "prov line" notices are not worth reading. */
    ck_log_open("test", CK_LOG_STDERR, NULL, LOG_WARNING);
    cms_config_init(&cfg);
    CHECK_OK(w_add_line(&cfg, "5551001", "mta/static@R", "", false));
    memset(&io, 0, sizeof(io));
    CHECK_OK(cms_call_core_new(&cfg, "cms@test", &io, &core));
    for (size_t i = 0; i < N; i++) {
        snprintf(v[i].number, sizeof(v[i].number), "56%05zu", i);
        snprintf(v[i].principal, sizeof(v[i].principal), "mta-%012zx@R", i);
    }
    CHECK_OK(cms_call_set_dynamic_lines(core, v, N, &added, &removed));
    CHECK_INT_EQ(added, N);
    CHECK_INT_EQ(cms_call_dynamic_lines(core), N);
    for (size_t i = 0; i < N; i += 97) {
        snprintf(name, sizeof(name), "mta-%012zx@R", i);
        CHECK(cms_call_is_party(core, name));
    }
    /* Keep the even ones. */
    for (size_t i = k = 0; i < N; i++) {
        snprintf(v[k].number, sizeof(v[k].number), "56%05zu", i);
        snprintf(v[k].principal, sizeof(v[k].principal), "mta-%012zx@R", i);
        if (i % 2 == 0)
            k++;
    }
    CHECK_OK(cms_call_set_dynamic_lines(core, v, k, &added, &removed));
    CHECK_INT_EQ(added, 0);
    CHECK_INT_EQ(removed, N / 2);
    for (size_t i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "mta-%012zx@R", i);
        CHECK(cms_call_is_party(core, name) == (i % 2 == 0));
    }
    /* New devices take the freed slots. */
    for (size_t i = 0; i < N / 2; i++) {
        snprintf(v[k + i].number, sizeof(v[k + i].number), "57%05zu", i);
        snprintf(v[k + i].principal, sizeof(v[k + i].principal), "mta-%012zx@R", i + N);
    }
    CHECK_OK(cms_call_set_dynamic_lines(core, v, k + N / 2, &added, &removed));
    CHECK_INT_EQ(added, N / 2);
    CHECK_INT_EQ(removed, 0);
    CHECK_INT_EQ(cms_call_dynamic_lines(core), N);
    snprintf(name, sizeof(name), "mta-%012zx@R", (size_t)N + 17);
    CHECK(cms_call_is_party(core, name));
    CHECK(!cms_call_is_party(core, "mta-000000000001@R"));
    CHECK(cms_call_is_party(core, "mta/static@R"));
    free(v);
    cms_call_core_free(core);
    cms_config_free(&cfg);
    ck_log_open("test", CK_LOG_STDERR, NULL, LOG_INFO);
}

CK_TEST_MAIN("cms_provclient", CK_TEST_CASE(test_many_dynamic_lines), CK_TEST_CASE(test_report_coalesced_and_sent),
             CK_TEST_CASE(test_report_backoff), CK_TEST_CASE(test_report_bounded_and_refused),
             CK_TEST_CASE(test_lines_parse_hostile), CK_TEST_CASE(test_lines_poll),
             CK_TEST_CASE(test_dynamic_line_routed_and_removed),
             CK_TEST_CASE(test_guest_calls_csr_only))
