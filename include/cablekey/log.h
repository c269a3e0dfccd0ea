/* Logging for daemons and tools (library code never logs: it returns errors with context).
 * Levels follow syslog. Destinations: stderr, syslog (LOG_DAEMON) or a file. Never log secrets. */
#ifndef CABLEKEY_LOG_H
#define CABLEKEY_LOG_H

#include <sys/types.h>
#include <syslog.h>

enum ck_log_dest { CK_LOG_STDERR, CK_LOG_SYSLOG, CK_LOG_FILE };

/* ident: program name; level: LOG_ERR..LOG_DEBUG; path only for CK_LOG_FILE (opened for append,
 * created 0640). On error the destination is stderr. */
int ck_log_open(const char *ident, enum ck_log_dest dest, const char *path, int level);
/* While other threads log: switches destination and level (a file is opened before anything
 * changes, so on error the old destination stays in use). */
int ck_log_reconfigure(enum ck_log_dest dest, const char *path, int level);
/* Opens the log file again by name (after rotation) and swaps it in; no-op for stderr and
 * syslog. On error the old file stays in use. Safe while other threads log. */
int ck_log_reopen(void);
void ck_log_set_level(int level);
int ck_log_level(void);
/* Parses "err", "warning", "notice", "info", "debug" (also "error", "warn"); -1 if unknown. */
int ck_log_level_from_name(const char *name);
const char *ck_log_level_name(int level);
void ck_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ck_log_close(void);

/* Batched lines, for a thread that logs one line per request: the lines are formatted as
 * ck_log() formats them and kept in the batch, then written together by ck_log_batch_flush()
 * (one write for a file or stderr; syslog gets each line at once, unbatched). A full batch
 * flushes itself first. One batch per thread; not thread-safe. */
#define CK_LOG_BATCH_SIZE 32768
struct ck_log_batch {
    size_t len;
    long long ts_sec;        /* the second ts[] shows (formatted once per second) */
    char ts[32];
    char buf[CK_LOG_BATCH_SIZE];
};
/* Initializes an empty batch. */
void ck_log_batch_init(struct ck_log_batch *b);
void ck_log_batch_add(struct ck_log_batch *b, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for a ready message (len bytes, no newline; longer than 1023 bytes is cut). */
void ck_log_batch_add_str(struct ck_log_batch *b, int level, const char *msg, size_t len);
void ck_log_batch_flush(struct ck_log_batch *b);

#define ck_log_err(...) ck_log(LOG_ERR, __VA_ARGS__)
#define ck_log_warn(...) ck_log(LOG_WARNING, __VA_ARGS__)
#define ck_log_notice(...) ck_log(LOG_NOTICE, __VA_ARGS__)
#define ck_log_info(...) ck_log(LOG_INFO, __VA_ARGS__)
#define ck_log_debug(...) ck_log(LOG_DEBUG, __VA_ARGS__)

#endif
