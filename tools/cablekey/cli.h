/* Shared helpers of the cablekey operator CLI. Every subcommand returns the process exit code:
 * 0 success, 1 failure (one line on stderr), 2 usage error. */
#ifndef CABLEKEY_CLI_H
#define CABLEKEY_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/store.h"

#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2
#define CLI_PASSWORD_MAX 1024

/* Subcommand entry points: argv[0] is the subcommand's own name. */
int cli_init(int argc, char **argv);
int cli_principal(int argc, char **argv);
int cli_keytab(int argc, char **argv);
int cli_device(int argc, char **argv);
int cli_pki(int argc, char **argv);
int cli_mta(int argc, char **argv);
int cli_db(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_policy(int argc, char **argv);

/* The policy parts of `cablekey principal` (policy.c). For a new record p: attaches policy (or
 * MIT's "default" policy if one exists, unless clear), checks password (may be NULL) against it
 * and sets last_pwd_change and pw_expires (max life, unless explicit_pw_expires). */
int cli_principal_new_policy(const char *what, ck_store *store, const char *policy, bool clear,
                             ck_db_principal *p, const char *password, size_t password_len,
                             bool explicit_pw_expires);
/* --policy NAME / --clear-policy on an existing principal (nothing if neither). */
int cli_principal_set_policy(const char *what, ck_store *store, const char *name,
                             const char *policy, bool clear);
/* An administrator's password set through ck_store_change_password (policy checked). */
int cli_principal_change_password(const char *what, ck_store *store, const char *name,
                                  const char *password, size_t password_len, uint32_t *kvno);
/* The `principal show` lines: policy, last password change, last success/failure, failure
 * count, locked state. */
void cli_principal_show_policy(ck_store *store, const ck_db_principal *p);
int cli_principal_unlock(const char *what, ck_store *store, const char *name);

/* Prints "cablekey: <what>: <message>" where message is the error context (or its name). */
int cli_fail(const char *what, int err);
/* Prints "cablekey: <what>: <message>" and the hint to use --help; returns CLI_USAGE. */
int cli_usage_error(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Durations: seconds, or krb5 style "10h", "7d", "1d12h", "30m", "90s". */
int cli_parse_duration(const char *s, int64_t *out);
/* Absolute times: epoch seconds, "YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS]" or with 'T' (UTC). */
int cli_parse_time(const char *s, int64_t *out);
/* Comma- or space-separated enctype names/numbers. */
int cli_parse_enctypes(const char *s, int32_t *out, size_t max, size_t *n);
/* Reads one line from stdin as the password (newline stripped); *pw wiped by the caller with
 * cli_password_free. Never echoes. */
int cli_read_password_stdin(char **pw, size_t *len);
void cli_password_free(char *pw, size_t len);

/* The audit actor of this process (db.c): "uid 1000 (alice)", "uid 0 (root) via sudo alice". */
void cli_actor(char *buf, size_t size);
/* Opens the store, with cli_actor as the audit actor; stash NULL = db + ".stash". */
int cli_open_store(const char *what, const char *db, const char *stash, bool readonly,
                   ck_store **out);
/* Canonical "name@REALM" for a user-given name (the store's realm if none); malloc'd. */
int cli_canonical_name(const char *what, const ck_store *store, const char *name, char **out);

/* Human-readable formatting helpers for `principal show`. */
void cli_format_duration(int64_t secs, char *buf, size_t size);
void cli_format_time(int64_t t, char *buf, size_t size);

#endif
