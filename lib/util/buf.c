#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/util.h"

void
ck_reader_init(ck_reader *r, const uint8_t *data, size_t len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
}

size_t
ck_reader_remaining(const ck_reader *r)
{
    return r->len - r->pos;
}

int
ck_reader_bytes(ck_reader *r, size_t n, const uint8_t **p)
{
    if (n > r->len - r->pos)
        return ck_error_set(CK_ERR_DECODE, "truncated: need %zu bytes, have %zu", n,
                            r->len - r->pos);
    *p = r->data + r->pos;
    r->pos += n;
    return 0;
}

int
ck_reader_copy(ck_reader *r, void *dst, size_t n)
{
    const uint8_t *p = NULL;
    int ret = ck_reader_bytes(r, n, &p);

    if (ret == 0 && n > 0)
        memcpy(dst, p, n);
    return ret;
}

int
ck_reader_u8(ck_reader *r, uint8_t *v)
{
    const uint8_t *p = NULL;
    int ret = ck_reader_bytes(r, 1, &p);

    if (ret == 0)
        *v = p[0];
    return ret;
}

int
ck_reader_u16be(ck_reader *r, uint16_t *v)
{
    const uint8_t *p = NULL;
    int ret = ck_reader_bytes(r, 2, &p);

    if (ret == 0)
        *v = (uint16_t)((p[0] << 8) | p[1]);
    return ret;
}

int
ck_reader_u32be(ck_reader *r, uint32_t *v)
{
    const uint8_t *p = NULL;
    int ret = ck_reader_bytes(r, 4, &p);

    if (ret == 0)
        *v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return ret;
}

void
ck_writer_init(ck_writer *w, size_t max, bool secret)
{
    w->data = NULL;
    w->len = 0;
    w->cap = 0;
    w->max = max;
    w->secret = secret;
}

static int
writer_reserve(ck_writer *w, size_t n)
{
    size_t need, cap;
    uint8_t *nd;

    if (n > w->max - w->len)
        return ck_error_set(CK_ERR_LIMIT, "output exceeds %zu bytes", w->max);
    need = w->len + n;
    if (need <= w->cap)
        return 0;
    cap = w->cap ? w->cap : 64;
    while (cap < need)
        cap = cap > w->max / 2 ? w->max : cap * 2;
    nd = malloc(cap);
    if (nd == NULL)
        return ck_error_set(CK_ERR_NOMEM, "writer: %zu bytes", cap);
    if (w->len > 0)
        memcpy(nd, w->data, w->len);
    if (w->secret)
        ck_free_secret(w->data, w->cap);
    else
        free(w->data);
    w->data = nd;
    w->cap = cap;
    return 0;
}

int
ck_writer_bytes(ck_writer *w, const void *p, size_t n)
{
    int ret = writer_reserve(w, n);

    if (ret == 0 && n > 0) {
        memcpy(w->data + w->len, p, n);
        w->len += n;
    }
    return ret;
}

int
ck_writer_u8(ck_writer *w, uint8_t v)
{
    return ck_writer_bytes(w, &v, 1);
}

int
ck_writer_u16be(ck_writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

    return ck_writer_bytes(w, b, 2);
}

int
ck_writer_u32be(ck_writer *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

    return ck_writer_bytes(w, b, 4);
}

uint8_t *
ck_writer_take(ck_writer *w, size_t *len)
{
    uint8_t *d = w->data;

    *len = w->len;
    if (d == NULL)
        d = calloc(1, 1);
    w->data = NULL;
    w->len = w->cap = 0;
    return d;
}

void
ck_writer_free(ck_writer *w)
{
    if (w == NULL)
        return;
    if (w->secret)
        ck_free_secret(w->data, w->cap);
    else
        free(w->data);
    w->data = NULL;
    w->len = w->cap = 0;
}
