/* The KDC's alarms (alarms.h): configuration, the manager and its sinks, the detectors fed by
 * the workers, the monitor thread (certificate expiry, fleet probes, windows that end) and the
 * run-time log level.
 *
 * Detectors. A worker reports what it saw once per request (kdc_alarm_request), after the
 * outcome is final (a refusal retried after a cache refresh counts once). Only failures reach a
 * detector's lock: a successful request costs one branch. Counting is per fixed window per
 * process (all workers together): a window that ends below the threshold clears its alarm. The
 * alarm manager deduplicates further raises of an active alarm (alarm.h), so a detector raises on
 * every failure over the threshold and the record carries the count. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "cablekey/alarm.h"
#include "cablekey/client.h"
#include "cablekey/daemon.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/metrics.h"
#include "cablekey/net.h"
#include "cablekey/pki.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "alarms.h"
#include "config.h"
#include "kdc_int.h"
#include "pkinit_kdc.h"

/* ---- configuration ---------------------------------------------------------------------- */

void
kdc_alarm_config_init(struct kdc_alarm_config *c)
{
    memset(c, 0, sizeof(*c));
    c->table = true;
    c->skew_threshold = KDC_DEFAULT_SKEW_THRESHOLD;
    c->skew_window = KDC_DEFAULT_SKEW_WINDOW;
    c->preauth_threshold = KDC_DEFAULT_PREAUTH_THRESHOLD;
    c->preauth_window = KDC_DEFAULT_PREAUTH_WINDOW;
    c->cert_expiry_warn = KDC_DEFAULT_CERT_EXPIRY_WARN;
    c->probe_interval = KDC_DEFAULT_PROBE_INTERVAL;
    c->probe_tries = KDC_DEFAULT_PROBE_TRIES;
}

static void
free_peers(struct kdc_alarm_config *c)
{
    for (size_t i = 0; i < c->n_fleet_peers; i++)
        free(c->fleet_peers[i]);
    c->n_fleet_peers = 0;
}

void
kdc_alarm_config_free(struct kdc_alarm_config *c)
{
    if (c == NULL)
        return;
    free(c->metrics_listen);
    free(c->webhook_url);
    free(c->webhook_secret_file);
    free(c->webhook_ca_file);
    free(c->host);
    free_peers(c);
    kdc_alarm_config_init(c);
}

/* A deep copy (the monitor thread keeps its own across reloads). */
static int
config_copy(struct kdc_alarm_config *dst, const struct kdc_alarm_config *src)
{
    *dst = *src;
    dst->metrics_listen = dst->webhook_url = dst->webhook_secret_file = NULL;
    dst->webhook_ca_file = dst->host = NULL;
    dst->n_fleet_peers = 0;
    for (size_t i = 0; i < src->n_fleet_peers; i++) {
        if ((dst->fleet_peers[i] = strdup(src->fleet_peers[i])) == NULL)
            goto nomem;
        dst->n_fleet_peers++;
    }
    if (src->host != NULL && (dst->host = strdup(src->host)) == NULL)
        goto nomem;
    return 0;
nomem:
    kdc_alarm_config_free(dst);
    return ck_error_set(CK_ERR_NOMEM, "alarm configuration");
}

static int
conf_bad(const struct ck_profile *prof, const char *key, const char *msg)
{
    return ck_conf_error(prof, CK_ERR_CONFIG, msg, "kdcdefaults", key, NULL);
}

static int
conf_str(const struct ck_profile *prof, const char *key, char **out)
{
    const char *v = ck_profile_get(prof, "kdcdefaults", key, NULL);
    char *copy;

    if (v == NULL)
        return 0;
    if (v[0] == '\0')
        return conf_bad(prof, key, "empty value");
    if ((copy = strdup(v)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    free(*out);
    *out = copy;
    return 0;
}

static int
conf_int(const struct ck_profile *prof, const char *key, int64_t min, int64_t max, int64_t *out)
{
    const char *v = ck_profile_get(prof, "kdcdefaults", key, NULL);
    char msg[96];

    if (v == NULL)
        return 0;
    if (ck_parse_int64(v, min, max, out) != 0) {
        snprintf(msg, sizeof(msg), "expected a number from %lld to %lld", (long long)min,
                 (long long)max);
        return conf_bad(prof, key, msg);
    }
    return 0;
}

static int
conf_duration(const struct ck_profile *prof, const char *key, int64_t min, int64_t max,
              int64_t *out)
{
    const char *v = ck_profile_get(prof, "kdcdefaults", key, NULL);
    int64_t d;

    if (v == NULL)
        return 0;
    if (ck_parse_duration(v, &d) != 0 || d < min || d > max)
        return conf_bad(prof, key, "expected a duration such as 60s, 10m or 30d, in range");
    *out = d;
    return 0;
}

static int
add_peer(struct kdc_alarm_config *c, const char *tok)
{
    char host[256];
    uint16_t port;
    int rc;

    if ((rc = ck_net_parse_listen(tok, 88, host, sizeof(host), &port)) != 0)
        return rc;
    if (c->n_fleet_peers >= KDC_MAX_FLEET_PEERS)
        return ck_error_set(CK_ERR_LIMIT, "more than %d fleet peers", KDC_MAX_FLEET_PEERS);
    if ((c->fleet_peers[c->n_fleet_peers] = strdup(tok)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    c->n_fleet_peers++;
    return 0;
}

int
kdc_alarm_config_load(struct kdc_alarm_config *c, const struct ck_profile *prof)
{
    const char *v;
    int rc;

    if (prof == NULL)
        return 0;
    if ((v = ck_profile_get(prof, "kdcdefaults", "metrics_listen", NULL)) != NULL) {
        free(c->metrics_listen);
        c->metrics_listen = NULL;
        c->metrics_off = strcmp(v, "none") == 0;
        if (!c->metrics_off && (rc = conf_str(prof, "metrics_listen", &c->metrics_listen)) != 0)
            return rc;
    }
    if ((rc = conf_str(prof, "alarm_webhook_url", &c->webhook_url)) != 0 ||
        (rc = conf_str(prof, "alarm_webhook_secret_file", &c->webhook_secret_file)) != 0 ||
        (rc = conf_str(prof, "alarm_webhook_ca_file", &c->webhook_ca_file)) != 0 ||
        (rc = conf_str(prof, "alarm_host", &c->host)) != 0)
        return rc;
    if ((v = ck_profile_get(prof, "kdcdefaults", "alarm_table", NULL)) != NULL &&
        ck_parse_bool(v, &c->table) != 0)
        return conf_bad(prof, "alarm_table", "expected yes or no");
    if ((rc = conf_int(prof, "alarm_clock_skew_threshold", 1, 1000000000, &c->skew_threshold)) ||
        (rc = conf_duration(prof, "alarm_clock_skew_window", 1, 86400, &c->skew_window)) ||
        (rc = conf_int(prof, "alarm_preauth_threshold", 1, 1000000000, &c->preauth_threshold)) ||
        (rc = conf_duration(prof, "alarm_preauth_window", 1, 86400, &c->preauth_window)) ||
        (rc = conf_duration(prof, "cert_expiry_warn", 0, CK_PROFILE_MAX_DURATION,
                            &c->cert_expiry_warn)) ||
        (rc = conf_duration(prof, "fleet_probe_interval", 1, 86400, &c->probe_interval)) ||
        (rc = conf_int(prof, "fleet_probe_tries", 1, 1000, &c->probe_tries)))
        return rc;
    if ((v = ck_profile_get(prof, "kdcdefaults", "fleet_peers", NULL)) != NULL) {
        const char *p = v;

        free_peers(c);
        while (*p != '\0') {
            char tok[300];
            size_t n = strcspn(p, " \t,");

            if (n == 0) {
                p++;
                continue;
            }
            if (n >= sizeof(tok))
                return conf_bad(prof, "fleet_peers", "entry too long");
            memcpy(tok, p, n);
            tok[n] = '\0';
            if (add_peer(c, tok) != 0)
                return conf_bad(prof, "fleet_peers", ck_error_context());
            p += n;
        }
    }
    return 0;
}

int
kdc_alarm_config_finish(const struct kdc_alarm_config *c)
{
    char host[256];
    uint16_t port;

    if (c->metrics_listen != NULL &&
        ck_net_parse_listen(c->metrics_listen, 9188, host, sizeof(host), &port) != 0)
        return ck_error_set(CK_ERR_CONFIG, "metrics_listen %s: %s", c->metrics_listen,
                            ck_error_context());
    if ((c->webhook_url != NULL) != (c->webhook_secret_file != NULL))
        return ck_error_set(CK_ERR_CONFIG, "alarm_webhook_url and alarm_webhook_secret_file go "
                            "together (the webhook's posts are signed)");
    if (c->webhook_url != NULL && strncmp(c->webhook_url, "http://", 7) != 0 &&
        strncmp(c->webhook_url, "https://", 8) != 0)
        return ck_error_set(CK_ERR_CONFIG, "alarm_webhook_url: only http:// and https://");
    return 0;
}

/* ---- the process's state ---------------------------------------------------------------- */

struct pa_ent {
    char name[CK_ALARM_SUBJECT_MAX];
    int64_t start;         /* window start (ms) */
    uint64_t count;
    bool used, active;
};

/* Certificate files to watch, copied from the PKINIT configuration. */
struct cert_list {
    char *identity, *password_file;
    char *files[KDC_PKINIT_MAX_ANCHOR_FILES + KDC_PKINIT_MAX_POOL_FILES];
    const char *what[KDC_PKINIT_MAX_ANCHOR_FILES + KDC_PKINIT_MAX_POOL_FILES];
    size_t n;
};

static struct {
    pthread_mutex_t lock;                 /* everything below */
    struct ck_alarm_mgr *m;
    int64_t (*now_ms)(void *);
    void *now_arg;
    struct kdc_alarm_config cfg;          /* deep copy */
    char realm[256];
    /* clock-skew, process-wide */
    int64_t skew_start;
    uint64_t skew_count;
    bool skew_active;
    /* preauth-spike, per principal */
    struct pa_ent *pa;
    size_t pa_used;
    uint64_t pa_untracked;                /* failures not counted: the table was full */
    /* monitor */
    struct cert_list certs;
    uint64_t certs_gen;                   /* bumped by every reload */
    bool certs_due;
    int64_t certs_next;
    uint64_t probe_fail[KDC_MAX_FLEET_PEERS];
    int64_t probe_next;
    pthread_t thread;
    pthread_cond_t cond;
    bool running, stopping;
    /* What only a restart changes, as started: "metrics_listen|webhook|table|host". */
    char started_as[2048];
    atomic_bool realm_known;              /* S.realm is set (read without the lock) */
    atomic_bool quit;                     /* stopping, for the probe loop (without the lock) */
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void
restart_only(const struct kdc_alarm_config *c, char *buf, size_t size)
{
    snprintf(buf, size, "metrics_listen=%s alarm_webhook_url=%s alarm_webhook_secret_file=%s "
             "alarm_webhook_ca_file=%s alarm_table=%s alarm_host=%s",
             c->metrics_off ? "none" : c->metrics_listen != NULL ? c->metrics_listen : "(default)",
             c->webhook_url != NULL ? c->webhook_url : "(none)",
             c->webhook_secret_file != NULL ? c->webhook_secret_file : "(none)",
             c->webhook_ca_file != NULL ? c->webhook_ca_file : "(none)",
             c->table ? "yes" : "no", c->host != NULL ? c->host : "(host name)");
}

static int64_t
now_ms(void)
{
    if (S.now_ms != NULL)
        return S.now_ms(S.now_arg);
    return ck_monotonic_ms();
}

/* Under S.lock. */
static void
certs_clear(struct cert_list *cl)
{
    free(cl->identity);
    free(cl->password_file);
    for (size_t i = 0; i < cl->n; i++)
        free(cl->files[i]);
    memset(cl, 0, sizeof(*cl));
}

static int
certs_copy(struct cert_list *cl, const struct kdc_pkinit_config *pc)
{
    memset(cl, 0, sizeof(*cl));
    if (pc == NULL)
        return 0;
    if ((pc->identity != NULL && (cl->identity = strdup(pc->identity)) == NULL) ||
        (pc->password_file != NULL && (cl->password_file = strdup(pc->password_file)) == NULL))
        goto nomem;
    for (size_t i = 0; i < pc->n_anchors; i++) {
        if ((cl->files[cl->n] = strdup(pc->anchors[i].path)) == NULL)
            goto nomem;
        cl->what[cl->n++] = "trust anchor";
    }
    for (size_t i = 0; i < pc->n_pool; i++) {
        if ((cl->files[cl->n] = strdup(pc->pool[i])) == NULL)
            goto nomem;
        cl->what[cl->n++] = "intermediate CA (pkinit_pool)";
    }
    return 0;
nomem:
    certs_clear(cl);
    return ck_error_set(CK_ERR_NOMEM, "alarm certificates");
}

/* Applies the settings (under S.lock). */
static int
apply_config(const struct kdc_alarm_config *c, const char *realm)
{
    struct kdc_alarm_config copy;
    int rc;

    if ((rc = config_copy(&copy, c)) != 0)
        return rc;
    kdc_alarm_config_free(&S.cfg);
    S.cfg = copy;
    if (realm != NULL) {
        ck_strlcpy(S.realm, realm, sizeof(S.realm));
        atomic_store(&S.realm_known, S.realm[0] != '\0');
    }
    memset(S.probe_fail, 0, sizeof(S.probe_fail));
    return 0;
}

void
kdc_alarms_test_setup(int64_t (*fn)(void *), void *arg, const struct kdc_alarm_config *c,
                      const char *realm)
{
    pthread_mutex_lock(&S.lock);
    S.m = NULL; /* the next kdc_alarms_tick names the manager */
    S.now_ms = fn;
    S.now_arg = arg;
    if (S.pa == NULL)
        S.pa = calloc(KDC_PREAUTH_TRACK_MAX, sizeof(*S.pa));
    else
        memset(S.pa, 0, KDC_PREAUTH_TRACK_MAX * sizeof(*S.pa));
    S.pa_used = 0;
    S.skew_count = 0;
    S.skew_active = false;
    S.skew_start = now_ms();
    if (apply_config(c, realm) != 0)
        ck_log_err("alarms: %s", ck_error_context());
    pthread_mutex_unlock(&S.lock);
}

/* ---- detectors -------------------------------------------------------------------------- */

/* The note a failed TGS AP-REQ leaves for the request's final hook (same worker thread). */
static _Thread_local struct {
    bool set;
    char server[CK_ALARM_SUBJECT_MAX];
    uint32_t kvno;
    int32_t etype;
    char held[96];
} kvno_note;

void
kdc_alarm_ap_failure(struct kdc_request *r, const ck_ap_req_result *ap)
{
    const ck_db_principal *p = NULL;
    size_t off = 0;

    kvno_note.set = false;
    if (r->w->alarms == NULL || ap->ticket == NULL ||
        (ap->krb_error != CK_KRB_AP_ERR_BADKEYVER && ap->krb_error != CK_KRB_AP_ERR_NOKEY))
        return;
    if (!kdc_unparse(ap->ticket->sname, ap->ticket->realm, kvno_note.server,
                     sizeof(kvno_note.server)))
        return;
    kvno_note.kvno = ap->ticket_kvno;
    kvno_note.etype = ap->ticket_etype;
    kvno_note.held[0] = '\0';
    /* What the record holds now (the cached record the lookup just used). */
    if (ck_store_get_principal_cached(r->w->store, kvno_note.server, &p) == 0) {
        uint32_t last = 0;
        for (size_t i = 0; i < p->n_keys && off + 12 < sizeof(kvno_note.held); i++) {
            if (p->keys[i].kvno == last)
                continue;
            last = p->keys[i].kvno;
            off += (size_t)snprintf(kvno_note.held + off, sizeof(kvno_note.held) - off, "%s%u",
                                    off > 0 ? "," : "", last);
        }
    }
    kvno_note.set = true;
}

/* Under S.lock: ends the skew window if it is over; a window below the threshold clears. */
static void
skew_roll(int64_t now)
{
    uint64_t closing;

    if (now - S.skew_start < S.cfg.skew_window * 1000)
        return;
    closing = S.skew_count;
    S.skew_start = now;
    S.skew_count = 0;
    if (S.skew_active && closing < (uint64_t)S.cfg.skew_threshold) {
        S.skew_active = false;
        ck_alarm_clear(S.m, CK_ALARM_CLOCK_SKEW, S.realm,
                       "%llu clock-skew errors in the last %llds, below the threshold of %lld",
                       (unsigned long long)closing, (long long)S.cfg.skew_window,
                       (long long)S.cfg.skew_threshold);
    }
}

static void
skew_event(const struct kdc_request *r, const char *addr)
{
    int64_t now;

    pthread_mutex_lock(&S.lock);
    if (S.m == NULL)
        goto out;
    now = now_ms();
    skew_roll(now);
    S.skew_count++;
    if (S.skew_count >= (uint64_t)S.cfg.skew_threshold) {
        S.skew_active = true;
        ck_alarm_raise(S.m, CK_ALARM_CLOCK_SKEW, CK_ALARM_MINOR, S.realm,
                       "%llu clock-skew errors (%s) within %llds (threshold %lld); the last from "
                       "%s for %s%s%s: a client's clock (or this KDC's) is wrong, check NTP",
                       (unsigned long long)S.skew_count, r->kind, (long long)S.cfg.skew_window,
                       (long long)S.cfg.skew_threshold, addr,
                       r->cname[0] != '\0' ? r->cname : "an unknown client",
                       r->detail[0] != '\0' ? ", " : "", r->detail);
    }
out:
    pthread_mutex_unlock(&S.lock);
}

/* Under S.lock: the entry of name, a free one, or one whose window ended inactive; NULL when
 * every tracked principal is in a live window (the failure is counted as untracked). */
static struct pa_ent *
pa_find(const char *name, int64_t now)
{
    struct pa_ent *spare = NULL;

    for (size_t i = 0; i < KDC_PREAUTH_TRACK_MAX; i++) {
        struct pa_ent *e = &S.pa[i];
        if (e->used && strcmp(e->name, name) == 0)
            return e;
        if (spare == NULL &&
            (!e->used || (!e->active && now - e->start >= S.cfg.preauth_window * 1000)))
            spare = e;
    }
    if (spare != NULL) {
        if (!spare->used)
            S.pa_used++;
        memset(spare, 0, sizeof(*spare));
        spare->used = true;
        spare->start = now;
        ck_strlcpy(spare->name, name, sizeof(spare->name));
    }
    return spare;
}

/* Under S.lock: ends e's window if it is over. */
static void
pa_roll(struct pa_ent *e, int64_t now)
{
    uint64_t closing;

    if (now - e->start < S.cfg.preauth_window * 1000)
        return;
    closing = e->count;
    e->start = now;
    e->count = 0;
    if (e->active && closing < (uint64_t)S.cfg.preauth_threshold) {
        e->active = false;
        ck_alarm_clear(S.m, CK_ALARM_PREAUTH_SPIKE, e->name,
                       "%llu failed pre-authentications in the last %llds, below the threshold "
                       "of %lld", (unsigned long long)closing, (long long)S.cfg.preauth_window,
                       (long long)S.cfg.preauth_threshold);
    }
}

static void
preauth_event(const struct kdc_request *r, const char *addr)
{
    struct pa_ent *e;
    int64_t now;

    if (r->cname[0] == '\0')
        return;
    pthread_mutex_lock(&S.lock);
    if (S.m == NULL || S.pa == NULL)
        goto out;
    now = now_ms();
    if ((e = pa_find(r->cname, now)) == NULL) {
        S.pa_untracked++;
        goto out;
    }
    pa_roll(e, now);
    e->count++;
    if (e->count >= (uint64_t)S.cfg.preauth_threshold) {
        e->active = true;
        ck_alarm_raise(S.m, CK_ALARM_PREAUTH_SPIKE, CK_ALARM_MINOR, r->cname,
                       "%llu failed pre-authentications within %llds (threshold %lld), the last "
                       "from %s (%s): password guessing, or a device or keytab with a wrong key",
                       (unsigned long long)e->count, (long long)S.cfg.preauth_window,
                       (long long)S.cfg.preauth_threshold, addr,
                       r->status != NULL ? r->status : "PREAUTH_FAILED");
    }
out:
    pthread_mutex_unlock(&S.lock);
}

void
kdc_alarm_request(struct kdc_worker *w, const struct kdc_request *r, const struct ck_peer *peer)
{
    char addr[CK_NET_ADDRSTRLEN] = "an unknown address";
    bool note = kvno_note.set;

    kvno_note.set = false;
    if (w->alarms == NULL || r->error_code == 0)
        return;
    if (peer != NULL)
        ck_peer_format_host(peer, addr, sizeof(addr));
    if (!atomic_load_explicit(&S.realm_known, memory_order_acquire)) {
        /* The realm came from a database the start could not read: the workers know it. */
        pthread_mutex_lock(&S.lock);
        if (S.realm[0] == '\0')
            ck_strlcpy(S.realm, w->realm_name, sizeof(S.realm));
        atomic_store(&S.realm_known, true);
        pthread_mutex_unlock(&S.lock);
    }
    if (note && (r->error_code == CK_KRB_AP_ERR_BADKEYVER ||
                 r->error_code == CK_KRB_AP_ERR_NOKEY)) {
        ck_alarm_raise(w->alarms, CK_ALARM_KVNO_MISSING, CK_ALARM_MAJOR, kvno_note.server,
                       "a %s from %s (for %s) presented a ticket for %s with kvno %u, enctype %d; "
                       "the database holds kvno %s: a stale keytab or ticket from before a "
                       "rotation, or a key purged too early", r->kind, addr,
                       r->sname[0] != '\0' ? r->sname : "an unknown server", kvno_note.server,
                       kvno_note.kvno, (int)kvno_note.etype,
                       kvno_note.held[0] != '\0' ? kvno_note.held : "(none)");
    }
    if (r->error_code == CK_KRB_AP_ERR_SKEW)
        skew_event(r, addr);
    if (r->auth_event == KDC_AUTH_FAILED)
        preauth_event(r, addr);
}

void
kdc_alarms_tick(struct ck_alarm_mgr *m)
{
    int64_t now;

    pthread_mutex_lock(&S.lock);
    if (S.m == NULL)
        S.m = m;
    now = now_ms();
    skew_roll(now);
    for (size_t i = 0; S.pa != NULL && i < KDC_PREAUTH_TRACK_MAX; i++)
        if (S.pa[i].used)
            pa_roll(&S.pa[i], now);
    pthread_mutex_unlock(&S.lock);
}

/* ---- certificate expiry ----------------------------------------------------------------- */

/* Raises or clears cert-expiry for one certificate; subject "FILE: SUBJECT DN". */
static void
check_cert(struct ck_alarm_mgr *m, const char *file, const char *what, X509 *x, int64_t warn,
           int64_t now)
{
    char subject[CK_ALARM_SUBJECT_MAX], dn[160], when[32];
    const ASN1_TIME *na = X509_get0_notAfter(x);
    struct tm tm;
    int64_t left;

    X509_NAME_oneline(X509_get_subject_name(x), dn, sizeof(dn));
    snprintf(subject, sizeof(subject), "%s: %s", file, dn);
    if (na == NULL || ASN1_TIME_to_tm(na, &tm) != 1)
        return;
    left = (int64_t)timegm(&tm) - now;
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (left > warn) {
        if (ck_alarm_clear(m, CK_ALARM_CERT_EXPIRY, subject, "%s now expires %s", what, when) ==
            0)
            ck_log_notice("cert-expiry: %s %s renewed, expires %s", what, subject, when);
        return;
    }
    if (left <= 0)
        ck_alarm_raise(m, CK_ALARM_CERT_EXPIRY, CK_ALARM_CRITICAL, subject,
                       "%s expired %s (%lld days ago): PKINIT with it fails; renew it and send "
                       "SIGHUP", what, when, (long long)(-left / 86400));
    else
        ck_alarm_raise(m, CK_ALARM_CERT_EXPIRY,
                       left < 7 * 86400 ? CK_ALARM_MAJOR : CK_ALARM_WARNING, subject,
                       "%s expires %s (in %lld days, warning at %lld days): renew it and send "
                       "SIGHUP", what, when, (long long)(left / 86400),
                       (long long)(warn / 86400));
}

static void
check_cert_list(struct ck_alarm_mgr *m, const struct cert_list *cl, int64_t warn, int64_t now)
{
    if (cl->identity != NULL) {
        struct kdc_pkinit_config pc;
        ck_pki_identity *id = NULL;

        memset(&pc, 0, sizeof(pc));
        pc.identity = cl->identity;
        pc.password_file = cl->password_file;
        if (kdc_pkinit_load_identity(&pc, &id) == 0) {
            check_cert(m, cl->identity, "the KDC certificate (pkinit_identity)", id->cert, warn,
                       now);
            for (int i = 0; i < sk_X509_num(id->chain); i++)
                check_cert(m, cl->identity, "a CA certificate of the KDC's chain",
                           sk_X509_value(id->chain, i), warn, now);
            ck_pki_identity_free(id);
        } else {
            ck_log_warn("cert-expiry: cannot read %s: %s", cl->identity, ck_error_context());
        }
    }
    for (size_t i = 0; i < cl->n; i++) {
        STACK_OF(X509) *sk = NULL;

        if (ck_pki_certs_load_pem(cl->files[i], &sk) != 0) {
            ck_log_warn("cert-expiry: cannot read %s: %s", cl->files[i], ck_error_context());
            continue;
        }
        for (int j = 0; j < sk_X509_num(sk); j++)
            check_cert(m, cl->files[i], cl->what[i], sk_X509_value(sk, j), warn, now);
        sk_X509_pop_free(sk, X509_free);
    }
}

void
kdc_alarms_check_certs(struct ck_alarm_mgr *m, const struct kdc_pkinit_config *pc, int64_t warn,
                       int64_t now)
{
    struct cert_list cl;

    if (m == NULL || certs_copy(&cl, pc) != 0)
        return;
    check_cert_list(m, &cl, warn, now);
    certs_clear(&cl);
}

/* ---- fleet probes ----------------------------------------------------------------------- */

/* One cheap AS-REQ for a principal that does not exist: any Kerberos answer (the expected
 * KDC_ERR_C_PRINCIPAL_UNKNOWN) shows the peer is up. One datagram round, no retry: the tries
 * are counted across probes. */
static int
probe_peer(const char *peer, const char *realm)
{
    const char *kdcs[1] = {peer};
    ck_kdc_transport t = {.kdcs = kdcs, .n_kdcs = 1, .timeout_ms = KDC_PROBE_TIMEOUT_MS,
                          .max_timeout_ms = KDC_PROBE_TIMEOUT_MS, .max_tries = 1};
    ck_as_params p = {.realm = realm, .client = "cablekey-probe/fleet", .transport = &t};
    uint8_t *req = NULL, *rep = NULL;
    size_t req_len = 0, rep_len = 0;
    uint32_t nonce;
    int rc;

    if ((rc = ck_client_as_req_build(&p, &req, &req_len, &nonce)) == 0)
        rc = ck_kdc_send(&t, req, req_len, &rep, &rep_len, NULL);
    free(req);
    free(rep);
    return rc;
}

static void
probe_all(struct ck_alarm_mgr *m, const struct kdc_alarm_config *c, const char *realm,
          uint64_t *fails)
{
    /* A stop does not wait for every silent peer's timeout: at most one probe's. */
    for (size_t i = 0; i < c->n_fleet_peers && !atomic_load(&S.quit); i++) {
        int rc = probe_peer(c->fleet_peers[i], realm);

        if (rc == 0) {
            if (fails[i] >= (uint64_t)c->probe_tries)
                ck_alarm_clear(m, CK_ALARM_KDC_DOWN, c->fleet_peers[i],
                               "answered again after %llu unanswered probes",
                               (unsigned long long)fails[i]);
            fails[i] = 0;
            continue;
        }
        fails[i]++;
        if (fails[i] >= (uint64_t)c->probe_tries)
            ck_alarm_raise(m, CK_ALARM_KDC_DOWN, CK_ALARM_MAJOR, c->fleet_peers[i],
                           "KDC %s of realm %s did not answer %llu probes in a row (an AS-REQ "
                           "every %llds, %d ms each; last: %s): it is down, unreachable or "
                           "overloaded", c->fleet_peers[i], realm, (unsigned long long)fails[i],
                           (long long)c->probe_interval, KDC_PROBE_TIMEOUT_MS,
                           ck_error_context());
    }
}

/* ---- the monitor thread ----------------------------------------------------------------- */

static void *
monitor(void *arg)
{
    struct ck_alarm_mgr *m = arg;

    pthread_mutex_lock(&S.lock);
    while (!S.stopping) {
        struct timespec ts;
        int64_t now = now_ms();

        pthread_mutex_unlock(&S.lock);
        kdc_alarms_tick(m);
        pthread_mutex_lock(&S.lock);
        if (S.certs_due || now >= S.certs_next) {
            struct cert_list cl = S.certs;
            int64_t warn = S.cfg.cert_expiry_warn, sec;
            uint64_t gen = S.certs_gen;

            /* Checked without the lock: reading files must not stall the workers' hooks. */
            memset(&S.certs, 0, sizeof(S.certs));
            S.certs_due = false;
            S.certs_next = now + (int64_t)KDC_CERT_CHECK_INTERVAL * 1000;
            pthread_mutex_unlock(&S.lock);
            ck_now(&sec, NULL);
            check_cert_list(m, &cl, warn, sec);
            pthread_mutex_lock(&S.lock);
            if (gen == S.certs_gen)
                S.certs = cl;
            else
                certs_clear(&cl); /* a reload brought a new list meanwhile */
        }
        if (S.cfg.n_fleet_peers > 0 && S.realm[0] != '\0' && now >= S.probe_next) {
            struct kdc_alarm_config c;
            uint64_t fails[KDC_MAX_FLEET_PEERS];
            char realm[256];

            S.probe_next = now + S.cfg.probe_interval * 1000;
            if (config_copy(&c, &S.cfg) == 0) {
                memcpy(fails, S.probe_fail, sizeof(fails));
                ck_strlcpy(realm, S.realm, sizeof(realm));
                pthread_mutex_unlock(&S.lock);
                probe_all(m, &c, realm, fails);
                pthread_mutex_lock(&S.lock);
                /* A reload meanwhile reset the counters for its new list. */
                if (c.n_fleet_peers == S.cfg.n_fleet_peers)
                    memcpy(S.probe_fail, fails, sizeof(fails));
                kdc_alarm_config_free(&c);
            }
        }
        if (S.stopping)
            break;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&S.cond, &S.lock, &ts);
    }
    pthread_mutex_unlock(&S.lock);
    return NULL;
}

/* ---- sinks ------------------------------------------------------------------------------ */

struct table_sink {
    char *db, *stash;
    ck_store *store;       /* opened on first use; closed after an error (reopened next) */
};

static void
table_free(void *arg)
{
    struct table_sink *t = arg;

    if (t == NULL)
        return;
    ck_store_close(t->store);
    free(t->db);
    free(t->stash);
    free(t);
}

static int
table_deliver(void *arg, const struct ck_alarm *a)
{
    struct table_sink *t = arg;
    ck_alarm_row row;
    int64_t t0 = kdc_metrics_now();
    int rc;

    if (t->store == NULL) {
        if ((rc = ck_store_open(t->db, t->stash, 0, &t->store)) != 0) {
            ck_log_debug("alarm table: %s", ck_error_context());
            kdc_metrics_db("alarm_write", kdc_metrics_now() - t0, rc);
            return rc;
        }
        ck_store_set_actor(t->store, "cablekey-kdc");
    }
    memset(&row, 0, sizeof(row));
    ck_strlcpy(row.code, ck_alarm_code_name(a->code), sizeof(row.code));
    ck_strlcpy(row.severity, ck_alarm_severity_name(a->severity), sizeof(row.severity));
    ck_strlcpy(row.subject, a->subject, sizeof(row.subject));
    ck_strlcpy(row.host, a->host, sizeof(row.host));
    ck_strlcpy(row.cause, a->cause, sizeof(row.cause));
    row.first_seen = a->first_seen_ms;
    row.last_seen = a->last_seen_ms;
    row.count = a->count;
    row.cleared = a->cleared;
    rc = ck_store_alarm_record(t->store, &row);
    kdc_metrics_db("alarm_write", kdc_metrics_now() - t0, rc);
    if (rc != 0) {
        ck_log_debug("alarm table: %s", ck_error_context());
        if (rc != CK_ERR_INVAL) {
            ck_store_close(t->store);
            t->store = NULL;
        }
    }
    return rc;
}

static int64_t
wall_ms(void *arg)
{
    int64_t sec;
    int32_t usec;

    (void)arg;
    ck_now(&sec, &usec);
    return sec * 1000 + usec / 1000;
}

int
kdc_alarms_start(const struct kdc_daemon_config *dc, const char *realm,
                 struct ck_alarm_mgr **out)
{
    const struct kdc_alarm_config *c = &dc->alarm;
    struct ck_alarm_conf ac;
    struct ck_alarm_sink sink;
    struct ck_alarm_mgr *m = NULL;
    pthread_condattr_t ca;
    char db_realm[256] = "";
    int rc;

    *out = NULL;
    memset(&ac, 0, sizeof(ac));
    ac.host = c->host;
    ac.clock.now_ms = wall_ms;
    if ((rc = ck_alarm_mgr_new(&ac, &m)) != 0)
        goto out;
    ck_alarm_sink_log(&sink);
    if ((rc = ck_alarm_mgr_add_sink(m, &sink)) != 0)
        goto out;
    if (c->table) {
        struct table_sink *t = calloc(1, sizeof(*t));

        if (t == NULL || (t->db = strdup(dc->kdc.db_path)) == NULL ||
            (dc->kdc.stash_path != NULL && (t->stash = strdup(dc->kdc.stash_path)) == NULL)) {
            table_free(t);
            rc = ck_error_set(CK_ERR_NOMEM, "alarm table sink");
            goto out;
        }
        ck_alarm_sink_callback(&sink, "table", table_deliver, t, table_free);
        if ((rc = ck_alarm_mgr_add_sink(m, &sink)) != 0)
            goto out;
    }
    if (c->webhook_url != NULL) {
        struct ck_alarm_webhook_conf wc = {.url = c->webhook_url,
                                           .secret_file = c->webhook_secret_file,
                                           .ca_file = c->webhook_ca_file};

        if ((rc = ck_alarm_sink_webhook(&wc, &sink)) != 0) {
            rc = ck_error_set(rc, "alarm_webhook: %s", ck_error_context());
            goto out;
        }
        if ((rc = ck_alarm_mgr_add_sink(m, &sink)) != 0)
            goto out;
    }
    if ((rc = ck_alarm_mgr_start(m)) != 0)
        goto out;
    if (realm == NULL) {
        /* The realm the database holds (subjects, probes); the workers will open it too. */
        ck_store *st = NULL;
        if (ck_store_open(dc->kdc.db_path, dc->kdc.stash_path, CK_STORE_READONLY, &st) == 0)
            ck_strlcpy(db_realm, ck_store_realm(st)->name, sizeof(db_realm));
        ck_store_close(st);
        realm = db_realm;
    }

    pthread_mutex_lock(&S.lock);
    if (S.pa == NULL)
        S.pa = calloc(KDC_PREAUTH_TRACK_MAX, sizeof(*S.pa));
    rc = S.pa == NULL ? ck_error_set(CK_ERR_NOMEM, "alarm detectors")
                      : apply_config(c, realm);
    if (rc == 0) {
        certs_clear(&S.certs);
        rc = certs_copy(&S.certs, dc->kdc.pkinit);
    }
    S.m = m;
    restart_only(c, S.started_as, sizeof(S.started_as));
    S.skew_start = now_ms();
    S.certs_due = true;
    S.probe_next = now_ms() + S.cfg.probe_interval * 1000;
    S.stopping = false;
    atomic_store(&S.quit, false);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&S.cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc == 0 && (errno = pthread_create(&S.thread, NULL, monitor, m)) != 0)
        rc = ck_error_set(CK_ERR_IO, "alarm monitor thread: %s", strerror(errno));
    S.running = rc == 0;
    if (rc != 0)
        S.m = NULL;
    pthread_mutex_unlock(&S.lock);
    if (rc != 0)
        goto out;
    ck_log_notice("alarms: sinks log%s%s; clock-skew %lld/%llds, preauth-spike %lld/%llds, "
                  "cert-expiry %lld days, %zu fleet peer%s", c->table ? ", table" : "",
                  c->webhook_url != NULL ? ", webhook" : "", (long long)c->skew_threshold,
                  (long long)c->skew_window, (long long)c->preauth_threshold,
                  (long long)c->preauth_window, (long long)(c->cert_expiry_warn / 86400),
                  c->n_fleet_peers, c->n_fleet_peers == 1 ? "" : "s");
    *out = m;
    m = NULL;
out:
    ck_alarm_mgr_free(m);
    return rc;
}

int
kdc_alarms_check(const struct kdc_daemon_config *dc, FILE *out)
{
    const struct kdc_alarm_config *c = &dc->alarm;

    if (c->webhook_url != NULL) {
        struct ck_alarm_webhook_conf wc = {.url = c->webhook_url,
                                           .secret_file = c->webhook_secret_file,
                                           .ca_file = c->webhook_ca_file};
        struct ck_alarm_sink sink;
        int rc;

        if ((rc = ck_alarm_sink_webhook(&wc, &sink)) != 0)
            return ck_error_set(rc, "alarm_webhook: %s", ck_error_context());
        if (sink.free != NULL)
            sink.free(sink.arg);
    }
    fprintf(out, "alarms: sinks log%s%s%s; clock-skew %lld in %llds, preauth-spike %lld in %llds, "
            "cert-expiry %lld days, %zu fleet peer%s\n", c->table ? ", table" : "",
            c->webhook_url != NULL ? ", webhook " : "",
            c->webhook_url != NULL ? c->webhook_url : "", (long long)c->skew_threshold,
            (long long)c->skew_window, (long long)c->preauth_threshold,
            (long long)c->preauth_window, (long long)(c->cert_expiry_warn / 86400),
            c->n_fleet_peers, c->n_fleet_peers == 1 ? "" : "s");
    fprintf(out, "metrics: %s\n", c->metrics_off ? "off (metrics_listen = none)"
                                  : c->metrics_listen != NULL ? c->metrics_listen
                                                              : CK_METRICS_DEFAULT_BIND);
    return 0;
}

void
kdc_alarms_reload(const struct kdc_daemon_config *dc)
{
    char now_as[sizeof(S.started_as)];

    restart_only(&dc->alarm, now_as, sizeof(now_as));
    pthread_mutex_lock(&S.lock);
    if (S.m != NULL && strcmp(now_as, S.started_as) != 0)
        ck_log_warn("SIGHUP: alarm sinks or metrics_listen changed (%s -> %s): needs a restart, "
                    "not applied", S.started_as, now_as);
    if (S.m != NULL) {
        if (apply_config(&dc->alarm, NULL) != 0 ||
            (certs_clear(&S.certs), certs_copy(&S.certs, dc->kdc.pkinit)) != 0)
            ck_log_err("SIGHUP: alarms: %s", ck_error_context());
        S.certs_gen++;
        S.certs_due = true;
        S.probe_next = now_ms();
        pthread_cond_signal(&S.cond);
    }
    pthread_mutex_unlock(&S.lock);
}

void
kdc_alarms_stop(struct ck_alarm_mgr *m)
{
    if (m == NULL)
        return;
    atomic_store(&S.quit, true);
    pthread_mutex_lock(&S.lock);
    S.stopping = true;
    if (S.running)
        pthread_cond_signal(&S.cond);
    pthread_mutex_unlock(&S.lock);
    if (S.running) {
        pthread_join(S.thread, NULL);
        pthread_cond_destroy(&S.cond);
    }
    pthread_mutex_lock(&S.lock);
    S.running = false;
    S.m = NULL;
    certs_clear(&S.certs);
    kdc_alarm_config_free(&S.cfg);
    free(S.pa);
    S.pa = NULL;
    pthread_mutex_unlock(&S.lock);
    ck_alarm_mgr_free(m);
}

/* ---- log levels ------------------------------------------------------------------------- */

int
kdc_log_level_for(const struct kdc_request *r, int level)
{
    if (level != LOG_INFO)
        return level;
    switch (r->error_code) {
    case CK_KDC_ERR_PREAUTH_FAILED:    /* wrong password or key; PKINIT signature, chain */
    case CK_KDC_ERR_CLIENT_REVOKED:    /* locked out, disallowed, device revoked */
    case CK_KRB_AP_ERR_BAD_INTEGRITY:  /* a ticket under a key it was not made with */
    case CK_KRB_AP_ERR_MODIFIED:       /* an authenticator or request body altered */
    case CK_KDC_ERR_INVALID_SIG:       /* PKINIT: the AuthPack's signature does not verify */
    case CK_KDC_ERR_INVALID_CERTIFICATE:   /* PKINIT: a certificate's signature is bad */
    case CK_KDC_ERR_REVOKED_CERTIFICATE:   /* PKINIT: in a CRL */
        return LOG_WARNING;
    default:
        break;
    }
    /* PKINIT refusals that say someone presents what is not theirs. */
    if (r->status != NULL &&
        (strcmp(r->status, "POSSIBLE_CLONE") == 0 || strstr(r->status, "NAME_MISMATCH") != NULL))
        return LOG_WARNING;
    return level;
}

/* ---- run-time log level ----------------------------------------------------------------- */

int
kdc_loglevel_signals_block(void)
{
    sigset_t s;

    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigaddset(&s, SIGUSR2);
    if ((errno = pthread_sigmask(SIG_BLOCK, &s, NULL)) != 0)
        return ck_error_set(CK_ERR_IO, "blocking SIGUSR1/SIGUSR2: %s", strerror(errno));
    return 0;
}

static void *
loglevel_thread(void *arg)
{
    sigset_t s;

    (void)arg;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigaddset(&s, SIGUSR2);
    for (;;) {
        int sig = 0, old, level;

        if (sigwait(&s, &sig) != 0)
            continue;
        old = ck_log_level();
        level = sig == SIGUSR1 ? old + 1 : old - 1;
        if (level > LOG_DEBUG)
            level = LOG_DEBUG;
        if (level < LOG_ERR)
            level = LOG_ERR;
        if (level == old)
            continue;
        /* Said at the more verbose of the two levels, so the change is visible either way. */
        if (level > old)
            ck_log_set_level(level);
        ck_log_notice("%s: log level %s -> %s", sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2",
                      ck_log_level_name(old), ck_log_level_name(level));
        if (level < old)
            ck_log_set_level(level);
    }
    return NULL;
}

int
kdc_loglevel_signals_start(void)
{
    pthread_t t;
    pthread_attr_t at;

    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    errno = pthread_create(&t, &at, loglevel_thread, NULL);
    pthread_attr_destroy(&at);
    if (errno != 0)
        return ck_error_set(CK_ERR_IO, "log level thread: %s", strerror(errno));
    return 0;
}
