/* The KMM handler of cablekey-cms: AP Request in, AP Reply (or Error Reply) out, Security
 * Parameter Recovered, and the server-started messages, Wake Up and Rekey.
 *
 * Order of checks for an AP Request, each failure answered with the KRB-ERROR code CONTRACT7
 * names: decode (undecodable: dropped, never answered) -> ticket and authenticator
 * (ck_ap_req_verify_at with the keytab, the clock skew, the expected service) -> the KMM HMAC
 * under the ticket session key's AP-REQ HMAC key -> the replay cache -> the server nonce when
 * non-zero -> the ciphersuite -> SA table room. The replay cache is consulted only after the
 * HMAC verified: an attacker who races a captured AP-REQ with a changed nonce or suite list
 * cannot get the genuine request refused as a replay, and since the HMAC covers the whole
 * message (the AP-REQ DER included) the DER is a faithful replay-cache key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/ap.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/log.h"
#include "cablekey/util.h"
#include "cms.h"
#include "provclient.h"

#define SPI_MIN 256u
#define SPI_TRIES 16
#define REKEY_BATCH 1024

/* ---- server state ----------------------------------------------------------------------- */

void
cms_params_from_config(struct cms_params *p, const struct cms_config *cfg)
{
    memset(p, 0, sizeof(*p));
    p->clockskew = cfg->clockskew;
    p->lifetime = cfg->sa_lifetime;
    p->grace = cfg->grace;
    p->rekey_margin = cms_config_rekey_margin(cfg);
    p->life_kbytes = cfg->sa_life_kbytes;
    p->ack_required = cfg->ack_required;
    p->n_suites = cfg->n_suites;
    memcpy(p->suites, cfg->suites, cfg->n_suites * sizeof(cfg->suites[0]));
}

int
cms_server_init(struct cms_server *s, const struct cms_config *cfg, ck_keyset *keys)
{
    int rc;

    memset(s, 0, sizeof(*s));
    s->xfrm_fd = -1;
    s->wireshark_fd = -1;
    s->keys = keys;
    ck_strlcpy(s->service, ck_keyset_service(keys), sizeof(s->service));
    cms_params_from_config(&s->params, cfg);
    pthread_rwlock_init(&s->params_lock, NULL);
    pthread_mutex_init(&s->wake_lock, NULL);
    pthread_mutex_init(&s->xfrm_lock, NULL);
    s->signaling_port = CMS_SIGNALING_PORT;
    if ((rc = cms_nonce_init(&s->nonce, cfg->solicited_key_timeout)) != 0 ||
        (rc = ck_rcache_new((size_t)cfg->replay_cache_size, 2 * cfg->clockskew, &s->rcache)) != 0 ||
        (rc = cms_sa_table_new((size_t)cfg->max_sas, &s->sas)) != 0) {
        cms_server_fini(s);
        return rc;
    }
    return 0;
}

void
cms_server_fini(struct cms_server *s)
{
    if (s == NULL)
        return;
    cms_sa_table_free(s->sas);
    ck_rcache_free(s->rcache);
    s->sas = NULL;
    s->rcache = NULL;
    if (s->xfrm_fd >= 0)
        close(s->xfrm_fd);
    s->xfrm_fd = -1;
    if (s->wireshark_fd >= 0)
        close(s->wireshark_fd);
    s->wireshark_fd = -1;
    pthread_rwlock_destroy(&s->params_lock);
    pthread_mutex_destroy(&s->wake_lock);
    pthread_mutex_destroy(&s->xfrm_lock);
    ck_memzero(&s->nonce, sizeof(s->nonce));
}

void
cms_server_set_params(struct cms_server *s, const struct cms_params *p)
{
    pthread_rwlock_wrlock(&s->params_lock);
    s->params = *p;
    pthread_rwlock_unlock(&s->params_lock);
}

static void
get_params(struct cms_server *s, struct cms_params *p)
{
    pthread_rwlock_rdlock(&s->params_lock);
    *p = s->params;
    pthread_rwlock_unlock(&s->params_lock);
}

int64_t
cms_now(const struct cms_server *s)
{
    return s->fixed_now != 0 ? s->fixed_now : (int64_t)time(NULL);
}

/* ---- Error Reply ------------------------------------------------------------------------ */

static const char *
krb_error_name(int32_t code)
{
    switch (code) {
    case CK_KDC_ERR_ETYPE_NOSUPP: return "KDC_ERR_ETYPE_NOSUPP";
    case CK_KRB_AP_ERR_BAD_INTEGRITY: return "KRB_AP_ERR_BAD_INTEGRITY";
    case CK_KRB_AP_ERR_TKT_EXPIRED: return "KRB_AP_ERR_TKT_EXPIRED";
    case CK_KRB_AP_ERR_TKT_NYV: return "KRB_AP_ERR_TKT_NYV";
    case CK_KRB_AP_ERR_REPEAT: return "KRB_AP_ERR_REPEAT";
    case CK_KRB_AP_ERR_NOT_US: return "KRB_AP_ERR_NOT_US";
    case CK_KRB_AP_ERR_BADMATCH: return "KRB_AP_ERR_BADMATCH";
    case CK_KRB_AP_ERR_SKEW: return "KRB_AP_ERR_SKEW";
    case CK_KRB_AP_ERR_BADVERSION: return "KRB_AP_ERR_BADVERSION";
    case CK_KRB_AP_ERR_MSG_TYPE: return "KRB_AP_ERR_MSG_TYPE";
    case CK_KRB_AP_ERR_MODIFIED: return "KRB_AP_ERR_MODIFIED";
    case CK_KRB_AP_ERR_BADKEYVER: return "KRB_AP_ERR_BADKEYVER";
    case CK_KRB_AP_ERR_NOKEY: return "KRB_AP_ERR_NOKEY";
    case CK_KRB_ERR_GENERIC: return "KRB_ERR_GENERIC";
    default: return "KRB_ERROR";
    }
}

/* The KRB-ERROR for code as a KMM Error Reply of DOI doi into reply. */
static int
error_reply(struct cms_server *s, size_t limit, uint8_t doi, int32_t code, const char *e_text,
            uint8_t *reply, size_t cap, size_t *reply_len)
{
    int64_t now;
    int32_t usec;
    int rc;

    ck_now(&now, &usec);
    if (s->fixed_now != 0)
        now = s->fixed_now;
    if ((rc = ck_kmm_error_reply_encode(s->service, code, e_text, now, usec, doi, reply, cap,
                                        reply_len)) != 0)
        return rc;
    /* Never more bytes out than in: a spoofed source cannot use the server as an amplifier.
     * A real AP Request carries a ticket and is always larger than this reply. */
    if (*reply_len > limit) {
        *reply_len = 0;
        return ck_error_set(CK_ERR_LIMIT, "Error Reply larger than the request");
    }
    return 0;
}

/* ---- AP Request ------------------------------------------------------------------------- */

struct req {
    struct cms_server *s;
    struct cms_params p;
    const uint8_t *buf;
    size_t len;
    struct ck_kmm_msg msg;
    struct cms_addr peer;
    struct cms_addr local;
    int64_t now;
    ck_ap_req_result ap;
    char client[CMS_MAX_PRINCIPAL];
    int32_t krb_error;
    char why[160];
    struct ck_kmm_suite suite;
    uint32_t spi_in;
    bool restricted;
    ck_ad_restricted restriction;
};

static int
fail(struct req *r, int32_t code, const char *why)
{
    r->krb_error = code;
    ck_strlcpy(r->why, why, sizeof(r->why));
    return CK_ERR_PROTO;
}

static void
client_name(struct req *r)
{
    const CK_ENC_TICKET_PART *etp = r->ap.enc_ticket;

    ck_strlcpy(r->client, "-", sizeof(r->client));
    if (etp != NULL && etp->cname != NULL &&
        ck_asn1_principal_unparse(etp->cname, etp->crealm, r->client, sizeof(r->client)) != 0)
        ck_strlcpy(r->client, "?", sizeof(r->client));
}

/* A random SPI >= 256 not in the table now (insert checks again). */
static int
new_spi(struct cms_server *s, uint32_t *spi)
{
    for (int i = 0; i < SPI_TRIES; i++) {
        uint32_t v;
        int rc;
        if ((rc = ck_random_bytes(&v, sizeof(v))) != 0)
            return rc;
        if (v >= SPI_MIN && !cms_sa_table_has(s->sas, v)) {
            *spi = v;
            return 0;
        }
    }
    return ck_error_set(CK_ERR_LIMIT, "no free SPI");
}

static int
esp_pair(const struct cms_params *p, const struct ck_kmm_keys *k, uint32_t spi_in,
         uint32_t spi_out, int64_t expires, struct cms_sa *sa)
{
    struct ck_esp_sa_params in = {
        .spi = spi_in, .enc = k->suite.enc, .auth = k->suite.auth,
        .enc_key = k->enc_c2s, .enc_key_len = k->enc_len,
        .auth_key = k->auth_c2s, .auth_key_len = k->auth_len,
        .expires = expires, .life_bytes = (uint64_t)p->life_kbytes * 1024u,
    };
    struct ck_esp_sa_params out = in;
    int rc;

    out.spi = spi_out;
    out.enc_key = k->enc_s2c;
    out.auth_key = k->auth_s2c;
    if ((rc = ck_esp_sa_new(&in, &sa->in)) != 0 || (rc = ck_esp_sa_new(&out, &sa->out)) != 0)
        return rc;
    return 0;
}

/* Builds the SA, the AP-REP and the AP Reply for a verified IPsec request. */
/* The KMM AP Reply around the AP-REP aprep, sealed with hkey (the AP Reply HMAC key of the
 * sub-key): DOI IPsec carries our inbound SPI and ACK-required, DOI SNMPv3 the agent's ASD back. */
static int
seal_ap_reply(const struct req *r, uint8_t doi, const uint8_t *aprep, size_t aprep_len,
              const uint8_t hkey[CK_KMM_HMAC_KEY_LEN], uint8_t *reply, size_t cap,
              size_t *reply_len)
{
    struct ck_kmm_msg m;
    int rc;

    memset(&m, 0, sizeof(m));
    m.type = CK_KMM_AP_REP;
    m.doi = doi;
    m.version = CK_KMM_VERSION;
    m.krb = aprep;
    m.krb_len = aprep_len;
    if (doi == CK_KMM_DOI_IPSEC) {
        m.spi = r->spi_in;
        m.ack_required = r->p.ack_required ? 1 : 0;
    } else {
        m.snmp = r->msg.snmp;
    }
    m.n_suites = 1;
    m.suites[0] = r->suite;
    m.lifetime = (uint32_t)r->p.lifetime;
    m.grace = (uint32_t)r->p.grace;
    m.reestablish = r->msg.reestablish ? 1 : 0;
    if ((rc = ck_kmm_encode(&m, reply, cap, reply_len)) != 0)
        return rc;
    return ck_kmm_seal(reply, *reply_len, hkey);
}

static int
answer_ipsec(struct req *r, uint8_t *reply, size_t cap, size_t *reply_len)
{
    struct cms_server *s = r->s;
    struct ck_kmm_keys keys;
    struct cms_sa *sa = NULL;
    ck_key subkey;
    uint8_t *aprep = NULL, hkey[CK_KMM_HMAC_KEY_LEN];
    size_t aprep_len = 0;
    int rc = 0, tries;

    memset(&keys, 0, sizeof(keys));
    memset(&subkey, 0, sizeof(subkey));
    if (r->msg.spi == 0) {
        rc = fail(r, CK_KRB_ERR_GENERIC, "endpoint SPI 0");
        goto out;
    }
    if (cms_sa_table_count(s->sas) >= cms_sa_table_max(s->sas)) {
        rc = fail(r, CK_KRB_ERR_GENERIC, "SA table full");
        goto out;
    }
    if ((rc = ck_random_key(r->ap.session_key.enctype, &subkey)) != 0 ||
        (rc = ck_ap_rep_build(&r->ap.session_key, r->ap.ctime, r->ap.cusec, &subkey, NULL,
                              &aprep, &aprep_len)) != 0 ||
        (rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &subkey, hkey)) != 0)
        goto internal;
    for (tries = 0; tries < SPI_TRIES; tries++) {
        uint32_t prev = 0;

        if ((rc = new_spi(s, &r->spi_in)) != 0)
            goto internal;
        if ((sa = cms_sa_alloc(r->client)) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "SA");
            goto internal;
        }
        if (r->restricted) {
            if ((sa->restriction = malloc(sizeof(*sa->restriction))) == NULL) {
                cms_sa_free(sa);
                sa = NULL;
                rc = ck_error_set(CK_ERR_NOMEM, "SA restriction");
                goto internal;
            }
            *sa->restriction = r->restriction;
        }
        sa->spi_in = r->spi_in;
        sa->spi_out = r->msg.spi;
        sa->ep = r->peer;
        sa->local = r->local;
        sa->suite = r->suite;
        sa->grace = (uint32_t)r->p.grace;
        sa->created = r->now;
        sa->expires = r->now + r->p.lifetime;
        if (r->p.ack_required)
            sa->flags |= CMS_SA_PENDING;
        if ((rc = ck_kmm_derive_ipsec(&subkey, r->suite, r->msg.spi, r->spi_in, &keys)) != 0 ||
            (rc = esp_pair(&r->p, &keys, r->spi_in, r->msg.spi, sa->expires, sa)) != 0 ||
            (rc = ck_key_copy(&sa->subkey, &subkey)) != 0)
            goto internal;
        ck_kmm_keys_clear(&keys);
        /* The AP Reply is sealed before the SA is visible, so its HMAC (which SP Recovered
         * covers) is in the entry from the start. */
        if ((rc = seal_ap_reply(r, CK_KMM_DOI_IPSEC, aprep, aprep_len, hkey, reply, cap,
                                reply_len)) != 0)
            goto internal;
        memcpy(sa->aprep_hmac, reply + *reply_len - CK_KMM_HMAC_LEN, CK_KMM_HMAC_LEN);
        rc = cms_sa_table_insert(s->sas, sa, &prev);
        if (rc == 0) {
            cms_xfrm_export(s, sa);
            cms_wireshark_export(s, sa);
            sa = NULL;
            /* An unprovisioned device keyed an SA: cablekey-prov hears of it (its thread
             * sends; this only queues). */
            if (r->restricted && s->prov != NULL) {
                char ip[CMS_ADDRSTRLEN];
                cms_prov_report(s->prov, r->restriction.mac, cms_addr_host(&r->peer, ip,
                                sizeof(ip)), r->restriction.key_sha256);
            }
            break;
        }
        cms_sa_free(sa);
        sa = NULL;
        if (rc == CK_ERR_LIMIT) {
            rc = fail(r, CK_KRB_ERR_GENERIC, "SA table full");
            goto out;
        }
        if (rc != CK_ERR_EXISTS)
            goto internal;
    }
    if (tries == SPI_TRIES) {
        rc = ck_error_set(CK_ERR_LIMIT, "no free SPI");
        goto internal;
    }
    goto out;
internal:
    ck_strlcpy(r->why, ck_error_context(), sizeof(r->why));
    r->krb_error = CK_KRB_ERR_GENERIC;
    rc = CK_ERR_PROTO;
out:
    if (rc != 0)
        *reply_len = 0;
    cms_sa_free(sa);
    ck_kmm_keys_clear(&keys);
    ck_key_clear(&subkey);
    ck_memzero(hkey, sizeof(hkey));
    ck_asn1_free_der(aprep, aprep_len);
    return rc;
}

/* DOI SNMPv3: the USM user's keys are derived and the AP Reply carries the agent's ASD back;
 * cablekey-cms is no SNMP manager, so nothing is kept (no ESP SA to index) and only the fact is
 * logged, never the keys. */
static int
answer_snmpv3(struct req *r, uint8_t *reply, size_t cap, size_t *reply_len)
{
    struct ck_kmm_keys keys;
    ck_key subkey;
    uint8_t *aprep = NULL, hkey[CK_KMM_HMAC_KEY_LEN];
    size_t aprep_len = 0;
    int rc;

    memset(&keys, 0, sizeof(keys));
    memset(&subkey, 0, sizeof(subkey));
    if ((rc = ck_random_key(r->ap.session_key.enctype, &subkey)) != 0 ||
        (rc = ck_ap_rep_build(&r->ap.session_key, r->ap.ctime, r->ap.cusec, &subkey, NULL,
                              &aprep, &aprep_len)) != 0 ||
        (rc = ck_kmm_derive_snmpv3(&subkey, r->suite, &r->msg.snmp, &keys)) != 0)
        goto out;
    if ((rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &subkey, hkey)) != 0 ||
        (rc = seal_ap_reply(r, CK_KMM_DOI_SNMPV3, aprep, aprep_len, hkey, reply, cap,
                            reply_len)) != 0)
        goto out;
    atomic_fetch_add(&r->s->stats.snmp_ok, 1);
out:
    if (rc != 0) {
        *reply_len = 0;
        ck_strlcpy(r->why, ck_error_context(), sizeof(r->why));
        r->krb_error = CK_KRB_ERR_GENERIC;
        rc = CK_ERR_PROTO;
    }
    ck_kmm_keys_clear(&keys);
    ck_key_clear(&subkey);
    ck_memzero(hkey, sizeof(hkey));
    ck_asn1_free_der(aprep, aprep_len);
    return rc;
}

static int
ap_request(struct req *r, uint8_t *reply, size_t cap, size_t *reply_len)
{
    struct cms_server *s = r->s;
    uint8_t hkey[CK_KMM_HMAC_KEY_LEN];
    int rc;

    rc = ck_ap_req_verify_at(r->msg.krb, r->msg.krb_len, ck_keyset_key_fn, s->keys, s->service,
                             NULL, r->p.clockskew, CK_KU_AP_REQ_AUTH, r->now, &r->ap);
    client_name(r);
    if (rc != 0)
        return fail(r, r->ap.krb_error != 0 ? r->ap.krb_error : CK_KRB_ERR_GENERIC,
                    ck_error_context());
    rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &r->ap.session_key, hkey);
    if (rc == 0)
        rc = ck_kmm_verify(r->buf, &r->msg, hkey);
    ck_memzero(hkey, sizeof(hkey));
    if (rc != 0)
        return fail(r, CK_KRB_AP_ERR_MODIFIED, "KMM HMAC does not verify");
    /* Keyed by the authenticator's ciphertext (fresh confounder per authenticator), as
     * ck_ap_req_verify's own replay check and MIT's are; hashing the whole AP-REQ hashed the
     * ticket too (three times the SHA-256 blocks) and let the same authenticator through
     * again with another ticket. */
    rc = ck_rcache_check_and_store(s->rcache, r->client, s->service, r->ap.ctime, r->ap.cusec,
                                   ASN1_STRING_get0_data(r->ap.auth_enc->cipher),
                                   (size_t)ASN1_STRING_length(r->ap.auth_enc->cipher), r->now);
    if (rc == CK_ERR_REPLAY)
        return fail(r, CK_KRB_AP_ERR_REPEAT, "replayed authenticator");
    if (rc == CK_ERR_FULL)
        return fail(r, CK_KRB_ERR_GENERIC, CK_AP_ETEXT_RCACHE_FULL);
    if (rc != 0)
        return fail(r, CK_KRB_ERR_GENERIC, ck_error_context());
    /* A restriction the controller cannot read is not "no restriction" (prov_ad.h). */
    if (r->ap.enc_ticket != NULL &&
        ck_ad_restricted_find(r->ap.enc_ticket->authorization_data, &r->restriction,
                              &r->restricted) != 0)
        return fail(r, CK_KDC_ERR_POLICY, "restricted-calls authorization data unreadable");
    if (r->msg.server_nonce != 0 &&
        !cms_nonce_check(&s->nonce, &r->peer, r->msg.server_nonce, r->now))
        return fail(r, CK_KRB_AP_ERR_MODIFIED, "server nonce unknown or stale");
    if (cms_suite_choose(r->msg.doi, r->p.suites, r->p.n_suites, r->msg.suites,
                         r->msg.n_suites, &r->suite) != 0)
        return fail(r, CK_KDC_ERR_ETYPE_NOSUPP, "no common ciphersuite");
    if (r->msg.doi == CK_KMM_DOI_SNMPV3)
        return answer_snmpv3(r, reply, cap, reply_len);
    return answer_ipsec(r, reply, cap, reply_len);
}

/* ---- Security Parameter Recovered ------------------------------------------------------- */

struct spr_ctx {
    const uint8_t *buf;
    size_t len;
    int result;                        /* 0 activated, 1 not pending, -1 bad HMAC */
};

static int
spr_check(struct cms_sa *sa, void *arg)
{
    struct spr_ctx *c = arg;
    uint8_t key[CK_KMM_HMAC_KEY_LEN];
    int rc;

    rc = ck_kmm_hmac_key(CK_KMM_HMAC_SP_RECOVERED, &sa->subkey, key);
    if (rc == 0)
        rc = ck_kmm_sp_recovered_verify(c->buf, c->len, sa->aprep_hmac, key);
    ck_memzero(key, sizeof(key));
    if (rc != 0) {
        c->result = -1;
        return 0;
    }
    if (!(sa->flags & CMS_SA_PENDING)) {
        c->result = 1;
        return 0;
    }
    sa->flags &= (uint8_t)~CMS_SA_PENDING;
    c->result = 0;
    return 0;
}

static void
sp_recovered(struct req *r, char *log_line, size_t log_size)
{
    struct spr_ctx c = {r->buf, r->len, -1};
    uint32_t spi = cms_sa_table_newest(r->s->sas, &r->peer);
    char peer[CMS_ADDRSTRLEN];

    cms_addr_format(&r->peer, peer, sizeof(peer));
    if (spi == 0 || cms_sa_table_with(r->s->sas, spi, spr_check, &c) != 0 || c.result < 0) {
        atomic_fetch_add(&r->s->stats.spr_bad, 1);
        if (log_line != NULL)
            snprintf(log_line, log_size, "KMM SP-RECOVERED %s spi in 0x%08x: dropped (%s)", peer,
                     spi, spi == 0 ? "no SA for this address" : "HMAC does not verify");
        return;
    }
    atomic_fetch_add(&r->s->stats.spr_ok, 1);
    if (log_line != NULL)
        snprintf(log_line, log_size, "KMM SP-RECOVERED %s spi in 0x%08x: %s", peer, spi,
                 c.result == 0 ? "ok, SA active" : "ok (already active)");
}

/* ---- the handler ------------------------------------------------------------------------ */

static void
drop(struct cms_server *s, const struct cms_addr *peer, const char *why, char *log_line,
     size_t log_size)
{
    char p[CMS_ADDRSTRLEN];

    atomic_fetch_add(&s->stats.kmm_dropped, 1);
    if (log_line != NULL)
        snprintf(log_line, log_size, "KMM %s: dropped (%s)", cms_addr_format(peer, p, sizeof(p)),
                 why);
}

int
cms_kmm_handle(struct cms_server *s, const uint8_t *buf, size_t len, const struct sockaddr *peer,
               const struct sockaddr *local, uint8_t *reply, size_t cap, size_t *reply_len,
               char *log_line, size_t log_size)
{
    /* On the worker's stack: at ~1.5 KB it is above glibc's per-thread cache sizes, so a heap
     * copy cost a trip through the arena (malloc + free) on every request. */
    struct req req, *r = &req;
    char p[CMS_ADDRSTRLEN], suite[32];
    int rc;

    *reply_len = 0;
    if (log_line != NULL && log_size > 0)
        log_line[0] = '\0';
    memset(r, 0, sizeof(*r));
    r->s = s;
    r->buf = buf;
    r->len = len;
    if (cms_addr_from_sockaddr(peer, &r->peer) != 0) {
        drop(s, &r->peer, "address family", log_line, log_size);
        goto out;
    }
    if (local != NULL)
        (void)cms_addr_from_sockaddr(local, &r->local);
    get_params(s, &r->p);
    r->now = cms_now(s);
    rc = ck_kmm_decode(buf, len, &r->msg);
    if (rc == CK_ERR_UNSUPPORTED && len >= 3 && buf[0] == CK_KMM_AP_REQ) {
        /* A request whose header parsed but whose DOI or version we do not speak: answered so
         * that the endpoint can tell "wrong protocol" from "no server". */
        atomic_fetch_add(&s->stats.kmm_error, 1);
        (void)error_reply(s, len, buf[1], CK_KRB_AP_ERR_BADVERSION,
                          "unsupported DOI or version", reply, cap, reply_len);
        if (log_line != NULL)
            snprintf(log_line, log_size, "KMM AP-REQ %s DOI 0x%02x version 0x%02x: error "
                     "KRB_AP_ERR_BADVERSION (unsupported DOI or version)",
                     cms_addr_format(&r->peer, p, sizeof(p)), buf[1], buf[2]);
        goto out;
    }
    if (rc != 0) {
        drop(s, &r->peer, rc == CK_ERR_UNSUPPORTED ? "unknown message" : "undecodable",
             log_line, log_size);
        goto out;
    }
    if (r->msg.type == CK_KMM_SP_RECOVERED) {
        sp_recovered(r, log_line, log_size);
        goto out;
    }
    if (r->msg.type != CK_KMM_AP_REQ) {
        drop(s, &r->peer, "not a request", log_line, log_size);
        goto out;
    }
    rc = ap_request(r, reply, cap, reply_len);
    if (log_line != NULL)
        cms_addr_format(&r->peer, p, sizeof(p));
    if (rc == 0) {
        atomic_fetch_add(&s->stats.kmm_ok, 1);
        if (log_line != NULL) {
            if (r->msg.doi == CK_KMM_DOI_SNMPV3)
                snprintf(log_line, log_size, "KMM AP-REQ %s %s -> %s suite %s USM user \"%s\": "
                         "ok", p, r->client, s->service,
                         cms_suite_name(r->msg.doi, r->suite, suite, sizeof(suite)),
                         r->msg.snmp.user);
            else
                snprintf(log_line, log_size, "KMM AP-REQ %s %s -> %s suite %s spi in 0x%08x out "
                         "0x%08x%s%s: ok", p, r->client, s->service,
                         cms_suite_name(r->msg.doi, r->suite, suite, sizeof(suite)), r->spi_in,
                         r->msg.spi, r->msg.server_nonce != 0 ? " solicited" : "",
                         r->msg.reestablish ? " re-establish" : "");
        }
        goto out;
    }
    atomic_fetch_add(&s->stats.kmm_error, 1);
    (void)error_reply(s, len, r->msg.doi, r->krb_error, r->why, reply, cap, reply_len);
    if (log_line != NULL)
        snprintf(log_line, log_size, "KMM AP-REQ %s %s -> %s: error %s (%s)", p, r->client,
                 s->service, krb_error_name(r->krb_error), r->why);
out:
    ck_ap_req_result_clear(&r->ap);
    ck_memzero(r, sizeof(*r));
    return 0;
}

/* ---- Wake Up and Rekey ------------------------------------------------------------------ */

static uint32_t
addr_hash(const struct cms_addr *a)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < 16; i++)
        h = (h ^ a->addr[i]) * 16777619u;
    return (h ^ a->family) * 16777619u;
}

int
cms_send_wakeup(struct cms_server *s, const struct cms_addr *ep, bool force)
{
    struct ck_kmm_msg m;
    struct sockaddr_storage ss;
    socklen_t sl;
    uint8_t buf[3 + 4 + CK_KMM_MAX_PRINCIPAL + 1];
    size_t len = 0;
    int64_t now = cms_now(s);
    int rc;

    /* Per source address (not port): one Wake Up a second, whatever the packets claim. */
    if (!force) {
        uint32_t h = addr_hash(ep);
        size_t slot = h % CMS_WAKE_SLOTS;
        bool limited;

        pthread_mutex_lock(&s->wake_lock);
        limited = s->wake[slot].hash == h && s->wake[slot].last == now;
        if (!limited) {
            s->wake[slot].hash = h;
            s->wake[slot].last = now;
        }
        pthread_mutex_unlock(&s->wake_lock);
        if (limited) {
            atomic_fetch_add(&s->stats.wakeups_limited, 1);
            return 1;
        }
    }
    memset(&m, 0, sizeof(m));
    m.type = CK_KMM_WAKE_UP;
    m.doi = CK_KMM_DOI_IPSEC;
    m.version = CK_KMM_VERSION;
    m.server_nonce = cms_nonce_for(&s->nonce, ep, now);
    ck_strlcpy(m.server_principal, s->service, sizeof(m.server_principal));
    if ((rc = ck_kmm_encode(&m, buf, sizeof(buf), &len)) != 0)
        return rc;
    if ((sl = cms_addr_to_sockaddr(ep, &ss)) == 0 || s->send_kmm == NULL)
        return ck_error_set(CK_ERR_INVAL, "Wake Up: no way to send");
    if ((rc = s->send_kmm(s->send_arg, (struct sockaddr *)&ss, sl, buf, len)) != 0)
        return rc;
    atomic_fetch_add(&s->stats.wakeups, 1);
    return 0;
}

int
cms_rekey_build(struct cms_server *s, const struct cms_sa *sa, int64_t now, uint8_t *buf,
                size_t cap, size_t *len)
{
    struct cms_params p;
    struct ck_kmm_msg m;
    uint8_t key[CK_KMM_HMAC_KEY_LEN];
    int rc;

    get_params(s, &p);
    memset(&m, 0, sizeof(m));
    m.type = CK_KMM_REKEY;
    m.doi = CK_KMM_DOI_IPSEC;
    m.version = CK_KMM_VERSION;
    m.server_nonce = cms_nonce_for(&s->nonce, &sa->ep, now);
    ck_strlcpy(m.server_principal, s->service, sizeof(m.server_principal));
    m.timestamp = now;
    m.spi = sa->spi_in;
    m.n_suites = (uint8_t)p.n_suites;
    memcpy(m.suites, p.suites, p.n_suites * sizeof(p.suites[0]));
    m.lifetime = (uint32_t)p.lifetime;
    m.grace = (uint32_t)p.grace;
    if ((rc = ck_kmm_encode(&m, buf, cap, len)) != 0 ||
        (rc = ck_kmm_hmac_key(CK_KMM_HMAC_REKEY, &sa->subkey, key)) != 0)
        return rc;
    rc = ck_kmm_seal(buf, *len, key);
    ck_memzero(key, sizeof(key));
    return rc;
}

struct rekey_item {
    struct cms_addr ep;
    uint32_t spi;
    uint16_t len;
    uint8_t msg[3 + 4 + CK_KMM_MAX_PRINCIPAL + 1 + 13 + 4 + 1 + 2 * CMS_MAX_SUITES + 9 + 20];
};

struct sweep {
    struct cms_server *s;
    struct cms_params p;
    int64_t now;
    bool all;
    size_t seen, skip;
    struct rekey_item *items;
    size_t n, cap;
    size_t expired;
};

static int
sweep_one(struct cms_sa *sa, void *arg)
{
    struct sweep *w = arg;
    size_t len = 0;

    if (sa->expires <= w->now)
        return 1;
    if (sa->flags & CMS_SA_SUPERSEDED)
        return 0;
    if (!w->all && (w->p.rekey_margin <= 0 || (sa->flags & CMS_SA_REKEY_SENT) ||
                    sa->expires - w->p.rekey_margin > w->now))
        return 0;
    if (w->all && w->seen++ < w->skip)
        return 0; /* sent in an earlier batch of this pass */
    if (w->n >= w->cap)
        return 0; /* the next batch (or, near expiry, the next second) takes the rest */
    if (cms_rekey_build(w->s, sa, w->now, w->items[w->n].msg, sizeof(w->items[w->n].msg),
                        &len) != 0)
        return 0;
    w->items[w->n].ep = sa->ep;
    w->items[w->n].spi = sa->spi_in;
    w->items[w->n].len = (uint16_t)len;
    w->n++;
    /* The margin Rekey is sent once per SA; an operator's SIGUSR1 does not count as one. */
    if (!w->all)
        sa->flags |= CMS_SA_REKEY_SENT;
    return 0;
}

static void
sweep_removed(const struct cms_sa *sa, void *arg)
{
    struct sweep *w = arg;

    w->expired++;
    cms_xfrm_delete(w->s, sa);
}

static size_t send_batch(struct cms_server *s, struct sweep *w);

size_t
cms_maintenance(struct cms_server *s, bool rekey_all)
{
    struct sweep w = {.s = s, .now = cms_now(s), .all = rekey_all, .cap = REKEY_BATCH};
    size_t sent = 0;

    get_params(s, &w.p);
    if ((w.items = calloc(w.cap, sizeof(*w.items))) == NULL)
        return 0;
    /* Messages are built under the stripe locks and sent after them, a batch at a time: a
     * SIGUSR1 over 100,000 SAs takes several batches, each skipping what the earlier sent. */
    do {
        w.n = 0;
        w.seen = 0;
        (void)cms_sa_table_scan(s->sas, sweep_one, sweep_removed, &w);
        sent += send_batch(s, &w);
        w.skip += w.n;
    } while (rekey_all && w.n == w.cap);
    atomic_fetch_add(&s->stats.sa_expired, w.expired);
    atomic_fetch_add(&s->stats.rekeys, sent);
    ck_memzero(w.items, w.cap * sizeof(*w.items));
    free(w.items);
    return sent;
}

static size_t
send_batch(struct cms_server *s, struct sweep *w)
{
    size_t sent = 0;

    for (size_t i = 0; i < w->n; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = cms_addr_to_sockaddr(&w->items[i].ep, &ss);
        char p[CMS_ADDRSTRLEN];

        if (sl == 0 || s->send_kmm == NULL ||
            s->send_kmm(s->send_arg, (struct sockaddr *)&ss, sl, w->items[i].msg,
                        w->items[i].len) != 0) {
            ck_log_warn("KMM REKEY %s spi in 0x%08x: not sent: %s",
                        cms_addr_format(&w->items[i].ep, p, sizeof(p)), w->items[i].spi,
                        ck_error_context());
            continue;
        }
        ck_log_info("KMM REKEY %s spi in 0x%08x: sent%s",
                    cms_addr_format(&w->items[i].ep, p, sizeof(p)), w->items[i].spi,
                    w->all ? " (SIGUSR1)" : " (near expiry)");
        sent++;
    }
    return sent;
}
