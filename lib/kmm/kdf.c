/* KMM key derivation and message authentication: cablekey's own definitions (kmm.h header,
 * docs/PROTOCOL.md "Key management"), on OpenSSL's HMAC-SHA-1. */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"

#define KMM_PRF_MAX_OUT 1024
#define KMM_PRF_MAX_INPUT 1024 /* label || seed */
#define SHA1_LEN 20

/* Fetched once and immutable afterwards: shared by every thread. */
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static bool fetch_ok;
static EVP_MAC *hmac;
static pthread_key_t thread_key;

/* The thread's HMAC-SHA-1 context, digest bound once, re-keyed by every call. A context per call
 * (and OpenSSL's TLS1-PRF, which builds its HMAC contexts and fetches SHA-1 by name on every
 * derive) cost 30 k instructions for a 20-byte PRF output, most of an AP exchange's key work.
 * Between calls it holds the last key's HMAC state, like lib/crypto's keyed contexts; it is
 * freed (and so cleansed) when the thread exits, through thread_key. A forked child gets its own
 * copy of the forking thread's context and nothing else: no state is shared between threads or
 * processes. */
static _Thread_local EVP_MAC_CTX *thread_mac;

static void
thread_mac_free(void *p)
{
    if (thread_mac == p)
        thread_mac = NULL;
    EVP_MAC_CTX_free(p);
}

static void
fetch_init(void)
{
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    fetch_ok = hmac != NULL && pthread_key_create(&thread_key, thread_mac_free) == 0;
}

/* This thread's context, created on first use. */
static int
get_mac(EVP_MAC_CTX **out)
{
    OSSL_PARAM params[2];
    EVP_MAC_CTX *ctx;

    if (thread_mac != NULL) {
        *out = thread_mac;
        return 0;
    }
    if (pthread_once(&fetch_once, fetch_init) != 0 || !fetch_ok)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "KMM: OpenSSL has no HMAC");
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA1", 0);
    params[1] = OSSL_PARAM_construct_end();
    if ((ctx = EVP_MAC_CTX_new(hmac)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KMM HMAC: context");
    if (EVP_MAC_CTX_set_params(ctx, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return ck_error_set_ssl(CK_ERR_CRYPTO, "KMM: OpenSSL has no HMAC-SHA-1");
    }
    if (pthread_setspecific(thread_key, ctx) != 0) {
        EVP_MAC_CTX_free(ctx);
        return ck_error_set(CK_ERR_NOMEM, "KMM: thread key");
    }
    thread_mac = ctx;
    *out = ctx;
    return 0;
}

/* One HMAC over the concatenation of up to three buffers (NULL/0 for unused ones), under the key
 * the context holds. restart: begin again from the keyed state (the ipad/opad hashes kept by
 * EVP_MAC_init(key)), which is cheaper than EVP_MAC_CTX_dup of the keyed context (4 k against
 * 7.5 k instructions per 20-byte HMAC, bench/kmm_prf_bench.c); a context just keyed needs none. */
static int
mac3(EVP_MAC_CTX *ctx, bool restart, const uint8_t *a, size_t alen, const uint8_t *b,
     size_t blen, const uint8_t *c, size_t clen, uint8_t out[SHA1_LEN])
{
    size_t n = 0;

    if ((restart && EVP_MAC_init(ctx, NULL, 0, NULL) != 1) ||
        (alen > 0 && EVP_MAC_update(ctx, a, alen) != 1) ||
        (blen > 0 && EVP_MAC_update(ctx, b, blen) != 1) ||
        (clen > 0 && EVP_MAC_update(ctx, c, clen) != 1) ||
        EVP_MAC_final(ctx, out, &n, SHA1_LEN) != 1 || n != SHA1_LEN)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "KMM HMAC-SHA-1");
    return 0;
}

/* P_SHA-1(secret, label || seed) of RFC 2246 §5, the same bytes as OpenSSL's TLS1-PRF with digest
 * SHA1 (tests/unit/test_kmm_kdf.c compares the two over random inputs):
 *   A(0) = label || seed, A(i) = HMAC(secret, A(i-1)),
 *   output = HMAC(secret, A(1) || label || seed) || HMAC(secret, A(2) || label || seed) || ...
 * truncated to out_len. The secret is set once; every HMAC restarts from its keyed state. */
int
ck_kmm_prf(const uint8_t *secret, size_t secret_len, const char *label, const uint8_t *seed,
           size_t seed_len, uint8_t *out, size_t out_len)
{
    const uint8_t *lab = (const uint8_t *)label;
    uint8_t a[SHA1_LEN], block[SHA1_LEN];
    size_t label_len, done = 0;
    EVP_MAC_CTX *ctx = NULL;
    int rc;

    if (secret == NULL || secret_len == 0 || label == NULL || out == NULL || out_len == 0 ||
        out_len > KMM_PRF_MAX_OUT || (seed == NULL && seed_len > 0))
        return ck_error_set(CK_ERR_INVAL, "KMM PRF: bad arguments");
    label_len = strlen(label);
    if (label_len == 0 || label_len > KMM_PRF_MAX_INPUT ||
        seed_len > KMM_PRF_MAX_INPUT - label_len)
        return ck_error_set(CK_ERR_INVAL, "KMM PRF: label and seed over %d bytes",
                            KMM_PRF_MAX_INPUT);
    if ((rc = get_mac(&ctx)) != 0)
        return rc;
    if (EVP_MAC_init(ctx, secret, secret_len, NULL) != 1) {
        rc = ck_error_set_ssl(CK_ERR_CRYPTO, "KMM PRF: HMAC key");
        goto out;
    }
    /* A(1); the context was just keyed, so no restart. */
    if ((rc = mac3(ctx, false, lab, label_len, seed, seed_len, NULL, 0, a)) != 0)
        goto out;
    /* out_len <= KMM_PRF_MAX_OUT bounds the loop to 52 blocks. */
    for (;;) {
        size_t take = out_len - done < SHA1_LEN ? out_len - done : SHA1_LEN;

        if ((rc = mac3(ctx, true, a, SHA1_LEN, lab, label_len, seed, seed_len, block)) != 0)
            goto out;
        memcpy(out + done, block, take);
        done += take;
        if (done == out_len)
            break;
        if ((rc = mac3(ctx, true, a, SHA1_LEN, NULL, 0, NULL, 0, a)) != 0)
            goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        OPENSSL_cleanse(out, out_len);
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(block, sizeof(block));
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

/* HMAC-SHA-1 of the concatenation of two buffers (b may be empty), on the thread's context. */
static int
hmac_sha1(const uint8_t key[CK_KMM_HMAC_KEY_LEN], const uint8_t *a, size_t alen,
          const uint8_t *b, size_t blen, uint8_t mac[CK_KMM_HMAC_LEN])
{
    EVP_MAC_CTX *ctx = NULL;
    int rc;

    if ((rc = get_mac(&ctx)) != 0)
        return rc;
    if (EVP_MAC_init(ctx, key, CK_KMM_HMAC_KEY_LEN, NULL) != 1)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "KMM HMAC-SHA-1: key");
    return mac3(ctx, false, a, alen, b, blen, NULL, 0, mac);
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
    ck_put_be32(seed, spi_c);
    ck_put_be32(seed + 4, spi_s);
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
