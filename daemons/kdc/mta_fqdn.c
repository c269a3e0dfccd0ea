/* The KDC's MTA-FQDN client (mta_fqdn.h).
 *
 * Decisions:
 *   - The KDC is the ticket's issuer: it seals a ticket for mtafqdn/<host>@REALM under that
 *     principal's current key from its own database, client krbtgt/REALM@REALM (no TGS could
 *     issue such a ticket to anyone else, so cablekey-prov knows the KDC asks), with a fresh
 *     session key per request. No AS or TGS round trip, no keytab on the KDC.
 *   - A verdict is CONFIRMED only from a reply that verified (AP-REP under the session key,
 *     KRB-SAFE under our subkey with the AP-REP's sequence number) and whose FQDN's first label
 *     is the device principal's name. Anything else refuses the login: an unknown device is what
 *     the exchange exists to catch, and a silent or broken provisioning server must not turn
 *     into an open door (fail closed, with the reason in the log).
 *   - The cache holds confirmations only, keyed by MAC, the device row's generation (any
 *     revoke, re-provisioning or re-pin changes it) and the key hash; refusals are asked again
 *     at the next login. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/util.h"
#include "kdc.h"
#include "mta_fqdn.h"

struct cache_entry {
    uint8_t mac[6];
    uint8_t spki_sha1[20];
    uint64_t generation;
    int64_t expires;               /* 0: empty */
    char fqdn[CK_MTAFQDN_FQDN_MAX + 1];
    uint8_t ipv4[4];
};

struct kdc_mta_fqdn {
    char server[300];
    char host[256];
    int timeout_ms;
    int64_t cache_seconds;
    int64_t clockskew;             /* for the reply's KRB-SAFE timestamp */
    struct cache_entry cache[KDC_MTA_FQDN_CACHE_MAX];
    size_t next;                   /* round-robin victim when no entry has expired */
};

/* ---- configuration ----------------------------------------------------------------------- */

void
kdc_mta_fqdn_config_free(struct kdc_mta_fqdn_config *c)
{
    if (c == NULL)
        return;
    free(c->server);
    free(c);
}

static int
get_int(const struct ck_profile *prof, const char *realm, const char *key, int64_t min,
        int64_t max, int64_t *out)
{
    const char *v = ck_profile_get(prof, "realms", realm, key, NULL);

    if (v == NULL)
        return 0;
    if (ck_parse_int64(v, min, max, out) != 0)
        return ck_error_set(CK_ERR_CONFIG, "%s: \"%s\" is not a number in %lld..%lld", key, v,
                            (long long)min, (long long)max);
    return 0;
}

int
kdc_mta_fqdn_config_load(struct kdc_mta_fqdn_config **out, const struct ck_profile *prof,
                         const char *realm)
{
    struct kdc_mta_fqdn_config *c = NULL;
    const char *v = ck_profile_get(prof, "realms", realm, "pkinit_mta_fqdn_server", NULL);
    char host[256];
    uint16_t port;
    int rc;

    if (v == NULL)
        return 0;
    if (ck_net_parse_listen(v, CK_MTAFQDN_PORT, host, sizeof(host), &port) != 0 ||
        host[0] == '\0' || port == 0)
        return ck_error_set(CK_ERR_CONFIG, "pkinit_mta_fqdn_server: \"%s\" is not host[:port]",
                            v);
    if ((c = calloc(1, sizeof(*c))) == NULL || (c->server = strdup(v)) == NULL) {
        kdc_mta_fqdn_config_free(c);
        return ck_error_set(CK_ERR_NOMEM, "config");
    }
    c->timeout_ms = KDC_MTA_FQDN_DEFAULT_TIMEOUT_MS;
    c->cache_seconds = KDC_MTA_FQDN_DEFAULT_CACHE_SECONDS;
    if ((rc = get_int(prof, realm, "pkinit_mta_fqdn_timeout_ms", 10, 60000, &c->timeout_ms)) !=
            0 ||
        (rc = get_int(prof, realm, "pkinit_mta_fqdn_cache_seconds", 0, 86400,
                      &c->cache_seconds)) != 0) {
        kdc_mta_fqdn_config_free(c);
        return rc;
    }
    kdc_mta_fqdn_config_free(*out);
    *out = c;
    return 0;
}

/* ---- per worker -------------------------------------------------------------------------- */

int
kdc_mta_fqdn_new_from(const struct kdc_mta_fqdn_config *c, struct kdc_mta_fqdn **out)
{
    struct kdc_mta_fqdn *m;
    uint16_t port;

    *out = NULL;
    if (c == NULL || c->server == NULL)
        return 0;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "mta-fqdn");
    if (ck_net_parse_listen(c->server, CK_MTAFQDN_PORT, m->host, sizeof(m->host), &port) != 0 ||
        m->host[0] == '\0') {
        free(m);
        return ck_error_set(CK_ERR_CONFIG, "pkinit_mta_fqdn_server: \"%s\"", c->server);
    }
    snprintf(m->server, sizeof(m->server), strchr(m->host, ':') != NULL ? "[%s]:%u" : "%s:%u",
             m->host, (unsigned)port);
    m->timeout_ms = c->timeout_ms > 0 ? (int)c->timeout_ms : KDC_MTA_FQDN_DEFAULT_TIMEOUT_MS;
    m->cache_seconds = c->cache_seconds;
    m->clockskew = KDC_DEFAULT_CLOCKSKEW;
    *out = m;
    return 0;
}

int
kdc_mta_fqdn_new(const struct kdc_config *cfg, struct kdc_mta_fqdn **out)
{
    int rc;

    *out = NULL;
    if (cfg == NULL)
        return 0;
    if ((rc = kdc_mta_fqdn_new_from(cfg->mta_fqdn, out)) != 0 || *out == NULL)
        return rc;
    if (cfg->clockskew > 0)
        (*out)->clockskew = cfg->clockskew;
    return 0;
}

void
kdc_mta_fqdn_free(struct kdc_mta_fqdn *m)
{
    free(m);
}

/* ---- the cache --------------------------------------------------------------------------- */

static struct cache_entry *
cache_find(struct kdc_mta_fqdn *m, const ck_mtafqdn_msg *req, uint64_t generation, int64_t now)
{
    for (size_t i = 0; i < KDC_MTA_FQDN_CACHE_MAX; i++) {
        struct cache_entry *e = &m->cache[i];
        if (e->expires > now && e->generation == generation &&
            memcmp(e->mac, req->mac, 6) == 0 && memcmp(e->spki_sha1, req->spki_sha1, 20) == 0)
            return e;
    }
    return NULL;
}

static void
cache_put(struct kdc_mta_fqdn *m, const ck_mtafqdn_msg *req, uint64_t generation, int64_t now,
          const struct kdc_mta_fqdn_result *res)
{
    struct cache_entry *e = NULL;

    if (m->cache_seconds <= 0)
        return;
    for (size_t i = 0; i < KDC_MTA_FQDN_CACHE_MAX && e == NULL; i++)
        if (m->cache[i].expires <= now ||
            (m->cache[i].generation != generation && memcmp(m->cache[i].mac, req->mac, 6) == 0))
            e = &m->cache[i];
    if (e == NULL) {
        e = &m->cache[m->next];
        m->next = (m->next + 1) % KDC_MTA_FQDN_CACHE_MAX;
    }
    memcpy(e->mac, req->mac, 6);
    memcpy(e->spki_sha1, req->spki_sha1, 20);
    e->generation = generation;
    e->expires = now + m->cache_seconds;
    ck_strlcpy(e->fqdn, res->fqdn, sizeof(e->fqdn));
    memcpy(e->ipv4, res->ipv4, 4);
}

/* ---- the exchange ------------------------------------------------------------------------ */

static void
verdict(struct kdc_mta_fqdn_result *res, bool ok, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
verdict(struct kdc_mta_fqdn_result *res, bool ok, const char *reason, const char *fmt, ...)
{
    va_list ap;

    res->confirmed = ok;
    res->reason = reason;
    va_start(ap, fmt);
    vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
    va_end(ap);
    for (char *p = res->detail; *p != '\0'; p++)
        if (*p < 0x20 || *p >= 0x7f)
            *p = '?';
}

/* The current key of the service principal, for a ticket the KDC mints. */
static int
service_key(ck_store *store, const char *name, ck_key *key, uint32_t *kvno)
{
    ck_db_principal *p = NULL;
    int rc;

    if ((rc = ck_store_get_principal(store, name, &p)) != 0)
        return rc;
    rc = ck_error_set(CK_ERR_NOTFOUND, "%s has no key of a supported enctype", name);
    for (size_t i = 0; i < p->n_keys; i++)
        if (p->keys[i].kvno == p->kvno && ck_enctype_is_supported(p->keys[i].enctype)) {
            rc = ck_key_copy(key, &p->keys[i].key);
            *kvno = p->kvno;
            break;
        }
    ck_db_principal_free(p);
    return rc;
}

static int
mac_bytes(const char *mac, uint8_t out[6])
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    unsigned v[6];

    if (mac == NULL || ck_device_mac_parse(mac, canon) != 0 ||
        sscanf(canon, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        return CK_ERR_INVAL;
    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t)v[i];
    return 0;
}

/* Judges a verified reply. */
static void
judge(const ck_mtafqdn_msg *rep, const char *principal, struct kdc_mta_fqdn_result *res)
{
    size_t name_len = strcspn(principal, "@");
    size_t label_len = strcspn(rep->fqdn, ".");

    if (rep->type == CK_MTAFQDN_ERROR) {
        const char *r = rep->error == CK_MTAFQDN_ERR_UNKNOWN_DEVICE ? KDC_MTA_FQDN_R_UNKNOWN
                        : rep->error == CK_MTAFQDN_ERR_KEY_MISMATCH ? KDC_MTA_FQDN_R_KEY
                        : rep->error == CK_MTAFQDN_ERR_REVOKED      ? KDC_MTA_FQDN_R_REVOKED
                                                                    : KDC_MTA_FQDN_R_ERROR;
        verdict(res, false, r, "provisioning server: error %u: %s", (unsigned)rep->error,
                rep->text);
        return;
    }
    if (label_len != name_len || strncasecmp(rep->fqdn, principal, name_len) != 0) {
        verdict(res, false, KDC_MTA_FQDN_R_FQDN, "FQDN %s does not name %.*s", rep->fqdn,
                (int)name_len, principal);
        return;
    }
    ck_strlcpy(res->fqdn, rep->fqdn, sizeof(res->fqdn));
    memcpy(res->ipv4, rep->ipv4, 4);
    verdict(res, true, KDC_MTA_FQDN_R_CONFIRMED, "fqdn=%s ipv4=%u.%u.%u.%u", rep->fqdn,
            rep->ipv4[0], rep->ipv4[1], rep->ipv4[2], rep->ipv4[3]);
}

int
kdc_mta_fqdn_confirm(struct kdc_mta_fqdn *m, ck_store *store,
                     const struct kdc_mta_fqdn_query *q, int64_t now,
                     struct kdc_mta_fqdn_result *res)
{
    const char *realm;
    char service[600], client[600], cname[300];
    const char *kdcs[1];
    ck_kdc_transport t;
    ck_mtafqdn_msg req, rep;
    ck_mtafqdn_client st;
    CK_TICKET *ticket = NULL;
    ck_key skey, session;
    uint32_t kvno = 0;
    uint8_t *dg = NULL, *reply = NULL;
    size_t dg_len = 0, reply_len = 0;
    struct cache_entry *hit;
    int rc;

    memset(res, 0, sizeof(*res));
    memset(&st, 0, sizeof(st));
    memset(&skey, 0, sizeof(skey));
    memset(&session, 0, sizeof(session));
    memset(&req, 0, sizeof(req));
    if (m == NULL || store == NULL || q == NULL || q->principal == NULL || q->cert == NULL ||
        mac_bytes(q->mac, req.mac) != 0) {
        verdict(res, false, KDC_MTA_FQDN_R_ERROR, "missing or bad query");
        return ck_error_set(CK_ERR_INVAL, "kdc_mta_fqdn_confirm: missing or bad query");
    }
    req.type = CK_MTAFQDN_REQUEST;
    req.enterprise = CK_MTAFQDN_ENTERPRISE;
    req.version = CK_MTAFQDN_VERSION;
    req.mfg_revoked = q->mfg_revoked;
    if (ck_mtafqdn_spki_sha1_cert(q->cert, req.spki_sha1) != 0) {
        verdict(res, false, KDC_MTA_FQDN_R_ERROR, "%s", ck_error_context());
        return 0;
    }
    if ((hit = cache_find(m, &req, q->generation, now)) != NULL) {
        ck_strlcpy(res->fqdn, hit->fqdn, sizeof(res->fqdn));
        memcpy(res->ipv4, hit->ipv4, 4);
        res->cached = true;
        verdict(res, true, KDC_MTA_FQDN_R_CONFIRMED, "fqdn=%s (cached)", hit->fqdn);
        return 0;
    }
    realm = ck_store_realm(store)->name;
    snprintf(service, sizeof(service), CK_MTAFQDN_SERVICE "/%s@%s", m->host, realm);
    snprintf(cname, sizeof(cname), CK_MTAFQDN_CLIENT "/%s", realm);
    snprintf(client, sizeof(client), "%s@%s", cname, realm);
    if (service_key(store, service, &skey, &kvno) != 0) {
        verdict(res, false, KDC_MTA_FQDN_R_NOKEY, "%s", ck_error_context());
        goto out;
    }
    if (ck_mtafqdn_ticket_mint(service, &skey, kvno, client, now, KDC_MTA_FQDN_TICKET_LIFE,
                               &ticket, &session) != 0 ||
        ck_mtafqdn_request_build(ticket, &session, realm, cname, &req, now,
                                 &st, &dg, &dg_len) != 0) {
        verdict(res, false, KDC_MTA_FQDN_R_ERROR, "request: %s", ck_error_context());
        goto out;
    }
    kdcs[0] = m->server;
    memset(&t, 0, sizeof(t));
    t.kdcs = kdcs;
    t.n_kdcs = 1;
    t.timeout_ms = m->timeout_ms;
    t.max_timeout_ms = m->timeout_ms;
    t.max_tries = 2;
    t.udp_limit = CK_MTAFQDN_MAX_DGRAM;
    if ((rc = ck_kdc_send(&t, dg, dg_len, &reply, &reply_len, NULL)) != 0) {
        verdict(res, false, rc == CK_ERR_TIMEOUT ? KDC_MTA_FQDN_R_TIMEOUT : KDC_MTA_FQDN_R_ERROR,
                "%s: %s", m->server, ck_error_context());
        goto out;
    }
    rc = ck_mtafqdn_reply_read(reply, reply_len, &st, m->clockskew, now, &rep);
    if (rc == CK_ERR_KRB) {
        verdict(res, false, KDC_MTA_FQDN_R_REFUSED, "%s", ck_error_context());
        goto out;
    }
    if (rc != 0) {
        verdict(res, false, KDC_MTA_FQDN_R_ERROR, "%s", ck_error_context());
        goto out;
    }
    judge(&rep, q->principal, res);
    if (res->confirmed)
        cache_put(m, &req, q->generation, now, res);
out:
    ck_error_clear();
    free(dg);
    free(reply);
    CK_TICKET_free(ticket);
    ck_key_clear(&skey);
    ck_key_clear(&session);
    ck_mtafqdn_client_clear(&st);
    return 0;
}
