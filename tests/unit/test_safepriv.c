/* KRB-SAFE / KRB-PRIV: round trips for every enctype, tampering, wrong keys, clock skew, replay,
 * sequence numbers, addresses, and MIT's captured kpasswd KRB-PRIV. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/safepriv.h"
#include "cablekey/util.h"
#include "ck_test.h"

static const int32_t etypes[] = { 17, 18, 19, 20 };
static const uint8_t msg[] = "PacketCable says hello";

typedef int (*build_fn)(const ck_key *, const uint8_t *, size_t, const ck_krb_msg_params *,
                        uint8_t **, size_t *);
typedef int (*read_fn)(const ck_key *, const uint8_t *, size_t, const ck_krb_msg_check *,
                       uint8_t **, size_t *, ck_krb_msg_info *);

static const build_fn builders[2] = { ck_krb_safe_build, ck_krb_priv_build };
static const read_fn readers[2] = { ck_krb_safe_read, ck_krb_priv_read };

static void
addrs(ck_krb_address *s, ck_krb_address *r)
{
    CHECK_OK(ck_krb_address_directional(0, s));
    CHECK_OK(ck_krb_address_directional(1, r));
}

static void
test_round_trip_all_enctypes(void)
{
    ck_krb_address s, r;

    addrs(&s, &r);
    for (size_t i = 0; i < 4; i++) {
        for (int priv = 0; priv < 2; priv++) {
            ck_key key;
            ck_krb_msg_params p = { .use_timestamp = true, .use_seq = true, .seq = 0x80000001u,
                                    .s_address = &s, .r_address = &r };
            ck_krb_msg_check c = { .s_address = &s, .r_address = &r, .require_r_address = true,
                                   .require_timestamp = true, .check_seq = true,
                                   .seq = 0x80000001u };
            ck_krb_msg_info info;
            uint8_t *der = NULL, *data = NULL;
            size_t dl = 0, n = 0;

            CHECK_OK(ck_random_key(etypes[i], &key));
            CHECK_OK(builders[priv](&key, msg, sizeof(msg), &p, &der, &dl));
            CHECK_INT_EQ(ck_asn1_msg_type(der, dl), priv ? CK_KRB_PRIV : CK_KRB_SAFE);
            CHECK_OK(readers[priv](&key, der, dl, &c, &data, &n, &info));
            CHECK_MEM_EQ(data, n, msg, sizeof(msg));
            CHECK(info.has_timestamp && info.has_seq && info.has_r_address);
            CHECK_INT_EQ(info.seq, 0x80000001u);
            CHECK_INT_EQ(info.krb_error, 0);
            CHECK(ck_krb_address_equal(&info.s_address, &s));
            /* KRB-PRIV hides the data; KRB-SAFE does not. */
            CHECK_INT_EQ(memmem(der, dl, msg, sizeof(msg)) != NULL, !priv);
            free(der);
            free(data);
            ck_key_clear(&key);
        }
    }
}

static void
test_empty_data_and_seq_only(void)
{
    ck_krb_address s, r;
    ck_key key;

    addrs(&s, &r);
    CHECK_OK(ck_random_key(18, &key));
    for (int priv = 0; priv < 2; priv++) {
        ck_krb_msg_params p = { .use_seq = true, .seq = 5, .s_address = &s };
        ck_krb_msg_info info;
        uint8_t *der = NULL, *data = NULL;
        size_t dl = 0, n = 0;

        CHECK_OK(builders[priv](&key, NULL, 0, &p, &der, &dl));
        CHECK_OK(readers[priv](&key, der, dl, NULL, &data, &n, &info));
        CHECK_INT_EQ(n, 0);
        CHECK(!info.has_timestamp && info.has_seq && !info.has_r_address);
        free(data);
        data = NULL;
        /* A reader that insists on a timestamp refuses it. */
        ck_krb_msg_check c = { .require_timestamp = true };
        CHECK(readers[priv](&key, der, dl, &c, &data, &n, &info) != 0);
        CHECK(data == NULL);
        free(der);
    }
    /* Neither timestamp nor sequence number, or no sender address: refused at build time. */
    {
        ck_krb_msg_params p = { .s_address = &s };
        uint8_t *der = NULL;
        size_t dl = 0;
        CHECK_INT_EQ(ck_krb_safe_build(&key, msg, sizeof(msg), &p, &der, &dl), CK_ERR_INVAL);
        p.use_seq = true;
        p.s_address = NULL;
        CHECK_INT_EQ(ck_krb_priv_build(&key, msg, sizeof(msg), &p, &der, &dl), CK_ERR_INVAL);
    }
    ck_key_clear(&key);
}

static void
test_tamper_and_wrong_key(void)
{
    ck_krb_address s, r;

    addrs(&s, &r);
    for (size_t i = 0; i < 4; i++) {
        for (int priv = 0; priv < 2; priv++) {
            ck_key key, other, other_type;
            ck_krb_msg_params p = { .use_timestamp = true, .s_address = &s };
            ck_krb_msg_info info;
            uint8_t *der = NULL, *data = NULL;
            size_t dl = 0, n = 0;

            CHECK_OK(ck_random_key(etypes[i], &key));
            CHECK_OK(ck_random_key(etypes[i], &other));
            CHECK_OK(ck_random_key(etypes[(i + 1) % 4], &other_type));
            CHECK_OK(builders[priv](&key, msg, sizeof(msg), &p, &der, &dl));
            CHECK_INT_EQ(readers[priv](&other, der, dl, NULL, &data, &n, &info), CK_ERR_INTEGRITY);
            CHECK(info.krb_error == CK_KRB_AP_ERR_MODIFIED ||
                  info.krb_error == CK_KRB_AP_ERR_INAPP_CKSUM);
            CHECK_INT_EQ(readers[priv](&other_type, der, dl, NULL, &data, &n, &info),
                         CK_ERR_INTEGRITY);
            /* Flip one bit of the user data (SAFE) or of the ciphertext's last byte (PRIV). */
            if (!priv) {
                uint8_t *at = memmem(der, dl, msg, sizeof(msg));
                CHECK(at != NULL);
                if (at != NULL)
                    at[3] ^= 0x01;
            } else {
                der[dl - 1] ^= 0x01;
            }
            CHECK_INT_EQ(readers[priv](&key, der, dl, NULL, &data, &n, &info), CK_ERR_INTEGRITY);
            CHECK_INT_EQ(info.krb_error, CK_KRB_AP_ERR_MODIFIED);
            CHECK(data == NULL);
            /* Garbage is a decode error, not a crash. */
            CHECK(readers[priv](&key, der, dl / 2, NULL, &data, &n, &info) != 0);
            free(der);
            ck_key_clear(&key);
            ck_key_clear(&other);
            ck_key_clear(&other_type);
        }
    }
}

static void
test_clock_skew(void)
{
    ck_krb_address s, r;
    ck_key key;
    int64_t now;
    int32_t usec;

    addrs(&s, &r);
    ck_now(&now, &usec);
    CHECK_OK(ck_random_key(20, &key));
    for (int priv = 0; priv < 2; priv++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            ck_krb_msg_params p = { .use_timestamp = true, .timestamp = now + sign * 400,
                                    .usec = 12345, .s_address = &s };
            ck_krb_msg_check c = { .clockskew = 300 };
            ck_krb_msg_info info;
            uint8_t *der = NULL, *data = NULL;
            size_t dl = 0, n = 0;

            CHECK_OK(builders[priv](&key, msg, sizeof(msg), &p, &der, &dl));
            CHECK_INT_EQ(readers[priv](&key, der, dl, &c, &data, &n, &info), CK_ERR_SKEW);
            CHECK_INT_EQ(info.krb_error, CK_KRB_AP_ERR_SKEW);
            /* Within a wider skew it is fine, and the usec survives. */
            c.clockskew = 500;
            CHECK_OK(readers[priv](&key, der, dl, &c, &data, &n, &info));
            CHECK_INT_EQ(info.usec, 12345);
            CHECK_INT_EQ(info.timestamp, now + sign * 400);
            free(data);
            free(der);
        }
    }
    ck_key_clear(&key);
}

static void
test_replay_cache(void)
{
    ck_krb_address s, r;
    ck_rcache *rc = NULL;
    ck_key key;

    addrs(&s, &r);
    CHECK_OK(ck_rcache_new(0, 600, &rc));
    CHECK_OK(ck_random_key(17, &key));
    for (int priv = 0; priv < 2; priv++) {
        ck_krb_msg_params p = { .use_timestamp = true, .s_address = &s, .r_address = &r };
        ck_krb_msg_check c = { .rcache = rc, .rcache_tag = "test" };
        ck_krb_msg_info info;
        uint8_t *der = NULL, *der2 = NULL, *data = NULL;
        size_t dl = 0, dl2 = 0, n = 0;

        CHECK_OK(builders[priv](&key, msg, sizeof(msg), &p, &der, &dl));
        CHECK_OK(builders[priv](&key, msg, sizeof(msg), &p, &der2, &dl2));
        CHECK_OK(readers[priv](&key, der, dl, &c, &data, &n, &info));
        free(data);
        data = NULL;
        CHECK_INT_EQ(readers[priv](&key, der, dl, &c, &data, &n, &info), CK_ERR_REPLAY);
        CHECK_INT_EQ(info.krb_error, CK_KRB_AP_ERR_REPEAT);
        CHECK(data == NULL);
        /* A second message with the same content is not a replay. */
        CHECK_OK(readers[priv](&key, der2, dl2, &c, &data, &n, &info));
        free(data);
        free(der);
        free(der2);
    }
    ck_key_clear(&key);
    ck_rcache_free(rc);
}

static void
test_addresses_and_seq(void)
{
    ck_krb_address a4, b4, a6, dir0, dir1;
    struct sockaddr_in sin = { .sin_family = AF_INET };
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
    ck_key key;

    inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
    CHECK_OK(ck_krb_address_from_sockaddr((struct sockaddr *)&sin, &a4));
    CHECK_INT_EQ(a4.addr_type, CK_ADDRTYPE_IPV4);
    CHECK_INT_EQ(a4.len, 4);
    inet_pton(AF_INET, "192.0.2.2", &sin.sin_addr);
    CHECK_OK(ck_krb_address_from_sockaddr((struct sockaddr *)&sin, &b4));
    inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
    CHECK_OK(ck_krb_address_from_sockaddr((struct sockaddr *)&sin6, &a6));
    CHECK_INT_EQ(a6.addr_type, CK_ADDRTYPE_IPV6);
    CHECK_INT_EQ(a6.len, 16);
    CHECK_OK(ck_krb_address_directional(0, &dir0));
    CHECK_OK(ck_krb_address_directional(1, &dir1));
    CHECK(dir0.addr_type == CK_ADDRTYPE_DIRECTIONAL && dir0.len == 4 && dir1.addr[3] == 1);
    CHECK_INT_EQ(ck_krb_address_directional(2, &dir1), CK_ERR_INVAL);
    CHECK_OK(ck_krb_address_directional(1, &dir1));

    CHECK_OK(ck_random_key(19, &key));
    for (int priv = 0; priv < 2; priv++) {
        ck_krb_msg_params p = { .use_timestamp = true, .use_seq = true, .seq = 41,
                                .s_address = &a4, .r_address = &a6 };
        ck_krb_msg_info info;
        uint8_t *der = NULL, *data = NULL;
        size_t dl = 0, n = 0;

        CHECK_OK(builders[priv](&key, msg, sizeof(msg), &p, &der, &dl));
        {
            ck_krb_msg_check c = { .s_address = &b4 };
            CHECK_INT_EQ(readers[priv](&key, der, dl, &c, &data, &n, &info), CK_ERR_PROTO);
            CHECK_INT_EQ(info.krb_error, CK_KRB_AP_ERR_BADADDR);
        }
        {
            ck_krb_msg_check c = { .s_address = &a4, .r_address = &b4 };
            CHECK_INT_EQ(readers[priv](&key, der, dl, &c, &data, &n, &info), CK_ERR_PROTO);
            CHECK_INT_EQ(info.krb_error, CK_KRB_AP_ERR_BADADDR);
        }
        {
            /* A reflected message: the peer's own direction is refused. */
            ck_krb_msg_check c = { .s_address = &dir1 };
            CHECK_INT_EQ(readers[priv](&key, der, dl, &c, &data, &n, &info), CK_ERR_PROTO);
        }
        {
            ck_krb_msg_check c = { .check_seq = true, .seq = 42 };
            CHECK_INT_EQ(readers[priv](&key, der, dl, &c, &data, &n, &info), CK_ERR_PROTO);
            CHECK_INT_EQ(info.krb_error, CK_KRB_AP_ERR_BADORDER);
        }
        {
            ck_krb_msg_check c = { .s_address = &a4, .r_address = &a6, .check_seq = true,
                                   .seq = 41 };
            CHECK_OK(readers[priv](&key, der, dl, &c, &data, &n, &info));
            CHECK(ck_krb_address_equal(&info.r_address, &a6));
            free(data);
        }
        free(der);
    }
    ck_key_clear(&key);
}

/* MIT kadmind's kpasswd exchange (tests/vectors/mit/README.md): the client's KRB-PRIV carries the
 * new password "alicepw2" under the kpasswd subkey. */
static void
test_mit_kpasswd_priv(void)
{
    FILE *f = fopen("vectors/mit/kpasswd_krb_priv_req.der", "rb");
    uint8_t buf[512], *kb, *data = NULL;
    size_t len, kl, n = 0;
    ck_key key;
    ck_krb_msg_check c = { .clockskew = 4000000000LL };
    ck_krb_msg_info info;

    CHECK(f != NULL);
    if (f == NULL)
        return;
    len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    kb = ck_test_hex("8b23d0b52192df0ca44d3695784da35b73f942575c179998852b8605acd6b12f", &kl);
    CHECK_OK(ck_key_init(&key, 18, kb, kl));
    free(kb);
    CHECK_OK(ck_krb_priv_read(&key, buf, len, &c, &data, &n, &info));
    /* RFC 3244 v1: the user data is the new password itself. */
    CHECK_MEM_EQ(data, n, "alicepw2", 8);
    /* MIT sends neither timestamp nor seq-number here (its zero seq-number is omitted). */
    CHECK(!info.has_timestamp && !info.has_seq);
    CHECK(info.s_address.addr_type == CK_ADDRTYPE_IPV4 && info.s_address.addr[0] == 127);
    free(data);
    key.contents[0] ^= 1;
    CHECK_INT_EQ(ck_krb_priv_read(&key, buf, len, &c, &data, &n, &info), CK_ERR_INTEGRITY);
    ck_key_clear(&key);
}

CK_TEST_MAIN("safepriv",
             CK_TEST_CASE(test_round_trip_all_enctypes),
             CK_TEST_CASE(test_empty_data_and_seq_only),
             CK_TEST_CASE(test_tamper_and_wrong_key),
             CK_TEST_CASE(test_clock_skew),
             CK_TEST_CASE(test_replay_cache),
             CK_TEST_CASE(test_addresses_and_seq),
             CK_TEST_CASE(test_mit_kpasswd_priv))
