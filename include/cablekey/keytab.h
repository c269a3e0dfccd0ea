/* Keytab files in MIT's format, version 0x0502 (big-endian), as read by MIT/Heimdal `klist -k`
 * and `kinit -k`. Entries hold a principal, a key version number and a key.
 *
 * Reading is bounded (file <= CK_KEYTAB_MAX_FILE, entry <= CK_KEYTAB_MAX_ENTRY, at most
 * CK_KEYTAB_MAX_ENTRIES entries) and refuses malformed input with CK_ERR_DECODE. Holes (negative
 * entry sizes, left by deletions) are skipped. Entries with an enctype we do not implement are
 * kept as long as the key fits a ck_key (use ck_enctype_is_supported before using them). */
#ifndef CABLEKEY_KEYTAB_H
#define CABLEKEY_KEYTAB_H

#include <stddef.h>
#include <stdint.h>

#include "cablekey/crypto.h"
#include "cablekey/principal.h"

#define CK_KEYTAB_VERSION 0x0502
#define CK_KEYTAB_MAX_FILE (16u * 1024 * 1024)
#define CK_KEYTAB_MAX_ENTRY (64u * 1024)
#define CK_KEYTAB_MAX_ENTRIES 65536

typedef struct ck_keytab_entry {
    ck_principal *principal;
    uint32_t timestamp;  /* seconds since the epoch, when the key was added */
    uint32_t kvno;       /* the 32-bit kvno when present, else the 8-bit one */
    ck_key key;
} ck_keytab_entry;

typedef struct ck_keytab {
    size_t n_entries;
    ck_keytab_entry *entries;
    size_t capacity;     /* allocated entries (internal) */
} ck_keytab;

int ck_keytab_new(ck_keytab **out);
/* Wipes every key; accepts NULL. */
void ck_keytab_free(ck_keytab *kt);

/* Appends a copy of principal and key. timestamp 0 means "now". */
int ck_keytab_add(ck_keytab *kt, const ck_principal *principal, uint32_t kvno,
                  uint32_t timestamp, const ck_key *key);

/* Finds an entry for principal (realm included) with the given enctype; kvno 0 selects the
 * highest kvno, enctype 0 any enctype. NULL if none. */
const ck_keytab_entry *ck_keytab_find(const ck_keytab *kt, const ck_principal *principal,
                                      uint32_t kvno, int32_t enctype);

/* Decodes a keytab image. */
int ck_keytab_decode(const uint8_t *data, size_t len, ck_keytab **out);
/* Encodes a keytab image; *out holds key material: free it with ck_free_secret(*out, *len). */
int ck_keytab_encode(const ck_keytab *kt, uint8_t **out, size_t *out_len);

/* Reads a keytab file (CK_ERR_NOTFOUND if absent). */
int ck_keytab_read(const char *path, ck_keytab **out);
/* Writes a keytab file atomically (temporary file in the same directory, fsync, rename):
 * readers see the old or the new file, never half of one. A new file is 0600; an existing one
 * keeps its owner, group and mode, and a symlink is followed (ck_file_write_atomic with
 * CK_WRITE_PRESERVE): a service that reads its keytab through a group keeps reading it. */
int ck_keytab_write(const char *path, const ck_keytab *kt);

#endif
