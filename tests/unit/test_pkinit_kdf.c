/* PKINIT key derivation: the RFC 8636 Appendix A vectors (all three) and RFC 4556
 * octetstring2key against independently computed values. */
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#include "ck_test.h"
#include "cablekey/crypto.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/pkinit_asn1.h"
#include "cablekey/pkinit_kdf.h"

/* RFC 8636 Appendix A inputs: Z = 256 zero octets, client lha@SU.SE, KDC krbtgt/SU.SE@SU.SE,
 * both NT-PRINCIPAL (the vectors were made with names parsed as principals, so krbtgt's
 * name-type is 1, not NT-SRV-INST: name-type is KDF input), as-REQ = 10 x 0xAA,
 * pk-as-rep = 9 x 0xBB. */
struct rfc8636_inputs {
    uint8_t z[256];
    uint8_t as_req[10];
    uint8_t pk_as_rep[9];
    CK_PRINCIPAL_NAME *client, *kdc;
};

static int
inputs_init(struct rfc8636_inputs *in, int32_t kdc_name_type)
{
    static const char *const lha[] = {"lha"};
    static const char *const tgs[] = {"krbtgt", "SU.SE"};

    memset(in->z, 0, sizeof(in->z));
    memset(in->as_req, 0xaa, sizeof(in->as_req));
    memset(in->pk_as_rep, 0xbb, sizeof(in->pk_as_rep));
    in->client = in->kdc = NULL;
    if (ck_asn1_principal_new(CK_NT_PRINCIPAL, lha, 1, &in->client) != 0 ||
        ck_asn1_principal_new(kdc_name_type, tgs, 2, &in->kdc) != 0)
        return -1;
    return 0;
}

static void
inputs_free(struct rfc8636_inputs *in)
{
    CK_PRINCIPAL_NAME_free(in->client);
    CK_PRINCIPAL_NAME_free(in->kdc);
}

static void
rfc8636_sha1_aes256(void)
{
    struct rfc8636_inputs in;
    size_t elen;
    uint8_t *expect = ck_test_hex("e6ab38c9413e035bb079201ed0b6b73d"
                                  "8d49a814a737c04ee6649614206f73ad", &elen);
    ck_key key;

    CHECK(inputs_init(&in, CK_NT_PRINCIPAL) == 0);
    CHECK_OK(ck_pkinit_kdf(CK_PKINIT_KDF_SHA1, in.z, sizeof(in.z), in.client, "SU.SE", in.kdc,
                           "SU.SE", CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, in.as_req,
                           sizeof(in.as_req), in.pk_as_rep, sizeof(in.pk_as_rep), &key));
    CHECK_INT_EQ(key.enctype, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96);
    CHECK_MEM_EQ(key.contents, key.length, expect, elen);
    ck_key_clear(&key);
    inputs_free(&in);
    free(expect);
}

static void
rfc8636_sha256_aes256(void)
{
    struct rfc8636_inputs in;
    size_t elen;
    uint8_t *expect = ck_test_hex("77ef4e48c420ae3fec75109d7981697e"
                                  "ed5d295c90c62564f7bfd101fa9bc1d5", &elen);
    ck_key key;

    CHECK(inputs_init(&in, CK_NT_PRINCIPAL) == 0);
    CHECK_OK(ck_pkinit_kdf(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), in.client, "SU.SE", in.kdc,
                           "SU.SE", CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, in.as_req,
                           sizeof(in.as_req), in.pk_as_rep, sizeof(in.pk_as_rep), &key));
    CHECK_MEM_EQ(key.contents, key.length, expect, elen);
    ck_key_clear(&key);
    inputs_free(&in);
    free(expect);
}

/* DES3 random-to-key (RFC 3961 §6.3.1): each 7 input octets become 8 key octets; the low bit
 * of each of the first 7 output octets goes into the 8th, then every octet gets odd parity.
 * Only here: lib/crypto does not offer des3, but the RFC's third vector uses it. */
static void
des3_random_to_key(const uint8_t in[21], uint8_t out[24])
{
    for (int blk = 0; blk < 3; blk++) {
        const uint8_t *i = in + 7 * blk;
        uint8_t *o = out + 8 * blk, last = 0;
        for (int j = 0; j < 7; j++) {
            o[j] = i[j] & 0xfe;
            last |= (uint8_t)((i[j] & 1) << (j + 1));
        }
        o[7] = last;
        for (int j = 0; j < 8; j++) {
            int ones = 0;
            for (int b = 1; b < 8; b++)
                ones += (o[j] >> b) & 1;
            o[j] = (uint8_t)((o[j] & 0xfe) | ((ones % 2) == 0));
        }
    }
}

static void
rfc8636_sha512_des3(void)
{
    struct rfc8636_inputs in;
    size_t elen;
    uint8_t *expect = ck_test_hex("d3c78a79d65213efe9a826f75dfb01f7"
                                  "2362fb16fb01dad6", &elen);
    uint8_t raw[21], key[24];
    ck_key k;

    CHECK(inputs_init(&in, CK_NT_PRINCIPAL) == 0);
    /* des3-cbc-sha1-kd (16): random-to-key input is 168 bits. */
    CHECK_OK(ck_pkinit_kdf_bytes(CK_PKINIT_KDF_SHA512, in.z, sizeof(in.z), in.client, "SU.SE",
                                 in.kdc, "SU.SE", 16, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                                 sizeof(in.pk_as_rep), raw, sizeof(raw)));
    des3_random_to_key(raw, key);
    CHECK_MEM_EQ(key, sizeof(key), expect, elen);
    /* The key-producing entry point refuses an enctype lib/crypto lacks. */
    CHECK_INT_EQ(ck_pkinit_kdf(CK_PKINIT_KDF_SHA512, in.z, sizeof(in.z), in.client, "SU.SE",
                               in.kdc, "SU.SE", 16, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                               sizeof(in.pk_as_rep), &k),
                 CK_ERR_UNSUPPORTED);
    inputs_free(&in);
    free(expect);
}

/* Every input is bound: changing any of them changes the key (name-type included). */
static void
rfc8636_inputs_bound(void)
{
    struct rfc8636_inputs in, srv;
    uint8_t ref[32], out[32];

    CHECK(inputs_init(&in, CK_NT_PRINCIPAL) == 0);
    CHECK(inputs_init(&srv, CK_NT_SRV_INST) == 0);
    CHECK_OK(ck_pkinit_kdf_bytes(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), in.client, "SU.SE",
                                 in.kdc, "SU.SE", 18, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                                 sizeof(in.pk_as_rep), ref, sizeof(ref)));
    /* KDC name-type NT-SRV-INST instead of NT-PRINCIPAL */
    CHECK_OK(ck_pkinit_kdf_bytes(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), in.client, "SU.SE",
                                 srv.kdc, "SU.SE", 18, in.as_req, sizeof(in.as_req),
                                 in.pk_as_rep, sizeof(in.pk_as_rep), out, sizeof(out)));
    CHECK(memcmp(ref, out, sizeof(out)) != 0);
    /* enctype */
    CHECK_OK(ck_pkinit_kdf_bytes(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), in.client, "SU.SE",
                                 in.kdc, "SU.SE", 17, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                                 sizeof(in.pk_as_rep), out, sizeof(out)));
    CHECK(memcmp(ref, out, sizeof(out)) != 0);
    /* realm */
    CHECK_OK(ck_pkinit_kdf_bytes(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), in.client, "SU.SF",
                                 in.kdc, "SU.SE", 18, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                                 sizeof(in.pk_as_rep), out, sizeof(out)));
    CHECK(memcmp(ref, out, sizeof(out)) != 0);
    /* as-REQ and pk-as-rep bytes */
    in.as_req[9] ^= 1;
    CHECK_OK(ck_pkinit_kdf_bytes(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), in.client, "SU.SE",
                                 in.kdc, "SU.SE", 18, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                                 sizeof(in.pk_as_rep), out, sizeof(out)));
    CHECK(memcmp(ref, out, sizeof(out)) != 0);
    in.as_req[9] ^= 1;
    in.pk_as_rep[0] ^= 1;
    CHECK_OK(ck_pkinit_kdf_bytes(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), in.client, "SU.SE",
                                 in.kdc, "SU.SE", 18, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                                 sizeof(in.pk_as_rep), out, sizeof(out)));
    CHECK(memcmp(ref, out, sizeof(out)) != 0);
    in.pk_as_rep[0] ^= 1;
    /* Z */
    in.z[255] = 1;
    CHECK_OK(ck_pkinit_kdf_bytes(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), in.client, "SU.SE",
                                 in.kdc, "SU.SE", 18, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                                 sizeof(in.pk_as_rep), out, sizeof(out)));
    CHECK(memcmp(ref, out, sizeof(out)) != 0);
    in.z[255] = 0;
    /* and the same inputs give the same key */
    CHECK_OK(ck_pkinit_kdf_bytes(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), in.client, "SU.SE",
                                 in.kdc, "SU.SE", 18, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                                 sizeof(in.pk_as_rep), out, sizeof(out)));
    CHECK_MEM_EQ(ref, sizeof(ref), out, sizeof(out));
    /* SHA-384 is available and differs from SHA-256 and SHA-512 */
    CHECK_OK(ck_pkinit_kdf_bytes(CK_PKINIT_KDF_SHA384, in.z, sizeof(in.z), in.client, "SU.SE",
                                 in.kdc, "SU.SE", 18, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                                 sizeof(in.pk_as_rep), out, sizeof(out)));
    CHECK(memcmp(ref, out, sizeof(out)) != 0);
    inputs_free(&in);
    inputs_free(&srv);
}

static void
kdf_bad_arguments(void)
{
    struct rfc8636_inputs in;
    ck_key key;
    uint8_t big[CK_PKINIT_MAX_Z + 1] = {0};

    CHECK(inputs_init(&in, CK_NT_PRINCIPAL) == 0);
    CHECK_INT_EQ(ck_pkinit_kdf(99, in.z, sizeof(in.z), in.client, "SU.SE", in.kdc, "SU.SE", 18,
                               in.as_req, sizeof(in.as_req), in.pk_as_rep, sizeof(in.pk_as_rep),
                               &key),
                 CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(ck_pkinit_kdf(CK_PKINIT_KDF_SHA256, in.z, 0, in.client, "SU.SE", in.kdc,
                               "SU.SE", 18, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                               sizeof(in.pk_as_rep), &key),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pkinit_kdf(CK_PKINIT_KDF_SHA256, big, sizeof(big), in.client, "SU.SE",
                               in.kdc, "SU.SE", 18, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                               sizeof(in.pk_as_rep), &key),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pkinit_kdf(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), NULL, "SU.SE", in.kdc,
                               "SU.SE", 18, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                               sizeof(in.pk_as_rep), &key),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pkinit_kdf(CK_PKINIT_KDF_SHA256, in.z, sizeof(in.z), in.client, "SU.SE",
                               in.kdc, "SU.SE", 23, in.as_req, sizeof(in.as_req), in.pk_as_rep,
                               sizeof(in.pk_as_rep), &key),
                 CK_ERR_UNSUPPORTED);
    inputs_free(&in);
}

/* octetstring2key expected values, computed independently with Python's hashlib:
 *   def o2k(x, n):
 *       out, c = b'', 0
 *       while len(out) < n: out += hashlib.sha1(bytes([c]) + x).digest(); c += 1
 *       return out[:n]
 *   z = bytes(range(256)); n1 = b'\x11' * 32; n2 = b'\x22' * 32
 *   o2k(z + n1 + n2, 32).hex()  ->  0709f6f5...ea9ca52f  (aes256, both nonces)
 *   o2k(z, 16).hex()            ->  2ec6e955...9467dbfd  (aes128, no nonces)
 *   o2k(z, 32).hex()            ->  2ec6e955...41 63c65292 (aes256, no nonces)
 * (python3, hashlib from OpenSSL; run once when this test was written.) */
static void
octetstring2key(void)
{
    uint8_t z[256], n1[32], n2[32], raw[32], one[20];
    size_t l1, l2, l3;
    uint8_t *a = ck_test_hex("0709f6f5971522f17ffff153f03575d3"
                             "fd47af339654a41b8fc090bfea9ca52f", &l1);
    uint8_t *b = ck_test_hex("2ec6e9558abab677324cc5df9467dbfd", &l2);
    uint8_t *c = ck_test_hex("2ec6e9558abab677324cc5df9467dbfd"
                             "127d18944032d3974735d24163c65292", &l3);
    unsigned int olen = 0;
    ck_key key;

    for (int i = 0; i < 256; i++)
        z[i] = (uint8_t)i;
    memset(n1, 0x11, sizeof(n1));
    memset(n2, 0x22, sizeof(n2));

    CHECK_OK(ck_pkinit_octetstring2key(z, sizeof(z), n1, sizeof(n1), n2, sizeof(n2),
                                       CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &key));
    CHECK_INT_EQ(key.enctype, CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96);
    CHECK_MEM_EQ(key.contents, key.length, a, l1);
    CHECK_OK(ck_pkinit_octetstring2key(z, sizeof(z), NULL, 0, NULL, 0,
                                       CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, &key));
    CHECK_MEM_EQ(key.contents, key.length, b, l2);
    CHECK_OK(ck_pkinit_octetstring2key(z, sizeof(z), NULL, 0, NULL, 0,
                                       CK_ENCTYPE_AES256_CTS_HMAC_SHA384_192, &key));
    CHECK_MEM_EQ(key.contents, key.length, c, l3);

    /* Structure: the first 20 octets are SHA1(0x00 | x), and a longer output extends (not
     * changes) a shorter one. */
    {
        uint8_t x[257];
        x[0] = 0;
        memcpy(x + 1, z, sizeof(z));
        CHECK(EVP_Digest(x, sizeof(x), one, &olen, EVP_sha1(), NULL) == 1);
        CHECK_OK(ck_pkinit_octetstring2key_bytes(z, sizeof(z), NULL, 0, NULL, 0, raw, 20));
        CHECK_MEM_EQ(raw, 20, one, olen);
    }
    /* Nonces matter, and so does their order. */
    CHECK_OK(ck_pkinit_octetstring2key_bytes(z, sizeof(z), n2, sizeof(n2), n1, sizeof(n1), raw,
                                             32));
    CHECK(memcmp(raw, a, 32) != 0);
    CHECK_OK(ck_pkinit_octetstring2key_bytes(z, sizeof(z), n1, sizeof(n1), NULL, 0, raw, 32));
    CHECK(memcmp(raw, a, 32) != 0);
    CHECK(memcmp(raw, c, 32) != 0);
    /* Bad arguments */
    CHECK_INT_EQ(ck_pkinit_octetstring2key(z, 0, NULL, 0, NULL, 0, 18, &key), CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pkinit_octetstring2key(z, sizeof(z), NULL, 4, NULL, 0, 18, &key),
                 CK_ERR_INVAL);
    CHECK_INT_EQ(ck_pkinit_octetstring2key(z, sizeof(z), NULL, 0, NULL, 0, 23, &key),
                 CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(key.length, 0); /* cleared on failure */
    ck_key_clear(&key);
    free(a);
    free(b);
    free(c);
}

CK_TEST_MAIN("pkinit_kdf", CK_TEST_CASE(rfc8636_sha1_aes256),
             CK_TEST_CASE(rfc8636_sha256_aes256), CK_TEST_CASE(rfc8636_sha512_des3),
             CK_TEST_CASE(rfc8636_inputs_bound), CK_TEST_CASE(kdf_bad_arguments),
             CK_TEST_CASE(octetstring2key))
