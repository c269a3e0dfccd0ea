/* jansson-level entry points of the admin JSON codec, for cablekey-admind, which composes
 * responses and its internal channel from the same objects. Clients use the text API in
 * include/cablekey/admin.h. */
#ifndef CABLEKEY_ADMIN_INT_H
#define CABLEKEY_ADMIN_INT_H

#include <jansson.h>

#include "cablekey/admin.h"

/* New references; NULL on allocation failure. */
json_t *ck_admin_principal_to_json(const ck_db_principal *p);
json_t *ck_admin_realm_to_json(const ck_realm_info *r);
json_t *ck_admin_device_to_json(const ck_db_device *dev);
json_t *ck_admin_request_to_json(const struct ck_admin_principal_req *req);
json_t *ck_admin_realm_mod_to_json(const ck_realm_mod *mod);
json_t *ck_admin_policy_to_json(const ck_policy *pol);
json_t *ck_admin_policy_rules_to_json(const ck_policy *rules, unsigned present);

/* Strict decoders (see admin.h); obj is only borrowed. */
int ck_admin_principal_from_json(const json_t *obj, ck_db_principal **out);
int ck_admin_request_from_json(enum ck_admin_req_kind kind, const json_t *obj,
                               struct ck_admin_principal_req *out);
int ck_admin_realm_mod_from_json(const json_t *obj, ck_realm_mod *out);
int ck_admin_policy_rules_from_json(const json_t *obj, bool modify, ck_policy *rules,
                                    unsigned *present);
/* *new_name is malloc'd (not yet canonicalised: the caller does that in its realm). */
int ck_admin_rename_from_json(const json_t *obj, char **new_name);

/* Parses text of at most CK_ADMIN_JSON_MAX bytes into an object (duplicate keys refused). */
int ck_admin_json_parse_object(const char *text, size_t len, json_t **out);
/* Compact serialisation; *out is malloc'd. */
int ck_admin_json_dump(const json_t *obj, char **out, size_t *out_len);

/* Frames between the processes of one daemon (lib/admin/ipc.c): a 4-byte big-endian length,
 * then that many bytes. send refuses a frame over max (CK_ERR_LIMIT); recv's *out is malloc'd
 * and NUL-terminated, CK_ERR_NOTFOUND at a clean end of stream, CK_ERR_PROTO past max. */
int ck_admin_ipc_send(int fd, const char *buf, size_t len, size_t max);
int ck_admin_ipc_recv(int fd, size_t max, char **out, size_t *out_len);

#endif
