/* Internals of lib/asn1 shared between its files. */
#ifndef CABLEKEY_ASN1_INT_H
#define CABLEKEY_ASN1_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/asn1.h>

#include "cablekey/krb5_asn1.h"

/* Checks that der[0..len) is exactly one DER TLV: definite minimal lengths, low-form tags,
 * universal types constructed exactly when SEQUENCE/SET, nesting <= CK_ASN1_MAX_DEPTH and total
 * size <= max (CK_ASN1_MAX_MSG for ck_asn1_der_scan). `what` names the type for errors. */
int ck_asn1_der_scan(const uint8_t *der, size_t len, const char *what);
int ck_asn1_der_scan_max(const uint8_t *der, size_t len, const char *what, size_t max);

/* Strict KerberosTime parse (exactly YYYYMMDDHHMMSSZ, valid ranges); 0 or CK_ERR_DECODE. */
int ck_asn1_time_parse(const unsigned char *s, size_t len, int64_t *secs);

/* Ticket's untagged SEQUENCE item: its ASN1_ENCODING cache holds this item's encoding. */
DECLARE_ASN1_ITEM(CK_TICKET_SEQ)

/* pkinit_tmpl.c: a DER SEQUENCE kept verbatim, and the EXPLICIT-form items of the pk-init
 * draft PA-PK-AS-REQ / PA-PK-AS-REP (same structs as CK_PA_PK_AS_REQ_DRAFT9 /
 * CK_PA_PK_AS_REP_DRAFT9, whose own items are the IMPLICIT form). */
DECLARE_ASN1_ITEM(CK_RAW_SEQ)
DECLARE_ASN1_ITEM(CK_PA_PK_AS_REQ_DRAFT9_EXP)
DECLARE_ASN1_ITEM(CK_PA_PK_AS_REP_DRAFT9_EXP)

/* ---- validated codec machinery (krb5_codec.c), reused by pkinit_codec.c ----------------- */

/* Per-type caps: whole input/output, OCTET STRING contents, and padata-value contents. */
struct ck_asn1_limits {
    size_t max_msg;
    size_t max_octets;
    size_t max_padata;
};
extern const struct ck_asn1_limits ck_asn1_limits_default; /* CK_ASN1_MAX_MSG / _OCTETS */

struct ck_asn1_vctx {
    const char *type;  /* message name for error context */
    bool encoding;     /* validating before encode (stricter about BIT STRING form) */
    size_t max_octets; /* from the type's limits */
    size_t max_padata;
};

typedef struct ck_asn1_vctx ck_vctx;

typedef int (*ck_asn1_validate_fn)(const ck_vctx *c, const void *v, int tag);

/* DER pre-scan (with lim->max_msg) -> template d2i -> no trailing bytes -> check(). */
int ck_asn1_decode_item(const uint8_t *der, size_t len, const ASN1_ITEM *it, const char *name,
                        const struct ck_asn1_limits *lim, ck_asn1_validate_fn check, int tag,
                        void **out);
/* check() (CK_ERR_ENCODE on failure) -> i2d -> size <= lim->max_msg. */
int ck_asn1_encode_item(const void *v, const ASN1_ITEM *it, const char *name,
                        const struct ck_asn1_limits *lim, ck_asn1_validate_fn check, int tag,
                        uint8_t **der, size_t *len);

#define CK_ASN1_MAND false
#define CK_ASN1_OPT true

/* Field validators: 0 or CK_ERR_DECODE with "<type>: <field> <why>". */
int ck_asn1_fail(const ck_vctx *c, const char *field, const char *why);
int ck_asn1_v_int32_range(const ck_vctx *c, const char *field, int64_t v, int64_t min,
                          int64_t max);
int ck_asn1_v_time(const ck_vctx *c, const char *field, const ASN1_GENERALIZEDTIME *t,
                   bool opt);
int ck_asn1_v_kstring(const ck_vctx *c, const char *field,
                      const ASN1_GENERALSTRING *s, bool opt);
int ck_asn1_v_octets(const ck_vctx *c, const char *field, const ASN1_OCTET_STRING *o,
                     bool opt);
int ck_asn1_v_octets_max(const ck_vctx *c, const char *field,
                         const ASN1_OCTET_STRING *o, bool opt, size_t max);
int ck_asn1_v_uint32ish(const ck_vctx *c, const char *field, const ASN1_INTEGER *n,
                        bool opt);
int ck_asn1_v_flags(const ck_vctx *c, const char *field, const ASN1_BIT_STRING *b);
int ck_asn1_v_principal(const ck_vctx *c, const char *field,
                        const CK_PRINCIPAL_NAME *p, bool opt);
int ck_asn1_v_key(const ck_vctx *c, const char *field, const CK_ENCRYPTION_KEY *k,
                  bool opt);
int ck_asn1_v_checksum(const ck_vctx *c, const char *field, const CK_CHECKSUM *k,
                       bool opt);
int ck_asn1_v_padata(const ck_vctx *c, const char *field, const CK_METHOD_DATA *m,
                     bool opt);

#endif
