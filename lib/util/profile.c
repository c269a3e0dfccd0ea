/* krb5 profile parser (see include/cablekey/profile.h for the accepted syntax).
 *
 * The profile is a tree: the root holds sections, sections and subsections hold relations
 * (name + value) and subsections (name, value NULL). Lookups walk every node that matches the
 * path, so repeated subsections behave like one, as in MIT. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/profile.h"
#include "cablekey/util.h"

#define MAX_PATH_NAMES 16

struct node {
    char *name;
    char *value;                 /* NULL: a section or subsection */
    struct node *parent;
    struct node *child, *last_child;
    struct node *next;
    const char *file;            /* where the node was read (for messages); owned by the profile */
    int line;
};

struct ck_profile {
    struct node root;
    int n_files;
    char *files[CK_PROFILE_MAX_FILES]; /* names of the files read, for node locations */
};

struct parse_state {
    struct ck_profile *prof;
    const char *file;            /* name used in messages */
    const char *dir;             /* base for relative includes ("" = cwd) */
    int line;
    int include_depth;
    struct node *cur;            /* NULL before the first section header */
    int depth;                   /* open braces */
    int open_line[CK_PROFILE_MAX_DEPTH + 1];
    bool want_obrace;            /* "tag =" ended the previous line */
};

static int parse_file(struct ck_profile *prof, const char *path, int include_depth,
                      const char *from_file, int from_line);

static int
perr(const struct parse_state *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
perr(const struct parse_state *st, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ck_error_set(code, "%s:%d: %s", st->file, st->line, msg);
}

/* ---- tree ------------------------------------------------------------------------------- */

static void
node_free_children(struct node *n)
{
    struct node *c = n->child;

    while (c != NULL) {
        struct node *next = c->next;
        node_free_children(c);
        free(c->name);
        free(c->value);
        free(c);
        c = next;
    }
    n->child = n->last_child = NULL;
}

static struct node *
node_add(const struct parse_state *st, struct node *parent, const char *name, size_t name_len,
         const char *value, size_t value_len)
{
    struct node *n = calloc(1, sizeof(*n));

    if (n == NULL)
        return NULL;
    n->file = st->file;
    n->line = st->line;
    n->name = strndup(name, name_len);
    if (value != NULL)
        n->value = strndup(value, value_len);
    if (n->name == NULL || (value != NULL && n->value == NULL)) {
        free(n->name);
        free(n->value);
        free(n);
        return NULL;
    }
    n->parent = parent;
    if (parent->last_child != NULL)
        parent->last_child->next = n;
    else
        parent->child = n;
    parent->last_child = n;
    return n;
}

/* ---- lexical helpers -------------------------------------------------------------------- */

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static const char *
skip_blanks(const char *p)
{
    while (is_blank(*p))
        p++;
    return p;
}

static bool
only_blanks(const char *p)
{
    return *skip_blanks(p) == '\0';
}

/* Decodes a quoted string starting after the opening quote into out (NUL-terminated, at most
 * CK_PROFILE_MAX_LINE bytes); *end is set past the closing quote. Returns false if unclosed. */
static bool
unquote(const char *p, char *out, const char **end)
{
    size_t o = 0;

    for (; *p != '\0' && *p != '"'; p++) {
        char c = *p;
        if (c == '\\' && p[1] != '\0') {
            p++;
            switch (*p) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'b': c = '\b'; break;
            default: c = *p; break;
            }
        }
        out[o++] = c;
    }
    out[o] = '\0';
    if (*p != '"')
        return false;
    *end = p + 1;
    return true;
}

/* ---- includes --------------------------------------------------------------------------- */

static int
join_path(const struct parse_state *st, const char *name, char *out, size_t size)
{
    int n;

    if (name[0] == '/' || st->dir[0] == '\0')
        n = snprintf(out, size, "%s", name);
    else
        n = snprintf(out, size, "%s/%s", st->dir, name);
    if (n < 0 || (size_t)n >= size)
        return perr(st, CK_ERR_LIMIT, "include path too long");
    return 0;
}

/* MIT's rule: only names made of letters, digits, '-' and '_', or ending in ".conf", so editor
 * backups and package-manager leftovers are skipped. */
static int
includedir_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    bool plain = n > 0;

    if (n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        char c = d->d_name[i];
        if (!isalnum((unsigned char)c) && c != '-' && c != '_')
            plain = false;
    }
    return plain;
}

static int
do_include(struct parse_state *st, const char *arg, bool is_dir)
{
    char path[4096];
    struct dirent **list = NULL;
    int n, rc;

    if (*arg == '\0')
        return perr(st, CK_ERR_CONFIG, "%s without a path", is_dir ? "includedir" : "include");
    if (st->include_depth + 1 > CK_PROFILE_MAX_INCLUDE_DEPTH)
        return perr(st, CK_ERR_LIMIT, "includes nested deeper than %d",
                    CK_PROFILE_MAX_INCLUDE_DEPTH);
    if ((rc = join_path(st, arg, path, sizeof(path))) != 0)
        return rc;
    if (!is_dir)
        return parse_file(st->prof, path, st->include_depth + 1, st->file, st->line);

    n = scandir(path, &list, includedir_filter, alphasort);
    if (n < 0)
        return perr(st, CK_ERR_IO, "includedir %s: %s", path, strerror(errno));
    rc = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        struct stat sb;
        int len = snprintf(file, sizeof(file), "%s/%s", path, list[i]->d_name);

        if (rc == 0 && (len < 0 || (size_t)len >= sizeof(file)))
            rc = perr(st, CK_ERR_LIMIT, "include path too long");
        if (rc == 0 && stat(file, &sb) == 0 && S_ISREG(sb.st_mode))
            rc = parse_file(st->prof, file, st->include_depth + 1, st->file, st->line);
        free(list[i]);
    }
    free(list);
    return rc;
}

/* ---- lines ------------------------------------------------------------------------------ */

/* Checks "[name]" with an optional final marker; returns the name's length in *name_len. */
static int
check_section_header(struct parse_state *st, const char *p, size_t *name_len)
{
    const char *close;

    if (st->depth > 0)
        return perr(st, CK_ERR_CONFIG, "section header inside '{' opened on line %d",
                    st->open_line[st->depth]);
    close = strchr(p + 1, ']');
    if (close == NULL)
        return perr(st, CK_ERR_CONFIG, "missing ']' in section header");
    if (close == p + 1)
        return perr(st, CK_ERR_CONFIG, "empty section name");
    *name_len = (size_t)(close - p - 1);
    p = close + 1;
    if (*p == '*')
        p++;
    if (!only_blanks(p))
        return perr(st, CK_ERR_CONFIG, "junk after section header");
    return 0;
}

static int
parse_line(struct parse_state *st, char *line)
{
    char *p, *eq, *tag, *tag_end;
    char vbuf[CK_PROFILE_MAX_LINE + 1], tbuf[CK_PROFILE_MAX_LINE + 1];
    const char *value;
    size_t value_len;
    bool subsection = false;
    struct node *n;

    /* Directives must start in column 0, as in MIT. */
    if (strncmp(line, "includedir", 10) == 0 && is_blank(line[10])) {
        char *arg = (char *)skip_blanks(line + 10);
        size_t len = strlen(arg);
        while (len > 0 && is_blank(arg[len - 1]))
            arg[--len] = '\0';
        return do_include(st, arg, true);
    }
    if (strncmp(line, "include", 7) == 0 && is_blank(line[7])) {
        char *arg = (char *)skip_blanks(line + 7);
        size_t len = strlen(arg);
        while (len > 0 && is_blank(arg[len - 1]))
            arg[--len] = '\0';
        return do_include(st, arg, false);
    }

    p = (char *)skip_blanks(line);
    if (*p == '\0' || *p == '#' || *p == ';')
        return 0;

    if (st->want_obrace) {
        if (*p != '{' || !only_blanks(p + 1))
            return perr(st, CK_ERR_CONFIG, "expected '{' after \"%s =\"", st->cur->name);
        st->want_obrace = false;
        return 0;
    }

    if (*p == '[') {
        size_t name_len = 0;
        int rc = check_section_header(st, p, &name_len);
        struct node *s;

        if (rc != 0)
            return rc;
        /* Repeated sections (also across included files) are merged. */
        for (s = st->prof->root.child; s != NULL; s = s->next)
            if (strlen(s->name) == name_len && memcmp(s->name, p + 1, name_len) == 0)
                break;
        if (s == NULL && (s = node_add(st, &st->prof->root, p + 1, name_len, NULL, 0)) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "profile");
        st->cur = s;
        return 0;
    }

    if (*p == '}') {
        p++;
        if (*p == '*')
            p++;
        if (st->depth == 0)
            return perr(st, CK_ERR_CONFIG, "'}' without a matching '{'");
        if (!only_blanks(p))
            return perr(st, CK_ERR_CONFIG, "junk after '}'");
        st->cur = st->cur->parent;
        st->depth--;
        return 0;
    }

    if (st->cur == NULL)
        return perr(st, CK_ERR_CONFIG, "relation outside a [section]");
    /* Tag: one word (the final marker '*' dropped), or a quoted string. */
    if (*p == '"') {
        const char *after;
        if (!unquote(p + 1, tbuf, &after))
            return perr(st, CK_ERR_CONFIG, "unterminated quoted tag");
        eq = (char *)skip_blanks(after);
        if (*eq != '=')
            return perr(st, CK_ERR_CONFIG, "expected \"tag = value\"");
        tag = tbuf;
        tag_end = tbuf + strlen(tbuf);
    } else {
        eq = strchr(p, '=');
        if (eq == NULL || eq == p)
            return perr(st, CK_ERR_CONFIG, "expected \"tag = value\"");
        tag = p;
        tag_end = p;
        while (tag_end < eq && !is_blank(*tag_end))
            tag_end++;
        for (char *q = tag_end; q < eq; q++)
            if (!is_blank(*q))
                return perr(st, CK_ERR_CONFIG, "blank inside tag \"%.*s\"", (int)(eq - tag),
                            tag);
        if (tag_end > tag && tag_end[-1] == '*')
            tag_end--;
    }
    if (tag_end == tag)
        return perr(st, CK_ERR_CONFIG, "empty tag");

    p = (char *)skip_blanks(eq + 1);
    if (*p == '"') {
        const char *after;
        if (!unquote(p + 1, vbuf, &after))
            return perr(st, CK_ERR_CONFIG, "unterminated quoted value");
        if (!only_blanks(after))
            return perr(st, CK_ERR_CONFIG, "junk after quoted value");
        value = vbuf;
        value_len = strlen(vbuf);
    } else if (*p == '\0') {
        subsection = true;
        st->want_obrace = true;
        value = NULL;
        value_len = 0;
    } else if (*p == '{') {
        if (!only_blanks(p + 1))
            return perr(st, CK_ERR_CONFIG, "junk after '{'");
        subsection = true;
        value = NULL;
        value_len = 0;
    } else {
        value = p;
        value_len = strlen(p);
        while (value_len > 0 && is_blank(p[value_len - 1]))
            value_len--;
    }

    if (subsection) {
        if (st->depth + 1 > CK_PROFILE_MAX_DEPTH)
            return perr(st, CK_ERR_LIMIT, "'{' nested deeper than %d", CK_PROFILE_MAX_DEPTH);
        if ((n = node_add(st, st->cur, tag, (size_t)(tag_end - tag), NULL, 0)) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "profile");
        st->depth++;
        st->open_line[st->depth] = st->line;
        st->cur = n;
        return 0;
    }
    if (node_add(st, st->cur, tag, (size_t)(tag_end - tag), value, value_len) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "profile");
    return 0;
}

static int
parse_text(struct ck_profile *prof, char *text, size_t len, const char *file, const char *dir,
           int include_depth)
{
    struct parse_state st;
    size_t pos = 0;
    int rc = 0;

    memset(&st, 0, sizeof(st));
    st.prof = prof;
    st.file = file;
    st.dir = dir;
    st.include_depth = include_depth;
    if (memchr(text, '\0', len) != NULL) {
        st.line = 1;
        for (size_t i = 0; text[i] != '\0'; i++)
            if (text[i] == '\n')
                st.line++;
        return perr(&st, CK_ERR_CONFIG, "NUL byte");
    }
    while (pos < len) {
        char *line = text + pos;
        char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;

        st.line++;
        pos += line_len + (nl != NULL ? 1 : 0);
        if (line_len > CK_PROFILE_MAX_LINE)
            return perr(&st, CK_ERR_LIMIT, "line longer than %d bytes", CK_PROFILE_MAX_LINE);
        line[line_len] = '\0';
        if ((rc = parse_line(&st, line)) != 0)
            return rc;
    }
    if (st.want_obrace)
        return perr(&st, CK_ERR_CONFIG, "expected '{' after \"%s =\"", st.cur->name);
    if (st.depth > 0) {
        st.line = st.open_line[st.depth];
        return perr(&st, CK_ERR_CONFIG, "'{' is never closed");
    }
    return 0;
}

static int
read_file(const char *path, char **out, size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0;
    int fd, rc = 0;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "%s: %s", path,
                            strerror(errno));
    /* One byte of slack detects files over the limit without trusting st_size. */
    buf = malloc(CK_PROFILE_MAX_FILE + 2);
    if (buf == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "profile");
        goto out;
    }
    if ((rc = ck_fd_read_all(fd, buf, CK_PROFILE_MAX_FILE + 1, &len)) != 0) {
        rc = ck_error_set(rc, "%s: %s", path, ck_error_context());
        goto out;
    }
    if (len > CK_PROFILE_MAX_FILE) {
        rc = ck_error_set(CK_ERR_LIMIT, "%s: larger than %d bytes", path, CK_PROFILE_MAX_FILE);
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

static int
parse_file(struct ck_profile *prof, const char *path, int include_depth, const char *from_file,
           int from_line)
{
    char *text = NULL, *dir = NULL, *slash;
    size_t len = 0;
    int rc;

    if (prof->n_files >= CK_PROFILE_MAX_FILES) {
        if (from_file != NULL)
            return ck_error_set(CK_ERR_LIMIT, "%s:%d: more than %d profile files", from_file,
                                from_line, CK_PROFILE_MAX_FILES);
        return ck_error_set(CK_ERR_LIMIT, "more than %d profile files", CK_PROFILE_MAX_FILES);
    }
    if ((prof->files[prof->n_files] = strdup(path)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "profile");
    path = prof->files[prof->n_files++];
    rc = read_file(path, &text, &len);
    if (rc != 0) {
        if (from_file != NULL)
            rc = ck_error_set(rc, "%s:%d: include: %s", from_file, from_line,
                              ck_error_context());
        goto out;
    }
    dir = strdup(path);
    if (dir == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "profile");
        goto out;
    }
    slash = strrchr(dir, '/');
    if (slash == NULL)
        dir[0] = '\0';
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    rc = parse_text(prof, text, len, path, dir, include_depth);
out:
    free(dir);
    free(text);
    return rc;
}

/* ---- public: load/free ------------------------------------------------------------------ */

int
ck_profile_load(const char *path, struct ck_profile **out)
{
    struct ck_profile *prof;
    int rc;

    *out = NULL;
    prof = calloc(1, sizeof(*prof));
    if (prof == NULL)
        return ck_error_set(CK_ERR_NOMEM, "profile");
    rc = parse_file(prof, path, 0, NULL, 0);
    if (rc != 0) {
        ck_profile_free(prof);
        return rc;
    }
    *out = prof;
    return 0;
}

int
ck_profile_parse_string(const char *text, const char *name, struct ck_profile **out)
{
    struct ck_profile *prof = NULL;
    size_t len = strlen(text);
    char *copy = NULL;
    int rc;

    *out = NULL;
    if (len > CK_PROFILE_MAX_FILE)
        return ck_error_set(CK_ERR_LIMIT, "%s: larger than %d bytes",
                            name != NULL ? name : "<string>", CK_PROFILE_MAX_FILE);
    prof = calloc(1, sizeof(*prof));
    copy = malloc(len + 1);
    if (prof == NULL || copy == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "profile");
        goto out;
    }
    memcpy(copy, text, len + 1);
    if ((prof->files[0] = strdup(name != NULL ? name : "<string>")) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "profile");
        goto out;
    }
    prof->n_files = 1;
    rc = parse_text(prof, copy, len, prof->files[0], "", 0);
    if (rc == 0) {
        *out = prof;
        prof = NULL;
    }
out:
    free(copy);
    ck_profile_free(prof);
    return rc;
}

void
ck_profile_free(struct ck_profile *prof)
{
    if (prof == NULL)
        return;
    node_free_children(&prof->root);
    for (int i = 0; i < prof->n_files; i++)
        free(prof->files[i]);
    free(prof);
}

/* ---- public: lookups -------------------------------------------------------------------- */

struct collect {
    const char *name;            /* relation wanted, or NULL for "every child" */
    bool want_sections;          /* children with value NULL, else relations */
    bool dedupe;
    bool names;                  /* store names rather than values */
    const char **out;
    size_t max;
    size_t count;
};

static void
collect_add(struct collect *c, const char *s)
{
    if (c->dedupe) {
        /* Only the stored prefix can be checked; beyond max, names are counted as new. */
        size_t stored = c->count < c->max ? c->count : c->max;
        for (size_t i = 0; i < stored; i++)
            if (strcmp(c->out[i], s) == 0)
                return;
    }
    if (c->count < c->max)
        c->out[c->count] = s;
    c->count++;
}

static void
collect_children(const struct node *container, struct collect *c)
{
    for (const struct node *n = container->child; n != NULL; n = n->next) {
        if ((n->value == NULL) != c->want_sections)
            continue;
        if (c->name != NULL && strcmp(n->name, c->name) != 0)
            continue;
        collect_add(c, c->names ? n->name : n->value);
    }
}

static void
visit(const struct node *n, const char *const *path, size_t npath, struct collect *c)
{
    if (npath == 0) {
        collect_children(n, c);
        return;
    }
    for (const struct node *k = n->child; k != NULL; k = k->next)
        if (k->value == NULL && strcmp(k->name, path[0]) == 0)
            visit(k, path + 1, npath - 1, c);
}

/* Reads the NULL-terminated name list; false if it is longer than any profile path can be. */
static bool
read_path(va_list ap, const char **path, size_t *npath)
{
    const char *s;

    *npath = 0;
    while ((s = va_arg(ap, const char *)) != NULL) {
        if (*npath >= MAX_PATH_NAMES)
            return false;
        path[(*npath)++] = s;
    }
    return true;
}

const char *
ck_profile_get(const struct ck_profile *prof, ...)
{
    const char *val = NULL;
    va_list ap;
    const char *path[MAX_PATH_NAMES];
    size_t npath;
    bool ok;

    va_start(ap, prof);
    ok = read_path(ap, path, &npath);
    va_end(ap);
    if (prof == NULL || !ok || npath < 2)
        return NULL;
    {
        struct collect c = {path[npath - 1], false, false, false, &val, 1, 0};
        visit(&prof->root, path, npath - 1, &c);
    }
    return val;
}

size_t
ck_profile_get_all(const struct ck_profile *prof, const char **vals, size_t max, ...)
{
    va_list ap;
    const char *path[MAX_PATH_NAMES];
    size_t npath;
    bool ok;
    struct collect c = {NULL, false, false, false, vals, max, 0};

    va_start(ap, max);
    ok = read_path(ap, path, &npath);
    va_end(ap);
    if (prof == NULL || !ok || npath < 2)
        return 0;
    c.name = path[npath - 1];
    visit(&prof->root, path, npath - 1, &c);
    return c.count;
}

size_t
ck_profile_subsections(const struct ck_profile *prof, const char **names, size_t max, ...)
{
    va_list ap;
    const char *path[MAX_PATH_NAMES];
    size_t npath;
    bool ok;
    struct collect c = {NULL, true, true, true, names, max, 0};

    va_start(ap, max);
    ok = read_path(ap, path, &npath);
    va_end(ap);
    if (prof == NULL || !ok)
        return 0;
    visit(&prof->root, path, npath, &c);
    return c.count;
}

size_t
ck_profile_relations(const struct ck_profile *prof, const char **names, size_t max, ...)
{
    va_list ap;
    const char *path[MAX_PATH_NAMES];
    size_t npath;
    bool ok;
    struct collect c = {NULL, false, true, true, names, max, 0};

    va_start(ap, max);
    ok = read_path(ap, path, &npath);
    va_end(ap);
    if (prof == NULL || !ok || npath < 1)
        return 0;
    visit(&prof->root, path, npath, &c);
    return c.count;
}

static int
walk_node(const struct node *container, const char **path, size_t depth, ck_profile_walk_fn fn,
          void *arg)
{
    for (const struct node *n = container->child; n != NULL; n = n->next) {
        int rc = fn(path, depth, n->name, n->value, n->file, n->line, arg);

        if (rc != 0)
            return rc;
        if (n->value == NULL && n->child != NULL) {
            if (depth >= MAX_PATH_NAMES)
                return ck_error_set(CK_ERR_LIMIT, "%s:%d: nested too deep", n->file, n->line);
            path[depth] = n->name;
            if ((rc = walk_node(n, path, depth + 1, fn, arg)) != 0)
                return rc;
        }
    }
    return 0;
}

int
ck_profile_walk(const struct ck_profile *prof, ck_profile_walk_fn fn, void *arg)
{
    const char *path[MAX_PATH_NAMES + 1];

    if (prof == NULL)
        return 0;
    return walk_node(&prof->root, path, 0, fn, arg);
}

/* The node of the first value of a relation (same walk as ck_profile_get). */
static const struct node *
find_relation(const struct node *n, const char *const *path, size_t npath)
{
    if (npath == 1) {
        for (const struct node *k = n->child; k != NULL; k = k->next)
            if (k->value != NULL && strcmp(k->name, path[0]) == 0)
                return k;
        return NULL;
    }
    for (const struct node *k = n->child; k != NULL; k = k->next) {
        if (k->value == NULL && strcmp(k->name, path[0]) == 0) {
            const struct node *r = find_relation(k, path + 1, npath - 1);
            if (r != NULL)
                return r;
        }
    }
    return NULL;
}

const char *
ck_profile_get_loc(const struct ck_profile *prof, const char **file, int *line, ...)
{
    va_list ap;
    const char *path[MAX_PATH_NAMES];
    const struct node *n = NULL;
    size_t npath;
    bool ok;

    va_start(ap, line);
    ok = read_path(ap, path, &npath);
    va_end(ap);
    if (prof != NULL && ok && npath >= 2)
        n = find_relation(&prof->root, path, npath);
    if (file != NULL)
        *file = n != NULL ? n->file : NULL;
    if (line != NULL)
        *line = n != NULL ? n->line : 0;
    return n != NULL ? n->value : NULL;
}

/* ---- value parsers ---------------------------------------------------------------------- */

/* Reads a run of digits into *v, refusing values above max. */
static bool
read_number(const char **pp, int64_t max, int64_t *v)
{
    const char *p = *pp;
    int64_t n = 0;

    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (*p - '0');
        if (n > max)
            return false;
    }
    *v = n;
    *pp = p;
    return true;
}

int
ck_parse_duration(const char *s, int64_t *secs)
{
    const int64_t max = CK_PROFILE_MAX_DURATION;
    const char *p;
    int64_t total = 0, v;
    size_t len;

    if (s == NULL)
        return ck_error_set(CK_ERR_INVAL, "empty duration");
    p = skip_blanks(s);
    len = strlen(p);
    while (len > 0 && is_blank(p[len - 1]))
        len--;
    if (len == 0 || len > 64)
        return ck_error_set(CK_ERR_INVAL, "bad duration \"%s\"", s);

    if (memchr(p, ':', len) != NULL) {
        /* h:mm or h:mm:ss */
        int64_t h, m, sec = 0;
        const char *q = p;

        if (!read_number(&q, max / 3600, &h) || *q != ':')
            goto bad;
        q++;
        if (!read_number(&q, 59, &m))
            goto bad;
        if (*q == ':') {
            q++;
            if (!read_number(&q, 59, &sec))
                goto bad;
        }
        if (q != p + len)
            goto bad;
        total = h * 3600 + m * 60 + sec;
        if (total > max)
            goto bad;
        *secs = total;
        return 0;
    }

    {
        static const struct {
            char unit;
            int64_t mult;
        } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
        const char *q = p, *end = p + len;
        size_t next_unit = 0;
        bool any = false;

        while (q < end) {
            size_t u;

            if (!read_number(&q, max, &v))
                goto bad;
            if (q == end && !any) {
                /* A bare number is seconds. */
                total = v;
                any = true;
                break;
            }
            for (u = next_unit; u < 4; u++)
                if (tolower((unsigned char)*q) == units[u].unit)
                    break;
            if (u == 4)
                goto bad;  /* unknown unit, units out of order, or a unit repeated */
            if (v > (max - total) / units[u].mult)
                goto bad;
            total += v * units[u].mult;
            next_unit = u + 1;
            any = true;
            q++;
            while (q < end && is_blank(*q))
                q++;
        }
        if (!any || total > max)
            goto bad;
        *secs = total;
        return 0;
    }
bad:
    return ck_error_set(CK_ERR_INVAL, "bad duration \"%s\"", s);
}

int
ck_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"y", "yes", "true", "t", "1", "on"};
    static const char *const no[] = {"n", "no", "false", "nil", "0", "off"};

    if (s == NULL)
        return ck_error_set(CK_ERR_INVAL, "empty boolean");
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return ck_error_set(CK_ERR_INVAL, "bad boolean \"%s\" (expected yes or no)", s);
}
