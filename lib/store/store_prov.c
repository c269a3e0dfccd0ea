/* The provisioning server's customer database (cablekey/prov.h), backend-neutral: validation,
 * the action state machine, numbers, certificates, history, idempotency and the webhook outbox.
 *
 * Every statement is written once here, in the SQL both backends understand (numbered
 * parameters $1..$n, each first used in order; INSERT ... RETURNING; ON CONFLICT DO NOTHING;
 * no booleans, integers 0/1), and run through the backend's prov_* ops (sqlite_prov.c,
 * pg_prov.c). Each literal is one statement: the backends key their prepared statements by its
 * address.
 *
 * A write is one backend write transaction (serialized with every other writer), so "the
 * lowest free number" read and taken inside it cannot be taken twice, and everything an action
 * writes (the KDC's device row with a generation bump, the provisioning rows, the event, the
 * audit row naming the actor, the outbox rows, the idempotency record) commits together or not
 * at all. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/prov.h"
#include "cablekey/util.h"
#include "store/store_int.h"

#define PROV_TARGETS_MAX 16
#define PROV_TARGET_NAME_MAX 63
#define PROV_REASON_MAX 256
#define PROV_POOL_ADD_MAX 1000000

struct ck_store_prov {
    char *targets[PROV_TARGETS_MAX];
    size_t n_targets;
};

void
ck_store_prov_free_int(ck_store *store)
{
    if (store == NULL || store->prov == NULL)
        return;
    for (size_t i = 0; i < store->prov->n_targets; i++)
        free(store->prov->targets[i]);
    free(store->prov);
    store->prov = NULL;
}

#define Q_INT(v) ((struct ck_prov_arg){.type = CK_PA_INT, .i = (int64_t)(v)})
#define Q_TEXT(v) ((struct ck_prov_arg){.type = CK_PA_TEXT, .s = (v)})
#define Q_BLOB(v, n) ((struct ck_prov_arg){.type = CK_PA_BLOB, .p = (v), .len = (n)})
#define Q_NULL ((struct ck_prov_arg){.type = CK_PA_NULL})
#define QARGS(...)                                                                              \
    (const struct ck_prov_arg[]){__VA_ARGS__},                                                  \
        sizeof((const struct ck_prov_arg[]){__VA_ARGS__}) / sizeof(struct ck_prov_arg)

static int
q_exec(ck_store *s, const char *what, const char *sql, const struct ck_prov_arg *a, size_t n,
       uint64_t *affected)
{
    return s->ops->prov_exec(s->be, what, sql, a, n, affected);
}

static int
q_query(ck_store *s, const char *what, const char *sql, const struct ck_prov_arg *a, size_t n,
        int (*cb)(const struct ck_prov_row *r, void *arg), void *arg)
{
    return s->ops->prov_query(s->be, what, sql, a, n, cb, arg);
}

/* Row readers. */
static int
cb_i64(const struct ck_prov_row *r, void *arg)
{
    int64_t *v = arg;

    *v = r->i64(r, 0);
    return 0;
}

struct i64_found {
    int64_t v;
    bool found;
};

static int
cb_i64_found(const struct ck_prov_row *r, void *arg)
{
    struct i64_found *f = arg;

    f->v = r->i64(r, 0);
    f->found = true;
    return 0;
}

/* Copies a text column into buf (truncating; "" for NULL). */
static int
col_copy(const struct ck_prov_row *r, int col, char *buf, size_t size)
{
    char *t;

    buf[0] = '\0';
    if (r->null(r, col))
        return 0;
    if ((t = r->text(r, col)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "text column");
    ck_strlcpy(buf, t, size);
    free(t);
    return 0;
}

/* A malloc'd text column; *out NULL for SQL NULL. */
static int
col_dup(const struct ck_prov_row *r, int col, char **out)
{
    *out = NULL;
    if (r->null(r, col))
        return 0;
    if ((*out = r->text(r, col)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "text column");
    return 0;
}

static int
set_str(char **dst, const char *src)
{
    char *n = NULL;

    if (src != NULL && (n = strdup(src)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "device record");
    free(*dst);
    *dst = n;
    return 0;
}

/* ------------------------------------------------------------------------- names, checks */

const char *
ck_prov_state_name(enum ck_prov_state s)
{
    switch (s) {
    case CK_PROV_UNPROVISIONED: return "unprovisioned";
    case CK_PROV_PROVISIONED: return "provisioned";
    case CK_PROV_REPAIR: return "repair";
    case CK_PROV_REVOKED: return "revoked";
    }
    return "unknown";
}

int
ck_prov_state_parse(const char *name, enum ck_prov_state *out)
{
    static const enum ck_prov_state all[] = {CK_PROV_UNPROVISIONED, CK_PROV_PROVISIONED,
                                             CK_PROV_REPAIR, CK_PROV_REVOKED};

    for (size_t i = 0; name != NULL && i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(name, ck_prov_state_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return ck_error_set(CK_ERR_INVAL, "state: unknown device state \"%s\"",
                        name != NULL ? name : "");
}

const char *
ck_prov_action_name(enum ck_prov_action_type t)
{
    switch (t) {
    case CK_PROV_ACT_PROVISION: return "provision";
    case CK_PROV_ACT_CHANGE_SERVICE: return "change-service";
    case CK_PROV_ACT_DEPROVISION: return "deprovision";
    case CK_PROV_ACT_MOVE: return "move";
    case CK_PROV_ACT_REPAIR: return "repair";
    case CK_PROV_ACT_RETURN: return "return";
    case CK_PROV_ACT_LOANER: return "loaner";
    case CK_PROV_ACT_REVOKE: return "revoke";
    case CK_PROV_ACT_REINSTATE: return "reinstate";
    }
    return "unknown";
}

/* The webhook event an action queues. */
static const char *
action_event(enum ck_prov_action_type t)
{
    switch (t) {
    case CK_PROV_ACT_PROVISION: return "device.provisioned";
    case CK_PROV_ACT_CHANGE_SERVICE: return "device.service-changed";
    case CK_PROV_ACT_DEPROVISION: return "device.deprovisioned";
    case CK_PROV_ACT_MOVE: return "device.moved";
    case CK_PROV_ACT_REPAIR: return "device.repair";
    case CK_PROV_ACT_RETURN: return "device.returned";
    case CK_PROV_ACT_LOANER: return "device.loaner";
    case CK_PROV_ACT_REVOKE: return "device.revoked";
    case CK_PROV_ACT_REINSTATE: return "device.reinstated";
    }
    return "device.changed";
}

/* UTF-8 text of at most max bytes without control characters (C0, DEL, C1). */
static int
check_text(const char *field, const char *s, size_t max, bool empty_ok)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n;

    if (s == NULL || (*s == '\0' && !empty_ok))
        return ck_error_set(CK_ERR_INVAL, "%s: missing", field);
    if ((n = strlen(s)) > max)
        return ck_error_set(CK_ERR_LIMIT, "%s: longer than %zu bytes", field, max);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                                : (c & 0xf8) == 0xf0 ? 4 : 0;
        uint32_t cp;

        if (len == 0 || i + len > n || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4))
            return ck_error_set(CK_ERR_INVAL, "%s: not valid UTF-8", field);
        cp = len == 1 ? c : c & (0xff >> (len + 1));
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return ck_error_set(CK_ERR_INVAL, "%s: not valid UTF-8", field);
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return ck_error_set(CK_ERR_INVAL, "%s: not valid UTF-8", field);
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
            return ck_error_set(CK_ERR_INVAL, "%s: holds a control character", field);
        i += len;
    }
    return 0;
}

/* 1..max bytes from the set allowed (plus alphanumerics). */
static int
check_token(const char *field, const char *s, size_t max, const char *allowed, bool alnum)
{
    size_t n;

    if (s == NULL || *s == '\0')
        return ck_error_set(CK_ERR_INVAL, "%s: missing", field);
    if ((n = strlen(s)) > max)
        return ck_error_set(CK_ERR_LIMIT, "%s: longer than %zu bytes", field, max);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= '0' && c <= '9') || strchr(allowed, c) != NULL ||
                  (alnum && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')));

        if (!ok || c == '\0')
            return ck_error_set(CK_ERR_INVAL, "%s: character '%c' not allowed", field,
                                (c > 0x20 && c < 0x7f) ? c : '?');
    }
    return 0;
}

static int
check_segment(const char *s)
{
    return check_token("segment", s, CK_PROV_SEGMENT_MAX, "._-", true);
}

static int
check_number(const char *s)
{
    return check_token("number", s, CK_PROV_NUMBER_MAX, "", false);
}

static int
check_services(const char *s)
{
    int ret;
    size_t n;

    if ((ret = check_text("services", s, CK_PROV_SERVICES_MAX, false)) != 0)
        return ret;
    n = strlen(s);
    /* The caller validated the JSON; a stored value must at least be an object. */
    if (s[0] != '{' || s[n - 1] != '}')
        return ck_error_set(CK_ERR_INVAL, "services: not a JSON object");
    return 0;
}

static int
check_fqdn(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    return check_token("fqdn", s, CK_PROV_FQDN_MAX, ".-", true);
}

static int
check_actor(const ck_prov_actor *who)
{
    int ret;

    if (who == NULL)
        return ck_error_set(CK_ERR_INVAL, "actor: missing");
    if ((ret = check_text("actor", who->actor, CK_PROV_ACTOR_MAX, false)) != 0)
        return ret;
    if (who->idem_key != NULL)
        return check_token("idempotency key", who->idem_key, CK_PROV_IDEM_KEY_MAX, "._:-", true);
    return 0;
}

static int
check_mac(const char *mac, char canon[CK_DEVICE_MAC_LEN + 1])
{
    if (mac == NULL)
        return ck_error_set(CK_ERR_INVAL, "mac: missing");
    if (ck_device_mac_parse(mac, canon) != 0)
        return ck_error_set(CK_ERR_INVAL, "mac: not a MAC address");
    return 0;
}

static int
prov_usable(const ck_store *store, bool write)
{
    if (store == NULL)
        return ck_error_set(CK_ERR_INVAL, "no store");
    if (store->ops->prov_query == NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "the %s backend has no provisioning tables",
                            store->ops->name);
    if (write && store->readonly)
        return ck_error_set(CK_ERR_PERM, "database opened read-only");
    return 0;
}

static void
sha256(const uint8_t *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;

    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32);
}

/* ---------------------------------------------------------------------------- JSON text */

struct jbuf {
    char *p;
    size_t len, cap;
    int err;
};

static void
jb_raw(struct jbuf *b, const char *s, size_t n)
{
    if (b->err != 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;

        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > 1024 * 1024 || (np = realloc(b->p, cap)) == NULL) {
            b->err = ck_error_set(CK_ERR_NOMEM, "JSON text");
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jb_fmt(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
jb_fmt(struct jbuf *b, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        if (b->err == 0)
            b->err = ck_error_set(CK_ERR_LIMIT, "JSON field");
        return;
    }
    jb_raw(b, buf, (size_t)n);
}

/* A JSON string (the input is checked UTF-8; control characters escaped all the same). */
static void
jb_str(struct jbuf *b, const char *s)
{
    if (s == NULL) {
        jb_raw(b, "null", 4);
        return;
    }
    jb_raw(b, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            jb_fmt(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            jb_fmt(b, "\\u%04x", c);
        else
            jb_raw(b, (const char *)&c, 1);
    }
    jb_raw(b, "\"", 1);
}

static void
jb_key(struct jbuf *b, bool *first, const char *key)
{
    if (!*first)
        jb_raw(b, ",", 1);
    *first = false;
    jb_str(b, key);
    jb_raw(b, ":", 1);
}

static void
jb_id(struct jbuf *b, int64_t id)
{
    if (id > 0)
        jb_fmt(b, "%lld", (long long)id);
    else
        jb_raw(b, "null", 4);
}

/* ------------------------------------------------------------------------------ records */

void
ck_prov_customer_free(ck_prov_customer *c)
{
    if (c == NULL)
        return;
    free(c->name);
    free(c->address);
    free(c->email);
    free(c->services);
    free(c);
}

void
ck_prov_cert_free(ck_prov_cert *c)
{
    if (c == NULL)
        return;
    free(c->der);
    free(c);
}

void
ck_prov_device_free(ck_prov_device *d)
{
    if (d == NULL)
        return;
    free(d->principal);
    free(d->loaner_for);
    free(d->reported_by);
    free(d->mfg_cert_der);
    free(d);
}

void
ck_prov_event_free(ck_prov_event *e)
{
    if (e == NULL)
        return;
    free(e->actor);
    free(e->detail);
    free(e);
}

void
ck_prov_delivery_free(ck_prov_delivery *d)
{
    if (d == NULL)
        return;
    free(d->body);
    free(d);
}

/* ---- customers ---- */

#define CUSTOMER_COLUMNS "id, type, name, address, email, segment, services, created, modified"

static int
read_customer(const struct ck_prov_row *r, ck_prov_customer **out)
{
    ck_prov_customer *c = calloc(1, sizeof(*c));
    int ret;

    *out = NULL;
    if (c == NULL)
        return ck_error_set(CK_ERR_NOMEM, "customer record");
    c->id = r->i64(r, 0);
    c->type = r->i64(r, 1) == CK_PROV_ACCOUNT_REPAIR ? CK_PROV_ACCOUNT_REPAIR
                                                     : CK_PROV_ACCOUNT_CUSTOMER;
    if ((ret = col_dup(r, 2, &c->name)) != 0 || (ret = col_dup(r, 3, &c->address)) != 0 ||
        (ret = col_dup(r, 4, &c->email)) != 0 ||
        (ret = col_copy(r, 5, c->segment, sizeof(c->segment))) != 0 ||
        (ret = col_dup(r, 6, &c->services)) != 0)
        goto out;
    if (c->name == NULL || c->address == NULL || c->services == NULL) {
        ret = ck_error_set(CK_ERR_DB, "customer %lld: malformed row", (long long)c->id);
        goto out;
    }
    c->created = r->i64(r, 7);
    c->modified = r->i64(r, 8);
    *out = c;
    c = NULL;
out:
    ck_prov_customer_free(c);
    return ret;
}

static int
cb_customer(const struct ck_prov_row *r, void *arg)
{
    ck_prov_customer **out = arg;

    ck_prov_customer_free(*out);
    return read_customer(r, out);
}

static int
customer_load(ck_store *store, int64_t id, ck_prov_customer **out)
{
    int ret;

    *out = NULL;
    if ((ret = q_query(store, "customer",
                       "SELECT " CUSTOMER_COLUMNS " FROM prov_customer WHERE id = $1",
                       QARGS(Q_INT(id)), cb_customer, out)) != 0) {
        ck_prov_customer_free(*out);
        *out = NULL;
        return ret;
    }
    if (*out == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "customer %lld not found", (long long)id);
    return 0;
}

/* ---- the transaction frame: actor, audit action, idempotency ---- */

struct txn {
    ck_store *store;
    const ck_prov_actor *who;
    char saved_actor[CK_AUDIT_ACTOR_MAX];
    bool open;
};

/* The audit row names the action's actor, not the process's: the store's actor is swapped for
 * the transaction. */
static int txn_begin(struct txn *t, ck_store *store, const ck_prov_actor *who, const char *action,
                     const char *object, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int
txn_begin(struct txn *t, ck_store *store, const ck_prov_actor *who, const char *action,
          const char *object, const char *fmt, ...)
{
    char detail[CK_AUDIT_DETAIL_MAX];
    va_list ap;
    int ret;

    memset(t, 0, sizeof(*t));
    t->store = store;
    t->who = who;
    memcpy(t->saved_actor, store->audit.actor, sizeof(t->saved_actor));
    ck_store_set_actor(store, who->actor);
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    store_audit_begin(store, action, object, "%s", detail);
    if ((ret = store->ops->prov_begin(store->be)) != 0) {
        store_audit_end(store);
        memcpy(store->audit.actor, t->saved_actor, sizeof(t->saved_actor));
        return ret;
    }
    t->open = true;
    return 0;
}

static int
txn_end(struct txn *t, int ret)
{
    ck_store *store = t->store;

    if (t->open)
        ret = store->ops->prov_end(store->be, ret);
    t->open = false;
    store_audit_end(store);
    memcpy(store->audit.actor, t->saved_actor, sizeof(t->saved_actor));
    return ret;
}

struct idem_row {
    uint8_t request[32];
    bool ok;
    int64_t event_id;
    bool found;
};

static int
cb_idem(const struct ck_prov_row *r, void *arg)
{
    struct idem_row *i = arg;
    uint8_t *p = NULL;
    size_t len = 0;
    int ret;

    i->found = true;
    if ((ret = r->blob(r, 0, &p, &len)) != 0)
        return ret;
    i->ok = len == 32;
    if (i->ok)
        memcpy(i->request, p, 32);
    free(p);
    i->event_id = r->i64(r, 1);
    return 0;
}

/* Inside the transaction: 0 for a new key (or none), CK_ERR_EXISTS with *replayed for the same
 * request again, CK_ERR_POLICY for another request under the key. */
static int
idem_check(struct txn *t, int64_t now, int64_t *replayed)
{
    struct idem_row i = {0};
    int ret;

    if (t->who->idem_key == NULL)
        return 0;
    if ((ret = q_query(t->store, "idempotency",
                       "SELECT request, event_id FROM prov_idem WHERE key = $1 AND created >= $2",
                       QARGS(Q_TEXT(t->who->idem_key), Q_INT(now - CK_PROV_IDEM_RETENTION)),
                       cb_idem, &i)) != 0)
        return ret;
    if (!i.found)
        return 0;
    if (!i.ok || !ck_ct_equal(i.request, t->who->request_sha256, 32))
        return ck_error_set(CK_ERR_POLICY, "idempotency key reused for another request");
    if (replayed != NULL)
        *replayed = i.event_id;
    return ck_error_set(CK_ERR_EXISTS, "request already done (event %lld)",
                        (long long)i.event_id);
}

static int
idem_record(struct txn *t, int64_t event_id, int64_t now)
{
    int ret;

    if (t->who->idem_key == NULL)
        return 0;
    /* An expired record with the same key is replaced; older ones are dropped here too (two
     * statements: each uses its index). */
    if ((ret = q_exec(t->store, "idempotency", "DELETE FROM prov_idem WHERE key = $1",
                      QARGS(Q_TEXT(t->who->idem_key)), NULL)) != 0 ||
        (ret = q_exec(t->store, "idempotency", "DELETE FROM prov_idem WHERE created < $1",
                      QARGS(Q_INT(now - CK_PROV_IDEM_RETENTION)), NULL)) != 0)
        return ret;
    return q_exec(t->store, "idempotency",
                  "INSERT INTO prov_idem(key, request, event_id, created) VALUES ($1, $2, $3, $4)",
                  QARGS(Q_TEXT(t->who->idem_key), Q_BLOB(t->who->request_sha256, 32),
                        Q_INT(event_id), Q_INT(now)),
                  NULL);
}

/* One event (and *id), then one outbox row per configured target carrying body_fn's JSON. */
static int
event_add(struct txn *t, int64_t now, const char *mac, int64_t customer_id, const char *action,
          const char *detail, int64_t *id)
{
    struct i64_found f = {0};
    int ret;

    if ((ret = q_query(t->store, "event",
                       "INSERT INTO prov_event(time, mac, customer_id, action, actor, detail)"
                       " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                       QARGS(Q_INT(now), Q_TEXT(mac != NULL ? mac : ""), Q_INT(customer_id),
                             Q_TEXT(action), Q_TEXT(t->who->actor), Q_TEXT(detail)),
                       cb_i64_found, &f)) != 0)
        return ret;
    if (!f.found)
        return ck_error_set(CK_ERR_DB, "event: no id returned");
    *id = f.v;
    return 0;
}

static int
outbox_add(struct txn *t, int64_t event_id, const char *body, int64_t now)
{
    const struct ck_store_prov *p = t->store->prov;
    int ret;

    if (strlen(body) > CK_PROV_WEBHOOK_BODY_MAX)
        return ck_error_set(CK_ERR_LIMIT, "webhook body longer than %d bytes",
                            CK_PROV_WEBHOOK_BODY_MAX);
    for (size_t i = 0; p != NULL && i < p->n_targets; i++) {
        if ((ret = q_exec(t->store, "outbox",
                          "INSERT INTO prov_outbox(event_id, target, body, next_attempt, created)"
                          " VALUES ($1, $2, $3, $4, $5)",
                          QARGS(Q_INT(event_id), Q_TEXT(p->targets[i]), Q_TEXT(body), Q_INT(now),
                                Q_INT(now)),
                          NULL)) != 0)
            return ret;
    }
    return 0;
}

int
ck_prov_outbox_targets(ck_store *store, const char *const *names, size_t n)
{
    struct ck_store_prov *p;
    int ret;

    if (store == NULL || (n > 0 && names == NULL))
        return ck_error_set(CK_ERR_INVAL, "outbox targets: no store or names");
    if (n > PROV_TARGETS_MAX)
        return ck_error_set(CK_ERR_LIMIT, "outbox targets: more than %d", PROV_TARGETS_MAX);
    for (size_t i = 0; i < n; i++) {
        if ((ret = check_token("webhook target", names[i], PROV_TARGET_NAME_MAX, "._-", true)) != 0)
            return ret;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "outbox targets");
    for (size_t i = 0; i < n; i++) {
        if ((p->targets[i] = strdup(names[i])) == NULL) {
            for (size_t k = 0; k < i; k++)
                free(p->targets[k]);
            free(p);
            return ck_error_set(CK_ERR_NOMEM, "outbox targets");
        }
    }
    p->n_targets = n;
    ck_store_prov_free_int(store);
    store->prov = p;
    return 0;
}

/* ------------------------------------------------------------------------------ customers */

static int
check_customer(const ck_prov_customer *c, bool modify)
{
    int ret;

    if (!modify || c->name != NULL)
        if ((ret = check_text("name", c->name, CK_PROV_NAME_MAX, false)) != 0)
            return ret;
    if (!modify || c->address != NULL)
        if ((ret = check_text("address", c->address, CK_PROV_ADDRESS_MAX, false)) != 0)
            return ret;
    if (c->email != NULL && *c->email != '\0' &&
        ((ret = check_text("email", c->email, CK_PROV_EMAIL_MAX, false)) != 0))
        return ret;
    if (c->email != NULL && *c->email != '\0' && strchr(c->email, '@') == NULL)
        return ck_error_set(CK_ERR_INVAL, "email: not an address");
    if ((!modify || c->segment[0] != '\0') && (ret = check_segment(c->segment)) != 0)
        return ret;
    if ((!modify || c->services != NULL) && c->services != NULL &&
        (ret = check_services(c->services)) != 0)
        return ret;
    if (!modify && c->type != CK_PROV_ACCOUNT_CUSTOMER && c->type != CK_PROV_ACCOUNT_REPAIR)
        return ck_error_set(CK_ERR_INVAL, "type: must be customer or repair");
    return 0;
}

static void
customer_json(struct jbuf *b, const ck_prov_customer *c)
{
    bool first = true;

    jb_raw(b, "{", 1);
    jb_key(b, &first, "id");
    jb_fmt(b, "%lld", (long long)c->id);
    jb_key(b, &first, "type");
    jb_str(b, c->type == CK_PROV_ACCOUNT_REPAIR ? "repair" : "customer");
    jb_key(b, &first, "name");
    jb_str(b, c->name);
    jb_key(b, &first, "address");
    jb_str(b, c->address);
    jb_key(b, &first, "email");
    jb_str(b, c->email);
    jb_key(b, &first, "segment");
    jb_str(b, c->segment);
    jb_key(b, &first, "services");
    jb_raw(b, c->services, strlen(c->services));
    jb_raw(b, "}", 1);
}

/* The webhook body of a customer event. */
static int
customer_event(struct txn *t, const ck_prov_customer *c, const char *action, const char *hook,
               int64_t now, int64_t *event_id)
{
    struct jbuf detail = {0}, body = {0};
    bool first = true;
    int ret;

    customer_json(&detail, c);
    if ((ret = detail.err) != 0)
        goto out;
    if ((ret = event_add(t, now, "", c->id, action, detail.p, event_id)) != 0)
        goto out;
    jb_raw(&body, "{", 1);
    jb_key(&body, &first, "event");
    jb_str(&body, hook);
    jb_key(&body, &first, "event_id");
    jb_fmt(&body, "%lld", (long long)*event_id);
    jb_key(&body, &first, "time");
    jb_fmt(&body, "%lld", (long long)now);
    jb_key(&body, &first, "actor");
    jb_str(&body, t->who->actor);
    jb_key(&body, &first, "customer");
    jb_raw(&body, detail.p, detail.len);
    jb_raw(&body, "}", 1);
    if ((ret = body.err) == 0)
        ret = outbox_add(t, *event_id, body.p, now);
out:
    free(detail.p);
    free(body.p);
    return ret;
}

int
ck_prov_customer_add(ck_store *store, const ck_prov_actor *who, ck_prov_customer *c,
                     int64_t *replayed_event)
{
    struct txn t;
    struct i64_found f = {0};
    int64_t now = ck_store_now_int(), event_id = 0;
    const char *services;
    int ret;

    if (replayed_event != NULL)
        *replayed_event = 0;
    if ((ret = prov_usable(store, true)) != 0 || (ret = check_actor(who)) != 0)
        return ret;
    if (c == NULL)
        return ck_error_set(CK_ERR_INVAL, "no customer");
    if ((ret = check_customer(c, false)) != 0)
        return ret;
    services = c->services != NULL ? c->services : "{}";
    if ((ret = txn_begin(&t, store, who, "prov.customer-add", c->name, "segment %s",
                         c->segment)) != 0)
        return ret;
    if ((ret = idem_check(&t, now, replayed_event)) != 0)
        goto out;
    if ((ret = q_query(store, "add customer",
                       "INSERT INTO prov_customer(type, name, address, email, segment, services,"
                       " created, modified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                       QARGS(Q_INT(c->type), Q_TEXT(c->name), Q_TEXT(c->address),
                             Q_TEXT(c->email != NULL && *c->email ? c->email : NULL),
                             Q_TEXT(c->segment), Q_TEXT(services), Q_INT(now), Q_INT(now)),
                       cb_i64_found, &f)) != 0)
        goto out;
    if (!f.found) {
        ret = ck_error_set(CK_ERR_DB, "add customer: no id returned");
        goto out;
    }
    {
        ck_prov_customer tmp = *c;
        tmp.id = f.v;
        tmp.services = (char *)services;
        if (tmp.email != NULL && *tmp.email == '\0')
            tmp.email = NULL;
        if ((ret = customer_event(&t, &tmp, "customer-add", "customer.added", now,
                                  &event_id)) != 0)
            goto out;
    }
    if ((ret = idem_record(&t, event_id, now)) != 0 ||
        (ret = store->ops->prov_audit(store->be, c->name)) != 0)
        goto out;
out:
    ret = txn_end(&t, ret);
    if (ret == 0) {
        c->id = f.v;
        c->created = c->modified = now;
    }
    return ret;
}

int
ck_prov_customer_get(ck_store *store, int64_t id, ck_prov_customer **out)
{
    int ret;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "customer get: no output");
    *out = NULL;
    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    return customer_load(store, id, out);
}

int
ck_prov_customer_modify(ck_store *store, const ck_prov_actor *who, const ck_prov_customer *c,
                        int64_t *replayed_event)
{
    struct txn t;
    ck_prov_customer *cur = NULL;
    int64_t now = ck_store_now_int(), event_id = 0;
    char idbuf[32];
    int ret;

    if (replayed_event != NULL)
        *replayed_event = 0;
    if ((ret = prov_usable(store, true)) != 0 || (ret = check_actor(who)) != 0)
        return ret;
    if (c == NULL || c->id <= 0)
        return ck_error_set(CK_ERR_INVAL, "id: missing");
    if ((ret = check_customer(c, true)) != 0)
        return ret;
    if (c->name == NULL && c->address == NULL && c->email == NULL && c->services == NULL &&
        c->segment[0] == '\0')
        return ck_error_set(CK_ERR_INVAL, "customer %lld: nothing to change", (long long)c->id);
    snprintf(idbuf, sizeof(idbuf), "customer %lld", (long long)c->id);
    if ((ret = txn_begin(&t, store, who, "prov.customer-modify", idbuf, "%s", "")) != 0)
        return ret;
    if ((ret = idem_check(&t, now, replayed_event)) != 0 ||
        (ret = customer_load(store, c->id, &cur)) != 0)
        goto out;
    /* NULL: unchanged; an empty email removes it. */
    if (c->name != NULL && (ret = set_str(&cur->name, c->name)) != 0)
        goto out;
    if (c->address != NULL && (ret = set_str(&cur->address, c->address)) != 0)
        goto out;
    if (c->email != NULL && (ret = set_str(&cur->email, *c->email ? c->email : NULL))
                                != 0)
        goto out;
    if (c->services != NULL && (ret = set_str(&cur->services, c->services)) != 0)
        goto out;
    if (c->segment[0] != '\0')
        ck_strlcpy(cur->segment, c->segment, sizeof(cur->segment));
    if ((ret = q_exec(store, "modify customer",
                      "UPDATE prov_customer SET name = $1, address = $2, email = $3, segment = $4,"
                      " services = $5, modified = $6 WHERE id = $7",
                      QARGS(Q_TEXT(cur->name), Q_TEXT(cur->address), Q_TEXT(cur->email),
                            Q_TEXT(cur->segment), Q_TEXT(cur->services), Q_INT(now),
                            Q_INT(cur->id)),
                      NULL)) != 0 ||
        (ret = customer_event(&t, cur, "customer-modify", "customer.modified", now,
                              &event_id)) != 0 ||
        (ret = idem_record(&t, event_id, now)) != 0 ||
        (ret = store->ops->prov_audit(store->be, idbuf)) != 0)
        goto out;
out:
    ck_prov_customer_free(cur);
    return txn_end(&t, ret);
}

struct customer_list {
    ck_prov_customer *items[CK_PROV_LIST_MAX];
    size_t n;
};

static int
cb_customer_list(const struct ck_prov_row *r, void *arg)
{
    struct customer_list *l = arg;
    int ret;

    if (l->n >= CK_PROV_LIST_MAX)
        return 0;
    if ((ret = read_customer(r, &l->items[l->n])) != 0)
        return ret;
    l->n++;
    return 0;
}

/* The LIKE pattern "%q%" (lower case) with q's wildcards escaped. */
static int
like_pattern(const char *q, char **out)
{
    size_t n = strlen(q), o = 0;
    char *p = malloc(2 * n + 3);

    if (p == NULL)
        return ck_error_set(CK_ERR_NOMEM, "search pattern");
    p[o++] = '%';
    for (size_t i = 0; i < n; i++) {
        char c = q[i];

        if (c == '%' || c == '_' || c == '\\')
            p[o++] = '\\';
        p[o++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    p[o++] = '%';
    p[o] = '\0';
    *out = p;
    return 0;
}

int
ck_prov_customer_list(ck_store *store, const char *q, int64_t after, size_t limit,
                      ck_prov_customer_cb cb, void *arg, size_t *n_out)
{
    struct customer_list *l = NULL;
    char *pat = NULL;
    size_t n = 0;
    int ret;

    if (n_out != NULL)
        *n_out = 0;
    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    if (cb == NULL || limit == 0 || limit > CK_PROV_LIST_MAX)
        return ck_error_set(CK_ERR_INVAL, "limit: must be 1..%d", CK_PROV_LIST_MAX);
    if (q != NULL && (ret = check_text("q", q, CK_PROV_NAME_MAX, true)) != 0)
        return ret;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "customer list");
    /* Rows are collected first, so that cb may use the store. */
    if (q != NULL && *q != '\0') {
        if ((ret = like_pattern(q, &pat)) != 0)
            goto out;
        ret = q_query(store, "list customers",
                      "SELECT " CUSTOMER_COLUMNS " FROM prov_customer WHERE id > $1 AND"
                      " (lower(name) LIKE $2 ESCAPE '\\' OR lower(address) LIKE $2 ESCAPE '\\'"
                      "  OR lower(coalesce(email, '')) LIKE $2 ESCAPE '\\')"
                      " ORDER BY id LIMIT $3",
                      QARGS(Q_INT(after), Q_TEXT(pat), Q_INT(limit)), cb_customer_list, l);
    } else {
        ret = q_query(store, "list customers",
                      "SELECT " CUSTOMER_COLUMNS " FROM prov_customer WHERE id > $1"
                      " ORDER BY id LIMIT $2",
                      QARGS(Q_INT(after), Q_INT(limit)), cb_customer_list, l);
    }
    for (size_t i = 0; ret == 0 && i < l->n; i++) {
        ret = cb(l->items[i], arg);
        n++;
    }
out:
    for (size_t i = 0; l != NULL && i < l->n; i++)
        ck_prov_customer_free(l->items[i]);
    free(l);
    free(pat);
    if (n_out != NULL)
        *n_out = n;
    return ret;
}

/* -------------------------------------------------------------------------------- pools */

int
ck_prov_pool_add(ck_store *store, const ck_prov_actor *who, const char *segment,
                 const char *first, const char *last, size_t *added)
{
    struct txn t;
    int64_t a = 0, b = 0;
    size_t len, count = 0;
    int ret;

    if (added != NULL)
        *added = 0;
    if ((ret = prov_usable(store, true)) != 0 || (ret = check_actor(who)) != 0 ||
        (ret = check_segment(segment)) != 0 || (ret = check_number(first)) != 0 ||
        (ret = check_number(last)) != 0)
        return ret;
    len = strlen(first);
    if (strlen(last) != len)
        return ck_error_set(CK_ERR_INVAL, "last: not as long as first");
    if (ck_parse_int64(first, 0, INT64_MAX, &a) != 0 || ck_parse_int64(last, 0, INT64_MAX, &b) != 0)
        return ck_error_set(CK_ERR_INVAL, "number: not digits");
    if (b < a)
        return ck_error_set(CK_ERR_INVAL, "last: below first");
    if (b - a >= PROV_POOL_ADD_MAX)
        return ck_error_set(CK_ERR_LIMIT, "number range: more than %d numbers",
                            PROV_POOL_ADD_MAX);
    if ((ret = txn_begin(&t, store, who, "prov.pool-add", segment, "%s..%s", first, last)) != 0)
        return ret;
    for (int64_t v = a; v <= b; v++) {
        char num[CK_PROV_NUMBER_MAX + 1];
        uint64_t n = 0;

        snprintf(num, sizeof(num), "%0*lld", (int)len, (long long)v);
        if ((ret = q_exec(store, "add number",
                          "INSERT INTO prov_number(number, segment) VALUES ($1, $2)"
                          " ON CONFLICT DO NOTHING",
                          QARGS(Q_TEXT(num), Q_TEXT(segment)), &n)) != 0)
            goto out;
        count += (size_t)n;
    }
    ret = store->ops->prov_audit(store->be, segment);
out:
    ret = txn_end(&t, ret);
    if (ret == 0 && added != NULL)
        *added = count;
    return ret;
}

struct pool_row {
    int64_t free_n, assigned;
};

static int
cb_pool(const struct ck_prov_row *r, void *arg)
{
    struct pool_row *p = arg;

    p->free_n = r->i64(r, 0);
    p->assigned = r->i64(r, 1);
    return 0;
}

int
ck_prov_pool_stats_get(ck_store *store, const char *segment, ck_prov_pool_stats *out)
{
    struct pool_row p = {0};
    int ret;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "pool stats: no output");
    memset(out, 0, sizeof(*out));
    if ((ret = prov_usable(store, false)) != 0 || (ret = check_segment(segment)) != 0)
        return ret;
    if ((ret = q_query(store, "pool",
                       "SELECT sum(CASE WHEN mac IS NULL THEN 1 ELSE 0 END),"
                       " sum(CASE WHEN mac IS NULL THEN 0 ELSE 1 END) FROM prov_number"
                       " WHERE segment = $1",
                       QARGS(Q_TEXT(segment)), cb_pool, &p)) != 0)
        return ret;
    out->free = (size_t)p.free_n;
    out->assigned = (size_t)p.assigned;
    return 0;
}

struct pool_list {
    char seg[CK_PROV_LIST_MAX][CK_PROV_SEGMENT_MAX + 1];
    ck_prov_pool_stats st[CK_PROV_LIST_MAX];
    size_t n;
};

static int
cb_pool_list(const struct ck_prov_row *r, void *arg)
{
    struct pool_list *l = arg;
    int ret;

    if (l->n >= CK_PROV_LIST_MAX)
        return 0;
    if ((ret = col_copy(r, 0, l->seg[l->n], sizeof(l->seg[0]))) != 0)
        return ret;
    l->st[l->n].free = (size_t)r->i64(r, 1);
    l->st[l->n].assigned = (size_t)r->i64(r, 2);
    l->n++;
    return 0;
}

int
ck_prov_pool_list(ck_store *store, ck_prov_pool_cb cb, void *arg)
{
    struct pool_list *l;
    int ret;

    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    if (cb == NULL)
        return ck_error_set(CK_ERR_INVAL, "pool list: no callback");
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "pool list");
    ret = q_query(store, "pools",
                  "SELECT segment, sum(CASE WHEN mac IS NULL THEN 1 ELSE 0 END),"
                  " sum(CASE WHEN mac IS NULL THEN 0 ELSE 1 END) FROM prov_number"
                  " GROUP BY segment ORDER BY segment LIMIT $1",
                  QARGS(Q_INT(CK_PROV_LIST_MAX)), cb_pool_list, l);
    for (size_t i = 0; ret == 0 && i < l->n; i++)
        ret = cb(l->seg[i], &l->st[i], arg);
    free(l);
    return ret;
}

static int
cb_text_found(const struct ck_prov_row *r, void *arg)
{
    char *buf = arg;

    return col_copy(r, 0, buf, CK_PROV_NUMBER_MAX + 1);
}

int
ck_prov_number_next(ck_store *store, const char *segment, char out[CK_PROV_NUMBER_MAX + 1])
{
    return ck_prov_number_next_after(store, segment, NULL, out);
}

int
ck_prov_number_next_after(ck_store *store, const char *segment, const char *after,
                          char out[CK_PROV_NUMBER_MAX + 1])
{
    int ret;

    out[0] = '\0';
    if ((ret = prov_usable(store, false)) != 0 || (ret = check_segment(segment)) != 0)
        return ret;
    if (after != NULL && (after[0] == '\0' || strlen(after) > CK_PROV_NUMBER_MAX))
        return ck_error_set(CK_ERR_INVAL, "free number after: 1..%d characters expected",
                            CK_PROV_NUMBER_MAX);
    if (after == NULL)
        ret = q_query(store, "free number",
                      "SELECT number FROM prov_number WHERE segment = $1 AND mac IS NULL"
                      " ORDER BY number LIMIT 1",
                      QARGS(Q_TEXT(segment)), cb_text_found, out);
    else
        ret = q_query(store, "free number",
                      "SELECT number FROM prov_number WHERE segment = $1 AND mac IS NULL"
                      " AND number > $2 ORDER BY number LIMIT 1",
                      QARGS(Q_TEXT(segment), Q_TEXT(after)), cb_text_found, out);
    if (ret != 0)
        return ret;
    if (out[0] == '\0')
        return ck_error_set(CK_ERR_FULL, "segment %s has no free number", segment);
    return 0;
}

/* ------------------------------------------------------------------------------ devices */

#define DEVICE_SELECT                                                                          \
    "SELECT p.mac, p.state, p.principal, p.customer_id, p.owner_id, p.loaner_for, p.segment,"  \
    " p.fqdn, p.ipv4, p.unprov_ip, p.reported_by, p.mfg_cert, p.spki_sha256, p.cert_id,"       \
    " p.first_seen, p.last_seen, p.modified, coalesce(d.generation, 0)"                        \
    " FROM prov_device p LEFT JOIN device d ON d.mac = p.mac "

static int
read_device(const struct ck_prov_row *r, ck_prov_device **out)
{
    ck_prov_device *d = calloc(1, sizeof(*d));
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    int64_t ip;
    int ret;

    *out = NULL;
    if (d == NULL)
        return ck_error_set(CK_ERR_NOMEM, "device record");
    if ((ret = col_copy(r, 0, d->mac, sizeof(d->mac))) != 0 ||
        (ret = col_dup(r, 2, &d->principal)) != 0 || (ret = col_dup(r, 5, &d->loaner_for)) != 0 ||
        (ret = col_copy(r, 6, d->segment, sizeof(d->segment))) != 0 ||
        (ret = col_copy(r, 7, d->fqdn, sizeof(d->fqdn))) != 0 ||
        (ret = col_copy(r, 9, d->unprov_ip, sizeof(d->unprov_ip))) != 0 ||
        (ret = col_dup(r, 10, &d->reported_by)) != 0 ||
        (ret = r->blob(r, 11, &d->mfg_cert_der, &d->mfg_cert_len)) != 0 ||
        (ret = r->blob(r, 12, &spki, &spki_len)) != 0)
        goto out;
    d->state = (enum ck_prov_state)r->i64(r, 1);
    if (d->principal == NULL || d->state < CK_PROV_UNPROVISIONED || d->state > CK_PROV_REVOKED ||
        (spki != NULL && spki_len != 32)) {
        ret = ck_error_set(CK_ERR_DB, "device %s: malformed provisioning row", d->mac);
        goto out;
    }
    if (spki != NULL)
        memcpy(d->spki_sha256, spki, 32);
    d->customer_id = r->i64(r, 3);
    d->owner_id = r->i64(r, 4);
    ip = r->i64(r, 8);
    d->ipv4[0] = (uint8_t)(ip >> 24);
    d->ipv4[1] = (uint8_t)(ip >> 16);
    d->ipv4[2] = (uint8_t)(ip >> 8);
    d->ipv4[3] = (uint8_t)ip;
    d->cert_id = r->i64(r, 13);
    d->has_cert = d->cert_id != 0;
    d->first_seen = r->i64(r, 14);
    d->last_seen = r->i64(r, 15);
    d->modified = r->i64(r, 16);
    d->generation = (uint64_t)r->i64(r, 17);
    *out = d;
    d = NULL;
out:
    free(spki);
    ck_prov_device_free(d);
    return ret;
}

struct device_list {
    ck_prov_device **items;
    size_t n, max;
};

static int
cb_device_list(const struct ck_prov_row *r, void *arg)
{
    struct device_list *l = arg;
    int ret;

    if (l->n >= l->max)
        return 0;
    if ((ret = read_device(r, &l->items[l->n])) != 0)
        return ret;
    l->n++;
    return 0;
}

static int
cb_number(const struct ck_prov_row *r, void *arg)
{
    ck_prov_device *d = arg;

    if (d->n_numbers >= CK_PROV_MAX_NUMBERS)
        return 0;
    return col_copy(r, 0, d->numbers[d->n_numbers++], sizeof(d->numbers[0]));
}

static int
device_numbers(ck_store *store, ck_prov_device *d)
{
    d->n_numbers = 0;
    return q_query(store, "device numbers",
                   "SELECT number FROM prov_number WHERE mac = $1 ORDER BY slot, number",
                   QARGS(Q_TEXT(d->mac)), cb_number, d);
}

/* The provisioning record of mac (canonical), CK_ERR_NOTFOUND if none. */
static int
device_load(ck_store *store, const char *mac, ck_prov_device **out)
{
    ck_prov_device *one = NULL;
    struct device_list l = {&one, 0, 1};
    int ret;

    *out = NULL;
    if ((ret = q_query(store, "device", DEVICE_SELECT "WHERE p.mac = $1", QARGS(Q_TEXT(mac)),
                       cb_device_list, &l)) != 0)
        goto out;
    if (l.n == 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "device %s not found", mac);
        goto out;
    }
    if ((ret = device_numbers(store, one)) != 0)
        goto out;
    *out = one;
    one = NULL;
out:
    ck_prov_device_free(one);
    return ret;
}

int
ck_prov_device_get(ck_store *store, const char *mac, ck_prov_device **out)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    int ret;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "device get: no output");
    *out = NULL;
    if ((ret = prov_usable(store, false)) != 0 || (ret = check_mac(mac, canon)) != 0)
        return ret;
    return device_load(store, canon, out);
}

int
ck_prov_device_list(ck_store *store, const ck_prov_device_query *q, ck_prov_device_cb cb,
                    void *arg, size_t *n_out)
{
    struct device_list l = {0};
    char after[CK_DEVICE_MAC_LEN + 1] = "", mac[CK_DEVICE_MAC_LEN + 1];
    int filters, ret;
    size_t n = 0;

    if (n_out != NULL)
        *n_out = 0;
    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    if (q == NULL || cb == NULL || q->limit == 0 || q->limit > CK_PROV_LIST_MAX)
        return ck_error_set(CK_ERR_INVAL, "limit: must be 1..%d", CK_PROV_LIST_MAX);
    filters = (q->mac != NULL) + (q->unprov_ip != NULL) + (q->number != NULL) +
              (q->customer_id > 0) + (q->state > 0);
    if (filters > 1)
        return ck_error_set(CK_ERR_INVAL, "query: at most one of mac, ip, number, customer, "
                            "state");
    if (q->after != NULL && *q->after != '\0' && check_mac(q->after, after) != 0)
        return ck_error_set(CK_ERR_INVAL, "after: not a MAC address");
    if (q->mac != NULL && (ret = check_mac(q->mac, mac)) != 0)
        return ret;
    if (q->unprov_ip != NULL &&
        (ret = check_token("ip", q->unprov_ip, sizeof(((ck_prov_device *)0)->unprov_ip) - 1,
                           ".:", true)) != 0)
        return ret;
    if (q->number != NULL && (ret = check_number(q->number)) != 0)
        return ret;
    if (q->state < 0 || q->state > CK_PROV_REVOKED)
        return ck_error_set(CK_ERR_INVAL, "state: unknown");
    l.max = q->limit;
    if ((l.items = calloc(l.max, sizeof(*l.items))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "device list");
    if (q->mac != NULL)
        ret = q_query(store, "list devices", DEVICE_SELECT "WHERE p.mac = $1 AND p.mac > $2",
                      QARGS(Q_TEXT(mac), Q_TEXT(after)), cb_device_list, &l);
    else if (q->unprov_ip != NULL)
        ret = q_query(store, "list devices",
                      DEVICE_SELECT "WHERE p.unprov_ip = $1 AND p.mac > $2 ORDER BY p.mac LIMIT $3",
                      QARGS(Q_TEXT(q->unprov_ip), Q_TEXT(after), Q_INT(q->limit)),
                      cb_device_list, &l);
    else if (q->number != NULL)
        ret = q_query(store, "list devices",
                      DEVICE_SELECT "JOIN prov_number n ON n.mac = p.mac WHERE n.number = $1"
                      " AND p.mac > $2 ORDER BY p.mac LIMIT $3",
                      QARGS(Q_TEXT(q->number), Q_TEXT(after), Q_INT(q->limit)), cb_device_list,
                      &l);
    else if (q->customer_id > 0)
        ret = q_query(store, "list devices",
                      DEVICE_SELECT "WHERE (p.customer_id = $1 OR p.owner_id = $1) AND p.mac > $2"
                      " ORDER BY p.mac LIMIT $3",
                      QARGS(Q_INT(q->customer_id), Q_TEXT(after), Q_INT(q->limit)),
                      cb_device_list, &l);
    else if (q->state > 0)
        ret = q_query(store, "list devices",
                      DEVICE_SELECT "WHERE p.state = $1 AND p.mac > $2 ORDER BY p.mac LIMIT $3",
                      QARGS(Q_INT(q->state), Q_TEXT(after), Q_INT(q->limit)), cb_device_list,
                      &l);
    else
        ret = q_query(store, "list devices",
                      DEVICE_SELECT "WHERE p.mac > $1 ORDER BY p.mac LIMIT $2",
                      QARGS(Q_TEXT(after), Q_INT(q->limit)), cb_device_list, &l);
    for (size_t i = 0; ret == 0 && i < l.n; i++)
        ret = device_numbers(store, l.items[i]);
    for (size_t i = 0; ret == 0 && i < l.n; i++) {
        ret = cb(l.items[i], arg);
        n++;
    }
    for (size_t i = 0; i < l.n; i++)
        ck_prov_device_free(l.items[i]);
    free(l.items);
    if (n_out != NULL)
        *n_out = n;
    return ret;
}

/* ---- the device record inside an action's transaction ---- */

/* The KDC's device row: state, operator certificate, generation bump (the KDC's cache sees it at
 * its next lookup). CK_ERR_NOTFOUND if the row is gone (`cablekey device delete`). */
static int
kdc_row_write(ck_store *store, const char *mac, enum ck_device_state state,
              const uint8_t *cert_sha256, int64_t now, uint64_t *gen)
{
    uint64_t n = 0;
    int ret;

    if ((ret = store->ops->prov_bump(store->be, CK_CHANGE_DEVICE, mac, gen)) != 0)
        return ret;
    if ((ret = q_exec(store, "device",
                      "UPDATE device SET state = $1, revoked = $2, cert_sha256 = $3, modified = $4,"
                      " generation = $5 WHERE mac = $6",
                      QARGS(Q_INT(state), Q_INT(state == CK_DEVICE_REVOKED ? now : 0),
                            cert_sha256 != NULL ? Q_BLOB(cert_sha256, 32) : Q_NULL, Q_INT(now),
                            Q_INT(*gen), Q_TEXT(mac)),
                      &n)) != 0)
        return ret;
    if (n == 0)
        return ck_error_set(CK_ERR_NOTFOUND, "device %s has no KDC device record", mac);
    return 0;
}

static int
prov_row_write(ck_store *store, const ck_prov_device *d, int64_t now)
{
    int64_t ip = ((int64_t)d->ipv4[0] << 24) | ((int64_t)d->ipv4[1] << 16) |
                 ((int64_t)d->ipv4[2] << 8) | d->ipv4[3];

    return q_exec(store, "device",
                  "UPDATE prov_device SET state = $1, customer_id = $2, owner_id = $3,"
                  " loaner_for = $4, segment = $5, fqdn = $6, ipv4 = $7, cert_id = $8,"
                  " modified = $9 WHERE mac = $10",
                  QARGS(Q_INT(d->state), Q_INT(d->customer_id), Q_INT(d->owner_id),
                        Q_TEXT(d->loaner_for), Q_TEXT(d->segment), Q_TEXT(d->fqdn), Q_INT(ip),
                        Q_INT(d->cert_id), Q_INT(now), Q_TEXT(d->mac)),
                  NULL);
}

static int
numbers_release(ck_store *store, ck_prov_device *d)
{
    d->n_numbers = 0;
    return q_exec(store, "release numbers",
                  "UPDATE prov_number SET mac = NULL, slot = 0, assigned = 0 WHERE mac = $1",
                  QARGS(Q_TEXT(d->mac)), NULL);
}

struct number_row {
    char segment[CK_PROV_SEGMENT_MAX + 1];
    bool taken, found;
};

static int
cb_number_row(const struct ck_prov_row *r, void *arg)
{
    struct number_row *n = arg;

    n->found = true;
    n->taken = !r->null(r, 1);
    return col_copy(r, 0, n->segment, sizeof(n->segment));
}

/* Gives d a number of segment: `number` if free, else the lowest free one. */
static int
number_take(ck_store *store, ck_prov_device *d, const char *segment, const char *number,
            int64_t now)
{
    char pick[CK_PROV_NUMBER_MAX + 1] = "";
    uint64_t n = 0;
    int ret;

    if (d->n_numbers >= CK_PROV_MAX_NUMBERS)
        return ck_error_set(CK_ERR_LIMIT, "device %s: more than %d numbers", d->mac,
                            CK_PROV_MAX_NUMBERS);
    if (number != NULL) {
        ck_strlcpy(pick, number, sizeof(pick));
    } else {
        if ((ret = q_query(store, "free number",
                           "SELECT number FROM prov_number WHERE segment = $1 AND mac IS NULL"
                           " ORDER BY number LIMIT 1",
                           QARGS(Q_TEXT(segment)), cb_text_found, pick)) != 0)
            return ret;
        if (pick[0] == '\0')
            return ck_error_set(CK_ERR_FULL, "segment %s has no free number", segment);
    }
    if ((ret = q_exec(store, "take number",
                      "UPDATE prov_number SET mac = $1, slot = $2, assigned = $3"
                      " WHERE number = $4 AND segment = $5 AND mac IS NULL",
                      QARGS(Q_TEXT(d->mac), Q_INT(d->n_numbers), Q_INT(now), Q_TEXT(pick),
                            Q_TEXT(segment)),
                      &n)) != 0)
        return ret;
    if (n == 0) {
        struct number_row row = {0};

        if ((ret = q_query(store, "number",
                           "SELECT segment, mac FROM prov_number WHERE number = $1",
                           QARGS(Q_TEXT(pick)), cb_number_row, &row)) != 0)
            return ret;
        if (!row.found)
            return ck_error_set(CK_ERR_NOTFOUND, "number %s is not in any pool", pick);
        if (strcmp(row.segment, segment) != 0)
            return ck_error_set(CK_ERR_INVAL, "number: %s belongs to segment %s, not %s", pick,
                                row.segment, segment);
        return ck_error_set(CK_ERR_EXISTS, "number %s is taken", pick);
    }
    ck_strlcpy(d->numbers[d->n_numbers++], pick, sizeof(d->numbers[0]));
    return 0;
}

static int
certs_supersede(ck_store *store, const char *mac)
{
    return q_exec(store, "supersede certificates",
                  "UPDATE prov_cert SET superseded = 1 WHERE mac = $1 AND superseded = 0",
                  QARGS(Q_TEXT(mac)), NULL);
}

/* The action's new operator certificate: the others superseded, this one current. */
static int
cert_install(ck_store *store, ck_prov_device *d, const ck_prov_action *a, int64_t now,
             uint8_t sha[32])
{
    struct i64_found f = {0};
    int ret;

    sha256(a->cert_der, a->cert_len, sha);
    if ((ret = certs_supersede(store, d->mac)) != 0)
        return ret;
    if ((ret = q_query(store, "certificate",
                       "INSERT INTO prov_cert(mac, der, sha256, not_before, not_after, issued)"
                       " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                       QARGS(Q_TEXT(d->mac), Q_BLOB(a->cert_der, a->cert_len), Q_BLOB(sha, 32),
                             Q_INT(a->cert_not_before), Q_INT(a->cert_not_after), Q_INT(now)),
                       cb_i64_found, &f)) != 0)
        return ret;
    if (!f.found)
        return ck_error_set(CK_ERR_DB, "certificate: no id returned");
    d->cert_id = f.v;
    d->has_cert = true;
    return 0;
}

static int
check_action(enum ck_prov_action_type t, const ck_prov_action *a)
{
    int ret;

    if (a == NULL)
        return ck_error_set(CK_ERR_INVAL, "no action");
    if (t < CK_PROV_ACT_PROVISION || t > CK_PROV_ACT_REINSTATE)
        return ck_error_set(CK_ERR_INVAL, "action: unknown (%d)", (int)t);
    if (a->number != NULL && (ret = check_number(a->number)) != 0)
        return ret;
    if (a->segment != NULL && (ret = check_segment(a->segment)) != 0)
        return ret;
    if (a->services != NULL && (ret = check_services(a->services)) != 0)
        return ret;
    if ((ret = check_fqdn(a->fqdn)) != 0)
        return ret;
    if (a->reason != NULL && (ret = check_text("reason", a->reason, PROV_REASON_MAX, true)) != 0)
        return ret;
    if (a->cert_der != NULL && (a->cert_len == 0 || a->cert_len > CK_PROV_CERT_MAX))
        return ck_error_set(CK_ERR_LIMIT, "certificate: 1..%d bytes", CK_PROV_CERT_MAX);
    if (a->cert_der != NULL && a->cert_not_after < a->cert_not_before)
        return ck_error_set(CK_ERR_INVAL, "certificate: validity ends before it starts");
    switch (t) {
    case CK_PROV_ACT_PROVISION:
    case CK_PROV_ACT_LOANER:
    case CK_PROV_ACT_REPAIR:
        if (a->customer_id <= 0)
            return ck_error_set(CK_ERR_INVAL, "customer: missing");
        break;
    case CK_PROV_ACT_MOVE:
        if (a->segment == NULL)
            return ck_error_set(CK_ERR_INVAL, "segment: missing");
        break;
    case CK_PROV_ACT_CHANGE_SERVICE:
        if (a->services == NULL && a->cert_der == NULL)
            return ck_error_set(CK_ERR_INVAL, "services: missing");
        break;
    default: break;
    }
    if (t == CK_PROV_ACT_LOANER && a->loaner_for == NULL)
        return ck_error_set(CK_ERR_INVAL, "for: missing");
    return 0;
}

/* Which states an action starts from. */
static bool
state_allows(enum ck_prov_action_type t, const ck_prov_device *d)
{
    switch (t) {
    case CK_PROV_ACT_PROVISION:
    case CK_PROV_ACT_LOANER: return d->state == CK_PROV_UNPROVISIONED;
    case CK_PROV_ACT_CHANGE_SERVICE:
    case CK_PROV_ACT_MOVE: return d->state == CK_PROV_PROVISIONED;
    case CK_PROV_ACT_DEPROVISION:
        return d->state == CK_PROV_PROVISIONED || d->state == CK_PROV_REPAIR;
    case CK_PROV_ACT_REPAIR:
        return d->state == CK_PROV_PROVISIONED ||
               (d->state == CK_PROV_UNPROVISIONED && d->owner_id != 0);
    case CK_PROV_ACT_RETURN: return d->state == CK_PROV_REPAIR;
    case CK_PROV_ACT_REVOKE: return d->state != CK_PROV_REVOKED;
    case CK_PROV_ACT_REINSTATE: return d->state == CK_PROV_REVOKED;
    }
    return false;
}

static void
device_json_fields(struct jbuf *b, bool *first, const ck_prov_device *d)
{
    jb_key(b, first, "mac");
    jb_str(b, d->mac);
    jb_key(b, first, "principal");
    jb_str(b, d->principal);
    jb_key(b, first, "state");
    jb_str(b, ck_prov_state_name(d->state));
    jb_key(b, first, "customer");
    jb_id(b, d->customer_id);
    jb_key(b, first, "owner");
    jb_id(b, d->owner_id);
    jb_key(b, first, "loaner_for");
    jb_str(b, d->loaner_for);
    jb_key(b, first, "numbers");
    jb_raw(b, "[", 1);
    for (size_t i = 0; i < d->n_numbers; i++) {
        if (i > 0)
            jb_raw(b, ",", 1);
        jb_str(b, d->numbers[i]);
    }
    jb_raw(b, "]", 1);
    jb_key(b, first, "segment");
    jb_str(b, d->segment);
    jb_key(b, first, "fqdn");
    jb_str(b, d->fqdn);
    jb_key(b, first, "cert");
    jb_id(b, d->cert_id);
}

/* The event (detail: the device after the change, the state before, the reason) and its
 * webhook body. */
static int
device_event(struct txn *t, const ck_prov_device *d, enum ck_prov_state from, const char *action,
             const char *hook, const char *reason, const char *old_numbers, int64_t now,
             int64_t *event_id)
{
    struct jbuf detail = {0}, body = {0};
    bool first = true;
    int ret;

    jb_raw(&detail, "{", 1);
    device_json_fields(&detail, &first, d);
    jb_key(&detail, &first, "from");
    jb_str(&detail, ck_prov_state_name(from));
    if (old_numbers != NULL && *old_numbers != '\0') {
        jb_key(&detail, &first, "removed");
        jb_raw(&detail, old_numbers, strlen(old_numbers));
    }
    if (reason != NULL) {
        jb_key(&detail, &first, "reason");
        jb_str(&detail, reason);
    }
    jb_raw(&detail, "}", 1);
    if ((ret = detail.err) != 0)
        goto out;
    if (strlen(detail.p) > CK_PROV_EVENT_DETAIL_MAX) {
        ret = ck_error_set(CK_ERR_LIMIT, "event detail longer than %d bytes",
                           CK_PROV_EVENT_DETAIL_MAX);
        goto out;
    }
    if ((ret = event_add(t, now, d->mac, d->customer_id, action, detail.p, event_id)) != 0 ||
        hook == NULL)
        goto out;
    first = true;
    jb_raw(&body, "{", 1);
    jb_key(&body, &first, "event");
    jb_str(&body, hook);
    jb_key(&body, &first, "event_id");
    jb_fmt(&body, "%lld", (long long)*event_id);
    jb_key(&body, &first, "time");
    jb_fmt(&body, "%lld", (long long)now);
    jb_key(&body, &first, "actor");
    jb_str(&body, t->who->actor);
    jb_key(&body, &first, "device");
    jb_raw(&body, detail.p, detail.len);
    jb_raw(&body, "}", 1);
    if ((ret = body.err) == 0)
        ret = outbox_add(t, *event_id, body.p, now);
out:
    free(detail.p);
    free(body.p);
    return ret;
}

/* ["n1","n2"] of d's numbers (before a change that removes them). */
static void
numbers_json(const ck_prov_device *d, char *buf, size_t size)
{
    size_t o = 0;

    buf[0] = '\0';
    if (d->n_numbers == 0)
        return;
    o += (size_t)snprintf(buf + o, size - o, "[");
    for (size_t i = 0; i < d->n_numbers && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s\"%s\"", i ? "," : "", d->numbers[i]);
    if (o < size)
        snprintf(buf + o, size - o, "]");
}


/* Back to no customer (deprovision, reinstate). */
static void
device_clear(ck_prov_device *d)
{
    d->state = CK_PROV_UNPROVISIONED;
    d->customer_id = 0;
    d->owner_id = 0;
    free(d->loaner_for);
    d->loaner_for = NULL;
    d->segment[0] = '\0';
    d->fqdn[0] = '\0';
    memset(d->ipv4, 0, sizeof(d->ipv4));
    d->cert_id = 0;
    d->has_cert = false;
}

/* The action's changes inside the transaction; d is the record before, changed in place. */
static int
act_apply(struct txn *t, enum ck_prov_action_type type, const ck_prov_action *a,
          ck_prov_device *d, int64_t now, uint8_t cert_sha[32], bool *cert_current)
{
    ck_store *store = t->store;
    ck_prov_customer *cust = NULL;
    char other[CK_DEVICE_MAC_LEN + 1];
    const char *seg;
    int ret = 0;

    *cert_current = false;
    switch (type) {
    case CK_PROV_ACT_PROVISION:
    case CK_PROV_ACT_LOANER:
        if ((ret = customer_load(store, a->customer_id, &cust)) != 0)
            goto out;
        if (cust->type != CK_PROV_ACCOUNT_CUSTOMER) {
            ret = ck_error_set(CK_ERR_INVAL, "customer: %lld is a repair facility's account",
                               (long long)cust->id);
            goto out;
        }
        if (type == CK_PROV_ACT_LOANER) {
            ck_prov_device *o = NULL;

            if ((ret = check_mac(a->loaner_for, other)) != 0)
                goto out;
            if (strcmp(other, d->mac) == 0) {
                ret = ck_error_set(CK_ERR_INVAL, "for: a device cannot stand in for itself");
                goto out;
            }
            if ((ret = device_load(store, other, &o)) != 0)
                goto out;
            ck_prov_device_free(o);
            if ((ret = set_str(&d->loaner_for, other)) != 0)
                goto out;
        }
        seg = a->segment != NULL ? a->segment : cust->segment;
        if ((ret = number_take(store, d, seg, a->number, now)) != 0)
            goto out;
        d->state = CK_PROV_PROVISIONED;
        d->customer_id = cust->id;
        d->owner_id = 0;
        ck_strlcpy(d->segment, seg, sizeof(d->segment));
        break;
    case CK_PROV_ACT_CHANGE_SERVICE:
        if (a->services != NULL) {
            if ((ret = q_exec(store, "services",
                              "UPDATE prov_customer SET services = $1, modified = $2 WHERE id = $3",
                              QARGS(Q_TEXT(a->services), Q_INT(now), Q_INT(d->customer_id)),
                              NULL)) != 0)
                goto out;
        }
        break;
    case CK_PROV_ACT_DEPROVISION:
    case CK_PROV_ACT_REINSTATE:
        if ((ret = numbers_release(store, d)) != 0 || (ret = certs_supersede(store, d->mac)) != 0)
            goto out;
        device_clear(d);
        break;
    case CK_PROV_ACT_MOVE:
        if ((ret = numbers_release(store, d)) != 0 ||
            (ret = number_take(store, d, a->segment, a->number, now)) != 0)
            goto out;
        ck_strlcpy(d->segment, a->segment, sizeof(d->segment));
        break;
    case CK_PROV_ACT_REPAIR:
        if ((ret = customer_load(store, a->customer_id, &cust)) != 0)
            goto out;
        if (cust->type != CK_PROV_ACCOUNT_REPAIR) {
            ret = ck_error_set(CK_ERR_INVAL, "facility: %lld is not a repair facility's account",
                               (long long)cust->id);
            goto out;
        }
        if (d->state == CK_PROV_PROVISIONED)
            d->owner_id = d->customer_id;
        d->customer_id = cust->id;
        d->state = CK_PROV_REPAIR;
        break;
    case CK_PROV_ACT_RETURN:
        if (d->owner_id == 0) {
            ret = ck_error_set(CK_ERR_POLICY, "device %s is in repair without an owner: cannot "
                               "return; deprovision it", d->mac);
            goto out;
        }
        d->customer_id = d->owner_id;
        d->owner_id = 0;
        d->state = CK_PROV_PROVISIONED;
        break;
    case CK_PROV_ACT_REVOKE:
        if ((ret = numbers_release(store, d)) != 0 || (ret = certs_supersede(store, d->mac)) != 0)
            goto out;
        d->state = CK_PROV_REVOKED;
        d->cert_id = 0;
        d->has_cert = false;
        break;
    }
    if (a->fqdn != NULL && type != CK_PROV_ACT_DEPROVISION && type != CK_PROV_ACT_REVOKE &&
        type != CK_PROV_ACT_REINSTATE)
        ck_strlcpy(d->fqdn, a->fqdn, sizeof(d->fqdn));
    if (a->ipv4 != NULL && type != CK_PROV_ACT_DEPROVISION && type != CK_PROV_ACT_REVOKE &&
        type != CK_PROV_ACT_REINSTATE)
        memcpy(d->ipv4, a->ipv4, 4);
    /* The certificate: a new one becomes the only current one; a move, repair or return
     * without one leaves the device none (its old one names the old number or account). */
    if (a->cert_der != NULL && d->state != CK_PROV_UNPROVISIONED && d->state != CK_PROV_REVOKED) {
        if ((ret = cert_install(store, d, a, now, cert_sha)) != 0)
            goto out;
        *cert_current = true;
    } else if (type == CK_PROV_ACT_MOVE || type == CK_PROV_ACT_REPAIR ||
               type == CK_PROV_ACT_RETURN) {
        if ((ret = certs_supersede(store, d->mac)) != 0)
            goto out;
        d->cert_id = 0;
        d->has_cert = false;
    } else if (d->cert_id != 0) {
        /* Unchanged: the KDC row keeps the current certificate's hash. */
        ck_prov_cert *c = NULL;

        if ((ret = ck_prov_cert_get(store, d->cert_id, &c)) != 0)
            goto out;
        memcpy(cert_sha, c->sha256, 32);
        ck_prov_cert_free(c);
        *cert_current = true;
    }
out:
    ck_prov_customer_free(cust);
    return ret;
}

static enum ck_device_state
kdc_state(enum ck_prov_state s)
{
    switch (s) {
    case CK_PROV_PROVISIONED:
    case CK_PROV_REPAIR: return CK_DEVICE_ACTIVE;
    case CK_PROV_REVOKED: return CK_DEVICE_REVOKED;
    case CK_PROV_UNPROVISIONED: break;
    }
    return CK_DEVICE_UNPROVISIONED;
}

int
ck_prov_device_act(ck_store *store, const ck_prov_actor *who, enum ck_prov_action_type type,
                   const ck_prov_action *a, int64_t now, int64_t *event_id,
                   int64_t *replayed_event, ck_prov_device **out)
{
    char mac[CK_DEVICE_MAC_LEN + 1], action[40], removed[CK_PROV_MAX_NUMBERS * 20 + 4];
    ck_prov_device *d = NULL;
    enum ck_prov_state from;
    uint8_t cert_sha[32];
    uint64_t gen = 0;
    int64_t ev = 0;
    bool cert_current = false;
    struct txn t;
    int ret;

    if (event_id != NULL)
        *event_id = 0;
    if (replayed_event != NULL)
        *replayed_event = 0;
    if (out != NULL)
        *out = NULL;
    if ((ret = prov_usable(store, true)) != 0 || (ret = check_actor(who)) != 0 ||
        (ret = check_action(type, a)) != 0 || (ret = check_mac(a->mac, mac)) != 0)
        return ret;
    snprintf(action, sizeof(action), "prov.%s", ck_prov_action_name(type));
    if ((ret = txn_begin(&t, store, who, action, mac, "%s%s", a->reason != NULL ? "reason: " : "",
                         a->reason != NULL ? a->reason : "")) != 0)
        return ret;
    if ((ret = idem_check(&t, now, replayed_event)) != 0 ||
        (ret = device_load(store, mac, &d)) != 0)
        goto out;
    from = d->state;
    if (!state_allows(type, d)) {
        ret = ck_error_set(CK_ERR_POLICY, "device %s is %s: cannot %s", mac,
                           ck_prov_state_name(d->state), ck_prov_action_name(type));
        goto out;
    }
    numbers_json(d, removed, sizeof(removed));
    if ((ret = act_apply(&t, type, a, d, now, cert_sha, &cert_current)) != 0 ||
        (ret = prov_row_write(store, d, now)) != 0 ||
        (ret = kdc_row_write(store, mac, kdc_state(d->state), cert_current ? cert_sha : NULL,
                             now, &gen)) != 0)
        goto out;
    d->generation = gen;
    d->modified = now;
    if (type != CK_PROV_ACT_DEPROVISION && type != CK_PROV_ACT_MOVE &&
        type != CK_PROV_ACT_REVOKE && type != CK_PROV_ACT_REINSTATE)
        removed[0] = '\0';
    if ((ret = device_event(&t, d, from, ck_prov_action_name(type), action_event(type),
                            a->reason, removed, now, &ev)) != 0 ||
        (ret = idem_record(&t, ev, now)) != 0)
        goto out;
out:
    ret = txn_end(&t, ret);
    if (ret == 0 || (ret == CK_ERR_EXISTS && replayed_event != NULL && *replayed_event != 0))
        ck_store_cache_invalidate(&store->dev_cache, mac);
    if (ret == 0 && event_id != NULL)
        *event_id = ev;
    if (ret == 0 && out != NULL) {
        *out = d;
        d = NULL;
    }
    ck_prov_device_free(d);
    return ret;
}

/* ---- admission and reports ---- */

static int
cb_found(const struct ck_prov_row *r, void *arg)
{
    (void)r;
    *(bool *)arg = true;
    return 0;
}

static int
principal_row(ck_store *store, const char *principal, struct ck_store_princ_row *row)
{
    const ck_realm_info *ri = &store->realm;
    ck_db_key *keys = NULL;
    size_t n = 0;
    int ret;

    memset(row, 0, sizeof(*row));
    if ((ret = ck_db_keys_make(principal, NULL, 0, ri->enctypes, ri->n_enctypes, 1, &keys, &n)) != 0)
        return ret;
    ret = ck_store_encrypt_keys_int(store, principal, keys, n, 0, &row->keys);
    ck_db_keys_free(keys, n);
    if (ret != 0)
        return ret;
    row->n_keys = n;
    row->name = (char *)principal;
    row->attributes = ri->default_attributes | CK_ATTR_REQUIRES_PREAUTH;
    row->kvno = 1;
    return 0;
}

int
ck_prov_admit_unprovisioned(ck_store *store, const char *mac, const char *principal,
                            const uint8_t spki_sha256[32], const uint8_t *mfg_cert_der,
                            size_t mfg_cert_len, int64_t now)
{
    static const ck_prov_actor kdc = {.actor = "kdc"};
    struct ck_store_princ_row prow;
    char canon[CK_DEVICE_MAC_LEN + 1];
    ck_prov_device d;
    ck_prov_device *old = NULL;
    struct txn t;
    uint64_t gen = 0;
    int64_t ev = 0, first_seen = now;
    bool known = false, created = false;
    int ret;

    memset(&prow, 0, sizeof(prow));
    if ((ret = prov_usable(store, true)) != 0 || (ret = check_mac(mac, canon)) != 0 ||
        (ret = ck_store_check_name_int(store, principal)) != 0)
        return ret;
    if (spki_sha256 == NULL)
        return ck_error_set(CK_ERR_INVAL, "admission: no key hash");
    if (mfg_cert_der != NULL && (mfg_cert_len == 0 || mfg_cert_len > CK_PROV_CERT_MAX))
        return ck_error_set(CK_ERR_LIMIT, "manufacturer certificate: 1..%d bytes",
                            CK_PROV_CERT_MAX);
    /* Keys are made before the transaction: nothing slow happens while it holds the lock. */
    if ((ret = principal_row(store, principal, &prow)) != 0)
        return ret;
    if ((ret = txn_begin(&t, store, &kdc, "prov.admit", canon, "principal %s", principal)) != 0)
        goto done;
    if ((ret = q_query(store, "device", "SELECT mac FROM device WHERE mac = $1",
                       QARGS(Q_TEXT(canon)), cb_found, &known)) != 0)
        goto out;
    if (known) {
        ret = ck_error_set(CK_ERR_EXISTS, "device %s already exists", canon);
        goto out;
    }
    /* A provisioning record without the KDC's row: an operator deleted the device (`cablekey
     * device delete`), which forgets it; it comes back as a new device, its history kept.
     * Never a revoked one: a stolen device stays refused until someone reinstates it. */
    ret = device_load(store, canon, &old);
    if (ret == 0 && old->state == CK_PROV_REVOKED) {
        ret = ck_error_set(CK_ERR_POLICY, "device %s is revoked: cannot admit it", canon);
        goto out;
    }
    if (ret == 0) {
        if ((ret = numbers_release(store, old)) != 0 ||
            (ret = certs_supersede(store, canon)) != 0 ||
            (ret = q_exec(store, "admit device", "DELETE FROM prov_device WHERE mac = $1",
                          QARGS(Q_TEXT(canon)), NULL)) != 0)
            goto out;
        first_seen = old->first_seen;
    } else if (ret != CK_ERR_NOTFOUND) {
        goto out;
    }
    /* A new principal is a change of its own: other connections' principal caches may hold
     * its absence (the device asked for its cname before). */
    if ((ret = store->ops->prov_principal_ensure(store->be, &prow, now, &created)) != 0 ||
        (created &&
         (ret = store->ops->prov_bump(store->be, CK_CHANGE_PRINCIPAL, principal, NULL)) != 0) ||
        (ret = store->ops->prov_bump(store->be, CK_CHANGE_DEVICE, canon, &gen)) != 0 ||
        (ret = q_exec(store, "admit device",
                      "INSERT INTO device(mac, principal, state, spki_sha256, created, modified,"
                      " revoked, generation, comment) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)",
                      QARGS(Q_TEXT(canon), Q_TEXT(principal), Q_INT(CK_DEVICE_UNPROVISIONED),
                            Q_BLOB(spki_sha256, 32), Q_INT(now), Q_INT(now), Q_INT(gen),
                            Q_TEXT("admitted unprovisioned")),
                      NULL)) != 0 ||
        (ret = q_exec(store, "admit device",
                      "INSERT INTO prov_device(mac, state, principal, mfg_cert, spki_sha256,"
                      " first_seen, last_seen, modified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                      QARGS(Q_TEXT(canon), Q_INT(CK_PROV_UNPROVISIONED), Q_TEXT(principal),
                            mfg_cert_der != NULL ? Q_BLOB(mfg_cert_der, mfg_cert_len) : Q_NULL,
                            Q_BLOB(spki_sha256, 32), Q_INT(first_seen), Q_INT(now), Q_INT(now)),
                      NULL)) != 0)
        goto out;
    memset(&d, 0, sizeof(d));
    ck_strlcpy(d.mac, canon, sizeof(d.mac));
    d.principal = (char *)principal;
    d.state = CK_PROV_UNPROVISIONED;
    ret = device_event(&t, &d, old != NULL ? old->state : CK_PROV_UNPROVISIONED, "admitted",
                       "device.admitted",
                       old != NULL ? "re-admitted: its KDC record had been deleted"
                       : created  ? "principal created"
                                  : NULL,
                       NULL, now, &ev);
out:
    ck_prov_device_free(old);
    ret = txn_end(&t, ret);
    if (ret == 0) {
        ck_store_cache_invalidate(&store->dev_cache, canon);
        ck_store_cache_invalidate(&store->cache, principal);
    }
done:
    prow.name = NULL;
    ck_store_free_key_rows_int(prow.keys, prow.n_keys);
    return ret;
}

int
ck_prov_device_report(ck_store *store, const ck_prov_actor *who, const char *mac,
                      const uint8_t *spki_sha256, const char *unprov_ip, const char *controller,
                      int64_t now)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    ck_prov_device *d = NULL;
    struct jbuf detail = {0};
    bool first = true;
    int64_t ev = 0;
    struct txn t;
    int ret;

    if ((ret = prov_usable(store, true)) != 0 || (ret = check_actor(who)) != 0 ||
        (ret = check_mac(mac, canon)) != 0)
        return ret;
    if (unprov_ip != NULL &&
        (ret = check_token("ip", unprov_ip, sizeof(d->unprov_ip) - 1, ".:", true)) != 0)
        return ret;
    if (controller != NULL &&
        (ret = check_text("controller", controller, CK_PROV_ACTOR_MAX, false)) != 0)
        return ret;
    if ((ret = txn_begin(&t, store, who, "prov.report", canon, "ip %s",
                         unprov_ip != NULL ? unprov_ip : "-")) != 0)
        return ret;
    if ((ret = idem_check(&t, now, NULL)) != 0 || (ret = device_load(store, canon, &d)) != 0)
        goto out;
    if (spki_sha256 != NULL &&
        (ck_ct_equal(d->spki_sha256, (const uint8_t[32]){0}, 32) ||
         !ck_ct_equal(d->spki_sha256, spki_sha256, 32))) {
        ret = ck_error_set(CK_ERR_INTEGRITY, "device %s: the reported key is not the one the "
                           "manufacturer certified (a clone?)", canon);
        goto out;
    }
    if ((ret = q_exec(store, "report",
                      "UPDATE prov_device SET unprov_ip = $1, reported_by = $2, last_seen = $3"
                      " WHERE mac = $4",
                      QARGS(Q_TEXT(unprov_ip != NULL ? unprov_ip : d->unprov_ip),
                            Q_TEXT(controller != NULL ? controller : d->reported_by), Q_INT(now),
                            Q_TEXT(canon)),
                      NULL)) != 0)
        goto out;
    jb_raw(&detail, "{", 1);
    jb_key(&detail, &first, "ip");
    jb_str(&detail, unprov_ip);
    jb_key(&detail, &first, "controller");
    jb_str(&detail, controller);
    jb_key(&detail, &first, "state");
    jb_str(&detail, ck_prov_state_name(d->state));
    jb_raw(&detail, "}", 1);
    if ((ret = detail.err) != 0 ||
        (ret = event_add(&t, now, canon, d->customer_id, "reported", detail.p, &ev)) != 0 ||
        (ret = idem_record(&t, ev, now)) != 0 ||
        (ret = store->ops->prov_audit(store->be, canon)) != 0)
        goto out;
out:
    free(detail.p);
    ck_prov_device_free(d);
    return txn_end(&t, ret);
}

/* --------------------------------------------------------------------------- certificates */

#define CERT_COLUMNS "id, mac, der, sha256, not_before, not_after, issued, acked, superseded"

static int
cb_cert(const struct ck_prov_row *r, void *arg)
{
    ck_prov_cert **out = arg, *c;
    uint8_t *sha = NULL;
    size_t sha_len = 0;
    int ret;

    if (*out != NULL)
        return 0;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "certificate record");
    c->id = r->i64(r, 0);
    if ((ret = col_copy(r, 1, c->mac, sizeof(c->mac))) != 0 ||
        (ret = r->blob(r, 2, &c->der, &c->der_len)) != 0 ||
        (ret = r->blob(r, 3, &sha, &sha_len)) != 0)
        goto out;
    if (sha_len != 32 || c->der == NULL) {
        ret = ck_error_set(CK_ERR_DB, "certificate %lld: malformed row", (long long)c->id);
        goto out;
    }
    memcpy(c->sha256, sha, 32);
    c->not_before = r->i64(r, 4);
    c->not_after = r->i64(r, 5);
    c->issued = r->i64(r, 6);
    c->acked = r->i64(r, 7) != 0;
    c->superseded = r->i64(r, 8) != 0;
    *out = c;
    c = NULL;
out:
    free(sha);
    ck_prov_cert_free(c);
    return ret;
}

int
ck_prov_cert_get(ck_store *store, int64_t cert_id, ck_prov_cert **out)
{
    int ret;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "certificate get: no output");
    *out = NULL;
    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    if ((ret = q_query(store, "certificate",
                       "SELECT " CERT_COLUMNS " FROM prov_cert WHERE id = $1",
                       QARGS(Q_INT(cert_id)), cb_cert, out)) != 0) {
        ck_prov_cert_free(*out);
        *out = NULL;
        return ret;
    }
    if (*out == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "certificate %lld not found", (long long)cert_id);
    return 0;
}

int
ck_prov_cert_current(ck_store *store, const char *mac, ck_prov_cert **out)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    int ret;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "certificate: no output");
    *out = NULL;
    if ((ret = prov_usable(store, false)) != 0 || (ret = check_mac(mac, canon)) != 0)
        return ret;
    if ((ret = q_query(store, "certificate",
                       "SELECT c.id, c.mac, c.der, c.sha256, c.not_before, c.not_after, c.issued,"
                       " c.acked, c.superseded FROM prov_device p JOIN prov_cert c"
                       " ON c.id = p.cert_id WHERE p.mac = $1",
                       QARGS(Q_TEXT(canon)), cb_cert, out)) != 0) {
        ck_prov_cert_free(*out);
        *out = NULL;
        return ret;
    }
    if (*out == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "device %s has no current certificate", canon);
    return 0;
}

struct cert_list {
    int (*cb)(const ck_prov_cert *c, void *arg);
    void *arg;
    size_t n;
};

static int
cb_cert_list(const struct ck_prov_row *r, void *arg)
{
    struct cert_list *l = arg;
    ck_prov_cert *c = NULL;
    int ret;

    if ((ret = cb_cert(r, &c)) != 0)
        return ret;
    ret = l->cb(c, l->arg);
    ck_prov_cert_free(c);
    l->n++;
    return ret;
}

int
ck_prov_cert_list(ck_store *store, const char *mac, size_t limit,
                  int (*cb)(const ck_prov_cert *c, void *arg), void *arg, size_t *n)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    struct cert_list l = {.cb = cb, .arg = arg};
    int ret;

    if (n != NULL)
        *n = 0;
    if (cb == NULL)
        return ck_error_set(CK_ERR_INVAL, "certificate list: no callback");
    if ((ret = prov_usable(store, false)) != 0 || (ret = check_mac(mac, canon)) != 0)
        return ret;
    if (limit == 0 || limit > CK_PROV_LIST_MAX)
        limit = CK_PROV_LIST_MAX;
    /* Ids grow with issuance: the newest first (prov_cert_mac covers mac, id). */
    ret = q_query(store, "certificates",
                  "SELECT " CERT_COLUMNS " FROM prov_cert WHERE mac = $1 ORDER BY id DESC"
                  " LIMIT $2",
                  QARGS(Q_TEXT(canon), Q_INT((int64_t)limit)), cb_cert_list, &l);
    if (n != NULL)
        *n = l.n;
    return ret;
}

struct cert_status {
    bool known, current;
};

static int
cb_cert_status(const struct ck_prov_row *r, void *arg)
{
    struct cert_status *s = arg;

    s->known = true;
    if (r->i64(r, 0) != 0)
        s->current = true;
    return 0;
}

int
ck_prov_cert_status(ck_store *store, const char *mac, const uint8_t sha256_in[32], bool *known,
                    bool *current)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    struct cert_status s = {0};
    int ret;

    if (known == NULL || current == NULL || sha256_in == NULL)
        return ck_error_set(CK_ERR_INVAL, "certificate status: missing argument");
    *known = *current = false;
    if ((ret = prov_usable(store, false)) != 0 || (ret = check_mac(mac, canon)) != 0)
        return ret;
    if ((ret = q_query(store, "certificate status",
                       "SELECT CASE WHEN p.cert_id = c.id THEN 1 ELSE 0 END FROM prov_cert c"
                       " LEFT JOIN prov_device p ON p.mac = c.mac WHERE c.sha256 = $1"
                       " AND c.mac = $2",
                       QARGS(Q_BLOB(sha256_in, 32), Q_TEXT(canon)), cb_cert_status, &s)) != 0)
        return ret;
    *known = s.known;
    *current = s.current;
    return 0;
}

int
ck_prov_cert_ack(ck_store *store, const char *mac, int64_t cert_id, int64_t now)
{
    static const ck_prov_actor dev = {.actor = "device"};
    char canon[CK_DEVICE_MAC_LEN + 1], detail[64];
    ck_prov_cert *c = NULL;
    int64_t ev = 0;
    struct txn t;
    int ret;

    if ((ret = prov_usable(store, true)) != 0 || (ret = check_mac(mac, canon)) != 0)
        return ret;
    if ((ret = txn_begin(&t, store, &dev, "prov.cert-ack", canon, "certificate %lld",
                         (long long)cert_id)) != 0)
        return ret;
    if ((ret = ck_prov_cert_get(store, cert_id, &c)) != 0)
        goto out;
    if (strcmp(c->mac, canon) != 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "certificate %lld is not device %s's",
                           (long long)cert_id, canon);
        goto out;
    }
    if (c->acked)
        goto out; /* twice: nothing to change */
    snprintf(detail, sizeof(detail), "{\"cert\":%lld}", (long long)cert_id);
    if ((ret = q_exec(store, "acknowledge",
                      "UPDATE prov_cert SET acked = 1 WHERE id = $1", QARGS(Q_INT(cert_id)),
                      NULL)) != 0 ||
        (ret = event_add(&t, now, canon, 0, "cert-ack", detail, &ev)) != 0 ||
        (ret = store->ops->prov_audit(store->be, canon)) != 0)
        goto out;
out:
    ck_prov_cert_free(c);
    return txn_end(&t, ret);
}

/* ------------------------------------------------------------------------------- events */

#define EVENT_COLUMNS "id, time, mac, customer_id, action, actor, detail"

struct event_list {
    ck_prov_event **items;
    size_t n, max;
};

static int
cb_event(const struct ck_prov_row *r, void *arg)
{
    struct event_list *l = arg;
    ck_prov_event *e;
    int ret;

    if (l->n >= l->max)
        return 0;
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "event record");
    e->id = r->i64(r, 0);
    e->time = r->i64(r, 1);
    e->customer_id = r->i64(r, 3);
    if ((ret = col_copy(r, 2, e->mac, sizeof(e->mac))) != 0 ||
        (ret = col_copy(r, 4, e->action, sizeof(e->action))) != 0 ||
        (ret = col_dup(r, 5, &e->actor)) != 0 || (ret = col_dup(r, 6, &e->detail)) != 0) {
        ck_prov_event_free(e);
        return ret;
    }
    if (e->actor == NULL || e->detail == NULL) {
        ck_prov_event_free(e);
        return ck_error_set(CK_ERR_DB, "event: malformed row");
    }
    l->items[l->n++] = e;
    return 0;
}

static int
events_deliver(struct event_list *l, int ret, ck_prov_event_cb cb, void *arg, size_t *n_out)
{
    size_t n = 0;

    for (size_t i = 0; ret == 0 && i < l->n; i++) {
        ret = cb(l->items[i], arg);
        n++;
    }
    for (size_t i = 0; i < l->n; i++)
        ck_prov_event_free(l->items[i]);
    free(l->items);
    if (n_out != NULL)
        *n_out = n;
    return ret;
}

int
ck_prov_event_list(ck_store *store, const char *mac, int64_t customer_id, int64_t before,
                   size_t limit, ck_prov_event_cb cb, void *arg, size_t *n_out)
{
    char canon[CK_DEVICE_MAC_LEN + 1];
    struct event_list l = {0};
    int ret;

    if (n_out != NULL)
        *n_out = 0;
    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    if (cb == NULL || limit == 0 || limit > CK_PROV_LIST_MAX)
        return ck_error_set(CK_ERR_INVAL, "limit: must be 1..%d", CK_PROV_LIST_MAX);
    if (mac != NULL && (ret = check_mac(mac, canon)) != 0)
        return ret;
    if (before <= 0)
        before = INT64_MAX;
    l.max = limit;
    if ((l.items = calloc(limit, sizeof(*l.items))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "event list");
    if (mac != NULL)
        ret = q_query(store, "events",
                      "SELECT " EVENT_COLUMNS " FROM prov_event WHERE mac = $1 AND id < $2"
                      " ORDER BY id DESC LIMIT $3",
                      QARGS(Q_TEXT(canon), Q_INT(before), Q_INT(limit)), cb_event, &l);
    else if (customer_id > 0)
        ret = q_query(store, "events",
                      "SELECT " EVENT_COLUMNS " FROM prov_event WHERE customer_id = $1 AND id < $2"
                      " ORDER BY id DESC LIMIT $3",
                      QARGS(Q_INT(customer_id), Q_INT(before), Q_INT(limit)), cb_event, &l);
    else
        ret = q_query(store, "events",
                      "SELECT " EVENT_COLUMNS " FROM prov_event WHERE id < $1"
                      " ORDER BY id DESC LIMIT $2",
                      QARGS(Q_INT(before), Q_INT(limit)), cb_event, &l);
    return events_deliver(&l, ret, cb, arg, n_out);
}

int
ck_prov_event_since(ck_store *store, int64_t after, size_t limit, ck_prov_event_cb cb, void *arg,
                    size_t *n_out)
{
    struct event_list l = {0};
    int ret;

    if (n_out != NULL)
        *n_out = 0;
    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    if (cb == NULL || limit == 0 || limit > CK_PROV_LIST_MAX)
        return ck_error_set(CK_ERR_INVAL, "limit: must be 1..%d", CK_PROV_LIST_MAX);
    l.max = limit;
    if ((l.items = calloc(limit, sizeof(*l.items))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "event list");
    ret = q_query(store, "events",
                  "SELECT " EVENT_COLUMNS " FROM prov_event WHERE id > $1 ORDER BY id LIMIT $2",
                  QARGS(Q_INT(after), Q_INT(limit)), cb_event, &l);
    return events_deliver(&l, ret, cb, arg, n_out);
}

int
ck_prov_event_last(ck_store *store, int64_t *id)
{
    int ret;

    if (id == NULL)
        return ck_error_set(CK_ERR_INVAL, "last event: no output");
    *id = 0;
    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    return q_query(store, "events", "SELECT coalesce(max(id), 0) FROM prov_event", NULL, 0,
                   cb_i64, id);
}

/* -------------------------------------------------------------------------------- lines */

struct line_list {
    ck_prov_line *items;
    size_t n, max;
};

static int
cb_line(const struct ck_prov_row *r, void *arg)
{
    struct line_list *l = arg;
    ck_prov_line *x;
    int ret;

    if (l->n >= l->max)
        return 0;
    x = &l->items[l->n];
    memset(x, 0, sizeof(*x));
    if ((ret = col_copy(r, 0, x->number, sizeof(x->number))) != 0 ||
        (ret = col_copy(r, 1, x->mac, sizeof(x->mac))) != 0 ||
        (ret = col_copy(r, 2, x->principal, sizeof(x->principal))) != 0)
        return ret;
    x->state = (enum ck_prov_state)r->i64(r, 3);
    l->n++;
    return 0;
}

int
ck_prov_line_list(ck_store *store, const char *after, size_t limit, ck_prov_line_cb cb,
                  void *arg, size_t *n_out)
{
    struct line_list l = {0};
    size_t n = 0;
    int ret;

    if (n_out != NULL)
        *n_out = 0;
    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    if (cb == NULL || limit == 0 || limit > CK_PROV_LIST_MAX)
        return ck_error_set(CK_ERR_INVAL, "limit: must be 1..%d", CK_PROV_LIST_MAX);
    if (after != NULL && *after != '\0' && (ret = check_number(after)) != 0)
        return ret;
    l.max = limit;
    if ((l.items = calloc(limit, sizeof(*l.items))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "line list");
    ret = q_query(store, "lines",
                  "SELECT n.number, d.mac, d.principal, d.state FROM prov_number n"
                  " JOIN prov_device d ON d.mac = n.mac WHERE n.number > $1"
                  " AND d.state IN (2, 3) ORDER BY n.number LIMIT $2",
                  QARGS(Q_TEXT(after != NULL ? after : ""), Q_INT(limit)), cb_line, &l);
    for (size_t i = 0; ret == 0 && i < l.n; i++) {
        ret = cb(&l.items[i], arg);
        n++;
    }
    free(l.items);
    if (n_out != NULL)
        *n_out = n;
    return ret;
}

struct lookup_row {
    char *principal;
    char mac[CK_DEVICE_MAC_LEN + 1];
    bool found;
};

static int
cb_lookup(const struct ck_prov_row *r, void *arg)
{
    struct lookup_row *l = arg;
    int ret;

    if (l->found)
        return 0;
    if ((ret = col_dup(r, 0, &l->principal)) != 0 ||
        (ret = col_copy(r, 1, l->mac, sizeof(l->mac))) != 0)
        return ret;
    l->found = l->principal != NULL;
    return 0;
}

int
ck_prov_number_lookup(ck_store *store, const char *number, char **principal,
                      char mac[CK_DEVICE_MAC_LEN + 1])
{
    struct lookup_row l = {0};
    int ret;

    if (principal == NULL || mac == NULL)
        return ck_error_set(CK_ERR_INVAL, "number lookup: no output");
    *principal = NULL;
    mac[0] = '\0';
    if ((ret = prov_usable(store, false)) != 0 || (ret = check_number(number)) != 0)
        return ret;
    if ((ret = q_query(store, "number",
                       "SELECT d.principal, d.mac FROM prov_number n JOIN prov_device d"
                       " ON d.mac = n.mac WHERE n.number = $1 AND d.state IN (2, 3)",
                       QARGS(Q_TEXT(number)), cb_lookup, &l)) != 0) {
        free(l.principal);
        return ret;
    }
    if (!l.found)
        return ck_error_set(CK_ERR_NOTFOUND, "number %s has no provisioned device", number);
    *principal = l.principal;
    memcpy(mac, l.mac, CK_DEVICE_MAC_LEN + 1);
    return 0;
}

/* ------------------------------------------------------------------------------- outbox */

#define DELIVERY_COLUMNS                                                                       \
    "id, event_id, target, body, attempts, next_attempt, created, delivered, last_status"

struct delivery_list {
    ck_prov_delivery **items;
    size_t n, max;
};

static int
cb_delivery(const struct ck_prov_row *r, void *arg)
{
    struct delivery_list *l = arg;
    ck_prov_delivery *d;
    int ret;

    if (l->n >= l->max)
        return 0;
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "delivery record");
    d->id = r->i64(r, 0);
    d->event_id = r->i64(r, 1);
    if ((ret = col_copy(r, 2, d->target, sizeof(d->target))) != 0 ||
        (ret = col_dup(r, 3, &d->body)) != 0) {
        ck_prov_delivery_free(d);
        return ret;
    }
    if (d->body == NULL) {
        ck_prov_delivery_free(d);
        return ck_error_set(CK_ERR_DB, "delivery: malformed row");
    }
    d->attempts = (int)r->i64(r, 4);
    d->next_attempt = r->i64(r, 5);
    d->created = r->i64(r, 6);
    d->delivered = r->i64(r, 7);
    d->last_status = (int)r->i64(r, 8);
    l->items[l->n++] = d;
    return 0;
}

static int
deliveries_deliver(struct delivery_list *l, int ret, ck_prov_delivery_cb cb, void *arg,
                   size_t *n_out)
{
    size_t n = 0;

    for (size_t i = 0; ret == 0 && i < l->n; i++) {
        ret = cb(l->items[i], arg);
        n++;
    }
    for (size_t i = 0; i < l->n; i++)
        ck_prov_delivery_free(l->items[i]);
    free(l->items);
    if (n_out != NULL)
        *n_out = n;
    return ret;
}

int
ck_prov_outbox_due(ck_store *store, int64_t now, size_t limit, ck_prov_delivery_cb cb, void *arg,
                   size_t *n_out)
{
    struct delivery_list l = {0};
    int ret;

    if (n_out != NULL)
        *n_out = 0;
    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    if (cb == NULL || limit == 0 || limit > CK_PROV_LIST_MAX)
        return ck_error_set(CK_ERR_INVAL, "limit: must be 1..%d", CK_PROV_LIST_MAX);
    l.max = limit;
    if ((l.items = calloc(limit, sizeof(*l.items))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "outbox");
    ret = q_query(store, "outbox",
                  "SELECT " DELIVERY_COLUMNS " FROM prov_outbox WHERE delivered = 0"
                  " AND next_attempt <= $1 ORDER BY next_attempt, id LIMIT $2",
                  QARGS(Q_INT(now), Q_INT(limit)), cb_delivery, &l);
    return deliveries_deliver(&l, ret, cb, arg, n_out);
}

int
ck_prov_outbox_attempt(ck_store *store, int64_t id, int status, bool delivered,
                       int64_t next_attempt, int64_t now)
{
    uint64_t n = 0;
    int ret;

    if ((ret = prov_usable(store, true)) != 0)
        return ret;
    if (!delivered && next_attempt < now && next_attempt != CK_PROV_OUTBOX_GIVEN_UP)
        return ck_error_set(CK_ERR_INVAL, "outbox: next attempt in the past");
    /* Not administrative (no audit row, no counter bump): the delivery log is its record. */
    if ((ret = q_exec(store, "outbox",
                      "UPDATE prov_outbox SET attempts = attempts + 1, last_status = $1,"
                      " delivered = $2, next_attempt = $3 WHERE id = $4 AND delivered = 0",
                      QARGS(Q_INT(status), Q_INT(delivered ? (now > 0 ? now : 1) : 0),
                            Q_INT(delivered ? 0 : next_attempt), Q_INT(id)),
                      &n)) != 0)
        return ret;
    if (n == 0)
        return ck_error_set(CK_ERR_NOTFOUND, "delivery %lld not found or already delivered",
                            (long long)id);
    return 0;
}

int
ck_prov_outbox_list(ck_store *store, int64_t before, size_t limit, ck_prov_delivery_cb cb,
                    void *arg, size_t *n_out)
{
    struct delivery_list l = {0};
    int ret;

    if (n_out != NULL)
        *n_out = 0;
    if ((ret = prov_usable(store, false)) != 0)
        return ret;
    if (cb == NULL || limit == 0 || limit > CK_PROV_LIST_MAX)
        return ck_error_set(CK_ERR_INVAL, "limit: must be 1..%d", CK_PROV_LIST_MAX);
    if (before <= 0)
        before = INT64_MAX;
    l.max = limit;
    if ((l.items = calloc(limit, sizeof(*l.items))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "outbox");
    ret = q_query(store, "outbox",
                  "SELECT " DELIVERY_COLUMNS " FROM prov_outbox WHERE id < $1"
                  " ORDER BY id DESC LIMIT $2",
                  QARGS(Q_INT(before), Q_INT(limit)), cb_delivery, &l);
    return deliveries_deliver(&l, ret, cb, arg, n_out);
}

/* --------------------------------------------------------------------------- dump tables */

#define C_INT(n) {n, CK_PA_INT, false}
#define C_TEXT(n) {n, CK_PA_TEXT, false}
#define C_NTEXT(n) {n, CK_PA_TEXT, true}
#define C_BLOB(n) {n, CK_PA_BLOB, true}

static const struct ck_prov_dump_col cols_customer[] = {
    C_INT("id"), C_INT("type"), C_TEXT("name"), C_TEXT("address"), C_NTEXT("email"),
    C_TEXT("segment"), C_TEXT("services"), C_INT("created"), C_INT("modified")};
static const struct ck_prov_dump_col cols_device[] = {
    C_TEXT("mac"), C_INT("state"), C_TEXT("principal"), C_INT("customer_id"),
    C_INT("owner_id"), C_NTEXT("loaner_for"), C_TEXT("segment"), C_TEXT("fqdn"), C_INT("ipv4"),
    C_TEXT("unprov_ip"), C_NTEXT("reported_by"), C_BLOB("mfg_cert"), C_BLOB("spki_sha256"),
    C_INT("cert_id"), C_INT("first_seen"), C_INT("last_seen"), C_INT("modified")};
static const struct ck_prov_dump_col cols_number[] = {
    C_TEXT("number"), C_TEXT("segment"), C_NTEXT("mac"), C_INT("slot"), C_INT("assigned")};
static const struct ck_prov_dump_col cols_cert[] = {
    C_INT("id"), C_TEXT("mac"), C_BLOB("der"), C_BLOB("sha256"), C_INT("not_before"),
    C_INT("not_after"), C_INT("issued"), C_INT("acked"), C_INT("superseded")};
static const struct ck_prov_dump_col cols_event[] = {
    C_INT("id"), C_INT("time"), C_TEXT("mac"), C_INT("customer_id"), C_TEXT("action"),
    C_TEXT("actor"), C_TEXT("detail")};
static const struct ck_prov_dump_col cols_idem[] = {
    C_TEXT("key"), C_BLOB("request"), C_INT("event_id"), C_INT("created")};
static const struct ck_prov_dump_col cols_outbox[] = {
    C_INT("id"), C_INT("event_id"), C_TEXT("target"), C_TEXT("body"), C_INT("attempts"),
    C_INT("next_attempt"), C_INT("created"), C_INT("delivered"), C_INT("last_status")};

#define NCOLS(a) (sizeof(a) / sizeof(a[0]))

const struct ck_prov_dump_table ck_prov_dump_tables[] = {
    {"prov-customer",
     "SELECT " CUSTOMER_COLUMNS " FROM prov_customer WHERE id > $1 ORDER BY id LIMIT $2",
     "INSERT INTO prov_customer(" CUSTOMER_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
     " $9)",
     cols_customer, NCOLS(cols_customer)},
    {"prov-device",
     "SELECT mac, state, principal, customer_id, owner_id, loaner_for, segment, fqdn, ipv4,"
     " unprov_ip, reported_by, mfg_cert, spki_sha256, cert_id, first_seen, last_seen, modified"
     " FROM prov_device WHERE mac > $1 ORDER BY mac LIMIT $2",
     "INSERT INTO prov_device(mac, state, principal, customer_id, owner_id, loaner_for, segment,"
     " fqdn, ipv4, unprov_ip, reported_by, mfg_cert, spki_sha256, cert_id, first_seen,"
     " last_seen, modified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
     " $14, $15, $16, $17)",
     cols_device, NCOLS(cols_device)},
    {"prov-number",
     "SELECT number, segment, mac, slot, assigned FROM prov_number WHERE number > $1"
     " ORDER BY number LIMIT $2",
     "INSERT INTO prov_number(number, segment, mac, slot, assigned) VALUES ($1, $2, $3, $4, $5)",
     cols_number, NCOLS(cols_number)},
    {"prov-cert",
     "SELECT " CERT_COLUMNS " FROM prov_cert WHERE id > $1 ORDER BY id LIMIT $2",
     "INSERT INTO prov_cert(" CERT_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
     cols_cert, NCOLS(cols_cert)},
    {"prov-event",
     "SELECT " EVENT_COLUMNS " FROM prov_event WHERE id > $1 ORDER BY id LIMIT $2",
     "INSERT INTO prov_event(" EVENT_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7)",
     cols_event, NCOLS(cols_event)},
    {"prov-idem",
     "SELECT key, request, event_id, created FROM prov_idem WHERE key > $1 ORDER BY key"
     " LIMIT $2",
     "INSERT INTO prov_idem(key, request, event_id, created) VALUES ($1, $2, $3, $4)",
     cols_idem, NCOLS(cols_idem)},
    {"prov-outbox",
     "SELECT " DELIVERY_COLUMNS " FROM prov_outbox WHERE id > $1 ORDER BY id LIMIT $2",
     "INSERT INTO prov_outbox(" DELIVERY_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
     cols_outbox, NCOLS(cols_outbox)},
};
const size_t ck_prov_dump_n_tables = NCOLS(ck_prov_dump_tables);
