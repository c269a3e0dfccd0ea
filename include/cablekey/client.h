/* Kerberos client side: KDC transport (UDP with retries and exponential backoff, TCP fallback),
 * the AS exchange (password, keytab or prebuilt key; PA-ENC-TIMESTAMP preauthentication driven
 * by the KDC's PA-ETYPE-INFO2) and the TGS exchange (service tickets, renewal).
 *
 * Nothing here prints, logs or reads global configuration: every setting is an argument. A
 * KRB-ERROR from the KDC is returned as CK_ERR_KRB with the Kerberos code in ck_error_krb_code()
 * and the KDC's e-text (if any) in the error context. */
#ifndef CABLEKEY_CLIENT_H
#define CABLEKEY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/crypto.h"
#include "cablekey/keytab.h"
#include "cablekey/principal.h"

/* ---------------------------------------------------------------------------------------------
 * Transport.
 */

#define CK_KDC_DEFAULT_PORT 88
#define CK_KDC_DEFAULT_TIMEOUT_MS 3000      /* nominal (first) timeout, PacketCable */
#define CK_KDC_DEFAULT_MAX_TIMEOUT_MS 20000 /* ceiling of the doubled timeout */
#define CK_KDC_DEFAULT_MAX_TRIES 5          /* rounds: timeouts 3, 6, 12, 20, 20 s */
#define CK_KDC_DEFAULT_UDP_LIMIT 1465       /* MIT udp_preference_limit: larger goes to TCP */
#define CK_KDC_MAX_REPLY 65536              /* largest reply accepted (UDP or TCP) */
#define CK_KDC_MAX_KDCS 16                  /* addresses in one list */
#define CK_KDC_MAX_TRIES 32

/* Replaces the network: the request bytes in, a malloc'd reply out (tests, in-process KDCs,
 * benchmarks). Return 0 or a CK_ERR_* code. */
typedef int (*ck_kdc_send_fn)(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply,
                              size_t *reply_len);

/* Zero fields take the defaults above. */
typedef struct ck_kdc_transport {
    const char *const *kdcs;  /* "127.0.0.1:88", "[::1]:88", "host" (port 88); tried in order */
    size_t n_kdcs;
    int timeout_ms;           /* nominal timeout of the first round */
    int max_timeout_ms;       /* the timeout doubles each round up to this */
    int max_tries;            /* rounds over the whole KDC list */
    size_t udp_limit;         /* requests longer than this go straight to TCP */
    bool tcp_only;            /* never use UDP */
    ck_kdc_send_fn send_fn;   /* if set, used instead of the network */
    void *send_arg;
} ck_kdc_transport;

/* What ck_kdc_send did (optional output). */
typedef struct ck_kdc_send_info {
    bool tcp;          /* the reply came over TCP */
    bool too_big;      /* a UDP reply was KRB_ERR_RESPONSE_TOO_BIG and TCP was used */
    int tries;         /* datagrams / connections sent */
    int kdc_index;     /* which address of the list answered */
} ck_kdc_send_info;

/* Timeout (ms) of round `attempt` (0-based): nominal * 2^attempt, capped at max_ms. Pure.
 * (3000, 20000, 0..4) -> 3000, 6000, 12000, 20000, 20000. */
int ck_kdc_backoff_ms(int nominal_ms, int max_ms, int attempt);

/* Sends one request and returns the first well-formed Kerberos reply (any APPLICATION-tagged
 * message) in *reply (malloc'd, free()). UDP: each round sends once to every KDC, each time
 * waiting the round's timeout for a reply on any socket used so far (a late reply from a KDC
 * that was already given up on is still taken). A reply is only accepted on the socket that
 * sent the request (connected sockets). A KRB-ERROR 52 (response too big) switches that KDC to
 * TCP (4-byte big-endian length framing, RFC 4120 §7.2.2). CK_ERR_TIMEOUT if nobody answered. */
int ck_kdc_send(const ck_kdc_transport *t, const uint8_t *req, size_t req_len, uint8_t **reply,
                size_t *reply_len, ck_kdc_send_info *info);

/* The server side of the same TCP framing, for ck_net_config.tcp_framing (net.h): a 4-byte
 * big-endian length before every message and reply; a length with the reserved high bit set or
 * over the server's max_request is refused from the prefix alone (CK_NET_REQ_OVERSIZED). RFC 3244
 * kpasswd over TCP uses the same prefix. */
struct ck_net_framing;
extern const struct ck_net_framing ck_krb_tcp_framing;

/* ---------------------------------------------------------------------------------------------
 * Credentials.
 */
typedef struct ck_creds {
    ck_principal *client;
    ck_principal *server;
    ck_key session_key;
    uint8_t *ticket;        /* DER of the Ticket ([APPLICATION 1]), malloc'd */
    size_t ticket_len;
    int32_t ticket_etype;   /* enctype of the ticket's enc-part (for display) */
    uint32_t flags;         /* CK_TKT_FLG_* from the EncKDCRepPart */
    int64_t authtime;
    int64_t starttime;      /* = authtime when the KDC omitted it */
    int64_t endtime;
    int64_t renew_till;     /* 0 if not renewable */
} ck_creds;

/* Wipes the session key; accepts NULL. */
void ck_creds_free(ck_creds *c);
int ck_creds_copy(const ck_creds *src, ck_creds **out);

/* ---------------------------------------------------------------------------------------------
 * AS exchange.
 */
#define CK_CLIENT_MAX_ETYPES 16
#define CK_CLIENT_DEFAULT_LIFETIME (10 * 3600)

typedef struct ck_as_params {
    const char *realm;           /* required */
    const char *client;          /* "alice" or "alice@REALM" (must then equal realm) */
    const char *service;         /* NULL: krbtgt/REALM; "name/inst" in the client's realm */
    const int32_t *enctypes;     /* NULL: 18 17 20 19 (key variant: the key's enctype first) */
    size_t n_enctypes;
    int64_t lifetime;            /* seconds from now; 0: CK_CLIENT_DEFAULT_LIFETIME */
    int64_t renew_life;          /* > 0: RENEWABLE with rtime = now + renew_life */
    uint32_t kdc_options;        /* extra CK_KDC_OPT_* (FORWARDABLE, PROXIABLE, ...) */
    bool preauth_first;          /* send PA-ENC-TIMESTAMP in the first AS-REQ (default salt,
                                    first etype) instead of waiting for PREAUTH_REQUIRED */
    const ck_kdc_transport *transport; /* required */
} ck_as_params;

/* Gets credentials with a password: first AS-REQ without preauth (unless preauth_first); on
 * KRB-ERROR 25 the METHOD-DATA's PA-ETYPE-INFO2 names the etype, salt and s2kparams; the second
 * AS-REQ carries PA-ENC-TIMESTAMP (and echoes PA-FX-COOKIE). The AS-REP enc-part is decrypted
 * (usage 3) and checked: nonce, cname/crealm, sname/srealm, session key enctype requested. */
int ck_client_as_password(const ck_as_params *p, const char *password, ck_creds **out);
/* Same with the client's keys from a keytab: the entry for the etype ETYPE-INFO2 names (or,
 * without a hint, the first requested etype the keytab has). With enctypes NULL the request
 * lists the supported etypes the keytab holds for the client, in the default order. */
int ck_client_as_keytab(const ck_as_params *p, const ck_keytab *kt, ck_creds **out);
/* Same with a prebuilt long-term key (its salt is irrelevant). */
int ck_client_as_key(const ck_as_params *p, const ck_key *key, ck_creds **out);

/* Builds the first AS-REQ exactly as the exchange does (no padata), for tests and tools:
 * *der is malloc'd (free()), *nonce receives the 31-bit nonce. */
int ck_client_as_req_build(const ck_as_params *p, uint8_t **der, size_t *der_len,
                           uint32_t *nonce);

/* ---------------------------------------------------------------------------------------------
 * TGS exchange.
 */
typedef struct ck_tgs_params {
    const ck_creds *tgt;         /* required: a ticket for krbtgt/REALM@REALM */
    const char *service;         /* "host/svc.test" or "host/svc.test@REALM" (default: TGT's realm) */
    const int32_t *enctypes;     /* NULL: 18 17 20 19 */
    size_t n_enctypes;
    int64_t lifetime;            /* 0: up to the TGT's endtime */
    int64_t renew_life;          /* > 0: RENEWABLE */
    uint32_t kdc_options;        /* extra CK_KDC_OPT_* (FORWARDABLE, RENEW, ...) */
    bool use_subkey;             /* authenticator subkey; the reply is then under usage 9 */
    const ck_kdc_transport *transport; /* required */
} ck_tgs_params;

/* Gets a service ticket with a TGT: PA-TGS-REQ = AP-REQ (ticket = TGT, authenticator usage 7,
 * checksum of the session key's mandatory type, usage 6, over the DER of KDC-REQ-BODY). The
 * TGS-REP enc-part is decrypted (usage 8, or 9 with a subkey) and checked: nonce, sname/srealm,
 * cname/crealm. */
int ck_client_tgs(const ck_tgs_params *p, ck_creds **out);
/* Renews a renewable ticket (RENEW option, the ticket itself in the AP-REQ, sname = its server). */
int ck_client_renew(const ck_creds *creds, const ck_kdc_transport *t, ck_creds **out);

/* ---------------------------------------------------------------------------------------------
 * MIT FILE credential cache (version 4), readable by MIT klist/kvno.
 */
/* Writes a new ccache file (mode 0600, atomically) whose default principal is creds[0]->client
 * and which holds the n credentials. */
int ck_ccache_write(const char *path, const ck_creds *const *creds, size_t n);

#endif
