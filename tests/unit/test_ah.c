/* AH (RFC 4302) over IPv4 and IPv6 with HMAC-SHA-1-96 (cablekey/ah.h): the key derivation and
 * whole packets checked byte for byte against tests/vectors/kmm/kmm_ref.py (Python hmac, the
 * packets built there from RFC 791, RFC 8200 and RFC 4302, not from this code); mutable fields
 * outside the ICV; tampering with every immutable part; replay and the window's edges; wrong SPI;
 * truncation at every length and malformed headers. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ck_test.h"
#include "cablekey/ah.h"
#include "cablekey/error.h"

#define SPI_DEVICE 0x00001001u
#define SPI_ROUTER 0x00002002u
/* kmm_ref.py vectors: ah-key-d2r, ah-key-r2d, ah-packet, ah-icv. */
#define KEY_D2R "71fe010dcb81a1467e83bf57945dc08033b109dd"
#define KEY_R2D "0a52613c7cba40bc326cbc1e26a370a12acfe313"
#define PACKET                                                                                   \
    "4500003812340000403351c30a4d01020a4d0101110400000000200200000001a7b13444e83d1c01d179a228" \
    "d4310009000c000070696e67"
#define ICV "a7b13444e83d1c01d179a228"
/* kmm_ref.py vectors: ah6-packet, ah6-icv (2001:db8::2 -> 2001:db8::1, hop limit 64). */
#define PACKET6                                                                                  \
    "600000000024334020010db800000000000000000000000220010db80000000000000000000000011104000000" \
    "00200200000001e43904e97fa06f8ddd6e8d64d4310009000c000070696e67"
#define ICV6 "e43904e97fa06f8ddd6e8d64"

static const uint8_t src[4] = {10, 77, 1, 2}, dst[4] = {10, 77, 1, 1};
static const uint8_t payload[] = {0xd4, 0x31, 0x00, 0x09, 0x00, 0x0c,
                                  0x00, 0x00, 'p',  'i',  'n',  'g'};

static void
subkey(ck_key *k)
{
    uint8_t b[32];

    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(0x20 + i);
    CHECK_OK(ck_key_init(k, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, b, sizeof(b)));
}

static void
check_hex(const uint8_t *got, size_t got_len, const char *hex)
{
    size_t n = 0;
    unsigned char *want = ck_test_hex(hex, &n);

    CHECK_MEM_EQ(got, got_len, want, n);
    free(want);
}

static ck_ah_sa *
sa_with(const char *key_hex, uint32_t spi, uint32_t window)
{
    size_t n = 0;
    unsigned char *key = ck_test_hex(key_hex, &n);
    struct ck_ah_sa_params p = {.spi = spi, .key = key, .key_len = n, .replay_window = window};
    ck_ah_sa *sa = NULL;

    CHECK_OK(ck_ah_sa_new(&p, &sa));
    free(key);
    return sa;
}

static void
test_keys(void)
{
    struct ck_ah_keys k;
    ck_key sk;

    subkey(&sk);
    CHECK_OK(ck_ah_derive_keys(&sk, SPI_DEVICE, SPI_ROUTER, &k));
    check_hex(k.key_d2r, sizeof(k.key_d2r), KEY_D2R);
    check_hex(k.key_r2d, sizeof(k.key_r2d), KEY_R2D);
    CHECK_INT_EQ(k.spi_device, SPI_DEVICE);
    CHECK_INT_EQ(k.spi_router, SPI_ROUTER);
    /* The SPIs are in the seed: swapping them gives other keys. */
    CHECK_OK(ck_ah_derive_keys(&sk, SPI_ROUTER, SPI_DEVICE, &k));
    CHECK(memcmp(k.key_d2r, k.key_r2d, CK_AH_KEY_LEN) != 0);
    {
        size_t n = 0;
        unsigned char *want = ck_test_hex(KEY_D2R, &n);
        CHECK(memcmp(k.key_d2r, want, n) != 0);
        free(want);
    }
    CHECK_INT_EQ(ck_ah_derive_keys(&sk, 255, SPI_ROUTER, &k), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ah_derive_keys(&sk, SPI_DEVICE, 0, &k), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_ah_derive_keys(NULL, SPI_DEVICE, SPI_ROUTER, &k), CK_ERR_INVAL);
    ck_ah_keys_clear(&k);
    ck_ah_keys_clear(NULL);
    ck_key_clear(&sk);
}

/* The sender's first packet is the Python-built one, byte for byte (layout, ICV, checksum). */
static void
test_layout(void)
{
    ck_ah_sa *tx = sa_with(KEY_D2R, SPI_ROUTER, 0);
    uint8_t out[128], icv[CK_AH_ICV_LEN];
    size_t len = 0, n = 0;
    struct ck_ah_info info;
    unsigned char *key = ck_test_hex(KEY_D2R, &n);

    CHECK_OK(ck_ah_protect_ipv4(tx, src, dst, 0x1234, 64, 17, payload, sizeof(payload), out,
                                sizeof(out), &len));
    check_hex(out, len, PACKET);
    CHECK_INT_EQ(len, 20 + CK_AH_HDR_LEN + sizeof(payload));
    CHECK_INT_EQ(out[9], CK_AH_PROTO);     /* IPv4 protocol: AH */
    CHECK_INT_EQ(out[20], 17);             /* AH next header: UDP */
    CHECK_INT_EQ(out[21], 4);              /* (24 / 4) - 2 */
    CHECK_INT_EQ(out[22] | out[23], 0);    /* reserved */
    CHECK_OK(ck_ah_parse(out, len, &info));
    CHECK_INT_EQ(info.spi, SPI_ROUTER);
    CHECK_INT_EQ(info.seq, 1);             /* RFC 4302 §3.3.2: the first packet is 1 */
    CHECK_INT_EQ(info.next_header, 17);
    CHECK_INT_EQ(info.id, 0x1234);
    CHECK_INT_EQ(info.payload_off, 44);
    CHECK_MEM_EQ(out + info.payload_off, info.payload_len, payload, sizeof(payload));
    CHECK_MEM_EQ(info.src, 4, src, 4);
    CHECK_MEM_EQ(info.dst, 4, dst, 4);
    CHECK_OK(ck_ah_icv(key, out, len, icv));
    check_hex(icv, sizeof(icv), ICV);
    /* The second packet carries 2 and a different ICV. */
    CHECK_OK(ck_ah_protect_ipv4(tx, src, dst, 0x1234, 64, 17, payload, sizeof(payload), out,
                                sizeof(out), &len));
    CHECK_OK(ck_ah_parse(out, len, &info));
    CHECK_INT_EQ(info.seq, 2);
    CHECK(memcmp(out + 32, icv, CK_AH_ICV_LEN) != 0);
    /* Too small a buffer. */
    CHECK_INT_EQ(ck_ah_protect_ipv4(tx, src, dst, 1, 64, 17, payload, sizeof(payload), out, 50,
                                    &len),
                 CK_ERR_LIMIT);
    free(key);
    ck_ah_sa_free(tx);
}

static size_t
vector(uint8_t *buf)
{
    size_t n = 0;
    unsigned char *p = ck_test_hex(PACKET, &n);

    memcpy(buf, p, n);
    free(p);
    return n;
}

static void
test_verify(void)
{
    ck_ah_sa *rx = sa_with(KEY_D2R, SPI_ROUTER, 0), *other;
    uint8_t pkt[128], bad[128];
    size_t len = vector(pkt);
    struct ck_ah_info info;
    /* Immutable byte offsets: length, id, protocol, source, destination, AH next header, SPI,
     * sequence number, ICV, payload. */
    static const size_t immutable[] = {3, 4, 5, 12, 15, 16, 19, 20, 24, 28, 31, 32, 43, 44, 55};

    /* Mutable fields are outside the ICV: TOS, DF, TTL, checksum changed in flight. */
    memcpy(bad, pkt, len);
    bad[1] = 0xb8;
    bad[6] = 0x40;
    bad[8] = 1;
    bad[10] ^= 0x55;
    CHECK_OK(ck_ah_verify(rx, bad, len, &info));
    CHECK_INT_EQ(info.seq, 1);
    /* The same packet again is a replay. */
    CHECK_INT_EQ(ck_ah_verify(rx, pkt, len, NULL), CK_ERR_REPLAY);
    ck_ah_sa_free(rx);

    /* Every immutable byte flipped: refused (total length flips fail the parse first). */
    for (size_t i = 0; i < sizeof(immutable) / sizeof(immutable[0]); i++) {
        int rc;
        rx = sa_with(KEY_D2R, SPI_ROUTER, 0);
        memcpy(bad, pkt, len);
        bad[immutable[i]] ^= 0x01;
        rc = ck_ah_verify(rx, bad, len, NULL);
        if (rc == 0)
            fprintf(stderr, "  byte %zu flipped and still accepted\n", immutable[i]);
        CHECK(rc != 0);
        if (immutable[i] >= 12 && immutable[i] != 24 && immutable[i] != 31 && immutable[i] != 28)
            CHECK_INT_EQ(rc, CK_ERR_INTEGRITY);
        /* A failed ICV does not move the window: the genuine packet is still accepted. */
        CHECK_OK(ck_ah_verify(rx, pkt, len, NULL));
        ck_ah_sa_free(rx);
    }
    /* A forged source address with the right SPI: ICV fails. */
    rx = sa_with(KEY_D2R, SPI_ROUTER, 0);
    memcpy(bad, pkt, len);
    bad[15] = 99;
    CHECK_INT_EQ(ck_ah_verify(rx, bad, len, NULL), CK_ERR_INTEGRITY);
    /* The wrong key (the other direction's) fails too. */
    other = sa_with(KEY_R2D, SPI_ROUTER, 0);
    CHECK_INT_EQ(ck_ah_verify(other, pkt, len, NULL), CK_ERR_INTEGRITY);
    ck_ah_sa_free(other);
    /* Wrong SPI: this SA is not the packet's. */
    other = sa_with(KEY_D2R, SPI_DEVICE, 0);
    CHECK_INT_EQ(ck_ah_verify(other, pkt, len, NULL), CK_ERR_INVAL);
    ck_ah_sa_free(other);
    {
        struct ck_ah_sa_stats st;
        ck_ah_sa_stats(rx, &st);
        CHECK_INT_EQ(st.bad_icv, 1);
        CHECK_INT_EQ(st.packets, 0);
    }
    ck_ah_sa_free(rx);
}

static void
test_malformed(void)
{
    ck_ah_sa *rx = sa_with(KEY_D2R, SPI_ROUTER, 0);
    uint8_t pkt[128], bad[130];
    size_t len = vector(pkt);
    struct ck_ah_info info;

    /* Truncated at every length (total length no longer matches, or shorter than a header). */
    for (size_t l = 0; l < len; l++) {
        memcpy(bad, pkt, l);
        CHECK(ck_ah_verify(rx, bad, l, &info) != 0);
        /* Even with the total length patched to fit, a short AH is refused. */
        if (l >= 4) {
            bad[2] = (uint8_t)(l >> 8);
            bad[3] = (uint8_t)l;
            if (l < 44)
                CHECK_INT_EQ(ck_ah_parse(bad, l, &info), CK_ERR_DECODE);
        }
    }
    CHECK_INT_EQ(ck_ah_parse(NULL, 0, &info), CK_ERR_DECODE);
    /* One byte too many. */
    memcpy(bad, pkt, len);
    bad[len] = 0;
    CHECK_INT_EQ(ck_ah_verify(rx, bad, len + 1, NULL), CK_ERR_DECODE);
#define MUTATE(off, val, want)                                                                 \
    do {                                                                                       \
        memcpy(bad, pkt, len);                                                                 \
        bad[off] = (val);                                                                      \
        CHECK_INT_EQ(ck_ah_verify(rx, bad, len, NULL), want);                             \
    } while (0)
    MUTATE(0, 0x65, CK_ERR_DECODE);          /* version 6: its payload length does not fit */
    MUTATE(0, 0x55, CK_ERR_DECODE);          /* version 5 */
    MUTATE(0, 0x44, CK_ERR_DECODE);          /* IHL 4 */
    MUTATE(0, 0x46, CK_ERR_UNSUPPORTED);     /* options */
    MUTATE(6, 0x20, CK_ERR_UNSUPPORTED);     /* MF: a fragment */
    MUTATE(7, 0x01, CK_ERR_UNSUPPORTED);     /* fragment offset */
    MUTATE(9, 50, CK_ERR_DECODE);            /* ESP, not AH */
    MUTATE(21, 5, CK_ERR_UNSUPPORTED);       /* another ICV length */
    MUTATE(21, 0, CK_ERR_UNSUPPORTED);
    MUTATE(22, 1, CK_ERR_DECODE);            /* reserved */
    /* Sequence number 0 is never sent (RFC 4302 §3.3.2): refused before the ICV. */
    memcpy(bad, pkt, len);
    memset(bad + 28, 0, 4);
    CHECK_INT_EQ(ck_ah_verify(rx, bad, len, NULL), CK_ERR_REPLAY);
    /* Nothing above moved the window. */
    CHECK_OK(ck_ah_verify(rx, pkt, len, NULL));
    ck_ah_sa_free(rx);
#undef MUTATE
}

/* Packets 1..N from a sender, delivered in the given order to a receiver with window w. */
static void
test_replay_window(void)
{
    static uint8_t pkts[1100][64];
    static size_t lens[1100];
    ck_ah_sa *tx = sa_with(KEY_D2R, SPI_ROUTER, 0), *rx;
    struct ck_ah_sa_stats st;

    for (int i = 1; i < 1100; i++)
        CHECK_OK(ck_ah_protect_ipv4(tx, src, dst, (uint16_t)i, 64, 17, payload, sizeof(payload),
                                    pkts[i], sizeof(pkts[i]), &lens[i]));
#define RX(seq) ck_ah_verify(rx, pkts[seq], lens[seq], NULL)
    rx = sa_with(KEY_D2R, SPI_ROUTER, 64);
    CHECK_OK(RX(200));
    CHECK_OK(RX(137));                       /* 200 - 137 = 63: the window's left edge */
    CHECK_INT_EQ(RX(136), CK_ERR_REPLAY);    /* 64 behind: left of the window */
    CHECK_INT_EQ(RX(137), CK_ERR_REPLAY);
    CHECK_INT_EQ(RX(200), CK_ERR_REPLAY);
    CHECK_OK(RX(150));                       /* out of order, inside */
    CHECK_OK(RX(201));
    CHECK_INT_EQ(RX(150), CK_ERR_REPLAY);    /* still remembered after the shift */
    CHECK_OK(RX(265));                       /* shift by 64: 201 at bit 64 falls out... */
    CHECK_INT_EQ(RX(201), CK_ERR_REPLAY);    /* ...and is left of the window now */
    CHECK_OK(RX(202));                       /* 265 - 202 = 63 */
    CHECK_OK(RX(1000));                      /* a jump over the whole window */
    CHECK_INT_EQ(RX(265), CK_ERR_REPLAY);
    CHECK_OK(RX(999));
    CHECK_OK(RX(937));
    CHECK_INT_EQ(RX(936), CK_ERR_REPLAY);
    ck_ah_sa_stats(rx, &st);
    CHECK_INT_EQ(st.last_seq, 1000);
    CHECK_INT_EQ(st.packets, 9);
    CHECK_INT_EQ(st.replayed, 7);
    ck_ah_sa_free(rx);

    /* Window 1024: everything in order, then all of it again (all replays), then a packet
     * 1023 behind the top that was skipped. */
    rx = sa_with(KEY_D2R, SPI_ROUTER, 1024);
    for (int i = 1; i < 1099; i++)
        if (i != 75)
            CHECK_OK(RX(i));
    for (int i = 1; i < 1099; i++)
        if (i != 75)
            CHECK(RX(i) == CK_ERR_REPLAY);
    CHECK_OK(RX(75));                        /* 1098 - 75 = 1023 */
    CHECK_INT_EQ(RX(1098), CK_ERR_REPLAY);
    ck_ah_sa_free(rx);
    /* Window 130 (not a multiple of 64): edges at 129 / 130 behind. */
    rx = sa_with(KEY_D2R, SPI_ROUTER, 130);
    CHECK_OK(RX(500));
    CHECK_OK(RX(371));
    CHECK_INT_EQ(RX(370), CK_ERR_REPLAY);
    ck_ah_sa_free(rx);
#undef RX
    ck_ah_sa_free(tx);
}

static void
test_params(void)
{
    uint8_t key[CK_AH_KEY_LEN] = {1};
    struct ck_ah_sa_params p = {.spi = 256, .key = key, .key_len = sizeof(key)};
    ck_ah_sa *sa = NULL;

    CHECK_OK(ck_ah_sa_new(&p, &sa));
    CHECK_INT_EQ(ck_ah_sa_spi(sa), 256);
    ck_ah_sa_free(sa);
    ck_ah_sa_free(NULL);
    p.spi = 255;
    CHECK_INT_EQ(ck_ah_sa_new(&p, &sa), CK_ERR_INVAL);
    CHECK(sa == NULL);
    p.spi = 256;
    p.key_len = 16;
    CHECK_INT_EQ(ck_ah_sa_new(&p, &sa), CK_ERR_INVAL);
    p.key_len = sizeof(key);
    p.replay_window = 32;
    CHECK_INT_EQ(ck_ah_sa_new(&p, &sa), CK_ERR_INVAL);
    p.replay_window = 1025;
    CHECK_INT_EQ(ck_ah_sa_new(&p, &sa), CK_ERR_INVAL);
    p.replay_window = 1024;
    CHECK_OK(ck_ah_sa_new(&p, &sa));
    ck_ah_sa_free(sa);
}

/* Both ends from one sub-key: the device's outbound SA is the router's inbound one, and back. */
static void
test_round_trip(void)
{
    struct ck_ah_keys k;
    ck_key sk;
    ck_ah_sa *dev_out = NULL, *dev_in = NULL, *rtr_out = NULL, *rtr_in = NULL;
    uint8_t pkt[256];
    size_t len = 0;

    subkey(&sk);
    CHECK_OK(ck_ah_derive_keys(&sk, 0x4000, 0x5000, &k));
    CHECK_OK(ck_ah_sa_new(&(struct ck_ah_sa_params){.spi = k.spi_router, .key = k.key_d2r,
                                                     .key_len = CK_AH_KEY_LEN},
                          &dev_out));
    CHECK_OK(ck_ah_sa_new(&(struct ck_ah_sa_params){.spi = k.spi_router, .key = k.key_d2r,
                                                     .key_len = CK_AH_KEY_LEN},
                          &rtr_in));
    CHECK_OK(ck_ah_sa_new(&(struct ck_ah_sa_params){.spi = k.spi_device, .key = k.key_r2d,
                                                     .key_len = CK_AH_KEY_LEN},
                          &rtr_out));
    CHECK_OK(ck_ah_sa_new(&(struct ck_ah_sa_params){.spi = k.spi_device, .key = k.key_r2d,
                                                     .key_len = CK_AH_KEY_LEN},
                          &dev_in));
    for (int i = 0; i < 5; i++) {
        CHECK_OK(ck_ah_protect_ipv4(dev_out, src, dst, (uint16_t)(i + 1), 64, 17, payload,
                                    sizeof(payload), pkt, sizeof(pkt), &len));
        CHECK_OK(ck_ah_verify(rtr_in, pkt, len, NULL));
        CHECK_INT_EQ(ck_ah_verify(dev_in, pkt, len, NULL), CK_ERR_INVAL);
        CHECK_OK(ck_ah_protect_ipv4(rtr_out, dst, src, (uint16_t)(i + 1), 64, 17, NULL, 0, pkt,
                                    sizeof(pkt), &len));
        CHECK_OK(ck_ah_verify(dev_in, pkt, len, NULL));
    }
    ck_ah_sa_free(dev_out);
    ck_ah_sa_free(dev_in);
    ck_ah_sa_free(rtr_out);
    ck_ah_sa_free(rtr_in);
    ck_ah_keys_clear(&k);
    ck_key_clear(&sk);
}

/* IPv6: the Python-built packet byte for byte, mutable fields outside the ICV, immutable ones
 * inside, and the IPv6-specific refusals. */
static void
test_ipv6(void)
{
    static const uint8_t src6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
    static const uint8_t dst6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    /* version/traffic class, payload length, next header, source, destination, AH, payload */
    static const size_t immutable[] = {0, 5, 6, 8, 23, 24, 39, 40, 44, 52, 63, 64, 75};
    ck_ah_sa *tx = sa_with(KEY_D2R, SPI_ROUTER, 0), *rx;
    uint8_t pkt[128], bad[128], icv[CK_AH_ICV_LEN];
    size_t len = 0, n = 0;
    struct ck_ah_info info;
    unsigned char *key = ck_test_hex(KEY_D2R, &n);

    CHECK_OK(ck_ah_protect_ipv6(tx, src6, dst6, 64, 17, payload, sizeof(payload), pkt,
                                sizeof(pkt), &len));
    check_hex(pkt, len, PACKET6);
    CHECK_OK(ck_ah_icv(key, pkt, len, icv));
    check_hex(icv, sizeof(icv), ICV6);
    CHECK_OK(ck_ah_parse(pkt, len, &info));
    CHECK_INT_EQ(info.ip_version, 6);
    CHECK_INT_EQ(info.addr_len, 16);
    CHECK_INT_EQ(info.ip_hdr_len, 40);
    CHECK_INT_EQ(info.payload_off, 64);
    CHECK_INT_EQ(info.seq, 1);
    CHECK_MEM_EQ(info.src, 16, src6, 16);
    CHECK_MEM_EQ(info.dst, 16, dst6, 16);
    /* Traffic class, flow label and hop limit change in flight: still verifies. */
    rx = sa_with(KEY_D2R, SPI_ROUTER, 0);
    memcpy(bad, pkt, len);
    bad[0] = 0x6b;
    bad[1] = 0x8f;
    bad[2] = 0x12;
    bad[3] = 0x34;
    bad[7] = 1;
    CHECK_OK(ck_ah_verify(rx, bad, len, NULL));
    CHECK_INT_EQ(ck_ah_verify(rx, pkt, len, NULL), CK_ERR_REPLAY);
    ck_ah_sa_free(rx);
    for (size_t i = 0; i < sizeof(immutable) / sizeof(immutable[0]); i++) {
        rx = sa_with(KEY_D2R, SPI_ROUTER, 0);
        memcpy(bad, pkt, len);
        bad[immutable[i]] ^= immutable[i] == 0 ? 0x20 : 0x01;
        if (ck_ah_verify(rx, bad, len, NULL) == 0)
            fprintf(stderr, "  IPv6 byte %zu flipped and still accepted\n", immutable[i]);
        CHECK(ck_ah_verify(rx, bad, len, NULL) != 0);
        CHECK_OK(ck_ah_verify(rx, pkt, len, NULL));
        ck_ah_sa_free(rx);
    }
    rx = sa_with(KEY_D2R, SPI_ROUTER, 0);
    for (size_t l = 0; l < len; l++)
        CHECK(ck_ah_verify(rx, pkt, l, NULL) != 0);
    memcpy(bad, pkt, len);
    bad[6] = 0;                              /* a hop-by-hop header before AH */
    CHECK_INT_EQ(ck_ah_verify(rx, bad, len, NULL), CK_ERR_UNSUPPORTED);
    bad[6] = 44;                             /* a fragment header */
    CHECK_INT_EQ(ck_ah_verify(rx, bad, len, NULL), CK_ERR_UNSUPPORTED);
    bad[6] = 17;                             /* not AH at all */
    CHECK_INT_EQ(ck_ah_verify(rx, bad, len, NULL), CK_ERR_DECODE);
    memcpy(bad, pkt, len);
    bad[4] = bad[5] = 0;                     /* jumbogram payload length */
    CHECK_INT_EQ(ck_ah_verify(rx, bad, len, NULL), CK_ERR_DECODE);
    CHECK_OK(ck_ah_verify(rx, pkt, len, NULL));
    ck_ah_sa_free(rx);
    free(key);
    ck_ah_sa_free(tx);
}

CK_TEST_MAIN("ah", CK_TEST_CASE(test_keys), CK_TEST_CASE(test_layout), CK_TEST_CASE(test_verify),
             CK_TEST_CASE(test_malformed), CK_TEST_CASE(test_replay_window),
             CK_TEST_CASE(test_params), CK_TEST_CASE(test_round_trip), CK_TEST_CASE(test_ipv6))
