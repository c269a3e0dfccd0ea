/* cablekey-cms call core: arbitrary MGCP datagrams from every kind of party (endpoint lines,
 * a peer controller's commands, responses on our peer channel) and clock jumps, fed to two
 * controller cores wired together with fake endpoints (tests/unit/call_world.h), with calls in
 * progress so that responses can match. Input: records of
 *   selector (1 byte) | length (1 byte) | text
 * where "$T" in the text becomes the txid of the last command that party received and "$C" the
 * call id it saw, so that the fuzzer reaches the states a matching answer leads to. */
#include <stddef.h>
#include <stdint.h>

#include "../unit/call_world.h"

static struct world w;

static size_t
expand(const uint8_t *in, size_t n, const struct w_phone *ph, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 40 < cap; i++) {
        if (in[i] == '$' && i + 1 < n && in[i + 1] == 'T') {
            o += (size_t)snprintf(out + o, cap - o, "%u", ph->last_cmd_txid);
            i++;
        } else if (in[i] == '$' && i + 1 < n && in[i + 1] == 'C') {
            o += (size_t)snprintf(out + o, cap - o, "%s", ph->last_callid);
            i++;
        } else {
            out[o++] = (char)in[i];
        }
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int phone_of[] = {0, 1, 2, 3};
    char text[600];
    size_t i = 0;

    if (w_init(&w, size > 0 && (data[0] & 0x80), size > 1 && (data[1] & 0x80), 500, 4) != 0)
        abort();
    w.quiet_log = true;
    /* Calls in progress: a remote one and a local one. */
    w_dial(&w, 0, "5552001");
    w_dial(&w, 1, "5559000");
    w_pump(&w);
    while (i + 2 <= size) {
        uint8_t sel = data[i] % 8;
        size_t len = data[i + 1], n;
        const uint8_t *body = data + i + 2;

        if (len > size - i - 2)
            len = size - i - 2;
        i += 2 + len;
        if (sel < 4) {
            struct w_phone *ph = &w.ph[phone_of[sel]];
            n = expand(body, len, ph, text, sizeof(text));
            cms_call_on_message(w.core[ph->core], ph->principal, ph->spi, (const uint8_t *)text,
                                n, w.now);
        } else if (sel == 4) {
            n = expand(body, len, &w.ph[3], text, sizeof(text));
            cms_call_on_message(w.core[1], "cms/ca@R", 0x4001, (const uint8_t *)text, n, w.now);
        } else if (sel == 5) {
            n = expand(body, len, &w.ph[0], text, sizeof(text));
            cms_call_on_message(w.core[0], "cms/cb@R", 0x3001, (const uint8_t *)text, n, w.now);
        } else if (sel == 6) {
            n = expand(body, len, &w.ph[0], text, sizeof(text));
            cms_call_on_peer_response(w.core[0], len > 0 ? body[0] % 2 : 0, w.peer_txid,
                                      (const uint8_t *)text, n, w.now);
        } else {
            w_run_until(&w, w.now + (len > 0 ? body[0] : 1) * 50);
        }
        w_pump(&w);
    }
    w_run_until(&w, w.now + 60000);
    w_fini(&w);
    return 0;
}
