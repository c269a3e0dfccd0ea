/* The key version service inside cablekey-kdc (keyagent.h here, include/cablekey/keyagent.h
 * for the protocol). It authenticates, re-checks the principal and answers FETCH from the
 * principal's record and CONFIRM through ck_store_key_confirm.
 *
 * Decisions (operators: docs/keytab-agent.md):
 *   - The ticket must be for keyagent/REALM@REALM, checked with the key from the database and a
 *     replay cache shared by the workers, and must be INITIAL: it came from an AS exchange with
 *     the service's own long-term key. A TGT (a ticket-cache thief) is not enough.
 *   - The client named in the ticket gets its own keys and nothing else. Its record is read
 *     again (uncached) for every request: DISALLOW_ALL_TIX, an expired principal or a locked
 *     one gets DENIED even with a ticket issued before the change (the answer to a stolen
 *     agent key: disable the principal). krbtgt, kadmin and keyagent principals never get
 *     keys through this service.
 *   - FETCH answers the keys of the current kvno and of the staged one (any kvno above the
 *     record's current kvno, rotation.h), those above the kvno the agent holds, and lists every
 *     kvno the record still holds, so the agent drops what the KDC purged.
 *   - Errors before the AP-REQ is verified are a KRB-ERROR (no keys, no result data); after, a
 *     KRB-PRIV under the client's subkey with a result code. A message whose length field does
 *     not match gets no answer (the service is TCP-only, but noise must not produce output).
 *   - While keyagent/REALM@REALM is missing every request gets KDC_ERR_SVC_UNAVAILABLE with an
 *     e-text naming the command that creates it; the log says so once. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/ap.h"
#include "cablekey/apenv.h"
#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/keyagent.h"
#include "cablekey/kpasswd.h"
#include "cablekey/log.h"
#include "cablekey/nametypes.h"
#include "cablekey/net.h"
#include "cablekey/rotation.h"
#include "cablekey/safepriv.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "kdc_int.h"
#include "keyagent.h"

#define NAME_MAX_LEN 1024

struct keyagent_server {
    char *db_path, *stash_path, *realm;
    int64_t clockskew;
    void (*clock)(void *ctx, int64_t *sec, int32_t *usec);
    void *clock_ctx;
    ck_rcache *rcache;
    struct ck_net_server *net;
    atomic_bool missing_logged;
};

struct keyagent_worker {
    struct keyagent_server *srv;
    ck_store *store;
    char realm[256];
    char service[NAME_MAX_LEN];   /* "keyagent/REALM@REALM" */
};

/* What one request came to, for the reply and the log line. */
struct req_state {
    char client[NAME_MAX_LEN];
    ck_keyagent_req req;
    bool have_req;
    int32_t krb_error;            /* for a KRB-ERROR reply */
    const char *e_text;           /* static */
    ck_keyagent_rep rep;
    char detail[256];             /* log only */
};

static int64_t
now_sec(const struct keyagent_server *srv, int32_t *usec)
{
    int64_t s;
    int32_t us;

    if (srv->clock != NULL)
        srv->clock(srv->clock_ctx, &s, &us);
    else
        ck_now(&s, &us);
    if (usec != NULL)
        *usec = us;
    return s;
}

static void
set_result(struct req_state *st, int result, const char *text, const char *detail)
{
    st->rep.result = (uint16_t)result;
    ck_strlcpy(st->rep.text, text, sizeof(st->rep.text));
    ck_strlcpy(st->detail, detail != NULL ? detail : "", sizeof(st->detail));
}

static int check_service(struct keyagent_worker *w, struct req_state *st);

/* ---- set-up ------------------------------------------------------------------------------ */

static int
dup_opt(char **dst, const char *src)
{
    if (src == NULL)
        return 0;
    if ((*dst = strdup(src)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "keyagent");
    return 0;
}

static int
server_configure(struct keyagent_server *srv, const struct kdc_config *kdc)
{
    int rc;

    if (kdc == NULL || kdc->db_path == NULL)
        return ck_error_set(CK_ERR_CONFIG, "keyagent: no database path");
    if ((rc = dup_opt(&srv->db_path, kdc->db_path)) != 0 ||
        (rc = dup_opt(&srv->stash_path, kdc->stash_path)) != 0 ||
        (rc = dup_opt(&srv->realm, kdc->realm)) != 0)
        return rc;
    srv->clockskew = kdc->clockskew > 0 ? kdc->clockskew : KDC_DEFAULT_CLOCKSKEW;
    srv->clock = kdc->clock;
    srv->clock_ctx = kdc->clock_ctx;
    return ck_rcache_new(0, 2 * srv->clockskew, &srv->rcache);
}

int
keyagent_server_new(const struct kdc_config *kdc, struct keyagent_server **out)
{
    struct keyagent_server *srv;
    int rc;

    *out = NULL;
    if ((srv = calloc(1, sizeof(*srv))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "keyagent");
    atomic_init(&srv->missing_logged, false);
    if ((rc = server_configure(srv, kdc)) != 0) {
        keyagent_server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int
keyagent_worker_new(struct keyagent_server *srv, struct keyagent_worker **out)
{
    struct keyagent_worker *w;
    int rc;

    *out = NULL;
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "keyagent worker");
    w->srv = srv;
    if ((rc = ck_store_open(srv->db_path, srv->stash_path, 0, &w->store)) != 0)
        goto out;
    ck_strlcpy(w->realm, ck_store_realm(w->store)->name, sizeof(w->realm));
    if (srv->realm != NULL && strcmp(srv->realm, w->realm) != 0) {
        rc = ck_error_set(CK_ERR_CONFIG, "keyagent: realm %s configured, the database holds %s",
                          srv->realm, w->realm);
        goto out;
    }
    snprintf(w->service, sizeof(w->service), CK_KEYAGENT_SERVICE "/%s@%s", w->realm, w->realm);
    {
        /* Said at start, not only at the first request an operator may never look for. */
        struct req_state st;

        memset(&st, 0, sizeof(st));
        if (check_service(w, &st) == CK_ERR_NOTFOUND)
            ck_error_clear();
    }
out:
    if (rc != 0) {
        keyagent_worker_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void
keyagent_worker_free(struct keyagent_worker *w)
{
    if (w == NULL)
        return;
    ck_store_close(w->store);
    free(w);
}

/* ---- authentication ---------------------------------------------------------------------- */

static int
service_key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
               int32_t *krb_error)
{
    struct keyagent_worker *w = arg;
    ck_db_principal *p = NULL;
    const ck_db_key *k;
    int rc;

    (void)ticket;
    if ((rc = ck_store_get_principal(w->store, w->service, &p)) != 0) {
        *krb_error = CK_KRB_AP_ERR_NOKEY;
        return rc;
    }
    k = ck_db_principal_find_key(p, kvno, etype);
    if (k == NULL) {
        *krb_error = ck_db_principal_find_key(p, 0, etype) != NULL ? CK_KRB_AP_ERR_BADKEYVER
                                                                  : CK_KRB_AP_ERR_NOKEY;
        rc = ck_error_set(CK_ERR_NOTFOUND, "no key of %s for enctype %d kvno %u", w->service,
                          (int)etype, kvno);
    } else {
        rc = ck_key_copy(key, &k->key);
    }
    ck_db_principal_free(p);
    return rc;
}

/* 0 when the service principal exists; else sets st for a KRB-ERROR and logs once. */
static int
check_service(struct keyagent_worker *w, struct req_state *st)
{
    ck_db_principal *p = NULL;
    int rc = ck_store_get_principal(w->store, w->service, &p);

    ck_db_principal_free(p);
    if (rc == 0)
        return 0;
    st->krb_error = rc == CK_ERR_NOTFOUND ? CK_KDC_ERR_SVC_UNAVAILABLE : CK_KRB_ERR_GENERIC;
    if (rc == CK_ERR_NOTFOUND) {
        st->e_text = "key version service not set up on this KDC (keyagent/REALM missing)";
        ck_strlcpy(st->detail, "service principal missing", sizeof(st->detail));
        if (!atomic_exchange(&w->srv->missing_logged, true))
            ck_log_err("keyagent: %s is not in the database: the key version service refuses "
                       "every request; create it with \"cablekey init --db %s --add-keyagent\" "
                       "(cablekey init makes it for new realms)",
                       w->service, w->srv->db_path);
    } else {
        st->e_text = "database unavailable";
        ck_strlcpy(st->detail, ck_error_context(), sizeof(st->detail));
    }
    return rc;
}

/* ---- the answers ------------------------------------------------------------------------- */

static bool
is_protected(const char *name)
{
    return strncmp(name, "krbtgt/", 7) == 0 || strncmp(name, "kadmin/", 7) == 0 ||
           strncmp(name, CK_KEYAGENT_SERVICE "/", sizeof(CK_KEYAGENT_SERVICE)) == 0;
}

/* Reads the client's record and refuses a principal that may not have keys; *out on success. */
static int
client_record(struct keyagent_worker *w, struct req_state *st, int64_t now,
              ck_db_principal **out)
{
    ck_db_principal *p = NULL;
    int rc;

    *out = NULL;
    if (is_protected(st->client)) {
        set_result(st, CK_KEYAGENT_DENIED, "keys of this principal are not distributed",
                   "protected principal");
        return CK_ERR_POLICY;
    }
    rc = ck_store_get_principal(w->store, st->client, &p);
    if (rc == CK_ERR_NOTFOUND) {
        set_result(st, CK_KEYAGENT_DENIED, "principal unknown", "principal deleted");
        return rc;
    }
    if (rc != 0) {
        set_result(st, CK_KEYAGENT_HARDERROR, "database failure", ck_error_context());
        return rc;
    }
    if (p->attributes & CK_ATTR_DISALLOW_ALL_TIX) {
        set_result(st, CK_KEYAGENT_DENIED, "principal disabled", "DISALLOW_ALL_TIX");
        rc = CK_ERR_POLICY;
    } else if (p->expires != 0 && p->expires <= now) {
        set_result(st, CK_KEYAGENT_DENIED, "principal expired", "expired");
        rc = CK_ERR_POLICY;
    } else if (ck_lockout_is_locked(&p->lockout, now)) {
        set_result(st, CK_KEYAGENT_DENIED, "principal locked", "locked out");
        rc = CK_ERR_POLICY;
    }
    if (rc != 0) {
        ck_db_principal_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static bool
held_has(const ck_keyagent_rep *rep, uint32_t kvno)
{
    for (size_t i = 0; i < rep->n_held; i++)
        if (rep->held[i] == kvno)
            return true;
    return false;
}

/* Fills the kvno lists and, for FETCH, the keys (current and staged above req.kvno). */
static void
answer(struct keyagent_worker *w, struct req_state *st, const ck_db_principal *p, int64_t now)
{
    ck_keyagent_rep *rep = &st->rep;
    int rc;

    rep->current_kvno = p->kvno;
    for (size_t i = 0; i < p->n_keys; i++) {
        uint32_t kv = p->keys[i].kvno;
        if (kv > p->kvno && kv > rep->staged_kvno)
            rep->staged_kvno = kv;
        if (!held_has(rep, kv) && rep->n_held < CK_KEYAGENT_MAX_HELD)
            rep->held[rep->n_held++] = kv;
    }
    if (st->req.type == CK_KEYAGENT_FETCH) {
        for (size_t i = 0; i < p->n_keys; i++) {
            const ck_db_key *k = &p->keys[i];
            if (k->kvno < p->kvno || k->kvno <= st->req.kvno)
                continue;
            if (rep->n_keys >= CK_KEYAGENT_MAX_KEYS) {
                set_result(st, CK_KEYAGENT_HARDERROR, "too many keys for one reply",
                           "over CK_KEYAGENT_MAX_KEYS");
                goto wipe;
            }
            rep->keys[rep->n_keys].kvno = k->kvno;
            if (ck_key_copy(&rep->keys[rep->n_keys].key, &k->key) != 0) {
                set_result(st, CK_KEYAGENT_HARDERROR, "server failure", ck_error_context());
                goto wipe;
            }
            rep->n_keys++;
        }
        set_result(st, CK_KEYAGENT_OK, rep->n_keys > 0 ? "new keys" : "up to date", NULL);
        snprintf(st->detail, sizeof(st->detail), "keys=%zu current=%u staged=%u", rep->n_keys,
                 rep->current_kvno, rep->staged_kvno);
        return;
    }
    /* CONFIRM */
    if (!held_has(rep, st->req.kvno)) {
        set_result(st, CK_KEYAGENT_NOTFOUND, "the principal has no such kvno", "kvno not held");
        return;
    }
    rc = ck_store_key_confirm(w->store, st->client, st->req.host, st->req.kvno, now);
    if (rc == 0)
        set_result(st, CK_KEYAGENT_OK, "confirmed", NULL);
    else if (rc == CK_ERR_NOTFOUND)
        set_result(st, CK_KEYAGENT_NOTFOUND, "the principal has no such kvno", ck_error_context());
    else if (rc == CK_ERR_UNSUPPORTED)
        set_result(st, CK_KEYAGENT_UNAVAILABLE, "key versioning not available in this database",
                   ck_error_context());
    else
        set_result(st, CK_KEYAGENT_HARDERROR, "database failure", ck_error_context());
    return;
wipe:
    for (size_t i = 0; i < rep->n_keys; i++)
        ck_key_clear(&rep->keys[i].key);
    rep->n_keys = 0;
}

/* ---- replies ----------------------------------------------------------------------------- */

static int
build_error_reply(struct keyagent_worker *w, struct req_state *st, uint8_t *reply, size_t cap,
                  size_t *reply_len)
{
    int32_t usec;
    int64_t now = now_sec(w->srv, &usec);

    return ck_apenv_reply_error(CK_KEYAGENT_VERSION, w->service,
                                st->krb_error != 0 ? st->krb_error : CK_KRB_ERR_GENERIC,
                                st->e_text, now, usec, reply, cap, reply_len);
}

static int
build_priv_reply(struct keyagent_worker *w, struct req_state *st, const ck_ap_req_result *ap,
                 uint8_t *reply, size_t cap, size_t *reply_len)
{
    uint8_t *inner = NULL;
    size_t inner_len = 0;
    int32_t usec;
    int64_t now = now_sec(w->srv, &usec);
    int rc;

    if ((rc = ck_keyagent_rep_encode(&st->rep, &inner, &inner_len)) != 0)
        return rc;
    rc = ck_apenv_reply_seal(ap, CK_KEYAGENT_VERSION, inner, inner_len, now, usec, reply, cap,
                             reply_len);
    ck_free_secret(inner, inner_len);
    return rc;
}

/* ---- one request ------------------------------------------------------------------------- */

/* Decrypts and decodes the request's KRB-PRIV into st->req; sets st's result on failure. */
static int
read_request(struct keyagent_worker *w, struct req_state *st, const ck_keyagent_frame *fr,
             const ck_ap_req_result *ap)
{
    ck_apenv_frame env;
    uint8_t *data = NULL;
    size_t data_len = 0;
    int rc;

    memset(&env, 0, sizeof(env));
    env.version = fr->version;
    env.priv = fr->priv;
    env.priv_len = fr->priv_len;
    if ((rc = ck_apenv_read_request(ap, &env, w->srv->clockskew, now_sec(w->srv, NULL), &data,
                                    &data_len)) != 0) {
        set_result(st, CK_KEYAGENT_AUTHERROR,
                   ap->has_subkey ? "failed decrypting request"
                                  : "the authenticator must carry a subkey",
                   ck_error_context());
        return rc;
    }
    if ((rc = ck_keyagent_req_decode(data, data_len, &st->req)) != 0)
        set_result(st, CK_KEYAGENT_MALFORMED, "malformed request", ck_error_context());
    else
        st->have_req = true;
    ck_free_secret(data, data_len);
    return rc;
}

static void
log_request(const struct req_state *st, const struct ck_peer *peer)
{
    char addr[CK_NET_ADDRSTRLEN];
    char client[256], host[300], detail[256];

    ck_peer_format(peer, addr, sizeof(addr));
    kdc_log_escape(st->client[0] != '\0' ? st->client : "-", client, sizeof(client));
    kdc_log_escape(st->have_req && st->req.host[0] != '\0' ? st->req.host : "-", host,
                   sizeof(host));
    kdc_log_escape(st->detail, detail, sizeof(detail));
    if (st->krb_error != 0) {
        ck_log_notice("KEYAGENT %s client=%s error=%d%s%s", addr, client, (int)st->krb_error,
                      detail[0] != '\0' ? ": " : "", detail);
        return;
    }
    ck_log_notice("KEYAGENT %s client=%s op=%s kvno=%u host=%s result=%d (%s)%s%s", addr,
                  client,
                  !st->have_req                         ? "-"
                  : st->req.type == CK_KEYAGENT_CONFIRM ? "confirm"
                                                        : "fetch",
                  st->have_req ? st->req.kvno : 0, host, (int)st->rep.result,
                  ck_keyagent_result_name(st->rep.result), detail[0] != '\0' ? ": " : "",
                  detail);
}

int
keyagent_handle_request(struct keyagent_worker *w, const uint8_t *req, size_t req_len,
                        const struct ck_peer *peer, uint8_t *reply, size_t reply_cap,
                        size_t *reply_len)
{
    struct req_state *st = NULL;
    ck_keyagent_frame fr;
    ck_ap_req_result ap;
    ck_db_principal *p = NULL;
    bool verified = false;
    int64_t now;
    int rc;

    *reply_len = 0;
    memset(&ap, 0, sizeof(ap));
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return 0;
    now = now_sec(w->srv, NULL);
    rc = ck_keyagent_frame_parse(req, req_len, &fr);
    if (rc != 0) {
        if (req_len < CK_KPASSWD_HEADER_LEN || ((size_t)req[0] << 8 | req[1]) != req_len) {
            ck_log_info("KEYAGENT: %zu bytes without a keyagent header; not answered", req_len);
            goto out;
        }
        st->krb_error = rc == CK_ERR_UNSUPPORTED ? CK_KDC_ERR_BAD_PVNO : CK_KRB_AP_ERR_MSG_TYPE;
        st->e_text = rc == CK_ERR_UNSUPPORTED ? "protocol version not supported"
                                              : "malformed request";
        ck_strlcpy(st->detail, ck_error_context(), sizeof(st->detail));
        goto reply;
    }
    if (check_service(w, st) != 0)
        goto reply;
    rc = ck_ap_req_verify_at(fr.ap_req, fr.ap_req_len, service_key_fn, w, w->service,
                             w->srv->rcache, w->srv->clockskew, CK_KU_AP_REQ_AUTH, now, &ap);
    if (rc != 0) {
        st->krb_error = rc == CK_ERR_FULL ? CK_KRB_ERR_GENERIC : ap.krb_error;
        if (st->krb_error == 0)
            st->krb_error = CK_KRB_ERR_GENERIC;
        st->e_text = rc == CK_ERR_FULL ? CK_AP_ETEXT_RCACHE_FULL : NULL;
        ck_strlcpy(st->detail, ck_error_context(), sizeof(st->detail));
        goto reply;
    }
    if (ck_asn1_principal_unparse(ap.enc_ticket->cname, ap.enc_ticket->crealm, st->client,
                                  sizeof(st->client)) != 0)
        st->client[0] = '\0';
    /* Only a ticket from an AS exchange, i.e. from the service's own key. */
    if (!(ap.tkt_flags & CK_TKT_FLG_INITIAL) || st->client[0] == '\0') {
        st->krb_error = CK_KDC_ERR_POLICY;
        st->e_text = "the ticket must come from an AS exchange with the service key";
        ck_strlcpy(st->detail, "ticket without INITIAL", sizeof(st->detail));
        goto reply;
    }
    verified = true;
    if (read_request(w, st, &fr, &ap) != 0)
        goto reply;
    if (client_record(w, st, now, &p) != 0)
        goto reply;
    answer(w, st, p, now);
reply:
    log_request(st, peer);
    if (verified)
        rc = build_priv_reply(w, st, &ap, reply, reply_cap, reply_len);
    else
        rc = build_error_reply(w, st, reply, reply_cap, reply_len);
    if (rc != 0) {
        ck_log_err("keyagent: cannot build the reply: %s", ck_error_context());
        *reply_len = 0;
    }
out:
    ck_db_principal_free(p);
    ck_ap_req_result_clear(&ap);
    ck_keyagent_rep_clear(&st->rep);
    ck_memzero(st, sizeof(*st));
    free(st);
    return 0;
}

/* ---- network glue ------------------------------------------------------------------------ */

static int
net_worker_init(int index, void *arg, void **state)
{
    struct keyagent_worker *w = NULL;
    int rc = keyagent_worker_new(arg, &w);

    *state = w;
    if (rc != 0)
        return ck_error_set(rc, "keyagent worker %d: %s", index, ck_error_context());
    return 0;
}

static void
net_worker_fini(int index, void *arg, void *state)
{
    (void)index;
    (void)arg;
    keyagent_worker_free(state);
}

static int
net_handle(void *state, const struct ck_net_request *req, uint8_t *reply, size_t reply_cap,
           size_t *reply_len)
{
    *reply_len = 0;
    if (req->flags & CK_NET_REQ_OVERSIZED)
        return 0;
    return keyagent_handle_request(state, req->data, req->len, req->remote, reply, reply_cap,
                                   reply_len);
}

static void
free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
}

int
keyagent_listen_resolve(const struct kdc_daemon_config *dc, char **list, size_t cap, size_t *n,
                        bool *dflt)
{
    const char *v = dc->keyagent_listen;
    int rc = 0;

    *n = 0;
    *dflt = v == NULL;
    if (v != NULL && strcmp(v, "none") == 0)
        return 0;
    if (v != NULL) {
        const char *p = v;
        while (*p != '\0') {
            size_t len;
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            len = strcspn(p, " \t,");
            if (len == 0)
                break;
            if (*n >= cap) {
                rc = ck_error_set(CK_ERR_LIMIT, "keyagent_listen: more than %zu addresses", cap);
                goto fail;
            }
            if ((list[*n] = strndup(p, len)) == NULL) {
                rc = ck_error_set(CK_ERR_NOMEM, "keyagent_listen");
                goto fail;
            }
            (*n)++;
            p += len;
        }
        if (*n == 0)
            return ck_error_set(CK_ERR_CONFIG, "keyagent_listen: empty (use \"none\" for off)");
        return 0;
    }
    /* The default: port 7464 on the host part of each KDC address, once per host. */
    for (size_t i = 0; i < dc->n_listen; i++) {
        char host[256], entry[300];
        uint16_t port;
        bool dup = false;

        if (ck_net_parse_listen(dc->listen[i], KDC_DEFAULT_PORT, host, sizeof(host), &port) != 0)
            continue;
        if (host[0] == '\0')
            snprintf(entry, sizeof(entry), "%u", (unsigned)CK_KEYAGENT_PORT);
        else
            snprintf(entry, sizeof(entry), strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u",
                     host, (unsigned)CK_KEYAGENT_PORT);
        for (size_t j = 0; j < *n; j++)
            dup = dup || strcmp(list[j], entry) == 0;
        if (dup)
            continue;
        if (*n >= cap || (list[*n] = strdup(entry)) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "keyagent_listen");
            goto fail;
        }
        (*n)++;
    }
    return 0;
fail:
    free_list(list, *n);
    *n = 0;
    return rc;
}

int
keyagent_check(const struct kdc_daemon_config *dc, FILE *out)
{
    char *list[KDC_MAX_LISTEN];
    size_t n = 0;
    bool dflt = false;
    ck_store *store = NULL;
    ck_db_principal *p = NULL;
    char name[600];
    int rc;

    if ((rc = keyagent_listen_resolve(dc, list, KDC_MAX_LISTEN, &n, &dflt)) != 0)
        return rc;
    if (n == 0) {
        fprintf(out, "keyagent: off (keyagent_listen = none)\n");
        return 0;
    }
    fprintf(out, "keyagent listen:");
    for (size_t i = 0; i < n; i++)
        fprintf(out, " %s", list[i]);
    fprintf(out, " (tcp)%s\n", dflt ? ", the default: off if another KDC has it" : "");
    free_list(list, n);
    if (ck_store_open(dc->kdc.db_path, dc->kdc.stash_path, CK_STORE_READONLY, &store) != 0) {
        ck_error_clear();
        return 0; /* the database check reports it */
    }
    snprintf(name, sizeof(name), CK_KEYAGENT_SERVICE "/%s@%s", ck_store_realm(store)->name,
             ck_store_realm(store)->name);
    if (ck_store_get_principal(store, name, &p) == CK_ERR_NOTFOUND)
        fprintf(out, "warning: %s is missing: the key version service will refuse every "
                     "request (cablekey init --db %s --add-keyagent)\n", name, dc->kdc.db_path);
    ck_db_principal_free(p);
    ck_store_close(store);
    ck_error_clear();
    return 0;
}

int
keyagent_server_bind(const struct kdc_daemon_config *dc, struct keyagent_server **out)
{
    struct keyagent_server *srv = NULL;
    struct ck_net_config ncfg;
    struct ck_net_callbacks cb;
    char *list[KDC_MAX_LISTEN];
    size_t n = 0;
    bool dflt = false;
    int rc;

    *out = NULL;
    if ((rc = keyagent_listen_resolve(dc, list, KDC_MAX_LISTEN, &n, &dflt)) != 0)
        return ck_error_set(rc, "keyagent: %s", ck_error_context());
    if (n == 0) {
        ck_log_notice("keyagent: off (keyagent_listen = none)");
        return 0;
    }
    if ((srv = calloc(1, sizeof(*srv))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "keyagent");
        goto out;
    }
    atomic_init(&srv->missing_logged, false);
    memset(&ncfg, 0, sizeof(ncfg));
    ncfg.listen = (const char *const *)list;
    ncfg.n_listen = n;
    ncfg.default_port = CK_KEYAGENT_PORT;
    ncfg.workers = KEYAGENT_WORKERS;
    ncfg.max_request = KEYAGENT_MAX_REQUEST;
    ncfg.max_reply = CK_KEYAGENT_MAX_MSG;
    ncfg.no_udp = true;
    ncfg.tcp_framing = &ck_krb_tcp_framing;
    memset(&cb, 0, sizeof(cb));
    cb.handler = net_handle;
    cb.worker_init = net_worker_init;
    cb.worker_fini = net_worker_fini;
    cb.arg = srv;
    if ((rc = ck_net_server_new(&ncfg, &cb, &srv->net)) != 0 ||
        (rc = ck_net_server_bind(srv->net)) != 0) {
        char msg[512];

        ck_strlcpy(msg, ck_error_context(), sizeof(msg));
        keyagent_server_free(srv);
        srv = NULL;
        if (dflt) {
            /* Another KDC on this host has the default port: this one runs without the
             * service rather than not at all. */
            ck_log_warn("keyagent: default address not available (%s): key version service off "
                        "on this KDC; set keyagent_listen to serve it", msg);
            rc = 0;
            goto out;
        }
        rc = ck_error_set(rc, "keyagent: %s", msg);
        goto out;
    }
    *out = srv;
out:
    free_list(list, n);
    return rc;
}

int
keyagent_server_run(struct keyagent_server *srv, const struct kdc_config *kdc)
{
    int rc;

    if ((rc = server_configure(srv, kdc)) != 0)
        return rc;
    if ((rc = ck_net_server_run(srv->net)) != 0) {
        char msg[512];

        ck_strlcpy(msg, ck_error_context(), sizeof(msg));
        return ck_error_set(rc, "keyagent: %s", msg);
    }
    return 0;
}

void
keyagent_server_describe(const struct keyagent_server *srv, char *buf, size_t size)
{
    ck_net_server_describe(srv != NULL ? srv->net : NULL, buf, size);
}

void
keyagent_server_free(struct keyagent_server *srv)
{
    if (srv == NULL)
        return;
    ck_net_server_free(srv->net);
    ck_rcache_free(srv->rcache);
    free(srv->db_path);
    free(srv->stash_path);
    free(srv->realm);
    free(srv);
}
