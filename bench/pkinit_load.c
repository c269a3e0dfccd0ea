/* pkinit_load: our PKINIT client (lib/pkinit/client.c, ck_client_as_pkinit) as the load on a KDC,
 * P client processes with one exchange in flight each (pkinit_harness.h). It drives the shapes
 * MIT's client cannot (ECDH P-256/P-384: MIT 1.20 has none) and, for comparison, the others.
 *
 * One exchange = one ck_client_as_pkinit() call: by default an AS-REQ without PKINIT, the KDC's
 * KDC_ERR_PREAUTH_REQUIRED with a freshness token, then the PA-PK-AS-REQ (as kinit does, and as
 * krb5_pkinit_load measures MIT's client), i.e. two KDC requests; --preauth-first sends PKINIT in
 * the first request (one KDC request, no freshness token). The client verifies the KDC's
 * certificate chain and reply on every call, as it would for a real login; the credentials are
 * freed, never stored.
 *
 * Identities are loaded once per process before the clock starts: "FILE:cert.pem,key.pem" (or a
 * PKCS#12 with --password-file). --chain PEM adds intermediate CA certificates to every
 * identity's chain, so the request carries them as a PKCS#12 identity's would.
 *
 * --packetcable: the PacketCable draft form an MTA uses (one AS-REQ with PA-PK-AS-REQ-OLD, RSA
 * key transport; pkinit_client.h), for device certificates mapped through the KDC's device table
 * (give the device's principal with --client).
 *
 * Usage: pkinit_load --kdc 127.0.0.1:PORT --realm R [--client NAME] --anchors PEM
 *                    [--kx modp2048|modp3072|modp4096|p256|p384|rsa] [--chain PEM]
 *                    [--password-file F] [--preauth-first] [--tcp] [--packetcable]
 *                    <harness options> */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "cablekey/client.h"
#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_client.h"
#include "pkinit_harness.h"

struct pl_opts {
    struct pkh_opts h;
    const char *kdc, *realm, *client, *anchors, *chain, *password_file;
    ck_pkinit_kx kx;
    ck_pkinit_group group;
    bool preauth_first, tcp, packetcable;
};

static struct pl_opts g_opts;

struct pl_state {
    ck_pki_identity **ids;
    int n;
    ck_pkinit_anchors *anchors;
    const char *kdcs[1];
    ck_kdc_transport transport;
    ck_as_params as;
};

static void
pl_done(void *arg)
{
    struct pl_state *s = arg;

    for (int i = 0; i < s->n; i++)
        ck_pki_identity_free(s->ids[i]);
    free(s->ids);
    ck_pkinit_anchors_free(s->anchors);
    free(s);
}

/* Appends the certificates of --chain that an identity's chain lacks (a PEM identity file may
 * already hold them after the leaf). */
static int
add_chain(ck_pki_identity *id, STACK_OF(X509) *extra)
{
    for (int i = 0; i < sk_X509_num(extra); i++) {
        X509 *x = sk_X509_value(extra, i);
        bool have = X509_cmp(x, id->cert) == 0;

        for (int j = 0; j < sk_X509_num(id->chain) && !have; j++)
            have = X509_cmp(x, sk_X509_value(id->chain, j)) == 0;
        if (have)
            continue;
        if (!X509_up_ref(x))
            return -1;
        if (!sk_X509_push(id->chain, x)) {
            X509_free(x);
            return -1;
        }
    }
    return 0;
}

static int
pl_setup(const struct pkh_opts *o, int proc, void **out, char *err, size_t errlen)
{
    struct pl_state *s = calloc(1, sizeof(*s));
    STACK_OF(X509) *extra = NULL;
    char *password = NULL;
    int rc = -1, ret;

    (void)proc;
    *out = NULL;
    if (s == NULL || (s->ids = calloc((size_t)o->n_identities, sizeof(*s->ids))) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *out = s;
    if (g_opts.password_file != NULL &&
        (ret = ck_pki_password_read(g_opts.password_file, &password)) != 0) {
        snprintf(err, errlen, "%s: %s", g_opts.password_file, ck_error_context());
        goto out;
    }
    if (g_opts.chain != NULL && (ret = ck_pki_certs_load_pem(g_opts.chain, &extra)) != 0) {
        snprintf(err, errlen, "--chain %s: %s", g_opts.chain, ck_error_context());
        goto out;
    }
    for (int i = 0; i < o->n_identities; i++) {
        if ((ret = ck_pki_identity_load(o->identities[i], password, &s->ids[i])) != 0) {
            snprintf(err, errlen, "%s: %s", o->identities[i], ck_error_context());
            goto out;
        }
        s->n++;
        if (extra != NULL && add_chain(s->ids[i], extra) != 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    if ((ret = ck_pkinit_anchors_new(&s->anchors)) != 0 ||
        (ret = ck_pkinit_anchors_add_file(s->anchors, g_opts.anchors, 0, NULL)) != 0) {
        snprintf(err, errlen, "--anchors %s: %s", g_opts.anchors, ck_error_context());
        goto out;
    }
    s->kdcs[0] = g_opts.kdc;
    s->transport.kdcs = s->kdcs;
    s->transport.n_kdcs = 1;
    s->transport.tcp_only = g_opts.tcp;
    s->as.realm = g_opts.realm;
    s->as.client = g_opts.client;
    s->as.preauth_first = g_opts.preauth_first;
    s->as.transport = &s->transport;
    rc = 0;
out:
    sk_X509_pop_free(extra, X509_free);
    ck_pki_password_free(password);
    return rc;
}

static int
pl_one(void *arg, int idx, char *err, size_t errlen)
{
    struct pl_state *s = arg;
    ck_creds *creds = NULL;
    ck_pkinit_client_params p = {
        .as = &s->as,
        .identity = s->ids[idx],
        .anchors = s->anchors,
        .kx = g_opts.kx,
        .group = g_opts.group,
        .packetcable = g_opts.packetcable,
    };
    int ret = ck_client_as_pkinit(&p, &creds, NULL);

    ck_creds_free(creds);
    if (ret != 0) {
        snprintf(err, errlen, "ck_client_as_pkinit: %s", ck_error_context());
        return -1;
    }
    return 0;
}

static int
parse_kx(const char *name)
{
    static const struct {
        const char *name;
        ck_pkinit_kx kx;
        ck_pkinit_group group;
    } kxs[] = {
        {"modp2048", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_MODP2048},
        {"modp3072", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_MODP3072},
        {"modp4096", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_MODP4096},
        {"p256", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_P256},
        {"p384", CK_PKINIT_KX_DH, CK_PKINIT_GROUP_P384},
        {"rsa", CK_PKINIT_KX_RSA, CK_PKINIT_GROUP_NONE},
    };

    for (size_t i = 0; i < sizeof(kxs) / sizeof(kxs[0]); i++)
        if (strcmp(name, kxs[i].name) == 0) {
            g_opts.kx = kxs[i].kx;
            g_opts.group = kxs[i].group;
            return 0;
        }
    return -1;
}

static void
usage(void)
{
    fprintf(stderr, "usage: pkinit_load --kdc HOST:PORT --realm R [--client NAME] --anchors PEM\n"
                    "                   [--kx modp2048|modp3072|modp4096|p256|p384|rsa] "
                    "[--chain PEM]\n"
                    "                   [--password-file F] [--preauth-first] [--tcp] "
                    "[--packetcable]\n%s",
            PKH_USAGE);
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"kdc", required_argument, NULL, 'k'},
        {"realm", required_argument, NULL, 'r'},
        {"client", required_argument, NULL, 'c'},
        {"anchors", required_argument, NULL, 'a'},
        {"chain", required_argument, NULL, 'C'},
        {"password-file", required_argument, NULL, 'w'},
        {"kx", required_argument, NULL, 'x'},
        {"preauth-first", no_argument, NULL, 'F'},
        {"tcp", no_argument, NULL, 'T'},
        {"packetcable", no_argument, NULL, 'K'},
        PKH_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct pkh_client cl = {pl_setup, pl_one, pl_done};
    int c, r;

    pkh_defaults(&g_opts.h, "cablekey");
    g_opts.kx = CK_PKINIT_KX_DH;
    g_opts.group = CK_PKINIT_GROUP_MODP2048;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if ((r = pkh_common_opt(&g_opts.h, c, optarg)) == 1)
            continue;
        if (r < 0) {
            usage();
            return 2;
        }
        switch (c) {
        case 'k': g_opts.kdc = optarg; break;
        case 'r': g_opts.realm = optarg; break;
        case 'c': g_opts.client = optarg; break;
        case 'a': g_opts.anchors = optarg; break;
        case 'C': g_opts.chain = optarg; break;
        case 'w': g_opts.password_file = optarg; break;
        case 'F': g_opts.preauth_first = true; break;
        case 'T': g_opts.tcp = true; break;
        case 'K': g_opts.packetcable = true; break;
        case 'x':
            if (parse_kx(optarg) != 0) {
                usage();
                return 2;
            }
            break;
        default: usage(); return 2;
        }
    }
    if (g_opts.kdc == NULL || g_opts.realm == NULL || g_opts.anchors == NULL || optind != argc ||
        g_opts.h.n_identities == 0) {
        usage();
        return 2;
    }
    return pkh_run(&g_opts.h, &cl);
}
