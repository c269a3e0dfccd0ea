/* The SA table: every SA pair the server holds, keyed by the server's inbound SPI (what arrives
 * on every ESP packet), in a chained hash table sized for max_sas at start so that it never
 * rehashes under load. Several workers share it, so buckets are guarded by striped mutexes (a
 * stripe covers every 256th bucket): two requests contend only when their SPIs share a stripe.
 *
 * A second, smaller index maps an endpoint address to its newest SA. It answers the two questions
 * that carry no SPI: which SA a Security Parameter Recovered confirms, and whether an SA has been
 * superseded by a later exchange (then it gets no Rekey and lives out its lifetime). It has its
 * own stripes; the lock order is SPI stripe, then endpoint stripe, never the reverse. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "cms.h"

#define STRIPES 256u
#define MALLOC_OVERHEAD 16u          /* glibc: an 8-byte header, 16-byte granularity */

struct ep_entry {
    struct ep_entry *next;
    struct cms_addr ep;
    uint32_t spi;
};

struct stripe {
    _Alignas(64) pthread_mutex_t lock;
};

struct cms_sa_table {
    size_t max;
    atomic_size_t count;
    size_t mask;                     /* buckets - 1 */
    struct cms_sa **buckets;
    struct ep_entry **ep_buckets;
    struct stripe spi_locks[STRIPES];
    struct stripe ep_locks[STRIPES];
};

static size_t
malloc_size(size_t n)
{
    return (n + 8 + 15) & ~(size_t)15;
}

struct cms_sa *
cms_sa_alloc(const char *client)
{
    size_t len = strlen(client);
    struct cms_sa *sa;

    if (len >= CMS_MAX_PRINCIPAL || (sa = calloc(1, sizeof(*sa) + len + 1)) == NULL)
        return NULL;
    memcpy(sa->client, client, len + 1);
    return sa;
}

void
cms_sa_free(struct cms_sa *sa)
{
    if (sa == NULL)
        return;
    ck_esp_sa_free(sa->in);
    ck_esp_sa_free(sa->out);
    free(sa->restriction);
    ck_memzero(sa, sizeof(*sa));
    free(sa);
}

size_t
cms_sa_footprint(const struct cms_sa_table *t, const struct cms_sa *sa)
{
    size_t n = malloc_size(sizeof(*sa) + strlen(sa->client) + 1) +
               malloc_size(sizeof(struct ep_entry));

    if (sa->in != NULL)
        n += ck_esp_sa_footprint(sa->in);
    if (sa->out != NULL)
        n += ck_esp_sa_footprint(sa->out);
    /* Both bucket arrays, shared out over max_sas endpoints. */
    if (t != NULL)
        n += (2 * (t->mask + 1) * sizeof(void *) + t->max - 1) / t->max;
    return n;
}

int
cms_sa_table_new(size_t max_sas, struct cms_sa_table **out)
{
    struct cms_sa_table *t;
    size_t n = 64;

    *out = NULL;
    if (max_sas == 0 || max_sas > CMS_MAX_MAX_SAS)
        return ck_error_set(CK_ERR_INVAL, "SA table: max_sas %zu", max_sas);
    if ((t = aligned_alloc(64, (sizeof(*t) + 63) & ~(size_t)63)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "SA table");
    memset(t, 0, sizeof(*t));
    /* Load factor at most 1 when full. */
    while (n < max_sas)
        n <<= 1;
    t->max = max_sas;
    t->mask = n - 1;
    atomic_init(&t->count, 0);
    t->buckets = calloc(n, sizeof(*t->buckets));
    t->ep_buckets = calloc(n, sizeof(*t->ep_buckets));
    if (t->buckets == NULL || t->ep_buckets == NULL) {
        free(t->buckets);
        free(t->ep_buckets);
        free(t);
        return ck_error_set(CK_ERR_NOMEM, "SA table: %zu buckets", n);
    }
    for (size_t i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&t->spi_locks[i].lock, NULL);
        pthread_mutex_init(&t->ep_locks[i].lock, NULL);
    }
    *out = t;
    return 0;
}

void
cms_sa_table_free(struct cms_sa_table *t)
{
    if (t == NULL)
        return;
    for (size_t b = 0; b <= t->mask; b++) {
        struct cms_sa *sa = t->buckets[b];
        struct ep_entry *e = t->ep_buckets[b];
        while (sa != NULL) {
            struct cms_sa *next = sa->next;
            cms_sa_free(sa);
            sa = next;
        }
        while (e != NULL) {
            struct ep_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    for (size_t i = 0; i < STRIPES; i++) {
        pthread_mutex_destroy(&t->spi_locks[i].lock);
        pthread_mutex_destroy(&t->ep_locks[i].lock);
    }
    free(t->buckets);
    free(t->ep_buckets);
    free(t);
}

size_t
cms_sa_table_count(const struct cms_sa_table *t)
{
    return atomic_load(&((struct cms_sa_table *)(uintptr_t)t)->count);
}

size_t
cms_sa_table_max(const struct cms_sa_table *t)
{
    return t->max;
}

/* SPIs are random, but an attacker chooses which ones to probe: mix anyway. */
static size_t
spi_bucket(const struct cms_sa_table *t, uint32_t spi)
{
    uint32_t h = spi * 0x9e3779b1u;
    return (h ^ (h >> 15)) & t->mask;
}

static size_t
ep_bucket(const struct cms_sa_table *t, const struct cms_addr *ep)
{
    /* FNV-1a over the significant bytes. */
    uint32_t h = 2166136261u;
    size_t alen = ep->family == 4 ? 4 : 16;

    for (size_t i = 0; i < alen; i++)
        h = (h ^ ep->addr[i]) * 16777619u;
    h = (h ^ (ep->port & 0xff)) * 16777619u;
    h = (h ^ (ep->port >> 8)) * 16777619u;
    h = (h ^ ep->family) * 16777619u;
    return h & t->mask;
}

static pthread_mutex_t *
spi_lock(struct cms_sa_table *t, size_t bucket)
{
    return &t->spi_locks[bucket % STRIPES].lock;
}

static pthread_mutex_t *
ep_lock(struct cms_sa_table *t, size_t bucket)
{
    return &t->ep_locks[bucket % STRIPES].lock;
}

bool
cms_sa_table_has(struct cms_sa_table *t, uint32_t spi)
{
    size_t b = spi_bucket(t, spi);
    bool found = false;

    pthread_mutex_lock(spi_lock(t, b));
    for (struct cms_sa *sa = t->buckets[b]; sa != NULL && !found; sa = sa->next)
        found = sa->spi_in == spi;
    pthread_mutex_unlock(spi_lock(t, b));
    return found;
}

/* Records spi as ep's newest SA; returns the previous one's SPI (0: none). New entries are
 * allocated before the lock is taken. */
static uint32_t
ep_set(struct cms_sa_table *t, const struct cms_addr *ep, uint32_t spi, struct ep_entry **spare)
{
    size_t b = ep_bucket(t, ep);
    struct ep_entry *e;
    uint32_t prev = 0;

    pthread_mutex_lock(ep_lock(t, b));
    for (e = t->ep_buckets[b]; e != NULL; e = e->next)
        if (cms_addr_equal(&e->ep, ep))
            break;
    if (e != NULL) {
        prev = e->spi;
        e->spi = spi;
    } else if (*spare != NULL) {
        e = *spare;
        *spare = NULL;
        e->ep = *ep;
        e->spi = spi;
        e->next = t->ep_buckets[b];
        t->ep_buckets[b] = e;
    }
    pthread_mutex_unlock(ep_lock(t, b));
    return prev;
}

/* Drops ep's index entry if it still names spi. Called with an SPI stripe lock held (the
 * order is SPI stripe, then endpoint stripe). */
static void
ep_clear(struct cms_sa_table *t, const struct cms_addr *ep, uint32_t spi)
{
    size_t b = ep_bucket(t, ep);
    struct ep_entry **link, *gone = NULL;

    pthread_mutex_lock(ep_lock(t, b));
    for (link = &t->ep_buckets[b]; *link != NULL; link = &(*link)->next) {
        if (cms_addr_equal(&(*link)->ep, ep)) {
            if ((*link)->spi == spi) {
                gone = *link;
                *link = gone->next;
            }
            break;
        }
    }
    pthread_mutex_unlock(ep_lock(t, b));
    free(gone);
}

uint32_t
cms_sa_table_newest(struct cms_sa_table *t, const struct cms_addr *ep)
{
    size_t b = ep_bucket(t, ep);
    uint32_t spi = 0;

    pthread_mutex_lock(ep_lock(t, b));
    for (struct ep_entry *e = t->ep_buckets[b]; e != NULL; e = e->next)
        if (cms_addr_equal(&e->ep, ep)) {
            spi = e->spi;
            break;
        }
    pthread_mutex_unlock(ep_lock(t, b));
    return spi;
}

static int
mark_superseded(struct cms_sa *sa, void *arg)
{
    (void)arg;
    sa->flags |= CMS_SA_SUPERSEDED;
    return 0;
}

int
cms_sa_table_insert(struct cms_sa_table *t, struct cms_sa *sa, uint32_t *prev_spi)
{
    size_t b = spi_bucket(t, sa->spi_in);
    struct ep_entry *spare = NULL;
    uint32_t prev;

    if (prev_spi != NULL)
        *prev_spi = 0;
    if (sa->spi_in == 0)
        return ck_error_set(CK_ERR_INVAL, "SA table: SPI 0");
    if ((spare = calloc(1, sizeof(*spare))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "SA table");
    /* Reserve a place first, so that concurrent inserts never exceed max. */
    if (atomic_fetch_add(&t->count, 1) >= t->max) {
        atomic_fetch_sub(&t->count, 1);
        free(spare);
        return ck_error_set(CK_ERR_LIMIT, "SA table full (%zu SAs)", t->max);
    }
    pthread_mutex_lock(spi_lock(t, b));
    for (struct cms_sa *o = t->buckets[b]; o != NULL; o = o->next) {
        if (o->spi_in == sa->spi_in) {
            pthread_mutex_unlock(spi_lock(t, b));
            atomic_fetch_sub(&t->count, 1);
            free(spare);
            return ck_error_set(CK_ERR_EXISTS, "SPI 0x%08x in use", sa->spi_in);
        }
    }
    sa->next = t->buckets[b];
    t->buckets[b] = sa;
    pthread_mutex_unlock(spi_lock(t, b));
    prev = ep_set(t, &sa->ep, sa->spi_in, &spare);
    free(spare);
    if (prev != 0 && prev != sa->spi_in)
        (void)cms_sa_table_with(t, prev, mark_superseded, NULL);
    if (prev_spi != NULL)
        *prev_spi = prev;
    return 0;
}

int
cms_sa_table_with(struct cms_sa_table *t, uint32_t spi, cms_sa_fn fn, void *arg)
{
    size_t b = spi_bucket(t, spi);
    int rc = CK_ERR_NOTFOUND;

    pthread_mutex_lock(spi_lock(t, b));
    for (struct cms_sa *sa = t->buckets[b]; sa != NULL; sa = sa->next)
        if (sa->spi_in == spi) {
            rc = fn(sa, arg);
            break;
        }
    pthread_mutex_unlock(spi_lock(t, b));
    return rc;
}

int
cms_sa_table_scan(struct cms_sa_table *t, cms_sa_fn fn, cms_sa_removed_fn removed, void *arg)
{
    /* Stripe by stripe, so that the lock is taken once per stripe, not per bucket. */
    for (size_t s = 0; s < STRIPES; s++) {
        pthread_mutex_t *lock = &t->spi_locks[s].lock;

        pthread_mutex_lock(lock);
        for (size_t b = s; b <= t->mask; b += STRIPES) {
            struct cms_sa **link = &t->buckets[b];
            while (*link != NULL) {
                struct cms_sa *sa = *link;
                int r = fn(sa, arg);
                if (r < 0) {
                    pthread_mutex_unlock(lock);
                    return r;
                }
                if (r == 0) {
                    link = &sa->next;
                    continue;
                }
                *link = sa->next;
                ep_clear(t, &sa->ep, sa->spi_in);
                if (removed != NULL)
                    removed(sa, arg);
                atomic_fetch_sub(&t->count, 1);
                cms_sa_free(sa);
            }
        }
        pthread_mutex_unlock(lock);
    }
    return 0;
}

int
cms_sa_table_remove(struct cms_sa_table *t, uint32_t spi)
{
    size_t b = spi_bucket(t, spi);
    struct cms_sa **link, *gone = NULL;

    pthread_mutex_lock(spi_lock(t, b));
    for (link = &t->buckets[b]; *link != NULL; link = &(*link)->next)
        if ((*link)->spi_in == spi) {
            gone = *link;
            *link = gone->next;
            ep_clear(t, &gone->ep, spi);
            break;
        }
    pthread_mutex_unlock(spi_lock(t, b));
    if (gone == NULL)
        return ck_error_set(CK_ERR_NOTFOUND, "SPI 0x%08x", spi);
    atomic_fetch_sub(&t->count, 1);
    cms_sa_free(gone);
    return 0;
}
