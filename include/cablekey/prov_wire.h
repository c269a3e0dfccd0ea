/* The provisioning server's two wire protocols (issue 10). Endpoint library (no store): the
 * KDC, cablekey-prov and `cablekey mta` all link it.
 *
 * 1. MTA-FQDN, UDP 2246, KDC -> provisioning server (../shared/docs/PROTOCOL-NOTES.md §3.5,
 *    docs/PROTOCOL.md "MTA-FQDN"): the KDC confirms a provisioned PacketCable MTA's identity
 *    during PKINIT. One datagram each way:
 *      request = DER AP-REQ | DER KRB-SAFE      reply = DER AP-REP | DER KRB-SAFE
 *    The AP-REQ carries a ticket for mtafqdn/<prov-host>@REALM that the KDC mints itself under
 *    that principal's key from its database (it is the KDC), with a subkey and a sequence number;
 *    KRB-SAFE is keyed with that subkey (RFC 4120 §5.6, timestamp + sequence number). Its
 *    user-data (all big-endian, as Wireshark's pktc dissector reads it):
 *      u8 type (1 Request, 2 Reply, 3 Error Reply) | u32 enterprise (4491) | u8 version (1) |
 *      Request: mac[6] | sha1 of the MTA's DER SubjectPublicKeyInfo [20] |
 *               u32 manufacturer-certificate revocation time (0: not revoked)
 *      Reply:   FQDN (ASCII, no length: runs to 4 bytes before the end) | IPv4[4] (0: none)
 *      Error:   u32 code (enum ck_mtafqdn_error) | text (ASCII, to the end, <= 255 bytes)
 *
 * 2. The device channel, TCP and UDP 7467, device -> cablekey-prov (docs/PROTOCOL.md "Device
 *    channel"): a device fetches and acknowledges its operator certificate, and asks whether to
 *    keep a certificate the KDC refused, over a channel authenticated by its Kerberos ticket
 *    (a restricted, unprovisioned ticket is enough). Envelope as the key version service's
 *    (keyagent.h) with version 0xCB02 and a ticket for prov/<prov-host>@REALM:
 *      request:  length (2) | version 0xCB02 (2) | AP-REQ length (2) | AP-REQ (subkey, seq) |
 *                KRB-PRIV under the subkey, user data = ck_provdev_req
 *      reply:    length (2) | version (2) | AP-REP length (2) | AP-REP | KRB-PRIV under the
 *                subkey, user data = ck_provdev_rep; or AP-REP length 0 and a KRB-ERROR
 *      request user data: type (1) | cert id (8) | sha256 (32)
 *      reply user data:   result (2) | text length (2) | text | instruction (1) |
 *                         cert id (8) | n certs (1) | n x { length (2) | DER }
 *    The device is the ticket's client principal: cablekey-prov maps it to the device row.
 *    Over TCP each message has Kerberos' 4-byte length prefix, as the key version service.
 * Every decoder is bounded (limits below), trailing bytes are an error. */
#ifndef CABLEKEY_PROV_WIRE_H
#define CABLEKEY_PROV_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/crypto.h"

/* ---- MTA-FQDN ---------------------------------------------------------------------------- */
#define CK_MTAFQDN_PORT 2246
#define CK_MTAFQDN_ENTERPRISE 4491
#define CK_MTAFQDN_VERSION 1
#define CK_MTAFQDN_SERVICE "mtafqdn"    /* mtafqdn/<prov-host>@REALM */
#define CK_MTAFQDN_FQDN_MAX 253
#define CK_MTAFQDN_TEXT_MAX 255
#define CK_MTAFQDN_MAX_DGRAM 8192

enum ck_mtafqdn_type { CK_MTAFQDN_REQUEST = 1, CK_MTAFQDN_REPLY = 2, CK_MTAFQDN_ERROR = 3 };
enum ck_mtafqdn_error {
    CK_MTAFQDN_ERR_UNKNOWN_DEVICE = 1, /* the MAC is not a provisioned device */
    CK_MTAFQDN_ERR_KEY_MISMATCH = 2,   /* the key hash is not the device's */
    CK_MTAFQDN_ERR_REVOKED = 3,        /* revoked device or manufacturer certificate */
    CK_MTAFQDN_ERR_INTERNAL = 4,       /* the server failed (database): try later */
    CK_MTAFQDN_ERR_MALFORMED = 5,
};

typedef struct ck_mtafqdn_msg {
    uint8_t type;                       /* enum ck_mtafqdn_type */
    uint32_t enterprise;
    uint8_t version;
    uint8_t mac[6];                     /* request */
    uint8_t spki_sha1[20];              /* request */
    uint32_t mfg_revoked;               /* request */
    char fqdn[CK_MTAFQDN_FQDN_MAX + 1]; /* reply: [A-Za-z0-9.-], 1..253 */
    uint8_t ipv4[4];                    /* reply */
    uint32_t error;                     /* error */
    char text[CK_MTAFQDN_TEXT_MAX + 1]; /* error */
} ck_mtafqdn_msg;

/* The KRB-SAFE user-data payload alone. */
int ck_mtafqdn_payload_encode(const ck_mtafqdn_msg *m, uint8_t **out, size_t *out_len);
int ck_mtafqdn_payload_decode(const uint8_t *data, size_t len, ck_mtafqdn_msg *out);
/* A datagram's two DER elements: *first_len bytes of AP-REQ/AP-REP, then the KRB-SAFE (or a
 * KRB-ERROR alone: *first_len == len and the message is one KRB-ERROR). */
int ck_mtafqdn_split(const uint8_t *dgram, size_t len, size_t *first_len);

/* Server side (cablekey-prov): verifies the AP-REQ with key_fn (the prov keytab, expected
 * server mtafqdn/<host>@REALM, rc the replay cache), reads the KRB-SAFE, decodes the request,
 * asks lookup, and builds the reply datagram (AP-REP + KRB-SAFE, or a KRB-ERROR when the AP-REQ
 * did not verify). Returns 0 with a reply to send, or a negative code when nothing should be
 * sent (garbage). */
typedef int (*ck_mtafqdn_lookup_fn)(void *arg, const ck_mtafqdn_msg *req, ck_mtafqdn_msg *rep);
int ck_mtafqdn_serve(const uint8_t *dgram, size_t len, ck_ap_key_fn key_fn, void *key_arg,
                     const char *expected_server, ck_rcache *rc, int64_t clockskew, int64_t now,
                     ck_mtafqdn_lookup_fn lookup, void *lookup_arg, uint8_t **out,
                     size_t *out_len);

/* Client side (the KDC): builds the request datagram from a ticket and session key the caller
 * minted, and reads the reply. *state keeps the subkey and sequence numbers between the two.
 * now is the caller's clock (the KDC's, injectable): the authenticator's ctime and the KRB-SAFE
 * timestamp are both now (0: the system clock). */
typedef struct ck_mtafqdn_client {
    ck_key subkey;
    uint32_t seq;
    int64_t ctime;
    int32_t cusec;
    ck_key session_key;
} ck_mtafqdn_client;
int ck_mtafqdn_request_build(const CK_TICKET *ticket, const ck_key *session_key,
                             const char *client_realm, const char *client_name,
                             const ck_mtafqdn_msg *req, int64_t now, ck_mtafqdn_client *state,
                             uint8_t **out, size_t *out_len);
/* 0 with *rep filled (type REPLY or ERROR), CK_ERR_KRB for a KRB-ERROR, CK_ERR_INTEGRITY when
 * the AP-REP or KRB-SAFE does not verify. */
int ck_mtafqdn_reply_read(const uint8_t *dgram, size_t len, ck_mtafqdn_client *state,
                          int64_t clockskew, int64_t now, ck_mtafqdn_msg *rep);
void ck_mtafqdn_client_clear(ck_mtafqdn_client *state);

/* An FQDN as the reply carries it: 1..253 bytes, labels of 1..63 [A-Za-z0-9-], dot-separated. */
bool ck_mtafqdn_fqdn_ok(const char *fqdn);
/* The ticket the KDC mints for the request (it is the KDC: no TGS exchange): for server
 * ("mtafqdn/<host>@REALM") sealed under service_key/kvno, client CK_MTAFQDN_CLIENT (the
 * realm's krbtgt: the server refuses any other client), flags INITIAL|PRE-AUTHENT, valid from
 * now for lifetime seconds, with a fresh session key of the service key's enctype. */
#define CK_MTAFQDN_CLIENT "krbtgt"      /* krbtgt/REALM@REALM */
/* The request's key hash: SHA-1 of the certificate's DER SubjectPublicKeyInfo (the same for
 * the manufacturer and the operator certificate: they certify one key). */
int ck_mtafqdn_spki_sha1(const uint8_t *cert_der, size_t cert_len, uint8_t out[20]);
int ck_mtafqdn_spki_sha1_cert(X509 *cert, uint8_t out[20]);
int ck_mtafqdn_ticket_mint(const char *server, const ck_key *service_key, uint32_t kvno,
                           const char *client, int64_t now, int64_t lifetime,
                           CK_TICKET **ticket, ck_key *session_key);

/* ---- the device channel ------------------------------------------------------------------ */
#define CK_PROVDEV_VERSION 0xCB02
#define CK_PROVDEV_PORT 7467
#define CK_PROVDEV_SERVICE "prov"       /* prov/<prov-host>@REALM */
#define CK_PROVDEV_MAX_MSG 65535
#define CK_PROVDEV_MAX_CERTS 4          /* the device's certificate and its CA chain */
#define CK_PROVDEV_CERT_MAX 8192        /* DER bytes per certificate */
#define CK_PROVDEV_TEXT_MAX 512

enum ck_provdev_type {
    CK_PROVDEV_FETCH = 1,   /* send me my current operator certificate */
    CK_PROVDEV_ACK = 2,     /* I installed certificate cert_id */
    CK_PROVDEV_CHECK = 3,   /* the KDC refused my operator certificate (sha256): keep or drop? */
};
enum ck_provdev_result {
    CK_PROVDEV_OK = 0,
    CK_PROVDEV_MALFORMED = 1,
    CK_PROVDEV_HARDERROR = 2,     /* the server failed: try later */
    CK_PROVDEV_AUTHERROR = 3,
    CK_PROVDEV_NOT_A_DEVICE = 4,  /* the ticket's client is no device of this realm */
    CK_PROVDEV_NO_CERT = 5,       /* FETCH: nothing issued (not provisioned yet) */
    CK_PROVDEV_NOTFOUND = 6,      /* ACK of a certificate that is not the device's current one */
};
enum ck_provdev_instruction {
    CK_PROVDEV_KEEP = 0,          /* keep the certificate (or: no instruction) */
    CK_PROVDEV_DROP = 1,          /* the certificate is not valid here: remove it and go
                                   * unprovisioned. The only way a device ever drops one. */
};
const char *ck_provdev_result_name(int code);

typedef struct ck_provdev_req {
    uint8_t type;                 /* enum ck_provdev_type */
    int64_t cert_id;              /* ACK */
    uint8_t sha256[32];           /* CHECK: of the refused certificate's DER */
} ck_provdev_req;

typedef struct ck_provdev_rep {
    uint16_t result;
    char text[CK_PROVDEV_TEXT_MAX + 1];
    uint8_t instruction;          /* CHECK */
    int64_t cert_id;              /* FETCH */
    size_t n_certs;               /* FETCH: [0] the device's, then its issuer chain */
    uint8_t *certs[CK_PROVDEV_MAX_CERTS];
    size_t cert_lens[CK_PROVDEV_MAX_CERTS];
} ck_provdev_rep;
void ck_provdev_rep_clear(ck_provdev_rep *rep);

int ck_provdev_req_encode(const ck_provdev_req *req, uint8_t **out, size_t *out_len);
int ck_provdev_req_decode(const uint8_t *data, size_t len, ck_provdev_req *out);
int ck_provdev_rep_encode(const ck_provdev_rep *rep, uint8_t **out, size_t *out_len);
int ck_provdev_rep_decode(const uint8_t *data, size_t len, ck_provdev_rep *out);

/* Server side (cablekey-prov): verifies the envelope (key_fn over the prov keytab, expected
 * server prov/<host>@REALM, replay cache), calls handle with the authenticated client principal
 * ("name@REALM") and the request, and seals its reply. */
typedef int (*ck_provdev_handle_fn)(void *arg, const char *client, const ck_provdev_req *req,
                                    ck_provdev_rep *rep);
int ck_provdev_serve(const uint8_t *msg, size_t len, ck_ap_key_fn key_fn, void *key_arg,
                     const char *expected_server, ck_rcache *rc, int64_t clockskew, int64_t now,
                     ck_provdev_handle_fn handle, void *handle_arg, uint8_t **out,
                     size_t *out_len);

/* Client side (`cablekey mta`): one exchange over svc (lib/krb transport, always TCP: its UDP
 * path takes only Kerberos-tagged datagrams; the server answers UDP too, for other clients)
 * with a ticket for prov/<host>@REALM from creds. A send_fn in svc replaces the network. */
int ck_provdev_exchange(const ck_kdc_transport *svc, const ck_creds *creds,
                        const ck_provdev_req *req, int64_t clockskew, ck_provdev_rep *rep);

#endif
