/* The KSV core: sessions, registration, sealed messages with ACK_REQD retransmission, NUDGE,
 * alarms, reload. Links and groups are in links.c and groups.c. */
#define KSV_INTERNAL
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <openssl/crypto.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/util.h"
#include "ksv.h"

/* ---- small helpers ------------------------------------------------------------------------ */

void
ksv_log(struct ksv_core *k, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (k->p.cb.log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    k->p.cb.log(k->p.cb.arg, level, line);
}

bool
ksv_crash(struct ksv_core *k, const char *point)
{
    if (k->crash_point[0] == '\0' || strcmp(point, k->crash_point) != 0)
        return false;
    if (++k->crash_seen != k->crash_n)
        return false;
    k->crashed = true;
    ksv_log(k, LOG_WARNING, "ksv crash point %s reached (%ld): killing the process", point,
            k->crash_n);
    if (k->p.cb.crash != NULL)
        k->p.cb.crash(k->p.cb.arg, point);
    else
        raise(SIGKILL);
    return true;
}

static int
parse_crash(struct ksv_core *k, const char *spec)
{
    const char *colon;
    int64_t n = 1;

    if (spec == NULL || spec[0] == '\0')
        return 0;
    colon = strchr(spec, ':');
    if (colon == NULL || (size_t)(colon - spec) >= sizeof(k->crash_point) || colon == spec ||
        ck_parse_int64(colon + 1, 1, 1000000000, &n) != 0)
        return ck_error_set(CK_ERR_CONFIG, "CK_KSV_CRASH=%s: expected POINT:N", spec);
    memcpy(k->crash_point, spec, (size_t)(colon - spec));
    k->crash_point[colon - spec] = '\0';
    k->crash_n = (long)n;
    return 0;
}

int
ksv_addr_from_text(const char *text, struct ck_ksv_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->addr) == 1) {
        out->family = CK_KSV_AF_IPV4;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->addr) == 1) {
        out->family = CK_KSV_AF_IPV6;
        return 0;
    }
    return ck_error_set(CK_ERR_INVAL, "address %s", text);
}

int
ksv_sockaddr_from_text(const char *text, uint16_t port, struct sockaddr_storage *ss,
                       socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)ss;

    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = sizeof(*s4);
        return 0;
    }
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof(*s6);
        return 0;
    }
    return ck_error_set(CK_ERR_INVAL, "address %s", text);
}

static const char *
fmt_sockaddr(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(s4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
    } else {
        snprintf(buf, size, "?");
    }
    return buf;
}

void
ksv_xf_wire(const struct ck_ksvtopo_transform *xf, uint8_t *proto, uint8_t *mode,
            uint16_t *enc_alg, uint16_t *auth_alg, uint8_t *enc_len, uint8_t *auth_len)
{
    *proto = xf->trans == CK_KSVTOPO_AH ? CK_KSV_PROTO_AH : CK_KSV_PROTO_ESP;
    *mode = xf->mode == CK_KSVTOPO_TUNNEL ? CK_KSV_MODE_TUNNEL : CK_KSV_MODE_TRANSPORT;
    *enc_alg = 0;
    *enc_len = 0;
    if (xf->trans == CK_KSVTOPO_ESP) {
        switch (xf->enc) {
        case CK_KSVTOPO_ENC_AES128_GCM: *enc_alg = KSV_ENCR_AES_GCM_16; *enc_len = 20; break;
        case CK_KSVTOPO_ENC_AES256_GCM: *enc_alg = KSV_ENCR_AES_GCM_16; *enc_len = 36; break;
        case CK_KSVTOPO_ENC_CHACHA20_POLY1305:
            *enc_alg = KSV_ENCR_CHACHA20_POLY1305;
            *enc_len = 36;
            break;
        case CK_KSVTOPO_ENC_AES128_CBC: *enc_alg = KSV_ENCR_AES_CBC; *enc_len = 16; break;
        case CK_KSVTOPO_ENC_AES256_CBC: *enc_alg = KSV_ENCR_AES_CBC; *enc_len = 32; break;
        case CK_KSVTOPO_ENC_NULL: *enc_alg = KSV_ENCR_NULL; *enc_len = 0; break;
        case CK_KSVTOPO_ENC_NONE: break;
        }
    }
    switch (xf->auth) {
    case CK_KSVTOPO_AUTH_HMAC_SHA256_128: *auth_alg = KSV_AUTH_HMAC_SHA2_256_128; *auth_len = 32;
        break;
    case CK_KSVTOPO_AUTH_HMAC_SHA384_192: *auth_alg = KSV_AUTH_HMAC_SHA2_384_192; *auth_len = 48;
        break;
    case CK_KSVTOPO_AUTH_HMAC_SHA512_256: *auth_alg = KSV_AUTH_HMAC_SHA2_512_256; *auth_len = 64;
        break;
    case CK_KSVTOPO_AUTH_HMAC_SHA1_96: *auth_alg = KSV_AUTH_HMAC_SHA1_96; *auth_len = 20; break;
    default: *auth_alg = 0; *auth_len = 0; break;
    }
}

/* ---- nodes and sessions ------------------------------------------------------------------- */

static int
name_cmp(struct ksv_core *k, size_t ix, const char *name)
{
    return strcmp(k->nodes[ix].name, name);
}

/* Position of name in by_name (found or where it goes). */
static size_t
name_pos(struct ksv_core *k, const char *name, bool *found)
{
    size_t lo = 0, hi = k->n_nodes;

    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(k, k->by_name[mid], name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct ksv_node *
ksv_node_find(struct ksv_core *k, const char *name)
{
    bool found;
    size_t pos = name_pos(k, name, &found);

    return found ? &k->nodes[k->by_name[pos]] : NULL;
}

struct ksv_node *
ksv_node_get(struct ksv_core *k, const char *name)
{
    bool found;
    size_t pos = name_pos(k, name, &found);

    if (found)
        return &k->nodes[k->by_name[pos]];
    if (strlen(name) >= CK_KSV_STORE_NAME)
        return NULL;
    if (k->n_nodes == k->cap_nodes) {
        size_t cap = k->cap_nodes ? 2 * k->cap_nodes : 64;
        struct ksv_node *nn = realloc(k->nodes, cap * sizeof(*nn));
        size_t *bn;
        if (nn == NULL)
            return NULL;
        k->nodes = nn;
        if ((bn = realloc(k->by_name, cap * sizeof(*bn))) == NULL)
            return NULL;
        k->by_name = bn;
        k->cap_nodes = cap;
    }
    memset(&k->nodes[k->n_nodes], 0, sizeof(k->nodes[0]));
    ck_strlcpy(k->nodes[k->n_nodes].name, name, CK_KSV_STORE_NAME);
    memmove(&k->by_name[pos + 1], &k->by_name[pos], (k->n_nodes - pos) * sizeof(size_t));
    k->by_name[pos] = k->n_nodes;
    return &k->nodes[k->n_nodes++];
}

static size_t
session_pos(const struct ksv_core *k, uint32_t key_id, bool *found)
{
    size_t lo = 0, hi = k->n_sessions;

    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k->sessions[mid].key_id == key_id) {
            *found = true;
            return mid;
        }
        if (k->sessions[mid].key_id < key_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void
pending_clear(struct ksv_node *n)
{
    for (size_t i = 0; i < n->n_pending; i++)
        ck_free_secret(n->pending[i].plain, n->pending[i].plain_len);
    n->n_pending = 0;
}

static void
session_drop(struct ksv_core *k, struct ksv_node *n)
{
    bool found;
    size_t pos;

    if (!n->registered)
        return;
    pos = session_pos(k, n->seal.key_id, &found);
    if (found) {
        memmove(&k->sessions[pos], &k->sessions[pos + 1],
                (k->n_sessions - pos - 1) * sizeof(k->sessions[0]));
        k->n_sessions--;
    }
    ck_ksv_seal_clear(&n->seal);
    pending_clear(n);
    n->registered = false;
}

static int
session_add(struct ksv_core *k, struct ksv_node *n)
{
    bool found;
    size_t pos = session_pos(k, n->seal.key_id, &found);

    if (found)
        return ck_error_set(CK_ERR_EXISTS, "key_id in use");
    if (k->n_sessions == k->cap_sessions) {
        size_t cap = k->cap_sessions ? 2 * k->cap_sessions : 64;
        struct ksv_session_ix *s = realloc(k->sessions, cap * sizeof(*s));
        if (s == NULL)
            return ck_error_set(CK_ERR_NOMEM, "sessions");
        k->sessions = s;
        k->cap_sessions = cap;
    }
    memmove(&k->sessions[pos + 1], &k->sessions[pos], (k->n_sessions - pos) * sizeof(*k->sessions));
    k->sessions[pos].key_id = n->seal.key_id;
    k->sessions[pos].node = (size_t)(n - k->nodes);
    k->n_sessions++;
    return 0;
}

static int
new_key_id(struct ksv_core *k, uint32_t *out)
{
    for (int i = 0; i < 64; i++) {
        uint32_t v;
        bool found;
        int rc;
        if ((rc = ck_random_bytes(&v, sizeof(v))) != 0)
            return rc;
        if (v == 0)
            continue;
        (void)session_pos(k, v, &found);
        if (!found) {
            *out = v;
            return 0;
        }
    }
    return ck_error_set(CK_ERR_CRYPTO, "no free key_id");
}

/* ---- sending ------------------------------------------------------------------------------ */

static int
send_sealed(struct ksv_core *k, struct ksv_node *n, const struct ck_ksv_msg *m)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rc;

    if ((rc = ck_ksv_seal_msg(&n->seal, m, &out, &out_len)) != 0)
        return rc;
    rc = k->p.cb.send(k->p.cb.arg, (const struct sockaddr *)&n->addr, n->addr_len, out, out_len);
    free(out);
    return rc;
}

int
ksv_send_msg(struct ksv_core *k, struct ksv_node *n, struct ck_ksv_msg *m, int64_t now_ms)
{
    struct ksv_pending *pd;
    int rc;

    if (!n->registered)
        return 0;
    m->key_id = n->seal.key_id;
    m->msg_id = ++n->next_msg_id;
    if (m->msg_id == 0)
        m->msg_id = ++n->next_msg_id;
    m->timestamp = (uint64_t)now_ms * 1000u;
    if (m->type == CK_KSV_REGISTER)
        k->st.registers_sent++;
    else if (m->type == CK_KSV_DELETE)
        k->st.deletes_sent++;
    if (m->flags & CK_KSV_F_ACK_REQD) {
        if (n->n_pending == n->cap_pending) {
            size_t cap = n->cap_pending ? 2 * n->cap_pending : 4;
            struct ksv_pending *np = realloc(n->pending, cap * sizeof(*np));
            if (np == NULL)
                return ck_error_set(CK_ERR_NOMEM, "pending");
            n->pending = np;
            n->cap_pending = cap;
        }
        pd = &n->pending[n->n_pending];
        memset(pd, 0, sizeof(*pd));
        if ((rc = ck_ksv_msg_encode(m, &pd->plain, &pd->plain_len)) != 0)
            return rc;
        pd->msg_id = m->msg_id;
        pd->ts = m->timestamp;
        pd->sends = 1;
        pd->next_ms = now_ms + KSV_RETRY_FIRST_MS;
        ck_strlcpy(pd->what, ck_ksv_type_name(m->type), sizeof(pd->what));
        n->n_pending++;
    }
    if ((rc = send_sealed(k, n, m)) != 0)
        ksv_log(k, LOG_WARNING, "ksv send node=%s: %s", n->name, ck_error_context());
    return 0; /* a failed send is retried like a lost one */
}

static int
send_nudge(struct ksv_core *k, const struct sockaddr *to, socklen_t to_len, int64_t now_ms)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    if ((rc = ck_ksv_nudge_build((uint64_t)now_ms * 1000u, k->name, &buf, &len)) != 0)
        return rc;
    k->st.nudges_sent++;
    (void)k->p.cb.send(k->p.cb.arg, to, to_len, buf, len);
    free(buf);
    return 0;
}

/* NUDGE to a node's topology address, node port. */
static void
nudge_node(struct ksv_core *k, struct ksv_node *n, int64_t now_ms)
{
    const struct ck_ksvtopo_node *tn = ck_ksvtopo_node_find(k->topo, n->name);
    struct sockaddr_storage ss;
    socklen_t len;

    if (tn == NULL ||
        ksv_sockaddr_from_text(tn->address, k->p.node_port, &ss, &len) != 0)
        return;
    (void)send_nudge(k, (struct sockaddr *)&ss, len, now_ms);
    n->nudge_wait = n->nudge_wait == 0 ? KSV_NUDGE_FIRST_MS : n->nudge_wait * 2;
    if (n->nudge_wait > KSV_NUDGE_MAX_MS)
        n->nudge_wait = KSV_NUDGE_MAX_MS;
    n->nudge_at = now_ms + n->nudge_wait;
}

/* ---- registration ------------------------------------------------------------------------- */

static void
hello_err(struct ksv_core *k, uint32_t nonce, uint16_t code, const char *text,
          const struct sockaddr *from, socklen_t from_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;

    if (ck_ksv_hello_err_build(nonce, code, text, &buf, &len) == 0)
        (void)k->p.cb.send(k->p.cb.arg, from, from_len, buf, len);
    free(buf);
}

/* Sends a node everything it has: its SAs and its groups, REFRESH|ACK_REQD, split over several
 * messages when it exceeds one REGISTER (the first carries REFRESH). */
static int
push_all(struct ksv_core *k, struct ksv_node *n, size_t *n_sas, size_t *n_groups, int64_t now_ms)
{
    struct ck_ksv_group *groups = NULL;
    struct ck_ksv_msg *m = NULL;
    size_t ng = 0, gi = 0, si = 0, total = ksv_links_count(k, n->name);
    bool first = true;
    int rc;

    *n_sas = 0;
    *n_groups = 0;
    if ((groups = calloc(KSV_MAX_NODE_GROUPS, sizeof(*groups))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "groups");
    if ((rc = ksv_groups_for_node(k, n->name, groups, KSV_MAX_NODE_GROUPS, &ng, now_ms)) != 0 ||
        k->crashed)
        goto out;
    do {
        size_t before, gbefore = gi;
        if ((rc = ck_ksv_msg_new(CK_KSV_REGISTER, &m)) != 0)
            goto out;
        m->flags = CK_KSV_F_ACK_REQD | (first ? CK_KSV_F_REFRESH : 0);
        before = si;
        if ((rc = ksv_links_fill(k, n->name, m, &si, now_ms)) != 0)
            goto out;
        *n_sas += si - before;
        while (gi < ng && m->n_groups < CK_KSV_MAX_GROUPS) {
            if ((rc = ck_ksv_msg_add_group(m, &groups[gi])) != 0) {
                ksv_log(k, LOG_ERR, "ksv register node=%s group %u: %s", n->name,
                        groups[gi].group_id, ck_error_context());
                goto out;
            }
            gi++;
            (*n_groups)++;
        }
        if ((rc = ksv_send_msg(k, n, m, now_ms)) != 0)
            goto out;
        ck_ksv_msg_free(m);
        m = NULL;
        first = false;
        if (si == before && gi == gbefore)
            break; /* nothing more fits or exists: never loop without progress */
    } while (si < total || gi < ng);
out:
    ck_ksv_msg_free(m);
    if (groups != NULL)
        ck_free_secret(groups, KSV_MAX_NODE_GROUPS * sizeof(*groups));
    return rc;
}

static const char *
herr_reason(uint16_t code)
{
    switch (code) {
    case CK_KSV_HERR_AUTH: return "auth";
    case CK_KSV_HERR_UNKNOWN: return "unknown-node";
    case CK_KSV_HERR_NOT_HERE: return "not-here";
    default: return "busy";
    }
}

static int
on_hello(struct ksv_core *k, const uint8_t *buf, size_t len, const struct sockaddr *from,
         socklen_t from_len, int64_t now_ms)
{
    struct ck_ksv_hello_in in;
    struct ck_ksv_seal seal;
    const struct ck_ksvtopo_node *tn;
    struct ksv_node *n;
    struct ck_ksv_node_row row;
    uint8_t *rep = NULL;
    size_t rep_len = 0, n_sas = 0, n_groups = 0;
    uint32_t key_id = 0;
    uint16_t code = 0;
    char expect[300], addr[80], why[CK_KSV_MAX_TEXT + 1];
    const char *at;
    int rc;

    memset(&in, 0, sizeof(in));
    memset(&seal, 0, sizeof(seal));
    fmt_sockaddr(from, addr, sizeof(addr));
    if ((rc = new_key_id(k, &key_id)) != 0)
        return rc;
    rc = ck_ksv_hello_accept(buf, len, k->p.key_fn, k->p.key_arg, k->service, k->rc,
                             k->p.clockskew, now_ms / 1000, key_id, &in, &seal, &rep, &rep_len);
    if (rc == CK_ERR_DECODE || rc == CK_ERR_LIMIT || rc == CK_ERR_NOMEM) {
        k->st.dropped++;
        ksv_log(k, LOG_DEBUG, "ksv hello from %s dropped: %s", addr, ck_error_context());
        return rc == CK_ERR_NOMEM ? rc : 0;
    }
    if (rc != 0) {
        code = CK_KSV_HERR_AUTH;
        snprintf(why, sizeof(why), "ap-req refused (krb error %d)", (int)in.krb_error);
        goto refuse;
    }
    in.node_name[sizeof(in.node_name) - 1] = '\0';
    tn = ck_ksvtopo_node_find(k->topo, in.node_name);
    if (tn == NULL) {
        code = CK_KSV_HERR_UNKNOWN;
        snprintf(why, sizeof(why), "no node %s in the topology", in.node_name);
        goto refuse;
    }
    if (tn->principal != NULL) {
        ck_strlcpy(expect, tn->principal, sizeof(expect));
    } else {
        at = strrchr(in.client, '@');
        snprintf(expect, sizeof(expect), "host/%s%s", tn->name, at != NULL ? at : "");
    }
    if (strcmp(expect, in.client) != 0) {
        code = CK_KSV_HERR_UNKNOWN;
        snprintf(why, sizeof(why), "client %.100s is not node %s", in.client, tn->name);
        goto refuse;
    }
    if (!ck_ksvtopo_may_register(k->topo, tn->name, k->name)) {
        code = CK_KSV_HERR_NOT_HERE;
        snprintf(why, sizeof(why), "node %s may not register with %s", tn->name, k->name);
        goto refuse;
    }
    if ((n = ksv_node_get(k, tn->name)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "node");
        goto out;
    }
    n->live = true;
    session_drop(k, n);
    n->seal = seal;
    memset(&seal, 0, sizeof(seal));
    n->registered = true;
    memcpy(&n->addr, from, from_len);
    n->addr_len = from_len;
    n->session_end_ms = in.endtime * 1000;
    n->nudge_at = 0;
    n->nudge_wait = 0;
    if ((rc = session_add(k, n)) != 0) {
        n->registered = false;
        ck_ksv_seal_clear(&n->seal);
        goto out;
    }
    k->st.hellos_ok++;
    (void)k->p.cb.send(k->p.cb.arg, from, from_len, rep, rep_len);
    if (ksv_crash(k, "register-mid-send"))
        goto out;
    if ((rc = push_all(k, n, &n_sas, &n_groups, now_ms)) != 0 || k->crashed)
        goto out;
    memset(&row, 0, sizeof(row));
    ck_strlcpy(row.node, n->name, sizeof(row.node));
    ck_strlcpy(row.addr, addr, sizeof(row.addr));
    row.registered = now_ms / 1000;
    row.last_seen = now_ms / 1000;
    row.key_id = n->seal.key_id;
    row.n_sas = (uint32_t)n_sas;
    if (ck_ksv_store_node_seen(k->p.store, &row) != 0)
        ksv_log(k, LOG_WARNING, "ksv store: %s", ck_error_context());
    ksv_log(k, LOG_NOTICE, "ksv register node=%s addr=%s key_id=0x%08x sas=%zu groups=%zu "
            "result=ok", n->name, addr, n->seal.key_id, n_sas, n_groups);
    goto out;
refuse:
    k->st.hellos_refused++;
    hello_err(k, in.node_nonce, code, why, from, from_len);
    ksv_log(k, LOG_NOTICE, "ksv register node=%s addr=%s key_id=0x0 sas=0 groups=0 result=%s",
            in.node_name[0] != '\0' ? in.node_name : "-", addr, herr_reason(code));
    ksv_log(k, LOG_INFO, "ksv register refused: %s", why);
    rc = 0;
out:
    ck_ksv_seal_clear(&seal);
    if (rep != NULL)
        ck_free_secret(rep, rep_len);
    return rc;
}

/* ---- sealed messages from nodes ----------------------------------------------------------- */

static void
on_ack(struct ksv_core *k, struct ksv_node *n, const struct ck_ksv_msg *m)
{
    for (size_t i = 0; i < n->n_pending; i++) {
        struct ksv_pending *pd = &n->pending[i];
        if (pd->msg_id != m->acked_msg_id || pd->ts != m->reflected_ts)
            continue;
        ck_free_secret(pd->plain, pd->plain_len);
        memmove(pd, pd + 1, (n->n_pending - i - 1) * sizeof(*pd));
        n->n_pending--;
        k->st.acks++;
        return;
    }
}

static void
alarm_addr(const struct ck_ksv_addr *a, char *buf, size_t size)
{
    if (a->family == CK_KSV_AF_IPV4)
        inet_ntop(AF_INET, a->addr, buf, (socklen_t)size);
    else if (a->family == CK_KSV_AF_IPV6)
        inet_ntop(AF_INET6, a->addr, buf, (socklen_t)size);
    else
        ck_strlcpy(buf, "-", size);
}

static int
on_alarm(struct ksv_core *k, struct ksv_node *n, const struct ck_ksv_msg *m, int64_t now_ms)
{
    char peer[INET6_ADDRSTRLEN + 1], detail[200];
    const char *type = ck_ksv_alarm_name(m->alarm);

    k->st.alarms++;
    alarm_addr(&m->alarm_peer, peer, sizeof(peer));
    snprintf(detail, sizeof(detail), "peer=%s spi=0x%08x ref=%u", peer, m->alarm_spi,
             m->alarm_ref_id);
    ksv_log(k, LOG_WARNING, "ksv alarm node=%s type=%s detail=\"%s\"", n->name, type, detail);
    if (ck_ksv_store_alarm_add(k->p.store, now_ms / 1000, n->name, type, detail) != 0)
        ksv_log(k, LOG_WARNING, "ksv store: %s", ck_error_context());
    if (m->alarm == CK_KSV_ALARM_SA_EXPIRED && m->alarm_spi != 0)
        return ksv_links_rekey_spi(k, n->name, m->alarm_spi, now_ms);
    return 0;
}

static int
on_sealed(struct ksv_core *k, const uint8_t *buf, size_t len, const struct sockaddr *from,
          socklen_t from_len, int64_t now_ms)
{
    struct ck_ksv_msg *m = NULL;
    struct ksv_node *n;
    uint32_t key_id;
    bool found;
    size_t pos;
    int rc = 0;

    if (ck_ksv_sealed_key_id(buf, len, &key_id) != 0) {
        k->st.dropped++;
        return 0;
    }
    pos = session_pos(k, key_id, &found);
    if (!found) {
        /* A node that still holds a session this KSV forgot (a restart): make it register. */
        k->st.sealed_bad++;
        return send_nudge(k, from, from_len, now_ms);
    }
    n = &k->nodes[k->sessions[pos].node];
    if (ck_ksv_open_msg(&n->seal, buf, len, &m) != 0) {
        k->st.sealed_bad++;
        ksv_log(k, LOG_DEBUG, "ksv sealed from node=%s dropped: %s", n->name,
                ck_error_context());
        return 0;
    }
    k->st.sealed_ok++;
    memcpy(&n->addr, from, from_len);
    n->addr_len = from_len;
    switch (m->type) {
    case CK_KSV_ACK: on_ack(k, n, m); break;
    case CK_KSV_ALARM: rc = on_alarm(k, n, m, now_ms); break;
    case CK_KSV_GROUP_ACK: rc = ksv_groups_on_ack(k, n->name, m->grp_id, m->grp_epoch, now_ms);
        break;
    case CK_KSV_RECOVER:
        rc = ksv_groups_on_recover(k, n->name, m->grp_id, m->grp_epoch, now_ms);
        break;
    default:
        k->st.dropped++;
        ksv_log(k, LOG_DEBUG, "ksv %s from node=%s ignored", ck_ksv_type_name(m->type),
                n->name);
        break;
    }
    ck_ksv_msg_free(m);
    return rc;
}

int
ksv_core_on_datagram(struct ksv_core *k, const uint8_t *buf, size_t len,
                     const struct sockaddr *from, socklen_t from_len, int64_t now_ms)
{
    enum ck_ksv_kind kind;

    if (k->crashed)
        return ck_error_set(CK_ERR_IO, "crashed");
    k->st.dgrams_in++;
    if (from_len > sizeof(struct sockaddr_storage) ||
        (from->sa_family != AF_INET && from->sa_family != AF_INET6) ||
        ck_ksv_wire_kind(buf, len, &kind) != 0) {
        k->st.dropped++;
        return 0;
    }
    switch (kind) {
    case CK_KSV_K_HELLO: return on_hello(k, buf, len, from, from_len, now_ms);
    case CK_KSV_K_SEALED: return on_sealed(k, buf, len, from, from_len, now_ms);
    default:
        k->st.dropped++; /* HELLO_REP, HELLO_ERR, NUDGE, REKEY: never for a KSV */
        return 0;
    }
}

/* ---- timers ------------------------------------------------------------------------------- */

static int
retransmit(struct ksv_core *k, struct ksv_node *n, int64_t now_ms)
{
    for (size_t i = 0; i < n->n_pending;) {
        struct ksv_pending *pd = &n->pending[i];
        struct ck_ksv_msg *m = NULL;
        char detail[120];

        if (pd->next_ms > now_ms) {
            i++;
            continue;
        }
        if (pd->sends >= KSV_RETRY_TRIES) {
            k->st.no_acks++;
            snprintf(detail, sizeof(detail), "%s msg_id=%u not acknowledged after %d sends",
                     pd->what, pd->msg_id, pd->sends);
            ksv_log(k, LOG_WARNING, "ksv alarm node=%s type=NO_ACK detail=\"%s\"", n->name,
                    detail);
            if (ck_ksv_store_alarm_add(k->p.store, now_ms / 1000, n->name, "NO_ACK", detail) !=
                0)
                ksv_log(k, LOG_WARNING, "ksv store: %s", ck_error_context());
            ck_free_secret(pd->plain, pd->plain_len);
            memmove(pd, pd + 1, (n->n_pending - i - 1) * sizeof(*pd));
            n->n_pending--;
            continue;
        }
        /* The same message (msg_id, timestamp) under a new sequence number: a resend of the
         * old datagram would meet the node's replay window if only the ACK was lost. */
        if (ck_ksv_msg_parse(pd->plain, pd->plain_len, &m) == 0) {
            if (send_sealed(k, n, m) != 0)
                ksv_log(k, LOG_WARNING, "ksv resend node=%s: %s", n->name, ck_error_context());
            ck_ksv_msg_free(m);
        }
        k->st.retransmits++;
        pd->next_ms = now_ms + ((int64_t)KSV_RETRY_FIRST_MS << pd->sends);
        pd->sends++;
        i++;
    }
    return 0;
}

int
ksv_core_poll_store(struct ksv_core *k, int64_t now_ms)
{
    bool changed = false;
    int rc;

    if (k->crashed)
        return ck_error_set(CK_ERR_IO, "crashed");
    if ((rc = ck_ksv_store_changed(k->p.store, &changed)) != 0)
        return rc;
    if (!changed)
        return 0;
    return ksv_groups_reconcile(k, now_ms);
}

int
ksv_core_on_timer(struct ksv_core *k, int64_t now_ms)
{
    int rc;

    if (k->crashed)
        return ck_error_set(CK_ERR_IO, "crashed");
    for (size_t i = 0; i < k->n_nodes; i++) {
        struct ksv_node *n = &k->nodes[i];
        if (n->registered && n->session_end_ms <= now_ms) {
            ksv_log(k, LOG_INFO, "ksv session node=%s key_id=0x%08x ended (ticket end)",
                    n->name, n->seal.key_id);
            session_drop(k, n);
            n->nudge_at = n->live ? now_ms : 0;
        }
        if (n->registered && (rc = retransmit(k, n, now_ms)) != 0)
            return rc;
        if (!n->registered && n->live && n->nudge_at != 0 && n->nudge_at <= now_ms)
            nudge_node(k, n, now_ms);
    }
    if ((rc = ksv_links_timer(k, now_ms)) != 0 || k->crashed)
        return rc;
    if ((rc = ksv_groups_timer(k, now_ms)) != 0 || k->crashed)
        return rc;
    if (now_ms >= k->next_store_poll) {
        k->next_store_poll = now_ms + KSV_STORE_POLL_MS;
        if ((rc = ksv_core_poll_store(k, now_ms)) != 0)
            ksv_log(k, LOG_WARNING, "ksv store poll: %s", ck_error_context());
    }
    return 0;
}

static void
at_min(int64_t *best, int64_t t)
{
    if (t > 0 && (*best < 0 || t < *best))
        *best = t;
}

int64_t
ksv_core_next_timeout_ms(struct ksv_core *k, int64_t now_ms)
{
    int64_t best = k->next_store_poll;

    if (k->crashed)
        return -1;
    for (size_t i = 0; i < k->n_nodes; i++) {
        const struct ksv_node *n = &k->nodes[i];
        if (n->registered) {
            at_min(&best, n->session_end_ms);
            for (size_t j = 0; j < n->n_pending; j++)
                at_min(&best, n->pending[j].next_ms);
        } else if (n->live) {
            at_min(&best, n->nudge_at);
        }
    }
    at_min(&best, ksv_links_next(k));
    at_min(&best, ksv_groups_next(k));
    return best <= now_ms ? 0 : best - now_ms;
}

/* ---- life cycle --------------------------------------------------------------------------- */

int
ksv_core_new(const struct ksv_params *p, struct ck_ksvtopo *topo, struct ksv_core **out)
{
    struct ksv_core *k = calloc(1, sizeof(*k));
    uint8_t priv[32];
    int rc;

    *out = NULL;
    if (k == NULL) {
        ck_ksvtopo_free(topo);
        return ck_error_set(CK_ERR_NOMEM, "ksv core");
    }
    k->topo = topo;
    k->p = *p;
    if (p->name == NULL || p->service == NULL || p->key_fn == NULL || p->store == NULL ||
        p->cb.send == NULL || p->cb.send_mcast == NULL || topo == NULL) {
        rc = ck_error_set(CK_ERR_INVAL, "ksv core: missing parameters");
        goto out;
    }
    if (strlen(p->name) >= sizeof(k->name) || strlen(p->service) >= sizeof(k->service)) {
        rc = ck_error_set(CK_ERR_INVAL, "ksv core: name too long");
        goto out;
    }
    ck_strlcpy(k->name, p->name, sizeof(k->name));
    ck_strlcpy(k->service, p->service, sizeof(k->service));
    k->p.name = k->name;
    k->p.service = k->service;
    if (k->p.node_port == 0)
        k->p.node_port = KSV_DEFAULT_NODE_PORT;
    if (k->p.mcast_port == 0)
        k->p.mcast_port = KSV_DEFAULT_MCAST_PORT;
    if (k->p.batch_interval_ms <= 0)
        k->p.batch_interval_ms = KSV_DEFAULT_BATCH_INTERVAL_MS;
    if (k->p.batch_size == 0)
        k->p.batch_size = KSV_DEFAULT_BATCH_SIZE;
    if (k->p.clockskew <= 0)
        k->p.clockskew = KSV_DEFAULT_CLOCKSKEW;
    if ((rc = parse_crash(k, p->crash)) != 0)
        goto out;
    k->p.crash = NULL;
    if ((rc = ck_rcache_new(KSV_RCACHE_SIZE, 2 * k->p.clockskew, &k->rc)) != 0)
        goto out;
    if ((rc = ck_ksv_store_signing_key(p->store, priv)) != 0 ||
        (rc = lkh_signer_from_raw(priv, &k->signer)) != 0 ||
        (rc = lkh_signer_public(k->signer, k->sign_pub)) != 0)
        goto out;
    *out = k;
    k = NULL;
out:
    OPENSSL_cleanse(priv, sizeof(priv));
    ksv_core_free(k);
    return rc;
}

void
ksv_core_free(struct ksv_core *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->n_nodes; i++) {
        ck_ksv_seal_clear(&k->nodes[i].seal);
        pending_clear(&k->nodes[i]);
        free(k->nodes[i].pending);
    }
    free(k->nodes);
    free(k->by_name);
    free(k->sessions);
    if (k->sas != NULL)
        ck_free_secret(k->sas, k->cap_sas * sizeof(*k->sas));
    ksv_groups_free(k);
    lkh_signer_free(k->signer);
    ck_rcache_free(k->rc);
    ck_ksvtopo_free(k->topo);
    free(k);
}

/* Marks the nodes of the topology live (creating their state), the others not. */
static int
mark_live(struct ksv_core *k, int64_t now_ms, bool nudge)
{
    for (size_t i = 0; i < k->n_nodes; i++)
        k->nodes[i].live = false;
    for (size_t i = 0; i < ck_ksvtopo_n_nodes(k->topo); i++) {
        const struct ck_ksvtopo_node *tn = ck_ksvtopo_node_at(k->topo, i);
        struct ksv_node *n;
        if (!ck_ksvtopo_may_register(k->topo, tn->name, k->name))
            continue;
        if ((n = ksv_node_get(k, tn->name)) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "node");
        n->live = true;
        if (nudge && !n->registered && n->nudge_at == 0)
            n->nudge_at = now_ms;
    }
    for (size_t i = 0; i < k->n_nodes; i++)
        if (!k->nodes[i].live && k->nodes[i].registered) {
            ksv_log(k, LOG_NOTICE, "ksv session node=%s dropped: no longer served here",
                    k->nodes[i].name);
            session_drop(k, &k->nodes[i]);
        }
    return 0;
}

int
ksv_core_start(struct ksv_core *k, int64_t now_ms)
{
    int rc;

    if ((rc = mark_live(k, now_ms, !k->p.no_start_nudge)) != 0 ||
        (rc = ksv_links_load(k)) != 0 || (rc = ksv_links_prune(k, now_ms)) != 0 ||
        (rc = ksv_links_reconcile(k, now_ms)) != 0 || k->crashed ||
        (rc = ksv_groups_load(k, now_ms)) != 0 || k->crashed ||
        (rc = ksv_groups_reconcile(k, now_ms)) != 0)
        return rc;
    k->next_store_poll = now_ms + KSV_STORE_POLL_MS;
    /* The store's version as of now: changes made before the start are in what was loaded. */
    {
        bool changed;
        (void)ck_ksv_store_changed(k->p.store, &changed);
    }
    return 0;
}

int
ksv_core_reload(struct ksv_core *k, struct ck_ksvtopo *topo, int64_t now_ms)
{
    struct ck_ksvtopo_diff d;
    struct ck_ksvtopo *old = k->topo;
    int rc;

    if (k->crashed) {
        ck_ksvtopo_free(topo);
        return ck_error_set(CK_ERR_IO, "crashed");
    }
    memset(&d, 0, sizeof(d));
    if ((rc = ck_ksvtopo_diff(old, topo, &d)) != 0) {
        ck_ksvtopo_free(topo);
        return rc;
    }
    k->topo = topo;
    k->old_topo = old;
    /* A node whose address changed is nudged to come back there. */
    if ((rc = mark_live(k, now_ms, true)) != 0 || (rc = ksv_links_prune(k, now_ms)) != 0 ||
        (rc = ksv_links_changed(k, &d, now_ms)) != 0 || k->crashed ||
        (rc = ksv_links_reconcile(k, now_ms)) != 0 || k->crashed ||
        (rc = ksv_groups_reconcile(k, now_ms)) != 0)
        goto out;
    for (size_t i = 0; i < d.n && !k->crashed; i++) {
        const struct ck_ksvtopo_change *c = &d.changes[i];
        if (c->is_group && c->kind == CK_KSVTOPO_CHANGED && c->grp_new != NULL &&
            (rc = ksv_groups_push(k, c->grp_new->group->name, c->node, now_ms)) != 0)
            goto out;
    }
    ksv_log(k, LOG_NOTICE, "ksv reload: %zu change%s", d.n, d.n == 1 ? "" : "s");
out:
    ck_ksvtopo_diff_free(&d);
    k->old_topo = NULL;
    ck_ksvtopo_free(old);
    return rc;
}

int
ksv_core_test_session(struct ksv_core *k, const char *node, const ck_key *subkey,
                      uint32_t key_id, const struct sockaddr *from, socklen_t from_len,
                      int64_t end_ms)
{
    struct ksv_node *n = ksv_node_get(k, node);
    int rc;

    if (n == NULL || from_len > sizeof(n->addr))
        return ck_error_set(CK_ERR_INVAL, "test session");
    session_drop(k, n);
    if ((rc = ck_ksv_seal_init(&n->seal, subkey, key_id, true)) != 0)
        return rc;
    n->registered = true;
    memcpy(&n->addr, from, from_len);
    n->addr_len = from_len;
    n->session_end_ms = end_ms;
    if ((rc = session_add(k, n)) != 0) {
        n->registered = false;
        ck_ksv_seal_clear(&n->seal);
    }
    return rc;
}

bool
ksv_core_crashed(const struct ksv_core *k)
{
    return k->crashed;
}

void
ksv_core_stats(const struct ksv_core *k, struct ksv_stats *out)
{
    *out = k->st;
}

size_t
ksv_core_sessions(const struct ksv_core *k)
{
    return k->n_sessions;
}

bool
ksv_core_node_registered(const struct ksv_core *k, const char *node)
{
    struct ksv_node *n = ksv_node_find((struct ksv_core *)k, node);

    return n != NULL && n->registered;
}
