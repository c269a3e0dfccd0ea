/* krb5 profile files (the kdc.conf / krb5.conf syntax):
 *
 *   # comment            ; comment (whole lines only, as in MIT)
 *   [realms]
 *       EXAMPLE.TEST = {
 *           max_life = 10h
 *           supported_enctypes = aes256-cts-hmac-sha1-96:normal
 *       }
 *   include /etc/cablekey/extra.conf       (at the start of a line)
 *   includedir /etc/cablekey/conf.d        (files named [A-Za-z0-9_-]+ or *.conf, sorted)
 *
 * Values run to the end of the line (trailing blanks removed) or are "quoted" with \n \t \b \\
 * escapes. A '*' after a section name, a tag or a closing brace (the "final" marker) is accepted
 * and ignored. Sections of the same name are merged; relations keep file order.
 *
 * Limits: file 1 MiB, line 4096 bytes, brace nesting 8, include depth 4, 64 files in all.
 * Errors are CK_ERR_CONFIG (CK_ERR_LIMIT for limits, CK_ERR_IO for unreadable files) with
 * "file:line: message" in the error context. */
#ifndef CABLEKEY_PROFILE_H
#define CABLEKEY_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CK_PROFILE_MAX_FILE (1024 * 1024)
#define CK_PROFILE_MAX_LINE 4096
#define CK_PROFILE_MAX_DEPTH 8
#define CK_PROFILE_MAX_INCLUDE_DEPTH 4
#define CK_PROFILE_MAX_FILES 64
#define CK_PROFILE_MAX_DURATION 2147483647 /* seconds: Kerberos times are 32-bit */

struct ck_profile;

int ck_profile_load(const char *path, struct ck_profile **out);
/* name labels error messages (NULL: "<string>"); relative includes resolve from the cwd. */
int ck_profile_parse_string(const char *text, const char *name, struct ck_profile **out);
void ck_profile_free(struct ck_profile *prof);

/* The path is a NULL-terminated list of names: section, subsections..., relation.
 * Returned strings live as long as the profile. */

/* First value of the relation, or NULL. */
const char *ck_profile_get(const struct ck_profile *prof, ...) __attribute__((sentinel));
/* Stores up to max values of the relation in vals, in file order; returns how many exist
 * (which may exceed max). */
size_t ck_profile_get_all(const struct ck_profile *prof, const char **vals, size_t max, ...)
    __attribute__((sentinel));
/* Names of the subsections (tag = { ... }) directly under the path, or of the sections when the
 * path is empty; each name once, in order of first appearance. Returns the count (may exceed
 * max). */
size_t ck_profile_subsections(const struct ck_profile *prof, const char **names, size_t max, ...)
    __attribute__((sentinel));
/* Names of the relations directly under the path, each once (e.g. to warn about unknown keys). */
size_t ck_profile_relations(const struct ck_profile *prof, const char **names, size_t max, ...)
    __attribute__((sentinel));

/* The first value of the relation, like ck_profile_get, and where it was read (file and line;
 * NULL and 0 when absent), for error messages that point at the line. */
const char *ck_profile_get_loc(const struct ck_profile *prof, const char **file, int *line, ...)
    __attribute__((sentinel));

/* Calls fn for every node in file order: sections (depth 0), subsections and relations. path
 * holds the depth names above the node; value is NULL for sections and subsections; file and
 * line say where the node was read (a merged section: its first header). A non-zero return
 * stops the walk and is returned. Used to refuse unknown sections and keys. */
typedef int (*ck_profile_walk_fn)(const char *const *path, size_t depth, const char *name,
                                  const char *value, const char *file, int line, void *arg);
int ck_profile_walk(const struct ck_profile *prof, ck_profile_walk_fn fn, void *arg);

/* "36000", "10h", "7d", "1d2h30m", "1d 2h 30m 10s", "10:00" (h:mm), "10:00:00" (h:mm:ss), up to
 * CK_PROFILE_MAX_DURATION seconds. */
int ck_parse_duration(const char *s, int64_t *secs);
/* y/yes/true/t/1/on and n/no/false/nil/0/off, case-insensitive. */
int ck_parse_bool(const char *s, bool *out);

#endif
