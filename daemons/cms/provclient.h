/* cablekey-cms as a client of cablekey-prov (issue 10, docs/cablekey-cms.md "Provisioning"):
 *
 *   reports  every KMM AP Request that keys a restricted SA queues
 *            POST /api/v1/devices/report {"mac","ip","key_sha256","controller"}: a bounded
 *            queue, one pending report per MAC (a newer one replaces the older one in place),
 *            sent by a thread of its own with exponential backoff while cablekey-prov is down
 *            or failing, so that KMM and calls never wait for it. Each outcome is logged (info):
 *            "prov report mac=aa:bb:cc:dd:ee:ff ip=A.B.C.D result=ok|retry|dropped".
 *   lines    a second thread long-polls GET /api/v1/lines?after=C&wait=25; every answer that
 *            changed something carries the full snapshot, which becomes the call core's dynamic
 *            line table (cms_call_set_dynamic_lines), then "prov lines synced count=N cursor=C".
 *
 * The HTTP transport and the clock are injected (tests use a fake server and a variable);
 * provhttp.c is the real one (libcurl, HTTP Negotiate with the controller's own keytab). The
 * step functions do one unit of work and say when the next is due; the threads only loop on
 * them. Thread safety: cms_prov_report may be called from any thread at any time. */
#ifndef CMS_PROVCLIENT_H
#define CMS_PROVCLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call.h"

#define CMS_PROV_DEFAULT_QUEUE 4096
#define CMS_PROV_DEFAULT_BACKOFF_MIN_MS 1000
#define CMS_PROV_DEFAULT_BACKOFF_MAX_MS 60000
#define CMS_PROV_DEFAULT_WAIT 25          /* the long poll's wait, seconds (prov: 0..30) */
#define CMS_PROV_MAX_ANSWER (64u << 20)   /* a lines snapshot larger than this is refused */
#define CMS_PROV_MAX_LINES (1u << 20)

/* One HTTP request to cablekey-prov: path is everything after the base URL ("/api/v1/...").
 * 0 when an answer came (*status its HTTP status, *answer its body, malloc'd, NUL-terminated,
 * may be NULL when empty); a negative CK_ERR_* with context when none did (refused, timeout,
 * no Kerberos credentials, stop requested). */
struct cms_prov_transport {
    int (*request)(void *arg, const char *method, const char *path, const char *body,
                   long timeout_s, long *status, char **answer, size_t *answer_len);
    void *arg;
};

/* Milliseconds on a monotonic clock. */
typedef int64_t (*cms_prov_clock_fn)(void *arg);

struct cms_prov_opts {
    const char *controller;           /* our principal, sent as "controller" */
    size_t max_queue;                 /* 0: CMS_PROV_DEFAULT_QUEUE */
    int64_t backoff_min_ms, backoff_max_ms;   /* 0: the defaults */
    int wait_s;                       /* 0: CMS_PROV_DEFAULT_WAIT */
    bool lines;                       /* poll the lines (needs calls) */
};

struct cms_prov_stats {
    uint64_t queued, coalesced, ok, retries, dropped;
    uint64_t polls, poll_errors, lines_added, lines_removed;
    size_t pending;
    int64_t cursor;
    size_t lines;                     /* entries in the last snapshot applied */
};

struct cms_prov;

/* report and lines: the transports of the two threads (they may be the same object only if
 * it is safe to use from two threads at once). clock NULL: CLOCK_MONOTONIC. calls may be NULL
 * when opts->lines is false. */
int cms_prov_new(const struct cms_prov_opts *opts, const struct cms_prov_transport *report,
                 const struct cms_prov_transport *lines, cms_prov_clock_fn clock,
                 void *clock_arg, struct cms_call_core *calls, struct cms_prov **out);
/* Stops the threads first. Accepts NULL. */
void cms_prov_free(struct cms_prov *p);

/* Queues a report (KMM: a restricted SA was keyed). ip: the endpoint's address in text form.
 * Never blocks on the network. */
void cms_prov_report(struct cms_prov *p, const uint8_t mac[6], const char *ip,
                     const uint8_t key_sha256[32]);

/* Sends the oldest due report, if any. Returns the milliseconds until the next one is due:
 * 0 at once, -1 when the queue is empty. */
int64_t cms_prov_report_step(struct cms_prov *p);
/* One long poll (blocks for up to the wait). Returns the milliseconds to wait before the next
 * poll (0 at once; a backoff after an error). */
int64_t cms_prov_lines_step(struct cms_prov *p);

/* A GET /api/v1/lines answer: {"lines":[{"number","principal","mac","state"}],"removed":[],
 * "cursor":N,"full":bool}. *v (malloc'd, *n entries) holds the lines when full. Entries that
 * are not lines (wrong types, a number that is not 1..15 digits, a principal that is empty or
 * too long) make the whole answer an error: a table half taken is worse than the old one. */
int cms_prov_lines_parse(const char *text, size_t len, struct cms_dyn_line **v, size_t *n,
                         int64_t *cursor, bool *full, char *why, size_t why_size);

/* The two threads (lines only with opts->lines). stop: a flag the transports watch, so that a
 * long poll in progress ends at once on cms_prov_stop (may be NULL). */
int cms_prov_start(struct cms_prov *p, atomic_bool *stop);
void cms_prov_stop(struct cms_prov *p);

void cms_prov_get_stats(struct cms_prov *p, struct cms_prov_stats *out);

#endif
