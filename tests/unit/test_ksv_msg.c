/* The keying server's message codec (cablekey/ksv_msg.h): the seed's numbers on the wire, a
 * byte-exact vector (the one in docs/PROTOCOL.md, built independently of the codec), every message
 * type through encode -> parse -> encode, and every refusal: each truncation, bad type, version
 * and flag bits, counts and key lengths over the limits, declared lengths that do not match,
 * trailing bytes, reserved bytes, and field values out of range. The path key node ids are
 * checked against lib/lkh's own numbering. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "cablekey/ksv_msg.h"
#include "cablekey/lkh.h"
#include "cablekey/util.h"

/* docs/PROTOCOL.md, "Keying server", "Example": a REGISTER (REFRESH | ACK_REQD, msg_id 7) with one
 * outbound ESP SA to 10.0.0.2 (AES-128-GCM-16, SPI 0x1001) and the path of member "10" (LKH member
 * 9; heap nodes 0, 2, 9) in group 1 (degree 4, epoch 5, root version 3, GROUP_ACK wanted,
 * 239.1.1.1:7443, group SA 0x2001 ESP AES-GCM-16 3600 s), the node's ACK of it, and a GROUP_ACK.
 * Written by a separate script (Python struct.pack) from the layout in the document:
 *   sa  = pack(">BBBB4sIHHIIBB", 2, 50, 1, 4, ip(10.0.0.2), 0x1001, 20, 0, 100, 10000, 20, 0)
 *         + bytes(range(20))
 *   grp = pack(">IQIIBBBBBBBBIHHIIBBH", 1, 5, 9, 3, 4, 2, 3, 0, 1, 50, 1, 0, 0x2001, 20, 0,
 *              3600, 0, 36, 0, 7443) + [4, 239, 1, 1, 1] + bytes(range(0xe0, 0x100)) + [1, 0]
 *         + for (level, node, version, k) in (0, 0, 3, a0..), (1, 2, 7, b0..), (2, 9, 1, c0..):
 *               pack(">BBII", level, 16, node, version) + 16 key bytes
 *   reg = pack(">HHHBBIIQ", 32769, 3, 239, 1, 0, 0, 7, TS) + pack(">BBH", 1, 1, 0) + sa + grp */
static const char *reg_hex =
    "8001000300ef01000000000000000007000644f37b802000"
    "01010000"
    "023201040a000002000010010014000000000064000027101400"
    "000102030405060708090a0b0c0d0e0f10111213"
    "0000000100000000000000050000000900000003"
    "0402030001320100"
    "0000200100140000" "00000e1000000000" "2400"
    "1d1304ef010101"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
    "0100"
    "00100000000000000003a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    "01100000000200000007b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "02100000000900000001c0c1c2c3c4c5c6c7c8c9cacbcccdcecf";
static const char *ack_hex = "80000000002401000000000000000002000644f37b8025dc"
                             "000644f37b802000"
                             "00000007";
/* GROUP_ACK (key id 0x01020304, msg_id 4) of group 1, epoch 6. */
static const char *gack_hex = "80040000002401000102030400000004000644f37b802bb8"
                              "00000001"
                              "0000000000000006";

#define TS 1764662400000000ull /* 2025-12-02 08:00:00 UTC in microseconds */

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

static void
set_v6(struct ck_ksv_addr *a, uint8_t last)
{
    memset(a, 0, sizeof(*a));
    a->family = CK_KSV_AF_IPV6;
    a->addr[0] = 0x20;
    a->addr[1] = 0x01;
    a->addr[2] = 0x0d;
    a->addr[3] = 0xb8;
    a->addr[15] = last;
}

static void
fill(uint8_t *p, size_t n, uint8_t base)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(base + i);
}

static void
doc_sa(struct ck_ksv_sa *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->direction = CK_KSV_DIR_OUT;
    sa->proto = CK_KSV_PROTO_ESP;
    sa->mode = CK_KSV_MODE_TRANSPORT;
    set_v4(&sa->peer, 10, 0, 0, 2);
    sa->spi = 0x1001;
    sa->enc_alg = 20; /* ENCR_AES_GCM_16 */
    sa->life_sec = 100;
    sa->life_kbytes = 10000;
    sa->enc_key_len = 20;
    fill(sa->enc_key, 20, 0);
}

/* The group fields besides the path, valid for any path. */
static void
group_base(struct ck_ksv_group *g, uint32_t id)
{
    memset(g, 0, sizeof(*g));
    g->group_id = id;
    g->keying = CK_KSV_KEYING_LKH;
    set_v4(&g->mcast, 239, 1, 1, 1);
    g->mcast_port = 7443;
    fill(g->sign_pub, 32, 0xe0);
    g->spi = 0x2001;
    g->proto = CK_KSV_PROTO_ESP;
    g->mode = CK_KSV_MODE_TRANSPORT;
    g->enc_alg = 20;
    g->enc_key_len = 20; /* AES-128-GCM and its salt */
    g->life_sec = 3600;
}

static void
doc_group(struct ck_ksv_group *g)
{
    static const uint32_t nodes[] = {0, 2, 9}, versions[] = {3, 7, 1};

    group_base(g, 1);
    g->enc_key_len = 36; /* AES-256-GCM and its salt: the same IKEv2 ID as AES-128-GCM */
    g->epoch = 5;
    g->member_index = 9;
    g->root_version = 3;
    g->gflags = CK_KSV_GF_WANT_ACK;
    g->degree = 4;
    g->id_len = 2;
    g->member_id[0] = 1;
    g->member_id[1] = 0;
    g->n_keys = 3;
    for (uint8_t i = 0; i < 3; i++) {
        g->keys[i].level = i;
        g->keys[i].key_len = 16;
        g->keys[i].node = nodes[i];
        g->keys[i].version = versions[i];
        fill(g->keys[i].key, 16, (uint8_t)(0xa0 + 0x10 * i));
    }
}

/* Sets the path key slot i (level, length, key bytes from base) with the node its level has. */
static void
set_key(struct ck_ksv_group *g, size_t i, uint8_t level, uint8_t len, uint8_t base)
{
    g->keys[i].level = level;
    g->keys[i].key_len = len;
    fill(g->keys[i].key, len, base);
    CHECK_OK(ck_ksv_path_node(g->degree, g->member_id, level, &g->keys[i].node));
    if (level == 0)
        g->keys[i].version = g->root_version;
}

static struct ck_ksv_msg *
doc_register(void)
{
    struct ck_ksv_msg *m = NULL;
    struct ck_ksv_sa sa;
    struct ck_ksv_group g;

    CHECK_OK(ck_ksv_msg_new(CK_KSV_REGISTER, &m));
    if (m == NULL)
        abort();
    m->flags = CK_KSV_F_REFRESH | CK_KSV_F_ACK_REQD;
    m->msg_id = 7;
    m->timestamp = TS;
    doc_sa(&sa);
    doc_group(&g);
    CHECK_OK(ck_ksv_msg_add_sa(m, &sa));
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ck_memzero(&sa, sizeof(sa));
    ck_memzero(&g, sizeof(g));
    return m;
}

/* A REGISTER using every SA variant and two groups. */
static struct ck_ksv_msg *
big_register(void)
{
    struct ck_ksv_msg *m = doc_register();
    struct ck_ksv_sa sa;
    struct ck_ksv_group g;

    m->flags = CK_KSV_F_ACK_REQD;
    m->key_id = 0x01020304;
    doc_sa(&sa);
    sa.direction = CK_KSV_DIR_IN; /* same SPI as the outbound one: fine, other direction */
    CHECK_OK(ck_ksv_msg_add_sa(m, &sa));
    memset(&sa, 0, sizeof(sa));
    sa.direction = CK_KSV_DIR_IN;
    sa.proto = CK_KSV_PROTO_AH;
    sa.mode = CK_KSV_MODE_TUNNEL;
    set_v6(&sa.peer, 9);
    sa.spi = 0xfffffffe;
    sa.auth_alg = 12; /* AUTH_HMAC_SHA2_256_128 */
    sa.auth_key_len = 32;
    fill(sa.auth_key, 32, 0x40);
    sa.life_sec = 0xffffffff;
    CHECK_OK(ck_ksv_msg_add_sa(m, &sa));
    memset(&sa, 0, sizeof(sa));
    sa.direction = CK_KSV_DIR_OUT;
    sa.proto = CK_KSV_PROTO_ESP;
    sa.mode = CK_KSV_MODE_TUNNEL;
    set_v6(&sa.peer, 10);
    sa.spi = CK_KSV_MIN_SPI;
    sa.enc_alg = 12; /* ENCR_AES_CBC */
    sa.enc_key_len = CK_KSV_MAX_KEY;
    fill(sa.enc_key, CK_KSV_MAX_KEY, 0x80);
    sa.auth_alg = 14; /* AUTH_HMAC_SHA2_512_256 */
    sa.auth_key_len = CK_KSV_MAX_KEY;
    fill(sa.auth_key, CK_KSV_MAX_KEY, 0x11);
    sa.life_sec = 3600;
    CHECK_OK(ck_ksv_msg_add_sa(m, &sa));
    /* Degree 16, 7 digits (heap ids up to about 2^28): a partial path (unicast recovery). */
    group_base(&g, 0xdeadbeef);
    g.epoch = UINT64_MAX;
    g.member_index = UINT32_MAX;
    g.root_version = UINT32_MAX;
    g.keying = CK_KSV_KEYING_HYBRID;
    set_v6(&g.mcast, 7);
    g.mcast.addr[0] = 0xff;
    g.mcast.addr[1] = 0x15;
    g.mcast_port = 65535;
    g.proto = CK_KSV_PROTO_AH;
    g.mode = CK_KSV_MODE_TUNNEL;
    g.enc_alg = 0;
    g.enc_key_len = 0;
    g.auth_alg = 12;
    g.auth_key_len = 32;
    g.spi = UINT32_MAX;
    g.life_kbytes = UINT32_MAX;
    g.degree = CK_KSV_MAX_DEGREE;
    g.id_len = 7;
    for (size_t i = 0; i < g.id_len; i++)
        g.member_id[i] = (uint8_t)(15 - i);
    g.n_keys = 2;
    set_key(&g, 0, 3, 1, 0x55);
    set_key(&g, 1, 7, 32, 0x20);
    g.keys[1].version = 12345;
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    /* Degree 2 and the deepest ID: node ids up to 2^32 - 1; an EK group. */
    group_base(&g, 2);
    g.degree = 2;
    g.id_len = CK_KSV_MAX_DEPTH;
    g.n_keys = 1;
    g.root_version = 77;
    set_key(&g, 0, CK_KSV_MAX_DEPTH, 16, 0x70);
    CHECK(g.keys[0].node == UINT32_MAX);
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    group_base(&g, 3);
    g.keying = CK_KSV_KEYING_EK;
    g.degree = 4;
    g.member_index = 17; /* irrelevant in EK mode, but kept */
    g.root_version = 9;
    g.n_keys = 1;
    set_key(&g, 0, 0, 32, 0x90);
    CHECK_OK(ck_ksv_msg_add_group(m, &g));
    ck_memzero(&sa, sizeof(sa));
    return m;
}

static struct ck_ksv_msg *
sample_ack(void)
{
    struct ck_ksv_msg *m = NULL;

    CHECK_OK(ck_ksv_msg_new(CK_KSV_ACK, &m));
    if (m == NULL)
        abort();
    m->msg_id = 2;
    m->timestamp = TS + 1500;
    m->reflected_ts = TS;
    m->acked_msg_id = 7;
    return m;
}

static struct ck_ksv_msg *
sample_group_msg(uint16_t type)
{
    struct ck_ksv_msg *m = NULL;

    CHECK_OK(ck_ksv_msg_new(type, &m));
    if (m == NULL)
        abort();
    m->key_id = 0x01020304;
    m->msg_id = 4;
    m->timestamp = TS + 3000;
    m->grp_id = 1;
    m->grp_epoch = 6;
    return m;
}

static struct ck_ksv_msg *
sample_delete(void)
{
    struct ck_ksv_msg *m = NULL;
    struct ck_ksv_delete d = {.direction = CK_KSV_DIR_IN, .spi = 0x1001};

    CHECK_OK(ck_ksv_msg_new(CK_KSV_DELETE, &m));
    if (m == NULL)
        abort();
    m->flags = CK_KSV_F_ACK_REQD;
    m->msg_id = 8;
    m->timestamp = TS + 2;
    set_v4(&d.peer, 192, 168, 1, 1);
    CHECK_OK(ck_ksv_msg_add_delete(m, &d));
    d.direction = CK_KSV_DIR_OUT;
    d.spi = 0; /* every outbound SA to the peer */
    set_v6(&d.peer, 1);
    CHECK_OK(ck_ksv_msg_add_delete(m, &d));
    return m;
}

static struct ck_ksv_msg *
sample_alarm(uint16_t alarm, uint8_t family)
{
    struct ck_ksv_msg *m = NULL;

    CHECK_OK(ck_ksv_msg_new(CK_KSV_ALARM, &m));
    if (m == NULL)
        abort();
    m->msg_id = 3;
    m->timestamp = TS + 3;
    m->alarm = alarm;
    if (family == CK_KSV_AF_IPV4)
        set_v4(&m->alarm_peer, 10, 0, 0, 2);
    else if (family == CK_KSV_AF_IPV6)
        set_v6(&m->alarm_peer, 2);
    m->alarm_spi = alarm == CK_KSV_ALARM_SA_EXPIRED ? 0x1001 : 0;
    m->alarm_ref_id = alarm == CK_KSV_ALARM_MALFORMED_PACKET ? 7 : 0;
    return m;
}

static bool
addr_eq(const struct ck_ksv_addr *a, const struct ck_ksv_addr *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* Field by field: struct padding is not part of the message. */
static bool
msg_eq(const struct ck_ksv_msg *a, const struct ck_ksv_msg *b)
{
    if (a->type != b->type || a->flags != b->flags || a->key_id != b->key_id ||
        a->msg_id != b->msg_id || a->timestamp != b->timestamp ||
        a->reflected_ts != b->reflected_ts || a->acked_msg_id != b->acked_msg_id ||
        a->alarm != b->alarm || !addr_eq(&a->alarm_peer, &b->alarm_peer) ||
        a->alarm_spi != b->alarm_spi || a->alarm_ref_id != b->alarm_ref_id ||
        a->grp_id != b->grp_id || a->grp_epoch != b->grp_epoch ||
        a->n_sas != b->n_sas || a->n_groups != b->n_groups || a->n_deletes != b->n_deletes)
        return false;
    for (size_t i = 0; i < a->n_sas; i++) {
        const struct ck_ksv_sa *x = &a->sas[i], *y = &b->sas[i];
        if (x->direction != y->direction || x->proto != y->proto || x->mode != y->mode ||
            !addr_eq(&x->peer, &y->peer) || x->spi != y->spi || x->enc_alg != y->enc_alg ||
            x->auth_alg != y->auth_alg || x->life_sec != y->life_sec ||
            x->life_kbytes != y->life_kbytes || x->enc_key_len != y->enc_key_len ||
            x->auth_key_len != y->auth_key_len ||
            memcmp(x->enc_key, y->enc_key, sizeof(x->enc_key)) != 0 ||
            memcmp(x->auth_key, y->auth_key, sizeof(x->auth_key)) != 0)
            return false;
    }
    for (size_t i = 0; i < a->n_groups; i++) {
        const struct ck_ksv_group *x = &a->groups[i], *y = &b->groups[i];
        if (x->group_id != y->group_id || x->epoch != y->epoch || x->degree != y->degree ||
            x->id_len != y->id_len || x->n_keys != y->n_keys ||
            x->member_index != y->member_index || x->root_version != y->root_version ||
            x->keying != y->keying || x->gflags != y->gflags || !addr_eq(&x->mcast, &y->mcast) ||
            x->mcast_port != y->mcast_port ||
            memcmp(x->sign_pub, y->sign_pub, sizeof(x->sign_pub)) != 0 || x->spi != y->spi ||
            x->enc_alg != y->enc_alg || x->auth_alg != y->auth_alg || x->proto != y->proto ||
            x->mode != y->mode || x->life_sec != y->life_sec ||
            x->life_kbytes != y->life_kbytes || x->enc_key_len != y->enc_key_len ||
            x->auth_key_len != y->auth_key_len ||
            memcmp(x->member_id, y->member_id, sizeof(x->member_id)) != 0)
            return false;
        for (size_t k = 0; k < CK_KSV_MAX_KEYS; k++)
            if (x->keys[k].level != y->keys[k].level || x->keys[k].key_len != y->keys[k].key_len ||
                x->keys[k].node != y->keys[k].node || x->keys[k].version != y->keys[k].version ||
                memcmp(x->keys[k].key, y->keys[k].key, sizeof(x->keys[k].key)) != 0)
                return false;
    }
    for (size_t i = 0; i < a->n_deletes; i++)
        if (a->deletes[i].direction != b->deletes[i].direction ||
            !addr_eq(&a->deletes[i].peer, &b->deletes[i].peer) ||
            a->deletes[i].spi != b->deletes[i].spi)
            return false;
    return true;
}

/* encode -> parse gives the same message; parse's output encodes to the same bytes. */
static void
round_trip(const struct ck_ksv_msg *m)
{
    uint8_t *b = NULL, *b2 = NULL;
    size_t len = 0, len2 = 0;
    struct ck_ksv_msg *p = NULL;

    CHECK_OK(ck_ksv_msg_encode(m, &b, &len));
    if (b == NULL)
        return;
    CHECK_INT_EQ((b[0] << 8) | b[1], m->type);
    CHECK_INT_EQ((b[4] << 8) | b[5], len);
    CHECK_OK(ck_ksv_msg_parse(b, len, &p));
    CHECK(p != NULL && msg_eq(m, p));
    if (p != NULL) {
        CHECK_OK(ck_ksv_msg_encode(p, &b2, &len2));
        CHECK_MEM_EQ(b2, len2, b, len);
    }
    ck_free_secret(b, len);
    ck_free_secret(b2, len2);
    ck_ksv_msg_free(p);
}

static void
test_seed_numbers(void)
{
    CHECK_INT_EQ(CK_KSV_ACK, 32768);
    CHECK_INT_EQ(CK_KSV_REGISTER, 32769);
    CHECK_INT_EQ(CK_KSV_DELETE, 32770);
    CHECK_INT_EQ(CK_KSV_ALARM, 32771);
    CHECK_INT_EQ(CK_KSV_GROUP_ACK, 32772);
    CHECK_INT_EQ(CK_KSV_RECOVER, 32773);
    CHECK(strcmp(ck_ksv_type_name(32768), "ACK") == 0);
    CHECK(strcmp(ck_ksv_type_name(32771), "ALARM") == 0);
    CHECK(strcmp(ck_ksv_type_name(32772), "GROUP_ACK") == 0);
    CHECK(strcmp(ck_ksv_type_name(32773), "RECOVER") == 0);
    CHECK(strcmp(ck_ksv_type_name(32774), "unknown") == 0);
    CHECK(strcmp(ck_ksv_alarm_name(CK_KSV_ALARM_SA_EXPIRED), "SA_EXPIRED") == 0);
    CHECK(strcmp(ck_ksv_alarm_name(CK_KSV_ALARM_MALFORMED_PACKET), "MALFORMED_PACKET") == 0);
    CHECK(strcmp(ck_ksv_alarm_name(CK_KSV_ALARM_SERVER_CONFLICT), "SERVER_CONFLICT") == 0);
    CHECK(strcmp(ck_ksv_alarm_name(CK_KSV_ALARM_SIGN_FAILED), "SIGN_FAILED") == 0);
    CHECK(strcmp(ck_ksv_alarm_name(0), "unknown") == 0);
    CHECK(CK_KSV_F_REFRESH != CK_KSV_F_ACK_REQD);
}

/* The document's example, byte for byte, both ways. */
static void
test_vector(void)
{
    size_t rlen = 0, alen = 0, glen = 0, len = 0;
    uint8_t *reg = ck_test_hex(reg_hex, &rlen), *ack = ck_test_hex(ack_hex, &alen), *b = NULL;
    uint8_t *gack = ck_test_hex(gack_hex, &glen);
    struct ck_ksv_msg *m = doc_register(), *a = sample_ack(), *p = NULL;
    struct ck_ksv_msg *ga = sample_group_msg(CK_KSV_GROUP_ACK);

    CHECK_INT_EQ(rlen, 239);
    CHECK_INT_EQ(glen, 36);
    CHECK_INT_EQ(alen, 36);
    CHECK_OK(ck_ksv_msg_encode(m, &b, &len));
    CHECK_MEM_EQ(b, len, reg, rlen);
    ck_free_secret(b, len);
    b = NULL;
    CHECK_OK(ck_ksv_msg_parse(reg, rlen, &p));
    CHECK(p != NULL && msg_eq(p, m));
    CHECK(p != NULL && p->groups[0].keys[2].key[15] == 0xcf && p->sas[0].spi == 0x1001);
    CHECK(p != NULL && p->groups[0].keys[2].node == 9 && p->groups[0].mcast_port == 7443 &&
          p->groups[0].sign_pub[31] == 0xff && p->groups[0].member_index == 9);
    CHECK(p != NULL && p->groups[0].enc_key_len == 36 && p->groups[0].auth_key_len == 0);
    ck_ksv_msg_free(p);
    p = NULL;
    CHECK_OK(ck_ksv_msg_encode(a, &b, &len));
    CHECK_MEM_EQ(b, len, ack, alen);
    CHECK_OK(ck_ksv_msg_parse(ack, alen, &p));
    CHECK(p != NULL && msg_eq(p, a) && p->reflected_ts == TS && p->acked_msg_id == 7);
    ck_free_secret(b, len);
    ck_ksv_msg_free(p);
    p = NULL;
    CHECK_OK(ck_ksv_msg_encode(ga, &b, &len));
    CHECK_MEM_EQ(b, len, gack, glen);
    CHECK_OK(ck_ksv_msg_parse(gack, glen, &p));
    CHECK(p != NULL && msg_eq(p, ga) && p->grp_id == 1 && p->grp_epoch == 6);
    ck_free_secret(b, len);
    ck_ksv_msg_free(ga);
    free(gack);
    ck_ksv_msg_free(p);
    ck_ksv_msg_free(m);
    ck_ksv_msg_free(a);
    free(reg);
    free(ack);
}

static void
test_round_trips(void)
{
    struct ck_ksv_msg *m;
    static const uint8_t fams[] = {CK_KSV_AF_NONE, CK_KSV_AF_IPV4, CK_KSV_AF_IPV6};

    round_trip(m = doc_register());
    ck_ksv_msg_free(m);
    round_trip(m = big_register());
    ck_ksv_msg_free(m);
    round_trip(m = sample_ack());
    ck_ksv_msg_free(m);
    round_trip(m = sample_delete());
    ck_ksv_msg_free(m);
    round_trip(m = sample_group_msg(CK_KSV_GROUP_ACK));
    ck_ksv_msg_free(m);
    round_trip(m = sample_group_msg(CK_KSV_RECOVER));
    m->grp_epoch = 0; /* a member that never applied a rekey */
    round_trip(m);
    ck_ksv_msg_free(m);
    for (uint16_t al = CK_KSV_ALARM_SA_EXPIRED; al <= CK_KSV_ALARM_SIGN_FAILED; al++)
        for (size_t f = 0; f < sizeof(fams); f++) {
            round_trip(m = sample_alarm(al, fams[f]));
            ck_ksv_msg_free(m);
        }
    /* A REGISTER with nothing (a REFRESH that removes every SA) and one with no flags. */
    CHECK_OK(ck_ksv_msg_new(CK_KSV_REGISTER, &m));
    m->flags = CK_KSV_F_REFRESH;
    round_trip(m);
    m->flags = 0;
    round_trip(m);
    ck_ksv_msg_free(m);
}

/* The largest message the limits allow encodes, stays under CK_KSV_MAX_MSG and parses back. */
static void
test_full_message(void)
{
    struct ck_ksv_msg *m = NULL;
    struct ck_ksv_sa sa;
    struct ck_ksv_group g;
    uint8_t *b = NULL;
    size_t len = 0;

    CHECK_OK(ck_ksv_msg_new(CK_KSV_REGISTER, &m));
    memset(&sa, 0, sizeof(sa));
    sa.direction = CK_KSV_DIR_IN;
    sa.proto = CK_KSV_PROTO_ESP;
    sa.mode = CK_KSV_MODE_TUNNEL;
    set_v6(&sa.peer, 1);
    sa.enc_alg = 12;
    sa.auth_alg = 14;
    sa.enc_key_len = sa.auth_key_len = CK_KSV_MAX_KEY;
    memset(sa.enc_key, 0xee, CK_KSV_MAX_KEY);
    memset(sa.auth_key, 0xaa, CK_KSV_MAX_KEY);
    sa.life_sec = 1;
    for (uint32_t i = 0; i < CK_KSV_MAX_SAS; i++) {
        sa.spi = 1000 + i;
        CHECK_OK(ck_ksv_msg_add_sa(m, &sa));
    }
    sa.spi = 5000;
    CHECK_INT_EQ(ck_ksv_msg_add_sa(m, &sa), CK_ERR_LIMIT);
    group_base(&g, 0);
    g.enc_alg = 12; /* AES-256-CBC with HMAC-SHA-512-256, its key shortened to fit the 64 */
    g.auth_alg = 14;
    g.enc_key_len = 32;
    g.auth_key_len = 32;
    set_v6(&g.mcast, 1);
    g.mcast.addr[0] = 0xff;
    g.degree = 2;
    g.id_len = CK_KSV_MAX_DEPTH;
    g.n_keys = CK_KSV_MAX_KEYS;
    for (uint8_t k = 0; k < CK_KSV_MAX_KEYS; k++) {
        set_key(&g, k, k, CK_KSV_MAX_KEY, (uint8_t)(k + 1));
        g.keys[k].version = 1000u + k + (k == 0 ? 0 : 1);
        /* Independent of ck_ksv_path_node: all-zero digits at degree 2 are node 2^level - 1. */
        CHECK(g.keys[k].node == (uint32_t)((1ull << k) - 1));
    }
    g.root_version = g.keys[0].version;
    for (uint32_t i = 0; i < CK_KSV_MAX_GROUPS; i++) {
        g.group_id = i;
        CHECK_OK(ck_ksv_msg_add_group(m, &g));
    }
    g.group_id = 99;
    CHECK_INT_EQ(ck_ksv_msg_add_group(m, &g), CK_ERR_LIMIT);
    CHECK_OK(ck_ksv_msg_encode(m, &b, &len));
    CHECK(len > 20000 && len <= CK_KSV_MAX_MSG);
    round_trip(m);
    ck_free_secret(b, len);
    ck_ksv_msg_free(m);
    ck_memzero(&sa, sizeof(sa));
    ck_memzero(&g, sizeof(g));
}

/* Every proper prefix is refused, whether or not its length field is patched to match. */
static void
check_truncations(const struct ck_ksv_msg *m)
{
    uint8_t *b = NULL, *c;
    size_t len = 0;
    struct ck_ksv_msg *p = NULL;

    CHECK_OK(ck_ksv_msg_encode(m, &b, &len));
    if (b == NULL)
        return;
    c = malloc(len);
    if (c == NULL)
        abort();
    for (size_t k = 0; k < len; k++) {
        memcpy(c, b, k);
        p = (struct ck_ksv_msg *)1;
        CHECK_INT_EQ(ck_ksv_msg_parse(c, k, &p), CK_ERR_DECODE);
        CHECK(p == NULL);
        if (k >= 6) {
            c[4] = (uint8_t)(k >> 8);
            c[5] = (uint8_t)k;
            CHECK(ck_ksv_msg_parse(c, k, &p) != 0);
            CHECK(p == NULL);
        }
    }
    ck_free_secret(c, len);
    ck_free_secret(b, len);
}

static void
test_truncated(void)
{
    struct ck_ksv_msg *m;

    check_truncations(m = big_register());
    ck_ksv_msg_free(m);
    check_truncations(m = sample_ack());
    ck_ksv_msg_free(m);
    check_truncations(m = sample_delete());
    ck_ksv_msg_free(m);
    check_truncations(m = sample_group_msg(CK_KSV_RECOVER));
    ck_ksv_msg_free(m);
    check_truncations(m = doc_register());
    ck_ksv_msg_free(m);
    check_truncations(m = sample_alarm(CK_KSV_ALARM_SERVER_CONFLICT, CK_KSV_AF_IPV6));
    ck_ksv_msg_free(m);
    check_truncations(m = sample_alarm(CK_KSV_ALARM_SIGN_FAILED, CK_KSV_AF_NONE));
    ck_ksv_msg_free(m);
}

/* Parses a copy of base with one byte changed; returns the result. */
static int
parse_with(const uint8_t *base, size_t len, size_t off, uint8_t v)
{
    uint8_t *c = ck_memdup(base, len);
    struct ck_ksv_msg *p = NULL;
    int ret;

    if (c == NULL)
        abort();
    c[off] = v;
    ret = ck_ksv_msg_parse(c, len, &p);
    if ((ret == 0) != (p != NULL))
        ret = -1000;
    ck_ksv_msg_free(p);
    ck_free_secret(c, len);
    return ret;
}

static void
test_header_refusals(void)
{
    size_t len = 0;
    uint8_t *b = ck_test_hex(ack_hex, &len), *c;
    struct ck_ksv_msg *p = NULL;

    CHECK_OK(parse_with(b, len, 0, 0x80));
    /* Types beside the six: 32767, 32774, 0, 1. An ACK's 12 bytes read as GROUP_ACK or RECOVER
     * are a valid body of theirs: the type alone says which. */
    CHECK_INT_EQ(parse_with(b, len, 0, 0x7f), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(parse_with(b, len, 1, 0x06), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(parse_with(b, len, 1, 0xff), CK_ERR_UNSUPPORTED);
    CHECK_OK(parse_with(b, len, 1, 0x04));
    CHECK_OK(parse_with(b, len, 1, 0x05));
    CHECK_INT_EQ(parse_with(b, len, 0, 0x00), CK_ERR_UNSUPPORTED);
    /* Version and reserved byte. */
    CHECK_INT_EQ(parse_with(b, len, 6, 0), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(parse_with(b, len, 6, 2), CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(parse_with(b, len, 7, 1), CK_ERR_DECODE);
    /* Declared length off by one either way, and zero. */
    CHECK_INT_EQ(parse_with(b, len, 5, (uint8_t)(len - 1)), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 5, (uint8_t)(len + 1)), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 5, 0), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 4, 1), CK_ERR_DECODE);
    /* A trailing byte, counted in the length or not. */
    c = calloc(1, len + 1);
    if (c == NULL)
        abort();
    memcpy(c, b, len);
    CHECK_INT_EQ(ck_ksv_msg_parse(c, len + 1, &p), CK_ERR_DECODE);
    c[5] = (uint8_t)(len + 1);
    CHECK_INT_EQ(ck_ksv_msg_parse(c, len + 1, &p), CK_ERR_DECODE);
    CHECK(p == NULL);
    free(c);
    /* Over the maximum size, before anything is read. */
    c = calloc(1, CK_KSV_MAX_MSG + 1);
    if (c == NULL)
        abort();
    memcpy(c, b, len);
    CHECK_INT_EQ(ck_ksv_msg_parse(c, CK_KSV_MAX_MSG + 1, &p), CK_ERR_LIMIT);
    free(c);
    CHECK_INT_EQ(ck_ksv_msg_parse(NULL, 0, &p), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_ksv_msg_parse(NULL, 5, &p), CK_ERR_INVAL);
    free(b);
}

/* Every flag bit on every type: only REFRESH and ACK_REQD on REGISTER, ACK_REQD on DELETE. */
static void
test_flag_bits(void)
{
    struct ck_ksv_msg *ms[6] = {sample_ack(), doc_register(), sample_delete(),
                                sample_alarm(CK_KSV_ALARM_SA_EXPIRED, CK_KSV_AF_IPV4),
                                sample_group_msg(CK_KSV_GROUP_ACK),
                                sample_group_msg(CK_KSV_RECOVER)};

    for (size_t t = 0; t < 6; t++) {
        uint8_t *b = NULL;
        size_t len = 0;
        ms[t]->flags = 0;
        CHECK_OK(ck_ksv_msg_encode(ms[t], &b, &len));
        if (b == NULL)
            continue;
        for (unsigned bit = 0; bit < 16; bit++) {
            uint16_t f = (uint16_t)(1u << bit);
            bool ok = (ms[t]->type == CK_KSV_REGISTER &&
                       (f == CK_KSV_F_REFRESH || f == CK_KSV_F_ACK_REQD)) ||
                      (ms[t]->type == CK_KSV_DELETE && f == CK_KSV_F_ACK_REQD);
            int ret = parse_with(b, len, bit < 8 ? 3 : 2, (uint8_t)(bit < 8 ? f : f >> 8));
            CHECK_INT_EQ(ret, ok ? 0 : CK_ERR_DECODE);
            ms[t]->flags = f;
            uint8_t *e = NULL;
            size_t elen = 0;
            CHECK_INT_EQ(ck_ksv_msg_encode(ms[t], &e, &elen), ok ? 0 : CK_ERR_INVAL);
            CHECK(ok == (e != NULL));
            ck_free_secret(e, elen);
            ms[t]->flags = 0;
        }
        ck_free_secret(b, len);
    }
    for (size_t t = 0; t < 6; t++)
        ck_ksv_msg_free(ms[t]);
}

/* Offsets in reg_hex (docs/PROTOCOL.md): body at 24; the SA at 28 (direction 28, protocol 29,
 * mode 30, family 31, address 32..35, SPI 36..39, enc_alg 40, auth_alg 42, life_sec 44,
 * life_kbytes 48, key lengths 52, 53, key 54..73); the group at 74 (id 74, epoch 78, member
 * index 86, root version 90, degree 94, id_len 95, n_keys 96, keying 97, gflags 98, protocol 99,
 * mode 100, reserved 101, SPI 102, enc_alg 106, auth_alg 108, life_sec 110, life_kbytes 114,
 * enc key length 118, auth key length 119, port 120, family 122, address 123..126, sign_pub
 * 127..158, member ID 159, 160, keys at 161, 187, 213 (level, length, node 4, version 4, 16
 * bytes)). */
#define ANY 1 /* refused, whichever check sees it first */

static void
test_field_refusals(void)
{
    size_t len = 0;
    uint8_t *b = ck_test_hex(reg_hex, &len);
    struct {
        size_t off;
        uint8_t v;
        int want;
    } cases[] = {
        {24, 2, CK_ERR_DECODE},            /* n_sas 2: the group's bytes read as an SA */
        {24, CK_KSV_MAX_SAS + 1, CK_ERR_LIMIT},
        {24, 0xff, CK_ERR_LIMIT},
        {24, 0, ANY},                      /* the SA read as a group */
        {25, CK_KSV_MAX_GROUPS + 1, CK_ERR_LIMIT},
        {25, 2, CK_ERR_DECODE},            /* a second group that is not there */
        {25, 0, CK_ERR_DECODE},            /* trailing bytes */
        {26, 1, CK_ERR_DECODE},            /* reserved */
        {27, 1, CK_ERR_DECODE},
        {28, 0, CK_ERR_DECODE},            /* direction */
        {28, 3, CK_ERR_DECODE},
        {29, 17, CK_ERR_DECODE},           /* protocol */
        {29, CK_KSV_PROTO_AH, CK_ERR_DECODE}, /* AH with an encryption key */
        {30, 0, CK_ERR_DECODE},            /* mode */
        {30, 3, CK_ERR_DECODE},
        {31, 0, CK_ERR_DECODE},            /* address family */
        {31, 5, CK_ERR_DECODE},
        {31, 6, ANY},                      /* 16 address bytes shift everything after */
        {38, 0, CK_ERR_DECODE},            /* SPI 0x0001: reserved */
        {41, 0, CK_ERR_DECODE},            /* ESP without an encryption algorithm */
        {43, 12, CK_ERR_DECODE},           /* integrity algorithm without a key */
        {47, 0, CK_ERR_DECODE},            /* life_sec 0 */
        {52, CK_KSV_MAX_KEY + 1, CK_ERR_LIMIT},
        {52, 0xff, CK_ERR_LIMIT},
        {52, 21, ANY},                     /* key lengths that do not add up */
        {52, 19, ANY},
        {53, 1, CK_ERR_DECODE},            /* integrity key without its algorithm */
        {53, CK_KSV_MAX_KEY + 1, CK_ERR_LIMIT},
        {93, 4, CK_ERR_DECODE},            /* root version 4, group key version 3 */
        {94, 1, CK_ERR_DECODE},            /* degree */
        {94, CK_KSV_MAX_DEGREE + 1, CK_ERR_DECODE},
        {94, 3, CK_ERR_DECODE},            /* degree 3: the nodes are no longer those of "10" */
        {95, CK_KSV_MAX_DEPTH + 1, CK_ERR_LIMIT},
        {95, 3, ANY},                      /* one more digit: the lengths no longer add up */
        {95, 1, ANY},                      /* one digit less, likewise */
        {96, CK_KSV_MAX_KEYS + 1, CK_ERR_LIMIT},
        {96, 4, CK_ERR_DECODE},            /* a key that is not there */
        {96, 2, CK_ERR_DECODE},            /* trailing key */
        {97, 3, CK_ERR_DECODE},            /* keying */
        {97, CK_KSV_KEYING_EK, CK_ERR_DECODE}, /* EK with a path */
        {98, 2, CK_ERR_DECODE},            /* group flags */
        {98, 0x80, CK_ERR_DECODE},
        {99, 17, CK_ERR_DECODE},           /* group SA protocol */
        {99, CK_KSV_PROTO_AH, CK_ERR_DECODE}, /* AH with a cipher */
        {100, 0, CK_ERR_DECODE},           /* group SA mode */
        {100, 3, CK_ERR_DECODE},
        {101, 1, CK_ERR_DECODE},           /* reserved */
        {104, 0, CK_ERR_DECODE},           /* group SPI 1: reserved */
        {107, 0, CK_ERR_DECODE},           /* ESP without an encryption algorithm */
        {118, CK_KSV_MAX_KEY + 1, CK_ERR_LIMIT}, /* group SA encryption key length */
        {118, 0xff, CK_ERR_LIMIT},
        {119, 1, CK_ERR_DECODE},           /* group SA integrity key without its algorithm */
        {119, 64, CK_ERR_DECODE},
        {119, CK_KSV_MAX_KEY + 1, CK_ERR_LIMIT},
        {122, 0, CK_ERR_DECODE},           /* group address: none */
        {122, 5, CK_ERR_DECODE},
        {123, 10, CK_ERR_DECODE},          /* 10.1.1.1 is not multicast */
        {123, 0xdf, CK_ERR_DECODE},        /* 223.1.1.1 neither */
        {159, 4, CK_ERR_DECODE},           /* member ID digit >= degree */
        {160, 0xff, CK_ERR_DECODE},
        {160, 1, CK_ERR_DECODE},           /* "11": the nodes are those of "10" */
        {161, 1, CK_ERR_DECODE},           /* levels 1, 1, 2: not increasing */
        {162, 0, ANY},                     /* empty path key, then misparsed */
        {162, CK_KSV_MAX_KEY + 1, CK_ERR_LIMIT},
        {162, 17, ANY},
        {166, 1, CK_ERR_DECODE},           /* root node 1 */
        {187, 3, CK_ERR_DECODE},           /* levels 0, 3, 2 */
        {187, 0, CK_ERR_DECODE},           /* levels 0, 0, 2 */
        {192, 3, CK_ERR_DECODE},           /* node "1" is heap node 2, not 3 */
        {215, 0x80, CK_ERR_DECODE},        /* leaf "10" is heap node 9 */
        {218, 8, CK_ERR_DECODE},
    };

    CHECK_INT_EQ(len, 239);
    /* Fields any value of which is valid: member index, path key versions (not the root's),
     * the signing key, the group port and lifetimes (non-zero), the encryption key length up
     * to what a member can derive (the codec does not know transforms). */
    CHECK_OK(parse_with(b, len, 86, 0xff));
    CHECK_OK(parse_with(b, len, 196, 0));
    CHECK_OK(parse_with(b, len, 219, 0xff));
    CHECK_OK(parse_with(b, len, 142, 0));
    CHECK_OK(parse_with(b, len, 120, 0));
    CHECK_OK(parse_with(b, len, 118, 0));
    CHECK_OK(parse_with(b, len, 118, CK_KSV_GROUP_SA_MAX_KEYS));
    CHECK_OK(parse_with(b, len, 114, 0xff));
    CHECK_OK(parse_with(b, len, 97, CK_KSV_KEYING_HYBRID));
    CHECK_OK(parse_with(b, len, 98, 0));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int ret = parse_with(b, len, cases[i].off, cases[i].v);
        if (cases[i].want == ANY && ret < 0 && ret != -1000)
            continue;
        if (ret != cases[i].want)
            fprintf(stderr, "  case %zu (offset %zu = %u): %d %s\n", i, cases[i].off, cases[i].v,
                    ret, ck_error_context());
        CHECK_INT_EQ(ret, cases[i].want);
    }
    free(b);
}

static void
test_other_refusals(void)
{
    struct ck_ksv_msg *m = sample_delete(), *a = sample_alarm(CK_KSV_ALARM_SA_EXPIRED, 4);
    uint8_t *b = NULL;
    size_t len = 0;

    /* DELETE: body at 24 = count, then direction, family, address, SPI. */
    CHECK_OK(ck_ksv_msg_encode(m, &b, &len));
    CHECK_INT_EQ(parse_with(b, len, 24, 0), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 24, 1), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 24, 3), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 24, CK_KSV_MAX_SAS + 1), CK_ERR_LIMIT);
    CHECK_INT_EQ(parse_with(b, len, 25, 0), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 26, 0), CK_ERR_DECODE); /* no peer: not in DELETE */
    CHECK_INT_EQ(parse_with(b, len, 33, 0), CK_ERR_DECODE); /* SPI 0x00000001 */
    ck_free_secret(b, len);
    b = NULL;
    /* ALARM: type at 24..25, family 26, address 27..30, SPI 31, ref id 35. */
    CHECK_OK(ck_ksv_msg_encode(a, &b, &len));
    CHECK_INT_EQ(parse_with(b, len, 25, 0), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 25, 5), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 24, 1), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 26, 7), CK_ERR_DECODE);
    CHECK_INT_EQ(parse_with(b, len, 26, 0), CK_ERR_DECODE); /* 4 address bytes left over */
    ck_free_secret(b, len);
    ck_ksv_msg_free(m);
    ck_ksv_msg_free(a);
}

/* The builders refuse what the parser would, and fields of another type. */
static void
test_encoder_refusals(void)
{
    struct ck_ksv_msg *m = NULL, *d = sample_delete(), *r = doc_register();
    struct ck_ksv_sa sa;
    struct ck_ksv_group g;
    struct ck_ksv_delete del = {.direction = CK_KSV_DIR_IN};
    uint8_t *b = NULL;
    size_t len = 0;

    CHECK_INT_EQ(ck_ksv_msg_new(32774, &m), CK_ERR_UNSUPPORTED);
    CHECK(m == NULL);
    doc_sa(&sa);
    doc_group(&g);
    set_v4(&del.peer, 1, 2, 3, 4);
    CHECK_INT_EQ(ck_ksv_msg_add_sa(d, &sa), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_msg_add_group(d, &g), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_msg_add_delete(r, &del), CK_ERR_INVAL);
    sa.direction = CK_KSV_DIR_IN;
    CHECK_OK(ck_ksv_msg_add_sa(r, &sa));
    CHECK_INT_EQ(ck_ksv_msg_add_sa(r, &sa), CK_ERR_INVAL); /* inbound SPI twice */
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL); /* group 1 twice */
    sa.spi = 255;
    CHECK_INT_EQ(ck_ksv_msg_add_sa(r, &sa), CK_ERR_INVAL);
    sa.spi = 9999;
    sa.peer.addr[4] = 1; /* garbage past an IPv4 address */
    CHECK_INT_EQ(ck_ksv_msg_add_sa(r, &sa), CK_ERR_INVAL);
    sa.peer.addr[4] = 0;
    sa.enc_key[30] = 1; /* garbage past the key */
    CHECK_INT_EQ(ck_ksv_msg_add_sa(r, &sa), CK_ERR_INVAL);
    sa.enc_key[30] = 0;
    sa.enc_key_len = CK_KSV_MAX_KEY + 1;
    CHECK_INT_EQ(ck_ksv_msg_add_sa(r, &sa), CK_ERR_LIMIT);
    g.group_id = 2;
    g.id_len = CK_KSV_MAX_DEPTH + 1;
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_LIMIT);
    g.id_len = 2;
    g.keys[5].key[0] = 1; /* an unused key slot */
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.keys[5].key[0] = 0;
    g.keys[5].version = 1; /* likewise */
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.keys[5].version = 0;
    g.mcast_port = 0;
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.mcast_port = 1;
    g.life_sec = 0;
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.life_sec = 1;
    g.mcast.addr[4] = 1; /* garbage past an IPv4 address */
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.mcast.addr[4] = 0;
    /* Group SA key lengths: each at most CK_KSV_MAX_KEY, an integrity key exactly with its
     * algorithm, no encryption key under AH, and no more than a member can derive. */
    g.enc_key_len = CK_KSV_MAX_KEY + 1;
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_LIMIT);
    g.enc_key_len = 32;
    g.enc_alg = 12;
    g.auth_alg = 14;
    g.auth_key_len = 0;
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.auth_key_len = 64; /* AES-256-CBC with a whole HMAC-SHA-512 key: 96 bytes */
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.auth_key_len = 33;
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.auth_key_len = 32;
    g.proto = CK_KSV_PROTO_AH;
    g.enc_alg = 0;
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL); /* AH with an encryption key */
    g.proto = CK_KSV_PROTO_ESP;
    g.enc_alg = 20;
    g.auth_alg = 0;
    g.auth_key_len = 0;
    g.enc_key_len = 36;
    g.keys[2].node = 10;
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.keys[2].node = 9;
    g.keys[0].version = 4;
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.keys[0].version = 3;
    g.keying = CK_KSV_KEYING_EK;
    CHECK_INT_EQ(ck_ksv_msg_add_group(r, &g), CK_ERR_INVAL);
    g.n_keys = 1;
    memset(&g.keys[1], 0, 2 * sizeof(g.keys[0]));
    CHECK_OK(ck_ksv_msg_add_group(r, &g)); /* EK: the group key alone */
    for (int i = 0; i < (int)CK_KSV_MAX_SAS - 2; i++)
        CHECK_OK(ck_ksv_msg_add_delete(d, &del));
    CHECK_INT_EQ(ck_ksv_msg_add_delete(d, &del), CK_ERR_LIMIT);
    /* Fields of another type, and counts set by hand over the limits. */
    r->alarm = 1;
    CHECK_INT_EQ(ck_ksv_msg_encode(r, &b, &len), CK_ERR_INVAL);
    r->alarm = 0;
    r->reflected_ts = 1;
    CHECK_INT_EQ(ck_ksv_msg_encode(r, &b, &len), CK_ERR_INVAL);
    r->reflected_ts = 0;
    r->grp_epoch = 1;
    CHECK_INT_EQ(ck_ksv_msg_encode(r, &b, &len), CK_ERR_INVAL);
    r->grp_epoch = 0;
    r->n_deletes = 1;
    CHECK_INT_EQ(ck_ksv_msg_encode(r, &b, &len), CK_ERR_INVAL);
    r->n_deletes = 0;
    r->n_sas = CK_KSV_MAX_SAS + 1;
    CHECK_INT_EQ(ck_ksv_msg_encode(r, &b, &len), CK_ERR_LIMIT);
    r->n_sas = 2;
    r->type = 1;
    CHECK_INT_EQ(ck_ksv_msg_encode(r, &b, &len), CK_ERR_INVAL);
    r->type = CK_KSV_REGISTER;
    CHECK_OK(ck_ksv_msg_encode(r, &b, &len));
    ck_free_secret(b, len);
    d->n_deletes = 0;
    CHECK_INT_EQ(ck_ksv_msg_encode(d, &b, &len), CK_ERR_INVAL); /* DELETE of nothing */
    ck_ksv_msg_free(d);
    ck_ksv_msg_free(r);
    ck_memzero(&sa, sizeof(sa));
    ck_memzero(&g, sizeof(g));
}

/* Path node ids: ck_ksv_path_node and ck_ksv_leaf_digits agree with lib/lkh's tree (the node ids
 * lkh_member_export gives a member) for every member of trees of several degrees. */
static void
test_path_nodes(void)
{
    static const uint32_t degrees[] = {2, 3, 4, 16};
    uint8_t digits[CK_KSV_MAX_DEPTH], n = 0;
    uint32_t node = 0;

    for (size_t d = 0; d < sizeof(degrees) / sizeof(degrees[0]); d++) {
        struct lkh_tree *t = NULL;
        struct lkh_member mem;
        CHECK_OK(lkh_tree_new(degrees[d], 40, &t));
        CHECK_OK(lkh_tree_populate(t, 40));
        for (uint32_t id = 0; t != NULL && id < 40; id++) {
            uint32_t h;
            CHECK_OK(lkh_member_export(t, id, &mem));
            h = mem.height;
            CHECK_OK(ck_ksv_leaf_digits((uint8_t)degrees[d], mem.path[0].node, digits, &n));
            CHECK_INT_EQ(n, h);
            for (uint8_t lvl = 0; lvl <= n; lvl++) {
                CHECK_OK(ck_ksv_path_node((uint8_t)degrees[d], digits, lvl, &node));
                CHECK_INT_EQ(node, mem.path[h - lvl].node);
            }
            lkh_member_clear(&mem);
        }
        lkh_tree_free(t);
    }
    /* The document's member "10" at degree 4: nodes 0, 2, 9. */
    CHECK_OK(ck_ksv_leaf_digits(4, 9, digits, &n));
    CHECK(n == 2 && digits[0] == 1 && digits[1] == 0 && digits[2] == 0);
    CHECK_OK(ck_ksv_leaf_digits(4, 0, digits, &n));
    CHECK_INT_EQ(n, 0);
    CHECK_INT_EQ(ck_ksv_leaf_digits(1, 9, digits, &n), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_leaf_digits(17, 9, digits, &n), CK_ERR_INVAL);
    /* The deepest 32-bit leaf at degree 2 takes all 32 digits. */
    CHECK_OK(ck_ksv_leaf_digits(2, UINT32_MAX, digits, &n));
    CHECK(n == 32 && digits[0] == 0 && digits[31] == 0);
    CHECK_OK(ck_ksv_leaf_digits(2, UINT32_MAX - 1, digits, &n));
    CHECK_INT_EQ(n, 31);
    digits[0] = 4;
    CHECK_INT_EQ(ck_ksv_path_node(4, digits, 1, &node), CK_ERR_INVAL);
    CHECK_OK(ck_ksv_path_node(4, digits, 0, &node));
    CHECK_INT_EQ(node, 0);
    memset(digits, 1, sizeof(digits));
    CHECK_OK(ck_ksv_path_node(2, digits, 31, &node));
    CHECK_INT_EQ(node, UINT32_MAX - 1);
    CHECK_INT_EQ(ck_ksv_path_node(2, digits, 32, &node), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ksv_path_node(2, digits, CK_KSV_MAX_DEPTH + 1, &node), CK_ERR_INVAL);
}

/* ck_ksv_msg_clear leaves no key byte behind (ck_ksv_msg_free uses the same wipe). */
static void
test_clear(void)
{
    struct ck_ksv_msg *m = big_register();
    const uint8_t *p = (const uint8_t *)m;
    bool zero = true;

    ck_ksv_msg_clear(m);
    for (size_t i = 0; i < sizeof(*m); i++)
        zero = zero && p[i] == 0;
    CHECK(zero);
    ck_ksv_msg_clear(NULL);
    ck_ksv_msg_free(NULL);
    ck_ksv_msg_free(m);
}

CK_TEST_MAIN("ksv_msg", CK_TEST_CASE(test_seed_numbers), CK_TEST_CASE(test_vector),
             CK_TEST_CASE(test_round_trips), CK_TEST_CASE(test_full_message),
             CK_TEST_CASE(test_truncated), CK_TEST_CASE(test_header_refusals),
             CK_TEST_CASE(test_flag_bits), CK_TEST_CASE(test_field_refusals),
             CK_TEST_CASE(test_other_refusals), CK_TEST_CASE(test_encoder_refusals),
             CK_TEST_CASE(test_path_nodes), CK_TEST_CASE(test_clear))
