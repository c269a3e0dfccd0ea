/* libFuzzer target: the KDC's PA-PK-AS-REP as the PKINIT client sees it (lib/pkinit/client.c):
 * decoding (RFC 4556 and the PacketCable draft form), CMS decryption and verification of the
 * KDC's SignedData, the KDC certificate checks, KDCDHKeyInfo / ReplyKeyPack decoding, nonce,
 * DH derivation and the KDF. The first input byte picks the client (0: RFC DH, 1: RFC RSA key
 * transport, 2: PacketCable), the rest is the padata-value of PA 17 (or 15).
 *
 * The request the reply answers is MIT 1.20's captured DH AS-REQ and the anchor is the capture's
 * CA, at the capture's time, so the seed built from MIT's real reply (corpus/pkinit_client_reply,
 * byte 0 followed by tests/vectors/pkinit/mit-as-rep-dh.pa-pk-as-rep.der) passes signature, chain,
 * name and nonce checks and reaches the key derivation. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/pki.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_client.h"
#include "cablekey/util.h"
#include "pkinit/client_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAPTURE_TIME 1796162460 /* 2026-12-01T22:01:00Z, just after the capture */
#define N_CLIENTS 3

static struct {
    ck_pki_identity id;
    ck_pkinit_anchors *anchors;
    ck_kdc_transport t;
    ck_as_params as;
    ck_pkinit_client_params p[N_CLIENTS];
    ck_pkinit_client_ctx *ctx[N_CLIENTS];
    ck_as_mech mech[N_CLIENTS];
    CK_AS_REQ *req;
    uint8_t *req_der;
    size_t req_len;
} F;

static uint8_t *
read_vector(const char *name, size_t *len)
{
    char src[1024], path[1200];
    FILE *f;
    uint8_t *buf = malloc(65536);

    ck_strlcpy(src, __FILE__, sizeof(src));
    snprintf(path, sizeof(path), "%s/../vectors/pkinit/%s", dirname(src), name);
    if (buf == NULL || (f = fopen(path, "rb")) == NULL) {
        fprintf(stderr, "fuzz_pkinit_client_reply: cannot read %s\n", path);
        abort();
    }
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    return buf;
}

static X509 *
read_cert(const char *name)
{
    size_t len = 0;
    uint8_t *pem = read_vector(name, &len);
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

    BIO_free(b);
    free(pem);
    if (x == NULL)
        abort();
    return x;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ck_pki_cert_spec root = {.profile = CK_PKI_PROFILE_ROOT_CA, .org = "fuzz", .common_name = "root",
                             .path_len = -1, .not_before = CAPTURE_TIME - 86400,
                             .not_after = CAPTURE_TIME + 86400};
    ck_pki_cert_spec leaf = root;
    STACK_OF(X509) *ca = sk_X509_new_null();
    EVP_PKEY *root_key = NULL;
    X509 *root_cert = NULL;
    CK_AS_REQ *scratch = NULL;

    (void)argc;
    (void)argv;
    leaf.profile = CK_PKI_PROFILE_CLIENT;
    leaf.common_name = "alice";
    leaf.principal = "alice@EXAMPLE.TEST";
    if (ck_pki_key_generate(CK_PKI_KEY_RSA_2048, &root_key) != 0 ||
        ck_pki_key_generate(CK_PKI_KEY_RSA_2048, &F.id.key) != 0 ||
        ck_pki_cert_issue(&root, root_key, NULL, root_key, &root_cert) != 0 ||
        ck_pki_cert_issue(&leaf, F.id.key, root_cert, root_key, &F.id.cert) != 0 ||
        (F.id.chain = sk_X509_new_null()) == NULL || ca == NULL ||
        !sk_X509_push(ca, read_cert("ca.pem")) || ck_pkinit_anchors_new(&F.anchors) != 0 ||
        ck_pkinit_anchors_add(F.anchors, ca, 0, NULL) != 0)
        abort();
    sk_X509_pop_free(ca, X509_free);
    EVP_PKEY_free(root_key);
    X509_free(root_cert);

    F.req_der = read_vector("mit-as-req-dh.der", &F.req_len);
    if (ck_asn1_as_req_decode(F.req_der, F.req_len, &F.req) != 0 ||
        ck_asn1_as_req_decode(F.req_der, F.req_len, &scratch) != 0)
        abort();
    F.as = (ck_as_params){.realm = "EXAMPLE.TEST", .client = "alice", .preauth_first = true,
                          .transport = &F.t};
    for (int i = 0; i < N_CLIENTS; i++) {
        F.p[i] = (ck_pkinit_client_params){.as = &F.as, .identity = &F.id, .anchors = F.anchors,
                                           .now = CAPTURE_TIME};
        if (i >= 1)
            F.p[i].kx = CK_PKINIT_KX_RSA;
        F.p[i].packetcable = i == 2;
        /* A request makes the client's DH key and marks PKINIT as sent. */
        if (ck_pkinit_client_ctx_new(&F.p[i], &F.ctx[i]) != 0)
            abort();
        ck_pkinit_client_mech(F.ctx[i], &F.mech[i]);
        if (F.mech[i].add_padata(F.ctx[i], scratch, 0) != 0)
            abort();
    }
    CK_AS_REQ_free(scratch);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CK_AS_REP *rep = NULL;
    ck_key key;
    int which;

    if (size < 1)
        return 0;
    which = data[0] % N_CLIENTS;
    memset(&key, 0, sizeof(key));
    if ((rep = CK_AS_REP_new()) == NULL)
        return 0;
    rep->enc_part->etype = CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    if (ck_asn1_padata_add(&rep->padata, which == 2 ? CK_PA_PK_AS_REP_OLD : CK_PA_PK_AS_REP,
                           data + 1, size - 1) == 0) {
        int rc = F.mech[which].reply_key(F.ctx[which], F.req, F.req_der, F.req_len, rep, 1, &key);
        /* Success only with a key of the reply's enctype; failure leaves no key behind. */
        if ((rc == 0 && key.enctype != CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96) ||
            (rc != 0 && (key.enctype != 0 || key.length != 0)))
            __builtin_trap();
    }
    ck_key_clear(&key);
    CK_AS_REP_free(rep);
    ck_error_clear();
    return 0;
}
