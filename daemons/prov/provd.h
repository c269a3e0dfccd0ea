/* cablekey-prov's own internals (P2: main.c, front.c, api.c, back.c, flows.c, ipc.c); the
 * contract with the other parts of the daemon is prov.h. */
#ifndef CABLEKEY_PROVD_H
#define CABLEKEY_PROVD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include <jansson.h>

#include "cablekey/admin.h"
#include "cablekey/util.h"
#include "prov.h"

/* ----------------------------------------------------------------------- ipc.c */

/* Front <-> back frames: a 4-byte big-endian length and that many bytes of JSON (lib/admin's
 * framing, as cablekey-admind). Requests {"op":..., "actor":..., ...}; replies
 * {"status":HTTP, "body":{...}} or {"status":4xx, "error":{"code","field","message"}}. */
#define PROV_IPC_MAX_REQUEST (512 * 1024)
#define PROV_IPC_MAX_REPLY (16 * 1024 * 1024)
int prov_ipc_call(int fd, const json_t *req, json_t **reply);
/* The back's side: the next request (CK_ERR_NOTFOUND at a clean end), and its answer. */
int prov_ipc_next(int fd, json_t **req);
int prov_ipc_answer(int fd, json_t *reply); /* steals reply */
/* The back's extra worker channels, handed to the front once at start ({"op":"channels"}):
 * n socket descriptors in one SCM_RIGHTS message after the JSON reply. */
int prov_ipc_send_fds(int fd, const int *fds, size_t n);
int prov_ipc_recv_fds(int fd, int *fds, size_t n);
/* {"status":s,"error":{"code","field"?,"message"}} (new reference). */
json_t *prov_error(int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* json_dumps as a malloc'd string (free()). */
char *prov_json_text(const json_t *v, size_t flags);
/* The status and error code an error of the store (CK_ERR_*) maps to. */
int prov_error_from_ck(int rc, const char **code);

/* ----------------------------------------------------------------------- api.c */

/* ACL letters of the API (lib/admin/acl.c syntax): i read, a customers, p provisioning
 * actions, r revoke/reinstate, c controller (report, lines). */
#define PROV_PERM_READ CK_ADMIN_PERM_INQUIRE
#define PROV_PERM_CUSTOMER CK_ADMIN_PERM_ADD
#define PROV_PERM_PROVISION CK_ADMIN_PERM_PROPAGATE
#define PROV_PERM_REVOKE CK_ADMIN_PERM_REVOKE
#define PROV_PERM_CONTROLLER CK_ADMIN_PERM_CHANGEPW

#define PROV_JSON_MAX_DEPTH 8        /* nesting of a request body (services included) */
#define PROV_MAX_SEGMENTS 6

enum prov_route_kind {
    PROV_R_NONE = 0,
    PROV_R_SESSION,          /* /api/v1/session: handled by the front */
    PROV_R_STATIC,           /* /, /console.js, /console.css */
    PROV_R_BACK,             /* a store operation */
};

/* A request, resolved from method and path (prov_route), then from its query and body
 * (prov_api_build): what the log line says and what the back process gets. */
struct prov_route {
    enum prov_route_kind kind;
    const char *op;          /* back operation ("device.get", "device.act", ...) */
    const char *action;      /* device.act: "provision", ...; customer.add/modify */
    unsigned perm;
    bool body;               /* takes a JSON body */
    bool idempotent;         /* honours Idempotency-Key */
    bool created;            /* 201 on success */
    char mac[CK_MAC_TEXT];   /* canonical, or "" */
    int64_t customer;        /* > 0 or 0 */
    const char *allow;       /* for 405 */
    const char *const *query;/* allowed query parameters */
};

/* Maps method + path; 0, or 404/405/400 (why says what). */
int prov_route(const char *method, const char *path, struct prov_route *rt, char *why,
               size_t why_size);

/* A lookup of query parameters: returns the value or NULL (the front's is libmicrohttpd's). */
typedef const char *(*prov_query_fn)(void *arg, const char *key);

/* Validates the query and the body of a routed request and builds the back message
 * {"op","actor","mac"?,"customer"?,"action"?,"req":{...},"idem"?,"hash"?}. Returns 0 (*msg new
 * reference) or an HTTP status with *err the error body (invalid_json / invalid_field naming
 * the field / too_large). idem_key may be NULL. */
int prov_api_build(const struct prov_route *rt, const char *actor, prov_query_fn q, void *qarg,
                   const char *body, size_t body_len, const char *idem_key, json_t **msg,
                   json_t **err);

/* Segment and webhook names: 1..max of A-Z a-z 0-9 . _ -; numbers: 1..max digits. */
bool prov_token_ok(const char *s, size_t max);
bool prov_digits_ok(const char *s, size_t max);
/* Parses a body: an object, at most PROV_JSON_MAX_DEPTH deep, no duplicate keys. */
int prov_json_parse(const char *text, size_t len, json_t **out, char *why, size_t why_size);
/* SHA-256 of action "\n" canonical JSON (sorted keys, compact) of body. */
int prov_request_hash(const char *action, const json_t *body, uint8_t out[32]);
/* The console login body {"principal","password"}: copies (password wiped by the caller). */
int prov_api_login_body(const char *text, size_t len, char **principal, char **password,
                        char *field, size_t field_size, char *why, size_t why_size);

/* ----------------------------------------------------------------------- back.c, flows.c */

struct prov_back;
/* The back process: starts the signer (first), becomes the service user, opens its log and the
 * store, starts the MTA-FQDN, device channel and webhook servers, reports readiness ("ok" or an
 * error) on fd, then serves the front's requests until it closes the channel. Never returns. */
void prov_back_main(const struct prov_config *cfg, int fd) __attribute__((noreturn));

/* flows.c: one back request -> its reply (new reference). store, signer and webhooks come
 * from the back; now_fn the clock. Also used by the unit tests with a test store. */
struct prov_flows {
    const struct prov_config *cfg;
    ck_store *store;
    struct prov_signer *signer;
    struct prov_webhooks *webhooks;
    int64_t (*now)(void);
    struct prov_workers_shared *shared; /* NULL: the only worker (the unit tests) */
    size_t worker;                      /* this worker's index in shared */
};

/* What the back's workers share (back.c sets it up). The store connection: a worker holds it
 * for a whole request except while it waits for the signer, so that one worker signs while
 * another reads and commits (one connection, not one per worker: SQLite drops a connection's
 * page cache whenever another connection has committed, which cost more than the overlap
 * gained). The numbers each worker has picked for an action not yet committed: the others
 * skip them instead of signing a certificate for a number their action would be refused
 * (the action re-checks its number in its transaction either way). */
struct prov_workers_shared {
    pthread_mutex_t store_lock;
    pthread_mutex_t picks_lock;
    char picks[PROV_MAX_WORKERS][CK_PROV_NUMBER_MAX + 1];
};
json_t *prov_flows_handle(struct prov_flows *fl, const json_t *req);
/* Crash points (CK_PROV_CRASH=<point>): _exit(137) at that point, for the kill -9 tests. */
void prov_crash_point(const char *point);

/* ----------------------------------------------------------------------- front.c */

int prov_front_run(struct prov_config *cfg, int sfd, int back_fd, int back_pid);
int prov_listen_validate(const struct prov_config *cfg);
int prov_front_check(const struct prov_config *cfg);

#endif
