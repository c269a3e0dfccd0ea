/* PKINIT reply-key derivation from the Diffie-Hellman shared secret Z:
 *   - RFC 8636 §5 KDF (NIST SP 800-56A single-step KDF, OpenSSL "SSKDF") when the KDC chose a
 *     KDF from the client's supportedKDFs (DHRepInfo.kdf present);
 *   - RFC 4556 §3.2.3.1 octetstring2key when it did not (clients without supportedKDFs).
 * Both end with random-to-key of the reply enctype. Z is the DH/ECDH shared secret as RFC 4556
 * defines it: for DH, left-padded to the length of p (EVP_PKEY_CTX_set_dh_pad); for ECDH, the
 * x-coordinate. Implemented in lib/pkinit/kdf.c. */
#ifndef CABLEKEY_PKINIT_KDF_H
#define CABLEKEY_PKINIT_KDF_H

#include <stddef.h>
#include <stdint.h>

#include "cablekey/crypto.h"
#include "cablekey/krb5_asn1.h"

/* RFC 8636 KDF identifiers (id-pkinit-kdf-ah-*; see ck_pkinit_kdf_id_set/_get in
 * pkinit_asn1.h for the OIDs). */
#define CK_PKINIT_KDF_SHA1 1   /* 1.3.6.1.5.2.3.6.1 */
#define CK_PKINIT_KDF_SHA256 2 /* 1.3.6.1.5.2.3.6.2 */
#define CK_PKINIT_KDF_SHA512 3 /* 1.3.6.1.5.2.3.6.3 */
#define CK_PKINIT_KDF_SHA384 4 /* 1.3.6.1.5.2.3.6.4 */

/* Longest Z accepted (DH-8192 = 1024 bytes; the rest is headroom). */
#define CK_PKINIT_MAX_Z 1024

/* RFC 8636 KDF. client/kdc are the principal names exactly as they appear in the AS-REQ
 * (cname, and sname = krbtgt/REALM): the name-type is part of the KDF input. as_req is the DER
 * AS-REQ as the client sent it, pk_as_rep the DER PA-PK-AS-REP as the KDC sent it. enctype must
 * be supported by lib/crypto (CK_ERR_UNSUPPORTED otherwise); out receives the reply key. */
int ck_pkinit_kdf(int kdf, const uint8_t *z, size_t z_len, const CK_PRINCIPAL_NAME *client,
                  const char *client_realm, const CK_PRINCIPAL_NAME *kdc, const char *kdc_realm,
                  int32_t enctype, const uint8_t *as_req, size_t as_req_len,
                  const uint8_t *pk_as_rep, size_t pk_as_rep_len, ck_key *out);

/* The same derivation stopping before random-to-key: writes out_len bytes of SSKDF output. Used
 * for enctypes lib/crypto does not implement (the RFC 8636 des3 vector) and by tests. */
int ck_pkinit_kdf_bytes(int kdf, const uint8_t *z, size_t z_len,
                        const CK_PRINCIPAL_NAME *client, const char *client_realm,
                        const CK_PRINCIPAL_NAME *kdc, const char *kdc_realm, int32_t enctype,
                        const uint8_t *as_req, size_t as_req_len, const uint8_t *pk_as_rep,
                        size_t pk_as_rep_len, uint8_t *out, size_t out_len);

/* RFC 4556 §3.2.3.1 octetstring2key(x), x = Z || clientDHNonce || serverDHNonce: K-truncate
 * of SHA1(0x00 || x) || SHA1(0x01 || x) || ..., then random-to-key. A nonce that was not sent
 * is passed as NULL/0 and contributes nothing to x. */
int ck_pkinit_octetstring2key(const uint8_t *z, size_t z_len, const uint8_t *client_dh_nonce,
                              size_t n1, const uint8_t *server_dh_nonce, size_t n2,
                              int32_t enctype, ck_key *out);

/* octetstring2key stopping before random-to-key (out_len bytes). */
int ck_pkinit_octetstring2key_bytes(const uint8_t *z, size_t z_len,
                                    const uint8_t *client_dh_nonce, size_t n1,
                                    const uint8_t *server_dh_nonce, size_t n2, uint8_t *out,
                                    size_t out_len);

#endif
