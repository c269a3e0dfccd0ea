/* cablekey mta hfc-register|boot|fetch-cert|status|reboot|reset-cert: the endpoint simulator's
 * provisioning life (seed 002 FIG. 5A/5B, FIG. 7-11; include/cablekey/provsm.h; docs/cablekey.md
 * "mta provisioning"). A device is a directory:
 *   factory.p12   the manufacturer identity: the device key and its manufacturer certificate
 *                 (CN = MAC) with the manufacturer chain; factory.pw its password (0600), or
 *                 --password-file
 *   operator.pem  the network operator's certificate for the same key, once received (0600)
 *   state         the two state machines (ck_provsm_encode)
 *   ccache        the current ticket (MIT FILE ccache), as `mta kmm --ccache` reads it
 *   mta.log       one line per transition, with the time
 * Every transition is also printed on stdout as "mta <mac>: <machine>: <from> -> <to> (<event>)".
 * The verbs hold an exclusive lock on the directory (.lock) while they run. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cablekey/client.h"
#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/pki.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_client.h"
#include "cablekey/principal.h"
#include "cablekey/prov_wire.h"
#include "cablekey/provsm.h"
#include "cablekey/util.h"
#include "cli.h"

#define PATH_MAX_LEN 4096
#define MAX_ANCHORS 16
#define KMM_DEADLINE_MS 15000
#define PROVDEV_CLOCKSKEW 300
#define OID_PKINIT_KP_CLIENT_AUTH "1.3.6.1.5.2.3.4"

enum {
    OPT_DEVICE = 256, OPT_PASSWORD_FILE, OPT_KDC, OPT_REALM, OPT_PRINCIPAL, OPT_ANCHORS,
    OPT_OPERATOR_ANCHORS, OPT_KDC_HOSTNAME, OPT_TCP, OPT_LIFETIME, OPT_IP, OPT_FAILED, OPT_CMS,
    OPT_CMS_SERVICE, OPT_PROV, OPT_PROV_PRINCIPAL, OPT_HELP,
};

static const struct option prov_opts[] = {
    {"device", required_argument, NULL, OPT_DEVICE},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"kdc", required_argument, NULL, OPT_KDC},
    {"realm", required_argument, NULL, OPT_REALM},
    {"principal", required_argument, NULL, OPT_PRINCIPAL},
    {"anchors", required_argument, NULL, OPT_ANCHORS},
    {"operator-anchors", required_argument, NULL, OPT_OPERATOR_ANCHORS},
    {"kdc-hostname", required_argument, NULL, OPT_KDC_HOSTNAME},
    {"tcp", no_argument, NULL, OPT_TCP},
    {"lifetime", required_argument, NULL, OPT_LIFETIME},
    {"ip", required_argument, NULL, OPT_IP},
    {"failed", no_argument, NULL, OPT_FAILED},
    {"cms", required_argument, NULL, OPT_CMS},
    {"cms-service", required_argument, NULL, OPT_CMS_SERVICE},
    {"prov", required_argument, NULL, OPT_PROV},
    {"prov-principal", required_argument, NULL, OPT_PROV_PRINCIPAL},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char prov_help[] =
    "usage: cablekey mta VERB --device DIR [options]\n"
    "  hfc-register --device DIR --ip ADDR | --failed\n"
    "      the HFC head-end registered the device with an unprovisioned address (FIG. 5A)\n"
    "  boot --device DIR --kdc HOST[:PORT] --realm REALM --anchors PEM [--principal NAME]\n"
    "       [--prov HOST[:PORT] [--prov-principal P]] [--cms ADDR[:PORT] --cms-service P]\n"
    "      power on: PKINIT with the operator certificate if the device holds one, else with\n"
    "      the manufacturer certificate; a refused operator certificate falls back to the\n"
    "      manufacturer one and asks the provisioning server (--prov) whether to drop it;\n"
    "      with --cms, the KMM AP exchange keys IPsec with cablekey-cms\n"
    "  fetch-cert --device DIR --prov HOST[:PORT] --anchors PEM [--prov-principal P]\n"
    "       [--kdc HOST[:PORT]]\n"
    "      fetches the operator certificate over the device channel, verifies it and installs\n"
    "      it, then acknowledges it\n"
    "  status --device DIR\n"
    "  reboot --device DIR\n"
    "  reset-cert --device DIR\n"
    "      the repair technician's front-panel wipe of the operator certificate\n"
    "\n"
    "DIR holds factory.p12 (its password in factory.pw or --password-file), operator.pem,\n"
    "state, ccache and mta.log. The principal is mta-<12 hex MAC>@REALM unless --principal.\n"
    "--anchors: the KDC's trust anchors (boot) and the operator root (fetch-cert, unless\n"
    "--operator-anchors). --prov-principal: default prov/HOST. --tcp: the KDC over TCP only\n"
    "(the device channel always uses TCP, port 7467 unless --prov names one).\n"
    "Each transition prints 'mta MAC: hfc|telephony: FROM -> TO (EVENT)'. Exit 0 on success,\n"
    "1 on failure, 2 on usage errors.\n";

struct popts {
    const char *dir, *password_file, *realm, *principal, *kdc_hostname, *ip, *cms;
    const char *cms_service, *prov, *prov_principal;
    const char *kdcs[CK_KDC_MAX_KDCS];
    size_t n_kdcs;
    char anchor_buf[MAX_ANCHORS][PATH_MAX_LEN];
    const char *anchors[MAX_ANCHORS];
    size_t n_anchors;
    char op_anchor_buf[MAX_ANCHORS][PATH_MAX_LEN];
    const char *op_anchors[MAX_ANCHORS];
    size_t n_op_anchors;
    bool tcp, failed;
    int64_t lifetime;
};

struct device {
    const char *what;
    char state_path[PATH_MAX_LEN], factory_path[PATH_MAX_LEN], pw_path[PATH_MAX_LEN];
    char operator_path[PATH_MAX_LEN], ccache_path[PATH_MAX_LEN], log_path[PATH_MAX_LEN];
    int lock_fd;
    ck_provsm sm;
    ck_pki_identity *factory;          /* loaded when the verb needs the key */
    X509 *op_cert;                     /* operator.pem, if present */
    STACK_OF(X509) *op_chain;
    char principal[300];
};

static int
add_files(const char *what, const char *opt, const char *arg, char buf[][PATH_MAX_LEN],
          const char **list, size_t *n)
{
    const char *p = arg;

    while (*p != '\0') {
        size_t l = strcspn(p, ",");
        if (l == 0 || l >= PATH_MAX_LEN)
            return cli_usage_error(what, "%s: bad file list '%s'", opt, arg);
        if (*n >= MAX_ANCHORS)
            return cli_usage_error(what, "%s: more than %d files", opt, MAX_ANCHORS);
        memcpy(buf[*n], p, l);
        buf[*n][l] = '\0';
        list[*n] = buf[*n];
        (*n)++;
        p += l + (p[l] == ',');
    }
    return CLI_OK;
}

static int
parse_opts(const char *what, int argc, char **argv, struct popts *o)
{
    int c, rc;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", prov_opts, NULL)) != -1) {
        switch (c) {
        case OPT_DEVICE: o->dir = optarg; break;
        case OPT_PASSWORD_FILE: o->password_file = optarg; break;
        case OPT_REALM: o->realm = optarg; break;
        case OPT_PRINCIPAL: o->principal = optarg; break;
        case OPT_KDC_HOSTNAME: o->kdc_hostname = optarg; break;
        case OPT_TCP: o->tcp = true; break;
        case OPT_IP: o->ip = optarg; break;
        case OPT_FAILED: o->failed = true; break;
        case OPT_CMS: o->cms = optarg; break;
        case OPT_CMS_SERVICE: o->cms_service = optarg; break;
        case OPT_PROV: o->prov = optarg; break;
        case OPT_PROV_PRINCIPAL: o->prov_principal = optarg; break;
        case OPT_KDC:
            if ((rc = cli_mta_add_kdc(what, optarg, o->kdcs, &o->n_kdcs)) != CLI_OK)
                return rc;
            break;
        case OPT_ANCHORS:
            if ((rc = add_files(what, "--anchors", optarg, o->anchor_buf, o->anchors,
                                &o->n_anchors)) != CLI_OK)
                return rc;
            break;
        case OPT_OPERATOR_ANCHORS:
            if ((rc = add_files(what, "--operator-anchors", optarg, o->op_anchor_buf,
                                o->op_anchors, &o->n_op_anchors)) != CLI_OK)
                return rc;
            break;
        case OPT_LIFETIME:
            if (cli_parse_duration(optarg, &o->lifetime) != 0 || o->lifetime == 0)
                return cli_usage_error(what, "--lifetime: %s", ck_error_context());
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, prov_help);
        }
    }
    if (optind != argc)
        return cli_no_more_args(what, argv[optind]);
    if (o->dir == NULL || *o->dir == '\0')
        return cli_usage_error(what, "--device DIR is required");
    return CLI_OK;
}

/* ---- the device directory ------------------------------------------------------------------ */

static void
on_transition(void *arg, const char *line)
{
    const struct device *d = arg;
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    FILE *f;

    printf("%s\n", line);
    fflush(stdout);
    if (gmtime_r(&now, &tm) == NULL || strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        ck_strlcpy(ts, "-", sizeof(ts));
    if ((f = fopen(d->log_path, "a")) != NULL) {
        fprintf(f, "%s %s\n", ts, line);
        fclose(f);
    }
}

static int
dir_path(const char *what, const char *dir, const char *name, char *out)
{
    int n = snprintf(out, PATH_MAX_LEN, "%s/%s", dir, name);

    if (n < 0 || n >= PATH_MAX_LEN)
        return cli_usage_error(what, "--device: path too long");
    return CLI_OK;
}

static bool
file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* The whole of a small file (at most cap bytes; more is CK_ERR_LIMIT). */
static int
read_small(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int ret;

    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "%s: %s", path,
                            strerror(errno));
    ret = ck_fd_read_all(fd, buf, cap + 1, len);
    close(fd);
    if (ret != 0)
        return ck_error_set(ret, "%s: %s", path, ck_error_context());
    if (*len > cap)
        return ck_error_set(CK_ERR_LIMIT, "%s: larger than %zu bytes", path, cap);
    return 0;
}

static int
load_factory(struct device *d, const struct popts *o)
{
    char *password = NULL;
    const char *pwfile = o->password_file;
    int ret;

    if (d->factory != NULL)
        return 0;
    if (pwfile == NULL && file_exists(d->pw_path))
        pwfile = d->pw_path;
    if (pwfile != NULL && (ret = ck_pki_password_read(pwfile, &password)) != 0)
        return ret;
    ret = ck_pki_identity_load(d->factory_path, password, &d->factory);
    ck_pki_password_free(password);
    if (ret != 0)
        return ck_error_set(ret, "factory identity %s: %s", d->factory_path,
                            ck_error_context());
    return 0;
}

static int
load_operator_cert(struct device *d)
{
    STACK_OF(X509) *all = NULL;
    int ret;

    if (!file_exists(d->operator_path))
        return 0;
    if ((ret = ck_pki_certs_load_pem(d->operator_path, &all)) != 0)
        return ck_error_set(ret, "%s: %s", d->operator_path, ck_error_context());
    d->op_cert = sk_X509_shift(all);
    d->op_chain = all;
    return 0;
}

static void
device_close(struct device *d)
{
    ck_pki_identity_free(d->factory);
    X509_free(d->op_cert);
    sk_X509_pop_free(d->op_chain, X509_free);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    d->factory = NULL;
    d->op_cert = NULL;
    d->op_chain = NULL;
    d->lock_fd = -1;
}

/* Opens the device directory: lock, state (or a factory-fresh one from the manufacturer
 * certificate's MAC), the operator certificate, and the expiries due now. */
static int
device_open(const char *what, const struct popts *o, bool need_key, int64_t now,
            struct device *d)
{
    char lock_path[PATH_MAX_LEN], text[CK_PROVSM_FILE_MAX + 1], mac_text[CK_MAC_TEXT];
    size_t len = 0;
    bool have_state;
    uint8_t mac[6];
    int rc, ret;

    memset(d, 0, sizeof(*d));
    d->what = what;
    d->lock_fd = -1;
    if ((rc = dir_path(what, o->dir, "state", d->state_path)) != CLI_OK ||
        (rc = dir_path(what, o->dir, "factory.p12", d->factory_path)) != CLI_OK ||
        (rc = dir_path(what, o->dir, "factory.pw", d->pw_path)) != CLI_OK ||
        (rc = dir_path(what, o->dir, "operator.pem", d->operator_path)) != CLI_OK ||
        (rc = dir_path(what, o->dir, "ccache", d->ccache_path)) != CLI_OK ||
        (rc = dir_path(what, o->dir, "mta.log", d->log_path)) != CLI_OK ||
        (rc = dir_path(what, o->dir, ".lock", lock_path)) != CLI_OK)
        return rc;
    if ((d->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
        return cli_fail(what, ck_error_set(CK_ERR_IO, "%s: %s", lock_path, strerror(errno)));
    if (flock(d->lock_fd, LOCK_EX) != 0)
        return cli_fail(what, ck_error_set(CK_ERR_IO, "lock %s: %s", lock_path,
                                           strerror(errno)));
    ret = read_small(d->state_path, text, CK_PROVSM_FILE_MAX, &len);
    if (ret != 0 && ret != CK_ERR_NOTFOUND)
        return cli_fail(what, ret);
    have_state = ret == 0;
    if (have_state && (ret = ck_provsm_decode(text, len, &d->sm)) != 0)
        return cli_fail(what, ck_error_set(ret, "%s: %s", d->state_path, ck_error_context()));
    if (need_key || !have_state) {
        if ((ret = load_factory(d, o)) != 0)
            return cli_fail(what, ret);
        if (ck_pki_cert_device_mac(d->factory->cert, mac) != 0)
            return cli_fail(what, ck_error_set(CK_ERR_INVAL, "%s: the certificate's CN is no "
                                               "MAC address", d->factory_path));
        if (!have_state)
            ck_provsm_init(&d->sm, mac);
        else if (memcmp(mac, d->sm.mac, 6) != 0)
            return cli_fail(what, ck_error_set(CK_ERR_INVAL, "%s belongs to another device "
                                               "than %s", d->state_path, d->factory_path));
    }
    d->sm.on_transition = on_transition;
    d->sm.cb_arg = d;
    if ((ret = load_operator_cert(d)) != 0)
        return cli_fail(what, ret);
    ck_mac_format(d->sm.mac, mac_text);
    if (o->principal != NULL) {
        if (ck_strlcpy(d->principal, o->principal, sizeof(d->principal)) >= sizeof(d->principal))
            return cli_usage_error(what, "--principal: too long");
    } else {
        snprintf(d->principal, sizeof(d->principal), "mta-%02x%02x%02x%02x%02x%02x",
                 d->sm.mac[0], d->sm.mac[1], d->sm.mac[2], d->sm.mac[3], d->sm.mac[4],
                 d->sm.mac[5]);
    }
    ck_provsm_tick(&d->sm, now);
    return CLI_OK;
}

static int
device_save(struct device *d)
{
    char *text = NULL;
    size_t len = 0;
    int ret;

    if ((ret = ck_provsm_encode(&d->sm, &text, &len)) != 0)
        return cli_fail(d->what, ret);
    ret = ck_file_write_atomic(d->state_path, text, len, CK_WRITE_REPLACE);
    free(text);
    if (ret != 0)
        return cli_fail(d->what, ret);
    return CLI_OK;
}

static int
remove_file(const char *path)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return ck_error_set(CK_ERR_IO, "remove %s: %s", path, strerror(errno));
    return 0;
}

/* Feeds one event; carries out what it asks (dropping the operator certificate). */
static int
fire(struct device *d, ck_provsm_event *ev, int64_t now)
{
    unsigned act = 0;
    int ret;

    if ((ret = ck_provsm_apply(&d->sm, ev, now, NULL, &act)) != 0)
        return ret;
    if (act & CK_PROVSM_ACT_DROP_CERT) {
        if ((ret = remove_file(d->operator_path)) != 0)
            return ret;
        X509_free(d->op_cert);
        sk_X509_pop_free(d->op_chain, X509_free);
        d->op_cert = NULL;
        d->op_chain = NULL;
        printf("mta: operator certificate removed\n");
    }
    return 0;
}

static int
fire_type(struct device *d, enum ck_provsm_event_type t, int64_t now)
{
    ck_provsm_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = t;
    return fire(d, &ev, now);
}

/* A reboot: the machines' edges, and the ticket in memory is gone. */
static int
reboot_device(struct device *d, int64_t now)
{
    int ret;

    if ((ret = fire_type(d, CK_PROVSM_EV_REBOOT, now)) != 0)
        return ret;
    return remove_file(d->ccache_path);
}

/* ---- helpers: time, certificates ------------------------------------------------------------ */

static int
asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return ck_error_set(CK_ERR_DECODE, "certificate time");
    *out = (int64_t)timegm(&tm);
    return 0;
}

static void
format_time(int64_t t, char *buf, size_t size)
{
    if (t == 0)
        ck_strlcpy(buf, "-", size);
    else
        cli_format_time(t, buf, size);
}

static int
cert_sha256_hex(X509 *cert, char out[65])
{
    uint8_t *der = NULL, md[32];
    unsigned mdlen = 0;
    int n = i2d_X509(cert, &der);

    if (n <= 0)
        return ck_error_set_ssl(CK_ERR_ENCODE, "certificate");
    if (EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        OPENSSL_free(der);
        return ck_error_set_ssl(CK_ERR_CRYPTO, "SHA-256");
    }
    OPENSSL_free(der);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static void
cert_cn(X509_NAME *name, char *buf, size_t size)
{
    if (X509_NAME_get_text_by_NID(name, NID_commonName, buf, (int)size) < 0)
        ck_strlcpy(buf, "?", size);
}

/* ---- PKINIT, KMM and the device channel ---------------------------------------------------- */

static int
load_anchors(const char *const *files, size_t n, ck_pkinit_anchors **out)
{
    ck_pkinit_anchors *a = NULL;
    int ret;

    if ((ret = ck_pkinit_anchors_new(&a)) != 0)
        return ret;
    for (size_t i = 0; i < n; i++) {
        ret = ck_pkinit_anchors_add_file(a, files[i], 0, NULL);
        if (ret != 0 && ret != CK_ERR_EXISTS) {
            ck_pkinit_anchors_free(a);
            return ck_error_set(ret, "--anchors %s: %s", files[i], ck_error_context());
        }
    }
    *out = a;
    return 0;
}

static int
pkinit_login(const struct popts *o, const struct device *d, const ck_pki_identity *id,
             const ck_pkinit_anchors *anchors, ck_creds **out)
{
    ck_kdc_transport t = {.kdcs = o->kdcs, .n_kdcs = o->n_kdcs, .tcp_only = o->tcp};
    ck_as_params as = {
        .realm = o->realm,
        .client = d->principal,
        .lifetime = o->lifetime,
        .transport = &t,
    };
    ck_pkinit_client_params p = {
        .as = &as,
        .identity = id,
        .anchors = anchors,
        .kx = CK_PKINIT_KX_DH,
        .kdc_hostname = o->kdc_hostname,
    };

    return ck_client_as_pkinit(&p, out, NULL);
}

static int
save_ccache(const struct device *d, const ck_creds *creds)
{
    int ret = ck_ccache_write(d->ccache_path, &creds, 1);

    if (ret != 0)
        return ck_error_set(ret, "ccache %s: %s", d->ccache_path, ck_error_context());
    return 0;
}

static bool
kmm_established(ck_endpoint *ep, void *arg, int64_t now, int64_t *wake)
{
    (void)arg;
    (void)now;
    (void)wake;
    return ck_endpoint_state(ep) == CK_ENDPOINT_ESTABLISHED;
}

/* One KMM AP exchange with cablekey-cms (as `mta kmm`, lib/endpoint): *sa_expires on success. */
static int
kmm_exchange(const char *what, const struct popts *o, const struct device *d, int64_t now,
             int64_t *sa_expires)
{
    struct ck_endpoint_cms cms[CK_ENDPOINT_MAX_CMS];
    struct ck_endpoint_params p;
    struct ck_endpoint_sa_info sa;
    ck_kdc_transport t = {.kdcs = o->kdcs, .n_kdcs = o->n_kdcs, .tcp_only = o->tcp};
    ck_endpoint *ep = NULL;
    ck_creds *creds = NULL;
    char host[256];
    size_t n_cms = 0;
    bool from_tgs = false;
    int fd = -1, ret;

    if (cli_mta_parse_cms(what, o->cms, CK_ENDPOINT_DEFAULT_SIG_PORT, cms, &n_cms) != CLI_OK)
        return ck_error_set(CK_ERR_INVAL, "--cms %s", o->cms);
    if ((ret = ck_endpoint_get_ticket(d->ccache_path, o->cms_service, &t, now, &creds,
                                      &from_tgs)) != 0)
        return ck_error_set(ret, "ticket for %s: %s", o->cms_service, ck_error_context());
    if ((fd = socket(cms[0].kmm.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
        cli_mta_bind_any(fd, cms[0].kmm.ss_family) != 0) {
        ret = ck_error_set(CK_ERR_IO, "socket: %s", strerror(errno));
        goto out;
    }
    cli_mta_hostname(host, sizeof(host));
    memset(&p, 0, sizeof(p));
    p.creds = creds;
    p.cms = cms;
    p.n_cms = n_cms;
    p.backoff_nominal_ms = 1000;
    p.backoff_max_ms = 4000;
    p.backoff_tries = 3;
    p.host = host;
    p.fd = fd;
    p.no_rsip = true;
    if ((ret = ck_endpoint_new(&p, &ep)) != 0 ||
        (ret = ck_endpoint_start(ep, ck_endpoint_now_ms())) != 0 ||
        (ret = ck_endpoint_run(ep, fd, ck_endpoint_now_ms() + KMM_DEADLINE_MS, kmm_established,
                               NULL)) != 0)
        goto out;
    if (!ck_endpoint_sa_info(ep, &sa)) {
        ret = ck_error_set(CK_ERR_PROTO, "no SA after the AP exchange");
        goto out;
    }
    *sa_expires = sa.expires_ms / 1000;
    ret = 0;
out:
    ck_endpoint_free(ep);
    ck_creds_free(creds);
    if (fd >= 0)
        close(fd);
    return ret;
}

/* The service principal of the device channel: --prov-principal, else prov/HOST. */
static int
prov_service(const char *what, const struct popts *o, char *out, size_t size)
{
    char host[256];
    uint16_t port;

    if (o->prov_principal != NULL) {
        if (ck_strlcpy(out, o->prov_principal, size) >= size)
            return cli_usage_error(what, "--prov-principal: too long");
        return CLI_OK;
    }
    if (ck_net_parse_listen(o->prov, CK_PROVDEV_PORT, host, sizeof(host), &port) != 0 ||
        host[0] == '\0')
        return cli_usage_error(what, "--prov: bad address '%s'", o->prov);
    snprintf(out, size, "%s/%s", CK_PROVDEV_SERVICE, host);
    return CLI_OK;
}

/* One device-channel exchange with a ticket for the provisioning server from the device's
 * ccache (TGS exchange when it holds only the TGT). */
static int
provdev(const struct popts *o, const struct device *d, const char *service,
        const ck_provdev_req *req, int64_t now, ck_provdev_rep *rep)
{
    ck_kdc_transport t = {.kdcs = o->kdcs, .n_kdcs = o->n_kdcs, .tcp_only = o->tcp};
    char host[256], spec[300];
    const char *addr[1] = {spec};
    uint16_t port;
    /* TCP: the Kerberos transport takes only Kerberos-tagged datagrams over UDP, and the
     * device channel's replies start with their length (as kpasswd's). */
    ck_kdc_transport svc = {.kdcs = addr, .n_kdcs = 1, .tcp_only = true, .timeout_ms = 1000,
                            .max_timeout_ms = 4000, .max_tries = 3};
    ck_creds *creds = NULL;
    bool from_tgs = false;
    int ret;

    /* The transport's default port is Kerberos' 88: spell out the device channel's. */
    if (ck_net_parse_listen(o->prov, CK_PROVDEV_PORT, host, sizeof(host), &port) != 0 ||
        host[0] == '\0')
        return ck_error_set(CK_ERR_INVAL, "--prov: bad address");
    snprintf(spec, sizeof(spec), strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host, port);
    if ((ret = ck_endpoint_get_ticket(d->ccache_path, service, &t, now, &creds, &from_tgs)) != 0)
        return ck_error_set(ret, "ticket for %s: %s", service, ck_error_context());
    ret = ck_provdev_exchange(&svc, creds, req, PROVDEV_CLOCKSKEW, rep);
    ck_creds_free(creds);
    return ret;
}

/* ---- verbs ------------------------------------------------------------------------------- */

static int
mta_hfc_register(int argc, char **argv)
{
    const char *what = "mta hfc-register";
    struct popts o;
    struct device d;
    ck_provsm_event ev;
    int64_t now;
    int rc, ret;

    if ((rc = parse_opts(what, argc, argv, &o)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if ((o.ip == NULL) == !o.failed)
        return cli_usage_error(what, "give --ip ADDR (registered) or --failed");
    ck_now(&now, NULL);
    if ((rc = device_open(what, &o, false, now, &d)) != CLI_OK)
        goto out;
    memset(&ev, 0, sizeof(ev));
    if (o.failed) {
        ev.type = CK_PROVSM_EV_HFC_REGISTER_FAILED;
    } else {
        /* An unprovisioned address on a device that was provisioned: this head-end does not
         * provision it (a move to another segment, FIG. 10). */
        if ((d.sm.hfc == CK_PROVSM_HFC_FULLY_REGISTERED || d.sm.hfc == CK_PROVSM_HFC_PROVISIONED) &&
            (ret = fire_type(&d, CK_PROVSM_EV_DEPROVISIONED, now)) != 0) {
            rc = cli_fail(what, ret);
            goto out;
        }
        ev.type = CK_PROVSM_EV_HFC_REGISTERED;
        ev.ip = o.ip;
    }
    if ((ret = fire(&d, &ev, now)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    rc = device_save(&d);
out:
    device_close(&d);
    return rc;
}

/* Operator certificate refused: ask the provisioning server whether to drop it. Only a DROP
 * inside a verified device-channel reply removes it. */
static void
check_refused_cert(const char *what, const struct popts *o, struct device *d, int64_t now)
{
    ck_provdev_req req;
    ck_provdev_rep rep;
    ck_provsm_event ev;
    char service[300];
    uint8_t *der = NULL;
    unsigned mdlen = 0;
    int n, ret;

    if (o->prov == NULL) {
        printf("mta: operator certificate kept (no --prov to ask; only an authenticated DROP "
               "removes it)\n");
        return;
    }
    if (prov_service(what, o, service, sizeof(service)) != CLI_OK)
        return;
    memset(&req, 0, sizeof(req));
    memset(&rep, 0, sizeof(rep));
    req.type = CK_PROVDEV_CHECK;
    if ((n = i2d_X509(d->op_cert, &der)) <= 0 ||
        EVP_Digest(der, (size_t)n, req.sha256, &mdlen, EVP_sha256(), NULL) != 1) {
        OPENSSL_free(der);
        printf("mta: operator certificate kept (cannot hash it)\n");
        return;
    }
    OPENSSL_free(der);
    ret = provdev(o, d, service, &req, now, &rep);
    if (ret != 0) {
        printf("mta: CHECK failed, operator certificate kept: %s\n", ck_error_context());
    } else if (rep.result != CK_PROVDEV_OK) {
        printf("mta: CHECK answered %s, operator certificate kept\n",
               ck_provdev_result_name(rep.result));
    } else if (rep.instruction == CK_PROVDEV_DROP) {
        memset(&ev, 0, sizeof(ev));
        ev.type = CK_PROVSM_EV_DROP;
        ev.authenticated = true;
        if ((ret = fire(d, &ev, now)) != 0)
            printf("mta: DROP not carried out: %s\n", ck_error_context());
    } else {
        printf("mta: CHECK answered KEEP, operator certificate kept\n");
    }
    ck_provdev_rep_clear(&rep);
}

static int
mta_boot(int argc, char **argv)
{
    const char *what = "mta boot";
    struct popts o;
    struct device d;
    ck_pkinit_anchors *anchors = NULL;
    ck_pki_identity *op_id = NULL;
    ck_creds *creds = NULL;
    ck_provsm_event ev;
    bool logged_in = false, refused = false;
    char until[64];
    int64_t now;
    int rc, ret;

    if ((rc = parse_opts(what, argc, argv, &o)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if (o.n_kdcs == 0)
        return cli_usage_error(what, "--kdc HOST[:PORT] is required");
    if (o.realm == NULL || *o.realm == '\0')
        return cli_usage_error(what, "--realm REALM is required");
    if (o.n_anchors == 0)
        return cli_usage_error(what, "--anchors PEM is required (the KDC's certificate must be "
                                     "verified)");
    if ((o.cms == NULL) != (o.cms_service == NULL))
        return cli_usage_error(what, "--cms and --cms-service go together");
    ck_now(&now, NULL);
    if ((rc = device_open(what, &o, true, now, &d)) != CLI_OK)
        goto out;
    if ((ret = load_anchors(o.anchors, o.n_anchors, &anchors)) != 0 ||
        (ret = reboot_device(&d, now)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    if (d.op_cert != NULL) {
        if ((ret = ck_pki_identity_new(d.factory->key, d.op_cert, d.op_chain, &op_id)) != 0) {
            rc = cli_fail(what, ck_error_set(ret, "%s does not certify the factory key: %s",
                                             d.operator_path, ck_error_context()));
            goto out;
        }
        ret = pkinit_login(&o, &d, op_id, anchors, &creds);
        memset(&ev, 0, sizeof(ev));
        if (ret == 0) {
            ev.type = CK_PROVSM_EV_PKINIT_OK_OPERATOR;
            ev.expires = creds->endtime;
            logged_in = true;
        } else {
            ev.type = CK_PROVSM_EV_PKINIT_FAILED;
            ev.krb_error = ret == CK_ERR_KRB ? ck_error_krb_code() : 0;
            printf("mta: PKINIT with the operator certificate failed: %s\n", ck_error_context());
            refused = ret == CK_ERR_KRB;
        }
        if ((ret = fire(&d, &ev, now)) != 0) {
            rc = cli_fail(what, ret);
            goto save;
        }
        if (!logged_in && !refused) {
            /* No answer is no refusal: nothing to fall back on. */
            rc = CLI_FAIL;
            goto save;
        }
    }
    if (!logged_in) {
        ret = pkinit_login(&o, &d, d.factory, anchors, &creds);
        memset(&ev, 0, sizeof(ev));
        if (ret == 0) {
            ev.type = CK_PROVSM_EV_PKINIT_OK_MFG;
            ev.expires = creds->endtime;
        } else {
            ev.type = CK_PROVSM_EV_PKINIT_FAILED;
            ev.krb_error = ret == CK_ERR_KRB ? ck_error_krb_code() : 0;
            printf("mta: PKINIT with the manufacturer certificate failed: %s\n",
                   ck_error_context());
        }
        (void)fire(&d, &ev, now);
        if (ret != 0) {
            rc = CLI_FAIL;
            goto save;
        }
    }
    if ((ret = save_ccache(&d, creds)) != 0) {
        rc = cli_fail(what, ret);
        goto save;
    }
    format_time(creds->endtime, until, sizeof(until));
    printf("mta: %s logged in with the %s certificate until %s\n", d.principal,
           logged_in ? "operator" : "manufacturer", until);
    if (refused)
        check_refused_cert(what, &o, &d, now);
    rc = CLI_OK;
    if (o.cms != NULL) {
        int64_t sa_expires = 0;
        memset(&ev, 0, sizeof(ev));
        ret = kmm_exchange(what, &o, &d, now, &sa_expires);
        if (ret == 0) {
            ev.type = CK_PROVSM_EV_KMM_OK;
            ev.expires = sa_expires;
            printf("mta: KMM AP exchange with %s ok\n", o.cms);
        } else {
            ev.type = CK_PROVSM_EV_KMM_FAILED;
            printf("mta: KMM AP exchange with %s failed: %s\n", o.cms, ck_error_context());
            rc = CLI_FAIL;
        }
        (void)fire(&d, &ev, now);
    }
save:
    if (device_save(&d) != CLI_OK)
        rc = CLI_FAIL;
out:
    ck_creds_free(creds);
    ck_pki_identity_free(op_id);
    ck_pkinit_anchors_free(anchors);
    device_close(&d);
    return rc;
}

static bool
has_pkinit_client_eku(X509 *cert)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
    ASN1_OBJECT *want = OBJ_txt2obj(OID_PKINIT_KP_CLIENT_AUTH, 1);
    bool found = false;

    for (int i = 0; eku != NULL && want != NULL && i < sk_ASN1_OBJECT_num(eku); i++) {
        if (OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), want) == 0)
            found = true;
    }
    ASN1_OBJECT_free(want);
    EXTENDED_KEY_USAGE_free(eku);
    return found;
}

/* The fetched certificate: DER without trailing bytes, a chain to the operator root valid at
 * now, the PKINIT client EKU, the factory key and MAC, and (FIG. 9) a notBefore later than the
 * held certificate's. */
static int
verify_fetched(const struct device *d, const ck_provdev_rep *rep, const char *const *anchor_files,
               size_t n_anchor_files, int64_t now, X509 **cert_out, STACK_OF(X509) **chain_out,
               int64_t *not_before)
{
    X509 *cert = NULL;
    STACK_OF(X509) *chain = sk_X509_new_null(), *anchors = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    uint8_t mac[6];
    int64_t nb = 0, held_nb = 0;
    int ret;

    if (chain == NULL)
        return ck_error_set(CK_ERR_NOMEM, "chain");
    if (rep->n_certs == 0 || rep->n_certs > CK_PROVDEV_MAX_CERTS) {
        ret = ck_error_set(CK_ERR_PROTO, "FETCH reply carries %zu certificates", rep->n_certs);
        goto out;
    }
    for (size_t i = 0; i < rep->n_certs; i++) {
        const unsigned char *p = rep->certs[i];
        X509 *x = d2i_X509(NULL, &p, (long)rep->cert_lens[i]);
        if (x == NULL || p != rep->certs[i] + rep->cert_lens[i]) {
            X509_free(x);
            ret = ck_error_set_ssl(CK_ERR_DECODE, "FETCH reply: certificate %zu", i);
            goto out;
        }
        if (i == 0)
            cert = x;
        else if (!sk_X509_push(chain, x)) {
            X509_free(x);
            ret = ck_error_set(CK_ERR_NOMEM, "chain");
            goto out;
        }
    }
    if ((store = X509_STORE_new()) == NULL || (ctx = X509_STORE_CTX_new()) == NULL) {
        ret = ck_error_set_ssl(CK_ERR_NOMEM, "X509_STORE");
        goto out;
    }
    for (size_t i = 0; i < n_anchor_files; i++) {
        if ((ret = ck_pki_certs_load_pem(anchor_files[i], &anchors)) != 0) {
            ret = ck_error_set(ret, "operator anchors %s: %s", anchor_files[i],
                               ck_error_context());
            goto out;
        }
        for (int j = 0; j < sk_X509_num(anchors); j++)
            X509_STORE_add_cert(store, sk_X509_value(anchors, j));
        sk_X509_pop_free(anchors, X509_free);
        anchors = NULL;
    }
    if (X509_STORE_CTX_init(ctx, store, cert, chain) != 1) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "X509_STORE_CTX_init");
        goto out;
    }
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)now);
    /* The operator anchor is the provisioning CA itself (prov-ca.pem of `cablekey pki init`),
     * which sits below the service provider's root: the chain ends at the first anchor it
     * meets, as the KDC's pkinit_operator_anchors do, and the device channel need not carry
     * the CA certificate. */
    X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx), X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_verify_cert(ctx) != 1) {
        ret = ck_error_set(CK_ERR_POLICY, "the new certificate does not chain to the operator "
                           "root: %s",
                           X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    if (!has_pkinit_client_eku(cert)) {
        ret = ck_error_set(CK_ERR_POLICY, "the new certificate lacks id-pkinit-KPClientAuth");
        goto out;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(cert), d->factory->key) != 1) {
        ret = ck_error_set(CK_ERR_POLICY, "the new certificate does not certify the device's "
                                          "factory key");
        goto out;
    }
    if (ck_pki_cert_device_mac(cert, mac) != 0 || memcmp(mac, d->sm.mac, 6) != 0) {
        ret = ck_error_set(CK_ERR_POLICY, "the new certificate names another MAC address");
        goto out;
    }
    if ((ret = asn1_time_unix(X509_get0_notBefore(cert), &nb)) != 0)
        goto out;
    if (d->op_cert != NULL && X509_cmp(d->op_cert, cert) != 0) {
        if ((ret = asn1_time_unix(X509_get0_notBefore(d->op_cert), &held_nb)) != 0)
            goto out;
        if (nb <= held_nb) {
            ret = ck_error_set(CK_ERR_REPLAY, "the new certificate does not start later than "
                                              "the one held: a replay");
            goto out;
        }
    }
    *cert_out = cert;
    *chain_out = chain;
    *not_before = nb;
    cert = NULL;
    chain = NULL;
    ret = 0;
out:
    X509_free(cert);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(anchors, X509_free);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ret;
}

static int
mta_fetch_cert(int argc, char **argv)
{
    const char *what = "mta fetch-cert";
    struct popts o;
    struct device d;
    ck_provdev_req req;
    ck_provdev_rep rep;
    ck_provsm_event ev;
    X509 *cert = NULL;
    STACK_OF(X509) *chain = NULL;
    char service[300], hex[65];
    int64_t now, not_before = 0;
    bool same = false;
    int rc, ret;

    memset(&rep, 0, sizeof(rep));
    if ((rc = parse_opts(what, argc, argv, &o)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if (o.prov == NULL)
        return cli_usage_error(what, "--prov HOST[:PORT] is required");
    if (o.n_anchors == 0 && o.n_op_anchors == 0)
        return cli_usage_error(what, "--anchors PEM (the operator root) is required");
    if ((rc = prov_service(what, &o, service, sizeof(service))) != CLI_OK)
        return rc;
    ck_now(&now, NULL);
    if ((rc = device_open(what, &o, true, now, &d)) != CLI_OK)
        goto out;
    /* A ticket is needed: the device has logged in (FIG. 5B 550 and after). */
    if (d.sm.tel == CK_PROVSM_TEL_NOT_CONFIGURED) {
        rc = cli_fail(what, ck_error_set(CK_ERR_POLICY, "the device has no telephony access "
                                         "(%s): boot first",
                                         ck_provsm_tel_name(d.sm.tel)));
        goto out;
    }
    memset(&req, 0, sizeof(req));
    req.type = CK_PROVDEV_FETCH;
    if ((ret = provdev(&o, &d, service, &req, now, &rep)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    if (rep.result == CK_PROVDEV_NO_CERT) {
        printf("mta: no certificate issued for this device yet\n");
        (void)fire_type(&d, CK_PROVSM_EV_PROV_REJECTED, now);
        (void)fire_type(&d, CK_PROVSM_EV_CSR_CALL_FAILED, now);
        (void)device_save(&d);
        rc = CLI_FAIL;
        goto out;
    }
    if (rep.result != CK_PROVDEV_OK) {
        rc = cli_fail(what, ck_error_set(CK_ERR_PROTO, "FETCH answered %s%s%s",
                                         ck_provdev_result_name(rep.result),
                                         rep.text[0] != '\0' ? ": " : "", rep.text));
        goto out;
    }
    if ((ret = verify_fetched(&d, &rep, o.n_op_anchors > 0 ? o.op_anchors : o.anchors,
                              o.n_op_anchors > 0 ? o.n_op_anchors : o.n_anchors, now, &cert,
                              &chain, &not_before)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    same = d.op_cert != NULL && X509_cmp(d.op_cert, cert) == 0;
    if (!same && (ret = ck_pki_certs_write_pem(d.operator_path, cert, chain,
                                               CK_PKI_WRITE_REPLACE)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    memset(&req, 0, sizeof(req));
    req.type = CK_PROVDEV_ACK;
    req.cert_id = rep.cert_id;
    ck_provdev_rep_clear(&rep);
    memset(&rep, 0, sizeof(rep));
    if ((ret = provdev(&o, &d, service, &req, now, &rep)) != 0) {
        rc = cli_fail(what, ck_error_set(ret, "ACK: %s", ck_error_context()));
        goto out;
    }
    if (rep.result != CK_PROVDEV_OK) {
        rc = cli_fail(what, ck_error_set(CK_ERR_PROTO, "ACK answered %s",
                                         ck_provdev_result_name(rep.result)));
        goto out;
    }
    if (cert_sha256_hex(cert, hex) != 0)
        ck_strlcpy(hex, "?", sizeof(hex));
    printf("mta: operator certificate %s (id %lld, sha256 %s)\n",
           same ? "acknowledged again" : "installed", (long long)req.cert_id, hex);
    if (!(same && d.sm.operator_cert && d.sm.cert_id == req.cert_id)) {
        memset(&ev, 0, sizeof(ev));
        ev.type = CK_PROVSM_EV_CERT_RECEIVED;
        ev.not_before = not_before;
        ev.cert_id = req.cert_id;
        if (same)
            d.sm.operator_cert = false; /* installed before, acknowledged only now */
        if ((ret = fire(&d, &ev, now)) != 0) {
            rc = cli_fail(what, ret);
            goto out;
        }
        (void)fire_type(&d, CK_PROVSM_EV_PROV_COMPLETE, now);
    }
    rc = device_save(&d);
out:
    ck_provdev_rep_clear(&rep);
    X509_free(cert);
    sk_X509_pop_free(chain, X509_free);
    device_close(&d);
    return rc;
}

static int
mta_status(int argc, char **argv)
{
    const char *what = "mta status";
    struct popts o;
    struct device d;
    char mac[CK_MAC_TEXT], t1[64], t2[64], hex[65], cn[128], issuer[128];
    int64_t now, nb = 0, na = 0;
    int rc;

    if ((rc = parse_opts(what, argc, argv, &o)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    ck_now(&now, NULL);
    if ((rc = device_open(what, &o, false, now, &d)) != CLI_OK)
        goto out;
    ck_mac_format(d.sm.mac, mac);
    printf("device %s: mac %s, principal %s\n", o.dir, mac, d.principal);
    printf("hfc: %s (%d)%s%s\n", ck_provsm_hfc_name(d.sm.hfc), (int)d.sm.hfc,
           d.sm.ip[0] != '\0' ? ", unprovisioned address " : "", d.sm.ip);
    format_time(d.sm.ticket_expires, t1, sizeof(t1));
    format_time(d.sm.sa_expires, t2, sizeof(t2));
    printf("telephony: %s (%d), ticket until %s, SA until %s\n", ck_provsm_tel_name(d.sm.tel),
           (int)d.sm.tel, t1, t2);
    if (d.op_cert == NULL) {
        printf("operator certificate: none\n");
    } else {
        cert_cn(X509_get_subject_name(d.op_cert), cn, sizeof(cn));
        cert_cn(X509_get_issuer_name(d.op_cert), issuer, sizeof(issuer));
        (void)asn1_time_unix(X509_get0_notBefore(d.op_cert), &nb);
        (void)asn1_time_unix(X509_get0_notAfter(d.op_cert), &na);
        format_time(nb, t1, sizeof(t1));
        format_time(na, t2, sizeof(t2));
        if (cert_sha256_hex(d.op_cert, hex) != 0)
            ck_strlcpy(hex, "?", sizeof(hex));
        printf("operator certificate: CN %s, issuer %s, valid %s .. %s, sha256 %s, id %lld%s\n",
               cn, issuer, t1, t2, hex, (long long)d.sm.cert_id,
               na != 0 && na < now ? " (EXPIRED)" : "");
    }
    rc = device_save(&d);
out:
    device_close(&d);
    return rc;
}

static int
mta_reboot(int argc, char **argv)
{
    const char *what = "mta reboot";
    struct popts o;
    struct device d;
    int64_t now;
    int rc, ret;

    if ((rc = parse_opts(what, argc, argv, &o)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    ck_now(&now, NULL);
    if ((rc = device_open(what, &o, false, now, &d)) != CLI_OK)
        goto out;
    if ((ret = reboot_device(&d, now)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    rc = device_save(&d);
out:
    device_close(&d);
    return rc;
}

static int
mta_reset_cert(int argc, char **argv)
{
    const char *what = "mta reset-cert";
    struct popts o;
    struct device d;
    int64_t now;
    int rc, ret;

    if ((rc = parse_opts(what, argc, argv, &o)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    ck_now(&now, NULL);
    if ((rc = device_open(what, &o, false, now, &d)) != CLI_OK)
        goto out;
    if ((ret = fire_type(&d, CK_PROVSM_EV_CERT_WIPED, now)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    rc = device_save(&d);
out:
    device_close(&d);
    return rc;
}

bool
cli_mta_prov_verb(const char *verb)
{
    static const char *const verbs[] = {"hfc-register", "boot", "fetch-cert", "status",
                                        "reboot", "reset-cert"};

    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(verb, verbs[i]) == 0)
            return true;
    }
    return false;
}

int
cli_mta_prov(int argc, char **argv)
{
    if (strcmp(argv[0], "hfc-register") == 0)
        return mta_hfc_register(argc, argv);
    if (strcmp(argv[0], "boot") == 0)
        return mta_boot(argc, argv);
    if (strcmp(argv[0], "fetch-cert") == 0)
        return mta_fetch_cert(argc, argv);
    if (strcmp(argv[0], "status") == 0)
        return mta_status(argc, argv);
    if (strcmp(argv[0], "reboot") == 0)
        return mta_reboot(argc, argv);
    if (strcmp(argv[0], "reset-cert") == 0)
        return mta_reset_cert(argc, argv);
    return cli_unknown_verb("mta", argv[0]);
}
