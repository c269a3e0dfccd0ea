/* Pid file, privilege drop, systemd notification and the signal loop (include/cablekey/daemon.h). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

#include "cablekey/daemon.h"
#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/util.h"

/* ---- pid file --------------------------------------------------------------------------- */

static void
dir_of(const char *path, char *dir, size_t size)
{
    char *slash;

    ck_strlcpy(dir, path, size);
    slash = strrchr(dir, '/');
    if (slash == NULL)
        ck_strlcpy(dir, ".", size);
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
}

int
ck_daemon_pidfile_check(const char *path)
{
    char dir[PATH_MAX];
    struct stat st;

    if (path == NULL || path[0] == '\0')
        return ck_error_set(CK_ERR_CONFIG, "pid file: empty name");
    if (strlen(path) >= sizeof(dir) - 16)
        return ck_error_set(CK_ERR_LIMIT, "pid file name too long");
    dir_of(path, dir, sizeof(dir));
    if (stat(dir, &st) != 0)
        return ck_error_set(CK_ERR_IO, "pid file %s: directory %s: %s", path, dir,
                            strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ck_error_set(CK_ERR_IO, "pid file %s: %s is not a directory", path, dir);
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0)
        return ck_error_set(CK_ERR_IO, "pid file %s: directory %s: %s", path, dir,
                            strerror(errno));
    return 0;
}

int
ck_daemon_pidfile_write(const char *path)
{
    char tmp[PATH_MAX], buf[32];
    int fd, n, rc;

    if ((rc = ck_daemon_pidfile_check(path)) != 0)
        return rc;
    n = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return ck_error_set(CK_ERR_LIMIT, "pid file name too long");
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "pid file %s: %s", tmp, strerror(errno));
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    rc = ck_fd_write_all(fd, buf, (size_t)n);
    if (close(fd) != 0 && rc == 0)
        rc = CK_ERR_IO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = CK_ERR_IO;
    if (rc != 0) {
        int e = errno;
        unlink(tmp);
        return ck_error_set(CK_ERR_IO, "pid file %s: %s", path, strerror(e));
    }
    return 0;
}

void
ck_daemon_pidfile_remove(const char *path)
{
    char buf[32];
    size_t len = 0;
    int64_t pid;
    int fd;

    if (path == NULL)
        return;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    if (ck_fd_read_all(fd, buf, sizeof(buf) - 1, &len) == 0) {
        buf[len] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        if (ck_parse_int64(buf, 1, INT_MAX, &pid) == 0 && pid == (int64_t)getpid() &&
            unlink(path) != 0)
            ck_log_debug("pid file %s: %s (left behind)", path, strerror(errno));
    }
    close(fd);
}

/* ---- user ------------------------------------------------------------------------------- */

int
ck_daemon_user_lookup(const char *name, struct ck_daemon_user *u)
{
    struct passwd pw, *res = NULL;
    char buf[16384];
    int64_t num;
    int e;

    memset(u, 0, sizeof(*u));
    if (name == NULL || name[0] == '\0')
        return ck_error_set(CK_ERR_CONFIG, "user: empty name");
    if (ck_parse_int64(name, 0, INT_MAX, &num) == 0)
        e = getpwuid_r((uid_t)num, &pw, buf, sizeof(buf), &res);
    else
        e = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
    if (res == NULL)
        return ck_error_set(CK_ERR_CONFIG, "user \"%s\": %s", name,
                            e != 0 ? strerror(e) : "no such user");
    if (strlen(pw.pw_name) >= sizeof(u->name))
        return ck_error_set(CK_ERR_CONFIG, "user \"%s\": name too long", name);
    ck_strlcpy(u->name, pw.pw_name, sizeof(u->name));
    u->uid = pw.pw_uid;
    u->gid = pw.pw_gid;
    return 0;
}

int
ck_daemon_drop_privileges(const struct ck_daemon_user *u)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;

    if (getresuid(&ruid, &euid, &suid) == 0 && getresgid(&rgid, &egid, &sgid) == 0 &&
        ruid == u->uid && euid == u->uid && suid == u->uid && rgid == u->gid &&
        egid == u->gid && sgid == u->gid)
        return 0;
    if (initgroups(u->name, u->gid) != 0)
        return ck_error_set(CK_ERR_PERM, "user %s: setting groups: %s", u->name,
                            strerror(errno));
    if (setresgid(u->gid, u->gid, u->gid) != 0)
        return ck_error_set(CK_ERR_PERM, "user %s: setgid %u: %s", u->name, (unsigned)u->gid,
                            strerror(errno));
    if (setresuid(u->uid, u->uid, u->uid) != 0)
        return ck_error_set(CK_ERR_PERM, "user %s: setuid %u: %s", u->name, (unsigned)u->uid,
                            strerror(errno));
    /* A service user that is root itself, or a kernel that kept a saved id, would leave a way
     * back: refuse to go on rather than run believing privileges are gone. */
    if (u->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        return ck_error_set(CK_ERR_PERM, "user %s: root could be regained", u->name);
    return 0;
}

int
ck_daemon_check_pidfile(const char *prog, const char *path)
{
    if (ck_daemon_pidfile_check(path) != 0) {
        ck_daemon_print_error(prog, "pid file");
        return -1;
    }
    printf("pid file: %s\n", path);
    return 0;
}

int
ck_daemon_check_user(const char *prog, const char *name, bool drop, struct ck_daemon_user *out)
{
    struct ck_daemon_user u;

    if (ck_daemon_user_lookup(name, &u) != 0) {
        ck_daemon_print_error(prog, "user");
        return -1;
    }
    printf("user: %s (uid %u, gid %u)\n", u.name, (unsigned)u.uid, (unsigned)u.gid);
    if (drop && ck_daemon_drop_privileges(&u) != 0) {
        ck_daemon_print_error(prog, "user");
        return -1;
    }
    if (out != NULL)
        *out = u;
    return 0;
}

/* ---- systemd notify --------------------------------------------------------------------- */

int
ck_daemon_notify(const char *fmt, ...)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun;
    char msg[1024];
    va_list ap;
    size_t len;
    int fd, n, rc = 0;

    if (path == NULL || path[0] == '\0')
        return 0;
    if (path[0] != '/' && path[0] != '@')
        return ck_error_set(CK_ERR_CONFIG, "NOTIFY_SOCKET %s: not a path or @name", path);
    len = strlen(path);
    if (len < 2 || len >= sizeof(sun.sun_path))
        return ck_error_set(CK_ERR_CONFIG, "NOTIFY_SOCKET: bad length");
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return ck_error_set(CK_ERR_LIMIT, "notify message too long");
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, len);
    if (sun.sun_path[0] == '@')
        sun.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "NOTIFY_SOCKET: socket: %s", strerror(errno));
    /* An abstract name's length is exact (no NUL terminator counts). */
    if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sun,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                           (path[0] == '/' ? 1 : 0))) < 0)
        rc = ck_error_set(CK_ERR_IO, "NOTIFY_SOCKET %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

static void
notify_or_log(const char *what, int rc)
{
    if (rc != 0)
        ck_log_warn("%s: %s", what, ck_error_context());
}

/* ---- signals ---------------------------------------------------------------------------- */

int
ck_daemon_signals_init(int *sfd)
{
    sigset_t sigs;
    int rc;

    *sfd = -1;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGPIPE);
    /* SIGPIPE stays blocked for good: sockets report EPIPE instead. */
    if ((rc = pthread_sigmask(SIG_BLOCK, &sigs, NULL)) != 0)
        return ck_error_set(CK_ERR_IO, "pthread_sigmask: %s", strerror(rc));
    sigdelset(&sigs, SIGPIPE);
    *sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (*sfd < 0)
        return ck_error_set(CK_ERR_IO, "signalfd: %s", strerror(errno));
    return 0;
}

int
ck_daemon_loop(int sfd, ck_daemon_reload_fn reload, void *arg)
{
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t r = read(sfd, &si, sizeof(si));

        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)sizeof(si)) {
            ck_log_err("signalfd: %s", r < 0 ? strerror(errno) : "short read");
            notify_or_log("notify", ck_daemon_notify("STOPPING=1"));
            return -1;
        }
        if (si.ssi_signo == SIGHUP) {
            char status[512] = "";
            struct timespec ts;
            int rc;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            notify_or_log("notify", ck_daemon_notify("RELOADING=1\nMONOTONIC_USEC=%llu",
                                                     (unsigned long long)ts.tv_sec * 1000000ULL +
                                                         (unsigned long long)ts.tv_nsec / 1000));
            rc = reload != NULL ? reload(arg, status, sizeof(status)) : 0;
            notify_or_log("notify", ck_daemon_notify("READY=1\nSTATUS=%s", status[0] != '\0'
                                                         ? status
                                                         : rc == 0 ? "reloaded"
                                                                   : "reload refused"));
            continue;
        }
        ck_log_notice("%s: shutting down", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        notify_or_log("notify", ck_daemon_notify("STOPPING=1"));
        return (int)si.ssi_signo;
    }
}

/* ---- a front and a back process --------------------------------------------------------- */

/* Forks the back process and waits until it says it is ready. */
static int
start_back(const struct ck_daemon_split *s, int sfd, int *fd_out, pid_t *pid_out)
{
    int sv[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        ck_log_err("socketpair: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    if ((pid = fork()) < 0) {
        ck_log_err("fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        close(sfd);
        s->back_main(s->arg, sv[1]);
        _exit(1); /* back_main does not return; should it, the child must not run the front */
    }
    close(sv[1]);
    if (s->back_ready(s->arg, sv[0]) != 0) {
        close(sv[0]);
        waitpid(pid, NULL, 0);
        return -1;
    }
    *fd_out = sv[0];
    *pid_out = pid;
    return 0;
}

int
ck_daemon_split_run(const struct ck_daemon_split *s)
{
    int status = 1, sfd = -1, back_fd = -1;
    bool pid_written = false;
    pid_t back_pid = -1;

    if (ck_log_open(s->prog, s->log->dest == CK_LOG_FILE ? CK_LOG_STDERR : s->log->dest, NULL,
                    s->log_level) != 0) {
        ck_daemon_print_error(s->prog, "log");
        goto out;
    }
    if (ck_daemon_signals_init(&sfd) != 0) {
        ck_daemon_print_error(s->prog, "signals");
        goto out;
    }
    if (s->pid_file != NULL) {
        if (ck_daemon_pidfile_write(s->pid_file) != 0) {
            ck_daemon_print_error(s->prog, "cannot start");
            goto out;
        }
        pid_written = true;
    }
    if (start_back(s, sfd, &back_fd, &back_pid) != 0)
        goto out;
    status = s->front_run(s->arg, sfd, back_fd, back_pid);
out:
    if (pid_written)
        ck_daemon_pidfile_remove(s->pid_file);
    if (sfd >= 0)
        close(sfd);
    return status;
}
