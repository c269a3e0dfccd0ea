/* Helpers shared by the KDC and the client library: EncryptionKey <-> ck_key, EncryptedData seal
 * and open with a key usage, and Ticket seal/open. */
#include <string.h>

#include <openssl/crypto.h>

#include "cablekey/ap.h"
#include "cablekey/error.h"
#include "cablekey/util.h"

int
ck_key_from_asn1(ck_key *key, const CK_ENCRYPTION_KEY *k)
{
    if (key == NULL || k == NULL || k->keyvalue == NULL)
        return ck_error_set(CK_ERR_INVAL, "EncryptionKey: missing");
    if (!ck_enctype_is_supported(k->keytype))
        return ck_error_set(CK_ERR_UNSUPPORTED, "EncryptionKey: enctype %d not supported",
                            (int)k->keytype);
    if ((size_t)ASN1_STRING_length(k->keyvalue) != ck_enctype_key_length(k->keytype))
        return ck_error_set(CK_ERR_DECODE, "EncryptionKey: %d bytes for enctype %d",
                            ASN1_STRING_length(k->keyvalue), (int)k->keytype);
    return ck_key_init(key, k->keytype, ASN1_STRING_get0_data(k->keyvalue),
                       (size_t)ASN1_STRING_length(k->keyvalue));
}

int
ck_key_to_asn1(const ck_key *key, CK_ENCRYPTION_KEY **k)
{
    bool fresh = false;
    int rc;

    if (key == NULL || k == NULL)
        return ck_error_set(CK_ERR_INVAL, "EncryptionKey: missing");
    if (*k == NULL) {
        if ((*k = CK_ENCRYPTION_KEY_new()) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "EncryptionKey");
        fresh = true;
    }
    rc = ck_asn1_enc_key_set(*k, key->enctype, key->contents, key->length);
    if (rc != 0 && fresh) {
        CK_ENCRYPTION_KEY_free(*k);
        *k = NULL;
    }
    return rc;
}

int
ck_enc_data_seal(CK_ENCRYPTED_DATA *ed, const ck_key *key, int32_t usage, const uint32_t *kvno,
                 const uint8_t *plain, size_t plain_len)
{
    uint8_t *buf = NULL;
    size_t cap, len = 0;
    int rc;

    if (ed == NULL || key == NULL || (plain == NULL && plain_len != 0))
        return ck_error_set(CK_ERR_INVAL, "EncryptedData: bad arguments");
    cap = ck_encrypt_length(key->enctype, plain_len);
    if (cap == 0 || cap > (size_t)CK_ASN1_MAX_OCTETS)
        return ck_error_set(CK_ERR_LIMIT, "EncryptedData: %zu bytes of plaintext", plain_len);
    /* Encrypt straight into the OCTET STRING's buffer: no extra copy of the ciphertext. */
    if ((buf = OPENSSL_malloc(cap)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "EncryptedData");
    if ((rc = ck_encrypt(key, usage, plain, plain_len, buf, cap, &len)) != 0)
        goto out;
    if (ed->cipher == NULL && (ed->cipher = ASN1_OCTET_STRING_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "EncryptedData");
        goto out;
    }
    ASN1_STRING_set0(ed->cipher, buf, (int)len);
    buf = NULL;
    ed->etype = key->enctype;
    if (kvno != NULL)
        rc = ck_asn1_uint32_set(&ed->kvno, *kvno);
    else
        ck_asn1_uint32_clear(&ed->kvno);
out:
    OPENSSL_free(buf);
    return rc;
}

int
ck_enc_data_open(const CK_ENCRYPTED_DATA *ed, const ck_key *key, int32_t usage, uint8_t **plain,
                 size_t *plain_len)
{
    const uint8_t *c;
    uint8_t *buf = NULL;
    size_t clen, len = 0;
    int rc;

    *plain = NULL;
    *plain_len = 0;
    if (ed == NULL || key == NULL || ed->cipher == NULL)
        return ck_error_set(CK_ERR_INVAL, "EncryptedData: missing");
    if (ed->etype != key->enctype)
        return ck_error_set(CK_ERR_UNSUPPORTED, "EncryptedData: etype %d, key is %d",
                            (int)ed->etype, (int)key->enctype);
    c = ASN1_STRING_get0_data(ed->cipher);
    clen = (size_t)ASN1_STRING_length(ed->cipher);
    if ((buf = malloc(clen ? clen : 1)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "EncryptedData");
    if ((rc = ck_decrypt(key, usage, c, clen, buf, clen, &len)) != 0) {
        ck_free_secret(buf, clen);
        return rc;
    }
    if (len < clen)
        ck_memzero(buf + len, clen - len);
    *plain = buf;
    *plain_len = len;
    return 0;
}

int
ck_ticket_seal(CK_TICKET *ticket, const CK_ENC_TICKET_PART *etp, const ck_key *key,
               uint32_t kvno)
{
    uint8_t *der = NULL;
    size_t len = 0;
    int rc;

    if (ticket == NULL || etp == NULL || key == NULL)
        return ck_error_set(CK_ERR_INVAL, "Ticket: bad arguments");
    if ((rc = ck_asn1_enc_ticket_part_encode(etp, &der, &len)) != 0)
        return rc;
    if (ticket->enc_part == NULL && (ticket->enc_part = CK_ENCRYPTED_DATA_new()) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "Ticket");
        goto out;
    }
    ticket->tkt_vno = CK_KRB5_PVNO;
    ck_asn1_ticket_modified(ticket);
    if ((rc = ck_enc_data_seal(ticket->enc_part, key, CK_KU_KDC_REP_TICKET, &kvno, der, len)) != 0)
        goto out;
    {
        /* Encode the sealed ticket once into its cache: the KDC-REP encoder then replays these
         * bytes at each enclosing level instead of walking the ticket again. */
        const uint8_t *tder;
        size_t tlen;

        rc = ck_asn1_ticket_der(ticket, &tder, &tlen);
    }
out:
    ck_asn1_free_der(der, len);
    return rc;
}

int
ck_ticket_open(const CK_TICKET *ticket, const ck_key *key, CK_ENC_TICKET_PART **out)
{
    uint8_t *plain = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    if (ticket == NULL || ticket->enc_part == NULL)
        return ck_error_set(CK_ERR_INVAL, "Ticket: missing");
    if ((rc = ck_enc_data_open(ticket->enc_part, key, CK_KU_KDC_REP_TICKET, &plain, &len)) != 0)
        return rc;
    rc = ck_asn1_enc_ticket_part_decode(plain, len, out);
    ck_free_secret(plain, len);
    return rc;
}

int
ck_checksum_new(const ck_key *key, int32_t cksumtype, int32_t usage, const uint8_t *data,
                size_t len, CK_CHECKSUM **out)
{
    uint8_t sum[CK_CHECKSUM_MAX];
    size_t sum_len = 0;
    CK_CHECKSUM *c = NULL;
    int rc;

    *out = NULL;
    if (key == NULL)
        return ck_error_set(CK_ERR_INVAL, "Checksum: no key");
    if (cksumtype == 0)
        cksumtype = ck_enctype_checksum_type(key->enctype);
    if ((rc = ck_make_checksum(key, cksumtype, usage, data, len, sum, sizeof(sum), &sum_len)) != 0)
        return rc;
    if ((c = CK_CHECKSUM_new()) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "Checksum");
    if ((rc = ck_asn1_checksum_set(c, cksumtype, sum, sum_len)) != 0) {
        CK_CHECKSUM_free(c);
        return rc;
    }
    *out = c;
    return 0;
}
