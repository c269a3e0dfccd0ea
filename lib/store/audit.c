/* Generic side of the audit log: the actor, naming the pending action, describing a change
 * without secrets, and the read API. The rows are written by the backend inside each change's
 * transaction (sqlite_audit.c). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "store/store_int.h"

/* Copies text for the log: control characters (they could forge lines in a terminal or a
 * log) become '?', and the copy is cut at size - 1 bytes without splitting a UTF-8 sequence. */
static void
audit_copy(char *dst, size_t size, const char *src)
{
    size_t n = 0;

    if (src == NULL)
        src = "";
    for (; src[n] != '\0' && n + 1 < size; n++) {
        unsigned char c = (unsigned char)src[n];
        dst[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    /* Do not leave half a multi-byte sequence at the cut. */
    if (src[n] != '\0') {
        while (n > 0 && ((unsigned char)dst[n - 1] & 0xc0) == 0x80)
            n--;
        if (n > 0 && ((unsigned char)dst[n - 1] & 0xc0) == 0xc0)
            n--;
    }
    dst[n] = '\0';
}

void
ck_store_set_actor(ck_store *store, const char *actor)
{
    if (actor == NULL || *actor == '\0') {
        snprintf(store->audit.actor, sizeof(store->audit.actor), "uid %u", (unsigned)geteuid());
        return;
    }
    audit_copy(store->audit.actor, sizeof(store->audit.actor), actor);
}

void
store_audit_begin(ck_store *store, const char *action, const char *object,
                  const char *detail_fmt, ...)
{
    struct ck_store_audit *a = &store->audit;
    char detail[CK_AUDIT_DETAIL_MAX];
    va_list ap;

    a->pending = true;
    a->skip = false;
    audit_copy(a->action, sizeof(a->action), action);
    audit_copy(a->object, sizeof(a->object), object);
    detail[0] = '\0';
    if (detail_fmt != NULL) {
        va_start(ap, detail_fmt);
        vsnprintf(detail, sizeof(detail), detail_fmt, ap);
        va_end(ap);
    }
    audit_copy(a->detail, sizeof(a->detail), detail);
}

void
store_audit_skip(ck_store *store)
{
    store->audit.pending = true;
    store->audit.skip = true;
}

void
store_audit_end(ck_store *store)
{
    store->audit.pending = false;
    store->audit.skip = false;
}

int
ck_store_audit_list(ck_store *store, const ck_audit_filter *filter, ck_store_audit_cb cb,
                    void *arg)
{
    if (filter == NULL || cb == NULL)
        return ck_error_set(CK_ERR_INVAL, "audit list: no filter or callback");
    if (filter->limit == 0 || filter->limit > CK_AUDIT_LIST_MAX)
        return ck_error_set(CK_ERR_INVAL, "audit list: limit must be 1..%d", CK_AUDIT_LIST_MAX);
    if (filter->since < 0)
        return ck_error_set(CK_ERR_INVAL, "audit list: negative time");
    if (filter->action != NULL && strlen(filter->action) >= CK_AUDIT_ACTION_MAX)
        return ck_error_set(CK_ERR_INVAL, "audit list: action too long");
    return store->ops->audit_list(store->be, filter, cb, arg);
}

int
ck_store_audit_get_retention(ck_store *store, ck_audit_retention *r)
{
    return store->ops->audit_get_retention(store->be, r);
}

int
ck_store_audit_set_retention(ck_store *store, const ck_audit_retention *r)
{
    ck_audit_retention old;
    int ret;

    if (store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    if (r == NULL || r->keep_rows < 1 || r->keep_rows > CK_AUDIT_KEEP_ROWS_MAX)
        return ck_error_set(CK_ERR_INVAL, "audit retention: keep 1 to %d rows",
                            CK_AUDIT_KEEP_ROWS_MAX);
    if (r->keep_days < 0 || r->keep_days > CK_AUDIT_KEEP_DAYS_MAX)
        return ck_error_set(CK_ERR_INVAL, "audit retention: keep 0 (no age limit) to %d days",
                            CK_AUDIT_KEEP_DAYS_MAX);
    if ((ret = ck_store_audit_get_retention(store, &old)) != 0)
        return ret;
    store_audit_begin(store, "audit.retention", NULL, "rows %lld -> %lld, days %lld -> %lld",
                      (long long)old.keep_rows, (long long)r->keep_rows,
                      (long long)old.keep_days, (long long)r->keep_days);
    ret = store->ops->audit_set_retention(store->be, r);
    store_audit_end(store);
    return ret;
}

/* ---- describing a change ---- */

static const struct {
    uint32_t bit;
    const char *name;
} attr_names[] = {
    {CK_ATTR_DISALLOW_POSTDATED, "DISALLOW_POSTDATED"},
    {CK_ATTR_DISALLOW_FORWARDABLE, "DISALLOW_FORWARDABLE"},
    {CK_ATTR_DISALLOW_TGT_BASED, "DISALLOW_TGT_BASED"},
    {CK_ATTR_DISALLOW_RENEWABLE, "DISALLOW_RENEWABLE"},
    {CK_ATTR_DISALLOW_PROXIABLE, "DISALLOW_PROXIABLE"},
    {CK_ATTR_DISALLOW_DUP_SKEY, "DISALLOW_DUP_SKEY"},
    {CK_ATTR_DISALLOW_ALL_TIX, "DISALLOW_ALL_TIX"},
    {CK_ATTR_REQUIRES_PREAUTH, "REQUIRES_PREAUTH"},
    {CK_ATTR_REQUIRES_HW_AUTH, "REQUIRES_HW_AUTH"},
    {CK_ATTR_REQUIRES_PWCHANGE, "REQUIRES_PWCHANGE"},
    {CK_ATTR_DISALLOW_SVR, "DISALLOW_SVR"},
    {CK_ATTR_PWCHANGE_SERVICE, "PWCHANGE_SERVICE"},
    {CK_ATTR_OK_AS_DELEGATE, "OK_AS_DELEGATE"},
    {CK_ATTR_OK_TO_AUTH_AS_DELEGATE, "OK_TO_AUTH_AS_DELEGATE"},
    {CK_ATTR_NO_AUTH_DATA_REQUIRED, "NO_AUTH_DATA_REQUIRED"},
    {CK_ATTR_LOCKDOWN_KEYS, "LOCKDOWN_KEYS"},
};

struct desc {
    char *buf;
    size_t size, len;
};

static void __attribute__((format(printf, 2, 3)))
desc_add(struct desc *d, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (d->len + 1 >= d->size)
        return;
    va_start(ap, fmt);
    n = vsnprintf(d->buf + d->len, d->size - d->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        d->len = (size_t)n < d->size - d->len ? d->len + (size_t)n : d->size - 1;
}

void
store_audit_describe_attributes(char *buf, size_t size, uint32_t old_attrs, uint32_t new_attrs)
{
    struct desc d = {buf, size, 0};
    uint32_t known = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(attr_names) / sizeof(attr_names[0]); i++) {
        uint32_t b = attr_names[i].bit;
        known |= b;
        if ((old_attrs & b) != (new_attrs & b))
            desc_add(&d, " %c%s", (new_attrs & b) ? '+' : '-', attr_names[i].name);
    }
    if ((old_attrs & ~known) != (new_attrs & ~known))
        desc_add(&d, " 0x%x -> 0x%x", (unsigned)(old_attrs & ~known),
                 (unsigned)(new_attrs & ~known));
}

static void
desc_time(struct desc *d, const char *label, int64_t old, int64_t new)
{
    char a[32], b[32];
    struct tm tm;
    time_t t;

    if (old == new)
        return;
    t = (time_t)old;
    if (old == 0 || gmtime_r(&t, &tm) == NULL || strftime(a, sizeof(a), "%Y-%m-%dT%H:%M:%SZ",
                                                          &tm) == 0)
        snprintf(a, sizeof(a), old == 0 ? "never" : "%lld", (long long)old);
    t = (time_t)new;
    if (new == 0 || gmtime_r(&t, &tm) == NULL || strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ",
                                                          &tm) == 0)
        snprintf(b, sizeof(b), new == 0 ? "never" : "%lld", (long long)new);
    desc_add(d, "%s%s %s -> %s", d->len ? "; " : "", label, a, b);
}

void
store_audit_describe_fields(char *buf, size_t size, const struct ck_store_princ_row *old,
                            const ck_db_principal *p)
{
    struct desc d = {buf, size, 0};
    char attrs[CK_AUDIT_DETAIL_MAX];

    buf[0] = '\0';
    store_audit_describe_attributes(attrs, sizeof(attrs), old->attributes, p->attributes);
    if (attrs[0] != '\0')
        desc_add(&d, "attributes%s", attrs);
    if (old->max_life != p->max_life)
        desc_add(&d, "%smax_life %lld -> %lld", d.len ? "; " : "", (long long)old->max_life,
                 (long long)p->max_life);
    if (old->max_renew != p->max_renew)
        desc_add(&d, "%smax_renew %lld -> %lld", d.len ? "; " : "",
                 (long long)old->max_renew, (long long)p->max_renew);
    desc_time(&d, "expires", old->expires, p->expires);
    desc_time(&d, "pw_expires", old->pw_expires, p->pw_expires);
    if (d.len == 0)
        desc_add(&d, "no field changed");
}

/* "aes256-cts-hmac-sha1-96,aes128-..." of the distinct enctypes of keys. */
void
store_audit_describe_keys(char *buf, size_t size, const ck_db_key *keys, size_t n)
{
    struct desc d = {buf, size, 0};

    buf[0] = '\0';
    desc_add(&d, "%zu key%s", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen = seen || keys[j].enctype == keys[i].enctype;
        if (!seen)
            desc_add(&d, "%s%s", i == 0 ? " (" : ",", ck_enctype_name(keys[i].enctype));
    }
    if (n > 0)
        desc_add(&d, ")");
}
