/* Thumbprint cache (seed 002): the verdict of a certificate-chain validation, keyed by a
 * SHA-256 over the anchor-set generation and the certificates the client sent, so a device's
 * repeat login skips path building and CRL processing until the earliest notAfter (or CRL
 * nextUpdate) of its chain, a change of its device record, or a reload of the anchors.
 *
 * Layout: a fixed array of 4-way sets indexed by the thumbprint's first bytes (a SHA-256 output,
 * so uniformly spread; an attacker who wants to crowd one set must get each of its chains
 * verified first, which costs it a full verification per entry and costs honest devices at most
 * a re-verification). LRU inside a set. No locks: one cache per KDC worker thread, which also
 * keeps each lookup on the worker's own cache lines. A lookup after ck_pkinit_cms_verify is one
 * SHA-256 over the certificate hashes that verification already computed, and at most four
 * 32-byte compares (bench_pkinit_crypto measures it next to a chain verification). */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/pkinit.h"
#include "cablekey/util.h"
#include "pkinit/pkinit_int.h"

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
    ck_pkinit_cache_stats st;
};

/* SHA-256(generation || h(leaf) || h(chain[0]) || ...), each h a certificate's SHA-256. */
static int
thumbprint_from_hashes(uint64_t generation, const uint8_t *leaf_hash,
                       const uint8_t (*hashes)[CK_PKINIT_TP_LEN], size_t n,
                       uint8_t out[CK_PKINIT_TP_LEN])
{
    const EVP_MD *sha256 = ck_pkinit_sha256_md();
    EVP_MD_CTX *md;
    uint8_t gen[8];
    unsigned int mdlen = 0;
    int ok;

    if (sha256 == NULL)
        return ck_error_set(CK_ERR_CRYPTO, "thumbprint: SHA-256 unavailable");
    for (int i = 0; i < 8; i++)
        gen[i] = (uint8_t)(generation >> (56 - 8 * i));
    md = EVP_MD_CTX_new();
    if (md == NULL)
        return ck_error_set(CK_ERR_NOMEM, "thumbprint: out of memory");
    ok = EVP_DigestInit_ex(md, sha256, NULL) && EVP_DigestUpdate(md, gen, sizeof(gen)) &&
         EVP_DigestUpdate(md, leaf_hash, CK_PKINIT_TP_LEN);
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(md, hashes[i], CK_PKINIT_TP_LEN);
    ok = ok && EVP_DigestFinal_ex(md, out, &mdlen) && mdlen == CK_PKINIT_TP_LEN;
    EVP_MD_CTX_free(md);
    return ok ? 0 : ck_error_set_ssl(CK_ERR_CRYPTO, "thumbprint: hashing failed");
}

static int
cert_hash(X509 *x, uint8_t out[CK_PKINIT_TP_LEN])
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der), ret;

    if (n <= 0)
        return ck_error_set_ssl(CK_ERR_ENCODE, "thumbprint: cannot encode a certificate");
    ret = ck_pkinit_sha256(der, (size_t)n, out);
    OPENSSL_free(der);
    return ret;
}

int
ck_pkinit_thumbprint(X509 *leaf, STACK_OF(X509) *chain, uint64_t anchors_generation,
                     uint8_t out[CK_PKINIT_TP_LEN])
{
    uint8_t leaf_hash[CK_PKINIT_TP_LEN], hashes[CK_PKINIT_MAX_CERTS][CK_PKINIT_TP_LEN];
    int n = chain != NULL ? sk_X509_num(chain) : 0, ret;

    if (leaf == NULL || out == NULL)
        return ck_error_set(CK_ERR_INVAL, "thumbprint: bad arguments");
    if (n > CK_PKINIT_MAX_CERTS)
        return ck_error_set(CK_ERR_LIMIT, "thumbprint: more than %d certificates",
                            CK_PKINIT_MAX_CERTS);
    if ((ret = cert_hash(leaf, leaf_hash)) != 0)
        return ret;
    for (int i = 0; i < n; i++)
        if ((ret = cert_hash(sk_X509_value(chain, i), hashes[i])) != 0)
            return ret;
    return thumbprint_from_hashes(anchors_generation, leaf_hash,
                                  (const uint8_t(*)[CK_PKINIT_TP_LEN])hashes, (size_t)n, out);
}

int
ck_pkinit_signed_thumbprint(const ck_pkinit_signed *s, uint64_t anchors_generation,
                            uint8_t out[CK_PKINIT_TP_LEN])
{
    size_t n;

    if (s == NULL || s->certs == NULL || s->cert_hash == NULL || out == NULL)
        return ck_error_set(CK_ERR_INVAL, "thumbprint: bad arguments");
    n = (size_t)sk_X509_num(s->certs);
    if (s->signer_index >= n)
        return ck_error_set(CK_ERR_INVAL, "thumbprint: no signer");
    return thumbprint_from_hashes(anchors_generation, s->cert_hash[s->signer_index],
                                  (const uint8_t(*)[CK_PKINIT_TP_LEN])s->cert_hash, n, out);
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
ck_pkinit_tpcache_get_stats(const ck_pkinit_tpcache *c, ck_pkinit_cache_stats *st)
{
    if (st == NULL)
        return;
    if (c == NULL) {
        memset(st, 0, sizeof(*st));
        return;
    }
    *st = c->st;
}
