/* The KDC protocol core: worker state, dispatch by message type, the UDP lookaside cache, reply
 * size rules, KRB-ERROR construction and the one log line per request (MIT's format, see
 * LIBRARIES.md §7).
 *
 * Decisions (documented for operators in the log tokens):
 *   - A message that is neither AS-REQ nor TGS-REQ (including bytes that are not an APPLICATION
 *     tag at all) gets KRB_AP_ERR_MSG_TYPE over TCP and no answer over UDP (RFC 4120 §5.1.4 /
 *     §7.2.1: a UDP server cannot tell garbage from a stray datagram).
 *   - An AS-REQ/TGS-REQ tag whose contents do not decode gets KRB_ERR_GENERIC with e-text
 *     "DECODE_ERROR" on both transports (a real, if broken, client is waiting).
 *   - A request longer than max_request gets KRB_ERR_FIELD_TOOLONG over TCP, silence over UDP.
 *   - A UDP reply longer than max_dgram_reply is replaced by KRB_ERR_RESPONSE_TOO_BIG, so MIT and
 *     Heimdal clients retry over TCP; a reply longer than the caller's buffer by KRB_ERR_GENERIC.
 *   - The lookaside cache is used for UDP only: a client that got RESPONSE_TOO_BIG over UDP sends
 *     the same bytes over TCP and must get the real reply there. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/util.h"
#include "alarms.h"
#include "kdc_int.h"

int
kdc_worker_new(const struct kdc_config *cfg, struct kdc_worker **out)
{
    struct kdc_worker *w = NULL;
    int rc;

    *out = NULL;
    if (cfg == NULL || cfg->db_path == NULL)
        return ck_error_set(CK_ERR_CONFIG, "kdc: no database path");
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "kdc worker");
    if ((w->scratch = malloc(sizeof(*w->scratch))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "kdc worker");
        goto out;
    }
    if ((rc = ck_store_open(cfg->db_path, cfg->stash_path, 0, &w->store)) != 0)
        goto out;
    /* The KDC's own writes (a device's first-login pin) are audited under its name. */
    ck_store_set_actor(w->store, "cablekey-kdc");
    kdc_fleet_init(w, cfg);
    w->realm = ck_store_realm(w->store);
    if (cfg->realm != NULL && strcmp(cfg->realm, w->realm->name) != 0) {
        rc = ck_error_set(CK_ERR_CONFIG, "kdc: realm %s configured, the database holds %s",
                          cfg->realm, w->realm->name);
        goto out;
    }
    ck_strlcpy(w->realm_name, w->realm->name, sizeof(w->realm_name));
    if ((size_t)snprintf(w->tgs_name, sizeof(w->tgs_name), "krbtgt/%s@%s", w->realm_name,
                         w->realm_name) >= sizeof(w->tgs_name)) {
        rc = ck_error_set(CK_ERR_CONFIG, "kdc: realm name too long");
        goto out;
    }
    /* Effective realm-wide caps: the stricter of the config file and the database's realm. */
    w->max_life = cfg->max_life > 0 ? cfg->max_life : KDC_DEFAULT_MAX_LIFE;
    if (w->realm->max_life > 0 && w->realm->max_life < w->max_life)
        w->max_life = w->realm->max_life;
    w->max_renew = cfg->max_renewable_life > 0 ? cfg->max_renewable_life : KDC_DEFAULT_MAX_RENEW;
    if (w->realm->max_renew > 0 && w->realm->max_renew < w->max_renew)
        w->max_renew = w->realm->max_renew;
    w->clockskew = cfg->clockskew > 0 ? cfg->clockskew : KDC_DEFAULT_CLOCKSKEW;
    w->max_dgram_reply = cfg->max_dgram_reply > 0 ? cfg->max_dgram_reply
                                                  : KDC_DEFAULT_MAX_DGRAM_REPLY;
    w->max_request = cfg->max_request > 0 ? cfg->max_request : KDC_DEFAULT_MAX_REQUEST;
    for (size_t i = 0; i < cfg->n_enctypes && i < KDC_MAX_ENCTYPES; i++)
        if (ck_enctype_is_supported(cfg->enctypes[i]))
            w->enctypes[w->n_enctypes++] = cfg->enctypes[i];
    if (w->n_enctypes == 0) {
        rc = ck_error_set(CK_ERR_CONFIG, "kdc: no supported enctype configured");
        goto out;
    }
    w->clock = cfg->clock;
    w->clock_ctx = cfg->clock_ctx;
    w->alarms = cfg->alarms;
    w->metrics = cfg->metrics;
    w->cache_max = CK_STORE_CACHE_MAX_ENTRIES;
    w->cache_check_ms = CK_STORE_CACHE_CHECK_MS;
    if (cfg->lookaside &&
        (rc = kdc_lookaside_new(KDC_LOOKASIDE_MAX_ENTRIES, KDC_LOOKASIDE_MAX_BYTES,
                                KDC_LOOKASIDE_LIFETIME_MS, &w->lookaside)) != 0)
        goto out;
    if ((rc = kdc_preauth_init(w, cfg)) != 0)
        goto out;
    if (!cfg->disable_lockout &&
        (rc = kdc_lockout_new(KDC_LOCKOUT_MAX_PENDING,
                              cfg->lockout_flush_ms > 0 ? cfg->lockout_flush_ms
                                                        : KDC_DEFAULT_LOCKOUT_FLUSH_MS,
                              !cfg->disable_last_success, &w->lockout)) != 0)
        goto out;
    if (cfg->log_flush_ms > 0) {
        if ((w->logb = malloc(sizeof(*w->logb))) == NULL) {
            rc = ck_error_set(CK_ERR_NOMEM, "kdc worker: log batch");
            goto out;
        }
        ck_log_batch_init(w->logb);
        w->log_flush_ms = cfg->log_flush_ms;
    }
    *out = w;
    w = NULL;
out:
    kdc_worker_free(w);
    return rc;
}

void
kdc_worker_free(struct kdc_worker *w)
{
    if (w == NULL)
        return;
    if (w->logb != NULL) {
        ck_log_batch_flush(w->logb);
        free(w->logb);
    }
    if (w->lockout != NULL && w->store != NULL)
        kdc_lockout_flush(w);
    kdc_fleet_fini(w);
    kdc_lockout_free(w->lockout);
    kdc_preauth_fini(w);
    kdc_reply_free(w->reply);
    kdc_errmsg_free(w->errmsg);
    kdc_lookaside_free(w->lookaside);
    ck_store_close(w->store);
    free(w->scratch);
    OPENSSL_free(w->ei2_der);
    OPENSSL_free(w->offers_der);
    free(w);
}

const char *
kdc_worker_realm(const struct kdc_worker *w)
{
    return w->realm_name;
}

void
kdc_fail(struct kdc_request *r, int32_t code, const char *status, const char *fmt, ...)
{
    r->error_code = code;
    r->status = status;
    if (fmt != NULL) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
        va_end(ap);
    }
}

bool
kdc_enctype_permitted(const struct kdc_worker *w, int32_t etype)
{
    for (size_t i = 0; i < w->n_enctypes; i++)
        if (w->enctypes[i] == etype)
            return true;
    return false;
}

const ck_db_key *
kdc_first_key(const struct kdc_worker *w, const ck_db_principal *p)
{
    /* Keys are stored newest kvno first, then in realm enctype order: the first permitted key at
     * the current kvno is the strongest current one. */
    for (size_t i = 0; i < p->n_keys; i++)
        if (p->keys[i].kvno == p->kvno && kdc_enctype_permitted(w, p->keys[i].enctype))
            return &p->keys[i];
    return NULL;
}

int32_t
kdc_session_etype(const struct kdc_worker *w, const struct kdc_request *r,
                  const ck_db_principal *server)
{
    for (size_t i = 0; i < r->n_etypes; i++) {
        int32_t e = r->etypes[i];

        if (kdc_enctype_permitted(w, e) && ck_db_principal_find_key(server, 0, e) != NULL)
            return e;
    }
    return 0;
}

int64_t
kdc_life_cap(const struct kdc_worker *w, const ck_db_principal *p)
{
    return (p->max_life > 0 && p->max_life < w->max_life) ? p->max_life : w->max_life;
}

int64_t
kdc_renew_cap(const struct kdc_worker *w, const ck_db_principal *p)
{
    return (p->max_renew > 0 && p->max_renew < w->max_renew) ? p->max_renew : w->max_renew;
}

bool
kdc_unparse(const CK_PRINCIPAL_NAME *name, const ASN1_GENERALSTRING *realm, char *buf,
            size_t size)
{
    if (name == NULL || ck_asn1_principal_unparse(name, realm, buf, size) != 0) {
        buf[0] = '\0';
        return false;
    }
    return true;
}

/* MIT's messages for the codes we send (what klist/kinit users see via com_err). */
static const char *
error_message(int32_t code)
{
    switch (code) {
    case CK_KDC_ERR_NAME_EXP: return "Client's entry in database has expired";
    case CK_KDC_ERR_SERVICE_EXP: return "Server's entry in database has expired";
    case CK_KDC_ERR_C_PRINCIPAL_UNKNOWN: return "Client not found in Kerberos database";
    case CK_KDC_ERR_S_PRINCIPAL_UNKNOWN: return "Server not found in Kerberos database";
    case CK_KDC_ERR_CANNOT_POSTDATE: return "Ticket cannot be postdated";
    case CK_KDC_ERR_NEVER_VALID: return "Requested effective lifetime is negative or too short";
    case CK_KDC_ERR_POLICY: return "KDC policy rejects request";
    case CK_KDC_ERR_BADOPTION: return "KDC can't fulfill requested option";
    case CK_KDC_ERR_ETYPE_NOSUPP: return "KDC has no support for encryption type";
    case CK_KDC_ERR_PADATA_TYPE_NOSUPP: return "KDC has no support for padata type";
    case CK_KDC_ERR_CLIENT_REVOKED: return "Client's credentials have been revoked";
    case CK_KDC_ERR_SVC_UNAVAILABLE: return "A service is not available that is required to "
                                            "process the request";
    case CK_KDC_ERR_KEY_EXPIRED: return "Password has expired";
    case CK_KDC_ERR_PREAUTH_FAILED: return "Preauthentication failed";
    case CK_KDC_ERR_PREAUTH_REQUIRED: return "Additional pre-authentication required";
    case CK_KDC_ERR_SERVER_NOMATCH: return "Requested server and ticket don't match";
    case CK_KRB_AP_ERR_BAD_INTEGRITY: return "Decrypt integrity check failed";
    case CK_KRB_AP_ERR_TKT_EXPIRED: return "Ticket expired";
    case CK_KRB_AP_ERR_TKT_NYV: return "Ticket not yet valid";
    case CK_KRB_AP_ERR_REPEAT: return "Request is a replay";
    case CK_KRB_AP_ERR_NOT_US: return "The ticket isn't for us";
    case CK_KRB_AP_ERR_BADMATCH: return "Ticket/authenticator don't match";
    case CK_KRB_AP_ERR_SKEW: return "Clock skew too great";
    case CK_KRB_AP_ERR_MSG_TYPE: return "Invalid message type";
    case CK_KRB_AP_ERR_MODIFIED: return "Message stream modified";
    case CK_KRB_AP_ERR_BADKEYVER: return "Key version number for principal in key table is "
                                         "incorrect";
    case CK_KRB_AP_ERR_NOKEY: return "Service key not available";
    case CK_KRB_AP_ERR_INAPP_CKSUM: return "Inappropriate type of checksum in message";
    case CK_KRB_ERR_RESPONSE_TOO_BIG: return "Response too big for UDP, retry with TCP";
    case CK_KRB_ERR_FIELD_TOOLONG: return "Field is too long for this implementation";
    /* PKINIT (RFC 4556, RFC 8070, RFC 8636) */
    case CK_KDC_ERR_CLIENT_NOT_TRUSTED: return "Client not trusted";
    case CK_KDC_ERR_INVALID_SIG: return "Invalid signature";
    case CK_KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED: return "Key parameters not accepted";
    case CK_KDC_ERR_CANT_VERIFY_CERTIFICATE: return "Can't verify certificate";
    case CK_KDC_ERR_INVALID_CERTIFICATE: return "Invalid certificate";
    case CK_KDC_ERR_REVOKED_CERTIFICATE: return "Revoked certificate";
    case CK_KDC_ERR_REVOCATION_STATUS_UNKNOWN: return "Revocation status unknown";
    case CK_KDC_ERR_CLIENT_NAME_MISMATCH: return "Client name mismatch";
    case CK_KDC_ERR_INCONSISTENT_KEY_PURPOSE: return "Inconsistent key purpose";
    case CK_KDC_ERR_DIGEST_IN_CERT_NOT_ACCEPTED: return "Digest in certificate not accepted";
    case CK_KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED: return "Checksum must be included";
    case CK_KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED:
        return "Digest in signed-data not accepted";
    case CK_KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED:
        return "Public key encryption not supported";
    case CK_KDC_ERR_PREAUTH_EXPIRED: return "Preauthentication expired";
    case CK_KDC_ERR_NO_ACCEPTABLE_KDF: return "No acceptable KDF offered";
    default: return "Generic error (see e-text)";
    }
}

/* The KRB-ERROR every error reply of a worker is encoded from, kept from one to the next as the
 * reply builder is (half of a kinit's requests end in PREAUTH_REQUIRED). It owns every object;
 * the optional fields a given error may lack are views of the slots below, set right before the
 * encode and cleared right after. The names are copies of the request's: a client that keeps
 * asking keeps its names' encodings. */
struct kdc_errmsg {
    CK_KRB_ERROR_MSG *msg;
    CK_PRINCIPAL_NAME *cname;           /* msg->cname when the error names the client */
    ASN1_GENERALSTRING *crealm;         /* msg->crealm, likewise */
    ASN1_GENERALSTRING *e_text;         /* msg->e_text when there is one */
    ASN1_OCTET_STRING *e_data;          /* msg->e_data when there is one */
};

static void
errmsg_views_clear(struct kdc_errmsg *em)
{
    em->msg->cname = NULL;
    em->msg->crealm = NULL;
    em->msg->e_text = NULL;
    em->msg->e_data = NULL;
}

void
kdc_errmsg_free(struct kdc_errmsg *em)
{
    if (em == NULL)
        return;
    if (em->msg != NULL) {
        errmsg_views_clear(em);
        CK_KRB_ERROR_MSG_free(em->msg);
    }
    CK_PRINCIPAL_NAME_free(em->cname);
    ASN1_GENERALSTRING_free(em->crealm);
    ASN1_GENERALSTRING_free(em->e_text);
    ASN1_OCTET_STRING_free(em->e_data);
    free(em);
}

static int
errmsg_new(struct kdc_errmsg **out)
{
    struct kdc_errmsg *em = calloc(1, sizeof(*em));

    *out = NULL;
    if (em == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KRB-ERROR");
    em->msg = CK_KRB_ERROR_MSG_new();
    em->cname = CK_PRINCIPAL_NAME_new();
    em->crealm = ASN1_GENERALSTRING_new();
    em->e_text = ASN1_GENERALSTRING_new();
    em->e_data = ASN1_OCTET_STRING_new();
    if (em->msg == NULL || em->cname == NULL || em->crealm == NULL || em->e_text == NULL ||
        em->e_data == NULL) {
        kdc_errmsg_free(em);
        return ck_error_set(CK_ERR_NOMEM, "KRB-ERROR");
    }
    em->msg->pvno = CK_KRB5_PVNO;
    em->msg->msg_type = CK_KRB_ERROR;
    *out = em;
    return 0;
}

static int
kstring_update(ASN1_GENERALSTRING **dst, const char *str)
{
    return ck_asn1_kstring_eq(*dst, str) ? 0 : ck_asn1_kstring_set(dst, str);
}

/* Encodes a KRB-ERROR for code into *der (OPENSSL_malloc'd). Uses the request's names when it
 * decoded, else krbtgt/OUR-REALM. */
static int
encode_error(struct kdc_request *r, int32_t code, const char *e_text, const uint8_t *e_data,
             size_t e_data_len, uint8_t **der, size_t *der_len)
{
    struct kdc_worker *w = r->w;
    struct kdc_errmsg *em;
    CK_KRB_ERROR_MSG *err;
    CK_KDC_REQ_BODY *b = r->req != NULL ? r->req->req_body : NULL;
    int rc;

    *der = NULL;
    *der_len = 0;
    if (w->errmsg == NULL && (rc = errmsg_new(&w->errmsg)) != 0)
        return rc;
    em = w->errmsg;
    err = em->msg;
    err->error_code = code;
    err->susec = r->now_usec;
    if ((rc = ck_asn1_time_set(&err->stime, r->now)) != 0)
        goto out;
    if (b != NULL && b->sname != NULL && b->realm != NULL) {
        if ((rc = kstring_update(&err->realm, ck_asn1_kstring_get(b->realm))) != 0 ||
            (rc = kdc_name_copy(err->sname, b->sname)) != 0)
            goto out;
    } else {
        const char *comps[2] = {"krbtgt", w->realm_name};

        if ((rc = kstring_update(&err->realm, w->realm_name)) != 0 ||
            (rc = ck_asn1_principal_set(err->sname, CK_NT_SRV_INST, comps, 2)) != 0)
            goto out;
    }
    if (r->error_with_client && b != NULL && b->cname != NULL && b->realm != NULL) {
        if ((rc = kstring_update(&em->crealm, ck_asn1_kstring_get(b->realm))) != 0 ||
            (rc = kdc_name_copy(em->cname, b->cname)) != 0)
            goto out;
        err->crealm = em->crealm;
        err->cname = em->cname;
    }
    if (e_text != NULL && e_text[0] != '\0') {
        if ((rc = kstring_update(&em->e_text, e_text)) != 0)
            goto out;
        err->e_text = em->e_text;
    }
    if (e_data != NULL) {
        if ((rc = ck_asn1_octets_set(&em->e_data, e_data, e_data_len)) != 0)
            goto out;
        err->e_data = em->e_data;
    }
    rc = ck_asn1_krb_error_encode(err, der, der_len);
out:
    errmsg_views_clear(em);
    return rc;
}

/* The client's address as MIT logs it: the host alone. */
static const char *
format_peer(const struct ck_peer *peer, char *buf, size_t size)
{
    return ck_peer_format_host(peer, buf, size);
}

/* Copies in to out (size bytes, NUL-terminated) with every byte outside printable ASCII written
 * as \xHH. Client-chosen names and e-text reach the log line: a \r, \n or a terminal escape
 * sequence in them must not forge or hide log lines or drive the terminal that displays them.
 * unparse has already turned '\\' into "\\\\", so "\x" in the output is always an escape. A
 * truncated line never ends in half an escape. */
size_t
kdc_log_escape(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (size == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
        if (*p >= 0x20 && *p < 0x7f) {
            if (o + 1 >= size)
                break;
            out[o++] = (char)*p;
        } else {
            if (o + 4 >= size)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 0xf];
        }
    }
    out[o] = '\0';
    return o;
}

static void
log_request(const struct kdc_request *r, const struct ck_peer *peer, int level)
{
    char ets[CK_ASN1_MAX_ETYPES * 12 + 32], addr[CK_NET_ADDRSTRLEN];
    char line[1024], esc[1024];
    size_t off = 0, elen;
    int n;

    if (level > ck_log_level())
        return;
    ets[0] = '\0';
    if (r->n_etypes > 0) {
        n = snprintf(ets, sizeof(ets), " (%zu etypes {", r->n_etypes);
        off = n > 0 ? (size_t)n : 0;
        /* One snprintf per enctype was a fifth of the line's cost. */
        for (size_t i = 0; i < r->n_etypes && off + 14 < sizeof(ets); i++) {
            char digits[12];
            uint32_t v = (uint32_t)(r->etypes[i] < 0 ? -(int64_t)r->etypes[i] : r->etypes[i]);
            size_t nd = 0;

            if (i > 0)
                ets[off++] = ' ';
            if (r->etypes[i] < 0)
                ets[off++] = '-';
            do
                digits[nd++] = (char)('0' + v % 10);
            while ((v /= 10) != 0);
            while (nd > 0)
                ets[off++] = digits[--nd];
        }
        if (off + 3 <= sizeof(ets)) {
            memcpy(ets + off, "})", 3);
        } else {
            ets[sizeof(ets) - 1] = '\0';
        }
    }
    if (r->error_code == 0 && r->reply != NULL) {
        n = snprintf(line, sizeof(line),
                 "%s%s %s: ISSUE: authtime %lld, etypes {rep=%d, tkt=%d, ses=%d}, %s for %s%s%s",
                 r->kind, ets, format_peer(peer, addr, sizeof(addr)), (long long)r->authtime,
                 (int)r->rep_etype, (int)r->tkt_etype, (int)r->ses_etype, r->cname, r->sname,
                 r->detail[0] ? ", " : "", r->detail);
    } else if (r->cname[0] != '\0' || r->sname[0] != '\0') {
        n = snprintf(line, sizeof(line), "%s%s %s: %s: %s for %s, %s%s%s", r->kind, ets,
                 format_peer(peer, addr, sizeof(addr)), r->status ? r->status : "ERROR",
                 r->cname[0] ? r->cname : "<unknown client>",
                 r->sname[0] ? r->sname : "<unknown server>",
                 r->error_code ? error_message(r->error_code) : "no reply",
                 r->detail[0] ? ": " : "", r->detail);
    } else {
        n = snprintf(line, sizeof(line), "%s%s %s: %s: %s%s%s", r->kind, ets,
                 format_peer(peer, addr, sizeof(addr)), r->status ? r->status : "ERROR",
                 r->error_code ? error_message(r->error_code) : "no reply",
                 r->detail[0] ? ": " : "", r->detail);
    }
    /* Truncation is fine (ck_log truncates at the same size anyway). */
    if (n < 0)
        return;
    elen = kdc_log_escape(line, esc, sizeof(esc));
    if (r->w->logb != NULL) {
        if (r->w->logb->len == 0)
            r->w->log_first_ms = ck_monotonic_ms();
        ck_log_batch_add_str(r->w->logb, level, esc, elen);
    } else {
        ck_log(level, "%s", esc);
    }
}

static int
log_idle(struct kdc_worker *w)
{
    int64_t wait;

    if (w->logb == NULL || w->logb->len == 0)
        return -1;
    wait = w->log_first_ms + w->log_flush_ms - ck_monotonic_ms();
    if (wait <= 0) {
        ck_log_batch_flush(w->logb);
        return -1;
    }
    return wait > INT32_MAX ? INT32_MAX : (int)wait;
}

int
kdc_worker_idle(struct kdc_worker *w)
{
    int a, b;

    if (w == NULL)
        return -1;
    a = log_idle(w);
    b = kdc_lockout_idle(w);
    if (a < 0 || (b >= 0 && b < a))
        a = b;
    b = kdc_fleet_idle(w);
    return a < 0 || b < a ? b : a;
}

/* Refusals that may come from a stale cache entry: the principal cache sees other processes'
 * changes only every CK_STORE_CACHE_CHECK_MS, so an operator who just unlocked a principal,
 * extended its expiry, changed its password or rotated the krbtgt key (tickets issued by another
 * worker that already sees the new key) would otherwise be refused for a moment. */
static bool
stale_refusal(const char *status)
{
    static const char *const tokens[] = {
        "CLIENT_NOT_FOUND",   "SERVER_NOT_FOUND", "CLIENT_EXPIRED",   "CLIENT_KEY_EXPIRED",
        "CLIENT_LOCKED_OUT",  "SERVICE_EXPIRED",  "SERVICE_DISALLOWED", "PREAUTH_FAILED",
        "BAD_ENCRYPTION_TYPE", "BADKEYVER",       "NOKEY",            "BAD_INTEGRITY",
        "TGT_SERVER_NOT_FOUND"};

    if (status == NULL)
        return false;
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++)
        if (strcmp(status, tokens[i]) == 0)
            return true;
    return false;
}

/* Forces the principal cache to look at the change log now (rate-limited: an attacker sending
 * unknown names must not turn every request into a database query). Invalidates every record
 * pointer obtained earlier in this request. */
static bool
refresh_cache(struct kdc_worker *w)
{
    int64_t now = ck_monotonic_ms();

    if (now - w->last_refresh_ms < KDC_REFRESH_MIN_MS)
        return false;
    w->last_refresh_ms = now;
    ck_store_cache_refresh(w->store);
    return true;
}

/* Clears the outcome of a processed request so it can be processed again. */
static void
request_reset(struct kdc_request *r)
{
    struct kdc_worker *w = r->w;
    enum kdc_transport t = r->transport;
    int64_t now = r->now;
    int32_t usec = r->now_usec;
    const uint8_t *der = r->req_der;
    size_t len = r->req_len;

    CK_KDC_REQ_free(r->req);
    OPENSSL_free(r->e_data);
    OPENSSL_free(r->reply);
    kdc_request_clear(r);
    r->w = w;
    r->transport = t;
    r->now = now;
    r->now_usec = usec;
    r->req_der = der;
    r->req_len = len;
}

/* oversized: the transport saw only a length prefix (over the limit or with the reserved bit
 * set, RFC 4120 §7.2.2); req is NULL and req_len is the declared length. */
static int
handle_request(struct kdc_worker *w, const uint8_t *req, size_t req_len, bool oversized,
               enum kdc_transport transport, const struct ck_peer *peer, uint8_t *reply,
               size_t reply_cap, size_t *reply_len)
{
    struct kdc_request *r;
    const uint8_t *out = NULL, *cached;
    uint8_t *err_der = NULL;
    size_t out_len = 0, err_len = 0, cached_len;
    int64_t now_ms = 0;
    uint64_t la_hash = 0;
    bool la_hashed = false;
    int mt, level = LOG_INFO;
    int64_t t0_ns = kdc_metrics_now(); /* alarms.h: request latency */

    *reply_len = 0;
    if (w == NULL || (req == NULL && req_len != 0 && !oversized))
        return ck_error_set(CK_ERR_INVAL, "kdc: bad arguments");
    /* The request state holds two name buffers: keep it off the (worker) stack, in the
     * worker's reusable block unless that is in use (never, today: no nested calls). */
    if (w->scratch != NULL && !w->scratch_busy) {
        r = w->scratch;
        kdc_request_clear(r);
        w->scratch_busy = true;
    } else if ((r = calloc(1, sizeof(*r))) == NULL) {
        return ck_error_set(CK_ERR_NOMEM, "kdc request");
    }
    r->w = w;
    r->transport = transport;
    r->req_der = oversized ? NULL : req;
    r->req_len = oversized ? 0 : req_len;
    r->kind = "KDC_REQ";
    if (w->clock != NULL)
        w->clock(w->clock_ctx, &r->now, &r->now_usec);
    else
        ck_now(&r->now, &r->now_usec);
    kdc_fleet_begin(w);

    if (transport == KDC_TRANSPORT_UDP && w->lookaside != NULL && !oversized) {
        now_ms = ck_monotonic_ms();
        la_hash = kdc_lookaside_hash(w->lookaside, req, req_len);
        la_hashed = true;
        if (kdc_lookaside_find_h(w->lookaside, la_hash, req, req_len, now_ms, &cached,
                                 &cached_len)) {
            if (cached_len <= reply_cap) {
                memcpy(reply, cached, cached_len);
                *reply_len = cached_len;
            }
            r->status = "LOOKASIDE";
            snprintf(r->detail, sizeof(r->detail), "retransmitted request answered from cache");
            level = LOG_DEBUG;
            goto log;
        }
    }

    mt = req_len > 0 && !oversized ? ck_asn1_msg_type(req, req_len) : CK_ERR_DECODE;
    if (mt == CK_KRB_AS_REQ)
        r->kind = "AS_REQ";
    else if (mt == CK_KRB_TGS_REQ)
        r->kind = "TGS_REQ";
    if (oversized || req_len > w->max_request) {
        kdc_fail(r, CK_KRB_ERR_FIELD_TOOLONG, "REQUEST_TOO_BIG", "%zu bytes", req_len);
        r->silent = transport == KDC_TRANSPORT_UDP;
    } else if ((mt == CK_KRB_AS_REQ || mt == CK_KRB_TGS_REQ) && kdc_fleet_refuse(r)) {
        /* Database gone for longer than db_max_staleness: r holds the KRB-ERROR. */
    } else if (mt == CK_KRB_AS_REQ || mt == CK_KRB_TGS_REQ) {
        void (*process)(struct kdc_request *, const uint8_t *, size_t) =
            mt == CK_KRB_AS_REQ ? kdc_process_as : kdc_process_tgs;

        process(r, req, req_len);
        if (r->reply == NULL && stale_refusal(r->status) && refresh_cache(w)) {
            request_reset(r);
            process(r, req, req_len);
        }
        if (r->auth_event != KDC_AUTH_NONE)
            kdc_lockout_event(w, r->auth_client, r->auth_event == KDC_AUTH_OK, r->now);
    } else {
        kdc_fail(r, CK_KRB_AP_ERR_MSG_TYPE, "UNKNOWN_MSG_TYPE",
                 mt < 0 ? "not a Kerberos message" : "message type %d", mt);
        r->silent = transport == KDC_TRANSPORT_UDP;
    }

    if (r->reply != NULL) {
        out = r->reply;
        out_len = r->reply_len;
    } else if (!r->silent) {
        if (r->error_code == 0)
            kdc_fail(r, CK_KRB_ERR_GENERIC, r->status ? r->status : "INTERNAL_ERROR", NULL);
        if (encode_error(r, r->error_code, r->e_text ? r->e_text : r->status, r->e_data,
                         r->e_data_len, &err_der, &err_len) == 0) {
            out = err_der;
            out_len = err_len;
        } else {
            snprintf(r->detail, sizeof(r->detail), "cannot encode KRB-ERROR: %s",
                     ck_error_context());
        }
    }

    if (out != NULL && transport == KDC_TRANSPORT_UDP && out_len > w->max_dgram_reply) {
        ck_asn1_free_der(err_der, err_len);
        err_der = NULL;
        r->status = "RESPONSE_TOO_BIG";
        snprintf(r->detail, sizeof(r->detail), "%zu-byte reply, max %zu over UDP", out_len,
                 w->max_dgram_reply);
        r->error_code = CK_KRB_ERR_RESPONSE_TOO_BIG;
        out = NULL;
        if (encode_error(r, CK_KRB_ERR_RESPONSE_TOO_BIG, NULL, NULL, 0, &err_der, &err_len) == 0) {
            out = err_der;
            out_len = err_len;
        }
    }
    if (out != NULL && out_len > reply_cap) {
        ck_asn1_free_der(err_der, err_len);
        err_der = NULL;
        r->status = "REPLY_TOO_BIG";
        snprintf(r->detail, sizeof(r->detail), "%zu-byte reply, buffer %zu", out_len, reply_cap);
        r->error_code = CK_KRB_ERR_GENERIC;
        out = NULL;
        if (encode_error(r, CK_KRB_ERR_GENERIC, "REPLY_TOO_BIG", NULL, 0, &err_der, &err_len) ==
                0 &&
            err_len <= reply_cap) {
            out = err_der;
            out_len = err_len;
        }
    }
    if (out != NULL) {
        memcpy(reply, out, out_len);
        *reply_len = out_len;
        if (transport == KDC_TRANSPORT_UDP && w->lookaside != NULL && la_hashed)
            kdc_lookaside_store_h(w->lookaside, la_hash, req, req_len, out, out_len, now_ms);
        else if (transport == KDC_TRANSPORT_UDP && w->lookaside != NULL)
            kdc_lookaside_store(w->lookaside, req, req_len, out, out_len, now_ms);
    }
    if (r->reply != NULL && out != r->reply) {
        /* The reply was replaced by an error: log the error, not ISSUE. */
        ck_asn1_free_der(r->reply, r->reply_len);
        r->reply = NULL;
    }
log:
    level = kdc_log_level_for(r, level); /* alarms.h: security refusals at warning */
    log_request(r, peer, level);
    kdc_metrics_request(w, r, t0_ns); /* alarms.h: metrics and alarm detectors */
    kdc_alarm_request(w, r, peer);
    /* Wire messages (the reply, a KRB-ERROR) are public: no need to wipe them. */
    OPENSSL_free(err_der);
    OPENSSL_free(r->reply);
    OPENSSL_free(r->e_data);
    CK_KDC_REQ_free(r->req);
    if (r == w->scratch)
        w->scratch_busy = false;
    else
        free(r);
    return 0;
}

int
kdc_handle_request(struct kdc_worker *w, const uint8_t *req, size_t req_len,
                   enum kdc_transport transport, const struct ck_peer *peer, uint8_t *reply,
                   size_t reply_cap, size_t *reply_len)
{
    return handle_request(w, req, req_len, false, transport, peer, reply, reply_cap, reply_len);
}

int
kdc_handle_oversized(struct kdc_worker *w, size_t declared_len, const struct ck_peer *peer,
                     uint8_t *reply, size_t reply_cap, size_t *reply_len)
{
    return handle_request(w, NULL, declared_len, true, KDC_TRANSPORT_TCP, peer, reply, reply_cap,
                          reply_len);
}
