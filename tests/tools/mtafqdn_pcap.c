/* mtafqdn_pcap OUT.pcap [--seeds DIR] [--control]: writes a classic pcap (link type 101, raw
 * IPv4) of MTA-FQDN datagrams on UDP 2246 made by lib/provwire, as the KDC (10.0.0.1:40000) and
 * cablekey-prov (10.0.0.3:2246) exchange them:
 *   1. request (AP-REQ + KRB-SAFE) for MAC 00:11:22:33:44:55, its key hash, revocation time 0;
 *   2. reply (AP-REP + KRB-SAFE): mta-001122334455.mta.example.net, 192.0.2.55;
 *   3. request for an unknown MAC (00:11:22:33:44:66) and 4. its Error Reply (type 3);
 *   5. a request under a ticket sealed with a key prov does not have and 6. prov's KRB-ERROR.
 * tests/interop/t_mtafqdn_tshark.sh reads it back with tshark. --seeds DIR also writes the
 * datagrams, their KRB-SAFE payloads and device-channel messages as files (the fuzz seeds of
 * tests/fuzz/corpus/mtafqdn and provdev). --control writes only a request and a reply whose
 * KRB-SAFE carries a Reply payload too short for its IPv4 address: the negative control that proves the
 * script's malformed-packet check can fail. The unknown MAC's request carries the revocation
 * time 1764633600 (2025-12-02 00:00:00Z), so the script can check that field's decoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/apenv.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/principal.h"
#include "cablekey/prov_wire.h"
#include "cablekey/safepriv.h"
#include "cablekey/util.h"
#include "pcap_write.h"

#define REALM "EXAMPLE.NET"
#define SERVICE "mtafqdn/prov.example.net@" REALM
#define CLIENT "krbtgt/" REALM "@" REALM

static const uint8_t addr_kdc[4] = {10, 0, 0, 1}, addr_prov[4] = {10, 0, 0, 3};
static const uint8_t MAC[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55};

struct ctx {
    ck_keytab *kt;
    ck_rcache *rc;
    CK_TICKET *ticket, *bad_ticket;
    ck_key session, bad_session;
    int64_t now;
    FILE *f;
    uint32_t n;
    const char *seeds;
};

static int
lookup(void *arg, const ck_mtafqdn_msg *req, ck_mtafqdn_msg *rep)
{
    (void)arg;
    if (memcmp(req->mac, MAC, 6) != 0) {
        rep->type = CK_MTAFQDN_ERROR;
        rep->error = CK_MTAFQDN_ERR_UNKNOWN_DEVICE;
        ck_strlcpy(rep->text, "unknown device", sizeof(rep->text));
        return 0;
    }
    rep->type = CK_MTAFQDN_REPLY;
    ck_strlcpy(rep->fqdn, "mta-001122334455.mta.example.net", sizeof(rep->fqdn));
    rep->ipv4[0] = 192;
    rep->ipv4[1] = 0;
    rep->ipv4[2] = 2;
    rep->ipv4[3] = 55;
    return 0;
}

static int
seed(const struct ctx *c, const char *name, const uint8_t *p, size_t len)
{
    char path[1024];
    FILE *f;
    int ok;

    if (c->seeds == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/%s", c->seeds, name);
    if ((f = fopen(path, "wb")) == NULL)
        return ck_error_set(CK_ERR_IO, "%s: cannot write", path);
    ok = fwrite(p, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : ck_error_set(CK_ERR_IO, "%s: write", path);
}

static int
put(struct ctx *c, bool from_kdc, const uint8_t *p, size_t len)
{
    struct pcap_udp4 a;

    a.src = from_kdc ? addr_kdc : addr_prov;
    a.dst = from_kdc ? addr_prov : addr_kdc;
    a.sport = from_kdc ? 40000 : CK_MTAFQDN_PORT;
    a.dport = from_kdc ? CK_MTAFQDN_PORT : 40000;
    return pcap_write_udp4(c->f, ++c->n, &a, p, len);
}

/* The control's answer: the AP-REP of ans followed by a KRB-SAFE (any key: Wireshark does not
 * check it) over a Reply payload of 6 + 2 bytes, shorter than its IPv4 address alone. */
static int
control_answer(uint8_t **ans, size_t *ans_len)
{
    static const uint8_t bad[] = {CK_MTAFQDN_REPLY, 0, 0, 0x11, 0x8b, CK_MTAFQDN_VERSION, 1, 2};
    ck_krb_address dir1;
    ck_krb_msg_params params;
    ck_key k;
    uint8_t *safe = NULL, *out;
    size_t first = 0, safe_len = 0;
    int rc;

    memset(&params, 0, sizeof(params));
    params.use_timestamp = true;
    params.s_address = &dir1;
    if ((rc = ck_mtafqdn_split(*ans, *ans_len, &first)) != 0 ||
        (rc = ck_krb_address_directional(1, &dir1)) != 0 ||
        (rc = ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &k)) != 0)
        return rc;
    rc = ck_krb_safe_build(&k, bad, sizeof(bad), &params, &safe, &safe_len);
    ck_key_clear(&k);
    if (rc != 0)
        return rc;
    if ((out = malloc(first + safe_len)) == NULL) {
        free(safe);
        return CK_ERR_NOMEM;
    }
    memcpy(out, *ans, first);
    memcpy(out + first, safe, safe_len);
    free(safe);
    free(*ans);
    *ans = out;
    *ans_len = first + safe_len;
    return 0;
}

/* One request/answer pair; the request under ticket/session; names the seed files. */
static int
pair(struct ctx *c, const uint8_t mac[6], uint32_t revoked, bool bad_key, bool control,
     const char *tag)
{
    ck_mtafqdn_msg req, rep;
    ck_mtafqdn_client st;
    uint8_t *dg = NULL, *ans = NULL, *payload = NULL;
    size_t dg_len = 0, ans_len = 0, payload_len = 0;
    char name[64];
    int rc;

    memset(&req, 0, sizeof(req));
    req.type = CK_MTAFQDN_REQUEST;
    memcpy(req.mac, mac, 6);
    for (int i = 0; i < 20; i++)
        req.spki_sha1[i] = (uint8_t)(0xa0 + i);
    req.mfg_revoked = revoked;
    if ((rc = ck_mtafqdn_request_build(bad_key ? c->bad_ticket : c->ticket,
                                       bad_key ? &c->bad_session : &c->session, REALM,
                                       "krbtgt/" REALM, &req, c->now, &st, &dg, &dg_len)) != 0 ||
        (rc = ck_mtafqdn_serve(dg, dg_len, ck_ap_keytab_key_fn, c->kt, SERVICE, c->rc, 300,
                               c->now, lookup, NULL, &ans, &ans_len)) != 0)
        goto out;
    /* The client side must accept what the server said (else the capture shows a lie). */
    rc = ck_mtafqdn_reply_read(ans, ans_len, &st, 300, c->now, &rep);
    if (rc != 0 && !(bad_key && rc == CK_ERR_KRB))
        goto out;
    req.type = CK_MTAFQDN_REQUEST;
    req.enterprise = CK_MTAFQDN_ENTERPRISE;
    req.version = CK_MTAFQDN_VERSION;
    if (control && (rc = control_answer(&ans, &ans_len)) != 0)
        goto out;
    if ((rc = put(c, true, dg, dg_len)) != 0 || (rc = put(c, false, ans, ans_len)) != 0)
        goto out;
    snprintf(name, sizeof(name), "%s_request", tag);
    if ((rc = seed(c, name, dg, dg_len)) != 0)
        goto out;
    snprintf(name, sizeof(name), "%s_answer", tag);
    if ((rc = seed(c, name, ans, ans_len)) != 0 ||
        (rc = ck_mtafqdn_payload_encode(&req, &payload, &payload_len)) != 0)
        goto out;
    snprintf(name, sizeof(name), "%s_payload_request", tag);
    if ((rc = seed(c, name, payload, payload_len)) != 0)
        goto out;
    free(payload);
    payload = NULL;
    if (!bad_key) {
        if ((rc = ck_mtafqdn_payload_encode(&rep, &payload, &payload_len)) != 0)
            goto out;
        snprintf(name, sizeof(name), "%s_payload_answer", tag);
        rc = seed(c, name, payload, payload_len);
    }
out:
    free(payload);
    free(dg);
    free(ans);
    ck_mtafqdn_client_clear(&st);
    return rc;
}

/* Device-channel seeds: FETCH/ACK/CHECK requests and a reply with a certificate. */
static int
provdev_seeds(struct ctx *c)
{
    static const uint8_t cert[] = {0x30, 0x06, 0x02, 0x01, 0x06, 0x02, 0x01, 0x07};
    ck_provdev_req req;
    ck_provdev_rep rep;
    uint8_t *p = NULL;
    size_t len = 0;
    int rc;

    if (c->seeds == NULL)
        return 0;
    memset(&req, 0, sizeof(req));
    for (uint8_t t = CK_PROVDEV_FETCH; t <= CK_PROVDEV_CHECK; t++) {
        char name[32];

        req.type = t;
        req.cert_id = t == CK_PROVDEV_ACK ? 42 : 0;
        memset(req.sha256, t == CK_PROVDEV_CHECK ? 0x5a : 0, sizeof(req.sha256));
        if ((rc = ck_provdev_req_encode(&req, &p, &len)) != 0)
            return rc;
        snprintf(name, sizeof(name), "provdev_req_%u", (unsigned)t);
        rc = seed(c, name, p, len);
        free(p);
        if (rc != 0)
            return rc;
    }
    memset(&rep, 0, sizeof(rep));
    ck_strlcpy(rep.text, "current operator certificate", sizeof(rep.text));
    rep.cert_id = 42;
    rep.n_certs = 2;
    rep.certs[0] = rep.certs[1] = (uint8_t *)cert;
    rep.cert_lens[0] = rep.cert_lens[1] = sizeof(cert);
    if ((rc = ck_provdev_rep_encode(&rep, &p, &len)) != 0)
        return rc;
    rc = seed(c, "provdev_rep_fetch", p, len);
    free(p);
    return rc;
}

int
main(int argc, char **argv)
{
    struct ctx c;
    ck_principal *svc = NULL;
    ck_key key, bad;
    bool control = false;
    int rc = 1;

    memset(&c, 0, sizeof(c));
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--control") == 0)
            control = true;
        else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
            c.seeds = argv[++i];
        else
            argc = 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: mtafqdn_pcap OUT.pcap [--seeds DIR] [--control]\n");
        return 2;
    }
    c.now = time(NULL);
    if (ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &key) != 0 ||
        ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &bad) != 0 ||
        ck_keytab_new(&c.kt) != 0 || ck_principal_parse(SERVICE, NULL, 0, &svc) != 0 ||
        ck_keytab_add(c.kt, svc, 1, 0, &key) != 0 || ck_rcache_new(0, 600, &c.rc) != 0 ||
        ck_mtafqdn_ticket_mint(SERVICE, &key, 1, CLIENT, c.now, 300, &c.ticket, &c.session) !=
            0 ||
        ck_mtafqdn_ticket_mint(SERVICE, &bad, 1, CLIENT, c.now, 300, &c.bad_ticket,
                               &c.bad_session) != 0) {
        fprintf(stderr, "mtafqdn_pcap: %s\n", ck_error_context());
        goto out;
    }
    if ((c.f = fopen(argv[1], "wb")) == NULL || pcap_write_header(c.f) != 0) {
        perror(argv[1]);
        goto out;
    }
    {
        uint8_t other[6];
        memcpy(other, MAC, 6);
        other[5] = 0x66;
        if (pair(&c, MAC, 0, false, control, "reply") != 0 ||
            (!control && (pair(&c, other, 1764633600u, false, false, "error") != 0 ||
                          pair(&c, MAC, 0, true, false, "krberror") != 0 ||
                          provdev_seeds(&c) != 0))) {
            fprintf(stderr, "mtafqdn_pcap: %s\n", ck_error_context());
            goto out;
        }
    }
    rc = 0;
out:
    if (c.f != NULL && fclose(c.f) != 0)
        rc = 1;
    ck_principal_free(svc);
    ck_keytab_free(c.kt);
    ck_rcache_free(c.rc);
    CK_TICKET_free(c.ticket);
    CK_TICKET_free(c.bad_ticket);
    ck_key_clear(&c.session);
    ck_key_clear(&c.bad_session);
    ck_key_clear(&key);
    ck_key_clear(&bad);
    return rc;
}
