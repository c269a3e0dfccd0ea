/* KMM key derivation and message authentication: cablekey's own definitions (kmm.h header,
 * docs/PROTOCOL.md "Key management"), on OpenSSL's TLS1-PRF and HMAC. */
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"

#define KMM_PRF_MAX_OUT 1024
#define KMM_PRF_MAX_INPUT 1024 /* label || seed */

/* Fetched once: both objects are immutable and shared by every thread. */
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_KDF *tls1_prf;
static EVP_MAC *hmac;

static void
fetch_init(void)
{
    tls1_prf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static int
fetch(void)
{
    if (pthread_once(&fetch_once, fetch_init) != 0 || tls1_prf == NULL || hmac == NULL)
        return ck_error_set(CK_ERR_CRYPTO, "KMM: OpenSSL has no TLS1-PRF or HMAC");
    return 0;
}

/* With a digest other than MD5-SHA1, OpenSSL's TLS1-PRF is the single P_<hash> of RFC 2246 §5
 * over the whole secret (the MD5/SHA-1 halves are only used for "MD5-SHA1"), so digest SHA1 gives
 * exactly P_SHA-1(secret, label || seed). */
int
ck_kmm_prf(const uint8_t *secret, size_t secret_len, const char *label, const uint8_t *seed,
           size_t seed_len, uint8_t *out, size_t out_len)
{
    uint8_t input[KMM_PRF_MAX_INPUT];
    size_t label_len;
    EVP_KDF_CTX *ctx = NULL;
    OSSL_PARAM params[4];
    int rc;

    if (secret == NULL || secret_len == 0 || label == NULL || out == NULL || out_len == 0 ||
        out_len > KMM_PRF_MAX_OUT || (seed == NULL && seed_len > 0))
        return ck_error_set(CK_ERR_INVAL, "KMM PRF: bad arguments");
    label_len = strlen(label);
    if (label_len == 0 || label_len > sizeof(input) || seed_len > sizeof(input) - label_len)
        return ck_error_set(CK_ERR_INVAL, "KMM PRF: label and seed over %d bytes",
                            KMM_PRF_MAX_INPUT);
    if ((rc = fetch()) != 0)
        return rc;
    memcpy(input, label, label_len);
    if (seed_len > 0)
        memcpy(input + label_len, seed, seed_len);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA1", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, (void *)secret,
                                                  secret_len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, input,
                                                  label_len + seed_len);
    params[3] = OSSL_PARAM_construct_end();
    if ((ctx = EVP_KDF_CTX_new(tls1_prf)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "KMM PRF: context");
        goto out;
    }
    if (EVP_KDF_derive(ctx, out, out_len, params) != 1) {
        OPENSSL_cleanse(out, out_len);
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "KMM PRF");
        goto out;
    }
    rc = 0;
out:
    EVP_KDF_CTX_free(ctx);
    OPENSSL_cleanse(input, sizeof(input));
    return rc;
}

static const char *
hmac_label(enum ck_kmm_hmac_use use)
{
    switch (use) {
    case CK_KMM_HMAC_AP_REQ: return "cablekey kmm ap-request hmac";
    case CK_KMM_HMAC_AP_REP: return "cablekey kmm ap-reply hmac";
    case CK_KMM_HMAC_SP_RECOVERED: return "cablekey kmm sp-recovered hmac";
    case CK_KMM_HMAC_REKEY: return "cablekey kmm rekey hmac";
    default: return NULL;
    }
}

int
ck_kmm_hmac_key(enum ck_kmm_hmac_use use, const ck_key *from, uint8_t out[CK_KMM_HMAC_KEY_LEN])
{
    const char *label = hmac_label(use);

    if (label == NULL || from == NULL || from->length == 0 || from->length > CK_KEY_MAX)
        return ck_error_set(CK_ERR_INVAL, "KMM HMAC key: bad use or key");
    return ck_kmm_prf(from->contents, from->length, label, NULL, 0, out, CK_KMM_HMAC_KEY_LEN);
}

/* HMAC-SHA-1 of the concatenation of two buffers (b may be empty). */
static int
hmac_sha1(const uint8_t key[CK_KMM_HMAC_KEY_LEN], const uint8_t *a, size_t alen,
          const uint8_t *b, size_t blen, uint8_t mac[CK_KMM_HMAC_LEN])
{
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    size_t n = 0;
    int rc;

    if ((rc = fetch()) != 0)
        return rc;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA1", 0);
    params[1] = OSSL_PARAM_construct_end();
    if ((ctx = EVP_MAC_CTX_new(hmac)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KMM HMAC: context");
    if (EVP_MAC_init(ctx, key, CK_KMM_HMAC_KEY_LEN, params) != 1 ||
        EVP_MAC_update(ctx, a, alen) != 1 || (blen > 0 && EVP_MAC_update(ctx, b, blen) != 1) ||
        EVP_MAC_final(ctx, mac, &n, CK_KMM_HMAC_LEN) != 1 || n != CK_KMM_HMAC_LEN)
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "KMM HMAC-SHA-1");
    EVP_MAC_CTX_free(ctx);
    return rc;
}

int
ck_kmm_seal(uint8_t *msg, size_t len, const uint8_t key[CK_KMM_HMAC_KEY_LEN])
{
    if (msg == NULL || key == NULL || len < 3 + CK_KMM_HMAC_LEN)
        return ck_error_set(CK_ERR_INVAL, "KMM seal: message too short");
    return hmac_sha1(key, msg, len - CK_KMM_HMAC_LEN, NULL, 0, msg + len - CK_KMM_HMAC_LEN);
}

int
ck_kmm_verify(const uint8_t *buf, const struct ck_kmm_msg *m,
              const uint8_t key[CK_KMM_HMAC_KEY_LEN])
{
    uint8_t mac[CK_KMM_HMAC_LEN];
    int rc;

    if (buf == NULL || m == NULL || key == NULL)
        return ck_error_set(CK_ERR_INVAL, "KMM verify: missing argument");
    if (m->type != CK_KMM_AP_REQ && m->type != CK_KMM_AP_REP && m->type != CK_KMM_REKEY)
        return ck_error_set(CK_ERR_INVAL, "KMM verify: %s has no HMAC over its own bytes",
                            ck_kmm_type_name(m->type));
    if (m->hmac_offset < 3)
        return ck_error_set(CK_ERR_INVAL, "KMM verify: message was not decoded");
    if ((rc = hmac_sha1(key, buf, m->hmac_offset, NULL, 0, mac)) != 0)
        return rc;
    if (!ck_ct_equal(mac, m->hmac, CK_KMM_HMAC_LEN))
        rc = ck_error_set(CK_ERR_INTEGRITY, "KMM %s: HMAC does not verify",
                          ck_kmm_type_name(m->type));
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

int
ck_kmm_sp_recovered_seal(uint8_t msg[3 + CK_KMM_HMAC_LEN],
                         const uint8_t ap_rep_hmac[CK_KMM_HMAC_LEN],
                         const uint8_t key[CK_KMM_HMAC_KEY_LEN])
{
    if (msg == NULL || ap_rep_hmac == NULL || key == NULL)
        return ck_error_set(CK_ERR_INVAL, "KMM SP Recovered seal: missing argument");
    return hmac_sha1(key, msg, 3, ap_rep_hmac, CK_KMM_HMAC_LEN, msg + 3);
}

int
ck_kmm_sp_recovered_verify(const uint8_t *buf, size_t len,
                           const uint8_t ap_rep_hmac[CK_KMM_HMAC_LEN],
                           const uint8_t key[CK_KMM_HMAC_KEY_LEN])
{
    uint8_t mac[CK_KMM_HMAC_LEN];
    int rc;

    if (buf == NULL || ap_rep_hmac == NULL || key == NULL)
        return ck_error_set(CK_ERR_INVAL, "KMM SP Recovered verify: missing argument");
    if (len != 3 + CK_KMM_HMAC_LEN || buf[0] != CK_KMM_SP_RECOVERED)
        return ck_error_set(CK_ERR_DECODE, "KMM: not a %d-byte Security Parameter Recovered",
                            3 + CK_KMM_HMAC_LEN);
    if ((rc = hmac_sha1(key, buf, 3, ap_rep_hmac, CK_KMM_HMAC_LEN, mac)) != 0)
        return rc;
    if (!ck_ct_equal(mac, buf + 3, CK_KMM_HMAC_LEN))
        rc = ck_error_set(CK_ERR_INTEGRITY, "KMM Security Parameter Recovered: HMAC does not "
                                            "verify");
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * SA keys.
 */

static void
put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int
check_subkey(const ck_key *k)
{
    if (k == NULL || k->length == 0 || k->length > CK_KEY_MAX)
        return ck_error_set(CK_ERR_INVAL, "KMM derive: no sub-key");
    return 0;
}

int
ck_kmm_derive_ipsec(const ck_key *subkey, struct ck_kmm_suite suite, uint32_t spi_c,
                    uint32_t spi_s, struct ck_kmm_keys *out)
{
    uint8_t seed[8], block[4 * CK_KMM_MAX_KEY];
    size_t e = 0, a = 0, off = 0;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "KMM derive: no output");
    memset(out, 0, sizeof(*out));
    if ((rc = check_subkey(subkey)) != 0 ||
        (rc = ck_kmm_suite_key_lengths(CK_KMM_DOI_IPSEC, suite, &e, &a)) != 0)
        return rc;
    put_be32(seed, spi_c);
    put_be32(seed + 4, spi_s);
    if ((rc = ck_kmm_prf(subkey->contents, subkey->length, "cablekey kmm ipsec keys", seed,
                         sizeof(seed), block, 2 * (e + a))) != 0)
        goto out;
    out->doi = CK_KMM_DOI_IPSEC;
    out->suite = suite;
    out->enc_len = e;
    out->auth_len = a;
    memcpy(out->enc_c2s, block + off, e);
    off += e;
    memcpy(out->auth_c2s, block + off, a);
    off += a;
    memcpy(out->enc_s2c, block + off, e);
    off += e;
    memcpy(out->auth_s2c, block + off, a);
out:
    OPENSSL_cleanse(block, sizeof(block));
    return rc;
}

int
ck_kmm_derive_snmpv3(const ck_key *subkey, struct ck_kmm_suite suite,
                     const struct ck_kmm_snmp_asd *agent, struct ck_kmm_keys *out)
{
    uint8_t block[2 * CK_KMM_MAX_KEY];
    size_t e = 0, a = 0;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "KMM derive: no output");
    memset(out, 0, sizeof(*out));
    if ((rc = check_subkey(subkey)) != 0 ||
        (rc = ck_kmm_suite_key_lengths(CK_KMM_DOI_SNMPV3, suite, &e, &a)) != 0)
        return rc;
    if (agent == NULL || agent->engine_id_len == 0 || agent->engine_id_len > CK_KMM_MAX_ENGINE_ID)
        return ck_error_set(CK_ERR_INVAL, "KMM derive: SNMPv3 engine ID of 1..%d bytes needed",
                            CK_KMM_MAX_ENGINE_ID);
    if ((rc = ck_kmm_prf(subkey->contents, subkey->length, "cablekey kmm snmpv3 keys",
                         agent->engine_id, agent->engine_id_len, block, a + e)) != 0)
        goto out;
    out->doi = CK_KMM_DOI_SNMPV3;
    out->suite = suite;
    out->enc_len = e;
    out->auth_len = a;
    memcpy(out->auth_c2s, block, a);
    memcpy(out->enc_c2s, block + a, e);
out:
    OPENSSL_cleanse(block, sizeof(block));
    return rc;
}

void
ck_kmm_keys_clear(struct ck_kmm_keys *k)
{
    if (k != NULL)
        OPENSSL_cleanse(k, sizeof(*k));
}
