/* Trust anchors and certificate-chain validation for PKINIT (RFC 4556 §3.2.2, §3.2.4), plus
 * the helpers that map a certificate to names: id-pkinit-san principals (decoded with the
 * KRB5PrincipalName codec of lib/asn1), the KDC's krbtgt name, a device's MAC address and key
 * pin.
 *
 * Validation runs X509_verify_cert with X509_PURPOSE_ANY and our own EKU check (LIBRARIES.md
 * §3: OpenSSL's S/MIME purpose refuses PKINIT-only certificates), at the caller's time. Every
 * configured anchor terminates a chain (X509_V_FLAG_PARTIAL_CHAIN), self-signed or not: an
 * operator may trust a manufacturer CA without its root.
 *
 * Per-anchor policy is applied once the chain is known, since OpenSSL's store has one set of
 * verification parameters for all anchors:
 *   - strength: outside PacketCable anchors every certificate below the anchor needs a
 *     signature digest and a key of at least 112-bit strength (SHA-224+, RSA/DH >= 2048,
 *     EC >= P-224); PacketCable 1.x hierarchies carry 1024-bit device keys and SHA-1
 *     signatures, so their anchors lower this to 63/80 bits. MD5 (39 bits) and MD2/MD4 are
 *     refused everywhere.
 *   - revocation: an anchor given CRLs (MIT's pkinit_revoke, per anchor) re-runs the path
 *     validation against a store holding only that anchor and its CRLs, with CRL_CHECK_ALL; a
 *     missing CRL is tolerated above the leaf only. This second pass costs ~70 us (a chain
 *     verification is ~50 us, ~120 us with it; bench_pkinit_crypto) and only runs for anchors
 *     with CRLs; the thumbprint cache absorbs it for repeat logins.
 *   - EKU: the leaf must carry id-pkinit-KPClientAuth (or, on request, Microsoft's smart-card
 *     logon EKU, which is what Windows-issued smart-card certificates carry) for a client, and
 *     id-pkinit-KPKdc for a KDC. PacketCable MTA device certificates predate the PKINIT EKUs
 *     and carry none, so under a PacketCable anchor a client leaf without the EKU extension is
 *     accepted; one that has the extension must list a PKINIT client EKU. A keyUsage extension,
 *     when present, must allow digitalSignature (the AuthPack is signed). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/pkinit.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/util.h"

#define ANCHOR_FILE_MAX (1024 * 1024)
#define CRL_FILE_MAX (16 * 1024 * 1024)
#define CRLS_PER_SET_MAX 256
#define SAN_PRINCIPALS_MAX 16

/* Strength floors (bits of security) of certificates below the anchor, see the top comment. */
#define STRONG_SIG_BITS 112
#define STRONG_KEY_BITS 112
#define PACKETCABLE_SIG_BITS 63 /* SHA-1 */
#define PACKETCABLE_KEY_BITS 80 /* RSA-1024 */

/* One ck_pkinit_anchors_add call: anchors sharing options and CRLs. */
struct anchor_set {
    unsigned flags;
    STACK_OF(X509_CRL) *crls; /* NULL without CRLs */
    X509_STORE *crl_store;    /* this set's anchors only, for the revocation pass */
    int64_t crl_next_update;  /* earliest nextUpdate of crls, 0 if none has one */
};

struct ck_pkinit_anchors {
    X509_STORE *store;        /* every anchor */
    STACK_OF(X509) *certs;    /* every anchor, in order of addition */
    size_t set_of[CK_PKINIT_MAX_ANCHORS];
    struct anchor_set sets[CK_PKINIT_MAX_ANCHORS];
    size_t nsets;
    uint64_t generation;
};

static _Atomic uint64_t generation_counter;

static uint64_t
next_generation(void)
{
    return atomic_fetch_add(&generation_counter, 1) + 1;
}

/* ASN1_TIME -> seconds since the epoch. */
static int
asn1_time_secs(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return CK_ERR_DECODE;
    *out = (int64_t)timegm(&tm);
    return 0;
}

int
ck_pkinit_anchors_new(ck_pkinit_anchors **out)
{
    ck_pkinit_anchors *a;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "anchors: no output");
    *out = NULL;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return ck_error_set(CK_ERR_NOMEM, "anchors: out of memory");
    a->store = X509_STORE_new();
    a->certs = sk_X509_new_null();
    if (a->store == NULL || a->certs == NULL) {
        ck_pkinit_anchors_free(a);
        return ck_error_set(CK_ERR_NOMEM, "anchors: out of memory");
    }
    a->generation = next_generation();
    *out = a;
    return 0;
}

void
ck_pkinit_anchors_free(ck_pkinit_anchors *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nsets; i++) {
        sk_X509_CRL_pop_free(a->sets[i].crls, X509_CRL_free);
        X509_STORE_free(a->sets[i].crl_store);
    }
    sk_X509_pop_free(a->certs, X509_free);
    X509_STORE_free(a->store);
    free(a);
}

size_t
ck_pkinit_anchors_count(const ck_pkinit_anchors *a)
{
    return a != NULL ? (size_t)sk_X509_num(a->certs) : 0;
}

X509 *
ck_pkinit_anchors_get0(const ck_pkinit_anchors *a, size_t i)
{
    if (a == NULL || i >= (size_t)sk_X509_num(a->certs))
        return NULL;
    return sk_X509_value(a->certs, (int)i);
}

uint64_t
ck_pkinit_anchors_generation(const ck_pkinit_anchors *a)
{
    return a != NULL ? a->generation : 0;
}

static int
anchor_index(const ck_pkinit_anchors *a, X509 *x)
{
    for (int i = 0; i < sk_X509_num(a->certs); i++)
        if (X509_cmp(sk_X509_value(a->certs, i), x) == 0)
            return i;
    return -1;
}

int
ck_pkinit_anchors_add(ck_pkinit_anchors *a, STACK_OF(X509) *certs, unsigned flags,
                      STACK_OF(X509_CRL) *crls)
{
    struct anchor_set *set;
    size_t first, n;
    int ret;

    if (a == NULL || certs == NULL || sk_X509_num(certs) < 1 ||
        (flags & ~CK_PKINIT_ANCHOR_PACKETCABLE) != 0)
        return ck_error_set(CK_ERR_INVAL, "anchors: bad arguments");
    n = (size_t)sk_X509_num(certs);
    first = (size_t)sk_X509_num(a->certs);
    if (first + n > CK_PKINIT_MAX_ANCHORS || a->nsets >= CK_PKINIT_MAX_ANCHORS)
        return ck_error_set(CK_ERR_LIMIT, "anchors: more than %d", CK_PKINIT_MAX_ANCHORS);
    if (crls != NULL && sk_X509_CRL_num(crls) > CRLS_PER_SET_MAX)
        return ck_error_set(CK_ERR_LIMIT, "anchors: more than %d CRLs", CRLS_PER_SET_MAX);
    for (size_t i = 0; i < n; i++) {
        X509 *x = sk_X509_value(certs, (int)i);
        if (anchor_index(a, x) >= 0)
            return ck_error_set(CK_ERR_EXISTS, "anchors: certificate %zu is already an anchor", i);
        for (size_t j = 0; j < i; j++)
            if (X509_cmp(sk_X509_value(certs, (int)j), x) == 0)
                return ck_error_set(CK_ERR_EXISTS, "anchors: certificate %zu given twice", i);
    }

    set = &a->sets[a->nsets];
    memset(set, 0, sizeof(*set));
    set->flags = flags;
    if (crls != NULL && sk_X509_CRL_num(crls) > 0) {
        set->crl_store = X509_STORE_new();
        set->crls = sk_X509_CRL_new_null();
        if (set->crl_store == NULL || set->crls == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "anchors: out of memory");
            goto fail;
        }
        for (int i = 0; i < sk_X509_CRL_num(crls); i++) {
            X509_CRL *crl = sk_X509_CRL_value(crls, i);
            const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);
            int64_t t;

            if (!X509_CRL_up_ref(crl)) {
                ret = ck_error_set(CK_ERR_CRYPTO, "anchors: cannot reference a CRL");
                goto fail;
            }
            if (!sk_X509_CRL_push(set->crls, crl)) {
                X509_CRL_free(crl);
                ret = ck_error_set(CK_ERR_NOMEM, "anchors: out of memory");
                goto fail;
            }
            if (nu != NULL && asn1_time_secs(nu, &t) == 0 &&
                (set->crl_next_update == 0 || t < set->crl_next_update))
                set->crl_next_update = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        X509 *x = sk_X509_value(certs, (int)i);
        if (!X509_STORE_add_cert(a->store, x) ||
            (set->crl_store != NULL && !X509_STORE_add_cert(set->crl_store, x))) {
            ret = ck_error_set_ssl(CK_ERR_CRYPTO, "anchors: cannot add certificate %zu", i);
            goto fail_added;
        }
        if (!X509_up_ref(x)) {
            ret = ck_error_set(CK_ERR_CRYPTO, "anchors: cannot reference certificate %zu", i);
            goto fail_added;
        }
        if (!sk_X509_push(a->certs, x)) {
            X509_free(x);
            ret = ck_error_set(CK_ERR_NOMEM, "anchors: out of memory");
            goto fail_added;
        }
        a->set_of[first + i] = a->nsets;
    }
    a->nsets++;
    a->generation = next_generation();
    return 0;

fail_added:
    /* The global store cannot drop certificates: a half-added set is unusable, so the whole
     * object must be discarded; make any later verification fail closed. */
    while ((size_t)sk_X509_num(a->certs) > first)
        X509_free(sk_X509_pop(a->certs));
    X509_STORE_free(a->store);
    a->store = NULL;
fail:
    sk_X509_CRL_pop_free(set->crls, X509_CRL_free);
    X509_STORE_free(set->crl_store);
    memset(set, 0, sizeof(*set));
    return ret;
}

/* Opens a bounded regular file for PEM reading. */
static int
open_pem(const char *path, size_t max, const char *what, BIO **out)
{
    struct stat st;

    *out = NULL;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return ck_error_set(CK_ERR_IO, "%s %s: not a readable regular file", what, path);
    if ((size_t)st.st_size > max)
        return ck_error_set(CK_ERR_LIMIT, "%s %s: larger than %zu bytes", what, path, max);
    *out = BIO_new_file(path, "r");
    if (*out == NULL)
        return ck_error_set_ssl(CK_ERR_IO, "%s %s: cannot open", what, path);
    return 0;
}

/* True if the PEM reader stopped at the end of the file rather than on an error. */
static bool
pem_clean_end(void)
{
    unsigned long e = ERR_peek_last_error();

    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        return true;
    }
    return false;
}

int
ck_pkinit_anchors_add_file(ck_pkinit_anchors *a, const char *pem_path, unsigned flags,
                           const char *crl_path)
{
    STACK_OF(X509) *certs = NULL;
    STACK_OF(X509_CRL) *crls = NULL;
    BIO *b = NULL;
    X509 *x;
    X509_CRL *crl;
    int ret;

    if (a == NULL || pem_path == NULL)
        return ck_error_set(CK_ERR_INVAL, "anchors: bad arguments");
    if ((ret = open_pem(pem_path, ANCHOR_FILE_MAX, "anchors", &b)) != 0)
        return ret;
    certs = sk_X509_new_null();
    if (certs == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "anchors: out of memory");
        goto out;
    }
    ERR_clear_error();
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_num(certs) >= CK_PKINIT_MAX_ANCHORS || !sk_X509_push(certs, x)) {
            X509_free(x);
            ret = ck_error_set(CK_ERR_LIMIT, "anchors %s: more than %d certificates", pem_path,
                               CK_PKINIT_MAX_ANCHORS);
            goto out;
        }
    }
    if (!pem_clean_end() || sk_X509_num(certs) == 0) {
        ret = ck_error_set_ssl(CK_ERR_DECODE, "anchors %s: no readable PEM certificate",
                               pem_path);
        goto out;
    }
    if (crl_path != NULL) {
        BIO_free(b);
        if ((ret = open_pem(crl_path, CRL_FILE_MAX, "CRL file", &b)) != 0)
            goto out;
        crls = sk_X509_CRL_new_null();
        if (crls == NULL) {
            ret = ck_error_set(CK_ERR_NOMEM, "anchors: out of memory");
            goto out;
        }
        ERR_clear_error();
        while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
            if (sk_X509_CRL_num(crls) >= CRLS_PER_SET_MAX || !sk_X509_CRL_push(crls, crl)) {
                X509_CRL_free(crl);
                ret = ck_error_set(CK_ERR_LIMIT, "CRL file %s: more than %d CRLs", crl_path,
                                   CRLS_PER_SET_MAX);
                goto out;
            }
        }
        /* An empty CRL file would silently disable revocation checking: refuse it. */
        if (!pem_clean_end() || sk_X509_CRL_num(crls) == 0) {
            ret = ck_error_set_ssl(CK_ERR_DECODE, "CRL file %s: no readable PEM CRL", crl_path);
            goto out;
        }
    }
    ret = ck_pkinit_anchors_add(a, certs, flags, crls);
    if (ret != 0)
        ret = ck_error_set(ret, "anchors %s: %s", pem_path, ck_error_context());
out:
    BIO_free(b);
    sk_X509_pop_free(certs, X509_free);
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    return ret;
}

/* ---- Validation ---- */

const char *
ck_pkinit_cert_reason_str(ck_pkinit_cert_reason r)
{
    switch (r) {
    case CK_PKINIT_CERT_OK: return "OK";
    case CK_PKINIT_CERT_UNTRUSTED: return "UNTRUSTED";
    case CK_PKINIT_CERT_BAD_SIGNATURE: return "BAD_SIGNATURE";
    case CK_PKINIT_CERT_EXPIRED: return "EXPIRED";
    case CK_PKINIT_CERT_NOT_YET_VALID: return "NOT_YET_VALID";
    case CK_PKINIT_CERT_REVOKED: return "REVOKED";
    case CK_PKINIT_CERT_REVOCATION_UNKNOWN: return "REVOCATION_UNKNOWN";
    case CK_PKINIT_CERT_BAD_EKU: return "BAD_EKU";
    case CK_PKINIT_CERT_WEAK: return "WEAK";
    case CK_PKINIT_CERT_INVALID: return "INVALID";
    case CK_PKINIT_CERT_INTERNAL: return "INTERNAL";
    }
    return "UNKNOWN";
}

int
ck_pkinit_cert_reason_krb_error(ck_pkinit_cert_reason r)
{
    switch (r) {
    case CK_PKINIT_CERT_OK: return 0;
    case CK_PKINIT_CERT_UNTRUSTED: return 70;          /* KDC_ERR_CANT_VERIFY_CERTIFICATE */
    case CK_PKINIT_CERT_BAD_SIGNATURE: return 71;      /* KDC_ERR_INVALID_CERTIFICATE */
    case CK_PKINIT_CERT_REVOKED: return 72;            /* KDC_ERR_REVOKED_CERTIFICATE */
    case CK_PKINIT_CERT_REVOCATION_UNKNOWN: return 73; /* KDC_ERR_REVOCATION_STATUS_UNKNOWN */
    case CK_PKINIT_CERT_BAD_EKU: return 77;            /* KDC_ERR_INCONSISTENT_KEY_PURPOSE */
    case CK_PKINIT_CERT_WEAK: return 78;               /* KDC_ERR_DIGEST_IN_CERT_NOT_ACCEPTED */
    case CK_PKINIT_CERT_EXPIRED:
    case CK_PKINIT_CERT_NOT_YET_VALID:
    case CK_PKINIT_CERT_INVALID: return 62;            /* KDC_ERR_CLIENT_NOT_TRUSTED */
    case CK_PKINIT_CERT_INTERNAL: return 60;           /* KRB_ERR_GENERIC */
    }
    return 60;
}

static ck_pkinit_cert_reason
reason_of(int x509_error)
{
    switch (x509_error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
        return CK_PKINIT_CERT_UNTRUSTED;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
        return CK_PKINIT_CERT_BAD_SIGNATURE;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return CK_PKINIT_CERT_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return CK_PKINIT_CERT_NOT_YET_VALID;
    case X509_V_ERR_CERT_REVOKED:
        return CK_PKINIT_CERT_REVOKED;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_DIFFERENT_CRL_SCOPE:
    case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
    case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
        return CK_PKINIT_CERT_REVOCATION_UNKNOWN;
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
    case X509_V_ERR_CA_MD_TOO_WEAK:
        return CK_PKINIT_CERT_WEAK;
    case X509_V_ERR_OUT_OF_MEM:
        return CK_PKINIT_CERT_INTERNAL;
    default:
        return CK_PKINIT_CERT_INVALID;
    }
}

/* Fills res for a refusal and returns CK_ERR_POLICY (CK_ERR_NOMEM for INTERNAL). */
static int
refuse(ck_pkinit_chain_result *res, ck_pkinit_cert_reason reason, int x509_error, int depth,
       const char *detail)
{
    res->reason = reason;
    res->x509_error = x509_error;
    res->depth = depth;
    if (reason == CK_PKINIT_CERT_INTERNAL)
        return ck_error_set(CK_ERR_NOMEM, "certificate chain: %s", detail);
    return ck_error_set(CK_ERR_POLICY, "certificate chain %s at depth %d: %s",
                        ck_pkinit_cert_reason_str(reason), depth, detail);
}

static int
refuse_x509(ck_pkinit_chain_result *res, X509_STORE_CTX *ctx)
{
    int err = X509_STORE_CTX_get_error(ctx);

    ERR_clear_error();
    return refuse(res, reason_of(err), err, X509_STORE_CTX_get_error_depth(ctx),
                  X509_verify_cert_error_string(err));
}

/* Prepares a store context at time now, purpose ANY, bounded depth, partial chains. */
static int
ctx_setup(X509_STORE_CTX *ctx, X509_STORE *store, X509 *leaf, STACK_OF(X509) *untrusted,
          int64_t now)
{
    X509_VERIFY_PARAM *vp;

    if (!X509_STORE_CTX_init(ctx, store, leaf, untrusted) ||
        !X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY))
        return 0;
    vp = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(vp, (time_t)now);
    X509_VERIFY_PARAM_set_depth(vp, CK_PKINIT_MAX_CERTS);
    X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_PARTIAL_CHAIN);
    return 1;
}

/* CRL pass: a missing CRL is an error for the leaf only. */
static int
crl_verify_cb(int ok, X509_STORE_CTX *ctx)
{
    if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_UNABLE_TO_GET_CRL &&
        X509_STORE_CTX_get_error_depth(ctx) > 0)
        return 1;
    return ok;
}

static int
check_strength(STACK_OF(X509) *chain, unsigned anchor_flags, ck_pkinit_chain_result *res)
{
    bool pc = (anchor_flags & CK_PKINIT_ANCHOR_PACKETCABLE) != 0;
    int min_sig = pc ? PACKETCABLE_SIG_BITS : STRONG_SIG_BITS;
    int min_key = pc ? PACKETCABLE_KEY_BITS : STRONG_KEY_BITS;
    int n = sk_X509_num(chain);

    /* The anchor (last) is trusted as configured; everything below it is checked. */
    for (int i = 0; i < n - 1; i++) {
        X509 *x = sk_X509_value(chain, i);
        int mdnid = NID_undef, pknid = NID_undef, secbits = -1;
        uint32_t xflags = 0;
        EVP_PKEY *pk = X509_get0_pubkey(x);

        if (!X509_get_signature_info(x, &mdnid, &pknid, &secbits, &xflags) || secbits < min_sig)
            return refuse(res, CK_PKINIT_CERT_WEAK, 0, i,
                          pc ? "signature digest weaker than SHA-1"
                             : "signature digest weaker than 112 bits (SHA-1 or older)");
        if (pk == NULL || EVP_PKEY_get_security_bits(pk) < min_key)
            return refuse(res, CK_PKINIT_CERT_WEAK, 0, i,
                          pc ? "key weaker than RSA-1024" : "key weaker than 112 bits");
    }
    return 0;
}

static int
check_eku(X509 *leaf, unsigned purpose_flags, unsigned anchor_flags, ck_pkinit_chain_result *res)
{
    EXTENDED_KEY_USAGE *eku;
    bool client = (purpose_flags & CK_PKINIT_PURPOSE_CLIENT) != 0;
    bool found = false;
    int crit = 0;

    if ((X509_get_key_usage(leaf) & X509v3_KU_DIGITAL_SIGNATURE) == 0)
        return refuse(res, CK_PKINIT_CERT_BAD_EKU, 0, 0, "keyUsage lacks digitalSignature");
    eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, &crit, NULL);
    if (eku == NULL) {
        if (crit == -1 && client && (anchor_flags & CK_PKINIT_ANCHOR_PACKETCABLE))
            return 0; /* PacketCable device certificate profile */
        return refuse(res, CK_PKINIT_CERT_BAD_EKU, 0, 0,
                      crit == -1 ? "no extendedKeyUsage" : "bad extendedKeyUsage extension");
    }
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku) && !found; i++) {
        int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));
        if (client)
            found = nid == NID_pkInitClientAuth ||
                    (nid == NID_ms_smartcard_login && (purpose_flags & CK_PKINIT_VERIFY_SCLOGIN));
        else
            found = nid == NID_pkInitKDC;
    }
    EXTENDED_KEY_USAGE_free(eku);
    if (!found)
        return refuse(res, CK_PKINIT_CERT_BAD_EKU, 0, 0,
                      client ? "extendedKeyUsage lacks id-pkinit-KPClientAuth"
                             : "extendedKeyUsage lacks id-pkinit-KPKdc");
    return 0;
}

int
ck_pkinit_verify_chain(const ck_pkinit_anchors *a, X509 *leaf, STACK_OF(X509) *untrusted,
                       int64_t now, unsigned purpose_flags, ck_pkinit_chain_result *res)
{
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *chain;
    const struct anchor_set *set;
    unsigned purpose = purpose_flags & (CK_PKINIT_PURPOSE_CLIENT | CK_PKINIT_PURPOSE_KDC);
    int64_t until = INT64_MAX;
    int ret, idx;

    if (res == NULL)
        return ck_error_set(CK_ERR_INVAL, "certificate chain: no result");
    memset(res, 0, sizeof(*res));
    res->reason = CK_PKINIT_CERT_INTERNAL;
    res->depth = -1;
    if (a == NULL || leaf == NULL ||
        (purpose != CK_PKINIT_PURPOSE_CLIENT && purpose != CK_PKINIT_PURPOSE_KDC) ||
        (purpose_flags & ~(CK_PKINIT_PURPOSE_CLIENT | CK_PKINIT_PURPOSE_KDC |
                           CK_PKINIT_VERIFY_SCLOGIN)) != 0)
        return ck_error_set(CK_ERR_INVAL, "certificate chain: bad arguments");
    if (a->store == NULL)
        return ck_error_set(CK_ERR_CONFIG, "certificate chain: anchor set is unusable");
    if (untrusted != NULL && sk_X509_num(untrusted) > CK_PKINIT_MAX_CERTS)
        return refuse(res, CK_PKINIT_CERT_INVALID, 0, -1, "too many certificates");

    ctx = X509_STORE_CTX_new();
    if (ctx == NULL || !ctx_setup(ctx, a->store, leaf, untrusted, now)) {
        ret = refuse(res, CK_PKINIT_CERT_INTERNAL, 0, -1, "cannot set up verification");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        ret = refuse_x509(res, ctx);
        goto out;
    }
    chain = X509_STORE_CTX_get0_chain(ctx);
    idx = anchor_index(a, sk_X509_value(chain, sk_X509_num(chain) - 1));
    if (idx < 0) {
        ret = refuse(res, CK_PKINIT_CERT_UNTRUSTED, 0, sk_X509_num(chain) - 1,
                     "chain does not end at a configured anchor");
        goto out;
    }
    set = &a->sets[a->set_of[idx]];
    res->anchor_index = (size_t)idx;
    res->anchor_flags = set->flags;
    if ((ret = check_strength(chain, set->flags, res)) != 0 ||
        (ret = check_eku(leaf, purpose_flags, set->flags, res)) != 0)
        goto out;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        int64_t t;
        if (asn1_time_secs(X509_get0_notAfter(sk_X509_value(chain, i)), &t) != 0) {
            ret = refuse(res, CK_PKINIT_CERT_INVALID, 0, i, "unreadable notAfter");
            goto out;
        }
        if (t < until)
            until = t;
    }

    if (set->crl_store != NULL) {
        X509_STORE_CTX_cleanup(ctx);
        if (!ctx_setup(ctx, set->crl_store, leaf, untrusted, now)) {
            ret = refuse(res, CK_PKINIT_CERT_INTERNAL, 0, -1, "cannot set up verification");
            goto out;
        }
        X509_STORE_CTX_set0_crls(ctx, set->crls);
        X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx),
                                    X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
        X509_STORE_CTX_set_verify_cb(ctx, crl_verify_cb);
        if (X509_verify_cert(ctx) != 1) {
            ret = refuse_x509(res, ctx);
            goto out;
        }
        if (set->crl_next_update != 0 && set->crl_next_update < until)
            until = set->crl_next_update;
    }
    res->reason = CK_PKINIT_CERT_OK;
    res->valid_until = until;
    ret = 0;
out:
    X509_STORE_CTX_free(ctx);
    return ret;
}

/* ---- Principal names (id-pkinit-san) ---- */

/* A KRB5PrincipalName as a ck_principal; names the library cannot represent (NUL bytes, too
 * many components) are CK_ERR_DECODE. */
static int
principal_from_kpn(const CK_KRB5_PRINCIPAL_NAME *kpn, ck_principal **out)
{
    const char *realm = ck_asn1_kstring_get(kpn->realm);
    ck_principal *p = NULL;
    size_t n = ck_asn1_principal_count(kpn->principal_name);
    int ret;

    *out = NULL;
    if ((size_t)ASN1_STRING_length(kpn->realm) != strlen(realm) || realm[0] == '\0')
        return ck_error_set(CK_ERR_DECODE, "id-pkinit-san: bad realm");
    if ((ret = ck_principal_new(realm, strlen(realm), kpn->principal_name->name_type, &p)) != 0)
        return ck_error_set(CK_ERR_DECODE, "id-pkinit-san: %s", ck_error_context());
    for (size_t i = 0; i < n; i++) {
        const char *c;
        size_t len;
        if (ck_asn1_principal_component(kpn->principal_name, i, &c, &len) != 0 ||
            ck_principal_add_component(p, c, len) != 0) {
            ck_principal_free(p);
            return ck_error_set(CK_ERR_DECODE, "id-pkinit-san: unusable name component");
        }
    }
    *out = p;
    return 0;
}

void
ck_pkinit_principals_free(ck_principal **p, size_t n)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        ck_principal_free(p[i]);
    free(p);
}

int
ck_pkinit_cert_san_principals(X509 *cert, ck_principal ***out, size_t *n)
{
    GENERAL_NAMES *gens;
    ck_principal **list = NULL;
    size_t count = 0;
    int crit = 0, ret = 0;

    if (cert == NULL || out == NULL || n == NULL)
        return ck_error_set(CK_ERR_INVAL, "id-pkinit-san: bad arguments");
    *out = NULL;
    *n = 0;
    gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (gens == NULL) {
        ERR_clear_error();
        return crit == -1 ? 0 : ck_error_set(CK_ERR_DECODE, "subjectAltName: malformed or "
                                                            "repeated");
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        const ASN1_TYPE *v;
        CK_KRB5_PRINCIPAL_NAME *kpn = NULL;
        ck_principal **grown;

        if (gn->type != GEN_OTHERNAME ||
            !ck_pkinit_oid_eq(gn->d.otherName->type_id, CK_OID_PKINIT_SAN))
            continue;
        v = gn->d.otherName->value;
        if (v == NULL || v->type != V_ASN1_SEQUENCE) {
            ret = ck_error_set(CK_ERR_DECODE, "id-pkinit-san: value is not a SEQUENCE");
            goto out;
        }
        if (count >= SAN_PRINCIPALS_MAX) {
            ret = ck_error_set(CK_ERR_LIMIT, "id-pkinit-san: more than %d names",
                               SAN_PRINCIPALS_MAX);
            goto out;
        }
        if ((ret = ck_asn1_krb5_principal_name_decode(
                 ASN1_STRING_get0_data(v->value.sequence),
                 (size_t)ASN1_STRING_length(v->value.sequence), &kpn)) != 0) {
            ret = ck_error_set(CK_ERR_DECODE, "id-pkinit-san: %s", ck_error_context());
            goto out;
        }
        grown = realloc(list, (count + 1) * sizeof(*list));
        if (grown == NULL) {
            CK_KRB5_PRINCIPAL_NAME_free(kpn);
            ret = ck_error_set(CK_ERR_NOMEM, "id-pkinit-san: out of memory");
            goto out;
        }
        list = grown;
        ret = principal_from_kpn(kpn, &list[count]);
        CK_KRB5_PRINCIPAL_NAME_free(kpn);
        if (ret != 0)
            goto out;
        count++;
    }
    *out = list;
    *n = count;
    list = NULL;
    count = 0;
out:
    GENERAL_NAMES_free(gens);
    ck_pkinit_principals_free(list, count);
    return ret;
}

int
ck_pkinit_cert_match_principal(X509 *cert, const ck_principal *p)
{
    ck_principal **names = NULL;
    size_t n = 0;
    int ret;

    if (cert == NULL || p == NULL)
        return ck_error_set(CK_ERR_INVAL, "id-pkinit-san: bad arguments");
    if ((ret = ck_pkinit_cert_san_principals(cert, &names, &n)) != 0)
        return ret;
    ret = ck_error_set(CK_ERR_NOTFOUND, "id-pkinit-san: no name matches");
    for (size_t i = 0; i < n; i++) {
        if (ck_principal_equal(names[i], p)) {
            ck_error_clear();
            ret = 0;
            break;
        }
    }
    ck_pkinit_principals_free(names, n);
    return ret;
}

int
ck_pkinit_kdc_cert_match_realm(X509 *cert, const char *realm)
{
    const char *comps[2] = {CK_TGS_NAME, realm};
    ck_principal *tgs = NULL;
    int ret;

    if (cert == NULL || realm == NULL || realm[0] == '\0')
        return ck_error_set(CK_ERR_INVAL, "KDC certificate: bad arguments");
    if ((ret = ck_principal_build(realm, CK_NT_SRV_INST, comps, 2, &tgs)) != 0)
        return ret;
    ret = ck_pkinit_cert_match_principal(cert, tgs);
    if (ret == CK_ERR_NOTFOUND)
        ret = ck_error_set(CK_ERR_NOTFOUND, "KDC certificate does not name krbtgt/%s@%s", realm,
                           realm);
    ck_principal_free(tgs);
    return ret;
}

/* ---- Device identity ---- */

int
ck_pkinit_mac_canonical(const char *text, char out[CK_PKINIT_MAC_TEXT])
{
    return ck_mac_canonical(text, out);
}

int
ck_pkinit_cert_device_mac(X509 *cert, char out[CK_PKINIT_MAC_TEXT])
{
    const X509_NAME *name;
    unsigned char *utf8 = NULL;
    char text[CK_PKINIT_MAC_TEXT];
    int idx, n, ret;

    if (cert == NULL || out == NULL)
        return ck_error_set(CK_ERR_INVAL, "device MAC: bad arguments");
    name = X509_get_subject_name(cert);
    idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0)
        return ck_error_set(CK_ERR_NOTFOUND, "device MAC: subject has no commonName");
    if (X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
        return ck_error_set(CK_ERR_DECODE, "device MAC: subject has several commonNames");
    n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
    if (n < 0) {
        ERR_clear_error();
        return ck_error_set(CK_ERR_DECODE, "device MAC: unreadable commonName");
    }
    if ((size_t)n != CK_PKINIT_MAC_TEXT - 1 || memchr(utf8, '\0', (size_t)n) != NULL) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "device MAC: commonName is not a MAC address");
        goto out;
    }
    memcpy(text, utf8, (size_t)n);
    text[n] = '\0';
    if (ck_pkinit_mac_canonical(text, out) != 0) {
        ret = ck_error_set(CK_ERR_NOTFOUND, "device MAC: commonName is not a MAC address");
        goto out;
    }
    ret = 0;
out:
    OPENSSL_free(utf8);
    return ret;
}

int
ck_pkinit_cert_spki_sha256(X509 *cert, uint8_t out[CK_PKINIT_PIN_LEN])
{
    unsigned char *der = NULL;
    unsigned int mdlen = 0;
    int n, ret = 0;

    if (cert == NULL || out == NULL)
        return ck_error_set(CK_ERR_INVAL, "key pin: bad arguments");
    n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (n <= 0)
        return ck_error_set_ssl(CK_ERR_ENCODE, "key pin: cannot encode the public key");
    if (EVP_Digest(der, (size_t)n, out, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != CK_PKINIT_PIN_LEN)
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "key pin: SHA-256 failed");
    OPENSSL_free(der);
    return ret;
}
