#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/util.h"

void
ck_memzero(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

void
ck_free_secret(void *p, size_t len)
{
    if (p == NULL)
        return;
    ck_memzero(p, len);
    free(p);
}

bool
ck_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

void *
ck_memdup(const void *p, size_t len)
{
    void *d = malloc(len > 0 ? len : 1);

    if (d != NULL && len > 0)
        memcpy(d, p, len);
    return d;
}

size_t
ck_strlcpy(char *dst, const char *src, size_t dstsize)
{
    size_t n = strlen(src);

    if (dstsize > 0) {
        size_t c = n < dstsize - 1 ? n : dstsize - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

int
ck_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s == '\0')
        return ck_error_set(CK_ERR_INVAL, "empty number");
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return ck_error_set(CK_ERR_INVAL, "not a number: '%s'", s);
    if (v < min || v > max)
        return ck_error_set(CK_ERR_INVAL, "number %lld outside [%lld, %lld]", v, (long long)min,
                            (long long)max);
    *out = v;
    return 0;
}
