/* Kerberos cryptography (RFC 3961 framework, RFC 3962 aes-sha1, RFC 8009 aes-sha2) on OpenSSL 3 EVP.
 * All functions are thread-safe. Keys are typed; ck_key_clear/ck_key_free wipe them. */
#ifndef CABLEKEY_CRYPTO_H
#define CABLEKEY_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96 17
#define CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96 18
#define CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128 19
#define CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192 20

#define CK_CKSUMTYPE_HMAC_SHA1_96_AES128 15
#define CK_CKSUMTYPE_HMAC_SHA1_96_AES256 16
#define CK_CKSUMTYPE_HMAC_SHA256_128_AES128 19
#define CK_CKSUMTYPE_HMAC_SHA384_192_AES256 20

#define CK_KEY_MAX 32          /* largest key we support (aes256) */
#define CK_CHECKSUM_MAX 24     /* largest checksum (hmac-sha384-192) */
#define CK_PRF_MAX 48          /* largest PRF output (aes256-sha384) */
#define CK_ENC_OVERHEAD_MAX 40 /* confounder (16) + largest HMAC (24) */

typedef struct ck_key {
    int32_t enctype;
    uint32_t length;
    uint8_t contents[CK_KEY_MAX];
} ck_key;

/* Enctype registry. */
bool ck_enctype_is_supported(int32_t enctype);
/* MIT-style canonical name, e.g. "aes256-cts-hmac-sha1-96"; "unknown" if unsupported. */
const char *ck_enctype_name(int32_t enctype);
/* Accepts canonical names, MIT aliases ("aes256-cts", "aes128-sha2", ...) and decimal numbers. */
int ck_enctype_from_name(const char *name, int32_t *enctype);
size_t ck_enctype_key_length(int32_t enctype);
/* The mandatory keyed checksum type of an enctype (RFC 3961 "required checksum mechanism"). */
int32_t ck_enctype_checksum_type(int32_t enctype);

/* Key objects. ck_key_init copies len bytes (must equal the enctype's key length). */
int ck_key_init(ck_key *key, int32_t enctype, const uint8_t *data, size_t len);
void ck_key_clear(ck_key *key);
/* Heap keys: ck_key_new returns a zeroed key or NULL; ck_key_free wipes and frees, accepts NULL. */
ck_key *ck_key_new(void);
void ck_key_free(ck_key *key);
int ck_key_copy(ck_key *dst, const ck_key *src);

/* string-to-key. s2kparams may be NULL (defaults: 4096 iterations for aes-sha1, 32768 for aes-sha2);
 * otherwise it is the 4-byte big-endian iteration count of RFC 3962/8009. Iteration counts below
 * 1 or above 16M are refused. */
int ck_string_to_key(int32_t enctype, const char *password, size_t password_len,
                     const uint8_t *salt, size_t salt_len, const uint8_t *s2kparams,
                     size_t s2kparams_len, ck_key *out);
/* Fresh random key from the OpenSSL DRBG. */
int ck_random_key(int32_t enctype, ck_key *out);
int ck_random_bytes(void *buf, size_t len);

/* Encryption with key usage (RFC 3961 §3). Ciphertext length for a plaintext length. */
size_t ck_encrypt_length(int32_t enctype, size_t plain_len);
/* out must hold ck_encrypt_length(key->enctype, plain_len) bytes. */
int ck_encrypt(const ck_key *key, int32_t usage, const uint8_t *plain, size_t plain_len,
               uint8_t *out, size_t out_size, size_t *out_len);
/* out must hold at least cipher_len bytes. Returns CK_ERR_INTEGRITY if the HMAC does not verify
 * (wrong key or modified ciphertext), CK_ERR_DECODE if too short. */
int ck_decrypt(const ck_key *key, int32_t usage, const uint8_t *cipher, size_t cipher_len,
               uint8_t *out, size_t out_size, size_t *out_len);

/* Keyed checksums. cksumtype 0 selects the key's mandatory checksum type. */
int ck_checksum_length(int32_t cksumtype, size_t *len);
bool ck_checksum_is_keyed_supported(int32_t cksumtype);
int ck_make_checksum(const ck_key *key, int32_t cksumtype, int32_t usage, const uint8_t *data,
                     size_t data_len, uint8_t *out, size_t out_size, size_t *out_len);
/* Constant-time verification; CK_ERR_INTEGRITY on mismatch. */
int ck_verify_checksum(const ck_key *key, int32_t cksumtype, int32_t usage, const uint8_t *data,
                       size_t data_len, const uint8_t *cksum, size_t cksum_len);

/* RFC 3961 PRF (RFC 3962 / RFC 8009 definitions). *out_len receives the enctype's PRF length. */
int ck_prf(const ck_key *key, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_size,
           size_t *out_len);

/* Wipes and frees the calling thread's cached derived keys and OpenSSL contexts. Threads that
 * exit get this automatically; long-lived threads may call it when they stop doing crypto. */
void ck_crypto_thread_cleanup(void);

#endif
