/* Fuzzes AH verification (ck_ah_parse, ck_ah_verify; IPv4 and IPv6) with one SA per input and a
 * series of packets, so the replay window sees arbitrary sequence-number orders. Input: records
 * of flags (1) | length (2, big-endian) | packet. Flag bit 0 makes the harness re-sign the packet
 * (SPI set to the SA's, total length fixed, ICV recomputed): a fuzzer cannot forge an HMAC, and
 * the window and accept path sit behind it. Anything accepted must parse to a payload inside the
 * packet and must be refused as a replay when offered again. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/ah.h"
#include "cablekey/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SPI 0x00002002u
#define MAX_RECORDS 256

static const uint8_t key[CK_AH_KEY_LEN] = {0x71, 0xfe, 0x01, 0x0d, 0xcb, 0x81, 0xa1, 0x46, 0x7e,
                                           0x83, 0xbf, 0x57, 0x94, 0x5d, 0xc0, 0x80, 0x33, 0xb1,
                                           0x09, 0xdd};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t pkt[CK_AH_MAX_PACKET];
    struct ck_ah_sa_params p = {.spi = FUZZ_SPI, .key = key, .key_len = sizeof(key)};
    struct ck_ah_info info;
    ck_ah_sa *sa = NULL;
    size_t off = 0;

    if (size > 0)
        p.replay_window = CK_AH_MIN_WINDOW + (data[0] % 16) * 64;
    if (ck_ah_sa_new(&p, &sa) != 0)
        abort();
    off = size > 0 ? 1 : 0;
    for (int n = 0; n < MAX_RECORDS && size - off >= 3; n++) {
        uint8_t flags = data[off];
        size_t len = ((size_t)data[off + 1] << 8) | data[off + 2];
        off += 3;
        if (len > size - off)
            len = size - off;
        memcpy(pkt, data + off, len);
        off += len;
        if ((flags & 1) && len >= CK_AH_IPV4_HDR_LEN + CK_AH_HDR_LEN) {
            bool v6 = (pkt[0] >> 4) == 6 && len >= CK_AH_IPV6_HDR_LEN + CK_AH_HDR_LEN;
            size_t h = v6 ? CK_AH_IPV6_HDR_LEN : CK_AH_IPV4_HDR_LEN;
            size_t field = v6 ? len - CK_AH_IPV6_HDR_LEN : len;
            uint8_t icv[CK_AH_ICV_LEN];
            pkt[v6 ? 4 : 2] = (uint8_t)(field >> 8);
            pkt[v6 ? 5 : 3] = (uint8_t)field;
            pkt[h + 4] = (uint8_t)(FUZZ_SPI >> 24);
            pkt[h + 5] = (uint8_t)(FUZZ_SPI >> 16);
            pkt[h + 6] = (uint8_t)(FUZZ_SPI >> 8);
            pkt[h + 7] = (uint8_t)FUZZ_SPI;
            if (ck_ah_icv(key, pkt, len, icv) == 0)
                memcpy(pkt + h + 12, icv, sizeof(icv));
        }
        if (ck_ah_parse(pkt, len, &info) == 0 &&
            (info.payload_off + info.payload_len != len || info.payload_off > len ||
             (info.ip_version == 4) != (info.addr_len == 4)))
            abort();
        if (ck_ah_verify(sa, pkt, len, &info) == 0) {
            if (info.spi != FUZZ_SPI || info.seq == 0 || info.payload_off + info.payload_len != len)
                abort();
            if (ck_ah_verify(sa, pkt, len, NULL) != CK_ERR_REPLAY)
                abort();
        }
    }
    ck_ah_sa_free(sa);
    return 0;
}
