/* The frame shared by cablekey-prov's two Kerberos-authenticated servers, MTA-FQDN (fqdn.c) and
 * the device channel (devchan.c): a ck_net_server with one store connection per worker, the
 * service's keys from the keytab (re-read when the file changes), one replay cache, the clock.
 * Each server supplies its protocol handler. */
#ifndef CABLEKEY_PROV_WIRESRV_H
#define CABLEKEY_PROV_WIRESRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/ap.h"
#include "cablekey/keyset.h"
#include "cablekey/net.h"
#include "cablekey/store.h"
#include "prov.h"

#define PROV_WIRE_WORKERS 2

struct prov_wire_server;

/* What a handler sees: its worker's store, the service's keys, the shared replay cache. */
struct prov_wire_ctx {
    struct prov_wire_server *srv;
    ck_store *store;
    ck_keyset *keys;              /* ck_keyset_key_fn's argument */
    const char *service;          /* "svc/host@REALM" as the keytab names it */
    ck_rcache *rcache;
    int64_t clockskew;
    void *arg;                    /* the server's own state (def.arg) */
};

/* *out malloc'd (freed by the frame after sending); *out_len 0: send nothing. */
typedef int (*prov_wire_handler_fn)(struct prov_wire_ctx *ctx, const uint8_t *req, size_t len,
                                    const struct ck_peer *peer, int64_t now, uint8_t **out,
                                    size_t *out_len);

struct prov_wire_def {
    const char *what;             /* "mtafqdn", "devchan": log lines and errors */
    const char *service;          /* the keytab principal's first component */
    uint16_t port;                /* default port */
    bool tcp;                     /* TCP (Kerberos framing) as well as UDP */
    size_t max_request, max_reply;
    prov_wire_handler_fn handler;
    void *arg;
};

/* listen: the configured list (n 0: all addresses on def->port; one entry "none": off, *out
 * NULL and 0 returned). */
int prov_wire_start(const struct prov_config *cfg, const struct prov_wire_def *def,
                    char *const *listen, size_t n_listen, struct prov_wire_server **out);
void prov_wire_stop(struct prov_wire_server *s);
/* The bound addresses, for logs and tests. */
void prov_wire_describe(const struct prov_wire_server *s, char *buf, size_t size);
/* After a serve call: formats peer into addr and, when the request got no answer (rc != 0) or
 * was refused before the handler ran (!called), logs it as "TAG addr ..." and returns true;
 * false: the caller logs its own line. */
bool prov_wire_log_unhandled(const char *tag, const struct ck_peer *peer, size_t len, int rc,
                             bool called, char *addr, size_t addr_size);
/* Printable ASCII copy of in for a log line ('?' for anything else). */
void prov_wire_log_escape(const char *in, char *out, size_t size);
/* The keytab's principal whose first component is service (and realm, if not NULL):
 * "service/host@REALM" into out. CK_ERR_NOTFOUND when it holds none. */
int prov_wire_keytab_service(const char *keytab, const char *service, const char *realm,
                             char *out, size_t size);

#endif
