/* The provisioning server's customer database (issue 10): customers and accounts, service
 * options, phone numbers, the devices' provisioning records, the operator certificates issued,
 * each device's history, idempotency records and the webhook outbox. It lives in the same store
 * as the realm (SQLite or PostgreSQL, through the backend ops in store_int.h), so that the KDC's
 * device view (ck_db_device in store.h) and the provisioning view change in ONE transaction:
 * every action below commits the device row the KDC reads, the provisioning rows, one history
 * event, one audit row (with the actor), the idempotency record and the outbox rows together, or
 * nothing.
 *
 * Views of one device:
 *   - the KDC's (store.h ck_db_device): state ACTIVE / REVOKED / UNPROVISIONED, the pinned key,
 *     and cert_sha256, the SHA-256 of the DER of the one operator certificate the KDC accepts
 *     for full service (has_cert false: none; a manufacturer certificate never gets more than
 *     the restricted, unprovisioned ticket when provisioning is on);
 *   - the provisioning server's (ck_prov_device below): lifecycle state, customer, numbers,
 *     certificates, unprovisioned IP, the controller that reported it, history.
 * cablekey-prov is authoritative for the lifecycle; the KDC only ever writes
 * ck_prov_admit_unprovisioned (a device it has never seen) and the login-time pin.
 *
 * Limits: every string has a maximum below (CK_ERR_LIMIT), lists are paged (CK_PROV_LIST_MAX).
 * Errors: CK_ERR_NOTFOUND unknown MAC/customer/number; CK_ERR_EXISTS number taken, customer
 * exists; CK_ERR_POLICY device in the wrong state for the action (the message names the state and
 * the action); CK_ERR_INVAL a field (the message names it). Nothing is changed on any error. */
#ifndef CABLEKEY_PROV_H
#define CABLEKEY_PROV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/store.h"

#define CK_PROV_NAME_MAX 128        /* customer name, bytes of UTF-8, no control characters */
#define CK_PROV_ADDRESS_MAX 256
#define CK_PROV_EMAIL_MAX 128
#define CK_PROV_SEGMENT_MAX 32      /* HFC segment name: [A-Za-z0-9._-] */
#define CK_PROV_NUMBER_MAX 15       /* E.164 digits, no '+' (as cms.h CMS_MAX_NUMBER) */
#define CK_PROV_MAX_NUMBERS 8       /* numbers (CTA ports) per device */
#define CK_PROV_SERVICES_MAX 1024   /* the service options, a JSON object as text */
#define CK_PROV_IDEM_KEY_MAX 128    /* Idempotency-Key: [A-Za-z0-9._:-] */
#define CK_PROV_ACTOR_MAX 256       /* a principal name, or "kdc", "cms:<principal>" */
#define CK_PROV_CERT_MAX 8192       /* DER bytes of one certificate */
#define CK_PROV_EVENT_DETAIL_MAX 2048 /* JSON text */
#define CK_PROV_FQDN_MAX 253
#define CK_PROV_LIST_MAX 1000       /* rows per list call */
#define CK_PROV_WEBHOOK_BODY_MAX 8192

/* Lifecycle (stored as these integers; never renumber). */
enum ck_prov_state {
    CK_PROV_UNPROVISIONED = 1, /* seen with its manufacturer certificate, no customer */
    CK_PROV_PROVISIONED = 2,   /* a customer's (or loaner's) device; operator cert issued */
    CK_PROV_REPAIR = 3,        /* provisioned to a repair-facility account (short certificate);
                                * the owner's account and numbers are kept for the return */
    CK_PROV_REVOKED = 4,       /* stolen or withdrawn: the KDC refuses it (ck_db_device REVOKED) */
};
const char *ck_prov_state_name(enum ck_prov_state s); /* "unprovisioned", ... */
int ck_prov_state_parse(const char *name, enum ck_prov_state *out);

enum ck_prov_account_type {
    CK_PROV_ACCOUNT_CUSTOMER = 1,
    CK_PROV_ACCOUNT_REPAIR = 2,  /* a repair facility: never billed, short certificates */
};

typedef struct ck_prov_customer {
    int64_t id;                  /* assigned by the store (> 0) */
    enum ck_prov_account_type type;
    char *name, *address, *email;/* email may be NULL */
    char segment[CK_PROV_SEGMENT_MAX + 1];
    char *services;              /* JSON object text, validated by the caller; "{}" when none */
    int64_t created, modified;
} ck_prov_customer;
void ck_prov_customer_free(ck_prov_customer *c);

/* An operator certificate the provisioning CA issued (kept for the history and for delivery). */
typedef struct ck_prov_cert {
    int64_t id;
    char mac[CK_DEVICE_MAC_LEN + 1];
    uint8_t *der;                /* the certificate */
    size_t der_len;
    uint8_t sha256[32];          /* of der: what ck_db_device.cert_sha256 holds while current */
    int64_t not_before, not_after, issued;
    bool acked;                  /* the device fetched it and acknowledged it */
    bool superseded;             /* a later certificate (or a de-provisioning) replaced it */
} ck_prov_cert;
void ck_prov_cert_free(ck_prov_cert *c);

typedef struct ck_prov_device {
    char mac[CK_DEVICE_MAC_LEN + 1];
    enum ck_prov_state state;
    char *principal;             /* the device's principal (the KDC's device row) */
    int64_t customer_id;         /* 0: none */
    int64_t owner_id;            /* REPAIR: the owner's customer id; loaner: 0 */
    char *loaner_for;            /* a loaner: the MAC of the device it stands in for; or NULL */
    char numbers[CK_PROV_MAX_NUMBERS][CK_PROV_NUMBER_MAX + 1];
    size_t n_numbers;
    char segment[CK_PROV_SEGMENT_MAX + 1]; /* where it is provisioned; "" none */
    char fqdn[CK_PROV_FQDN_MAX + 1];       /* "" until provisioned */
    uint8_t ipv4[4];                       /* 0.0.0.0: none given */
    char unprov_ip[64];          /* the last unprovisioned address reported ("" none) */
    char *reported_by;           /* the controller principal that reported it last, or NULL */
    uint8_t *mfg_cert_der;       /* the manufacturer certificate (the KDC keeps it at admission)*/
    size_t mfg_cert_len;
    uint8_t spki_sha256[32];     /* of the manufacturer certificate's key (= the pinned key) */
    bool has_cert;               /* a current operator certificate */
    int64_t cert_id;             /* ck_prov_cert.id of it */
    int64_t first_seen, last_seen, modified;
    uint64_t generation;         /* the KDC device row's generation */
} ck_prov_device;
void ck_prov_device_free(ck_prov_device *d);

/* Every action carries who did it and, for API calls, the idempotency record. */
typedef struct ck_prov_actor {
    const char *actor;           /* principal of the CSR/OSS, "kdc", "cms:<principal>" */
    const char *idem_key;        /* NULL: not idempotent (CLI --db, KDC) */
    uint8_t request_sha256[32];  /* of the action name + canonical request body */
} ck_prov_actor;

/* Idempotency: an action called again with the same idem_key and the same request_sha256
 * changes nothing and returns CK_ERR_EXISTS with *replayed_event set to the first call's event
 * id (the API then answers as the first time, from the device's current record); the same key
 * with another request hash is CK_ERR_POLICY ("idempotency key reused for another request").
 * Records are kept CK_PROV_IDEM_RETENTION seconds. */
#define CK_PROV_IDEM_RETENTION (7 * 86400)

/* ---- customers ---- */
int ck_prov_customer_add(ck_store *store, const ck_prov_actor *who, ck_prov_customer *c,
                         int64_t *replayed_event);                  /* sets c->id */
int ck_prov_customer_get(ck_store *store, int64_t id, ck_prov_customer **out);
int ck_prov_customer_modify(ck_store *store, const ck_prov_actor *who,
                            const ck_prov_customer *c, int64_t *replayed_event);
/* Customers whose name, address or email contains q (case-insensitive; NULL all), id > after. */
typedef int (*ck_prov_customer_cb)(const ck_prov_customer *c, void *arg);
int ck_prov_customer_list(ck_store *store, const char *q, int64_t after, size_t limit,
                          ck_prov_customer_cb cb, void *arg, size_t *n_out);

/* ---- numbers: pools per segment ---- */
/* Adds the numbers first..last (same length, digits) to segment's pool; existing ones are left
 * as they are (*added counts the new). At most 1,000,000 per call. */
int ck_prov_pool_add(ck_store *store, const ck_prov_actor *who, const char *segment,
                     const char *first, const char *last, size_t *added);
typedef struct ck_prov_pool_stats { size_t free, assigned; } ck_prov_pool_stats;
int ck_prov_pool_stats_get(ck_store *store, const char *segment, ck_prov_pool_stats *out);
/* Every segment with numbers, in name order (at most CK_PROV_LIST_MAX). */
typedef int (*ck_prov_pool_cb)(const char *segment, const ck_prov_pool_stats *st, void *arg);
int ck_prov_pool_list(ck_store *store, ck_prov_pool_cb cb, void *arg);
/* The lowest free number of segment (text order: numbers of one length order numerically),
 * NOT reserved: the signer can put its phone ID in a certificate before the action takes it;
 * the action then fails with CK_ERR_EXISTS if another took it meanwhile (pick again).
 * CK_ERR_FULL when the segment has none left (an action without a number fails the same way). */
int ck_prov_number_next(ck_store *store, const char *segment, char out[CK_PROV_NUMBER_MAX + 1]);
/* The same, the lowest free number above `after` (text order): a back with several workers skips
 * the numbers its other workers are about to take. */
int ck_prov_number_next_after(ck_store *store, const char *segment, const char *after,
                              char out[CK_PROV_NUMBER_MAX + 1]);

/* ---- devices ---- */
int ck_prov_device_get(ck_store *store, const char *mac, ck_prov_device **out);
/* Search: exactly one of mac (any form), unprov_ip, number, customer_id (> 0) or state (> 0),
 * or none of them for all; MAC order after `after`. */
typedef struct ck_prov_device_query {
    const char *mac, *unprov_ip, *number;
    int64_t customer_id;
    int state;                   /* enum ck_prov_state, 0 any */
    const char *after;
    size_t limit;
} ck_prov_device_query;
typedef int (*ck_prov_device_cb)(const ck_prov_device *d, void *arg);
int ck_prov_device_list(ck_store *store, const ck_prov_device_query *q, ck_prov_device_cb cb,
                        void *arg, size_t *n_out);

/* The KDC, at the first PKINIT login of a device certified by a manufacturer anchor that the
 * device table does not know: creates the principal (random keys, requires-preauth) when
 * missing, the KDC's device row (UNPROVISIONED, pinned to spki_sha256) and the provisioning row
 * (UNPROVISIONED, the manufacturer certificate kept), one event "admitted". CK_ERR_EXISTS if the
 * MAC is known by then (another KDC won: re-read the device). A provisioning record left by an
 * operator's `cablekey device delete` is started afresh (numbers freed, certificates
 * superseded, history kept), except a REVOKED one: CK_ERR_POLICY. */
int ck_prov_admit_unprovisioned(ck_store *store, const char *mac, const char *principal,
                                const uint8_t spki_sha256[32], const uint8_t *mfg_cert_der,
                                size_t mfg_cert_len, int64_t now);

/* cablekey-cms reports a device that used a restricted ticket: its unprovisioned address and
 * the controller. Unknown MAC: CK_ERR_NOTFOUND. cert_sha256 (may be NULL) is checked against the
 * kept manufacturer certificate's key hash (CK_ERR_INTEGRITY on mismatch: a clone). */
int ck_prov_device_report(ck_store *store, const ck_prov_actor *who, const char *mac,
                          const uint8_t *spki_sha256, const char *unprov_ip,
                          const char *controller, int64_t now);

/* The actions. Each checks the state (CK_ERR_POLICY names it), then in one transaction writes
 * the KDC's device row, the provisioning rows, the certificate (cert_der: signed beforehand by
 * the signer; NULL when the action needs none), one event, the outbox rows for `event` and the
 * idempotency record. *event_id is the new event.
 * As implemented (P1): fields are checked before the state (CK_ERR_INVAL names the field:
 * customer for provision/loaner/repair, segment for move, services-or-certificate for
 * change-service, for for loaner). A new certificate becomes the device's only current one
 * (the others superseded) and its hash the KDC row's cert_sha256; provision, loaner and
 * change-service without one keep what the device has (none for a new device); move, repair and
 * return without one leave it none (the old one names the old number or account). Numbers:
 * `number` must be free in that segment's pool (CK_ERR_EXISTS taken, CK_ERR_NOTFOUND in no
 * pool, CK_ERR_INVAL another segment's); none given: the lowest free one (CK_ERR_FULL when the
 * segment has none). The KDC row: PROVISIONED/REPAIR -> ACTIVE, UNPROVISIONED -> UNPROVISIONED,
 * REVOKED -> REVOKED; CK_ERR_NOTFOUND if an operator deleted it (`cablekey device delete`).
 * Revoke frees the numbers and supersedes the certificates, keeping the customer for the
 * record; reinstate and deprovision clear the customer. A loaner must name a device the
 * database knows. */
typedef struct ck_prov_action {
    const char *mac;
    int64_t customer_id;         /* provision, loaner, repair (the facility's account) */
    const char *number;          /* provision/move: NULL = the next free one of the segment */
    const char *segment;         /* move: the new segment; provision: NULL = the customer's */
    const char *services;        /* change_service: the new options (JSON text) */
    const char *loaner_for;      /* loaner: the device it stands in for */
    const char *fqdn;            /* provision/move/repair/return: the device FQDN */
    const uint8_t *ipv4;         /* 4 bytes or NULL */
    const uint8_t *cert_der;     /* the new operator certificate, or NULL */
    size_t cert_len;
    int64_t cert_not_before, cert_not_after;
    const char *reason;          /* deprovision/revoke: free text (<= 256 bytes) */
} ck_prov_action;

enum ck_prov_action_type {
    CK_PROV_ACT_PROVISION = 1,   /* UNPROVISIONED -> PROVISIONED: number, cert, KDC row ACTIVE */
    CK_PROV_ACT_CHANGE_SERVICE,  /* PROVISIONED: the customer's options; cert only if given */
    CK_PROV_ACT_DEPROVISION,     /* PROVISIONED/REPAIR -> UNPROVISIONED: numbers freed, cert
                                  * superseded, KDC row UNPROVISIONED (next operator-cert login
                                  * refused, live) */
    CK_PROV_ACT_MOVE,            /* PROVISIONED: new segment, old number freed, new number,
                                  * new cert */
    CK_PROV_ACT_REPAIR,          /* UNPROVISIONED-with-owner or PROVISIONED -> REPAIR: the
                                  * facility's account, short cert; owner kept */
    CK_PROV_ACT_RETURN,          /* REPAIR -> PROVISIONED: the owner's account and numbers
                                  * back, a new owner's cert */
    CK_PROV_ACT_LOANER,          /* UNPROVISIONED -> PROVISIONED as a loaner for loaner_for */
    CK_PROV_ACT_REVOKE,          /* any -> REVOKED (KDC row REVOKED) */
    CK_PROV_ACT_REINSTATE,       /* REVOKED -> UNPROVISIONED */
};
const char *ck_prov_action_name(enum ck_prov_action_type t); /* "provision", "change-service" */

/* The device's current record after the action is returned in *out when out != NULL. */
int ck_prov_device_act(ck_store *store, const ck_prov_actor *who, enum ck_prov_action_type t,
                       const ck_prov_action *a, int64_t now, int64_t *event_id,
                       int64_t *replayed_event, ck_prov_device **out);

/* The device channel: the device fetched certificate cert_id and acknowledges it (no
 * idempotency record needed: acknowledging twice changes nothing). */
int ck_prov_cert_ack(ck_store *store, const char *mac, int64_t cert_id, int64_t now);
int ck_prov_cert_get(ck_store *store, int64_t cert_id, ck_prov_cert **out);
/* The current certificate of a device, CK_ERR_NOTFOUND when none. */
int ck_prov_cert_current(ck_store *store, const char *mac, ck_prov_cert **out);
/* Every certificate issued to a device, the newest first (at most limit, 0 or more than
 * CK_PROV_LIST_MAX: CK_PROV_LIST_MAX); cb's non-zero return stops the walk and is returned. */
int ck_prov_cert_list(ck_store *store, const char *mac, size_t limit,
                      int (*cb)(const ck_prov_cert *c, void *arg), void *arg, size_t *n);
/* Is this operator certificate (by SHA-256 of its DER) one that a de-provisioning, move or
 * re-issue superseded for this device, or one this realm never issued? *known: issued here at
 * some time; *current: it is the device's current one. Used for the re-use instruction. */
int ck_prov_cert_status(ck_store *store, const char *mac, const uint8_t sha256[32], bool *known,
                        bool *current);

/* ---- history ---- */
typedef struct ck_prov_event {
    int64_t id, time;
    char mac[CK_DEVICE_MAC_LEN + 1];  /* "" for customer events */
    int64_t customer_id;
    char action[32];                  /* ck_prov_action_name, "admitted", "reported", "customer-add" */
    char *actor;
    char *detail;                     /* JSON object text */
} ck_prov_event;
void ck_prov_event_free(ck_prov_event *e);
typedef int (*ck_prov_event_cb)(const ck_prov_event *e, void *arg);
/* Events of one device (mac) or of one customer (customer_id > 0), newest first, id < before
 * (0: from the newest). */
int ck_prov_event_list(ck_store *store, const char *mac, int64_t customer_id, int64_t before,
                       size_t limit, ck_prov_event_cb cb, void *arg, size_t *n_out);
/* (P1 addition) With mac NULL and customer_id 0 above: every event. Every event with id > after,
 * oldest first (the change feed of GET /api/v1/lines), and the newest event id (0: none). */
int ck_prov_event_since(ck_store *store, int64_t after, size_t limit, ck_prov_event_cb cb,
                        void *arg, size_t *n_out);
int ck_prov_event_last(ck_store *store, int64_t *id);

/* ---- webhook outbox: one row per (event, target) written by the action's transaction ---- */
typedef struct ck_prov_delivery {
    int64_t id, event_id;
    char target[64];             /* the configured target's name */
    char *body;                  /* the JSON the target receives */
    int attempts;
    int64_t next_attempt, created, delivered;   /* delivered 0: pending */
    int last_status;             /* HTTP status of the last attempt, 0 none, -1 no connection */
} ck_prov_delivery;
void ck_prov_delivery_free(ck_prov_delivery *d);
/* The targets a new event is queued for (set once at start by cablekey-prov; the store keeps a
 * copy). Events: "device.admitted", "device.provisioned", "device.service-changed",
 * "device.deprovisioned", "device.moved", "device.repair", "device.returned", "device.loaner",
 * "device.revoked", "customer.added", "customer.modified". */
int ck_prov_outbox_targets(ck_store *store, const char *const *names, size_t n);
typedef int (*ck_prov_delivery_cb)(const ck_prov_delivery *d, void *arg);
/* Pending deliveries due at now (next_attempt <= now), oldest first. */
int ck_prov_outbox_due(ck_store *store, int64_t now, size_t limit, ck_prov_delivery_cb cb,
                       void *arg, size_t *n_out);
/* Records an attempt: delivered (status 2xx) or the next attempt time; next_attempt =
 * CK_PROV_OUTBOX_GIVEN_UP: given up (never due again, kept in the log as failed).
 * CK_ERR_NOTFOUND for an unknown or already delivered id. Not an audited action. */
#define CK_PROV_OUTBOX_GIVEN_UP INT64_MAX
int ck_prov_outbox_attempt(ck_store *store, int64_t id, int status, bool delivered,
                           int64_t next_attempt, int64_t now);
/* The delivery log: every delivery (pending and done) newest first, id < before. */
int ck_prov_outbox_list(ck_store *store, int64_t before, size_t limit, ck_prov_delivery_cb cb,
                        void *arg, size_t *n_out);

/* ---- number -> device, for cablekey-cms ----
 * The line of a number: the device's principal and MAC of a PROVISIONED/REPAIR device holding
 * it. CK_ERR_NOTFOUND otherwise. Cheap (one indexed SELECT); cablekey-cms caches it and drops
 * its cache on the store's change feed (ck_store_generation). */
int ck_prov_number_lookup(ck_store *store, const char *number, char **principal,
                          char mac[CK_DEVICE_MAC_LEN + 1]);
/* (P1 addition) Every line (a number held by a PROVISIONED/REPAIR device), number order after
 * `after` (NULL/"" from the first): the full snapshot of GET /api/v1/lines. */
typedef struct ck_prov_line {
    char number[CK_PROV_NUMBER_MAX + 1];
    char mac[CK_DEVICE_MAC_LEN + 1];
    char principal[CK_PROV_ACTOR_MAX + 1];
    enum ck_prov_state state;
} ck_prov_line;
typedef int (*ck_prov_line_cb)(const ck_prov_line *l, void *arg);
int ck_prov_line_list(ck_store *store, const char *after, size_t limit, ck_prov_line_cb cb,
                      void *arg, size_t *n_out);

#endif
