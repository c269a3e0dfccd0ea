/* Logging. Worker threads log while the main thread may change the destination (SIGHUP: a new
 * log file after rotation, another level or destination from a reloaded configuration), so:
 *   - the level and the destination are atomics, read without a lock on every call;
 *   - file output goes through one descriptor written with write(2) under log_lock, and a reopen
 *     opens the new file first, then swaps the descriptor under the lock: no line is lost or
 *     written to a closed descriptor, and a failed reopen leaves the old file in use. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/util.h"

static _Atomic int log_dest = CK_LOG_STDERR;
static _Atomic int log_level = LOG_INFO;
static int log_fd = -1;                  /* CK_LOG_FILE: under log_lock */
static char log_path[4096];              /* CK_LOG_FILE: under log_lock */
static char log_ident[32] = "cablekey";
static bool syslog_open;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static int
open_file(const char *path, int *fd_out)
{
    int fd;

    if (path == NULL || path[0] == '\0')
        return ck_error_set(CK_ERR_CONFIG, "log file: empty name");
    if (strlen(path) >= sizeof(log_path))
        return ck_error_set(CK_ERR_LIMIT, "log file name too long");
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "log file %s: %s", path, strerror(errno));
    *fd_out = fd;
    return 0;
}

/* Switches to dest (opening path first for a file); on error nothing changes. */
static int
set_dest(enum ck_log_dest dest, const char *path)
{
    int fd = -1, old_fd, rc;

    if (dest == CK_LOG_FILE && (rc = open_file(path, &fd)) != 0)
        return rc;
    if (dest == CK_LOG_SYSLOG && !syslog_open) {
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
        syslog_open = true;
    }
    pthread_mutex_lock(&log_lock);
    old_fd = log_fd;
    log_fd = fd;
    if (dest == CK_LOG_FILE)
        ck_strlcpy(log_path, path, sizeof(log_path));
    else
        log_path[0] = '\0';
    atomic_store(&log_dest, (int)dest);
    pthread_mutex_unlock(&log_lock);
    if (old_fd >= 0)
        close(old_fd);
    return 0;
}

int
ck_log_open(const char *ident, enum ck_log_dest dest, const char *path, int level)
{
    ck_log_close();
    if (ident != NULL)
        ck_strlcpy(log_ident, ident, sizeof(log_ident));
    atomic_store(&log_level, level);
    return set_dest(dest, path);
}

int
ck_log_reconfigure(enum ck_log_dest dest, const char *path, int level)
{
    int rc = 0;

    if (dest == CK_LOG_FILE || (enum ck_log_dest)atomic_load(&log_dest) != dest)
        rc = set_dest(dest, path);
    if (rc == 0)
        atomic_store(&log_level, level);
    return rc;
}

int
ck_log_reopen(void)
{
    char path[sizeof(log_path)];

    if ((enum ck_log_dest)atomic_load(&log_dest) != CK_LOG_FILE)
        return 0;
    pthread_mutex_lock(&log_lock);
    ck_strlcpy(path, log_path, sizeof(path));
    pthread_mutex_unlock(&log_lock);
    return set_dest(CK_LOG_FILE, path);
}

void
ck_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int
ck_log_level(void)
{
    return atomic_load_explicit(&log_level, memory_order_relaxed);
}

int
ck_log_level_from_name(const char *name)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {
        {"emerg", LOG_EMERG}, {"alert", LOG_ALERT},     {"crit", LOG_CRIT},
        {"err", LOG_ERR},     {"error", LOG_ERR},       {"warning", LOG_WARNING},
        {"warn", LOG_WARNING}, {"notice", LOG_NOTICE},  {"info", LOG_INFO},
        {"debug", LOG_DEBUG},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0)
            return names[i].level;
    return -1;
}

const char *
ck_log_level_name(int level)
{
    static const char *const n[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info",
                                     "debug"};

    return (level >= 0 && level <= 7) ? n[level] : "?";
}

static void
format_ts(char *ts, size_t size)
{
    struct tm tm;
    time_t now = time(NULL);

    gmtime_r(&now, &tm);
    strftime(ts, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Writes whole lines to the current file or stderr; the caller holds log_lock. A short write on
 * a full disk loses the rest, as fprintf would. */
static void
write_locked(const char *buf, size_t len)
{
    int fd = atomic_load(&log_dest) == CK_LOG_FILE && log_fd >= 0 ? log_fd : STDERR_FILENO;

    (void)ck_fd_write_all(fd, buf, len);
}

void
ck_log(int level, const char *fmt, ...)
{
    va_list ap;
    char msg[1024];
    char line[1200];
    char ts[32];
    int n;

    if (level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (atomic_load(&log_dest) == CK_LOG_SYSLOG) {
        syslog(level, "%s", msg);
        return;
    }
    format_ts(ts, sizeof(ts));
    n = snprintf(line, sizeof(line), "%s %s[%s]: %s\n", ts, log_ident, ck_log_level_name(level),
                 msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    pthread_mutex_lock(&log_lock);
    write_locked(line, (size_t)n);
    pthread_mutex_unlock(&log_lock);
}

void
ck_log_batch_init(struct ck_log_batch *b)
{
    b->len = 0;
    b->ts_sec = -1;
    b->ts[0] = '\0';
}

void
ck_log_batch_add_str(struct ck_log_batch *b, int level, const char *msg, size_t len)
{
    const char *lv = ck_log_level_name(level);
    size_t ts_len, id_len = strlen(log_ident), lv_len = strlen(lv), need;
    time_t now;
    char *p;

    if (level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    if (len > 1023)
        len = 1023;
    if (atomic_load(&log_dest) == CK_LOG_SYSLOG) {
        syslog(level, "%.*s", (int)len, msg);
        return;
    }
    /* The same line as ck_log() writes; the timestamp is formatted once per second. */
    now = time(NULL);
    if ((long long)now != b->ts_sec) {
        format_ts(b->ts, sizeof(b->ts));
        b->ts_sec = (long long)now;
    }
    ts_len = strlen(b->ts);
    need = ts_len + 1 + id_len + 1 + lv_len + 3 + len + 1;
    if (b->len + need > sizeof(b->buf))
        ck_log_batch_flush(b);
    if (need > sizeof(b->buf))
        return;
    p = b->buf + b->len;
    memcpy(p, b->ts, ts_len);
    p += ts_len;
    *p++ = ' ';
    memcpy(p, log_ident, id_len);
    p += id_len;
    *p++ = '[';
    memcpy(p, lv, lv_len);
    p += lv_len;
    *p++ = ']';
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, msg, len);
    p += len;
    *p++ = '\n';
    b->len = (size_t)(p - b->buf);
}

void
ck_log_batch_add(struct ck_log_batch *b, int level, const char *fmt, ...)
{
    va_list ap;
    char msg[1024];
    int n;

    if (level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    ck_log_batch_add_str(b, level, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

void
ck_log_batch_flush(struct ck_log_batch *b)
{
    if (b->len == 0)
        return;
    /* Lines batched while the destination was a file or stderr go where the log goes now;
     * after a switch to syslog they go to stderr rather than being lost. */
    pthread_mutex_lock(&log_lock);
    write_locked(b->buf, b->len);
    pthread_mutex_unlock(&log_lock);
    b->len = 0;
}

void
ck_log_close(void)
{
    int fd;

    pthread_mutex_lock(&log_lock);
    fd = log_fd;
    log_fd = -1;
    log_path[0] = '\0';
    atomic_store(&log_dest, CK_LOG_STDERR);
    pthread_mutex_unlock(&log_lock);
    if (fd >= 0)
        close(fd);
    if (syslog_open)
        closelog();
    syslog_open = false;
}
