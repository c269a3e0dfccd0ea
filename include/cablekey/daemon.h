/* The shared daemon layer: what every cablekey daemon (the KDC now; key management, provisioning,
 * keying and administration next) does the same way around its own protocol.
 *
 *   - common flags (-c/--config, --check, --log, --log-level, --pid-file, --user) and the usage
 *     lines that describe them;
 *   - configuration that fails closed: a table of the keys a daemon reads (one line per key)
 *     against which a profile is validated; an unknown section or key is an error with its
 *     file and line;
 *   - log destinations in MIT's [logging] syntax, checked for --check, reopened on SIGHUP;
 *   - signals through a signalfd: SIGTERM/SIGINT stop, SIGHUP has one meaning, "re-read the
 *     configuration and reopen the logs", driven by ck_daemon_loop with the systemd
 *     notifications around it;
 *   - pid file; systemd's notify protocol without libsystemd (one datagram to $NOTIFY_SOCKET);
 *   - privilege drop after binding (setgroups, setgid, setuid; no way back).
 *
 * The start-up order a daemon follows (cablekey-kdc's main.c is the reference):
 *   parse flags -> load + validate config -> --check? -> open log -> ck_daemon_signals_init ->
 *   pid file -> bind sockets -> ck_daemon_drop_privileges -> reopen log as the service user ->
 *   open databases/keys -> start workers -> READY=1 -> ck_daemon_loop -> STOPPING=1. */
#ifndef CABLEKEY_DAEMON_H
#define CABLEKEY_DAEMON_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cablekey/log.h"
#include "cablekey/profile.h"

/* ---- common flags ------------------------------------------------------------------------ */

enum {
    CK_DAEMON_OPT_CHECK = 0x1000,
    CK_DAEMON_OPT_LOG,
    CK_DAEMON_OPT_LOG_LEVEL,
    CK_DAEMON_OPT_PID_FILE,
    CK_DAEMON_OPT_USER,
    CK_DAEMON_OPT_VERSION,
};

/* Entries for a struct option array ('c' and 'h' are the short options). */
#define CK_DAEMON_LONGOPTS                                                                   \
    {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, CK_DAEMON_OPT_CHECK}, \
        {"log", required_argument, NULL, CK_DAEMON_OPT_LOG},                                 \
        {"log-level", required_argument, NULL, CK_DAEMON_OPT_LOG_LEVEL},                     \
        {"pid-file", required_argument, NULL, CK_DAEMON_OPT_PID_FILE},                       \
        {"user", required_argument, NULL, CK_DAEMON_OPT_USER},                               \
        {"version", no_argument, NULL, CK_DAEMON_OPT_VERSION},                               \
        {"help", no_argument, NULL, 'h'}

struct ck_daemon_opts {
    const char *config;      /* -c; NULL: the daemon's default path, which may be absent */
    bool check;
    const char *log;         /* --log DEST */
    const char *log_level;
    const char *pid_file;
    const char *user;
    bool version, help;
    /* A daemon that opens the realm store parses --db PATH|URI and --stash FILE itself (they
     * override its configuration); NULL: not given. */
    const char *db, *stash;
};

/* Takes one getopt result: true if it was a common flag (stored in o). */
bool ck_daemon_opt(struct ck_daemon_opts *o, int c, const char *arg);
/* The usage lines of the common flags. */
void ck_daemon_usage_common(FILE *out, const char *default_config);
/* After getopt: --version and --help print (usage(stdout)) and end the run; a left-over
 * argument is a usage error. Returns the exit code to end with, or -1 to go on. first_operand
 * is getopt's optind. */
int ck_daemon_opts_finish(const struct ck_daemon_opts *o, const char *prog,
                          void (*usage)(FILE *out), int argc, char **argv, int first_operand);
/* The usage lines of --db and --stash (a daemon that opens the realm store). */
void ck_daemon_usage_store(FILE *out);
/* The whole command line of a daemon whose flags are the common ones plus --db and --stash
 * (cablekey-admind, cablekey-prov): o is reset first. A wrong flag prints usage(stderr) and
 * ends with 2. Returns -1 to go on, else the exit status (ck_daemon_opts_finish). */
int ck_daemon_parse_store_args(int argc, char **argv, struct ck_daemon_opts *o, const char *prog,
                               void (*usage)(FILE *out));
/* "PROG: what: <error context>" on stderr: how every daemon reports a failed start or check. */
void ck_daemon_print_error(const char *prog, const char *what);

/* ---- configuration ----------------------------------------------------------------------- */

#define CK_CONF_TOP 0x1u   /* directly in [section] */
#define CK_CONF_SUB 0x2u   /* in a subsection of [section] (e.g. [realms] REALM = { ... }) */

/* One key a daemon reads: a table of these is the whole schema. Sections are the ones the
 * table names; a subsection is allowed only in a section with CK_CONF_SUB keys, one level. */
struct ck_conf_key {
    const char *section;
    const char *name;
    unsigned where;        /* CK_CONF_TOP and/or CK_CONF_SUB */
};

/* Refuses (CK_ERR_CONFIG, "file:line: unknown ...") the first section, subsection or relation
 * the table does not allow, suggesting a near name ("did you mean [kdcdefaults]?"). */
int ck_conf_validate(const struct ck_profile *prof, const struct ck_conf_key *keys, size_t n);

/* Sets a CK_ERR_CONFIG error "file:line: section/key = "value": msg" for the relation at path
 * (section, [subsection,] key, NULL); without a location just "key = ...". Returns the code. */
int ck_conf_error(const struct ck_profile *prof, int code, const char *msg, ...)
    __attribute__((sentinel));
/* The single value of section.key in a daemon's flat section, or NULL when absent; a key given
 * more than once, or empty, is a configuration error naming file:line. */
int ck_conf_get_one(const struct ck_profile *prof, const char *section, const char *key,
                    const char **out);
/* *out = a copy of flag when given (a command-line flag wins), else of the key's single value;
 * left alone when neither is there. */
int ck_conf_dup(const struct ck_profile *prof, const char *section, const char *key,
                const char *flag, char **out);
/* An integer in min..max ("expected MIN..MAX" otherwise); a duration ("90s", "1h", seconds) in
 * min..max seconds. Both return 1 when the key is absent (*out untouched), 0 when set. */
int ck_conf_get_int(const struct ck_profile *prof, const char *section, const char *key,
                    int64_t min, int64_t max, int64_t *out);
int ck_conf_get_duration(const struct ck_profile *prof, const char *section, const char *key,
                         int64_t min, int64_t max, int64_t *out);
/* The limits of an HTTP front (cablekey-admind, cablekey-prov): max_body (1 KiB..max_max_body
 * bytes), max_connections (1..1024), timeout (a duration, 1 s..1 h). A key that is absent
 * leaves its value (the caller's default) alone. */
int ck_conf_get_http_limits(const struct ck_profile *prof, const char *section,
                            size_t max_max_body, size_t *max_body, unsigned *max_connections,
                            unsigned *timeout);
/* Each of keys (NULL-terminated) must be in the section: "PATH: [SECTION] KEY is required". */
int ck_conf_require(const struct ck_profile *prof, const char *path, const char *section,
                    const char *const *keys);
/* A store location (the database key or --db) that does not parse (an unknown scheme, a
 * PostgreSQL password in it) fails --check and a reload here, in a front too, which never opens
 * the store: "PATH: [SECTION] database (--db): why". */
int ck_conf_check_database(const char *path, const char *section, const char *database);
/* Every value of a repeatable key, copied to out[*n_out...] (the caller frees them); more than
 * max values is an error. */
int ck_conf_get_list(const struct ck_profile *prof, const char *section, const char *key,
                     char **out, size_t max, size_t *n_out);

/* ---- logging ----------------------------------------------------------------------------- */

struct ck_log_target;
/* The keys log (MIT's [logging] syntax: FILE:/path, FILE=/path, SYSLOG[:LEVEL[:FACILITY]],
 * STDERR, CONSOLE; a bare absolute path is still a file) and log_level of a daemon's section,
 * with --log and --log-level (o, may be NULL) over them. Errors name file:line. */
int ck_conf_get_log(const struct ck_profile *prof, const char *section,
                    const struct ck_daemon_opts *o, struct ck_log_target *log, int *level);

struct ck_log_target {
    enum ck_log_dest dest;
    char path[4096];       /* CK_LOG_FILE */
    int level;             /* a level named by the spec (SYSLOG:LEVEL), else -1 */
};

/* MIT's [logging] syntax: STDERR, CONSOLE (taken as stderr: under a service manager that is
 * the journal), SYSLOG[:LEVEL[:FACILITY]], FILE:/path, FILE=/path (appended to, not truncated).
 * Anything else (DEVICE=, a bare word) is refused, never taken as a file name. flag: the --log
 * flag's forms are also accepted: stderr, syslog, console and a path containing '/'. */
int ck_log_target_parse(const char *spec, bool flag, struct ck_log_target *t);
/* "stderr", "syslog", "file /var/log/x.log". */
const char *ck_log_target_describe(const struct ck_log_target *t, char *buf, size_t size);
/* That a file destination can be opened for appending now (by this process's identity), without
 * creating it: an existing file is opened, a missing one needs a writable directory. */
int ck_log_target_check(const struct ck_log_target *t);

/* ---- processes --------------------------------------------------------------------------- */

/* Writes the pid (decimal, newline) to path through a temporary file and rename. */
int ck_daemon_pidfile_write(const char *path);
/* That the pid file's directory exists and is writable (for --check). */
int ck_daemon_pidfile_check(const char *path);
/* Removes the pid file if it still holds this process's pid; quiet on failure (a service
 * user may not be allowed to remove what root wrote; the stale file names a dead pid). */
void ck_daemon_pidfile_remove(const char *path);

struct ck_daemon_user {
    char name[64];
    uid_t uid;
    gid_t gid;
};

/* Looks the user up (name or numeric uid) in the password database. */
int ck_daemon_user_lookup(const char *name, struct ck_daemon_user *u);
/* Becomes u for good: supplementary groups (initgroups), gid, uid; then checks that root cannot
 * be regained. Call after binding, before opening databases and keys, and before any thread
 * exists (the change must hold for every thread started later). Already u: nothing to do. */
int ck_daemon_drop_privileges(const struct ck_daemon_user *u);
/* --check steps every daemon shares, each printing its line on stdout ("pid file: PATH",
 * "user: NAME (uid U, gid G)") or its error through ck_daemon_print_error; 0 or -1.
 * check_user looks the user up and, with drop, becomes it, so that what follows is checked as
 * the running daemon will be (*out may be NULL). */
int ck_daemon_check_pidfile(const char *prog, const char *path);
int ck_daemon_check_user(const char *prog, const char *name, bool drop, struct ck_daemon_user *out);

/* ---- systemd notify ---------------------------------------------------------------------- */

/* sd_notify(3) without libsystemd: one datagram ("READY=1", "STATUS=...", several lines
 * allowed) to $NOTIFY_SOCKET, a path or an abstract name starting with '@'. Without the
 * variable nothing is sent and 0 is returned. */
int ck_daemon_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- signals ----------------------------------------------------------------------------- */

/* Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread (threads created afterwards
 * inherit the mask) and returns a signalfd for the first three. Call before any thread. */
int ck_daemon_signals_init(int *sfd);

/* Re-reads the configuration and reopens the logs (SIGHUP). Returns 0 when the new
 * configuration is in effect, else an error (then the old one must still be running); status
 * gets a one-line summary for the service manager. */
typedef int (*ck_daemon_reload_fn)(void *arg, char *status, size_t status_size);

/* Waits for signals until SIGTERM or SIGINT: on SIGHUP sends RELOADING=1 (with
 * MONOTONIC_USEC), calls reload and sends READY=1 with its status. Sends STOPPING=1 before
 * returning the signal that stopped it. */
int ck_daemon_loop(int sfd, ck_daemon_reload_fn reload, void *arg);

/* ---- a daemon split into a front and a back process (cablekey-admind, cablekey-prov) ----- */

/* The start once the configuration is loaded and checked: the log (a file one goes to stderr
 * until each process opens it as its final user), the signals, the pid file, then the back
 * process forked over a socketpair before the front has a socket, a keytab or a TLS key; the
 * front runs once the back has said it is ready. The pid file is removed on the way out.
 * Returns the exit status (front_run's, or 1). */
struct ck_daemon_split {
    const char *prog;
    const struct ck_log_target *log;
    int log_level;
    const char *pid_file;                                   /* NULL: none */
    void (*back_main)(void *arg, int fd);                   /* the child; never returns */
    int (*back_ready)(void *arg, int fd);                   /* 0: the back's first message
                                                             * says it started (else logged) */
    int (*front_run)(void *arg, int sfd, int back_fd, pid_t back_pid);
    void *arg;
};
int ck_daemon_split_run(const struct ck_daemon_split *s);

#endif
