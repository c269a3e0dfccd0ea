/* Reading the KDC's settings from a kdc.conf-style profile. Key names follow MIT's kdc.conf
 * where the meaning is the same, so existing configurations mostly carry over. */
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/profile.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "admission.h"
#include "config.h"
#include "kpasswd.h"
#include "mta_fqdn.h"
#include "pkinit_kdc.h"

#define MAX_NAMES 64

void
kdc_config_defaults(struct kdc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_life = KDC_DEFAULT_MAX_LIFE;
    cfg->max_renewable_life = KDC_DEFAULT_MAX_RENEW;
    cfg->clockskew = KDC_DEFAULT_CLOCKSKEW;
    cfg->max_dgram_reply = KDC_DEFAULT_MAX_DGRAM_REPLY;
    cfg->max_request = KDC_DEFAULT_MAX_REQUEST;
    /* MIT's default order for the AES family. */
    cfg->enctypes[0] = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    cfg->enctypes[1] = CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96;
    cfg->enctypes[2] = CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192;
    cfg->enctypes[3] = CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128;
    cfg->n_enctypes = 4;
    cfg->lookaside = true;
}

void
kdc_config_free_contents(struct kdc_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->realm);
    free(cfg->db_path);
    free(cfg->stash_path);
    cfg->realm = cfg->db_path = cfg->stash_path = NULL;
    kdc_pkinit_config_free(cfg->pkinit);
    cfg->pkinit = NULL;
    kdc_mta_fqdn_config_free(cfg->mta_fqdn); /* mta_fqdn.c */
    cfg->mta_fqdn = NULL;
}

void
kdc_daemon_config_init(struct kdc_daemon_config *dc)
{
    memset(dc, 0, sizeof(*dc));
    kdc_config_defaults(&dc->kdc);
    dc->tcp_max_connections = KDC_DEFAULT_TCP_MAX_CONNECTIONS;
    dc->tcp_idle_timeout = KDC_DEFAULT_TCP_IDLE;
    dc->cpu_affinity = true;
    dc->log.dest = CK_LOG_STDERR;
    dc->log.level = -1;
    dc->log_level = LOG_INFO;
    dc->rotation = true;                                  /* k9rot */
    dc->rotation_interval = KDC_DEFAULT_ROTATION_INTERVAL; /* k9rot */
    kdc_admission_defaults(dc);
    kdc_alarm_config_init(&dc->alarm);
}

static void
clear_listen(struct kdc_daemon_config *dc)
{
    for (size_t i = 0; i < dc->n_listen; i++)
        free(dc->listen[i]);
    dc->n_listen = 0;
}

void
kdc_daemon_config_free(struct kdc_daemon_config *dc)
{
    if (dc == NULL)
        return;
    kdc_config_free_contents(&dc->kdc);
    clear_listen(dc);
    for (size_t i = 0; i < dc->n_kpasswd_listen; i++)
        free(dc->kpasswd_listen[i]);
    dc->n_kpasswd_listen = 0;
    free(dc->kpasswd_admins);
    dc->kpasswd_admins = NULL;
    free(dc->keyagent_listen);  /* keyagent.c */
    dc->keyagent_listen = NULL;
    free(dc->user);
    dc->user = NULL;
    kdc_alarm_config_free(&dc->alarm);
}

static int
set_string(char **dst, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    free(*dst);
    *dst = copy;
    return 0;
}

/* Splits value on blanks and commas, calling fn on each token (NUL-terminated copy). */
static int
for_each_token(const char *value, int (*fn)(const char *tok, void *arg), void *arg)
{
    const char *p = value;

    while (*p != '\0') {
        char tok[256];
        size_t n = strcspn(p, " \t,");
        int rc;

        if (n == 0) {
            p++;
            continue;
        }
        if (n >= sizeof(tok))
            return ck_error_set(CK_ERR_CONFIG, "entry too long in \"%s\"", value);
        memcpy(tok, p, n);
        tok[n] = '\0';
        if ((rc = fn(tok, arg)) != 0)
            return rc;
        p += n;
    }
    return 0;
}

static int
add_listen(const char *tok, void *arg)
{
    struct kdc_daemon_config *dc = arg;
    char host[256];
    uint16_t port;
    int rc;

    if ((rc = ck_net_parse_listen(tok, KDC_DEFAULT_PORT, host, sizeof(host), &port)) != 0)
        return rc;
    if (dc->n_listen >= KDC_MAX_LISTEN)
        return ck_error_set(CK_ERR_LIMIT, "more than %d listen addresses", KDC_MAX_LISTEN);
    if ((dc->listen[dc->n_listen] = strdup(tok)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    dc->n_listen++;
    return 0;
}

int
kdc_config_set_listen(struct kdc_daemon_config *dc, const char *value, bool replace)
{
    if (replace)
        clear_listen(dc);
    return for_each_token(value, add_listen, dc);
}

static int
add_kpasswd_listen(const char *tok, void *arg)
{
    struct kdc_daemon_config *dc = arg;
    char host[256];
    uint16_t port;
    int rc;

    if ((rc = ck_net_parse_listen(tok, KPASSWD_DEFAULT_PORT, host, sizeof(host), &port)) != 0)
        return rc;
    if (dc->n_kpasswd_listen >= KDC_MAX_LISTEN)
        return ck_error_set(CK_ERR_LIMIT, "more than %d kpasswd listen addresses",
                            KDC_MAX_LISTEN);
    if ((dc->kpasswd_listen[dc->n_kpasswd_listen] = strdup(tok)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    dc->n_kpasswd_listen++;
    return 0;
}

int
kdc_config_set_kpasswd_listen(struct kdc_daemon_config *dc, const char *value, bool replace)
{
    if (replace) {
        for (size_t i = 0; i < dc->n_kpasswd_listen; i++)
            free(dc->kpasswd_listen[i]);
        dc->n_kpasswd_listen = 0;
    }
    return for_each_token(value, add_kpasswd_listen, dc);
}

struct enctype_list {
    int32_t *out;
    size_t n;
};

static bool
is_legacy_enctype_name(const char *name)
{
    static const char *const prefixes[] = {"des", "rc4", "arcfour", "camellia", "aes128-cts-hmac-md5",
                                           "16", "23", "25", "26"};

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncasecmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

static int
add_enctype(const char *tok, void *arg)
{
    struct enctype_list *l = arg;
    char name[256];
    char *colon;
    int32_t e;

    ck_strlcpy(name, tok, sizeof(name));
    /* MIT writes "enctype:salttype"; the salt type concerns stored keys, not the KDC. */
    if ((colon = strchr(name, ':')) != NULL)
        *colon = '\0';
    if (ck_enctype_from_name(name, &e) != 0 || !ck_enctype_is_supported(e)) {
        /* Legacy enctypes MIT configs still list are skipped; anything else is a typo that
         * would silently change what the KDC issues, so it is an error. */
        if (is_legacy_enctype_name(name)) {
            ck_log_warn("supported_enctypes: ignoring disabled legacy enctype \"%s\"", name);
            return 0;
        }
        return ck_error_set(CK_ERR_CONFIG, "supported_enctypes: unknown enctype \"%s\"", name);
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->out[i] == e)
            return 0;
    if (l->n >= KDC_MAX_ENCTYPES)
        return ck_error_set(CK_ERR_CONFIG, "supported_enctypes: more than %d enctypes",
                            KDC_MAX_ENCTYPES);
    l->out[l->n++] = e;
    return 0;
}

int
kdc_config_parse_enctypes(const char *value, int32_t *enctypes, size_t *n)
{
    int32_t tmp[KDC_MAX_ENCTYPES];
    struct enctype_list l = {tmp, 0};
    int rc;

    if ((rc = for_each_token(value, add_enctype, &l)) != 0)
        return rc;
    if (l.n == 0)
        return ck_error_set(CK_ERR_CONFIG, "supported_enctypes: no supported enctype in \"%s\"",
                            value);
    memcpy(enctypes, tmp, l.n * sizeof(tmp[0]));
    *n = l.n;
    return 0;
}

int
kdc_config_set_log(struct kdc_daemon_config *dc, const char *spec)
{
    struct ck_log_target t;
    int rc;

    if ((rc = ck_log_target_parse(spec, true, &t)) != 0)
        return rc;
    if (t.level >= 0)
        dc->log_level = t.level;
    dc->log = t;
    return 0;
}

/* ---- the schema ------------------------------------------------------------------------- */

#define DEFAULTS(name) {"kdcdefaults", name, CK_CONF_TOP}
#define REALM(name) {"realms", name, CK_CONF_SUB}
#define LOGGING(name) {"logging", name, CK_CONF_TOP}

const struct ck_conf_key kdc_conf_keys[] = {
    DEFAULTS("kdc_listen"),
    DEFAULTS("kdc_ports"),                 /* MIT: without kdc_listen, these ports everywhere */
    DEFAULTS("kdc_tcp_listen"),            /* MIT: accepted when equal to kdc_listen */
    DEFAULTS("kdc_tcp_ports"),
    DEFAULTS("kpasswd_listen"),            /* the kpasswd service */
    DEFAULTS("keyagent_listen"),           /* the key version service (keyagent.c) */
    DEFAULTS("kdc_max_dgram_reply_size"),
    DEFAULTS("kdc_max_request_size"),
    DEFAULTS("kdc_tcp_max_connections"),
    DEFAULTS("kdc_tcp_idle_timeout"),
    DEFAULTS("kdc_workers"),
    DEFAULTS("kdc_cpu_affinity"),
    DEFAULTS("kdc_user"),
    DEFAULTS("db_max_staleness"),          /* KDC fleet (fleet.c, docs/fleet.md) */
    /* Admission control (issue 9, mass reset; admission.c). */
    DEFAULTS("kdc_admission"),
    DEFAULTS("kdc_admission_window_ms"),
    DEFAULTS("kdc_admission_congest_ms"),
    DEFAULTS("kdc_admission_prefix4"),
    DEFAULTS("kdc_admission_prefix6"),
    DEFAULTS("kdc_admission_sources"),
    DEFAULTS("kdc_udp_rcvbuf"),
    REALM("database_name"),
    REALM("key_stash_file"),
    REALM("max_life"),
    REALM("max_renewable_life"),
    REALM("supported_enctypes"),
    REALM("clockskew"),
    REALM("lookaside"),
    REALM("kdc_listen"),
    REALM("kdc_ports"),
    REALM("kdc_tcp_listen"),
    REALM("kdc_tcp_ports"),
    REALM("kpasswd_listen"),
    REALM("kpasswd_admins"),               /* who may set others' passwords (kpasswd.c) */
    REALM("keyagent_listen"),              /* the key version service (keyagent.c) */
    REALM("disable_lockout"),              /* lockout.c; MIT has it in [dbmodules] */
    REALM("disable_last_success"),
    REALM("db_max_staleness"),             /* KDC fleet: a realm's value wins */
    /* MIT keys accepted without effect, so an MIT realm's kdc.conf loads: they concern kadmind
     * and kdb5_util, not the KDC. */
    REALM("acl_file"),
    REALM("admin_keytab"),
    REALM("dict_file"),
    REALM("kadmind_port"),
    REALM("kpasswd_port"),
    REALM("master_key_type"),
    REALM("default_principal_flags"),
    /* PKINIT (pkinit_config.c reads them: KDC_PKINIT_CONFIG_KEYS, checked by test_daemon). */
    REALM("pkinit_identity"),
    REALM("pkinit_password_file"),
    REALM("pkinit_anchors"),
    REALM("pkinit_device_anchors"),
    REALM("pkinit_packetcable_anchors"),
    REALM("pkinit_pool"),
    REALM("pkinit_revoke"),
    REALM("pkinit_dh_min_bits"),
    REALM("pkinit_require_freshness"),
    REALM("pkinit_allow_rsa_key_transport"),
    REALM("pkinit_eku_checking"),
    REALM("pkinit_cert_cache_size"),
    REALM("pkinit_thumbprint_cache_size"),
    /* MTA-FQDN (mta_fqdn.c, issue 10). */
    REALM("pkinit_mta_fqdn_server"),
    REALM("pkinit_mta_fqdn_timeout_ms"),
    REALM("pkinit_mta_fqdn_cache_seconds"),
    /* Service-key rotation (k9rot, rotation.c; docs/cablekey-kdc.md "Service-key rotation"). */
    DEFAULTS("rotation"),
    DEFAULTS("rotation_interval"),
    REALM("rotation"),
    REALM("rotation_interval"),
    /* Alarms and metrics (alarms.c: KDC_ALARM_CONFIG_KEYS). */
    DEFAULTS("metrics_listen"),
    DEFAULTS("alarm_webhook_url"),
    DEFAULTS("alarm_webhook_secret_file"),
    DEFAULTS("alarm_webhook_ca_file"),
    DEFAULTS("alarm_table"),
    DEFAULTS("alarm_host"),
    DEFAULTS("alarm_clock_skew_threshold"),
    DEFAULTS("alarm_clock_skew_window"),
    DEFAULTS("alarm_preauth_threshold"),
    DEFAULTS("alarm_preauth_window"),
    DEFAULTS("cert_expiry_warn"),
    DEFAULTS("fleet_peers"),
    DEFAULTS("fleet_probe_interval"),
    DEFAULTS("fleet_probe_tries"),
    LOGGING("kdc"),
    LOGGING("default"),
    LOGGING("admin_server"),               /* kadmind's; accepted without effect */
    LOGGING("level"),
};
const size_t kdc_conf_n_keys = sizeof(kdc_conf_keys) / sizeof(kdc_conf_keys[0]);

/* ---- typed readers ---------------------------------------------------------------------- */

/* The value of section[/sub]/key, or NULL. */
static const char *
get(const struct ck_profile *prof, const char *section, const char *sub, const char *key)
{
    return sub != NULL ? ck_profile_get(prof, section, sub, key, NULL)
                       : ck_profile_get(prof, section, key, NULL);
}

/* msg may be ck_error_context() itself: it is copied before the context is rewritten. */
static int
bad(const struct ck_profile *prof, const char *section, const char *sub, const char *key,
    const char *msg)
{
    char copy[512];

    ck_strlcpy(copy, msg, sizeof(copy));
    return sub != NULL ? ck_conf_error(prof, CK_ERR_CONFIG, copy, section, sub, key, NULL)
                       : ck_conf_error(prof, CK_ERR_CONFIG, copy, section, key, NULL);
}

/* Reads an integer in [min, max]; *out is untouched when the key is absent. */
static int
get_int(const struct ck_profile *prof, const char *section, const char *sub, const char *key,
        int64_t min, int64_t max, int64_t *out)
{
    const char *v = get(prof, section, sub, key);
    char msg[96];

    if (v == NULL)
        return 0;
    if (ck_parse_int64(v, min, max, out) != 0) {
        snprintf(msg, sizeof(msg), "expected a number from %lld to %lld", (long long)min,
                 (long long)max);
        return bad(prof, section, sub, key, msg);
    }
    return 0;
}

static int
get_duration(const struct ck_profile *prof, const char *section, const char *sub,
             const char *key, int64_t min, int64_t max, int64_t *out)
{
    const char *v = get(prof, section, sub, key);
    int64_t d;

    if (v == NULL)
        return 0;
    if (ck_parse_duration(v, &d) != 0 || d < min)
        return bad(prof, section, sub, key, "expected a duration such as 10h");
    if (d > max)
        return bad(prof, section, sub, key, "more than a day");
    *out = d;
    return 0;
}

static int
get_bool(const struct ck_profile *prof, const char *section, const char *sub, const char *key,
         bool *out)
{
    const char *v = get(prof, section, sub, key);

    if (v != NULL && ck_parse_bool(v, out) != 0)
        return bad(prof, section, sub, key, "expected yes or no");
    return 0;
}

/* KDC fleet: db_max_staleness, a duration; 0 (never serve stale) is stored as -1, since 0 in
 * kdc_config means the default. */
static int
get_staleness(const struct ck_profile *prof, const char *section, const char *sub,
              int64_t *out_ms)
{
    int64_t d = -1;
    int rc;

    if ((rc = get_duration(prof, section, sub, "db_max_staleness", 0, 86400, &d)) != 0)
        return rc;
    if (d >= 0)
        *out_ms = d == 0 ? -1 : d * 1000;
    return 0;
}

/* ---- listen addresses ------------------------------------------------------------------- */

/* The tokens of a and b, in order (MIT configs repeat kdc_listen as kdc_tcp_listen). */
static bool
same_list(const char *a, const char *b)
{
    for (;;) {
        size_t na, nb;

        a += strspn(a, " \t,");
        b += strspn(b, " \t,");
        na = strcspn(a, " \t,");
        nb = strcspn(b, " \t,");
        if (na != nb || strncmp(a, b, na) != 0)
            return false;
        if (na == 0)
            return true;
        a += na;
        b += nb;
    }
}

struct port_list {
    struct kdc_daemon_config *dc;
    char text[96];
};

static int
add_port(const char *tok, void *arg)
{
    struct port_list *pl = arg;
    int64_t port;
    size_t used = strlen(pl->text);

    if (ck_parse_int64(tok, 1, 65535, &port) != 0)
        return ck_error_set(CK_ERR_CONFIG, "\"%s\" is not a port number", tok);
    if (used + strlen(tok) + 2 > sizeof(pl->text))
        return ck_error_set(CK_ERR_LIMIT, "too many ports");
    snprintf(pl->text + used, sizeof(pl->text) - used, "%s%.*s", used > 0 ? " " : "",
             (int)(sizeof(pl->text) - used - 2), tok);
    return add_listen(tok, pl->dc);
}

/* kdc_listen, or MIT's kdc_ports/kdc_tcp_ports, in [kdcdefaults] (sub NULL) or a realm's entry.
 * cablekey-kdc serves UDP and TCP on the same addresses, so the TCP forms are accepted only when
 * they say the same as the UDP ones; anything else is refused, never narrowed or widened. */
static int
load_listen(struct kdc_daemon_config *dc, const struct ck_profile *prof, const char *section,
            const char *sub)
{
    const char *listen = get(prof, section, sub, "kdc_listen");
    const char *tcp_listen = get(prof, section, sub, "kdc_tcp_listen");
    const char *ports = get(prof, section, sub, "kdc_ports");
    const char *tcp_ports = get(prof, section, sub, "kdc_tcp_ports");
    struct port_list pl;
    int rc;

    if (tcp_listen != NULL && (listen == NULL || !same_list(listen, tcp_listen)))
        return bad(prof, section, sub, "kdc_tcp_listen",
                   "cablekey-kdc serves UDP and TCP on the same addresses: set kdc_listen "
                   "(and kdc_tcp_listen only to the same list)");
    if (listen != NULL) {
        if ((rc = kdc_config_set_listen(dc, listen, true)) != 0)
            return bad(prof, section, sub, "kdc_listen", ck_error_context());
        dc->listen_note[0] = '\0';
        if (ports != NULL || tcp_ports != NULL)
            ck_log_notice("kdc_listen is set: kdc_ports/kdc_tcp_ports are not used (as in MIT)");
        return 0;
    }
    if (ports == NULL && tcp_ports == NULL)
        return 0;
    if (ports != NULL && tcp_ports != NULL && !same_list(ports, tcp_ports))
        return bad(prof, section, sub, "kdc_tcp_ports",
                   "differs from kdc_ports; cablekey-kdc serves UDP and TCP on the same "
                   "ports: use kdc_listen");
    /* MIT's meaning of kdc_ports without kdc_listen: those ports on every address. */
    memset(&pl, 0, sizeof(pl));
    pl.dc = dc;
    clear_listen(dc);
    if ((rc = for_each_token(ports != NULL ? ports : tcp_ports, add_port, &pl)) != 0)
        return bad(prof, section, sub, ports != NULL ? "kdc_ports" : "kdc_tcp_ports",
                   ck_error_context());
    if (dc->n_listen == 0)
        return bad(prof, section, sub, ports != NULL ? "kdc_ports" : "kdc_tcp_ports",
                   "no port");
    snprintf(dc->listen_note, sizeof(dc->listen_note),
             "%s = %s without kdc_listen: every address, on %s (MIT's meaning)",
             ports != NULL ? "kdc_ports" : "kdc_tcp_ports", pl.text,
             strchr(pl.text, ' ') != NULL ? "each of these ports" : "this port");
    return 0;
}

/* ---- admission control (issue 9, mass reset; admission.c) ------------------------------- */

static int
load_admission(struct kdc_daemon_config *dc, const struct ck_profile *prof)
{
    const char *S = "kdcdefaults";
    int64_t w = dc->admission_window_ms, p4 = dc->admission_prefix4, p6 = dc->admission_prefix6;
    int64_t cg = dc->admission_congest_ms;
    int64_t n = dc->admission_sources, rb = dc->udp_rcvbuf;
    int rc;

    if ((rc = get_bool(prof, S, NULL, "kdc_admission", &dc->admission)) != 0 ||
        (rc = get_int(prof, S, NULL, "kdc_admission_window_ms", 10, CK_ADMISSION_MAX_WINDOW_MS,
                      &w)) != 0 ||
        (rc = get_int(prof, S, NULL, "kdc_admission_congest_ms", 1, CK_ADMISSION_MAX_WINDOW_MS,
                      &cg)) != 0 ||
        (rc = get_int(prof, S, NULL, "kdc_admission_prefix4", 1, 32, &p4)) != 0 ||
        (rc = get_int(prof, S, NULL, "kdc_admission_prefix6", 1, 128, &p6)) != 0 ||
        (rc = get_int(prof, S, NULL, "kdc_admission_sources", 16, CK_ADMISSION_MAX_SOURCES,
                      &n)) != 0 ||
        (rc = get_int(prof, S, NULL, "kdc_udp_rcvbuf", 0, CK_NET_MAX_RCVBUF, &rb)) != 0)
        return rc;
    if (cg > w)
        return bad(prof, S, NULL, "kdc_admission_congest_ms", "more than kdc_admission_window_ms");
    dc->admission_window_ms = (int)w;
    dc->admission_congest_ms = (int)cg;
    dc->admission_prefix4 = (int)p4;
    dc->admission_prefix6 = (int)p6;
    dc->admission_sources = (int)n;
    dc->udp_rcvbuf = (int)rb;
    return 0;
}

/* ---- sections --------------------------------------------------------------------------- */

/* k9rot: rotation and rotation_interval, in [kdcdefaults] (sub NULL) or a realm's entry. */
static int
load_rotation(struct kdc_daemon_config *dc, const struct ck_profile *prof, const char *section,
              const char *sub)
{
    int rc;

    if ((rc = get_bool(prof, section, sub, "rotation", &dc->rotation)) != 0)
        return rc;
    return get_duration(prof, section, sub, "rotation_interval", 1, 86400,
                        &dc->rotation_interval);
}

static int
load_kdcdefaults(struct kdc_daemon_config *dc, const struct ck_profile *prof)
{
    const char *S = "kdcdefaults", *v;
    int64_t n = -1;
    int rc;

    if ((v = get(prof, S, NULL, "kpasswd_listen")) != NULL &&
        (rc = kdc_config_set_kpasswd_listen(dc, v, true)) != 0)
        return bad(prof, S, NULL, "kpasswd_listen", ck_error_context());
    if ((v = get(prof, S, NULL, "keyagent_listen")) != NULL &&
        (rc = set_string(&dc->keyagent_listen, v)) != 0)
        return rc;
    if ((rc = load_listen(dc, prof, S, NULL)) != 0)
        return rc;
    n = (int64_t)dc->kdc.max_dgram_reply;
    if ((rc = get_int(prof, S, NULL, "kdc_max_dgram_reply_size", 128, 65507, &n)) != 0)
        return rc;
    dc->kdc.max_dgram_reply = (size_t)n;
    n = (int64_t)dc->kdc.max_request;
    if ((rc = get_int(prof, S, NULL, "kdc_max_request_size", 1024, CK_NET_MAX_REQUEST_LIMIT,
                      &n)) != 0)
        return rc;
    dc->kdc.max_request = (size_t)n;
    n = dc->tcp_max_connections;
    if ((rc = get_int(prof, S, NULL, "kdc_tcp_max_connections", 1, 1000000, &n)) != 0)
        return rc;
    dc->tcp_max_connections = (int)n;
    if ((rc = get_duration(prof, S, NULL, "kdc_tcp_idle_timeout", 1, 86400,
                           &dc->tcp_idle_timeout)) != 0)
        return rc;
    n = dc->workers;
    if ((rc = get_int(prof, S, NULL, "kdc_workers", 1, CK_NET_MAX_WORKERS, &n)) != 0)
        return rc;
    dc->workers = (int)n;
    if ((rc = get_bool(prof, S, NULL, "kdc_cpu_affinity", &dc->cpu_affinity)) != 0 ||
        (rc = load_rotation(dc, prof, S, NULL)) != 0) /* k9rot */
        return rc;
    if ((rc = get_staleness(prof, S, NULL, &dc->kdc.db_max_staleness_ms)) != 0)
        return rc;
    if ((rc = load_admission(dc, prof)) != 0)
        return rc;
    if ((v = get(prof, S, NULL, "kdc_user")) != NULL) {
        if (v[0] == '\0')
            return bad(prof, S, NULL, "kdc_user", "empty user name");
        if ((rc = set_string(&dc->user, v)) != 0)
            return rc;
    }
    return 0;
}

static int
load_realm(struct kdc_daemon_config *dc, const struct ck_profile *prof, const char *r)
{
    const char *S = "realms", *v;
    int rc;

    if ((v = get(prof, S, r, "database_name")) != NULL &&
        (rc = set_string(&dc->kdc.db_path, v)) != 0)
        return rc;
    if ((v = get(prof, S, r, "key_stash_file")) != NULL &&
        (rc = set_string(&dc->kdc.stash_path, v)) != 0)
        return rc;
    if ((rc = get_duration(prof, S, r, "max_life", 60, CK_PROFILE_MAX_DURATION,
                           &dc->kdc.max_life)) != 0 ||
        (rc = get_duration(prof, S, r, "max_renewable_life", 0, CK_PROFILE_MAX_DURATION,
                           &dc->kdc.max_renewable_life)) != 0 ||
        (rc = get_duration(prof, S, r, "clockskew", 0, 86400, &dc->kdc.clockskew)) != 0)
        return rc;
    dc->max_life_set = get(prof, S, r, "max_life") != NULL;
    dc->max_renew_set = get(prof, S, r, "max_renewable_life") != NULL;
    if ((v = get(prof, S, r, "supported_enctypes")) != NULL &&
        (rc = kdc_config_parse_enctypes(v, dc->kdc.enctypes, &dc->kdc.n_enctypes)) != 0)
        return bad(prof, S, r, "supported_enctypes", ck_error_context());
    if ((rc = get_bool(prof, S, r, "lookaside", &dc->kdc.lookaside)) != 0)
        return rc;
    /* MIT has these two in [dbmodules]; here they belong to the realm's KDC (Lockout). */
    if ((rc = get_bool(prof, S, r, "disable_lockout", &dc->kdc.disable_lockout)) != 0 ||
        (rc = get_bool(prof, S, r, "disable_last_success", &dc->kdc.disable_last_success)) != 0)
        return rc;
    if ((rc = get_staleness(prof, S, r, &dc->kdc.db_max_staleness_ms)) != 0)
        return rc;
    if ((rc = kdc_mta_fqdn_config_load(&dc->kdc.mta_fqdn, prof, r)) != 0) /* mta_fqdn.c */
        return rc;
    if ((rc = kdc_pkinit_config_load(&dc->kdc.pkinit, prof, r)) != 0 ||
        (rc = load_rotation(dc, prof, S, r)) != 0) /* k9rot */
        return rc;
    if ((v = get(prof, S, r, "kpasswd_listen")) != NULL &&
        (rc = kdc_config_set_kpasswd_listen(dc, v, true)) != 0)
        return bad(prof, S, r, "kpasswd_listen", ck_error_context());
    if ((v = get(prof, S, r, "kpasswd_admins")) != NULL &&
        (rc = set_string(&dc->kpasswd_admins, v)) != 0)
        return rc;
    if ((v = get(prof, S, r, "keyagent_listen")) != NULL &&
        (rc = set_string(&dc->keyagent_listen, v)) != 0)
        return rc;
    /* As in MIT, a realm's own listen settings win over [kdcdefaults]. */
    return load_listen(dc, prof, S, r);
}

static int
load_logging(struct kdc_daemon_config *dc, const struct ck_profile *prof)
{
    const char *vals[4];
    const char *key = "kdc", *v;
    struct ck_log_target t;
    size_t n;
    int l;

    n = ck_profile_get_all(prof, vals, 4, "logging", "kdc", NULL);
    if (n == 0) {
        key = "default";
        n = ck_profile_get_all(prof, vals, 4, "logging", "default", NULL);
    }
    /* One destination: refusing the others is clearer than logging to some of them. */
    if (n > 1)
        return bad(prof, "logging", NULL, key,
                   "several destinations; cablekey-kdc logs to one (use syslog to fan out)");
    if (n == 1) {
        if (ck_log_target_parse(vals[0], false, &t) != 0)
            return bad(prof, "logging", NULL, key, ck_error_context());
        if (t.level >= 0)
            dc->log_level = t.level;
        dc->log = t;
    }
    if ((v = ck_profile_get(prof, "logging", "level", NULL)) != NULL) {
        if ((l = ck_log_level_from_name(v)) < 0)
            return bad(prof, "logging", NULL, "level",
                       "unknown level (err, warning, notice, info, debug)");
        dc->log_level = l;
    }
    return 0;
}

int
kdc_daemon_config_load(struct kdc_daemon_config *dc, const struct ck_profile *prof,
                       const char *realm)
{
    const char *names[MAX_NAMES];
    size_t n;
    int rc;

    if (prof == NULL) {
        if (realm != NULL)
            return set_string(&dc->kdc.realm, realm);
        return 0;
    }
    if ((rc = ck_conf_validate(prof, kdc_conf_keys, kdc_conf_n_keys)) != 0)
        return rc;
    if ((rc = load_kdcdefaults(dc, prof)) != 0 || (rc = load_logging(dc, prof)) != 0)
        return rc;
    if ((rc = kdc_alarm_config_load(&dc->alarm, prof)) != 0) /* alarms.c */
        return rc;
    n = ck_profile_subsections(prof, names, MAX_NAMES, "realms", NULL);
    if (realm == NULL) {
        /* One realm per process: the file may name one, or the database decides. */
        if (n > 1)
            return ck_error_set(CK_ERR_CONFIG, "[realms] lists %zu realms; choose one with "
                                "--realm", n);
        if (n == 0)
            return 0;
        realm = names[0];
    } else {
        bool found = false;
        for (size_t i = 0; i < n && i < MAX_NAMES && !found; i++)
            found = strcmp(names[i], realm) == 0;
        if (!found && n > 0)
            return ck_error_set(CK_ERR_CONFIG, "realm %s has no [realms] entry (the file "
                                "lists %s%s)", realm, names[0], n > 1 ? ", ..." : "");
    }
    if ((rc = set_string(&dc->kdc.realm, realm)) != 0)
        return rc;
    return load_realm(dc, prof, dc->kdc.realm);
}

int
kdc_daemon_config_finish(struct kdc_daemon_config *dc)
{
    int rc;

    if (dc->n_listen == 0) {
        /* Said out loud (start-up log, --check), never silently: every address. */
        if ((rc = kdc_config_set_listen(dc, "88", true)) != 0)
            return rc;
        snprintf(dc->listen_note, sizeof(dc->listen_note),
                 "no kdc_listen or --listen: every address, port 88 (the default)");
    }
    if (dc->kdc.db_path == NULL && (rc = set_string(&dc->kdc.db_path, KDC_DEFAULT_DB)) != 0)
        return rc;
    {
        /* A bad location (unknown scheme, a password in a PostgreSQL URI) is a configuration
         * error now, for --check, not at the first worker's open. */
        ck_store_uri u;
        if ((rc = ck_store_uri_parse(dc->kdc.db_path, &u)) != 0)
            return ck_error_set(rc, "database (database_name, --db): %s", ck_error_context());
        ck_store_uri_clear(&u);
    }
    if (dc->kdc.stash_path == NULL &&
        (rc = ck_store_default_stash(dc->kdc.db_path, &dc->kdc.stash_path)) != 0)
        return ck_error_set(rc, "key_stash_file (--stash): %s", ck_error_context());
    if (dc->kdc.max_renewable_life != 0 && dc->kdc.max_renewable_life < dc->kdc.max_life)
        ck_log_warn("max_renewable_life is shorter than max_life");
    if (dc->workers < 0 || dc->workers > CK_NET_MAX_WORKERS)
        return ck_error_set(CK_ERR_CONFIG, "workers must be 1..%d", CK_NET_MAX_WORKERS);
    if (dc->tcp_idle_timeout > 86400)
        return ck_error_set(CK_ERR_CONFIG, "kdc_tcp_idle_timeout: more than a day");
    if ((rc = kdc_alarm_config_finish(&dc->alarm)) != 0) /* alarms.c */
        return rc;
    return kdc_pkinit_config_finish(dc->kdc.pkinit);
}
