/* lib/lkh internals shared by the rekey packer, the signer and the EK code. */
#ifndef CABLEKEY_LKH_INT_H
#define CABLEKEY_LKH_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "cablekey/lkh_rekey.h"

struct lkh_signer {
    EVP_PKEY *pkey;
};

int lkh_signer_sign(const struct lkh_signer *s, const uint8_t *msg, size_t len,
                    uint8_t sig[LKH_ED25519_SIG_LEN]);
/* CK_ERR_INTEGRITY when the signature does not verify, CK_ERR_INVAL for a bad public key. */
int lkh_ed25519_verify(const uint8_t pub[LKH_ED25519_PUB_LEN], const uint8_t *msg, size_t len,
                       const uint8_t sig[LKH_ED25519_SIG_LEN]);

static inline void
lkh_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void
lkh_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void
lkh_put_be64(uint8_t *p, uint64_t v)
{
    lkh_put_be32(p, (uint32_t)(v >> 32));
    lkh_put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t
lkh_get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t
lkh_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t
lkh_get_be64(const uint8_t *p)
{
    return ((uint64_t)lkh_get_be32(p) << 32) | lkh_get_be32(p + 4);
}

#endif
