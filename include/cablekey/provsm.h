/* The phone adapter's provisioning life (issue 10, seed 002 FIG. 5A and 5B): two state
 * machines, HFC access and telephony access, driven by the real protocol events the endpoint
 * simulator (`cablekey mta boot|fetch-cert|...`, tools/cablekey/mta_prov.c) sees. Docs:
 * docs/cablekey.md "mta provisioning".
 *
 * Design: pure and single-threaded like ck_endpoint: no sockets, no files of its own except the
 * state-file codec, no clock (every call carries `now`, Unix seconds). Each accepted event
 * produces one line through the transition callback:
 *     "mta <mac>: <machine>: <from> -> <to> (<event>)"
 * (a self-loop the seed names, "remains in this state if ...", is a line too, from == to). An
 * event the current state has no edge for is ignored: no line, state unchanged,
 * CK_PROVSM_IGNORED.
 *
 * FIG. 5A, HFC access ("hfc"):
 *   502 HFC Not Configured         --registered (unprovisioned address)--> 510
 *   502                            --registration failed--> 502
 *   510 Unprovisioned HFC Access   --registered--> 510 (a new unprovisioned address)
 *   510                            --provisioning rejected--> 510
 *   510                            --provisioning complete--> 520
 *   520 Fully Registered with HFC  --reboot--> 530
 *   530 Provisioned HFC Access     --de-provisioned--> 502 (also from 520: not yet rebooted)
 * FIG. 5B, telephony access ("telephony"):
 *   540 Telephony I/F Not Configured  --PKINIT failed--> 540
 *   540                               --PKINIT ok, manufacturer cert--> 550
 *   540                               --PKINIT ok, operator cert--> 580
 *   550 Unprovisioned Telephony Access --KMM AP-REP failed--> 550
 *   550                               --ticket expired--> 540
 *   550                               --KMM AP-REP ok--> 560
 *   560 Unprovisioned Telephony Security Context --CSR call failed--> 560
 *   560                               --SA expired--> 550
 *   560                               --operator cert received--> 570
 *   570 Received Network Operator-Issued Certificate --reboot--> 580
 *   580 Provisioned Telephony Access  --PKINIT failed (operator cert)--> 540
 * Edges the figure does not draw, each a consequence the seed's text states elsewhere:
 *   - operator cert received in 550: our device channel authenticates with the ticket itself
 *     (prov_wire.h), the IPsec SA of 560 is not needed to receive the certificate;
 *   - operator cert received in 580 or 570: a re-issued certificate (FIG. 9, change of service
 *     with a new phone ID), which takes effect at the next reboot;
 *   - reboot in 550 or 560 -> 540: the ticket and the SA live in memory and are lost, as their
 *     expiry loses them;
 *   - authenticated DROP instruction and front-panel wipe in 570/580 -> 540 (the seed: "remove the
 *     invalid certificate and transition into an un-provisioned state"); in 540..560 the device is
 *     already unprovisioned and stays, without the certificate;
 *   - the HFC machine takes the DROP instruction and the wipe as de-provisioning.
 *
 * The DROP rule (seed 002, issue 10): nothing but an authenticated instruction removes the
 * operator certificate. A PKINIT failure, whatever KRB-ERROR came with it, only moves the
 * telephony machine; CK_PROVSM_EV_DROP is refused (CK_ERR_POLICY) unless ev.authenticated, which
 * the caller sets only for a CK_PROVDEV_DROP that arrived inside a verified device-channel reply
 * (ck_provdev_exchange returned 0). The wipe is the technician's own hand on the device. */
#ifndef CABLEKEY_PROVSM_H
#define CABLEKEY_PROVSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* States: the seed's reference numerals, which the state file stores. */
enum ck_provsm_hfc {
    CK_PROVSM_HFC_NOT_CONFIGURED = 502,
    CK_PROVSM_HFC_UNPROVISIONED = 510,
    CK_PROVSM_HFC_FULLY_REGISTERED = 520,
    CK_PROVSM_HFC_PROVISIONED = 530,
};
enum ck_provsm_tel {
    CK_PROVSM_TEL_NOT_CONFIGURED = 540,
    CK_PROVSM_TEL_UNPROVISIONED = 550,
    CK_PROVSM_TEL_UNPROV_SECURITY = 560,
    CK_PROVSM_TEL_RECEIVED_CERT = 570,
    CK_PROVSM_TEL_PROVISIONED = 580,
};

enum ck_provsm_event_type {
    /* FIG. 5A */
    CK_PROVSM_EV_HFC_REGISTERED = 1,   /* registration with an unprovisioned address (ev.ip) */
    CK_PROVSM_EV_HFC_REGISTER_FAILED,
    CK_PROVSM_EV_PROV_REJECTED,        /* the provisioning request was rejected */
    CK_PROVSM_EV_PROV_COMPLETE,        /* provisioning complete notice */
    CK_PROVSM_EV_DEPROVISIONED,
    /* both */
    CK_PROVSM_EV_REBOOT,
    /* FIG. 5B */
    CK_PROVSM_EV_PKINIT_OK_MFG,        /* ev.expires: the ticket's end time */
    CK_PROVSM_EV_PKINIT_OK_OPERATOR,   /* ev.expires */
    CK_PROVSM_EV_PKINIT_FAILED,        /* ev.krb_error: the KRB-ERROR code, 0 if none */
    CK_PROVSM_EV_TICKET_EXPIRED,       /* raised by ck_provsm_tick */
    CK_PROVSM_EV_KMM_OK,               /* AP-REP ok; ev.expires: the SA's end time */
    CK_PROVSM_EV_KMM_FAILED,
    CK_PROVSM_EV_SA_EXPIRED,           /* raised by ck_provsm_tick */
    CK_PROVSM_EV_CSR_CALL_FAILED,
    CK_PROVSM_EV_CERT_RECEIVED,        /* received and acknowledged; ev.not_before, ev.cert_id */
    CK_PROVSM_EV_DROP,                 /* the device channel's CK_PROVDEV_DROP */
    CK_PROVSM_EV_CERT_WIPED,           /* front panel (repair technician) */
};
#define CK_PROVSM_EV_MAX CK_PROVSM_EV_CERT_WIPED

typedef struct ck_provsm_event {
    enum ck_provsm_event_type type;
    int64_t expires;                   /* PKINIT_OK_*, KMM_OK */
    int krb_error;                     /* PKINIT_FAILED */
    int64_t not_before;                /* CERT_RECEIVED: the new certificate's notBefore */
    int64_t cert_id;                   /* CERT_RECEIVED: the server's id (for the record) */
    bool authenticated;                /* DROP: came in a verified device-channel reply */
    const char *ip;                    /* HFC_REGISTERED: the unprovisioned address */
} ck_provsm_event;

/* What an accepted event asks the caller to do. */
#define CK_PROVSM_ACT_DROP_CERT 0x1    /* remove the operator certificate (DROP, wipe) */

#define CK_PROVSM_IP_MAX 45            /* INET6_ADDRSTRLEN - 1 */

/* The whole state: what the state file holds. Plain data; ck_provsm_init fills defaults. */
typedef struct ck_provsm {
    uint8_t mac[6];
    enum ck_provsm_hfc hfc;
    enum ck_provsm_tel tel;
    char ip[CK_PROVSM_IP_MAX + 1];     /* the unprovisioned address ("" none) */
    int64_t ticket_expires;            /* 0: no ticket */
    int64_t sa_expires;                /* 0: no SA */
    bool operator_cert;                /* the device holds an operator certificate */
    int64_t cert_not_before;           /* its notBefore (0 without one) */
    int64_t cert_id;                   /* the server's id of it (0 unknown) */
    int64_t updated;                   /* time of the last accepted event */
    /* Not persisted: the transition callback. */
    void (*on_transition)(void *arg, const char *line);
    void *cb_arg;
} ck_provsm;

enum ck_provsm_verdict {
    CK_PROVSM_MOVED = 0,               /* at least one machine changed state */
    CK_PROVSM_STAYED,                  /* accepted, a self-loop (a line was produced) */
    CK_PROVSM_IGNORED,                 /* no edge for this event in either machine */
};

/* A factory-fresh device: 502 / 540, nothing held. */
void ck_provsm_init(ck_provsm *sm, const uint8_t mac[6]);

/* Feeds one event to both machines (each that has an edge for it) at now. *verdict and
 * *actions (CK_PROVSM_ACT_*) may be NULL. Returns 0, CK_ERR_POLICY for an unauthenticated
 * DROP (nothing changes), CK_ERR_INVAL for an unknown event or bad fields (an ip too long). */
int ck_provsm_apply(ck_provsm *sm, const ck_provsm_event *ev, int64_t now,
                    enum ck_provsm_verdict *verdict, unsigned *actions);

/* Raises the expiry events due at now (ticket, SA). Returns how many were raised. */
int ck_provsm_tick(ck_provsm *sm, int64_t now);

/* The seed's names ("HFC Not Configured", ..., "Provisioned Telephony Access"), the event names
 * used in the lines ("PKINIT ok with manufacturer certificate", ...). NULL for unknown values. */
const char *ck_provsm_hfc_name(enum ck_provsm_hfc s);
const char *ck_provsm_tel_name(enum ck_provsm_tel s);
const char *ck_provsm_event_name(enum ck_provsm_event_type t);

/* The state file: text, versioned.
 *     cablekey-mta-state 1
 *     mac 00:11:22:33:44:55
 *     hfc 510
 *     telephony 550
 *     ip 10.1.2.3
 *     ticket-expires 1767225600
 *     sa-expires 0
 *     operator-cert 0
 *     cert-not-before 0
 *     cert-id 0
 *     updated 1767225600
 * One "key value" per line, LF (a CR before it is refused), each key exactly once, no other key,
 * the version line first. Limits: CK_PROVSM_FILE_MAX bytes, CK_PROVSM_LINE_MAX per line; times
 * 0..CK_PROVSM_TIME_MAX; states only the numerals above; ip [0-9A-Fa-f.:] or "-" for none.
 * Errors: CK_ERR_DECODE / CK_ERR_LIMIT / CK_ERR_UNSUPPORTED (another version) with the line
 * number in the context, never the line's content. */
#define CK_PROVSM_FILE_VERSION 1
#define CK_PROVSM_FILE_MAX 2048
#define CK_PROVSM_LINE_MAX 128
#define CK_PROVSM_TIME_MAX INT64_C(253402300799)
/* *out is malloc'd (free()). */
int ck_provsm_encode(const ck_provsm *sm, char **out, size_t *out_len);
/* Fills *sm (callback fields cleared) only on success. */
int ck_provsm_decode(const char *data, size_t len, ck_provsm *sm);

#endif
