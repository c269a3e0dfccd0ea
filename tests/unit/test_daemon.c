/* The shared daemon layer (lib/daemon) and the KDC's fail-closed configuration: schema errors
 * with file and line, MIT's kdc_ports, [logging] forms, notify datagrams, pid files, the listen
 * check, and log reopening while threads log. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ck_test.h"
#include "cablekey/client.h"
#include "cablekey/daemon.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/profile.h"
#include "cablekey/util.h"
#include "config.h"
#include "pkinit_kdc.h"

/* Loads text as kdc.conf "t.conf" into a fresh config; returns the load's result. */
static int
load(const char *text, struct kdc_daemon_config *dc)
{
    struct ck_profile *p = NULL;
    int rc;

    kdc_daemon_config_init(dc);
    if ((rc = ck_profile_parse_string(text, "t.conf", &p)) != 0)
        return rc;
    rc = kdc_daemon_config_load(dc, p, NULL);
    if (rc == 0)
        rc = kdc_daemon_config_finish(dc);
    ck_profile_free(p);
    return rc;
}

static bool
context_has(const char *s)
{
    if (strstr(ck_error_context(), s) != NULL)
        return true;
    fprintf(stderr, "  context \"%s\" lacks \"%s\"\n", ck_error_context(), s);
    return false;
}

static void
test_unknown_sections_and_keys(void)
{
    struct kdc_daemon_config dc;

    CHECK_INT_EQ(load("# c\n[kdcdefault]\n kdc_listen = 127.0.0.1\n", &dc), CK_ERR_CONFIG);
    CHECK(context_has("t.conf:2: unknown section [kdcdefault] (did you mean [kdcdefaults]?)"));
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load("[kdcdefaults]\n kdc_listen = 127.0.0.1\n\n kdc_listem = 1\n", &dc),
                 CK_ERR_CONFIG);
    CHECK(context_has("t.conf:4: unknown key \"kdc_listem\" in [kdcdefaults]"));
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load("[realms]\n R.TEST = {\n  max_life = 1h\n  max_lfe = 2h\n }\n", &dc),
                 CK_ERR_CONFIG);
    CHECK(context_has("t.conf:4: unknown key \"max_lfe\" in [realms] R.TEST (did you mean "
                      "max_life?)"));
    kdc_daemon_config_free(&dc);
    /* A realm key at the top of [realms], a subsection where none belongs, and nesting. */
    CHECK_INT_EQ(load("[realms]\n max_life = 1h\n", &dc), CK_ERR_CONFIG);
    CHECK(context_has("t.conf:2:"));
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load("[kdcdefaults]\n x = {\n }\n", &dc), CK_ERR_CONFIG);
    CHECK(context_has("t.conf:2: [kdcdefaults] takes no subsection"));
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load("[realms]\n R = {\n  a = {\n   b = 1\n  }\n }\n", &dc), CK_ERR_CONFIG);
    CHECK(context_has("t.conf:3: unexpected subsection"));
    kdc_daemon_config_free(&dc);
    /* MIT's sections this KDC does not read are refused too. */
    CHECK_INT_EQ(load("[dbmodules]\n x = 1\n", &dc), CK_ERR_CONFIG);
    CHECK(context_has("unknown section [dbmodules]"));
    kdc_daemon_config_free(&dc);
    /* A value error points at its line. */
    CHECK_INT_EQ(load("[realms]\n R = {\n\n  max_life = forever\n }\n", &dc), CK_ERR_CONFIG);
    CHECK(context_has("t.conf:4: max_life = \"forever\""));
    kdc_daemon_config_free(&dc);
    /* A realm asked for that [realms] does not list. */
    {
        struct ck_profile *p = NULL;
        CHECK_OK(ck_profile_parse_string("[realms]\n A.TEST = {\n }\n", "t.conf", &p));
        kdc_daemon_config_init(&dc);
        CHECK_INT_EQ(kdc_daemon_config_load(&dc, p, "B.TEST"), CK_ERR_CONFIG);
        kdc_daemon_config_free(&dc);
        ck_profile_free(p);
    }
}

static void
test_known_keys_table(void)
{
    static const char *const pkinit[] = {KDC_PKINIT_CONFIG_KEYS};
    struct kdc_daemon_config dc;
    char text[4096];
    size_t used = 0;

    /* Every PKINIT key pkinit_config.c reads is in the table. */
    for (size_t i = 0; i < sizeof(pkinit) / sizeof(pkinit[0]); i++) {
        bool found = false;
        for (size_t k = 0; k < kdc_conf_n_keys && !found; k++)
            found = strcmp(kdc_conf_keys[k].section, "realms") == 0 &&
                    strcmp(kdc_conf_keys[k].name, pkinit[i]) == 0 &&
                    (kdc_conf_keys[k].where & CK_CONF_SUB);
        if (!found)
            fprintf(stderr, "  %s missing from kdc_conf_keys\n", pkinit[i]);
        CHECK(found);
    }
    /* kpasswd_listen (the kpasswd service) is known in both places. */
    CHECK_OK(load("[kdcdefaults]\n kpasswd_listen = 127.0.0.1:464\n[realms]\n R = {\n"
                  "  kpasswd_listen = 127.0.0.1:464\n }\n", &dc));
    kdc_daemon_config_free(&dc);
    /* Each table key loads in its place (values chosen per type). */
    used += (size_t)snprintf(text + used, sizeof(text) - used,
                             "[kdcdefaults]\n kdc_listen = 127.0.0.1:88\n kdc_tcp_listen = "
                             "127.0.0.1:88\n kdc_user = nobody\n kdc_workers = 2\n"
                             "[realms]\n R = {\n  acl_file = /x\n  default_principal_flags = "
                             "+preauth\n  master_key_type = aes256-cts\n }\n"
                             "[logging]\n admin_server = FILE:/x\n level = debug\n");
    CHECK_OK(load(text, &dc));
    CHECK(dc.user != NULL && strcmp(dc.user, "nobody") == 0);
    CHECK_INT_EQ(dc.log_level, LOG_DEBUG);
    kdc_daemon_config_free(&dc);
}

static void
test_kdc_ports(void)
{
    struct kdc_daemon_config dc;

    /* MIT's meaning: the ports on every address, said in the note. */
    CHECK_OK(load("[kdcdefaults]\n kdc_ports = 750 88\n", &dc));
    CHECK_INT_EQ(dc.n_listen, 2);
    CHECK(dc.n_listen == 2 && strcmp(dc.listen[0], "750") == 0 && strcmp(dc.listen[1], "88") == 0);
    CHECK(strstr(dc.listen_note, "every address") != NULL);
    kdc_daemon_config_free(&dc);
    CHECK_OK(load("[kdcdefaults]\n kdc_ports = 7088\n kdc_tcp_ports = 7088\n", &dc));
    CHECK(dc.n_listen == 1 && strcmp(dc.listen[0], "7088") == 0);
    kdc_daemon_config_free(&dc);
    /* Different UDP and TCP ports or addresses cannot be served: refused. */
    CHECK_INT_EQ(load("[kdcdefaults]\n kdc_ports = 88\n kdc_tcp_ports = 750\n", &dc),
                 CK_ERR_CONFIG);
    CHECK(context_has("t.conf:3: kdc_tcp_ports"));
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load("[kdcdefaults]\n kdc_listen = 127.0.0.1\n kdc_tcp_listen = ::1\n", &dc),
                 CK_ERR_CONFIG);
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load("[kdcdefaults]\n kdc_ports = 88x\n", &dc), CK_ERR_CONFIG);
    kdc_daemon_config_free(&dc);
    /* kdc_listen wins, with no note; the realm's own wins over [kdcdefaults]. */
    CHECK_OK(load("[kdcdefaults]\n kdc_ports = 750\n kdc_listen = 127.0.0.1:7\n", &dc));
    CHECK(dc.n_listen == 1 && strcmp(dc.listen[0], "127.0.0.1:7") == 0 && dc.listen_note[0] == 0);
    kdc_daemon_config_free(&dc);
    CHECK_OK(load("[kdcdefaults]\n kdc_listen = 127.0.0.1:7\n[realms]\n R = {\n  kdc_ports = 9\n"
                  " }\n", &dc));
    CHECK(dc.n_listen == 1 && strcmp(dc.listen[0], "9") == 0);
    kdc_daemon_config_free(&dc);
    /* Nothing configured: all addresses, said out loud. */
    CHECK_OK(load("[realms]\n R = {\n }\n", &dc));
    CHECK(dc.n_listen == 1 && strcmp(dc.listen[0], "88") == 0);
    CHECK(strstr(dc.listen_note, "every address") != NULL);
    kdc_daemon_config_free(&dc);
}

static void
test_logging_forms(void)
{
    struct kdc_daemon_config dc;
    struct ck_log_target t;

    CHECK_OK(load("[logging]\n kdc = CONSOLE\n", &dc));
    CHECK_INT_EQ(dc.log.dest, CK_LOG_STDERR);
    kdc_daemon_config_free(&dc);
    CHECK_OK(load("[logging]\n kdc = SYSLOG:DEBUG:LOCAL0\n", &dc));
    CHECK_INT_EQ(dc.log.dest, CK_LOG_SYSLOG);
    CHECK_INT_EQ(dc.log_level, LOG_DEBUG);
    kdc_daemon_config_free(&dc);
    CHECK_OK(load("[logging]\n default = FILE=/var/log/k.log\n", &dc));
    CHECK(dc.log.dest == CK_LOG_FILE && strcmp(dc.log.path, "/var/log/k.log") == 0);
    kdc_daemon_config_free(&dc);
    /* Never a file named after a word. */
    CHECK_INT_EQ(load("[logging]\n kdc = KONSOLE\n", &dc), CK_ERR_CONFIG);
    CHECK(context_has("t.conf:2: kdc = \"KONSOLE\""));
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load("[logging]\n kdc = DEVICE=/dev/tty1\n", &dc), CK_ERR_CONFIG);
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load("[logging]\n kdc = FILE:/a\n kdc = FILE:/b\n", &dc), CK_ERR_CONFIG);
    kdc_daemon_config_free(&dc);
    CHECK_INT_EQ(load("[logging]\n kdc = SYSLOG:LOUD\n", &dc), CK_ERR_CONFIG);
    kdc_daemon_config_free(&dc);
    /* The flag's forms. */
    CHECK_OK(ck_log_target_parse("console", true, &t));
    CHECK_INT_EQ(t.dest, CK_LOG_STDERR);
    CHECK_OK(ck_log_target_parse("./k.log", true, &t));
    CHECK_INT_EQ(t.dest, CK_LOG_FILE);
    CHECK_INT_EQ(ck_log_target_parse("k.log", true, &t), CK_ERR_CONFIG);
    CHECK_INT_EQ(ck_log_target_parse("/var/log/k.log", false, &t), CK_ERR_CONFIG);
    /* The writability check. */
    CHECK_OK(ck_log_target_parse("FILE:/tmp/ck-test-daemon-new.log", false, &t));
    unlink(t.path);
    CHECK_OK(ck_log_target_check(&t));
    CHECK(access(t.path, F_OK) != 0); /* checked without being created */
    CHECK_OK(ck_log_target_parse("FILE:/nonexistent-dir/k.log", false, &t));
    CHECK_INT_EQ(ck_log_target_check(&t), CK_ERR_IO);
}

static void
test_profile_locations(void)
{
    struct ck_profile *p = NULL;
    const char *file = NULL;
    int line = 0;

    CHECK_OK(ck_profile_parse_string("[a]\n\n x = 1\n[b]\n S = {\n  y = 2\n }\n", "loc.conf",
                                     &p));
    CHECK(strcmp(ck_profile_get_loc(p, &file, &line, "a", "x", NULL), "1") == 0);
    CHECK(file != NULL && strcmp(file, "loc.conf") == 0);
    CHECK_INT_EQ(line, 3);
    CHECK(strcmp(ck_profile_get_loc(p, &file, &line, "b", "S", "y", NULL), "2") == 0);
    CHECK_INT_EQ(line, 6);
    CHECK(ck_profile_get_loc(p, &file, &line, "b", "z", NULL) == NULL);
    CHECK(file == NULL && line == 0);
    ck_profile_free(p);
}

/* Receives one datagram from fd, NUL-terminated, within 2 s. */
static ssize_t
recv_dgram(int fd, char *buf, size_t size)
{
    struct timeval tv = {2, 0};
    ssize_t n;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    n = recv(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

static void
test_notify(void)
{
    struct sockaddr_un sun;
    char path[80], name[64], buf[256];
    int fd;

    /* No socket: nothing to do, no error. */
    unsetenv("NOTIFY_SOCKET");
    CHECK_OK(ck_daemon_notify("READY=1"));
    /* A path socket. */
    snprintf(path, sizeof(path), "/tmp/ck-notify-%ld", (long)getpid());
    unlink(path);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    ck_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    CHECK(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
    setenv("NOTIFY_SOCKET", path, 1);
    CHECK_OK(ck_daemon_notify("READY=1\nSTATUS=%s", "serving"));
    CHECK(recv_dgram(fd, buf, sizeof(buf)) > 0 && strcmp(buf, "READY=1\nSTATUS=serving") == 0);
    close(fd);
    unlink(path);
    /* An abstract socket ('@' = leading NUL, exact length). */
    snprintf(name, sizeof(name), "ck-notify-abstract-%ld", (long)getpid());
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path + 1, name, strlen(name));
    CHECK(bind(fd, (struct sockaddr *)&sun,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))) == 0);
    snprintf(path, sizeof(path), "@%s", name);
    setenv("NOTIFY_SOCKET", path, 1);
    CHECK_OK(ck_daemon_notify("STOPPING=1"));
    CHECK(recv_dgram(fd, buf, sizeof(buf)) > 0 && strcmp(buf, "STOPPING=1") == 0);
    close(fd);
    /* Nobody listening: an error the daemon logs, not a crash. */
    CHECK_INT_EQ(ck_daemon_notify("READY=1"), CK_ERR_IO);
    setenv("NOTIFY_SOCKET", "relative", 1);
    CHECK_INT_EQ(ck_daemon_notify("READY=1"), CK_ERR_CONFIG);
    unsetenv("NOTIFY_SOCKET");
}

static void
test_pidfile_and_user(void)
{
    char path[64], buf[32];
    struct ck_daemon_user u;
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/ck-pid-%ld.pid", (long)getpid());
    CHECK_OK(ck_daemon_pidfile_write(path));
    f = fopen(path, "r");
    CHECK(f != NULL);
    if (f != NULL) {
        int64_t pid = 0;

        if (fgets(buf, sizeof(buf), f) != NULL)
            buf[strcspn(buf, "\n")] = '\0';
        else
            buf[0] = '\0';
        CHECK(ck_parse_int64(buf, 1, INT32_MAX, &pid) == 0 && pid == (int64_t)getpid());
        fclose(f);
    }
    ck_daemon_pidfile_remove(path);
    CHECK(access(path, F_OK) != 0);
    /* Another process's pid file is left alone. */
    f = fopen(path, "w");
    if (f != NULL) {
        fputs("1\n", f);
        fclose(f);
    }
    ck_daemon_pidfile_remove(path);
    CHECK(access(path, F_OK) == 0);
    unlink(path);
    CHECK_INT_EQ(ck_daemon_pidfile_check("/nonexistent-dir/k.pid"), CK_ERR_IO);
    CHECK(context_has("/nonexistent-dir"));
    CHECK_OK(ck_daemon_user_lookup("root", &u));
    CHECK_INT_EQ(u.uid, 0);
    CHECK_OK(ck_daemon_user_lookup("0", &u));
    CHECK(strcmp(u.name, "root") == 0);
    CHECK_INT_EQ(ck_daemon_user_lookup("no-such-user-ck", &u), CK_ERR_CONFIG);
    /* Becoming who we are already is a no-op that succeeds for anyone. */
    {
        struct ck_daemon_user me;
        char uid[16];
        snprintf(uid, sizeof(uid), "%u", (unsigned)getuid());
        if (ck_daemon_user_lookup(uid, &me) == 0 && me.gid == getgid())
            CHECK_OK(ck_daemon_drop_privileges(&me));
    }
}

static void
test_check_listen(void)
{
    const char *ok[] = {"127.0.0.1:0"};
    const char *foreign[] = {"192.0.2.1:7088"};
    const char *unresolvable[] = {"no-such-host.invalid:88"};
    struct ck_net_config cfg;
    char desc[256];

    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = ok;
    cfg.n_listen = 1;
    cfg.workers = 1;
    cfg.tcp_framing = &ck_krb_tcp_framing;
    CHECK_OK(ck_net_check_listen(&cfg, desc, sizeof(desc)));
    CHECK(strcmp(desc, "127.0.0.1:0") == 0);
    cfg.listen = foreign;
    CHECK_INT_EQ(ck_net_check_listen(&cfg, desc, sizeof(desc)), CK_ERR_CONFIG);
    CHECK(context_has("not an address of this host"));
    cfg.listen = unresolvable;
    CHECK_INT_EQ(ck_net_check_listen(&cfg, desc, sizeof(desc)), CK_ERR_CONFIG);
    CHECK(context_has("no-such-host.invalid"));
}

static int
echo_handler(void *state, const struct ck_net_request *req, uint8_t *reply, size_t cap,
             size_t *len)
{
    *len = req->len < cap ? req->len : cap;
    memcpy(reply, req->data, *len);
    return 0;
}

static atomic_int inits;

static int
count_init(int index, void *arg, void **state)
{
    atomic_fetch_add(&inits, 1);
    *state = NULL;
    return 0;
}

/* Bind, then run: no worker state exists before run; the bound port answers after it. */
static void
test_bind_then_run(void)
{
    const char *listen[] = {"127.0.0.1:0"};
    struct ck_net_config cfg;
    struct ck_net_callbacks cb;
    struct ck_net_server *srv = NULL;
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[16];
    int fd;

    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = listen;
    cfg.n_listen = 1;
    cfg.workers = 2;
    cfg.no_tcp = true;
    memset(&cb, 0, sizeof(cb));
    cb.handler = echo_handler;
    cb.worker_init = count_init;
    atomic_store(&inits, 0);
    CHECK_OK(ck_net_server_new(&cfg, &cb, &srv));
    CHECK_OK(ck_net_server_bind(srv));
    CHECK_INT_EQ(atomic_load(&inits), 0);
    CHECK_OK(ck_net_server_addr(srv, 0, &ss, &len));
    CHECK_INT_EQ(ck_net_server_bind(srv), CK_ERR_INVAL);
    CHECK_OK(ck_net_server_run(srv));
    CHECK_INT_EQ(atomic_load(&inits), 2);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(sendto(fd, "ping", 4, 0, (struct sockaddr *)&ss, len) == 4);
    CHECK(recv_dgram(fd, buf, sizeof(buf)) == 4 && strcmp(buf, "ping") == 0);
    close(fd);
    ck_net_server_free(srv);
}

/* ---- log reopen under load ---------------------------------------------------------------- */

#define LOG_THREADS 4
#define LOG_LINES 3000

static void *
log_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    struct ck_log_batch *b = malloc(sizeof(*b));

    if (b == NULL)
        return NULL;
    ck_log_batch_init(b);
    for (int i = 0; i < LOG_LINES; i++) {
        if (i % 2 == 0)
            ck_log_info("thread %d line %d end", id, i);
        else
            ck_log_batch_add(b, LOG_INFO, "thread %d line %d end", id, i);
        if (i % 64 == 0)
            ck_log_batch_flush(b);
    }
    ck_log_batch_flush(b);
    free(b);
    return NULL;
}

/* Counts complete lines ("... end\n") in path; -1 if a line is torn. */
static long
count_lines(const char *path)
{
    char line[2048];
    long n = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t l = strlen(line);
        if (l < 5 || strcmp(line + l - 5, " end\n") != 0) {
            fclose(f);
            return -1;
        }
        n++;
    }
    fclose(f);
    return n;
}

static void
test_log_reopen_while_logging(void)
{
    char path[64], rotated[10][80];
    pthread_t t[LOG_THREADS];
    long total = 0;
    int n_rot = 0;

    snprintf(path, sizeof(path), "/tmp/ck-log-reopen-%ld.log", (long)getpid());
    unlink(path);
    CHECK_OK(ck_log_open("test_daemon", CK_LOG_FILE, path, LOG_INFO));
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i);
    /* Rotate as logrotate does: rename, then ask for a reopen, while the threads write. */
    for (n_rot = 0; n_rot < 10; n_rot++) {
        snprintf(rotated[n_rot], sizeof(rotated[n_rot]), "%s.%d", path, n_rot);
        usleep(2000);
        CHECK(rename(path, rotated[n_rot]) == 0);
        CHECK_OK(ck_log_reopen());
    }
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_join(t[i], NULL);
    /* A level and destination change at run time. */
    CHECK_OK(ck_log_reconfigure(CK_LOG_FILE, path, LOG_ERR));
    ck_log_info("hidden end");
    CHECK_INT_EQ(ck_log_reconfigure(CK_LOG_FILE, "/nonexistent-dir/x.log", LOG_INFO), CK_ERR_IO);
    CHECK_INT_EQ(ck_log_level(), LOG_ERR); /* a failed switch changes nothing */
    ck_log_close();
    for (int i = 0; i < n_rot; i++) {
        long c = count_lines(rotated[i]);
        CHECK(c >= 0);
        total += c;
        unlink(rotated[i]);
    }
    {
        long c = count_lines(path);
        CHECK(c >= 0);
        total += c;
    }
    unlink(path);
    CHECK_INT_EQ(total, (long)LOG_THREADS * LOG_LINES);
}

/* The typed key readers the daemons share (lib/daemon/conf.c): absent = 1, a flag over the key,
 * range errors with file:line, a repeated key over its limit, required keys, a store location
 * that does not parse. */
static void
test_conf_values(void)
{
    struct ck_profile *p = NULL;
    char *v = NULL, *list[3] = {NULL, NULL, NULL};
    size_t n = 0;
    int64_t i = 0;

    CHECK_OK(ck_profile_parse_string("[d]\n n = 42\n big = 99999\n t = 90s\n l = a\n l = b\n"
                                     " l = c\n s = x\n",
                                     "v.conf", &p));
    CHECK_INT_EQ(ck_conf_get_int(p, "d", "n", 1, 100, &i), 0);
    CHECK_INT_EQ(i, 42);
    CHECK_INT_EQ(ck_conf_get_int(p, "d", "absent", 1, 100, &i), 1);
    CHECK_INT_EQ(i, 42);
    CHECK(ck_conf_get_int(p, "d", "big", 1, 100, &i) == CK_ERR_CONFIG);
    CHECK(context_has("v.conf:3") && context_has("expected 1..100"));
    CHECK_INT_EQ(ck_conf_get_duration(p, "d", "t", 1, 3600, &i), 0);
    CHECK_INT_EQ(i, 90);
    CHECK(ck_conf_get_duration(p, "d", "t", 1, 60, &i) == CK_ERR_CONFIG);
    CHECK(context_has("expected a duration of 1s..60s"));
    CHECK(ck_conf_get_list(p, "d", "l", list, 2, &n) == CK_ERR_CONFIG);
    CHECK(context_has("given too many times"));
    for (size_t k = 0; k < n; k++)
        free(list[k]);
    n = 0;
    CHECK_OK(ck_conf_get_list(p, "d", "l", list, 3, &n));
    CHECK_INT_EQ(n, 3);
    CHECK(n == 3 && strcmp(list[0], "a") == 0 && strcmp(list[2], "c") == 0);
    for (size_t k = 0; k < n; k++)
        free(list[k]);
    CHECK_OK(ck_conf_dup(p, "d", "s", NULL, &v));
    CHECK(v != NULL && strcmp(v, "x") == 0);
    free(v);
    v = NULL;
    CHECK_OK(ck_conf_dup(p, "d", "s", "flag", &v));
    CHECK(v != NULL && strcmp(v, "flag") == 0);
    free(v);
    v = NULL;
    CHECK_OK(ck_conf_dup(p, "d", "absent", NULL, &v));
    CHECK(v == NULL);
    CHECK_OK(ck_conf_require(p, "v.conf", "d", (const char *const[]){"n", "s", NULL}));
    CHECK(ck_conf_require(p, "v.conf", "d", (const char *const[]){"n", "keytab", NULL}) ==
          CK_ERR_CONFIG);
    CHECK(context_has("v.conf: [d] keytab is required"));
    CHECK_OK(ck_conf_check_database("v.conf", "d", "/var/lib/x.db"));
    CHECK(ck_conf_check_database("v.conf", "d", "gopher://x/y") != 0);
    CHECK(context_has("v.conf: [d] database (--db): "));
    ck_profile_free(p);
    p = NULL;

    /* An HTTP front's limits: given ones set, absent ones keep the caller's default. */
    {
        size_t body = 7;
        unsigned conns = 8, tmo = 9;
        CHECK_OK(ck_profile_parse_string("[h]\n max_body = 2048\n timeout = 2m\n", "h.conf",
                                         &p));
        CHECK_OK(ck_conf_get_http_limits(p, "h", 4096, &body, &conns, &tmo));
        CHECK(body == 2048 && conns == 8 && tmo == 120);
        CHECK(ck_conf_get_http_limits(p, "h", 1024, &body, &conns, &tmo) == CK_ERR_CONFIG);
        CHECK(context_has("max_body"));
        ck_profile_free(p);
    }
}

CK_TEST_MAIN("daemon", CK_TEST_CASE(test_unknown_sections_and_keys),
             CK_TEST_CASE(test_known_keys_table), CK_TEST_CASE(test_kdc_ports),
             CK_TEST_CASE(test_logging_forms), CK_TEST_CASE(test_profile_locations),
             CK_TEST_CASE(test_notify), CK_TEST_CASE(test_pidfile_and_user),
             CK_TEST_CASE(test_check_listen), CK_TEST_CASE(test_bind_then_run),
             CK_TEST_CASE(test_log_reopen_while_logging), CK_TEST_CASE(test_conf_values))
