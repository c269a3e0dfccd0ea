/* `db dump` / `db load` (include/cablekey/store_dump.h; the format: docs/dump-format.md).
 *
 * Backend-neutral: a dump reads through the backend's ordinary read ops inside its snapshot op;
 * a load parses the file twice, once to check everything before the target exists, once inside
 * the backend's load_dump transaction, feeding its sink. Keys travel as the stored ciphertext;
 * they are decrypted only to prove they belong to the stash and their rows, then wiped. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/store_dump.h"
#include "cablekey/util.h"
#include "store/store_int.h"

#define DUMP_MAGIC "cablekey-dump"
#define DUMP_MAX_FIELDS 20
#define DUMP_MAX_BLOB 8192 /* hex-decoded bytes of one field (keys, salts, certificates) */
#define DUMP_DEVICE_PAGE 1000
#define DUMP_PROV_PAGE 1000

/* ------------------------------------------------------------------------------ writing */

struct dump_writer {
    FILE *out;
    EVP_MD_CTX *md;
    char *line;
    size_t len;
    int err;          /* first error; later appends do nothing */
};

static void
w_raw(struct dump_writer *w, const char *s, size_t n)
{
    if (w->err != 0)
        return;
    if (n >= CK_DUMP_LINE_MAX - 1 - w->len) {
        w->err = ck_error_set(CK_ERR_LIMIT, "dump: a record is longer than %d bytes",
                              CK_DUMP_LINE_MAX);
        return;
    }
    memcpy(w->line + w->len, s, n);
    w->len += n;
}

static void
w_fmt(struct dump_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
w_fmt(struct dump_writer *w, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        if (w->err == 0)
            w->err = ck_error_set(CK_ERR_LIMIT, "dump: field too long");
        return;
    }
    w_raw(w, buf, (size_t)n);
}

/* Text: "-" for none or empty; bytes outside 0x21..0x7e, '%' and a lone "-" as %HH. */
static void
w_text(struct dump_writer *w, const char *key, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    w_fmt(w, " %s=", key);
    if (s == NULL || *s == '\0') {
        w_raw(w, "-", 1);
        return;
    }
    if (strcmp(s, "-") == 0) {
        w_raw(w, "%2D", 3);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p > 0x20 && *p < 0x7f && *p != '%') {
            w_raw(w, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            w_raw(w, e, 3);
        }
    }
}

/* Blobs in lower-case hex; "-" for none. */
static void
w_hex(struct dump_writer *w, const char *key, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    w_fmt(w, " %s=", key);
    if (p == NULL || n == 0) {
        w_raw(w, "-", 1);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char e[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
        w_raw(w, e, 2);
    }
}

static void
w_int(struct dump_writer *w, const char *key, int64_t v)
{
    w_fmt(w, " %s=%lld", key, (long long)v);
}

static void
w_begin(struct dump_writer *w, const char *type)
{
    w->len = 0;
    w_raw(w, type, strlen(type));
}

/* Ends the line: into the checksum (unless it is the trailer) and out. */
static void
w_end(struct dump_writer *w, bool hashed)
{
    w_raw(w, "\n", 1);
    if (w->err != 0)
        return;
    if (hashed && EVP_DigestUpdate(w->md, w->line, w->len) != 1)
        w->err = ck_error_set(CK_ERR_CRYPTO, "dump: SHA-256");
    else if (fwrite(w->line, 1, w->len, w->out) != w->len)
        w->err = ck_error_set(CK_ERR_IO, "dump: write: %s", strerror(errno));
}

static void
w_key_row(struct dump_writer *w, const char *type, const struct ck_store_key_row *k)
{
    w_begin(w, type);
    w_int(w, "kvno", k->kvno);
    w_int(w, "enctype", k->enctype);
    w_int(w, "salt-type", k->salt_type);
    w_hex(w, "salt", k->salt, k->salt_len);
    w_int(w, "mkvno", k->mkvno);
    w_hex(w, "data", k->key_enc, k->key_enc_len);
    w_end(w, true);
}

struct dump_ctx {
    ck_store *store;
    struct dump_writer w;
    ck_store_dump_info info;
    char **names;
    size_t n_names, cap_names;
    char last_mac[CK_DEVICE_MAC_LEN + 1]; /* device paging */
};

static int
dump_policy(const ck_policy *pol, void *arg)
{
    struct dump_ctx *d = arg;
    struct dump_writer *w = &d->w;

    w_begin(w, "policy");
    w_text(w, "name", pol->name);
    w_int(w, "min-length", pol->min_length);
    w_int(w, "min-classes", pol->min_classes);
    w_int(w, "history", pol->history);
    w_int(w, "min-life", pol->min_life);
    w_int(w, "max-life", pol->max_life);
    w_int(w, "max-failure", pol->max_failure);
    w_int(w, "failure-interval", pol->failure_interval);
    w_int(w, "lockout-duration", pol->lockout_duration);
    w_int(w, "created", pol->created);
    w_int(w, "modified", pol->modified);
    w_end(w, true);
    d->info.policies++;
    return w->err;
}

static int
collect_name(const char *name, void *arg)
{
    struct dump_ctx *d = arg;

    if (d->n_names == d->cap_names) {
        size_t cap = d->cap_names ? 2 * d->cap_names : 256;
        char **n = realloc(d->names, cap * sizeof(*n));
        if (n == NULL)
            return ck_error_set(CK_ERR_NOMEM, "dump: principal names");
        d->names = n;
        d->cap_names = cap;
    }
    if ((d->names[d->n_names] = strdup(name)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "dump: principal names");
    d->n_names++;
    return 0;
}

static int
dump_principal(struct dump_ctx *d, const char *name)
{
    const struct ck_store_ops *ops = d->store->ops;
    struct dump_writer *w = &d->w;
    struct ck_store_princ_row row;
    struct ck_store_key_row *hist = NULL;
    size_t n_hist = 0;
    const ck_db_lockout *l = &row.lockout;
    int ret;

    if ((ret = ops->get(d->store->be, name, &row)) != 0)
        return ret;
    if ((ret = ops->pw_history(d->store->be, name, CK_POLICY_MAX_HISTORY, &hist, &n_hist)) != 0)
        goto out;
    w_begin(w, "principal");
    w_text(w, "name", row.name);
    w_int(w, "attributes", row.attributes);
    w_int(w, "max-life", row.max_life);
    w_int(w, "max-renew", row.max_renew);
    w_int(w, "expires", row.expires);
    w_int(w, "pw-expires", row.pw_expires);
    w_int(w, "kvno", row.kvno);
    w_int(w, "created", row.created);
    w_int(w, "modified", row.modified);
    w_text(w, "policy", row.policy);
    w_int(w, "last-pwd-change", row.last_pwd_change);
    w_end(w, true);
    d->info.principals++;
    for (size_t i = 0; i < row.n_keys; i++, d->info.keys++)
        w_key_row(w, "key", &row.keys[i]);
    /* A principal that never had an authentication event has no lockout state to carry. */
    if (l->fail_count != 0 || l->last_failed != 0 || l->last_success != 0 || l->epoch != 0) {
        w_begin(w, "lockout");
        w_int(w, "fail-count", l->fail_count);
        w_int(w, "last-failed", l->last_failed);
        w_int(w, "last-success", l->last_success);
        w_int(w, "epoch", (int64_t)l->epoch);
        w_end(w, true);
        d->info.lockouts++;
    }
    /* Oldest first, the order a load inserts them in. */
    for (size_t i = n_hist; i > 0; i--, d->info.history++)
        w_key_row(w, "history", &hist[i - 1]);
    ret = w->err;
out:
    ck_store_free_key_rows_int(hist, n_hist);
    ck_store_princ_row_clear(&row);
    return ret;
}

static int
dump_device(const struct ck_store_device_row *row, void *arg)
{
    struct dump_ctx *d = arg;
    struct dump_writer *w = &d->w;

    w_begin(w, "device");
    w_text(w, "mac", row->mac);
    w_text(w, "principal", row->principal);
    w_int(w, "state", row->state);
    w_hex(w, "pin", row->has_pin ? row->spki_sha256 : NULL, CK_DEVICE_SPKI_HASH_LEN);
    w_int(w, "created", row->created);
    w_int(w, "modified", row->modified);
    w_int(w, "revoked", row->revoked);
    w_text(w, "comment", row->comment);
    w_hex(w, "cert", row->has_cert ? row->cert_sha256 : NULL, 32);
    w_end(w, true);
    ck_strlcpy(d->last_mac, row->mac, sizeof(d->last_mac));
    d->info.devices++;
    return w->err;
}

/* issue 10: one provisioning row as a prov-* record; remembers its key for the next page. */
struct prov_page {
    struct dump_ctx *d;
    const struct ck_prov_dump_table *t;
    int64_t last_int;
    char last_text[CK_PROV_DUMP_KEY_MAX];
    size_t n;
};

static int
dump_prov_row(const struct ck_prov_row *r, void *arg)
{
    struct prov_page *pp = arg;
    struct dump_writer *w = &pp->d->w;
    int ret = 0;

    w_begin(w, pp->t->record);
    for (size_t i = 0; i < pp->t->n_cols && ret == 0; i++) {
        const struct ck_prov_dump_col *col = &pp->t->cols[i];

        if (col->type == CK_PA_INT) {
            w_int(w, col->name, r->i64(r, (int)i));
        } else if (col->type == CK_PA_TEXT) {
            char *t = r->null(r, (int)i) ? NULL : r->text(r, (int)i);

            if (t == NULL && !r->null(r, (int)i))
                ret = ck_error_set(CK_ERR_NOMEM, "dump");
            w_text(w, col->name, t);
            free(t);
        } else {
            uint8_t *p = NULL;
            size_t len = 0;

            ret = r->blob(r, (int)i, &p, &len);
            w_hex(w, col->name, p, len);
            free(p);
        }
    }
    w_end(w, true);
    if (pp->t->cols[0].type == CK_PA_INT) {
        pp->last_int = r->i64(r, 0);
    } else {
        char *t = r->text(r, 0);

        if (t == NULL || strlen(t) >= sizeof(pp->last_text))
            ret = ret != 0 ? ret : ck_error_set(CK_ERR_DB, "dump: %s key", pp->t->record);
        else
            ck_strlcpy(pp->last_text, t, sizeof(pp->last_text));
        free(t);
    }
    pp->n++;
    pp->d->info.prov_rows++;
    return ret != 0 ? ret : w->err;
}

static int
dump_prov(struct dump_ctx *d)
{
    const struct ck_store_ops *ops = d->store->ops;
    int ret;

    if (ops->prov_query == NULL)
        return 0;
    for (size_t t = 0; t < ck_prov_dump_n_tables; t++) {
        struct prov_page pp = {.d = d, .t = &ck_prov_dump_tables[t]};

        do {
            struct ck_prov_arg a[2] = {
                pp.t->cols[0].type == CK_PA_INT
                    ? (struct ck_prov_arg){.type = CK_PA_INT, .i = pp.last_int}
                    : (struct ck_prov_arg){.type = CK_PA_TEXT, .s = pp.last_text},
                {.type = CK_PA_INT, .i = DUMP_PROV_PAGE}};
            char last[CK_PROV_DUMP_KEY_MAX];

            /* The key is bound by pointer: a copy, as the callback moves it on. */
            ck_strlcpy(last, pp.last_text, sizeof(last));
            a[0].s = last;
            pp.n = 0;
            if ((ret = ops->prov_query(d->store->be, "dump", pp.t->page_sql, a, 2,
                                       dump_prov_row, &pp)) != 0)
                return ret;
        } while (pp.n == DUMP_PROV_PAGE);
    }
    return 0;
}

/* Everything, inside the backend's snapshot. */
static int
dump_walk(void *arg)
{
    struct dump_ctx *d = arg;
    const struct ck_store_ops *ops = d->store->ops;
    void *be = d->store->be;
    struct dump_writer *w = &d->w;
    struct ck_store_mkey_row mrow;
    ck_realm_info realm;
    ck_audit_retention rt;
    uint8_t md[32];
    unsigned md_len = 0;
    int ret;

    memset(&mrow, 0, sizeof(mrow));
    memset(&realm, 0, sizeof(realm));
    if ((ret = ops->load_realm(be, &realm, &mrow)) != 0 ||
        (ret = ops->generation(be, &d->info.generation)) != 0 ||
        (ret = ops->audit_get_retention(be, &rt)) != 0)
        goto out;
    ck_strlcpy(d->info.realm, realm.name, sizeof(d->info.realm));
    d->info.master_kvno = mrow.kvno;
    ck_now(&d->info.created, NULL);

    w_begin(w, DUMP_MAGIC);
    w_int(w, "version", CK_DUMP_FORMAT_VERSION);
    w_text(w, "realm", realm.name);
    w_int(w, "created", d->info.created);
    w_int(w, "generation", (int64_t)d->info.generation);
    w_end(w, true);
    w_begin(w, "master-key");
    w_int(w, "kvno", mrow.kvno);
    w_int(w, "enctype", mrow.enctype);
    w_hex(w, "check", mrow.check, mrow.check_len);
    w_end(w, true);
    w_begin(w, "realm");
    w_fmt(w, " enctypes=");
    for (size_t i = 0; i < realm.n_enctypes; i++)
        w_fmt(w, "%s%d", i ? "," : "", (int)realm.enctypes[i]);
    w_int(w, "max-life", realm.max_life);
    w_int(w, "max-renew", realm.max_renew);
    w_int(w, "default-attributes", realm.default_attributes);
    w_end(w, true);
    w_begin(w, "audit-retention");
    w_int(w, "keep-rows", rt.keep_rows);
    w_int(w, "keep-days", rt.keep_days);
    w_end(w, true);
    if ((ret = w->err) != 0 || (ret = ops->policy_list(be, dump_policy, d)) != 0 ||
        (ret = ops->list(be, collect_name, d)) != 0)
        goto out;
    for (size_t i = 0; i < d->n_names; i++) {
        if ((ret = dump_principal(d, d->names[i])) != 0)
            goto out;
    }
    for (;;) {
        char after[CK_DEVICE_MAC_LEN + 1];
        size_t n = 0;

        /* A copy: the backend may read `after` while the callback moves last_mac on. */
        ck_strlcpy(after, d->last_mac, sizeof(after));
        if ((ret = ops->device_list(be, NULL, after[0] ? after : NULL, DUMP_DEVICE_PAGE,
                                    dump_device, d, &n)) != 0)
            goto out;
        if (n < DUMP_DEVICE_PAGE)
            break;
    }
    if ((ret = dump_prov(d)) != 0)
        goto out;
    if (EVP_DigestFinal_ex(w->md, md, &md_len) != 1 || md_len != sizeof(md)) {
        ret = ck_error_set(CK_ERR_CRYPTO, "dump: SHA-256");
        goto out;
    }
    w_begin(w, "end");
    w_int(w, "policies", d->info.policies);
    w_int(w, "principals", d->info.principals);
    w_int(w, "keys", d->info.keys);
    w_int(w, "lockouts", d->info.lockouts);
    w_int(w, "history", d->info.history);
    w_int(w, "devices", d->info.devices);
    w_int(w, "prov", d->info.prov_rows);
    w_hex(w, "sha256", md, sizeof(md));
    w_end(w, false);
    ret = w->err;
out:
    ck_store_mkey_row_clear(&mrow);
    return ret;
}

int
ck_store_dump(ck_store *store, FILE *out, ck_store_dump_info *info)
{
    struct dump_ctx d;
    int ret;

    memset(&d, 0, sizeof(d));
    d.store = store;
    d.w.out = out;
    d.w.line = malloc(CK_DUMP_LINE_MAX);
    d.w.md = EVP_MD_CTX_new();
    if (d.w.line == NULL || d.w.md == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "dump");
        goto out;
    }
    if (EVP_DigestInit_ex(d.w.md, EVP_sha256(), NULL) != 1) {
        ret = ck_error_set(CK_ERR_CRYPTO, "dump: SHA-256");
        goto out;
    }
    if ((ret = store->ops->snapshot(store->be, dump_walk, &d)) != 0)
        goto out;
    if (fflush(out) != 0)
        ret = ck_error_set(CK_ERR_IO, "dump: write: %s", strerror(errno));
out:
    if (ret == 0 && info != NULL)
        *info = d.info;
    for (size_t i = 0; i < d.n_names; i++)
        free(d.names[i]);
    free(d.names);
    free(d.w.line);
    EVP_MD_CTX_free(d.w.md);
    return ret;
}

/* ------------------------------------------------------------------------------ reading */

enum section {
    S_HEADER, S_MKEY, S_REALM, S_RETENTION, S_POLICY, S_PRINCIPAL, S_DEVICE, S_PROV, S_END
};

struct load_ctx {
    const char *path;
    FILE *in;
    const char *stash_path;
    ck_store *vstore;        /* realm, master key (from the stash) and, in pass 2, the backend */
    bool second;             /* pass 2: feed the sink */
    const struct ck_store_load_sink *sink;
    void *sink_be;
    EVP_MD_CTX *md;
    char *line;
    size_t lineno;
    enum section sec;
    /* What the header and master-key lines said (pass 2 must read the same). */
    struct ck_store_mkey_row mrow;
    ck_audit_retention retention;
    ck_store_dump_info info;   /* counts as read */
    /* The principal being read: written at its first non-key line. */
    struct ck_store_princ_row cur;
    bool cur_pending;
    char *cur_name;            /* the principal that key, lockout, history records belong to */
    int sub;                   /* within a principal: 0 keys, 1 lockout seen, 2 history */
    char *last_name;           /* order checks: last policy, principal, device */
    char *mkey_check_hex;
    int64_t version;           /* the dump's format version (1 or 2) */
};

static int
lerr(struct load_ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int
lerr(struct load_ctx *c, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ck_error_set(code, "dump %s line %zu: %s; nothing was loaded", c->path, c->lineno,
                        msg);
}

/* The fields of one line, split in place: type, then exactly the expected "key=value"s. */
struct fields {
    const char *type;
    char *val[DUMP_MAX_FIELDS];
    size_t n;
};

static int
split_fields(struct load_ctx *c, char *line, const char *const *keys, struct fields *f)
{
    char *tok;
    size_t i = 0;

    for (tok = line; *tok != ' ' && *tok != '\0'; tok++)
        ;
    f->n = 0;
    for (size_t k = 0; keys[k] != NULL; k++) {
        char *eq;
        size_t klen = strlen(keys[k]);

        if (*tok != ' ')
            return lerr(c, CK_ERR_DECODE, "%s: field %s missing", f->type, keys[k]);
        tok++;
        eq = tok;
        if (strncmp(eq, keys[k], klen) != 0 || eq[klen] != '=')
            return lerr(c, CK_ERR_DECODE, "%s: expected field %s", f->type, keys[k]);
        f->val[i++] = eq + klen + 1;
        for (tok = eq + klen + 1; *tok != ' ' && *tok != '\0'; tok++)
            ;
        if (tok == eq + klen + 1)
            return lerr(c, CK_ERR_DECODE, "%s: field %s is empty", f->type, keys[k]);
    }
    if (*tok != '\0')
        return lerr(c, CK_ERR_DECODE, "%s: unexpected data after the last field", f->type);
    /* Terminate each value (the separators are after each value's end). */
    for (size_t k = 0; k < i; k++) {
        char *e = f->val[k];
        while (*e != ' ' && *e != '\0')
            e++;
        *e = '\0';
    }
    f->n = i;
    return 0;
}

static int
get_int(struct load_ctx *c, const char *what, const char *v, int64_t min, int64_t max,
        int64_t *out)
{
    if (ck_parse_int64(v, min, max, out) != 0)
        return lerr(c, CK_ERR_DECODE, "%s: not a number from %lld to %lld", what,
                    (long long)min, (long long)max);
    return 0;
}

/* Undoes w_text in place; "-" gives NULL. */
static int
get_text(struct load_ctx *c, const char *what, char *v, char **out)
{
    char *o = v;

    *out = NULL;
    if (strcmp(v, "-") == 0)
        return 0;
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '%') {
            int hi = ck_hex_digit(p[1]), lo = hi < 0 ? -1 : ck_hex_digit(p[2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return lerr(c, CK_ERR_DECODE, "%s: bad escape", what);
            *o++ = (char)(hi << 4 | lo);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    *out = v;
    return 0;
}

/* Hex into a new buffer ("-": NULL, 0). */
static int
get_hex(struct load_ctx *c, const char *what, const char *v, uint8_t **out, size_t *len)
{
    size_t n = strlen(v);
    uint8_t *b;

    *out = NULL;
    *len = 0;
    if (strcmp(v, "-") == 0)
        return 0;
    if (n % 2 != 0 || n / 2 > DUMP_MAX_BLOB)
        return lerr(c, CK_ERR_DECODE, "%s: not hex of at most %d bytes", what, DUMP_MAX_BLOB);
    if ((b = malloc(n / 2)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "dump");
    for (size_t i = 0; i < n / 2; i++) {
        int hi = ck_hex_digit((unsigned char)v[2 * i]);
        int lo = ck_hex_digit((unsigned char)v[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return lerr(c, CK_ERR_DECODE, "%s: not hex", what);
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *len = n / 2;
    return 0;
}

/* Strictly increasing names within a section (the dump's order, and no duplicates). */
static int
check_order(struct load_ctx *c, const char *what, const char *name)
{
    char *copy;

    if (c->last_name != NULL && strcmp(c->last_name, name) >= 0)
        return lerr(c, CK_ERR_DECODE, "%s %s is out of order or repeated", what, name);
    if ((copy = strdup(name)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "dump");
    free(c->last_name);
    c->last_name = copy;
    return 0;
}

static int
read_key_row(struct load_ctx *c, struct fields *f, const char *owner, bool history,
             struct ck_store_key_row *k)
{
    int64_t kvno, enctype, salt_type, mkvno;
    ck_db_key dk;
    int ret;

    memset(k, 0, sizeof(*k));
    if ((ret = get_int(c, "kvno", f->val[0], 1, UINT32_MAX, &kvno)) != 0 ||
        (ret = get_int(c, "enctype", f->val[1], INT32_MIN, INT32_MAX, &enctype)) != 0 ||
        (ret = get_int(c, "salt-type", f->val[2], INT32_MIN, INT32_MAX, &salt_type)) != 0 ||
        (ret = get_hex(c, "salt", f->val[3], &k->salt, &k->salt_len)) != 0 ||
        (ret = get_int(c, "mkvno", f->val[4], 1, UINT32_MAX, &mkvno)) != 0 ||
        (ret = get_hex(c, "data", f->val[5], &k->key_enc, &k->key_enc_len)) != 0)
        return ret;
    k->kvno = (uint32_t)kvno;
    k->enctype = (int32_t)enctype;
    k->salt_type = (int32_t)salt_type;
    k->mkvno = (uint32_t)mkvno;
    if (k->key_enc == NULL)
        return lerr(c, CK_ERR_DECODE, "%s: no key data", history ? "history" : "key");
    if (k->salt_len > CK_STORE_MAX_SALT)
        return lerr(c, CK_ERR_DECODE, "salt longer than %d bytes", CK_STORE_MAX_SALT);
    if (!history && !ck_enctype_is_supported(k->enctype))
        return lerr(c, CK_ERR_DECODE, "enctype %d is not supported", (int)k->enctype);
    /* The proof that the stash is the right one and the row belongs to this principal, kvno and
     * enctype (the encryption binds them); the clear key is wiped at once. */
    if ((ret = ck_store_decrypt_key_row(c->vstore, owner, k, &dk)) != 0)
        return lerr(c, CK_ERR_INTEGRITY, "%s", ck_error_context());
    ck_key_clear(&dk.key);
    free(dk.salt);
    return 0;
}

static void
key_row_free(struct ck_store_key_row *k)
{
    free(k->salt);
    free(k->key_enc);
    memset(k, 0, sizeof(*k));
}

/* Writes the principal being read (pass 2) and forgets it. */
static int
flush_principal(struct load_ctx *c)
{
    int ret = 0;

    if (!c->cur_pending)
        return 0;
    if (c->second)
        ret = c->sink->principal(c->sink_be, &c->cur);
    if (ret != 0)
        ret = lerr(c, ret, "principal %s: %s", c->cur.name, ck_error_context());
    ck_store_princ_row_clear(&c->cur);
    c->cur_pending = false;
    return ret;
}

static int
do_header(struct load_ctx *c, char *line)
{
    static const char *const keys[] = {"version", "realm", "created", "generation", NULL};
    struct fields f = {.type = DUMP_MAGIC};
    int64_t version, created, gen;
    char *realm;
    int ret;

    if (strncmp(line, DUMP_MAGIC " ", strlen(DUMP_MAGIC) + 1) != 0)
        return lerr(c, CK_ERR_DECODE, "not a cablekey dump (no '%s' header)", DUMP_MAGIC);
    /* The version first, so a newer format says so rather than failing on its fields. */
    if (strncmp(line + strlen(DUMP_MAGIC), " version=", 9) == 0) {
        const char *v = line + strlen(DUMP_MAGIC) + 9;
        char num[16];
        size_t n = strcspn(v, " ");
        if (n < sizeof(num)) {
            memcpy(num, v, n);
            num[n] = '\0';
            if (ck_parse_int64(num, 0, INT32_MAX, &version) == 0 &&
                (version < 1 || version > CK_DUMP_FORMAT_VERSION))
                return lerr(c, CK_ERR_UNSUPPORTED,
                            "dump format version %lld; this cablekey reads versions 1 to %d",
                            (long long)version, CK_DUMP_FORMAT_VERSION);
        }
    }
    if ((ret = split_fields(c, line, keys, &f)) != 0 ||
        (ret = get_int(c, "version", f.val[0], 1, CK_DUMP_FORMAT_VERSION, &version)) != 0 ||
        (ret = get_text(c, "realm", f.val[1], &realm)) != 0 ||
        (ret = get_int(c, "created", f.val[2], 0, INT64_MAX, &created)) != 0 ||
        (ret = get_int(c, "generation", f.val[3], 0, INT64_MAX, &gen)) != 0)
        return ret;
    if (realm == NULL || strlen(realm) > CK_REALM_MAX_LEN)
        return lerr(c, CK_ERR_DECODE, "realm name missing or too long");
    if (c->second && strcmp(realm, c->vstore->realm.name) != 0)
        return lerr(c, CK_ERR_INTEGRITY, "the dump changed while it was loaded");
    ck_strlcpy(c->vstore->realm.name, realm, sizeof(c->vstore->realm.name));
    ck_strlcpy(c->info.realm, realm, sizeof(c->info.realm));
    c->version = version;
    c->info.created = created;
    c->info.generation = (uint64_t)gen;
    return 0;
}

static int
do_mkey(struct load_ctx *c, struct fields *f)
{
    struct ck_store_mkey_row row;
    int64_t kvno, enctype;
    int ret;

    memset(&row, 0, sizeof(row));
    if ((ret = get_int(c, "kvno", f->val[0], 1, UINT32_MAX, &kvno)) != 0 ||
        (ret = get_int(c, "enctype", f->val[1], INT32_MIN, INT32_MAX, &enctype)) != 0 ||
        (ret = get_hex(c, "check", f->val[2], &row.check, &row.check_len)) != 0)
        goto out;
    if (row.check == NULL) {
        ret = lerr(c, CK_ERR_DECODE, "master key check value missing");
        goto out;
    }
    row.kvno = (uint32_t)kvno;
    row.enctype = (int32_t)enctype;
    c->info.master_kvno = row.kvno;
    if (c->second) {
        if (row.kvno != c->mrow.kvno || row.check_len != c->mrow.check_len ||
            memcmp(row.check, c->mrow.check, row.check_len) != 0)
            ret = lerr(c, CK_ERR_INTEGRITY, "the dump changed while it was loaded");
        goto out;
    }
    /* Before any key: the stash must hold the key the dump's keys are encrypted under. */
    if ((ret = ck_store_stash_check_int(c->stash_path, &c->vstore->realm, &row,
                                        &c->vstore->mkey, &c->vstore->mkvno)) != 0) {
        ret = lerr(c, ret, "%s (the dump was made under master key kvno %u of realm %s; the "
                           "target needs that realm's stash)", ck_error_context(), row.kvno,
                   c->vstore->realm.name);
        goto out;
    }
    c->vstore->realm.master_kvno = row.kvno;
    c->mrow = row;
    memset(&row, 0, sizeof(row));
out:
    ck_store_mkey_row_clear(&row);
    return ret;
}

static int
do_realm(struct load_ctx *c, struct fields *f)
{
    ck_realm_info *r = &c->vstore->realm;
    int64_t life, renew, attrs;
    const char *s = f->val[0];
    int ret;

    r->n_enctypes = 0;
    while (*s != '\0') {
        char num[16];
        size_t n = strcspn(s, ",");
        int64_t e;

        if (n == 0 || n >= sizeof(num) || r->n_enctypes >= CK_STORE_MAX_ENCTYPES)
            return lerr(c, CK_ERR_DECODE, "enctypes: 1 to %d numbers", CK_STORE_MAX_ENCTYPES);
        memcpy(num, s, n);
        num[n] = '\0';
        if ((ret = get_int(c, "enctypes", num, INT32_MIN, INT32_MAX, &e)) != 0)
            return ret;
        if (!ck_enctype_is_supported((int32_t)e))
            return lerr(c, CK_ERR_DECODE, "enctype %lld is not supported", (long long)e);
        r->enctypes[r->n_enctypes++] = (int32_t)e;
        s += n;
        if (*s == ',' && *++s == '\0')
            return lerr(c, CK_ERR_DECODE, "enctypes: trailing comma");
    }
    if (r->n_enctypes == 0)
        return lerr(c, CK_ERR_DECODE, "enctypes: none");
    if ((ret = get_int(c, "max-life", f->val[1], 1, CK_REALM_LIFE_MAX, &life)) != 0 ||
        (ret = get_int(c, "max-renew", f->val[2], 1, CK_REALM_LIFE_MAX, &renew)) != 0 ||
        (ret = get_int(c, "default-attributes", f->val[3], 0, UINT32_MAX, &attrs)) != 0)
        return ret;
    r->max_life = life;
    r->max_renew = renew;
    r->default_attributes = (uint32_t)attrs;
    return 0;
}

static int
do_policy(struct load_ctx *c, struct fields *f)
{
    ck_policy pol;
    int64_t v[10];
    char *name;
    int ret;

    memset(&pol, 0, sizeof(pol));
    if ((ret = get_text(c, "name", f->val[0], &name)) != 0)
        return ret;
    if (name == NULL || strlen(name) > CK_POLICY_NAME_MAX)
        return lerr(c, CK_ERR_DECODE, "policy name missing or too long");
    for (size_t i = 0; i < 10; i++) {
        if ((ret = get_int(c, "policy field", f->val[i + 1], 0, INT64_MAX, &v[i])) != 0)
            return ret;
    }
    ck_strlcpy(pol.name, name, sizeof(pol.name));
    if (v[0] > UINT32_MAX || v[1] > UINT32_MAX || v[2] > UINT32_MAX || v[5] > UINT32_MAX)
        return lerr(c, CK_ERR_DECODE, "policy %s: a count out of range", name);
    pol.min_length = (uint32_t)v[0];
    pol.min_classes = (uint32_t)v[1];
    pol.history = (uint32_t)v[2];
    pol.min_life = v[3];
    pol.max_life = v[4];
    pol.max_failure = (uint32_t)v[5];
    pol.failure_interval = v[6];
    pol.lockout_duration = v[7];
    pol.created = v[8];
    pol.modified = v[9];
    if (ck_policy_check(&pol) != 0)
        return lerr(c, CK_ERR_DECODE, "%s", ck_error_context());
    if ((ret = check_order(c, "policy", pol.name)) != 0)
        return ret;
    c->info.policies++;
    if (c->second && (ret = c->sink->policy(c->sink_be, &pol)) != 0)
        return lerr(c, ret, "policy %s: %s", pol.name, ck_error_context());
    return 0;
}

static int
do_principal(struct load_ctx *c, struct fields *f)
{
    struct ck_store_princ_row *p = &c->cur;
    int64_t v[8], lpc;
    char *name, *policy;
    int ret;

    if ((ret = get_text(c, "name", f->val[0], &name)) != 0 ||
        (ret = get_text(c, "policy", f->val[9], &policy)) != 0 ||
        (ret = get_int(c, "last-pwd-change", f->val[10], 0, INT64_MAX, &lpc)) != 0)
        return ret;
    if (name == NULL)
        return lerr(c, CK_ERR_DECODE, "principal name missing");
    if (ck_store_check_name_int(c->vstore, name) != 0)
        return lerr(c, CK_ERR_DECODE, "%s", ck_error_context());
    if (policy != NULL && ck_policy_name_check(policy) != 0)
        return lerr(c, CK_ERR_DECODE, "principal %s: %s", name, ck_error_context());
    if ((ret = get_int(c, "attributes", f->val[1], 0, UINT32_MAX, &v[0])) != 0 ||
        (ret = get_int(c, "kvno", f->val[6], 1, UINT32_MAX, &v[5])) != 0)
        return ret;
    for (size_t i = 1; i < 8; i++) {
        if (i != 5 && (ret = get_int(c, f->type, f->val[i + 1], 0, INT64_MAX, &v[i])) != 0)
            return ret;
    }
    if ((ret = check_order(c, "principal", name)) != 0)
        return ret;
    if ((ret = flush_principal(c)) != 0)
        return ret;
    free(c->cur_name);
    c->cur_name = strdup(name);
    c->cur_pending = true;
    c->sub = 0;
    p->name = strdup(name);
    p->policy = policy != NULL ? strdup(policy) : NULL;
    if (c->cur_name == NULL || p->name == NULL || (policy != NULL && p->policy == NULL))
        return ck_error_set(CK_ERR_NOMEM, "dump");
    p->attributes = (uint32_t)v[0];
    p->max_life = v[1];
    p->max_renew = v[2];
    p->expires = v[3];
    p->pw_expires = v[4];
    p->kvno = (uint32_t)v[5];
    p->created = v[6];
    p->modified = v[7];
    p->last_pwd_change = lpc;
    c->info.principals++;
    return 0;
}

static int
do_key(struct load_ctx *c, struct fields *f)
{
    struct ck_store_princ_row *p = &c->cur;
    struct ck_store_key_row k, *nk;
    int ret;

    if (!c->cur_pending || c->sub != 0)
        return lerr(c, CK_ERR_DECODE, "key record not directly after its principal");
    if (p->n_keys >= CK_STORE_MAX_KEYS)
        return lerr(c, CK_ERR_DECODE, "principal %s: more than %d keys", p->name,
                    CK_STORE_MAX_KEYS);
    if ((ret = read_key_row(c, f, p->name, false, &k)) != 0)
        goto fail;
    /* One kvno above the current one is a staged rotation (cablekey/rotation.h, k9rot). */
    if (k.kvno > p->kvno && (p->kvno == UINT32_MAX || k.kvno != p->kvno + 1)) {
        ret = lerr(c, CK_ERR_DECODE, "principal %s: key kvno %u above the principal's %u",
                   p->name, k.kvno, p->kvno);
        goto fail;
    }
    for (size_t i = 0; i < p->n_keys; i++) {
        if (p->keys[i].kvno == k.kvno && p->keys[i].enctype == k.enctype) {
            ret = lerr(c, CK_ERR_DECODE, "principal %s: key kvno %u enctype %d repeated",
                       p->name, k.kvno, (int)k.enctype);
            goto fail;
        }
    }
    if ((nk = realloc(p->keys, (p->n_keys + 1) * sizeof(*nk))) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "dump");
        goto fail;
    }
    p->keys = nk;
    p->keys[p->n_keys++] = k;
    c->info.keys++;
    return 0;
fail:
    key_row_free(&k);
    return ret;
}

static int
do_lockout(struct load_ctx *c, struct fields *f)
{
    ck_db_lockout l;
    int64_t v[4];
    int ret;

    if (c->cur_name == NULL || c->sub != 0)
        return lerr(c, CK_ERR_DECODE, "lockout record not after its principal's keys");
    for (size_t i = 0; i < 4; i++) {
        if ((ret = get_int(c, "lockout field", f->val[i], 0,
                           i == 0 ? UINT32_MAX : INT64_MAX, &v[i])) != 0)
            return ret;
    }
    memset(&l, 0, sizeof(l));
    l.fail_count = (uint32_t)v[0];
    l.last_failed = v[1];
    l.last_success = v[2];
    l.epoch = (uint64_t)v[3];
    if ((ret = flush_principal(c)) != 0)
        return ret;
    c->sub = 1;
    c->info.lockouts++;
    if (c->second && (ret = c->sink->lockout(c->sink_be, c->cur_name, &l)) != 0)
        return lerr(c, ret, "lockout of %s: %s", c->cur_name, ck_error_context());
    return 0;
}

static int
do_history(struct load_ctx *c, struct fields *f)
{
    struct ck_store_key_row k;
    int ret;

    if (c->cur_name == NULL)
        return lerr(c, CK_ERR_DECODE, "history record not after its principal");
    if ((ret = flush_principal(c)) != 0)
        return ret;
    c->sub = 2;
    if ((ret = read_key_row(c, f, c->cur_name, true, &k)) != 0)
        goto out;
    c->info.history++;
    if (c->second && (ret = c->sink->history(c->sink_be, c->cur_name, &k)) != 0)
        ret = lerr(c, ret, "password history of %s: %s", c->cur_name, ck_error_context());
out:
    key_row_free(&k);
    return ret;
}

static int
do_device(struct load_ctx *c, struct fields *f)
{
    struct ck_store_device_row d;
    char mac[CK_DEVICE_MAC_LEN + 1];
    char *m, *pr, *comment;
    uint8_t *pin = NULL;
    size_t pin_len = 0;
    int64_t state, v[3];
    int ret;

    memset(&d, 0, sizeof(d));
    if ((ret = get_text(c, "mac", f->val[0], &m)) != 0 ||
        (ret = get_text(c, "principal", f->val[1], &pr)) != 0 ||
        (ret = get_int(c, "state", f->val[2], CK_DEVICE_ACTIVE,
                       c->version >= 2 ? CK_DEVICE_UNPROVISIONED : CK_DEVICE_REVOKED, &state)) != 0 ||
        (ret = get_int(c, "created", f->val[4], 0, INT64_MAX, &v[0])) != 0 ||
        (ret = get_int(c, "modified", f->val[5], 0, INT64_MAX, &v[1])) != 0 ||
        (ret = get_int(c, "revoked", f->val[6], 0, INT64_MAX, &v[2])) != 0 ||
        (ret = get_text(c, "comment", f->val[7], &comment)) != 0)
        return ret;
    if (m == NULL || ck_device_mac_parse(m, mac) != 0 || strcmp(mac, m) != 0)
        return lerr(c, CK_ERR_DECODE, "device: not a canonical MAC address");
    if (pr == NULL || ck_store_check_name_int(c->vstore, pr) != 0)
        return lerr(c, CK_ERR_DECODE, "device %s: bad principal name", mac);
    if (ck_device_comment_check(comment) != 0)
        return lerr(c, CK_ERR_DECODE, "device %s: %s", mac, ck_error_context());
    if ((ret = get_hex(c, "pin", f->val[3], &pin, &pin_len)) != 0)
        return ret;
    if (pin != NULL && pin_len != CK_DEVICE_SPKI_HASH_LEN) {
        free(pin);
        return lerr(c, CK_ERR_DECODE, "device %s: the pin is not a SHA-256", mac);
    }
    if ((ret = check_order(c, "device", mac)) != 0) {
        free(pin);
        return ret;
    }
    d.mac = mac;
    d.principal = pr;
    d.state = (int)state;
    d.has_pin = pin != NULL;
    if (pin != NULL)
        memcpy(d.spki_sha256, pin, CK_DEVICE_SPKI_HASH_LEN);
    free(pin);
    if (c->version >= 2) {
        uint8_t *cert = NULL;
        size_t cert_len = 0;

        if ((ret = get_hex(c, "cert", f->val[8], &cert, &cert_len)) != 0)
            return ret;
        if (cert != NULL && cert_len != 32) {
            free(cert);
            return lerr(c, CK_ERR_DECODE, "device %s: the certificate hash is not a SHA-256", mac);
        }
        d.has_cert = cert != NULL;
        if (cert != NULL)
            memcpy(d.cert_sha256, cert, 32);
        free(cert);
    }
    d.created = v[0];
    d.modified = v[1];
    d.revoked = v[2];
    d.comment = comment != NULL ? comment : (char *)"";
    c->info.devices++;
    if (c->second && (ret = c->sink->device(c->sink_be, &d)) != 0)
        return lerr(c, ret, "device %s: %s", mac, ck_error_context());
    return 0;
}

static int
do_end(struct load_ctx *c, struct fields *f)
{
    int64_t counts[7] = {0};
    const int64_t have[7] = {c->info.policies, c->info.principals, c->info.keys,
                             c->info.lockouts, c->info.history, c->info.devices,
                             c->info.prov_rows};
    const size_t n_counts = c->version >= 2 ? 7 : 6; /* format 2 counts the prov rows */
    uint8_t md[32], *sum = NULL;
    size_t sum_len = 0;
    unsigned md_len = 0;
    int ret;

    for (size_t i = 0; i < n_counts; i++) {
        if ((ret = get_int(c, "count", f->val[i], 0, CK_DUMP_MAX_RECORDS, &counts[i])) != 0)
            return ret;
    }
    if ((ret = get_hex(c, "sha256", f->val[n_counts], &sum, &sum_len)) != 0)
        return ret;
    if (EVP_DigestFinal_ex(c->md, md, &md_len) != 1 || md_len != sizeof(md)) {
        free(sum);
        return ck_error_set(CK_ERR_CRYPTO, "dump: SHA-256");
    }
    ret = sum_len == sizeof(md) && ck_ct_equal(sum, md, sizeof(md)) ? 0 : CK_ERR_INTEGRITY;
    free(sum);
    if (ret != 0)
        return lerr(c, CK_ERR_INTEGRITY, "SHA-256 mismatch: the dump was changed or damaged");
    if (memcmp(counts, have, sizeof(counts)) != 0)
        return lerr(c, CK_ERR_INTEGRITY, "the record counts do not match the records");
    if (c->second && c->sink->prov_done != NULL && (ret = c->sink->prov_done(c->sink_be)) != 0)
        return lerr(c, ret, "provisioning tables: %s", ck_error_context());
    return 0;
}

/* issue 10: a prov-* record (format 2) into its table's row, as given. */
static int
do_prov(struct load_ctx *c, const struct ck_prov_dump_table *t, struct fields *f)
{
    struct ck_prov_arg a[DUMP_MAX_FIELDS];
    uint8_t *blobs[DUMP_MAX_FIELDS] = {0};
    int ret = 0;

    for (size_t i = 0; i < t->n_cols && ret == 0; i++) {
        const struct ck_prov_dump_col *col = &t->cols[i];
        char *text = NULL;
        size_t len = 0;

        memset(&a[i], 0, sizeof(a[i]));
        a[i].type = col->type;
        if (col->type == CK_PA_INT) {
            ret = get_int(c, col->name, f->val[i], INT64_MIN, INT64_MAX, &a[i].i);
        } else if (col->type == CK_PA_TEXT) {
            if ((ret = get_text(c, col->name, f->val[i], &text)) == 0)
                a[i].s = text != NULL ? text : col->nullable ? NULL : "";
        } else if ((ret = get_hex(c, col->name, f->val[i], &blobs[i], &len)) == 0) {
            a[i].p = blobs[i];
            a[i].len = len;
        }
    }
    if (ret == 0) {
        c->info.prov_rows++;
        if (c->second && (ret = c->sink->prov(c->sink_be, t->insert_sql, a, t->n_cols)) != 0)
            ret = lerr(c, ret, "%s: %s", t->record, ck_error_context());
    }
    for (size_t i = 0; i < t->n_cols; i++)
        free(blobs[i]);
    return ret;
}

/* One line (without its newline) in the current section. */
static int
do_line(struct load_ctx *c, char *line)
{
    static const char *const k_mkey[] = {"kvno", "enctype", "check", NULL};
    static const char *const k_realm[] = {"enctypes", "max-life", "max-renew",
                                          "default-attributes", NULL};
    static const char *const k_ret[] = {"keep-rows", "keep-days", NULL};
    static const char *const k_policy[] = {"name", "min-length", "min-classes", "history",
                                           "min-life", "max-life", "max-failure",
                                           "failure-interval", "lockout-duration", "created",
                                           "modified", NULL};
    static const char *const k_princ[] = {"name", "attributes", "max-life", "max-renew",
                                          "expires", "pw-expires", "kvno", "created",
                                          "modified", "policy", "last-pwd-change", NULL};
    static const char *const k_key[] = {"kvno", "enctype", "salt-type", "salt", "mkvno", "data",
                                        NULL};
    static const char *const k_lock[] = {"fail-count", "last-failed", "last-success", "epoch",
                                         NULL};
    static const char *const k_dev[] = {"mac", "principal", "state", "pin", "created",
                                        "modified", "revoked", "comment", NULL};
    static const char *const k_dev2[] = {"mac", "principal", "state", "pin", "created",
                                         "modified", "revoked", "comment", "cert", NULL};
    static const char *const k_end[] = {"policies", "principals", "keys", "lockouts", "history",
                                        "devices", "sha256", NULL};
    static const char *const k_end2[] = {"policies", "principals", "keys", "lockouts", "history",
                                         "devices", "prov", "sha256", NULL};
    static const struct {
        const char *type;
        const char *const *keys;
        enum section sec;   /* the section the record belongs to */
    } types[] = {
        {"master-key", k_mkey, S_MKEY},   {"realm", k_realm, S_REALM},
        {"audit-retention", k_ret, S_RETENTION}, {"policy", k_policy, S_POLICY},
        {"principal", k_princ, S_PRINCIPAL}, {"key", k_key, S_PRINCIPAL},
        {"lockout", k_lock, S_PRINCIPAL}, {"history", k_key, S_PRINCIPAL},
        {"device", k_dev, S_DEVICE},      {"end", k_end, S_END},
    };
    struct fields f;
    size_t tlen = strcspn(line, " "), t;
    int ret;

    if (c->sec == S_HEADER) {
        if ((ret = do_header(c, line)) != 0)
            return ret;
        c->sec = S_MKEY;
        return 0;
    }
    for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        if (strlen(types[t].type) == tlen && strncmp(line, types[t].type, tlen) == 0)
            break;
    }
    if (t == sizeof(types) / sizeof(types[0])) {
        /* issue 10: the provisioning tables (format 2), after the devices. */
        const struct ck_prov_dump_table *pt = NULL;
        const char *keys[DUMP_MAX_FIELDS + 1];

        for (size_t i = 0; c->version >= 2 && i < ck_prov_dump_n_tables; i++) {
            if (strlen(ck_prov_dump_tables[i].record) == tlen &&
                strncmp(line, ck_prov_dump_tables[i].record, tlen) == 0)
                pt = &ck_prov_dump_tables[i];
        }
        if (pt == NULL || pt->n_cols > DUMP_MAX_FIELDS)
            return lerr(c, CK_ERR_DECODE, "unknown record type");
        if (c->sec < S_POLICY || c->sec > S_PROV)
            return lerr(c, CK_ERR_DECODE, "%s record out of order", pt->record);
        if ((ret = flush_principal(c)) != 0)
            return ret;
        c->sec = S_PROV;
        for (size_t i = 0; i < pt->n_cols; i++)
            keys[i] = pt->cols[i].name;
        keys[pt->n_cols] = NULL;
        f.type = pt->record;
        if ((ret = split_fields(c, line, keys, &f)) != 0)
            return ret;
        return do_prov(c, pt, &f);
    }
    /* The header's three records once each, in order; then the sections in order. */
    if (c->sec < S_POLICY && types[t].sec != c->sec)
        return lerr(c, CK_ERR_DECODE, "%s record where the %s record belongs", types[t].type,
                    c->sec == S_MKEY ? "master-key" : c->sec == S_REALM ? "realm"
                                                                        : "audit-retention");
    if (types[t].sec < c->sec)
        return lerr(c, CK_ERR_DECODE, "%s record out of order", types[t].type);
    if (types[t].sec != c->sec) {
        /* Leaving a section: the last principal goes out, the order check restarts. */
        if ((ret = flush_principal(c)) != 0)
            return ret;
        free(c->cur_name);
        c->cur_name = NULL;
        free(c->last_name);
        c->last_name = NULL;
        c->sec = types[t].sec;
    }
    f.type = types[t].type;
    if ((ret = split_fields(c, line,
                            c->version < 2 ? types[t].keys
                            : types[t].keys == k_dev ? k_dev2
                            : types[t].keys == k_end ? k_end2 : types[t].keys,
                            &f)) != 0)
        return ret;
    switch (t) {
    case 0:
        ret = do_mkey(c, &f);
        c->sec = S_REALM;
        return ret;
    case 1:
        ret = do_realm(c, &f);
        c->sec = S_RETENTION;
        return ret;
    case 2: {
        int64_t rows, days;
        if ((ret = get_int(c, "keep-rows", f.val[0], 1, CK_AUDIT_KEEP_ROWS_MAX, &rows)) != 0 ||
            (ret = get_int(c, "keep-days", f.val[1], 0, CK_AUDIT_KEEP_DAYS_MAX, &days)) != 0)
            return ret;
        c->retention.keep_rows = rows;
        c->retention.keep_days = days;
        c->sec = S_POLICY;
        return 0;
    }
    case 3: return do_policy(c, &f);
    case 4: return do_principal(c, &f);
    case 5: return do_key(c, &f);
    case 6: return do_lockout(c, &f);
    case 7: return do_history(c, &f);
    case 8: return do_device(c, &f);
    default: return do_end(c, &f);
    }
}

/* Reads the whole dump once: checks everything; in pass 2 also feeds the sink. */
static int
load_pass(struct load_ctx *c)
{
    int ret = 0;

    if (fseek(c->in, 0, SEEK_SET) != 0)
        return ck_error_set(CK_ERR_IO, "dump %s: %s", c->path, strerror(errno));
    c->lineno = 0;
    c->sec = S_HEADER;
    memset(&c->info, 0, sizeof(c->info));
    free(c->last_name);
    c->last_name = NULL;
    ck_store_princ_row_clear(&c->cur);
    c->cur_pending = false;
    free(c->cur_name);
    c->cur_name = NULL;
    if (EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
        return ck_error_set(CK_ERR_CRYPTO, "dump: SHA-256");
    while (c->sec != S_END) {
        size_t len;

        if (fgets(c->line, CK_DUMP_LINE_MAX, c->in) == NULL) {
            if (ferror(c->in))
                return ck_error_set(CK_ERR_IO, "dump %s: read: %s", c->path, strerror(errno));
            c->lineno++;
            return lerr(c, CK_ERR_INTEGRITY, "the dump is truncated (no end record)");
        }
        c->lineno++;
        len = strlen(c->line);
        if (len == 0 || c->line[len - 1] != '\n') {
            if (len + 1 >= CK_DUMP_LINE_MAX)
                return lerr(c, CK_ERR_DECODE, "line longer than %d bytes", CK_DUMP_LINE_MAX);
            return lerr(c, CK_ERR_INTEGRITY, "the dump is truncated (last line incomplete)");
        }
        if (memchr(c->line, '\0', len) != NULL || strchr(c->line, '\r') != NULL)
            return lerr(c, CK_ERR_DECODE, "NUL or carriage return in the line");
        /* Everything before the trailer is covered by its checksum. */
        if (strncmp(c->line, "end ", 4) != 0 &&
            EVP_DigestUpdate(c->md, c->line, len) != 1)
            return ck_error_set(CK_ERR_CRYPTO, "dump: SHA-256");
        c->line[len - 1] = '\0';
        if ((ret = do_line(c, c->line)) != 0)
            return ret;
    }
    if (fgetc(c->in) != EOF) {
        c->lineno++;
        return lerr(c, CK_ERR_DECODE, "data after the end record");
    }
    return 0;
}

static int
load_feed(void *arg, const struct ck_store_load_sink *sink, void *sink_be)
{
    struct load_ctx *c = arg;

    c->second = true;
    c->sink = sink;
    c->sink_be = sink_be;
    return load_pass(c);
}

int
ck_store_load(const char *db_uri, const char *stash_path, const char *in_path,
              const char *actor, ck_store_dump_info *info)
{
    struct load_ctx c;
    ck_store *store = NULL;
    ck_store_uri u;
    char *stash_alloc = NULL;
    bool created = false;
    int ret;

    memset(&c, 0, sizeof(c));
    memset(&u, 0, sizeof(u));
    if (db_uri == NULL || in_path == NULL)
        return ck_error_set(CK_ERR_INVAL, "database and dump paths are required");
    if ((ret = ck_store_uri_parse(db_uri, &u)) != 0)
        return ret;
    if (u.ops->load_dump == NULL || u.ops->snapshot == NULL) {
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "a %s database cannot load a dump", u.backend);
        goto out;
    }
    if (stash_path == NULL) {
        if ((ret = ck_store_default_stash(db_uri, &stash_alloc)) != 0)
            goto out;
        stash_path = stash_alloc;
    }
    c.path = in_path;
    c.stash_path = stash_path;
    store = calloc(1, sizeof(*store));
    c.line = malloc(CK_DUMP_LINE_MAX);
    c.md = EVP_MD_CTX_new();
    if (store == NULL || c.line == NULL || c.md == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "load");
        goto out;
    }
    c.vstore = store;
    if ((c.in = fopen(in_path, "re")) == NULL) {
        ret = ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "dump %s: %s", in_path,
                           strerror(errno));
        goto out;
    }
    /* Pass 1: everything checked before the target exists. */
    if ((ret = load_pass(&c)) != 0)
        goto out;

    /* open(create) refuses a database that exists: a dump loads into a new one only. */
    if ((ret = u.ops->open(u.location, CK_STORE_OPEN_LOAD_TARGET, true, &store->be)) != 0) {
        if (ret == CK_ERR_EXISTS)
            ret = ck_error_set(CK_ERR_EXISTS, "%s: a dump loads into a new database only",
                               ck_error_context());
        goto out;
    }
    created = true;
    store->ops = u.ops;
    ck_store_set_actor(store, actor);
    store->ops->audit_attach(store->be, &store->audit);
    store_audit_begin(store, "realm.create", store->realm.name, "for a load from %s", in_path);
    if ((ret = store->ops->init_schema(store->be, &store->realm, &c.mrow, ck_store_now_int())) !=
        0)
        goto out;
    store_audit_begin(store, "db.load", NULL, "from %s: %lld principals, %lld devices, "
                      "%lld policies", in_path, (long long)c.info.principals,
                      (long long)c.info.devices, (long long)c.info.policies);
    /* Pass 2, inside the one write transaction. */
    ret = store->ops->load_dump(store->be, &store->realm, &c.retention, load_feed, &c);
    store_audit_end(store);
    if (ret == 0 && info != NULL)
        *info = c.info;
out:
    if (c.in != NULL)
        fclose(c.in);
    ck_store_princ_row_clear(&c.cur);
    ck_store_mkey_row_clear(&c.mrow);
    free(c.last_name);
    free(c.cur_name);
    free(c.line);
    EVP_MD_CTX_free(c.md);
    ck_store_close(store);
    if (ret != 0 && created && u.ops->discard != NULL)
        u.ops->discard(u.location);
    ck_store_uri_clear(&u);
    free(stash_alloc);
    return ret;
}

/* --replace: the dump goes into a new database beside db_path, then through ck_store_restore,
 * which already is the safe way to replace a live realm (validated copy, one write transaction,
 * change counter past both states, audit row kept in the live log). */
int
ck_store_load_replace(const char *db_path, const char *stash_path, const char *in_path,
                      unsigned restore_flags, const char *actor, ck_store_dump_info *info,
                      ck_store_restore_info *rinfo)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char *stash_alloc = NULL, *tmp = NULL;
    size_t n;
    int ret;

    if (db_path == NULL || in_path == NULL)
        return ck_error_set(CK_ERR_INVAL, "database and dump paths are required");
    /* The temporary beside the database and the restore are a file backend's (SQLite). */
    {
        ck_store_uri u;
        bool file_backend;

        if ((ret = ck_store_uri_parse(db_path, &u)) != 0)
            return ret;
        file_backend = u.ops->restore_commit != NULL && u.ops->restore_tmp != NULL;
        if (!file_backend)
            ret = ck_error_set(CK_ERR_UNSUPPORTED,
                               "db load --replace works on an SQLite file only; a %s realm "
                               "is replaced by loading the dump into a new, empty database "
                               "(db load --db NEW-URI) and pointing the KDCs at it",
                               u.backend);
        ck_store_uri_clear(&u);
        if (ret != 0)
            return ret;
    }
    n = strlen(db_path) + 64;
    if ((tmp = malloc(n)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "load");
    snprintf(tmp, n, "%s.load-%ld", db_path, (long)getpid());
    if (stash_path == NULL) {
        size_t m = strlen(db_path);
        if ((stash_alloc = malloc(m + sizeof(".stash"))) == NULL) {
            free(tmp);
            return ck_error_set(CK_ERR_NOMEM, "stash path");
        }
        memcpy(stash_alloc, db_path, m);
        memcpy(stash_alloc + m, ".stash", sizeof(".stash"));
        stash_path = stash_alloc;
    }
    /* The live database's stash: a dump under another master key stops here. */
    if ((ret = ck_store_load(tmp, stash_path, in_path, actor, info)) == 0) {
        ret = ck_store_restore(db_path, stash_path, tmp, restore_flags, actor, rinfo);
        /* A failed load removed what it created; this one is ours to remove. */
        for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
            char p[4096];
            snprintf(p, sizeof(p), "%s%s", tmp, suffix[i]);
            unlink(p);
        }
    }
    free(tmp);
    free(stash_alloc);
    return ret;
}
