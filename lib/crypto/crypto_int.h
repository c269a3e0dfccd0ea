/* Internal interface of lib/crypto: the enctype table, the OpenSSL primitives (fetched once,
 * thread-local contexts, derived-key cache) and test hooks that need fixed inputs (a given
 * confounder, raw CTS, raw DK). Only lib/crypto and tests/unit/test_crypto.c include it. */
#ifndef CK_CRYPTO_INT_H
#define CK_CRYPTO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/crypto.h"

#define CK_AES_BLOCK 16
#define CK_CONFOUNDER_LEN 16 /* one AES block for all four enctypes */

/* Key-usage constants of RFC 3961 §5.3 / RFC 8009 §5: the fifth octet after the usage number. */
#define CK_KDF_CHECKSUM 0x99
#define CK_KDF_ENCRYPT 0xAA
#define CK_KDF_INTEGRITY 0x55

enum ck_kdf_family {
    CK_FAMILY_RFC3962 = 1, /* DK via KRB5KDF, HMAC-SHA1-96 over the plaintext */
    CK_FAMILY_RFC8009 = 2, /* KDF-HMAC-SHA2 via KBKDF, HMAC over IV||ciphertext */
};

enum ck_md {
    CK_MD_SHA1 = 0,
    CK_MD_SHA256 = 1,
    CK_MD_SHA384 = 2,
    CK_MD_COUNT = 3,
};

typedef struct ck_enctype_info {
    int32_t enctype;
    const char *name;   /* MIT canonical name, also the RFC 8009 s2k salt prefix */
    const char *alias;  /* MIT short alias */
    int family;         /* enum ck_kdf_family */
    int md;             /* enum ck_md used by HMAC, PBKDF2 and the KDF */
    size_t key_len;     /* protocol key and Ke length */
    size_t ki_len;      /* Ki and Kc length (RFC 8009: 128 or 192 bits) */
    size_t mac_len;     /* truncated HMAC length in ciphertexts and checksums */
    size_t prf_len;
    int32_t cksumtype;
    uint32_t default_iter;
} ck_enctype_info;

/* The table entry of a supported enctype, or NULL. */
const ck_enctype_info *ck_crypto_enctype_info(int32_t enctype);
/* The table entry whose mandatory checksum is cksumtype, or NULL. */
const ck_enctype_info *ck_crypto_cksum_info(int32_t cksumtype);

/* AES-CBC-CTS (RFC 3962 §5: CBC with ciphertext stealing, last two blocks swapped, which is
 * NIST CS3) with an all-zero IV. len >= 16; exactly 16 bytes is one plain CBC block. key_len is
 * 16 or 32. in and out may be the same buffer. */
int ck_crypto_aes_cts(const uint8_t *key, size_t key_len, bool encrypt, const uint8_t *in,
                      size_t len, uint8_t *out);

/* Longest KDF label we build (usage|constant is 5 bytes, "kerberos" 8, "prf" 3). */
#define CK_KDF_LABEL_MAX 16

/* RFC 3961 §5.1 n-fold of in_len bytes to out_len bytes (both > 0). */
void ck_crypto_nfold(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len);

/* RFC 3961 DK(key, constant) for AES keys (16 or 32 bytes; constant 1..16 bytes), the hot path:
 * n-fold and one or two AES blocks on the thread's cipher context. out gets key_len bytes. */
int ck_crypto_dk_aes(const uint8_t *key, size_t key_len, const uint8_t *constant,
                     size_t constant_len, uint8_t *out);

/* RFC 8009 KDF-HMAC-SHA2(key, label, context, out_len*8), the hot path: one HMAC on the thread's
 * context. context may be NULL (absent). out_len <= the digest length. */
int ck_crypto_kdf_sha2(int md, const uint8_t *key, size_t key_len, const uint8_t *label,
                       size_t label_len, const uint8_t *context, size_t context_len, uint8_t *out,
                       size_t out_len);

/* Reference implementations through OpenSSL's KDFs (fresh context per call, slower): DK via
 * KRB5KDF with the named CBC cipher ("AES-128-CBC", "AES-256-CBC", "DES-EDE3-CBC"), out_len the
 * cipher's key length; KDF-HMAC-SHA2 via KBKDF counter mode. Tests check the hot path against
 * them. */
int ck_crypto_krb5kdf(const char *cipher, const uint8_t *key, size_t key_len,
                      const uint8_t *constant, size_t constant_len, uint8_t *out, size_t out_len);
int ck_crypto_kbkdf_sha2(int md, const uint8_t *key, size_t key_len, const uint8_t *label,
                         size_t label_len, const uint8_t *context, size_t context_len,
                         uint8_t *out, size_t out_len);

struct ck_iov {
    const uint8_t *data;
    size_t len;
};

/* HMAC(key, parts...) with the thread's reusable context; out receives the full digest
 * (EVP_MAX_MD_SIZE bytes of room). ck_crypto_hmac is the two-part form. */
int ck_crypto_hmac_v(int md, const uint8_t *key, size_t key_len, const struct ck_iov *parts,
                     size_t n_parts, uint8_t *out, size_t *out_len);
int ck_crypto_hmac(int md, const uint8_t *key, size_t key_len, const uint8_t *data1,
                   size_t len1, const uint8_t *data2, size_t len2, uint8_t *out, size_t *out_len);

/* Random bytes from the public (priv=false) or private (priv=true) DRBG, small requests served
 * from a per-thread buffer. */
int ck_crypto_random(void *buf, size_t len, bool priv);

/* PBKDF2-HMAC-<md>(password, salt, iter) of out_len bytes. */
int ck_crypto_pbkdf2(int md, const char *password, size_t password_len, const uint8_t *salt,
                     size_t salt_len, uint32_t iter, uint8_t *out, size_t out_len);

/* Plain digest (the RFC 3962 PRF hashes its input with SHA-1). */
int ck_crypto_digest(int md, const uint8_t *data, size_t len, uint8_t *out, size_t *out_len);

/* Ke, Ki or Kc (kind = CK_KDF_*) of a base key for a usage, from the thread's derived-key cache
 * (filled on a miss). out holds CK_KEY_MAX bytes; *out_len is the derived key length. */
int ck_crypto_derive_key(const ck_key *base, int32_t usage, uint8_t kind, uint8_t *out,
                         size_t *out_len);

/* RFC 3962 PRF key DK(base, "prf"), cached like the usage keys. */
int ck_crypto_prf_key(const ck_key *base, uint8_t *out, size_t *out_len);

/* ck_encrypt with a caller-chosen confounder (the RFC 8009 sample encryptions fix it). */
int ck_crypto_encrypt_with_confounder(const ck_key *key, int32_t usage,
                                      const uint8_t confounder[CK_CONFOUNDER_LEN],
                                      const uint8_t *plain, size_t plain_len, uint8_t *out,
                                      size_t out_size, size_t *out_len);

/* Statistics of this thread's derived-key cache (tests check that it is used and bounded). */
void ck_crypto_cache_stats(uint64_t *hits, uint64_t *misses, size_t *entries);

#endif
