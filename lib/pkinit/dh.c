/* Diffie-Hellman (RFC 4556 §3.2.3.1, RFC 3526 MODP groups 14-16) and ECDH (RFC 5349, P-256 and
 * P-384) for PKINIT, on OpenSSL 3 EVP_PKEY.
 *
 * Groups are matched exactly: a peer's DH parameters must be p, g = 2 and q = (p-1)/2 of one of
 * the RFC 3526 groups (MIT sends an X9.42 dhpublicnumber SPKI with all three), an EC key must
 * name P-256 or P-384 (no explicit curves). The peer key is then rebuilt from our own copy of
 * the group and the peer's public value only, so nothing else the peer sent reaches OpenSSL.
 *
 * Public value checks. For the MODP groups we do the partial validation of NIST SP 800-56A r3
 * §5.6.2.3.2 (2 <= y <= p-2, EVP_PKEY_public_check_quick) and not the full one (y^q mod p = 1,
 * §5.6.2.3.1) that EVP_PKEY_public_check and EVP_PKEY_derive_set_peer's default perform. The
 * RFC 3526 primes are safe primes, p = 2q + 1 with q prime, so the subgroups of Z_p* have order
 * 1, 2, q or 2q: the only small subgroup is {1, p-1}, which the partial check refuses. A y of
 * order 2q can at most reveal the low bit of our exponent, and every KDC key is used for one
 * exchange only, so there is nothing to accumulate across queries (the confinement argument of
 * RFC 7919 §5.1 / SP 800-56A r3 §5.6.2.3.2 for safe-prime groups). The full check costs a
 * 2047-bit exponentiation, ~1.7 ms for MODP 2048 here, 38% of MIT's KDC time per DH exchange;
 * the partial check costs ~1.5 us. EC points get the full check for prime-order curves (on the
 * curve, not the point at infinity, coordinates in range; P-256/P-384 have cofactor 1): OpenSSL
 * refuses an off-curve point when the key is built and the quick check covers the rest.
 *
 * Private exponents are short: OpenSSL generates 2s-bit exponents for the named safe-prime
 * groups (225 bits for MODP 2048), as SP 800-56A r3 §5.6.1.1.4 allows for them (and RFC 7919
 * §5.2 recommends): DH keygen costs ~0.27 ms instead of ~1.7 ms.
 *
 * KDC key reuse (RFC 4556 §3.2.3.1: a KDC may reuse its DH key until dhKeyExpiration, with a
 * serverDHNonce) is not offered. Measured with bench_pkinit_crypto, reuse would save one keygen
 * per exchange (~0.27 ms for MODP 2048, ~0.02 ms for P-256), a fraction of the 2 ms budget that
 * the exchange meets without it, while it would (a) give up forward secrecy for every reply key
 * made during the key's lifetime (stealing the one cached DH private key decrypts them all),
 * (b) drop the request nonce from KDCDHKeyInfo (it is 0 when keys are reused), leaving the
 * binding to clientDHNonce/serverDHNonce, and (c) only apply to clients that send
 * clientDHNonce, which MIT 1.20's kinit does not. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/dh.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/pkinit.h"
#include "cablekey/util.h"

struct group_info {
    const char *name;      /* ours, for logs */
    const char *ossl_name; /* OpenSSL's group name */
    bool ec;
    unsigned bits;         /* finite-field-equivalent strength (MIT's pkinit_dh_min_bits unit) */
    size_t z_len;
    int curve_nid;         /* EC only */
};

/* Indexed by ck_pkinit_group. P-256 and P-384 rate as 3072 and 7680 bits, their
 * finite-field equivalents in NIST SP 800-57 Part 1 Table 2 (128 and 192 bits of security). */
static const struct group_info groups[CK_PKINIT_GROUP_COUNT + 1] = {
    [CK_PKINIT_GROUP_NONE] = {"none", NULL, false, 0, 0, NID_undef},
    [CK_PKINIT_GROUP_MODP2048] = {"modp2048", "modp_2048", false, 2048, 256, NID_undef},
    [CK_PKINIT_GROUP_MODP3072] = {"modp3072", "modp_3072", false, 3072, 384, NID_undef},
    [CK_PKINIT_GROUP_MODP4096] = {"modp4096", "modp_4096", false, 4096, 512, NID_undef},
    [CK_PKINIT_GROUP_P256] = {"P-256", "prime256v1", true, 3072, 32, NID_X9_62_prime256v1},
    [CK_PKINIT_GROUP_P384] = {"P-384", "secp384r1", true, 7680, 48, NID_secp384r1},
};

struct ck_pkinit_dh {
    ck_pkinit_group group;
    EVP_PKEY *key;
};

struct ck_pkinit_peer {
    ck_pkinit_group group;
    EVP_PKEY *key;
};

/* Process-wide domain parameters, built once and only read afterwards: keygen templates (and
 * copies of them hold peer keys), and for the MODP groups the DER DomainParameters a peer's
 * parameters are compared with. */
static pthread_once_t params_once = PTHREAD_ONCE_INIT;
static bool params_ok;
static EVP_PKEY *params[CK_PKINIT_GROUP_COUNT + 1];
static unsigned char *modp_der[CK_PKINIT_GROUP_COUNT + 1]; /* DER DomainParameters {p, g, q} */
static int modp_der_len[CK_PKINIT_GROUP_COUNT + 1];

/* SubjectPublicKeyInfo with the key left undecoded. OpenSSL 3.0 decodes an X509_PUBKEY's key
 * through its provider decoder framework, ~150 us a key, more than the DH exchange it serves
 * (bench_pkinit_crypto): this template stops at the algorithm and the raw key bits, and the key
 * is built from our own group parameters. */
typedef struct {
    X509_ALGOR *algorithm;
    ASN1_BIT_STRING *public_key;
} RAW_SPKI;

ASN1_SEQUENCE(RAW_SPKI) = {
    ASN1_SIMPLE(RAW_SPKI, algorithm, X509_ALGOR),
    ASN1_SIMPLE(RAW_SPKI, public_key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(RAW_SPKI)

static bool
valid_group(ck_pkinit_group g)
{
    return g > CK_PKINIT_GROUP_NONE && g <= CK_PKINIT_GROUP_COUNT;
}

static EVP_PKEY *
params_from_name(const char *type, const char *name)
{
    OSSL_PARAM p[2] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)name,
                                                        0),
                       OSSL_PARAM_construct_end()};
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;

    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_KEY_PARAMETERS, p) <= 0)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static void
params_init(void)
{
    for (int g = 1; g <= CK_PKINIT_GROUP_COUNT; g++) {
        const struct group_info *gi = &groups[g];

        /* DHX so that the client's SPKI is the X9.42 dhpublicnumber form with q. */
        params[g] = params_from_name(gi->ec ? "EC" : "DHX", gi->ossl_name);
        if (params[g] == NULL)
            return;
        if (!gi->ec && (modp_der_len[g] = i2d_KeyParams(params[g], &modp_der[g])) <= 0)
            return;
    }
    ERR_clear_error();
    params_ok = true;
}

static int
params_get(void)
{
    if (pthread_once(&params_once, params_init) != 0 || !params_ok)
        return ck_error_set_ssl(CK_ERR_CRYPTO, "DH: cannot build the group parameters");
    return 0;
}

const char *
ck_pkinit_group_name(ck_pkinit_group g)
{
    return valid_group(g) ? groups[g].name : "none";
}

bool
ck_pkinit_group_is_ec(ck_pkinit_group g)
{
    return valid_group(g) && groups[g].ec;
}

unsigned
ck_pkinit_group_bits(ck_pkinit_group g)
{
    return valid_group(g) ? groups[g].bits : 0;
}

size_t
ck_pkinit_group_z_len(ck_pkinit_group g)
{
    return valid_group(g) ? groups[g].z_len : 0;
}

int
ck_pkinit_group_algorithm(ck_pkinit_group g, X509_ALGOR **out)
{
    X509_ALGOR *alg = NULL;
    ASN1_STRING *seq = NULL;
    int ret;

    if (out == NULL || !valid_group(g))
        return ck_error_set(CK_ERR_INVAL, "DH: no such group");
    *out = NULL;
    if ((ret = params_get()) != 0)
        return ret;
    alg = X509_ALGOR_new();
    if (alg == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "DH: out of memory");
        goto out;
    }
    if (groups[g].ec) {
        if (!X509_ALGOR_set0(alg, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                             OBJ_nid2obj(groups[g].curve_nid))) {
            ret = ck_error_set_ssl(CK_ERR_CRYPTO, "DH: cannot set the algorithm");
            goto out;
        }
    } else {
        /* DomainParameters ::= SEQUENCE { p, g, q } as OpenSSL encodes X9.42 parameters. */
        seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
        if (seq == NULL || !ASN1_STRING_set(seq, modp_der[g], modp_der_len[g])) {
            ret = ck_error_set(CK_ERR_NOMEM, "DH: out of memory");
            goto out;
        }
        if (!X509_ALGOR_set0(alg, OBJ_nid2obj(NID_dhpublicnumber), V_ASN1_SEQUENCE, seq)) {
            ret = ck_error_set_ssl(CK_ERR_CRYPTO, "DH: cannot set the algorithm");
            goto out;
        }
        seq = NULL;
    }
    *out = alg;
    alg = NULL;
    ret = 0;
out:
    ASN1_STRING_free(seq);
    X509_ALGOR_free(alg);
    return ret;
}

/* ---- Key pairs ---- */

static int
keygen(ck_pkinit_group g, EVP_PKEY **out)
{
    EVP_PKEY_CTX *ctx;
    int ret = 0;

    *out = NULL;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, params[g], NULL);
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, out) <= 0)
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "DH: %s key generation failed", groups[g].name);
    EVP_PKEY_CTX_free(ctx);
    return ret;
}

int
ck_pkinit_dh_generate(ck_pkinit_group g, ck_pkinit_dh **out)
{
    ck_pkinit_dh *dh;
    int ret;

    if (out == NULL || !valid_group(g))
        return ck_error_set(CK_ERR_INVAL, "DH: no such group");
    *out = NULL;
    if ((ret = params_get()) != 0)
        return ret;
    dh = calloc(1, sizeof(*dh));
    if (dh == NULL)
        return ck_error_set(CK_ERR_NOMEM, "DH: out of memory");
    dh->group = g;
    if ((ret = keygen(g, &dh->key)) != 0) {
        ck_pkinit_dh_free(dh);
        return ret;
    }
    *out = dh;
    return 0;
}

ck_pkinit_group
ck_pkinit_dh_group(const ck_pkinit_dh *dh)
{
    return dh != NULL ? dh->group : CK_PKINIT_GROUP_NONE;
}

void
ck_pkinit_dh_free(ck_pkinit_dh *dh)
{
    if (dh == NULL)
        return;
    EVP_PKEY_free(dh->key); /* OpenSSL clears the private value */
    free(dh);
}

int
ck_pkinit_dh_spki(const ck_pkinit_dh *dh, uint8_t **der, size_t *len)
{
    unsigned char *d = NULL;
    int n;

    if (dh == NULL || der == NULL || len == NULL)
        return ck_error_set(CK_ERR_INVAL, "DH: bad arguments");
    *der = NULL;
    *len = 0;
    n = i2d_PUBKEY(dh->key, &d);
    if (n <= 0)
        return ck_error_set_ssl(CK_ERR_ENCODE, "DH: cannot encode the public key");
    *der = ck_memdup(d, (size_t)n);
    OPENSSL_free(d);
    if (*der == NULL)
        return ck_error_set(CK_ERR_NOMEM, "DH: out of memory");
    *len = (size_t)n;
    return 0;
}

/* The KDCDHKeyInfo.subjectPublicKey contents: DER INTEGER y, or the uncompressed EC point. */
static int
public_value(ck_pkinit_group g, EVP_PKEY *key, uint8_t **out, size_t *len)
{
    uint8_t buf[1 + 2 * 66];
    BIGNUM *y = NULL;
    ASN1_INTEGER *ai = NULL;
    unsigned char *d = NULL;
    size_t n = 0;
    int ret, dn;

    *out = NULL;
    *len = 0;
    if (groups[g].ec) {
        if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf,
                                            sizeof(buf), &n) != 1 ||
            n != 1 + 2 * groups[g].z_len || buf[0] != 0x04)
            return ck_error_set_ssl(CK_ERR_ENCODE, "ECDH: cannot encode the public point");
        *out = ck_memdup(buf, n);
        if (*out == NULL)
            return ck_error_set(CK_ERR_NOMEM, "ECDH: out of memory");
        *len = n;
        return 0;
    }
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PUB_KEY, &y) != 1 ||
        (ai = BN_to_ASN1_INTEGER(y, NULL)) == NULL || (dn = i2d_ASN1_INTEGER(ai, &d)) <= 0) {
        ret = ck_error_set_ssl(CK_ERR_ENCODE, "DH: cannot encode the public value");
        goto out;
    }
    *out = ck_memdup(d, (size_t)dn);
    if (*out == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "DH: out of memory");
        goto out;
    }
    *len = (size_t)dn;
    ret = 0;
out:
    OPENSSL_free(d);
    ASN1_INTEGER_free(ai);
    BN_free(y);
    return ret;
}

int
ck_pkinit_dh_public_value(const ck_pkinit_dh *dh, uint8_t **out, size_t *len)
{
    if (dh == NULL || out == NULL || len == NULL)
        return ck_error_set(CK_ERR_INVAL, "DH: bad arguments");
    return public_value(dh->group, dh->key, out, len);
}

/* ---- Peer public values ---- */

/* Builds a public key in group g from a public value alone (y, or EC point octets) and checks
 * it (see the top of the file). CK_ERR_PROTO for an invalid value. The key starts as a copy of
 * our group parameters: building the group from its name costs ~20 us for EC, the copy ~7. */
static int
peer_key(ck_pkinit_group g, const BIGNUM *y, const uint8_t *point, size_t point_len,
         EVP_PKEY **out)
{
    uint8_t ybuf[CK_PKINIT_Z_MAX];
    const uint8_t *enc = point;
    size_t enc_len = point_len;
    EVP_PKEY_CTX *cctx = NULL;
    EVP_PKEY *pk = NULL;
    int ret;

    *out = NULL;
    if (y != NULL) {
        /* OpenSSL's DH encoded public key: y big-endian, padded to len(p). */
        enc_len = groups[g].z_len;
        if (BN_bn2binpad(y, ybuf, (int)enc_len) < 0) {
            ret = ck_error_set(CK_ERR_PROTO, "%s: invalid public value", groups[g].name);
            goto out;
        }
        enc = ybuf;
    }
    pk = EVP_PKEY_dup(params[g]);
    if (pk == NULL) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "DH: cannot copy the group");
        goto out;
    }
    /* EC: refuses a point off the curve or with a coordinate out of range. */
    if (EVP_PKEY_set1_encoded_public_key(pk, enc, enc_len) != 1) {
        ret = ck_error_set_ssl(CK_ERR_PROTO, "%s: invalid public value", groups[g].name);
        goto out;
    }
    /* DH: 2 <= y <= p-2. EC: not infinity, on the curve, coordinates in range. */
    cctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (cctx == NULL || EVP_PKEY_public_check_quick(cctx) != 1) {
        ret = ck_error_set_ssl(CK_ERR_PROTO, "%s: invalid public value", groups[g].name);
        goto out;
    }
    *out = pk;
    pk = NULL;
    ret = 0;
out:
    EVP_PKEY_CTX_free(cctx);
    EVP_PKEY_free(pk);
    return ret;
}

/* Which MODP group a dhpublicnumber key's DomainParameters are: byte-for-byte our DER
 * encoding of p, g = 2, q = (p-1)/2 (DER is canonical, so equal values mean equal bytes; MIT and
 * Heimdal send exactly these three fields). */
static int
match_modp(int ptype, const void *pval, ck_pkinit_group *g)
{
    const ASN1_STRING *seq = pval;

    *g = CK_PKINIT_GROUP_NONE;
    if (ptype == V_ASN1_SEQUENCE && seq != NULL) {
        for (int i = 1; i <= CK_PKINIT_GROUP_COUNT; i++) {
            if (!groups[i].ec && ASN1_STRING_length(seq) == modp_der_len[i] &&
                memcmp(ASN1_STRING_get0_data(seq), modp_der[i], (size_t)modp_der_len[i]) == 0) {
                *g = (ck_pkinit_group)i;
                return 0;
            }
        }
    }
    return ck_error_set(CK_ERR_UNSUPPORTED, "DH: parameters are not an RFC 3526 group");
}

static int
curve_group(int ptype, const void *pval, ck_pkinit_group *g)
{
    *g = CK_PKINIT_GROUP_NONE;
    if (ptype != V_ASN1_OBJECT)
        return ck_error_set(CK_ERR_UNSUPPORTED, "ECDH: explicit curve parameters refused");
    switch (OBJ_obj2nid(pval)) {
    case NID_X9_62_prime256v1:
        *g = CK_PKINIT_GROUP_P256;
        return 0;
    case NID_secp384r1:
        *g = CK_PKINIT_GROUP_P384;
        return 0;
    default:
        return ck_error_set(CK_ERR_UNSUPPORTED, "ECDH: curve not supported");
    }
}

/* The DH public value y from the subjectPublicKey bits: a DER INTEGER (RFC 3279 §2.3.3), the
 * same encoding the KDC's value uses. CK_ERR_DECODE unless it is exactly one positive INTEGER. */
static int
dh_y(const uint8_t *bits, size_t len, BIGNUM **y)
{
    const unsigned char *p = bits;
    ASN1_INTEGER *ai;
    int ret = 0;

    *y = NULL;
    ai = d2i_ASN1_INTEGER(NULL, &p, (long)len);
    if (ai == NULL || p != bits + len || ASN1_STRING_type(ai) != V_ASN1_INTEGER)
        ret = ck_error_set(CK_ERR_DECODE, "DH: public value is not a positive INTEGER");
    else if ((*y = ASN1_INTEGER_to_BN(ai, NULL)) == NULL)
        ret = ck_error_set(CK_ERR_NOMEM, "DH: out of memory");
    ASN1_INTEGER_free(ai);
    return ret;
}

/* The common part of both entry points: algorithm, its parameters and the raw key bits. */
static int
peer_from_parts(const X509_ALGOR *alg, const uint8_t *bits, size_t bits_len, unsigned min_bits,
                ck_pkinit_peer **out)
{
    const ASN1_OBJECT *aobj = NULL;
    const void *pval = NULL;
    int ptype = V_ASN1_UNDEF, ret;
    BIGNUM *y = NULL;
    ck_pkinit_group g = CK_PKINIT_GROUP_NONE;
    ck_pkinit_peer *peer = NULL;

    X509_ALGOR_get0(&aobj, &ptype, &pval, alg);
    switch (OBJ_obj2nid(aobj)) {
    case NID_dhpublicnumber:
        if ((ret = match_modp(ptype, pval, &g)) != 0)
            goto out;
        break;
    case NID_X9_62_id_ecPublicKey:
        if ((ret = curve_group(ptype, pval, &g)) != 0)
            goto out;
        break;
    default:
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "DH: key algorithm is neither dhpublicnumber "
                                               "nor id-ecPublicKey");
        goto out;
    }
    if (groups[g].bits < min_bits) {
        ret = ck_error_set(CK_ERR_POLICY, "DH: %s is below the minimum of %u bits",
                           groups[g].name, min_bits);
        goto out;
    }
    if (groups[g].ec) {
        /* Uncompressed (04) or compressed (02/03) only: RFC 5480 §2.2. */
        if (bits_len < 1 || (bits[0] != 0x04 && bits[0] != 0x02 && bits[0] != 0x03)) {
            ret = ck_error_set(CK_ERR_PROTO, "ECDH: bad point encoding");
            goto out;
        }
    } else if ((ret = dh_y(bits, bits_len, &y)) != 0) {
        goto out;
    }
    peer = calloc(1, sizeof(*peer));
    if (peer == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "DH: out of memory");
        goto out;
    }
    peer->group = g;
    if ((ret = peer_key(g, y, bits, bits_len, &peer->key)) != 0)
        goto out;
    *out = peer;
    peer = NULL;
out:
    ERR_clear_error();
    BN_free(y);
    ck_pkinit_peer_free(peer);
    return ret;
}

int
ck_pkinit_peer_parse(const uint8_t *spki, size_t len, unsigned min_bits, ck_pkinit_peer **out)
{
    const unsigned char *p = spki;
    RAW_SPKI *raw = NULL;
    int ret;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "DH: no output");
    *out = NULL;
    if (spki == NULL || len == 0)
        return ck_error_set(CK_ERR_DECODE, "DH: empty public key");
    if (len > CK_PKINIT_SPKI_MAX)
        return ck_error_set(CK_ERR_LIMIT, "DH: public key of %zu bytes exceeds %d", len,
                            CK_PKINIT_SPKI_MAX);
    if ((ret = params_get()) != 0)
        return ret;
    raw = (RAW_SPKI *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(RAW_SPKI));
    if (raw == NULL || p != spki + len) {
        ERR_clear_error();
        ret = ck_error_set(CK_ERR_DECODE, "DH: not a SubjectPublicKeyInfo");
        goto out;
    }
    ret = ck_pkinit_peer_from_raw(raw->algorithm, raw->public_key, min_bits, out);
out:
    ASN1_item_free((ASN1_VALUE *)raw, ASN1_ITEM_rptr(RAW_SPKI));
    return ret;
}

int
ck_pkinit_peer_from_raw(const X509_ALGOR *algorithm, const ASN1_BIT_STRING *public_key,
                        unsigned min_bits, ck_pkinit_peer **out)
{
    int ret;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "DH: no output");
    *out = NULL;
    if (algorithm == NULL || public_key == NULL)
        return ck_error_set(CK_ERR_INVAL, "DH: no public key");
    if ((ret = params_get()) != 0)
        return ret;
    /* Whole octets only (the key is a DER INTEGER or an EC point). */
    if ((public_key->flags & ASN1_STRING_FLAG_BITS_LEFT) && (public_key->flags & 7))
        return ck_error_set(CK_ERR_DECODE, "DH: public key is not a whole number of octets");
    if (ASN1_STRING_length(public_key) > CK_PKINIT_SPKI_MAX)
        return ck_error_set(CK_ERR_LIMIT, "DH: public key of %d bytes",
                            ASN1_STRING_length(public_key));
    return peer_from_parts(algorithm, ASN1_STRING_get0_data(public_key),
                           (size_t)ASN1_STRING_length(public_key), min_bits, out);
}

int
ck_pkinit_peer_from_pubkey(const X509_PUBKEY *pub, unsigned min_bits, ck_pkinit_peer **out)
{
    const unsigned char *bits = NULL;
    int bits_len = 0;
    X509_ALGOR *alg = NULL;
    int ret;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "DH: no output");
    *out = NULL;
    if (pub == NULL)
        return ck_error_set(CK_ERR_INVAL, "DH: no public key");
    if ((ret = params_get()) != 0)
        return ret;
    if (!X509_PUBKEY_get0_param(NULL, &bits, &bits_len, &alg, pub) || alg == NULL ||
        bits_len < 0)
        return ck_error_set(CK_ERR_DECODE, "DH: bad SubjectPublicKeyInfo");
    if ((size_t)bits_len > CK_PKINIT_SPKI_MAX)
        return ck_error_set(CK_ERR_LIMIT, "DH: public key of %d bytes", bits_len);
    return peer_from_parts(alg, bits, (size_t)bits_len, min_bits, out);
}

ck_pkinit_group
ck_pkinit_peer_group(const ck_pkinit_peer *peer)
{
    return peer != NULL ? peer->group : CK_PKINIT_GROUP_NONE;
}

void
ck_pkinit_peer_free(ck_pkinit_peer *peer)
{
    if (peer == NULL)
        return;
    EVP_PKEY_free(peer->key);
    free(peer);
}

/* Z = own x peer. The peer was validated when it was built (peer_key), so the derive does not
 * repeat OpenSSL's full check (validate_peer = 0). DH pads Z to len(p) (RFC 4556 §3.2.3.1); ECDH
 * returns the x coordinate at field length. */
static int
derive(ck_pkinit_group g, EVP_PKEY *own, EVP_PKEY *peer, uint8_t **z, size_t *z_len)
{
    EVP_PKEY_CTX *ctx = NULL;
    size_t want = groups[g].z_len, n = want;
    uint8_t *buf = NULL;
    int ret;

    *z = NULL;
    *z_len = 0;
    buf = malloc(want);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, own, NULL);
    if (buf == NULL || ctx == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "DH: out of memory");
        goto out;
    }
    if (EVP_PKEY_derive_init(ctx) <= 0 || (!groups[g].ec && EVP_PKEY_CTX_set_dh_pad(ctx, 1) <= 0) ||
        EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) <= 0 || EVP_PKEY_derive(ctx, buf, &n) <= 0) {
        ret = ck_error_set_ssl(CK_ERR_CRYPTO, "%s: key agreement failed", groups[g].name);
        goto out;
    }
    if (n != want) {
        ret = ck_error_set(CK_ERR_CRYPTO, "%s: shared secret of %zu bytes, expected %zu",
                           groups[g].name, n, want);
        goto out;
    }
    *z = buf;
    *z_len = n;
    buf = NULL;
    ret = 0;
out:
    ck_free_secret(buf, want);
    EVP_PKEY_CTX_free(ctx);
    return ret;
}

int
ck_pkinit_dh_kdc_exchange(const ck_pkinit_peer *peer, uint8_t **pub, size_t *pub_len,
                          uint8_t **z, size_t *z_len)
{
    EVP_PKEY *own = NULL;
    int ret;

    if (pub == NULL || pub_len == NULL || z == NULL || z_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "DH: no output");
    *pub = *z = NULL;
    *pub_len = *z_len = 0;
    if (peer == NULL || !valid_group(peer->group) || peer->key == NULL)
        return ck_error_set(CK_ERR_INVAL, "DH: no peer");
    if ((ret = params_get()) != 0 || (ret = keygen(peer->group, &own)) != 0)
        return ret;
    if ((ret = derive(peer->group, own, peer->key, z, z_len)) != 0 ||
        (ret = public_value(peer->group, own, pub, pub_len)) != 0) {
        ck_free_secret(*z, *z_len);
        *z = NULL;
        *z_len = 0;
    }
    EVP_PKEY_free(own);
    return ret;
}

int
ck_pkinit_dh_client_derive(const ck_pkinit_dh *dh, const uint8_t *kdc_pub, size_t len,
                           uint8_t **z, size_t *z_len)
{
    BIGNUM *y = NULL;
    EVP_PKEY *peer = NULL;
    ck_pkinit_group g;
    int ret;

    if (z == NULL || z_len == NULL)
        return ck_error_set(CK_ERR_INVAL, "DH: no output");
    *z = NULL;
    *z_len = 0;
    if (dh == NULL || kdc_pub == NULL || len == 0)
        return ck_error_set(CK_ERR_INVAL, "DH: bad arguments");
    g = dh->group;
    if (len > CK_PKINIT_SPKI_MAX)
        return ck_error_set(CK_ERR_LIMIT, "DH: KDC public value of %zu bytes", len);
    if (!groups[g].ec) {
        if ((ret = dh_y(kdc_pub, len, &y)) != 0)
            goto out;
    } else if (kdc_pub[0] != 0x04 && kdc_pub[0] != 0x02 && kdc_pub[0] != 0x03) {
        ret = ck_error_set(CK_ERR_PROTO, "ECDH: bad point encoding");
        goto out;
    }
    if ((ret = peer_key(g, y, kdc_pub, len, &peer)) != 0)
        goto out;
    ret = derive(g, dh->key, peer, z, z_len);
out:
    ERR_clear_error();
    EVP_PKEY_free(peer);
    BN_free(y);
    return ret;
}
