/* The kpasswd service: RFC 3244 change/set password (version 0xff80) and MIT's change password
 * (version 0x0001), on its own ck_net_server inside cablekey-kdc. The wire codec is in
 * lib/krb/kpasswd.c; this file authenticates, authorises and applies.
 *
 * Decisions (documented for operators in docs/cablekey-kdc.md, "Password changes"):
 *   - The AP-REQ must carry a ticket for kadmin/changepw@REALM, checked with the key from the
 *     database (no keytab) and a replay cache shared by the service's workers. A replayed
 *     request is refused (AUTHERROR, KRB_AP_ERR_REPEAT) even if it is a UDP retransmission:
 *     like MIT's kadmind, the service keeps no reply cache, and a client that lost a reply
 *     retries with a fresh request.
 *   - Changing one's own password requires an INITIAL ticket (one from an AS exchange, i.e. from
 *     knowing the old password), for both versions: a stolen TGT must not be enough. Without one:
 *     INITIAL_FLAG_NEEDED. kadmin/changepw carries DISALLOW_TGT_BASED, so the TGS never issues
 *     such tickets anyway; the check holds even if an operator clears that flag.
 *   - Setting another principal's password (a targname naming someone else) is an administrator
 *     operation, allowed only to the principals listed in kpasswd_admins (exact canonical names;
 *     empty by default) and refused with ACCESSDENIED otherwise. krbtgt/ and kadmin/ principals
 *     are never targets, whoever asks.
 *   - Errors before the AP-REQ is verified are a KRB-ERROR with the result in e-data; after it,
 *     a KRB-PRIV under the client's subkey (the session key if it sent none), carrying a
 *     timestamp (Heimdal checks it) and the sequence number announced in our AP-REP (MIT checks
 *     it), with the address the request arrived on as s-address (Heimdal compares it with the
 *     address it sent to).
 *   - A message without a plausible header (shorter than 6 bytes, or a length field that does
 *     not match) gets no answer at all: over UDP an answer would make the service a reflector.
 *   - The request KRB-PRIV's s-address is not checked (NAT rewrites it; the subkey already ties
 *     the message to this AP-REQ), its timestamp must be within the clock skew if present, and
 *     its sequence number must be the authenticator's if both carry one. MIT's client sends
 *     neither timestamp nor sequence number, relying on its fresh subkey; a KRB-PRIV under the
 *     session key (no subkey) must carry one or the other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/ap.h"
#include "cablekey/apenv.h"
#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/kpasswd.h"
#include "cablekey/log.h"
#include "cablekey/nametypes.h"
#include "cablekey/net.h"
#include "cablekey/safepriv.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "kdc_int.h"
#include "kpasswd.h"

#define NAME_MAX_LEN 1024
#define RESULT_MAX 512

struct kpasswd_server {
    const struct kdc_config *kdc;
    char *admins[KPASSWD_MAX_ADMINS];
    size_t n_admins;
    int64_t clockskew;
    ck_rcache *rcache;
    struct ck_net_server *net;
};

struct kpasswd_worker {
    struct kpasswd_server *srv;
    ck_store *store;
    char realm[256];
    char service[NAME_MAX_LEN];   /* "kadmin/changepw@REALM" */
};

/* What one request came to, for the reply and the log line. */
struct kpasswd_req_state {
    uint16_t version;
    char client[NAME_MAX_LEN];
    char target[NAME_MAX_LEN];
    int result;                   /* CK_KPASSWD_* */
    char result_string[RESULT_MAX];
    int32_t krb_error;            /* for a KRB-ERROR reply */
    const char *e_text;           /* its e-text (static), NULL: none */
    char detail[256];             /* log only */
};

static int64_t
now_sec(const struct kpasswd_server *srv, int32_t *usec)
{
    int64_t s;
    int32_t us;

    if (srv->kdc->clock != NULL)
        srv->kdc->clock(srv->kdc->clock_ctx, &s, &us);
    else
        ck_now(&s, &us);
    if (usec != NULL)
        *usec = us;
    return s;
}

static void
set_result(struct kpasswd_req_state *st, int result, const char *string, const char *detail)
{
    st->result = result;
    ck_strlcpy(st->result_string, string, sizeof(st->result_string));
    ck_strlcpy(st->detail, detail != NULL ? detail : "", sizeof(st->detail));
}

/* ---- set-up ------------------------------------------------------------------------------ */

static int
parse_admins(struct kpasswd_server *srv, const char *list)
{
    const char *p = list;

    while (p != NULL && *p != '\0') {
        size_t n;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        n = strcspn(p, " \t,");
        if (n == 0)
            break;
        if (srv->n_admins >= KPASSWD_MAX_ADMINS)
            return ck_error_set(CK_ERR_CONFIG, "kpasswd_admins: more than %d names",
                                KPASSWD_MAX_ADMINS);
        if (memchr(p, '@', n) == NULL)
            return ck_error_set(CK_ERR_CONFIG, "kpasswd_admins: \"%.*s\" has no realm", (int)n,
                                p);
        if ((srv->admins[srv->n_admins] = strndup(p, n)) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "kpasswd_admins");
        srv->n_admins++;
        p += n;
    }
    return 0;
}

/* Settings and the replay cache; srv may already hold its bound network server. */
static int
server_configure(struct kpasswd_server *srv, const struct kdc_config *kdc, const char *admins)
{
    int rc;

    if (kdc == NULL || kdc->db_path == NULL)
        return ck_error_set(CK_ERR_CONFIG, "kpasswd: no database path");
    srv->kdc = kdc;
    srv->clockskew = kdc->clockskew > 0 ? kdc->clockskew : KDC_DEFAULT_CLOCKSKEW;
    if ((rc = parse_admins(srv, admins)) != 0 ||
        (rc = ck_rcache_new(0, 2 * srv->clockskew, &srv->rcache)) != 0)
        return rc;
    return 0;
}

int
kpasswd_server_new(const struct kdc_config *kdc, const char *admins, struct kpasswd_server **out)
{
    struct kpasswd_server *srv;
    int rc;

    *out = NULL;
    if ((srv = calloc(1, sizeof(*srv))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "kpasswd");
    if ((rc = server_configure(srv, kdc, admins)) != 0) {
        kpasswd_server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int
kpasswd_worker_new(struct kpasswd_server *srv, struct kpasswd_worker **out)
{
    struct kpasswd_worker *w;
    ck_db_principal *svc = NULL;
    int rc;

    *out = NULL;
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "kpasswd worker");
    w->srv = srv;
    if ((rc = ck_store_open(srv->kdc->db_path, srv->kdc->stash_path, 0, &w->store)) != 0)
        goto out;
    ck_strlcpy(w->realm, ck_store_realm(w->store)->name, sizeof(w->realm));
    if (srv->kdc->realm != NULL && strcmp(srv->kdc->realm, w->realm) != 0) {
        rc = ck_error_set(CK_ERR_CONFIG, "kpasswd: realm %s configured, the database holds %s",
                          srv->kdc->realm, w->realm);
        goto out;
    }
    snprintf(w->service, sizeof(w->service), CK_KPASSWD_CHANGEPW_SERVICE "@%s", w->realm);
    rc = ck_store_get_principal(w->store, w->service, &svc);
    if (rc == CK_ERR_NOTFOUND) {
        rc = ck_error_set(CK_ERR_CONFIG,
                          "kpasswd: %s is not in the database; create it with "
                          "\"cablekey init --db %s --add-changepw\" or turn kpasswd off",
                          w->service, srv->kdc->db_path);
        goto out;
    }
    if (rc != 0)
        goto out;
    if (!(svc->attributes & CK_ATTR_PWCHANGE_SERVICE))
        ck_log_warn("kpasswd: %s lacks PWCHANGE_SERVICE: users with an expired password cannot "
                    "get a ticket for it", w->service);
out:
    ck_db_principal_free(svc);
    if (rc != 0) {
        kpasswd_worker_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void
kpasswd_worker_free(struct kpasswd_worker *w)
{
    if (w == NULL)
        return;
    ck_store_close(w->store);
    free(w);
}

/* ---- authentication ---------------------------------------------------------------------- */

/* ck_ap_key_fn over the database: kadmin/changepw's key for (etype, kvno). ap.c has already
 * checked that the ticket names that service. */
static int
service_key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
               int32_t *krb_error)
{
    struct kpasswd_worker *w = arg;
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

static bool
is_admin(const struct kpasswd_server *srv, const char *client)
{
    for (size_t i = 0; i < srv->n_admins; i++)
        if (strcmp(srv->admins[i], client) == 0)
            return true;
    return false;
}

/* ---- applying ---------------------------------------------------------------------------- */

/* Gives principal `name` keys derived from password and clears the need to change it.
 *
 * THIS IS THE SINGLE PLACE WHERE A PASSWORD CHANGE IS APPLIED: ck_store_change_password checks
 * the principal's password policy (length, character classes, history; the minimum age for a
 * user changing their own password, not for an administrator setting another's: MIT) and
 * refuses with CK_ERR_POLICY and the reason in the error context, which the caller turns into
 * KRB5_KPASSWD_SOFTERROR with that reason as the result string. It then stores the new keys as
 * the next kvno, records the change, sets the password expiry from the policy's max life (none
 * without one, as MIT) and clears REQUIRES_PWCHANGE, in one transaction. */
static int
kpasswd_apply_password(struct kpasswd_worker *w, const char *name, const char *password,
                       size_t password_len, bool self)
{
    return ck_store_change_password(w->store, name, password, password_len,
                                    self ? 0 : CK_PW_ADMIN, now_sec(w->srv, NULL), NULL);
}

/* Authorises and applies one change; fills st's result. */
static void
change_password(struct kpasswd_worker *w, struct kpasswd_req_state *st, bool initial,
                const char *password, size_t password_len)
{
    const char *target = st->target[0] != '\0' ? st->target : st->client;
    bool self = strcmp(target, st->client) == 0;
    const char *at = strrchr(target, '@');
    int rc;

    if (!self && !is_admin(w->srv, st->client)) {
        set_result(st, CK_KPASSWD_ACCESSDENIED, "Not authorized to set another principal's "
                   "password", "requester not in kpasswd_admins");
        return;
    }
    if (self && !initial && !is_admin(w->srv, st->client)) {
        set_result(st, CK_KPASSWD_INITIAL_FLAG_NEEDED, "Ticket must be derived from a password",
                   "ticket without INITIAL");
        return;
    }
    if (at == NULL || strcmp(at + 1, w->realm) != 0) {
        set_result(st, CK_KPASSWD_SOFTERROR, "Target principal is not in this realm",
                   "foreign target");
        return;
    }
    if (strncmp(target, "krbtgt/", 7) == 0 || strncmp(target, "kadmin/", 7) == 0) {
        set_result(st, CK_KPASSWD_ACCESSDENIED,
                   "The keys of this principal cannot be changed with kpasswd", "protected target");
        return;
    }
    rc = kpasswd_apply_password(w, target, password, password_len, self);
    if (rc == 0) {
        set_result(st, CK_KPASSWD_SUCCESS, "Password changed", NULL);
    } else if (rc == CK_ERR_POLICY) {
        set_result(st, CK_KPASSWD_SOFTERROR, ck_error_context(), ck_error_context());
    } else if (rc == CK_ERR_NOTFOUND) {
        set_result(st, CK_KPASSWD_SOFTERROR, "Principal does not exist", ck_error_context());
    } else {
        /* Database internals stay in the log; the client learns only that it failed. */
        set_result(st, CK_KPASSWD_HARDERROR, "Password change failed on the server",
                   ck_error_context());
    }
}

/* ---- replies ----------------------------------------------------------------------------- */

static int
build_error_reply(struct kpasswd_worker *w, struct kpasswd_req_state *st, uint8_t *reply,
                  size_t cap, size_t *reply_len)
{
    char service[512];
    uint8_t *result = NULL, *der = NULL;
    size_t result_len = 0, der_len = 0;
    int32_t usec;
    int64_t now = now_sec(w->srv, &usec);
    int rc;

    /* RFC 3244: a KRB-ERROR from kadmin/changepw@REALM whose e-data is the result. */
    if ((size_t)snprintf(service, sizeof(service), "kadmin/changepw@%s", w->realm) >=
        sizeof(service))
        return ck_error_set(CK_ERR_LIMIT, "kpasswd: realm name too long");
    if ((rc = ck_kpasswd_result_build((uint16_t)st->result, st->result_string, &result,
                                      &result_len)) != 0 ||
        (rc = ck_krb_error_build_data(service, st->krb_error != 0 ? st->krb_error
                                                                  : CK_KRB_ERR_GENERIC,
                                      st->e_text, result, result_len, now, usec, &der,
                                      &der_len)) != 0)
        goto out;
    rc = ck_kpasswd_rep_build(CK_KPASSWD_VERSION_CHANGEPW, NULL, 0, der, der_len, reply, cap,
                              reply_len);
out:
    ck_asn1_free_der(der, der_len);
    free(result);
    return rc;
}

static int
build_priv_reply(struct kpasswd_worker *w, struct kpasswd_req_state *st,
                 const ck_ap_req_result *ap, const struct ck_peer *local, uint8_t *reply,
                 size_t cap, size_t *reply_len)
{
    const ck_key *key = ap->has_subkey ? &ap->subkey : &ap->session_key;
    ck_krb_address s_addr;
    ck_krb_msg_params params;
    uint8_t *aprep = NULL, *result = NULL, *priv = NULL;
    size_t aprep_len = 0, result_len = 0, priv_len = 0;
    uint32_t seq;
    int rc;

    /* 30 bits: MIT encodes sequence numbers as signed 32-bit integers. */
    if ((rc = ck_random_bytes(&seq, sizeof(seq))) != 0)
        return rc;
    seq &= 0x3fffffffu;
    if (ck_peer_sockaddr(local, NULL) == NULL ||
        ck_krb_address_from_sockaddr(ck_peer_sockaddr(local, NULL), &s_addr) != 0)
        ck_krb_address_directional(1, &s_addr);
    memset(&params, 0, sizeof(params));
    params.use_timestamp = true;
    params.timestamp = now_sec(w->srv, &params.usec);
    params.use_seq = true;
    params.seq = seq;
    params.s_address = &s_addr;
    if ((rc = ck_ap_rep_build(&ap->session_key, ap->ctime, ap->cusec, NULL, &seq, &aprep,
                              &aprep_len)) != 0 ||
        (rc = ck_kpasswd_result_build((uint16_t)st->result, st->result_string, &result,
                                      &result_len)) != 0 ||
        (rc = ck_krb_priv_build(key, result, result_len, &params, &priv, &priv_len)) != 0)
        goto out;
    rc = ck_kpasswd_rep_build(CK_KPASSWD_VERSION_CHANGEPW, aprep, aprep_len, priv, priv_len,
                              reply, cap, reply_len);
out:
    ck_asn1_free_der(aprep, aprep_len);
    free(result);
    free(priv);
    return rc;
}

/* ---- one request ------------------------------------------------------------------------- */

/* Decrypts the KRB-PRIV and extracts the password (and target, for 0xff80). On failure sets
 * st's result and returns non-zero. */
static int
read_password(struct kpasswd_worker *w, struct kpasswd_req_state *st, const ck_kpasswd_req *kr,
              const ck_ap_req_result *ap, char **pw, size_t *pw_len)
{
    const ck_key *key = ap->has_subkey ? &ap->subkey : &ap->session_key;
    ck_krb_msg_check check;
    ck_krb_msg_info info;
    uint8_t *data = NULL;
    size_t data_len = 0;
    int rc;

    *pw = NULL;
    *pw_len = 0;
    memset(&check, 0, sizeof(check));
    check.clockskew = w->srv->clockskew;
    check.now = now_sec(w->srv, NULL);
    if ((rc = ck_krb_priv_read(key, kr->priv, kr->priv_len, &check, &data, &data_len,
                               &info)) != 0) {
        set_result(st, CK_KPASSWD_HARDERROR, "Failed decrypting request", ck_error_context());
        return rc;
    }
    /* Bound to this AP-REQ by its key; the sequence number, when both sides use one, must be
     * the one the authenticator announced (MIT omits a zero sequence number). */
    if (ap->has_seq_number && info.has_seq && info.seq != ap->seq_number) {
        set_result(st, CK_KPASSWD_HARDERROR, "Failed decrypting request",
                   "KRB-PRIV sequence number differs from the authenticator's");
        rc = CK_ERR_PROTO;
        goto out;
    }
    /* MIT's client sends neither a timestamp nor a (zero, hence omitted) sequence number: the
     * fresh subkey of a replay-checked AP-REQ is what binds its KRB-PRIV to this exchange.
     * Without a subkey, the session key is shared by every request made with the ticket, so
     * the message itself must then say when or where in the conversation it belongs. */
    if (!info.has_timestamp && !info.has_seq && !ap->has_subkey) {
        set_result(st, CK_KPASSWD_HARDERROR, "Failed decrypting request",
                   "KRB-PRIV with neither timestamp nor sequence number under the session key");
        rc = CK_ERR_PROTO;
        goto out;
    }
    if (kr->version == CK_KPASSWD_VERSION_SETPW) {
        rc = ck_kpasswd_setpw_data_parse(data, data_len, pw, pw_len, st->target,
                                         sizeof(st->target));
        if (rc != 0) {
            set_result(st, CK_KPASSWD_MALFORMED, "Malformed ChangePasswdData",
                       ck_error_context());
            goto out;
        }
    } else {
        if (data_len == 0 || data_len > CK_KPASSWD_MAX_PASSWORD ||
            memchr(data, 0, data_len) != NULL) {
            set_result(st, CK_KPASSWD_MALFORMED, "Malformed password",
                       data_len == 0 ? "empty password" : "oversized or NUL in password");
            rc = CK_ERR_DECODE;
            goto out;
        }
        if ((*pw = malloc(data_len + 1)) == NULL) {
            set_result(st, CK_KPASSWD_HARDERROR, "Server out of memory", "malloc");
            rc = CK_ERR_NOMEM;
            goto out;
        }
        memcpy(*pw, data, data_len);
        (*pw)[data_len] = '\0';
        *pw_len = data_len;
    }
    rc = 0;
out:
    if (data != NULL)
        ck_free_secret(data, data_len);
    return rc;
}

static void
log_request(const struct kpasswd_req_state *st, bool tcp, const struct ck_peer *peer)
{
    char addr[CK_NET_ADDRSTRLEN];
    char client[256], target[256], detail[256];

    ck_peer_format(peer, addr, sizeof(addr));
    /* Client-chosen names and the detail may hold anything: printable ASCII only. */
    kdc_log_escape(st->client[0] != '\0' ? st->client : "-", client, sizeof(client));
    kdc_log_escape(st->target[0] != '\0' ? st->target : "-", target, sizeof(target));
    kdc_log_escape(st->detail, detail, sizeof(detail));
    ck_log_notice("KPASSWD %s %s v=0x%04x client=%s target=%s result=%d (%s)%s%s",
                  tcp ? "tcp" : "udp", addr, (unsigned)st->version, client, target, st->result,
                  ck_kpasswd_result_name(st->result), detail[0] != '\0' ? ": " : "", detail);
}

int
kpasswd_handle_request(struct kpasswd_worker *w, const uint8_t *req, size_t req_len, bool tcp,
                       const struct ck_peer *peer, const struct ck_peer *local,
                       uint8_t *reply, size_t reply_cap, size_t *reply_len)
{
    struct kpasswd_req_state *st = NULL;
    ck_kpasswd_req kr;
    ck_ap_req_result ap;
    char *pw = NULL;
    size_t pw_len = 0;
    bool verified = false;
    int rc;

    *reply_len = 0;
    memset(&ap, 0, sizeof(ap));
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return 0;
    rc = ck_kpasswd_req_parse(req, req_len, &kr);
    st->version = kr.version;
    if (rc == CK_ERR_UNSUPPORTED) {
        st->krb_error = CK_KDC_ERR_BAD_PVNO;
        set_result(st, CK_KPASSWD_BAD_VERSION, "Protocol version not supported",
                   ck_error_context());
        goto reply;
    }
    if (rc != 0) {
        /* Answer only what looks like a kpasswd message: its length field matches. */
        if (req_len < CK_KPASSWD_HEADER_LEN || ((size_t)req[0] << 8 | req[1]) != req_len) {
            /* At info: unanswered noise must not flood the log at the default level. */
            ck_log_info("KPASSWD %s: %zu bytes without a kpasswd header; not answered",
                        tcp ? "tcp" : "udp", req_len);
            goto out;
        }
        st->krb_error = CK_KRB_AP_ERR_MODIFIED;
        set_result(st, CK_KPASSWD_MALFORMED, "Request was truncated or malformed",
                   ck_error_context());
        goto reply;
    }
    rc = ck_ap_req_verify_at(kr.ap_req, kr.ap_req_len, service_key_fn, w, w->service,
                             w->srv->rcache, w->srv->clockskew, CK_KU_AP_REQ_AUTH,
                             now_sec(w->srv, NULL), &ap);
    if (rc == CK_ERR_FULL) {
        /* Not the client's fault: a busy server, which must still refuse what it cannot check
         * for replay. */
        st->krb_error = CK_KRB_ERR_GENERIC;
        st->e_text = CK_AP_ETEXT_RCACHE_FULL;
        set_result(st, CK_KPASSWD_HARDERROR, "Server busy: " CK_AP_ETEXT_RCACHE_FULL,
                   ck_error_context());
        goto reply;
    }
    if (rc != 0) {
        st->krb_error = ap.krb_error;
        set_result(st, CK_KPASSWD_AUTHERROR, "Failed reading application request",
                   ck_error_context());
        goto reply;
    }
    verified = true;
    if (ck_asn1_principal_unparse(ap.enc_ticket->cname, ap.enc_ticket->crealm, st->client,
                                  sizeof(st->client)) != 0) {
        set_result(st, CK_KPASSWD_HARDERROR, "Client name too long", "client name");
        goto reply;
    }
    if (read_password(w, st, &kr, &ap, &pw, &pw_len) != 0)
        goto reply;
    change_password(w, st, (ap.tkt_flags & CK_TKT_FLG_INITIAL) != 0, pw, pw_len);
reply:
    log_request(st, tcp, peer);
    if (verified)
        rc = build_priv_reply(w, st, &ap, local, reply, reply_cap, reply_len);
    else
        rc = build_error_reply(w, st, reply, reply_cap, reply_len);
    if (rc != 0) {
        ck_log_err("kpasswd: cannot build the reply: %s", ck_error_context());
        *reply_len = 0;
    }
out:
    if (pw != NULL)
        ck_free_secret(pw, pw_len + 1);
    ck_ap_req_result_clear(&ap);
    free(st);
    return 0;
}

/* ---- network glue ------------------------------------------------------------------------ */

static int
net_worker_init(int index, void *arg, void **state)
{
    struct kpasswd_worker *w = NULL;
    int rc = kpasswd_worker_new(arg, &w);

    *state = w;
    if (rc != 0)
        return ck_error_set(rc, "kpasswd worker %d: %s", index, ck_error_context());
    return 0;
}

static void
net_worker_fini(int index, void *arg, void *state)
{
    (void)index;
    (void)arg;
    kpasswd_worker_free(state);
}

static int
net_handle(void *state, const struct ck_net_request *req, uint8_t *reply, size_t reply_cap,
           size_t *reply_len)
{
    struct ck_peer local;

    *reply_len = 0;
    /* An oversized TCP length prefix: nothing of the message was read; close. */
    if (req->flags & CK_NET_REQ_OVERSIZED)
        return 0;
    ck_peer_set(&local, req->local, req->local_len);
    return kpasswd_handle_request(state, req->data, req->len, req->transport == CK_NET_TCP,
                                  req->remote, &local, reply, reply_cap, reply_len);
}

int
kpasswd_server_bind(const char *const *listen, size_t n_listen, struct kpasswd_server **out)
{
    struct kpasswd_server *srv;
    struct ck_net_config ncfg;
    struct ck_net_callbacks cb;
    int rc;

    *out = NULL;
    if ((srv = calloc(1, sizeof(*srv))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "kpasswd");
    memset(&ncfg, 0, sizeof(ncfg));
    ncfg.listen = listen;
    ncfg.n_listen = n_listen;
    ncfg.default_port = KPASSWD_DEFAULT_PORT;
    ncfg.workers = KPASSWD_WORKERS;
    ncfg.max_request = KPASSWD_MAX_REQUEST;
    ncfg.max_dgram = KPASSWD_MAX_REQUEST;
    ncfg.max_reply = CK_KPASSWD_MAX_MSG;
    /* RFC 3244 §2: over TCP, kpasswd messages carry Kerberos' 4-byte length prefix. */
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
        kpasswd_server_free(srv);
        return ck_error_set(rc, "kpasswd: %s", msg);
    }
    *out = srv;
    return 0;
}

int
kpasswd_server_run(struct kpasswd_server *srv, const struct kdc_config *kdc, const char *admins)
{
    int rc;

    if ((rc = server_configure(srv, kdc, admins)) != 0)
        return rc;
    if ((rc = ck_net_server_run(srv->net)) != 0) {
        char msg[512];

        ck_strlcpy(msg, ck_error_context(), sizeof(msg));
        return ck_error_set(rc, "kpasswd: %s", msg);
    }
    return 0;
}

void
kpasswd_server_describe(const struct kpasswd_server *srv, char *buf, size_t size)
{
    ck_net_server_describe(srv != NULL ? srv->net : NULL, buf, size);
}

void
kpasswd_server_free(struct kpasswd_server *srv)
{
    if (srv == NULL)
        return;
    ck_net_server_free(srv->net);
    for (size_t i = 0; i < srv->n_admins; i++)
        free(srv->admins[i]);
    ck_rcache_free(srv->rcache);
    free(srv);
}
