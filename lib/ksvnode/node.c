/* The keying server's node agent (include/cablekey/ksv_node.h): registration with each KSV
 * (HELLO / HELLO_REP, then sealed messages), the SAs and group keys it is given, rekey datagrams,
 * alarms. No threads, no sockets, no clock of its own: every call carries `now` (ms). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <openssl/rand.h>

#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/ksv_node.h"
#include "cablekey/ksv_wire.h"
#include "cablekey/lkh.h"
#include "cablekey/lkh_rekey.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

#define MAX_HELLO 4                /* HELLOs whose HELLO_REP is still accepted */
#define MIN_REREG_MS 10000         /* never re-register sooner than this after registering */
#define ALARM_MIN_MS 1000          /* MALFORMED_PACKET / SIGN_FAILED per KSV */
#define RECOVER_MIN_MS 1000        /* per group */
#define GROUP_F_ACK 0x01u          /* ck_ksv_group.gflags: rekeys want GROUP_ACK */
#define KEYING_LKH 0u
#define KEYING_EK 1u
#define KEYING_HYBRID 2u

struct pending {
    uint16_t type;                 /* CK_KSV_ALARM, CK_KSV_RECOVER */
    uint16_t alarm;
    struct ck_ksv_addr peer;
    uint32_t spi, ref, grp_id;
    uint64_t grp_epoch;
};

struct ksv {
    char *service;
    ck_creds *creds;               /* the ticket of the current HELLO series */
    ck_creds *given;               /* params.creds[i], if any */
    bool session;                  /* seal is valid */
    bool registered;               /* a REGISTER arrived in this session */
    struct ck_ksv_seal seal;
    int64_t session_end_ms, rereg_ms;
    bool hello_active;
    int hello_try;
    int64_t hello_next_ms;
    struct ck_ksv_hello_ctx hello[MAX_HELLO];
    bool hello_used[MAX_HELLO];
    size_t hello_slot;
    int64_t last_nudge_ms;
    bool nudged;
    uint32_t next_msg_id;
    int64_t last_alarm_ms[5];
    bool alarmed[5];
    struct pending pend[CK_KSVNODE_MAX_PENDING];
    size_t n_pend;
};

struct group {
    bool used;
    unsigned ksv;
    uint32_t group_id;
    uint8_t keying, gflags, proto, mode;
    bool ek;                       /* keyed by unicast only (no path, no rekey datagrams) */
    struct ck_ksv_addr mcast;
    uint16_t mcast_port;
    uint8_t sign_pub[LKH_ED25519_PUB_LEN];
    uint32_t spi, life_sec, life_kbytes;
    uint16_t enc_alg, auth_alg;
    uint8_t enc_key_len, auth_key_len; /* the group SA's, as the KSV gave them */
    uint64_t epoch;
    uint32_t root_version;
    struct lkh_member m;           /* LKH / hybrid */
    uint8_t key[LKH_KEY_LEN];      /* the current group key */
    uint8_t key_check[8];
    bool removed;
    int64_t last_recover_ms;
    bool recovered_once;
};

struct ck_ksvnode {
    char *name;
    char *ccache;
    char *kdc_strs[CK_KDC_MAX_KDCS];
    const char *kdcs[CK_KDC_MAX_KDCS];
    ck_kdc_transport kdc;
    struct ck_ksvnode_callbacks cb;
    size_t n_ksv;
    struct ksv k[CK_KSVNODE_MAX_KSV];
    struct ck_ksvnode_sa *sas;     /* n_sas of CK_KSVNODE_MAX_SAS */
    size_t n_sas;
    struct group groups[CK_KSVNODE_MAX_KSV * CK_KSVNODE_MAX_GROUPS];
    uint64_t rng;
    struct ck_ksvnode_stats st;
};

/* ---------------------------------------------------------------------------------------------
 * Small helpers.
 */

static void
logf_(ck_ksvnode *n, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
logf_(ck_ksvnode *n, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (n->cb.log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    n->cb.log(n->cb.arg, level, line);
}

static uint32_t
rng_next(ck_ksvnode *n)
{
    /* xorshift64*: jitter only, never keys. */
    n->rng ^= n->rng >> 12;
    n->rng ^= n->rng << 25;
    n->rng ^= n->rng >> 27;
    return (uint32_t)((n->rng * UINT64_C(2685821657736338717)) >> 32);
}

static bool
addr_eq(const struct ck_ksv_addr *a, const struct ck_ksv_addr *b)
{
    size_t len = a->family == CK_KSV_AF_IPV6 ? 16 : a->family == CK_KSV_AF_IPV4 ? 4 : 0;

    return a->family == b->family && memcmp(a->addr, b->addr, len) == 0;
}

/* The address as text (no secrets; for logs). */
static const char *
addr_str(const struct ck_ksv_addr *a, char *buf, size_t size)
{
    if (a->family == CK_KSV_AF_IPV4) {
        snprintf(buf, size, "%u.%u.%u.%u", a->addr[0], a->addr[1], a->addr[2], a->addr[3]);
    } else if (a->family == CK_KSV_AF_IPV6) {
        size_t o = 0;
        for (int i = 0; i < 16 && o + 6 < size; i += 2)
            o += (size_t)snprintf(buf + o, size - o, "%s%x", i ? ":" : "",
                                  (unsigned)(a->addr[i] << 8 | a->addr[i + 1]));
    } else {
        snprintf(buf, size, "-");
    }
    return buf;
}

static void
hex8(const uint8_t in[8], char out[17])
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 0; i < 8; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[16] = '\0';
}

static uint64_t
ts_us(int64_t now_ms)
{
    return now_ms > 0 ? (uint64_t)now_ms * 1000u : 0;
}

/* Key lengths of an IKEv2 transform (RFC 7296 §3.3.2 IDs); false if unknown. */
static bool
transform_key_lens(uint8_t proto, uint16_t enc, uint16_t auth, size_t *el, size_t *al)
{
    *el = 0;
    *al = 0;
    if (proto == CK_KSV_PROTO_ESP) {
        switch (enc) {
        case 3: *el = 24; break;           /* 3DES */
        case 11: *el = 0; break;           /* NULL */
        case 12: *el = 16; break;          /* AES-CBC-128 */
        case 13: *el = 20; break;          /* AES-CTR-128 + nonce */
        case 20: *el = 20; break;          /* AES-GCM-16 128 + salt */
        case 28: *el = 36; break;          /* ChaCha20-Poly1305 + salt */
        default: return false;
        }
    } else if (proto != CK_KSV_PROTO_AH || enc != 0) {
        return false;
    }
    switch (auth) {
    case 0: return proto == CK_KSV_PROTO_ESP && (enc == 20 || enc == 28); /* AEAD only */
    case 1: *al = 16; break;
    case 2: *al = 20; break;
    case 12: *al = 32; break;
    case 13: *al = 48; break;
    case 14: *al = 64; break;
    default: return false;
    }
    return proto == CK_KSV_PROTO_AH || (enc != 20 && enc != 28);
}

/* A group SA's key lengths as the KSV sent them (ck_ksv_group) fit its transform: an encryption
 * key the transform takes (AES 128/192/256 bits, with the 4-byte salt or nonce for GCM and CTR),
 * an integrity key of 16 bytes up to the transform's own length (the KSV shortens it so that both
 * fit in what lkh_group_sa_key derives), and together no more than that. */
static bool
group_sa_lens_ok(uint8_t proto, uint16_t enc, uint16_t auth, size_t el, size_t al)
{
    size_t want_el, want_al;

    if (!transform_key_lens(proto, enc, auth, &want_el, &want_al) ||
        el + al > CK_KSV_GROUP_SA_MAX_KEYS)
        return false;
    if (want_al == 0 ? al != 0 : (al < 16 || al > want_al))
        return false;
    if (proto != CK_KSV_PROTO_ESP)
        return el == 0;
    switch (enc) {
    case 12: return el == 16 || el == 24 || el == 32;             /* AES-CBC */
    case 13: case 20: return el == 20 || el == 28 || el == 36;    /* AES-CTR, AES-GCM + 4 */
    default: return el == want_el;                                /* 3DES, NULL, ChaCha20 */
    }
}

static bool
sa_same_transform(const struct ck_ksv_sa *a, const struct ck_ksv_sa *b)
{
    return a->proto == b->proto && a->mode == b->mode && a->enc_alg == b->enc_alg &&
           a->auth_alg == b->auth_alg;
}

static bool
sa_same_keys(const struct ck_ksv_sa *a, const struct ck_ksv_sa *b)
{
    return a->enc_key_len == b->enc_key_len && a->auth_key_len == b->auth_key_len &&
           ck_ct_equal(a->enc_key, b->enc_key, a->enc_key_len) &&
           ck_ct_equal(a->auth_key, b->auth_key, a->auth_key_len);
}

/* ---------------------------------------------------------------------------------------------
 * Sending sealed messages.
 */

static int
send_raw(ck_ksvnode *n, unsigned k, const uint8_t *buf, size_t len)
{
    int ret;

    if (n->cb.send == NULL)
        return 0;
    /* A lost datagram is the network's business: the protocol retransmits. */
    if ((ret = n->cb.send(n->cb.arg, k, buf, len)) != 0)
        logf_(n, LOG_DEBUG, "node send ksv=%u failed: %s", k, ck_strerror(ret));
    return 0;
}

static int
send_sealed(ck_ksvnode *n, unsigned k, struct ck_ksv_msg *m, int64_t now_ms)
{
    struct ksv *kv = &n->k[k];
    uint8_t *buf = NULL;
    size_t len = 0;
    int ret;

    m->key_id = kv->seal.key_id;
    m->msg_id = kv->next_msg_id++;
    if (kv->next_msg_id == 0)
        kv->next_msg_id = 1;
    m->timestamp = ts_us(now_ms);
    if ((ret = ck_ksv_seal_msg(&kv->seal, m, &buf, &len)) != 0)
        return ret;
    ret = send_raw(n, k, buf, len);
    free(buf);
    return ret;
}

static int start_hello(ck_ksvnode *n, unsigned k, int64_t now_ms);

static int
send_pending(ck_ksvnode *n, unsigned k, const struct pending *p, int64_t now_ms)
{
    struct ck_ksv_msg *m = NULL;
    char peer[64];
    int ret;

    if ((ret = ck_ksv_msg_new(p->type, &m)) != 0)
        return ret;
    if (p->type == CK_KSV_ALARM) {
        m->alarm = p->alarm;
        m->alarm_peer = p->peer;
        m->alarm_spi = p->spi;
        m->alarm_ref_id = p->ref;
    } else {
        m->grp_id = p->grp_id;
        m->grp_epoch = p->grp_epoch;
    }
    ret = send_sealed(n, k, m, now_ms);
    ck_ksv_msg_free(m);
    if (ret != 0)
        return ret;
    if (p->type == CK_KSV_ALARM) {
        if (p->alarm < 5)
            n->st.alarms_sent[p->alarm]++;
        logf_(n, LOG_WARNING, "node alarm sent type=%s ksv=%u peer=%s spi=0x%08x ref=%u",
              ck_ksv_alarm_name(p->alarm), k, addr_str(&p->peer, peer, sizeof(peer)), p->spi,
              p->ref);
    } else if (p->type == CK_KSV_RECOVER) {
        n->st.recovers_sent++;
        logf_(n, LOG_NOTICE, "node recover sent ksv=%u group=%u epoch=%" PRIu64, k, p->grp_id,
              p->grp_epoch);
    } else {
        n->st.group_acks_sent++;
    }
    return 0;
}

/* Sends now, or queues until the session is back (starting a HELLO when none runs). */
static int
post(ck_ksvnode *n, unsigned k, const struct pending *p, int64_t now_ms)
{
    struct ksv *kv = &n->k[k];

    if (kv->session)
        return send_pending(n, k, p, now_ms);
    if (p->type == CK_KSV_GROUP_ACK)
        return 0; /* the REGISTER of the next session carries the group's state anyway */
    if (kv->n_pend < CK_KSVNODE_MAX_PENDING)
        kv->pend[kv->n_pend++] = *p;
    else
        n->st.alarms_suppressed++;
    if (!kv->hello_active)
        return start_hello(n, k, now_ms);
    return 0;
}

static int
alarm_to(ck_ksvnode *n, unsigned k, uint16_t type, const struct ck_ksv_addr *peer, uint32_t spi,
         uint32_t ref, int64_t now_ms)
{
    struct ksv *kv = &n->k[k];
    struct pending p;

    /* Floods from a hostile sender must not turn into floods to the KSV. */
    if (type == CK_KSV_ALARM_MALFORMED_PACKET || type == CK_KSV_ALARM_SIGN_FAILED) {
        if (kv->alarmed[type] && now_ms - kv->last_alarm_ms[type] < ALARM_MIN_MS) {
            n->st.alarms_suppressed++;
            return 0;
        }
        kv->alarmed[type] = true;
        kv->last_alarm_ms[type] = now_ms;
    }
    memset(&p, 0, sizeof(p));
    p.type = CK_KSV_ALARM;
    p.alarm = type;
    if (peer != NULL)
        p.peer = *peer;
    p.spi = spi;
    p.ref = ref;
    return post(n, k, &p, now_ms);
}

/* ---------------------------------------------------------------------------------------------
 * SAs.
 */

static void
sa_remove_at(ck_ksvnode *n, size_t i)
{
    struct ck_ksvnode_sa tmp = n->sas[i];

    n->sas[i] = n->sas[n->n_sas - 1];
    ck_memzero(&n->sas[n->n_sas - 1], sizeof(n->sas[0]));
    n->n_sas--;
    if (n->cb.sa_delete != NULL)
        n->cb.sa_delete(n->cb.arg, &tmp);
    ck_memzero(&tmp, sizeof(tmp));
}

static int
sa_add(ck_ksvnode *n, const struct ck_ksvnode_sa *sa)
{
    if (n->n_sas >= CK_KSVNODE_MAX_SAS)
        return ck_error_set(CK_ERR_LIMIT, "node: more than %u SAs", CK_KSVNODE_MAX_SAS);
    n->sas[n->n_sas++] = *sa;
    if (n->cb.sa_install != NULL)
        n->cb.sa_install(n->cb.arg, sa);
    return 0;
}

static int
find_sa(const ck_ksvnode *n, unsigned k, const struct ck_ksv_sa *sa)
{
    for (size_t i = 0; i < n->n_sas; i++) {
        const struct ck_ksvnode_sa *s = &n->sas[i];
        if (!s->group && s->ksv == k && s->sa.direction == sa->direction &&
            s->sa.spi == sa->spi && addr_eq(&s->sa.peer, &sa->peer))
            return (int)i;
    }
    return -1;
}

static void
group_sa_remove(ck_ksvnode *n, const struct group *g)
{
    for (size_t i = 0; i < n->n_sas; i++)
        if (n->sas[i].group && n->sas[i].ksv == g->ksv && n->sas[i].group_id == g->group_id) {
            sa_remove_at(n, i);
            return;
        }
}

/* The group's data SA from its current key (replacing the previous one). */
static int
group_sa_install(ck_ksvnode *n, const struct group *g, int64_t now_ms)
{
    struct ck_ksvnode_sa s;
    uint8_t keys[CK_KSV_GROUP_SA_MAX_KEYS];
    size_t el = g->enc_key_len, al = g->auth_key_len;
    int ret;

    if (g->spi == 0 || g->removed) {
        group_sa_remove(n, g);
        return 0;
    }
    /* Exactly the lengths the KSV sent (checked at load), never more than can be derived. */
    if (!group_sa_lens_ok(g->proto, g->enc_alg, g->auth_alg, el, al))
        return ck_error_set(CK_ERR_UNSUPPORTED, "node: group %u transform %u/%u with keys of "
                            "%zu + %zu bytes", g->group_id, g->enc_alg, g->auth_alg, el, al);
    memset(&s, 0, sizeof(s));
    if ((ret = lkh_group_sa_key(g->key, g->group_id, g->root_version, keys, el + al)) != 0)
        goto out;
    s.sa.direction = CK_KSV_DIR_OUT;
    s.sa.proto = g->proto;
    s.sa.mode = g->mode;
    s.sa.peer = g->mcast;
    s.sa.spi = g->spi;
    s.sa.enc_alg = g->enc_alg;
    s.sa.auth_alg = g->auth_alg;
    s.sa.life_sec = g->life_sec;
    s.sa.life_kbytes = g->life_kbytes;
    s.sa.enc_key_len = (uint8_t)el;
    s.sa.auth_key_len = (uint8_t)al;
    memcpy(s.sa.enc_key, keys, el);
    memcpy(s.sa.auth_key, keys + el, al);
    s.ksv = g->ksv;
    s.installed_ms = now_ms;
    s.expires_ms = 0; /* changes with the group key, not with time */
    s.group = true;
    s.group_id = g->group_id;
    for (size_t i = 0; i < n->n_sas; i++) {
        const struct ck_ksvnode_sa *o = &n->sas[i];
        /* The same key again (a refresh, a recovery that found nothing new): keep it. */
        if (o->group && o->ksv == g->ksv && o->group_id == g->group_id && o->sa.spi == s.sa.spi &&
            addr_eq(&o->sa.peer, &s.sa.peer) && sa_same_transform(&o->sa, &s.sa) &&
            sa_same_keys(&o->sa, &s.sa))
            goto out;
    }
    group_sa_remove(n, g);
    ret = sa_add(n, &s);
out:
    ck_memzero(keys, sizeof(keys));
    ck_memzero(&s, sizeof(s));
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * Groups.
 */

static void
group_status(const struct group *g, struct ck_ksvnode_group_status *out)
{
    memset(out, 0, sizeof(*out));
    out->group_id = g->group_id;
    out->epoch = g->epoch;
    out->root_version = g->root_version;
    memcpy(out->key_check, g->key_check, sizeof(out->key_check));
    out->removed = g->removed;
    out->mcast = g->mcast;
    out->mcast_port = g->mcast_port;
    out->spi = g->spi;
    out->ksv = g->ksv;
    out->keying = g->keying;
}

static void
group_notify(ck_ksvnode *n, const struct group *g)
{
    struct ck_ksvnode_group_status st;
    char hex[17];

    group_status(g, &st);
    hex8(g->key_check, hex);
    if (g->removed)
        logf_(n, LOG_NOTICE, "node group %u epoch=%" PRIu64 " removed", g->group_id, g->epoch);
    else
        logf_(n, LOG_INFO, "node group %u epoch=%" PRIu64 " version=%u key-check=%s",
              g->group_id, g->epoch, g->root_version, hex);
    if (n->cb.group_update != NULL)
        n->cb.group_update(n->cb.arg, &st);
}

static struct group *
find_group(ck_ksvnode *n, unsigned k, uint32_t id)
{
    for (size_t i = 0; i < sizeof(n->groups) / sizeof(n->groups[0]); i++)
        if (n->groups[i].used && n->groups[i].ksv == k && n->groups[i].group_id == id)
            return &n->groups[i];
    return NULL;
}

static void
group_drop(ck_ksvnode *n, struct group *g)
{
    group_sa_remove(n, g);
    g->removed = true;
    lkh_member_clear(&g->m);
    ck_memzero(g->key, sizeof(g->key));
    group_notify(n, g);
    ck_memzero(g, sizeof(*g));
}

/* Marks a group removed (a rekey left this member out): its keys are gone. */
static void
group_removed(ck_ksvnode *n, struct group *g)
{
    group_sa_remove(n, g);
    g->removed = true;
    lkh_member_clear(&g->m);
    ck_memzero(g->key, sizeof(g->key));
    ck_memzero(g->key_check, sizeof(g->key_check));
    group_notify(n, g);
}

/* Whether a group's keys come as the group key alone (EK; a hybrid group may be keyed either
 * way, lkh_rekey.h leaves it to the KSV) rather than as an LKH path. */
static bool
ek_shaped(const struct ck_ksv_group *g)
{
    return g->keying == KEYING_EK || (g->keying == KEYING_HYBRID && g->id_len == 0);
}

/* Checks a group of a REGISTER beyond the codec: the path is a heap path of the tree, keys are
 * LKH keys, the group SA's transform is one the node can derive. */
static int
check_group(const struct ck_ksv_group *g)
{
    if (g->keying > KEYING_HYBRID)
        return ck_error_set(CK_ERR_DECODE, "group %u: keying %u", g->group_id, g->keying);
    if (g->mcast.family != CK_KSV_AF_IPV4 && g->mcast.family != CK_KSV_AF_IPV6)
        return ck_error_set(CK_ERR_DECODE, "group %u: no multicast address", g->group_id);
    if (g->spi != 0 &&
        (g->spi < CK_KSV_MIN_SPI ||
         !group_sa_lens_ok(g->proto, g->enc_alg, g->auth_alg, g->enc_key_len, g->auth_key_len) ||
         g->life_sec == 0))
        return ck_error_set(CK_ERR_DECODE, "group %u: group SA", g->group_id);
    if (ek_shaped(g)) {
        if (g->n_keys != 1 || g->keys[0].level != 0 || g->keys[0].key_len != LKH_KEY_LEN)
            return ck_error_set(CK_ERR_DECODE, "group %u: EK wants the group key alone",
                                g->group_id);
        return 0;
    }
    if (g->id_len < 1 || g->id_len > LKH_MAX_HEIGHT || g->n_keys != g->id_len + 1u)
        return ck_error_set(CK_ERR_DECODE, "group %u: %u keys for %u levels", g->group_id,
                            g->n_keys, g->id_len);
    for (uint32_t i = 0; i < g->n_keys; i++) {
        const struct ck_ksv_path_key *pk = &g->keys[i];
        uint64_t want = i == 0 ? 0 : (uint64_t)g->keys[i - 1].node * g->degree + 1 +
                                         g->member_id[i - 1];
        if (pk->level != i || pk->key_len != LKH_KEY_LEN || pk->node != want)
            return ck_error_set(CK_ERR_DECODE, "group %u: path key %u", g->group_id, i);
    }
    if (g->root_version < g->keys[0].version)
        return ck_error_set(CK_ERR_DECODE, "group %u: root version below its key's",
                            g->group_id);
    for (uint32_t i = 0; i < LKH_ED25519_PUB_LEN; i++)
        if (g->sign_pub[i] != 0)
            return 0;
    return ck_error_set(CK_ERR_DECODE, "group %u: no signing key", g->group_id);
}

static bool
group_params_differ(const struct group *a, const struct ck_ksv_group *b)
{
    return !ck_ct_equal(a->sign_pub, b->sign_pub, sizeof(a->sign_pub)) ||
           !addr_eq(&a->mcast, &b->mcast) || a->mcast_port != b->mcast_port ||
           a->spi != b->spi || a->keying != b->keying || a->enc_alg != b->enc_alg ||
           a->auth_alg != b->auth_alg || a->enc_key_len != b->enc_key_len ||
           a->auth_key_len != b->auth_key_len;
}

/* Sets g from a REGISTER's group (checked): keys, key check, group SA. */
static int
group_load(ck_ksvnode *n, struct group *g, unsigned k, const struct ck_ksv_group *in,
           int64_t now_ms)
{
    int ret;

    g->used = true;
    g->ksv = k;
    g->group_id = in->group_id;
    g->keying = in->keying;
    g->gflags = in->gflags;
    g->proto = in->proto;
    g->mode = in->mode;
    g->mcast = in->mcast;
    g->mcast_port = in->mcast_port;
    memcpy(g->sign_pub, in->sign_pub, sizeof(g->sign_pub));
    g->spi = in->spi;
    g->life_sec = in->life_sec;
    g->life_kbytes = in->life_kbytes;
    g->enc_alg = in->enc_alg;
    g->auth_alg = in->auth_alg;
    g->enc_key_len = in->enc_key_len;
    g->auth_key_len = in->auth_key_len;
    g->epoch = in->epoch;
    g->root_version = in->root_version;
    g->removed = false;
    lkh_member_clear(&g->m);
    g->ek = ek_shaped(in);
    if (g->ek) {
        memcpy(g->key, in->keys[0].key, LKH_KEY_LEN);
    } else {
        uint32_t h = in->id_len;
        g->m.member_id = in->member_index;
        g->m.degree = in->degree;
        g->m.height = h;
        /* The message goes root first; struct lkh_member leaf first. */
        for (uint32_t i = 0; i <= h; i++) {
            const struct ck_ksv_path_key *pk = &in->keys[h - i];
            g->m.path[i].node = pk->node;
            g->m.path[i].version = pk->version;
            memcpy(g->m.path[i].key, pk->key, LKH_KEY_LEN);
        }
        if ((ret = lkh_member_group_key(&g->m, in->root_version, g->key)) != 0)
            return ret;
    }
    if ((ret = lkh_group_key_check(g->key, g->root_version, g->key_check)) != 0)
        return ret;
    return group_sa_install(n, g, now_ms);
}

/* ---------------------------------------------------------------------------------------------
 * HELLO.
 */

static int64_t
hello_delay_ms(ck_ksvnode *n, int attempt)
{
    int64_t d = 1000;

    for (int i = 0; i < attempt && d < CK_KSVNODE_HELLO_MAX_BACKOFF_MS; i++)
        d *= 2;
    if (d > CK_KSVNODE_HELLO_MAX_BACKOFF_MS)
        d = CK_KSVNODE_HELLO_MAX_BACKOFF_MS;
    /* Up to 10% later, so that nodes nudged together do not answer together. */
    return d + (int64_t)(rng_next(n) % (uint32_t)(d / 10 + 1));
}

static void
hello_clear(struct ksv *kv)
{
    for (size_t i = 0; i < MAX_HELLO; i++) {
        ck_ksv_hello_ctx_clear(&kv->hello[i]);
        kv->hello_used[i] = false;
    }
}

static int
fetch_creds(ck_ksvnode *n, unsigned k, int64_t now_ms)
{
    struct ksv *kv = &n->k[k];
    bool from_tgs = false;
    int ret;

    if (kv->creds != NULL && kv->creds->endtime * 1000 > now_ms + 60000)
        return 0;
    ck_creds_free(kv->creds);
    kv->creds = NULL;
    if (kv->given != NULL)
        return ck_creds_copy(kv->given, &kv->creds);
    if (n->ccache == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "node: no ccache");
    if ((ret = ck_endpoint_get_ticket(n->ccache, kv->service, &n->kdc, now_ms / 1000,
                                      &kv->creds, &from_tgs)) != 0)
        return ret;
    logf_(n, LOG_DEBUG, "node ticket ksv=%u service=%s %s", k, kv->service,
          from_tgs ? "tgs" : "ccache");
    return 0;
}

/* One HELLO transmission (the series' next try), and the timer for the one after. */
static int
send_hello(ck_ksvnode *n, unsigned k, int64_t now_ms)
{
    struct ksv *kv = &n->k[k];
    struct ck_ksv_hello_ctx *ctx;
    uint8_t *buf = NULL;
    size_t len = 0;
    int ret;

    if (kv->hello_try > 0 && hello_delay_ms(n, kv->hello_try - 1) >= CK_KSVNODE_HELLO_MAX_BACKOFF_MS)
        kv->hello_try = 0; /* the longest wait passed: start over */
    kv->hello_next_ms = now_ms + hello_delay_ms(n, kv->hello_try);
    kv->hello_try++;
    if ((ret = fetch_creds(n, k, now_ms)) != 0) {
        logf_(n, LOG_WARNING, "node hello ksv=%u no ticket: %s", k, ck_error_context());
        return ret == CK_ERR_NOMEM ? ret : 0;
    }
    ctx = &kv->hello[kv->hello_slot];
    ck_ksv_hello_ctx_clear(ctx);
    kv->hello_used[kv->hello_slot] = false;
    if ((ret = ck_ksv_hello_build(kv->creds, n->name, now_ms / 1000, ctx, &buf, &len)) != 0) {
        logf_(n, LOG_WARNING, "node hello ksv=%u: %s", k, ck_error_context());
        return ret == CK_ERR_NOMEM ? ret : 0;
    }
    kv->hello_used[kv->hello_slot] = true;
    kv->hello_slot = (kv->hello_slot + 1) % MAX_HELLO;
    n->st.hellos_sent++;
    logf_(n, LOG_DEBUG, "node hello ksv=%u try=%d", k, kv->hello_try);
    ret = send_raw(n, k, buf, len);
    free(buf);
    return ret;
}

static int
start_hello(ck_ksvnode *n, unsigned k, int64_t now_ms)
{
    struct ksv *kv = &n->k[k];

    kv->hello_active = true;
    kv->hello_try = 0;
    return send_hello(n, k, now_ms);
}

static int
on_hello_rep(ck_ksvnode *n, unsigned k, const uint8_t *buf, size_t len, int64_t now_ms)
{
    struct ksv *kv = &n->k[k];
    struct ck_ksv_seal s;
    int32_t krb_error = 0;
    int64_t end_ms, life;
    size_t i;

    memset(&s, 0, sizeof(s));
    for (i = 0; i < MAX_HELLO; i++) {
        if (!kv->hello_used[i])
            continue;
        if (ck_ksv_hello_rep_open(&kv->hello[i], buf, len, &s, &krb_error) == 0)
            break;
        ck_ksv_seal_clear(&s);
    }
    if (i == MAX_HELLO || !kv->hello_active) {
        ck_ksv_seal_clear(&s);
        n->st.dropped++;
        return 0;
    }
    ck_ksv_seal_clear(&kv->seal);
    kv->seal = s;
    ck_memzero(&s, sizeof(s));
    kv->session = true;
    kv->registered = false;
    kv->hello_active = false;
    hello_clear(kv);
    kv->next_msg_id = 1;
    end_ms = kv->creds->endtime * 1000;
    kv->session_end_ms = end_ms;
    life = end_ms - now_ms;
    kv->rereg_ms = now_ms + (life > 0 ? life / 10 * 9 : 0);
    if (kv->rereg_ms < now_ms + MIN_REREG_MS)
        kv->rereg_ms = now_ms + MIN_REREG_MS;
    logf_(n, LOG_INFO, "node session ksv=%u key_id=0x%08x", k, kv->seal.key_id);
    /* What waited for a session. */
    for (i = 0; i < kv->n_pend; i++) {
        int ret = send_pending(n, k, &kv->pend[i], now_ms);
        if (ret == CK_ERR_NOMEM)
            return ret;
    }
    ck_memzero(kv->pend, sizeof(kv->pend));
    kv->n_pend = 0;
    return 0;
}

static int
on_hello_err(ck_ksvnode *n, unsigned k, const uint8_t *buf, size_t len)
{
    struct ksv *kv = &n->k[k];
    char text[CK_KSV_MAX_TEXT + 1];
    uint32_t nonce;
    uint16_t code;

    if (ck_ksv_hello_err_parse(buf, len, &nonce, &code, text) != 0) {
        n->st.dropped++;
        return 0;
    }
    for (size_t i = 0; i < MAX_HELLO; i++)
        if (kv->hello_used[i] && kv->hello[i].node_nonce == nonce) {
            /* Unauthenticated: logged (printable only), the backoff goes on. */
            for (char *p = text; *p != '\0'; p++)
                if (*p < 0x20 || *p > 0x7e || *p == '"')
                    *p = '?';
            logf_(n, LOG_WARNING, "node hello refused ksv=%u code=%u text=\"%s\"", k, code, text);
            return 0;
        }
    n->st.dropped++;
    return 0;
}

static int
on_nudge(ck_ksvnode *n, unsigned k, const uint8_t *buf, size_t len, int64_t now_ms)
{
    struct ksv *kv = &n->k[k];
    char name[CK_KSV_MAX_NAME + 1];
    uint64_t t;

    if (ck_ksv_nudge_parse(buf, len, &t, name) != 0) {
        n->st.dropped++;
        return 0;
    }
    if (kv->nudged && now_ms - kv->last_nudge_ms < CK_KSVNODE_NUDGE_MIN_MS) {
        n->st.nudges_ignored++;
        return 0;
    }
    kv->nudged = true;
    kv->last_nudge_ms = now_ms;
    n->st.nudges++;
    logf_(n, LOG_INFO, "node nudge ksv=%u", k);
    return start_hello(n, k, now_ms);
}

/* ---------------------------------------------------------------------------------------------
 * REGISTER and DELETE.
 */

static int
ack(ck_ksvnode *n, unsigned k, const struct ck_ksv_msg *in, int64_t now_ms)
{
    struct ck_ksv_msg *m = NULL;
    int ret;

    if ((ret = ck_ksv_msg_new(CK_KSV_ACK, &m)) != 0)
        return ret;
    m->reflected_ts = in->timestamp;
    m->acked_msg_id = in->msg_id;
    if ((ret = send_sealed(n, k, m, now_ms)) == 0)
        n->st.acks_sent++;
    ck_ksv_msg_free(m);
    return ret;
}

static size_t
count_sas(const ck_ksvnode *n, unsigned k)
{
    size_t c = 0;

    for (size_t i = 0; i < n->n_sas; i++)
        c += n->sas[i].ksv == k && !n->sas[i].group;
    return c;
}

static size_t
count_groups(const ck_ksvnode *n, unsigned k)
{
    size_t c = 0;

    for (size_t i = 0; i < sizeof(n->groups) / sizeof(n->groups[0]); i++)
        c += n->groups[i].used && n->groups[i].ksv == k && !n->groups[i].removed;
    return c;
}

/* Another KSV's SA that this one contradicts, or -1. */
static int
sa_conflict(const ck_ksvnode *n, unsigned k, const struct ck_ksv_sa *sa, bool *same)
{
    *same = false;
    for (size_t i = 0; i < n->n_sas; i++) {
        const struct ck_ksvnode_sa *s = &n->sas[i];
        if (s->ksv == k || s->group)
            continue;
        if (s->sa.direction == sa->direction && addr_eq(&s->sa.peer, &sa->peer)) {
            if (s->sa.spi == sa->spi && sa_same_transform(&s->sa, sa) &&
                sa_same_keys(&s->sa, sa)) {
                *same = true;
                return (int)i;
            }
            return (int)i;
        }
        /* SPIs are unique per receiver. */
        if (sa->direction == CK_KSV_DIR_IN && s->sa.direction == CK_KSV_DIR_IN &&
            s->sa.spi == sa->spi)
            return (int)i;
    }
    return -1;
}

static int
group_conflict(const ck_ksvnode *n, unsigned k, const struct ck_ksv_group *g, bool *same)
{
    *same = false;
    for (size_t i = 0; i < sizeof(n->groups) / sizeof(n->groups[0]); i++) {
        const struct group *o = &n->groups[i];
        if (!o->used || o->ksv == k || o->removed)
            continue;
        if (o->group_id == g->group_id ||
            (addr_eq(&o->mcast, &g->mcast) && o->mcast_port == g->mcast_port)) {
            *same = o->group_id == g->group_id && !group_params_differ(o, g);
            return (int)i;
        }
    }
    return -1;
}

static int
malformed(ck_ksvnode *n, unsigned k, uint32_t ref, const char *why, int64_t now_ms)
{
    logf_(n, LOG_WARNING, "node malformed ksv=%u ref=%u: %s", k, ref, why);
    return alarm_to(n, k, CK_KSV_ALARM_MALFORMED_PACKET, NULL, 0, ref, now_ms);
}

static int
conflict(ck_ksvnode *n, unsigned k, unsigned other, const struct ck_ksv_addr *peer, uint32_t spi,
         uint32_t ref, int64_t now_ms)
{
    int ret;

    n->st.conflicts++;
    logf_(n, LOG_WARNING, "node conflict ksv=%u ksv=%u spi=0x%08x", k, other, spi);
    if ((ret = alarm_to(n, k, CK_KSV_ALARM_SERVER_CONFLICT, peer, spi, ref, now_ms)) != 0)
        return ret;
    return alarm_to(n, other, CK_KSV_ALARM_SERVER_CONFLICT, peer, spi, 0, now_ms);
}

static int
on_register(ck_ksvnode *n, unsigned k, const struct ck_ksv_msg *m, int64_t now_ms)
{
    struct ksv *kv = &n->k[k];
    bool skip_sa[CK_KSV_MAX_SAS] = {false}, skip_group[CK_KSV_MAX_GROUPS] = {false};
    bool first = !kv->registered;
    int ret;

    /* Everything is checked before anything is applied: a message is taken whole or not. */
    for (size_t i = 0; i < m->n_sas; i++) {
        const struct ck_ksv_sa *a = &m->sas[i];
        for (size_t j = 0; j < i; j++) {
            const struct ck_ksv_sa *b = &m->sas[j];
            if (a->direction == b->direction && a->spi == b->spi &&
                (a->direction == CK_KSV_DIR_IN || addr_eq(&a->peer, &b->peer)))
                return malformed(n, k, m->msg_id, "one SPI twice", now_ms);
        }
    }
    for (size_t i = 0; i < m->n_groups; i++)
        if ((ret = check_group(&m->groups[i])) != 0)
            return malformed(n, k, m->msg_id, ck_error_context(), now_ms);
    for (size_t i = 0; i < m->n_sas; i++) {
        bool same;
        int c = sa_conflict(n, k, &m->sas[i], &same);
        if (c < 0)
            continue;
        skip_sa[i] = true;
        if (!same &&
            (ret = conflict(n, k, n->sas[c].ksv, &m->sas[i].peer, m->sas[i].spi, m->msg_id,
                            now_ms)) != 0)
            return ret;
    }
    for (size_t i = 0; i < m->n_groups; i++) {
        bool same;
        int c = group_conflict(n, k, &m->groups[i], &same);
        if (c < 0)
            continue;
        skip_group[i] = true;
        if (!same &&
            (ret = conflict(n, k, n->groups[c].ksv, &m->groups[i].mcast, m->groups[i].spi,
                            m->msg_id, now_ms)) != 0)
            return ret;
    }
    if (m->n_sas > CK_KSVNODE_MAX_SAS - n->n_sas + count_sas(n, k))
        return malformed(n, k, m->msg_id, "too many SAs", now_ms);

    if (m->flags & CK_KSV_F_REFRESH) {
        for (size_t i = n->n_sas; i-- > 0;) {
            const struct ck_ksvnode_sa *s = &n->sas[i];
            bool keep = false;
            if (s->ksv != k || s->group)
                continue;
            for (size_t j = 0; j < m->n_sas && !keep; j++)
                keep = !skip_sa[j] && s->sa.direction == m->sas[j].direction &&
                       s->sa.spi == m->sas[j].spi && addr_eq(&s->sa.peer, &m->sas[j].peer);
            if (!keep)
                sa_remove_at(n, i);
        }
        for (size_t i = 0; i < sizeof(n->groups) / sizeof(n->groups[0]); i++) {
            struct group *g = &n->groups[i];
            bool keep = false;
            if (!g->used || g->ksv != k)
                continue;
            for (size_t j = 0; j < m->n_groups && !keep; j++)
                keep = !skip_group[j] && m->groups[j].group_id == g->group_id;
            if (!keep)
                group_drop(n, g);
        }
    }
    for (size_t i = 0; i < m->n_sas; i++) {
        struct ck_ksvnode_sa s;
        int at;
        if (skip_sa[i])
            continue;
        if ((at = find_sa(n, k, &m->sas[i])) >= 0) {
            /* The same SA again (a retransmission, a refresh): lifetime goes on. */
            if (sa_same_transform(&n->sas[at].sa, &m->sas[i]) &&
                sa_same_keys(&n->sas[at].sa, &m->sas[i]))
                continue;
            sa_remove_at(n, (size_t)at);
        }
        memset(&s, 0, sizeof(s));
        s.sa = m->sas[i];
        s.ksv = k;
        s.installed_ms = now_ms;
        s.expires_ms = now_ms + (int64_t)m->sas[i].life_sec * 1000;
        ret = sa_add(n, &s);
        ck_memzero(&s, sizeof(s));
        if (ret == CK_ERR_LIMIT)
            return malformed(n, k, m->msg_id, "too many SAs", now_ms);
        if (ret != 0)
            return ret;
    }
    for (size_t i = 0; i < m->n_groups; i++) {
        const struct ck_ksv_group *in = &m->groups[i];
        struct group *g;
        if (skip_group[i])
            continue;
        if ((g = find_group(n, k, in->group_id)) != NULL && !g->removed &&
            (in->epoch < g->epoch || (in->epoch == g->epoch && in->root_version < g->root_version))) {
            logf_(n, LOG_INFO, "node group %u stale epoch=%" PRIu64 " ignored", in->group_id,
                  in->epoch);
            continue;
        }
        if (g == NULL) {
            for (size_t j = 0; j < sizeof(n->groups) / sizeof(n->groups[0]) && g == NULL; j++)
                if (!n->groups[j].used)
                    g = &n->groups[j];
            if (g == NULL)
                return malformed(n, k, m->msg_id, "too many groups", now_ms);
        }
        if ((ret = group_load(n, g, k, in, now_ms)) != 0) {
            group_drop(n, g);
            if (ret == CK_ERR_NOMEM)
                return ret;
            return malformed(n, k, m->msg_id, ck_error_context(), now_ms);
        }
        group_notify(n, g);
    }
    if (m->flags & CK_KSV_F_ACK_REQD) {
        if ((ret = ack(n, k, m, now_ms)) != 0)
            return ret;
    }
    if (first) {
        kv->registered = true;
        n->st.registrations++;
        logf_(n, LOG_INFO, "node registered ksv=%u key_id=0x%08x sas=%zu groups=%zu", k,
              kv->seal.key_id, count_sas(n, k), count_groups(n, k));
    }
    return 0;
}

static int
on_delete(ck_ksvnode *n, unsigned k, const struct ck_ksv_msg *m, int64_t now_ms)
{
    for (size_t d = 0; d < m->n_deletes; d++) {
        const struct ck_ksv_delete *del = &m->deletes[d];
        for (size_t i = n->n_sas; i-- > 0;) {
            const struct ck_ksvnode_sa *s = &n->sas[i];
            if (s->ksv == k && !s->group && s->sa.direction == del->direction &&
                addr_eq(&s->sa.peer, &del->peer) && (del->spi == 0 || del->spi == s->sa.spi))
                sa_remove_at(n, i);
        }
    }
    if (m->flags & CK_KSV_F_ACK_REQD)
        return ack(n, k, m, now_ms);
    return 0;
}

static int
on_sealed(ck_ksvnode *n, unsigned k, const uint8_t *buf, size_t len, int64_t now_ms)
{
    struct ksv *kv = &n->k[k];
    struct ck_ksv_msg *m = NULL;
    uint32_t key_id;
    int ret;

    if (ck_ksv_sealed_key_id(buf, len, &key_id) != 0 || !kv->session ||
        key_id != kv->seal.key_id) {
        n->st.sealed_bad++;
        return 0;
    }
    ret = ck_ksv_open_msg(&kv->seal, buf, len, &m);
    if (ret == CK_ERR_NOMEM)
        return ret;
    if (ret == CK_ERR_PROTO) {
        /* It opened under the session key (so it is the KSV's) but does not parse. */
        n->st.sealed_in++;
        n->st.sealed_bad++;
        return malformed(n, k, 0, ck_error_context(), now_ms);
    }
    if (ret != 0) {
        /* Not from the KSV, or not new: nothing to tell it. */
        n->st.sealed_bad++;
        return 0;
    }
    n->st.sealed_in++;
    if (m->type == CK_KSV_REGISTER)
        ret = on_register(n, k, m, now_ms);
    else if (m->type == CK_KSV_DELETE)
        ret = on_delete(n, k, m, now_ms);
    else
        ret = malformed(n, k, m->msg_id, "a node-to-KSV message type", now_ms);
    ck_ksv_msg_free(m);
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * Rekey datagrams.
 */

/* MALFORMED_PACKET for a datagram that names no group we know: every KSV that gave us one. */
static int
malformed_group(ck_ksvnode *n, const struct group *g, int64_t now_ms)
{
    bool done[CK_KSVNODE_MAX_KSV] = {false};
    int ret;

    if (g != NULL)
        return malformed(n, g->ksv, 0, "rekey datagram", now_ms);
    for (size_t i = 0; i < sizeof(n->groups) / sizeof(n->groups[0]); i++) {
        unsigned k = n->groups[i].ksv;
        if (!n->groups[i].used || done[k])
            continue;
        done[k] = true;
        if ((ret = malformed(n, k, 0, "rekey datagram", now_ms)) != 0)
            return ret;
    }
    return 0;
}

static int
ask_recover(ck_ksvnode *n, struct group *g, int64_t now_ms)
{
    struct pending p;

    if (g->recovered_once && now_ms - g->last_recover_ms < RECOVER_MIN_MS)
        return 0;
    g->recovered_once = true;
    g->last_recover_ms = now_ms;
    memset(&p, 0, sizeof(p));
    p.type = CK_KSV_RECOVER;
    p.grp_id = g->group_id;
    p.grp_epoch = g->epoch;
    return post(n, g->ksv, &p, now_ms);
}

static bool
leaf_in(const struct group *g, const struct lkh_rekey_view *v)
{
    uint32_t leaf = g->m.path[0].node;

    return leaf >= v->leaf_lo && leaf <= v->leaf_hi;
}

/* Which group a verified-or-not datagram is for: the LKH group of that ID whose key verifies
 * it (two KSVs may, misconfigured, use one ID; the conflict was alarmed at registration). */
static struct group *
rekey_group(ck_ksvnode *n, const struct lkh_rekey_view *v)
{
    struct group *found = NULL;

    for (size_t i = 0; i < sizeof(n->groups) / sizeof(n->groups[0]); i++) {
        struct group *g = &n->groups[i];
        if (g->used && g->group_id == v->group_id) {
            if (found == NULL || (found->removed && !g->removed))
                found = g;
        }
    }
    return found;
}

static int
apply_rekey(ck_ksvnode *n, struct group *g, const struct lkh_rekey_view *v, int64_t now_ms)
{
    struct lkh_member tmp;
    uint8_t key[LKH_KEY_LEN];
    bool gap = v->epoch > g->epoch + 1, root_rekeyed = false;
    int ret;

    tmp = g->m;
    ret = lkh_member_apply(&tmp, v->wraps, v->n_wraps);
    if (ret == CK_ERR_PERM && g->keying == KEYING_HYBRID) {
        /* Hybrid: a rekey of this member's leaf without a wrap for it means its cluster was
         * replaced (lkh_rekey.h), and the new path comes by sealed unicast (a REGISTER, which
         * replaces the path); a removed member cannot tell itself apart. Keep the keys and
         * ask for the path, in case the unicast was lost: the KSV answers only a member. */
        logf_(n, LOG_INFO, "node group %u epoch=%" PRIu64 " cluster replaced: path by unicast",
              g->group_id, v->epoch);
        ret = ask_recover(n, g, now_ms);
        goto out;
    }
    if (ret == CK_ERR_PERM) {
        logf_(n, LOG_NOTICE, "node group %u epoch=%" PRIu64 " member %u removed", g->group_id,
              v->epoch, g->m.member_id);
        g->epoch = v->epoch;
        group_removed(n, g);
        ret = 0;
        goto out;
    }
    if (ret == CK_ERR_NOMEM)
        goto out;
    for (size_t i = 0; i < v->n_wraps && ret == 0; i++)
        root_rekeyed |= v->wraps[i].node == tmp.path[tmp.height].node;
    if (ret == 0 && gap && !root_rekeyed)
        ret = ck_error_set(CK_ERR_INTEGRITY, "epochs %" PRIu64 "..%" PRIu64 " missed",
                           g->epoch + 1, v->epoch - 1);
    if (ret == 0)
        ret = lkh_member_group_key(&tmp, v->root_version, key);
    if (ret != 0) {
        /* A gap the datagram cannot bridge: the KSV sends the current path by unicast. */
        logf_(n, LOG_NOTICE, "node group %u epoch=%" PRIu64 " cannot apply (%s): recover",
              g->group_id, v->epoch, ck_error_context());
        ret = ask_recover(n, g, now_ms);
        goto out;
    }
    g->m = tmp;
    memcpy(g->key, key, sizeof(key));
    g->epoch = v->epoch;
    g->root_version = v->root_version;
    if ((ret = lkh_group_key_check(g->key, g->root_version, g->key_check)) != 0)
        goto out;
    n->st.rekeys_applied++;
    if ((ret = group_sa_install(n, g, now_ms)) != 0 && ret != CK_ERR_NOMEM) {
        logf_(n, LOG_WARNING, "node group %u SA: %s", g->group_id, ck_error_context());
        ret = 0;
    }
    if (ret != 0)
        goto out;
    group_notify(n, g);
    if ((v->flags & LKH_REKEY_F_ACK_REQD) || (g->gflags & GROUP_F_ACK)) {
        struct pending p;
        memset(&p, 0, sizeof(p));
        p.type = CK_KSV_GROUP_ACK;
        p.grp_id = g->group_id;
        p.grp_epoch = g->epoch;
        ret = post(n, g->ksv, &p, now_ms);
    }
out:
    lkh_member_clear(&tmp);
    ck_memzero(key, sizeof(key));
    return ret;
}

static int
on_rekey(ck_ksvnode *n, const uint8_t *buf, size_t len, int64_t now_ms)
{
    struct lkh_rekey_view v;
    struct group *g;
    bool mine;
    int ret = 0;

    memset(&v, 0, sizeof(v));
    if ((ret = lkh_rekey_parse(buf, len, &v)) != 0) {
        if (ret == CK_ERR_NOMEM)
            return ret;
        n->st.rekeys_malformed++;
        ret = malformed_group(n, NULL, now_ms);
        goto out;
    }
    g = rekey_group(n, &v);
    if (g == NULL || g->removed || g->ek) {
        n->st.rekeys_ignored++;
        goto out;
    }
    mine = leaf_in(g, &v);
    if (v.epoch < g->epoch || (v.epoch == g->epoch && mine)) {
        n->st.rekeys_replayed++;
        goto out;
    }
    if (v.epoch == g->epoch) {
        n->st.rekeys_ignored++; /* a sibling datagram of the epoch already applied */
        goto out;
    }
    if ((ret = lkh_rekey_verify(buf, len, g->sign_pub)) != 0) {
        if (ret == CK_ERR_NOMEM)
            goto out;
        n->st.rekeys_bad_sig++;
        logf_(n, LOG_WARNING, "node group %u epoch=%" PRIu64 " signature: %s", g->group_id,
              v.epoch, ck_error_context());
        ret = alarm_to(n, g->ksv, CK_KSV_ALARM_SIGN_FAILED, &g->mcast, g->spi, 0, now_ms);
        goto out;
    }
    if (!mine) {
        n->st.rekeys_ignored++;
        goto out;
    }
    ret = apply_rekey(n, g, &v, now_ms);
out:
    lkh_rekey_view_clear(&v);
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * Public API.
 */

int
ck_ksvnode_new(const struct ck_ksvnode_params *p, ck_ksvnode **out)
{
    ck_ksvnode *n = NULL;
    int ret;

    *out = NULL;
    if (p == NULL || p->name == NULL || p->name[0] == '\0' || strlen(p->name) > CK_KSV_MAX_NAME ||
        p->n_ksv == 0 || p->n_ksv > CK_KSVNODE_MAX_KSV || p->kdc.n_kdcs > CK_KDC_MAX_KDCS)
        return ck_error_set(CK_ERR_INVAL, "node: name, 1..%u KSVs", CK_KSVNODE_MAX_KSV);
    if ((n = calloc(1, sizeof(*n))) == NULL ||
        (n->sas = calloc(CK_KSVNODE_MAX_SAS, sizeof(*n->sas))) == NULL ||
        (n->name = strdup(p->name)) == NULL ||
        (p->ccache != NULL && (n->ccache = strdup(p->ccache)) == NULL)) {
        ret = ck_error_set(CK_ERR_NOMEM, "node");
        goto fail;
    }
    n->kdc = p->kdc;
    for (size_t i = 0; i < p->kdc.n_kdcs; i++) {
        if ((n->kdc_strs[i] = strdup(p->kdc.kdcs[i])) == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "node");
            goto fail;
        }
        n->kdcs[i] = n->kdc_strs[i];
    }
    n->kdc.kdcs = n->kdcs;
    n->cb = p->cb;
    n->n_ksv = p->n_ksv;
    for (size_t i = 0; i < p->n_ksv; i++) {
        if (p->ksv_service[i] == NULL || p->ksv_service[i][0] == '\0') {
            ret = ck_error_set(CK_ERR_INVAL, "node: KSV %zu has no service", i);
            goto fail;
        }
        if ((n->k[i].service = strdup(p->ksv_service[i])) == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "node");
            goto fail;
        }
        if (p->creds[i] != NULL && (ret = ck_creds_copy(p->creds[i], &n->k[i].given)) != 0)
            goto fail;
        if (p->creds[i] == NULL && p->ccache == NULL) {
            ret = ck_error_set(CK_ERR_INVAL, "node: no ccache and no ticket for KSV %zu", i);
            goto fail;
        }
        n->k[i].next_msg_id = 1;
    }
    if (p->rng_seed != 0) {
        n->rng = p->rng_seed;
    } else if (RAND_bytes((unsigned char *)&n->rng, sizeof(n->rng)) != 1) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "node: random");
        goto fail;
    }
    n->rng |= 1;
    *out = n;
    return 0;
fail:
    ck_ksvnode_free(n);
    return ret;
}

void
ck_ksvnode_free(ck_ksvnode *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < CK_KSVNODE_MAX_KSV; i++) {
        struct ksv *kv = &n->k[i];
        free(kv->service);
        ck_creds_free(kv->creds);
        ck_creds_free(kv->given);
        ck_ksv_seal_clear(&kv->seal);
        hello_clear(kv);
    }
    for (size_t i = 0; i < CK_KDC_MAX_KDCS; i++)
        free(n->kdc_strs[i]);
    if (n->sas != NULL)
        ck_free_secret(n->sas, CK_KSVNODE_MAX_SAS * sizeof(*n->sas));
    free(n->name);
    free(n->ccache);
    ck_free_secret(n, sizeof(*n));
}

int
ck_ksvnode_start(ck_ksvnode *n, int64_t now_ms)
{
    int ret;

    for (unsigned k = 0; k < n->n_ksv; k++)
        if ((ret = start_hello(n, k, now_ms)) != 0)
            return ret;
    return 0;
}

int
ck_ksvnode_on_datagram(ck_ksvnode *n, unsigned ksv, const uint8_t *buf, size_t len,
                       int64_t now_ms)
{
    enum ck_ksv_kind kind;

    if (buf == NULL || ck_ksv_wire_kind(buf, len, &kind) != 0) {
        if (ksv == CK_KSVNODE_FROM_GROUP) {
            /* A group address carries only rekeys: what is not one is noise or an attack. */
            n->st.rekeys_malformed++;
            return malformed_group(n, NULL, now_ms);
        }
        n->st.dropped++;
        return 0;
    }
    if (ksv == CK_KSVNODE_FROM_GROUP) {
        if (kind != CK_KSV_K_REKEY) {
            n->st.dropped++;
            return 0;
        }
        return on_rekey(n, buf, len, now_ms);
    }
    if (ksv >= n->n_ksv)
        return ck_error_set(CK_ERR_INVAL, "node: KSV %u of %zu", ksv, n->n_ksv);
    switch (kind) {
    case CK_KSV_K_HELLO_REP: return on_hello_rep(n, ksv, buf, len, now_ms);
    case CK_KSV_K_HELLO_ERR: return on_hello_err(n, ksv, buf, len);
    case CK_KSV_K_SEALED: return on_sealed(n, ksv, buf, len, now_ms);
    case CK_KSV_K_NUDGE: return on_nudge(n, ksv, buf, len, now_ms);
    default: n->st.dropped++; return 0;
    }
}

/* SA lifetimes: an SA whose replacement (a later SA of the same KSV, direction and peer) is
 * there just goes; one without is kept a quarter of its life longer, and the KSV is told. */
static int
sa_timers(ck_ksvnode *n, int64_t now_ms)
{
    int ret;

    for (size_t i = n->n_sas; i-- > 0;) {
        struct ck_ksvnode_sa *s = &n->sas[i];
        bool replaced = false;
        int64_t ext;
        if (s->group || s->expires_ms == 0 || s->expires_ms > now_ms)
            continue;
        for (size_t j = 0; j < n->n_sas && !replaced; j++)
            replaced = j != i && !n->sas[j].group && n->sas[j].ksv == s->ksv &&
                       n->sas[j].sa.direction == s->sa.direction &&
                       addr_eq(&n->sas[j].sa.peer, &s->sa.peer) &&
                       n->sas[j].installed_ms > s->installed_ms && n->sas[j].expires_ms > now_ms;
        if (replaced) {
            sa_remove_at(n, i);
            continue;
        }
        ext = (int64_t)s->sa.life_sec * 1000 / 4;
        s->expires_ms = now_ms + (ext > 0 ? ext : 1000);
        s->extended = true;
        n->st.sas_extended++;
        if ((ret = alarm_to(n, s->ksv, CK_KSV_ALARM_SA_EXPIRED, &s->sa.peer, s->sa.spi, 0,
                            now_ms)) != 0)
            return ret;
    }
    return 0;
}

int
ck_ksvnode_on_timer(ck_ksvnode *n, int64_t now_ms)
{
    int ret;

    for (unsigned k = 0; k < n->n_ksv; k++) {
        struct ksv *kv = &n->k[k];
        if (kv->session && now_ms >= kv->session_end_ms) {
            logf_(n, LOG_NOTICE, "node session ksv=%u ended", k);
            kv->session = false;
            kv->registered = false;
            ck_ksv_seal_clear(&kv->seal);
        }
        if (!kv->hello_active && (!kv->session || now_ms >= kv->rereg_ms)) {
            /* The ticket in hand is near its end: read the ccache again. */
            ck_creds_free(kv->creds);
            kv->creds = NULL;
            if ((ret = start_hello(n, k, now_ms)) != 0)
                return ret;
        } else if (kv->hello_active && now_ms >= kv->hello_next_ms) {
            if ((ret = send_hello(n, k, now_ms)) != 0)
                return ret;
        }
    }
    return sa_timers(n, now_ms);
}

int64_t
ck_ksvnode_next_timeout_ms(const ck_ksvnode *n, int64_t now_ms)
{
    int64_t t = INT64_MAX;

    for (unsigned k = 0; k < n->n_ksv; k++) {
        const struct ksv *kv = &n->k[k];
        if (kv->hello_active)
            t = ck_deadline_min(t, kv->hello_next_ms);
        else if (kv->session)
            t = ck_deadline_min(t, kv->rereg_ms);
        else
            t = ck_deadline_min(t, now_ms);
        if (kv->session)
            t = ck_deadline_min(t, kv->session_end_ms);
    }
    for (size_t i = 0; i < n->n_sas; i++)
        if (!n->sas[i].group && n->sas[i].expires_ms != 0)
            t = ck_deadline_min(t, n->sas[i].expires_ms);
    if (t == INT64_MAX)
        return -1;
    return t <= now_ms ? 0 : t - now_ms;
}

void
ck_ksvnode_get_stats(const ck_ksvnode *n, struct ck_ksvnode_stats *out)
{
    *out = n->st;
}

size_t
ck_ksvnode_sas(const ck_ksvnode *n, const struct ck_ksvnode_sa **sas)
{
    *sas = n->sas;
    return n->n_sas;
}

size_t
ck_ksvnode_groups(const ck_ksvnode *n, struct ck_ksvnode_group_status *out, size_t max)
{
    size_t c = 0;

    for (size_t i = 0; i < sizeof(n->groups) / sizeof(n->groups[0]); i++) {
        if (!n->groups[i].used)
            continue;
        if (c < max)
            group_status(&n->groups[i], &out[c]);
        c++;
    }
    return c;
}

bool
ck_ksvnode_registered(const ck_ksvnode *n, unsigned ksv)
{
    return ksv < n->n_ksv && n->k[ksv].session && n->k[ksv].registered;
}
