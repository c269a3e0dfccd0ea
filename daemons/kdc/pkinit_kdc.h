/* PKINIT in the KDC (RFC 4556, RFC 5349, RFC 8636, RFC 8070 and the PacketCable pk-init draft
 * forms; docs/PROTOCOL.md): its settings (pkinit_config.c) and the pre-authentication mechanism
 * (pa_pkinit.c, pkinit_kdc_req.c, pkinit_kdc_rep.c), which preauth.c registers after
 * PA-ENC-TIMESTAMP.
 *
 * The settings are parsed once (kdc.conf realm relations, command-line flags) into a
 * kdc_pkinit_config hung off kdc_config.pkinit; every worker then loads its own copy of the KDC
 * identity, the anchors and the caches when its mechanism context is made (per-worker state needs
 * no locks; nothing is reloaded per request). */
#ifndef CABLEKEY_KDC_PKINIT_H
#define CABLEKEY_KDC_PKINIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cablekey/pkinit.h"
#include "cablekey/profile.h"
#include "cablekey/prov_ad.h"
#include "preauth.h"

#define KDC_PKINIT_MAX_ANCHOR_FILES 16
#define KDC_PKINIT_MAX_POOL_FILES 16
#define KDC_PKINIT_DEFAULT_DH_MIN_BITS CK_PKINIT_DH_MIN_BITS_DEFAULT
#define KDC_PKINIT_DEFAULT_CERT_CACHE 4096      /* decoded certificates per worker */
#define KDC_PKINIT_DEFAULT_TP_CACHE 65536       /* verified chains per worker (~100 B each) */

/* What an anchor file's certificates vouch for. */
enum kdc_pkinit_anchor_kind {
    KDC_PKINIT_ANCHOR_CLIENT = 0,      /* pkinit_anchors: the client named by id-pkinit-san */
    KDC_PKINIT_ANCHOR_DEVICE = 1,      /* pkinit_device_anchors: MAC in the subject, through the
                                        * device table */
    KDC_PKINIT_ANCHOR_PACKETCABLE = 2, /* pkinit_packetcable_anchors: a device anchor whose
                                        * chains may also use the PacketCable draft forms */
    KDC_PKINIT_ANCHOR_OPERATOR = 3,    /* pkinit_operator_anchors (provisioning, issue 10): the
                                        * network operator's device CA; its certificates (CN =
                                        * MAC) give full service only while they are the device
                                        * row's current cert_sha256. PacketCable forms are
                                        * accepted from them when the realm has PacketCable
                                        * anchors (the same MTAs use the same forms). */
};

struct kdc_pkinit_anchor_file {
    char *path;                        /* PEM file of trust anchors */
    char *crl;                         /* PEM file of CRLs for chains ending here, or NULL */
    enum kdc_pkinit_anchor_kind kind;
};

/* The relations of the realm section, under MIT's names where MIT has the setting. */
struct kdc_mta_fqdn;

struct kdc_pkinit_config {
    char *identity;                    /* pkinit_identity: FILE.p12, PKCS12:FILE, FILE:cert,key */
    char *password_file;               /* pkinit_password_file (NULL: unencrypted PEM key) */
    struct kdc_pkinit_anchor_file anchors[KDC_PKINIT_MAX_ANCHOR_FILES];
    size_t n_anchors;
    char *pool[KDC_PKINIT_MAX_POOL_FILES]; /* pkinit_pool: intermediate CA certificates */
    size_t n_pool;
    char *revoke_all;                  /* pkinit_revoke with one file: CRLs for every client
                                        * anchor without its own (MIT's meaning) */
    unsigned dh_min_bits;              /* pkinit_dh_min_bits (finite-field-equivalent bits) */
    bool require_freshness;            /* pkinit_require_freshness (RFC 8070) */
    bool allow_rsa_key_transport;      /* pkinit_allow_rsa_key_transport */
    bool eku_sclogin;                  /* pkinit_eku_checking = scLogin */
    size_t cert_cache;                 /* pkinit_cert_cache_size */
    size_t tp_cache;                   /* pkinit_thumbprint_cache_size */
    /* Provisioning (issue 10; read from the realm, else [kdcdefaults]). */
    bool provisioning;                 /* pkinit_provisioning (default false: today's KDC) */
    char unprov_calls[CK_AD_RESTRICTED_MAX_NUMBERS][CK_AD_RESTRICTED_NUMBER_MAX + 1];
    size_t n_unprov_calls;             /* pkinit_unprovisioned_calls (default "611 911") */
};

/* The relation names load() understands, for config.c's list of known realm settings. */
#define KDC_PKINIT_CONFIG_KEYS                                                                \
    "pkinit_identity", "pkinit_password_file", "pkinit_anchors", "pkinit_device_anchors",     \
        "pkinit_packetcable_anchors", "pkinit_pool", "pkinit_revoke", "pkinit_dh_min_bits",   \
        "pkinit_require_freshness", "pkinit_allow_rsa_key_transport", "pkinit_eku_checking",  \
        "pkinit_cert_cache_size", "pkinit_thumbprint_cache_size", "pkinit_operator_anchors",   \
        "pkinit_provisioning", "pkinit_unprovisioned_calls"
/* The provisioning relations, also read from [kdcdefaults] when the realm lacks them. (The
 * MTA-FQDN relations pkinit_mta_fqdn_* are mta_fqdn.c's, package P3.) */
#define KDC_PKINIT_PROV_DEFAULTS_KEYS "pkinit_provisioning", "pkinit_unprovisioned_calls"

/* A configuration with the defaults (nothing loaded, RSA key transport allowed, DH >= 2048). */
int kdc_pkinit_config_new(struct kdc_pkinit_config **out);
void kdc_pkinit_config_free(struct kdc_pkinit_config *pc);
/* Applies one setting by its kdc.conf name, allocating *pc on first use. Lists (anchors, pool)
 * take blank- or comma-separated files with an optional FILE: prefix; replace drops the list's
 * earlier entries first (command-line flags replace the file's list). pkinit_revoke is "CRL"
 * (every client anchor) or "CRL ANCHOR" (that anchor file, listed before or after). Errors are
 * CK_ERR_CONFIG with the key in the context. */
int kdc_pkinit_config_set(struct kdc_pkinit_config **pc, const char *key, const char *value,
                          bool replace);
/* Applies every pkinit_* relation of [realms] realm. */
int kdc_pkinit_config_load(struct kdc_pkinit_config **pc, const struct ck_profile *prof,
                           const char *realm);
/* Cross-field checks once everything is set: an identity and at least one anchor, CRLs matched
 * to anchors. NULL (PKINIT not configured) is fine. */
int kdc_pkinit_config_finish(struct kdc_pkinit_config *pc);
/* --check: loads the identity (with its password), the anchors, pool and CRLs as a worker will,
 * and prints to out one "pkinit: ..." line per finding. Warnings (the identity lacks the
 * id-pkinit-KPKdc EKU or an id-pkinit-san naming krbtgt/REALM@REALM) do not fail; a load error
 * or PacketCable anchors with a non-RSA identity return a negative CK_ERR_* (context set). */
int kdc_pkinit_config_check(const struct kdc_pkinit_config *pc, const char *realm, FILE *out);

/* Loading, shared by the mechanism's init and --check. */
int kdc_pkinit_load_identity(const struct kdc_pkinit_config *pc, ck_pki_identity **out);
/* Builds the anchor set; kinds[i] receives the kind of anchor certificate i (as indexed by
 * ck_pkinit_anchors_get0 and ck_pkinit_chain_result.anchor_index); *n_kinds their count. */
int kdc_pkinit_load_anchors(const struct kdc_pkinit_config *pc, ck_pkinit_anchors **out,
                            uint8_t kinds[CK_PKINIT_MAX_ANCHORS], size_t *n_kinds);
/* The pool's certificates (may be an empty stack). */
int kdc_pkinit_load_pool(const struct kdc_pkinit_config *pc, STACK_OF(X509) **out);

/* The mechanism (pa_pkinit.c): PA-PK-AS-REQ (16) and, as its alternate type, the PacketCable
 * PA-PK-AS-REQ-OLD (14). KDC_PA_KEYLESS. Enabled when kdc_config.pkinit is set. */
extern const struct kdc_pa_mech kdc_pa_pkinit;

/* Counters of one worker's mechanism (tests; a context from kdc_worker's pa table). */
struct kdc_pkinit_stats {
    uint64_t chain_verifications;      /* ck_pkinit_verify_chain calls (cache misses) */
    uint64_t accepted, refused;
    ck_pkinit_cache_stats tp, certs;
};
void kdc_pkinit_get_stats(const void *ctx, struct kdc_pkinit_stats *out);

/* ---- between pa_pkinit.c and pkinit_kdc_*.c -------------------------------------------- */

/* The freshness-token key usage (RFC 8070 leaves the token's form to the KDC; MIT uses the same
 * number for its own tokens). */
#define KDC_PKINIT_KU_FRESHNESS 514

/* Per worker. */
struct kdc_pkinit_ctx {
    char realm[256];
    char tgs_name[600];                /* "krbtgt/REALM@REALM" */
    ck_pki_identity *id;
    bool id_is_rsa;
    ck_pkinit_anchors *anchors;
    uint8_t anchor_kind[CK_PKINIT_MAX_ANCHORS];
    size_t n_anchor_kind;
    bool have_device_anchors, have_packetcable_anchors, have_operator_anchors;
    /* Provisioning (kdc_pkinit_config). */
    bool provisioning;
    char unprov_calls[CK_AD_RESTRICTED_MAX_NUMBERS][CK_AD_RESTRICTED_NUMBER_MAX + 1];
    size_t n_unprov_calls;
    /* MTA-FQDN client (mta_fqdn.h), NULL when pkinit_mta_fqdn_server is not set. */
    struct kdc_mta_fqdn *mta_fqdn;
    STACK_OF(X509) *pool;
    ck_pkinit_certcache *certs;
    ck_pkinit_tpcache *tp;
    unsigned dh_min_bits;
    bool require_freshness, allow_rsa;
    unsigned chain_flags;              /* CK_PKINIT_VERIFY_SCLOGIN or 0 */
    int64_t clockskew;
    uint8_t *td_trusted;               /* TYPED-DATA { TD-TRUSTED-CERTIFIERS } (error 70) */
    size_t td_trusted_len;
    uint8_t *td_dh;                    /* TYPED-DATA { TD-DH-PARAMETERS } (error 65) */
    size_t td_dh_len;
    struct kdc_pkinit_stats stats;
};

/* How the client's key gets to it. */
enum kdc_pkinit_keyex { KDC_PKINIT_DH, KDC_PKINIT_RSA };

/* Per request (verify's *state): what the reply needs. Wiped by kdc_pkinit_req_free. */
struct kdc_pkinit_req {
    int32_t pa_type;                   /* CK_PA_PK_AS_REQ or CK_PA_PK_AS_REQ_OLD */
    int draft_form;                    /* CK_PKINIT_FORM_* of a PA 14 request */
    enum kdc_pkinit_keyex keyex;
    uint32_t nonce;                    /* PKAuthenticator nonce (= the req-body nonce) */
    X509 *client_cert;                 /* the signer (RSA key transport recipient) */
    ck_pkinit_peer *peer;              /* DH/ECDH public value */
    int kdf;                           /* CK_PKINIT_KDF_*, 0: octetstring2key */
    int cipher_nid;                    /* RSA key transport content encryption */
    uint8_t *rep_der;                  /* PA-PK-AS-REP(-OLD) built by reply_key */
    size_t rep_len;
    /* Provisioning: a manufacturer-certificate login gets the restricted-calls element in its
     * ticket (prov_ad.h). */
    bool restricted;
    ck_ad_restricted ad;
};
void kdc_pkinit_req_free(struct kdc_pkinit_req *rq);

/* Request verification (pkinit_kdc_req.c): fills rq, or refuses through err. Returns 0,
 * KDC_PA_REFUSED or a negative CK_ERR_* (internal failure). detail receives the success log
 * text. */
int kdc_pkinit_verify_request(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call,
                              const CK_PA_DATA *pa, struct kdc_pkinit_req *rq,
                              struct kdc_pa_error *err);

/* Provisioning: may an AS-REQ for cname, absent from the database, go on to PKINIT (which
 * admits a manufacturer-certified device as mta-<12 hex>@REALM)? */
bool kdc_pkinit_may_admit(const struct kdc_pkinit_ctx *c, const char *cname);

/* Replies (pkinit_kdc_rep.c): builds rq->rep_der and the reply key of enctype
 * call->reply_etype. */
int kdc_pkinit_build_reply(struct kdc_pkinit_ctx *c, const struct kdc_pa_call *call,
                           struct kdc_pkinit_req *rq, ck_key *key);

/* Freshness tokens (pa_pkinit.c): a new token for now, and the check of one. check returns 0
 * (fresh), CK_ERR_EXPIRED (outside the window) or CK_ERR_INTEGRITY (not ours / altered). */
int kdc_pkinit_freshness_make(const struct kdc_pa_call *call, const char *tgs_name,
                              uint8_t **out, size_t *out_len);
int kdc_pkinit_freshness_check(const struct kdc_pa_call *call, const char *tgs_name,
                               const uint8_t *token, size_t len, int64_t *issued);

#endif
