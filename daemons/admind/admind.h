/* cablekey-admind: the admin API daemon (operator documentation: docs/cablekey-admind.md).
 *
 * Two processes, split so that the code that parses HTTP never holds the realm's keys:
 *
 *   front (front.c)  the process started by the operator. Listens, speaks HTTP through
 *                    libmicrohttpd, authenticates with SPNEGO (MIT GSSAPI, HTTP/ keytab), checks
 *                    the ACL and decodes the JSON bodies. It never opens the database or the
 *                    stash; it holds only the HTTP service key.
 *   back (back.c)    forked before anything else is set up, connected by a socketpair. Opens the
 *                    store (master key, decrypted principal keys) and executes a closed list of
 *                    operations on validated arguments (ipc.c framing). It answers with records
 *                    that never contain key material.
 *
 * A memory-disclosure or parsing bug in the front thus reaches at most the HTTP service key and
 * the passwords of requests in flight, not the master key or the KDC's keys. */
#ifndef CABLEKEY_ADMIND_H
#define CABLEKEY_ADMIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/daemon.h"
#include "cablekey/log.h"

#define ADMIND_PROG "cablekey-admind"
#define ADMIND_DEFAULT_CONFIG "/etc/cablekey/admind.conf"
#define ADMIND_DEFAULT_PORT 8749
#define ADMIND_MAX_LISTEN 8
#define ADMIND_DEFAULT_MAX_BODY (64 * 1024)
#define ADMIND_MAX_MAX_BODY (256 * 1024)    /* = CK_ADMIN_JSON_MAX */
#define ADMIND_DEFAULT_MAX_CONNECTIONS 32
#define ADMIND_DEFAULT_TIMEOUT 30           /* seconds a connection may stay idle */
#define ADMIND_HEADER_MEMORY (64 * 1024)    /* per connection: request line and headers */
#define ADMIND_LIST_MAX 10000               /* names per list page */
#define ADMIND_LIST_MAX_BYTES (2 * 1024 * 1024) /* a page ends early past this many name bytes */
#define ADMIND_DEVICE_LIST_MAX 1000         /* devices per page (a record is up to ~2 KiB) */

/* ----------------------------------------------------------------------- config.c */

struct admind_config {
    const struct ck_daemon_opts *opts; /* the flags it was loaded with (NULL: built by a test) */
    char *config_path;
    char *realm;
    char *database;
    char *stash;                 /* NULL: database + ".stash" */
    char *keytab;                /* the HTTP/host@REALM key(s) the front accepts with */
    char *acl_file;
    char *listen[ADMIND_MAX_LISTEN];
    size_t n_listen;             /* 0: the loopback defaults */
    char *tls_certificate;       /* PEM; both or neither */
    char *tls_key;
    char *pid_file;              /* pid_file, or --pid-file */
    char *user;                  /* service user (user, or --user): the back runs as it, and the
                                    front too unless front_user names another */
    char *front_user;            /* user the front switches to when started as root */
    struct ck_log_target log;    /* log (MIT [logging] syntax), or --log */
    int log_level;              /* log_level, or --log-level */
    size_t max_body;
    unsigned max_connections;
    unsigned timeout;
};

/* Reads the [admind] section (path: o->config, else the default) and applies the flags of o
 * over it; unknown sections and keys are errors with file:line. Used at start and on SIGHUP. */
int admind_config_load(const struct ck_daemon_opts *o, struct admind_config *cfg);
void admind_config_free(struct admind_config *cfg);

/* ----------------------------------------------------------------------- ipc.c */

/* Frames on the socketpair: a 4-byte big-endian length, then that many bytes of JSON. */
#define ADMIND_IPC_MAX_REQUEST (512 * 1024)
#define ADMIND_IPC_MAX_REPLY (8 * 1024 * 1024)

int admind_ipc_send(int fd, const char *buf, size_t len);
/* *out is malloc'd and NUL-terminated; CK_ERR_NOTFOUND at a clean end of stream. */
int admind_ipc_recv(int fd, size_t max, char **out, size_t *out_len);

/* ----------------------------------------------------------------------- back.c */

/* Runs the back process: becomes the service user (cfg->user, if any), opens its log and the
 * store, reports readiness ("ok" or an error) on fd, then serves requests until the front closes
 * the channel. On op "reload" it re-reads the configuration (cfg->opts) and applies its log
 * settings, nothing else: the front cannot name a file for it to open. Never returns. */
void admind_back_main(const struct admind_config *cfg, int fd) __attribute__((noreturn));

/* ----------------------------------------------------------------------- front.c */

/* Runs the front: HTTP, authentication, ACL; back_fd talks to the back process (back_pid).
 * sfd: the daemon layer's signalfd (SIGHUP re-reads the configuration, cfg->opts). Sends
 * READY=1 once serving. Returns the process exit status. */
int admind_front_run(struct admind_config *cfg, int sfd, int back_fd, int back_pid);
/* The listen addresses: numeric, and loopback unless TLS is configured (nothing is bound). */
int admind_listen_validate(const struct admind_config *cfg);
/* --check: what the front needs (ACL, keytab, listen addresses, TLS files). */
int admind_front_check(const struct admind_config *cfg);

#endif
