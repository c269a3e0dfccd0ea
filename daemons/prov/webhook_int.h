/* The webhook delivery thread's internals (webhook.c), for the unit test: the outbox it works
 * on is behind these operations, the store's (webhook_store.c, prov_webhooks_start) or a
 * test's in-memory one. */
#ifndef CABLEKEY_DAEMON_PROV_WEBHOOK_INT_H
#define CABLEKEY_DAEMON_PROV_WEBHOOK_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "prov.h"

#define PROV_WEBHOOK_TIMEOUT_MS 5000   /* one attempt: connect, send, answer */
#define PROV_WEBHOOK_POLL_MS 1000      /* the outbox is looked at this often without a kick */
#define PROV_WEBHOOK_MAX_IN_FLIGHT 16
#define PROV_WEBHOOK_MAX_PER_TARGET 4  /* a slow target never takes every slot */

struct prov_outbox_ops {
    int (*due)(void *arg, int64_t now, size_t limit, ck_prov_delivery_cb cb, void *cb_arg,
               size_t *n_out);
    int (*attempt)(void *arg, int64_t id, int status, bool delivered, int64_t next_attempt,
                   int64_t now);
    void (*close)(void *arg);   /* at stop; may be NULL */
    void *arg;
};

/* Starts the delivery thread on ops (taken over: closed at stop, or here on failure).
 * timeout_ms 0: PROV_WEBHOOK_TIMEOUT_MS. */
int prov_webhooks_start_ops(const struct prov_config *cfg, const struct prov_outbox_ops *ops,
                            int64_t (*now_fn)(void), int64_t timeout_ms,
                            struct prov_webhooks **out);

/* The delay before attempt n+1 after n failed attempts (n >= 1). */
int64_t prov_webhook_backoff(int attempts);

#endif
