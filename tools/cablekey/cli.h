/* Shared helpers of the cablekey operator CLI. Every subcommand returns the process exit code:
 * 0 success, 1 failure (one line on stderr), 2 usage error. */
#ifndef CABLEKEY_CLI_H
#define CABLEKEY_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cablekey/store.h"

#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2
#define CLI_PASSWORD_MAX 1024

/* Options given before the command (`cablekey --server URL [--ca FILE] principal ...`), for
 * the families with a remote executor (admin_ops.h); NULL if not given. */
extern const char *cli_global_server, *cli_global_ca;

/* Subcommand entry points: argv[0] is the subcommand's own name. */
int cli_init(int argc, char **argv);
int cli_principal(int argc, char **argv);
int cli_keytab(int argc, char **argv);
int cli_device(int argc, char **argv);
int cli_pki(int argc, char **argv);
int cli_mta(int argc, char **argv);
int cli_mta_kmm(int argc, char **argv); /* mta_kmm.c: `cablekey mta kmm` */
int cli_mta_router_auth(int argc, char **argv); /* router.c: `cablekey mta router-auth` */
int cli_router(int argc, char **argv);          /* router.c: `cablekey router serve` */
/* One --kdc ADDR of the mta verbs into kdcs (at most CK_KDC_MAX_KDCS, none empty): CLI_OK or
 * a usage error. */
int cli_mta_add_kdc(const char *what, const char *addr, const char **kdcs, size_t *n_kdcs);
int cli_mta_phone(int argc, char **argv); /* mta_phone.c: `cablekey mta phone` */
/* mta_prov.c: the provisioning verbs (`mta boot|fetch-cert|status|...`); argv[0] is the verb. */
bool cli_mta_prov_verb(const char *verb);
int cli_mta_prov(int argc, char **argv);
/* --cms ADDR[:PORT][,ADDR[:PORT]...] (port 1293 if none; one address family) resolved into out
 * (at most CK_ENDPOINT_MAX_CMS), each with the given ESP port: CLI_OK or a usage error. */
struct ck_endpoint_cms;
int cli_mta_parse_cms(const char *what, const char *list, uint16_t sig_port,
                      struct ck_endpoint_cms *out, size_t *n);
/* This host's name for "aaln/1@HOST" ("localhost" when it has none usable). */
void cli_mta_hostname(char *host, size_t size);
/* Binds fd to the wildcard address of family, an ephemeral port: 0 or -1 (errno). */
int cli_mta_bind_any(int fd, int family);
int cli_realm(int argc, char **argv);
int cli_ksv(int argc, char **argv); /* ksv.c: the keying server's operator view */
int cli_db(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_policy(int argc, char **argv);
int cli_intercept(int argc, char **argv); /* intercept.c: lawful intercept */
int cli_node(int argc, char **argv);      /* node.c: the keying server's node agent */
int cli_keytab_agent(int argc, char **argv); /* keytab_agent.c: `cablekey keytab-agent` */
/* rotation.c: `cablekey rotation ...`; `rotation master-key VERB ...` (argv[0] "master-key")
 * goes to rotation_mkey.c. */
int cli_rotation(int argc, char **argv);
int cli_rotation_master_key(int argc, char **argv);
int cli_alarms(int argc, char **argv);    /* alarms.c: the KDCs' alarm table */
int cli_customer(int argc, char **argv);  /* customer.c: cablekey-prov's customer accounts */


/* Prints "cablekey: <what>: <message>" where message is the error context (or its name). */
int cli_fail(const char *what, int err);
/* Prints "cablekey: <what>: <message>" and the hint to use --help; returns CLI_USAGE. */
int cli_usage_error(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Durations: seconds, or krb5 style "10h", "7d", "1d12h", "30m", "90s". */
int cli_parse_duration(const char *s, int64_t *out);
/* Absolute times: epoch seconds, "YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS]" or with 'T' (UTC), up
 * to CLI_TIME_MAX. Strict: fixed field widths, nothing before or after, and a date that does
 * not exist (2027-02-30, 24:00) is refused rather than normalised. */
#define CLI_TIME_MAX INT64_C(253402300799) /* 9999-12-31 23:59:59 */
int cli_parse_time(const char *s, int64_t *out);
/* Comma- or space-separated enctype names/numbers. */
int cli_parse_enctypes(const char *s, int32_t *out, size_t max, size_t *n);
/* The password for principal `name` from standard input: on a terminal, asked twice with echo
 * off (a mismatch is CK_ERR_INVAL and nothing is returned); otherwise one line (newline
 * stripped). Empty passwords are refused. *pw is freed (and wiped) with cli_password_free. */
int cli_read_password(const char *name, char **pw, size_t *len);
void cli_password_free(char *pw, size_t len);
/* Confirmation of a destructive verb: CLI_OK with yes (--yes); else on a terminal asks question
 * and accepts only "yes" (CLI_FAIL otherwise); from a non-terminal it is a usage error. */
int cli_confirm(const char *what, bool yes, const char *question);

/* The getopt_long results every verb's option loop (opterr = 0, optstring ":h") treats alike:
 * 'h' or help_opt (--help) prints help (only the verb's lines when help lists the verb that
 * what, "FAMILY VERB", names) and returns CLI_HELP_SHOWN, which the family turns into success;
 * ':' is an option missing its value, anything else an unknown option (CLI_USAGE). Uses
 * optind. */
#define CLI_HELP_SHOWN (-1)
int cli_getopt_other(const char *what, int c, int help_opt, char **argv, const char *help);
/* The start of every verb family's entry point: without a verb, the help on stderr and
 * *rc = CLI_USAGE; with -h or --help, the help and notes (may be NULL) on stdout and *rc =
 * CLI_OK; true if it did either (the family returns *rc). */
bool cli_family_help(int argc, char **argv, const char *help, const char *notes, int *rc);
/* "cablekey FAMILY: unknown subcommand 'VERB'" on stderr; returns CLI_USAGE. */
int cli_unknown_verb(const char *family, const char *verb);
/* CLI_OK if arg (the first argument left over, NULL if none) is NULL, else a usage error. */
int cli_no_more_args(const char *what, const char *arg);

/* Per-verb help. A family's help text lists each verb on a line "  VERB ..." (continuations
 * indented further), then a blank line and notes. Prints "usage: cablekey FAMILY" with the
 * verb's lines and the notes; false if the text has no such verb. */
bool cli_verb_help(FILE *f, const char *family, const char *help, const char *verb);

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
