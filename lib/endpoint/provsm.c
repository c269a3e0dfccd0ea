/* The phone adapter's provisioning state machines, seed 002 FIG. 5A (HFC access) and FIG. 5B
 * (telephony access), and their state file (include/cablekey/provsm.h). No clock, no sockets,
 * no logging: lines go to the caller's callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/provsm.h"
#include "cablekey/util.h"

#define LINE_BUF 256

const char *
ck_provsm_hfc_name(enum ck_provsm_hfc s)
{
    switch (s) {
    case CK_PROVSM_HFC_NOT_CONFIGURED: return "HFC Not Configured";
    case CK_PROVSM_HFC_UNPROVISIONED: return "Unprovisioned HFC Access";
    case CK_PROVSM_HFC_FULLY_REGISTERED: return "Fully Registered with HFC";
    case CK_PROVSM_HFC_PROVISIONED: return "Provisioned HFC Access";
    }
    return NULL;
}

const char *
ck_provsm_tel_name(enum ck_provsm_tel s)
{
    switch (s) {
    case CK_PROVSM_TEL_NOT_CONFIGURED: return "Telephony I/F Not Configured";
    case CK_PROVSM_TEL_UNPROVISIONED: return "Unprovisioned Telephony Access";
    case CK_PROVSM_TEL_UNPROV_SECURITY: return "Unprovisioned Telephony Security Context";
    case CK_PROVSM_TEL_RECEIVED_CERT: return "Received Network Operator-Issued Certificate";
    case CK_PROVSM_TEL_PROVISIONED: return "Provisioned Telephony Access";
    }
    return NULL;
}

const char *
ck_provsm_event_name(enum ck_provsm_event_type t)
{
    switch (t) {
    case CK_PROVSM_EV_HFC_REGISTERED: return "HFC registration with an unprovisioned address";
    case CK_PROVSM_EV_HFC_REGISTER_FAILED: return "HFC registration failed";
    case CK_PROVSM_EV_PROV_REJECTED: return "provisioning request rejected";
    case CK_PROVSM_EV_PROV_COMPLETE: return "provisioning complete notice";
    case CK_PROVSM_EV_DEPROVISIONED: return "de-provisioning";
    case CK_PROVSM_EV_REBOOT: return "reboot";
    case CK_PROVSM_EV_PKINIT_OK_MFG: return "PKINIT ok with the manufacturer certificate";
    case CK_PROVSM_EV_PKINIT_OK_OPERATOR: return "PKINIT ok with the operator certificate";
    case CK_PROVSM_EV_PKINIT_FAILED: return "PKINIT failed";
    case CK_PROVSM_EV_TICKET_EXPIRED: return "ticket expired";
    case CK_PROVSM_EV_KMM_OK: return "KMM AP-REP ok";
    case CK_PROVSM_EV_KMM_FAILED: return "KMM AP-REP failed";
    case CK_PROVSM_EV_SA_EXPIRED: return "SA expired";
    case CK_PROVSM_EV_CSR_CALL_FAILED: return "CSR call failed";
    case CK_PROVSM_EV_CERT_RECEIVED: return "operator certificate received and acknowledged";
    case CK_PROVSM_EV_DROP: return "authenticated DROP instruction";
    case CK_PROVSM_EV_CERT_WIPED: return "certificate wiped from the front panel";
    }
    return NULL;
}

void
ck_provsm_init(ck_provsm *sm, const uint8_t mac[6])
{
    memset(sm, 0, sizeof(*sm));
    memcpy(sm->mac, mac, 6);
    sm->hfc = CK_PROVSM_HFC_NOT_CONFIGURED;
    sm->tel = CK_PROVSM_TEL_NOT_CONFIGURED;
}

/* FIG. 5A: the next state for ev, or 0 when the state has no edge for it. */
static enum ck_provsm_hfc
hfc_next(enum ck_provsm_hfc s, enum ck_provsm_event_type t)
{
    switch (s) {
    case CK_PROVSM_HFC_NOT_CONFIGURED:
        if (t == CK_PROVSM_EV_HFC_REGISTERED)
            return CK_PROVSM_HFC_UNPROVISIONED;
        if (t == CK_PROVSM_EV_HFC_REGISTER_FAILED)
            return s;
        break;
    case CK_PROVSM_HFC_UNPROVISIONED:
        if (t == CK_PROVSM_EV_HFC_REGISTERED || t == CK_PROVSM_EV_PROV_REJECTED)
            return s;
        if (t == CK_PROVSM_EV_PROV_COMPLETE)
            return CK_PROVSM_HFC_FULLY_REGISTERED;
        break;
    case CK_PROVSM_HFC_FULLY_REGISTERED:
        if (t == CK_PROVSM_EV_REBOOT)
            return CK_PROVSM_HFC_PROVISIONED;
        if (t == CK_PROVSM_EV_DEPROVISIONED || t == CK_PROVSM_EV_DROP ||
            t == CK_PROVSM_EV_CERT_WIPED)
            return CK_PROVSM_HFC_NOT_CONFIGURED; /* de-provisioned before the reboot */
        break;
    case CK_PROVSM_HFC_PROVISIONED:
        if (t == CK_PROVSM_EV_DEPROVISIONED || t == CK_PROVSM_EV_DROP ||
            t == CK_PROVSM_EV_CERT_WIPED)
            return CK_PROVSM_HFC_NOT_CONFIGURED;
        break;
    }
    return 0;
}

/* FIG. 5B. */
static enum ck_provsm_tel
tel_next(enum ck_provsm_tel s, enum ck_provsm_event_type t)
{
    switch (s) {
    case CK_PROVSM_TEL_NOT_CONFIGURED:
        if (t == CK_PROVSM_EV_PKINIT_FAILED || t == CK_PROVSM_EV_DROP ||
            t == CK_PROVSM_EV_CERT_WIPED)
            return s;
        if (t == CK_PROVSM_EV_PKINIT_OK_MFG)
            return CK_PROVSM_TEL_UNPROVISIONED;
        if (t == CK_PROVSM_EV_PKINIT_OK_OPERATOR)
            return CK_PROVSM_TEL_PROVISIONED;
        break;
    case CK_PROVSM_TEL_UNPROVISIONED:
        if (t == CK_PROVSM_EV_KMM_FAILED || t == CK_PROVSM_EV_PKINIT_OK_MFG ||
            t == CK_PROVSM_EV_DROP || t == CK_PROVSM_EV_CERT_WIPED)
            return s;
        if (t == CK_PROVSM_EV_TICKET_EXPIRED || t == CK_PROVSM_EV_REBOOT)
            return CK_PROVSM_TEL_NOT_CONFIGURED;
        if (t == CK_PROVSM_EV_KMM_OK)
            return CK_PROVSM_TEL_UNPROV_SECURITY;
        if (t == CK_PROVSM_EV_CERT_RECEIVED)
            return CK_PROVSM_TEL_RECEIVED_CERT;
        break;
    case CK_PROVSM_TEL_UNPROV_SECURITY:
        if (t == CK_PROVSM_EV_CSR_CALL_FAILED || t == CK_PROVSM_EV_KMM_OK ||
            t == CK_PROVSM_EV_PKINIT_OK_MFG || t == CK_PROVSM_EV_DROP ||
            t == CK_PROVSM_EV_CERT_WIPED)
            return s;
        if (t == CK_PROVSM_EV_SA_EXPIRED)
            return CK_PROVSM_TEL_UNPROVISIONED;
        if (t == CK_PROVSM_EV_REBOOT)
            return CK_PROVSM_TEL_NOT_CONFIGURED;
        if (t == CK_PROVSM_EV_CERT_RECEIVED)
            return CK_PROVSM_TEL_RECEIVED_CERT;
        break;
    case CK_PROVSM_TEL_RECEIVED_CERT:
        if (t == CK_PROVSM_EV_REBOOT)
            return CK_PROVSM_TEL_PROVISIONED;
        if (t == CK_PROVSM_EV_CERT_RECEIVED)
            return s;
        if (t == CK_PROVSM_EV_DROP || t == CK_PROVSM_EV_CERT_WIPED)
            return CK_PROVSM_TEL_NOT_CONFIGURED;
        break;
    case CK_PROVSM_TEL_PROVISIONED:
        if (t == CK_PROVSM_EV_PKINIT_OK_OPERATOR)
            return s;
        if (t == CK_PROVSM_EV_PKINIT_FAILED || t == CK_PROVSM_EV_DROP ||
            t == CK_PROVSM_EV_CERT_WIPED)
            return CK_PROVSM_TEL_NOT_CONFIGURED;
        if (t == CK_PROVSM_EV_CERT_RECEIVED)
            return CK_PROVSM_TEL_RECEIVED_CERT;
        break;
    }
    return 0;
}

static void
emit(const ck_provsm *sm, const char *machine, const char *from, const char *to,
     enum ck_provsm_event_type t, int krb_error)
{
    char mac[CK_MAC_TEXT], line[LINE_BUF], detail[40] = "";

    if (sm->on_transition == NULL)
        return;
    ck_mac_format(sm->mac, mac);
    if (t == CK_PROVSM_EV_PKINIT_FAILED && krb_error != 0)
        snprintf(detail, sizeof(detail), ", KRB-ERROR %d", krb_error);
    snprintf(line, sizeof(line), "mta %s: %s: %s -> %s (%s%s)", mac, machine, from, to,
             ck_provsm_event_name(t), detail);
    sm->on_transition(sm->cb_arg, line);
}

static bool
ip_ok(const char *ip)
{
    size_t n = strlen(ip);

    if (n == 0 || n > CK_PROVSM_IP_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (ck_hex_digit((unsigned char)ip[i]) < 0 && ip[i] != '.' && ip[i] != ':')
            return false;
    }
    return true;
}

int
ck_provsm_apply(ck_provsm *sm, const ck_provsm_event *ev, int64_t now,
                enum ck_provsm_verdict *verdict, unsigned *actions)
{
    enum ck_provsm_event_type t = ev->type;
    enum ck_provsm_hfc h;
    enum ck_provsm_tel tl;
    unsigned act = 0;
    bool moved = false;

    if (verdict != NULL)
        *verdict = CK_PROVSM_IGNORED;
    if (actions != NULL)
        *actions = 0;
    if (ck_provsm_event_name(t) == NULL)
        return ck_error_set(CK_ERR_INVAL, "provisioning state machine: unknown event %d", (int)t);
    if (t == CK_PROVSM_EV_HFC_REGISTERED && (ev->ip == NULL || !ip_ok(ev->ip)))
        return ck_error_set(CK_ERR_INVAL, "HFC registration: bad unprovisioned address");
    /* The rule of seed 002 and issue 10: an unauthenticated message never drops the
     * operator certificate. */
    if (t == CK_PROVSM_EV_DROP && !ev->authenticated)
        return ck_error_set(CK_ERR_POLICY, "DROP instruction not authenticated: certificate kept");
    h = hfc_next(sm->hfc, t);
    tl = tel_next(sm->tel, t);
    /* FIG. 9: a new certificate must start later than the one held, or it is a replay. */
    if (t == CK_PROVSM_EV_CERT_RECEIVED && tl != 0 && sm->operator_cert &&
        ev->not_before <= sm->cert_not_before)
        return ck_error_set(CK_ERR_REPLAY, "operator certificate not newer than the one held "
                                           "(notBefore %lld <= %lld): a replay",
                            (long long)ev->not_before, (long long)sm->cert_not_before);
    if (h == 0 && tl == 0)
        return 0;
    if (h != 0) {
        emit(sm, "hfc", ck_provsm_hfc_name(sm->hfc), ck_provsm_hfc_name(h), t, ev->krb_error);
        moved |= h != sm->hfc;
        sm->hfc = h;
        if (t == CK_PROVSM_EV_HFC_REGISTERED)
            ck_strlcpy(sm->ip, ev->ip, sizeof(sm->ip));
        if (h == CK_PROVSM_HFC_NOT_CONFIGURED)
            sm->ip[0] = '\0';
    }
    if (tl != 0) {
        emit(sm, "telephony", ck_provsm_tel_name(sm->tel), ck_provsm_tel_name(tl), t,
             ev->krb_error);
        moved |= tl != sm->tel;
        sm->tel = tl;
        switch (t) {
        case CK_PROVSM_EV_PKINIT_OK_MFG:
        case CK_PROVSM_EV_PKINIT_OK_OPERATOR:
            sm->ticket_expires = ev->expires;
            break;
        case CK_PROVSM_EV_KMM_OK:
            sm->sa_expires = ev->expires;
            break;
        case CK_PROVSM_EV_SA_EXPIRED:
            sm->sa_expires = 0;
            break;
        case CK_PROVSM_EV_CERT_RECEIVED:
            sm->operator_cert = true;
            sm->cert_not_before = ev->not_before;
            sm->cert_id = ev->cert_id;
            break;
        default: break;
        }
        if (tl == CK_PROVSM_TEL_NOT_CONFIGURED) {
            /* Nothing usable survives in 540: the ticket, the SA are gone. */
            sm->ticket_expires = 0;
            sm->sa_expires = 0;
        }
    }
    if (t == CK_PROVSM_EV_DROP || t == CK_PROVSM_EV_CERT_WIPED) {
        sm->operator_cert = false;
        sm->cert_not_before = 0;
        sm->cert_id = 0;
        act |= CK_PROVSM_ACT_DROP_CERT;
    }
    sm->updated = now;
    if (verdict != NULL)
        *verdict = moved ? CK_PROVSM_MOVED : CK_PROVSM_STAYED;
    if (actions != NULL)
        *actions = act;
    return 0;
}

int
ck_provsm_tick(ck_provsm *sm, int64_t now)
{
    ck_provsm_event ev;
    enum ck_provsm_verdict v;
    int n = 0;

    memset(&ev, 0, sizeof(ev));
    /* The SA first: when both ran out, 560 -> 550 -> 540, as the figure chains them. */
    if (sm->sa_expires != 0 && now >= sm->sa_expires) {
        ev.type = CK_PROVSM_EV_SA_EXPIRED;
        if (ck_provsm_apply(sm, &ev, now, &v, NULL) == 0 && v != CK_PROVSM_IGNORED)
            n++;
        sm->sa_expires = 0;
    }
    /* The ticket matters to the figure only in 550 (560 runs on its SA; 580 renews). */
    if (sm->ticket_expires != 0 && now >= sm->ticket_expires &&
        sm->tel == CK_PROVSM_TEL_UNPROVISIONED) {
        ev.type = CK_PROVSM_EV_TICKET_EXPIRED;
        if (ck_provsm_apply(sm, &ev, now, &v, NULL) == 0 && v != CK_PROVSM_IGNORED)
            n++;
        sm->ticket_expires = 0;
    }
    return n;
}

/* ---- the state file ------------------------------------------------------------------------ */

static const char *const file_keys[] = {
    "mac", "hfc", "telephony", "ip", "ticket-expires", "sa-expires", "operator-cert",
    "cert-not-before", "cert-id", "updated",
};
#define N_KEYS (sizeof(file_keys) / sizeof(file_keys[0]))

int
ck_provsm_encode(const ck_provsm *sm, char **out, size_t *out_len)
{
    char mac[CK_MAC_TEXT], *buf;
    int n;

    *out = NULL;
    *out_len = 0;
    if (ck_provsm_hfc_name(sm->hfc) == NULL || ck_provsm_tel_name(sm->tel) == NULL)
        return ck_error_set(CK_ERR_INVAL, "state file: bad state %d/%d", (int)sm->hfc,
                            (int)sm->tel);
    if (sm->ip[0] != '\0' && !ip_ok(sm->ip))
        return ck_error_set(CK_ERR_INVAL, "state file: bad address");
    if (sm->ticket_expires < 0 || sm->ticket_expires > CK_PROVSM_TIME_MAX ||
        sm->sa_expires < 0 || sm->sa_expires > CK_PROVSM_TIME_MAX ||
        sm->cert_not_before < 0 || sm->cert_not_before > CK_PROVSM_TIME_MAX ||
        sm->updated < 0 || sm->updated > CK_PROVSM_TIME_MAX || sm->cert_id < 0)
        return ck_error_set(CK_ERR_INVAL, "state file: time out of range");
    if ((buf = malloc(CK_PROVSM_FILE_MAX)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "state file");
    ck_mac_format(sm->mac, mac);
    n = snprintf(buf, CK_PROVSM_FILE_MAX,
                 "cablekey-mta-state %d\nmac %s\nhfc %d\ntelephony %d\nip %s\n"
                 "ticket-expires %lld\nsa-expires %lld\noperator-cert %d\n"
                 "cert-not-before %lld\ncert-id %lld\nupdated %lld\n",
                 CK_PROVSM_FILE_VERSION, mac, (int)sm->hfc, (int)sm->tel,
                 sm->ip[0] != '\0' ? sm->ip : "-", (long long)sm->ticket_expires,
                 (long long)sm->sa_expires, sm->operator_cert ? 1 : 0,
                 (long long)sm->cert_not_before, (long long)sm->cert_id,
                 (long long)sm->updated);
    if (n < 0 || n >= CK_PROVSM_FILE_MAX) {
        free(buf);
        return ck_error_set(CK_ERR_LIMIT, "state file too long");
    }
    *out = buf;
    *out_len = (size_t)n;
    return 0;
}

static int
parse_time(const char *v, size_t lineno, int64_t *out)
{
    if (ck_parse_int64(v, 0, CK_PROVSM_TIME_MAX, out) != 0)
        return ck_error_set(CK_ERR_DECODE, "state file line %zu: bad number", lineno);
    return 0;
}

static int
parse_field(ck_provsm *sm, size_t k, const char *v, size_t lineno)
{
    int64_t x;

    switch (k) {
    case 0:
        if (ck_mac_parse(v, sm->mac) != 0)
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: bad MAC", lineno);
        return 0;
    case 1:
        if (ck_parse_int64(v, 0, 999, &x) != 0 ||
            ck_provsm_hfc_name((enum ck_provsm_hfc)x) == NULL)
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: unknown HFC state",
                                lineno);
        sm->hfc = (enum ck_provsm_hfc)x;
        return 0;
    case 2:
        if (ck_parse_int64(v, 0, 999, &x) != 0 ||
            ck_provsm_tel_name((enum ck_provsm_tel)x) == NULL)
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: unknown telephony state",
                                lineno);
        sm->tel = (enum ck_provsm_tel)x;
        return 0;
    case 3:
        if (strcmp(v, "-") == 0) {
            sm->ip[0] = '\0';
            return 0;
        }
        if (!ip_ok(v))
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: bad address", lineno);
        ck_strlcpy(sm->ip, v, sizeof(sm->ip));
        return 0;
    case 4: return parse_time(v, lineno, &sm->ticket_expires);
    case 5: return parse_time(v, lineno, &sm->sa_expires);
    case 6:
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: operator-cert is 0 or 1",
                                lineno);
        sm->operator_cert = v[0] == '1';
        return 0;
    case 7: return parse_time(v, lineno, &sm->cert_not_before);
    case 8:
        if (ck_parse_int64(v, 0, INT64_MAX, &sm->cert_id) != 0)
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: bad number", lineno);
        return 0;
    case 9: return parse_time(v, lineno, &sm->updated);
    }
    return ck_error_set(CK_ERR_DECODE, "state file line %zu: unknown key", lineno);
}

int
ck_provsm_decode(const char *data, size_t len, ck_provsm *out)
{
    ck_provsm sm;
    bool seen[N_KEYS] = {false};
    char line[CK_PROVSM_LINE_MAX + 1];
    size_t pos = 0, lineno = 0;
    int ret;

    if (len > CK_PROVSM_FILE_MAX)
        return ck_error_set(CK_ERR_LIMIT, "state file larger than %d bytes", CK_PROVSM_FILE_MAX);
    memset(&sm, 0, sizeof(sm));
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t l, k;
        char *sp;

        lineno++;
        if (nl == NULL)
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: no newline", lineno);
        l = (size_t)(nl - (data + pos));
        if (l > CK_PROVSM_LINE_MAX)
            return ck_error_set(CK_ERR_LIMIT, "state file line %zu: too long", lineno);
        memcpy(line, data + pos, l);
        line[l] = '\0';
        pos += l + 1;
        if (memchr(line, '\0', l) != NULL || memchr(line, '\r', l) != NULL)
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: bad character", lineno);
        if (lineno == 1) {
            int64_t ver;
            if (strncmp(line, "cablekey-mta-state ", 19) != 0 ||
                ck_parse_int64(line + 19, 1, 999, &ver) != 0)
                return ck_error_set(CK_ERR_DECODE, "not a cablekey mta state file");
            if (ver != CK_PROVSM_FILE_VERSION)
                return ck_error_set(CK_ERR_UNSUPPORTED, "state file version %lld (this "
                                    "program reads %d)", (long long)ver, CK_PROVSM_FILE_VERSION);
            continue;
        }
        if ((sp = strchr(line, ' ')) == NULL || sp == line || sp[1] == '\0' ||
            strchr(sp + 1, ' ') != NULL)
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: expected 'key value'",
                                lineno);
        *sp = '\0';
        for (k = 0; k < N_KEYS; k++) {
            if (strcmp(line, file_keys[k]) == 0)
                break;
        }
        if (k == N_KEYS)
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: unknown key", lineno);
        if (seen[k])
            return ck_error_set(CK_ERR_DECODE, "state file line %zu: key repeated", lineno);
        seen[k] = true;
        if ((ret = parse_field(&sm, k, sp + 1, lineno)) != 0)
            return ret;
    }
    if (lineno == 0)
        return ck_error_set(CK_ERR_DECODE, "state file is empty");
    for (size_t k = 0; k < N_KEYS; k++) {
        if (!seen[k])
            return ck_error_set(CK_ERR_DECODE, "state file: '%s' missing", file_keys[k]);
    }
    /* Consistency the machines keep: an operator certificate record only with a certificate. */
    if (!sm.operator_cert && (sm.cert_not_before != 0 || sm.cert_id != 0))
        return ck_error_set(CK_ERR_DECODE, "state file: certificate fields without a "
                                           "certificate");
    *out = sm;
    return 0;
}
