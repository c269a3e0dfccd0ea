/* The KDC-REP builder (see reply.h for the contract).
 *
 * Why views: every field of struct kdc_reply below "shared" is one object the builder owns; the
 * message fields that carry the same value point at it. views_set() establishes those pointers
 * right before each encode and views_clear() drops them before a message is freed, so no ASN.1
 * free ever sees a shared object. This is the only place in the KDC where a message field points
 * at something its message does not own.
 *
 * Why in-place reuse: allocating the three messages and their sub-objects with ASN1_item_new and
 * freeing them per exchange was ~10 % of an exchange's instructions. Every object here lives as
 * long as the builder, and setters overwrite values in place. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/ap.h"
#include "cablekey/error.h"
#include "kdc_int.h"

struct kdc_reply {
    CK_ENC_TICKET_PART *etp;
    CK_ENC_KDC_REP_PART *part;
    CK_KDC_REP *rep;                    /* rep->ticket is the Ticket */
    /* shared: the values two messages carry */
    CK_PRINCIPAL_NAME *cname;           /* etp->cname, rep->cname */
    ASN1_GENERALSTRING *crealm;         /* etp->crealm, rep->crealm */
    CK_PRINCIPAL_NAME *sname;           /* ticket->sname, part->sname */
    ASN1_GENERALSTRING *srealm;         /* ticket->realm, part->srealm */
    CK_ENCRYPTION_KEY *key;             /* etp->key, part->key (the session key) */
    ASN1_BIT_STRING *flags;             /* etp->flags, part->flags */
    ASN1_GENERALIZEDTIME *authtime, *starttime, *endtime, *renew_till; /* etp and part */
    bool has_renew_till;
    CK_HOST_ADDRESSES *caddr;           /* etp->caddr, part->caddr; NULL = absent */
    bool pooled;                        /* the worker's own (else freed on release) */
};

static void
views_set(struct kdc_reply *b)
{
    CK_ENC_TICKET_PART *etp = b->etp;
    CK_ENC_KDC_REP_PART *part = b->part;

    etp->cname = b->rep->cname = b->cname;
    etp->crealm = b->rep->crealm = b->crealm;
    b->rep->ticket->sname = part->sname = b->sname;
    b->rep->ticket->realm = part->srealm = b->srealm;
    etp->key = part->key = b->key;
    etp->flags = part->flags = b->flags;
    etp->authtime = part->authtime = b->authtime;
    etp->starttime = part->starttime = b->starttime;
    etp->endtime = part->endtime = b->endtime;
    etp->renew_till = part->renew_till = b->has_renew_till ? b->renew_till : NULL;
    etp->caddr = part->caddr = b->caddr;
}

static void
views_clear(struct kdc_reply *b)
{
    CK_ENC_TICKET_PART *etp = b->etp;
    CK_ENC_KDC_REP_PART *part = b->part;

    if (etp != NULL) {
        etp->cname = NULL;
        etp->crealm = NULL;
        etp->key = NULL;
        etp->flags = NULL;
        etp->authtime = etp->starttime = etp->endtime = etp->renew_till = NULL;
        etp->caddr = NULL;
    }
    if (part != NULL) {
        part->sname = NULL;
        part->srealm = NULL;
        part->key = NULL;
        part->flags = NULL;
        part->authtime = part->starttime = part->endtime = part->renew_till = NULL;
        part->caddr = NULL;
    }
    if (b->rep != NULL) {
        b->rep->cname = NULL;
        b->rep->crealm = NULL;
        if (b->rep->ticket != NULL) {
            b->rep->ticket->sname = NULL;
            b->rep->ticket->realm = NULL;
        }
    }
}

void
kdc_reply_free(struct kdc_reply *b)
{
    if (b == NULL)
        return;
    views_clear(b);
    CK_ENC_TICKET_PART_free(b->etp);
    CK_ENC_KDC_REP_PART_free(b->part);
    CK_KDC_REP_free(b->rep);
    CK_PRINCIPAL_NAME_free(b->cname);
    CK_PRINCIPAL_NAME_free(b->sname);
    ASN1_GENERALSTRING_free(b->crealm);
    ASN1_GENERALSTRING_free(b->srealm);
    CK_ENCRYPTION_KEY_free(b->key); /* its free callback wipes the key */
    ASN1_BIT_STRING_free(b->flags);
    ASN1_GENERALIZEDTIME_free(b->authtime);
    ASN1_GENERALIZEDTIME_free(b->starttime);
    ASN1_GENERALIZEDTIME_free(b->endtime);
    ASN1_GENERALIZEDTIME_free(b->renew_till);
    CK_HOST_ADDRESSES_free(b->caddr);
    free(b);
}

/* Moves the object T_new() made for a view field into the builder (from the ticket part) or
 * frees it (the other message's copy): the builder then holds the only one. */
#define TAKE(slot, field) ((slot) = (field), (field) = NULL)

static int
reply_new(struct kdc_reply **out)
{
    struct kdc_reply *b;

    *out = NULL;
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "reply builder");
    b->etp = CK_ENC_TICKET_PART_new();
    b->part = CK_ENC_KDC_REP_PART_new();
    b->rep = CK_KDC_REP_new();
    if (b->etp == NULL || b->part == NULL || b->rep == NULL)
        goto nomem;
    TAKE(b->cname, b->etp->cname);
    TAKE(b->crealm, b->etp->crealm);
    TAKE(b->sname, b->rep->ticket->sname);
    TAKE(b->srealm, b->rep->ticket->realm);
    TAKE(b->key, b->etp->key);
    TAKE(b->flags, b->etp->flags);
    TAKE(b->authtime, b->etp->authtime);
    TAKE(b->endtime, b->etp->endtime);
    /* The other messages' own copies of the shared fields. */
    CK_PRINCIPAL_NAME_free(b->rep->cname);
    b->rep->cname = NULL;
    ASN1_GENERALSTRING_free(b->rep->crealm);
    b->rep->crealm = NULL;
    CK_PRINCIPAL_NAME_free(b->part->sname);
    b->part->sname = NULL;
    ASN1_GENERALSTRING_free(b->part->srealm);
    b->part->srealm = NULL;
    CK_ENCRYPTION_KEY_free(b->part->key);
    b->part->key = NULL;
    ASN1_BIT_STRING_free(b->part->flags);
    b->part->flags = NULL;
    ASN1_GENERALIZEDTIME_free(b->part->authtime);
    b->part->authtime = NULL;
    ASN1_GENERALIZEDTIME_free(b->part->endtime);
    b->part->endtime = NULL;
    b->starttime = ASN1_GENERALIZEDTIME_new();
    b->renew_till = ASN1_GENERALIZEDTIME_new();
    if (b->cname == NULL || b->crealm == NULL || b->sname == NULL || b->srealm == NULL ||
        b->key == NULL || b->flags == NULL || b->authtime == NULL || b->endtime == NULL ||
        b->starttime == NULL || b->renew_till == NULL)
        goto nomem;
    *out = b;
    return 0;
nomem:
    kdc_reply_free(b);
    return ck_error_set(CK_ERR_NOMEM, "reply builder");
}

/* Drops everything one exchange set that the next one might not overwrite. */
static void
reply_reset(struct kdc_reply *b)
{
    views_clear(b);
    /* The session key: wiped where it lies. ck_asn1_enc_key_set() wipes again before a realloc,
     * so no copy is ever left behind. */
    if (b->key->keyvalue != NULL && b->key->keyvalue->data != NULL)
        OPENSSL_cleanse(b->key->keyvalue->data, (size_t)b->key->keyvalue->length);
    b->key->keytype = 0;
    b->has_renew_till = false;
    CK_HOST_ADDRESSES_free(b->caddr);
    b->caddr = NULL;
    CK_AUTHORIZATION_DATA_free(b->etp->authorization_data);
    b->etp->authorization_data = NULL;
    ASN1_GENERALIZEDTIME_free(b->part->key_expiration);
    b->part->key_expiration = NULL;
    CK_METHOD_DATA_free(b->part->encrypted_pa_data);
    b->part->encrypted_pa_data = NULL;
    CK_METHOD_DATA_free(b->rep->padata);
    b->rep->padata = NULL;
    ck_asn1_ticket_modified(b->rep->ticket);
}

int
kdc_reply_acquire(struct kdc_worker *w, struct kdc_reply **out)
{
    int rc;

    *out = NULL;
    if (w->reply == NULL) {
        if ((rc = reply_new(&w->reply)) != 0)
            return rc;
        w->reply->pooled = true;
    }
    if (!w->reply_busy) {
        w->reply_busy = true;
        *out = w->reply;
        return 0;
    }
    return reply_new(out);
}

void
kdc_reply_release(struct kdc_worker *w, struct kdc_reply *b)
{
    if (b == NULL)
        return;
    if (!b->pooled) {
        kdc_reply_free(b);
        return;
    }
    reply_reset(b);
    w->reply_busy = false;
}

/* Same name-type and components, byte for byte (not ck_asn1_principal_equal, which ignores the
 * name-type: here the encoding must be the same). */
static bool
name_same(const CK_PRINCIPAL_NAME *a, const CK_PRINCIPAL_NAME *b)
{
    int n = sk_ASN1_GENERALSTRING_num(a->name_string);

    if (a->name_type != b->name_type || n != sk_ASN1_GENERALSTRING_num(b->name_string))
        return false;
    for (int i = 0; i < n; i++)
        if (ASN1_STRING_cmp(sk_ASN1_GENERALSTRING_value(a->name_string, i),
                            sk_ASN1_GENERALSTRING_value(b->name_string, i)) != 0)
            return false;
    return true;
}

/* Copies src into dst, reusing dst's component strings, and fills dst's encoding cache (each
 * name goes into two messages: encoded once, replayed by both encoders). An unchanged name keeps
 * its cache. The components are copied as they are: names come from decoded messages, whose
 * validation is the decoder's (ck_asn1_principal_set would refuse bytes a client may use). */
int
kdc_name_copy(CK_PRINCIPAL_NAME *dst, const CK_PRINCIPAL_NAME *src)
{
    const uint8_t *der;
    size_t len;
    int n;

    if (src == NULL)
        return ck_error_set(CK_ERR_INVAL, "reply: no name");
    if (!name_same(dst, src)) {
        n = sk_ASN1_GENERALSTRING_num(src->name_string);
        while (sk_ASN1_GENERALSTRING_num(dst->name_string) > n)
            ASN1_GENERALSTRING_free(sk_ASN1_GENERALSTRING_pop(dst->name_string));
        for (int i = 0; i < n; i++) {
            const ASN1_GENERALSTRING *s = sk_ASN1_GENERALSTRING_value(src->name_string, i);
            ASN1_GENERALSTRING *d;

            if (i < sk_ASN1_GENERALSTRING_num(dst->name_string)) {
                d = sk_ASN1_GENERALSTRING_value(dst->name_string, i);
            } else {
                if ((d = ASN1_GENERALSTRING_new()) == NULL ||
                    sk_ASN1_GENERALSTRING_push(dst->name_string, d) <= 0) {
                    ASN1_GENERALSTRING_free(d);
                    ck_asn1_principal_modified(dst);
                    return ck_error_set(CK_ERR_NOMEM, "reply: name");
                }
            }
            if (ASN1_STRING_set(d, ASN1_STRING_get0_data(s), ASN1_STRING_length(s)) != 1) {
                ck_asn1_principal_modified(dst);
                return ck_error_set(CK_ERR_NOMEM, "reply: name");
            }
        }
        dst->name_type = src->name_type;
        ck_asn1_principal_modified(dst);
    }
    return ck_asn1_principal_der(dst, &der, &len);
}

static int
realm_set(ASN1_GENERALSTRING **dst, const char *realm)
{
    if (ck_asn1_kstring_eq(*dst, realm))
        return 0;
    return ck_asn1_kstring_set(dst, realm);
}

int
kdc_reply_set_client(struct kdc_reply *b, const CK_PRINCIPAL_NAME *cname, const char *crealm)
{
    int rc;

    if ((rc = kdc_name_copy(b->cname, cname)) != 0)
        return rc;
    return realm_set(&b->crealm, crealm);
}

int
kdc_reply_set_server(struct kdc_reply *b, const CK_PRINCIPAL_NAME *sname, const char *srealm)
{
    int rc;

    if ((rc = kdc_name_copy(b->sname, sname)) != 0)
        return rc;
    return realm_set(&b->srealm, srealm);
}

int
kdc_reply_set_addresses(struct kdc_reply *b, const CK_HOST_ADDRESSES *caddr)
{
    CK_HOST_ADDRESSES_free(b->caddr);
    b->caddr = NULL;
    /* Clients send no addresses by default (MIT noaddresses): a dup is the rare case. */
    if (caddr != NULL && (b->caddr = CK_HOST_ADDRESSES_dup(caddr)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "reply: addresses");
    return 0;
}

int
kdc_reply_set_transited(struct kdc_reply *b, const CK_TRANSITED_ENCODING *tr)
{
    CK_TRANSITED_ENCODING *own = b->etp->transited;

    if (tr == NULL) {
        own->tr_type = CK_TR_DOMAIN_X500_COMPRESS;
        return ck_asn1_octets_set(&own->contents, NULL, 0);
    }
    own->tr_type = tr->tr_type;
    return ck_asn1_octets_set(&own->contents, ASN1_STRING_get0_data(tr->contents),
                              (size_t)ASN1_STRING_length(tr->contents));
}

int
kdc_reply_set_authz(struct kdc_reply *b, const CK_AUTHORIZATION_DATA *ad)
{
    CK_AUTHORIZATION_DATA_free(b->etp->authorization_data);
    b->etp->authorization_data = NULL;
    if (ad != NULL && (b->etp->authorization_data = CK_AUTHORIZATION_DATA_dup(ad)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "reply: authorization data");
    return 0;
}

int
kdc_reply_seal_ticket(struct kdc_reply *b, const struct kdc_ticket_times *t, uint32_t flags,
                      const ck_key *session, const ck_db_key *tkt_key)
{
    int rc;

    if ((rc = ck_asn1_flags_set(&b->flags, flags)) != 0 ||
        (rc = ck_key_to_asn1(session, &b->key)) != 0 ||
        (rc = ck_asn1_time_set(&b->authtime, t->authtime)) != 0 ||
        (rc = ck_asn1_time_set(&b->starttime, t->starttime)) != 0 ||
        (rc = ck_asn1_time_set(&b->endtime, t->endtime)) != 0)
        return rc;
    b->has_renew_till = t->renew_till != 0;
    if (b->has_renew_till && (rc = ck_asn1_time_set(&b->renew_till, t->renew_till)) != 0)
        return rc;
    views_set(b);
    return ck_ticket_seal(b->rep->ticket, b->etp, &tkt_key->key, tkt_key->kvno);
}

/* Makes `lr` the single LastReq entry {0, t} (overwriting the entry a reused part keeps). */
static int
last_req_set(CK_LAST_REQ *lr, int64_t t)
{
    CK_LAST_REQ_ENTRY *e;
    int rc;

    if (sk_CK_LAST_REQ_ENTRY_num(lr) == 1) {
        e = sk_CK_LAST_REQ_ENTRY_value(lr, 0);
        e->lr_type = CK_LR_NONE;
        return ck_asn1_time_set(&e->lr_value, t);
    }
    while (sk_CK_LAST_REQ_ENTRY_num(lr) > 0)
        CK_LAST_REQ_ENTRY_free(sk_CK_LAST_REQ_ENTRY_pop(lr));
    if ((e = CK_LAST_REQ_ENTRY_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "LastReq");
    e->lr_type = CK_LR_NONE;
    if ((rc = ck_asn1_time_set(&e->lr_value, t)) != 0 || sk_CK_LAST_REQ_ENTRY_push(lr, e) <= 0) {
        CK_LAST_REQ_ENTRY_free(e);
        return rc != 0 ? rc : ck_error_set(CK_ERR_NOMEM, "LastReq");
    }
    return 0;
}

int
kdc_reply_set_part(struct kdc_reply *b, const ASN1_INTEGER *nonce, int64_t last_req,
                   int64_t key_expiration)
{
    int rc;

    if ((rc = last_req_set(b->part->last_req, last_req)) != 0 ||
        (rc = ck_asn1_nonce_copy(&b->part->nonce, nonce)) != 0)
        return rc;
    if (key_expiration != 0)
        return ck_asn1_time_set(&b->part->key_expiration, key_expiration);
    return 0;
}

CK_METHOD_DATA **
kdc_reply_padata(struct kdc_reply *b)
{
    return &b->rep->padata;
}

int
kdc_reply_encode(struct kdc_reply *b, int msg_type, const ck_key *reply_key, int32_t usage,
                 const uint32_t *kvno, uint8_t **der, size_t *len)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int rc;

    *der = NULL;
    *len = 0;
    if (msg_type != CK_KRB_AS_REP && msg_type != CK_KRB_TGS_REP)
        return ck_error_set(CK_ERR_INVAL, "reply: message type %d", msg_type);
    views_set(b);
    rc = msg_type == CK_KRB_AS_REP ? ck_asn1_enc_as_rep_part_encode(b->part, &plain, &plain_len)
                                   : ck_asn1_enc_tgs_rep_part_encode(b->part, &plain, &plain_len);
    if (rc != 0)
        goto out;
    b->rep->pvno = CK_KRB5_PVNO;
    b->rep->msg_type = msg_type;
    if ((rc = ck_enc_data_seal(b->rep->enc_part, reply_key, usage, kvno, plain, plain_len)) != 0)
        goto out;
    rc = msg_type == CK_KRB_AS_REP ? ck_asn1_as_rep_encode(b->rep, der, len)
                                   : ck_asn1_tgs_rep_encode(b->rep, der, len);
out:
    /* The plaintext holds the session key. */
    ck_asn1_free_der(plain, plain_len);
    return rc;
}
