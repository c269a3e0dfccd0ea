/* Store locations and the backend registry: `--db PATH|URI` becomes a backend (ops table) and the
 * location that backend opens. The generic layer (store.c, maint.c) resolves every location here
 * and never calls a backend by name.
 *
 * Accepted forms:
 *   PATH                      SQLite file (the default; a path never has a scheme)
 *   sqlite:PATH, sqlite:///ABS SQLite file
 *   postgresql://..., postgres://...  PostgreSQL (libpq URI, passed whole to the backend)
 * A PostgreSQL URI holding a password (user:pw@ or password=) is refused: a --db argument is
 * visible in ps and shell history; libpq reads passwords from PGPASSFILE or a service file. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/store_int.h"

/* A scheme is RFC 3986's ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) before the first ':' and
 * before any '/': "/srv/a:b" and "./a:b" are paths, "foo:bar" is scheme foo. */
static size_t
scheme_len(const char *uri)
{
    size_t i = 0;

    if (!isalpha((unsigned char)uri[0]))
        return 0;
    while (isalnum((unsigned char)uri[i]) || uri[i] == '+' || uri[i] == '-' || uri[i] == '.')
        i++;
    return uri[i] == ':' ? i : 0;
}

static int
sqlite_locate(const char *uri, const char *rest, char **location)
{
    if (rest == NULL) {
        rest = uri; /* bare path */
    } else if (strncmp(rest, "//", 2) == 0) {
        /* sqlite:///abs/path; anything between the slashes would be a host. */
        if (rest[2] != '/')
            return ck_error_set(CK_ERR_INVAL, "an sqlite: location names a local file "
                                              "(sqlite:PATH or sqlite:///ABSOLUTE/PATH)");
        rest += 2;
    }
    if (*rest == '\0')
        return ck_error_set(CK_ERR_INVAL, "an sqlite: location needs a file name");
    if ((*location = strdup(rest)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "store location");
    return 0;
}

/* Decodes a percent-encoded query keyword into out (truncated keywords cannot be "password"
 * anyway, so truncation is harmless). */
static void
pct_decode(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 1 < size; i++) {
        int hi = i + 2 < n ? ck_hex_digit((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? ck_hex_digit((unsigned char)s[i + 2]) : -1;

        if (s[i] == '%' && hi >= 0 && lo >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
}

static int
postgresql_locate(const char *uri, const char *rest, char **location)
{
    size_t auth_len, at = SIZE_MAX;
    const char *auth, *query;

    if (rest == NULL || strncmp(rest, "//", 2) != 0)
        return ck_error_set(CK_ERR_INVAL, "a PostgreSQL location is a URI: "
                                          "postgresql://[USER@]HOST[:PORT]/DBNAME[?PARAMS]");
    auth = rest + 2;
    auth_len = strcspn(auth, "/?#");
    for (size_t i = 0; i < auth_len; i++) {
        if (auth[i] == '@')
            at = i;
    }
    /* libpq ends the user part at the first '@'; any ':' before the last one is refused,
     * which covers that and more. */
    if (at != SIZE_MAX && memchr(auth, ':', at) != NULL)
        return ck_error_set(CK_ERR_POLICY, "the PostgreSQL URI holds a password: give it in "
                                           "PGPASSFILE (~/.pgpass) or a service file, never in "
                                           "--db or a configuration line");
    query = strchr(auth + auth_len, '?');
    while (query != NULL) {
        const char *kw = query + 1;
        size_t kw_len = strcspn(kw, "=&#");
        char name[32];

        pct_decode(kw, kw_len, name, sizeof(name));
        if (strcmp(name, "password") == 0)
            return ck_error_set(CK_ERR_POLICY, "the PostgreSQL URI holds a password= "
                                               "parameter: give it in PGPASSFILE (~/.pgpass) or "
                                               "a service file, never in --db or a "
                                               "configuration line");
        query = strchr(kw, '&');
    }
    if ((*location = strdup(uri)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "store location");
    return 0;
}

static const char *const sqlite_schemes[] = {"sqlite", NULL};
static const char *const postgresql_schemes[] = {"postgresql", "postgres", NULL};

/* The registry. A backend is one line: its name, URI schemes, how a URI becomes its location
 * (a pure string function, so a URI is checked even where the backend is not built) and its
 * ops (NULL: not built into this binary, `missing` says why). */
struct store_backend {
    const char *name;
    const char *const *schemes;
    int (*locate)(const char *uri, const char *rest, char **location);
    const struct ck_store_ops *ops;
    const char *missing;
};

static const struct store_backend backends[] = {
    {"sqlite", sqlite_schemes, sqlite_locate, &ck_store_sqlite_ops, NULL},
#ifdef CK_STORE_WITH_POSTGRESQL
    {"postgresql", postgresql_schemes, postgresql_locate, &ck_store_postgresql_ops, NULL},
#else
    {"postgresql", postgresql_schemes, postgresql_locate, NULL,
     "this cablekey was built without libpq"},
#endif
};

static const struct store_backend *
find_scheme(const char *scheme, size_t len)
{
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        for (const char *const *s = backends[i].schemes; *s != NULL; s++) {
            if (strlen(*s) == len && strncasecmp(*s, scheme, len) == 0)
                return &backends[i];
        }
    }
    return NULL;
}

const struct ck_store_ops *
ck_store_backend_find(const char *name)
{
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        if (strcmp(backends[i].name, name) == 0)
            return backends[i].ops;
    }
    return NULL;
}

void
ck_store_uri_clear(ck_store_uri *u)
{
    if (u == NULL)
        return;
    /* A location may be a connection string: wipe it like a secret out of caution. */
    if (u->location != NULL)
        ck_free_secret(u->location, strlen(u->location) + 1);
    memset(u, 0, sizeof(*u));
}

int
ck_store_uri_parse(const char *uri, ck_store_uri *out)
{
    const struct store_backend *b;
    const char *rest = NULL;
    size_t n, slen;
    int ret;

    memset(out, 0, sizeof(*out));
    if (uri == NULL || *uri == '\0')
        return ck_error_set(CK_ERR_INVAL, "no database path or URI");
    n = strnlen(uri, CK_STORE_URI_MAX + 1);
    if (n > CK_STORE_URI_MAX)
        return ck_error_set(CK_ERR_LIMIT, "database location longer than %d bytes",
                            CK_STORE_URI_MAX);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)uri[i] < 0x20 || uri[i] == 0x7f)
            return ck_error_set(CK_ERR_INVAL, "database location holds a control character");
    }
    slen = scheme_len(uri);
    if (slen == 0) {
        b = &backends[0]; /* a bare path: the default, SQLite */
    } else {
        b = find_scheme(uri, slen);
        if (b == NULL) {
            char scheme[33];
            ck_strlcpy(scheme, uri, slen + 1 < sizeof(scheme) ? slen + 1 : sizeof(scheme));
            return ck_error_set(CK_ERR_UNSUPPORTED,
                                "unknown database scheme \"%s\" (known: sqlite, postgresql, "
                                "postgres; for a file whose name has a colon, write ./%s:...)",
                                scheme, scheme);
        }
        rest = uri + slen + 1;
    }
    if ((ret = b->locate(uri, rest, &out->location)) != 0)
        return ret;
    out->backend = b->name;
    out->ops = b->ops;
    if (b->ops == NULL) {
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "%s database: backend not built: %s", b->name,
                           b->missing);
        ck_store_uri_clear(out);
        return ret;
    }
    return 0;
}

int
ck_store_default_stash(const char *uri, char **out)
{
    ck_store_uri u;
    int ret;

    *out = NULL;
    if ((ret = ck_store_uri_parse(uri, &u)) != 0)
        return ret;
    if (u.ops->default_stash == NULL)
        ret = ck_error_set(CK_ERR_INVAL, "a %s database has no default stash file: name one "
                                         "(--stash FILE, key_stash_file)", u.backend);
    else
        ret = u.ops->default_stash(u.location, out);
    ck_store_uri_clear(&u);
    return ret;
}
