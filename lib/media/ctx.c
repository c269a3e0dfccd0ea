/* One direction of a call's media, whatever the mode (see cablekey/media.h): the keys come from
 * the call sub-key (kmm.h, docs/PROTOCOL.md "Call keys" and "Media"), and this file only picks
 * the half of them that belongs to this end's direction and dispatches. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/media.h"
#include "cablekey/util.h"

_Static_assert(CK_CALL_3DES_KEY_LEN == CK_RTP3DES_KEY_LEN, "3DES key length");
_Static_assert(CK_CALL_3DES_MAC_KEY_LEN == CK_RTP3DES_MAC_KEY_LEN, "3DES MAC key length");

struct ck_media_ctx {
    enum ck_media_mode mode;
    enum ck_srtp_direction dir;
    ck_srtp *srtp;                /* SRTP_* */
    ck_rtp3des *des;              /* RTP_3DES* */
    struct ck_srtp_stats stats;   /* RTP: counted here */
};

static const struct {
    enum ck_media_mode mode;
    const char *name;
} mode_names[] = {
    {CK_MEDIA_RTP, "rtp"},
    {CK_MEDIA_SRTP_AES_CM, "srtp-aes-cm"},
    {CK_MEDIA_SRTP_GCM, "srtp-gcm"},
    {CK_MEDIA_RTP_3DES, "rtp-3des"},
    {CK_MEDIA_RTP_3DES_MAC, "rtp-3des-mac"},
};

const char *
ck_media_mode_name(enum ck_media_mode m)
{
    for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
        if (mode_names[i].mode == m)
            return mode_names[i].name;
    return "unknown";
}

int
ck_media_mode_parse(const char *name, enum ck_media_mode *out)
{
    if (name == NULL || out == NULL)
        return ck_error_set(CK_ERR_INVAL, "media mode: none given");
    for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
        if (strcmp(mode_names[i].name, name) == 0) {
            *out = mode_names[i].mode;
            return 0;
        }
    }
    return ck_error_set(CK_ERR_INVAL,
                        "media mode: unknown (rtp, srtp-aes-cm, srtp-gcm, rtp-3des, rtp-3des-mac)");
}

/* The source sends with the s->d keys and receives with d->s; the destination the reverse. */
static bool
uses_sd(bool is_source, enum ck_srtp_direction dir)
{
    return is_source == (dir == CK_SRTP_SEND);
}

static int
new_srtp(ck_media_ctx *c, bool is_source, const uint8_t *k_call, size_t k_len, uint32_t spi)
{
    struct ck_call_srtp_keys keys;
    enum ck_call_srtp_profile cp = c->mode == CK_MEDIA_SRTP_GCM ? CK_CALL_SRTP_AEAD_AES_128_GCM
                                                               : CK_CALL_SRTP_AES_CM_128_HMAC_SHA1_80;
    enum ck_srtp_profile sp = c->mode == CK_MEDIA_SRTP_GCM ? CK_SRTP_AEAD_AES_128_GCM
                                                           : CK_SRTP_AES128_CM_HMAC_SHA1_80;
    bool sd = uses_sd(is_source, c->dir);
    int rc;

    if ((rc = ck_call_derive_srtp(k_call, k_len, cp, spi, &keys)) == 0)
        rc = ck_srtp_new(sp, c->dir, sd ? keys.key_sd : keys.key_ds, keys.key_len,
                         sd ? keys.salt_sd : keys.salt_ds, keys.salt_len, &c->srtp);
    ck_call_keys_clear(&keys, sizeof(keys));
    return rc;
}

static int
new_3des(ck_media_ctx *c, bool is_source, const uint8_t *k_call, size_t k_len, uint32_t spi)
{
    struct ck_call_3des_keys keys;
    bool with_mac = c->mode == CK_MEDIA_RTP_3DES_MAC;
    bool sd = uses_sd(is_source, c->dir);
    int rc;

    if ((rc = ck_call_derive_3des(k_call, k_len, spi, with_mac, &keys)) == 0)
        rc = ck_rtp3des_new(c->dir, sd ? keys.key_sd : keys.key_ds,
                            with_mac ? (sd ? keys.mac_sd : keys.mac_ds) : NULL, &c->des);
    ck_call_keys_clear(&keys, sizeof(keys));
    return rc;
}

int
ck_media_ctx_new(enum ck_media_mode mode, enum ck_srtp_direction dir, bool is_source,
                 const uint8_t *k_call, size_t k_len, uint32_t spi, ck_media_ctx **out)
{
    ck_media_ctx *c = NULL;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "media: no output");
    *out = NULL;
    if (dir != CK_SRTP_SEND && dir != CK_SRTP_RECV)
        return ck_error_set(CK_ERR_INVAL, "media: unknown direction %d", (int)dir);
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "media: context");
    c->mode = mode;
    c->dir = dir;
    switch (mode) {
    case CK_MEDIA_RTP:
        /* No keys: a key given anyway is ignored rather than trusted to mean protection. */
        rc = 0;
        break;
    case CK_MEDIA_SRTP_AES_CM:
    case CK_MEDIA_SRTP_GCM:
        rc = new_srtp(c, is_source, k_call, k_len, spi);
        break;
    case CK_MEDIA_RTP_3DES:
    case CK_MEDIA_RTP_3DES_MAC:
        rc = new_3des(c, is_source, k_call, k_len, spi);
        break;
    default:
        rc = ck_error_set(CK_ERR_UNSUPPORTED, "media: unknown mode %d", (int)mode);
        break;
    }
    if (rc == 0) {
        *out = c;
        c = NULL;
    }
    ck_media_ctx_free(c);
    return rc;
}

int
ck_media_protect(ck_media_ctx *c, uint8_t *buf, size_t *len, size_t cap)
{
    struct ck_rtp_packet pkt;
    int rc;

    if (c == NULL || buf == NULL || len == NULL || c->dir != CK_SRTP_SEND)
        return ck_error_set(CK_ERR_INVAL, "media protect: not a send context");
    /* The same room whatever the mode, so that a caller sized for RTP is not caught out later
     * by a protected mode. */
    if (cap < *len + CK_MEDIA_MAX_OVERHEAD)
        return ck_error_set(CK_ERR_INVAL, "media protect: buffer of %zu bytes, need %zu", cap,
                            *len + CK_MEDIA_MAX_OVERHEAD);
    if (c->srtp != NULL)
        return ck_srtp_protect(c->srtp, buf, len, cap);
    if (c->des != NULL)
        return ck_rtp3des_protect(c->des, buf, len, cap);
    if ((rc = ck_rtp_parse(buf, *len, &pkt)) != 0)
        return rc;
    c->stats.packets++;
    return 0;
}

int
ck_media_unprotect(ck_media_ctx *c, uint8_t *buf, size_t *len)
{
    struct ck_rtp_packet pkt;
    int rc;

    if (c == NULL || buf == NULL || len == NULL || c->dir != CK_SRTP_RECV)
        return ck_error_set(CK_ERR_INVAL, "media unprotect: not a receive context");
    if (c->srtp != NULL)
        return ck_srtp_unprotect(c->srtp, buf, len);
    if (c->des != NULL)
        return ck_rtp3des_unprotect(c->des, buf, len);
    if ((rc = ck_rtp_parse(buf, *len, &pkt)) != 0) {
        c->stats.malformed++;
        return rc;
    }
    c->stats.packets++;
    return 0;
}

void
ck_media_get_stats(const ck_media_ctx *c, struct ck_srtp_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (c == NULL)
        return;
    if (c->srtp != NULL)
        ck_srtp_get_stats(c->srtp, out);
    else if (c->des != NULL)
        ck_rtp3des_get_stats(c->des, out);
    else
        *out = c->stats;
}

void
ck_media_ctx_free(ck_media_ctx *c)
{
    if (c == NULL)
        return;
    ck_srtp_free(c->srtp);
    ck_rtp3des_free(c->des);
    ck_memzero(c, sizeof(*c));
    free(c);
}
