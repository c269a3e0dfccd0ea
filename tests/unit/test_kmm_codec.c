/* KMM codec: round trips of every message and DOI, and the refusals (truncation, trailing bytes,
 * unknown KMMID/DOI/version, wrong embedded tag, suite counts, Rekey with SNMPv3, timestamps). */
#include <stdint.h>
#include <string.h>

#include "ck_test.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"

/* Minimal well-formed DER elements with the tags the codec checks (content is not decoded). */
static const uint8_t krb_ap_req[] = {0x6e, 0x05, 0x30, 0x03, 0x02, 0x01, 0x05};
static const uint8_t krb_ap_rep[] = {0x6f, 0x05, 0x30, 0x03, 0x02, 0x01, 0x05};
static const uint8_t krb_error[] = {0x7e, 0x05, 0x30, 0x03, 0x02, 0x01, 0x05};
static uint8_t krb_long[300]; /* [APPLICATION 14] with a 2-octet long-form length */

static void
init_long(void)
{
    krb_long[0] = 0x6e;
    krb_long[1] = 0x82;
    krb_long[2] = 0x01;
    krb_long[3] = 0x28; /* 296 */
    for (size_t i = 4; i < sizeof(krb_long); i++)
        krb_long[i] = (uint8_t)i;
}

static void
fill(struct ck_kmm_msg *m, uint8_t type, uint8_t doi)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->doi = doi;
    m->version = CK_KMM_VERSION;
    m->server_nonce = 0x01020304;
    ck_strlcpy(m->server_principal, "cms/cms1.example.net@EXAMPLE.NET", sizeof(m->server_principal));
    m->timestamp = 1764633600; /* 2025-12-02 00:00:00Z */
    if (type == CK_KMM_AP_REQ) {
        m->krb = krb_ap_req;
        m->krb_len = sizeof(krb_ap_req);
    } else if (type == CK_KMM_AP_REP) {
        m->krb = krb_ap_rep;
        m->krb_len = sizeof(krb_ap_rep);
    } else if (type == CK_KMM_ERROR_REPLY) {
        m->krb = krb_error;
        m->krb_len = sizeof(krb_error);
    }
    m->spi = 0xdeadbeef;
    m->snmp.engine_id_len = 12;
    for (int i = 0; i < 12; i++)
        m->snmp.engine_id[i] = (uint8_t)(0x80 + i);
    m->snmp.engine_boots = 7;
    m->snmp.engine_time = 123456;
    ck_strlcpy(m->snmp.user, "mta-user", sizeof(m->snmp.user));
    if (doi == CK_KMM_DOI_IPSEC) {
        m->n_suites = type == CK_KMM_AP_REP ? 1 : 3;
        m->suites[0] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
        m->suites[1] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES};
        m->suites[2] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL};
    } else {
        m->n_suites = type == CK_KMM_AP_REP ? 1 : 2;
        m->suites[0] = (struct ck_kmm_suite){CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_DES};
        m->suites[1] = (struct ck_kmm_suite){CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_NULL};
    }
    m->lifetime = 3600;
    m->grace = 600;
    m->reestablish = 1;
    m->ack_required = type == CK_KMM_AP_REP;
    for (int i = 0; i < CK_KMM_HMAC_LEN; i++)
        m->hmac[i] = (uint8_t)(0xa0 + i);
}

static bool
defined(uint8_t type, uint8_t doi)
{
    return !(type == CK_KMM_REKEY && doi == CK_KMM_DOI_SNMPV3);
}

static void
check_fields(const struct ck_kmm_msg *a, const struct ck_kmm_msg *b)
{
    CHECK_INT_EQ(a->type, b->type);
    CHECK_INT_EQ(a->doi, b->doi);
    CHECK_INT_EQ(a->version, b->version);
    switch (a->type) {
    case CK_KMM_WAKE_UP:
        CHECK_INT_EQ(a->server_nonce, b->server_nonce);
        CHECK(strcmp(a->server_principal, b->server_principal) == 0);
        break;
    case CK_KMM_REKEY:
        CHECK_INT_EQ(a->server_nonce, b->server_nonce);
        CHECK(strcmp(a->server_principal, b->server_principal) == 0);
        CHECK_INT_EQ(a->timestamp, b->timestamp);
        break;
    case CK_KMM_AP_REQ:
        CHECK_INT_EQ(a->server_nonce, b->server_nonce);
        break;
    default:
        break;
    }
    if (a->type == CK_KMM_AP_REQ || a->type == CK_KMM_AP_REP || a->type == CK_KMM_ERROR_REPLY)
        CHECK_MEM_EQ(a->krb, a->krb_len, b->krb, b->krb_len);
    if (a->type == CK_KMM_AP_REQ || a->type == CK_KMM_AP_REP || a->type == CK_KMM_REKEY) {
        if (a->doi == CK_KMM_DOI_IPSEC) {
            CHECK_INT_EQ(a->spi, b->spi);
        } else {
            CHECK_MEM_EQ(a->snmp.engine_id, a->snmp.engine_id_len, b->snmp.engine_id,
                         b->snmp.engine_id_len);
            CHECK_INT_EQ(a->snmp.engine_boots, b->snmp.engine_boots);
            CHECK_INT_EQ(a->snmp.engine_time, b->snmp.engine_time);
            CHECK(strcmp(a->snmp.user, b->snmp.user) == 0);
        }
        CHECK_MEM_EQ(a->suites, 2u * a->n_suites, b->suites, 2u * b->n_suites);
        CHECK_INT_EQ(a->reestablish, b->reestablish);
    }
    if (a->type == CK_KMM_AP_REP || a->type == CK_KMM_REKEY) {
        CHECK_INT_EQ(a->lifetime, b->lifetime);
        CHECK_INT_EQ(a->grace, b->grace);
    }
    if (a->type == CK_KMM_AP_REP)
        CHECK_INT_EQ(a->ack_required, b->ack_required);
    if (a->type != CK_KMM_WAKE_UP && a->type != CK_KMM_ERROR_REPLY)
        CHECK_MEM_EQ(a->hmac, CK_KMM_HMAC_LEN, b->hmac, CK_KMM_HMAC_LEN);
}

/* Every defined message x DOI: encode, decode, same fields, re-encode gives the same bytes, and
 * every strict prefix is refused. */
static void
test_round_trip_all(void)
{
    uint8_t buf[1024], again[1024];
    struct ck_kmm_msg m, d;
    size_t len = 0, len2 = 0;
    int n = 0;

    init_long();
    for (uint8_t type = CK_KMM_WAKE_UP; type <= CK_KMM_ERROR_REPLY; type++) {
        for (uint8_t doi = CK_KMM_DOI_IPSEC; doi <= CK_KMM_DOI_SNMPV3; doi++) {
            if (!defined(type, doi))
                continue;
            fill(&m, type, doi);
            CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
            CHECK_OK(ck_kmm_decode(buf, len, &d));
            check_fields(&m, &d);
            CHECK_OK(ck_kmm_encode(&d, again, sizeof(again), &len2));
            CHECK_MEM_EQ(buf, len, again, len2);
            if (type != CK_KMM_WAKE_UP && type != CK_KMM_ERROR_REPLY) {
                CHECK_INT_EQ(d.hmac_offset, len - CK_KMM_HMAC_LEN);
            }
            for (size_t cut = 0; cut < len; cut++) {
                int rc = ck_kmm_decode(buf, cut, &d);
                if (rc != CK_ERR_DECODE) {
                    fprintf(stderr, "  %s/%s cut at %zu: %d\n", ck_kmm_type_name(type),
                            ck_kmm_doi_name(doi), cut, rc);
                    CHECK(rc == CK_ERR_DECODE);
                }
            }
            /* One trailing byte. */
            buf[len] = 0;
            CHECK_INT_EQ(ck_kmm_decode(buf, len + 1, &d), CK_ERR_DECODE);
            n++;
        }
    }
    CHECK_INT_EQ(n, 11);
}

/* Exact bytes of a few messages against the layout of PROTOCOL-NOTES §6. */
static void
test_exact_layout(void)
{
    uint8_t buf[256];
    struct ck_kmm_msg m;
    size_t len = 0;
    static const uint8_t wake[] = {0x01, 0x01, 0x10, 0x01, 0x02, 0x03, 0x04, 'c', 'm',
                                   's', '/', 'a', '@', 'R', 0x00};
    static const uint8_t spr_hdr[] = {0x04, 0x02, 0x10};

    fill(&m, CK_KMM_WAKE_UP, CK_KMM_DOI_IPSEC);
    ck_strlcpy(m.server_principal, "cms/a@R", sizeof(m.server_principal));
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    CHECK_MEM_EQ(buf, len, wake, sizeof(wake));

    fill(&m, CK_KMM_SP_RECOVERED, CK_KMM_DOI_SNMPV3);
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    CHECK_INT_EQ(len, 23);
    CHECK_MEM_EQ(buf, 3, spr_hdr, 3);

    /* AP Reply, IPsec: blob | spi | n=1 | suite | lifetime | grace | re | ack | hmac. */
    fill(&m, CK_KMM_AP_REP, CK_KMM_DOI_IPSEC);
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    CHECK_INT_EQ(len, 3 + sizeof(krb_ap_rep) + 4 + 1 + 2 + 4 + 4 + 1 + 1 + 20);
    {
        static const uint8_t tail[] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x0c, 0x00, 0x00,
                                       0x0e, 0x10, 0x00, 0x00, 0x02, 0x58, 0x01, 0x01};
        CHECK_MEM_EQ(buf + 3 + sizeof(krb_ap_rep), sizeof(tail), tail, sizeof(tail));
    }

    /* Rekey: nonce | principal NUL | 13-byte timestamp | spi | ... */
    fill(&m, CK_KMM_REKEY, CK_KMM_DOI_IPSEC);
    ck_strlcpy(m.server_principal, "c@R", sizeof(m.server_principal));
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    CHECK_MEM_EQ(buf + 3 + 4, 4, "c@R", 4);
    CHECK_MEM_EQ(buf + 3 + 4 + 4, 13, "251202000000Z", 13);
    CHECK_INT_EQ(len, 3 + 4 + 4 + 13 + 4 + 1 + 6 + 4 + 4 + 1 + 20);

    /* SNMPv3 ASD: idlen | id | boots | time | ulen | user. */
    fill(&m, CK_KMM_AP_REQ, CK_KMM_DOI_SNMPV3);
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    {
        const uint8_t *asd = buf + 3 + sizeof(krb_ap_req) + 4;
        CHECK_INT_EQ(asd[0], 12);
        CHECK_INT_EQ(asd[1], 0x80);
        CHECK_MEM_EQ(asd + 13, 4, "\x00\x00\x00\x07", 4);
        CHECK_INT_EQ(asd[21], 8);
        CHECK_MEM_EQ(asd + 22, 8, "mta-user", 8);
        CHECK_INT_EQ(asd[30], 2); /* n */
    }
}

static void
test_long_form_blob(void)
{
    uint8_t buf[1024];
    struct ck_kmm_msg m, d;
    size_t len = 0;

    init_long();
    fill(&m, CK_KMM_AP_REQ, CK_KMM_DOI_IPSEC);
    m.krb = krb_long;
    m.krb_len = sizeof(krb_long);
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    CHECK_OK(ck_kmm_decode(buf, len, &d));
    CHECK_INT_EQ(d.krb_len, sizeof(krb_long));
    CHECK(d.krb == buf + 3);
    /* Non-minimal long form (0x81 0x05), indefinite (0x80), 5 length octets: refused. */
    {
        uint8_t bad[64];
        memcpy(bad, buf, 3);
        bad[3] = 0x6e;
        bad[4] = 0x81;
        bad[5] = 0x05;
        CHECK_INT_EQ(ck_kmm_decode(bad, sizeof(bad), &d), CK_ERR_DECODE);
        bad[4] = 0x80;
        CHECK_INT_EQ(ck_kmm_decode(bad, sizeof(bad), &d), CK_ERR_DECODE);
        bad[4] = 0x85;
        CHECK_INT_EQ(ck_kmm_decode(bad, sizeof(bad), &d), CK_ERR_DECODE);
        bad[4] = 0x84; /* 4 octets claiming ~4 GB */
        bad[5] = 0xff;
        CHECK_INT_EQ(ck_kmm_decode(bad, sizeof(bad), &d), CK_ERR_DECODE);
    }
    /* Encoding refuses a blob whose header does not describe exactly krb_len bytes. */
    m.krb_len = sizeof(krb_long) - 1;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_INVAL);
}

static void
test_header_refusals(void)
{
    uint8_t buf[256];
    struct ck_kmm_msg m, d;
    size_t len = 0;

    fill(&m, CK_KMM_AP_REQ, CK_KMM_DOI_IPSEC);
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    buf[0] = 0x07;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_UNSUPPORTED);
    buf[0] = 0x00;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_UNSUPPORTED);
    buf[0] = CK_KMM_AP_REQ;
    buf[1] = 0x03;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_UNSUPPORTED);
    buf[1] = 0x00;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_UNSUPPORTED);
    buf[1] = CK_KMM_DOI_IPSEC;
    buf[2] = 0x20;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_UNSUPPORTED);
    buf[2] = 0x00;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_UNSUPPORTED);
    buf[2] = 0x13; /* minor 3 of major 1: accepted and kept */
    CHECK_OK(ck_kmm_decode(buf, len, &d));
    CHECK_INT_EQ(d.version, 0x13);
    /* Wrong embedded tag: an AP-REP inside an AP Request. */
    buf[2] = 0x10;
    buf[3] = 0x6f;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_kmm_decode(buf, 0, &d), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_kmm_decode(buf, 2, &d), CK_ERR_DECODE);

    /* Rekey with SNMPv3: refused both ways. */
    fill(&m, CK_KMM_REKEY, CK_KMM_DOI_IPSEC);
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    buf[1] = CK_KMM_DOI_SNMPV3;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_UNSUPPORTED);
    m.doi = CK_KMM_DOI_SNMPV3;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_INVAL);
    m.doi = 9;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_INVAL);
    m.doi = CK_KMM_DOI_IPSEC;
    m.type = 0x42;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_INVAL);
}

/* Offset of the suite count in an encoded AP Request / AP Reply (IPsec). */
static void
test_suite_counts(void)
{
    uint8_t buf[512];
    struct ck_kmm_msg m, d;
    size_t len = 0, n_off;

    fill(&m, CK_KMM_AP_REQ, CK_KMM_DOI_IPSEC);
    m.n_suites = CK_KMM_MAX_SUITES;
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    CHECK_OK(ck_kmm_decode(buf, len, &d));
    CHECK_INT_EQ(d.n_suites, CK_KMM_MAX_SUITES);
    m.n_suites = CK_KMM_MAX_SUITES + 1;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_LIMIT);
    m.n_suites = 0;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_INVAL);

    /* On the wire: n = 0 and n = 33 (with 33 pairs present). */
    m.n_suites = 1;
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    n_off = 3 + sizeof(krb_ap_req) + 4 + 4;
    CHECK_INT_EQ(buf[n_off], 1);
    {
        uint8_t big[512];
        size_t blen = 0;
        memcpy(big, buf, n_off);
        big[n_off] = 0;
        blen = n_off + 1;
        memcpy(big + blen, buf + n_off + 3, len - n_off - 3);
        blen += len - n_off - 3;
        CHECK_INT_EQ(ck_kmm_decode(big, blen, &d), CK_ERR_DECODE);
        big[n_off] = 33;
        blen = n_off + 1;
        memset(big + blen, 0x02, 66);
        blen += 66;
        memcpy(big + blen, buf + n_off + 3, len - n_off - 3);
        blen += len - n_off - 3;
        CHECK_INT_EQ(ck_kmm_decode(big, blen, &d), CK_ERR_LIMIT);
    }

    /* AP Reply: exactly one. */
    fill(&m, CK_KMM_AP_REP, CK_KMM_DOI_IPSEC);
    m.n_suites = 2;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_INVAL);
    fill(&m, CK_KMM_AP_REQ, CK_KMM_DOI_IPSEC); /* same body as a 2-suite AP-REP minus nonce */
    m.n_suites = 2;
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    {
        /* Build an AP Reply with n = 2 by hand: blob | spi | 2 | 2 pairs | life | grace | re |
         * ack | hmac. */
        uint8_t rep[128];
        size_t o = 0;
        static const uint8_t tail[] = {0, 0, 0x0e, 0x10, 0, 0, 2, 0x58, 0, 0};
        rep[o++] = CK_KMM_AP_REP;
        rep[o++] = CK_KMM_DOI_IPSEC;
        rep[o++] = CK_KMM_VERSION;
        memcpy(rep + o, krb_ap_rep, sizeof(krb_ap_rep));
        o += sizeof(krb_ap_rep);
        memcpy(rep + o, "\x01\x02\x03\x04\x02\x02\x0c\x02\x03", 9);
        o += 9;
        memcpy(rep + o, tail, sizeof(tail));
        o += sizeof(tail);
        memset(rep + o, 0x55, 20);
        o += 20;
        CHECK_INT_EQ(ck_kmm_decode(rep, o, &d), CK_ERR_DECODE);
        rep[3 + sizeof(krb_ap_rep) + 4] = 1; /* n = 1: now one pair too many -> trailing */
        CHECK_INT_EQ(ck_kmm_decode(rep, o, &d), CK_ERR_DECODE);
        /* Drop one pair: valid. */
        memmove(rep + 3 + sizeof(krb_ap_rep) + 7, rep + 3 + sizeof(krb_ap_rep) + 9,
                o - (3 + sizeof(krb_ap_rep) + 9));
        CHECK_OK(ck_kmm_decode(rep, o - 2, &d));
    }
}

static void
test_principal_and_strings(void)
{
    uint8_t buf[600];
    struct ck_kmm_msg m, d;
    size_t len = 0;

    fill(&m, CK_KMM_WAKE_UP, CK_KMM_DOI_SNMPV3);
    memset(m.server_principal, 'a', CK_KMM_MAX_PRINCIPAL);
    m.server_principal[CK_KMM_MAX_PRINCIPAL] = '\0';
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    CHECK_OK(ck_kmm_decode(buf, len, &d));
    CHECK_INT_EQ(strlen(d.server_principal), CK_KMM_MAX_PRINCIPAL);
    /* 256 characters before the NUL: over the limit. */
    buf[len - 1] = 'a';
    buf[len] = '\0';
    CHECK_INT_EQ(ck_kmm_decode(buf, len + 1, &d), CK_ERR_LIMIT);
    /* No NUL at all. */
    CHECK_INT_EQ(ck_kmm_decode(buf, 20, &d), CK_ERR_DECODE);
    /* Empty principal; control character. */
    ck_strlcpy(m.server_principal, "x@R", sizeof(m.server_principal));
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    buf[7] = '\0';
    CHECK_INT_EQ(ck_kmm_decode(buf, 8, &d), CK_ERR_DECODE);
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    buf[8] = '\n';
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_DECODE);
    m.server_principal[0] = '\0';
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_INVAL);

    /* SNMPv3 ASD limits. */
    fill(&m, CK_KMM_AP_REP, CK_KMM_DOI_SNMPV3);
    m.snmp.engine_id_len = 33;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_LIMIT);
    m.snmp.engine_id_len = 0;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_INVAL);
    m.snmp.engine_id_len = 32;
    memset(m.snmp.user, 'u', sizeof(m.snmp.user));
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_LIMIT);
    m.snmp.user[32] = '\0';
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    CHECK_OK(ck_kmm_decode(buf, len, &d));
    CHECK_INT_EQ(strlen(d.snmp.user), 32);
    /* Engine ID length byte 33 on the wire. */
    buf[3 + sizeof(krb_ap_rep)] = 33;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_LIMIT);
    buf[3 + sizeof(krb_ap_rep)] = 0;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_DECODE);

    /* Flags other than 0/1. */
    fill(&m, CK_KMM_AP_REP, CK_KMM_DOI_IPSEC);
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    buf[len - 21] = 2;
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_DECODE);
    m.reestablish = 2;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_INVAL);

    /* Output buffer too small. */
    fill(&m, CK_KMM_AP_REP, CK_KMM_DOI_IPSEC);
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, len - 1, &len), CK_ERR_LIMIT);
}

static void
test_timestamps(void)
{
    char s[CK_KMM_TIMESTAMP_LEN + 1];
    int64_t t = 0;
    static const char *bad[] = {
        "250230000000Z", "251301000000Z", "250001000000Z", "250100000000Z", "250101240000Z",
        "250101006000Z", "250101000060Z", "230229000000Z", "2501010000002", "25010100000 Z",
        "+50101000000Z", "2501010000-0Z", "210431000000Z",
    };
    uint8_t buf[256];
    struct ck_kmm_msg m, d;
    size_t len = 0;

    CHECK_OK(ck_kmm_timestamp_parse("700101000000Z", 13, &t));
    CHECK_INT_EQ(t, 0);
    CHECK_OK(ck_kmm_timestamp_parse("500101000000Z", 13, &t));
    CHECK_INT_EQ(t, -631152000LL);
    CHECK_OK(ck_kmm_timestamp_parse("491231235959Z", 13, &t));
    CHECK_INT_EQ(t, 2524607999LL);
    CHECK_OK(ck_kmm_timestamp_parse("240229120000Z", 13, &t)); /* leap day */
    CHECK_INT_EQ(t, 1709208000LL);
    CHECK_OK(ck_kmm_timestamp_parse("000229000000Z", 13, &t)); /* 2000 is a leap year */
    CHECK_INT_EQ(t, 951782400LL);
    CHECK_OK(ck_kmm_timestamp_format(1709208000LL, s));
    CHECK(strcmp(s, "240229120000Z") == 0);
    CHECK_OK(ck_kmm_timestamp_format(-1, s));
    CHECK(strcmp(s, "691231235959Z") == 0);
    CHECK_INT_EQ(ck_kmm_timestamp_format(2524608000LL, s), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_kmm_timestamp_format(-631152001LL, s), CK_ERR_INVAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ck_kmm_timestamp_parse(bad[i], 13, &t) != CK_ERR_DECODE) {
            fprintf(stderr, "  accepted %s\n", bad[i]);
            CHECK(0);
        }
    }
    CHECK_INT_EQ(ck_kmm_timestamp_parse("700101000000Z", 12, &t), CK_ERR_DECODE);
    /* Every second-of-day format/parse round trip over a few days across a year end. */
    for (int64_t x = 946598400LL; x < 946598400LL + 3 * 86400; x += 997) {
        CHECK_OK(ck_kmm_timestamp_format(x, s));
        CHECK_OK(ck_kmm_timestamp_parse(s, 13, &t));
        CHECK_INT_EQ(t, x);
    }
    /* A bad timestamp inside a Rekey. */
    fill(&m, CK_KMM_REKEY, CK_KMM_DOI_IPSEC);
    ck_strlcpy(m.server_principal, "c@R", sizeof(m.server_principal));
    CHECK_OK(ck_kmm_encode(&m, buf, sizeof(buf), &len));
    memcpy(buf + 11, "251302000000Z", 13);
    CHECK_INT_EQ(ck_kmm_decode(buf, len, &d), CK_ERR_DECODE);
    m.timestamp = 4000000000LL;
    CHECK_INT_EQ(ck_kmm_encode(&m, buf, sizeof(buf), &len), CK_ERR_INVAL);
}

static void
test_names_and_suites(void)
{
    struct ck_kmm_suite aes = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
    struct ck_kmm_suite des3 = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES};
    struct ck_kmm_suite null = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL};
    struct ck_kmm_suite md5aes = {CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_AES128};
    struct ck_kmm_suite rc5 = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_RC5};
    struct ck_kmm_suite sdes = {CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_DES};
    struct ck_kmm_suite snull = {CK_KMM_SNMP_AUTH_MD5, CK_KMM_SNMP_PRIV_NULL};
    size_t e = 0, a = 0;

    CHECK(strcmp(ck_kmm_type_name(CK_KMM_AP_REQ), "AP Request") == 0);
    CHECK(strcmp(ck_kmm_type_name(9), "unknown") == 0);
    CHECK(strcmp(ck_kmm_doi_name(CK_KMM_DOI_SNMPV3), "SNMPv3") == 0);
    CHECK(strcmp(ck_kmm_auth_name(CK_KMM_DOI_IPSEC, 2), "HMAC-SHA-1-96") == 0);
    CHECK(strcmp(ck_kmm_auth_name(CK_KMM_DOI_SNMPV3, 0x21), "HMAC-MD5") == 0);
    CHECK(strcmp(ck_kmm_enc_name(CK_KMM_DOI_SNMPV3, 0x21), "DES-CBC") == 0);
    CHECK(strcmp(ck_kmm_enc_name(CK_KMM_DOI_IPSEC, 0x0c), "AES-128-CBC") == 0);
    CHECK(strcmp(ck_kmm_enc_name(CK_KMM_DOI_IPSEC, 0x21), "unknown") == 0);

    CHECK(ck_kmm_suite_supported(CK_KMM_DOI_IPSEC, aes));
    CHECK(!ck_kmm_suite_supported(CK_KMM_DOI_IPSEC, rc5));
    CHECK(!ck_kmm_suite_supported(CK_KMM_DOI_SNMPV3, aes));
    CHECK(!ck_kmm_suite_supported(CK_KMM_DOI_IPSEC, sdes));
    CHECK(ck_kmm_suite_rank(CK_KMM_DOI_IPSEC, aes) > ck_kmm_suite_rank(CK_KMM_DOI_IPSEC, md5aes));
    CHECK(ck_kmm_suite_rank(CK_KMM_DOI_IPSEC, md5aes) > ck_kmm_suite_rank(CK_KMM_DOI_IPSEC, des3));
    CHECK(ck_kmm_suite_rank(CK_KMM_DOI_IPSEC, des3) > ck_kmm_suite_rank(CK_KMM_DOI_IPSEC, null));
    CHECK(ck_kmm_suite_rank(CK_KMM_DOI_IPSEC, null) > 0);
    CHECK_INT_EQ(ck_kmm_suite_rank(CK_KMM_DOI_IPSEC, rc5), 0);
    CHECK(ck_kmm_suite_rank(CK_KMM_DOI_SNMPV3, sdes) > ck_kmm_suite_rank(CK_KMM_DOI_SNMPV3, snull));

    CHECK_OK(ck_kmm_suite_key_lengths(CK_KMM_DOI_IPSEC, aes, &e, &a));
    CHECK(e == 16 && a == 20);
    CHECK_OK(ck_kmm_suite_key_lengths(CK_KMM_DOI_IPSEC, des3, &e, &a));
    CHECK(e == 24 && a == 20);
    CHECK_OK(ck_kmm_suite_key_lengths(CK_KMM_DOI_IPSEC, null, &e, &a));
    CHECK(e == 0 && a == 20);
    CHECK_OK(ck_kmm_suite_key_lengths(CK_KMM_DOI_IPSEC, md5aes, &e, &a));
    CHECK(e == 16 && a == 16);
    CHECK_OK(ck_kmm_suite_key_lengths(CK_KMM_DOI_SNMPV3, sdes, &e, &a));
    CHECK(e == 16 && a == 20);
    CHECK_OK(ck_kmm_suite_key_lengths(CK_KMM_DOI_SNMPV3, snull, &e, &a));
    CHECK(e == 0 && a == 16);
    CHECK_INT_EQ(ck_kmm_suite_key_lengths(CK_KMM_DOI_IPSEC, rc5, &e, &a), CK_ERR_UNSUPPORTED);

    /* Short names: every implemented suite has one and parses back; nothing else does. */
    {
        struct ck_kmm_suite s, back;
        int named = 0;
        for (uint8_t doi = CK_KMM_DOI_IPSEC; doi <= CK_KMM_DOI_SNMPV3; doi++)
            for (int x = 0; x < 256; x++)
                for (int y = 0; y < 256; y++) {
                    const char *n;
                    s.auth = (uint8_t)x;
                    s.enc = (uint8_t)y;
                    n = ck_kmm_suite_short_name(doi, s);
                    if (!ck_kmm_suite_supported(doi, s)) {
                        CHECK(strcmp(n, "unknown") == 0);
                        continue;
                    }
                    named++;
                    CHECK_OK(ck_kmm_suite_from_short_name(doi, n, &back));
                    CHECK(back.auth == s.auth && back.enc == s.enc);
                }
        CHECK_INT_EQ(named, 10);
        CHECK(strcmp(ck_kmm_suite_short_name(CK_KMM_DOI_IPSEC, aes), "sha1-aes128") == 0);
        CHECK_INT_EQ(ck_kmm_suite_from_short_name(CK_KMM_DOI_SNMPV3, "sha1-aes128", &back),
                     CK_ERR_UNSUPPORTED);
        CHECK_INT_EQ(ck_kmm_suite_from_short_name(CK_KMM_DOI_IPSEC, "SHA1-AES128", &back),
                     CK_ERR_UNSUPPORTED);
    }
}

CK_TEST_MAIN("kmm_codec", CK_TEST_CASE(test_round_trip_all), CK_TEST_CASE(test_exact_layout),
             CK_TEST_CASE(test_long_form_blob), CK_TEST_CASE(test_header_refusals),
             CK_TEST_CASE(test_suite_counts), CK_TEST_CASE(test_principal_and_strings),
             CK_TEST_CASE(test_timestamps), CK_TEST_CASE(test_names_and_suites))
