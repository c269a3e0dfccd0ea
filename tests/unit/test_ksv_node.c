/* The KSV node agent (lib/ksvnode) driven through virtual time against fake KSVs built in the
 * test from the same libraries: the AP exchange (ksv_wire HELLO with a ticket read from a real
 * ccache file), sealed messages both ways, LKH trees (lib/lkh) whose batches are packed and
 * signed (lkh_rekey) and handed to the node as multicast datagrams. No sockets, no waiting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ck_test.h"
#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/ksv_msg.h"
#include "cablekey/ksv_node.h"
#include "cablekey/ksv_wire.h"
#include "cablekey/lkh.h"
#include "cablekey/lkh_rekey.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

#define REALM "TEST.REALM"
#define NODE "node1"
#define MAX_OUT 64
#define PKT_MAX 40000
#define MAX_IN 64
#define GROUP_ID 7
#define MEMBERS 8
#define NODE_MEMBER 3

/* ---------------------------------------------------------------------------------------------
 * The network: what the node sends, per KSV.
 */
struct pkt {
    unsigned ksv;
    uint8_t *data;
    size_t len;
};

static struct pkt outbox[MAX_OUT];
static size_t n_out;
static int64_t vnow;              /* virtual wall clock, ms */

static int
node_send(void *arg, unsigned ksv, const uint8_t *buf, size_t len)
{
    (void)arg;
    if (n_out >= MAX_OUT)
        return CK_ERR_LIMIT; /* the network drops it */
    outbox[n_out].ksv = ksv;
    outbox[n_out].data = ck_memdup(buf, len);
    outbox[n_out].len = len;
    n_out++;
    return 0;
}

static void
outbox_clear(void)
{
    for (size_t i = 0; i < n_out; i++)
        free(outbox[i].data);
    n_out = 0;
}

/* What the node installed, as its callbacks saw it. */
static size_t n_install, n_delete, n_group_updates;
static struct ck_ksvnode_group_status last_group;
static bool verbose;

static void
on_install(void *arg, const struct ck_ksvnode_sa *sa)
{
    (void)arg;
    (void)sa;
    n_install++;
}

static void
on_delete_cb(void *arg, const struct ck_ksvnode_sa *sa)
{
    (void)arg;
    (void)sa;
    n_delete++;
}

static void
on_group(void *arg, const struct ck_ksvnode_group_status *g)
{
    (void)arg;
    last_group = *g;
    n_group_updates++;
}

static void
on_log(void *arg, int level, const char *line)
{
    (void)arg;
    (void)level;
    if (verbose)
        fprintf(stderr, "  log: %s\n", line);
}

/* ---------------------------------------------------------------------------------------------
 * Credentials: tickets for ksv/ksvN.test, client host/node1, in a ccache file.
 */
static ck_key service_key;
static char ccache_path[64];

static ck_creds *
make_creds(const char *ksv_host, int64_t life)
{
    const char *svc[] = {"ksv", ksv_host};
    static const char *const cli[] = {"host", NODE};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_TICKET *tkt = CK_TICKET_new();
    ck_creds *c = calloc(1, sizeof(*c));
    uint8_t *der = NULL;
    size_t der_len = 0;
    int64_t now = vnow / 1000;

    CHECK(etp != NULL && tkt != NULL && c != NULL);
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &c->session_key));
    CHECK_OK(ck_asn1_flags_set(&etp->flags, 0));
    CHECK_OK(ck_key_to_asn1(&c->session_key, &etp->key));
    CHECK_OK(ck_asn1_kstring_set(&etp->crealm, REALM));
    CHECK_OK(ck_asn1_principal_set(etp->cname, CK_NT_SRV_HST, cli, 2));
    etp->transited->tr_type = 1;
    CHECK_OK(ck_asn1_time_set(&etp->authtime, now - 10));
    CHECK_OK(ck_asn1_time_set(&etp->endtime, now + life));
    CHECK_OK(ck_asn1_kstring_set(&tkt->realm, REALM));
    CHECK_OK(ck_asn1_principal_set(tkt->sname, CK_NT_SRV_INST, svc, 2));
    CHECK_OK(ck_ticket_seal(tkt, etp, &service_key, 2));
    CHECK_OK(ck_asn1_ticket_encode(tkt, &der, &der_len));
    c->ticket = ck_memdup(der, der_len);
    c->ticket_len = der_len;
    c->ticket_etype = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    c->authtime = c->starttime = now - 10;
    c->endtime = now + life;
    CHECK_OK(ck_principal_build(REALM, CK_NT_SRV_HST, cli, 2, &c->client));
    CHECK_OK(ck_principal_build(REALM, CK_NT_SRV_INST, svc, 2, &c->server));
    ck_asn1_free_der(der, der_len);
    CK_TICKET_free(tkt);
    CK_ENC_TICKET_PART_free(etp);
    return c;
}

static void
write_ccache(int64_t life)
{
    ck_creds *c[2] = {make_creds("ksv1.test", life), make_creds("ksv2.test", life)};
    int fd;

    snprintf(ccache_path, sizeof(ccache_path), "/tmp/test_ksv_node.XXXXXX");
    CHECK((fd = mkstemp(ccache_path)) >= 0);
    close(fd);
    CHECK_OK(ck_ccache_write(ccache_path, (const ck_creds *const *)c, 2));
    ck_creds_free(c[0]);
    ck_creds_free(c[1]);
}

/* New tickets in the same ccache file, issued at the system clock's time (the KSV checks the
 * ticket against it) for life seconds. */
static void
rewrite_ccache(int64_t life)
{
    int64_t saved = vnow, real;
    ck_creds *c[2];

    ck_now(&real, NULL);
    vnow = real * 1000;
    c[0] = make_creds("ksv1.test", life);
    c[1] = make_creds("ksv2.test", life);
    vnow = saved;
    CHECK_OK(ck_ccache_write(ccache_path, (const ck_creds *const *)c, 2));
    ck_creds_free(c[0]);
    ck_creds_free(c[1]);
}

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

/* ---------------------------------------------------------------------------------------------
 * The fake KSVs.
 */
struct fake_ksv {
    const char *service;
    bool up;
    ck_rcache *rc;
    bool session;
    struct ck_ksv_seal seal, prev; /* this session's, the one before (still accepted) */
    uint32_t key_id;
    uint32_t msg_id;
    size_t hellos;
    struct ck_ksv_msg *in[MAX_IN]; /* what the node sent, opened */
    size_t n_in;
};

static struct fake_ksv ksv[2];
#define MAX_HELLO_AT 64
static int64_t hello_at[MAX_HELLO_AT]; /* when each HELLO was sent, KSV up or not */
static size_t n_hello_at;
static ck_ksvnode *node;

/* A group as the fake KSV 0 runs it. */
static struct lkh_tree *tree;
static struct lkh_signer *signer, *forger;
static uint64_t epoch;

static void
ksv_reset_inbox(struct fake_ksv *k)
{
    for (size_t i = 0; i < k->n_in; i++)
        ck_ksv_msg_free(k->in[i]);
    k->n_in = 0;
}

/* Messages of a type the node sent to KSV k (since the last reset). */
static size_t
count_in(unsigned k, uint16_t type)
{
    size_t c = 0;

    for (size_t i = 0; i < ksv[k].n_in; i++)
        c += ksv[k].in[i]->type == type;
    return c;
}

static const struct ck_ksv_msg *
last_in(unsigned k, uint16_t type)
{
    for (size_t i = ksv[k].n_in; i-- > 0;)
        if (ksv[k].in[i]->type == type)
            return ksv[k].in[i];
    return NULL;
}

static size_t
count_alarms(unsigned k, uint16_t alarm)
{
    size_t c = 0;

    for (size_t i = 0; i < ksv[k].n_in; i++)
        c += ksv[k].in[i]->type == CK_KSV_ALARM && ksv[k].in[i]->alarm == alarm;
    return c;
}

static void
ksv_receive(unsigned k, const uint8_t *buf, size_t len)
{
    struct fake_ksv *f = &ksv[k];
    enum ck_ksv_kind kind;

    if (ck_ksv_wire_kind(buf, len, &kind) != 0)
        return;
    if (kind == CK_KSV_K_HELLO && n_hello_at < MAX_HELLO_AT)
        hello_at[n_hello_at++] = vnow;
    if (!f->up)
        return;
    if (kind == CK_KSV_K_HELLO) {
        struct ck_ksv_hello_in in;
        uint8_t *rep = NULL;
        size_t rep_len = 0;
        int64_t real_now;
        f->hellos++;
        ck_ksv_seal_clear(&f->prev);
        f->prev = f->seal;
        f->key_id = 0x1000u + (uint32_t)f->hellos + 0x100u * k;
        memset(&in, 0, sizeof(in));
        /* The authenticator carries the system clock's time (ck_ap_req_build), not the
         * node's injected one. */
        ck_now(&real_now, NULL);
        CHECK_OK(ck_ksv_hello_accept(buf, len, key_fn, NULL, f->service, f->rc, 300, real_now,
                                     f->key_id, &in, &f->seal, &rep, &rep_len));
        CHECK(strcmp(in.node_name, NODE) == 0);
        f->session = true;
        CHECK_OK(ck_ksvnode_on_datagram(node, k, rep, rep_len, vnow));
        free(rep);
    } else if (kind == CK_KSV_K_SEALED && f->session) {
        struct ck_ksv_msg *m = NULL;
        uint32_t key_id = 0;
        CHECK_OK(ck_ksv_sealed_key_id(buf, len, &key_id));
        CHECK_OK(ck_ksv_open_msg(key_id == f->prev.key_id ? &f->prev : &f->seal, buf, len, &m));
        if (m != NULL && f->n_in < MAX_IN)
            f->in[f->n_in++] = m;
        else
            ck_ksv_msg_free(m);
    }
}

/* Delivers everything the node sent (and what that makes it send) to the fake KSVs. */
static void
pump(void)
{
    for (int round = 0; round < 8 && n_out > 0; round++) {
        struct pkt batch[MAX_OUT];
        size_t n = n_out;
        memcpy(batch, outbox, sizeof(batch[0]) * n);
        n_out = 0;
        for (size_t i = 0; i < n; i++) {
            ksv_receive(batch[i].ksv, batch[i].data, batch[i].len);
            free(batch[i].data);
        }
    }
}

static void
advance(int64_t ms)
{
    int64_t end = vnow + ms;

    for (;;) {
        int64_t t = ck_ksvnode_next_timeout_ms(node, vnow);
        if (t < 0 || vnow + t > end)
            break;
        vnow += t;
        CHECK_OK(ck_ksvnode_on_timer(node, vnow));
        pump();
    }
    vnow = end;
    CHECK_OK(ck_ksvnode_on_timer(node, vnow));
    pump();
}

/* Seals m from KSV k to the node and delivers it. */
static void
ksv_send(unsigned k, struct ck_ksv_msg *m)
{
    uint8_t *buf = NULL;
    size_t len = 0;

    m->key_id = ksv[k].key_id;
    m->msg_id = ++ksv[k].msg_id;
    m->timestamp = (uint64_t)vnow * 1000u + 17;
    CHECK_OK(ck_ksv_seal_msg(&ksv[k].seal, m, &buf, &len));
    CHECK_OK(ck_ksvnode_on_datagram(node, k, buf, len, vnow));
    free(buf);
    pump();
}

/* ---------------------------------------------------------------------------------------------
 * Message builders.
 */
static void
set_v4(struct ck_ksv_addr *a, uint8_t a0, uint8_t a1, uint8_t a2, uint8_t a3)
{
    memset(a, 0, sizeof(*a));
    a->family = CK_KSV_AF_IPV4;
    a->addr[0] = a0;
    a->addr[1] = a1;
    a->addr[2] = a2;
    a->addr[3] = a3;
}

static struct ck_ksv_sa
make_sa(uint8_t dir, uint8_t last_octet, uint32_t spi, uint32_t life)
{
    struct ck_ksv_sa sa;

    memset(&sa, 0, sizeof(sa));
    sa.direction = (uint8_t)dir;
    sa.proto = CK_KSV_PROTO_ESP;
    sa.mode = CK_KSV_MODE_TRANSPORT;
    set_v4(&sa.peer, 10, 0, 0, last_octet);
    sa.spi = spi;
    sa.enc_alg = 12;
    sa.auth_alg = 2;
    sa.life_sec = life;
    sa.enc_key_len = 16;
    sa.auth_key_len = 20;
    CHECK(RAND_bytes(sa.enc_key, 16) == 1 && RAND_bytes(sa.auth_key, 20) == 1);
    return sa;
}

/* The node's membership of the test group, as the KSV sends it. */
static void
make_group_of(struct ck_ksv_group *g, const struct lkh_signer *s, uint32_t member)
{
    struct lkh_member m;
    uint32_t leaf;

    memset(g, 0, sizeof(*g));
    CHECK_OK(lkh_member_export(tree, member, &m));
    CHECK_OK(lkh_member_leaf(tree, member, &leaf));
    g->group_id = GROUP_ID;
    g->epoch = epoch;
    g->member_index = member;
    g->keying = CK_KSV_KEYING_LKH;
    set_v4(&g->mcast, 239, 1, 2, 3);
    g->mcast_port = 7443;
    CHECK_OK(lkh_signer_public(s, g->sign_pub));
    g->spi = 0x4000;
    g->enc_alg = 12; /* AES-256-CBC: only the key length tells it from AES-128-CBC */
    g->auth_alg = 2;
    g->enc_key_len = 32;
    g->auth_key_len = 20;
    g->proto = CK_KSV_PROTO_ESP;
    g->mode = CK_KSV_MODE_TRANSPORT;
    g->life_sec = 3600;
    g->degree = (uint8_t)m.degree;
    CHECK_OK(ck_ksv_leaf_digits(g->degree, leaf, g->member_id, &g->id_len));
    CHECK_INT_EQ(g->id_len, m.height);
    g->n_keys = (uint8_t)(m.height + 1);
    for (uint32_t i = 0; i <= m.height; i++) {
        struct ck_ksv_path_key *k = &g->keys[i];
        k->level = (uint8_t)i;
        k->key_len = LKH_KEY_LEN;
        k->node = m.path[m.height - i].node;
        k->version = m.path[m.height - i].version;
        memcpy(k->key, m.path[m.height - i].key, LKH_KEY_LEN);
    }
    g->root_version = g->keys[0].version;
    lkh_member_clear(&m);
}

static void
make_group(struct ck_ksv_group *g, const struct lkh_signer *s)
{
    make_group_of(g, s, NODE_MEMBER);
}

static struct ck_ksv_msg *
new_register(uint16_t flags)
{
    struct ck_ksv_msg *m = NULL;

    CHECK_OK(ck_ksv_msg_new(CK_KSV_REGISTER, &m));
    m->flags = flags;
    return m;
}

/* The tree's current group key check. */
static void
tree_key_check(uint8_t out[8], uint32_t *version)
{
    uint8_t key[LKH_KEY_LEN];

    CHECK_OK(lkh_group_key(tree, key, version));
    CHECK_OK(lkh_group_key_check(key, *version, out));
    OPENSSL_cleanse(key, sizeof(key));
}

static struct ck_ksvnode_group_status
node_group(void)
{
    struct ck_ksvnode_group_status g[4];

    memset(g, 0, sizeof(g));
    CHECK(ck_ksvnode_groups(node, g, 4) >= 1);
    return g[0];
}

/* One batch on the tree, packed and signed; the datagrams in *out. */
static void
batch(const uint32_t *leave, size_t n_leave, uint8_t flags, const struct lkh_signer *s,
      struct lkh_rekey_out *out)
{
    struct lkh_batch_result res;
    struct lkh_rekey_params p;
    uint32_t version;
    uint8_t key[LKH_KEY_LEN];

    memset(&res, 0, sizeof(res));
    memset(out, 0, sizeof(*out));
    CHECK_OK(lkh_batch(tree, leave, n_leave, 0, &res));
    CHECK_OK(lkh_group_key(tree, key, &version));
    memset(&p, 0, sizeof(p));
    p.group_id = GROUP_ID;
    p.epoch = ++epoch;
    p.root_version = version;
    p.flags = flags;
    p.degree = lkh_tree_degree(tree);
    p.height = lkh_tree_height(tree);
    CHECK_OK(lkh_rekey_pack(&p, res.wraps, res.n_wraps, s, out));
    lkh_batch_result_clear(&res);
    OPENSSL_cleanse(key, sizeof(key));
}

static void
deliver(const struct lkh_rekey_out *out)
{
    for (size_t i = 0; i < out->n; i++)
        CHECK_OK(ck_ksvnode_on_datagram(node, CK_KSVNODE_FROM_GROUP, out->dgrams[i],
                                        out->lens[i], vnow));
    pump();
}

/* ---------------------------------------------------------------------------------------------
 * Set-up: a node with n KSVs, both fake KSVs up.
 */
static void
setup(size_t n_ksv, int64_t ticket_life)
{
    struct ck_ksvnode_params p;
    int64_t s;

    ck_now(&s, NULL);
    vnow = s * 1000;
    n_install = n_delete = n_group_updates = 0;
    n_hello_at = 0;
    memset(&last_group, 0, sizeof(last_group));
    verbose = getenv("CK_TEST_VERBOSE") != NULL;
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &service_key));
    write_ccache(ticket_life);
    for (unsigned k = 0; k < 2; k++) {
        memset(&ksv[k], 0, sizeof(ksv[k]));
        ksv[k].service = k == 0 ? "ksv/ksv1.test@" REALM : "ksv/ksv2.test@" REALM;
        ksv[k].up = true;
        CHECK_OK(ck_rcache_new(1000, 600, &ksv[k].rc));
    }
    CHECK_OK(lkh_tree_new(4, 64, &tree));
    CHECK_OK(lkh_tree_populate(tree, MEMBERS));
    CHECK_OK(lkh_signer_generate(&signer));
    CHECK_OK(lkh_signer_generate(&forger));
    epoch = 1;
    memset(&p, 0, sizeof(p));
    p.name = NODE;
    p.n_ksv = n_ksv;
    p.ksv_service[0] = ksv[0].service;
    p.ksv_service[1] = ksv[1].service;
    p.ccache = ccache_path;
    p.cb.send = node_send;
    p.cb.sa_install = on_install;
    p.cb.sa_delete = on_delete_cb;
    p.cb.group_update = on_group;
    p.cb.log = on_log;
    p.rng_seed = 42;
    CHECK_OK(ck_ksvnode_new(&p, &node));
}

static void
teardown(void)
{
    ck_ksvnode_free(node);
    node = NULL;
    outbox_clear();
    for (unsigned k = 0; k < 2; k++) {
        ksv_reset_inbox(&ksv[k]);
        ck_ksv_seal_clear(&ksv[k].seal);
        ck_ksv_seal_clear(&ksv[k].prev);
        ck_rcache_free(ksv[k].rc);
    }
    lkh_tree_free(tree);
    tree = NULL;
    lkh_signer_free(signer);
    lkh_signer_free(forger);
    signer = forger = NULL;
    ck_key_clear(&service_key);
    unlink(ccache_path);
}

/* Starts the node and answers its HELLO(s). */
static void
start(void)
{
    CHECK_OK(ck_ksvnode_start(node, vnow));
    pump();
}

/* KSV 0's registration of the node: an IN and an OUT SA, and the group. */
static void
register_full(unsigned k, uint16_t flags)
{
    struct ck_ksv_msg *m = new_register(flags);
    struct ck_ksv_sa in = make_sa(CK_KSV_DIR_IN, 2, 0x1001, 100);
    struct ck_ksv_sa out = make_sa(CK_KSV_DIR_OUT, 2, 0x2001, 100);
    struct ck_ksv_group g;

    CHECK_OK(ck_ksv_msg_add_sa(m, &in));
    CHECK_OK(ck_ksv_msg_add_sa(m, &out));
    make_group(&g, signer);
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ksv_send(k, m);
    ck_ksv_msg_free(m);
    ck_memzero(&g, sizeof(g));
}

/* ---------------------------------------------------------------------------------------------
 * Cases.
 */

static void
test_register_ack(void)
{
    const struct ck_ksvnode_sa *sas;
    const struct ck_ksv_msg *a;
    struct ck_ksvnode_stats st;
    uint8_t check[8];
    uint32_t version;
    uint64_t sent_ts;

    setup(1, 86400);
    start();
    CHECK_INT_EQ(ksv[0].hellos, 1);
    CHECK(!ck_ksvnode_registered(node, 0));
    register_full(0, CK_KSV_F_REFRESH | CK_KSV_F_ACK_REQD);
    sent_ts = (uint64_t)vnow * 1000u + 17;
    CHECK(ck_ksvnode_registered(node, 0));
    /* Two link SAs and the group's derived SA. */
    CHECK_INT_EQ(ck_ksvnode_sas(node, &sas), 3);
    CHECK_INT_EQ(n_install, 3);
    /* The ACK reflects the REGISTER's timestamp and msg id, and carries the node's time. */
    CHECK_INT_EQ(count_in(0, CK_KSV_ACK), 1);
    a = last_in(0, CK_KSV_ACK);
    CHECK(a != NULL);
    if (a != NULL) {
        CHECK_INT_EQ(a->reflected_ts, sent_ts);
        CHECK_INT_EQ(a->acked_msg_id, ksv[0].msg_id);
        CHECK_INT_EQ(a->timestamp, (uint64_t)vnow * 1000u);
        CHECK_INT_EQ(a->key_id, ksv[0].key_id);
    }
    /* The group key the node holds is the tree's. */
    tree_key_check(check, &version);
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    CHECK_INT_EQ(node_group().root_version, version);
    CHECK_INT_EQ(node_group().epoch, 1);
    /* The group SA is the one every member derives. */
    for (size_t i = 0; i < ck_ksvnode_sas(node, &sas); i++) {
        if (!sas[i].group)
            continue;
        uint8_t key[LKH_KEY_LEN], derived[52];
        CHECK_OK(lkh_group_key(tree, key, &version));
        CHECK_OK(lkh_group_sa_key(key, GROUP_ID, version, derived, 52));
        /* Exactly the lengths the KSV sent: 32 + 20, one derivation. */
        CHECK_MEM_EQ(sas[i].sa.enc_key, sas[i].sa.enc_key_len, derived, 32);
        CHECK_MEM_EQ(sas[i].sa.auth_key, sas[i].sa.auth_key_len, derived + 32, 20);
        CHECK_INT_EQ(sas[i].sa.spi, 0x4000);
    }
    /* Without ACK_REQD: no ACK. */
    ksv_reset_inbox(&ksv[0]);
    register_full(0, 0);
    CHECK_INT_EQ(count_in(0, CK_KSV_ACK), 0);
    /* The same SPIs with new keys replace the old SAs; the group key did not change, so its
     * SA stays as it was. */
    CHECK_INT_EQ(ck_ksvnode_sas(node, &sas), 3);
    CHECK_INT_EQ(n_install, 5);
    CHECK_INT_EQ(n_delete, 2);
    ck_ksvnode_get_stats(node, &st);
    CHECK_INT_EQ(st.registrations, 1);
    CHECK_INT_EQ(st.acks_sent, 1);
    teardown();
}

static void
test_refresh_and_delete(void)
{
    struct ck_ksv_msg *m;
    struct ck_ksv_sa a = make_sa(CK_KSV_DIR_IN, 2, 0x1001, 100);
    struct ck_ksv_sa b = make_sa(CK_KSV_DIR_OUT, 2, 0x2001, 100);
    struct ck_ksv_sa c = make_sa(CK_KSV_DIR_OUT, 3, 0x2002, 100);
    struct ck_ksv_delete d;
    const struct ck_ksvnode_sa *sas;
    size_t n;

    setup(1, 86400);
    start();
    m = new_register(CK_KSV_F_REFRESH | CK_KSV_F_ACK_REQD);
    CHECK_OK(ck_ksv_msg_add_sa(m, &a));
    CHECK_OK(ck_ksv_msg_add_sa(m, &b));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    CHECK_INT_EQ(ck_ksvnode_sas(node, &sas), 2);
    /* An incremental REGISTER adds. */
    m = new_register(0);
    CHECK_OK(ck_ksv_msg_add_sa(m, &c));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    CHECK_INT_EQ(ck_ksvnode_sas(node, &sas), 3);
    /* REFRESH with a and c only: b is stale and goes. */
    m = new_register(CK_KSV_F_REFRESH);
    CHECK_OK(ck_ksv_msg_add_sa(m, &a));
    CHECK_OK(ck_ksv_msg_add_sa(m, &c));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    n = ck_ksvnode_sas(node, &sas);
    CHECK_INT_EQ(n, 2);
    CHECK_INT_EQ(n_delete, 1);
    for (size_t i = 0; i < n; i++)
        CHECK(sas[i].sa.spi != 0x2001);
    /* DELETE of every OUT SA to 10.0.0.3 (spi 0), acknowledged. */
    ksv_reset_inbox(&ksv[0]);
    CHECK_OK(ck_ksv_msg_new(CK_KSV_DELETE, &m));
    m->flags = CK_KSV_F_ACK_REQD;
    memset(&d, 0, sizeof(d));
    d.direction = CK_KSV_DIR_OUT;
    set_v4(&d.peer, 10, 0, 0, 3);
    CHECK_OK(ck_ksv_msg_add_delete(m, &d));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    n = ck_ksvnode_sas(node, &sas);
    CHECK_INT_EQ(n, 1);
    CHECK(n == 1 && sas[0].sa.spi == 0x1001);
    CHECK_INT_EQ(count_in(0, CK_KSV_ACK), 1);
    if (last_in(0, CK_KSV_ACK) != NULL)
        CHECK_INT_EQ(last_in(0, CK_KSV_ACK)->acked_msg_id, ksv[0].msg_id);
    /* DELETE by SPI, in the other direction. */
    CHECK_OK(ck_ksv_msg_new(CK_KSV_DELETE, &m));
    d.direction = CK_KSV_DIR_IN;
    set_v4(&d.peer, 10, 0, 0, 2);
    d.spi = 0x1001;
    CHECK_OK(ck_ksv_msg_add_delete(m, &d));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    CHECK_INT_EQ(ck_ksvnode_sas(node, &sas), 0);
    CHECK_INT_EQ(count_in(0, CK_KSV_ACK), 1);
    ck_memzero(&a, sizeof(a));
    ck_memzero(&b, sizeof(b));
    ck_memzero(&c, sizeof(c));
    teardown();
}

static void
test_sa_expiry(void)
{
    struct ck_ksv_msg *m;
    struct ck_ksv_sa a = make_sa(CK_KSV_DIR_OUT, 2, 0x2001, 100);
    struct ck_ksv_sa b = make_sa(CK_KSV_DIR_IN, 4, 0x1004, 100);
    struct ck_ksv_sa b2 = make_sa(CK_KSV_DIR_IN, 4, 0x1005, 100);
    const struct ck_ksvnode_sa *sas;
    const struct ck_ksv_msg *al;
    struct ck_ksvnode_stats st;
    size_t n;

    setup(1, 86400);
    start();
    m = new_register(CK_KSV_F_REFRESH);
    CHECK_OK(ck_ksv_msg_add_sa(m, &a));
    CHECK_OK(ck_ksv_msg_add_sa(m, &b));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    /* At 75% the KSV re-keys the IN link (b2); a is left to run out. */
    advance(75000);
    m = new_register(0);
    CHECK_OK(ck_ksv_msg_add_sa(m, &b2));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    CHECK_INT_EQ(ck_ksvnode_sas(node, &sas), 3);
    advance(24000);
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_SA_EXPIRED), 0);
    advance(2000);
    /* a: no replacement -> kept 25 s more, SA_EXPIRED with its peer and SPI. b: replaced -> gone. */
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_SA_EXPIRED), 1);
    al = last_in(0, CK_KSV_ALARM);
    if (al != NULL) {
        CHECK_INT_EQ(al->alarm_spi, 0x2001);
        CHECK(al->alarm_peer.family == CK_KSV_AF_IPV4 && al->alarm_peer.addr[3] == 2);
    }
    n = ck_ksvnode_sas(node, &sas);
    CHECK_INT_EQ(n, 2);
    for (size_t i = 0; i < n; i++) {
        CHECK(sas[i].sa.spi != 0x1004);
        if (sas[i].sa.spi == 0x2001) {
            CHECK(sas[i].extended);
            CHECK(sas[i].expires_ms > vnow + 20000 && sas[i].expires_ms <= vnow + 25000);
        }
    }
    /* Still no replacement after the extension: extended again, alarmed again. */
    advance(25000);
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_SA_EXPIRED), 2);
    ck_ksvnode_get_stats(node, &st);
    CHECK_INT_EQ(st.sas_extended, 2);
    CHECK_INT_EQ(st.alarms_sent[CK_KSV_ALARM_SA_EXPIRED], 2);
    ck_memzero(&a, sizeof(a));
    ck_memzero(&b, sizeof(b));
    ck_memzero(&b2, sizeof(b2));
    teardown();
}

static void
test_server_conflict(void)
{
    struct ck_ksv_msg *m;
    struct ck_ksv_sa a = make_sa(CK_KSV_DIR_OUT, 2, 0x2001, 100);
    struct ck_ksv_sa a2 = make_sa(CK_KSV_DIR_OUT, 2, 0x3001, 100); /* same link, other SPI */
    struct ck_ksv_sa x = make_sa(CK_KSV_DIR_IN, 9, 0x5001, 100);   /* unrelated */
    const struct ck_ksvnode_sa *sas;
    struct ck_ksv_group g;
    size_t n;

    setup(2, 86400);
    start();
    CHECK_INT_EQ(ksv[0].hellos, 1);
    CHECK_INT_EQ(ksv[1].hellos, 1);
    m = new_register(CK_KSV_F_REFRESH);
    CHECK_OK(ck_ksv_msg_add_sa(m, &a));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    m = new_register(CK_KSV_F_REFRESH | CK_KSV_F_ACK_REQD);
    CHECK_OK(ck_ksv_msg_add_sa(m, &a2));
    CHECK_OK(ck_ksv_msg_add_sa(m, &x));
    ksv_send(1, m);
    ck_ksv_msg_free(m);
    CHECK(ck_ksvnode_registered(node, 0) && ck_ksvnode_registered(node, 1));
    /* Both KSVs are told; the first KSV's SA stays, the unrelated one is installed. */
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_SERVER_CONFLICT), 1);
    CHECK_INT_EQ(count_alarms(1, CK_KSV_ALARM_SERVER_CONFLICT), 1);
    if (last_in(1, CK_KSV_ALARM) != NULL) {
        CHECK_INT_EQ(last_in(1, CK_KSV_ALARM)->alarm_spi, 0x3001);
        CHECK_INT_EQ(last_in(1, CK_KSV_ALARM)->alarm_ref_id, ksv[1].msg_id);
    }
    n = ck_ksvnode_sas(node, &sas);
    CHECK_INT_EQ(n, 2);
    for (size_t i = 0; i < n; i++)
        CHECK(sas[i].sa.spi != 0x3001);
    CHECK_INT_EQ(count_in(1, CK_KSV_ACK), 1);
    /* The same group from both KSVs with different signing keys: a conflict too. */
    ksv_reset_inbox(&ksv[0]);
    ksv_reset_inbox(&ksv[1]);
    m = new_register(0);
    make_group(&g, signer);
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    m = new_register(0);
    make_group(&g, forger);
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ksv_send(1, m);
    ck_ksv_msg_free(m);
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_SERVER_CONFLICT), 1);
    CHECK_INT_EQ(count_alarms(1, CK_KSV_ALARM_SERVER_CONFLICT), 1);
    CHECK_INT_EQ(ck_ksvnode_groups(node, NULL, 0), 1);
    ck_memzero(&g, sizeof(g));
    ck_memzero(&a, sizeof(a));
    ck_memzero(&a2, sizeof(a2));
    ck_memzero(&x, sizeof(x));
    teardown();
}

static void
test_rekeys(void)
{
    struct lkh_rekey_out out, old;
    struct ck_ksvnode_stats st;
    const struct ck_ksv_msg *ga;
    uint8_t check[8];
    uint32_t version, leave;

    setup(1, 86400);
    start();
    register_full(0, CK_KSV_F_REFRESH);
    /* Member 5 leaves: the node (3) applies the batch and has the tree's new key. */
    leave = 5;
    batch(&leave, 1, LKH_REKEY_F_ACK_REQD, signer, &out);
    deliver(&out);
    tree_key_check(check, &version);
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    CHECK_INT_EQ(node_group().epoch, epoch);
    CHECK_INT_EQ(node_group().root_version, version);
    /* The rekey asked for an acknowledgement. */
    CHECK_INT_EQ(count_in(0, CK_KSV_GROUP_ACK), 1);
    ga = last_in(0, CK_KSV_GROUP_ACK);
    if (ga != NULL) {
        CHECK_INT_EQ(ga->grp_id, GROUP_ID);
        CHECK_INT_EQ(ga->grp_epoch, epoch);
    }
    /* The same datagrams again: replays, nothing changes, nothing alarmed. */
    deliver(&out);
    ck_ksvnode_get_stats(node, &st);
    CHECK(st.rekeys_replayed >= 1);
    CHECK_INT_EQ(st.rekeys_applied, 1);
    CHECK_INT_EQ(st.alarms_sent[CK_KSV_ALARM_SIGN_FAILED], 0);
    old = out;
    /* A batch the node's path does not need is still applied (new root). */
    leave = 0;
    batch(&leave, 1, 0, signer, &out);
    deliver(&out);
    tree_key_check(check, &version);
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    CHECK_INT_EQ(count_in(0, CK_KSV_GROUP_ACK), 1);
    /* An older epoch replayed after a newer one: dropped. */
    deliver(&old);
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    ck_ksvnode_get_stats(node, &st);
    CHECK_INT_EQ(st.rekeys_applied, 2);
    CHECK(st.rekeys_replayed >= 2);
    lkh_rekey_out_clear(&old);
    lkh_rekey_out_clear(&out);
    teardown();
}

static void
test_forged_and_truncated(void)
{
    struct lkh_rekey_out out;
    struct ck_ksvnode_stats st;
    uint8_t before[8];
    uint32_t leave = 6;

    setup(1, 86400);
    start();
    register_full(0, CK_KSV_F_REFRESH);
    memcpy(before, node_group().key_check, 8);
    /* Signed by another key: SIGN_FAILED, the key unchanged. */
    batch(&leave, 1, 0, forger, &out);
    deliver(&out);
    CHECK_MEM_EQ(node_group().key_check, 8, before, 8);
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_SIGN_FAILED), 1);
    ck_ksvnode_get_stats(node, &st);
    CHECK_INT_EQ(st.rekeys_bad_sig, out.n);
    CHECK_INT_EQ(st.rekeys_applied, 0);
    /* A flipped bit in a genuine datagram: the same. */
    vnow += 1500;
    out.dgrams[0][out.lens[0] / 2] ^= 0x10;
    deliver(&out);
    CHECK_MEM_EQ(node_group().key_check, 8, before, 8);
    CHECK(count_alarms(0, CK_KSV_ALARM_SIGN_FAILED) + count_alarms(0, CK_KSV_ALARM_MALFORMED_PACKET) == 2);
    lkh_rekey_out_clear(&out);
    /* Truncated: MALFORMED_PACKET, rate-limited to one a second. */
    vnow += 1500;
    leave = 7;
    batch(&leave, 1, 0, signer, &out);
    {
        size_t before_mal = count_alarms(0, CK_KSV_ALARM_MALFORMED_PACKET);
        CHECK_OK(ck_ksvnode_on_datagram(node, CK_KSVNODE_FROM_GROUP, out.dgrams[0],
                                        out.lens[0] - 9, vnow));
        CHECK_OK(ck_ksvnode_on_datagram(node, CK_KSVNODE_FROM_GROUP, out.dgrams[0], 20, vnow));
        pump();
        CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_MALFORMED_PACKET), before_mal + 1);
        ck_ksvnode_get_stats(node, &st);
        CHECK(st.rekeys_malformed >= 2);
        CHECK(st.alarms_suppressed >= 1);
    }
    /* The genuine one still applies afterwards. */
    deliver(&out);
    ck_ksvnode_get_stats(node, &st);
    CHECK_INT_EQ(st.rekeys_applied, 1);
    lkh_rekey_out_clear(&out);
    teardown();
}

static void
test_missed_epoch_recover(void)
{
    struct lkh_rekey_out e2, e3;
    const struct ck_ksv_msg *r;
    struct ck_ksv_msg *m;
    struct ck_ksv_group g;
    uint8_t check[8];
    uint32_t version, leave;

    setup(1, 86400);
    start();
    register_full(0, CK_KSV_F_REFRESH);
    /* Epoch 2 (the node's sibling 2 leaves: its parent and the root change) is lost. */
    leave = 2;
    batch(&leave, 1, 0, signer, &e2);
    /* Epoch 3 (member 4 of the neighbouring subtree leaves): the common ancestor's new key is
     * wrapped under the node's parent key of epoch 2, which the node never got. */
    leave = 4;
    batch(&leave, 1, 0, signer, &e3);
    deliver(&e3);
    CHECK_INT_EQ(count_in(0, CK_KSV_RECOVER), 1);
    r = last_in(0, CK_KSV_RECOVER);
    if (r != NULL) {
        CHECK_INT_EQ(r->grp_id, GROUP_ID);
        CHECK_INT_EQ(r->grp_epoch, 1);
    }
    CHECK_INT_EQ(node_group().epoch, 1);
    /* Asked at most once a second. */
    deliver(&e3);
    CHECK_INT_EQ(count_in(0, CK_KSV_RECOVER), 1);
    /* The KSV answers with the current path by unicast. */
    m = new_register(CK_KSV_F_ACK_REQD);
    make_group(&g, signer);
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    tree_key_check(check, &version);
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    CHECK_INT_EQ(node_group().epoch, 3);
    /* Then the next batch applies again. */
    lkh_rekey_out_clear(&e2);
    leave = 0;
    batch(&leave, 1, 0, signer, &e2);
    deliver(&e2);
    tree_key_check(check, &version);
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    lkh_rekey_out_clear(&e2);
    lkh_rekey_out_clear(&e3);
    ck_memzero(&g, sizeof(g));
    teardown();
}

static void
test_revoked(void)
{
    struct lkh_rekey_out out;
    const struct ck_ksvnode_sa *sas;
    uint32_t leave = NODE_MEMBER;
    uint8_t zero[8] = {0};

    setup(1, 86400);
    start();
    register_full(0, CK_KSV_F_REFRESH);
    CHECK_INT_EQ(ck_ksvnode_sas(node, &sas), 3);
    batch(&leave, 1, 0, signer, &out);
    deliver(&out);
    CHECK(node_group().removed);
    CHECK(last_group.removed);
    CHECK_MEM_EQ(node_group().key_check, 8, zero, 8);
    /* The group SA is gone, the link SAs stay. */
    CHECK_INT_EQ(ck_ksvnode_sas(node, &sas), 2);
    lkh_rekey_out_clear(&out);
    /* Later batches are ignored. */
    leave = 1;
    batch(&leave, 1, 0, signer, &out);
    deliver(&out);
    CHECK(node_group().removed);
    lkh_rekey_out_clear(&out);
    teardown();
}

static void
test_ek_group(void)
{
    struct ck_ksv_msg *m;
    struct ck_ksv_group g;
    uint8_t check[8];

    setup(1, 86400);
    start();
    memset(&g, 0, sizeof(g));
    g.group_id = 9;
    g.epoch = 4;
    g.root_version = 1;
    g.keying = CK_KSV_KEYING_EK;
    set_v4(&g.mcast, 239, 9, 9, 9);
    g.mcast_port = 7443;
    CHECK_OK(lkh_signer_public(signer, g.sign_pub));
    g.spi = 0x4100;
    g.enc_alg = 20; /* AES-256-GCM: the same IKEv2 ID as AES-128-GCM, told by its length */
    g.auth_alg = 0;
    g.enc_key_len = 36;
    g.auth_key_len = 0;
    g.proto = CK_KSV_PROTO_ESP;
    g.mode = CK_KSV_MODE_TRANSPORT;
    g.life_sec = 600;
    g.degree = 4;
    g.n_keys = 1;
    g.keys[0].key_len = LKH_KEY_LEN;
    CHECK(RAND_bytes(g.keys[0].key, LKH_KEY_LEN) == 1);
    g.keys[0].version = 1;
    m = new_register(CK_KSV_F_REFRESH | CK_KSV_F_ACK_REQD);
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    CHECK_OK(lkh_group_key_check(g.keys[0].key, 1, check));
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    CHECK_INT_EQ(node_group().keying, CK_KSV_KEYING_EK);
    {
        const struct ck_ksvnode_sa *sas = NULL, *gs = NULL;
        uint8_t derived[36];

        for (size_t i = 0; i < ck_ksvnode_sas(node, &sas); i++)
            if (sas[i].group)
                gs = &sas[i];
        CHECK(gs != NULL);
        CHECK_OK(lkh_group_sa_key(g.keys[0].key, 9, 1, derived, 36));
        if (gs != NULL) {
            CHECK_INT_EQ(gs->sa.enc_alg, 20);
            CHECK_MEM_EQ(gs->sa.enc_key, gs->sa.enc_key_len, derived, 36);
            CHECK_INT_EQ(gs->sa.auth_key_len, 0);
        }
        ck_memzero(derived, sizeof(derived));
    }
    /* A member left: the new key by unicast, epoch + 1. */
    g.epoch = 5;
    g.root_version = 2;
    g.keys[0].version = 2;
    CHECK(RAND_bytes(g.keys[0].key, LKH_KEY_LEN) == 1);
    m = new_register(CK_KSV_F_ACK_REQD);
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    CHECK_OK(lkh_group_key_check(g.keys[0].key, 2, check));
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    CHECK_INT_EQ(node_group().epoch, 5);
    CHECK_INT_EQ(count_in(0, CK_KSV_ACK), 2);
    /* A hybrid group keyed the EK way (the group key alone) is taken as such. */
    g.keying = CK_KSV_KEYING_HYBRID;
    g.epoch = 6;
    CHECK(RAND_bytes(g.keys[0].key, LKH_KEY_LEN) == 1);
    m = new_register(0);
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    CHECK_OK(lkh_group_key_check(g.keys[0].key, 2, check));
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    CHECK_INT_EQ(node_group().keying, CK_KSV_KEYING_HYBRID);
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_MALFORMED_PACKET), 0);
    ck_memzero(&g, sizeof(g));
    teardown();
}

/* Hybrid with a path: datagrams apply as LKH; a batch that replaced the node's cluster (its leaf
 * rekeyed without a wrap for it; played here by a leave and a join of the node's leaf) does not
 * mark it removed: the node keeps its keys, asks RECOVER, and takes the sealed unicast path. When
 * the unicast comes first, the datagram of the same epoch is a replay. */
static void
test_hybrid_group(void)
{
    struct lkh_batch_result res;
    struct lkh_rekey_params p;
    struct lkh_rekey_out out;
    struct ck_ksvnode_stats ns;
    struct ck_ksv_msg *m;
    struct ck_ksv_group g;
    uint8_t check[8], before[8], key[LKH_KEY_LEN];
    uint32_t version, leave, replaced;

    setup(1, 86400);
    start();
    m = new_register(CK_KSV_F_REFRESH);
    make_group(&g, signer);
    g.keying = CK_KSV_KEYING_HYBRID;
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    CHECK_INT_EQ(node_group().keying, CK_KSV_KEYING_HYBRID);
    /* Another cluster changes: the multicast applies. */
    leave = 6;
    batch(&leave, 1, 0, signer, &out);
    deliver(&out);
    lkh_rekey_out_clear(&out);
    tree_key_check(check, &version);
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    memcpy(before, check, 8);
    /* The node's cluster is replaced: its leaf goes to the replacement at once. */
    memset(&res, 0, sizeof(res));
    leave = NODE_MEMBER;
    CHECK_OK(lkh_batch(tree, &leave, 1, 1, &res));
    CHECK_INT_EQ(res.n_joined, 1);
    replaced = res.joined[0];
    CHECK_OK(lkh_group_key(tree, key, &version));
    memset(&p, 0, sizeof(p));
    p.group_id = GROUP_ID;
    p.epoch = ++epoch;
    p.root_version = version;
    p.degree = lkh_tree_degree(tree);
    p.height = lkh_tree_height(tree);
    CHECK_OK(lkh_rekey_pack(&p, res.wraps, res.n_wraps, signer, &out));
    lkh_batch_result_clear(&res);
    ksv_reset_inbox(&ksv[0]);
    deliver(&out);
    CHECK(!node_group().removed);
    CHECK_MEM_EQ(node_group().key_check, 8, before, 8);
    CHECK_INT_EQ(node_group().epoch, epoch - 1);
    CHECK_INT_EQ(count_in(0, CK_KSV_RECOVER), 1);
    /* The unicast path of the replaced cluster. */
    m = new_register(CK_KSV_F_ACK_REQD);
    make_group_of(&g, signer, replaced);
    g.keying = CK_KSV_KEYING_HYBRID;
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    tree_key_check(check, &version);
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    CHECK_INT_EQ(node_group().epoch, epoch);
    CHECK(!node_group().removed);
    /* The same datagram again is a replay now. */
    ck_ksvnode_get_stats(node, &ns);
    {
        uint64_t replayed = ns.rekeys_replayed;
        deliver(&out);
        ck_ksvnode_get_stats(node, &ns);
        CHECK_INT_EQ(ns.rekeys_replayed, replayed + out.n);
    }
    lkh_rekey_out_clear(&out);
    /* And the next multicast applies to the new path. */
    leave = 7;
    batch(&leave, 1, 0, signer, &out);
    deliver(&out);
    lkh_rekey_out_clear(&out);
    tree_key_check(check, &version);
    CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    OPENSSL_cleanse(key, sizeof(key));
    ck_memzero(&g, sizeof(g));
    teardown();
}

static void
test_hello_backoff_and_nudge(void)
{
    uint8_t *nudge = NULL;
    size_t len = 0;
    struct ck_ksvnode_stats st;

    setup(1, 86400);
    ksv[0].up = false;
    start();
    /* 1, 2, 4, 8, 16, 30 s (each up to 10% later) between tries, then from 1 s again. */
    advance(100000);
    CHECK(n_hello_at >= 9);
    for (size_t i = 1; i < 9 && i < n_hello_at; i++) {
        static const int64_t want[] = {0, 1000, 2000, 4000, 8000, 16000, 30000, 1000, 2000};
        int64_t d = hello_at[i] - hello_at[i - 1];
        if (d < want[i] || d > want[i] + want[i] / 10)
            fprintf(stderr, "  try %zu after %lld ms, expected %lld\n", i, (long long)d,
                    (long long)want[i]);
        CHECK(d >= want[i] && d <= want[i] + want[i] / 10);
    }
    ck_ksvnode_get_stats(node, &st);
    CHECK_INT_EQ(st.hellos_sent, n_hello_at);
    /* The KSV comes back: the next try registers. */
    ksv[0].up = true;
    for (int i = 0; i < 40 && ksv[0].hellos == 0; i++)
        advance(1000);
    CHECK_INT_EQ(ksv[0].hellos, 1);
    register_full(0, CK_KSV_F_REFRESH);
    CHECK(ck_ksvnode_registered(node, 0));
    /* NUDGE (the KSV restarted): one HELLO, a second nudge within a second is ignored. */
    CHECK_OK(ck_ksv_nudge_build((uint64_t)vnow * 1000u, "ksv1", &nudge, &len));
    CHECK_OK(ck_ksvnode_on_datagram(node, 0, nudge, len, vnow));
    pump();
    CHECK_INT_EQ(ksv[0].hellos, 2);
    vnow += 500;
    CHECK_OK(ck_ksvnode_on_datagram(node, 0, nudge, len, vnow));
    pump();
    CHECK_INT_EQ(ksv[0].hellos, 2);
    vnow += 600;
    CHECK_OK(ck_ksvnode_on_datagram(node, 0, nudge, len, vnow));
    pump();
    CHECK_INT_EQ(ksv[0].hellos, 3);
    ck_ksvnode_get_stats(node, &st);
    CHECK_INT_EQ(st.nudges, 2);
    CHECK_INT_EQ(st.nudges_ignored, 1);
    free(nudge);
    teardown();
}

static void
test_reregister_before_ticket_end(void)
{
    struct ck_ksvnode_stats st;

    setup(1, 1000); /* tickets of 1000 s */
    start();
    register_full(0, CK_KSV_F_REFRESH);
    CHECK_INT_EQ(ksv[0].hellos, 1);
    advance(880 * 1000);
    CHECK_INT_EQ(ksv[0].hellos, 1);
    advance(30 * 1000);
    /* At 90% of the ticket's life: HELLO again (the same ticket is still valid). */
    CHECK_INT_EQ(ksv[0].hellos, 2);
    register_full(0, CK_KSV_F_REFRESH);
    CHECK(ck_ksvnode_registered(node, 0));
    ck_ksvnode_get_stats(node, &st);
    CHECK_INT_EQ(st.registrations, 2);
    teardown();
}

/* A sealed datagram with arbitrary content, made with the KSV's session key as ksv_wire.h lays
 * it out: the node must see that it opened but does not parse. */
static void
seal_raw(unsigned k, const uint8_t *pt, size_t pt_len, uint8_t *out, size_t *out_len)
{
    struct fake_ksv *f = &ksv[k];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t nonce[12];
    uint64_t seq = ++f->seal.tx_seq;
    int l = 0;

    memcpy(out, "CKSV", 4);
    out[4] = CK_KSV_WIRE_VERSION;
    out[5] = CK_KSV_K_SEALED;
    out[6] = out[7] = 0;
    ck_put_be32(out + 8, f->seal.key_id);
    ck_put_be32(out + 12, (uint32_t)(seq >> 32));
    ck_put_be32(out + 16, (uint32_t)seq);
    ck_put_be32(nonce, 1);
    memcpy(nonce + 4, out + 12, 8);
    CHECK(ctx != NULL);
    CHECK(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, f->seal.tx_key, nonce) == 1);
    CHECK(EVP_EncryptUpdate(ctx, NULL, &l, out, 20) == 1);
    CHECK(EVP_EncryptUpdate(ctx, out + 20, &l, pt, (int)pt_len) == 1);
    CHECK(EVP_EncryptFinal_ex(ctx, out + 20 + l, &l) == 1);
    CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + 20 + pt_len) == 1);
    *out_len = 20 + pt_len + 16;
    EVP_CIPHER_CTX_free(ctx);
}

static void
test_hostile_sealed(void)
{
    struct ck_ksv_msg *m;
    struct ck_ksv_group g;
    struct ck_ksvnode_stats st;
    const struct ck_ksvnode_sa *sas;
    uint8_t junk[64], dgram[200];
    size_t len, alarms = 0;

    setup(1, 86400);
    start();
    register_full(0, CK_KSV_F_REFRESH);
    CHECK_INT_EQ(ck_ksvnode_sas(node, &sas), 3);
    /* Opens under the session key, does not parse. */
    CHECK(RAND_bytes(junk, sizeof(junk)) == 1);
    seal_raw(0, junk, sizeof(junk), dgram, &len);
    CHECK_OK(ck_ksvnode_on_datagram(node, 0, dgram, len, vnow));
    pump();
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_MALFORMED_PACKET), ++alarms);
    /* Parses but does not apply: each refused whole (no ACK, nothing changed), alarmed. */
    for (int c = 0; c < 8; c++) {
        vnow += 1100;
        m = new_register(CK_KSV_F_REFRESH | CK_KSV_F_ACK_REQD);
        make_group(&g, signer);
        switch (c) {
        case 0: g.keys[1].key_len = 8; break;          /* not an LKH key */
        case 1: g.keying = 7; break;                   /* unknown keying */
        case 2: g.enc_alg = 999; break;                /* a group SA it cannot derive */
        case 3: g.root_version = 0; g.keys[0].version = 5; break;
        case 4: g.enc_key_len = 20; break;             /* a key AES-CBC does not take */
        case 5: g.auth_key_len = 21; break;            /* over HMAC-SHA1's */
        case 6: g.auth_key_len = 8; break;             /* a short HMAC key */
        default: memset(g.sign_pub, 0, sizeof(g.sign_pub)); break;
        }
        if (ck_ksv_msg_add_group(m, &g) != 0) {
            /* The codec already refuses it: nothing to test at the node. */
            ck_ksv_msg_free(m);
            continue;
        }
        ksv_send(0, m);
        ck_ksv_msg_free(m);
        CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_MALFORMED_PACKET), ++alarms);
        CHECK_INT_EQ(count_in(0, CK_KSV_ACK), 0);
        CHECK_INT_EQ(ck_ksvnode_sas(node, &sas), 3);
    }
    /* A message type only nodes send. */
    vnow += 1100;
    CHECK_OK(ck_ksv_msg_new(CK_KSV_ALARM, &m));
    m->alarm = CK_KSV_ALARM_SA_EXPIRED;
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_MALFORMED_PACKET), ++alarms);
    /* Not from the KSV (a wrong tag, a wrong key id): dropped silently. */
    seal_raw(0, junk, sizeof(junk), dgram, &len);
    dgram[len - 1] ^= 1;
    CHECK_OK(ck_ksvnode_on_datagram(node, 0, dgram, len, vnow + 1100));
    ck_put_be32(dgram + 8, 0xdead);
    CHECK_OK(ck_ksvnode_on_datagram(node, 0, dgram, len, vnow + 1100));
    pump();
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_MALFORMED_PACKET), alarms);
    ck_ksvnode_get_stats(node, &st);
    CHECK(st.sealed_bad >= 3);
    ck_memzero(&g, sizeof(g));
    teardown();
}

/* Random and mutated datagrams on every input: counted, never a crash. */
static void
test_random_datagrams(void)
{
    struct lkh_rekey_out out;
    uint8_t buf[2048];
    uint32_t leave = 6;

    setup(1, 86400);
    start();
    register_full(0, CK_KSV_F_REFRESH);
    batch(&leave, 1, 0, signer, &out);
    for (int i = 0; i < 3000; i++) {
        size_t len;
        unsigned r;
        CHECK(RAND_bytes((uint8_t *)&r, sizeof(r)) == 1);
        if (i % 3 == 0 && out.n > 0) {
            /* A mutated genuine rekey. */
            len = out.lens[0] < sizeof(buf) ? out.lens[0] : sizeof(buf);
            memcpy(buf, out.dgrams[0], len);
            buf[r % len] ^= (uint8_t)(1u << (r >> 29));
            if (r & 0x100)
                len = r % len;
        } else {
            len = r % sizeof(buf);
            CHECK(RAND_bytes(buf, (int)sizeof(buf)) == 1);
            if (len >= 8) {
                memcpy(buf, "CKSV", 4);
                buf[4] = CK_KSV_WIRE_VERSION;
                buf[5] = (uint8_t)(1 + r % 6);
                buf[6] = buf[7] = 0;
            }
        }
        vnow += 7;
        CHECK_OK(ck_ksvnode_on_datagram(node, (i & 1) ? 0 : CK_KSVNODE_FROM_GROUP, buf, len,
                                        vnow));
        outbox_clear();
    }
    /* Still working. */
    deliver(&out);
    {
        uint8_t check[8];
        uint32_t version;
        tree_key_check(check, &version);
        CHECK_MEM_EQ(node_group().key_check, 8, check, 8);
    }
    lkh_rekey_out_clear(&out);
    teardown();
}

/* An alarm raised while the node has no session (its ticket ended, the KSV did not answer)
 * waits for the next registration and goes under the new session. */
static void
test_alarm_waits_for_session(void)
{
    struct ck_ksv_msg *m;
    struct ck_ksv_sa a = make_sa(CK_KSV_DIR_OUT, 2, 0x2001, 1200);
    const struct ck_ksv_msg *al;

    setup(1, 1000);
    start();
    m = new_register(CK_KSV_F_REFRESH);
    CHECK_OK(ck_ksv_msg_add_sa(m, &a));
    ksv_send(0, m);
    ck_ksv_msg_free(m);
    ksv[0].up = false;
    advance(1001 * 1000);
    CHECK(!ck_ksvnode_registered(node, 0));
    /* The SA runs out with no session: nothing can be sent yet. */
    advance(200 * 1000);
    CHECK_INT_EQ(count_alarms(0, CK_KSV_ALARM_SA_EXPIRED), 0);
    /* New tickets and the KSV back: the next HELLO registers, the alarm follows. */
    rewrite_ccache(86400);
    ksv[0].up = true;
    advance(31 * 1000);
    CHECK_INT_EQ(ksv[0].hellos, 2);
    CHECK(count_alarms(0, CK_KSV_ALARM_SA_EXPIRED) >= 1);
    al = last_in(0, CK_KSV_ALARM);
    if (al != NULL) {
        CHECK_INT_EQ(al->alarm_spi, 0x2001);
        CHECK_INT_EQ(al->key_id, ksv[0].key_id);
    }
    ck_memzero(&a, sizeof(a));
    teardown();
}

CK_TEST_MAIN("ksv_node", CK_TEST_CASE(test_register_ack), CK_TEST_CASE(test_refresh_and_delete),
             CK_TEST_CASE(test_sa_expiry), CK_TEST_CASE(test_server_conflict),
             CK_TEST_CASE(test_rekeys), CK_TEST_CASE(test_forged_and_truncated),
             CK_TEST_CASE(test_missed_epoch_recover), CK_TEST_CASE(test_revoked),
             CK_TEST_CASE(test_ek_group), CK_TEST_CASE(test_hybrid_group),
             CK_TEST_CASE(test_hello_backoff_and_nudge),
             CK_TEST_CASE(test_reregister_before_ticket_end), CK_TEST_CASE(test_hostile_sealed),
             CK_TEST_CASE(test_random_datagrams),
             CK_TEST_CASE(test_alarm_waits_for_session))
