/* Logging for daemons and tools (library code never logs: it returns errors with context).
 * Levels follow syslog. Destinations: stderr, syslog (LOG_DAEMON) or a file. Never log secrets. */
#ifndef CABLEKEY_LOG_H
#define CABLEKEY_LOG_H

#include <syslog.h>

enum ck_log_dest { CK_LOG_STDERR, CK_LOG_SYSLOG, CK_LOG_FILE };

/* ident: program name; level: LOG_ERR..LOG_DEBUG; path only for CK_LOG_FILE. */
int ck_log_open(const char *ident, enum ck_log_dest dest, const char *path, int level);
void ck_log_set_level(int level);
int ck_log_level(void);
/* Parses "err", "warning", "notice", "info", "debug" (also "error", "warn"); -1 if unknown. */
int ck_log_level_from_name(const char *name);
void ck_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ck_log_close(void);

#define ck_log_err(...) ck_log(LOG_ERR, __VA_ARGS__)
#define ck_log_warn(...) ck_log(LOG_WARNING, __VA_ARGS__)
#define ck_log_notice(...) ck_log(LOG_NOTICE, __VA_ARGS__)
#define ck_log_info(...) ck_log(LOG_INFO, __VA_ARGS__)
#define ck_log_debug(...) ck_log(LOG_DEBUG, __VA_ARGS__)

#endif
