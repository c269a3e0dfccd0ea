/* The local executor of the admin verbs (admin_ops.h): runs each request on an open ck_store.
 * A remote executor (the admin API client) implements the same table. */
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "admin_ops.h"
#include "cli.h"

const struct cli_flag cli_flags[] = {
    {"requires-preauth", "no-preauth", CK_ATTR_REQUIRES_PREAUTH, false},
    {"allow-tix", "disallow-all-tix", CK_ATTR_DISALLOW_ALL_TIX, true},
    {"forwardable", "no-forwardable", CK_ATTR_DISALLOW_FORWARDABLE, true},
    {"renewable", "no-renewable", CK_ATTR_DISALLOW_RENEWABLE, true},
    {"proxiable", "no-proxiable", CK_ATTR_DISALLOW_PROXIABLE, true},
    {"postdateable", "no-postdateable", CK_ATTR_DISALLOW_POSTDATED, true},
    {"ok-as-delegate", "no-ok-as-delegate", CK_ATTR_OK_AS_DELEGATE, false},
    {"allow-svr", "disallow-svr", CK_ATTR_DISALLOW_SVR, true},
    {"needchange", "no-needchange", CK_ATTR_REQUIRES_PWCHANGE, false},
};
const size_t cli_n_flags = sizeof(cli_flags) / sizeof(cli_flags[0]);

void
cli_flag_options(struct option *opts, size_t room, const struct option *fixed, size_t n_fixed,
                 int base)
{
    size_t n = 0;

    if (room == 0)
        return;
    for (; n < n_fixed && n + 1 < room; n++)
        opts[n] = fixed[n];
    for (size_t i = 0; i < cli_n_flags && n + 3 <= room; i++) {
        opts[n++] = (struct option){cli_flags[i].on, no_argument, NULL, base + 2 * (int)i};
        opts[n++] = (struct option){cli_flags[i].off, no_argument, NULL, base + 2 * (int)i + 1};
    }
    opts[n] = (struct option){NULL, 0, NULL, 0};
}

int
cli_flag_apply(const char *what, int c, int base, uint32_t *set_bits, uint32_t *clear_bits,
               const char **first)
{
    size_t i;
    bool on, set;
    uint32_t bit;

    if (c < base || (size_t)(c - base) / 2 >= cli_n_flags)
        return cli_usage_error(what, "unknown option");
    i = (size_t)(c - base) / 2;
    on = (c - base) % 2 == 0;
    /* "on" of a DISALLOW_* flag clears its bit. */
    set = on != cli_flags[i].on_means_clear;
    bit = cli_flags[i].bit;
    if ((set ? *clear_bits : *set_bits) & bit)
        return cli_usage_error(what, "--%s and --%s exclude each other", cli_flags[i].on,
                               cli_flags[i].off);
    if (set)
        *set_bits |= bit;
    else
        *clear_bits |= bit;
    if (first != NULL && *first == NULL)
        *first = on ? cli_flags[i].on : cli_flags[i].off;
    return CLI_OK;
}

static int
local_realm_get(void *ctx, ck_realm_info *out)
{
    *out = *ck_store_realm(ctx);
    return 0;
}

static int
local_realm_modify(void *ctx, const ck_realm_mod *mod, ck_realm_info *out)
{
    int ret = ck_store_realm_modify(ctx, mod);

    if (ret == 0 && out != NULL)
        *out = *ck_store_realm(ctx);
    return ret;
}

static int
local_princ_get(void *ctx, const char *name, ck_db_principal **out)
{
    return ck_store_get_principal(ctx, name, out);
}

struct list_filter {
    const char *pattern;
    cli_name_cb cb;
    void *arg;
};

static int
list_one(const char *name, void *arg)
{
    struct list_filter *f = arg;

    if (f->pattern != NULL && fnmatch(f->pattern, name, 0) != 0)
        return 0;
    return f->cb(name, f->arg);
}

static int
local_princ_list(void *ctx, const char *pattern, cli_name_cb cb, void *arg)
{
    struct list_filter f = {pattern, cb, arg};

    return ck_store_list_principals(ctx, list_one, &f);
}

static void
apply_fields(ck_db_principal *p, const struct cli_princ_req *req)
{
    if (req->mask & CLI_PRINC_MAX_LIFE)
        p->max_life = req->max_life;
    if (req->mask & CLI_PRINC_MAX_RENEW)
        p->max_renew = req->max_renew;
    if (req->mask & CLI_PRINC_EXPIRES)
        p->expires = req->expires;
    if (req->mask & CLI_PRINC_PW_EXPIRES)
        p->pw_expires = req->pw_expires;
    p->attributes = (p->attributes | req->attr_set) & ~req->attr_clear;
}

static int
make_keys(ck_store *store, const struct cli_princ_req *req, uint32_t kvno, ck_db_key **keys,
          size_t *n_keys)
{
    const ck_realm_info *ri = ck_store_realm(store);

    if (req->keys == CLI_KEYS_NONE)
        return ck_error_set(CK_ERR_INVAL, "principal %s: no key source", req->name);
    if (req->keys == CLI_KEYS_PASSWORD && (req->password == NULL || req->password_len == 0))
        return ck_error_set(CK_ERR_INVAL, "principal %s: empty password", req->name);
    return ck_db_keys_make(req->name, req->keys == CLI_KEYS_PASSWORD ? req->password : NULL,
                           req->keys == CLI_KEYS_PASSWORD ? req->password_len : 0,
                           req->n_enctypes ? req->enctypes : ri->enctypes,
                           req->n_enctypes ? req->n_enctypes : ri->n_enctypes, kvno, keys,
                           n_keys);
}

static int
local_princ_add(void *ctx, const struct cli_princ_req *req)
{
    ck_store *store = ctx;
    ck_db_principal *p = NULL;
    int ret;

    if ((ret = ck_db_principal_new(req->name, &p)) != 0)
        return ret;
    p->kvno = 1;
    p->attributes = ck_store_realm(store)->default_attributes;
    apply_fields(p, req);
    if ((ret = cli_policy_new_principal(store, req, p)) == 0 &&
        (ret = make_keys(store, req, 1, &p->keys, &p->n_keys)) == 0)
        ret = ck_store_create_principal(store, p);
    ck_db_principal_free(p);
    return ret;
}

static int
local_princ_modify(void *ctx, const struct cli_princ_req *req)
{
    ck_db_principal *p = NULL;
    int ret;

    if (req->mask == 0 && req->attr_set == 0 && req->attr_clear == 0)
        return ck_error_set(CK_ERR_INVAL, "principal %s: nothing to change", req->name);
    if ((req->mask & ~(unsigned)CLI_PRINC_POLICY) != 0 || req->attr_set != 0 ||
        req->attr_clear != 0) {
        if ((ret = ck_store_get_principal(ctx, req->name, &p)) != 0)
            return ret;
        apply_fields(p, req);
        ret = ck_store_update_principal(ctx, p);
        ck_db_principal_free(p);
        if (ret != 0)
            return ret;
    }
    if (req->mask & CLI_PRINC_POLICY)
        return ck_store_set_principal_policy(ctx, req->name, req->policy);
    return 0;
}

static int
local_princ_rotate(void *ctx, const struct cli_princ_req *req, uint32_t *new_kvno)
{
    ck_db_key *keys = NULL;
    size_t n_keys = 0;
    int64_t now = 0;
    int ret;

    if (req->keys == CLI_KEYS_PASSWORD) {
        /* A password change: the policy applies (the operator skips only the minimum age). */
        if (req->n_enctypes != 0 || req->keep != 0)
            return ck_error_set(CK_ERR_INVAL, "principal %s: --enctypes and --keep do not "
                                "apply with a password (the principal's enctypes are kept)",
                                req->name);
        ck_now(&now, NULL);
        return ck_store_change_password(ctx, req->name, req->password, req->password_len,
                                        CK_PW_ADMIN, now, new_kvno);
    }
    if ((ret = make_keys(ctx, req, 0, &keys, &n_keys)) == 0)
        ret = ck_store_rotate_keys(ctx, req->name, keys, n_keys, req->keep, new_kvno);
    ck_db_keys_free(keys, n_keys);
    return ret;
}

static int
local_princ_delete(void *ctx, const char *name)
{
    ck_store *store = ctx;
    ck_principal *p = NULL;
    bool tgs;

    /* Without its own krbtgt the realm issues no tickets; rotate it instead. */
    tgs = ck_principal_parse(name, NULL, 0, &p) == 0 &&
          ck_principal_is_tgs(p, ck_store_realm(store)->name);
    ck_principal_free(p);
    if (tgs)
        return ck_error_set(CK_ERR_POLICY, "refusing to delete the realm's own %s", name);
    return ck_store_delete_principal(store, name);
}

static int
local_princ_rename(void *ctx, const char *old_name, const char *new_name)
{
    return ck_store_rename_principal(ctx, old_name, new_name);
}

static int
local_princ_unlock(void *ctx, const char *name)
{
    return ck_store_unlock_principal(ctx, name);
}

static int
local_policy_get(void *ctx, const char *name, ck_policy *out)
{
    return ck_store_get_policy(ctx, name, out);
}

struct policy_names {
    cli_name_cb cb;
    void *arg;
};

static int
policy_name_cb(const ck_policy *pol, void *arg)
{
    const struct policy_names *pn = arg;

    return pn->cb(pol->name, pn->arg);
}

static int
local_policy_list(void *ctx, cli_name_cb cb, void *arg)
{
    struct policy_names pn = {cb, arg};

    return ck_store_list_policies(ctx, policy_name_cb, &pn);
}

static int
local_policy_add(void *ctx, const ck_policy *pol)
{
    return ck_store_create_policy(ctx, pol);
}

static int
local_policy_modify(void *ctx, const char *name, const ck_policy *rules, unsigned present)
{
    ck_policy pol;
    int ret;

    if (present == 0)
        return ck_error_set(CK_ERR_INVAL, "policy %s: nothing to change", name);
    if ((ret = ck_store_get_policy(ctx, name, &pol)) != 0)
        return ret;
    cli_policy_apply_rules(&pol, rules, present);
    return ck_store_modify_policy(ctx, &pol);
}

static int
local_policy_delete(void *ctx, const char *name)
{
    return ck_store_delete_policy(ctx, name);
}

static int
local_device_get(void *ctx, const char *mac, ck_db_device **out)
{
    return ck_store_get_device(ctx, mac, out);
}

static int
local_device_list(void *ctx, const char *principal, const char *after, size_t limit,
                  ck_store_device_cb cb, void *arg, size_t *n)
{
    return ck_store_list_devices(ctx, principal, after, limit, cb, arg, n);
}

const struct cli_admin_ops cli_admin_local = {
    .realm_get = local_realm_get,
    .realm_modify = local_realm_modify,
    .princ_get = local_princ_get,
    .princ_list = local_princ_list,
    .princ_add = local_princ_add,
    .princ_modify = local_princ_modify,
    .princ_rotate = local_princ_rotate,
    .princ_delete = local_princ_delete,
    .princ_rename = local_princ_rename,
    .princ_unlock = local_princ_unlock,
    .policy_get = local_policy_get,
    .policy_list = local_policy_list,
    .policy_add = local_policy_add,
    .policy_modify = local_policy_modify,
    .policy_delete = local_policy_delete,
    .device_get = local_device_get,
    .device_list = local_device_list,
};
