/* Kerberos principal names (RFC 4120 §6.2): parse and unparse MIT-style text names
 * ("comp1/comp2@REALM" with \/ \@ \\ \n \t \b \0 escapes), compare, copy, default salt.
 *
 * Components and the realm are NUL-terminated strings, so names that contain a NUL byte are
 * refused (CK_ERR_UNSUPPORTED); every other byte is allowed. */
#ifndef CABLEKEY_PRINCIPAL_H
#define CABLEKEY_PRINCIPAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/nametypes.h"

/* Limits. */
#define CK_PRINCIPAL_MAX_COMPONENTS 16
#define CK_PRINCIPAL_MAX_COMPONENT_LEN 255
#define CK_REALM_MAX_LEN 255
/* Longest unparsed name: every byte escaped (x2) plus separators and the NUL. */
#define CK_PRINCIPAL_MAX_TEXT                                                              \
    (2 * (CK_PRINCIPAL_MAX_COMPONENTS * (CK_PRINCIPAL_MAX_COMPONENT_LEN + 1) + CK_REALM_MAX_LEN) + 2)

#define CK_TGS_NAME "krbtgt"

typedef struct ck_principal {
    int32_t name_type;
    char *realm;        /* never NULL or empty */
    size_t n_components;
    char **components;  /* n_components strings */
} ck_principal;

/* Parse flags. */
#define CK_PRINCIPAL_PARSE_REQUIRE_REALM 0x1 /* refuse names without @REALM */
#define CK_PRINCIPAL_PARSE_NO_REALM 0x2      /* refuse names with @REALM (default_realm still used) */
#define CK_PRINCIPAL_PARSE_ENTERPRISE 0x4    /* one component; only the last unescaped @ splits */

/* Parses a text name. default_realm (may be NULL) is used when the name has no realm; without
 * one, a realm-less name is CK_ERR_INVAL. The name type is NT-SRV-INST for krbtgt/X names,
 * NT-ENTERPRISE with CK_PRINCIPAL_PARSE_ENTERPRISE, else NT-PRINCIPAL. */
int ck_principal_parse(const char *name, const char *default_realm, unsigned flags,
                       ck_principal **out);

/* A principal with no components yet (realm_len bytes of realm, no NUL allowed). */
int ck_principal_new(const char *realm, size_t realm_len, int32_t name_type, ck_principal **out);
/* Appends one component of len bytes (limits checked; no NUL allowed). */
int ck_principal_add_component(ck_principal *p, const char *data, size_t len);
/* Convenience: realm + n NUL-terminated components. */
int ck_principal_build(const char *realm, int32_t name_type, const char *const *components,
                       size_t n, ck_principal **out);

/* Unparse flags. */
#define CK_PRINCIPAL_UNPARSE_NO_REALM 0x1    /* omit "@REALM" */

/* Text form with escapes; *out is malloc'd (free with free()). */
int ck_principal_unparse(const ck_principal *p, unsigned flags, char **out);
/* Same into a caller buffer (CK_ERR_LIMIT if too small); *out_len excludes the NUL. */
int ck_principal_unparse_buf(const ck_principal *p, unsigned flags, char *buf, size_t size,
                             size_t *out_len);

/* Equality of realm and components (case-sensitive, the name type is ignored as in MIT). */
bool ck_principal_equal(const ck_principal *a, const ck_principal *b);
/* Equality of the components only. */
bool ck_principal_equal_no_realm(const ck_principal *a, const ck_principal *b);

int ck_principal_copy(const ck_principal *src, ck_principal **out);
void ck_principal_free(ck_principal *p);

/* Default salt (RFC 4120 §4): the realm followed by all components, no separators.
 * *salt is malloc'd (free with free()); it is never empty because the realm is not. */
int ck_principal_default_salt(const ck_principal *p, uint8_t **salt, size_t *salt_len);

/* True if p is krbtgt/REALM@REALM for the given realm (realm NULL: p's own realm). */
bool ck_principal_is_tgs(const ck_principal *p, const char *realm);
/* True if p is krbtgt/<anything>@<anything> (local or cross-realm TGS). */
bool ck_principal_is_any_tgs(const ck_principal *p);

#endif
