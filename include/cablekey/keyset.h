/* A service's keys from a keytab, for servers that verify AP-REQs (cablekey-cms, cablekey-ksv):
 * the whole keytab, every kvno and enctype in it, so that a key rotation never breaks clients
 * still holding tickets under the previous kvno. The file is watched (inode, mtime, size; the
 * caller polls, e.g. once a second and on SIGHUP) and a new version replaces the key set only
 * when it decodes and still holds the service; a broken or unreadable file keeps the old keys in
 * use, reported once per file version. Lookups take a read lock and copy the key out, so a
 * reload never frees a key another thread is using. */
#ifndef CABLEKEY_KEYSET_H
#define CABLEKEY_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/ap.h"

#define CK_KEYSET_MAX_NAME 512 /* the unparsed service name */

typedef struct ck_keyset ck_keyset;

/* Reads the keytab; service NULL takes the principal of its first entry. The keytab must hold a
 * key of a supported enctype for the service (CK_ERR_NOTFOUND otherwise; CK_ERR_CONFIG for a
 * service name that does not parse). */
int ck_keyset_new(const char *path, const char *service, ck_keyset **out);
/* Accepts NULL; the keytab's keys are wiped with it. */
void ck_keyset_free(ck_keyset *ks);
/* The service principal, unparsed. */
const char *ck_keyset_service(const ck_keyset *ks);
/* Re-reads the keytab if its inode, mtime or size changed since it was read (force: whatever
 * the stat says). The new keys replace the old only if the file decodes and still holds the
 * service; otherwise the old ones stay and an error says why (reported once per file version).
 * *changed tells whether the key set was replaced. */
int ck_keyset_refresh(ck_keyset *ks, bool force, bool *changed);
/* ck_ap_key_fn over the current key set (arg: ck_keyset *). */
int ck_keyset_key_fn(void *arg, const CK_TICKET *ticket, int32_t etype, uint32_t kvno,
                     ck_key *key, int32_t *krb_error);
/* Keys (entries) of the service in the current set, and its highest kvno. */
void ck_keyset_describe(ck_keyset *ks, size_t *n_keys, uint32_t *max_kvno);

#endif
