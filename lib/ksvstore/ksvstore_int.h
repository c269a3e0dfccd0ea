/* Internal interface of the keying server's store (lib/ksvstore): the handle, the checked
 * SQLite helpers and the at-rest sealing every file of the module shares. */
#ifndef CK_KSVSTORE_INT_H
#define CK_KSVSTORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "cablekey/ksv_store.h"

#define KS_MASTER_KEY_LEN 32
#define KS_NONCE_LEN 12
#define KS_TAG_LEN 16
#define KS_SEAL_OVERHEAD (KS_NONCE_LEN + KS_TAG_LEN)
#define KS_AAD_MAX 320

struct ck_ksv_store {
    pthread_mutex_t mu;
    sqlite3 *db;
    char *path;
    uint8_t mkey[KS_MASTER_KEY_LEN];
    EVP_CIPHER_CTX *enc, *dec;      /* keyed once with mkey; a fresh nonce per seal */
    sqlite3_stmt *st_version;
    int64_t data_version;
    bool split_commit;              /* test only: group_commit in two transactions */
};

/* The associated data of a sealed value: which table and which row (and version) it belongs
 * to, length-prefixed so that no two identities encode alike. */
struct ks_aad {
    uint8_t buf[KS_AAD_MAX];
    size_t len;
};
void ks_aad_init(struct ks_aad *a, const char *table);
void ks_aad_str(struct ks_aad *a, const char *s);
void ks_aad_u64(struct ks_aad *a, uint64_t v);

/* AES-256-GCM under the master key: out receives nonce || ciphertext || tag
 * (pt_len + KS_SEAL_OVERHEAD bytes). */
int ks_seal(struct ck_ksv_store *st, const struct ks_aad *aad, const uint8_t *pt, size_t pt_len,
            uint8_t *out);
/* CK_ERR_INTEGRITY when the tag does not verify (wrong master key, a value moved to another
 * row, a modified value); pt receives ct_len - KS_SEAL_OVERHEAD bytes. */
int ks_open(struct ck_ksv_store *st, const struct ks_aad *aad, const uint8_t *ct, size_t ct_len,
            uint8_t *pt);

/* The connection's last error as a cablekey error: CK_ERR_DB (busy, constraint, damaged),
 * CK_ERR_PERM (read-only, permission), CK_ERR_IO. */
int ks_error(struct ck_ksv_store *st, const char *what);
int ks_exec(struct ck_ksv_store *st, const char *sql);
int ks_prepare(struct ck_ksv_store *st, const char *sql, sqlite3_stmt **out);
int ks_begin(struct ck_ksv_store *st);
/* COMMIT when ret == 0 (returning its error, if any), else ROLLBACK and ret. */
int ks_end(struct ck_ksv_store *st, int ret);
/* A name (node, group, policy, actor): non-empty, < CK_KSV_STORE_NAME bytes. */
int ks_check_name(const char *what, const char *s);
void ks_col_text(sqlite3_stmt *q, int col, char *dst, size_t size);
/* A random SPI in [lo, hi]. */
int ks_random_spi(uint32_t lo, uint32_t hi, uint32_t *spi);

void ks_lock(struct ck_ksv_store *st);
void ks_unlock(struct ck_ksv_store *st);

/* Test only: makes group_commit write the node rows in one transaction and the rest in a
 * second one, i.e. not atomic, so the crash test can prove its check sees a torn batch. */
void ck_ksv_store_test_split_commit(struct ck_ksv_store *st, bool split);

#endif
