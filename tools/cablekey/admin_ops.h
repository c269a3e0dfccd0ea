/* The administrative verbs of the cablekey CLI, in three steps so that the same verbs run
 * against a local store (--db) or a remote admin server (`cablekey --server URL ...`) without
 * reparsing or reprinting anything:
 *
 *   (a) the CLI parses options into a request (struct cli_princ_req, ck_realm_mod);
 *   (b) an executor (struct cli_admin_ops) carries it out and returns records;
 *   (c) a printer shows a record (cli_print_principal, cli_print_realm).
 *
 * Executors never print and never prompt; they return 0 or a negative CK_ERR_* with the
 * context set (ck_error_set), which the CLI prints with cli_fail. Every name they take is
 * canonical ("name@REALM" in the executor's realm; see cli_canonical_name). cli_admin_local
 * runs them on an open ck_store (ctx = the ck_store *); cli_admin_remote implements the same
 * table over the admin API of cablekey-admind (ctx = its struct cli_remote *). */
#ifndef CABLEKEY_ADMIN_OPS_H
#define CABLEKEY_ADMIN_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/store.h"

/* Where new keys come from (add, rotate). */
enum cli_key_source {
    CLI_KEYS_NONE = 0,   /* no keys requested (modify) */
    CLI_KEYS_RANDOM,     /* random keys */
    CLI_KEYS_PASSWORD,   /* keys derived from password with the default salt */
};

/* Which non-key fields a request sets (cli_princ_req.mask). */
#define CLI_PRINC_MAX_LIFE 0x01
#define CLI_PRINC_MAX_RENEW 0x02
#define CLI_PRINC_EXPIRES 0x04
#define CLI_PRINC_PW_EXPIRES 0x08
#define CLI_PRINC_POLICY 0x10     /* policy (NULL: detach) */

/* One request about one principal. The strings belong to the caller (the password is wiped by
 * it after the call). */
struct cli_princ_req {
    const char *name;           /* canonical */
    unsigned mask;              /* CLI_PRINC_* */
    int64_t max_life, max_renew;/* seconds; 0 = realm default */
    int64_t expires, pw_expires;/* epoch seconds; 0 = never */
    uint32_t attr_set;          /* CK_ATTR_* bits to set ... */
    uint32_t attr_clear;        /* ... and to clear; disjoint (the parser refuses conflicts) */
    enum cli_key_source keys;
    const char *password;       /* CLI_KEYS_PASSWORD */
    size_t password_len;
    size_t n_enctypes;          /* 0: the realm's enctypes */
    int32_t enctypes[CK_STORE_MAX_ENCTYPES];
    unsigned keep;              /* rotate: kvnos kept, 0 = CK_STORE_KEEP_KVNOS */
    const char *policy;         /* CLI_PRINC_POLICY: password policy name, NULL = none. add
                                 * without it: the policy named "default" if there is one (MIT) */
};

/* Which rules a policy change sets (policy_modify's present), in the order of ck_policy; the
 * admin API's CK_ADMIN_POL_* bits are the same. */
#define CLI_POL_MIN_LENGTH 0x01u
#define CLI_POL_MIN_CLASSES 0x02u
#define CLI_POL_HISTORY 0x04u
#define CLI_POL_MIN_LIFE 0x08u
#define CLI_POL_MAX_LIFE 0x10u
#define CLI_POL_MAX_FAILURE 0x20u
#define CLI_POL_FAILURE_INTERVAL 0x40u
#define CLI_POL_LOCKOUT_DURATION 0x80u
#define CLI_POL_ALL 0xffu

/* Called for each name a listing returns, in name order; non-zero stops and is returned. */
typedef int (*cli_name_cb)(const char *name, void *arg);

struct cli_admin_ops {
    /* The realm's settings (name, enctypes, lifetimes, default attributes). */
    int (*realm_get)(void *ctx, ck_realm_info *out);
    /* Changes what mod->mask names (CK_ERR_INVAL if nothing); *out: the settings afterwards. */
    int (*realm_modify)(void *ctx, const ck_realm_mod *mod, ck_realm_info *out);
    /* A copy of one record; the printers never show key bytes, so a remote executor may return
     * records without key contents (enctype, kvno and salt only). */
    int (*princ_get)(void *ctx, const char *name, ck_db_principal **out);
    /* Names matching the glob pattern (fnmatch, '*' crosses '/'; NULL = all), name order. */
    int (*princ_list)(void *ctx, const char *pattern, cli_name_cb cb, void *arg);
    /* Creates a principal: attributes = the realm's default_attributes, then attr_set, then
     * attr_clear; fields in mask; keys per req->keys (CLI_KEYS_NONE is CK_ERR_INVAL) at kvno 1.
     * CK_ERR_EXISTS if present. */
    int (*princ_add)(void *ctx, const struct cli_princ_req *req);
    /* Applies mask and attribute changes to an existing principal; keys untouched. */
    int (*princ_modify)(void *ctx, const struct cli_princ_req *req);
    /* New keys per req->keys (not NONE) as the next kvno, keeping req->keep kvnos. A password
     * is a password change (ck_store_change_password, as an administrator): the principal's
     * policy applies, and enctypes/keep must be left 0. */
    int (*princ_rotate)(void *ctx, const struct cli_princ_req *req, uint32_t *new_kvno);
    /* Clears the failed-authentication count (ck_store_unlock_principal). */
    int (*princ_unlock)(void *ctx, const char *name);
    /* CK_ERR_POLICY for the realm's own krbtgt or a principal devices map to. */
    int (*princ_delete)(void *ctx, const char *name);
    /* Keys keep their salts (passwords keep working); see ck_store_rename_principal. */
    int (*princ_rename)(void *ctx, const char *old_name, const char *new_name);
    /* Password policies (ck_store_*_policy). get: the record with its read-only fields. */
    int (*policy_get)(void *ctx, const char *name, ck_policy *out);
    /* Policy names in name order. */
    int (*policy_list)(void *ctx, cli_name_cb cb, void *arg);
    /* Creates pol (name and rules); CK_ERR_EXISTS if the name is taken. */
    int (*policy_add)(void *ctx, const ck_policy *pol);
    /* Sets the rules of rules named in present (CLI_POL_*, at least one) on an existing policy,
     * keeping the others. */
    int (*policy_modify)(void *ctx, const char *name, const ck_policy *rules, unsigned present);
    /* CK_ERR_POLICY while principals use it. */
    int (*policy_delete)(void *ctx, const char *name);
    /* Devices, read only (the admin API does not change them). get: CK_ERR_NOTFOUND if absent;
     * free *out with ck_db_device_free. */
    int (*device_get)(void *ctx, const char *mac, ck_db_device **out);
    /* As ck_store_list_devices: up to limit (1..CK_DEVICE_LIST_MAX) devices in MAC order after
     * after (NULL: from the first), of principal (canonical; NULL: all); *n: how many. */
    int (*device_list)(void *ctx, const char *principal, const char *after, size_t limit,
                       ck_store_device_cb cb, void *arg, size_t *n);
};

extern const struct cli_admin_ops cli_admin_local; /* ctx: an open ck_store * */

/* The admin API client (admin_remote.c): ctx is a struct cli_remote *. url is the server's
 * base URL, https://HOST[:PORT] (port 8749 if none), or http:// to a loopback address only;
 * ca_file (NULL: the system store) verifies the server's certificate. CK_ERR_INVAL for a URL
 * that is refused (a usage error). */
extern const struct cli_admin_ops cli_admin_remote;
struct cli_remote;
int cli_remote_open(const char *url, const char *ca_file, struct cli_remote **out);
void cli_remote_close(struct cli_remote *r);

/* The executor a verb runs on: cli_admin_remote if a server is given (server, or --server
 * before the command: cli_global_server), else cli_admin_local on the store db. Usage errors
 * (--server with --db or --stash, --ca without --server, a refused URL) and failures are
 * printed; returns CLI_OK, CLI_FAIL or CLI_USAGE. */
struct cli_executor {
    const struct cli_admin_ops *ops;
    void *ctx;
    ck_store *store;            /* local */
    struct cli_remote *remote;  /* remote */
};
int cli_executor_open(const char *what, const char *db, const char *stash, const char *server,
                      const char *ca, bool readonly, struct cli_executor *out);
void cli_executor_close(struct cli_executor *e);

/* Printers, on standard output: what `principal show` and `realm show` print, from the record
 * alone (never key bytes). ri supplies the realm defaults a principal's 0 lifetimes stand for. */
void cli_print_principal(const ck_db_principal *p, const ck_realm_info *ri);
void cli_print_realm(const ck_realm_info *ri);
/* "<label>: NAME NAME ..." with MIT's names for the attribute bits (REQUIRES_PRE_AUTH,
 * DISALLOW_FORWARDABLE...), unknown bits in hex, nothing after the colon for 0. */
void cli_print_attributes(const char *label, uint32_t attributes);
/* The policy and lockout lines of `principal show` (policy.c): policy, last password change,
 * last successful and failed authentication, failed attempts, locked state. */
void cli_print_principal_policy(const ck_db_principal *p);
/* What `device show` prints, and one line of `device list` (device.c). */
void cli_print_device(const ck_db_device *d);
void cli_print_device_line(const ck_db_device *d);
/* What `policy show` prints (policy.c). */
void cli_print_policy(const ck_policy *pol);
/* Applies the rules of rules named in present (CLI_POL_*) to pol (policy.c). */
void cli_policy_apply_rules(ck_policy *pol, const ck_policy *rules, unsigned present);
/* For an executor creating p from req (policy.c): attaches req's policy (or "default" if it
 * exists and req names none), checks a password against its rules, and sets last_pwd_change
 * and, unless req sets it, pw_expires from the policy's max life. */
int cli_policy_new_principal(ck_store *store, const struct cli_princ_req *req,
                             ck_db_principal *p);

/* The principal flags an operator sets with --FLAG / --no-FLAG style pairs (principal add and
 * modify, realm modify for the default). on_means_clear: the bit is a DISALLOW_* one. */
struct cli_flag {
    const char *on, *off;
    uint32_t bit;
    bool on_means_clear;
};
extern const struct cli_flag cli_flags[];
extern const size_t cli_n_flags;

/* getopt_long's table for a verb family with flags: the n_fixed options of fixed, then the
 * flags' --on/--off options with codes base + 2i and base + 2i + 1, then the terminating entry,
 * all within room entries. */
struct option;
void cli_flag_options(struct option *opts, size_t room, const struct option *fixed,
                      size_t n_fixed, int base);
/* Records flag option code c in *set_bits / *clear_bits (a pair given both ways is a usage
 * error: CLI_USAGE, message printed) and the first flag's option name in *first (may be NULL). */
int cli_flag_apply(const char *what, int c, int base, uint32_t *set_bits, uint32_t *clear_bits,
                   const char **first);

#endif
