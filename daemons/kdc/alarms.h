/* The KDC's alarms and metrics, wired (issue 9, item 4): the alarm manager with its sinks (log,
 * the database's alarm table, a webhook), the detectors that raise alarms from what the workers
 * see (kvno-missing, clock-skew, preauth-spike) and from the monitor thread (cert-expiry,
 * kdc-down), the /metrics registry and endpoint, and run-time log levels (SIGUSR1/SIGUSR2).
 * alarms.c and metrics.c; operator documentation: docs/alarms.md, docs/logging.md.
 *
 * One instance per process: main.c starts it after the privilege drop and before the workers,
 * and puts the manager and the registry into kdc_config (alarms, metrics). Workers built without
 * them (tests, fuzzing, --check) raise and count nothing: every hook returns at once when
 * w->alarms / w->metrics is NULL. */
#ifndef CABLEKEY_KDC_ALARMS_H
#define CABLEKEY_KDC_ALARMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cablekey/ap.h"
#include "cablekey/profile.h"

#define KDC_MAX_FLEET_PEERS 16
#define KDC_DEFAULT_SKEW_THRESHOLD 10       /* clock-skew errors per window */
#define KDC_DEFAULT_SKEW_WINDOW 60          /* seconds */
#define KDC_DEFAULT_PREAUTH_THRESHOLD 20    /* failed pre-authentications of one principal */
#define KDC_DEFAULT_PREAUTH_WINDOW 60       /* seconds */
#define KDC_DEFAULT_CERT_EXPIRY_WARN (30 * 86400)
#define KDC_DEFAULT_PROBE_INTERVAL 60       /* seconds */
#define KDC_DEFAULT_PROBE_TRIES 3           /* failed probes in a row before kdc-down */
#define KDC_PROBE_TIMEOUT_MS 2000
#define KDC_PREAUTH_TRACK_MAX 4096          /* principals tracked for preauth-spike */
#define KDC_CERT_CHECK_INTERVAL 86400       /* seconds between certificate checks */

/* [kdcdefaults] settings (docs/cablekey-kdc.md "Alarms and metrics"). */
struct kdc_alarm_config {
    char *metrics_listen;        /* metrics_listen: NULL = CK_METRICS_DEFAULT_BIND */
    bool metrics_off;            /* metrics_listen = none */
    char *webhook_url;           /* alarm_webhook_url (NULL: no webhook) */
    char *webhook_secret_file;   /* alarm_webhook_secret_file (required with the URL) */
    char *webhook_ca_file;       /* alarm_webhook_ca_file (https; NULL: system anchors) */
    bool table;                  /* alarm_table: deliver to the database's alarm table */
    char *host;                  /* alarm_host: the name alarms carry (NULL: gethostname) */
    int64_t skew_threshold, skew_window;
    int64_t preauth_threshold, preauth_window;
    int64_t cert_expiry_warn;    /* seconds */
    char *fleet_peers[KDC_MAX_FLEET_PEERS]; /* "host[:port]" of the other KDCs */
    size_t n_fleet_peers;
    int64_t probe_interval;      /* seconds */
    int64_t probe_tries;
};

void kdc_alarm_config_init(struct kdc_alarm_config *c);
void kdc_alarm_config_free(struct kdc_alarm_config *c);
/* Reads the keys of [kdcdefaults] (CK_ERR_CONFIG naming the file, line and key). */
int kdc_alarm_config_load(struct kdc_alarm_config *c, const struct ck_profile *prof);
/* Cross-field checks (a webhook URL needs its secret file). */
int kdc_alarm_config_finish(const struct kdc_alarm_config *c);
/* The keys, for config.c's table (one place lists them). */
#define KDC_ALARM_CONFIG_KEYS                                                                 \
    "metrics_listen", "alarm_webhook_url", "alarm_webhook_secret_file",                       \
        "alarm_webhook_ca_file", "alarm_table", "alarm_host", "alarm_clock_skew_threshold",   \
        "alarm_clock_skew_window", "alarm_preauth_threshold", "alarm_preauth_window",         \
        "cert_expiry_warn", "fleet_peers", "fleet_probe_interval", "fleet_probe_tries"

struct kdc_daemon_config;
struct kdc_pkinit_config;
struct kdc_worker;
struct kdc_request;
struct ck_peer;
struct ck_alarm_mgr;
struct ck_metrics;

/* ---- the process's alarms (alarms.c) ---------------------------------------------------- */

/* Creates and starts the manager (sinks: log always; the table through its own database
 * connection, opened on first use, unless alarm_table = no; the webhook when configured), the
 * monitor thread (certificate expiry at start and daily, peer probes). After the privilege
 * drop: the threads keep the identity. realm: for subjects and the probes. */
int kdc_alarms_start(const struct kdc_daemon_config *dc, const char *realm,
                     struct ck_alarm_mgr **out);
/* --check: prints "alarms: ..." and "metrics: ..." lines; the webhook's secret file must be
 * readable (as the user running the check) and private, as at start. */
int kdc_alarms_check(const struct kdc_daemon_config *dc, FILE *out);
/* SIGHUP: new thresholds, certificate files and peers (checked again at once). */
void kdc_alarms_reload(const struct kdc_daemon_config *dc);
/* Stops the monitor, flushes and frees the manager. Accepts NULL. */
void kdc_alarms_stop(struct ck_alarm_mgr *m);

/* Hooks. tgs.c, when the TGS-REQ's AP-REQ fails: notes a ticket whose kvno the record no longer
 * holds. kdc.c, once per request after its outcome is final: raises kvno-missing (with the
 * client's address), counts clock-skew errors and failed pre-authentications. */
void kdc_alarm_ap_failure(struct kdc_request *r, const ck_ap_req_result *ap);
void kdc_alarm_request(struct kdc_worker *w, const struct kdc_request *r,
                       const struct ck_peer *peer);

/* The detectors' state machine, for tests: an injected clock (NULL: monotonic ms) and the
 * settings the hooks use without kdc_alarms_start; tick = what the monitor thread does every
 * second (windows that ended clear their alarms). */
void kdc_alarms_test_setup(int64_t (*now_ms)(void *), void *arg,
                           const struct kdc_alarm_config *c, const char *realm);
void kdc_alarms_tick(struct ck_alarm_mgr *m);
/* Checks the PKINIT identity's and anchors' certificates now (raise/clear cert-expiry). */
void kdc_alarms_check_certs(struct ck_alarm_mgr *m, const struct kdc_pkinit_config *pc,
                            int64_t warn, int64_t now);

/* ---- log levels (alarms.c; docs/logging.md) --------------------------------------------- */

/* The level of a request's log line: info (one line per request, for a technician), raised to
 * warning for the refusals a security expert must see (a wrong key or password, a locked,
 * disallowed or revoked client or device, a revoked certificate, a forged or altered ticket). */
int kdc_log_level_for(const struct kdc_request *r, int level);

/* Blocks SIGUSR1 and SIGUSR2 in the calling thread: call before any thread is created. */
int kdc_loglevel_signals_block(void);
/* A thread that steps the log level on SIGUSR1 (more: towards debug) and SIGUSR2 (less: towards
 * err), logging each change at notice. */
int kdc_loglevel_signals_start(void);

/* ---- metrics (metrics.c) ---------------------------------------------------------------- */

/* Registers the KDC's metrics and serves them (metrics_listen); *out NULL when metrics_listen
 * is none. alarms (may be NULL) feeds the active-alarms gauge. */
int kdc_metrics_start(const struct kdc_daemon_config *dc, struct ck_alarm_mgr *alarms,
                      struct ck_metrics **out);
void kdc_metrics_stop(struct ck_metrics *m); /* accepts NULL */
/* The port /metrics listens on (tests that bind port 0), 0 if none. */
int kdc_metrics_port(void);
/* Hooks: a start time (monotonic ns) taken when a request arrives, and the count of the
 * request once its outcome is final (kdc.c). */
int64_t kdc_metrics_now(void);
void kdc_metrics_request(struct kdc_worker *w, const struct kdc_request *r, int64_t t0_ns);
/* A database call timed by the alarm table sink (op "alarm_write"). */
void kdc_metrics_db(const char *op, int64_t ns, int rc);
/* Admission control (k9storm, admission.c): its counters (kdc_admission_dropped_total{reason},
 * kdc_admission_admitted_total) are registered with the others and sampled from srv at every
 * scrape. */
struct ck_net_server;
void kdc_metrics_admission(const struct ck_net_server *srv);

#endif
