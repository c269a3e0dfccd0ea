/* The kpasswd service (RFC 3244 change and set password, and MIT's version 0x0001 change
 * password) that cablekey-kdc runs beside the KDC: its own ck_net_server, its own workers with
 * their own database connections, one replay cache shared by its workers. Operator
 * documentation: docs/cablekey-kdc.md, "Password changes". */
#ifndef CABLEKEY_KDC_KPASSWD_H
#define CABLEKEY_KDC_KPASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kdc.h"

#define KPASSWD_DEFAULT_PORT 464
#define KPASSWD_WORKERS 2          /* password changes are rare; string-to-key is the cost */
#define KPASSWD_MAX_ADMINS 32
#define KPASSWD_MAX_REQUEST 65535  /* the kpasswd length field is 16 bits */

/* Shared state of the service: settings, the replay cache, the network server. */
struct kpasswd_server;
/* Per-worker state: one database connection. */
struct kpasswd_worker;

/* Makes the service state without a network server (tests, fuzzing). kdc must outlive the
 * service. admins: principals (canonical "name@REALM") allowed
 * to set another principal's password, separated by blanks or commas; NULL or "" = nobody. */
int kpasswd_server_new(const struct kdc_config *kdc, const char *admins,
                       struct kpasswd_server **out);
/* Opens a database connection and checks that kadmin/changepw exists (CK_ERR_CONFIG naming the
 * command that creates it otherwise). */
int kpasswd_worker_new(struct kpasswd_server *srv, struct kpasswd_worker **out);
void kpasswd_worker_free(struct kpasswd_worker *w);

/* Handles one kpasswd message (tcp: it came over TCP; for the log line). peer is the client (for
 * the log line), local the address the request arrived on (the reply's KRB-PRIV s-address;
 * NULL: a directional address); both opaque (net.h) and may be NULL. *reply_len 0
 * means "send nothing" (a message without a plausible kpasswd header). Never fails on hostile
 * input; logs one line per request, never the password. */
int kpasswd_handle_request(struct kpasswd_worker *w, const uint8_t *req, size_t req_len,
                           bool tcp, const struct ck_peer *peer, const struct ck_peer *local,
                           uint8_t *reply, size_t reply_cap, size_t *reply_len);

/* The service starts in the daemon's two steps. kpasswd_server_bind binds listen (ADDR[:PORT]
 * entries, default port 464; may need privileges) and nothing else; kpasswd_server_run, after
 * privileges are dropped, takes the settings (kdc must outlive the service), opens each
 * worker's database connection and starts the workers. On error the context names the
 * address or the missing principal; kpasswd_server_free cleans up either step. */
int kpasswd_server_bind(const char *const *listen, size_t n_listen, struct kpasswd_server **out);
int kpasswd_server_run(struct kpasswd_server *srv, const struct kdc_config *kdc,
                       const char *admins);
/* "a:464 b:464" of the bound addresses, for the start-up log line. */
void kpasswd_server_describe(const struct kpasswd_server *srv, char *buf, size_t size);
/* Stops the network server if any, then frees. Accepts NULL. */
void kpasswd_server_free(struct kpasswd_server *srv);

#endif
