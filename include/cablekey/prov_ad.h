/* The unprovisioned device's restriction, carried in the ticket's authorization data (issue 10,
 * seed 002 FIG. 7 step 710: "This restriction may be placed inside the authorization-data field
 * inside the Kerberos ticket"). docs/PROTOCOL.md "Restricted calls authorization data".
 *
 * The KDC puts one element in every ticket it issues to a device that logged in with its
 * manufacturer certificate (an unprovisioned device, or a provisioned one that lost its
 * operator certificate), wrapped in AD-IF-RELEVANT (ad-type 1) so that services that do not
 * know it still accept the ticket; the TGS copies it from the TGT into every service ticket.
 * It is inside the encrypted ticket, so the client can neither remove nor change it.
 * cablekey-cms refuses any call from such a ticket's client to a number not in the list.
 *
 *   ad-type  -2002 (CK_AD_CABLEKEY_RESTRICTED; negative ad-types are for local use, RFC 4120
 *            §7.5.4)
 *   ad-data  DER of
 *     RestrictedCalls ::= SEQUENCE {
 *         version   [0] INTEGER (1),
 *         mac       [1] OCTET STRING (SIZE (6)),      -- from the manufacturer certificate
 *         key-hash  [2] OCTET STRING (SIZE (32)),     -- SHA-256 of its DER SubjectPublicKeyInfo
 *         numbers   [3] SEQUENCE (SIZE (1..16)) OF IA5String (SIZE (1..15))  -- digits only
 *     }
 * Encoded with OpenSSL ASN.1 templates (lib/asn1/prov_ad.c); the decoder is strict (DER,
 * version 1, sizes, digits) and bounded. Endpoint library. */
#ifndef CABLEKEY_PROV_AD_H
#define CABLEKEY_PROV_AD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/krb5_asn1.h"

#define CK_AD_CABLEKEY_RESTRICTED (-2002)
#define CK_AD_RESTRICTED_MAX_NUMBERS 16
#define CK_AD_RESTRICTED_NUMBER_MAX 15

typedef struct ck_ad_restricted {
    uint8_t mac[6];
    uint8_t key_sha256[32];
    size_t n_numbers;
    char numbers[CK_AD_RESTRICTED_MAX_NUMBERS][CK_AD_RESTRICTED_NUMBER_MAX + 1];
} ck_ad_restricted;

/* The ad-data bytes alone. */
int ck_ad_restricted_encode(const ck_ad_restricted *r, uint8_t **der, size_t *len);
int ck_ad_restricted_decode(const uint8_t *der, size_t len, ck_ad_restricted *out);
/* Appends the element, wrapped in AD-IF-RELEVANT, to *ad (created when NULL). */
int ck_ad_restricted_add(CK_AUTHORIZATION_DATA **ad, const ck_ad_restricted *r);
/* Looks for the element at the top level and inside AD-IF-RELEVANT elements (one level).
 * 0 with *found false when absent; CK_ERR_DECODE when present but malformed (a service must
 * then refuse the ticket: a restriction it cannot read is not "no restriction"); CK_ERR_POLICY
 * when it appears twice. */
int ck_ad_restricted_find(const CK_AUTHORIZATION_DATA *ad, ck_ad_restricted *out, bool *found);
/* Is number allowed by r (exact match)? */
bool ck_ad_restricted_allows(const ck_ad_restricted *r, const char *number);

#endif
