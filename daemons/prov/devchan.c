/* The device channel of cablekey-prov (prov.h, TCP and UDP 7467; docs/PROTOCOL.md "Device
 * channel"): a device fetches its operator certificate with the CA chain, acknowledges it, and
 * asks whether to keep a certificate the KDC refused.
 *
 * Decisions:
 *   - The device is the ticket's client: the device table's rows for that principal (exactly
 *     one; the KDC's device row names the principal a MAC logs in as). A principal with no
 *     device, or several, is NOT_A_DEVICE: nothing is said about any certificate.
 *   - CHECK answers DROP only when this realm's records say the certificate is not the
 *     device's current one (never issued here, or superseded / de-provisioned); any doubt
 *     (a database error) answers HARDERROR without an instruction, so the device keeps it and
 *     asks again later. The device obeys DROP only from this authenticated reply.
 *   - The CA chain (ca_chain, PEM) is read once at start: a bad file is a start-up error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/log.h"
#include "cablekey/prov.h"
#include "cablekey/prov_wire.h"
#include "cablekey/util.h"
#include "wiresrv.h"

#define CHAIN_MAX (CK_PROVDEV_MAX_CERTS - 1)

struct prov_devchan_server {
    struct prov_wire_server *wire;
    uint8_t *chain[CHAIN_MAX];
    size_t chain_len[CHAIN_MAX];
    size_t n_chain;
};

struct one_device {
    char mac[CK_DEVICE_MAC_LEN + 1];
    size_t n;
};

static int
device_cb(const ck_db_device *dev, void *arg)
{
    struct one_device *o = arg;

    if (o->n++ == 0)
        ck_strlcpy(o->mac, dev->mac, sizeof(o->mac));
    return 0;
}

/* The client's one device: 0 with mac, CK_ERR_NOTFOUND (none or several), or a store error. */
static int
client_device(ck_store *store, const char *client, char mac[CK_DEVICE_MAC_LEN + 1])
{
    struct one_device o;
    int rc;

    memset(&o, 0, sizeof(o));
    if ((rc = ck_store_list_devices(store, client, NULL, 2, device_cb, &o, NULL)) != 0)
        return rc;
    if (o.n != 1)
        return ck_error_set(CK_ERR_NOTFOUND, "%zu devices map to the client", o.n);
    memcpy(mac, o.mac, sizeof(o.mac));
    return 0;
}

static void
set_result(ck_provdev_rep *rep, int result, const char *text)
{
    rep->result = (uint16_t)result;
    ck_strlcpy(rep->text, text, sizeof(rep->text));
}

static int
fetch(struct prov_devchan_server *s, ck_store *store, const char *mac, ck_provdev_rep *rep)
{
    ck_prov_cert *c = NULL;
    int rc = ck_prov_cert_current(store, mac, &c);

    if (rc == CK_ERR_NOTFOUND) {
        set_result(rep, CK_PROVDEV_NO_CERT, "no operator certificate issued");
        return 0;
    }
    if (rc != 0)
        return rc;
    rep->cert_id = c->id;
    rep->certs[0] = c->der;
    rep->cert_lens[0] = c->der_len;
    c->der = NULL;
    rep->n_certs = 1;
    ck_prov_cert_free(c);
    for (size_t i = 0; i < s->n_chain; i++) {
        if ((rep->certs[i + 1] = malloc(s->chain_len[i])) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "devchan");
        memcpy(rep->certs[i + 1], s->chain[i], s->chain_len[i]);
        rep->cert_lens[i + 1] = s->chain_len[i];
        rep->n_certs = i + 2;
    }
    set_result(rep, CK_PROVDEV_OK, "current operator certificate");
    return 0;
}

struct call {
    struct prov_wire_ctx *ctx;
    int64_t now;
    bool called;
    char mac[CK_DEVICE_MAC_LEN + 1];
    char client[256];
    uint8_t type;
    char detail[160];
};

static int
handle_req(void *arg, const char *client, const ck_provdev_req *req, ck_provdev_rep *rep)
{
    struct call *cl = arg;
    ck_store *store = cl->ctx->store;
    bool known = false, current = false;
    int rc;

    cl->called = true;
    cl->type = req->type;
    prov_wire_log_escape(client, cl->client, sizeof(cl->client));
    rc = client_device(store, client, cl->mac);
    if (rc == CK_ERR_NOTFOUND) {
        set_result(rep, CK_PROVDEV_NOT_A_DEVICE, "no device of this realm");
        ck_strlcpy(cl->detail, ck_error_context(), sizeof(cl->detail));
        return 0;
    }
    if (rc != 0)
        goto fail;
    switch (req->type) {
    case CK_PROVDEV_FETCH:
        if ((rc = fetch(cl->ctx->arg, store, cl->mac, rep)) != 0)
            goto fail;
        snprintf(cl->detail, sizeof(cl->detail), "cert=%lld certs=%zu",
                 (long long)rep->cert_id, rep->n_certs);
        return 0;
    case CK_PROVDEV_ACK:
        rc = ck_prov_cert_ack(store, cl->mac, req->cert_id, cl->now);
        if (rc == CK_ERR_NOTFOUND) {
            set_result(rep, CK_PROVDEV_NOTFOUND, "not the device's current certificate");
            snprintf(cl->detail, sizeof(cl->detail), "cert=%lld not current",
                     (long long)req->cert_id);
            return 0;
        }
        if (rc != 0)
            goto fail;
        set_result(rep, CK_PROVDEV_OK, "acknowledged");
        snprintf(cl->detail, sizeof(cl->detail), "cert=%lld acked", (long long)req->cert_id);
        return 0;
    default: /* CHECK */
        if ((rc = ck_prov_cert_status(store, cl->mac, req->sha256, &known, &current)) != 0)
            goto fail;
        rep->instruction = current ? CK_PROVDEV_KEEP : CK_PROVDEV_DROP;
        set_result(rep, CK_PROVDEV_OK,
                   current  ? "the certificate is current: keep it"
                   : known ? "the certificate was superseded: drop it"
                           : "the certificate was not issued by this realm: drop it");
        snprintf(cl->detail, sizeof(cl->detail), "%s (%s)", current ? "KEEP" : "DROP",
                 current ? "current" : known ? "superseded" : "unknown");
        return 0;
    }
fail:
    ck_strlcpy(cl->detail, ck_error_context(), sizeof(cl->detail));
    return rc;
}

static const char *
op_name(uint8_t t)
{
    return t == CK_PROVDEV_FETCH ? "fetch" : t == CK_PROVDEV_ACK ? "ack" : "check";
}

static int
handle(struct prov_wire_ctx *ctx, const uint8_t *req, size_t len, const struct ck_peer *peer,
       int64_t now, uint8_t **out, size_t *out_len)
{
    struct call cl;
    char addr[CK_NET_ADDRSTRLEN], why[256];
    int rc;

    memset(&cl, 0, sizeof(cl));
    cl.ctx = ctx;
    cl.now = now;
    ck_error_clear();
    rc = ck_provdev_serve(req, len, ck_keyset_key_fn, ctx->keys, ctx->service, ctx->rcache,
                          ctx->clockskew, now, handle_req, &cl, out, out_len);
    if (prov_wire_log_unhandled("PROVDEV", peer, len, rc, cl.called, addr, sizeof(addr)))
        return rc;
    prov_wire_log_escape(cl.detail, why, sizeof(why));
    ck_log_notice("PROVDEV %s client=%s mac=%s op=%s: %s", addr, cl.client,
                  cl.mac[0] != '\0' ? cl.mac : "-", op_name(cl.type), why);
    return 0;
}

static int
load_chain(struct prov_devchan_server *s, const char *path)
{
    BIO *bio = NULL;
    X509 *x = NULL;
    int rc = 0;

    if (path == NULL)
        return 0;
    if ((bio = BIO_new_file(path, "r")) == NULL)
        return ck_error_set(CK_ERR_IO, "ca_chain %s: cannot open", path);
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        unsigned char *der = NULL;
        int len = i2d_X509(x, &der);

        X509_free(x);
        if (s->n_chain >= CHAIN_MAX || len <= 0 || (size_t)len > CK_PROVDEV_CERT_MAX) {
            OPENSSL_free(der);
            rc = ck_error_set(CK_ERR_LIMIT, "ca_chain %s: at most %d certificates of at most "
                                            "%d bytes",
                              path, CHAIN_MAX, CK_PROVDEV_CERT_MAX);
            goto out;
        }
        if ((s->chain[s->n_chain] = malloc((size_t)len)) == NULL) {
            OPENSSL_free(der);
            rc = ck_error_set(CK_ERR_NOMEM, "ca_chain");
            goto out;
        }
        memcpy(s->chain[s->n_chain], der, (size_t)len);
        s->chain_len[s->n_chain++] = (size_t)len;
        OPENSSL_free(der);
    }
    ERR_clear_error();
    if (s->n_chain == 0)
        rc = ck_error_set(CK_ERR_CONFIG, "ca_chain %s: no PEM certificate", path);
out:
    BIO_free(bio);
    return rc;
}

int
prov_devchan_start(const struct prov_config *cfg, struct prov_devchan_server **out)
{
    struct prov_devchan_server *s;
    struct prov_wire_def def;
    int rc;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "devchan");
    if ((rc = load_chain(s, cfg->ca_chain)) != 0)
        goto fail;
    memset(&def, 0, sizeof(def));
    def.what = "devchan";
    def.service = CK_PROVDEV_SERVICE;
    def.port = CK_PROVDEV_PORT;
    def.tcp = true;
    def.max_request = CK_PROVDEV_MAX_MSG;
    def.max_reply = CK_PROVDEV_MAX_MSG;
    def.handler = handle;
    def.arg = s;
    rc = prov_wire_start(cfg, &def, cfg->devchan_listen, cfg->n_devchan_listen, &s->wire);
    if (rc != 0 || s->wire == NULL)
        goto fail;
    *out = s;
    return 0;
fail:
    prov_devchan_stop(s);
    return rc;
}

void
prov_devchan_stop(struct prov_devchan_server *s)
{
    if (s == NULL)
        return;
    prov_wire_stop(s->wire);
    for (size_t i = 0; i < s->n_chain; i++)
        free(s->chain[i]);
    free(s);
}
