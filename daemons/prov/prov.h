/* cablekey-prov, the provisioning CA daemon (issue 10; docs/cablekey-prov.md). The contract
 * between its parts; each part owns its own .c files (see /work/wt/CONTRACT10.md).
 *
 * Processes (privilege separation, STYLE.md lesson 1):
 *   - the signer (signer.c), forked first: holds the provisioning CA's key and the phone-ID key
 *     and nothing else; never parses HTTP, JSON or Kerberos; answers fixed-layout requests on a
 *     socketpair (prov_signer_*);
 *   - the back (back.c), forked next: the only process with the store; runs the actions
 *     (flows.c), the UDP 2246 MTA-FQDN server (fqdn.c), the device channel (devchan.c), the
 *     webhook deliveries (webhook.c);
 *   - the front (front.c, api.c, console.c): HTTP (libmicrohttpd), SPNEGO and console sessions,
 *     the ACL, JSON validation; every store operation is a message to the back.
 * Everything but main.c is the static library cablekey_prov_core (unit tests link it). */
#ifndef CABLEKEY_DAEMON_PROV_H
#define CABLEKEY_DAEMON_PROV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/daemon.h"
#include "cablekey/prov.h"

#define PROV_MAX_LISTEN 8
#define PROV_MAX_WEBHOOKS 8
#define PROV_MAX_POOLS 64
#define PROV_DEFAULT_HTTP "127.0.0.1:8088"  /* loopback by default: see docs (TLS otherwise) */
#define PROV_DEFAULT_CERT_DAYS 365
#define PROV_DEFAULT_REPAIR_CERT_HOURS 48
#define PROV_PROG "cablekey-prov"
#define PROV_DEFAULT_CONFIG "/etc/cablekey/prov.conf"
#define PROV_DEFAULT_PORT 8088
#define PROV_DEFAULT_MAX_BODY (64 * 1024)
#define PROV_MAX_MAX_BODY (256 * 1024)
#define PROV_DEFAULT_MAX_CONNECTIONS 64
#define PROV_DEFAULT_TIMEOUT 30
#define PROV_DEFAULT_SESSION_LIFETIME 3600
#define PROV_DEFAULT_MAX_SESSIONS 1024
#define PROV_DEFAULT_WORKERS 2        /* the back's request workers: one signs while one commits */
#define PROV_MAX_WORKERS 16

struct prov_webhook {
    char *name;                 /* [A-Za-z0-9_-]{1,63} */
    char *url;                  /* http:// or https:// */
    char *secret_file;          /* 0600, the HMAC-SHA-256 key */
};

struct prov_pool {
    char *segment, *first, *last;
};

/* [prov] in the configuration file (config.c; key table prov_conf_keys). */
struct prov_config {
    char *config_path;
    char *database, *stash;             /* --db PATH|URI */
    char *realm;                        /* NULL: the store's */
    char *listen[PROV_MAX_LISTEN];      /* HTTP API and console */
    size_t n_listen;
    char *tls_identity, *tls_password_file; /* PKCS#12; NULL: plain HTTP (loopback only) */
    char *keytab;                       /* HTTP/<host>, prov/<host>, mtafqdn/<host> keys */
    char *acl_file;
    char *kdc;                          /* console password logins: "host:port ..."; NULL:
                                           krb5.conf */
    int64_t session_lifetime;           /* console sessions, seconds (default 3600) */
    char *fqdn_listen[PROV_MAX_LISTEN]; /* MTA-FQDN UDP; default 0.0.0.0:2246; "none" */
    size_t n_fqdn_listen;
    char *devchan_listen[PROV_MAX_LISTEN]; /* device channel TCP+UDP; default :7467; "none" */
    size_t n_devchan_listen;
    char *ca_cert, *ca_key, *ca_password_file; /* the provisioning CA (pki init's prov-ca) */
    char *ca_chain;                     /* PEM: the CA's chain sent to devices */
    char *phone_id_key;                 /* 0600, 32 random bytes (pki init's phone-id.key) */
    int64_t cert_days, repair_cert_hours;
    char *fqdn_domain;                  /* device FQDN = <principal name>.<fqdn_domain> */
    struct prov_webhook webhooks[PROV_MAX_WEBHOOKS];
    size_t n_webhooks;
    struct prov_pool pools[PROV_MAX_POOLS];
    size_t n_pools;
    char *csr_numbers;                  /* the CSR and emergency numbers ("611 911"), shown in
                                           the console and docs; the KDC has its own copy */
    int64_t clockskew;
    struct ck_log_target log;
    int log_level;
    char *pid_file, *user;
    /* Added by P2 (the daemon itself). */
    const struct ck_daemon_opts *opts;  /* the flags it was loaded with (NULL: a test's) */
    size_t max_body;                    /* request body limit (413 beyond) */
    unsigned max_connections, timeout;  /* libmicrohttpd: connections, idle seconds */
    size_t max_sessions;                /* console sessions held by the front */
    size_t workers;                     /* the back's request workers (channels from the front) */
};

extern const struct ck_conf_key prov_conf_keys[];
extern const size_t prov_conf_n_keys;
void prov_config_init(struct prov_config *cfg);
void prov_config_free(struct prov_config *cfg);
int prov_config_load(const struct ck_daemon_opts *o, struct prov_config *cfg);

/* ---- the signer (signer.c) ---- */
struct prov_signer;
/* Forks the signer: the child loads ca_cert/ca_key (password file) and phone_id_key, closes
 * every other descriptor, and serves requests until its socket closes. */
int prov_signer_start(const struct prov_config *cfg, struct prov_signer **out);
/* Issues the operator certificate: the subject key is the manufacturer certificate's key (the
 * same key, seed 002), subject CN = the MAC ("aa:bb:cc:dd:ee:ff", as the manufacturer's), the
 * phone-ID extension (id-cablekey-phone-ids, docs/PROTOCOL.md) with one HMAC-SHA-256 phone ID
 * per number, validity not_before .. not_after, serial random 128 bits, the prov CA as
 * issuer. Checks the manufacturer certificate's MAC equals mac. */
struct prov_sign_req {
    const uint8_t *mfg_cert_der;
    size_t mfg_cert_len;
    const char *mac;
    const char *const *numbers;
    size_t n_numbers;
    int64_t not_before, not_after;
};
int prov_signer_issue(struct prov_signer *s, const struct prov_sign_req *req, uint8_t **der,
                      size_t *der_len);
/* The phone ID of a number (32 bytes), for the console and tests. */
int prov_signer_phone_id(struct prov_signer *s, const char *number, uint8_t out[32]);
void prov_signer_stop(struct prov_signer *s);   /* closes the socket, reaps the child */

/* ---- webhooks (webhook.c), in the back process ---- */
struct prov_webhooks;
/* Starts the delivery thread on its own store connection; now_fn NULL: the system clock. */
int prov_webhooks_start(const struct prov_config *cfg, int64_t (*now_fn)(void),
                        struct prov_webhooks **out);
void prov_webhooks_kick(struct prov_webhooks *w);   /* an action committed: look now */
void prov_webhooks_stop(struct prov_webhooks *w);   /* bounded: at most 2 s */
/* The retry schedule (docs/prov-signer-webhooks.md): after the n-th failed attempt the next one
 * is min(2^(n-1), PROV_WEBHOOK_BACKOFF_MAX) seconds later; a delivery still failing
 * PROV_WEBHOOK_GIVE_UP seconds after its creation is given up: recorded (ck_prov_outbox_attempt)
 * with next_attempt = PROV_WEBHOOK_GAVE_UP and delivered false, so it is never due again and the
 * delivery log shows it as failed. The body's top-level "event" member names the event
 * (X-Cablekey-Event). */
#define PROV_WEBHOOK_BACKOFF_MAX 3600
#define PROV_WEBHOOK_GIVE_UP (72 * 3600)
#define PROV_WEBHOOK_GAVE_UP CK_PROV_OUTBOX_GIVEN_UP

/* ---- the UDP servers (fqdn.c, devchan.c), in the back process: each a ck_net_server on its
 * own store connection and the keytab's mtafqdn/ prov/ keys ---- */
struct prov_fqdn_server;
int prov_fqdn_start(const struct prov_config *cfg, struct prov_fqdn_server **out);
void prov_fqdn_stop(struct prov_fqdn_server *s);
struct prov_devchan_server;
int prov_devchan_start(const struct prov_config *cfg, struct prov_devchan_server **out);
void prov_devchan_stop(struct prov_devchan_server *s);

#endif
