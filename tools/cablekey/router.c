/* Address authentication to the router (seed 002, FIG. 12; docs/PROTOCOL.md "Router address
 * authentication"; docs/cablekey.md "router serve" and "mta router-auth"):
 *
 *   cablekey router serve      the router simulator: KMM AP Request / AP Reply on UDP with the
 *                              router's keytab, one AH SA pair per device bound to the address
 *                              the device keyed from, and a raw IP socket that accepts an AH
 *                              packet only if the SA of its SPI verifies it AND its source
 *                              address is that SA's device address.
 *   cablekey mta router-auth   the device: a ticket for the router's principal, the AP exchange
 *                              (suite sha1-null), then N AH-protected UDP datagrams on a raw
 *                              socket (IPPROTO_RAW: the device writes the whole IPv4 header,
 *                              because the ICV covers it). Test options forge the source address,
 *                              the SPI, tamper with a packet or replay one.
 *
 * The AP exchange is the PacketCable KMM one (lib/kmm) rather than lib/endpoint, which installs
 * ESP SAs and hides the keys; AH needs the raw keys. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cablekey/ah.h"
#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/kmm.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/nametypes.h"
#include "cablekey/net.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "cli.h"

#define ROUTER_MAX_SAS 256
#define ROUTER_DEFAULT_LIFETIME 3600
#define ROUTER_DEFAULT_CLOCKSKEW 300
#define ROUTER_PRINCIPAL_MAX 256
#define KMM_BUF 8192
#define DISCARD_PORT 9            /* RFC 863: what the device's datagrams are addressed to */
#define MAX_SEND 1000000

static const struct ck_kmm_suite ah_suite = {CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL};

/* ============================================================================================
 * The router.
 */

struct router_sa {
    bool used;
    uint8_t addr[4];                  /* the device address the SA is bound to */
    char principal[ROUTER_PRINCIPAL_MAX];
    uint32_t spi_router, spi_device;
    int64_t expires;
    ck_ah_sa *in;                     /* device -> router, SPI spi_router */
    ck_ah_sa *out;                    /* router -> device, SPI spi_device: the echoes */
    uint64_t accepted;
};

enum drop_reason {
    DROP_MALFORMED, DROP_UNSUPPORTED, DROP_UNKNOWN_SPI, DROP_EXPIRED, DROP_SOURCE, DROP_REPLAY,
    DROP_ICV, DROP_COUNT,
};
static const char *const drop_names[DROP_COUNT] = {
    "malformed", "unsupported", "unknown-spi", "expired", "source-mismatch", "replay", "bad-icv",
};

struct router {
    ck_keytab *kt;
    ck_rcache *rc;
    const char *service;              /* NULL: any principal in the keytab */
    int64_t lifetime, clockskew;
    int out_fd;                       /* raw IPPROTO_RAW socket for the echoes */
    uint16_t next_id;
    struct router_sa sas[ROUTER_MAX_SAS];
    uint64_t accepted, echoed, dropped[DROP_COUNT], exchanges, refused;
};

static volatile sig_atomic_t router_stop;

static void
on_signal(int sig)
{
    (void)sig;
    router_stop = 1;
}

static void
sa_release(struct router_sa *s)
{
    ck_ah_sa_free(s->in);
    ck_ah_sa_free(s->out);
    ck_memzero(s, sizeof(*s));
}

static struct router_sa *
sa_by_spi(struct router *r, uint32_t spi)
{
    for (size_t i = 0; i < ROUTER_MAX_SAS; i++)
        if (r->sas[i].used && r->sas[i].spi_router == spi)
            return &r->sas[i];
    return NULL;
}

static const char *
ip4(const uint8_t a[4], char *buf, size_t size)
{
    if (inet_ntop(AF_INET, a, buf, (socklen_t)size) == NULL)
        ck_strlcpy(buf, "?", size);
    return buf;
}

/* A KRB-ERROR for code, wrapped in a KMM Error Reply. */
static int
error_reply(const struct router *r, int32_t code, const char *e_text, uint8_t *out, size_t cap,
            size_t *out_len)
{
    int64_t now;
    int32_t usec;

    ck_now(&now, &usec);
    return ck_kmm_error_reply_encode(r->service != NULL ? r->service : "router", code, e_text,
                                     now, usec, CK_KMM_DOI_IPSEC, out, cap, out_len);
}

static int
random_spi(struct router *r, uint32_t *spi)
{
    for (int i = 0; i < 64; i++) {
        uint32_t v;
        int rc;
        if ((rc = ck_random_bytes(&v, sizeof(v))) != 0)
            return rc;
        if (v >= CK_AH_SPI_MIN && sa_by_spi(r, v) == NULL) {
            *spi = v;
            return 0;
        }
    }
    return ck_error_set(CK_ERR_LIMIT, "no free SPI");
}

/* A verified AP Request from addr: the SA pair and the AP Reply. Returns 0 with the reply, or
 * CK_ERR_PROTO with *krb_error and why set (the caller answers with an Error Reply). */
static int
ap_request(struct router *r, const uint8_t *buf, const struct ck_kmm_msg *m,
           const uint8_t addr[4], uint8_t *reply, size_t cap, size_t *reply_len,
           int32_t *krb_error, char *why, size_t why_size)
{
    ck_ap_req_result ap;
    struct ck_ah_keys keys;
    struct router_sa *slot = NULL, sa;
    ck_key subkey;
    uint8_t hkey[CK_KMM_HMAC_KEY_LEN], *aprep = NULL;
    size_t aprep_len = 0;
    struct ck_kmm_msg rep;
    char a[INET_ADDRSTRLEN];
    bool offered = false;
    int64_t now;
    int rc;

    memset(&ap, 0, sizeof(ap));
    memset(&keys, 0, sizeof(keys));
    memset(&sa, 0, sizeof(sa));
    memset(&subkey, 0, sizeof(subkey));
    *reply_len = 0;
    *krb_error = CK_KRB_ERR_GENERIC;
    ck_now(&now, NULL);
#define REFUSE(code, ...)                                                                    \
    do {                                                                                     \
        *krb_error = (code);                                                                 \
        snprintf(why, why_size, __VA_ARGS__);                                                \
        rc = CK_ERR_PROTO;                                                                   \
        goto out;                                                                            \
    } while (0)
    if (ck_ap_req_verify(m->krb, m->krb_len, ck_ap_keytab_key_fn, r->kt, r->service, NULL,
                         r->clockskew, CK_KU_AP_REQ_AUTH, &ap) != 0)
        REFUSE(ap.krb_error != 0 ? ap.krb_error : CK_KRB_ERR_GENERIC, "%s", ck_error_context());
    /* The principal is what the address binding compares: never a placeholder. */
    if (ck_asn1_principal_unparse(ap.enc_ticket->cname, ap.enc_ticket->crealm, sa.principal,
                                  sizeof(sa.principal)) != 0)
        REFUSE(CK_KRB_ERR_GENERIC, "client principal name too long");
    rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &ap.session_key, hkey);
    if (rc == 0)
        rc = ck_kmm_verify(buf, m, hkey);
    if (rc != 0)
        REFUSE(CK_KRB_AP_ERR_MODIFIED, "KMM HMAC does not verify");
    /* After the HMAC, as cablekey-cms does: a forged copy cannot get the real one refused. */
    rc = ck_rcache_check_and_store(r->rc, sa.principal, r->service != NULL ? r->service : "-",
                                   ap.ctime, ap.cusec,
                                   ASN1_STRING_get0_data(ap.auth_enc->cipher),
                                   (size_t)ASN1_STRING_length(ap.auth_enc->cipher), now);
    if (rc == CK_ERR_REPLAY)
        REFUSE(CK_KRB_AP_ERR_REPEAT, "replayed authenticator");
    if (rc != 0)
        REFUSE(CK_KRB_ERR_GENERIC, "%s", ck_error_context());
    for (size_t i = 0; i < m->n_suites; i++)
        if (m->suites[i].auth == ah_suite.auth && m->suites[i].enc == ah_suite.enc)
            offered = true;
    if (!offered)
        REFUSE(CK_KDC_ERR_ETYPE_NOSUPP, "sha1-null (AH) not offered");
    if (m->spi < CK_AH_SPI_MIN)
        REFUSE(CK_KRB_ERR_GENERIC, "device SPI 0x%08x below %u", m->spi, CK_AH_SPI_MIN);
    /* One address, one device: an address held by a live SA of another principal is not
     * handed over (the seed's "unique security association"); the same principal re-keying
     * replaces its own SA. */
    for (size_t i = 0; i < ROUTER_MAX_SAS; i++) {
        struct router_sa *s = &r->sas[i];
        if (s->used && s->expires <= now)
            sa_release(s);
        if (!s->used) {
            if (slot == NULL)
                slot = s;
            continue;
        }
        if (memcmp(s->addr, addr, 4) != 0)
            continue;
        if (strcmp(s->principal, sa.principal) != 0)
            REFUSE(CK_KRB_AP_ERR_BADADDR, "address %s is bound to another device",
                   ip4(addr, a, sizeof(a)));
        sa_release(s);
        slot = s;
    }
    if (slot == NULL)
        REFUSE(CK_KRB_ERR_GENERIC, "SA table full");
    memcpy(sa.addr, addr, 4);
    sa.spi_device = m->spi;
    sa.expires = now + r->lifetime;
    if ((rc = random_spi(r, &sa.spi_router)) != 0 ||
        (rc = ck_random_key(ap.session_key.enctype, &subkey)) != 0 ||
        (rc = ck_ap_rep_build(&ap.session_key, ap.ctime, ap.cusec, &subkey, NULL, &aprep,
                              &aprep_len)) != 0 ||
        (rc = ck_ah_derive_keys(&subkey, sa.spi_device, sa.spi_router, &keys)) != 0 ||
        (rc = ck_ah_sa_new(&(struct ck_ah_sa_params){.spi = sa.spi_router, .key = keys.key_d2r,
                                                     .key_len = CK_AH_KEY_LEN},
                           &sa.in)) != 0 ||
        (rc = ck_ah_sa_new(&(struct ck_ah_sa_params){.spi = sa.spi_device, .key = keys.key_r2d,
                                                     .key_len = CK_AH_KEY_LEN},
                           &sa.out)) != 0 ||
        (rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &subkey, hkey)) != 0)
        REFUSE(CK_KRB_ERR_GENERIC, "%s", ck_error_context());
    memset(&rep, 0, sizeof(rep));
    rep.type = CK_KMM_AP_REP;
    rep.doi = CK_KMM_DOI_IPSEC;
    rep.version = CK_KMM_VERSION;
    rep.krb = aprep;
    rep.krb_len = aprep_len;
    rep.spi = sa.spi_router;
    rep.n_suites = 1;
    rep.suites[0] = ah_suite;
    rep.lifetime = (uint32_t)r->lifetime;
    rep.grace = (uint32_t)(r->lifetime / 10);
    rep.reestablish = m->reestablish;
    if ((rc = ck_kmm_encode(&rep, reply, cap, reply_len)) != 0 ||
        (rc = ck_kmm_seal(reply, *reply_len, hkey)) != 0)
        REFUSE(CK_KRB_ERR_GENERIC, "%s", ck_error_context());
    sa.used = true;
    *slot = sa;
    memset(&sa, 0, sizeof(sa));
    printf("router: sa %s addr %s spi in 0x%08x out 0x%08x suite sha1-null lifetime %lld\n",
           slot->principal, ip4(addr, a, sizeof(a)), slot->spi_router, slot->spi_device,
           (long long)r->lifetime);
    r->exchanges++;
    rc = 0;
#undef REFUSE
out:
    if (rc != 0) {
        *reply_len = 0;
        if (why[0] == '\0')
            snprintf(why, why_size, "%s", ck_error_context());
    }
    ck_ah_sa_free(sa.in);
    ck_ah_sa_free(sa.out);
    ck_memzero(&sa, sizeof(sa));
    ck_ah_keys_clear(&keys);
    ck_key_clear(&subkey);
    ck_memzero(hkey, sizeof(hkey));
    ck_asn1_free_der(aprep, aprep_len);
    ck_ap_req_result_clear(&ap);
    return rc;
}

static void
on_kmm(struct router *r, int fd)
{
    uint8_t buf[KMM_BUF], reply[KMM_BUF];
    struct sockaddr_storage from;
    socklen_t from_len = sizeof(from);
    struct ck_kmm_msg m;
    size_t reply_len = 0;
    char peer[CK_NET_ADDRSTRLEN], why[200] = "";
    int32_t krb_error = 0;
    ssize_t n;

    n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &from_len);
    if (n <= 0)
        return;
    ck_net_addr_format((const struct sockaddr *)&from, peer, sizeof(peer));
    if (from.ss_family != AF_INET) {
        printf("router: kmm %s: dropped (IPv4 devices only)\n", peer);
        return;
    }
    if (ck_kmm_decode(buf, (size_t)n, &m) != 0 || m.type != CK_KMM_AP_REQ ||
        m.doi != CK_KMM_DOI_IPSEC) {
        r->refused++;
        printf("router: kmm %s: dropped (not an IPsec AP Request)\n", peer);
        return;
    }
    if (ap_request(r, buf, &m, (const uint8_t *)&((struct sockaddr_in *)&from)->sin_addr, reply,
                   sizeof(reply), &reply_len, &krb_error, why, sizeof(why)) != 0) {
        r->refused++;
        printf("router: kmm %s: AP Request refused: %s (KRB-ERROR %d)\n", peer, why, krb_error);
        /* Never more bytes out than in: no amplification towards a spoofed source. */
        if (error_reply(r, krb_error, why, reply, sizeof(reply), &reply_len) != 0 ||
            reply_len > (size_t)n)
            return;
    }
    if (sendto(fd, reply, reply_len, 0, (struct sockaddr *)&from, from_len) < 0)
        printf("router: kmm %s: send: %s\n", peer, strerror(errno));
}

static void
drop(struct router *r, enum drop_reason why, const struct ck_ah_info *info, const uint8_t src[4])
{
    char a[INET_ADDRSTRLEN];

    r->dropped[why]++;
    printf("router: drop src %s spi 0x%08x seq %u reason %s\n", ip4(src, a, sizeof(a)),
           info != NULL ? info->spi : 0, info != NULL ? info->seq : 0, drop_names[why]);
}

/* Answers an accepted UDP datagram with the same data, ports swapped, under the router->device
 * SA: the device checks it with the second key, so both keys of the exchange carry traffic. */
static void
echo(struct router *r, struct router_sa *s, const struct ck_ah_info *info, const uint8_t *pkt)
{
    static uint8_t udp[CK_AH_MAX_PACKET - CK_AH_IPV4_HDR_LEN - CK_AH_HDR_LEN];
    static uint8_t out[CK_AH_MAX_PACKET];
    const uint8_t *in = pkt + info->payload_off;
    struct sockaddr_in to;
    size_t len = 0;

    if (r->out_fd < 0 || info->next_header != IPPROTO_UDP || info->payload_len < 8 ||
        info->payload_len > sizeof(udp))
        return;
    memcpy(udp, in, info->payload_len);
    memcpy(udp, in + 2, 2);
    memcpy(udp + 2, in, 2);
    udp[6] = udp[7] = 0;
    if (++r->next_id == 0)
        r->next_id = 1;
    if (ck_ah_protect_ipv4(s->out, info->dst, s->addr, r->next_id, 64, IPPROTO_UDP, udp,
                           info->payload_len, out, sizeof(out), &len) != 0)
        return;
    memset(&to, 0, sizeof(to));
    to.sin_family = AF_INET;
    memcpy(&to.sin_addr, s->addr, 4);
    if (sendto(r->out_fd, out, len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)len)
        r->echoed++;
}

static void
on_ah(struct router *r, int fd)
{
    static uint8_t pkt[CK_AH_MAX_PACKET];
    struct ck_ah_info info;
    struct router_sa *s;
    uint8_t src[4] = {0};
    char a[INET_ADDRSTRLEN];
    int64_t now;
    ssize_t n;
    int rc;

    n = recv(fd, pkt, sizeof(pkt), 0);
    if (n <= 0)
        return;
    if (n >= 16)
        memcpy(src, pkt + 12, 4);
    if ((rc = ck_ah_parse(pkt, (size_t)n, &info)) != 0) {
        drop(r, rc == CK_ERR_UNSUPPORTED ? DROP_UNSUPPORTED : DROP_MALFORMED, NULL, src);
        return;
    }
    if (info.ip_version != 4) {               /* an AF_INET socket: never, but be sure */
        drop(r, DROP_UNSUPPORTED, &info, src);
        return;
    }
    if ((s = sa_by_spi(r, info.spi)) == NULL) {
        drop(r, DROP_UNKNOWN_SPI, &info, src);
        return;
    }
    ck_now(&now, NULL);
    if (s->expires <= now) {
        drop(r, DROP_EXPIRED, &info, src);
        sa_release(s);
        return;
    }
    /* The address check first: it costs nothing, and a packet from the wrong address must not
     * touch the SA's replay window even if its ICV were right (a device forging another's
     * address under its own SA). */
    if (memcmp(info.src, s->addr, 4) != 0) {
        drop(r, DROP_SOURCE, &info, src);
        return;
    }
    rc = ck_ah_verify(s->in, pkt, (size_t)n, &info);
    if (rc == CK_ERR_REPLAY) {
        drop(r, DROP_REPLAY, &info, src);
        return;
    }
    if (rc != 0) {
        drop(r, rc == CK_ERR_INTEGRITY ? DROP_ICV : DROP_MALFORMED, &info, src);
        return;
    }
    s->accepted++;
    r->accepted++;
    printf("router: accept src %s spi 0x%08x seq %u proto %u len %zu principal %s\n",
           ip4(info.src, a, sizeof(a)), info.spi, info.seq, info.next_header, info.payload_len,
           s->principal);
    echo(r, s, &info, pkt);
}

static const char router_help[] =
    "usage: cablekey router serve --keytab FILE [--service PRINCIPAL] --listen ADDR:PORT\n"
    "           --iface IFACE [--lifetime SECONDS] [--clockskew SECONDS]\n"
    "\n"
    "A router simulator for address authentication (seed 002, FIG. 12): devices key an AH SA\n"
    "pair with it in one Kerberized KMM AP Request / AP Reply exchange (suite sha1-null) on\n"
    "UDP ADDR:PORT; it then accepts an AH packet arriving on IFACE (raw IP socket, protocol 51)\n"
    "only if the SA of its SPI verifies its ICV and its source address is the address the\n"
    "device keyed from. Needs CAP_NET_RAW.\n"
    "  --keytab     the router's keys (e.g. router/HOST@REALM)\n"
    "  --service    the principal tickets must be for (default: any key in the keytab)\n"
    "  --listen     the KMM address (port 1293 if none)\n"
    "  --iface      the interface AH packets arrive on\n"
    "  --lifetime   SA lifetime (default 3600)\n"
    "  --clockskew  allowed authenticator clock skew (default 300)\n"
    "Output, one line each: 'router: ready ...', 'router: sa PRINCIPAL addr A spi in X out Y\n"
    "...', 'router: accept src A spi X seq N proto P len L principal P', 'router: drop src A\n"
    "spi X seq N reason R' (R: malformed, unsupported, unknown-spi, expired, source-mismatch,\n"
    "replay, bad-icv); on SIGTERM or SIGINT 'router: stopped accepted N dropped M (R n, ...)\n"
    "exchanges E refused F', exit 0.\n";

enum {
    OPT_KEYTAB = 256, OPT_SERVICE, OPT_LISTEN, OPT_IFACE, OPT_LIFETIME, OPT_CLOCKSKEW,
    OPT_CCACHE, OPT_ROUTER, OPT_KDC, OPT_SEND, OPT_SOURCE, OPT_SPI, OPT_TAMPER, OPT_REPLAY,
    OPT_INTERVAL, OPT_TIMEOUT, OPT_ECHO_WAIT, OPT_HELP,
};

static int
router_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"keytab", required_argument, NULL, OPT_KEYTAB},
        {"service", required_argument, NULL, OPT_SERVICE},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"iface", required_argument, NULL, OPT_IFACE},
        {"lifetime", required_argument, NULL, OPT_LIFETIME},
        {"clockskew", required_argument, NULL, OPT_CLOCKSKEW},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *what = "router serve", *keytab = NULL, *listen_spec = NULL, *iface = NULL;
    struct router *r = NULL;
    struct addrinfo hints, *res = NULL;
    struct sigaction sa;
    char host[256], port_s[8];
    uint16_t port = 0;
    int c, rc = CLI_FAIL, kfd = -1, afd = -1, gai;
    uint64_t dropped = 0;

    if ((r = calloc(1, sizeof(*r))) == NULL)
        return cli_fail(what, CK_ERR_NOMEM);
    r->lifetime = ROUTER_DEFAULT_LIFETIME;
    r->out_fd = -1;
    r->clockskew = ROUTER_DEFAULT_CLOCKSKEW;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_KEYTAB: keytab = optarg; break;
        case OPT_SERVICE: r->service = optarg; break;
        case OPT_LISTEN: listen_spec = optarg; break;
        case OPT_IFACE: iface = optarg; break;
        case OPT_LIFETIME:
            if (ck_parse_int64(optarg, 10, 7 * 86400, &r->lifetime) != 0) {
                rc = cli_usage_error(what, "--lifetime: seconds, 10..604800");
                goto out;
            }
            break;
        case OPT_CLOCKSKEW:
            if (ck_parse_int64(optarg, 1, 86400, &r->clockskew) != 0) {
                rc = cli_usage_error(what, "--clockskew: seconds, 1..86400");
                goto out;
            }
            break;
        default:
            rc = cli_getopt_other(what, c, OPT_HELP, argv, router_help);
            if (rc == CLI_HELP_SHOWN)
                rc = CLI_OK;
            goto out;
        }
    }
    if (optind != argc) {
        rc = cli_no_more_args(what, argv[optind]);
        goto out;
    }
    if (keytab == NULL || listen_spec == NULL || iface == NULL) {
        rc = cli_usage_error(what, "--keytab, --listen and --iface are required");
        goto out;
    }
    if (strlen(iface) >= IFNAMSIZ) {
        rc = cli_usage_error(what, "--iface: name too long");
        goto out;
    }
    if (ck_net_parse_listen(listen_spec, CK_KMM_PORT, host, sizeof(host), &port) != 0 ||
        port == 0) {
        rc = cli_usage_error(what, "--listen: bad address '%s'", listen_spec);
        goto out;
    }
    if ((gai = ck_keytab_read(keytab, &r->kt)) != 0) {
        rc = cli_fail(what, gai);
        goto out;
    }
    if ((gai = ck_rcache_new(0, 2 * r->clockskew, &r->rc)) != 0) {
        rc = cli_fail(what, gai);
        goto out;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    snprintf(port_s, sizeof(port_s), "%u", port);
    if ((gai = getaddrinfo(host[0] != '\0' ? host : NULL, port_s, &hints, &res)) != 0) {
        fprintf(stderr, "cablekey: %s: --listen %s: %s\n", what, listen_spec, gai_strerror(gai));
        goto out;
    }
    if ((kfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(kfd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "cablekey: %s: KMM socket %s: %s\n", what, listen_spec, strerror(errno));
        goto out;
    }
    if ((afd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, CK_AH_PROTO)) < 0 ||
        setsockopt(afd, SOL_SOCKET, SO_BINDTODEVICE, iface, (socklen_t)strlen(iface) + 1) != 0) {
        fprintf(stderr, "cablekey: %s: raw AH socket on %s: %s\n", what, iface, strerror(errno));
        goto out;
    }
    if ((r->out_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW)) < 0) {
        fprintf(stderr, "cablekey: %s: raw IP socket: %s\n", what, strerror(errno));
        goto out;
    }
    if (ck_random_bytes(&r->next_id, sizeof(r->next_id)) != 0)
        r->next_id = 1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("router: ready kmm %s iface %s service %s\n", listen_spec, iface,
           r->service != NULL ? r->service : "(any in the keytab)");
    while (!router_stop) {
        struct pollfd p[2] = {{.fd = kfd, .events = POLLIN}, {.fd = afd, .events = POLLIN}};
        int k = poll(p, 2, 500);
        if (k < 0 && errno != EINTR) {
            fprintf(stderr, "cablekey: %s: poll: %s\n", what, strerror(errno));
            goto out;
        }
        if (k <= 0)
            continue;
        if (p[0].revents & POLLIN)
            on_kmm(r, kfd);
        if (p[1].revents & POLLIN)
            on_ah(r, afd);
    }
    for (int i = 0; i < DROP_COUNT; i++)
        dropped += r->dropped[i];
    printf("router: stopped accepted %llu echoed %llu dropped %llu (",
           (unsigned long long)r->accepted, (unsigned long long)r->echoed,
           (unsigned long long)dropped);
    for (int i = 0; i < DROP_COUNT; i++)
        printf("%s%s %llu", i > 0 ? ", " : "", drop_names[i], (unsigned long long)r->dropped[i]);
    printf(") exchanges %llu refused %llu\n", (unsigned long long)r->exchanges,
           (unsigned long long)r->refused);
    rc = CLI_OK;
out:
    if (res != NULL)
        freeaddrinfo(res);
    if (kfd >= 0)
        close(kfd);
    if (afd >= 0)
        close(afd);
    if (r != NULL) {
        if (r->out_fd >= 0)
            close(r->out_fd);
        for (size_t i = 0; i < ROUTER_MAX_SAS; i++)
            sa_release(&r->sas[i]);
        ck_keytab_free(r->kt);
        ck_rcache_free(r->rc);
        ck_memzero(r, sizeof(*r));
        free(r);
    }
    return rc;
}

int
cli_router(int argc, char **argv)
{
    int rc;

    if (cli_family_help(argc, argv, router_help, NULL, &rc))
        return rc;
    if (strcmp(argv[1], "serve") == 0)
        return router_serve(argc - 1, argv + 1);
    return cli_unknown_verb("router", argv[1]);
}

/* ============================================================================================
 * The device: cablekey mta router-auth.
 */

#define AUTH_TRIES 3
#define AUTH_WAIT_MS 2000

static const char auth_help[] =
    "usage: cablekey mta router-auth --ccache FILE --router ADDR:PORT [--service PRINCIPAL]\n"
    "           [--kdc HOST:PORT] --send N [--interval MS] [--timeout MS]\n"
    "           [--echo-wait MS] [--source ADDR] [--spi SPI] [--tamper K] [--replay]\n"
    "\n"
    "Keys AH with a router (seed 002, FIG. 12) in one Kerberized KMM AP Request / AP Reply\n"
    "exchange (suite sha1-null) and sends N AH-protected UDP datagrams (to the discard port)\n"
    "on a raw IP socket; the router echoes each one it accepts under the router->device SA,\n"
    "and the echoes that verify are counted. Needs CAP_NET_RAW.\n"
    "  --ccache     MIT FILE ccache with the router's ticket or a TGT\n"
    "  --router     the router's KMM address (port 1293 if none)\n"
    "  --service    the router's principal (default router/HOST with the --router host)\n"
    "  --kdc        the KDC for the TGS exchange (repeatable; default: krb5.conf)\n"
    "  --send       datagrams to send (0..1000000)\n"
    "  --interval   milliseconds between datagrams (default 10)\n"
    "  --timeout    milliseconds to wait for the AP Reply, per try (default 2000, 3 tries)\n"
    "  --echo-wait  milliseconds to wait for the last echoes after the last datagram\n"
    "               (default 1000)\n"
    "Test options (what an attacker does; the router must drop these):\n"
    "  --source     the IPv4 source address written into every packet (default: this\n"
    "               device's address towards the router)\n"
    "  --spi        the SPI written into every packet instead of the router's\n"
    "  --tamper K   flip one payload bit of datagram K after it was protected\n"
    "  --replay     send the last datagram a second time\n"
    "Output: 'router-auth: ok router ADDR service S spi in X out Y src A sent N echoed M', or\n"
    "'router-auth: FAILED ...: reason'. Exit 0 when every datagram was sent (the router, not\n"
    "the device, decides what is accepted: echoed says what came back); 1 otherwise.\n";

struct aopts {
    const char *ccache, *router, *service, *source;
    const char *kdcs[CK_KDC_MAX_KDCS];
    size_t n_kdcs;
    int64_t send, interval, timeout, tamper, spi, echo_wait;
    bool replay;
};

static int
parse_auth_opts(const char *what, int argc, char **argv, struct aopts *o)
{
    static const struct option opts[] = {
        {"ccache", required_argument, NULL, OPT_CCACHE},
        {"router", required_argument, NULL, OPT_ROUTER},
        {"service", required_argument, NULL, OPT_SERVICE},
        {"kdc", required_argument, NULL, OPT_KDC},
        {"send", required_argument, NULL, OPT_SEND},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"source", required_argument, NULL, OPT_SOURCE},
        {"spi", required_argument, NULL, OPT_SPI},
        {"tamper", required_argument, NULL, OPT_TAMPER},
        {"replay", no_argument, NULL, OPT_REPLAY},
        {"echo-wait", required_argument, NULL, OPT_ECHO_WAIT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int c, rc;

    memset(o, 0, sizeof(*o));
    o->send = -1;
    o->interval = 10;
    o->timeout = AUTH_WAIT_MS;
    o->echo_wait = 1000;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_CCACHE: o->ccache = optarg; break;
        case OPT_ROUTER: o->router = optarg; break;
        case OPT_SERVICE: o->service = optarg; break;
        case OPT_SOURCE: o->source = optarg; break;
        case OPT_REPLAY: o->replay = true; break;
        case OPT_KDC:
            if ((rc = cli_mta_add_kdc(what, optarg, o->kdcs, &o->n_kdcs)) != CLI_OK)
                return rc;
            break;
        case OPT_SEND:
            if (ck_parse_int64(optarg, 0, MAX_SEND, &o->send) != 0)
                return cli_usage_error(what, "--send: 0..%d", MAX_SEND);
            break;
        case OPT_INTERVAL:
            if (ck_parse_int64(optarg, 0, 60000, &o->interval) != 0)
                return cli_usage_error(what, "--interval: milliseconds, 0..60000");
            break;
        case OPT_TIMEOUT:
            if (ck_parse_int64(optarg, 1, 600000, &o->timeout) != 0)
                return cli_usage_error(what, "--timeout: milliseconds, 1..600000");
            break;
        case OPT_ECHO_WAIT:
            if (ck_parse_int64(optarg, 0, 60000, &o->echo_wait) != 0)
                return cli_usage_error(what, "--echo-wait: milliseconds, 0..60000");
            break;
        case OPT_TAMPER:
            if (ck_parse_int64(optarg, 1, MAX_SEND, &o->tamper) != 0)
                return cli_usage_error(what, "--tamper: a datagram number, 1..%d", MAX_SEND);
            break;
        case OPT_SPI: {
            char *end = NULL;
            unsigned long long v;
            errno = 0;
            v = strtoull(optarg, &end, 0);
            if (errno != 0 || end == optarg || *end != '\0' || v < CK_AH_SPI_MIN ||
                v > UINT32_MAX)
                return cli_usage_error(what, "--spi: %u..0xffffffff", CK_AH_SPI_MIN);
            o->spi = (int64_t)v;
            break;
        }
        default: return cli_getopt_other(what, c, OPT_HELP, argv, auth_help);
        }
    }
    if (optind != argc)
        return cli_no_more_args(what, argv[optind]);
    if (o->ccache == NULL || *o->ccache == '\0')
        return cli_usage_error(what, "--ccache FILE is required");
    if (o->router == NULL || *o->router == '\0')
        return cli_usage_error(what, "--router ADDR:PORT is required");
    if (o->send < 0)
        return cli_usage_error(what, "--send N is required");
    return CLI_OK;
}

static int64_t
now_ms(void)
{
    return ck_monotonic_ms();
}

/* One AP exchange with the router over the connected socket fd: the AH keys, or an error with
 * the reason in the error context. */
static int
ap_exchange(int fd, const ck_creds *creds, int64_t timeout_ms, struct ck_ah_keys *keys)
{
    const ck_principal *cl = creds->client;
    CK_TICKET *ticket = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    uint8_t hkey[CK_KMM_HMAC_KEY_LEN], buf[KMM_BUF];
    int64_t ctimes[AUTH_TRIES];
    int32_t cusecs[AUTH_TRIES];
    ck_ap_rep_result res;
    uint32_t spi_in = 0;
    int rc, tries = 0;

    memset(&res, 0, sizeof(res));
    if ((rc = ck_asn1_ticket_decode(creds->ticket, creds->ticket_len, &ticket)) != 0 ||
        (rc = ck_asn1_principal_new(cl->name_type, (const char *const *)cl->components,
                                    cl->n_components, &cname)) != 0 ||
        (rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REQ, &creds->session_key, hkey)) != 0)
        goto out;
    do {
        if ((rc = ck_random_bytes(&spi_in, sizeof(spi_in))) != 0)
            goto out;
    } while (spi_in < CK_AH_SPI_MIN);
    for (tries = 0; tries < AUTH_TRIES; tries++) {
        struct ck_kmm_msg m;
        uint8_t *der = NULL;
        size_t der_len = 0, len = 0;
        int64_t deadline;

        if ((rc = ck_ap_req_build(ticket, &creds->session_key, cl->realm, cname,
                                  CK_AP_OPT_MUTUAL_REQUIRED, NULL, CK_KU_AP_REQ_AUTH, NULL, NULL,
                                  &ctimes[tries], &cusecs[tries], &der, &der_len)) != 0)
            goto out;
        memset(&m, 0, sizeof(m));
        m.type = CK_KMM_AP_REQ;
        m.doi = CK_KMM_DOI_IPSEC;
        m.version = CK_KMM_VERSION;
        m.krb = der;
        m.krb_len = der_len;
        m.spi = spi_in;
        m.n_suites = 1;
        m.suites[0] = ah_suite;
        rc = ck_kmm_encode(&m, buf, sizeof(buf), &len);
        if (rc == 0)
            rc = ck_kmm_seal(buf, len, hkey);
        ck_asn1_free_der(der, der_len);
        if (rc != 0)
            goto out;
        if (send(fd, buf, len, 0) < 0) {
            rc = ck_error_set(CK_ERR_IO, "send to the router: %s", strerror(errno));
            goto out;
        }
        deadline = now_ms() + timeout_ms;
        for (;;) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int64_t left = deadline - now_ms();
            struct ck_kmm_msg rep;
            uint8_t rkey[CK_KMM_HMAC_KEY_LEN];
            bool ok = false;
            ssize_t n;

            if (left <= 0 || poll(&p, 1, (int)left) <= 0)
                break;
            n = recv(fd, buf, sizeof(buf), 0);
            if (n <= 0 || ck_kmm_decode(buf, (size_t)n, &rep) != 0)
                continue;
            if (rep.type == CK_KMM_ERROR_REPLY) {
                CK_KRB_ERROR_MSG *e = NULL;
                int32_t code = 0;
                char text[128] = "";
                if (ck_asn1_krb_error_decode(rep.krb, rep.krb_len, &e) == 0) {
                    code = e->error_code;
                    if (e->e_text != NULL)
                        snprintf(text, sizeof(text), ": %.*s", ASN1_STRING_length(e->e_text),
                                 (const char *)ASN1_STRING_get0_data(e->e_text));
                    CK_KRB_ERROR_MSG_free(e);
                }
                /* Advisory only (it carries no HMAC), but nothing else will come. */
                rc = ck_error_set(CK_ERR_KRB, "the router refused: KRB-ERROR %d%s", code, text);
                goto out;
            }
            if (rep.type != CK_KMM_AP_REP || rep.doi != CK_KMM_DOI_IPSEC)
                continue;
            for (int i = tries; i >= 0 && !ok; i--) {
                ck_ap_rep_result_clear(&res);
                ok = ck_ap_rep_verify(rep.krb, rep.krb_len, &creds->session_key, ctimes[i],
                                      cusecs[i], &res) == 0;
            }
            if (!ok || !res.has_subkey)
                continue;
            rc = ck_kmm_hmac_key(CK_KMM_HMAC_AP_REP, &res.subkey, rkey);
            if (rc == 0)
                rc = ck_kmm_verify(buf, &rep, rkey);
            ck_memzero(rkey, sizeof(rkey));
            if (rc != 0)
                continue;
            if (rep.n_suites != 1 || rep.suites[0].auth != ah_suite.auth ||
                rep.suites[0].enc != ah_suite.enc || rep.spi < CK_AH_SPI_MIN) {
                rc = ck_error_set(CK_ERR_PROTO, "AP Reply: not suite sha1-null or a bad SPI");
                goto out;
            }
            rc = ck_ah_derive_keys(&res.subkey, spi_in, rep.spi, keys);
            goto out;
        }
    }
    rc = ck_error_set(CK_ERR_TIMEOUT, "no AP Reply from the router after %d tries", AUTH_TRIES);
out:
    ck_ap_rep_result_clear(&res);
    ck_memzero(hkey, sizeof(hkey));
    CK_TICKET_free(ticket);
    CK_PRINCIPAL_NAME_free(cname);
    return rc;
}

/* Reads the router's echoes from the raw AH socket until deadline (monotonic ms) or until
 * want of them verified: counted only if they verify under the router->device SA and come from
 * the router's address. */
static void
read_echoes(int fd, ck_ah_sa *in, const uint8_t router_addr[4], int64_t deadline, int64_t want,
            int64_t *echoed)
{
    static uint8_t pkt[CK_AH_MAX_PACKET];

    while (*echoed < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        struct ck_ah_info info;
        int64_t left = deadline - now_ms();
        ssize_t n;

        if (poll(&p, 1, left > 0 ? (int)left : 0) <= 0)
            return;
        n = recv(fd, pkt, sizeof(pkt), 0);
        if (n > 0 && ck_ah_verify(in, pkt, (size_t)n, &info) == 0 && info.ip_version == 4 &&
            memcmp(info.src, router_addr, 4) == 0)
            (*echoed)++;
    }
}

int
cli_mta_router_auth(int argc, char **argv)
{
    const char *what = "mta router-auth";
    struct aopts o;
    struct ck_ah_keys keys;
    ck_ah_sa *sa = NULL, *in = NULL;
    ck_creds *creds = NULL;
    ck_kdc_transport t;
    struct sockaddr_in router, local;
    socklen_t local_len = sizeof(local);
    char host[256], failure[300], svc_buf[300], *service = NULL, a[INET_ADDRSTRLEN];
    const char *svc;
    uint8_t src[4], pkt[256], last[256];
    size_t last_len = 0;
    uint16_t port = 0, id;
    bool from_tgs = false;
    int64_t now_s, sent = 0, echoed = 0;
    int rc, ufd = -1, rfd = -1, efd = -1;

    memset(&keys, 0, sizeof(keys));
    if ((rc = parse_auth_opts(what, argc, argv, &o)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if (ck_net_parse_listen(o.router, CK_KMM_PORT, host, sizeof(host), &port) != 0 ||
        host[0] == '\0' || port == 0)
        return cli_usage_error(what, "--router: bad address '%s'", o.router);
    memset(&router, 0, sizeof(router));
    router.sin_family = AF_INET;
    router.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &router.sin_addr) != 1)
        return cli_usage_error(what, "--router: an IPv4 address is required ('%s')", host);
    if (o.source != NULL && inet_pton(AF_INET, o.source, src) != 1)
        return cli_usage_error(what, "--source: not an IPv4 address ('%s')", o.source);
    svc = o.service;
    if (svc == NULL) {
        snprintf(svc_buf, sizeof(svc_buf), "router/%s", host);
        svc = svc_buf;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    ck_now(&now_s, NULL);
    t = (ck_kdc_transport){.kdcs = o.kdcs, .n_kdcs = o.n_kdcs};
    if (ck_endpoint_get_ticket(o.ccache, svc, &t, now_s, &creds, &from_tgs) != 0) {
        snprintf(failure, sizeof(failure), "ticket: %s", ck_error_context());
        goto failed;
    }
    if (ck_principal_unparse(creds->server, 0, &service) != 0)
        service = NULL;
    if ((ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(ufd, (struct sockaddr *)&router, sizeof(router)) != 0 ||
        getsockname(ufd, (struct sockaddr *)&local, &local_len) != 0) {
        snprintf(failure, sizeof(failure), "UDP socket to the router: %s", strerror(errno));
        goto failed;
    }
    if (o.source == NULL)
        memcpy(src, &local.sin_addr, 4);
    if ((rfd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW)) < 0 ||
        (efd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, CK_AH_PROTO)) < 0) {
        snprintf(failure, sizeof(failure), "raw socket: %s (CAP_NET_RAW needed)",
                 strerror(errno));
        goto failed;
    }
    if (ap_exchange(ufd, creds, o.timeout, &keys) != 0) {
        snprintf(failure, sizeof(failure), "%s", ck_error_context());
        goto failed;
    }
    if (ck_ah_sa_new(&(struct ck_ah_sa_params){.spi = o.spi != 0 ? (uint32_t)o.spi
                                                                 : keys.spi_router,
                                               .key = keys.key_d2r, .key_len = CK_AH_KEY_LEN},
                     &sa) != 0 ||
        ck_ah_sa_new(&(struct ck_ah_sa_params){.spi = keys.spi_device, .key = keys.key_r2d,
                                               .key_len = CK_AH_KEY_LEN},
                     &in) != 0) {
        snprintf(failure, sizeof(failure), "%s", ck_error_context());
        goto failed;
    }
    if (ck_random_bytes(&id, sizeof(id)) != 0 || id == 0)
        id = 1;
    for (sent = 0; sent < o.send;) {
        uint8_t payload[64];
        size_t plen, len = 0;
        int n = snprintf((char *)payload + 8, sizeof(payload) - 8, "router-auth %lld",
                         (long long)sent + 1);

        /* UDP header: our KMM port -> discard, length, checksum 0 (none, RFC 768). */
        plen = 8 + (size_t)n;
        payload[0] = (uint8_t)(ntohs(local.sin_port) >> 8);
        payload[1] = (uint8_t)ntohs(local.sin_port);
        payload[2] = 0;
        payload[3] = DISCARD_PORT;
        payload[4] = (uint8_t)(plen >> 8);
        payload[5] = (uint8_t)plen;
        payload[6] = payload[7] = 0;
        if (++id == 0)
            id = 1;
        if (ck_ah_protect_ipv4(sa, src, (const uint8_t *)&router.sin_addr, id, 64, IPPROTO_UDP,
                               payload, plen, pkt, sizeof(pkt), &len) != 0) {
            snprintf(failure, sizeof(failure), "%s", ck_error_context());
            goto failed;
        }
        if (o.tamper == sent + 1)
            pkt[len - 1] ^= 0x01;
        if (sendto(rfd, pkt, len, 0, (struct sockaddr *)&router, sizeof(router)) < 0) {
            snprintf(failure, sizeof(failure), "send: %s", strerror(errno));
            goto failed;
        }
        memcpy(last, pkt, len);
        last_len = len;
        sent++;
        /* The interval is spent collecting echoes (want is never reached: it is a wait). */
        if (sent < o.send)
            read_echoes(efd, in, (const uint8_t *)&router.sin_addr, now_ms() + o.interval,
                        INT64_MAX, &echoed);
    }
    if (o.replay && last_len > 0 &&
        sendto(rfd, last, last_len, 0, (struct sockaddr *)&router, sizeof(router)) < 0) {
        snprintf(failure, sizeof(failure), "send: %s", strerror(errno));
        goto failed;
    }
    read_echoes(efd, in, (const uint8_t *)&router.sin_addr, now_ms() + o.echo_wait, sent,
                &echoed);
    printf("router-auth: ok router %s service %s spi in 0x%08x out 0x%08x src %s sent %lld "
           "echoed %lld%s\n",
           o.router, service != NULL ? service : svc, keys.spi_device,
           o.spi != 0 ? (uint32_t)o.spi : keys.spi_router, ip4(src, a, sizeof(a)),
           (long long)sent, (long long)echoed, o.replay ? " replayed 1" : "");
    rc = CLI_OK;
    goto out;
failed:
    printf("router-auth: FAILED router %s service %s sent %lld: %s\n", o.router,
           service != NULL ? service : svc, (long long)sent, failure);
    rc = CLI_FAIL;
out:
    ck_ah_sa_free(sa);
    ck_ah_sa_free(in);
    ck_ah_keys_clear(&keys);
    ck_creds_free(creds);
    free(service);
    if (ufd >= 0)
        close(ufd);
    if (rfd >= 0)
        close(rfd);
    if (efd >= 0)
        close(efd);
    return rc;
}
