/* A service's keys from a keytab (include/cablekey/keyset.h), shared by the servers that verify
 * AP-REQs. Moved from cablekey-cms, which first needed it. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "cablekey/keyset.h"

struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct ck_keyset {
    pthread_rwlock_t lock;
    pthread_mutex_t refresh_lock; /* one refresh at a time (poll thread and SIGHUP) */
    ck_keytab *kt;                /* under lock */
    char *path;
    ck_principal *service;
    char service_name[CK_KEYSET_MAX_NAME];
    struct file_id loaded;        /* the version in use */
    struct file_id refused;       /* the last version refused (reported once) */
    bool have_refused;
};

static bool
same_id(const struct file_id *a, const struct file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static int
stat_id(const char *path, struct file_id *id)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "keytab %s: %s", path,
                            strerror(errno));
    memset(id, 0, sizeof(*id));
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
    return 0;
}

/* Whether kt has a usable key for the service. */
static bool
holds_service(const ck_keytab *kt, const ck_principal *svc)
{
    for (size_t i = 0; i < kt->n_entries; i++)
        if (ck_principal_equal(kt->entries[i].principal, svc) &&
            ck_enctype_is_supported(kt->entries[i].key.enctype))
            return true;
    return false;
}

/* Reads path into *out; the service must be in it (svc NULL: takes the first principal). */
static int
load(const char *path, ck_principal **svc, ck_keytab **out)
{
    ck_keytab *kt = NULL;
    char *name = NULL;
    int rc;

    *out = NULL;
    if ((rc = ck_keytab_read(path, &kt)) != 0)
        return ck_error_set(rc, "keytab %s: %s", path, ck_error_context());
    if (*svc == NULL) {
        for (size_t i = 0; i < kt->n_entries && *svc == NULL; i++)
            if (ck_enctype_is_supported(kt->entries[i].key.enctype) &&
                (rc = ck_principal_copy(kt->entries[i].principal, svc)) != 0)
                goto out;
        if (*svc == NULL) {
            rc = ck_error_set(CK_ERR_NOTFOUND, "keytab %s: no key of a supported enctype", path);
            goto out;
        }
    }
    if (!holds_service(kt, *svc)) {
        (void)ck_principal_unparse(*svc, 0, &name);
        rc = ck_error_set(CK_ERR_NOTFOUND, "keytab %s holds no key of a supported enctype for %s",
                          path, name != NULL ? name : "the service");
        goto out;
    }
    *out = kt;
    kt = NULL;
out:
    free(name);
    ck_keytab_free(kt);
    return rc;
}

int
ck_keyset_new(const char *path, const char *service, ck_keyset **out)
{
    ck_keyset *ks = calloc(1, sizeof(*ks));
    size_t len = 0;
    int rc;

    *out = NULL;
    if (ks == NULL)
        return ck_error_set(CK_ERR_NOMEM, "keyset");
    if ((rc = pthread_rwlock_init(&ks->lock, NULL)) != 0) {
        free(ks);
        return ck_error_set(CK_ERR_NOMEM, "keyset lock");
    }
    pthread_mutex_init(&ks->refresh_lock, NULL);
    if ((ks->path = strdup(path)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "keyset");
        goto out;
    }
    if (service != NULL &&
        (rc = ck_principal_parse(service, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM,
                                 &ks->service)) != 0) {
        rc = ck_error_set(CK_ERR_CONFIG, "service \"%s\": %s", service, ck_error_context());
        goto out;
    }
    /* The file's identity before the read: a change during the read is seen by the next poll. */
    if ((rc = stat_id(path, &ks->loaded)) != 0 || (rc = load(path, &ks->service, &ks->kt)) != 0)
        goto out;
    if ((rc = ck_principal_unparse_buf(ks->service, 0, ks->service_name,
                                       sizeof(ks->service_name), &len)) != 0)
        goto out;
    *out = ks;
    ks = NULL;
out:
    ck_keyset_free(ks);
    return rc;
}

void
ck_keyset_free(ck_keyset *ks)
{
    if (ks == NULL)
        return;
    ck_keytab_free(ks->kt);
    ck_principal_free(ks->service);
    free(ks->path);
    pthread_rwlock_destroy(&ks->lock);
    pthread_mutex_destroy(&ks->refresh_lock);
    free(ks);
}

const char *
ck_keyset_service(const ck_keyset *ks)
{
    return ks->service_name;
}

static int
refresh(ck_keyset *ks, bool force, bool *changed)
{
    struct file_id id;
    ck_keytab *kt = NULL, *old;
    int rc;

    *changed = false;
    if ((rc = stat_id(ks->path, &id)) != 0) {
        /* A keytab being replaced by rename is never missing; a deleted one keeps its keys. */
        return rc;
    }
    if (!force && same_id(&id, &ks->loaded))
        return 0;
    if (!force && ks->have_refused && same_id(&id, &ks->refused))
        return 0; /* already reported */
    if ((rc = load(ks->path, &ks->service, &kt)) != 0) {
        ks->refused = id;
        ks->have_refused = true;
        return rc;
    }
    pthread_rwlock_wrlock(&ks->lock);
    old = ks->kt;
    ks->kt = kt;
    pthread_rwlock_unlock(&ks->lock);
    ck_keytab_free(old);
    ks->loaded = id;
    ks->have_refused = false;
    *changed = true;
    return 0;
}

int
ck_keyset_refresh(ck_keyset *ks, bool force, bool *changed)
{
    int rc;

    pthread_mutex_lock(&ks->refresh_lock);
    rc = refresh(ks, force, changed);
    pthread_mutex_unlock(&ks->refresh_lock);
    return rc;
}

int
ck_keyset_key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno, ck_key *key,
                  int32_t *krb_error)
{
    ck_keyset *ks = arg;
    int rc;

    pthread_rwlock_rdlock(&ks->lock);
    rc = ck_ap_keytab_key_fn(ks->kt, ticket, etype, kvno, key, krb_error);
    pthread_rwlock_unlock(&ks->lock);
    return rc;
}

void
ck_keyset_describe(ck_keyset *ks, size_t *n_keys, uint32_t *max_kvno)
{
    *n_keys = 0;
    *max_kvno = 0;
    pthread_rwlock_rdlock(&ks->lock);
    for (size_t i = 0; i < ks->kt->n_entries; i++) {
        if (!ck_principal_equal(ks->kt->entries[i].principal, ks->service))
            continue;
        (*n_keys)++;
        if (ks->kt->entries[i].kvno > *max_kvno)
            *max_kvno = ks->kt->entries[i].kvno;
    }
    pthread_rwlock_unlock(&ks->lock);
}
