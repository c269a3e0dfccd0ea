/* KRB-SAFE / KRB-PRIV build and verify. KRB-SAFE-BODY and EncKrbPrivPart have the same fields, so
 * both messages share the field filling and the checks through `struct fields`. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/error.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/safepriv.h"
#include "cablekey/util.h"

int
ck_krb_address_set(ck_krb_address *a, int32_t addr_type, const uint8_t *addr, size_t len)
{
    if (a == NULL || (addr == NULL && len > 0) || len > CK_KRB_ADDR_MAX)
        return ck_error_set(CK_ERR_INVAL, "address: %zu bytes", len);
    memset(a, 0, sizeof(*a));
    a->addr_type = addr_type;
    a->len = len;
    if (len > 0)
        memcpy(a->addr, addr, len);
    return 0;
}

int
ck_krb_address_from_sockaddr(const struct sockaddr *sa, ck_krb_address *out)
{
    if (sa == NULL)
        return ck_error_set(CK_ERR_INVAL, "address: NULL");
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return ck_krb_address_set(out, CK_ADDRTYPE_IPV4, (const uint8_t *)&in->sin_addr, 4);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return ck_krb_address_set(out, CK_ADDRTYPE_IPV6, in6->sin6_addr.s6_addr, 16);
    }
    return ck_error_set(CK_ERR_UNSUPPORTED, "address family %d", (int)sa->sa_family);
}

int
ck_krb_address_directional(uint32_t dir, ck_krb_address *out)
{
    uint8_t b[4] = { (uint8_t)(dir >> 24), (uint8_t)(dir >> 16), (uint8_t)(dir >> 8),
                     (uint8_t)dir };

    if (dir > 1)
        return ck_error_set(CK_ERR_INVAL, "directional address %u", dir);
    return ck_krb_address_set(out, CK_ADDRTYPE_DIRECTIONAL, b, sizeof(b));
}

bool
ck_krb_address_equal(const ck_krb_address *a, const ck_krb_address *b)
{
    return a->addr_type == b->addr_type && a->len == b->len && memcmp(a->addr, b->addr, a->len) == 0;
}

/* Pointers to the shared fields of KRB-SAFE-BODY / EncKrbPrivPart. */
struct fields {
    ASN1_OCTET_STRING **user_data;
    ASN1_GENERALIZEDTIME **timestamp;
    int32_t **usec;
    ASN1_INTEGER **seq_number;
    CK_HOST_ADDRESS **s_address;
    CK_HOST_ADDRESS **r_address;
};

static int
set_host_address(CK_HOST_ADDRESS **dst, const ck_krb_address *a)
{
    if (*dst == NULL && (*dst = CK_HOST_ADDRESS_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "HostAddress");
    (*dst)->addr_type = a->addr_type;
    return ck_asn1_octets_set(&(*dst)->address, a->addr, a->len);
}

static int
get_host_address(const CK_HOST_ADDRESS *h, ck_krb_address *a)
{
    if (h == NULL || h->address == NULL)
        return ck_error_set(CK_ERR_DECODE, "HostAddress missing");
    return ck_krb_address_set(a, h->addr_type, ASN1_STRING_get0_data(h->address),
                              (size_t)ASN1_STRING_length(h->address));
}

static int
fill_fields(const struct fields *f, const uint8_t *data, size_t len, const ck_krb_msg_params *p)
{
    int rc;

    if (p == NULL || p->s_address == NULL)
        return ck_error_set(CK_ERR_INVAL, "KRB-SAFE/PRIV: s-address is required");
    if (!p->use_timestamp && !p->use_seq)
        return ck_error_set(CK_ERR_INVAL, "KRB-SAFE/PRIV: needs a timestamp or a sequence number");
    if (len > CK_KRB_MSG_MAX_DATA)
        return ck_error_set(CK_ERR_LIMIT, "KRB-SAFE/PRIV: %zu bytes of user data", len);
    if ((rc = ck_asn1_octets_set(f->user_data, data, len)) != 0)
        return rc;
    if (p->use_timestamp) {
        int64_t sec = p->timestamp;
        int32_t usec = p->usec;
        if (sec == 0)
            ck_now(&sec, &usec);
        if (usec < 0 || usec > 999999)
            return ck_error_set(CK_ERR_INVAL, "KRB-SAFE/PRIV: usec %d", (int)usec);
        if ((rc = ck_asn1_time_set(f->timestamp, sec)) != 0 ||
            (rc = ck_asn1_int32_set(f->usec, usec)) != 0)
            return rc;
    }
    if (p->use_seq && (rc = ck_asn1_nonce_set(f->seq_number, p->seq)) != 0)
        return rc;
    if ((rc = set_host_address(f->s_address, p->s_address)) != 0)
        return rc;
    if (p->r_address != NULL && (rc = set_host_address(f->r_address, p->r_address)) != 0)
        return rc;
    return 0;
}

static int
fail(ck_krb_msg_info *info, int32_t krb_error, int rc)
{
    info->krb_error = krb_error;
    return rc;
}

/* Checks the decoded (and already integrity-verified) fields; fills info. tag_bytes identify the
 * message for the replay cache (the checksum or the ciphertext). */
static int
check_fields(const struct fields *f, const ck_krb_msg_check *c, const uint8_t *tag_bytes,
             size_t tag_len, ck_krb_msg_info *info)
{
    ck_krb_msg_check none;
    int64_t now, skew;
    int32_t usec;
    int rc;

    if (c == NULL) {
        memset(&none, 0, sizeof(none));
        c = &none;
    }
    if ((rc = get_host_address(*f->s_address, &info->s_address)) != 0)
        return fail(info, CK_KRB_ERR_GENERIC, rc);
    if (*f->r_address != NULL) {
        if ((rc = get_host_address(*f->r_address, &info->r_address)) != 0)
            return fail(info, CK_KRB_ERR_GENERIC, rc);
        info->has_r_address = true;
    }
    if (*f->timestamp != NULL) {
        if ((rc = ck_asn1_time_get(*f->timestamp, &info->timestamp)) != 0)
            return fail(info, CK_KRB_ERR_GENERIC, rc);
        info->usec = ck_asn1_int32_get(*f->usec, 0);
        info->has_timestamp = true;
    }
    if (*f->seq_number != NULL) {
        if ((rc = ck_asn1_nonce_get(*f->seq_number, &info->seq)) != 0)
            return fail(info, CK_KRB_ERR_GENERIC, rc);
        info->has_seq = true;
    }
    /* Neither field is mandatory on the wire: MIT omits a zero seq-number, and its kpasswd
     * client sends KRB-PRIV with neither. Readers that need one say so in the check. */
    if (c->require_timestamp && !info->has_timestamp)
        return fail(info, CK_KRB_AP_ERR_SKEW,
                    ck_error_set(CK_ERR_PROTO, "KRB-SAFE/PRIV: no timestamp"));
    now = c->now;
    if (now == 0)
        ck_now(&now, &usec);
    skew = c->clockskew > 0 ? c->clockskew : CK_KRB_MSG_DEFAULT_SKEW;
    if (info->has_timestamp &&
        (info->timestamp > now + skew || info->timestamp < now - skew))
        return fail(info, CK_KRB_AP_ERR_SKEW,
                    ck_error_set(CK_ERR_SKEW, "KRB-SAFE/PRIV: timestamp off by %lld s (skew %lld)",
                                 (long long)(info->timestamp - now), (long long)skew));
    if (c->check_seq && (info->has_seq ? info->seq : 0) != c->seq)
        return fail(info, CK_KRB_AP_ERR_BADORDER,
                    ck_error_set(CK_ERR_PROTO, "KRB-SAFE/PRIV: unexpected sequence number"));
    if (c->s_address != NULL && !ck_krb_address_equal(c->s_address, &info->s_address))
        return fail(info, CK_KRB_AP_ERR_BADADDR,
                    ck_error_set(CK_ERR_PROTO, "KRB-SAFE/PRIV: wrong sender address"));
    if (c->require_r_address && !info->has_r_address)
        return fail(info, CK_KRB_AP_ERR_BADADDR,
                    ck_error_set(CK_ERR_PROTO, "KRB-SAFE/PRIV: no recipient address"));
    if (c->r_address != NULL && info->has_r_address &&
        !ck_krb_address_equal(c->r_address, &info->r_address))
        return fail(info, CK_KRB_AP_ERR_BADADDR,
                    ck_error_set(CK_ERR_PROTO, "KRB-SAFE/PRIV: wrong recipient address"));
    if (c->rcache != NULL && info->has_timestamp) {
        /* The sender address (hex) names the "client" in the cache, the tag the conversation. */
        char sender[2 * CK_KRB_ADDR_MAX + 16];
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;

        sender[o++] = (char)('0' + (info->s_address.addr_type & 0x3f));
        sender[o++] = ':';
        for (size_t i = 0; i < info->s_address.len; i++) {
            sender[o++] = hex[info->s_address.addr[i] >> 4];
            sender[o++] = hex[info->s_address.addr[i] & 15];
        }
        sender[o] = '\0';
        rc = ck_rcache_check_and_store(c->rcache, sender, c->rcache_tag ? c->rcache_tag : "",
                                       info->timestamp, info->usec, tag_bytes, tag_len, now);
        if (rc == CK_ERR_REPLAY)
            return fail(info, CK_KRB_AP_ERR_REPEAT,
                        ck_error_set(CK_ERR_REPLAY, "KRB-SAFE/PRIV: replayed message"));
        if (rc != 0)
            return fail(info, CK_KRB_ERR_GENERIC, rc);
    }
    return 0;
}

static int
copy_out(const ASN1_OCTET_STRING *ud, uint8_t **data, size_t *data_len)
{
    size_t n = (size_t)ASN1_STRING_length(ud);

    if ((*data = ck_memdup(ASN1_STRING_get0_data(ud), n)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "user data");
    *data_len = n;
    return 0;
}

static int
to_malloc(uint8_t *der, size_t len, uint8_t **out, size_t *out_len)
{
    if ((*out = ck_memdup(der, len)) == NULL) {
        ck_asn1_free_der(der, len);
        return ck_error_set(CK_ERR_NOMEM, "message");
    }
    *out_len = len;
    ck_asn1_free_der(der, len);
    return 0;
}

int
ck_krb_safe_build(const ck_key *key, const uint8_t *data, size_t len, const ck_krb_msg_params *p,
                  uint8_t **der, size_t *der_len)
{
    CK_KRB_SAFE_MSG *m = NULL;
    const uint8_t *body;
    size_t body_len, ck_len = 0;
    uint8_t cksum[CK_CHECKSUM_MAX], *out = NULL;
    size_t out_len = 0;
    int32_t ctype;
    int rc;

    *der = NULL;
    if (key == NULL || (data == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "KRB-SAFE: missing argument");
    if ((m = CK_KRB_SAFE_MSG_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KRB-SAFE");
    m->pvno = CK_KRB5_PVNO;
    m->msg_type = CK_KRB_SAFE;
    struct fields f = { &m->safe_body->user_data, &m->safe_body->timestamp, &m->safe_body->usec,
                        &m->safe_body->seq_number, &m->safe_body->s_address,
                        &m->safe_body->r_address };
    ctype = ck_enctype_checksum_type(key->enctype);
    if ((rc = fill_fields(&f, data, len, p)) != 0 ||
        (rc = ck_asn1_krb_safe_body_der(m, &body, &body_len)) != 0 ||
        (rc = ck_make_checksum(key, ctype, CK_KU_KRB_SAFE_CKSUM, body, body_len, cksum,
                               sizeof(cksum), &ck_len)) != 0 ||
        (rc = ck_asn1_checksum_set(m->cksum, ctype, cksum, ck_len)) != 0 ||
        (rc = ck_asn1_krb_safe_encode(m, &out, &out_len)) != 0)
        goto out;
    rc = to_malloc(out, out_len, der, der_len);
out:
    CK_KRB_SAFE_MSG_free(m);
    return rc;
}

int
ck_krb_safe_read(const ck_key *key, const uint8_t *der, size_t len, const ck_krb_msg_check *check,
                 uint8_t **data, size_t *data_len, ck_krb_msg_info *info_out)
{
    CK_KRB_SAFE_MSG *m = NULL;
    ck_krb_msg_info info;
    const uint8_t *body;
    size_t body_len;
    int32_t want;
    int rc;

    memset(&info, 0, sizeof(info));
    *data = NULL;
    *data_len = 0;
    if (key == NULL || der == NULL) {
        rc = ck_error_set(CK_ERR_INVAL, "KRB-SAFE: missing argument");
        goto out;
    }
    if ((rc = ck_asn1_krb_safe_decode(der, len, &m)) != 0) {
        info.krb_error = CK_KRB_AP_ERR_MSG_TYPE;
        goto out;
    }
    want = ck_enctype_checksum_type(key->enctype);
    if (m->cksum->cksumtype != want) {
        rc = fail(&info, CK_KRB_AP_ERR_INAPP_CKSUM,
                  ck_error_set(CK_ERR_INTEGRITY, "KRB-SAFE: checksum type %d, expected %d",
                               (int)m->cksum->cksumtype, (int)want));
        goto out;
    }
    if ((rc = ck_asn1_krb_safe_body_der(m, &body, &body_len)) != 0)
        goto out;
    rc = ck_verify_checksum(key, want, CK_KU_KRB_SAFE_CKSUM, body, body_len,
                            ASN1_STRING_get0_data(m->cksum->checksum),
                            (size_t)ASN1_STRING_length(m->cksum->checksum));
    if (rc != 0) {
        rc = fail(&info, CK_KRB_AP_ERR_MODIFIED,
                  ck_error_set(CK_ERR_INTEGRITY, "KRB-SAFE: checksum does not verify"));
        goto out;
    }
    struct fields f = { &m->safe_body->user_data, &m->safe_body->timestamp, &m->safe_body->usec,
                        &m->safe_body->seq_number, &m->safe_body->s_address,
                        &m->safe_body->r_address };
    if ((rc = check_fields(&f, check, ASN1_STRING_get0_data(m->cksum->checksum),
                           (size_t)ASN1_STRING_length(m->cksum->checksum), &info)) != 0)
        goto out;
    rc = copy_out(m->safe_body->user_data, data, data_len);
out:
    if (info_out != NULL)
        *info_out = info;
    CK_KRB_SAFE_MSG_free(m);
    return rc;
}

int
ck_krb_priv_build(const ck_key *key, const uint8_t *data, size_t len, const ck_krb_msg_params *p,
                  uint8_t **der, size_t *der_len)
{
    CK_KRB_PRIV_MSG *m = NULL;
    CK_ENC_KRB_PRIV_PART *part = NULL;
    uint8_t *plain = NULL, *out = NULL;
    size_t plain_len = 0, out_len = 0;
    int rc;

    *der = NULL;
    if (key == NULL || (data == NULL && len > 0))
        return ck_error_set(CK_ERR_INVAL, "KRB-PRIV: missing argument");
    if ((m = CK_KRB_PRIV_MSG_new()) == NULL || (part = CK_ENC_KRB_PRIV_PART_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "KRB-PRIV");
        goto out;
    }
    m->pvno = CK_KRB5_PVNO;
    m->msg_type = CK_KRB_PRIV;
    struct fields f = { &part->user_data, &part->timestamp, &part->usec, &part->seq_number,
                        &part->s_address, &part->r_address };
    if ((rc = fill_fields(&f, data, len, p)) != 0 ||
        (rc = ck_asn1_enc_krb_priv_part_encode(part, &plain, &plain_len)) != 0 ||
        (rc = ck_enc_data_seal(m->enc_part, key, CK_KU_KRB_PRIV_ENCPART, NULL, plain,
                               plain_len)) != 0 ||
        (rc = ck_asn1_krb_priv_encode(m, &out, &out_len)) != 0)
        goto out;
    rc = to_malloc(out, out_len, der, der_len);
out:
    ck_asn1_free_der(plain, plain_len);
    CK_ENC_KRB_PRIV_PART_free(part);
    CK_KRB_PRIV_MSG_free(m);
    return rc;
}

int
ck_krb_priv_read(const ck_key *key, const uint8_t *der, size_t len, const ck_krb_msg_check *check,
                 uint8_t **data, size_t *data_len, ck_krb_msg_info *info_out)
{
    CK_KRB_PRIV_MSG *m = NULL;
    CK_ENC_KRB_PRIV_PART *part = NULL;
    ck_krb_msg_info info;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int rc;

    memset(&info, 0, sizeof(info));
    *data = NULL;
    *data_len = 0;
    if (key == NULL || der == NULL) {
        rc = ck_error_set(CK_ERR_INVAL, "KRB-PRIV: missing argument");
        goto out;
    }
    if ((rc = ck_asn1_krb_priv_decode(der, len, &m)) != 0) {
        info.krb_error = CK_KRB_AP_ERR_MSG_TYPE;
        goto out;
    }
    /* A different enctype is a different key: report it like any other wrong key. */
    if (m->enc_part->etype != key->enctype ||
        ck_enc_data_open(m->enc_part, key, CK_KU_KRB_PRIV_ENCPART, &plain, &plain_len) != 0) {
        rc = fail(&info, CK_KRB_AP_ERR_MODIFIED,
                  ck_error_set(CK_ERR_INTEGRITY, "KRB-PRIV: cannot decrypt (wrong key or modified)"));
        goto out;
    }
    if ((rc = ck_asn1_enc_krb_priv_part_decode(plain, plain_len, &part)) != 0) {
        info.krb_error = CK_KRB_ERR_GENERIC;
        goto out;
    }
    struct fields f = { &part->user_data, &part->timestamp, &part->usec, &part->seq_number,
                        &part->s_address, &part->r_address };
    if ((rc = check_fields(&f, check, ASN1_STRING_get0_data(m->enc_part->cipher),
                           (size_t)ASN1_STRING_length(m->enc_part->cipher), &info)) != 0)
        goto out;
    rc = copy_out(part->user_data, data, data_len);
out:
    if (info_out != NULL)
        *info_out = info;
    if (plain != NULL)
        ck_free_secret(plain, plain_len);
    CK_ENC_KRB_PRIV_PART_free(part);
    CK_KRB_PRIV_MSG_free(m);
    return rc;
}
