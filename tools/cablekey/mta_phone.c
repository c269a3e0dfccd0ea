/* cablekey mta phone: a phone adapter (or, with --server, a media gateway) that keys its
 * signaling with its controller (cablekey-cms) like `mta kmm`, then places or answers calls with
 * per-call keys: ESP-protected direct signaling with the other end and G.711 audio over
 * RTP/SRTP (include/cablekey/phone.h; docs/cablekey.md "mta phone"; CONTRACT8 "CLI").
 * One summary line per call; exit 0 only when every call connected and ended cleanly. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cablekey/client.h"
#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/esp.h"
#include "cablekey/media.h"
#include "cablekey/net.h"
#include "cablekey/phone.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "cli.h"

#define MAX_CALLS 10000
#define DATAGRAM_MAX 65536

enum {
    OPT_CCACHE = 256, OPT_CMS, OPT_SERVICE, OPT_KDC, OPT_SIG_PORT, OPT_MEDIA, OPT_DIRECT_PORT,
    OPT_DIAL, OPT_TALK, OPT_ANSWER, OPT_ANSWER_AFTER, OPT_CALLS, OPT_AUDIO, OPT_RECORD,
    OPT_SERVER, OPT_EXPORT, OPT_HOLD, OPT_TIMEOUT, OPT_VERBOSE, OPT_TEST_LOSE, OPT_TEST_BAD_ACK,
    OPT_HELP,
};

static const struct option phone_opts[] = {
    {"ccache", required_argument, NULL, OPT_CCACHE},
    {"cms", required_argument, NULL, OPT_CMS},
    {"service", required_argument, NULL, OPT_SERVICE},
    {"kdc", required_argument, NULL, OPT_KDC},
    {"sig-port", required_argument, NULL, OPT_SIG_PORT},
    {"media", required_argument, NULL, OPT_MEDIA},
    {"direct-port", required_argument, NULL, OPT_DIRECT_PORT},
    {"dial", required_argument, NULL, OPT_DIAL},
    {"talk", required_argument, NULL, OPT_TALK},
    {"answer", no_argument, NULL, OPT_ANSWER},
    {"answer-after", required_argument, NULL, OPT_ANSWER_AFTER},
    {"calls", required_argument, NULL, OPT_CALLS},
    {"audio", required_argument, NULL, OPT_AUDIO},
    {"record", required_argument, NULL, OPT_RECORD},
    {"server", no_argument, NULL, OPT_SERVER},
    {"export-wireshark", required_argument, NULL, OPT_EXPORT},
    {"hold-spi", required_argument, NULL, OPT_HOLD},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"test-lose-acks", required_argument, NULL, OPT_TEST_LOSE},
    {"test-bad-ack", no_argument, NULL, OPT_TEST_BAD_ACK},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char phone_help[] =
    "usage: cablekey mta phone --ccache FILE --cms HOST[:PORT] [--service PRINC] [--kdc HOST:PORT]\n"
    "           [--sig-port N] --media ADDR:PORT --direct-port N\n"
    "           (--dial NUMBER [--talk SECONDS] | --answer [--answer-after MS] [--calls N])\n"
    "           [--audio WAV] [--record WAV] [--server] [--export-wireshark FILE]\n"
    "           [--hold-spi SPI] [--timeout S] [--verbose]\n"
    "\n"
    "A phone adapter: keys IPsec with its controller (cablekey-cms) as 'mta kmm' does, then\n"
    "places (--dial) or answers (--answer) calls. The controller delivers each call's key; the\n"
    "two ends exchange one ESP-protected HELLO on their direct-signaling ports and G.711 u-law\n"
    "audio (20 ms frames) over SRTP or the mode the controller chose.\n"
    "  --ccache        MIT FILE ccache with the controller's service ticket or a TGT\n"
    "  --cms           the controller's key-management address (port 1293 if none)\n"
    "  --service       its principal (default: the first service ticket in the ccache)\n"
    "  --kdc           KDC for the TGS exchange when the ccache holds only a TGT (repeatable)\n"
    "  --sig-port      the controller's UDP-encapsulated ESP port (default 4500)\n"
    "  --media         our numeric RTP address and port (in the SDP)\n"
    "  --direct-port   our direct-signaling (ESP) port, same address\n"
    "  --dial          go off-hook, dial NUMBER, talk --talk seconds (default 3), hang up\n"
    "  --answer        answer calls after --answer-after ms of ringing (default 0); exit after\n"
    "                  --calls calls (default 1)\n"
    "  --server        a media gateway: answers every call like --answer\n"
    "  --audio         8 kHz 16-bit mono WAV sent in a loop (silence without it)\n"
    "  --record        what this end decoded, as a WAV (the last call)\n"
    "  --export-wireshark  append Wireshark esp_sa UAT lines for the direct SAs (0600;\n"
    "                  they hold keys)\n"
    "  --hold-spi      treat SPI (0x... or decimal) as in use (repeatable)\n"
    "  --timeout       give up after S seconds (default 60)\n"
    "  --verbose       progress on stderr (never keys)\n"
    "Test hooks (the ACK paths of tests/interop/t_call.sh): --test-lose-acks N loses the first\n"
    "N answers that carry an ACK (the controller's retransmission is answered from the cache);\n"
    "--test-bad-ack returns a wrong ACK.\n"
    "Output per call: 'call ID connected media=M ipsec=S|none spi=0xSPI sent=N received=N\n"
    "lost=N replayed=N dropped=N direct=ok|none' and 'call ID released reason=R', or\n"
    "'call failed reason=R'. Exit 0 only when every call connected and ended cleanly.\n";

struct popts {
    const char *ccache, *cms, *service, *media, *dial, *audio, *record, *export;
    const char *kdcs[CK_KDC_MAX_KDCS];
    size_t n_kdcs;
    int64_t sig_port, direct_port, talk, answer_after, calls, timeout;
    bool answer, server, verbose, bad_ack;
    int64_t lose_acks;
    uint32_t hold[CK_PHONE_MAX_HOLD];
    size_t n_hold;
    char media_host[256];
    uint16_t media_port;
};

static int
parse_spi(const char *s, uint32_t *out)
{
    int64_t v = 0;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        size_t n = strlen(s + 2);
        if (n == 0 || n > 8)
            return -1;
        for (size_t i = 0; i < n; i++) {
            char c = s[2 + i];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
    } else if (ck_parse_int64(s, 0, UINT32_MAX, &v) != 0) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int
parse_phone_opts(const char *what, int argc, char **argv, struct popts *o)
{
    int c, rc;

    memset(o, 0, sizeof(*o));
    o->sig_port = CK_ENDPOINT_DEFAULT_SIG_PORT;
    o->talk = 3;
    o->calls = 1;
    o->timeout = 60;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", phone_opts, NULL)) != -1) {
        switch (c) {
        case OPT_CCACHE: o->ccache = optarg; break;
        case OPT_CMS: o->cms = optarg; break;
        case OPT_SERVICE: o->service = optarg; break;
        case OPT_MEDIA: o->media = optarg; break;
        case OPT_DIAL: o->dial = optarg; break;
        case OPT_AUDIO: o->audio = optarg; break;
        case OPT_RECORD: o->record = optarg; break;
        case OPT_EXPORT: o->export = optarg; break;
        case OPT_ANSWER: o->answer = true; break;
        case OPT_SERVER: o->server = true; break;
        case OPT_VERBOSE: o->verbose = true; break;
        case OPT_TEST_BAD_ACK: o->bad_ack = true; break;
        case OPT_TEST_LOSE:
            if (ck_parse_int64(optarg, 0, 100, &o->lose_acks) != 0)
                return cli_usage_error(what, "--test-lose-acks: 0..100");
            break;
        case OPT_KDC:
            if ((rc = cli_mta_add_kdc(what, optarg, o->kdcs, &o->n_kdcs)) != CLI_OK)
                return rc;
            break;
        case OPT_SIG_PORT:
            if (ck_parse_int64(optarg, 1, 65535, &o->sig_port) != 0)
                return cli_usage_error(what, "--sig-port: 1..65535");
            break;
        case OPT_DIRECT_PORT:
            if (ck_parse_int64(optarg, 1, 65535, &o->direct_port) != 0)
                return cli_usage_error(what, "--direct-port: 1..65535");
            break;
        case OPT_TALK:
            if (ck_parse_int64(optarg, 1, 3600, &o->talk) != 0)
                return cli_usage_error(what, "--talk: seconds, 1..3600");
            break;
        case OPT_ANSWER_AFTER:
            if (ck_parse_int64(optarg, 0, 600000, &o->answer_after) != 0)
                return cli_usage_error(what, "--answer-after: milliseconds, 0..600000");
            break;
        case OPT_CALLS:
            if (ck_parse_int64(optarg, 1, MAX_CALLS, &o->calls) != 0)
                return cli_usage_error(what, "--calls: 1..%d", MAX_CALLS);
            break;
        case OPT_TIMEOUT:
            if (ck_parse_int64(optarg, 1, 86400, &o->timeout) != 0)
                return cli_usage_error(what, "--timeout: seconds, 1..86400");
            break;
        case OPT_HOLD:
            if (o->n_hold >= CK_PHONE_MAX_HOLD)
                return cli_usage_error(what, "more than %d --hold-spi", CK_PHONE_MAX_HOLD);
            if (parse_spi(optarg, &o->hold[o->n_hold]) != 0)
                return cli_usage_error(what, "--hold-spi: 0x<hex> or a decimal 32-bit SPI");
            o->n_hold++;
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, phone_help);
        }
    }
    if (optind != argc)
        return cli_no_more_args(what, argv[optind]);
    if (o->ccache == NULL || *o->ccache == '\0')
        return cli_usage_error(what, "--ccache FILE is required");
    if (o->cms == NULL || *o->cms == '\0' || strchr(o->cms, ',') != NULL)
        return cli_usage_error(what, "--cms HOST[:PORT] is required (one controller)");
    if (o->media == NULL || ck_net_parse_listen(o->media, 0, o->media_host,
                                                sizeof(o->media_host), &o->media_port) != 0 ||
        o->media_host[0] == '\0' || o->media_port == 0)
        return cli_usage_error(what, "--media ADDR:PORT is required (a numeric address)");
    if (o->direct_port == 0)
        return cli_usage_error(what, "--direct-port N is required");
    if ((o->dial != NULL) + o->answer + o->server != 1)
        return cli_usage_error(what, "exactly one of --dial, --answer and --server");
    return CLI_OK;
}

/* The first service ticket in the ccache (not a TGT), for --service's default. */
static int
default_service(const char *what, const char *ccache, char *out, size_t size)
{
    ck_creds **creds = NULL;
    size_t n = 0;
    int rc = CLI_USAGE;

    if (ck_ccache_read(ccache, &creds, &n, NULL) != 0)
        return cli_usage_error(what, "--ccache: %s", ck_error_context());
    for (size_t i = 0; i < n; i++) {
        const ck_principal *s = creds[i]->server;
        if (s->n_components >= 1 && strcmp(s->components[0], "krbtgt") != 0 &&
            ck_principal_unparse_buf(s, 0, out, size, NULL) == 0) {
            rc = CLI_OK;
            break;
        }
    }
    ck_ccache_creds_free(creds, n);
    if (rc != CLI_OK)
        return cli_usage_error(what, "--service is required: the ccache holds no service ticket");
    return CLI_OK;
}

struct prun {
    const struct popts *o;
    int fds[4];                       /* by enum ck_phone_sock */
    int64_t reported, good;
    int export_fd;
};

static int
run_send(void *arg, enum ck_phone_sock sock, const struct sockaddr *to, socklen_t to_len,
         const uint8_t *buf, size_t len)
{
    struct prun *r = arg;

    if (sendto(r->fds[sock], buf, len, 0, to, to_len) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNREFUSED ||
            errno == EHOSTUNREACH || errno == ENETUNREACH || errno == EINTR)
            return 0;
        return ck_error_set(CK_ERR_IO, "sendto: %s", strerror(errno));
    }
    return 0;
}

static void
on_log(void *arg, const char *what)
{
    const struct prun *r = arg;

    if (r->o->verbose)
        fprintf(stderr, "phone: %s\n", what);
}

static void
on_event(void *arg, enum ck_endpoint_event ev, const char *detail)
{
    static const char *const names[] = {"AP-REQ sent", "established", "failover", "failed",
                                        "refused", "error reply", "SA lost", "ESP dropped"};
    const struct prun *r = arg;

    if (r->o->verbose)
        fprintf(stderr, "phone: kmm %s: %s\n",
                (size_t)ev < sizeof(names) / sizeof(names[0]) ? names[ev] : "event", detail);
}

static void
on_sas(void *arg, const char *callid, const ck_esp_sa *in, const ck_esp_sa *out,
       const char *local, const char *peer)
{
    struct prun *r = arg;
    char buf[1024];
    size_t used = 0;

    if (r->export_fd < 0)
        return;
    if (ck_esp_wireshark_sa_format(out, local, peer, buf, sizeof(buf), &used) != 0 ||
        ck_esp_wireshark_sa_format(in, peer, local, buf, sizeof(buf), &used) != 0 ||
        ck_fd_write_all(r->export_fd, buf, used) != 0)
        fprintf(stderr, "cablekey: mta phone: --export-wireshark (call %s): %s\n", callid,
                ck_error_context());
    ck_memzero(buf, sizeof(buf));
}

static void
on_call(void *arg, const struct ck_phone_call_info *c)
{
    struct prun *r = arg;
    bool good;

    r->reported++;
    if (!c->connected) {
        printf("call failed reason=%s\n", c->reason);
        fflush(stdout);
        return;
    }
    printf("call %s connected media=%s ipsec=%s spi=0x%08x sent=%llu received=%llu lost=%llu "
           "replayed=%llu dropped=%llu direct=%s\n",
           c->callid, c->media, c->ipsec ? ck_kmm_suite_short_name(CK_KMM_DOI_IPSEC, c->suite)
                                         : "none",
           c->spi, (unsigned long long)c->sent, (unsigned long long)c->received,
           (unsigned long long)c->lost, (unsigned long long)c->replayed,
           (unsigned long long)c->dropped, !c->ipsec ? "none" : c->direct_ok ? "ok" : "failed");
    printf("call %s released reason=%s\n", c->callid, c->reason);
    fflush(stdout);
    good = c->released && strcmp(c->reason, "hangup") == 0 && (!c->ipsec || c->direct_ok);
    if (r->o->record != NULL && c->recorded != NULL && c->n_recorded > 0 &&
        ck_wav_write(r->o->record, c->recorded, c->n_recorded) != 0) {
        fprintf(stderr, "cablekey: mta phone: --record: %s\n", ck_error_context());
        good = false;
    }
    if (good)
        r->good++;
}

static bool
finished(ck_phone *ph, const struct prun *r)
{
    if (r->o->dial != NULL)
        return r->reported >= 1 && ck_phone_active_calls(ph) == 0;
    return r->reported >= r->o->calls && ck_phone_active_calls(ph) == 0;
}

/* A numeric address into ss. */
static int
numeric_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *a = (struct sockaddr_in *)(void *)ss;
    struct sockaddr_in6 *b = (struct sockaddr_in6 *)(void *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, host, &a->sin_addr) == 1) {
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &b->sin6_addr) == 1) {
        b->sin6_family = AF_INET6;
        b->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

/* A non-blocking UDP socket bound to host:port, or (host NULL) to the wildcard of family. */
static int
udp_socket(const char *host, uint16_t port, int family, int *fd)
{
    struct sockaddr_storage ss;
    int s;

    if (host != NULL) {
        if (numeric_addr(host, port, &ss) != 0)
            return ck_error_set(CK_ERR_INVAL, "'%s' is not a numeric address", host);
        family = ss.ss_family;
    }
    if ((s = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        return ck_error_set(CK_ERR_IO, "socket: %s", strerror(errno));
    if (host == NULL) {
        if (cli_mta_bind_any(s, family) != 0)
            goto fail;
    } else {
        if (bind(s, (struct sockaddr *)&ss, ss.ss_family == AF_INET
                                                ? sizeof(struct sockaddr_in)
                                                : sizeof(struct sockaddr_in6)) != 0)
            goto fail;
    }
    *fd = s;
    return 0;
fail:
    {
        int e = errno;
        close(s);
        return ck_error_set(CK_ERR_IO, "bind %s:%u: %s", host != NULL ? host : "*", port,
                            strerror(e));
    }
}

static int
run_loop(ck_phone *ph, struct prun *r, int64_t deadline)
{
    static uint8_t buf[DATAGRAM_MAX];
    struct pollfd pfd[3];
    static const enum ck_phone_sock socks[3] = {CK_PHONE_SOCK_SIG, CK_PHONE_SOCK_MEDIA,
                                                CK_PHONE_SOCK_DIRECT};
    int rc;

    for (int i = 0; i < 3; i++) {
        pfd[i].fd = r->fds[socks[i]];
        pfd[i].events = POLLIN;
    }
    for (;;) {
        int64_t now = ck_endpoint_now_ms(), wait;
        if (finished(ph, r))
            return 0;
        if (ck_phone_endpoint(ph) != NULL &&
            ck_endpoint_state(ck_phone_endpoint(ph)) == CK_ENDPOINT_FAILED)
            return ck_error_set(CK_ERR_TIMEOUT, "controller: %s",
                                ck_endpoint_failure(ck_phone_endpoint(ph)));
        if (now >= deadline)
            return ck_error_set(CK_ERR_TIMEOUT, "timeout");
        wait = ck_phone_next_timeout_ms(ph, now);
        if (wait < 0 || wait > deadline - now)
            wait = deadline - now;
        if (wait > 1000)
            wait = 1000;
        if (poll(pfd, 3, (int)wait) < 0 && errno != EINTR)
            return ck_error_set(CK_ERR_IO, "poll: %s", strerror(errno));
        for (int i = 0; i < 3; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            for (int k = 0; k < 64; k++) {
                struct sockaddr_storage from;
                socklen_t fl = sizeof(from);
                ssize_t n = recvfrom(pfd[i].fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
                                     &fl);
                if (n < 0)
                    break;
                if ((rc = ck_phone_on_datagram(ph, socks[i], buf, (size_t)n,
                                               (struct sockaddr *)&from, fl,
                                               ck_endpoint_now_ms())) != 0)
                    return rc;
            }
        }
        if ((rc = ck_phone_on_timer(ph, ck_endpoint_now_ms())) != 0)
            return rc;
    }
}

int
cli_mta_phone(int argc, char **argv)
{
    const char *what = "mta phone";
    struct popts o;
    struct ck_endpoint_cms cms[CK_ENDPOINT_MAX_CMS];
    struct ck_phone_params p;
    struct prun r;
    ck_phone *ph = NULL;
    ck_creds *creds = NULL;
    ck_kdc_transport t;
    int16_t *audio = NULL;
    size_t n_cms = 0, n_audio = 0;
    char host[256], svc[CK_KMM_MAX_PRINCIPAL + 1], failure[300] = "";
    bool from_tgs = false;
    int64_t now_s;
    int rc, ret;

    if ((rc = parse_phone_opts(what, argc, argv, &o)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if ((rc = cli_mta_parse_cms(what, o.cms, (uint16_t)o.sig_port, cms, &n_cms)) != CLI_OK)
        return rc;
    if (o.service == NULL) {
        if ((rc = default_service(what, o.ccache, svc, sizeof(svc))) != CLI_OK)
            return rc;
        o.service = svc;
    }
    memset(&r, 0, sizeof(r));
    r.o = &o;
    r.export_fd = -1;
    for (int i = 0; i < 4; i++)
        r.fds[i] = -1;
    if (o.audio != NULL && ck_wav_read(o.audio, &audio, &n_audio) != 0) {
        snprintf(failure, sizeof(failure), "--audio %s: %s", o.audio, ck_error_context());
        goto failed;
    }
    if (o.export != NULL &&
        (r.export_fd = open(o.export, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
        snprintf(failure, sizeof(failure), "--export-wireshark %s: %s", o.export,
                 strerror(errno));
        goto failed;
    }
    ck_now(&now_s, NULL);
    t = (ck_kdc_transport){.kdcs = o.kdcs, .n_kdcs = o.n_kdcs};
    if (ck_endpoint_get_ticket(o.ccache, o.service, &t, now_s, &creds, &from_tgs) != 0) {
        snprintf(failure, sizeof(failure), "ticket: %s", ck_error_context());
        goto failed;
    }
    if (udp_socket(NULL, 0, cms[0].kmm.ss_family, &r.fds[CK_PHONE_SOCK_SIG]) != 0 ||
        udp_socket(o.media_host, o.media_port, 0, &r.fds[CK_PHONE_SOCK_MEDIA]) != 0 ||
        udp_socket(o.media_host, (uint16_t)o.direct_port, 0, &r.fds[CK_PHONE_SOCK_DIRECT]) != 0) {
        snprintf(failure, sizeof(failure), "%s", ck_error_context());
        goto failed;
    }
    cli_mta_hostname(host, sizeof(host));
    memset(&p, 0, sizeof(p));
    p.ep.creds = creds;
    p.ep.cms = cms;
    p.ep.n_cms = n_cms;
    p.ep.host = host;
    p.ep.on_event = on_event;
    p.ep.cb_arg = &r;
    p.send = run_send;
    p.send_arg = &r;
    p.media_addr = o.media_host;
    p.media_port = o.media_port;
    p.direct_port = (uint16_t)o.direct_port;
    p.dial = o.dial;
    p.talk_ms = o.talk * 1000;
    p.answer_after_ms = o.answer_after;
    p.server = o.server;
    p.audio = audio;
    p.audio_len = n_audio;
    p.record = o.record != NULL;
    p.hold_spi = o.hold;
    p.n_hold = o.n_hold;
    p.test_lose_acks = (int)o.lose_acks;
    p.test_bad_ack = o.bad_ack;
    p.on_call = on_call;
    p.on_sas = on_sas;
    p.on_log = on_log;
    p.cb_arg = &r;
    if ((ret = ck_phone_new(&p, &ph)) != 0 ||
        (ret = ck_phone_start(ph, ck_endpoint_now_ms())) != 0 ||
        (ret = run_loop(ph, &r, ck_endpoint_now_ms() + o.timeout * 1000)) != 0) {
        snprintf(failure, sizeof(failure), "%s", ck_error_context());
        goto failed;
    }
    rc = r.good == (o.dial != NULL ? 1 : o.calls) ? CLI_OK : CLI_FAIL;
    goto out;
failed:
    if (r.reported == 0)
        printf("call failed reason=%s\n", failure);
    else
        fprintf(stderr, "cablekey: %s: %s\n", what, failure);
    fflush(stdout);
    rc = CLI_FAIL;
out:
    ck_phone_free(ph);
    ck_creds_free(creds);
    free(audio);
    for (int i = 0; i < 4; i++)
        if (r.fds[i] >= 0)
            close(r.fds[i]);
    if (r.export_fd >= 0)
        close(r.export_fd);
    return rc;
}
