/* Log destinations in MIT's [logging] syntax (and the --log flag's shorter forms). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/daemon.h"
#include "cablekey/error.h"
#include "cablekey/util.h"

/* Facility names are validated for MIT compatibility; the log module always uses LOG_DAEMON. */
static bool
known_facility(const char *name)
{
    static const char *const names[] = {"DAEMON", "AUTH", "AUTHPRIV", "USER", "LOCAL0",
                                        "LOCAL1", "LOCAL2", "LOCAL3", "LOCAL4", "LOCAL5",
                                        "LOCAL6", "LOCAL7"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return false;
}

static int
parse_syslog(const char *spec, struct ck_log_target *t)
{
    char buf[64];
    char *level, *facility;

    if (strlen(spec) >= sizeof(buf))
        return ck_error_set(CK_ERR_CONFIG, "log \"%s\": too long", spec);
    ck_strlcpy(buf, spec, sizeof(buf));
    level = buf[6] == ':' ? buf + 7 : NULL;
    facility = level != NULL ? strchr(level, ':') : NULL;
    if (facility != NULL)
        *facility++ = '\0';
    if (level != NULL && *level != '\0') {
        int l = ck_log_level_from_name(level);
        if (l < 0)
            return ck_error_set(CK_ERR_CONFIG, "log \"%s\": unknown level \"%s\"", spec, level);
        t->level = l;
    }
    if (facility != NULL && !known_facility(facility))
        return ck_error_set(CK_ERR_CONFIG, "log \"%s\": unknown facility \"%s\"", spec,
                            facility);
    t->dest = CK_LOG_SYSLOG;
    return 0;
}

int
ck_log_target_parse(const char *spec, bool flag, struct ck_log_target *t)
{
    memset(t, 0, sizeof(*t));
    t->level = -1;
    if (strcasecmp(spec, "STDERR") == 0 || strcasecmp(spec, "CONSOLE") == 0) {
        t->dest = CK_LOG_STDERR;
        return 0;
    }
    if (strncasecmp(spec, "SYSLOG", 6) == 0 && (spec[6] == '\0' || spec[6] == ':'))
        return parse_syslog(spec, t);
    if (strncasecmp(spec, "FILE:", 5) == 0 || strncasecmp(spec, "FILE=", 5) == 0) {
        spec += 5;
    } else if (strncasecmp(spec, "DEVICE=", 7) == 0) {
        return ck_error_set(CK_ERR_CONFIG, "log \"%s\": DEVICE= is not supported; use "
                            "FILE:, SYSLOG, STDERR or CONSOLE", spec);
    } else if (!flag || strchr(spec, '/') == NULL) {
        return ck_error_set(CK_ERR_CONFIG, "log \"%s\": expected FILE:/path, SYSLOG[:LEVEL"
                            "[:FACILITY]], STDERR or CONSOLE%s", spec,
                            flag ? " (or a path containing '/')" : "");
    }
    if (*spec == '\0')
        return ck_error_set(CK_ERR_CONFIG, "log: empty file name");
    if (strlen(spec) >= sizeof(t->path))
        return ck_error_set(CK_ERR_LIMIT, "log: file name too long");
    ck_strlcpy(t->path, spec, sizeof(t->path));
    t->dest = CK_LOG_FILE;
    return 0;
}

const char *
ck_log_target_describe(const struct ck_log_target *t, char *buf, size_t size)
{
    switch (t->dest) {
    case CK_LOG_STDERR: snprintf(buf, size, "stderr"); break;
    case CK_LOG_SYSLOG: snprintf(buf, size, "syslog (facility daemon)"); break;
    case CK_LOG_FILE: snprintf(buf, size, "file %s", t->path); break;
    }
    return buf;
}

int
ck_log_target_check(const struct ck_log_target *t)
{
    char dir[sizeof(t->path)];
    char *slash;
    struct stat st;
    int fd;

    if (t->dest != CK_LOG_FILE)
        return 0;
    fd = open(t->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        int ok = fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode) ||
                                         S_ISFIFO(st.st_mode));
        close(fd);
        if (!ok)
            return ck_error_set(CK_ERR_CONFIG, "log file %s: not a regular file", t->path);
        return 0;
    }
    if (errno != ENOENT)
        return ck_error_set(CK_ERR_IO, "log file %s: %s", t->path, strerror(errno));
    ck_strlcpy(dir, t->path, sizeof(dir));
    slash = strrchr(dir, '/');
    if (slash == NULL)
        ck_strlcpy(dir, ".", sizeof(dir));
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (stat(dir, &st) != 0)
        return ck_error_set(CK_ERR_IO, "log file %s: directory %s: %s", t->path, dir,
                            strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ck_error_set(CK_ERR_IO, "log file %s: %s is not a directory", t->path, dir);
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0)
        return ck_error_set(CK_ERR_IO, "log file %s: cannot create it in %s: %s", t->path, dir,
                            strerror(errno));
    return 0;
}
