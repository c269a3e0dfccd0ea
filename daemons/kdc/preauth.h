/* Pre-authentication in the AS exchange: a table of mechanisms, in the manner of MIT's kdcpreauth
 * interface (RFC 4120 §5.2.7, RFC 6113 §2). This header is the whole contract between the AS
 * code (as.c), the dispatcher (preauth.c) and a mechanism (pa_enc_ts.c, later PKINIT): a
 * mechanism needs nothing from as.c's internals.
 *
 * A mechanism is a `struct kdc_pa_mech` (a constant table entry) plus, per worker thread, the
 * context its `init` made. For each AS-REQ the KDC:
 *
 *   1. decodes the request, looks up client and server, runs the policy checks, and picks the
 *      client's long-term reply key: its current key for the first requested enctype that the
 *      realm permits (`supported_enctypes`). That key may be absent (a certificate-only
 *      principal, or no common enctype): then only mechanisms flagged KDC_PA_KEYLESS take part,
 *      and if no enabled mechanism has that flag (or the request names no enctype the realm
 *      permits at all) the request fails with KDC_ERR_ETYPE_NOSUPP before any
 *      pre-authentication.
 *   2. walks the request's padata in order. An entry whose padata-type belongs to an enabled
 *      mechanism (its pa_type or alt_pa_type) is given to that mechanism's `verify` (once per
 *      mechanism: a repeated type, or its other type, is ignored). The first mechanism that accepts wins; a refusal is remembered and the walk
 *      goes on, so one good method is enough. Unknown padata types are ignored (MIT clients send
 *      PA-REQ-ENC-PA-REP, PA-FX-COOKIE, ... that we do not act on).
 *   3. no mechanism accepted:
 *        - if one refused, the first refusal is the answer (its error code, log token and
 *          e-data; for KDC_ERR_PREAUTH_FAILED and KDC_ERR_PREAUTH_EXPIRED without e-data of
 *          its own the KDC adds the list of offers, see 5);
 *        - else, if the client requires pre-authentication (REQUIRES_PREAUTH or REQUIRES_HW_AUTH)
 *          or has no long-term reply key, KDC_ERR_PREAUTH_REQUIRED with the list of offers;
 *        - else the ticket is issued without pre-authentication (the client's long-term key
 *          protects the reply; the ticket lacks the PRE-AUTHENT flag).
 *   4. a mechanism accepted: the ticket gets PRE-AUTHENT (and the detail its verify left in
 *      err->detail, if any, goes on the ISSUE log line), then, in this order,
 *        - its `reply_key` may replace the reply key (PKINIT: from the DH exchange through the
 *          RFC 8636 KDF, or a random key it encrypts to the client's certificate);
 *        - the KDC puts PA-ETYPE-INFO2 first in the AS-REP padata when the reply key is still
 *          the long-term key (a client must not re-derive a replaced key from a password);
 *        - its `reply_padata` appends its padata to the AS-REP (e.g. PA-PK-AS-REP).
 *      reply_key runs first, so a mechanism whose key depends on its own reply padata (the
 *      RFC 8636 KDF covers the DER of the PA-PK-AS-REP) builds that padata in reply_key, keeps
 *      the DER in its per-request state, and appends the same bytes in reply_padata.
 *   5. offers (`edata`): METHOD-DATA in the e-data of KDC_ERR_PREAUTH_REQUIRED and (by default)
 *      KDC_ERR_PREAUTH_FAILED: PA-ETYPE-INFO2 for the long-term reply key first (MIT kinit
 *      expects it first), then each enabled mechanism's entries in table order. Mechanisms
 *      without KDC_PA_KEYLESS offer nothing for a client with no long-term reply key.
 *   6. at the end of the request, success or not, every mechanism that made per-request state
 *      gets `cleanup` exactly once.
 *
 * A refusal logged as PREAUTH_FAILED (like CLIENT_NOT_FOUND and the other tokens kdc.c's
 * stale_refusal() lists) may come from a cached client record that another process has just
 * changed: the KDC then re-reads the database and processes the request once more, so `verify`
 * can run twice for one request (with a cleanup in between). Use other status tokens for
 * refusals a database change cannot cure (an untrusted certificate chain).
 *
 * Threads: everything runs on one worker thread; a mechanism context belongs to one worker
 * (init runs once per worker), so it needs no locking unless it shares data across workers.
 */
#ifndef CABLEKEY_KDC_PREAUTH_H
#define CABLEKEY_KDC_PREAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/crypto.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/store.h"
#include "kdc.h"

#define KDC_PA_MAX 8            /* enabled mechanisms per worker */
#define KDC_PA_DISABLED 1       /* init's "not configured here" answer */
#define KDC_PA_REFUSED 1        /* verify's usual refusal (after kdc_pa_fail) */

/* Mechanism flags. */
/* The mechanism can authenticate a client that has no long-term key for the requested enctypes
 * (certificate-only principals). It is then offered and verified, and on success its reply_key
 * MUST replace the reply key (the KDC refuses with KDC_ERR_ETYPE_NOSUPP otherwise). */
#define KDC_PA_KEYLESS 0x1u
/* The mechanism's edata depends only on its context (the configuration), never on the request,
 * the client or the time: the KDC may encode the whole list of offers once per client key and
 * send the same bytes again. Without this flag (e.g. a freshness token in the offer), edata runs
 * for every PREAUTH_REQUIRED. */
#define KDC_PA_EDATA_CONSTANT 0x2u

/* What a mechanism sees of one AS-REQ. Every pointer is valid for the whole request and owned by
 * the KDC: read-only for the mechanism. */
struct kdc_pa_call {
    const CK_KDC_REQ *req;              /* the decoded AS-REQ (padata, req-body) */
    const uint8_t *req_der;             /* the AS-REQ exactly as received, with its */
    size_t req_len;                     /* [APPLICATION 10] tag (RFC 8636 KDF input) */
    const char *cname;                  /* client "name@REALM", as looked up (not escaped) */
    const ck_db_principal *client;      /* the client's record (n_keys may be 0) */
    const ck_db_principal *server;      /* the requested server's record */
    const ck_db_key *client_key;        /* long-term reply key (see 1. above), or NULL */
    const int32_t *etypes;              /* the request's enctypes, client preference order */
    size_t n_etypes;
    int32_t reply_etype;                /* first requested enctype the realm permits: the */
                                        /* enctype a replacement reply key must have */
    const int32_t *permitted;           /* the realm's permitted enctypes (supported_enctypes) */
    size_t n_permitted;
    const char *realm;                  /* our realm */
    int64_t now;                        /* the KDC's clock for this request (kdc_config.clock) */
    int32_t now_usec;
    int64_t clockskew;                  /* seconds */
    enum kdc_transport transport;
    ck_store *store;                    /* this worker's database connection (device table...) */
};

/* A refusal. Fill it with kdc_pa_fail() (and kdc_pa_set_edata() for typed e-data). */
struct kdc_pa_error {
    int32_t code;                       /* KRB-ERROR code; 0 = not set */
    const char *status;                 /* log token, a static string ("PREAUTH_FAILED", ...) */
    char detail[256];                   /* log detail (never secrets); not sent to the client */
    uint8_t *e_data;                    /* OPENSSL_malloc'd KRB-ERROR e-data (e.g. TYPED-DATA */
    size_t e_data_len;                  /* with TD-* entries), or NULL; the KDC frees it */
};

/* The per-worker environment a mechanism's init receives. Valid during init only: a mechanism
 * copies what it keeps (file names, limits) into its context. */
struct kdc_pa_env {
    const struct kdc_config *cfg;       /* the whole KDC configuration */
    const char *realm;                  /* our realm (from the database) */
    ck_store *store;                    /* the worker's database connection */
};

struct kdc_pa_mech {
    int32_t pa_type;                    /* CK_PA_*: the padata-type it verifies */
    int32_t alt_pa_type;                /* a second padata-type it verifies (a pre-RFC number
                                         * of the same method: PKINIT's 14), 0 = none; never
                                         * offered */
    const char *name;                   /* for logs ("encrypted-timestamp", "pkinit") */
    unsigned flags;                     /* KDC_PA_* */

    /* Per worker, when the worker is made. Returns 0 (enabled; *ctx is passed to every hook and
     * to fini), KDC_PA_DISABLED (this configuration does not enable it: no fini), or a negative
     * CK_ERR_* with ck_error_set() context (the worker, hence the daemon start, fails). NULL:
     * always enabled, ctx NULL. */
    int (*init)(const struct kdc_pa_env *env, void **ctx);
    /* Frees the context (wiping secrets such as the KDC's private key). May be NULL. */
    void (*fini)(void *ctx);

    /* Appends this mechanism's offer to *md (ck_asn1_padata_add; *md may be NULL and is then
     * allocated): usually one entry with an empty value, PKINIT also PA-AS-FRESHNESS. Returns 0
     * or a negative CK_ERR_* (the offer list is then sent without this mechanism's entries).
     * May be NULL (offers nothing). */
    int (*edata)(void *ctx, const struct kdc_pa_call *call, CK_METHOD_DATA **md);

    /* Verifies the padata entry pa (pa->padata_type == pa_type or alt_pa_type). Returns 0 to
     * accept the client as call->client; err->detail may then hold text for the ISSUE log line
     * (err->code stays 0). Any other return refuses: say why with kdc_pa_fail(err, ...) (a
     * refusal without it becomes KDC_ERR_PREAUTH_FAILED, or KRB_ERR_GENERIC for a negative
     * CK_ERR_* return). *state starts NULL; whatever the mechanism stores there (on success or failure)
     * is passed to the reply hooks and released by cleanup. Required. */
    int (*verify)(void *ctx, const struct kdc_pa_call *call, const CK_PA_DATA *pa, void **state,
                  struct kdc_pa_error *err);

    /* After a successful verify: replaces the reply key by filling *key (passed in cleared,
     * ck_key_clear) with a key of enctype call->reply_etype, or leaves key->length == 0 to keep
     * the long-term key. The KDC copies and wipes *key. Returns 0 or a negative CK_ERR_*
     * (KRB_ERR_GENERIC to the client: refusals belong in verify). May be NULL. */
    int (*reply_key)(void *ctx, const struct kdc_pa_call *call, void *state, ck_key *key);

    /* After reply_key: appends this mechanism's padata to the AS-REP's padata (*padata may be
     * NULL and is then allocated; PA-ETYPE-INFO2 may already be there). Returns 0 or a negative
     * CK_ERR_*. May be NULL. */
    int (*reply_padata)(void *ctx, const struct kdc_pa_call *call, void *state,
                        CK_METHOD_DATA **padata);

    /* Frees the per-request state, wiping every secret in it (DH private values, reply keys).
     * Called once per request for a non-NULL state. Required if verify ever sets *state. */
    void (*cleanup)(void *ctx, void *state);

    /* Provisioning (issue 10). After a successful verify: appends the authorization data the
     * mechanism requires in the ticket (PKINIT: the restricted-calls element of a device that
     * logged in with its manufacturer certificate) to *ad (may be NULL, then allocated).
     * Returns 0 or a negative CK_ERR_* (the request then fails: a restriction that cannot be
     * written must not become a ticket without it). May be NULL. */
    int (*authz)(void *ctx, const struct kdc_pa_call *call, void *state,
                 CK_AUTHORIZATION_DATA **ad);
    /* The client cname is not in the database: true if this mechanism's verify may create it
     * (PKINIT admitting an unprovisioned device). The AS exchange then goes on with a keyless
     * placeholder record that requires pre-authentication, and re-reads the client after the
     * mechanism accepted. May be NULL (never). */
    bool (*may_create_client)(void *ctx, const char *cname);
};

/* The built-in mechanisms, in offer order. */
extern const struct kdc_pa_mech kdc_pa_enc_timestamp;   /* pa_enc_ts.c */
/* kdc_pa_pkinit: pa_pkinit.c (pkinit_kdc.h) */

/* Fills err (the first refusal wins within one mechanism call: later calls overwrite). fmt may be
 * NULL. status must be a static string. */
void kdc_pa_fail(struct kdc_pa_error *err, int32_t code, const char *status, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));
/* Hands typed e-data (OPENSSL_malloc'd DER) to err; frees any earlier e-data. */
void kdc_pa_set_edata(struct kdc_pa_error *err, uint8_t *der, size_t len);
/* True if the realm permits etype (the call's permitted list). */
bool kdc_pa_enctype_permitted(const struct kdc_pa_call *call, int32_t etype);

/* ---- used by the KDC core (kdc.c, as.c) ------------------------------------------------- */

struct kdc_worker;

/* Enables the built-in mechanisms the configuration asks for (init of each). */
int kdc_preauth_init(struct kdc_worker *w, const struct kdc_config *cfg);
/* Runs every enabled mechanism's fini. */
void kdc_preauth_fini(struct kdc_worker *w);
/* Enables one more mechanism on this worker after the built-ins (tests; a mechanism that is not
 * in the built-in table), with cfg as its init's env->cfg. Runs its init; KDC_PA_DISABLED leaves
 * it out. CK_ERR_LIMIT beyond KDC_PA_MAX, CK_ERR_INVAL if its pa_type is already taken. */
int kdc_preauth_add(struct kdc_worker *w, const struct kdc_config *cfg,
                    const struct kdc_pa_mech *mech);
/* True if some enabled mechanism has KDC_PA_KEYLESS. */
bool kdc_preauth_keyless(const struct kdc_worker *w);

/* One request's pre-authentication: which mechanism accepted, states, first refusal. */
struct kdc_pa_run {
    void *state[KDC_PA_MAX];
    int accepted;                       /* index of the accepting mechanism, -1 if none */
    struct kdc_pa_error err;            /* first refusal (code 0: none) */
    char detail[256];                   /* the accepting mechanism's log text ("" if none) */
};

/* Step 2: returns 1 (accepted: run->accepted), 0 (no padata for any usable mechanism) or -1
 * (refused: run->err). */
int kdc_preauth_verify(struct kdc_worker *w, const struct kdc_pa_call *call,
                       struct kdc_pa_run *run);
/* Step 5: the encoded METHOD-DATA of offers (OPENSSL_malloc'd). */
int kdc_preauth_offers(struct kdc_worker *w, const struct kdc_pa_call *call, uint8_t **der,
                       size_t *len);
/* Step 4 for the accepted mechanism: *key receives a replacement reply key (length 0: none;
 * its enctype is checked against the request and the realm), then the AS-REP padata is
 * completed in *padata (PA-ETYPE-INFO2 for long_term when the key was not replaced, then the
 * mechanism's). */
int kdc_preauth_reply(struct kdc_worker *w, const struct kdc_pa_call *call,
                      struct kdc_pa_run *run, const ck_db_key *long_term, ck_key *key,
                      CK_METHOD_DATA **padata);
/* The accepted mechanism's authorization data for the ticket (*ad stays NULL when none). */
int kdc_preauth_authz(struct kdc_worker *w, const struct kdc_pa_call *call,
                      struct kdc_pa_run *run, CK_AUTHORIZATION_DATA **ad);
/* True if some enabled mechanism may create the absent client cname (may_create_client). */
bool kdc_preauth_may_create_client(const struct kdc_worker *w, const char *cname);
/* Step 6: cleanup of every state, frees the refusal's e-data. Safe on a zeroed run. */
void kdc_preauth_run_done(struct kdc_worker *w, struct kdc_pa_run *run);
/* Appends PA-ETYPE-INFO2 for key k (one entry) to *md; the worker keeps the encoding of the
 * last (enctype, salt) pair (and of the last list of offers, see KDC_PA_EDATA_CONSTANT). */
int kdc_add_etype_info2(struct kdc_worker *w, CK_METHOD_DATA **md, const ck_db_key *k);

#endif
