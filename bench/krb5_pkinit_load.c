/* krb5_pkinit_load: MIT's libkrb5 PKINIT client as the load on a KDC (ours or MIT's), P client
 * processes with one exchange in flight each (pkinit_harness.h).
 *
 * One exchange = one krb5_get_init_creds_password() call with the PKINIT options kinit -X sets
 * (krb5_get_init_creds_opt_set_pa): X509_user_identity (FILE:cert.pem,key.pem with an unencrypted
 * key, or PKCS12:file.p12 with --identity-password-file), X509_anchors and, with --rsa,
 * flag_RSA_PROTOCOL=yes. As kinit does, the client first sends an AS-REQ without padata, gets
 * KDC_ERR_PREAUTH_REQUIRED (with a freshness token), then the PA-PK-AS-REQ (over TCP: it is
 * larger than udp_preference_limit): two KDC requests per exchange, both in the KDC's CPU.
 * No prompter and no password: the principal's key is random, so an exchange succeeds only by
 * PKINIT, never by falling back to encrypted timestamp. The reply's credentials are freed, never
 * stored.
 *
 * The client spends much more CPU on PKINIT than the KDC (it loads its identity, builds and
 * verifies its own chain and the KDC's on every call): what is measured is the KDC's CPU, and the
 * client's is reported beside it.
 *
 * Usage: krb5_pkinit_load --kdc 127.0.0.1:PORT --realm R --client NAME@R --anchors FILE:ROOT.pem
 *                         [--pool FILE:CA.pem] [--rsa] [--identity-password-file F]
 *                         <harness options>
 *
 * Links only libkrb5 (never libcablekey): it measures other people's client code. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <krb5.h>

#include "pkinit_harness.h"

struct kp_opts {
    struct pkh_opts h;
    const char *kdc, *realm, *client, *anchors, *pool;
    char id_password[256];
    int have_password;
    int rsa;
};

static struct kp_opts g_opts;

/* One krb5 context per identity: MIT's PKINIT module keeps X509_user_identity in its
 * per-context data (a second set_pa on the same context is refused), so a client that cycles
 * through identities needs a context for each. */
struct kp_ident {
    krb5_context ctx;
    krb5_principal client;
    krb5_get_init_creds_opt *gopt;
};

struct kp_state {
    struct kp_ident *id;
    int n;
};

static void
kerr(krb5_context ctx, const char *what, krb5_error_code code, char *buf, size_t size)
{
    const char *m = krb5_get_error_message(ctx, code);

    snprintf(buf, size, "%s: %s", what, m);
    krb5_free_error_message(ctx, m);
}

static void
kp_done(void *arg)
{
    struct kp_state *s = arg;

    for (int i = 0; i < s->n; i++) {
        krb5_get_init_creds_opt_free(s->id[i].ctx, s->id[i].gopt);
        krb5_free_principal(s->id[i].ctx, s->id[i].client);
        krb5_free_context(s->id[i].ctx);
    }
    free(s->id);
    free(s);
}

/* The identity's PKCS#12 password, if any, goes through the prompter as kinit's would. */
static krb5_error_code
kp_prompter(krb5_context ctx, void *data, const char *name, const char *banner, int num_prompts,
            krb5_prompt prompts[])
{
    (void)ctx;
    (void)data;
    (void)name;
    (void)banner;
    for (int i = 0; i < num_prompts; i++) {
        size_t len = strlen(g_opts.id_password);

        if (!g_opts.have_password || len >= prompts[i].reply->length)
            return KRB5_LIBOS_CANTREADPWD;
        memcpy(prompts[i].reply->data, g_opts.id_password, len);
        prompts[i].reply->length = (unsigned int)len;
    }
    return 0;
}

static int
kp_setup(const struct pkh_opts *o, int proc, void **out, char *err, size_t errlen)
{
    struct kp_state *s = calloc(1, sizeof(*s));
    krb5_error_code code;

    (void)proc;
    *out = NULL;
    if (s == NULL || (s->id = calloc((size_t)o->n_identities, sizeof(*s->id))) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *out = s;
    for (int i = 0; i < o->n_identities; i++) {
        struct kp_ident *k = &s->id[i];

        if ((code = krb5_init_context(&k->ctx)) != 0) {
            snprintf(err, errlen, "krb5_init_context: %d", (int)code);
            return -1;
        }
        s->n++;
        if ((code = krb5_parse_name(k->ctx, g_opts.client, &k->client)) != 0) {
            kerr(k->ctx, "client name", code, err, errlen);
            return -1;
        }
        if ((code = krb5_get_init_creds_opt_alloc(k->ctx, &k->gopt)) != 0) {
            kerr(k->ctx, "krb5_get_init_creds_opt_alloc", code, err, errlen);
            return -1;
        }
        if ((code = krb5_get_init_creds_opt_set_pa(k->ctx, k->gopt, "X509_user_identity",
                                                   o->identities[i])) != 0 ||
            (code = krb5_get_init_creds_opt_set_pa(k->ctx, k->gopt, "X509_anchors",
                                                   g_opts.anchors)) != 0 ||
            (g_opts.rsa && (code = krb5_get_init_creds_opt_set_pa(k->ctx, k->gopt,
                                                                  "flag_RSA_PROTOCOL", "yes")) != 0)) {
            kerr(k->ctx, "krb5_get_init_creds_opt_set_pa", code, err, errlen);
            return -1;
        }
    }
    return 0;
}

static int
kp_one(void *arg, int idx, char *err, size_t errlen)
{
    struct kp_ident *k = &((struct kp_state *)arg)->id[idx];
    krb5_creds creds;
    krb5_error_code code;

    memset(&creds, 0, sizeof(creds));
    code = krb5_get_init_creds_password(k->ctx, &creds, k->client, NULL, kp_prompter, NULL, 0,
                                        NULL, k->gopt);
    krb5_free_cred_contents(k->ctx, &creds);
    if (code != 0) {
        kerr(k->ctx, "krb5_get_init_creds_password", code, err, errlen);
        return -1;
    }
    return 0;
}

/* The first line of a password file (a benchmark's throwaway PKCS#12 password). */
static int
read_password(const char *path)
{
    FILE *f = fopen(path, "r");

    if (f == NULL || fgets(g_opts.id_password, sizeof(g_opts.id_password), f) == NULL) {
        fprintf(stderr, "krb5_pkinit_load: cannot read %s\n", path);
        if (f != NULL)
            fclose(f);
        return -1;
    }
    fclose(f);
    g_opts.id_password[strcspn(g_opts.id_password, "\r\n")] = '\0';
    g_opts.have_password = 1;
    return 0;
}

/* The run's krb5.conf: only this KDC, nothing from DNS; the pool's intermediates so that the
 * client can send its chain (MIT ignores the chain of a PKCS#12 and needs pkinit_pool). */
static int
write_krb5_conf(char *path, size_t size)
{
    FILE *f;
    int fd;

    snprintf(path, size, "/tmp/krb5_pkinit_load-XXXXXX");
    if ((fd = mkstemp(path)) < 0 || (f = fdopen(fd, "w")) == NULL) {
        perror("krb5_pkinit_load: krb5.conf");
        return -1;
    }
    fprintf(f,
            "[libdefaults]\n"
            "    default_realm = %s\n"
            "    dns_lookup_kdc = false\n"
            "    dns_lookup_realm = false\n"
            "    dns_canonicalize_hostname = false\n"
            "    rdns = false\n"
            "[realms]\n"
            "    %s = {\n"
            "        kdc = %s\n"
            "        pkinit_anchors = %s\n",
            g_opts.realm, g_opts.realm, g_opts.kdc, g_opts.anchors);
    if (g_opts.pool != NULL)
        fprintf(f, "        pkinit_pool = %s\n", g_opts.pool);
    fprintf(f, "    }\n");
    return fclose(f) == 0 ? 0 : -1;
}

static void
usage(void)
{
    fprintf(stderr, "usage: krb5_pkinit_load --kdc HOST:PORT --realm R --client NAME@R "
                    "--anchors FILE:PEM\n"
                    "                        [--pool FILE:PEM] [--rsa] [--identity-password-file F]\n"
                    "%s",
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
        {"pool", required_argument, NULL, 'p'},
        {"identity-password-file", required_argument, NULL, 'w'},
        {"rsa", no_argument, NULL, 'R'},
        PKH_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct pkh_client cl = {kp_setup, kp_one, kp_done};
    char conf[64];
    int c, r, status;

    pkh_defaults(&g_opts.h, "libkrb5");
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
        case 'p': g_opts.pool = optarg; break;
        case 'w':
            if (read_password(optarg) != 0)
                return 1;
            break;
        case 'R': g_opts.rsa = 1; break;
        default: usage(); return 2;
        }
    }
    if (g_opts.kdc == NULL || g_opts.realm == NULL || g_opts.client == NULL ||
        g_opts.anchors == NULL || optind != argc || g_opts.h.n_identities == 0) {
        usage();
        return 2;
    }
    if (write_krb5_conf(conf, sizeof(conf)) != 0)
        return 1;
    setenv("KRB5_CONFIG", conf, 1);
    setenv("KRB5CCNAME", "MEMORY:krb5_pkinit_load", 1);
    unsetenv("KRB5_TRACE");
    status = pkh_run(&g_opts.h, &cl);
    unlink(conf);
    return status;
}
