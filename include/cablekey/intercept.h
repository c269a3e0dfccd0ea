/* Lawful intercept (CALEA): intercept orders, and the escrow of an intercepted call's keys
 * encrypted to the order's law-enforcement certificate (CMS EnvelopedData, RFC 5652) — seed
 * 002's "encrypted cookie". The operator and a thief of the database see that a record exists,
 * never the keys; the holder of the law-enforcement private key opens it.
 *
 * Roles: orders live in their own database (not the KDC's), managed only by the intercept
 * administrator (`cablekey intercept add|list|revoke|records|open|purge`); cablekey-cms opens it
 * read-mostly to match calls and write escrow records. Every access (add, list, revoke, match
 * that escrowed, record read, purge) is written to the database's audit table with who and when.
 * docs/cablekey-intercept.md is the operator's documentation.
 *
 * Functions return 0 or a negative CK_ERR_* with context. A ck_li handle is thread-safe (a
 * controller's signaling threads share one). Secrets (K_call) are wiped by ck_li_call_clear. */
#ifndef CABLEKEY_INTERCEPT_H
#define CABLEKEY_INTERCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/kmm.h"

#define CK_LI_MAX_TARGET 32           /* a number (digits) or a MAC (12 hex digits) */
#define CK_LI_MAX_AUTHORITY 256       /* issuing authority and its reference */
#define CK_LI_MAX_ACTOR 256           /* who did it (principal or local user) */
#define CK_LI_MAX_CERT (64 * 1024)    /* PEM */

typedef struct ck_li ck_li;

#define CK_LI_CREATE 0x1u             /* create the database (0600) if it does not exist */
#define CK_LI_READONLY 0x2u

int ck_li_open(const char *path, unsigned flags, ck_li **out);
void ck_li_close(ck_li *li);

enum ck_li_target_kind { CK_LI_TARGET_NUMBER = 1, CK_LI_TARGET_MAC = 2 };

struct ck_li_order {
    int64_t id;
    enum ck_li_target_kind kind;
    char target[CK_LI_MAX_TARGET + 1]; /* digits, or 12 lower-case hex digits */
    int64_t not_before, not_after;    /* the order's window, Unix seconds */
    char authority[CK_LI_MAX_AUTHORITY + 1];
    char cert_subject[256];           /* of the law-enforcement certificate (list output) */
    char cert_sha256[65];
    int64_t created, revoked;         /* revoked: 0 = active */
    char created_by[CK_LI_MAX_ACTOR + 1];
};

/* Adds an order. cert_pem: the law-enforcement certificate (must be an RSA or EC encryption
 * certificate valid over the window; CK_ERR_INVAL otherwise). *id receives the order id. */
int ck_li_order_add(ck_li *li, enum ck_li_target_kind kind, const char *target, int64_t not_before,
                    int64_t not_after, const char *authority, const char *cert_pem,
                    const char *actor, int64_t now, int64_t *id);
int ck_li_order_revoke(ck_li *li, int64_t id, const char *actor, int64_t now);
/* All orders (active and revoked), oldest first; *out is malloc'd. */
int ck_li_order_list(ck_li *li, const char *actor, int64_t now, struct ck_li_order **out,
                     size_t *n);

/* What a controller escrows for one call (the record's plaintext; docs/PROTOCOL.md "Lawful
 * intercept record"). */
struct ck_li_call {
    char call_id[CK_CALL_MAX_ID + 1];
    char caller[CK_LI_MAX_TARGET + 1], callee[CK_LI_MAX_TARGET + 1];   /* numbers */
    char caller_mac[CK_LI_MAX_TARGET + 1], callee_mac[CK_LI_MAX_TARGET + 1]; /* "" unknown */
    int64_t started;                  /* Unix seconds */
    uint32_t spi;
    char media[16];                   /* "srtp-aes-cm", ... (mgcp.h names) */
    char ipsec_suite[32];             /* "" when the ends have no direct ESP */
    bool compat_seq;
    char src_media_addr[64], dst_media_addr[64]; /* "addr port" of each end's RTP */
    uint8_t k_call[CK_CALL_KEY_LEN];  /* secret */
};
void ck_li_call_clear(struct ck_li_call *c);

/* Escrows the call under every active order whose target is either party's number or MAC and
 * whose window contains now: one EnvelopedData per order, encrypted to its certificate, stored
 * in the database with its expiry (now + retention) and, when drop_dir is not NULL, written to
 * drop_dir/<order id>-<call id>.p7m (0600, atomically). *n_escrowed: records written (0 for a call
 * no order covers — nothing is written and nothing about the call is kept). */
int ck_li_escrow(ck_li *li, const struct ck_li_call *call, int64_t now, int64_t retention,
                 const char *drop_dir, size_t *n_escrowed);

/* Deletes records whose retention has passed (and their audit says so). */
int ck_li_purge(ck_li *li, const char *actor, int64_t now, size_t *n_purged);

/* A stored record's DER (EnvelopedData) by order and call id, for delivery; audited. */
int ck_li_record_get(ck_li *li, int64_t order_id, const char *call_id, const char *actor,
                     int64_t now, uint8_t **der, size_t *der_len);

/* Stored records, oldest first (no key material: which order, which call, when, how long
 * kept); *out is malloc'd; audited. */
struct ck_li_record_info {
    int64_t order_id;
    char call_id[CK_CALL_MAX_ID + 1];
    int64_t created, expires;
    size_t der_len;
};
int ck_li_record_list(ck_li *li, const char *actor, int64_t now, struct ck_li_record_info **out,
                      size_t *n);

/* Retention: ck_li_purge, and when drop_dir is not NULL the drop files of the records it
 * deletes (drop_dir/<order id>-<call id>.p7m). *n_files counts the files removed; a file that
 * cannot be removed (other than already gone) is an error after the records are purged. */
int ck_li_purge_drops(ck_li *li, const char *actor, int64_t now, const char *drop_dir,
                      size_t *n_purged, size_t *n_files);

/* The law-enforcement side: decrypts a record with the private key (PEM or PKCS#12 file; the
 * passphrase may be NULL) into *out. CK_ERR_INTEGRITY when the key is not the recipient's or the
 * record was altered. */
int ck_li_record_open(const uint8_t *der, size_t der_len, const char *key_path,
                      const char *passphrase, struct ck_li_call *out);

#endif
