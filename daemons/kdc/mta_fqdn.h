/* The KDC's MTA-FQDN client (issue 10; docs/PROTOCOL.md "MTA-FQDN", docs/cablekey-kdc.md): during
 * the PKINIT login of a PacketCable MTA with an operator certificate, the KDC asks the
 * provisioning server (cablekey-prov, UDP 2246) whether it knows the device, and refuses the
 * login when it does not.
 *
 * Configuration ([realms] REALM in kdc.conf; read by kdc_mta_fqdn_config_load from config.c):
 *   pkinit_mta_fqdn_server        = host[:port]   the provisioning server (port 2246). Unset:
 *                                   the exchange is off (kdc_mta_fqdn_new gives NULL).
 *                                   The KDC mints the ticket for mtafqdn/<host>@REALM (host as
 *                                   written here), under that principal's key in its database:
 *                                   create it there and put it in cablekey-prov's keytab.
 *   pkinit_mta_fqdn_timeout_ms    = 1000          per try; one retry (2 tries in all)
 *   pkinit_mta_fqdn_cache_seconds = 60            how long a confirmation is reused for the same
 *                                   device (MAC, device-row generation, key); 0: never. Only
 *                                   confirmations are cached, per worker, at most
 *                                   KDC_MTA_FQDN_CACHE_MAX of them.
 *
 * How P4's pkinit_kdc_req.c calls it (one handle per worker, no locks):
 *
 *     // worker start (mechanism context init), cfg = the struct kdc_config:
 *     struct kdc_mta_fqdn *mf = NULL;
 *     rc = kdc_mta_fqdn_new(cfg, &mf);          // mf == NULL: exchange not configured
 *
 *     // a PacketCable device certificate from an operator anchor, device row ACTIVE and
 *     // cert_sha256 matching, mf != NULL:
 *     struct kdc_mta_fqdn_query q = {
 *         .mac = dev->mac, .principal = dev->principal, .cert = client_cert,
 *         .mfg_revoked = 0, .generation = dev->generation };
 *     struct kdc_mta_fqdn_result res;
 *     kdc_mta_fqdn_confirm(mf, worker_store, &q, now, &res);
 *     if (!res.confirmed)
 *         refuse KDC_ERR_CLIENT_NOT_TRUSTED, log "%s: %s", res.reason, res.detail
 *
 *     // worker end:
 *     kdc_mta_fqdn_free(mf);
 *
 * res.reason is one of the KDC_MTA_FQDN_R_* strings below. The call blocks the worker for at
 * most 2 x pkinit_mta_fqdn_timeout_ms. */
#ifndef CABLEKEY_KDC_MTA_FQDN_H
#define CABLEKEY_KDC_MTA_FQDN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "cablekey/profile.h"
#include "cablekey/prov_wire.h"
#include "cablekey/store.h"

#define KDC_MTA_FQDN_DEFAULT_TIMEOUT_MS 1000
#define KDC_MTA_FQDN_DEFAULT_CACHE_SECONDS 60
#define KDC_MTA_FQDN_CACHE_MAX 256          /* confirmations kept per worker */
#define KDC_MTA_FQDN_TICKET_LIFE 300        /* seconds, the minted ticket */

/* The verdicts' reasons, for the KDC's log line. */
#define KDC_MTA_FQDN_R_CONFIRMED "PROV_CONFIRMED"
#define KDC_MTA_FQDN_R_UNKNOWN "PROV_UNKNOWN_DEVICE"      /* prov does not know it as provisioned */
#define KDC_MTA_FQDN_R_KEY "PROV_KEY_MISMATCH"            /* not the device's key */
#define KDC_MTA_FQDN_R_REVOKED "PROV_REVOKED"
#define KDC_MTA_FQDN_R_FQDN "PROV_FQDN_MISMATCH"          /* FQDN's first label != principal */
#define KDC_MTA_FQDN_R_TIMEOUT "PROV_TIMEOUT"             /* no (valid) answer in time */
#define KDC_MTA_FQDN_R_REFUSED "PROV_AUTH_REFUSED"        /* prov refused our AP-REQ (keys) */
#define KDC_MTA_FQDN_R_ERROR "PROV_ERROR"                 /* prov failed / bad reply / ours */
#define KDC_MTA_FQDN_R_NOKEY "PROV_NO_SERVICE_KEY"        /* mtafqdn/<host>@REALM missing */

struct kdc_mta_fqdn_config {
    char *server;                  /* "host[:port]" */
    int64_t timeout_ms;
    int64_t cache_seconds;
};
struct kdc_config;

/* Reads the three relations of [realms] realm into *out (allocated when the server is set;
 * stays NULL otherwise). CK_ERR_CONFIG names the key. */
int kdc_mta_fqdn_config_load(struct kdc_mta_fqdn_config **out, const struct ck_profile *prof,
                             const char *realm);
void kdc_mta_fqdn_config_free(struct kdc_mta_fqdn_config *c);

struct kdc_mta_fqdn;
/* Per worker; *out NULL (and 0) when cfg->mta_fqdn is not set. */
int kdc_mta_fqdn_new(const struct kdc_config *cfg, struct kdc_mta_fqdn **out);
/* The same from an explicit configuration (tests). */
int kdc_mta_fqdn_new_from(const struct kdc_mta_fqdn_config *c, struct kdc_mta_fqdn **out);
void kdc_mta_fqdn_free(struct kdc_mta_fqdn *m);

struct kdc_mta_fqdn_query {
    const char *mac;               /* "aa:bb:cc:dd:ee:ff" (any form ck_device_mac_parse takes) */
    const char *principal;         /* the device's principal "mta-001122334455@REALM" */
    X509 *cert;                    /* the presented certificate: its key's SHA-1 is sent */
    uint32_t mfg_revoked;          /* manufacturer certificate revocation time, 0: not */
    uint64_t generation;           /* the KDC device row's generation (the cache key) */
};

struct kdc_mta_fqdn_result {
    bool confirmed;
    bool cached;                   /* answered from the cache, nothing sent */
    const char *reason;            /* KDC_MTA_FQDN_R_* */
    char detail[256];              /* printable, for the log line */
    char fqdn[CK_MTAFQDN_FQDN_MAX + 1];
    uint8_t ipv4[4];
};

/* Asks (or finds a fresh confirmation in the cache). store: the worker's (it holds the
 * mtafqdn/<host>@REALM key; the realm is the store's). Always fills res; returns 0, or
 * CK_ERR_INVAL for missing arguments (res says PROV_ERROR). */
int kdc_mta_fqdn_confirm(struct kdc_mta_fqdn *m, ck_store *store,
                         const struct kdc_mta_fqdn_query *q, int64_t now,
                         struct kdc_mta_fqdn_result *res);

#endif
