/* The MTA-FQDN server of cablekey-prov (prov.h, UDP 2246; docs/PROTOCOL.md "MTA-FQDN"): the
 * KDC asks, during a PacketCable MTA's PKINIT with an operator certificate, whether this
 * provisioning server knows the device, and under which FQDN.
 *
 * Decisions:
 *   - Only a PROVISIONED (or REPAIR: it holds a short operator certificate) device is known
 *     here; an unprovisioned device claiming to be provisioned, a revoked one, or a key hash
 *     that is not the device's, gets an authenticated Error Reply naming the reason, which the
 *     KDC turns into its refusal (PROV_UNKNOWN_DEVICE...).
 *   - The key hash is compared with the SHA-1 of the key of the device's manufacturer
 *     certificate (kept at admission) or, when none was kept, of its current operator
 *     certificate: both certify the same key. In constant time, as any credential check.
 *   - The FQDN is the one recorded at provisioning, else <principal name>.<fqdn_domain>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/prov.h"
#include "cablekey/prov_wire.h"
#include "cablekey/util.h"
#include "wiresrv.h"

struct prov_fqdn_server {
    struct prov_wire_server *wire;
    char *fqdn_domain;
};

struct lookup_state {
    struct prov_wire_ctx *ctx;
    struct prov_fqdn_server *srv;
    bool called;
    char mac[CK_DEVICE_MAC_LEN + 1];
    char detail[300];
};

static void
reply_error(ck_mtafqdn_msg *rep, uint32_t code, const char *text)
{
    rep->type = CK_MTAFQDN_ERROR;
    rep->error = code;
    ck_strlcpy(rep->text, text, sizeof(rep->text));
}

/* Whether the request's key hash is the device's (manufacturer or current operator cert). */
static int
key_matches(ck_store *store, const ck_prov_device *d, const uint8_t want[20], bool *match)
{
    ck_prov_cert *c = NULL;
    uint8_t h[20];
    int rc;

    *match = false;
    if (d->mfg_cert_der != NULL && d->mfg_cert_len > 0) {
        rc = ck_mtafqdn_spki_sha1(d->mfg_cert_der, d->mfg_cert_len, h);
    } else {
        if ((rc = ck_prov_cert_current(store, d->mac, &c)) == CK_ERR_NOTFOUND)
            return 0;
        if (rc == 0)
            rc = ck_mtafqdn_spki_sha1(c->der, c->der_len, h);
        ck_prov_cert_free(c);
    }
    if (rc == 0)
        *match = CRYPTO_memcmp(h, want, sizeof(h)) == 0;
    return rc;
}

static void
device_fqdn(const struct prov_fqdn_server *srv, const ck_prov_device *d, char *out, size_t size)
{
    size_t n;

    if (d->fqdn[0] != '\0') {
        ck_strlcpy(out, d->fqdn, size);
        return;
    }
    out[0] = '\0';
    if (d->principal == NULL || srv->fqdn_domain == NULL)
        return;
    n = strcspn(d->principal, "@");
    snprintf(out, size, "%.*s.%s", (int)n, d->principal, srv->fqdn_domain);
}

static int
lookup(void *arg, const ck_mtafqdn_msg *req, ck_mtafqdn_msg *rep)
{
    struct lookup_state *ls = arg;
    ck_prov_device *d = NULL;
    char raw[13];
    bool match = false;
    int rc;

    ls->called = true;
    snprintf(raw, sizeof(raw), "%02x%02x%02x%02x%02x%02x", req->mac[0], req->mac[1],
             req->mac[2], req->mac[3], req->mac[4], req->mac[5]);
    (void)ck_device_mac_parse(raw, ls->mac);
    rc = ck_prov_device_get(ls->ctx->store, ls->mac, &d);
    if (rc == CK_ERR_NOTFOUND) {
        reply_error(rep, CK_MTAFQDN_ERR_UNKNOWN_DEVICE, "unknown device");
        ck_strlcpy(ls->detail, "not in the database", sizeof(ls->detail));
        return 0;
    }
    if (rc != 0) {
        ck_strlcpy(ls->detail, ck_error_context(), sizeof(ls->detail));
        return rc;
    }
    if (d->state == CK_PROV_REVOKED || req->mfg_revoked != 0) {
        reply_error(rep, CK_MTAFQDN_ERR_REVOKED,
                    d->state == CK_PROV_REVOKED ? "device revoked"
                                                : "manufacturer certificate revoked");
        ck_strlcpy(ls->detail, rep->text, sizeof(ls->detail));
    } else if (d->state != CK_PROV_PROVISIONED && d->state != CK_PROV_REPAIR) {
        reply_error(rep, CK_MTAFQDN_ERR_UNKNOWN_DEVICE, "device not provisioned");
        snprintf(ls->detail, sizeof(ls->detail), "state %s", ck_prov_state_name(d->state));
    } else if ((rc = key_matches(ls->ctx->store, d, req->spki_sha1, &match)) != 0) {
        ck_strlcpy(ls->detail, ck_error_context(), sizeof(ls->detail));
    } else if (!match) {
        reply_error(rep, CK_MTAFQDN_ERR_KEY_MISMATCH, "public key hash mismatch");
        ck_strlcpy(ls->detail, rep->text, sizeof(ls->detail));
    } else {
        rep->type = CK_MTAFQDN_REPLY;
        device_fqdn(ls->srv, d, rep->fqdn, sizeof(rep->fqdn));
        memcpy(rep->ipv4, d->ipv4, sizeof(rep->ipv4));
        if (!ck_mtafqdn_fqdn_ok(rep->fqdn)) {
            reply_error(rep, CK_MTAFQDN_ERR_INTERNAL, "no FQDN for the device");
            ck_strlcpy(ls->detail, "no fqdn recorded and no fqdn_domain", sizeof(ls->detail));
        } else {
            snprintf(ls->detail, sizeof(ls->detail), "fqdn=%s", rep->fqdn);
        }
    }
    ck_prov_device_free(d);
    return rc;
}

static int
handle(struct prov_wire_ctx *ctx, const uint8_t *req, size_t len, const struct ck_peer *peer,
       int64_t now, uint8_t **out, size_t *out_len)
{
    struct lookup_state ls;
    char addr[CK_NET_ADDRSTRLEN], why[320];
    int rc;

    memset(&ls, 0, sizeof(ls));
    ls.ctx = ctx;
    ls.srv = ctx->arg;
    ck_error_clear();
    rc = ck_mtafqdn_serve(req, len, ck_keyset_key_fn, ctx->keys, ctx->service, ctx->rcache,
                          ctx->clockskew, now, lookup, &ls, out, out_len);
    if (prov_wire_log_unhandled("MTAFQDN", peer, len, rc, ls.called, addr, sizeof(addr)))
        return rc;
    prov_wire_log_escape(ls.detail, why, sizeof(why));
    ck_log_notice("MTAFQDN %s mac=%s: %s", addr, ls.mac, why);
    return 0;
}

int
prov_fqdn_start(const struct prov_config *cfg, struct prov_fqdn_server **out)
{
    struct prov_fqdn_server *s;
    struct prov_wire_def def;
    int rc;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "mtafqdn");
    if (cfg->fqdn_domain != NULL && (s->fqdn_domain = strdup(cfg->fqdn_domain)) == NULL) {
        free(s);
        return ck_error_set(CK_ERR_NOMEM, "mtafqdn");
    }
    memset(&def, 0, sizeof(def));
    def.what = "mtafqdn";
    def.service = CK_MTAFQDN_SERVICE;
    def.port = CK_MTAFQDN_PORT;
    def.tcp = false;
    def.max_request = CK_MTAFQDN_MAX_DGRAM;
    def.max_reply = CK_MTAFQDN_MAX_DGRAM;
    def.handler = handle;
    def.arg = s;
    rc = prov_wire_start(cfg, &def, cfg->fqdn_listen, cfg->n_fqdn_listen, &s->wire);
    if (rc != 0 || s->wire == NULL) {
        prov_fqdn_stop(s);
        return rc;
    }
    *out = s;
    return 0;
}

void
prov_fqdn_stop(struct prov_fqdn_server *s)
{
    if (s == NULL)
        return;
    prov_wire_stop(s->wire);
    free(s->fqdn_domain);
    free(s);
}
