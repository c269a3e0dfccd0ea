/* Internals of the KDC protocol core: per-worker state, per-request state, and the helpers shared
 * by kdc.c (dispatch, errors, logging), as.c, tgs.c and lookaside.c. */
#ifndef CABLEKEY_KDC_INT_H
#define CABLEKEY_KDC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/crypto.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/log.h"
#include "cablekey/store.h"
#include "kdc.h"
#include "preauth.h"
#include "reply.h"

#define KDC_NAME_MAX 2048            /* unparsed principal names in logs and lookups */
#define KDC_LOOKASIDE_MAX_ENTRIES 8192
#define KDC_LOOKASIDE_MAX_BYTES (16u << 20)
#define KDC_LOOKASIDE_LIFETIME_MS (120 * 1000)
/* A refusal based on cached principal data is re-checked against the database (see
 * kdc_handle_request), at most once per this many milliseconds per worker. */
#define KDC_REFRESH_MIN_MS 10

/* UDP retransmit cache: same request bytes -> same reply bytes (lookaside.c). */
struct kdc_lookaside;
int kdc_lookaside_new(size_t max_entries, size_t max_bytes, int64_t lifetime_ms,
                      struct kdc_lookaside **out);
void kdc_lookaside_free(struct kdc_lookaside *la);
/* Returns true and points *reply at the cached reply (valid until the next call on la) when the
 * same request was answered within the lifetime. */
bool kdc_lookaside_find(struct kdc_lookaside *la, const uint8_t *req, size_t req_len,
                        int64_t now_ms, const uint8_t **reply, size_t *reply_len);
/* Remembers the reply (copies both buffers); silently does nothing when over the limits. */
void kdc_lookaside_store(struct kdc_lookaside *la, const uint8_t *req, size_t req_len,
                         const uint8_t *reply, size_t reply_len, int64_t now_ms);
/* The same, with the request's hash computed once by the caller (kdc_lookaside_hash) and
 * shared by the find and the store of one request. */
uint64_t kdc_lookaside_hash(const struct kdc_lookaside *la, const uint8_t *req, size_t req_len);
bool kdc_lookaside_find_h(struct kdc_lookaside *la, uint64_t h, const uint8_t *req,
                          size_t req_len, int64_t now_ms, const uint8_t **reply,
                          size_t *reply_len);
void kdc_lookaside_store_h(struct kdc_lookaside *la, uint64_t h, const uint8_t *req,
                           size_t req_len, const uint8_t *reply, size_t reply_len,
                           int64_t now_ms);
size_t kdc_lookaside_count(const struct kdc_lookaside *la);

struct kdc_worker {
    int64_t max_life, max_renew, clockskew; /* effective realm-wide caps */
    size_t max_dgram_reply, max_request;
    int32_t enctypes[KDC_MAX_ENCTYPES];
    size_t n_enctypes;
    ck_store *store;
    const ck_realm_info *realm;
    char realm_name[256];
    char tgs_name[600];                  /* "krbtgt/REALM@REALM" */
    struct kdc_lookaside *lookaside;     /* NULL when disabled */
    void (*clock)(void *ctx, int64_t *sec, int32_t *usec); /* NULL: ck_now */
    void *clock_ctx;
    size_t cache_max;                    /* principal cache settings (restored after a */
    int64_t cache_check_ms;              /* forced change check) */
    int64_t last_refresh_ms;             /* last forced change check (monotonic) */
    struct kdc_request *scratch;         /* request state reused by every request of this
                                          * worker: ~4.5 KB, whose calloc/free per request
                                          * made glibc consolidate its fast bins each time */
    bool scratch_busy;
    /* The last PA-ETYPE-INFO2 encoded (preauth.c): a function of (enctype, salt) only, and the
     * same for every AS exchange of one client key. */
    uint8_t *ei2_der;                    /* OPENSSL_malloc'd, NULL when empty */
    size_t ei2_len;
    int32_t ei2_etype;
    size_t ei2_salt_len;
    uint8_t ei2_salt[CK_STORE_MAX_SALT];
    /* The last list of offers (METHOD-DATA) encoded, when every mechanism's part of it is
     * constant: a function of the client key's (enctype, salt) then, offers_etype 0 for a
     * client with none. */
    uint8_t *offers_der;                 /* OPENSSL_malloc'd, NULL when empty */
    size_t offers_len;
    int32_t offers_etype;
    size_t offers_salt_len;
    uint8_t offers_salt[CK_STORE_MAX_SALT];
    /* The reply builder reused by every AS/TGS exchange of this worker (reply.c), and the
     * KRB-ERROR reused by every error reply (kdc.c). */
    struct kdc_reply *reply;
    bool reply_busy;
    struct kdc_errmsg *errmsg;
    /* Request log lines waiting to be written (NULL: written at once), see log_flush_ms. */
    struct ck_log_batch *logb;
    int64_t log_flush_ms;
    int64_t log_first_ms;                /* monotonic time of the oldest waiting line */
    /* Enabled pre-authentication mechanisms, in offer order (preauth.c). */
    struct {
        const struct kdc_pa_mech *mech;
        void *ctx;
    } pa[KDC_PA_MAX];
    size_t n_pa;
    /* Failed pre-authentication counting (lockout.c); NULL when disabled. */
    struct kdc_lockout *lockout;
    /* From kdc_config (NULL: none); not owned. */
    struct ck_alarm_mgr *alarms;
    struct ck_metrics *metrics;
    /* KDC fleet (fleet.c): this worker's view of the database. */
    bool fleet_down;                     /* counted in the process's unreachable workers */
    bool fleet_refusing;                 /* counted in the process's refusing workers */
    char fleet_db[256];                  /* the database location, for logs and the alarm */
};

/* One request in flight. The as/tgs handlers fill either `reply` (an encoded AS-REP/TGS-REP) or
 * the error fields; kdc.c turns errors into KRB-ERRORs and writes the log line. */
struct kdc_request {
    struct kdc_worker *w;
    enum kdc_transport transport;
    int64_t now;
    int32_t now_usec;
    CK_KDC_REQ *req;                 /* decoded request (NULL if undecodable) */
    const uint8_t *req_der;          /* the request's bytes as received (NULL: oversized) */
    size_t req_len;

    /* for the log line */
    const char *kind;                /* "AS_REQ", "TGS_REQ" */
    const char *status;              /* "ISSUE" or a failure token */
    size_t n_etypes;                 /* entries of etypes[] below */
    int64_t authtime;
    int32_t rep_etype, tkt_etype, ses_etype;

    /* outcome */
    uint8_t *reply;                  /* OPENSSL_malloc'd DER of the reply */
    size_t reply_len;
    int32_t error_code;              /* Kerberos error code when reply == NULL */
    const char *e_text;              /* NULL: the standard message for error_code */
    uint8_t *e_data;                 /* OPENSSL_malloc'd METHOD-DATA or NULL */
    size_t e_data_len;
    bool error_with_client;          /* put the request's cname/crealm into the KRB-ERROR */
    /* An authentication event for lockout counting, applied once the request's final outcome
     * is known (a stale-cache retry processes it twice). */
    const ck_db_principal *auth_client;
    enum { KDC_AUTH_NONE, KDC_AUTH_FAILED, KDC_AUTH_OK } auth_event;
    bool silent;                     /* send nothing (UDP garbage) */

    /* Buffers, last: request_clear() zeroes everything above and only the first byte of
     * each string here (clearing ~4.5 KB per request showed in the cache-cold profile). */
    char cname[KDC_NAME_MAX];        /* client name with realm ("" if unknown) */
    char sname[KDC_NAME_MAX];        /* server name with realm ("" if unknown) */
    char detail[256];                /* extra text for the log (not secret) */
    int32_t etypes[CK_ASN1_MAX_ETYPES];
};

/* Empties a request state for the next request (see the buffers' comment). */
static inline void
kdc_request_clear(struct kdc_request *r)
{
    memset(r, 0, offsetof(struct kdc_request, cname));
    r->cname[0] = r->sname[0] = r->detail[0] = '\0';
}

/* Sets the outcome to a Kerberos error with a log status token (also the KRB-ERROR e-text unless
 * r->e_text is set). detail (printf format, may be NULL) goes to the log line only. */
void kdc_fail(struct kdc_request *r, int32_t code, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* AS-REQ and TGS-REQ processing (the request is decoded by these functions). */
void kdc_process_as(struct kdc_request *r, const uint8_t *der, size_t len);
void kdc_process_tgs(struct kdc_request *r, const uint8_t *der, size_t len);

/* Lockout (lockout.c). */
struct kdc_lockout;
int kdc_lockout_new(size_t max_entries, int64_t flush_ms, bool last_success,
                    struct kdc_lockout **out);
void kdc_lockout_free(struct kdc_lockout *lo);
/* True if p is locked out in this worker's view. */
bool kdc_lockout_locked(struct kdc_worker *w, const ck_db_principal *p, int64_t now);
/* Counts a failed (success false) or successful pre-authentication of p, in memory. */
void kdc_lockout_event(struct kdc_worker *w, const ck_db_principal *p, bool success,
                       int64_t now);
/* Writes the events now; they are kept for a retry if the write fails. */
int kdc_lockout_flush(struct kdc_worker *w);
/* The idle step: writes when due; returns the ms until the next write is due (-1: none). */
int kdc_lockout_idle(struct kdc_worker *w);
/* Principals with unwritten events (tests). */
size_t kdc_lockout_pending(const struct kdc_worker *w);

/* KDC fleet (fleet.c): the database's reachability as the worker's caches see it. */
void kdc_fleet_init(struct kdc_worker *w, const struct kdc_config *cfg);
void kdc_fleet_fini(struct kdc_worker *w);
/* Replaces ck_store_cache_begin at the start of a request: checks for changes (pushed notices
 * at once) and notes the database going away or coming back (log line, alarm db-unreachable). */
void kdc_fleet_begin(struct kdc_worker *w);
/* True when the request must be refused because the database has been unreachable for longer
 * than db_max_staleness: r then holds KDC_ERR_SVC_UNAVAILABLE with an e-text. */
bool kdc_fleet_refuse(struct kdc_request *r);
/* The idle step: change notices, heartbeat, reconnection; ms until due again. */
int kdc_fleet_idle(struct kdc_worker *w);
/* For the db staleness gauge (any thread): ms since the process last reached its database while
 * it is unreachable, 0 while it is reachable. */
int64_t kdc_fleet_staleness_ms(void);

/* Shared helpers (kdc.c). */
bool kdc_enctype_permitted(const struct kdc_worker *w, int32_t etype);
/* First key of p at its current kvno whose enctype is permitted, or NULL. */
const ck_db_key *kdc_first_key(const struct kdc_worker *w, const ck_db_principal *p);
/* Session key enctype: first requested enctype that is permitted and the server has a key for. */
int32_t kdc_session_etype(const struct kdc_worker *w, const struct kdc_request *r,
                          const ck_db_principal *server);
/* Lifetime caps (0 in the database = realm default). */
int64_t kdc_life_cap(const struct kdc_worker *w, const ck_db_principal *p);
int64_t kdc_renew_cap(const struct kdc_worker *w, const ck_db_principal *p);
/* Unparses name@realm into buf; false if it does not fit or is invalid. */
bool kdc_unparse(const CK_PRINCIPAL_NAME *name, const ASN1_GENERALSTRING *realm, char *buf,
                 size_t size);
struct kdc_errmsg;
void kdc_errmsg_free(struct kdc_errmsg *em);
/* The log line's escaping: bytes outside printable ASCII become \xHH (see kdc.c). Returns the
 * length written. */
size_t kdc_log_escape(const char *in, char *out, size_t size);
static inline int64_t
kdc_min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

#endif
