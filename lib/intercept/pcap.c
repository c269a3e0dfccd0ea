/* A bounded reader of libpcap captures (classic pcap as tcpdump writes, pcapng as tshark and
 * dumpcap write by default), enough to find a call's RTP/SRTP datagrams: every length comes
 * from the capture and is checked against what is left before it is used. */
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/util.h"
#include "intercept/li_int.h"

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_MAGIC_NS 0xa1b23c4du

enum {
    LINK_NULL = 0, LINK_ETHERNET = 1, LINK_RAW_OLD = 12, LINK_RAW = 101, LINK_SLL = 113,
    LINK_IPV4 = 228, LINK_IPV6 = 229, LINK_SLL2 = 276,
};

static int
rd_u32(ck_reader *r, bool swap, uint32_t *v)
{
    uint32_t x;
    int ret = ck_reader_u32be(r, &x);

    if (ret == 0)
        *v = swap ? __builtin_bswap32(x) : x;
    return ret;
}

/* UDP inside an IP packet of len bytes; 1 if the packet is not unfragmented UDP. */
static int
parse_ip(const uint8_t *p, size_t len, struct ck_li_udp *u)
{
    size_t hl, total;
    const uint8_t *udp;
    size_t ulen;

    if (len < 1)
        return 1;
    if ((p[0] >> 4) == 4) {
        if (len < 20)
            return 1;
        hl = (size_t)(p[0] & 0x0f) * 4;
        total = (size_t)p[2] << 8 | p[3];
        if (hl < 20 || total < hl || total > len)
            return 1;
        /* A fragment (MF set or an offset) is not a whole datagram: skipped. */
        if ((p[6] & 0x20) || ((p[6] & 0x1f) | p[7]) != 0 || p[9] != 17)
            return 1;
        u->family = 4;
        memcpy(u->src, p + 12, 4);
        memcpy(u->dst, p + 16, 4);
        udp = p + hl;
        ulen = total - hl;
    } else if ((p[0] >> 4) == 6) {
        if (len < 40)
            return 1;
        total = 40 + ((size_t)p[4] << 8 | p[5]);
        if (total > len || p[6] != 17)
            return 1;
        u->family = 6;
        memcpy(u->src, p + 8, 16);
        memcpy(u->dst, p + 24, 16);
        udp = p + 40;
        ulen = total - 40;
    } else {
        return 1;
    }
    if (ulen < 8)
        return 1;
    {
        size_t l = (size_t)udp[4] << 8 | udp[5];
        if (l < 8 || l > ulen)
            return 1;
        u->sport = (uint16_t)(udp[0] << 8 | udp[1]);
        u->dport = (uint16_t)(udp[2] << 8 | udp[3]);
        u->payload = udp + 8;
        u->len = l - 8;
    }
    return 0;
}

/* The IP packet inside a link-layer frame; 1 if there is none. */
static int
link_ip(uint32_t link, const uint8_t *p, size_t len, const uint8_t **ip,
        size_t *ip_len)
{
    size_t off;
    unsigned type;

    switch (link) {
    case LINK_NULL:
        /* A 4-byte address family in the capturing host's byte order, whose IPv6 value
         * differs between systems: the IP version nibble decides instead. */
        off = 4;
        break;
    case LINK_ETHERNET:
        if (len < 14)
            return 1;
        off = 12;
        type = (unsigned)p[off] << 8 | p[off + 1];
        for (int tags = 0; (type == 0x8100 || type == 0x88a8) && tags < 2; tags++) {
            off += 4;
            if (len < off + 2)
                return 1;
            type = (unsigned)p[off] << 8 | p[off + 1];
        }
        if (type != 0x0800 && type != 0x86dd)
            return 1;
        off += 2;
        break;
    case LINK_RAW_OLD:
    case LINK_RAW:
    case LINK_IPV4:
    case LINK_IPV6:
        off = 0;
        break;
    case LINK_SLL:
        if (len < 16)
            return 1;
        type = (unsigned)p[14] << 8 | p[15];
        if (type != 0x0800 && type != 0x86dd)
            return 1;
        off = 16;
        break;
    case LINK_SLL2:
        if (len < 20)
            return 1;
        type = (unsigned)p[0] << 8 | p[1];
        if (type != 0x0800 && type != 0x86dd)
            return 1;
        off = 20;
        break;
    default:
        return 1;
    }
    if (off > len)
        return 1;
    *ip = p + off;
    *ip_len = len - off;
    return 0;
}

/* One captured frame: reported when it holds a whole unfragmented UDP datagram. */
static int
frame(uint32_t link, const uint8_t *pkt, size_t caplen, size_t origlen, ck_li_udp_cb cb,
      void *ctx, struct ck_li_pcap_stats *stats)
{
    const uint8_t *ip;
    size_t ip_len;
    struct ck_li_udp u;

    stats->records++;
    memset(&u, 0, sizeof(u));
    /* A packet cut by the snap length has no whole datagram. */
    if (caplen < origlen || link_ip(link, pkt, caplen, &ip, &ip_len) != 0 ||
        parse_ip(ip, ip_len, &u) != 0) {
        stats->skipped++;
        return 0;
    }
    stats->udp++;
    return cb(ctx, &u);
}

static int
walk_classic(ck_reader *r, bool swap, ck_li_udp_cb cb, void *ctx,
             struct ck_li_pcap_stats *stats)
{
    const uint8_t *ign, *pkt;
    uint32_t snap, link, caplen, origlen;
    uint16_t vmaj;
    int ret;

    /* version major, minor, thiszone, sigfigs, snaplen, network */
    if (ck_reader_u16be(r, &vmaj) != 0 || ck_reader_bytes(r, 2, &ign) != 0 ||
        ck_reader_bytes(r, 8, &ign) != 0 || rd_u32(r, swap, &snap) != 0 ||
        rd_u32(r, swap, &link) != 0)
        return ck_error_set(CK_ERR_DECODE, "capture: truncated file header");
    if ((swap ? __builtin_bswap16(vmaj) : vmaj) != 2)
        return ck_error_set(CK_ERR_DECODE, "capture: pcap version is not 2");
    link &= 0x0fffffff; /* the upper bits carry FCS information */
    if (snap == 0 || snap > CK_LI_PCAP_MAX_SNAP)
        snap = CK_LI_PCAP_MAX_SNAP;
    while (ck_reader_remaining(r) > 0) {
        if (ck_reader_bytes(r, 8, &ign) != 0 || rd_u32(r, swap, &caplen) != 0 ||
            rd_u32(r, swap, &origlen) != 0)
            return ck_error_set(CK_ERR_DECODE, "capture: truncated record header after %llu "
                                               "records", (unsigned long long)stats->records);
        if (caplen > snap)
            return ck_error_set(CK_ERR_DECODE, "capture: record %llu longer than the snap "
                                               "length", (unsigned long long)stats->records + 1);
        if (ck_reader_bytes(r, caplen, &pkt) != 0)
            return ck_error_set(CK_ERR_DECODE, "capture: record %llu truncated",
                                (unsigned long long)stats->records + 1);
        if ((ret = frame(link, pkt, caplen, origlen, cb, ctx, stats)) != 0)
            return ret;
    }
    return 0;
}

/* pcapng (draft-ietf-opsawg-pcapng): what tshark and dumpcap write by default. Blocks are
 * type, total length, body, total length again; a Section Header Block fixes the byte order
 * and starts a new list of interfaces, each Interface Description Block gives one interface's
 * link type; packets are Enhanced (6) or Simple (3) Packet Blocks. Other blocks are skipped. */
#define NG_SHB 0x0a0d0d0au
#define NG_IDB 1u
#define NG_SPB 3u
#define NG_EPB 6u
#define NG_BOM 0x1a2b3c4du
#define NG_MAX_IFACES 64
#define NG_MAX_BLOCK (CK_LI_PCAP_MAX_SNAP + 4096)

static uint32_t
ng_u32(const uint8_t *p, bool swap)
{
    uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];

    return swap ? __builtin_bswap32(v) : v;
}

static int
walk_ng(const uint8_t *buf, size_t len, ck_li_udp_cb cb, void *ctx,
        struct ck_li_pcap_stats *stats)
{
    uint32_t links[NG_MAX_IFACES], snaps[NG_MAX_IFACES];
    size_t n_if = 0, off = 0;
    bool swap = false, have_shb = false;
    int ret;

    while (off < len) {
        const uint8_t *b = buf + off, *body;
        uint32_t type, blen;
        size_t body_len;

        if (len - off < 12)
            return ck_error_set(CK_ERR_DECODE, "capture: truncated pcapng block");
        if (ng_u32(b, false) == NG_SHB) {
            uint32_t bom;
            if (len - off < 28)
                return ck_error_set(CK_ERR_DECODE, "capture: truncated section header");
            bom = ng_u32(b + 8, false);
            if (bom == NG_BOM)
                swap = false;
            else if (__builtin_bswap32(bom) == NG_BOM)
                swap = true;
            else
                return ck_error_set(CK_ERR_DECODE, "capture: bad pcapng byte-order magic");
            have_shb = true;
            n_if = 0;
        } else if (!have_shb) {
            return ck_error_set(CK_ERR_DECODE, "capture: not a pcap or pcapng file");
        }
        type = ng_u32(b, swap);
        blen = ng_u32(b + 4, swap);
        if (blen < 12 || (blen & 3) != 0 || blen > len - off || blen > NG_MAX_BLOCK ||
            ng_u32(b + blen - 4, swap) != blen)
            return ck_error_set(CK_ERR_DECODE, "capture: bad pcapng block length");
        body = b + 8;
        body_len = blen - 12;
        switch (type) {
        case NG_IDB:
            if (body_len < 8)
                return ck_error_set(CK_ERR_DECODE, "capture: short interface description");
            if (n_if == NG_MAX_IFACES)
                return ck_error_set(CK_ERR_LIMIT, "capture: more than %d interfaces",
                                    NG_MAX_IFACES);
            links[n_if] = swap ? (uint32_t)(body[1] << 8 | body[0])
                               : (uint32_t)(body[0] << 8 | body[1]);
            snaps[n_if] = ng_u32(body + 4, swap);
            if (snaps[n_if] == 0 || snaps[n_if] > CK_LI_PCAP_MAX_SNAP)
                snaps[n_if] = CK_LI_PCAP_MAX_SNAP;
            n_if++;
            break;
        case NG_EPB: {
            uint32_t ifc, caplen, origlen;
            if (body_len < 20)
                return ck_error_set(CK_ERR_DECODE, "capture: short packet block");
            ifc = ng_u32(body, swap);
            caplen = ng_u32(body + 12, swap);
            origlen = ng_u32(body + 16, swap);
            if (ifc >= n_if)
                return ck_error_set(CK_ERR_DECODE, "capture: packet of an undeclared "
                                                   "interface");
            if (caplen > body_len - 20 || caplen > snaps[ifc])
                return ck_error_set(CK_ERR_DECODE, "capture: packet longer than its block");
            if ((ret = frame(links[ifc], body + 20, caplen, origlen, cb, ctx, stats)) != 0)
                return ret;
            break;
        }
        case NG_SPB: {
            uint32_t origlen, caplen;
            if (body_len < 4 || n_if == 0)
                return ck_error_set(CK_ERR_DECODE, "capture: bad simple packet block");
            origlen = ng_u32(body, swap);
            caplen = origlen;
            if (caplen > snaps[0])
                caplen = snaps[0];
            if (caplen > body_len - 4)
                return ck_error_set(CK_ERR_DECODE, "capture: packet longer than its block");
            if ((ret = frame(links[0], body + 4, caplen, origlen, cb, ctx, stats)) != 0)
                return ret;
            break;
        }
        default:
            break;
        }
        off += blen;
    }
    return 0;
}

int
ck_li_pcap_walk(const uint8_t *buf, size_t len, ck_li_udp_cb cb, void *ctx,
                struct ck_li_pcap_stats *stats)
{
    ck_reader r;
    uint32_t magic;

    memset(stats, 0, sizeof(*stats));
    if (len > CK_LI_PCAP_MAX_FILE)
        return ck_error_set(CK_ERR_LIMIT, "capture: larger than %u bytes", CK_LI_PCAP_MAX_FILE);
    ck_reader_init(&r, buf, len);
    if (ck_reader_u32be(&r, &magic) != 0)
        return ck_error_set(CK_ERR_DECODE, "capture: not a pcap file (too short)");
    if (magic == PCAP_MAGIC_US || magic == PCAP_MAGIC_NS)
        return walk_classic(&r, false, cb, ctx, stats);
    if (__builtin_bswap32(magic) == PCAP_MAGIC_US || __builtin_bswap32(magic) == PCAP_MAGIC_NS)
        return walk_classic(&r, true, cb, ctx, stats);
    if (magic == NG_SHB)
        return walk_ng(buf, len, cb, ctx, stats);
    return ck_error_set(CK_ERR_DECODE, "capture: not a pcap or pcapng file");
}
