/* Lawful intercept (lib/intercept): orders, matching, escrow records to the LEA certificate,
 * opening them, purge, audit, file modes and the refusal of a database others can read. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sqlite3.h>

#include "cablekey/error.h"
#include "cablekey/intercept.h"
#include "cablekey/util.h"
#include "ck_test.h"
#include "intercept/li_int.h"

#define T0 INT64_C(1800000000)  /* 2027-01-15 */
#define DAY INT64_C(86400)

struct lea {
    EVP_PKEY *key;
    X509 *cert;
    char *cert_pem;
    char key_path[128];
};

static char tmpdir[64];

static void
mk_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ck-li-XXXXXX");
        if (mkdtemp(tmpdir) == NULL)
            abort();
    }
}

static void
tmp_path(char *buf, size_t size, const char *name)
{
    mk_tmpdir();
    snprintf(buf, size, "%s/%s", tmpdir, name);
    unlink(buf);
}

/* A self-signed LEA certificate valid over [nb, na], key usage as given (0: none). */
static void
lea_make(struct lea *l, const char *alg, int64_t nb, int64_t na, unsigned ku, const char *name)
{
    X509_NAME *n;
    BIO *b;
    char *data;
    long len;
    FILE *f;

    memset(l, 0, sizeof(*l));
    if (strcmp(alg, "rsa") == 0)
        l->key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    else
        l->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (l->key == NULL || (l->cert = X509_new()) == NULL)
        abort();
    X509_set_version(l->cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(l->cert), 7);
    X509_time_adj_ex(X509_getm_notBefore(l->cert), 0, 0, &(time_t){(time_t)nb});
    X509_time_adj_ex(X509_getm_notAfter(l->cert), 0, 0, &(time_t){(time_t)na});
    n = X509_get_subject_name(l->cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(l->cert, n);
    X509_set_pubkey(l->cert, l->key);
    if (ku != 0) {
        char v[64];
        X509_EXTENSION *ext;
        snprintf(v, sizeof(v), "critical,%s",
                 ku == KU_KEY_ENCIPHERMENT ? "keyEncipherment"
                 : ku == KU_KEY_AGREEMENT  ? "keyAgreement"
                                           : "digitalSignature");
        ext = X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, v);
        X509_add_ext(l->cert, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (!X509_sign(l->cert, l->key, EVP_sha256()))
        abort();
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, l->cert);
    len = BIO_get_mem_data(b, &data);
    l->cert_pem = calloc(1, (size_t)len + 1);
    memcpy(l->cert_pem, data, (size_t)len);
    BIO_free(b);
    mk_tmpdir();
    snprintf(l->key_path, sizeof(l->key_path), "%s/%s.key", tmpdir, name);
    f = fopen(l->key_path, "w");
    PEM_write_PrivateKey(f, l->key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    chmod(l->key_path, 0600);
}

static void
lea_free(struct lea *l)
{
    EVP_PKEY_free(l->key);
    X509_free(l->cert);
    free(l->cert_pem);
    unlink(l->key_path);
}

static void
call_make(struct ck_li_call *c, const char *id, const char *from, const char *to)
{
    memset(c, 0, sizeof(*c));
    ck_strlcpy(c->call_id, id, sizeof(c->call_id));
    ck_strlcpy(c->caller, from, sizeof(c->caller));
    ck_strlcpy(c->callee, to, sizeof(c->callee));
    ck_strlcpy(c->caller_mac, "0011223344aa", sizeof(c->caller_mac));
    ck_strlcpy(c->callee_mac, "00:11:22:33:44:BB", sizeof(c->callee_mac));
    c->started = T0 + 10;
    c->spi = 0x12345678;
    ck_strlcpy(c->media, "srtp-aes-cm", sizeof(c->media));
    ck_strlcpy(c->ipsec_suite, "sha1-aes128", sizeof(c->ipsec_suite));
    c->compat_seq = true;
    ck_strlcpy(c->src_media_addr, "127.0.0.1 16000", sizeof(c->src_media_addr));
    ck_strlcpy(c->dst_media_addr, "127.0.0.1 16002", sizeof(c->dst_media_addr));
    for (size_t i = 0; i < CK_CALL_KEY_LEN; i++)
        c->k_call[i] = (uint8_t)(0xa0 + i);
}

static int64_t
sql_count(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static size_t
dir_count(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void
test_record_roundtrip(void)
{
    struct ck_li_call c, d;
    uint8_t *der = NULL;
    size_t len = 0;

    call_make(&c, "0123456789abcdef0123456789abcdef", "5551001", "5552001");
    CHECK_OK(ck_li_record_encode(&c, &der, &len));
    CHECK_OK(ck_li_record_decode(der, len, &d));
    CHECK(memcmp(&c, &d, sizeof(c)) == 0 || (strcmp(c.call_id, d.call_id) == 0 &&
                                            memcmp(c.k_call, d.k_call, CK_CALL_KEY_LEN) == 0));
    CHECK(strcmp(d.caller, "5551001") == 0 && strcmp(d.callee, "5552001") == 0);
    CHECK(strcmp(d.callee_mac, "00:11:22:33:44:BB") == 0);
    CHECK(d.started == T0 + 10 && d.spi == 0x12345678 && d.compat_seq);
    CHECK(strcmp(d.media, "srtp-aes-cm") == 0 && strcmp(d.ipsec_suite, "sha1-aes128") == 0);
    CHECK(strcmp(d.src_media_addr, "127.0.0.1 16000") == 0);
    CHECK(memcmp(d.k_call, c.k_call, CK_CALL_KEY_LEN) == 0);
    /* Truncated, trailing byte, flipped tag: all refused with a zeroed output. */
    CHECK_INT_EQ(ck_li_record_decode(der, len - 1, &d), CK_ERR_DECODE);
    CHECK(d.call_id[0] == '\0' && d.k_call[0] == 0);
    {
        uint8_t *x = malloc(len + 1);
        memcpy(x, der, len);
        x[len] = 0;
        CHECK(ck_li_record_decode(x, len + 1, &d) != 0);
        x[2] ^= 0x01; /* the [0] tag of version */
        CHECK(ck_li_record_decode(x, len, &d) != 0);
        free(x);
    }
    /* Empty call id and a control character are refused by the encoder. */
    OPENSSL_clear_free(der, len);
    c.call_id[0] = '\0';
    CHECK_INT_EQ(ck_li_record_encode(&c, &der, &len), CK_ERR_ENCODE);
    call_make(&c, "abc", "5551001", "5552001");
    c.media[0] = '\n';
    CHECK_INT_EQ(ck_li_record_encode(&c, &der, &len), CK_ERR_ENCODE);
    ck_li_call_clear(&c);
    CHECK(c.k_call[0] == 0 && c.k_call[31] == 0);
}


/* The record plaintext against an encoding made by another encoder: `openssl asn1parse
 * -genconf` with the field list of docs/PROTOCOL.md (EXP:0,INTEGER:1 ... EXP:13,OCTETSTRING). */
static void
test_record_vector(void)
{
    static const char want_hex[] =
        "3081e1a003020101a1220c20303132333435363738396162636465663031323334353637383961626364"
        "6566a2090c0735353531303031a3090c0735353532303031a40e0c0c303031313232333334346161a513"
        "0c1130303a31313a32323a33333a34343a4242a60602046b49d20aa706020412345678a80d0c0b737274"
        "702d6165732d636da90d0c0b736861312d616573313238aa030101ffab110c0f3132372e302e302e3120"
        "3136303030ac110c0f3132372e302e302e31203136303032ad220420a0a1a2a3a4a5a6a7a8a9aaabacad"
        "aeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
    struct ck_li_call c, d;
    uint8_t *der = NULL, *want;
    size_t len = 0, want_len;

    call_make(&c, "0123456789abcdef0123456789abcdef", "5551001", "5552001");
    want = ck_test_hex(want_hex, &want_len);
    CHECK_OK(ck_li_record_encode(&c, &der, &len));
    CHECK_MEM_EQ(der, len, want, want_len);
    CHECK_OK(ck_li_record_decode(want, want_len, &d));
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);
    /* version 2 is refused, not guessed at */
    want[6] = 2;
    CHECK_INT_EQ(ck_li_record_decode(want, want_len, &d), CK_ERR_DECODE);
    /* BOOLEAN TRUE must be DER's 0xff */
    want[6] = 1;
    want[want_len - 34 - 17 - 17 - 1 - 1] = 0x01;
    CHECK(ck_li_record_decode(want, want_len, &d) != 0);
    OPENSSL_clear_free(der, len);
    free(want);
}

/* ---- the pcap reader ---- */

struct cap {
    uint8_t b[4096];
    size_t n;
    bool be;
};

static void
cap_put(struct cap *c, const void *p, size_t n)
{
    if (c->n + n > sizeof(c->b))
        abort();
    memcpy(c->b + c->n, p, n);
    c->n += n;
}

static void
cap_u32(struct cap *c, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(c->be ? v >> (24 - 8 * i) : v >> (8 * i));
    cap_put(c, b, 4);
}

static void
cap_header(struct cap *c, bool be, uint32_t magic, uint32_t link)
{
    memset(c, 0, sizeof(*c));
    c->be = be;
    cap_u32(c, magic);
    cap_put(c, be ? (const uint8_t[]){0, 2, 0, 4} : (const uint8_t[]){2, 0, 4, 0}, 4);
    cap_u32(c, 0);
    cap_u32(c, 0);
    cap_u32(c, 65535);
    cap_u32(c, link);
}

static void
cap_record(struct cap *c, const uint8_t *frame, size_t n)
{
    cap_u32(c, 1);
    cap_u32(c, 0);
    cap_u32(c, (uint32_t)n);
    cap_u32(c, (uint32_t)n);
    cap_put(c, frame, n);
}

/* An IPv4/UDP packet 10.0.0.1:1000 -> 10.0.0.2:2000 with payload "hi!" (flags: IP flag byte). */
static size_t
ip4_udp(uint8_t *p, uint8_t flags, uint8_t proto)
{
    static const uint8_t h[28] = {0x45, 0, 0, 31, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1,
                                  10, 0, 0, 2, 0x03, 0xe8, 0x07, 0xd0, 0, 11, 0, 0};
    memcpy(p, h, sizeof(h));
    p[6] = flags;
    p[9] = proto;
    memcpy(p + 28, "hi!", 3);
    return 31;
}

static size_t
ip6_udp(uint8_t *p)
{
    memset(p, 0, 48);
    p[0] = 0x60;
    p[5] = 11; /* payload length */
    p[6] = 17;
    p[7] = 64;
    p[23] = 1; /* ::1 */
    p[39] = 1;
    p[40] = 0x03, p[41] = 0xe8, p[42] = 0x07, p[43] = 0xd0, p[45] = 11;
    memcpy(p + 48, "hi!", 3);
    return 51;
}

struct seen {
    int n, v6;
};

static int
seen_cb(void *arg, const struct ck_li_udp *u)
{
    struct seen *s = arg;

    if (u->sport == 1000 && u->dport == 2000 && u->len == 3 && memcmp(u->payload, "hi!", 3) == 0)
        s->n++;
    if (u->family == 6)
        s->v6++;
    return 0;
}

static void
test_pcap_reader(void)
{
    struct cap c;
    uint8_t f[256];
    size_t n;
    struct seen s = {0, 0};
    struct ck_li_pcap_stats st;

    /* Ethernet: plain, one VLAN tag, IPv6; skipped: a fragment, TCP, ARP. */
    cap_header(&c, false, 0xa1b2c3d4u, 1);
    memset(f, 0, 14);
    f[12] = 0x08;
    n = ip4_udp(f + 14, 0x40, 17);
    cap_record(&c, f, 14 + n);
    memset(f, 0, 18);
    f[12] = 0x81, f[16] = 0x08;
    n = ip4_udp(f + 18, 0, 17);
    cap_record(&c, f, 18 + n);
    memset(f, 0, 14);
    f[12] = 0x86, f[13] = 0xdd;
    n = ip6_udp(f + 14);
    cap_record(&c, f, 14 + n);
    memset(f, 0, 14);
    f[12] = 0x08;
    n = ip4_udp(f + 14, 0x20, 17); /* MF */
    cap_record(&c, f, 14 + n);
    n = ip4_udp(f + 14, 0, 6); /* TCP */
    cap_record(&c, f, 14 + n);
    f[12] = 0x08, f[13] = 0x06; /* ARP */
    cap_record(&c, f, 14 + 28);
    CHECK_OK(ck_li_pcap_walk(c.b, c.n, seen_cb, &s, &st));
    CHECK(s.n == 3 && s.v6 == 1 && st.records == 6 && st.udp == 3 && st.skipped == 3);

    /* Big-endian nanosecond file, raw IP; loopback (NULL); Linux cooked. */
    s.n = 0;
    cap_header(&c, true, 0xa1b23c4du, 101);
    n = ip4_udp(f, 0, 17);
    cap_record(&c, f, n);
    CHECK_OK(ck_li_pcap_walk(c.b, c.n, seen_cb, &s, &st));
    CHECK(s.n == 1);
    cap_header(&c, false, 0xa1b2c3d4u, 0);
    memset(f, 0, 4);
    f[0] = 2;
    n = ip4_udp(f + 4, 0, 17);
    cap_record(&c, f, 4 + n);
    CHECK_OK(ck_li_pcap_walk(c.b, c.n, seen_cb, &s, &st));
    CHECK(s.n == 2);
    cap_header(&c, false, 0xa1b2c3d4u, 113);
    memset(f, 0, 16);
    f[14] = 0x08;
    n = ip4_udp(f + 16, 0, 17);
    cap_record(&c, f, 16 + n);
    CHECK_OK(ck_li_pcap_walk(c.b, c.n, seen_cb, &s, &st));
    CHECK(s.n == 3);

    /* Refusals: truncated record, record above the snap length, pcapng, short header. */
    CHECK_INT_EQ(ck_li_pcap_walk(c.b, c.n - 1, seen_cb, &s, &st), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_li_pcap_walk(c.b, c.n - (16 + n) + 3, seen_cb, &s, &st), CK_ERR_DECODE);
    c.b[24 + 8] = 0xff, c.b[24 + 9] = 0xff, c.b[24 + 10] = 0x05; /* caplen 0x5ffff */
    CHECK_INT_EQ(ck_li_pcap_walk(c.b, c.n, seen_cb, &s, &st), CK_ERR_DECODE);
    {
        static const uint8_t ng[28] = {0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a};
        /* a pcapng section whose trailing length is missing */
        CHECK_INT_EQ(ck_li_pcap_walk(ng, sizeof(ng), seen_cb, &s, &st), CK_ERR_DECODE);
        CHECK_INT_EQ(ck_li_pcap_walk(c.b, 20, seen_cb, &s, &st), CK_ERR_DECODE);
    }
    /* pcapng: a section (little-endian), a raw-IP interface, one Enhanced Packet Block, an
     * unknown block skipped, then a big-endian section with an Ethernet interface. */
    {
        static const uint8_t shb_le[28] = {0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b,
                                           0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                           0xff, 0xff, 28, 0, 0, 0};
        static const uint8_t idb_le[20] = {1, 0, 0, 0, 20, 0, 0, 0, 101, 0, 0, 0,
                                           0, 0, 0, 0, 20, 0, 0, 0};
        static const uint8_t unk_le[16] = {0x99, 0, 0, 0, 16, 0, 0, 0, 1, 2, 3, 4, 16, 0, 0, 0};
        static const uint8_t shb_be[28] = {0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 28, 0x1a, 0x2b, 0x3c,
                                           0x4d, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                           0xff, 0xff, 0, 0, 0, 28};
        static const uint8_t idb_be[20] = {0, 0, 0, 1, 0, 0, 0, 20, 0, 1, 0, 0,
                                           0, 0, 0, 0, 0, 0, 0, 20};
        uint8_t epb[128];
        struct cap g;

        memset(&g, 0, sizeof(g));
        cap_put(&g, shb_le, sizeof(shb_le));
        cap_put(&g, idb_le, sizeof(idb_le));
        cap_put(&g, unk_le, sizeof(unk_le));
        memset(epb, 0, sizeof(epb));
        n = ip4_udp(epb + 28, 0, 17);                 /* 31 bytes, padded to 32 */
        epb[0] = 6, epb[4] = 64, epb[20] = 31, epb[24] = 31, epb[60] = 64;
        cap_put(&g, epb, 64);
        cap_put(&g, shb_be, sizeof(shb_be));
        cap_put(&g, idb_be, sizeof(idb_be));
        memset(epb, 0, sizeof(epb));
        epb[3] = 6, epb[7] = 80, epb[23] = 45, epb[27] = 45, epb[79] = 80;
        epb[28 + 12] = 0x08;                          /* Ethernet, IPv4 */
        n = ip4_udp(epb + 28 + 14, 0, 17);            /* 14 + 31 = 45, padded to 48 */
        cap_put(&g, epb, 80);
        s.n = 0;
        CHECK_OK(ck_li_pcap_walk(g.b, g.n, seen_cb, &s, &st));
        CHECK(s.n == 2 && st.records == 2);
        /* A packet of an interface the section has not declared; a bad trailing length. */
        g.b[g.n - 80 - 20 + 0] = 0x99; /* the big-endian IDB becomes an unknown block */
        CHECK_INT_EQ(ck_li_pcap_walk(g.b, g.n, seen_cb, &s, &st), CK_ERR_DECODE);
        g.b[g.n - 80 - 20 + 0] = 0;
        g.b[g.n - 1] = 81;
        CHECK_INT_EQ(ck_li_pcap_walk(g.b, g.n, seen_cb, &s, &st), CK_ERR_DECODE);
        g.b[g.n - 1] = 80;
        g.b[g.n - 80 + 23] = 49;                     /* captured length beyond the block */
        CHECK_INT_EQ(ck_li_pcap_walk(g.b, g.n, seen_cb, &s, &st), CK_ERR_DECODE);
    }
    /* A UDP length beyond the IP packet: skipped, never read past. */
    cap_header(&c, false, 0xa1b2c3d4u, 101);
    n = ip4_udp(f, 0, 17);
    f[25] = 200;
    cap_record(&c, f, n);
    s.n = 0;
    CHECK_OK(ck_li_pcap_walk(c.b, c.n, seen_cb, &s, &st));
    CHECK(s.n == 0 && st.skipped == 1);
}

static void
test_orders(void)
{
    char db[256];
    struct lea l;
    ck_li *li = NULL;
    struct ck_li_order *o = NULL;
    struct stat sb;
    int64_t id1 = 0, id2 = 0;
    size_t n = 0;

    tmp_path(db, sizeof(db), "orders.db");
    lea_make(&l, "ec", T0 - DAY, T0 + 365 * DAY, KU_KEY_AGREEMENT, "lea-orders");
    CHECK_INT_EQ(ck_li_open(db, 0, &li), CK_ERR_NOTFOUND);
    CHECK_OK(ck_li_open(db, CK_LI_CREATE, &li));
    CHECK(stat(db, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK_OK(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5551001", T0, T0 + 30 * DAY,
                             "Court X, order 17/2027", l.cert_pem, "uid 0 (lia)", T0, &id1));
    CHECK_OK(ck_li_order_add(li, CK_LI_TARGET_MAC, "00-11-22-33-44-AA", T0, T0 + DAY, "Court Y",
                             l.cert_pem, "uid 0 (lia)", T0, &id2));
    CHECK(id1 > 0 && id2 > id1);
    {
        int64_t id3 = 0;
        CHECK_OK(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5550000", T0 - 10 * DAY, T0 + DAY,
                                 "Court W", l.cert_pem, "uid 0 (lia)", T0, &id3));
        CHECK_OK(ck_li_order_revoke(li, id3, "uid 0 (lia)", T0));
    }
    /* Refusals: bad number, bad MAC, inverted window, no authority, no actor, cert not
     * covering the window, garbage cert. */
    {
        int64_t id = 0;
        CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "555-1001", T0, T0 + DAY, "a",
                                     l.cert_pem, "x", T0, &id), CK_ERR_INVAL);
        CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "1234567890123456", T0,
                                     T0 + DAY, "a", l.cert_pem, "x", T0, &id), CK_ERR_INVAL);
        CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_MAC, "0011223344", T0, T0 + DAY, "a",
                                     l.cert_pem, "x", T0, &id), CK_ERR_INVAL);
        CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5551001", T0 + DAY, T0, "a",
                                     l.cert_pem, "x", T0, &id), CK_ERR_INVAL);
        CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5551001", T0, T0 + DAY, "",
                                     l.cert_pem, "x", T0, &id), CK_ERR_INVAL);
        CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5551001", T0, T0 + DAY, "a",
                                     l.cert_pem, "", T0, &id), CK_ERR_INVAL);
        CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5551001", T0, T0 + 400 * DAY,
                                     "a", l.cert_pem, "x", T0, &id), CK_ERR_INVAL);
        /* A window that started before the certificate: only the rest of it matters (no
         * record is ever made in the past), so it is refused only while it lies ahead. */
        CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5551001", T0 - 10 * DAY,
                                     T0 + DAY, "a", l.cert_pem, "x", T0 - 5 * DAY, &id),
                     CK_ERR_INVAL);
        CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5551001", T0, T0 + DAY, "a",
                                     "-----BEGIN CERTIFICATE-----\nAAAA\n", "x", T0, &id),
                     CK_ERR_INVAL);
        CHECK(id == 0);
    }
    CHECK_OK(ck_li_order_list(li, "uid 0 (lia)", T0 + 1, &o, &n));
    CHECK_INT_EQ(n, 3);
    if (n == 3) {
        CHECK(o[0].id == id1 && o[0].kind == CK_LI_TARGET_NUMBER);
        CHECK(strcmp(o[0].target, "5551001") == 0);
        CHECK(strcmp(o[1].target, "0011223344aa") == 0); /* canonical MAC */
        CHECK(o[2].revoked == T0 && o[2].not_before == T0 - 10 * DAY);
        CHECK(strcmp(o[0].authority, "Court X, order 17/2027") == 0);
        CHECK(strstr(o[0].cert_subject, "lea-orders") != NULL);
        CHECK(strlen(o[0].cert_sha256) == 64);
        CHECK(o[0].revoked == 0 && o[0].created == T0);
        CHECK(strcmp(o[0].created_by, "uid 0 (lia)") == 0);
    }
    free(o);
    CHECK_OK(ck_li_order_revoke(li, id2, "uid 0 (lia)", T0 + 2));
    CHECK_INT_EQ(ck_li_order_revoke(li, id2, "uid 0 (lia)", T0 + 3), CK_ERR_EXISTS);
    CHECK_INT_EQ(ck_li_order_revoke(li, 999, "uid 0 (lia)", T0 + 3), CK_ERR_NOTFOUND);
    CHECK_OK(ck_li_order_list(li, "uid 0 (lia)", T0 + 4, &o, &n));
    CHECK(n == 3 && o[1].revoked == T0 + 2 && o[0].revoked == 0);
    free(o);
    ck_li_close(li);
    /* Audit: add x3, list x2, revoke x2 (refusals and failed revocations leave nothing). */
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM audit WHERE action = 'order.add'"), 3);
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM audit WHERE action = 'order.list'"), 2);
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM audit WHERE action = 'order.revoke' AND "
                               "actor = 'uid 0 (lia)' AND time = 1800000002"), 1);
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM audit"), 7);
    /* A read-only handle cannot audit, so it cannot list. */
    CHECK_OK(ck_li_open(db, CK_LI_READONLY, &li));
    CHECK_INT_EQ(ck_li_order_list(li, "x", T0, &o, &n), CK_ERR_PERM);
    ck_li_close(li);
    lea_free(&l);
}

static void
test_permissions(void)
{
    char db[256], other[256];
    ck_li *li = NULL;
    sqlite3 *h = NULL;

    tmp_path(db, sizeof(db), "perm.db");
    CHECK_OK(ck_li_open(db, CK_LI_CREATE, &li));
    ck_li_close(li);
    li = NULL;
    chmod(db, 0644);
    CHECK_INT_EQ(ck_li_open(db, 0, &li), CK_ERR_PERM);
    CHECK(li == NULL && strstr(ck_error_context(), "0644") != NULL);
    chmod(db, 0602);
    CHECK_INT_EQ(ck_li_open(db, CK_LI_READONLY, &li), CK_ERR_PERM);
    chmod(db, 0660); /* a controller's group may share it */
    CHECK_OK(ck_li_open(db, 0, &li));
    ck_li_close(li);
    li = NULL;
    /* Some other SQLite file (the KDC store, say) is never taken for an intercept database. */
    tmp_path(other, sizeof(other), "other.db");
    CHECK(sqlite3_open(other, &h) == SQLITE_OK);
    sqlite3_exec(h, "CREATE TABLE principal(id INTEGER)", NULL, NULL, NULL);
    sqlite3_close(h);
    chmod(other, 0600);
    CHECK_INT_EQ(ck_li_open(other, CK_LI_CREATE, &li), CK_ERR_DB);
    CHECK(li == NULL);
    CHECK_INT_EQ(sql_count(other, "SELECT count(*) FROM sqlite_master"), 1);
    CHECK(access(other, F_OK) == 0);
    {
        char wal[300];
        snprintf(wal, sizeof(wal), "%s-wal", other);
        CHECK(access(wal, F_OK) != 0); /* its journal mode untouched */
    }
    /* A symlink is not followed. */
    tmp_path(other, sizeof(other), "link.db");
    CHECK(symlink(db, other) == 0);
    CHECK(ck_li_open(other, 0, &li) != 0);
    CHECK(li == NULL);
}

static void
escrow_one(ck_li *li, const struct ck_li_call *c, int64_t now, const char *dir, size_t expect)
{
    size_t n = 99;

    CHECK_OK(ck_li_escrow(li, c, now, 90 * DAY, dir, &n));
    CHECK_INT_EQ(n, expect);
}

static void
test_escrow_match(void)
{
    char db[256], dir[256], drop[512];
    struct lea l, other;
    ck_li *li = NULL;
    struct ck_li_call c, d;
    uint8_t *der = NULL;
    size_t der_len = 0;
    int64_t id_num = 0, id_mac = 0, id_rev = 0;
    struct stat sb;

    tmp_path(db, sizeof(db), "escrow.db");
    tmp_path(dir, sizeof(dir), "drop");
    mkdir(dir, 0700);
    lea_make(&l, "rsa", T0 - DAY, T0 + 365 * DAY, KU_KEY_ENCIPHERMENT, "lea-rsa");
    lea_make(&other, "rsa", T0 - DAY, T0 + 365 * DAY, 0, "lea-other");
    CHECK_OK(ck_li_open(db, CK_LI_CREATE, &li));
    /* Nothing ordered: nothing written. */
    call_make(&c, "c0", "5551001", "5552001");
    escrow_one(li, &c, T0 + 10, dir, 0);
    CHECK_OK(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5552001", T0, T0 + 10 * DAY, "Court X",
                             l.cert_pem, "lia", T0, &id_num));
    CHECK_OK(ck_li_order_add(li, CK_LI_TARGET_MAC, "00:11:22:33:44:cc", T0 + DAY, T0 + 2 * DAY,
                             "Court Y", l.cert_pem, "lia", T0, &id_mac));
    CHECK_OK(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5553003", T0, T0 + 10 * DAY, "Court Z",
                             l.cert_pem, "lia", T0, &id_rev));
    CHECK_OK(ck_li_order_revoke(li, id_rev, "lia", T0 + 1));

    /* The callee is a target: one record, and the drop file. */
    call_make(&c, "c1", "5551001", "5552001");
    escrow_one(li, &c, T0 + 10, dir, 1);
    snprintf(drop, sizeof(drop), "%s/%lld-c1.p7m", dir, (long long)id_num);
    CHECK(stat(drop, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    /* ... as the caller too. */
    call_make(&c, "c2", "5552001", "5559999");
    escrow_one(li, &c, T0 + 11, dir, 1);
    /* Not a party: nothing. Before and after the window: nothing. */
    call_make(&c, "c3", "5551001", "5559999");
    escrow_one(li, &c, T0 + 12, dir, 0);
    call_make(&c, "c4", "5551001", "5552001");
    escrow_one(li, &c, T0 - 1, dir, 0);
    escrow_one(li, &c, T0 + 10 * DAY, dir, 0);
    /* The revoked order escrows nothing. */
    call_make(&c, "c5", "5553003", "5551001");
    escrow_one(li, &c, T0 + 13, dir, 0);
    /* MAC order: the callee's MAC in another syntax, inside and outside its window. */
    call_make(&c, "c6", "5551001", "5559999");
    ck_strlcpy(c.callee_mac, "00-11-22-33-44-CC", sizeof(c.callee_mac));
    escrow_one(li, &c, T0 + 10, dir, 0);
    escrow_one(li, &c, T0 + DAY + 5, dir, 1);
    /* Both orders cover the call: two records. */
    call_make(&c, "c7", "5551001", "5552001");
    ck_strlcpy(c.caller_mac, "001122-3344cc", sizeof(c.caller_mac));
    ck_strlcpy(c.caller_mac, "0011223344cc", sizeof(c.caller_mac));
    escrow_one(li, &c, T0 + DAY + 6, dir, 2);
    CHECK_INT_EQ(dir_count(dir), 5);
    /* A drop that fails for the second order: nothing escrowed, the first file removed. */
    {
        char blocker[600];
        size_t n = 99;

        snprintf(blocker, sizeof(blocker), "%s/%lld-c8.p7m", dir, (long long)id_mac);
        CHECK(mkdir(blocker, 0700) == 0);
        call_make(&c, "c8", "5551001", "5552001");
        ck_strlcpy(c.caller_mac, "0011223344cc", sizeof(c.caller_mac));
        CHECK(ck_li_escrow(li, &c, T0 + DAY + 7, 90 * DAY, dir, &n) != 0);
        CHECK_INT_EQ(n, 0);
        CHECK_INT_EQ(dir_count(dir), 6); /* the five, and the blocker */
        CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM records WHERE call_id = 'c8'"), 0);
        rmdir(blocker);
        /* A drop directory that does not exist: refused the same way. */
        snprintf(blocker, sizeof(blocker), "%s/missing", dir);
        CHECK(ck_li_escrow(li, &c, T0 + DAY + 7, 90 * DAY, blocker, &n) != 0);
        CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM records WHERE call_id = 'c8'"), 0);
    }
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM records"), 5);
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM audit WHERE action = 'record.escrow'"), 5);
    /* Nothing of the unmatched calls is kept, not even in the audit. */
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM audit WHERE detail LIKE '% call c3' OR "
                               "detail LIKE '% call c4' OR detail LIKE '% call c5'"), 0);
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM audit WHERE detail LIKE '% call c1'"), 1);
    /* The key material never reaches the audit or the database in clear. */
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM records WHERE instr(der, "
                               "x'a0a1a2a3a4a5a6a7') > 0"), 0);

    /* The LEA key opens the record, with every field; another key does not. */
    CHECK_OK(ck_li_record_get(li, id_num, "c1", "lia", T0 + 20, &der, &der_len));
    call_make(&c, "c1", "5551001", "5552001");
    CHECK_OK(ck_li_record_open(der, der_len, l.key_path, NULL, &d));
    CHECK(strcmp(d.call_id, "c1") == 0 && strcmp(d.callee, "5552001") == 0);
    CHECK(memcmp(d.k_call, c.k_call, CK_CALL_KEY_LEN) == 0 && d.spi == c.spi);
    CHECK(strcmp(d.dst_media_addr, c.dst_media_addr) == 0);
    CHECK_INT_EQ(ck_li_record_open(der, der_len, other.key_path, NULL, &d), CK_ERR_INTEGRITY);
    CHECK(d.k_call[0] == 0);
    /* Tampered anywhere in the last (ciphertext, tag) bytes: refused. */
    for (size_t off = 1; off <= 40 && off < der_len; off += 13) {
        der[der_len - off] ^= 0x40;
        CHECK(ck_li_record_open(der, der_len, l.key_path, NULL, &d) != 0);
        der[der_len - off] ^= 0x40;
    }
    CHECK_OK(ck_li_record_open(der, der_len, l.key_path, NULL, &d));
    CHECK_INT_EQ(ck_li_record_open(der, der_len - 3, l.key_path, NULL, &d), CK_ERR_DECODE);
    free(der);
    der = NULL;
    CHECK_INT_EQ(ck_li_record_get(li, id_num, "c3", "lia", T0 + 20, &der, &der_len),
                 CK_ERR_NOTFOUND);
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM audit WHERE action = 'record.get'"), 1);
    /* Retention (what cablekey-cms runs): nothing expired keeps everything; past the records
     * of T0 + 10/11 (90 days on), those two go with their drop files and the others stay. */
    {
        size_t purged = 99, files = 99;

        CHECK_OK(ck_li_purge_drops(li, "cms", T0 + 90 * DAY, dir, &purged, &files));
        CHECK(purged == 0 && files == 0 && dir_count(dir) == 5);
        CHECK_OK(ck_li_purge_drops(li, "cms", T0 + 11 + 90 * DAY, dir, &purged, &files));
        CHECK(purged == 2 && files == 2 && dir_count(dir) == 3);
        CHECK(stat(drop, &sb) != 0);
        CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM records"), 3);
        /* Without a drop directory only the database is purged. */
        CHECK_OK(ck_li_purge_drops(li, "cms", T0 + 3 * DAY + 90 * DAY, NULL, &purged, &files));
        CHECK(purged == 3 && files == 0 && dir_count(dir) == 3);
    }
    ck_li_close(li);
    ck_li_call_clear(&d);
    lea_free(&l);
    lea_free(&other);
}

/* An EC LEA key, a PKCS#12 holder, a second handle adding the order while the first keeps
 * its snapshot, retention and purge. */
static void
test_escrow_ec_p12_purge(void)
{
    char db[256], p12path[256];
    struct lea l;
    ck_li *ctl = NULL, *adm = NULL;
    struct ck_li_call c, d;
    struct ck_li_record_info *recs = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0, n = 0;
    int64_t id = 0;
    PKCS12 *p12;
    FILE *f;

    tmp_path(db, sizeof(db), "ec.db");
    lea_make(&l, "ec", T0 - DAY, T0 + 365 * DAY, 0, "lea-ec");
    CHECK_OK(ck_li_open(db, CK_LI_CREATE, &adm));
    CHECK_OK(ck_li_open(db, 0, &ctl));
    call_make(&c, "e1", "5551001", "5552001");
    escrow_one(ctl, &c, T0 + 5, NULL, 0); /* the controller's snapshot: no orders */
    CHECK_OK(ck_li_order_add(adm, CK_LI_TARGET_NUMBER, "5551001", T0, T0 + DAY, "Court E",
                             l.cert_pem, "lia", T0, &id));
    escrow_one(ctl, &c, T0 + 6, NULL, 1); /* data_version moved: reloaded */
    CHECK_OK(ck_li_order_revoke(adm, id, "lia", T0 + 7));
    call_make(&c, "e2", "5551001", "5552001");
    escrow_one(ctl, &c, T0 + 8, NULL, 0);

    CHECK_OK(ck_li_record_get(adm, id, "e1", "lia", T0 + 9, &der, &der_len));
    tmp_path(p12path, sizeof(p12path), "lea.p12");
    p12 = PKCS12_create("pw", "lea", l.key, l.cert, NULL, 0, 0, 0, 0, 0);
    CHECK(p12 != NULL);
    f = fopen(p12path, "wb");
    i2d_PKCS12_fp(f, p12);
    fclose(f);
    PKCS12_free(p12);
    CHECK_OK(ck_li_record_open(der, der_len, p12path, "pw", &d));
    CHECK(strcmp(d.call_id, "e1") == 0 && d.k_call[5] == 0xa5);
    CHECK(ck_li_record_open(der, der_len, p12path, "wrong", &d) != 0);
    CHECK_OK(ck_li_record_open(der, der_len, l.key_path, NULL, &d));
    free(der);

    CHECK_OK(ck_li_record_list(adm, "lia", T0 + 10, &recs, &n));
    CHECK(n == 1 && recs[0].order_id == id && strcmp(recs[0].call_id, "e1") == 0 &&
          recs[0].expires == T0 + 6 + 90 * DAY && recs[0].der_len > 100);
    free(recs);
    CHECK_OK(ck_li_purge(adm, "lia", T0 + 90 * DAY, &n));
    CHECK_INT_EQ(n, 0);
    CHECK_OK(ck_li_purge(adm, "lia", T0 + 6 + 90 * DAY, &n));
    CHECK_INT_EQ(n, 1);
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM records"), 0);
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM audit WHERE action = 'record.purge' "
                               "AND detail = '1 records'"), 1);
    ck_li_close(ctl);
    ck_li_close(adm);
    ck_li_call_clear(&d);
    unlink(p12path);
    lea_free(&l);
}

static void
test_bad_cert_kinds(void)
{
    char db[256];
    struct lea sig;
    ck_li *li = NULL;
    int64_t id = 0;

    tmp_path(db, sizeof(db), "kinds.db");
    CHECK_OK(ck_li_open(db, CK_LI_CREATE, &li));
    /* An RSA certificate for signatures only cannot carry a key. */
    lea_make(&sig, "rsa", T0 - DAY, T0 + 365 * DAY, KU_DIGITAL_SIGNATURE, "lea-sig");
    CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5551001", T0, T0 + DAY, "a",
                                 sig.cert_pem, "lia", T0, &id), CK_ERR_INVAL);
    lea_free(&sig);
    lea_make(&sig, "ec", T0 - DAY, T0 + 365 * DAY, KU_KEY_ENCIPHERMENT, "lea-ecsig");
    CHECK_INT_EQ(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5551001", T0, T0 + DAY, "a",
                                 sig.cert_pem, "lia", T0, &id), CK_ERR_INVAL);
    lea_free(&sig);
    ck_li_close(li);
}


/* One handle shared by a controller's signaling threads: every matched call escrowed once,
 * the unmatched ones never, whatever the interleaving; and the per-call cost when no order
 * matches stays small (the in-memory snapshot, not a query per order). */
struct thr_arg {
    ck_li *li;
    int t, fails;
};

static void *
thr_main(void *p)
{
    struct thr_arg *a = p;
    struct ck_li_call c;
    char id[32];

    for (int i = 0; i < 40; i++) {
        size_t n = 0;
        snprintf(id, sizeof(id), "t%d-%d", a->t, i);
        call_make(&c, id, "5551001", i % 2 ? "5552001" : "5559999");
        if (ck_li_escrow(a->li, &c, T0 + 100, DAY, NULL, &n) != 0 || n != (size_t)(i % 2))
            a->fails++;
    }
    ck_li_call_clear(&c);
    return NULL;
}

static void
test_threads_and_cost(void)
{
    char db[256];
    struct lea l;
    ck_li *li = NULL;
    pthread_t th[4];
    struct thr_arg args[4];
    struct ck_li_call c;
    int64_t id = 0, t0, t1;
    size_t n = 0;

    tmp_path(db, sizeof(db), "threads.db");
    lea_make(&l, "ec", T0 - DAY, T0 + 365 * DAY, 0, "lea-thr");
    CHECK_OK(ck_li_open(db, CK_LI_CREATE, &li));
    CHECK_OK(ck_li_order_add(li, CK_LI_TARGET_NUMBER, "5552001", T0, T0 + DAY, "Court T",
                             l.cert_pem, "lia", T0, &id));
    for (int t = 0; t < 4; t++) {
        args[t] = (struct thr_arg){li, t, 0};
        CHECK(pthread_create(&th[t], NULL, thr_main, &args[t]) == 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK_INT_EQ(args[t].fails, 0);
    }
    CHECK_INT_EQ(sql_count(db, "SELECT count(*) FROM records"), 80);
    /* 20000 unmatched calls: well under a second even under ASan (a few µs each). */
    call_make(&c, "nomatch", "5551001", "5559999");
    t0 = ck_monotonic_ms();
    for (int i = 0; i < 20000; i++)
        CHECK_OK(ck_li_escrow(li, &c, T0 + 100, DAY, NULL, &n));
    t1 = ck_monotonic_ms();
    printf("# 20000 unmatched escrow checks: %lld ms\n", (long long)(t1 - t0));
    CHECK(t1 - t0 < 5000);
    ck_li_close(li);
    lea_free(&l);
}

static void
test_zz_cleanup(void)
{
    char cmd[128];

    if (tmpdir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        CHECK(system(cmd) == 0);
    }
}

CK_TEST_MAIN("intercept", CK_TEST_CASE(test_record_roundtrip), CK_TEST_CASE(test_record_vector),
             CK_TEST_CASE(test_pcap_reader), CK_TEST_CASE(test_orders),
             CK_TEST_CASE(test_permissions), CK_TEST_CASE(test_escrow_match),
             CK_TEST_CASE(test_escrow_ec_p12_purge), CK_TEST_CASE(test_bad_cert_kinds),
             CK_TEST_CASE(test_threads_and_cost),
             CK_TEST_CASE(test_zz_cleanup))
