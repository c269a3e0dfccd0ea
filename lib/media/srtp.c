/* SRTP contexts on libsrtp2 (see cablekey/media.h). libsrtp2 does the cryptography and keeps
 * the replay window; this file maps its status codes onto CK_ERR_*, checks that what it is given
 * is a bounded RTP packet first (libsrtp2 trusts the header's CSRC and extension lengths more
 * than a network-facing parser should), and counts refusals. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <srtp2/srtp.h>

#include "cablekey/error.h"
#include "cablekey/media.h"
#include "cablekey/util.h"

_Static_assert(CK_SRTP_TRAILER_ROOM >= SRTP_MAX_TRAILER_LEN, "trailer room below libsrtp2's");
_Static_assert(CK_RTP_MAX_PACKET + CK_SRTP_TRAILER_ROOM < INT_MAX, "packet length fits an int");

struct ck_srtp {
    srtp_t session;
    enum ck_srtp_direction dir;
    struct ck_srtp_stats stats;
};

static pthread_once_t srtp_once = PTHREAD_ONCE_INIT;
static srtp_err_status_t srtp_init_status = srtp_err_status_fail;

static void
srtp_init_once(void)
{
    srtp_init_status = srtp_init();
}

static int
map_status(srtp_err_status_t st, const char *what)
{
    switch (st) {
    case srtp_err_status_ok:
        return 0;
    case srtp_err_status_replay_fail:
    case srtp_err_status_replay_old:
        return ck_error_set(CK_ERR_REPLAY, "SRTP %s: replayed or too old for the window", what);
    case srtp_err_status_auth_fail:
        return ck_error_set(CK_ERR_INTEGRITY, "SRTP %s: authentication tag does not verify", what);
    case srtp_err_status_alloc_fail:
        return ck_error_set(CK_ERR_NOMEM, "SRTP %s: libsrtp2 allocation failed", what);
    case srtp_err_status_bad_param:
        return ck_error_set(CK_ERR_DECODE, "SRTP %s: libsrtp2 refused the packet", what);
    default:
        return ck_error_set(CK_ERR_CRYPTO, "SRTP %s: libsrtp2 status %d", what, (int)st);
    }
}

int
ck_srtp_new(enum ck_srtp_profile profile, enum ck_srtp_direction dir, const uint8_t *key,
            size_t key_len, const uint8_t *salt, size_t salt_len, ck_srtp **out)
{
    uint8_t master[CK_SRTP_KEY_LEN + CK_SRTP_AES_CM_SALT_LEN];
    srtp_policy_t pol;
    ck_srtp *s = NULL;
    size_t want_salt;
    srtp_err_status_t st;
    int rc;

    *out = NULL;
    memset(&pol, 0, sizeof(pol));
    switch (profile) {
    case CK_SRTP_AES128_CM_HMAC_SHA1_80:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtcp);
        want_salt = CK_SRTP_AES_CM_SALT_LEN;
        break;
    case CK_SRTP_AEAD_AES_128_GCM:
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtcp);
        want_salt = CK_SRTP_GCM_SALT_LEN;
        break;
    default:
        return ck_error_set(CK_ERR_UNSUPPORTED, "SRTP: unknown profile %d", (int)profile);
    }
    if (dir != CK_SRTP_SEND && dir != CK_SRTP_RECV)
        return ck_error_set(CK_ERR_INVAL, "SRTP: unknown direction %d", (int)dir);
    if (key == NULL || salt == NULL || key_len != CK_SRTP_KEY_LEN || salt_len != want_salt)
        return ck_error_set(CK_ERR_INVAL, "SRTP: master key/salt of %zu/%zu bytes, expected %d/%zu",
                            key_len, salt_len, CK_SRTP_KEY_LEN, want_salt);
    pthread_once(&srtp_once, srtp_init_once);
    if (srtp_init_status != srtp_err_status_ok)
        return ck_error_set(CK_ERR_CRYPTO, "SRTP: srtp_init failed (status %d)",
                            (int)srtp_init_status);

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "SRTP: context");
        goto out;
    }
    s->dir = dir;
    /* libsrtp2 takes the master key and salt concatenated. */
    memcpy(master, key, key_len);
    memcpy(master + key_len, salt, salt_len);
    pol.ssrc.type = dir == CK_SRTP_SEND ? ssrc_any_outbound : ssrc_any_inbound;
    pol.key = master;
    pol.window_size = 0;     /* libsrtp2's default, 128 */
    pol.allow_repeat_tx = 0; /* a sender never reuses a keystream */
    pol.next = NULL;
    st = srtp_create(&s->session, &pol);
    if (st != srtp_err_status_ok) {
        s->session = NULL;
        rc = map_status(st, "create");
        goto out;
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    ck_memzero(master, sizeof(master));
    ck_srtp_free(s);
    return rc;
}

int
ck_srtp_protect(ck_srtp *s, uint8_t *buf, size_t *len, size_t cap)
{
    struct ck_rtp_packet pkt;
    int n, rc;

    if (s == NULL || buf == NULL || len == NULL || s->dir != CK_SRTP_SEND)
        return ck_error_set(CK_ERR_INVAL, "SRTP protect: not a send context");
    rc = ck_rtp_parse(buf, *len, &pkt);
    if (rc != 0)
        return rc;
    if (cap < *len + CK_SRTP_TRAILER_ROOM)
        return ck_error_set(CK_ERR_INVAL, "SRTP protect: buffer of %zu bytes, need %zu", cap,
                            *len + CK_SRTP_TRAILER_ROOM);
    n = (int)*len;
    rc = map_status(srtp_protect(s->session, buf, &n), "protect");
    if (rc != 0)
        return rc;
    *len = (size_t)n;
    s->stats.packets++;
    return 0;
}

int
ck_srtp_unprotect(ck_srtp *s, uint8_t *buf, size_t *len)
{
    struct ck_rtp_packet pkt;
    int n, rc;

    if (s == NULL || buf == NULL || len == NULL || s->dir != CK_SRTP_RECV)
        return ck_error_set(CK_ERR_INVAL, "SRTP unprotect: not a receive context");
    /* The header is in clear; check it is a bounded RTP header before libsrtp2 reads its
     * lengths. The payload is ciphertext, so padding is not judged yet: only the length limit
     * and the header proper. */
    if (*len > CK_RTP_MAX_PACKET + SRTP_MAX_TAG_LEN) {
        s->stats.malformed++;
        return ck_error_set(CK_ERR_LIMIT, "SRTP: packet of %zu bytes", *len);
    }
    if (*len == 0) {
        s->stats.malformed++;
        return ck_error_set(CK_ERR_DECODE, "SRTP: empty packet");
    }
    {
        /* Judge the header with P cleared (the padding is still encrypted) and without the tag
         * (which may take a maximal RTP packet past the limit), then restore the byte. */
        uint8_t b0 = buf[0];

        buf[0] = (uint8_t)(b0 & ~0x20);
        rc = ck_rtp_parse(buf, *len > CK_RTP_MAX_PACKET ? CK_RTP_MAX_PACKET : *len, &pkt);
        buf[0] = b0;
    }
    if (rc != 0) {
        s->stats.malformed++;
        return rc;
    }
    n = (int)*len;
    rc = map_status(srtp_unprotect(s->session, buf, &n), "unprotect");
    if (rc == CK_ERR_REPLAY)
        s->stats.replayed++;
    else if (rc == CK_ERR_INTEGRITY)
        s->stats.bad_auth++;
    else if (rc == CK_ERR_DECODE)
        s->stats.malformed++;
    if (rc != 0)
        return rc;
    *len = (size_t)n;
    s->stats.packets++;
    return 0;
}

void
ck_srtp_get_stats(const ck_srtp *s, struct ck_srtp_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s != NULL)
        *out = s->stats;
}

void
ck_srtp_free(ck_srtp *s)
{
    if (s == NULL)
        return;
    if (s->session != NULL)
        srtp_dealloc(s->session);
    ck_memzero(s, sizeof(*s));
    free(s);
}
