/* Micro-benchmark of the PKINIT crypto building blocks (lib/pkinit): the per-operation floor the
 * KDC's PKINIT exchange is built on. Makes a throwaway PKI in-process (RSA-2048 root, CA, client
 * and KDC certificates; ECDSA P-256 client and KDC), then times, in µs per operation:
 *   - raw OpenSSL: RSA-2048 and ECDSA P-256 sign/verify (compare `openssl speed rsa2048
 *     ecdsap256 ffdh2048 ecdhp256`), the full DH peer check MIT pays (EVP_PKEY_public_check);
 *   - lib/pkinit: DH/ECDH keygen, peer parse, KDC exchange, client derive; CMS sign/verify in
 *     both forms; envelope/decrypt; chain verification with and without a CRL; thumbprint and
 *     cache lookup;
 *   - the KDC's crypto for one exchange, composed from the above: RSA+DH (MODP 2048), RSA key
 *     transport, ECDSA+ECDH (P-256), with a thumbprint-cache hit (repeat login) and a miss.
 * Each operation runs for about ms-per-op milliseconds of CPU (default 400). Single-threaded;
 * times are this thread's CPU time.
 * Usage: bench_pkinit_crypto [ms-per-op] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/pkinit.h"
#include "cablekey/util.h"

/* CPU time of this thread: what the KDC pays, and less disturbed than wall time by the other
 * tenants of a shared machine. */
static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void
die(const char *what)
{
    fprintf(stderr, "bench_pkinit_crypto: %s: %s\n", what, ck_error_context());
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* ---- A throwaway PKI ---- */

static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
          const char *eku)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    if (x == NULL || !X509_set_version(x, 2) ||
        !ASN1_INTEGER_set(X509_get_serialNumber(x), serial++) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365) || !X509_set_pubkey(x, key) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_issuer_name(x, X509_get_subject_name(issuer != NULL ? issuer : x)))
        die("certificate");
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                              ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (ext == NULL || !X509_add_ext(x, ext, -1))
        die("certificate extension");
    X509_EXTENSION_free(ext);
    if (eku != NULL) {
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, eku);
        if (ext == NULL || !X509_add_ext(x, ext, -1))
            die("certificate extension");
        X509_EXTENSION_free(ext);
    }
    if (!X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()))
        die("certificate signature");
    return x;
}

static struct {
    EVP_PKEY *root_key, *ca_key, *client_key, *kdc_key, *ec_client_key, *ec_kdc_key;
    X509 *root, *ca, *client, *kdc, *ec_client, *ec_kdc;
    STACK_OF(X509) *chain;
    ck_pkinit_anchors *anchors, *anchors_crl;
    ck_pki_identity client_id, kdc_id, ec_client_id, ec_kdc_id;
} P;

static void
pki_build(void)
{
    STACK_OF(X509) *roots = sk_X509_new_null();
    STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
    X509_CRL *crl = X509_CRL_new();

    P.root_key = EVP_RSA_gen(2048);
    P.ca_key = EVP_RSA_gen(2048);
    P.client_key = EVP_RSA_gen(2048);
    P.kdc_key = EVP_RSA_gen(2048);
    P.ec_client_key = EVP_EC_gen("P-256");
    P.ec_kdc_key = EVP_EC_gen("P-256");
    if (!P.root_key || !P.ca_key || !P.client_key || !P.kdc_key || !P.ec_client_key ||
        !P.ec_kdc_key)
        die("keygen");
    P.root = make_cert("root", P.root_key, NULL, NULL, true, NULL);
    P.ca = make_cert("ca", P.ca_key, P.root, P.root_key, true, NULL);
    P.client = make_cert("client", P.client_key, P.ca, P.ca_key, false, "1.3.6.1.5.2.3.4");
    P.kdc = make_cert("kdc", P.kdc_key, P.ca, P.ca_key, false, "1.3.6.1.5.2.3.5");
    P.ec_client = make_cert("ec client", P.ec_client_key, P.ca, P.ca_key, false,
                            "1.3.6.1.5.2.3.4");
    P.ec_kdc = make_cert("ec kdc", P.ec_kdc_key, P.ca, P.ca_key, false, "1.3.6.1.5.2.3.5");
    P.chain = sk_X509_new_null();
    if (P.chain == NULL || !sk_X509_push(P.chain, P.ca) || roots == NULL ||
        !sk_X509_push(roots, P.root))
        die("chain");
    P.client_id = (ck_pki_identity){P.client_key, P.client, P.chain};
    P.kdc_id = (ck_pki_identity){P.kdc_key, P.kdc, P.chain};
    P.ec_client_id = (ck_pki_identity){P.ec_client_key, P.ec_client, P.chain};
    P.ec_kdc_id = (ck_pki_identity){P.ec_kdc_key, P.ec_kdc, P.chain};
    if (ck_pkinit_anchors_new(&P.anchors) != 0 || ck_pkinit_anchors_add(P.anchors, roots, 0, NULL))
        die("anchors");
    /* An empty CRL of the CA (the CRL pass covers the leaf; the CA is tolerated without one). */
    ASN1_TIME *last = ASN1_TIME_adj(NULL, time(NULL), 0, -3600),
              *next = ASN1_TIME_adj(NULL, time(NULL), 1, 0);
    if (crl == NULL || last == NULL || next == NULL || !X509_CRL_set_version(crl, 1) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(P.ca)) ||
        !X509_CRL_set1_lastUpdate(crl, last) || !X509_CRL_set1_nextUpdate(crl, next) ||
        !X509_CRL_sign(crl, P.ca_key, EVP_sha256()) || crls == NULL || !sk_X509_CRL_push(crls, crl))
        die("CRL");
    ASN1_TIME_free(last);
    ASN1_TIME_free(next);
    if (ck_pkinit_anchors_new(&P.anchors_crl) != 0 ||
        ck_pkinit_anchors_add(P.anchors_crl, roots, 0, crls) != 0)
        die("anchors with CRL");
    sk_X509_free(roots);
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
}

/* ---- Timing ---- */

typedef void (*op_fn)(void *ctx);
static double run_ms = 400;

static double
time_op(op_fn fn, void *ctx)
{
    double t0, elapsed;
    long n = 0, batch = 1;

    fn(ctx); /* warm-up: fetches, per-thread caches */
    t0 = now_us();
    do {
        for (long i = 0; i < batch; i++)
            fn(ctx);
        n += batch;
        elapsed = now_us() - t0;
        if (batch < 1024)
            batch *= 2;
    } while (elapsed < run_ms * 1000.0);
    return elapsed / (double)n;
}

static void
report(const char *name, double us)
{
    printf("%-58s %10.2f\n", name, us);
    fflush(stdout);
}

/* ---- Raw OpenSSL ---- */

struct sig_ctx {
    EVP_PKEY *key;
    uint8_t sig[512];
    size_t sig_len;
};

static const uint8_t msg[1024] = {1};

static void
op_sign(void *p)
{
    struct sig_ctx *c = p;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    c->sig_len = sizeof(c->sig);
    if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, c->key) != 1 ||
        EVP_DigestSign(md, c->sig, &c->sig_len, msg, sizeof(msg)) != 1)
        die("sign");
    EVP_MD_CTX_free(md);
}

static void
op_verify(void *p)
{
    struct sig_ctx *c = p;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    if (md == NULL || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, c->key) != 1 ||
        EVP_DigestVerify(md, c->sig, c->sig_len, msg, sizeof(msg)) != 1)
        die("verify");
    EVP_MD_CTX_free(md);
}

/* ---- DH ---- */

struct dh_ctx {
    ck_pkinit_group g;
    ck_pkinit_dh *client;
    uint8_t *spki, *kdc_pub;
    size_t spki_len, kdc_pub_len;
    ck_pkinit_peer *peer;
    EVP_PKEY *decoded; /* the client's key as OpenSSL decodes it, for the full check */
};

static void
dh_setup(struct dh_ctx *c, ck_pkinit_group g)
{
    uint8_t *z;
    size_t zl;
    const unsigned char *p;

    memset(c, 0, sizeof(*c));
    c->g = g;
    if (ck_pkinit_dh_generate(g, &c->client) != 0 ||
        ck_pkinit_dh_spki(c->client, &c->spki, &c->spki_len) != 0 ||
        ck_pkinit_peer_parse(c->spki, c->spki_len, 0, &c->peer) != 0 ||
        ck_pkinit_dh_kdc_exchange(c->peer, &c->kdc_pub, &c->kdc_pub_len, &z, &zl) != 0)
        die("DH setup");
    ck_free_secret(z, zl);
    p = c->spki;
    c->decoded = d2i_PUBKEY(NULL, &p, (long)c->spki_len);
    if (c->decoded == NULL)
        die("DH decode");
}

static void
dh_teardown(struct dh_ctx *c)
{
    ck_pkinit_dh_free(c->client);
    ck_pkinit_peer_free(c->peer);
    EVP_PKEY_free(c->decoded);
    free(c->spki);
    free(c->kdc_pub);
}

static void
op_dh_keygen(void *p)
{
    struct dh_ctx *c = p;
    ck_pkinit_dh *k = NULL;

    if (ck_pkinit_dh_generate(c->g, &k) != 0)
        die("keygen");
    ck_pkinit_dh_free(k);
}

static void
op_dh_parse(void *p)
{
    struct dh_ctx *c = p;
    ck_pkinit_peer *peer = NULL;

    if (ck_pkinit_peer_parse(c->spki, c->spki_len, 0, &peer) != 0)
        die("peer parse");
    ck_pkinit_peer_free(peer);
}

static void
op_dh_kdc(void *p)
{
    struct dh_ctx *c = p;
    uint8_t *pub, *z;
    size_t pl, zl;

    if (ck_pkinit_dh_kdc_exchange(c->peer, &pub, &pl, &z, &zl) != 0)
        die("KDC exchange");
    free(pub);
    ck_free_secret(z, zl);
}

static void
op_dh_client(void *p)
{
    struct dh_ctx *c = p;
    uint8_t *z;
    size_t zl;

    if (ck_pkinit_dh_client_derive(c->client, c->kdc_pub, c->kdc_pub_len, &z, &zl) != 0)
        die("client derive");
    ck_free_secret(z, zl);
}

/* What EVP_PKEY_derive_set_peer does by default and MIT pays: SP 800-56A full validation. */
static void
op_dh_full_check(void *p)
{
    struct dh_ctx *c = p;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, c->decoded, NULL);

    if (ctx == NULL || EVP_PKEY_public_check(ctx) != 1)
        die("full check");
    EVP_PKEY_CTX_free(ctx);
}

/* ---- CMS ---- */

struct cms_ctx {
    const ck_pki_identity *id;
    ck_pkinit_certcache *cache;
    unsigned sign_flags, verify_flags;
    uint8_t *der;
    size_t len;
    uint8_t *env;
    size_t env_len;
};

static const uint8_t auth_pack[600] = {0x30};

static void
op_cms_sign(void *p)
{
    struct cms_ctx *c = p;
    uint8_t *der;
    size_t len;

    if (ck_pkinit_cms_sign(c->id, CK_PKINIT_CT_AUTH_DATA, auth_pack, sizeof(auth_pack),
                           c->sign_flags, &der, &len) != 0)
        die("CMS sign");
    free(der);
}

static void
op_cms_verify(void *p)
{
    struct cms_ctx *c = p;
    ck_pkinit_signed *s;

    if (ck_pkinit_cms_verify(c->der, c->len, CK_PKINIT_CT_AUTH_DATA, c->verify_flags, c->cache,
                             &s) != 0)
        die("CMS verify");
    ck_pkinit_signed_free(s);
}

static void
op_cms_envelope(void *p)
{
    struct cms_ctx *c = p;
    uint8_t *env;
    size_t len;

    if (ck_pkinit_cms_envelope(P.client, c->der, c->len, NID_aes_256_cbc, 0, &env, &len) != 0)
        die("envelope");
    free(env);
}

static void
op_cms_decrypt(void *p)
{
    struct cms_ctx *c = p;
    uint8_t *out;
    size_t len;

    if (ck_pkinit_cms_decrypt(&P.client_id, c->env, c->env_len, &out, &len) != 0)
        die("decrypt");
    ck_free_secret(out, len);
}

/* ---- Chains and the cache ---- */

struct chain_ctx {
    ck_pkinit_anchors *anchors;
    X509 *leaf;
    STACK_OF(X509) *carried;
    ck_pkinit_tpcache *cache;
    uint8_t tp[CK_PKINIT_TP_LEN];
};

static void
op_chain(void *p)
{
    struct chain_ctx *c = p;
    ck_pkinit_chain_result res;

    if (ck_pkinit_verify_chain(c->anchors, c->leaf, c->carried, (int64_t)time(NULL),
                               CK_PKINIT_PURPOSE_CLIENT, &res) != 0)
        die("chain");
}

static void
op_thumbprint(void *p)
{
    struct chain_ctx *c = p;

    if (ck_pkinit_thumbprint(c->leaf, c->carried, 1, c->tp) != 0)
        die("thumbprint");
}

struct signed_ctx {
    ck_pkinit_signed *s;
    ck_pkinit_tpcache *cache;
};

/* The KDC's repeat-login path: thumbprint from the verification's hashes, then the cache. */
static void
op_signed_lookup(void *p)
{
    struct signed_ctx *c = p;
    ck_pkinit_chain_result res;
    uint8_t tp[CK_PKINIT_TP_LEN];

    if (ck_pkinit_signed_thumbprint(c->s, 1, tp) != 0 ||
        ck_pkinit_tpcache_lookup(c->cache, tp, (int64_t)time(NULL), 0, &res) != 0)
        die("signed lookup");
}

static void
op_lookup(void *p)
{
    struct chain_ctx *c = p;
    ck_pkinit_chain_result res;
    uint8_t tp[CK_PKINIT_TP_LEN];

    if (ck_pkinit_thumbprint(c->leaf, c->carried, 1, tp) != 0 ||
        ck_pkinit_tpcache_lookup(c->cache, tp, (int64_t)time(NULL), 0, &res) != 0)
        die("lookup");
}

/* ---- One KDC exchange's crypto ---- */

struct exch_ctx {
    const ck_pki_identity *kdc;
    uint8_t *signed_auth;
    size_t signed_len;
    uint8_t *spki;      /* NULL: RSA key transport */
    size_t spki_len;
    bool cached;        /* repeat login: certificates and chain verdict cached */
    ck_pkinit_tpcache *cache;
    ck_pkinit_certcache *certs;
};

static const uint8_t reply_content[300] = {0x30};

static void
op_exchange(void *p)
{
    struct exch_ctx *c = p;
    ck_pkinit_signed *s = NULL;
    ck_pkinit_chain_result res;
    uint8_t tp[CK_PKINIT_TP_LEN];
    uint8_t *out, *env, *pub, *z;
    size_t out_len, env_len, pl, zl;
    ck_pkinit_peer *peer;

    if (ck_pkinit_cms_verify(c->signed_auth, c->signed_len, CK_PKINIT_CT_AUTH_DATA, 0,
                             c->cached ? c->certs : NULL, &s) != 0)
        die("exchange: verify");
    if (c->cached) {
        if (ck_pkinit_signed_thumbprint(s, ck_pkinit_anchors_generation(P.anchors), tp) != 0 ||
            ck_pkinit_tpcache_lookup(c->cache, tp, (int64_t)time(NULL), 0, &res) != 0)
            die("exchange: cache");
    } else if (ck_pkinit_verify_chain(P.anchors, s->signer, s->certs, (int64_t)time(NULL),
                                      CK_PKINIT_PURPOSE_CLIENT, &res) != 0) {
        die("exchange: chain");
    }
    if (c->spki != NULL) {
        if (ck_pkinit_peer_parse(c->spki, c->spki_len, 2048, &peer) != 0 ||
            ck_pkinit_dh_kdc_exchange(peer, &pub, &pl, &z, &zl) != 0)
            die("exchange: DH");
        ck_pkinit_peer_free(peer);
        free(pub);
        ck_free_secret(z, zl);
        if (ck_pkinit_cms_sign(c->kdc, CK_PKINIT_CT_DHKEY_DATA, reply_content,
                               sizeof(reply_content), 0, &out, &out_len) != 0)
            die("exchange: sign");
        free(out);
    } else {
        if (ck_pkinit_cms_sign(c->kdc, CK_PKINIT_CT_RKEY_DATA, reply_content,
                               sizeof(reply_content), 0, &out, &out_len) != 0 ||
            ck_pkinit_cms_envelope(s->signer, out, out_len, NID_aes_256_cbc, 0, &env,
                                   &env_len) != 0)
            die("exchange: envelope");
        ck_free_secret(out, out_len);
        free(env);
    }
    ck_pkinit_signed_free(s);
}

static void
bench_exchange(const char *name, const ck_pki_identity *client, const ck_pki_identity *kdc,
               ck_pkinit_group g)
{
    struct exch_ctx c = {.kdc = kdc};
    ck_pkinit_dh *dh = NULL;
    ck_pkinit_signed *s = NULL;
    ck_pkinit_chain_result res;
    uint8_t tp[CK_PKINIT_TP_LEN];
    char label[96];

    if (ck_pkinit_cms_sign(client, CK_PKINIT_CT_AUTH_DATA, auth_pack, sizeof(auth_pack), 0,
                           &c.signed_auth, &c.signed_len) != 0)
        die("exchange setup");
    if (g != CK_PKINIT_GROUP_NONE &&
        (ck_pkinit_dh_generate(g, &dh) != 0 || ck_pkinit_dh_spki(dh, &c.spki, &c.spki_len) != 0))
        die("exchange setup");
    if (ck_pkinit_tpcache_new(1024, &c.cache) != 0 ||
        ck_pkinit_certcache_new(1024, &c.certs) != 0 ||
        ck_pkinit_cms_verify(c.signed_auth, c.signed_len, CK_PKINIT_CT_AUTH_DATA, 0, c.certs,
                             &s) != 0 ||
        ck_pkinit_verify_chain(P.anchors, s->signer, s->certs, (int64_t)time(NULL),
                               CK_PKINIT_PURPOSE_CLIENT, &res) != 0 ||
        ck_pkinit_signed_thumbprint(s, ck_pkinit_anchors_generation(P.anchors), tp) != 0 ||
        ck_pkinit_tpcache_store(c.cache, tp, &res, 0) != 0)
        die("exchange setup");
    snprintf(label, sizeof(label), "KDC exchange %s, nothing cached", name);
    report(label, time_op(op_exchange, &c));
    c.cached = true;
    snprintf(label, sizeof(label), "KDC exchange %s, repeat login", name);
    report(label, time_op(op_exchange, &c));
    ck_pkinit_signed_free(s);
    ck_pkinit_certcache_free(c.certs);
    ck_pkinit_tpcache_free(c.cache);
    ck_pkinit_dh_free(dh);
    free(c.spki);
    free(c.signed_auth);
}

int
main(int argc, char **argv)
{
    int64_t ms;

    if (argc > 1) {
        if (ck_parse_int64(argv[1], 10, 60000, &ms) != 0) {
            fprintf(stderr, "usage: bench_pkinit_crypto [ms-per-op]\n");
            return 2;
        }
        run_ms = (double)ms;
    }
    pki_build();
    printf("%-58s %10s\n", "operation", "µs/op");

    {
        struct sig_ctx rsa = {.key = P.client_key}, ec = {.key = P.ec_client_key};
        report("RSA-2048 sign (SHA-256, 1 KiB)", time_op(op_sign, &rsa));
        report("RSA-2048 verify", time_op(op_verify, &rsa));
        report("ECDSA P-256 sign", time_op(op_sign, &ec));
        report("ECDSA P-256 verify", time_op(op_verify, &ec));
    }
    for (int g = CK_PKINIT_GROUP_MODP2048; g <= CK_PKINIT_GROUP_COUNT; g++) {
        struct dh_ctx c;
        char label[96];
        const char *n = ck_pkinit_group_name((ck_pkinit_group)g);

        dh_setup(&c, (ck_pkinit_group)g);
        snprintf(label, sizeof(label), "%s keygen (client)", n);
        report(label, time_op(op_dh_keygen, &c));
        snprintf(label, sizeof(label), "%s parse client SPKI + partial check", n);
        report(label, time_op(op_dh_parse, &c));
        snprintf(label, sizeof(label), "%s KDC exchange (keygen + Z + public value)", n);
        report(label, time_op(op_dh_kdc, &c));
        snprintf(label, sizeof(label), "%s client derive", n);
        report(label, time_op(op_dh_client, &c));
        if (!ck_pkinit_group_is_ec((ck_pkinit_group)g)) {
            snprintf(label, sizeof(label), "%s full peer check (not done; MIT's cost)", n);
            report(label, time_op(op_dh_full_check, &c));
        }
        dh_teardown(&c);
    }
    {
        struct cms_ctx rfc = {.id = &P.client_id}, ec = {.id = &P.ec_client_id};
        struct cms_ctx pc = {.id = &P.client_id,
                             .sign_flags = CK_PKINIT_SIGN_PACKETCABLE,
                             .verify_flags = CK_PKINIT_VERIFY_ALLOW_SHA1};
        struct cms_ctx *all[] = {&rfc, &pc, &ec};
        const char *names[] = {"RSA-2048 RFC form", "RSA-2048 PacketCable form",
                               "ECDSA P-256 RFC form"};
        char label[96];

        for (int i = 0; i < 3; i++) {
            if (ck_pkinit_cms_sign(all[i]->id, CK_PKINIT_CT_AUTH_DATA, auth_pack,
                                   sizeof(auth_pack), all[i]->sign_flags, &all[i]->der,
                                   &all[i]->len) != 0)
                die("CMS setup");
            snprintf(label, sizeof(label), "CMS sign %s (600-byte content)", names[i]);
            report(label, time_op(op_cms_sign, all[i]));
            snprintf(label, sizeof(label), "CMS verify %s (%zu bytes)", names[i], all[i]->len);
            report(label, time_op(op_cms_verify, all[i]));
            if (ck_pkinit_certcache_new(64, &all[i]->cache) != 0)
                die("certificate cache");
            snprintf(label, sizeof(label), "CMS verify %s, certificates cached", names[i]);
            report(label, time_op(op_cms_verify, all[i]));
            ck_pkinit_certcache_free(all[i]->cache);
            all[i]->cache = NULL;
        }
        if (ck_pkinit_cms_envelope(P.client, rfc.der, rfc.len, NID_aes_256_cbc, 0, &rfc.env,
                                   &rfc.env_len) != 0)
            die("envelope setup");
        report("CMS envelope to RSA-2048 (AES-256-CBC)", time_op(op_cms_envelope, &rfc));
        report("CMS decrypt (client)", time_op(op_cms_decrypt, &rfc));
        for (int i = 0; i < 3; i++)
            free(all[i]->der);
        free(rfc.env);
    }
    {
        struct chain_ctx c = {.anchors = P.anchors, .leaf = P.client};
        ck_pkinit_chain_result res;

        c.carried = sk_X509_new_null();
        if (c.carried == NULL || !sk_X509_push(c.carried, P.client) ||
            !sk_X509_push(c.carried, P.ca) || ck_pkinit_tpcache_new(1024, &c.cache) != 0)
            die("chain setup");
        report("chain verification (leaf + CA + root, RSA-2048)", time_op(op_chain, &c));
        c.anchors = P.anchors_crl;
        report("chain verification with the anchor's CRL", time_op(op_chain, &c));
        report("thumbprint from X509 objects (re-encode + hash 2)", time_op(op_thumbprint, &c));
        if (ck_pkinit_verify_chain(P.anchors, c.leaf, c.carried, (int64_t)time(NULL),
                                   CK_PKINIT_PURPOSE_CLIENT, &res) != 0 ||
            ck_pkinit_tpcache_store(c.cache, c.tp, &res, 0) != 0)
            die("cache setup");
        report("thumbprint from X509 objects + cache lookup (hit)", time_op(op_lookup, &c));
        {
            struct signed_ctx sc = {.cache = c.cache};
            uint8_t *der;
            size_t len;
            uint8_t tp[CK_PKINIT_TP_LEN];

            if (ck_pkinit_cms_sign(&P.client_id, CK_PKINIT_CT_AUTH_DATA, auth_pack,
                                   sizeof(auth_pack), 0, &der, &len) != 0 ||
                ck_pkinit_cms_verify(der, len, CK_PKINIT_CT_AUTH_DATA, 0, NULL, &sc.s) != 0 ||
                ck_pkinit_signed_thumbprint(sc.s, 1, tp) != 0 ||
                ck_pkinit_tpcache_store(c.cache, tp, &res, 0) != 0)
                die("signed lookup setup");
            report("thumbprint from verified SignedData + cache lookup (hit)",
                   time_op(op_signed_lookup, &sc));
            ck_pkinit_signed_free(sc.s);
            free(der);
        }
        ck_pkinit_tpcache_free(c.cache);
        sk_X509_free(c.carried);
    }
    bench_exchange("RSA-2048 + DH MODP-2048", &P.client_id, &P.kdc_id, CK_PKINIT_GROUP_MODP2048);
    bench_exchange("RSA-2048 key transport", &P.client_id, &P.kdc_id, CK_PKINIT_GROUP_NONE);
    bench_exchange("ECDSA P-256 + ECDH P-256", &P.ec_client_id, &P.ec_kdc_id,
                   CK_PKINIT_GROUP_P256);
    return 0;
}
