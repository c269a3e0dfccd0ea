/* cablekey-prov: the provisioning CA daemon (docs/cablekey-prov.md), on the shared daemon layer
 * and its start-up order:
 *   flags -> configuration (validated) -> --check? -> log (stderr until each process has its
 *   user) -> signals -> pid file -> fork the back process (which forks the signer FIRST, while
 *   it holds nothing, then becomes the service user, opens its log and the store and starts the
 *   UDP servers and the webhook deliveries) -> the front binds, becomes the service user, opens
 *   its log, serves HTTP -> READY=1 -> ck_daemon_loop -> STOPPING=1.
 * The process split is described in prov.h. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cablekey/admin.h"
#include "cablekey/daemon.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "provd.h"

static void
usage(FILE *out)
{
    fprintf(out, "usage: " PROV_PROG " [options]\n");
    ck_daemon_usage_common(out, PROV_DEFAULT_CONFIG);
    ck_daemon_usage_store(out);
    fprintf(out, "The flags override their [prov] keys (log, log_level, pid_file, user,\n"
                 "database, stash).\n"
                 "SIGHUP re-reads the ACL and reopens the logs; SIGTERM stops.\n");
}

static void
print_error(const char *what)
{
    ck_daemon_print_error(PROV_PROG, what);
}


/* A file the signer or the back reads at start: readable now, as the user that will read it. */
static int
check_file(const char *what, const char *path)
{
    if (path == NULL)
        return 0;
    if (access(path, R_OK) != 0) {
        fprintf(stderr, PROV_PROG ": check failed: %s %s: %s\n", what, path, strerror(errno));
        return -1;
    }
    printf("%s: %s\n", what, path);
    return 0;
}

/* --check: everything a start needs, in this process (nothing is served): the front's files
 * (ACL, keytab, TLS identity, listen addresses) as the starting user; the signer's files (CA
 * and phone-ID keys, read before the drop); the store and the log as the service user. */
static int
run_check(const struct prov_config *cfg)
{
    ck_store *store = NULL;
    char desc[4200];
    int rc;

    printf("config: %s\n", cfg->config_path);
    if (prov_front_check(cfg) != 0) {
        print_error("check failed");
        return 1;
    }
    if (check_file("ca_cert", cfg->ca_cert) != 0 || check_file("ca_key", cfg->ca_key) != 0 ||
        check_file("ca_password_file", cfg->ca_password_file) != 0 ||
        check_file("ca_chain", cfg->ca_chain) != 0 ||
        check_file("phone_id_key", cfg->phone_id_key) != 0)
        return 1;
    for (size_t i = 0; i < cfg->n_webhooks; i++)
        if (check_file("webhook secret", cfg->webhooks[i].secret_file) != 0)
            return 1;
    if (cfg->pid_file != NULL && ck_daemon_check_pidfile(PROV_PROG, cfg->pid_file) != 0)
        return 1;
    if (cfg->user != NULL && ck_daemon_check_user(PROV_PROG, cfg->user, true, NULL) != 0)
        return 1;
    if ((rc = ck_store_open(cfg->database, cfg->stash, CK_STORE_READONLY, &store)) != 0) {
        fprintf(stderr, PROV_PROG ": check failed: database %s: %s: %s\n", cfg->database,
                ck_strerror(rc), ck_error_context());
        return 1;
    }
    if (cfg->realm != NULL && strcmp(ck_store_realm(store)->name, cfg->realm) != 0) {
        fprintf(stderr, PROV_PROG ": check failed: database %s holds realm %s, not %s\n",
                cfg->database, ck_store_realm(store)->name, cfg->realm);
        ck_store_close(store);
        return 1;
    }
    printf("database: %s (realm %s)\n", cfg->database, ck_store_realm(store)->name);
    ck_store_close(store);
    if (ck_log_target_check(&cfg->log) != 0) {
        fprintf(stderr, PROV_PROG ": check failed: log: %s\n", ck_error_context());
        return 1;
    }
    printf("log: %s (level %s)\n", ck_log_target_describe(&cfg->log, desc, sizeof(desc)),
           ck_log_level_name(cfg->log_level));
    printf("configuration OK\n");
    return 0;
}

/* The back process (ck_daemon_split_run forks it before the front has a socket, a keytab or a
 * TLS key): it starts the signer and opens the store, then says {"ready":"ok"}. */
static void
back_main(void *arg, int fd)
{
    prov_back_main(arg, fd);
}

static int
back_ready(void *arg, int fd)
{
    json_t *msg = NULL;
    const char *ready;
    int rc = -1;

    (void)arg;
    if (prov_ipc_next(fd, &msg) == 0 &&
        (ready = json_string_value(json_object_get(msg, "ready"))) != NULL &&
        strcmp(ready, "ok") == 0) {
        rc = 0;
    } else {
        ready = json_string_value(json_object_get(msg, "ready"));
        ck_log_err("the back process did not start: %s", ready != NULL ? ready : "it died");
    }
    json_decref(msg);
    return rc;
}

static int
front_run(void *arg, int sfd, int back_fd, pid_t back_pid)
{
    return prov_front_run(arg, sfd, back_fd, back_pid);
}

int
main(int argc, char **argv)
{
    static struct ck_daemon_opts o;
    struct prov_config cfg;
    int rc, status = 1;

    prov_config_init(&cfg);
    if ((rc = ck_daemon_parse_store_args(argc, argv, &o, PROV_PROG, usage)) >= 0)
        return rc;
    /* Console passwords pass through jansson: make it wipe what it frees (every process). */
    ck_admin_json_secure_alloc();
    ck_log_open(PROV_PROG, CK_LOG_STDERR, NULL, LOG_INFO);
    if (prov_config_load(&o, &cfg) != 0) {
        print_error("configuration");
        goto out;
    }
    /* Refused here, before anything starts: an address that would expose the API (console
     * passwords, session cookies, Kerberos authenticators) to a network without TLS. */
    if (prov_listen_validate(&cfg) != 0) {
        print_error("configuration");
        goto out;
    }
    if (o.check) {
        status = run_check(&cfg);
        goto out;
    }
    status = ck_daemon_split_run(&(struct ck_daemon_split){
        .prog = PROV_PROG, .log = &cfg.log, .log_level = cfg.log_level,
        .pid_file = cfg.pid_file, .back_main = back_main, .back_ready = back_ready,
        .front_run = front_run, .arg = &cfg});
out:
    ck_log_close();
    prov_config_free(&cfg);
    return status;
}
