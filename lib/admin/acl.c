/* The cablekey-admind ACL (syntax and semantics in include/cablekey/admin.h).
 *
 * Patterns are parsed with the principal parser, so escapes mean what they mean in a principal
 * name, and a wildcard is a component (or realm) that is exactly "*". Matching is component by
 * component, never by substring: "*" / "admin" cannot be tricked by a name such as
 * "x/admin/y" because the component counts differ. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/admin.h"
#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

#define MAX_WILDCARDS 9 /* backreferences are one digit */

struct acl_entry {
    unsigned line;
    ck_principal *principal; /* NULL: "*", every principal */
    ck_principal *target;    /* NULL: no target restriction */
    unsigned allow, deny;
};

struct ck_admin_acl {
    struct acl_entry *entries;
    size_t n, cap;
};

static const struct {
    char letter;
    unsigned perm;
} perm_letters[] = {
    {'a', CK_ADMIN_PERM_ADD},      {'d', CK_ADMIN_PERM_DELETE},  {'m', CK_ADMIN_PERM_MODIFY},
    {'c', CK_ADMIN_PERM_CHANGEPW}, {'i', CK_ADMIN_PERM_INQUIRE}, {'l', CK_ADMIN_PERM_LIST},
    {'p', CK_ADMIN_PERM_PROPAGATE}, {'s', CK_ADMIN_PERM_SETKEY}, {'e', CK_ADMIN_PERM_EXTRACT},
    {'r', CK_ADMIN_PERM_REVOKE},
};

static int
acl_err(const char *name, unsigned line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
acl_err(const char *name, unsigned line, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ck_error_set(CK_ERR_CONFIG, "%s:%u: %s", name, line, msg);
}

static bool
is_wild(const char *s)
{
    return s[0] == '*' && s[1] == '\0';
}

/* "*N" with N in 1..9: the wildcard index, else 0. */
static int
backref(const char *s)
{
    if (s[0] == '*' && s[1] >= '1' && s[1] <= '9' && s[2] == '\0')
        return s[1] - '0';
    return 0;
}

static size_t
count_wildcards(const ck_principal *p)
{
    size_t n = 0;

    if (p == NULL)
        return 0;
    for (size_t i = 0; i < p->n_components; i++)
        n += is_wild(p->components[i]);
    return n;
}

static int
parse_perms(const char *s, unsigned *allow, unsigned *deny)
{
    *allow = *deny = 0;
    for (; *s != '\0'; s++) {
        bool found = false;

        if (*s == 'x' || *s == '*') {
            *allow |= CK_ADMIN_PERM_ALL;
            continue;
        }
        for (size_t i = 0; i < sizeof(perm_letters) / sizeof(perm_letters[0]); i++) {
            if (*s == perm_letters[i].letter) {
                *allow |= perm_letters[i].perm;
                found = true;
            } else if (*s == perm_letters[i].letter - 'a' + 'A') {
                *deny |= perm_letters[i].perm;
                found = true;
            }
        }
        if (!found)
            return -1;
    }
    return 0;
}

/* Splits a line into at most max whitespace-separated fields (in place); returns the count, or
 * max + 1 if there are more. */
static size_t
split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;

    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            return n;
        if (n == max)
            return max + 1;
        fields[n++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        if (*p != '\0')
            *p++ = '\0';
    }
}

static int
parse_line(struct ck_admin_acl *acl, char *line, const char *name, unsigned lineno,
           const char *realm)
{
    char *f[4];
    size_t n = split_fields(line, f, 4);
    struct acl_entry e = {.line = lineno};
    size_t wild;
    int rc;

    if (n == 0 || f[0][0] == '#')
        return 0;
    if (n == 1)
        return acl_err(name, lineno, "missing permissions after \"%.64s\"", f[0]);
    if (n > 3)
        return acl_err(name, lineno, "restrictions (a fourth field) are not supported");
    for (const char *c = f[0]; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return acl_err(name, lineno, "control character in principal pattern");
    if (parse_perms(f[1], &e.allow, &e.deny) != 0)
        return acl_err(name, lineno, "unknown permission letter in \"%.32s\" (use adcilmpse, "
                       "upper case to deny, x or * for all)", f[1]);
    if (!is_wild(f[0]) && ck_principal_parse(f[0], realm, 0, &e.principal) != 0)
        return acl_err(name, lineno, "bad principal pattern \"%.64s\": %s", f[0],
                       ck_error_context());
    wild = count_wildcards(e.principal);
    /* A target of "*" is no restriction at all (MIT), not "any one-component name". */
    if (n == 3 && !is_wild(f[2])) {
        if ((rc = ck_principal_parse(f[2], realm, 0, &e.target)) != 0) {
            rc = acl_err(name, lineno, "bad target pattern \"%.64s\": %s", f[2],
                         ck_error_context());
            goto fail;
        }
        for (size_t i = 0; i <= e.target->n_components; i++) {
            const char *c = i < e.target->n_components ? e.target->components[i] : e.target->realm;
            int b = backref(c);
            if (b > 0 && (e.principal == NULL || (size_t)b > wild)) {
                rc = acl_err(name, lineno, "target refers to wildcard %d, but the principal "
                             "pattern has %zu", b, wild);
                goto fail;
            }
            if (c[0] == '*' && !is_wild(c) && b == 0) {
                rc = acl_err(name, lineno, "bad wildcard \"%.16s\" in target", c);
                goto fail;
            }
            if (b > 0 && i == e.target->n_components) {
                rc = acl_err(name, lineno, "backreferences refer to name components, not to "
                             "the realm");
                goto fail;
            }
        }
    }
    if (acl->n >= CK_ADMIN_ACL_MAX_ENTRIES) {
        rc = acl_err(name, lineno, "more than %d entries", CK_ADMIN_ACL_MAX_ENTRIES);
        goto fail;
    }
    if (acl->n == acl->cap) {
        size_t cap = acl->cap == 0 ? 16 : acl->cap * 2;
        struct acl_entry *ne = realloc(acl->entries, cap * sizeof(*ne));
        if (ne == NULL) {
            rc = CK_ERR_NOMEM;
            goto fail;
        }
        acl->entries = ne;
        acl->cap = cap;
    }
    acl->entries[acl->n++] = e;
    return 0;
fail:
    ck_principal_free(e.principal);
    ck_principal_free(e.target);
    return rc;
}

int
ck_admin_acl_parse(const char *text, size_t len, const char *name, const char *default_realm,
                   struct ck_admin_acl **out)
{
    struct ck_admin_acl *acl = NULL;
    char line[CK_ADMIN_ACL_MAX_LINE + 1];
    unsigned lineno = 0;
    size_t pos = 0;
    int rc = 0;

    *out = NULL;
    if (name == NULL)
        name = "<acl>";
    if (default_realm == NULL || default_realm[0] == '\0')
        return ck_error_set(CK_ERR_INVAL, "ACL: no default realm");
    if (len > CK_ADMIN_ACL_MAX_FILE)
        return ck_error_set(CK_ERR_LIMIT, "%s: larger than %d bytes", name, CK_ADMIN_ACL_MAX_FILE);
    if ((acl = calloc(1, sizeof(*acl))) == NULL)
        return CK_ERR_NOMEM;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;

        lineno++;
        if (ll > CK_ADMIN_ACL_MAX_LINE) {
            rc = ck_error_set(CK_ERR_LIMIT, "%s:%u: line longer than %d bytes", name, lineno,
                              CK_ADMIN_ACL_MAX_LINE);
            goto out;
        }
        if (memchr(text + pos, '\0', ll) != NULL) {
            rc = acl_err(name, lineno, "NUL byte in line");
            goto out;
        }
        memcpy(line, text + pos, ll);
        line[ll] = '\0';
        if (ll > 0 && line[ll - 1] == '\r')
            line[ll - 1] = '\0';
        if ((rc = parse_line(acl, line, name, lineno, default_realm)) != 0)
            goto out;
        pos += ll + (nl != NULL);
    }
    *out = acl;
    acl = NULL;
out:
    ck_admin_acl_free(acl);
    return rc;
}

int
ck_admin_acl_load(const char *path, const char *default_realm, struct ck_admin_acl **out)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "%s: %s", path,
                            strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = ck_error_set(CK_ERR_IO, "%s: not a regular file", path);
        goto out;
    }
    /* Whoever can write the ACL is an administrator of the realm. */
    if (st.st_mode & S_IWOTH) {
        rc = ck_error_set(CK_ERR_PERM, "%s: writable by every user (chmod o-w)", path);
        goto out;
    }
    if ((buf = malloc(CK_ADMIN_ACL_MAX_FILE + 1)) == NULL) {
        rc = CK_ERR_NOMEM;
        goto out;
    }
    if ((rc = ck_fd_read_all(fd, buf, CK_ADMIN_ACL_MAX_FILE + 1, &len)) != 0) {
        rc = ck_error_set(rc, "%s: %s", path, ck_error_context());
        goto out;
    }
    rc = ck_admin_acl_parse(buf, len, path, default_realm, out);
out:
    free(buf);
    close(fd);
    return rc;
}

void
ck_admin_acl_free(struct ck_admin_acl *acl)
{
    if (acl == NULL)
        return;
    for (size_t i = 0; i < acl->n; i++) {
        ck_principal_free(acl->entries[i].principal);
        ck_principal_free(acl->entries[i].target);
    }
    free(acl->entries);
    free(acl);
}

size_t
ck_admin_acl_entries(const struct ck_admin_acl *acl)
{
    return acl != NULL ? acl->n : 0;
}

/* Matches name against pattern; records what each component wildcard matched in wild[], left to
 * right (a realm wildcard matches but is not recorded, as in MIT). */
static bool
match_principal(const ck_principal *pat, const ck_principal *name, const char **wild,
                size_t *n_wild)
{
    *n_wild = 0;
    if (pat->n_components != name->n_components)
        return false;
    for (size_t i = 0; i < pat->n_components; i++) {
        if (is_wild(pat->components[i])) {
            if (*n_wild < MAX_WILDCARDS)
                wild[(*n_wild)++] = name->components[i];
        } else if (strcmp(pat->components[i], name->components[i]) != 0) {
            return false;
        }
    }
    return is_wild(pat->realm) || strcmp(pat->realm, name->realm) == 0;
}

static bool
match_one(const char *pat, const char *s, const char *const *wild, size_t n_wild)
{
    int b;

    if (is_wild(pat))
        return true;
    if ((b = backref(pat)) > 0)
        return (size_t)b <= n_wild && strcmp(wild[b - 1], s) == 0;
    return strcmp(pat, s) == 0;
}

static bool
match_target(const ck_principal *pat, const ck_principal *name, const char *const *wild,
             size_t n_wild)
{
    if (pat->n_components != name->n_components)
        return false;
    for (size_t i = 0; i < pat->n_components; i++)
        if (!match_one(pat->components[i], name->components[i], wild, n_wild))
            return false;
    return is_wild(pat->realm) || strcmp(pat->realm, name->realm) == 0;
}

bool
ck_admin_acl_check(const struct ck_admin_acl *acl, const char *caller, const char *target,
                   unsigned perm, unsigned *line)
{
    ck_principal *c = NULL, *t = NULL;
    bool allowed = false;

    if (line != NULL)
        *line = 0;
    if (acl == NULL || caller == NULL || perm == 0)
        return false;
    if (ck_principal_parse(caller, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &c) != 0)
        goto out;
    if (target != NULL &&
        ck_principal_parse(target, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &t) != 0)
        goto out;
    for (size_t i = 0; i < acl->n; i++) {
        const struct acl_entry *e = &acl->entries[i];
        const char *wild[MAX_WILDCARDS];
        size_t n_wild = 0;

        if (e->principal != NULL && !match_principal(e->principal, c, wild, &n_wild))
            continue;
        /* An entry restricted to targets does not apply to an operation without one (MIT). */
        if (e->target != NULL && (t == NULL || !match_target(e->target, t, wild, n_wild)))
            continue;
        if (line != NULL)
            *line = e->line;
        allowed = (e->allow & perm) == perm && (e->deny & perm) == 0;
        break;
    }
out:
    ck_principal_free(c);
    ck_principal_free(t);
    ck_error_clear();
    return allowed;
}

const char *
ck_admin_perm_letters(unsigned perm, char *buf, size_t size)
{
    size_t n = 0;

    if (size == 0)
        return buf;
    for (size_t i = 0; i < sizeof(perm_letters) / sizeof(perm_letters[0]) && n + 1 < size; i++)
        if (perm & perm_letters[i].perm)
            buf[n++] = perm_letters[i].letter;
    buf[n] = '\0';
    return buf;
}
