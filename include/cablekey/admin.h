/* Remote administration: the access control list of cablekey-admind (lib/admin/acl.c) and the
 * JSON codec shared by the daemon and its clients (lib/admin/json.c).
 *
 * ---- ACL file (MIT kadm5.acl spirit) ----
 *
 *   # comment (whole lines; blank lines are ignored)
 *   PRINCIPAL  PERMISSIONS  [TARGET]
 *
 * PRINCIPAL and TARGET are principal names in which a component, or the realm, may be the
 * wildcard "*" (one whole component, as in MIT; "*" alone matches every principal of every
 * realm; a TARGET of "*" alone is no restriction). A name without "@REALM" is in the daemon's
 * realm. In TARGET, a component "*N" (N = 1..9) is the text the N-th component wildcard of
 * PRINCIPAL matched, left to right (a realm wildcard is not counted, as in MIT).
 * docs/cablekey-admind.md has the example that lets every NAME/admin change the keys of NAME@R
 * (a C comment cannot hold it: its pattern starts with a star and a slash).
 *
 * PERMISSIONS letters (MIT meanings): a add, d delete, m modify, c change keys/password,
 * i inquire, l list, p propagate, s set explicit keys, e extract keys; r revoke (cablekey-prov:
 * revoke/reinstate a device; no admind operation needs it); the upper-case letter denies the
 * same operation (wherever it stands in the field); x and * mean "admcilsp" (not e, as in
 * MIT; not r: revoking a device is granted by name).
 *
 * The FIRST entry whose PRINCIPAL matches the caller and whose TARGET (if any) matches the
 * target decides: the operation is allowed if that entry grants every requested letter and
 * denies none. No matching entry: refused. An entry with a TARGET does not apply to operations
 * without a target (list), as in MIT.
 *
 * Fail closed: an unknown letter, a malformed name, a backreference to a wildcard that does not
 * exist, a fourth field (MIT's restrictions, not supported) or a line over the limits makes the
 * whole file an error (CK_ERR_CONFIG, "file:line: message" in the error context).
 *
 * ---- JSON codec ----
 *
 * Records never carry key material: a principal's keys appear as metadata (kvno, enctype, salt
 * type, salt; the salt is public, sent to any client in ETYPE-INFO2) only. The shapes are documented in docs/cablekey-admind.md. Decoders are strict: unknown
 * members, wrong types, out-of-range values and duplicate keys are CK_ERR_DECODE with the member
 * named in the error context; input is bounded by CK_ADMIN_JSON_MAX. */
#ifndef CABLEKEY_ADMIN_H
#define CABLEKEY_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/store.h"

/* Permission bits (ck_admin_acl_check's perm argument). */
#define CK_ADMIN_PERM_ADD 0x001u       /* a */
#define CK_ADMIN_PERM_DELETE 0x002u    /* d */
#define CK_ADMIN_PERM_MODIFY 0x004u    /* m */
#define CK_ADMIN_PERM_CHANGEPW 0x008u  /* c */
#define CK_ADMIN_PERM_INQUIRE 0x010u   /* i */
#define CK_ADMIN_PERM_LIST 0x020u      /* l */
#define CK_ADMIN_PERM_PROPAGATE 0x040u /* p */
#define CK_ADMIN_PERM_SETKEY 0x080u    /* s */
#define CK_ADMIN_PERM_EXTRACT 0x100u   /* e */
#define CK_ADMIN_PERM_REVOKE 0x200u    /* r (cablekey-prov) */
#define CK_ADMIN_PERM_ALL 0x0ffu       /* x or *: admcilsp */

#define CK_ADMIN_ACL_MAX_FILE (1024 * 1024)
#define CK_ADMIN_ACL_MAX_LINE 4096
#define CK_ADMIN_ACL_MAX_ENTRIES 10000

struct ck_admin_acl;

/* Parses an ACL file. default_realm completes names without "@REALM". The file must be a
 * regular file of at most CK_ADMIN_ACL_MAX_FILE bytes, not writable by others (CK_ERR_PERM). */
int ck_admin_acl_load(const char *path, const char *default_realm, struct ck_admin_acl **out);
/* The same from memory; name labels the error messages (NULL: "<acl>"). */
int ck_admin_acl_parse(const char *text, size_t len, const char *name, const char *default_realm,
                       struct ck_admin_acl **out);
void ck_admin_acl_free(struct ck_admin_acl *acl);
size_t ck_admin_acl_entries(const struct ck_admin_acl *acl);

/* True if caller (a canonical "name@REALM") may perform every operation in perm on target
 * (NULL: an operation without a target). A caller or target that does not parse is refused.
 * *line (may be NULL) receives the line of the deciding entry, 0 if none matched. */
bool ck_admin_acl_check(const struct ck_admin_acl *acl, const char *caller, const char *target,
                        unsigned perm, unsigned *line);
/* Letters of a permission set, e.g. "ai" (buf of at least 10 bytes). */
const char *ck_admin_perm_letters(unsigned perm, char *buf, size_t size);

/* ---- JSON ---- */

#define CK_ADMIN_JSON_MAX (256 * 1024) /* bytes of JSON any decoder accepts */
#define CK_ADMIN_PASSWORD_MAX 1024     /* bytes of a password in a request */

/* Principal flags by name: the CK_ATTR_* bits, e.g. "requires_preauth" <-> 0x80. */
const char *ck_admin_flag_name(uint32_t bit);
int ck_admin_flag_from_name(const char *name, uint32_t *bit);

/* A principal record: name, kvno, flags, limits, times, key metadata. *out is malloc'd. */
int ck_admin_json_encode_principal(const ck_db_principal *p, char **out);
/* The inverse; keys come back with kvno, enctype, salt type and salt only (key.length 0).
 * Free with ck_db_principal_free. */
int ck_admin_json_decode_principal(const char *text, size_t len, ck_db_principal **out);
/* Realm record: name, enctypes, lifetimes, master kvno, default_flags. */
int ck_admin_json_encode_realm(const ck_realm_info *r, char **out);
int ck_admin_json_decode_realm(const char *text, size_t len, ck_realm_info *out);

/* Principal requests: the bodies of create (POST /v1/principals/NAME), modify (PATCH) and
 * key change (POST /v1/principals/NAME/keys). */
enum ck_admin_req_kind {
    CK_ADMIN_REQ_CREATE = 1, /* password | random_key (exactly one), attributes, enctypes */
    CK_ADMIN_REQ_MODIFY = 2, /* attributes only; at least one */
    CK_ADMIN_REQ_KEYS = 3,   /* password | random_key (exactly one), enctypes, keep */
};

/* Which fields a request carries. */
#define CK_ADMIN_REQ_MAX_LIFE 0x01u
#define CK_ADMIN_REQ_MAX_RENEW 0x02u
#define CK_ADMIN_REQ_EXPIRES 0x04u
#define CK_ADMIN_REQ_PW_EXPIRES 0x08u
#define CK_ADMIN_REQ_FLAGS 0x10u
#define CK_ADMIN_REQ_ENCTYPES 0x20u
#define CK_ADMIN_REQ_KEEP 0x40u
#define CK_ADMIN_REQ_POLICY 0x80u /* create, modify: policy ("" = none) */

struct ck_admin_principal_req {
    enum ck_admin_req_kind kind;
    unsigned present;            /* CK_ADMIN_REQ_* */
    int64_t max_life, max_renew; /* seconds, 0..CK_PROFILE_MAX_DURATION */
    int64_t expires, pw_expires; /* epoch seconds; 0 = never (JSON null) */
    uint32_t flags_set, flags_clear;
    size_t n_enctypes;
    int32_t enctypes[CK_STORE_MAX_ENCTYPES];
    uint32_t keep;               /* kvnos to keep on a key change, 1..CK_STORE_MAX_KEYS */
    char policy[CK_POLICY_NAME_MAX + 1]; /* CK_ADMIN_REQ_POLICY: a name, or "" to detach */
    bool random_key;
    char *password;              /* NUL-terminated, wiped by ck_admin_principal_req_clear */
    size_t password_len;
};

/* Decodes a request body of the given kind; the request is cleared first. On error it is left
 * cleared (no password kept). */
int ck_admin_json_decode_request(enum ck_admin_req_kind kind, const char *text, size_t len,
                                 struct ck_admin_principal_req *out);
/* The inverse (for clients and the daemon's internal channel). *out holds the password if the
 * request does: free it with ck_free_secret(*out, *out_len). */
int ck_admin_json_encode_request(const struct ck_admin_principal_req *req, char **out,
                                 size_t *out_len);
/* Wipes the password and zeroes the request. Accepts NULL. */
void ck_admin_principal_req_clear(struct ck_admin_principal_req *req);

/* Realm changes: the body of PATCH /v1/realm. Members max_life, max_renew (seconds,
 * 1..CK_REALM_LIFE_MAX), enctypes (names), default_flags (the whole set, as in the realm record,
 * with unknown_default_flags for bits without a name); at least one. */
int ck_admin_json_encode_realm_mod(const ck_realm_mod *mod, char **out);
int ck_admin_json_decode_realm_mod(const char *text, size_t len, ck_realm_mod *out);

/* Rename: the body of POST /v1/principals/NAME/rename, {"new_name": "..."}. *new_name is
 * malloc'd and still to be canonicalised in the daemon's realm. */
int ck_admin_json_encode_rename(const char *new_name, char **out);
int ck_admin_json_decode_rename(const char *text, size_t len, char **new_name);

/* An error answer {"error": {"code": "...", "message": "..."}}: both copied (cut to size)
 * with control characters replaced by '?', since clients print them on a terminal. */
int ck_admin_json_decode_error(const char *text, size_t len, char *code, size_t code_size,
                               char *message, size_t message_size);

/* One page of a principal listing, {"principals": [NAME, ...], "next": NAME|null}. Pages are
 * larger than other records (up to 10000 names), hence their own bound. */
#define CK_ADMIN_JSON_PAGE_MAX (4 * 1024 * 1024)
#define CK_ADMIN_PAGE_MAX_NAMES 10000
struct ck_admin_name_page {
    char **names;
    size_t n;
    char *next; /* NULL: the listing is complete */
};
int ck_admin_json_decode_name_page(const char *text, size_t len, struct ck_admin_name_page *out);
void ck_admin_name_page_clear(struct ck_admin_name_page *pg);

/* A device record. The decoder (for `cablekey --server device show|list`) checks the MAC
 * (canonical), the state ("active" or "revoked"), the pin (64 hex digits or null), the comment
 * (at most CK_DEVICE_COMMENT_MAX bytes, no control characters) and the times; *out is freed with
 * ck_db_device_free. */
int ck_admin_json_encode_device(const ck_db_device *dev, char **out);
int ck_admin_json_decode_device(const char *text, size_t len, ck_db_device **out);
/* One page of GET /v1/devices, {"devices": [device, ...], "next": MAC|null}. */
#define CK_ADMIN_DEVICE_PAGE_MAX 1000
struct ck_admin_device_page {
    ck_db_device **devices;
    size_t n;
    char next[CK_DEVICE_MAC_LEN + 1]; /* "": the listing is complete */
};
int ck_admin_json_decode_device_page(const char *text, size_t len,
                                     struct ck_admin_device_page *out);
void ck_admin_device_page_clear(struct ck_admin_device_page *pg);

/* ---- password policies ---- */

/* A policy record: name, the eight rules (min_length, min_classes, history, min_life, max_life,
 * max_failure, failure_interval, lockout_duration; durations in seconds), principals (how many
 * use it), created, modified. Decoding checks the name and every range (CK_ERR_DECODE). */
int ck_admin_json_encode_policy(const ck_policy *pol, char **out);
int ck_admin_json_decode_policy(const char *text, size_t len, ck_policy *out);

/* Which rules a policy request carries (bit i = the i-th rule in the order above). */
#define CK_ADMIN_POL_MIN_LENGTH 0x01u
#define CK_ADMIN_POL_MIN_CLASSES 0x02u
#define CK_ADMIN_POL_HISTORY 0x04u
#define CK_ADMIN_POL_MIN_LIFE 0x08u
#define CK_ADMIN_POL_MAX_LIFE 0x10u
#define CK_ADMIN_POL_MAX_FAILURE 0x20u
#define CK_ADMIN_POL_FAILURE_INTERVAL 0x40u
#define CK_ADMIN_POL_LOCKOUT_DURATION 0x80u

/* The body of POST /v1/policies/NAME (create: rules not given are 0, "{}" is a policy without
 * rules) and PATCH (modify: at least one rule): the rule members only, the name is in the path.
 * rules->name is left empty; *present says which rules were given. */
int ck_admin_json_encode_policy_rules(const ck_policy *rules, unsigned present, char **out);
int ck_admin_json_decode_policy_rules(const char *text, size_t len, bool modify, ck_policy *rules,
                                      unsigned *present);

/* GET /v1/policies: {"policies": [NAME, ...]} in name order (at most CK_POLICY_LIST_MAX; no
 * paging: next is always NULL). Clear with ck_admin_name_page_clear. */
int ck_admin_json_decode_policy_names(const char *text, size_t len,
                                      struct ck_admin_name_page *out);

/* Makes jansson wipe every buffer it frees (it holds passwords while a request is decoded or
 * encoded). Process-wide; call once at start before any other JSON call. */
void ck_admin_json_secure_alloc(void);

#endif
