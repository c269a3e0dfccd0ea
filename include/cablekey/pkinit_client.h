/* PKINIT client (RFC 4556, RFC 5349 ECDH, RFC 8636 KDFs, RFC 8070 freshness) and the PacketCable
 * pk-init draft form an MTA uses: an AS exchange pre-authenticated with an X.509 identity, whose
 * reply key comes from Diffie-Hellman / ECDH or from RSA key transport instead of a password.
 * Implemented in lib/pkinit/client.c on top of the AS exchange of lib/krb/client_as.c and the
 * CMS / DH / chain primitives of include/cablekey/pkinit.h.
 *
 * The exchange (RFC mode):
 *   1. AS-REQ with an empty PA-AS-FRESHNESS and no PKINIT (as MIT kinit does), unless
 *      preauth_first. The KDC answers KDC_ERR_PREAUTH_REQUIRED, offering PA-PK-AS-REQ and a
 *      freshness token; a KDC that issues a ticket without pre-authentication gets step 2 too.
 *   2. AS-REQ with PA-PK-AS-REQ (16): a SignedData (id-pkinit-authData, signed attributes,
 *      SHA-256) of an AuthPack { PKAuthenticator { cusec, ctime, nonce = req-body nonce,
 *      paChecksum = SHA-1 of the DER req-body, freshnessToken, paChecksum2 (SHA-256) },
 *      clientPublicValue (DH/ECDH; absent for RSA key transport), supportedCMSTypes,
 *      clientDHNonce (optional), supportedKDFs sha256, sha1, sha512 }, plus the empty
 *      PA-AS-FRESHNESS and any PA-FX-COOKIE the KDC sent.
 *   3. KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED with TD-DH-PARAMETERS: once, the first group the
 *      KDC lists that we implement. KDC_ERR_PREAUTH_REQUIRED / KDC_ERR_PREAUTH_EXPIRED carrying
 *      a new freshness token: once, with that token. Every other KRB-ERROR ends the exchange.
 *   4. PA-PK-AS-REP (17): dhInfo -> the KDC's SignedData (id-pkinit-DHKeyData) verified and its
 *      signer validated against the anchors (see "KDC certificate"), KDCDHKeyInfo.nonce == our
 *      nonce, Z from the KDC's public value, reply key by the KDF the KDC chose (or RFC 4556
 *      octetstring2key when it chose none); encKeyPack -> EnvelopedData decrypted with our key,
 *      inner SignedData (id-pkinit-rkeyData) verified, ReplyKeyPack.asChecksum (key usage 6)
 *      over the DER AS-REQ checked with the reply key. The AS-REP enc-part is then decrypted with
 *      the reply key and checked like any AS-REP.
 *
 * PacketCable mode (docs/PROTOCOL-NOTES §3.2; opt-in: it is a downgrade to MD5 and SHA-1): one
 * AS-REQ with PA-PK-AS-REQ-OLD (14) in the draft form (EXPLICIT tags, as the only public
 * PacketCable client wrote it), AuthPack { PKAuthenticator { cusec, ctime, nonce, paChecksum =
 * Checksum { rsa-md5 (7), MD5 of the DER req-body } } } signed without signed attributes with
 * SHA-1 (SignerInfo v1, issuerAndSerialNumber), RSA key transport only, plus
 * PA-PROV-SRV-LOCATION (-1, a GeneralString) when prov_server is set. Reply: PA-PK-AS-REP-OLD
 * (15) encKeyPack -> ReplyKeyPack-draft9 { replyKey, nonce }; a nonce other than the AS-REQ's is
 * refused as KRB_AP_ERR_MODIFIED. The KDC's SignedData may use SHA-1 (RFC form accepted too).
 *
 * KDC certificate (decided here, as MIT's client does by default): its chain must validate
 * against the caller's anchors at `now` with the id-pkinit-KPKdc EKU, and it must name
 * krbtgt/REALM@REALM in id-pkinit-san, or, when kdc_hostname is set, carry that dNSName in its
 * subjectAltName (MIT's pkinit_kdc_hostname; the EKU is still required). Candidate intermediates
 * are the certificates the KDC's SignedData carries plus the client identity's own chain. */
#ifndef CABLEKEY_PKINIT_CLIENT_H
#define CABLEKEY_PKINIT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/client.h"
#include "cablekey/pki.h"
#include "cablekey/pkinit.h"

/* How the reply key is agreed. */
typedef enum ck_pkinit_kx {
    CK_PKINIT_KX_DH = 0, /* Diffie-Hellman / ECDH in params->group (default MODP 2048) */
    CK_PKINIT_KX_RSA,    /* RSA key transport (needs an RSA identity) */
} ck_pkinit_kx;

#define CK_PKINIT_DH_NONCE_LEN 32 /* clientDHNonce bytes when one is sent (RFC 4556: >= 32) */

typedef struct ck_pkinit_client_params {
    /* realm, transport, enctypes, lifetime, ... as for a password login. as->client may be NULL:
     * then the first id-pkinit-san principal of the identity's certificate in as->realm
     * (ck_pkinit_client_principal). as->preauth_first: PKINIT in the first AS-REQ. */
    const ck_as_params *as;
    const ck_pki_identity *identity;   /* required: key, certificate and chain */
    const ck_pkinit_anchors *anchors;  /* required: trust anchors for the KDC's certificate */
    ck_pkinit_kx kx;
    ck_pkinit_group group;             /* DH/ECDH group; CK_PKINIT_GROUP_NONE = MODP 2048 */
    bool packetcable;                  /* the PacketCable draft form (implies RSA transport) */
    const char *prov_server;           /* PacketCable: PA-PROV-SRV-LOCATION value, or NULL */
    const char *kdc_hostname;          /* also accept a KDC certificate with this dNSName */
    bool client_dh_nonce;              /* send a clientDHNonce (only DH/ECDH) */
    bool no_pa_checksum2;              /* omit RFC 8636 paChecksum2 (SHA-256) */
    int64_t now;                       /* time for certificate validation; 0 = the clock */
} ck_pkinit_client_params;

/* What the exchange did (optional output; valid after success). */
typedef struct ck_pkinit_client_info {
    bool packetcable;
    ck_pkinit_kx kx;
    ck_pkinit_group group;   /* the group of the successful exchange (DH/ECDH) */
    int kdf;                 /* CK_PKINIT_KDF_* the KDC chose, 0 = octetstring2key or RSA */
    int32_t reply_enctype;   /* enctype of the reply key */
    int requests;            /* AS-REQs sent */
    bool group_retry;        /* the KDC refused the first group and named another */
    bool freshness;          /* a freshness token was sent */
} ck_pkinit_client_info;

/* Gets credentials (a TGT unless as->service names another service) with the identity. Errors:
 * CK_ERR_KRB with the Kerberos code for a KRB-ERROR the exchange cannot recover from (e.g. 70,
 * the KDC cannot verify our certificate); CK_ERR_POLICY when the KDC's certificate is refused
 * (untrusted chain, EKU, name); CK_ERR_INTEGRITY for a bad signature, a failed decryption or a
 * wrong ReplyKeyPack checksum, and with Kerberos code KRB_AP_ERR_MODIFIED (41) for a nonce
 * that does not match ours; CK_ERR_PROTO for a reply that does not fit the request;
 * CK_ERR_INVAL for bad parameters (e.g. RSA transport with an EC identity). The context says
 * what happened in one line and never holds key material. info may be NULL. */
int ck_client_as_pkinit(const ck_pkinit_client_params *p, ck_creds **out,
                        ck_pkinit_client_info *info);

/* The principal a certificate logs in as by default: its first id-pkinit-san principal in realm
 * ("name@REALM", malloc'd). CK_ERR_NOTFOUND if it has none in that realm (device certificates,
 * whose subject holds only the MAC: the principal must then be given). */
int ck_pkinit_client_principal(X509 *cert, const char *realm, char **out);

/* "DH modp2048", "ECDH P-256", "RSA", "PacketCable RSA" (for messages). */
const char *ck_pkinit_client_mode_name(const ck_pkinit_client_info *info);

#endif
