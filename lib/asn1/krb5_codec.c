/* Validated decoding and encoding of the RFC 4120 types. The OpenSSL template decoder alone
 * accepts BER indefinite lengths, trailing bytes, non-Z times and any GeneralString bytes, so
 * every decode is: DER structure pre-scan -> template d2i -> end-pointer check -> field
 * validation. Encoders run the same field validation so we never emit what we would refuse. */
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "cablekey/krb5_asn1.h"
#include "asn1/asn1_int.h"

/* ---- DER structure pre-scan ---------------------------------------------------------------- */

static int
read_header(const uint8_t *p, size_t len, const char *what, size_t *hdr, size_t *clen)
{
    size_t n, v = 0;

    if (len < 2)
        return ck_error_set(CK_ERR_DECODE, "%s: truncated TLV header", what);
    if ((p[0] & 0x1f) == 0x1f)
        return ck_error_set(CK_ERR_DECODE, "%s: high tag number form", what);
    if (p[0] == 0x00)
        return ck_error_set(CK_ERR_DECODE, "%s: end-of-contents outside indefinite length", what);
    if (p[1] < 0x80) {
        *hdr = 2;
        *clen = p[1];
    } else if (p[1] == 0x80) {
        /* RFC 4120 §5.1.1 lets us refuse BER; indefinite lengths only serve attackers here. */
        return ck_error_set(CK_ERR_DECODE, "%s: indefinite length", what);
    } else {
        n = p[1] & 0x7f;
        if (n > 4)
            return ck_error_set(CK_ERR_DECODE, "%s: %zu length octets", what, n);
        if (len - 2 < n)
            return ck_error_set(CK_ERR_DECODE, "%s: truncated length", what);
        /* DER (X.690 §10.1): the fewest length octets. A leading zero octet, or the long form
         * for a length below 128, gives one value several encodings, which breaks every
         * "same bytes" comparison (checksums over received encodings, replay caches). */
        if (p[2] == 0)
            return ck_error_set(CK_ERR_DECODE, "%s: non-minimal length (leading zero octet)",
                                what);
        for (size_t i = 0; i < n; i++)
            v = (v << 8) | p[2 + i];
        if (v < 0x80)
            return ck_error_set(CK_ERR_DECODE, "%s: non-minimal length (long form for %zu)", what,
                                v);
        *hdr = 2 + n;
        *clen = v;
    }
    /* DER: universal types other than SEQUENCE/SET are primitive (no BER constructed strings,
     * which OpenSSL would otherwise reassemble), and SEQUENCE/SET are always constructed. */
    if ((p[0] & 0xc0) == 0x00) {
        unsigned tag = p[0] & 0x1f;
        bool cons = (p[0] & 0x20) != 0;
        if (cons != (tag == V_ASN1_SEQUENCE || tag == V_ASN1_SET))
            return ck_error_set(CK_ERR_DECODE, "%s: %s encoding of universal tag %u", what,
                                cons ? "constructed" : "primitive", tag);
    }
    if (*clen > len - *hdr)
        return ck_error_set(CK_ERR_DECODE, "%s: length %zu exceeds the %zu bytes left", what,
                            *clen, len - *hdr);
    return 0;
}

static int
scan_contents(const uint8_t *p, size_t len, int depth, const char *what)
{
    size_t hdr, clen;
    int rc;

    while (len > 0) {
        if ((rc = read_header(p, len, what, &hdr, &clen)) != 0)
            return rc;
        if (p[0] & 0x20) {
            if (depth >= CK_ASN1_MAX_DEPTH)
                return ck_error_set(CK_ERR_DECODE, "%s: nested deeper than %d", what,
                                    CK_ASN1_MAX_DEPTH);
            if ((rc = scan_contents(p + hdr, clen, depth + 1, what)) != 0)
                return rc;
        }
        p += hdr + clen;
        len -= hdr + clen;
    }
    return 0;
}

int
ck_asn1_der_scan(const uint8_t *der, size_t len, const char *what)
{
    return ck_asn1_der_scan_max(der, len, what, CK_ASN1_MAX_MSG);
}

int
ck_asn1_der_scan_max(const uint8_t *der, size_t len, const char *what, size_t max)
{
    size_t hdr, clen;
    int rc;

    if (der == NULL || len == 0)
        return ck_error_set(CK_ERR_DECODE, "%s: empty input", what);
    if (len > max)
        return ck_error_set(CK_ERR_DECODE, "%s: %zu bytes exceeds %zu", what, len, max);
    if ((rc = read_header(der, len, what, &hdr, &clen)) != 0)
        return rc;
    if (hdr + clen != len)
        return ck_error_set(CK_ERR_DECODE, "%s: %zu trailing bytes", what, len - hdr - clen);
    if (der[0] & 0x20)
        return scan_contents(der + hdr, clen, 1, what);
    return 0;
}

int
ck_asn1_msg_type(const uint8_t *der, size_t len)
{
    if (der == NULL || len == 0)
        return ck_error_set(CK_ERR_DECODE, "message: empty");
    /* Constructed APPLICATION class, low tag number form. */
    if ((der[0] & 0xe0) != 0x60 || (der[0] & 0x1f) == 0x1f)
        return ck_error_set(CK_ERR_DECODE, "message: outer tag 0x%02x is not [APPLICATION n]",
                            der[0]);
    return der[0] & 0x1f;
}

void
ck_asn1_free_der(uint8_t *der, size_t len)
{
    if (der != NULL)
        OPENSSL_clear_free(der, len);
}

/* ---- field validation ---------------------------------------------------------------------- */

#define CK_STR_(x) #x
#define CK_STR(x) CK_STR_(x)
#define MAND false
#define OPT true

int
ck_asn1_fail(const ck_vctx *c, const char *field, const char *why)
{
    return ck_error_set(CK_ERR_DECODE, "%s: %s %s", c->type, field, why);
}

int
ck_asn1_v_int32_range(const ck_vctx *c, const char *field, int64_t v, int64_t min, int64_t max)
{
    if (v < min || v > max)
        return ck_asn1_fail(c, field, "out of range");
    return 0;
}

static int
v_usec_opt(const ck_vctx *c, const char *field, const int32_t *p)
{
    return p == NULL ? 0 : ck_asn1_v_int32_range(c, field, *p, 0, 999999);
}

int
ck_asn1_v_time(const ck_vctx *c, const char *field, const ASN1_GENERALIZEDTIME *t, bool opt)
{
    int64_t secs;

    if (t == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if (t->type != V_ASN1_GENERALIZEDTIME ||
        ck_asn1_time_parse(t->data, (size_t)t->length, &secs) != 0)
        return ck_asn1_fail(c, field, "is not a KerberosTime YYYYMMDDHHMMSSZ");
    return 0;
}

int
ck_asn1_v_kstring(const ck_vctx *c, const char *field, const ASN1_GENERALSTRING *s, bool opt)
{
    if (s == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if (s->type != V_ASN1_GENERALSTRING || s->length < 0)
        return ck_asn1_fail(c, field, "is not a GeneralString");
    if (s->length > CK_ASN1_MAX_STRING)
        return ck_asn1_fail(c, field, "longer than " CK_STR(CK_ASN1_MAX_STRING) " bytes");
    /* Names and realms are compared and logged as C strings: an embedded NUL would let
     * "a\0b" pass for "a". */
    if (s->length > 0 && memchr(s->data, 0, (size_t)s->length) != NULL)
        return ck_asn1_fail(c, field, "contains a NUL byte");
    return 0;
}

int
ck_asn1_v_octets(const ck_vctx *c, const char *field, const ASN1_OCTET_STRING *o, bool opt)
{
    if (o == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    return ck_asn1_v_octets_max(c, field, o, opt, c->max_octets);
}

int
ck_asn1_v_octets_max(const ck_vctx *c, const char *field, const ASN1_OCTET_STRING *o,
                     bool opt, size_t max)
{
    if (o == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if (o->length < 0 || (size_t)o->length > max)
        return ck_error_set(CK_ERR_DECODE, "%s: %s longer than %zu bytes", c->type, field, max);
    return 0;
}

int
ck_asn1_v_flags(const ck_vctx *c, const char *field, const ASN1_BIT_STRING *b)
{
    if (b == NULL)
        return ck_asn1_fail(c, field, "missing");
    if (b->length < 0 || b->length > CK_ASN1_MAX_FLAG_BYTES)
        return ck_asn1_fail(c, field, "BIT STRING too long");
    /* Without BITS_LEFT, OpenSSL would trim trailing zero bits: MIT wants 32 bits. */
    if (c->encoding && !(b->flags & ASN1_STRING_FLAG_BITS_LEFT))
        return ck_asn1_fail(c, field, "not set with ck_asn1_flags_set");
    return 0;
}

int
ck_asn1_v_uint32ish(const ck_vctx *c, const char *field, const ASN1_INTEGER *n, bool opt)
{
    int64_t v;

    if (n == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    /* UInt32 on the wire, but MIT sends the signed 32-bit form: accept both. */
    if (!ASN1_INTEGER_get_int64(&v, n)) {
        ERR_clear_error();
        return ck_asn1_fail(c, field, "is not a 32-bit integer");
    }
    return ck_asn1_v_int32_range(c, field, v, INT32_MIN, UINT32_MAX);
}

int
ck_asn1_v_principal(const ck_vctx *c, const char *field, const CK_PRINCIPAL_NAME *p, bool opt)
{
    int n, rc;

    if (p == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    n = p->name_string != NULL ? sk_ASN1_GENERALSTRING_num(p->name_string) : 0;
    if (n < 1 || n > CK_ASN1_MAX_COMPONENTS)
        return ck_asn1_fail(c, field,
                            "has no or more than " CK_STR(CK_ASN1_MAX_COMPONENTS) " components");
    for (int i = 0; i < n; i++)
        if ((rc = ck_asn1_v_kstring(c, field, sk_ASN1_GENERALSTRING_value(p->name_string, i),
                                    MAND)) != 0)
            return rc;
    return 0;
}

static int
v_enc_data(const ck_vctx *c, const char *field, const CK_ENCRYPTED_DATA *e, bool opt)
{
    if (e == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    return ck_asn1_v_octets(c, field, e->cipher, MAND);
}

int
ck_asn1_v_key(const ck_vctx *c, const char *field, const CK_ENCRYPTION_KEY *k, bool opt)
{
    if (k == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    return ck_asn1_v_octets(c, field, k->keyvalue, MAND);
}

int
ck_asn1_v_checksum(const ck_vctx *c, const char *field, const CK_CHECKSUM *k, bool opt)
{
    if (k == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    return ck_asn1_v_octets(c, field, k->checksum, MAND);
}

static int
v_address(const ck_vctx *c, const char *field, const CK_HOST_ADDRESS *a, bool opt)
{
    if (a == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    return ck_asn1_v_octets(c, field, a->address, MAND);
}

static int
v_addresses(const ck_vctx *c, const char *field, const CK_HOST_ADDRESSES *a, bool opt)
{
    int rc;

    if (a == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if (sk_CK_HOST_ADDRESS_num(a) > CK_ASN1_MAX_ADDRESSES)
        return ck_asn1_fail(c, field, "has more than " CK_STR(CK_ASN1_MAX_ADDRESSES) " entries");
    for (int i = 0; i < sk_CK_HOST_ADDRESS_num(a); i++)
        if ((rc = v_address(c, field, sk_CK_HOST_ADDRESS_value(a, i), MAND)) != 0)
            return rc;
    return 0;
}

static int
v_authdata(const ck_vctx *c, const char *field, const CK_AUTHORIZATION_DATA *a, bool opt)
{
    int rc;

    if (a == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if (sk_CK_AD_ENTRY_num(a) > CK_ASN1_MAX_AD)
        return ck_asn1_fail(c, field, "has more than " CK_STR(CK_ASN1_MAX_AD) " entries");
    for (int i = 0; i < sk_CK_AD_ENTRY_num(a); i++) {
        const CK_AD_ENTRY *e = sk_CK_AD_ENTRY_value(a, i);
        if (e == NULL)
            return ck_asn1_fail(c, field, "has a NULL entry");
        if ((rc = ck_asn1_v_octets(c, field, e->ad_data, MAND)) != 0)
            return rc;
    }
    return 0;
}

int
ck_asn1_v_padata(const ck_vctx *c, const char *field, const CK_METHOD_DATA *m, bool opt)
{
    int rc;

    if (m == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if (sk_CK_PA_DATA_num(m) > CK_ASN1_MAX_PADATA)
        return ck_asn1_fail(c, field, "has more than " CK_STR(CK_ASN1_MAX_PADATA) " entries");
    for (int i = 0; i < sk_CK_PA_DATA_num(m); i++) {
        const CK_PA_DATA *pa = sk_CK_PA_DATA_value(m, i);
        if (pa == NULL)
            return ck_asn1_fail(c, field, "has a NULL entry");
        if ((rc = ck_asn1_v_octets_max(c, field, pa->padata_value, MAND, c->max_padata)) != 0)
            return rc;
    }
    return 0;
}

static int
v_vno(const ck_vctx *c, const char *field, int32_t v)
{
    return v == CK_KRB5_PVNO ? 0 : ck_asn1_fail(c, field, "is not 5");
}

static int
v_ticket(const ck_vctx *c, const char *field, const CK_TICKET *t, bool opt)
{
    int rc;

    if (t == NULL)
        return opt ? 0 : ck_asn1_fail(c, field, "missing");
    if ((rc = v_vno(c, "ticket.tkt-vno", t->tkt_vno)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "ticket.realm", t->realm, MAND)) != 0 ||
        (rc = ck_asn1_v_principal(c, "ticket.sname", t->sname, MAND)) != 0 ||
        (rc = v_enc_data(c, "ticket.enc-part", t->enc_part, MAND)) != 0)
        return rc;
    return 0;
}

static int
v_etype_info2(const ck_vctx *c, const CK_ETYPE_INFO2 *e)
{
    int n, rc;

    if (e == NULL)
        return ck_asn1_fail(c, "entries", "missing");
    n = sk_CK_ETYPE_INFO2_ENTRY_num(e);
    if (n < 1 || n > CK_ASN1_MAX_ETYPE_INFO)
        return ck_asn1_fail(c, "entries",
                            "count out of range (1.." CK_STR(CK_ASN1_MAX_ETYPE_INFO) ")");
    for (int i = 0; i < n; i++) {
        const CK_ETYPE_INFO2_ENTRY *x = sk_CK_ETYPE_INFO2_ENTRY_value(e, i);
        if (x == NULL)
            return ck_asn1_fail(c, "entry", "NULL");
        if ((rc = ck_asn1_v_kstring(c, "salt", x->salt, OPT)) != 0 ||
            (rc = ck_asn1_v_octets(c, "s2kparams", x->s2kparams, OPT)) != 0)
            return rc;
    }
    return 0;
}

static int
v_kdc_req_body(const ck_vctx *c, const CK_KDC_REQ_BODY *b)
{
    int n, rc;

    if (b == NULL)
        return ck_asn1_fail(c, "req-body", "missing");
    if ((rc = ck_asn1_v_flags(c, "kdc-options", b->kdc_options)) != 0 ||
        (rc = ck_asn1_v_principal(c, "cname", b->cname, OPT)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "realm", b->realm, MAND)) != 0 ||
        (rc = ck_asn1_v_principal(c, "sname", b->sname, OPT)) != 0 ||
        (rc = ck_asn1_v_time(c, "from", b->from, OPT)) != 0 ||
        (rc = ck_asn1_v_time(c, "till", b->till, MAND)) != 0 ||
        (rc = ck_asn1_v_time(c, "rtime", b->rtime, OPT)) != 0 ||
        (rc = ck_asn1_v_uint32ish(c, "nonce", b->nonce, MAND)) != 0 ||
        (rc = v_addresses(c, "addresses", b->addresses, OPT)) != 0 ||
        (rc = v_enc_data(c, "enc-authorization-data", b->enc_authorization_data, OPT)) != 0)
        return rc;
    n = b->etype != NULL ? sk_ASN1_INTEGER_num(b->etype) : 0;
    if (n < 1 || n > CK_ASN1_MAX_ETYPES)
        return ck_asn1_fail(c, "etype", "count out of range (1.." CK_STR(CK_ASN1_MAX_ETYPES) ")");
    for (int i = 0; i < n; i++) {
        int64_t v;
        if (!ASN1_INTEGER_get_int64(&v, sk_ASN1_INTEGER_value(b->etype, i))) {
            ERR_clear_error();
            return ck_asn1_fail(c, "etype", "entry is not an Int32");
        }
        if ((rc = ck_asn1_v_int32_range(c, "etype", v, INT32_MIN, INT32_MAX)) != 0)
            return rc;
    }
    if (b->additional_tickets != NULL) {
        n = sk_CK_TICKET_num(b->additional_tickets);
        if (n > CK_ASN1_MAX_TICKETS)
            return ck_asn1_fail(c, "additional-tickets", "more than " CK_STR(CK_ASN1_MAX_TICKETS));
        for (int i = 0; i < n; i++)
            if ((rc = v_ticket(c, "additional-tickets",
                               sk_CK_TICKET_value(b->additional_tickets, i), MAND)) != 0)
                return rc;
    }
    return 0;
}

static int
v_kdc_req(const ck_vctx *c, const CK_KDC_REQ *r, int tag)
{
    int rc;

    if ((rc = v_vno(c, "pvno", r->pvno)) != 0)
        return rc;
    if (r->msg_type != tag)
        return ck_asn1_fail(c, "msg-type", "does not match the APPLICATION tag");
    if ((rc = ck_asn1_v_padata(c, "padata", r->padata, OPT)) != 0)
        return rc;
    return v_kdc_req_body(c, r->req_body);
}

static int
v_kdc_rep(const ck_vctx *c, const CK_KDC_REP *r, int tag)
{
    int rc;

    if ((rc = v_vno(c, "pvno", r->pvno)) != 0)
        return rc;
    if (r->msg_type != tag)
        return ck_asn1_fail(c, "msg-type", "does not match the APPLICATION tag");
    if ((rc = ck_asn1_v_padata(c, "padata", r->padata, OPT)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "crealm", r->crealm, MAND)) != 0 ||
        (rc = ck_asn1_v_principal(c, "cname", r->cname, MAND)) != 0 ||
        (rc = v_ticket(c, "ticket", r->ticket, MAND)) != 0 ||
        (rc = v_enc_data(c, "enc-part", r->enc_part, MAND)) != 0)
        return rc;
    return 0;
}

static int
v_enc_kdc_rep_part(const ck_vctx *c, const CK_ENC_KDC_REP_PART *e)
{
    int n, rc;

    if ((rc = ck_asn1_v_key(c, "key", e->key, MAND)) != 0)
        return rc;
    if (e->last_req == NULL)
        return ck_asn1_fail(c, "last-req", "missing");
    n = sk_CK_LAST_REQ_ENTRY_num(e->last_req);
    if (n > CK_ASN1_MAX_LAST_REQ)
        return ck_asn1_fail(c, "last-req",
                            "has more than " CK_STR(CK_ASN1_MAX_LAST_REQ) " entries");
    for (int i = 0; i < n; i++) {
        const CK_LAST_REQ_ENTRY *lr = sk_CK_LAST_REQ_ENTRY_value(e->last_req, i);
        if (lr == NULL)
            return ck_asn1_fail(c, "last-req", "has a NULL entry");
        if ((rc = ck_asn1_v_time(c, "last-req.lr-value", lr->lr_value, MAND)) != 0)
            return rc;
    }
    if ((rc = ck_asn1_v_uint32ish(c, "nonce", e->nonce, MAND)) != 0 ||
        (rc = ck_asn1_v_time(c, "key-expiration", e->key_expiration, OPT)) != 0 ||
        (rc = ck_asn1_v_flags(c, "flags", e->flags)) != 0 ||
        (rc = ck_asn1_v_time(c, "authtime", e->authtime, MAND)) != 0 ||
        (rc = ck_asn1_v_time(c, "starttime", e->starttime, OPT)) != 0 ||
        (rc = ck_asn1_v_time(c, "endtime", e->endtime, MAND)) != 0 ||
        (rc = ck_asn1_v_time(c, "renew-till", e->renew_till, OPT)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "srealm", e->srealm, MAND)) != 0 ||
        (rc = ck_asn1_v_principal(c, "sname", e->sname, MAND)) != 0 ||
        (rc = v_addresses(c, "caddr", e->caddr, OPT)) != 0 ||
        (rc = ck_asn1_v_padata(c, "encrypted-pa-data", e->encrypted_pa_data, OPT)) != 0)
        return rc;
    return 0;
}

static int
v_enc_ticket_part(const ck_vctx *c, const CK_ENC_TICKET_PART *e)
{
    int rc;

    if ((rc = ck_asn1_v_flags(c, "flags", e->flags)) != 0 ||
        (rc = ck_asn1_v_key(c, "key", e->key, MAND)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "crealm", e->crealm, MAND)) != 0 ||
        (rc = ck_asn1_v_principal(c, "cname", e->cname, MAND)) != 0)
        return rc;
    if (e->transited == NULL)
        return ck_asn1_fail(c, "transited", "missing");
    if ((rc = ck_asn1_v_octets(c, "transited.contents", e->transited->contents, MAND)) != 0 ||
        (rc = ck_asn1_v_time(c, "authtime", e->authtime, MAND)) != 0 ||
        (rc = ck_asn1_v_time(c, "starttime", e->starttime, OPT)) != 0 ||
        (rc = ck_asn1_v_time(c, "endtime", e->endtime, MAND)) != 0 ||
        (rc = ck_asn1_v_time(c, "renew-till", e->renew_till, OPT)) != 0 ||
        (rc = v_addresses(c, "caddr", e->caddr, OPT)) != 0 ||
        (rc = v_authdata(c, "authorization-data", e->authorization_data, OPT)) != 0)
        return rc;
    return 0;
}

static int
v_authenticator(const ck_vctx *c, const CK_AUTHENTICATOR *a)
{
    int rc;

    if ((rc = v_vno(c, "authenticator-vno", a->authenticator_vno)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "crealm", a->crealm, MAND)) != 0 ||
        (rc = ck_asn1_v_principal(c, "cname", a->cname, MAND)) != 0 ||
        (rc = ck_asn1_v_checksum(c, "cksum", a->cksum, OPT)) != 0 ||
        (rc = ck_asn1_v_int32_range(c, "cusec", a->cusec, 0, 999999)) != 0 ||
        (rc = ck_asn1_v_time(c, "ctime", a->ctime, MAND)) != 0 ||
        (rc = ck_asn1_v_key(c, "subkey", a->subkey, OPT)) != 0 ||
        (rc = ck_asn1_v_uint32ish(c, "seq-number", a->seq_number, OPT)) != 0 ||
        (rc = v_authdata(c, "authorization-data", a->authorization_data, OPT)) != 0)
        return rc;
    return 0;
}

static int
v_ap_req(const ck_vctx *c, const CK_AP_REQ *a)
{
    int rc;

    if ((rc = v_vno(c, "pvno", a->pvno)) != 0)
        return rc;
    if (a->msg_type != CK_KRB_AP_REQ)
        return ck_asn1_fail(c, "msg-type", "is not 14");
    if ((rc = ck_asn1_v_flags(c, "ap-options", a->ap_options)) != 0 ||
        (rc = v_ticket(c, "ticket", a->ticket, MAND)) != 0 ||
        (rc = v_enc_data(c, "authenticator", a->authenticator, MAND)) != 0)
        return rc;
    return 0;
}

static int
v_ap_rep(const ck_vctx *c, const CK_AP_REP *a)
{
    int rc;

    if ((rc = v_vno(c, "pvno", a->pvno)) != 0)
        return rc;
    if (a->msg_type != CK_KRB_AP_REP)
        return ck_asn1_fail(c, "msg-type", "is not 15");
    return v_enc_data(c, "enc-part", a->enc_part, MAND);
}

static int
v_enc_ap_rep_part(const ck_vctx *c, const CK_ENC_AP_REP_PART *a)
{
    int rc;

    if ((rc = ck_asn1_v_time(c, "ctime", a->ctime, MAND)) != 0 ||
        (rc = ck_asn1_v_int32_range(c, "cusec", a->cusec, 0, 999999)) != 0 ||
        (rc = ck_asn1_v_key(c, "subkey", a->subkey, OPT)) != 0 ||
        (rc = ck_asn1_v_uint32ish(c, "seq-number", a->seq_number, OPT)) != 0)
        return rc;
    return 0;
}

/* KRB-SAFE-BODY and EncKrbPrivPart share their field list. */
static int
v_safe_fields(const ck_vctx *c, const ASN1_OCTET_STRING *user_data,
              const ASN1_GENERALIZEDTIME *timestamp, const int32_t *usec,
              const ASN1_INTEGER *seq, const CK_HOST_ADDRESS *s, const CK_HOST_ADDRESS *r)
{
    int rc;

    if ((rc = ck_asn1_v_octets(c, "user-data", user_data, MAND)) != 0 ||
        (rc = ck_asn1_v_time(c, "timestamp", timestamp, OPT)) != 0 ||
        (rc = v_usec_opt(c, "usec", usec)) != 0 ||
        (rc = ck_asn1_v_uint32ish(c, "seq-number", seq, OPT)) != 0 ||
        (rc = v_address(c, "s-address", s, MAND)) != 0 ||
        (rc = v_address(c, "r-address", r, OPT)) != 0)
        return rc;
    return 0;
}

static int
v_krb_safe_body(const ck_vctx *c, const CK_KRB_SAFE_BODY *b)
{
    if (b == NULL)
        return ck_asn1_fail(c, "safe-body", "missing");
    return v_safe_fields(c, b->user_data, b->timestamp, b->usec, b->seq_number, b->s_address,
                         b->r_address);
}

static int
v_krb_safe(const ck_vctx *c, const CK_KRB_SAFE_MSG *s)
{
    int rc;

    if ((rc = v_vno(c, "pvno", s->pvno)) != 0)
        return rc;
    if (s->msg_type != CK_KRB_SAFE)
        return ck_asn1_fail(c, "msg-type", "is not 20");
    if ((rc = v_krb_safe_body(c, s->safe_body)) != 0)
        return rc;
    return ck_asn1_v_checksum(c, "cksum", s->cksum, MAND);
}

static int
v_krb_priv(const ck_vctx *c, const CK_KRB_PRIV_MSG *p)
{
    int rc;

    if ((rc = v_vno(c, "pvno", p->pvno)) != 0)
        return rc;
    if (p->msg_type != CK_KRB_PRIV)
        return ck_asn1_fail(c, "msg-type", "is not 21");
    return v_enc_data(c, "enc-part", p->enc_part, MAND);
}

static int
v_enc_krb_priv_part(const ck_vctx *c, const CK_ENC_KRB_PRIV_PART *p)
{
    return v_safe_fields(c, p->user_data, p->timestamp, p->usec, p->seq_number, p->s_address,
                         p->r_address);
}

static int
v_krb_error(const ck_vctx *c, const CK_KRB_ERROR_MSG *e)
{
    int rc;

    if ((rc = v_vno(c, "pvno", e->pvno)) != 0)
        return rc;
    if (e->msg_type != CK_KRB_ERROR)
        return ck_asn1_fail(c, "msg-type", "is not 30");
    if ((rc = ck_asn1_v_time(c, "ctime", e->ctime, OPT)) != 0 ||
        (rc = v_usec_opt(c, "cusec", e->cusec)) != 0 ||
        (rc = ck_asn1_v_time(c, "stime", e->stime, MAND)) != 0 ||
        (rc = ck_asn1_v_int32_range(c, "susec", e->susec, 0, 999999)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "crealm", e->crealm, OPT)) != 0 ||
        (rc = ck_asn1_v_principal(c, "cname", e->cname, OPT)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "realm", e->realm, MAND)) != 0 ||
        (rc = ck_asn1_v_principal(c, "sname", e->sname, MAND)) != 0 ||
        (rc = ck_asn1_v_kstring(c, "e-text", e->e_text, OPT)) != 0 ||
        (rc = ck_asn1_v_octets(c, "e-data", e->e_data, OPT)) != 0)
        return rc;
    return 0;
}

/* ---- generic decode / encode --------------------------------------------------------------- */

const struct ck_asn1_limits ck_asn1_limits_default = {
    CK_ASN1_MAX_MSG, CK_ASN1_MAX_OCTETS, CK_ASN1_MAX_OCTETS,
};
/* AS-REQ / AS-REP: PKINIT padata (certificate chains) in padata-value only. */
static const struct ck_asn1_limits limits_as = {
    CK_ASN1_MAX_AS_MSG, CK_ASN1_MAX_OCTETS, CK_ASN1_MAX_PKINIT_PADATA,
};

int
ck_asn1_decode_item(const uint8_t *der, size_t len, const ASN1_ITEM *it, const char *name,
                    const struct ck_asn1_limits *lim, ck_asn1_validate_fn check, int tag,
                    void **out)
{
    ck_vctx c = {name, false, lim->max_octets, lim->max_padata};
    const unsigned char *p = der;
    ASN1_VALUE *v = NULL;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "%s: no output", name);
    *out = NULL;
    if ((rc = ck_asn1_der_scan_max(der, len, name, lim->max_msg)) != 0)
        return rc;
    if ((v = ASN1_item_d2i(NULL, &p, (long)len, it)) == NULL)
        return ck_error_set_ssl(CK_ERR_DECODE, "%s: malformed", name);
    if (p != der + len) {
        rc = ck_error_set(CK_ERR_DECODE, "%s: %zu trailing bytes", name, (size_t)(der + len - p));
        goto out;
    }
    if ((rc = check(&c, v, tag)) != 0)
        goto out;
    *out = v;
    v = NULL;
out:
    ASN1_item_free(v, it);
    return rc;
}

int
ck_asn1_encode_item(const void *v, const ASN1_ITEM *it, const char *name,
                    const struct ck_asn1_limits *lim, ck_asn1_validate_fn check, int tag,
                    uint8_t **der, size_t *len)
{
    ck_vctx c = {name, true, lim->max_octets, lim->max_padata};
    unsigned char *out = NULL;
    int n, rc;

    if (der == NULL || len == NULL)
        return ck_error_set(CK_ERR_INVAL, "%s: no output", name);
    *der = NULL;
    *len = 0;
    if (v == NULL)
        return ck_error_set(CK_ERR_INVAL, "%s: nothing to encode", name);
    if ((rc = check(&c, v, tag)) != 0) {
        char msg[256];
        ck_strlcpy(msg, ck_error_context(), sizeof(msg));
        return ck_error_set(CK_ERR_ENCODE, "%s", msg);
    }
    n = ASN1_item_i2d((const ASN1_VALUE *)v, &out, it);
    if (n <= 0 || out == NULL)
        return ck_error_set_ssl(CK_ERR_ENCODE, "%s: i2d failed", name);
    if ((size_t)n > lim->max_msg) {
        OPENSSL_clear_free(out, (size_t)n);
        return ck_error_set(CK_ERR_ENCODE, "%s: %d bytes exceeds %zu", name, n, lim->max_msg);
    }
    *der = out;
    *len = (size_t)n;
    return 0;
}

/* Adapters from the typed validators to validate_fn. */
#define CK_VWRAP(fn, T)                                                                     \
    static int w_##fn(const ck_vctx *c, const void *v, int tag)                         \
    {                                                                                       \
        (void)tag;                                                                          \
        return v_##fn(c, (const T *)v);                                                     \
    }
#define CK_VWRAP_FIELD(fn, T, label)                                                        \
    static int w_##fn(const ck_vctx *c, const void *v, int tag)                         \
    {                                                                                       \
        (void)tag;                                                                          \
        return v_##fn(c, label, (const T *)v, MAND);                                        \
    }
#define CK_VWRAP_FIELD_X(fn, T, label)                                                      \
    static int w_##fn(const ck_vctx *c, const void *v, int tag)                 \
    {                                                                                       \
        (void)tag;                                                                          \
        return ck_asn1_v_##fn(c, label, (const T *)v, MAND);                                \
    }

CK_VWRAP(enc_kdc_rep_part, CK_ENC_KDC_REP_PART)
CK_VWRAP(enc_ticket_part, CK_ENC_TICKET_PART)
CK_VWRAP(authenticator, CK_AUTHENTICATOR)
CK_VWRAP(ap_req, CK_AP_REQ)
CK_VWRAP(ap_rep, CK_AP_REP)
CK_VWRAP(enc_ap_rep_part, CK_ENC_AP_REP_PART)
CK_VWRAP(krb_safe, CK_KRB_SAFE_MSG)
CK_VWRAP(krb_priv, CK_KRB_PRIV_MSG)
CK_VWRAP(enc_krb_priv_part, CK_ENC_KRB_PRIV_PART)
CK_VWRAP(krb_error, CK_KRB_ERROR_MSG)
CK_VWRAP(kdc_req_body, CK_KDC_REQ_BODY)
CK_VWRAP(krb_safe_body, CK_KRB_SAFE_BODY)
CK_VWRAP(etype_info2, CK_ETYPE_INFO2)
CK_VWRAP_FIELD(ticket, CK_TICKET, "Ticket")
CK_VWRAP_FIELD_X(padata, CK_METHOD_DATA, "entries")
CK_VWRAP_FIELD(authdata, CK_AUTHORIZATION_DATA, "entries")
CK_VWRAP_FIELD_X(principal, CK_PRINCIPAL_NAME, "name-string")
CK_VWRAP_FIELD_X(key, CK_ENCRYPTION_KEY, "keyvalue")
CK_VWRAP_FIELD_X(checksum, CK_CHECKSUM, "checksum")
CK_VWRAP_FIELD(addresses, CK_HOST_ADDRESSES, "entries")
CK_VWRAP_FIELD(enc_data, CK_ENCRYPTED_DATA, "cipher")

static int
w_kdc_req(const ck_vctx *c, const void *v, int tag)
{
    return v_kdc_req(c, (const CK_KDC_REQ *)v, tag);
}

static int
w_kdc_rep(const ck_vctx *c, const void *v, int tag)
{
    return v_kdc_rep(c, (const CK_KDC_REP *)v, tag);
}

static int
w_pa_enc_ts_enc(const ck_vctx *c, const void *v, int tag)
{
    const CK_PA_ENC_TS_ENC *ts = v;
    int rc;

    (void)tag;
    if ((rc = ck_asn1_v_time(c, "patimestamp", ts->patimestamp, MAND)) != 0)
        return rc;
    return v_usec_opt(c, "pausec", ts->pausec);
}

#define CK_CODEC_LIM(name, T, item, label, wfn, tag, lim)                                   \
    int ck_asn1_##name##_decode(const uint8_t *der, size_t len, T **out)                    \
    {                                                                                       \
        void *v = NULL;                                                                     \
        int rc;                                                                             \
        if (out == NULL)                                                                    \
            return ck_error_set(CK_ERR_INVAL, "%s: no output", label);                      \
        rc = ck_asn1_decode_item(der, len, ASN1_ITEM_rptr(item), label, lim, wfn, tag, &v); \
        *out = v;                                                                           \
        return rc;                                                                          \
    }                                                                                       \
    int ck_asn1_##name##_encode(const T *v, uint8_t **der, size_t *len)                     \
    {                                                                                       \
        return ck_asn1_encode_item(v, ASN1_ITEM_rptr(item), label, lim, wfn, tag, der, len); \
    }
#define CK_CODEC(name, T, item, label, wfn, tag)                                            \
    CK_CODEC_LIM(name, T, item, label, wfn, tag, &ck_asn1_limits_default)

CK_CODEC_LIM(as_req, CK_AS_REQ, CK_AS_REQ, "AS-REQ", w_kdc_req, CK_KRB_AS_REQ, &limits_as)
CK_CODEC(tgs_req, CK_TGS_REQ, CK_TGS_REQ, "TGS-REQ", w_kdc_req, CK_KRB_TGS_REQ)
CK_CODEC_LIM(as_rep, CK_AS_REP, CK_AS_REP, "AS-REP", w_kdc_rep, CK_KRB_AS_REP, &limits_as)
CK_CODEC(tgs_rep, CK_TGS_REP, CK_TGS_REP, "TGS-REP", w_kdc_rep, CK_KRB_TGS_REP)
CK_CODEC(enc_as_rep_part, CK_ENC_AS_REP_PART, CK_ENC_AS_REP_PART, "EncASRepPart",
         w_enc_kdc_rep_part, 0)
CK_CODEC(enc_tgs_rep_part, CK_ENC_TGS_REP_PART, CK_ENC_TGS_REP_PART, "EncTGSRepPart",
         w_enc_kdc_rep_part, 0)
CK_CODEC(ticket, CK_TICKET, CK_TICKET, "Ticket", w_ticket, 0)
CK_CODEC(enc_ticket_part, CK_ENC_TICKET_PART, CK_ENC_TICKET_PART, "EncTicketPart",
         w_enc_ticket_part, 0)
CK_CODEC(authenticator, CK_AUTHENTICATOR, CK_AUTHENTICATOR, "Authenticator", w_authenticator, 0)
CK_CODEC(ap_req, CK_AP_REQ, CK_AP_REQ, "AP-REQ", w_ap_req, 0)
CK_CODEC(ap_rep, CK_AP_REP, CK_AP_REP, "AP-REP", w_ap_rep, 0)
CK_CODEC(enc_ap_rep_part, CK_ENC_AP_REP_PART, CK_ENC_AP_REP_PART, "EncAPRepPart",
         w_enc_ap_rep_part, 0)
CK_CODEC(krb_safe, CK_KRB_SAFE_MSG, CK_KRB_SAFE_MSG, "KRB-SAFE", w_krb_safe, 0)
CK_CODEC(krb_priv, CK_KRB_PRIV_MSG, CK_KRB_PRIV_MSG, "KRB-PRIV", w_krb_priv, 0)
CK_CODEC(enc_krb_priv_part, CK_ENC_KRB_PRIV_PART, CK_ENC_KRB_PRIV_PART, "EncKrbPrivPart",
         w_enc_krb_priv_part, 0)
CK_CODEC(krb_error, CK_KRB_ERROR_MSG, CK_KRB_ERROR_MSG, "KRB-ERROR", w_krb_error, 0)
CK_CODEC(kdc_req_body, CK_KDC_REQ_BODY, CK_KDC_REQ_BODY, "KDC-REQ-BODY", w_kdc_req_body, 0)
CK_CODEC(krb_safe_body, CK_KRB_SAFE_BODY, CK_KRB_SAFE_BODY, "KRB-SAFE-BODY", w_krb_safe_body, 0)
CK_CODEC(method_data, CK_METHOD_DATA, CK_METHOD_DATA, "METHOD-DATA", w_padata, 0)
CK_CODEC(pa_enc_ts_enc, CK_PA_ENC_TS_ENC, CK_PA_ENC_TS_ENC, "PA-ENC-TS-ENC", w_pa_enc_ts_enc, 0)
CK_CODEC(etype_info2, CK_ETYPE_INFO2, CK_ETYPE_INFO2, "ETYPE-INFO2", w_etype_info2, 0)
CK_CODEC(authorization_data, CK_AUTHORIZATION_DATA, CK_AUTHORIZATION_DATA, "AuthorizationData",
         w_authdata, 0)
CK_CODEC(principal_name, CK_PRINCIPAL_NAME, CK_PRINCIPAL_NAME, "PrincipalName", w_principal, 0)
CK_CODEC(encryption_key, CK_ENCRYPTION_KEY, CK_ENCRYPTION_KEY, "EncryptionKey", w_key, 0)
CK_CODEC(checksum, CK_CHECKSUM, CK_CHECKSUM, "Checksum", w_checksum, 0)
CK_CODEC(host_addresses, CK_HOST_ADDRESSES, CK_HOST_ADDRESSES, "HostAddresses", w_addresses, 0)
CK_CODEC(encrypted_data, CK_ENCRYPTED_DATA, CK_ENCRYPTED_DATA, "EncryptedData", w_enc_data, 0)

int
ck_asn1_enc_kdc_rep_part_decode(const uint8_t *der, size_t len, CK_ENC_KDC_REP_PART **out,
                                int *app_tag)
{
    int tag = ck_asn1_msg_type(der, len);
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "EncKDCRepPart: no output");
    *out = NULL;
    if (tag == CK_KRB_ENC_AS_REP_PART)
        rc = ck_asn1_enc_as_rep_part_decode(der, len, out);
    else if (tag == CK_KRB_ENC_TGS_REP_PART)
        rc = ck_asn1_enc_tgs_rep_part_decode(der, len, out);
    else
        return ck_error_set(CK_ERR_DECODE, "EncKDCRepPart: outer tag is not [APPLICATION 25/26]");
    if (rc == 0 && app_tag != NULL)
        *app_tag = tag;
    return rc;
}

int
ck_asn1_kdc_req_decode(const uint8_t *der, size_t len, CK_KDC_REQ **out, int *app_tag)
{
    int tag = ck_asn1_msg_type(der, len);
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "KDC-REQ: no output");
    *out = NULL;
    if (tag == CK_KRB_AS_REQ)
        rc = ck_asn1_as_req_decode(der, len, out);
    else if (tag == CK_KRB_TGS_REQ)
        rc = ck_asn1_tgs_req_decode(der, len, out);
    else
        return ck_error_set(CK_ERR_DECODE, "KDC-REQ: outer tag is not [APPLICATION 10/12]");
    if (rc == 0 && app_tag != NULL)
        *app_tag = tag;
    return rc;
}

int
ck_asn1_kdc_rep_decode(const uint8_t *der, size_t len, CK_KDC_REP **out, int *app_tag)
{
    int tag = ck_asn1_msg_type(der, len);
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "KDC-REP: no output");
    *out = NULL;
    if (tag == CK_KRB_AS_REP)
        rc = ck_asn1_as_rep_decode(der, len, out);
    else if (tag == CK_KRB_TGS_REP)
        rc = ck_asn1_tgs_rep_decode(der, len, out);
    else
        return ck_error_set(CK_ERR_DECODE, "KDC-REP: outer tag is not [APPLICATION 11/13]");
    if (rc == 0 && app_tag != NULL)
        *app_tag = tag;
    return rc;
}

/* Returns the cached encoding of a SEQUENCE declared with ASN1_SEQUENCE_enc, filling the cache
 * from a fresh encoding when it is empty or stale. */
static int
cached_der(ASN1_VALUE *v, ASN1_ENCODING *enc, const ASN1_ITEM *it, const char *name,
           const uint8_t **der, size_t *len)
{
    unsigned char *out = NULL;
    int n;

    if (enc->enc == NULL || enc->modified) {
        enc->modified = 1; /* make i2d encode the fields instead of replaying the cache */
        n = ASN1_item_i2d(v, &out, it);
        if (n <= 0 || out == NULL)
            return ck_error_set_ssl(CK_ERR_ENCODE, "%s: i2d failed", name);
        OPENSSL_free(enc->enc);
        enc->enc = out;
        enc->len = n;
        enc->modified = 0;
    }
    *der = enc->enc;
    *len = (size_t)enc->len;
    return 0;
}

int
ck_asn1_kdc_req_body_der(const CK_KDC_REQ *req, const uint8_t **der, size_t *len)
{
    CK_KDC_REQ_BODY *b;

    if (req == NULL || req->req_body == NULL || der == NULL || len == NULL)
        return ck_error_set(CK_ERR_INVAL, "KDC-REQ-BODY: missing");
    b = req->req_body;
    return cached_der((ASN1_VALUE *)b, &b->enc, ASN1_ITEM_rptr(CK_KDC_REQ_BODY), "KDC-REQ-BODY",
                      der, len);
}

void
ck_asn1_kdc_req_body_modified(CK_KDC_REQ_BODY *body)
{
    if (body != NULL)
        body->enc.modified = 1;
}

int
ck_asn1_ticket_der(CK_TICKET *ticket, const uint8_t **der, size_t *len)
{
    if (ticket == NULL || der == NULL || len == NULL)
        return ck_error_set(CK_ERR_INVAL, "Ticket: missing");
    /* The cache holds the inner SEQUENCE; the [APPLICATION 1] header is added by the item. */
    return cached_der((ASN1_VALUE *)ticket, &ticket->enc, ASN1_ITEM_rptr(CK_TICKET_SEQ),
                      "Ticket", der, len);
}

void
ck_asn1_ticket_modified(CK_TICKET *ticket)
{
    if (ticket != NULL)
        ticket->enc.modified = 1;
}

int
ck_asn1_principal_der(CK_PRINCIPAL_NAME *name, const uint8_t **der, size_t *len)
{
    if (name == NULL || der == NULL || len == NULL)
        return ck_error_set(CK_ERR_INVAL, "PrincipalName: missing");
    return cached_der((ASN1_VALUE *)name, &name->enc, ASN1_ITEM_rptr(CK_PRINCIPAL_NAME),
                      "PrincipalName", der, len);
}

void
ck_asn1_principal_modified(CK_PRINCIPAL_NAME *name)
{
    if (name != NULL)
        name->enc.modified = 1;
}

int
ck_asn1_krb_safe_body_der(const CK_KRB_SAFE_MSG *safe, const uint8_t **der, size_t *len)
{
    CK_KRB_SAFE_BODY *b;

    if (safe == NULL || safe->safe_body == NULL || der == NULL || len == NULL)
        return ck_error_set(CK_ERR_INVAL, "KRB-SAFE-BODY: missing");
    b = safe->safe_body;
    return cached_der((ASN1_VALUE *)b, &b->enc, ASN1_ITEM_rptr(CK_KRB_SAFE_BODY), "KRB-SAFE-BODY",
                      der, len);
}

void
ck_asn1_krb_safe_body_modified(CK_KRB_SAFE_BODY *body)
{
    if (body != NULL)
        body->enc.modified = 1;
}
