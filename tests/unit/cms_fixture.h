/* A cablekey-cms server in-process for the unit tests and the fuzz target: a keytab on disk with
 * the service key, a ticket sealed under it for a client, and helpers that build KMM AP Requests
 * the way an endpoint does (ck_ap_req_build + the KMM AP-REQ HMAC). Functions return 0 or a
 * negative CK_ERR_* so that the fuzzer can use them without the test harness. */
#ifndef CMS_FIXTURE_H
#define CMS_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/ap.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/kmm.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "cms.h"

#define FX_REALM "TEST.REALM"
#define FX_SERVICE "cms/cms1.test@TEST.REALM"
#define FX_CLIENT "mta1"
#define FX_KVNO 3
#define FX_ETYPE CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96
#define FX_SENT_MAX 8

struct fx_sent {
    struct sockaddr_storage to;
    uint8_t msg[1024];
    size_t len;
};

struct fx {
    char dir[64];
    char keytab[128];
    ck_key service_key, session_key;
    CK_TICKET *ticket;
    CK_PRINCIPAL_NAME *client;
    struct cms_config cfg;
    ck_keyset *ks;
    struct cms_server s;
    bool up;
    struct fx_sent sent[FX_SENT_MAX];
    size_t n_sent;
};

static inline int
fx_send(void *arg, const struct sockaddr *peer, socklen_t peer_len, const uint8_t *msg,
        size_t len)
{
    struct fx *f = arg;
    struct fx_sent *s;

    if (f->n_sent >= FX_SENT_MAX || len > sizeof(f->sent[0].msg))
        return ck_error_set(CK_ERR_LIMIT, "fixture: too many sends");
    s = &f->sent[f->n_sent++];
    memset(&s->to, 0, sizeof(s->to));
    memcpy(&s->to, peer, peer_len);
    memcpy(s->msg, msg, len);
    s->len = len;
    return 0;
}

/* Writes a keytab for the service holding key under kvno (and extra, if not NULL, under kvno - 1). */
static inline int
fx_write_keytab(const char *path, const ck_key *key, uint32_t kvno, const ck_key *extra)
{
    ck_keytab *kt = NULL;
    ck_principal *p = NULL;
    int rc;

    if ((rc = ck_keytab_new(&kt)) != 0 ||
        (rc = ck_principal_parse(FX_SERVICE, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p)) != 0 ||
        (rc = ck_keytab_add(kt, p, kvno, 0, key)) != 0 ||
        (extra != NULL && (rc = ck_keytab_add(kt, p, kvno - 1, 0, extra)) != 0))
        goto out;
    rc = ck_keytab_write(path, kt);
out:
    ck_principal_free(p);
    ck_keytab_free(kt);
    return rc;
}

/* A ticket for the service under key (kvno), for FX_CLIENT, valid around now. */
static inline int
fx_ticket(struct fx *f, const ck_key *key, uint32_t kvno, int64_t now, CK_TICKET **out)
{
    static const char *const svc[] = {"cms", "cms1.test"};
    static const char *const cli[] = {FX_CLIENT};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_TICKET *t = CK_TICKET_new();
    int rc = CK_ERR_NOMEM;

    *out = NULL;
    if (etp == NULL || t == NULL)
        goto out;
    if ((rc = ck_asn1_flags_set(&etp->flags, 0)) != 0 ||
        (rc = ck_key_to_asn1(&f->session_key, &etp->key)) != 0 ||
        (rc = ck_asn1_kstring_set(&etp->crealm, FX_REALM)) != 0 ||
        (rc = ck_asn1_principal_set(etp->cname, CK_NT_PRINCIPAL, cli, 1)) != 0)
        goto out;
    etp->transited->tr_type = 1;
    if ((rc = ck_asn1_time_set(&etp->authtime, now - 60)) != 0 ||
        (rc = ck_asn1_time_set(&etp->endtime, now + 36000)) != 0 ||
        (rc = ck_asn1_kstring_set(&t->realm, FX_REALM)) != 0 ||
        (rc = ck_asn1_principal_set(t->sname, CK_NT_SRV_INST, svc, 2)) != 0 ||
        (rc = ck_ticket_seal(t, etp, key, kvno)) != 0)
        goto out;
    *out = t;
    t = NULL;
out:
    CK_ENC_TICKET_PART_free(etp);
    CK_TICKET_free(t);
    return rc;
}

static inline void
fx_down(struct fx *f)
{
    char path[160];

    if (f->up)
        cms_server_fini(&f->s);
    ck_keyset_free(f->ks);
    cms_config_free(&f->cfg);
    CK_TICKET_free(f->ticket);
    CK_PRINCIPAL_NAME_free(f->client);
    ck_key_clear(&f->service_key);
    ck_key_clear(&f->session_key);
    if (f->dir[0] != '\0') {
        snprintf(path, sizeof(path), "%s/cms.keytab", f->dir);
        unlink(path);
        rmdir(f->dir);
    }
    memset(f, 0, sizeof(*f));
}

/* Config tweaks before the server starts. */
struct fx_opts {
    int64_t max_sas, rcache, clockskew;
    bool ack_required;
    const char *suites;
};

static inline int
fx_up(struct fx *f, const struct fx_opts *o, int64_t now)
{
    static const char *const cli[] = {FX_CLIENT};
    int rc;

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/ck-cms-test.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        f->dir[0] = '\0';
        return ck_error_set(CK_ERR_IO, "mkdtemp");
    }
    snprintf(f->keytab, sizeof(f->keytab), "%s/cms.keytab", f->dir);
    cms_config_init(&f->cfg);
    if (o != NULL && o->max_sas > 0)
        f->cfg.max_sas = o->max_sas;
    if (o != NULL && o->rcache > 0)
        f->cfg.replay_cache_size = o->rcache;
    if (o != NULL)
        f->cfg.ack_required = o->ack_required;
    if (o != NULL && o->clockskew > 0)
        f->cfg.clockskew = o->clockskew;
    if (o != NULL && o->suites != NULL &&
        (rc = cms_suites_parse(o->suites, f->cfg.suites, CMS_MAX_SUITES, &f->cfg.n_suites)) != 0)
        return rc;
    if ((rc = ck_random_key(FX_ETYPE, &f->service_key)) != 0 ||
        (rc = ck_random_key(FX_ETYPE, &f->session_key)) != 0 ||
        (rc = fx_write_keytab(f->keytab, &f->service_key, FX_KVNO, NULL)) != 0 ||
        (rc = fx_ticket(f, &f->service_key, FX_KVNO, now, &f->ticket)) != 0 ||
        (rc = ck_asn1_principal_new(CK_NT_PRINCIPAL, cli, 1, &f->client)) != 0 ||
        (rc = ck_keyset_new(f->keytab, FX_SERVICE, &f->ks)) != 0 ||
        (rc = cms_server_init(&f->s, &f->cfg, f->ks)) != 0)
        return rc;
    f->up = true;
    f->s.send_kmm = fx_send;
    f->s.send_arg = f;
    f->s.fixed_now = now;
    return 0;
}

/* An endpoint's AP Request (ticket t, or the fixture's) into buf. */
struct fx_req {
    const CK_TICKET *ticket;          /* NULL: the fixture's */
    uint32_t nonce;
    uint32_t spi;                     /* 0: 0x1000 */
    const char *suites;               /* NULL: "sha1-aes128 sha1-null" */
    uint8_t reestablish;
    uint8_t doi;                      /* 0: IPsec */
    int64_t ctime;                    /* out */
    int32_t cusec;                    /* out */
};

static inline int
fx_apreq(struct fx *f, struct fx_req *q, uint8_t *buf, size_t cap, size_t *len)
{
    struct ck_kmm_msg m;
    uint8_t *der = NULL, hk[CK_KMM_HMAC_KEY_LEN];
    size_t der_len = 0, n = 0;
    int rc;

    memset(&m, 0, sizeof(m));
    if ((rc = ck_ap_req_build(q->ticket != NULL ? q->ticket : f->ticket, &f->session_key,
                              FX_REALM, f->client, 0, NULL, CK_KU_AP_REQ_AUTH, NULL, NULL,
                              &q->ctime, &q->cusec, &der, &der_len)) != 0)
        return rc;
    m.type = CK_KMM_AP_REQ;
    m.doi = q->doi != 0 ? q->doi : CK_KMM_DOI_IPSEC;
    m.version = CK_KMM_VERSION;
    m.krb = der;
    m.krb_len = der_len;
    m.server_nonce = q->nonce;
    m.spi = q->spi != 0 ? q->spi : 0x1000;
    if (m.doi == CK_KMM_DOI_SNMPV3) {
        memcpy(m.snmp.engine_id, "\x80\x00\x1f\x88\x04mta1", 9);
        m.snmp.engine_id_len = 9;
        m.snmp.engine_boots = 1;
        m.snmp.engine_time = 100;
        memcpy(m.snmp.user, "mta1-usm", 9);
        m.n_suites = 2;
        m.suites[0] = (struct ck_kmm_suite){CK_KMM_SNMP_AUTH_MD5, CK_KMM_SNMP_PRIV_NULL};
        m.suites[1] = (struct ck_kmm_suite){CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_DES};
    } else if ((rc = cms_suites_parse(q->suites != NULL ? q->suites : "sha1-aes128 sha1-null",
                                      m.suites, CK_KMM_MAX_SUITES, &n)) != 0) {
        goto out;
    } else {
        m.n_suites = (uint8_t)n;
    }
    m.reestablish = q->reestablish;
    if ((rc = ck_kmm_encode(&m, buf, cap, len)) != 0 ||
        (rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &f->session_key, hk)) != 0 ||
        (rc = ck_kmm_seal(buf, *len, hk)) != 0)
        goto out;
out:
    ck_asn1_free_der(der, der_len);
    return rc;
}

static inline void
fx_peer(struct sockaddr_in *sin, const char *ip, uint16_t port)
{
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    inet_pton(AF_INET, ip, &sin->sin_addr);
}

#endif
