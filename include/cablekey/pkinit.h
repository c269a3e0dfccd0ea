/* PKINIT cryptographic building blocks (RFC 4556, RFC 5349 and the PacketCable pk-init draft
 * forms), shared by the KDC's PKINIT mechanism and the PKINIT client:
 *   - CMS SignedData sign/verify and EnvelopedData (RSA key transport) envelope/decrypt (cms.c),
 *     with a per-worker cache of decoded certificates (certcache.c);
 *   - finite-field DH (RFC 3526 MODP 2048/3072/4096) and ECDH (P-256, P-384) (dh.c);
 *   - trust anchors, certificate-chain validation with PKINIT EKUs and per-anchor CRLs, and the
 *     certificate-to-name helpers: id-pkinit-san principals, device MAC, key pin (certs.c);
 *   - a cache of verified chains (thumbprint cache, tpcache.c).
 *
 * A KDC's AS exchange, in order: ck_pkinit_cms_verify (signature; certificates from the
 * worker's ck_pkinit_certcache), ck_pkinit_signed_thumbprint + ck_pkinit_tpcache_lookup, on a
 * miss ck_pkinit_verify_chain + ck_pkinit_tpcache_store, then the PacketCable-form check
 * (ck_pkinit_signed_is_packetcable against the anchor's flags), the name mapping
 * (ck_pkinit_cert_match_principal, or ck_pkinit_cert_device_mac + ck_pkinit_cert_spki_sha256
 * against the device table), the key exchange (ck_pkinit_peer_parse + ck_pkinit_dh_kdc_exchange,
 * or ck_pkinit_cms_envelope) and ck_pkinit_cms_sign of the reply.
 * The Kerberos messages around them (AuthPack, KDCDHKeyInfo, ReplyKeyPack) and the KDFs live in
 * include/cablekey/pkinit_asn1.h and lib/pkinit/kdf.c.
 *
 * Conventions: functions return 0 or a negative CK_ERR_* with context (ck_error_context()); the
 * context never holds secrets or peer-chosen bytes. Objects returned through **out belong to the
 * caller. Anchors are read-only once built and may be shared by threads; a DH key, a peer key
 * and a thumbprint cache belong to one thread at a time. Library code never logs. */
#ifndef CABLEKEY_PKINIT_H
#define CABLEKEY_PKINIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/pki.h"
#include "cablekey/principal.h"

/* ---------------------------------------------------------------------------------------------
 * Limits (hostile input is refused with CK_ERR_LIMIT beyond them).
 */
#define CK_PKINIT_CMS_MAX (64 * 1024)     /* DER ContentInfo accepted or produced */
#define CK_PKINIT_CONTENT_MAX (32 * 1024) /* eContent of a SignedData */
#define CK_PKINIT_MAX_CERTS 10            /* certificates carried in one SignedData */
#define CK_PKINIT_MAX_KEY_BITS 8192       /* largest RSA signer/recipient key */
#define CK_PKINIT_SPKI_MAX 4096           /* DER SubjectPublicKeyInfo of a DH/ECDH public value */
#define CK_PKINIT_Z_MAX 512               /* longest shared secret Z (MODP 4096) */
#define CK_PKINIT_MAX_ANCHORS 64          /* trust anchors in one set */

/* ---------------------------------------------------------------------------------------------
 * CMS SignedData (RFC 4556 §3.2.1, §3.2.3; RFC 5652).
 */

/* The eContentType of a PKINIT SignedData. */
typedef enum ck_pkinit_ctype {
    CK_PKINIT_CT_AUTH_DATA = 1,  /* id-pkinit-authData 1.3.6.1.5.2.3.1: the client's AuthPack */
    CK_PKINIT_CT_DHKEY_DATA = 2, /* id-pkinit-DHKeyData 1.3.6.1.5.2.3.2: the KDC's KDCDHKeyInfo */
    CK_PKINIT_CT_RKEY_DATA = 3,  /* id-pkinit-rkeyData 1.3.6.1.5.2.3.3: the KDC's ReplyKeyPack */
} ck_pkinit_ctype;

/* Sign flags. Default (RFC form): digest SHA-256 (SHA-384 for a P-384 key), signed attributes
 * contentType, messageDigest and signingTime, as MIT and Heimdal produce and accept.
 * CK_PKINIT_SIGN_PACKETCABLE (PROTOCOL-NOTES §3.2): SignerInfo version 1 with
 * issuerAndSerialNumber, digestAlgorithm id-sha1, signatureAlgorithm rsaEncryption, no signed
 * attributes (the signature is RSA over SHA-1 of the eContent). Needs an RSA key. */
#define CK_PKINIT_SIGN_PACKETCABLE 0x1

/* Signs content as a SignedData of type ctype with id's key; certificates = id->cert followed by
 * id->chain. *out is the DER ContentInfo; it holds the content in clear, so free it with
 * ck_free_secret(*out, *out_len) when the content is secret (a ReplyKeyPack). */
int ck_pkinit_cms_sign(const ck_pki_identity *id, ck_pkinit_ctype ctype, const uint8_t *content,
                       size_t content_len, unsigned flags, uint8_t **out, size_t *out_len);

/* Verify flags. SHA-256/384/512 (and SHA-224) digests are always accepted; SHA-1 only with
 * CK_PKINIT_VERIFY_ALLOW_SHA1 (pass it when a PacketCable anchor is configured, then refuse the
 * PacketCable form unless the chain ends at such an anchor: ck_pkinit_signed_is_packetcable).
 * MD5 and anything else is always refused. */
#define CK_PKINIT_VERIFY_ALLOW_SHA1 0x1

/* Decoded-certificate cache for ck_pkinit_cms_verify: X509 objects keyed by the SHA-256 of their
 * DER, so the certificates a device presents at every login (its own, its manufacturer CA) are
 * decoded once. OpenSSL 3.0 spends ~150-200 us decoding one certificate's public key, more than
 * the signature check (lib/pkinit/certcache.c). One instance per worker thread (no locks),
 * fixed capacity (rounded up to a power of two, 16 .. 1M), 4-way sets with LRU. */
typedef struct ck_pkinit_certcache ck_pkinit_certcache;

typedef struct ck_pkinit_cache_stats {
    uint64_t hits, misses, stores, evictions;
    size_t capacity, used;
} ck_pkinit_cache_stats;

int ck_pkinit_certcache_new(size_t capacity, ck_pkinit_certcache **out);
void ck_pkinit_certcache_free(ck_pkinit_certcache *c);
void ck_pkinit_certcache_get_stats(const ck_pkinit_certcache *c, ck_pkinit_cache_stats *st);

/* Length of a thumbprint and of the certificate hashes it is made of (SHA-256). */
#define CK_PKINIT_TP_LEN 32

/* What a verified SignedData carried. */
typedef struct ck_pkinit_signed {
    uint8_t *content;       /* eContent bytes (malloc'd; wiped by ck_pkinit_signed_free) */
    size_t content_len;
    X509 *signer;           /* the signer's certificate, = certs[signer_index] */
    STACK_OF(X509) *certs;  /* every certificate carried, in order, signer included */
    uint8_t (*cert_hash)[CK_PKINIT_TP_LEN]; /* SHA-256 of each certificate's DER, as certs */
    size_t signer_index;
    int digest_nid;         /* digestAlgorithm, e.g. NID_sha256, NID_sha1 */
    bool signed_attrs;      /* false: the PacketCable form without signed attributes */
} ck_pkinit_signed;

/* Parses a DER ContentInfo, checks it is a SignedData with eContentType ctype, embedded content,
 * exactly one SignerInfo whose certificate is carried, at most CK_PKINIT_MAX_CERTS certificates
 * (X.509 only; CRLs carried are ignored), an accepted digest; then verifies the signature (and
 * the signed attributes when present). Limits are checked before any certificate is decoded;
 * certificates come from cache (may be NULL). The signer's certificate chain is NOT validated
 * here (ck_pkinit_verify_chain, which can be cached: ck_pkinit_signed_thumbprint).
 * Errors, with the KRB-ERROR a KDC answers:
 *   CK_ERR_LIMIT (input/content size, certificate count) and CK_ERR_DECODE (not a DER/BER
 *     ContentInfo, not SignedData, detached content, undecodable certificate):
 *     KDC_ERR_PREAUTH_FAILED (24)
 *   CK_ERR_PROTO (wrong eContentType, signer count != 1, signer certificate not carried, signer
 *     key too large, a non-X.509 certificate choice): KDC_ERR_PREAUTH_FAILED (24)
 *   CK_ERR_POLICY (digest refused): KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED (80)
 *   CK_ERR_INTEGRITY (signature or messageDigest does not verify): KDC_ERR_INVALID_SIG (64)
 * *out is freed with ck_pkinit_signed_free. */
int ck_pkinit_cms_verify(const uint8_t *der, size_t len, ck_pkinit_ctype ctype, unsigned flags,
                         ck_pkinit_certcache *cache, ck_pkinit_signed **out);
void ck_pkinit_signed_free(ck_pkinit_signed *s);
/* True for the PacketCable draft form: SHA-1 digest or no signed attributes. */
bool ck_pkinit_signed_is_packetcable(const ck_pkinit_signed *s);

/* ---------------------------------------------------------------------------------------------
 * CMS EnvelopedData: RSA key transport replies (RFC 4556 §3.2.3.2).
 */

/* Content-encryption algorithm for the reply given the client's supportedCMSTypes (NULL when
 * the field was absent): AES-256-CBC if the list names no content-encryption algorithm or names
 * any AES-CBC one, des-ede3-cbc if that is the only one it names (MIT 1.20 sends only
 * des-ede3-cbc). Returns NID_aes_256_cbc or NID_des_ede3_cbc. */
int ck_pkinit_cms_pick_cipher(const STACK_OF(X509_ALGOR) *supported_cms_types);

/* Envelope flag: encrypt the whole ContentInfo instead of the bare SignedData, the form of the
 * pk-init drafts (Windows 2000 era; whether PacketCable MTAs expect it is not known). */
#define CK_PKINIT_ENVELOPE_CONTENTINFO 0x1

/* Encrypts inner (the DER ContentInfo of the KDC's SignedData of id-pkinit-rkeyData, from
 * ck_pkinit_cms_sign) to recipient (an RSA certificate; KeyTransRecipientInfo by
 * issuerAndSerialNumber, rsaEncryption) with cipher_nid (NID_aes_256_cbc, NID_aes_128_cbc or
 * NID_des_ede3_cbc), as an EnvelopedData whose encryptedContentInfo type is id-signedData and
 * whose plaintext is the bare SignedData (RFC 4556 §3.2.3.2, as MIT and Heimdal do) or, with
 * CK_PKINIT_ENVELOPE_CONTENTINFO, inner itself. *out is the DER ContentInfo (free()). */
int ck_pkinit_cms_envelope(X509 *recipient, const uint8_t *inner, size_t inner_len,
                           int cipher_nid, unsigned flags, uint8_t **out, size_t *out_len);

/* Client side: decrypts a DER EnvelopedData ContentInfo with id (its key and certificate select
 * the recipient; at most 4 recipients accepted) whose content type is id-signedData, and returns
 * the SignedData as a DER ContentInfo ready for ck_pkinit_cms_verify (a bare SignedData is
 * wrapped, a ContentInfo returned as it is). It carries the reply key: ck_free_secret(*out,
 * *out_len). CK_ERR_DECODE/CK_ERR_LIMIT/CK_ERR_PROTO for malformed or unexpected input,
 * CK_ERR_INTEGRITY when decryption fails. */
int ck_pkinit_cms_decrypt(const ck_pki_identity *id, const uint8_t *der, size_t len,
                          uint8_t **out, size_t *out_len);

/* ---------------------------------------------------------------------------------------------
 * Diffie-Hellman (RFC 4556 §3.2.3.1) and ECDH (RFC 5349).
 *
 * Keys are ephemeral: every exchange generates a new KDC key (see dh.c for the measured cost
 * and why a reused key with serverDHNonce is not offered). Private exponents are short (twice
 * the group's security strength, NIST SP 800-56A r3 §5.6.1.1.4 for safe-prime groups).
 */
typedef enum ck_pkinit_group {
    CK_PKINIT_GROUP_NONE = 0,
    CK_PKINIT_GROUP_MODP2048 = 1, /* RFC 3526 group 14 */
    CK_PKINIT_GROUP_MODP3072 = 2, /* RFC 3526 group 15 */
    CK_PKINIT_GROUP_MODP4096 = 3, /* RFC 3526 group 16 */
    CK_PKINIT_GROUP_P256 = 4,     /* secp256r1 */
    CK_PKINIT_GROUP_P384 = 5,     /* secp384r1 */
} ck_pkinit_group;
#define CK_PKINIT_GROUP_COUNT 5

/* "modp2048", "P-256", ... ("none" for unknown). */
const char *ck_pkinit_group_name(ck_pkinit_group g);
bool ck_pkinit_group_is_ec(ck_pkinit_group g);
/* Strength in finite-field-equivalent bits, the unit of pkinit_dh_min_bits: MODP groups their
 * modulus size, P-256 3072, P-384 7680 (NIST SP 800-57 Part 1 Table 2); 0 for unknown. */
#define CK_PKINIT_DH_MIN_BITS_DEFAULT 2048 /* MIT's pkinit_dh_min_bits default */
unsigned ck_pkinit_group_bits(ck_pkinit_group g);
/* Length of Z for the group: len(p) for MODP, the field size for EC. */
size_t ck_pkinit_group_z_len(ck_pkinit_group g);
/* The group's AlgorithmIdentifier as a peer must send it (dhpublicnumber with DomainParameters
 * p, g, q; id-ecPublicKey with the namedCurve OID), for TD-DH-PARAMETERS. *out is a new
 * X509_ALGOR (free with X509_ALGOR_free). */
int ck_pkinit_group_algorithm(ck_pkinit_group g, X509_ALGOR **out);

/* One side's ephemeral key pair. Freed (and wiped by OpenSSL) with ck_pkinit_dh_free. */
typedef struct ck_pkinit_dh ck_pkinit_dh;
/* A peer's validated public value. */
typedef struct ck_pkinit_peer ck_pkinit_peer;

/* Client: a new key in group g. */
int ck_pkinit_dh_generate(ck_pkinit_group g, ck_pkinit_dh **out);
ck_pkinit_group ck_pkinit_dh_group(const ck_pkinit_dh *dh);
/* Client: DER SubjectPublicKeyInfo of the key (AuthPack.clientPublicValue): an X9.42
 * dhpublicnumber SPKI with p, g, q, or id-ecPublicKey with a named curve. free() *der. */
int ck_pkinit_dh_spki(const ck_pkinit_dh *dh, uint8_t **der, size_t *len);
/* KDC: the value that goes in KDCDHKeyInfo.subjectPublicKey's BIT STRING: for DH the DER
 * INTEGER y (RFC 4556 §3.2.3.1), for ECDH the uncompressed point (RFC 5349 §4). free() *out. */
int ck_pkinit_dh_public_value(const ck_pkinit_dh *dh, uint8_t **out, size_t *len);
void ck_pkinit_dh_free(ck_pkinit_dh *dh);

/* KDC: parses the client's SubjectPublicKeyInfo (DER). The parameters must equal one of our
 * groups exactly (DH: p, g = 2 and q = (p-1)/2 of RFC 3526; EC: a named curve, no explicit
 * parameters) and the public value must pass the checks in dh.c. Errors:
 *   CK_ERR_UNSUPPORTED: not DH/ECDH or not one of our groups, and CK_ERR_POLICY: one of ours
 *     but weaker than min_bits (ck_pkinit_group_bits): both KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED
 *     (65) with TD-DH-PARAMETERS (ck_pkinit_group_algorithm of the groups >= min_bits);
 *   CK_ERR_DECODE / CK_ERR_LIMIT: malformed SPKI; CK_ERR_PROTO: invalid public value (y outside
 *     [2, p-2], point not on the curve): KDC_ERR_PREAUTH_FAILED (24). */
int ck_pkinit_peer_parse(const uint8_t *spki, size_t len, unsigned min_bits,
                         ck_pkinit_peer **out);
/* The same from the two fields of a SubjectPublicKeyInfo decoded without its key (the cheap
 * form: OpenSSL 3.0 spends ~65-150 us decoding the key of an X509_PUBKEY, which these
 * functions never need). */
int ck_pkinit_peer_from_raw(const X509_ALGOR *algorithm, const ASN1_BIT_STRING *public_key,
                            unsigned min_bits, ck_pkinit_peer **out);
/* The same from an X509_PUBKEY (AuthPack.clientPublicValue as the ASN.1 layer holds it today):
 * only its algorithm and raw key bits are read. */
int ck_pkinit_peer_from_pubkey(const X509_PUBKEY *pub, unsigned min_bits, ck_pkinit_peer **out);
ck_pkinit_group ck_pkinit_peer_group(const ck_pkinit_peer *peer);
void ck_pkinit_peer_free(ck_pkinit_peer *peer);

/* KDC: one exchange: a fresh key in the peer's group, its public value (as
 * ck_pkinit_dh_public_value) and the shared secret Z (ck_pkinit_group_z_len bytes: DH Z is
 * left-padded with zeros to len(p), RFC 4556 §3.2.3.1). free() *pub;
 * ck_free_secret(*z, *z_len). */
int ck_pkinit_dh_kdc_exchange(const ck_pkinit_peer *peer, uint8_t **pub, size_t *pub_len,
                              uint8_t **z, size_t *z_len);

/* Client: Z from the KDC's public value (the contents of KDCDHKeyInfo.subjectPublicKey), with
 * the same checks as the KDC applies. ck_free_secret(*z, *z_len). */
int ck_pkinit_dh_client_derive(const ck_pkinit_dh *dh, const uint8_t *kdc_pub, size_t len,
                               uint8_t **z, size_t *z_len);

/* ---------------------------------------------------------------------------------------------
 * Trust anchors and chain validation.
 */

/* Anchor options. PACKETCABLE: chains ending here may use the PacketCable draft forms (SHA-1
 * SignedData without signed attributes, RSA-MD5 paChecksum) and the PacketCable 1.x certificate
 * profile: 1024-bit RSA and SHA-1 certificate signatures, device certificates without an EKU
 * extension. Without it a chain needs 112-bit strength (RSA >= 2048, SHA-256 class signatures). */
#define CK_PKINIT_ANCHOR_PACKETCABLE 0x1

typedef struct ck_pkinit_anchors ck_pkinit_anchors;

int ck_pkinit_anchors_new(ck_pkinit_anchors **out);
/* Adds every certificate of a PEM file as a trust anchor with the given options; crl_path (may
 * be NULL) is a PEM file of CRLs that apply to chains ending at these anchors (MIT's
 * pkinit_revoke, per anchor): the leaf must then be covered by a current CRL of its issuer, and
 * intermediate CAs are checked when a CRL of their issuer is present. An anchor already in the
 * set is CK_ERR_EXISTS. */
int ck_pkinit_anchors_add_file(ck_pkinit_anchors *a, const char *pem_path, unsigned flags,
                               const char *crl_path);
/* The same from memory (certificates and CRLs are up-referenced, not consumed; crls may be
 * NULL). */
int ck_pkinit_anchors_add(ck_pkinit_anchors *a, STACK_OF(X509) *certs, unsigned flags,
                          STACK_OF(X509_CRL) *crls);
size_t ck_pkinit_anchors_count(const ck_pkinit_anchors *a);
/* The i-th anchor certificate (TD-TRUSTED-CERTIFIERS), NULL past the end. */
X509 *ck_pkinit_anchors_get0(const ck_pkinit_anchors *a, size_t i);
/* A process-unique number that changes whenever the set changes: part of the thumbprint, so
 * reloading anchors or CRLs invalidates cached verifications. */
uint64_t ck_pkinit_anchors_generation(const ck_pkinit_anchors *a);
void ck_pkinit_anchors_free(ck_pkinit_anchors *a);

/* Why a chain was refused. */
typedef enum ck_pkinit_cert_reason {
    CK_PKINIT_CERT_OK = 0,
    CK_PKINIT_CERT_UNTRUSTED,          /* no path to a configured trust anchor */
    CK_PKINIT_CERT_BAD_SIGNATURE,      /* a certificate's (or CRL's) signature does not verify */
    CK_PKINIT_CERT_EXPIRED,            /* a certificate is past its notAfter */
    CK_PKINIT_CERT_NOT_YET_VALID,      /* a certificate is before its notBefore */
    CK_PKINIT_CERT_REVOKED,            /* listed in a CRL of the anchor */
    CK_PKINIT_CERT_REVOCATION_UNKNOWN, /* the anchor has CRLs but none current for the leaf */
    CK_PKINIT_CERT_BAD_EKU,            /* leaf lacks the PKINIT EKU for the purpose */
    CK_PKINIT_CERT_WEAK,               /* weak signature digest or key for the anchor's policy */
    CK_PKINIT_CERT_INVALID,            /* other path-validation failure (CA flag, path length...) */
    CK_PKINIT_CERT_INTERNAL,           /* allocation/library failure, not the peer's doing */
} ck_pkinit_cert_reason;

typedef struct ck_pkinit_chain_result {
    ck_pkinit_cert_reason reason;
    int x509_error;        /* the X509_V_ERR_* behind the reason, 0 if none */
    int depth;             /* depth of the certificate concerned (0 = leaf), -1 if none */
    size_t anchor_index;   /* OK: index (ck_pkinit_anchors_get0) of the anchor reached */
    unsigned anchor_flags; /* OK: that anchor's CK_PKINIT_ANCHOR_* options */
    int64_t valid_until;   /* OK: earliest notAfter in the chain (anchor included), or the
                            * CRL nextUpdate when sooner: when the verdict must be redone */
} ck_pkinit_chain_result;

/* Log token ("UNTRUSTED", "EXPIRED", ...). */
const char *ck_pkinit_cert_reason_str(ck_pkinit_cert_reason r);
/* The KRB-ERROR code a KDC answers for a refused client chain (RFC 4556 §3.2.2): UNTRUSTED 70
 * KDC_ERR_CANT_VERIFY_CERTIFICATE, BAD_SIGNATURE 71 KDC_ERR_INVALID_CERTIFICATE, REVOKED 72,
 * REVOCATION_UNKNOWN 73, BAD_EKU 77 KDC_ERR_INCONSISTENT_KEY_PURPOSE, WEAK 78
 * KDC_ERR_DIGEST_IN_CERT_NOT_ACCEPTED, EXPIRED/NOT_YET_VALID/INVALID 62 KDC_ERR_CLIENT_NOT_TRUSTED,
 * INTERNAL 60 KRB_ERR_GENERIC; 0 for OK. */
int ck_pkinit_cert_reason_krb_error(ck_pkinit_cert_reason r);

/* Purposes (EKU required of the leaf) and flags of ck_pkinit_verify_chain. */
#define CK_PKINIT_PURPOSE_CLIENT 0x1 /* id-pkinit-KPClientAuth 1.3.6.1.5.2.3.4 */
#define CK_PKINIT_PURPOSE_KDC 0x2    /* id-pkinit-KPKdc 1.3.6.1.5.2.3.5 */
/* Client purpose: also accept Microsoft smart-card logon 1.3.6.1.4.1.311.20.2.2 (MIT's
 * pkinit_eku_checking = scLogin); off by default as in MIT. */
#define CK_PKINIT_VERIFY_SCLOGIN 0x100

/* Validates leaf against the anchors at time now (seconds since the epoch; the KDC passes its
 * injectable clock), with untrusted (may be NULL; the certificates the peer carried, the leaf
 * may be among them) as candidate intermediates, under X509_PURPOSE_ANY plus our own EKU check
 * for purpose. Returns 0 for a valid chain, CK_ERR_POLICY for a refused one (res->reason says
 * why; context holds OpenSSL's text), another negative code on internal failure (reason
 * INTERNAL). res is always filled. */
int ck_pkinit_verify_chain(const ck_pkinit_anchors *a, X509 *leaf, STACK_OF(X509) *untrusted,
                           int64_t now, unsigned purpose_flags, ck_pkinit_chain_result *res);

/* ---------------------------------------------------------------------------------------------
 * Mapping a certificate to names.
 */

/* Every id-pkinit-san (1.3.6.1.5.2.2) KRB5PrincipalName in cert's subjectAltName, in order
 * (*n may be 0). At most 16; CK_ERR_DECODE if one is malformed. Free with
 * ck_pkinit_principals_free. */
int ck_pkinit_cert_san_principals(X509 *cert, ck_principal ***out, size_t *n);
void ck_pkinit_principals_free(ck_principal **p, size_t n);
/* 0 if one of cert's id-pkinit-san principals equals p (realm and components), CK_ERR_NOTFOUND
 * if none does (KDC_ERR_CLIENT_NAME_MISMATCH 75), CK_ERR_DECODE if the SAN is malformed. */
int ck_pkinit_cert_match_principal(X509 *cert, const ck_principal *p);
/* Client side, after ck_pkinit_verify_chain(..., CK_PKINIT_PURPOSE_KDC, ...): 0 if the KDC
 * certificate names krbtgt/REALM@REALM in id-pkinit-san, CK_ERR_NOTFOUND otherwise. */
int ck_pkinit_kdc_cert_match_realm(X509 *cert, const char *realm);

/* "xx:xx:xx:xx:xx:xx" plus NUL. */
#define CK_PKINIT_MAC_TEXT 18
/* Canonical form (lower-case hex, colons) of a MAC written with ':' or '-' separators in either
 * case; CK_ERR_INVAL for anything else. */
int ck_pkinit_mac_canonical(const char *text, char out[CK_PKINIT_MAC_TEXT]);
/* The device MAC of a PacketCable MTA certificate: the subject's single commonName, which must
 * be a MAC in a form ck_pkinit_mac_canonical accepts. CK_ERR_NOTFOUND if the subject has no
 * commonName or it is not a MAC, CK_ERR_DECODE if it has several. */
int ck_pkinit_cert_device_mac(X509 *cert, char out[CK_PKINIT_MAC_TEXT]);

/* SHA-256 of the DER SubjectPublicKeyInfo: the key pin of a device record (the same for every
 * certificate issued for the key). */
#define CK_PKINIT_PIN_LEN 32
int ck_pkinit_cert_spki_sha256(X509 *cert, uint8_t out[CK_PKINIT_PIN_LEN]);

/* ---------------------------------------------------------------------------------------------
 * Thumbprint cache: "a chain that verified once is not re-verified until it expires or the
 * device record changes" (seed 002). One instance per KDC worker thread (no locks; an instance
 * must not be used by two threads at once). Fixed capacity, 4-way set associative with LRU
 * replacement inside a set; only successful verifications are stored.
 */
typedef struct ck_pkinit_tpcache ck_pkinit_tpcache;

/* The thumbprint: SHA-256 over the anchor-set generation (8 bytes, big-endian), then the
 * SHA-256 of the DER of leaf, then of every certificate of chain (may be NULL) in order. */
int ck_pkinit_thumbprint(X509 *leaf, STACK_OF(X509) *chain, uint64_t anchors_generation,
                         uint8_t out[CK_PKINIT_TP_LEN]);
/* The same for (s->signer, s->certs) from the hashes ck_pkinit_cms_verify computed over the
 * certificates exactly as received (no re-encoding); equals ck_pkinit_thumbprint(s->signer,
 * s->certs, anchors_generation) when they were DER, as CAs issue them (OpenSSL also accepts
 * some non-DER encodings, which re-encode differently). Use this one on the KDC path. */
int ck_pkinit_signed_thumbprint(const ck_pkinit_signed *s, uint64_t anchors_generation,
                                uint8_t out[CK_PKINIT_TP_LEN]);

/* capacity: entries, rounded up to a power of two, 16 .. 1M. */
int ck_pkinit_tpcache_new(size_t capacity, ck_pkinit_tpcache **out);
void ck_pkinit_tpcache_free(ck_pkinit_tpcache *c);
/* Hit (0, *res filled) if tp was stored with record_generation and now < valid_until; otherwise
 * CK_ERR_NOTFOUND (an expired or stale entry is dropped). record_generation is the caller's
 * device-record generation (0 when the client maps through no device record). */
int ck_pkinit_tpcache_lookup(ck_pkinit_tpcache *c, const uint8_t tp[CK_PKINIT_TP_LEN],
                             int64_t now, uint64_t record_generation, ck_pkinit_chain_result *res);
/* Stores a successful result (res->reason must be OK: CK_ERR_INVAL otherwise), valid until
 * res->valid_until; replaces an entry for the same tp. */
int ck_pkinit_tpcache_store(ck_pkinit_tpcache *c, const uint8_t tp[CK_PKINIT_TP_LEN],
                            const ck_pkinit_chain_result *res, uint64_t record_generation);
/* Drops every entry. */
void ck_pkinit_tpcache_clear(ck_pkinit_tpcache *c);

void ck_pkinit_tpcache_get_stats(const ck_pkinit_tpcache *c, ck_pkinit_cache_stats *st);

#endif
