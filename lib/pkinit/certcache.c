/* Decoded-certificate cache. OpenSSL 3.0 decodes a certificate's public key through its provider
 * decoder framework, which costs ~150-200 us per certificate (locks and allocations, measured
 * with bench_pkinit_crypto), more than the RSA verification the certificate is there for. A
 * device presents the same leaf and manufacturer CA at every login, and all devices of a
 * manufacturer share the CA, so the KDC keeps decoded X509 objects keyed by the SHA-256 of
 * their DER: equal hashes mean equal bytes, hence an identical certificate.
 *
 * Same layout and threading rule as the thumbprint cache: fixed capacity, 4-way sets indexed
 * by the hash, LRU inside a set, one instance per worker thread and no locks. The X509 objects
 * handed out are new references, so an entry can be evicted while a request still uses it. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/pkinit.h"
#include "pkinit/pkinit_int.h"

#define WAYS 4
#define CAPACITY_MIN 16
#define CAPACITY_MAX (1u << 20)

struct cert_entry {
    X509 *cert; /* NULL: free slot */
    uint8_t hash[CK_PKINIT_TP_LEN];
    uint64_t last_use;
};

struct ck_pkinit_certcache {
    struct cert_entry *entries; /* nsets * WAYS */
    size_t nsets;
    uint64_t tick;
    ck_pkinit_cache_stats st;
};

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256;

static void
md_init(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *
ck_pkinit_sha256_md(void)
{
    if (pthread_once(&md_once, md_init) != 0)
        return NULL;
    return sha256;
}

int
ck_pkinit_sha256(const uint8_t *data, size_t len, uint8_t out[CK_PKINIT_TP_LEN])
{
    const EVP_MD *md = ck_pkinit_sha256_md();
    unsigned int n = 0;

    if (md == NULL || EVP_Digest(data, len, out, &n, md, NULL) != 1 || n != CK_PKINIT_TP_LEN)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "SHA-256 failed");
    return 0;
}

int
ck_pkinit_certcache_new(size_t capacity, ck_pkinit_certcache **out)
{
    ck_pkinit_certcache *c;
    size_t cap = CAPACITY_MIN;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "certificate cache: no output");
    *out = NULL;
    if (capacity > CAPACITY_MAX)
        return ck_error_set(CK_ERR_LIMIT, "certificate cache: capacity %zu exceeds %u",
                            capacity, CAPACITY_MAX);
    while (cap < capacity)
        cap <<= 1;
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->entries = calloc(cap, sizeof(*c->entries))) == NULL) {
        free(c);
        return ck_error_set(CK_ERR_NOMEM, "certificate cache: out of memory");
    }
    c->nsets = cap / WAYS;
    c->st.capacity = cap;
    *out = c;
    return 0;
}

void
ck_pkinit_certcache_free(ck_pkinit_certcache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nsets * WAYS; i++)
        X509_free(c->entries[i].cert);
    free(c->entries);
    free(c);
}

void
ck_pkinit_certcache_get_stats(const ck_pkinit_certcache *c, ck_pkinit_cache_stats *st)
{
    if (st == NULL)
        return;
    if (c == NULL)
        memset(st, 0, sizeof(*st));
    else
        *st = c->st;
}

static int
decode(const uint8_t *der, size_t len, X509 **out)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);

    *out = NULL;
    if (x == NULL || p != der + len) {
        X509_free(x);
        ERR_clear_error();
        return ck_error_set(CK_ERR_DECODE, "certificate: not a DER X.509 certificate");
    }
    *out = x;
    return 0;
}

int
ck_pkinit_certcache_get(ck_pkinit_certcache *c, const uint8_t hash[CK_PKINIT_TP_LEN],
                        const uint8_t *der, size_t len, X509 **out)
{
    struct cert_entry *set, *victim = NULL;
    uint64_t h;
    X509 *x;
    int ret;

    if (c == NULL)
        return decode(der, len, out);
    memcpy(&h, hash, sizeof(h));
    set = &c->entries[(h & (c->nsets - 1)) * WAYS];
    for (int w = 0; w < WAYS; w++) {
        struct cert_entry *e = &set[w];
        if (e->cert != NULL && memcmp(e->hash, hash, CK_PKINIT_TP_LEN) == 0) {
            if (!X509_up_ref(e->cert))
                return ck_error_set(CK_ERR_CRYPTO, "certificate cache: cannot reference");
            e->last_use = ++c->tick;
            c->st.hits++;
            *out = e->cert;
            return 0;
        }
        if (victim == NULL || (victim->cert != NULL &&
                               (e->cert == NULL || e->last_use < victim->last_use)))
            victim = e;
    }
    c->st.misses++;
    if ((ret = decode(der, len, &x)) != 0)
        return ret;
    if (!X509_up_ref(x)) {
        X509_free(x);
        return ck_error_set(CK_ERR_CRYPTO, "certificate cache: cannot reference");
    }
    if (victim->cert != NULL) {
        X509_free(victim->cert);
        c->st.evictions++;
    } else {
        c->st.used++;
    }
    victim->cert = x;
    memcpy(victim->hash, hash, CK_PKINIT_TP_LEN);
    victim->last_use = ++c->tick;
    c->st.stores++;
    *out = x;
    return 0;
}
