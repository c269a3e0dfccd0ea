/* Classic pcap writing for the test tools (kmm_pcap, esp_pcap): link type 101 (raw IP), so a
 * record is an IPv4 header, a UDP header and the datagram, with nothing to fake below IP. Packet n
 * gets IP ID n and the timestamp 2025-12-02 00:00:00Z + n seconds, so captures are reproducible
 * byte for byte. Header-only (static inline): each tool is one .c file. */
#ifndef CK_TESTS_PCAP_WRITE_H
#define CK_TESTS_PCAP_WRITE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cablekey/error.h"

#define PCAP_WRITE_EPOCH 1764633600u

struct pcap_udp4 {
    const uint8_t *src, *dst;        /* 4 bytes each */
    uint16_t sport, dport;
};

static inline void
pcap_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void
pcap_be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint32_t
pcap_sum16(const uint8_t *p, size_t n, uint32_t acc)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        acc += (uint32_t)(p[n - 1] << 8);
    return acc;
}

static inline uint16_t
pcap_fold(uint32_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

/* The 24-byte file header: little-endian magic, version 2.4, snaplen 65535, link type 101. */
static inline int
pcap_write_header(FILE *f)
{
    static const uint8_t hdr[24] = {0xd4, 0xc3, 0xb2, 0xa1, 2,    0,    4, 0, 0,   0, 0, 0,
                                    0,    0,    0,    0,    0xff, 0xff, 0, 0, 101, 0, 0, 0};

    return fwrite(hdr, 1, sizeof(hdr), f) == sizeof(hdr) ? 0 : CK_ERR_IO;
}

/* Record n: IPv4 (DF, TTL 64, header checksum) + UDP (real checksum over the pseudo-header,
 * so that a checksum-validating reader has nothing to flag) + payload. */
static inline int
pcap_write_udp4(FILE *f, uint32_t n, const struct pcap_udp4 *a, const uint8_t *payload,
                size_t len)
{
    uint8_t rec[16], ip[20], udp[8], pseudo[12];
    size_t total = sizeof(ip) + sizeof(udp) + len;
    uint32_t ck;

    if (total > 65535)
        return CK_ERR_LIMIT;
    memset(ip, 0, sizeof(ip));
    ip[0] = 0x45;
    pcap_be16(ip + 2, (uint32_t)total);
    pcap_be16(ip + 4, n);
    ip[6] = 0x40; /* DF */
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, a->src, 4);
    memcpy(ip + 16, a->dst, 4);
    pcap_be16(ip + 10, pcap_fold(pcap_sum16(ip, sizeof(ip), 0)));

    pcap_be16(udp, a->sport);
    pcap_be16(udp + 2, a->dport);
    pcap_be16(udp + 4, (uint32_t)(sizeof(udp) + len));
    udp[6] = udp[7] = 0;
    memcpy(pseudo, a->src, 4);
    memcpy(pseudo + 4, a->dst, 4);
    pseudo[8] = 0;
    pseudo[9] = 17;
    pcap_be16(pseudo + 10, (uint32_t)(sizeof(udp) + len));
    ck = pcap_sum16(pseudo, sizeof(pseudo), 0);
    ck = pcap_fold(pcap_sum16(payload, len, pcap_sum16(udp, sizeof(udp), ck)));
    /* RFC 768: a computed 0 is sent as all ones (0 means "no checksum"). */
    pcap_be16(udp + 6, ck == 0 ? 0xffff : ck);

    pcap_le32(rec, PCAP_WRITE_EPOCH + n);
    pcap_le32(rec + 4, 0);
    pcap_le32(rec + 8, (uint32_t)total);
    pcap_le32(rec + 12, (uint32_t)total);
    if (fwrite(rec, 1, sizeof(rec), f) != sizeof(rec) ||
        fwrite(ip, 1, sizeof(ip), f) != sizeof(ip) ||
        fwrite(udp, 1, sizeof(udp), f) != sizeof(udp) || fwrite(payload, 1, len, f) != len)
        return CK_ERR_IO;
    return 0;
}

#endif
