/* The key version service and its client, `cablekey keytab-agent`: how an application server
 * follows the staged rotation of its service key (rotation.h) without an operator copying
 * keytabs around.
 *
 * Every cablekey-kdc serves the protocol (daemons/kdc/keyagent.c, keyagent_listen, TCP port
 * 7464 by default). The agent on an application server:
 *   1. gets a ticket for keyagent/REALM@REALM in an AS exchange with its OWN current service
 *      key from its keytab (client = the service principal): only a holder of the current key
 *      gets one, and a disabled principal gets none;
 *   2. sends FETCH (send me the kvnos above N): the reply carries the keys of the current and
 *      the staged kvno, and the list of every kvno the KDC still holds;
 *   3. rewrites its keytab atomically (old kvnos kept until the KDC purged them), re-reads it;
 *   4. sends CONFIRM (host H holds kvno K): the rotation engine activates the staged kvno once
 *      every host of the policy confirmed it.
 *
 * Wire format (docs/PROTOCOL.md, "Key version service"); every field big-endian. Over TCP each
 * message carries Kerberos' 4-byte length prefix (RFC 4120 §7.2.2), as kpasswd over TCP does.
 *   request:  length (2, the whole message) | version 0xCB01 (2) | AP-REQ length (2, > 0) |
 *             AP-REQ (ticket for keyagent/REALM, authenticator with a subkey and a sequence
 *             number) | KRB-PRIV under the subkey (timestamp, the authenticator's sequence
 *             number, directional sender address 0) whose user data is a ck_keyagent_req
 *   reply:    length (2) | version 0xCB01 (2) | AP-REP length (2) | AP-REP | KRB-PRIV under the
 *             subkey (timestamp, the AP-REP's sequence number, directional address 1) whose
 *             user data is a ck_keyagent_rep; or AP-REP length 0 and a KRB-ERROR when the
 *             request could not be authenticated.
 *   request user data:  type (1: FETCH, 2: CONFIRM) | kvno (4) | host length (1) | host
 *   reply user data:    result (2) | text length (2) | text | current kvno (4) |
 *                       staged kvno (4, 0: none) | n held (1) | held kvnos (4 each) |
 *                       n keys (1) | keys: kvno (4) | enctype (4) | key length (2) | key
 * Decoders are bounded: every count and length has a maximum below, trailing bytes are an
 * error, and keys must be of a supported enctype with that enctype's key length. */
#ifndef CABLEKEY_KEYAGENT_H
#define CABLEKEY_KEYAGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/apenv.h"
#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/keytab.h"

#define CK_KEYAGENT_VERSION 0xCB01
#define CK_KEYAGENT_PORT 7464
#define CK_KEYAGENT_SERVICE "keyagent"   /* the service principal is keyagent/REALM@REALM */
#define CK_KEYAGENT_MAX_MSG 65535        /* the length field is 16 bits */
#define CK_KEYAGENT_MAX_KEYS 32          /* keys in one reply */
#define CK_KEYAGENT_MAX_HELD 64          /* kvnos listed in one reply */
#define CK_KEYAGENT_HOST_MAX 255         /* host name bytes (no NUL) */
#define CK_KEYAGENT_TEXT_MAX 512         /* result text bytes (no NUL) */
#define CK_KEYAGENT_TICKET_LIFE 600      /* seconds asked for the keyagent ticket */

enum ck_keyagent_type {
    CK_KEYAGENT_FETCH = 1,   /* send me the keys of the kvnos above kvno */
    CK_KEYAGENT_CONFIRM = 2, /* host holds kvno (written to its keytab and re-read) */
};

/* Result codes of a reply. */
enum ck_keyagent_result {
    CK_KEYAGENT_OK = 0,
    CK_KEYAGENT_MALFORMED = 1,   /* the request did not decode */
    CK_KEYAGENT_HARDERROR = 2,   /* the server failed (database): try another KDC later */
    CK_KEYAGENT_AUTHERROR = 3,   /* the KRB-PRIV did not verify */
    CK_KEYAGENT_DENIED = 4,      /* the principal may not have keys (disabled, expired, locked,
                                  * or a principal whose keys are never handed out) */
    CK_KEYAGENT_NOTFOUND = 5,    /* CONFIRM of a kvno the principal does not have */
    CK_KEYAGENT_UNAVAILABLE = 6, /* the service is not set up (keyagent/REALM missing) or the
                                  * store lacks key versioning */
};

/* A short English name of a result code. */
const char *ck_keyagent_result_name(int code);

typedef struct ck_keyagent_req {
    uint8_t type;                          /* enum ck_keyagent_type */
    uint32_t kvno;                         /* FETCH: highest kvno held; CONFIRM: kvno held */
    char host[CK_KEYAGENT_HOST_MAX + 1];   /* [A-Za-z0-9._-]; required for CONFIRM */
} ck_keyagent_req;

typedef struct ck_keyagent_key {
    uint32_t kvno;
    ck_key key;
} ck_keyagent_key;

typedef struct ck_keyagent_rep {
    uint16_t result;                       /* enum ck_keyagent_result */
    char text[CK_KEYAGENT_TEXT_MAX + 1];   /* printable ASCII (others replaced by '?') */
    uint32_t current_kvno;
    uint32_t staged_kvno;                  /* 0: none staged */
    size_t n_held;                         /* every kvno the KDC holds, newest first */
    uint32_t held[CK_KEYAGENT_MAX_HELD];
    size_t n_keys;
    ck_keyagent_key keys[CK_KEYAGENT_MAX_KEYS];
} ck_keyagent_rep;

/* A host name as the protocol carries it: 1..CK_KEYAGENT_HOST_MAX bytes of [A-Za-z0-9._-]. */
bool ck_keyagent_host_ok(const char *host);

/* Inner encodings. *out is malloc'd; the reply holds keys: free it with ck_free_secret. */
int ck_keyagent_req_encode(const ck_keyagent_req *req, uint8_t **out, size_t *out_len);
int ck_keyagent_req_decode(const uint8_t *data, size_t len, ck_keyagent_req *out);
int ck_keyagent_rep_encode(const ck_keyagent_rep *rep, uint8_t **out, size_t *out_len);
int ck_keyagent_rep_decode(const uint8_t *data, size_t len, ck_keyagent_rep *out);
/* Wipes the keys of a reply (and zeroes it). */
void ck_keyagent_rep_clear(ck_keyagent_rep *rep);

/* Framing of a request (the reply uses kpasswd.h's ck_kpasswd_rep_build/parse with version
 * CK_KEYAGENT_VERSION). The parser points into msg. CK_ERR_DECODE for a length field that
 * disagrees with len, an empty AP-REQ or KRB-PRIV; CK_ERR_UNSUPPORTED for another version
 * (*version is still set). */
typedef ck_apenv_frame ck_keyagent_frame; /* the AP-REQ envelope's frame (apenv.h) */
int ck_keyagent_frame_parse(const uint8_t *msg, size_t len, ck_keyagent_frame *out);

/* Creates keyagent/REALM@REALM (random keys, DISALLOW_TGT_BASED, 10-minute tickets) in the
 * store at db (`cablekey init`). CK_ERR_EXISTS if present. */
int ck_keyagent_service_create(const char *db, const char *stash);

/* ---- the client ------------------------------------------------------------------------- */

/* The AS exchange of step 1: a ticket for keyagent/REALM@REALM with principal's current key
 * from kt (principal: "name@REALM"). kdc: the KDC's transport.
 * Which kvno of the keytab is current is not written in it: once the agent has stored a staged
 * kvno, the newest one is not current until the KDC activates it. So the exchange is tried with
 * one kvno at a time: kvno_hint first (the current kvno a previous FETCH reported; 0: none),
 * then the keytab's kvnos newest first, at most CK_KEYAGENT_LOGIN_TRIES of them, going on only
 * when the KDC refused the key (PREAUTH_FAILED) or the reply did not decrypt. *used_kvno (may
 * be NULL) receives the kvno that worked. */
#define CK_KEYAGENT_LOGIN_TRIES 3
int ck_keyagent_login(const ck_kdc_transport *kdc, const char *principal, const ck_keytab *kt,
                      uint32_t kvno_hint, ck_creds **out, uint32_t *used_kvno);
/* One exchange with the key version service (svc: its transport, always TCP): sends req under
 * creds (from ck_keyagent_login), verifies the AP-REP and the reply's KRB-PRIV and decodes it
 * into rep (clear it with ck_keyagent_rep_clear). A KRB-ERROR reply is CK_ERR_KRB with the
 * code in ck_error_krb_code() and the server's e-text in the context. A reply with a result
 * other than OK returns 0: the caller reads rep->result. */
int ck_keyagent_exchange(const ck_kdc_transport *svc, const ck_creds *creds,
                         const ck_keyagent_req *req, ck_keyagent_rep *rep);

/* ---- the agent (lib/keyagent/agent.c; `cablekey keytab-agent`) ---------------------------- */

#define CK_KEYAGENT_MAX_KDCS 16
#define CK_KEYAGENT_DEFAULT_INTERVAL 60       /* seconds between rounds */
#define CK_KEYAGENT_BACKOFF_MIN_MS 1000
#define CK_KEYAGENT_BACKOFF_MAX_MS 300000

typedef struct ck_keyagent_cfg {
    const char *keytab;            /* the file the service reads */
    const char *principal;         /* "HTTP/cms.example@REALM" */
    const char *host;              /* this host's name in CONFIRM (policy hosts) */
    const char *const *kdcs;       /* "host[:port]" (port 88); tried in order */
    size_t n_kdcs;
    uint16_t service_port;         /* the key version service on each KDC host (0: 7464) */
    int timeout_ms;                /* per exchange (0: 3000) */
    uint32_t kvno_hint;            /* the current kvno the previous round saw (0: none) */
    /* Tests: replace the network (kdc_index: which KDC of the list is meant). */
    int (*send_as)(void *arg, int kdc_index, const uint8_t *req, size_t req_len,
                   uint8_t **reply, size_t *reply_len);
    int (*send_svc)(void *arg, int kdc_index, const uint8_t *req, size_t req_len,
                    uint8_t **reply, size_t *reply_len);
    void *send_arg;
} ck_keyagent_cfg;

typedef struct ck_keyagent_round {
    int kdc_index;                 /* which KDC answered (-1: none) */
    uint32_t had_kvno;             /* the keytab's highest kvno of the principal before */
    uint32_t current_kvno, staged_kvno; /* as the KDC said */
    size_t added, removed;         /* keytab entries written / dropped (purged on the KDC) */
    bool written;                  /* the keytab was rewritten */
    uint32_t confirmed;            /* kvno confirmed (0: no CONFIRM sent) */
} ck_keyagent_round;

/* One round: FETCH from the first KDC that answers, rewrite the keytab when something changed
 * (temporary file + fsync + rename; a new file is 0600, an existing one keeps its mode), re-read
 * it, and CONFIRM the staged kvno (or the current one after a change). CK_ERR_POLICY when a KDC
 * refused the principal (DENIED: the agent should stop asking); other errors after every KDC
 * was tried. Crash points for the kill -9 tests: CK_AGENT_CRASH=POINT:N (after-fetch,
 * after-write, before-confirm) SIGKILLs the process the N-th time POINT is reached. */
int ck_keyagent_round_run(const ck_keyagent_cfg *cfg, ck_keyagent_round *out);

/* Delay before retry `attempt` (0-based) after failed rounds: 1 s doubling up to max_ms. */
int64_t ck_keyagent_backoff_ms(int attempt, int64_t max_ms);

/* The crash-point hook (also used by the KDC side for its own points with another variable):
 * SIGKILLs the process when env names point and this is its N-th arrival. */
void ck_keyagent_crash_point(const char *env, const char *point);

#endif
