/* PacketCable KMM message codec (UDP 1293): PROTOCOL-NOTES §1/§6, as Wireshark's pktc dissector
 * reads it. Every variable field is bounded before it is read; the embedded Kerberos blob is
 * framed by its own DER header and otherwise left to lib/krb. */
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"

#define KMM_HDR_LEN 3
#define DER_TAG_AP_REQ 0x6e    /* [APPLICATION 14] constructed */
#define DER_TAG_AP_REP 0x6f    /* [APPLICATION 15] */
#define DER_TAG_KRB_ERROR 0x7e /* [APPLICATION 30] */

static bool
printable(uint8_t c)
{
    return c >= 0x20 && c <= 0x7e;
}

/* Which KMMID/DOI pairs exist: the dissector reads an ASD for AP Request, AP Reply and Rekey,
 * and has no SNMPv3 ASD for Rekey (it flags the pair "Unknown KMMID"). The other messages carry
 * no DOI-specific data, so both DOIs are valid for them (a provisioning server wakes an MTA for
 * SNMPv3 keying, PROTOCOL-NOTES §1.5). */
static int
check_pair(uint8_t type, uint8_t doi)
{
    if (type < CK_KMM_WAKE_UP || type > CK_KMM_ERROR_REPLY)
        return ck_error_set(CK_ERR_UNSUPPORTED, "KMM: unknown KMMID 0x%02x", type);
    if (doi != CK_KMM_DOI_IPSEC && doi != CK_KMM_DOI_SNMPV3)
        return ck_error_set(CK_ERR_UNSUPPORTED, "KMM: unknown DOI 0x%02x", doi);
    if (type == CK_KMM_REKEY && doi != CK_KMM_DOI_IPSEC)
        return ck_error_set(CK_ERR_UNSUPPORTED, "KMM: Rekey is defined for DOI IPsec only");
    return 0;
}

static uint8_t
krb_tag(uint8_t type)
{
    switch (type) {
    case CK_KMM_AP_REQ: return DER_TAG_AP_REQ;
    case CK_KMM_AP_REP: return DER_TAG_AP_REP;
    case CK_KMM_ERROR_REPLY: return DER_TAG_KRB_ERROR;
    default: return 0;
    }
}

/* Length of the DER element at p (header + content), which must carry tag and fit in avail
 * bytes. Only definite, minimal lengths of at most 4 octets: a Kerberos message in a UDP datagram
 * never needs more, and DER forbids the rest. */
static int
der_element_len(const uint8_t *p, size_t avail, uint8_t tag, size_t *total)
{
    size_t hdr = 2, content = 0;

    if (avail < 2)
        return ck_error_set(CK_ERR_DECODE, "KMM: truncated Kerberos message header");
    if (p[0] != tag)
        return ck_error_set(CK_ERR_DECODE, "KMM: Kerberos message tag 0x%02x, expected 0x%02x",
                            p[0], tag);
    if (p[1] < 0x80) {
        content = p[1];
    } else {
        size_t n = p[1] & 0x7f;

        if (n == 0 || n > 4)
            return ck_error_set(CK_ERR_DECODE, "KMM: Kerberos message length form 0x%02x",
                                p[1]);
        if (avail < 2 + n)
            return ck_error_set(CK_ERR_DECODE, "KMM: truncated Kerberos message length");
        if (p[2] == 0)
            return ck_error_set(CK_ERR_DECODE, "KMM: non-minimal Kerberos message length");
        for (size_t i = 0; i < n; i++)
            content = content << 8 | p[2 + i];
        if (content < 0x80)
            return ck_error_set(CK_ERR_DECODE, "KMM: non-minimal Kerberos message length");
        hdr += n;
    }
    if (content > avail - hdr)
        return ck_error_set(CK_ERR_DECODE,
                            "KMM: Kerberos message of %zu bytes, only %zu available", content,
                            avail - hdr);
    *total = hdr + content;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Timestamps: "YYMMDDhhmmssZ", UTCTime text without a tag.
 */

/* Days since 1970-01-01 of a proleptic Gregorian date (valid for the 1950..2049 window). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool
leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Timestamps this format can name: 1950-01-01T00:00:00Z .. 2049-12-31T23:59:59Z. */
#define KMM_TS_MIN (-631152000LL)
#define KMM_TS_MAX (2524607999LL)

int
ck_kmm_timestamp_format(int64_t t, char out[CK_KMM_TIMESTAMP_LEN + 1])
{
    int64_t days, secs, y;
    int m, d;
    static const char digits[] = "0123456789";
    int v[6];

    if (t < KMM_TS_MIN || t > KMM_TS_MAX)
        return ck_error_set(CK_ERR_INVAL, "KMM timestamp %lld outside 1950..2049",
                            (long long)t);
    days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    secs = t - days * 86400;
    civil_from_days(days, &y, &m, &d);
    v[0] = (int)(y % 100);
    v[1] = m;
    v[2] = d;
    v[3] = (int)(secs / 3600);
    v[4] = (int)(secs / 60 % 60);
    v[5] = (int)(secs % 60);
    for (int i = 0; i < 6; i++) {
        out[2 * i] = digits[v[i] / 10];
        out[2 * i + 1] = digits[v[i] % 10];
    }
    out[12] = 'Z';
    out[13] = '\0';
    return 0;
}

int
ck_kmm_timestamp_parse(const char *s, size_t len, int64_t *t)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int v[6];
    int64_t y;

    if (s == NULL || len != CK_KMM_TIMESTAMP_LEN || s[12] != 'Z')
        return ck_error_set(CK_ERR_DECODE, "KMM timestamp: not YYMMDDhhmmssZ");
    for (int i = 0; i < 6; i++) {
        char hi = s[2 * i], lo = s[2 * i + 1];

        if (hi < '0' || hi > '9' || lo < '0' || lo > '9')
            return ck_error_set(CK_ERR_DECODE, "KMM timestamp: not YYMMDDhhmmssZ");
        v[i] = (hi - '0') * 10 + (lo - '0');
    }
    y = v[0] < 50 ? 2000 + v[0] : 1900 + v[0];
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 ||
        v[2] > mdays[v[1] - 1] + (v[1] == 2 && leap_year(y)) || v[3] > 23 || v[4] > 59 ||
        v[5] > 59)
        return ck_error_set(CK_ERR_DECODE, "KMM timestamp: no such date or time");
    *t = days_from_civil(y, v[1], v[2]) * 86400 + v[3] * 3600 + v[4] * 60 + v[5];
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding.
 */

static int
get_principal(ck_reader *r, char out[CK_KMM_MAX_PRINCIPAL + 1])
{
    size_t avail = ck_reader_remaining(r), scan, n;
    const uint8_t *p = r->data + r->pos, *nul;

    scan = avail < CK_KMM_MAX_PRINCIPAL + 1 ? avail : CK_KMM_MAX_PRINCIPAL + 1;
    nul = memchr(p, 0, scan);
    if (nul == NULL)
        return scan == avail ? ck_error_set(CK_ERR_DECODE, "KMM: unterminated server principal")
                             : ck_error_set(CK_ERR_LIMIT,
                                            "KMM: server principal longer than %d bytes",
                                            CK_KMM_MAX_PRINCIPAL);
    n = (size_t)(nul - p);
    if (n == 0)
        return ck_error_set(CK_ERR_DECODE, "KMM: empty server principal");
    for (size_t i = 0; i < n; i++)
        if (!printable(p[i]))
            return ck_error_set(CK_ERR_DECODE, "KMM: server principal is not printable ASCII");
    memcpy(out, p, n + 1);
    r->pos += n + 1;
    return 0;
}

static int
get_asd(ck_reader *r, uint8_t doi, struct ck_kmm_msg *m)
{
    const uint8_t *user = NULL;
    uint8_t ulen = 0;
    int rc;

    if (doi == CK_KMM_DOI_IPSEC)
        return ck_reader_u32be(r, &m->spi);
    if ((rc = ck_reader_u8(r, &m->snmp.engine_id_len)) != 0)
        return rc;
    if (m->snmp.engine_id_len == 0)
        return ck_error_set(CK_ERR_DECODE, "KMM: empty SNMPv3 engine ID");
    if (m->snmp.engine_id_len > CK_KMM_MAX_ENGINE_ID)
        return ck_error_set(CK_ERR_LIMIT, "KMM: SNMPv3 engine ID of %u bytes (max %d)",
                            m->snmp.engine_id_len, CK_KMM_MAX_ENGINE_ID);
    if ((rc = ck_reader_copy(r, m->snmp.engine_id, m->snmp.engine_id_len)) != 0 ||
        (rc = ck_reader_u32be(r, &m->snmp.engine_boots)) != 0 ||
        (rc = ck_reader_u32be(r, &m->snmp.engine_time)) != 0 ||
        (rc = ck_reader_u8(r, &ulen)) != 0)
        return rc;
    if (ulen == 0)
        return ck_error_set(CK_ERR_DECODE, "KMM: empty USM user name");
    if (ulen > CK_KMM_MAX_USM_USER)
        return ck_error_set(CK_ERR_LIMIT, "KMM: USM user name of %u bytes (max %d)", ulen,
                            CK_KMM_MAX_USM_USER);
    if ((rc = ck_reader_bytes(r, ulen, &user)) != 0)
        return rc;
    for (size_t i = 0; i < ulen; i++)
        if (!printable(user[i]))
            return ck_error_set(CK_ERR_DECODE, "KMM: USM user name is not printable ASCII");
    memcpy(m->snmp.user, user, ulen);
    m->snmp.user[ulen] = '\0';
    return 0;
}

static int
get_suites(ck_reader *r, struct ck_kmm_msg *m)
{
    int rc;

    if ((rc = ck_reader_u8(r, &m->n_suites)) != 0)
        return rc;
    if (m->n_suites == 0)
        return ck_error_set(CK_ERR_DECODE, "KMM: no ciphersuite");
    if (m->n_suites > CK_KMM_MAX_SUITES)
        return ck_error_set(CK_ERR_LIMIT, "KMM: %u ciphersuites (max %d)", m->n_suites,
                            CK_KMM_MAX_SUITES);
    if (m->type == CK_KMM_AP_REP && m->n_suites != 1)
        return ck_error_set(CK_ERR_DECODE, "KMM: AP Reply with %u ciphersuites (must be 1)",
                            m->n_suites);
    for (unsigned i = 0; i < m->n_suites; i++)
        if ((rc = ck_reader_u8(r, &m->suites[i].auth)) != 0 ||
            (rc = ck_reader_u8(r, &m->suites[i].enc)) != 0)
            return rc;
    return 0;
}

static int
get_flag(ck_reader *r, uint8_t *flag, const char *what)
{
    int rc = ck_reader_u8(r, flag);

    if (rc == 0 && *flag > 1)
        return ck_error_set(CK_ERR_DECODE, "KMM: %s flag 0x%02x (must be 0 or 1)", what, *flag);
    return rc;
}

static int
get_krb(ck_reader *r, struct ck_kmm_msg *m)
{
    size_t total = 0;
    int rc = der_element_len(r->data + r->pos, ck_reader_remaining(r), krb_tag(m->type), &total);

    if (rc == 0)
        rc = ck_reader_bytes(r, total, &m->krb);
    if (rc == 0)
        m->krb_len = total;
    return rc;
}

static int
get_hmac(ck_reader *r, struct ck_kmm_msg *m)
{
    m->hmac_offset = r->pos;
    return ck_reader_copy(r, m->hmac, CK_KMM_HMAC_LEN);
}

static int
get_timestamp(ck_reader *r, int64_t *t)
{
    const uint8_t *p = NULL;
    int rc = ck_reader_bytes(r, CK_KMM_TIMESTAMP_LEN, &p);

    return rc != 0 ? rc : ck_kmm_timestamp_parse((const char *)p, CK_KMM_TIMESTAMP_LEN, t);
}

static int
decode_body(ck_reader *r, struct ck_kmm_msg *m)
{
    int rc = 0;

    switch (m->type) {
    case CK_KMM_WAKE_UP:
        if ((rc = ck_reader_u32be(r, &m->server_nonce)) == 0)
            rc = get_principal(r, m->server_principal);
        break;
    case CK_KMM_AP_REQ:
        if ((rc = get_krb(r, m)) == 0 && (rc = ck_reader_u32be(r, &m->server_nonce)) == 0 &&
            (rc = get_asd(r, m->doi, m)) == 0 && (rc = get_suites(r, m)) == 0 &&
            (rc = get_flag(r, &m->reestablish, "re-establish")) == 0)
            rc = get_hmac(r, m);
        break;
    case CK_KMM_AP_REP:
        if ((rc = get_krb(r, m)) == 0 && (rc = get_asd(r, m->doi, m)) == 0 &&
            (rc = get_suites(r, m)) == 0 && (rc = ck_reader_u32be(r, &m->lifetime)) == 0 &&
            (rc = ck_reader_u32be(r, &m->grace)) == 0 &&
            (rc = get_flag(r, &m->reestablish, "re-establish")) == 0 &&
            (rc = get_flag(r, &m->ack_required, "ACK-required")) == 0)
            rc = get_hmac(r, m);
        break;
    case CK_KMM_SP_RECOVERED:
        rc = get_hmac(r, m);
        break;
    case CK_KMM_REKEY:
        if ((rc = ck_reader_u32be(r, &m->server_nonce)) == 0 &&
            (rc = get_principal(r, m->server_principal)) == 0 &&
            (rc = get_timestamp(r, &m->timestamp)) == 0 && (rc = get_asd(r, m->doi, m)) == 0 &&
            (rc = get_suites(r, m)) == 0 && (rc = ck_reader_u32be(r, &m->lifetime)) == 0 &&
            (rc = ck_reader_u32be(r, &m->grace)) == 0 &&
            (rc = get_flag(r, &m->reestablish, "re-establish")) == 0)
            rc = get_hmac(r, m);
        break;
    case CK_KMM_ERROR_REPLY:
        rc = get_krb(r, m);
        break;
    default:
        rc = ck_error_set(CK_ERR_UNSUPPORTED, "KMM: unknown KMMID 0x%02x", m->type);
        break;
    }
    return rc;
}

int
ck_kmm_decode(const uint8_t *buf, size_t len, struct ck_kmm_msg *out)
{
    ck_reader r;
    int rc;

    if (out == NULL || (buf == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "KMM decode: no buffer");
    memset(out, 0, sizeof(*out));
    if (len < KMM_HDR_LEN)
        return ck_error_set(CK_ERR_DECODE, "KMM: %zu bytes, shorter than the header", len);
    if (len > CK_KMM_MAX_MSG)
        return ck_error_set(CK_ERR_LIMIT, "KMM: %zu-byte message (max %d)", len, CK_KMM_MAX_MSG);
    out->type = buf[0];
    out->doi = buf[1];
    out->version = buf[2];
    if ((rc = check_pair(out->type, out->doi)) != 0)
        goto out;
    if (out->version >> 4 != CK_KMM_VERSION >> 4) {
        rc = ck_error_set(CK_ERR_UNSUPPORTED, "KMM: version %u.%u (major 1 supported)",
                          out->version >> 4, out->version & 0x0f);
        goto out;
    }
    ck_reader_init(&r, buf, len);
    r.pos = KMM_HDR_LEN;
    if ((rc = decode_body(&r, out)) != 0)
        goto out;
    if (ck_reader_remaining(&r) != 0)
        rc = ck_error_set(CK_ERR_DECODE, "KMM %s: %zu trailing bytes", ck_kmm_type_name(out->type),
                          ck_reader_remaining(&r));
out:
    if (rc != 0) {
        out->krb = NULL;
        out->krb_len = 0;
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding into the caller's buffer.
 */

struct kmm_out {
    uint8_t *p;
    size_t cap, len;
};

static int
put(struct kmm_out *o, const void *data, size_t n)
{
    if (n > o->cap - o->len)
        return ck_error_set(CK_ERR_LIMIT, "KMM encode: buffer of %zu bytes too small", o->cap);
    if (n > 0)
        memcpy(o->p + o->len, data, n);
    o->len += n;
    return 0;
}

static int
put_u8(struct kmm_out *o, uint8_t v)
{
    return put(o, &v, 1);
}

static int
put_u32(struct kmm_out *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

    return put(o, b, 4);
}

static int
put_principal(struct kmm_out *o, const char *s)
{
    size_t n = strnlen(s, CK_KMM_MAX_PRINCIPAL + 1);

    if (n > CK_KMM_MAX_PRINCIPAL)
        return ck_error_set(CK_ERR_LIMIT, "KMM encode: server principal over %d bytes",
                            CK_KMM_MAX_PRINCIPAL);
    if (n == 0)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: empty server principal");
    for (size_t i = 0; i < n; i++)
        if (!printable((uint8_t)s[i]))
            return ck_error_set(CK_ERR_INVAL, "KMM encode: server principal not printable");
    return put(o, s, n + 1);
}

static int
put_asd(struct kmm_out *o, const struct ck_kmm_msg *m)
{
    const struct ck_kmm_snmp_asd *a = &m->snmp;
    size_t ulen;
    int rc;

    if (m->doi == CK_KMM_DOI_IPSEC)
        return put_u32(o, m->spi);
    if (a->engine_id_len == 0)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: empty SNMPv3 engine ID");
    if (a->engine_id_len > CK_KMM_MAX_ENGINE_ID)
        return ck_error_set(CK_ERR_LIMIT, "KMM encode: SNMPv3 engine ID over %d bytes",
                            CK_KMM_MAX_ENGINE_ID);
    ulen = strnlen(a->user, sizeof(a->user));
    if (ulen > CK_KMM_MAX_USM_USER)
        return ck_error_set(CK_ERR_LIMIT, "KMM encode: USM user name over %d bytes",
                            CK_KMM_MAX_USM_USER);
    if (ulen == 0)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: empty USM user name");
    for (size_t i = 0; i < ulen; i++)
        if (!printable((uint8_t)a->user[i]))
            return ck_error_set(CK_ERR_INVAL, "KMM encode: USM user name not printable");
    if ((rc = put_u8(o, a->engine_id_len)) != 0 ||
        (rc = put(o, a->engine_id, a->engine_id_len)) != 0 ||
        (rc = put_u32(o, a->engine_boots)) != 0 || (rc = put_u32(o, a->engine_time)) != 0 ||
        (rc = put_u8(o, (uint8_t)ulen)) != 0)
        return rc;
    return put(o, a->user, ulen);
}

static int
put_suites(struct kmm_out *o, const struct ck_kmm_msg *m)
{
    int rc;

    if (m->n_suites == 0)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: no ciphersuite");
    if (m->n_suites > CK_KMM_MAX_SUITES)
        return ck_error_set(CK_ERR_LIMIT, "KMM encode: %u ciphersuites (max %d)", m->n_suites,
                            CK_KMM_MAX_SUITES);
    if (m->type == CK_KMM_AP_REP && m->n_suites != 1)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: AP Reply needs exactly 1 ciphersuite");
    if ((rc = put_u8(o, m->n_suites)) != 0)
        return rc;
    for (unsigned i = 0; i < m->n_suites; i++)
        if ((rc = put_u8(o, m->suites[i].auth)) != 0 || (rc = put_u8(o, m->suites[i].enc)) != 0)
            return rc;
    return 0;
}

static int
put_flag(struct kmm_out *o, uint8_t flag)
{
    if (flag > 1)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: flag 0x%02x (must be 0 or 1)", flag);
    return put_u8(o, flag);
}

static int
put_krb(struct kmm_out *o, const struct ck_kmm_msg *m)
{
    size_t total = 0;
    int rc;

    if (m->krb == NULL || m->krb_len == 0)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: no Kerberos message");
    /* The receiver frames the blob by its DER header, so it must describe exactly krb_len. */
    if ((rc = der_element_len(m->krb, m->krb_len, krb_tag(m->type), &total)) != 0 ||
        total != m->krb_len)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: Kerberos message is not one %s element",
                            m->type == CK_KMM_AP_REQ   ? "AP-REQ"
                            : m->type == CK_KMM_AP_REP ? "AP-REP"
                                                       : "KRB-ERROR");
    return put(o, m->krb, m->krb_len);
}

static int
put_timestamp(struct kmm_out *o, int64_t t)
{
    char ts[CK_KMM_TIMESTAMP_LEN + 1];
    int rc = ck_kmm_timestamp_format(t, ts);

    return rc != 0 ? rc : put(o, ts, CK_KMM_TIMESTAMP_LEN);
}

static int
encode_body(struct kmm_out *o, const struct ck_kmm_msg *m)
{
    int rc = 0;

    switch (m->type) {
    case CK_KMM_WAKE_UP:
        if ((rc = put_u32(o, m->server_nonce)) == 0)
            rc = put_principal(o, m->server_principal);
        break;
    case CK_KMM_AP_REQ:
        if ((rc = put_krb(o, m)) == 0 && (rc = put_u32(o, m->server_nonce)) == 0 &&
            (rc = put_asd(o, m)) == 0 && (rc = put_suites(o, m)) == 0 &&
            (rc = put_flag(o, m->reestablish)) == 0)
            rc = put(o, m->hmac, CK_KMM_HMAC_LEN);
        break;
    case CK_KMM_AP_REP:
        if ((rc = put_krb(o, m)) == 0 && (rc = put_asd(o, m)) == 0 &&
            (rc = put_suites(o, m)) == 0 && (rc = put_u32(o, m->lifetime)) == 0 &&
            (rc = put_u32(o, m->grace)) == 0 && (rc = put_flag(o, m->reestablish)) == 0 &&
            (rc = put_flag(o, m->ack_required)) == 0)
            rc = put(o, m->hmac, CK_KMM_HMAC_LEN);
        break;
    case CK_KMM_SP_RECOVERED:
        rc = put(o, m->hmac, CK_KMM_HMAC_LEN);
        break;
    case CK_KMM_REKEY:
        if ((rc = put_u32(o, m->server_nonce)) == 0 &&
            (rc = put_principal(o, m->server_principal)) == 0 &&
            (rc = put_timestamp(o, m->timestamp)) == 0 && (rc = put_asd(o, m)) == 0 &&
            (rc = put_suites(o, m)) == 0 && (rc = put_u32(o, m->lifetime)) == 0 &&
            (rc = put_u32(o, m->grace)) == 0 && (rc = put_flag(o, m->reestablish)) == 0)
            rc = put(o, m->hmac, CK_KMM_HMAC_LEN);
        break;
    case CK_KMM_ERROR_REPLY:
        rc = put_krb(o, m);
        break;
    default:
        rc = ck_error_set(CK_ERR_INVAL, "KMM encode: unknown KMMID 0x%02x", m->type);
        break;
    }
    return rc;
}

int
ck_kmm_encode(const struct ck_kmm_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
    struct kmm_out o = {buf, cap, 0};
    uint8_t version;
    int rc;

    if (m == NULL || buf == NULL || len == NULL)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: missing argument");
    *len = 0;
    if (check_pair(m->type, m->doi) != 0)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: KMMID 0x%02x with DOI 0x%02x undefined",
                            m->type, m->doi);
    /* 0 means "this implementation's version"; any minor of major 1 is kept as given so that a
     * decoded message re-encodes to the same bytes. */
    version = m->version == 0 ? CK_KMM_VERSION : m->version;
    if (version >> 4 != CK_KMM_VERSION >> 4)
        return ck_error_set(CK_ERR_INVAL, "KMM encode: version 0x%02x", version);
    if ((rc = put_u8(&o, m->type)) != 0 || (rc = put_u8(&o, m->doi)) != 0 ||
        (rc = put_u8(&o, version)) != 0 || (rc = encode_body(&o, m)) != 0)
        return rc;
    if (o.len > CK_KMM_MAX_MSG)
        return ck_error_set(CK_ERR_LIMIT, "KMM encode: %zu bytes exceed a UDP datagram", o.len);
    *len = o.len;
    return 0;
}
