/* Internal interface of lib/esp: hooks that the unit tests, the fuzz target and the benchmark
 * need to reproduce published vectors (a fixed IV, a chosen sequence number) or to build packets
 * that only a broken peer would send (a valid ICV over bad padding). Never used by the daemons:
 * only lib/esp, tests/unit/test_esp.c, tests/fuzz/fuzz_esp*.c and bench/esp_bench.c include it. */
#ifndef CK_ESP_INT_H
#define CK_ESP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cablekey/esp.h"

/* The IV the next ck_esp_protect on eng uses instead of random bytes (once; len must be the
 * SA's IV length or that protect fails with CK_ERR_INVAL). RFC 3602 §4 vectors need it. */
void ck_esp_test_set_next_iv(ck_esp_engine *eng, const uint8_t *iv, size_t len);
/* Sets an SA's sequence counter: outbound, the last sequence number sent (the next packet
 * carries seq + 1); inbound, the highest accepted one (the window is cleared). */
void ck_esp_test_set_seq(ck_esp_sa *sa, uint32_t seq);
/* The 12-byte ICV (HMAC-SHA-1-96 / HMAC-MD5-96 with sa's authentication key) of data, computed
 * by the same code path as protect and unprotect. */
int ck_esp_test_icv(ck_esp_engine *eng, const ck_esp_sa *sa, const uint8_t *data, size_t len,
                    uint8_t icv[CK_ESP_ICV_LEN]);

#endif
