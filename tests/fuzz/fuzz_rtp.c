/* Fuzzes the RTP parser and, on the same bytes, SRTP unprotect of both profiles (the header
 * checks in front of libsrtp2 and its own parsing); a packet that parses is rebuilt and must
 * parse back to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/media.h"
#include "cablekey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t salt[14] = {21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ck_srtp *rx[2];
    struct ck_rtp_packet p, q;
    uint8_t buf[CK_RTP_MAX_PACKET + CK_SRTP_TRAILER_ROOM];
    size_t len;

    if (rx[0] == NULL &&
        (ck_srtp_new(CK_SRTP_AES128_CM_HMAC_SHA1_80, CK_SRTP_RECV, key, 16, salt,
                     CK_SRTP_AES_CM_SALT_LEN, &rx[0]) != 0 ||
         ck_srtp_new(CK_SRTP_AEAD_AES_128_GCM, CK_SRTP_RECV, key, 16, salt, CK_SRTP_GCM_SALT_LEN,
                     &rx[1]) != 0))
        abort();
    if (ck_rtp_parse(data, size, &p) == 0) {
        ck_writer w;
        uint8_t *out;
        size_t n = 0;

        ck_writer_init(&w, CK_RTP_MAX_PACKET, false);
        if (ck_rtp_build(&p.hdr, p.payload, p.payload_len, p.padding_len, &w) != 0)
            abort();
        out = ck_writer_take(&w, &n);
        if (out == NULL || ck_rtp_parse(out, n, &q) != 0 || q.hdr.seq != p.hdr.seq ||
            q.hdr.ssrc != p.hdr.ssrc || q.payload_len != p.payload_len ||
            memcmp(q.payload, p.payload, p.payload_len) != 0)
            abort();
        free(out);
    }
    for (int i = 0; i < 2; i++) {
        if (size > sizeof(buf))
            break;
        memcpy(buf, data, size);
        len = size;
        (void)ck_srtp_unprotect(rx[i], buf, &len);
    }
    return 0;
}
