/* ck_client: drives the client library for the interop scripts (test-only program).
 *
 *   ck_client kinit  OPTIONS NAME           AS exchange (password on stdin or keytab)
 *   ck_client kvno   OPTIONS NAME SERVICE   AS, then TGS for SERVICE
 *   ck_client renew  OPTIONS NAME           renewable AS, then a renewal through the TGS
 *   ck_client safe-priv-selftest            KRB-SAFE/KRB-PRIV round trips for every enctype
 *   kvno --verify-keytab KT: also builds an AP-REQ with the service ticket, verifies it with the
 *   service's keytab and a replay cache, then checks that a replay (KRB_AP_ERR_REPEAT) and a
 *   modified authenticator (KRB_AP_ERR_MODIFIED) are refused.
 * OPTIONS: --kdc HOST:PORT (repeatable) --realm R (--password-stdin | --keytab FILE)
 *          [--enctype N]... [--tcp] [--ccache FILE] [--lifetime S] [--renewable S]
 *          [--forwardable] [--preauth-first] [--subkey] [--timeout MS] [--tries N]
 * Prints "OK: ..." lines and exits 0, or "ERROR: ..." and exits 1. Never prints keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/safepriv.h"
#include "cablekey/util.h"

#define MAX_KDCS 8

struct opts {
    const char *kdcs[MAX_KDCS];
    size_t n_kdcs;
    const char *realm;
    bool pw_stdin;
    const char *keytab;
    int32_t enctypes[CK_CLIENT_MAX_ETYPES];
    size_t n_enctypes;
    bool tcp;
    const char *ccache;
    const char *verify_keytab;
    int64_t lifetime;
    int64_t renewable;
    bool forwardable;
    bool preauth_first;
    bool subkey;
    int timeout_ms;
    int tries;
    const char *args[2];
    size_t n_args;
};

static int
fail(const char *what, int rc)
{
    int code = ck_error_krb_code();

    if (rc == CK_ERR_KRB)
        printf("ERROR: %s: %s (krb error %d)\n", what, ck_error_context(), code);
    else
        printf("ERROR: %s: %s: %s\n", what, ck_strerror(rc), ck_error_context());
    return 1;
}

static int
usage(void)
{
    fprintf(stderr, "usage: ck_client kinit|kvno|renew --kdc H:P --realm R "
                    "(--password-stdin|--keytab F) [options] NAME [SERVICE]\n"
                    "       ck_client safe-priv-selftest\n");
    return 2;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
    int64_t v;

    memset(o, 0, sizeof(*o));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool needs = true;

        if (strcmp(a, "--kdc") == 0 && val != NULL && o->n_kdcs < MAX_KDCS) {
            o->kdcs[o->n_kdcs++] = val;
        } else if (strcmp(a, "--realm") == 0 && val != NULL) {
            o->realm = val;
        } else if (strcmp(a, "--keytab") == 0 && val != NULL) {
            o->keytab = val;
        } else if (strcmp(a, "--verify-keytab") == 0 && val != NULL) {
            o->verify_keytab = val;
        } else if (strcmp(a, "--ccache") == 0 && val != NULL) {
            o->ccache = val;
        } else if (strcmp(a, "--enctype") == 0 && val != NULL &&
                   o->n_enctypes < CK_CLIENT_MAX_ETYPES) {
            int32_t e;
            if (ck_enctype_from_name(val, &e) != 0)
                return -1;
            o->enctypes[o->n_enctypes++] = e;
        } else if (strcmp(a, "--lifetime") == 0 && val != NULL) {
            if (ck_parse_int64(val, 1, 100000000, &o->lifetime) != 0)
                return -1;
        } else if (strcmp(a, "--renewable") == 0 && val != NULL) {
            if (ck_parse_int64(val, 1, 100000000, &o->renewable) != 0)
                return -1;
        } else if (strcmp(a, "--timeout") == 0 && val != NULL) {
            if (ck_parse_int64(val, 1, 600000, &v) != 0)
                return -1;
            o->timeout_ms = (int)v;
        } else if (strcmp(a, "--tries") == 0 && val != NULL) {
            if (ck_parse_int64(val, 1, CK_KDC_MAX_TRIES, &v) != 0)
                return -1;
            o->tries = (int)v;
        } else {
            needs = false;
            if (strcmp(a, "--password-stdin") == 0)
                o->pw_stdin = true;
            else if (strcmp(a, "--tcp") == 0)
                o->tcp = true;
            else if (strcmp(a, "--forwardable") == 0)
                o->forwardable = true;
            else if (strcmp(a, "--preauth-first") == 0)
                o->preauth_first = true;
            else if (strcmp(a, "--subkey") == 0)
                o->subkey = true;
            else if (a[0] == '-' || o->n_args >= 2)
                return -1;
            else
                o->args[o->n_args++] = a;
        }
        if (needs)
            i++;
    }
    if (o->n_kdcs == 0 || o->realm == NULL || (o->pw_stdin == (o->keytab != NULL)))
        return -1;
    return 0;
}

static void
print_creds(const char *what, const ck_creds *c)
{
    char *client = NULL, *server = NULL;

    if (ck_principal_unparse(c->client, 0, &client) != 0 ||
        ck_principal_unparse(c->server, 0, &server) != 0) {
        printf("OK: %s (name unprintable)\n", what);
    } else {
        printf("OK: %s: got ticket for %s, client %s, session etype %d, ticket etype %d, "
               "flags 0x%08x, starttime %lld, endtime %lld, renew_till %lld\n",
               what, server, client, (int)c->session_key.enctype, (int)c->ticket_etype,
               (unsigned)c->flags, (long long)c->starttime, (long long)c->endtime,
               (long long)c->renew_till);
    }
    free(client);
    free(server);
}

static int
read_password(char *buf, size_t size)
{
    size_t n;

    if (fgets(buf, (int)size, stdin) == NULL)
        return -1;
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return 0;
}

/* Expects ck_ap_req_verify to refuse der with krb_error want. */
static int
expect_ap_refusal(const char *what, const uint8_t *der, size_t len, ck_keytab *kt,
                  ck_rcache *rc, int32_t want)
{
    ck_ap_req_result res;
    int r = ck_ap_req_verify(der, len, ck_ap_keytab_key_fn, kt, NULL, rc, 300, CK_KU_AP_REQ_AUTH,
                             &res);
    int32_t got = res.krb_error;

    ck_ap_req_result_clear(&res);
    if (r == 0 || got != want) {
        printf("ERROR: %s: expected krb error %d, got rc %d krb error %d\n", what, (int)want, r,
               (int)got);
        return 1;
    }
    printf("OK: %s refused with krb error %d\n", what, (int)got);
    return 0;
}

/* AP-REQ with a real service ticket, verified against the service keytab exported from the KDC. */
static int
verify_ap_req(const ck_creds *svc, const char *keytab_path)
{
    ck_keytab *kt = NULL;
    ck_rcache *rc = NULL;
    CK_TICKET *ticket = NULL;
    CK_PRINCIPAL_NAME *cname = NULL;
    ck_ap_req_result res;
    uint8_t *der = NULL, *tampered = NULL;
    size_t der_len = 0;
    int r, ret = 1;

    memset(&res, 0, sizeof(res));
    if ((r = ck_keytab_read(keytab_path, &kt)) != 0 || (r = ck_rcache_new(1000, 600, &rc)) != 0 ||
        (r = ck_asn1_ticket_decode(svc->ticket, svc->ticket_len, &ticket)) != 0 ||
        (r = ck_asn1_principal_new(svc->client->name_type,
                                   (const char *const *)svc->client->components,
                                   svc->client->n_components, &cname)) != 0 ||
        (r = ck_ap_req_build(ticket, &svc->session_key, svc->client->realm, cname,
                             CK_AP_OPT_MUTUAL_REQUIRED, NULL, CK_KU_AP_REQ_AUTH, NULL, NULL, NULL,
                             NULL, &der, &der_len)) != 0) {
        ret = fail("AP-REQ setup", r);
        goto out;
    }
    r = ck_ap_req_verify(der, der_len, ck_ap_keytab_key_fn, kt, NULL, rc, 300, CK_KU_AP_REQ_AUTH,
                         &res);
    if (r != 0) {
        printf("ERROR: AP-REQ verify: krb error %d (%s)\n", (int)res.krb_error,
               ck_error_context());
        goto out;
    }
    printf("OK: AP-REQ verified with the service keytab (ticket etype %d, kvno %u)\n",
           (int)res.ticket_etype, res.ticket_kvno);
    if (expect_ap_refusal("replayed AP-REQ", der, der_len, kt, rc, CK_KRB_AP_ERR_REPEAT) != 0)
        goto out;
    /* Flip the last byte: it lies in the authenticator's ciphertext (the AP-REQ's last field). */
    if ((tampered = ck_memdup(der, der_len)) == NULL)
        goto out;
    tampered[der_len - 1] ^= 0x01;
    if (expect_ap_refusal("modified authenticator", tampered, der_len, kt, NULL,
                          CK_KRB_AP_ERR_MODIFIED) != 0)
        goto out;
    ret = 0;
out:
    ck_ap_req_result_clear(&res);
    free(tampered);
    ck_asn1_free_der(der, der_len);
    CK_PRINCIPAL_NAME_free(cname);
    CK_TICKET_free(ticket);
    ck_rcache_free(rc);
    ck_keytab_free(kt);
    return ret;
}

static int
cmd_krb(const char *cmd, int argc, char **argv)
{
    struct opts o;
    ck_kdc_transport t;
    ck_as_params ap;
    ck_keytab *kt = NULL;
    ck_creds *tgt = NULL, *svc = NULL;
    char pw[1024];
    int rc, ret = 1;
    bool kvno = strcmp(cmd, "kvno") == 0, renew = strcmp(cmd, "renew") == 0;

    memset(pw, 0, sizeof(pw));
    if (parse_opts(argc, argv, &o) != 0 || o.n_args != (kvno ? 2u : 1u))
        return usage();
    memset(&t, 0, sizeof(t));
    t.kdcs = o.kdcs;
    t.n_kdcs = o.n_kdcs;
    t.tcp_only = o.tcp;
    t.timeout_ms = o.timeout_ms > 0 ? o.timeout_ms : 1000;
    t.max_timeout_ms = 4000;
    t.max_tries = o.tries > 0 ? o.tries : 3;

    memset(&ap, 0, sizeof(ap));
    ap.realm = o.realm;
    ap.client = o.args[0];
    ap.enctypes = o.n_enctypes > 0 ? o.enctypes : NULL;
    ap.n_enctypes = o.n_enctypes;
    ap.lifetime = o.lifetime;
    ap.renew_life = renew && o.renewable == 0 ? 86400 : o.renewable;
    ap.kdc_options = o.forwardable ? CK_KDC_OPT_FORWARDABLE : 0;
    ap.preauth_first = o.preauth_first;
    ap.transport = &t;

    if (o.pw_stdin) {
        if (read_password(pw, sizeof(pw)) != 0) {
            printf("ERROR: no password on stdin\n");
            goto out;
        }
        rc = ck_client_as_password(&ap, pw, &tgt);
    } else {
        if ((rc = ck_keytab_read(o.keytab, &kt)) != 0) {
            ret = fail("keytab", rc);
            goto out;
        }
        rc = ck_client_as_keytab(&ap, kt, &tgt);
    }
    if (rc != 0) {
        ret = fail("AS exchange", rc);
        goto out;
    }
    print_creds("AS", tgt);
    if (kvno) {
        ck_tgs_params tp;
        memset(&tp, 0, sizeof(tp));
        tp.tgt = tgt;
        tp.service = o.args[1];
        tp.use_subkey = o.subkey;
        tp.kdc_options = o.forwardable ? CK_KDC_OPT_FORWARDABLE : 0;
        tp.enctypes = o.n_enctypes > 0 ? o.enctypes : NULL;
        tp.n_enctypes = o.n_enctypes;
        tp.transport = &t;
        if ((rc = ck_client_tgs(&tp, &svc)) != 0) {
            ret = fail("TGS exchange", rc);
            goto out;
        }
        print_creds("TGS", svc);
        if (o.verify_keytab != NULL && verify_ap_req(svc, o.verify_keytab) != 0)
            goto out;
    } else if (renew) {
        if ((rc = ck_client_renew(tgt, &t, &svc)) != 0) {
            ret = fail("renewal", rc);
            goto out;
        }
        print_creds("RENEW", svc);
    }
    if (o.ccache != NULL) {
        const ck_creds *list[2] = { tgt, svc };
        if ((rc = ck_ccache_write(o.ccache, list, svc != NULL ? 2 : 1)) != 0) {
            ret = fail("ccache", rc);
            goto out;
        }
        printf("OK: wrote ccache %s\n", o.ccache);
    }
    ret = 0;
out:
    ck_memzero(pw, sizeof(pw));
    ck_keytab_free(kt);
    ck_creds_free(tgt);
    ck_creds_free(svc);
    return ret;
}

static int
cmd_safe_priv_selftest(void)
{
    static const int32_t etypes[] = { 17, 18, 19, 20 };
    static const uint8_t msg[] = "cablekey safe/priv self test";
    ck_krb_address s, r;
    int fails = 0;

    if (ck_krb_address_directional(0, &s) != 0 || ck_krb_address_directional(1, &r) != 0)
        return fail("address", CK_ERR_INVAL);
    for (size_t i = 0; i < sizeof(etypes) / sizeof(etypes[0]); i++) {
        for (int priv = 0; priv < 2; priv++) {
            ck_key key;
            ck_krb_msg_params mp = { .use_timestamp = true, .use_seq = true, .seq = 7,
                                     .s_address = &s, .r_address = &r };
            ck_krb_msg_check chk = { .s_address = &s, .r_address = &r, .require_timestamp = true,
                                     .check_seq = true, .seq = 7 };
            uint8_t *der = NULL, *data = NULL;
            size_t der_len = 0, data_len = 0;
            int rc;

            if ((rc = ck_random_key(etypes[i], &key)) == 0)
                rc = priv ? ck_krb_priv_build(&key, msg, sizeof(msg), &mp, &der, &der_len)
                          : ck_krb_safe_build(&key, msg, sizeof(msg), &mp, &der, &der_len);
            if (rc == 0)
                rc = priv ? ck_krb_priv_read(&key, der, der_len, &chk, &data, &data_len, NULL)
                          : ck_krb_safe_read(&key, der, der_len, &chk, &data, &data_len, NULL);
            if (rc == 0 && (data_len != sizeof(msg) || memcmp(data, msg, data_len) != 0))
                rc = CK_ERR_INTEGRITY;
            if (rc != 0) {
                fails++;
                fail(priv ? "KRB-PRIV" : "KRB-SAFE", rc);
            } else {
                printf("OK: %s enctype %d round trip\n", priv ? "KRB-PRIV" : "KRB-SAFE",
                       (int)etypes[i]);
            }
            free(der);
            free(data);
            ck_key_clear(&key);
        }
    }
    return fails ? 1 : 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "kinit") == 0 || strcmp(argv[1], "kvno") == 0 ||
        strcmp(argv[1], "renew") == 0)
        return cmd_krb(argv[1], argc - 2, argv + 2);
    if (strcmp(argv[1], "safe-priv-selftest") == 0)
        return cmd_safe_priv_selftest();
    return usage();
}
