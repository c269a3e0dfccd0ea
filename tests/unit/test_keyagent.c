/* The key version service and keytab-agent (keyagent.h): the inner encodings and the framing
 * (round trips, every truncation, bounds), the backoff, the listen defaults, and whole agent
 * rounds against the KDC's AS service and the key version service in process (a realm in a
 * temporary directory): up to date, a staged kvno fetched and written, kvnos purged on the KDC
 * dropped from the keytab, refusals (disabled principal, service principal missing, wrong key,
 * protected principals, tampered messages). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ck_test.h"
#include "store_fixture.h"

#include "cablekey/client.h"
#include "cablekey/keyagent.h"
#include "cablekey/keytab.h"
#include "cablekey/kpasswd.h"
#include "cablekey/nametypes.h"
#include "cablekey/principal.h"
#include "cablekey/rotation.h"
#include "cablekey/store.h"
#include "config.h"
#include "kdc.h"
#include "kdc_int.h"
#include "keyagent.h"

#define REALM "TEST.REALM"
#define SVC "cms/cms.test@" REALM

static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                   CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128};

/* ---- codec ------------------------------------------------------------------------------ */

static void
fill_rep(ck_keyagent_rep *rep)
{
    memset(rep, 0, sizeof(*rep));
    rep->result = CK_KEYAGENT_OK;
    ck_strlcpy(rep->text, "new keys", sizeof(rep->text));
    rep->current_kvno = 4;
    rep->staged_kvno = 5;
    rep->n_held = 3;
    rep->held[0] = 5;
    rep->held[1] = 4;
    rep->held[2] = 3;
    rep->n_keys = 2;
    rep->keys[0].kvno = 5;
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &rep->keys[0].key));
    rep->keys[1].kvno = 5;
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, &rep->keys[1].key));
}

static void
test_req_codec(void)
{
    ck_keyagent_req req, back;
    uint8_t *der = NULL;
    size_t len = 0;

    memset(&req, 0, sizeof(req));
    req.type = CK_KEYAGENT_CONFIRM;
    req.kvno = 0x01020304;
    ck_strlcpy(req.host, "cms-1.example_net", sizeof(req.host));
    CHECK_OK(ck_keyagent_req_encode(&req, &der, &len));
    CHECK_INT_EQ(len, 1 + 4 + 1 + strlen(req.host));
    CHECK(der != NULL && der[0] == 2 && der[1] == 1 && der[4] == 4 && der[5] == 17);
    CHECK_OK(ck_keyagent_req_decode(der, len, &back));
    CHECK_INT_EQ(back.type, CK_KEYAGENT_CONFIRM);
    CHECK_INT_EQ(back.kvno, 0x01020304);
    CHECK(strcmp(back.host, "cms-1.example_net") == 0);
    /* Every truncation and one trailing byte are refused. */
    for (size_t n = 0; n < len; n++)
        CHECK(ck_keyagent_req_decode(der, n, &back) == CK_ERR_DECODE);
    {
        uint8_t longer[300];
        memcpy(longer, der, len);
        longer[len] = 0;
        CHECK(ck_keyagent_req_decode(longer, len + 1, &back) == CK_ERR_DECODE);
        /* A host with a byte outside the allowed set, an unknown type, CONFIRM of kvno 0. */
        longer[7] = ' ';
        CHECK(ck_keyagent_req_decode(longer, len, &back) == CK_ERR_DECODE);
        longer[7] = '\0'; /* a NUL inside the host (found by fuzz_keyagent) */
        CHECK(ck_keyagent_req_decode(longer, len, &back) == CK_ERR_DECODE);
        memcpy(longer, der, len);
        longer[0] = 3;
        CHECK(ck_keyagent_req_decode(longer, len, &back) == CK_ERR_DECODE);
        memcpy(longer, der, len);
        memset(longer + 1, 0, 4);
        CHECK(ck_keyagent_req_decode(longer, len, &back) == CK_ERR_DECODE);
    }
    free(der);
    /* FETCH without a host is fine; CONFIRM without one is not. */
    memset(&req, 0, sizeof(req));
    req.type = CK_KEYAGENT_FETCH;
    CHECK_OK(ck_keyagent_req_encode(&req, &der, &len));
    CHECK_OK(ck_keyagent_req_decode(der, len, &back));
    CHECK(back.host[0] == '\0' && back.kvno == 0);
    free(der);
    req.type = CK_KEYAGENT_CONFIRM;
    req.kvno = 2;
    CHECK(ck_keyagent_req_encode(&req, &der, &len) == CK_ERR_INVAL);
    req.type = 9;
    CHECK(ck_keyagent_req_encode(&req, &der, &len) == CK_ERR_INVAL);
    CHECK(!ck_keyagent_host_ok(""));
    CHECK(!ck_keyagent_host_ok("a/b"));
    CHECK(ck_keyagent_host_ok("host-1.example.net"));
}

static void
test_rep_codec(void)
{
    ck_keyagent_rep rep, back;
    uint8_t *der = NULL;
    size_t len = 0;

    fill_rep(&rep);
    CHECK_OK(ck_keyagent_rep_encode(&rep, &der, &len));
    CHECK_INT_EQ(len, 2 + 2 + 8 + 4 + 4 + 1 + 12 + 1 + (4 + 4 + 2 + 32) + (4 + 4 + 2 + 16));
    CHECK_OK(ck_keyagent_rep_decode(der, len, &back));
    CHECK_INT_EQ(back.result, CK_KEYAGENT_OK);
    CHECK(strcmp(back.text, "new keys") == 0);
    CHECK_INT_EQ(back.current_kvno, 4);
    CHECK_INT_EQ(back.staged_kvno, 5);
    CHECK_INT_EQ(back.n_held, 3);
    CHECK_INT_EQ(back.held[2], 3);
    CHECK_INT_EQ(back.n_keys, 2);
    CHECK_INT_EQ(back.keys[1].key.enctype, CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128);
    CHECK_MEM_EQ(back.keys[0].key.contents, back.keys[0].key.length, rep.keys[0].key.contents,
                 rep.keys[0].key.length);
    ck_keyagent_rep_clear(&back);
    for (size_t n = 0; n < len; n++)
        CHECK(ck_keyagent_rep_decode(der, n, &back) == CK_ERR_DECODE);
    {
        uint8_t *bad = malloc(len + 1);
        size_t key0 = 2 + 2 + 8 + 4 + 4 + 1 + 12 + 1;

        memcpy(bad, der, len);
        bad[len] = 0;
        CHECK(ck_keyagent_rep_decode(bad, len + 1, &back) == CK_ERR_DECODE);
        /* An enctype we do not implement, then a key length that is not the enctype's. */
        bad[key0 + 7] = 99;
        CHECK(ck_keyagent_rep_decode(bad, len, &back) == CK_ERR_DECODE);
        memcpy(bad, der, len);
        bad[key0 + 9] = 31;
        CHECK(ck_keyagent_rep_decode(bad, len, &back) == CK_ERR_DECODE);
        /* More held kvnos than the limit; a control character in the text becomes '?'. */
        memcpy(bad, der, len);
        bad[2 + 2 + 8 + 8] = CK_KEYAGENT_MAX_HELD + 1;
        CHECK(ck_keyagent_rep_decode(bad, len, &back) == CK_ERR_DECODE);
        memcpy(bad, der, len);
        bad[4] = '\n';
        CHECK_OK(ck_keyagent_rep_decode(bad, len, &back));
        CHECK(back.text[0] == '?');
        ck_keyagent_rep_clear(&back);
        ck_free_secret(bad, len + 1);
    }
    ck_free_secret(der, len);
    rep.n_keys = CK_KEYAGENT_MAX_KEYS + 1;
    CHECK(ck_keyagent_rep_encode(&rep, &der, &len) == CK_ERR_LIMIT);
    rep.n_keys = 2;
    ck_keyagent_rep_clear(&rep);
    CHECK(rep.keys[0].key.length == 0);
}

static void
test_frame(void)
{
    static const uint8_t ap[] = {0x6e, 0x01, 0x00}, priv[] = {0x75, 0x00};
    ck_keyagent_frame fr;
    uint8_t *msg = NULL;
    size_t len = 0;

    CHECK_OK(ck_kpasswd_req_build(CK_KEYAGENT_VERSION, ap, sizeof(ap), priv, sizeof(priv), &msg,
                                  &len));
    CHECK_OK(ck_keyagent_frame_parse(msg, len, &fr));
    CHECK_INT_EQ(fr.version, CK_KEYAGENT_VERSION);
    CHECK_MEM_EQ(fr.ap_req, fr.ap_req_len, ap, sizeof(ap));
    CHECK_MEM_EQ(fr.priv, fr.priv_len, priv, sizeof(priv));
    for (size_t n = 0; n < len; n++)
        CHECK(ck_keyagent_frame_parse(msg, n, &fr) == CK_ERR_DECODE);
    msg[3] = 0x01; /* kpasswd's version 0xCB01 -> 0xCB01 is ours; 0xff01 is not */
    msg[2] = 0xff;
    CHECK(ck_keyagent_frame_parse(msg, len, &fr) == CK_ERR_UNSUPPORTED);
    msg[2] = 0xcb;
    msg[5] = (uint8_t)(len - 6); /* an AP-REQ reaching the end leaves no KRB-PRIV */
    CHECK(ck_keyagent_frame_parse(msg, len, &fr) == CK_ERR_DECODE);
    msg[5] = 0;
    CHECK(ck_keyagent_frame_parse(msg, len, &fr) == CK_ERR_DECODE);
    free(msg);
}

static void
test_backoff(void)
{
    CHECK_INT_EQ(ck_keyagent_backoff_ms(0, 60000), 1000);
    CHECK_INT_EQ(ck_keyagent_backoff_ms(1, 60000), 2000);
    CHECK_INT_EQ(ck_keyagent_backoff_ms(5, 60000), 32000);
    CHECK_INT_EQ(ck_keyagent_backoff_ms(6, 60000), 60000);
    CHECK_INT_EQ(ck_keyagent_backoff_ms(1000, 60000), 60000);
    CHECK_INT_EQ(ck_keyagent_backoff_ms(1000, 0), CK_KEYAGENT_BACKOFF_MAX_MS);
}

static void
test_listen_default(void)
{
    struct kdc_daemon_config dc;
    char *list[8];
    size_t n = 0;
    bool dflt = false;

    kdc_daemon_config_init(&dc);
    CHECK_OK(kdc_config_set_listen(&dc, "127.0.0.1:21288 127.0.0.1:21289 [::1]:88", true));
    CHECK_OK(keyagent_listen_resolve(&dc, list, 8, &n, &dflt));
    CHECK(dflt);
    CHECK_INT_EQ(n, 2);
    if (n == 2) {
        CHECK(strcmp(list[0], "127.0.0.1:7464") == 0);
        CHECK(strcmp(list[1], "[::1]:7464") == 0);
    }
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    dc.keyagent_listen = strdup("none");
    CHECK_OK(keyagent_listen_resolve(&dc, list, 8, &n, &dflt));
    CHECK(!dflt && n == 0);
    free(dc.keyagent_listen);
    dc.keyagent_listen = strdup("127.0.0.1:21290, 127.0.0.2:21291");
    CHECK_OK(keyagent_listen_resolve(&dc, list, 8, &n, &dflt));
    CHECK(!dflt && n == 2);
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    kdc_daemon_config_free(&dc);
}

/* ---- rounds against the services in process ---------------------------------------------- */

struct world {
    struct kdc_config cfg;
    struct kdc_worker *kdc;
    struct keyagent_server *srv;
    struct keyagent_worker *ka;
    ck_store *store;
    char keytab[160];
    const char *kdcs[2];
    ck_keyagent_cfg acfg;
    int svc_calls;
    bool tamper;          /* flip a byte of the next key version service reply */
};

static uint8_t reply_buf[65536];

static int
send_as(void *arg, int idx, const uint8_t *req, size_t req_len, uint8_t **reply,
        size_t *reply_len)
{
    struct world *w = arg;
    size_t n = 0;

    (void)idx;
    CHECK_OK(kdc_handle_request(w->kdc, req, req_len, KDC_TRANSPORT_TCP, NULL, reply_buf,
                                sizeof(reply_buf), &n));
    if (n == 0)
        return ck_error_set(CK_ERR_TIMEOUT, "no reply");
    *reply = ck_memdup(reply_buf, n);
    *reply_len = n;
    return 0;
}

static int
send_svc(void *arg, int idx, const uint8_t *req, size_t req_len, uint8_t **reply,
         size_t *reply_len)
{
    struct world *w = arg;
    size_t n = 0;

    w->svc_calls++;
    /* KDC 0 of a two-KDC list is down: the agent must go on to KDC 1. */
    if (w->kdcs[1] != NULL && idx == 0)
        return ck_error_set(CK_ERR_TIMEOUT, "KDC 0 down");
    CHECK_OK(keyagent_handle_request(w->ka, req, req_len, NULL, reply_buf, sizeof(reply_buf),
                                     &n));
    if (n == 0)
        return ck_error_set(CK_ERR_TIMEOUT, "no reply");
    if (w->tamper) {
        reply_buf[n - 3] ^= 1;
        w->tamper = false;
    }
    *reply = ck_memdup(reply_buf, n);
    *reply_len = n;
    return 0;
}

static void
add_princ(struct world *w, const char *name, uint32_t attrs)
{
    ck_db_principal *p = NULL;

    CHECK_OK(ck_db_principal_new(name, &p));
    p->kvno = 1;
    p->attributes = attrs;
    CHECK_OK(ck_db_keys_make(name, NULL, 0, enctypes, 2, 1, &p->keys, &p->n_keys));
    CHECK_OK(ck_store_create_principal(w->store, p));
    ck_db_principal_free(p);
}

/* The keytab holding `name`'s keys of kvno (0: current) as the database has them. */
static void
export_keytab(struct world *w, const char *name, uint32_t kvno)
{
    ck_db_principal *p = NULL;
    ck_principal *pp = NULL;
    ck_keytab *kt = NULL;

    CHECK_OK(ck_store_get_principal(w->store, name, &p));
    CHECK_OK(ck_principal_parse(name, NULL, 0, &pp));
    CHECK_OK(ck_keytab_new(&kt));
    for (size_t i = 0; p != NULL && i < p->n_keys; i++)
        if (p->keys[i].kvno == (kvno != 0 ? kvno : p->kvno))
            CHECK_OK(ck_keytab_add(kt, pp, p->keys[i].kvno, 0, &p->keys[i].key));
    unlink(w->keytab);
    CHECK_OK(ck_keytab_write(w->keytab, kt));
    ck_keytab_free(kt);
    ck_principal_free(pp);
    ck_db_principal_free(p);
}

static size_t
keytab_count(struct world *w, uint32_t kvno)
{
    ck_keytab *kt = NULL;
    size_t n = 0;

    if (ck_keytab_read(w->keytab, &kt) != 0)
        return 0;
    for (size_t i = 0; i < kt->n_entries; i++)
        n += kt->entries[i].kvno == kvno;
    ck_keytab_free(kt);
    return n;
}

static void
world_up(struct world *w, bool with_service)
{
    memset(w, 0, sizeof(*w));
    store_fixture_up("keyagent", REALM, enctypes, 2);
    CHECK_OK(ck_store_open(db, stash, 0, &w->store));
    if (with_service)
        CHECK_OK(ck_keyagent_service_create(db, stash));
    add_princ(w, SVC, 0);
    add_princ(w, "kadmin/admin@" REALM, 0);
    snprintf(w->keytab, sizeof(w->keytab), "%s/cms.keytab", dir);
    export_keytab(w, SVC, 0);
    kdc_config_defaults(&w->cfg);
    w->cfg.db_path = strdup(db);
    w->cfg.stash_path = strdup(stash);
    w->cfg.log_flush_ms = 0;
    CHECK_OK(kdc_worker_new(&w->cfg, &w->kdc));
    /* The KDC sees each change at once (no cache check interval): no test waits for it. */
    if (w->kdc != NULL)
        ck_store_cache_configure(w->kdc->store, w->kdc->cache_max, 0);
    CHECK_OK(keyagent_server_new(&w->cfg, &w->srv));
    CHECK_OK(keyagent_worker_new(w->srv, &w->ka));
    w->kdcs[0] = "127.0.0.1:1";
    w->acfg.keytab = w->keytab;
    w->acfg.principal = SVC;
    w->acfg.host = "cms1";
    w->acfg.kdcs = w->kdcs;
    w->acfg.n_kdcs = 1;
    w->acfg.send_as = send_as;
    w->acfg.send_svc = send_svc;
    w->acfg.send_arg = w;
}

static void
world_down(struct world *w)
{
    keyagent_worker_free(w->ka);
    keyagent_server_free(w->srv);
    kdc_worker_free(w->kdc);
    kdc_config_free_contents(&w->cfg);
    ck_store_close(w->store);
    fixture_down();
}

/* Stores a new kvno beside the current one without making it current. */
static uint32_t
stage(struct world *w, const char *name)
{
    ck_db_key *keys = NULL;
    size_t n = 0;
    uint32_t kvno = 0;

    CHECK_OK(ck_db_keys_make(name, NULL, 0, enctypes, 2, 0, &keys, &n));
    CHECK_OK(ck_store_key_stage(w->store, name, keys, n, time(NULL), &kvno));
    ck_db_keys_free(keys, n);
    return kvno;
}

static void
activate(struct world *w, const char *name, uint32_t kvno)
{
    CHECK_OK(ck_store_key_activate(w->store, name, kvno, time(NULL)));
}

/* Removes the retired kvnos but the newest (keep_min 1), as the engine does once they expired. */
static void
purge(struct world *w, const char *name)
{
    size_t n = 0;

    CHECK_OK(ck_store_key_purge(w->store, name, 0, 0, time(NULL) + CK_ROT_PURGE_GRACE + 10, &n));
    CHECK_INT_EQ(n, 1);
}

static void
test_round_up_to_date(void)
{
    struct world w;
    ck_keyagent_round r;
    struct stat st;

    world_up(&w, true);
    CHECK_OK(ck_keyagent_round_run(&w.acfg, &r));
    CHECK_INT_EQ(r.kdc_index, 0);
    CHECK_INT_EQ(r.had_kvno, 1);
    CHECK_INT_EQ(r.current_kvno, 1);
    CHECK_INT_EQ(r.staged_kvno, 0);
    CHECK_INT_EQ(r.added, 0);
    CHECK(!r.written);
    CHECK_INT_EQ(r.confirmed, 0);
    CHECK_INT_EQ(keytab_count(&w, 1), 2);
    CHECK(stat(w.keytab, &st) == 0 && (st.st_mode & 0777) == 0600);
    world_down(&w);
}

static void
test_round_staged(void)
{
    struct world w;
    ck_keyagent_round r;

    world_up(&w, true);
    CHECK_INT_EQ(stage(&w, SVC), 2);
    /* Two KDCs: the first one does not answer. */
    w.kdcs[1] = "127.0.0.2:1";
    w.acfg.n_kdcs = 2;
    CHECK_OK(ck_keyagent_round_run(&w.acfg, &r));
    CHECK_INT_EQ(r.kdc_index, 1);
    CHECK_INT_EQ(r.current_kvno, 1);
    CHECK_INT_EQ(r.staged_kvno, 2);
    CHECK_INT_EQ(r.added, 2);
    CHECK(r.written);
    CHECK_INT_EQ(keytab_count(&w, 1), 2);
    CHECK_INT_EQ(keytab_count(&w, 2), 2);
    {
        ck_rotation_status rs;

        CHECK_INT_EQ(r.confirmed, 2);
        CHECK_OK(ck_store_rotation_status(w.store, SVC, &rs));
        CHECK_INT_EQ(rs.n_confirmations, 1);
        CHECK(rs.n_confirmations == 1 && strcmp(rs.confirmations[0].host, "cms1") == 0 &&
              rs.confirmations[0].kvno == 2);
    }
    /* A second round writes nothing and confirms again (a lost CONFIRM is repeated). */
    CHECK_OK(ck_keyagent_round_run(&w.acfg, &r));
    CHECK(!r.written && r.added == 0 && r.confirmed == 2);
    /* Activated: the next round logs in with kvno 2 (the hint, then newest first) and has
     * nothing to do. */
    activate(&w, SVC, 2);
    w.acfg.n_kdcs = 1;
    w.kdcs[1] = NULL;
    CHECK_OK(ck_keyagent_round_run(&w.acfg, &r));
    CHECK(r.current_kvno == 2 && r.staged_kvno == 0 && !r.written && r.confirmed == 0);
    /* The next rotation; kvno 3 staged and in the keytab, the agent still logs in (with kvno 2:
     * the newest is not current yet). */
    CHECK_INT_EQ(stage(&w, SVC), 3);
    CHECK_OK(ck_keyagent_round_run(&w.acfg, &r));
    CHECK(r.added == 2 && r.confirmed == 3);
    CHECK_OK(ck_keyagent_round_run(&w.acfg, &r));
    CHECK(r.added == 0 && r.confirmed == 3);
    /* Activated, and kvno 1 purged on the KDC (kvno 2 is kept: keep_min 1): the keytab drops
     * kvno 1 and keeps 2 and 3. */
    activate(&w, SVC, 3);
    purge(&w, SVC);
    CHECK_OK(ck_keyagent_round_run(&w.acfg, &r));
    CHECK_INT_EQ(r.current_kvno, 3);
    CHECK_INT_EQ(r.staged_kvno, 0);
    CHECK_INT_EQ(r.removed, 2);
    CHECK(r.written);
    CHECK_INT_EQ(keytab_count(&w, 1), 0);
    CHECK_INT_EQ(keytab_count(&w, 2), 2);
    CHECK_INT_EQ(keytab_count(&w, 3), 2);
    world_down(&w);
}

/* The agent's keytab lags (it holds kvno 1, the KDC made 2 current and staged 3 while the agent
 * was away): one round brings both, confirming the staged one. */
static void
test_round_catch_up(void)
{
    struct world w;
    ck_keyagent_round r;

    world_up(&w, true);
    CHECK_INT_EQ(stage(&w, SVC), 2);
    activate(&w, SVC, 2);
    CHECK_INT_EQ(stage(&w, SVC), 3);
    /* The AS exchange needs the current key (kvno 2), which this keytab lacks: a host that
     * missed a whole rotation is refused and must be given the current key out of band. */
    CHECK(ck_keyagent_round_run(&w.acfg, &r) != 0);
    CHECK_INT_EQ(keytab_count(&w, 2), 0);
    export_keytab(&w, SVC, 2);
    CHECK_OK(ck_keyagent_round_run(&w.acfg, &r));
    CHECK_INT_EQ(r.confirmed, 3);
    CHECK_INT_EQ(r.added, 2);
    CHECK_INT_EQ(keytab_count(&w, 3), 2);
    world_down(&w);
}

static int
as_fn(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    return send_as(arg, 0, req, req_len, reply, reply_len);
}

static int
svc_fn(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    return send_svc(arg, 0, req, req_len, reply, reply_len);
}

static void
set_attrs(struct world *w, const char *name, uint32_t set, uint32_t clear)
{
    ck_db_principal *p = NULL;

    CHECK_OK(ck_store_get_principal(w->store, name, &p));
    if (p == NULL)
        return;
    p->attributes = (p->attributes | set) & ~clear;
    CHECK_OK(ck_store_update_principal(w->store, p));
    ck_db_principal_free(p);
}

static void
test_refusals(void)
{
    struct world w;
    ck_keyagent_round r;
    ck_creds *creds = NULL;
    ck_keytab *kt = NULL;
    ck_kdc_transport kdc, svc;
    ck_keyagent_req req;
    ck_keyagent_rep rep;

    world_up(&w, true);
    /* A tampered reply fails the round; nothing is written. */
    CHECK_INT_EQ(stage(&w, SVC), 2);
    w.tamper = true;
    CHECK(ck_keyagent_round_run(&w.acfg, &r) != 0);
    CHECK_INT_EQ(keytab_count(&w, 2), 0);

    /* A ticket obtained before the principal was disabled gets DENIED: the server re-checks;
     * once disabled, the AS exchange itself fails. */
    memset(&kdc, 0, sizeof(kdc));
    kdc.send_fn = as_fn;
    kdc.send_arg = &w;
    svc = kdc;
    svc.send_fn = svc_fn;
    CHECK_OK(ck_keytab_read(w.keytab, &kt));
    CHECK_OK(ck_keyagent_login(&kdc, SVC, kt, 0, &creds, NULL));
    set_attrs(&w, SVC, CK_ATTR_DISALLOW_ALL_TIX, 0);
    memset(&req, 0, sizeof(req));
    req.type = CK_KEYAGENT_FETCH;
    req.kvno = 1;
    if (creds != NULL) {
        CHECK_OK(ck_keyagent_exchange(&svc, creds, &req, &rep));
        CHECK_INT_EQ(rep.result, CK_KEYAGENT_DENIED);
        CHECK_INT_EQ(rep.n_keys, 0);
        ck_keyagent_rep_clear(&rep);
    }
    ck_creds_free(creds);
    creds = NULL;
    CHECK(ck_keyagent_login(&kdc, SVC, kt, 0, &creds, NULL) == CK_ERR_KRB);
    CHECK(creds == NULL);
    CHECK(ck_keyagent_round_run(&w.acfg, &r) == CK_ERR_POLICY);
    CHECK_INT_EQ(keytab_count(&w, 2), 0);
    set_attrs(&w, SVC, 0, CK_ATTR_DISALLOW_ALL_TIX);

    /* An expired principal: DENIED by the re-check as well. */
    CHECK_OK(ck_keyagent_login(&kdc, SVC, kt, 0, &creds, NULL));
    {
        ck_db_principal *p = NULL;
        CHECK_OK(ck_store_get_principal(w.store, SVC, &p));
        p->expires = time(NULL) - 1;
        CHECK_OK(ck_store_update_principal(w.store, p));
        ck_db_principal_free(p);
    }
    if (creds != NULL) {
        CHECK_OK(ck_keyagent_exchange(&svc, creds, &req, &rep));
        CHECK_INT_EQ(rep.result, CK_KEYAGENT_DENIED);
        ck_keyagent_rep_clear(&rep);
    }
    ck_creds_free(creds);
    creds = NULL;
    {
        ck_db_principal *p = NULL;
        CHECK_OK(ck_store_get_principal(w.store, SVC, &p));
        p->expires = 0;
        CHECK_OK(ck_store_update_principal(w.store, p));
        ck_db_principal_free(p);
    }

    /* keyagent/REALM deleted after the ticket was issued: SVC_UNAVAILABLE, no keys. */
    CHECK_OK(ck_keyagent_login(&kdc, SVC, kt, 0, &creds, NULL));
    CHECK_OK(ck_store_delete_principal(w.store, "keyagent/" REALM "@" REALM));
    if (creds != NULL) {
        CHECK(ck_keyagent_exchange(&svc, creds, &req, &rep) == CK_ERR_KRB);
        CHECK_INT_EQ(ck_error_krb_code(), CK_KDC_ERR_SVC_UNAVAILABLE);
        CHECK_INT_EQ(rep.n_keys, 0);
    }
    ck_creds_free(creds);
    ck_keytab_free(kt);

    /* A keytab without a key of the principal. */
    export_keytab(&w, "kadmin/admin@" REALM, 0);
    CHECK(ck_keyagent_round_run(&w.acfg, &r) == CK_ERR_NOTFOUND);
    world_down(&w);

    /* Without keyagent/REALM the AS exchange already fails (server unknown). */
    world_up(&w, false);
    CHECK(ck_keyagent_round_run(&w.acfg, &r) == CK_ERR_KRB);
    CHECK_INT_EQ(ck_error_krb_code(), CK_KDC_ERR_S_PRINCIPAL_UNKNOWN);
    CHECK_INT_EQ(keytab_count(&w, 1), 2);
    world_down(&w);
}

/* A service refuses, case by case, what the handler must refuse: a protected principal's agent
 * (kadmin/admin) gets DENIED, noise gets no answer, another version a KRB-ERROR. */
static void
test_server_direct(void)
{
    struct world w;
    ck_keyagent_round r;
    uint8_t noise[40];
    size_t n = 1;

    world_up(&w, true);
    memset(noise, 0x41, sizeof(noise));
    CHECK_OK(keyagent_handle_request(w.ka, noise, sizeof(noise), NULL, reply_buf,
                                     sizeof(reply_buf), &n));
    CHECK_INT_EQ(n, 0);
    noise[0] = 0;
    noise[1] = sizeof(noise);
    CHECK_OK(keyagent_handle_request(w.ka, noise, sizeof(noise), NULL, reply_buf,
                                     sizeof(reply_buf), &n));
    CHECK(n > 6 && reply_buf[6] == 0x7e);
    export_keytab(&w, "kadmin/admin@" REALM, 0);
    w.acfg.principal = "kadmin/admin@" REALM;
    CHECK(ck_keyagent_round_run(&w.acfg, &r) == CK_ERR_POLICY);
    world_down(&w);
}

/* A ticket for keyagent/REALM sealed here with the service key from the database: with or
 * without INITIAL, for SVC. */
static ck_creds *
forged_creds(struct world *w, bool initial)
{
    static const char *const svc[] = {CK_KEYAGENT_SERVICE, REALM};
    static const char *const cname[] = {"cms", "cms.test"};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_TICKET *t = CK_TICKET_new();
    ck_db_principal *ka = NULL;
    ck_creds *c = calloc(1, sizeof(*c));
    uint8_t *der = NULL;
    size_t der_len = 0;
    int64_t now = time(NULL);

    CHECK_OK(ck_store_get_principal(w->store, "keyagent/" REALM "@" REALM, &ka));
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &c->session_key));
    CHECK_OK(ck_asn1_flags_set(&etp->flags, initial ? CK_TKT_FLG_INITIAL : 0));
    CHECK_OK(ck_key_to_asn1(&c->session_key, &etp->key));
    CHECK_OK(ck_asn1_kstring_set(&etp->crealm, REALM));
    CHECK_OK(ck_asn1_principal_set(etp->cname, CK_NT_SRV_INST, cname, 2));
    etp->transited->tr_type = 1;
    CHECK_OK(ck_asn1_time_set(&etp->authtime, now));
    CHECK_OK(ck_asn1_time_set(&etp->endtime, now + 300));
    CHECK_OK(ck_asn1_kstring_set(&t->realm, REALM));
    CHECK_OK(ck_asn1_principal_set(t->sname, CK_NT_SRV_INST, svc, 2));
    if (ka != NULL)
        CHECK_OK(ck_ticket_seal(t, etp, &ck_db_principal_find_key(
                                              ka, 0, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96)->key,
                                ka->kvno));
    CHECK_OK(ck_asn1_ticket_encode(t, &der, &der_len));
    c->ticket = ck_memdup(der, der_len);
    c->ticket_len = der_len;
    ck_asn1_free_der(der, der_len);
    CHECK_OK(ck_principal_parse(SVC, NULL, 0, &c->client));
    ck_db_principal_free(ka);
    CK_TICKET_free(t);
    CK_ENC_TICKET_PART_free(etp);
    return c;
}

/* The last request the service got, for the replay case. */
static uint8_t last_req[65536];
static size_t last_req_len;

static int
svc_record_fn(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    if (req_len <= sizeof(last_req)) {
        memcpy(last_req, req, req_len);
        last_req_len = req_len;
    }
    return send_svc(arg, 0, req, req_len, reply, reply_len);
}

static void
test_ticket_checks(void)
{
    struct world w;
    ck_kdc_transport svc;
    ck_keyagent_req req;
    ck_keyagent_rep rep;
    ck_creds *c;
    size_t n = 0;

    world_up(&w, true);
    memset(&svc, 0, sizeof(svc));
    svc.send_fn = svc_record_fn;
    svc.send_arg = &w;
    memset(&req, 0, sizeof(req));
    req.type = CK_KEYAGENT_FETCH;
    /* A ticket from the TGS (no INITIAL) is refused: a stolen TGT is not the service key. */
    c = forged_creds(&w, false);
    CHECK(ck_keyagent_exchange(&svc, c, &req, &rep) == CK_ERR_KRB);
    CHECK_INT_EQ(ck_error_krb_code(), CK_KDC_ERR_POLICY);
    ck_creds_free(c);
    /* The same, INITIAL: served; the request sent again verbatim is a replay. */
    c = forged_creds(&w, true);
    CHECK_OK(ck_keyagent_exchange(&svc, c, &req, &rep));
    CHECK_INT_EQ(rep.result, CK_KEYAGENT_OK);
    CHECK_INT_EQ(rep.current_kvno, 1);
    ck_keyagent_rep_clear(&rep);
    CHECK_OK(keyagent_handle_request(w.ka, last_req, last_req_len, NULL, reply_buf,
                                     sizeof(reply_buf), &n));
    {
        ck_kpasswd_rep fr;
        CK_KRB_ERROR_MSG *err = NULL;

        CHECK_OK(ck_kpasswd_rep_parse(reply_buf, n, &fr));
        CHECK(fr.is_error);
        if (fr.is_error) {
            CHECK_OK(ck_asn1_krb_error_decode(fr.body, fr.body_len, &err));
            CHECK(err != NULL && err->error_code == CK_KRB_AP_ERR_REPEAT);
            CK_KRB_ERROR_MSG_free(err);
        }
    }
    /* A CONFIRM of a kvno the principal does not have: NOTFOUND. */
    req.type = CK_KEYAGENT_CONFIRM;
    req.kvno = 9;
    ck_strlcpy(req.host, "cms1", sizeof(req.host));
    CHECK_OK(ck_keyagent_exchange(&svc, c, &req, &rep));
    CHECK_INT_EQ(rep.result, CK_KEYAGENT_NOTFOUND);
    ck_keyagent_rep_clear(&rep);
    ck_creds_free(c);
    world_down(&w);
}

CK_TEST_MAIN("keyagent", CK_TEST_CASE(test_req_codec), CK_TEST_CASE(test_rep_codec),
             CK_TEST_CASE(test_frame), CK_TEST_CASE(test_backoff),
             CK_TEST_CASE(test_listen_default), CK_TEST_CASE(test_round_up_to_date),
             CK_TEST_CASE(test_round_staged), CK_TEST_CASE(test_round_catch_up),
             CK_TEST_CASE(test_refusals), CK_TEST_CASE(test_server_direct),
             CK_TEST_CASE(test_ticket_checks))
