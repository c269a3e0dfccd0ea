/* cablekey mta kmm: an endpoint keys IPsec with a CMS (one Kerberized AP exchange over KMM),
 * sends N protected NCS notifications and prints one summary line (include/cablekey/endpoint.h;
 * docs/cablekey.md "mta kmm"). Exit 0 only if every notification was answered under ESP. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cablekey/client.h"
#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "cli.h"

#define MAX_COUNT 1000000
#define LINGER_MS 2000             /* how long to wait for the server's RQNT after the last 200 */

enum {
    OPT_CCACHE = 256, OPT_CMS, OPT_SERVICE, OPT_COUNT, OPT_KDC, OPT_SIG_PORT, OPT_INTERVAL,
    OPT_BACKOFF, OPT_TIMEOUT, OPT_SUITES, OPT_VERBOSE, OPT_HELP,
};

static const struct option kmm_opts[] = {
    {"ccache", required_argument, NULL, OPT_CCACHE},
    {"cms", required_argument, NULL, OPT_CMS},
    {"service", required_argument, NULL, OPT_SERVICE},
    {"count", required_argument, NULL, OPT_COUNT},
    {"kdc", required_argument, NULL, OPT_KDC},
    {"signaling-port", required_argument, NULL, OPT_SIG_PORT},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"backoff", required_argument, NULL, OPT_BACKOFF},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"suites", required_argument, NULL, OPT_SUITES},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char kmm_help[] =
    "usage: cablekey mta kmm --ccache FILE --cms ADDR:PORT[,ADDR:PORT] --service PRINCIPAL\n"
    "           [--count N] [--kdc HOST:PORT] [--signaling-port PORT] [--interval MS]\n"
    "           [--backoff NOMINAL_MS,MAX_MS,RETRIES] [--timeout MS] [--suites LIST]\n"
    "           [--verbose]\n"
    "\n"
    "Keys IPsec with a CMS in one Kerberized AP Request / AP Reply exchange (PacketCable key\n"
    "management, UDP 1293), sends N NCS notifications under ESP and prints one summary line.\n"
    "  --ccache      MIT FILE ccache holding the service ticket (PKINIT, kinit -S) or a TGT\n"
    "  --cms         the CMS's key-management address(es) (port 1293 if none), tried in order:\n"
    "                the next one when a CMS stops answering\n"
    "  --service     the CMS's principal, e.g. cms/cms.example@REALM\n"
    "  --count       notifications to send after the RSIP is acknowledged (default 1)\n"
    "  --kdc         the KDC for the TGS exchange when the ccache holds only a TGT (repeat for\n"
    "                more); default: the realm's kdc lines in the krb5.conf KRB5_CONFIG names\n"
    "  --signaling-port  the CMS's UDP-encapsulated ESP port (default 4500)\n"
    "  --interval    milliseconds between notifications (default 0)\n"
    "  --backoff     AP Request retries: first timeout, ceiling, transmissions per CMS\n"
    "                (default 3000,20000,5: timeouts 3, 6, 12, 20, 20 s)\n"
    "  --timeout     milliseconds before an unanswered message is sent again (default 1000;\n"
    "                after 4 sends the SA is presumed lost and re-established)\n"
    "  --suites      offered IPsec suites, strongest first (default sha1-aes128,sha1-3des,\n"
    "                sha1-null; also md5-aes128, md5-3des, md5-null)\n"
    "  --verbose     key-management events on stderr (never keys)\n"
    "Output: 'kmm: ok cms ADDR service S suite S spi in X out Y sent N answered N\n"
    "received-rqnt M exchanges E rekeys K failovers F', or 'kmm: FAILED ...: reason'.\n"
    "Exit 0 only if every notification was answered under ESP; 1 otherwise; 2 usage errors.\n";

struct kopts {
    const char *ccache, *cms, *service, *suites_arg;
    const char *kdcs[CK_KDC_MAX_KDCS];
    size_t n_kdcs;
    int64_t count, interval, timeout, sig_port;
    int64_t backoff[3];
    bool verbose;
    struct ck_kmm_suite suites[CK_KMM_MAX_SUITES];
    size_t n_suites;
};

static int
parse_backoff(const char *what, const char *arg, int64_t out[3])
{
    static const int64_t max[3] = {600000, 600000, 1024};
    const char *p = arg;
    char num[16];

    for (int i = 0; i < 3; i++) {
        size_t l = strcspn(p, ",");
        if (l == 0 || l >= sizeof(num) || (i < 2 && p[l] != ',') || (i == 2 && p[l] != '\0'))
            return cli_usage_error(what, "--backoff: expected NOMINAL_MS,MAX_MS,RETRIES");
        memcpy(num, p, l);
        num[l] = '\0';
        if (ck_parse_int64(num, 1, max[i], &out[i]) != 0)
            return cli_usage_error(what, "--backoff: '%s' out of range", num);
        p += l + (p[l] == ',');
    }
    if (out[1] < out[0])
        return cli_usage_error(what, "--backoff: the ceiling is below the first timeout");
    if (out[2] > 32)
        out[2] = 32;
    return CLI_OK;
}

static int
parse_kmm_opts(const char *what, int argc, char **argv, struct kopts *o)
{
    int c, rc;

    memset(o, 0, sizeof(*o));
    o->count = 1;
    o->sig_port = CK_ENDPOINT_DEFAULT_SIG_PORT;
    o->timeout = CK_ENDPOINT_DEFAULT_SIG_TIMEOUT_MS;
    o->backoff[0] = CK_KDC_DEFAULT_TIMEOUT_MS;
    o->backoff[1] = CK_KDC_DEFAULT_MAX_TIMEOUT_MS;
    o->backoff[2] = CK_KDC_DEFAULT_MAX_TRIES;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", kmm_opts, NULL)) != -1) {
        switch (c) {
        case OPT_CCACHE: o->ccache = optarg; break;
        case OPT_CMS: o->cms = optarg; break;
        case OPT_SERVICE: o->service = optarg; break;
        case OPT_VERBOSE: o->verbose = true; break;
        case OPT_KDC:
            if ((rc = cli_mta_add_kdc(what, optarg, o->kdcs, &o->n_kdcs)) != CLI_OK)
                return rc;
            break;
        case OPT_COUNT:
            if (ck_parse_int64(optarg, 0, MAX_COUNT, &o->count) != 0)
                return cli_usage_error(what, "--count: 0..%d", MAX_COUNT);
            break;
        case OPT_INTERVAL:
            if (ck_parse_int64(optarg, 0, 3600000, &o->interval) != 0)
                return cli_usage_error(what, "--interval: milliseconds, 0..3600000");
            break;
        case OPT_TIMEOUT:
            if (ck_parse_int64(optarg, 1, 600000, &o->timeout) != 0)
                return cli_usage_error(what, "--timeout: milliseconds, 1..600000");
            break;
        case OPT_SIG_PORT:
            if (ck_parse_int64(optarg, 1, 65535, &o->sig_port) != 0)
                return cli_usage_error(what, "--signaling-port: 1..65535");
            break;
        case OPT_BACKOFF:
            if ((rc = parse_backoff(what, optarg, o->backoff)) != CLI_OK)
                return rc;
            break;
        case OPT_SUITES:
            if (ck_endpoint_suites_parse(optarg, o->suites, CK_KMM_MAX_SUITES, &o->n_suites))
                return cli_usage_error(what, "--suites: %s", ck_error_context());
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, kmm_help);
        }
    }
    if (optind != argc)
        return cli_no_more_args(what, argv[optind]);
    if (o->ccache == NULL || *o->ccache == '\0')
        return cli_usage_error(what, "--ccache FILE is required");
    if (o->cms == NULL || *o->cms == '\0')
        return cli_usage_error(what, "--cms ADDR:PORT is required");
    if (o->service == NULL || *o->service == '\0')
        return cli_usage_error(what, "--service PRINCIPAL is required");
    return CLI_OK;
}

struct run {
    const struct kopts *o;
    int64_t sent, answered, resolved, next_send, linger_until;
    uint32_t txids[CK_ENDPOINT_MAX_PENDING];
    size_t n_txids;
};

static void
on_event(void *arg, enum ck_endpoint_event ev, const char *detail)
{
    static const char *const names[] = {"AP-REQ sent", "established", "failover", "failed",
                                        "refused", "error reply", "SA lost", "ESP dropped"};
    const struct run *r = arg;

    if (r->o->verbose)
        fprintf(stderr, "kmm: %s: %s\n", (size_t)ev < sizeof(names) / sizeof(names[0])
                                             ? names[ev] : "event", detail);
}

static void
on_response(void *arg, uint32_t txid, int code)
{
    struct run *r = arg;

    for (size_t i = 0; i < r->n_txids; i++) {
        if (r->txids[i] != txid)
            continue;
        r->txids[i] = r->txids[--r->n_txids];
        r->resolved++;
        if (code == 200)
            r->answered++;
        else if (r->o->verbose)
            fprintf(stderr, "kmm: NTFY %u answered %d\n", txid, code);
        return;
    }
}

static bool
tick(ck_endpoint *ep, void *arg, int64_t now, int64_t *wake)
{
    struct run *r = arg;
    struct ck_endpoint_stats st;

    /* Notifications only once the call agent acknowledged the restart, as NCS has it. */
    while (ck_endpoint_restarted(ep) && r->sent < r->o->count && now >= r->next_send &&
           r->n_txids < CK_ENDPOINT_MAX_PENDING) {
        char params[64];
        uint32_t txid;

        snprintf(params, sizeof(params), "X: %llx\r\nO: hd\r\n", (unsigned long long)r->sent + 1);
        if (ck_endpoint_send_command(ep, "NTFY", params, now, &txid) != 0)
            break;
        r->txids[r->n_txids++] = txid;
        r->sent++;
        r->next_send = now + r->o->interval;
    }
    if (r->sent < r->o->count && r->next_send > now)
        *wake = r->next_send;
    if (r->sent < r->o->count || r->resolved < r->o->count || !ck_endpoint_restarted(ep))
        return false;
    /* Everything answered: wait a little for the call agent's RQNT if it has not come yet. */
    ck_endpoint_get_stats(ep, &st);
    if (st.rqnt_received > 0)
        return true;
    if (r->linger_until == 0)
        r->linger_until = now + LINGER_MS;
    *wake = r->linger_until;
    return now >= r->linger_until;
}

static void
summary(const struct kopts *o, const struct ck_endpoint_cms *cms, ck_endpoint *ep,
        const struct run *r, const char *service, const char *failure)
{
    struct ck_endpoint_stats st;
    struct ck_endpoint_sa_info sa;
    char addr[CK_NET_ADDRSTRLEN] = "-";
    bool have_sa = false;

    memset(&st, 0, sizeof(st));
    if (ep != NULL) {
        ck_endpoint_get_stats(ep, &st);
        have_sa = ck_endpoint_sa_info(ep, &sa);
        ck_net_addr_format((const struct sockaddr *)&cms[ck_endpoint_cms_index(ep)].kmm, addr,
                           sizeof(addr));
    } else if (cms != NULL) {
        ck_net_addr_format((const struct sockaddr *)&cms[0].kmm, addr, sizeof(addr));
    }
    printf("kmm: %s cms %s service %s", failure == NULL ? "ok" : "FAILED", addr,
           service != NULL ? service : o->service);
    if (have_sa)
        printf(" suite %s spi in 0x%08x out 0x%08x",
               ck_kmm_suite_short_name(CK_KMM_DOI_IPSEC, sa.suite), sa.spi_in, sa.spi_out);
    printf(" sent %lld answered %lld received-rqnt %llu exchanges %llu rekeys %llu failovers %llu",
           (long long)(r != NULL ? r->sent : 0), (long long)(r != NULL ? r->answered : 0),
           (unsigned long long)st.rqnt_received, (unsigned long long)st.exchanges,
           (unsigned long long)(st.rekeys + st.reestablished), (unsigned long long)st.failovers);
    if (failure != NULL)
        printf(": %s", failure);
    printf("\n");
    fflush(stdout);
}

int
cli_mta_kmm(int argc, char **argv)
{
    const char *what = "mta kmm";
    struct kopts o;
    struct ck_endpoint_cms cms[CK_ENDPOINT_MAX_CMS];
    struct ck_endpoint_params p;
    struct run r;
    ck_endpoint *ep = NULL;
    ck_creds *creds = NULL;
    ck_kdc_transport t;
    char host[256], failure[300], *service = NULL;
    size_t n_cms = 0;
    bool from_tgs = false;
    int64_t now_s;
    int fd = -1, rc, ret;

    if ((rc = parse_kmm_opts(what, argc, argv, &o)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if ((rc = cli_mta_parse_cms(what, o.cms, (uint16_t)o.sig_port, cms, &n_cms)) != CLI_OK)
        return rc;
    memset(&r, 0, sizeof(r));
    r.o = &o;
    ck_now(&now_s, NULL);
    t = (ck_kdc_transport){.kdcs = o.kdcs, .n_kdcs = o.n_kdcs};
    if ((ret = ck_endpoint_get_ticket(o.ccache, o.service, &t, now_s, &creds, &from_tgs)) != 0) {
        snprintf(failure, sizeof(failure), "ticket: %s", ck_error_context());
        goto failed;
    }
    /* The summary names the service as the ticket does (with its realm). */
    if (ck_principal_unparse(creds->server, 0, &service) != 0)
        service = NULL;
    if (o.verbose)
        fprintf(stderr, "kmm: ticket for %s %s\n", service != NULL ? service : o.service,
                from_tgs ? "from a TGS exchange" : "from the ccache");
    if ((fd = socket(cms[0].kmm.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
        snprintf(failure, sizeof(failure), "socket: %s", strerror(errno));
        goto failed;
    }
    if (cli_mta_bind_any(fd, cms[0].kmm.ss_family) != 0) {
        snprintf(failure, sizeof(failure), "bind: %s", strerror(errno));
        goto failed;
    }
    cli_mta_hostname(host, sizeof(host));
    memset(&p, 0, sizeof(p));
    p.creds = creds;
    p.cms = cms;
    p.n_cms = n_cms;
    p.suites = o.n_suites > 0 ? o.suites : NULL;
    p.n_suites = o.n_suites;
    p.backoff_nominal_ms = (int)o.backoff[0];
    p.backoff_max_ms = (int)o.backoff[1];
    p.backoff_tries = (int)o.backoff[2];
    p.sig_timeout_ms = (int)o.timeout;
    p.host = host;
    p.fd = fd;
    p.on_event = on_event;
    p.on_response = on_response;
    p.cb_arg = &r;
    if ((ret = ck_endpoint_new(&p, &ep)) != 0 ||
        (ret = ck_endpoint_start(ep, ck_endpoint_now_ms())) != 0 ||
        (ret = ck_endpoint_run(ep, fd, 0, tick, &r)) != 0) {
        snprintf(failure, sizeof(failure), "%s", ck_error_context());
        goto failed;
    }
    if (r.answered != o.count) {
        snprintf(failure, sizeof(failure), "%lld of %lld notifications answered with 200",
                 (long long)r.answered, (long long)o.count);
        goto failed;
    }
    summary(&o, cms, ep, &r, service, NULL);
    rc = CLI_OK;
    goto out;
failed:
    summary(&o, n_cms > 0 ? cms : NULL, ep, &r, service, failure);
    rc = CLI_FAIL;
out:
    ck_endpoint_free(ep);
    ck_creds_free(creds);
    free(service);
    if (fd >= 0)
        close(fd);
    return rc;
}
