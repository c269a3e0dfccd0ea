/* The PKINIT pre-authentication mechanism (preauth.h contract): per-worker context, offers,
 * the verify/reply hooks (request checks in pkinit_kdc_req.c, replies in pkinit_kdc_rep.c) and
 * RFC 8070 freshness tokens.
 *
 * Decisions:
 *   - KDC_PA_KEYLESS: certificate-only principals (no long-term key) log in with PKINIT; the
 *     reply key is always replaced.
 *   - One mechanism serves PA-PK-AS-REQ (16) and, as its alternate type, the PacketCable
 *     PA-PK-AS-REQ-OLD (14), so both share the worker's identity, anchors and caches; only 16
 *     is offered (PacketCable devices send 14 unasked).
 *   - Per worker, loaded once in init: the KDC identity, the anchors (with CRLs), the pool, the
 *     decoded-certificate cache and the thumbprint cache, and the TYPED-DATA of the errors whose
 *     e-data never changes (TD-TRUSTED-CERTIFIERS, TD-DH-PARAMETERS). Nothing is rebuilt per
 *     request.
 *   - Freshness token (RFC 8070 leaves the form to the KDC): version 1 || issue time (8 bytes,
 *     big-endian) || krbtgt kvno (4) || enctype (4) || a keyed checksum of those bytes with the
 *     realm's krbtgt key of that kvno and enctype (key usage 514, as MIT). Every KDC of the realm
 *     and every worker can check it, a restart does not invalidate it, and a krbtgt rotation
 *     leaves older kvnos usable while they are kept. A token is fresh for the clock skew after
 *     it was issued; one from the future beyond the skew is refused too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "mta_fqdn.h"
#include "pkinit_kdc.h"

#define FRESHNESS_VERSION 1
#define FRESHNESS_HDR (1 + 8 + 4 + 4)
#define FRESHNESS_MAX (FRESHNESS_HDR + CK_CHECKSUM_MAX)

/* ---- freshness tokens ------------------------------------------------------------------- */

static void
put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t
get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static int
tgs_record(const struct kdc_pa_call *call, const char *tgs_name, const ck_db_principal **out)
{
    int rc = ck_store_get_principal_cached(call->store, tgs_name, out);

    if (rc != 0)
        return ck_error_set(rc, "freshness: %s: %s", tgs_name, ck_error_context());
    return 0;
}

int
kdc_pkinit_freshness_make(const struct kdc_pa_call *call, const char *tgs_name, uint8_t **out,
                          size_t *out_len)
{
    const ck_db_principal *tgs;
    const ck_db_key *k = NULL;
    uint8_t buf[FRESHNESS_MAX];
    size_t ck_len = 0;
    int rc;

    *out = NULL;
    *out_len = 0;
    if ((rc = tgs_record(call, tgs_name, &tgs)) != 0)
        return rc;
    for (size_t i = 0; i < tgs->n_keys && k == NULL; i++)
        if (tgs->keys[i].kvno == tgs->kvno)
            k = &tgs->keys[i];
    if (k == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "freshness: %s has no current key", tgs_name);
    buf[0] = FRESHNESS_VERSION;
    put_be(buf + 1, (uint64_t)call->now, 8);
    put_be(buf + 9, k->kvno, 4);
    put_be(buf + 13, (uint32_t)k->enctype, 4);
    if ((rc = ck_make_checksum(&k->key, 0, KDC_PKINIT_KU_FRESHNESS, buf, FRESHNESS_HDR,
                               buf + FRESHNESS_HDR, sizeof(buf) - FRESHNESS_HDR, &ck_len)) != 0)
        return rc;
    if ((*out = OPENSSL_memdup(buf, FRESHNESS_HDR + ck_len)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "freshness");
    *out_len = FRESHNESS_HDR + ck_len;
    return 0;
}

int
kdc_pkinit_freshness_check(const struct kdc_pa_call *call, const char *tgs_name,
                           const uint8_t *token, size_t len, int64_t *issued)
{
    const ck_db_principal *tgs;
    const ck_db_key *k;
    int64_t t;
    int rc;

    *issued = 0;
    if (len <= FRESHNESS_HDR || len > FRESHNESS_MAX || token[0] != FRESHNESS_VERSION)
        return ck_error_set(CK_ERR_INTEGRITY, "freshness token of %zu bytes in an unknown form",
                            len);
    if ((rc = tgs_record(call, tgs_name, &tgs)) != 0)
        return rc;
    k = ck_db_principal_find_key(tgs, (uint32_t)get_be(token + 9, 4),
                                 (int32_t)(uint32_t)get_be(token + 13, 4));
    if (k == NULL)
        return ck_error_set(CK_ERR_INTEGRITY, "freshness token: no krbtgt key kvno %u",
                            (unsigned)get_be(token + 9, 4));
    if (ck_verify_checksum(&k->key, 0, KDC_PKINIT_KU_FRESHNESS, token, FRESHNESS_HDR,
                           token + FRESHNESS_HDR, len - FRESHNESS_HDR) != 0)
        return ck_error_set(CK_ERR_INTEGRITY, "freshness token checksum does not verify");
    t = (int64_t)get_be(token + 1, 8);
    *issued = t;
    if (call->now - t > call->clockskew || t - call->now > call->clockskew)
        return ck_error_set(CK_ERR_EXPIRED, "freshness token issued %lld s ago",
                            (long long)(call->now - t));
    return 0;
}

/* ---- per-worker context ----------------------------------------------------------------- */

static void
ctx_free(struct kdc_pkinit_ctx *c)
{
    if (c == NULL)
        return;
    ck_pki_identity_free(c->id); /* OpenSSL wipes the private key */
    ck_pkinit_anchors_free(c->anchors);
    sk_X509_pop_free(c->pool, X509_free);
    ck_pkinit_certcache_free(c->certs);
    ck_pkinit_tpcache_free(c->tp);
    OPENSSL_free(c->td_trusted);
    OPENSSL_free(c->td_dh);
    kdc_mta_fqdn_free(c->mta_fqdn);
    free(c);
}

/* TYPED-DATA { TD-TRUSTED-CERTIFIERS: the subject names of our anchors } for error 70. */
static int
make_td_trusted(struct kdc_pkinit_ctx *c)
{
    CK_EXTERNAL_PRINCIPAL_IDENTIFIERS *ids = sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_new_null();
    CK_TYPED_DATA *td = NULL;
    uint8_t *ids_der = NULL;
    size_t ids_len = 0, n = ck_pkinit_anchors_count(c->anchors);
    int rc = 0;

    if (ids == NULL)
        return ck_error_set(CK_ERR_NOMEM, "pkinit");
    for (size_t i = 0; i < n && i < CK_PKINIT_MAX_IDS; i++) {
        CK_EXTERNAL_PRINCIPAL_IDENTIFIER *id = CK_EXTERNAL_PRINCIPAL_IDENTIFIER_new();
        unsigned char *name = NULL;
        int len = i2d_X509_NAME(X509_get_subject_name(ck_pkinit_anchors_get0(c->anchors, i)),
                                &name);

        if (id == NULL || len <= 0 ||
            (rc = ck_asn1_octets_set(&id->subject_name, name, (size_t)len)) != 0 ||
            !sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_push(ids, id)) {
            OPENSSL_free(name);
            CK_EXTERNAL_PRINCIPAL_IDENTIFIER_free(id);
            rc = rc != 0 ? rc : ck_error_set(CK_ERR_NOMEM, "pkinit");
            goto out;
        }
        OPENSSL_free(name);
    }
    if ((rc = ck_asn1_td_principal_ids_encode(ids, &ids_der, &ids_len)) != 0 ||
        (rc = ck_pkinit_typed_data_add(&td, CK_TD_TRUSTED_CERTIFIERS, ids_der, ids_len)) != 0 ||
        (rc = ck_asn1_typed_data_encode(td, &c->td_trusted, &c->td_trusted_len)) != 0)
        goto out;
out:
    ck_asn1_free_der(ids_der, ids_len);
    CK_TYPED_DATA_free(td);
    sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_pop_free(ids, CK_EXTERNAL_PRINCIPAL_IDENTIFIER_free);
    return rc;
}

/* TYPED-DATA { TD-DH-PARAMETERS: our groups of at least dh_min_bits } for error 65, finite-field
 * groups first (what MIT and Heimdal clients can use), as MIT lists them. */
static int
make_td_dh(struct kdc_pkinit_ctx *c)
{
    static const ck_pkinit_group order[] = {
        CK_PKINIT_GROUP_MODP2048, CK_PKINIT_GROUP_MODP3072, CK_PKINIT_GROUP_MODP4096,
        CK_PKINIT_GROUP_P256, CK_PKINIT_GROUP_P384};
    CK_ALGORITHM_IDENTIFIERS *algs = sk_X509_ALGOR_new_null();
    CK_TYPED_DATA *td = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    int rc = 0;

    if (algs == NULL)
        return ck_error_set(CK_ERR_NOMEM, "pkinit");
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        X509_ALGOR *alg = NULL;

        if (ck_pkinit_group_bits(order[i]) < c->dh_min_bits)
            continue;
        if ((rc = ck_pkinit_group_algorithm(order[i], &alg)) != 0)
            goto out;
        if (!sk_X509_ALGOR_push(algs, alg)) {
            X509_ALGOR_free(alg);
            rc = ck_error_set(CK_ERR_NOMEM, "pkinit");
            goto out;
        }
    }
    if (sk_X509_ALGOR_num(algs) == 0) {
        rc = ck_error_set(CK_ERR_CONFIG, "pkinit_dh_min_bits %u: no group is that strong",
                          c->dh_min_bits);
        goto out;
    }
    if ((rc = ck_asn1_td_dh_parameters_encode(algs, &der, &len)) != 0 ||
        (rc = ck_pkinit_typed_data_add(&td, CK_TD_DH_PARAMETERS, der, len)) != 0 ||
        (rc = ck_asn1_typed_data_encode(td, &c->td_dh, &c->td_dh_len)) != 0)
        goto out;
out:
    ck_asn1_free_der(der, len);
    CK_TYPED_DATA_free(td);
    sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
    return rc;
}

static int
pkinit_init(const struct kdc_pa_env *env, void **out)
{
    const struct kdc_pkinit_config *pc = env->cfg->pkinit;
    struct kdc_pkinit_ctx *c;
    int rc;

    *out = NULL;
    /* No identity: only [kdcdefaults] provisioning relations, PKINIT itself not configured
     * (kdc_pkinit_config_finish refuses every other combination). */
    if (pc == NULL || pc->identity == NULL)
        return KDC_PA_DISABLED;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "pkinit");
    ck_strlcpy(c->realm, env->realm, sizeof(c->realm));
    if ((size_t)snprintf(c->tgs_name, sizeof(c->tgs_name), "krbtgt/%s@%s", env->realm,
                         env->realm) >= sizeof(c->tgs_name)) {
        rc = ck_error_set(CK_ERR_CONFIG, "pkinit: realm name too long");
        goto out;
    }
    c->dh_min_bits = pc->dh_min_bits;
    c->require_freshness = pc->require_freshness;
    c->allow_rsa = pc->allow_rsa_key_transport;
    c->chain_flags = pc->eku_sclogin ? CK_PKINIT_VERIFY_SCLOGIN : 0;
    if ((rc = kdc_pkinit_load_identity(pc, &c->id)) != 0 ||
        (rc = kdc_pkinit_load_anchors(pc, &c->anchors, c->anchor_kind, &c->n_anchor_kind)) != 0 ||
        (rc = kdc_pkinit_load_pool(pc, &c->pool)) != 0 ||
        (rc = ck_pkinit_certcache_new(pc->cert_cache, &c->certs)) != 0 ||
        (rc = ck_pkinit_tpcache_new(pc->tp_cache, &c->tp)) != 0)
        goto out;
    c->id_is_rsa = EVP_PKEY_is_a(c->id->key, "RSA");
    for (size_t i = 0; i < c->n_anchor_kind; i++) {
        c->have_device_anchors |= c->anchor_kind[i] != KDC_PKINIT_ANCHOR_CLIENT;
        c->have_packetcable_anchors |= c->anchor_kind[i] == KDC_PKINIT_ANCHOR_PACKETCABLE;
        c->have_operator_anchors |= c->anchor_kind[i] == KDC_PKINIT_ANCHOR_OPERATOR;
    }
    c->provisioning = pc->provisioning;
    memcpy(c->unprov_calls, pc->unprov_calls, sizeof(c->unprov_calls));
    c->n_unprov_calls = pc->n_unprov_calls;
    if (c->have_packetcable_anchors && !c->id_is_rsa) {
        rc = ck_error_set(CK_ERR_CONFIG, "pkinit_packetcable_anchors need an RSA KDC identity "
                          "(PacketCable replies are RSA signatures without signed attributes)");
        goto out;
    }
    if ((rc = make_td_trusted(c)) != 0 || (rc = make_td_dh(c)) != 0)
        goto out;
    if ((rc = kdc_mta_fqdn_new(env->cfg, &c->mta_fqdn)) != 0)
        goto out;
    *out = c;
    c = NULL;
    rc = 0;
out:
    ctx_free(c);
    if (rc != 0)
        rc = ck_error_set(rc, "PKINIT: %s", ck_error_context());
    return rc;
}

static void
pkinit_fini(void *ctx)
{
    ctx_free(ctx);
}

/* ---- hooks ------------------------------------------------------------------------------ */

static int
pkinit_edata(void *ctx, const struct kdc_pa_call *call, CK_METHOD_DATA **md)
{
    struct kdc_pkinit_ctx *c = ctx;
    uint8_t *token = NULL;
    size_t len = 0;
    int rc;

    if ((rc = ck_asn1_padata_add(md, CK_PA_PK_AS_REQ, NULL, 0)) != 0)
        return rc;
    /* Without a token (no krbtgt key?) PKINIT is still offered: a client that does not need
     * freshness can log in. */
    if (kdc_pkinit_freshness_make(call, c->tgs_name, &token, &len) == 0) {
        rc = ck_asn1_padata_add(md, CK_PA_AS_FRESHNESS, token, len);
        OPENSSL_free(token);
    }
    return rc;
}

static int
pkinit_verify(void *ctx, const struct kdc_pa_call *call, const CK_PA_DATA *pa, void **state,
              struct kdc_pa_error *err)
{
    struct kdc_pkinit_ctx *c = ctx;
    struct kdc_pkinit_req *rq = calloc(1, sizeof(*rq));
    int rc;

    if (rq == NULL)
        return ck_error_set(CK_ERR_NOMEM, "pkinit");
    *state = rq;
    rc = kdc_pkinit_verify_request(c, call, pa, rq, err);
    if (rc == 0)
        c->stats.accepted++;
    else
        c->stats.refused++;
    return rc;
}

static int
pkinit_reply_key(void *ctx, const struct kdc_pa_call *call, void *state, ck_key *key)
{
    return kdc_pkinit_build_reply(ctx, call, state, key);
}

static int
pkinit_reply_padata(void *ctx, const struct kdc_pa_call *call, void *state,
                    CK_METHOD_DATA **padata)
{
    struct kdc_pkinit_req *rq = state;

    if (rq == NULL || rq->rep_der == NULL)
        return ck_error_set(CK_ERR_INVAL, "pkinit: no reply built");
    return ck_asn1_padata_add(padata,
                              rq->pa_type == CK_PA_PK_AS_REQ_OLD ? CK_PA_PK_AS_REP_OLD
                                                                 : CK_PA_PK_AS_REP,
                              rq->rep_der, rq->rep_len);
}

static void
pkinit_cleanup(void *ctx, void *state)
{
    kdc_pkinit_req_free(state);
}

static int
pkinit_authz(void *ctx, const struct kdc_pa_call *call, void *state, CK_AUTHORIZATION_DATA **ad)
{
    struct kdc_pkinit_req *rq = state;

    (void)ctx;
    (void)call;
    if (rq == NULL || !rq->restricted)
        return 0;
    return ck_ad_restricted_add(ad, &rq->ad);
}

bool
kdc_pkinit_may_admit(const struct kdc_pkinit_ctx *c, const char *cname)
{
    size_t rlen = strlen(c->realm);

    /* mta-<12 lower-case hex>@REALM, nothing else: the name admission would create. */
    if (!c->provisioning || strlen(cname) != 4 + 12 + 1 + rlen ||
        strncmp(cname, "mta-", 4) != 0 || cname[16] != '@' || strcmp(cname + 17, c->realm) != 0)
        return false;
    for (size_t i = 4; i < 16; i++)
        if (!((cname[i] >= '0' && cname[i] <= '9') || (cname[i] >= 'a' && cname[i] <= 'f')))
            return false;
    return true;
}

static bool
pkinit_may_create_client(void *ctx, const char *cname)
{
    return kdc_pkinit_may_admit(ctx, cname);
}

void
kdc_pkinit_get_stats(const void *ctx, struct kdc_pkinit_stats *out)
{
    const struct kdc_pkinit_ctx *c = ctx;

    memset(out, 0, sizeof(*out));
    if (c == NULL)
        return;
    *out = c->stats;
    ck_pkinit_tpcache_get_stats(c->tp, &out->tp);
    ck_pkinit_certcache_get_stats(c->certs, &out->certs);
}

const struct kdc_pa_mech kdc_pa_pkinit = {
    .pa_type = CK_PA_PK_AS_REQ,
    .alt_pa_type = CK_PA_PK_AS_REQ_OLD,
    .name = "pkinit",
    .flags = KDC_PA_KEYLESS,
    .init = pkinit_init,
    .fini = pkinit_fini,
    .edata = pkinit_edata,
    .verify = pkinit_verify,
    .reply_key = pkinit_reply_key,
    .reply_padata = pkinit_reply_padata,
    .cleanup = pkinit_cleanup,
    .authz = pkinit_authz,
    .may_create_client = pkinit_may_create_client,
};
