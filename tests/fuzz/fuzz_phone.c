/* Fuzzes the phone adapter (lib/endpoint/phone.c) with what its controller's channel delivers
 * once decrypted: arbitrary MGCP text. The input is split at 0xff bytes into messages; the first
 * byte chooses the phone (bit 0: a caller that has dialled, else a media gateway) and each message
 * may instead be a datagram on the media (leading 0xfe) or direct-signaling (0xfd) socket.
 * Virtual time moves 30 ms between messages so that timers (ringing, frames, HELLO retries) run.
 * Every command must get an answer that parses as an MGCP response with its txid, or none when
 * it has no first line; the phone must end with no key alive after ck_phone_free (ASan). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/endpoint.h"
#include "cablekey/mgcp.h"
#include "cablekey/phone.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t txid;

static int
fz_send(void *arg, enum ck_phone_sock sock, const struct sockaddr *to, socklen_t to_len,
        const uint8_t *buf, size_t len)
{
    (void)arg;
    (void)sock;
    (void)to;
    (void)to_len;
    (void)buf;
    (void)len;
    return 0;
}

static int
fz_command(void *arg, const char *verb, const char *params, int64_t now, uint32_t *t)
{
    (void)arg;
    (void)verb;
    (void)params;
    (void)now;
    *t = ++txid;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t held[] = {0x1000};
    static int16_t audio[400];
    struct ck_phone_params p;
    struct sockaddr_in from;
    ck_phone *ph = NULL;
    int64_t now = 1700000000000;
    size_t i = 1;

    if (size < 1)
        return 0;
    memset(&p, 0, sizeof(p));
    p.channel.send_command = fz_command;
    p.send = fz_send;
    p.media_addr = "127.0.0.1";
    p.media_port = 16000;
    p.direct_port = 16002;
    p.audio = audio;
    p.audio_len = 400;
    p.record = true;
    p.hold_spi = held;
    p.n_hold = 1;
    p.talk_ms = 100;
    if (data[0] & 1)
        p.dial = "5552001";
    else
        p.server = true;
    if (ck_phone_new(&p, &ph) != 0 || ck_phone_start(ph, now) != 0)
        abort();
    /* Let the caller's off-hook and digits be acknowledged, so CRCX without SDP is in state. */
    ck_phone_on_response(ph, txid, 200, "", 0, now);
    ck_phone_on_response(ph, txid + 1, 200, "", 0, now);
    memset(&from, 0, sizeof(from));
    from.sin_family = AF_INET;
    from.sin_port = htons(16010);
    from.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (i < size) {
        const uint8_t *m = data + i, *end = memchr(m, 0xff, size - i);
        size_t len = end != NULL ? (size_t)(end - m) : size - i;

        i += len + 1;
        now += 30;
        if (len > 0 && (m[0] == 0xfe || m[0] == 0xfd)) {
            (void)ck_phone_on_datagram(ph, m[0] == 0xfe ? CK_PHONE_SOCK_MEDIA
                                                         : CK_PHONE_SOCK_DIRECT,
                                       m + 1, len - 1, (struct sockaddr *)&from, sizeof(from),
                                       now);
        } else if (len <= CK_ENDPOINT_MAX_SIGNAL) {
            struct ck_endpoint_signal sig;
            ck_writer w;
            ck_writer_init(&w, CK_ENDPOINT_MAX_SIGNAL, false);
            ck_phone_on_command(ph, (const char *)m, len, now, &w);
            if (ck_endpoint_signal_parse(m, len, &sig) == 0 && !sig.is_response) {
                struct ck_mgcp_msg *r = malloc(sizeof(*r));
                if (r == NULL || w.len == 0 || ck_mgcp_parse(w.data, w.len, r) != 0 ||
                    !r->is_response || r->txid != sig.txid)
                    abort();
                ck_mgcp_msg_clear(r);
                free(r);
            }
            ck_writer_free(&w);
        }
        (void)ck_phone_on_timer(ph, now);
    }
    ck_phone_free(ph);
    return 0;
}
