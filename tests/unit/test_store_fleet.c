/* The KDC fleet's cache behaviour (k9fleet; docs/fleet.md).
 *
 * Part one drives a record cache (lib/store/cache.c) through a scripted source on an injected
 * clock: pushed notices are read at once, an unreachable database is retried on a doubling
 * backoff and never per lookup, cached records are served for at most the staleness limit and
 * refused after it, and the feed catches up when the database answers again.
 *
 * Part two runs against a throw-away PostgreSQL (this binary re-executes itself through
 * interop/pg_run.sh, as test_store_conformance does; a missing server fails the run): a change
 * made through one connection reaches another store's principal cache by LISTEN/NOTIFY with the
 * poll interval set to an hour; a database that refuses connections is ridden out from the
 * cache, refused past the limit, and recovered from without reopening anything; and a KDC worker
 * raises the alarm db-unreachable once and clears it on recovery. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ck_test.h"
#include "cablekey/alarm.h"
#include "cablekey/profile.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "config.h"
#include "kdc.h"
#include "kdc_int.h"
#include "store/store_int.h"

/* ---- part one: a scripted source ---- */

static int64_t fake_now = 1000000;

static int64_t
fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

struct script {
    bool down;           /* every call fails with CK_ERR_DB */
    bool notice;         /* a pushed notice is pending */
    uint64_t gen;        /* the database's counter */
    const char *changed; /* the key the last counter bump changed */
    int fail;            /* the feed fails with this (not a connection error) */
    int loads, feeds, waits;
};

static int
s_load(void *ctx, const char *key, void **rec)
{
    struct script *s = ctx;

    s->loads++;
    *rec = NULL;
    if (s->down)
        return ck_error_set(CK_ERR_DB, "scripted outage");
    if (strcmp(key, "absent") == 0)
        return CK_ERR_NOTFOUND;
    *rec = strdup(key);
    return *rec != NULL ? 0 : CK_ERR_NOMEM;
}

static void
s_free(void *rec)
{
    free(rec);
}

static int
s_generation(void *ctx, uint64_t *gen)
{
    struct script *s = ctx;

    s->feeds++;
    if (s->down)
        return ck_error_set(CK_ERR_DB, "scripted outage");
    *gen = s->gen;
    return 0;
}

static int
s_changes(void *ctx, uint64_t since, uint64_t *current, ck_store_change_cb cb, void *arg)
{
    struct script *s = ctx;

    s->feeds++;
    if (s->down)
        return ck_error_set(CK_ERR_DB, "scripted outage");
    if (s->fail != 0)
        return ck_error_set(s->fail, "scripted feed failure");
    *current = s->gen;
    if (s->gen != since)
        cb(s->changed != NULL ? CK_CHANGE_PRINCIPAL : CK_CHANGE_ALL, s->changed, arg);
    return 0;
}

static int
s_wait(void *ctx, int timeout_ms, bool *changed)
{
    struct script *s = ctx;

    (void)timeout_ms;
    s->waits++;
    *changed = false;
    if (s->down)
        return ck_error_set(CK_ERR_DB, "scripted outage");
    *changed = s->notice;
    s->notice = false;
    return 0;
}

static struct ck_store_cache cache;
static struct ck_cache_contact contact;
static struct script S;

static void
scripted_cache(bool push, int64_t check_ms, int64_t max_stale_ms)
{
    struct ck_cache_source src = {
        .ctx = &S, .load = s_load, .free_rec = s_free, .generation = s_generation,
        .changes = s_changes, .wait_change = push ? s_wait : NULL, .contact = &contact,
    };

    memset(&S, 0, sizeof(S));
    S.gen = 5;
    fake_now = 1000000;
    ck_cache_contact_init(&contact);
    contact.now_ms = fake_clock;
    contact.last_ok_ms = fake_now;
    contact.max_stale_ms = max_stale_ms;
    contact.backoff_min_ms = 100;
    contact.backoff_max_ms = 1000;
    if (ck_store_cache_init(&cache, CK_CHANGE_PRINCIPAL, &src, 100) != 0)
        abort();
    cache.check_ms = check_ms;
    ck_store_cache_check_now(&cache); /* learns the counter */
}

static void
scripted_done(void)
{
    ck_store_cache_destroy(&cache);
}

/* The record under key as the cache returns it, or NULL with the result in *rc. */
static const char *
get(const char *key, int *rc)
{
    void *rec = NULL;

    *rc = ck_store_cache_lookup(&cache, key, strlen(key), &rec);
    return rec;
}

/* A pushed notice is read at the next check although the interval has not passed; without one
 * the feed is not read before the interval. */
static void
push_read_at_once(void)
{
    const char *r;
    int rc, feeds;

    scripted_cache(true, 3600 * 1000, 300000);
    r = get("alice", &rc);
    CHECK(r != NULL && strcmp(r, "alice") == 0);
    CHECK_INT_EQ(S.loads, 1);
    fake_now += 10;
    feeds = S.feeds;
    ck_store_cache_release(&cache);
    ck_store_cache_check(&cache);
    CHECK_INT_EQ(S.feeds, feeds); /* no notice, interval not reached: nothing read */
    CHECK(S.waits > 0);
    S.gen++;
    S.changed = "alice";
    S.notice = true;
    ck_store_cache_release(&cache);
    ck_store_cache_check(&cache);
    CHECK_INT_EQ(S.feeds, feeds); /* drained at most every CK_STORE_CACHE_PUSH_MS */
    fake_now += CK_STORE_CACHE_PUSH_MS;
    ck_store_cache_check(&cache);
    CHECK_INT_EQ(S.feeds, feeds + 1);
    r = get("alice", &rc);
    CHECK_INT_EQ(S.loads, 2); /* invalidated by the pushed change, loaded again */
    r = get("alice", &rc);
    CHECK_INT_EQ(S.loads, 2);
    scripted_done();
}

/* Without push (SQLite) the same change waits for the interval. */
static void
poll_waits_for_interval(void)
{
    int rc;

    scripted_cache(false, 200, 300000);
    (void)get("alice", &rc);
    S.gen++;
    S.changed = "alice";
    fake_now += 100;
    ck_store_cache_check(&cache);
    (void)get("alice", &rc);
    CHECK_INT_EQ(S.loads, 1); /* still the cached record */
    fake_now += 100;
    ck_store_cache_release(&cache);
    ck_store_cache_check(&cache);
    (void)get("alice", &rc);
    CHECK_INT_EQ(S.loads, 2);
    CHECK_INT_EQ(S.waits, 0);
    scripted_done();
}

/* The outage: cached records are served until the limit, then refused; an uncached one fails at
 * once without a call to the database between attempts. */
static void
outage_serves_then_refuses(void)
{
    const char *r;
    int rc, loads;

    scripted_cache(true, 200, 5000);
    (void)get("alice", &rc);
    (void)get("absent", &rc);
    CHECK_INT_EQ(rc, CK_ERR_NOTFOUND);
    S.down = true;
    fake_now += 200;
    ck_store_cache_check(&cache);
    CHECK(contact.down);
    r = get("alice", &rc);
    CHECK(r != NULL && rc == 0);
    (void)get("absent", &rc);
    CHECK_INT_EQ(rc, CK_ERR_NOTFOUND); /* the negative entry is served too */
    /* The first failure allows one immediate retry (a blip); it fails and starts the backoff. */
    loads = S.loads;
    (void)get("bob", &rc);
    CHECK_INT_EQ(rc, CK_ERR_DB);
    CHECK_INT_EQ(S.loads, loads + 1);
    for (int i = 0; i < 50; i++) {
        (void)get("bob", &rc);
        CHECK_INT_EQ(rc, CK_ERR_DB);
    }
    CHECK_INT_EQ(S.loads, loads + 1); /* no query per request while backing off */
    CHECK(strstr(ck_error_context(), "not cached") != NULL);
    /* Just within the limit (5 s after the last contact): still served. */
    fake_now = contact.last_ok_ms + 5000;
    r = get("alice", &rc);
    CHECK(r != NULL && rc == 0);
    fake_now += 1;
    r = get("alice", &rc);
    CHECK(r == NULL);
    CHECK_INT_EQ(rc, CK_ERR_DB);
    CHECK(strstr(ck_error_context(), "cached records not served") != NULL);
    CHECK(!ck_cache_contact_serving(&contact, fake_now));
    scripted_done();
}

/* Reconnection attempts follow 0 (one retry), 100, 200, 400, 800, 1000, 1000 ms, driven by the
 * idle step, which says when it is due again. An attempt is one call to the source (the push
 * connection's or the feed's). */
static void
backoff_schedule(void)
{
    static const int64_t expect[] = {100, 200, 400, 800, 1000, 1000};
    int64_t wait;
    int calls;

    scripted_cache(true, 200, 300000);
    S.down = true;
    fake_now += 200;
    (void)ck_store_cache_poll(&cache); /* first failure */
    CHECK(contact.down);
    CHECK_INT_EQ(contact.backoff_ms, 0);
    calls = S.feeds + S.waits;
    (void)ck_store_cache_poll(&cache); /* the immediate retry: second failure */
    CHECK_INT_EQ(S.feeds + S.waits, calls + 1);
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        CHECK_INT_EQ(contact.backoff_ms, expect[i]);
        calls = S.feeds + S.waits;
        wait = ck_store_cache_poll(&cache);
        CHECK_INT_EQ(S.feeds + S.waits, calls); /* not yet */
        CHECK_INT_EQ(wait, expect[i]);
        fake_now += wait - 1;
        (void)ck_store_cache_poll(&cache);
        ck_store_cache_check(&cache);
        CHECK_INT_EQ(S.feeds + S.waits, calls);
        fake_now += 1;
        (void)ck_store_cache_poll(&cache);
        CHECK_INT_EQ(S.feeds + S.waits, calls + 1); /* exactly one attempt when due */
    }
    CHECK_INT_EQ(contact.failures, 8);
    scripted_done();
}

/* Back: one recovery, the change made during the outage is applied from the feed. */
static void
recovery_catches_up(void)
{
    int rc;

    scripted_cache(false, 200, 300000);
    (void)get("alice", &rc);
    (void)get("carol", &rc);
    S.down = true;
    fake_now += 200;
    ck_store_cache_check(&cache);
    S.gen++;
    S.changed = "alice"; /* made elsewhere while we could not see it */
    fake_now += 5000;
    S.down = false;
    ck_store_cache_release(&cache);
    ck_store_cache_check(&cache);
    CHECK(!contact.down);
    CHECK_INT_EQ(contact.recoveries, 1);
    CHECK_INT_EQ(contact.last_ok_ms, fake_now);
    CHECK_INT_EQ(S.loads, 2);
    (void)get("alice", &rc);
    CHECK_INT_EQ(S.loads, 3); /* alice re-read */
    (void)get("carol", &rc);
    CHECK_INT_EQ(S.loads, 3); /* carol still cached */
    scripted_done();
}

/* db_max_staleness 0: nothing is served once the database is unreachable. */
static void
staleness_zero(void)
{
    int rc;

    scripted_cache(true, 200, 0);
    (void)get("alice", &rc);
    CHECK_INT_EQ(rc, 0);
    S.down = true;
    fake_now += 200;
    ck_store_cache_check(&cache);
    (void)get("alice", &rc);
    CHECK_INT_EQ(rc, CK_ERR_DB);
    scripted_done();
}

/* A feed that fails for another reason than the connection (a refused query) is no outage: the
 * cache empties and reads through, as before. */
static void
feed_error_not_outage(void)
{
    int rc;

    scripted_cache(false, 0, 300000);
    (void)get("alice", &rc);
    S.fail = CK_ERR_INTEGRITY;
    ck_store_cache_release(&cache);
    ck_store_cache_check(&cache);
    CHECK(!contact.down);
    CHECK(!cache.generation_known);
    (void)get("alice", &rc);
    CHECK_INT_EQ(S.loads, 2); /* read through */
    S.fail = 0;
    ck_store_cache_release(&cache);
    ck_store_cache_check(&cache);
    CHECK(cache.generation_known);
    scripted_done();
}

/* db_max_staleness in kdc.conf: a duration in [kdcdefaults] or a realm (the realm's wins), 0
 * meaning "never serve stale" (stored as -1: 0 in kdc_config is the default), bad values named. */
static int
conf_staleness(const char *text, int64_t *ms)
{
    struct kdc_daemon_config dc;
    struct ck_profile *p = NULL;
    int rc;

    kdc_daemon_config_init(&dc);
    if ((rc = ck_profile_parse_string(text, "t.conf", &p)) == 0)
        rc = kdc_daemon_config_load(&dc, p, NULL);
    *ms = dc.kdc.db_max_staleness_ms;
    ck_profile_free(p);
    kdc_daemon_config_free(&dc);
    return rc;
}

static void
config_db_max_staleness(void)
{
    int64_t ms = 1;

    CHECK_OK(conf_staleness("[realms]\nA.TEST = {\n}\n", &ms));
    CHECK_INT_EQ(ms, 0);
    CHECK_OK(conf_staleness("[kdcdefaults]\ndb_max_staleness = 2m\n", &ms));
    CHECK_INT_EQ(ms, 120000);
    CHECK_OK(conf_staleness("[kdcdefaults]\ndb_max_staleness = 2m\n[realms]\nA.TEST = {\n"
                            "db_max_staleness = 30\n}\n", &ms));
    CHECK_INT_EQ(ms, 30000);
    CHECK_OK(conf_staleness("[realms]\nA.TEST = {\ndb_max_staleness = 0\n}\n", &ms));
    CHECK_INT_EQ(ms, -1);
    CHECK_INT_EQ(conf_staleness("[kdcdefaults]\ndb_max_staleness = soon\n", &ms), CK_ERR_CONFIG);
    CHECK(strstr(ck_error_context(), "db_max_staleness") != NULL);
    CHECK_INT_EQ(conf_staleness("[kdcdefaults]\ndb_max_staleness = 2d\n", &ms), CK_ERR_CONFIG);
}

/* ---- part two: PostgreSQL ---- */

static char tmpdir[64], stash[128];
static const int32_t etypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};

static int
super_sql(const char *sql)
{
    const char *su = getenv("CK_PG_SUPERUSER");
    char conn[256];
    PGconn *c;
    PGresult *r;
    int ok;

    snprintf(conn, sizeof(conn), "user=%s dbname=postgres", su != NULL ? su : "");
    c = PQconnectdb(conn);
    r = PQexec(c, sql);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "  superuser sql: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

/* The cablekey database refuses new connections and drops the open ones (a server that is down,
 * as the KDC sees it), or takes them again. */
static void
pg_outage(bool down)
{
    if (down) {
        CHECK(super_sql("ALTER DATABASE cablekey WITH ALLOW_CONNECTIONS false") == 0);
        CHECK(super_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                        "datname = 'cablekey' AND pid <> pg_backend_pid()") == 0);
    } else {
        CHECK(super_sql("ALTER DATABASE cablekey WITH ALLOW_CONNECTIONS true") == 0);
    }
}

static void
pg_realm(void)
{
    static bool made;

    if (made)
        return;
    made = true;
    snprintf(stash, sizeof(stash), "%s/pg.stash", tmpdir);
    CHECK_OK(ck_store_init_realm(getenv("CK_PG_URI"), stash, "FLEET.TEST", etypes, 1, 0, 0));
}

static ck_store *
pg_store(void)
{
    ck_store *s = NULL;

    pg_realm();
    CHECK_OK(ck_store_open(getenv("CK_PG_URI"), stash, 0, &s));
    if (s == NULL)
        abort();
    return s;
}

static void
add_user(ck_store *s, const char *name)
{
    ck_db_principal *p = NULL;

    CHECK_OK(ck_db_principal_new(name, &p));
    if (p == NULL)
        abort();
    p->kvno = 1;
    CHECK_OK(ck_db_keys_make(name, "pw", 2, etypes, 1, 1, &p->keys, &p->n_keys));
    CHECK_OK(ck_store_put_principal(s, p));
    ck_db_principal_free(p);
}

static void
set_attrs(ck_store *s, const char *name, uint32_t attrs)
{
    ck_db_principal *p = NULL;

    CHECK_OK(ck_store_get_principal(s, name, &p));
    if (p == NULL)
        return;
    p->attributes = attrs;
    CHECK_OK(ck_store_update_principal(s, p));
    ck_db_principal_free(p);
}

static void
short_sleep(void)
{
    struct timespec ts = {0, 5 * 1000 * 1000};

    nanosleep(&ts, NULL);
}

/* A disable through one connection reaches another store's cache by push, with its poll interval
 * at an hour: the wait is bounded (10 s) but is not what is measured. */
static void
pg_push_invalidation(void)
{
    ck_store *a = pg_store(), *b = pg_store();
    const ck_db_principal *p = NULL;
    ck_store_contact_info ci;
    bool seen = false;

    add_user(a, "dave@FLEET.TEST");
    ck_store_cache_configure(b, 1000, 3600 * 1000);
    ck_store_cache_begin(b);
    CHECK_OK(ck_store_get_principal_cached(b, "dave@FLEET.TEST", &p));
    CHECK(p != NULL && (p->attributes & CK_ATTR_DISALLOW_ALL_TIX) == 0);
    ck_store_cache_contact(b, &ci);
    CHECK(ci.push);
    CHECK(ci.reachable);
    set_attrs(a, "dave@FLEET.TEST", CK_ATTR_DISALLOW_ALL_TIX);
    for (int i = 0; i < 2000 && !seen; i++) {
        ck_store_cache_begin(b);
        if (ck_store_get_principal_cached(b, "dave@FLEET.TEST", &p) == 0 &&
            (p->attributes & CK_ATTR_DISALLOW_ALL_TIX) != 0)
            seen = true;
        else
            short_sleep();
    }
    CHECK(seen);
    ck_store_close(a);
    ck_store_close(b);
}

/* The database goes away and comes back under a store with an injected clock. */
static void
pg_outage_and_recovery(void)
{
    ck_store *a = pg_store(), *b = pg_store();
    const ck_db_principal *p = NULL;
    ck_store_contact_info ci;
    int rc;

    add_user(a, "erin@FLEET.TEST");
    add_user(a, "frank@FLEET.TEST");
    ck_store_cache_set_clock(b, fake_clock, NULL);
    ck_store_cache_set_max_staleness(b, 60000);
    ck_store_cache_set_backoff(b, 100, 1000);
    ck_store_cache_configure(b, 1000, 200);
    ck_store_cache_begin(b);
    CHECK_OK(ck_store_get_principal_cached(b, "erin@FLEET.TEST", &p));
    CHECK_OK(ck_store_get_principal_cached(b, "frank@FLEET.TEST", &p));
    ck_store_close(a);
    a = NULL;

    pg_outage(true);
    fake_now += 200;
    ck_store_cache_begin(b);
    ck_store_cache_contact(b, &ci);
    CHECK(!ci.reachable);
    CHECK(ci.serving);
    CHECK(ci.error[0] != '\0');
    CHECK(ck_store_cache_staleness(b) >= 200);
    CHECK_OK(ck_store_get_principal_cached(b, "erin@FLEET.TEST", &p));
    rc = ck_store_get_principal_cached(b, "nobody@FLEET.TEST", &p);
    CHECK_INT_EQ(rc, CK_ERR_DB);
    /* Past the limit: refused. */
    fake_now += 60000;
    ck_store_cache_begin(b);
    rc = ck_store_get_principal_cached(b, "erin@FLEET.TEST", &p);
    CHECK_INT_EQ(rc, CK_ERR_DB);
    ck_store_cache_contact(b, &ci);
    CHECK(!ci.serving);

    /* Back; a change made meanwhile through another connection is seen after the recovery. */
    pg_outage(false);
    a = pg_store();
    set_attrs(a, "erin@FLEET.TEST", CK_ATTR_DISALLOW_ALL_TIX);
    fake_now += 1000; /* past any backoff */
    (void)ck_store_cache_idle(b);
    ck_store_cache_begin(b);
    ck_store_cache_contact(b, &ci);
    CHECK(ci.reachable);
    CHECK(ci.serving);
    CHECK_INT_EQ(ci.recoveries, 1);
    CHECK_INT_EQ(ck_store_cache_staleness(b), 0);
    CHECK_OK(ck_store_get_principal_cached(b, "erin@FLEET.TEST", &p));
    CHECK(p != NULL && (p->attributes & CK_ATTR_DISALLOW_ALL_TIX) != 0);
    ck_store_close(a);
    ck_store_close(b);
}

/* The KDC worker: one alarm for the outage, cleared on recovery, through the alarm manager. */
static int
alarm_seen(void *arg, const struct ck_alarm *a)
{
    (void)arg;
    (void)a;
    return 0;
}

static void
pg_worker_alarm(void)
{
    struct kdc_config cfg;
    struct kdc_worker *w = NULL, *w0 = NULL;
    struct kdc_request r;
    struct ck_alarm_mgr *m = NULL;
    struct ck_alarm_sink sink;
    struct ck_alarm al;

    pg_realm();
    CHECK_OK(ck_alarm_mgr_new(NULL, &m));
    ck_alarm_sink_callback(&sink, "test", alarm_seen, NULL, NULL);
    CHECK_OK(ck_alarm_mgr_add_sink(m, &sink));
    kdc_config_defaults(&cfg);
    cfg.db_path = strdup(getenv("CK_PG_URI"));
    cfg.stash_path = strdup(stash);
    cfg.alarms = m;
    cfg.db_max_staleness_ms = 30000;
    CHECK_OK(kdc_worker_new(&cfg, &w));
    cfg.db_max_staleness_ms = -1; /* kdc.conf's 0: never serve stale */
    CHECK_OK(kdc_worker_new(&cfg, &w0));
    if (w == NULL || w0 == NULL)
        abort();
    ck_store_cache_set_clock(w->store, fake_clock, NULL);
    ck_store_cache_set_clock(w0->store, fake_clock, NULL);
    kdc_fleet_begin(w);
    CHECK_INT_EQ(ck_alarm_get(m, CK_ALARM_DB_UNREACHABLE, cfg.db_path, &al), CK_ERR_NOTFOUND);
    memset(&r, 0, sizeof(r));
    r.w = w;
    CHECK(!kdc_fleet_refuse(&r));
    pg_outage(true);
    fake_now += 1000;
    (void)kdc_fleet_idle(w);
    kdc_fleet_begin(w0);
    CHECK(w0->fleet_down);
    CHECK(w0->fleet_refusing);
    memset(&r, 0, sizeof(r));
    r.w = w0;
    CHECK(kdc_fleet_refuse(&r));
    CHECK_INT_EQ(r.error_code, CK_KDC_ERR_SVC_UNAVAILABLE);
    CHECK(r.e_text != NULL && strstr(r.e_text, "db_max_staleness") != NULL);
    kdc_worker_free(w0);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_DB_UNREACHABLE, cfg.db_path, &al));
    CHECK(!al.cleared);
    CHECK(strstr(al.cause, "30 s") != NULL);
    CHECK(w->fleet_down);
    CHECK(!w->fleet_refusing);
    fake_now += 31000;
    kdc_fleet_begin(w);
    CHECK(w->fleet_refusing);
    CHECK(kdc_fleet_staleness_ms() > 0);
    pg_outage(false);
    fake_now += 10000;
    (void)kdc_fleet_idle(w);
    CHECK(!w->fleet_down);
    CHECK(!w->fleet_refusing);
    CHECK_INT_EQ(kdc_fleet_staleness_ms(), 0);
    CHECK_OK(ck_alarm_get(m, CK_ALARM_DB_UNREACHABLE, cfg.db_path, &al));
    CHECK(al.cleared);
    kdc_worker_free(w);
    kdc_config_free_contents(&cfg);
    ck_alarm_mgr_free(m);
}

int
main(int argc, char **argv)
{
    static const struct ck_test_case cases[] = {
        CK_TEST_CASE(push_read_at_once),
        CK_TEST_CASE(poll_waits_for_interval),
        CK_TEST_CASE(outage_serves_then_refuses),
        CK_TEST_CASE(backoff_schedule),
        CK_TEST_CASE(recovery_catches_up),
        CK_TEST_CASE(staleness_zero),
        CK_TEST_CASE(feed_error_not_outage),
        CK_TEST_CASE(config_db_max_staleness),
        CK_TEST_CASE(pg_push_invalidation),
        CK_TEST_CASE(pg_outage_and_recovery),
        CK_TEST_CASE(pg_worker_alarm),
    };
    char cmd[128];
    int rc;

    (void)argc;
    if (getenv("CK_PG_URI") == NULL) {
        if (getenv("CK_PG_REEXEC") != NULL) {
            printf("not ok 1 - store fleet: no PostgreSQL server (CK_PG_URI unset)\n");
            return 1;
        }
        setenv("CK_PG_REEXEC", "1", 1);
        execl("/bin/bash", "bash", "interop/pg_run.sh", argv[0], (char *)NULL);
        printf("not ok 1 - store fleet: cannot run interop/pg_run.sh (cwd must be tests/)\n");
        return 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-fleet-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        abort();
    rc = ck_test_run("store fleet", cases, sizeof(cases) / sizeof(cases[0]));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
