/* Fuzzes the capture reader (pcap and pcapng) of `cablekey intercept decrypt` (lib/intercept/pcap.c): every
 * datagram it reports must lie inside the input, which the callback checks by reading it. */
#include <stdint.h>
#include <stdlib.h>

#include "intercept/li_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct span {
    const uint8_t *lo, *hi;
    unsigned sum;
};

static int
on_udp(void *arg, const struct ck_li_udp *u)
{
    struct span *s = arg;

    if (u->payload < s->lo || u->payload + u->len > s->hi ||
        (u->family != 4 && u->family != 6))
        abort();
    for (size_t i = 0; i < u->len; i++)
        s->sum += u->payload[i];
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span s = {data, data + size, 0};
    struct ck_li_pcap_stats st;

    (void)ck_li_pcap_walk(data, size, on_udp, &s, &st);
    if (st.udp + st.skipped != st.records)
        abort();
    return 0;
}
