/* PKINIT settings: kdc.conf relations and command-line flags into a kdc_pkinit_config, the
 * loading of what they name (identity, anchors, CRLs, pool), and --check's report.
 *
 * Decisions:
 *   - MIT's names where MIT has the setting (pkinit_identity, pkinit_anchors, pkinit_pool,
 *     pkinit_revoke, pkinit_dh_min_bits, pkinit_require_freshness, pkinit_eku_checking); MIT's
 *     "FILE:" prefix is accepted, "DIR:", "PKCS11:" and "ENV:" are not (refused, not ignored: a
 *     KDC that silently trusts fewer anchors than configured is a confusing failure).
 *   - Each anchor file says what its certificates vouch for: pkinit_anchors (clients named by
 *     id-pkinit-san), pkinit_device_anchors (devices mapped by the MAC in their subject through
 *     the device table), pkinit_packetcable_anchors (device anchors for which the PacketCable
 *     draft forms are also accepted: opt-in per anchor, never implied). A file belongs to one
 *     kind only.
 *   - CRLs are per anchor file (the library checks a chain against the CRLs of the anchor it
 *     ends at, and then requires one for the leaf's issuer): "pkinit_revoke = CRL ANCHOR" binds
 *     one, and a one-file "pkinit_revoke = CRL" (MIT's form) applies to every client anchor
 *     without its own. Device anchors get CRLs only when named: devices are revoked in the
 *     device table (seed 002).
 *   - pkinit_dh_min_bits below 2048 is refused: MODP 2048 is the smallest group we implement,
 *     so a lower value could only mislead. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/pki.h"
#include "cablekey/pkinit.h"
#include "cablekey/util.h"
#include "pkinit_kdc.h"

#define MAX_VALUES 64
#define POOL_FILE_MAX (1024 * 1024)
#define POOL_MAX_CERTS 64

int
kdc_pkinit_config_new(struct kdc_pkinit_config **out)
{
    struct kdc_pkinit_config *pc = calloc(1, sizeof(*pc));

    *out = NULL;
    if (pc == NULL)
        return ck_error_set(CK_ERR_NOMEM, "pkinit config");
    pc->dh_min_bits = KDC_PKINIT_DEFAULT_DH_MIN_BITS;
    pc->allow_rsa_key_transport = true;
    pc->cert_cache = KDC_PKINIT_DEFAULT_CERT_CACHE;
    pc->tp_cache = KDC_PKINIT_DEFAULT_TP_CACHE;
    memcpy(pc->unprov_calls[0], "611", 4);
    memcpy(pc->unprov_calls[1], "911", 4);
    pc->n_unprov_calls = 2;
    *out = pc;
    return 0;
}

void
kdc_pkinit_config_free(struct kdc_pkinit_config *pc)
{
    if (pc == NULL)
        return;
    free(pc->identity);
    free(pc->password_file);
    for (size_t i = 0; i < pc->n_anchors; i++) {
        free(pc->anchors[i].path);
        free(pc->anchors[i].crl);
    }
    for (size_t i = 0; i < pc->n_pool; i++)
        free(pc->pool[i]);
    free(pc->revoke_all);
    free(pc);
}

static int
set_str(char **dst, const char *key, const char *value)
{
    char *copy;

    if (value[0] == '\0')
        return ck_error_set(CK_ERR_CONFIG, "%s: empty value", key);
    if ((copy = strdup(value)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    free(*dst);
    *dst = copy;
    return 0;
}

/* A file name from an MIT-style location: "FILE:path" or a bare path. */
static int
file_location(const char *key, const char *tok, const char **path)
{
    if (strncasecmp(tok, "FILE:", 5) == 0)
        tok += 5;
    else if (strncasecmp(tok, "DIR:", 4) == 0 || strncasecmp(tok, "PKCS11:", 7) == 0 ||
             strncasecmp(tok, "ENV:", 4) == 0)
        return ck_error_set(CK_ERR_CONFIG, "%s: \"%s\": only files (FILE:path) are supported",
                            key, tok);
    if (tok[0] == '\0')
        return ck_error_set(CK_ERR_CONFIG, "%s: empty file name", key);
    *path = tok;
    return 0;
}

/* Calls fn on each blank- or comma-separated token of value. */
static int
each_token(const char *key, const char *value,
           int (*fn)(struct kdc_pkinit_config *pc, const char *key, const char *tok, void *arg),
           struct kdc_pkinit_config *pc, void *arg)
{
    const char *p = value;
    int rc, n = 0;

    while (*p != '\0') {
        char tok[4096];
        size_t len = strcspn(p, " \t,");

        if (len == 0) {
            p++;
            continue;
        }
        if (len >= sizeof(tok))
            return ck_error_set(CK_ERR_CONFIG, "%s: entry too long", key);
        memcpy(tok, p, len);
        tok[len] = '\0';
        if ((rc = fn(pc, key, tok, arg)) != 0)
            return rc;
        n++;
        p += len;
    }
    if (n == 0)
        return ck_error_set(CK_ERR_CONFIG, "%s: no file named", key);
    return 0;
}

static int
add_anchor(struct kdc_pkinit_config *pc, const char *key, const char *tok, void *arg)
{
    const enum kdc_pkinit_anchor_kind *kind = arg;
    const char *path;
    int rc;

    if ((rc = file_location(key, tok, &path)) != 0)
        return rc;
    for (size_t i = 0; i < pc->n_anchors; i++)
        if (strcmp(pc->anchors[i].path, path) == 0) {
            if (pc->anchors[i].kind == *kind)
                return 0;
            return ck_error_set(CK_ERR_CONFIG, "%s: %s is already listed as another kind of "
                                "anchor", key, path);
        }
    if (pc->n_anchors >= KDC_PKINIT_MAX_ANCHOR_FILES)
        return ck_error_set(CK_ERR_CONFIG, "%s: more than %d anchor files", key,
                            KDC_PKINIT_MAX_ANCHOR_FILES);
    if ((pc->anchors[pc->n_anchors].path = strdup(path)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    pc->anchors[pc->n_anchors].crl = NULL;
    pc->anchors[pc->n_anchors].kind = *kind;
    pc->n_anchors++;
    return 0;
}

static int
add_pool(struct kdc_pkinit_config *pc, const char *key, const char *tok, void *arg)
{
    const char *path;
    int rc;

    if ((rc = file_location(key, tok, &path)) != 0)
        return rc;
    for (size_t i = 0; i < pc->n_pool; i++)
        if (strcmp(pc->pool[i], path) == 0)
            return 0;
    if (pc->n_pool >= KDC_PKINIT_MAX_POOL_FILES)
        return ck_error_set(CK_ERR_CONFIG, "%s: more than %d files", key,
                            KDC_PKINIT_MAX_POOL_FILES);
    if ((pc->pool[pc->n_pool] = strdup(path)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "config");
    pc->n_pool++;
    return 0;
}

static void
drop_anchors(struct kdc_pkinit_config *pc, enum kdc_pkinit_anchor_kind kind)
{
    size_t o = 0;

    for (size_t i = 0; i < pc->n_anchors; i++) {
        if (pc->anchors[i].kind == kind) {
            free(pc->anchors[i].path);
            free(pc->anchors[i].crl);
            continue;
        }
        pc->anchors[o++] = pc->anchors[i];
    }
    pc->n_anchors = o;
}

/* "CRL" or "CRL ANCHOR". The anchor may be listed later: the pairing is resolved by finish(),
 * so it is kept in the CRL slot of a placeholder until then. */
static int
set_revoke(struct kdc_pkinit_config *pc, const char *key, const char *value)
{
    char crl_tok[4096], anchor_tok[4096];
    const char *crl, *anchor;
    int n, rc;

    crl_tok[0] = anchor_tok[0] = '\0';
    n = sscanf(value, "%4095s %4095s", crl_tok, anchor_tok);
    if (n < 1)
        return ck_error_set(CK_ERR_CONFIG, "%s: empty value", key);
    if ((rc = file_location(key, crl_tok, &crl)) != 0)
        return rc;
    if (n == 1) {
        if (pc->revoke_all != NULL)
            return ck_error_set(CK_ERR_CONFIG, "%s: only one CRL file may apply to every "
                                "anchor (name the anchor: pkinit_revoke = CRL ANCHOR)", key);
        return set_str(&pc->revoke_all, key, crl);
    }
    {
        /* Anything after the anchor is a mistake worth reporting. */
        const char *p = strstr(value, anchor_tok) + strlen(anchor_tok);
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0')
            return ck_error_set(CK_ERR_CONFIG, "%s: expected \"CRL [ANCHOR]\"", key);
    }
    if ((rc = file_location(key, anchor_tok, &anchor)) != 0)
        return rc;
    for (size_t i = 0; i < pc->n_anchors; i++) {
        if (strcmp(pc->anchors[i].path, anchor) != 0)
            continue;
        if (pc->anchors[i].crl != NULL && strcmp(pc->anchors[i].crl, crl) != 0)
            return ck_error_set(CK_ERR_CONFIG, "%s: %s already has a CRL file", key, anchor);
        return set_str(&pc->anchors[i].crl, key, crl);
    }
    return ck_error_set(CK_ERR_CONFIG, "%s: %s is not a configured anchor file (list the "
                        "anchors first)", key, anchor);
}

static int
set_size(const char *key, const char *value, int64_t min, int64_t max, size_t *out)
{
    int64_t v;

    if (ck_parse_int64(value, min, max, &v) != 0)
        return ck_error_set(CK_ERR_CONFIG, "%s = \"%s\": expected a number from %lld to %lld",
                            key, value, (long long)min, (long long)max);
    *out = (size_t)v;
    return 0;
}

static int
set_bool(const char *key, const char *value, bool *out)
{
    if (ck_parse_bool(value, out) != 0)
        return ck_error_set(CK_ERR_CONFIG, "%s = \"%s\": expected yes or no", key, value);
    return 0;
}

/* "611 911": the numbers an unprovisioned device may call (digits, blank- or comma-separated,
 * no duplicates, 1..CK_AD_RESTRICTED_MAX_NUMBERS of them). */
static int
set_calls(struct kdc_pkinit_config *pc, const char *key, const char *value)
{
    char calls[CK_AD_RESTRICTED_MAX_NUMBERS][CK_AD_RESTRICTED_NUMBER_MAX + 1];
    size_t n = 0;
    const char *p = value;

    while (*p != '\0') {
        size_t len = strcspn(p, " \t,");

        if (len == 0) {
            p++;
            continue;
        }
        if (n == CK_AD_RESTRICTED_MAX_NUMBERS)
            return ck_error_set(CK_ERR_CONFIG, "%s: more than %d numbers", key,
                                CK_AD_RESTRICTED_MAX_NUMBERS);
        if (len > CK_AD_RESTRICTED_NUMBER_MAX || strspn(p, "0123456789") < len)
            return ck_error_set(CK_ERR_CONFIG, "%s: \"%.*s\" is not a number of 1 to %d "
                                "digits", key, (int)(len > 32 ? 32 : len), p,
                                CK_AD_RESTRICTED_NUMBER_MAX);
        memcpy(calls[n], p, len);
        calls[n][len] = '\0';
        for (size_t i = 0; i < n; i++)
            if (strcmp(calls[i], calls[n]) == 0)
                return ck_error_set(CK_ERR_CONFIG, "%s: %s listed twice", key, calls[n]);
        n++;
        p += len;
    }
    if (n == 0)
        return ck_error_set(CK_ERR_CONFIG, "%s: no number", key);
    memcpy(pc->unprov_calls, calls, sizeof(calls));
    pc->n_unprov_calls = n;
    return 0;
}

int
kdc_pkinit_config_set(struct kdc_pkinit_config **pcp, const char *key, const char *value,
                      bool replace)
{
    struct kdc_pkinit_config *pc;
    enum kdc_pkinit_anchor_kind kind;
    size_t n = 0;
    int rc;

    if (*pcp == NULL && (rc = kdc_pkinit_config_new(pcp)) != 0)
        return rc;
    pc = *pcp;
    if (strcmp(key, "pkinit_identity") == 0)
        return set_str(&pc->identity, key, value);
    if (strcmp(key, "pkinit_password_file") == 0)
        return set_str(&pc->password_file, key, value);
    if (strcmp(key, "pkinit_anchors") == 0 || strcmp(key, "pkinit_device_anchors") == 0 ||
        strcmp(key, "pkinit_packetcable_anchors") == 0 ||
        strcmp(key, "pkinit_operator_anchors") == 0) {
        kind = strcmp(key, "pkinit_anchors") == 0            ? KDC_PKINIT_ANCHOR_CLIENT
               : strcmp(key, "pkinit_device_anchors") == 0   ? KDC_PKINIT_ANCHOR_DEVICE
               : strcmp(key, "pkinit_operator_anchors") == 0 ? KDC_PKINIT_ANCHOR_OPERATOR
                                                             : KDC_PKINIT_ANCHOR_PACKETCABLE;
        if (replace)
            drop_anchors(pc, kind);
        return each_token(key, value, add_anchor, pc, &kind);
    }
    if (strcmp(key, "pkinit_pool") == 0) {
        if (replace) {
            for (size_t i = 0; i < pc->n_pool; i++)
                free(pc->pool[i]);
            pc->n_pool = 0;
        }
        return each_token(key, value, add_pool, pc, NULL);
    }
    if (strcmp(key, "pkinit_revoke") == 0)
        return set_revoke(pc, key, value);
    if (strcmp(key, "pkinit_dh_min_bits") == 0) {
        if ((rc = set_size(key, value, 2048, 16384, &n)) != 0)
            return rc;
        pc->dh_min_bits = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "pkinit_require_freshness") == 0)
        return set_bool(key, value, &pc->require_freshness);
    if (strcmp(key, "pkinit_allow_rsa_key_transport") == 0)
        return set_bool(key, value, &pc->allow_rsa_key_transport);
    if (strcmp(key, "pkinit_eku_checking") == 0) {
        if (strcasecmp(value, "kpClientAuth") == 0)
            pc->eku_sclogin = false;
        else if (strcasecmp(value, "scLogin") == 0)
            pc->eku_sclogin = true;
        else
            return ck_error_set(CK_ERR_CONFIG, "%s = \"%s\": expected kpClientAuth or scLogin "
                                "(\"none\" is not supported)", key, value);
        return 0;
    }
    if (strcmp(key, "pkinit_cert_cache_size") == 0)
        return set_size(key, value, 16, 1 << 20, &pc->cert_cache);
    if (strcmp(key, "pkinit_thumbprint_cache_size") == 0)
        return set_size(key, value, 16, 1 << 20, &pc->tp_cache);
    if (strcmp(key, "pkinit_provisioning") == 0)
        return set_bool(key, value, &pc->provisioning);
    if (strcmp(key, "pkinit_unprovisioned_calls") == 0)
        return set_calls(pc, key, value);
    return ck_error_set(CK_ERR_CONFIG, "unknown PKINIT setting %s", key);
}

static bool
is_prov_default(const char *key)
{
    static const char *const prov[] = {KDC_PKINIT_PROV_DEFAULTS_KEYS};

    for (size_t i = 0; i < sizeof(prov) / sizeof(prov[0]); i++)
        if (strcmp(prov[i], key) == 0)
            return true;
    return false;
}

int
kdc_pkinit_config_load(struct kdc_pkinit_config **pc, const struct ck_profile *prof,
                       const char *realm)
{
    static const char *const keys[] = {KDC_PKINIT_CONFIG_KEYS};
    const char *vals[MAX_VALUES];
    int rc;

    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            size_t n;

            /* pkinit_revoke pairs CRLs with anchors, so the anchor lists go first. */
            if ((strcmp(keys[k], "pkinit_revoke") == 0) != (pass == 1))
                continue;
            n = ck_profile_get_all(prof, vals, MAX_VALUES, "realms", realm, keys[k], NULL);
            /* The provisioning relations may be set once for every realm ([kdcdefaults]);
             * the realm's own win. */
            if (n == 0 && is_prov_default(keys[k]))
                n = ck_profile_get_all(prof, vals, MAX_VALUES, "kdcdefaults", keys[k], NULL);
            if (n > MAX_VALUES)
                return ck_error_set(CK_ERR_CONFIG, "%s: more than %d values", keys[k],
                                    MAX_VALUES);
            for (size_t i = 0; i < n; i++) {
                bool list = strcmp(keys[k], "pkinit_anchors") == 0 ||
                            strcmp(keys[k], "pkinit_device_anchors") == 0 ||
                            strcmp(keys[k], "pkinit_packetcable_anchors") == 0 ||
                            strcmp(keys[k], "pkinit_operator_anchors") == 0 ||
                            strcmp(keys[k], "pkinit_pool") == 0 ||
                            strcmp(keys[k], "pkinit_revoke") == 0;
                if (!list && i > 0) {
                    ck_log_warn("[realms] %s: %s given %zu times; the first is used", realm,
                                keys[k], n);
                    break;
                }
                if ((rc = kdc_pkinit_config_set(pc, keys[k], vals[i], false)) != 0)
                    return rc;
            }
        }
    }
    return 0;
}

int
kdc_pkinit_config_finish(struct kdc_pkinit_config *pc)
{
    size_t n_client = 0, n_mfg = 0, n_op = 0;

    if (pc == NULL)
        return 0;
    if (pc->identity == NULL && pc->n_anchors == 0 && pc->provisioning)
        return ck_error_set(CK_ERR_CONFIG, "pkinit_provisioning needs PKINIT: no "
                            "pkinit_identity and no anchors");
    if (pc->identity == NULL && pc->n_anchors == 0 && !pc->provisioning)
        return 0; /* only provisioning relations, switched off: no PKINIT */
    if (pc->identity == NULL)
        return ck_error_set(CK_ERR_CONFIG, "PKINIT: anchors are set but no pkinit_identity "
                            "(--pkinit-identity)");
    if (pc->n_anchors == 0)
        return ck_error_set(CK_ERR_CONFIG, "PKINIT: pkinit_identity is set but no trust anchor "
                            "(pkinit_anchors, pkinit_device_anchors, "
                            "pkinit_packetcable_anchors)");
    for (size_t i = 0; i < pc->n_anchors; i++) {
        n_client += pc->anchors[i].kind == KDC_PKINIT_ANCHOR_CLIENT;
        n_mfg += pc->anchors[i].kind == KDC_PKINIT_ANCHOR_DEVICE ||
                 pc->anchors[i].kind == KDC_PKINIT_ANCHOR_PACKETCABLE;
        n_op += pc->anchors[i].kind == KDC_PKINIT_ANCHOR_OPERATOR;
    }
    /* Operator certificates mean something only against the provisioning rows. */
    if (n_op > 0 && !pc->provisioning)
        return ck_error_set(CK_ERR_CONFIG, "pkinit_operator_anchors need pkinit_provisioning = "
                            "true");
    if (pc->provisioning && n_mfg == 0)
        return ck_error_set(CK_ERR_CONFIG, "pkinit_provisioning: no manufacturer anchor "
                            "(pkinit_device_anchors, pkinit_packetcable_anchors) to admit "
                            "devices with");
    if (pc->revoke_all != NULL && n_client == 0)
        return ck_error_set(CK_ERR_CONFIG, "pkinit_revoke = %s: there is no client anchor "
                            "(pkinit_anchors) for it; name the anchor: pkinit_revoke = CRL "
                            "ANCHOR", pc->revoke_all);
    return 0;
}

/* ---- loading ---------------------------------------------------------------------------- */

int
kdc_pkinit_load_identity(const struct kdc_pkinit_config *pc, ck_pki_identity **out)
{
    char *password = NULL;
    int rc;

    *out = NULL;
    if (pc->password_file != NULL && (rc = ck_pki_password_read(pc->password_file, &password)) != 0)
        return ck_error_set(rc, "pkinit_password_file %s: %s", pc->password_file,
                            ck_error_context());
    rc = ck_pki_identity_load(pc->identity, password, out);
    ck_pki_password_free(password);
    if (rc != 0)
        return ck_error_set(rc, "pkinit_identity %s: %s", pc->identity, ck_error_context());
    return 0;
}

int
kdc_pkinit_load_anchors(const struct kdc_pkinit_config *pc, ck_pkinit_anchors **out,
                        uint8_t kinds[CK_PKINIT_MAX_ANCHORS], size_t *n_kinds)
{
    ck_pkinit_anchors *a = NULL;
    size_t before = 0;
    bool any_pc = false;
    int rc;

    *out = NULL;
    *n_kinds = 0;
    if ((rc = ck_pkinit_anchors_new(&a)) != 0)
        return rc;
    for (size_t i = 0; i < pc->n_anchors; i++)
        any_pc |= pc->anchors[i].kind == KDC_PKINIT_ANCHOR_PACKETCABLE;
    for (size_t i = 0; i < pc->n_anchors; i++) {
        const struct kdc_pkinit_anchor_file *f = &pc->anchors[i];
        const char *crl = f->crl;
        size_t after;

        if (crl == NULL && f->kind == KDC_PKINIT_ANCHOR_CLIENT)
            crl = pc->revoke_all;
        rc = ck_pkinit_anchors_add_file(a, f->path,
                                        f->kind == KDC_PKINIT_ANCHOR_PACKETCABLE ||
                                                (f->kind == KDC_PKINIT_ANCHOR_OPERATOR && any_pc)
                                            ? CK_PKINIT_ANCHOR_PACKETCABLE
                                            : 0,
                                        crl);
        if (rc != 0) {
            rc = ck_error_set(rc, "%s%s%s: %s", f->path, crl ? " with CRLs " : "",
                              crl ? crl : "", ck_error_context());
            goto out;
        }
        after = ck_pkinit_anchors_count(a);
        if (after > CK_PKINIT_MAX_ANCHORS) {
            rc = ck_error_set(CK_ERR_LIMIT, "more than %d trust anchors", CK_PKINIT_MAX_ANCHORS);
            goto out;
        }
        for (size_t j = before; j < after; j++)
            kinds[j] = (uint8_t)f->kind;
        before = after;
    }
    *n_kinds = before;
    *out = a;
    a = NULL;
    rc = 0;
out:
    ck_pkinit_anchors_free(a);
    return rc;
}

int
kdc_pkinit_load_pool(const struct kdc_pkinit_config *pc, STACK_OF(X509) **out)
{
    STACK_OF(X509) *pool = sk_X509_new_null();
    int rc = 0;

    *out = NULL;
    if (pool == NULL)
        return ck_error_set(CK_ERR_NOMEM, "pkinit_pool");
    for (size_t i = 0; i < pc->n_pool; i++) {
        STACK_OF(X509) *certs = NULL;

        if ((rc = ck_pki_certs_load_pem(pc->pool[i], &certs)) != 0) {
            rc = ck_error_set(rc, "pkinit_pool %s: %s", pc->pool[i], ck_error_context());
            goto out;
        }
        while (sk_X509_num(certs) > 0) {
            X509 *x = sk_X509_shift(certs);
            if (sk_X509_num(pool) >= POOL_MAX_CERTS || !sk_X509_push(pool, x)) {
                X509_free(x);
                sk_X509_pop_free(certs, X509_free);
                rc = ck_error_set(CK_ERR_LIMIT, "pkinit_pool: more than %d certificates",
                                  POOL_MAX_CERTS);
                goto out;
            }
        }
        sk_X509_free(certs);
    }
    *out = pool;
    pool = NULL;
out:
    sk_X509_pop_free(pool, X509_free);
    return rc;
}

/* ---- --check ---------------------------------------------------------------------------- */

static bool
has_kdc_eku(X509 *x)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    bool found = false;

    for (int i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku) && !found; i++)
        found = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) == NID_pkInitKDC;
    EXTENDED_KEY_USAGE_free(eku);
    return found;
}

int
kdc_pkinit_config_check(const struct kdc_pkinit_config *pc, const char *realm, FILE *out)
{
    ck_pki_identity *id = NULL;
    ck_pkinit_anchors *a = NULL;
    STACK_OF(X509) *pool = NULL;
    uint8_t kinds[CK_PKINIT_MAX_ANCHORS];
    size_t n_kinds = 0, n_pc = 0;
    int rc;

    if (pc == NULL || pc->identity == NULL)
        return 0;
    if ((rc = kdc_pkinit_load_identity(pc, &id)) != 0)
        goto out;
    fprintf(out, "pkinit: identity %s loaded (%s key, %d bits)\n", pc->identity,
            EVP_PKEY_get0_type_name(id->key), EVP_PKEY_get_bits(id->key));
    if (!has_kdc_eku(id->cert))
        fprintf(out, "pkinit: warning: the identity's certificate lacks the id-pkinit-KPKdc "
                     "extended key usage; MIT and Heimdal clients will refuse the KDC\n");
    if (realm != NULL && ck_pkinit_kdc_cert_match_realm(id->cert, realm) != 0)
        fprintf(out, "pkinit: warning: the identity's certificate has no id-pkinit-san naming "
                     "krbtgt/%s@%s; clients that check it will refuse the KDC\n", realm, realm);
    if ((rc = kdc_pkinit_load_anchors(pc, &a, kinds, &n_kinds)) != 0)
        goto out;
    for (size_t i = 0; i < pc->n_anchors; i++) {
        const struct kdc_pkinit_anchor_file *f = &pc->anchors[i];
        const char *crl = f->crl != NULL ? f->crl
                          : f->kind == KDC_PKINIT_ANCHOR_CLIENT ? pc->revoke_all : NULL;
        fprintf(out, "pkinit: %s anchors %s%s%s\n",
                f->kind == KDC_PKINIT_ANCHOR_CLIENT     ? "client"
                : f->kind == KDC_PKINIT_ANCHOR_DEVICE   ? "device"
                : f->kind == KDC_PKINIT_ANCHOR_OPERATOR ? "operator device"
                                                        : "PacketCable device",
                f->path, crl != NULL ? ", CRLs " : "", crl != NULL ? crl : "");
        n_pc += f->kind == KDC_PKINIT_ANCHOR_PACKETCABLE;
    }
    fprintf(out, "pkinit: %zu trust anchor certificates\n", n_kinds);
    if (pc->provisioning) {
        fprintf(out, "pkinit: provisioning on: unprovisioned devices may call");
        for (size_t i = 0; i < pc->n_unprov_calls; i++)
            fprintf(out, " %s", pc->unprov_calls[i]);
        fprintf(out, "\n");
    }
    if (n_pc > 0 && !EVP_PKEY_is_a(id->key, "RSA")) {
        rc = ck_error_set(CK_ERR_CONFIG, "pkinit_packetcable_anchors need an RSA KDC identity "
                          "(PacketCable replies are RSA signatures without signed attributes)");
        goto out;
    }
    if ((rc = kdc_pkinit_load_pool(pc, &pool)) != 0)
        goto out;
    if (sk_X509_num(pool) > 0)
        fprintf(out, "pkinit: %d pool certificates\n", sk_X509_num(pool));
    rc = 0;
out:
    sk_X509_pop_free(pool, X509_free);
    ck_pkinit_anchors_free(a);
    ck_pki_identity_free(id);
    return rc;
}
