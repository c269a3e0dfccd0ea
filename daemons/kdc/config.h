/* The daemon's settings: struct kdc_config for the protocol core plus what only the shell uses
 * (sockets, workers, logging), read from a profile (kdc.conf syntax). See docs/cablekey-kdc.md. */
#ifndef CABLEKEY_KDC_CONFIG_H
#define CABLEKEY_KDC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/daemon.h"
#include "cablekey/log.h"
#include "cablekey/profile.h"
#include "alarms.h"
#include "kdc.h"

#define KDC_DEFAULT_CONFIG "/etc/cablekey/kdc.conf"
#define KDC_DEFAULT_DB "/var/lib/cablekey/kdc.db"
#define KDC_DEFAULT_PORT 88
#define KDC_DEFAULT_TCP_MAX_CONNECTIONS 512   /* whole process */
#define KDC_DEFAULT_TCP_IDLE 30               /* seconds */
#define KDC_MAX_LISTEN 32

struct kdc_daemon_config {
    struct kdc_config kdc;
    char *listen[KDC_MAX_LISTEN];    /* "addr[:port]" entries, port 88 when absent */
    size_t n_listen;
    int workers;                     /* 0: one per online CPU */
    int tcp_max_connections;         /* whole process; split evenly over workers */
    int64_t tcp_idle_timeout;        /* seconds */
    bool cpu_affinity;               /* one worker per CPU: steer datagrams to their CPU's */
    /* How the listen list came about, when not from kdc_listen or --listen (MIT's kdc_ports,
     * or the all-addresses default): logged at start and printed by --check. */
    char listen_note[256];
    struct ck_log_target log;
    int log_level;
    /* kpasswd service (kpasswd.c): off while kpasswd_listen is empty; port 464 by default. */
    char *kpasswd_listen[KDC_MAX_LISTEN];
    size_t n_kpasswd_listen;
    char *kpasswd_admins;            /* who may set others' passwords (NULL: nobody) */
    /* Key version service (keyagent.c): NULL = port 7464 on the KDC's hosts, "none" = off. */
    char *keyagent_listen;
    char *user;                      /* kdc_user / --user: run as this user after binding */
    bool max_life_set, max_renew_set; /* kdc.conf named them (compared with the database's caps) */
    /* Service-key rotation (k9rot, rotation.c): the engine's tick on its own thread. */
    bool rotation;                   /* rotation = false: this KDC runs no tick */
    int64_t rotation_interval;       /* seconds between ticks (KDC_DEFAULT_ROTATION_INTERVAL) */
    /* ---- admission control (issue 9, mass reset: admission.c, docs/cablekey-kdc.md) ---- */
    bool admission;                  /* kdc_admission */
    int admission_window_ms;         /* kdc_admission_window_ms */
    int admission_congest_ms;        /* kdc_admission_congest_ms (0: the engine's default) */
    int admission_prefix4;           /* kdc_admission_prefix4 */
    int admission_prefix6;           /* kdc_admission_prefix6 */
    int admission_sources;           /* kdc_admission_sources (per worker) */
    int udp_rcvbuf;                  /* kdc_udp_rcvbuf (bytes per UDP socket) */
    struct kdc_alarm_config alarm;   /* alarms and metrics ([kdcdefaults], alarms.c) */
};
#define KDC_DEFAULT_ROTATION_INTERVAL 60 /* k9rot */

/* Every key cablekey-kdc reads from kdc.conf, one line each: anything else is an error with its
 * file and line (ck_conf_validate). */
extern const struct ck_conf_key kdc_conf_keys[];
extern const size_t kdc_conf_n_keys;

/* Defaults everywhere (kdc_config_defaults for the core part). */
void kdc_daemon_config_init(struct kdc_daemon_config *dc);
void kdc_daemon_config_free(struct kdc_daemon_config *dc);

/* Applies [kdcdefaults], [realms] and [logging] from prof over the current values. realm selects
 * the [realms] entry (NULL: the only one, if there is exactly one; a realm [realms] does not list
 * is an error when [realms] lists any). Unknown sections and keys are errors. Errors are
 * CK_ERR_CONFIG with "file:line: key = value: why" in the context. */
int kdc_daemon_config_load(struct kdc_daemon_config *dc, const struct ck_profile *prof,
                           const char *realm);

/* Replaces the listen list with the entries of value (separated by blanks or commas) when
 * replace is set, else appends them. Each entry's syntax is checked. */
int kdc_config_set_listen(struct kdc_daemon_config *dc, const char *value, bool replace);
/* The same for the kpasswd service's list (kpasswd_listen, --kpasswd-listen). */
int kdc_config_set_kpasswd_listen(struct kdc_daemon_config *dc, const char *value, bool replace);
/* "aes256-cts-hmac-sha1-96:normal aes128-cts ..." (salt types ignored, unknown names skipped
 * with a warning, at least one must remain). */
int kdc_config_parse_enctypes(const char *value, int32_t *enctypes, size_t *n);
/* The --log flag: ck_log_target_parse's flag syntax. level is left alone unless the spec names
 * one. */
int kdc_config_set_log(struct kdc_daemon_config *dc, const char *spec);
/* Fills in paths that default from others (database, stash = database + ".stash"), the default
 * listen address, and checks cross-field limits. */
int kdc_daemon_config_finish(struct kdc_daemon_config *dc);

#endif
