/* cablekey-cms: the KMM client channels to the peer controllers of the routes (peer.c), and the
 * thread that also runs the call core's timers. */
#ifndef CMS_PEER_H
#define CMS_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "call.h"
#include "cms.h"

struct cms_peers;

/* One channel per distinct route principal; service: our own service principal (its keytab
 * entry gets the AS ticket), self: our endpoint name towards peers ("cms@host"). Nothing is
 * sent before cms_peers_run. */
int cms_peers_new(const struct cms_config *cfg, const char *service, const char *self,
                  struct cms_call_core *core, struct cms_peers **out);
int cms_peers_run(struct cms_peers *ps);
/* Stops the thread, wipes the channels' keys. Accepts NULL. */
void cms_peers_free(struct cms_peers *ps);
/* struct cms_call_io.peer_command (arg: struct cms_peers *). */
int cms_peers_command(void *arg, size_t route, const char *verb, const char *params,
                      uint32_t *txid);
void cms_peers_self_name(const char *service, char *buf, size_t size);

#endif
