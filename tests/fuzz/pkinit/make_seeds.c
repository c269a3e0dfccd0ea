/* Writes the PKINIT seeds of fuzz_kdc_request (tests/fuzz/corpus/kdc_request/pkinit-*.der) and
 * the trust anchors they chain to (tests/fuzz/pkinit/anchors.h, compiled into the fuzz target):
 * real PKINIT AS-REQs from the test client (tests/tools/pkinit_asreq.h) for realm TEST.REALM,
 * signed at SEED_NOW (the fuzz worker's fixed clock) by throwaway certificates whose keys are
 * not kept. The fuzz worker makes its own KDC identity at startup; only the anchors must match.
 * Not part of the build; from the top of the tree:
 *   cc -Iinclude -Itests/tools tests/fuzz/pkinit/make_seeds.c build/libcablekey.a \
 *      -lcrypto -lsqlite3 -lpthread -o /tmp/make_seeds && /tmp/make_seeds
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "cablekey/pki.h"
#include "pkinit_asreq.h"

#define SEED_NOW ((int64_t)1767225600) /* 2026-01-01T00:00:00Z, fuzz_kdc_request's clock */
#define YEAR ((int64_t)365 * 86400)
#define REALM "TEST.REALM"
#define MAC "00:11:22:33:44:55"
#define OUT "tests/fuzz/corpus/kdc_request"

static void
die(const char *what)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, ck_error_context());
    exit(1);
}

static EVP_PKEY *
key(ck_pki_key_type t)
{
    EVP_PKEY *k = NULL;

    if (ck_pki_key_generate(t, &k) != 0)
        die("keygen");
    return k;
}

static X509 *
cert(ck_pki_profile prof, const char *cn, const char *principal, EVP_PKEY *k, X509 *issuer,
     EVP_PKEY *ik)
{
    ck_pki_cert_spec s;
    X509 *x = NULL;

    memset(&s, 0, sizeof(s));
    s.profile = prof;
    s.org = "cablekey fuzz";
    s.common_name = cn;
    s.principal = principal;
    s.path_len = -1;
    s.not_before = SEED_NOW - 86400;
    s.not_after = SEED_NOW + 30 * YEAR;
    if (ck_pki_cert_issue(&s, k, issuer, ik, &x) != 0)
        die(cn);
    return x;
}

static ck_pki_identity *
ident(EVP_PKEY *k, X509 *c, X509 *ca)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    ck_pki_identity *id = NULL;

    sk_X509_push(chain, ca);
    if (ck_pki_identity_new(k, c, chain, &id) != 0)
        die("identity");
    sk_X509_free(chain);
    return id;
}

static void
seed(const char *name, struct pk_opts o)
{
    struct pk_state st;
    char path[256];
    FILE *f;

    o.realm = REALM;
    o.now = SEED_NOW;
    if (pk_build(&o, &st) != 0)
        die(name);
    snprintf(path, sizeof(path), OUT "/pkinit-%s.der", name);
    if ((f = fopen(path, "wb")) == NULL || fwrite(st.req, 1, st.req_len, f) != st.req_len)
        die(path);
    fclose(f);
    pk_state_free(&st);
}

static void
pem_literal(FILE *out, const char *name, X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    long n;

    if (b == NULL || !PEM_write_bio_X509(b, x))
        die("PEM");
    n = BIO_get_mem_data(b, &data);
    fprintf(out, "static const char %s[] =\n", name);
    for (long i = 0; i < n;) {
        long j = i;
        while (j < n && data[j] != '\n')
            j++;
        fprintf(out, "    \"%.*s\\n\"\n", (int)(j - i), data + i);
        i = j + 1;
    }
    fprintf(out, "    ;\n");
    BIO_free(b);
}

int
main(void)
{
    EVP_PKEY *k_root = key(CK_PKI_KEY_EC_P256), *k_ca = key(CK_PKI_KEY_EC_P256),
             *k_mroot = key(CK_PKI_KEY_EC_P256), *k_mca = key(CK_PKI_KEY_EC_P256),
             *k_alice = key(CK_PKI_KEY_RSA_2048), *k_alice_ec = key(CK_PKI_KEY_EC_P256),
             *k_dev = key(CK_PKI_KEY_RSA_2048);
    X509 *root = cert(CK_PKI_PROFILE_ROOT_CA, "Fuzz SP Root", NULL, k_root, NULL, k_root);
    X509 *ca = cert(CK_PKI_PROFILE_CA, "Fuzz SP CA", NULL, k_ca, root, k_root);
    X509 *mroot = cert(CK_PKI_PROFILE_ROOT_CA, "Fuzz MTA Root", NULL, k_mroot, NULL, k_mroot);
    X509 *mca = cert(CK_PKI_PROFILE_CA, "Fuzz MTA CA", NULL, k_mca, mroot, k_mroot);
    X509 *alice = cert(CK_PKI_PROFILE_CLIENT, "alice", "alice@" REALM, k_alice, ca, k_ca);
    X509 *alice_ec = cert(CK_PKI_PROFILE_CLIENT, "alice", "alice@" REALM, k_alice_ec, ca, k_ca);
    X509 *dev = cert(CK_PKI_PROFILE_DEVICE, MAC, NULL, k_dev, mca, k_mca);
    ck_pki_identity *id_alice = ident(k_alice, alice, ca), *id_ec = ident(k_alice_ec, alice_ec, ca),
                    *id_dev = ident(k_dev, dev, mca);
    struct pk_opts o;
    FILE *h;

    memset(&o, 0, sizeof(o));
    o.cname = "alice";
    o.id = id_alice;
    o.group = CK_PKINIT_GROUP_MODP2048;
    seed("rfc-dh", o);
    o.no_kdfs = true;
    seed("rfc-dh-octetstring2key", o);
    o.no_kdfs = false;
    o.checksum2 = true;
    seed("rfc-dh-checksum2", o);
    o.checksum2 = false;
    o.group = CK_PKINIT_GROUP_NONE;
    seed("rfc-rsa", o);
    o.id = id_ec;
    o.group = CK_PKINIT_GROUP_P256;
    seed("rfc-ecdh-p256", o);
    o.corrupt = PK_CORRUPT_SIGNATURE;
    seed("rfc-bad-signature", o);
    o.corrupt = PK_CORRUPT_NONE;
    o.cname = "mta1";
    o.id = id_dev;
    o.group = CK_PKINIT_GROUP_NONE;
    seed("device-rfc-rsa", o);
    o.form = PK_FORM_PKTC_IMPLICIT;
    o.prov_srv = "prov.test.realm";
    seed("packetcable-implicit", o);
    o.form = PK_FORM_PKTC_EXPLICIT;
    seed("packetcable-explicit", o);
    o.form = PK_FORM_DRAFT9;
    o.prov_srv = NULL;
    seed("packetcable-draft9", o);

    if ((h = fopen("tests/fuzz/pkinit/anchors.h", "w")) == NULL)
        die("anchors.h");
    fprintf(h, "/* Written by tests/fuzz/pkinit/make_seeds.c: the trust anchors of the PKINIT seeds "
               "in\n * tests/fuzz/corpus/kdc_request/pkinit-*.der. */\n");
    pem_literal(h, "fuzz_sp_root_pem", root);
    pem_literal(h, "fuzz_mta_root_pem", mroot);
    fclose(h);
    return 0;
}
