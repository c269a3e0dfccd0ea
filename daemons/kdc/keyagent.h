/* The key version service (include/cablekey/keyagent.h) that cablekey-kdc runs beside the KDC:
 * its own ck_net_server (TCP only: replies carry keys and may exceed a datagram), its own
 * workers with their own database connections, one replay cache shared by its workers.
 * Operator documentation: docs/keytab-agent.md and docs/cablekey-kdc.md ("Key version
 * service"). */
#ifndef CABLEKEY_KDC_KEYAGENT_H
#define CABLEKEY_KDC_KEYAGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "kdc.h"

#define KEYAGENT_WORKERS 2
#define KEYAGENT_MAX_REQUEST 65535  /* the length field is 16 bits */

struct keyagent_server;
struct keyagent_worker;
struct ck_peer;

/* Service state without a network server (tests, fuzzing). Copies what it needs of kdc. */
int keyagent_server_new(const struct kdc_config *kdc, struct keyagent_server **out);
/* Opens a database connection. A missing keyagent/REALM@REALM is not an error here: it is
 * logged (once per server) and every request is refused until an operator adds it. */
int keyagent_worker_new(struct keyagent_server *srv, struct keyagent_worker **out);
void keyagent_worker_free(struct keyagent_worker *w);

/* Handles one message (without the TCP length prefix). *reply_len 0: send nothing (not a
 * plausible message). Never fails on hostile input; logs one line per request, never a key. */
int keyagent_handle_request(struct keyagent_worker *w, const uint8_t *req, size_t req_len,
                            const struct ck_peer *peer, uint8_t *reply, size_t reply_cap,
                            size_t *reply_len);

/* The daemon's two steps, as kpasswd. keyagent_server_bind reads dc->keyagent_listen: NULL
 * means the default (port 7464 on the host part of each KDC listen address), "none" turns the
 * service off (*out NULL). A default address that cannot be bound (another KDC on this host
 * has it) is logged and the service stays off; an address named in the configuration that
 * cannot be bound is an error. keyagent_server_run opens the workers' connections and starts. */
int keyagent_server_bind(const struct kdc_daemon_config *dc, struct keyagent_server **out);
int keyagent_server_run(struct keyagent_server *srv, const struct kdc_config *kdc);
void keyagent_server_describe(const struct keyagent_server *srv, char *buf, size_t size);
/* Stops the network server if any, then frees. Accepts NULL. */
void keyagent_server_free(struct keyagent_server *srv);

/* --check: prints the addresses the service will use ("keyagent listen: ..." or "keyagent:
 * off") and whether keyagent/REALM exists (a warning line if not); non-zero for a bad setting. */
int keyagent_check(const struct kdc_daemon_config *dc, FILE *out);

/* Computes the listen list a keyagent_listen setting means (see keyagent_server_bind):
 * *n 0 when off; *dflt tells whether it is the default. Entries are malloc'd into list. */
int keyagent_listen_resolve(const struct kdc_daemon_config *dc, char **list, size_t cap,
                            size_t *n, bool *dflt);

#endif
