/* Service-key versioning (cablekey/rotation.h) through the store API and the engine on an
 * injected clock (SQLite; the backend ops themselves run on both backends in
 * test_store_conformance): policy validation, a staged rotation confirmed by two hosts with the
 * key-unconfirmed alarm naming the host missing (observed through a callback sink), krbtgt-style
 * confirm none with its settle time, purge after old_valid keeping keep_min, pause/resume/force,
 * two engines on one database (one stage), and the step hook the KDC's crash points use. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ck_test.h"
#include "store_fixture.h"
#include "cablekey/alarm.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/rotation.h"
#include "cablekey/store.h"
#include "cablekey/store_dump.h"
#include "cablekey/util.h"

#define REALM "ROT.TEST"
#define SVC "cms/cms1.rot.test@ROT.TEST"
#define TGT "krbtgt/ROT.TEST@ROT.TEST"

static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96};

static ck_store *
realm_up(void)
{
    ck_store *s;
    ck_db_principal *p;

    ck_log_set_level(LOG_CRIT);
    store_fixture_up("rotation", REALM, enctypes, 2);
    s = fixture_open(db);
    p = fixture_principal(SVC, NULL, 0, enctypes, 2);
    CHECK_OK(ck_store_create_principal(s, p));
    ck_db_principal_free(p);
    return s;
}

/* The longest ticket of the realm: what old_valid must cover. */
static int64_t
bound(ck_store *s)
{
    const ck_realm_info *r = ck_store_realm(s);

    return r->max_renew > r->max_life ? r->max_renew : r->max_life;
}

static ck_rotation_policy *
policy(ck_store *s, const char *name, enum ck_rot_confirm confirm, const char *h1,
       const char *h2)
{
    ck_rotation_policy *pol = calloc(1, sizeof(*pol));

    if (pol == NULL)
        abort();
    ck_strlcpy(pol->principal, name, sizeof(pol->principal));
    pol->period = 3600;
    pol->old_valid = bound(s);
    pol->confirm_timeout = 600;
    pol->settle = 60;
    pol->confirm = confirm;
    if (h1 != NULL)
        ck_strlcpy(pol->hosts[pol->n_hosts++], h1, CK_ROT_HOST_MAX);
    if (h2 != NULL)
        ck_strlcpy(pol->hosts[pol->n_hosts++], h2, CK_ROT_HOST_MAX);
    return pol;
}

static uint32_t
current_kvno(ck_store *s, const char *name, bool *has_kvno_1)
{
    ck_db_principal *p = NULL;
    uint32_t kvno = 0;

    CHECK_OK(ck_store_get_principal(s, name, &p));
    if (p != NULL) {
        kvno = p->kvno;
        if (has_kvno_1 != NULL)
            *has_kvno_1 = ck_db_principal_find_key(p, 1, enctypes[0]) != NULL;
    }
    ck_db_principal_free(p);
    return kvno;
}

static bool
has_key(ck_store *s, const char *name, uint32_t kvno)
{
    ck_db_principal *p = NULL;
    bool found;

    CHECK_OK(ck_store_get_principal(s, name, &p));
    found = ck_db_principal_find_key(p, kvno, enctypes[0]) != NULL &&
            ck_db_principal_find_key(p, kvno, enctypes[1]) != NULL;
    ck_db_principal_free(p);
    return found;
}

static ck_rotation_report
tick(ck_store *s, int64_t now, struct ck_alarm_mgr *m)
{
    ck_rotation_report r;

    CHECK_OK(ck_rotation_tick(s, now, m, &r));
    CHECK_INT_EQ(r.errors, 0);
    return r;
}

/* ---- the alarm sink ---- */

struct collector {
    pthread_mutex_t lock;
    int raised, cleared;
    char cause[CK_ALARM_CAUSE_MAX];
};

static int
collect(void *arg, const struct ck_alarm *a)
{
    struct collector *c = arg;

    pthread_mutex_lock(&c->lock);
    if (a->code == CK_ALARM_KEY_UNCONFIRMED && strcmp(a->subject, SVC) == 0) {
        if (a->cleared)
            c->cleared++;
        else
            c->raised++;
        ck_strlcpy(c->cause, a->cause, sizeof(c->cause));
    }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* Waits (bounded, no timing assertion) until the sink saw n raises and k clears. */
static bool
wait_for(struct ck_alarm_mgr *m, struct collector *c, int n, int k)
{
    for (int i = 0; i < 1000; i++) {
        bool done;

        pthread_mutex_lock(&c->lock);
        done = c->raised >= n && c->cleared >= k;
        pthread_mutex_unlock(&c->lock);
        if (done)
            return true;
        ck_alarm_mgr_kick(m);
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return false;
}

/* ---- cases ---- */

static void
policy_validation(void)
{
    ck_store *s = realm_up(), *ro = NULL;
    ck_rotation_policy *pol = policy(s, SVC, CK_ROT_CONFIRM_AGENT, "cms1.rot.test", NULL);
    ck_rotation_policy *got = calloc(1, sizeof(*got));
    ck_rotation_status *st = calloc(1, sizeof(*st));

    if (got == NULL || st == NULL)
        abort();
    CHECK_INT_EQ(ck_store_rotation_policy_get(s, SVC, got), CK_ERR_NOTFOUND);
    pol->period = CK_ROT_PERIOD_MIN - 1;
    CHECK_INT_EQ(ck_store_rotation_policy_set(s, pol), CK_ERR_INVAL);
    pol->period = 3600;
    pol->old_valid = bound(s) - 1; /* a ticket issued before activation would outlive its key */
    CHECK_INT_EQ(ck_store_rotation_policy_set(s, pol), CK_ERR_POLICY);
    pol->old_valid = bound(s);
    ck_strlcpy(pol->hosts[0], "a,b", CK_ROT_HOST_MAX);
    CHECK_INT_EQ(ck_store_rotation_policy_set(s, pol), CK_ERR_INVAL);
    ck_strlcpy(pol->hosts[0], "cms1.rot.test", CK_ROT_HOST_MAX);
    ck_strlcpy(pol->hosts[1], "cms1.rot.test", CK_ROT_HOST_MAX);
    pol->n_hosts = 2;
    CHECK_INT_EQ(ck_store_rotation_policy_set(s, pol), CK_ERR_INVAL); /* listed twice */
    pol->n_hosts = 1;
    pol->confirm = CK_ROT_CONFIRM_NONE;
    CHECK_INT_EQ(ck_store_rotation_policy_set(s, pol), CK_ERR_INVAL); /* hosts with none */
    pol->confirm = CK_ROT_CONFIRM_AGENT;
    pol->confirm = (enum ck_rot_confirm)7;
    CHECK_INT_EQ(ck_store_rotation_policy_set(s, pol), CK_ERR_INVAL);
    pol->confirm = CK_ROT_CONFIRM_AGENT;
    ck_strlcpy(pol->principal, "nobody@ROT.TEST", sizeof(pol->principal));
    CHECK_INT_EQ(ck_store_rotation_policy_set(s, pol), CK_ERR_NOTFOUND);
    ck_strlcpy(pol->principal, "svc@OTHER.REALM", sizeof(pol->principal));
    CHECK(ck_store_rotation_policy_set(s, pol) != 0);
    ck_strlcpy(pol->principal, SVC, sizeof(pol->principal));
    CHECK_OK(ck_store_rotation_policy_set(s, pol));
    CHECK_OK(ck_store_rotation_policy_get(s, SVC, got));
    CHECK(got->n_hosts == 1 && strcmp(got->hosts[0], "cms1.rot.test") == 0);
    CHECK_INT_EQ(got->old_valid, bound(s));

    /* Status: the current kvno's period counts from the policy (a key rotation never saw). */
    CHECK_OK(ck_store_rotation_status(s, SVC, st));
    CHECK(st->has_policy);
    CHECK_INT_EQ(st->current_kvno, 1);
    CHECK(st->n_kvnos == 1 && st->kvnos[0].activated > 0);
    CHECK_INT_EQ(st->next_due, st->kvnos[0].activated + 3600);

    /* Hostile confirmations. */
    CHECK_INT_EQ(ck_store_key_confirm(s, SVC, "", 1, 1), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_store_key_confirm(s, SVC, "bad host", 1, 1), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_store_key_confirm(s, SVC, "h\n", 1, 1), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_store_key_confirm(s, SVC, "h", 0, 1), CK_ERR_INVAL);

    CHECK_OK(ck_store_open(db, NULL, CK_STORE_READONLY, &ro));
    CHECK_INT_EQ(ck_store_rotation_policy_set(ro, pol), CK_ERR_PERM);
    CHECK_INT_EQ(ck_store_rotation_pause(ro, SVC, true), CK_ERR_PERM);
    ck_store_close(ro);
    CHECK_OK(ck_store_rotation_policy_del(s, SVC));
    CHECK_INT_EQ(ck_store_rotation_policy_del(s, SVC), CK_ERR_NOTFOUND);
    free(pol);
    free(got);
    free(st);
    ck_store_close(s);
    fixture_down();
}

static void
staged_rotation_with_agents(void)
{
    ck_store *s = realm_up();
    ck_rotation_policy *pol = policy(s, SVC, CK_ROT_CONFIRM_AGENT, "cms1.rot.test",
                                     "cms2.rot.test");
    ck_rotation_status *st = calloc(1, sizeof(*st));
    struct collector c = {.raised = 0};
    struct ck_alarm_conf conf = {0};
    struct ck_alarm_mgr *m = NULL;
    struct ck_alarm_sink sink;
    struct ck_alarm a;
    ck_rotation_report r;
    int64_t t0, act;
    bool old_kept = false;

    if (st == NULL)
        abort();
    pthread_mutex_init(&c.lock, NULL);
    conf.host = "kdc1.rot.test";
    conf.poll_ms = 10;
    CHECK_OK(ck_alarm_mgr_new(&conf, &m));
    ck_alarm_sink_callback(&sink, "table", collect, &c, NULL);
    CHECK_OK(ck_alarm_mgr_add_sink(m, &sink));
    CHECK_OK(ck_alarm_mgr_start(m));

    CHECK_OK(ck_store_rotation_policy_set(s, pol));
    CHECK_OK(ck_store_rotation_status(s, SVC, st));
    t0 = st->kvnos[0].activated;

    /* Before the period: nothing. */
    r = tick(s, t0 + 3599, m);
    CHECK_INT_EQ(r.staged + r.activated + r.purged + r.unconfirmed, 0);
    /* Due: kvno 2 is staged; kvno 1 stays current (new tickets), kvno 2 already decrypts. */
    r = tick(s, t0 + 3600, m);
    CHECK_INT_EQ(r.staged, 1);
    CHECK_INT_EQ(current_kvno(s, SVC, NULL), 1);
    CHECK(has_key(s, SVC, 2));
    r = tick(s, t0 + 3601, m);
    CHECK_INT_EQ(r.staged + r.activated, 0);

    /* One host confirms; the timeout passes: the alarm names the other one. */
    CHECK_OK(ck_store_key_confirm(s, SVC, "cms1.rot.test", 2, t0 + 3700));
    r = tick(s, t0 + 3600 + 599, m);
    CHECK_INT_EQ(r.unconfirmed + r.activated, 0);
    r = tick(s, t0 + 3600 + 600, m);
    CHECK_INT_EQ(r.unconfirmed, 1);
    CHECK_INT_EQ(r.activated, 0);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_KEY_UNCONFIRMED, SVC, &a));
    CHECK(strstr(a.cause, "cms2.rot.test") != NULL);
    CHECK(strstr(a.cause, "cms1.rot.test") == NULL);
    CHECK(!a.cleared);
    CHECK(wait_for(m, &c, 1, 0));
    pthread_mutex_lock(&c.lock);
    CHECK(strstr(c.cause, "cms2.rot.test") != NULL);
    pthread_mutex_unlock(&c.lock);
    CHECK_INT_EQ(current_kvno(s, SVC, NULL), 1);

    /* The second host confirms: activated, alarm cleared, kvno 1 kept for old tickets. */
    CHECK_OK(ck_store_key_confirm(s, SVC, "cms2.rot.test", 2, t0 + 5000));
    act = t0 + 5001;
    r = tick(s, act, m);
    CHECK_INT_EQ(r.activated, 1);
    CHECK_INT_EQ(current_kvno(s, SVC, &old_kept), 2);
    CHECK(old_kept);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_KEY_UNCONFIRMED, SVC, &a));
    CHECK(a.cleared);
    CHECK(wait_for(m, &c, 1, 1));

    /* Next period: kvno 3 (confirmed at once), then kvno 1 goes once its old_valid (and the
     * fleet grace) passed; kvno 2 stays as the newest retired one (keep 1). */
    r = tick(s, act + 3600, m);
    CHECK_INT_EQ(r.staged, 1);
    CHECK_OK(ck_store_key_confirm(s, SVC, "cms1.rot.test", 3, act + 3601));
    CHECK_OK(ck_store_key_confirm(s, SVC, "cms2.rot.test", 3, act + 3601));
    r = tick(s, act + 3602, m);
    CHECK_INT_EQ(r.activated, 1);
    CHECK_INT_EQ(current_kvno(s, SVC, NULL), 3);
    r = tick(s, act + pol->old_valid + CK_ROT_PURGE_GRACE - 1, m);
    CHECK_INT_EQ(r.purged, 0);
    CHECK(has_key(s, SVC, 1));
    r = tick(s, act + pol->old_valid + CK_ROT_PURGE_GRACE, m);
    CHECK_INT_EQ(r.purged, 1);
    CHECK(!has_key(s, SVC, 1));
    CHECK(has_key(s, SVC, 2) && has_key(s, SVC, 3));
    CHECK_OK(ck_store_rotation_status(s, SVC, st));
    /* kvno 4 was staged meanwhile (its period passed too). */
    CHECK(st->n_kvnos == 3 && st->kvnos[0].kvno == 4 && st->kvnos[1].kvno == 3 &&
          st->kvnos[2].kvno == 2);
    CHECK_INT_EQ(st->n_confirmations, 2);

    ck_alarm_mgr_free(m);
    pthread_mutex_destroy(&c.lock);
    free(pol);
    free(st);
    ck_store_close(s);
    fixture_down();
}

/* krbtgt: confirm none; the staged kvno becomes current after settle, the old one keeps
 * decrypting outstanding TGTs. */
static void
krbtgt_confirm_none(void)
{
    ck_store *s = realm_up();
    ck_rotation_policy *pol = policy(s, TGT, CK_ROT_CONFIRM_NONE, NULL, NULL);
    ck_rotation_status *st = calloc(1, sizeof(*st));
    ck_rotation_report r;
    int64_t t0;
    bool old_kept = false;

    if (st == NULL)
        abort();
    CHECK_OK(ck_store_rotation_policy_set(s, pol));
    CHECK_OK(ck_store_rotation_status(s, TGT, st));
    t0 = st->kvnos[0].activated;
    r = tick(s, t0 + 3600, NULL);
    CHECK_INT_EQ(r.staged, 1);
    CHECK_OK(ck_store_rotation_status(s, TGT, st));
    CHECK_INT_EQ(st->staged_kvno, st->current_kvno + 1);
    CHECK_INT_EQ(st->next_due, t0 + 3600 + 60);
    r = tick(s, t0 + 3600 + 59, NULL);
    CHECK_INT_EQ(r.activated, 0);
    r = tick(s, t0 + 3600 + 60, NULL);
    CHECK_INT_EQ(r.activated, 1);
    CHECK_INT_EQ(r.unconfirmed, 0);
    CHECK_INT_EQ(current_kvno(s, TGT, &old_kept), 2);
    CHECK(old_kept);
    free(pol);
    free(st);
    ck_store_close(s);
    fixture_down();
}

static void
pause_resume_force(void)
{
    ck_store *s = realm_up();
    ck_rotation_policy *pol = policy(s, SVC, CK_ROT_CONFIRM_AGENT, NULL, NULL);
    ck_rotation_status *st = calloc(1, sizeof(*st));
    ck_rotation_report r;
    int64_t t0;

    if (st == NULL)
        abort();
    CHECK_INT_EQ(ck_rotation_force(s, SVC, 1), CK_ERR_NOTFOUND); /* no policy */
    CHECK_OK(ck_store_rotation_policy_set(s, pol));
    CHECK_OK(ck_store_rotation_status(s, SVC, st));
    t0 = st->kvnos[0].activated;
    CHECK_OK(ck_store_rotation_pause(s, SVC, true));
    r = tick(s, t0 + 100000, NULL);
    CHECK_INT_EQ(r.staged, 0);
    CHECK_INT_EQ(ck_rotation_force(s, SVC, t0 + 100000), CK_ERR_POLICY);
    CHECK_OK(ck_store_rotation_status(s, SVC, st));
    CHECK(st->policy.paused);
    CHECK_INT_EQ(st->next_due, 0);
    CHECK_OK(ck_store_rotation_pause(s, SVC, false));
    CHECK_OK(ck_rotation_force(s, SVC, t0 + 10));
    CHECK(has_key(s, SVC, 2));
    CHECK_INT_EQ(ck_rotation_force(s, SVC, t0 + 11), CK_ERR_EXISTS);
    /* Confirm none named: any one host's confirmation activates. */
    r = tick(s, t0 + 20, NULL);
    CHECK_INT_EQ(r.activated, 0);
    CHECK_OK(ck_store_key_confirm(s, SVC, "any.rot.test", 2, t0 + 21));
    r = tick(s, t0 + 22, NULL);
    CHECK_INT_EQ(r.activated, 1);
    CHECK_INT_EQ(current_kvno(s, SVC, NULL), 2);
    /* Direct purge: keep_min protects the newest retired kvno whatever the time. */
    {
        size_t n = 9;

        CHECK_OK(ck_store_key_purge(s, SVC, 0, 1, t0 + 10000000, &n));
        CHECK_INT_EQ(n, 0);
        CHECK(has_key(s, SVC, 1));
    }
    free(pol);
    free(st);
    ck_store_close(s);
    fixture_down();
}

/* Two engines (two KDCs) on one database at the same moment: one stage, one activation. */
static void
two_engines(void)
{
    ck_store *s = realm_up(), *s2 = NULL;
    ck_rotation_policy *pol = policy(s, TGT, CK_ROT_CONFIRM_NONE, NULL, NULL);
    ck_rotation_status *st = calloc(1, sizeof(*st));
    ck_rotation_report r1, r2;
    int64_t t0;

    if (st == NULL)
        abort();
    s2 = fixture_open(db);
    CHECK_OK(ck_store_rotation_policy_set(s, pol));
    CHECK_OK(ck_store_rotation_status(s, TGT, st));
    t0 = st->kvnos[0].activated;
    r1 = tick(s, t0 + 3600, NULL);
    r2 = tick(s2, t0 + 3600, NULL);
    CHECK_INT_EQ(r1.staged + r2.staged, 1);
    r1 = tick(s2, t0 + 3700, NULL);
    r2 = tick(s, t0 + 3700, NULL);
    CHECK_INT_EQ(r1.activated + r2.activated, 1);
    CHECK_INT_EQ(current_kvno(s, TGT, NULL), 2);
    CHECK_INT_EQ(current_kvno(s2, TGT, NULL), 2);
    ck_store_close(s2);
    free(pol);
    free(st);
    ck_store_close(s);
    fixture_down();
}

static char steps[256];

static void
hook(const char *step, const char *principal, uint32_t kvno, void *arg)
{
    size_t n = strlen(steps);

    (void)arg;
    (void)principal;
    snprintf(steps + n, sizeof(steps) - n, "%s:%u;", step, kvno);
}

static void
step_hook(void)
{
    ck_store *s = realm_up();
    ck_rotation_policy *pol = policy(s, TGT, CK_ROT_CONFIRM_NONE, NULL, NULL);
    ck_rotation_status *st = calloc(1, sizeof(*st));
    int64_t t0;

    if (st == NULL)
        abort();
    steps[0] = '\0';
    ck_rotation_set_hook(hook, NULL);
    pol->keep_min = 1;
    CHECK_OK(ck_store_rotation_policy_set(s, pol));
    CHECK_OK(ck_store_rotation_status(s, TGT, st));
    t0 = st->kvnos[0].activated;
    (void)tick(s, t0 + 3600, NULL);
    (void)tick(s, t0 + 3660, NULL);
    (void)tick(s, t0 + 7260, NULL);
    (void)tick(s, t0 + 7320, NULL);
    (void)tick(s, t0 + 7320 + pol->old_valid + CK_ROT_PURGE_GRACE, NULL);
    ck_rotation_set_hook(NULL, NULL);
    CHECK(strcmp(steps, "stage:2;activate:2;stage:3;activate:3;purge:3;stage:4;") == 0);
    if (strcmp(steps, "stage:2;activate:2;stage:3;activate:3;purge:3;stage:4;") != 0)
        printf("  # steps %s\n", steps);
    free(pol);
    free(st);
    ck_store_close(s);
    fixture_down();
}

/* A dump taken while a kvno is staged loads, staged kvno included (the keys are carried; the
 * rotation tables are not part of the dump format). */
static void
dump_with_staged_kvno(void)
{
    ck_store *s = realm_up(), *s2 = NULL;
    ck_rotation_policy *pol = policy(s, SVC, CK_ROT_CONFIRM_AGENT, NULL, NULL);
    char out[200], db2[200];
    FILE *f;

    CHECK_OK(ck_store_rotation_policy_set(s, pol));
    CHECK_OK(ck_rotation_force(s, SVC, 1800000000));
    snprintf(out, sizeof(out), "%s/dump.txt", dir);
    snprintf(db2, sizeof(db2), "%s/loaded.db", dir);
    if ((f = fopen(out, "w")) == NULL)
        abort();
    CHECK_OK(ck_store_dump(s, f, NULL));
    fclose(f);
    CHECK_OK(ck_store_load(db2, stash, out, "tester", NULL));
    CHECK_OK(ck_store_open(db2, stash, 0, &s2));
    if (s2 != NULL) {
        CHECK_INT_EQ(current_kvno(s2, SVC, NULL), 1);
        CHECK(has_key(s2, SVC, 2));
        ck_store_close(s2);
    }
    free(pol);
    ck_store_close(s);
    fixture_down();
}

CK_TEST_MAIN("rotation", CK_TEST_CASE(policy_validation), CK_TEST_CASE(staged_rotation_with_agents),
             CK_TEST_CASE(krbtgt_confirm_none), CK_TEST_CASE(pause_resume_force),
             CK_TEST_CASE(two_engines), CK_TEST_CASE(step_hook),
             CK_TEST_CASE(dump_with_staged_kvno))
