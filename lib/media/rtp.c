/* RTP fixed header (RFC 3550 §5.1) on the bounded reader/writer, and G.711 µ-law. */
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/media.h"
#include "cablekey/util.h"

#define RTP_V_SHIFT 6
#define RTP_P_BIT 0x20
#define RTP_X_BIT 0x10
#define RTP_CC_MASK 0x0f
#define RTP_M_BIT 0x80
#define RTP_PT_MASK 0x7f
#define RTP_EXT_MAX_WORDS 0xffff

int
ck_rtp_parse(const uint8_t *buf, size_t len, struct ck_rtp_packet *out)
{
    ck_reader r;
    uint8_t b0, b1;
    size_t rest;
    int rc;

    memset(out, 0, sizeof(*out));
    if (buf == NULL)
        return ck_error_set(CK_ERR_INVAL, "RTP: no buffer");
    if (len > CK_RTP_MAX_PACKET)
        return ck_error_set(CK_ERR_LIMIT, "RTP: packet of %zu bytes exceeds %d", len,
                            CK_RTP_MAX_PACKET);
    ck_reader_init(&r, buf, len);
    if (ck_reader_u8(&r, &b0) != 0 || ck_reader_u8(&r, &b1) != 0 ||
        ck_reader_u16be(&r, &out->hdr.seq) != 0 || ck_reader_u32be(&r, &out->hdr.timestamp) != 0 ||
        ck_reader_u32be(&r, &out->hdr.ssrc) != 0) {
        rc = ck_error_set(CK_ERR_DECODE, "RTP: %zu bytes, shorter than the fixed header", len);
        goto out;
    }
    if ((b0 >> RTP_V_SHIFT) != CK_RTP_VERSION) {
        rc = ck_error_set(CK_ERR_DECODE, "RTP: version %u, expected 2", (unsigned)(b0 >> 6));
        goto out;
    }
    out->hdr.marker = (b1 & RTP_M_BIT) != 0;
    out->hdr.payload_type = b1 & RTP_PT_MASK;
    out->hdr.csrc_count = b0 & RTP_CC_MASK;
    for (uint8_t i = 0; i < out->hdr.csrc_count; i++) {
        if (ck_reader_u32be(&r, &out->hdr.csrc[i]) != 0) {
            rc = ck_error_set(CK_ERR_DECODE, "RTP: truncated in CSRC %u of %u", (unsigned)i + 1,
                              (unsigned)out->hdr.csrc_count);
            goto out;
        }
    }
    if (b0 & RTP_X_BIT) {
        uint16_t words;

        if (ck_reader_u16be(&r, &out->hdr.ext_profile) != 0 || ck_reader_u16be(&r, &words) != 0 ||
            ck_reader_bytes(&r, (size_t)words * 4, &out->hdr.ext_data) != 0) {
            rc = ck_error_set(CK_ERR_DECODE, "RTP: truncated header extension");
            goto out;
        }
        out->hdr.has_ext = true;
        out->hdr.ext_len = (size_t)words * 4;
    }
    rest = ck_reader_remaining(&r);
    if (b0 & RTP_P_BIT) {
        /* The count byte includes itself, so 0 is malformed, and padding may not reach back
         * into the header (RFC 3550 §5.1). */
        uint8_t pad = rest > 0 ? buf[len - 1] : 0;

        if (pad == 0 || pad > rest) {
            rc = ck_error_set(CK_ERR_DECODE, "RTP: padding count %u with %zu bytes after the header",
                              (unsigned)pad, rest);
            goto out;
        }
        out->padding_len = pad;
        rest -= pad;
    }
    if (ck_reader_bytes(&r, rest, &out->payload) != 0) {
        rc = ck_error_set(CK_ERR_DECODE, "RTP: payload overrun");
        goto out;
    }
    out->payload_len = rest;
    rc = 0;
out:
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

int
ck_rtp_build(const struct ck_rtp_header *hdr, const uint8_t *payload, size_t payload_len,
             uint8_t padding_len, ck_writer *w)
{
    size_t total;
    int rc = CK_ERR_LIMIT;

    if (hdr->payload_type > RTP_PT_MASK || hdr->csrc_count > CK_RTP_MAX_CSRC)
        return ck_error_set(CK_ERR_INVAL, "RTP: payload type %u or CSRC count %u out of range",
                            (unsigned)hdr->payload_type, (unsigned)hdr->csrc_count);
    if (hdr->has_ext && (hdr->ext_len % 4 != 0 || hdr->ext_len / 4 > RTP_EXT_MAX_WORDS ||
                         (hdr->ext_data == NULL && hdr->ext_len > 0)))
        return ck_error_set(CK_ERR_INVAL, "RTP: header extension of %zu bytes", hdr->ext_len);
    if (payload == NULL && payload_len > 0)
        return ck_error_set(CK_ERR_INVAL, "RTP: no payload buffer");
    total = CK_RTP_HEADER_LEN + 4u * hdr->csrc_count + (hdr->has_ext ? 4 + hdr->ext_len : 0);
    if (payload_len > CK_RTP_MAX_PACKET || total + payload_len + padding_len > CK_RTP_MAX_PACKET)
        return ck_error_set(CK_ERR_LIMIT, "RTP: packet would exceed %d bytes", CK_RTP_MAX_PACKET);

    if (ck_writer_u8(w, (uint8_t)((CK_RTP_VERSION << RTP_V_SHIFT) | (padding_len ? RTP_P_BIT : 0) |
                                  (hdr->has_ext ? RTP_X_BIT : 0) | hdr->csrc_count)) != 0 ||
        ck_writer_u8(w, (uint8_t)((hdr->marker ? RTP_M_BIT : 0) | hdr->payload_type)) != 0 ||
        ck_writer_u16be(w, hdr->seq) != 0 || ck_writer_u32be(w, hdr->timestamp) != 0 ||
        ck_writer_u32be(w, hdr->ssrc) != 0)
        goto fail;
    for (uint8_t i = 0; i < hdr->csrc_count; i++)
        if (ck_writer_u32be(w, hdr->csrc[i]) != 0)
            goto fail;
    if (hdr->has_ext &&
        (ck_writer_u16be(w, hdr->ext_profile) != 0 ||
         ck_writer_u16be(w, (uint16_t)(hdr->ext_len / 4)) != 0 ||
         (hdr->ext_len > 0 && ck_writer_bytes(w, hdr->ext_data, hdr->ext_len) != 0)))
        goto fail;
    if (payload_len > 0 && ck_writer_bytes(w, payload, payload_len) != 0)
        goto fail;
    for (unsigned i = 1; i < padding_len; i++)
        if (ck_writer_u8(w, 0) != 0)
            goto fail;
    if (padding_len > 0 && ck_writer_u8(w, padding_len) != 0)
        goto fail;
    return 0;
fail:
    return ck_error_set(rc, "RTP: the packet does not fit the writer");
}

/* G.711 µ-law. The encoder adds the bias 0x84 (132) so that every segment's magnitudes start
 * at a power of two, then keeps the segment number and the 4 bits below the leading one; the
 * code is transmitted inverted (which is why 0 encodes as 0xFF). */
#define ULAW_BIAS 0x84
#define ULAW_CLIP 32635  /* the largest magnitude that stays in segment 7 after the bias */

uint8_t
ck_ulaw_encode(int16_t pcm)
{
    int v = pcm;
    uint8_t mask = 0xff;
    int seg = 0;

    if (v < 0) {
        v = -v;
        mask = 0x7f;
    }
    if (v > ULAW_CLIP)
        v = ULAW_CLIP;
    v += ULAW_BIAS;
    while (seg < 7 && v >= (0x100 << seg))
        seg++;
    return (uint8_t)(((seg << 4) | ((v >> (seg + 3)) & 0x0f)) ^ mask);
}

int16_t
ck_ulaw_decode(uint8_t code)
{
    int u = (uint8_t)~code;
    int t = (((u & 0x0f) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);

    return (int16_t)((u & 0x80) ? ULAW_BIAS - t : t - ULAW_BIAS);
}

void
ck_ulaw_encode_buf(const int16_t *in, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ck_ulaw_encode(in[i]);
}

void
ck_ulaw_decode_buf(const uint8_t *in, size_t n, int16_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ck_ulaw_decode(in[i]);
}
