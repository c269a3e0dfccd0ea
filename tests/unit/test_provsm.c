/* The phone adapter's provisioning state machines (include/cablekey/provsm.h): every edge of
 * seed 002 FIG. 5A and 5B, the events each state ignores, the DROP rule (nothing but an
 * authenticated instruction removes the operator certificate), the replay check on a new
 * certificate, the injected clock's expiries, and the state file (round trip, hostile files). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "cablekey/error.h"
#include "cablekey/provsm.h"

static const uint8_t MAC[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55};

struct lines {
    char text[16][256];
    int n;
};

static void
collect(void *arg, const char *line)
{
    struct lines *l = arg;

    if (l->n < 16)
        snprintf(l->text[l->n], sizeof(l->text[0]), "%s", line);
    l->n++;
}

static void
fresh(ck_provsm *sm, struct lines *l)
{
    ck_provsm_init(sm, MAC);
    memset(l, 0, sizeof(*l));
    sm->on_transition = collect;
    sm->cb_arg = l;
}

/* Applies ev (no fields) and returns the verdict; the call must succeed. */
static enum ck_provsm_verdict
ev(ck_provsm *sm, enum ck_provsm_event_type t)
{
    ck_provsm_event e;
    enum ck_provsm_verdict v = CK_PROVSM_IGNORED;

    memset(&e, 0, sizeof(e));
    e.type = t;
    if (t == CK_PROVSM_EV_HFC_REGISTERED)
        e.ip = "10.9.8.7";
    if (t == CK_PROVSM_EV_DROP)
        e.authenticated = true;
    if (t == CK_PROVSM_EV_CERT_RECEIVED)
        e.not_before = sm->cert_not_before + 100;
    if (t == CK_PROVSM_EV_PKINIT_OK_MFG || t == CK_PROVSM_EV_PKINIT_OK_OPERATOR ||
        t == CK_PROVSM_EV_KMM_OK)
        e.expires = 5000;
    CHECK_OK(ck_provsm_apply(sm, &e, 1000, &v, NULL));
    return v;
}

static void
test_names(void)
{
    CHECK(strcmp(ck_provsm_hfc_name(CK_PROVSM_HFC_NOT_CONFIGURED), "HFC Not Configured") == 0);
    CHECK(strcmp(ck_provsm_hfc_name(CK_PROVSM_HFC_UNPROVISIONED), "Unprovisioned HFC Access") == 0);
    CHECK(strcmp(ck_provsm_hfc_name(CK_PROVSM_HFC_FULLY_REGISTERED),
                 "Fully Registered with HFC") == 0);
    CHECK(strcmp(ck_provsm_hfc_name(CK_PROVSM_HFC_PROVISIONED), "Provisioned HFC Access") == 0);
    CHECK(strcmp(ck_provsm_tel_name(CK_PROVSM_TEL_NOT_CONFIGURED),
                 "Telephony I/F Not Configured") == 0);
    CHECK(strcmp(ck_provsm_tel_name(CK_PROVSM_TEL_UNPROVISIONED),
                 "Unprovisioned Telephony Access") == 0);
    CHECK(strcmp(ck_provsm_tel_name(CK_PROVSM_TEL_UNPROV_SECURITY),
                 "Unprovisioned Telephony Security Context") == 0);
    CHECK(strcmp(ck_provsm_tel_name(CK_PROVSM_TEL_RECEIVED_CERT),
                 "Received Network Operator-Issued Certificate") == 0);
    CHECK(strcmp(ck_provsm_tel_name(CK_PROVSM_TEL_PROVISIONED),
                 "Provisioned Telephony Access") == 0);
    CHECK(ck_provsm_hfc_name((enum ck_provsm_hfc)540) == NULL);
    CHECK(ck_provsm_tel_name((enum ck_provsm_tel)502) == NULL);
    CHECK(ck_provsm_event_name((enum ck_provsm_event_type)0) == NULL);
    for (int t = 1; t <= CK_PROVSM_EV_MAX; t++)
        CHECK(ck_provsm_event_name((enum ck_provsm_event_type)t) != NULL);
}

/* FIG. 5A, every edge, and the line each produces. */
static void
test_hfc_machine(void)
{
    ck_provsm sm;
    struct lines l;

    fresh(&sm, &l);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_HFC_REGISTER_FAILED), CK_PROVSM_STAYED);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_NOT_CONFIGURED);
    CHECK(strcmp(l.text[0], "mta 00:11:22:33:44:55: hfc: HFC Not Configured -> HFC Not "
                            "Configured (HFC registration failed)") == 0);
    /* 502 has no edge for these */
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PROV_COMPLETE), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_DEPROVISIONED), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PROV_REJECTED), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(l.n, 1);

    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_HFC_REGISTERED), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_UNPROVISIONED);
    CHECK(strcmp(sm.ip, "10.9.8.7") == 0);
    CHECK(strcmp(l.text[1], "mta 00:11:22:33:44:55: hfc: HFC Not Configured -> Unprovisioned "
                            "HFC Access (HFC registration with an unprovisioned address)") == 0);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PROV_REJECTED), CK_PROVSM_STAYED);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_UNPROVISIONED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_REBOOT), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_DEPROVISIONED), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PROV_COMPLETE), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_FULLY_REGISTERED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_HFC_REGISTERED), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_REBOOT), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_PROVISIONED);
    CHECK(strcmp(l.text[l.n - 1], "mta 00:11:22:33:44:55: hfc: Fully Registered with HFC -> "
                                  "Provisioned HFC Access (reboot)") == 0);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_REBOOT), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PROV_COMPLETE), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_DEPROVISIONED), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_NOT_CONFIGURED);
    CHECK(sm.ip[0] == '\0');
    CHECK(strcmp(l.text[l.n - 1], "mta 00:11:22:33:44:55: hfc: Provisioned HFC Access -> HFC "
                                  "Not Configured (de-provisioning)") == 0);

    /* De-provisioned before the reboot (520 -> 502). */
    ev(&sm, CK_PROVSM_EV_HFC_REGISTERED);
    ev(&sm, CK_PROVSM_EV_PROV_COMPLETE);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_DEPROVISIONED), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_NOT_CONFIGURED);
}

/* FIG. 5B: the new-device path 540 -> 550 -> 560 -> 570 -> 580 and every self-loop. */
static void
test_telephony_new_device(void)
{
    ck_provsm sm;
    struct lines l;

    fresh(&sm, &l);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PKINIT_FAILED), CK_PROVSM_STAYED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_NOT_CONFIGURED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_KMM_OK), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_CERT_RECEIVED), CK_PROVSM_IGNORED);
    CHECK(!sm.operator_cert);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_REBOOT), CK_PROVSM_IGNORED);

    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_UNPROVISIONED);
    CHECK_INT_EQ(sm.ticket_expires, 5000);
    CHECK(strcmp(l.text[l.n - 1], "mta 00:11:22:33:44:55: telephony: Telephony I/F Not "
                                  "Configured -> Unprovisioned Telephony Access (PKINIT ok with "
                                  "the manufacturer certificate)") == 0);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_KMM_FAILED), CK_PROVSM_STAYED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_UNPROVISIONED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_SA_EXPIRED), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_CSR_CALL_FAILED), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PKINIT_OK_OPERATOR), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_KMM_OK), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_UNPROV_SECURITY);
    CHECK_INT_EQ(sm.sa_expires, 5000);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_CSR_CALL_FAILED), CK_PROVSM_STAYED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_UNPROV_SECURITY);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_SA_EXPIRED), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_UNPROVISIONED);
    CHECK_INT_EQ(sm.sa_expires, 0);
    ev(&sm, CK_PROVSM_EV_KMM_OK);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_CERT_RECEIVED), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_RECEIVED_CERT);
    CHECK(sm.operator_cert);
    CHECK_INT_EQ(sm.cert_not_before, 100);
    /* 570: not usable before the reboot */
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PKINIT_OK_OPERATOR), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PKINIT_FAILED), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_REBOOT), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_PROVISIONED);
    CHECK(strcmp(l.text[l.n - 1], "mta 00:11:22:33:44:55: telephony: Received Network "
                                  "Operator-Issued Certificate -> Provisioned Telephony Access "
                                  "(reboot)") == 0);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PKINIT_OK_OPERATOR), CK_PROVSM_STAYED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_REBOOT), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_PROVISIONED);

    /* FIG. 9: a re-issued certificate in 580 waits for the reboot. */
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_CERT_RECEIVED), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_RECEIVED_CERT);
    CHECK_INT_EQ(sm.cert_not_before, 200);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_REBOOT), CK_PROVSM_MOVED);

    /* Revoked or discontinued: a PKINIT failure with the operator certificate -> 540, and the
     * certificate is kept (the DROP rule). */
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PKINIT_FAILED), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_NOT_CONFIGURED);
    CHECK(sm.operator_cert);
    CHECK_INT_EQ(sm.ticket_expires, 0);
    /* The provisioned device logs in again once it is reinstated. */
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_PKINIT_OK_OPERATOR), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_PROVISIONED);
}

/* Ticket expiry and reboot from the unprovisioned states; the certificate received in 550. */
static void
test_telephony_returns(void)
{
    ck_provsm sm;
    struct lines l;

    fresh(&sm, &l);
    ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_TICKET_EXPIRED), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_NOT_CONFIGURED);
    ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_REBOOT), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_NOT_CONFIGURED);
    ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG);
    ev(&sm, CK_PROVSM_EV_KMM_OK);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_TICKET_EXPIRED), CK_PROVSM_IGNORED);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_REBOOT), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_NOT_CONFIGURED);
    CHECK_INT_EQ(sm.sa_expires, 0);
    ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG);
    CHECK_INT_EQ(ev(&sm, CK_PROVSM_EV_CERT_RECEIVED), CK_PROVSM_MOVED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_RECEIVED_CERT);
}

/* The DROP rule: a KRB-ERROR never drops; an unauthenticated DROP is refused; an
 * authenticated one drops and de-provisions HFC access. */
static void
test_drop_rule(void)
{
    ck_provsm sm, before;
    struct lines l;
    ck_provsm_event e;
    enum ck_provsm_verdict v;
    unsigned act = 99;
    int lines_before;

    fresh(&sm, &l);
    ev(&sm, CK_PROVSM_EV_HFC_REGISTERED);
    ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG);
    ev(&sm, CK_PROVSM_EV_CERT_RECEIVED);
    ev(&sm, CK_PROVSM_EV_PROV_COMPLETE);
    ev(&sm, CK_PROVSM_EV_REBOOT);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_PROVISIONED);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_PROVISIONED);

    memset(&e, 0, sizeof(e));
    e.type = CK_PROVSM_EV_PKINIT_FAILED;
    e.krb_error = 62; /* KDC_ERR_CLIENT_NOT_TRUSTED */
    CHECK_OK(ck_provsm_apply(&sm, &e, 2000, &v, &act));
    CHECK_INT_EQ(act, 0);
    CHECK(sm.operator_cert);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_PROVISIONED);
    CHECK(strstr(l.text[l.n - 1], "(PKINIT failed, KRB-ERROR 62)") != NULL);
    /* fall back to the manufacturer certificate */
    ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_UNPROVISIONED);

    before = sm;
    lines_before = l.n;
    e.type = CK_PROVSM_EV_DROP;
    e.authenticated = false;
    act = 99;
    CHECK_INT_EQ(ck_provsm_apply(&sm, &e, 3000, &v, &act), CK_ERR_POLICY);
    CHECK_INT_EQ(act, 0);
    CHECK_INT_EQ(v, CK_PROVSM_IGNORED);
    CHECK(sm.operator_cert && sm.tel == before.tel && sm.hfc == before.hfc &&
          sm.cert_not_before == before.cert_not_before && sm.updated == before.updated);
    CHECK_INT_EQ(l.n, lines_before);

    e.authenticated = true;
    CHECK_OK(ck_provsm_apply(&sm, &e, 3000, &v, &act));
    CHECK_INT_EQ(act, CK_PROVSM_ACT_DROP_CERT);
    CHECK_INT_EQ(v, CK_PROVSM_MOVED);
    CHECK(!sm.operator_cert);
    CHECK_INT_EQ(sm.cert_not_before, 0);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_UNPROVISIONED);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_NOT_CONFIGURED);
    CHECK(strcmp(l.text[l.n - 2], "mta 00:11:22:33:44:55: hfc: Provisioned HFC Access -> HFC "
                                  "Not Configured (authenticated DROP instruction)") == 0);
    CHECK(strcmp(l.text[l.n - 1], "mta 00:11:22:33:44:55: telephony: Unprovisioned Telephony "
                                  "Access -> Unprovisioned Telephony Access (authenticated DROP "
                                  "instruction)") == 0);

    /* Front-panel wipe of a provisioned device: back to 540 and 502. */
    fresh(&sm, &l);
    ev(&sm, CK_PROVSM_EV_HFC_REGISTERED);
    ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG);
    ev(&sm, CK_PROVSM_EV_CERT_RECEIVED);
    ev(&sm, CK_PROVSM_EV_PROV_COMPLETE);
    CHECK_OK(ck_provsm_apply(&sm, &(ck_provsm_event){.type = CK_PROVSM_EV_CERT_WIPED}, 10, &v,
                             &act));
    CHECK_INT_EQ(act, CK_PROVSM_ACT_DROP_CERT);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_NOT_CONFIGURED);
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_NOT_CONFIGURED);
    CHECK(!sm.operator_cert);
}

/* FIG. 9: a new certificate must start later than the one held. */
static void
test_replay(void)
{
    ck_provsm sm;
    struct lines l;
    ck_provsm_event e;
    enum ck_provsm_verdict v;

    fresh(&sm, &l);
    ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG);
    memset(&e, 0, sizeof(e));
    e.type = CK_PROVSM_EV_CERT_RECEIVED;
    e.not_before = 1700000000;
    e.cert_id = 7;
    CHECK_OK(ck_provsm_apply(&sm, &e, 1, &v, NULL));
    CHECK_INT_EQ(sm.cert_id, 7);
    e.cert_id = 8;
    CHECK_INT_EQ(ck_provsm_apply(&sm, &e, 2, &v, NULL), CK_ERR_REPLAY);
    e.not_before = 1699999999;
    CHECK_INT_EQ(ck_provsm_apply(&sm, &e, 2, &v, NULL), CK_ERR_REPLAY);
    CHECK_INT_EQ(sm.cert_id, 7);
    e.not_before = 1700000001;
    CHECK_OK(ck_provsm_apply(&sm, &e, 3, &v, NULL));
    CHECK_INT_EQ(v, CK_PROVSM_STAYED);
    CHECK_INT_EQ(sm.cert_id, 8);
    /* After a wipe any certificate is new again (FIG. 11: the owner's certificate back). */
    CHECK_OK(ck_provsm_apply(&sm, &(ck_provsm_event){.type = CK_PROVSM_EV_CERT_WIPED}, 4, &v,
                             NULL));
    ev(&sm, CK_PROVSM_EV_PKINIT_OK_MFG);
    e.not_before = 1600000000;
    CHECK_OK(ck_provsm_apply(&sm, &e, 5, &v, NULL));
    CHECK(sm.operator_cert);
}

static void
test_bad_events(void)
{
    ck_provsm sm;
    struct lines l;
    ck_provsm_event e;
    char longip[80];

    fresh(&sm, &l);
    memset(&e, 0, sizeof(e));
    e.type = (enum ck_provsm_event_type)0;
    CHECK_INT_EQ(ck_provsm_apply(&sm, &e, 1, NULL, NULL), CK_ERR_INVAL);
    e.type = (enum ck_provsm_event_type)(CK_PROVSM_EV_MAX + 1);
    CHECK_INT_EQ(ck_provsm_apply(&sm, &e, 1, NULL, NULL), CK_ERR_INVAL);
    e.type = CK_PROVSM_EV_HFC_REGISTERED;
    CHECK_INT_EQ(ck_provsm_apply(&sm, &e, 1, NULL, NULL), CK_ERR_INVAL);
    e.ip = "10.0.0.1 x";
    CHECK_INT_EQ(ck_provsm_apply(&sm, &e, 1, NULL, NULL), CK_ERR_INVAL);
    memset(longip, '1', sizeof(longip) - 1);
    longip[sizeof(longip) - 1] = '\0';
    e.ip = longip;
    CHECK_INT_EQ(ck_provsm_apply(&sm, &e, 1, NULL, NULL), CK_ERR_INVAL);
    e.ip = "2001:db8::1";
    CHECK_OK(ck_provsm_apply(&sm, &e, 1, NULL, NULL));
    CHECK_INT_EQ(l.n, 1);
}

/* The injected clock: SA and ticket expiries. */
static void
test_tick(void)
{
    ck_provsm sm;
    struct lines l;
    ck_provsm_event e;

    fresh(&sm, &l);
    memset(&e, 0, sizeof(e));
    e.type = CK_PROVSM_EV_PKINIT_OK_MFG;
    e.expires = 1000;
    CHECK_OK(ck_provsm_apply(&sm, &e, 0, NULL, NULL));
    e.type = CK_PROVSM_EV_KMM_OK;
    e.expires = 500;
    CHECK_OK(ck_provsm_apply(&sm, &e, 0, NULL, NULL));
    CHECK_INT_EQ(ck_provsm_tick(&sm, 499), 0);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_UNPROV_SECURITY);
    CHECK_INT_EQ(ck_provsm_tick(&sm, 500), 1);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_UNPROVISIONED);
    CHECK(strstr(l.text[l.n - 1], "(SA expired)") != NULL);
    CHECK_INT_EQ(ck_provsm_tick(&sm, 999), 0);
    CHECK_INT_EQ(ck_provsm_tick(&sm, 1000), 1);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_NOT_CONFIGURED);
    CHECK(strstr(l.text[l.n - 1], "(ticket expired)") != NULL);
    CHECK_INT_EQ(ck_provsm_tick(&sm, 5000), 0);

    /* Both at once: 560 -> 550 -> 540. */
    e.type = CK_PROVSM_EV_PKINIT_OK_MFG;
    e.expires = 2000;
    CHECK_OK(ck_provsm_apply(&sm, &e, 0, NULL, NULL));
    e.type = CK_PROVSM_EV_KMM_OK;
    CHECK_OK(ck_provsm_apply(&sm, &e, 0, NULL, NULL));
    CHECK_INT_EQ(ck_provsm_tick(&sm, 3000), 2);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_NOT_CONFIGURED);

    /* 580: an expired ticket is renewed, the device stays provisioned. */
    e.type = CK_PROVSM_EV_PKINIT_OK_OPERATOR;
    e.expires = 4000;
    CHECK_OK(ck_provsm_apply(&sm, &e, 0, NULL, NULL));
    CHECK_INT_EQ(ck_provsm_tick(&sm, 5000), 0);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_PROVISIONED);
}

static const char good_file[] = "cablekey-mta-state 1\n"
                                "mac 00:11:22:33:44:55\n"
                                "hfc 530\n"
                                "telephony 580\n"
                                "ip 10.1.2.3\n"
                                "ticket-expires 1767225600\n"
                                "sa-expires 0\n"
                                "operator-cert 1\n"
                                "cert-not-before 1767200000\n"
                                "cert-id 42\n"
                                "updated 1767225000\n";

static void
test_file_round_trip(void)
{
    ck_provsm sm, back;
    struct lines l;
    char *text = NULL;
    size_t len = 0;

    CHECK_OK(ck_provsm_decode(good_file, strlen(good_file), &sm));
    CHECK_INT_EQ(sm.hfc, CK_PROVSM_HFC_PROVISIONED);
    CHECK_INT_EQ(sm.tel, CK_PROVSM_TEL_PROVISIONED);
    CHECK(strcmp(sm.ip, "10.1.2.3") == 0);
    CHECK(sm.operator_cert);
    CHECK_INT_EQ(sm.cert_id, 42);
    CHECK_MEM_EQ(sm.mac, 6, MAC, 6);
    CHECK_OK(ck_provsm_encode(&sm, &text, &len));
    CHECK_MEM_EQ(text, len, good_file, strlen(good_file));
    free(text);

    fresh(&sm, &l);
    CHECK_OK(ck_provsm_encode(&sm, &text, &len));
    CHECK(strstr(text, "ip -\n") != NULL);
    CHECK_OK(ck_provsm_decode(text, len, &back));
    CHECK_INT_EQ(back.hfc, CK_PROVSM_HFC_NOT_CONFIGURED);
    CHECK_INT_EQ(back.tel, CK_PROVSM_TEL_NOT_CONFIGURED);
    CHECK(back.ip[0] == '\0');
    CHECK(back.on_transition == NULL);
    free(text);
}

/* Replaces the first occurrence of from with to in good_file and decodes: must fail with err. */
static void
hostile(const char *from, const char *to, int err)
{
    char buf[4096];
    const char *p = strstr(good_file, from);
    ck_provsm sm;
    int ret;

    if (p == NULL) {
        fprintf(stderr, "  bad test: '%s' not in the file\n", from);
        ck_test_case_failed = 1;
        return;
    }
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - good_file), good_file, to,
             p + strlen(from));
    memset(&sm, 0x5a, sizeof(sm));
    ret = ck_provsm_decode(buf, strlen(buf), &sm);
    if (ret != err) {
        fprintf(stderr, "  '%s' -> '%s': %d (%s), expected %d\n", from, to, ret,
                ck_error_context(), err);
        ck_test_case_failed = 1;
    }
    CHECK(((unsigned char *)&sm)[0] == 0x5a); /* untouched on error */
}

static void
test_file_hostile(void)
{
    char big[CK_PROVSM_FILE_MAX + 2];
    ck_provsm sm;

    hostile("cablekey-mta-state 1", "cablekey-mta-state 2", CK_ERR_UNSUPPORTED);
    hostile("cablekey-mta-state 1", "cablekey-mta-state x", CK_ERR_DECODE);
    hostile("cablekey-mta-state 1\n", "", CK_ERR_DECODE);
    hostile("hfc 530", "hfc 540", CK_ERR_DECODE);
    hostile("hfc 530", "hfc -530", CK_ERR_DECODE);
    hostile("telephony 580", "telephony 530", CK_ERR_DECODE);
    hostile("telephony 580", "telephony 5800000000000000000000", CK_ERR_DECODE);
    hostile("mac 00:11:22:33:44:55", "mac 00:11:22:33:44", CK_ERR_DECODE);
    hostile("ip 10.1.2.3", "ip 10.1.2.3;rm", CK_ERR_DECODE);
    hostile("ip 10.1.2.3", "ip 10.1.2.3 x", CK_ERR_DECODE);
    hostile("ip 10.1.2.3", "ip ", CK_ERR_DECODE);
    hostile("updated 1767225000", "updated 99999999999999", CK_ERR_DECODE);
    hostile("sa-expires 0", "sa-expires -1", CK_ERR_DECODE);
    hostile("operator-cert 1", "operator-cert 2", CK_ERR_DECODE);
    hostile("operator-cert 1", "operator-cert 0", CK_ERR_DECODE); /* cert fields without one */
    hostile("cert-id 42", "cert-id 42\ncert-id 43", CK_ERR_DECODE);
    hostile("cert-id 42\n", "", CK_ERR_DECODE);
    hostile("cert-id 42", "cert-id 42\nextra 1", CK_ERR_DECODE);
    hostile("cert-id 42", "cert-id 42\r", CK_ERR_DECODE);
    hostile("updated 1767225000\n", "updated 1767225000", CK_ERR_DECODE); /* no final newline */
    hostile("hfc 530", "hfc  530", CK_ERR_DECODE);
    hostile("hfc 530", " hfc 530", CK_ERR_DECODE);
    hostile("hfc 530", "hfc 530 ", CK_ERR_DECODE);
    hostile("hfc 530\n", "hfc 530\n\n", CK_ERR_DECODE);
    {
        char longline[CK_PROVSM_LINE_MAX + 20];
        memset(longline, '1', sizeof(longline) - 1);
        longline[sizeof(longline) - 1] = '\0';
        memcpy(longline, "ip ", 3);
        hostile("ip 10.1.2.3", longline, CK_ERR_LIMIT);
    }
    CHECK_INT_EQ(ck_provsm_decode("", 0, &sm), CK_ERR_DECODE);
    CHECK_INT_EQ(ck_provsm_decode("cablekey-mta-state 1\n", 21, &sm), CK_ERR_DECODE);
    memset(big, '\n', sizeof(big));
    CHECK_INT_EQ(ck_provsm_decode(big, sizeof(big), &sm), CK_ERR_LIMIT);
    {
        char nul[] = "cablekey-mta-state 1\nmac 00:11:22:33:44:55\0\n";
        CHECK_INT_EQ(ck_provsm_decode(nul, sizeof(nul) - 1, &sm), CK_ERR_DECODE);
    }
}

CK_TEST_MAIN("provsm", CK_TEST_CASE(test_names), CK_TEST_CASE(test_hfc_machine),
             CK_TEST_CASE(test_telephony_new_device), CK_TEST_CASE(test_telephony_returns),
             CK_TEST_CASE(test_drop_rule), CK_TEST_CASE(test_replay),
             CK_TEST_CASE(test_bad_events), CK_TEST_CASE(test_tick),
             CK_TEST_CASE(test_file_round_trip), CK_TEST_CASE(test_file_hostile))
