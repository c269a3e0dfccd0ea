/* TGS exchange (RFC 4120 §3.3, §5.4.1-2).
 *
 * Decisions:
 *   - Only tickets issued by this realm's krbtgt are accepted as TGTs (no cross-realm): a ticket
 *     for another realm's krbtgt, or from another realm, is KDC_ERR_S_PRINCIPAL_UNKNOWN. A
 *     service ticket in PA-TGS-REQ is accepted only with RENEW (renewing that service ticket);
 *     otherwise KDC_ERR_POLICY.
 *   - The authenticator must carry a keyed checksum over the received KDC-REQ-BODY bytes (usage
 *     6, TGT session key): absent or unkeyed types are KRB_AP_ERR_INAPP_CKSUM, a mismatch
 *     KRB_AP_ERR_MODIFIED.
 *   - VALIDATE, POSTDATED, ENC_TKT_IN_SKEY (user-to-user) and CNAME_IN_ADDL_TKT (S4U) are not
 *     supported: KDC_ERR_BADOPTION. ALLOW_POSTDATE is ignored.
 *   - FORWARDED/PROXY need a forwardable/proxiable TGT (else KDC_ERR_BADOPTION); FORWARDABLE,
 *     PROXIABLE and RENEWABLE are granted only when the TGT has them and the server's attributes
 *     allow them, silently dropped otherwise (MIT clients mirror the TGT's flags in the options).
 *   - enc-authorization-data is ignored (not copied into the ticket); the TGT's own
 *     authorization-data is carried over whole, so the restricted-calls element of an
 *     unprovisioned device (prov_ad.h) reaches every service ticket and a TGS-REQ can neither
 *     add nor remove it; an unreadable one is refused (KDC_ERR_POLICY).
 *   - No replay cache for TGS authenticators (as MIT since 1.18): a replayed TGS-REQ yields a
 *     reply only the holder of the session key can read.
 *   - A renewal gets a fresh session key. */
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/prov_ad.h"
#include "cablekey/util.h"
#include "alarms.h"
#include "kdc_int.h"

struct tgs_lookup {
    struct kdc_worker *w;
    const ck_db_principal *tkt_server;  /* the server of the presented ticket */
    bool is_tgt;
};

/* ck_ap_key_fn: the key of the presented ticket's server, from this realm's database. */
static int
tgs_key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
           int32_t *krb_error)
{
    struct tgs_lookup *l = arg;
    char name[KDC_NAME_MAX];
    const ck_db_key *k;
    int rc;

    if (!ck_asn1_kstring_eq(ticket->realm, l->w->realm_name) ||
        !kdc_unparse(ticket->sname, ticket->realm, name, sizeof(name))) {
        *krb_error = CK_KDC_ERR_S_PRINCIPAL_UNKNOWN;
        return ck_error_set(CK_ERR_NOTFOUND, "ticket from another realm");
    }
    rc = ck_store_get_principal_cached(l->w->store, name, &l->tkt_server);
    if (rc != 0) {
        *krb_error = rc == CK_ERR_NOTFOUND ? CK_KDC_ERR_S_PRINCIPAL_UNKNOWN : CK_KRB_ERR_GENERIC;
        return rc;
    }
    l->is_tgt = strcmp(name, l->w->tgs_name) == 0;
    /* Old kvnos keep working after a rotation: look the ticket's kvno up in the whole record. */
    if ((k = ck_db_principal_find_key(l->tkt_server, kvno, etype)) == NULL) {
        bool any = false;

        for (size_t i = 0; i < l->tkt_server->n_keys; i++)
            any = any || l->tkt_server->keys[i].enctype == etype;
        *krb_error = any ? CK_KRB_AP_ERR_BADKEYVER : CK_KRB_AP_ERR_NOKEY;
        return ck_error_set(CK_ERR_NOTFOUND, "no key for kvno %u enctype %d", kvno, (int)etype);
    }
    return ck_key_copy(key, &k->key);
}

static const char *
ap_status(int32_t code)
{
    switch (code) {
    case CK_KRB_AP_ERR_BAD_INTEGRITY: return "BAD_INTEGRITY";
    case CK_KRB_AP_ERR_MODIFIED: return "MODIFIED";
    case CK_KRB_AP_ERR_SKEW: return "SKEW";
    case CK_KRB_AP_ERR_TKT_EXPIRED: return "TKT_EXPIRED";
    case CK_KRB_AP_ERR_TKT_NYV: return "TKT_NYV";
    case CK_KRB_AP_ERR_BADMATCH: return "BADMATCH";
    case CK_KRB_AP_ERR_BADKEYVER: return "BADKEYVER";
    case CK_KRB_AP_ERR_NOKEY: return "NOKEY";
    case CK_KDC_ERR_S_PRINCIPAL_UNKNOWN: return "TGT_SERVER_NOT_FOUND";
    default: return "AP_REQ_FAILED";
    }
}

/* Verifies the authenticator's checksum over the raw request body. */
static bool
check_body_checksum(struct kdc_request *r, const ck_ap_req_result *ap)
{
    const CK_CHECKSUM *ck = ap->authenticator->cksum;
    const uint8_t *body;
    size_t body_len;
    int rc;

    if (ck == NULL || !ck_checksum_is_keyed_supported(ck->cksumtype)) {
        kdc_fail(r, CK_KRB_AP_ERR_INAPP_CKSUM, "INAPP_CKSUM", ck == NULL ? "no checksum"
                                                                          : "checksum type %d",
                 ck == NULL ? 0 : (int)ck->cksumtype);
        return false;
    }
    if (ck_asn1_kdc_req_body_der(r->req, &body, &body_len) != 0) {
        kdc_fail(r, CK_KRB_ERR_GENERIC, "DECODE_ERROR", "no request body bytes");
        return false;
    }
    rc = ck_verify_checksum(&ap->session_key, ck->cksumtype, CK_KU_TGS_REQ_AUTH_CKSUM, body,
                            body_len, ASN1_STRING_get0_data(ck->checksum),
                            (size_t)ASN1_STRING_length(ck->checksum));
    if (rc == CK_ERR_INTEGRITY) {
        kdc_fail(r, CK_KRB_AP_ERR_MODIFIED, "MODIFIED", "request body checksum mismatch");
        return false;
    }
    if (rc != 0) {
        kdc_fail(r, CK_KRB_AP_ERR_INAPP_CKSUM, "INAPP_CKSUM", "checksum type %d for enctype %d",
                 (int)ck->cksumtype, (int)ap->session_key.enctype);
        return false;
    }
    return true;
}

/* A full-service TGT of a device (issued on its operator certificate while the device row was
 * active: the only way to an unrestricted device TGT) is honoured only while the row stays
 * active: a device revoked or de-provisioned since gets no new ticket, live, as a restricted
 * TGT's device gets none once revoked. Devices are found by the name the KDC gives them,
 * mta-<12 hex>@REALM; a principal that only looks like one (no row, or a row naming another
 * principal) is not a device. */
static bool
check_device_client(struct kdc_request *r)
{
    const ck_db_device *dev = NULL;
    char mac[CK_DEVICE_MAC_LEN + 1], hex[13];
    size_t i;
    int rc;

    if (strncmp(r->cname, "mta-", 4) != 0)
        return true;
    for (i = 0; i < 12; i++) {
        char c = r->cname[4 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return true;
        hex[i] = c;
    }
    hex[12] = '\0';
    if (r->cname[16] != '@' || ck_device_mac_parse(hex, mac) != 0)
        return true;
    rc = ck_store_get_device_cached(r->w->store, mac, &dev);
    if (rc == CK_ERR_NOTFOUND)
        return true;
    if (rc != 0) {
        kdc_fail(r, CK_KRB_ERR_GENERIC, "DEVICE_LOOKUP_FAILED", "device %s: %s (refused: fail "
                 "closed)", mac, ck_error_context());
        return false;
    }
    if (strcmp(dev->principal, r->cname) != 0 || dev->state == CK_DEVICE_ACTIVE)
        return true;
    kdc_fail(r, CK_KDC_ERR_CLIENT_REVOKED,
             dev->state == CK_DEVICE_REVOKED ? "DEVICE_REVOKED" : "DEVICE_NOT_PROVISIONED",
             "device %s is %s since its full-service TGT was issued", mac,
             ck_device_state_name(dev->state));
    return false;
}

static bool
check_restriction(struct kdc_request *r, const CK_ENC_TICKET_PART *tgt)
{
    ck_ad_restricted ad;
    const ck_db_device *dev = NULL;
    char mac[CK_DEVICE_MAC_LEN + 1], hex[13];
    bool found = false;
    int rc;

    rc = ck_ad_restricted_find(tgt->authorization_data, &ad, &found);
    if (rc != 0) {
        kdc_fail(r, CK_KDC_ERR_POLICY, "RESTRICTED_AD_INVALID", "%s", ck_error_context());
        return false;
    }
    if (!found)
        return check_device_client(r);
    for (size_t i = 0; i < sizeof(ad.mac); i++)
        snprintf(hex + 2 * i, 3, "%02x", ad.mac[i]);
    if (ck_device_mac_parse(hex, mac) != 0) {
        kdc_fail(r, CK_KDC_ERR_POLICY, "RESTRICTED_AD_INVALID", "device MAC %s", hex);
        return false;
    }
    rc = ck_store_get_device_cached(r->w->store, mac, &dev);
    if (rc == CK_ERR_NOTFOUND || (rc == 0 && dev->state == CK_DEVICE_REVOKED)) {
        kdc_fail(r, CK_KDC_ERR_CLIENT_REVOKED, "DEVICE_REVOKED", "unprovisioned device %s is %s",
                 mac, rc == 0 ? "revoked" : "deleted");
        return false;
    }
    if (rc != 0) {
        kdc_fail(r, CK_KRB_ERR_GENERIC, "DEVICE_LOOKUP_FAILED", "device %s: %s (refused: fail "
                 "closed)", mac, ck_error_context());
        return false;
    }
    snprintf(r->detail, sizeof(r->detail), "unprovisioned device %s, restricted calls", mac);
    return true;
}

void
kdc_process_tgs(struct kdc_request *r, const uint8_t *der, size_t len)
{
    struct kdc_worker *w = r->w;
    struct tgs_lookup lookup = {.w = w};
    ck_ap_req_result ap;
    CK_KDC_REQ_BODY *b;
    const CK_PA_DATA *pa;
    const CK_ENC_TICKET_PART *tgt = NULL;
    const ck_db_principal *server = NULL, *client = NULL;
    const ck_db_key *tkt_key;
    struct kdc_ticket_times times;
    const ck_key *reply_key;
    struct kdc_reply *rb = NULL;
    const CK_HOST_ADDRESSES *caddr;
    uint32_t opts = 0, flags = 0;
    int64_t from, till, rtime, starttime, endtime, renew_till = 0;
    ck_key session;
    int rc;

    r->kind = "TGS_REQ";
    memset(&ap, 0, sizeof(ap));
    ck_key_clear(&session);
    if ((rc = ck_asn1_tgs_req_decode(der, len, &r->req)) != 0) {
        kdc_fail(r, CK_KRB_ERR_GENERIC, "DECODE_ERROR", "%s", ck_error_context());
        return;
    }
    b = r->req->req_body;
    if (ck_asn1_etypes_get(b, r->etypes, CK_ASN1_MAX_ETYPES, &r->n_etypes) != 0)
        r->n_etypes = 0;
    if (ck_asn1_flags_get(b->kdc_options, &opts) != 0)
        opts = 0;
    kdc_unparse(b->sname, b->realm, r->sname, sizeof(r->sname));

    if ((pa = ck_asn1_padata_find(r->req->padata, CK_PA_TGS_REQ)) == NULL) {
        kdc_fail(r, CK_KDC_ERR_PADATA_TYPE_NOSUPP, "NO_PA_TGS_REQ", NULL);
        return;
    }
    rc = ck_ap_req_verify_at(ASN1_STRING_get0_data(pa->padata_value),
                             (size_t)ASN1_STRING_length(pa->padata_value), tgs_key_fn, &lookup,
                             NULL, NULL, w->clockskew, CK_KU_TGS_REQ_AUTH, r->now, &ap);
    if (ap.enc_ticket != NULL)
        kdc_unparse(ap.enc_ticket->cname, ap.enc_ticket->crealm, r->cname, sizeof(r->cname));
    if (rc != 0) {
        kdc_fail(r, ap.krb_error ? ap.krb_error : CK_KRB_ERR_GENERIC, ap_status(ap.krb_error),
                 "%s", ck_error_context());
        kdc_alarm_ap_failure(r, &ap); /* alarms.h: kvno-missing */
        goto out;
    }
    tgt = ap.enc_ticket;
    r->authtime = ap.authtime;
    if (!check_body_checksum(r, &ap))
        goto out;

    if (opts & (CK_KDC_OPT_VALIDATE | CK_KDC_OPT_POSTDATED | CK_KDC_OPT_ENC_TKT_IN_SKEY |
                CK_KDC_OPT_CNAME_IN_ADDL_TKT)) {
        kdc_fail(r, CK_KDC_ERR_BADOPTION, "BAD_OPTION", "unsupported option");
        goto out;
    }
    if (!lookup.is_tgt && !(opts & CK_KDC_OPT_RENEW)) {
        kdc_fail(r, CK_KDC_ERR_POLICY, "NOT_A_TGT", "service ticket presented");
        goto out;
    }

    /* Provisioning: a TGT issued on a manufacturer certificate carries the restricted-calls
     * element, which every ticket made from it keeps (the TGT's authorization data is copied
     * whole below; enc-authorization-data is never added). One the KDC cannot read is refused
     * rather than passed on, and the device is refused here too once revoked, live. */
    if (!check_restriction(r, tgt))
        goto out;

    /* The requested server (this realm only). */
    if (r->sname[0] == '\0' || !ck_asn1_kstring_eq(b->realm, w->realm_name)) {
        kdc_fail(r, CK_KDC_ERR_S_PRINCIPAL_UNKNOWN, "SERVER_NOT_FOUND",
                 r->sname[0] ? "not in this realm" : "no server name");
        goto out;
    }
    rc = ck_store_get_principal_cached(w->store, r->sname, &server);
    if (rc != 0) {
        if (rc == CK_ERR_NOTFOUND)
            kdc_fail(r, CK_KDC_ERR_S_PRINCIPAL_UNKNOWN, "SERVER_NOT_FOUND", NULL);
        else
            kdc_fail(r, CK_KRB_ERR_GENERIC, "LOOKING_UP_SERVER", "%s", ck_error_context());
        goto out;
    }
    if (server->expires != 0 && server->expires <= r->now) {
        kdc_fail(r, CK_KDC_ERR_SERVICE_EXP, "SERVICE_EXPIRED", NULL);
        goto out;
    }
    if ((server->attributes & (CK_ATTR_DISALLOW_ALL_TIX | CK_ATTR_DISALLOW_SVR)) ||
        ((server->attributes & CK_ATTR_DISALLOW_TGT_BASED) && strcmp(r->sname, w->tgs_name))) {
        kdc_fail(r, CK_KDC_ERR_POLICY, "SERVICE_DISALLOWED", NULL);
        goto out;
    }
    /* A client locked out after its TGT was issued loses access to new tickets. */
    if (ck_store_get_principal_cached(w->store, r->cname, &client) == 0 &&
        (client->attributes & CK_ATTR_DISALLOW_ALL_TIX)) {
        kdc_fail(r, CK_KDC_ERR_CLIENT_REVOKED, "CLIENT_LOCKED_OUT", NULL);
        goto out;
    }

    if ((r->ses_etype = kdc_session_etype(w, r, server)) == 0) {
        kdc_fail(r, CK_KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE", "no session enctype");
        goto out;
    }
    if ((tkt_key = kdc_first_key(w, server)) == NULL) {
        kdc_fail(r, CK_KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE", "no server key");
        goto out;
    }
    r->tkt_etype = tkt_key->enctype;
    if (ck_asn1_time_get_opt(b->from, 0, &from) != 0 ||
        ck_asn1_time_get_opt(b->till, 0, &till) != 0 ||
        ck_asn1_time_get_opt(b->rtime, 0, &rtime) != 0) {
        kdc_fail(r, CK_KRB_ERR_GENERIC, "DECODE_ERROR", "bad time field");
        goto out;
    }
    if (till == 0)
        till = INT64_MAX;
    if (rtime == 0)
        rtime = INT64_MAX;
    starttime = r->now;
    caddr = tgt->caddr;

    if (opts & CK_KDC_OPT_RENEW) {
        /* RFC 4120 §3.3.3.1: same ticket, new times, new session key. */
        if (!(ap.tkt_flags & CK_TKT_FLG_RENEWABLE) || ap.renew_till == 0) {
            kdc_fail(r, CK_KDC_ERR_BADOPTION, "TKT_NOT_RENEWABLE", NULL);
            goto out;
        }
        if (ap.renew_till <= r->now) {
            kdc_fail(r, CK_KRB_AP_ERR_TKT_EXPIRED, "TKT_EXPIRED", "past renew-till");
            goto out;
        }
        if (!ck_asn1_principal_equal(b->sname, ap.ticket->sname)) {
            kdc_fail(r, CK_KDC_ERR_SERVER_NOMATCH, "SERVER_NOMATCH", NULL);
            goto out;
        }
        flags = ap.tkt_flags & ~(uint32_t)CK_TKT_FLG_INVALID;
        endtime = kdc_min64(ap.renew_till, r->now + (ap.endtime - ap.starttime));
        renew_till = ap.renew_till;
    } else {
        if (from > r->now + w->clockskew) {
            kdc_fail(r, CK_KDC_ERR_CANNOT_POSTDATE, "POSTDATE_NOT_SUPPORTED", NULL);
            goto out;
        }
        if (opts & CK_KDC_OPT_FORWARDED) {
            if (!(ap.tkt_flags & CK_TKT_FLG_FORWARDABLE) ||
                (server->attributes & CK_ATTR_DISALLOW_FORWARDABLE)) {
                kdc_fail(r, CK_KDC_ERR_BADOPTION, "BAD_OPTION", "TGT not forwardable");
                goto out;
            }
            flags |= CK_TKT_FLG_FORWARDED;
            caddr = b->addresses;
        }
        if (opts & CK_KDC_OPT_PROXY) {
            /* RFC 4120 §2.5: proxy tickets are never TGTs. */
            if (!(ap.tkt_flags & CK_TKT_FLG_PROXIABLE) || strcmp(r->sname, w->tgs_name) == 0 ||
                (server->attributes & CK_ATTR_DISALLOW_PROXIABLE)) {
                kdc_fail(r, CK_KDC_ERR_BADOPTION, "BAD_OPTION", "proxy not allowed");
                goto out;
            }
            flags |= CK_TKT_FLG_PROXY;
            caddr = b->addresses;
        }
        if ((opts & CK_KDC_OPT_FORWARDABLE) && (ap.tkt_flags & CK_TKT_FLG_FORWARDABLE) &&
            !(server->attributes & CK_ATTR_DISALLOW_FORWARDABLE))
            flags |= CK_TKT_FLG_FORWARDABLE;
        if ((opts & CK_KDC_OPT_PROXIABLE) && (ap.tkt_flags & CK_TKT_FLG_PROXIABLE) &&
            !(server->attributes & CK_ATTR_DISALLOW_PROXIABLE))
            flags |= CK_TKT_FLG_PROXIABLE;
        /* Carried over from the TGT (RFC 4120 §2.6, §2.8). */
        flags |= ap.tkt_flags & (CK_TKT_FLG_PRE_AUTHENT | CK_TKT_FLG_HW_AUTHENT |
                                 CK_TKT_FLG_FORWARDED);
        if (server->attributes & CK_ATTR_OK_AS_DELEGATE)
            flags |= CK_TKT_FLG_OK_AS_DELEGATE;
        endtime = kdc_min64(kdc_min64(till, ap.endtime), r->now + kdc_life_cap(w, server));
        if (endtime <= r->now) {
            kdc_fail(r, CK_KDC_ERR_NEVER_VALID, "NEVER_VALID", NULL);
            goto out;
        }
        if ((opts & CK_KDC_OPT_RENEWABLE_OK) && !(opts & CK_KDC_OPT_RENEWABLE) &&
            till > endtime) {
            opts |= CK_KDC_OPT_RENEWABLE;
            rtime = till;
        }
        if ((opts & CK_KDC_OPT_RENEWABLE) && (ap.tkt_flags & CK_TKT_FLG_RENEWABLE) &&
            ap.renew_till != 0 && !(server->attributes & CK_ATTR_DISALLOW_RENEWABLE)) {
            int64_t rt = kdc_min64(kdc_min64(rtime, ap.renew_till), r->now + kdc_renew_cap(w, server));

            if (rt > endtime) {
                renew_till = rt;
                flags |= CK_TKT_FLG_RENEWABLE;
            }
        }
    }

    if ((rc = ck_random_key(r->ses_etype, &session)) != 0)
        goto fail;
    times = (struct kdc_ticket_times){ap.authtime, starttime, endtime, renew_till};
    reply_key = ap.has_subkey ? &ap.subkey : &ap.session_key;
    r->rep_etype = reply_key->enctype;
    if ((rc = kdc_reply_acquire(w, &rb)) != 0 ||
        (rc = kdc_reply_set_client(rb, tgt->cname, ck_asn1_kstring_get(tgt->crealm))) != 0 ||
        (rc = kdc_reply_set_server(rb, b->sname, w->realm_name)) != 0 ||
        (rc = kdc_reply_set_addresses(rb, caddr)) != 0 ||
        (rc = kdc_reply_set_transited(rb, tgt->transited)) != 0 ||
        (rc = kdc_reply_set_authz(rb, tgt->authorization_data)) != 0 ||
        (rc = kdc_reply_seal_ticket(rb, &times, flags, &session, tkt_key)) != 0 ||
        (rc = kdc_reply_set_part(rb, b->nonce, ap.authtime, 0)) != 0 ||
        (rc = kdc_reply_encode(rb, CK_KRB_TGS_REP, reply_key,
                               ap.has_subkey ? CK_KU_TGS_REP_ENCPART_SUBKEY
                                             : CK_KU_TGS_REP_ENCPART_SESSKEY,
                               NULL, &r->reply, &r->reply_len)) != 0)
        goto fail;
    r->status = "ISSUE";
    goto out;
fail:
    kdc_fail(r, CK_KRB_ERR_GENERIC, "INTERNAL_ERROR", "%s (%s)", ck_strerror(rc),
             ck_error_context());
out:
    kdc_reply_release(w, rb);
    ck_key_clear(&session);
    ck_ap_req_result_clear(&ap);
}
