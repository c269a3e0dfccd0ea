/* The webhook thread on the customer database: its own store connection (the back's is busy
 * with the actions), the outbox calls of include/cablekey/prov.h. Kept apart from webhook.c so
 * that the delivery logic is tested on an in-memory outbox (tests/unit/test_prov_webhook.c). */
#include "cablekey/error.h"
#include "cablekey/prov.h"
#include "cablekey/store.h"
#include "webhook_int.h"

static int
store_due(void *arg, int64_t now, size_t limit, ck_prov_delivery_cb cb, void *cb_arg,
          size_t *n_out)
{
    return ck_prov_outbox_due(arg, now, limit, cb, cb_arg, n_out);
}

static int
store_attempt(void *arg, int64_t id, int status, bool delivered, int64_t next_attempt,
              int64_t now)
{
    return ck_prov_outbox_attempt(arg, id, status, delivered, next_attempt, now);
}

static void
store_close(void *arg)
{
    ck_store_close(arg);
}

int
prov_webhooks_start(const struct prov_config *cfg, int64_t (*now_fn)(void),
                    struct prov_webhooks **out)
{
    struct prov_outbox_ops ops = {store_due, store_attempt, store_close, NULL};
    ck_store *store = NULL;
    int rc;

    *out = NULL;
    if (cfg->database == NULL)
        return ck_error_set(CK_ERR_CONFIG, "webhooks: no database");
    if ((rc = ck_store_open(cfg->database, cfg->stash, 0, &store)) != 0)
        return ck_error_set(rc, "webhooks: %s", ck_error_context());
    ops.arg = store;
    return prov_webhooks_start_ops(cfg, &ops, now_fn, 0, out);
}
