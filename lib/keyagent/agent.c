/* One round of `cablekey keytab-agent` (keyagent.h): fetch, rewrite the keytab, re-read it,
 * confirm.
 *
 * Why the steps are in this order, for the kill -9 test (t_keyagent_crash.sh): the KDC
 * activates a staged kvno only after a CONFIRM, and the agent confirms only what it has read
 * back from the file the service reads. Killed before the rename, the old keytab is intact
 * and the next round fetches again; killed after it, the next round finds the staged kvno
 * already there and confirms it. Entries are removed only for kvnos the KDC no longer holds
 * (purged: no valid ticket can need them), never the newest ones. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/keyagent.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/log.h"
#include "cablekey/net.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

#define CRASH_POINTS 8

void
ck_keyagent_crash_point(const char *env, const char *point)
{
    /* Per-process counters of the points named so far; crash tests run one point per process. */
    static struct {
        char name[32];
        long hits;
    } seen[CRASH_POINTS];
    const char *v = getenv(env), *colon;
    int64_t n = 1;
    size_t plen;

    if (v == NULL || (colon = strchr(v, ':')) == NULL)
        return;
    plen = (size_t)(colon - v);
    if (plen != strlen(point) || strncmp(v, point, plen) != 0 ||
        ck_parse_int64(colon + 1, 1, INT32_MAX, &n) != 0)
        return;
    for (size_t i = 0; i < CRASH_POINTS; i++) {
        if (seen[i].name[0] == '\0')
            ck_strlcpy(seen[i].name, point, sizeof(seen[i].name));
        if (strcmp(seen[i].name, point) != 0)
            continue;
        if (++seen[i].hits == n) {
            ck_log_notice("crash point %s reached (%s): SIGKILL", point, env);
            kill(getpid(), SIGKILL);
        }
        return;
    }
}

int64_t
ck_keyagent_backoff_ms(int attempt, int64_t max_ms)
{
    int64_t d = CK_KEYAGENT_BACKOFF_MIN_MS;

    if (max_ms <= 0)
        max_ms = CK_KEYAGENT_BACKOFF_MAX_MS;
    for (int i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}

/* ---- transports ------------------------------------------------------------------------- */

struct send_shim {
    const ck_keyagent_cfg *cfg;
    int index;
    bool svc;
};

static int
shim_send(void *arg, const uint8_t *req, size_t req_len, uint8_t **reply, size_t *reply_len)
{
    struct send_shim *s = arg;

    return (s->svc ? s->cfg->send_svc : s->cfg->send_as)(s->cfg->send_arg, s->index, req,
                                                          req_len, reply, reply_len);
}

/* "host[:port]" of KDC i with the key version service's port. */
static int
service_addr(const ck_keyagent_cfg *cfg, size_t i, char *buf, size_t size)
{
    char host[256];
    uint16_t port = 0;
    int n;

    if (ck_net_parse_listen(cfg->kdcs[i], 88, host, sizeof(host), &port) != 0 || host[0] == '\0')
        return ck_error_set(CK_ERR_INVAL, "bad KDC address \"%s\"", cfg->kdcs[i]);
    n = snprintf(buf, size, strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host,
                 (unsigned)(cfg->service_port != 0 ? cfg->service_port : CK_KEYAGENT_PORT));
    if (n < 0 || (size_t)n >= size)
        return ck_error_set(CK_ERR_LIMIT, "KDC address too long");
    return 0;
}

/* ---- the keytab ------------------------------------------------------------------------- */

static uint32_t
keytab_max_kvno(const ck_keytab *kt, const ck_principal *p)
{
    uint32_t max = 0;

    for (size_t i = 0; i < kt->n_entries; i++)
        if (ck_principal_equal(kt->entries[i].principal, p) && kt->entries[i].kvno > max)
            max = kt->entries[i].kvno;
    return max;
}

static bool
kvno_held(const ck_keyagent_rep *rep, uint32_t kvno)
{
    for (size_t i = 0; i < rep->n_held; i++)
        if (rep->held[i] == kvno)
            return true;
    return false;
}

/* The new keytab: every entry of other principals, this principal's entries for the kvnos
 * the KDC still holds (all of them if it listed none: nothing is dropped on a doubt), and the
 * fetched keys that are not there yet. */
static int
keytab_merge(const ck_keytab *old, const ck_principal *p, const ck_keyagent_rep *rep,
             ck_keytab **out, size_t *added, size_t *removed)
{
    ck_keytab *kt = NULL;
    uint32_t newest = keytab_max_kvno(old, p);
    int rc;

    *out = NULL;
    *added = *removed = 0;
    if ((rc = ck_keytab_new(&kt)) != 0)
        return rc;
    for (size_t i = 0; i < old->n_entries; i++) {
        const ck_keytab_entry *e = &old->entries[i];
        if (ck_principal_equal(e->principal, p) && rep->n_held > 0 && !kvno_held(rep, e->kvno) &&
            e->kvno < rep->current_kvno && e->kvno != newest) {
            (*removed)++;
            continue;
        }
        if ((rc = ck_keytab_add(kt, e->principal, e->kvno, e->timestamp, &e->key)) != 0)
            goto out;
    }
    for (size_t i = 0; i < rep->n_keys; i++) {
        const ck_keyagent_key *k = &rep->keys[i];
        const ck_keytab_entry *e = ck_keytab_find(kt, p, k->kvno, k->key.enctype);
        if (e != NULL && e->kvno == k->kvno) {
            if (e->key.length != k->key.length ||
                !ck_ct_equal(e->key.contents, k->key.contents, k->key.length)) {
                rc = ck_error_set(CK_ERR_INTEGRITY,
                                  "the keytab holds another key for kvno %u enctype %d than the "
                                  "KDC: refusing to overwrite it", k->kvno, (int)k->key.enctype);
                goto out;
            }
            continue;
        }
        if ((rc = ck_keytab_add(kt, p, k->kvno, 0, &k->key)) != 0)
            goto out;
        (*added)++;
    }
    *out = kt;
    kt = NULL;
out:
    ck_keytab_free(kt);
    return rc;
}

/* The file as the service will read it holds every fetched key. */
static int
keytab_verify(const char *path, const ck_principal *p, const ck_keyagent_rep *rep)
{
    ck_keytab *kt = NULL;
    int rc;

    if ((rc = ck_keytab_read(path, &kt)) != 0)
        return ck_error_set(rc, "re-reading %s: %s", path, ck_error_context());
    for (size_t i = 0; i < rep->n_keys; i++) {
        const ck_keyagent_key *k = &rep->keys[i];
        const ck_keytab_entry *e = ck_keytab_find(kt, p, k->kvno, k->key.enctype);
        if (e == NULL || e->kvno != k->kvno || e->key.length != k->key.length ||
            !ck_ct_equal(e->key.contents, k->key.contents, k->key.length)) {
            rc = ck_error_set(CK_ERR_INTEGRITY, "%s does not hold kvno %u enctype %d after the "
                              "rewrite", path, k->kvno, (int)k->key.enctype);
            break;
        }
    }
    ck_keytab_free(kt);
    return rc;
}

/* ---- one round -------------------------------------------------------------------------- */

/* FETCH (and, when due, CONFIRM) against KDC i. */
static int
round_one_kdc(const ck_keyagent_cfg *cfg, size_t i, const ck_principal *p, ck_keytab *kt,
              ck_keyagent_round *out)
{
    ck_kdc_transport kdc, svc;
    struct send_shim as_shim = {cfg, (int)i, false}, svc_shim = {cfg, (int)i, true};
    const char *kdc_list[1] = {cfg->kdcs[i]};
    char addr[300];
    const char *svc_list[1] = {addr};
    ck_creds *creds = NULL;
    ck_keyagent_req req;
    ck_keyagent_rep rep;
    ck_keytab *nkt = NULL;
    uint32_t confirm = 0;
    int rc;

    memset(&rep, 0, sizeof(rep));
    if ((rc = service_addr(cfg, i, addr, sizeof(addr))) != 0)
        return rc;
    memset(&kdc, 0, sizeof(kdc));
    kdc.kdcs = kdc_list;
    kdc.n_kdcs = 1;
    kdc.timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 3000;
    kdc.max_timeout_ms = kdc.timeout_ms;
    kdc.max_tries = 2;
    svc = kdc;
    svc.kdcs = svc_list;
    svc.max_tries = 1;
    svc.tcp_only = true;
    if (cfg->send_as != NULL) {
        kdc.send_fn = shim_send;
        kdc.send_arg = &as_shim;
    }
    if (cfg->send_svc != NULL) {
        svc.send_fn = shim_send;
        svc.send_arg = &svc_shim;
    }
    if ((rc = ck_keyagent_login(&kdc, cfg->principal, kt, cfg->kvno_hint, &creds, NULL)) != 0) {
        int code = ck_error_krb_code();
        /* The realm's answer about the principal (disabled, expired, unknown, not this key):
         * asking the other KDCs would only repeat it. */
        if (rc == CK_ERR_KRB &&
            (code == CK_KDC_ERR_CLIENT_REVOKED || code == CK_KDC_ERR_C_PRINCIPAL_UNKNOWN ||
             code == CK_KDC_ERR_NAME_EXP || code == CK_KDC_ERR_POLICY ||
             code == CK_KDC_ERR_PREAUTH_FAILED))
            rc = ck_error_set(CK_ERR_POLICY, "the KDC refused %s: %s", cfg->principal,
                              ck_error_context());
        goto out;
    }
    memset(&req, 0, sizeof(req));
    req.type = CK_KEYAGENT_FETCH;
    req.kvno = out->had_kvno;
    ck_strlcpy(req.host, cfg->host, sizeof(req.host));
    if ((rc = ck_keyagent_exchange(&svc, creds, &req, &rep)) != 0)
        goto out;
    if (rep.result != CK_KEYAGENT_OK) {
        rc = ck_error_set(rep.result == CK_KEYAGENT_DENIED ? CK_ERR_POLICY : CK_ERR_PROTO,
                          "FETCH refused by %s: %s (%s)", addr,
                          ck_keyagent_result_name(rep.result), rep.text);
        goto out;
    }
    out->kdc_index = (int)i;
    out->current_kvno = rep.current_kvno;
    out->staged_kvno = rep.staged_kvno;
    ck_keyagent_crash_point("CK_AGENT_CRASH", "after-fetch");
    if ((rc = keytab_merge(kt, p, &rep, &nkt, &out->added, &out->removed)) != 0)
        goto out;
    if (out->added > 0 || out->removed > 0) {
        if ((rc = ck_keytab_write(cfg->keytab, nkt)) != 0) {
            rc = ck_error_set(rc, "writing %s: %s", cfg->keytab, ck_error_context());
            goto out;
        }
        out->written = true;
        ck_keyagent_crash_point("CK_AGENT_CRASH", "after-write");
    }
    if ((rc = keytab_verify(cfg->keytab, p, &rep)) != 0)
        goto out;
    /* The staged kvno is confirmed at every round until it is activated (a CONFIRM lost to a
     * crash or a network failure is repeated); the current one after it was written. */
    if (rep.staged_kvno != 0 && keytab_max_kvno(nkt, p) >= rep.staged_kvno)
        confirm = rep.staged_kvno;
    else if (out->added > 0)
        confirm = rep.current_kvno;
    if (confirm != 0) {
        ck_keyagent_crash_point("CK_AGENT_CRASH", "before-confirm");
        ck_keyagent_rep_clear(&rep);
        memset(&req, 0, sizeof(req));
        req.type = CK_KEYAGENT_CONFIRM;
        req.kvno = confirm;
        ck_strlcpy(req.host, cfg->host, sizeof(req.host));
        if ((rc = ck_keyagent_exchange(&svc, creds, &req, &rep)) != 0)
            goto out;
        if (rep.result != CK_KEYAGENT_OK) {
            rc = ck_error_set(rep.result == CK_KEYAGENT_DENIED ? CK_ERR_POLICY : CK_ERR_PROTO,
                              "CONFIRM of kvno %u refused by %s: %s (%s)", confirm, addr,
                              ck_keyagent_result_name(rep.result), rep.text);
            goto out;
        }
        out->confirmed = confirm;
    }
out:
    ck_keyagent_rep_clear(&rep);
    ck_keytab_free(nkt);
    ck_creds_free(creds);
    return rc;
}

int
ck_keyagent_round_run(const ck_keyagent_cfg *cfg, ck_keyagent_round *out)
{
    ck_principal *p = NULL;
    ck_keytab *kt = NULL;
    char first_err[512] = "";
    int rc, first_rc = 0;

    memset(out, 0, sizeof(*out));
    out->kdc_index = -1;
    if (cfg->n_kdcs == 0 || cfg->n_kdcs > CK_KEYAGENT_MAX_KDCS)
        return ck_error_set(CK_ERR_INVAL, "keytab-agent: 1 to %d KDCs", CK_KEYAGENT_MAX_KDCS);
    if (!ck_keyagent_host_ok(cfg->host))
        return ck_error_set(CK_ERR_INVAL, "keytab-agent: bad host name \"%s\"", cfg->host);
    if ((rc = ck_principal_parse(cfg->principal, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &p)) != 0)
        return ck_error_set(rc, "keytab-agent: principal \"%s\": %s", cfg->principal,
                            ck_error_context());
    if ((rc = ck_keytab_read(cfg->keytab, &kt)) != 0) {
        rc = ck_error_set(rc, "keytab %s: %s", cfg->keytab, ck_error_context());
        goto out;
    }
    if ((out->had_kvno = keytab_max_kvno(kt, p)) == 0) {
        rc = ck_error_set(CK_ERR_NOTFOUND, "keytab %s holds no key of %s", cfg->keytab,
                          cfg->principal);
        goto out;
    }
    for (size_t i = 0; i < cfg->n_kdcs; i++) {
        rc = round_one_kdc(cfg, i, p, kt, out);
        /* A refusal of the principal is the realm's answer, not one KDC's trouble; and once a
         * KDC answered the FETCH, the keytab is its answer's: the next round goes on. */
        if (rc == 0 || rc == CK_ERR_POLICY || out->kdc_index >= 0)
            goto out;
        if (first_rc == 0) {
            first_rc = rc;
            snprintf(first_err, sizeof(first_err), "%s: %s", cfg->kdcs[i], ck_error_context());
        }
    }
    rc = ck_error_set(first_rc, "no KDC served the round (%zu tried; first: %s)", cfg->n_kdcs,
                      first_err);
out:
    ck_keytab_free(kt);
    ck_principal_free(p);
    return rc;
}
