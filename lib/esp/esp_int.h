/* Internal interface of lib/esp: the framing helpers that esp.c (KMM transforms) and xform.c
 * (IKEv2 transforms) share, and hooks that the unit tests, the fuzz target and the benchmark
 * need to reproduce published vectors (a fixed IV, a chosen sequence number) or to build packets
 * that only a broken peer would send (a valid ICV over bad padding). Never used by the daemons:
 * only lib/esp, tests/unit/test_esp*.c, tests/fuzz/fuzz_esp*.c and bench/esp_bench.c include it. */
#ifndef CK_ESP_INT_H
#define CK_ESP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cablekey/esp.h"

#define CK_ESP_HDR_LEN 8 /* SPI + sequence number */

/* ---- Framing shared by esp.c and xform.c (RFC 4303 §2) ---- */

/* SPI and sequence number at pkt. */
void ck_esp_int_header(uint8_t *pkt, uint32_t spi, uint32_t seq);
/* Bytes of payload + padding + pad length + next header, a multiple of block. */
size_t ck_esp_int_padded_len(size_t len, size_t block);
/* Writes the padding 1, 2, 3 ... pad, the pad length and the next header (pad + 2 bytes). */
void ck_esp_int_trailer(uint8_t *dst, size_t pad, uint8_t next_header);
/* Checks the end of a decrypted body: tail holds its last tail_len bytes. The pad length must fit
 * and the padding be 1, 2, 3 ... (the default, anything else refused). CK_ERR_DECODE otherwise;
 * *pad is the pad length. */
int ck_esp_int_check_trailer(const uint8_t *tail, size_t tail_len, size_t *pad);
/* The anti-replay window of an inbound SA: requested 0 = CK_ESP_DEFAULT_WINDOW; *bits is the
 * size of the ring (lib/util ck_replay_*), a power of two >= the window and a multiple of 64.
 * CK_ERR_INVAL over CK_ESP_MAX_WINDOW. The caller allocates bits / 8 bytes of bitmap and marks
 * sequence number 0 seen (bitmap[0] = 1): it is never sent (RFC 4303 §3.3.3). */
int ck_esp_int_window(uint32_t requested, uint16_t *window, uint16_t *bits);

/* The IV the next ck_esp_protect on eng uses instead of random bytes (once; len must be the
 * SA's IV length or that protect fails with CK_ERR_INVAL). RFC 3602 §4 vectors need it. */
void ck_esp_test_set_next_iv(ck_esp_engine *eng, const uint8_t *iv, size_t len);
/* Sets an SA's sequence counter: outbound, the last sequence number sent (the next packet
 * carries seq + 1); inbound, the highest accepted one (the window is cleared). */
void ck_esp_test_set_seq(ck_esp_sa *sa, uint32_t seq);
/* The same for an IKEv2-transform SA (xform.c). */
void ck_esp_test_xf_set_seq(ck_esp_xf *x, uint32_t seq);
/* The 12-byte ICV (HMAC-SHA-1-96 / HMAC-MD5-96 with sa's authentication key) of data, computed
 * by the same code path as protect and unprotect. */
int ck_esp_test_icv(ck_esp_engine *eng, const ck_esp_sa *sa, const uint8_t *data, size_t len,
                    uint8_t icv[CK_ESP_ICV_LEN]);

#endif
