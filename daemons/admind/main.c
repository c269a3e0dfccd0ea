/* cablekey-admind: the admin API daemon, on the shared daemon layer (include/cablekey/daemon.h)
 * and its start-up order:
 *   flags -> configuration (validated) -> --check? -> log (stderr until each process has its
 *   user) -> signals -> pid file -> fork the back process (which becomes the service user, opens
 *   its log and the store) -> the front binds, becomes its user, opens its log, serves ->
 *   READY=1 -> ck_daemon_loop (SIGHUP: re-read the configuration, reopen the logs) -> STOPPING=1.
 * The process split is described in admind.h and docs/cablekey-admind.md. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admind.h"
#include "cablekey/admin.h"
#include "cablekey/daemon.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

static void
usage(FILE *out)
{
    fprintf(out, "usage: " ADMIND_PROG " [options]\n");
    ck_daemon_usage_common(out, ADMIND_DEFAULT_CONFIG);
    ck_daemon_usage_store(out);
    fprintf(out, "The flags override their [admind] keys (log, log_level, pid_file, user,\n"
                 "database, stash).\n"
                 "SIGHUP re-reads the configuration (ACL, log) and reopens the logs; SIGTERM "
                 "stops.\n");
}

static void
print_error(const char *what)
{
    ck_daemon_print_error(ADMIND_PROG, what);
}


/* --check: everything a start needs, in this process (nothing is served). What the front needs
 * (ACL, keytab, TLS files, listen addresses, pid file directory) is checked as the starting user;
 * the database, the stash and the log, which the back process opens after becoming the service
 * user, are checked as that user. */
static int
run_check(const struct admind_config *cfg)
{
    struct ck_daemon_user u;
    ck_store *store = NULL;
    char desc[4200];
    int rc;

    printf("config: %s\nrealm: %s\n", cfg->config_path, cfg->realm);
    if ((rc = admind_front_check(cfg)) != 0) {
        print_error("check failed");
        return 1;
    }
    if (cfg->pid_file != NULL) {
        if (ck_daemon_pidfile_check(cfg->pid_file) != 0) {
            print_error("check failed");
            return 1;
        }
        printf("pid file: %s\n", cfg->pid_file);
    }
    if (cfg->front_user != NULL && ck_daemon_user_lookup(cfg->front_user, &u) != 0) {
        print_error("check failed: front_user");
        return 1;
    }
    if (cfg->user != NULL) {
        if (ck_daemon_user_lookup(cfg->user, &u) != 0) {
            print_error("check failed: user");
            return 1;
        }
        if (ck_daemon_drop_privileges(&u) != 0) {
            print_error("check failed: user");
            return 1;
        }
        printf("user: %s (uid %u, gid %u)\n", u.name, (unsigned)u.uid, (unsigned)u.gid);
    }
    if ((rc = ck_store_open(cfg->database, cfg->stash, CK_STORE_READONLY, &store)) != 0) {
        fprintf(stderr, ADMIND_PROG ": check failed: database %s: %s: %s%s%s\n", cfg->database,
                ck_strerror(rc), ck_error_context(), cfg->user != NULL ? " as user " : "",
                cfg->user != NULL ? cfg->user : "");
        return 1;
    }
    if (strcmp(ck_store_realm(store)->name, cfg->realm) != 0) {
        fprintf(stderr, ADMIND_PROG ": check failed: database %s holds realm %s, not %s\n",
                cfg->database, ck_store_realm(store)->name, cfg->realm);
        ck_store_close(store);
        return 1;
    }
    ck_store_close(store);
    printf("database: %s\n", cfg->database);
    if (ck_log_target_check(&cfg->log) != 0) {
        fprintf(stderr, ADMIND_PROG ": check failed: log: %s%s%s\n", ck_error_context(),
                cfg->user != NULL ? " as user " : "", cfg->user != NULL ? cfg->user : "");
        return 1;
    }
    printf("log: %s (level %s)\n", ck_log_target_describe(&cfg->log, desc, sizeof(desc)),
           ck_log_level_name(cfg->log_level));
    printf("configuration OK\n");
    return 0;
}

/* The back process (ck_daemon_split_run forks it before the front has a socket, a keytab or a
 * TLS key): it opens the store, then says "ok". */
static void
back_main(void *arg, int fd)
{
    admind_back_main(arg, fd);
}

static int
back_ready(void *arg, int fd)
{
    char *msg = NULL;
    size_t len = 0;
    int rc = -1;

    (void)arg;
    if (admind_ipc_recv(fd, 4096, &msg, &len) == 0 && strcmp(msg, "ok") == 0)
        rc = 0;
    else
        ck_log_err("the store could not be opened: %s", msg != NULL ? msg : "back process died");
    free(msg);
    return rc;
}

static int
front_run(void *arg, int sfd, int back_fd, pid_t back_pid)
{
    return admind_front_run(arg, sfd, back_fd, back_pid);
}

int
main(int argc, char **argv)
{
    static struct ck_daemon_opts o;
    struct admind_config cfg;
    int rc, status = 1;

    memset(&cfg, 0, sizeof(cfg));
    if ((rc = ck_daemon_parse_store_args(argc, argv, &o, ADMIND_PROG, usage)) >= 0)
        return rc;
    /* Passwords pass through jansson: make it wipe what it frees (both processes). */
    ck_admin_json_secure_alloc();
    ck_log_open(ADMIND_PROG, CK_LOG_STDERR, NULL, LOG_INFO);
    if (admind_config_load(&o, &cfg) != 0) {
        print_error("configuration");
        goto out;
    }
    /* Refused here, on stderr, before anything starts: a listen address that would expose the
     * API to the network without TLS. */
    if (admind_listen_validate(&cfg) != 0) {
        print_error("configuration");
        goto out;
    }
    if (o.check) {
        status = run_check(&cfg);
        goto out;
    }
    /* A file log is opened by each process once it runs as its final user (so that reopening it
     * after a rotation needs nothing more); until then messages go to stderr. */
    status = ck_daemon_split_run(&(struct ck_daemon_split){
        .prog = ADMIND_PROG, .log = &cfg.log, .log_level = cfg.log_level,
        .pid_file = cfg.pid_file, .back_main = back_main, .back_ready = back_ready,
        .front_run = front_run, .arg = &cfg});
out:
    ck_log_close();
    admind_config_free(&cfg);
    return status;
}
