/* cablekey-kdc's service-key rotation thread (k9rot): runs the rotation engine
 * (cablekey/rotation.h) every rotation_interval on its own store connection, and carries the
 * crash points CK_KDC_CRASH=rot-after-stage|rot-after-activate|rot-after-purge:N. */
#ifndef CABLEKEY_KDC_ROTATION_H
#define CABLEKEY_KDC_ROTATION_H

#include <stdint.h>

struct ck_alarm_mgr;
struct kdc_rotation;

/* Starts the thread (the first tick runs at once). db_path/stash_path: the KDC's database (a
 * path or URI) and stash; alarms may be NULL. A database that cannot be opened yet is retried
 * every interval (logged), never fatal: the KDC serves without rotating meanwhile. */
int kdc_rotation_start(const char *db_path, const char *stash_path, int64_t interval,
                       struct ck_alarm_mgr *alarms, struct kdc_rotation **out);
/* Stops and joins the thread (a tick in progress finishes first). Accepts NULL. */
void kdc_rotation_stop(struct kdc_rotation *r);

#endif
