/* The provisioning customer database (cablekey/prov.h) on both store backends: the same cases on
 * SQLite and on PostgreSQL. Every action and each wrong-state refusal, idempotent replay and a
 * reused key, number exhaustion and uniqueness (two processes provisioning at once), the outbox,
 * the history order, number lookup, the admission race, a failed action leaving nothing, the
 * KDC's device cache on another connection seeing an action at once, the audit row naming the
 * actor, and dump -> load keeping the provisioning tables.
 *
 * PostgreSQL comes from tests/interop/pg_run.sh, as for test_store_conformance: run without
 * CK_PG_URI, this binary re-executes itself through that script (a throw-away server). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <openssl/evp.h>

#include "ck_test.h"
#include "cablekey/error.h"
#include "cablekey/prov.h"
#include "cablekey/store.h"
#include "cablekey/store_dump.h"
#include "cablekey/util.h"

static char tmpdir[64];
static bool on_pg;            /* the running case's backend */
static char db[512], stash[300];

static void
pg_reset(void)
{
    PGconn *c = PQconnectdb("");
    PGresult *r = NULL;
    bool ok = false;

    if (PQstatus(c) == CONNECTION_OK) {
        r = PQexec(c, "SET client_min_messages = warning; DROP SCHEMA public CASCADE;"
                      " CREATE SCHEMA public");
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    }
    if (!ok) {
        fprintf(stderr, "  cannot empty the PostgreSQL database: %s", PQerrorMessage(c));
        abort();
    }
    PQclear(r);
    PQfinish(c);
}

/* A new realm on the running backend, opened. */
static ck_store *
new_realm(void)
{
    static const int32_t et[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96};
    ck_store *s = NULL;
    char cmd[2000];

    snprintf(stash, sizeof(stash), "%s/realm.stash", tmpdir);
    unlink(stash);
    if (on_pg) {
        ck_strlcpy(db, getenv("CK_PG_URI"), sizeof(db));
        pg_reset();
    } else {
        snprintf(db, sizeof(db), "%s/realm.db", tmpdir);
        snprintf(cmd, sizeof(cmd), "rm -f '%s' '%s-wal' '%s-shm'", db, db, db);
        if (system(cmd) != 0)
            abort();
    }
    CHECK_OK(ck_store_init_realm(db, stash, "PROV.TEST", et, 1, 0, 0));
    CHECK_OK(ck_store_open(db, stash, 0, &s));
    if (s == NULL)
        abort();
    return s;
}

static ck_store *
other_conn(void)
{
    ck_store *s = NULL;

    CHECK_OK(ck_store_open(db, stash, 0, &s));
    if (s == NULL)
        abort();
    return s;
}

static const ck_prov_actor csr = {.actor = "csr1@PROV.TEST"};

static void
mac_of(int i, char out[CK_DEVICE_MAC_LEN + 1])
{
    snprintf(out, CK_DEVICE_MAC_LEN + 1, "00:11:22:33:%02x:%02x", (i >> 8) & 0xff, i & 0xff);
}

static void
spki_of(int i, uint8_t out[32])
{
    memset(out, 0, 32);
    out[0] = 0xa5;
    out[30] = (uint8_t)(i >> 8);
    out[31] = (uint8_t)i;
}

/* Admits device i (principal mta-00112233xxxx@PROV.TEST). */
static int
admit(ck_store *s, int i)
{
    char mac[CK_DEVICE_MAC_LEN + 1], princ[64];
    uint8_t spki[32], cert[40];

    mac_of(i, mac);
    spki_of(i, spki);
    snprintf(princ, sizeof(princ), "mta-00112233%04x@PROV.TEST", i & 0xffff);
    memset(cert, 0x30 + (i & 0xf), sizeof(cert));
    return ck_prov_admit_unprovisioned(s, mac, princ, spki, cert, sizeof(cert), 1700000000);
}

/* In a child with its own connection: admits first..last; exits with the number admitted, or
 * 200 on any answer other than success or CK_ERR_EXISTS. */
static int
admit_range(int first, int last)
{
    ck_store *s = NULL;
    int n = 0, ret;

    if (ck_store_open(db, stash, 0, &s) != 0)
        return 200;
    for (int i = first; i <= last; i++) {
        if ((ret = admit(s, i)) == 0)
            n++;
        else if (ret != CK_ERR_EXISTS)
            n = 200;
    }
    ck_store_close(s);
    return n > 200 ? 200 : n;
}

static int64_t
add_customer(ck_store *s, const char *name, const char *segment,
             enum ck_prov_account_type type)
{
    ck_prov_customer c;

    memset(&c, 0, sizeof(c));
    c.type = type;
    c.name = (char *)name;
    c.address = (char *)"1 Main St";
    c.email = (char *)"a@example.net";
    ck_strlcpy(c.segment, segment, sizeof(c.segment));
    c.services = (char *)"{\"lines\":1}";
    CHECK_OK(ck_prov_customer_add(s, &csr, &c, NULL));
    CHECK(c.id > 0);
    return c.id;
}

static uint64_t
gen(ck_store *s)
{
    uint64_t g = 0;

    CHECK_OK(ck_store_generation(s, &g));
    return g;
}

static int
count_cb(const void *x, void *arg)
{
    (void)x;
    (*(int *)arg)++;
    return 0;
}

static int
n_events(ck_store *s, const char *mac)
{
    int n = 0;

    CHECK_OK(ck_prov_event_list(s, mac, 0, 0, 1000, (ck_prov_event_cb)count_cb, &n, NULL));
    return n;
}

static int
n_outbox(ck_store *s, int64_t now)
{
    int n = 0;

    CHECK_OK(ck_prov_outbox_due(s, now, 1000, (ck_prov_delivery_cb)count_cb, &n, NULL));
    return n;
}

static void
fake_cert(uint8_t *der, size_t len, uint8_t tag)
{
    for (size_t i = 0; i < len; i++)
        der[i] = (uint8_t)(tag + i);
}

static void
sha256(const uint8_t *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;

    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
        abort();
}

static int
act(ck_store *s, enum ck_prov_action_type t, ck_prov_action *a, ck_prov_device **out)
{
    return ck_prov_device_act(s, &csr, t, a, 1700001000, NULL, NULL, out);
}

/* ------------------------------------------------------------------------------- cases */

static void
admit_and_customers(void)
{
    ck_store *s = new_realm(), *s2 = other_conn();
    ck_prov_device *d = NULL;
    ck_db_device *kd = NULL;
    ck_db_principal *p = NULL;
    ck_prov_customer *c = NULL, mod;
    char mac[CK_DEVICE_MAC_LEN + 1];
    uint8_t spki[32];
    int64_t id;
    int n = 0;

    CHECK_OK(admit(s, 1));
    mac_of(1, mac);
    spki_of(1, spki);
    CHECK_OK(ck_prov_device_get(s, "00-11-22-33-00-01", &d));
    CHECK(d != NULL && d->state == CK_PROV_UNPROVISIONED);
    CHECK(d != NULL && strcmp(d->principal, "mta-001122330001@PROV.TEST") == 0);
    CHECK(d != NULL && d->mfg_cert_len == 40 && memcmp(d->spki_sha256, spki, 32) == 0);
    CHECK(d != NULL && d->generation > 0 && !d->has_cert);
    ck_prov_device_free(d);
    CHECK_OK(ck_store_get_device(s, mac, &kd));
    CHECK(kd != NULL && kd->state == CK_DEVICE_UNPROVISIONED && kd->has_pin && !kd->has_cert);
    CHECK(kd != NULL && memcmp(kd->spki_sha256, spki, 32) == 0);
    ck_db_device_free(kd);
    CHECK_OK(ck_store_get_principal(s, "mta-001122330001@PROV.TEST", &p));
    CHECK(p != NULL && (p->attributes & CK_ATTR_REQUIRES_PREAUTH) && p->n_keys > 0);
    ck_db_principal_free(p);
    /* the race: another KDC admitted it first (another connection) */
    CHECK_INT_EQ(admit(s2, 1), CK_ERR_EXISTS);
    CHECK_INT_EQ(n_events(s, mac), 1);
    /* a device the operator added by hand is known too */
    {
        ck_db_device dev;
        char m2[CK_DEVICE_MAC_LEN + 1];

        memset(&dev, 0, sizeof(dev));
        mac_of(2, m2);
        ck_strlcpy(dev.mac, m2, sizeof(dev.mac));
        dev.principal = (char *)"mta-001122330001@PROV.TEST";
        dev.state = CK_DEVICE_ACTIVE;
        CHECK_OK(ck_store_add_device(s, &dev));
        CHECK_INT_EQ(admit(s, 2), CK_ERR_EXISTS);
    }
    /* two KDC processes admitting the same 20 devices at once: each admitted once, the loser
     * told CK_ERR_EXISTS */
    {
        pid_t pids[2];
        int status = 0, total = 0;

        for (int k = 0; k < 2; k++) {
            if ((pids[k] = fork()) == 0)
                _exit(admit_range(100, 119));
        }
        for (int k = 0; k < 2; k++) {
            CHECK(waitpid(pids[k], &status, 0) == pids[k]);
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) <= 20);
            total += WIFEXITED(status) ? WEXITSTATUS(status) : 100;
        }
        CHECK_INT_EQ(total, 20);
        for (int i = 100; i <= 119; i++) {
            mac_of(i, mac);
            CHECK_INT_EQ(n_events(s, mac), 1);
        }
    }
    /* customers */
    id = add_customer(s, "Alice Example", "seg-a", CK_PROV_ACCOUNT_CUSTOMER);
    add_customer(s, "Bob 100%_ Other", "seg-a", CK_PROV_ACCOUNT_CUSTOMER);
    add_customer(s, "Repair Co", "seg-r", CK_PROV_ACCOUNT_REPAIR);
    CHECK_OK(ck_prov_customer_get(s, id, &c));
    CHECK(c != NULL && strcmp(c->name, "Alice Example") == 0 &&
          strcmp(c->services, "{\"lines\":1}") == 0 && strcmp(c->segment, "seg-a") == 0);
    ck_prov_customer_free(c);
    CHECK_INT_EQ(ck_prov_customer_get(s, 999, &c), CK_ERR_NOTFOUND);
    CHECK_OK(ck_prov_customer_list(s, "ALICE", 0, 10, (ck_prov_customer_cb)count_cb, &n, NULL));
    CHECK_INT_EQ(n, 1);
    n = 0;
    CHECK_OK(ck_prov_customer_list(s, "100%_", 0, 10, (ck_prov_customer_cb)count_cb, &n, NULL));
    CHECK_INT_EQ(n, 1);
    n = 0;
    CHECK_OK(ck_prov_customer_list(s, NULL, id, 10, (ck_prov_customer_cb)count_cb, &n, NULL));
    CHECK_INT_EQ(n, 2);
    memset(&mod, 0, sizeof(mod));
    mod.id = id;
    mod.email = (char *)"";
    mod.services = (char *)"{\"lines\":2}";
    CHECK_OK(ck_prov_customer_modify(s, &csr, &mod, NULL));
    CHECK_OK(ck_prov_customer_get(s, id, &c));
    CHECK(c != NULL && c->email == NULL && strcmp(c->services, "{\"lines\":2}") == 0 &&
          strcmp(c->name, "Alice Example") == 0);
    ck_prov_customer_free(c);
    /* bad fields are named and change nothing */
    memset(&mod, 0, sizeof(mod));
    mod.type = CK_PROV_ACCOUNT_CUSTOMER;
    mod.name = (char *)"Bad\x01Name";
    mod.address = (char *)"x";
    ck_strlcpy(mod.segment, "seg-a", sizeof(mod.segment));
    CHECK_INT_EQ(ck_prov_customer_add(s, &csr, &mod, NULL), CK_ERR_INVAL);
    CHECK(strstr(ck_error_context(), "name") != NULL);
    mod.name = (char *)"Good";
    ck_strlcpy(mod.segment, "seg a", sizeof(mod.segment));
    CHECK_INT_EQ(ck_prov_customer_add(s, &csr, &mod, NULL), CK_ERR_INVAL);
    CHECK(strstr(ck_error_context(), "segment") != NULL);
    n = 0;
    CHECK_OK(ck_prov_customer_list(s, NULL, 0, 10, (ck_prov_customer_cb)count_cb, &n, NULL));
    CHECK_INT_EQ(n, 3);
    ck_store_close(s2);
    ck_store_close(s);
}

struct ev_check {
    int64_t last;
    int n;
    bool ordered;
    char actions[16][32];
    int64_t ids[16];
};

static int
ev_cb(const ck_prov_event *e, void *arg)
{
    struct ev_check *c = arg;

    if (c->last != 0 && e->id >= c->last)
        c->ordered = false;
    c->last = e->id;
    if (c->n < 16) {
        ck_strlcpy(c->actions[c->n], e->action, sizeof(c->actions[0]));
        c->ids[c->n] = e->id;
    }
    c->n++;
    return 0;
}

static void
lifecycle(void)
{
    ck_store *s = new_realm();
    ck_prov_device *d = NULL;
    ck_db_device *kd = NULL;
    ck_prov_cert *pc = NULL;
    ck_prov_action a;
    char mac[CK_DEVICE_MAC_LEN + 1], m3[CK_DEVICE_MAC_LEN + 1], *princ = NULL, lm[18];
    uint8_t der[300], der2[200], der3[100], sha[32];
    int64_t cust, cust2, facility;
    struct ev_check ev = {.ordered = true};
    size_t added = 0;
    bool known = false, current = false;

    CHECK_OK(ck_prov_pool_add(s, &csr, "seg-a", "5550100", "5550109", &added));
    CHECK_INT_EQ(added, 10);
    CHECK_OK(ck_prov_pool_add(s, &csr, "seg-a", "5550105", "5550110", &added));
    CHECK_INT_EQ(added, 1);
    CHECK_OK(ck_prov_pool_add(s, &csr, "seg-b", "6660000", "6660004", &added));
    cust = add_customer(s, "Alice", "seg-a", CK_PROV_ACCOUNT_CUSTOMER);
    cust2 = add_customer(s, "Carol", "seg-a", CK_PROV_ACCOUNT_CUSTOMER);
    facility = add_customer(s, "Repair Co", "seg-r", CK_PROV_ACCOUNT_REPAIR);
    CHECK_OK(admit(s, 1));
    CHECK_OK(admit(s, 3));
    mac_of(1, mac);
    mac_of(3, m3);

    /* wrong states from UNPROVISIONED: each refused, named, nothing changed */
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.services = "{}";
    a.segment = "seg-b";
    a.customer_id = facility;
    {
        static const enum ck_prov_action_type refused[] = {
            CK_PROV_ACT_CHANGE_SERVICE, CK_PROV_ACT_DEPROVISION, CK_PROV_ACT_MOVE,
            CK_PROV_ACT_REPAIR, CK_PROV_ACT_RETURN, CK_PROV_ACT_REINSTATE};
        uint64_t g = gen(s);

        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
            CHECK_INT_EQ(act(s, refused[i], &a, NULL), CK_ERR_POLICY);
            CHECK(strstr(ck_error_context(), "unprovisioned") != NULL);
            CHECK(strstr(ck_error_context(), ck_prov_action_name(refused[i])) != NULL);
        }
        CHECK(gen(s) == g);
        CHECK_INT_EQ(n_events(s, mac), 1);
    }

    /* provision: the lowest free number, the certificate, the KDC row ACTIVE with its hash */
    fake_cert(der, sizeof(der), 1);
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.customer_id = cust;
    a.fqdn = "mta-001122330001.mta.example.net";
    a.ipv4 = (const uint8_t[]){10, 0, 0, 7};
    a.cert_der = der;
    a.cert_len = sizeof(der);
    a.cert_not_before = 1700000000;
    a.cert_not_after = 1800000000;
    CHECK_OK(act(s, CK_PROV_ACT_PROVISION, &a, &d));
    CHECK(d != NULL && d->state == CK_PROV_PROVISIONED && d->n_numbers == 1 &&
          strcmp(d->numbers[0], "5550100") == 0 && d->customer_id == cust && d->has_cert &&
          strcmp(d->segment, "seg-a") == 0 && d->ipv4[3] == 7);
    ck_prov_device_free(d);
    sha256(der, sizeof(der), sha);
    CHECK_OK(ck_store_get_device(s, mac, &kd));
    CHECK(kd != NULL && kd->state == CK_DEVICE_ACTIVE && kd->has_cert &&
          memcmp(kd->cert_sha256, sha, 32) == 0);
    ck_db_device_free(kd);
    CHECK_OK(ck_prov_number_lookup(s, "5550100", &princ, lm));
    CHECK(princ != NULL && strcmp(princ, "mta-001122330001@PROV.TEST") == 0 &&
          strcmp(lm, mac) == 0);
    free(princ);
    princ = NULL;
    CHECK_INT_EQ(ck_prov_number_lookup(s, "5550101", &princ, lm), CK_ERR_NOTFOUND);
    CHECK_OK(ck_prov_cert_current(s, mac, &pc));
    CHECK(pc != NULL && pc->der_len == sizeof(der) && !pc->acked && !pc->superseded);
    if (pc != NULL) {
        CHECK_OK(ck_prov_cert_ack(s, mac, pc->id, 1700001100));
        CHECK_OK(ck_prov_cert_ack(s, mac, pc->id, 1700001100)); /* twice: nothing */
        CHECK_INT_EQ(ck_prov_cert_ack(s, m3, pc->id, 1700001100), CK_ERR_NOTFOUND);
        ck_prov_cert_free(pc);
        pc = NULL;
    }
    CHECK_OK(ck_prov_cert_current(s, mac, &pc));
    CHECK(pc != NULL && pc->acked);
    ck_prov_cert_free(pc);
    pc = NULL;
    /* provisioned twice: refused */
    CHECK_INT_EQ(act(s, CK_PROV_ACT_PROVISION, &a, NULL), CK_ERR_POLICY);
    CHECK_INT_EQ(act(s, CK_PROV_ACT_RETURN, &a, NULL), CK_ERR_POLICY);
    CHECK_INT_EQ(act(s, CK_PROV_ACT_REINSTATE, &a, NULL), CK_ERR_POLICY);

    /* change of service, no new certificate: the KDC keeps the hash */
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.services = "{\"lines\":1,\"cw\":true}";
    CHECK_OK(act(s, CK_PROV_ACT_CHANGE_SERVICE, &a, NULL));
    CHECK_OK(ck_store_get_device(s, mac, &kd));
    CHECK(kd != NULL && kd->has_cert && memcmp(kd->cert_sha256, sha, 32) == 0);
    ck_db_device_free(kd);

    /* move to seg-b with a new certificate: old number freed, new one from seg-b */
    fake_cert(der2, sizeof(der2), 9);
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.segment = "seg-b";
    a.cert_der = der2;
    a.cert_len = sizeof(der2);
    CHECK_OK(act(s, CK_PROV_ACT_MOVE, &a, &d));
    CHECK(d != NULL && d->n_numbers == 1 && strcmp(d->numbers[0], "6660000") == 0 &&
          strcmp(d->segment, "seg-b") == 0);
    ck_prov_device_free(d);
    CHECK_INT_EQ(ck_prov_number_lookup(s, "5550100", &princ, lm), CK_ERR_NOTFOUND);
    CHECK_OK(ck_prov_cert_status(s, mac, sha, &known, &current));
    CHECK(known && !current);
    sha256(der2, sizeof(der2), sha);
    CHECK_OK(ck_prov_cert_status(s, mac, sha, &known, &current));
    CHECK(known && current);
    memset(sha, 0x77, sizeof(sha));
    CHECK_OK(ck_prov_cert_status(s, mac, sha, &known, &current));
    CHECK(!known && !current);

    /* repair: the facility's account, owner and numbers kept; short certificate */
    fake_cert(der3, sizeof(der3), 20);
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.customer_id = cust; /* not a facility */
    CHECK_INT_EQ(act(s, CK_PROV_ACT_REPAIR, &a, NULL), CK_ERR_INVAL);
    a.customer_id = facility;
    a.cert_der = der3;
    a.cert_len = sizeof(der3);
    a.cert_not_before = 1700001000;
    a.cert_not_after = 1700001000 + 3600;
    CHECK_OK(act(s, CK_PROV_ACT_REPAIR, &a, &d));
    CHECK(d != NULL && d->state == CK_PROV_REPAIR && d->customer_id == facility &&
          d->owner_id == cust && d->n_numbers == 1);
    ck_prov_device_free(d);
    CHECK_OK(ck_prov_number_lookup(s, "6660000", &princ, lm)); /* in repair: still its line */
    free(princ);
    princ = NULL;
    a.segment = "seg-b";
    CHECK_INT_EQ(act(s, CK_PROV_ACT_MOVE, &a, NULL), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "repair") != NULL);

    /* loaner for it: device 3, provisioned to the owner */
    memset(&a, 0, sizeof(a));
    a.mac = m3;
    a.customer_id = cust;
    a.loaner_for = "00:11:22:33:00:99";
    CHECK_INT_EQ(act(s, CK_PROV_ACT_LOANER, &a, NULL), CK_ERR_NOTFOUND);
    a.loaner_for = mac;
    CHECK_OK(act(s, CK_PROV_ACT_LOANER, &a, &d));
    CHECK(d != NULL && d->state == CK_PROV_PROVISIONED && d->loaner_for != NULL &&
          strcmp(d->loaner_for, mac) == 0 && strcmp(d->numbers[0], "5550100") == 0);
    ck_prov_device_free(d);

    /* return: the owner's account back, a new certificate */
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.cert_der = der;
    a.cert_len = sizeof(der);
    CHECK_OK(act(s, CK_PROV_ACT_RETURN, &a, &d));
    CHECK(d != NULL && d->state == CK_PROV_PROVISIONED && d->customer_id == cust &&
          d->owner_id == 0 && d->has_cert);
    ck_prov_device_free(d);

    /* deprovision the loaner: number freed, KDC row UNPROVISIONED, no certificate */
    memset(&a, 0, sizeof(a));
    a.mac = m3;
    a.reason = "loaner back";
    CHECK_OK(act(s, CK_PROV_ACT_DEPROVISION, &a, &d));
    CHECK(d != NULL && d->state == CK_PROV_UNPROVISIONED && d->n_numbers == 0 &&
          d->customer_id == 0 && d->loaner_for == NULL);
    ck_prov_device_free(d);
    CHECK_OK(ck_store_get_device(s, m3, &kd));
    CHECK(kd != NULL && kd->state == CK_DEVICE_UNPROVISIONED && !kd->has_cert);
    ck_db_device_free(kd);
    CHECK_INT_EQ(ck_prov_number_lookup(s, "5550100", &princ, lm), CK_ERR_NOTFOUND);

    /* revoke (stolen), revoke again refused, reinstate */
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.reason = "stolen";
    CHECK_OK(act(s, CK_PROV_ACT_REVOKE, &a, NULL));
    CHECK_OK(ck_store_get_device(s, mac, &kd));
    CHECK(kd != NULL && kd->state == CK_DEVICE_REVOKED && !kd->has_cert && kd->revoked != 0);
    ck_db_device_free(kd);
    CHECK_INT_EQ(act(s, CK_PROV_ACT_REVOKE, &a, NULL), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "revoked") != NULL);
    CHECK_INT_EQ(act(s, CK_PROV_ACT_PROVISION, &a, NULL), CK_ERR_INVAL); /* no customer */
    a.customer_id = cust2;
    CHECK_INT_EQ(act(s, CK_PROV_ACT_PROVISION, &a, NULL), CK_ERR_POLICY);
    CHECK_OK(act(s, CK_PROV_ACT_REINSTATE, &a, &d));
    CHECK(d != NULL && d->state == CK_PROV_UNPROVISIONED && d->customer_id == 0);
    ck_prov_device_free(d);
    CHECK_OK(ck_store_get_device(s, mac, &kd));
    CHECK(kd != NULL && kd->state == CK_DEVICE_UNPROVISIONED);
    ck_db_device_free(kd);

    /* the history: newest first, every action once */
    CHECK_OK(ck_prov_event_list(s, mac, 0, 0, 50, ev_cb, &ev, NULL));
    CHECK(ev.ordered);
    CHECK_INT_EQ(ev.n, 9);
    if (ev.n == 9) {
        static const char *const want[] = {"reinstate", "revoke", "return", "repair", "move",
                                           "change-service", "cert-ack", "provision",
                                           "admitted"};
        CHECK(strcmp(ev.actions[0], want[0]) == 0 && strcmp(ev.actions[1], want[1]) == 0 &&
              strcmp(ev.actions[2], want[2]) == 0 && strcmp(ev.actions[3], want[3]) == 0 &&
              strcmp(ev.actions[4], want[4]) == 0 && strcmp(ev.actions[5], want[5]) == 0 &&
              strcmp(ev.actions[6], want[6]) == 0 && strcmp(ev.actions[7], want[7]) == 0);
    }
    /* paging with before */
    {
        struct ev_check ev2 = {.ordered = true};

        CHECK_OK(ck_prov_event_list(s, mac, 0, ev.ids[2], 50, ev_cb, &ev2, NULL));
        CHECK_INT_EQ(ev2.n, ev.n - 3);
        CHECK(ev2.ordered && ev2.ids[0] == ev.ids[3]);
    }
    /* search */
    {
        ck_prov_device_query q = {.state = CK_PROV_UNPROVISIONED, .limit = 10};
        int n = 0;

        CHECK_OK(ck_prov_device_list(s, &q, (ck_prov_device_cb)count_cb, &n, NULL));
        CHECK_INT_EQ(n, 2);
        memset(&q, 0, sizeof(q));
        q.customer_id = cust;
        q.limit = 10;
        n = 0;
        CHECK_OK(ck_prov_device_list(s, &q, (ck_prov_device_cb)count_cb, &n, NULL));
        CHECK_INT_EQ(n, 0);
        memset(&q, 0, sizeof(q));
        q.limit = 1;
        q.after = mac;
        n = 0;
        CHECK_OK(ck_prov_device_list(s, &q, (ck_prov_device_cb)count_cb, &n, NULL));
        CHECK_INT_EQ(n, 1);
        q.mac = mac;
        q.state = 1;
        CHECK_INT_EQ(ck_prov_device_list(s, &q, (ck_prov_device_cb)count_cb, &n, NULL),
                     CK_ERR_INVAL);
    }
    /* the audit row names the CSR */
    {
        ck_audit_filter f = {.object = mac, .action = "prov.revoke", .limit = 10};
        struct {
            int n;
            bool actor_ok;
        } r = {0, false};

        CHECK_OK(ck_store_audit_list(s, &f, (ck_store_audit_cb)count_cb, &r.n));
        CHECK_INT_EQ(r.n, 1);
    }
    ck_store_close(s);
}

struct picks {
    int64_t id[64];
    char target[64][64];
    bool body_ok[64];
    int64_t delivered[64];
    int n;
};

static int
pick_cb(const ck_prov_delivery *d, void *arg)
{
    struct picks *p = arg;

    if (p->n < 64) {
        p->id[p->n] = d->id;
        ck_strlcpy(p->target[p->n], d->target, sizeof(p->target[0]));
        p->body_ok[p->n] = d->body[0] == '{' && strstr(d->body, "\"event\":\"") != NULL;
        p->delivered[p->n] = d->delivered;
    }
    p->n++;
    return 0;
}

static int
audit_actor_cb(const ck_audit_entry *e, void *arg)
{
    if (strcmp(e->actor, "csr1@PROV.TEST") == 0)
        (*(int *)arg)++;
    return 0;
}

static void
idempotency_and_outbox(void)
{
    ck_store *s = new_realm();
    static const char *const targets[] = {"billing", "headend"};
    ck_prov_actor who = {.actor = "csr1@PROV.TEST", .idem_key = "req-1"};
    ck_prov_action a;
    char mac[CK_DEVICE_MAC_LEN + 1];
    int64_t cust, ev1 = 0, ev2 = 0, replayed = 0;
    ck_prov_device *d = NULL;
    int n_audit = 0;
    const int64_t T = 4000000000; /* after every row's creation time */

    CHECK_OK(ck_prov_outbox_targets(s, targets, 2));
    CHECK_OK(ck_prov_pool_add(s, &csr, "seg-a", "100", "199", NULL));
    cust = add_customer(s, "Alice", "seg-a", CK_PROV_ACCOUNT_CUSTOMER);
    CHECK_INT_EQ(n_outbox(s, T), 2); /* customer.added, once per target */
    CHECK_OK(admit(s, 1));
    CHECK_INT_EQ(n_outbox(s, T), 4);
    mac_of(1, mac);
    memset(who.request_sha256, 0x11, 32);
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.customer_id = cust;
    CHECK_OK(ck_prov_device_act(s, &who, CK_PROV_ACT_PROVISION, &a, 1700001000, &ev1, NULL,
                                NULL));
    CHECK(ev1 > 0);
    CHECK_INT_EQ(n_outbox(s, T), 6);
    /* the same request again: nothing done twice, the first event named */
    CHECK_INT_EQ(ck_prov_device_act(s, &who, CK_PROV_ACT_PROVISION, &a, 1700001001, &ev2,
                                    &replayed, &d),
                 CK_ERR_EXISTS);
    CHECK(replayed == ev1 && ev2 == 0 && d == NULL);
    CHECK_INT_EQ(n_events(s, mac), 2);
    CHECK_INT_EQ(n_outbox(s, T), 6);
    /* the key again for another request */
    memset(who.request_sha256, 0x22, 32);
    CHECK_INT_EQ(ck_prov_device_act(s, &who, CK_PROV_ACT_DEPROVISION, &a, 1700001002, NULL,
                                    &replayed, NULL),
                 CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "idempotency key") != NULL);
    CHECK_OK(ck_prov_device_get(s, mac, &d));
    CHECK(d != NULL && d->state == CK_PROV_PROVISIONED);
    ck_prov_device_free(d);
    d = NULL;
    /* after the retention the key is free again */
    CHECK_OK(ck_prov_device_act(s, &who, CK_PROV_ACT_DEPROVISION, &a,
                                1700001002 + CK_PROV_IDEM_RETENTION + 1, NULL, &replayed, NULL));
    /* customer add under a key: replayed too */
    {
        ck_prov_customer c;
        ck_prov_actor w2 = {.actor = "oss@PROV.TEST", .idem_key = "cust:7"};
        int n = 0;

        memset(&c, 0, sizeof(c));
        c.type = CK_PROV_ACCOUNT_CUSTOMER;
        c.name = (char *)"Dave";
        c.address = (char *)"2 Main St";
        ck_strlcpy(c.segment, "seg-a", sizeof(c.segment));
        CHECK_OK(ck_prov_customer_add(s, &w2, &c, NULL));
        CHECK_INT_EQ(ck_prov_customer_add(s, &w2, &c, &replayed), CK_ERR_EXISTS);
        CHECK(replayed > 0);
        CHECK_OK(ck_prov_customer_list(s, "dave", 0, 10, (ck_prov_customer_cb)count_cb, &n,
                                       NULL));
        CHECK_INT_EQ(n, 1);
    }
    /* outbox: attempts, backoff, delivery, the log */
    {
        struct picks p = {0};
        int n = n_outbox(s, T), n_all = 0;

        CHECK(n >= 6);
        CHECK_OK(ck_prov_outbox_list(s, 0, 100, (ck_prov_delivery_cb)count_cb, &n_all, NULL));
        CHECK_INT_EQ(n_all, n_outbox(s, INT64_MAX - 1));
        CHECK_OK(ck_prov_outbox_due(s, T, 2, pick_cb, &p, NULL));
        CHECK_INT_EQ(p.n, 2);
        CHECK(p.id[0] < p.id[1]);
        CHECK(strcmp(p.target[0], "billing") == 0 && strcmp(p.target[1], "headend") == 0);
        CHECK(p.body_ok[0]);
        /* a failed attempt: not due before its next time */
        CHECK_OK(ck_prov_outbox_attempt(s, p.id[0], -1, false, T + 10, T));
        CHECK_INT_EQ(n_outbox(s, T + 5), n - 1);
        CHECK_INT_EQ(n_outbox(s, T + 10), n);
        CHECK_INT_EQ(ck_prov_outbox_attempt(s, p.id[0], 500, false, 1, T),
                     CK_ERR_INVAL);
        /* delivered: never due again, and a second report is refused */
        CHECK_OK(ck_prov_outbox_attempt(s, p.id[0], 200, true, 0, T + 11));
        CHECK_INT_EQ(ck_prov_outbox_attempt(s, p.id[0], 200, true, 0, T + 12),
                     CK_ERR_NOTFOUND);
        /* given up: kept in the log, not due */
        CHECK_OK(ck_prov_outbox_attempt(s, p.id[1], 503, false, CK_PROV_OUTBOX_GIVEN_UP,
                                        T + 11));
        CHECK_INT_EQ(n_outbox(s, INT64_MAX - 1), n - 2);
        memset(&p, 0, sizeof(p));
        CHECK_OK(ck_prov_outbox_list(s, 0, 100, pick_cb, &p, NULL));
        CHECK_INT_EQ(p.n, n_all);
        CHECK(p.n >= 2 && p.id[0] > p.id[1]); /* newest first */
    }
    CHECK_OK(ck_store_audit_list(s, &(ck_audit_filter){.object = mac, .limit = 100},
                                 audit_actor_cb, &n_audit));
    CHECK(n_audit >= 2);
    ck_store_close(s);
}

/* Provisions devices first..last (admitted) with the next free number of seg-a, in a process of
 * its own with its own connection; exits 0 if every one succeeded. */
static int
provision_range(int first, int last)
{
    ck_store *s = NULL;
    ck_prov_action a;
    char mac[CK_DEVICE_MAC_LEN + 1];
    int bad = 0;

    if (ck_store_open(db, stash, 0, &s) != 0)
        return 1;
    for (int i = first; i <= last; i++) {
        mac_of(i, mac);
        memset(&a, 0, sizeof(a));
        a.mac = mac;
        a.customer_id = 1;
        if (ck_prov_device_act(s, &csr, CK_PROV_ACT_PROVISION, &a, 1700001000, NULL, NULL,
                               NULL) != 0) {
            fprintf(stderr, "  provision %s: %s\n", mac, ck_error_context());
            bad++;
        }
    }
    ck_store_close(s);
    return bad != 0;
}

struct numbers_seen {
    char n[64][CK_PROV_NUMBER_MAX + 1];
    int count;
    bool dup;
};

static int
numbers_cb(const ck_prov_device *d, void *arg)
{
    struct numbers_seen *ns = arg;

    for (size_t k = 0; k < d->n_numbers; k++) {
        for (int j = 0; j < ns->count; j++)
            if (strcmp(ns->n[j], d->numbers[k]) == 0)
                ns->dup = true;
        if (ns->count < 64)
            ck_strlcpy(ns->n[ns->count++], d->numbers[k], sizeof(ns->n[0]));
    }
    return 0;
}

static void
numbers(void)
{
    ck_store *s = new_realm();
    ck_prov_action a;
    ck_prov_pool_stats st;
    ck_prov_device *d = NULL;
    char mac[CK_DEVICE_MAC_LEN + 1], next[CK_PROV_NUMBER_MAX + 1];
    struct numbers_seen ns = {.count = 0};
    ck_prov_device_query q = {.state = CK_PROV_PROVISIONED, .limit = 100};
    pid_t pids[2];
    size_t added = 0;
    int status = 0;

    CHECK(add_customer(s, "Alice", "seg-a", CK_PROV_ACCOUNT_CUSTOMER) == 1);
    CHECK_OK(ck_prov_pool_add(s, &csr, "seg-a", "0040", "0069", &added));
    CHECK_INT_EQ(added, 30);
    CHECK_INT_EQ(ck_prov_pool_add(s, &csr, "seg-a", "10", "9", &added), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_prov_pool_add(s, &csr, "seg-a", "10", "100", &added), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_prov_pool_add(s, &csr, "seg-a", "1x", "20", &added), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_prov_pool_add(s, &csr, "seg-a", "0000000", "2000000", &added),
                 CK_ERR_LIMIT);
    CHECK_OK(ck_prov_pool_add(s, &csr, "seg-b", "0070", "0070", &added));
    CHECK_OK(ck_prov_number_next(s, "seg-a", next));
    CHECK(strcmp(next, "0040") == 0);
    /* the back's workers skip the numbers another worker has picked */
    CHECK_OK(ck_prov_number_next_after(s, "seg-a", "0040", next));
    CHECK(strcmp(next, "0041") == 0);
    CHECK_OK(ck_prov_number_next_after(s, "seg-a", "0055", next));
    CHECK(strcmp(next, "0056") == 0);
    CHECK_INT_EQ(ck_prov_number_next_after(s, "seg-a", "0069", next), CK_ERR_FULL);
    CHECK_INT_EQ(ck_prov_number_next_after(s, "seg-b", "0070", next), CK_ERR_FULL);
    CHECK_INT_EQ(ck_prov_number_next_after(s, "seg-a", "", next), CK_ERR_INVAL);
    CHECK_OK(ck_prov_number_next_after(s, "seg-a", NULL, next));
    CHECK(strcmp(next, "0040") == 0);
    for (int i = 1; i <= 32; i++)
        CHECK_OK(admit(s, i));
    /* two processes provisioning at once never share a number */
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        if (pids[k] == 0)
            _exit(provision_range(1 + k * 14, 14 + k * 14));
    }
    for (int k = 0; k < 2; k++) {
        CHECK(waitpid(pids[k], &status, 0) == pids[k]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK_OK(ck_prov_device_list(s, &q, numbers_cb, &ns, NULL));
    CHECK_INT_EQ(ns.count, 28);
    CHECK(!ns.dup);
    CHECK_OK(ck_prov_pool_stats_get(s, "seg-a", &st));
    CHECK(st.free == 2 && st.assigned == 28);
    /* a number taken, one of another segment, one in no pool */
    mac_of(29, mac);
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.customer_id = 1;
    a.number = "0040";
    CHECK_INT_EQ(act(s, CK_PROV_ACT_PROVISION, &a, NULL), CK_ERR_EXISTS);
    CHECK(strstr(ck_error_context(), "0040") != NULL);
    a.number = "0070";
    CHECK_INT_EQ(act(s, CK_PROV_ACT_PROVISION, &a, NULL), CK_ERR_INVAL);
    a.number = "0999";
    CHECK_INT_EQ(act(s, CK_PROV_ACT_PROVISION, &a, NULL), CK_ERR_NOTFOUND);
    a.number = NULL;
    CHECK_OK(act(s, CK_PROV_ACT_PROVISION, &a, NULL));
    mac_of(30, mac);
    CHECK_OK(act(s, CK_PROV_ACT_PROVISION, &a, NULL));
    /* exhausted: refused, nothing changed */
    mac_of(31, mac);
    {
        uint64_t g = gen(s);

        CHECK_INT_EQ(act(s, CK_PROV_ACT_PROVISION, &a, NULL), CK_ERR_FULL);
        CHECK_INT_EQ(ck_prov_number_next(s, "seg-a", next), CK_ERR_FULL);
        CHECK(gen(s) == g);
        CHECK_OK(ck_prov_device_get(s, mac, &d));
        CHECK(d != NULL && d->state == CK_PROV_UNPROVISIONED && d->n_numbers == 0);
        ck_prov_device_free(d);
        CHECK_INT_EQ(n_events(s, mac), 1);
    }
    /* a freed number is the next one again */
    mac_of(1, mac);
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    CHECK_OK(ck_prov_device_get(s, mac, &d));
    if (d != NULL)
        ck_strlcpy(next, d->numbers[0], sizeof(next));
    ck_prov_device_free(d);
    CHECK_OK(act(s, CK_PROV_ACT_DEPROVISION, &a, NULL));
    {
        char again[CK_PROV_NUMBER_MAX + 1];

        CHECK_OK(ck_prov_number_next(s, "seg-a", again));
        CHECK(strcmp(again, next) == 0);
    }
    ck_store_close(s);
}

/* A failure after the number was taken (the KDC row is gone) leaves no trace; a second
 * connection's KDC device cache sees each action at its next lookup. */
static void
atomic_and_cache(void)
{
    ck_store *s = new_realm(), *kdc = other_conn();
    const ck_db_device *cd = NULL;
    ck_prov_action a;
    ck_prov_pool_stats st;
    char mac[CK_DEVICE_MAC_LEN + 1];
    uint8_t der[64], sha[32];
    uint64_t g;
    int64_t cust;

    cust = add_customer(s, "Alice", "seg-a", CK_PROV_ACCOUNT_CUSTOMER);
    CHECK_OK(ck_prov_pool_add(s, &csr, "seg-a", "500", "509", NULL));
    CHECK_OK(admit(s, 1));
    CHECK_OK(admit(s, 2));
    mac_of(1, mac);
    fake_cert(der, sizeof(der), 3);
    sha256(der, sizeof(der), sha);

    ck_store_cache_begin(kdc);
    CHECK_OK(ck_store_get_device_cached(kdc, mac, &cd));
    CHECK(cd != NULL && cd->state == CK_DEVICE_UNPROVISIONED && !cd->has_cert);
    /* the other connection knew the next device's principal as absent; admission creates it
     * and that connection sees it at its next check */
    {
        const ck_db_principal *cp = NULL;
        char m9[CK_DEVICE_MAC_LEN + 1];

        mac_of(9, m9);
        CHECK_INT_EQ(ck_store_get_principal_cached(kdc, "mta-001122330009@PROV.TEST", &cp),
                     CK_ERR_NOTFOUND);
        CHECK_INT_EQ(ck_store_get_device_cached(kdc, m9, &cd), CK_ERR_NOTFOUND);
        CHECK_OK(admit(s, 9));
        ck_store_cache_refresh(kdc);
        CHECK_OK(ck_store_get_device_cached(kdc, m9, &cd));
        CHECK(cd != NULL && cd->state == CK_DEVICE_UNPROVISIONED && cd->has_pin);
        CHECK_OK(ck_store_get_principal_cached(kdc, "mta-001122330009@PROV.TEST", &cp));
        CHECK(cp != NULL && (cp->attributes & CK_ATTR_REQUIRES_PREAUTH));
        ck_store_cache_begin(kdc);
    }
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.customer_id = cust;
    a.cert_der = der;
    a.cert_len = sizeof(der);
    CHECK_OK(act(s, CK_PROV_ACT_PROVISION, &a, NULL));
    ck_store_cache_begin(kdc);
    CHECK_OK(ck_store_get_device_cached(kdc, mac, &cd));
    CHECK(cd != NULL && cd->state == CK_DEVICE_ACTIVE && cd->has_cert &&
          memcmp(cd->cert_sha256, sha, 32) == 0);
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    CHECK_OK(act(s, CK_PROV_ACT_DEPROVISION, &a, NULL));
    ck_store_cache_begin(kdc);
    CHECK_OK(ck_store_get_device_cached(kdc, mac, &cd));
    CHECK(cd != NULL && cd->state == CK_DEVICE_UNPROVISIONED && !cd->has_cert);
    CHECK_OK(act(s, CK_PROV_ACT_REVOKE, &a, NULL));
    ck_store_cache_begin(kdc);
    CHECK_OK(ck_store_get_device_cached(kdc, mac, &cd));
    CHECK(cd != NULL && cd->state == CK_DEVICE_REVOKED);

    /* device 2's KDC row deleted by the operator: the action fails late, leaves nothing */
    mac_of(2, mac);
    CHECK_OK(ck_store_delete_device(s, mac));
    g = gen(s);
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.customer_id = cust;
    a.cert_der = der;
    a.cert_len = sizeof(der);
    CHECK_INT_EQ(act(s, CK_PROV_ACT_PROVISION, &a, NULL), CK_ERR_NOTFOUND);
    CHECK(gen(s) == g);
    CHECK_OK(ck_prov_pool_stats_get(s, "seg-a", &st));
    CHECK(st.assigned == 0 && st.free == 10);
    CHECK_INT_EQ(n_events(s, mac), 1);
    {
        ck_prov_cert *c = NULL;
        bool known = true, current = true;

        CHECK_INT_EQ(ck_prov_cert_current(s, mac, &c), CK_ERR_NOTFOUND);
        CHECK_OK(ck_prov_cert_status(s, mac, sha, &known, &current));
        CHECK(!known && !current);
    }
    /* the deleted device comes back as a new one at its next login, its history kept */
    CHECK_OK(admit(s, 2));
    {
        ck_prov_device *d2 = NULL;

        CHECK_OK(ck_prov_device_get(s, mac, &d2));
        CHECK(d2 != NULL && d2->state == CK_PROV_UNPROVISIONED && d2->n_numbers == 0 &&
              d2->customer_id == 0);
        ck_prov_device_free(d2);
    }
    CHECK_INT_EQ(n_events(s, mac), 2);
    CHECK_INT_EQ(admit(s, 2), CK_ERR_EXISTS);
    /* unknown MAC, bad MAC, read-only store */
    a.mac = "00:11:22:33:99:99";
    CHECK_INT_EQ(act(s, CK_PROV_ACT_PROVISION, &a, NULL), CK_ERR_NOTFOUND);
    a.mac = "00:11:22:33:99";
    CHECK_INT_EQ(act(s, CK_PROV_ACT_PROVISION, &a, NULL), CK_ERR_INVAL);
    CHECK(strstr(ck_error_context(), "mac") != NULL);
    {
        ck_store *ro = NULL;

        CHECK_OK(ck_store_open(db, stash, CK_STORE_READONLY, &ro));
        mac_of(1, mac);
        a.mac = mac;
        CHECK_INT_EQ(act(ro, CK_PROV_ACT_REINSTATE, &a, NULL), CK_ERR_PERM);
        ck_store_close(ro);
    }
    /* a report: the unprovisioned address, a clone refused */
    {
        uint8_t spki[32];
        ck_prov_device *d = NULL;
        ck_prov_device_query q = {.unprov_ip = "10.1.2.3", .limit = 10};
        int n = 0;

        mac_of(1, mac);
        a.mac = mac;
        CHECK_OK(act(s, CK_PROV_ACT_REINSTATE, &a, NULL));
        spki_of(1, spki);
        CHECK_OK(ck_prov_device_report(s, &(ck_prov_actor){.actor = "cms:cms@PROV.TEST"}, mac,
                                       spki, "10.1.2.3", "cms/ctl@PROV.TEST", 1700002000));
        spki[5] ^= 1;
        CHECK_INT_EQ(ck_prov_device_report(s, &(ck_prov_actor){.actor = "cms"}, mac, spki,
                                           "10.9.9.9", "cms/ctl@PROV.TEST", 1700002001),
                     CK_ERR_INTEGRITY);
        CHECK_OK(ck_prov_device_get(s, mac, &d));
        CHECK(d != NULL && strcmp(d->unprov_ip, "10.1.2.3") == 0 && d->reported_by != NULL &&
              d->last_seen == 1700002000);
        ck_prov_device_free(d);
        CHECK_OK(ck_prov_device_list(s, &q, (ck_prov_device_cb)count_cb, &n, NULL));
        CHECK_INT_EQ(n, 1);
        CHECK_INT_EQ(ck_prov_device_report(s, &(ck_prov_actor){.actor = "cms"},
                                           "00:11:22:33:99:98", NULL, "10.1.1.1", NULL,
                                           1700002000),
                     CK_ERR_NOTFOUND);
    }
    /* a revoked device whose KDC record an operator deleted is not admitted again */
    mac_of(1, mac);
    a.mac = mac;
    CHECK_OK(act(s, CK_PROV_ACT_REVOKE, &a, NULL));
    CHECK_OK(ck_store_delete_device(s, mac));
    CHECK_INT_EQ(admit(s, 1), CK_ERR_POLICY);
    CHECK(strstr(ck_error_context(), "revoked") != NULL);
    CHECK_INT_EQ(ck_store_get_device(s, mac, &(ck_db_device *){NULL}), CK_ERR_NOTFOUND);
    ck_store_close(kdc);
    ck_store_close(s);
}

static int
line_cb(const ck_prov_line *l, void *arg)
{
    (void)l;
    (*(int *)arg)++;
    return 0;
}

/* dump -> load keeps customers, devices (with their operator certificate hash), numbers,
 * certificates, history, idempotency records and the outbox. */
static void
dump_load(void)
{
    ck_store *s = new_realm(), *l = NULL;
    ck_prov_action a;
    ck_prov_device *d1 = NULL, *d2 = NULL;
    ck_db_device *k1 = NULL, *k2 = NULL;
    char mac[CK_DEVICE_MAC_LEN + 1], path[300], db2[600], *princ = NULL, lm[18];
    uint8_t der[80];
    static const char *const targets[] = {"billing"};
    ck_store_dump_info info;
    int64_t cust, ev_before = 0, ev_after = 0;
    ck_prov_actor who = {.actor = "csr1@PROV.TEST", .idem_key = "k1"};
    FILE *f;
    int n1 = 0, n2 = 0;

    CHECK_OK(ck_prov_outbox_targets(s, targets, 1));
    cust = add_customer(s, "Alice \"Q\" Ünïcode", "seg-a", CK_PROV_ACCOUNT_CUSTOMER);
    CHECK_OK(ck_prov_pool_add(s, &csr, "seg-a", "700", "704", NULL));
    CHECK_OK(admit(s, 1));
    mac_of(1, mac);
    fake_cert(der, sizeof(der), 0);
    memset(&a, 0, sizeof(a));
    a.mac = mac;
    a.customer_id = cust;
    a.cert_der = der;
    a.cert_len = sizeof(der);
    memset(who.request_sha256, 7, 32);
    CHECK_OK(ck_prov_device_act(s, &who, CK_PROV_ACT_PROVISION, &a, 1700001000, NULL, NULL,
                                NULL));
    CHECK_OK(ck_prov_event_last(s, &ev_before));
    snprintf(path, sizeof(path), "%s/prov.dump", tmpdir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    CHECK_OK(ck_store_dump(s, f, &info));
    fclose(f);
    CHECK_OK(ck_prov_device_get(s, mac, &d1));
    CHECK_OK(ck_store_get_device(s, mac, &k1));
    ck_store_close(s);
    /* load into a new database of the same backend */
    if (on_pg) {
        pg_reset();
        ck_strlcpy(db2, db, sizeof(db2));
    } else {
        snprintf(db2, sizeof(db2), "%s/loaded.db", tmpdir);
        unlink(db2);
    }
    CHECK_OK(ck_store_load(db2, stash, path, "test", &info));
    CHECK_OK(ck_store_open(db2, stash, 0, &l));
    if (l == NULL)
        return;
    CHECK_OK(ck_prov_device_get(l, mac, &d2));
    CHECK_OK(ck_store_get_device(l, mac, &k2));
    CHECK(d1 != NULL && d2 != NULL && d2->state == d1->state && d2->customer_id == d1->customer_id &&
          d2->n_numbers == 1 && strcmp(d2->numbers[0], d1->numbers[0]) == 0 &&
          d2->cert_id == d1->cert_id && d2->mfg_cert_len == d1->mfg_cert_len &&
          d2->first_seen == d1->first_seen);
    CHECK(k1 != NULL && k2 != NULL && k2->has_cert && k2->state == CK_DEVICE_ACTIVE &&
          memcmp(k1->cert_sha256, k2->cert_sha256, 32) == 0);
    CHECK_OK(ck_prov_number_lookup(l, "700", &princ, lm));
    free(princ);
    CHECK_OK(ck_prov_event_last(l, &ev_after));
    CHECK(ev_after == ev_before);
    CHECK_OK(ck_prov_line_list(l, NULL, 10, line_cb, &n1, NULL));
    CHECK_INT_EQ(n1, 1);
    CHECK_OK(ck_prov_outbox_list(l, 0, 100, (ck_prov_delivery_cb)count_cb, &n2, NULL));
    CHECK_INT_EQ(n2, 3); /* customer.added, device.admitted, device.provisioned */
    {
        ck_prov_customer *c = NULL;
        int64_t replayed = 0;

        CHECK_OK(ck_prov_customer_get(l, cust, &c));
        CHECK(c != NULL && strcmp(c->name, "Alice \"Q\" Ünïcode") == 0);
        ck_prov_customer_free(c);
        /* the idempotency record came along: a retry after the load is still a replay */
        CHECK_INT_EQ(ck_prov_device_act(l, &who, CK_PROV_ACT_PROVISION, &a, 1700001001, NULL,
                                        &replayed, NULL),
                     CK_ERR_EXISTS);
        CHECK(replayed > 0);
        /* new rows get new ids after the loaded ones */
        CHECK(add_customer(l, "Next", "seg-a", CK_PROV_ACCOUNT_CUSTOMER) > cust);
    }
    ck_prov_device_free(d1);
    ck_prov_device_free(d2);
    ck_db_device_free(k1);
    ck_db_device_free(k2);
    ck_store_close(l);
}

/* A database from before issue 10 (SQLite schema 7, PostgreSQL schema 1) is upgraded when
 * opened read-write: its devices keep working and the provisioning tables appear. */
static void
schema_upgrade(void)
{
    static const char *const drop =
        "DROP TABLE prov_customer; DROP TABLE prov_device; DROP TABLE prov_number;"
        " DROP TABLE prov_cert; DROP TABLE prov_event; DROP TABLE prov_idem;"
        " DROP TABLE prov_outbox; ALTER TABLE device DROP COLUMN cert_sha256;";
    ck_store *s = new_realm(), *ro = NULL;
    ck_db_device dev, *d = NULL;
    char sql[600];

    memset(&dev, 0, sizeof(dev));
    mac_of(7, dev.mac);
    dev.principal = (char *)"krbtgt/PROV.TEST@PROV.TEST";
    dev.state = CK_DEVICE_ACTIVE;
    CHECK_OK(ck_store_add_device(s, &dev));
    ck_store_close(s);
    snprintf(sql, sizeof(sql), "%s UPDATE schema_version SET version = %d", drop, on_pg ? 1 : 7);
    if (on_pg) {
        PGconn *c = PQconnectdb("");
        PGresult *r = PQexec(c, sql);

        CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
        PQclear(r);
        PQfinish(c);
        /* read-only cannot upgrade: a clear refusal */
        CHECK_INT_EQ(ck_store_open(db, stash, CK_STORE_READONLY, &ro), CK_ERR_UNSUPPORTED);
        CHECK(strstr(ck_error_context(), "upgrade") != NULL);
    } else {
        sqlite3 *raw = NULL;

        CHECK(sqlite3_open(db, &raw) == SQLITE_OK);
        CHECK(sqlite3_exec(raw, sql, NULL, NULL, NULL) == SQLITE_OK);
        sqlite3_close(raw);
    }
    s = other_conn();
    CHECK_OK(ck_store_get_device(s, dev.mac, &d));
    CHECK(d != NULL && d->state == CK_DEVICE_ACTIVE && !d->has_cert);
    ck_db_device_free(d);
    CHECK(add_customer(s, "After Upgrade", "seg-a", CK_PROV_ACCOUNT_CUSTOMER) == 1);
    CHECK_OK(admit(s, 8));
    ck_store_close(s);
    CHECK_OK(ck_store_open(db, stash, CK_STORE_READONLY, &ro));
    ck_store_close(ro);
}

#define BOTH(fn)                                                                              \
    static void fn##_sqlite(void)                                                            \
    {                                                                                        \
        on_pg = false;                                                                       \
        fn();                                                                                \
    }                                                                                        \
    static void fn##_pg(void)                                                                \
    {                                                                                        \
        on_pg = true;                                                                        \
        fn();                                                                                \
    }
BOTH(admit_and_customers)
BOTH(lifecycle)
BOTH(idempotency_and_outbox)
BOTH(numbers)
BOTH(atomic_and_cache)
BOTH(dump_load)
BOTH(schema_upgrade)

int
main(int argc, char **argv)
{
    static const struct ck_test_case cases[] = {
        CK_TEST_CASE(admit_and_customers_sqlite),
        CK_TEST_CASE(lifecycle_sqlite),
        CK_TEST_CASE(idempotency_and_outbox_sqlite),
        CK_TEST_CASE(numbers_sqlite),
        CK_TEST_CASE(atomic_and_cache_sqlite),
        CK_TEST_CASE(dump_load_sqlite),
        CK_TEST_CASE(schema_upgrade_sqlite),
        CK_TEST_CASE(admit_and_customers_pg),
        CK_TEST_CASE(lifecycle_pg),
        CK_TEST_CASE(idempotency_and_outbox_pg),
        CK_TEST_CASE(numbers_pg),
        CK_TEST_CASE(atomic_and_cache_pg),
        CK_TEST_CASE(dump_load_pg),
        CK_TEST_CASE(schema_upgrade_pg),
    };
    char cmd[128];
    int rc;

    (void)argc;
    if (getenv("CK_PG_URI") == NULL) {
        /* Run again under a throw-away server; a second time without one is a failure. */
        if (getenv("CK_PG_REEXEC") != NULL) {
            printf("not ok 1 - store prov: no PostgreSQL server (CK_PG_URI unset)\n");
            return 1;
        }
        setenv("CK_PG_REEXEC", "1", 1);
        execl("/bin/bash", "bash", "interop/pg_run.sh", argv[0], (char *)NULL);
        printf("not ok 1 - store prov: cannot run interop/pg_run.sh (cwd must be tests/)\n");
        return 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-storeprov-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        abort();
    rc = ck_test_run("store prov", cases, sizeof(cases) / sizeof(cases[0]));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
