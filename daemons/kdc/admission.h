/* UDP admission control for the KDC (issue 9, the mass reset): the kdc.conf settings turned into
 * the network server's admission configuration, the once-a-second log line while requests are
 * shed, and the drop counter for /metrics. The decisions themselves are lib/net/admission.c's. */
#ifndef CABLEKEY_KDC_ADMISSION_H
#define CABLEKEY_KDC_ADMISSION_H

#include <stddef.h>

#include "cablekey/metrics.h"
#include "cablekey/net.h"

struct kdc_daemon_config;

#define KDC_DEFAULT_UDP_RCVBUF (4 * 1024 * 1024)

/* Defaults of the admission keys in dc (admission on, window 8000 ms, /24 and /64 sources). */
void kdc_admission_defaults(struct kdc_daemon_config *dc);
/* Fills ncfg->admission and ncfg->udp_rcvbuf from dc; the report logs one warning line. */
void kdc_admission_net_config(const struct kdc_daemon_config *dc, struct ck_net_config *ncfg);
/* "on, window 8000 ms, congestion 100 ms, sources /24 /64 (4096 per worker), UDP queue 4194304
 * bytes" for --check. */
void kdc_admission_describe(const struct kdc_daemon_config *dc, char *buf, size_t size);

/* /metrics (the registry is k9alarmw's, daemons/kdc/metrics.c): registers
 * kdc_admission_dropped_total{reason="stale"|"share"} and kdc_admission_admitted_total;
 * kdc_admission_metrics_collect(srv) brings them up to date from the server's counters (call it
 * from the registry's collect hook). One server per process. */
int kdc_admission_metrics_register(struct ck_metrics *m);
void kdc_admission_metrics_collect(const struct ck_net_server *srv);

#endif
