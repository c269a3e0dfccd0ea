/* The anti-replay window ESP (RFC 4303 §3.4.3) and AH (RFC 4302 §3.4.3) share: a ring of bits
 * indexed by sequence number mod its size (RFC 6479's layout), so a new highest number clears
 * only the slots it skips instead of shifting the whole bitmap. */
#include <string.h>

#include "cablekey/util.h"

enum ck_replay_verdict
ck_replay_check(const uint64_t *ring, uint32_t nbits, uint32_t top, uint32_t window, uint32_t seq)
{
    uint32_t b = seq & (nbits - 1);

    if (seq > top)
        return CK_REPLAY_NEW;
    if (top - seq >= window)
        return CK_REPLAY_TOO_OLD;
    return (ring[b / 64] >> (b % 64)) & 1 ? CK_REPLAY_SEEN : CK_REPLAY_NEW;
}

void
ck_replay_update(uint64_t *ring, uint32_t nbits, uint32_t *top, uint32_t seq)
{
    uint32_t b;

    if (seq > *top) {
        if (seq - *top >= nbits) {
            memset(ring, 0, nbits / 8);
        } else {
            /* The slots of the numbers skipped over still hold numbers now left of the
             * window. */
            for (uint32_t s = *top + 1; s != seq; s++) {
                b = s & (nbits - 1);
                ring[b / 64] &= ~((uint64_t)1 << (b % 64));
            }
        }
        *top = seq;
    }
    b = seq & (nbits - 1);
    ring[b / 64] |= (uint64_t)1 << (b % 64);
}
