/* cablekey-admind: the admin API daemon. main() only sequences the setup steps, each a small
 * function, so that they can move onto the shared daemon layer (lib/daemon) as it lands:
 * options -> configuration -> (--check) -> logging -> back process -> front process.
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
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

struct options {
    const char *config;
    bool check;
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: " ADMIND_PROG " [-c FILE] [--check]\n"
                 "  -c, --config FILE   configuration (default " ADMIND_DEFAULT_CONFIG ")\n"
                 "      --check         validate configuration, ACL, keytab, listen addresses\n"
                 "                      and database, print what a start would use, then exit\n"
                 "      --version       print the version\n"
                 "  -h, --help          this text\n");
}

static void
print_error(const char *what)
{
    const char *ctx = ck_error_context();

    fprintf(stderr, ADMIND_PROG ": %s%s%s\n", what, ctx[0] != '\0' ? ": " : "", ctx);
}

/* Returns -1 to go on, else the exit status. */
static int
parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->config = ADMIND_DEFAULT_CONFIG;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'C': o->check = true; break;
        case 'V': printf(ADMIND_PROG " 0.1.0\n"); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, ADMIND_PROG ": unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    return -1;
}

/* --check: everything a start needs, in this process (nothing is served). */
static int
run_check(const struct admind_config *cfg)
{
    ck_store *store = NULL;
    int rc;

    printf("config: %s\nrealm: %s\n", cfg->config_path, cfg->realm);
    if ((rc = admind_front_check(cfg)) != 0) {
        print_error("check failed");
        return 1;
    }
    if ((rc = ck_store_open(cfg->database, cfg->stash, CK_STORE_READONLY, &store)) != 0) {
        fprintf(stderr, ADMIND_PROG ": check failed: database %s: %s: %s\n", cfg->database,
                ck_strerror(rc), ck_error_context());
        return 1;
    }
    if (strcmp(ck_store_realm(store)->name, cfg->realm) != 0) {
        fprintf(stderr, ADMIND_PROG ": check failed: database %s holds realm %s, not %s\n",
                cfg->database, ck_store_realm(store)->name, cfg->realm);
        ck_store_close(store);
        return 1;
    }
    ck_store_close(store);
    printf("database: %s\nlog: %s\n", cfg->database,
           cfg->log_dest == CK_LOG_FILE ? cfg->log_path
           : cfg->log_dest == CK_LOG_SYSLOG ? "syslog" : "stderr");
    if (cfg->log_dest == CK_LOG_FILE && (rc = ck_log_open(ADMIND_PROG, CK_LOG_FILE,
                                                          cfg->log_path, cfg->log_level)) != 0) {
        print_error("check failed: log");
        return 1;
    }
    ck_log_close();
    if (cfg->pid_file != NULL) {
        char dir[4096], *slash;

        ck_strlcpy(dir, cfg->pid_file, sizeof(dir));
        slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash != NULL)
            *slash = '\0';
        else
            ck_strlcpy(dir, ".", sizeof(dir));
        if (access(dir, W_OK) != 0) {
            fprintf(stderr, ADMIND_PROG ": check failed: pid file directory %s: %s\n", dir,
                    strerror(errno));
            return 1;
        }
        printf("pid file: %s\n", cfg->pid_file);
    }
    printf("configuration OK\n");
    return 0;
}

static int
setup_logging(const struct admind_config *cfg)
{
    if (ck_log_open(ADMIND_PROG, cfg->log_dest, cfg->log_path, cfg->log_level) != 0) {
        print_error("log");
        return -1;
    }
    return 0;
}

/* Forks the back process first, before the front has a socket, a keytab or a TLS key, and
 * waits until it has opened the store. */
static int
start_back(const struct admind_config *cfg, int *fd_out, pid_t *pid_out)
{
    int sv[2];
    char *msg = NULL;
    size_t len = 0;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        ck_log_err("socketpair: %m");
        return -1;
    }
    if ((pid = fork()) < 0) {
        ck_log_err("fork: %m");
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        admind_back_main(cfg, sv[1]);
    }
    close(sv[1]);
    if (admind_ipc_recv(sv[0], 4096, &msg, &len) != 0 || strcmp(msg, "ok") != 0) {
        ck_log_err("the store could not be opened: %s", msg != NULL ? msg : "back process died");
        free(msg);
        close(sv[0]);
        waitpid(pid, NULL, 0);
        return -1;
    }
    free(msg);
    *fd_out = sv[0];
    *pid_out = pid;
    return 0;
}

int
main(int argc, char **argv)
{
    struct options o;
    struct admind_config cfg;
    int rc, back_fd = -1;
    pid_t back_pid = -1;

    if ((rc = parse_args(argc, argv, &o)) >= 0)
        return rc;
    /* Passwords pass through jansson: make it wipe what it frees (both processes). */
    ck_admin_json_secure_alloc();
    if (admind_config_load(o.config, &cfg) != 0) {
        print_error("configuration");
        admind_config_free(&cfg);
        return 1;
    }
    /* Refused here, on stderr, before anything starts: a listen address that would expose the
     * API to the network without TLS. */
    if (!o.check && admind_listen_validate(&cfg) != 0) {
        print_error("configuration");
        admind_config_free(&cfg);
        return 1;
    }
    if (o.check) {
        rc = run_check(&cfg);
        admind_config_free(&cfg);
        return rc;
    }
    if (setup_logging(&cfg) != 0 || start_back(&cfg, &back_fd, &back_pid) != 0) {
        admind_config_free(&cfg);
        return 1;
    }
    rc = admind_front_run(&cfg, back_fd, back_pid);
    ck_log_close();
    admind_config_free(&cfg);
    return rc;
}
