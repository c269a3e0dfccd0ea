/* Automatic service-key versioning (the white paper's "Smart Server"): per-service rotation
 * policies and the staged rotation of a service's long-term key.
 *
 * A rotation goes through these steps, each one store transaction (both backends):
 *   1. stage    a new kvno (current + 1) is stored beside the current one. The KDC keeps
 *               issuing tickets under the current kvno (it selects keys at ck_db_principal.kvno)
 *               but already decrypts the staged one (ck_db_principal_find_key).
 *   2. confirm  each host of the service (its `cablekey keytab-agent`) fetches the staged key,
 *               writes it into its keytab and confirms (ck_store_key_confirm).
 *   3. activate when every host the policy names has confirmed (or, for confirm = NONE, after the
 *               settle time), the staged kvno becomes the current one: new tickets use it.
 *   4. purge    an old kvno is removed once no valid ticket can need it (its retirement time +
 *               old_valid has passed) and more than keep_min old kvnos remain.
 * The rotation engine (lib/rotation, ck_rotation_tick) makes these steps when they are due; it
 * runs in cablekey-kdc (one tick a minute by default; several KDCs of a fleet may run it at once:
 * every step is idempotent and serialized by the store) and in `cablekey rotation run`.
 * krbtgt rotates like any service with confirm = NONE: old TGTs keep working for old_valid. */
#ifndef CABLEKEY_ROTATION_H
#define CABLEKEY_ROTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/store.h"

#define CK_ROT_HOSTS_MAX 64        /* hosts that must confirm, per policy */
#define CK_ROT_HOST_MAX 256        /* host name bytes, NUL included */
#define CK_ROT_PERIOD_MIN 60       /* seconds; tests use minutes, operators days */
#define CK_ROT_LIST_MAX 100000     /* policies per list call */

enum ck_rot_confirm {
    CK_ROT_CONFIRM_AGENT = 0, /* activate when every named host (or, with none named, one host)
                               * has confirmed the staged kvno */
    CK_ROT_CONFIRM_NONE = 1,  /* activate settle seconds after staging (krbtgt; services whose
                               * keytab is not kept by an agent) */
};

typedef struct ck_rotation_policy {
    char principal[CK_ROT_HOST_MAX * 2]; /* canonical service principal name */
    int64_t period;          /* seconds from one activation to the next staging (>= MIN) */
    /* How long a retired kvno stays valid after the next one became current. At least the
     * realm's maximum ticket life (and its maximum renewable life when the service's tickets
     * may be renewable): ck_store_rotation_policy_set refuses less (CK_ERR_POLICY). */
    int64_t old_valid;
    int64_t confirm_timeout; /* staged and not confirmed for this long: key-unconfirmed alarm */
    int64_t settle;          /* CK_ROT_CONFIRM_NONE: seconds between stage and activate */
    enum ck_rot_confirm confirm;
    unsigned keep_min;       /* old kvnos always kept (`principal rotate --keep N`); 0: 1 */
    bool paused;             /* the engine leaves this service alone */
    size_t n_hosts;
    char hosts[CK_ROT_HOSTS_MAX][CK_ROT_HOST_MAX];
} ck_rotation_policy;

/* One kvno of a service as the rotation sees it. */
typedef struct ck_rotation_kvno {
    uint32_t kvno;
    int64_t staged;    /* when it was stored (0: before versioning was enabled) */
    int64_t activated; /* when it became current; 0: staged, not yet current */
    int64_t retired;   /* when the next kvno became current; 0: current or staged */
} ck_rotation_kvno;

typedef struct ck_rotation_confirmation {
    char host[CK_ROT_HOST_MAX];
    uint32_t kvno;      /* the newest kvno this host confirmed */
    int64_t confirmed;  /* when */
} ck_rotation_confirmation;

typedef struct ck_rotation_status {
    char principal[CK_ROT_HOST_MAX * 2];
    bool has_policy;
    ck_rotation_policy policy;
    uint32_t current_kvno;
    uint32_t staged_kvno;          /* 0: none staged */
    size_t n_kvnos;                /* newest first */
    ck_rotation_kvno kvnos[CK_STORE_MAX_KEYS];
    size_t n_confirmations;
    ck_rotation_confirmation confirmations[CK_ROT_HOSTS_MAX];
    int64_t next_due;              /* when the engine acts next for this service (0: nothing) */
} ck_rotation_status;

/* ---- policies (administrative writes: one transaction, change counter, audit row) ---- */

/* Creates or replaces the policy of a service principal that exists. CK_ERR_INVAL for values
 * out of range, CK_ERR_POLICY for old_valid below the realm's ticket lifetimes,
 * CK_ERR_NOTFOUND for an unknown principal. */
int ck_store_rotation_policy_set(ck_store *store, const ck_rotation_policy *pol);
int ck_store_rotation_policy_get(ck_store *store, const char *principal, ck_rotation_policy *out);
int ck_store_rotation_policy_del(ck_store *store, const char *principal);
int ck_store_rotation_pause(ck_store *store, const char *principal, bool paused);
typedef int (*ck_store_rotation_cb)(const ck_rotation_policy *pol, void *arg);
int ck_store_rotation_policy_list(ck_store *store, ck_store_rotation_cb cb, void *arg);

/* ---- the steps ---- */

/* Stores keys (kvno fields ignored) as kvno max + 1 without making it current. CK_ERR_EXISTS if
 * a kvno is already staged (another KDC of the fleet was first: not an error for the engine);
 * *kvno gets the staged (or already staged) kvno. */
int ck_store_key_stage(ck_store *store, const char *principal, const ck_db_key *keys,
                       size_t n_keys, int64_t now, uint32_t *kvno);
/* Records that host holds kvno (keytab written and re-read). CK_ERR_NOTFOUND for a kvno the
 * principal does not have; confirming an older kvno than one already confirmed is a no-op.
 * Not an administrative change: no change-counter bump, one audit row. */
int ck_store_key_confirm(ck_store *store, const char *principal, const char *host,
                         uint32_t kvno, int64_t now);
/* Makes the staged kvno current (the previous current one is retired at now). CK_ERR_POLICY if
 * kvno is not the staged one (a concurrent activation won: the engine re-reads). */
int ck_store_key_activate(ck_store *store, const char *principal, uint32_t kvno, int64_t now);
/* Removes retired kvnos whose retired + old_valid (+ CK_ROT_PURGE_GRACE, k9rot) <= now,
 * keeping the newest keep_min retired ones; *n_purged may be NULL. */
int ck_store_key_purge(ck_store *store, const char *principal, int64_t old_valid,
                       unsigned keep_min, int64_t now, size_t *n_purged);
int ck_store_rotation_status(ck_store *store, const char *principal, ck_rotation_status *out);

/* ---- what is due (k9rot's extension: shared by status, purge and the engine) ---- */

/* A KDC of a fleet may issue tickets under a retired kvno for as long as its cache lags
 * (db_max_staleness, default 300 s): a retired kvno is purged this long after retired +
 * old_valid. */
#define CK_ROT_PURGE_GRACE 600

typedef struct ck_rotation_plan {
    bool activate;           /* the staged kvno may become current now */
    bool stage;              /* a new kvno is due (none staged, period over) */
    bool unconfirmed;        /* staged, confirm_timeout passed, hosts missing */
    size_t n_purge;          /* retired kvnos that may be removed now */
    uint32_t purge[CK_STORE_MAX_KEYS];
    size_t n_missing;        /* CK_ROT_CONFIRM_AGENT: named hosts that have not confirmed */
    const char *missing[CK_ROT_HOSTS_MAX]; /* point into the status */
    int64_t next_due;        /* the earliest time something becomes due (0: nothing) */
} ck_rotation_plan;

/* Computes from a status what is due at now; without a policy, or paused: nothing. */
void ck_rotation_plan_compute(const ck_rotation_status *st, int64_t now, ck_rotation_plan *plan);

/* ---- the engine (lib/rotation) ---- */

struct ck_alarm_mgr;

typedef struct ck_rotation_report {
    size_t staged, activated, purged, unconfirmed, errors;
} ck_rotation_report;

/* One pass over every policy: stages what is due (fresh random keys in the realm's enctypes),
 * activates what is confirmed or settled, purges what expired, raises key-unconfirmed (naming
 * the hosts that have not confirmed) on alarms (NULL: none) and clears it after activation.
 * Logs one line per step taken. Returns 0 unless the store itself failed. */
int ck_rotation_tick(ck_store *store, int64_t now, struct ck_alarm_mgr *alarms,
                     ck_rotation_report *report);
/* k9rot's extension: ck_rotation_tick for one service (`cablekey rotation run PRINCIPAL`). */
int ck_rotation_tick_one(ck_store *store, const char *principal, int64_t now,
                         struct ck_alarm_mgr *alarms, ck_rotation_report *report);
/* Stages principal now, whatever its period (`cablekey rotation run PRINCIPAL`).
 * CK_ERR_NOTFOUND without a policy, CK_ERR_POLICY while paused, CK_ERR_EXISTS while a kvno is
 * staged. */
int ck_rotation_force(ck_store *store, const char *principal, int64_t now);

/* k9rot's extension: called after each step the engine committed ("stage", "activate",
 * "purge"), process-wide; the KDC's crash points (CK_KDC_CRASH=rot-after-stage...) hang here.
 * NULL removes it. Set it before any tick runs. */
typedef void (*ck_rotation_step_hook)(const char *step, const char *principal, uint32_t kvno,
                                      void *arg);
void ck_rotation_set_hook(ck_rotation_step_hook hook, void *arg);

#endif
