/* Fuzzes the keying server's message parser (ck_ksv_msg_parse), all six types. Whatever it
 * accepts must encode back to exactly the input bytes (the codec's round-trip promise,
 * cablekey/ksv_msg.h) and parse again, and every group's path must be consistent: a key at the
 * leaf level names the leaf whose digits are the member ID (ck_ksv_leaf_digits). Whatever it
 * refuses must leave no message behind. The seed corpus (tests/fuzz/corpus/ksv_msg) holds the
 * document's vectors and one message of each type. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/ksv_msg.h"
#include "cablekey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_ksv_msg *m = (struct ck_ksv_msg *)&m, *again = NULL;
    uint8_t *out = NULL;
    size_t out_len = 0;
    int ret = ck_ksv_msg_parse(data, size, &m);

    if (ret != 0) {
        if (m != NULL || ret > 0)
            abort();
        return 0;
    }
    if (m == NULL || ck_ksv_msg_encode(m, &out, &out_len) != 0)
        abort();
    if (out_len != size || memcmp(out, data, size) != 0)
        abort();
    if (ck_ksv_msg_parse(out, out_len, &again) != 0)
        abort();
    for (size_t i = 0; i < m->n_groups; i++) {
        const struct ck_ksv_group *g = &m->groups[i];
        uint8_t digits[CK_KSV_MAX_DEPTH], n = 0;
        if (g->n_keys == 0 || g->keys[g->n_keys - 1].level != g->id_len)
            continue;
        if (ck_ksv_leaf_digits(g->degree, g->keys[g->n_keys - 1].node, digits, &n) != 0 ||
            n != g->id_len || memcmp(digits, g->member_id, n) != 0)
            abort();
    }
    (void)ck_ksv_type_name(m->type);
    (void)ck_ksv_alarm_name(m->alarm);
    ck_free_secret(out, out_len);
    ck_ksv_msg_free(again);
    ck_ksv_msg_free(m);
    return 0;
}
