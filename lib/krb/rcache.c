/* In-memory replay cache (RFC 4120 §3.2.3, "the server MUST utilize a replay cache").
 *
 * Entries live in a ring buffer in insertion order, which is also expiry order (every entry has
 * the same lifetime, and an expiry never precedes the previous entry's: see last_expires), so
 * expired entries are reclaimed from the tail. A chained hash index over the ring finds
 * duplicates.
 *
 * When every slot holds an unexpired entry the cache refuses (CK_ERR_FULL) instead of evicting:
 * an evicted authenticator could be replayed and accepted, and a server must never accept what
 * it can no longer check. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cablekey/ap.h"
#include "cablekey/error.h"
#include "cablekey/util.h"

#define RC_DIGEST 32
#define RC_NONE UINT32_MAX

struct rc_entry {
    uint8_t digest[RC_DIGEST];
    int64_t expires;
    uint32_t next;  /* next entry in the same bucket */
    uint32_t bucket;
};

struct ck_rcache {
    pthread_mutex_t lock;
    EVP_MD *sha256;        /* fetched once: no per-call algorithm lookup */
    int64_t lifetime;
    int64_t last_expires;  /* expiry of the newest entry: later entries never expire earlier */
    size_t max;            /* ring capacity */
    size_t head, count;    /* next slot to write; live entries end at head */
    struct rc_entry *ring;
    size_t n_buckets;      /* power of two */
    uint32_t *buckets;
};

int
ck_rcache_new(size_t max_entries, int64_t lifetime, ck_rcache **out)
{
    ck_rcache *rc = NULL;
    int ret = 0;

    *out = NULL;
    if (max_entries == 0)
        max_entries = CK_RCACHE_DEFAULT_MAX;
    if (lifetime <= 0 || max_entries > (1u << 24))
        return ck_error_set(CK_ERR_INVAL, "rcache: lifetime %lld, max %zu", (long long)lifetime,
                            max_entries);
    if ((rc = calloc(1, sizeof(*rc))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "rcache");
    if ((errno = pthread_mutex_init(&rc->lock, NULL)) != 0) {
        ret = ck_error_set(CK_ERR_NOMEM, "rcache: mutex: %s", strerror(errno));
        free(rc);
        return ret;
    }
    rc->lifetime = lifetime;
    rc->max = max_entries;
    for (rc->n_buckets = 16; rc->n_buckets < max_entries; rc->n_buckets <<= 1)
        ;
    rc->ring = calloc(rc->max, sizeof(*rc->ring));
    rc->buckets = malloc(rc->n_buckets * sizeof(*rc->buckets));
    if (rc->ring == NULL || rc->buckets == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "rcache: %zu entries", max_entries);
        goto out;
    }
    for (size_t i = 0; i < rc->n_buckets; i++)
        rc->buckets[i] = RC_NONE;
    if ((rc->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "rcache: SHA256");
        goto out;
    }
    *out = rc;
    rc = NULL;
out:
    ck_rcache_free(rc);
    return ret;
}

void
ck_rcache_free(ck_rcache *rc)
{
    if (rc == NULL)
        return;
    pthread_mutex_destroy(&rc->lock);
    EVP_MD_free(rc->sha256);
    free(rc->ring);
    free(rc->buckets);
    free(rc);
}

/* Index of the oldest live entry. */
static size_t
rc_tail(const ck_rcache *rc)
{
    return (rc->head + rc->max - rc->count) % rc->max;
}

static void
rc_evict_tail(ck_rcache *rc)
{
    size_t t = rc_tail(rc);
    struct rc_entry *e = &rc->ring[t];
    uint32_t *link = &rc->buckets[e->bucket];

    while (*link != RC_NONE && *link != (uint32_t)t)
        link = &rc->ring[*link].next;
    if (*link == (uint32_t)t)
        *link = e->next;
    rc->count--;
}

/* Largest hash input assembled on the stack; longer ones (names near their limits, long
 * authenticators) are hashed piecewise, with the same bytes. */
#define RC_INPUT_MAX 2048

static bool
put_field(EVP_MD_CTX *ctx, const void *p, size_t len)
{
    uint8_t l[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};

    /* Length-prefixed so ("ab","c") and ("a","bc") hash differently. */
    return EVP_DigestUpdate(ctx, l, sizeof(l)) == 1 && EVP_DigestUpdate(ctx, p, len) == 1;
}

/* Appends the same length-prefixed field as put_field to buf. */
static size_t
add_field(uint8_t *buf, size_t off, const void *p, size_t len)
{
    buf[off] = (uint8_t)(len >> 24);
    buf[off + 1] = (uint8_t)(len >> 16);
    buf[off + 2] = (uint8_t)(len >> 8);
    buf[off + 3] = (uint8_t)len;
    if (len > 0)
        memcpy(buf + off + 4, p, len);
    return off + 4 + len;
}

/* SHA-256 over the four length-prefixed fields. The usual input fits one buffer and takes one
 * EVP_Digest call instead of eight updates. */
static bool
rc_digest(const ck_rcache *rc, const char *client, const char *server, const uint8_t tv[12],
          const uint8_t *auth_cipher, size_t auth_cipher_len, uint8_t digest[RC_DIGEST])
{
    size_t clen = strlen(client), slen = strlen(server);
    unsigned int dlen = 0;
    EVP_MD_CTX *ctx;
    bool ok;

    if (clen <= RC_INPUT_MAX && slen <= RC_INPUT_MAX && auth_cipher_len <= RC_INPUT_MAX &&
        16 + clen + slen + 12 + auth_cipher_len <= RC_INPUT_MAX) {
        uint8_t buf[RC_INPUT_MAX];
        size_t n = 0;

        n = add_field(buf, n, client, clen);
        n = add_field(buf, n, server, slen);
        n = add_field(buf, n, tv, 12);
        n = add_field(buf, n, auth_cipher, auth_cipher_len);
        /* Nothing here is secret: names and ciphertext come off the wire. */
        return EVP_Digest(buf, n, digest, &dlen, rc->sha256, NULL) == 1 && dlen == RC_DIGEST;
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL)
        return false;
    ok = EVP_DigestInit_ex(ctx, rc->sha256, NULL) && put_field(ctx, client, clen) &&
         put_field(ctx, server, slen) && put_field(ctx, tv, 12) &&
         put_field(ctx, auth_cipher, auth_cipher_len) && EVP_DigestFinal_ex(ctx, digest, &dlen) &&
         dlen == RC_DIGEST;
    EVP_MD_CTX_free(ctx);
    return ok;
}

int
ck_rcache_check_and_store(ck_rcache *rc, const char *client, const char *server, int64_t ctime,
                          int32_t cusec, const uint8_t *auth_cipher, size_t auth_cipher_len,
                          int64_t now)
{
    uint8_t digest[RC_DIGEST], tv[12];
    uint32_t b, i;
    int ret = 0;

    if (rc == NULL || client == NULL || server == NULL || (auth_cipher == NULL && auth_cipher_len))
        return ck_error_set(CK_ERR_INVAL, "rcache: bad arguments");
    for (int k = 0; k < 8; k++)
        tv[k] = (uint8_t)((uint64_t)ctime >> (56 - 8 * k));
    for (int k = 0; k < 4; k++)
        tv[8 + k] = (uint8_t)((uint32_t)cusec >> (24 - 8 * k));
    /* A digest that failed must not be compared: an all-zero or partial digest would make
     * unrelated authenticators collide (refusals) or miss real replays. */
    if (!rc_digest(rc, client, server, tv, auth_cipher, auth_cipher_len, digest))
        return ck_error_set_ssl(CK_ERR_CRYPTO, "rcache: digest");
    b = (uint32_t)(((uint32_t)digest[0] << 24 | (uint32_t)digest[1] << 16 |
                    (uint32_t)digest[2] << 8 | digest[3]) & (rc->n_buckets - 1));

    pthread_mutex_lock(&rc->lock);
    while (rc->count > 0 && rc->ring[rc_tail(rc)].expires <= now)
        rc_evict_tail(rc);
    for (i = rc->buckets[b]; i != RC_NONE; i = rc->ring[i].next) {
        if (rc->ring[i].expires > now && memcmp(rc->ring[i].digest, digest, RC_DIGEST) == 0) {
            ret = ck_error_set(CK_ERR_REPLAY, "replayed authenticator from %s", client);
            goto out;
        }
    }
    if (rc->count == rc->max) {
        ret = ck_error_set(CK_ERR_FULL, "replay cache full (%zu unexpired entries)", rc->max);
        goto out;
    }
    i = (uint32_t)rc->head;
    memcpy(rc->ring[i].digest, digest, RC_DIGEST);
    /* A clock stepped back must not put a younger entry behind an older one in expiry order
     * (the tail scan would then stop early): it lives a little longer instead, which only
     * makes the check stricter. */
    rc->ring[i].expires = now + rc->lifetime;
    if (rc->ring[i].expires < rc->last_expires)
        rc->ring[i].expires = rc->last_expires;
    rc->last_expires = rc->ring[i].expires;
    rc->ring[i].bucket = b;
    rc->ring[i].next = rc->buckets[b];
    rc->buckets[b] = i;
    rc->head = (rc->head + 1) % rc->max;
    rc->count++;
out:
    pthread_mutex_unlock(&rc->lock);
    return ret;
}

size_t
ck_rcache_count(ck_rcache *rc)
{
    size_t n;

    if (rc == NULL)
        return 0;
    pthread_mutex_lock(&rc->lock);
    n = rc->count;
    pthread_mutex_unlock(&rc->lock);
    return n;
}
