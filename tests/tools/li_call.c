/* li_call: a synthetic intercepted call for tests/interop/t_intercept.sh. It does what the
 * source controller does at the end of call setup (ck_li_escrow of a fresh K_call) and what the
 * two ends then send (one second of G.711 triangle tone each way, protected with ck_media_ctx), and
 * writes the media as a classic pcap with unrelated UDP around it, plus the µ-law-quantised
 * reference audio of each direction.
 *
 * usage: li_call DB DROPDIR CALLID FROM TO MEDIA PCAP REFPREFIX [NOW]
 * prints: escrowed=N spi=0x... k_call=HEX */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "cablekey/error.h"
#include "cablekey/intercept.h"
#include "cablekey/media.h"
#include "cablekey/util.h"
#include "pcap_write.h"

#define FRAMES 50
#define FRAME_SAMPLES 160

static int
fail(const char *what, int ret)
{
    fprintf(stderr, "li_call: %s: %s (%s)\n", what, ck_strerror(ret), ck_error_context());
    return 1;
}

int
main(int argc, char **argv)
{
    static const uint8_t lo[4] = {127, 0, 0, 1};
    /* The source sends from its media port (symmetric RTP), the destination from another. */
    struct pcap_udp4 sd_addr = {lo, lo, 16000, 16002}, ds_addr = {lo, lo, 41000, 16000};
    struct pcap_udp4 noise_addr = {lo, lo, 16000, 17000};
    struct ck_li_call call;
    enum ck_media_mode mode;
    ck_media_ctx *tx_sd = NULL, *tx_ds = NULL;
    ck_li *li = NULL;
    int16_t *ref_sd = NULL, *ref_ds = NULL;
    size_t escrowed = 0;
    uint32_t pkt_no = 0;
    int64_t now;
    int32_t us;
    char path[4096];
    FILE *f = NULL;
    int ret, rc = 1;

    if (argc != 9 && argc != 10) {
        fprintf(stderr, "usage: li_call DB DROPDIR CALLID FROM TO MEDIA PCAP REFPREFIX [NOW]\n");
        return 2;
    }
    ck_now(&now, &us);
    if (argc == 10 && ck_parse_int64(argv[9], 0, INT64_MAX / 2, &now) != 0)
        return 2;
    if (ck_media_mode_parse(argv[6], &mode) != 0)
        return fail("media mode", CK_ERR_INVAL);
    memset(&call, 0, sizeof(call));
    ck_strlcpy(call.call_id, argv[3], sizeof(call.call_id));
    ck_strlcpy(call.caller, argv[4], sizeof(call.caller));
    ck_strlcpy(call.callee, argv[5], sizeof(call.callee));
    ck_strlcpy(call.caller_mac, "0011223344aa", sizeof(call.caller_mac));
    call.started = now;
    ck_strlcpy(call.media, argv[6], sizeof(call.media));
    ck_strlcpy(call.ipsec_suite, "sha1-aes128", sizeof(call.ipsec_suite));
    ck_strlcpy(call.src_media_addr, "127.0.0.1 16000", sizeof(call.src_media_addr));
    ck_strlcpy(call.dst_media_addr, "127.0.0.1 16002", sizeof(call.dst_media_addr));
    if (RAND_bytes(call.k_call, CK_CALL_KEY_LEN) != 1 ||
        RAND_bytes((unsigned char *)&call.spi, sizeof(call.spi)) != 1)
        return fail("random", CK_ERR_CRYPTO);
    call.spi = CK_CALL_SPI_MIN + call.spi % (CK_CALL_SPI_MAX - CK_CALL_SPI_MIN);

    if ((ret = ck_li_open(argv[1], 0, &li)) != 0 ||
        (ret = ck_li_escrow(li, &call, now, 90 * 86400, argv[2], &escrowed)) != 0) {
        rc = fail("escrow", ret);
        goto out;
    }
    printf("escrowed=%zu spi=0x%08" PRIx32 " k_call=", escrowed, call.spi);
    for (size_t i = 0; i < CK_CALL_KEY_LEN; i++)
        printf("%02x", call.k_call[i]);
    printf("\n");

    if ((ret = ck_media_ctx_new(mode, CK_SRTP_SEND, true,
                                mode == CK_MEDIA_RTP ? NULL : call.k_call,
                                mode == CK_MEDIA_RTP ? 0 : CK_CALL_KEY_LEN, call.spi,
                                &tx_sd)) != 0 ||
        (ret = ck_media_ctx_new(mode, CK_SRTP_SEND, false,
                                mode == CK_MEDIA_RTP ? NULL : call.k_call,
                                mode == CK_MEDIA_RTP ? 0 : CK_CALL_KEY_LEN, call.spi,
                                &tx_ds)) != 0) {
        rc = fail("media context", ret);
        goto out;
    }
    ref_sd = calloc(FRAMES * FRAME_SAMPLES, sizeof(*ref_sd));
    ref_ds = calloc(FRAMES * FRAME_SAMPLES, sizeof(*ref_ds));
    if (ref_sd == NULL || ref_ds == NULL || (f = fopen(argv[7], "wb")) == NULL ||
        pcap_write_header(f) != 0) {
        rc = fail("capture", CK_ERR_IO);
        goto out;
    }
    for (int fr = 0; fr < FRAMES; fr++) {
        for (int dir = 0; dir < 2; dir++) {
            uint8_t ulaw[FRAME_SAMPLES], pkt[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD];
            int16_t *ref = dir == 0 ? ref_sd : ref_ds;
            struct ck_rtp_header h;
            ck_writer w;
            size_t len;

            for (int i = 0; i < FRAME_SAMPLES; i++) {
                int n = fr * FRAME_SAMPLES + i;
                /* Triangle waves of different periods per direction (no libm needed). */
                int period = dir == 0 ? 18 : 12, ph = n % period;
                int16_t s = (int16_t)((ph < period / 2 ? ph : period - ph) * 24000 / period * 2 -
                                      12000);
                ulaw[i] = ck_ulaw_encode(s);
                ref[n] = ck_ulaw_decode(ulaw[i]);
            }
            memset(&h, 0, sizeof(h));
            h.payload_type = CK_RTP_PT_PCMU;
            h.seq = (uint16_t)(1000 * (dir + 1) + fr);
            h.timestamp = (uint32_t)(dir == 0 ? 5000 : 90000) + (uint32_t)(fr * FRAME_SAMPLES);
            h.ssrc = dir == 0 ? 0x11111111u : 0x22222222u;
            h.marker = fr == 0;
            ck_writer_init(&w, CK_RTP_MAX_PACKET, false);
            if ((ret = ck_rtp_build(&h, ulaw, sizeof(ulaw), 0, &w)) != 0) {
                ck_writer_free(&w);
                rc = fail("rtp", ret);
                goto out;
            }
            memcpy(pkt, w.data, w.len);
            len = w.len;
            ck_writer_free(&w);
            if ((ret = ck_media_protect(dir == 0 ? tx_sd : tx_ds, pkt, &len, sizeof(pkt))) != 0) {
                rc = fail("protect", ret);
                goto out;
            }
            if (pcap_write_udp4(f, ++pkt_no, dir == 0 ? &sd_addr : &ds_addr, pkt, len) != 0) {
                rc = fail("capture", CK_ERR_IO);
                goto out;
            }
        }
        /* Unrelated traffic from the same host: ignored by the decryptor. */
        if (fr % 10 == 0 &&
            pcap_write_udp4(f, ++pkt_no, &noise_addr, (const uint8_t *)"noise", 5) != 0) {
            rc = fail("capture", CK_ERR_IO);
            goto out;
        }
    }
    if (fclose(f) != 0) {
        f = NULL;
        rc = fail("capture", CK_ERR_IO);
        goto out;
    }
    f = NULL;
    snprintf(path, sizeof(path), "%s-sd.wav", argv[8]);
    if ((ret = ck_wav_write(path, ref_sd, FRAMES * FRAME_SAMPLES)) != 0) {
        rc = fail("wav", ret);
        goto out;
    }
    snprintf(path, sizeof(path), "%s-ds.wav", argv[8]);
    if ((ret = ck_wav_write(path, ref_ds, FRAMES * FRAME_SAMPLES)) != 0) {
        rc = fail("wav", ret);
        goto out;
    }
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    ck_li_call_clear(&call);
    ck_media_ctx_free(tx_sd);
    ck_media_ctx_free(tx_ds);
    ck_li_close(li);
    free(ref_sd);
    free(ref_ds);
    return rc;
}
