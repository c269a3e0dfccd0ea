/* X.509 identities (a private key, its certificate and the chain above it) as the KDC, the PKINIT
 * client and the operator CLI load them: PKCS#12 files (the operator's format) or PEM pairs.
 * Implemented in lib/pki/. */
#ifndef CABLEKEY_PKI_H
#define CABLEKEY_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cablekey/principal.h"

typedef struct ck_pki_identity {
    EVP_PKEY *key;          /* the private key */
    X509 *cert;             /* the end-entity certificate matching key */
    STACK_OF(X509) *chain;  /* intermediate CAs above cert, nearest first; may be empty, never NULL */
} ck_pki_identity;

/* Loads an identity. spec is "FILE.p12" / "PKCS12:FILE" (password protects the PKCS#12) or
 * "FILE:cert.pem,key.pem" / "cert.pem,key.pem" (password, if not NULL, decrypts the PEM key).
 * The key must match the certificate. Wrong password, unreadable file or mismatch: a negative
 * CK_ERR_* with context; nothing secret in the message. */
int ck_pki_identity_load(const char *spec, const char *password, ck_pki_identity **out);
/* Frees everything (the private key is freed by OpenSSL, which wipes it); accepts NULL. */
void ck_pki_identity_free(ck_pki_identity *id);

/* Reads a password file: the first line without its newline (and a CR before it), at most 1023
 * bytes, not empty, no NUL; the file must be a regular file that others cannot access (mode & 007
 * == 0: a password anyone can read protects nothing; CK_ERR_PERM). *out is freed with
 * ck_pki_password_free (wipes). */
int ck_pki_password_read(const char *path, char **out);
void ck_pki_password_free(char *password);

/* Loads every certificate of a PEM file (trust anchors): at least one, at most 64. */
int ck_pki_certs_load_pem(const char *path, STACK_OF(X509) **out);

/* ---------------------------------------------------------------------------------------------
 * Everything below was added for the operator CLI (`cablekey pki`) and the provisioning server,
 * which issue certificates as a library. */

/* Limits on what is read. A PKCS#12 or PEM file larger than CK_PKI_MAX_FILE is refused; so is a
 * PKCS#12 whose MAC or encryption asks for more than CK_PKI_MAX_ITER PBKDF iterations (a hostile
 * file must not keep a KDC busy at startup). */
#define CK_PKI_MAX_FILE (1024 * 1024)
#define CK_PKI_PASSWORD_MAX 1023
#define CK_PKI_MAX_ANCHORS 64
#define CK_PKI_MAX_CHAIN 16
#define CK_PKI_MAX_ITER 10000000
#define CK_PKI_MAX_SAN_DER 4096

/* A PKCS#12 held in memory (as the provisioning server receives it). Checks the iteration counts,
 * requires and verifies the MAC (PKCS12_verify_mac) before PKCS12_parse; a wrong password is
 * CK_ERR_INTEGRITY. The chain is ordered nearest issuer first. */
int ck_pki_identity_from_p12(const uint8_t *der, size_t len, const char *password,
                             ck_pki_identity **out);
/* Builds an identity from parts (takes references, the caller keeps its own); checks that key
 * matches cert. chain may be NULL. */
int ck_pki_identity_new(EVP_PKEY *key, X509 *cert, STACK_OF(X509) *chain,
                        ck_pki_identity **out);

/* Loads a private key from a PEM file (PKCS#8, encrypted or not, or a traditional key). password
 * NULL: an encrypted key is refused (never prompts). */
int ck_pki_key_load_pem(const char *path, const char *password, EVP_PKEY **out);

/* Key types for new keys. Names: "rsa" / "rsa-2048" (default), "rsa-3072", "ec-p256",
 * "ec-p384". */
typedef enum ck_pki_key_type {
    CK_PKI_KEY_RSA_2048 = 0,
    CK_PKI_KEY_RSA_3072,
    CK_PKI_KEY_EC_P256,
    CK_PKI_KEY_EC_P384,
} ck_pki_key_type;

int ck_pki_key_type_parse(const char *name, ck_pki_key_type *out);
const char *ck_pki_key_type_name(ck_pki_key_type type);
int ck_pki_key_generate(ck_pki_key_type type, EVP_PKEY **out);

/* What a certificate is for; each profile fixes basicConstraints, keyUsage and
 * extendedKeyUsage (see docs/cablekey.md "pki"):
 *   ROOT_CA    self-signed, CA:TRUE (critical), keyCertSign+cRLSign
 *   CA         CA:TRUE with pathlen, keyCertSign+cRLSign
 *   KDC        id-pkinit-KPKdc, id-pkinit-san (spec->principal: krbtgt/REALM@REALM)
 *   CLIENT     id-pkinit-KPClientAuth + clientAuth, id-pkinit-san (spec->principal)
 *   DEVICE     an MTA: CN is the MAC address; id-pkinit-KPClientAuth (PKINIT is how it logs in)
 *   SERVER     TLS server: serverAuth, SAN dNSName (spec->dns_names)
 *   SIGNALING  signaling controller (CMS): serverAuth+clientAuth+ipsecIKE, SAN dNSName if any
 * End-entity keyUsage is digitalSignature, plus keyEncipherment for RSA keys (RSA key transport
 * and TLS RSA key exchange encrypt to them). */
typedef enum ck_pki_profile {
    CK_PKI_PROFILE_ROOT_CA = 0,
    CK_PKI_PROFILE_CA,
    CK_PKI_PROFILE_KDC,
    CK_PKI_PROFILE_CLIENT,
    CK_PKI_PROFILE_DEVICE,
    CK_PKI_PROFILE_SERVER,
    CK_PKI_PROFILE_SIGNALING,
    CK_PKI_PROFILE_OPERATOR_DEVICE, /* an MTA's operator certificate (issue 10): CN = MAC,
                                     * id-pkinit-KPClientAuth + clientAuth, the phone-ID
                                     * extension (spec->phone_ids); see ck_pki_operator_issue */
} ck_pki_profile;

#define CK_PKI_MAX_DNS_NAMES 16

typedef struct ck_pki_cert_spec {
    ck_pki_profile profile;
    const char *country;       /* C= (2 letters) or NULL */
    const char *org;           /* O= (required) */
    const char *org_unit;      /* OU= or NULL (the CLI uses "PacketCable") */
    const char *common_name;   /* CN= (required) */
    const char *principal;     /* id-pkinit-san "name@REALM" (KDC, CLIENT: required) or NULL */
    const char *const *dns_names; /* SAN dNSName entries (SERVER: at least one) */
    size_t n_dns_names;
    int path_len;              /* CAs: pathLenConstraint, -1 for none */
    int64_t not_before;        /* validity, epoch seconds; not_after is clamped to the issuer's */
    int64_t not_after;
    const uint8_t (*phone_ids)[32]; /* OPERATOR_DEVICE: the phone IDs (ck_pki_phone_id) */
    size_t n_phone_ids;             /* 0..CK_PKI_MAX_PHONE_IDS */
    /* Optional: subject_key's SubjectPublicKeyInfo as another certificate holds it (the
     * manufacturer certificate of an operator certificate), copied as it is instead of
     * re-encoding subject_key (OpenSSL 3's encoder + decoder round trip: ~40 % of a P-256
     * operator certificate's cost). The caller vouches that it is subject_key's. With a
     * subject_key of NULL (issued certificates only, not a self-signed root) it is the key:
     * nothing decodes it, and keyUsage's keyEncipherment follows its algorithm (rsaEncryption). */
    const X509_PUBKEY *spki;
} ck_pki_cert_spec;

/* Issues a certificate for subject_key (its public half) signed by issuer_key; issuer NULL makes a
 * self-signed certificate (ROOT_CA only, issuer_key must be subject_key). subject_key may be NULL
 * when spec->spki is given and issuer is not NULL. Serial: 128 random bits.
 * Extensions: the profile's, subjectKeyIdentifier, authorityKeyIdentifier (keyid). Signature
 * sha256WithRSAEncryption / ecdsa-with-SHA256 (SHA-384 for P-384 issuers). */
int ck_pki_cert_issue(const ck_pki_cert_spec *spec, EVP_PKEY *subject_key, X509 *issuer,
                      EVP_PKEY *issuer_key, X509 **out);

/* id-pkinit-san (RFC 4556 §3.2.2): KRB5PrincipalName ::= SEQUENCE { realm [0] Realm,
 * principalName [1] PrincipalName }, the otherName value. encode: *der is OPENSSL_malloc'd.
 * decode: strict DER (re-encodes and compares), at most CK_PKI_MAX_SAN_DER bytes. */
int ck_pki_san_principal_encode(const ck_principal *p, uint8_t **der, size_t *len);
int ck_pki_san_principal_decode(const uint8_t *der, size_t len, ck_principal **out);
/* The id-pkinit-san principals of a certificate, in order; *n may be 0. Malformed SAN entries are
 * CK_ERR_DECODE. Free each with ck_principal_free. */
int ck_pki_cert_san_principals(X509 *cert, ck_principal **out, size_t max, size_t *n);

/* MAC addresses as PacketCable writes them in a device certificate's CN: "xx:xx:xx:xx:xx:xx"
 * (lower case). parse accepts the project's one MAC syntax (ck_mac_parse in util.h) and refuses
 * group (multicast) and all-zero addresses. */
#define CK_PKI_MAC_TEXT 18
int ck_pki_mac_parse(const char *text, uint8_t mac[6]);
void ck_pki_mac_format(const uint8_t mac[6], char out[CK_PKI_MAC_TEXT]);
/* The MAC address in a device certificate's subject CN (exactly one CN, in the form above or
 * upper case). CK_ERR_NOTFOUND if the CN is not a MAC address. */
int ck_pki_cert_device_mac(X509 *cert, uint8_t mac[6]);
/* The same, from a subject name (what ck_pki_operator_issue_der has without an X509). */
int ck_pki_name_device_mac(const X509_NAME *name, uint8_t mac[6]);

/* SHA-256 of the DER SubjectPublicKeyInfo (what a device record pins). */
int ck_pki_spki_sha256(X509 *cert, uint8_t out[32]);

/* Writing. Files are written through a temporary file in the same directory with mode 0600,
 * fsync'd and renamed into place; without CK_PKI_WRITE_REPLACE an existing file is
 * CK_ERR_EXISTS (and is left alone). */
#define CK_PKI_WRITE_REPLACE 0x1
/* PKCS#12 default: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for key and certificates, SHA-256
 * MAC. LEGACY: pbeWithSHAAnd3-KeyTripleDES-CBC and a SHA-1 MAC, the only encryption Heimdal's
 * hx509 and old devices read. */
#define CK_PKI_P12_LEGACY 0x2
#define CK_PKI_P12_ITER 100000
#define CK_PKI_P12_LEGACY_ITER 2048

int ck_pki_file_write(const char *path, const void *data, size_t len, unsigned flags);
/* The PKCS#12 of an identity (key, certificate, chain) with friendlyName name (may be NULL).
 * flags: CK_PKI_P12_LEGACY. *der is OPENSSL_malloc'd; free with OPENSSL_free. */
int ck_pki_p12_encode(const ck_pki_identity *id, const char *password, const char *name,
                      unsigned flags, uint8_t **der, size_t *len);
/* flags: CK_PKI_P12_LEGACY, CK_PKI_WRITE_REPLACE. */
int ck_pki_p12_write(const char *path, const ck_pki_identity *id, const char *password,
                     const char *name, unsigned flags);
/* PEM certificate file: cert followed by more (may be NULL). */
int ck_pki_certs_write_pem(const char *path, X509 *cert, STACK_OF(X509) *more, unsigned flags);
/* PEM private key: PKCS#8, encrypted (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC) unless password
 * is NULL. With CK_PKI_PEM_TRADITIONAL, the pre-PKCS#8 form ("RSA PRIVATE KEY" with
 * Proc-Type/DEK-Info, AES-256-CBC): the only encrypted key Heimdal's hx509 reads. Its password
 * KDF is OpenSSL's EVP_BytesToKey (one MD5 round), far weaker than PBKDF2. */
#define CK_PKI_PEM_TRADITIONAL 0x4
int ck_pki_key_write_pem(const char *path, EVP_PKEY *key, const char *password, unsigned flags);

/* ---------------------------------------------------------------------------------------------
 * Operator device certificates and phone IDs (issue 10, cablekey-prov; docs/cablekey.md "pki").
 *
 * The provisioning CA (pki init's prov-ca, under sp-root) certifies the SAME public key the
 * manufacturer certified, with subject C/O/OU copied from the provisioning CA and CN = the MAC
 * ("xx:xx:xx:xx:xx:xx", as the manufacturer writes it), EKU id-pkinit-KPClientAuth + clientAuth,
 * and the non-critical extension
 *     id-cablekey-phone-ids OBJECT IDENTIFIER ::= { 2 25 178893561123004519330412342127154437651 }
 *     PhoneIds ::= SEQUENCE SIZE (0..8) OF OCTET STRING (SIZE (32))
 * Each phone ID is HMAC-SHA-256(phone-ID key, "cablekey phone-id v1" || number digits): a keyed
 * one-way function, so the certificate never reveals the number (an unkeyed hash of a 10-digit
 * number is reversed by trying them all) while the operator, who holds the key, can match a
 * number to a certificate. */
#define CK_PKI_PHONE_IDS_OID "2.25.178893561123004519330412342127154437651"
#define CK_PKI_PHONE_ID_LEN 32
#define CK_PKI_PHONE_ID_KEY_LEN 32
#define CK_PKI_MAX_PHONE_IDS 8
#define CK_PKI_NUMBER_MAX 15 /* E.164 digits, no '+' */

/* The phone ID of number (1..CK_PKI_NUMBER_MAX ASCII digits; anything else CK_ERR_INVAL). */
int ck_pki_phone_id(const uint8_t key[CK_PKI_PHONE_ID_KEY_LEN], const char *number,
                    uint8_t out[CK_PKI_PHONE_ID_LEN]);
/* The phone-ID key file: exactly CK_PKI_PHONE_ID_KEY_LEN bytes, a regular file of this user that
 * group and others cannot access (CK_ERR_PERM). create: CK_PKI_PHONE_ID_KEY_LEN random bytes, mode
 * 0600, exclusive (an existing file is CK_ERR_EXISTS and is left alone), fsync'd. */
int ck_pki_phone_id_key_load(const char *path, uint8_t key[CK_PKI_PHONE_ID_KEY_LEN]);
int ck_pki_phone_id_key_create(const char *path);

/* Issues the operator certificate of the device certified by mfg_cert (its key, its MAC): checks
 * that mfg_cert's CN is a MAC equal to mac (CK_ERR_POLICY otherwise), then ck_pki_cert_issue with
 * the OPERATOR_DEVICE profile, signed by issuer/issuer_key (the provisioning CA). */
int ck_pki_operator_issue(X509 *mfg_cert, const uint8_t mac[6],
                          const uint8_t (*phone_ids)[CK_PKI_PHONE_ID_LEN], size_t n_phone_ids,
                          int64_t not_before, int64_t not_after, X509 *issuer,
                          EVP_PKEY *issuer_key, X509 **out);
/* The same certificate from the manufacturer certificate's DER (mfg_len bytes, exactly one
 * certificate: trailing bytes are CK_ERR_DECODE; more than CK_PKI_MAX_FILE CK_ERR_LIMIT), without
 * decoding its public key: the SubjectPublicKeyInfo is copied as it is. Only rsaEncryption and
 * id-ecPublicKey with a named curve are accepted (another algorithm or explicit EC parameters:
 * CK_ERR_POLICY). What the signer uses: OpenSSL 3's d2i_X509 decodes the key through the
 * provider decoders, most of the cost of an issue. Nothing here verifies the manufacturer's
 * signature or the key (the caller admitted the certificate; see operator.c). */
int ck_pki_operator_issue_der(const uint8_t *mfg_der, size_t mfg_len, const uint8_t mac[6],
                              const uint8_t (*phone_ids)[CK_PKI_PHONE_ID_LEN],
                              size_t n_phone_ids, int64_t not_before, int64_t not_after,
                              X509 *issuer, EVP_PKEY *issuer_key, X509 **out);
/* The phone IDs of a certificate's id-cablekey-phone-ids extension, in order. No extension:
 * CK_ERR_NOTFOUND; a malformed one (not strict DER, an ID not 32 bytes, more than max):
 * CK_ERR_DECODE / CK_ERR_LIMIT. */
int ck_pki_cert_phone_ids(X509 *cert, uint8_t (*ids)[CK_PKI_PHONE_ID_LEN], size_t max,
                          size_t *n);

#endif
