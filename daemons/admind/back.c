/* The back process of cablekey-admind: the only one that opens the store (and so the stash).
 *
 * It trusts the front for one thing only, the identity of the caller and the ACL decision
 * (the front holds the keytab and the ACL; see admind.h). Everything else is re-validated
 * here: the operation must be one of a closed list, each with a fixed set of members, names must
 * be canonical principals of this realm, and request bodies go through the same strict decoders
 * as at the HTTP edge. A frame that fails these checks ends the process: the front is broken or
 * compromised, and serving on would be worse than stopping.
 *
 * Replies carry records without key material (lib/admin/json.c never encodes key bytes), so even
 * a compromised front cannot read keys through this channel. */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "admind.h"
#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/store.h"
#include "cablekey/util.h"

struct back {
    ck_store *store;
    const ck_realm_info *realm;
    const char *actor; /* the authenticated caller of the operation in progress */
};

/* A reply: status and body (a new reference), or status and error. */
struct reply {
    int status;
    json_t *body;
    const char *code;
    char message[256];
};

static void
fail(struct reply *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
fail(struct reply *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    r->status = status;
    r->code = code;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
}

/* Maps a store error to HTTP. Internal errors are logged here and answered vaguely: their
 * context can name database internals. */
static void
fail_store(struct reply *r, int rc, const char *what)
{
    const char *ctx = ck_error_context();

    switch (rc) {
    case CK_ERR_NOTFOUND: fail(r, 404, "not_found", "%s: not found", what); break;
    case CK_ERR_EXISTS: fail(r, 409, "exists", "%s: already exists", what); break;
    case CK_ERR_POLICY: fail(r, 409, "conflict", "%s: %s", what, ctx); break;
    case CK_ERR_INVAL:
    case CK_ERR_DECODE:
    case CK_ERR_LIMIT:
    case CK_ERR_UNSUPPORTED: fail(r, 400, "bad_request", "%s: %s", what, ctx); break;
    default:
        ck_log_err("[back] %s: %s: %s", what, ck_strerror(rc), ctx);
        fail(r, 500, "internal", "%s: internal error (see the daemon's log)", what);
        break;
    }
}

/* The front sent something no correct front sends. */
static void __attribute__((noreturn))
protocol_violation(const char *what)
{
    ck_log_err("[back] protocol violation from the front process (%s); exiting", what);
    _exit(3);
}

static void
check_members(const json_t *msg, const char *const *allowed)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)msg, key, v) {
        bool ok = false;
        (void)v;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok)
            protocol_violation("unexpected member");
    }
}

static const char *
get_str(const json_t *msg, const char *member, bool required)
{
    const json_t *v = json_object_get(msg, member);

    if (v == NULL && !required)
        return NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 1024 ||
        strlen(json_string_value(v)) != json_string_length(v))
        protocol_violation("bad string member");
    return json_string_value(v);
}

/* The principal name of the operation: canonical and in this realm, else a protocol violation
 * (the front canonicalises before it checks the ACL, so a mismatch here means the ACL decision
 * was about another name). */
static const char *
get_name(struct back *b, const json_t *msg)
{
    const char *name = get_str(msg, "name", true);
    ck_principal *p = NULL;
    char *canon = NULL;
    bool ok;

    ok = ck_principal_parse(name, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p) == 0 &&
         strcmp(p->realm, b->realm->name) == 0 && ck_principal_unparse(p, 0, &canon) == 0 &&
         strcmp(canon, name) == 0;
    ck_principal_free(p);
    free(canon);
    if (!ok)
        protocol_violation("principal name not canonical or not in this realm");
    return name;
}

static void
get_request(const json_t *msg, enum ck_admin_req_kind kind, struct ck_admin_principal_req *req)
{
    if (ck_admin_request_from_json(kind, json_object_get(msg, "req"), req) != 0)
        protocol_violation("request body the front should have refused");
}

static void
reply_principal(struct back *b, struct reply *r, const char *name, int status)
{
    ck_db_principal *p = NULL;
    int rc = ck_store_get_principal(b->store, name, &p);

    if (rc != 0) {
        fail_store(r, rc, name);
    } else if ((r->body = ck_admin_principal_to_json(p)) == NULL) {
        fail(r, 500, "internal", "out of memory");
    } else {
        r->status = status;
    }
    ck_db_principal_free(p);
}

static void
apply_attributes(ck_db_principal *p, const struct ck_admin_principal_req *req)
{
    if (req->present & CK_ADMIN_REQ_MAX_LIFE)
        p->max_life = req->max_life;
    if (req->present & CK_ADMIN_REQ_MAX_RENEW)
        p->max_renew = req->max_renew;
    if (req->present & CK_ADMIN_REQ_EXPIRES)
        p->expires = req->expires;
    if (req->present & CK_ADMIN_REQ_PW_EXPIRES)
        p->pw_expires = req->pw_expires;
    p->attributes = (p->attributes | req->flags_set) & ~req->flags_clear;
}

/* A password refused by a policy, or a policy that does not exist, is the request's fault
 * (400); other store errors map as usual. */
static void
fail_policy(struct reply *r, int rc, const char *what)
{
    if (rc == CK_ERR_POLICY)
        fail(r, 400, "bad_request", "%s: %s", what, ck_error_context());
    else
        fail_store(r, rc, what);
}

/* The policy of a new principal, as `cablekey principal add` (MIT addprinc): the one the request
 * names, none if it says null, else the policy named "default" if there is one. A password must
 * satisfy it; it then sets the last password change and, unless the request sets pw_expires,
 * the password expiry. */
static int
create_policy(struct back *b, const struct ck_admin_principal_req *req, ck_db_principal *p)
{
    const char *name = "default";
    ck_policy pol;
    int64_t now = 0;
    int rc;

    if (req->present & CK_ADMIN_REQ_POLICY) {
        if (req->policy[0] == '\0')
            return 0;
        name = req->policy;
    }
    if ((rc = ck_store_get_policy(b->store, name, &pol)) == CK_ERR_NOTFOUND) {
        if (!(req->present & CK_ADMIN_REQ_POLICY)) {
            ck_error_clear();
            return 0;
        }
        return ck_error_set(CK_ERR_POLICY, "no policy named %s", name);
    }
    if (rc != 0)
        return rc;
    if (req->password != NULL &&
        (rc = ck_store_check_password(b->store, NULL, &pol, req->password, req->password_len)) != 0)
        return rc;
    if ((p->policy = strdup(pol.name)) == NULL)
        return CK_ERR_NOMEM;
    if (req->password != NULL) {
        ck_now(&now, NULL);
        p->last_pwd_change = now;
        if (pol.max_life > 0 && !(req->present & CK_ADMIN_REQ_PW_EXPIRES))
            p->pw_expires = now + pol.max_life;
    }
    return 0;
}

static void
op_create(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", "req", NULL};
    struct ck_admin_principal_req req = {0};
    ck_db_principal *p = NULL;
    const char *name;
    bool enc;
    int rc;

    check_members(msg, members);
    name = get_name(b, msg);
    get_request(msg, CK_ADMIN_REQ_CREATE, &req);
    enc = (req.present & CK_ADMIN_REQ_ENCTYPES) != 0;
    if ((rc = ck_db_principal_new(name, &p)) != 0)
        goto store_fail;
    p->kvno = 1;
    /* The realm's default flags (pre-authentication unless the operator changed them), then
     * the request's changes: as `cablekey principal add` and MIT's default_principal_flags. */
    p->attributes = b->realm->default_attributes;
    apply_attributes(p, &req);
    if ((rc = create_policy(b, &req, p)) != 0) {
        fail_policy(r, rc, name);
        goto out;
    }
    rc = ck_db_keys_make(name, req.password, req.password_len,
                         enc ? req.enctypes : b->realm->enctypes,
                         enc ? req.n_enctypes : b->realm->n_enctypes, 1, &p->keys, &p->n_keys);
    if (rc == 0)
        rc = ck_store_create_principal(b->store, p);
    if (rc != 0)
        goto store_fail;
    reply_principal(b, r, name, 201);
    goto out;
store_fail:
    fail_store(r, rc, name);
out:
    ck_db_principal_free(p);
    ck_admin_principal_req_clear(&req);
}

static void
op_modify(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", "req", NULL};
    struct ck_admin_principal_req req = {0};
    ck_db_principal *p = NULL;
    const char *name;
    int rc;

    check_members(msg, members);
    name = get_name(b, msg);
    get_request(msg, CK_ADMIN_REQ_MODIFY, &req);
    rc = 0;
    if ((req.present & ~CK_ADMIN_REQ_POLICY) != 0 &&
        (rc = ck_store_get_principal(b->store, name, &p)) == 0) {
        apply_attributes(p, &req);
        rc = ck_store_update_principal(b->store, p);
    }
    if (rc == 0 && (req.present & CK_ADMIN_REQ_POLICY)) {
        rc = ck_store_set_principal_policy(b->store, name,
                                           req.policy[0] != '\0' ? req.policy : NULL);
        /* The principal exists (or the update above failed first): a missing policy. */
        if (rc == CK_ERR_NOTFOUND && (p != NULL || ck_store_get_principal(b->store, name, &p) == 0))
            rc = ck_error_set(CK_ERR_POLICY, "no policy named %s", req.policy);
    }
    if (rc != 0)
        fail_policy(r, rc, name);
    else
        reply_principal(b, r, name, 200);
    ck_db_principal_free(p);
    ck_admin_principal_req_clear(&req);
}

static void
op_keys(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", "req", NULL};
    struct ck_admin_principal_req req = {0};
    ck_db_key *keys = NULL;
    size_t n_keys = 0;
    uint32_t kvno = 0;
    const char *name;
    bool enc;
    int rc;

    check_members(msg, members);
    name = get_name(b, msg);
    get_request(msg, CK_ADMIN_REQ_KEYS, &req);
    enc = (req.present & CK_ADMIN_REQ_ENCTYPES) != 0;
    if (req.password != NULL) {
        int64_t now = 0;

        /* A password change, as `cablekey principal rotate --password` and MIT's cpw: the
         * principal's policy applies (an administrator skips only the minimum age), and the
         * principal keeps its enctypes. */
        if (req.present & (CK_ADMIN_REQ_ENCTYPES | CK_ADMIN_REQ_KEEP)) {
            fail(r, 400, "bad_request", "%s: \"enctypes\" and \"keep\" do not apply with a "
                 "password (the principal's enctypes are kept)", name);
            goto out;
        }
        ck_now(&now, NULL);
        rc = ck_store_change_password(b->store, name, req.password, req.password_len,
                                      CK_PW_ADMIN, now, &kvno);
    } else {
        /* The kvno passed here is ignored by the rotation, which numbers the keys itself. */
        rc = ck_db_keys_make(name, NULL, 0, enc ? req.enctypes : b->realm->enctypes,
                             enc ? req.n_enctypes : b->realm->n_enctypes, 1, &keys, &n_keys);
        if (rc == 0)
            rc = ck_store_rotate_keys(b->store, name, keys, n_keys, req.keep, &kvno);
    }
    if (rc != 0)
        fail_policy(r, rc, name);
    else
        reply_principal(b, r, name, 200);
out:
    ck_db_keys_free(keys, n_keys);
    ck_admin_principal_req_clear(&req);
}

static void
op_get(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", NULL};

    check_members(msg, members);
    reply_principal(b, r, get_name(b, msg), 200);
}

/* Deleting krbtgt/REALM@REALM would end every session in the realm: no remote verb does it. */
static bool
is_local_tgs(const struct back *b, const char *name)
{
    ck_principal *p = NULL;
    bool tgs = ck_principal_parse(name, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p) == 0 &&
               ck_principal_is_tgs(p, b->realm->name);

    ck_principal_free(p);
    return tgs;
}

static void
op_delete(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", NULL};
    const char *name;
    int rc;

    check_members(msg, members);
    name = get_name(b, msg);
    if (is_local_tgs(b, name)) {
        fail(r, 409, "conflict", "%s is the realm's ticket-granting service: it cannot be "
             "deleted", name);
        return;
    }
    if ((rc = ck_store_delete_principal(b->store, name)) != 0)
        fail_store(r, rc, name);
    else
        r->status = 204;
}

static size_t
get_limit(const json_t *msg, size_t max)
{
    const json_t *v = json_object_get(msg, "limit");

    if (!json_is_integer(v) || json_integer_value(v) < 1 || (size_t)json_integer_value(v) > max)
        protocol_violation("bad limit");
    return (size_t)json_integer_value(v);
}

struct list_state {
    const char *pattern, *after;
    size_t limit;
    size_t bytes;         /* name bytes in the page: keeps a reply far below the frame limit */
    json_t *names;
    const char *next;     /* set when the page is full and more names follow */
    char last[1100];
};

static int
list_cb(const char *name, void *arg)
{
    struct list_state *ls = arg;

    if (ls->after != NULL && strcmp(name, ls->after) <= 0)
        return 0;
    if (fnmatch(ls->pattern, name, 0) != 0)
        return 0;
    if (json_array_size(ls->names) == ls->limit ||
        (ls->bytes += strlen(name) + 4) > ADMIND_LIST_MAX_BYTES) {
        ls->next = ls->last;
        return 1;
    }
    ck_strlcpy(ls->last, name, sizeof(ls->last));
    return json_array_append_new(ls->names, json_string(name)) == 0 ? 0 : CK_ERR_NOMEM;
}

static void
op_list(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "pattern", "after", "limit", NULL};
    struct list_state ls = {0};
    int rc;

    check_members(msg, members);
    ls.pattern = get_str(msg, "pattern", true);
    ls.after = get_str(msg, "after", false);
    ls.limit = get_limit(msg, ADMIND_LIST_MAX);
    if ((ls.names = json_array()) == NULL) {
        fail(r, 500, "internal", "out of memory");
        return;
    }
    rc = ck_store_list_principals(b->store, list_cb, &ls);
    if (rc < 0) {
        json_decref(ls.names);
        fail_store(r, rc, "list");
        return;
    }
    r->body = json_pack("{s:o,s:o}", "principals", ls.names, "next",
                        ls.next != NULL ? json_string(ls.next) : json_null());
    r->status = r->body != NULL ? 200 : 500;
}

static void
op_rename(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", "new_name", NULL};
    json_t *shifted;
    const char *from, *to;
    int rc;

    check_members(msg, members);
    from = get_name(b, msg);
    /* The new name passes the same checks as the old (a string, canonical, in this realm). */
    (void)get_str(msg, "new_name", true);
    if ((shifted = json_pack("{s:O}", "name", json_object_get(msg, "new_name"))) == NULL) {
        fail(r, 500, "internal", "out of memory");
        return;
    }
    to = get_name(b, shifted);
    if ((rc = ck_store_rename_principal(b->store, from, to)) != 0)
        fail_store(r, rc, from);
    else
        reply_principal(b, r, to, 200);
    json_decref(shifted);
}

static void
op_unlock(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", NULL};
    const char *name;
    int rc;

    check_members(msg, members);
    name = get_name(b, msg);
    if ((rc = ck_store_unlock_principal(b->store, name)) != 0)
        fail_store(r, rc, name);
    else
        reply_principal(b, r, name, 200);
}

static void
op_realm_modify(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "req", NULL};
    ck_realm_mod mod;
    int rc;

    check_members(msg, members);
    if (ck_admin_realm_mod_from_json(json_object_get(msg, "req"), &mod) != 0)
        protocol_violation("realm change the front should have refused");
    /* The store checks the ranges and enctypes again; its copy of the realm (b->realm) follows,
     * so later creates use the new enctypes and default flags at once. */
    if ((rc = ck_store_realm_modify(b->store, &mod)) != 0) {
        fail_store(r, rc, b->realm->name);
        return;
    }
    r->body = ck_admin_realm_to_json(b->realm);
    r->status = r->body != NULL ? 200 : 500;
}

static void
op_realm(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", NULL};

    check_members(msg, members);
    r->body = ck_admin_realm_to_json(b->realm);
    r->status = r->body != NULL ? 200 : 500;
}

static int
device_cb(const ck_db_device *dev, void *arg)
{
    json_t *o = ck_admin_device_to_json(dev);

    return o != NULL && json_array_append_new(arg, o) == 0 ? 0 : CK_ERR_NOMEM;
}

static void
op_device_list(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "principal", "after", "limit", NULL};
    const char *principal = get_str(msg, "principal", false);
    const char *after = get_str(msg, "after", false);
    size_t limit, n = 0;
    json_t *arr, *last;
    int rc;

    check_members(msg, members);
    limit = get_limit(msg, ADMIND_DEVICE_LIST_MAX);
    if ((arr = json_array()) == NULL) {
        fail(r, 500, "internal", "out of memory");
        return;
    }
    if ((rc = ck_store_list_devices(b->store, principal, after, limit, device_cb, arr, &n)) != 0) {
        json_decref(arr);
        fail_store(r, rc, "devices");
        return;
    }
    /* A full page may have a successor; the client pages on with after = next. */
    last = n == limit && n > 0 ? json_object_get(json_array_get(arr, n - 1), "mac") : NULL;
    r->body = json_pack("{s:o,s:O}", "devices", arr, "next", last != NULL ? last : json_null());
    r->status = r->body != NULL ? 200 : 500;
}

static void
op_device_get(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "mac", NULL};
    ck_db_device *dev = NULL;
    const char *mac;
    int rc;

    check_members(msg, members);
    mac = get_str(msg, "mac", true);
    if ((rc = ck_store_get_device(b->store, mac, &dev)) != 0) {
        fail_store(r, rc, "device");
        return;
    }
    r->body = ck_admin_device_to_json(dev);
    r->status = r->body != NULL ? 200 : 500;
    ck_db_device_free(dev);
}

/* ------------------------------------------------------------ password policies */

/* The policy name of the operation: the front checked it before the ACL; a name that does not
 * pass here means the front and back disagree. */
static const char *
get_policy_name(const json_t *msg)
{
    const char *name = get_str(msg, "name", true);

    if (ck_policy_name_check(name) != 0)
        protocol_violation("bad policy name");
    return name;
}

/* "policy NAME", what the error messages name (as the local CLI's do). */
static const char *
policy_what(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "policy %s", name);
    return buf;
}

static void
reply_policy(struct back *b, struct reply *r, const char *name, int status)
{
    char what[CK_POLICY_NAME_MAX + 16];
    ck_policy pol;
    int rc;

    if ((rc = ck_store_get_policy(b->store, name, &pol)) != 0) {
        fail_store(r, rc, policy_what(name, what, sizeof(what)));
        return;
    }
    r->body = ck_admin_policy_to_json(&pol);
    if (r->body == NULL)
        fail(r, 500, "internal", "out of memory");
    else
        r->status = status;
}

static void
get_policy_rules(const json_t *msg, bool modify, ck_policy *rules, unsigned *present)
{
    if (ck_admin_policy_rules_from_json(json_object_get(msg, "req"), modify, rules, present) != 0)
        protocol_violation("policy rules the front should have refused");
}

static void
op_policy_get(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", NULL};

    check_members(msg, members);
    reply_policy(b, r, get_policy_name(msg), 200);
}

static int
policy_name_cb(const ck_policy *pol, void *arg)
{
    return json_array_append_new(arg, json_string(pol->name)) == 0 ? 0 : CK_ERR_NOMEM;
}

static void
op_policy_list(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", NULL};
    json_t *names;
    int rc;

    check_members(msg, members);
    if ((names = json_array()) == NULL) {
        fail(r, 500, "internal", "out of memory");
        return;
    }
    /* At most CK_POLICY_LIST_MAX names of at most CK_POLICY_NAME_MAX bytes: one reply. */
    if ((rc = ck_store_list_policies(b->store, policy_name_cb, names)) != 0) {
        json_decref(names);
        fail_store(r, rc, "policies");
        return;
    }
    r->body = json_pack("{s:o}", "policies", names);
    r->status = r->body != NULL ? 200 : 500;
}

static void
op_policy_create(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", "req", NULL};
    char what[CK_POLICY_NAME_MAX + 16];
    const char *name;
    ck_policy pol;
    unsigned present;
    int rc;

    check_members(msg, members);
    name = get_policy_name(msg);
    get_policy_rules(msg, false, &pol, &present);
    ck_strlcpy(pol.name, name, sizeof(pol.name));
    /* The store checks the ranges and min_life < max_life again. */
    if ((rc = ck_store_create_policy(b->store, &pol)) != 0)
        fail_store(r, rc, policy_what(name, what, sizeof(what)));
    else
        reply_policy(b, r, name, 201);
}

static void
op_policy_modify(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", "req", NULL};
    char what[CK_POLICY_NAME_MAX + 16];
    const char *name;
    ck_policy pol, rules;
    unsigned present;
    int rc;

    check_members(msg, members);
    name = get_policy_name(msg);
    get_policy_rules(msg, true, &rules, &present);
    if ((rc = ck_store_get_policy(b->store, name, &pol)) != 0) {
        fail_store(r, rc, policy_what(name, what, sizeof(what)));
        return;
    }
    if (present & CK_ADMIN_POL_MIN_LENGTH)
        pol.min_length = rules.min_length;
    if (present & CK_ADMIN_POL_MIN_CLASSES)
        pol.min_classes = rules.min_classes;
    if (present & CK_ADMIN_POL_HISTORY)
        pol.history = rules.history;
    if (present & CK_ADMIN_POL_MIN_LIFE)
        pol.min_life = rules.min_life;
    if (present & CK_ADMIN_POL_MAX_LIFE)
        pol.max_life = rules.max_life;
    if (present & CK_ADMIN_POL_MAX_FAILURE)
        pol.max_failure = rules.max_failure;
    if (present & CK_ADMIN_POL_FAILURE_INTERVAL)
        pol.failure_interval = rules.failure_interval;
    if (present & CK_ADMIN_POL_LOCKOUT_DURATION)
        pol.lockout_duration = rules.lockout_duration;
    if ((rc = ck_store_modify_policy(b->store, &pol)) != 0)
        fail_store(r, rc, policy_what(name, what, sizeof(what)));
    else
        reply_policy(b, r, name, 200);
}

static void
op_policy_delete(struct back *b, const json_t *msg, struct reply *r)
{
    static const char *const members[] = {"op", "actor", "name", NULL};
    char what[CK_POLICY_NAME_MAX + 16];
    const char *name;
    int rc;

    check_members(msg, members);
    name = get_policy_name(msg);
    if ((rc = ck_store_delete_policy(b->store, name)) != 0)
        fail_store(r, rc, policy_what(name, what, sizeof(what)));
    else
        r->status = 204;
}

static const struct {
    const char *op;
    void (*fn)(struct back *, const json_t *, struct reply *);
} ops[] = {
    {"realm.get", op_realm},           {"principal.list", op_list},
    {"principal.get", op_get},         {"principal.create", op_create},
    {"principal.modify", op_modify},   {"principal.delete", op_delete},
    {"principal.keys", op_keys},       {"device.list", op_device_list},
    {"device.get", op_device_get},     {"principal.rename", op_rename},
    {"realm.modify", op_realm_modify}, {"principal.unlock", op_unlock},
    {"policy.list", op_policy_list},   {"policy.get", op_policy_get},
    {"policy.create", op_policy_create}, {"policy.modify", op_policy_modify},
    {"policy.delete", op_policy_delete},
};

/* One operation. This is the one place where the authenticated caller of each store operation
 * is known (b->actor): the audit log's "who is acting" call on the store handle belongs here,
 * before the dispatch. */
static void
dispatch(struct back *b, const json_t *msg, struct reply *r)
{
    const char *op = get_str(msg, "op", true);

    b->actor = get_str(msg, "actor", true);
    /* The audit log names the authenticated principal, not the daemon's OS user. */
    ck_store_set_actor(b->store, b->actor);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(op, ops[i].op) == 0) {
            ops[i].fn(b, msg, r);
            b->actor = NULL;
            return;
        }
    }
    protocol_violation("unknown operation");
}

static int
send_reply(int fd, struct reply *r)
{
    json_t *o;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (r->code != NULL)
        o = json_pack("{s:i,s:{s:s,s:s}}", "status", r->status, "error", "code", r->code,
                      "message", r->message);
    else if (r->body != NULL)
        o = json_pack("{s:i,s:O}", "status", r->status, "body", r->body);
    else
        o = json_pack("{s:i}", "status", r->status);
    rc = ck_admin_json_dump(o, &text, &len);
    json_decref(o);
    if (rc == 0)
        rc = admind_ipc_send(fd, text, len);
    free(text);
    return rc;
}

/* Op "reload" (SIGHUP in the front): the back re-reads the configuration itself and applies the
 * log destination and level, the only settings it can take without a restart. The message
 * carries no argument, so a compromised front can make the back re-read its own file, nothing
 * more. */
static void
reload(const struct admind_config *cfg, struct reply *r)
{
    struct admind_config nc;

    if (cfg->opts == NULL) {
        fail(r, 400, "bad_request", "reload: no configuration file");
        return;
    }
    if (admind_config_load(cfg->opts, &nc) != 0 ||
        ck_log_reconfigure(nc.log.dest, nc.log.path, nc.log_level) != 0)
        fail(r, 500, "internal", "%s", ck_error_context());
    else
        r->status = 200;
    admind_config_free(&nc);
}

/* The back's own start: the service user, then its log as that user, before the store. */
static int
back_setup(const struct admind_config *cfg)
{
    struct ck_daemon_user u;
    int rc;

    memset(&u, 0, sizeof(u));
    if (cfg->user != NULL) {
        if ((rc = ck_daemon_user_lookup(cfg->user, &u)) != 0 ||
            (rc = ck_daemon_drop_privileges(&u)) != 0)
            return rc;
    }
    if (cfg->opts != NULL &&
        (rc = ck_log_reconfigure(cfg->log.dest, cfg->log.path, cfg->log_level)) != 0)
        return ck_error_set(rc, "log: %s", ck_error_context());
    if (cfg->user != NULL)
        ck_log_info("[back] running as user %s (uid %u)", u.name, (unsigned)u.uid);
    return 0;
}

void
admind_back_main(const struct admind_config *cfg, int fd)
{
    struct back b = {0};
    char *buf = NULL;
    size_t len;
    int rc;

    /* The front decides when to stop: it closes the channel, and the loop below ends. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    rc = back_setup(cfg);
    /* After the drop (a change of credentials clears the parent-death signal): stop the front
     * (which may run as the same user) from reading this process's memory through ptrace or
     * /proc/PID/mem; die with the front rather than outlive it. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (getppid() == 1) /* the front died before the parent-death signal was set */
        _exit(1);
    if (rc == 0)
        rc = ck_store_open(cfg->database, cfg->stash, 0, &b.store);
    else
        rc = ck_error_set(rc, "%s", ck_error_context());
    if (rc == 0 && strcmp(ck_store_realm(b.store)->name, cfg->realm) != 0)
        rc = ck_error_set(CK_ERR_CONFIG, "the database holds realm %s, not %s",
                          ck_store_realm(b.store)->name, cfg->realm);
    if (rc != 0) {
        char msg[512], as[96] = "";
        if (cfg->user != NULL)
            snprintf(as, sizeof(as), " (as user %s)", cfg->user);
        snprintf(msg, sizeof(msg), "%s: %s: %s%s", cfg->database, ck_strerror(rc),
                 ck_error_context(), as);
        (void)admind_ipc_send(fd, msg, strlen(msg));
        _exit(1);
    }
    b.realm = ck_store_realm(b.store);
    if (admind_ipc_send(fd, "ok", 2) != 0)
        _exit(1);
    for (;;) {
        struct reply r = {0};
        json_t *msg = NULL;

        rc = admind_ipc_recv(fd, ADMIND_IPC_MAX_REQUEST, &buf, &len);
        if (rc == CK_ERR_NOTFOUND)
            break;
        if (rc != 0)
            protocol_violation(ck_error_context());
        if (ck_admin_json_parse_object(buf, len, &msg) != 0)
            protocol_violation("malformed frame");
        ck_free_secret(buf, len + 1); /* may hold a password */
        buf = NULL;
        if (json_is_string(json_object_get(msg, "op")) &&
            strcmp(json_string_value(json_object_get(msg, "op")), "reload") == 0) {
            if (json_object_size(msg) != 1)
                protocol_violation("reload takes no argument");
            reload(cfg, &r);
        } else {
            dispatch(&b, msg, &r);
        }
        json_decref(msg);
        rc = send_reply(fd, &r);
        json_decref(r.body);
        if (rc != 0) {
            ck_log_err("[back] reply: %s", ck_error_context());
            break;
        }
    }
    ck_store_close(b.store);
    _exit(0);
}
