/* cablekey keytab-agent: keeps an application server's keytab in step with the staged rotation
 * of its service key (lib/keyagent, docs/keytab-agent.md). One round per interval; after a
 * failed round it retries sooner, with a backoff doubling from 1 s up to the interval.
 * SIGTERM and SIGINT stop it between rounds (a round in progress completes: its keytab rewrite
 * is atomic anyway). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/keyagent.h"
#include "cablekey/util.h"
#include "cli.h"

static const char agent_help[] =
    "usage: cablekey keytab-agent --keytab FILE --principal NAME@REALM --kdc HOST[:PORT]\n"
    "           [--kdc ...] [--service-port PORT] [--host NAME] [--interval D] [--once]\n"
    "           [--timeout MS]\n"
    "\n"
    "Fetches the new keys of a service principal from the KDCs' key version service and\n"
    "writes them into its keytab (atomically; kvnos the KDC still holds are kept), then\n"
    "confirms them so that the KDC starts using the new kvno. It authenticates with the\n"
    "principal's current key from the keytab.\n"
    "\n"
    "  --keytab FILE        the keytab the service reads (needs a key of the principal)\n"
    "  --principal NAME     the service principal, with @REALM\n"
    "  --kdc HOST[:PORT]    a KDC (port 88); repeatable, tried in order\n"
    "  --service-port PORT  the key version service on each KDC host (default 7464)\n"
    "  --host NAME          this host's name in confirmations (default: the host name); the\n"
    "                       names a rotation policy lists with --hosts\n"
    "  --interval D         time between rounds (seconds or 30s, 5m...; default 60s)\n"
    "  --once               one round, exit status 0 if it succeeded\n"
    "  --timeout MS         per exchange (default 3000)\n";

enum { OPT_KEYTAB = 256, OPT_PRINCIPAL, OPT_KDC, OPT_SERVICE_PORT, OPT_HOST, OPT_INTERVAL,
       OPT_ONCE, OPT_TIMEOUT };

static void
print_round(const ck_keyagent_cfg *cfg, const ck_keyagent_round *r)
{
    printf("keytab-agent: kdc=%s current=%u staged=%u had=%u added=%zu removed=%zu%s "
           "confirmed=%u\n",
           r->kdc_index >= 0 ? cfg->kdcs[r->kdc_index] : "-", r->current_kvno, r->staged_kvno,
           r->had_kvno, r->added, r->removed, r->written ? " written" : "", r->confirmed);
    fflush(stdout);
}

/* Waits ms or until SIGTERM/SIGINT (blocked, so a signal during a round is kept for here);
 * true when the agent must stop. */
static bool
wait_or_stop(const sigset_t *set, int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    for (;;) {
        int s = sigtimedwait(set, NULL, &ts);
        if (s == SIGTERM || s == SIGINT)
            return true;
        if (s < 0 && errno == EINTR)
            continue;
        return false;
    }
}

int
cli_keytab_agent(int argc, char **argv)
{
    static const struct option opts[] = {
        {"keytab", required_argument, NULL, OPT_KEYTAB},
        {"principal", required_argument, NULL, OPT_PRINCIPAL},
        {"kdc", required_argument, NULL, OPT_KDC},
        {"service-port", required_argument, NULL, OPT_SERVICE_PORT},
        {"host", required_argument, NULL, OPT_HOST},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"once", no_argument, NULL, OPT_ONCE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *what = "keytab-agent";
    const char *kdcs[CK_KEYAGENT_MAX_KDCS];
    char host[CK_KEYAGENT_HOST_MAX + 1] = "";
    ck_keyagent_cfg cfg;
    ck_keyagent_round r;
    sigset_t set;
    int64_t interval = CK_KEYAGENT_DEFAULT_INTERVAL, v;
    bool once = false;
    int c, rc, failures = 0;

    memset(&cfg, 0, sizeof(cfg));
    cfg.kdcs = kdcs;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_KEYTAB: cfg.keytab = optarg; break;
        case OPT_PRINCIPAL: cfg.principal = optarg; break;
        case OPT_KDC:
            if (cfg.n_kdcs >= CK_KEYAGENT_MAX_KDCS)
                return cli_usage_error(what, "more than %d --kdc", CK_KEYAGENT_MAX_KDCS);
            kdcs[cfg.n_kdcs++] = optarg;
            break;
        case OPT_SERVICE_PORT:
            if (ck_parse_int64(optarg, 1, 65535, &v) != 0)
                return cli_usage_error(what, "--service-port: 1..65535");
            cfg.service_port = (uint16_t)v;
            break;
        case OPT_HOST:
            if (!ck_keyagent_host_ok(optarg))
                return cli_usage_error(what, "--host: 1..%d characters of A-Z a-z 0-9 . - _",
                                       CK_KEYAGENT_HOST_MAX);
            ck_strlcpy(host, optarg, sizeof(host));
            break;
        case OPT_INTERVAL:
            if (cli_parse_duration(optarg, &interval) != 0 || interval < 1 ||
                interval > 86400)
                return cli_usage_error(what, "--interval: 1 s to 1 day");
            break;
        case OPT_ONCE: once = true; break;
        case OPT_TIMEOUT:
            if (ck_parse_int64(optarg, 100, 600000, &v) != 0)
                return cli_usage_error(what, "--timeout: 100..600000 ms");
            cfg.timeout_ms = (int)v;
            break;
        case 'h': fputs(agent_help, stdout); return CLI_OK;
        default:
            return cli_usage_error(what, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if ((rc = cli_no_more_args(what, optind < argc ? argv[optind] : NULL)) != CLI_OK)
        return rc;
    if (cfg.keytab == NULL || cfg.principal == NULL || cfg.n_kdcs == 0)
        return cli_usage_error(what, "--keytab, --principal and --kdc are required");
    if (host[0] == '\0') {
        if (gethostname(host, sizeof(host) - 1) != 0 || !ck_keyagent_host_ok(host))
            return cli_usage_error(what, "this host's name is not usable: give --host");
    }
    cfg.host = host;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (!once)
        sigprocmask(SIG_BLOCK, &set, NULL);
    for (;;) {
        int64_t delay;

        rc = ck_keyagent_round_run(&cfg, &r);
        if (rc == 0) {
            print_round(&cfg, &r);
            cfg.kvno_hint = r.current_kvno;
            failures = 0;
            delay = interval * 1000;
        } else {
            if (once)
                return cli_fail(what, rc);
            fprintf(stderr, "cablekey keytab-agent: round failed: %s\n", ck_error_context());
            fflush(stderr);
            delay = ck_keyagent_backoff_ms(failures++, interval * 1000);
        }
        if (once)
            return CLI_OK;
        if (wait_or_stop(&set, delay))
            break;
    }
    printf("keytab-agent: stopped\n");
    return CLI_OK;
}
