/* cablekey mta login: an endpoint (a phone adapter, or any PKINIT client) gets a TGT with its
 * certificate and writes it to an MIT FILE ccache (include/cablekey/pkinit_client.h). */
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ui.h>

#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/net.h"
#include "cablekey/pki.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_client.h"
#include "cablekey/pkinit_kdf.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "cli.h"

#define MAX_ANCHOR_FILES 16
#define CCACHE_PATH_MAX 4096

enum {
    OPT_IDENTITY = 256, OPT_PASSWORD_FILE, OPT_KDC, OPT_REALM, OPT_PRINCIPAL, OPT_ANCHORS,
    OPT_PACKETCABLE, OPT_PROV_SERVER, OPT_DH, OPT_CCACHE, OPT_KDC_HOSTNAME, OPT_LIFETIME,
    OPT_ENCTYPES, OPT_TCP, OPT_PREAUTH_FIRST, OPT_HELP,
};

static const struct option all_opts[] = {
    {"identity", required_argument, NULL, OPT_IDENTITY},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"kdc", required_argument, NULL, OPT_KDC},
    {"realm", required_argument, NULL, OPT_REALM},
    {"principal", required_argument, NULL, OPT_PRINCIPAL},
    {"anchors", required_argument, NULL, OPT_ANCHORS},
    {"packetcable", no_argument, NULL, OPT_PACKETCABLE},
    {"prov-server", required_argument, NULL, OPT_PROV_SERVER},
    {"dh", required_argument, NULL, OPT_DH},
    {"ccache", required_argument, NULL, OPT_CCACHE},
    {"kdc-hostname", required_argument, NULL, OPT_KDC_HOSTNAME},
    {"lifetime", required_argument, NULL, OPT_LIFETIME},
    {"enctypes", required_argument, NULL, OPT_ENCTYPES},
    {"tcp", no_argument, NULL, OPT_TCP},
    {"preauth-first", no_argument, NULL, OPT_PREAUTH_FIRST},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char mta_help[] =
    "usage: cablekey mta login --identity FILE.p12 [--password-file F] --kdc HOST[:PORT]\n"
    "           --realm REALM --anchors PEM[,PEM...] [--principal NAME] [--ccache FILE]\n"
    "           [--dh modp2048|modp3072|modp4096|p256|p384|rsa] [--packetcable]\n"
    "           [--prov-server NAME] [--kdc-hostname NAME] [--lifetime D] [--enctypes LIST]\n"
    "           [--tcp] [--preauth-first]\n"
    "\n"
    "Gets a TGT for the identity's certificate with PKINIT and writes it to an MIT ccache.\n"
    "  --identity      PKCS#12 file (or FILE:cert.pem,key.pem); --password-file holds its\n"
    "                  password (first line), otherwise a terminal prompts (no echo)\n"
    "  --kdc           the KDC (port 88 by default); repeat for more KDCs\n"
    "  --anchors       trust anchors for the KDC's certificate, which must carry\n"
    "                  id-pkinit-KPKdc and name krbtgt/REALM@REALM (or --kdc-hostname NAME)\n"
    "  --principal     default: the certificate's id-pkinit-san principal in REALM; required\n"
    "                  for device certificates, whose subject holds only the MAC address\n"
    "  --dh            key agreement: DH MODP group (default modp2048), ECDH curve, or rsa\n"
    "                  (RSA key transport)\n"
    "  --packetcable   the PacketCable pk-init draft form (PA 14/15, RSA-MD5 paChecksum,\n"
    "                  SHA-1 signature, RSA key transport); --prov-server adds\n"
    "                  PA-PROV-SRV-LOCATION\n"
    "  --ccache        default: $KRB5CCNAME (FILE: only), else /tmp/krb5cc_UID\n"
    "  --preauth-first send PKINIT in the first request (default: after the KDC asks)\n"
    "Prints one line on success; errors are one line with exit 1, usage errors exit 2.\n"
    "\n"
    "cablekey mta kmm --ccache FILE --cms ADDR:PORT --service PRINCIPAL ... keys IPsec with a\n"
    "CMS and sends protected signaling (see 'cablekey mta kmm --help').\n"
    "cablekey mta phone --ccache FILE --cms ADDR[:PORT] --media ADDR:PORT --direct-port N ...\n"
    "places or answers calls with per-call keys and encrypted audio (see\n"
    "'cablekey mta phone --help').\n"
    "cablekey mta router-auth --ccache FILE --router ADDR:PORT --send N ... keys AH with a\n"
    "router and sends AH-protected datagrams (see 'cablekey mta router-auth --help').\n"
    "cablekey mta hfc-register|boot|fetch-cert|status|reboot|reset-cert --device DIR ... the\n"
    "provisioning life of a device directory, seed 002 FIG. 5A/5B (see 'cablekey mta boot\n"
    "--help').\n";

struct mopts {
    const char *identity, *password_file, *realm, *principal, *ccache, *prov_server;
    const char *kdc_hostname;
    const char *kdcs[CK_KDC_MAX_KDCS];
    size_t n_kdcs;
    const char *anchors[MAX_ANCHOR_FILES];
    size_t n_anchors;
    char anchor_buf[MAX_ANCHOR_FILES][CCACHE_PATH_MAX];
    bool packetcable, tcp, preauth_first, has_dh;
    ck_pkinit_kx kx;
    ck_pkinit_group group;
    int64_t lifetime;
    int32_t enctypes[CK_CLIENT_MAX_ETYPES];
    size_t n_enctypes;
};

int
cli_mta_add_kdc(const char *what, const char *addr, const char **kdcs, size_t *n_kdcs)
{
    if (*n_kdcs >= CK_KDC_MAX_KDCS)
        return cli_usage_error(what, "more than %d --kdc", CK_KDC_MAX_KDCS);
    if (*addr == '\0')
        return cli_usage_error(what, "--kdc: empty address");
    kdcs[(*n_kdcs)++] = addr;
    return CLI_OK;
}

/* --cms of the mta verbs: "a:1293,[::1]:1293" into resolved addresses (one each; the same family for all, since the
 * endpoint has one socket). */
int
cli_mta_parse_cms(const char *what, const char *list, uint16_t sig_port,
                  struct ck_endpoint_cms *out, size_t *n)
{
    const char *p = list;
    char spec[300], host[256];

    *n = 0;
    while (*p != '\0') {
        size_t l = strcspn(p, ",");
        struct addrinfo hints, *res = NULL;
        char port_s[8];
        uint16_t port;
        int gai;

        if (l == 0 || l >= sizeof(spec))
            return cli_usage_error(what, "--cms: bad address list '%s'", list);
        if (*n >= CK_ENDPOINT_MAX_CMS)
            return cli_usage_error(what, "--cms: more than %d addresses", CK_ENDPOINT_MAX_CMS);
        memcpy(spec, p, l);
        spec[l] = '\0';
        if (ck_net_parse_listen(spec, CK_KMM_PORT, host, sizeof(host), &port) != 0 ||
            host[0] == '\0' || port == 0)
            return cli_usage_error(what, "--cms: bad address '%s'", spec);
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_DGRAM;
        hints.ai_flags = AI_NUMERICSERV;
        snprintf(port_s, sizeof(port_s), "%u", port);
        if ((gai = getaddrinfo(host, port_s, &hints, &res)) != 0 || res == NULL)
            return cli_usage_error(what, "--cms: cannot resolve '%s': %s", host,
                                   gai_strerror(gai));
        memset(&out[*n], 0, sizeof(out[*n]));
        memcpy(&out[*n].kmm, res->ai_addr, res->ai_addrlen);
        out[*n].kmm_len = res->ai_addrlen;
        out[*n].sig_port = sig_port;
        freeaddrinfo(res);
        if (*n > 0 && out[*n].kmm.ss_family != out[0].kmm.ss_family)
            return cli_usage_error(what, "--cms: IPv4 and IPv6 addresses cannot be mixed");
        (*n)++;
        p += l + (p[l] == ',');
    }
    if (*n == 0)
        return cli_usage_error(what, "--cms: no address");
    return CLI_OK;
}

void
cli_mta_hostname(char *host, size_t size)
{
    if (gethostname(host, size) != 0 || host[0] == '\0' || strpbrk(host, " \t\r\n") != NULL)
        ck_strlcpy(host, "localhost", size);
    host[size - 1] = '\0';
}

int
cli_mta_bind_any(int fd, int family)
{
    struct sockaddr_storage any;

    memset(&any, 0, sizeof(any));
    any.ss_family = (sa_family_t)family;
    return bind(fd, (struct sockaddr *)&any,
                family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}

static int
parse_dh(const char *s, struct mopts *o)
{
    static const struct {
        const char *name;
        ck_pkinit_kx kx;
        ck_pkinit_group group;
    } names[] = {
        {"modp2048", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_MODP2048},
        {"modp3072", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_MODP3072},
        {"modp4096", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_MODP4096},
        {"p256", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_P256},
        {"P-256", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_P256},
        {"p384", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_P384},
        {"P-384", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_P384},
        {"rsa", CK_PKINIT_KX_RSA, CK_PKINIT_GROUP_NONE},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            o->kx = names[i].kx;
            o->group = names[i].group;
            o->has_dh = true;
            return 0;
        }
    }
    return -1;
}

/* --anchors A,B and repeated --anchors both add files. */
static int
add_anchors(const char *what, const char *arg, struct mopts *o)
{
    const char *p = arg;

    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n == 0 || n >= CCACHE_PATH_MAX)
            return cli_usage_error(what, "--anchors: bad file list '%s'", arg);
        if (o->n_anchors >= MAX_ANCHOR_FILES)
            return cli_usage_error(what, "--anchors: more than %d files", MAX_ANCHOR_FILES);
        memcpy(o->anchor_buf[o->n_anchors], p, n);
        o->anchor_buf[o->n_anchors][n] = '\0';
        o->anchors[o->n_anchors] = o->anchor_buf[o->n_anchors];
        o->n_anchors++;
        p += n;
        if (*p == ',')
            p++;
    }
    return CLI_OK;
}

static int
parse_opts(const char *what, int argc, char **argv, struct mopts *o)
{
    int c, rc;

    memset(o, 0, sizeof(*o));
    o->kx = CK_PKINIT_KX_DH;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", all_opts, NULL)) != -1) {
        switch (c) {
        case OPT_IDENTITY: o->identity = optarg; break;
        case OPT_PASSWORD_FILE: o->password_file = optarg; break;
        case OPT_REALM: o->realm = optarg; break;
        case OPT_PRINCIPAL: o->principal = optarg; break;
        case OPT_CCACHE: o->ccache = optarg; break;
        case OPT_PROV_SERVER: o->prov_server = optarg; break;
        case OPT_KDC_HOSTNAME: o->kdc_hostname = optarg; break;
        case OPT_PACKETCABLE: o->packetcable = true; break;
        case OPT_TCP: o->tcp = true; break;
        case OPT_PREAUTH_FIRST: o->preauth_first = true; break;
        case OPT_KDC:
            if ((rc = cli_mta_add_kdc(what, optarg, o->kdcs, &o->n_kdcs)) != CLI_OK)
                return rc;
            break;
        case OPT_ANCHORS:
            if ((rc = add_anchors(what, optarg, o)) != CLI_OK)
                return rc;
            break;
        case OPT_DH:
            if (parse_dh(optarg, o) != 0)
                return cli_usage_error(what, "--dh: unknown '%s' (modp2048, modp3072, modp4096, "
                                             "p256, p384 or rsa)", optarg);
            break;
        case OPT_LIFETIME:
            if (cli_parse_duration(optarg, &o->lifetime) != 0 || o->lifetime == 0)
                return cli_usage_error(what, "--lifetime: %s", ck_error_context());
            break;
        case OPT_ENCTYPES:
            if (cli_parse_enctypes(optarg, o->enctypes, CK_CLIENT_MAX_ETYPES, &o->n_enctypes))
                return cli_usage_error(what, "--enctypes: %s", ck_error_context());
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, mta_help);
        }
    }
    if (optind != argc)
        return cli_no_more_args(what, argv[optind]);
    if (o->identity == NULL)
        return cli_usage_error(what, "--identity FILE is required");
    if (o->n_kdcs == 0)
        return cli_usage_error(what, "--kdc HOST[:PORT] is required");
    if (o->realm == NULL || *o->realm == '\0')
        return cli_usage_error(what, "--realm REALM is required");
    if (o->n_anchors == 0)
        return cli_usage_error(what, "--anchors PEM is required (the KDC's certificate must be "
                                     "verified)");
    if (o->packetcable) {
        if (o->has_dh && o->kx != CK_PKINIT_KX_RSA)
            return cli_usage_error(what, "--packetcable uses RSA key transport only (--dh rsa)");
        o->kx = CK_PKINIT_KX_RSA;
    } else if (o->prov_server != NULL) {
        return cli_usage_error(what, "--prov-server needs --packetcable");
    }
    return CLI_OK;
}

/* The identity's password: --password-file, else a no-echo prompt on a terminal, else none (a
 * PEM identity with an unencrypted key needs none; a PKCS#12 then fails with a clear error). */
static int
get_password(const char *what, const struct mopts *o, char **out)
{
    char buf[CK_PKI_PASSWORD_MAX + 1];
    int ret;

    *out = NULL;
    if (o->password_file != NULL) {
        if ((ret = ck_pki_password_read(o->password_file, out)) != 0)
            return cli_fail(what, ret);
        return CLI_OK;
    }
    if (!isatty(STDIN_FILENO))
        return CLI_OK;
    if (EVP_read_pw_string_min(buf, 0, sizeof(buf), "Identity password: ", 0) != 0) {
        ck_memzero(buf, sizeof(buf));
        ERR_clear_error();
        return cli_fail(what, ck_error_set(CK_ERR_INVAL, "no password entered"));
    }
    if (buf[0] != '\0' && (*out = ck_memdup(buf, strlen(buf) + 1)) == NULL) {
        ck_memzero(buf, sizeof(buf));
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "password"));
    }
    ck_memzero(buf, sizeof(buf));
    return CLI_OK;
}

/* --ccache, else $KRB5CCNAME (FILE: or a path), else MIT's default /tmp/krb5cc_UID. */
static int
ccache_path(const char *what, const struct mopts *o, char *buf, size_t size)
{
    const char *env = getenv("KRB5CCNAME");
    const char *path;

    if (o->ccache != NULL) {
        path = strncmp(o->ccache, "FILE:", 5) == 0 ? o->ccache + 5 : o->ccache;
    } else if (env != NULL && *env != '\0') {
        if (strncmp(env, "FILE:", 5) == 0)
            path = env + 5;
        else if (strchr(env, ':') == NULL || env[0] == '/')
            path = env;
        else
            return cli_usage_error(what, "KRB5CCNAME names a non-FILE ccache; give --ccache FILE");
    } else {
        snprintf(buf, size, "/tmp/krb5cc_%lu", (unsigned long)getuid());
        return CLI_OK;
    }
    if (*path == '\0' || ck_strlcpy(buf, path, size) >= size)
        return cli_usage_error(what, "bad ccache path");
    return CLI_OK;
}

static int
mta_login(int argc, char **argv)
{
    const char *what = "mta login";
    struct mopts o;
    ck_pki_identity *id = NULL;
    ck_pkinit_anchors *anchors = NULL;
    ck_creds *creds = NULL;
    ck_pkinit_client_info info;
    ck_kdc_transport t;
    ck_as_params as;
    ck_pkinit_client_params p;
    char *password = NULL, *client = NULL, *server = NULL;
    char ccache[CCACHE_PATH_MAX], until[64], detail[64] = "";
    const char *kdf;
    int rc, ret;

    if ((rc = parse_opts(what, argc, argv, &o)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if ((rc = ccache_path(what, &o, ccache, sizeof(ccache))) != CLI_OK)
        return rc;
    if ((rc = get_password(what, &o, &password)) != CLI_OK)
        return rc;
    if ((ret = ck_pki_identity_load(o.identity, password, &id)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    if ((ret = ck_pkinit_anchors_new(&anchors)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    for (size_t i = 0; i < o.n_anchors; i++) {
        /* PacketCable chains may use RSA-1024 and SHA-1 (PacketCable 1.x); only then. */
        ret = ck_pkinit_anchors_add_file(anchors, o.anchors[i],
                                         o.packetcable ? CK_PKINIT_ANCHOR_PACKETCABLE : 0, NULL);
        if (ret != 0 && ret != CK_ERR_EXISTS) {
            rc = cli_fail(what, ck_error_set(ret, "--anchors %s: %s", o.anchors[i],
                                             ck_error_context()));
            goto out;
        }
    }

    t = (ck_kdc_transport){.kdcs = o.kdcs, .n_kdcs = o.n_kdcs, .tcp_only = o.tcp};
    as = (ck_as_params){
        .realm = o.realm,
        .client = o.principal,
        .enctypes = o.n_enctypes > 0 ? o.enctypes : NULL,
        .n_enctypes = o.n_enctypes,
        .lifetime = o.lifetime,
        .preauth_first = o.preauth_first,
        .transport = &t,
    };
    p = (ck_pkinit_client_params){
        .as = &as,
        .identity = id,
        .anchors = anchors,
        .kx = o.kx,
        .group = o.group,
        .packetcable = o.packetcable,
        .prov_server = o.prov_server,
        .kdc_hostname = o.kdc_hostname,
    };
    if ((ret = ck_client_as_pkinit(&p, &creds, &info)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    if ((ret = ck_ccache_write(ccache, (const ck_creds *const *)&creds, 1)) != 0) {
        rc = cli_fail(what, ck_error_set(ret, "ccache %s: %s", ccache, ck_error_context()));
        goto out;
    }
    if ((ret = ck_principal_unparse(creds->client, 0, &client)) != 0 ||
        (ret = ck_principal_unparse(creds->server, 0, &server)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    cli_format_time(creds->endtime, until, sizeof(until));
    kdf = info.kdf == CK_PKINIT_KDF_SHA256   ? "KDF sha256"
          : info.kdf == CK_PKINIT_KDF_SHA1   ? "KDF sha1"
          : info.kdf == CK_PKINIT_KDF_SHA512 ? "KDF sha512"
          : info.kx == CK_PKINIT_KX_DH       ? "octetstring2key"
                                             : NULL;
    if (kdf != NULL)
        snprintf(detail, sizeof(detail), " (%s%s)", kdf,
                 info.group_retry ? ", group chosen by the KDC" : "");
    /* Names come from our own request (checked against the reply), never raw KDC bytes. */
    printf("%s: %s until %s, reply key %s, PKINIT %s%s, ccache %s\n", client, server, until,
           ck_enctype_name(info.reply_enctype), ck_pkinit_client_mode_name(&info), detail,
           ccache);
    rc = CLI_OK;
out:
    free(client);
    free(server);
    ck_creds_free(creds);
    ck_pkinit_anchors_free(anchors);
    ck_pki_identity_free(id);
    ck_pki_password_free(password);
    return rc;
}

int
cli_mta(int argc, char **argv)
{
    if (argc < 2) {
        fputs(mta_help, stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(mta_help, stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "login") == 0)
        return mta_login(argc - 1, argv + 1);
    if (strcmp(argv[1], "kmm") == 0)
        return cli_mta_kmm(argc - 1, argv + 1);
    if (strcmp(argv[1], "phone") == 0)
        return cli_mta_phone(argc - 1, argv + 1);
    if (strcmp(argv[1], "router-auth") == 0)
        return cli_mta_router_auth(argc - 1, argv + 1);
    if (cli_mta_prov_verb(argv[1]))
        return cli_mta_prov(argc - 1, argv + 1);
    return cli_unknown_verb("mta", argv[1]);
}
