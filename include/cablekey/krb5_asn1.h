/* Kerberos V5 (RFC 4120 §5, Appendix A) messages as OpenSSL ASN.1 template types.
 *
 * Every wire type is a struct of OpenSSL ASN.1 objects, named after the RFC with CK_ prefixes and
 * snake_case fields. Conventions:
 *   - Mandatory Int32 fields are plain int32_t members (embedded INT32).
 *   - OPTIONAL Int32/UInt32/Microseconds fields are pointers (NULL = absent); set them with
 *     ck_asn1_int32_set()/ck_asn1_uint32_set(), read with ck_asn1_int32_get()/ck_asn1_uint32_get().
 *   - KerberosString and Realm are ASN1_GENERALSTRING *; after a validated decode they contain no
 *     NUL byte and are NUL-terminated, so ck_asn1_kstring_get() returns a usable C string.
 *   - KerberosTime is ASN1_GENERALIZEDTIME *, always exactly "YYYYMMDDHHMMSSZ" after a validated
 *     decode; convert with ck_asn1_time_get()/ck_asn1_time_set().
 *   - KDCOptions/TicketFlags/APOptions are ASN1_BIT_STRING *; use ck_asn1_flags_get()/_set() with
 *     the CK_KDC_OPT_*, CK_TKT_FLG_*, CK_AP_OPT_* masks (always 32 bits, 0 unused bits on the wire).
 *   - Nonces and sequence numbers are ASN1_INTEGER * so the client's encoding can be echoed
 *     (MIT refuses a 5-byte positive UInt32; see LIBRARIES.md §1): ck_asn1_nonce_get/_set/_copy.
 *   - SEQUENCE OF types are OpenSSL stacks: STACK_OF(CK_PA_DATA) etc.
 *   - T_new() pre-allocates every MANDATORY pointer field (sub-SEQUENCEs, stacks, strings,
 *     times, BIT STRINGs, INTEGERs) and leaves OPTIONAL ones NULL. Fill mandatory ones in place
 *     (the T ** setters below reuse an existing object) or free them before replacing.
 *   - KRB-SAFE, KRB-PRIV and KRB-ERROR are CK_KRB_SAFE_MSG, CK_KRB_PRIV_MSG, CK_KRB_ERROR_MSG
 *     because CK_KRB_SAFE/CK_KRB_PRIV/CK_KRB_ERROR are the message-type constants (20, 21, 30).
 *
 * Decoding: use ck_asn1_<type>_decode(), never the raw d2i_* functions. The decoders pre-scan the
 * TLV structure (DER only: definite and minimal lengths, no constructed encoding of a universal
 * string/primitive type, low-form tags; depth <= CK_ASN1_MAX_DEPTH, no trailing bytes, input
 * within the type's cap), run the template decoder, then validate every field against the limits
 * below (times, string contents, counts, nonce range, pvno/msg-type). Any problem returns
 * CK_ERR_DECODE with a context naming the field. Oversized input returns CK_ERR_DECODE as well.
 *
 * Encoding: ck_asn1_<type>_encode() validates the same rules (CK_ERR_ENCODE on violation), and
 * returns DER in a buffer allocated with OPENSSL_malloc; release it with ck_asn1_free_der(), which
 * wipes it first (encrypted-part plaintexts contain keys).
 *
 * Secrets: CK_ENCRYPTION_KEY_free() wipes the key value, so every type that contains an
 * EncryptionKey (EncKDCRepPart, EncTicketPart, Authenticator, EncAPRepPart, ...) wipes on free.
 */
#ifndef CABLEKEY_KRB5_ASN1_H
#define CABLEKEY_KRB5_ASN1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/asn1.h>
#include <openssl/safestack.h>

/* ---------------------------------------------------------------------------------------------
 * Limits enforced by the validated decoders (and encoders).
 */
#define CK_ASN1_MAX_MSG 65536 /* whole input to a *_decode, unless the type says otherwise */
#define CK_ASN1_MAX_DEPTH 24          /* nesting of constructed TLVs (Kerberos needs ~14) */
#define CK_ASN1_MAX_STRING 1024       /* KerberosString / Realm bytes */
#define CK_ASN1_MAX_OCTETS 32768   /* OCTET STRING bytes, unless the type says otherwise */
/* AS-REQ and AS-REP carry PKINIT padata (PA-PK-AS-REQ/-REP with certificate chains), so they
 * have their own caps: a padata-value up to CK_ASN1_MAX_PKINIT_PADATA and the whole message up
 * to CK_ASN1_MAX_AS_MSG. Their other OCTET STRINGs keep CK_ASN1_MAX_OCTETS; every other type
 * (TGS-REQ/REP, AP-REQ, KRB-ERROR, METHOD-DATA, ...) keeps CK_ASN1_MAX_MSG/CK_ASN1_MAX_OCTETS.
 * The PKINIT types have their own limits in pkinit_asn1.h. */
#define CK_ASN1_MAX_PKINIT_PADATA (256 * 1024)
#define CK_ASN1_MAX_AS_MSG (CK_ASN1_MAX_PKINIT_PADATA + 65536)
/* Hard cap of the OCTET STRING setters (the largest value any encoder accepts). */
#define CK_ASN1_MAX_ANY_OCTETS CK_ASN1_MAX_AS_MSG
#define CK_ASN1_MAX_COMPONENTS 16     /* PrincipalName name-string entries */
#define CK_ASN1_MAX_ETYPES 64         /* KDC-REQ-BODY etype entries */
#define CK_ASN1_MAX_PADATA 32         /* METHOD-DATA / padata entries */
#define CK_ASN1_MAX_ADDRESSES 64      /* HostAddresses entries */
#define CK_ASN1_MAX_AD 64             /* AuthorizationData entries */
#define CK_ASN1_MAX_TICKETS 8         /* additional-tickets entries */
#define CK_ASN1_MAX_LAST_REQ 16       /* LastReq entries */
#define CK_ASN1_MAX_ETYPE_INFO 64     /* ETYPE-INFO2 entries */
#define CK_ASN1_MAX_FLAG_BYTES 16     /* BIT STRING length (RFC: at least 32 bits) */

/* ---------------------------------------------------------------------------------------------
 * Constants.
 */

#define CK_KRB5_PVNO 5

/* Message types = APPLICATION tag numbers (RFC 4120 §5.10). */
#define CK_KRB_TICKET 1
#define CK_KRB_AUTHENTICATOR 2
#define CK_KRB_ENC_TICKET_PART 3
#define CK_KRB_AS_REQ 10
#define CK_KRB_AS_REP 11
#define CK_KRB_TGS_REQ 12
#define CK_KRB_TGS_REP 13
#define CK_KRB_AP_REQ 14
#define CK_KRB_AP_REP 15
#define CK_KRB_SAFE 20
#define CK_KRB_PRIV 21
#define CK_KRB_CRED 22
#define CK_KRB_ENC_AS_REP_PART 25
#define CK_KRB_ENC_TGS_REP_PART 26
#define CK_KRB_ENC_AP_REP_PART 27
#define CK_KRB_ENC_KRB_PRIV_PART 28
#define CK_KRB_ENC_KRB_CRED_PART 29
#define CK_KRB_ERROR 30

#include "cablekey/nametypes.h"

/* Host address types (RFC 4120 §7.5.3). */
#define CK_ADDRTYPE_IPV4 2
#define CK_ADDRTYPE_DIRECTIONAL 3
#define CK_ADDRTYPE_CHAOS 5
#define CK_ADDRTYPE_XNS 6
#define CK_ADDRTYPE_ISO 7
#define CK_ADDRTYPE_DECNET 12
#define CK_ADDRTYPE_APPLETALK 16
#define CK_ADDRTYPE_NETBIOS 20
#define CK_ADDRTYPE_IPV6 24

/* Authorization data types (RFC 4120 §7.5.4). */
#define CK_AD_IF_RELEVANT 1
#define CK_AD_INTENDED_FOR_SERVER 2
#define CK_AD_INTENDED_FOR_APPLICATION_CLASS 3
#define CK_AD_KDC_ISSUED 4
#define CK_AD_AND_OR 5
#define CK_AD_MANDATORY_TICKET_EXTENSIONS 6
#define CK_AD_IN_TICKET_EXTENSIONS 7
#define CK_AD_MANDATORY_FOR_KDC 8
#define CK_AD_WIN2K_PAC 128

/* Transited encoding types (RFC 4120 §7.5.5). */
#define CK_TR_DOMAIN_X500_COMPRESS 1

/* LastReq lr-type values (RFC 4120 §5.4.2; negative = this principal only). */
#define CK_LR_NONE 0
#define CK_LR_INITIAL_TGT 1
#define CK_LR_INITIAL 2
#define CK_LR_ISSUE_USE_TGT 3
#define CK_LR_RENEWAL 4
#define CK_LR_REQUEST 5
#define CK_LR_PW_EXPTIME 6
#define CK_LR_ACCT_EXPTIME 7

/* Pre-authentication data types (RFC 4120 §7.5.2, RFC 4556, RFC 6113, RFC 6806, RFC 8070). */
#define CK_PA_TGS_REQ 1
#define CK_PA_ENC_TIMESTAMP 2
#define CK_PA_PW_SALT 3
#define CK_PA_ENC_UNIX_TIME 5
#define CK_PA_SANDIA_SECUREID 6
#define CK_PA_SESAME 7
#define CK_PA_OSF_DCE 8
#define CK_PA_CYBERSAFE_SECUREID 9
#define CK_PA_AFS3_SALT 10
#define CK_PA_ETYPE_INFO 11
#define CK_PA_SAM_CHALLENGE 12
#define CK_PA_SAM_RESPONSE 13
#define CK_PA_PK_AS_REQ_OLD 14
#define CK_PA_PK_AS_REP_OLD 15
#define CK_PA_PK_AS_REQ 16
#define CK_PA_PK_AS_REP 17
#define CK_PA_ETYPE_INFO2 19
#define CK_PA_SVR_REFERRAL_INFO 20
#define CK_PA_PAC_REQUEST 128
#define CK_PA_FOR_USER 129
#define CK_PA_FX_COOKIE 133
#define CK_PA_FX_FAST 136
#define CK_PA_FX_ERROR 137
#define CK_PA_ENCRYPTED_CHALLENGE 138
#define CK_PA_PKINIT_KX 147
#define CK_PA_REQ_ENC_PA_REP 149
#define CK_PA_AS_FRESHNESS 150

/* Key usage numbers (RFC 4120 §7.5.1, RFC 4121, RFC 6113). */
#define CK_KU_PA_ENC_TS 1             /* AS-REQ PA-ENC-TIMESTAMP, client key */
#define CK_KU_KDC_REP_TICKET 2        /* Ticket enc-part, service key */
#define CK_KU_AS_REP_ENCPART 3        /* AS-REP enc-part, client key */
#define CK_KU_TGS_REQ_AD_SESSKEY 4    /* TGS-REQ enc-authorization-data, session key */
#define CK_KU_TGS_REQ_AD_SUBKEY 5     /* TGS-REQ enc-authorization-data, subkey */
#define CK_KU_TGS_REQ_AUTH_CKSUM 6    /* PA-TGS-REQ authenticator checksum over KDC-REQ-BODY */
#define CK_KU_TGS_REQ_AUTH 7          /* PA-TGS-REQ authenticator, session key */
#define CK_KU_TGS_REP_ENCPART_SESSKEY 8 /* TGS-REP enc-part, TGT session key */
#define CK_KU_TGS_REP_ENCPART_SUBKEY 9  /* TGS-REP enc-part, authenticator subkey */
#define CK_KU_AP_REQ_AUTH_CKSUM 10    /* AP-REQ authenticator checksum */
#define CK_KU_AP_REQ_AUTH 11          /* AP-REQ authenticator */
#define CK_KU_AP_REP_ENCPART 12       /* AP-REP enc-part */
#define CK_KU_KRB_PRIV_ENCPART 13     /* KRB-PRIV enc-part */
#define CK_KU_KRB_CRED_ENCPART 14     /* KRB-CRED enc-part */
#define CK_KU_KRB_SAFE_CKSUM 15       /* KRB-SAFE checksum */
#define CK_KU_AD_KDC_ISSUED_CKSUM 19  /* AD-KDC-ISSUED checksum */
#define CK_KU_GSS_ACCEPTOR_SEAL 22    /* RFC 4121 */
#define CK_KU_GSS_ACCEPTOR_SIGN 23
#define CK_KU_GSS_INITIATOR_SEAL 24
#define CK_KU_GSS_INITIATOR_SIGN 25
#define CK_KU_FAST_REQ_CHKSUM 50      /* RFC 6113 */
#define CK_KU_FAST_ENC 51
#define CK_KU_FAST_REP 52
#define CK_KU_FAST_FINISHED 53
#define CK_KU_ENC_CHALLENGE_CLIENT 54
#define CK_KU_ENC_CHALLENGE_KDC 55

/* Error codes (RFC 4120 §7.5.9, RFC 4556, RFC 6113, RFC 8636). */
#define CK_KDC_ERR_NONE 0
#define CK_KDC_ERR_NAME_EXP 1
#define CK_KDC_ERR_SERVICE_EXP 2
#define CK_KDC_ERR_BAD_PVNO 3
#define CK_KDC_ERR_C_OLD_MAST_KVNO 4
#define CK_KDC_ERR_S_OLD_MAST_KVNO 5
#define CK_KDC_ERR_C_PRINCIPAL_UNKNOWN 6
#define CK_KDC_ERR_S_PRINCIPAL_UNKNOWN 7
#define CK_KDC_ERR_PRINCIPAL_NOT_UNIQUE 8
#define CK_KDC_ERR_NULL_KEY 9
#define CK_KDC_ERR_CANNOT_POSTDATE 10
#define CK_KDC_ERR_NEVER_VALID 11
#define CK_KDC_ERR_POLICY 12
#define CK_KDC_ERR_BADOPTION 13
#define CK_KDC_ERR_ETYPE_NOSUPP 14
#define CK_KDC_ERR_SUMTYPE_NOSUPP 15
#define CK_KDC_ERR_PADATA_TYPE_NOSUPP 16
#define CK_KDC_ERR_TRTYPE_NOSUPP 17
#define CK_KDC_ERR_CLIENT_REVOKED 18
#define CK_KDC_ERR_SERVICE_REVOKED 19
#define CK_KDC_ERR_TGT_REVOKED 20
#define CK_KDC_ERR_CLIENT_NOTYET 21
#define CK_KDC_ERR_SERVICE_NOTYET 22
#define CK_KDC_ERR_KEY_EXPIRED 23
#define CK_KDC_ERR_PREAUTH_FAILED 24
#define CK_KDC_ERR_PREAUTH_REQUIRED 25
#define CK_KDC_ERR_SERVER_NOMATCH 26
#define CK_KDC_ERR_MUST_USE_USER2USER 27
#define CK_KDC_ERR_PATH_NOT_ACCEPTED 28
#define CK_KDC_ERR_SVC_UNAVAILABLE 29
#define CK_KRB_AP_ERR_BAD_INTEGRITY 31
#define CK_KRB_AP_ERR_TKT_EXPIRED 32
#define CK_KRB_AP_ERR_TKT_NYV 33
#define CK_KRB_AP_ERR_REPEAT 34
#define CK_KRB_AP_ERR_NOT_US 35
#define CK_KRB_AP_ERR_BADMATCH 36
#define CK_KRB_AP_ERR_SKEW 37
#define CK_KRB_AP_ERR_BADADDR 38
#define CK_KRB_AP_ERR_BADVERSION 39
#define CK_KRB_AP_ERR_MSG_TYPE 40
#define CK_KRB_AP_ERR_MODIFIED 41
#define CK_KRB_AP_ERR_BADORDER 42
#define CK_KRB_AP_ERR_BADKEYVER 44
#define CK_KRB_AP_ERR_NOKEY 45
#define CK_KRB_AP_ERR_MUT_FAIL 46
#define CK_KRB_AP_ERR_BADDIRECTION 47
#define CK_KRB_AP_ERR_METHOD 48
#define CK_KRB_AP_ERR_BADSEQ 49
#define CK_KRB_AP_ERR_INAPP_CKSUM 50
#define CK_KRB_AP_PATH_NOT_ACCEPTED 51
#define CK_KRB_ERR_RESPONSE_TOO_BIG 52
#define CK_KRB_ERR_GENERIC 60
#define CK_KRB_ERR_FIELD_TOOLONG 61
#define CK_KDC_ERR_CLIENT_NOT_TRUSTED 62
#define CK_KDC_ERR_KDC_NOT_TRUSTED 63
#define CK_KDC_ERR_INVALID_SIG 64
#define CK_KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED 65
#define CK_KDC_ERR_CERTIFICATE_MISMATCH 66
#define CK_KRB_AP_ERR_NO_TGT 67
#define CK_KDC_ERR_WRONG_REALM 68
#define CK_KRB_AP_ERR_USER_TO_USER_REQUIRED 69
#define CK_KDC_ERR_CANT_VERIFY_CERTIFICATE 70
#define CK_KDC_ERR_INVALID_CERTIFICATE 71
#define CK_KDC_ERR_REVOKED_CERTIFICATE 72
#define CK_KDC_ERR_REVOCATION_STATUS_UNKNOWN 73
#define CK_KDC_ERR_REVOCATION_STATUS_UNAVAILABLE 74
#define CK_KDC_ERR_CLIENT_NAME_MISMATCH 75
#define CK_KDC_ERR_KDC_NAME_MISMATCH 76
#define CK_KDC_ERR_INCONSISTENT_KEY_PURPOSE 77
#define CK_KDC_ERR_DIGEST_IN_CERT_NOT_ACCEPTED 78
#define CK_KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED 79
#define CK_KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED 80
#define CK_KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED 81
#define CK_KDC_ERR_PREAUTH_EXPIRED 90
#define CK_KDC_ERR_MORE_PREAUTH_DATA_REQUIRED 91
#define CK_KDC_ERR_UNKNOWN_CRITICAL_FAST_OPTIONS 93
#define CK_KDC_ERR_NO_ACCEPTABLE_KDF 100

/* KDCOptions (RFC 4120 §5.4.1; bit n -> mask 1u << (31 - n), bit 0 = MSB of the first octet). */
#define CK_FLAG_BIT(n) (1u << (31 - (n)))
#define CK_KDC_OPT_RESERVED CK_FLAG_BIT(0)
#define CK_KDC_OPT_FORWARDABLE CK_FLAG_BIT(1)
#define CK_KDC_OPT_FORWARDED CK_FLAG_BIT(2)
#define CK_KDC_OPT_PROXIABLE CK_FLAG_BIT(3)
#define CK_KDC_OPT_PROXY CK_FLAG_BIT(4)
#define CK_KDC_OPT_ALLOW_POSTDATE CK_FLAG_BIT(5)
#define CK_KDC_OPT_POSTDATED CK_FLAG_BIT(6)
#define CK_KDC_OPT_RENEWABLE CK_FLAG_BIT(8)
#define CK_KDC_OPT_OPT_HARDWARE_AUTH CK_FLAG_BIT(11)
#define CK_KDC_OPT_CNAME_IN_ADDL_TKT CK_FLAG_BIT(14) /* MS-SFU constrained delegation */
#define CK_KDC_OPT_CANONICALIZE CK_FLAG_BIT(15)      /* RFC 6806 */
#define CK_KDC_OPT_REQUEST_ANONYMOUS CK_FLAG_BIT(16) /* RFC 6112 */
#define CK_KDC_OPT_DISABLE_TRANSITED_CHECK CK_FLAG_BIT(26)
#define CK_KDC_OPT_RENEWABLE_OK CK_FLAG_BIT(27)
#define CK_KDC_OPT_ENC_TKT_IN_SKEY CK_FLAG_BIT(28)
#define CK_KDC_OPT_RENEW CK_FLAG_BIT(30)
#define CK_KDC_OPT_VALIDATE CK_FLAG_BIT(31)

/* TicketFlags (RFC 4120 §5.3, RFC 6806, RFC 6112). */
#define CK_TKT_FLG_RESERVED CK_FLAG_BIT(0)
#define CK_TKT_FLG_FORWARDABLE CK_FLAG_BIT(1)
#define CK_TKT_FLG_FORWARDED CK_FLAG_BIT(2)
#define CK_TKT_FLG_PROXIABLE CK_FLAG_BIT(3)
#define CK_TKT_FLG_PROXY CK_FLAG_BIT(4)
#define CK_TKT_FLG_MAY_POSTDATE CK_FLAG_BIT(5)
#define CK_TKT_FLG_POSTDATED CK_FLAG_BIT(6)
#define CK_TKT_FLG_INVALID CK_FLAG_BIT(7)
#define CK_TKT_FLG_RENEWABLE CK_FLAG_BIT(8)
#define CK_TKT_FLG_INITIAL CK_FLAG_BIT(9)
#define CK_TKT_FLG_PRE_AUTHENT CK_FLAG_BIT(10)
#define CK_TKT_FLG_HW_AUTHENT CK_FLAG_BIT(11)
#define CK_TKT_FLG_TRANSITED_POLICY_CHECKED CK_FLAG_BIT(12)
#define CK_TKT_FLG_OK_AS_DELEGATE CK_FLAG_BIT(13)
#define CK_TKT_FLG_ENC_PA_REP CK_FLAG_BIT(15)
#define CK_TKT_FLG_ANONYMOUS CK_FLAG_BIT(16)

/* APOptions (RFC 4120 §5.5.1). */
#define CK_AP_OPT_RESERVED CK_FLAG_BIT(0)
#define CK_AP_OPT_USE_SESSION_KEY CK_FLAG_BIT(1)
#define CK_AP_OPT_MUTUAL_REQUIRED CK_FLAG_BIT(2)

/* ---------------------------------------------------------------------------------------------
 * Types. Field comments give the context tag.
 */

/* PrincipalName ::= SEQUENCE { name-type [0] Int32, name-string [1] SEQUENCE OF KerberosString } */
typedef struct CK_PRINCIPAL_NAME_st {
    int32_t name_type;                          /* [0] */
    STACK_OF(ASN1_GENERALSTRING) *name_string;  /* [1] 1..CK_ASN1_MAX_COMPONENTS entries */
    ASN1_ENCODING enc;  /* encode cache (not a field): empty unless ck_asn1_principal_der()
                         * filled it; ck_asn1_principal_set() drops it. After changing the
                         * fields by hand, call ck_asn1_principal_modified(). */
} CK_PRINCIPAL_NAME;

/* HostAddress ::= SEQUENCE { addr-type [0] Int32, address [1] OCTET STRING } */
typedef struct CK_HOST_ADDRESS_st {
    int32_t addr_type;           /* [0] CK_ADDRTYPE_* */
    ASN1_OCTET_STRING *address;  /* [1] */
} CK_HOST_ADDRESS;
DEFINE_STACK_OF(CK_HOST_ADDRESS)
/* HostAddresses ::= SEQUENCE OF HostAddress */
typedef STACK_OF(CK_HOST_ADDRESS) CK_HOST_ADDRESSES;

/* AuthorizationData ::= SEQUENCE OF SEQUENCE { ad-type [0] Int32, ad-data [1] OCTET STRING }
 * (AD-IF-RELEVANT's ad-data is itself an encoded AuthorizationData.) */
typedef struct CK_AD_ENTRY_st {
    int32_t ad_type;             /* [0] CK_AD_* */
    ASN1_OCTET_STRING *ad_data;  /* [1] */
} CK_AD_ENTRY;
DEFINE_STACK_OF(CK_AD_ENTRY)
typedef STACK_OF(CK_AD_ENTRY) CK_AUTHORIZATION_DATA;

/* EncryptedData ::= SEQUENCE { etype [0] Int32, kvno [1] UInt32 OPTIONAL, cipher [2] OCTET STRING } */
typedef struct CK_ENCRYPTED_DATA_st {
    int32_t etype;               /* [0] */
    uint32_t *kvno;              /* [1] OPTIONAL */
    ASN1_OCTET_STRING *cipher;   /* [2] */
} CK_ENCRYPTED_DATA;

/* EncryptionKey ::= SEQUENCE { keytype [0] Int32, keyvalue [1] OCTET STRING }; wiped on free. */
typedef struct CK_ENCRYPTION_KEY_st {
    int32_t keytype;             /* [0] enctype */
    ASN1_OCTET_STRING *keyvalue; /* [1] */
} CK_ENCRYPTION_KEY;

/* Checksum ::= SEQUENCE { cksumtype [0] Int32, checksum [1] OCTET STRING } */
typedef struct CK_CHECKSUM_st {
    int32_t cksumtype;           /* [0] */
    ASN1_OCTET_STRING *checksum; /* [1] */
} CK_CHECKSUM;

/* PA-DATA ::= SEQUENCE { padata-type [1] Int32, padata-value [2] OCTET STRING } (tags start at 1) */
typedef struct CK_PA_DATA_st {
    int32_t padata_type;              /* [1] CK_PA_* */
    ASN1_OCTET_STRING *padata_value;  /* [2] */
} CK_PA_DATA;
DEFINE_STACK_OF(CK_PA_DATA)
/* METHOD-DATA ::= SEQUENCE OF PA-DATA (also the type of every padata field) */
typedef STACK_OF(CK_PA_DATA) CK_METHOD_DATA;

/* PA-ENC-TS-ENC ::= SEQUENCE { patimestamp [0] KerberosTime, pausec [1] Microseconds OPTIONAL } */
typedef struct CK_PA_ENC_TS_ENC_st {
    ASN1_GENERALIZEDTIME *patimestamp; /* [0] */
    int32_t *pausec;                   /* [1] OPTIONAL, 0..999999 */
} CK_PA_ENC_TS_ENC;

/* ETYPE-INFO2-ENTRY ::= SEQUENCE { etype [0] Int32, salt [1] KerberosString OPTIONAL,
 *                                  s2kparams [2] OCTET STRING OPTIONAL } */
typedef struct CK_ETYPE_INFO2_ENTRY_st {
    int32_t etype;                   /* [0] */
    ASN1_GENERALSTRING *salt;        /* [1] OPTIONAL */
    ASN1_OCTET_STRING *s2kparams;    /* [2] OPTIONAL */
} CK_ETYPE_INFO2_ENTRY;
DEFINE_STACK_OF(CK_ETYPE_INFO2_ENTRY)
/* ETYPE-INFO2 ::= SEQUENCE SIZE (1..MAX) OF ETYPE-INFO2-ENTRY */
typedef STACK_OF(CK_ETYPE_INFO2_ENTRY) CK_ETYPE_INFO2;

/* TransitedEncoding ::= SEQUENCE { tr-type [0] Int32, contents [1] OCTET STRING } */
typedef struct CK_TRANSITED_ENCODING_st {
    int32_t tr_type;             /* [0] */
    ASN1_OCTET_STRING *contents; /* [1] */
} CK_TRANSITED_ENCODING;

/* LastReq ::= SEQUENCE OF SEQUENCE { lr-type [0] Int32, lr-value [1] KerberosTime } */
typedef struct CK_LAST_REQ_ENTRY_st {
    int32_t lr_type;                 /* [0] */
    ASN1_GENERALIZEDTIME *lr_value;  /* [1] */
} CK_LAST_REQ_ENTRY;
DEFINE_STACK_OF(CK_LAST_REQ_ENTRY)
typedef STACK_OF(CK_LAST_REQ_ENTRY) CK_LAST_REQ;

/* Ticket ::= [APPLICATION 1] SEQUENCE { tkt-vno [0] INTEGER (5), realm [1] Realm,
 *                                       sname [2] PrincipalName, enc-part [3] EncryptedData } */
typedef struct CK_TICKET_st {
    int32_t tkt_vno;                 /* [0] must be 5 */
    ASN1_GENERALSTRING *realm;       /* [1] */
    CK_PRINCIPAL_NAME *sname;        /* [2] */
    CK_ENCRYPTED_DATA *enc_part;     /* [3] key usage CK_KU_KDC_REP_TICKET */
    ASN1_ENCODING enc;               /* cached encoding (not a field): the received bytes, or
                                      * the one ck_ticket_seal() made. After changing a ticket's
                                      * fields, call ck_asn1_ticket_modified(). */
} CK_TICKET;
DEFINE_STACK_OF(CK_TICKET)

/* EncTicketPart ::= [APPLICATION 3] SEQUENCE { ... } */
typedef struct CK_ENC_TICKET_PART_st {
    ASN1_BIT_STRING *flags;                   /* [0] TicketFlags (CK_TKT_FLG_*) */
    CK_ENCRYPTION_KEY *key;                   /* [1] */
    ASN1_GENERALSTRING *crealm;               /* [2] */
    CK_PRINCIPAL_NAME *cname;                 /* [3] */
    CK_TRANSITED_ENCODING *transited;         /* [4] */
    ASN1_GENERALIZEDTIME *authtime;           /* [5] */
    ASN1_GENERALIZEDTIME *starttime;          /* [6] OPTIONAL */
    ASN1_GENERALIZEDTIME *endtime;            /* [7] */
    ASN1_GENERALIZEDTIME *renew_till;         /* [8] OPTIONAL */
    CK_HOST_ADDRESSES *caddr;                 /* [9] OPTIONAL */
    CK_AUTHORIZATION_DATA *authorization_data;/* [10] OPTIONAL */
} CK_ENC_TICKET_PART;

/* KDC-REQ-BODY ::= SEQUENCE { ... }. The received DER is cached in `enc` (ASN1_SEQUENCE_enc) so
 * the PA-TGS-REQ checksum can be verified over the bytes the client sent: see
 * ck_asn1_kdc_req_body_der(). After changing a decoded body, call ck_asn1_kdc_req_body_modified()
 * or the stale cached bytes will be re-encoded. */
typedef struct CK_KDC_REQ_BODY_st {
    ASN1_BIT_STRING *kdc_options;             /* [0] KDCOptions (CK_KDC_OPT_*) */
    CK_PRINCIPAL_NAME *cname;                 /* [1] OPTIONAL (AS-REQ only) */
    ASN1_GENERALSTRING *realm;                /* [2] server's realm */
    CK_PRINCIPAL_NAME *sname;                 /* [3] OPTIONAL */
    ASN1_GENERALIZEDTIME *from;               /* [4] OPTIONAL */
    ASN1_GENERALIZEDTIME *till;               /* [5] */
    ASN1_GENERALIZEDTIME *rtime;              /* [6] OPTIONAL */
    ASN1_INTEGER *nonce;                      /* [7] UInt32 (see ck_asn1_nonce_*) */
    STACK_OF(ASN1_INTEGER) *etype;            /* [8] SEQUENCE OF Int32, 1..CK_ASN1_MAX_ETYPES;
                                               *     use ck_asn1_etypes_get/_set */
    CK_HOST_ADDRESSES *addresses;             /* [9] OPTIONAL */
    CK_ENCRYPTED_DATA *enc_authorization_data;/* [10] OPTIONAL */
    STACK_OF(CK_TICKET) *additional_tickets;  /* [11] OPTIONAL */
    ASN1_ENCODING enc;                        /* cached received encoding (not a field) */
} CK_KDC_REQ_BODY;

/* KDC-REQ ::= SEQUENCE { pvno [1] INTEGER (5), msg-type [2] INTEGER (10 -- AS -- | 12 -- TGS --),
 *                        padata [3] SEQUENCE OF PA-DATA OPTIONAL, req-body [4] KDC-REQ-BODY }
 * AS-REQ ::= [APPLICATION 10] KDC-REQ, TGS-REQ ::= [APPLICATION 12] KDC-REQ */
typedef struct CK_KDC_REQ_st {
    int32_t pvno;                /* [1] */
    int32_t msg_type;            /* [2] */
    CK_METHOD_DATA *padata;      /* [3] OPTIONAL, <= CK_ASN1_MAX_PADATA */
    CK_KDC_REQ_BODY *req_body;   /* [4] */
} CK_KDC_REQ;
typedef CK_KDC_REQ CK_AS_REQ;
typedef CK_KDC_REQ CK_TGS_REQ;

/* KDC-REP ::= SEQUENCE { pvno [0], msg-type [1], padata [2] OPTIONAL, crealm [3], cname [4],
 *                        ticket [5] Ticket, enc-part [6] EncryptedData }
 * AS-REP ::= [APPLICATION 11] KDC-REP, TGS-REP ::= [APPLICATION 13] KDC-REP */
typedef struct CK_KDC_REP_st {
    int32_t pvno;                /* [0] */
    int32_t msg_type;            /* [1] */
    CK_METHOD_DATA *padata;      /* [2] OPTIONAL */
    ASN1_GENERALSTRING *crealm;  /* [3] */
    CK_PRINCIPAL_NAME *cname;    /* [4] */
    CK_TICKET *ticket;           /* [5] */
    CK_ENCRYPTED_DATA *enc_part; /* [6] EncASRepPart / EncTGSRepPart */
} CK_KDC_REP;
typedef CK_KDC_REP CK_AS_REP;
typedef CK_KDC_REP CK_TGS_REP;

/* EncKDCRepPart ::= SEQUENCE { ... }; EncASRepPart ::= [APPLICATION 25], EncTGSRepPart ::=
 * [APPLICATION 26]. Note RFC 4120 §5.4.2: some KDCs send 26 in AS-REPs too; decode with
 * ck_asn1_enc_kdc_rep_part_decode() to accept either. */
typedef struct CK_ENC_KDC_REP_PART_st {
    CK_ENCRYPTION_KEY *key;              /* [0] */
    CK_LAST_REQ *last_req;               /* [1] */
    ASN1_INTEGER *nonce;                 /* [2] UInt32: echo the request's (ck_asn1_nonce_copy) */
    ASN1_GENERALIZEDTIME *key_expiration;/* [3] OPTIONAL */
    ASN1_BIT_STRING *flags;              /* [4] TicketFlags */
    ASN1_GENERALIZEDTIME *authtime;      /* [5] */
    ASN1_GENERALIZEDTIME *starttime;     /* [6] OPTIONAL */
    ASN1_GENERALIZEDTIME *endtime;       /* [7] */
    ASN1_GENERALIZEDTIME *renew_till;    /* [8] OPTIONAL */
    ASN1_GENERALSTRING *srealm;          /* [9] */
    CK_PRINCIPAL_NAME *sname;            /* [10] */
    CK_HOST_ADDRESSES *caddr;            /* [11] OPTIONAL */
    CK_METHOD_DATA *encrypted_pa_data;   /* [12] OPTIONAL (RFC 6806) */
} CK_ENC_KDC_REP_PART;
typedef CK_ENC_KDC_REP_PART CK_ENC_AS_REP_PART;
typedef CK_ENC_KDC_REP_PART CK_ENC_TGS_REP_PART;

/* Authenticator ::= [APPLICATION 2] SEQUENCE { ... } */
typedef struct CK_AUTHENTICATOR_st {
    int32_t authenticator_vno;                /* [0] must be 5 */
    ASN1_GENERALSTRING *crealm;               /* [1] */
    CK_PRINCIPAL_NAME *cname;                 /* [2] */
    CK_CHECKSUM *cksum;                       /* [3] OPTIONAL */
    int32_t cusec;                            /* [4] Microseconds 0..999999 */
    ASN1_GENERALIZEDTIME *ctime;              /* [5] */
    CK_ENCRYPTION_KEY *subkey;                /* [6] OPTIONAL */
    ASN1_INTEGER *seq_number;                 /* [7] UInt32 OPTIONAL (ck_asn1_nonce_*) */
    CK_AUTHORIZATION_DATA *authorization_data;/* [8] OPTIONAL */
} CK_AUTHENTICATOR;

/* AP-REQ ::= [APPLICATION 14] SEQUENCE { pvno [0], msg-type [1], ap-options [2] APOptions,
 *                                        ticket [3] Ticket, authenticator [4] EncryptedData } */
typedef struct CK_AP_REQ_st {
    int32_t pvno;                     /* [0] */
    int32_t msg_type;                 /* [1] 14 */
    ASN1_BIT_STRING *ap_options;      /* [2] CK_AP_OPT_* */
    CK_TICKET *ticket;                /* [3] */
    CK_ENCRYPTED_DATA *authenticator; /* [4] */
} CK_AP_REQ;

/* AP-REP ::= [APPLICATION 15] SEQUENCE { pvno [0], msg-type [1], enc-part [2] EncryptedData } */
typedef struct CK_AP_REP_st {
    int32_t pvno;                /* [0] */
    int32_t msg_type;            /* [1] 15 */
    CK_ENCRYPTED_DATA *enc_part; /* [2] key usage CK_KU_AP_REP_ENCPART */
} CK_AP_REP;

/* EncAPRepPart ::= [APPLICATION 27] SEQUENCE { ctime [0], cusec [1], subkey [2] OPTIONAL,
 *                                              seq-number [3] UInt32 OPTIONAL } */
typedef struct CK_ENC_AP_REP_PART_st {
    ASN1_GENERALIZEDTIME *ctime; /* [0] */
    int32_t cusec;               /* [1] */
    CK_ENCRYPTION_KEY *subkey;   /* [2] OPTIONAL */
    ASN1_INTEGER *seq_number;    /* [3] OPTIONAL */
} CK_ENC_AP_REP_PART;

/* KRB-SAFE-BODY ::= SEQUENCE { user-data [0] OCTET STRING, timestamp [1] OPTIONAL,
 *   usec [2] OPTIONAL, seq-number [3] OPTIONAL, s-address [4] HostAddress,
 *   r-address [5] HostAddress OPTIONAL }. Received DER cached like KDC-REQ-BODY. */
typedef struct CK_KRB_SAFE_BODY_st {
    ASN1_OCTET_STRING *user_data;     /* [0] */
    ASN1_GENERALIZEDTIME *timestamp;  /* [1] OPTIONAL */
    int32_t *usec;                    /* [2] OPTIONAL */
    ASN1_INTEGER *seq_number;         /* [3] OPTIONAL */
    CK_HOST_ADDRESS *s_address;       /* [4] */
    CK_HOST_ADDRESS *r_address;       /* [5] OPTIONAL */
    ASN1_ENCODING enc;                /* cached received encoding (not a field) */
} CK_KRB_SAFE_BODY;

/* KRB-SAFE ::= [APPLICATION 20] SEQUENCE { pvno [0], msg-type [1], safe-body [2], cksum [3] } */
typedef struct CK_KRB_SAFE_MSG_st {
    int32_t pvno;                /* [0] */
    int32_t msg_type;            /* [1] 20 */
    CK_KRB_SAFE_BODY *safe_body; /* [2] */
    CK_CHECKSUM *cksum;          /* [3] over the DER of safe-body, CK_KU_KRB_SAFE_CKSUM */
} CK_KRB_SAFE_MSG;

/* KRB-PRIV ::= [APPLICATION 21] SEQUENCE { pvno [0], msg-type [1], enc-part [3] } (no [2]) */
typedef struct CK_KRB_PRIV_MSG_st {
    int32_t pvno;                /* [0] */
    int32_t msg_type;            /* [1] 21 */
    CK_ENCRYPTED_DATA *enc_part; /* [3] EncKrbPrivPart, CK_KU_KRB_PRIV_ENCPART */
} CK_KRB_PRIV_MSG;

/* EncKrbPrivPart ::= [APPLICATION 28] SEQUENCE { same fields as KRB-SAFE-BODY } */
typedef struct CK_ENC_KRB_PRIV_PART_st {
    ASN1_OCTET_STRING *user_data;     /* [0] */
    ASN1_GENERALIZEDTIME *timestamp;  /* [1] OPTIONAL */
    int32_t *usec;                    /* [2] OPTIONAL */
    ASN1_INTEGER *seq_number;         /* [3] OPTIONAL */
    CK_HOST_ADDRESS *s_address;       /* [4] */
    CK_HOST_ADDRESS *r_address;       /* [5] OPTIONAL */
} CK_ENC_KRB_PRIV_PART;

/* KRB-ERROR ::= [APPLICATION 30] SEQUENCE { ... } */
typedef struct CK_KRB_ERROR_MSG_st {
    int32_t pvno;                /* [0] */
    int32_t msg_type;            /* [1] 30 */
    ASN1_GENERALIZEDTIME *ctime; /* [2] OPTIONAL */
    int32_t *cusec;              /* [3] OPTIONAL */
    ASN1_GENERALIZEDTIME *stime; /* [4] */
    int32_t susec;               /* [5] */
    int32_t error_code;          /* [6] CK_KDC_ERR_* / CK_KRB_AP_ERR_* / CK_KRB_ERR_* */
    ASN1_GENERALSTRING *crealm;  /* [7] OPTIONAL */
    CK_PRINCIPAL_NAME *cname;    /* [8] OPTIONAL */
    ASN1_GENERALSTRING *realm;   /* [9] service realm */
    CK_PRINCIPAL_NAME *sname;    /* [10] */
    ASN1_GENERALSTRING *e_text;  /* [11] OPTIONAL */
    ASN1_OCTET_STRING *e_data;   /* [12] OPTIONAL (METHOD-DATA for PREAUTH_REQUIRED/FAILED) */
} CK_KRB_ERROR_MSG;

/* OpenSSL item functions: T_new(), T_free() (NULL ok), plus raw d2i_T/i2d_T (do not use the raw
 * d2i on network input: use ck_asn1_*_decode). Items are named after the APPLICATION-tagged form
 * where there is one (CK_TICKET_it includes [APPLICATION 1]). */
DECLARE_ASN1_FUNCTIONS(CK_PRINCIPAL_NAME)
DECLARE_ASN1_DUP_FUNCTION(CK_PRINCIPAL_NAME)
DECLARE_ASN1_FUNCTIONS(CK_HOST_ADDRESS)
DECLARE_ASN1_DUP_FUNCTION(CK_HOST_ADDRESS)
DECLARE_ASN1_FUNCTIONS(CK_HOST_ADDRESSES)
DECLARE_ASN1_DUP_FUNCTION(CK_HOST_ADDRESSES)
DECLARE_ASN1_FUNCTIONS(CK_AD_ENTRY)
DECLARE_ASN1_FUNCTIONS(CK_AUTHORIZATION_DATA)
DECLARE_ASN1_DUP_FUNCTION(CK_AUTHORIZATION_DATA)
DECLARE_ASN1_FUNCTIONS(CK_ENCRYPTED_DATA)
DECLARE_ASN1_FUNCTIONS(CK_ENCRYPTION_KEY)
DECLARE_ASN1_DUP_FUNCTION(CK_ENCRYPTION_KEY)
DECLARE_ASN1_FUNCTIONS(CK_CHECKSUM)
DECLARE_ASN1_FUNCTIONS(CK_PA_DATA)
DECLARE_ASN1_FUNCTIONS(CK_METHOD_DATA)
DECLARE_ASN1_FUNCTIONS(CK_PA_ENC_TS_ENC)
DECLARE_ASN1_FUNCTIONS(CK_ETYPE_INFO2_ENTRY)
DECLARE_ASN1_FUNCTIONS(CK_ETYPE_INFO2)
DECLARE_ASN1_FUNCTIONS(CK_TRANSITED_ENCODING)
DECLARE_ASN1_FUNCTIONS(CK_LAST_REQ_ENTRY)
DECLARE_ASN1_FUNCTIONS(CK_LAST_REQ)
DECLARE_ASN1_FUNCTIONS(CK_TICKET)
DECLARE_ASN1_DUP_FUNCTION(CK_TICKET)
DECLARE_ASN1_FUNCTIONS(CK_ENC_TICKET_PART)
DECLARE_ASN1_FUNCTIONS(CK_KDC_REQ_BODY)
DECLARE_ASN1_FUNCTIONS(CK_KDC_REQ)       /* untagged KDC-REQ */
DECLARE_ASN1_ITEM(CK_AS_REQ)             /* [APPLICATION 10] KDC-REQ */
DECLARE_ASN1_ITEM(CK_TGS_REQ)            /* [APPLICATION 12] KDC-REQ */
DECLARE_ASN1_FUNCTIONS(CK_KDC_REP)       /* untagged KDC-REP */
DECLARE_ASN1_ITEM(CK_AS_REP)             /* [APPLICATION 11] */
DECLARE_ASN1_ITEM(CK_TGS_REP)            /* [APPLICATION 13] */
DECLARE_ASN1_FUNCTIONS(CK_ENC_KDC_REP_PART) /* untagged EncKDCRepPart */
DECLARE_ASN1_ITEM(CK_ENC_AS_REP_PART)    /* [APPLICATION 25] */
DECLARE_ASN1_ITEM(CK_ENC_TGS_REP_PART)   /* [APPLICATION 26] */
DECLARE_ASN1_FUNCTIONS(CK_AUTHENTICATOR)
DECLARE_ASN1_FUNCTIONS(CK_AP_REQ)
DECLARE_ASN1_FUNCTIONS(CK_AP_REP)
DECLARE_ASN1_FUNCTIONS(CK_ENC_AP_REP_PART)
DECLARE_ASN1_FUNCTIONS(CK_KRB_SAFE_BODY)
DECLARE_ASN1_FUNCTIONS(CK_KRB_SAFE_MSG)
DECLARE_ASN1_FUNCTIONS(CK_KRB_PRIV_MSG)
DECLARE_ASN1_FUNCTIONS(CK_ENC_KRB_PRIV_PART)
DECLARE_ASN1_FUNCTIONS(CK_KRB_ERROR_MSG)

/* Same-struct aliases so code can say CK_AS_REQ_new() etc. */
#define CK_AS_REQ_new CK_KDC_REQ_new
#define CK_AS_REQ_free CK_KDC_REQ_free
#define CK_TGS_REQ_new CK_KDC_REQ_new
#define CK_TGS_REQ_free CK_KDC_REQ_free
#define CK_AS_REP_new CK_KDC_REP_new
#define CK_AS_REP_free CK_KDC_REP_free
#define CK_TGS_REP_new CK_KDC_REP_new
#define CK_TGS_REP_free CK_KDC_REP_free
#define CK_ENC_AS_REP_PART_new CK_ENC_KDC_REP_PART_new
#define CK_ENC_AS_REP_PART_free CK_ENC_KDC_REP_PART_free
#define CK_ENC_TGS_REP_PART_new CK_ENC_KDC_REP_PART_new
#define CK_ENC_TGS_REP_PART_free CK_ENC_KDC_REP_PART_free

/* ---------------------------------------------------------------------------------------------
 * Validated decode / encode. decode: *out is set only on success, NULL otherwise (caller frees
 * with T_free). encode: *der is OPENSSL_malloc'd, free with ck_asn1_free_der(). Both check
 * pvno/tkt-vno/authenticator-vno == 5 and msg-type == the APPLICATION tag; T_new() leaves them 0,
 * so set them before encoding.
 */
void ck_asn1_free_der(uint8_t *der, size_t len);

/* Outer APPLICATION tag number of a message (e.g. CK_KRB_AS_REQ), for dispatch; CK_ERR_DECODE if
 * the first byte is not a constructed APPLICATION tag (or len is 0). Looks at the first byte only. */
int ck_asn1_msg_type(const uint8_t *der, size_t len);

#define CK_ASN1_CODEC_DECL(name, T)                                                       \
    int ck_asn1_##name##_decode(const uint8_t *der, size_t len, T **out);                 \
    int ck_asn1_##name##_encode(const T *v, uint8_t **der, size_t *len);

CK_ASN1_CODEC_DECL(as_req, CK_AS_REQ)             /* [APPLICATION 10], msg-type 10 */
CK_ASN1_CODEC_DECL(tgs_req, CK_TGS_REQ)           /* [APPLICATION 12], msg-type 12 */
CK_ASN1_CODEC_DECL(as_rep, CK_AS_REP)             /* [APPLICATION 11], msg-type 11 */
CK_ASN1_CODEC_DECL(tgs_rep, CK_TGS_REP)           /* [APPLICATION 13], msg-type 13 */
CK_ASN1_CODEC_DECL(enc_as_rep_part, CK_ENC_AS_REP_PART)   /* [APPLICATION 25] only */
CK_ASN1_CODEC_DECL(enc_tgs_rep_part, CK_ENC_TGS_REP_PART) /* [APPLICATION 26] only */
CK_ASN1_CODEC_DECL(ticket, CK_TICKET)             /* [APPLICATION 1] */
CK_ASN1_CODEC_DECL(enc_ticket_part, CK_ENC_TICKET_PART) /* [APPLICATION 3] */
CK_ASN1_CODEC_DECL(authenticator, CK_AUTHENTICATOR)     /* [APPLICATION 2] */
CK_ASN1_CODEC_DECL(ap_req, CK_AP_REQ)             /* [APPLICATION 14] */
CK_ASN1_CODEC_DECL(ap_rep, CK_AP_REP)             /* [APPLICATION 15] */
CK_ASN1_CODEC_DECL(enc_ap_rep_part, CK_ENC_AP_REP_PART) /* [APPLICATION 27] */
CK_ASN1_CODEC_DECL(krb_safe, CK_KRB_SAFE_MSG)         /* [APPLICATION 20] */
CK_ASN1_CODEC_DECL(krb_priv, CK_KRB_PRIV_MSG)         /* [APPLICATION 21] */
CK_ASN1_CODEC_DECL(enc_krb_priv_part, CK_ENC_KRB_PRIV_PART) /* [APPLICATION 28] */
CK_ASN1_CODEC_DECL(krb_error, CK_KRB_ERROR_MSG)       /* [APPLICATION 30] */
CK_ASN1_CODEC_DECL(kdc_req_body, CK_KDC_REQ_BODY) /* untagged SEQUENCE */
CK_ASN1_CODEC_DECL(krb_safe_body, CK_KRB_SAFE_BODY)
CK_ASN1_CODEC_DECL(method_data, CK_METHOD_DATA)   /* e-data of KRB-ERROR 24/25 */
CK_ASN1_CODEC_DECL(pa_enc_ts_enc, CK_PA_ENC_TS_ENC) /* PA-ENC-TIMESTAMP plaintext */
CK_ASN1_CODEC_DECL(etype_info2, CK_ETYPE_INFO2)   /* PA-ETYPE-INFO2 value, >= 1 entry */
CK_ASN1_CODEC_DECL(authorization_data, CK_AUTHORIZATION_DATA) /* also AD-IF-RELEVANT */
CK_ASN1_CODEC_DECL(principal_name, CK_PRINCIPAL_NAME)
CK_ASN1_CODEC_DECL(encryption_key, CK_ENCRYPTION_KEY)
CK_ASN1_CODEC_DECL(checksum, CK_CHECKSUM)
CK_ASN1_CODEC_DECL(host_addresses, CK_HOST_ADDRESSES)
CK_ASN1_CODEC_DECL(encrypted_data, CK_ENCRYPTED_DATA) /* e.g. PA-ENC-TIMESTAMP value */

/* EncKDCRepPart under either tag: accepts [APPLICATION 25] or [26] (clients must, RFC 4120
 * §5.4.2); *app_tag (may be NULL) receives the tag seen. */
int ck_asn1_enc_kdc_rep_part_decode(const uint8_t *der, size_t len, CK_ENC_KDC_REP_PART **out,
                                    int *app_tag);
/* KDC-REQ under either tag (10 or 12, must match msg-type); *app_tag may be NULL. */
int ck_asn1_kdc_req_decode(const uint8_t *der, size_t len, CK_KDC_REQ **out, int *app_tag);
/* KDC-REP under either tag (11 or 13, must match msg-type); *app_tag may be NULL. */
int ck_asn1_kdc_rep_decode(const uint8_t *der, size_t len, CK_KDC_REP **out, int *app_tag);

/* The DER of req->req_body: for a decoded request the exact bytes received (including its
 * SEQUENCE header, excluding the [4] tag); for a locally built one its encoding (computed once
 * and cached in the body). The pointer stays valid until the request is freed or the body
 * modified. Logically const: it may fill the body's encoding cache. */
int ck_asn1_kdc_req_body_der(const CK_KDC_REQ *req, const uint8_t **der, size_t *len);
/* Drops the cached encoding after a change to a decoded/encoded body. */
void ck_asn1_kdc_req_body_modified(CK_KDC_REQ_BODY *body);
/* The Ticket's cached encoding (filled by encoding it now if empty or stale), and its
 * invalidation after a field change. */
int ck_asn1_ticket_der(CK_TICKET *ticket, const uint8_t **der, size_t *len);
void ck_asn1_ticket_modified(CK_TICKET *ticket);
/* The same pair for PrincipalName. A KDC that embeds one (decoded) name in several messages
 * fills the cache once, so every enclosing encoder replays its bytes. Decoding never fills it. */
int ck_asn1_principal_der(CK_PRINCIPAL_NAME *name, const uint8_t **der, size_t *len);
void ck_asn1_principal_modified(CK_PRINCIPAL_NAME *name);
/* Same pair for KRB-SAFE-BODY (the KRB-SAFE checksum covers these bytes). */
int ck_asn1_krb_safe_body_der(const CK_KRB_SAFE_MSG *safe, const uint8_t **der, size_t *len);
void ck_asn1_krb_safe_body_modified(CK_KRB_SAFE_BODY *body);

/* ---------------------------------------------------------------------------------------------
 * Field helpers. Setters that take T ** allocate *p if it is NULL and replace its value
 * otherwise. All return 0 or a negative CK_ERR_*.
 */

/* KerberosTime <-> seconds since the epoch (UTC). set: 0000-01-01 .. 9999-12-31 only.
 * get: requires exactly YYYYMMDDHHMMSSZ with valid field ranges (seconds 00..60). */
int ck_asn1_time_set(ASN1_GENERALIZEDTIME **t, int64_t secs);
int ck_asn1_time_get(const ASN1_GENERALIZEDTIME *t, int64_t *secs);
/* Like get but optional: NULL -> *secs = dflt. */
int ck_asn1_time_get_opt(const ASN1_GENERALIZEDTIME *t, int64_t dflt, int64_t *secs);

/* 32-bit flag BIT STRINGs (KDCOptions, TicketFlags, APOptions). set always writes 4 octets with
 * 0 unused bits; get reads the first 32 bits (missing bits = 0, later bits ignored). */
int ck_asn1_flags_set(ASN1_BIT_STRING **bs, uint32_t flags);
int ck_asn1_flags_get(const ASN1_BIT_STRING *bs, uint32_t *flags);

/* Nonce / sequence number (UInt32 on the wire, ASN1_INTEGER here). get accepts -2^31..2^32-1 and
 * maps negatives to their 32-bit two's complement. set writes the value as MIT does: as a signed
 * 32-bit integer (so values >= 2^31 become negative, the form MIT's decoder accepts); generate
 * nonces with 31 bits. copy duplicates the peer's exact form (echo it in EncKDCRepPart). */
int ck_asn1_nonce_get(const ASN1_INTEGER *n, uint32_t *v);
int ck_asn1_nonce_set(ASN1_INTEGER **n, uint32_t v);
int ck_asn1_nonce_copy(ASN1_INTEGER **dst, const ASN1_INTEGER *src);

/* Optional Int32/UInt32 pointer fields (int32_t *pausec, uint32_t *kvno, ...). get returns dflt
 * when absent. clear frees and NULLs. */
int ck_asn1_int32_set(int32_t **p, int32_t v);
int32_t ck_asn1_int32_get(const int32_t *p, int32_t dflt);
int ck_asn1_uint32_set(uint32_t **p, uint32_t v);
uint32_t ck_asn1_uint32_get(const uint32_t *p, uint32_t dflt);
void ck_asn1_int32_clear(int32_t **p);
void ck_asn1_uint32_clear(uint32_t **p);

/* KerberosString / Realm. set: well-formed UTF-8 without control characters (< 0x20, 0x7f),
 * length 0..CK_ASN1_MAX_STRING (CK_ERR_INVAL / CK_ERR_LIMIT otherwise). Decoding is laxer: any
 * bytes except NUL. get returns the NUL-terminated contents ("" for NULL); eq compares with a C string exactly. */
int ck_asn1_kstring_set(ASN1_GENERALSTRING **s, const char *str);
int ck_asn1_kstring_set_len(ASN1_GENERALSTRING **s, const char *str, size_t len);
const char *ck_asn1_kstring_get(const ASN1_GENERALSTRING *s);
bool ck_asn1_kstring_eq(const ASN1_GENERALSTRING *s, const char *str);

/* OCTET STRING set (copies; len 0 allowed). */
int ck_asn1_octets_set(ASN1_OCTET_STRING **o, const uint8_t *data, size_t len);

/* PrincipalName. set replaces the components; new allocates. component returns a NUL-terminated
 * pointer into p (valid while p lives). equal compares components (not name-type, RFC 4120 §6.2). */
int ck_asn1_principal_set(CK_PRINCIPAL_NAME *p, int32_t name_type,
                          const char *const *components, size_t n);
int ck_asn1_principal_new(int32_t name_type, const char *const *components, size_t n,
                          CK_PRINCIPAL_NAME **out);
size_t ck_asn1_principal_count(const CK_PRINCIPAL_NAME *p);
int ck_asn1_principal_component(const CK_PRINCIPAL_NAME *p, size_t i, const char **s,
                                size_t *len);
bool ck_asn1_principal_equal(const CK_PRINCIPAL_NAME *a, const CK_PRINCIPAL_NAME *b);
/* "comp1/comp2@REALM" in MIT's syntax ('/', '@', '\\' escaped with '\\'; NUL/tab/newline/
 * backspace as \0 \t \n \b); realm may be NULL (no "@..."). CK_ERR_LIMIT if bufsize is too small. */
int ck_asn1_principal_unparse(const CK_PRINCIPAL_NAME *p, const ASN1_GENERALSTRING *realm,
                              char *buf, size_t bufsize);
/* Parses MIT syntax; *realm is NULL when the string has no '@'. realm may be NULL to refuse/ignore
 * (then a realm part is an error). */
int ck_asn1_principal_parse(const char *str, int32_t name_type, CK_PRINCIPAL_NAME **name,
                            ASN1_GENERALSTRING **realm);

/* EncryptedData: kvno NULL = absent. */
int ck_asn1_enc_data_set(CK_ENCRYPTED_DATA *ed, int32_t etype, const uint32_t *kvno,
                         const uint8_t *cipher, size_t len);
/* EncryptionKey / Checksum setters (copy the bytes). */
int ck_asn1_enc_key_set(CK_ENCRYPTION_KEY *k, int32_t keytype, const uint8_t *key, size_t len);
int ck_asn1_checksum_set(CK_CHECKSUM *c, int32_t cksumtype, const uint8_t *data, size_t len);

/* PA-DATA: add appends (allocating *md if NULL; CK_ERR_LIMIT beyond CK_ASN1_MAX_PADATA);
 * find returns the first entry of that type or NULL. */
int ck_asn1_padata_add(CK_METHOD_DATA **md, int32_t type, const uint8_t *value, size_t len);
const CK_PA_DATA *ck_asn1_padata_find(const CK_METHOD_DATA *md, int32_t type);

/* ETYPE-INFO2: append an entry; salt and s2kparams may be NULL (absent). */
int ck_asn1_etype_info2_add(CK_ETYPE_INFO2 **info, int32_t etype, const char *salt,
                            const uint8_t *s2kparams, size_t s2kparams_len);

/* KDC-REQ-BODY etype list. get copies up to max entries (CK_ERR_LIMIT if more); set replaces. */
int ck_asn1_etypes_get(const CK_KDC_REQ_BODY *b, int32_t *out, size_t max, size_t *n);
int ck_asn1_etypes_set(CK_KDC_REQ_BODY *b, const int32_t *etypes, size_t n);

/* HostAddresses / AuthorizationData append helpers. */
int ck_asn1_host_address_add(CK_HOST_ADDRESSES **addrs, int32_t type, const uint8_t *addr,
                             size_t len);
int ck_asn1_ad_add(CK_AUTHORIZATION_DATA **ad, int32_t type, const uint8_t *data, size_t len);

#endif
