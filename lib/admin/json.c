/* JSON codec of the admin API (shapes in docs/cablekey-admind.md).
 *
 * Decoders are strict on purpose: the same functions check what an HTTP client sent and what the
 * daemon's back process receives from the front, so anything they let through reaches the
 * store. Unknown members are errors rather than ignored, so that a client misspelling "expires"
 * learns it instead of silently changing nothing. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/profile.h"
#include "cablekey/util.h"

#define MAX_TIME 253402300799LL /* 9999-12-31T23:59:59Z */

static const struct {
    uint32_t bit;
    const char *name;
} flag_names[] = {
    {CK_ATTR_DISALLOW_POSTDATED, "disallow_postdated"},
    {CK_ATTR_DISALLOW_FORWARDABLE, "disallow_forwardable"},
    {CK_ATTR_DISALLOW_TGT_BASED, "disallow_tgt_based"},
    {CK_ATTR_DISALLOW_RENEWABLE, "disallow_renewable"},
    {CK_ATTR_DISALLOW_PROXIABLE, "disallow_proxiable"},
    {CK_ATTR_DISALLOW_DUP_SKEY, "disallow_dup_skey"},
    {CK_ATTR_DISALLOW_ALL_TIX, "disallow_all_tix"},
    {CK_ATTR_REQUIRES_PREAUTH, "requires_preauth"},
    {CK_ATTR_REQUIRES_HW_AUTH, "requires_hwauth"},
    {CK_ATTR_REQUIRES_PWCHANGE, "requires_pwchange"},
    {CK_ATTR_DISALLOW_SVR, "disallow_svr"},
    {CK_ATTR_PWCHANGE_SERVICE, "pwchange_service"},
    {CK_ATTR_OK_AS_DELEGATE, "ok_as_delegate"},
    {CK_ATTR_OK_TO_AUTH_AS_DELEGATE, "ok_to_auth_as_delegate"},
    {CK_ATTR_NO_AUTH_DATA_REQUIRED, "no_auth_data_required"},
    {CK_ATTR_LOCKDOWN_KEYS, "lockdown_keys"},
};
#define N_FLAGS (sizeof(flag_names) / sizeof(flag_names[0]))

const char *
ck_admin_flag_name(uint32_t bit)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        if (flag_names[i].bit == bit)
            return flag_names[i].name;
    return NULL;
}

int
ck_admin_flag_from_name(const char *name, uint32_t *bit)
{
    for (size_t i = 0; i < N_FLAGS; i++) {
        if (strcmp(flag_names[i].name, name) == 0) {
            *bit = flag_names[i].bit;
            return 0;
        }
    }
    return ck_error_set(CK_ERR_DECODE, "unknown flag \"%.64s\"", name);
}

static uint32_t
known_flags(void)
{
    uint32_t m = 0;

    for (size_t i = 0; i < N_FLAGS; i++)
        m |= flag_names[i].bit;
    return m;
}

/* ------------------------------------------------------------------ secure allocation */

/* jansson frees without a size, so each block carries its size in a header that keeps the
 * payload aligned for any type. */
#define HDR 16

static void *
secure_malloc(size_t n)
{
    unsigned char *p;

    if (n > SIZE_MAX - HDR || (p = malloc(n + HDR)) == NULL)
        return NULL;
    memcpy(p, &n, sizeof(n));
    return p + HDR;
}

static void
secure_free(void *ptr)
{
    unsigned char *p;
    size_t n;

    if (ptr == NULL)
        return;
    p = (unsigned char *)ptr - HDR;
    memcpy(&n, p, sizeof(n));
    ck_free_secret(p, n + HDR);
}

void
ck_admin_json_secure_alloc(void)
{
    json_set_alloc_funcs(secure_malloc, secure_free);
}

/* ------------------------------------------------------------------ helpers */

static int
dec_err(const char *member, const char *what)
{
    return ck_error_set(CK_ERR_DECODE, "\"%s\": %s", member, what);
}

/* Every member of obj must be named in allowed (NULL-terminated). */
static int
check_members(const json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v) {
        bool ok = false;
        (void)v;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok)
            return ck_error_set(CK_ERR_DECODE, "unknown member \"%.64s\"", key);
    }
    return 0;
}

static int
get_int(const json_t *obj, const char *member, int64_t min, int64_t max, int64_t *out)
{
    const json_t *v = json_object_get(obj, member);
    json_int_t i;

    if (!json_is_integer(v))
        return dec_err(member, "must be an integer");
    i = json_integer_value(v);
    if (i < min || i > max)
        return dec_err(member, "out of range");
    *out = i;
    return 0;
}

/* A time: null (never: 0) or epoch seconds. */
static int
get_time(const json_t *obj, const char *member, int64_t *out)
{
    if (json_is_null(json_object_get(obj, member))) {
        *out = 0;
        return 0;
    }
    return get_int(obj, member, 1, MAX_TIME, out);
}

static json_t *
time_json(int64_t t)
{
    return t == 0 ? json_null() : json_integer(t);
}

/* Sets member to a new reference; false on allocation failure (v is consumed either way). */
static bool
set(json_t *obj, const char *member, json_t *v)
{
    return v != NULL && json_object_set_new(obj, member, v) == 0;
}

static int
enctypes_from_json(const json_t *arr, int32_t *out, size_t *n_out)
{
    size_t i;
    json_t *v;

    if (!json_is_array(arr))
        return dec_err("enctypes", "must be an array of enctype names");
    if (json_array_size(arr) == 0 || json_array_size(arr) > CK_STORE_MAX_ENCTYPES)
        return dec_err("enctypes", "must name 1 to 8 enctypes");
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || ck_enctype_from_name(json_string_value(v), &out[i]) != 0 ||
            !ck_enctype_is_supported(out[i]))
            return dec_err("enctypes", "unknown or unsupported enctype");
        for (size_t j = 0; j < i; j++)
            if (out[j] == out[i])
                return dec_err("enctypes", "duplicate enctype");
    }
    *n_out = json_array_size(arr);
    return 0;
}

static json_t *
enctypes_to_json(const int32_t *e, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr != NULL && i < n; i++) {
        if (json_array_append_new(arr, json_string(ck_enctype_name(e[i]))) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* Salts: lower-case hex (they may hold any byte; JSON strings must be UTF-8). */
#define MAX_SALT 1024

static json_t *
hex_json(const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s;
    json_t *v;

    if (n > MAX_SALT || (s = malloc(2 * n + 1)) == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[b[i] >> 4];
        s[2 * i + 1] = digits[b[i] & 0xf];
    }
    s[2 * n] = '\0';
    v = json_stringn(s, 2 * n);
    free(s);
    return v;
}

static int
hex_from_json(const json_t *v, const char *member, uint8_t **out, size_t *n_out)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    uint8_t *b;

    if (!json_is_string(v) || len == 0 || len % 2 != 0 || len > 2 * MAX_SALT)
        return dec_err(member, "must be an even number of hex digits (at most 2048)");
    if ((b = malloc(len / 2)) == NULL)
        return CK_ERR_NOMEM;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = ck_hex_digit((unsigned char)s[2 * i]), lo = ck_hex_digit((unsigned char)s[2 * i + 1]);
        /* Lower case only, so that one salt has one spelling. */
        if (hi < 0 || lo < 0 || (s[2 * i] >= 'A' && s[2 * i] <= 'F') ||
            (s[2 * i + 1] >= 'A' && s[2 * i + 1] <= 'F')) {
            free(b);
            return dec_err(member, "must be lower-case hex digits");
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *n_out = len / 2;
    return 0;
}

/* ------------------------------------------------------------------ principals */

json_t *
ck_admin_principal_to_json(const ck_db_principal *p)
{
    json_t *o = json_object(), *flags = json_array(), *keys = json_array();
    uint32_t unknown = p->attributes & ~known_flags();

    /* flags and keys are owned by o from here on (set consumes them even on failure). */
    if (!set(o, "flags", flags)) {
        json_decref(keys);
        goto fail;
    }
    if (!set(o, "keys", keys))
        goto fail;
    for (size_t i = 0; i < N_FLAGS; i++)
        if ((p->attributes & flag_names[i].bit) &&
            json_array_append_new(flags, json_string(flag_names[i].name)) != 0)
            goto fail;
    for (size_t i = 0; i < p->n_keys; i++) {
        const ck_db_key *k = &p->keys[i];
        json_t *ko = json_pack("{s:I,s:s,s:i}", "kvno", (json_int_t)k->kvno, "enctype",
                               ck_enctype_name(k->enctype), "salt_type", (int)k->salt_type);
        if (ko == NULL || json_array_append_new(keys, ko) != 0)
            goto fail;
        /* The salt is public (any client gets it in ETYPE-INFO2) and `principal show` prints
         * it, so a remote show can print what a local one does. */
        if (k->salt_len > 0 && !set(ko, "salt", hex_json(k->salt, k->salt_len)))
            goto fail;
    }
    if (!set(o, "name", json_string(p->name)) || !set(o, "kvno", json_integer(p->kvno)) ||
        (unknown != 0 && !set(o, "unknown_flags", json_integer(unknown))) ||
        !set(o, "max_life", json_integer(p->max_life)) ||
        !set(o, "max_renew", json_integer(p->max_renew)) ||
        !set(o, "expires", time_json(p->expires)) ||
        !set(o, "pw_expires", time_json(p->pw_expires)) ||
        !set(o, "created", json_integer(p->created)) ||
        !set(o, "modified", json_integer(p->modified)) ||
        !set(o, "policy", p->policy != NULL ? json_string(p->policy) : json_null()) ||
        !set(o, "last_password_change", time_json(p->last_pwd_change)) ||
        !set(o, "lockout", json_pack("{s:I,s:o,s:o,s:I,s:I,s:I}", "failed_attempts",
                                     (json_int_t)p->lockout.fail_count, "last_failed",
                                     time_json(p->lockout.last_failed), "last_success",
                                     time_json(p->lockout.last_success), "max_failure",
                                     (json_int_t)p->lockout.max_failure, "failure_interval",
                                     (json_int_t)p->lockout.failure_interval,
                                     "lockout_duration",
                                     (json_int_t)p->lockout.lockout_duration)))
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* The lockout state as read with the record (what `principal show` prints); the epoch stays
 * inside the store. */
static int
lockout_from_json(const json_t *lo, ck_db_lockout *l)
{
    static const char *const members[] = {"failed_attempts", "last_failed", "last_success",
                                          "max_failure", "failure_interval",
                                          "lockout_duration", NULL};
    int64_t v;
    int rc;

    if (!json_is_object(lo))
        return dec_err("lockout", "must be an object");
    if ((rc = check_members(lo, members)) != 0)
        return rc;
    if ((rc = get_int(lo, "failed_attempts", 0, UINT32_MAX, &v)) != 0)
        return rc;
    l->fail_count = (uint32_t)v;
    if ((rc = get_time(lo, "last_failed", &l->last_failed)) != 0 ||
        (rc = get_time(lo, "last_success", &l->last_success)) != 0 ||
        (rc = get_int(lo, "max_failure", 0, UINT32_MAX, &v)) != 0)
        return rc;
    l->max_failure = (uint32_t)v;
    if ((rc = get_int(lo, "failure_interval", 0, CK_PROFILE_MAX_DURATION,
                      &l->failure_interval)) != 0 ||
        (rc = get_int(lo, "lockout_duration", 0, CK_PROFILE_MAX_DURATION,
                      &l->lockout_duration)) != 0)
        return rc;
    return 0;
}

static int
flags_list_from_json(const json_t *arr, const char *member, uint32_t *out)
{
    size_t i;
    json_t *v;
    uint32_t bit;
    int rc;

    *out = 0;
    if (!json_is_array(arr))
        return dec_err(member, "must be an array of flag names");
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v))
            return dec_err(member, "must be an array of flag names");
        if ((rc = ck_admin_flag_from_name(json_string_value(v), &bit)) != 0)
            return rc;
        *out |= bit;
    }
    return 0;
}

static int
key_from_json(const json_t *ko, ck_db_key *k)
{
    static const char *const members[] = {"kvno", "enctype", "salt_type", "salt", NULL};
    const json_t *et = json_object_get(ko, "enctype");
    int64_t v;
    int rc;

    if (!json_is_object(ko))
        return dec_err("keys", "must be an array of objects");
    if ((rc = check_members(ko, members)) != 0)
        return rc;
    if ((rc = get_int(ko, "kvno", 1, UINT32_MAX, &v)) != 0)
        return rc;
    k->kvno = (uint32_t)v;
    if (!json_is_string(et) || ck_enctype_from_name(json_string_value(et), &k->enctype) != 0)
        return dec_err("enctype", "unknown enctype");
    k->key.enctype = k->enctype;
    if ((rc = get_int(ko, "salt_type", 0, INT32_MAX, &v)) != 0)
        return rc;
    k->salt_type = (int32_t)v;
    if (json_object_get(ko, "salt") != NULL)
        return hex_from_json(json_object_get(ko, "salt"), "salt", &k->salt, &k->salt_len);
    return 0;
}

int
ck_admin_principal_from_json(const json_t *o, ck_db_principal **out)
{
    static const char *const members[] = {"name", "kvno", "flags", "unknown_flags", "max_life",
                                          "max_renew", "expires", "pw_expires", "created",
                                          "modified", "keys", "policy", "last_password_change",
                                          "lockout", NULL};
    ck_db_principal *p = NULL;
    const json_t *name = json_object_get(o, "name"), *keys, *pol;
    int64_t v;
    uint32_t flags;
    int rc;

    *out = NULL;
    if (!json_is_object(o))
        return ck_error_set(CK_ERR_DECODE, "principal: not a JSON object");
    if ((rc = check_members(o, members)) != 0)
        return rc;
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        strlen(json_string_value(name)) != json_string_length(name))
        return dec_err("name", "must be a non-empty string");
    if ((rc = ck_db_principal_new(json_string_value(name), &p)) != 0)
        return rc;
    if ((rc = get_int(o, "kvno", 0, UINT32_MAX, &v)) != 0)
        goto out;
    p->kvno = (uint32_t)v;
    if ((rc = flags_list_from_json(json_object_get(o, "flags"), "flags", &flags)) != 0)
        goto out;
    p->attributes = flags;
    if (json_object_get(o, "unknown_flags") != NULL) {
        if ((rc = get_int(o, "unknown_flags", 1, UINT32_MAX, &v)) != 0)
            goto out;
        if ((uint32_t)v & known_flags()) {
            rc = dec_err("unknown_flags", "holds a named flag");
            goto out;
        }
        p->attributes |= (uint32_t)v;
    }
    if ((rc = get_int(o, "max_life", 0, CK_PROFILE_MAX_DURATION, &p->max_life)) != 0 ||
        (rc = get_int(o, "max_renew", 0, CK_PROFILE_MAX_DURATION, &p->max_renew)) != 0 ||
        (rc = get_time(o, "expires", &p->expires)) != 0 ||
        (rc = get_time(o, "pw_expires", &p->pw_expires)) != 0 ||
        (rc = get_int(o, "created", 0, MAX_TIME, &p->created)) != 0 ||
        (rc = get_int(o, "modified", 0, MAX_TIME, &p->modified)) != 0)
        goto out;
    /* Policy and lockout (since the password policies): absent from older daemons. */
    if ((pol = json_object_get(o, "policy")) != NULL && !json_is_null(pol)) {
        if (!json_is_string(pol) || strlen(json_string_value(pol)) != json_string_length(pol) ||
            ck_policy_name_check(json_string_value(pol)) != 0) {
            rc = dec_err("policy", "must be a policy name or null");
            goto out;
        }
        if ((p->policy = strdup(json_string_value(pol))) == NULL) {
            rc = CK_ERR_NOMEM;
            goto out;
        }
    }
    if (json_object_get(o, "last_password_change") != NULL &&
        (rc = get_time(o, "last_password_change", &p->last_pwd_change)) != 0)
        goto out;
    if (json_object_get(o, "lockout") != NULL &&
        (rc = lockout_from_json(json_object_get(o, "lockout"), &p->lockout)) != 0)
        goto out;
    keys = json_object_get(o, "keys");
    if (!json_is_array(keys) || json_array_size(keys) > CK_STORE_MAX_KEYS) {
        rc = dec_err("keys", "must be an array of at most 64 key descriptions");
        goto out;
    }
    if (json_array_size(keys) > 0) {
        if ((p->keys = calloc(json_array_size(keys), sizeof(*p->keys))) == NULL) {
            rc = CK_ERR_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < json_array_size(keys); i++) {
            if ((rc = key_from_json(json_array_get(keys, i), &p->keys[i])) != 0)
                goto out;
            p->n_keys++;
        }
    }
    *out = p;
    p = NULL;
out:
    ck_db_principal_free(p);
    return rc;
}

/* ------------------------------------------------------------------ realm and devices */

/* The names of the set bits in flags; the bits without a name are left to the caller. */
static json_t *
flags_list_to_json(uint32_t flags)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr != NULL && i < N_FLAGS; i++) {
        if ((flags & flag_names[i].bit) &&
            json_array_append_new(arr, json_string(flag_names[i].name)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

json_t *
ck_admin_realm_to_json(const ck_realm_info *r)
{
    uint32_t unknown = r->default_attributes & ~known_flags();
    json_t *o = json_pack("{s:s,s:o,s:I,s:I,s:I,s:o}", "name", r->name, "enctypes",
                          enctypes_to_json(r->enctypes, r->n_enctypes), "max_life",
                          (json_int_t)r->max_life, "max_renew", (json_int_t)r->max_renew,
                          "master_kvno", (json_int_t)r->master_kvno, "default_flags",
                          flags_list_to_json(r->default_attributes));

    if (o != NULL && unknown != 0 && !set(o, "unknown_default_flags", json_integer(unknown))) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* "flags" (a list of names) and the optional bits without a name, as in a principal record. */
static int
attributes_from_json(const json_t *o, const char *list_member, const char *unknown_member,
                     uint32_t *out)
{
    const json_t *u = json_object_get(o, unknown_member);
    int64_t v;
    int rc;

    if ((rc = flags_list_from_json(json_object_get(o, list_member), list_member, out)) != 0)
        return rc;
    if (u == NULL)
        return 0;
    if ((rc = get_int(o, unknown_member, 1, UINT32_MAX, &v)) != 0)
        return rc;
    if ((uint32_t)v & known_flags())
        return dec_err(unknown_member, "holds a named flag");
    *out |= (uint32_t)v;
    return 0;
}

json_t *
ck_admin_device_to_json(const ck_db_device *dev)
{
    char pin[2 * CK_DEVICE_SPKI_HASH_LEN + 1];

    if (dev->has_pin)
        ck_device_pin_format_hex(dev->spki_sha256, pin);
    return json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:o,s:s}", "mac", dev->mac, "principal",
                     dev->principal != NULL ? dev->principal : "", "state",
                     ck_device_state_name(dev->state), "pin",
                     dev->has_pin ? json_string(pin) : json_null(), "created",
                     (json_int_t)dev->created, "modified", (json_int_t)dev->modified, "revoked",
                     time_json(dev->revoked), "comment",
                     dev->comment != NULL ? dev->comment : "");
}

/* ------------------------------------------------------------------ requests */

void
ck_admin_principal_req_clear(struct ck_admin_principal_req *req)
{
    if (req == NULL)
        return;
    if (req->password != NULL)
        ck_free_secret(req->password, req->password_len + 1);
    ck_memzero(req, sizeof(*req));
}

static int
flags_obj_from_json(const json_t *obj, uint32_t *set_out, uint32_t *clear_out)
{
    const char *key;
    json_t *v;
    uint32_t bit;
    int rc;

    if (!json_is_object(obj))
        return dec_err("flags", "must be an object of flag names to true/false");
    json_object_foreach((json_t *)obj, key, v) {
        if ((rc = ck_admin_flag_from_name(key, &bit)) != 0)
            return rc;
        if (!json_is_boolean(v))
            return dec_err("flags", "values must be true or false");
        if (json_is_true(v))
            *set_out |= bit;
        else
            *clear_out |= bit;
    }
    if (*set_out == 0 && *clear_out == 0)
        return dec_err("flags", "is empty");
    return 0;
}

int
ck_admin_request_from_json(enum ck_admin_req_kind kind, const json_t *o,
                           struct ck_admin_principal_req *req)
{
    static const char *const create_m[] = {"password", "random_key", "max_life", "max_renew",
                                           "expires", "pw_expires", "flags", "enctypes",
                                           "policy", NULL};
    static const char *const modify_m[] = {"max_life", "max_renew", "expires", "pw_expires",
                                           "flags", "policy", NULL};
    static const char *const keys_m[] = {"password", "random_key", "enctypes", "keep", NULL};
    const json_t *v;
    int64_t i;
    int rc;

    ck_admin_principal_req_clear(req);
    req->kind = kind;
    if (!json_is_object(o))
        return ck_error_set(CK_ERR_DECODE, "request: not a JSON object");
    switch (kind) {
    case CK_ADMIN_REQ_CREATE: rc = check_members(o, create_m); break;
    case CK_ADMIN_REQ_MODIFY: rc = check_members(o, modify_m); break;
    case CK_ADMIN_REQ_KEYS: rc = check_members(o, keys_m); break;
    default: return ck_error_set(CK_ERR_INVAL, "request: unknown kind");
    }
    if (rc != 0)
        return rc;
    if (json_object_get(o, "max_life") != NULL) {
        if ((rc = get_int(o, "max_life", 0, CK_PROFILE_MAX_DURATION, &req->max_life)) != 0)
            goto out;
        req->present |= CK_ADMIN_REQ_MAX_LIFE;
    }
    if (json_object_get(o, "max_renew") != NULL) {
        if ((rc = get_int(o, "max_renew", 0, CK_PROFILE_MAX_DURATION, &req->max_renew)) != 0)
            goto out;
        req->present |= CK_ADMIN_REQ_MAX_RENEW;
    }
    if (json_object_get(o, "expires") != NULL) {
        if ((rc = get_time(o, "expires", &req->expires)) != 0)
            goto out;
        req->present |= CK_ADMIN_REQ_EXPIRES;
    }
    if (json_object_get(o, "pw_expires") != NULL) {
        if ((rc = get_time(o, "pw_expires", &req->pw_expires)) != 0)
            goto out;
        req->present |= CK_ADMIN_REQ_PW_EXPIRES;
    }
    if ((v = json_object_get(o, "flags")) != NULL) {
        if ((rc = flags_obj_from_json(v, &req->flags_set, &req->flags_clear)) != 0)
            goto out;
        req->present |= CK_ADMIN_REQ_FLAGS;
    }
    if ((v = json_object_get(o, "enctypes")) != NULL) {
        if ((rc = enctypes_from_json(v, req->enctypes, &req->n_enctypes)) != 0)
            goto out;
        req->present |= CK_ADMIN_REQ_ENCTYPES;
    }
    if (json_object_get(o, "keep") != NULL) {
        if ((rc = get_int(o, "keep", 1, CK_STORE_MAX_KEYS, &i)) != 0)
            goto out;
        req->keep = (uint32_t)i;
        req->present |= CK_ADMIN_REQ_KEEP;
    }
    if ((v = json_object_get(o, "policy")) != NULL) {
        /* A name attaches that policy, null detaches (create: not even "default"). */
        if (!json_is_null(v)) {
            if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
                ck_policy_name_check(json_string_value(v)) != 0) {
                rc = dec_err("policy", "must be a policy name or null");
                goto out;
            }
            ck_strlcpy(req->policy, json_string_value(v), sizeof(req->policy));
        }
        req->present |= CK_ADMIN_REQ_POLICY;
    }
    if ((v = json_object_get(o, "random_key")) != NULL) {
        if (!json_is_true(v)) {
            rc = dec_err("random_key", "must be true when present");
            goto out;
        }
        req->random_key = true;
    }
    if ((v = json_object_get(o, "password")) != NULL) {
        size_t len = json_string_length(v);
        if (!json_is_string(v) || len == 0 || len > CK_ADMIN_PASSWORD_MAX ||
            strlen(json_string_value(v)) != len) {
            rc = dec_err("password", "must be a string of 1 to 1024 bytes without NUL");
            goto out;
        }
        if ((req->password = ck_memdup(json_string_value(v), len + 1)) == NULL) {
            rc = CK_ERR_NOMEM;
            goto out;
        }
        req->password_len = len;
    }
    if (kind != CK_ADMIN_REQ_MODIFY && req->random_key == (req->password != NULL)) {
        rc = ck_error_set(CK_ERR_DECODE, "give exactly one of \"password\" and \"random_key\"");
        goto out;
    }
    if (kind == CK_ADMIN_REQ_MODIFY && req->present == 0) {
        rc = ck_error_set(CK_ERR_DECODE, "nothing to modify");
        goto out;
    }
    if ((req->flags_set & req->flags_clear) != 0) {
        rc = dec_err("flags", "a flag is both set and cleared");
        goto out;
    }
    return 0;
out:
    ck_admin_principal_req_clear(req);
    return rc;
}

json_t *
ck_admin_request_to_json(const struct ck_admin_principal_req *req)
{
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    if (((req->present & CK_ADMIN_REQ_MAX_LIFE) &&
         !set(o, "max_life", json_integer(req->max_life))) ||
        ((req->present & CK_ADMIN_REQ_MAX_RENEW) &&
         !set(o, "max_renew", json_integer(req->max_renew))) ||
        ((req->present & CK_ADMIN_REQ_EXPIRES) && !set(o, "expires", time_json(req->expires))) ||
        ((req->present & CK_ADMIN_REQ_PW_EXPIRES) &&
         !set(o, "pw_expires", time_json(req->pw_expires))) ||
        ((req->present & CK_ADMIN_REQ_ENCTYPES) &&
         !set(o, "enctypes", enctypes_to_json(req->enctypes, req->n_enctypes))) ||
        ((req->present & CK_ADMIN_REQ_KEEP) && !set(o, "keep", json_integer(req->keep))) ||
        ((req->present & CK_ADMIN_REQ_POLICY) &&
         !set(o, "policy", req->policy[0] != '\0' ? json_string(req->policy) : json_null())) ||
        (req->random_key && !set(o, "random_key", json_true())) ||
        (req->password != NULL &&
         !set(o, "password", json_stringn(req->password, req->password_len))))
        goto fail;
    if (req->present & CK_ADMIN_REQ_FLAGS) {
        json_t *f = json_object();
        if (!set(o, "flags", f))
            goto fail;
        for (size_t i = 0; i < N_FLAGS; i++) {
            if ((req->flags_set & flag_names[i].bit) &&
                !set(f, flag_names[i].name, json_true()))
                goto fail;
            if ((req->flags_clear & flag_names[i].bit) &&
                !set(f, flag_names[i].name, json_false()))
                goto fail;
        }
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* ------------------------------------------------------------------ realm changes, rename */

json_t *
ck_admin_realm_mod_to_json(const ck_realm_mod *mod)
{
    json_t *o = json_object();
    uint32_t unknown = mod->default_attributes & ~known_flags();

    if (o == NULL)
        return NULL;
    if (((mod->mask & CK_REALM_MOD_MAX_LIFE) && !set(o, "max_life", json_integer(mod->max_life))) ||
        ((mod->mask & CK_REALM_MOD_MAX_RENEW) &&
         !set(o, "max_renew", json_integer(mod->max_renew))) ||
        ((mod->mask & CK_REALM_MOD_ENCTYPES) &&
         !set(o, "enctypes", enctypes_to_json(mod->enctypes, mod->n_enctypes))) ||
        ((mod->mask & CK_REALM_MOD_DEFAULT_ATTRIBUTES) &&
         (!set(o, "default_flags", flags_list_to_json(mod->default_attributes)) ||
          (unknown != 0 && !set(o, "unknown_default_flags", json_integer(unknown)))))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int
ck_admin_realm_mod_from_json(const json_t *o, ck_realm_mod *out)
{
    static const char *const members[] = {"max_life", "max_renew", "enctypes", "default_flags",
                                          "unknown_default_flags", NULL};
    const json_t *v;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(o))
        return ck_error_set(CK_ERR_DECODE, "realm change: not a JSON object");
    if ((rc = check_members(o, members)) != 0)
        goto fail;
    if (json_object_get(o, "max_life") != NULL) {
        if ((rc = get_int(o, "max_life", 1, CK_REALM_LIFE_MAX, &out->max_life)) != 0)
            goto fail;
        out->mask |= CK_REALM_MOD_MAX_LIFE;
    }
    if (json_object_get(o, "max_renew") != NULL) {
        if ((rc = get_int(o, "max_renew", 1, CK_REALM_LIFE_MAX, &out->max_renew)) != 0)
            goto fail;
        out->mask |= CK_REALM_MOD_MAX_RENEW;
    }
    if ((v = json_object_get(o, "enctypes")) != NULL) {
        if ((rc = enctypes_from_json(v, out->enctypes, &out->n_enctypes)) != 0)
            goto fail;
        out->mask |= CK_REALM_MOD_ENCTYPES;
    }
    if (json_object_get(o, "unknown_default_flags") != NULL &&
        json_object_get(o, "default_flags") == NULL) {
        rc = dec_err("unknown_default_flags", "only with \"default_flags\"");
        goto fail;
    }
    /* The whole set, not a change: what `realm show` printed, edited. */
    if (json_object_get(o, "default_flags") != NULL) {
        if ((rc = attributes_from_json(o, "default_flags", "unknown_default_flags",
                                       &out->default_attributes)) != 0)
            goto fail;
        out->mask |= CK_REALM_MOD_DEFAULT_ATTRIBUTES;
    }
    if (out->mask == 0) {
        rc = ck_error_set(CK_ERR_DECODE, "nothing to modify");
        goto fail;
    }
    return 0;
fail:
    memset(out, 0, sizeof(*out));
    return rc;
}

int
ck_admin_rename_from_json(const json_t *o, char **new_name)
{
    static const char *const members[] = {"new_name", NULL};
    const json_t *v;
    int rc;

    *new_name = NULL;
    if (!json_is_object(o))
        return ck_error_set(CK_ERR_DECODE, "rename: not a JSON object");
    if ((rc = check_members(o, members)) != 0)
        return rc;
    v = json_object_get(o, "new_name");
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) >= CK_PRINCIPAL_MAX_TEXT ||
        strlen(json_string_value(v)) != json_string_length(v))
        return dec_err("new_name", "must be a principal name");
    if ((*new_name = strdup(json_string_value(v))) == NULL)
        return CK_ERR_NOMEM;
    return 0;
}

/* ------------------------------------------------------------------ text API */

static int
parse_bounded(const char *text, size_t len, size_t max, json_t **out)
{
    json_error_t jerr;
    json_t *o;

    *out = NULL;
    if (len > max)
        return ck_error_set(CK_ERR_LIMIT, "JSON larger than %zu bytes", max);
    o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL)
        return ck_error_set(CK_ERR_DECODE, "malformed JSON at line %d column %d: %.80s",
                            jerr.line, jerr.column, jerr.text);
    if (!json_is_object(o)) {
        json_decref(o);
        return ck_error_set(CK_ERR_DECODE, "JSON: expected an object");
    }
    *out = o;
    return 0;
}

int
ck_admin_json_parse_object(const char *text, size_t len, json_t **out)
{
    return parse_bounded(text, len, CK_ADMIN_JSON_MAX, out);
}

int
ck_admin_json_dump(const json_t *obj, char **out, size_t *out_len)
{
    const size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII;
    size_t n;

    *out = NULL;
    *out_len = 0;
    if (obj == NULL)
        return CK_ERR_NOMEM;
    /* Into our own buffer rather than json_dumps', so callers free it as any other. */
    if ((n = json_dumpb(obj, NULL, 0, flags)) == 0 || (*out = malloc(n + 1)) == NULL)
        return CK_ERR_NOMEM;
    if (json_dumpb(obj, *out, n, flags) != n) {
        ck_free_secret(*out, n + 1);
        *out = NULL;
        return CK_ERR_ENCODE;
    }
    (*out)[n] = '\0';
    *out_len = n;
    return 0;
}

static int
dump_new(json_t *o, char **out)
{
    size_t len;
    int rc = ck_admin_json_dump(o, out, &len);

    json_decref(o);
    return rc;
}

int
ck_admin_json_encode_principal(const ck_db_principal *p, char **out)
{
    return dump_new(ck_admin_principal_to_json(p), out);
}

int
ck_admin_json_decode_principal(const char *text, size_t len, ck_db_principal **out)
{
    json_t *o;
    int rc;

    *out = NULL;
    if ((rc = ck_admin_json_parse_object(text, len, &o)) != 0)
        return rc;
    rc = ck_admin_principal_from_json(o, out);
    json_decref(o);
    return rc;
}

int
ck_admin_json_encode_realm(const ck_realm_info *r, char **out)
{
    return dump_new(ck_admin_realm_to_json(r), out);
}

int
ck_admin_json_decode_realm(const char *text, size_t len, ck_realm_info *out)
{
    static const char *const members[] = {"name", "enctypes", "max_life", "max_renew",
                                          "master_kvno", "default_flags",
                                          "unknown_default_flags", NULL};
    json_t *o;
    const json_t *name;
    int64_t v;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = ck_admin_json_parse_object(text, len, &o)) != 0)
        return rc;
    if ((rc = check_members(o, members)) != 0)
        goto out;
    name = json_object_get(o, "name");
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) >= sizeof(out->name) ||
        strlen(json_string_value(name)) != json_string_length(name)) {
        rc = dec_err("name", "must be a realm name");
        goto out;
    }
    ck_strlcpy(out->name, json_string_value(name), sizeof(out->name));
    if ((rc = enctypes_from_json(json_object_get(o, "enctypes"), out->enctypes,
                                 &out->n_enctypes)) != 0 ||
        (rc = get_int(o, "max_life", 0, CK_PROFILE_MAX_DURATION, &out->max_life)) != 0 ||
        (rc = get_int(o, "max_renew", 0, CK_PROFILE_MAX_DURATION, &out->max_renew)) != 0 ||
        (rc = get_int(o, "master_kvno", 0, UINT32_MAX, &v)) != 0 ||
        (rc = attributes_from_json(o, "default_flags", "unknown_default_flags",
                                   &out->default_attributes)) != 0)
        goto out;
    out->master_kvno = (uint32_t)v;
out:
    json_decref(o);
    return rc;
}

int
ck_admin_json_decode_request(enum ck_admin_req_kind kind, const char *text, size_t len,
                             struct ck_admin_principal_req *out)
{
    json_t *o;
    int rc;

    ck_admin_principal_req_clear(out);
    if ((rc = ck_admin_json_parse_object(text, len, &o)) != 0)
        return rc;
    rc = ck_admin_request_from_json(kind, o, out);
    json_decref(o);
    return rc;
}

int
ck_admin_json_encode_request(const struct ck_admin_principal_req *req, char **out,
                             size_t *out_len)
{
    json_t *o = ck_admin_request_to_json(req);
    int rc = ck_admin_json_dump(o, out, out_len);

    json_decref(o);
    return rc;
}

int
ck_admin_json_encode_device(const ck_db_device *dev, char **out)
{
    return dump_new(ck_admin_device_to_json(dev), out);
}

int
ck_admin_json_encode_realm_mod(const ck_realm_mod *mod, char **out)
{
    return dump_new(ck_admin_realm_mod_to_json(mod), out);
}

int
ck_admin_json_decode_realm_mod(const char *text, size_t len, ck_realm_mod *out)
{
    json_t *o;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = ck_admin_json_parse_object(text, len, &o)) != 0)
        return rc;
    rc = ck_admin_realm_mod_from_json(o, out);
    json_decref(o);
    return rc;
}

int
ck_admin_json_encode_rename(const char *new_name, char **out)
{
    return dump_new(json_pack("{s:s}", "new_name", new_name), out);
}

int
ck_admin_json_decode_rename(const char *text, size_t len, char **new_name)
{
    json_t *o;
    int rc;

    *new_name = NULL;
    if ((rc = ck_admin_json_parse_object(text, len, &o)) != 0)
        return rc;
    rc = ck_admin_rename_from_json(o, new_name);
    json_decref(o);
    return rc;
}

/* Copies a server-supplied text for a terminal: cut to size, control characters replaced (an
 * error message must not move the cursor or recolour the operator's screen). */
static void
copy_printable(char *dst, size_t size, const char *src)
{
    ck_strlcpy(dst, src, size);
    for (char *p = dst; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

int
ck_admin_json_decode_error(const char *text, size_t len, char *code, size_t code_size,
                           char *message, size_t message_size)
{
    static const char *const outer[] = {"error", NULL};
    static const char *const inner[] = {"code", "message", NULL};
    const json_t *e, *c, *m;
    json_t *o;
    int rc;

    if (code_size > 0)
        code[0] = '\0';
    if (message_size > 0)
        message[0] = '\0';
    if ((rc = ck_admin_json_parse_object(text, len, &o)) != 0)
        return rc;
    e = json_object_get(o, "error");
    if ((rc = check_members(o, outer)) != 0)
        goto out;
    if (!json_is_object(e)) {
        rc = dec_err("error", "must be an object");
        goto out;
    }
    if ((rc = check_members(e, inner)) != 0)
        goto out;
    c = json_object_get(e, "code");
    m = json_object_get(e, "message");
    if (!json_is_string(c) || !json_is_string(m)) {
        rc = dec_err("error", "\"code\" and \"message\" must be strings");
        goto out;
    }
    copy_printable(code, code_size, json_string_value(c));
    copy_printable(message, message_size, json_string_value(m));
out:
    json_decref(o);
    return rc;
}

void
ck_admin_name_page_clear(struct ck_admin_name_page *pg)
{
    if (pg == NULL)
        return;
    for (size_t i = 0; i < pg->n; i++)
        free(pg->names[i]);
    free(pg->names);
    free(pg->next);
    memset(pg, 0, sizeof(*pg));
}

/* Opens a list page: an object with exactly `members`, whose member `array` is an array of at
 * most max elements (`what` says so otherwise). *o is the caller's to json_decref, also on
 * error. */
static int
page_open(const char *text, size_t len, const char *const *members, const char *array,
          size_t max, const char *what, json_t **o, const json_t **arr)
{
    int rc;

    *arr = NULL;
    if ((rc = parse_bounded(text, len, CK_ADMIN_JSON_PAGE_MAX, o)) != 0 ||
        (rc = check_members(*o, members)) != 0)
        return rc;
    *arr = json_object_get(*o, array);
    if (!json_is_array(*arr) || json_array_size(*arr) > max)
        return dec_err(array, what);
    return 0;
}

static int
page_name(const json_t *v, const char *member, char **out)
{
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) >= CK_PRINCIPAL_MAX_TEXT ||
        strlen(json_string_value(v)) != json_string_length(v))
        return dec_err(member, "must hold principal names");
    if ((*out = strdup(json_string_value(v))) == NULL)
        return CK_ERR_NOMEM;
    return 0;
}

int
ck_admin_json_decode_name_page(const char *text, size_t len, struct ck_admin_name_page *out)
{
    static const char *const members[] = {"principals", "next", NULL};
    const json_t *arr, *next;
    json_t *o;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = page_open(text, len, members, "principals", CK_ADMIN_PAGE_MAX_NAMES,
                        "must be an array of at most 10000 names", &o, &arr)) != 0)
        goto out;
    next = json_object_get(o, "next");
    if (next == NULL || (!json_is_null(next) && !json_is_string(next))) {
        rc = dec_err("next", "must be a name or null");
        goto out;
    }
    if (json_array_size(arr) > 0 &&
        (out->names = calloc(json_array_size(arr), sizeof(*out->names))) == NULL) {
        rc = CK_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if ((rc = page_name(json_array_get(arr, i), "principals", &out->names[i])) != 0)
            goto out;
        out->n++;
    }
    if (json_is_string(next) && (rc = page_name(next, "next", &out->next)) != 0)
        goto out;
out:
    json_decref(o);
    if (rc != 0)
        ck_admin_name_page_clear(out);
    return rc;
}

/* ------------------------------------------------------------------ password policies */

#define POLICY_MAX_SECONDS (100LL * 366 * 86400) /* the store's bound (store_policy.c) */

/* The rules in CK_ADMIN_POL_* bit order: member name, range, and where each lives. */
static const struct {
    const char *member;
    int64_t max;
    bool secs;          /* int64_t field, else uint32_t */
    size_t off;
} policy_rules[] = {
    {"min_length", 1024, false, offsetof(ck_policy, min_length)},
    {"min_classes", CK_POLICY_MAX_CLASSES, false, offsetof(ck_policy, min_classes)},
    {"history", CK_POLICY_MAX_HISTORY, false, offsetof(ck_policy, history)},
    {"min_life", POLICY_MAX_SECONDS, true, offsetof(ck_policy, min_life)},
    {"max_life", POLICY_MAX_SECONDS, true, offsetof(ck_policy, max_life)},
    {"max_failure", 1000000, false, offsetof(ck_policy, max_failure)},
    {"failure_interval", POLICY_MAX_SECONDS, true, offsetof(ck_policy, failure_interval)},
    {"lockout_duration", POLICY_MAX_SECONDS, true, offsetof(ck_policy, lockout_duration)},
};
#define N_POLICY_RULES (sizeof(policy_rules) / sizeof(policy_rules[0]))

static int64_t
rule_get(const ck_policy *pol, size_t i)
{
    const unsigned char *base = (const unsigned char *)pol + policy_rules[i].off;
    int64_t v64;
    uint32_t v32;

    if (policy_rules[i].secs) {
        memcpy(&v64, base, sizeof(v64));
        return v64;
    }
    memcpy(&v32, base, sizeof(v32));
    return v32;
}

static void
rule_put(ck_policy *pol, size_t i, int64_t v)
{
    unsigned char *base = (unsigned char *)pol + policy_rules[i].off;
    uint32_t v32 = (uint32_t)v;

    if (policy_rules[i].secs)
        memcpy(base, &v, sizeof(v));
    else
        memcpy(base, &v32, sizeof(v32));
}

json_t *
ck_admin_policy_rules_to_json(const ck_policy *rules, unsigned present)
{
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < N_POLICY_RULES; i++) {
        if ((present & (1u << i)) && !set(o, policy_rules[i].member,
                                          json_integer(rule_get(rules, i)))) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *
ck_admin_policy_to_json(const ck_policy *pol)
{
    json_t *o = ck_admin_policy_rules_to_json(pol, (1u << N_POLICY_RULES) - 1);

    if (o == NULL)
        return NULL;
    if (!set(o, "name", json_string(pol->name)) ||
        !set(o, "principals", json_integer((json_int_t)pol->ref_count)) ||
        !set(o, "created", time_json(pol->created)) ||
        !set(o, "modified", time_json(pol->modified))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Reads the rule members present in o (other members are the caller's business). */
static int
policy_rules_read(const json_t *o, ck_policy *rules, unsigned *present)
{
    int64_t v;
    int rc;

    for (size_t i = 0; i < N_POLICY_RULES; i++) {
        if (json_object_get(o, policy_rules[i].member) == NULL)
            continue;
        if ((rc = get_int(o, policy_rules[i].member, 0, policy_rules[i].max, &v)) != 0)
            return rc;
        rule_put(rules, i, v);
        *present |= 1u << i;
    }
    return 0;
}

int
ck_admin_policy_rules_from_json(const json_t *o, bool modify, ck_policy *rules,
                                unsigned *present)
{
    static const char *const members[] = {"min_length", "min_classes", "history", "min_life",
                                          "max_life", "max_failure", "failure_interval",
                                          "lockout_duration", NULL};
    int rc;

    memset(rules, 0, sizeof(*rules));
    *present = 0;
    if (!json_is_object(o))
        return ck_error_set(CK_ERR_DECODE, "policy rules: not a JSON object");
    if ((rc = check_members(o, members)) != 0 || (rc = policy_rules_read(o, rules, present)) != 0)
        goto fail;
    if (modify && *present == 0) {
        rc = ck_error_set(CK_ERR_DECODE, "policy change: no rule given");
        goto fail;
    }
    return 0;
fail:
    memset(rules, 0, sizeof(*rules));
    *present = 0;
    return rc;
}

int
ck_admin_json_encode_policy(const ck_policy *pol, char **out)
{
    return dump_new(ck_admin_policy_to_json(pol), out);
}

int
ck_admin_json_decode_policy(const char *text, size_t len, ck_policy *out)
{
    static const char *const members[] = {"name", "min_length", "min_classes", "history",
                                          "min_life", "max_life", "max_failure",
                                          "failure_interval", "lockout_duration", "principals",
                                          "created", "modified", NULL};
    const json_t *name;
    unsigned present = 0;
    int64_t refs;
    json_t *o;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = ck_admin_json_parse_object(text, len, &o)) != 0)
        return rc;
    if ((rc = check_members(o, members)) != 0 ||
        (rc = policy_rules_read(o, out, &present)) != 0)
        goto out;
    if (present != (1u << N_POLICY_RULES) - 1) {
        rc = ck_error_set(CK_ERR_DECODE, "policy: a rule is missing");
        goto out;
    }
    name = json_object_get(o, "name");
    if (!json_is_string(name) || json_string_length(name) > CK_POLICY_NAME_MAX ||
        strlen(json_string_value(name)) != json_string_length(name) ||
        ck_policy_name_check(json_string_value(name)) != 0) {
        rc = dec_err("name", "must be a policy name");
        goto out;
    }
    ck_strlcpy(out->name, json_string_value(name), sizeof(out->name));
    if ((rc = get_int(o, "principals", 0, INT64_MAX, &refs)) != 0 ||
        (rc = get_time(o, "created", &out->created)) != 0 ||
        (rc = get_time(o, "modified", &out->modified)) != 0)
        goto out;
    out->ref_count = (uint64_t)refs;
out:
    json_decref(o);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

int
ck_admin_json_encode_policy_rules(const ck_policy *rules, unsigned present, char **out)
{
    return dump_new(ck_admin_policy_rules_to_json(rules, present), out);
}

int
ck_admin_json_decode_policy_rules(const char *text, size_t len, bool modify, ck_policy *rules,
                                  unsigned *present)
{
    json_t *o;
    int rc;

    memset(rules, 0, sizeof(*rules));
    *present = 0;
    if ((rc = ck_admin_json_parse_object(text, len, &o)) != 0)
        return rc;
    rc = ck_admin_policy_rules_from_json(o, modify, rules, present);
    json_decref(o);
    return rc;
}

int
ck_admin_json_decode_policy_names(const char *text, size_t len, struct ck_admin_name_page *out)
{
    static const char *const members[] = {"policies", NULL};
    const json_t *arr, *v;
    json_t *o;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = page_open(text, len, members, "policies", CK_POLICY_LIST_MAX,
                        "must be an array of at most 10000 names", &o, &arr)) != 0)
        goto out;
    if (json_array_size(arr) > 0 &&
        (out->names = calloc(json_array_size(arr), sizeof(*out->names))) == NULL) {
        rc = CK_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        v = json_array_get(arr, i);
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            ck_policy_name_check(json_string_value(v)) != 0) {
            rc = dec_err("policies", "must hold policy names");
            goto out;
        }
        if ((out->names[i] = strdup(json_string_value(v))) == NULL) {
            rc = CK_ERR_NOMEM;
            goto out;
        }
        out->n++;
    }
out:
    json_decref(o);
    if (rc != 0)
        ck_admin_name_page_clear(out);
    return rc;
}

/* ------------------------------------------------------------------ device records (client) */

static int
device_from_json(const json_t *o, ck_db_device **out)
{
    static const char *const members[] = {"mac", "principal", "state", "pin", "created",
                                          "modified", "revoked", "comment", NULL};
    const json_t *mac, *principal, *state, *pin, *comment;
    ck_db_device *d = NULL;
    char canon[CK_DEVICE_MAC_LEN + 1];
    int rc;

    *out = NULL;
    if (!json_is_object(o))
        return ck_error_set(CK_ERR_DECODE, "device: not a JSON object");
    if ((rc = check_members(o, members)) != 0)
        return rc;
    mac = json_object_get(o, "mac");
    principal = json_object_get(o, "principal");
    state = json_object_get(o, "state");
    pin = json_object_get(o, "pin");
    comment = json_object_get(o, "comment");
    if (!json_is_string(mac) || json_string_length(mac) != CK_DEVICE_MAC_LEN ||
        ck_device_mac_parse(json_string_value(mac), canon) != 0 ||
        strcmp(canon, json_string_value(mac)) != 0)
        return dec_err("mac", "must be a MAC address aa:bb:cc:dd:ee:ff");
    if (!json_is_string(principal) || json_string_length(principal) == 0 ||
        json_string_length(principal) >= CK_PRINCIPAL_MAX_TEXT ||
        strlen(json_string_value(principal)) != json_string_length(principal))
        return dec_err("principal", "must be a principal name");
    if (!json_is_string(comment) || json_string_length(comment) > CK_DEVICE_COMMENT_MAX)
        return dec_err("comment", "must be a string of at most 256 bytes");
    for (size_t i = 0; i < json_string_length(comment); i++) {
        unsigned char c = (unsigned char)json_string_value(comment)[i];
        if (c < 0x20 || c == 0x7f)
            return dec_err("comment", "must hold no control characters");
    }
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return CK_ERR_NOMEM;
    memcpy(d->mac, canon, sizeof(d->mac));
    if (json_is_string(state) && strcmp(json_string_value(state), "active") == 0) {
        d->state = CK_DEVICE_ACTIVE;
    } else if (json_is_string(state) && strcmp(json_string_value(state), "revoked") == 0) {
        d->state = CK_DEVICE_REVOKED;
    } else {
        rc = dec_err("state", "must be \"active\" or \"revoked\"");
        goto fail;
    }
    if (json_is_string(pin)) {
        if (json_string_length(pin) != 2 * CK_DEVICE_SPKI_HASH_LEN ||
            ck_device_pin_parse_hex(json_string_value(pin), d->spki_sha256) != 0) {
            rc = dec_err("pin", "must be 64 hex digits or null");
            goto fail;
        }
        d->has_pin = true;
    } else if (!json_is_null(pin)) {
        rc = dec_err("pin", "must be 64 hex digits or null");
        goto fail;
    }
    if ((rc = get_int(o, "created", 0, MAX_TIME, &d->created)) != 0 ||
        (rc = get_int(o, "modified", 0, MAX_TIME, &d->modified)) != 0 ||
        (rc = get_time(o, "revoked", &d->revoked)) != 0)
        goto fail;
    if ((d->principal = strdup(json_string_value(principal))) == NULL ||
        (d->comment = strdup(json_string_value(comment))) == NULL) {
        rc = CK_ERR_NOMEM;
        goto fail;
    }
    *out = d;
    return 0;
fail:
    ck_db_device_free(d);
    return rc;
}

int
ck_admin_json_decode_device(const char *text, size_t len, ck_db_device **out)
{
    json_t *o;
    int rc;

    *out = NULL;
    if ((rc = ck_admin_json_parse_object(text, len, &o)) != 0)
        return rc;
    rc = device_from_json(o, out);
    json_decref(o);
    return rc;
}

void
ck_admin_device_page_clear(struct ck_admin_device_page *pg)
{
    if (pg == NULL)
        return;
    for (size_t i = 0; i < pg->n; i++)
        ck_db_device_free(pg->devices[i]);
    free(pg->devices);
    memset(pg, 0, sizeof(*pg));
}

int
ck_admin_json_decode_device_page(const char *text, size_t len, struct ck_admin_device_page *out)
{
    static const char *const members[] = {"devices", "next", NULL};
    const json_t *arr, *next;
    json_t *o;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = page_open(text, len, members, "devices", CK_ADMIN_DEVICE_PAGE_MAX,
                        "must be an array of at most 1000 devices", &o, &arr)) != 0)
        goto out;
    next = json_object_get(o, "next");
    if (json_is_string(next)) {
        if (json_string_length(next) != CK_DEVICE_MAC_LEN ||
            ck_device_mac_parse(json_string_value(next), out->next) != 0 ||
            strcmp(out->next, json_string_value(next)) != 0) {
            rc = dec_err("next", "must be a MAC address or null");
            goto out;
        }
    } else if (!json_is_null(next)) {
        rc = dec_err("next", "must be a MAC address or null");
        goto out;
    }
    if (json_array_size(arr) > 0 &&
        (out->devices = calloc(json_array_size(arr), sizeof(*out->devices))) == NULL) {
        rc = CK_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if ((rc = device_from_json(json_array_get(arr, i), &out->devices[i])) != 0)
            goto out;
        out->n++;
    }
out:
    json_decref(o);
    if (rc != 0)
        ck_admin_device_page_clear(out);
    return rc;
}
