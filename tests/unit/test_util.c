#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "ck_test.h"

static void
reader_bounds(void)
{
    const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
    ck_reader r;
    uint8_t b;
    uint16_t s;
    uint32_t w;
    const uint8_t *p;

    ck_reader_init(&r, data, sizeof(data));
    CHECK_OK(ck_reader_u8(&r, &b));
    CHECK_INT_EQ(b, 1);
    CHECK_OK(ck_reader_u16be(&r, &s));
    CHECK_INT_EQ(s, 0x0203);
    CHECK_OK(ck_reader_u32be(&r, &w));
    CHECK_INT_EQ(w, 0x04050607);
    CHECK_INT_EQ(ck_reader_remaining(&r), 0);
    CHECK_INT_EQ(ck_reader_u8(&r, &b), CK_ERR_DECODE);
    ck_reader_init(&r, data, sizeof(data));
    CHECK_INT_EQ(ck_reader_bytes(&r, SIZE_MAX, &p), CK_ERR_DECODE);
    CHECK_INT_EQ(r.pos, 0);
}

static void
writer_limit(void)
{
    ck_writer w;
    uint8_t *out;
    size_t len;

    ck_writer_init(&w, 6, true);
    CHECK_OK(ck_writer_u16be(&w, 0xabcd));
    CHECK_OK(ck_writer_u32be(&w, 0x01020304));
    CHECK_INT_EQ(ck_writer_u8(&w, 0), CK_ERR_LIMIT);
    out = ck_writer_take(&w, &len);
    CHECK_MEM_EQ(out, len, "\xab\xcd\x01\x02\x03\x04", 6);
    free(out);
    ck_writer_free(&w);
}

static void
parse_int(void)
{
    int64_t v = 0;

    CHECK_OK(ck_parse_int64("88", 1, 65535, &v));
    CHECK_INT_EQ(v, 88);
    CHECK_INT_EQ(ck_parse_int64("88x", 1, 65535, &v), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_parse_int64("70000", 1, 65535, &v), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_parse_int64("", 1, 65535, &v), CK_ERR_INVAL);
}

static void
error_context(void)
{
    int rc = ck_error_set(CK_ERR_DECODE, "field %s", "nonce");

    CHECK_INT_EQ(rc, CK_ERR_DECODE);
    CHECK(strcmp(ck_error_context(), "field nonce") == 0);
    CHECK(ck_ct_equal("abc", "abc", 3));
    CHECK(!ck_ct_equal("abc", "abd", 3));
}

CK_TEST_MAIN("util", CK_TEST_CASE(reader_bounds), CK_TEST_CASE(writer_limit),
             CK_TEST_CASE(parse_int), CK_TEST_CASE(error_context))
