/* Fuzzes RTP-3DES unprotect (compatibility mode, weak) with and without the MAC, on fresh
 * receive contexts so that each input is judged alone; a MAC-less receiver decrypts whatever is
 * well formed, so the padding check and the replay window see arbitrary plaintext. An input that
 * parses as RTP is also protected and must unprotect back to its header (P clear) and payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/media.h"
#include "cablekey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[CK_RTP3DES_KEY_LEN] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
    0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18};
static const uint8_t mac_key[CK_RTP3DES_MAC_KEY_LEN] = {
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9,
    0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ck_rtp3des *tx;
    uint8_t buf[CK_RTP_MAX_PACKET + CK_RTP3DES_MAX_OVERHEAD + 64];
    struct ck_rtp_packet p;
    size_t len;

    if (size > sizeof(buf))
        return 0;
    if (tx == NULL && ck_rtp3des_new(CK_SRTP_SEND, key, mac_key, &tx) != 0)
        abort();
    for (int m = 0; m < 2; m++) {
        ck_rtp3des *rx = NULL;

        if (ck_rtp3des_new(CK_SRTP_RECV, key, m ? mac_key : NULL, &rx) != 0)
            abort();
        memcpy(buf, data, size);
        len = size;
        /* The same packet twice: the second time it is a replay if the first was accepted. */
        if (ck_rtp3des_unprotect(rx, buf, &len) == 0) {
            if (len > size || ck_rtp_parse(buf, len, &p) != 0)
                abort();
            memcpy(buf, data, size);
            len = size;
            if (ck_rtp3des_unprotect(rx, buf, &len) != CK_ERR_REPLAY)
                abort();
        }
        ck_rtp3des_free(rx);
    }
    if (ck_rtp_parse(data, size, &p) == 0) {
        ck_rtp3des *rx = NULL;
        size_t hdr_len = (size_t)(p.payload - data);

        memcpy(buf, data, size);
        len = size;
        if (ck_rtp3des_protect(tx, buf, &len, sizeof(buf)) == 0) {
            if (ck_rtp3des_new(CK_SRTP_RECV, key, mac_key, &rx) != 0 ||
                ck_rtp3des_unprotect(rx, buf, &len) != 0 || len != hdr_len + p.payload_len ||
                buf[0] != (data[0] & ~0x20) || memcmp(buf + 1, data + 1, hdr_len - 1) != 0 ||
                memcmp(buf + hdr_len, p.payload, p.payload_len) != 0)
                abort();
            ck_rtp3des_free(rx);
        }
    }
    return 0;
}
