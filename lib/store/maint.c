/* Generic side of backup, restore and the integrity check: argument checks, the stash and the
 * key-by-key verification (which needs the master key, so it cannot live in a backend). The
 * SQL is in sqlite_maint.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/store_int.h"

static int
stash_for(const char *db_path, const char *stash_path, char **out)
{
    *out = NULL;
    if (stash_path == NULL)
        return ck_store_default_stash(db_path, out);
    if ((*out = strdup(stash_path)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "stash path");
    return 0;
}

/* The backend of db_path; CK_ERR_UNSUPPORTED if it lacks a maintenance operation (has is
 * whether it has it). */
static int
no_op(const ck_store_uri *u, const char *what)
{
    /* What to use instead, per operation (k9pgdump): the operator came to do a job. */
    static const struct {
        const char *op, *instead;
    } alt[] = {
        {"db backup", "use 'cablekey db dump --db URI --stash FILE --out FILE' (a consistent "
                      "snapshot, keys still under the master key), or the server's own tools "
                      "(pg_dump, streaming replication)"},
        {"db restore", "load a dump into a new, empty database with 'cablekey db load --db "
                       "NEW-URI --stash FILE DUMP' and point the KDCs at it"},
        {"db check", "the server checks its own pages; 'cablekey db dump' of the realm loaded "
                     "with 'cablekey db load' into a scratch database decrypts and checks every "
                     "key"},
    };
    const char *instead = "use its own tools, or db dump / db load";

    for (size_t i = 0; i < sizeof(alt) / sizeof(alt[0]); i++) {
        if (strcmp(alt[i].op, what) == 0)
            instead = alt[i].instead;
    }
    return ck_error_set(CK_ERR_UNSUPPORTED, "%s is not available for a %s database: %s", what,
                        u->backend, instead);
}

int
ck_store_backup(const char *db_path, const char *out_path, bool overwrite,
                ck_store_backup_info *info)
{
    ck_store_backup_info local;
    ck_store_uri u;
    int ret;

    if (db_path == NULL || out_path == NULL || *out_path == '\0')
        return ck_error_set(CK_ERR_INVAL, "backup: database and output paths are required");
    if ((ret = ck_store_uri_parse(db_path, &u)) != 0)
        return ret;
    if (u.ops->backup == NULL)
        ret = no_op(&u, "db backup");
    else
        ret = u.ops->backup(u.location, out_path, overwrite, info != NULL ? info : &local);
    ck_store_uri_clear(&u);
    return ret;
}

/* ---- key verification ---- */

struct key_walk {
    ck_store *store;
    ck_store_check_cb cb;
    void *arg;
    bool history;            /* the password history rows too */
    size_t problems;
    int64_t principals, keys, history_keys;
};

static void
key_problem(struct key_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
key_problem(struct key_walk *w, const char *fmt, ...)
{
    char line[700];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    w->problems++;
    if (w->cb != NULL)
        w->cb(line, w->arg);
}

/* Each remembered key decrypts and is bound to the principal: one that does not is skipped by
 * the history check, which would let that former password back. */
static int
check_principal_history(struct key_walk *w, const char *name)
{
    struct ck_store_key_row *rows = NULL;
    size_t n = 0;
    int ret;

    if ((ret = w->store->ops->pw_history(w->store->be, name, CK_POLICY_MAX_HISTORY, &rows,
                                         &n)) != 0) {
        if (ret == CK_ERR_NOMEM)
            return ret;
        key_problem(w, "principal %s: password history: %s", name, ck_error_context());
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        ck_db_key k;

        w->history_keys++;
        if (ck_store_decrypt_key_row(w->store, name, &rows[i], &k) != 0)
            key_problem(w, "password history: %s", ck_error_context());
        ck_key_clear(&k.key);
        free(k.salt);
    }
    ck_store_free_key_rows_int(rows, n);
    return 0;
}

/* Every stored key of one principal decrypts and is bound to its principal, kvno and enctype;
 * each failure is one problem. */
static int
check_principal_keys(const char *name, void *arg)
{
    struct key_walk *w = arg;
    struct ck_store_princ_row row;
    int ret;

    w->principals++;
    if ((ret = w->store->ops->get(w->store->be, name, &row)) != 0) {
        if (ret == CK_ERR_NOMEM)
            return ret;
        key_problem(w, "principal %s: %s", name, ck_error_context());
        return 0;
    }
    for (size_t i = 0; i < row.n_keys; i++) {
        ck_db_key k;

        w->keys++;
        if (ck_store_decrypt_key_row(w->store, name, &row.keys[i], &k) != 0)
            key_problem(w, "%s", ck_error_context());
        ck_key_clear(&k.key);
        free(k.salt);
    }
    ck_store_princ_row_clear(&row);
    return w->history ? check_principal_history(w, name) : 0;
}

/* history_keys NULL: the stored keys only (what a restore requires). */
static int
check_all_keys(ck_store *store, ck_store_check_cb cb, void *arg, size_t *problems,
               int64_t *principals, int64_t *keys, int64_t *history_keys)
{
    struct key_walk w = {store, cb, arg, history_keys != NULL, 0, 0, 0, 0};
    int ret = store->ops->list(store->be, check_principal_keys, &w);

    *problems += w.problems;
    *principals = w.principals;
    *keys = w.keys;
    if (history_keys != NULL)
        *history_keys = w.history_keys;
    return ret;
}

int
ck_store_check(const char *db_path, const char *stash_path, ck_store_check_cb cb, void *arg,
               ck_store_check_result *res)
{
    ck_store_check_result local;
    ck_store *store = NULL;
    ck_store_uri u;
    char *stash = NULL;
    int64_t principals = 0, keys = 0, history_keys = 0;
    int ret;

    if (res == NULL)
        res = &local;
    memset(res, 0, sizeof(*res));
    memset(&u, 0, sizeof(u));
    if (db_path == NULL)
        return ck_error_set(CK_ERR_INVAL, "check: no database path");
    if ((ret = ck_store_uri_parse(db_path, &u)) != 0)
        goto out;
    /* Before the stash: a backend without the check says so, not "name a stash". */
    if (u.ops->check_db == NULL) {
        ret = no_op(&u, "db check");
        goto out;
    }
    if ((ret = stash_for(db_path, stash_path, &stash)) != 0)
        goto out;
    if ((ret = u.ops->check_db(u.location, cb, arg, res)) != 0)
        goto out;
    /* The keys need the master key: without a usable stash they cannot be checked, and that
     * is a problem in itself (a database without its stash is useless). */
    ret = ck_store_open(db_path, stash, CK_STORE_READONLY, &store);
    if (ret != 0) {
        char line[700];
        struct stat st;
        bool no_stash = stat(stash, &st) != 0;
        snprintf(line, sizeof(line), "keys not checked: %s%s", ck_error_context(),
                 no_stash ? " (a database without its stash is useless: restore the stash "
                            "from its own backup)" : "");
        res->problems++;
        if (cb != NULL)
            cb(line, arg);
        ret = 0;
        goto out;
    }
    if ((ret = check_all_keys(store, cb, arg, &res->problems, &principals, &keys,
                              &history_keys)) != 0) {
        char line[700];
        snprintf(line, sizeof(line), "key check stopped: %s", ck_error_context());
        res->problems++;
        if (cb != NULL)
            cb(line, arg);
        ret = 0;
        goto out;
    }
    res->keys_checked = true;
    res->principals = principals;
    res->keys = keys;
    res->history_keys = history_keys;
out:
    ck_store_close(store);
    free(stash);
    ck_store_uri_clear(&u);
    if (ret == 0 && res->problems > 0)
        ret = ck_error_set(CK_ERR_INTEGRITY, "%s: %zu problem%s found", db_path, res->problems,
                           res->problems == 1 ? "" : "s");
    return ret;
}

/* ---- restore ---- */

/* Names the process, for "stop it first". */
static void
process_name(long pid, char *buf, size_t size)
{
    char path[64];
    FILE *f;

    ck_strlcpy(buf, "unknown", size);
    if (pid <= 0)
        return;
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(buf, (int)size, f) != NULL)
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

int
ck_store_restore(const char *db_path, const char *stash_path, const char *in_path,
                 unsigned flags, const char *actor, ck_store_restore_info *info)
{
    const struct ck_store_ops *ops;
    ck_store_uri u;
    ck_store_restore_info local;
    struct ck_store_audit audit;
    ck_store *store = NULL;
    char *stash = NULL, *tmp = NULL;
    struct stat st;
    uint64_t backup_gen = 0;
    long holder = 0;
    size_t problems = 0;
    int64_t principals = 0, keys = 0;
    int version = 0, ret;

    if (info == NULL)
        info = &local;
    memset(info, 0, sizeof(*info));
    memset(&audit, 0, sizeof(audit));
    if (db_path == NULL || in_path == NULL)
        return ck_error_set(CK_ERR_INVAL, "restore: database and backup paths are required");
    if ((ret = ck_store_uri_parse(db_path, &u)) != 0)
        return ret;
    ops = u.ops;
    /* A restore goes through a private copy of the backup beside the database: a file-based
     * backend's business; the others load a dump. */
    if (ops->holder == NULL || ops->restore_tmp == NULL || ops->restore_prepare == NULL ||
        ops->restore_commit == NULL || ops->discard == NULL) {
        ret = no_op(&u, "db restore");
        ck_store_uri_clear(&u);
        return ret;
    }
    if ((ret = stash_for(db_path, stash_path, &stash)) != 0)
        goto out;
    db_path = u.location;
    if (stat(in_path, &st) != 0) {
        ret = ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "backup %s: %s",
                           in_path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = ck_error_set(CK_ERR_INVAL, "backup %s is not a regular file", in_path);
        goto out;
    }
    {
        struct stat dst;
        if (stat(db_path, &dst) == 0 && dst.st_dev == st.st_dev && dst.st_ino == st.st_ino) {
            ret = ck_error_set(CK_ERR_INVAL, "%s is the database itself", in_path);
            goto out;
        }
    }
    /* Before this process opens the database (see ops->holder). */
    if ((ret = ops->holder(db_path, &holder)) != 0)
        goto out;
    if (holder != 0 && !(flags & CK_RESTORE_FORCE)) {
        char name[64];
        process_name(holder, name, sizeof(name));
        ret = ck_error_set(CK_ERR_POLICY, "database %s is in use by process %ld (%s): stop it "
                           "first, or use --force (running KDCs then switch to the restored "
                           "realm at their next request)", db_path, holder, name);
        goto out;
    }

    /* 1. A private copy, checked and upgraded by the backend. */
    if ((ret = ops->restore_tmp(db_path, &tmp)) != 0)
        goto out;
    if ((ret = ops->restore_prepare(in_path, tmp, &version)) != 0)
        goto out;

    /* 2. The stash opens it (master key check value) and decrypts every key. */
    {
        /* The copy is a location of the same backend; the scheme keeps a ':' in its directory
         * name from reading as one. */
        size_t n = strlen(u.backend) + 1 + strlen(tmp) + 1;
        char *loc = malloc(n);
        if (loc == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "restore");
            goto out;
        }
        snprintf(loc, n, "%s:%s", u.backend, tmp);
        ret = ck_store_open(loc, stash, CK_STORE_READONLY, &store);
        free(loc);
    }
    if (ret != 0) {
        ret = ck_error_set(ret, "backup %s: %s", in_path, ck_error_context());
        goto out;
    }
    if ((ret = check_all_keys(store, (ck_store_check_cb)NULL, NULL, &problems, &principals,
                              &keys, NULL)) != 0)
        goto out;
    if (problems > 0) {
        ret = ck_error_set(CK_ERR_INTEGRITY, "backup %s: %zu stored key%s under "
                           "the master key in %s: not restoring (run 'cablekey db check --db "
                           "%s --stash %s' on the backup for the list)", in_path, problems,
                           problems == 1 ? " does not decrypt" : "s do not decrypt", stash,
                           in_path, stash);
        goto out;
    }
    if ((ret = ck_store_generation(store, &backup_gen)) != 0)
        goto out;
    ck_strlcpy(info->realm, ck_store_realm(store)->name, sizeof(info->realm));
    ck_store_close(store);
    store = NULL;

    /* 3. Replace, with the audit row in the same transaction. */
    if (actor == NULL || *actor == '\0')
        snprintf(audit.actor, sizeof(audit.actor), "uid %u", (unsigned)geteuid());
    else
        ck_strlcpy(audit.actor, actor, sizeof(audit.actor));
    for (char *p = audit.actor; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    audit.pending = true;
    ck_strlcpy(audit.action, "db.restore", sizeof(audit.action));
    ck_strlcpy(audit.object, info->realm, sizeof(audit.object));
    {
        char *abs = realpath(in_path, NULL);
        snprintf(audit.detail, sizeof(audit.detail), "from %s (schema %d, generation %llu, "
                 "%lld principals)", abs != NULL ? abs : in_path, version,
                 (unsigned long long)backup_gen, (long long)principals);
        free(abs);
    }
    for (char *p = audit.detail; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    if ((ret = ops->restore_commit(db_path, tmp, &audit, info)) != 0)
        goto out;
    info->backup_schema_version = version;
    info->keys_checked = keys;
out:
    ck_store_close(store);
    if (tmp != NULL)
        ops->discard(tmp);
    free(tmp);
    free(stash);
    ck_store_uri_clear(&u);
    return ret;
}
