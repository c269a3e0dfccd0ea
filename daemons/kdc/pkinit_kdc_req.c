/* PKINIT request verification in the KDC: PA-PK-AS-REQ (RFC 4556, RFC 8636, RFC 8070) and the
 * PacketCable PA-PK-AS-REQ-OLD (docs/PROTOCOL.md), from the padata bytes to a mapped, verified
 * client and what the reply needs.
 *
 * Order (cheap refusals first; nothing the client controls reaches chain validation unless its
 * signature verified):
 *   1. decode the padata, CMS SignedData: signature with the per-worker decoded-certificate
 *      cache; a PacketCable-form signature (SHA-1, no signed attributes) is remembered;
 *   2. decode the AuthPack; bind it to this request: nonce, paChecksum(2) over the req-body,
 *      ctime within the clock skew, freshness token (RFC form only);
 *   3. key exchange parameters: KDF choice (RFC 8636), DH/ECDH group and public value, or RSA
 *      key transport permitted and possible;
 *   4. mapping and chain: a certificate whose subject CN is a MAC address is a device when device
 *      anchors are configured (store.h's steps: live device record, revoked, key pin compared in
 *      constant time before chain validation); the chain verdict comes from the thumbprint
 *      cache (keyed with the device record's generation) or a full validation; the anchor
 *      reached must be of the right kind, and PacketCable forms need a PacketCable anchor;
 *      id-pkinit-san must name the client (non-devices), dev->principal must be the client
 *      (devices); an unpinned device is pinned last (trust on first use).
 * Every refusal carries a KRB-ERROR code, a log token and a detail line (kdc_pa_fail). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/pkinit_kdf.h"
#include "cablekey/principal.h"
#include "cablekey/prov.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "mta_fqdn.h"
#include "pkinit_kdc.h"

#define SHA1_LEN 20
#define MD5_LEN 16
#define CKSUMTYPE_SHA1 14 /* RFC 3961 unkeyed sha1 */

/* What the AuthPack forms have in common, borrowed from the decoded structure. */
struct authpack_view {
    int32_t cusec;
    const ASN1_GENERALIZEDTIME *ctime;
    const ASN1_INTEGER *nonce;
    const ASN1_OCTET_STRING *pa_checksum;     /* RFC: SHA-1 */
    const CK_PA_CHECKSUM2 *pa_checksum2;      /* RFC 8636 */
    const CK_CHECKSUM *pktc_checksum;         /* PacketCable: RSA-MD5 Checksum */
    const ASN1_OCTET_STRING *freshness_token; /* RFC 8070 */
    bool client_public_value;                 /* present */
    const uint8_t *spki;                      /* its DER (RFC form; NULL for the drafts) */
    size_t spki_len;
    const CK_ALGORITHM_IDENTIFIERS *supported_cms_types;
    const ASN1_OCTET_STRING *client_dh_nonce;
    const STACK_OF(CK_KDF_ALGORITHM_ID) *supported_kdfs;
};

/* Success log text, appended piece by piece. */
struct note {
    char *buf;
    size_t size, used;
};

static void
note_add(struct note *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note_add(struct note *n, const char *fmt, ...)
{
    va_list ap;
    int r;

    if (n->used >= n->size)
        return;
    va_start(ap, fmt);
    r = vsnprintf(n->buf + n->used, n->size - n->used, fmt, ap);
    va_end(ap);
    if (r > 0)
        n->used = n->used + (size_t)r < n->size ? n->used + (size_t)r : n->size;
}

void
kdc_pkinit_req_free(struct kdc_pkinit_req *rq)
{
    if (rq == NULL)
        return;
    X509_free(rq->client_cert);
    ck_pkinit_peer_free(rq->peer);
    /* The reply padata is public once sent, but an AS-REP that was never sent (a later error)
     * should not linger either: it is small, so wipe it. */
    if (rq->rep_der != NULL)
        ck_asn1_free_der(rq->rep_der, rq->rep_len);
    free(rq);
}

static const char *
kdf_name(int kdf)
{
    switch (kdf) {
    case CK_PKINIT_KDF_SHA1: return "sha1";
    case CK_PKINIT_KDF_SHA256: return "sha256";
    case CK_PKINIT_KDF_SHA384: return "sha384";
    case CK_PKINIT_KDF_SHA512: return "sha512";
    default: return "octetstring2key";
    }
}

static const char *
reason_token(ck_pkinit_cert_reason r)
{
    switch (r) {
    case CK_PKINIT_CERT_UNTRUSTED: return "UNTRUSTED_CHAIN";
    case CK_PKINIT_CERT_BAD_SIGNATURE: return "BAD_CERT_SIGNATURE";
    case CK_PKINIT_CERT_EXPIRED: return "CERT_EXPIRED";
    case CK_PKINIT_CERT_NOT_YET_VALID: return "CERT_NOT_YET_VALID";
    case CK_PKINIT_CERT_REVOKED: return "CERT_REVOKED";
    case CK_PKINIT_CERT_REVOCATION_UNKNOWN: return "REVOCATION_UNKNOWN";
    case CK_PKINIT_CERT_BAD_EKU: return "BAD_EKU";
    case CK_PKINIT_CERT_WEAK: return "WEAK_CERT";
    case CK_PKINIT_CERT_INVALID: return "INVALID_CERT";
    default: return "CERT_ERROR";
    }
}

/* A copy of a cached TYPED-DATA for a refusal's e-data (nothing when allocation fails: the
 * refusal itself stands). */
static void
set_typed_edata(struct kdc_pa_error *err, const uint8_t *der, size_t len)
{
    uint8_t *copy;

    if (der == NULL || len == 0 || (copy = OPENSSL_memdup(der, len)) == NULL)
        return;
    kdc_pa_set_edata(err, copy, len);
}

/* TYPED-DATA { TD-INVALID-CERTIFICATES { issuerAndSerialNumber of cert } } (RFC 4556 §3.2.2). */
static void
set_invalid_cert_edata(struct kdc_pa_error *err, X509 *cert)
{
    PKCS7_ISSUER_AND_SERIAL *ias = PKCS7_ISSUER_AND_SERIAL_new();
    CK_EXTERNAL_PRINCIPAL_IDENTIFIERS *ids = sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_new_null();
    CK_EXTERNAL_PRINCIPAL_IDENTIFIER *id = CK_EXTERNAL_PRINCIPAL_IDENTIFIER_new();
    CK_TYPED_DATA *td = NULL;
    unsigned char *ias_der = NULL;
    uint8_t *ids_der = NULL, *td_der = NULL;
    size_t ids_len = 0, td_len = 0;
    int n;

    if (ias == NULL || ids == NULL || id == NULL)
        goto out;
    X509_NAME_free(ias->issuer);
    ASN1_INTEGER_free(ias->serial);
    ias->issuer = X509_NAME_dup(X509_get_issuer_name(cert));
    ias->serial = ASN1_INTEGER_dup(X509_get0_serialNumber(cert));
    if (ias->issuer == NULL || ias->serial == NULL ||
        (n = i2d_PKCS7_ISSUER_AND_SERIAL(ias, &ias_der)) <= 0 ||
        ck_asn1_octets_set(&id->issuer_and_serial_number, ias_der, (size_t)n) != 0 ||
        !sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_push(ids, id))
        goto out;
    id = NULL;
    if (ck_asn1_td_principal_ids_encode(ids, &ids_der, &ids_len) != 0 ||
        ck_pkinit_typed_data_add(&td, CK_TD_INVALID_CERTIFICATES, ids_der, ids_len) != 0 ||
        ck_asn1_typed_data_encode(td, &td_der, &td_len) != 0)
        goto out;
    kdc_pa_set_edata(err, td_der, td_len);
    td_der = NULL;
out:
    OPENSSL_free(ias_der);
    ck_asn1_free_der(ids_der, ids_len);
    ck_asn1_free_der(td_der, td_len);
    CK_TYPED_DATA_free(td);
    CK_EXTERNAL_PRINCIPAL_IDENTIFIER_free(id);
    sk_CK_EXTERNAL_PRINCIPAL_IDENTIFIER_pop_free(ids, CK_EXTERNAL_PRINCIPAL_IDENTIFIER_free);
    PKCS7_ISSUER_AND_SERIAL_free(ias);
}

/* ck_pkinit_cms_verify's errors as KRB-ERRORs (its header comment gives the mapping). */
static int
cms_refusal(int rc, struct kdc_pa_error *err)
{
    switch (rc) {
    case CK_ERR_POLICY:
        kdc_pa_fail(err, CK_KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED, "DIGEST_NOT_ACCEPTED",
                    "%s", ck_error_context());
        return KDC_PA_REFUSED;
    case CK_ERR_INTEGRITY:
        kdc_pa_fail(err, CK_KDC_ERR_INVALID_SIG, "BAD_SIGNATURE", "bad signature: %s",
                    ck_error_context());
        return KDC_PA_REFUSED;
    case CK_ERR_DECODE:
    case CK_ERR_LIMIT:
    case CK_ERR_PROTO:
        kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PKINIT_BAD_CMS", "%s", ck_error_context());
        return KDC_PA_REFUSED;
    default:
        return rc;
    }
}

/* The request's client as a ck_principal (cname @ realm of the req-body). */
static int
request_client(const CK_KDC_REQ *req, ck_principal **out)
{
    const CK_KDC_REQ_BODY *b = req->req_body;
    const char *realm;
    ck_principal *p = NULL;
    int rc;

    *out = NULL;
    if (b->cname == NULL || b->realm == NULL)
        return ck_error_set(CK_ERR_PROTO, "AS-REQ without a client name");
    realm = ck_asn1_kstring_get(b->realm);
    if ((rc = ck_principal_new(realm, strlen(realm), b->cname->name_type, &p)) != 0)
        return rc;
    for (size_t i = 0; i < ck_asn1_principal_count(b->cname); i++) {
        const char *s;
        size_t len;

        if ((rc = ck_asn1_principal_component(b->cname, i, &s, &len)) != 0 ||
            (rc = ck_principal_add_component(p, s, len)) != 0) {
            ck_principal_free(p);
            return rc;
        }
    }
    *out = p;
    return 0;
}

static const EVP_MD *
checksum2_md(const X509_ALGOR *alg)
{
    switch (alg != NULL ? OBJ_obj2nid(alg->algorithm) : NID_undef) {
    case NID_sha256: return EVP_sha256();
    case NID_sha384: return EVP_sha384();
    case NID_sha512: return EVP_sha512();
    default: return NULL;
    }
}

/* d over the req-body with md equals want (constant-time compare). */
static int
digest_matches(const EVP_MD *md, const uint8_t *data, size_t len, const uint8_t *want,
               size_t want_len, bool *match)
{
    uint8_t out[EVP_MAX_MD_SIZE];
    unsigned int out_len = 0;

    *match = false;
    if (!EVP_Digest(data, len, out, &out_len, md, NULL))
        return ck_error_set_ssl(CK_ERR_CRYPTO, "paChecksum digest");
    *match = out_len == want_len && ck_ct_equal(out, want, out_len);
    return 0;
}

/* Step 2: the AuthPack belongs to this request and was made now. */
static int
check_binding(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call,
              const struct authpack_view *v, bool draft, struct kdc_pkinit_req *rq,
              struct kdc_pa_error *err, struct note *note)
{
    const uint8_t *body;
    size_t body_len;
    uint32_t req_nonce = 0;
    int64_t ctime, issued = 0;
    bool match;
    int rc;

    if (ck_asn1_nonce_get(v->nonce, &rq->nonce) != 0 ||
        ck_asn1_nonce_get(call->req->req_body->nonce, &req_nonce) != 0 ||
        rq->nonce != req_nonce) {
        kdc_pa_fail(err, CK_KRB_AP_ERR_MODIFIED, "NONCE_MISMATCH",
                    "PKAuthenticator nonce %u differs from the request nonce %u", rq->nonce,
                    req_nonce);
        return KDC_PA_REFUSED;
    }
    if ((rc = ck_asn1_kdc_req_body_der(call->req, &body, &body_len)) != 0)
        return rc;
    if (draft) {
        const CK_CHECKSUM *ck = v->pktc_checksum;
        const EVP_MD *md = NULL;
        size_t want = 0;

        if (ck == NULL) {
            kdc_pa_fail(err, CK_KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED, "PA_CHECKSUM_MISSING",
                        "PacketCable PKAuthenticator without paChecksum");
            return KDC_PA_REFUSED;
        }
        /* MD5 comes from OpenSSL's default provider; it binds the signed AuthPack to the
         * req-body, which is all PacketCable's profile asks of it (see docs/PROTOCOL.md). */
        if (ck->cksumtype == CK_CKSUMTYPE_RSA_MD5) {
            md = EVP_md5();
            want = MD5_LEN;
        } else if (ck->cksumtype == CKSUMTYPE_SHA1) {
            md = EVP_sha1();
            want = SHA1_LEN;
        }
        if (md == NULL || ck->checksum == NULL ||
            (size_t)ASN1_STRING_length(ck->checksum) != want) {
            kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PA_CHECKSUM_TYPE",
                        "PacketCable paChecksum of type %d and %d bytes not accepted",
                        (int)ck->cksumtype, ck->checksum ? ASN1_STRING_length(ck->checksum) : 0);
            return KDC_PA_REFUSED;
        }
        if ((rc = digest_matches(md, body, body_len, ASN1_STRING_get0_data(ck->checksum), want,
                                 &match)) != 0)
            return rc;
        if (!match) {
            kdc_pa_fail(err, CK_KRB_AP_ERR_MODIFIED, "PA_CHECKSUM_MISMATCH",
                        "PacketCable paChecksum does not match the req-body");
            return KDC_PA_REFUSED;
        }
    } else {
        bool any = false;

        if (v->pa_checksum != NULL && ASN1_STRING_length(v->pa_checksum) > 0) {
            any = true;
            if ((rc = digest_matches(EVP_sha1(), body, body_len,
                                     ASN1_STRING_get0_data(v->pa_checksum),
                                     (size_t)ASN1_STRING_length(v->pa_checksum), &match)) != 0)
                return rc;
            if (!match) {
                kdc_pa_fail(err, CK_KRB_AP_ERR_MODIFIED, "PA_CHECKSUM_MISMATCH",
                            "paChecksum does not match the req-body");
                return KDC_PA_REFUSED;
            }
        }
        if (v->pa_checksum2 != NULL) {
            const EVP_MD *md = checksum2_md(v->pa_checksum2->algorithm_identifier);

            any = true;
            if (md == NULL) {
                kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PA_CHECKSUM_TYPE",
                            "paChecksum2 algorithm not supported");
                return KDC_PA_REFUSED;
            }
            if ((rc = digest_matches(md, body, body_len,
                                     ASN1_STRING_get0_data(v->pa_checksum2->checksum),
                                     (size_t)ASN1_STRING_length(v->pa_checksum2->checksum),
                                     &match)) != 0)
                return rc;
            if (!match) {
                kdc_pa_fail(err, CK_KRB_AP_ERR_MODIFIED, "PA_CHECKSUM_MISMATCH",
                            "paChecksum2 does not match the req-body");
                return KDC_PA_REFUSED;
            }
        }
        if (!any) {
            kdc_pa_fail(err, CK_KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED, "PA_CHECKSUM_MISSING",
                        "AuthPack without paChecksum");
            return KDC_PA_REFUSED;
        }
    }
    if (ck_asn1_time_get(v->ctime, &ctime) != 0) {
        kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PKINIT_BAD_AUTHPACK", "unreadable ctime");
        return KDC_PA_REFUSED;
    }
    if (ctime - call->now > call->clockskew || call->now - ctime > call->clockskew) {
        kdc_pa_fail(err, CK_KRB_AP_ERR_SKEW, "STALE_AUTHPACK",
                    "AuthPack ctime off by %lld s (skew %lld s): stale or replayed",
                    (long long)(ctime - call->now), (long long)call->clockskew);
        return KDC_PA_REFUSED;
    }
    if (!draft) {
        if (v->freshness_token != NULL) {
            rc = kdc_pkinit_freshness_check(call, c->tgs_name,
                                            ASN1_STRING_get0_data(v->freshness_token),
                                            (size_t)ASN1_STRING_length(v->freshness_token),
                                            &issued);
            if (rc == CK_ERR_EXPIRED) {
                kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_EXPIRED, "STALE_FRESHNESS",
                            "stale freshness token (issued %lld s ago)",
                            (long long)(call->now - issued));
                return KDC_PA_REFUSED;
            }
            if (rc != 0) {
                kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_EXPIRED, "BAD_FRESHNESS",
                            "freshness token not issued by this realm's KDC: %s",
                            ck_error_context());
                return KDC_PA_REFUSED;
            }
            note_add(note, ", fresh");
        } else if (c->require_freshness) {
            kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "FRESHNESS_REQUIRED",
                        "AuthPack without a freshness token (pkinit_require_freshness)");
            return KDC_PA_REFUSED;
        }
    }
    return 0;
}

/* Step 3: how the reply key travels. */
static int
check_keyex(struct kdc_pkinit_ctx *c, const struct authpack_view *v, bool draft,
            const ck_pkinit_signed *s, struct kdc_pkinit_req *rq, struct kdc_pa_error *err,
            struct note *note)
{
    int rc;

    if (v->client_public_value) {
        if (draft) {
            kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PACKETCABLE_DH_UNSUPPORTED",
                        "PacketCable draft form with Diffie-Hellman is not supported (RSA key "
                        "transport only, docs/PROTOCOL.md)");
            return KDC_PA_REFUSED;
        }
        rq->keyex = KDC_PKINIT_DH;
        rq->kdf = 0;
        if (v->supported_kdfs != NULL) {
            for (int i = 0; i < sk_CK_KDF_ALGORITHM_ID_num(v->supported_kdfs) && rq->kdf == 0;
                 i++) {
                int kdf;
                if (ck_pkinit_kdf_id_get(sk_CK_KDF_ALGORITHM_ID_value(v->supported_kdfs, i),
                                         &kdf) == 0)
                    rq->kdf = kdf;
            }
            if (rq->kdf == 0) {
                kdc_pa_fail(err, CK_KDC_ERR_NO_ACCEPTABLE_KDF, "NO_ACCEPTABLE_KDF",
                            "none of the client's %d KDFs is supported",
                            sk_CK_KDF_ALGORITHM_ID_num(v->supported_kdfs));
                return KDC_PA_REFUSED;
            }
        }
        rc = v->spki != NULL ? ck_pkinit_peer_parse(v->spki, v->spki_len, c->dh_min_bits, &rq->peer)
                             : ck_error_set(CK_ERR_DECODE, "clientPublicValue");
        if (rc == CK_ERR_UNSUPPORTED || rc == CK_ERR_POLICY) {
            kdc_pa_fail(err, CK_KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED, "DH_PARAMETERS",
                        "DH group not accepted (minimum %u bits): %s", c->dh_min_bits,
                        ck_error_context());
            set_typed_edata(err, c->td_dh, c->td_dh_len);
            return KDC_PA_REFUSED;
        }
        if (rc == CK_ERR_DECODE || rc == CK_ERR_LIMIT || rc == CK_ERR_PROTO) {
            kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "BAD_DH_VALUE", "%s",
                        ck_error_context());
            return KDC_PA_REFUSED;
        }
        if (rc != 0)
            return rc;
        /* clientDHNonce is not used: the DH nonces enter octetstring2key only when the KDC
         * reuses its DH key and sends serverDHNonce (RFC 4556 §3.2.3.1), which this KDC never
         * does; MIT and Heimdal clients derive the key without them then. */
        note_add(note, ", %s %s kdf %s",
                 ck_pkinit_group_is_ec(ck_pkinit_peer_group(rq->peer)) ? "ECDH" : "DH",
                 ck_pkinit_group_name(ck_pkinit_peer_group(rq->peer)), kdf_name(rq->kdf));
        return 0;
    }
    rq->keyex = KDC_PKINIT_RSA;
    if (!c->allow_rsa && !draft) {
        kdc_pa_fail(err, CK_KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED, "RSA_NOT_ALLOWED",
                    "RSA key transport requested (no clientPublicValue) and "
                    "pkinit_allow_rsa_key_transport is off");
        return KDC_PA_REFUSED;
    }
    if (!EVP_PKEY_is_a(X509_get0_pubkey(s->signer), "RSA")) {
        kdc_pa_fail(err, CK_KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED, "RSA_NOT_POSSIBLE",
                    "RSA key transport requested but the client's key is %s",
                    EVP_PKEY_get0_type_name(X509_get0_pubkey(s->signer)));
        return KDC_PA_REFUSED;
    }
    /* PacketCable MTAs of the draft era decrypt des-ede3-cbc only (docs/PROTOCOL.md): without a
     * list that names AES, that is what they get. */
    if (draft && v->supported_cms_types == NULL)
        rq->cipher_nid = NID_des_ede3_cbc;
    else
        rq->cipher_nid = ck_pkinit_cms_pick_cipher(v->supported_cms_types);
    note_add(note, ", RSA %s", OBJ_nid2sn(rq->cipher_nid));
    return 0;
}

/* SHA-256 of the certificate's DER: what the device row's cert_sha256 holds for the one
 * operator certificate the KDC accepts. */
static int
cert_sha256(X509 *cert, uint8_t out[32])
{
    unsigned int n = 0;

    if (!X509_digest(cert, EVP_sha256(), out, &n) || n != 32)
        return ck_error_set(CK_ERR_CRYPTO, "pkinit: certificate digest");
    return 0;
}

/* The restricted-calls element of a manufacturer-certificate login (prov_ad.h). */
static int
restrict_ticket(struct kdc_pkinit_ctx *c, struct kdc_pkinit_req *rq, const char *mac,
                const uint8_t spki[CK_PKINIT_PIN_LEN])
{
    for (size_t i = 0; i < 6; i++) {
        unsigned v = 0;

        if (sscanf(mac + 3 * i, "%2x", &v) != 1)
            return ck_error_set(CK_ERR_INVAL, "pkinit: MAC %s", mac);
        rq->ad.mac[i] = (uint8_t)v;
    }
    memcpy(rq->ad.key_sha256, spki, sizeof(rq->ad.key_sha256));
    rq->ad.n_numbers = c->n_unprov_calls;
    memcpy(rq->ad.numbers, c->unprov_calls, sizeof(rq->ad.numbers));
    rq->restricted = true;
    return 0;
}

/* The principal admission gives the device of mac: mta-<12 lower-case hex>@REALM. */
static void
admission_name(const struct kdc_pkinit_ctx *c, const char *mac, char *out, size_t size)
{
    char hex[13];
    size_t o = 0;

    for (size_t i = 0; mac[i] != '\0' && o < 12; i++)
        if (mac[i] != ':')
            hex[o++] = mac[i];
    hex[o] = '\0';
    snprintf(out, size, "mta-%s@%s", hex, c->realm);
}

/* The unprovisioned-device decision (provisioning on): a device whose chain ends at a
 * manufacturer anchor but that the device table does not know is admitted as
 * mta-<hex>@REALM, which must be the name it asked for. The store creates the principal, the
 * KDC's device row (UNPROVISIONED, pinned to this key) and the provisioning row with the
 * manufacturer certificate in one transaction. Another KDC admitting it at the same moment
 * (CK_ERR_EXISTS) is no error: the row is re-read. Returns 0 with *dev set, KDC_PA_REFUSED, or
 * a negative CK_ERR_*. */
static int
admit_unprovisioned_device(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call,
                           const char *mac, X509 *cert, const uint8_t spki[CK_PKINIT_PIN_LEN],
                           const ck_db_device **dev, struct kdc_pa_error *err,
                           struct note *note)
{
    char name[300];
    unsigned char *der = NULL;
    int len, rc;

    admission_name(c, mac, name, sizeof(name));
    if (strcmp(name, call->cname) != 0) {
        kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NAME_MISMATCH, "DEVICE_NAME_MISMATCH",
                    "unknown device %s is admitted only as %s, not as the requested client",
                    mac, name);
        return KDC_PA_REFUSED;
    }
    if ((len = i2d_X509(cert, &der)) <= 0)
        return ck_error_set(CK_ERR_CRYPTO, "pkinit: certificate encoding");
    rc = ck_prov_admit_unprovisioned(call->store, mac, name, spki, der, (size_t)len, call->now);
    OPENSSL_free(der);
    if (rc != 0 && rc != CK_ERR_EXISTS) {
        kdc_pa_fail(err, CK_KRB_ERR_GENERIC, "DEVICE_ADMISSION_FAILED",
                    "device %s: admission failed: %s (refused: fail closed)", mac,
                    ck_error_context());
        return KDC_PA_REFUSED;
    }
    /* The device cache reads the change counter on every lookup: it sees the new row. */
    if (ck_store_get_device_cached(call->store, mac, dev) != 0) {
        kdc_pa_fail(err, CK_KRB_ERR_GENERIC, "DEVICE_LOOKUP_FAILED",
                    "device %s: admitted but not readable: %s (refused: fail closed)", mac,
                    ck_error_context());
        return KDC_PA_REFUSED;
    }
    note_add(note, rc == 0 ? ", unprovisioned device %s admitted" :
                             ", unprovisioned device %s admitted meanwhile", mac);
    return 0;
}

/* MTA-FQDN confirmation of an operator-certificate login from a PacketCable anchor
 * (PROTOCOL-NOTES §3.5; mta_fqdn.h): the provisioning server must know the device as
 * provisioned, with this key, else the login is refused with its reason. */
static int
confirm_mta_fqdn(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call,
                 const ck_db_device *dev, X509 *cert, const ck_pkinit_chain_result *res,
                 struct kdc_pa_error *err, struct note *note)
{
    struct kdc_mta_fqdn_query q;
    struct kdc_mta_fqdn_result r;

    if (c->mta_fqdn == NULL || !(res->anchor_flags & CK_PKINIT_ANCHOR_PACKETCABLE))
        return 0;
    memset(&q, 0, sizeof(q));
    memset(&r, 0, sizeof(r));
    q.mac = dev->mac;
    q.principal = dev->principal;
    q.cert = cert;
    q.generation = dev->generation;
    kdc_mta_fqdn_confirm(c->mta_fqdn, call->store, &q, call->now, &r);
    if (!r.confirmed) {
        kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NOT_TRUSTED,
                    r.reason != NULL ? r.reason : KDC_MTA_FQDN_R_ERROR,
                    "device %s: MTA-FQDN: %s", dev->mac, r.detail);
        return KDC_PA_REFUSED;
    }
    note_add(note, ", mta-fqdn %s%s", r.fqdn, r.cached ? " (cached)" : "");
    return 0;
}

static void
hex32(const uint8_t *in, char out[65])
{
    ck_device_pin_format_hex(in, out);
}

/* Step 4. */
static int
map_and_verify_chain(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call,
                     const ck_pkinit_signed *s, bool pc_form, struct kdc_pkinit_req *rq,
                     struct kdc_pa_error *err, struct note *note)
{
    X509 *leaf = s->signer;
    char mactext[CK_PKINIT_MAC_TEXT], mac[CK_DEVICE_MAC_LEN + 1];
    const ck_db_device *dev = NULL;
    uint8_t spki[CK_PKINIT_PIN_LEN], tp[CK_PKINIT_TP_LEN];
    ck_pkinit_chain_result res;
    STACK_OF(X509) *untrusted = NULL;
    ck_principal *client = NULL;
    uint64_t gen = 0;
    bool device = false, cached = false, pinned_now = false, have_spki = false;
    int kind, rc;

    if (c->have_device_anchors && ck_pkinit_cert_device_mac(leaf, mactext) == 0 &&
        ck_device_mac_parse(mactext, mac) == 0)
        device = true;

    if (device) {
        rc = ck_store_get_device_cached(call->store, mac, &dev);
        if (rc == CK_ERR_NOTFOUND) {
            dev = NULL;
        } else if (rc != 0) {
            kdc_pa_fail(err, CK_KRB_ERR_GENERIC, "DEVICE_LOOKUP_FAILED",
                        "device %s: %s (refused: fail closed)", mac, ck_error_context());
            rc = KDC_PA_REFUSED;
            goto out;
        } else {
            /* Any state this KDC does not know is a refusal (store.h); UNPROVISIONED is
             * known with provisioning on (restricted tickets, or an operator certificate
             * refused below). */
            if (dev->state != CK_DEVICE_ACTIVE &&
                !(c->provisioning && dev->state == CK_DEVICE_UNPROVISIONED)) {
                kdc_pa_fail(err, CK_KDC_ERR_CLIENT_REVOKED, "DEVICE_REVOKED",
                            "device %s (%s) is %s", mac, dev->principal,
                            ck_device_state_name(dev->state));
                rc = KDC_PA_REFUSED;
                goto out;
            }
            if ((rc = ck_pkinit_cert_spki_sha256(leaf, spki)) != 0)
                goto out;
            have_spki = true;
            if (dev->has_pin && !ck_ct_equal(spki, dev->spki_sha256, sizeof(spki))) {
                char got[65], want[65];

                hex32(spki, got);
                hex32(dev->spki_sha256, want);
                kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NOT_TRUSTED, "POSSIBLE_CLONE",
                            "possible clone: device %s (%s) presented key %s, pinned %s", mac,
                            dev->principal, got, want);
                rc = KDC_PA_REFUSED;
                goto out;
            }
            gen = dev->generation;
        }
    }

    /* The chain: from the thumbprint cache, else a full validation. An unknown device is
     * always validated (the unprovisioned decision needs a verified manufacturer chain). */
    if ((rc = ck_pkinit_signed_thumbprint(s, ck_pkinit_anchors_generation(c->anchors), tp)) != 0)
        goto out;
    if (!(device && dev == NULL) && ck_pkinit_tpcache_lookup(c->tp, tp, call->now, gen, &res) == 0)
        cached = true;
    if (!cached) {
        untrusted = s->certs;
        if (sk_X509_num(c->pool) > 0) {
            if ((untrusted = sk_X509_dup(s->certs)) == NULL) {
                rc = ck_error_set(CK_ERR_NOMEM, "pkinit");
                goto out;
            }
            for (int i = 0; i < sk_X509_num(c->pool); i++)
                if (!sk_X509_push(untrusted, sk_X509_value(c->pool, i))) {
                    rc = ck_error_set(CK_ERR_NOMEM, "pkinit");
                    goto out;
                }
        }
        c->stats.chain_verifications++;
        rc = ck_pkinit_verify_chain(c->anchors, leaf, untrusted, call->now,
                                    CK_PKINIT_PURPOSE_CLIENT | c->chain_flags, &res);
        if (rc == CK_ERR_POLICY) {
            int code = ck_pkinit_cert_reason_krb_error(res.reason);

            kdc_pa_fail(err, code, reason_token(res.reason), "%s%s%s: %s",
                        device ? "device " : "client certificate", device ? mac : "",
                        res.reason == CK_PKINIT_CERT_UNTRUSTED ? " (untrusted chain)" : "",
                        ck_error_context());
            if (code == CK_KDC_ERR_CANT_VERIFY_CERTIFICATE)
                set_typed_edata(err, c->td_trusted, c->td_trusted_len);
            else if ((code == CK_KDC_ERR_INVALID_CERTIFICATE ||
                      code == CK_KDC_ERR_REVOKED_CERTIFICATE) && res.depth == 0)
                set_invalid_cert_edata(err, leaf);
            rc = KDC_PA_REFUSED;
            goto out;
        }
        if (rc != 0)
            goto out;
    }
    if (res.anchor_index >= c->n_anchor_kind) {
        rc = ck_error_set(CK_ERR_INVAL, "pkinit: anchor index %zu out of range",
                          res.anchor_index);
        goto out;
    }
    kind = c->anchor_kind[res.anchor_index];
    if (pc_form && !(res.anchor_flags & CK_PKINIT_ANCHOR_PACKETCABLE)) {
        kdc_pa_fail(err, CK_KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED, "PACKETCABLE_REFUSED",
                    "PacketCable draft form from a chain that does not end at a "
                    "pkinit_packetcable_anchors anchor");
        rc = KDC_PA_REFUSED;
        goto out;
    }

    if (device) {
        if (kind == KDC_PKINIT_ANCHOR_CLIENT) {
            kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NOT_TRUSTED, "NOT_A_DEVICE_ANCHOR",
                        "certificate naming device %s ends at a client anchor, not a device "
                        "anchor", mac);
            rc = KDC_PA_REFUSED;
            goto out;
        }
        if (!have_spki) {
            if ((rc = ck_pkinit_cert_spki_sha256(leaf, spki)) != 0)
                goto out;
            have_spki = true;
        }
        if (kind == KDC_PKINIT_ANCHOR_OPERATOR) {
            /* Full service only with the one operator certificate the provisioning server
             * issued last: a superseded, foreign or de-provisioned one is refused, and the
             * device falls back to its manufacturer certificate. */
            uint8_t sha[32];

            if ((rc = cert_sha256(leaf, sha)) != 0)
                goto out;
            if (dev == NULL || dev->state != CK_DEVICE_ACTIVE || !dev->has_cert ||
                !ck_ct_equal(sha, dev->cert_sha256, sizeof(sha))) {
                kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NOT_TRUSTED, "OPERATOR_CERT_NOT_CURRENT",
                            "device %s: operator certificate is not the current one (%s)", mac,
                            dev == NULL                       ? "unknown device"
                            : dev->state != CK_DEVICE_ACTIVE  ? "device not provisioned"
                            : !dev->has_cert                  ? "no certificate issued"
                                                              : "superseded or foreign");
                rc = KDC_PA_REFUSED;
                goto out;
            }
            if ((rc = confirm_mta_fqdn(c, call, dev, leaf, &res, err, note)) != 0)
                goto out;
            note_add(note, ", operator cert");
        } else if (c->provisioning) {
            /* A manufacturer certificate: restricted calls only, whatever the device's state
             * (unprovisioned, or provisioned but without its operator certificate). */
            if (dev == NULL) {
                if ((rc = admit_unprovisioned_device(c, call, mac, leaf, spki, &dev, err,
                                                     note)) != 0)
                    goto out;
                /* Admitted by another KDC meanwhile: its row decides, as for a known one. */
                if (dev->state == CK_DEVICE_REVOKED) {
                    kdc_pa_fail(err, CK_KDC_ERR_CLIENT_REVOKED, "DEVICE_REVOKED",
                                "device %s (%s) was revoked meanwhile", mac, dev->principal);
                    rc = KDC_PA_REFUSED;
                    goto out;
                }
                if (dev->has_pin && !ck_ct_equal(spki, dev->spki_sha256, sizeof(spki))) {
                    kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NOT_TRUSTED, "POSSIBLE_CLONE",
                                "possible clone: device %s (%s) was admitted meanwhile with "
                                "another key", mac, dev->principal);
                    rc = KDC_PA_REFUSED;
                    goto out;
                }
                gen = dev->generation;
            }
            if ((rc = restrict_ticket(c, rq, mac, spki)) != 0)
                goto out;
            note_add(note, ", unprovisioned (restricted calls)");
        } else if (dev == NULL) {
            kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NOT_TRUSTED, "UNKNOWN_DEVICE",
                        "unknown device %s: certified by a device anchor, not in the "
                        "device table", mac);
            rc = KDC_PA_REFUSED;
            goto out;
        }
        if (strcmp(dev->principal, call->cname) != 0) {
            kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NAME_MISMATCH, "DEVICE_NAME_MISMATCH",
                        "device %s maps to %s, not to the requested client", mac,
                        dev->principal);
            rc = KDC_PA_REFUSED;
            goto out;
        }
        if (!dev->has_pin) {
            enum ck_device_pin_result pres;
            uint64_t newgen = 0;

            if (!have_spki && (rc = ck_pkinit_cert_spki_sha256(leaf, spki)) != 0)
                goto out;
            rc = ck_store_device_pin_check(call->store, mac, spki, &pres, &newgen);
            if (rc == 0 && pres == CK_DEVICE_PIN_MISMATCH) {
                kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NOT_TRUSTED, "POSSIBLE_CLONE",
                            "possible clone: device %s (%s) was pinned to another key "
                            "meanwhile", mac, dev->principal);
                rc = KDC_PA_REFUSED;
                goto out;
            }
            if (rc == CK_ERR_NOTFOUND || rc == CK_ERR_POLICY) {
                kdc_pa_fail(err, CK_KDC_ERR_CLIENT_REVOKED, "DEVICE_REVOKED",
                            "device %s was %s meanwhile", mac,
                            rc == CK_ERR_NOTFOUND ? "deleted" : "revoked");
                rc = KDC_PA_REFUSED;
                goto out;
            }
            if (rc != 0) {
                kdc_pa_fail(err, CK_KRB_ERR_GENERIC, "DEVICE_LOOKUP_FAILED",
                            "device %s: pinning failed: %s (refused: fail closed)", mac,
                            ck_error_context());
                rc = KDC_PA_REFUSED;
                goto out;
            }
            pinned_now = pres == CK_DEVICE_PIN_SET;
            gen = newgen;
        }
        note_add(note, ", device %s%s", mac, pinned_now ? " (key pinned now)" : "");
    } else {
        if (kind != KDC_PKINIT_ANCHOR_CLIENT) {
            kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NOT_TRUSTED, "NO_DEVICE_MAC",
                        "certificate from a device anchor without a MAC address as its "
                        "subject CN");
            rc = KDC_PA_REFUSED;
            goto out;
        }
        if ((rc = request_client(call->req, &client)) != 0)
            goto out;
        rc = ck_pkinit_cert_match_principal(leaf, client);
        if (rc == CK_ERR_NOTFOUND || rc == CK_ERR_DECODE) {
            kdc_pa_fail(err, CK_KDC_ERR_CLIENT_NAME_MISMATCH, "CLIENT_NAME_MISMATCH",
                        "%s", rc == CK_ERR_DECODE ? "malformed id-pkinit-san"
                                                  : "no id-pkinit-san names the client");
            rc = KDC_PA_REFUSED;
            goto out;
        }
        if (rc != 0)
            goto out;
        note_add(note, ", san");
    }
    note_add(note, ", chain %s", cached ? "cached" : "verified");
    if (!cached && (rc = ck_pkinit_tpcache_store(c->tp, tp, &res, gen)) != 0)
        goto out;
    rc = 0;
out:
    if (untrusted != NULL && untrusted != s->certs)
        sk_X509_free(untrusted); /* the certificates are borrowed */
    ck_principal_free(client);
    return rc;
}

/* The AuthPack with its clientPublicValue kept as DER. Decoding a SubjectPublicKeyInfo into an
 * X509_PUBKEY makes OpenSSL 3.0 decode the key through its provider decoders, ~150 us per
 * request (a third of an ECDH exchange), while ck_pkinit_peer_parse reads the DER directly. So
 * the AuthPack is first split with a template that keeps every field raw, the public value is
 * taken out, and the rest goes through the library's validating decoder. The signature was
 * verified over the bytes received; what is decoded is exactly their content. */
typedef struct {
    ASN1_TYPE *pk_authenticator;    /* [0] */
    ASN1_TYPE *client_public_value; /* [1] OPTIONAL */
    ASN1_TYPE *supported_cms_types; /* [2] OPTIONAL */
    ASN1_TYPE *client_dh_nonce;     /* [3] OPTIONAL */
    ASN1_TYPE *supported_kdfs;      /* [4] OPTIONAL */
} AUTH_PACK_RAW;

ASN1_SEQUENCE(AUTH_PACK_RAW) = {
    ASN1_EXP(AUTH_PACK_RAW, pk_authenticator, ASN1_ANY, 0),
    ASN1_EXP_OPT(AUTH_PACK_RAW, client_public_value, ASN1_ANY, 1),
    ASN1_EXP_OPT(AUTH_PACK_RAW, supported_cms_types, ASN1_ANY, 2),
    ASN1_EXP_OPT(AUTH_PACK_RAW, client_dh_nonce, ASN1_ANY, 3),
    ASN1_EXP_OPT(AUTH_PACK_RAW, supported_kdfs, ASN1_ANY, 4),
} static_ASN1_SEQUENCE_END(AUTH_PACK_RAW)

static AUTH_PACK_RAW *
AUTH_PACK_RAW_d2i(const uint8_t **p, long len)
{
    return (AUTH_PACK_RAW *)ASN1_item_d2i(NULL, p, len, ASN1_ITEM_rptr(AUTH_PACK_RAW));
}

static void
AUTH_PACK_RAW_free(AUTH_PACK_RAW *a)
{
    ASN1_item_free((ASN1_VALUE *)a, ASN1_ITEM_rptr(AUTH_PACK_RAW));
}

/* *ap (clientPublicValue absent), and *spki pointing into *raw when the client sent one. */
static int
decode_auth_pack(const uint8_t *der, size_t len, AUTH_PACK_RAW **raw, CK_AUTH_PACK **ap,
                 const uint8_t **spki, size_t *spki_len)
{
    const uint8_t *p = der;
    ASN1_TYPE *cpv;
    unsigned char *rest = NULL;
    int rest_len, rc;

    *spki = NULL;
    *spki_len = 0;
    if (len > CK_PKINIT_MAX_SMALL_MSG)
        return ck_error_set(CK_ERR_LIMIT, "AuthPack of %zu bytes", len);
    if ((*raw = AUTH_PACK_RAW_d2i(&p, (long)len)) == NULL || p != der + len) {
        /* The library says precisely what is wrong. */
        return ck_asn1_auth_pack_decode(der, len, ap) == 0
                   ? ck_error_set(CK_ERR_DECODE, "AuthPack: trailing data")
                   : ck_error_set(CK_ERR_DECODE, "%s", ck_error_context());
    }
    cpv = (*raw)->client_public_value;
    if (cpv == NULL)
        return ck_asn1_auth_pack_decode(der, len, ap);
    if (cpv->type != V_ASN1_SEQUENCE)
        return ck_error_set(CK_ERR_DECODE, "AuthPack: clientPublicValue is not a SEQUENCE");
    (*raw)->client_public_value = NULL;
    rest_len = ASN1_item_i2d((ASN1_VALUE *)*raw, &rest, ASN1_ITEM_rptr(AUTH_PACK_RAW));
    (*raw)->client_public_value = cpv;
    if (rest_len <= 0)
        return ck_error_set(CK_ERR_DECODE, "AuthPack: cannot re-encode");
    rc = ck_asn1_auth_pack_decode(rest, (size_t)rest_len, ap);
    OPENSSL_free(rest);
    if (rc != 0)
        return rc;
    *spki = ASN1_STRING_get0_data(cpv->value.sequence);
    *spki_len = (size_t)ASN1_STRING_length(cpv->value.sequence);
    return 0;
}

/* PA-PROV-SRV-LOCATION, for the log line only (docs/PROTOCOL.md: never used to decide whom the
 * KDC contacts). */
static void
note_prov_srv(const struct kdc_pa_call *call, struct note *note)
{
    const CK_PA_DATA *pa = ck_asn1_padata_find(call->req->padata, CK_PA_PROV_SRV_LOCATION);
    ASN1_GENERALSTRING *loc = NULL;

    if (pa == NULL)
        return;
    if (ck_asn1_prov_srv_location_decode(ASN1_STRING_get0_data(pa->padata_value),
                                         (size_t)ASN1_STRING_length(pa->padata_value),
                                         &loc) != 0) {
        note_add(note, ", prov-srv undecodable");
        return;
    }
    /* At most 64 bytes of it; the log line escapes every non-printable byte. */
    note_add(note, ", prov-srv \"%.64s\"", ck_asn1_kstring_get(loc));
    ASN1_GENERALSTRING_free(loc);
}

int
kdc_pkinit_verify_request(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call,
                          const CK_PA_DATA *pa, struct kdc_pkinit_req *rq,
                          struct kdc_pa_error *err)
{
    const uint8_t *val = ASN1_STRING_get0_data(pa->padata_value);
    size_t len = (size_t)ASN1_STRING_length(pa->padata_value);
    bool draft = pa->padata_type == CK_PA_PK_AS_REQ_OLD, pc_form;
    CK_PA_PK_AS_REQ_MSG *req = NULL;
    CK_PA_PK_AS_REQ_DRAFT9 *dreq = NULL;
    CK_AUTH_PACK *ap = NULL;
    AUTH_PACK_RAW *raw = NULL;
    CK_AUTH_PACK_PKTC *apc = NULL;
    ck_pkinit_signed *s = NULL;
    const ASN1_OCTET_STRING *sap;
    struct authpack_view v;
    char detail[sizeof(err->detail)];
    struct note note = {detail, sizeof(detail), 0};
    int rc;

    detail[0] = '\0';
    memset(&v, 0, sizeof(v));
    rq->pa_type = pa->padata_type;
    if (draft) {
        /* Cheap refusal: the draft forms exist only for PacketCable anchors. */
        if (!c->have_packetcable_anchors) {
            kdc_pa_fail(err, CK_KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED,
                        "PACKETCABLE_REFUSED", "PacketCable draft form (PA-PK-AS-REQ-OLD): no "
                        "pkinit_packetcable_anchors configured");
            rc = KDC_PA_REFUSED;
            goto out;
        }
        if (ck_asn1_pa_pk_as_req_draft9_decode(val, len, &dreq) != 0) {
            kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PKINIT_DECODE",
                        "undecodable PA-PK-AS-REQ-OLD: %s", ck_error_context());
            rc = KDC_PA_REFUSED;
            goto out;
        }
        rq->draft_form = dreq->form;
        sap = dreq->signed_auth_pack;
        note_add(&note, "pkinit packetcable-draft %s",
                 dreq->form == CK_PKINIT_FORM_EXPLICIT ? "explicit" : "implicit");
    } else {
        if (ck_asn1_pa_pk_as_req_decode(val, len, &req) != 0) {
            kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PKINIT_DECODE",
                        "undecodable PA-PK-AS-REQ: %s", ck_error_context());
            rc = KDC_PA_REFUSED;
            goto out;
        }
        sap = req->signed_auth_pack;
        note_add(&note, "pkinit");
    }

    /* 1. Signature. */
    rc = ck_pkinit_cms_verify(ASN1_STRING_get0_data(sap), (size_t)ASN1_STRING_length(sap),
                              CK_PKINIT_CT_AUTH_DATA,
                              c->have_packetcable_anchors ? CK_PKINIT_VERIFY_ALLOW_SHA1 : 0,
                              c->certs, &s);
    if (rc != 0) {
        rc = cms_refusal(rc, err);
        goto out;
    }
    pc_form = draft || ck_pkinit_signed_is_packetcable(s);
    if (pc_form && !c->have_packetcable_anchors) {
        kdc_pa_fail(err, CK_KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED, "PACKETCABLE_REFUSED",
                    "SignedData in the PacketCable form (%s, %s signed attributes): no "
                    "pkinit_packetcable_anchors configured",
                    OBJ_nid2sn(s->digest_nid), s->signed_attrs ? "with" : "without");
        rc = KDC_PA_REFUSED;
        goto out;
    }
    if (!draft && pc_form)
        note_add(&note, " packetcable-signature");

    /* 2. The AuthPack, bound to this request. */
    if (draft) {
        if (ck_asn1_auth_pack_pktc_decode(s->content, s->content_len, &apc) != 0) {
            CK_AUTH_PACK_DRAFT9 *a9 = NULL;

            if (ck_asn1_auth_pack_draft9_decode(s->content, s->content_len, &a9) == 0) {
                CK_AUTH_PACK_DRAFT9_free(a9);
                kdc_pa_fail(err, CK_KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED,
                            "PA_CHECKSUM_MISSING", "draft-9 AuthPack (kdcName/kdcRealm, no "
                            "paChecksum) is not accepted: nothing binds it to the request");
            } else {
                kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PKINIT_BAD_AUTHPACK",
                            "undecodable PacketCable AuthPack: %s", ck_error_context());
            }
            rc = KDC_PA_REFUSED;
            goto out;
        }
        v.cusec = apc->pk_authenticator->cusec;
        v.ctime = apc->pk_authenticator->ctime;
        v.nonce = apc->pk_authenticator->nonce;
        v.pktc_checksum = apc->pk_authenticator->pa_checksum;
        v.client_public_value = apc->client_public_value != NULL;
        v.supported_cms_types = apc->supported_cms_types;
        v.client_dh_nonce = apc->client_dh_nonce;
    } else {
        if (decode_auth_pack(s->content, s->content_len, &raw, &ap, &v.spki, &v.spki_len) != 0) {
            kdc_pa_fail(err, CK_KDC_ERR_PREAUTH_FAILED, "PKINIT_BAD_AUTHPACK",
                        "undecodable AuthPack: %s", ck_error_context());
            rc = KDC_PA_REFUSED;
            goto out;
        }
        v.cusec = ap->pk_authenticator->cusec;
        v.ctime = ap->pk_authenticator->ctime;
        v.nonce = ap->pk_authenticator->nonce;
        v.pa_checksum = ap->pk_authenticator->pa_checksum;
        v.pa_checksum2 = ap->pk_authenticator->pa_checksum2;
        v.freshness_token = ap->pk_authenticator->freshness_token;
        v.client_public_value = v.spki != NULL;
        v.supported_cms_types = ap->supported_cms_types;
        v.client_dh_nonce = ap->client_dh_nonce;
        v.supported_kdfs = ap->supported_kdfs;
    }
    if ((rc = check_binding(c, call, &v, draft, rq, err, &note)) != 0)
        goto out;

    /* 3. Key exchange. */
    if ((rc = check_keyex(c, &v, draft, s, rq, err, &note)) != 0)
        goto out;

    /* 4. Who it is. */
    if ((rc = map_and_verify_chain(c, call, s, pc_form, rq, err, &note)) != 0)
        goto out;
    if (draft)
        note_prov_srv(call, &note);
    if (!X509_up_ref(s->signer)) {
        rc = ck_error_set(CK_ERR_CRYPTO, "pkinit: certificate reference");
        goto out;
    }
    rq->client_cert = s->signer;
    /* The success text travels in err->detail (preauth.c puts it on the ISSUE log line). */
    ck_strlcpy(err->detail, detail, sizeof(err->detail));
    rc = 0;
out:
    ck_pkinit_signed_free(s);
    CK_AUTH_PACK_free(ap);
    AUTH_PACK_RAW_free(raw);
    CK_AUTH_PACK_PKTC_free(apc);
    CK_PA_PK_AS_REQ_MSG_free(req);
    CK_PA_PK_AS_REQ_DRAFT9_free(dreq);
    return rc;
}
