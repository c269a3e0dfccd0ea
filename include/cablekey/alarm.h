/* Alarms: what an operator must act on, each naming its cause (issue 9, item 4).
 *
 * A daemon creates one ck_alarm_mgr, adds its sinks (syslog through the log layer, a webhook,
 * the store's alarm table through a callback) and starts it. Any thread (a KDC worker) then
 * raises or clears alarms; the call takes one mutex, updates the alarm's record and, unless the
 * record was delivered less than one window ago, queues a copy to every sink. Delivery happens on
 * the manager's own thread, so a slow or failing sink never delays a worker.
 *
 * Deduplication and rate limiting: an alarm is identified by its code and its subject (the thing
 * that is wrong: a service principal, a host name, a certificate file). Within one window
 * (ck_alarm_conf.window_ms) after a delivery, further raises of the same code+subject only update
 * the record (count, last_seen, the newest cause); when the window ends with such raises pending,
 * one update carrying the aggregated count is delivered. A clear, and a raise after a clear, are
 * state changes and are delivered at once.
 *
 * Each sink has its own bounded queue (full: the oldest entry is dropped and counted) and its own
 * retry schedule: a failed delivery is retried after retry_base_ms, doubling up to retry_max_ms,
 * at most max_attempts times, then dropped and counted. Backoff follows the injected clock
 * (ck_alarm_clock), so tests drive it without sleeping. ck_alarm_mgr_free stops the thread after
 * trying, within shutdown_ms of real time, to deliver what is still queued (no backoff then).
 *
 * The text of an alarm (subject, cause, host) may come from the network (a principal name): it is
 * cut to its field's size and every byte that is not printable ASCII is replaced by '?' when it
 * is raised (a log line, JSON and a table row then never carry control characters or broken
 * UTF-8). It never contains a secret. */
#ifndef CABLEKEY_ALARM_H
#define CABLEKEY_ALARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Stable codes: the names (ck_alarm_code_name) are part of the interface (webhook JSON, the
 * alarm table, `cablekey alarms`); never renumber or rename, only append. */
enum ck_alarm_code {
    CK_ALARM_KVNO_MISSING = 0, /* "kvno-missing": a client asked for a kvno that no longer exists */
    CK_ALARM_CLOCK_SKEW,       /* "clock-skew": clock-skew errors above a threshold */
    CK_ALARM_DB_UNREACHABLE,   /* "db-unreachable": the database cannot be reached */
    CK_ALARM_CERT_EXPIRY,      /* "cert-expiry": a KDC or CA certificate close to expiry */
    CK_ALARM_PREAUTH_SPIKE,    /* "preauth-spike": preauth failures spiking for one principal */
    CK_ALARM_KDC_DOWN,         /* "kdc-down": a KDC of the fleet not answering */
    CK_ALARM_KEY_UNCONFIRMED,  /* "key-unconfirmed": a service host never confirmed its new key */
    CK_ALARM_CODE_COUNT
};

/* Severities (ITU X.733 names); each maps to a syslog level for the syslog sink. */
enum ck_alarm_severity {
    CK_ALARM_CRITICAL = 0, /* LOG_CRIT: service is failing now */
    CK_ALARM_MAJOR,        /* LOG_ERR: service will fail without action */
    CK_ALARM_MINOR,        /* LOG_WARNING */
    CK_ALARM_WARNING,      /* LOG_NOTICE */
    CK_ALARM_SEVERITY_COUNT
};

#define CK_ALARM_SUBJECT_MAX 256 /* field sizes, NUL included */
#define CK_ALARM_HOST_MAX 128
#define CK_ALARM_CAUSE_MAX 512

/* One alarm's record: what the sinks receive (a copy; theirs for the call only). */
struct ck_alarm {
    enum ck_alarm_code code;
    enum ck_alarm_severity severity;
    char subject[CK_ALARM_SUBJECT_MAX]; /* what is wrong: "HTTP/cms1.example.net@EXAMPLE.NET" */
    char host[CK_ALARM_HOST_MAX];       /* the host that raised it (ck_alarm_conf.host) */
    char cause[CK_ALARM_CAUSE_MAX];     /* the newest cause text, naming the misconfiguration */
    int64_t first_seen_ms;              /* wall clock (injected clock), ms since the epoch */
    int64_t last_seen_ms;
    uint64_t count;                     /* raises since first_seen (aggregated over windows) */
    bool cleared;
};

const char *ck_alarm_code_name(enum ck_alarm_code code);       /* "?" if out of range */
int ck_alarm_code_from_name(const char *name);                 /* the code, or CK_ERR_INVAL */
const char *ck_alarm_severity_name(enum ck_alarm_severity s);  /* "critical".."warning" */
int ck_alarm_severity_syslog(enum ck_alarm_severity s);        /* LOG_CRIT..LOG_NOTICE */

/* Time source (ms since the epoch); NULL now_ms: the system's wall clock. */
struct ck_alarm_clock {
    int64_t (*now_ms)(void *arg);
    void *arg;
};

/* A destination. deliver returns 0 when the alarm is delivered, else an error (then it is retried
 * on the schedule); it runs on the manager's thread only, one call at a time, and should return
 * within budget_ms (> 0 during the shutdown flush: the time left; 0: its own timeout). free (may
 * be NULL) is called once, from ck_alarm_mgr_free or when ck_alarm_mgr_add_sink fails. */
struct ck_alarm_sink {
    const char *name; /* for statistics and log lines: "syslog", "webhook", "table" */
    int (*deliver)(void *arg, const struct ck_alarm *a, int64_t budget_ms);
    void (*free)(void *arg);
    void *arg;
};

struct ck_alarm_conf {
    const char *host;         /* source host name; NULL: gethostname() */
    int64_t window_ms;        /* dedup/rate-limit window per code+subject; 0: 60000 */
    size_t max_alarms;        /* records kept (least recently seen evicted); 0: 1024 */
    size_t queue_max;         /* per sink queue bound; 0: 256 */
    int64_t retry_base_ms;    /* first retry delay; 0: 1000 */
    int64_t retry_max_ms;     /* backoff cap; 0: 60000 */
    unsigned max_attempts;    /* deliveries tried per alarm and sink; 0: 8 */
    int64_t shutdown_ms;      /* flush bound at ck_alarm_mgr_free (real time); 0: 2000 */
    int64_t poll_ms;          /* thread wake-up period, for an injected clock; 0: 100 */
    struct ck_alarm_clock clock;
};

struct ck_alarm_sink_stats {
    uint64_t delivered;
    uint64_t failed_attempts;   /* deliveries that returned an error (each retry counts) */
    uint64_t dropped_full;      /* oldest entries dropped because the queue was full */
    uint64_t dropped_attempts;  /* given up after max_attempts */
    uint64_t dropped_shutdown;  /* still queued when the shutdown bound passed */
    size_t queued;
};

struct ck_alarm_stats {
    uint64_t raised;     /* ck_alarm_raise calls accepted */
    uint64_t suppressed; /* raises folded into a record inside its window */
    uint64_t evicted;    /* records evicted at max_alarms */
    size_t active;       /* records not cleared */
};

struct ck_alarm_mgr;

/* conf may be NULL (all defaults). The manager starts without a thread: add the sinks, then
 * ck_alarm_mgr_start. */
int ck_alarm_mgr_new(const struct ck_alarm_conf *conf, struct ck_alarm_mgr **out);
/* Takes ownership of sink->arg (freed through sink->free, also on error). Before start only. At
 * most 8 sinks. */
int ck_alarm_mgr_add_sink(struct ck_alarm_mgr *m, const struct ck_alarm_sink *sink);
/* Starts the delivery thread. Call after the privilege drop (the thread keeps the identity). */
int ck_alarm_mgr_start(struct ck_alarm_mgr *m);
/* Flushes (at most conf.shutdown_ms), stops the thread, frees the sinks. A manager never started
 * delivers nothing. Accepts NULL. */
void ck_alarm_mgr_free(struct ck_alarm_mgr *m);

/* Raises code for subject with a cause (printf format). Thread-safe. Before start the alarm is
 * recorded and queued; delivery begins at start. CK_ERR_INVAL for a bad code or severity or an
 * empty subject. */
int ck_alarm_raise(struct ck_alarm_mgr *m, enum ck_alarm_code code, enum ck_alarm_severity sev,
                   const char *subject, const char *cause_fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Clears code+subject (the condition is gone): delivered once, with the cause given. 
 * CK_ERR_NOTFOUND if no such alarm is active. Thread-safe. */
int ck_alarm_clear(struct ck_alarm_mgr *m, enum ck_alarm_code code, const char *subject,
                   const char *cause_fmt, ...) __attribute__((format(printf, 4, 5)));
/* Wakes the delivery thread now (a test that advanced its clock; a daemon never needs it). */
void ck_alarm_mgr_kick(struct ck_alarm_mgr *m);

/* The current record of code+subject (CK_ERR_NOTFOUND when unknown). Thread-safe. */
int ck_alarm_get(struct ck_alarm_mgr *m, enum ck_alarm_code code, const char *subject,
                 struct ck_alarm *out);
void ck_alarm_mgr_stats(struct ck_alarm_mgr *m, struct ck_alarm_stats *out);
/* Statistics of the i-th sink (in the order added); CK_ERR_NOTFOUND past the last. */
int ck_alarm_sink_stats(struct ck_alarm_mgr *m, size_t i, struct ck_alarm_sink_stats *out);

/* ---- sinks ------------------------------------------------------------------------------ */

/* syslog through the project's log layer (ck_log, whatever destination the daemon configured):
 * one line "alarm CODE SEVERITY subject=... host=... count=N[ cleared]: cause" at the severity's
 * level (a clear at LOG_NOTICE). Never fails. */
void ck_alarm_sink_log(struct ck_alarm_sink *out);

/* The alarm table: fn gets each alarm (the store helper persists it); fn's error is retried like
 * any sink's. arg_free (may be NULL) frees arg with the manager. */
void ck_alarm_sink_callback(struct ck_alarm_sink *out, const char *name,
                            int (*fn)(void *arg, const struct ck_alarm *a), void *arg,
                            void (*arg_free)(void *arg));

/* The webhook: an HTTP(S) POST of the alarm as JSON (ck_alarm_to_json) with
 *   Content-Type: application/json
 *   X-Cablekey-Timestamp: <unix seconds of the delivery attempt>
 *   X-Cablekey-Signature: sha256=<hex HMAC-SHA-256(secret, timestamp "." body)>
 * A 2xx answer is a delivery; anything else (an error status, a redirect, no answer within
 * timeout_ms) is a failure and is retried. The secret is the content of secret_file (trailing
 * newlines removed, 16..1024 bytes), which must be a regular file not accessible by group or
 * others (CK_ERR_PERM otherwise). Only http and https URLs; no redirects followed. */
struct ck_alarm_webhook_conf {
    const char *url;
    const char *secret_file;
    int64_t timeout_ms;       /* per attempt; 0: 5000 */
    const char *ca_file;      /* https: trust anchors (PEM); NULL: the system's */
};
int ck_alarm_sink_webhook(const struct ck_alarm_webhook_conf *conf, struct ck_alarm_sink *out);

/* The JSON object the webhook posts: {"version":1,"code":"kvno-missing","severity":"major",
 * "subject":...,"host":...,"cause":...,"first_seen":<ms>,"last_seen":<ms>,"count":N,
 * "cleared":false}. Returns a malloc'd NUL-terminated string or NULL (out of memory). */
char *ck_alarm_to_json(const struct ck_alarm *a);

/* HMAC-SHA-256 over timestamp "." body as lower-case hex (65 bytes with the NUL): what the
 * webhook sends and a receiver recomputes. */
int ck_alarm_webhook_sign(const uint8_t *secret, size_t secret_len, const char *timestamp,
                          const char *body, size_t body_len, char hex[65]);

#endif
