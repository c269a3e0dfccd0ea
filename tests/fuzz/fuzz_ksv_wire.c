/* Fuzzes every parser of the keying server's wire layer (cablekey/ksv_wire.h). The first input
 * byte picks the parser, the rest is the datagram:
 *   0 ck_ksv_wire_kind         3 ck_ksv_hello_err_parse (accepted -> rebuilt byte for byte)
 *   1 ck_ksv_sealed_key_id     4 ck_ksv_hello_accept with a fixed keytab key
 *   2 ck_ksv_nudge_parse (accepted -> rebuilt byte for byte)
 *   5 ck_ksv_open_msg with a fixed session (fresh window per input, so runs are reproducible)
 *   6 ck_ksv_hello_rep_open with a fixed HELLO context
 * Every refusal must be one of the documented codes and leave nothing behind.
 *
 * The seed corpus (tests/fuzz/corpus/ksv_wire) is made with the same fixed keys by this file's
 * generator: cc -DFUZZ_KSV_WIRE_GEN -Iinclude -Ilib tests/fuzz/fuzz_ksv_wire.c
 * build/libcablekey_endpoint.a $(pkg-config --libs libcrypto libsrtp2) -lpthread -o gen &&
 * ./gen tests/fuzz/corpus/ksv_wire. Its HELLOs carry the generation time as authenticator time;
 * the harness accepts them thanks to a clock skew of a century. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/ksv_wire.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

#define SERVICE "ksv/ksv1.test@TEST.REALM"
#define NOW 1764662400
#define SKEW (100ll * 366 * 86400)
#define KEY_ID 0x4b535631u
#define CTIME 1764662400
#define CUSEC 123456
#define NONCE 0x01020304u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fixed_key(ck_key *k, uint8_t fill)
{
    uint8_t raw[32];

    memset(raw, fill, sizeof(raw));
    if (ck_key_init(k, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, raw, sizeof(raw)) != 0)
        abort();
}

static int
key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
       int32_t *krb_error)
{
    (void)arg;
    (void)ticket;
    (void)kvno;
    if (etype != CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96) {
        *krb_error = CK_KRB_AP_ERR_NOKEY;
        return CK_ERR_NOTFOUND;
    }
    fixed_key(key, 0x11);
    return 0;
}

static void
fixed_ctx(struct ck_ksv_hello_ctx *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->node_nonce = NONCE;
    ctx->ctime = CTIME;
    ctx->cusec = CUSEC;
    fixed_key(&ctx->session_key, 0x22);
    fixed_key(&ctx->node_subkey, 0x44);
}

static bool
zero(const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static void
fuzz_kind(const uint8_t *d, size_t n)
{
    enum ck_ksv_kind k = 0;
    uint32_t id = 0;
    int ret = ck_ksv_wire_kind(d, n, &k);

    if (ret == 0 ? (k < CK_KSV_K_HELLO || k > CK_KSV_K_REKEY)
                 : (ret != CK_ERR_DECODE && ret != CK_ERR_LIMIT))
        abort();
    ret = ck_ksv_sealed_key_id(d, n, &id);
    if (ret == 0 ? id == 0 : (ret != CK_ERR_DECODE && ret != CK_ERR_LIMIT))
        abort();
}

static void
fuzz_nudge(const uint8_t *d, size_t n)
{
    char name[CK_KSV_MAX_NAME + 1];
    uint64_t t = 0;
    uint8_t *b = NULL;
    size_t len = 0;
    int ret = ck_ksv_nudge_parse(d, n, &t, name);

    if (ret != 0) {
        if ((ret != CK_ERR_DECODE && ret != CK_ERR_LIMIT) || name[0] != '\0')
            abort();
        return;
    }
    if (ck_ksv_nudge_build(t, name, &b, &len) != 0 || len != n || memcmp(b, d, n) != 0)
        abort();
    free(b);
}

static void
fuzz_hello_err(const uint8_t *d, size_t n)
{
    char text[CK_KSV_MAX_TEXT + 1];
    uint32_t nonce = 0;
    uint16_t code = 0;
    uint8_t *b = NULL;
    size_t len = 0;
    int ret = ck_ksv_hello_err_parse(d, n, &nonce, &code, text);

    if (ret != 0) {
        if ((ret != CK_ERR_DECODE && ret != CK_ERR_LIMIT) || text[0] != '\0')
            abort();
        return;
    }
    if (ck_ksv_hello_err_build(nonce, code, text, &b, &len) != 0 || len != n ||
        memcmp(b, d, n) != 0)
        abort();
    free(b);
}

static void
fuzz_accept(const uint8_t *d, size_t n)
{
    struct ck_ksv_hello_in in;
    struct ck_ksv_seal s;
    uint8_t *rep = NULL;
    size_t rep_len = 0;
    enum ck_ksv_kind k = 0;
    int ret = ck_ksv_hello_accept(d, n, key_fn, NULL, SERVICE, NULL, SKEW, NOW, KEY_ID, &in, &s,
                                  &rep, &rep_len);

    if (ret != 0) {
        if (ret > 0 || rep != NULL || rep_len != 0 || !zero(&s, sizeof(s)))
            abort();
        return;
    }
    if (rep == NULL || s.key_id != KEY_ID || in.node_name[0] == '\0' || in.client[0] == '\0' ||
        ck_ksv_wire_kind(rep, rep_len, &k) != 0 || k != CK_KSV_K_HELLO_REP)
        abort();
    free(rep);
    ck_ksv_seal_clear(&s);
}

static void
fuzz_open(const uint8_t *d, size_t n)
{
    struct ck_ksv_seal s;
    struct ck_ksv_msg *m = (struct ck_ksv_msg *)&m;
    uint8_t *b = NULL;
    size_t len = 0;
    ck_key sub;
    int ret;

    fixed_key(&sub, 0x33);
    if (ck_ksv_seal_init(&s, &sub, KEY_ID, false) != 0)
        abort();
    ret = ck_ksv_open_msg(&s, d, n, &m);
    if (ret != 0) {
        if (m != NULL ||
            (ret != CK_ERR_DECODE && ret != CK_ERR_LIMIT && ret != CK_ERR_INTEGRITY &&
             ret != CK_ERR_PROTO && ret != CK_ERR_INVAL))
            abort();
        /* Only an authentic datagram may move the window. */
        if (ret != CK_ERR_PROTO && (s.rx_top != 0 || s.rx_window != 0))
            abort();
    } else {
        if (m == NULL || m->key_id != KEY_ID || s.rx_top == 0 ||
            ck_ksv_msg_encode(m, &b, &len) != 0 || len + CK_KSV_SEAL_OVERHEAD != n)
            abort();
        ck_free_secret(b, len);
        ck_ksv_msg_free(m);
    }
    ck_key_clear(&sub);
    ck_ksv_seal_clear(&s);
}

static void
fuzz_rep_open(const uint8_t *d, size_t n)
{
    struct ck_ksv_hello_ctx ctx;
    struct ck_ksv_seal s;
    int32_t krb = 0;
    int ret;

    fixed_ctx(&ctx);
    ret = ck_ksv_hello_rep_open(&ctx, d, n, &s, &krb);
    if (ret != 0 ? (ret > 0 || !zero(&s, sizeof(s))) : s.key_id == 0)
        abort();
    ck_ksv_seal_clear(&s);
    ck_ksv_hello_ctx_clear(&ctx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *d = data + 1;
    size_t n;

    if (size == 0 || size > CK_KSV_MAX_DGRAM + 2)
        return 0;
    n = size - 1;
    switch (data[0] % 7) {
    case 0:
    case 1:
        fuzz_kind(d, n);
        break;
    case 2:
        fuzz_nudge(d, n);
        break;
    case 3:
        fuzz_hello_err(d, n);
        break;
    case 4:
        fuzz_accept(d, n);
        break;
    case 5:
        fuzz_open(d, n);
        break;
    default:
        fuzz_rep_open(d, n);
        break;
    }
    return 0;
}

#ifdef FUZZ_KSV_WIRE_GEN
/* ---- seed generator (see the top comment) ------------------------------------------------ */

static void
put(const char *dir, const char *name, uint8_t sel, const uint8_t *b, size_t len)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "wb")) == NULL || fputc(sel, f) == EOF || fwrite(b, 1, len, f) != len ||
        fclose(f) != 0)
        abort();
}

static ck_creds *
gen_creds(void)
{
    static const char *const svc[] = {"ksv", "ksv1.test"};
    static const char *const cl[] = {"host", "n1"};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_TICKET *tkt = CK_TICKET_new();
    ck_creds *c = calloc(1, sizeof(*c));
    ck_key skey;
    uint8_t *der = NULL;
    size_t der_len = 0;

    fixed_key(&skey, 0x11);
    fixed_key(&c->session_key, 0x22);
    if (ck_asn1_flags_set(&etp->flags, 0) != 0 || ck_key_to_asn1(&c->session_key, &etp->key) ||
        ck_asn1_kstring_set(&etp->crealm, "TEST.REALM") ||
        ck_asn1_principal_set(etp->cname, CK_NT_SRV_HST, cl, 2) ||
        ck_asn1_time_set(&etp->authtime, 0) || ck_asn1_time_set(&etp->endtime, 4102444800) ||
        ck_asn1_kstring_set(&tkt->realm, "TEST.REALM") ||
        ck_asn1_principal_set(tkt->sname, CK_NT_SRV_INST, svc, 2))
        abort();
    etp->transited->tr_type = 1;
    if (ck_ticket_seal(tkt, etp, &skey, 2) != 0 || ck_asn1_ticket_encode(tkt, &der, &der_len))
        abort();
    c->ticket = ck_memdup(der, der_len);
    c->ticket_len = der_len;
    c->endtime = 4102444800;
    if (ck_principal_build("TEST.REALM", CK_NT_SRV_HST, cl, 2, &c->client) != 0)
        abort();
    ck_asn1_free_der(der, der_len);
    CK_TICKET_free(tkt);
    CK_ENC_TICKET_PART_free(etp);
    return c;
}

static void
gen_sealed(const char *dir)
{
    struct ck_ksv_seal s;
    struct ck_ksv_msg *m = NULL;
    struct ck_ksv_sa sa;
    struct ck_ksv_group g;
    struct ck_ksv_delete del;
    uint8_t *b = NULL;
    size_t len = 0;
    ck_key sub;
    char name[64];
    static const uint16_t types[] = {CK_KSV_ACK, CK_KSV_REGISTER, CK_KSV_DELETE, CK_KSV_ALARM,
                                     CK_KSV_GROUP_ACK, CK_KSV_RECOVER};

    fixed_key(&sub, 0x33);
    if (ck_ksv_seal_init(&s, &sub, KEY_ID, true) != 0)
        abort();
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (ck_ksv_msg_new(types[i], &m) != 0)
            abort();
        m->msg_id = (uint32_t)i + 1;
        m->timestamp = 1764662400000000ull;
        memset(&sa, 0, sizeof(sa));
        memset(&g, 0, sizeof(g));
        memset(&del, 0, sizeof(del));
        switch (types[i]) {
        case CK_KSV_ACK:
            m->reflected_ts = 1764662400000000ull;
            m->acked_msg_id = 7;
            break;
        case CK_KSV_REGISTER:
            m->flags = CK_KSV_F_REFRESH | CK_KSV_F_ACK_REQD;
            sa.direction = CK_KSV_DIR_OUT;
            sa.proto = CK_KSV_PROTO_ESP;
            sa.mode = CK_KSV_MODE_TRANSPORT;
            sa.peer.family = CK_KSV_AF_IPV4;
            sa.peer.addr[0] = 10;
            sa.peer.addr[3] = 2;
            sa.spi = 0x1001;
            sa.enc_alg = 20;
            sa.life_sec = 100;
            sa.enc_key_len = 20;
            memset(sa.enc_key, 0x5a, 20);
            g.group_id = 1;
            g.epoch = 5;
            g.member_index = 9;
            g.root_version = 3;
            g.gflags = CK_KSV_GF_WANT_ACK;
            g.mcast.family = CK_KSV_AF_IPV4;
            g.mcast.addr[0] = 239;
            g.mcast.addr[3] = 1;
            g.mcast_port = 7443;
            memset(g.sign_pub, 0xe0, 32);
            g.spi = 0x2001;
            g.proto = CK_KSV_PROTO_ESP;
            g.mode = CK_KSV_MODE_TRANSPORT;
            g.enc_alg = 20;
            g.enc_key_len = 20;
            g.life_sec = 3600;
            g.degree = 4;
            g.id_len = 2;
            g.member_id[0] = 1;
            g.n_keys = 3;
            for (uint8_t k = 0; k < 3; k++) {
                g.keys[k].level = k;
                g.keys[k].key_len = 16;
                g.keys[k].version = k == 0 ? 3 : 1;
                memset(g.keys[k].key, 0xa0 + k, 16);
                if (ck_ksv_path_node(4, g.member_id, k, &g.keys[k].node) != 0)
                    abort();
            }
            if (ck_ksv_msg_add_sa(m, &sa) != 0 || ck_ksv_msg_add_group(m, &g) != 0)
                abort();
            break;
        case CK_KSV_DELETE:
            m->flags = CK_KSV_F_ACK_REQD;
            del.direction = CK_KSV_DIR_IN;
            del.peer.family = CK_KSV_AF_IPV6;
            del.peer.addr[0] = 0x20;
            del.spi = 0x1001;
            if (ck_ksv_msg_add_delete(m, &del) != 0)
                abort();
            break;
        case CK_KSV_ALARM:
            m->alarm = CK_KSV_ALARM_SA_EXPIRED;
            m->alarm_peer.family = CK_KSV_AF_IPV4;
            m->alarm_peer.addr[0] = 10;
            m->alarm_spi = 0x1001;
            break;
        default:
            m->grp_id = 1;
            m->grp_epoch = 6;
            break;
        }
        if (ck_ksv_seal_msg(&s, m, &b, &len) != 0)
            abort();
        snprintf(name, sizeof(name), "sealed_%s", ck_ksv_type_name(types[i]));
        put(dir, name, 5, b, len);
        free(b);
        ck_ksv_msg_free(m);
    }
    ck_ksv_seal_clear(&s);
}

int
main(int argc, char **argv)
{
    struct ck_ksv_hello_ctx ctx;
    ck_creds *c = gen_creds();
    ck_key sess, sub;
    uint8_t *b = NULL, *der = NULL;
    size_t len = 0, der_len = 0;
    uint32_t seq = KEY_ID;
    int64_t now;

    if (argc != 2)
        return 2;
    ck_now(&now, NULL);
    if (ck_ksv_hello_build(c, "n1", now, &ctx, &b, &len) != 0)
        abort();
    put(argv[1], "hello", 4, b, len);
    put(argv[1], "kind_hello", 0, b, len);
    free(b);
    ck_ksv_hello_ctx_clear(&ctx);
    /* A HELLO_REP for the harness's fixed context. */
    fixed_key(&sess, 0x22);
    fixed_key(&sub, 0x55);
    if (ck_ap_rep_build(&sess, CTIME, CUSEC, &sub, &seq, &der, &der_len) != 0 ||
        (b = malloc(14 + der_len)) == NULL)
        abort();
    memcpy(b, "CKSV\x01\x02\x00\x00", 8);
    ck_put_be32(b + 8, NONCE);
    b[12] = (uint8_t)(der_len >> 8);
    b[13] = (uint8_t)der_len;
    memcpy(b + 14, der, der_len);
    put(argv[1], "hello_rep", 6, b, 14 + der_len);
    free(b);
    ck_asn1_free_der(der, der_len);
    if (ck_ksv_hello_err_build(NONCE, CK_KSV_HERR_NOT_HERE, "node n1 may not register here", &b,
                               &len) != 0)
        abort();
    put(argv[1], "hello_err", 3, b, len);
    free(b);
    if (ck_ksv_nudge_build(1764662400000000ull, "ksv1", &b, &len) != 0)
        abort();
    put(argv[1], "nudge", 2, b, len);
    put(argv[1], "kind_nudge", 1, b, len);
    free(b);
    gen_sealed(argv[1]);
    ck_creds_free(c);
    return 0;
}
#endif
