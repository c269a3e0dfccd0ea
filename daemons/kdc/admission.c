/* The KDC's side of UDP admission control (admission.h; the engine is lib/net/admission.c). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "admission.h"
#include "cablekey/log.h"
#include "config.h"

void
kdc_admission_defaults(struct kdc_daemon_config *dc)
{
    dc->admission = true;
    dc->admission_window_ms = CK_ADMISSION_DEFAULT_WINDOW_MS;
    dc->admission_prefix4 = 24;
    dc->admission_prefix6 = 64;
    dc->admission_sources = CK_ADMISSION_DEFAULT_SOURCES;
    /* The usual default queue (~200 KB) holds a few hundred requests, a few ms of work for
     * cheap exchanges: a burst beyond it is dropped by the kernel at the tail, before admission
     * control sees it. 4 MB holds about a second of PKINIT on one worker. */
    dc->udp_rcvbuf = KDC_DEFAULT_UDP_RCVBUF;
}

/* One line per second at most while requests are shed (a state an operator must see, but a
 * storm must not turn into a log storm). */
static void
report(void *arg, const struct ck_admission_stats *since, const struct ck_admission_stats *tot)
{
    (void)arg;
    ck_log_warn("admission shed stale=%" PRIu64 " share=%" PRIu64 " admitted=%" PRIu64
                " sources=%" PRIu64 " cost_us=%" PRIu64 " total_shed=%" PRIu64,
                since->dropped_stale, since->dropped_share, since->admitted, tot->sources,
                tot->service_ns / 1000, tot->dropped_stale + tot->dropped_share);
}

void
kdc_admission_net_config(const struct kdc_daemon_config *dc, struct ck_net_config *ncfg)
{
    memset(&ncfg->admission, 0, sizeof(ncfg->admission));
    ncfg->udp_rcvbuf = dc->udp_rcvbuf;
    if (!dc->admission)
        return;
    ncfg->admission.enabled = true;
    ncfg->admission.window_ms = dc->admission_window_ms;
    ncfg->admission.congest_ms = dc->admission_congest_ms;
    ncfg->admission.prefix4 = dc->admission_prefix4;
    ncfg->admission.prefix6 = dc->admission_prefix6;
    ncfg->admission.max_sources = (size_t)dc->admission_sources;
    ncfg->admission.report = report;
}

void
kdc_admission_describe(const struct kdc_daemon_config *dc, char *buf, size_t size)
{
    char q[48];

    if (dc->udp_rcvbuf > 0)
        snprintf(q, sizeof(q), "%d bytes", dc->udp_rcvbuf);
    else
        snprintf(q, sizeof(q), "system default");
    if (!dc->admission)
        snprintf(buf, size, "off, UDP queue %s", q);
    else
        snprintf(buf, size, "on, window %d ms, congestion %d ms, sources /%d /%d (%d per worker), "
                 "UDP queue %s",
                 dc->admission_window_ms,
                 dc->admission_congest_ms > 0 ? dc->admission_congest_ms
                 : dc->admission_window_ms / 2 < CK_ADMISSION_DEFAULT_CONGEST_MS
                     ? dc->admission_window_ms / 2
                     : CK_ADMISSION_DEFAULT_CONGEST_MS,
                 dc->admission_prefix4, dc->admission_prefix6, dc->admission_sources, q);
}

/* ---- /metrics ---------------------------------------------------------------------------- */

static struct ck_metric *m_dropped, *m_admitted;
static struct ck_admission_stats m_last;

int
kdc_admission_metrics_register(struct ck_metrics *m)
{
    static const char *const reasons[] = {"stale", "share", NULL};
    static const struct ck_metric_label reason = {"reason", reasons};
    struct ck_metric_desc d;
    int rc;

    memset(&d, 0, sizeof(d));
    d.name = "kdc_admission_dropped_total";
    d.help = "UDP requests dropped by admission control before decoding (stale: could not be "
             "answered within the clients' retry window; share: a source over its fair share "
             "while congested)";
    d.type = CK_METRIC_COUNTER;
    d.labels = &reason;
    d.n_labels = 1;
    if ((rc = ck_metrics_register(m, &d, &m_dropped)) != 0)
        return rc;
    memset(&d, 0, sizeof(d));
    d.name = "kdc_admission_admitted_total";
    d.help = "UDP requests admission control passed to the KDC";
    d.type = CK_METRIC_COUNTER;
    return ck_metrics_register(m, &d, &m_admitted);
}

void
kdc_admission_metrics_collect(const struct ck_net_server *srv)
{
    struct ck_admission_stats st;

    if (m_dropped == NULL || m_admitted == NULL)
        return;
    ck_net_server_admission_stats(srv, &st);
    /* Counters only grow: a restart of the server (counters from zero) adds nothing until
     * they pass the old values again. */
    if (st.dropped_stale > m_last.dropped_stale)
        ck_metric_add(m_dropped, 0, st.dropped_stale - m_last.dropped_stale);
    if (st.dropped_share > m_last.dropped_share)
        ck_metric_add(m_dropped, 1, st.dropped_share - m_last.dropped_share);
    if (st.admitted > m_last.admitted)
        ck_metric_add(m_admitted, 0, st.admitted - m_last.admitted);
    if (st.dropped_stale > m_last.dropped_stale)
        m_last.dropped_stale = st.dropped_stale;
    if (st.dropped_share > m_last.dropped_share)
        m_last.dropped_share = st.dropped_share;
    if (st.admitted > m_last.admitted)
        m_last.admitted = st.admitted;
}
