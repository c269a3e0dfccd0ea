/* Shared body of the ASN.1 fuzz targets: anything a validated decoder accepts must re-encode,
 * decode again, and encode to the same bytes; a decoder failure must leave the output NULL. */
#ifndef CK_FUZZ_ASN1_H
#define CK_FUZZ_ASN1_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cablekey/krb5_asn1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CK_FUZZ_ROUNDTRIP(name, T)                                                          \
    do {                                                                                    \
        T *v_ = NULL, *w_ = NULL;                                                           \
        uint8_t *e1_ = NULL, *e2_ = NULL;                                                   \
        size_t l1_ = 0, l2_ = 0;                                                            \
        if (ck_asn1_##name##_decode(data, size, &v_) == 0) {                                \
            if (v_ == NULL || ck_asn1_##name##_encode(v_, &e1_, &l1_) != 0 ||               \
                ck_asn1_##name##_decode(e1_, l1_, &w_) != 0 ||                              \
                ck_asn1_##name##_encode(w_, &e2_, &l2_) != 0 || l1_ != l2_ ||               \
                memcmp(e1_, e2_, l1_) != 0)                                                 \
                __builtin_trap();                                                           \
        } else if (v_ != NULL) {                                                            \
            __builtin_trap();                                                               \
        }                                                                                   \
        ck_asn1_free_der(e1_, l1_);                                                         \
        ck_asn1_free_der(e2_, l2_);                                                         \
        T##_free(v_);                                                                       \
        T##_free(w_);                                                                       \
    } while (0)

#endif
