/* Media protection throughput per core at 20 ms G.711 frames (172-byte RTP packets: 12-byte
 * header + 160 µ-law bytes): ck_media_protect / ck_media_unprotect for SRTP AES_CM_128_HMAC_SHA1_80,
 * SRTP AEAD_AES_128_GCM and the seed's RTP-3DES compatibility mode (weak; with and without its
 * MAC), beside libsrtp2 used directly (srtp_create / srtp_protect / srtp_unprotect, no cablekey
 * code) with the same policy on the same packets in the same run, and the ratio cablekey /
 * libsrtp2. RTP-3DES has no libsrtp2 counterpart.
 *
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so a busy shared machine lowers the
 * numbers less than wall time would. Each round protects BATCH fresh packets (consecutive
 * sequence numbers, filled outside the timed loop), then unprotects them, every packet accepted.
 * Each mode runs ROUNDS rounds, cablekey then libsrtp2 in each; the table shows medians.
 *
 * Usage: srtp_bench [seconds per mode and implementation, split over the rounds (default 2)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <srtp2/srtp.h>

#include "cablekey/error.h"
#include "cablekey/kmm.h"
#include "cablekey/media.h"

#define BATCH 256
#define PAYLOAD 160                        /* 20 ms of 8 kHz G.711 */
#define PKT (CK_RTP_HEADER_LEN + PAYLOAD)  /* 172 */
#define SLOT (PKT + CK_MEDIA_MAX_OVERHEAD)
#define SSRC 0x5eed1234u
#define SPI 0x00c0ffeeu
#define ROUNDS 5

static uint8_t pkts[BATCH][SLOT];
static size_t lens[BATCH];
static uint32_t next_seq; /* continues across rounds: the sequence numbers roll over */

static double
cpu_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* BATCH plaintext RTP packets with the next sequence numbers (untimed). */
static void
fill(void)
{
    for (int i = 0; i < BATCH; i++, next_seq++) {
        uint8_t *p = pkts[i];
        uint16_t seq = (uint16_t)next_seq;
        uint32_t ts = next_seq * PAYLOAD;

        p[0] = 0x80;
        p[1] = CK_RTP_PT_PCMU;
        p[2] = (uint8_t)(seq >> 8);
        p[3] = (uint8_t)seq;
        p[4] = (uint8_t)(ts >> 24);
        p[5] = (uint8_t)(ts >> 16);
        p[6] = (uint8_t)(ts >> 8);
        p[7] = (uint8_t)ts;
        p[8] = (uint8_t)(SSRC >> 24);
        p[9] = (uint8_t)(SSRC >> 16);
        p[10] = (uint8_t)(SSRC >> 8);
        p[11] = (uint8_t)SSRC;
        for (int j = 0; j < PAYLOAD; j++)
            p[CK_RTP_HEADER_LEN + j] = (uint8_t)(0xff - ((j + (int)seq) & 0x3f));
        lens[i] = PKT;
    }
}

struct result {
    double pps_p, pps_u; /* packets per CPU-second */
};

static int
bench_ck(enum ck_media_mode mode, double seconds, struct result *r)
{
    static const uint8_t k_call[CK_CALL_KEY_LEN] = {0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    ck_media_ctx *tx = NULL, *rx = NULL;
    double tp = 0, tu = 0, t0;
    long n = 0;
    int ret;

    if ((ret = ck_media_ctx_new(mode, CK_SRTP_SEND, true, k_call, sizeof(k_call), SPI, &tx)) != 0 ||
        (ret = ck_media_ctx_new(mode, CK_SRTP_RECV, false, k_call, sizeof(k_call), SPI, &rx)) != 0)
        goto out;
    for (int warm = 1; warm >= 0; warm--) {
        while (warm ? n == 0 : tp + tu < seconds) {
            fill();
            t0 = cpu_seconds();
            for (int i = 0; i < BATCH; i++)
                if ((ret = ck_media_protect(tx, pkts[i], &lens[i], SLOT)) != 0)
                    goto out;
            if (!warm)
                tp += cpu_seconds() - t0;
            t0 = cpu_seconds();
            for (int i = 0; i < BATCH; i++)
                if ((ret = ck_media_unprotect(rx, pkts[i], &lens[i])) != 0)
                    goto out;
            if (!warm)
                tu += cpu_seconds() - t0;
            n += BATCH;
        }
        if (warm)
            n = 0;
    }
    r->pps_p = (double)n / tp;
    r->pps_u = (double)n / tu;
out:
    ck_media_ctx_free(tx);
    ck_media_ctx_free(rx);
    return ret;
}

/* libsrtp2 alone: the policy ck_srtp_new sets (any SSRC, default window, no repeated tx). */
static int
bench_libsrtp(bool gcm, double seconds, struct result *r)
{
    uint8_t key[SRTP_MAX_KEY_LEN] = {0x24, 9, 8, 7, 6, 5, 4, 3, 2, 1};
    srtp_policy_t pol;
    srtp_t tx = NULL, rx = NULL;
    double tp = 0, tu = 0, t0;
    long n = 0;
    int ret = 0;

    memset(&pol, 0, sizeof(pol));
    if (gcm) {
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtcp);
    } else {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtcp);
    }
    pol.key = key;
    pol.ssrc.type = ssrc_any_outbound;
    if (srtp_create(&tx, &pol) != srtp_err_status_ok)
        return ck_error_set(CK_ERR_CRYPTO, "libsrtp2: srtp_create (send)");
    pol.ssrc.type = ssrc_any_inbound;
    if (srtp_create(&rx, &pol) != srtp_err_status_ok) {
        srtp_dealloc(tx);
        return ck_error_set(CK_ERR_CRYPTO, "libsrtp2: srtp_create (receive)");
    }
    for (int warm = 1; warm >= 0; warm--) {
        while (warm ? n == 0 : tp + tu < seconds) {
            fill();
            t0 = cpu_seconds();
            for (int i = 0; i < BATCH; i++) {
                int l = (int)lens[i];

                if (srtp_protect(tx, pkts[i], &l) != srtp_err_status_ok) {
                    ret = ck_error_set(CK_ERR_CRYPTO, "libsrtp2: srtp_protect");
                    goto out;
                }
                lens[i] = (size_t)l;
            }
            if (!warm)
                tp += cpu_seconds() - t0;
            t0 = cpu_seconds();
            for (int i = 0; i < BATCH; i++) {
                int l = (int)lens[i];

                if (srtp_unprotect(rx, pkts[i], &l) != srtp_err_status_ok) {
                    ret = ck_error_set(CK_ERR_CRYPTO, "libsrtp2: srtp_unprotect");
                    goto out;
                }
                lens[i] = (size_t)l;
            }
            if (!warm)
                tu += cpu_seconds() - t0;
            n += BATCH;
        }
        if (warm)
            n = 0;
    }
    r->pps_p = (double)n / tp;
    r->pps_u = (double)n / tu;
out:
    srtp_dealloc(tx);
    srtp_dealloc(rx);
    return ret;
}

static void
row(const char *name, const struct result *r)
{
    printf("%-38s %12.0f %9.3f %12.0f %9.3f\n", name, r->pps_p, 1e6 / r->pps_p, r->pps_u,
           1e6 / r->pps_u);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Median of ROUNDS values (sorts them). */
static double
median(double *v)
{
    qsort(v, ROUNDS, sizeof(*v), cmp_double);
    return v[ROUNDS / 2];
}

int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        enum ck_media_mode mode;
        int peer; /* -1: none, 0: libsrtp2 AES-CM, 1: libsrtp2 GCM */
    } modes[] = {
        {"srtp-aes-cm (AES_CM_128_HMAC_SHA1_80)", CK_MEDIA_SRTP_AES_CM, 0},
        {"srtp-gcm (AEAD_AES_128_GCM)", CK_MEDIA_SRTP_GCM, 1},
        {"rtp-3des (compat, weak)", CK_MEDIA_RTP_3DES, -1},
        {"rtp-3des-mac (compat, weak)", CK_MEDIA_RTP_3DES_MAC, -1},
        {"rtp (no protection: parse only)", CK_MEDIA_RTP, -1},
    };
    struct result peer[2], r;
    double seconds = 2;
    int ret;

    if (argc > 1)
        seconds = strtod(argv[1], NULL);
    if (seconds <= 0 || seconds > 60) {
        fprintf(stderr, "usage: srtp_bench [seconds per measurement, 0..60]\n");
        return 2;
    }
    printf("Media per core, 20 ms G.711 frames (%d-byte RTP), single thread, CPU time\n(%s, %s)\n",
           PKT, OpenSSL_version(OPENSSL_VERSION), srtp_get_version_string());
    printf("%-38s %12s %9s %12s %9s\n", "mode", "protect/s", "us/pkt", "unprotect/s",
           "us/pkt");
    /* ROUNDS rounds, cablekey and libsrtp2 back to back in each (the cablekey context first:
     * ck_srtp_new runs srtp_init once for the process); medians of each column and of the
     * per-round ratios, which a shared machine's noise leaves comparable. */
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        int pi = modes[i].peer;
        double cp[ROUNDS], cu[ROUNDS], lp[ROUNDS], lu[ROUNDS], rp[ROUNDS], ru[ROUNDS];
        struct result mr, mp;

        for (int k = 0; k < ROUNDS; k++) {
            if ((ret = bench_ck(modes[i].mode, seconds / ROUNDS, &r)) != 0 ||
                (pi >= 0 && (ret = bench_libsrtp(pi == 1, seconds / ROUNDS, &peer[pi])) != 0)) {
                fprintf(stderr, "srtp_bench: %s: %s: %s\n", modes[i].name, ck_strerror(ret),
                        ck_error_context());
                return 1;
            }
            cp[k] = r.pps_p;
            cu[k] = r.pps_u;
            if (pi >= 0) {
                lp[k] = peer[pi].pps_p;
                lu[k] = peer[pi].pps_u;
                rp[k] = cp[k] / lp[k];
                ru[k] = cu[k] / lu[k];
            }
        }
        mr.pps_p = median(cp);
        mr.pps_u = median(cu);
        row(modes[i].name, &mr);
        if (pi >= 0) {
            mp.pps_p = median(lp);
            mp.pps_u = median(lu);
            row(pi ? "  libsrtp2 direct, GCM" : "  libsrtp2 direct, AES-CM", &mp);
            printf("  ratio cablekey / libsrtp2 (median of %d rounds): protect %.2f, "
                   "unprotect %.2f\n", ROUNDS, median(rp), median(ru));
        }
    }
    printf("goal: >= 200000 packets/s per core (issue 8)\n");
    return 0;
}
