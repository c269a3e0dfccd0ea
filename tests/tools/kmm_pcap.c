/* kmm_pcap OUT.pcap [--hex|--control]: writes a classic pcap (link type 101, raw IPv4) holding every KMM
 * message x DOI the codec defines, built with lib/kmm around real Kerberos messages (an AP-REQ
 * with a sealed ticket, an AP-REP with a sub-key, a KRB-ERROR) and sealed with cablekey's HMACs.
 * tests/interop/t_kmm_tshark.sh reads it back with tshark. --hex also prints each datagram as
 * "<KMMID> <DOI> <hex>" on stdout (docs/PROTOCOL.md's sealed-message vectors came from it).
 * --control writes only a Rekey whose DOI byte was changed to SNMPv3 afterwards, a pair the
 * protocol does not define: the negative control that proves the script's tshark checks can
 * fail.
 *
 * The session key and sub-key are the fixed test keys of docs/PROTOCOL.md's vectors, so the
 * HMACs in the capture can be checked by hand; the service key is random. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/nametypes.h"
#include "cablekey/util.h"
#include "pcap_write.h"

#define REALM "EXAMPLE.NET"
#define CMS_PRINCIPAL "cms/cms1.example.net@EXAMPLE.NET"
#define PROV_PRINCIPAL "mtaprovsrvr/prov.example.net@EXAMPLE.NET"

static const uint8_t addr_mta[4] = {10, 0, 0, 2}, addr_cms[4] = {10, 0, 0, 1};

struct kerberos_blobs {
    uint8_t *ap_req, *ap_rep, *krb_error;
    size_t ap_req_len, ap_rep_len, krb_error_len;
};

static void
fixed_key(ck_key *k, uint8_t first)
{
    uint8_t b[32];

    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(first + i);
    if (ck_key_init(k, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, b, sizeof(b)) != 0)
        abort();
}

static int
make_blobs(const ck_key *ks, const ck_key *subkey, struct kerberos_blobs *kb)
{
    static const char *const svc[] = {"cms", "cms1.example.net"};
    static const char *const mta[] = {"mta1"};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_TICKET *ticket = CK_TICKET_new();
    CK_PRINCIPAL_NAME *client = NULL;
    CK_KRB_ERROR_MSG *err = CK_KRB_ERROR_MSG_new();
    ck_key service;
    int64_t now = 0, ctime = 0;
    int32_t usec = 0, cusec = 0;
    int rc;

    ck_now(&now, &usec);
    if (etp == NULL || ticket == NULL || err == NULL) {
        rc = CK_ERR_NOMEM;
        goto out;
    }
    if ((rc = ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &service)) != 0 ||
        (rc = ck_asn1_principal_new(CK_NT_PRINCIPAL, mta, 1, &client)) != 0 ||
        (rc = ck_asn1_flags_set(&etp->flags, 0)) != 0 ||
        (rc = ck_key_to_asn1(ks, &etp->key)) != 0 ||
        (rc = ck_asn1_kstring_set(&etp->crealm, REALM)) != 0 ||
        (rc = ck_asn1_principal_set(etp->cname, CK_NT_PRINCIPAL, mta, 1)) != 0 ||
        (rc = ck_asn1_time_set(&etp->authtime, now)) != 0 ||
        (rc = ck_asn1_time_set(&etp->endtime, now + 36000)) != 0 ||
        (rc = ck_asn1_kstring_set(&ticket->realm, REALM)) != 0 ||
        (rc = ck_asn1_principal_set(ticket->sname, CK_NT_SRV_HST, svc, 2)) != 0)
        goto out;
    etp->transited->tr_type = 1;
    if ((rc = ck_ticket_seal(ticket, etp, &service, 1)) != 0 ||
        (rc = ck_ap_req_build(ticket, ks, REALM, client, CK_AP_OPT_MUTUAL_REQUIRED, NULL,
                              CK_KU_AP_REQ_AUTH, NULL, NULL, &ctime, &cusec, &kb->ap_req,
                              &kb->ap_req_len)) != 0 ||
        (rc = ck_ap_rep_build(ks, ctime, cusec, subkey, NULL, &kb->ap_rep, &kb->ap_rep_len)) != 0)
        goto out;
    err->pvno = CK_KRB5_PVNO;
    err->msg_type = CK_KRB_ERROR;
    err->susec = usec;
    err->error_code = CK_KRB_AP_ERR_MODIFIED;
    CK_PRINCIPAL_NAME_free(err->sname);
    err->sname = NULL;
    if ((rc = ck_asn1_time_set(&err->stime, now)) != 0 ||
        (rc = ck_asn1_kstring_set(&err->realm, REALM)) != 0 ||
        (rc = ck_asn1_principal_new(CK_NT_SRV_HST, svc, 2, &err->sname)) != 0 ||
        (rc = ck_asn1_kstring_set(&err->e_text, "KMM HMAC does not verify")) != 0 ||
        (rc = ck_asn1_krb_error_encode(err, &kb->krb_error, &kb->krb_error_len)) != 0)
        goto out;
out:
    ck_key_clear(&service);
    CK_ENC_TICKET_PART_free(etp);
    CK_TICKET_free(ticket);
    CK_PRINCIPAL_NAME_free(client);
    CK_KRB_ERROR_MSG_free(err);
    return rc;
}

static int
write_packet(FILE *f, uint32_t seq, bool from_mta, const uint8_t *payload, size_t len)
{
    struct pcap_udp4 a = {from_mta ? addr_mta : addr_cms, from_mta ? addr_cms : addr_mta,
                          from_mta ? 40000 : CK_KMM_PORT, from_mta ? CK_KMM_PORT : 40000};

    return pcap_write_udp4(f, seq, &a, payload, len);
}

static void
print_hex(uint8_t type, uint8_t doi, const uint8_t *p, size_t len)
{
    printf("%u %u ", type, doi);
    for (size_t i = 0; i < len; i++)
        printf("%02x", p[i]);
    printf("\n");
}

static void
fill_snmp(struct ck_kmm_snmp_asd *a)
{
    /* RFC 3411 engine ID: CableLabs enterprise 4491, format 3 (MAC address). */
    static const uint8_t id[] = {0x80, 0x00, 0x11, 0x8b, 0x03, 0x00, 0x11, 0x22, 0x33, 0x44,
                                 0x55};
    memcpy(a->engine_id, id, sizeof(id));
    a->engine_id_len = sizeof(id);
    a->engine_boots = 3;
    a->engine_time = 86400;
    ck_strlcpy(a->user, "MTA-Prov-Admin", sizeof(a->user));
}

int
main(int argc, char **argv)
{
    struct kerberos_blobs kb = {0};
    ck_key ks, k;
    uint8_t key_req[CK_KMM_HMAC_KEY_LEN], key_rep[CK_KMM_HMAC_KEY_LEN],
        key_spr[CK_KMM_HMAC_KEY_LEN], key_rekey[CK_KMM_HMAC_KEY_LEN];
    uint8_t buf[4096], last_rep_hmac[CK_KMM_HMAC_LEN] = {0};
    bool hex = argc == 3 && strcmp(argv[2], "--hex") == 0;
    bool control = argc == 3 && strcmp(argv[2], "--control") == 0;
    FILE *f = NULL;
    uint32_t seq = 0;
    int rc = 1;

    if (argc < 2 || (argc == 3 && !hex && !control) || argc > 3) {
        fprintf(stderr, "usage: kmm_pcap OUT.pcap [--hex|--control]\n");
        return 2;
    }
    fixed_key(&ks, 0x00);
    fixed_key(&k, 0x20);
    if (make_blobs(&ks, &k, &kb) != 0 || ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &ks, key_req) != 0 ||
        ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &k, key_rep) != 0 ||
        ck_kmm_hmac_key(CK_KMM_HMAC_SP_RECOVERED, &k, key_spr) != 0 ||
        ck_kmm_hmac_key(CK_KMM_HMAC_REKEY, &k, key_rekey) != 0) {
        fprintf(stderr, "kmm_pcap: %s\n", ck_error_context());
        goto out;
    }
    if ((f = fopen(argv[1], "wb")) == NULL || pcap_write_header(f) != 0) {
        perror(argv[1]);
        goto out;
    }
    for (uint8_t doi = CK_KMM_DOI_IPSEC; doi <= CK_KMM_DOI_SNMPV3; doi++) {
        for (uint8_t type = CK_KMM_WAKE_UP; type <= CK_KMM_ERROR_REPLY; type++) {
            struct ck_kmm_msg m;
            const uint8_t *key = NULL;
            bool from_mta = type == CK_KMM_AP_REQ || type == CK_KMM_SP_RECOVERED;
            size_t len = 0;

            if ((type == CK_KMM_REKEY && doi == CK_KMM_DOI_SNMPV3) ||
                (control && (type != CK_KMM_REKEY || doi != CK_KMM_DOI_IPSEC)))
                continue;
            memset(&m, 0, sizeof(m));
            m.type = type;
            m.doi = doi;
            m.version = CK_KMM_VERSION;
            m.server_nonce = type == CK_KMM_AP_REQ ? 0 : 0x5a17c0de;
            ck_strlcpy(m.server_principal, doi == CK_KMM_DOI_IPSEC ? CMS_PRINCIPAL : PROV_PRINCIPAL,
                       sizeof(m.server_principal));
            m.timestamp = 1764633600; /* 2025-12-02 00:00:00Z */
            m.spi = type == CK_KMM_AP_REQ ? 0x00001001 : 0x00002002;
            if (doi == CK_KMM_DOI_SNMPV3)
                fill_snmp(&m.snmp);
            if (doi == CK_KMM_DOI_IPSEC) {
                m.suites[0] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
                m.suites[1] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES};
                m.suites[2] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL};
                m.n_suites = 3;
            } else {
                m.suites[0] = (struct ck_kmm_suite){CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_DES};
                m.suites[1] = (struct ck_kmm_suite){CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_NULL};
                m.n_suites = 2;
            }
            if (type == CK_KMM_AP_REP)
                m.n_suites = 1;
            m.lifetime = 3600;
            m.grace = 600;
            m.ack_required = type == CK_KMM_AP_REP;
            switch (type) {
            case CK_KMM_AP_REQ:
                m.krb = kb.ap_req;
                m.krb_len = kb.ap_req_len;
                key = key_req;
                break;
            case CK_KMM_AP_REP:
                m.krb = kb.ap_rep;
                m.krb_len = kb.ap_rep_len;
                key = key_rep;
                break;
            case CK_KMM_REKEY:
                key = key_rekey;
                break;
            case CK_KMM_ERROR_REPLY:
                m.krb = kb.krb_error;
                m.krb_len = kb.krb_error_len;
                break;
            default:
                break;
            }
            if (ck_kmm_encode(&m, buf, sizeof(buf), &len) != 0 ||
                (key != NULL && ck_kmm_seal(buf, len, key) != 0) ||
                (type == CK_KMM_SP_RECOVERED &&
                 ck_kmm_sp_recovered_seal(buf, last_rep_hmac, key_spr) != 0)) {
                fprintf(stderr, "kmm_pcap: %s\n", ck_error_context());
                goto out;
            }
            if (control)
                buf[1] = CK_KMM_DOI_SNMPV3;
            if (type == CK_KMM_AP_REP)
                memcpy(last_rep_hmac, buf + len - CK_KMM_HMAC_LEN, CK_KMM_HMAC_LEN);
            if (write_packet(f, ++seq, from_mta, buf, len) != 0) {
                perror(argv[1]);
                goto out;
            }
            if (hex)
                print_hex(type, doi, buf, len);
        }
    }
    if (fclose(f) != 0) {
        f = NULL;
        perror(argv[1]);
        goto out;
    }
    f = NULL;
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    ck_asn1_free_der(kb.ap_req, kb.ap_req_len);
    ck_asn1_free_der(kb.ap_rep, kb.ap_rep_len);
    ck_asn1_free_der(kb.krb_error, kb.krb_error_len);
    ck_key_clear(&ks);
    ck_key_clear(&k);
    return rc;
}
