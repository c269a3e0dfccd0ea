/* The device channel (prov_wire.h, docs/PROTOCOL.md "Device channel"): the inner codecs, the
 * provisioning server's answer and the device's exchange, in the AP-REQ + KRB-PRIV envelope of
 * the key version service (apenv.h).
 *
 * Decisions:
 *   - Any ticket of the realm for prov/<host> authenticates the device, restricted or not: an
 *     unprovisioned device must be able to fetch its first operator certificate. The server
 *     maps the ticket's client to the device; the certificates are public, but the KRB-PRIV
 *     keeps which device holds which from passers-by.
 *   - DROP is only ever read from a KRB-PRIV under this exchange's subkey, after the AP-REP
 *     proved the server holds prov/<host>'s key: the one authenticated instruction a device
 *     obeys to discard its operator certificate (an unauthenticated KRB-ERROR never does). */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>

#include "cablekey/apenv.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/prov_wire.h"
#include "cablekey/safepriv.h"
#include "cablekey/util.h"

#define REQ_LEN (1 + 8 + 32)
#define REP_MAX                                                                             \
    (2 + 2 + CK_PROVDEV_TEXT_MAX + 1 + 8 + 1 + CK_PROVDEV_MAX_CERTS * (2 + CK_PROVDEV_CERT_MAX))
#define NAME_MAX_LEN 1024

const char *
ck_provdev_result_name(int code)
{
    switch (code) {
    case CK_PROVDEV_OK: return "ok";
    case CK_PROVDEV_MALFORMED: return "malformed request";
    case CK_PROVDEV_HARDERROR: return "server failure";
    case CK_PROVDEV_AUTHERROR: return "authentication failed";
    case CK_PROVDEV_NOT_A_DEVICE: return "not a device of this realm";
    case CK_PROVDEV_NO_CERT: return "no certificate issued";
    case CK_PROVDEV_NOTFOUND: return "not the current certificate";
    default: return "unknown result";
    }
}

void
ck_provdev_rep_clear(ck_provdev_rep *rep)
{
    if (rep == NULL)
        return;
    for (size_t i = 0; i < CK_PROVDEV_MAX_CERTS; i++)
        free(rep->certs[i]);
    memset(rep, 0, sizeof(*rep));
}

static bool
type_ok(uint8_t t)
{
    return t == CK_PROVDEV_FETCH || t == CK_PROVDEV_ACK || t == CK_PROVDEV_CHECK;
}

static int
put_u64(ck_writer *w, int64_t v)
{
    int rc = ck_writer_u32be(w, (uint32_t)((uint64_t)v >> 32));

    return rc != 0 ? rc : ck_writer_u32be(w, (uint32_t)(uint64_t)v);
}

static int
get_id(ck_reader *r, int64_t *v)
{
    uint32_t hi, lo;
    int rc;

    if ((rc = ck_reader_u32be(r, &hi)) != 0 || (rc = ck_reader_u32be(r, &lo)) != 0)
        return rc;
    /* Certificate ids are positive database ids: the top bit would make a negative one. */
    if (hi & 0x80000000u)
        return ck_error_set(CK_ERR_DECODE, "device channel: certificate id out of range");
    *v = (int64_t)(((uint64_t)hi << 32) | lo);
    return 0;
}

int
ck_provdev_req_encode(const ck_provdev_req *req, uint8_t **out, size_t *out_len)
{
    ck_writer w;
    int rc;

    *out = NULL;
    *out_len = 0;
    if (!type_ok(req->type) || req->cert_id < 0)
        return ck_error_set(CK_ERR_INVAL, "device channel request: type %u, id %lld",
                            (unsigned)req->type, (long long)req->cert_id);
    ck_writer_init(&w, REQ_LEN, false);
    if ((rc = ck_writer_u8(&w, req->type)) != 0 || (rc = put_u64(&w, req->cert_id)) != 0 ||
        (rc = ck_writer_bytes(&w, req->sha256, sizeof(req->sha256))) != 0) {
        ck_writer_free(&w);
        return rc;
    }
    *out = ck_writer_take(&w, out_len);
    return 0;
}

int
ck_provdev_req_decode(const uint8_t *data, size_t len, ck_provdev_req *out)
{
    ck_reader r;
    int rc;

    memset(out, 0, sizeof(*out));
    if (data == NULL || len != REQ_LEN)
        return ck_error_set(CK_ERR_DECODE, "device channel request: %zu bytes, not %d", len,
                            REQ_LEN);
    ck_reader_init(&r, data, len);
    if ((rc = ck_reader_u8(&r, &out->type)) != 0 || (rc = get_id(&r, &out->cert_id)) != 0 ||
        (rc = ck_reader_copy(&r, out->sha256, sizeof(out->sha256))) != 0)
        return rc;
    if (!type_ok(out->type))
        return ck_error_set(CK_ERR_DECODE, "device channel request: unknown type %u",
                            (unsigned)out->type);
    return 0;
}

/* One DER element (a certificate's SEQUENCE) spanning exactly len bytes. */
static bool
single_der_sequence(const uint8_t *p, size_t len)
{
    const unsigned char *q = p;
    long clen;
    int tag, cls, ret;

    if (len < 2 || p[0] != 0x30)
        return false;
    ret = ASN1_get_object(&q, &clen, &tag, &cls, (long)len);
    if ((ret & 0x80) != 0 || ret == 0x21 || clen < 0)
        return false;
    return (size_t)(q - p) + (size_t)clen == len;
}

int
ck_provdev_rep_encode(const ck_provdev_rep *rep, uint8_t **out, size_t *out_len)
{
    ck_writer w;
    size_t tl = strnlen(rep->text, sizeof(rep->text));
    int rc = 0;

    *out = NULL;
    *out_len = 0;
    if (tl > CK_PROVDEV_TEXT_MAX)
        tl = CK_PROVDEV_TEXT_MAX;
    if (rep->n_certs > CK_PROVDEV_MAX_CERTS || rep->instruction > CK_PROVDEV_DROP ||
        rep->cert_id < 0)
        return ck_error_set(CK_ERR_LIMIT, "device channel reply: %zu certificates, "
                                          "instruction %u",
                            rep->n_certs, (unsigned)rep->instruction);
    for (size_t i = 0; i < rep->n_certs; i++)
        if (rep->cert_lens[i] == 0 || rep->cert_lens[i] > CK_PROVDEV_CERT_MAX ||
            !single_der_sequence(rep->certs[i], rep->cert_lens[i]))
            return ck_error_set(CK_ERR_LIMIT, "device channel reply: certificate %zu: %zu bytes "
                                              "of DER",
                                i, rep->cert_lens[i]);
    /* The KRB-PRIV that carries it holds at most CK_KRB_MSG_MAX_DATA bytes. */
    ck_writer_init(&w, REP_MAX < CK_KRB_MSG_MAX_DATA ? REP_MAX : CK_KRB_MSG_MAX_DATA, false);
    if ((rc = ck_apenv_result_write(&w, rep->result, rep->text, tl)) != 0 ||
        (rc = ck_writer_u8(&w, rep->instruction)) != 0 || (rc = put_u64(&w, rep->cert_id)) != 0 ||
        (rc = ck_writer_u8(&w, (uint8_t)rep->n_certs)) != 0)
        goto out;
    for (size_t i = 0; i < rep->n_certs; i++)
        if ((rc = ck_writer_u16be(&w, (uint16_t)rep->cert_lens[i])) != 0 ||
            (rc = ck_writer_bytes(&w, rep->certs[i], rep->cert_lens[i])) != 0)
            goto out;
    *out = ck_writer_take(&w, out_len);
out:
    ck_writer_free(&w);
    return rc;
}

int
ck_provdev_rep_decode(const uint8_t *data, size_t len, ck_provdev_rep *out)
{
    ck_reader r;
    const uint8_t *p;
    uint16_t cl;
    uint8_t n;
    int rc;

    memset(out, 0, sizeof(*out));
    /* What one KRB-PRIV can carry, as the encoder's limit. */
    if (len > CK_KRB_MSG_MAX_DATA)
        return ck_error_set(CK_ERR_DECODE, "device channel reply: %zu bytes", len);
    ck_reader_init(&r, data, len);
    if ((rc = ck_apenv_result_read(&r, CK_PROVDEV_TEXT_MAX, &out->result, out->text,
                                   "device channel reply")) != 0)
        goto out;
    if (ck_reader_u8(&r, &out->instruction) != 0)
        goto trunc;
    if (out->instruction > CK_PROVDEV_DROP) {
        rc = ck_error_set(CK_ERR_DECODE, "device channel reply: instruction %u",
                          (unsigned)out->instruction);
        goto out;
    }
    if ((rc = get_id(&r, &out->cert_id)) != 0 || (rc = ck_reader_u8(&r, &n)) != 0)
        goto out;
    if (n > CK_PROVDEV_MAX_CERTS) {
        rc = ck_error_set(CK_ERR_DECODE, "device channel reply: %u certificates", (unsigned)n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (ck_reader_u16be(&r, &cl) != 0)
            goto trunc;
        if (cl == 0 || cl > CK_PROVDEV_CERT_MAX) {
            rc = ck_error_set(CK_ERR_DECODE, "device channel reply: certificate of %u bytes",
                              (unsigned)cl);
            goto out;
        }
        if (ck_reader_bytes(&r, cl, &p) != 0)
            goto trunc;
        if (!single_der_sequence(p, cl)) {
            rc = ck_error_set(CK_ERR_DECODE, "device channel reply: certificate %zu is not one "
                                             "DER SEQUENCE",
                              i);
            goto out;
        }
        if ((out->certs[i] = malloc(cl)) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "device channel reply");
            goto out;
        }
        memcpy(out->certs[i], p, cl);
        out->cert_lens[i] = cl;
        out->n_certs = i + 1;
    }
    if (ck_reader_remaining(&r) != 0) {
        rc = ck_error_set(CK_ERR_DECODE, "device channel reply: %zu trailing bytes",
                          ck_reader_remaining(&r));
        goto out;
    }
    return 0;
trunc:
    rc = ck_error_set(CK_ERR_DECODE, "device channel reply: truncated");
out:
    ck_provdev_rep_clear(out);
    return rc;
}

/* ---- the server -------------------------------------------------------------------------- */

static int
to_heap(const uint8_t *buf, size_t len, uint8_t **out, size_t *out_len)
{
    if (len == 0)
        return ck_error_set(CK_ERR_ENCODE, "device channel: empty reply");
    if ((*out = malloc(len)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "device channel reply");
    memcpy(*out, buf, len);
    *out_len = len;
    return 0;
}

int
ck_provdev_serve(const uint8_t *msg, size_t len, ck_ap_key_fn key_fn, void *key_arg,
                 const char *expected_server, ck_rcache *rc, int64_t clockskew, int64_t now,
                 ck_provdev_handle_fn handle, void *handle_arg, uint8_t **out, size_t *out_len)
{
    const char *server = expected_server != NULL ? expected_server : CK_PROVDEV_SERVICE;
    ck_apenv_frame fr;
    ck_ap_req_result ap;
    ck_provdev_req req;
    ck_provdev_rep *rep = NULL;
    char client[NAME_MAX_LEN];
    uint8_t *buf = NULL, *data = NULL, *inner = NULL;
    size_t buf_len = 0, data_len = 0, inner_len = 0;
    int32_t code = 0;
    const char *e_text = NULL;
    int ret;

    *out = NULL;
    *out_len = 0;
    memset(&ap, 0, sizeof(ap));
    ret = ck_apenv_frame_parse(msg, len, CK_PROVDEV_VERSION, "device channel request", &fr);
    if (ret != 0) {
        /* Noise without our header gets no answer. */
        if (len < 6 || ((size_t)msg[0] << 8 | msg[1]) != len)
            return ret;
        code = ret == CK_ERR_UNSUPPORTED ? CK_KDC_ERR_BAD_PVNO : CK_KRB_AP_ERR_MSG_TYPE;
        e_text = ret == CK_ERR_UNSUPPORTED ? "protocol version not supported"
                                           : "malformed request";
        goto error;
    }
    ret = ck_ap_req_verify_at(fr.ap_req, fr.ap_req_len, key_fn, key_arg, expected_server, rc,
                              clockskew, CK_KU_AP_REQ_AUTH, now, &ap);
    if (ret != 0) {
        code = ret == CK_ERR_FULL || ap.krb_error == 0 ? CK_KRB_ERR_GENERIC : ap.krb_error;
        e_text = ret == CK_ERR_FULL ? CK_AP_ETEXT_RCACHE_FULL : NULL;
        goto error;
    }
    if ((buf = malloc(CK_PROVDEV_MAX_MSG)) == NULL || (rep = calloc(1, sizeof(*rep))) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "device channel");
        goto out;
    }
    if (ck_asn1_principal_unparse(ap.enc_ticket->cname, ap.enc_ticket->crealm, client,
                                  sizeof(client)) != 0) {
        rep->result = CK_PROVDEV_NOT_A_DEVICE;
        ck_strlcpy(rep->text, "client name too long", sizeof(rep->text));
    } else if (ck_apenv_read_request(&ap, &fr, clockskew, now, &data, &data_len) != 0) {
        rep->result = CK_PROVDEV_AUTHERROR;
        ck_strlcpy(rep->text, "failed reading the request", sizeof(rep->text));
    } else if (ck_provdev_req_decode(data, data_len, &req) != 0) {
        rep->result = CK_PROVDEV_MALFORMED;
        ck_strlcpy(rep->text, "malformed request", sizeof(rep->text));
    } else if (handle(handle_arg, client, &req, rep) != 0) {
        ck_provdev_rep_clear(rep);
        rep->result = CK_PROVDEV_HARDERROR;
        ck_strlcpy(rep->text, "server failure", sizeof(rep->text));
    }
    if (ck_provdev_rep_encode(rep, &inner, &inner_len) != 0) {
        ck_provdev_rep_clear(rep);
        rep->result = CK_PROVDEV_HARDERROR;
        ck_strlcpy(rep->text, "reply too large", sizeof(rep->text));
        if ((ret = ck_provdev_rep_encode(rep, &inner, &inner_len)) != 0)
            goto out;
    }
    if ((ret = ck_apenv_reply_seal(&ap, CK_PROVDEV_VERSION, inner, inner_len, now, 0, buf,
                                   CK_PROVDEV_MAX_MSG, &buf_len)) != 0)
        goto out;
    ret = to_heap(buf, buf_len, out, out_len);
    goto out;
error:
    if ((buf = malloc(CK_PROVDEV_MAX_MSG)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "device channel");
        goto out;
    }
    if ((ret = ck_apenv_reply_error(CK_PROVDEV_VERSION, server, code, e_text, now, 0, buf,
                                    CK_PROVDEV_MAX_MSG, &buf_len)) == 0)
        ret = to_heap(buf, buf_len, out, out_len);
out:
    if (data != NULL)
        ck_free_secret(data, data_len);
    free(inner);
    free(buf);
    ck_provdev_rep_clear(rep);
    free(rep);
    ck_ap_req_result_clear(&ap);
    return ret;
}

/* ---- the device -------------------------------------------------------------------------- */

int
ck_provdev_exchange(const ck_kdc_transport *svc, const ck_creds *creds,
                    const ck_provdev_req *req, int64_t clockskew, ck_provdev_rep *rep)
{
    uint8_t *inner = NULL, *data = NULL;
    size_t inner_len = 0, data_len = 0;
    int rc;

    ck_kdc_transport t = *svc;

    memset(rep, 0, sizeof(*rep));
    /* TCP: the transport takes only datagrams that start with a Kerberos tag, and this
     * framing starts with its length (the key version service's client does the same). */
    t.tcp_only = true;
    if ((rc = ck_provdev_req_encode(req, &inner, &inner_len)) != 0 ||
        (rc = ck_apenv_exchange(&t, creds, CK_PROVDEV_VERSION, "device channel", inner,
                                inner_len, clockskew, &data, &data_len)) != 0)
        goto out;
    rc = ck_provdev_rep_decode(data, data_len, rep);
out:
    if (data != NULL)
        ck_free_secret(data, data_len);
    free(inner);
    return rc;
}
