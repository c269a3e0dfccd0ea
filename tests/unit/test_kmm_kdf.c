/* KMM key derivation and message authentication: the vectors of docs/PROTOCOL.md ("Key
 * management"), computed independently by tests/vectors/kmm/kmm_ref.py (Python hmac, no
 * OpenSSL), a published TLS 1.0 PRF vector, the HMAC refusals, and lib/kmm's own P_SHA-1 against
 * OpenSSL's TLS1-PRF over random inputs, across threads and a fork. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "ck_test.h"
#include "cablekey/ap.h"
#include "cablekey/crypto.h"
#include "cablekey/kmm.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/util.h"

static void
fixed_key(ck_key *k, uint8_t first)
{
    uint8_t b[32];

    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(first + i);
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

/* P_MD5 of RFC 2246 §5, for splitting the published TLS 1.0 PRF vector into its halves. */
static void
p_md5(const uint8_t *secret, size_t slen, const uint8_t *seed, size_t seed_len, uint8_t *out,
      size_t n)
{
    uint8_t a[16], next[16], buf[16 + 256], block[16];
    size_t done = 0;

    CHECK(seed_len <= 256);
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "MD5", NULL, secret, slen, seed, seed_len, a, 16, NULL) !=
          NULL);
    while (done < n) {
        memcpy(buf, a, 16);
        memcpy(buf + 16, seed, seed_len);
        CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "MD5", NULL, secret, slen, buf, 16 + seed_len, block,
                        16, NULL) != NULL);
        for (size_t i = 0; i < 16 && done < n; i++)
            out[done++] = block[i];
        CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "MD5", NULL, secret, slen, a, 16, next, 16, NULL) !=
              NULL);
        memcpy(a, next, 16);
    }
}

/* The TLS 1.0 PRF test vector posted to the IETF TLS list (secret 48 x 0xab, label
 * "PRF Testvector", seed 64 x 0xcd, 104 bytes): PRF = P_MD5(S1, ...) XOR P_SHA-1(S2, ...), with S2
 * the second 24 bytes. ck_kmm_prf(S2, ...) XOR P_MD5(S1, ...) must reproduce it, which ties the
 * SHA-1 half (the whole of cablekey's PRF) to a published value. */
static void
test_prf_published_tls10(void)
{
    static const char *published =
        "d3d4d1e349b5d515044666d51de32bab258cb521b6b053463e354832fd976754"
        "443bcf9a296519bc289abcbc1187e4ebd31e602353776c408aafb74cbc85eff6"
        "9255f9788faa184cbb957a9819d84a5d7eb006eb459d3ae8de9810454b8b2d8f"
        "1afbc655a8c9a013";
    uint8_t secret[48], seed[64], label_seed[14 + 64], sha[104], md5[104], prf[104];

    memset(secret, 0xab, sizeof(secret));
    memset(seed, 0xcd, sizeof(seed));
    memcpy(label_seed, "PRF Testvector", 14);
    memcpy(label_seed + 14, seed, sizeof(seed));
    CHECK_OK(ck_kmm_prf(secret + 24, 24, "PRF Testvector", seed, sizeof(seed), sha, sizeof(sha)));
    p_md5(secret, 24, label_seed, sizeof(label_seed), md5, sizeof(md5));
    for (size_t i = 0; i < sizeof(prf); i++)
        prf[i] = md5[i] ^ sha[i];
    check_hex(prf, sizeof(prf), published);
    /* And the P_SHA-1 half itself, as kmm_ref.py computes it. */
    check_hex(sha, 20, "83d645d755871427eb8a0ff34898b32db179a8a6");
}

static void
test_prf_vector(void)
{
    uint8_t secret[16], seed[16], out[64], shorter[7];

    for (int i = 0; i < 16; i++) {
        secret[i] = (uint8_t)i;
        seed[i] = (uint8_t)(0xa0 + i);
    }
    CHECK_OK(ck_kmm_prf(secret, sizeof(secret), "cablekey kmm test label", seed, sizeof(seed), out,
                        sizeof(out)));
    check_hex(out, sizeof(out),
              "2b3c099865f9f665a5dae0107d5386092d50a2216916826a140d9e9fe74c6509"
              "cea36432297ce69e5b63e83967909bc836c50a2ebfce22430b42e112990b4bcb");
    /* A shorter output is a prefix (P_SHA-1 is a stream). */
    CHECK_OK(ck_kmm_prf(secret, sizeof(secret), "cablekey kmm test label", seed, sizeof(seed),
                        shorter, sizeof(shorter)));
    CHECK_MEM_EQ(shorter, sizeof(shorter), out, sizeof(shorter));
    /* Bounds. */
    CHECK_INT_EQ(ck_kmm_prf(secret, sizeof(secret), "x", NULL, 0, out, 0), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_kmm_prf(secret, 0, "x", NULL, 0, out, 8), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_kmm_prf(secret, sizeof(secret), "", NULL, 0, out, 8), CK_ERR_INVAL);
    {
        static uint8_t big[1025];
        CHECK_INT_EQ(ck_kmm_prf(secret, sizeof(secret), "x", NULL, 0, big, sizeof(big)),
                     CK_ERR_INVAL);
        CHECK_OK(ck_kmm_prf(secret, sizeof(secret), "x", NULL, 0, big, 1024));
        CHECK_INT_EQ(ck_kmm_prf(secret, sizeof(secret), "x", big, 1024, out, 8), CK_ERR_INVAL);
    }
}

static void
test_hmac_keys(void)
{
    ck_key ks, k;
    uint8_t key[CK_KMM_HMAC_KEY_LEN];

    fixed_key(&ks, 0x00);
    fixed_key(&k, 0x20);
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &ks, key));
    check_hex(key, sizeof(key), "6581203808f3062f8f6b9d73eafd2e0aca75d9db");
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &k, key));
    check_hex(key, sizeof(key), "3cada538dc44e69da4151e16cd96c021dff9b8a4");
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_SP_RECOVERED, &k, key));
    check_hex(key, sizeof(key), "6c302dd58439d7f0a453037d182fe7b9319285cc");
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_REKEY, &k, key));
    check_hex(key, sizeof(key), "c873c114b01e249a01d0b6712c9a769a29d10ae5");
    CHECK_INT_EQ(ck_kmm_hmac_key((enum ck_kmm_hmac_use)9, &k, key), CK_ERR_INVAL);
}

struct ipsec_vec {
    struct ck_kmm_suite suite;
    const char *enc_c2s, *auth_c2s, *enc_s2c, *auth_s2c;
};

static void
test_ipsec_keys(void)
{
    static const struct ipsec_vec v[] = {
        {{CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128}, "e5c8f81e0184f61be8f5c2c396d8af00",
         "55bfad64ffd4d4e516026556f7a834b1933365d3", "2996ce2fab18b9595b9b3785f0b8c1e5",
         "6b42dcbd66681fca1d6dc4b617cb3ecb9edaf882"},
        {{CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES},
         "e5c8f81e0184f61be8f5c2c396d8af0055bfad64ffd4d4e5",
         "16026556f7a834b1933365d32996ce2fab18b959",
         "5b9b3785f0b8c1e56b42dcbd66681fca1d6dc4b617cb3ecb",
         "9edaf8827991e6a3bdd010ceca22ed6f3e230dd4"},
        {{CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL}, "",
         "e5c8f81e0184f61be8f5c2c396d8af0055bfad64", "",
         "ffd4d4e516026556f7a834b1933365d32996ce2f"},
        {{CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_AES128}, "e5c8f81e0184f61be8f5c2c396d8af00",
         "55bfad64ffd4d4e516026556f7a834b1", "933365d32996ce2fab18b9595b9b3785",
         "f0b8c1e56b42dcbd66681fca1d6dc4b6"},
        {{CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_3DES},
         "e5c8f81e0184f61be8f5c2c396d8af0055bfad64ffd4d4e5", "16026556f7a834b1933365d32996ce2f",
         "ab18b9595b9b3785f0b8c1e56b42dcbd66681fca1d6dc4b6", "17cb3ecb9edaf8827991e6a3bdd010ce"},
        {{CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_NULL}, "", "e5c8f81e0184f61be8f5c2c396d8af00", "",
         "55bfad64ffd4d4e516026556f7a834b1"},
    };
    ck_key k;
    struct ck_kmm_keys keys;
    static const uint8_t zero[CK_KMM_MAX_KEY];

    fixed_key(&k, 0x20);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t e = 0, a = 0;
        CHECK_OK(ck_kmm_derive_ipsec(&k, v[i].suite, 0x00001001, 0x00002002, &keys));
        CHECK_OK(ck_kmm_suite_key_lengths(CK_KMM_DOI_IPSEC, v[i].suite, &e, &a));
        CHECK_INT_EQ(keys.enc_len, e);
        CHECK_INT_EQ(keys.auth_len, a);
        CHECK_INT_EQ(keys.doi, CK_KMM_DOI_IPSEC);
        CHECK_INT_EQ(keys.suite.enc, v[i].suite.enc);
        check_hex(keys.enc_c2s, keys.enc_len, v[i].enc_c2s);
        check_hex(keys.auth_c2s, keys.auth_len, v[i].auth_c2s);
        check_hex(keys.enc_s2c, keys.enc_len, v[i].enc_s2c);
        check_hex(keys.auth_s2c, keys.auth_len, v[i].auth_s2c);
        ck_kmm_keys_clear(&keys);
        CHECK_MEM_EQ(keys.auth_c2s, sizeof(zero), zero, sizeof(zero));
        CHECK_INT_EQ(keys.enc_len, 0);
    }
    /* The SPIs are the seed: swapping them changes every key. */
    {
        struct ck_kmm_keys a, b;
        struct ck_kmm_suite s = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
        CHECK_OK(ck_kmm_derive_ipsec(&k, s, 0x1001, 0x2002, &a));
        CHECK_OK(ck_kmm_derive_ipsec(&k, s, 0x2002, 0x1001, &b));
        CHECK(memcmp(a.enc_c2s, b.enc_c2s, 16) != 0);
        ck_kmm_keys_clear(&a);
        ck_kmm_keys_clear(&b);
    }
    /* Unimplemented suites and a missing key. */
    {
        struct ck_kmm_suite rc5 = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_RC5};
        struct ck_kmm_suite snmp = {CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_DES};
        CHECK_INT_EQ(ck_kmm_derive_ipsec(&k, rc5, 1, 2, &keys), CK_ERR_UNSUPPORTED);
        CHECK_INT_EQ(ck_kmm_derive_ipsec(&k, snmp, 1, 2, &keys), CK_ERR_UNSUPPORTED);
        CHECK_INT_EQ(ck_kmm_derive_ipsec(NULL, rc5, 1, 2, &keys), CK_ERR_INVAL);
    }
}

static void
test_snmpv3_keys(void)
{
    static const struct {
        struct ck_kmm_suite suite;
        const char *auth, *priv;
    } v[] = {
        {{CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_DES}, "211e195f7bfaef3096eade609c1fd2c3e993714c",
         "b3fb050f7d72543353deecb256c24bfa"},
        {{CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_NULL}, "211e195f7bfaef3096eade609c1fd2c3e993714c",
         ""},
        {{CK_KMM_SNMP_AUTH_MD5, CK_KMM_SNMP_PRIV_DES}, "211e195f7bfaef3096eade609c1fd2c3",
         "e993714cb3fb050f7d72543353deecb2"},
        {{CK_KMM_SNMP_AUTH_MD5, CK_KMM_SNMP_PRIV_NULL}, "211e195f7bfaef3096eade609c1fd2c3", ""},
    };
    static const uint8_t id[] = {0x80, 0x00, 0x11, 0x8b, 0x03, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55};
    static const uint8_t zero[CK_KMM_MAX_KEY];
    struct ck_kmm_snmp_asd agent;
    struct ck_kmm_keys keys;
    ck_key k;

    fixed_key(&k, 0x20);
    memset(&agent, 0, sizeof(agent));
    memcpy(agent.engine_id, id, sizeof(id));
    agent.engine_id_len = sizeof(id);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        CHECK_OK(ck_kmm_derive_snmpv3(&k, v[i].suite, &agent, &keys));
        check_hex(keys.auth_c2s, keys.auth_len, v[i].auth);
        check_hex(keys.enc_c2s, keys.enc_len, v[i].priv);
        CHECK_MEM_EQ(keys.auth_s2c, sizeof(zero), zero, sizeof(zero));
        CHECK_MEM_EQ(keys.enc_s2c, sizeof(zero), zero, sizeof(zero));
        ck_kmm_keys_clear(&keys);
    }
    agent.engine_id_len = 0;
    CHECK_INT_EQ(ck_kmm_derive_snmpv3(&k, v[0].suite, &agent, &keys), CK_ERR_INVAL);
    agent.engine_id_len = 33;
    CHECK_INT_EQ(ck_kmm_derive_snmpv3(&k, v[0].suite, &agent, &keys), CK_ERR_INVAL);
}

/* OpenSSL's TLS1-PRF with digest SHA1: P_SHA-1(secret, label || seed), the reference that
 * ck_kmm_prf (which computes P_SHA-1 itself, on OpenSSL's HMAC) must equal byte for byte. */
static int
openssl_tls1_prf(const uint8_t *secret, size_t secret_len, const char *label,
                 const uint8_t *seed, size_t seed_len, uint8_t *out, size_t out_len)
{
    uint8_t input[1024];
    size_t label_len = strlen(label);
    OSSL_PARAM p[4];
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *ctx = NULL;
    int ok = 0;

    if (label_len + seed_len > sizeof(input))
        return 0;
    memcpy(input, label, label_len);
    if (seed_len > 0)
        memcpy(input + label_len, seed, seed_len);
    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA1", 0);
    p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, (void *)secret, secret_len);
    p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, input, label_len + seed_len);
    p[3] = OSSL_PARAM_construct_end();
    if ((kdf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL)) != NULL &&
        (ctx = EVP_KDF_CTX_new(kdf)) != NULL)
        ok = EVP_KDF_derive(ctx, out, out_len, p) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok;
}

/* Deterministic from a seed drawn per run and printed on a mismatch, so that a failure can be
 * replayed by fixing the seed. */
static uint64_t
next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void
rand_fill(uint64_t *s, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(next_rand(s) >> 32);
}

/* One random comparison: secret of secret_len, a label of 1..40 printable bytes, a seed of
 * 0..seed_max bytes, out_len bytes of output. Returns 1 when ck_kmm_prf equals TLS1-PRF. */
static int
prf_matches(uint64_t *s, size_t secret_len, size_t seed_max, size_t out_len)
{
    uint8_t secret[128], seed[256], got[1024], want[1024];
    char label[41];
    size_t label_len = 1 + next_rand(s) % 40, seed_len = next_rand(s) % (seed_max + 1);
    int rc;

    rand_fill(s, secret, secret_len);
    rand_fill(s, seed, seed_len);
    for (size_t i = 0; i < label_len; i++)
        label[i] = (char)(' ' + next_rand(s) % 95);
    label[label_len] = '\0';
    memset(got, 0xee, sizeof(got));
    rc = ck_kmm_prf(secret, secret_len, label, seed_len > 0 ? seed : NULL, seed_len, got, out_len);
    if (rc != 0 || !openssl_tls1_prf(secret, secret_len, label, seed, seed_len, want, out_len))
        return 0;
    /* And not a byte written past out_len. */
    return memcmp(got, want, out_len) == 0 && (out_len == sizeof(got) || got[out_len] == 0xee);
}

static uint64_t
random_seed(void)
{
    uint64_t seed = 0;

    CHECK(RAND_bytes((unsigned char *)&seed, sizeof(seed)) == 1);
    return seed != 0 ? seed : 0x9e3779b97f4a7c15ULL;
}

static void
test_prf_equals_openssl_tls1_prf(void)
{
    uint64_t seed = random_seed(), s = seed;
    int bad = 0;

    /* Every output length 1..1024 (whole blocks, partial last blocks, the maximum). */
    for (size_t n = 1; n <= 1024; n++)
        bad += !prf_matches(&s, 1 + next_rand(&s) % 64, 64, n);
    /* Every secret length 1..64, and longer ones (HMAC hashes a key over 64 bytes first). */
    for (size_t k = 1; k <= 128; k++)
        bad += !prf_matches(&s, k, 64, 1 + next_rand(&s) % 200);
    /* Random everything, with seeds up to 256 bytes. */
    for (int i = 0; i < 500; i++)
        bad += !prf_matches(&s, 1 + next_rand(&s) % 64, 256, 1 + next_rand(&s) % 1024);
    if (bad != 0)
        fprintf(stderr, "  %d mismatches against TLS1-PRF, seed %#llx\n", bad,
                (unsigned long long)seed);
    CHECK_INT_EQ(bad, 0);
}

/* The KMM HMAC is HMAC-SHA-1, as OpenSSL's one-shot computes it, whatever the thread's context
 * was last keyed with (a PRF secret, another HMAC key). */
static void
test_hmac_equals_openssl(void)
{
    uint64_t seed = random_seed(), s = seed;
    uint8_t msg[600], key[CK_KMM_HMAC_KEY_LEN], other[CK_KMM_HMAC_KEY_LEN], want[20], prf[80];
    int bad = 0;

    for (int i = 0; i < 300; i++) {
        size_t len = 3 + CK_KMM_HMAC_LEN + next_rand(&s) % (sizeof(msg) - 3 - CK_KMM_HMAC_LEN);

        rand_fill(&s, msg, len);
        rand_fill(&s, key, sizeof(key));
        rand_fill(&s, other, sizeof(other));
        if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA1", NULL, key, sizeof(key), msg,
                      len - CK_KMM_HMAC_LEN, want, sizeof(want), NULL) == NULL) {
            bad++;
            continue;
        }
        /* Leave the thread's context keyed with something else first. */
        if (i % 2 == 0)
            CHECK_OK(ck_kmm_prf(other, sizeof(other), "x", NULL, 0, prf, sizeof(prf)));
        else
            CHECK_OK(ck_kmm_seal(msg, len, other));
        CHECK_OK(ck_kmm_seal(msg, len, key));
        bad += memcmp(msg + len - CK_KMM_HMAC_LEN, want, CK_KMM_HMAC_LEN) != 0;
    }
    if (bad != 0)
        fprintf(stderr, "  %d HMAC mismatches, seed %#llx\n", bad, (unsigned long long)seed);
    CHECK_INT_EQ(bad, 0);
}

/* Each thread has its own context: threads deriving and sealing at once get the single-threaded
 * results, and their contexts are freed as they exit (ASan's leak check covers that). */
#define THREADS 4
#define THREAD_ROUNDS 300

struct thread_job {
    int id;
    uint8_t want_prf[80], want_mac[20];
    int mismatches;
};

static void
thread_inputs(int id, uint8_t secret[32], uint8_t msg[100])
{
    for (int i = 0; i < 32; i++)
        secret[i] = (uint8_t)(id * 37 + i);
    for (int i = 0; i < 100; i++)
        msg[i] = (uint8_t)(id * 11 + i * 3);
}

static void *
thread_main(void *arg)
{
    struct thread_job *job = arg;
    uint8_t secret[32], msg[100], prf[80];

    thread_inputs(job->id, secret, msg);
    for (int r = 0; r < THREAD_ROUNDS; r++) {
        if (ck_kmm_prf(secret, sizeof(secret), "cablekey kmm ipsec keys", msg, 8, prf,
                       sizeof(prf)) != 0 ||
            memcmp(prf, job->want_prf, sizeof(prf)) != 0)
            job->mismatches++;
        if (ck_kmm_seal(msg, sizeof(msg), secret) != 0 ||
            memcmp(msg + sizeof(msg) - 20, job->want_mac, 20) != 0)
            job->mismatches++;
    }
    return NULL;
}

static void
test_prf_threads_and_fork(void)
{
    struct thread_job jobs[THREADS];
    pthread_t t[THREADS];
    uint8_t secret[32], msg[100];
    int started = 0;
    pid_t pid;

    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < THREADS; i++) {
        jobs[i].id = i;
        thread_inputs(i, secret, msg);
        CHECK(openssl_tls1_prf(secret, sizeof(secret), "cablekey kmm ipsec keys", msg, 8,
                               jobs[i].want_prf, sizeof(jobs[i].want_prf)));
        CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA1", NULL, secret, 20, msg, sizeof(msg) - 20,
                        jobs[i].want_mac, 20, NULL) != NULL);
    }
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, thread_main, &jobs[i]) == 0)
            started++;
    CHECK_INT_EQ(started, THREADS);
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT_EQ(jobs[i].mismatches, 0);
    }
    /* A forked child (holding a copy of this thread's context) derives correctly, and the parent
     * still does after it. */
    thread_main(&jobs[0]);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        jobs[1].mismatches = 0;
        thread_main(&jobs[1]);
        thread_main(&jobs[0]);
        _exit(jobs[0].mismatches == 0 && jobs[1].mismatches == 0 ? 0 : 1);
    }
    if (pid > 0) {
        int status = 0;

        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        thread_main(&jobs[2]);
        CHECK_INT_EQ(jobs[0].mismatches, 0);
        CHECK_INT_EQ(jobs[2].mismatches, 0);
    }
}

static unsigned char *
read_hex_file(const char *path, size_t *len)
{
    char text[4096];
    size_t n = 0;
    FILE *f = fopen(path, "r");

    *len = 0;
    if (f == NULL) {
        fprintf(stderr, "  cannot open %s\n", path);
        return NULL;
    }
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return ck_test_hex(text, len);
}

/* The sealed messages published in docs/PROTOCOL.md (written once by tests/tools/kmm_pcap with
 * the fixed keys): decode, verify, reseal to the same bytes, and check that the Kerberos parts
 * are consistent with the keys (the AP-REP, opened with Ks and the authenticator's time, carries
 * the sub-key K). */
static void
test_sealed_messages(void)
{
    unsigned char *req = NULL, *rep = NULL, *spr = NULL, *rekey = NULL;
    size_t req_len = 0, rep_len = 0, spr_len = 0, rekey_len = 0;
    uint8_t kreq[20], krep[20], kspr[20], krekey[20], copy[1024];
    struct ck_kmm_msg m, mrep;
    ck_key ks, k;

    fixed_key(&ks, 0x00);
    fixed_key(&k, 0x20);
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &ks, kreq));
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &k, krep));
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_SP_RECOVERED, &k, kspr));
    CHECK_OK(ck_kmm_hmac_key(CK_KMM_HMAC_REKEY, &k, krekey));
    req = read_hex_file("vectors/kmm/ap_request_ipsec.hex", &req_len);
    rep = read_hex_file("vectors/kmm/ap_reply_ipsec.hex", &rep_len);
    spr = read_hex_file("vectors/kmm/sp_recovered_ipsec.hex", &spr_len);
    rekey = read_hex_file("vectors/kmm/rekey_ipsec.hex", &rekey_len);
    CHECK(req != NULL && rep != NULL && spr != NULL && rekey != NULL);
    if (req == NULL || rep == NULL || spr == NULL || rekey == NULL)
        goto out;

    CHECK_OK(ck_kmm_decode(req, req_len, &m));
    CHECK_INT_EQ(m.type, CK_KMM_AP_REQ);
    CHECK_INT_EQ(m.spi, 0x00001001);
    CHECK_INT_EQ(m.server_nonce, 0);
    CHECK_INT_EQ(m.n_suites, 3);
    CHECK_OK(ck_kmm_verify(req, &m, kreq));
    CHECK_INT_EQ(ck_kmm_verify(req, &m, krep), CK_ERR_INTEGRITY); /* wrong key */
    memcpy(copy, req, req_len);
    memset(copy + req_len - 20, 0, 20);
    CHECK_OK(ck_kmm_seal(copy, req_len, kreq));
    CHECK_MEM_EQ(copy, req_len, req, req_len);
    /* Every single-bit flip anywhere in the message is caught (or the message stops parsing). */
    for (size_t i = 0; i < req_len; i++) {
        struct ck_kmm_msg f;
        memcpy(copy, req, req_len);
        copy[i] ^= 0x01;
        if (ck_kmm_decode(copy, req_len, &f) == 0)
            CHECK_INT_EQ(ck_kmm_verify(copy, &f, kreq), CK_ERR_INTEGRITY);
    }
    /* Truncated HMAC: the message no longer parses. */
    CHECK_INT_EQ(ck_kmm_decode(req, req_len - 1, &mrep), CK_ERR_DECODE);

    CHECK_OK(ck_kmm_decode(rep, rep_len, &mrep));
    CHECK_INT_EQ(mrep.type, CK_KMM_AP_REP);
    CHECK_INT_EQ(mrep.spi, 0x00002002);
    CHECK_INT_EQ(mrep.lifetime, 3600);
    CHECK_INT_EQ(mrep.grace, 600);
    CHECK_INT_EQ(mrep.ack_required, 1);
    CHECK_OK(ck_kmm_verify(rep, &mrep, krep));
    CHECK_INT_EQ(ck_kmm_verify(rep, &mrep, kreq), CK_ERR_INTEGRITY);
    {
        /* Forged HMAC (last byte). */
        struct ck_kmm_msg f;
        memcpy(copy, rep, rep_len);
        copy[rep_len - 1] ^= 0x80;
        CHECK_OK(ck_kmm_decode(copy, rep_len, &f));
        CHECK_INT_EQ(ck_kmm_verify(copy, &f, krep), CK_ERR_INTEGRITY);
    }

    /* SP Recovered acknowledges exactly this AP Reply. */
    CHECK_INT_EQ(spr_len, 23);
    CHECK_OK(ck_kmm_sp_recovered_verify(spr, spr_len, mrep.hmac, kspr));
    CHECK_INT_EQ(ck_kmm_sp_recovered_verify(spr, spr_len, m.hmac, kspr), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(ck_kmm_sp_recovered_verify(spr, spr_len, mrep.hmac, krep), CK_ERR_INTEGRITY);
    CHECK_INT_EQ(ck_kmm_sp_recovered_verify(spr, spr_len - 1, mrep.hmac, kspr), CK_ERR_DECODE);
    memcpy(copy, spr, spr_len);
    memset(copy + 3, 0, 20);
    CHECK_OK(ck_kmm_sp_recovered_seal(copy, mrep.hmac, kspr));
    CHECK_MEM_EQ(copy, spr_len, spr, spr_len);
    copy[22] ^= 1;
    CHECK_INT_EQ(ck_kmm_sp_recovered_verify(copy, spr_len, mrep.hmac, kspr), CK_ERR_INTEGRITY);
    {
        struct ck_kmm_msg s;
        CHECK_OK(ck_kmm_decode(spr, spr_len, &s));
        CHECK_INT_EQ(ck_kmm_verify(spr, &s, kspr), CK_ERR_INVAL); /* use the SPR functions */
    }

    CHECK_OK(ck_kmm_decode(rekey, rekey_len, &m));
    CHECK_INT_EQ(m.type, CK_KMM_REKEY);
    CHECK_INT_EQ(m.timestamp, 1764633600);
    CHECK_OK(ck_kmm_verify(rekey, &m, krekey));
    CHECK_INT_EQ(ck_kmm_verify(rekey, &m, krep), CK_ERR_INTEGRITY);

    /* The Kerberos parts: authenticator under Ks (usage 11), AP-REP under Ks carrying K. */
    {
        CK_AP_REQ *apreq = NULL;
        CK_AUTHENTICATOR *auth = NULL;
        uint8_t *plain = NULL;
        size_t plain_len = 0;
        int64_t ctime = 0;
        ck_ap_rep_result r;

        memset(&r, 0, sizeof(r));
        CHECK_OK(ck_kmm_decode(req, req_len, &m));
        CHECK_OK(ck_asn1_ap_req_decode(m.krb, m.krb_len, &apreq));
        if (apreq != NULL)
            CHECK_OK(ck_enc_data_open(apreq->authenticator, &ks, CK_KU_AP_REQ_AUTH, &plain,
                                      &plain_len));
        if (plain != NULL)
            CHECK_OK(ck_asn1_authenticator_decode(plain, plain_len, &auth));
        if (auth != NULL) {
            CHECK_OK(ck_asn1_time_get(auth->ctime, &ctime));
            CHECK_OK(ck_ap_rep_verify(mrep.krb, mrep.krb_len, &ks, ctime, auth->cusec, &r));
            CHECK(r.has_subkey);
            CHECK_MEM_EQ(r.subkey.contents, r.subkey.length, k.contents, k.length);
        }
        ck_ap_rep_result_clear(&r);
        CK_AUTHENTICATOR_free(auth);
        ck_free_secret(plain, plain_len);
        CK_AP_REQ_free(apreq);
    }
out:
    free(req);
    free(rep);
    free(spr);
    free(rekey);
}

CK_TEST_MAIN("kmm_kdf", CK_TEST_CASE(test_prf_published_tls10), CK_TEST_CASE(test_prf_vector),
             CK_TEST_CASE(test_hmac_keys), CK_TEST_CASE(test_ipsec_keys),
             CK_TEST_CASE(test_snmpv3_keys), CK_TEST_CASE(test_prf_equals_openssl_tls1_prf),
             CK_TEST_CASE(test_hmac_equals_openssl), CK_TEST_CASE(test_prf_threads_and_fork),
             CK_TEST_CASE(test_sealed_messages))
