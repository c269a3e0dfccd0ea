/* Link SAs: one per directed link and generation, SPI allocated by the store (unique among what
 * the receiver gets), keys from the CSPRNG. Both ends get each one (src OUT, dst IN). A new
 * generation is made at 75 % of LIFE-SEC and pushed; the old one is deleted at its expiry. A link
 * is keyed here only when both of its ends may register with this KSV: an end registered
 * elsewhere could not receive its half. */
#define KSV_INTERNAL
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/util.h"
#include "ksv.h"

/* The policy of the directed link src => dst in the current topology, or NULL. */
static const struct ck_ksvtopo_policy *
link_policy(struct ksv_core *k, const char *src, const char *dst)
{
    struct ck_ksvtopo_view v;

    if (!ck_ksvtopo_may_register(k->topo, src, k->name) ||
        !ck_ksvtopo_may_register(k->topo, dst, k->name) ||
        ck_ksvtopo_node_view(k->topo, src, &v) != 0)
        return NULL;
    for (size_t i = 0; i < v.n_sa; i++)
        if (v.sa[i].dir == CK_KSVTOPO_OUT && strcmp(v.sa[i].peer->name, dst) == 0)
            return v.sa[i].policy;
    return NULL;
}

/* A node's address: the current topology's, else (a reload removed it) the previous one's. */
static const char *
node_address(struct ksv_core *k, const char *name)
{
    const struct ck_ksvtopo_node *tn = ck_ksvtopo_node_find(k->topo, name);

    if (tn == NULL && k->old_topo != NULL)
        tn = ck_ksvtopo_node_find(k->old_topo, name);
    return tn != NULL ? tn->address : NULL;
}

static int
sa_cmp(const void *a, const void *b)
{
    const struct ksv_sa *x = a, *y = b;
    int c = strcmp(x->row.src, y->row.src);

    if (c == 0)
        c = strcmp(x->row.dst, y->row.dst);
    if (c == 0)
        c = x->row.generation < y->row.generation ? -1 : x->row.generation > y->row.generation;
    return c;
}

static int
sa_reserve(struct ksv_core *k, size_t more)
{
    if (k->n_sas + more <= k->cap_sas)
        return 0;
    size_t cap = k->cap_sas ? k->cap_sas : 64;
    while (cap < k->n_sas + more)
        cap *= 2;
    struct ksv_sa *ns = calloc(cap, sizeof(*ns));
    if (ns == NULL)
        return ck_error_set(CK_ERR_NOMEM, "SAs");
    if (k->sas != NULL) {
        memcpy(ns, k->sas, k->n_sas * sizeof(*ns));
        ck_free_secret(k->sas, k->cap_sas * sizeof(*k->sas));
    }
    k->sas = ns;
    k->cap_sas = cap;
    return 0;
}

int
ksv_links_load(struct ksv_core *k)
{
    struct ck_ksv_sa_row *rows = NULL;
    size_t n = 0;
    int rc;

    if ((rc = ck_ksv_store_sa_list(k->p.store, NULL, &rows, &n)) != 0)
        return rc;
    if ((rc = sa_reserve(k, n)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        k->sas[k->n_sas].row = rows[i];
        k->sas[k->n_sas].superseded = false;
        k->n_sas++;
    }
    if (k->n_sas > 1)
        qsort(k->sas, k->n_sas, sizeof(*k->sas), sa_cmp);
    for (size_t i = 0; i + 1 < k->n_sas; i++)
        if (strcmp(k->sas[i].row.src, k->sas[i + 1].row.src) == 0 &&
            strcmp(k->sas[i].row.dst, k->sas[i + 1].row.dst) == 0)
            k->sas[i].superseded = true;
out:
    ck_ksv_store_sa_free(rows, n);
    return rc;
}

/* The SA as the receiver `node` installs it. */
static int
sa_wire(struct ksv_core *k, const struct ck_ksv_sa_row *r, const char *node,
        const struct ck_ksvtopo_policy *pol, int64_t now_ms, struct ck_ksv_sa *out)
{
    bool out_dir = strcmp(node, r->src) == 0;
    const char *peer = node_address(k, out_dir ? r->dst : r->src);
    uint8_t el, al;
    int64_t left = r->expires - now_ms / 1000;
    int rc;

    memset(out, 0, sizeof(*out));
    if (peer == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "no address for the peer of %s", node);
    if ((rc = ksv_addr_from_text(peer, &out->peer)) != 0)
        return rc;
    out->direction = out_dir ? CK_KSV_DIR_OUT : CK_KSV_DIR_IN;
    ksv_xf_wire(&pol->xf, &out->proto, &out->mode, &out->enc_alg, &out->auth_alg, &el, &al);
    out->spi = r->spi;
    /* What is left of the lifetime: a node registering late must not outlive the KSV's plan. */
    out->life_sec = left < 1 ? 1u : left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
    out->life_kbytes = pol->xf.life_kbyte;
    out->enc_key_len = r->enc_key_len;
    out->auth_key_len = r->auth_key_len;
    memcpy(out->enc_key, r->enc_key, r->enc_key_len);
    memcpy(out->auth_key, r->auth_key, r->auth_key_len);
    return 0;
}

/* REGISTER (without REFRESH) of one SA to both ends. */
static int
push_sa(struct ksv_core *k, const struct ck_ksv_sa_row *r, const struct ck_ksvtopo_policy *pol,
        int64_t now_ms)
{
    const char *ends[2] = {r->src, r->dst};
    int rc = 0;

    for (int i = 0; i < 2; i++) {
        struct ksv_node *n = ksv_node_find(k, ends[i]);
        struct ck_ksv_msg *m = NULL;
        struct ck_ksv_sa sa;

        if (n == NULL || !n->registered)
            continue;
        if ((rc = ck_ksv_msg_new(CK_KSV_REGISTER, &m)) != 0)
            return rc;
        m->flags = pol->xf.ack_reqd ? CK_KSV_F_ACK_REQD : 0;
        if ((rc = sa_wire(k, r, ends[i], pol, now_ms, &sa)) == 0 &&
            (rc = ck_ksv_msg_add_sa(m, &sa)) == 0)
            rc = ksv_send_msg(k, n, m, now_ms);
        OPENSSL_cleanse(&sa, sizeof(sa));
        ck_ksv_msg_free(m);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A new generation of src => dst, stored before it is sent. */
static int
create_sa(struct ksv_core *k, const char *src, const char *dst,
          const struct ck_ksvtopo_policy *pol, uint32_t gen, const char *action, int64_t now_ms)
{
    struct ck_ksv_sa_row r;
    uint8_t proto, mode, el, al;
    uint16_t ea, aa;
    int rc;

    memset(&r, 0, sizeof(r));
    ck_strlcpy(r.src, src, sizeof(r.src));
    ck_strlcpy(r.dst, dst, sizeof(r.dst));
    ck_strlcpy(r.policy, pol->name, sizeof(r.policy));
    ksv_xf_wire(&pol->xf, &proto, &mode, &ea, &aa, &el, &al);
    r.enc_key_len = el;
    r.auth_key_len = al;
    r.created = now_ms / 1000;
    r.expires = r.created + pol->xf.life_sec;
    r.generation = gen;
    if ((el > 0 && (rc = ck_random_bytes(r.enc_key, el)) != 0) ||
        (al > 0 && (rc = ck_random_bytes(r.auth_key, al)) != 0))
        goto out;
    if ((rc = sa_reserve(k, 1)) != 0 || (rc = ck_ksv_store_sa_put(k->p.store, &r)) != 0)
        goto out;
    if (ksv_crash(k, "sa-after-commit"))
        goto out;
    for (size_t i = 0; i < k->n_sas; i++)
        if (strcmp(k->sas[i].row.src, src) == 0 && strcmp(k->sas[i].row.dst, dst) == 0)
            k->sas[i].superseded = true;
    k->sas[k->n_sas].row = r;
    k->sas[k->n_sas].superseded = false;
    k->n_sas++;
    if (strcmp(action, "rekey") == 0)
        k->st.sa_rekeys++;
    ksv_log(k, LOG_INFO, "ksv sa link=%s=>%s spi=0x%08x gen=%u action=%s", src, dst, r.spi, gen,
            action);
    rc = push_sa(k, &r, pol, now_ms);
out:
    OPENSSL_cleanse(&r, sizeof(r));
    return rc;
}

/* Removes SA i: store, DELETE to both ends, memory. */
static int
delete_sa(struct ksv_core *k, size_t i, int64_t now_ms)
{
    struct ck_ksv_sa_row r = k->sas[i].row;
    const struct ck_ksvtopo_policy *pol = link_policy(k, r.src, r.dst);
    const char *ends[2] = {r.src, r.dst};
    int rc;

    if ((rc = ck_ksv_store_sa_delete(k->p.store, r.id)) != 0)
        goto out;
    OPENSSL_cleanse(&k->sas[i].row, sizeof(k->sas[i].row));
    memmove(&k->sas[i], &k->sas[i + 1], (k->n_sas - i - 1) * sizeof(*k->sas));
    k->n_sas--;
    OPENSSL_cleanse(&k->sas[k->n_sas].row, sizeof(k->sas[0].row));
    k->st.sa_deletes++;
    ksv_log(k, LOG_INFO, "ksv sa link=%s=>%s spi=0x%08x gen=%u action=delete", r.src, r.dst,
            r.spi, r.generation);
    for (int e = 0; e < 2; e++) {
        struct ksv_node *n = ksv_node_find(k, ends[e]);
        const char *peer = node_address(k, e == 0 ? r.dst : r.src);
        struct ck_ksv_msg *m = NULL;
        struct ck_ksv_delete d;

        if (n == NULL || !n->registered || peer == NULL)
            continue;
        memset(&d, 0, sizeof(d));
        d.direction = e == 0 ? CK_KSV_DIR_OUT : CK_KSV_DIR_IN;
        d.spi = r.spi;
        if (ksv_addr_from_text(peer, &d.peer) != 0)
            continue;
        if ((rc = ck_ksv_msg_new(CK_KSV_DELETE, &m)) != 0)
            goto out;
        /* A removed link has no policy left: ask for the ACK (a DELETE must not be lost). */
        m->flags = pol == NULL || pol->xf.ack_reqd ? CK_KSV_F_ACK_REQD : 0;
        if ((rc = ck_ksv_msg_add_delete(m, &d)) == 0)
            rc = ksv_send_msg(k, n, m, now_ms);
        ck_ksv_msg_free(m);
        if (rc != 0)
            goto out;
    }
out:
    OPENSSL_cleanse(&r, sizeof(r));
    return rc;
}

int
ksv_links_prune(struct ksv_core *k, int64_t now_ms)
{
    int rc;

    for (size_t i = 0; i < k->n_sas;) {
        if (link_policy(k, k->sas[i].row.src, k->sas[i].row.dst) != NULL) {
            i++;
            continue;
        }
        if ((rc = delete_sa(k, i, now_ms)) != 0)
            return rc;
    }
    return 0;
}

static struct ksv_sa *
newest(struct ksv_core *k, const char *src, const char *dst)
{
    for (size_t i = 0; i < k->n_sas; i++)
        if (!k->sas[i].superseded && strcmp(k->sas[i].row.src, src) == 0 &&
            strcmp(k->sas[i].row.dst, dst) == 0)
            return &k->sas[i];
    return NULL;
}

int
ksv_links_reconcile(struct ksv_core *k, int64_t now_ms)
{
    int rc;

    for (size_t i = 0; i < ck_ksvtopo_n_nodes(k->topo); i++) {
        const struct ck_ksvtopo_node *tn = ck_ksvtopo_node_at(k->topo, i);
        struct ck_ksvtopo_view v;

        if (!ck_ksvtopo_may_register(k->topo, tn->name, k->name) ||
            ck_ksvtopo_node_view(k->topo, tn->name, &v) != 0)
            continue;
        for (size_t j = 0; j < v.n_sa; j++) {
            const struct ck_ksvtopo_sa *s = &v.sa[j];
            if (s->dir != CK_KSVTOPO_OUT ||
                !ck_ksvtopo_may_register(k->topo, s->peer->name, k->name) ||
                newest(k, tn->name, s->peer->name) != NULL)
                continue;
            if ((rc = create_sa(k, tn->name, s->peer->name, s->policy, 1, "push", now_ms)) != 0 ||
                k->crashed)
                return rc;
        }
    }
    return 0;
}

static int
rekey(struct ksv_core *k, size_t i, int64_t now_ms)
{
    char src[CK_KSV_STORE_NAME], dst[CK_KSV_STORE_NAME];
    const struct ck_ksvtopo_policy *pol;
    uint32_t gen = k->sas[i].row.generation + 1;

    ck_strlcpy(src, k->sas[i].row.src, sizeof(src));
    ck_strlcpy(dst, k->sas[i].row.dst, sizeof(dst));
    if ((pol = link_policy(k, src, dst)) == NULL)
        return 0;
    return create_sa(k, src, dst, pol, gen, "rekey", now_ms);
}

int
ksv_links_rekey_spi(struct ksv_core *k, const char *node, uint32_t spi, int64_t now_ms)
{
    for (size_t i = 0; i < k->n_sas; i++) {
        const struct ck_ksv_sa_row *r = &k->sas[i].row;
        if (r->spi != spi || (strcmp(r->src, node) != 0 && strcmp(r->dst, node) != 0) ||
            k->sas[i].superseded)
            continue;
        /* An authenticated node repeating the alarm must not make the KSV write and push a
         * generation per datagram. */
        if (now_ms / 1000 - r->created < KSV_SA_EXPIRED_MIN_AGE)
            return 0;
        return rekey(k, i, now_ms);
    }
    return 0;
}

int
ksv_links_changed(struct ksv_core *k, const struct ck_ksvtopo_diff *d, int64_t now_ms)
{
    int rc;

    for (size_t i = 0; i < d->n; i++) {
        const struct ck_ksvtopo_change *c = &d->changes[i];
        struct ksv_sa *cur;
        if (c->kind != CK_KSVTOPO_CHANGED || c->sa_new == NULL ||
            c->sa_new->dir != CK_KSVTOPO_OUT)
            continue;
        if ((cur = newest(k, c->node, c->sa_new->peer->name)) == NULL)
            continue;
        /* New transform or address: a new generation at once, the old ones deleted. */
        if ((rc = rekey(k, (size_t)(cur - k->sas), now_ms)) != 0 || k->crashed)
            return rc;
        for (size_t j = 0; j < k->n_sas;) {
            if (k->sas[j].superseded && strcmp(k->sas[j].row.src, c->node) == 0 &&
                strcmp(k->sas[j].row.dst, c->sa_new->peer->name) == 0) {
                if ((rc = delete_sa(k, j, now_ms)) != 0)
                    return rc;
                continue;
            }
            j++;
        }
    }
    return 0;
}

static int64_t
due_ms(const struct ksv_sa *s)
{
    int64_t life = s->row.expires - s->row.created;

    if (s->superseded)
        return s->row.expires * 1000;
    return s->row.created * 1000 + life * 750;
}

int
ksv_links_timer(struct ksv_core *k, int64_t now_ms)
{
    int rc;

    for (size_t i = 0; i < k->n_sas;) {
        if (due_ms(&k->sas[i]) > now_ms) {
            i++;
            continue;
        }
        if (k->sas[i].superseded) {
            if ((rc = delete_sa(k, i, now_ms)) != 0)
                return rc;
            continue;
        }
        if ((rc = rekey(k, i, now_ms)) != 0 || k->crashed)
            return rc;
        if (!k->sas[i].superseded) /* no policy left: prune removes it */
            i++;
    }
    return 0;
}

int64_t
ksv_links_next(struct ksv_core *k)
{
    int64_t best = -1;

    for (size_t i = 0; i < k->n_sas; i++) {
        int64_t t = due_ms(&k->sas[i]);
        if (best < 0 || t < best)
            best = t;
    }
    return best;
}

size_t
ksv_links_count(struct ksv_core *k, const char *node)
{
    size_t n = 0;

    for (size_t i = 0; i < k->n_sas; i++) {
        const struct ck_ksv_sa_row *r = &k->sas[i].row;
        if ((strcmp(r->src, node) == 0 || strcmp(r->dst, node) == 0) &&
            link_policy(k, r->src, r->dst) != NULL)
            n++;
    }
    return n;
}

int
ksv_links_fill(struct ksv_core *k, const char *node, struct ck_ksv_msg *m, size_t *next_i,
               int64_t now_ms)
{
    size_t seen = 0;
    int rc;

    for (size_t i = 0; i < k->n_sas && m->n_sas < CK_KSV_MAX_SAS; i++) {
        const struct ck_ksv_sa_row *r = &k->sas[i].row;
        const struct ck_ksvtopo_policy *pol;
        struct ck_ksv_sa sa;

        if (strcmp(r->src, node) != 0 && strcmp(r->dst, node) != 0)
            continue;
        if ((pol = link_policy(k, r->src, r->dst)) == NULL)
            continue;
        if (seen++ < *next_i)
            continue;
        rc = sa_wire(k, r, node, pol, now_ms, &sa);
        if (rc == 0)
            rc = ck_ksv_msg_add_sa(m, &sa);
        OPENSSL_cleanse(&sa, sizeof(sa));
        if (rc != 0)
            return rc;
        (*next_i)++;
    }
    return 0;
}
