/* Principal names: MIT-compatible text syntax, comparison, default salt. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

static char *
dup_bytes(const char *data, size_t len)
{
    char *s = malloc(len + 1);

    if (s == NULL)
        return NULL;
    if (len > 0)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

void
ck_principal_free(ck_principal *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_components; i++)
        free(p->components[i]);
    free(p->components);
    free(p->realm);
    free(p);
}

int
ck_principal_new(const char *realm, size_t realm_len, int32_t name_type, ck_principal **out)
{
    ck_principal *p = NULL;

    *out = NULL;
    if (realm == NULL || realm_len == 0)
        return ck_error_set(CK_ERR_INVAL, "principal: empty realm");
    if (realm_len > CK_REALM_MAX_LEN)
        return ck_error_set(CK_ERR_LIMIT, "principal: realm longer than %d bytes",
                            CK_REALM_MAX_LEN);
    if (memchr(realm, '\0', realm_len) != NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "principal: NUL byte in realm");
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ck_error_set(CK_ERR_NOMEM, "principal");
    p->name_type = name_type;
    p->realm = dup_bytes(realm, realm_len);
    if (p->realm == NULL) {
        free(p);
        return ck_error_set(CK_ERR_NOMEM, "principal");
    }
    *out = p;
    return 0;
}

int
ck_principal_add_component(ck_principal *p, const char *data, size_t len)
{
    char **nc;
    char *c;

    if (p->n_components >= CK_PRINCIPAL_MAX_COMPONENTS)
        return ck_error_set(CK_ERR_LIMIT, "principal: more than %d components",
                            CK_PRINCIPAL_MAX_COMPONENTS);
    if (len > CK_PRINCIPAL_MAX_COMPONENT_LEN)
        return ck_error_set(CK_ERR_LIMIT, "principal: component longer than %d bytes",
                            CK_PRINCIPAL_MAX_COMPONENT_LEN);
    if (len > 0 && memchr(data, '\0', len) != NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "principal: NUL byte in component");
    c = dup_bytes(data, len);
    if (c == NULL)
        return ck_error_set(CK_ERR_NOMEM, "principal");
    nc = realloc(p->components, (p->n_components + 1) * sizeof(*nc));
    if (nc == NULL) {
        free(c);
        return ck_error_set(CK_ERR_NOMEM, "principal");
    }
    nc[p->n_components++] = c;
    p->components = nc;
    return 0;
}

int
ck_principal_build(const char *realm, int32_t name_type, const char *const *components, size_t n,
                   ck_principal **out)
{
    ck_principal *p = NULL;
    int ret;

    *out = NULL;
    if (realm == NULL)
        return ck_error_set(CK_ERR_INVAL, "principal: empty realm");
    ret = ck_principal_new(realm, strlen(realm), name_type, &p);
    for (size_t i = 0; ret == 0 && i < n; i++)
        ret = ck_principal_add_component(p, components[i], strlen(components[i]));
    if (ret == 0 && n == 0)
        ret = ck_error_set(CK_ERR_INVAL, "principal: no components");
    if (ret != 0) {
        ck_principal_free(p);
        return ret;
    }
    *out = p;
    return 0;
}

/* Finds where the realm starts: the first unescaped '@' (the last one for enterprise names).
 * Returns the offset of the '@' or len if none, or -1 for a trailing lone backslash. */
static long
find_realm_sep(const char *name, size_t len, bool enterprise)
{
    long at = -1;

    for (size_t i = 0; i < len; i++) {
        if (name[i] == '\\') {
            if (++i >= len)
                return -2;
            continue;
        }
        if (name[i] == '@') {
            at = (long)i;
            if (!enterprise)
                break;
        }
    }
    return at < 0 ? (long)len : at;
}

/* Decodes the character at s[*i], consuming a backslash escape (advancing *i past it). */
static int
unescape_char(const char *s, size_t len, size_t *i, char *c)
{
    char ch = s[*i];

    if (ch != '\\') {
        *c = ch;
        return 0;
    }
    if (++*i >= len)
        return ck_error_set(CK_ERR_INVAL, "principal: trailing backslash");
    switch (s[*i]) {
    case 'n': *c = '\n'; break;
    case 't': *c = '\t'; break;
    case 'b': *c = '\b'; break;
    case '0': *c = '\0'; break;
    default: *c = s[*i]; break;
    }
    return 0;
}

int
ck_principal_parse(const char *name, const char *default_realm, unsigned flags,
                   ck_principal **out)
{
    bool enterprise = (flags & CK_PRINCIPAL_PARSE_ENTERPRISE) != 0;
    char buf[CK_PRINCIPAL_MAX_COMPONENT_LEN + 1];
    char realm[CK_REALM_MAX_LEN + 1];
    ck_principal *p = NULL;
    size_t len, blen = 0, rlen = 0, name_end;
    long sep;
    int ret = 0;

    *out = NULL;
    if (name == NULL || *name == '\0')
        return ck_error_set(CK_ERR_INVAL, "principal: empty name");
    len = strlen(name);
    if (len >= CK_PRINCIPAL_MAX_TEXT)
        return ck_error_set(CK_ERR_LIMIT, "principal: name too long");
    sep = find_realm_sep(name, len, enterprise);
    if (sep < 0)
        return ck_error_set(CK_ERR_INVAL, "principal: trailing backslash");
    name_end = (size_t)sep;
    if (name_end == 0)
        return ck_error_set(CK_ERR_INVAL, "principal '%.64s': empty name part", name);

    if (name_end < len) {
        if (flags & CK_PRINCIPAL_PARSE_NO_REALM)
            return ck_error_set(CK_ERR_INVAL, "principal '%.64s': realm not allowed", name);
        for (size_t i = name_end + 1; i < len; i++) {
            char c;
            if (name[i] == '@' || name[i] == '/')
                return ck_error_set(CK_ERR_INVAL, "principal '%.64s': unescaped '%c' in realm",
                                    name, name[i]);
            if ((ret = unescape_char(name, len, &i, &c)) != 0)
                return ret;
            if (c == '\0')
                return ck_error_set(CK_ERR_UNSUPPORTED, "principal: NUL byte in realm");
            if (rlen >= CK_REALM_MAX_LEN)
                return ck_error_set(CK_ERR_LIMIT, "principal: realm longer than %d bytes",
                                    CK_REALM_MAX_LEN);
            realm[rlen++] = c;
        }
        if (rlen == 0)
            return ck_error_set(CK_ERR_INVAL, "principal '%.64s': empty realm", name);
    } else {
        if (flags & CK_PRINCIPAL_PARSE_REQUIRE_REALM)
            return ck_error_set(CK_ERR_INVAL, "principal '%.64s': realm required", name);
        if (default_realm == NULL || *default_realm == '\0')
            return ck_error_set(CK_ERR_INVAL, "principal '%.64s': no realm and no default",
                                name);
        rlen = strlen(default_realm);
        if (rlen > CK_REALM_MAX_LEN)
            return ck_error_set(CK_ERR_LIMIT, "principal: realm longer than %d bytes",
                                CK_REALM_MAX_LEN);
        memcpy(realm, default_realm, rlen);
    }

    ret = ck_principal_new(realm, rlen, enterprise ? CK_NT_ENTERPRISE : CK_NT_PRINCIPAL, &p);
    if (ret != 0)
        goto out;
    for (size_t i = 0; i < name_end; i++) {
        char c;
        if (name[i] == '/' && !enterprise) {
            if ((ret = ck_principal_add_component(p, buf, blen)) != 0)
                goto out;
            blen = 0;
            continue;
        }
        if ((ret = unescape_char(name, name_end, &i, &c)) != 0)
            goto out;
        if (c == '\0') {
            ret = ck_error_set(CK_ERR_UNSUPPORTED, "principal: NUL byte in component");
            goto out;
        }
        if (blen >= CK_PRINCIPAL_MAX_COMPONENT_LEN) {
            ret = ck_error_set(CK_ERR_LIMIT, "principal: component longer than %d bytes",
                               CK_PRINCIPAL_MAX_COMPONENT_LEN);
            goto out;
        }
        buf[blen++] = c;
    }
    if ((ret = ck_principal_add_component(p, buf, blen)) != 0)
        goto out;
    /* As MIT does, a krbtgt/X name is a service instance so the KDC can match it either way. */
    if (!enterprise && ck_principal_is_any_tgs(p))
        p->name_type = CK_NT_SRV_INST;
    *out = p;
    p = NULL;
out:
    ck_principal_free(p);
    ck_memzero(buf, sizeof(buf));
    return ret;
}

static int
put_escaped(const char *s, char *buf, size_t size, size_t *pos)
{
    /* '/' is escaped in the realm too, because our parser (like MIT's) refuses it there. */
    for (const char *c = s; *c != '\0'; c++) {
        char esc = 0;
        switch (*c) {
        case '/': esc = '/'; break;
        case '@': esc = '@'; break;
        case '\\': esc = '\\'; break;
        case '\n': esc = 'n'; break;
        case '\t': esc = 't'; break;
        case '\b': esc = 'b'; break;
        default: break;
        }
        if (*pos + (esc ? 2 : 1) >= size)
            return ck_error_set(CK_ERR_LIMIT, "principal: text buffer too small");
        if (esc) {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = esc;
        } else {
            buf[(*pos)++] = *c;
        }
    }
    return 0;
}

int
ck_principal_unparse_buf(const ck_principal *p, unsigned flags, char *buf, size_t size,
                         size_t *out_len)
{
    size_t pos = 0;
    int ret;

    if (size == 0)
        return ck_error_set(CK_ERR_LIMIT, "principal: text buffer too small");
    buf[0] = '\0';
    for (size_t i = 0; i < p->n_components; i++) {
        if (i > 0) {
            if (pos + 1 >= size)
                return ck_error_set(CK_ERR_LIMIT, "principal: text buffer too small");
            buf[pos++] = '/';
        }
        if ((ret = put_escaped(p->components[i], buf, size, &pos)) != 0)
            return ret;
    }
    if (!(flags & CK_PRINCIPAL_UNPARSE_NO_REALM)) {
        if (pos + 1 >= size)
            return ck_error_set(CK_ERR_LIMIT, "principal: text buffer too small");
        buf[pos++] = '@';
        if ((ret = put_escaped(p->realm, buf, size, &pos)) != 0)
            return ret;
    }
    buf[pos] = '\0';
    if (out_len != NULL)
        *out_len = pos;
    return 0;
}

int
ck_principal_unparse(const ck_principal *p, unsigned flags, char **out)
{
    size_t need = 2 * strlen(p->realm) + 2, len = 0;
    char *buf;
    int ret;

    *out = NULL;
    for (size_t i = 0; i < p->n_components; i++)
        need += 2 * strlen(p->components[i]) + 1;
    buf = malloc(need);
    if (buf == NULL)
        return ck_error_set(CK_ERR_NOMEM, "principal");
    ret = ck_principal_unparse_buf(p, flags, buf, need, &len);
    if (ret != 0) {
        free(buf);
        return ret;
    }
    *out = buf;
    return 0;
}

bool
ck_principal_equal_no_realm(const ck_principal *a, const ck_principal *b)
{
    if (a == NULL || b == NULL || a->n_components != b->n_components)
        return false;
    for (size_t i = 0; i < a->n_components; i++) {
        if (strcmp(a->components[i], b->components[i]) != 0)
            return false;
    }
    return true;
}

bool
ck_principal_equal(const ck_principal *a, const ck_principal *b)
{
    return ck_principal_equal_no_realm(a, b) && strcmp(a->realm, b->realm) == 0;
}

int
ck_principal_copy(const ck_principal *src, ck_principal **out)
{
    ck_principal *p = NULL;
    int ret;

    *out = NULL;
    ret = ck_principal_new(src->realm, strlen(src->realm), src->name_type, &p);
    for (size_t i = 0; ret == 0 && i < src->n_components; i++)
        ret = ck_principal_add_component(p, src->components[i], strlen(src->components[i]));
    if (ret != 0) {
        ck_principal_free(p);
        return ret;
    }
    *out = p;
    return 0;
}

int
ck_principal_default_salt(const ck_principal *p, uint8_t **salt, size_t *salt_len)
{
    size_t total = strlen(p->realm), pos;
    uint8_t *s;

    *salt = NULL;
    *salt_len = 0;
    for (size_t i = 0; i < p->n_components; i++)
        total += strlen(p->components[i]);
    s = malloc(total + 1);
    if (s == NULL)
        return ck_error_set(CK_ERR_NOMEM, "principal salt");
    pos = strlen(p->realm);
    memcpy(s, p->realm, pos);
    for (size_t i = 0; i < p->n_components; i++) {
        size_t n = strlen(p->components[i]);
        memcpy(s + pos, p->components[i], n);
        pos += n;
    }
    s[pos] = '\0';
    *salt = s;
    *salt_len = total;
    return 0;
}

bool
ck_principal_is_any_tgs(const ck_principal *p)
{
    return p != NULL && p->n_components == 2 && strcmp(p->components[0], CK_TGS_NAME) == 0;
}

bool
ck_principal_is_tgs(const ck_principal *p, const char *realm)
{
    if (!ck_principal_is_any_tgs(p))
        return false;
    if (realm == NULL)
        realm = p->realm;
    return strcmp(p->components[1], realm) == 0 && strcmp(p->realm, realm) == 0;
}
