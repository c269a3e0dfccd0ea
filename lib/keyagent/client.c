/* The client side of the key version service (keyagent.h): the AS exchange with the service's
 * own key, and one exchange in the AP-REQ + KRB-PRIV envelope (apenv.h) with a KDC's key
 * version service: the reply's keys are read under the fresh subkey of this exchange, after the
 * AP-REP proved the server holds the keyagent service key (only a KDC does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/apenv.h"
#include "cablekey/error.h"
#include "cablekey/keyagent.h"
#include "cablekey/kpasswd.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/principal.h"
#include "cablekey/safepriv.h"
#include "cablekey/util.h"

/* kt's entries of p with kvno, copied. */
static int
keytab_of_kvno(const ck_keytab *kt, const ck_principal *p, uint32_t kvno, ck_keytab **out)
{
    ck_keytab *sub = NULL;
    int rc;

    *out = NULL;
    if ((rc = ck_keytab_new(&sub)) != 0)
        return rc;
    for (size_t i = 0; i < kt->n_entries; i++) {
        const ck_keytab_entry *e = &kt->entries[i];
        if (e->kvno == kvno && ck_principal_equal(e->principal, p) &&
            (rc = ck_keytab_add(sub, e->principal, e->kvno, e->timestamp, &e->key)) != 0) {
            ck_keytab_free(sub);
            return rc;
        }
    }
    *out = sub;
    return 0;
}

/* The kvnos to try: hint (if the keytab has it), then the others newest first. */
static size_t
login_order(const ck_keytab *kt, const ck_principal *p, uint32_t hint, uint32_t *order)
{
    uint32_t below = UINT32_MAX;
    size_t n = 0;

    for (size_t i = 0; hint != 0 && i < kt->n_entries; i++)
        if (kt->entries[i].kvno == hint && ck_principal_equal(kt->entries[i].principal, p)) {
            order[n++] = hint;
            break;
        }
    while (n < CK_KEYAGENT_LOGIN_TRIES) {
        uint32_t best = 0;

        for (size_t i = 0; i < kt->n_entries; i++) {
            uint32_t kv = kt->entries[i].kvno;
            if (kv > best && kv < below && kv != hint &&
                ck_principal_equal(kt->entries[i].principal, p))
                best = kv;
        }
        if (best == 0)
            break;
        order[n++] = best;
        below = best;
    }
    return n;
}

int
ck_keyagent_login(const ck_kdc_transport *kdc, const char *principal, const ck_keytab *kt,
                  uint32_t kvno_hint, ck_creds **out, uint32_t *used_kvno)
{
    ck_principal *p = NULL;
    ck_keytab *sub = NULL;
    ck_as_params ap;
    char service[CK_REALM_MAX_LEN + 16];
    uint32_t order[CK_KEYAGENT_LOGIN_TRIES];
    size_t n;
    int rc;

    *out = NULL;
    if (used_kvno != NULL)
        *used_kvno = 0;
    if ((rc = ck_principal_parse(principal, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p)) != 0)
        return ck_error_set(rc, "keytab-agent: principal \"%s\": %s", principal,
                            ck_error_context());
    snprintf(service, sizeof(service), CK_KEYAGENT_SERVICE "/%s", p->realm);
    memset(&ap, 0, sizeof(ap));
    ap.realm = p->realm;
    ap.client = principal;
    ap.service = service;
    ap.lifetime = CK_KEYAGENT_TICKET_LIFE;
    ap.transport = kdc;
    if ((n = login_order(kt, p, kvno_hint, order)) == 0) {
        rc = ck_error_set(CK_ERR_NOTFOUND, "the keytab holds no key of %s", principal);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = keytab_of_kvno(kt, p, order[i], &sub)) != 0)
            goto out;
        rc = ck_client_as_keytab(&ap, sub, out);
        ck_keytab_free(sub);
        sub = NULL;
        if (rc == 0) {
            if (used_kvno != NULL)
                *used_kvno = order[i];
            goto out;
        }
        /* Another kvno is worth a try only when this key was the wrong one. */
        if (!(rc == CK_ERR_INTEGRITY ||
              (rc == CK_ERR_KRB && (ck_error_krb_code() == CK_KDC_ERR_PREAUTH_FAILED ||
                                    ck_error_krb_code() == CK_KRB_AP_ERR_BAD_INTEGRITY))))
            goto out;
    }
out:
    ck_principal_free(p);
    return rc;
}

int
ck_keyagent_exchange(const ck_kdc_transport *svc, const ck_creds *creds,
                     const ck_keyagent_req *req, ck_keyagent_rep *rep)
{
    ck_kdc_transport t;
    uint8_t *inner = NULL, *data = NULL;
    size_t inner_len = 0, data_len = 0;
    int rc;

    memset(rep, 0, sizeof(*rep));
    if ((rc = ck_keyagent_req_encode(req, &inner, &inner_len)) != 0)
        goto out;
    t = *svc;
    t.tcp_only = true;
    if ((rc = ck_apenv_exchange(&t, creds, CK_KEYAGENT_VERSION, "keyagent", inner, inner_len, 0,
                                &data, &data_len)) != 0)
        goto out;
    rc = ck_keyagent_rep_decode(data, data_len, rep);
out:
    if (data != NULL)
        ck_free_secret(data, data_len);
    ck_free_secret(inner, inner_len);
    return rc;
}
