/* Writes the seed corpus of fuzz_asn1_pkinit_draft (tests/fuzz/corpus/asn1_pkinit_draft/): the
 * pk-init draft forms built with our encoders around the real CMS blobs and public key of the MIT
 * captures (no public draft-form capture exists). Not part of the build:
 *   cc -Iinclude tests/vectors/pkinit/capture/draft_seeds.c build/libcablekey.a -lcrypto \
 *      -o /tmp/draft_seeds && (cd tests && /tmp/draft_seeds fuzz/corpus/asn1_pkinit_draft)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/pkinit_asn1.h"

static uint8_t *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b = malloc(1 << 20);
    *len = f != NULL && b != NULL ? fread(b, 1, 1 << 20, f) : 0;
    if (f != NULL)
        fclose(f);
    if (*len == 0)
        exit(1);
    return b;
}

static void
spit(const char *dir, const char *name, int rc, uint8_t *der, size_t len)
{
    char path[512];
    FILE *f;

    if (rc != 0)
        exit(2);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "wb")) == NULL || fwrite(der, 1, len, f) != len)
        exit(3);
    fclose(f);
    ck_asn1_free_der(der, len);
}

int
main(int argc, char **argv)
{
    static const char *const tgs[] = {"krbtgt", "EXAMPLE.TEST"};
    static const uint8_t md5[16] = {0x5a};
    static const uint8_t key[24] = {0x11, 0x22};
    const char *dir = argc > 1 ? argv[1] : ".";
    size_t pl, al, kl;
    uint8_t *pk = slurp("vectors/pkinit/mit-as-req-dh.pa-pk-as-req.der", &pl);
    uint8_t *apd = slurp("vectors/pkinit/mit-as-req-dh.auth-pack.der", &al);
    uint8_t *ekp = slurp("vectors/pkinit/mit-as-rep-rsa.pa-pk-as-rep.der", &kl);
    CK_PA_PK_AS_REQ_MSG *rfc = NULL;
    CK_PA_PK_AS_REP_MSG *rrep = NULL;
    CK_AUTH_PACK *mit = NULL;
    CK_PA_PK_AS_REQ_DRAFT9 *r = CK_PA_PK_AS_REQ_DRAFT9_new();
    CK_PA_PK_AS_REP_DRAFT9 *p = CK_PA_PK_AS_REP_DRAFT9_new();
    CK_AUTH_PACK_DRAFT9 *a9 = CK_AUTH_PACK_DRAFT9_new();
    CK_AUTH_PACK_PKTC *ac = CK_AUTH_PACK_PKTC_new();
    CK_REPLY_KEY_PACK_DRAFT9 *k = CK_REPLY_KEY_PACK_DRAFT9_new();
    ASN1_GENERALSTRING *loc = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    int rc;

    if (ck_asn1_pa_pk_as_req_decode(pk, pl, &rfc) || ck_asn1_auth_pack_decode(apd, al, &mit) ||
        ck_asn1_pa_pk_as_rep_decode(ekp, kl, &rrep))
        return 4;
    /* Draft PA-PK-AS-REQ in both forms around MIT's signedAuthPack. */
    ck_asn1_octets_set(&r->signed_auth_pack, rfc->signed_auth_pack->data,
                       (size_t)rfc->signed_auth_pack->length);
    r->form = CK_PKINIT_FORM_IMPLICIT;
    rc = ck_asn1_pa_pk_as_req_draft9_encode(r, &der, &len);
    spit(dir, "req-implicit.der", rc, der, len);
    r->form = CK_PKINIT_FORM_EXPLICIT;
    rc = ck_asn1_pa_pk_as_req_draft9_encode(r, &der, &len);
    spit(dir, "req-explicit.der", rc, der, len);
    /* Draft PA-PK-AS-REP in both forms around MIT's encKeyPack. */
    ck_pkinit_pa_pk_as_rep_draft9_set(p, CK_PA_PK_AS_REP_DRAFT9_ENC_KEY_PACK,
                                      CK_PKINIT_FORM_IMPLICIT, rrep->value.enc_key_pack->data,
                                      (size_t)rrep->value.enc_key_pack->length);
    rc = ck_asn1_pa_pk_as_rep_draft9_encode(p, &der, &len);
    spit(dir, "rep-implicit.der", rc, der, len);
    p->form = CK_PKINIT_FORM_EXPLICIT;
    rc = ck_asn1_pa_pk_as_rep_draft9_encode(p, &der, &len);
    spit(dir, "rep-explicit.der", rc, der, len);
    /* Draft-9 AuthPack with MIT's DH public value. */
    ck_asn1_principal_set(a9->pk_authenticator->kdc_name, 2, tgs, 2);
    ck_asn1_kstring_set(&a9->pk_authenticator->kdc_realm, "EXAMPLE.TEST");
    a9->pk_authenticator->cusec = 123456;
    ck_asn1_time_set(&a9->pk_authenticator->ctime, 1796162457);
    ck_asn1_nonce_set(&a9->pk_authenticator->nonce, 0x7ed0e1fa);
    a9->client_public_value = X509_PUBKEY_dup(mit->client_public_value);
    rc = ck_asn1_auth_pack_draft9_encode(a9, &der, &len);
    spit(dir, "auth-pack-draft9.der", rc, der, len);
    /* PacketCable AuthPack: RSA-MD5 Checksum, RSA key transport (no public value). */
    ck_asn1_time_set(&ac->pk_authenticator->ctime, 1796162457);
    ck_asn1_nonce_set(&ac->pk_authenticator->nonce, 0x7ed0e1fa);
    ac->pk_authenticator->pa_checksum = CK_CHECKSUM_new();
    ck_asn1_checksum_set(ac->pk_authenticator->pa_checksum, CK_CKSUMTYPE_RSA_MD5, md5,
                         sizeof(md5));
    rc = ck_asn1_auth_pack_pktc_encode(ac, &der, &len);
    spit(dir, "auth-pack-pktc.der", rc, der, len);
    /* Draft ReplyKeyPack (des3 key, as PacketCable's RSA replies would carry). */
    ck_asn1_enc_key_set(k->reply_key, 16, key, sizeof(key));
    ck_asn1_nonce_set(&k->nonce, 0x7ed0e1fa);
    rc = ck_asn1_reply_key_pack_draft9_encode(k, &der, &len);
    spit(dir, "reply-key-pack-draft9.der", rc, der, len);
    ck_asn1_kstring_set(&loc, "prov.example.test");
    rc = ck_asn1_prov_srv_location_encode(loc, &der, &len);
    spit(dir, "prov-srv-location.der", rc, der, len);
    return 0;
}
