/* Internals of lib/asn1 shared between its files. */
#ifndef CABLEKEY_ASN1_INT_H
#define CABLEKEY_ASN1_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/asn1.h>

/* Checks that der[0..len) is exactly one TLV with definite lengths, low-form tags, nesting
 * <= CK_ASN1_MAX_DEPTH and total size <= CK_ASN1_MAX_MSG. `what` names the type for errors. */
int ck_asn1_der_scan(const uint8_t *der, size_t len, const char *what);

/* Strict KerberosTime parse (exactly YYYYMMDDHHMMSSZ, valid ranges); 0 or CK_ERR_DECODE. */
int ck_asn1_time_parse(const unsigned char *s, size_t len, int64_t *secs);

/* Ticket's untagged SEQUENCE item: its ASN1_ENCODING cache holds this item's encoding. */
DECLARE_ASN1_ITEM(CK_TICKET_SEQ)

#endif
