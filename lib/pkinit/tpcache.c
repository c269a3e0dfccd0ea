/* Thumbprint cache (seed 002): the verdict of a certificate-chain validation, keyed by a
 * SHA-256 over the anchor-set generation and the certificates the client sent, so a device's
 * repeat login skips path building and CRL processing until the earliest notAfter (or CRL
 * nextUpdate) of its chain, a change of its device record, or a reload of the anchors.
 *
 * Layout: a fixed array of 4-way sets indexed by the thumbprint's first bytes (a SHA-256 output,
 * so uniformly spread; an attacker who wants to crowd one set must get each of its chains
 * verified first, which costs it a full verification per entry and costs honest devices at most
 * a re-verification). LRU inside a set. No locks: one cache per KDC worker thread, which also
 * keeps each lookup on the worker's own cache lines. A lookup is a hash of the chain's DER and
 * at most four 32-byte compares (see bench_pkinit_crypto for the cost next to a verification). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/pkinit.h"
#include "cablekey/util.h"

#define WAYS 4
#define CAPACITY_MIN 16
#define CAPACITY_MAX (1u << 20)

struct tp_entry {
    bool used;
    uint8_t tp[CK_PKINIT_TP_LEN];
    uint64_t record_generation;
    uint64_t last_use;
    ck_pkinit_chain_result res;
};

struct ck_pkinit_tpcache {
    struct tp_entry *entries; /* nsets * WAYS */
    size_t nsets;             /* a power of two */
    uint64_t tick;
    ck_pkinit_tpcache_stats st;
};

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md; /* fetched once: an implicit fetch per digest costs more than the hash */

static void
md_init(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int
hash_cert(EVP_MD_CTX *md, X509 *x)
{
    unsigned char *der = NULL;
    uint8_t len[4];
    int n = i2d_X509(x, &der);
    int ok;

    if (n <= 0)
        return 0;
    /* Length-prefixed, so no two different certificate lists hash the same input. */
    len[0] = (uint8_t)(n >> 24);
    len[1] = (uint8_t)(n >> 16);
    len[2] = (uint8_t)(n >> 8);
    len[3] = (uint8_t)n;
    ok = EVP_DigestUpdate(md, len, sizeof(len)) && EVP_DigestUpdate(md, der, (size_t)n);
    OPENSSL_free(der);
    return ok;
}

int
ck_pkinit_thumbprint(X509 *leaf, STACK_OF(X509) *chain, uint64_t anchors_generation,
                     uint8_t out[CK_PKINIT_TP_LEN])
{
    EVP_MD_CTX *md = NULL;
    uint8_t gen[8];
    unsigned int mdlen = 0;
    int ret = 0;

    if (leaf == NULL || out == NULL)
        return ck_error_set(CK_ERR_INVAL, "thumbprint: bad arguments");
    if (chain != NULL && sk_X509_num(chain) > CK_PKINIT_MAX_CERTS)
        return ck_error_set(CK_ERR_LIMIT, "thumbprint: more than %d certificates",
                            CK_PKINIT_MAX_CERTS);
    if (pthread_once(&md_once, md_init) != 0 || sha256_md == NULL)
        return ck_error_set(CK_ERR_CRYPTO, "thumbprint: SHA-256 unavailable");
    for (int i = 0; i < 8; i++)
        gen[i] = (uint8_t)(anchors_generation >> (56 - 8 * i));
    md = EVP_MD_CTX_new();
    if (md == NULL)
        return ck_error_set(CK_ERR_NOMEM, "thumbprint: out of memory");
    if (!EVP_DigestInit_ex(md, sha256_md, NULL) || !EVP_DigestUpdate(md, gen, sizeof(gen)) ||
        !hash_cert(md, leaf)) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "thumbprint: hashing failed");
        goto out;
    }
    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
        if (!hash_cert(md, sk_X509_value(chain, i))) {
            ret = ck_error_set_ssl(CK_ERR_CRYPTO, "thumbprint: hashing failed");
            goto out;
        }
    }
    if (!EVP_DigestFinal_ex(md, out, &mdlen) || mdlen != CK_PKINIT_TP_LEN)
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "thumbprint: hashing failed");
out:
    EVP_MD_CTX_free(md);
    return ret;
}

int
ck_pkinit_tpcache_new(size_t capacity, ck_pkinit_tpcache **out)
{
    ck_pkinit_tpcache *c;
    size_t cap = CAPACITY_MIN;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "thumbprint cache: no output");
    *out = NULL;
    if (capacity > CAPACITY_MAX)
        return ck_error_set(CK_ERR_LIMIT, "thumbprint cache: capacity %zu exceeds %u", capacity,
                            CAPACITY_MAX);
    while (cap < capacity)
        cap <<= 1;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return ck_error_set(CK_ERR_NOMEM, "thumbprint cache: out of memory");
    c->entries = calloc(cap, sizeof(*c->entries));
    if (c->entries == NULL) {
        free(c);
        return ck_error_set(CK_ERR_NOMEM, "thumbprint cache: out of memory");
    }
    c->nsets = cap / WAYS;
    c->st.capacity = cap;
    *out = c;
    return 0;
}

void
ck_pkinit_tpcache_free(ck_pkinit_tpcache *c)
{
    if (c == NULL)
        return;
    free(c->entries);
    free(c);
}

static struct tp_entry *
set_of(const ck_pkinit_tpcache *c, const uint8_t tp[CK_PKINIT_TP_LEN])
{
    uint64_t h;

    memcpy(&h, tp, sizeof(h));
    return &c->entries[(h & (c->nsets - 1)) * WAYS];
}

int
ck_pkinit_tpcache_lookup(ck_pkinit_tpcache *c, const uint8_t tp[CK_PKINIT_TP_LEN], int64_t now,
                         uint64_t record_generation, ck_pkinit_chain_result *res)
{
    struct tp_entry *set;

    if (c == NULL || tp == NULL || res == NULL)
        return ck_error_set(CK_ERR_INVAL, "thumbprint cache: bad arguments");
    set = set_of(c, tp);
    for (int w = 0; w < WAYS; w++) {
        struct tp_entry *e = &set[w];
        if (!e->used || memcmp(e->tp, tp, CK_PKINIT_TP_LEN) != 0)
            continue;
        if (now >= e->res.valid_until || e->record_generation != record_generation) {
            e->used = false;
            c->st.used--;
            break;
        }
        e->last_use = ++c->tick;
        *res = e->res;
        c->st.hits++;
        return 0;
    }
    c->st.misses++;
    return CK_ERR_NOTFOUND;
}

int
ck_pkinit_tpcache_store(ck_pkinit_tpcache *c, const uint8_t tp[CK_PKINIT_TP_LEN],
                        const ck_pkinit_chain_result *res, uint64_t record_generation)
{
    struct tp_entry *set, *victim = NULL;

    if (c == NULL || tp == NULL || res == NULL)
        return ck_error_set(CK_ERR_INVAL, "thumbprint cache: bad arguments");
    if (res->reason != CK_PKINIT_CERT_OK)
        return ck_error_set(CK_ERR_INVAL, "thumbprint cache: only verified chains are stored");
    set = set_of(c, tp);
    for (int w = 0; w < WAYS; w++) {
        struct tp_entry *e = &set[w];
        if (e->used && memcmp(e->tp, tp, CK_PKINIT_TP_LEN) == 0) {
            victim = e;
            break;
        }
        if (victim == NULL || (victim->used && (!e->used || e->last_use < victim->last_use)))
            victim = e;
    }
    if (!victim->used)
        c->st.used++;
    else if (memcmp(victim->tp, tp, CK_PKINIT_TP_LEN) != 0)
        c->st.evictions++;
    victim->used = true;
    memcpy(victim->tp, tp, CK_PKINIT_TP_LEN);
    victim->record_generation = record_generation;
    victim->last_use = ++c->tick;
    victim->res = *res;
    c->st.stores++;
    return 0;
}

void
ck_pkinit_tpcache_clear(ck_pkinit_tpcache *c)
{
    if (c == NULL)
        return;
    memset(c->entries, 0, c->nsets * WAYS * sizeof(*c->entries));
    c->st.used = 0;
}

void
ck_pkinit_tpcache_get_stats(const ck_pkinit_tpcache *c, ck_pkinit_tpcache_stats *st)
{
    if (st == NULL)
        return;
    if (c == NULL) {
        memset(st, 0, sizeof(*st));
        return;
    }
    *st = c->st;
}
