/* MTA-FQDN (prov_wire.h, docs/PROTOCOL.md "MTA-FQDN"): the KRB-SAFE user-data codec, the
 * datagram split, the provisioning server's answer and the KDC's request and reply.
 *
 * Decisions:
 *   - The only client is the KDC: it mints the ticket itself, with client krbtgt/REALM@REALM (a
 *     name no TGS can put in a ticket without the krbtgt key), and the server refuses any other
 *     client. A user who obtained a ticket for mtafqdn/<host> through the TGS learns nothing.
 *   - The request's KRB-SAFE is keyed with the authenticator's subkey (required) and carries
 *     its sequence number; the reply's with the same subkey and the AP-REP's sequence number,
 *     sender addresses directional 0 / 1 (a reflected request never reads as a reply). A
 *     replayed datagram is caught by the AP-REQ replay cache.
 *   - Until the AP-REQ verifies, the server answers a bare KRB-ERROR (Wireshark then shows an
 *     error datagram); after, problems with the request are Error Replies (type 3) inside a
 *     KRB-SAFE, so the KDC can trust their code. Garbage gets no answer at all. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/apenv.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/nametypes.h"
#include "cablekey/prov_wire.h"
#include "cablekey/safepriv.h"
#include "cablekey/util.h"

#define HDR_LEN 6
#define REQ_LEN (HDR_LEN + 6 + 20 + 4)
#define PAYLOAD_MAX (HDR_LEN + CK_MTAFQDN_FQDN_MAX + 4 + CK_MTAFQDN_TEXT_MAX)
#define TAG_AP_REQ 0x6e
#define TAG_AP_REP 0x6f
#define TAG_KRB_SAFE 0x74
#define TAG_KRB_ERROR 0x7e

bool
ck_mtafqdn_fqdn_ok(const char *fqdn)
{
    size_t n, label = 0;

    if (fqdn == NULL)
        return false;
    n = strnlen(fqdn, CK_MTAFQDN_FQDN_MAX + 1);
    if (n == 0 || n > CK_MTAFQDN_FQDN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = fqdn[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-') ||
            ++label > 63)
            return false;
    }
    return label > 0;
}

static bool
text_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] >= 0x7f)
            return false;
    return true;
}

int
ck_mtafqdn_payload_encode(const ck_mtafqdn_msg *m, uint8_t **out, size_t *out_len)
{
    ck_writer w;
    size_t n;
    int rc;

    *out = NULL;
    *out_len = 0;
    ck_writer_init(&w, PAYLOAD_MAX, false);
    if ((rc = ck_writer_u8(&w, m->type)) != 0 || (rc = ck_writer_u32be(&w, m->enterprise)) != 0 ||
        (rc = ck_writer_u8(&w, m->version)) != 0)
        goto out;
    switch (m->type) {
    case CK_MTAFQDN_REQUEST:
        if ((rc = ck_writer_bytes(&w, m->mac, sizeof(m->mac))) != 0 ||
            (rc = ck_writer_bytes(&w, m->spki_sha1, sizeof(m->spki_sha1))) != 0 ||
            (rc = ck_writer_u32be(&w, m->mfg_revoked)) != 0)
            goto out;
        break;
    case CK_MTAFQDN_REPLY:
        if (!ck_mtafqdn_fqdn_ok(m->fqdn)) {
            rc = ck_error_set(CK_ERR_INVAL, "MTA-FQDN reply: bad FQDN");
            goto out;
        }
        if ((rc = ck_writer_bytes(&w, m->fqdn, strlen(m->fqdn))) != 0 ||
            (rc = ck_writer_bytes(&w, m->ipv4, sizeof(m->ipv4))) != 0)
            goto out;
        break;
    case CK_MTAFQDN_ERROR:
        n = strnlen(m->text, sizeof(m->text));
        if (n > CK_MTAFQDN_TEXT_MAX || !text_ok((const uint8_t *)m->text, n)) {
            rc = ck_error_set(CK_ERR_INVAL, "MTA-FQDN error: text not printable ASCII <= %d",
                              CK_MTAFQDN_TEXT_MAX);
            goto out;
        }
        if ((rc = ck_writer_u32be(&w, m->error)) != 0 ||
            (rc = ck_writer_bytes(&w, m->text, n)) != 0)
            goto out;
        break;
    default:
        rc = ck_error_set(CK_ERR_INVAL, "MTA-FQDN: message type %u", (unsigned)m->type);
        goto out;
    }
    *out = ck_writer_take(&w, out_len);
out:
    ck_writer_free(&w);
    return rc;
}

int
ck_mtafqdn_payload_decode(const uint8_t *data, size_t len, ck_mtafqdn_msg *out)
{
    ck_reader r;
    const uint8_t *p;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (data == NULL || len < HDR_LEN)
        return ck_error_set(CK_ERR_DECODE, "MTA-FQDN payload: %zu bytes", len);
    ck_reader_init(&r, data, len);
    (void)ck_reader_u8(&r, &out->type);
    (void)ck_reader_u32be(&r, &out->enterprise);
    (void)ck_reader_u8(&r, &out->version);
    if (out->enterprise != CK_MTAFQDN_ENTERPRISE)
        return ck_error_set(CK_ERR_UNSUPPORTED, "MTA-FQDN payload: enterprise number %u",
                            (unsigned)out->enterprise);
    if (out->version != CK_MTAFQDN_VERSION)
        return ck_error_set(CK_ERR_UNSUPPORTED, "MTA-FQDN payload: protocol version %u",
                            (unsigned)out->version);
    n = ck_reader_remaining(&r);
    switch (out->type) {
    case CK_MTAFQDN_REQUEST:
        if (len != REQ_LEN)
            return ck_error_set(CK_ERR_DECODE, "MTA-FQDN request: %zu bytes, not %d", len,
                                REQ_LEN);
        (void)ck_reader_copy(&r, out->mac, sizeof(out->mac));
        (void)ck_reader_copy(&r, out->spki_sha1, sizeof(out->spki_sha1));
        (void)ck_reader_u32be(&r, &out->mfg_revoked);
        return 0;
    case CK_MTAFQDN_REPLY:
        /* No length field: the FQDN runs to the IPv4 address in the last 4 bytes. */
        if (n < 1 + 4 || n - 4 > CK_MTAFQDN_FQDN_MAX)
            return ck_error_set(CK_ERR_DECODE, "MTA-FQDN reply: %zu bytes", len);
        (void)ck_reader_bytes(&r, n - 4, &p);
        memcpy(out->fqdn, p, n - 4);
        out->fqdn[n - 4] = '\0';
        (void)ck_reader_copy(&r, out->ipv4, sizeof(out->ipv4));
        if (strlen(out->fqdn) != n - 4 || !ck_mtafqdn_fqdn_ok(out->fqdn))
            return ck_error_set(CK_ERR_DECODE, "MTA-FQDN reply: bad FQDN");
        return 0;
    case CK_MTAFQDN_ERROR:
        if (n < 4 || n - 4 > CK_MTAFQDN_TEXT_MAX)
            return ck_error_set(CK_ERR_DECODE, "MTA-FQDN error reply: %zu bytes", len);
        (void)ck_reader_u32be(&r, &out->error);
        (void)ck_reader_bytes(&r, n - 4, &p);
        if (!text_ok(p, n - 4))
            return ck_error_set(CK_ERR_DECODE, "MTA-FQDN error reply: text not printable");
        memcpy(out->text, p, n - 4);
        out->text[n - 4] = '\0';
        return 0;
    default:
        return ck_error_set(CK_ERR_DECODE, "MTA-FQDN payload: message type %u",
                            (unsigned)out->type);
    }
}

/* The length of the DER element at p (header + contents), 0 when it is not one. */
static size_t
der_element_len(const uint8_t *p, size_t len, int *tag_byte)
{
    const unsigned char *q = p;
    long clen;
    int tag, cls, ret;

    *tag_byte = len > 0 ? p[0] : -1;
    if (len < 2 || len > LONG_MAX)
        return 0;
    ret = ASN1_get_object(&q, &clen, &tag, &cls, (long)len);
    /* 0x80: the length runs past len; 0x21: indefinite length (never DER). */
    if ((ret & 0x80) != 0 || ret == 0x21 || clen < 0)
        return 0;
    if ((size_t)(q - p) + (size_t)clen > len)
        return 0;
    return (size_t)(q - p) + (size_t)clen;
}

int
ck_mtafqdn_split(const uint8_t *dgram, size_t len, size_t *first_len)
{
    size_t a, b;
    int tag, tag2;

    *first_len = 0;
    if (dgram == NULL || len == 0 || len > CK_MTAFQDN_MAX_DGRAM)
        return ck_error_set(CK_ERR_DECODE, "MTA-FQDN datagram: %zu bytes", len);
    if ((a = der_element_len(dgram, len, &tag)) == 0)
        return ck_error_set(CK_ERR_DECODE, "MTA-FQDN datagram: no DER element first");
    if (tag == TAG_KRB_ERROR) {
        if (a != len)
            return ck_error_set(CK_ERR_DECODE, "MTA-FQDN datagram: %zu bytes after a KRB-ERROR",
                                len - a);
        *first_len = a;
        return 0;
    }
    if (tag != TAG_AP_REQ && tag != TAG_AP_REP)
        return ck_error_set(CK_ERR_DECODE, "MTA-FQDN datagram: starts with tag 0x%02x", tag);
    if (a == len || (b = der_element_len(dgram + a, len - a, &tag2)) == 0 ||
        tag2 != TAG_KRB_SAFE)
        return ck_error_set(CK_ERR_DECODE, "MTA-FQDN datagram: no KRB-SAFE after the AP part");
    if (a + b != len)
        return ck_error_set(CK_ERR_DECODE, "MTA-FQDN datagram: %zu trailing bytes", len - a - b);
    *first_len = a;
    return 0;
}

int
ck_mtafqdn_spki_sha1_cert(X509 *cert, uint8_t out[20])
{
    unsigned char *spki = NULL;
    unsigned int n = 0;
    int len, rc = 0;

    if ((len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki)) <= 0 ||
        EVP_Digest(spki, (size_t)len, out, &n, EVP_sha1(), NULL) != 1 || n != 20)
        rc = ck_error_set(CK_ERR_CRYPTO, "certificate: SHA-1 of the public key");
    OPENSSL_free(spki);
    return rc;
}

int
ck_mtafqdn_spki_sha1(const uint8_t *cert_der, size_t cert_len, uint8_t out[20])
{
    const unsigned char *p = cert_der;
    X509 *x = NULL;
    int rc;

    if (cert_der == NULL || cert_len == 0 || cert_len > LONG_MAX ||
        (x = d2i_X509(NULL, &p, (long)cert_len)) == NULL || p != cert_der + cert_len) {
        X509_free(x);
        return ck_error_set(CK_ERR_DECODE, "certificate: not one DER X.509 certificate");
    }
    rc = ck_mtafqdn_spki_sha1_cert(x, out);
    X509_free(x);
    return rc;
}

/* ---- tickets ----------------------------------------------------------------------------- */

int
ck_mtafqdn_ticket_mint(const char *server, const ck_key *service_key, uint32_t kvno,
                       const char *client, int64_t now, int64_t lifetime, CK_TICKET **ticket,
                       ck_key *session_key)
{
    CK_ENC_TICKET_PART *etp = NULL;
    CK_TICKET *t = NULL;
    CK_PRINCIPAL_NAME *sname = NULL, *cname = NULL;
    ASN1_GENERALSTRING *srealm = NULL, *crealm = NULL;
    int rc;

    *ticket = NULL;
    memset(session_key, 0, sizeof(*session_key));
    if ((etp = CK_ENC_TICKET_PART_new()) == NULL || (t = CK_TICKET_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "ticket");
        goto out;
    }
    if ((rc = ck_asn1_principal_parse(server, CK_NT_SRV_INST, &sname, &srealm)) != 0 ||
        (rc = ck_asn1_principal_parse(client, CK_NT_SRV_INST, &cname, &crealm)) != 0)
        goto out;
    if (srealm == NULL || crealm == NULL) {
        rc = ck_error_set(CK_ERR_INVAL, "ticket: principals need a realm");
        goto out;
    }
    if ((rc = ck_random_key(service_key->enctype, session_key)) != 0 ||
        (rc = ck_asn1_flags_set(&etp->flags, CK_TKT_FLG_INITIAL | CK_TKT_FLG_PRE_AUTHENT)) != 0 ||
        (rc = ck_key_to_asn1(session_key, &etp->key)) != 0 ||
        (rc = ck_asn1_time_set(&etp->authtime, now)) != 0 ||
        (rc = ck_asn1_time_set(&etp->endtime, now + lifetime)) != 0)
        goto out;
    ASN1_GENERALSTRING_free(etp->crealm);
    etp->crealm = crealm;
    crealm = NULL;
    CK_PRINCIPAL_NAME_free(etp->cname);
    etp->cname = cname;
    cname = NULL;
    etp->transited->tr_type = 1;
    ASN1_GENERALSTRING_free(t->realm);
    t->realm = srealm;
    srealm = NULL;
    CK_PRINCIPAL_NAME_free(t->sname);
    t->sname = sname;
    sname = NULL;
    if ((rc = ck_ticket_seal(t, etp, service_key, kvno)) != 0)
        goto out;
    *ticket = t;
    t = NULL;
out:
    if (rc != 0)
        ck_key_clear(session_key);
    CK_ENC_TICKET_PART_free(etp);
    CK_TICKET_free(t);
    CK_PRINCIPAL_NAME_free(sname);
    CK_PRINCIPAL_NAME_free(cname);
    ASN1_GENERALSTRING_free(srealm);
    ASN1_GENERALSTRING_free(crealm);
    return rc;
}

/* Reads a KRB-SAFE of this exchange: keyed with the subkey, a timestamp within clockskew of
 * now, sequence number seq, sender address directional dir. */
static int
read_safe(const ck_key *subkey, uint32_t dir, uint32_t seq, int64_t clockskew, int64_t now,
          const uint8_t *der, size_t len, uint8_t **data, size_t *data_len,
          ck_krb_msg_info *info)
{
    ck_krb_address sender;
    ck_krb_msg_check check;
    int rc;

    if ((rc = ck_krb_address_directional(dir, &sender)) != 0)
        return rc;
    memset(&check, 0, sizeof(check));
    check.s_address = &sender;
    check.require_timestamp = true;
    check.clockskew = clockskew;
    check.now = now;
    check.check_seq = true;
    check.seq = seq;
    return ck_krb_safe_read(subkey, der, len, &check, data, data_len, info);
}

/* ---- the server -------------------------------------------------------------------------- */

static int
error_dgram(const char *server, int32_t code, const char *e_text, int64_t now, uint8_t **out,
            size_t *out_len)
{
    return ck_krb_error_build(server != NULL ? server : CK_MTAFQDN_SERVICE, code, e_text, now, 0,
                              out, out_len);
}

/* AP-REP + KRB-SAFE of rep under the request's subkey. */
static int
reply_dgram(const ck_ap_req_result *ap, const ck_mtafqdn_msg *rep, int64_t now, uint8_t **out,
            size_t *out_len)
{
    ck_krb_address dir1;
    ck_krb_msg_params params;
    uint8_t *aprep = NULL, *payload = NULL, *safe = NULL, *buf = NULL;
    size_t aprep_len = 0, payload_len = 0, safe_len = 0;
    uint32_t seq;
    int rc;

    if ((rc = ck_random_bytes(&seq, sizeof(seq))) != 0 ||
        (rc = ck_krb_address_directional(1, &dir1)) != 0)
        return rc;
    seq &= 0x3fffffffu;
    memset(&params, 0, sizeof(params));
    params.use_timestamp = true;
    params.timestamp = now;
    params.use_seq = true;
    params.seq = seq;
    params.s_address = &dir1;
    if ((rc = ck_ap_rep_build(&ap->session_key, ap->ctime, ap->cusec, NULL, &seq, &aprep,
                              &aprep_len)) != 0 ||
        (rc = ck_mtafqdn_payload_encode(rep, &payload, &payload_len)) != 0 ||
        (rc = ck_krb_safe_build(&ap->subkey, payload, payload_len, &params, &safe,
                                &safe_len)) != 0)
        goto out;
    if ((buf = malloc(aprep_len + safe_len)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "MTA-FQDN reply");
        goto out;
    }
    memcpy(buf, aprep, aprep_len);
    memcpy(buf + aprep_len, safe, safe_len);
    *out = buf;
    *out_len = aprep_len + safe_len;
out:
    ck_asn1_free_der(aprep, aprep_len);
    free(payload);
    free(safe);
    return rc;
}

static void
set_error(ck_mtafqdn_msg *m, uint32_t code, const char *text)
{
    memset(m, 0, sizeof(*m));
    m->type = CK_MTAFQDN_ERROR;
    m->enterprise = CK_MTAFQDN_ENTERPRISE;
    m->version = CK_MTAFQDN_VERSION;
    m->error = code;
    ck_strlcpy(m->text, text, sizeof(m->text));
}

/* The ticket's client must be krbtgt/REALM@REALM of the ticket's realm: only the KDC. */
static bool
client_is_kdc(const ck_ap_req_result *ap)
{
    char client[600], want[600];
    const char *realm = ck_asn1_kstring_get(ap->ticket->realm);

    if (realm == NULL ||
        ck_asn1_principal_unparse(ap->enc_ticket->cname, ap->enc_ticket->crealm, client,
                                  sizeof(client)) != 0)
        return false;
    snprintf(want, sizeof(want), "krbtgt/%s@%s", realm, realm);
    return strcmp(client, want) == 0;
}

int
ck_mtafqdn_serve(const uint8_t *dgram, size_t len, ck_ap_key_fn key_fn, void *key_arg,
                 const char *expected_server, ck_rcache *rc, int64_t clockskew, int64_t now,
                 ck_mtafqdn_lookup_fn lookup, void *lookup_arg, uint8_t **out, size_t *out_len)
{
    ck_ap_req_result ap;
    ck_krb_msg_info info;
    ck_mtafqdn_msg req, rep;
    uint8_t *data = NULL;
    size_t first = 0, data_len = 0;
    int ret;

    *out = NULL;
    *out_len = 0;
    memset(&ap, 0, sizeof(ap));
    memset(&info, 0, sizeof(info));
    if ((ret = ck_mtafqdn_split(dgram, len, &first)) != 0)
        return ret;
    if (dgram[0] != TAG_AP_REQ)
        return ck_error_set(CK_ERR_DECODE, "MTA-FQDN: not a request");
    ret = ck_ap_req_verify_at(dgram, first, key_fn, key_arg, expected_server, rc, clockskew,
                              CK_KU_AP_REQ_AUTH, now, &ap);
    if (ret != 0) {
        int32_t code = ap.krb_error != 0 ? ap.krb_error : CK_KRB_ERR_GENERIC;
        char why[256];

        ck_strlcpy(why, ck_error_context(), sizeof(why));
        ret = error_dgram(expected_server, ret == CK_ERR_FULL ? CK_KRB_ERR_GENERIC : code,
                          ret == CK_ERR_FULL ? CK_AP_ETEXT_RCACHE_FULL : NULL, now, out,
                          out_len);
        if (ret == 0)
            ck_error_set(CK_ERR_KRB, "MTA-FQDN: AP-REQ refused: %s", why);
        goto out;
    }
    if (!client_is_kdc(&ap) || !ap.has_subkey || !ap.has_seq_number) {
        ret = error_dgram(expected_server, CK_KDC_ERR_POLICY,
                          "only the KDC asks, with a subkey and a sequence number", now, out,
                          out_len);
        goto out;
    }
    if (read_safe(&ap.subkey, 0, ap.seq_number, clockskew, now, dgram + first, len - first,
                  &data, &data_len, &info) != 0) {
        ret = error_dgram(expected_server,
                          info.krb_error != 0 ? info.krb_error : CK_KRB_AP_ERR_MODIFIED, NULL,
                          now, out, out_len);
        goto out;
    }
    if (ck_mtafqdn_payload_decode(data, data_len, &req) != 0 || req.type != CK_MTAFQDN_REQUEST) {
        set_error(&rep, CK_MTAFQDN_ERR_MALFORMED, "malformed request");
    } else {
        memset(&rep, 0, sizeof(rep));
        if (lookup(lookup_arg, &req, &rep) != 0 ||
            (rep.type != CK_MTAFQDN_REPLY && rep.type != CK_MTAFQDN_ERROR))
            set_error(&rep, CK_MTAFQDN_ERR_INTERNAL, "server failure");
        rep.enterprise = CK_MTAFQDN_ENTERPRISE;
        rep.version = CK_MTAFQDN_VERSION;
    }
    ret = reply_dgram(&ap, &rep, now, out, out_len);
out:
    free(data);
    ck_ap_req_result_clear(&ap);
    return ret;
}

/* ---- the client (the KDC) ---------------------------------------------------------------- */

void
ck_mtafqdn_client_clear(ck_mtafqdn_client *state)
{
    if (state == NULL)
        return;
    ck_key_clear(&state->subkey);
    ck_key_clear(&state->session_key);
    ck_memzero(state, sizeof(*state));
}

int
ck_mtafqdn_request_build(const CK_TICKET *ticket, const ck_key *session_key,
                         const char *client_realm, const char *client_name,
                         const ck_mtafqdn_msg *req, int64_t now, ck_mtafqdn_client *state,
                         uint8_t **out, size_t *out_len)
{
    CK_PRINCIPAL_NAME *cname = NULL;
    ASN1_GENERALSTRING *ignored = NULL;
    ck_krb_address dir0;
    ck_krb_msg_params params;
    ck_mtafqdn_msg m;
    uint8_t *apreq = NULL, *payload = NULL, *safe = NULL, *buf = NULL;
    size_t apreq_len = 0, payload_len = 0, safe_len = 0;
    int rc;

    *out = NULL;
    *out_len = 0;
    memset(state, 0, sizeof(*state));
    m = *req;
    m.type = CK_MTAFQDN_REQUEST;
    if (m.enterprise == 0)
        m.enterprise = CK_MTAFQDN_ENTERPRISE;
    if (m.version == 0)
        m.version = CK_MTAFQDN_VERSION;
    if ((rc = ck_random_bytes(&state->seq, sizeof(state->seq))) != 0)
        goto out;
    state->seq &= 0x3fffffffu;
    if ((rc = ck_asn1_principal_parse(client_name, CK_NT_SRV_INST, &cname, &ignored)) != 0 ||
        (rc = ck_key_copy(&state->session_key, session_key)) != 0 ||
        (rc = ck_random_key(session_key->enctype, &state->subkey)) != 0 ||
        /* The authenticator's time is the caller's (the KDC's injected clock), as the KRB-SAFE
         * timestamp below: no part of the request reads the system clock of its own. */
        (rc = ck_ap_req_build_at(ticket, session_key, client_realm, cname,
                                 CK_AP_OPT_MUTUAL_REQUIRED, NULL, CK_KU_AP_REQ_AUTH,
                                 &state->subkey, &state->seq, now, 0, &state->ctime,
                                 &state->cusec, &apreq, &apreq_len)) != 0 ||
        (rc = ck_mtafqdn_payload_encode(&m, &payload, &payload_len)) != 0 ||
        (rc = ck_krb_address_directional(0, &dir0)) != 0)
        goto out;
    memset(&params, 0, sizeof(params));
    params.use_timestamp = true;
    params.timestamp = now;
    params.use_seq = true;
    params.seq = state->seq;
    params.s_address = &dir0;
    if ((rc = ck_krb_safe_build(&state->subkey, payload, payload_len, &params, &safe,
                                &safe_len)) != 0)
        goto out;
    if (apreq_len + safe_len > CK_MTAFQDN_MAX_DGRAM ||
        (buf = malloc(apreq_len + safe_len)) == NULL) {
        rc = ck_error_set(CK_ERR_LIMIT, "MTA-FQDN request: %zu bytes", apreq_len + safe_len);
        goto out;
    }
    memcpy(buf, apreq, apreq_len);
    memcpy(buf + apreq_len, safe, safe_len);
    *out = buf;
    *out_len = apreq_len + safe_len;
out:
    if (rc != 0)
        ck_mtafqdn_client_clear(state);
    ck_asn1_free_der(apreq, apreq_len);
    free(payload);
    free(safe);
    CK_PRINCIPAL_NAME_free(cname);
    ASN1_GENERALSTRING_free(ignored);
    return rc;
}

int
ck_mtafqdn_reply_read(const uint8_t *dgram, size_t len, ck_mtafqdn_client *state,
                      int64_t clockskew, int64_t now, ck_mtafqdn_msg *rep)
{
    ck_ap_rep_result aprep;
    uint8_t *data = NULL;
    size_t first = 0, data_len = 0;
    int rc;

    memset(rep, 0, sizeof(*rep));
    memset(&aprep, 0, sizeof(aprep));
    if ((rc = ck_mtafqdn_split(dgram, len, &first)) != 0)
        return ck_error_set(CK_ERR_PROTO, "MTA-FQDN reply: %s", ck_error_context());
    if (dgram[0] == TAG_KRB_ERROR)
        return ck_krb_error_reply(dgram, len, "MTA-FQDN server");
    if (dgram[0] != TAG_AP_REP)
        return ck_error_set(CK_ERR_PROTO, "MTA-FQDN reply: a request, not a reply");
    if ((rc = ck_ap_rep_verify(dgram, first, &state->session_key, state->ctime, state->cusec,
                               &aprep)) != 0) {
        rc = ck_error_set(CK_ERR_INTEGRITY, "MTA-FQDN reply: AP-REP: %s", ck_error_context());
        goto out;
    }
    if ((rc = read_safe(&state->subkey, 1, aprep.has_seq_number ? aprep.seq_number : 0,
                        clockskew, now, dgram + first, len - first, &data, &data_len,
                        NULL)) != 0) {
        rc = ck_error_set(rc == CK_ERR_SKEW ? rc : CK_ERR_INTEGRITY, "MTA-FQDN reply: KRB-SAFE: %s",
                          ck_error_context());
        goto out;
    }
    if ((rc = ck_mtafqdn_payload_decode(data, data_len, rep)) != 0) {
        rc = ck_error_set(CK_ERR_PROTO, "MTA-FQDN reply: %s", ck_error_context());
        goto out;
    }
    if (rep->type != CK_MTAFQDN_REPLY && rep->type != CK_MTAFQDN_ERROR)
        rc = ck_error_set(CK_ERR_PROTO, "MTA-FQDN reply: message type %u", (unsigned)rep->type);
out:
    if (rc != 0)
        memset(rep, 0, sizeof(*rep));
    free(data);
    ck_ap_rep_result_clear(&aprep);
    return rc;
}
