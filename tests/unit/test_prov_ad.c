/* The restricted-calls authorization data (prov_ad.h): a fixed encoding, round trips, every
 * limit, non-digits, wrong version, duplicates, non-DER input and the AD-IF-RELEVANT rules. The
 * negative inputs are written with a small DER writer here (test input only). */
#include <stdint.h>
#include <string.h>

#include "ck_test.h"
#include "cablekey/error.h"
#include "cablekey/prov_ad.h"

/* ---- a tiny DER writer for hostile inputs ---- */
struct buf {
    uint8_t b[4096];
    size_t n;
};

static void
put_len(struct buf *o, size_t len)
{
    if (len < 128) {
        o->b[o->n++] = (uint8_t)len;
    } else if (len < 256) {
        o->b[o->n++] = 0x81;
        o->b[o->n++] = (uint8_t)len;
    } else {
        o->b[o->n++] = 0x82;
        o->b[o->n++] = (uint8_t)(len >> 8);
        o->b[o->n++] = (uint8_t)len;
    }
}

static void
tlv(struct buf *o, uint8_t tag, const void *v, size_t len)
{
    o->b[o->n++] = tag;
    put_len(o, len);
    memcpy(o->b + o->n, v, len);
    o->n += len;
}

static void
wrap(struct buf *o, uint8_t tag, const struct buf *in)
{
    tlv(o, tag, in->b, in->n);
}

/* RestrictedCalls with chosen field contents. */
static void
build(struct buf *out, int version, size_t mac_len, size_t key_len, const char *const *nums,
      size_t n)
{
    struct buf f, t, seq, list;
    uint8_t zeros[64], v = (uint8_t)version;

    memset(zeros, 0x5a, sizeof(zeros));
    memset(&seq, 0, sizeof(seq));
    memset(&f, 0, sizeof(f));
    tlv(&f, 0x02, &v, 1);
    memset(&t, 0, sizeof(t));
    wrap(&t, 0xa0, &f);
    memcpy(seq.b + seq.n, t.b, t.n), seq.n += t.n;

    memset(&f, 0, sizeof(f));
    tlv(&f, 0x04, zeros, mac_len);
    memset(&t, 0, sizeof(t));
    wrap(&t, 0xa1, &f);
    memcpy(seq.b + seq.n, t.b, t.n), seq.n += t.n;

    memset(&f, 0, sizeof(f));
    tlv(&f, 0x04, zeros, key_len);
    memset(&t, 0, sizeof(t));
    wrap(&t, 0xa2, &f);
    memcpy(seq.b + seq.n, t.b, t.n), seq.n += t.n;

    memset(&list, 0, sizeof(list));
    for (size_t i = 0; i < n; i++)
        tlv(&list, 0x16, nums[i], strlen(nums[i]));
    memset(&f, 0, sizeof(f));
    wrap(&f, 0x30, &list);
    memset(&t, 0, sizeof(t));
    wrap(&t, 0xa3, &f);
    memcpy(seq.b + seq.n, t.b, t.n), seq.n += t.n;

    memset(out, 0, sizeof(*out));
    wrap(out, 0x30, &seq);
}

static void
sample(ck_ad_restricted *r)
{
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < 6; i++)
        r->mac[i] = (uint8_t)(i * 0x11);
    for (int i = 0; i < 32; i++)
        r->key_sha256[i] = (uint8_t)i;
    r->n_numbers = 2;
    memcpy(r->numbers[0], "611", 4);
    memcpy(r->numbers[1], "911", 4);
}

/* The layout of docs/PROTOCOL.md, byte for byte. */
static void
known_encoding(void)
{
    static const char *want_hex =
        "3041"
        "a003020101"
        "a1080406001122334455"
        "a2220420000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "a30c300a1603363131160339 3131";
    ck_ad_restricted r, back;
    uint8_t *der = NULL;
    size_t len = 0, want_len;
    unsigned char *want = ck_test_hex(want_hex, &want_len);

    sample(&r);
    CHECK_OK(ck_ad_restricted_encode(&r, &der, &len));
    CHECK_MEM_EQ(der, len, want, want_len);
    CHECK_OK(ck_ad_restricted_decode(want, want_len, &back));
    CHECK(memcmp(&r, &back, sizeof(r)) == 0);
    ck_asn1_free_der(der, len);
    free(want);
}

static void
round_trip_limits(void)
{
    ck_ad_restricted r, back;
    uint8_t *der = NULL;
    size_t len = 0;

    sample(&r);
    r.n_numbers = CK_AD_RESTRICTED_MAX_NUMBERS;
    for (size_t i = 0; i < r.n_numbers; i++) {
        /* 15 digits each, all different. */
        memcpy(r.numbers[i], "55512345678900", 14);
        r.numbers[i][13] = (char)('0' + i / 10);
        r.numbers[i][14] = (char)('0' + i % 10);
        r.numbers[i][15] = '\0';
        CHECK_INT_EQ(strlen(r.numbers[i]), CK_AD_RESTRICTED_NUMBER_MAX);
    }
    CHECK_OK(ck_ad_restricted_encode(&r, &der, &len));
    CHECK_OK(ck_ad_restricted_decode(der, len, &back));
    CHECK(memcmp(&r, &back, sizeof(r)) == 0);
    ck_asn1_free_der(der, len);

    /* One number more than allowed, none at all, an empty one, an unterminated one. */
    r.n_numbers = CK_AD_RESTRICTED_MAX_NUMBERS + 1;
    CHECK_INT_EQ(ck_ad_restricted_encode(&r, &der, &len), CK_ERR_LIMIT);
    CHECK(der == NULL && len == 0);
    r.n_numbers = 0;
    CHECK(ck_ad_restricted_encode(&r, &der, &len) != 0);
    r.n_numbers = 1;
    r.numbers[0][0] = '\0';
    CHECK(ck_ad_restricted_encode(&r, &der, &len) != 0);
    memset(r.numbers[0], '1', sizeof(r.numbers[0]));
    CHECK_INT_EQ(ck_ad_restricted_encode(&r, &der, &len), CK_ERR_INVAL);
    CHECK(ck_ad_restricted_encode(NULL, &der, &len) != 0);
}

static void
decode_limits(void)
{
    static const char *const one[] = {"611"};
    static const char *const sixteen_digits[] = {"1234567890123456"};
    static const char *const fifteen_digits[] = {"123456789012345"};
    static const char *const empty[] = {""};
    const char *many[CK_AD_RESTRICTED_MAX_NUMBERS + 1];
    char store[CK_AD_RESTRICTED_MAX_NUMBERS + 1][16];
    ck_ad_restricted r;
    struct buf b;

    build(&b, 1, 6, 32, one, 1);
    CHECK_OK(ck_ad_restricted_decode(b.b, b.n, &r));
    CHECK_INT_EQ(r.n_numbers, 1);
    build(&b, 1, 6, 32, fifteen_digits, 1);
    CHECK_OK(ck_ad_restricted_decode(b.b, b.n, &r));
    build(&b, 1, 6, 32, sixteen_digits, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    build(&b, 1, 6, 32, empty, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    build(&b, 1, 6, 32, NULL, 0);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    build(&b, 1, 5, 32, one, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    build(&b, 1, 7, 32, one, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    build(&b, 1, 6, 31, one, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    build(&b, 1, 6, 33, one, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    for (int i = 0; i <= CK_AD_RESTRICTED_MAX_NUMBERS; i++) {
        snprintf(store[i], sizeof(store[i]), "%u", (unsigned)(100 + i));
        many[i] = store[i];
    }
    build(&b, 1, 6, 32, many, CK_AD_RESTRICTED_MAX_NUMBERS);
    CHECK_OK(ck_ad_restricted_decode(b.b, b.n, &r));
    CHECK_INT_EQ(r.n_numbers, CK_AD_RESTRICTED_MAX_NUMBERS);
    CHECK(strcmp(r.numbers[15], "115") == 0);
    build(&b, 1, 6, 32, many, CK_AD_RESTRICTED_MAX_NUMBERS + 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    /* A failed decode leaves nothing behind that could be mistaken for a restriction. */
    CHECK_INT_EQ(r.n_numbers, 0);
    CHECK(ck_ad_restricted_decode(b.b, 0, &r) != 0);
    CHECK(ck_ad_restricted_decode(NULL, 0, &r) != 0);
}

static void
non_digits(void)
{
    static const char *const plus[] = {"+611"};
    static const char *const star[] = {"61*"};
    static const char *const space[] = {"6 11"};
    ck_ad_restricted r;
    uint8_t *der = NULL;
    size_t len = 0;
    struct buf b;

    build(&b, 1, 6, 32, plus, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    build(&b, 1, 6, 32, star, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    build(&b, 1, 6, 32, space, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    /* An embedded NUL ("9", NUL, "1", written with its length). */
    {
        struct buf list, f, t, seq;
        static const uint8_t head[] = {0xa0, 0x03, 0x02, 0x01, 0x01};
        uint8_t mac[6] = {0}, key[32] = {0};

        memset(&seq, 0, sizeof(seq));
        memcpy(seq.b, head, sizeof(head));
        seq.n = sizeof(head);
        memset(&f, 0, sizeof(f));
        tlv(&f, 0x04, mac, 6);
        memset(&t, 0, sizeof(t));
        wrap(&t, 0xa1, &f);
        memcpy(seq.b + seq.n, t.b, t.n), seq.n += t.n;
        memset(&f, 0, sizeof(f));
        tlv(&f, 0x04, key, 32);
        memset(&t, 0, sizeof(t));
        wrap(&t, 0xa2, &f);
        memcpy(seq.b + seq.n, t.b, t.n), seq.n += t.n;
        memset(&list, 0, sizeof(list));
        tlv(&list, 0x16, "9\0001", 3);
        memset(&f, 0, sizeof(f));
        wrap(&f, 0x30, &list);
        memset(&t, 0, sizeof(t));
        wrap(&t, 0xa3, &f);
        memcpy(seq.b + seq.n, t.b, t.n), seq.n += t.n;
        memset(&b, 0, sizeof(b));
        wrap(&b, 0x30, &seq);
        CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    }
    /* The encoder refuses them too. */
    sample(&r);
    memcpy(r.numbers[1], "91a", 4);
    CHECK_INT_EQ(ck_ad_restricted_encode(&r, &der, &len), CK_ERR_ENCODE);
    CHECK(der == NULL);
}

static void
wrong_version(void)
{
    static const char *const one[] = {"611"};
    ck_ad_restricted r;
    struct buf b;

    build(&b, 0, 6, 32, one, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    build(&b, 2, 6, 32, one, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    build(&b, -1, 6, 32, one, 1);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
}

static void
duplicates(void)
{
    static const char *const dup[] = {"611", "911", "611"};
    ck_ad_restricted r;
    CK_AUTHORIZATION_DATA *ad = NULL;
    bool found = true;
    struct buf b;

    build(&b, 1, 6, 32, dup, 3);
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
    sample(&r);
    memcpy(r.numbers[1], "611", 4);
    {
        uint8_t *der = NULL;
        size_t len = 0;
        CHECK_INT_EQ(ck_ad_restricted_encode(&r, &der, &len), CK_ERR_ENCODE);
    }
    /* The element twice in one ticket: refused, whichever way it was placed. */
    sample(&r);
    CHECK_OK(ck_ad_restricted_add(&ad, &r));
    CHECK_OK(ck_ad_restricted_add(&ad, &r));
    CHECK_INT_EQ(ck_ad_restricted_find(ad, &r, &found), CK_ERR_POLICY);
    CHECK(!found);
    CK_AUTHORIZATION_DATA_free(ad);
    ad = NULL;
    sample(&r);
    CHECK_OK(ck_ad_restricted_add(&ad, &r));
    {
        uint8_t *der = NULL;
        size_t len = 0;
        CHECK_OK(ck_ad_restricted_encode(&r, &der, &len));
        CHECK_OK(ck_asn1_ad_add(&ad, CK_AD_CABLEKEY_RESTRICTED, der, len));
        ck_asn1_free_der(der, len);
    }
    CHECK_INT_EQ(ck_ad_restricted_find(ad, &r, &found), CK_ERR_POLICY);
    CK_AUTHORIZATION_DATA_free(ad);
}

static void
not_der(void)
{
    static const char *const one[] = {"611"};
    ck_ad_restricted r;
    struct buf b, longform;
    uint8_t big[sizeof(b.b) + 2];

    build(&b, 1, 6, 32, one, 1);
    CHECK_OK(ck_ad_restricted_decode(b.b, b.n, &r));
    /* Trailing byte. */
    memcpy(big, b.b, b.n);
    big[b.n] = 0;
    CHECK_INT_EQ(ck_ad_restricted_decode(big, b.n + 1, &r), CK_ERR_DECODE);
    /* Truncated. */
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n - 1, &r), CK_ERR_DECODE);
    /* Outer length in the long form although it fits the short one. */
    memset(&longform, 0, sizeof(longform));
    longform.b[0] = 0x30;
    longform.b[1] = 0x81;
    longform.b[2] = (uint8_t)(b.n - 2);
    memcpy(longform.b + 3, b.b + 2, b.n - 2);
    longform.n = b.n + 1;
    CHECK_INT_EQ(ck_ad_restricted_decode(longform.b, longform.n, &r), CK_ERR_DECODE);
    /* Version as a non-minimal INTEGER 00 01 (outer length one more; short form here). */
    {
        uint8_t bad[sizeof(b.b) + 1];
        static const uint8_t ver[] = {0xa0, 0x04, 0x02, 0x02, 0x00, 0x01};

        CHECK(b.b[1] < 0x7f);
        bad[0] = 0x30;
        bad[1] = (uint8_t)(b.b[1] + 1);
        memcpy(bad + 2, ver, sizeof(ver));
        memcpy(bad + 2 + sizeof(ver), b.b + 7, b.n - 7);
        CHECK_INT_EQ(ck_ad_restricted_decode(bad, b.n + 1, &r), CK_ERR_DECODE);
    }
    /* A UTF8String where IA5String belongs. */
    b.b[b.n - 5] = 0x0c;
    CHECK_INT_EQ(ck_ad_restricted_decode(b.b, b.n, &r), CK_ERR_DECODE);
}

static void
if_relevant(void)
{
    ck_ad_restricted r, got;
    CK_AUTHORIZATION_DATA *ad = NULL, *outer = NULL;
    uint8_t *der = NULL, *wrapped = NULL;
    size_t len = 0, wlen = 0;
    bool found = true;

    sample(&r);
    /* Absent: no AD, or AD without the element. */
    CHECK_OK(ck_ad_restricted_find(NULL, &got, &found));
    CHECK(!found);
    CHECK_OK(ck_asn1_ad_add(&ad, 71, (const uint8_t *)"x", 1));
    CHECK_OK(ck_ad_restricted_find(ad, &got, &found));
    CHECK(!found);
    /* Added (wrapped): found at one level. */
    CHECK_OK(ck_ad_restricted_add(&ad, &r));
    CHECK_INT_EQ(sk_CK_AD_ENTRY_num(ad), 2);
    CHECK_INT_EQ(sk_CK_AD_ENTRY_value(ad, 1)->ad_type, CK_AD_IF_RELEVANT);
    CHECK_OK(ck_ad_restricted_find(ad, &got, &found));
    CHECK(found);
    CHECK(memcmp(&r, &got, sizeof(r)) == 0);
    /* Through an encoding of the whole AuthorizationData (as in a ticket). */
    CHECK_OK(ck_asn1_authorization_data_encode(ad, &der, &len));
    CK_AUTHORIZATION_DATA_free(ad);
    ad = NULL;
    CHECK_OK(ck_asn1_authorization_data_decode(der, len, &ad));
    CHECK_OK(ck_ad_restricted_find(ad, &got, &found));
    CHECK(found);
    /* Wrapped twice: not where a service looks, so refused rather than ignored. */
    CHECK_OK(ck_asn1_ad_add(&outer, CK_AD_IF_RELEVANT, der, len));
    CHECK_INT_EQ(ck_ad_restricted_find(outer, &got, &found), CK_ERR_DECODE);
    CHECK(!found);
    CK_AUTHORIZATION_DATA_free(outer);
    outer = NULL;
    ck_asn1_free_der(der, len);
    der = NULL;
    /* At the top level, unwrapped: found too. */
    CHECK_OK(ck_ad_restricted_encode(&r, &der, &len));
    CHECK_OK(ck_asn1_ad_add(&outer, CK_AD_CABLEKEY_RESTRICTED, der, len));
    CHECK_OK(ck_ad_restricted_find(outer, &got, &found));
    CHECK(found);
    CK_AUTHORIZATION_DATA_free(outer);
    outer = NULL;
    /* A malformed element, and an unreadable AD-IF-RELEVANT container: refused. */
    der[len - 1] = 'x';
    CHECK_OK(ck_asn1_ad_add(&outer, CK_AD_CABLEKEY_RESTRICTED, der, len));
    CHECK_INT_EQ(ck_ad_restricted_find(outer, &got, &found), CK_ERR_DECODE);
    CK_AUTHORIZATION_DATA_free(outer);
    outer = NULL;
    CHECK_OK(ck_asn1_ad_add(&outer, CK_AD_IF_RELEVANT, (const uint8_t *)"\x30\x05", 2));
    CHECK_INT_EQ(ck_ad_restricted_find(outer, &got, &found), CK_ERR_DECODE);
    CK_AUTHORIZATION_DATA_free(outer);
    outer = NULL;
    /* An AD-IF-RELEVANT holding something else only: absent. */
    {
        CK_AUTHORIZATION_DATA *inner = NULL;
        CHECK_OK(ck_asn1_ad_add(&inner, 128, (const uint8_t *)"pac", 3));
        CHECK_OK(ck_asn1_authorization_data_encode(inner, &wrapped, &wlen));
        CHECK_OK(ck_asn1_ad_add(&outer, CK_AD_IF_RELEVANT, wrapped, wlen));
        CHECK_OK(ck_ad_restricted_find(outer, &got, &found));
        CHECK(!found);
        CK_AUTHORIZATION_DATA_free(inner);
    }
    ck_asn1_free_der(der, len);
    ck_asn1_free_der(wrapped, wlen);
    CK_AUTHORIZATION_DATA_free(outer);
    CK_AUTHORIZATION_DATA_free(ad);
}

static void
allows(void)
{
    ck_ad_restricted r;

    sample(&r);
    CHECK(ck_ad_restricted_allows(&r, "611"));
    CHECK(ck_ad_restricted_allows(&r, "911"));
    CHECK(!ck_ad_restricted_allows(&r, "61"));
    CHECK(!ck_ad_restricted_allows(&r, "6111"));
    CHECK(!ck_ad_restricted_allows(&r, "5551234"));
    CHECK(!ck_ad_restricted_allows(&r, ""));
    CHECK(!ck_ad_restricted_allows(&r, NULL));
    CHECK(!ck_ad_restricted_allows(NULL, "611"));
    CHECK(!ck_ad_restricted_allows(&r, "1234567890123456"));
}

CK_TEST_MAIN("prov_ad", CK_TEST_CASE(known_encoding), CK_TEST_CASE(round_trip_limits),
             CK_TEST_CASE(decode_limits), CK_TEST_CASE(non_digits), CK_TEST_CASE(wrong_version),
             CK_TEST_CASE(duplicates), CK_TEST_CASE(not_der), CK_TEST_CASE(if_relevant),
             CK_TEST_CASE(allows))
