/* Pre-authentication dispatch: the table of mechanisms, the offers (METHOD-DATA), verification
 * and the reply hooks. The contract is in preauth.h.
 *
 * Decisions:
 *   - The built-in table is in offer order; a mechanism whose init answers KDC_PA_DISABLED is
 *     neither offered nor verified on that worker.
 *   - A refusal does not end the walk over the request's padata: a later method the client sent
 *     may still succeed (MIT does the same). The first refusal is the one reported.
 *   - A replacement reply key must have an enctype the client asked for and the realm permits;
 *     anything else is an internal error, never a silent downgrade. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "kdc_int.h"
#include "pkinit_kdc.h"

/* Built-in mechanisms, in the order they are offered. PKINIT goes after PA-ENC-TIMESTAMP. */
static const struct kdc_pa_mech *const builtin[] = {
    &kdc_pa_enc_timestamp,
    &kdc_pa_pkinit,
};

static bool
takes_type(const struct kdc_pa_mech *m, int32_t type)
{
    return m->pa_type == type || (m->alt_pa_type != 0 && m->alt_pa_type == type);
}

void
kdc_pa_fail(struct kdc_pa_error *err, int32_t code, const char *status, const char *fmt, ...)
{
    err->code = code;
    err->status = status;
    err->detail[0] = '\0';
    if (fmt != NULL) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
        va_end(ap);
    }
}

void
kdc_pa_set_edata(struct kdc_pa_error *err, uint8_t *der, size_t len)
{
    OPENSSL_free(err->e_data);
    err->e_data = der;
    err->e_data_len = der != NULL ? len : 0;
}

bool
kdc_pa_enctype_permitted(const struct kdc_pa_call *call, int32_t etype)
{
    for (size_t i = 0; i < call->n_permitted; i++)
        if (call->permitted[i] == etype)
            return true;
    return false;
}

static int
enable(struct kdc_worker *w, const struct kdc_pa_mech *m, const struct kdc_pa_env *env)
{
    void *ctx = NULL;
    int rc;

    if (m->verify == NULL)
        return ck_error_set(CK_ERR_INVAL, "preauth %s: no verify", m->name);
    for (size_t i = 0; i < w->n_pa; i++)
        if (takes_type(w->pa[i].mech, m->pa_type) ||
            (m->alt_pa_type != 0 && takes_type(w->pa[i].mech, m->alt_pa_type)))
            return ck_error_set(CK_ERR_INVAL, "preauth %s: padata type %d taken by %s", m->name,
                                (int)m->pa_type, w->pa[i].mech->name);
    if (w->n_pa >= KDC_PA_MAX)
        return ck_error_set(CK_ERR_LIMIT, "more than %d preauth mechanisms", KDC_PA_MAX);
    if (m->init != NULL) {
        rc = m->init(env, &ctx);
        if (rc == KDC_PA_DISABLED)
            return 0;
        if (rc != 0)
            return rc < 0 ? rc : ck_error_set(CK_ERR_INVAL, "preauth %s: init %d", m->name, rc);
    }
    w->pa[w->n_pa].mech = m;
    w->pa[w->n_pa].ctx = ctx;
    w->n_pa++;
    /* The kept list of offers no longer lists every mechanism. */
    OPENSSL_free(w->offers_der);
    w->offers_der = NULL;
    return 0;
}

static void
worker_env(struct kdc_worker *w, const struct kdc_config *cfg, struct kdc_pa_env *env)
{
    env->cfg = cfg;
    env->realm = w->realm_name;
    env->store = w->store;
}

int
kdc_preauth_init(struct kdc_worker *w, const struct kdc_config *cfg)
{
    struct kdc_pa_env env;
    int rc;

    worker_env(w, cfg, &env);
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        if ((rc = enable(w, builtin[i], &env)) != 0)
            return rc;
    return 0;
}

int
kdc_preauth_add(struct kdc_worker *w, const struct kdc_config *cfg,
                const struct kdc_pa_mech *mech)
{
    struct kdc_pa_env env;

    if (w == NULL || cfg == NULL || mech == NULL)
        return ck_error_set(CK_ERR_INVAL, "preauth: bad arguments");
    worker_env(w, cfg, &env);
    return enable(w, mech, &env);
}

void
kdc_preauth_fini(struct kdc_worker *w)
{
    for (size_t i = w->n_pa; i-- > 0;) {
        if (w->pa[i].mech->fini != NULL)
            w->pa[i].mech->fini(w->pa[i].ctx);
        w->pa[i].ctx = NULL;
    }
    w->n_pa = 0;
}

bool
kdc_preauth_keyless(const struct kdc_worker *w)
{
    for (size_t i = 0; i < w->n_pa; i++)
        if (w->pa[i].mech->flags & KDC_PA_KEYLESS)
            return true;
    return false;
}

bool
kdc_preauth_may_create_client(const struct kdc_worker *w, const char *cname)
{
    for (size_t i = 0; i < w->n_pa; i++)
        if (w->pa[i].mech->may_create_client != NULL &&
            w->pa[i].mech->may_create_client(w->pa[i].ctx, cname))
            return true;
    return false;
}

int
kdc_preauth_authz(struct kdc_worker *w, const struct kdc_pa_call *call, struct kdc_pa_run *run,
                  CK_AUTHORIZATION_DATA **ad)
{
    const struct kdc_pa_mech *m;

    if (run->accepted < 0)
        return 0;
    m = w->pa[run->accepted].mech;
    if (m->authz == NULL)
        return 0;
    return m->authz(w->pa[run->accepted].ctx, call, run->state[run->accepted], ad);
}

/* Whether mechanism i takes part for this client. */
static bool
usable(const struct kdc_worker *w, size_t i, const struct kdc_pa_call *call)
{
    return call->client_key != NULL || (w->pa[i].mech->flags & KDC_PA_KEYLESS);
}

int
kdc_preauth_verify(struct kdc_worker *w, const struct kdc_pa_call *call, struct kdc_pa_run *run)
{
    const CK_METHOD_DATA *md = call->req->padata;
    uint32_t tried = 0;
    int n = md != NULL ? sk_CK_PA_DATA_num(md) : 0;

    run->accepted = -1;
    for (int j = 0; j < n; j++) {
        const CK_PA_DATA *pa = sk_CK_PA_DATA_value(md, j);
        struct kdc_pa_error err;
        size_t i;
        int rc;

        for (i = 0; i < w->n_pa; i++)
            if (takes_type(w->pa[i].mech, pa->padata_type))
                break;
        if (i == w->n_pa || (tried & (1u << i)) || !usable(w, i, call))
            continue;
        tried |= 1u << i;
        memset(&err, 0, sizeof(err));
        rc = w->pa[i].mech->verify(w->pa[i].ctx, call, pa, &run->state[i], &err);
        if (rc == 0) {
            OPENSSL_free(err.e_data);
            memcpy(run->detail, err.detail, sizeof(run->detail));
            run->detail[sizeof(run->detail) - 1] = '\0';
            run->accepted = (int)i;
            return 1;
        }
        if (err.code == 0) {
            if (rc < 0)
                kdc_pa_fail(&err, CK_KRB_ERR_GENERIC, "PREAUTH_ERROR", "%s: %s (%s)",
                            w->pa[i].mech->name, ck_strerror(rc), ck_error_context());
            else
                kdc_pa_fail(&err, CK_KDC_ERR_PREAUTH_FAILED, "PREAUTH_FAILED", "%s",
                            w->pa[i].mech->name);
        }
        if (run->err.code == 0)
            run->err = err;
        else
            OPENSSL_free(err.e_data);
    }
    return run->err.code != 0 ? -1 : 0;
}

/* Whether the offers for this call are the ones the worker kept. */
static bool
offers_cached(const struct kdc_worker *w, const ck_db_key *k)
{
    if (w->offers_der == NULL)
        return false;
    if (k == NULL)
        return w->offers_etype == 0;
    return w->offers_etype == k->enctype && w->offers_salt_len == k->salt_len &&
           (k->salt_len == 0 || memcmp(w->offers_salt, k->salt, k->salt_len) == 0);
}

int
kdc_preauth_offers(struct kdc_worker *w, const struct kdc_pa_call *call, uint8_t **der,
                   size_t *len)
{
    const ck_db_key *k = call->client_key;
    CK_METHOD_DATA *md = NULL;
    bool constant = k == NULL || k->salt_len <= sizeof(w->offers_salt);
    int rc = 0;

    *der = NULL;
    *len = 0;
    for (size_t i = 0; i < w->n_pa; i++)
        if (w->pa[i].mech->edata != NULL && usable(w, i, call) &&
            !(w->pa[i].mech->flags & KDC_PA_EDATA_CONSTANT))
            constant = false;
    if (constant && offers_cached(w, k)) {
        if ((*der = OPENSSL_memdup(w->offers_der, w->offers_len)) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "offers");
        *len = w->offers_len;
        return 0;
    }
    if (k != NULL && (rc = kdc_add_etype_info2(w, &md, k)) != 0)
        goto out;
    for (size_t i = 0; i < w->n_pa; i++) {
        const struct kdc_pa_mech *m = w->pa[i].mech;
        int n_before = md != NULL ? sk_CK_PA_DATA_num(md) : 0;

        if (m->edata == NULL || !usable(w, i, call))
            continue;
        if (m->edata(w->pa[i].ctx, call, &md) != 0) {
            /* Offer the others: drop whatever this one half-added (and keep nothing: the
             * failure may not happen next time). */
            constant = false;
            while (md != NULL && sk_CK_PA_DATA_num(md) > n_before)
                CK_PA_DATA_free(sk_CK_PA_DATA_pop(md));
        }
    }
    if (md == NULL || sk_CK_PA_DATA_num(md) == 0) {
        rc = ck_error_set(CK_ERR_NOTFOUND, "no pre-authentication method to offer");
        goto out;
    }
    if ((rc = ck_asn1_method_data_encode(md, der, len)) != 0)
        goto out;
    if (constant) {
        uint8_t *keep = OPENSSL_memdup(*der, *len);

        /* Public data (what every client asking is told); no copy kept if memory is short. */
        if (keep != NULL) {
            OPENSSL_free(w->offers_der);
            w->offers_der = keep;
            w->offers_len = *len;
            w->offers_etype = k != NULL ? k->enctype : 0;
            w->offers_salt_len = k != NULL ? k->salt_len : 0;
            if (k != NULL && k->salt_len > 0)
                memcpy(w->offers_salt, k->salt, k->salt_len);
        }
    }
out:
    CK_METHOD_DATA_free(md);
    return rc;
}

static bool
requested(const struct kdc_pa_call *call, int32_t etype)
{
    for (size_t i = 0; i < call->n_etypes; i++)
        if (call->etypes[i] == etype)
            return true;
    return false;
}

int
kdc_preauth_reply(struct kdc_worker *w, const struct kdc_pa_call *call, struct kdc_pa_run *run,
                  const ck_db_key *long_term, ck_key *key, CK_METHOD_DATA **padata)
{
    const struct kdc_pa_mech *m = NULL;
    void *ctx = NULL, *state = NULL;
    int rc;

    ck_key_clear(key);
    if (run->accepted >= 0) {
        m = w->pa[run->accepted].mech;
        ctx = w->pa[run->accepted].ctx;
        state = run->state[run->accepted];
    }
    if (m != NULL && m->reply_key != NULL) {
        if ((rc = m->reply_key(ctx, call, state, key)) != 0)
            return rc;
        if (key->length > 0 && (!requested(call, key->enctype) ||
                                !kdc_pa_enctype_permitted(call, key->enctype))) {
            rc = ck_error_set(CK_ERR_PROTO, "preauth %s: reply key enctype %d not requested "
                              "or not permitted", m->name, (int)key->enctype);
            ck_key_clear(key);
            return rc;
        }
    }
    if (key->length == 0) {
        if (long_term == NULL)
            return ck_error_set(CK_ERR_NOTFOUND, "no reply key");
        if ((rc = kdc_add_etype_info2(w, padata, long_term)) != 0)
            return rc;
    }
    if (m != NULL && m->reply_padata != NULL &&
        (rc = m->reply_padata(ctx, call, state, padata)) != 0)
        return rc;
    return 0;
}

void
kdc_preauth_run_done(struct kdc_worker *w, struct kdc_pa_run *run)
{
    for (size_t i = 0; i < w->n_pa; i++) {
        if (run->state[i] != NULL && w->pa[i].mech->cleanup != NULL)
            w->pa[i].mech->cleanup(w->pa[i].ctx, run->state[i]);
        run->state[i] = NULL;
    }
    OPENSSL_free(run->err.e_data);
    run->err.e_data = NULL;
    run->err.e_data_len = 0;
}

int
kdc_add_etype_info2(struct kdc_worker *w, CK_METHOD_DATA **md, const ck_db_key *k)
{
    CK_ETYPE_INFO2 *info = NULL;
    char salt[CK_STORE_MAX_SALT + 1];
    uint8_t *der = NULL;
    size_t len = 0;
    int rc;

    if (k->salt_len > CK_STORE_MAX_SALT)
        return ck_error_set(CK_ERR_LIMIT, "salt too long");
    /* The encoding depends only on the key's enctype and salt: every AS exchange of one client
     * key sends the same bytes. */
    if (w->ei2_der != NULL && w->ei2_etype == k->enctype && w->ei2_salt_len == k->salt_len &&
        (k->salt_len == 0 || memcmp(w->ei2_salt, k->salt, k->salt_len) == 0))
        return ck_asn1_padata_add(md, CK_PA_ETYPE_INFO2, w->ei2_der, w->ei2_len);
    if (k->salt_len > 0)
        memcpy(salt, k->salt, k->salt_len);
    salt[k->salt_len] = '\0';
    /* s2kparams stay absent: keys are made with the default iteration counts. */
    if ((rc = ck_asn1_etype_info2_add(&info, k->enctype, k->salt_len > 0 ? salt : NULL, NULL,
                                      0)) != 0)
        goto out;
    if ((rc = ck_asn1_etype_info2_encode(info, &der, &len)) != 0)
        goto out;
    if ((rc = ck_asn1_padata_add(md, CK_PA_ETYPE_INFO2, der, len)) != 0)
        goto out;
    /* Kept: it is public (the enctype and salt every client is told). */
    OPENSSL_free(w->ei2_der);
    w->ei2_der = der;
    w->ei2_len = len;
    w->ei2_etype = k->enctype;
    w->ei2_salt_len = k->salt_len;
    if (k->salt_len > 0)
        memcpy(w->ei2_salt, k->salt, k->salt_len);
    der = NULL;
out:
    OPENSSL_free(der);
    CK_ETYPE_INFO2_free(info);
    return rc;
}
