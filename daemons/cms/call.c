/* cablekey-cms call control: the CONTRACT8 call flow as one state machine per call, for both
 * controller roles (call.h says how it is driven).
 *
 * Source role (CA, the caller's controller): NTFY hd / digits from line A -> CRCX to A (no key)
 * -> K_call and SPI -> XSET to the destination's controller (or, for a local call or a media
 * gateway line, CRCX to B directly) -> the destination ACK checked -> MDCX to A with the keys ->
 * the source ACK checked -> escrow (lawful intercept) -> answer (XANS, or NTFY hd from a local
 * B) -> MDCX sendrecv to A -> connected; hang-up or failure -> DLCX / XREL, K_call wiped, one
 * summary line.
 * Destination role (CB): XSET from a peer -> CRCX to B with the keys -> B's answer passed back
 * unchanged in the 200 to XSET (CB relays the ACK, CA checks it) -> NTFY hd from B -> XANS.
 *
 * Calls are few next to the messages they see, so lookups by transaction id walk the live calls;
 * call ids hash. A released call stays a while as a tombstone (keys wiped) so that a
 * retransmitted XSET gets its cached answer instead of a second installation.
 *
 * The escrow (a CMS EnvelopedData and a database row, about a millisecond) is queued under the
 * lock and written after it is released, by the thread that queued it, so that other calls'
 * signaling never waits for it; a call released meanwhile logs its summary once the escrow
 * count is known. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/util.h"

#define HASH_BUCKETS 4096
#define MAX_PENDING 4
#define REASON_MAX 32

enum party { P_LINE = 1, P_PEER = 2 };

enum purpose {
    PU_CRCX_A = 1,       /* source: CRCX to the caller, no key */
    PU_CRCX_B,           /* CRCX to the destination line with the keys (local call, or CB) */
    PU_XSET,             /* source: key delivery to the destination's controller */
    PU_MDCX_KEYS,        /* source: MDCX to A with the keys */
    PU_MDCX_SENDRECV,    /* source: MDCX to A, the call is answered */
    PU_XANS,             /* destination: B answered */
    PU_DLCX,
    PU_XREL,
};

enum state {
    ST_CRCX_A = 1, ST_SETUP_B, ST_MDCX_A, ST_RINGING, ST_ANSWERING, ST_CONNECTED, /* source */
    ST_D_CRCX_B, ST_D_RINGING, ST_D_ANSWER, ST_D_CONNECTED,                     /* destination */
    ST_RELEASED,
};

struct pending {
    bool active;
    enum party kind;
    size_t idx;                       /* line index, or the peer's route index */
    uint32_t txid;
    enum purpose purpose;
    char *text;                       /* line commands: kept for retransmission (may hold K_call) */
    size_t len;
    int sent;
    int64_t next;                     /* next retransmission (lines) or deadline (peers) */
};

struct media_addr {
    int family;
    char addr[64];
    uint16_t port, sig;
};

struct call {
    struct call *hnext;
    struct call *prev, *next;         /* the live list or the tombstones */
    char id[CMS_CALL_ID_HEX + 1];
    bool src;
    enum state state;
    bool answered, keys_installed, connected, released, keyed;
    bool tomb;                        /* in the tombstone list */
    char from[CMS_MAX_NUMBER + 1], to[CMS_MAX_NUMBER + 1];
    ssize_t a_line, b_line, peer;     /* -1: none */
    uint32_t spi;
    uint8_t k[CK_CALL_KEY_LEN];
    int spi_retries;
    enum ck_sdp_media_mode media;
    bool ipsec, compat_seq;
    struct ck_kmm_suite suite;
    struct media_addr a, b;
    int64_t start, setup_done, expire;
    struct pending pend[MAX_PENDING];
    uint32_t xset_txid;               /* destination: the XSET being answered */
    char *xset_resp;
    size_t xset_resp_len;
    char reason[REASON_MAX];
    size_t escrowed;
    bool escrow_pending, summary_deferred;
    int64_t released_at;
};

struct escrow_job {
    struct ck_li_call lc;             /* holds K_call: wiped once written */
    int64_t now_s;
};

struct line_state {
    uint32_t spi;                     /* 0: never heard */
    char endpoint[CK_MGCP_MAX_ENDPOINT];
    bool offhook;
    struct call *call;
    uint32_t last_ntfy;
    bool restricted;                  /* its ticket restricts calls to restriction's numbers */
    ck_ad_restricted restriction;
    /* Slots past the static lines: learnt from cablekey-prov (dynamic) or an unprovisioned
     * restricted device without a line (guest: it may call, it cannot be called, its number
     * is empty). A removed slot routes nothing and is reused once no call refers to it. */
    bool dynamic, guest, removed;
};

struct cms_call_core {
    pthread_mutex_t lock;
    /* The line names and slots (lines, n_lines, ls[].guest/removed) change under lock AND a
     * write hold of names; cms_call_is_party reads them under a read hold of names alone. It
     * runs under an SA's lock, which the core takes (sending) while holding lock: names is a
     * leaf lock, never held while calling out. */
    pthread_rwlock_t names;
    struct cms_call_io io;
    char self[CK_MGCP_MAX_ENDPOINT];
    enum cms_call_mode mode;
    enum ck_sdp_media_mode media;
    struct ck_kmm_suite suite;
    bool compat_seq;
    int64_t retry_ms;
    int tries;
    struct cms_line *lines;
    size_t n_lines;                   /* slots in use (static first, then dynamic and guests) */
    size_t n_static, cap_lines, n_guests;
    struct line_state *ls;
    /* Hash chains over the slots by number (guests: none) and by principal, so that a table
     * of many learnt lines costs no scan per signaling message: heads per bucket, next per
     * slot (-1 ends). A removed slot stays in its chains until reused (lookups skip it). */
    size_t n_buckets;                 /* a power of two, >= cap_lines */
    int32_t *num_head, *pr_head, *num_next, *pr_next;
    struct cms_route *routes;
    size_t n_routes;
    size_t *peer_of;                  /* route -> the first route with the same principal */
    uint32_t *peer_spi;               /* per route (canonical ones used) */
    struct call *hash[HASH_BUCKETS];
    struct call live, tomb;           /* list heads */
    size_t n_live, n_tomb;
    uint32_t txid_next;
    struct cms_call_stats st;
    struct escrow_job *jobs;          /* FIFO, written by run_escrows outside the lock */
    size_t n_jobs, cap_jobs;
};

#define MAX_ESCROW_JOBS 4096

/* ---- small helpers ---------------------------------------------------------------------- */

static void
list_init(struct call *h)
{
    h->prev = h->next = h;
}

static void
list_remove(struct call *x)
{
    x->prev->next = x->next;
    x->next->prev = x->prev;
    x->prev = x->next = x;
}

static void
list_append(struct call *h, struct call *x)
{
    x->prev = h->prev;
    x->next = h;
    h->prev->next = x;
    h->prev = x;
}

static size_t
id_hash(const char *id)
{
    uint32_t h = 2166136261u;

    for (; *id != '\0'; id++)
        h = (h ^ (uint8_t)*id) * 16777619u;
    return h % HASH_BUCKETS;
}

static struct call *
find_call(struct cms_call_core *c, const char *id)
{
    for (struct call *x = c->hash[id_hash(id)]; x != NULL; x = x->hnext)
        if (strcmp(x->id, id) == 0)
            return x;
    return NULL;
}

static void
hash_remove(struct cms_call_core *c, struct call *x)
{
    struct call **pp = &c->hash[id_hash(x->id)];

    for (; *pp != NULL; pp = &(*pp)->hnext)
        if (*pp == x) {
            *pp = x->hnext;
            return;
        }
}

static void
pending_clear(struct pending *p)
{
    if (p->text != NULL) {
        ck_memzero(p->text, p->len);
        free(p->text);
    }
    memset(p, 0, sizeof(*p));
}

static void
call_free(struct call *x)
{
    if (x == NULL)
        return;
    for (int i = 0; i < MAX_PENDING; i++)
        pending_clear(&x->pend[i]);
    free(x->xset_resp);
    ck_memzero(x, sizeof(*x));
    free(x);
}

static uint32_t
next_txid(struct cms_call_core *c)
{
    uint32_t t = c->txid_next;

    c->txid_next = t >= CK_MGCP_MAX_TXID ? 1 : t + 1;
    return t;
}

static size_t
name_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void
index_add(struct cms_call_core *c, size_t l)
{
    size_t b;

    if (!c->ls[l].guest && c->lines[l].number[0] != '\0') {
        b = name_hash(c->lines[l].number) & (c->n_buckets - 1);
        c->num_next[l] = c->num_head[b];
        c->num_head[b] = (int32_t)l;
    }
    b = name_hash(c->lines[l].principal) & (c->n_buckets - 1);
    c->pr_next[l] = c->pr_head[b];
    c->pr_head[b] = (int32_t)l;
}

static void
unlink_from(int32_t *head, int32_t *next, size_t b, size_t l)
{
    for (int32_t *pp = &head[b]; *pp >= 0; pp = &next[*pp])
        if ((size_t)*pp == l) {
            *pp = next[l];
            return;
        }
}

static void
index_del(struct cms_call_core *c, size_t l)
{
    if (!c->ls[l].guest && c->lines[l].number[0] != '\0')
        unlink_from(c->num_head, c->num_next,
                    name_hash(c->lines[l].number) & (c->n_buckets - 1), l);
    unlink_from(c->pr_head, c->pr_next, name_hash(c->lines[l].principal) & (c->n_buckets - 1),
                l);
}

/* (Re)sizes the index for cap slots and rebuilds it. */
static int
index_build(struct cms_call_core *c, size_t cap)
{
    size_t nb = 64;
    int32_t *nh, *ph, *nn, *pn;

    while (nb < cap)
        nb *= 2;
    nh = malloc(nb * sizeof(*nh));
    ph = malloc(nb * sizeof(*ph));
    nn = malloc(cap * sizeof(*nn));
    pn = malloc(cap * sizeof(*pn));
    if (nh == NULL || ph == NULL || nn == NULL || pn == NULL) {
        free(nh);
        free(ph);
        free(nn);
        free(pn);
        return ck_error_set(CK_ERR_NOMEM, "line index");
    }
    free(c->num_head);
    free(c->pr_head);
    free(c->num_next);
    free(c->pr_next);
    c->num_head = nh;
    c->pr_head = ph;
    c->num_next = nn;
    c->pr_next = pn;
    c->n_buckets = nb;
    memset(nh, 0xff, nb * sizeof(*nh));
    memset(ph, 0xff, nb * sizeof(*ph));
    /* In reverse, so that each chain lists its slots in index order (static lines first). */
    for (size_t i = c->n_lines; i-- > 0;)
        index_add(c, i);
    return 0;
}

/* A line (static first, then learnt) before a guest slot of the same principal. */
static ssize_t
line_of_principal(const struct cms_call_core *c, const char *client)
{
    ssize_t best = -1, guest = -1;

    for (int32_t i = c->pr_head[name_hash(client) & (c->n_buckets - 1)]; i >= 0;
         i = c->pr_next[i])
        if (!c->ls[i].removed && strcmp(c->lines[i].principal, client) == 0) {
            if (!c->ls[i].guest) {
                if (best < 0 || i < best)
                    best = i;
            } else {
                guest = i;
            }
        }
    return best >= 0 ? best : guest;
}

/* Guests have no number: they cannot be called. */
static ssize_t
line_of_number(const struct cms_call_core *c, const char *number)
{
    ssize_t best = -1;

    for (int32_t i = c->num_head[name_hash(number) & (c->n_buckets - 1)]; i >= 0;
         i = c->num_next[i])
        if (!c->ls[i].removed && !c->ls[i].guest && strcmp(c->lines[i].number, number) == 0 &&
            (best < 0 || i < best))
            best = i;
    return best;
}

/* What a line's calls show as the caller: its number, or a guest's MAC (12 hex digits). */
static const char *
line_caller(const struct cms_call_core *c, size_t l)
{
    return c->ls[l].guest ? c->lines[l].mac : c->lines[l].number;
}

static ssize_t
peer_of_principal(const struct cms_call_core *c, const char *client)
{
    for (size_t i = 0; i < c->n_routes; i++)
        if (strcmp(c->routes[i].principal, client) == 0)
            return (ssize_t)c->peer_of[i];
    return -1;
}

static ssize_t
route_of_number(const struct cms_call_core *c, const char *number)
{
    ssize_t best = -1;
    size_t best_len = 0;

    for (size_t i = 0; i < c->n_routes; i++) {
        size_t len = strlen(c->routes[i].prefix);
        if (len > best_len && strncmp(c->routes[i].prefix, number, len) == 0) {
            best = (ssize_t)i;
            best_len = len;
        }
    }
    return best;
}

static const char *
line_endpoint(const struct cms_call_core *c, size_t l)
{
    return c->ls[l].endpoint[0] != '\0' ? c->ls[l].endpoint : "aaln/1";
}

/* "200 12 OK\r\n" and the like, under the party's SA. */
static void
send_text(struct cms_call_core *c, const char *client, uint32_t spi, const char *text, size_t len)
{
    if (spi != 0 && c->io.send_sa != NULL &&
        c->io.send_sa(c->io.arg, client, spi, text, len) != 0)
        ck_log_debug("call: send under SA 0x%08x: %s", spi, ck_error_context());
}

static void
send_response(struct cms_call_core *c, const char *client, uint32_t spi, int code, uint32_t txid, const char *comment,
              const char *reason, const char *sdp)
{
    struct ck_mgcp_param p;
    ck_writer w;

    ck_writer_init(&w, CK_MGCP_MAX_MSG, false);
    if (reason != NULL) {
        ck_strlcpy(p.name, "X-CK-Reason", sizeof(p.name));
        ck_strlcpy(p.value, reason, sizeof(p.value));
    }
    if (ck_mgcp_build_response(code, txid, comment, reason != NULL ? &p : NULL,
                               reason != NULL ? 1 : 0, sdp, &w) == 0)
        send_text(c, client, spi, (const char *)w.data, w.len);
    ck_writer_free(&w);
}

static struct pending *
pending_slot(struct call *x)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (!x->pend[i].active)
            return &x->pend[i];
    return NULL;
}

static void
set_param(struct ck_mgcp_param *p, const char *name, const char *value)
{
    ck_strlcpy(p->name, name, sizeof(p->name));
    ck_strlcpy(p->value, value, sizeof(p->value));
}

/* A command to an endpoint line, retransmitted by the timer until answered. */
static int
line_command(struct cms_call_core *c, struct call *x, size_t l, const char *verb,
             const struct ck_mgcp_param *params, size_t n, const char *sdp, enum purpose pu,
             int64_t now)
{
    struct pending *p = pending_slot(x);
    ck_writer w;
    uint32_t txid;
    int rc;

    if (p == NULL)
        return ck_error_set(CK_ERR_LIMIT, "call %s: too many commands in flight", x->id);
    if (c->ls[l].spi == 0)
        return ck_error_set(CK_ERR_NOTFOUND, "line %s is not registered", c->lines[l].number);
    txid = next_txid(c);
    ck_writer_init(&w, CK_MGCP_MAX_MSG, true);
    if ((rc = ck_mgcp_build_command(verb, txid, line_endpoint(c, l), params, n, sdp, &w)) != 0) {
        ck_writer_free(&w);
        return rc;
    }
    /* A free slot is all zero (pending_clear): nothing to free before overwriting it. */
    *p = (struct pending){.active = true, .kind = P_LINE, .idx = l, .txid = txid, .purpose = pu,
                          .sent = 1, .next = now + c->retry_ms};
    p->text = (char *)ck_writer_take(&w, &p->len);
    send_text(c, c->lines[l].principal, c->ls[l].spi, p->text, p->len);
    return 0;
}

/* A command to a peer controller over our client channel (the transport retransmits). */
static int
peer_command(struct cms_call_core *c, struct call *x, size_t peer, const char *verb,
             const struct ck_mgcp_param *params, size_t n, const char *sdp, enum purpose pu,
             int64_t now)
{
    struct pending *p = pending_slot(x);
    const char *body;
    ck_writer w;
    uint32_t txid = 0;
    int rc;

    if (p == NULL)
        return ck_error_set(CK_ERR_LIMIT, "call %s: too many commands in flight", x->id);
    if (c->io.peer_command == NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "no peer channel");
    ck_writer_init(&w, CK_MGCP_MAX_MSG + 1, true);
    /* The whole message with a placeholder txid, then everything after its first line: the
     * channel writes its own first line with its own txid. */
    if ((rc = ck_mgcp_build_command(verb, 1, c->self, params, n, sdp, &w)) != 0 ||
        (rc = ck_writer_u8(&w, 0)) != 0)
        goto out;
    body = strstr((const char *)w.data, "\r\n");
    if (body == NULL) {
        rc = ck_error_set(CK_ERR_INVAL, "peer command");
        goto out;
    }
    if ((rc = c->io.peer_command(c->io.arg, peer, verb, body + 2, &txid)) != 0)
        goto out;
    *p = (struct pending){.active = true, .kind = P_PEER, .idx = peer, .txid = txid,
                          .purpose = pu, .sent = 1, .next = now + 2 * c->retry_ms * c->tries};
out:
    ck_writer_free(&w);
    return rc;
}

/* ---- keys ------------------------------------------------------------------------------- */

static bool
spi_in_use(struct cms_call_core *c, uint32_t spi)
{
    for (struct call *x = c->live.next; x != &c->live; x = x->next)
        if (x->keyed && !x->released && x->spi + 1 >= spi && x->spi <= spi + 1)
            return true;
    return false;
}

/* A fresh K_call and an SPI whose pair (SPI, SPI+1) overlaps no live call's. */
static int
new_keys(struct cms_call_core *c, struct call *x)
{
    uint32_t spi = 0;
    int rc;

    for (int i = 0; i < 64; i++) {
        if ((rc = ck_random_bytes(&spi, sizeof(spi))) != 0)
            return rc;
        spi = CK_CALL_SPI_MIN + spi % (CK_CALL_SPI_MAX - CK_CALL_SPI_MIN + 1);
        if (!spi_in_use(c, spi))
            break;
        spi = 0;
    }
    if (spi == 0)
        return ck_error_set(CK_ERR_LIMIT, "no free SPI");
    x->keyed = false;     /* not in spi_in_use's view while drawing */
    if ((rc = ck_random_bytes(x->k, sizeof(x->k))) != 0)
        return rc;
    x->spi = spi;
    x->keyed = true;
    return 0;
}

static void
wipe_key(struct call *x)
{
    ck_memzero(x->k, sizeof(x->k));
    x->keyed = false;
}

static int
build_sdp(struct call *x, const struct media_addr *m, bool with_key, enum ck_call_ack_role role,
          char *buf, size_t size)
{
    struct ck_sdp s;
    size_t len = 0;
    int rc;

    memset(&s, 0, sizeof(s));
    s.family = m->family;
    ck_strlcpy(s.addr, m->addr, sizeof(s.addr));
    s.media_port = m->port;
    s.secure_profile = x->media == CK_SDP_MEDIA_SRTP_AES_CM || x->media == CK_SDP_MEDIA_SRTP_GCM;
    s.media = x->media;
    if (with_key && x->keyed) {
        s.has_key = true;
        memcpy(s.key, x->k, sizeof(s.key));
        s.has_spi = true;
        s.spi = x->spi;
    }
    s.has_ipsec = x->ipsec;
    s.ipsec_suite = x->suite;
    s.compat_seq = x->ipsec && x->compat_seq;
    s.sig_port = m->sig;
    s.role = role;
    rc = ck_sdp_build(&s, buf, size, &len);
    ck_sdp_clear(&s);
    return rc;
}

static bool
media_from_sdp(const struct ck_sdp *s, struct media_addr *m)
{
    if (s->family == 0 || s->addr[0] == '\0' || s->media_port == 0)
        return false;
    m->family = s->family;
    ck_strlcpy(m->addr, s->addr, sizeof(m->addr));
    m->port = s->media_port;
    m->sig = s->sig_port;
    return true;
}

/* ---- release ---------------------------------------------------------------------------- */

static void
log_summary(struct cms_call_core *c, struct call *x)
{
    char line[512], sb[32];
    const char *result = x->connected                      ? "connected"
                         : strcmp(x->reason, "hangup") == 0 ? "released"
                                                            : "failed";
    int64_t setup = (x->setup_done != 0 ? x->setup_done : x->released_at) - x->start;

    if (x->escrow_pending) {
        x->summary_deferred = true;   /* run_escrows logs it with the count */
        return;
    }
    snprintf(line, sizeof(line),
             "call %s from %s to %s result %s reason=%s setup_ms=%lld media=%s ipsec=%s "
             "escrow=%zu",
             x->id, x->from[0] != '\0' ? x->from : "-", x->to[0] != '\0' ? x->to : "-", result,
             x->reason, (long long)(setup < 0 ? 0 : setup), cms_media_name(x->media),
             x->ipsec ? cms_suite_name(CK_KMM_DOI_IPSEC, x->suite, sb, sizeof(sb)) : "none",
             x->escrowed);
    if (c->io.log != NULL)
        c->io.log(c->io.arg, line);
    else
        ck_log_info("%s", line);
    if (x->connected)
        ;
    else if (strcmp(x->reason, "hangup") == 0)
        c->st.released++;
    else
        c->st.failed++;
}

static void
release_params(struct call *x, struct ck_mgcp_param *p)
{
    set_param(&p[0], "C", x->id);
    set_param(&p[1], "X-CK-Reason", x->reason);
}

enum { SKIP_A = 1, SKIP_B = 2, SKIP_PEER = 4 };

/* Ends the call: summary line, K_call wiped, DLCX to the local ends and XREL to the peer
 * controller (except those skip names: the party that released or stopped answering). */
static void
release(struct cms_call_core *c, struct call *x, const char *reason, unsigned skip, int64_t now)
{
    struct ck_mgcp_param p[2];

    if (x->released)
        return;
    for (int i = 0; i < MAX_PENDING; i++)
        pending_clear(&x->pend[i]);
    x->released = true;
    x->state = ST_RELEASED;
    ck_strlcpy(x->reason, reason, sizeof(x->reason));
    x->released_at = now;
    wipe_key(x);
    log_summary(c, x);
    release_params(x, p);
    if (x->a_line >= 0 && !(skip & SKIP_A) && c->ls[x->a_line].spi != 0)
        (void)line_command(c, x, (size_t)x->a_line, "DLCX", p, 2, NULL, PU_DLCX, now);
    if (x->b_line >= 0 && !(skip & SKIP_B) && c->ls[x->b_line].spi != 0)
        (void)line_command(c, x, (size_t)x->b_line, "DLCX", p, 2, NULL, PU_DLCX, now);
    if (x->peer >= 0 && !(skip & SKIP_PEER))
        (void)peer_command(c, x, (size_t)x->peer, "XREL", p, 2, NULL, PU_XREL, now);
    if (x->a_line >= 0 && c->ls[x->a_line].call == x)
        c->ls[x->a_line].call = NULL;
    if (x->b_line >= 0 && c->ls[x->b_line].call == x)
        c->ls[x->b_line].call = NULL;
}

/* A released call with nothing in flight becomes a tombstone; old tombstones go. */
static void
maybe_retire(struct cms_call_core *c, struct call *x, int64_t now)
{
    if (!x->released || x->tomb)
        return;
    for (int i = 0; i < MAX_PENDING; i++)
        if (x->pend[i].active)
            return;
    list_remove(x);
    c->n_live--;
    x->tomb = true;
    x->expire = now + CMS_CALL_LINGER_MS;
    list_append(&c->tomb, x);
    c->n_tomb++;
    while (c->n_tomb > CMS_CALL_MAX_TOMBSTONES) {
        struct call *old = c->tomb.next;
        list_remove(old);
        hash_remove(c, old);
        c->n_tomb--;
        call_free(old);
    }
}

static struct call *
new_call(struct cms_call_core *c, const char *id, bool src, int64_t now)
{
    struct call *x;
    uint8_t r[CMS_CALL_ID_HEX / 2];

    if (c->n_live >= CMS_CALL_MAX_LIVE) {
        ck_error_set(CK_ERR_LIMIT, "%d calls in progress", CMS_CALL_MAX_LIVE);
        return NULL;
    }
    if ((x = calloc(1, sizeof(*x))) == NULL) {
        ck_error_set(CK_ERR_NOMEM, "call");
        return NULL;
    }
    if (id != NULL) {
        ck_strlcpy(x->id, id, sizeof(x->id));
    } else {
        if (ck_random_bytes(r, sizeof(r)) != 0) {
            free(x);
            return NULL;
        }
        for (size_t i = 0; i < sizeof(r); i++) {
            x->id[2 * i] = "0123456789ABCDEF"[r[i] >> 4];
            x->id[2 * i + 1] = "0123456789ABCDEF"[r[i] & 15];
        }
    }
    x->src = src;
    x->a_line = x->b_line = x->peer = -1;
    x->start = now;
    x->media = c->media;
    x->suite = c->suite;
    x->compat_seq = c->compat_seq;
    x->ipsec = c->mode == CMS_CALL_NCS;
    x->hnext = c->hash[id_hash(x->id)];
    c->hash[id_hash(x->id)] = x;
    list_append(&c->live, x);
    c->n_live++;
    c->st.started++;
    return x;
}

/* ---- source role ------------------------------------------------------------------------ */

static void
fail(struct cms_call_core *c, struct call *x, const char *reason, unsigned skip, int64_t now)
{
    release(c, x, reason, skip, now);
    maybe_retire(c, x, now);
}

/* Key delivery to the destination: XSET to its controller, or CRCX to a local line. */
static void
distribute(struct cms_call_core *c, struct call *x, int64_t now)
{
    char sdp[CK_MGCP_MAX_MSG];
    struct ck_mgcp_param p[3];
    int rc;

    if (x->media != CK_SDP_MEDIA_RTP && (rc = new_keys(c, x)) != 0) {
        fail(c, x, "internal", 0, now);
        return;
    }
    x->state = ST_SETUP_B;
    if (x->peer >= 0) {
        set_param(&p[0], "C", x->id);
        set_param(&p[1], "X-CK-From", x->from);
        set_param(&p[2], "X-CK-To", x->to);
        rc = build_sdp(x, &x->a, true, 0, sdp, sizeof(sdp));
        if (rc == 0)
            rc = peer_command(c, x, (size_t)x->peer, "XSET", p, 3, sdp, PU_XSET, now);
    } else {
        set_param(&p[0], "C", x->id);
        set_param(&p[1], "M", "sendrecv");
        rc = build_sdp(x, &x->a, true, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp));
        if (rc == 0)
            rc = line_command(c, x, (size_t)x->b_line, "CRCX", p, 2, sdp, PU_CRCX_B, now);
    }
    ck_memzero(sdp, sizeof(sdp));
    if (rc != 0)
        fail(c, x, x->peer >= 0 ? "peer-timeout" : "unreachable", 0, now);
}

static void
start_call(struct cms_call_core *c, size_t l, const char *digits, int64_t now)
{
    struct ck_mgcp_param p[3];
    struct call *x = new_call(c, NULL, true, now);
    ssize_t dl, r;

    if (x == NULL) {
        ck_log_warn("call from %s: %s", line_caller(c, l), ck_error_context());
        return;
    }
    ck_strlcpy(x->from, line_caller(c, l), sizeof(x->from));
    ck_strlcpy(x->to, digits, sizeof(x->to));
    x->a_line = (ssize_t)l;
    c->ls[l].call = x;
    if (strlen(digits) > CMS_MAX_NUMBER || strspn(digits, "0123456789") != strlen(digits)) {
        /* '*', '#' or too long: no number any line or route can have. */
        fail(c, x, "unknown-number", 0, now);
        return;
    }
    if (c->ls[l].restricted && !ck_ad_restricted_allows(&c->ls[l].restriction, digits)) {
        const uint8_t *m = c->ls[l].restriction.mac;

        ck_log_warn("call from %s (device %02x:%02x:%02x:%02x:%02x:%02x) to %s refused: "
                    "restricted-calls ticket", line_caller(c, l), m[0], m[1], m[2], m[3], m[4],
                    m[5], digits);
        c->st.restricted_refused++;
        fail(c, x, "unknown-number", 0, now);
        return;
    }
    dl = line_of_number(c, digits);
    if (dl >= 0 && (size_t)dl != l) {
        if (c->ls[dl].call != NULL) {
            fail(c, x, "busy", 0, now);
            return;
        }
        if (c->ls[dl].spi == 0) {
            fail(c, x, "unreachable", 0, now);
            return;
        }
        x->b_line = dl;
        c->ls[dl].call = x;
        if (c->lines[dl].server && c->mode == CMS_CALL_SGCP) {
            /* SGCP: no CTA-to-server sub-key at all (FIG. 13). */
            x->media = CK_SDP_MEDIA_RTP;
            x->ipsec = false;
        }
    } else if (dl < 0 && (r = route_of_number(c, digits)) >= 0) {
        x->peer = (ssize_t)c->peer_of[r];
    } else {
        fail(c, x, dl >= 0 ? "busy" : "unknown-number", 0, now);
        return;
    }
    set_param(&p[0], "C", x->id);
    set_param(&p[1], "M", "recvonly");
    set_param(&p[2], "L", "p:20, a:PCMU");
    x->state = ST_CRCX_A;
    if (line_command(c, x, l, "CRCX", p, 3, NULL, PU_CRCX_A, now) != 0)
        fail(c, x, "internal", SKIP_A, now);
}

static bool
ack_ok(struct cms_call_core *c, struct call *x, const struct ck_sdp *s, enum ck_call_ack_role r)
{
    if (!x->keyed)
        return true;                  /* SGCP server leg: nothing to acknowledge */
    if (s->has_ack &&
        ck_call_ack_verify(x->k, sizeof(x->k), r, x->spi, (const uint8_t *)x->id, strlen(x->id),
                           s->ack, sizeof(s->ack)) == 0)
        return true;
    c->st.ack_mismatch++;
    return false;
}

static void
escrow(struct cms_call_core *c, struct call *x, int64_t now)
{
    struct ck_li_call lc;
    char sb[32];
    size_t n = 0;

    if (c->io.escrow == NULL)
        return;
    memset(&lc, 0, sizeof(lc));
    ck_strlcpy(lc.call_id, x->id, sizeof(lc.call_id));
    ck_strlcpy(lc.caller, x->from, sizeof(lc.caller));
    ck_strlcpy(lc.callee, x->to, sizeof(lc.callee));
    if (x->a_line >= 0)
        ck_strlcpy(lc.caller_mac, c->lines[x->a_line].mac, sizeof(lc.caller_mac));
    if (x->b_line >= 0)
        ck_strlcpy(lc.callee_mac, c->lines[x->b_line].mac, sizeof(lc.callee_mac));
    lc.started = x->start / 1000;
    lc.spi = x->spi;
    ck_strlcpy(lc.media, cms_media_name(x->media), sizeof(lc.media));
    if (x->ipsec)
        ck_strlcpy(lc.ipsec_suite, cms_suite_name(CK_KMM_DOI_IPSEC, x->suite, sb, sizeof(sb)),
                   sizeof(lc.ipsec_suite));
    lc.compat_seq = x->ipsec && x->compat_seq;
    snprintf(lc.src_media_addr, sizeof(lc.src_media_addr), "%.56s %u", x->a.addr,
             (unsigned)x->a.port);
    snprintf(lc.dst_media_addr, sizeof(lc.dst_media_addr), "%.56s %u", x->b.addr,
             (unsigned)x->b.port);
    if (x->keyed)
        memcpy(lc.k_call, x->k, sizeof(lc.k_call));
    if (c->n_jobs == c->cap_jobs && c->n_jobs < MAX_ESCROW_JOBS) {
        size_t cap = c->cap_jobs == 0 ? 16 : 2 * c->cap_jobs;
        struct escrow_job *j = calloc(cap, sizeof(*j));
        if (j != NULL) {
            if (c->n_jobs > 0)
                memcpy(j, c->jobs, c->n_jobs * sizeof(*j));
            ck_memzero(c->jobs, c->cap_jobs * sizeof(*j));
            free(c->jobs);
            c->jobs = j;
            c->cap_jobs = cap;
        }
    }
    if (c->n_jobs < c->cap_jobs) {
        c->jobs[c->n_jobs].lc = lc;
        c->jobs[c->n_jobs].now_s = now / 1000;
        c->n_jobs++;
        x->escrow_pending = true;
    } else {
        /* No room to queue: written here, under the lock (slower, never skipped). */
        if (c->io.escrow(c->io.arg, &lc, now / 1000, &n) != 0)
            ck_log_err("call %s: escrow failed: %s", x->id, ck_error_context());
        x->escrowed = n;
        c->st.escrowed += n;
    }
    ck_li_call_clear(&lc);
}

/* The queued escrows, written without the lock (ck_li is thread-safe); each call gets its count
 * and, if it was released meanwhile, its summary line. */
static void
run_escrows(struct cms_call_core *c)
{
    struct escrow_job job;
    struct call *x;
    size_t n;

    if (c->io.escrow == NULL)
        return;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        if (c->n_jobs == 0) {
            pthread_mutex_unlock(&c->lock);
            return;
        }
        job = c->jobs[0];
        memmove(c->jobs, c->jobs + 1, (c->n_jobs - 1) * sizeof(*c->jobs));
        c->n_jobs--;
        ck_memzero(&c->jobs[c->n_jobs], sizeof(*c->jobs));
        pthread_mutex_unlock(&c->lock);
        n = 0;
        if (c->io.escrow(c->io.arg, &job.lc, job.now_s, &n) != 0)
            ck_log_err("call %s: escrow failed: %s", job.lc.call_id, ck_error_context());
        pthread_mutex_lock(&c->lock);
        if ((x = find_call(c, job.lc.call_id)) != NULL && x->src && x->escrow_pending) {
            x->escrowed = n;
            x->escrow_pending = false;
            c->st.escrowed += n;
            if (x->summary_deferred) {
                x->summary_deferred = false;
                log_summary(c, x);
            }
        }
        pthread_mutex_unlock(&c->lock);
        ck_li_call_clear(&job.lc);
    }
}

static void
answer_src(struct cms_call_core *c, struct call *x, int64_t now)
{
    struct ck_mgcp_param p[2];

    x->answered = true;
    if (x->state != ST_RINGING)
        return;
    set_param(&p[0], "C", x->id);
    set_param(&p[1], "M", "sendrecv");
    x->state = ST_ANSWERING;
    if (line_command(c, x, (size_t)x->a_line, "MDCX", p, 2, NULL, PU_MDCX_SENDRECV, now) != 0)
        fail(c, x, "internal", 0, now);
}

/* The destination's answer to the key delivery (200 to XSET, or to CRCX for a local B). */
static void
dest_answer(struct cms_call_core *c, struct call *x, const struct ck_mgcp_msg *m, bool from_peer,
            int64_t now)
{
    char sdp[CK_MGCP_MAX_MSG];
    struct ck_mgcp_param p[2];
    struct ck_sdp s;
    const char *why;
    unsigned skip_dest = from_peer ? SKIP_PEER : SKIP_B;

    memset(&s, 0, sizeof(s));
    if (m->code == 533 && x->keyed) {
        c->st.spi_retries++;
        if (++x->spi_retries > CMS_CALL_MAX_SPI_RETRIES) {
            fail(c, x, "spi", skip_dest, now);
            return;
        }
        wipe_key(x);
        distribute(c, x, now);
        return;
    }
    if (m->code < 200 || m->code > 299) {
        why = ck_mgcp_param(m, "X-CK-Reason");
        fail(c, x, why != NULL && why[0] != '\0' ? why : "refused", skip_dest, now);
        return;
    }
    if (!m->has_sdp || ck_sdp_parse(m->sdp, m->sdp_len, &s) != 0 || !media_from_sdp(&s, &x->b)) {
        fail(c, x, "bad-answer", 0, now);
        goto out;
    }
    if (!ack_ok(c, x, &s, CK_CALL_ACK_DESTINATION)) {
        fail(c, x, "ack-mismatch", 0, now);
        goto out;
    }
    set_param(&p[0], "C", x->id);
    set_param(&p[1], "M", "recvonly");
    x->state = ST_MDCX_A;
    if (build_sdp(x, &x->b, true, CK_CALL_ACK_SOURCE, sdp, sizeof(sdp)) != 0 ||
        line_command(c, x, (size_t)x->a_line, "MDCX", p, 2, sdp, PU_MDCX_KEYS, now) != 0)
        fail(c, x, "internal", 0, now);
    ck_memzero(sdp, sizeof(sdp));
out:
    ck_sdp_clear(&s);
}

static void
source_answer(struct cms_call_core *c, struct call *x, const struct ck_mgcp_msg *m, int64_t now)
{
    struct ck_sdp s;

    memset(&s, 0, sizeof(s));
    if (m->code < 200 || m->code > 299) {
        fail(c, x, "source-refused", SKIP_A, now);
        return;
    }
    if (x->keyed && (!m->has_sdp || ck_sdp_parse(m->sdp, m->sdp_len, &s) != 0 ||
                     !ack_ok(c, x, &s, CK_CALL_ACK_SOURCE))) {
        fail(c, x, "ack-mismatch", 0, now);
        goto out;
    }
    x->keys_installed = true;
    x->setup_done = now;
    x->state = ST_RINGING;
    /* Both ends hold the keys: now, and only now, lawful intercept. */
    escrow(c, x, now);
    if (x->answered)
        answer_src(c, x, now);
out:
    ck_sdp_clear(&s);
}

/* ---- destination role ------------------------------------------------------------------- */

static void
xset_respond(struct cms_call_core *c, struct call *x, int code, const char *comment,
             const char *reason, const char *sdp)
{
    struct ck_mgcp_param p;
    ck_writer w;

    ck_writer_init(&w, CK_MGCP_MAX_MSG, false);
    if (reason != NULL)
        set_param(&p, "X-CK-Reason", reason);
    if (ck_mgcp_build_response(code, x->xset_txid, comment, reason != NULL ? &p : NULL,
                               reason != NULL ? 1 : 0, sdp, &w) == 0) {
        free(x->xset_resp);
        x->xset_resp = (char *)ck_writer_take(&w, &x->xset_resp_len);
        if (x->peer >= 0)
            send_text(c, c->routes[x->peer].principal, c->peer_spi[x->peer], x->xset_resp,
                      x->xset_resp_len);
    }
    ck_writer_free(&w);
}

static void
on_xset(struct cms_call_core *c, size_t peer, const struct ck_mgcp_msg *m, int64_t now)
{
    const char *id = ck_mgcp_param(m, "C"), *to = ck_mgcp_param(m, "X-CK-To"),
               *from = ck_mgcp_param(m, "X-CK-From");
    char sdp[CK_MGCP_MAX_MSG];
    struct ck_mgcp_param p[2];
    struct call *x;
    struct ck_sdp s;
    ssize_t dl;

    memset(&s, 0, sizeof(s));
    if (id == NULL || id[0] == '\0' || strlen(id) > CMS_CALL_ID_HEX || to == NULL ||
        from == NULL || strlen(to) > CMS_MAX_NUMBER || strlen(from) > CMS_MAX_NUMBER ||
        !m->has_sdp || ck_sdp_parse(m->sdp, m->sdp_len, &s) != 0) {
        c->st.dropped++;
        goto out;
    }
    if ((x = find_call(c, id)) != NULL) {
        if (!x->src && x->peer == (ssize_t)peer && x->xset_txid == m->txid) {
            /* A retransmission: the same answer again, never a second installation. */
            if (x->xset_resp != NULL)
                send_text(c, c->routes[peer].principal, c->peer_spi[peer], x->xset_resp,
                          x->xset_resp_len);
            goto out;
        }
        if (x->src || !x->released || x->peer != (ssize_t)peer) {
            c->st.dropped++;
            goto out;
        }
        /* A new attempt for a call this side refused (533): the tombstone gives way. */
        list_remove(x);
        hash_remove(c, x);
        if (x->tomb)
            c->n_tomb--;
        else
            c->n_live--;
        call_free(x);
    }
    if ((x = new_call(c, id, false, now)) == NULL) {
        c->st.dropped++;
        goto out;
    }
    x->peer = (ssize_t)peer;
    x->xset_txid = m->txid;
    ck_strlcpy(x->from, from, sizeof(x->from));
    ck_strlcpy(x->to, to, sizeof(x->to));
    x->media = s.media != CK_SDP_MEDIA_NONE ? s.media : CK_SDP_MEDIA_RTP;
    x->ipsec = s.has_ipsec;
    x->suite = s.ipsec_suite;
    x->compat_seq = s.compat_seq;
    if (s.has_key != s.has_spi || (!s.has_key && x->media != CK_SDP_MEDIA_RTP) ||
        !media_from_sdp(&s, &x->a)) {
        xset_respond(c, x, 400, "Bad key delivery", "bad-request", NULL);
        fail(c, x, "bad-request", SKIP_PEER, now);
        goto out;
    }
    if (s.has_key) {
        memcpy(x->k, s.key, sizeof(x->k));
        x->spi = s.spi;
        x->keyed = true;
    }
    dl = line_of_number(c, to);
    if (dl < 0) {
        xset_respond(c, x, 500, "Unknown endpoint", "unknown-number", NULL);
        fail(c, x, "unknown-number", SKIP_PEER, now);
        goto out;
    }
    if (c->ls[dl].call != NULL) {
        xset_respond(c, x, 401, "Busy", "busy", NULL);
        fail(c, x, "busy", SKIP_PEER, now);
        goto out;
    }
    if (c->ls[dl].spi == 0) {
        xset_respond(c, x, 502, "Unreachable", "unreachable", NULL);
        fail(c, x, "unreachable", SKIP_PEER, now);
        goto out;
    }
    x->b_line = dl;
    c->ls[dl].call = x;
    set_param(&p[0], "C", x->id);
    set_param(&p[1], "M", "sendrecv");
    x->state = ST_D_CRCX_B;
    if (build_sdp(x, &x->a, true, CK_CALL_ACK_DESTINATION, sdp, sizeof(sdp)) != 0 ||
        line_command(c, x, (size_t)dl, "CRCX", p, 2, sdp, PU_CRCX_B, now) != 0) {
        xset_respond(c, x, 510, "Internal error", "internal", NULL);
        fail(c, x, "internal", SKIP_PEER | SKIP_B, now);
    }
    ck_memzero(sdp, sizeof(sdp));
out:
    ck_sdp_clear(&s);
}

/* B answered CB's CRCX: its answer (and ACK) goes back to CA unchanged. CB keeps no key. */
static void
dst_crcx_answer(struct cms_call_core *c, struct call *x, const struct ck_mgcp_msg *m,
                int64_t now)
{
    const char *why = ck_mgcp_param(m, "X-CK-Reason");

    wipe_key(x);
    if (m->code == 533) {
        xset_respond(c, x, 533, "SPI in use", NULL, NULL);
        fail(c, x, "spi-in-use", SKIP_PEER | SKIP_B, now);
        return;
    }
    if (m->code < 200 || m->code > 299) {
        xset_respond(c, x, m->code, m->comment[0] != '\0' ? m->comment : "Refused",
                     why != NULL ? why : "refused", NULL);
        fail(c, x, why != NULL ? why : "refused", SKIP_PEER | SKIP_B, now);
        return;
    }
    x->setup_done = now;
    x->keys_installed = true;
    xset_respond(c, x, m->code, m->comment[0] != '\0' ? m->comment : "OK", NULL,
                 m->has_sdp ? m->sdp : NULL);
    x->state = ST_D_RINGING;
    if (x->answered) {
        struct ck_mgcp_param p;
        set_param(&p, "C", x->id);
        x->state = ST_D_ANSWER;
        if (peer_command(c, x, (size_t)x->peer, "XANS", &p, 1, NULL, PU_XANS, now) != 0)
            fail(c, x, "peer-timeout", 0, now);
    }
}

/* ---- dispatch --------------------------------------------------------------------------- */

static void
on_ntfy(struct cms_call_core *c, size_t l, const struct ck_mgcp_msg *m, int64_t now)
{
    struct line_state *ls = &c->ls[l];
    const char *o = ck_mgcp_param(m, "O");
    char digits[CK_MGCP_MAX_DIGITS + 1];
    enum ck_mgcp_event ev;
    struct call *x;

    if (ls->last_ntfy == m->txid) {
        send_response(c, c->lines[l].principal, ls->spi, 200, m->txid, "OK", NULL, NULL);
        return;
    }
    ls->last_ntfy = m->txid;
    send_response(c, c->lines[l].principal, ls->spi, 200, m->txid, "OK", NULL, NULL);
    if (o == NULL || ck_mgcp_parse_observed(o, &ev, digits, sizeof(digits)) != 0) {
        c->st.dropped++;
        return;
    }
    x = ls->call;
    switch (ev) {
    case CK_MGCP_EV_OFFHOOK:
        ls->offhook = true;
        if (x == NULL || x->released || x->b_line != (ssize_t)l)
            break;
        if (x->src) {
            answer_src(c, x, now);
        } else {
            x->answered = true;
            if (x->state == ST_D_RINGING) {
                struct ck_mgcp_param p;
                set_param(&p, "C", x->id);
                x->state = ST_D_ANSWER;
                if (peer_command(c, x, (size_t)x->peer, "XANS", &p, 1, NULL, PU_XANS, now) != 0)
                    fail(c, x, "peer-timeout", 0, now);
            }
        }
        break;
    case CK_MGCP_EV_DIGITS:
        if (x != NULL) {
            c->st.dropped++;
            break;
        }
        start_call(c, l, digits, now);
        break;
    case CK_MGCP_EV_ONHOOK:
        ls->offhook = false;
        if (x == NULL)
            break;
        /* The hanging-up end gets its DLCX too (it tears its keys down on it). */
        release(c, x, "hangup", 0, now);
        maybe_retire(c, x, now);
        break;
    }
}

static struct pending *
match_pending(struct cms_call_core *c, enum party kind, size_t idx, uint32_t txid,
              struct call **xo)
{
    for (struct call *x = c->live.next; x != &c->live; x = x->next)
        for (int i = 0; i < MAX_PENDING; i++) {
            struct pending *p = &x->pend[i];
            if (p->active && p->kind == kind && p->idx == idx && p->txid == txid) {
                *xo = x;
                return p;
            }
        }
    return NULL;
}

static void
on_response(struct cms_call_core *c, enum party kind, size_t idx, const struct ck_mgcp_msg *m,
            int64_t now)
{
    struct call *x = NULL;
    struct pending *p = match_pending(c, kind, idx, m->txid, &x);
    enum purpose pu;

    if (p == NULL) {
        c->st.dropped++;
        return;
    }
    if (m->code < 200)
        return;                       /* provisional: keep waiting */
    pu = p->purpose;
    pending_clear(p);
    switch (pu) {
    case PU_CRCX_A:
        if (x->state != ST_CRCX_A)
            break;
        if (m->code < 200 || m->code > 299) {
            fail(c, x, "source-refused", SKIP_A, now);
            break;
        } else {
            struct ck_sdp s;
            memset(&s, 0, sizeof(s));
            if (!m->has_sdp || ck_sdp_parse(m->sdp, m->sdp_len, &s) != 0 ||
                !media_from_sdp(&s, &x->a)) {
                ck_sdp_clear(&s);
                fail(c, x, "bad-answer", 0, now);
                break;
            }
            ck_sdp_clear(&s);
        }
        distribute(c, x, now);
        break;
    case PU_CRCX_B:
        if (x->src && x->state == ST_SETUP_B)
            dest_answer(c, x, m, false, now);
        else if (!x->src && x->state == ST_D_CRCX_B)
            dst_crcx_answer(c, x, m, now);
        break;
    case PU_XSET:
        if (x->state == ST_SETUP_B)
            dest_answer(c, x, m, true, now);
        break;
    case PU_MDCX_KEYS:
        if (x->state == ST_MDCX_A)
            source_answer(c, x, m, now);
        break;
    case PU_MDCX_SENDRECV:
    case PU_XANS:
        if (m->code >= 200 && m->code <= 299 && !x->released) {
            x->connected = true;
            x->state = x->src ? ST_CONNECTED : ST_D_CONNECTED;
            c->st.connected++;
        } else if (!x->released) {
            fail(c, x, pu == PU_XANS ? "peer-refused" : "source-refused", 0, now);
        }
        break;
    case PU_DLCX:
    case PU_XREL:
        break;
    }
    maybe_retire(c, x, now);
}

static void
on_peer_command(struct cms_call_core *c, size_t peer, const struct ck_mgcp_msg *m, int64_t now)
{
    uint32_t spi = c->peer_spi[peer];
    const char *who = c->routes[peer].principal, *id = ck_mgcp_param(m, "C");
    struct call *x = id != NULL ? find_call(c, id) : NULL;

    if (strcmp(m->verb, "XSET") == 0) {
        on_xset(c, peer, m, now);
        return;
    }
    if (strcmp(m->verb, "XANS") == 0) {
        send_response(c, who, spi, 200, m->txid, "OK", NULL, NULL);
        if (x != NULL && x->src && x->peer == (ssize_t)peer && !x->released)
            answer_src(c, x, now);
        else if (x == NULL)
            c->st.dropped++;
        return;
    }
    if (strcmp(m->verb, "XREL") == 0) {
        const char *why = ck_mgcp_param(m, "X-CK-Reason");
        char reason[REASON_MAX];

        send_response(c, who, spi, 200, m->txid, "OK", NULL, NULL);
        if (x == NULL || x->peer != (ssize_t)peer) {
            c->st.dropped++;
            return;
        }
        ck_strlcpy(reason, why != NULL && why[0] != '\0' ? why : "hangup", sizeof(reason));
        release(c, x, reason, SKIP_PEER, now);
        maybe_retire(c, x, now);
        return;
    }
    send_response(c, who, spi, 504, m->txid, "Unknown command", NULL, NULL);
    c->st.dropped++;
}

/* ---- dynamic lines and guests ---------------------------------------------------------- */

/* mta-<12 hex>@REALM: the name the KDC gives a device it admitted unprovisioned. */
static bool
guest_name_ok(const char *client, char mac[13])
{
    const char *at;

    if (strncmp(client, "mta-", 4) != 0 || (at = strchr(client, '@')) == NULL ||
        at - client != 16 || at[1] == '\0')
        return false;
    for (size_t i = 0; i < 12; i++) {
        char ch = client[4 + i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
        mac[i] = ch;
    }
    mac[12] = '\0';
    return true;
}

/* A slot for a dynamic line or a guest: a removed one no call refers to, or a new one. */
static ssize_t
slot_new(struct cms_call_core *c)
{
    for (size_t i = c->n_static; i < c->n_lines; i++)
        if (c->ls[i].removed && c->ls[i].call == NULL) {
            if (c->ls[i].guest)
                c->n_guests--;
            index_del(c, i);
            memset(&c->lines[i], 0, sizeof(c->lines[i]));
            memset(&c->ls[i], 0, sizeof(c->ls[i]));
            return (ssize_t)i;
        }
    if (c->n_lines - c->n_static >= CMS_CALL_MAX_DYNAMIC) {
        ck_error_set(CK_ERR_LIMIT, "more than %d dynamic lines and guests", CMS_CALL_MAX_DYNAMIC);
        return -1;
    }
    if (c->n_lines == c->cap_lines) {
        size_t cap = c->cap_lines < 16 ? 16 : 2 * c->cap_lines;
        struct cms_line *l = realloc(c->lines, cap * sizeof(*l));
        if (l == NULL) {
            ck_error_set(CK_ERR_NOMEM, "dynamic lines");
            return -1;
        }
        c->lines = l;
        struct line_state *ls = realloc(c->ls, cap * sizeof(*ls));
        if (ls == NULL) {
            ck_error_set(CK_ERR_NOMEM, "dynamic lines");
            return -1;
        }
        c->ls = ls;
        /* The index first: cap_lines only grows with an index that covers it. */
        if (index_build(c, cap) != 0)
            return -1;
        c->cap_lines = cap;
    }
    memset(&c->lines[c->n_lines], 0, sizeof(c->lines[0]));
    memset(&c->ls[c->n_lines], 0, sizeof(c->ls[0]));
    return (ssize_t)c->n_lines++;
}

static void
slot_remove(struct cms_call_core *c, size_t l)
{
    /* The slot keeps its names while a call refers to it (the call ends normally); nothing
     * finds it any more, so no new call starts to or from it. */
    c->ls[l].removed = true;
}

void
cms_call_set_restriction(struct cms_call_core *c, const char *client, const ck_ad_restricted *r)
{
    ssize_t l;
    char mac[13];

    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    pthread_rwlock_wrlock(&c->names);
    l = line_of_principal(c, client);
    if (l >= 0 && c->ls[l].guest && r == NULL) {
        /* An unrestricted ticket without a line: no longer a guest (and not a party). */
        slot_remove(c, (size_t)l);
        l = -1;
    } else if (l < 0 && r != NULL && guest_name_ok(client, mac) &&
               c->n_guests < CMS_CALL_MAX_GUESTS && (l = slot_new(c)) >= 0) {
        ck_strlcpy(c->lines[l].principal, client, sizeof(c->lines[l].principal));
        ck_strlcpy(c->lines[l].mac, mac, sizeof(c->lines[l].mac));
        c->ls[l].guest = true;
        c->n_guests++;
        index_add(c, (size_t)l);
        ck_log_info("call: %s is an unprovisioned guest (restricted calls, caller id %s)", client,
                    mac);
    }
    if (l >= 0) {
        c->ls[l].restricted = r != NULL;
        if (r != NULL)
            c->ls[l].restriction = *r;
        else
            memset(&c->ls[l].restriction, 0, sizeof(c->ls[l].restriction));
    }
    pthread_rwlock_unlock(&c->names);
    pthread_mutex_unlock(&c->lock);
}

static int
dyn_cmp(const void *a, const void *b)
{
    const struct cms_dyn_line *x = a, *y = b;
    int r = strcmp(x->number, y->number);

    return r != 0 ? r : strcmp(x->principal, y->principal);
}

static bool
number_ok(const char *n)
{
    size_t len = strlen(n);

    return len > 0 && len <= CMS_MAX_NUMBER && strspn(n, "0123456789") == len;
}

int
cms_call_set_dynamic_lines(struct cms_call_core *c, struct cms_dyn_line *v, size_t n,
                           size_t *added, size_t *removed)
{
    int rc = 0;

    *added = *removed = 0;
    if (n > 1)
        qsort(v, n, sizeof(*v), dyn_cmp);
    pthread_mutex_lock(&c->lock);
    pthread_rwlock_wrlock(&c->names);
    /* 1. Dynamic lines not in the snapshot go (at once: nothing routes to them any more). */
    for (size_t i = c->n_static; i < c->n_lines; i++) {
        struct cms_dyn_line key;
        if (!c->ls[i].dynamic || c->ls[i].removed)
            continue;
        memset(&key, 0, sizeof(key));
        ck_strlcpy(key.number, c->lines[i].number, sizeof(key.number));
        ck_strlcpy(key.principal, c->lines[i].principal, sizeof(key.principal));
        if (n > 0 && bsearch(&key, v, n, sizeof(*v), dyn_cmp) != NULL)
            continue;
        slot_remove(c, i);
        ck_log_notice("prov line remove %s", c->lines[i].number);
        (*removed)++;
    }
    /* 2. New ones come; a static line's number stays the static line's. */
    for (size_t j = 0; j < n; j++) {
        ssize_t l, g;
        if (!number_ok(v[j].number) || v[j].principal[0] == '\0' ||
            (j > 0 && strcmp(v[j].number, v[j - 1].number) == 0))
            continue;
        if ((l = line_of_number(c, v[j].number)) >= 0) {
            if (!c->ls[l].dynamic)
                ck_log_debug("prov line %s: the static line wins", v[j].number);
            else if (strcmp(c->lines[l].principal, v[j].principal) != 0)
                ck_log_warn("prov line %s: already %s", v[j].number, c->lines[l].principal);
            continue;
        }
        /* The device's guest slot (unprovisioned until now) gives way to its line, which
         * takes over where the device signals from (reachable at once). */
        struct line_state was;
        bool had_guest = false;
        if ((g = line_of_principal(c, v[j].principal)) >= 0 && c->ls[g].guest) {
            was = c->ls[g];
            had_guest = true;
            slot_remove(c, (size_t)g);
        }
        if ((l = slot_new(c)) < 0) {
            rc = CK_ERR_LIMIT;
            ck_log_err("prov line add %s: %s", v[j].number, ck_error_context());
            break;
        }
        ck_strlcpy(c->lines[l].number, v[j].number, sizeof(c->lines[l].number));
        ck_strlcpy(c->lines[l].principal, v[j].principal, sizeof(c->lines[l].principal));
        ck_strlcpy(c->lines[l].mac, v[j].mac, sizeof(c->lines[l].mac));
        c->ls[l].dynamic = true;
        index_add(c, (size_t)l);
        if (had_guest && was.call == NULL) {
            c->ls[l].spi = was.spi;
            ck_strlcpy(c->ls[l].endpoint, was.endpoint, sizeof(c->ls[l].endpoint));
            c->ls[l].restricted = was.restricted;
            c->ls[l].restriction = was.restriction;
        }
        ck_log_notice("prov line add %s %s", v[j].number, v[j].principal);
        (*added)++;
    }
    pthread_rwlock_unlock(&c->names);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

size_t
cms_call_dynamic_lines(struct cms_call_core *c)
{
    size_t n = 0;

    pthread_mutex_lock(&c->lock);
    for (size_t i = c->n_static; i < c->n_lines; i++)
        if (c->ls[i].dynamic && !c->ls[i].removed)
            n++;
    pthread_mutex_unlock(&c->lock);
    return n;
}

int
cms_call_on_message(struct cms_call_core *c, const char *client, uint32_t spi_in,
                    const uint8_t *text, size_t len, int64_t now)
{
    struct ck_mgcp_msg *m = malloc(sizeof(*m));
    ssize_t l, peer;

    if (m == NULL)
        return ck_error_set(CK_ERR_NOMEM, "call message");
    pthread_mutex_lock(&c->lock);
    if (ck_mgcp_parse(text, len, m) != 0) {
        c->st.dropped++;
        goto out;
    }
    if ((l = line_of_principal(c, client)) >= 0) {
        c->ls[l].spi = spi_in;
        if (m->is_response) {
            on_response(c, P_LINE, (size_t)l, m, now);
        } else {
            ck_strlcpy(c->ls[l].endpoint, m->endpoint, sizeof(c->ls[l].endpoint));
            if (strcmp(m->verb, "NTFY") == 0)
                on_ntfy(c, (size_t)l, m, now);
            else if (strcmp(m->verb, "RSIP") != 0)  /* RSIP: signaling.c answers it */
                send_response(c, client, spi_in, 200, m->txid, "OK", NULL, NULL);
        }
    } else if ((peer = peer_of_principal(c, client)) >= 0) {
        c->peer_spi[peer] = spi_in;
        if (m->is_response)
            c->st.dropped++;          /* our commands' answers come on our client channel */
        else
            on_peer_command(c, (size_t)peer, m, now);
    } else {
        c->st.dropped++;
    }
out:
    ck_mgcp_msg_clear(m);
    free(m);
    pthread_mutex_unlock(&c->lock);
    run_escrows(c);
    return 0;
}

int
cms_call_on_peer_response(struct cms_call_core *c, size_t route, uint32_t txid,
                          const uint8_t *text, size_t len, int64_t now)
{
    struct ck_mgcp_msg *m = malloc(sizeof(*m));

    if (m == NULL)
        return ck_error_set(CK_ERR_NOMEM, "call message");
    pthread_mutex_lock(&c->lock);
    if (route >= c->n_routes || ck_mgcp_parse(text, len, m) != 0 || !m->is_response ||
        m->txid != txid) {
        c->st.dropped++;
        goto out;
    }
    on_response(c, P_PEER, c->peer_of[route], m, now);
out:
    ck_mgcp_msg_clear(m);
    free(m);
    pthread_mutex_unlock(&c->lock);
    run_escrows(c);
    return 0;
}

/* ---- timers ----------------------------------------------------------------------------- */

static void
on_timeout(struct cms_call_core *c, struct call *x, struct pending *p, int64_t now)
{
    enum purpose pu = p->purpose;
    enum party kind = p->kind;

    pending_clear(p);
    if (x->released)
        return;                       /* a DLCX / XREL nobody answered: the call is over */
    switch (pu) {
    case PU_CRCX_A:
    case PU_MDCX_KEYS:
    case PU_MDCX_SENDRECV:
        fail(c, x, "no-ack-source", SKIP_A, now);
        break;
    case PU_CRCX_B:
        if (!x->src) {
            xset_respond(c, x, 406, "Transaction timeout", "no-ack-destination", NULL);
            fail(c, x, "no-ack-destination", SKIP_B | SKIP_PEER, now);
        } else {
            fail(c, x, "no-ack-destination", SKIP_B, now);
        }
        break;
    case PU_XSET:
    case PU_XANS:
    default:
        fail(c, x, kind == P_PEER ? "peer-timeout" : "no-ack-destination", 0, now);
        break;
    }
}

int
cms_call_on_timer(struct cms_call_core *c, int64_t now)
{
    struct call *x, *nx;

    pthread_mutex_lock(&c->lock);
    for (x = c->live.next; x != &c->live; x = nx) {
        nx = x->next;
        for (int i = 0; i < MAX_PENDING; i++) {
            struct pending *p = &x->pend[i];
            if (!p->active || p->next > now)
                continue;
            if (p->kind == P_LINE && p->sent < c->tries) {
                p->sent++;
                p->next = now + c->retry_ms;
                c->st.retransmissions++;
                send_text(c, c->lines[p->idx].principal, c->ls[p->idx].spi, p->text, p->len);
                continue;
            }
            on_timeout(c, x, p, now);
        }
        maybe_retire(c, x, now);      /* nx stays live: only x moves */
    }
    while (c->tomb.next != &c->tomb && c->tomb.next->expire <= now) {
        x = c->tomb.next;
        list_remove(x);
        hash_remove(c, x);
        c->n_tomb--;
        call_free(x);
    }
    pthread_mutex_unlock(&c->lock);
    run_escrows(c);
    return 0;
}

int64_t
cms_call_next_timeout(struct cms_call_core *c, int64_t now)
{
    int64_t due = -1;

    pthread_mutex_lock(&c->lock);
    for (struct call *x = c->live.next; x != &c->live; x = x->next)
        for (int i = 0; i < MAX_PENDING; i++)
            if (x->pend[i].active && (due < 0 || x->pend[i].next < due))
                due = x->pend[i].next;
    if (c->tomb.next != &c->tomb && (due < 0 || c->tomb.next->expire < due))
        due = c->tomb.next->expire;
    pthread_mutex_unlock(&c->lock);
    if (due < 0)
        return -1;
    return due <= now ? 0 : due - now;
}

/* ---- life ------------------------------------------------------------------------------- */

int
cms_call_core_new(const struct cms_config *cfg, const char *self_name,
                  const struct cms_call_io *io, struct cms_call_core **out)
{
    struct cms_call_core *c = calloc(1, sizeof(*c));
    int rc = 0;

    *out = NULL;
    if (c == NULL)
        return ck_error_set(CK_ERR_NOMEM, "call core");
    pthread_mutex_init(&c->lock, NULL);
    pthread_rwlock_init(&c->names, NULL);
    list_init(&c->live);
    list_init(&c->tomb);
    c->io = *io;
    ck_strlcpy(c->self, self_name, sizeof(c->self));
    c->mode = cfg->call_mode;
    c->media = cfg->media;
    c->suite = cfg->call_suite;
    c->compat_seq = cfg->compat_seq;
    c->retry_ms = cfg->call_retry_ms > 0 ? cfg->call_retry_ms : CMS_DEFAULT_CALL_RETRY_MS;
    c->tries = cfg->call_tries > 0 ? (int)cfg->call_tries : CMS_DEFAULT_CALL_TRIES;
    c->n_lines = c->n_static = cfg->n_lines;
    c->cap_lines = cfg->n_lines + 1;
    c->n_routes = cfg->n_routes;
    c->lines = calloc(c->cap_lines, sizeof(*c->lines));
    c->ls = calloc(c->cap_lines, sizeof(*c->ls));
    c->routes = calloc(cfg->n_routes + 1, sizeof(*c->routes));
    c->peer_of = calloc(cfg->n_routes + 1, sizeof(*c->peer_of));
    c->peer_spi = calloc(cfg->n_routes + 1, sizeof(*c->peer_spi));
    if (c->lines == NULL || c->ls == NULL || c->routes == NULL || c->peer_of == NULL ||
        c->peer_spi == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "call core");
        goto out;
    }
    if (cfg->n_lines > 0)
        memcpy(c->lines, cfg->lines, cfg->n_lines * sizeof(*c->lines));
    if (cfg->n_routes > 0)
        memcpy(c->routes, cfg->routes, cfg->n_routes * sizeof(*c->routes));
    if ((rc = index_build(c, c->cap_lines)) != 0)
        goto out;
    for (size_t i = 0; i < c->n_routes; i++) {
        c->peer_of[i] = i;
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->routes[j].principal, c->routes[i].principal) == 0) {
                c->peer_of[i] = c->peer_of[j];
                break;
            }
    }
    if ((rc = ck_random_bytes(&c->txid_next, sizeof(c->txid_next))) != 0)
        goto out;
    c->txid_next = c->txid_next % CK_MGCP_MAX_TXID + 1;
out:
    if (rc != 0) {
        cms_call_core_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void
cms_call_core_free(struct cms_call_core *c)
{
    struct call *x, *nx;

    if (c == NULL)
        return;
    if (c->live.next != NULL) {
        for (x = c->live.next; x != &c->live; x = nx) {
            nx = x->next;
            call_free(x);
        }
        for (x = c->tomb.next; x != &c->tomb; x = nx) {
            nx = x->next;
            call_free(x);
        }
    }
    if (c->jobs != NULL) {
        ck_memzero(c->jobs, c->cap_jobs * sizeof(*c->jobs));
        free(c->jobs);
    }
    free(c->lines);
    free(c->ls);
    free(c->num_head);
    free(c->pr_head);
    free(c->num_next);
    free(c->pr_next);
    free(c->routes);
    free(c->peer_of);
    free(c->peer_spi);
    pthread_mutex_destroy(&c->lock);
    pthread_rwlock_destroy(&c->names);
    free(c);
}

bool
cms_call_is_party(struct cms_call_core *c, const char *client)
{
    bool r;

    if (c == NULL)
        return false;
    pthread_rwlock_rdlock(&c->names);
    r = line_of_principal(c, client) >= 0 || peer_of_principal(c, client) >= 0;
    pthread_rwlock_unlock(&c->names);
    return r;
}

bool
cms_call_is_party_sa(struct cms_call_core *c, const char *client, bool restricted)
{
    char mac[13];

    return cms_call_is_party(c, client) || (c != NULL && restricted && guest_name_ok(client, mac));
}

void
cms_call_get_stats(struct cms_call_core *c, struct cms_call_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->st;
    pthread_mutex_unlock(&c->lock);
}

size_t
cms_call_live(struct cms_call_core *c)
{
    size_t n;

    pthread_mutex_lock(&c->lock);
    n = c->n_live;
    pthread_mutex_unlock(&c->lock);
    return n;
}

bool
cms_call_test_key(struct cms_call_core *c, const char *call_id, uint8_t out[CK_CALL_KEY_LEN],
                  bool *keyed)
{
    struct call *x;

    pthread_mutex_lock(&c->lock);
    if ((x = find_call(c, call_id)) != NULL) {
        memcpy(out, x->k, CK_CALL_KEY_LEN);
        *keyed = x->keyed;
    }
    pthread_mutex_unlock(&c->lock);
    return x != NULL;
}
