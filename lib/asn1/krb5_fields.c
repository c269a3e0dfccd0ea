/* Field helpers for the RFC 4120 types: KerberosTime, flags, nonces, optional integers,
 * KerberosString, PrincipalName, and list builders. */
#include <string.h>
#include <stdio.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "asn1/asn1_int.h"

/* Days since 1970-01-01 of a proleptic Gregorian civil date (Howard Hinnant's algorithm, from
 * its published description). */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int
is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
digits(const unsigned char *s, size_t n, int *out)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int
ck_asn1_time_parse(const unsigned char *s, size_t len, int64_t *secs)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se;

    /* RFC 4120 §5.2.3: UTC, no fractional seconds, 'Z' suffix: exactly 15 characters. */
    if (s == NULL || len != 15 || s[14] != 'Z')
        return CK_ERR_DECODE;
    if (digits(s, 4, &y) || digits(s + 4, 2, &mo) || digits(s + 6, 2, &d) ||
        digits(s + 8, 2, &h) || digits(s + 10, 2, &mi) || digits(s + 12, 2, &se))
        return CK_ERR_DECODE;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60)
        return CK_ERR_DECODE;
    if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
        return CK_ERR_DECODE;
    *secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return 0;
}

int
ck_asn1_time_get(const ASN1_GENERALIZEDTIME *t, int64_t *secs)
{
    if (t == NULL || secs == NULL)
        return ck_error_set(CK_ERR_INVAL, "KerberosTime: missing");
    if (ck_asn1_time_parse(t->data, (size_t)t->length, secs) != 0)
        return ck_error_set(CK_ERR_DECODE, "KerberosTime: not YYYYMMDDHHMMSSZ");
    return 0;
}

int
ck_asn1_time_get_opt(const ASN1_GENERALIZEDTIME *t, int64_t dflt, int64_t *secs)
{
    if (t == NULL) {
        *secs = dflt;
        return 0;
    }
    return ck_asn1_time_get(t, secs);
}

/* Writes v (0 <= v < 10^n, checked by the caller's range) as n decimal digits. */
static void
put_digits(char *out, int n, int v)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

int
ck_asn1_time_set(ASN1_GENERALIZEDTIME **t, int64_t secs)
{
    /* 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z */
    const int64_t min = -62167219200LL, max = 253402300799LL;
    char buf[15];
    int64_t days, rem, y;
    int m, d;
    ASN1_GENERALIZEDTIME *nt = NULL;

    if (t == NULL || secs < min || secs > max)
        return ck_error_set(CK_ERR_INVAL, "KerberosTime: %lld out of range", (long long)secs);
    days = secs / 86400;
    rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    /* Digits written directly: snprintf was ~5% of the KDC's CPU (several times per reply). */
    put_digits(buf, 4, (int)y);
    put_digits(buf + 4, 2, m);
    put_digits(buf + 6, 2, d);
    put_digits(buf + 8, 2, (int)(rem / 3600));
    put_digits(buf + 10, 2, (int)(rem / 60 % 60));
    put_digits(buf + 12, 2, (int)(rem % 60));
    buf[14] = 'Z';
    if (*t == NULL) {
        nt = ASN1_GENERALIZEDTIME_new();
        if (nt == NULL)
            return ck_error_set(CK_ERR_NOMEM, "KerberosTime");
    }
    if (!ASN1_STRING_set(nt != NULL ? nt : *t, buf, 15)) {
        ASN1_GENERALIZEDTIME_free(nt);
        return ck_error_set(CK_ERR_NOMEM, "KerberosTime");
    }
    if (nt != NULL)
        *t = nt;
    return 0;
}

int
ck_asn1_flags_set(ASN1_BIT_STRING **bs, uint32_t flags)
{
    unsigned char b[4] = {(unsigned char)(flags >> 24), (unsigned char)(flags >> 16),
                          (unsigned char)(flags >> 8), (unsigned char)flags};
    ASN1_BIT_STRING *n = NULL;

    if (bs == NULL)
        return ck_error_set(CK_ERR_INVAL, "flags: NULL");
    if (*bs == NULL && (n = ASN1_BIT_STRING_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "flags");
    if (!ASN1_STRING_set(n != NULL ? n : *bs, b, 4)) {
        ASN1_BIT_STRING_free(n);
        return ck_error_set(CK_ERR_NOMEM, "flags");
    }
    if (n != NULL)
        *bs = n;
    /* Without BITS_LEFT OpenSSL drops trailing zero octets and bits; RFC 4120 §5.2.8 and MIT
     * want all 32 bits with 0 unused. */
    (*bs)->flags = ((*bs)->flags & ~0x07L) | ASN1_STRING_FLAG_BITS_LEFT;
    return 0;
}

int
ck_asn1_flags_get(const ASN1_BIT_STRING *bs, uint32_t *flags)
{
    uint32_t v = 0;

    if (bs == NULL || flags == NULL)
        return ck_error_set(CK_ERR_INVAL, "flags: missing");
    for (int i = 0; i < 4; i++) {
        v <<= 8;
        if (i < bs->length)
            v |= bs->data[i];
    }
    *flags = v;
    return 0;
}

int
ck_asn1_nonce_get(const ASN1_INTEGER *n, uint32_t *v)
{
    int64_t x;

    if (n == NULL || v == NULL)
        return ck_error_set(CK_ERR_INVAL, "nonce: missing");
    if (!ASN1_INTEGER_get_int64(&x, n) || x < INT32_MIN || x > (int64_t)UINT32_MAX) {
        ERR_clear_error();
        return ck_error_set(CK_ERR_DECODE, "nonce: out of range");
    }
    *v = (uint32_t)x;
    return 0;
}

int
ck_asn1_nonce_set(ASN1_INTEGER **n, uint32_t v)
{
    ASN1_INTEGER *nn = NULL;

    if (n == NULL)
        return ck_error_set(CK_ERR_INVAL, "nonce: NULL");
    if (*n == NULL && (nn = ASN1_INTEGER_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "nonce");
    /* MIT's decoder refuses the 5-byte positive form of values >= 2^31, but accepts the 4-byte
     * two's complement: write the value as a signed 32-bit integer. */
    if (!ASN1_INTEGER_set_int64(nn != NULL ? nn : *n, (int64_t)(int32_t)v)) {
        ASN1_INTEGER_free(nn);
        return ck_error_set(CK_ERR_NOMEM, "nonce");
    }
    if (nn != NULL)
        *n = nn;
    return 0;
}

int
ck_asn1_nonce_copy(ASN1_INTEGER **dst, const ASN1_INTEGER *src)
{
    ASN1_INTEGER *d;

    if (dst == NULL || src == NULL)
        return ck_error_set(CK_ERR_INVAL, "nonce copy: NULL");
    if ((d = ASN1_INTEGER_dup(src)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "nonce copy");
    ASN1_INTEGER_free(*dst);
    *dst = d;
    return 0;
}

/* The INT32/UINT32 items allocate and free their pointer fields with OPENSSL_zalloc/OPENSSL_free,
 * so these helpers must use the same allocator. */
int
ck_asn1_int32_set(int32_t **p, int32_t v)
{
    if (p == NULL)
        return ck_error_set(CK_ERR_INVAL, "int32: NULL");
    if (*p == NULL && (*p = OPENSSL_zalloc(sizeof(**p))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "int32");
    **p = v;
    return 0;
}

int32_t
ck_asn1_int32_get(const int32_t *p, int32_t dflt)
{
    return p != NULL ? *p : dflt;
}

int
ck_asn1_uint32_set(uint32_t **p, uint32_t v)
{
    if (p == NULL)
        return ck_error_set(CK_ERR_INVAL, "uint32: NULL");
    if (*p == NULL && (*p = OPENSSL_zalloc(sizeof(**p))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "uint32");
    **p = v;
    return 0;
}

uint32_t
ck_asn1_uint32_get(const uint32_t *p, uint32_t dflt)
{
    return p != NULL ? *p : dflt;
}

void
ck_asn1_int32_clear(int32_t **p)
{
    if (p != NULL) {
        OPENSSL_free(*p);
        *p = NULL;
    }
}

void
ck_asn1_uint32_clear(uint32_t **p)
{
    if (p != NULL) {
        OPENSSL_free(*p);
        *p = NULL;
    }
}

/* KerberosString policy for values we create: well-formed UTF-8 without control characters. */
static int
kstring_ok(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and values above U+10FFFF. */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

int
ck_asn1_kstring_set_len(ASN1_GENERALSTRING **s, const char *str, size_t len)
{
    ASN1_GENERALSTRING *n = NULL;

    if (s == NULL || (str == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "KerberosString: NULL");
    if (len > CK_ASN1_MAX_STRING)
        return ck_error_set(CK_ERR_LIMIT, "KerberosString: %zu bytes", len);
    if (!kstring_ok((const unsigned char *)str, len))
        return ck_error_set(CK_ERR_INVAL, "KerberosString: not UTF-8 text");
    if (*s == NULL && (n = ASN1_GENERALSTRING_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KerberosString");
    if (!ASN1_STRING_set(n != NULL ? n : *s, len > 0 ? str : "", (int)len)) {
        ASN1_GENERALSTRING_free(n);
        return ck_error_set(CK_ERR_NOMEM, "KerberosString");
    }
    if (n != NULL)
        *s = n;
    return 0;
}

int
ck_asn1_kstring_set(ASN1_GENERALSTRING **s, const char *str)
{
    if (str == NULL)
        return ck_error_set(CK_ERR_INVAL, "KerberosString: NULL");
    return ck_asn1_kstring_set_len(s, str, strlen(str));
}

const char *
ck_asn1_kstring_get(const ASN1_GENERALSTRING *s)
{
    /* ASN1_STRING_set and the decoder always NUL-terminate the data. */
    if (s == NULL || s->data == NULL)
        return "";
    return (const char *)s->data;
}

bool
ck_asn1_kstring_eq(const ASN1_GENERALSTRING *s, const char *str)
{
    size_t n;

    if (s == NULL || str == NULL)
        return false;
    n = strlen(str);
    return (size_t)s->length == n && (n == 0 || memcmp(s->data, str, n) == 0);
}

int
ck_asn1_octets_set(ASN1_OCTET_STRING **o, const uint8_t *data, size_t len)
{
    ASN1_OCTET_STRING *n = NULL;

    if (o == NULL || (data == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "OCTET STRING: NULL");
    if (len > CK_ASN1_MAX_ANY_OCTETS) /* each type's encoder applies its own, lower cap */
        return ck_error_set(CK_ERR_LIMIT, "OCTET STRING: %zu bytes", len);
    if (*o == NULL && (n = ASN1_OCTET_STRING_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "OCTET STRING");
    if (!ASN1_OCTET_STRING_set(n != NULL ? n : *o, data, (int)len)) {
        ASN1_OCTET_STRING_free(n);
        return ck_error_set(CK_ERR_NOMEM, "OCTET STRING");
    }
    if (n != NULL)
        *o = n;
    return 0;
}

int
ck_asn1_principal_set(CK_PRINCIPAL_NAME *p, int32_t name_type, const char *const *components,
                      size_t n)
{
    STACK_OF(ASN1_GENERALSTRING) *sk = NULL;
    ASN1_GENERALSTRING *s = NULL;
    int rc;

    if (p == NULL || (components == NULL && n > 0))
        return ck_error_set(CK_ERR_INVAL, "PrincipalName: NULL");
    if (n == 0 || n > CK_ASN1_MAX_COMPONENTS)
        return ck_error_set(CK_ERR_LIMIT, "PrincipalName: %zu components", n);
    if ((sk = sk_ASN1_GENERALSTRING_new_null()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "PrincipalName");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = ck_asn1_kstring_set(&s, components[i])) != 0)
            goto out;
        if (!sk_ASN1_GENERALSTRING_push(sk, s)) {
            rc = ck_error_set(CK_ERR_NOMEM, "PrincipalName");
            goto out;
        }
        s = NULL;
    }
    sk_ASN1_GENERALSTRING_pop_free(p->name_string, ASN1_GENERALSTRING_free);
    p->name_string = sk;
    p->name_type = name_type;
    p->enc.modified = 1;
    sk = NULL;
    rc = 0;
out:
    ASN1_GENERALSTRING_free(s);
    sk_ASN1_GENERALSTRING_pop_free(sk, ASN1_GENERALSTRING_free);
    return rc;
}

int
ck_asn1_principal_new(int32_t name_type, const char *const *components, size_t n,
                      CK_PRINCIPAL_NAME **out)
{
    CK_PRINCIPAL_NAME *p;
    int rc;

    *out = NULL;
    if ((p = CK_PRINCIPAL_NAME_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "PrincipalName");
    if ((rc = ck_asn1_principal_set(p, name_type, components, n)) != 0) {
        CK_PRINCIPAL_NAME_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

size_t
ck_asn1_principal_count(const CK_PRINCIPAL_NAME *p)
{
    int n;

    if (p == NULL || p->name_string == NULL)
        return 0;
    n = sk_ASN1_GENERALSTRING_num(p->name_string);
    return n > 0 ? (size_t)n : 0;
}

int
ck_asn1_principal_component(const CK_PRINCIPAL_NAME *p, size_t i, const char **s, size_t *len)
{
    const ASN1_GENERALSTRING *g;

    if (i >= ck_asn1_principal_count(p))
        return ck_error_set(CK_ERR_INVAL, "PrincipalName: no component %zu", i);
    g = sk_ASN1_GENERALSTRING_value(p->name_string, (int)i);
    *s = ck_asn1_kstring_get(g);
    if (len != NULL)
        *len = (size_t)g->length;
    return 0;
}

bool
ck_asn1_principal_equal(const CK_PRINCIPAL_NAME *a, const CK_PRINCIPAL_NAME *b)
{
    size_t n = ck_asn1_principal_count(a);

    if (n == 0 || n != ck_asn1_principal_count(b))
        return false;
    for (size_t i = 0; i < n; i++) {
        const ASN1_GENERALSTRING *x = sk_ASN1_GENERALSTRING_value(a->name_string, (int)i);
        const ASN1_GENERALSTRING *y = sk_ASN1_GENERALSTRING_value(b->name_string, (int)i);
        if (ASN1_STRING_cmp(x, y) != 0)
            return false;
    }
    return true;
}

/* Appends one string with MIT-style escaping of the separators. */
static int
put_escaped(char *buf, size_t bufsize, size_t *pos, const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char e = 0;
        switch (s[i]) {
        case '/': e = '/'; break;
        case '@': e = '@'; break;
        case '\\': e = '\\'; break;
        case '\0': e = '0'; break;
        case '\t': e = 't'; break;
        case '\n': e = 'n'; break;
        case '\b': e = 'b'; break;
        default: break;
        }
        if (*pos + (e ? 2 : 1) >= bufsize)
            return ck_error_set(CK_ERR_LIMIT, "principal name longer than %zu", bufsize);
        if (e) {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = e;
        } else {
            buf[(*pos)++] = (char)s[i];
        }
    }
    buf[*pos] = '\0';
    return 0;
}

int
ck_asn1_principal_unparse(const CK_PRINCIPAL_NAME *p, const ASN1_GENERALSTRING *realm, char *buf,
                          size_t bufsize)
{
    size_t pos = 0, n = ck_asn1_principal_count(p);
    int rc;

    if (buf == NULL || bufsize == 0)
        return ck_error_set(CK_ERR_INVAL, "unparse: no buffer");
    buf[0] = '\0';
    if (n == 0)
        return ck_error_set(CK_ERR_INVAL, "unparse: empty principal");
    for (size_t i = 0; i < n; i++) {
        const ASN1_GENERALSTRING *g = sk_ASN1_GENERALSTRING_value(p->name_string, (int)i);
        if (i > 0) {
            if (pos + 1 >= bufsize)
                return ck_error_set(CK_ERR_LIMIT, "principal name longer than %zu", bufsize);
            buf[pos++] = '/';
            buf[pos] = '\0';
        }
        if ((rc = put_escaped(buf, bufsize, &pos, g->data, (size_t)g->length)) != 0)
            return rc;
    }
    if (realm != NULL) {
        if (pos + 1 >= bufsize)
            return ck_error_set(CK_ERR_LIMIT, "principal name longer than %zu", bufsize);
        buf[pos++] = '@';
        buf[pos] = '\0';
        if ((rc = put_escaped(buf, bufsize, &pos, realm->data, (size_t)realm->length)) != 0)
            return rc;
    }
    return 0;
}

int
ck_asn1_principal_parse(const char *str, int32_t name_type, CK_PRINCIPAL_NAME **name,
                        ASN1_GENERALSTRING **realm)
{
    char comp[CK_ASN1_MAX_COMPONENTS][CK_ASN1_MAX_STRING + 1];
    const char *ptrs[CK_ASN1_MAX_COMPONENTS];
    char rbuf[CK_ASN1_MAX_STRING + 1];
    size_t n = 0, pos = 0, rpos = 0;
    bool in_realm = false;
    char *cur = comp[0];
    size_t *curpos = &pos;
    int rc;

    if (name == NULL || str == NULL)
        return ck_error_set(CK_ERR_INVAL, "principal parse: NULL");
    *name = NULL;
    if (realm != NULL)
        *realm = NULL;
    for (const char *s = str;; s++) {
        char c = *s;
        if (c == '\\') {
            s++;
            switch (*s) {
            case '0': c = '\0'; break;
            case 't': c = '\t'; break;
            case 'n': c = '\n'; break;
            case 'b': c = '\b'; break;
            case '\0': return ck_error_set(CK_ERR_INVAL, "principal parse: trailing backslash");
            default: c = *s; break;
            }
            if (c == '\0')
                return ck_error_set(CK_ERR_INVAL, "principal parse: NUL in name");
        } else if (c == '\0' || (c == '/' && !in_realm) || (c == '@' && !in_realm)) {
            cur[*curpos] = '\0';
            if (!in_realm) {
                ptrs[n] = comp[n];
                n++;
            }
            if (c == '\0')
                break;
            if (c == '@') {
                in_realm = true;
                cur = rbuf;
                curpos = &rpos;
            } else {
                if (n >= CK_ASN1_MAX_COMPONENTS)
                    return ck_error_set(CK_ERR_LIMIT, "principal parse: too many components");
                cur = comp[n];
                pos = 0;
            }
            continue;
        } else if (c == '@' && in_realm) {
            return ck_error_set(CK_ERR_INVAL, "principal parse: unescaped '@' in realm");
        }
        if (*curpos >= CK_ASN1_MAX_STRING)
            return ck_error_set(CK_ERR_LIMIT, "principal parse: component too long");
        cur[(*curpos)++] = c;
    }
    if (in_realm && realm == NULL)
        return ck_error_set(CK_ERR_INVAL, "principal parse: realm not allowed here");
    if ((rc = ck_asn1_principal_new(name_type, ptrs, n, name)) != 0)
        return rc;
    if (in_realm && (rc = ck_asn1_kstring_set_len(realm, rbuf, rpos)) != 0) {
        CK_PRINCIPAL_NAME_free(*name);
        *name = NULL;
        return rc;
    }
    return 0;
}

int
ck_asn1_enc_data_set(CK_ENCRYPTED_DATA *ed, int32_t etype, const uint32_t *kvno,
                     const uint8_t *cipher, size_t len)
{
    int rc;

    if (ed == NULL)
        return ck_error_set(CK_ERR_INVAL, "EncryptedData: NULL");
    if ((rc = ck_asn1_octets_set(&ed->cipher, cipher, len)) != 0)
        return rc;
    if (kvno != NULL) {
        if ((rc = ck_asn1_uint32_set(&ed->kvno, *kvno)) != 0)
            return rc;
    } else {
        ck_asn1_uint32_clear(&ed->kvno);
    }
    ed->etype = etype;
    return 0;
}

int
ck_asn1_enc_key_set(CK_ENCRYPTION_KEY *k, int32_t keytype, const uint8_t *key, size_t len)
{
    int rc;

    if (k == NULL)
        return ck_error_set(CK_ERR_INVAL, "EncryptionKey: NULL");
    if (k->keyvalue != NULL && k->keyvalue->data != NULL)
        OPENSSL_cleanse(k->keyvalue->data, (size_t)k->keyvalue->length);
    if ((rc = ck_asn1_octets_set(&k->keyvalue, key, len)) != 0)
        return rc;
    k->keytype = keytype;
    return 0;
}

int
ck_asn1_checksum_set(CK_CHECKSUM *c, int32_t cksumtype, const uint8_t *data, size_t len)
{
    int rc;

    if (c == NULL)
        return ck_error_set(CK_ERR_INVAL, "Checksum: NULL");
    if ((rc = ck_asn1_octets_set(&c->checksum, data, len)) != 0)
        return rc;
    c->cksumtype = cksumtype;
    return 0;
}

int
ck_asn1_padata_add(CK_METHOD_DATA **md, int32_t type, const uint8_t *value, size_t len)
{
    CK_METHOD_DATA *nmd = NULL;
    CK_PA_DATA *pa = NULL;
    int rc;

    if (md == NULL)
        return ck_error_set(CK_ERR_INVAL, "PA-DATA: NULL");
    if (*md != NULL && sk_CK_PA_DATA_num(*md) >= CK_ASN1_MAX_PADATA)
        return ck_error_set(CK_ERR_LIMIT, "PA-DATA: more than %d entries", CK_ASN1_MAX_PADATA);
    if (*md == NULL && (nmd = sk_CK_PA_DATA_new_null()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "PA-DATA");
    if ((pa = CK_PA_DATA_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "PA-DATA");
        goto out;
    }
    pa->padata_type = type;
    if ((rc = ck_asn1_octets_set(&pa->padata_value, value, len)) != 0)
        goto out;
    if (!sk_CK_PA_DATA_push(nmd != NULL ? nmd : *md, pa)) {
        rc = ck_error_set(CK_ERR_NOMEM, "PA-DATA");
        goto out;
    }
    pa = NULL;
    if (nmd != NULL) {
        *md = nmd;
        nmd = NULL;
    }
    rc = 0;
out:
    CK_PA_DATA_free(pa);
    sk_CK_PA_DATA_free(nmd);
    return rc;
}

const CK_PA_DATA *
ck_asn1_padata_find(const CK_METHOD_DATA *md, int32_t type)
{
    if (md == NULL)
        return NULL;
    for (int i = 0; i < sk_CK_PA_DATA_num(md); i++) {
        const CK_PA_DATA *pa = sk_CK_PA_DATA_value(md, i);
        if (pa->padata_type == type)
            return pa;
    }
    return NULL;
}

int
ck_asn1_etype_info2_add(CK_ETYPE_INFO2 **info, int32_t etype, const char *salt,
                        const uint8_t *s2kparams, size_t s2kparams_len)
{
    CK_ETYPE_INFO2 *ni = NULL;
    CK_ETYPE_INFO2_ENTRY *e = NULL;
    int rc;

    if (info == NULL)
        return ck_error_set(CK_ERR_INVAL, "ETYPE-INFO2: NULL");
    if (*info != NULL && sk_CK_ETYPE_INFO2_ENTRY_num(*info) >= CK_ASN1_MAX_ETYPE_INFO)
        return ck_error_set(CK_ERR_LIMIT, "ETYPE-INFO2: too many entries");
    if (*info == NULL && (ni = sk_CK_ETYPE_INFO2_ENTRY_new_null()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "ETYPE-INFO2");
    if ((e = CK_ETYPE_INFO2_ENTRY_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "ETYPE-INFO2");
        goto out;
    }
    e->etype = etype;
    if (salt != NULL && (rc = ck_asn1_kstring_set(&e->salt, salt)) != 0)
        goto out;
    if (s2kparams != NULL &&
        (rc = ck_asn1_octets_set(&e->s2kparams, s2kparams, s2kparams_len)) != 0)
        goto out;
    if (!sk_CK_ETYPE_INFO2_ENTRY_push(ni != NULL ? ni : *info, e)) {
        rc = ck_error_set(CK_ERR_NOMEM, "ETYPE-INFO2");
        goto out;
    }
    e = NULL;
    if (ni != NULL) {
        *info = ni;
        ni = NULL;
    }
    rc = 0;
out:
    CK_ETYPE_INFO2_ENTRY_free(e);
    sk_CK_ETYPE_INFO2_ENTRY_free(ni);
    return rc;
}

int
ck_asn1_etypes_get(const CK_KDC_REQ_BODY *b, int32_t *out, size_t max, size_t *n)
{
    int num;

    *n = 0;
    if (b == NULL || b->etype == NULL)
        return ck_error_set(CK_ERR_INVAL, "etype list missing");
    num = sk_ASN1_INTEGER_num(b->etype);
    if (num < 0 || (size_t)num > max)
        return ck_error_set(CK_ERR_LIMIT, "etype list: %d entries, room for %zu", num, max);
    for (int i = 0; i < num; i++) {
        int64_t v;
        if (!ASN1_INTEGER_get_int64(&v, sk_ASN1_INTEGER_value(b->etype, i)) || v < INT32_MIN ||
            v > INT32_MAX) {
            ERR_clear_error();
            return ck_error_set(CK_ERR_DECODE, "etype list: entry %d not an Int32", i);
        }
        out[i] = (int32_t)v;
    }
    *n = (size_t)num;
    return 0;
}

int
ck_asn1_etypes_set(CK_KDC_REQ_BODY *b, const int32_t *etypes, size_t n)
{
    STACK_OF(ASN1_INTEGER) *sk = NULL;
    ASN1_INTEGER *v = NULL;
    int rc;

    if (b == NULL || (etypes == NULL && n > 0))
        return ck_error_set(CK_ERR_INVAL, "etype list: NULL");
    if (n == 0 || n > CK_ASN1_MAX_ETYPES)
        return ck_error_set(CK_ERR_LIMIT, "etype list: %zu entries", n);
    if ((sk = sk_ASN1_INTEGER_new_null()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "etype list");
    for (size_t i = 0; i < n; i++) {
        if ((v = ASN1_INTEGER_new()) == NULL || !ASN1_INTEGER_set_int64(v, etypes[i]) ||
            !sk_ASN1_INTEGER_push(sk, v)) {
            rc = ck_error_set(CK_ERR_NOMEM, "etype list");
            goto out;
        }
        v = NULL;
    }
    sk_ASN1_INTEGER_pop_free(b->etype, ASN1_INTEGER_free);
    b->etype = sk;
    sk = NULL;
    rc = 0;
out:
    ASN1_INTEGER_free(v);
    sk_ASN1_INTEGER_pop_free(sk, ASN1_INTEGER_free);
    return rc;
}

int
ck_asn1_host_address_add(CK_HOST_ADDRESSES **addrs, int32_t type, const uint8_t *addr, size_t len)
{
    CK_HOST_ADDRESSES *na = NULL;
    CK_HOST_ADDRESS *a = NULL;
    int rc;

    if (addrs == NULL)
        return ck_error_set(CK_ERR_INVAL, "HostAddresses: NULL");
    if (*addrs != NULL && sk_CK_HOST_ADDRESS_num(*addrs) >= CK_ASN1_MAX_ADDRESSES)
        return ck_error_set(CK_ERR_LIMIT, "HostAddresses: too many entries");
    if (*addrs == NULL && (na = sk_CK_HOST_ADDRESS_new_null()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "HostAddresses");
    if ((a = CK_HOST_ADDRESS_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "HostAddress");
        goto out;
    }
    a->addr_type = type;
    if ((rc = ck_asn1_octets_set(&a->address, addr, len)) != 0)
        goto out;
    if (!sk_CK_HOST_ADDRESS_push(na != NULL ? na : *addrs, a)) {
        rc = ck_error_set(CK_ERR_NOMEM, "HostAddresses");
        goto out;
    }
    a = NULL;
    if (na != NULL) {
        *addrs = na;
        na = NULL;
    }
    rc = 0;
out:
    CK_HOST_ADDRESS_free(a);
    sk_CK_HOST_ADDRESS_free(na);
    return rc;
}

int
ck_asn1_ad_add(CK_AUTHORIZATION_DATA **ad, int32_t type, const uint8_t *data, size_t len)
{
    CK_AUTHORIZATION_DATA *nad = NULL;
    CK_AD_ENTRY *e = NULL;
    int rc;

    if (ad == NULL)
        return ck_error_set(CK_ERR_INVAL, "AuthorizationData: NULL");
    if (*ad != NULL && sk_CK_AD_ENTRY_num(*ad) >= CK_ASN1_MAX_AD)
        return ck_error_set(CK_ERR_LIMIT, "AuthorizationData: too many entries");
    if (*ad == NULL && (nad = sk_CK_AD_ENTRY_new_null()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "AuthorizationData");
    if ((e = CK_AD_ENTRY_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "AuthorizationData");
        goto out;
    }
    e->ad_type = type;
    if ((rc = ck_asn1_octets_set(&e->ad_data, data, len)) != 0)
        goto out;
    if (!sk_CK_AD_ENTRY_push(nad != NULL ? nad : *ad, e)) {
        rc = ck_error_set(CK_ERR_NOMEM, "AuthorizationData");
        goto out;
    }
    e = NULL;
    if (nad != NULL) {
        *ad = nad;
        nad = NULL;
    }
    rc = 0;
out:
    CK_AD_ENTRY_free(e);
    sk_CK_AD_ENTRY_free(nad);
    return rc;
}
