#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cablekey/error.h"
#include "cablekey/log.h"

static enum ck_log_dest log_dest = CK_LOG_STDERR;
static int log_level = LOG_INFO;
static FILE *log_file;
static char log_ident[32] = "cablekey";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

int
ck_log_open(const char *ident, enum ck_log_dest dest, const char *path, int level)
{
    ck_log_close();
    if (ident != NULL) {
        size_t n = strlen(ident);
        if (n >= sizeof(log_ident))
            n = sizeof(log_ident) - 1;
        memcpy(log_ident, ident, n);
        log_ident[n] = '\0';
    }
    log_dest = dest;
    log_level = level;
    if (dest == CK_LOG_SYSLOG) {
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    } else if (dest == CK_LOG_FILE) {
        log_file = fopen(path, "a");
        if (log_file == NULL) {
            log_dest = CK_LOG_STDERR;
            return ck_error_set(CK_ERR_IO, "cannot open log file %s", path);
        }
        setvbuf(log_file, NULL, _IOLBF, 0);
    }
    return 0;
}

void
ck_log_set_level(int level)
{
    log_level = level;
}

int
ck_log_level(void)
{
    return log_level;
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

static const char *
level_name(int level)
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

void
ck_log(int level, const char *fmt, ...)
{
    va_list ap;
    char msg[1024];
    char ts[32];
    FILE *out;

    if (level > log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_dest == CK_LOG_SYSLOG) {
        syslog(level, "%s", msg);
        return;
    }
    format_ts(ts, sizeof(ts));
    out = log_dest == CK_LOG_FILE ? log_file : stderr;
    pthread_mutex_lock(&log_lock);
    fprintf(out, "%s %s[%s]: %s\n", ts, log_ident, level_name(level), msg);
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
    const char *lv = level_name(level);
    size_t ts_len, id_len = strlen(log_ident), lv_len = strlen(lv), need;
    time_t now;
    char *p;

    if (level > log_level)
        return;
    if (len > 1023)
        len = 1023;
    if (log_dest == CK_LOG_SYSLOG) {
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

    if (level > log_level)
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
    FILE *out;

    if (b->len == 0)
        return;
    out = log_dest == CK_LOG_FILE ? log_file : stderr;
    pthread_mutex_lock(&log_lock);
    /* Whole lines in one write for an unbuffered stderr; a short write on a full disk loses
     * the rest, as fprintf would. */
    (void)fwrite(b->buf, 1, b->len, out);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
    b->len = 0;
}

void
ck_log_close(void)
{
    if (log_dest == CK_LOG_SYSLOG)
        closelog();
    if (log_file != NULL)
        fclose(log_file);
    log_file = NULL;
    log_dest = CK_LOG_STDERR;
}
