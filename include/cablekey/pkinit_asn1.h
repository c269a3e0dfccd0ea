/* PKINIT (RFC 4556, RFC 8636 algorithm agility, RFC 8070 freshness) and the pk-init draft forms
 * PacketCable MTAs use, as OpenSSL ASN.1 template types. Same conventions as krb5_asn1.h: structs
 * of OpenSSL objects, T_new()/T_free() (NULL ok), validated ck_asn1_<type>_decode()/_encode(),
 * DER from the encoders released with ck_asn1_free_der().
 *
 * PA-PK-AS-REQ and PA-PK-AS-REP are CK_PA_PK_AS_REQ_MSG / CK_PA_PK_AS_REP_MSG because
 * CK_PA_PK_AS_REQ / CK_PA_PK_AS_REP are the padata-type constants (16, 17) in krb5_asn1.h, the
 * same rule as CK_KRB_SAFE_MSG.
 *
 * Representation choices:
 *   - CMS payloads (signedAuthPack, dhSignedData, encKeyPack) and X.509 blobs (kdcPkId,
 *     IssuerAndSerialNumber, subjectName) are ASN1_OCTET_STRING * holding the raw DER, which is
 *     what RFC 4556's IMPLICIT OCTET STRING carries and what d2i_CMS_ContentInfo() /
 *     d2i_X509_NAME() consume. The ASN.1 layer never parses CMS.
 *   - SubjectPublicKeyInfo is X509_PUBKEY * (X509_PUBKEY_get0() gives the EVP_PKEY; MIT's DH
 *     value decodes as type DHX), AlgorithmIdentifier is X509_ALGOR *.
 *   - Nonces are ASN1_INTEGER * read with ck_asn1_nonce_get(): RFC 4556 says 0..2^32-1 but MIT
 *     encodes the PKAuthenticator nonce as a signed Int32 and Heimdal declares it signed, so the
 *     decoders accept -2^31..2^32-1 (as for the KDC-REQ nonce) and refuse anything wider.
 *   - PA-AS-FRESHNESS (type 150) needs no codec: the padata-value IS the opaque token, copied
 *     into PKAuthenticator.freshnessToken by the client.
 *
 * Secrets: CK_REPLY_KEY_PACK and CK_REPLY_KEY_PACK_DRAFT9 hold an EncryptionKey, whose item wipes
 * the key bytes on free (krb5_tmpl.c), so both wipe on free. No type here holds a DH private
 * value: the client's private key stays in an EVP_PKEY (lib/pkinit), only public values and the
 * DH nonces (public, RFC 4556 §3.2.3.1) travel in these structs. The KDF input (OtherInfo,
 * PkinitSuppPubInfo) carries no secret either (Z is passed to the KDF separately).
 *
 * ---------------------------------------------------------------------------------------------
 * The pk-init draft forms (PacketCable compatibility) — what was chosen and why.
 *
 * No PacketCable capture or spec text with the ASN.1 was available (PROTOCOL-NOTES.md §3, §7).
 * Sources read:
 *   [D10] draft-ietf-cat-kerberos-pk-init-10 (the text of -09 with minor changes; Heimdal kept it
 *         in doc/standardisation): PA-PK-AS-REQ (PA type 14) ::= SEQUENCE { signedAuthPack [0]
 *         SignedData, trustedCertifiers [1] SEQUENCE OF TrustedCas OPTIONAL, kdcCert [2]
 *         IssuerAndSerialNumber OPTIONAL, encryptionCert [3] IssuerAndSerialNumber OPTIONAL };
 *         AuthPack ::= SEQUENCE { pkAuthenticator [0], clientPublicValue [1] SPKI OPTIONAL };
 *         PKAuthenticator ::= SEQUENCE { kdcName [0] PrincipalName, kdcRealm [1] Realm,
 *         cusec [2] INTEGER, ctime [3] KerberosTime, nonce [4] INTEGER }.
 *   [WS]  Wireshark epan/dissectors/asn1/pkinit/PKINIT.asn, "based on
 *         draft-ietf-cat-kerberos-pk-init-20" and written to "accommodate BOTH existing users of
 *         early drafts, such as packetcable" (EXPLICIT TAGS): PaPkAsReq { signedAuthPack [0]
 *         ContentInfo, trustedCertifiers [1] SEQUENCE OF TrustedCA OPTIONAL, kdcCert [2]
 *         IssuerAndSerialNumber OPTIONAL }; PKAuthenticator { cusec [0], ctime [1], nonce [2],
 *         paChecksum [3] } with the note that paChecksum "changed during
 *         draft-ietf-cat-kerberos-pk-init* from Checksum to OCTET STRING OPTIONAL";
 *         PaPkAsRep ::= CHOICE { dhSignedData [0] ContentInfo, encKeyPack [1] ContentInfo }.
 *   [H03] Heimdal's 2003 lib/krb5/pkinit.c, the only public PacketCable client code (#ifdef
 *         PACKET_CABLE): fills PKAuthenticator.paChecksum with krb5_create_checksum(RSA-MD5)
 *         over the DER KDC-REQ-BODY (so paChecksum is a Kerberos Checksum {cksumtype,
 *         checksum}), puts a ContentInfo in PA-PK-AS-REQ.signedAuthPack, leaves
 *         trustedCertifiers/kdcCert/encryptionCert absent, sends PA type 14, and adds
 *         PROV-SRV-LOCATION ::= GeneralString as padata type -1.
 *   [MIT] MIT krb5's draft9 support (pkinit_srv.c, asn1_k_encode.c): PA type 14/15 with
 *         signedAuthPack [0] IMPLICIT OCTET STRING (the DER ContentInfo), PKAuthenticator as in
 *         [D10], AuthPack without the draft-20 fields, PA-PK-AS-REP-draft9 ::= CHOICE {
 *         dhSignedData [0] IMPLICIT OCTET STRING, encKeyPack [1] IMPLICIT OCTET STRING },
 *         ReplyKeyPack-draft9 ::= SEQUENCE { replyKey [0] EncryptionKey, nonce [1] INTEGER }.
 * Decisions:
 *   - Two wire forms of the draft PA-PK-AS-REQ and PA-PK-AS-REP are decoded, told apart by the
 *     first tag byte: CK_PKINIT_FORM_IMPLICIT ([MIT]: 0x80/0x81, the DER inside an IMPLICIT
 *     OCTET STRING) and CK_PKINIT_FORM_EXPLICIT ([D10], [WS], [H03] with explicit tagging: 0xA0/
 *     0xA1 wrapping the ContentInfo SEQUENCE; kdcCert/encryptionCert an explicitly tagged
 *     IssuerAndSerialNumber). Both land in the same struct with the raw DER in an OCTET STRING;
 *     `form` records which one was seen so a reply can mirror it, and selects the encoding.
 *     trustedCertifiers is kept as raw TrustedCA entries (the KDC does not act on them).
 *     The Windows 2000 variant (trustedCertifiers [2], kdcCert [3], encryptionCert [4]) is not
 *     a PacketCable form and is not decoded.
 *   - Two draft PKAuthenticators: CK_PK_AUTHENTICATOR_DRAFT9 ([D10]/[MIT]: kdcName, kdcRealm,
 *     cusec, ctime, nonce) and CK_PK_AUTHENTICATOR_PKTC ([H03]/[WS] field order with paChecksum
 *     [3] a Checksum, RSA-MD5 in PacketCable). The PacketCable profile uses the PKTC one; it is
 *     the only one whose request binding (paChecksum over the req-body) makes it safe to accept.
 *     paChecksum is declared OPTIONAL so its absence gets KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED
 *     rather than a decode error.
 *   - CK_AUTH_PACK_DRAFT9 = { [0] PKAuthenticator-draft9, [1] SPKI OPTIONAL };
 *     CK_AUTH_PACK_PKTC = { [0] PKAuthenticator-PKTC, [1] SPKI OPTIONAL, [2] SEQUENCE OF
 *     AlgorithmIdentifier OPTIONAL, [3] OCTET STRING OPTIONAL } ([WS] draft-20 AuthPack).
 */
#ifndef CABLEKEY_PKINIT_ASN1_H
#define CABLEKEY_PKINIT_ASN1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/asn1.h>
#include <openssl/safestack.h>
#include <openssl/x509.h>

#include "cablekey/krb5_asn1.h"

/* ---------------------------------------------------------------------------------------------
 * Limits. Certificate chains make PKINIT messages much larger than other Kerberos messages, so
 * these types have their own input and OCTET STRING caps (the Kerberos types keep
 * CK_ASN1_MAX_MSG / CK_ASN1_MAX_OCTETS; see krb5_asn1.h for the AS-REQ/AS-REP caps).
 */
#define CK_PKINIT_MAX_MSG CK_ASN1_MAX_PKINIT_PADATA /* 256 KiB: PA-PK-AS-REQ / PA-PK-AS-REP
                                                  * input (all forms) = AS padata-value cap */
#define CK_PKINIT_MAX_CMS CK_PKINIT_MAX_MSG /* signedAuthPack, dhSignedData, encKeyPack bytes */
#define CK_PKINIT_MAX_SMALL_MSG 65536     /* AuthPack, KDCDHKeyInfo, ReplyKeyPack, TD-*,
                                           * TYPED-DATA, KRB5PrincipalName, draft AuthPacks */
#define CK_PKINIT_MAX_BLOB 8192           /* their OCTET STRINGs (ids, checksums, freshness
                                           * tokens, kdcPkId, kdcCert, ...); TYPED-DATA values
                                           * and OtherInfo party infos: CK_ASN1_MAX_OCTETS */
/* PkinitSuppPubInfo: a whole AS-REQ plus a whole PA-PK-AS-REP. */
#define CK_PKINIT_MAX_SUPP_PUB (CK_ASN1_MAX_AS_MSG + CK_PKINIT_MAX_MSG + 1024)
#define CK_PKINIT_MAX_IDS 16              /* trustedCertifiers / TD-* principal identifiers */
#define CK_PKINIT_MAX_CMS_TYPES 32        /* supportedCMSTypes, TD-DH-PARAMETERS entries */
#define CK_PKINIT_MAX_KDFS 16             /* supportedKDFs entries */
#define CK_PKINIT_MAX_TYPED_DATA 16       /* TYPED-DATA entries */
#define CK_PKINIT_MAX_DH_NONCE 64         /* DHNonce bytes (RFC 4556 §3.2.3.1: SHOULD be >= 32) */
#define CK_PKINIT_MAX_DH_PUBLIC 2048      /* KDCDHKeyInfo.subjectPublicKey bytes (DH-8192) */

/* ---------------------------------------------------------------------------------------------
 * Constants. Padata types 14/15/16/17/150 and the PKINIT error codes are in krb5_asn1.h
 * (CK_PA_PK_AS_REQ_OLD .. CK_PA_AS_FRESHNESS, CK_KDC_ERR_CLIENT_NOT_TRUSTED ..
 * CK_KDC_ERR_NO_ACCEPTABLE_KDF).
 */
#define CK_PA_PROV_SRV_LOCATION (-1) /* PacketCable: GeneralString naming the provisioning server */

/* TYPED-DATA data-type values (RFC 4556 §3.2.2, pk-init draft -10). */
#define CK_TD_PKINIT_CMS_CERTIFICATES 101
#define CK_TD_KRB_PRINCIPAL 102
#define CK_TD_KRB_REALM 103
#define CK_TD_TRUSTED_CERTIFIERS 104
#define CK_TD_CERTIFICATE_INDEX 105 /* draft name of 105 */
#define CK_TD_INVALID_CERTIFICATES 105
#define CK_TD_DH_PARAMETERS 109

/* Checksum type PacketCable uses for paChecksum (RFC 3961 rsa-md5). */
#define CK_CKSUMTYPE_RSA_MD5 7

/* Draft wire forms (see the top of this file). */
#define CK_PKINIT_FORM_IMPLICIT 0 /* [n] IMPLICIT OCTET STRING with the DER inside */
#define CK_PKINIT_FORM_EXPLICIT 1 /* [n] EXPLICIT ContentInfo / IssuerAndSerialNumber */

/* PKINIT object identifiers. */
typedef enum ck_pkinit_oid {
    CK_OID_PKINIT_AUTH_DATA,      /* 1.3.6.1.5.2.3.1 id-pkinit-authData (SignedData eContentType) */
    CK_OID_PKINIT_DHKEY_DATA,     /* 1.3.6.1.5.2.3.2 id-pkinit-DHKeyData */
    CK_OID_PKINIT_RKEY_DATA,      /* 1.3.6.1.5.2.3.3 id-pkinit-rkeyData */
    CK_OID_PKINIT_KP_CLIENT_AUTH, /* 1.3.6.1.5.2.3.4 id-pkinit-KPClientAuth (EKU) */
    CK_OID_PKINIT_KP_KDC,         /* 1.3.6.1.5.2.3.5 id-pkinit-KPKdc (EKU) */
    CK_OID_PKINIT_SAN,            /* 1.3.6.1.5.2.2   id-pkinit-san (otherName type-id) */
    CK_OID_PKINIT_KDF_SHA1,       /* 1.3.6.1.5.2.3.6.1 id-pkinit-kdf-ah-sha1 */
    CK_OID_PKINIT_KDF_SHA256,     /* 1.3.6.1.5.2.3.6.2 id-pkinit-kdf-ah-sha256 */
    CK_OID_PKINIT_KDF_SHA512,     /* 1.3.6.1.5.2.3.6.3 id-pkinit-kdf-ah-sha512 */
    CK_OID_PKINIT_KDF_SHA384,     /* 1.3.6.1.5.2.3.6.4 id-pkinit-kdf-ah-sha384 */
    CK_OID_PKINIT_COUNT
} ck_pkinit_oid;

/* ---------------------------------------------------------------------------------------------
 * Types (RFC 4556 §3.2, RFC 8636, RFC 8070). Field comments give the context tag.
 */

/* ExternalPrincipalIdentifier ::= SEQUENCE { subjectName [0] IMPLICIT OCTET STRING OPTIONAL,
 *     issuerAndSerialNumber [1] IMPLICIT OCTET STRING OPTIONAL,
 *     subjectKeyIdentifier [2] IMPLICIT OCTET STRING OPTIONAL, ... } */
typedef struct CK_EXTERNAL_PRINCIPAL_IDENTIFIER_st {
    ASN1_OCTET_STRING *subject_name;             /* [0] OPTIONAL: DER Name */
    ASN1_OCTET_STRING *issuer_and_serial_number; /* [1] OPTIONAL: DER IssuerAndSerialNumber */
    ASN1_OCTET_STRING *subject_key_identifier;   /* [2] OPTIONAL: keyIdentifier bytes */
} CK_EXTERNAL_PRINCIPAL_IDENTIFIER;
DEFINE_STACK_OF(CK_EXTERNAL_PRINCIPAL_IDENTIFIER)
/* TD-TRUSTED-CERTIFIERS / TD-INVALID-CERTIFICATES ::= SEQUENCE OF ExternalPrincipalIdentifier */
typedef STACK_OF(CK_EXTERNAL_PRINCIPAL_IDENTIFIER) CK_EXTERNAL_PRINCIPAL_IDENTIFIERS;

/* TD-DH-PARAMETERS ::= SEQUENCE OF AlgorithmIdentifier (also supportedCMSTypes' type) */
typedef STACK_OF(X509_ALGOR) CK_ALGORITHM_IDENTIFIERS;

/* PA-PK-AS-REQ ::= SEQUENCE { signedAuthPack [0] IMPLICIT OCTET STRING,
 *     trustedCertifiers [1] SEQUENCE OF ExternalPrincipalIdentifier OPTIONAL,
 *     kdcPkId [2] IMPLICIT OCTET STRING OPTIONAL, ... } */
typedef struct CK_PA_PK_AS_REQ_st {
    ASN1_OCTET_STRING *signed_auth_pack;  /* [0] DER ContentInfo (SignedData of an AuthPack) */
    CK_EXTERNAL_PRINCIPAL_IDENTIFIERS *trusted_certifiers; /* [1] OPTIONAL */
    ASN1_OCTET_STRING *kdc_pk_id;         /* [2] OPTIONAL: DER SignerIdentifier */
} CK_PA_PK_AS_REQ_MSG;

/* KDFAlgorithmId ::= SEQUENCE { kdf-id [0] OBJECT IDENTIFIER, ... } (RFC 8636) */
typedef struct CK_KDF_ALGORITHM_ID_st {
    ASN1_OBJECT *kdf_id; /* [0] CK_OID_PKINIT_KDF_* */
} CK_KDF_ALGORITHM_ID;
DEFINE_STACK_OF(CK_KDF_ALGORITHM_ID)

/* PAChecksum2 ::= SEQUENCE { checksum [0] OCTET STRING, algorithmIdentifier [1]
 *     AlgorithmIdentifier } (RFC 8636: paChecksum with a negotiated digest) */
typedef struct CK_PA_CHECKSUM2_st {
    ASN1_OCTET_STRING *checksum;      /* [0] */
    X509_ALGOR *algorithm_identifier; /* [1] */
} CK_PA_CHECKSUM2;

/* PKAuthenticator ::= SEQUENCE { cusec [0] INTEGER (0..999999), ctime [1] KerberosTime,
 *     nonce [2] INTEGER (0..4294967295), paChecksum [3] OCTET STRING OPTIONAL, ...,
 *     freshnessToken [4] OCTET STRING OPTIONAL (RFC 8070),
 *     paChecksum2 [5] PAChecksum2 OPTIONAL (RFC 8636) } */
typedef struct CK_PK_AUTHENTICATOR_st {
    int32_t cusec;                      /* [0] 0..999999 */
    ASN1_GENERALIZEDTIME *ctime;        /* [1] */
    ASN1_INTEGER *nonce;                /* [2] = the KDC-REQ-BODY nonce */
    ASN1_OCTET_STRING *pa_checksum;     /* [3] OPTIONAL: SHA-1 of the DER KDC-REQ-BODY */
    ASN1_OCTET_STRING *freshness_token; /* [4] OPTIONAL: a PA-AS-FRESHNESS value */
    CK_PA_CHECKSUM2 *pa_checksum2;      /* [5] OPTIONAL */
} CK_PK_AUTHENTICATOR;

/* AuthPack ::= SEQUENCE { pkAuthenticator [0] PKAuthenticator,
 *     clientPublicValue [1] SubjectPublicKeyInfo OPTIONAL,
 *     supportedCMSTypes [2] SEQUENCE OF AlgorithmIdentifier OPTIONAL,
 *     clientDHNonce [3] DHNonce OPTIONAL, ...,
 *     supportedKDFs [4] SEQUENCE OF KDFAlgorithmId OPTIONAL (RFC 8636) } */
typedef struct CK_AUTH_PACK_st {
    CK_PK_AUTHENTICATOR *pk_authenticator;          /* [0] */
    X509_PUBKEY *client_public_value;               /* [1] OPTIONAL: absent = RSA key transport */
    CK_ALGORITHM_IDENTIFIERS *supported_cms_types;  /* [2] OPTIONAL */
    ASN1_OCTET_STRING *client_dh_nonce;             /* [3] OPTIONAL */
    STACK_OF(CK_KDF_ALGORITHM_ID) *supported_kdfs;  /* [4] OPTIONAL */
} CK_AUTH_PACK;

/* DHRepInfo ::= SEQUENCE { dhSignedData [0] IMPLICIT OCTET STRING,
 *     serverDHNonce [1] DHNonce OPTIONAL, ..., kdf [2] KDFAlgorithmId OPTIONAL (RFC 8636) } */
typedef struct CK_DH_REP_INFO_st {
    ASN1_OCTET_STRING *dh_signed_data;  /* [0] DER ContentInfo (SignedData of a KDCDHKeyInfo) */
    ASN1_OCTET_STRING *server_dh_nonce; /* [1] OPTIONAL */
    CK_KDF_ALGORITHM_ID *kdf;           /* [2] OPTIONAL: absent = octetstring2key */
} CK_DH_REP_INFO;

/* PA-PK-AS-REP ::= CHOICE { dhInfo [0] DHRepInfo, encKeyPack [1] IMPLICIT OCTET STRING, ... } */
#define CK_PA_PK_AS_REP_DH_INFO 0
#define CK_PA_PK_AS_REP_ENC_KEY_PACK 1
typedef struct CK_PA_PK_AS_REP_st {
    int type; /* CK_PA_PK_AS_REP_DH_INFO or CK_PA_PK_AS_REP_ENC_KEY_PACK; -1 after _new() */
    union {
        CK_DH_REP_INFO *dh_info;         /* [0] */
        ASN1_OCTET_STRING *enc_key_pack; /* [1] DER ContentInfo (EnvelopedData) */
    } value;
} CK_PA_PK_AS_REP_MSG;

/* KDCDHKeyInfo ::= SEQUENCE { subjectPublicKey [0] BIT STRING, nonce [1] INTEGER
 *     (0..4294967295), dhKeyExpiration [2] KerberosTime OPTIONAL, ... } */
typedef struct CK_KDC_DH_KEY_INFO_st {
    ASN1_BIT_STRING *subject_public_key;  /* [0] DER INTEGER y (DH) or the EC point (ECDH) */
    ASN1_INTEGER *nonce;                  /* [1] = PKAuthenticator nonce */
    ASN1_GENERALIZEDTIME *dh_key_expiration; /* [2] OPTIONAL */
} CK_KDC_DH_KEY_INFO;

/* ReplyKeyPack ::= SEQUENCE { replyKey [0] EncryptionKey, asChecksum [1] Checksum, ... }
 * Wipes replyKey on free. */
typedef struct CK_REPLY_KEY_PACK_st {
    CK_ENCRYPTION_KEY *reply_key; /* [0] */
    CK_CHECKSUM *as_checksum;     /* [1] over the DER AS-REQ, keyed with reply_key */
} CK_REPLY_KEY_PACK;

/* KRB5PrincipalName ::= SEQUENCE { realm [0] Realm, principalName [1] PrincipalName }
 * (the otherName value under id-pkinit-san) */
typedef struct CK_KRB5_PRINCIPAL_NAME_st {
    ASN1_GENERALSTRING *realm;        /* [0] */
    CK_PRINCIPAL_NAME *principal_name; /* [1] */
} CK_KRB5_PRINCIPAL_NAME;

/* PkinitSuppPubInfo ::= SEQUENCE { enctype [0] Int32, as-REQ [1] OCTET STRING,
 *     pk-as-rep [2] OCTET STRING, ... } (RFC 8636 §5) */
typedef struct CK_PKINIT_SUPP_PUB_INFO_st {
    int32_t enctype;              /* [0] */
    ASN1_OCTET_STRING *as_req;    /* [1] DER AS-REQ as sent */
    ASN1_OCTET_STRING *pk_as_rep; /* [2] DER PA-PK-AS-REP as sent */
} CK_PKINIT_SUPP_PUB_INFO;

/* OtherInfo ::= SEQUENCE { algorithmID AlgorithmIdentifier, partyUInfo [0] OCTET STRING,
 *     partyVInfo [1] OCTET STRING, suppPubInfo [2] OCTET STRING,
 *     suppPrivInfo [3] OCTET STRING OPTIONAL } (RFC 8636 §5, the SP 800-56A "info") */
typedef struct CK_PKINIT_OTHER_INFO_st {
    X509_ALGOR *algorithm_id;          /* KDF OID, parameters absent */
    ASN1_OCTET_STRING *party_u_info;   /* [0] DER KRB5PrincipalName of the client */
    ASN1_OCTET_STRING *party_v_info;   /* [1] DER KRB5PrincipalName of the KDC (TGS) */
    ASN1_OCTET_STRING *supp_pub_info;  /* [2] DER PkinitSuppPubInfo */
    ASN1_OCTET_STRING *supp_priv_info; /* [3] OPTIONAL, unused by PKINIT */
} CK_PKINIT_OTHER_INFO;

/* TYPED-DATA ::= SEQUENCE SIZE (1..MAX) OF SEQUENCE { data-type [0] Int32,
 *     data-value [1] OCTET STRING OPTIONAL } (RFC 4120 §5.9.1; PKINIT errors' e-data) */
typedef struct CK_TYPED_DATA_ENTRY_st {
    int32_t data_type;             /* [0] CK_TD_* */
    ASN1_OCTET_STRING *data_value; /* [1] OPTIONAL */
} CK_TYPED_DATA_ENTRY;
DEFINE_STACK_OF(CK_TYPED_DATA_ENTRY)
typedef STACK_OF(CK_TYPED_DATA_ENTRY) CK_TYPED_DATA;

/* ---- pk-init draft forms (PacketCable); see the comment at the top ------------------------ */

/* PA-PK-AS-REQ (PA type 14) ::= SEQUENCE { signedAuthPack [0], trustedCertifiers [1] SEQUENCE OF
 *     TrustedCA OPTIONAL, kdcCert [2] OPTIONAL, encryptionCert [3] OPTIONAL }, in either form. */
typedef struct CK_PA_PK_AS_REQ_DRAFT9_st {
    ASN1_OCTET_STRING *signed_auth_pack;     /* [0] DER ContentInfo */
    STACK_OF(ASN1_TYPE) *trusted_certifiers; /* [1] OPTIONAL: raw TrustedCA CHOICE values */
    ASN1_OCTET_STRING *kdc_cert;             /* [2] OPTIONAL: DER IssuerAndSerialNumber */
    ASN1_OCTET_STRING *encryption_cert;      /* [3] OPTIONAL: DER IssuerAndSerialNumber */
    int form; /* not a field: CK_PKINIT_FORM_* seen by the decoder / used by the encoder */
} CK_PA_PK_AS_REQ_DRAFT9;

/* PKAuthenticator (draft 9, MIT/Windows) ::= SEQUENCE { kdcName [0] PrincipalName,
 *     kdcRealm [1] Realm, cusec [2] INTEGER, ctime [3] KerberosTime, nonce [4] INTEGER } */
typedef struct CK_PK_AUTHENTICATOR_DRAFT9_st {
    CK_PRINCIPAL_NAME *kdc_name;  /* [0] */
    ASN1_GENERALSTRING *kdc_realm; /* [1] */
    int32_t cusec;                /* [2] 0..999999 */
    ASN1_GENERALIZEDTIME *ctime;  /* [3] */
    ASN1_INTEGER *nonce;          /* [4] */
} CK_PK_AUTHENTICATOR_DRAFT9;

/* AuthPack (draft 9) ::= SEQUENCE { pkAuthenticator [0] PKAuthenticator-draft9,
 *     clientPublicValue [1] SubjectPublicKeyInfo OPTIONAL } */
typedef struct CK_AUTH_PACK_DRAFT9_st {
    CK_PK_AUTHENTICATOR_DRAFT9 *pk_authenticator; /* [0] */
    X509_PUBKEY *client_public_value;             /* [1] OPTIONAL */
} CK_AUTH_PACK_DRAFT9;

/* PKAuthenticator (PacketCable) ::= SEQUENCE { cusec [0] INTEGER, ctime [1] KerberosTime,
 *     nonce [2] INTEGER, paChecksum [3] Checksum } (RSA-MD5 over the DER KDC-REQ-BODY) */
typedef struct CK_PK_AUTHENTICATOR_PKTC_st {
    int32_t cusec;               /* [0] 0..999999 */
    ASN1_GENERALIZEDTIME *ctime; /* [1] */
    ASN1_INTEGER *nonce;         /* [2] */
    CK_CHECKSUM *pa_checksum;    /* [3] OPTIONAL in the decoder; the KDC requires it */
} CK_PK_AUTHENTICATOR_PKTC;

/* AuthPack (PacketCable) ::= SEQUENCE { pkAuthenticator [0] PKAuthenticator-PKTC,
 *     clientPublicValue [1] SPKI OPTIONAL, supportedCMSTypes [2] SEQUENCE OF
 *     AlgorithmIdentifier OPTIONAL, clientDHNonce [3] OCTET STRING OPTIONAL } */
typedef struct CK_AUTH_PACK_PKTC_st {
    CK_PK_AUTHENTICATOR_PKTC *pk_authenticator;    /* [0] */
    X509_PUBKEY *client_public_value;              /* [1] OPTIONAL */
    CK_ALGORITHM_IDENTIFIERS *supported_cms_types; /* [2] OPTIONAL */
    ASN1_OCTET_STRING *client_dh_nonce;            /* [3] OPTIONAL */
} CK_AUTH_PACK_PKTC;

/* PA-PK-AS-REP (draft, PA type 15) ::= CHOICE { dhSignedData [0], encKeyPack [1] }, in either
 * form; both carry a DER ContentInfo. */
#define CK_PA_PK_AS_REP_DRAFT9_DH_SIGNED_DATA 0
#define CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK 1
typedef struct CK_PA_PK_AS_REP_DRAFT9_st {
    int type; /* CK_PA_PK_AS_REP_DRAFT9_*; -1 after _new() */
    union {
        ASN1_OCTET_STRING *dh_signed_data; /* [0] SignedData of a KDCDHKeyInfo */
        ASN1_OCTET_STRING *enc_key_pack;   /* [1] EnvelopedData of a SignedData ReplyKeyPack */
    } value;
    int form; /* not a field: CK_PKINIT_FORM_* */
} CK_PA_PK_AS_REP_DRAFT9;

/* ReplyKeyPack (draft) ::= SEQUENCE { replyKey [0] EncryptionKey, nonce [1] INTEGER }
 * Wipes replyKey on free. */
typedef struct CK_REPLY_KEY_PACK_DRAFT9_st {
    CK_ENCRYPTION_KEY *reply_key; /* [0] */
    ASN1_INTEGER *nonce;          /* [1] = the AS-REQ nonce (client must check it) */
} CK_REPLY_KEY_PACK_DRAFT9;

/* PA-PROV-SRV-LOCATION (padata type -1) ::= GeneralString: recorded, never acted upon. */

DECLARE_ASN1_FUNCTIONS(CK_EXTERNAL_PRINCIPAL_IDENTIFIER)
DECLARE_ASN1_FUNCTIONS(CK_EXTERNAL_PRINCIPAL_IDENTIFIERS)
DECLARE_ASN1_FUNCTIONS(CK_ALGORITHM_IDENTIFIERS)
DECLARE_ASN1_FUNCTIONS(CK_PA_PK_AS_REQ_MSG)
DECLARE_ASN1_FUNCTIONS(CK_KDF_ALGORITHM_ID)
DECLARE_ASN1_FUNCTIONS(CK_PA_CHECKSUM2)
DECLARE_ASN1_FUNCTIONS(CK_PK_AUTHENTICATOR)
DECLARE_ASN1_FUNCTIONS(CK_AUTH_PACK)
DECLARE_ASN1_FUNCTIONS(CK_DH_REP_INFO)
DECLARE_ASN1_FUNCTIONS(CK_PA_PK_AS_REP_MSG)
DECLARE_ASN1_FUNCTIONS(CK_KDC_DH_KEY_INFO)
DECLARE_ASN1_FUNCTIONS(CK_REPLY_KEY_PACK)
DECLARE_ASN1_FUNCTIONS(CK_KRB5_PRINCIPAL_NAME)
DECLARE_ASN1_FUNCTIONS(CK_PKINIT_SUPP_PUB_INFO)
DECLARE_ASN1_FUNCTIONS(CK_PKINIT_OTHER_INFO)
DECLARE_ASN1_FUNCTIONS(CK_TYPED_DATA_ENTRY)
DECLARE_ASN1_FUNCTIONS(CK_TYPED_DATA)
DECLARE_ASN1_FUNCTIONS(CK_PA_PK_AS_REQ_DRAFT9)   /* item of the IMPLICIT form */
DECLARE_ASN1_FUNCTIONS(CK_PK_AUTHENTICATOR_DRAFT9)
DECLARE_ASN1_FUNCTIONS(CK_AUTH_PACK_DRAFT9)
DECLARE_ASN1_FUNCTIONS(CK_PK_AUTHENTICATOR_PKTC)
DECLARE_ASN1_FUNCTIONS(CK_AUTH_PACK_PKTC)
DECLARE_ASN1_FUNCTIONS(CK_PA_PK_AS_REP_DRAFT9)   /* item of the IMPLICIT form */
DECLARE_ASN1_FUNCTIONS(CK_REPLY_KEY_PACK_DRAFT9)

/* ---------------------------------------------------------------------------------------------
 * Validated decode / encode (same contract as krb5_asn1.h: *out set only on success; DER freed
 * with ck_asn1_free_der()). Per-type input limits are given.
 */
CK_ASN1_CODEC_DECL(pa_pk_as_req, CK_PA_PK_AS_REQ_MSG)          /* <= CK_PKINIT_MAX_MSG */
CK_ASN1_CODEC_DECL(auth_pack, CK_AUTH_PACK)                /* <= CK_PKINIT_MAX_SMALL_MSG */
CK_ASN1_CODEC_DECL(pa_pk_as_rep, CK_PA_PK_AS_REP_MSG)          /* <= CK_PKINIT_MAX_MSG */
CK_ASN1_CODEC_DECL(kdc_dh_key_info, CK_KDC_DH_KEY_INFO)    /* <= CK_PKINIT_MAX_SMALL_MSG */
CK_ASN1_CODEC_DECL(reply_key_pack, CK_REPLY_KEY_PACK)      /* <= CK_PKINIT_MAX_SMALL_MSG */
CK_ASN1_CODEC_DECL(krb5_principal_name, CK_KRB5_PRINCIPAL_NAME) /* id-pkinit-san value */
CK_ASN1_CODEC_DECL(pkinit_supp_pub_info, CK_PKINIT_SUPP_PUB_INFO) /* <= CK_PKINIT_MAX_SUPP_PUB */
CK_ASN1_CODEC_DECL(pkinit_other_info, CK_PKINIT_OTHER_INFO)
CK_ASN1_CODEC_DECL(typed_data, CK_TYPED_DATA)              /* KRB-ERROR e-data, >= 1 entry */
CK_ASN1_CODEC_DECL(td_principal_ids, CK_EXTERNAL_PRINCIPAL_IDENTIFIERS) /* TD 104 / 105 */
CK_ASN1_CODEC_DECL(td_dh_parameters, CK_ALGORITHM_IDENTIFIERS)          /* TD 109 */
CK_ASN1_CODEC_DECL(pa_pk_as_req_draft9, CK_PA_PK_AS_REQ_DRAFT9) /* both forms, <= MAX_MSG */
CK_ASN1_CODEC_DECL(auth_pack_draft9, CK_AUTH_PACK_DRAFT9)
CK_ASN1_CODEC_DECL(auth_pack_pktc, CK_AUTH_PACK_PKTC)
CK_ASN1_CODEC_DECL(pa_pk_as_rep_draft9, CK_PA_PK_AS_REP_DRAFT9) /* both forms, <= MAX_MSG */
CK_ASN1_CODEC_DECL(reply_key_pack_draft9, CK_REPLY_KEY_PACK_DRAFT9)
/* PA-PROV-SRV-LOCATION: a GeneralString (no NUL, <= CK_ASN1_MAX_STRING bytes). */
CK_ASN1_CODEC_DECL(prov_srv_location, ASN1_GENERALSTRING)

/* ---------------------------------------------------------------------------------------------
 * Helpers. All return 0 or a negative CK_ERR_* unless stated.
 */

/* OIDs: dotted text, equality test (NULL-safe, false for NULL), and a new ASN1_OBJECT (free
 * with ASN1_OBJECT_free; NULL on bad argument / allocation failure). */
const char *ck_pkinit_oid_text(ck_pkinit_oid oid);
bool ck_pkinit_oid_eq(const ASN1_OBJECT *obj, ck_pkinit_oid oid);
ASN1_OBJECT *ck_pkinit_oid_new(ck_pkinit_oid oid);

/* RFC 8636 KDF identifiers <-> OIDs (the enum is in pkinit_kdf.h). */
int ck_pkinit_kdf_id_set(CK_KDF_ALGORITHM_ID **id, int kdf);
/* The CK_PKINIT_KDF_* of an identifier; CK_ERR_UNSUPPORTED for an unknown OID. */
int ck_pkinit_kdf_id_get(const CK_KDF_ALGORITHM_ID *id, int *kdf);

/* Fills a KRB5PrincipalName from a PrincipalName + realm (deep copies). */
int ck_pkinit_krb5_principal_set(CK_KRB5_PRINCIPAL_NAME *kpn, const CK_PRINCIPAL_NAME *name,
                                 const char *realm);

/* PA-PK-AS-REP CHOICE setters (replace any previous alternative). The DH setter takes ownership
 * of info on success. */
int ck_pkinit_pa_pk_as_rep_set_dh(CK_PA_PK_AS_REP_MSG *rep, CK_DH_REP_INFO *info);
int ck_pkinit_pa_pk_as_rep_set_enc_key_pack(CK_PA_PK_AS_REP_MSG *rep, const uint8_t *der,
                                            size_t len);
int ck_pkinit_pa_pk_as_rep_draft9_set(CK_PA_PK_AS_REP_DRAFT9 *rep, int type, int form,
                                      const uint8_t *der, size_t len);

/* BIT STRING holding whole octets (KDCDHKeyInfo.subjectPublicKey): 0 unused bits, and trailing
 * zero octets kept (OpenSSL would otherwise trim them and change the public value). */
int ck_pkinit_bit_string_set(ASN1_BIT_STRING **bs, const uint8_t *data, size_t len);

/* TYPED-DATA append (allocating *td if NULL; value may be NULL = absent data-value). */
int ck_pkinit_typed_data_add(CK_TYPED_DATA **td, int32_t type, const uint8_t *value, size_t len);
const CK_TYPED_DATA_ENTRY *ck_pkinit_typed_data_find(const CK_TYPED_DATA *td, int32_t type);

#endif
