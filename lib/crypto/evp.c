/* OpenSSL 3 primitives for the Kerberos enctypes: algorithm objects fetched once per process,
 * per-thread reusable contexts (a KDC worker thread encrypts and MACs many small messages, and
 * creating/fetching per call would dominate the cost), a small per-thread cache of derived keys
 * (Ke/Ki/Kc) so that repeated use of the same long-term key skips the KDF, and per-thread
 * buffers of DRBG output for confounders and session keys.
 *
 * Key derivation: the hot path computes RFC 3961 DK as n-fold + one or two AES blocks and the
 * RFC 8009 KDF as one HMAC, on the thread's preset contexts (~0.5 us). OpenSSL's KRB5KDF and
 * KBKDF compute the same functions but allocate and fetch per call (2-5 us, measured with
 * bench/bench_crypto.c); they stay here as reference implementations that the unit tests compare
 * the hot path against, and KRB5KDF runs the RFC 3961 des3 DK vectors. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "crypto/crypto_int.h"

/* Bound on the per-thread derived-key cache: an AS exchange touches ~6 derived keys (client key
 * usages 1 and 3, krbtgt usage 2), so 32 entries keep a handful of hot principals per thread. */
#define CK_DK_CACHE_SIZE 32

/* Keyed AES and HMAC contexts kept per thread (see struct keyed_ctx). An exchange uses ~3
 * long-term keys (client, krbtgt, service) in a few usages plus one fresh session key; fresh
 * keys always miss and re-key the least recently used entry, as every call did before. */
#define CK_KEYED_CACHE_SIZE 8
/* Longest key cached; HMAC keys in use are Ki/Kc (16..32 bytes). Longer ones are not cached. */
#define CK_KEYED_MAX 32

/* Size of each per-thread random buffer: one RAND_bytes call costs ~1.7 us for 16 bytes and
 * ~2.5 us for 4 KB, so refilling 512 bytes at a time makes a confounder nearly free. */
#define CK_RAND_POOL 512
/* Requests up to this size are served from the buffer; larger ones go to the DRBG directly. */
#define CK_RAND_POOLED_MAX 64

/* n-folded DK constants remembered per thread: a server derives Ke/Ki/Kc of a few usages from
 * every fresh session key, and n-fold of the same public 5-byte constant cost more than the two
 * AES blocks of the derivation itself. */
#define CK_NFOLD_CACHE_SIZE 8

/* Kind used in the cache for the RFC 3962 PRF key DK(key, "prf"); it is not a usage constant. */
#define CK_KDF_PRF_KIND 0x00

static const char *const md_names[CK_MD_COUNT] = {"SHA1", "SHA256", "SHA384"};

/* Process-wide algorithm objects: fetched once, read-only afterwards, never freed. */
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static bool fetch_ok;
static EVP_CIPHER *cts_cipher[2]; /* [0] AES-128-CBC-CTS, [1] AES-256-CBC-CTS */
static EVP_CIPHER *cbc_cipher[2]; /* [0] AES-128-CBC, [1] AES-256-CBC (DK only) */
static EVP_MAC *hmac_mac;
static EVP_KDF *krb5kdf_kdf, *kbkdf_kdf, *pbkdf2_kdf;
static EVP_MD *digest_md[CK_MD_COUNT];
static pthread_key_t tls_key;

struct dk_entry {
    bool used;
    uint8_t kind;
    uint8_t base_len;
    uint8_t derived_len;
    int32_t enctype;
    int32_t usage;
    uint64_t last_use;
    uint64_t tag;    /* key_tag(base): pre-filter before the constant-time compare */
    uint8_t base[CK_KEY_MAX];
    uint8_t derived[CK_KEY_MAX];
};

/* A context already keyed with `key`: the krbtgt and service keys (and their Ke/Ki) come back
 * on every request, so re-using the key schedule (AES) or the ipad/opad state (HMAC) saves the
 * re-keying that was most of the remaining per-operation crypto cost. AES entries are keyed by
 * direction too: the decryption key schedule differs from the encryption one. */
struct keyed_ctx {
    bool used;
    uint8_t kind;    /* AES: key size index (0/1) | encrypt << 1 | CBC << 2; HMAC: digest index */
    uint8_t key_len;
    uint8_t ctx_kind; /* what ctx is bound to: AES key size index | CBC << 2, or HMAC digest */
    uint64_t last_use;
    uint64_t tag;    /* first bytes of key: a one-instruction pre-filter before the full
                      * constant-time compare (a 64-bit == has no byte-wise early exit) */
    uint8_t key[CK_KEYED_MAX];
    void *ctx;       /* EVP_CIPHER_CTX * or EVP_MAC_CTX * */
};

struct tls_state {
    /* AES-CTS contexts, each bound to its CTS cipher for good: re-initialising with a NULL
     * cipher only re-keys, while passing the cipher again re-creates the provider context (an
     * allocation) on every call. */
    struct keyed_ctx aes[CK_KEYED_CACHE_SIZE];
    struct keyed_ctx hmac[CK_KEYED_CACHE_SIZE];
    uint64_t keyed_tick;
    uint64_t tick, hits, misses;
    struct dk_entry cache[CK_DK_CACHE_SIZE];
    /* n-fold(constant) to one AES block; constants are public (usage numbers, "prf"). */
    struct {
        uint8_t len; /* 0: unused */
        uint8_t constant[CK_AES_BLOCK];
        uint8_t folded[CK_AES_BLOCK];
    } nfold[CK_NFOLD_CACHE_SIZE];
    unsigned int nfold_next;
    /* DRBG output not yet handed out: pool[0] from the public DRBG (confounders, nonces),
     * pool[1] from the private one (keys). Consumed bytes are wiped at once. */
    size_t pool_avail[2];
    uint8_t pool[2][CK_RAND_POOL];
};

/* The thread's state; also registered under tls_key so that it is wiped when the thread exits. */
static _Thread_local struct tls_state *tls;

static void
tls_state_free(void *p)
{
    struct tls_state *st = p;

    if (st == NULL)
        return;
    if (tls == st)
        tls = NULL;
    /* The EVP frees cleanse the key schedules; the wipe covers cached keys and random bytes. */
    for (int i = 0; i < CK_KEYED_CACHE_SIZE; i++) {
        EVP_CIPHER_CTX_free(st->aes[i].ctx);
        EVP_MAC_CTX_free(st->hmac[i].ctx);
    }
    ck_free_secret(st, sizeof(*st));
}

/* A forked child must not hand out the same buffered random bytes as its parent. Only the
 * forking thread exists in the child, so its buffers are the only ones to drop. */
static void
atfork_child(void)
{
    if (tls != NULL) {
        ck_memzero(tls->pool, sizeof(tls->pool));
        tls->pool_avail[0] = 0;
        tls->pool_avail[1] = 0;
    }
}

static void
fetch_all(void)
{
    bool ok = true;

    cts_cipher[0] = EVP_CIPHER_fetch(NULL, "AES-128-CBC-CTS", NULL);
    cts_cipher[1] = EVP_CIPHER_fetch(NULL, "AES-256-CBC-CTS", NULL);
    cbc_cipher[0] = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
    cbc_cipher[1] = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    krb5kdf_kdf = EVP_KDF_fetch(NULL, "KRB5KDF", NULL);
    kbkdf_kdf = EVP_KDF_fetch(NULL, "KBKDF", NULL);
    pbkdf2_kdf = EVP_KDF_fetch(NULL, "PBKDF2", NULL);
    for (int i = 0; i < CK_MD_COUNT; i++) {
        digest_md[i] = EVP_MD_fetch(NULL, md_names[i], NULL);
        ok = ok && digest_md[i] != NULL;
    }
    ok = ok && cts_cipher[0] != NULL && cts_cipher[1] != NULL && cbc_cipher[0] != NULL &&
         cbc_cipher[1] != NULL && hmac_mac != NULL &&
         krb5kdf_kdf != NULL && kbkdf_kdf != NULL && pbkdf2_kdf != NULL;
    if (pthread_key_create(&tls_key, tls_state_free) != 0 ||
        pthread_atfork(NULL, NULL, atfork_child) != 0)
        ok = false;
    fetch_ok = ok;
}

static int
ensure_fetched(void)
{
    if (pthread_once(&fetch_once, fetch_all) != 0 || !fetch_ok)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "crypto: OpenSSL algorithms unavailable");
    return 0;
}

/* This thread's state, created on first use. */
static int
get_tls(struct tls_state **out)
{
    int ret = ensure_fetched();

    if (ret != 0)
        return ret;
    if (tls == NULL) {
        struct tls_state *st = calloc(1, sizeof(*st));

        if (st == NULL)
            return ck_error_set(CK_ERR_NOMEM, "crypto: thread state");
        if (pthread_setspecific(tls_key, st) != 0) {
            free(st);
            return ck_error_set(CK_ERR_NOMEM, "crypto: thread key");
        }
        tls = st;
    }
    *out = tls;
    return 0;
}

void
ck_crypto_thread_cleanup(void)
{
    struct tls_state *st = tls;

    if (st == NULL)
        return;
    (void)pthread_setspecific(tls_key, NULL);
    tls_state_free(st);
}

void
ck_crypto_cache_stats(uint64_t *hits, uint64_t *misses, size_t *entries)
{
    size_t n = 0;

    if (tls != NULL)
        for (size_t i = 0; i < CK_DK_CACHE_SIZE; i++)
            n += tls->cache[i].used ? 1 : 0;
    *hits = tls != NULL ? tls->hits : 0;
    *misses = tls != NULL ? tls->misses : 0;
    *entries = n;
}

/* Finds the entry of `cache` keyed with (kind, key); on a miss returns the least recently used
 * entry, with *hit false. The key compare is constant-time: the entries hold secrets. */
static uint64_t
key_tag(const uint8_t *key, size_t key_len)
{
    uint64_t t = 0;

    memcpy(&t, key, key_len < sizeof(t) ? key_len : sizeof(t));
    return t;
}

static struct keyed_ctx *
keyed_find(struct tls_state *st, struct keyed_ctx *cache, uint8_t kind, const uint8_t *key,
           size_t key_len, bool *hit)
{
    struct keyed_ctx *victim = &cache[0];
    uint64_t tag = key_tag(key, key_len);

    *hit = false;
    st->keyed_tick++;
    for (int i = 0; i < CK_KEYED_CACHE_SIZE; i++) {
        struct keyed_ctx *e = &cache[i];

        if (e->used && e->tag == tag && e->kind == kind && e->key_len == key_len &&
            CRYPTO_memcmp(e->key, key, key_len) == 0) {
            e->last_use = st->keyed_tick;
            *hit = true;
            return e;
        }
        if (!e->used || (victim->used && e->last_use < victim->last_use))
            victim = e;
    }
    return victim;
}

/* Records that `e` now holds a context keyed with (kind, key). */
static void
keyed_fill(struct tls_state *st, struct keyed_ctx *e, uint8_t kind, const uint8_t *key,
           size_t key_len)
{
    e->used = true;
    e->tag = key_tag(key, key_len);
    e->kind = kind;
    e->key_len = (uint8_t)key_len;
    ck_memzero(e->key, sizeof(e->key));
    memcpy(e->key, key, key_len);
    e->last_use = st->keyed_tick;
}

/* Forgets an entry whose context failed: it is re-created from scratch next time. */
static void
keyed_drop(struct keyed_ctx *e, bool cipher)
{
    if (cipher)
        EVP_CIPHER_CTX_free(e->ctx);
    else
        EVP_MAC_CTX_free(e->ctx);
    e->ctx = NULL;
    e->used = false;
    ck_memzero(e->key, sizeof(e->key));
}

/* AES with a zero IV on a context from the thread's keyed cache: CBC-CTS (RFC 3962 CS3), or
 * plain CBC without padding (cbc: whole blocks only, used by DK, where K1 | K2 with
 * K2 = E(K1) is exactly the CBC encryption of n-fold(constant) | zero block). */
static int
aes_zero_iv(const uint8_t *key, size_t key_len, bool encrypt, bool cbc, const uint8_t *in,
            size_t len, uint8_t *out)
{
    static const uint8_t zero_iv[CK_AES_BLOCK];
    struct tls_state *st = NULL;
    struct keyed_ctx *e;
    OSSL_PARAM params[2];
    EVP_CIPHER *cipher = NULL;
    uint8_t kind, ctx_kind;
    bool hit = false;
    int ret, outl = 0, i = key_len == 16 ? 0 : 1;

    if (key_len != 16 && key_len != 32)
        return ck_error_set(CK_ERR_INVAL, "AES-CTS: bad key length %zu", key_len);
    /* OpenSSL refuses < 1 block; Kerberos never produces it (16-byte confounder). The int cast
     * of EVP_CipherUpdate bounds the other end. */
    if (len < CK_AES_BLOCK || len > (size_t)INT32_MAX || (cbc && len % CK_AES_BLOCK != 0))
        return ck_error_set(CK_ERR_INVAL, "AES-CTS: bad length %zu", len);
    if ((ret = get_tls(&st)) != 0)
        return ret;
    ctx_kind = (uint8_t)(i | (cbc ? 4 : 0));
    kind = (uint8_t)(ctx_kind | (encrypt ? 2 : 0));
    e = keyed_find(st, st->aes, kind, key, key_len, &hit);
    if (e->ctx != NULL && !hit && e->ctx_kind != ctx_kind)
        keyed_drop(e, true); /* bound to another cipher: re-create it for this one */
    if (e->ctx == NULL) {
        hit = false;
        if ((e->ctx = EVP_CIPHER_CTX_new()) == NULL)
            return ck_error_set_ssl(CK_ERR_NOMEM, "AES-CTS: context");
        e->ctx_kind = ctx_kind;
        cipher = cbc ? cbc_cipher[i] : cts_cipher[i];
    }
    /* RFC 3962 swaps the last two blocks always, which is NIST CS3 (OpenSSL defaults to CS1).
     * On a hit only the IV is reset: the key schedule and the CTS mode stay in the context. */
    params[0] = cbc ? OSSL_PARAM_construct_uint(OSSL_CIPHER_PARAM_PADDING, &(unsigned int){0})
                    : OSSL_PARAM_construct_utf8_string(OSSL_CIPHER_PARAM_CTS_MODE,
                                                       (char *)"CS3", 0);
    params[1] = OSSL_PARAM_construct_end();
    /* One update per message: the CTS provider processes the whole message in one call. */
    if (EVP_CipherInit_ex2(e->ctx, cipher, hit ? NULL : key, zero_iv, encrypt ? 1 : 0,
                           hit ? NULL : params) != 1 ||
        EVP_CipherUpdate(e->ctx, out, &outl, in, (int)len) != 1 || (size_t)outl != len) {
        /* Start from a fresh context next time rather than trusting a half-set one. */
        keyed_drop(e, true);
        return ck_error_set_ssl(CK_ERR_CRYPTO, "AES-%s: %s of %zu bytes failed",
                                cbc ? "CBC" : "CTS", encrypt ? "encryption" : "decryption", len);
    }
    if (!hit)
        keyed_fill(st, e, kind, key, key_len);
    return 0;
}

int
ck_crypto_aes_cts(const uint8_t *key, size_t key_len, bool encrypt, const uint8_t *in,
                  size_t len, uint8_t *out)
{
    return aes_zero_iv(key, key_len, encrypt, false, in, len, out);
}

int
ck_crypto_hmac_v(int md, const uint8_t *key, size_t key_len, const struct ck_iov *parts,
                 size_t n_parts, uint8_t *out, size_t *out_len)
{
    struct tls_state *st = NULL;
    struct keyed_ctx *e;
    size_t outl = 0;
    bool hit = false, cacheable = key_len > 0 && key_len <= CK_KEYED_MAX;
    int ret;

    if (md < 0 || md >= CK_MD_COUNT)
        return ck_error_set(CK_ERR_INVAL, "HMAC: bad digest %d", md);
    if ((ret = get_tls(&st)) != 0)
        return ret;
    /* Uncacheable keys share the least recently used entry and leave it unkeyed. */
    e = keyed_find(st, st->hmac, (uint8_t)md, key, cacheable ? key_len : 0, &hit);
    hit = hit && cacheable;
    if (e->ctx != NULL && !hit && e->ctx_kind != (uint8_t)md)
        keyed_drop(e, false); /* bound to another digest */
    if (e->ctx == NULL) {
        OSSL_PARAM params[2];

        hit = false;
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                     (char *)md_names[md], 0);
        params[1] = OSSL_PARAM_construct_end();
        e->ctx = EVP_MAC_CTX_new(hmac_mac);
        if (e->ctx == NULL || EVP_MAC_CTX_set_params(e->ctx, params) != 1) {
            keyed_drop(e, false);
            return ck_error_set_ssl(CK_ERR_CRYPTO, "HMAC-%s: context", md_names[md]);
        }
        e->ctx_kind = (uint8_t)md;
    }
    /* A NULL key restarts from the saved ipad/opad state of the same key: no compression
     * blocks. A new key costs two. */
    if (EVP_MAC_init(e->ctx, hit ? NULL : key, hit ? 0 : key_len, NULL) != 1) {
        keyed_drop(e, false);
        return ck_error_set_ssl(CK_ERR_CRYPTO, "HMAC-%s: init", md_names[md]);
    }
    if (cacheable) {
        if (!hit)
            keyed_fill(st, e, (uint8_t)md, key, key_len);
    } else {
        /* Keyed with something we do not remember: it must not match a later lookup. */
        e->used = false;
        ck_memzero(e->key, sizeof(e->key));
    }
    for (size_t i = 0; i < n_parts; i++)
        if (parts[i].len > 0 && EVP_MAC_update(e->ctx, parts[i].data, parts[i].len) != 1) {
            keyed_drop(e, false);
            return ck_error_set_ssl(CK_ERR_CRYPTO, "HMAC-%s: update", md_names[md]);
        }
    if (EVP_MAC_final(e->ctx, out, &outl, EVP_MAX_MD_SIZE) != 1) {
        keyed_drop(e, false);
        return ck_error_set_ssl(CK_ERR_CRYPTO, "HMAC-%s: final", md_names[md]);
    }
    *out_len = outl;
    return 0;
}

int
ck_crypto_hmac(int md, const uint8_t *key, size_t key_len, const uint8_t *data1, size_t len1,
               const uint8_t *data2, size_t len2, uint8_t *out, size_t *out_len)
{
    struct ck_iov parts[2];

    parts[0].data = data1;
    parts[0].len = len1;
    parts[1].data = data2;
    parts[1].len = len2;
    return ck_crypto_hmac_v(md, key, key_len, parts, 2, out, out_len);
}

int
ck_crypto_random(void *buf, size_t len, bool priv)
{
    struct tls_state *st = NULL;
    int p = priv ? 1 : 0, ret;
    uint8_t *src;

    if (len == 0)
        return 0;
    if (len > CK_RAND_POOLED_MAX) {
        if (len > INT32_MAX)
            return ck_error_set(CK_ERR_LIMIT, "random: %zu bytes", len);
        if ((priv ? RAND_priv_bytes(buf, (int)len) : RAND_bytes(buf, (int)len)) != 1)
            return ck_error_set_ssl(CK_ERR_CRYPTO, "random: DRBG failure");
        return 0;
    }
    if ((ret = get_tls(&st)) != 0)
        return ret;
    if (st->pool_avail[p] < len) {
        ck_memzero(st->pool[p], CK_RAND_POOL);
        st->pool_avail[p] = 0;
        if ((priv ? RAND_priv_bytes(st->pool[p], CK_RAND_POOL)
                  : RAND_bytes(st->pool[p], CK_RAND_POOL)) != 1)
            return ck_error_set_ssl(CK_ERR_CRYPTO, "random: DRBG failure");
        st->pool_avail[p] = CK_RAND_POOL;
    }
    /* Hand out from the end of the unused region and wipe what was handed out. */
    st->pool_avail[p] -= len;
    src = st->pool[p] + st->pool_avail[p];
    memcpy(buf, src, len);
    ck_memzero(src, len);
    return 0;
}

int
ck_crypto_krb5kdf(const char *cipher, const uint8_t *key, size_t key_len,
                  const uint8_t *constant, size_t constant_len, uint8_t *out, size_t out_len)
{
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[4];
    int ret = ensure_fetched();

    if (ret != 0)
        return ret;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_CIPHER, (char *)cipher, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_CONSTANT, (void *)constant,
                                                  constant_len);
    params[3] = OSSL_PARAM_construct_end();
    if ((kctx = EVP_KDF_CTX_new(krb5kdf_kdf)) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_NOMEM, "KRB5KDF: context");
        goto out;
    }
    if (EVP_KDF_derive(kctx, out, out_len, params) != 1) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "KRB5KDF(%s) failed", cipher);
        goto out;
    }
out:
    EVP_KDF_CTX_free(kctx);
    return ret;
}

int
ck_crypto_kbkdf_sha2(int md, const uint8_t *key, size_t key_len, const uint8_t *label,
                     size_t label_len, const uint8_t *context, size_t context_len, uint8_t *out,
                     size_t out_len)
{
    static const uint8_t empty[1];
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[9];
    int use_l = 1, use_sep = 1, ret = ensure_fetched();

    if (ret != 0)
        return ret;
    if (md != CK_MD_SHA256 && md != CK_MD_SHA384)
        return ck_error_set(CK_ERR_INVAL, "KBKDF: bad digest %d", md);
    /* SP 800-108 counter mode: OpenSSL's "salt" is the label and "info" the context. */
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, (char *)"counter", 0);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, (char *)"HMAC", 0);
    params[2] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md_names[md], 0);
    params[3] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_L, &use_l);
    params[4] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_SEPARATOR, &use_sep);
    params[5] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
    params[6] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)label, label_len);
    params[7] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, (void *)(context != NULL ? context : empty), context_len);
    params[8] = OSSL_PARAM_construct_end();
    if ((kctx = EVP_KDF_CTX_new(kbkdf_kdf)) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_NOMEM, "KBKDF: context");
        goto out;
    }
    if (EVP_KDF_derive(kctx, out, out_len, params) != 1) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "KBKDF(HMAC-%s) failed", md_names[md]);
        goto out;
    }
out:
    EVP_KDF_CTX_free(kctx);
    return ret;
}

void
ck_crypto_nfold(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    size_t a = in_len, b = out_len, lcm, in_bits = in_len * 8;
    unsigned int sum = 0;

    /* RFC 3961 §5.1: replicate the input to lcm(in, out) bytes, each copy rotated right by 13
     * more bits than the previous one, and add the out_len-byte chunks in one's-complement
     * arithmetic. Walking the replicated string from its last byte to its first, byte i lands in
     * out[i % out_len]; the carry that leaves out[0] re-enters at out[out_len - 1] with the next
     * chunk, which is exactly the end-around carry. */
    while (b != 0) {
        size_t t = a % b;

        a = b;
        b = t;
    }
    lcm = in_len / a * out_len;
    memset(out, 0, out_len);
    for (size_t copy = lcm / in_len, o = 0; copy-- > 0;) {
        /* Rotating right by rot bits makes output bit j come from input bit j - rot. */
        size_t rot = (13 * copy) % in_bits;

        for (size_t byte = in_len; byte-- > 0;) {
            /* Bit offset (from the most significant end) where this byte starts in the input. */
            size_t start = byte * 8 + in_bits - rot;
            size_t hi, lo;
            unsigned int v;

            if (start >= in_bits)
                start -= in_bits;
            hi = start / 8;
            lo = hi + 1 == in_len ? 0 : hi + 1;
            v = ((unsigned int)in[hi] << 8 | in[lo]) >> (8 - start % 8);
            o = (o == 0 ? out_len : o) - 1;
            sum += out[o] + (v & 0xff);
            out[o] = (uint8_t)sum;
            sum >>= 8;
        }
    }
    /* Fold the final carry back in; a second carry cannot survive more than one more pass. */
    while (sum != 0) {
        for (size_t i = out_len; i-- > 0 && sum != 0;) {
            sum += out[i];
            out[i] = (uint8_t)sum;
            sum >>= 8;
        }
    }
}

/* n-fold(constant) to one AES block, from the thread's memo when it was folded before. */
static void
nfold_block(const uint8_t *constant, size_t len, uint8_t block[CK_AES_BLOCK])
{
    struct tls_state *st = NULL;
    unsigned int slot;

    if (get_tls(&st) != 0) {
        ck_crypto_nfold(constant, len, block, CK_AES_BLOCK);
        return;
    }
    for (int i = 0; i < CK_NFOLD_CACHE_SIZE; i++)
        if (st->nfold[i].len == len && memcmp(st->nfold[i].constant, constant, len) == 0) {
            memcpy(block, st->nfold[i].folded, CK_AES_BLOCK);
            return;
        }
    ck_crypto_nfold(constant, len, block, CK_AES_BLOCK);
    slot = st->nfold_next++ % CK_NFOLD_CACHE_SIZE;
    st->nfold[slot].len = (uint8_t)len;
    memcpy(st->nfold[slot].constant, constant, len);
    memcpy(st->nfold[slot].folded, block, CK_AES_BLOCK);
}

int
ck_crypto_dk_aes(const uint8_t *key, size_t key_len, const uint8_t *constant,
                 size_t constant_len, uint8_t *out)
{
    uint8_t block[CK_AES_BLOCK], buf[2 * CK_AES_BLOCK];
    int ret;

    /* RFC 3961 §5.1: DK = random-to-key(DR), DR = k-truncate(K1 | K2 | ...), K1 = E(key,
     * n-fold(constant)), Kn+1 = E(key, Kn). E on one block is plain AES (RFC 3962 §5), and
     * random-to-key is the identity for AES. Constants are usage|byte (5), "prf", "kerberos". */
    if (constant_len == 0 || constant_len > CK_AES_BLOCK)
        return ck_error_set(CK_ERR_INVAL, "DK: constant of %zu bytes", constant_len);
    if (key_len != 16 && key_len != 32)
        return ck_error_set(CK_ERR_INVAL, "DK: key of %zu bytes", key_len);
    if (constant_len < CK_AES_BLOCK)
        nfold_block(constant, constant_len, block);
    else
        memcpy(block, constant, CK_AES_BLOCK);
    /* One CBC call over n-fold(constant) | 0^16 (zero IV) gives K1 | K2 for a 256-bit key:
     * the second block's input is K1 xor 0. */
    memcpy(buf, block, CK_AES_BLOCK);
    memset(buf + CK_AES_BLOCK, 0, CK_AES_BLOCK);
    ret = aes_zero_iv(key, key_len, true, true, buf, key_len, out);
    ck_memzero(block, sizeof(block));
    ck_memzero(buf, sizeof(buf));
    if (ret != 0)
        ck_memzero(out, key_len);
    return ret;
}

int
ck_crypto_kdf_sha2(int md, const uint8_t *key, size_t key_len, const uint8_t *label,
                   size_t label_len, const uint8_t *context, size_t context_len, uint8_t *out,
                   size_t out_len)
{
    uint8_t head[4 + CK_KDF_LABEL_MAX + 1], tail[4], mac[EVP_MAX_MD_SIZE];
    struct ck_iov parts[3];
    size_t mac_len = 0;
    uint32_t bits = (uint32_t)out_len * 8;
    int ret;

    /* RFC 8009 §3: KDF-HMAC-SHA2(key, label, [context,] k) = k-truncate(K1) with
     * K1 = HMAC-SHA-256/384(key, 0x00000001 | label | 0x00 | [context |] k), k in bits as a
     * 32-bit big-endian number. One HMAC block always suffices: no output exceeds the digest. */
    if (md != CK_MD_SHA256 && md != CK_MD_SHA384)
        return ck_error_set(CK_ERR_INVAL, "KDF-HMAC-SHA2: bad digest %d", md);
    if (label_len > CK_KDF_LABEL_MAX || out_len == 0 ||
        out_len > (md == CK_MD_SHA256 ? 32u : 48u))
        return ck_error_set(CK_ERR_INVAL, "KDF-HMAC-SHA2: label %zu / output %zu bytes",
                            label_len, out_len);
    head[0] = 0;
    head[1] = 0;
    head[2] = 0;
    head[3] = 1;
    memcpy(head + 4, label, label_len);
    head[4 + label_len] = 0x00;
    tail[0] = (uint8_t)(bits >> 24);
    tail[1] = (uint8_t)(bits >> 16);
    tail[2] = (uint8_t)(bits >> 8);
    tail[3] = (uint8_t)bits;
    parts[0].data = head;
    parts[0].len = 4 + label_len + 1;
    parts[1].data = context;
    parts[1].len = context != NULL ? context_len : 0;
    parts[2].data = tail;
    parts[2].len = sizeof(tail);
    ret = ck_crypto_hmac_v(md, key, key_len, parts, 3, mac, &mac_len);
    if (ret == 0)
        memcpy(out, mac, out_len);
    ck_memzero(head, sizeof(head));
    ck_memzero(mac, sizeof(mac));
    return ret;
}

int
ck_crypto_pbkdf2(int md, const char *password, size_t password_len, const uint8_t *salt,
                 size_t salt_len, uint32_t iter, uint8_t *out, size_t out_len)
{
    static const uint8_t empty[1];
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5];
    int ret = ensure_fetched();

    if (ret != 0)
        return ret;
    if (md < 0 || md >= CK_MD_COUNT)
        return ck_error_set(CK_ERR_INVAL, "PBKDF2: bad digest %d", md);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md_names[md], 0);
    params[1] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_PASSWORD, (void *)(password_len > 0 ? (const void *)password : empty),
        password_len);
    params[2] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, (void *)(salt_len > 0 ? salt : empty), salt_len);
    params[3] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_ITER, &iter);
    params[4] = OSSL_PARAM_construct_end();
    if ((kctx = EVP_KDF_CTX_new(pbkdf2_kdf)) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_NOMEM, "PBKDF2: context");
        goto out;
    }
    if (EVP_KDF_derive(kctx, out, out_len, params) != 1) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "PBKDF2-%s failed", md_names[md]);
        goto out;
    }
out:
    EVP_KDF_CTX_free(kctx);
    return ret;
}

int
ck_crypto_digest(int md, const uint8_t *data, size_t len, uint8_t *out, size_t *out_len)
{
    unsigned int outl = 0;
    int ret = ensure_fetched();

    if (ret != 0)
        return ret;
    if (md < 0 || md >= CK_MD_COUNT)
        return ck_error_set(CK_ERR_INVAL, "digest: bad digest %d", md);
    if (EVP_Digest(data, len, out, &outl, digest_md[md], NULL) != 1)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "%s failed", md_names[md]);
    *out_len = outl;
    return 0;
}

/* Runs the enctype's KDF for (usage, kind) without the cache. */
static int
derive_uncached(const ck_enctype_info *info, const ck_key *base, int32_t usage, uint8_t kind,
                uint8_t *out, size_t *out_len)
{
    uint8_t constant[5];
    const uint8_t *c = constant;
    size_t clen = sizeof(constant), len;
    int ret;

    if (kind == CK_KDF_PRF_KIND) {
        c = (const uint8_t *)"prf";
        clen = 3;
    } else {
        constant[0] = (uint8_t)((uint32_t)usage >> 24);
        constant[1] = (uint8_t)((uint32_t)usage >> 16);
        constant[2] = (uint8_t)((uint32_t)usage >> 8);
        constant[3] = (uint8_t)usage;
        constant[4] = kind;
    }
    if (info->family == CK_FAMILY_RFC3962) {
        /* RFC 3961 §5.1: every DK output is a full protocol key. */
        len = info->key_len;
        ret = ck_crypto_dk_aes(base->contents, base->length, c, clen, out);
    } else {
        /* RFC 8009 §5: Ke is the cipher key length, Kc and Ki the (truncated) MAC key length. */
        len = kind == CK_KDF_ENCRYPT ? info->key_len : info->ki_len;
        ret = ck_crypto_kdf_sha2(info->md, base->contents, base->length, c, clen, NULL, 0, out,
                                 len);
    }
    ck_memzero(constant, sizeof(constant));
    if (ret == 0)
        *out_len = len;
    return ret;
}

int
ck_crypto_derive_key(const ck_key *base, int32_t usage, uint8_t kind, uint8_t *out,
                     size_t *out_len)
{
    const ck_enctype_info *info = ck_crypto_enctype_info(base->enctype);
    struct tls_state *st = NULL;
    struct dk_entry *e, *victim = NULL;
    uint64_t tag;
    size_t len = 0;
    int ret;

    if (info == NULL)
        return ck_error_set(CK_ERR_UNSUPPORTED, "unsupported enctype %d", (int)base->enctype);
    if (base->length != info->key_len)
        return ck_error_set(CK_ERR_INVAL, "key length %u for enctype %d", base->length,
                            (int)base->enctype);
    if ((ret = get_tls(&st)) != 0)
        return ret;
    tag = key_tag(base->contents, base->length);
    st->tick++;
    for (size_t i = 0; i < CK_DK_CACHE_SIZE; i++) {
        e = &st->cache[i];
        if (!e->used) {
            if (victim == NULL || victim->used)
                victim = e;
            continue;
        }
        if (e->tag == tag && e->enctype == base->enctype && e->usage == usage && e->kind == kind &&
            e->base_len == base->length &&
            CRYPTO_memcmp(e->base, base->contents, base->length) == 0) {
            e->last_use = st->tick;
            st->hits++;
            memcpy(out, e->derived, e->derived_len);
            *out_len = e->derived_len;
            return 0;
        }
        if (victim == NULL || (victim->used && e->last_use < victim->last_use))
            victim = e;
    }
    st->misses++;
    if ((ret = derive_uncached(info, base, usage, kind, out, &len)) != 0)
        return ret;
    /* Replace the least recently used entry, wiping the evicted key first. */
    ck_memzero(victim, sizeof(*victim));
    victim->used = true;
    victim->kind = kind;
    victim->enctype = base->enctype;
    victim->usage = usage;
    victim->base_len = (uint8_t)base->length;
    victim->derived_len = (uint8_t)len;
    victim->last_use = st->tick;
    victim->tag = tag;
    memcpy(victim->base, base->contents, base->length);
    memcpy(victim->derived, out, len);
    *out_len = len;
    return 0;
}

int
ck_crypto_prf_key(const ck_key *base, uint8_t *out, size_t *out_len)
{
    return ck_crypto_derive_key(base, 0, CK_KDF_PRF_KIND, out, out_len);
}
