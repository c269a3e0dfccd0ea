/* The keying server's wire layer (cablekey/ksv_wire.h): a real AP exchange in-process (a ticket
 * sealed with a service key, as the KDC would issue it), HELLO -> HELLO_REP -> sealed messages
 * both ways, and every refusal: wrong key, reflection, replays and the window's edges, every
 * tampered byte, every truncation, a HELLO for another service, an expired ticket, a replayed
 * HELLO, authentic content that does not parse. The session keys are checked against an HKDF
 * computed independently (Python hmac/hashlib, and `openssl kdf`), and one sealed datagram
 * byte for byte against Python's AESGCM. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ck_test.h"
#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/ksv_wire.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

#define REALM "TEST.REALM"
#define SERVICE "ksv/ksv1.test@" REALM
#define TS 1764662400000000ull

/* ---------------------------------------------------------------------------------------------
 * Credentials: a ticket for ksv/<host>@REALM, client host/n1@REALM, valid [start, end].
 */
static ck_key service_key;

static ck_creds *
make_creds(const char *svc_host, int64_t start, int64_t end)
{
    const char *svc[] = {"ksv", svc_host};
    static const char *const cl[] = {"host", "n1"};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_TICKET *tkt = CK_TICKET_new();
    ck_creds *c = calloc(1, sizeof(*c));
    uint8_t *der = NULL;
    size_t der_len = 0;

    if (etp == NULL || tkt == NULL || c == NULL)
        abort();
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &c->session_key));
    CHECK_OK(ck_asn1_flags_set(&etp->flags, 0));
    CHECK_OK(ck_key_to_asn1(&c->session_key, &etp->key));
    CHECK_OK(ck_asn1_kstring_set(&etp->crealm, REALM));
    CHECK_OK(ck_asn1_principal_set(etp->cname, CK_NT_SRV_HST, cl, 2));
    etp->transited->tr_type = 1;
    CHECK_OK(ck_asn1_time_set(&etp->authtime, start));
    CHECK_OK(ck_asn1_time_set(&etp->endtime, end));
    CHECK_OK(ck_asn1_kstring_set(&tkt->realm, REALM));
    CHECK_OK(ck_asn1_principal_set(tkt->sname, CK_NT_SRV_INST, svc, 2));
    CHECK_OK(ck_ticket_seal(tkt, etp, &service_key, 2));
    CHECK_OK(ck_asn1_ticket_encode(tkt, &der, &der_len));
    c->ticket = ck_memdup(der, der_len);
    c->ticket_len = der_len;
    c->ticket_etype = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    c->authtime = c->starttime = start;
    c->endtime = end;
    CHECK_OK(ck_principal_build(REALM, CK_NT_SRV_HST, cl, 2, &c->client));
    CHECK_OK(ck_principal_build(REALM, CK_NT_SRV_INST, svc, 2, &c->server));
    ck_asn1_free_der(der, der_len);
    CK_TICKET_free(tkt);
    CK_ENC_TICKET_PART_free(etp);
    return c;
}

/* The KSV's keytab: one key, whatever the ticket's server (expected_server catches the rest). */
static int
key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
       int32_t *krb_error)
{
    (void)arg;
    (void)ticket;
    (void)kvno;
    if (etype != service_key.enctype) {
        *krb_error = CK_KRB_AP_ERR_NOKEY;
        return CK_ERR_NOTFOUND;
    }
    return ck_key_copy(key, &service_key);
}

static int64_t
now_sec(void)
{
    int64_t now;

    ck_now(&now, NULL);
    return now;
}

/* A whole exchange: node and KSV sessions for key_id. */
struct session {
    ck_creds *creds;
    struct ck_ksv_hello_ctx ctx;
    struct ck_ksv_hello_in in;
    struct ck_ksv_seal node, ksv;
};

static void
session_up(struct session *x, uint32_t key_id)
{
    uint8_t *hello = NULL, *rep = NULL;
    size_t hello_len = 0, rep_len = 0;
    int64_t now = now_sec();
    int32_t krb = -1;

    memset(x, 0, sizeof(*x));
    x->creds = make_creds("ksv1.test", now - 10, now + 3600);
    CHECK_OK(ck_ksv_hello_build(x->creds, "n1", now, &x->ctx, &hello, &hello_len));
    CHECK_OK(ck_ksv_hello_accept(hello, hello_len, key_fn, NULL, SERVICE, NULL, 300, now, key_id,
                                 &x->in, &x->ksv, &rep, &rep_len));
    CHECK_OK(ck_ksv_hello_rep_open(&x->ctx, rep, rep_len, &x->node, &krb));
    CHECK_INT_EQ(krb, 0);
    free(hello);
    free(rep);
}

static void
session_down(struct session *x)
{
    ck_creds_free(x->creds);
    ck_ksv_hello_ctx_clear(&x->ctx);
    ck_ksv_seal_clear(&x->node);
    ck_ksv_seal_clear(&x->ksv);
}

static struct ck_ksv_msg *
ack_msg(uint32_t acked)
{
    struct ck_ksv_msg *m = NULL;

    CHECK_OK(ck_ksv_msg_new(CK_KSV_ACK, &m));
    if (m == NULL)
        abort();
    m->msg_id = acked + 100;
    m->timestamp = TS + 1500;
    m->reflected_ts = TS;
    m->acked_msg_id = acked;
    return m;
}

static struct ck_ksv_msg *
register_msg(void)
{
    struct ck_ksv_msg *m = NULL;
    struct ck_ksv_sa sa;

    CHECK_OK(ck_ksv_msg_new(CK_KSV_REGISTER, &m));
    if (m == NULL)
        abort();
    m->flags = CK_KSV_F_REFRESH | CK_KSV_F_ACK_REQD;
    m->msg_id = 7;
    m->timestamp = TS;
    memset(&sa, 0, sizeof(sa));
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
    CHECK_OK(ck_ksv_msg_add_sa(m, &sa));
    ck_memzero(&sa, sizeof(sa));
    return m;
}

/* Seals msg with s into a datagram (test helper: aborts on failure). */
static uint8_t *
seal(struct ck_ksv_seal *s, const struct ck_ksv_msg *m, size_t *len)
{
    uint8_t *b = NULL;

    CHECK_OK(ck_ksv_seal_msg(s, m, &b, len));
    if (b == NULL)
        abort();
    return b;
}

/* Opens and returns the result code, freeing any message. */
static int
open_rc(struct ck_ksv_seal *s, const uint8_t *b, size_t len)
{
    struct ck_ksv_msg *m = (struct ck_ksv_msg *)&m;
    int ret = ck_ksv_open_msg(s, b, len, &m);

    if ((ret == 0) != (m != NULL))
        return -1000;
    ck_ksv_msg_free(m);
    return ret;
}

static bool
all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Envelope.
 */
static void
test_kind(void)
{
    uint8_t b[12] = {'C', 'K', 'S', 'V', 1, 4, 0, 0};
    enum ck_ksv_kind k = 0;
    uint8_t *big;

    for (uint8_t kind = 1; kind <= 6; kind++) {
        b[5] = kind;
        CHECK_OK(ck_ksv_wire_kind(b, 8, &k));
        CHECK_INT_EQ(k, kind);
        CHECK_OK(ck_ksv_wire_kind(b, sizeof(b), &k));
    }
    b[5] = 0;
    CHECK_INT_EQ(ck_ksv_wire_kind(b, 8, &k), CK_ERR_DECODE);
    b[5] = 7;
    CHECK_INT_EQ(ck_ksv_wire_kind(b, 8, &k), CK_ERR_DECODE);
    b[5] = CK_KSV_K_SEALED;
    for (size_t n = 0; n < 8; n++)
        CHECK_INT_EQ(ck_ksv_wire_kind(b, n, &k), CK_ERR_DECODE);
    for (size_t i = 0; i < 8; i++) {
        uint8_t c[8];
        memcpy(c, b, 8);
        c[i] ^= (i == 5) ? 0x10 : 0x01; /* every byte of the header matters */
        CHECK_INT_EQ(ck_ksv_wire_kind(c, 8, &k), CK_ERR_DECODE);
    }
    big = calloc(1, CK_KSV_MAX_DGRAM + 1);
    if (big == NULL)
        abort();
    memcpy(big, b, 8);
    CHECK_OK(ck_ksv_wire_kind(big, CK_KSV_MAX_DGRAM, &k));
    CHECK_INT_EQ(ck_ksv_wire_kind(big, CK_KSV_MAX_DGRAM + 1, &k), CK_ERR_LIMIT);
    free(big);
    CHECK_INT_EQ(ck_ksv_wire_kind(NULL, 8, &k), CK_ERR_INVAL);
}

/* ---------------------------------------------------------------------------------------------
 * Session keys: HKDF-SHA-256 against an independent computation. The vectors come from Python's
 * hmac/hashlib (RFC 5869 extract-then-expand written out) and agree with
 *   openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:000102..1f \
 *       -kdfopt salt:"cablekey ksv v1" -kdfopt hexinfo:6b73762d3e6e6f64650badcafe HKDF
 * (IKM 00..1f, info "ksv->node" || be32(0x0badcafe)).
 */
static void
test_hkdf_vector(void)
{
    static const char *to_node = "7f3c8990c707f63e035d53cffbae01898c5f0c382da5f8e9443824100e793a66";
    static const char *to_ksv = "cdfb4c783d54ee173feb9ea2f5aef8a799982414ac109796f4cac21e8d4904c9";
    /* IKM 40..4f (an AES-128 sub-key), key id 1, "ksv->node". */
    static const char *to_node16 =
        "7c1249f826c4239a77f8623414b4586ddd0717c4e97dd34f64a379a639680f21";
    uint8_t raw[32];
    size_t n1 = 0, n2 = 0, n3 = 0;
    uint8_t *a = ck_test_hex(to_node, &n1), *b = ck_test_hex(to_ksv, &n2);
    uint8_t *c = ck_test_hex(to_node16, &n3);
    ck_key k;
    struct ck_ksv_seal ksv, node;

    for (size_t i = 0; i < 32; i++)
        raw[i] = (uint8_t)i;
    CHECK_OK(ck_key_init(&k, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, raw, 32));
    CHECK_OK(ck_ksv_seal_init(&ksv, &k, 0x0badcafe, true));
    CHECK_OK(ck_ksv_seal_init(&node, &k, 0x0badcafe, false));
    CHECK_MEM_EQ(ksv.tx_key, 32, a, n1);
    CHECK_MEM_EQ(ksv.rx_key, 32, b, n2);
    CHECK_MEM_EQ(node.tx_key, 32, b, n2);
    CHECK_MEM_EQ(node.rx_key, 32, a, n1);
    CHECK(ksv.tx_dir == CK_KSV_SEAL_TO_NODE && ksv.rx_dir == CK_KSV_SEAL_TO_KSV);
    CHECK(node.tx_dir == CK_KSV_SEAL_TO_KSV && node.rx_dir == CK_KSV_SEAL_TO_NODE);
    CHECK(ksv.key_id == 0x0badcafe && ksv.tx_seq == 0 && ksv.rx_top == 0);
    for (size_t i = 0; i < 16; i++)
        raw[i] = (uint8_t)(0x40 + i);
    CHECK_OK(ck_key_init(&k, CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, raw, 16));
    CHECK_OK(ck_ksv_seal_init(&ksv, &k, 1, true));
    CHECK_MEM_EQ(ksv.tx_key, 32, c, n3);
    /* The key id is in the info: another id, other keys. */
    CHECK_OK(ck_ksv_seal_init(&node, &k, 2, true));
    CHECK(memcmp(node.tx_key, ksv.tx_key, 32) != 0);
    /* Refusals: no key id, a short key; the seal is left zeroed. */
    CHECK_INT_EQ(ck_ksv_seal_init(&ksv, &k, 0, true), CK_ERR_INVAL);
    CHECK(all_zero(&ksv, sizeof(ksv)));
    k.length = 8;
    CHECK_INT_EQ(ck_ksv_seal_init(&ksv, &k, 1, true), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_seal_init(&ksv, NULL, 1, true), CK_ERR_INVAL);
    ck_key_clear(&k);
    ck_ksv_seal_clear(&ksv);
    ck_ksv_seal_clear(&node);
    free(a);
    free(b);
    free(c);
}

/* One SEALED datagram byte for byte: the node (sub-key 00..1f, key id 0x01020304) seals the
 * GROUP_ACK of test_ksv_msg.c (group 1, epoch 6) as its first message. Expected bytes from
 * Python: key = HKDF as above with info "node->ksv" || 01020304, then
 *   AESGCM(key).encrypt(pack(">IQ", 2, 1), plaintext, b"CKSV\x01\x04\x00\x00" + pack(">IQ",
 *   0x01020304, 1))
 * (cryptography 48, OpenSSL underneath, but a separate code path from lib/ksvwire). */
static void
test_sealed_vector(void)
{
    static const char *want =
        "434b535601040000010203040000000000000001"
        "530fd852442fe03a405acd6ceb21f620265710df3fe7042b1b6e00aa3326284fc173271c"
        "04592307ff623a89309f262bf64d547b";
    uint8_t raw[32], *b, *w;
    size_t len = 0, wlen = 0;
    ck_key k;
    struct ck_ksv_seal node, ksv;
    struct ck_ksv_msg *m = NULL, *p = NULL;

    for (size_t i = 0; i < 32; i++)
        raw[i] = (uint8_t)i;
    CHECK_OK(ck_key_init(&k, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, raw, 32));
    CHECK_OK(ck_ksv_seal_init(&node, &k, 0x01020304, false));
    CHECK_OK(ck_ksv_seal_init(&ksv, &k, 0x01020304, true));
    CHECK_OK(ck_ksv_msg_new(CK_KSV_GROUP_ACK, &m));
    m->msg_id = 4;
    m->timestamp = TS + 3000;
    m->grp_id = 1;
    m->grp_epoch = 6;
    b = seal(&node, m, &len); /* key_id 0 in m: the session's is filled in */
    w = ck_test_hex(want, &wlen);
    CHECK_INT_EQ(wlen, 72);
    CHECK_MEM_EQ(b, len, w, wlen);
    CHECK_INT_EQ(node.tx_seq, 1);
    CHECK_OK(ck_ksv_open_msg(&ksv, w, wlen, &p));
    CHECK(p != NULL && p->type == CK_KSV_GROUP_ACK && p->key_id == 0x01020304 &&
          p->grp_epoch == 6 && p->msg_id == 4);
    CHECK(ksv.rx_top == 1 && ksv.rx_window == 1);
    ck_ksv_msg_free(p);
    free(b);
    free(w);
    ck_ksv_msg_free(m);
    ck_key_clear(&k);
    ck_ksv_seal_clear(&node);
    ck_ksv_seal_clear(&ksv);
}

/* ---------------------------------------------------------------------------------------------
 * The AP exchange.
 */
static void
test_exchange(void)
{
    struct session x;
    struct ck_ksv_msg *reg = register_msg(), *ack = ack_msg(7), *p = NULL;
    uint8_t *b;
    size_t len = 0;
    uint32_t id = 0;

    session_up(&x, 0xc0ffee01);
    CHECK(strcmp(x.in.node_name, "n1") == 0);
    CHECK(strcmp(x.in.client, "host/n1@" REALM) == 0);
    CHECK(x.in.endtime == x.creds->endtime);
    CHECK_INT_EQ(x.in.krb_error, 0);
    CHECK_INT_EQ(x.in.node_nonce, x.ctx.node_nonce);
    /* Both ends hold the same keys, crosswise, under the KSV's key id. */
    CHECK(x.node.key_id == 0xc0ffee01 && x.ksv.key_id == 0xc0ffee01);
    CHECK_MEM_EQ(x.node.tx_key, 32, x.ksv.rx_key, 32);
    CHECK_MEM_EQ(x.node.rx_key, 32, x.ksv.tx_key, 32);
    CHECK(memcmp(x.node.tx_key, x.node.rx_key, 32) != 0);
    /* KSV -> node: REGISTER; node -> KSV: ACK; a few of each. */
    for (int i = 0; i < 3; i++) {
        b = seal(&x.ksv, reg, &len);
        CHECK_OK(ck_ksv_sealed_key_id(b, len, &id));
        CHECK_INT_EQ(id, 0xc0ffee01);
        CHECK_OK(ck_ksv_open_msg(&x.node, b, len, &p));
        CHECK(p != NULL && p->type == CK_KSV_REGISTER && p->n_sas == 1 &&
              p->sas[0].enc_key[19] == 0x5a && p->key_id == 0xc0ffee01 && p->msg_id == 7);
        ck_ksv_msg_free(p);
        p = NULL;
        free(b);
        b = seal(&x.node, ack, &len);
        CHECK_OK(ck_ksv_open_msg(&x.ksv, b, len, &p));
        CHECK(p != NULL && p->type == CK_KSV_ACK && p->acked_msg_id == 7);
        ck_ksv_msg_free(p);
        p = NULL;
        free(b);
    }
    CHECK(x.ksv.tx_seq == 3 && x.node.tx_seq == 3 && x.node.rx_top == 3 && x.ksv.rx_top == 3);
    /* A sealed message's key id must be 0 or the session's. */
    reg->key_id = 0xc0ffee01;
    b = seal(&x.ksv, reg, &len);
    free(b);
    reg->key_id = 5;
    CHECK_INT_EQ(ck_ksv_seal_msg(&x.ksv, reg, &b, &len), CK_ERR_INVAL);
    CHECK(b == NULL);
    /* A message the codec refuses is not sealed, and spends no sequence number. */
    reg->key_id = 0;
    reg->flags = 0x8000;
    CHECK_INT_EQ(ck_ksv_seal_msg(&x.ksv, reg, &b, &len), CK_ERR_INVAL);
    CHECK_INT_EQ(x.ksv.tx_seq, 4);
    session_down(&x);
    ck_ksv_msg_free(reg);
    ck_ksv_msg_free(ack);
}

/* Keys of another session (same key id, other sub-key), and the node's own datagrams reflected
 * back at it: INTEGRITY, and the window does not move. */
static void
test_wrong_key(void)
{
    struct session x, y;
    struct ck_ksv_msg *reg = register_msg(), *ack = ack_msg(7);
    uint8_t *b, *c;
    size_t len = 0, clen = 0;

    session_up(&x, 77);
    session_up(&y, 77);
    b = seal(&x.ksv, reg, &len);
    CHECK_INT_EQ(open_rc(&y.node, b, len), CK_ERR_INTEGRITY);
    CHECK(y.node.rx_top == 0 && y.node.rx_window == 0);
    CHECK_INT_EQ(open_rc(&x.ksv, b, len), CK_ERR_INTEGRITY); /* its own, reflected */
    CHECK_OK(open_rc(&x.node, b, len));
    c = seal(&x.node, ack, &clen);
    free(c);
    c = seal(&x.node, ack, &clen); /* seq 2: past the node's own window, so the key decides */
    CHECK_INT_EQ(open_rc(&x.node, c, clen), CK_ERR_INTEGRITY);
    CHECK_OK(open_rc(&x.ksv, c, clen));
    free(b);
    free(c);
    /* A datagram of a session with another key id: the caller's lookup went wrong. */
    session_down(&y);
    session_up(&y, 78);
    b = seal(&y.ksv, reg, &len);
    CHECK_INT_EQ(open_rc(&x.node, b, len), CK_ERR_INVAL);
    free(b);
    session_down(&x);
    session_down(&y);
    ck_ksv_msg_free(reg);
    ck_ksv_msg_free(ack);
}

static void
test_replay_window(void)
{
    struct session x;
    struct ck_ksv_msg *ack = ack_msg(1);
    uint8_t *d[200];
    size_t l[200];

    session_up(&x, 9);
    for (size_t i = 1; i < 200; i++)
        d[i] = seal(&x.node, ack, &l[i]);
    CHECK_OK(open_rc(&x.ksv, d[1], l[1]));
    CHECK_INT_EQ(open_rc(&x.ksv, d[1], l[1]), CK_ERR_REPLAY);
    /* Jump to 70: 7 is the oldest the window still holds (70 - 63), 6 is too old. */
    CHECK_OK(open_rc(&x.ksv, d[70], l[70]));
    CHECK_INT_EQ(open_rc(&x.ksv, d[70], l[70]), CK_ERR_REPLAY);
    CHECK_INT_EQ(open_rc(&x.ksv, d[6], l[6]), CK_ERR_REPLAY);
    CHECK_OK(open_rc(&x.ksv, d[7], l[7]));
    CHECK_INT_EQ(open_rc(&x.ksv, d[7], l[7]), CK_ERR_REPLAY);
    /* Out of order inside the window: each once. */
    for (size_t i = 69; i >= 8; i -= 3) {
        CHECK_OK(open_rc(&x.ksv, d[i], l[i]));
        CHECK_INT_EQ(open_rc(&x.ksv, d[i], l[i]), CK_ERR_REPLAY);
    }
    /* 71 then 134 = 71 + 63: 71 still in; 135 pushes it out. */
    CHECK_OK(open_rc(&x.ksv, d[71], l[71]));
    CHECK_OK(open_rc(&x.ksv, d[134], l[134]));
    CHECK_INT_EQ(open_rc(&x.ksv, d[71], l[71]), CK_ERR_REPLAY);
    CHECK_OK(open_rc(&x.ksv, d[72], l[72]));
    CHECK_OK(open_rc(&x.ksv, d[135], l[135]));
    CHECK_INT_EQ(open_rc(&x.ksv, d[72], l[72]), CK_ERR_REPLAY);
    CHECK_OK(open_rc(&x.ksv, d[73], l[73]));
    /* A jump of more than the window clears it: everything before is too old. */
    CHECK_OK(open_rc(&x.ksv, d[199], l[199]));
    CHECK_INT_EQ(x.ksv.rx_window, 1);
    CHECK_INT_EQ(open_rc(&x.ksv, d[135], l[135]), CK_ERR_REPLAY);
    CHECK_OK(open_rc(&x.ksv, d[136], l[136]));
    CHECK_INT_EQ(open_rc(&x.ksv, d[136], l[136]), CK_ERR_REPLAY);
    CHECK_INT_EQ(open_rc(&x.ksv, d[135], l[135]), CK_ERR_REPLAY);
    for (size_t i = 1; i < 200; i++)
        free(d[i]);
    /* The sender never wraps its sequence number. */
    x.node.tx_seq = UINT64_MAX;
    CHECK_INT_EQ(ck_ksv_seal_msg(&x.node, ack, &d[0], &l[0]), CK_ERR_LIMIT);
    x.node.tx_seq = UINT64_MAX - 1;
    d[0] = seal(&x.node, ack, &l[0]);
    CHECK_OK(open_rc(&x.ksv, d[0], l[0]));
    CHECK(x.ksv.rx_top == UINT64_MAX);
    CHECK_INT_EQ(open_rc(&x.ksv, d[0], l[0]), CK_ERR_REPLAY);
    free(d[0]);
    session_down(&x);
    ck_ksv_msg_free(ack);
}

/* Every single-byte change of a sealed datagram is refused, none moves the window, and the
 * original still opens afterwards. */
static void
test_tampered(void)
{
    struct session x;
    struct ck_ksv_msg *reg = register_msg();
    uint8_t *b, *c;
    size_t len = 0;

    session_up(&x, 0x1234);
    b = seal(&x.ksv, reg, &len);
    c = malloc(len);
    if (c == NULL)
        abort();
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            int ret;
            memcpy(c, b, len);
            c[i] ^= (uint8_t)(1u << bit);
            ret = open_rc(&x.node, c, len);
            if (ret == 0 || ret == -1000)
                fprintf(stderr, "  byte %zu bit %d: %d\n", i, bit, ret);
            CHECK(ret < 0 && ret != -1000);
            if (i >= 20)
                CHECK_INT_EQ(ret, CK_ERR_INTEGRITY);
        }
    }
    CHECK(x.node.rx_top == 0 && x.node.rx_window == 0);
    /* A trailing byte, and every truncation. */
    c = realloc(c, len + 1);
    if (c == NULL)
        abort();
    memcpy(c, b, len);
    c[len] = 0;
    CHECK_INT_EQ(open_rc(&x.node, c, len + 1), CK_ERR_INTEGRITY);
    for (size_t n = 0; n < len; n++) {
        int ret = open_rc(&x.node, b, n);
        CHECK(ret == CK_ERR_DECODE || ret == CK_ERR_INTEGRITY);
    }
    CHECK_OK(open_rc(&x.node, b, len));
    free(c);
    free(b);
    session_down(&x);
    ck_ksv_msg_free(reg);
}

/* Seals arbitrary plaintext as direction dir / seq with key (independently of lib/ksvwire). */
static uint8_t *
raw_seal(const uint8_t key[32], uint32_t dir, uint32_t key_id, uint64_t seq, const uint8_t *pt,
         size_t pt_len, size_t *len)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t nonce[12], *b = malloc(20 + pt_len + 16);
    int n = 0;

    if (ctx == NULL || b == NULL)
        abort();
    memcpy(b, "CKSV\x01\x04\x00\x00", 8);
    ck_put_be32(b + 8, key_id);
    ck_put_be32(b + 12, (uint32_t)(seq >> 32));
    ck_put_be32(b + 16, (uint32_t)seq);
    ck_put_be32(nonce, dir);
    memcpy(nonce + 4, b + 12, 8);
    CHECK(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) == 1);
    CHECK(EVP_EncryptUpdate(ctx, NULL, &n, b, 20) == 1);
    CHECK(EVP_EncryptUpdate(ctx, b + 20, &n, pt, (int)pt_len) == 1);
    CHECK(EVP_EncryptFinal_ex(ctx, b + 20 + pt_len, &n) == 1);
    CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, b + 20 + pt_len) == 1);
    EVP_CIPHER_CTX_free(ctx);
    *len = 20 + pt_len + 16;
    return b;
}

/* Authentic datagrams whose content is refused: CK_ERR_PROTO, and the sequence number is spent
 * (a replay is REPLAY, not a second MALFORMED_PACKET). */
static void
test_authentic_garbage(void)
{
    struct session x;
    struct ck_ksv_msg *ack = ack_msg(3);
    uint8_t *plain = NULL, *b;
    size_t plain_len = 0, len = 0;
    static const uint8_t junk[30] = {0x80, 0x00};

    session_up(&x, 0x55);
    b = raw_seal(x.ksv.tx_key, CK_KSV_SEAL_TO_NODE, 0x55, 1, junk, sizeof(junk), &len);
    CHECK_INT_EQ(open_rc(&x.node, b, len), CK_ERR_PROTO);
    CHECK_INT_EQ(open_rc(&x.node, b, len), CK_ERR_REPLAY);
    free(b);
    /* A valid message whose inner key id is not the session's. */
    ack->key_id = 0x56;
    CHECK_OK(ck_ksv_msg_encode(ack, &plain, &plain_len));
    b = raw_seal(x.ksv.tx_key, CK_KSV_SEAL_TO_NODE, 0x55, 2, plain, plain_len, &len);
    CHECK_INT_EQ(open_rc(&x.node, b, len), CK_ERR_PROTO);
    free(b);
    /* The same, right: opens (the helper agrees with the library). */
    ck_put_be32(plain + 8, 0x55);
    b = raw_seal(x.ksv.tx_key, CK_KSV_SEAL_TO_NODE, 0x55, 3, plain, plain_len, &len);
    CHECK_OK(open_rc(&x.node, b, len));
    free(b);
    /* The right key under the wrong direction in the nonce. */
    b = raw_seal(x.ksv.tx_key, CK_KSV_SEAL_TO_KSV, 0x55, 4, plain, plain_len, &len);
    CHECK_INT_EQ(open_rc(&x.node, b, len), CK_ERR_INTEGRITY);
    free(b);
    /* Sequence number 0 never exists. */
    b = raw_seal(x.ksv.tx_key, CK_KSV_SEAL_TO_NODE, 0x55, 0, plain, plain_len, &len);
    CHECK_INT_EQ(open_rc(&x.node, b, len), CK_ERR_DECODE);
    free(b);
    /* The smallest and largest plaintexts the framing admits. */
    b = raw_seal(x.ksv.tx_key, CK_KSV_SEAL_TO_NODE, 0x55, 5, plain, CK_KSV_HDR_LEN - 1, &len);
    CHECK_INT_EQ(open_rc(&x.node, b, len), CK_ERR_DECODE);
    free(b);
    {
        uint8_t *big = calloc(1, CK_KSV_MAX_MSG + 1);
        if (big == NULL)
            abort();
        b = raw_seal(x.ksv.tx_key, CK_KSV_SEAL_TO_NODE, 0x55, 6, big, CK_KSV_MAX_MSG + 1, &len);
        CHECK_INT_EQ(open_rc(&x.node, b, len), CK_ERR_LIMIT);
        free(b);
        free(big);
    }
    ck_free_secret(plain, plain_len);
    session_down(&x);
    ck_ksv_msg_free(ack);
}

/* HELLO refusals: another service, an expired ticket, a replayed HELLO, a ticket under another
 * key, and the parsing of the HELLO itself. */
static void
test_hello_refusals(void)
{
    struct ck_ksv_hello_ctx ctx;
    struct ck_ksv_hello_in in;
    struct ck_ksv_seal s;
    ck_rcache *rc = NULL;
    ck_creds *other = NULL, *old = NULL, *good = NULL;
    uint8_t *hello = NULL, *rep = NULL;
    size_t hello_len = 0, rep_len = 0;
    int64_t now = now_sec();
    ck_key saved;

    CHECK_OK(ck_rcache_new(0, 600, &rc));
    /* A ticket for ksv/other.test: NOT_US, with the name already parsed for the HELLO_ERR. */
    other = make_creds("other.test", now - 10, now + 3600);
    CHECK_OK(ck_ksv_hello_build(other, "n1", now, &ctx, &hello, &hello_len));
    CHECK(ck_ksv_hello_accept(hello, hello_len, key_fn, NULL, SERVICE, rc, 300, now, 1, &in, &s,
                              &rep, &rep_len) < 0);
    CHECK_INT_EQ(in.krb_error, CK_KRB_AP_ERR_NOT_US);
    CHECK(strcmp(in.node_name, "n1") == 0 && in.node_nonce == ctx.node_nonce);
    CHECK(in.client[0] == '\0' && rep == NULL && rep_len == 0);
    CHECK(all_zero(&s, sizeof(s)));
    free(hello);
    ck_ksv_hello_ctx_clear(&ctx);
    /* Expired: the node refuses to build; a HELLO built anyway is TKT_EXPIRED at the KSV. */
    old = make_creds("ksv1.test", now - 7200, now - 1000);
    CHECK_INT_EQ(ck_ksv_hello_build(old, "n1", now, &ctx, &hello, &hello_len), CK_ERR_EXPIRED);
    CHECK(hello == NULL && all_zero(&ctx, sizeof(ctx)));
    CHECK_OK(ck_ksv_hello_build(old, "n1", now - 2000, &ctx, &hello, &hello_len));
    CHECK(ck_ksv_hello_accept(hello, hello_len, key_fn, NULL, SERVICE, rc, 300, now, 1, &in, &s,
                              &rep, &rep_len) < 0);
    CHECK_INT_EQ(in.krb_error, CK_KRB_AP_ERR_TKT_EXPIRED);
    free(hello);
    ck_ksv_hello_ctx_clear(&ctx);
    /* A replayed HELLO: REPEAT from the replay cache. */
    good = make_creds("ksv1.test", now - 10, now + 3600);
    CHECK_OK(ck_ksv_hello_build(good, "n1", now, &ctx, &hello, &hello_len));
    CHECK_OK(ck_ksv_hello_accept(hello, hello_len, key_fn, NULL, SERVICE, rc, 300, now, 1, &in,
                                 &s, &rep, &rep_len));
    free(rep);
    rep = NULL;
    CHECK(ck_ksv_hello_accept(hello, hello_len, key_fn, NULL, SERVICE, rc, 300, now, 2, &in, &s,
                              &rep, &rep_len) < 0);
    CHECK_INT_EQ(in.krb_error, CK_KRB_AP_ERR_REPEAT);
    CHECK(rep == NULL);
    /* Clock skew: the KSV's clock an hour ahead. */
    CHECK(ck_ksv_hello_accept(hello, hello_len, key_fn, NULL, SERVICE, NULL, 300, now + 3000, 2,
                              &in, &s, &rep, &rep_len) < 0);
    CHECK_INT_EQ(in.krb_error, CK_KRB_AP_ERR_SKEW);
    /* The KSV's key changed (a ticket under an old key): BAD_INTEGRITY. */
    saved = service_key;
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &service_key));
    CHECK(ck_ksv_hello_accept(hello, hello_len, key_fn, NULL, SERVICE, NULL, 300, now, 2, &in, &s,
                              &rep, &rep_len) < 0);
    CHECK_INT_EQ(in.krb_error, CK_KRB_AP_ERR_BAD_INTEGRITY);
    service_key = saved;
    /* Key id 0 and missing arguments. */
    CHECK_INT_EQ(ck_ksv_hello_accept(hello, hello_len, key_fn, NULL, SERVICE, NULL, 300, now, 0,
                                     &in, &s, &rep, &rep_len),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_hello_accept(hello, hello_len, NULL, NULL, SERVICE, NULL, 300, now, 1,
                                     &in, &s, &rep, &rep_len),
                 CK_ERR_INVAL);
    /* Framing: every truncation and a trailing byte are DECODE before any Kerberos work; the
     * name must fill the rest exactly. */
    for (size_t n = 0; n < hello_len; n++) {
        int ret = ck_ksv_hello_accept(hello, n, key_fn, NULL, SERVICE, NULL, 300, now, 3, &in,
                                      &s, &rep, &rep_len);
        CHECK_INT_EQ(ret, CK_ERR_DECODE);
        CHECK(rep == NULL);
    }
    {
        uint8_t *c = malloc(hello_len + 1);
        size_t name_at = hello_len - 2; /* "n1" */
        if (c == NULL)
            abort();
        memcpy(c, hello, hello_len);
        c[hello_len] = 'x';
        CHECK_INT_EQ(ck_ksv_hello_accept(c, hello_len + 1, key_fn, NULL, SERVICE, NULL, 300, now,
                                         3, &in, &s, &rep, &rep_len),
                     CK_ERR_DECODE);
        c[name_at] = '-'; /* a name may not start with '-' */
        CHECK_INT_EQ(ck_ksv_hello_accept(c, hello_len, key_fn, NULL, SERVICE, NULL, 300, now, 3,
                                         &in, &s, &rep, &rep_len),
                     CK_ERR_DECODE);
        c[name_at] = 'n';
        c[name_at + 1] = '\n'; /* nor hold a newline (log injection) */
        CHECK_INT_EQ(ck_ksv_hello_accept(c, hello_len, key_fn, NULL, SERVICE, NULL, 300, now, 3,
                                         &in, &s, &rep, &rep_len),
                     CK_ERR_DECODE);
        c[name_at + 1] = '1';
        c[12] = 0; /* AP-REQ length 0 */
        c[13] = 0;
        CHECK_INT_EQ(ck_ksv_hello_accept(c, hello_len, key_fn, NULL, SERVICE, NULL, 300, now, 3,
                                         &in, &s, &rep, &rep_len),
                     CK_ERR_DECODE);
        memcpy(c, hello, hello_len);
        c[5] = CK_KSV_K_HELLO_REP; /* another kind */
        CHECK_INT_EQ(ck_ksv_hello_accept(c, hello_len, key_fn, NULL, SERVICE, NULL, 300, now, 3,
                                         &in, &s, &rep, &rep_len),
                     CK_ERR_DECODE);
        /* A flipped bit inside the AP-REQ: a Kerberos failure, with its code. */
        memcpy(c, hello, hello_len);
        c[hello_len - 20] ^= 1;
        CHECK(ck_ksv_hello_accept(c, hello_len, key_fn, NULL, SERVICE, NULL, 300, now, 3, &in, &s,
                                  &rep, &rep_len) < 0);
        CHECK(in.krb_error != 0 && rep == NULL);
        free(c);
    }
    free(hello);
    ck_ksv_hello_ctx_clear(&ctx);
    /* Node-side refusals; the longest name (63) passes, 64 does not. */
    CHECK_INT_EQ(ck_ksv_hello_build(good, "", now, &ctx, &hello, &hello_len), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_hello_build(good, "a b", now, &ctx, &hello, &hello_len), CK_ERR_INVAL);
    {
        char nm[CK_KSV_MAX_NAME + 2];
        memset(nm, 'a', sizeof(nm) - 1);
        nm[CK_KSV_MAX_NAME + 1] = '\0';
        CHECK_INT_EQ(ck_ksv_hello_build(good, nm, now, &ctx, &hello, &hello_len), CK_ERR_INVAL);
        nm[CK_KSV_MAX_NAME] = '\0';
        CHECK_OK(ck_ksv_hello_build(good, nm, now, &ctx, &hello, &hello_len));
    }
    CHECK_OK(ck_ksv_hello_accept(hello, hello_len, key_fn, NULL, SERVICE, NULL, 300, now, 3, &in,
                                 &s, &rep, &rep_len));
    CHECK_INT_EQ(strlen(in.node_name), CK_KSV_MAX_NAME);
    free(hello);
    free(rep);
    ck_ksv_hello_ctx_clear(&ctx);
    ck_ksv_seal_clear(&s);
    ck_creds_free(other);
    ck_creds_free(old);
    ck_creds_free(good);
    ck_rcache_free(rc);
}

/* A HELLO whose AP-REQ lacks MUTUAL-REQUIRED or a sub-key is refused (CK_ERR_PROTO). */
static void
test_hello_without_mutual(void)
{
    int64_t now = now_sec();
    ck_creds *c = make_creds("ksv1.test", now - 10, now + 3600);
    CK_TICKET *t = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    static const char *const cl[] = {"host", "n1"};
    struct ck_ksv_hello_in in;
    struct ck_ksv_seal s;
    uint8_t *rep = NULL;
    size_t rep_len = 0;
    ck_key sub;

    CHECK_OK(ck_asn1_ticket_decode(c->ticket, c->ticket_len, &t));
    CHECK_OK(ck_asn1_principal_new(CK_NT_SRV_HST, cl, 2, &cname));
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &sub));
    for (int variant = 0; variant < 2; variant++) {
        uint8_t *der = NULL, *h;
        size_t der_len = 0, hl;
        CHECK_OK(ck_ap_req_build(t, &c->session_key, REALM, cname,
                                 variant == 0 ? 0 : CK_AP_OPT_MUTUAL_REQUIRED, NULL,
                                 CK_KU_AP_REQ_AUTH, variant == 0 ? &sub : NULL, NULL, NULL, NULL,
                                 &der, &der_len));
        hl = 14 + der_len + 4;
        h = malloc(hl);
        if (h == NULL)
            abort();
        memcpy(h, "CKSV\x01\x01\x00\x00\x00\x00\x00\x01", 12);
        h[12] = (uint8_t)(der_len >> 8);
        h[13] = (uint8_t)der_len;
        memcpy(h + 14, der, der_len);
        memcpy(h + 14 + der_len, "\x00\x02n1", 4);
        CHECK_INT_EQ(ck_ksv_hello_accept(h, hl, key_fn, NULL, SERVICE, NULL, 300, now, 1, &in, &s,
                                         &rep, &rep_len),
                     CK_ERR_PROTO);
        CHECK(rep == NULL && in.krb_error == CK_KRB_ERR_GENERIC);
        free(h);
        ck_asn1_free_der(der, der_len);
    }
    ck_key_clear(&sub);
    CK_TICKET_free(t);
    CK_PRINCIPAL_NAME_free(cname);
    ck_creds_free(c);
}

/* HELLO_REP refusals at the node: another HELLO's answer, a tampered or truncated AP-REP. */
static void
test_hello_rep_refusals(void)
{
    int64_t now = now_sec();
    ck_creds *c = make_creds("ksv1.test", now - 10, now + 3600);
    struct ck_ksv_hello_ctx a, b;
    struct ck_ksv_hello_in in;
    struct ck_ksv_seal ks, ns;
    uint8_t *ha = NULL, *hb = NULL, *ra = NULL, *rb = NULL, *t;
    size_t hal = 0, hbl = 0, ral = 0, rbl = 0;
    int32_t krb = 0;

    CHECK_OK(ck_ksv_hello_build(c, "n1", now, &a, &ha, &hal));
    CHECK_OK(ck_ksv_hello_build(c, "n1", now, &b, &hb, &hbl));
    CHECK_OK(ck_ksv_hello_accept(ha, hal, key_fn, NULL, SERVICE, NULL, 300, now, 11, &in, &ks,
                                 &ra, &ral));
    CHECK_OK(ck_ksv_hello_accept(hb, hbl, key_fn, NULL, SERVICE, NULL, 300, now, 12, &in, &ks,
                                 &rb, &rbl));
    /* B's answer to A: the nonce says so. */
    CHECK_INT_EQ(ck_ksv_hello_rep_open(&a, rb, rbl, &ns, &krb), CK_ERR_PROTO);
    CHECK(all_zero(&ns, sizeof(ns)));
    /* B's answer with A's nonce pasted in: the AP-REP's ctime/cusec or key give it away. */
    t = ck_memdup(rb, rbl);
    memcpy(t + 8, ha + 8, 4);
    if (a.ctime != b.ctime || a.cusec != b.cusec) { /* two HELLOs never share a microsecond */
        CHECK(ck_ksv_hello_rep_open(&a, t, rbl, &ns, &krb) < 0);
        CHECK_INT_EQ(krb, CK_KRB_AP_ERR_MUT_FAIL);
    }
    free(t);
    /* Every byte of A's answer flipped: refused. */
    t = malloc(ral);
    if (t == NULL)
        abort();
    for (size_t i = 0; i < ral; i++) {
        memcpy(t, ra, ral);
        t[i] ^= 0x01;
        CHECK(ck_ksv_hello_rep_open(&a, t, ral, &ns, &krb) < 0);
    }
    for (size_t n = 0; n < ral; n++)
        CHECK(ck_ksv_hello_rep_open(&a, ra, n, &ns, &krb) < 0);
    free(t);
    t = calloc(1, ral + 1);
    if (t == NULL)
        abort();
    memcpy(t, ra, ral);
    CHECK_INT_EQ(ck_ksv_hello_rep_open(&a, t, ral + 1, &ns, &krb), CK_ERR_DECODE);
    free(t);
    /* The original still works, and twice (the node may get a retransmitted HELLO_REP). */
    CHECK_OK(ck_ksv_hello_rep_open(&a, ra, ral, &ns, &krb));
    CHECK_INT_EQ(ns.key_id, 11);
    CHECK_OK(ck_ksv_hello_rep_open(&b, rb, rbl, &ns, &krb));
    CHECK_INT_EQ(ns.key_id, 12);
    /* No HELLO outstanding. */
    ck_ksv_hello_ctx_clear(&a);
    CHECK_INT_EQ(ck_ksv_hello_rep_open(&a, ra, ral, &ns, &krb), CK_ERR_INVAL);
    ck_ksv_hello_ctx_clear(&b);
    ck_ksv_seal_clear(&ks);
    ck_ksv_seal_clear(&ns);
    free(ha);
    free(hb);
    free(ra);
    free(rb);
    ck_creds_free(c);
}

/* An AP-REP that verifies but carries no sub-key, no key id or key id 0 opens no session. */
static void
test_hello_rep_incomplete(void)
{
    int64_t now = now_sec();
    ck_creds *c = make_creds("ksv1.test", now - 10, now + 3600);
    struct ck_ksv_hello_ctx ctx;
    struct ck_ksv_seal ns;
    uint8_t *h = NULL;
    size_t hl = 0;
    ck_key sub;
    uint32_t zero_id = 0, id = 5;
    int32_t krb = 0;

    CHECK_OK(ck_ksv_hello_build(c, "n1", now, &ctx, &h, &hl));
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &sub));
    for (int variant = 0; variant < 4; variant++) {
        uint8_t *der = NULL, *r;
        size_t der_len = 0;
        const ck_key *k = variant == 0 ? NULL : &sub;
        const uint32_t *seq = variant == 1 ? NULL : variant == 2 ? &zero_id : &id;
        CHECK_OK(ck_ap_rep_build(&c->session_key, ctx.ctime, ctx.cusec, k, seq, &der, &der_len));
        r = malloc(14 + der_len);
        if (r == NULL)
            abort();
        memcpy(r, "CKSV\x01\x02\x00\x00", 8);
        ck_put_be32(r + 8, ctx.node_nonce);
        r[12] = (uint8_t)(der_len >> 8);
        r[13] = (uint8_t)der_len;
        memcpy(r + 14, der, der_len);
        if (variant < 3) {
            CHECK_INT_EQ(ck_ksv_hello_rep_open(&ctx, r, 14 + der_len, &ns, &krb), CK_ERR_PROTO);
            CHECK(all_zero(&ns, sizeof(ns)));
        } else {
            /* The same built by hand with everything: opens, under key id 5. */
            CHECK_OK(ck_ksv_hello_rep_open(&ctx, r, 14 + der_len, &ns, &krb));
            CHECK_INT_EQ(ns.key_id, 5);
        }
        free(r);
        ck_asn1_free_der(der, der_len);
    }
    /* An AP-REP under another session key: MODIFIED. */
    {
        uint8_t *der = NULL, *r;
        size_t der_len = 0;
        ck_key other;
        CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &other));
        CHECK_OK(ck_ap_rep_build(&other, ctx.ctime, ctx.cusec, &sub, &id, &der, &der_len));
        r = malloc(14 + der_len);
        if (r == NULL)
            abort();
        memcpy(r, "CKSV\x01\x02\x00\x00", 8);
        ck_put_be32(r + 8, ctx.node_nonce);
        r[12] = (uint8_t)(der_len >> 8);
        r[13] = (uint8_t)der_len;
        memcpy(r + 14, der, der_len);
        CHECK(ck_ksv_hello_rep_open(&ctx, r, 14 + der_len, &ns, &krb) < 0);
        CHECK_INT_EQ(krb, CK_KRB_AP_ERR_MODIFIED);
        free(r);
        ck_asn1_free_der(der, der_len);
        ck_key_clear(&other);
    }
    ck_key_clear(&sub);
    ck_ksv_seal_clear(&ns);
    ck_ksv_hello_ctx_clear(&ctx);
    free(h);
    ck_creds_free(c);
}

static void
test_hello_err(void)
{
    char text[CK_KSV_MAX_TEXT + 1], longtext[CK_KSV_MAX_TEXT + 2];
    uint8_t *b = NULL;
    size_t len = 0;
    uint32_t nonce = 0;
    uint16_t code = 0;

    for (uint16_t cd = CK_KSV_HERR_AUTH; cd <= CK_KSV_HERR_BUSY; cd++) {
        CHECK_OK(ck_ksv_hello_err_build(0xabcdef01, cd, "KRB_AP_ERR_NOT_US", &b, &len));
        CHECK_INT_EQ(len, 16 + 17);
        CHECK(b != NULL && memcmp(b, "CKSV\x01\x03\x00\x00\xab\xcd\xef\x01\x00", 13) == 0);
        CHECK_OK(ck_ksv_hello_err_parse(b, len, &nonce, &code, text));
        CHECK(nonce == 0xabcdef01 && code == cd && strcmp(text, "KRB_AP_ERR_NOT_US") == 0);
        for (size_t n = 0; n < len; n++)
            CHECK(ck_ksv_hello_err_parse(b, n, &nonce, &code, text) < 0);
        free(b);
    }
    /* Empty text and the longest. */
    CHECK_OK(ck_ksv_hello_err_build(1, CK_KSV_HERR_BUSY, NULL, &b, &len));
    CHECK_OK(ck_ksv_hello_err_parse(b, len, &nonce, &code, text));
    CHECK(text[0] == '\0' && len == 16);
    free(b);
    memset(longtext, 'x', sizeof(longtext));
    longtext[CK_KSV_MAX_TEXT] = '\0';
    CHECK_OK(ck_ksv_hello_err_build(1, CK_KSV_HERR_UNKNOWN, longtext, &b, &len));
    CHECK_OK(ck_ksv_hello_err_parse(b, len, &nonce, &code, text));
    CHECK_INT_EQ(strlen(text), CK_KSV_MAX_TEXT);
    /* Refusals when parsing: code 0 and 5, a control character, a length that lies. */
    b[13] = 0;
    CHECK_INT_EQ(ck_ksv_hello_err_parse(b, len, &nonce, &code, text), CK_ERR_DECODE);
    b[13] = 5;
    CHECK_INT_EQ(ck_ksv_hello_err_parse(b, len, &nonce, &code, text), CK_ERR_DECODE);
    b[13] = 2;
    b[20] = 0x1b;
    CHECK_INT_EQ(ck_ksv_hello_err_parse(b, len, &nonce, &code, text), CK_ERR_DECODE);
    CHECK(text[0] == '\0');
    b[20] = 'x';
    b[15]++;
    CHECK_INT_EQ(ck_ksv_hello_err_parse(b, len, &nonce, &code, text), CK_ERR_LIMIT);
    b[15] -= 2;
    CHECK_INT_EQ(ck_ksv_hello_err_parse(b, len, &nonce, &code, text), CK_ERR_DECODE);
    b[5] = CK_KSV_K_NUDGE;
    CHECK_INT_EQ(ck_ksv_hello_err_parse(b, len, &nonce, &code, text), CK_ERR_DECODE);
    free(b);
    b = NULL;
    /* Refusals when building. */
    longtext[CK_KSV_MAX_TEXT] = 'x';
    longtext[CK_KSV_MAX_TEXT + 1] = '\0';
    CHECK_INT_EQ(ck_ksv_hello_err_build(1, CK_KSV_HERR_AUTH, longtext, &b, &len), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_hello_err_build(1, CK_KSV_HERR_AUTH, "a\nb", &b, &len), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_hello_err_build(1, 0, "x", &b, &len), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_hello_err_build(1, 5, "x", &b, &len), CK_ERR_INVAL);
    CHECK(b == NULL);
}

static void
test_nudge(void)
{
    char name[CK_KSV_MAX_NAME + 1];
    uint8_t *b = NULL;
    size_t len = 0;
    uint64_t t = 0;

    CHECK_OK(ck_ksv_nudge_build(TS, "ksv-1.east_2", &b, &len));
    CHECK_INT_EQ(len, 17 + 12);
    CHECK(b != NULL && memcmp(b, "CKSV\x01\x05\x00\x00\x00\x06\x44\xf3\x7b\x80\x20\x00\x0c", 17) == 0);
    CHECK_OK(ck_ksv_nudge_parse(b, len, &t, name));
    CHECK(t == TS && strcmp(name, "ksv-1.east_2") == 0);
    for (size_t n = 0; n < len; n++)
        CHECK_INT_EQ(ck_ksv_nudge_parse(b, n, &t, name), CK_ERR_DECODE);
    b[16] = 13;
    CHECK_INT_EQ(ck_ksv_nudge_parse(b, len, &t, name), CK_ERR_DECODE);
    b[16] = 12;
    b[17] = '.';
    CHECK_INT_EQ(ck_ksv_nudge_parse(b, len, &t, name), CK_ERR_DECODE);
    b[17] = 'k';
    b[20] = 0;
    CHECK_INT_EQ(ck_ksv_nudge_parse(b, len, &t, name), CK_ERR_DECODE);
    b[20] = '-';
    b[6] = 1;
    CHECK_INT_EQ(ck_ksv_nudge_parse(b, len, &t, name), CK_ERR_DECODE);
    b[6] = 0;
    CHECK_OK(ck_ksv_nudge_parse(b, len, &t, name));
    free(b);
    b = NULL;
    /* A zero-length name. */
    {
        uint8_t z[17] = {'C', 'K', 'S', 'V', 1, 5};
        CHECK_INT_EQ(ck_ksv_nudge_parse(z, sizeof(z), &t, name), CK_ERR_DECODE);
    }
    CHECK_INT_EQ(ck_ksv_nudge_build(1, "", &b, &len), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_nudge_build(1, NULL, &b, &len), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_nudge_build(1, "a/b", &b, &len), CK_ERR_INVAL);
    CHECK(b == NULL);
    {
        char nm[CK_KSV_MAX_NAME + 2];
        memset(nm, 'k', sizeof(nm) - 1);
        nm[CK_KSV_MAX_NAME + 1] = '\0';
        CHECK_INT_EQ(ck_ksv_nudge_build(1, nm, &b, &len), CK_ERR_INVAL);
        CHECK(b == NULL);
        nm[CK_KSV_MAX_NAME] = '\0';
        CHECK_OK(ck_ksv_nudge_build(1, nm, &b, &len));
        CHECK_OK(ck_ksv_nudge_parse(b, len, &t, name));
        CHECK(strcmp(name, nm) == 0 && t == 1);
        free(b);
    }
}

/* ck_ksv_seal_clear and ck_ksv_hello_ctx_clear leave nothing behind; a failed accept leaves no
 * session. */
static void
test_wipe(void)
{
    struct session x;

    session_up(&x, 3);
    CHECK(!all_zero(x.node.tx_key, 32) && !all_zero(x.ctx.session_key.contents, 16) &&
          !all_zero(x.ctx.node_subkey.contents, 16));
    ck_ksv_seal_clear(&x.node);
    ck_ksv_seal_clear(&x.ksv);
    ck_ksv_hello_ctx_clear(&x.ctx);
    CHECK(all_zero(&x.node, sizeof(x.node)));
    CHECK(all_zero(&x.ksv, sizeof(x.ksv)));
    CHECK(all_zero(&x.ctx, sizeof(x.ctx)));
    ck_ksv_seal_clear(NULL);
    ck_ksv_hello_ctx_clear(NULL);
    /* A cleared session seals and opens nothing. */
    {
        struct ck_ksv_msg *m = ack_msg(1);
        uint8_t *b = NULL;
        size_t len = 0;
        CHECK_INT_EQ(ck_ksv_seal_msg(&x.node, m, &b, &len), CK_ERR_INVAL);
        ck_ksv_msg_free(m);
    }
    session_down(&x);
}

static void
setup(void)
{
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &service_key));
}

static void
test_setup(void)
{
    setup();
    CHECK(service_key.length == 32);
}

CK_TEST_MAIN("ksv_wire", CK_TEST_CASE(test_setup), CK_TEST_CASE(test_kind),
             CK_TEST_CASE(test_hkdf_vector), CK_TEST_CASE(test_sealed_vector),
             CK_TEST_CASE(test_exchange), CK_TEST_CASE(test_wrong_key),
             CK_TEST_CASE(test_replay_window), CK_TEST_CASE(test_tampered),
             CK_TEST_CASE(test_authentic_garbage), CK_TEST_CASE(test_hello_refusals),
             CK_TEST_CASE(test_hello_without_mutual), CK_TEST_CASE(test_hello_rep_refusals), CK_TEST_CASE(test_hello_rep_incomplete),
             CK_TEST_CASE(test_hello_err), CK_TEST_CASE(test_nudge), CK_TEST_CASE(test_wipe))
