/* cablekey node: the keying server's node agent (include/cablekey/ksv_node.h) on real sockets.
 * One connected UDP socket per KSV, a listen socket for NUDGEs (and anything a KSV sends to the
 * node's port), one receive socket per group multicast address:port (joined on --mcast-if,
 * SO_REUSEADDR so several agents on one host can join), and optionally the userspace ESP
 * datapath (lib/esp, ESP in UDP) for the pushed SAs. Each SA is printed as `ip xfrm` commands;
 * --status keeps a JSON snapshot, rewritten atomically after every change. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <jansson.h>

#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/kmm.h"
#include "cablekey/ksv_node.h"
#include "cablekey/ksv_wire.h"
#include "cablekey/net.h"
#include "cablekey/util.h"
#include "cli.h"

#define NODE_DEFAULT_PORT 7442
#define ESP_DEFAULT_PORT 4500
#define MAX_MCAST (CK_KSVNODE_MAX_KSV * CK_KSVNODE_MAX_GROUPS)
#define MAX_ESP_SAS CK_KSVNODE_MAX_SAS
#define MAX_ESP_SEND 16
#define ONCE_DEFAULT_SEC 60
#define XFRM_BUF 2048
#define ESP_INNER_PORT 7442

enum {
    OPT_NAME = 256, OPT_KSV, OPT_CCACHE, OPT_SERVICE, OPT_KDC, OPT_LISTEN, OPT_MCAST_IF,
    OPT_STATUS, OPT_ESP_LISTEN, OPT_ESP_SEND, OPT_RUN_FOR, OPT_ONCE, OPT_VERBOSE, OPT_HELP,
};

static const struct option node_opts[] = {
    {"name", required_argument, NULL, OPT_NAME},
    {"ksv", required_argument, NULL, OPT_KSV},
    {"ccache", required_argument, NULL, OPT_CCACHE},
    {"service", required_argument, NULL, OPT_SERVICE},
    {"kdc", required_argument, NULL, OPT_KDC},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"mcast-if", required_argument, NULL, OPT_MCAST_IF},
    {"status", required_argument, NULL, OPT_STATUS},
    {"esp-listen", required_argument, NULL, OPT_ESP_LISTEN},
    {"esp-send", required_argument, NULL, OPT_ESP_SEND},
    {"run-for", required_argument, NULL, OPT_RUN_FOR},
    {"once", no_argument, NULL, OPT_ONCE},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char node_help[] =
    "usage: cablekey node --name NODE --ksv ADDR:PORT [--ksv ADDR:PORT ...] --ccache FILE\n"
    "           [--service ksv/HOST@REALM ...] [--kdc HOST:PORT] [--listen ADDR:PORT]\n"
    "           [--mcast-if ADDR] [--status FILE] [--esp-listen ADDR:PORT]\n"
    "           [--esp-send NODE=ADDR:PORT:TEXT] [--run-for SEC] [--once] [--verbose]\n"
    "\n"
    "The keying server's node agent: registers with each KSV (a Kerberos AP exchange with a\n"
    "ticket from the ccache), installs the SAs and group keys the KSV pushes, applies DELETE,\n"
    "REFRESH and signed group rekeys, and raises alarms (SA_EXPIRED, MALFORMED_PACKET,\n"
    "SERVER_CONFLICT, SIGN_FAILED).\n"
    "  --name        the node's name in the KSV topology\n"
    "  --ksv         a KSV's address (port 7441 if none); up to 4, each registered with\n"
    "  --ccache      MIT FILE ccache with the KSV service tickets or a TGT\n"
    "  --service     the KSV's principal, one per --ksv in order (default ksv/HOST of its\n"
    "                address, in the client's realm)\n"
    "  --kdc         the KDC for TGS exchanges when the ccache holds a TGT (repeatable)\n"
    "  --listen      where NUDGEs arrive (default 0.0.0.0:7442)\n"
    "  --mcast-if    the local address of the interface that joins the group addresses\n"
    "  --status      a JSON snapshot of the node's state, rewritten atomically (mode 0600)\n"
    "  --esp-listen  install the SAs into the userspace ESP engine and receive ESP in UDP here\n"
    "  --esp-send    once an OUT SA to ADDR is installed, send TEXT to ADDR:PORT under it\n"
    "                (repeatable); the peer prints 'esp recv from=OURNAME spi=0x... text=TEXT'\n"
    "  --run-for     exit 0 after SEC seconds\n"
    "  --once        exit 0 once registered with every KSV (and every --esp-send sent), 1 if\n"
    "                that takes longer than --run-for (default 60 s)\n"
    "  --verbose     debug lines too (never keys)\n"
    "Output on stdout: one line per event ('node registered ksv=I key_id=0x.. sas=N groups=N',\n"
    "'node group G epoch=E version=V key-check=HEX', 'node alarm sent type=T ...') and each SA\n"
    "as 'ip xfrm' commands, keys included. Exit 0, 1 on failure, 2 usage errors.\n";

struct esp_send {
    const char *peer_name;
    struct sockaddr_storage to;
    socklen_t to_len;
    const char *text;
    bool done;
};

struct nopts {
    const char *name, *ccache, *status, *mcast_if, *listen, *esp_listen;
    const char *ksv_spec[CK_KSVNODE_MAX_KSV];
    const char *service[CK_KSVNODE_MAX_KSV];
    size_t n_ksv, n_service;
    const char *kdcs[CK_KDC_MAX_KDCS];
    size_t n_kdcs;
    struct esp_send sends[MAX_ESP_SEND];
    size_t n_sends;
    int64_t run_for;
    bool once, verbose;
};

struct esp_entry {
    bool used;
    uint8_t dir;
    uint32_t spi;
    struct ck_ksv_addr peer;
    ck_esp_sa *sa;                 /* lib/esp's transforms */
    ck_esp_xf *xf;                 /* the other IKEv2 transforms (ck_esp_xf_*) */
};

struct mcast_sock {
    int fd;
    struct ck_ksv_addr addr;
    uint16_t port;
};

struct runner {
    struct nopts *o;
    ck_ksvnode *node;
    int ksv_fd[CK_KSVNODE_MAX_KSV];
    struct sockaddr_storage ksv_addr[CK_KSVNODE_MAX_KSV];
    socklen_t ksv_len[CK_KSVNODE_MAX_KSV];
    char service_buf[CK_KSVNODE_MAX_KSV][300];
    int listen_fd, esp_fd;
    struct sockaddr_storage esp_local;
    struct mcast_sock mc[MAX_MCAST];
    size_t n_mc;
    int64_t join_retry_ms;         /* a join failed: not again before this */
    struct in_addr mcast_if4;
    unsigned mcast_ifindex;
    char self4[INET_ADDRSTRLEN], self6[INET6_ADDRSTRLEN];
    uint16_t esp_port;
    ck_esp_engine *eng;
    struct esp_entry esp[MAX_ESP_SAS];
    char *last_status;
    bool changed;
};

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* ---------------------------------------------------------------------------------------------
 * Options.
 */

static int
resolve(const char *what, const char *opt, const char *spec, uint16_t default_port, bool passive,
        struct sockaddr_storage *out, socklen_t *out_len, char *host, size_t host_size)
{
    struct addrinfo hints, *res = NULL;
    char port_s[8];
    uint16_t port;
    int gai;

    if (ck_net_parse_listen(spec, default_port, host, host_size, &port) != 0 || port == 0 ||
        (!passive && host[0] == '\0'))
        return cli_usage_error(what, "%s: bad address '%s'", opt, spec);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(port_s, sizeof(port_s), "%u", port);
    if ((gai = getaddrinfo(host[0] != '\0' ? host : NULL, port_s, &hints, &res)) != 0 ||
        res == NULL)
        return cli_usage_error(what, "%s: cannot resolve '%s': %s", opt, spec, gai_strerror(gai));
    memset(out, 0, sizeof(*out));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = res->ai_addrlen;
    freeaddrinfo(res);
    return CLI_OK;
}

/* NODE=ADDR:PORT:TEXT */
static int
parse_esp_send(const char *what, const char *arg, struct esp_send *s, char *store, size_t size)
{
    const char *eq = strchr(arg, '='), *colon;
    char host[256];
    size_t l;

    if (eq == NULL || eq == arg)
        return cli_usage_error(what, "--esp-send: expected NODE=ADDR:PORT:TEXT");
    /* ADDR:PORT ends at the colon after the port ("[v6]:port:text" or "v4:port:text"). */
    colon = eq[1] == '[' ? strchr(eq, ']') : strchr(eq + 1, ':');
    if (colon == NULL || (eq[1] == '[' && colon[1] != ':') ||
        (colon = strchr(colon + (eq[1] == '[' ? 2 : 1), ':')) == NULL)
        return cli_usage_error(what, "--esp-send: expected NODE=ADDR:PORT:TEXT");
    l = (size_t)(colon - (eq + 1));
    if ((size_t)(eq - arg) + 1 + l + 1 > size)
        return cli_usage_error(what, "--esp-send: too long");
    memcpy(store, arg, (size_t)(eq - arg));
    store[eq - arg] = '\0';
    s->peer_name = store;
    memcpy(store + (eq - arg) + 1, eq + 1, l);
    store[(eq - arg) + 1 + l] = '\0';
    s->text = colon + 1;
    if (strlen(s->text) > 1000)
        return cli_usage_error(what, "--esp-send: TEXT over 1000 bytes");
    return resolve(what, "--esp-send", store + (eq - arg) + 1, 0, false, &s->to, &s->to_len, host,
                   sizeof(host));
}

static int
parse_node_opts(const char *what, int argc, char **argv, struct nopts *o, char (*send_store)[300])
{
    int c, rc;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", node_opts, NULL)) != -1) {
        switch (c) {
        case OPT_NAME: o->name = optarg; break;
        case OPT_CCACHE: o->ccache = optarg; break;
        case OPT_STATUS: o->status = optarg; break;
        case OPT_MCAST_IF: o->mcast_if = optarg; break;
        case OPT_LISTEN: o->listen = optarg; break;
        case OPT_ESP_LISTEN: o->esp_listen = optarg; break;
        case OPT_ONCE: o->once = true; break;
        case OPT_VERBOSE: o->verbose = true; break;
        case OPT_KSV:
            if (o->n_ksv >= CK_KSVNODE_MAX_KSV)
                return cli_usage_error(what, "more than %d --ksv", CK_KSVNODE_MAX_KSV);
            o->ksv_spec[o->n_ksv++] = optarg;
            break;
        case OPT_SERVICE:
            if (o->n_service >= CK_KSVNODE_MAX_KSV)
                return cli_usage_error(what, "more than %d --service", CK_KSVNODE_MAX_KSV);
            if (*optarg == '\0')
                return cli_usage_error(what, "--service: empty principal");
            o->service[o->n_service++] = optarg;
            break;
        case OPT_KDC:
            if ((rc = cli_mta_add_kdc(what, optarg, o->kdcs, &o->n_kdcs)) != CLI_OK)
                return rc;
            break;
        case OPT_ESP_SEND:
            if (o->n_sends >= MAX_ESP_SEND)
                return cli_usage_error(what, "more than %d --esp-send", MAX_ESP_SEND);
            if ((rc = parse_esp_send(what, optarg, &o->sends[o->n_sends],
                                     send_store[o->n_sends], sizeof(send_store[0]))) != CLI_OK)
                return rc;
            o->n_sends++;
            break;
        case OPT_RUN_FOR:
            if (ck_parse_int64(optarg, 1, 86400 * 365, &o->run_for) != 0)
                return cli_usage_error(what, "--run-for: seconds, 1..31536000");
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, node_help);
        }
    }
    if (optind != argc)
        return cli_no_more_args(what, argv[optind]);
    if (o->name == NULL || *o->name == '\0' || strlen(o->name) > CK_KSV_MAX_NAME)
        return cli_usage_error(what, "--name NODE (1..%u characters) is required",
                               CK_KSV_MAX_NAME);
    if (o->n_ksv == 0)
        return cli_usage_error(what, "--ksv ADDR:PORT is required");
    if (o->ccache == NULL || *o->ccache == '\0')
        return cli_usage_error(what, "--ccache FILE is required");
    if (o->n_service != 0 && o->n_service != o->n_ksv)
        return cli_usage_error(what, "one --service per --ksv (%zu for %zu)", o->n_service,
                               o->n_ksv);
    if (o->n_sends > 0 && o->esp_listen == NULL)
        return cli_usage_error(what, "--esp-send needs --esp-listen (the ESP engine)");
    return CLI_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Addresses.
 */

static void
ksv_addr_to_text(const struct ck_ksv_addr *a, char *buf, size_t size)
{
    if (a->family == CK_KSV_AF_IPV4)
        inet_ntop(AF_INET, a->addr, buf, (socklen_t)size);
    else if (a->family == CK_KSV_AF_IPV6)
        inet_ntop(AF_INET6, a->addr, buf, (socklen_t)size);
    else
        snprintf(buf, size, "-");
}

static bool
sockaddr_to_ksv(const struct sockaddr_storage *ss, struct ck_ksv_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (ss->ss_family == AF_INET) {
        a->family = CK_KSV_AF_IPV4;
        memcpy(a->addr, &((const struct sockaddr_in *)(const void *)ss)->sin_addr, 4);
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(v6)) {
            a->family = CK_KSV_AF_IPV4;
            memcpy(a->addr, v6->s6_addr + 12, 4);
        } else {
            a->family = CK_KSV_AF_IPV6;
            memcpy(a->addr, v6, 16);
        }
        return true;
    }
    return false;
}

static bool
ksv_addr_eq(const struct ck_ksv_addr *a, const struct ck_ksv_addr *b)
{
    return a->family == b->family &&
           memcmp(a->addr, b->addr, a->family == CK_KSV_AF_IPV6 ? 16 : 4) == 0;
}

/* ---------------------------------------------------------------------------------------------
 * SAs: ip xfrm lines and the ESP engine.
 */

/* Transforms lib/esp runs: the KMM code points are the IKEv2 IDs for these. */
static bool
esp_compatible(const struct ck_ksv_sa *sa)
{
    if (sa->proto != CK_KSV_PROTO_ESP)
        return false;
    if (!((sa->enc_alg == CK_KMM_ENC_AES128 && sa->enc_key_len == 16) ||
          (sa->enc_alg == CK_KMM_ENC_3DES && sa->enc_key_len == 24) ||
          (sa->enc_alg == CK_KMM_ENC_NULL && sa->enc_key_len == 0)))
        return false;
    return (sa->auth_alg == CK_KMM_AUTH_HMAC_SHA1_96 && sa->auth_key_len == 20) ||
           (sa->auth_alg == CK_KMM_AUTH_HMAC_MD5_96 && sa->auth_key_len == 16);
}

static int
esp_sa_from(const struct ck_ksv_sa *sa, ck_esp_sa **out)
{
    struct ck_esp_sa_params p;

    memset(&p, 0, sizeof(p));
    p.spi = sa->spi;
    p.enc = (uint8_t)sa->enc_alg;
    p.auth = (uint8_t)sa->auth_alg;
    p.enc_key = sa->enc_key;
    p.enc_key_len = sa->enc_key_len;
    p.auth_key = sa->auth_key;
    p.auth_key_len = sa->auth_key_len;
    /* Lifetimes are the node agent's: it extends SAs when the KSV is late. */
    return ck_esp_sa_new(&p, out);
}

static int
esp_xf_from(const struct ck_ksv_sa *sa, ck_esp_xf **out)
{
    struct ck_esp_xf_params p;

    memset(&p, 0, sizeof(p));
    p.spi = sa->spi;
    p.enc_alg = sa->enc_alg;
    p.auth_alg = sa->auth_alg;
    p.enc_key = sa->enc_key;
    p.enc_key_len = sa->enc_key_len;
    p.auth_key = sa->auth_key;
    p.auth_key_len = sa->auth_key_len;
    return ck_esp_xf_new(&p, out);
}

static const char *
self_addr(const struct runner *r, uint8_t family)
{
    return family == CK_KSV_AF_IPV6 ? r->self6 : r->self4;
}

static void
append_hex(char *buf, size_t size, size_t *used, const uint8_t *p, size_t n)
{
    if (*used + 2 + 2 * n + 1 > size)
        return;
    *used += (size_t)snprintf(buf + *used, size - *used, "0x");
    for (size_t i = 0; i < n; i++)
        *used += (size_t)snprintf(buf + *used, size - *used, "%02x", p[i]);
}

/* For the transforms lib/esp does not run: the same command shape, written here. */
static void
xfrm_generic(const struct ck_ksvnode_sa *s, const char *src, const char *dst, uint16_t port,
             char *buf, size_t size, size_t *used)
{
    static const struct {
        uint16_t id;
        const char *name;
        unsigned trunc;
    } auths[] = {{1, "hmac(md5)", 96}, {2, "hmac(sha1)", 96}, {12, "hmac(sha256)", 128},
                 {13, "hmac(sha384)", 192}, {14, "hmac(sha512)", 256}};
    const struct ck_ksv_sa *sa = &s->sa;
    const char *enc = NULL;

    *used += (size_t)snprintf(buf + *used, size - *used,
                              "ip xfrm state add src %s dst %s proto %s spi 0x%08x reqid %u mode %s",
                              src, dst, sa->proto == CK_KSV_PROTO_AH ? "ah" : "esp", sa->spi,
                              sa->spi, sa->mode == CK_KSV_MODE_TUNNEL ? "tunnel" : "transport");
    for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++)
        if (auths[i].id == sa->auth_alg && *used < size) {
            *used += (size_t)snprintf(buf + *used, size - *used, " auth-trunc '%s' ",
                                      auths[i].name);
            append_hex(buf, size, used, sa->auth_key, sa->auth_key_len);
            if (*used < size)
                *used += (size_t)snprintf(buf + *used, size - *used, " %u", auths[i].trunc);
        }
    if (sa->proto == CK_KSV_PROTO_ESP) {
        switch (sa->enc_alg) {
        case 3: enc = "cbc(des3_ede)"; break;
        case 11: enc = "ecb(cipher_null)"; break;
        case 12: enc = "cbc(aes)"; break;
        case 13: enc = "rfc3686(ctr(aes))"; break;
        default: break;
        }
        if ((sa->enc_alg == 20 || sa->enc_alg == 28) && *used < size) {
            *used += (size_t)snprintf(buf + *used, size - *used, " aead '%s' ",
                                      sa->enc_alg == 20 ? "rfc4106(gcm(aes))"
                                                        : "rfc7539esp(chacha20,poly1305)");
            append_hex(buf, size, used, sa->enc_key, sa->enc_key_len);
            if (*used < size)
                *used += (size_t)snprintf(buf + *used, size - *used, " 128");
        } else if (enc != NULL && *used < size) {
            *used += (size_t)snprintf(buf + *used, size - *used, " enc '%s' ", enc);
            if (sa->enc_key_len > 0)
                append_hex(buf, size, used, sa->enc_key, sa->enc_key_len);
            else if (*used < size)
                *used += (size_t)snprintf(buf + *used, size - *used, "\"\"");
        }
    }
    /* As lib/esp's lines: ESP in UDP, and the policy of the side that uses the SA. */
    if (sa->proto == CK_KSV_PROTO_ESP && *used < size)
        *used += (size_t)snprintf(buf + *used, size - *used, " encap espinudp %u %u %s", port,
                                  port, strchr(src, ':') != NULL ? "::" : "0.0.0.0");
    if (*used < size)
        *used += (size_t)snprintf(
            buf + *used, size - *used,
            "\nip xfrm policy add src %s/%s dst %s/%s proto udp dir %s tmpl src %s dst %s proto %s "
            "reqid %u mode %s\n",
            src, strchr(src, ':') != NULL ? "128" : "32", dst, strchr(dst, ':') != NULL ? "128" : "32",
            sa->direction == CK_KSV_DIR_IN ? "in" : "out", src, dst,
            sa->proto == CK_KSV_PROTO_AH ? "ah" : "esp", sa->spi,
            sa->mode == CK_KSV_MODE_TUNNEL ? "tunnel" : "transport");
    if (*used >= size)
        *used = size - 1;
}

static void
print_sa(struct runner *r, const struct ck_ksvnode_sa *s, bool add)
{
    char peer[INET6_ADDRSTRLEN], buf[XFRM_BUF];
    const char *self = self_addr(r, s->sa.peer.family), *src, *dst;
    size_t used = 0;

    ksv_addr_to_text(&s->sa.peer, peer, sizeof(peer));
    src = s->sa.direction == CK_KSV_DIR_IN ? peer : self;
    dst = s->sa.direction == CK_KSV_DIR_IN ? self : peer;
    printf("node sa %s ksv=%u dir=%s peer=%s spi=0x%08x proto=%s enc=%u auth=%u life_sec=%u%s\n",
           add ? "add" : "delete", s->ksv, s->sa.direction == CK_KSV_DIR_IN ? "in" : "out", peer,
           s->sa.spi, s->sa.proto == CK_KSV_PROTO_AH ? "ah" : "esp", s->sa.enc_alg,
           s->sa.auth_alg, s->sa.life_sec, s->group ? " group" : "");
    if (!add) {
        printf("ip xfrm state delete src %s dst %s proto %s spi 0x%08x\n", src, dst,
               s->sa.proto == CK_KSV_PROTO_AH ? "ah" : "esp", s->sa.spi);
        fflush(stdout);
        return;
    }
    buf[0] = '\0';
    if (esp_compatible(&s->sa)) {
        ck_esp_sa *e = NULL;
        struct ck_esp_xfrm_desc d;
        memset(&d, 0, sizeof(d));
        d.src = src;
        d.dst = dst;
        d.src_port = d.dst_port = r->esp_port;
        d.reqid = s->sa.spi;
        if (esp_sa_from(&s->sa, &e) != 0 || ck_esp_xfrm_format(e, &d, buf, sizeof(buf), &used) != 0)
            used = 0;
        ck_esp_sa_free(e);
        /* lib/esp writes the sender's policy; an inbound SA's is the receiver's. */
        if (used > 0 && s->sa.direction == CK_KSV_DIR_IN) {
            char *dir = strstr(buf, " dir out tmpl ");
            if (dir != NULL) {
                memmove(dir + 7, dir + 8, strlen(dir + 8) + 1);
                memcpy(dir + 5, "in", 2);
                used--;
            }
        }
    }
    if (used == 0)
        xfrm_generic(s, src, dst, r->esp_port, buf, sizeof(buf), &used);
    fputs(buf, stdout);
    fflush(stdout);
    ck_memzero(buf, sizeof(buf));
}

static struct esp_entry *
esp_find(struct runner *r, uint8_t dir, uint32_t spi, const struct ck_ksv_addr *peer)
{
    for (size_t i = 0; i < MAX_ESP_SAS; i++) {
        struct esp_entry *e = &r->esp[i];
        if (e->used && e->dir == dir && e->spi == spi &&
            (peer == NULL || ksv_addr_eq(&e->peer, peer)))
            return e;
    }
    return NULL;
}

static void
esp_entry_clear(struct esp_entry *e)
{
    ck_esp_sa_free(e->sa);
    ck_esp_xf_free(e->xf);
    memset(e, 0, sizeof(*e));
}

static void
on_sa_install(void *arg, const struct ck_ksvnode_sa *s)
{
    struct runner *r = arg;

    r->changed = true;
    print_sa(r, s, true);
    if (r->eng == NULL || s->sa.proto != CK_KSV_PROTO_ESP)
        return;
    for (size_t i = 0; i < MAX_ESP_SAS; i++) {
        struct esp_entry *e = &r->esp[i];
        int ret;
        if (e->used)
            continue;
        ret = esp_compatible(&s->sa) ? esp_sa_from(&s->sa, &e->sa)
                                     : esp_xf_from(&s->sa, &e->xf);
        if (ret != 0) {
            printf("node esp spi=0x%08x not installed: %s\n", s->sa.spi, ck_error_context());
            fflush(stdout);
            return;
        }
        e->used = true;
        e->dir = s->sa.direction;
        e->spi = s->sa.spi;
        e->peer = s->sa.peer;
        return;
    }
}

static void
on_sa_delete(void *arg, const struct ck_ksvnode_sa *s)
{
    struct runner *r = arg;
    struct esp_entry *e;

    r->changed = true;
    print_sa(r, s, false);
    if ((e = esp_find(r, s->sa.direction, s->sa.spi, &s->sa.peer)) != NULL)
        esp_entry_clear(e);
}

/* ---------------------------------------------------------------------------------------------
 * Multicast receive sockets.
 */

static int
mcast_open(struct runner *r, const struct ck_ksv_addr *a, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1;

    memset(&ss, 0, sizeof(ss));
    if (a->family == CK_KSV_AF_IPV4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        memcpy(&s4->sin_addr, a->addr, 4);
        len = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        memcpy(&s6->sin6_addr, a->addr, 16);
        len = sizeof(*s6);
    }
    if ((fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        return -1;
    /* Several agents (and tests) on one host each bind the group's port. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
    /* Bound to the group address itself: only that group's datagrams arrive here. */
    if (bind(fd, (struct sockaddr *)&ss, len) != 0)
        goto fail;
    if (a->family == CK_KSV_AF_IPV4) {
        struct ip_mreq mr;
        memset(&mr, 0, sizeof(mr));
        memcpy(&mr.imr_multiaddr, a->addr, 4);
        mr.imr_interface = r->mcast_if4;
        if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) != 0)
            goto fail;
    } else {
        struct ipv6_mreq mr;
        memset(&mr, 0, sizeof(mr));
        memcpy(&mr.ipv6mr_multiaddr, a->addr, 16);
        mr.ipv6mr_interface = r->mcast_ifindex;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof(mr)) != 0)
            goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* Joins the address of every live group, leaves the others. */
static void
mcast_reconcile(struct runner *r)
{
    struct ck_ksvnode_group_status g[MAX_MCAST];
    size_t n = ck_ksvnode_groups(r->node, g, MAX_MCAST);

    if (n > MAX_MCAST)
        n = MAX_MCAST;
    for (size_t i = r->n_mc; i-- > 0;) {
        bool live = false;
        for (size_t j = 0; j < n && !live; j++)
            live = !g[j].removed && ksv_addr_eq(&g[j].mcast, &r->mc[i].addr) &&
                   g[j].mcast_port == r->mc[i].port;
        if (!live) {
            close(r->mc[i].fd);
            r->mc[i] = r->mc[--r->n_mc];
        }
    }
    for (size_t j = 0; j < n; j++) {
        bool have = false;
        char a[INET6_ADDRSTRLEN];
        int fd;
        if (g[j].removed)
            continue;
        for (size_t i = 0; i < r->n_mc && !have; i++)
            have = ksv_addr_eq(&g[j].mcast, &r->mc[i].addr) && g[j].mcast_port == r->mc[i].port;
        if (have || r->n_mc >= MAX_MCAST || ck_endpoint_now_ms() < r->join_retry_ms)
            continue;
        ksv_addr_to_text(&g[j].mcast, a, sizeof(a));
        if ((fd = mcast_open(r, &g[j].mcast, g[j].mcast_port)) < 0) {
            /* Retried on a later event, not on every one (the interface may come up later). */
            fprintf(stderr, "cablekey: node: joining %s port %u: %s\n", a, g[j].mcast_port,
                    strerror(errno));
            r->join_retry_ms = ck_endpoint_now_ms() + 5000;
            continue;
        }
        if (r->o->verbose)
            printf("node joined %s port %u group %u\n", a, g[j].mcast_port, g[j].group_id);
        r->mc[r->n_mc].fd = fd;
        r->mc[r->n_mc].addr = g[j].mcast;
        r->mc[r->n_mc].port = g[j].mcast_port;
        r->n_mc++;
    }
}

static void
on_group_update(void *arg, const struct ck_ksvnode_group_status *g)
{
    struct runner *r = arg;

    (void)g;
    r->changed = true;
}

static int
on_send(void *arg, unsigned ksv, const uint8_t *buf, size_t len)
{
    struct runner *r = arg;

    if (ksv >= r->o->n_ksv)
        return CK_ERR_INVAL;
    if (send(r->ksv_fd[ksv], buf, len, 0) < 0)
        return ck_error_set(CK_ERR_IO, "send to KSV %u: %s", ksv, strerror(errno));
    return 0;
}

static void
on_log(void *arg, int level, const char *line)
{
    struct runner *r = arg;

    r->changed = true;
    if (level >= LOG_DEBUG && !r->o->verbose)
        return;
    printf("%s\n", line);
    fflush(stdout);
}

/* ---------------------------------------------------------------------------------------------
 * Status file.
 */

static int
write_status(struct runner *r)
{
    static const char *const alarm_names[] = {NULL, "SA_EXPIRED", "MALFORMED_PACKET",
                                              "SERVER_CONFLICT", "SIGN_FAILED"};
    struct ck_ksvnode_group_status g[MAX_MCAST];
    const struct ck_ksvnode_sa *sas;
    struct ck_ksvnode_stats st;
    json_t *root = json_object(), *reg = json_array(), *jsas = json_array(),
           *jgroups = json_array(), *alarms = json_object(), *rekeys = json_object();
    size_t n;
    char *text = NULL, *line;
    int ret = 0;

    if (root == NULL || reg == NULL || jsas == NULL || jgroups == NULL || alarms == NULL ||
        rekeys == NULL) {
        json_decref(reg);
        json_decref(jsas);
        json_decref(jgroups);
        json_decref(alarms);
        json_decref(rekeys);
        ret = CK_ERR_NOMEM;
        goto out;
    }
    json_object_set_new(root, "node", json_string(r->o->name));
    for (unsigned k = 0; k < r->o->n_ksv; k++)
        json_array_append_new(reg, json_boolean(ck_ksvnode_registered(r->node, k)));
    json_object_set_new(root, "registered", reg);
    n = ck_ksvnode_sas(r->node, &sas);
    for (size_t i = 0; i < n; i++) {
        char peer[INET6_ADDRSTRLEN];
        json_t *o = json_object();
        ksv_addr_to_text(&sas[i].sa.peer, peer, sizeof(peer));
        json_object_set_new(o, "dir", json_string(sas[i].sa.direction == CK_KSV_DIR_IN ? "in"
                                                                                        : "out"));
        json_object_set_new(o, "peer", json_string(peer));
        json_object_set_new(o, "spi", json_integer(sas[i].sa.spi));
        json_object_set_new(o, "proto",
                            json_string(sas[i].sa.proto == CK_KSV_PROTO_AH ? "ah" : "esp"));
        json_object_set_new(o, "enc", json_integer(sas[i].sa.enc_alg));
        json_object_set_new(o, "auth", json_integer(sas[i].sa.auth_alg));
        json_object_set_new(o, "life_sec", json_integer(sas[i].sa.life_sec));
        json_object_set_new(o, "extended", json_boolean(sas[i].extended));
        json_object_set_new(o, "ksv", json_integer(sas[i].ksv));
        if (sas[i].group)
            json_object_set_new(o, "group", json_integer(sas[i].group_id));
        json_array_append_new(jsas, o);
    }
    json_object_set_new(root, "sas", jsas);
    n = ck_ksvnode_groups(r->node, g, MAX_MCAST);
    for (size_t i = 0; i < n && i < MAX_MCAST; i++) {
        static const char digits[] = "0123456789abcdef";
        char hex[17], mc[INET6_ADDRSTRLEN];
        json_t *o = json_object();
        for (int b = 0; b < 8; b++) {
            hex[2 * b] = digits[g[i].key_check[b] >> 4];
            hex[2 * b + 1] = digits[g[i].key_check[b] & 15];
        }
        hex[16] = '\0';
        ksv_addr_to_text(&g[i].mcast, mc, sizeof(mc));
        json_object_set_new(o, "id", json_integer(g[i].group_id));
        json_object_set_new(o, "epoch", json_integer((json_int_t)g[i].epoch));
        json_object_set_new(o, "root_version", json_integer(g[i].root_version));
        json_object_set_new(o, "key_check", json_string(hex));
        json_object_set_new(o, "removed", json_boolean(g[i].removed));
        json_object_set_new(o, "mcast", json_string(mc));
        json_object_set_new(o, "mcast_port", json_integer(g[i].mcast_port));
        json_object_set_new(o, "keying", json_string(g[i].keying == 1   ? "ek"
                                                     : g[i].keying == 2 ? "hybrid"
                                                                        : "lkh"));
        json_object_set_new(o, "ksv", json_integer(g[i].ksv));
        json_array_append_new(jgroups, o);
    }
    json_object_set_new(root, "groups", jgroups);
    ck_ksvnode_get_stats(r->node, &st);
    for (int a = 1; a <= 4; a++)
        json_object_set_new(alarms, alarm_names[a], json_integer((json_int_t)st.alarms_sent[a]));
    json_object_set_new(root, "alarms_sent", alarms);
    json_object_set_new(rekeys, "applied", json_integer((json_int_t)st.rekeys_applied));
    json_object_set_new(rekeys, "replayed", json_integer((json_int_t)st.rekeys_replayed));
    json_object_set_new(rekeys, "bad_sig", json_integer((json_int_t)st.rekeys_bad_sig));
    json_object_set_new(rekeys, "malformed", json_integer((json_int_t)st.rekeys_malformed));
    json_object_set_new(root, "rekeys", rekeys);
    json_object_set_new(root, "recovers_sent", json_integer((json_int_t)st.recovers_sent));
    json_object_set_new(root, "acks_sent", json_integer((json_int_t)st.acks_sent));
    json_object_set_new(root, "group_acks_sent", json_integer((json_int_t)st.group_acks_sent));
    if ((text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
        ret = CK_ERR_NOMEM;
        goto out;
    }
    if (r->last_status != NULL && strcmp(r->last_status, text) == 0)
        goto out;
    if ((line = malloc(strlen(text) + 2)) == NULL) {
        ret = CK_ERR_NOMEM;
        goto out;
    }
    snprintf(line, strlen(text) + 2, "%s\n", text);
    ret = ck_file_write_atomic(r->o->status, line, strlen(line), CK_WRITE_REPLACE);
    free(line);
    if (ret == 0) {
        free(r->last_status);
        r->last_status = text;
        text = NULL;
    }
out:
    free(text);
    json_decref(root);
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * ESP datapath.
 */

static void
esp_receive(struct runner *r, const uint8_t *buf, size_t len, int64_t now_ms)
{
    uint8_t payload[CK_ESP_MAX_PACKET];
    const uint8_t *data;
    size_t plen, dlen;
    uint16_t sp, dp;
    uint8_t nh;
    uint32_t spi;
    struct esp_entry *e;
    char from[CK_KSV_MAX_NAME + 1], text[1001];
    const uint8_t *nl;

    if (ck_esp_udp_classify(buf, len, &spi) != CK_ESP_UDP_ESP ||
        (e = esp_find(r, CK_KSV_DIR_IN, spi, NULL)) == NULL) {
        if (r->o->verbose)
            printf("esp drop len=%zu: no inbound SA\n", len);
        return;
    }
    if ((e->sa != NULL ? ck_esp_unprotect(r->eng, e->sa, buf, len, now_ms / 1000, payload,
                                          sizeof(payload), &plen, &nh)
                       : ck_esp_xf_unprotect(e->xf, buf, len, payload, sizeof(payload), &plen,
                                             &nh)) != 0 ||
        nh != CK_ESP_NEXT_HEADER_UDP ||
        ck_esp_udp_unwrap(payload, plen, &sp, &dp, &data, &dlen) != 0 ||
        (nl = memchr(data, '\n', dlen)) == NULL || nl == data ||
        (size_t)(nl - data) > CK_KSV_MAX_NAME || dlen - (size_t)(nl - data) - 1 > 1000) {
        printf("esp drop spi=0x%08x: %s\n", spi, ck_error_context());
        fflush(stdout);
        return;
    }
    memcpy(from, data, (size_t)(nl - data));
    from[nl - data] = '\0';
    memcpy(text, nl + 1, dlen - (size_t)(nl - data) - 1);
    text[dlen - (size_t)(nl - data) - 1] = '\0';
    /* The peer's words go to a log: printable only. */
    for (char *p = from; *p != '\0'; p++)
        if (*p < 0x21 || *p > 0x7e)
            *p = '?';
    for (char *p = text; *p != '\0'; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    printf("esp recv from=%s spi=0x%08x text=%s\n", from, spi, text);
    fflush(stdout);
}

static void
esp_send_pending(struct runner *r, int64_t now_ms)
{
    struct nopts *o = r->o;

    for (size_t i = 0; i < o->n_sends; i++) {
        struct esp_send *s = &o->sends[i];
        struct ck_ksv_addr peer;
        struct esp_entry *e = NULL;
        uint8_t inner[1200], wrapped[1300], pkt[1500];
        size_t nl = strlen(o->name), tl = strlen(s->text), wl, pl;

        if (s->done || !sockaddr_to_ksv(&s->to, &peer))
            continue;
        for (size_t j = 0; j < MAX_ESP_SAS && e == NULL; j++)
            if (r->esp[j].used && r->esp[j].dir == CK_KSV_DIR_OUT &&
                ksv_addr_eq(&r->esp[j].peer, &peer))
                e = &r->esp[j];
        if (e == NULL)
            continue;
        memcpy(inner, o->name, nl);
        inner[nl] = '\n';
        memcpy(inner + nl + 1, s->text, tl);
        if (ck_esp_udp_wrap(ESP_INNER_PORT, ESP_INNER_PORT, inner, nl + 1 + tl, wrapped,
                            sizeof(wrapped), &wl) != 0 ||
            (e->sa != NULL ? ck_esp_protect(r->eng, e->sa, CK_ESP_NEXT_HEADER_UDP, wrapped, wl,
                                            now_ms / 1000, pkt, sizeof(pkt), &pl)
                           : ck_esp_xf_protect(e->xf, CK_ESP_NEXT_HEADER_UDP, wrapped, wl, pkt,
                                               sizeof(pkt), &pl)) != 0) {
            fprintf(stderr, "cablekey: node: esp send: %s\n", ck_error_context());
            s->done = true;
            continue;
        }
        if (sendto(r->esp_fd, pkt, pl, 0, (struct sockaddr *)&s->to, s->to_len) < 0) {
            fprintf(stderr, "cablekey: node: esp send: %s\n", strerror(errno));
            continue;
        }
        s->done = true;
        printf("esp sent to=%s spi=0x%08x len=%zu\n", s->peer_name, e->spi, pl);
        fflush(stdout);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Set-up and loop.
 */

static int
bind_udp(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    if (bind(fd, (const struct sockaddr *)ss, len) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* With a specific --listen address, the node speaks to its KSVs from it too (several nodes on
 * one host each keep their topology address). */
static int
bind_source(int fd, const struct sockaddr_storage *listen)
{
    struct sockaddr_storage ss = *listen;
    struct sockaddr_storage own;
    socklen_t len = sizeof(own);

    if (getsockname(fd, (struct sockaddr *)&own, &len) != 0 || own.ss_family != ss.ss_family)
        return 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&ss;
        if (s4->sin_addr.s_addr == htonl(INADDR_ANY))
            return 0;
        s4->sin_port = 0;
        return bind(fd, (struct sockaddr *)&ss, sizeof(*s4));
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
            return 0;
        s6->sin6_port = 0;
        return bind(fd, (struct sockaddr *)&ss, sizeof(*s6));
    }
    return 0;
}

/* Which KSV a datagram on the listen socket is from: by address (any port), or the only one. */
static unsigned
ksv_of(const struct runner *r, const struct sockaddr_storage *from)
{
    struct ck_ksv_addr a, b;

    if (!sockaddr_to_ksv(from, &a))
        return CK_KSVNODE_MAX_KSV;
    for (unsigned k = 0; k < r->o->n_ksv; k++)
        if (sockaddr_to_ksv(&r->ksv_addr[k], &b) && ksv_addr_eq(&a, &b))
            return k;
    return r->o->n_ksv == 1 ? 0 : CK_KSVNODE_MAX_KSV;
}

static void
self_addresses(struct runner *r)
{
    snprintf(r->self4, sizeof(r->self4), "0.0.0.0");
    snprintf(r->self6, sizeof(r->self6), "::");
    if (r->esp_fd >= 0 && r->esp_local.ss_family == AF_INET &&
        ((struct sockaddr_in *)(void *)&r->esp_local)->sin_addr.s_addr != htonl(INADDR_ANY))
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)&r->esp_local)->sin_addr, r->self4,
                  sizeof(r->self4));
    /* Otherwise the address this host uses towards the KSVs. */
    for (unsigned k = 0; k < r->o->n_ksv; k++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(r->ksv_fd[k], (struct sockaddr *)&ss, &len) != 0)
            continue;
        if (ss.ss_family == AF_INET && strcmp(r->self4, "0.0.0.0") == 0)
            inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)&ss)->sin_addr, r->self4,
                      sizeof(r->self4));
        else if (ss.ss_family == AF_INET6 && strcmp(r->self6, "::") == 0)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr, r->self6,
                      sizeof(r->self6));
    }
}

static int
mcast_interface(const char *what, struct runner *r, const char *addr)
{
    struct ifaddrs *ifa = NULL;
    struct in6_addr v6;

    r->mcast_if4.s_addr = htonl(INADDR_ANY);
    if (addr == NULL)
        return CLI_OK;
    if (inet_pton(AF_INET, addr, &r->mcast_if4) == 1)
        return CLI_OK;
    if (inet_pton(AF_INET6, addr, &v6) != 1)
        return cli_usage_error(what, "--mcast-if: '%s' is not a numeric address", addr);
    if (getifaddrs(&ifa) != 0)
        return cli_fail(what, ck_error_set(CK_ERR_IO, "getifaddrs: %s", strerror(errno)));
    for (struct ifaddrs *i = ifa; i != NULL; i = i->ifa_next)
        if (i->ifa_addr != NULL && i->ifa_addr->sa_family == AF_INET6 &&
            memcmp(&((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, &v6, 16) == 0)
            r->mcast_ifindex = if_nametoindex(i->ifa_name);
    freeifaddrs(ifa);
    if (r->mcast_ifindex == 0)
        return cli_usage_error(what, "--mcast-if: no interface has %s", addr);
    return CLI_OK;
}

static bool
once_done(const struct runner *r)
{
    for (unsigned k = 0; k < r->o->n_ksv; k++)
        if (!ck_ksvnode_registered(r->node, k))
            return false;
    for (size_t i = 0; i < r->o->n_sends; i++)
        if (!r->o->sends[i].done)
            return false;
    return true;
}

static int
loop(const char *what, struct runner *r)
{
    const struct nopts *o = r->o;
    int64_t start = ck_endpoint_now_ms(), deadline;
    uint8_t *buf = malloc(CK_KSV_MAX_DGRAM);
    int ret;

    if (buf == NULL)
        return cli_fail(what, CK_ERR_NOMEM);
    deadline = o->run_for > 0 ? start + o->run_for * 1000
               : o->once      ? start + ONCE_DEFAULT_SEC * 1000
                              : INT64_MAX;
    if ((ret = ck_ksvnode_start(r->node, start)) != 0) {
        free(buf);
        return cli_fail(what, ret);
    }
    for (;;) {
        struct pollfd pfd[CK_KSVNODE_MAX_KSV + 2 + MAX_MCAST];
        int kind[CK_KSVNODE_MAX_KSV + 2 + MAX_MCAST]; /* >= 0 KSV, -1 listen, -2 esp, -3-i mc */
        size_t np = 0;
        int64_t now = ck_endpoint_now_ms(), t;
        int timeout;

        if (r->join_retry_ms != 0 && now >= r->join_retry_ms) {
            r->join_retry_ms = 0;
            r->changed = true;
        }
        if (r->changed) {
            r->changed = false;
            mcast_reconcile(r);
            if (r->eng != NULL)
                esp_send_pending(r, now);
            if (o->status != NULL && (ret = write_status(r)) != 0)
                fprintf(stderr, "cablekey: node: --status: %s\n", ck_error_context());
        }
        if (o->once && once_done(r)) {
            printf("node once: registered with %zu KSV(s)\n", o->n_ksv);
            break;
        }
        if (stop_requested || now >= deadline) {
            if (o->once && !stop_requested) {
                printf("node once: FAILED: not registered with every KSV in time\n");
                free(buf);
                return CLI_FAIL;
            }
            break;
        }
        t = ck_ksvnode_next_timeout_ms(r->node, now);
        if (t < 0 || t > deadline - now)
            t = deadline - now;
        if (t > 1000)
            t = 1000; /* signals and --once are checked at least once a second */
        timeout = (int)t;
        for (unsigned k = 0; k < o->n_ksv; k++) {
            pfd[np] = (struct pollfd){.fd = r->ksv_fd[k], .events = POLLIN};
            kind[np++] = (int)k;
        }
        pfd[np] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
        kind[np++] = -1;
        if (r->esp_fd >= 0) {
            pfd[np] = (struct pollfd){.fd = r->esp_fd, .events = POLLIN};
            kind[np++] = -2;
        }
        for (size_t i = 0; i < r->n_mc; i++) {
            pfd[np] = (struct pollfd){.fd = r->mc[i].fd, .events = POLLIN};
            kind[np++] = -3 - (int)i;
        }
        if (poll(pfd, (nfds_t)np, timeout) < 0 && errno != EINTR) {
            free(buf);
            return cli_fail(what, ck_error_set(CK_ERR_IO, "poll: %s", strerror(errno)));
        }
        now = ck_endpoint_now_ms();
        for (size_t i = 0; i < np; i++) {
            struct sockaddr_storage from;
            socklen_t flen = sizeof(from);
            ssize_t n;
            if (!(pfd[i].revents & (POLLIN | POLLERR)))
                continue;
            /* A few datagrams per socket and round, so one busy socket cannot starve others. */
            for (int burst = 0; burst < 64; burst++) {
                flen = sizeof(from);
                n = recvfrom(pfd[i].fd, buf, CK_KSV_MAX_DGRAM, 0, (struct sockaddr *)&from,
                             &flen);
                if (n < 0)
                    break; /* EAGAIN, or an ICMP error on a connected socket */
                if (kind[i] >= 0) {
                    ret = ck_ksvnode_on_datagram(r->node, (unsigned)kind[i], buf, (size_t)n, now);
                } else if (kind[i] == -1) {
                    unsigned k = ksv_of(r, &from);
                    if (k >= o->n_ksv)
                        continue;
                    ret = ck_ksvnode_on_datagram(r->node, k, buf, (size_t)n, now);
                } else if (kind[i] == -2) {
                    esp_receive(r, buf, (size_t)n, now);
                    ret = 0;
                } else {
                    ret = ck_ksvnode_on_datagram(r->node, CK_KSVNODE_FROM_GROUP, buf, (size_t)n,
                                                 now);
                }
                r->changed = true;
                if (ret != 0) {
                    free(buf);
                    return cli_fail(what, ret);
                }
            }
        }
        if ((ret = ck_ksvnode_on_timer(r->node, now)) != 0) {
            free(buf);
            return cli_fail(what, ret);
        }
    }
    /* The final state for whoever reads the status file after we exit. */
    if (o->status != NULL)
        (void)write_status(r);
    free(buf);
    return CLI_OK;
}

int
cli_node(int argc, char **argv)
{
    const char *what = "node";
    static struct nopts o;
    static char send_store[MAX_ESP_SEND][300];
    struct ck_ksvnode_params p;
    struct runner *r = NULL;
    struct sockaddr_storage lss;
    socklen_t llen = 0;
    struct sigaction sa;
    char host[256];
    int rc, ret;

    if ((rc = parse_node_opts(what, argc, argv, &o, send_store)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return cli_fail(what, CK_ERR_NOMEM);
    r->o = &o;
    r->listen_fd = r->esp_fd = -1;
    for (size_t k = 0; k < CK_KSVNODE_MAX_KSV; k++)
        r->ksv_fd[k] = -1;
    memset(&p, 0, sizeof(p));
    if ((rc = resolve(what, "--listen", o.listen != NULL ? o.listen : "0.0.0.0", NODE_DEFAULT_PORT,
                      true, &lss, &llen, host, sizeof(host))) != CLI_OK)
        goto out;
    for (size_t k = 0; k < o.n_ksv; k++) {
        if ((rc = resolve(what, "--ksv", o.ksv_spec[k], CK_KSV_DEFAULT_PORT, false,
                          &r->ksv_addr[k], &r->ksv_len[k], host, sizeof(host))) != CLI_OK)
            goto out;
        if (o.n_service > 0)
            snprintf(r->service_buf[k], sizeof(r->service_buf[k]), "%s", o.service[k]);
        else
            snprintf(r->service_buf[k], sizeof(r->service_buf[k]), "ksv/%s", host);
        p.ksv_service[k] = r->service_buf[k];
        if ((r->ksv_fd[k] = socket(r->ksv_addr[k].ss_family,
                                   SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
            bind_source(r->ksv_fd[k], &lss) != 0 ||
            connect(r->ksv_fd[k], (struct sockaddr *)&r->ksv_addr[k], r->ksv_len[k]) != 0) {
            rc = cli_fail(what, ck_error_set(CK_ERR_IO, "socket to %s: %s", o.ksv_spec[k],
                                             strerror(errno)));
            goto out;
        }
    }
    if ((r->listen_fd = bind_udp(&lss, llen)) < 0) {
        rc = cli_fail(what, ck_error_set(CK_ERR_IO, "--listen %s: %s",
                                         o.listen != NULL ? o.listen : "0.0.0.0:7442",
                                         strerror(errno)));
        goto out;
    }
    r->esp_port = ESP_DEFAULT_PORT;
    if (o.esp_listen != NULL) {
        if ((rc = resolve(what, "--esp-listen", o.esp_listen, ESP_DEFAULT_PORT, true,
                          &r->esp_local, &llen, host, sizeof(host))) != CLI_OK)
            goto out;
        if ((r->esp_fd = bind_udp(&r->esp_local, llen)) < 0) {
            rc = cli_fail(what, ck_error_set(CK_ERR_IO, "--esp-listen %s: %s", o.esp_listen,
                                             strerror(errno)));
            goto out;
        }
        r->esp_port = ntohs(r->esp_local.ss_family == AF_INET
                                ? ((struct sockaddr_in *)(void *)&r->esp_local)->sin_port
                                : ((struct sockaddr_in6 *)(void *)&r->esp_local)->sin6_port);
        if ((ret = ck_esp_engine_new(&r->eng)) != 0) {
            rc = cli_fail(what, ret);
            goto out;
        }
    }
    if ((rc = mcast_interface(what, r, o.mcast_if)) != CLI_OK)
        goto out;
    self_addresses(r);
    p.name = o.name;
    p.n_ksv = o.n_ksv;
    p.ccache = o.ccache;
    p.kdc.kdcs = o.kdcs;
    p.kdc.n_kdcs = o.n_kdcs;
    /* A TGS exchange blocks the loop: keep an unreachable KDC's cost to seconds (the HELLO
     * backoff retries anyway). */
    p.kdc.timeout_ms = 1000;
    p.kdc.max_timeout_ms = 2000;
    p.kdc.max_tries = 2;
    p.cb.arg = r;
    p.cb.send = on_send;
    p.cb.sa_install = on_sa_install;
    p.cb.sa_delete = on_sa_delete;
    p.cb.group_update = on_group_update;
    p.cb.log = on_log;
    if ((ret = ck_ksvnode_new(&p, &r->node)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    r->changed = true;
    rc = loop(what, r);
out:
    ck_ksvnode_free(r->node);
    for (size_t i = 0; i < MAX_ESP_SAS; i++)
        esp_entry_clear(&r->esp[i]);
    ck_esp_engine_free(r->eng);
    for (size_t k = 0; k < CK_KSVNODE_MAX_KSV; k++)
        if (r->ksv_fd[k] >= 0)
            close(r->ksv_fd[k]);
    for (size_t i = 0; i < r->n_mc; i++)
        close(r->mc[i].fd);
    if (r->listen_fd >= 0)
        close(r->listen_fd);
    if (r->esp_fd >= 0)
        close(r->esp_fd);
    free(r->last_status);
    free(r);
    return rc;
}
