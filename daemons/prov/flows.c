/* The actions of cablekey-prov's API, in the back process: validated requests from the front
 * (api.c) become store calls. A device action is: read the device, pick the number, have the
 * signer issue the operator certificate (the manufacturer certificate's key, the numbers'
 * phone IDs, cert_days or repair_cert_hours), then ONE store call (ck_prov_device_act) that
 * commits the KDC's device row, the provisioning rows, the certificate, the event, the webhook
 * outbox and the idempotency record together. A crash anywhere before that call leaves the
 * device untouched (the certificate signed for nothing is never seen by anyone); a crash after
 * it leaves it fully done, and the client's retry with the same Idempotency-Key is answered
 * from the record ("replayed": true) without acting again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/util.h"
#include "provd.h"

#define HISTORY_MAX 50
#define CERTS_MAX 50         /* certificates in a device record, the newest first */
#define NUMBER_RETRIES 4       /* another action took the free number we picked: pick again */

/* The store connection is the worker's for the whole request but for the signer's time
 * (provd.h: prov_workers_shared). */
static void
store_release(struct prov_flows *fl)
{
    if (fl->shared != NULL)
        pthread_mutex_unlock(&fl->shared->store_lock);
}

static void
store_take(struct prov_flows *fl)
{
    if (fl->shared != NULL)
        pthread_mutex_lock(&fl->shared->store_lock);
}

/* The lowest free number of seg that no other worker has picked for an action in flight; this
 * worker's pick is recorded until pick_release. With one worker: the lowest free number. */
static int
pick_number(struct prov_flows *fl, const char *seg, char number[CK_PROV_NUMBER_MAX + 1])
{
    struct prov_workers_shared *sh = fl->shared;
    char after[CK_PROV_NUMBER_MAX + 1] = "";
    int rc;

    if (sh == NULL)
        return ck_prov_number_next(fl->store, seg, number);
    /* At most one pick per other worker can be in the way. */
    for (size_t tries = 0; tries <= PROV_MAX_WORKERS; tries++) {
        bool taken = false;

        if ((rc = ck_prov_number_next_after(fl->store, seg, after[0] != '\0' ? after : NULL,
                                            number)) != 0)
            return rc;
        pthread_mutex_lock(&sh->picks_lock);
        for (size_t w = 0; w < PROV_MAX_WORKERS && !taken; w++)
            taken = w != fl->worker && strcmp(sh->picks[w], number) == 0;
        if (!taken)
            ck_strlcpy(sh->picks[fl->worker], number, sizeof(sh->picks[fl->worker]));
        pthread_mutex_unlock(&sh->picks_lock);
        if (!taken)
            return 0;
        ck_strlcpy(after, number, sizeof(after));
    }
    return ck_error_set(CK_ERR_FULL, "segment %s: every free number is picked by a worker", seg);
}

static void
pick_release(struct prov_flows *fl)
{
    if (fl->shared == NULL)
        return;
    pthread_mutex_lock(&fl->shared->picks_lock);
    fl->shared->picks[fl->worker][0] = '\0';
    pthread_mutex_unlock(&fl->shared->picks_lock);
}

void
prov_crash_point(const char *point)
{
    const char *want = getenv("CK_PROV_CRASH");

    /* As kill -9 would: no cleanup, no flush, no transaction rollback by us. */
    if (want != NULL && strcmp(want, point) == 0)
        _exit(137);
}

static json_t *
time_or_null(int64_t t)
{
    return t > 0 ? json_integer(t) : json_null();
}

static json_t *
id_or_null(int64_t id)
{
    return id > 0 ? json_integer(id) : json_null();
}

static json_t *
str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *
hex_json(const uint8_t *b, size_t n)
{
    char hex[129];

    for (size_t i = 0; i < n && i < 64; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    hex[2 * (n < 64 ? n : 64)] = '\0';
    return json_string(hex);
}

static json_t *
cert_json(const ck_prov_cert *c, bool full)
{
    json_t *o = json_pack("{s:I,s:o,s:I,s:I,s:b}", "id", (json_int_t)c->id, "sha256",
                          hex_json(c->sha256, 32), "not_before", (json_int_t)c->not_before,
                          "not_after", (json_int_t)c->not_after, "acked", c->acked);

    if (o != NULL && full) {
        json_object_set_new(o, "issued", json_integer(c->issued));
        json_object_set_new(o, "superseded", json_boolean(c->superseded));
    }
    return o;
}

static const char *
kdc_state(ck_store *store, const char *mac)
{
    ck_db_device *dev = NULL;
    const char *s = "unknown";

    if (ck_store_get_device(store, mac, &dev) != 0)
        return "none";
    switch (dev->state) {
    case CK_DEVICE_ACTIVE:
        s = "active";
        break;
    case CK_DEVICE_REVOKED:
        s = "revoked";
        break;
    case CK_DEVICE_UNPROVISIONED:
        s = "unprovisioned";
        break;
    }
    ck_db_device_free(dev);
    return s;
}

/* D of the API (docs/cablekey-prov.md). */
static json_t *
device_json(ck_store *store, const ck_prov_device *d)
{
    json_t *o, *nums = json_array(), *cert = json_null();
    char ip[16];

    for (size_t i = 0; nums != NULL && i < d->n_numbers; i++)
        json_array_append_new(nums, json_string(d->numbers[i]));
    if (d->has_cert) {
        ck_prov_cert *c = NULL;
        if (ck_prov_cert_get(store, d->cert_id, &c) == 0) {
            json_decref(cert);
            cert = cert_json(c, false);
        }
        ck_prov_cert_free(c);
    }
    snprintf(ip, sizeof(ip), "%u.%u.%u.%u", d->ipv4[0], d->ipv4[1], d->ipv4[2], d->ipv4[3]);
    o = json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:s}",
                  "mac", d->mac, "state", ck_prov_state_name(d->state), "principal",
                  str_or_null(d->principal), "customer", id_or_null(d->customer_id), "owner",
                  id_or_null(d->owner_id), "loaner_for", str_or_null(d->loaner_for), "numbers",
                  nums, "segment", str_or_null(d->segment), "fqdn", str_or_null(d->fqdn),
                  "ipv4", strcmp(ip, "0.0.0.0") == 0 ? json_null() : json_string(ip),
                  "unprov_ip", str_or_null(d->unprov_ip), "reported_by",
                  str_or_null(d->reported_by), "first_seen", time_or_null(d->first_seen),
                  "last_seen", time_or_null(d->last_seen), "cert", cert, "kdc_state",
                  kdc_state(store, d->mac));
    return o;
}

static json_t *
services_json(const char *text)
{
    json_t *v = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;

    if (v == NULL || !json_is_object(v)) {
        json_decref(v);
        return json_object();
    }
    return v;
}

/* U of the API. */
static json_t *
customer_json(const ck_prov_customer *c)
{
    return json_pack("{s:I,s:s,s:s,s:s,s:o,s:s,s:o,s:I,s:I}", "id", (json_int_t)c->id, "type",
                     c->type == CK_PROV_ACCOUNT_REPAIR ? "repair" : "customer", "name",
                     c->name != NULL ? c->name : "", "address",
                     c->address != NULL ? c->address : "", "email", str_or_null(c->email),
                     "segment", c->segment, "services", services_json(c->services), "created",
                     (json_int_t)c->created, "modified", (json_int_t)c->modified);
}

static int
event_cb(const ck_prov_event *e, void *arg)
{
    json_t *detail = services_json(e->detail);
    json_t *o = json_pack("{s:I,s:I,s:s,s:s,s:o,s:o,s:o}", "id", (json_int_t)e->id, "time",
                          (json_int_t)e->time, "action", e->action, "actor",
                          e->actor != NULL ? e->actor : "", "mac", str_or_null(e->mac),
                          "customer", id_or_null(e->customer_id), "detail", detail);

    return o != NULL && json_array_append_new(arg, o) == 0 ? 0 : CK_ERR_NOMEM;
}

static json_t *
ok(int status, json_t *body)
{
    if (body == NULL)
        return prov_error(500, "internal", NULL, "out of memory");
    return json_pack("{s:i,s:o}", "status", status, "body", body);
}

/* A store error as the API's: the message is the store's (it names the field, the state). */
static json_t *
store_error(int rc, const char *what)
{
    const char *code;
    int status = prov_error_from_ck(rc, &code);
    const char *ctx = ck_error_context();

    if (rc == CK_ERR_POLICY && strstr(ctx, "idempotency") != NULL) {
        status = 409;
        code = "conflict";
    }
    if (status == 500) {
        ck_log_err("%s: %s: %s", what, ck_strerror(rc), ctx);
        return prov_error(500, "internal", NULL, "internal error (see the daemon's log)");
    }
    return prov_error(status, code, NULL, "%s", ctx[0] != '\0' ? ctx : ck_strerror(rc));
}

/* ===================================================================== reads */

struct dev_list {
    ck_store *store;
    json_t *arr;
    char last[CK_DEVICE_MAC_LEN + 1];
};

static int
dev_list_cb(const ck_prov_device *d, void *arg)
{
    struct dev_list *l = arg;
    json_t *o = device_json(l->store, d);

    ck_strlcpy(l->last, d->mac, sizeof(l->last));
    return o != NULL && json_array_append_new(l->arr, o) == 0 ? 0 : CK_ERR_NOMEM;
}

static json_t *
op_device_list(struct prov_flows *fl, const json_t *req)
{
    struct dev_list l = {.store = fl->store, .arr = json_array()};
    ck_prov_device_query q = {
        .mac = json_string_value(json_object_get(req, "mac")),
        .unprov_ip = json_string_value(json_object_get(req, "ip")),
        .number = json_string_value(json_object_get(req, "number")),
        .customer_id = json_integer_value(json_object_get(req, "customer")),
        .state = (int)json_integer_value(json_object_get(req, "state")),
        .after = json_string_value(json_object_get(req, "after")),
        .limit = (size_t)json_integer_value(json_object_get(req, "limit")),
    };
    size_t n = 0;
    int rc;

    if (l.arr == NULL)
        return NULL;
    if ((rc = ck_prov_device_list(fl->store, &q, dev_list_cb, &l, &n)) != 0) {
        json_decref(l.arr);
        return store_error(rc, "device list");
    }
    return ok(200, json_pack("{s:o,s:o}", "devices", l.arr, "next",
                             n == q.limit && n > 0 ? json_string(l.last) : json_null()));
}

struct cert_list {
    json_t *arr;
    int64_t current;
};

static int
cert_list_cb(const ck_prov_cert *c, void *arg)
{
    struct cert_list *l = arg;
    json_t *o = cert_json(c, true);

    if (o == NULL)
        return CK_ERR_NOMEM;
    json_object_set_new(o, "current", json_boolean(l->current > 0 && c->id == l->current));
    return json_array_append_new(l->arr, o) == 0 ? 0 : CK_ERR_NOMEM;
}

static json_t *
device_full(struct prov_flows *fl, const ck_prov_device *d)
{
    json_t *o = device_json(fl->store, d), *hist = json_array(), *certs = json_array();
    struct cert_list cl = {.arr = certs, .current = d->has_cert ? d->cert_id : 0};
    size_t n = 0;

    if (o == NULL || hist == NULL || certs == NULL)
        goto fail;
    if (ck_prov_event_list(fl->store, d->mac, 0, 0, HISTORY_MAX, event_cb, hist, &n) != 0)
        goto fail;
    /* Every certificate the device was issued, the newest first; "current" marks the one
     * the record names (none after a de-provisioning). */
    if (ck_prov_cert_list(fl->store, d->mac, CERTS_MAX, cert_list_cb, &cl, &n) != 0)
        goto fail;
    json_object_set_new(o, "history", hist);
    json_object_set_new(o, "certs", certs);
    return o;
fail:
    json_decref(o);
    json_decref(hist);
    json_decref(certs);
    return NULL;
}

static json_t *
op_device_get(struct prov_flows *fl, const json_t *msg)
{
    const char *mac = json_string_value(json_object_get(msg, "mac"));
    ck_prov_device *d = NULL;
    json_t *r;
    int rc;

    if ((rc = ck_prov_device_get(fl->store, mac, &d)) != 0)
        return rc == CK_ERR_NOTFOUND ? prov_error(404, "not_found", "mac", "no device %s", mac)
                                     : store_error(rc, "device get");
    r = ok(200, device_full(fl, d));
    ck_prov_device_free(d);
    return r;
}

static json_t *
op_customer_get(struct prov_flows *fl, const json_t *msg)
{
    int64_t id = json_integer_value(json_object_get(msg, "customer"));
    ck_prov_customer *c = NULL;
    ck_prov_device_query q = {.customer_id = id, .limit = CK_PROV_LIST_MAX};
    struct dev_list l = {.store = fl->store, .arr = json_array()};
    json_t *o, *macs = json_array(), *hist = json_array(), *v;
    size_t n = 0, i;
    int rc;

    if ((rc = ck_prov_customer_get(fl->store, id, &c)) != 0) {
        json_decref(l.arr);
        json_decref(macs);
        json_decref(hist);
        return rc == CK_ERR_NOTFOUND
                   ? prov_error(404, "not_found", "customer", "no customer %lld", (long long)id)
                   : store_error(rc, "customer get");
    }
    o = customer_json(c);
    ck_prov_customer_free(c);
    if (o == NULL || l.arr == NULL || macs == NULL || hist == NULL ||
        ck_prov_device_list(fl->store, &q, dev_list_cb, &l, &n) != 0 ||
        ck_prov_event_list(fl->store, NULL, id, 0, HISTORY_MAX, event_cb, hist, &n) != 0) {
        json_decref(o);
        json_decref(l.arr);
        json_decref(macs);
        json_decref(hist);
        return prov_error(500, "internal", NULL, "customer records");
    }
    json_array_foreach(l.arr, i, v)
        json_array_append(macs, json_object_get(v, "mac"));
    json_decref(l.arr);
    json_object_set_new(o, "devices", macs);
    json_object_set_new(o, "history", hist);
    return ok(200, o);
}

struct cust_list {
    json_t *arr;
    int64_t last;
};

static int
cust_cb(const ck_prov_customer *c, void *arg)
{
    struct cust_list *l = arg;
    json_t *o = customer_json(c);

    l->last = c->id;
    return o != NULL && json_array_append_new(l->arr, o) == 0 ? 0 : CK_ERR_NOMEM;
}

static json_t *
op_customer_list(struct prov_flows *fl, const json_t *req)
{
    struct cust_list l = {.arr = json_array()};
    size_t limit = (size_t)json_integer_value(json_object_get(req, "limit")), n = 0;
    int rc;

    if (l.arr == NULL)
        return NULL;
    if ((rc = ck_prov_customer_list(fl->store, json_string_value(json_object_get(req, "q")),
                                    json_integer_value(json_object_get(req, "after")), limit,
                                    cust_cb, &l, &n)) != 0) {
        json_decref(l.arr);
        return store_error(rc, "customer list");
    }
    return ok(200, json_pack("{s:o,s:o}", "customers", l.arr, "next",
                             n == limit && n > 0 ? json_integer(l.last) : json_null()));
}

static int
delivery_cb(const ck_prov_delivery *d, void *arg)
{
    json_t *o = json_pack("{s:I,s:I,s:s,s:i,s:o,s:I,s:o,s:i,s:s}", "id", (json_int_t)d->id,
                          "event", (json_int_t)d->event_id, "target", d->target, "attempts",
                          d->attempts, "next_attempt",
                          d->delivered > 0 || d->next_attempt == INT64_MAX
                              ? json_null() : json_integer(d->next_attempt),
                          "created", (json_int_t)d->created, "delivered",
                          time_or_null(d->delivered), "last_status", d->last_status, "state",
                          d->delivered > 0 ? "delivered"
                          : d->next_attempt == INT64_MAX ? "failed" : "pending");

    return o != NULL && json_array_append_new(arg, o) == 0 ? 0 : CK_ERR_NOMEM;
}

static json_t *
op_deliveries(struct prov_flows *fl, const json_t *req)
{
    json_t *arr = json_array();
    size_t limit = (size_t)json_integer_value(json_object_get(req, "limit")), n = 0;
    int64_t last;
    int rc;

    if (arr == NULL)
        return NULL;
    if ((rc = ck_prov_outbox_list(fl->store, json_integer_value(json_object_get(req, "before")),
                                  limit, delivery_cb, arr, &n)) != 0) {
        json_decref(arr);
        return store_error(rc, "delivery log");
    }
    last = n > 0 ? json_integer_value(json_object_get(json_array_get(arr, n - 1), "id")) : 0;
    return ok(200, json_pack("{s:o,s:o}", "deliveries", arr, "next",
                             n == limit && n > 0 ? json_integer(last) : json_null()));
}

static json_t *
op_pools(struct prov_flows *fl)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr != NULL && i < fl->cfg->n_pools; i++) {
        ck_prov_pool_stats st = {0, 0};
        bool seen = false;
        /* A segment with several ranges is reported once. */
        for (size_t k = 0; k < i; k++)
            seen = seen || strcmp(fl->cfg->pools[k].segment, fl->cfg->pools[i].segment) == 0;
        if (seen)
            continue;
        if (ck_prov_pool_stats_get(fl->store, fl->cfg->pools[i].segment, &st) != 0) {
            json_decref(arr);
            return store_error(CK_ERR_DB, "pool stats");
        }
        json_array_append_new(arr, json_pack("{s:s,s:I,s:I}", "segment",
                                             fl->cfg->pools[i].segment, "free",
                                             (json_int_t)st.free, "assigned",
                                             (json_int_t)st.assigned));
    }
    return ok(200, json_pack("{s:o}", "pools", arr));
}

/* The lines long poll's one look (the front waits between looks, outside the back): the
 * cursor is the newest event id; a client at the cursor gets no change; otherwise the full
 * snapshot of every number held by a PROVISIONED or REPAIR device. */
struct lines {
    json_t *arr;
    char last[CK_DEVICE_MAC_LEN + 1];
};

static int
lines_cb(const ck_prov_device *d, void *arg)
{
    struct lines *l = arg;

    ck_strlcpy(l->last, d->mac, sizeof(l->last));
    for (size_t i = 0; i < d->n_numbers; i++) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "number", d->numbers[i], "principal",
                              d->principal != NULL ? d->principal : "", "mac", d->mac, "state",
                              ck_prov_state_name(d->state));
        if (o == NULL || json_array_append_new(l->arr, o) != 0)
            return CK_ERR_NOMEM;
    }
    return 0;
}

static json_t *
op_lines(struct prov_flows *fl, const json_t *req)
{
    int64_t after = json_integer_value(json_object_get(req, "after")), last = 0;
    struct lines l = {.arr = json_array()};
    static const int states[] = {CK_PROV_PROVISIONED, CK_PROV_REPAIR};
    int rc;

    if (l.arr == NULL)
        return NULL;
    if ((rc = ck_prov_event_last(fl->store, &last)) != 0) {
        json_decref(l.arr);
        return store_error(rc, "lines");
    }
    if (after > 0 && after == last)
        return ok(200, json_pack("{s:o,s:[],s:I,s:b}", "lines", l.arr, "removed", "cursor",
                                 (json_int_t)last, "full", 0));
    for (size_t s = 0; s < 2; s++) {
        l.last[0] = '\0';
        for (;;) {
            ck_prov_device_query q = {.state = states[s], .after = l.last[0] ? l.last : NULL,
                                      .limit = CK_PROV_LIST_MAX};
            size_t n = 0;
            if ((rc = ck_prov_device_list(fl->store, &q, lines_cb, &l, &n)) != 0) {
                json_decref(l.arr);
                return store_error(rc, "lines");
            }
            if (n < CK_PROV_LIST_MAX)
                break;
        }
    }
    return ok(200, json_pack("{s:o,s:[],s:I,s:b}", "lines", l.arr, "removed", "cursor",
                             (json_int_t)last, "full", 1));
}

/* ===================================================================== writes */

static int
actor_of(const json_t *msg, ck_prov_actor *who)
{
    const char *hash = json_string_value(json_object_get(msg, "hash"));

    memset(who, 0, sizeof(*who));
    who->actor = json_string_value(json_object_get(msg, "actor"));
    who->idem_key = json_string_value(json_object_get(msg, "idem"));
    if (who->actor == NULL)
        return -1;
    if (who->idem_key != NULL) {
        if (hash == NULL || strlen(hash) != 64)
            return -1;
        for (size_t i = 0; i < 32; i++) {
            int hi = ck_hex_digit((unsigned char)hash[2 * i]);
            int lo = ck_hex_digit((unsigned char)hash[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return -1;
            who->request_sha256[i] = (uint8_t)(hi << 4 | lo);
        }
    }
    return 0;
}

static json_t *
op_customer_write(struct prov_flows *fl, const json_t *msg, bool modify)
{
    const json_t *req = json_object_get(msg, "req");
    ck_prov_customer c;
    ck_prov_actor who;
    int64_t replayed = 0;
    char *services = NULL;
    const json_t *sv = json_object_get(req, "services");
    const char *type = json_string_value(json_object_get(req, "type"));
    json_t *r;
    int rc;

    if (actor_of(msg, &who) != 0)
        return prov_error(500, "internal", NULL, "bad message");
    memset(&c, 0, sizeof(c));
    if (modify) {
        ck_prov_customer *cur = NULL;
        /* PATCH: the record as it is, with the given members replaced. */
        c.id = json_integer_value(json_object_get(msg, "customer"));
        if ((rc = ck_prov_customer_get(fl->store, c.id, &cur)) != 0)
            return rc == CK_ERR_NOTFOUND
                       ? prov_error(404, "not_found", "customer", "no customer %lld",
                                    (long long)c.id)
                       : store_error(rc, "customer get");
        c = *cur;
        if (json_object_get(req, "name") != NULL)
            c.name = (char *)json_string_value(json_object_get(req, "name"));
        if (json_object_get(req, "address") != NULL)
            c.address = (char *)json_string_value(json_object_get(req, "address"));
        if (json_object_get(req, "email") != NULL)
            c.email = (char *)json_string_value(json_object_get(req, "email"));
        if (sv != NULL && (services = prov_json_text(sv, JSON_COMPACT | JSON_SORT_KEYS)) != NULL)
            c.services = services;
        rc = ck_prov_customer_modify(fl->store, &who, &c, &replayed);
        ck_prov_customer_free(cur);
    } else {
        c.type = type != NULL && strcmp(type, "repair") == 0 ? CK_PROV_ACCOUNT_REPAIR
                                                              : CK_PROV_ACCOUNT_CUSTOMER;
        c.name = (char *)json_string_value(json_object_get(req, "name"));
        c.address = (char *)json_string_value(json_object_get(req, "address"));
        c.email = (char *)json_string_value(json_object_get(req, "email"));
        ck_strlcpy(c.segment, json_string_value(json_object_get(req, "segment")),
                   sizeof(c.segment));
        services = sv != NULL ? prov_json_text(sv, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
        c.services = services != NULL ? services : "{}";
        rc = ck_prov_customer_add(fl->store, &who, &c, &replayed);
    }
    free(services);
    if (rc == CK_ERR_EXISTS && replayed > 0) {
        /* The first call's customer: its id is in the first call's event. */
        json_t *ev = json_array();
        int64_t id = modify ? json_integer_value(json_object_get(msg, "customer")) : 0;
        size_t n = 0;
        if (!modify && ev != NULL &&
            ck_prov_event_list(fl->store, NULL, 0, replayed + 1, 1, event_cb, ev, &n) == 0 &&
            n == 1)
            id = json_integer_value(json_object_get(json_array_get(ev, 0), "customer"));
        json_decref(ev);
        json_t *m = json_pack("{s:I}", "customer", (json_int_t)id);
        r = m != NULL ? op_customer_get(fl, m) : NULL;
        json_decref(m);
        if (json_integer_value(json_object_get(r, "status")) == 200)
            json_object_set_new(json_object_get(r, "body"), "replayed", json_true());
        return r;
    }
    if (rc != 0)
        return store_error(rc, modify ? "customer modify" : "customer add");
    {
        ck_prov_customer *out = NULL;
        if ((rc = ck_prov_customer_get(fl->store, c.id, &out)) != 0)
            return store_error(rc, "customer get");
        r = ok(modify ? 200 : 201, customer_json(out));
        ck_prov_customer_free(out);
    }
    if (fl->webhooks != NULL)
        prov_webhooks_kick(fl->webhooks);
    return r;
}

static json_t *
op_report(struct prov_flows *fl, const json_t *msg)
{
    const json_t *req = json_object_get(msg, "req");
    const char *mac = json_string_value(json_object_get(req, "mac"));
    const char *key = json_string_value(json_object_get(req, "key_sha256"));
    const char *ctl = json_string_value(json_object_get(req, "controller"));
    uint8_t spki[32];
    ck_prov_actor who;
    ck_prov_device *d = NULL;
    json_t *r;
    int rc;

    if (actor_of(msg, &who) != 0)
        return prov_error(500, "internal", NULL, "bad message");
    if (key != NULL && ck_device_pin_parse_hex(key, spki) != 0)
        return prov_error(400, "invalid_field", "key_sha256", "key_sha256: expected 64 hex");
    rc = ck_prov_device_report(fl->store, &who, mac, key != NULL ? spki : NULL,
                               json_string_value(json_object_get(req, "ip")),
                               ctl != NULL ? ctl : who.actor, fl->now());
    if (rc == CK_ERR_NOTFOUND)
        return prov_error(404, "not_found", "mac", "no device %s", mac);
    if (rc == CK_ERR_INTEGRITY)
        return prov_error(409, "conflict", "key_sha256",
                          "key_sha256 does not match the device's manufacturer key (a clone?)");
    if (rc != 0)
        return store_error(rc, "report");
    if ((rc = ck_prov_device_get(fl->store, mac, &d)) != 0)
        return store_error(rc, "device get");
    r = ok(200, device_json(fl->store, d));
    ck_prov_device_free(d);
    return r;
}

/* Which certificate an action needs: 0 none, 1 the customer's (cert_days), 2 repair. */
static int
cert_kind(enum ck_prov_action_type t, const json_t *req)
{
    switch (t) {
    case CK_PROV_ACT_PROVISION:
    case CK_PROV_ACT_MOVE:
    case CK_PROV_ACT_RETURN:
    case CK_PROV_ACT_LOANER:
        return 1;
    case CK_PROV_ACT_CHANGE_SERVICE:
        return json_is_true(json_object_get(req, "reissue")) ? 1 : 0;
    case CK_PROV_ACT_REPAIR:
        return 2;
    default:
        return 0;
    }
}

static int
action_type(const char *name, enum ck_prov_action_type *t)
{
    for (int i = CK_PROV_ACT_PROVISION; i <= CK_PROV_ACT_REINSTATE; i++)
        if (strcmp(ck_prov_action_name((enum ck_prov_action_type)i), name) == 0) {
            *t = (enum ck_prov_action_type)i;
            return 0;
        }
    return -1;
}

/* The segment a new number comes from: the request's, else the customer's. */
static int
number_segment(struct prov_flows *fl, const json_t *req, int64_t customer, char *out,
               size_t size)
{
    const char *seg = json_string_value(json_object_get(req, "segment"));
    ck_prov_customer *c = NULL;
    int rc;

    if (seg != NULL) {
        ck_strlcpy(out, seg, size);
        return 0;
    }
    if ((rc = ck_prov_customer_get(fl->store, customer, &c)) != 0)
        return rc;
    ck_strlcpy(out, c->segment, size);
    ck_prov_customer_free(c);
    return 0;
}

static json_t *
replayed_answer(struct prov_flows *fl, const char *mac)
{
    ck_prov_device *d = NULL;
    json_t *o;

    if (ck_prov_device_get(fl->store, mac, &d) != 0)
        return prov_error(500, "internal", NULL, "replayed, but the device cannot be read");
    o = device_json(fl->store, d);
    ck_prov_device_free(d);
    if (o != NULL)
        json_object_set_new(o, "replayed", json_true());
    return ok(200, o);
}

static json_t *
op_device_act(struct prov_flows *fl, const json_t *msg)
{
    const json_t *req = json_object_get(msg, "req");
    const char *mac = json_string_value(json_object_get(msg, "mac"));
    const char *aname = json_string_value(json_object_get(msg, "action"));
    enum ck_prov_action_type t;
    ck_prov_actor who;
    ck_prov_device *d = NULL, *out = NULL;
    ck_prov_action a;
    char number[CK_PROV_NUMBER_MAX + 1] = "", seg[CK_PROV_SEGMENT_MAX + 1] = "";
    char fqdn[CK_PROV_FQDN_MAX + 1] = "";
    uint8_t *der = NULL;
    size_t der_len = 0;
    int64_t now = fl->now(), event = 0, replayed = 0;
    json_t *r = NULL;
    int rc, kind;
    bool auto_number = false;

    if (actor_of(msg, &who) != 0 || mac == NULL || aname == NULL || action_type(aname, &t) != 0)
        return prov_error(500, "internal", NULL, "bad message");
    if ((rc = ck_prov_device_get(fl->store, mac, &d)) != 0)
        return rc == CK_ERR_NOTFOUND ? prov_error(404, "not_found", "mac", "no device %s", mac)
                                     : store_error(rc, "device get");
    memset(&a, 0, sizeof(a));
    a.mac = d->mac;
    a.customer_id = json_integer_value(json_object_get(req, "customer"));
    a.reason = json_string_value(json_object_get(req, "reason"));
    a.loaner_for = json_string_value(json_object_get(req, "for"));
    a.segment = json_string_value(json_object_get(req, "segment"));
    if (json_object_get(req, "number") != NULL)
        ck_strlcpy(number, json_string_value(json_object_get(req, "number")), sizeof(number));
    {
        char *sv = json_object_get(req, "services") != NULL
                       ? prov_json_text(json_object_get(req, "services"),
                                    JSON_COMPACT | JSON_SORT_KEYS)
                       : NULL;
        a.services = sv;
    }
    kind = cert_kind(t, req);
    /* A new number for provision, move and loaner, picked here so that its phone ID is in the
     * certificate; the action refuses it if another took it meanwhile. */
    if (number[0] == '\0' && (t == CK_PROV_ACT_PROVISION || t == CK_PROV_ACT_MOVE ||
                              t == CK_PROV_ACT_LOANER)) {
        auto_number = true;
        if ((rc = number_segment(fl, req, t == CK_PROV_ACT_MOVE ? 0 : a.customer_id, seg,
                                 sizeof(seg))) != 0) {
            r = rc == CK_ERR_NOTFOUND
                    ? prov_error(404, "not_found", "customer", "no customer %lld",
                                 (long long)a.customer_id)
                    : store_error(rc, "customer get");
            goto out;
        }
    }
    if (d->principal != NULL) {
        size_t n = strcspn(d->principal, "@");
        if (fl->cfg->fqdn_domain != NULL &&
            (size_t)snprintf(fqdn, sizeof(fqdn), "%.*s.%s", (int)n, d->principal,
                             fl->cfg->fqdn_domain) >= sizeof(fqdn))
            fqdn[0] = '\0';
    }
    a.fqdn = fqdn[0] != '\0' && (kind != 0 || t == CK_PROV_ACT_PROVISION) ? fqdn : NULL;
    for (int attempt = 0; attempt < NUMBER_RETRIES; attempt++) {
        const char *nums[CK_PROV_MAX_NUMBERS];
        size_t n_nums = 0;

        if (auto_number && (rc = pick_number(fl, seg, number)) != 0) {
            r = rc == CK_ERR_FULL || rc == CK_ERR_NOTFOUND
                    ? prov_error(409, "conflict", "segment", "segment %s has no free number", seg)
                    : store_error(rc, "number");
            goto out;
        }
        a.number = number[0] != '\0' ? number : NULL;
        if (kind != 0) {
            struct prov_sign_req sr = {.mfg_cert_der = d->mfg_cert_der,
                                       .mfg_cert_len = d->mfg_cert_len, .mac = d->mac};
            if (d->mfg_cert_der == NULL || d->mfg_cert_len == 0) {
                r = prov_error(409, "wrong_state", "mac", "device %s has no manufacturer "
                               "certificate on record: it must log in once first", d->mac);
                goto out;
            }
            if (a.number != NULL)
                nums[n_nums++] = a.number;
            else if (kind == 1)
                for (size_t i = 0; i < d->n_numbers; i++)
                    nums[n_nums++] = d->numbers[i];
            sr.numbers = nums;
            sr.n_numbers = n_nums;
            sr.not_before = now - fl->cfg->clockskew;
            sr.not_after = kind == 2 ? now + fl->cfg->repair_cert_hours * 3600
                                     : now + fl->cfg->cert_days * 86400;
            free(der);
            der = NULL;
            store_release(fl);
            rc = prov_signer_issue(fl->signer, &sr, &der, &der_len);
            store_take(fl);
            if (rc != 0) {
                ck_log_err("signer: %s: %s", d->mac, ck_error_context());
                r = prov_error(500, "internal", NULL, "the signer refused: see the log");
                goto out;
            }
            a.cert_der = der;
            a.cert_len = der_len;
            a.cert_not_before = sr.not_before;
            a.cert_not_after = sr.not_after;
            prov_crash_point("after-sign");
        }
        prov_crash_point("before-commit");
        rc = ck_prov_device_act(fl->store, &who, t, &a, now, &event, &replayed, &out);
        prov_crash_point("after-commit");
        if (rc == CK_ERR_EXISTS && replayed > 0) {
            r = replayed_answer(fl, d->mac);
            goto out;
        }
        if (rc == CK_ERR_EXISTS && auto_number)
            continue; /* our number went to another device: pick the next */
        break;
    }
    if (rc == CK_ERR_EXISTS) {
        r = prov_error(409, "conflict", "number", "%s", ck_error_context());
        goto out;
    }
    if (rc != 0) {
        r = store_error(rc, aname);
        goto out;
    }
    ck_log_notice("%s %s by %s: event %lld%s%s", aname, d->mac, who.actor, (long long)event,
                  a.number != NULL ? ", number " : "", a.number != NULL ? a.number : "");
    if (fl->webhooks != NULL)
        prov_webhooks_kick(fl->webhooks);
    if (out == NULL && ck_prov_device_get(fl->store, d->mac, &out) != 0) {
        r = prov_error(500, "internal", NULL, "done, but the device cannot be read");
        goto out;
    }
    r = ok(200, device_json(fl->store, out));
out:
    if (auto_number)
        pick_release(fl);
    free((char *)a.services);
    free(der);
    ck_prov_device_free(d);
    ck_prov_device_free(out);
    return r;
}

json_t *
prov_flows_handle(struct prov_flows *fl, const json_t *req)
{
    const char *op = json_string_value(json_object_get(req, "op"));
    const json_t *q = json_object_get(req, "req");

    if (op == NULL)
        return prov_error(500, "internal", NULL, "no operation");
    if (strcmp(op, "device.list") == 0)
        return op_device_list(fl, q);
    if (strcmp(op, "device.get") == 0)
        return op_device_get(fl, req);
    if (strcmp(op, "device.report") == 0)
        return op_report(fl, req);
    if (strcmp(op, "device.act") == 0)
        return op_device_act(fl, req);
    if (strcmp(op, "customer.add") == 0)
        return op_customer_write(fl, req, false);
    if (strcmp(op, "customer.modify") == 0)
        return op_customer_write(fl, req, true);
    if (strcmp(op, "customer.get") == 0)
        return op_customer_get(fl, req);
    if (strcmp(op, "customer.list") == 0)
        return op_customer_list(fl, q);
    if (strcmp(op, "lines") == 0)
        return op_lines(fl, q);
    if (strcmp(op, "deliveries") == 0)
        return op_deliveries(fl, q);
    if (strcmp(op, "pools") == 0)
        return op_pools(fl);
    if (strcmp(op, "realm") == 0)
        return ok(200, json_pack("{s:s}", "realm", ck_store_realm(fl->store)->name));
    return prov_error(500, "internal", NULL, "unknown operation %.64s", op);
}
