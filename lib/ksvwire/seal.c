/* The keying server's envelope, session sealing, HELLO_ERR and NUDGE (contract:
 * cablekey/ksv_wire.h; layout: docs/PROTOCOL.md, "Keying server").
 *
 * Sealing is AES-256-GCM with a key per direction from HKDF-SHA-256 over the AP-REP sub-key. The
 * nonce is the direction and the 64-bit sequence number, so it never repeats under one key while
 * tx_seq only grows (it refuses to wrap). The replay window is checked before the tag (cheap
 * rejection of old datagrams) and advanced only once the tag verified, so a forgery cannot move
 * it. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "cablekey/error.h"
#include "cablekey/ksv_wire.h"
#include "cablekey/util.h"
#include "ksvwire/wire_int.h"

#define SEAL_HDR (CK_KSV_ENV_LEN + 4u + 8u) /* envelope | key_id | seq: the AAD */
#define TAG_LEN 16u
#define WINDOW 64u

static const char hkdf_salt[] = "cablekey ksv v1";

/* ---- envelope ---------------------------------------------------------------------------- */

void
ck_ksvw_put_env(uint8_t *p, enum ck_ksv_kind kind)
{
    p[0] = 'C';
    p[1] = 'K';
    p[2] = 'S';
    p[3] = 'V';
    p[4] = CK_KSV_WIRE_VERSION;
    p[5] = (uint8_t)kind;
    p[6] = 0;
    p[7] = 0;
}

int
ck_ksv_wire_kind(const uint8_t *buf, size_t len, enum ck_ksv_kind *kind)
{
    if (buf == NULL || kind == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV envelope: missing argument");
    if (len < CK_KSV_ENV_LEN)
        return ck_error_set(CK_ERR_DECODE, "KSV envelope: %zu bytes", len);
    if (len > CK_KSV_MAX_DGRAM)
        return ck_error_set(CK_ERR_LIMIT, "KSV datagram of %zu bytes", len);
    if (memcmp(buf, "CKSV", 4) != 0)
        return ck_error_set(CK_ERR_DECODE, "KSV envelope: bad magic");
    if (buf[4] != CK_KSV_WIRE_VERSION)
        return ck_error_set(CK_ERR_DECODE, "KSV envelope: version %u", buf[4]);
    if (buf[5] < CK_KSV_K_HELLO || buf[5] > CK_KSV_K_REKEY)
        return ck_error_set(CK_ERR_DECODE, "KSV envelope: kind %u", buf[5]);
    if (buf[6] != 0 || buf[7] != 0)
        return ck_error_set(CK_ERR_DECODE, "KSV envelope: reserved bytes set");
    *kind = (enum ck_ksv_kind)buf[5];
    return 0;
}

int
ck_ksvw_expect(const uint8_t *buf, size_t len, enum ck_ksv_kind want)
{
    enum ck_ksv_kind k;
    int ret = ck_ksv_wire_kind(buf, len, &k);

    if (ret != 0)
        return ret;
    if (k != want)
        return ck_error_set(CK_ERR_DECODE, "KSV datagram: kind %u where %u was expected", k, want);
    return 0;
}

/* Topology names (ksv_topology.h): [A-Za-z0-9][A-Za-z0-9._-]*, 1..63 bytes. The node name
 * reaches the KSV's logs and the KSV name the node's, so nothing else is let through. */
bool
ck_ksvw_name_ok(const uint8_t *s, size_t n)
{
    if (n == 0 || n > CK_KSV_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

/* ---- session keys ------------------------------------------------------------------------ */

static int
hkdf(const uint8_t *ikm, size_t ikm_len, const char *label, uint32_t key_id, uint8_t out[32])
{
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *ctx = NULL;
    OSSL_PARAM params[5];
    uint8_t info[16];
    size_t label_len = strlen(label);
    int ret;

    memcpy(info, label, label_len);
    ck_put_be32(info + label_len, key_id);
    if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL || (ctx = EVP_KDF_CTX_new(kdf)) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "KSV session keys: HKDF unavailable");
        goto out;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)hkdf_salt,
                                                  sizeof(hkdf_salt) - 1);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, label_len + 4);
    params[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(ctx, out, 32, params) <= 0) {
        ck_memzero(out, 32);
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "KSV session keys: HKDF failed");
        goto out;
    }
    ret = 0;
out:
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ret;
}

int
ck_ksv_seal_init(struct ck_ksv_seal *s, const ck_key *ap_rep_subkey, uint32_t key_id,
                 bool ksv_side)
{
    uint8_t to_node[32], to_ksv[32];
    int ret;

    if (s == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV seal: missing argument");
    ck_memzero(s, sizeof(*s));
    if (ap_rep_subkey == NULL || ap_rep_subkey->length < 16 ||
        ap_rep_subkey->length > CK_KEY_MAX || key_id == 0)
        return ck_error_set(CK_ERR_INVAL, "KSV seal: needs a sub-key of 16+ bytes and a key id");
    if ((ret = hkdf(ap_rep_subkey->contents, ap_rep_subkey->length, "ksv->node", key_id,
                    to_node)) != 0 ||
        (ret = hkdf(ap_rep_subkey->contents, ap_rep_subkey->length, "node->ksv", key_id,
                    to_ksv)) != 0)
        goto out;
    s->key_id = key_id;
    memcpy(s->tx_key, ksv_side ? to_node : to_ksv, 32);
    memcpy(s->rx_key, ksv_side ? to_ksv : to_node, 32);
    s->tx_dir = ksv_side ? CK_KSV_SEAL_TO_NODE : CK_KSV_SEAL_TO_KSV;
    s->rx_dir = ksv_side ? CK_KSV_SEAL_TO_KSV : CK_KSV_SEAL_TO_NODE;
out:
    ck_memzero(to_node, sizeof(to_node));
    ck_memzero(to_ksv, sizeof(to_ksv));
    return ret;
}

void
ck_ksv_seal_clear(struct ck_ksv_seal *s)
{
    if (s != NULL)
        ck_memzero(s, sizeof(*s));
}

/* ---- AES-256-GCM ------------------------------------------------------------------------- */

static void
make_nonce(uint8_t nonce[12], uint32_t dir, uint64_t seq)
{
    ck_put_be32(nonce, dir);
    ck_put_be32(nonce + 4, (uint32_t)(seq >> 32));
    ck_put_be32(nonce + 8, (uint32_t)seq);
}

/* in -> out (same length); enc: writes the tag to tag, else checks it. */
static int
gcm(bool enc, const uint8_t key[32], uint32_t dir, uint64_t seq, const uint8_t *aad,
    const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[TAG_LEN])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t nonce[12];
    int n = 0, ret;

    make_nonce(nonce, dir, seq);
    if (ctx == NULL || len > (size_t)INT32_MAX) {
        ret = ck_error_set(CK_ERR_NOMEM, "KSV seal: cipher context");
        goto out;
    }
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &n, aad, SEAL_HDR) != 1 ||
        (len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1) ||
        (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "KSV seal: AES-256-GCM");
        goto out;
    }
    if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1) {
        /* Decryption only: the tag did not verify. */
        ret = enc ? ck_error_set_ssl(CK_ERR_CRYPTO, "KSV seal: AES-256-GCM final")
                  : ck_error_set(CK_ERR_INTEGRITY, "KSV sealed message: tag does not verify");
        goto out;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "KSV seal: GCM tag");
        goto out;
    }
    ret = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return ret;
}

int
ck_ksv_seal_msg(struct ck_ksv_seal *s, const struct ck_ksv_msg *m, uint8_t **out,
                size_t *out_len)
{
    uint8_t *plain = NULL, *buf = NULL;
    size_t plain_len = 0, len = 0;
    uint64_t seq;
    int ret;

    if (out == NULL || out_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV seal: missing argument");
    *out = NULL;
    *out_len = 0;
    if (s == NULL || m == NULL || s->key_id == 0)
        return ck_error_set(CK_ERR_INVAL, "KSV seal: no session");
    if (m->key_id != 0 && m->key_id != s->key_id)
        return ck_error_set(CK_ERR_INVAL, "KSV seal: message for key id 0x%08x, session 0x%08x",
                            m->key_id, s->key_id);
    if (s->tx_seq == UINT64_MAX)
        return ck_error_set(CK_ERR_LIMIT, "KSV seal: sequence numbers exhausted");
    if ((ret = ck_ksv_msg_encode(m, &plain, &plain_len)) != 0)
        return ret;
    /* The message's key id is the session's, whatever the caller left in it. */
    ck_put_be32(plain + 8, s->key_id);
    seq = s->tx_seq + 1;
    len = SEAL_HDR + plain_len + TAG_LEN;
    if ((buf = malloc(len)) == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "KSV seal");
        goto out;
    }
    ck_ksvw_put_env(buf, CK_KSV_K_SEALED);
    ck_put_be32(buf + 8, s->key_id);
    ck_put_be32(buf + 12, (uint32_t)(seq >> 32));
    ck_put_be32(buf + 16, (uint32_t)seq);
    if ((ret = gcm(true, s->tx_key, s->tx_dir, seq, buf, plain, plain_len, buf + SEAL_HDR,
                   buf + SEAL_HDR + plain_len)) != 0)
        goto out;
    s->tx_seq = seq;
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    ck_free_secret(plain, plain_len);
    ck_free_secret(buf, len);
    return ret;
}

/* Parses the fixed part of a SEALED datagram. */
static int
sealed_header(const uint8_t *buf, size_t len, uint32_t *key_id, uint64_t *seq)
{
    int ret = ck_ksvw_expect(buf, len, CK_KSV_K_SEALED);

    if (ret != 0)
        return ret;
    if (len < SEAL_HDR + CK_KSV_HDR_LEN + TAG_LEN)
        return ck_error_set(CK_ERR_DECODE, "KSV sealed message: %zu bytes", len);
    if (len > SEAL_HDR + CK_KSV_MAX_MSG + TAG_LEN)
        return ck_error_set(CK_ERR_LIMIT, "KSV sealed message: %zu bytes", len);
    *key_id = ck_get_be32(buf + 8);
    *seq = (uint64_t)ck_get_be32(buf + 12) << 32 | ck_get_be32(buf + 16);
    if (*key_id == 0)
        return ck_error_set(CK_ERR_DECODE, "KSV sealed message: key id 0");
    if (*seq == 0)
        return ck_error_set(CK_ERR_DECODE, "KSV sealed message: sequence number 0");
    return 0;
}

int
ck_ksv_sealed_key_id(const uint8_t *buf, size_t len, uint32_t *key_id)
{
    uint64_t seq;

    if (key_id == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV sealed message: missing argument");
    return sealed_header(buf, len, key_id, &seq);
}

/* 64-wide window over 64-bit sequence numbers: rx_top the highest accepted, bit i of rx_window
 * set when rx_top - i was accepted. */
int
ck_ksvw_replay_check(const struct ck_ksv_seal *s, uint64_t seq)
{
    uint64_t diff;

    if (seq > s->rx_top)
        return 0;
    diff = s->rx_top - seq;
    if (diff >= WINDOW)
        return ck_error_set(CK_ERR_REPLAY, "KSV sealed message: sequence number %llu is "
                            "older than the window (top %llu)", (unsigned long long)seq,
                            (unsigned long long)s->rx_top);
    if (s->rx_window & ((uint64_t)1 << diff))
        return ck_error_set(CK_ERR_REPLAY, "KSV sealed message: sequence number %llu seen",
                            (unsigned long long)seq);
    return 0;
}

void
ck_ksvw_replay_update(struct ck_ksv_seal *s, uint64_t seq)
{
    if (seq > s->rx_top) {
        uint64_t shift = seq - s->rx_top;
        s->rx_window = shift >= WINDOW ? 0 : s->rx_window << shift;
        s->rx_window |= 1;
        s->rx_top = seq;
    } else {
        s->rx_window |= (uint64_t)1 << (s->rx_top - seq);
    }
}

int
ck_ksv_open_msg(struct ck_ksv_seal *s, const uint8_t *buf, size_t len, struct ck_ksv_msg **out)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    uint32_t key_id = 0;
    uint64_t seq = 0;
    struct ck_ksv_msg *m = NULL;
    int ret;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV open: missing argument");
    *out = NULL;
    if (s == NULL || s->key_id == 0)
        return ck_error_set(CK_ERR_INVAL, "KSV open: no session");
    if ((ret = sealed_header(buf, len, &key_id, &seq)) != 0)
        return ret;
    if (key_id != s->key_id)
        return ck_error_set(CK_ERR_INVAL, "KSV open: key id 0x%08x is not this session's "
                            "(0x%08x)", key_id, s->key_id);
    if ((ret = ck_ksvw_replay_check(s, seq)) != 0)
        return ret;
    plain_len = len - SEAL_HDR - TAG_LEN;
    if ((plain = malloc(plain_len)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KSV open");
    /* gcm() reads the expected tag from the datagram; it does not write through it. */
    if ((ret = gcm(false, s->rx_key, s->rx_dir, seq, buf, buf + SEAL_HDR, plain_len, plain,
                   (uint8_t *)(uintptr_t)(buf + SEAL_HDR + plain_len))) != 0)
        goto out;
    /* Authentic from here: the sequence number is spent even if the content is refused, so a
     * replay of a bad message is a REPLAY, not a second MALFORMED_PACKET. */
    ck_ksvw_replay_update(s, seq);
    if ((ret = ck_ksv_msg_parse(plain, plain_len, &m)) != 0) {
        char why[200];
        ck_strlcpy(why, ck_error_context(), sizeof(why));
        ret = ck_error_set(CK_ERR_PROTO, "KSV sealed message: content refused (%s)", why);
        goto out;
    }
    if (m->key_id != s->key_id) {
        ret = ck_error_set(CK_ERR_PROTO, "KSV sealed message: inner key id 0x%08x", m->key_id);
        goto out;
    }
    *out = m;
    m = NULL;
out:
    ck_ksv_msg_free(m);
    ck_free_secret(plain, plain_len);
    return ret;
}

/* ---- HELLO_ERR --------------------------------------------------------------------------- */

static bool
text_ok(const uint8_t *t, size_t n)
{
    if (n > CK_KSV_MAX_TEXT)
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] < 0x20 || t[i] > 0x7e)
            return false;
    return true;
}

int
ck_ksv_hello_err_build(uint32_t node_nonce, uint16_t code, const char *text, uint8_t **out,
                       size_t *out_len)
{
    size_t n = text != NULL ? strnlen(text, CK_KSV_MAX_TEXT + 1) : 0, len;
    uint8_t *buf;

    if (out == NULL || out_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO_ERR: missing argument");
    *out = NULL;
    *out_len = 0;
    if (code < CK_KSV_HERR_AUTH || code > CK_KSV_HERR_BUSY)
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO_ERR: code %u", code);
    if (!text_ok((const uint8_t *)text, n))
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO_ERR: text over %u bytes or not printable "
                            "ASCII", CK_KSV_MAX_TEXT);
    len = CK_KSV_ENV_LEN + 4 + 2 + 2 + n;
    if ((buf = malloc(len)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KSV HELLO_ERR");
    ck_ksvw_put_env(buf, CK_KSV_K_HELLO_ERR);
    ck_put_be32(buf + 8, node_nonce);
    buf[12] = (uint8_t)(code >> 8);
    buf[13] = (uint8_t)code;
    buf[14] = (uint8_t)(n >> 8);
    buf[15] = (uint8_t)n;
    if (n > 0)
        memcpy(buf + 16, text, n);
    *out = buf;
    *out_len = len;
    return 0;
}

int
ck_ksv_hello_err_parse(const uint8_t *buf, size_t len, uint32_t *node_nonce, uint16_t *code,
                       char *text)
{
    size_t n;
    uint16_t c;
    int ret;

    if (node_nonce == NULL || code == NULL || text == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV HELLO_ERR: missing argument");
    text[0] = '\0';
    if ((ret = ck_ksvw_expect(buf, len, CK_KSV_K_HELLO_ERR)) != 0)
        return ret;
    if (len < CK_KSV_ENV_LEN + 8)
        return ck_error_set(CK_ERR_DECODE, "KSV HELLO_ERR: %zu bytes", len);
    c = (uint16_t)(buf[12] << 8 | buf[13]);
    n = (size_t)buf[14] << 8 | buf[15];
    if (c < CK_KSV_HERR_AUTH || c > CK_KSV_HERR_BUSY)
        return ck_error_set(CK_ERR_DECODE, "KSV HELLO_ERR: code %u", c);
    if (n > CK_KSV_MAX_TEXT)
        return ck_error_set(CK_ERR_LIMIT, "KSV HELLO_ERR: text of %zu bytes", n);
    if (len != CK_KSV_ENV_LEN + 8 + n)
        return ck_error_set(CK_ERR_DECODE, "KSV HELLO_ERR: text length %zu in %zu bytes", n,
                            len);
    if (!text_ok(buf + 16, n))
        return ck_error_set(CK_ERR_DECODE, "KSV HELLO_ERR: text is not printable ASCII");
    memcpy(text, buf + 16, n);
    text[n] = '\0';
    *node_nonce = ck_get_be32(buf + 8);
    *code = c;
    return 0;
}

/* ---- NUDGE ------------------------------------------------------------------------------- */

int
ck_ksv_nudge_build(uint64_t ksv_time_us, const char *ksv_name, uint8_t **out, size_t *out_len)
{
    size_t n = ksv_name != NULL ? strnlen(ksv_name, CK_KSV_MAX_NAME + 1) : 0, len;
    uint8_t *buf;

    if (out == NULL || out_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV NUDGE: missing argument");
    *out = NULL;
    *out_len = 0;
    if (!ck_ksvw_name_ok((const uint8_t *)ksv_name, n))
        return ck_error_set(CK_ERR_INVAL, "KSV NUDGE: bad KSV name");
    len = CK_KSV_ENV_LEN + 8 + 1 + n;
    if ((buf = malloc(len)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KSV NUDGE");
    ck_ksvw_put_env(buf, CK_KSV_K_NUDGE);
    ck_put_be32(buf + 8, (uint32_t)(ksv_time_us >> 32));
    ck_put_be32(buf + 12, (uint32_t)ksv_time_us);
    buf[16] = (uint8_t)n;
    memcpy(buf + 17, ksv_name, n);
    *out = buf;
    *out_len = len;
    return 0;
}

int
ck_ksv_nudge_parse(const uint8_t *buf, size_t len, uint64_t *ksv_time_us,
                   char name[CK_KSV_MAX_NAME + 1])
{
    size_t n;
    int ret;

    if (ksv_time_us == NULL || name == NULL)
        return ck_error_set(CK_ERR_INVAL, "KSV NUDGE: missing argument");
    name[0] = '\0';
    if ((ret = ck_ksvw_expect(buf, len, CK_KSV_K_NUDGE)) != 0)
        return ret;
    if (len < CK_KSV_ENV_LEN + 9)
        return ck_error_set(CK_ERR_DECODE, "KSV NUDGE: %zu bytes", len);
    n = buf[16];
    if (len != CK_KSV_ENV_LEN + 9 + n)
        return ck_error_set(CK_ERR_DECODE, "KSV NUDGE: name length %zu in %zu bytes", n, len);
    if (!ck_ksvw_name_ok(buf + 17, n))
        return ck_error_set(CK_ERR_DECODE, "KSV NUDGE: bad KSV name");
    memcpy(name, buf + 17, n);
    name[n] = '\0';
    *ksv_time_us = (uint64_t)ck_get_be32(buf + 8) << 32 | ck_get_be32(buf + 12);
    return 0;
}
