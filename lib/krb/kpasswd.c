/* kpasswd message framing and result data (RFC 3244 §2; see include/cablekey/kpasswd.h), through
 * the bounded byte reader/writer. ChangePasswdData itself is an ASN.1 template
 * (lib/asn1/kpasswd_codec.c). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/kpasswd.h"
#include "cablekey/nametypes.h"
#include "cablekey/util.h"

const char *
ck_kpasswd_result_name(int code)
{
    switch (code) {
    case CK_KPASSWD_SUCCESS: return "success";
    case CK_KPASSWD_MALFORMED: return "malformed request";
    case CK_KPASSWD_HARDERROR: return "server error";
    case CK_KPASSWD_AUTHERROR: return "authentication error";
    case CK_KPASSWD_SOFTERROR: return "password change rejected";
    case CK_KPASSWD_ACCESSDENIED: return "access denied";
    case CK_KPASSWD_BAD_VERSION: return "protocol version not supported";
    case CK_KPASSWD_INITIAL_FLAG_NEEDED: return "initial ticket required";
    default: return "unknown result code";
    }
}

/* The 16-bit length field must equal the datagram / TCP message length exactly: anything else
 * is a truncated or padded message, never something to guess around. */
static int
read_header(ck_reader *r, size_t len, uint16_t *version, const char *what)
{
    uint16_t msg_len;
    int rc;

    if (len > CK_KPASSWD_MAX_MSG)
        return ck_error_set(CK_ERR_DECODE, "%s: %zu bytes exceeds %d", what, len,
                            CK_KPASSWD_MAX_MSG);
    if (len < CK_KPASSWD_HEADER_LEN)
        return ck_error_set(CK_ERR_DECODE, "%s: %zu bytes is shorter than its header", what,
                            len);
    if ((rc = ck_reader_u16be(r, &msg_len)) != 0 || (rc = ck_reader_u16be(r, version)) != 0)
        return rc;
    if (msg_len != len)
        return ck_error_set(CK_ERR_DECODE, "%s: length field %u but %zu bytes received", what,
                            (unsigned)msg_len, len);
    return 0;
}

int
ck_kpasswd_frame_parse(const uint8_t *msg, size_t len, const char *what,
                       const uint16_t *versions, size_t n_versions, ck_kpasswd_req *out)
{
    ck_reader r;
    uint16_t ap_len;
    bool known = false;
    int rc;

    if (out == NULL || (msg == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "%s: no input or output", what);
    memset(out, 0, sizeof(*out));
    ck_reader_init(&r, msg, len);
    if ((rc = read_header(&r, len, &out->version, what)) != 0)
        return rc;
    for (size_t i = 0; i < n_versions; i++)
        known = known || out->version == versions[i];
    if (!known)
        return ck_error_set(CK_ERR_UNSUPPORTED, "%s: protocol version 0x%04x", what,
                            (unsigned)out->version);
    if ((rc = ck_reader_u16be(&r, &ap_len)) != 0)
        return rc;
    if (ap_len == 0)
        return ck_error_set(CK_ERR_DECODE, "%s: empty AP-REQ", what);
    /* The KRB-PRIV must follow: an AP-REQ that reaches the end leaves no room for it. */
    if ((size_t)ap_len >= ck_reader_remaining(&r))
        return ck_error_set(CK_ERR_DECODE, "%s: AP-REQ length %u leaves no KRB-PRIV in %zu bytes",
                            what, (unsigned)ap_len, ck_reader_remaining(&r));
    if ((rc = ck_reader_bytes(&r, ap_len, &out->ap_req)) != 0)
        return rc;
    out->ap_req_len = ap_len;
    out->priv_len = ck_reader_remaining(&r);
    return ck_reader_bytes(&r, out->priv_len, &out->priv);
}

int
ck_kpasswd_req_parse(const uint8_t *msg, size_t len, ck_kpasswd_req *out)
{
    static const uint16_t versions[] = {CK_KPASSWD_VERSION_CHANGEPW, CK_KPASSWD_VERSION_SETPW};

    return ck_kpasswd_frame_parse(msg, len, "kpasswd request", versions, 2, out);
}

int
ck_kpasswd_req_build(uint16_t version, const uint8_t *ap_req, size_t ap_req_len,
                     const uint8_t *priv, size_t priv_len, uint8_t **out, size_t *out_len)
{
    ck_writer w;
    size_t total;
    int rc;

    if (out == NULL || out_len == NULL || ap_req == NULL || priv == NULL || ap_req_len == 0 ||
        priv_len == 0)
        return ck_error_set(CK_ERR_INVAL, "kpasswd request: missing part");
    *out = NULL;
    *out_len = 0;
    if (ap_req_len > CK_KPASSWD_MAX_MSG || priv_len > CK_KPASSWD_MAX_MSG ||
        (total = CK_KPASSWD_HEADER_LEN + ap_req_len + priv_len) > CK_KPASSWD_MAX_MSG)
        return ck_error_set(CK_ERR_LIMIT, "kpasswd request: longer than %d bytes",
                            CK_KPASSWD_MAX_MSG);
    /* The KRB-PRIV is encrypted, but the writer is marked secret anyway: callers may reuse it
     * for what they like and wiping costs nothing at this size. */
    ck_writer_init(&w, total, true);
    if ((rc = ck_writer_u16be(&w, (uint16_t)total)) != 0 ||
        (rc = ck_writer_u16be(&w, version)) != 0 ||
        (rc = ck_writer_u16be(&w, (uint16_t)ap_req_len)) != 0 ||
        (rc = ck_writer_bytes(&w, ap_req, ap_req_len)) != 0 ||
        (rc = ck_writer_bytes(&w, priv, priv_len)) != 0) {
        ck_writer_free(&w);
        return rc;
    }
    *out = ck_writer_take(&w, out_len);
    return 0;
}

int
ck_kpasswd_rep_parse(const uint8_t *msg, size_t len, ck_kpasswd_rep *out)
{
    ck_reader r;
    uint16_t ap_len;
    int rc;

    if (out == NULL || (msg == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "kpasswd reply: no input or output");
    memset(out, 0, sizeof(*out));
    /* A bare KRB-ERROR: [APPLICATION 30] is 0x7e, which as a length field would mean a
     * message of 32 KiB or more: never a framed reply of that length. */
    if (len > 0 && msg[0] == 0x7e) {
        out->body = msg;
        out->body_len = len;
        out->is_error = true;
        return 0;
    }
    ck_reader_init(&r, msg, len);
    if ((rc = read_header(&r, len, &out->version, "kpasswd reply")) != 0 ||
        (rc = ck_reader_u16be(&r, &ap_len)) != 0)
        return rc;
    if ((size_t)ap_len >= ck_reader_remaining(&r))
        return ck_error_set(CK_ERR_DECODE,
                            "kpasswd reply: AP-REP length %u leaves no body in %zu bytes",
                            (unsigned)ap_len, ck_reader_remaining(&r));
    if (ap_len > 0) {
        if ((rc = ck_reader_bytes(&r, ap_len, &out->ap_rep)) != 0)
            return rc;
        out->ap_rep_len = ap_len;
    }
    out->body_len = ck_reader_remaining(&r);
    if ((rc = ck_reader_bytes(&r, out->body_len, &out->body)) != 0)
        return rc;
    out->is_error = out->body[0] == 0x7e;
    if (out->is_error && out->ap_rep_len > 0)
        return ck_error_set(CK_ERR_DECODE, "kpasswd reply: KRB-ERROR after an AP-REP");
    if (!out->is_error && out->ap_rep_len == 0)
        return ck_error_set(CK_ERR_DECODE, "kpasswd reply: KRB-PRIV without an AP-REP");
    return 0;
}

int
ck_kpasswd_rep_build(uint16_t version, const uint8_t *ap_rep, size_t ap_rep_len,
                     const uint8_t *body, size_t body_len, uint8_t *out, size_t cap,
                     size_t *out_len)
{
    size_t total;

    if (out == NULL || out_len == NULL || body == NULL || body_len == 0 ||
        (ap_rep == NULL && ap_rep_len > 0))
        return ck_error_set(CK_ERR_INVAL, "kpasswd reply: missing part");
    *out_len = 0;
    if (ap_rep_len > CK_KPASSWD_MAX_MSG || body_len > CK_KPASSWD_MAX_MSG ||
        (total = CK_KPASSWD_HEADER_LEN + ap_rep_len + body_len) > CK_KPASSWD_MAX_MSG)
        return ck_error_set(CK_ERR_LIMIT, "kpasswd reply: longer than %d bytes",
                            CK_KPASSWD_MAX_MSG);
    if (total > cap)
        return ck_error_set(CK_ERR_LIMIT, "kpasswd reply: %zu bytes exceeds the buffer (%zu)",
                            total, cap);
    out[0] = (uint8_t)(total >> 8);
    out[1] = (uint8_t)total;
    out[2] = (uint8_t)(version >> 8);
    out[3] = (uint8_t)version;
    out[4] = (uint8_t)(ap_rep_len >> 8);
    out[5] = (uint8_t)ap_rep_len;
    if (ap_rep_len > 0)
        memcpy(out + CK_KPASSWD_HEADER_LEN, ap_rep, ap_rep_len);
    memcpy(out + CK_KPASSWD_HEADER_LEN + ap_rep_len, body, body_len);
    *out_len = total;
    return 0;
}

/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8 sequence. */
static size_t
utf8_cut(const char *s, size_t n)
{
    size_t i = n;

    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--;
    if (i > 0 && ((unsigned char)s[i - 1] & 0x80) != 0) {
        unsigned char lead = (unsigned char)s[i - 1];
        size_t need = (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 : 4;
        if (n - (i - 1) < need)
            return i - 1;
    }
    return n;
}

int
ck_kpasswd_result_build(uint16_t code, const char *string, uint8_t **out, size_t *out_len)
{
    ck_writer w;
    size_t n = string != NULL ? strlen(string) : 0;
    int rc;

    if (out == NULL || out_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "kpasswd result: no output");
    *out = NULL;
    *out_len = 0;
    if (n > CK_KPASSWD_MAX_RESULT_STRING)
        n = utf8_cut(string, CK_KPASSWD_MAX_RESULT_STRING);
    ck_writer_init(&w, 2 + CK_KPASSWD_MAX_RESULT_STRING, false);
    if ((rc = ck_writer_u16be(&w, code)) != 0 ||
        (n > 0 && (rc = ck_writer_bytes(&w, string, n)) != 0)) {
        ck_writer_free(&w);
        return rc;
    }
    *out = ck_writer_take(&w, out_len);
    return 0;
}

int
ck_kpasswd_result_parse(const uint8_t *data, size_t len, uint16_t *code, char *string,
                        size_t size)
{
    ck_reader r;
    size_t n, i;
    int rc;

    if (code == NULL || string == NULL || size == 0 || (data == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "kpasswd result: no input or output");
    string[0] = '\0';
    ck_reader_init(&r, data, len);
    if ((rc = ck_reader_u16be(&r, code)) != 0)
        return ck_error_set(CK_ERR_DECODE, "kpasswd result: %zu bytes, need a result code", len);
    n = ck_reader_remaining(&r);
    if (n > CK_KPASSWD_MAX_RESULT_STRING)
        return ck_error_set(CK_ERR_DECODE, "kpasswd result: string of %zu bytes exceeds %d", n,
                            CK_KPASSWD_MAX_RESULT_STRING);
    /* The string is shown to a user: nothing that could drive a terminal gets through.
     * Active Directory puts a binary policy block here; it becomes '?'s. */
    for (i = 0; i < n && i + 1 < size; i++) {
        uint8_t c = data[2 + i];
        string[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    string[i] = '\0';
    return 0;
}

int
ck_kpasswd_setpw_data_build(const char *password, size_t password_len, const char *target,
                            uint8_t **out, size_t *out_len)
{
    CK_CHANGE_PASSWD_DATA *d = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    int rc;

    if (out == NULL || out_len == NULL || password == NULL)
        return ck_error_set(CK_ERR_INVAL, "ChangePasswdData: no input or output");
    *out = NULL;
    *out_len = 0;
    if ((d = CK_CHANGE_PASSWD_DATA_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "ChangePasswdData");
        goto out;
    }
    if ((rc = ck_asn1_octets_set(&d->newpasswd, (const uint8_t *)password, password_len)) != 0)
        goto out;
    if (target != NULL) {
        if ((rc = ck_asn1_principal_parse(target, CK_NT_PRINCIPAL, &d->targname,
                                          &d->targrealm)) != 0)
            goto out;
        if (d->targrealm == NULL) {
            rc = ck_error_set(CK_ERR_INVAL, "ChangePasswdData: target %s has no realm", target);
            goto out;
        }
    }
    if ((rc = ck_asn1_change_passwd_data_encode(d, &der, &der_len)) != 0)
        goto out;
    /* Moved into malloc'd memory so callers free it like every other buffer of this API. */
    if ((*out = ck_memdup(der, der_len)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "ChangePasswdData");
        goto out;
    }
    *out_len = der_len;
out:
    ck_asn1_free_der(der, der_len);
    CK_CHANGE_PASSWD_DATA_free(d);
    return rc;
}

int
ck_kpasswd_setpw_data_parse(const uint8_t *der, size_t len, char **password,
                            size_t *password_len, char *target, size_t target_size)
{
    CK_CHANGE_PASSWD_DATA *d = NULL;
    char *pw = NULL;
    size_t n;
    int rc;

    if (password == NULL || password_len == NULL || target == NULL || target_size == 0)
        return ck_error_set(CK_ERR_INVAL, "ChangePasswdData: no output");
    *password = NULL;
    *password_len = 0;
    target[0] = '\0';
    if ((rc = ck_asn1_change_passwd_data_decode(der, len, &d)) != 0)
        goto out;
    n = (size_t)d->newpasswd->length;
    if (n == 0 || memchr(d->newpasswd->data, 0, n) != NULL) {
        rc = ck_error_set(CK_ERR_INVAL, "ChangePasswdData: %s password",
                          n == 0 ? "empty" : "NUL byte in the");
        goto out;
    }
    if (d->targname != NULL &&
        (rc = ck_asn1_principal_unparse(d->targname, d->targrealm, target, target_size)) != 0)
        goto out;
    if ((pw = malloc(n + 1)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "ChangePasswdData");
        goto out;
    }
    memcpy(pw, d->newpasswd->data, n);
    pw[n] = '\0';
    *password = pw;
    *password_len = n;
out:
    if (rc != 0)
        target[0] = '\0';
    CK_CHANGE_PASSWD_DATA_free(d);
    return rc;
}
