/* esp_pcap OUT.pcap OUT.esp_sa: writes a classic pcap (link type 101, raw IPv4) of protected
 * signaling as lib/esp sends it, and the Wireshark esp_sa records (ck_esp_wireshark_sa_format,
 * file created 0600: it holds the keys) that let tshark decrypt it.
 * tests/interop/t_esp_tshark.sh reads both back with tshark.
 *
 * For each implemented suite, in this order: AES-128-CBC, 3DES-CBC, NULL, each with
 * HMAC-SHA-1-96 then HMAC-MD5-96 (suite s = 0..5), a pair of SAs with random keys:
 *   MTA 10.0.0.2:40002 -> CMS 10.0.0.1:14500  SPI 0x000010s1
 *   CMS -> MTA                                 SPI 0x000010s2
 * and six packets, the CONTRACT7 signaling exchange (txid base b = 1000 * (s + 1)):
 *   MTA->CMS RSIP b+1, CMS->MTA 200 b+1, CMS->MTA RQNT b+2, MTA->CMS 200 b+2,
 *   MTA->CMS NTFY b+3, CMS->MTA 200 b+3.
 * Each is MGCP text behind an inner UDP header (MTA 2427 <-> CMS 2727, ck_esp_udp_wrap) in
 * transport-mode ESP (next header 17), carried in UDP as RFC 3948 frames it. The outer port is
 * deliberately not 4500, so that only tshark's -d udp.port==14500,udpencap makes it ESP. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/kmm.h"
#include "cablekey/util.h"
#include "pcap_write.h"

#define ESP_PCAP_PORT_CMS 14500
#define ESP_PCAP_PORT_MTA 40002
#define MGCP_GATEWAY_PORT 2427
#define MGCP_AGENT_PORT 2727
#define ENDPOINT "aaln/1@mta1.example.net"
#define N_SUITES 6

static const uint8_t addr_mta[4] = {10, 0, 0, 2}, addr_cms[4] = {10, 0, 0, 1};
static const char *const ip_mta = "10.0.0.2", *const ip_cms = "10.0.0.1";

struct suite {
    uint8_t enc, auth;
    size_t enc_len, auth_len;
};

static const struct suite suites[N_SUITES] = {
    {CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_SHA1_96, 16, 20},
    {CK_KMM_ENC_AES128, CK_KMM_AUTH_HMAC_MD5_96, 16, 16},
    {CK_KMM_ENC_3DES, CK_KMM_AUTH_HMAC_SHA1_96, 24, 20},
    {CK_KMM_ENC_3DES, CK_KMM_AUTH_HMAC_MD5_96, 24, 16},
    {CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_SHA1_96, 0, 20},
    {CK_KMM_ENC_NULL, CK_KMM_AUTH_HMAC_MD5_96, 0, 16},
};

/* An SA with fresh random keys. */
static int
new_sa(const struct suite *su, uint32_t spi, ck_esp_sa **out)
{
    uint8_t ek[24], ak[20];
    struct ck_esp_sa_params p = {.spi = spi,
                                 .enc = su->enc,
                                 .auth = su->auth,
                                 .enc_key = ek,
                                 .enc_key_len = su->enc_len,
                                 .auth_key = ak,
                                 .auth_key_len = su->auth_len};
    int ret;

    if (RAND_bytes(ek, sizeof(ek)) != 1 || RAND_bytes(ak, sizeof(ak)) != 1)
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "esp_pcap: RAND_bytes");
    else
        ret = ck_esp_sa_new(&p, out);
    ck_memzero(ek, sizeof(ek));
    ck_memzero(ak, sizeof(ak));
    return ret;
}

struct writer {
    FILE *pcap;
    ck_esp_engine *eng;
    uint32_t n;                      /* packets written */
};

/* Protects one MGCP message on sa and appends it to the capture. */
static int
send_msg(struct writer *w, ck_esp_sa *sa, bool from_mta, const char *text)
{
    uint8_t inner[1024], pkt[1200];
    size_t inner_len = 0, pkt_len = 0;
    struct pcap_udp4 a = {from_mta ? addr_mta : addr_cms, from_mta ? addr_cms : addr_mta,
                          from_mta ? ESP_PCAP_PORT_MTA : ESP_PCAP_PORT_CMS,
                          from_mta ? ESP_PCAP_PORT_CMS : ESP_PCAP_PORT_MTA};
    int ret;

    if ((ret = ck_esp_udp_wrap(from_mta ? MGCP_GATEWAY_PORT : MGCP_AGENT_PORT,
                               from_mta ? MGCP_AGENT_PORT : MGCP_GATEWAY_PORT,
                               (const uint8_t *)text, strlen(text), inner, sizeof(inner),
                               &inner_len)) != 0 ||
        (ret = ck_esp_protect(w->eng, sa, CK_ESP_NEXT_HEADER_UDP, inner, inner_len,
                              PCAP_WRITE_EPOCH, pkt, sizeof(pkt), &pkt_len)) != 0)
        return ret;
    if ((ret = pcap_write_udp4(w->pcap, ++w->n, &a, pkt, pkt_len)) != 0)
        return ck_error_set(ret, "esp_pcap: writing packet %u: %s", w->n, strerror(errno));
    return 0;
}

/* The CONTRACT7 exchange for suite s on the pair (up: MTA -> CMS, down: CMS -> MTA). */
static int
exchange(struct writer *w, int s, ck_esp_sa *up, ck_esp_sa *down)
{
    unsigned b = 1000u * (unsigned)(s + 1), x = 0xa000u + (unsigned)s;
    char m[6][160];
    int ret = 0;

    snprintf(m[0], sizeof(m[0]), "RSIP %u " ENDPOINT " MGCP 1.0 NCS 1.0\r\nRM: restart\r\n",
             b + 1);
    snprintf(m[1], sizeof(m[1]), "200 %u OK\r\n", b + 1);
    snprintf(m[2], sizeof(m[2]), "RQNT %u " ENDPOINT " MGCP 1.0 NCS 1.0\r\nX: %x\r\nR: hd\r\n",
             b + 2, x);
    snprintf(m[3], sizeof(m[3]), "200 %u OK\r\n", b + 2);
    snprintf(m[4], sizeof(m[4]), "NTFY %u " ENDPOINT " MGCP 1.0 NCS 1.0\r\nX: %x\r\nO: hd\r\n",
             b + 3, x);
    snprintf(m[5], sizeof(m[5]), "200 %u OK\r\n", b + 3);
    for (int i = 0; ret == 0 && i < 6; i++) {
        /* Messages 0, 3, 4 come from the MTA. */
        bool from_mta = i == 0 || i == 3 || i == 4;

        ret = send_msg(w, from_mta ? up : down, from_mta, m[i]);
    }
    return ret;
}

/* Writes the records to path, created 0600 (and made 0600 if it existed): they hold the keys. */
static int
write_sa_file(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t off = 0;
    int ret = 0;

    if (fd < 0)
        return ck_error_set(CK_ERR_IO, "esp_pcap: %s: %s", path, strerror(errno));
    if (fchmod(fd, 0600) != 0)
        ret = ck_error_set(CK_ERR_IO, "esp_pcap: chmod %s: %s", path, strerror(errno));
    while (ret == 0 && off < len) {
        ssize_t n = write(fd, text + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            ret = ck_error_set(CK_ERR_IO, "esp_pcap: writing %s: %s", path, strerror(errno));
        else
            off += (size_t)n;
    }
    if (close(fd) != 0 && ret == 0)
        ret = ck_error_set(CK_ERR_IO, "esp_pcap: closing %s: %s", path, strerror(errno));
    return ret;
}

int
main(int argc, char **argv)
{
    struct writer w = {0};
    ck_esp_sa *up[N_SUITES] = {0}, *down[N_SUITES] = {0};
    char records[4096];
    size_t used = 0;
    int rc = 1, ret = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: esp_pcap OUT.pcap OUT.esp_sa\n");
        return 2;
    }
    records[0] = '\0';
    if ((ret = ck_esp_engine_new(&w.eng)) != 0)
        goto out;
    for (int s = 0; s < N_SUITES; s++) {
        uint32_t spi = 0x1000u + 0x10u * (uint32_t)s;

        if ((ret = new_sa(&suites[s], spi + 1, &up[s])) != 0 ||
            (ret = new_sa(&suites[s], spi + 2, &down[s])) != 0 ||
            (ret = ck_esp_wireshark_sa_format(up[s], ip_mta, ip_cms, records, sizeof(records),
                                              &used)) != 0 ||
            (ret = ck_esp_wireshark_sa_format(down[s], ip_cms, ip_mta, records, sizeof(records),
                                              &used)) != 0)
            goto out;
    }
    if ((w.pcap = fopen(argv[1], "wb")) == NULL) {
        ret = ck_error_set(CK_ERR_IO, "esp_pcap: %s: %s", argv[1], strerror(errno));
        goto out;
    }
    if ((ret = pcap_write_header(w.pcap)) != 0) {
        ck_error_set(ret, "esp_pcap: writing %s: %s", argv[1], strerror(errno));
        goto out;
    }
    for (int s = 0; s < N_SUITES; s++)
        if ((ret = exchange(&w, s, up[s], down[s])) != 0)
            goto out;
    ret = fclose(w.pcap) != 0 ? ck_error_set(CK_ERR_IO, "esp_pcap: closing %s: %s", argv[1],
                                             strerror(errno))
                              : 0;
    w.pcap = NULL;
    if (ret != 0 || (ret = write_sa_file(argv[2], records, used)) != 0)
        goto out;
    printf("esp_pcap: %u packets, %d SAs, udpencap port %d\n", w.n, 2 * N_SUITES,
           ESP_PCAP_PORT_CMS);
    rc = 0;
out:
    if (ret != 0)
        fprintf(stderr, "esp_pcap: %s: %s\n", ck_strerror(ret), ck_error_context());
    if (w.pcap != NULL)
        fclose(w.pcap);
    for (int s = 0; s < N_SUITES; s++) {
        ck_esp_sa_free(up[s]);
        ck_esp_sa_free(down[s]);
    }
    ck_esp_engine_free(w.eng);
    ck_memzero(records, sizeof(records));
    return rc;
}
