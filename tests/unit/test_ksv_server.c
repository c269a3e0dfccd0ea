/* cablekey-ksv's core (daemons/ksv) in-process, with an injected clock and every datagram it
 * sends captured: nodes played by this test run the real AP exchange (tickets sealed under the
 * service key of a keytab on disk, read through ck_keyset), open the sealed REGISTER/DELETE
 * messages with their session keys, and apply group rekeys with the LKH member code (lib/lkh),
 * so what is checked is what a node would see, not the server's word. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KSV_INTERNAL
#include "ck_test.h"
#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/keytab.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/ksv_node.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "ksv.h"

#define REALM "TEST.REALM"
#define SERVICE "ksv/ksv1.test@" REALM
#define MAX_NODES 6

static const char TOPO[] =
    "ksv ksv1\n"
    "ksv other\n"
    "policy fast {\n"
    "  TRANS-TYPE = ESP\n"
    "  LIFE-SEC = 100\n"
    "  ENC-ALG = aes-128-gcm\n"
    "  ACK-REQD = yes\n"
    "}\n"
    "policy auth {\n"
    "  TRANS-TYPE = AH\n"
    "  LIFE-SEC = 200\n"
    "}\n"
    "node n1 10.0.0.1\n"
    "node n2 10.0.0.2\n"
    "node n3 10.0.0.3\n"
    "node n4 10.0.0.4\n"
    "node n5 10.0.0.5 ksv other\n"
    "n1 <-> n2 fast\n"
    "n1 => n3 auth\n"
    "group g1 {\n"
    "  address = 239.1.1.1\n"
    "  policy = fast\n"
    "  members = n1 n2 n3 n4\n"
    "}\n";

/* ---- the fixture ------------------------------------------------------------------------- */

struct sent {
    struct sockaddr_in to;
    uint8_t *buf;
    size_t len;
    bool mcast;
};

struct fx {
    char dir[64], db[128], keytab[128];
    ck_key service_key;
    ck_keyset *ks;
    struct ck_ksv_store *st;
    struct ksv_core *k;
    struct sent *sent;
    size_t n_sent, cap_sent;
    char (*logs)[400];
    size_t n_logs, cap_logs;
    char crashed_at[32];
    int64_t now;
    const char *crash;
    size_t batch_size;
    int64_t batch_interval_ms;
};

static int
record(struct fx *f, const struct sockaddr *to, const uint8_t *buf, size_t len, bool mcast)
{
    struct sent *s;

    if (f->n_sent == f->cap_sent) {
        f->cap_sent = f->cap_sent ? 2 * f->cap_sent : 256;
        f->sent = realloc(f->sent, f->cap_sent * sizeof(*f->sent));
        if (f->sent == NULL)
            abort();
    }
    s = &f->sent[f->n_sent++];
    memset(s, 0, sizeof(*s));
    if (to->sa_family == AF_INET)
        memcpy(&s->to, to, sizeof(s->to));
    s->buf = ck_memdup(buf, len);
    s->len = len;
    s->mcast = mcast;
    return 0;
}

static int
cb_send(void *arg, const struct sockaddr *to, socklen_t to_len, const uint8_t *buf, size_t len)
{
    (void)to_len;
    return record(arg, to, buf, len, false);
}

static int
cb_mcast(void *arg, const struct sockaddr *to, socklen_t to_len, const uint8_t *buf, size_t len)
{
    (void)to_len;
    return record(arg, to, buf, len, true);
}

static void
cb_log(void *arg, int level, const char *line)
{
    struct fx *f = arg;

    (void)level;
    if (f->n_logs == f->cap_logs) {
        f->cap_logs = f->cap_logs ? 2 * f->cap_logs : 256;
        f->logs = realloc(f->logs, f->cap_logs * sizeof(*f->logs));
        if (f->logs == NULL)
            abort();
    }
    ck_strlcpy(f->logs[f->n_logs++], line, sizeof(f->logs[0]));
    if (getenv("KSV_TEST_LOG") != NULL)
        fprintf(stderr, "    log: %s\n", line);
}

static void
cb_crash(void *arg, const char *point)
{
    struct fx *f = arg;

    ck_strlcpy(f->crashed_at, point, sizeof(f->crashed_at));
}

/* The number of log lines containing every fragment given (NULL-terminated). */
static size_t
logged(struct fx *f, ...)
{
    size_t n = 0;

    for (size_t i = 0; i < f->n_logs; i++) {
        va_list ap;
        const char *frag;
        bool all = true;
        va_start(ap, f);
        while ((frag = va_arg(ap, const char *)) != NULL)
            if (strstr(f->logs[i], frag) == NULL)
                all = false;
        va_end(ap);
        if (all)
            n++;
    }
    return n;
}

static void
write_keytab(struct fx *f)
{
    ck_keytab *kt = NULL;
    ck_principal *p = NULL;

    CHECK_OK(ck_keytab_new(&kt));
    CHECK_OK(ck_principal_parse(SERVICE, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p));
    CHECK_OK(ck_keytab_add(kt, p, 2, 0, &f->service_key));
    CHECK_OK(ck_keytab_write(f->keytab, kt));
    ck_principal_free(p);
    ck_keytab_free(kt);
}

static struct ck_ksvtopo *
topo(const char *text)
{
    struct ck_ksvtopo *t = NULL;
    struct ck_ksvtopo_report rep;

    CHECK_OK(ck_ksvtopo_parse(text, strlen(text), "test", &t, &rep));
    return t;
}

/* Starts (or restarts, after a "crash") the core on the fixture's store. */
static int
core_up(struct fx *f, const char *text)
{
    struct ksv_params p;
    int rc;

    memset(&p, 0, sizeof(p));
    p.name = "ksv1";
    p.service = ck_keyset_service(f->ks);
    p.key_fn = ck_keyset_key_fn;
    p.key_arg = f->ks;
    p.store = f->st;
    p.crash = f->crash;
    p.batch_size = f->batch_size;
    p.batch_interval_ms = f->batch_interval_ms;
    p.no_start_nudge = false;
    p.cb.arg = f;
    p.cb.send = cb_send;
    p.cb.send_mcast = cb_mcast;
    p.cb.log = cb_log;
    p.cb.crash = cb_crash;
    if ((rc = ksv_core_new(&p, topo(text), &f->k)) != 0)
        return rc;
    return ksv_core_start(f->k, f->now);
}

static void
fx_up(struct fx *f, const char *text)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/ck-ksv-test.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        abort();
    snprintf(f->db, sizeof(f->db), "%s/ksv.db", f->dir);
    snprintf(f->keytab, sizeof(f->keytab), "%s/ksv.keytab", f->dir);
    CHECK_OK(ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &f->service_key));
    write_keytab(f);
    CHECK_OK(ck_keyset_new(f->keytab, NULL, &f->ks));
    CHECK_OK(ck_ksv_store_open(f->db, NULL, true, &f->st));
    ck_now(&f->now, NULL);
    f->now *= 1000;
    CHECK_OK(core_up(f, text));
}

/* A crash (kill -9): the core goes without any cleanup of its own state in the store. */
static void
fx_restart(struct fx *f, const char *text)
{
    ksv_core_free(f->k);
    f->k = NULL;
    ck_ksv_store_close(f->st);
    f->st = NULL;
    CHECK_OK(ck_ksv_store_open(f->db, NULL, false, &f->st));
    f->crashed_at[0] = '\0';
    CHECK_OK(core_up(f, text));
}

static void
fx_down(struct fx *f)
{
    char path[200];
    static const char *const files[] = {"ksv.db", "ksv.db.key", "ksv.db-wal", "ksv.db-shm",
                                        "ksv.keytab"};

    ksv_core_free(f->k);
    ck_ksv_store_close(f->st);
    ck_keyset_free(f->ks);
    ck_key_clear(&f->service_key);
    for (size_t i = 0; i < f->n_sent; i++)
        free(f->sent[i].buf);
    free(f->sent);
    free(f->logs);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    rmdir(f->dir);
}

static void
advance(struct fx *f, int64_t ms)
{
    int64_t end = f->now + ms;

    /* Step through every timer on the way, as the daemon's timerfd would. */
    for (int guard = 0; guard < 100000; guard++) {
        int64_t t = ksv_core_next_timeout_ms(f->k, f->now);
        if (t < 0 || f->now + t > end)
            break;
        f->now += t;
        CHECK_OK(ksv_core_on_timer(f->k, f->now));
        if (f->k->crashed)
            return;
        if (t == 0 && ksv_core_next_timeout_ms(f->k, f->now) == 0)
            break; /* still due at once: the final tick below */
    }
    f->now = end;
    CHECK_OK(ksv_core_on_timer(f->k, f->now));
}

/* ---- a node played by the test ------------------------------------------------------------- */

struct tgroup {
    uint32_t id;
    uint64_t epoch;
    uint32_t root_version;
    uint8_t keying;
    struct lkh_member m;
    uint8_t sign_pub[32];
    uint8_t ek_key[LKH_KEY_LEN];
    bool removed;
};

struct tnode {
    char name[16];
    struct sockaddr_in addr;
    ck_creds *creds;
    struct ck_ksv_hello_ctx ctx;
    struct ck_ksv_seal seal;
    bool up;
    size_t seen;          /* sent[] index read up to */
    size_t mseen;         /* multicast read up to */
    uint32_t msg_id;
    struct tgroup g[4];
    size_t n_g;
};

static ck_creds *
make_creds(struct fx *f, const char *node, int64_t start, int64_t end)
{
    static const char *const svc[] = {"ksv", "ksv1.test"};
    const char *cl[] = {"host", node};
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
    CHECK_OK(ck_ticket_seal(tkt, etp, &f->service_key, 2));
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

static void
tn_init(struct fx *f, struct tnode *n, const char *name, const char *addr)
{
    memset(n, 0, sizeof(*n));
    ck_strlcpy(n->name, name, sizeof(n->name));
    n->addr.sin_family = AF_INET;
    n->addr.sin_port = htons(40000);
    inet_pton(AF_INET, addr, &n->addr.sin_addr);
    n->creds = make_creds(f, name, f->now / 1000 - 10, f->now / 1000 + 36000);
    n->seen = f->n_sent;
    n->mseen = f->n_sent;
}

static void
tn_free(struct tnode *n)
{
    ck_creds_free(n->creds);
    ck_ksv_hello_ctx_clear(&n->ctx);
    ck_ksv_seal_clear(&n->seal);
    for (size_t i = 0; i < n->n_g; i++)
        lkh_member_clear(&n->g[i].m);
    memset(n, 0, sizeof(*n));
}

static bool
to_node(const struct sent *s, const struct tnode *n)
{
    return !s->mcast && s->to.sin_addr.s_addr == n->addr.sin_addr.s_addr;
}

static int
kind_of(const struct sent *s)
{
    enum ck_ksv_kind k;

    return ck_ksv_wire_kind(s->buf, s->len, &k) == 0 ? (int)k : -1;
}

/* HELLO -> HELLO_REP (or HELLO_ERR: *err gets its code). */
static int
tn_hello(struct fx *f, struct tnode *n, uint16_t *err)
{
    uint8_t *h = NULL;
    size_t hl = 0;
    int rc = CK_ERR_NOTFOUND;

    *err = 0;
    ck_ksv_hello_ctx_clear(&n->ctx);
    CHECK_OK(ck_ksv_hello_build(n->creds, n->name, f->now / 1000, &n->ctx, &h, &hl));
    n->seen = f->n_sent;
    CHECK_OK(ksv_core_on_datagram(f->k, h, hl, (struct sockaddr *)&n->addr, sizeof(n->addr),
                                  f->now));
    free(h);
    for (size_t i = n->seen; i < f->n_sent; i++) {
        struct sent *s = &f->sent[i];
        int32_t krb = 0;
        if (!to_node(s, n))
            continue;
        if (kind_of(s) == CK_KSV_K_HELLO_REP) {
            ck_ksv_seal_clear(&n->seal);
            rc = ck_ksv_hello_rep_open(&n->ctx, s->buf, s->len, &n->seal, &krb);
            n->up = rc == 0;
            n->seen = i + 1;
            return rc;
        }
        if (kind_of(s) == CK_KSV_K_HELLO_ERR) {
            uint32_t nonce;
            char text[CK_KSV_MAX_TEXT + 1];
            CHECK_OK(ck_ksv_hello_err_parse(s->buf, s->len, &nonce, err, text));
            n->seen = i + 1;
            return CK_ERR_PERM;
        }
    }
    return rc;
}

/* The sealed messages sent to n since last time, opened (at most max). */
static size_t
tn_msgs(struct fx *f, struct tnode *n, struct ck_ksv_msg **out, size_t max)
{
    size_t got = 0;

    for (; n->seen < f->n_sent; n->seen++) {
        struct sent *s = &f->sent[n->seen];
        struct ck_ksv_msg *m = NULL;
        if (!to_node(s, n) || kind_of(s) != CK_KSV_K_SEALED)
            continue;
        CHECK_OK(ck_ksv_open_msg(&n->seal, s->buf, s->len, &m));
        if (m != NULL && got < max)
            out[got++] = m;
        else
            ck_ksv_msg_free(m);
    }
    return got;
}

static void
msgs_free(struct ck_ksv_msg **m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_ksv_msg_free(m[i]);
}

/* Counts datagrams of a kind sent to n since index from. */
static size_t
count_to(struct fx *f, const struct tnode *n, size_t from, int kind)
{
    size_t c = 0;

    for (size_t i = from; i < f->n_sent; i++)
        if (to_node(&f->sent[i], n) && kind_of(&f->sent[i]) == kind)
            c++;
    return c;
}

static void
tn_send(struct fx *f, struct tnode *n, struct ck_ksv_msg *m)
{
    uint8_t *b = NULL;
    size_t len = 0;

    m->key_id = n->seal.key_id;
    m->msg_id = ++n->msg_id;
    m->timestamp = (uint64_t)f->now * 1000;
    CHECK_OK(ck_ksv_seal_msg(&n->seal, m, &b, &len));
    CHECK_OK(ksv_core_on_datagram(f->k, b, len, (struct sockaddr *)&n->addr, sizeof(n->addr),
                                  f->now));
    free(b);
}

static void
tn_ack(struct fx *f, struct tnode *n, const struct ck_ksv_msg *acked)
{
    struct ck_ksv_msg *m = NULL;

    CHECK_OK(ck_ksv_msg_new(CK_KSV_ACK, &m));
    m->reflected_ts = acked->timestamp;
    m->acked_msg_id = acked->msg_id;
    tn_send(f, n, m);
    ck_ksv_msg_free(m);
}

/* Takes a REGISTER's groups as the node agent would: the path, leaf first. */
static void
tn_take_groups(struct tnode *n, const struct ck_ksv_msg *m)
{
    for (size_t i = 0; i < m->n_groups; i++) {
        const struct ck_ksv_group *g = &m->groups[i];
        struct tgroup *tg = NULL;
        for (size_t j = 0; j < n->n_g; j++)
            if (n->g[j].id == g->group_id)
                tg = &n->g[j];
        if (tg == NULL) {
            if (n->n_g == 4)
                continue;
            tg = &n->g[n->n_g++];
        }
        memset(tg, 0, sizeof(*tg));
        tg->id = g->group_id;
        tg->epoch = g->epoch;
        tg->root_version = g->root_version;
        tg->keying = g->keying;
        memcpy(tg->sign_pub, g->sign_pub, 32);
        if (g->keying == CK_KSV_KEYING_EK) {
            memcpy(tg->ek_key, g->keys[0].key, LKH_KEY_LEN);
            continue;
        }
        tg->m.member_id = g->member_index;
        tg->m.degree = g->degree;
        tg->m.height = g->id_len;
        for (uint32_t l = 0; l < g->n_keys; l++) {
            uint32_t j = g->id_len - g->keys[l].level;
            tg->m.path[j].node = g->keys[l].node;
            tg->m.path[j].version = g->keys[l].version;
            memcpy(tg->m.path[j].key, g->keys[l].key, LKH_KEY_LEN);
        }
    }
}

/* Registers n and ACKs everything: the messages of the registration, returned. */
static size_t
tn_register(struct fx *f, struct tnode *n, struct ck_ksv_msg **out, size_t max, bool ack)
{
    uint16_t err = 0;
    size_t got;

    CHECK_OK(tn_hello(f, n, &err));
    got = tn_msgs(f, n, out, max);
    for (size_t i = 0; i < got; i++) {
        tn_take_groups(n, out[i]);
        if (ack && (out[i]->flags & CK_KSV_F_ACK_REQD))
            tn_ack(f, n, out[i]);
    }
    return got;
}

static const struct ck_ksv_sa *
find_sa(const struct ck_ksv_msg *m, uint8_t dir, const char *peer)
{
    struct ck_ksv_addr a;

    CHECK_OK(ksv_addr_from_text(peer, &a));
    for (size_t i = 0; i < m->n_sas; i++)
        if (m->sas[i].direction == dir && memcmp(&m->sas[i].peer, &a, sizeof(a)) == 0)
            return &m->sas[i];
    return NULL;
}

/* Applies the multicast rekeys sent since last time: the result of the last one that touched
 * this node's group (0, or the lkh_member_apply error). */
static int
tn_rekeys(struct fx *f, struct tnode *n, struct tgroup *g, size_t *applied)
{
    int last = 0;

    *applied = 0;
    for (; n->mseen < f->n_sent; n->mseen++) {
        struct sent *s = &f->sent[n->mseen];
        struct lkh_rekey_view v;
        uint32_t leaf = g->m.path[0].node;
        int rc;
        if (!s->mcast)
            continue;
        memset(&v, 0, sizeof(v));
        if (lkh_rekey_verify(s->buf, s->len, g->sign_pub) != 0 ||
            lkh_rekey_parse(s->buf, s->len, &v) != 0) {
            last = CK_ERR_INTEGRITY;
            continue;
        }
        if (v.group_id == g->id && v.epoch > g->epoch && leaf >= v.leaf_lo && leaf <= v.leaf_hi) {
            rc = lkh_member_apply(&g->m, v.wraps, v.n_wraps);
            if (rc == 0) {
                g->epoch = v.epoch;
                g->root_version = v.root_version;
                (*applied)++;
            }
            last = rc;
        }
        lkh_rekey_view_clear(&v);
    }
    return last;
}

static void
group_key_of(struct tgroup *g, uint8_t key[LKH_KEY_LEN])
{
    if (g->keying == CK_KSV_KEYING_EK) {
        memcpy(key, g->ek_key, LKH_KEY_LEN);
        return;
    }
    CHECK_OK(lkh_member_group_key(&g->m, g->root_version, key));
}

/* ---- registration and link SAs -------------------------------------------------------------- */

static void
test_register_sas(void)
{
    struct fx f;
    struct tnode n[4];
    struct ck_ksv_msg *m[4][8];
    size_t got[4];
    const char *names[] = {"n1", "n2", "n3", "n4"};
    const char *addrs[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"};
    const struct ck_ksv_sa *a, *b;

    fx_up(&f, TOPO);
    /* At start every node served here is nudged (n5 belongs to another KSV). */
    CHECK(ksv_core_next_timeout_ms(f.k, f.now) >= 0);
    advance(&f, 1);
    for (int i = 0; i < 4; i++) {
        tn_init(&f, &n[i], names[i], addrs[i]);
        n[i].seen = 0;
        CHECK_INT_EQ(count_to(&f, &n[i], 0, CK_KSV_K_NUDGE), 1);
    }
    {
        struct tnode n5;
        tn_init(&f, &n5, "n5", "10.0.0.5");
        CHECK_INT_EQ(count_to(&f, &n5, 0, CK_KSV_K_NUDGE), 0);
        tn_free(&n5);
    }
    for (int i = 0; i < 4; i++) {
        got[i] = tn_register(&f, &n[i], m[i], 8, true);
        CHECK_INT_EQ(got[i], 1);
        CHECK(ksv_core_node_registered(f.k, names[i]));
        CHECK(m[i][0]->type == CK_KSV_REGISTER);
        CHECK(m[i][0]->flags == (CK_KSV_F_REFRESH | CK_KSV_F_ACK_REQD));
        CHECK(m[i][0]->key_id == n[i].seal.key_id && m[i][0]->key_id != 0);
    }
    CHECK_INT_EQ(ksv_core_sessions(f.k), 4);
    /* n1: OUT and IN with n2 (ESP, AES-128-GCM: 20-byte key with its salt), OUT to n3 (AH). */
    CHECK_INT_EQ(m[0][0]->n_sas, 3);
    CHECK_INT_EQ(m[1][0]->n_sas, 2);
    CHECK_INT_EQ(m[2][0]->n_sas, 1);
    CHECK_INT_EQ(m[3][0]->n_sas, 0);
    a = find_sa(m[0][0], CK_KSV_DIR_OUT, "10.0.0.2");
    b = find_sa(m[1][0], CK_KSV_DIR_IN, "10.0.0.1");
    CHECK(a != NULL && b != NULL);
    if (a != NULL && b != NULL) {
        CHECK(a->proto == CK_KSV_PROTO_ESP && a->mode == CK_KSV_MODE_TRANSPORT);
        CHECK(a->enc_alg == KSV_ENCR_AES_GCM_16 && a->enc_key_len == 20 && a->auth_alg == 0 &&
              a->auth_key_len == 0);
        CHECK(a->life_sec >= 99 && a->life_sec <= 100 && a->life_kbytes == 0);
        CHECK(a->spi >= CK_KSV_MIN_SPI && a->spi == b->spi);
        CHECK_MEM_EQ(a->enc_key, a->enc_key_len, b->enc_key, b->enc_key_len);
    }
    a = find_sa(m[0][0], CK_KSV_DIR_IN, "10.0.0.2");
    b = find_sa(m[1][0], CK_KSV_DIR_OUT, "10.0.0.1");
    CHECK(a != NULL && b != NULL);
    if (a != NULL && b != NULL) {
        CHECK(a->spi == b->spi && a->enc_key_len == 20);
        CHECK_MEM_EQ(a->enc_key, 20, b->enc_key, 20);
        /* The two directions are two SAs with their own keys. */
        CHECK(memcmp(a->enc_key, find_sa(m[0][0], CK_KSV_DIR_OUT, "10.0.0.2")->enc_key, 20) != 0);
    }
    a = find_sa(m[0][0], CK_KSV_DIR_OUT, "10.0.0.3");
    b = find_sa(m[2][0], CK_KSV_DIR_IN, "10.0.0.1");
    CHECK(a != NULL && b != NULL);
    if (a != NULL && b != NULL) {
        CHECK(a->proto == CK_KSV_PROTO_AH && a->enc_alg == 0 && a->enc_key_len == 0);
        CHECK(a->auth_alg == KSV_AUTH_HMAC_SHA2_256_128 && a->auth_key_len == 32);
        CHECK(a->life_sec >= 199 && a->life_sec <= 200 && a->spi == b->spi);
        CHECK_MEM_EQ(a->auth_key, 32, b->auth_key, 32);
    }
    /* => is one way: n3 sends nothing to n1. */
    CHECK(find_sa(m[2][0], CK_KSV_DIR_OUT, "10.0.0.1") == NULL);
    /* Every member got the group, with its own path under one group key. */
    for (int i = 0; i < 4; i++) {
        CHECK_INT_EQ(m[i][0]->n_groups, 1);
        CHECK(m[i][0]->groups[0].keying == CK_KSV_KEYING_LKH);
        CHECK(m[i][0]->groups[0].gflags == CK_KSV_GF_WANT_ACK);
        CHECK(m[i][0]->groups[0].mcast_port == KSV_DEFAULT_MCAST_PORT);
        CHECK(m[i][0]->groups[0].spi >= CK_KSV_STORE_GROUP_SPI_MIN);
        CHECK_INT_EQ(m[i][0]->groups[0].root_version, m[i][0]->groups[0].keys[0].version);
        /* aes-128-gcm: the key and its salt, no integrity key. */
        CHECK_INT_EQ(m[i][0]->groups[0].enc_alg, KSV_ENCR_AES_GCM_16);
        CHECK_INT_EQ(m[i][0]->groups[0].enc_key_len, 20);
        CHECK_INT_EQ(m[i][0]->groups[0].auth_key_len, 0);
    }
    {
        uint8_t k0[LKH_KEY_LEN], k1[LKH_KEY_LEN];
        /* Joins hash forward: the latest joiner's version is the newest; earlier members reach
         * it by hashing forward. */
        uint32_t v = n[3].g[0].root_version;
        CHECK_OK(lkh_member_group_key(&n[3].g[0].m, v, k0));
        for (int i = 0; i < 3; i++) {
            CHECK_OK(lkh_member_group_key(&n[i].g[0].m, v, k1));
            CHECK_MEM_EQ(k0, LKH_KEY_LEN, k1, LKH_KEY_LEN);
        }
    }
    CHECK_INT_EQ(logged(&f, "ksv register node=n1 ", "sas=3 groups=1 result=ok", NULL), 1);
    CHECK_INT_EQ(logged(&f, "ksv sa link=n1=>n2 ", "gen=1 action=push", NULL), 1);
    /* Everything was acknowledged: no retransmission however long we wait (below re-key). */
    {
        size_t before = f.n_sent;
        advance(&f, 40000);
        CHECK_INT_EQ(count_to(&f, &n[0], before, CK_KSV_K_SEALED), 0);
    }
    for (int i = 0; i < 4; i++) {
        msgs_free(m[i], got[i]);
        tn_free(&n[i]);
    }
    fx_down(&f);
}

/* Unregistered nodes are nudged at start, then after 2, 4, 8 ... s; a session ends with its
 * ticket, and the node is nudged to come back. */
static void
test_nudges_and_session_end(void)
{
    struct fx f;
    struct tnode n1, n2;
    struct ck_ksv_msg *m[8];
    uint64_t ts = 0;
    char name[CK_KSV_MAX_NAME + 1];
    size_t got;

    fx_up(&f, TOPO);
    tn_init(&f, &n1, "n1", "10.0.0.1");
    tn_init(&f, &n2, "n2", "10.0.0.2");
    n1.seen = n2.seen = 0;
    advance(&f, 0); /* the start's nudges go at the first timer */
    CHECK_INT_EQ(count_to(&f, &n2, 0, CK_KSV_K_NUDGE), 1);
    for (size_t i = 0; i < f.n_sent; i++)
        if (to_node(&f.sent[i], &n2) && kind_of(&f.sent[i]) == CK_KSV_K_NUDGE) {
            CHECK_OK(ck_ksv_nudge_parse(f.sent[i].buf, f.sent[i].len, &ts, name));
            CHECK(strcmp(name, "ksv1") == 0 && ts == (uint64_t)f.now * 1000);
            CHECK_INT_EQ(ntohs(f.sent[i].to.sin_port), KSV_DEFAULT_NODE_PORT);
        }
    advance(&f, 1999);
    CHECK_INT_EQ(count_to(&f, &n2, 0, CK_KSV_K_NUDGE), 1);
    advance(&f, 1);
    CHECK_INT_EQ(count_to(&f, &n2, 0, CK_KSV_K_NUDGE), 2);
    advance(&f, 4000);
    CHECK_INT_EQ(count_to(&f, &n2, 0, CK_KSV_K_NUDGE), 3);
    advance(&f, 8000);
    CHECK_INT_EQ(count_to(&f, &n2, 0, CK_KSV_K_NUDGE), 4);
    /* n1 registers with a ticket that ends in 60 s: no more nudges, then the session ends. */
    ck_creds_free(n1.creds);
    n1.creds = make_creds(&f, "n1", f.now / 1000 - 10, f.now / 1000 + 60);
    got = tn_register(&f, &n1, m, 8, true);
    msgs_free(m, got);
    {
        size_t before = f.n_sent;
        advance(&f, 59000);
        CHECK(ksv_core_node_registered(f.k, "n1"));
        CHECK_INT_EQ(count_to(&f, &n1, before, CK_KSV_K_NUDGE), 0);
        advance(&f, 2000);
        CHECK(!ksv_core_node_registered(f.k, "n1"));
        CHECK_INT_EQ(count_to(&f, &n1, before, CK_KSV_K_NUDGE), 1);
        CHECK_INT_EQ(ksv_core_sessions(f.k), 0);
    }
    tn_free(&n1);
    tn_free(&n2);
    fx_down(&f);
}

/* ACK_REQD: resent at 1, 2, 4, 8 s (5 sends), then a NO_ACK alarm; each resend is the same
 * message (msg_id, timestamp) under a new sequence number. */
static void
test_retransmit(void)
{
    struct fx f;
    struct tnode n1;
    struct ck_ksv_msg *m[8], *r[8];
    struct ck_ksv_alarm_row *al = NULL;
    size_t got, nr, n_al = 0, start;

    fx_up(&f, TOPO);
    tn_init(&f, &n1, "n1", "10.0.0.1");
    got = tn_register(&f, &n1, m, 8, false);
    CHECK_INT_EQ(got, 1);
    start = f.n_sent;
    advance(&f, 999);
    CHECK_INT_EQ(count_to(&f, &n1, start, CK_KSV_K_SEALED), 0);
    advance(&f, 1);
    nr = tn_msgs(&f, &n1, r, 8);
    CHECK_INT_EQ(nr, 1);
    if (nr == 1 && got == 1) {
        CHECK(r[0]->msg_id == m[0]->msg_id && r[0]->timestamp == m[0]->timestamp);
        CHECK(r[0]->flags == m[0]->flags && r[0]->n_sas == 3);
    }
    msgs_free(r, nr);
    advance(&f, 2000 + 4000 + 8000);
    CHECK_INT_EQ(count_to(&f, &n1, start, CK_KSV_K_SEALED), 4);
    CHECK_INT_EQ(logged(&f, "type=NO_ACK", NULL), 0);
    advance(&f, 15999);
    CHECK_INT_EQ(logged(&f, "type=NO_ACK", NULL), 0);
    advance(&f, 1);
    CHECK_INT_EQ(count_to(&f, &n1, start, CK_KSV_K_SEALED), 4);
    CHECK_INT_EQ(logged(&f, "ksv alarm node=n1 type=NO_ACK", NULL), 1);
    CHECK_OK(ck_ksv_store_alarm_list(f.st, 10, &al, &n_al));
    CHECK(n_al >= 1 && strcmp(al[0].type, "NO_ACK") == 0 && strcmp(al[0].node, "n1") == 0);
    free(al);
    /* A late ACK for the given-up message changes nothing; an ACK with the wrong reflected
     * timestamp does not count. */
    tn_msgs(&f, &n1, r, 0);
    tn_ack(&f, &n1, m[0]);
    msgs_free(m, got);
    tn_free(&n1);
    fx_down(&f);
}

/* An ACK stops the resends; a wrong reflected timestamp does not. */
static void
test_ack_matching(void)
{
    struct fx f;
    struct tnode n1;
    struct ck_ksv_msg *m[8], *r[8];
    size_t got, start, nr;

    fx_up(&f, TOPO);
    tn_init(&f, &n1, "n1", "10.0.0.1");
    got = tn_register(&f, &n1, m, 8, false);
    CHECK_INT_EQ(got, 1);
    m[0]->timestamp ^= 1;
    tn_ack(&f, &n1, m[0]);
    m[0]->timestamp ^= 1;
    start = f.n_sent;
    advance(&f, 1000);
    CHECK_INT_EQ(count_to(&f, &n1, start, CK_KSV_K_SEALED), 1);
    nr = tn_msgs(&f, &n1, r, 8);
    msgs_free(r, nr);
    tn_ack(&f, &n1, m[0]);
    start = f.n_sent;
    advance(&f, 30000);
    CHECK_INT_EQ(count_to(&f, &n1, start, CK_KSV_K_SEALED), 0);
    msgs_free(m, got);
    tn_free(&n1);
    fx_down(&f);
}

/* 75 % of LIFE-SEC: a new generation (new SPI, new keys) to both ends without REFRESH; the old
 * one deleted at its expiry. SA_EXPIRED re-keys at once. */
static void
test_rekey_and_expiry(void)
{
    struct fx f;
    struct tnode n1, n2;
    struct ck_ksv_msg *m1[8], *m2[8], *r[16];
    size_t g1, g2, nr;
    uint32_t old_spi = 0;

    fx_up(&f, TOPO);
    tn_init(&f, &n1, "n1", "10.0.0.1");
    tn_init(&f, &n2, "n2", "10.0.0.2");
    g1 = tn_register(&f, &n1, m1, 8, true);
    g2 = tn_register(&f, &n2, m2, 8, true);
    if (g1 == 1 && find_sa(m1[0], CK_KSV_DIR_OUT, "10.0.0.2") != NULL)
        old_spi = find_sa(m1[0], CK_KSV_DIR_OUT, "10.0.0.2")->spi;
    advance(&f, 74000);
    nr = tn_msgs(&f, &n2, r, 16);
    CHECK_INT_EQ(nr, 0);
    advance(&f, 1500);
    nr = tn_msgs(&f, &n2, r, 16);
    CHECK_INT_EQ(nr, 2); /* both directions of n1 <-> n2 */
    for (size_t i = 0; i < nr; i++) {
        CHECK(r[i]->type == CK_KSV_REGISTER && r[i]->flags == CK_KSV_F_ACK_REQD &&
              r[i]->n_sas == 1);
        CHECK(r[i]->sas[0].spi != old_spi);
        tn_ack(&f, &n2, r[i]);
    }
    msgs_free(r, nr);
    nr = tn_msgs(&f, &n1, r, 16);
    CHECK_INT_EQ(nr, 2);
    for (size_t i = 0; i < nr; i++)
        tn_ack(&f, &n1, r[i]);
    msgs_free(r, nr);
    CHECK_INT_EQ(logged(&f, "ksv sa link=n1=>n2 ", "gen=2 action=rekey", NULL), 1);
    /* Expiry of generation 1 (100 s): DELETE of the old SPI, to both ends. */
    advance(&f, 25000);
    nr = tn_msgs(&f, &n1, r, 16);
    CHECK_INT_EQ(nr, 2);
    {
        bool seen_old = false;
        for (size_t i = 0; i < nr; i++) {
            CHECK(r[i]->type == CK_KSV_DELETE && r[i]->n_deletes == 1);
            if (r[i]->deletes[0].spi == old_spi && r[i]->deletes[0].direction == CK_KSV_DIR_OUT)
                seen_old = true;
            tn_ack(&f, &n1, r[i]);
        }
        CHECK(seen_old);
    }
    msgs_free(r, nr);
    nr = tn_msgs(&f, &n2, r, 16);
    for (size_t i = 0; i < nr; i++)
        tn_ack(&f, &n2, r[i]);
    msgs_free(r, nr);
    CHECK_INT_EQ(logged(&f, "ksv sa link=n1=>n2 ", "gen=1 action=delete", NULL), 1);
    /* SA_EXPIRED from n2 for its inbound SA: that link is re-keyed at once. */
    {
        struct ck_ksv_msg *al = NULL;
        uint32_t spi = 0;
        for (size_t i = 0; i < f.k->n_sas; i++)
            if (strcmp(f.k->sas[i].row.src, "n1") == 0 && strcmp(f.k->sas[i].row.dst, "n2") == 0 &&
                !f.k->sas[i].superseded)
                spi = f.k->sas[i].row.spi;
        CHECK_OK(ck_ksv_msg_new(CK_KSV_ALARM, &al));
        al->alarm = CK_KSV_ALARM_SA_EXPIRED;
        al->alarm_spi = spi;
        CHECK_OK(ksv_addr_from_text("10.0.0.1", &al->alarm_peer));
        tn_send(&f, &n2, al);
        ck_ksv_msg_free(al);
        CHECK_INT_EQ(logged(&f, "ksv alarm node=n2 type=SA_EXPIRED", NULL), 1);
        CHECK_INT_EQ(logged(&f, "ksv sa link=n1=>n2 ", "gen=3 action=rekey", NULL), 1);
    }
    msgs_free(m1, g1);
    msgs_free(m2, g2);
    tn_free(&n1);
    tn_free(&n2);
    fx_down(&f);
}

/* Refusals: a client that is not the node, a node bound to another KSV, an unknown node. A
 * sealed datagram under an unknown key id gets a NUDGE. */
static void
test_refusals(void)
{
    struct fx f;
    struct tnode n5, bad;
    uint16_t err = 0;
    uint8_t junk[64];
    size_t start;

    fx_up(&f, TOPO);
    tn_init(&f, &n5, "n5", "10.0.0.5");
    CHECK_INT_EQ(tn_hello(&f, &n5, &err), CK_ERR_PERM);
    CHECK_INT_EQ(err, CK_KSV_HERR_NOT_HERE);
    tn_init(&f, &bad, "n9", "10.0.0.9");
    CHECK_INT_EQ(tn_hello(&f, &bad, &err), CK_ERR_PERM);
    CHECK_INT_EQ(err, CK_KSV_HERR_UNKNOWN);
    /* n1's name with n2's ticket. */
    ck_creds_free(bad.creds);
    bad.creds = make_creds(&f, "n2", f.now / 1000 - 10, f.now / 1000 + 3600);
    ck_strlcpy(bad.name, "n1", sizeof(bad.name));
    CHECK_INT_EQ(tn_hello(&f, &bad, &err), CK_ERR_PERM);
    CHECK_INT_EQ(err, CK_KSV_HERR_UNKNOWN);
    CHECK_INT_EQ(ksv_core_sessions(f.k), 0);
    CHECK(logged(&f, "result=not-here", NULL) == 1 && logged(&f, "result=unknown-node", NULL) == 2);
    /* Unknown key id. */
    memset(junk, 0, sizeof(junk));
    memcpy(junk, "CKSV", 4);
    junk[4] = CK_KSV_WIRE_VERSION;
    junk[5] = CK_KSV_K_SEALED;
    junk[8] = 0x12;
    junk[19] = 1; /* sequence number 1 */
    start = f.n_sent;
    CHECK_OK(ksv_core_on_datagram(f.k, junk, sizeof(junk), (struct sockaddr *)&bad.addr,
                                  sizeof(bad.addr), f.now));
    CHECK_INT_EQ(count_to(&f, &bad, start, CK_KSV_K_NUDGE), 1);
    tn_free(&n5);
    tn_free(&bad);
    fx_down(&f);
}

/* A reload that removes a link: DELETE to both ends; one that adds a link: a REGISTER to both. */
static void
test_reload_links(void)
{
    struct fx f;
    struct tnode n1, n3;
    struct ck_ksv_msg *m[8], *r[8];
    size_t g1, g3, nr;
    char *t2 = NULL;
    const char *cut;
    uint32_t spi = 0;

    fx_up(&f, TOPO);
    tn_init(&f, &n1, "n1", "10.0.0.1");
    tn_init(&f, &n3, "n3", "10.0.0.3");
    g1 = tn_register(&f, &n1, m, 8, true);
    if (g1 == 1 && find_sa(m[0], CK_KSV_DIR_OUT, "10.0.0.3") != NULL)
        spi = find_sa(m[0], CK_KSV_DIR_OUT, "10.0.0.3")->spi;
    msgs_free(m, g1);
    g3 = tn_register(&f, &n3, m, 8, true);
    msgs_free(m, g3);
    /* Without "n1 => n3 auth", and with "n3 => n4 auth". */
    t2 = strdup(TOPO);
    cut = strstr(t2, "n1 => n3 auth\n");
    memcpy((char *)cut, "n3 => n4 auth\n", 14);
    CHECK_OK(ksv_core_reload(f.k, topo(t2), f.now));
    nr = tn_msgs(&f, &n1, r, 8);
    CHECK_INT_EQ(nr, 1);
    if (nr == 1) {
        CHECK(r[0]->type == CK_KSV_DELETE && r[0]->n_deletes == 1);
        CHECK(r[0]->deletes[0].spi == spi && r[0]->deletes[0].direction == CK_KSV_DIR_OUT);
        CHECK(r[0]->flags & CK_KSV_F_ACK_REQD);
    }
    msgs_free(r, nr);
    nr = tn_msgs(&f, &n3, r, 8);
    CHECK_INT_EQ(nr, 2);
    {
        bool del = false, reg = false;
        for (size_t i = 0; i < nr; i++) {
            if (r[i]->type == CK_KSV_DELETE && r[i]->deletes[0].spi == spi &&
                r[i]->deletes[0].direction == CK_KSV_DIR_IN)
                del = true;
            /* "auth" has no ACK-REQD: the push asks for none. */
            if (r[i]->type == CK_KSV_REGISTER && r[i]->n_sas == 1 &&
                r[i]->sas[0].direction == CK_KSV_DIR_OUT && r[i]->flags == 0)
                reg = true;
        }
        CHECK(del && reg);
    }
    msgs_free(r, nr);
    CHECK_INT_EQ(logged(&f, "ksv sa link=n1=>n3 ", "action=delete", NULL), 1);
    /* A reload of the same text pushes nothing. */
    {
        size_t before = f.n_sent;
        CHECK_OK(ksv_core_reload(f.k, topo(t2), f.now));
        CHECK_INT_EQ(count_to(&f, &n1, before, CK_KSV_K_SEALED) +
                         count_to(&f, &n3, before, CK_KSV_K_SEALED), 0);
    }
    free(t2);
    tn_free(&n1);
    tn_free(&n3);
    fx_down(&f);
}

/* A reload that moves the group to another address: every registered member gets the group
 * again (unicast, no REFRESH) with the new address; a member removed from the group leaves in
 * the next batch; one added joins at once. */
static void
test_reload_group(void)
{
    struct fx f;
    struct tnode n[4];
    struct ck_ksv_msg *m[8];
    const char *names[] = {"n1", "n2", "n3", "n4"};
    const char *addrs[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"};
    char *t2 = strdup(TOPO), *p;
    struct ck_ksv_addr want;
    size_t got;
    uint32_t mid;

    fx_up(&f, TOPO);
    for (int i = 0; i < 4; i++) {
        tn_init(&f, &n[i], names[i], addrs[i]);
        got = tn_register(&f, &n[i], m, 8, true);
        msgs_free(m, got);
    }
    p = strstr(t2, "239.1.1.1");
    p[8] = '2';
    p = strstr(t2, "members = n1 n2 n3 n4");
    memcpy(p, "members = n1 n2 n3   ", 21);
    CHECK_OK(ksv_core_reload(f.k, topo(t2), f.now));
    CHECK_OK(ksv_addr_from_text("239.1.1.2", &want));
    for (int i = 0; i < 3; i++) {
        got = tn_msgs(&f, &n[i], m, 8);
        CHECK_INT_EQ(got, 1);
        if (got == 1) {
            CHECK(m[0]->type == CK_KSV_REGISTER && m[0]->n_groups == 1 &&
                  !(m[0]->flags & CK_KSV_F_REFRESH));
            CHECK(memcmp(&m[0]->groups[0].mcast, &want, sizeof(want)) == 0);
            tn_ack(&f, &n[i], m[0]);
        }
        msgs_free(m, got);
    }
    CHECK_INT_EQ(logged(&f, "ksv leave queued group=g1 node=n4", NULL), 1);
    advance(&f, 1100);
    CHECK_INT_EQ(logged(&f, "ksv rekey group=g1 ", "leaves=1", NULL), 1);
    CHECK(ksv_core_member_id(f.k, "g1", "n4", &mid) == CK_ERR_NOTFOUND);
    /* Back in the topology (not revoked): n4 joins at once and gets the group. */
    for (int i = 0; i < 4; i++)
        msgs_free(m, tn_msgs(&f, &n[i], m, 8));
    p = strstr(t2, "members = n1 n2 n3   ");
    memcpy(p, "members = n1 n2 n3 n4", 21);
    CHECK_OK(ksv_core_reload(f.k, topo(t2), f.now));
    CHECK_OK(ksv_core_member_id(f.k, "g1", "n4", &mid));
    got = tn_msgs(&f, &n[3], m, 8);
    CHECK(got == 1 && m[0]->n_groups == 1 && m[0]->groups[0].member_index == mid);
    msgs_free(m, got);
    free(t2);
    for (int i = 0; i < 4; i++)
        tn_free(&n[i]);
    fx_down(&f);
}

/* ---- groups -------------------------------------------------------------------------------- */

/* Revoking n4 (through the CLI's path: a second store handle): one batch, one signed datagram
 * that n1..n3 open with the member code and n4 cannot; a reload does not re-admit n4. */
static void
test_revoke_batch(void)
{
    struct fx f;
    struct tnode n[4];
    struct ck_ksv_msg *m[8];
    struct ck_ksv_store *cli = NULL;
    const char *names[] = {"n1", "n2", "n3", "n4"};
    const char *addrs[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"};
    uint8_t before[LKH_KEY_LEN], key[LKH_KEY_LEN], other[LKH_KEY_LEN];
    uint64_t epoch0 = 0, epoch1 = 0;
    size_t got, applied, mstart;
    uint32_t mid;

    fx_up(&f, TOPO);
    for (int i = 0; i < 4; i++) {
        tn_init(&f, &n[i], names[i], addrs[i]);
        got = tn_register(&f, &n[i], m, 8, true);
        msgs_free(m, got);
    }
    CHECK_OK(ksv_core_group_epoch(f.k, "g1", &epoch0));
    group_key_of(&n[3].g[0], before);
    mstart = f.n_sent;
    for (int i = 0; i < 4; i++)
        n[i].mseen = mstart;
    CHECK_OK(ck_ksv_store_open(f.db, NULL, false, &cli));
    CHECK_OK(ck_ksv_store_revoke(cli, "g1", "n4", "test", f.now / 1000));
    advance(&f, 300); /* the store poll sees it and queues the leave */
    CHECK_INT_EQ(logged(&f, "ksv leave queued group=g1 node=n4", NULL), 1);
    CHECK_INT_EQ(f.n_sent - mstart, 0);
    advance(&f, 1000); /* batch interval */
    CHECK_OK(ksv_core_group_epoch(f.k, "g1", &epoch1));
    CHECK_INT_EQ(epoch1, epoch0 + 1);
    CHECK_INT_EQ(logged(&f, "ksv rekey group=g1 ", "mode=lkh leaves=1 joins=0", "dgrams=1", NULL),
                 1);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(tn_rekeys(&f, &n[i], &n[i].g[0], &applied));
        CHECK_INT_EQ(applied, 1);
        CHECK_INT_EQ(n[i].g[0].epoch, epoch1);
    }
    group_key_of(&n[0].g[0], key);
    for (int i = 1; i < 3; i++) {
        group_key_of(&n[i].g[0], other);
        CHECK_MEM_EQ(key, LKH_KEY_LEN, other, LKH_KEY_LEN);
    }
    CHECK(memcmp(key, before, LKH_KEY_LEN) != 0);
    /* The revoked member holds the old path: the datagram has no wrap it can open. */
    {
        int rc = tn_rekeys(&f, &n[3], &n[3].g[0], &applied);
        CHECK(rc == CK_ERR_PERM || rc == CK_ERR_INTEGRITY);
        CHECK_INT_EQ(applied, 0);
    }
    CHECK(ksv_core_member_id(f.k, "g1", "n4", &mid) == CK_ERR_NOTFOUND);
    /* GROUP_ACKs from n1 and n2; n3 stays silent and gets its path by unicast after 2 s. */
    for (int i = 0; i < 2; i++) {
        struct ck_ksv_msg *a = NULL;
        CHECK_OK(ck_ksv_msg_new(CK_KSV_GROUP_ACK, &a));
        a->grp_id = n[i].g[0].id;
        a->grp_epoch = epoch1;
        tn_send(&f, &n[i], a);
        ck_ksv_msg_free(a);
    }
    for (int i = 0; i < 4; i++)
        msgs_free(m, tn_msgs(&f, &n[i], m, 8));
    advance(&f, 2100);
    CHECK_INT_EQ(tn_msgs(&f, &n[0], m, 8), 0);
    got = tn_msgs(&f, &n[2], m, 8);
    CHECK_INT_EQ(got, 1);
    if (got == 1) {
        CHECK(m[0]->type == CK_KSV_REGISTER && m[0]->n_groups == 1 && m[0]->n_sas == 0 &&
              !(m[0]->flags & CK_KSV_F_REFRESH) && m[0]->groups[0].epoch == epoch1);
        tn_take_groups(&n[2], m[0]);
        group_key_of(&n[2].g[0], other);
        CHECK_MEM_EQ(key, LKH_KEY_LEN, other, LKH_KEY_LEN);
    }
    msgs_free(m, got);
    CHECK_INT_EQ(tn_msgs(&f, &n[3], m, 8), 0);
    /* RECOVER: the current path by unicast; from the revoked n4, nothing. */
    for (int i = 0; i < 4; i += 3) {
        struct ck_ksv_msg *a = NULL;
        CHECK_OK(ck_ksv_msg_new(CK_KSV_RECOVER, &a));
        a->grp_id = n[i].g[0].id;
        a->grp_epoch = epoch0;
        tn_send(&f, &n[i], a);
        ck_ksv_msg_free(a);
        got = tn_msgs(&f, &n[i], m, 8);
        CHECK_INT_EQ(got, i == 0 ? 1 : 0);
        if (got == 1) {
            CHECK(m[0]->n_groups == 1 && m[0]->groups[0].epoch == epoch1);
            CHECK(m[0]->groups[0].member_index == n[0].g[0].m.member_id);
        }
        msgs_free(m, got);
    }
    /* Reload and re-registration: n4 stays out until the revocation is lifted. */
    CHECK_OK(ksv_core_reload(f.k, topo(TOPO), f.now));
    CHECK(ksv_core_member_id(f.k, "g1", "n4", &mid) == CK_ERR_NOTFOUND);
    got = tn_register(&f, &n[3], m, 8, true);
    CHECK(got == 1 && m[0]->n_groups == 0);
    msgs_free(m, got);
    CHECK_OK(ck_ksv_store_revoke_lift(cli, "g1", "n4"));
    advance(&f, 300);
    CHECK_OK(ksv_core_member_id(f.k, "g1", "n4", &mid));
    got = tn_msgs(&f, &n[3], m, 8);
    CHECK(got == 1 && m[0]->n_groups == 1);
    msgs_free(m, got);
    ck_ksv_store_close(cli);
    for (int i = 0; i < 4; i++)
        tn_free(&n[i]);
    fx_down(&f);
}

/* The size trigger: with batch_size 2 and a 10 s interval, two revocations make one batch at
 * once; a single one waits for the interval. */
static void
test_batch_triggers(void)
{
    struct fx f;
    struct tnode n[4];
    struct ck_ksv_msg *m[8];
    struct ck_ksv_store *cli = NULL;
    const char *names[] = {"n1", "n2", "n3", "n4"};
    const char *addrs[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"};
    uint64_t e0 = 0, e = 0;
    size_t got;

    fx_up(&f, TOPO);
    ksv_core_free(f.k);
    f.k = NULL;
    f.batch_size = 2;
    f.batch_interval_ms = 10000;
    CHECK_OK(core_up(&f, TOPO));
    for (int i = 0; i < 4; i++) {
        tn_init(&f, &n[i], names[i], addrs[i]);
        got = tn_register(&f, &n[i], m, 8, true);
        msgs_free(m, got);
    }
    CHECK_OK(ksv_core_group_epoch(f.k, "g1", &e0));
    CHECK_OK(ck_ksv_store_open(f.db, NULL, false, &cli));
    CHECK_OK(ck_ksv_store_revoke(cli, "g1", "n3", "test", f.now / 1000));
    CHECK_OK(ck_ksv_store_revoke(cli, "g1", "n4", "test", f.now / 1000));
    advance(&f, 250);
    CHECK_OK(ksv_core_group_epoch(f.k, "g1", &e));
    CHECK_INT_EQ(e, e0 + 1);
    CHECK_INT_EQ(logged(&f, "ksv rekey group=g1 ", "leaves=2", NULL), 1);
    CHECK_OK(ck_ksv_store_revoke(cli, "g1", "n2", "test", f.now / 1000));
    advance(&f, 5000);
    CHECK_OK(ksv_core_group_epoch(f.k, "g1", &e));
    CHECK_INT_EQ(e, e0 + 1);
    advance(&f, 5300); /* 10 s after the poll that queued it */
    CHECK_OK(ksv_core_group_epoch(f.k, "g1", &e));
    CHECK_INT_EQ(e, e0 + 2);
    ck_ksv_store_close(cli);
    for (int i = 0; i < 4; i++)
        tn_free(&n[i]);
    fx_down(&f);
}

/* kill -9 before the commit: after the restart the batch is redone under the next epoch and no
 * epoch is sent twice; kill -9 after the commit: the stored epoch's datagrams are sent again and
 * the next batch is higher still. */
static void
test_crash_points(void)
{
    static const char *const points[] = {"batch-before-commit", "batch-after-commit",
                                         "batch-mid-send"};

    for (size_t p = 0; p < sizeof(points) / sizeof(points[0]); p++) {
        struct fx f;
        struct tnode n[4];
        struct ck_ksv_msg *m[8];
        struct ck_ksv_store *cli = NULL;
        const char *names[] = {"n1", "n2", "n3", "n4"};
        const char *addrs[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"};
        char spec[64];
        uint64_t epoch0 = 0, e = 0, max_sent = 0;
        size_t got, applied;

        fx_up(&f, TOPO);
        for (int i = 0; i < 4; i++) {
            tn_init(&f, &n[i], names[i], addrs[i]);
            got = tn_register(&f, &n[i], m, 8, true);
            msgs_free(m, got);
            n[i].mseen = f.n_sent;
        }
        CHECK_OK(ksv_core_group_epoch(f.k, "g1", &epoch0));
        /* The restarted core crashes at the point on its first batch. */
        ksv_core_free(f.k);
        f.k = NULL;
        snprintf(spec, sizeof(spec), "%s:1", points[p]);
        f.crash = spec;
        CHECK_OK(core_up(&f, TOPO));
        CHECK_OK(ck_ksv_store_open(f.db, NULL, false, &cli));
        CHECK_OK(ck_ksv_store_revoke(cli, "g1", "n4", "test", f.now / 1000));
        advance(&f, 1500);
        CHECK(strcmp(f.crashed_at, points[p]) == 0);
        CHECK(ksv_core_crashed(f.k));
        for (size_t i = 0; i < f.n_sent; i++) {
            struct lkh_rekey_view v;
            memset(&v, 0, sizeof(v));
            if (f.sent[i].mcast && lkh_rekey_parse(f.sent[i].buf, f.sent[i].len, &v) == 0 &&
                v.epoch > max_sent)
                max_sent = v.epoch;
            lkh_rekey_view_clear(&v);
        }
        /* Restart without the crash point. */
        f.crash = NULL;
        fx_restart(&f, TOPO);
        advance(&f, 1500);
        CHECK_OK(ksv_core_group_epoch(f.k, "g1", &e));
        /* Before the commit nothing was stored or sent: the batch is redone as epoch0 + 1.
         * After it: the restart re-sent the stored epoch0 + 1 (the same datagrams). */
        CHECK_INT_EQ(e, epoch0 + 1);
        CHECK_INT_EQ(max_sent, p == 2 ? epoch0 + 1 : 0);
        /* Members converge: n1..n3 hold the new group key, n4 does not. */
        for (int i = 0; i < 3; i++) {
            int rc = tn_rekeys(&f, &n[i], &n[i].g[0], &applied);
            CHECK_OK(rc);
            CHECK_INT_EQ(n[i].g[0].epoch, e);
        }
        {
            uint8_t a[LKH_KEY_LEN], b[LKH_KEY_LEN];
            group_key_of(&n[0].g[0], a);
            group_key_of(&n[2].g[0], b);
            CHECK_MEM_EQ(a, LKH_KEY_LEN, b, LKH_KEY_LEN);
            tn_rekeys(&f, &n[3], &n[3].g[0], &applied);
            CHECK_INT_EQ(applied, 0);
        }
        /* One more revocation: a strictly higher epoch. */
        CHECK_OK(ck_ksv_store_revoke(cli, "g1", "n3", "test", f.now / 1000));
        advance(&f, 1500);
        {
            uint64_t e2 = 0;
            CHECK_OK(ksv_core_group_epoch(f.k, "g1", &e2));
            CHECK_INT_EQ(e2, e + 1);
            CHECK(e2 > max_sent);
        }
        ck_ksv_store_close(cli);
        for (int i = 0; i < 4; i++)
            tn_free(&n[i]);
        fx_down(&f);
    }
}

/* kill -9 right after a join's commit: the member row is durable; the restarted KSV gives the
 * node the same member id when it registers again. */
static void
test_crash_join(void)
{
    struct fx f;
    struct tnode n1;
    struct ck_ksv_msg *m[8];
    uint16_t err;
    uint32_t mid = 0, mid2 = 0;
    size_t got;

    fx_up(&f, TOPO);
    ksv_core_free(f.k);
    f.k = NULL;
    f.crash = "join-after-commit:1";
    CHECK_OK(core_up(&f, TOPO));
    tn_init(&f, &n1, "n1", "10.0.0.1");
    CHECK_OK(tn_hello(&f, &n1, &err));
    CHECK(ksv_core_crashed(f.k));
    CHECK(strcmp(f.crashed_at, "join-after-commit") == 0);
    f.crash = NULL;
    fx_restart(&f, TOPO);
    CHECK_OK(ksv_core_member_id(f.k, "g1", "n1", &mid));
    got = tn_register(&f, &n1, m, 8, true);
    CHECK(got == 1 && m[0]->n_groups == 1);
    CHECK_OK(ksv_core_member_id(f.k, "g1", "n1", &mid2));
    CHECK_INT_EQ(mid, mid2);
    msgs_free(m, got);
    tn_free(&n1);
    fx_down(&f);
}

/* Six nodes in one hybrid group: a..d fill cluster 0, e and f cluster 1. */
static const char HYBRID_TOPO[] =
    "ksv ksv1\n"
    "policy p {\n TRANS-TYPE = ESP\n LIFE-SEC = 600\n}\n"
    "node a 10.0.2.1\nnode b 10.0.2.2\nnode c 10.0.2.3\nnode d 10.0.2.4\n"
    "node e 10.0.2.5\nnode f 10.0.2.6\n"
    "group h {\n address = 239.3.3.3\n policy = p\n members = a b c d e f\n"
    " keying = hybrid\n}\n";

/* Hybrid: what the node agent does with each part, played by the test: sealed REGISTERs replace
 * the path, then the multicast datagrams apply to it. */
static void
tn_sync(struct fx *f, struct tnode *n, size_t *n_unicast, size_t *n_applied)
{
    struct ck_ksv_msg *m[8];
    size_t got = tn_msgs(f, n, m, 8);

    *n_unicast = 0;
    for (size_t j = 0; j < got; j++) {
        *n_unicast += m[j]->type == CK_KSV_REGISTER && m[j]->n_groups == 1;
        tn_take_groups(n, m[j]);
        if (m[j]->flags & CK_KSV_F_ACK_REQD)
            tn_ack(f, n, m[j]);
    }
    msgs_free(m, got);
    *n_applied = 0;
    if (n->n_g == 1)
        (void)tn_rekeys(f, n, &n->g[0], n_applied);
}

/* Hybrid EK+LKH: clusters of KSV_HYBRID_CLUSTER members as the tree's leaves. A revocation
 * sends the rest of the member's cluster their new path by sealed unicast and the other
 * clusters the signed multicast; everyone left holds the new group key, the revoked member
 * cannot get it; a restart from the store keeps the tree, the clusters and the member IDs. */
static void
test_hybrid_group(void)
{
    const char *hy = HYBRID_TOPO;
    struct fx f;
    struct tnode n[6];
    struct ck_ksv_msg *m[8];
    struct ck_ksv_store *cli = NULL;
    const char *names[] = {"a", "b", "c", "d", "e", "f"};
    const char *addrs[] = {"10.0.2.1", "10.0.2.2", "10.0.2.3", "10.0.2.4", "10.0.2.5",
                           "10.0.2.6"};
    uint8_t k0[LKH_KEY_LEN], k1[LKH_KEY_LEN], k2[LKH_KEY_LEN];
    uint32_t ids[6], id = 0;
    uint64_t e0 = 0, e1 = 0, e2 = 0;
    size_t got, uni, app, mstart;

    fx_up(&f, hy);
    for (int i = 0; i < 6; i++) {
        tn_init(&f, &n[i], names[i], addrs[i]);
        got = tn_register(&f, &n[i], m, 8, true);
        CHECK(got == 1 && m[0]->n_groups == 1 &&
              m[0]->groups[0].keying == CK_KSV_KEYING_HYBRID && m[0]->groups[0].id_len >= 1 &&
              m[0]->groups[0].n_keys == m[0]->groups[0].id_len + 1);
        msgs_free(m, got);
        /* The earlier members take what this join sent them. */
        for (int j = 0; j < i; j++)
            tn_sync(&f, &n[j], &uni, &app);
        n[i].mseen = f.n_sent;
    }
    /* a..d share cluster 0's leaf, e and f cluster 1's. */
    for (int i = 1; i < 6; i++)
        CHECK_INT_EQ(n[i].g[0].m.path[0].node == n[0].g[0].m.path[0].node, i < 4);
    CHECK_INT_EQ(n[5].g[0].m.path[0].node, n[4].g[0].m.path[0].node);
    group_key_of(&n[0].g[0], k0);
    for (int i = 1; i < 6; i++) {
        group_key_of(&n[i].g[0], k1);
        CHECK_MEM_EQ(k0, LKH_KEY_LEN, k1, LKH_KEY_LEN);
    }
    for (int i = 0; i < 6; i++) {
        CHECK_OK(ksv_core_member_id(f.k, "h", names[i], &ids[i]));
        CHECK_INT_EQ(ids[i], n[i].g[0].m.member_id);
    }
    CHECK_OK(ksv_core_group_epoch(f.k, "h", &e0));
    /* d's join replaced cluster 0 (a, b, c by unicast, nothing multicast: the tree's other
     * leaves were empty); f's replaced cluster 1 (e by unicast, a..d by the multicast). */
    CHECK_INT_EQ(logged(&f, "ksv join group=h node=d ", NULL), 1);
    CHECK_INT_EQ(logged(&f, "mode=hybrid leaves=0 joins=1 ", "dgrams=0", "unicasts=3", NULL), 1);
    CHECK_INT_EQ(logged(&f, "mode=hybrid leaves=0 joins=1 ", "dgrams=1", "unicasts=1", NULL), 1);

    /* Revoke b: a, c, d by unicast, e and f by the multicast. */
    mstart = f.n_sent;
    CHECK_OK(ck_ksv_store_open(f.db, NULL, false, &cli));
    CHECK_OK(ck_ksv_store_revoke(cli, "h", "b", "test", f.now / 1000));
    advance(&f, 1500);
    CHECK_OK(ksv_core_group_epoch(f.k, "h", &e1));
    CHECK_INT_EQ(e1, e0 + 1);
    CHECK_INT_EQ(logged(&f, "ksv rekey group=h ", "mode=hybrid leaves=1 joins=0", "dgrams=1",
                        "unicasts=3", NULL), 1);
    {
        size_t mc = 0;
        for (size_t i = mstart; i < f.n_sent; i++)
            mc += f.sent[i].mcast;
        CHECK_INT_EQ(mc, 1);
    }
    for (int i = 0; i < 6; i++) {
        if (i == 1)
            continue;
        tn_sync(&f, &n[i], &uni, &app);
        CHECK_INT_EQ(uni, i < 4 ? 1 : 0);
        CHECK_INT_EQ(app, i < 4 ? 0 : 1);
        CHECK_INT_EQ(n[i].g[0].epoch, e1);
    }
    group_key_of(&n[0].g[0], k1);
    CHECK(memcmp(k0, k1, LKH_KEY_LEN) != 0);
    for (int i = 2; i < 6; i++) {
        group_key_of(&n[i].g[0], k2);
        CHECK_MEM_EQ(k1, LKH_KEY_LEN, k2, LKH_KEY_LEN);
    }
    /* b gets no unicast, and the datagram has nothing it can open. */
    {
        int rc;
        CHECK_INT_EQ(tn_msgs(&f, &n[1], m, 8), 0);
        rc = tn_rekeys(&f, &n[1], &n[1].g[0], &app);
        CHECK(rc == CK_ERR_PERM || rc == CK_ERR_INTEGRITY);
        CHECK_INT_EQ(app, 0);
        group_key_of(&n[1].g[0], k2);
        CHECK(memcmp(k1, k2, LKH_KEY_LEN) != 0);
    }
    CHECK(ksv_core_member_id(f.k, "h", "b", &id) == CK_ERR_NOTFOUND);
    /* RECOVER from b: nothing. */
    {
        struct ck_ksv_msg *a = NULL;
        CHECK_OK(ck_ksv_msg_new(CK_KSV_RECOVER, &a));
        a->grp_id = n[1].g[0].id;
        a->grp_epoch = e0;
        tn_send(&f, &n[1], a);
        ck_ksv_msg_free(a);
        CHECK_INT_EQ(tn_msgs(&f, &n[1], m, 8), 0);
    }

    /* kill -9 and restart from the store: same epoch, members, IDs and group key. */
    fx_restart(&f, hy);
    CHECK_OK(ksv_core_group_epoch(f.k, "h", &e2));
    CHECK_INT_EQ(e2, e1);
    CHECK(ksv_core_member_id(f.k, "h", "b", &id) == CK_ERR_NOTFOUND);
    for (int i = 0; i < 6; i++) {
        if (i == 1)
            continue;
        CHECK_OK(ksv_core_member_id(f.k, "h", names[i], &id));
        CHECK_INT_EQ(id, ids[i]);
        got = tn_register(&f, &n[i], m, 8, true);
        CHECK(got == 1 && m[0]->n_groups == 1 && m[0]->groups[0].epoch == e1 &&
              m[0]->groups[0].member_index == ids[i]);
        msgs_free(m, got);
        group_key_of(&n[i].g[0], k2);
        CHECK_MEM_EQ(k1, LKH_KEY_LEN, k2, LKH_KEY_LEN);
        n[i].mseen = f.n_sent;
    }
    /* The restored tree rekeys: revoke e; f by unicast, a, c, d by the multicast. */
    CHECK_OK(ck_ksv_store_revoke(cli, "h", "e", "test", f.now / 1000));
    advance(&f, 1500);
    CHECK_OK(ksv_core_group_epoch(f.k, "h", &e2));
    CHECK_INT_EQ(e2, e1 + 1);
    for (int i = 0; i < 6; i++) {
        if (i == 1 || i == 4)
            continue;
        tn_sync(&f, &n[i], &uni, &app);
        CHECK_INT_EQ(uni, i == 5 ? 1 : 0);
        CHECK_INT_EQ(app, i == 5 ? 0 : 1);
        CHECK_INT_EQ(n[i].g[0].epoch, e2);
    }
    group_key_of(&n[0].g[0], k2);
    CHECK(memcmp(k1, k2, LKH_KEY_LEN) != 0);
    for (int i = 2; i < 6; i++) {
        if (i == 4)
            continue;
        group_key_of(&n[i].g[0], k0);
        CHECK_MEM_EQ(k2, LKH_KEY_LEN, k0, LKH_KEY_LEN);
    }
    CHECK_INT_EQ(tn_msgs(&f, &n[4], m, 8), 0);
    {
        int rc = tn_rekeys(&f, &n[4], &n[4].g[0], &app);
        CHECK(rc == CK_ERR_PERM || rc == CK_ERR_INTEGRITY);
        CHECK_INT_EQ(app, 0);
    }
    /* Lifting b's revocation: b joins cluster 0 again (a, c, d get their new path by unicast,
     * f the multicast) and everyone agrees. */
    CHECK_OK(ck_ksv_store_revoke_lift(cli, "h", "b"));
    got = tn_register(&f, &n[1], m, 8, true);
    msgs_free(m, got);
    advance(&f, 300);
    {
        uint64_t e3 = 0;
        CHECK_OK(ksv_core_group_epoch(f.k, "h", &e3));
        CHECK_INT_EQ(e3, e2 + 1);
    }
    tn_sync(&f, &n[1], &uni, &app);
    for (int i = 0; i < 6; i++) {
        if (i == 1 || i == 4)
            continue;
        tn_sync(&f, &n[i], &uni, &app);
        CHECK_INT_EQ(uni + app, 1);
    }
    group_key_of(&n[1].g[0], k0);
    CHECK(memcmp(k0, k2, LKH_KEY_LEN) != 0);
    for (int i = 0; i < 6; i++) {
        if (i == 1 || i == 4)
            continue;
        group_key_of(&n[i].g[0], k1);
        CHECK_MEM_EQ(k0, LKH_KEY_LEN, k1, LKH_KEY_LEN);
    }
    ck_ksv_store_close(cli);
    for (int i = 0; i < 6; i++)
        tn_free(&n[i]);
    fx_down(&f);
}

/* Hybrid and kill -9 right after a batch's commit (nothing of it sent): the restart rebuilds the
 * group from the rows that batch wrote (the replaced cluster's members), re-sends the stored
 * multicast, and the members re-registering get their current path: all converge. */
static void
test_hybrid_crash(void)
{
    struct fx f;
    struct tnode n[6];
    struct ck_ksv_msg *m[8];
    struct ck_ksv_store *cli = NULL;
    const char *names[] = {"a", "b", "c", "d", "e", "f"};
    const char *addrs[] = {"10.0.2.1", "10.0.2.2", "10.0.2.3", "10.0.2.4", "10.0.2.5",
                           "10.0.2.6"};
    uint8_t k0[LKH_KEY_LEN], k1[LKH_KEY_LEN];
    uint64_t e0 = 0, e1 = 0;
    uint32_t mid = 0;
    size_t got, uni, app;

    fx_up(&f, HYBRID_TOPO);
    for (int i = 0; i < 6; i++) {
        tn_init(&f, &n[i], names[i], addrs[i]);
        got = tn_register(&f, &n[i], m, 8, true);
        msgs_free(m, got);
        for (int j = 0; j < i; j++)
            tn_sync(&f, &n[j], &uni, &app);
        n[i].mseen = f.n_sent;
    }
    CHECK_OK(ksv_core_group_epoch(f.k, "h", &e0));
    ksv_core_free(f.k);
    f.k = NULL;
    f.crash = "batch-after-commit:1";
    CHECK_OK(core_up(&f, HYBRID_TOPO));
    CHECK_OK(ck_ksv_store_open(f.db, NULL, false, &cli));
    CHECK_OK(ck_ksv_store_revoke(cli, "h", "c", "test", f.now / 1000));
    advance(&f, 1500);
    CHECK(strcmp(f.crashed_at, "batch-after-commit") == 0);
    f.crash = NULL;
    fx_restart(&f, HYBRID_TOPO);
    CHECK_OK(ksv_core_group_epoch(f.k, "h", &e1));
    CHECK_INT_EQ(e1, e0 + 1);
    {
        char line[64];
        snprintf(line, sizeof(line), "ksv group h: resending epoch %llu ",
                 (unsigned long long)e1);
        CHECK_INT_EQ(logged(&f, line, NULL), 1);
    }
    for (int i = 0; i < 6; i++) {
        if (i == 2)
            continue;
        /* e, f take the re-sent multicast; a, b, d their path at registration. */
        tn_sync(&f, &n[i], &uni, &app);
        if (i >= 4)
            CHECK_INT_EQ(app, 1);
        got = tn_register(&f, &n[i], m, 8, true);
        CHECK(got == 1 && m[0]->n_groups == 1 && m[0]->groups[0].epoch == e1);
        msgs_free(m, got);
        CHECK_INT_EQ(n[i].g[0].epoch, e1);
    }
    group_key_of(&n[0].g[0], k0);
    for (int i = 1; i < 6; i++) {
        if (i == 2)
            continue;
        group_key_of(&n[i].g[0], k1);
        CHECK_MEM_EQ(k0, LKH_KEY_LEN, k1, LKH_KEY_LEN);
    }
    group_key_of(&n[2].g[0], k1);
    CHECK(memcmp(k0, k1, LKH_KEY_LEN) != 0);
    CHECK(ksv_core_member_id(f.k, "h", "c", &mid) == CK_ERR_NOTFOUND);
    ck_ksv_store_close(cli);
    for (int i = 0; i < 6; i++)
        tn_free(&n[i]);
    fx_down(&f);
}

/* EK: the group key itself to each member by sealed unicast, a new epoch per change. */
static void
test_ek_group(void)
{
    static const char ek[] =
        "ksv ksv1\n"
        "policy p {\n TRANS-TYPE = ESP\n LIFE-SEC = 600\n}\n"
        "node a 10.0.1.1\nnode b 10.0.1.2\nnode c 10.0.1.3\n"
        "group e {\n address = 239.2.2.2\n policy = p\n members = a b c\n keying = ek\n}\n";
    struct fx f;
    struct tnode n[3];
    struct ck_ksv_msg *m[8];
    struct ck_ksv_store *cli = NULL;
    const char *names[] = {"a", "b", "c"};
    const char *addrs[] = {"10.0.1.1", "10.0.1.2", "10.0.1.3"};
    uint8_t k0[LKH_KEY_LEN], k1[LKH_KEY_LEN];
    size_t got;

    fx_up(&f, ek);
    for (int i = 0; i < 3; i++) {
        tn_init(&f, &n[i], names[i], addrs[i]);
        got = tn_register(&f, &n[i], m, 8, true);
        CHECK(got == 1 && m[0]->n_groups == 1 && m[0]->groups[0].keying == CK_KSV_KEYING_EK &&
              m[0]->groups[0].n_keys == 1);
        /* The default aes-256-gcm: the same IKEv2 ID as aes-128-gcm, told by its key length. */
        CHECK(got == 1 && m[0]->groups[0].enc_alg == KSV_ENCR_AES_GCM_16 &&
              m[0]->groups[0].enc_key_len == 36 && m[0]->groups[0].auth_key_len == 0);
        msgs_free(m, got);
    }
    /* Each join re-keyed the earlier members: all hold the same key now. */
    for (int i = 0; i < 2; i++) {
        got = tn_msgs(&f, &n[i], m, 8);
        for (size_t j = 0; j < got; j++)
            tn_take_groups(&n[i], m[j]);
        msgs_free(m, got);
    }
    group_key_of(&n[0].g[0], k0);
    group_key_of(&n[2].g[0], k1);
    CHECK_MEM_EQ(k0, LKH_KEY_LEN, k1, LKH_KEY_LEN);
    CHECK_OK(ck_ksv_store_open(f.db, NULL, false, &cli));
    CHECK_OK(ck_ksv_store_revoke(cli, "e", "c", "test", f.now / 1000));
    advance(&f, 1500);
    for (int i = 0; i < 3; i++) {
        got = tn_msgs(&f, &n[i], m, 8);
        CHECK_INT_EQ(got, i < 2 ? 1 : 0);
        for (size_t j = 0; j < got; j++)
            tn_take_groups(&n[i], m[j]);
        msgs_free(m, got);
    }
    group_key_of(&n[0].g[0], k1);
    CHECK(memcmp(k0, k1, LKH_KEY_LEN) != 0);
    group_key_of(&n[1].g[0], k0);
    CHECK_MEM_EQ(k0, LKH_KEY_LEN, k1, LKH_KEY_LEN);
    CHECK_INT_EQ(logged(&f, "ksv rekey group=e ", "mode=ek leaves=1", NULL), 1);
    {
        size_t mc = 0;
        for (size_t i = 0; i < f.n_sent; i++)
            mc += f.sent[i].mcast;
        CHECK_INT_EQ(mc, 0);
    }
    ck_ksv_store_close(cli);
    for (int i = 0; i < 3; i++)
        tn_free(&n[i]);
    fx_down(&f);
}

/* The group SA's key lengths on the wire: what the policy's transform takes, the HMAC key
 * shortened when both would not fit in what members derive (CK_KSV_GROUP_SA_MAX_KEYS). */
static void
test_group_sa_key_lengths(void)
{
    static const char topo[] =
        "ksv ksv1\n"
        "policy big {\n TRANS-TYPE = ESP\n LIFE-SEC = 600\n ENC-ALG = aes-256-cbc\n"
        " AUTH-ALG = hmac-sha512-256\n}\n"
        "policy mid {\n TRANS-TYPE = ESP\n LIFE-SEC = 600\n ENC-ALG = aes-128-cbc\n"
        " AUTH-ALG = hmac-sha384-192\n}\n"
        "policy ah {\n TRANS-TYPE = AH\n LIFE-SEC = 600\n AUTH-ALG = hmac-sha512-256\n}\n"
        "node a 10.0.1.1\nnode b 10.0.1.2\n"
        "group g1 {\n address = 239.3.3.1\n policy = big\n members = a\n}\n"
        "group g2 {\n address = 239.3.3.2\n policy = mid\n members = a\n}\n"
        "group g3 {\n address = 239.3.3.3\n policy = ah\n members = a\n}\n";
    static const struct {
        uint16_t enc, auth;
        uint8_t el, al;
    } want[3] = {{KSV_ENCR_AES_CBC, KSV_AUTH_HMAC_SHA2_512_256, 32, 32},
                 {KSV_ENCR_AES_CBC, KSV_AUTH_HMAC_SHA2_384_192, 16, 48},
                 {0, KSV_AUTH_HMAC_SHA2_512_256, 0, 64}};
    struct fx f;
    struct tnode n;
    struct ck_ksv_msg *m[8];
    size_t got, seen = 0;

    fx_up(&f, topo);
    tn_init(&f, &n, "a", "10.0.1.1");
    got = tn_register(&f, &n, m, 8, true);
    CHECK(got == 1 && m[0]->n_groups == 3);
    for (size_t i = 0; got == 1 && i < m[0]->n_groups; i++) {
        const struct ck_ksv_group *g = &m[0]->groups[i];
        size_t w = (g->mcast.addr[3] - 1u) % 3u;
        CHECK_INT_EQ(g->enc_alg, want[w].enc);
        CHECK_INT_EQ(g->auth_alg, want[w].auth);
        CHECK_INT_EQ(g->enc_key_len, want[w].el);
        CHECK_INT_EQ(g->auth_key_len, want[w].al);
        seen |= (size_t)1 << w;
    }
    CHECK_INT_EQ(seen, 7);
    msgs_free(m, got);
    tn_free(&n);
    fx_down(&f);
}

/* Hostile datagrams through every parser path: nothing crashes, nothing is answered except a
 * NUDGE or a HELLO_ERR, the session survives. */
static void
test_hostile(void)
{
    struct fx f;
    struct tnode n1;
    struct ck_ksv_msg *m[8];
    uint8_t buf[2048];
    uint8_t *h = NULL, *s = NULL;
    size_t hl = 0, sl = 0, got;
    struct ck_ksv_hello_ctx ctx;

    fx_up(&f, TOPO);
    tn_init(&f, &n1, "n1", "10.0.0.1");
    got = tn_register(&f, &n1, m, 8, true);
    msgs_free(m, got);
    memset(&ctx, 0, sizeof(ctx));
    CHECK_OK(ck_ksv_hello_build(n1.creds, "n1", f.now / 1000, &ctx, &h, &hl));
    {
        struct ck_ksv_msg *a = NULL;
        CHECK_OK(ck_ksv_msg_new(CK_KSV_ACK, &a));
        a->key_id = n1.seal.key_id;
        CHECK_OK(ck_ksv_seal_msg(&n1.seal, a, &s, &sl));
        ck_ksv_msg_free(a);
    }
    /* Every truncation and one flipped byte per position of a HELLO and a SEALED. */
    for (size_t i = 0; i <= hl; i++)
        CHECK_OK(ksv_core_on_datagram(f.k, h, i, (struct sockaddr *)&n1.addr, sizeof(n1.addr),
                                      f.now));
    for (size_t i = 0; i <= sl; i++)
        CHECK_OK(ksv_core_on_datagram(f.k, s, i, (struct sockaddr *)&n1.addr, sizeof(n1.addr),
                                      f.now));
    for (size_t i = 0; i < hl && i < sizeof(buf); i += 3) {
        memcpy(buf, h, hl);
        buf[i] ^= 0x41;
        CHECK_OK(ksv_core_on_datagram(f.k, buf, hl, (struct sockaddr *)&n1.addr,
                                      sizeof(n1.addr), f.now));
    }
    for (size_t i = 0; i < sl && i < sizeof(buf); i++) {
        memcpy(buf, s, sl);
        buf[i] ^= 0x80;
        CHECK_OK(ksv_core_on_datagram(f.k, buf, sl, (struct sockaddr *)&n1.addr,
                                      sizeof(n1.addr), f.now));
    }
    /* Every kind the KSV never takes, and random bytes under a valid header. */
    for (int kind = 0; kind < 9; kind++) {
        for (int r = 0; r < 20; r++) {
            size_t len = 8 + (size_t)r * 37;
            CHECK_OK(ck_random_bytes(buf, len));
            memcpy(buf, "CKSV", 4);
            buf[4] = CK_KSV_WIRE_VERSION;
            buf[5] = (uint8_t)kind;
            buf[6] = buf[7] = 0;
            CHECK_OK(ksv_core_on_datagram(f.k, buf, len, (struct sockaddr *)&n1.addr,
                                          sizeof(n1.addr), f.now));
        }
    }
    /* An authentic sealed message of a type the KSV never takes. */
    {
        struct ck_ksv_msg *r = NULL;
        CHECK_OK(ck_ksv_msg_new(CK_KSV_REGISTER, &r));
        tn_send(&f, &n1, r);
        ck_ksv_msg_free(r);
        CHECK_OK(ck_ksv_msg_new(CK_KSV_RECOVER, &r));
        r->grp_id = 0xdeadbeef;
        tn_send(&f, &n1, r);
        ck_ksv_msg_free(r);
        CHECK_OK(ck_ksv_msg_new(CK_KSV_GROUP_ACK, &r));
        r->grp_id = 0xdeadbeef;
        r->grp_epoch = 77;
        tn_send(&f, &n1, r);
        ck_ksv_msg_free(r);
    }
    /* The HELLO itself, replayed: refused by the replay cache after the first. */
    CHECK_OK(ksv_core_on_datagram(f.k, h, hl, (struct sockaddr *)&n1.addr, sizeof(n1.addr),
                                  f.now));
    CHECK_OK(ksv_core_on_datagram(f.k, h, hl, (struct sockaddr *)&n1.addr, sizeof(n1.addr),
                                  f.now));
    CHECK(logged(&f, "result=auth", NULL) >= 1);
    /* A datagram from an unsupported address family is dropped. */
    {
        struct sockaddr sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_family = AF_UNIX;
        CHECK_OK(ksv_core_on_datagram(f.k, s, sl, &sa, sizeof(sa), f.now));
    }
    free(h);
    free(s);
    ck_ksv_hello_ctx_clear(&ctx);
    tn_free(&n1);
    fx_down(&f);
}

/* ---- end to end with the node agent library (lib/ksvnode) ----------------------------------- */

struct agent {
    struct fx *f;
    const char *name;
    struct sockaddr_in addr;
    ck_ksvnode *node;
    ck_creds *creds;
    size_t seen;                     /* fixture sent[] delivered up to */
    uint8_t *out[64];
    size_t out_len[64], n_out;
    size_t installs, deletes, group_updates;
};

static int
agent_send(void *arg, unsigned ksv, const uint8_t *buf, size_t len)
{
    struct agent *a = arg;

    (void)ksv;
    if (a->n_out == 64)
        return CK_ERR_LIMIT;
    a->out[a->n_out] = ck_memdup(buf, len);
    a->out_len[a->n_out++] = len;
    return 0;
}

static void
agent_install(void *arg, const struct ck_ksvnode_sa *sa)
{
    (void)sa;
    ((struct agent *)arg)->installs++;
}

static void
agent_delete(void *arg, const struct ck_ksvnode_sa *sa)
{
    (void)sa;
    ((struct agent *)arg)->deletes++;
}

static void
agent_group(void *arg, const struct ck_ksvnode_group_status *g)
{
    (void)g;
    ((struct agent *)arg)->group_updates++;
}

static void
agent_log(void *arg, int level, const char *line)
{
    (void)level;
    if (getenv("KSV_TEST_LOG") != NULL)
        fprintf(stderr, "    %s: %s\n", ((struct agent *)arg)->name, line);
}

static void
agent_up(struct fx *f, struct agent *a, const char *name, const char *addr)
{
    struct ck_ksvnode_params p;

    memset(a, 0, sizeof(*a));
    a->f = f;
    a->name = name;
    a->addr.sin_family = AF_INET;
    a->addr.sin_port = htons(KSV_DEFAULT_NODE_PORT);
    inet_pton(AF_INET, addr, &a->addr.sin_addr);
    a->creds = make_creds(f, name, f->now / 1000 - 10, f->now / 1000 + 36000);
    a->seen = f->n_sent;
    memset(&p, 0, sizeof(p));
    p.name = name;
    p.n_ksv = 1;
    p.ksv_service[0] = SERVICE;
    p.creds[0] = a->creds;
    p.cb.arg = a;
    p.cb.send = agent_send;
    p.cb.sa_install = agent_install;
    p.cb.sa_delete = agent_delete;
    p.cb.group_update = agent_group;
    p.cb.log = agent_log;
    p.rng_seed = 7;
    CHECK_OK(ck_ksvnode_new(&p, &a->node));
}

static void
agent_down(struct agent *a)
{
    ck_ksvnode_free(a->node);
    ck_creds_free(a->creds);
    for (size_t i = 0; i < a->n_out; i++)
        free(a->out[i]);
    memset(a, 0, sizeof(*a));
}

/* Delivers everything in flight both ways until nothing moves. Multicast goes to every agent. */
static void
pump(struct fx *f, struct agent *ag, size_t n)
{
    for (int round = 0; round < 1000; round++) {
        bool moved = false;
        for (size_t i = 0; i < n; i++) {
            struct agent *a = &ag[i];
            for (size_t j = 0; j < a->n_out; j++) {
                CHECK_OK(ksv_core_on_datagram(f->k, a->out[j], a->out_len[j],
                                              (struct sockaddr *)&a->addr, sizeof(a->addr),
                                              f->now));
                free(a->out[j]);
                moved = true;
            }
            a->n_out = 0;
            for (; a->seen < f->n_sent; a->seen++) {
                struct sent *s = &f->sent[a->seen];
                if (s->mcast)
                    CHECK_OK(ck_ksvnode_on_datagram(a->node, CK_KSVNODE_FROM_GROUP, s->buf,
                                                    s->len, f->now));
                else if (s->to.sin_addr.s_addr == a->addr.sin_addr.s_addr)
                    CHECK_OK(ck_ksvnode_on_datagram(a->node, 0, s->buf, s->len, f->now));
                else
                    continue;
                moved = true;
            }
        }
        if (!moved)
            return;
    }
    CHECK(!"pump: no quiescence");
}

/* Advances the shared clock through every core and agent timer. */
static void
advance_all(struct fx *f, struct agent *ag, size_t n, int64_t ms)
{
    int64_t end = f->now + ms;

    for (int guard = 0; guard < 100000; guard++) {
        int64_t t = ksv_core_next_timeout_ms(f->k, f->now);
        for (size_t i = 0; i < n; i++) {
            int64_t u = ck_ksvnode_next_timeout_ms(ag[i].node, f->now);
            if (u >= 0 && (t < 0 || u < t))
                t = u;
        }
        if (t < 0 || f->now + t > end)
            break;
        f->now += t > 0 ? t : 1;
        CHECK_OK(ksv_core_on_timer(f->k, f->now));
        for (size_t i = 0; i < n; i++)
            CHECK_OK(ck_ksvnode_on_timer(ag[i].node, f->now));
        pump(f, ag, n);
    }
    f->now = end;
    CHECK_OK(ksv_core_on_timer(f->k, f->now));
    for (size_t i = 0; i < n; i++)
        CHECK_OK(ck_ksvnode_on_timer(ag[i].node, f->now));
    pump(f, ag, n);
}

static size_t
agent_sas(struct agent *a)
{
    const struct ck_ksvnode_sa *sas;

    return ck_ksvnode_sas(a->node, &sas);
}

static bool
agent_group_status(struct agent *a, struct ck_ksvnode_group_status *st)
{
    return ck_ksvnode_groups(a->node, st, 1) == 1;
}

/* The real node agent against the real core: registration from the start-up NUDGE, the SAs each
 * agent installs, the group keys they hold (key-check equal), a revocation the revoked agent
 * does not follow, GROUP_ACKs that spare the others a unicast recovery. */
static void
test_e2e_node_agent(void)
{
    struct fx f;
    struct agent ag[4];
    struct ck_ksvnode_group_status st[4];
    struct ck_ksv_store *cli = NULL;
    struct ksv_stats ks;
    const char *names[] = {"n1", "n2", "n3", "n4"};
    const char *addrs[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"};
    /* Link SAs, plus the group SA the agent installs. */
    const size_t want_sas[] = {3 + 1, 2 + 1, 1 + 1, 0 + 1};
    uint64_t epoch = 0;

    fx_up(&f, TOPO);
    for (int i = 0; i < 4; i++)
        agent_up(&f, &ag[i], names[i], addrs[i]);
    /* The KSV's start-up NUDGEs are in sent[]: the agents answer them with HELLO. */
    for (int i = 0; i < 4; i++) {
        ag[i].seen = 0;
        CHECK_OK(ck_ksvnode_start(ag[i].node, f.now));
    }
    pump(&f, ag, 4);
    advance_all(&f, ag, 4, 2000);
    for (int i = 0; i < 4; i++) {
        CHECK(ck_ksvnode_registered(ag[i].node, 0));
        CHECK(ksv_core_node_registered(f.k, names[i]));
        CHECK_INT_EQ(agent_sas(&ag[i]), want_sas[i]);
        CHECK(agent_group_status(&ag[i], &st[i]));
    }
    /* LKH+ joins send nothing to the others: each agent holds the group key at the version of
     * its own join (earlier members hash forward when they meet a newer version). */
    for (int i = 1; i < 4; i++) {
        CHECK_INT_EQ(st[i].group_id, st[0].group_id);
        CHECK_INT_EQ(st[i].root_version, st[i - 1].root_version + 1);
    }
    /* Every REGISTER was acknowledged: nothing pending, no NO_ACK later. */
    advance_all(&f, ag, 4, 40000);
    CHECK_INT_EQ(logged(&f, "type=NO_ACK", NULL), 0);
    ksv_core_stats(f.k, &ks);
    CHECK(ks.acks >= 4);
    /* Revoke n4. */
    CHECK_OK(ck_ksv_store_open(f.db, NULL, false, &cli));
    CHECK_OK(ck_ksv_store_revoke(cli, "g1", "n4", "test", f.now / 1000));
    advance_all(&f, ag, 4, 1500);
    CHECK_OK(ksv_core_group_epoch(f.k, "g1", &epoch));
    for (int i = 0; i < 4; i++)
        CHECK(agent_group_status(&ag[i], &st[i]));
    /* After the batch every remaining agent holds the same group key, at the same version. */
    for (int i = 0; i < 3; i++) {
        CHECK_INT_EQ(st[i].epoch, epoch);
        CHECK_INT_EQ(st[i].root_version, st[0].root_version);
        CHECK_MEM_EQ(st[i].key_check, 8, st[0].key_check, 8);
    }
    CHECK(st[0].root_version > st[3].root_version || st[3].removed);
    CHECK(st[3].removed || memcmp(st[3].key_check, st[0].key_check, 8) != 0);
    /* The members acknowledged the epoch: nobody needed a unicast recovery. */
    advance_all(&f, ag, 4, 3000);
    ksv_core_stats(f.k, &ks);
    CHECK(ks.group_acks >= 3);
    CHECK_INT_EQ(ks.recoveries, 0);
    ck_ksv_store_close(cli);
    for (int i = 0; i < 4; i++)
        agent_down(&ag[i]);
    fx_down(&f);
}

/* A hybrid group with the real node agents: they agree on the group key after the joins and
 * after a revocation (unicast inside the revoked member's cluster, multicast to the other), the
 * revoked agent does not follow; an agent that sees the multicast before its unicast (its cluster
 * was replaced) keeps its keys, asks RECOVER, and ends with the same key. */
static void
test_e2e_hybrid(void)
{
    struct fx f;
    struct agent ag[6];
    struct ck_ksvnode_group_status st[6];
    struct ck_ksv_store *cli = NULL;
    struct ck_ksvnode_stats ns;
    const char *names[] = {"a", "b", "c", "d", "e", "f"};
    const char *addrs[] = {"10.0.2.1", "10.0.2.2", "10.0.2.3", "10.0.2.4", "10.0.2.5",
                           "10.0.2.6"};
    uint64_t epoch = 0;
    size_t mark;

    fx_up(&f, HYBRID_TOPO);
    for (int i = 0; i < 6; i++)
        agent_up(&f, &ag[i], names[i], addrs[i]);
    for (int i = 0; i < 6; i++) {
        ag[i].seen = 0;
        CHECK_OK(ck_ksvnode_start(ag[i].node, f.now));
    }
    pump(&f, ag, 6);
    advance_all(&f, ag, 6, 2000);
    CHECK_OK(ksv_core_group_epoch(f.k, "h", &epoch));
    for (int i = 0; i < 6; i++) {
        CHECK(ck_ksvnode_registered(ag[i].node, 0));
        CHECK(agent_group_status(&ag[i], &st[i]));
        CHECK_INT_EQ(st[i].keying, CK_KSV_KEYING_HYBRID);
        CHECK(!st[i].removed);
        CHECK_INT_EQ(st[i].epoch, epoch);
        CHECK_INT_EQ(st[i].root_version, st[0].root_version);
        CHECK_MEM_EQ(st[i].key_check, 8, st[0].key_check, 8);
    }
    /* Revoke b. The core runs the batch; a sees the multicast before its unicast. */
    CHECK_OK(ck_ksv_store_open(f.db, NULL, false, &cli));
    CHECK_OK(ck_ksv_store_revoke(cli, "h", "b", "test", f.now / 1000));
    mark = f.n_sent;
    advance(&f, 1500);
    for (size_t i = mark; i < f.n_sent; i++)
        if (f.sent[i].mcast)
            CHECK_OK(ck_ksvnode_on_datagram(ag[0].node, CK_KSVNODE_FROM_GROUP, f.sent[i].buf,
                                            f.sent[i].len, f.now));
    CHECK(agent_group_status(&ag[0], &st[0]));
    CHECK(!st[0].removed);
    ck_ksvnode_get_stats(ag[0].node, &ns);
    CHECK_INT_EQ(ns.recovers_sent, 1);
    advance_all(&f, ag, 6, 3000);
    CHECK_OK(ksv_core_group_epoch(f.k, "h", &epoch));
    for (int i = 0; i < 6; i++)
        CHECK(agent_group_status(&ag[i], &st[i]));
    for (int i = 0; i < 6; i++) {
        if (i == 1)
            continue;
        CHECK(!st[i].removed);
        CHECK_INT_EQ(st[i].epoch, epoch);
        CHECK_INT_EQ(st[i].root_version, st[0].root_version);
        CHECK_MEM_EQ(st[i].key_check, 8, st[0].key_check, 8);
    }
    CHECK(st[1].epoch < epoch);
    CHECK(memcmp(st[1].key_check, st[0].key_check, 8) != 0);
    ck_ksv_store_close(cli);
    for (int i = 0; i < 6; i++)
        agent_down(&ag[i]);
    fx_down(&f);
}

CK_TEST_MAIN("ksv_server", CK_TEST_CASE(test_register_sas),
             CK_TEST_CASE(test_nudges_and_session_end), CK_TEST_CASE(test_retransmit),
             CK_TEST_CASE(test_ack_matching), CK_TEST_CASE(test_rekey_and_expiry),
             CK_TEST_CASE(test_refusals), CK_TEST_CASE(test_reload_links),
             CK_TEST_CASE(test_reload_group), CK_TEST_CASE(test_revoke_batch),
             CK_TEST_CASE(test_batch_triggers), CK_TEST_CASE(test_hybrid_group),
             CK_TEST_CASE(test_e2e_hybrid), CK_TEST_CASE(test_hybrid_crash),
             CK_TEST_CASE(test_crash_points), CK_TEST_CASE(test_crash_join),
             CK_TEST_CASE(test_ek_group), CK_TEST_CASE(test_group_sa_key_lengths),
             CK_TEST_CASE(test_hostile),
             CK_TEST_CASE(test_e2e_node_agent))
