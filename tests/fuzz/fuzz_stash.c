/* Fuzzes the stash file parser (lib/store/store.c, formats 1 and 2: several master keys since
 * master-key rotation): any input is refused cleanly or parsed into at most CK_STASH_MAX_KEYS
 * distinct, non-zero kvnos in ascending order, and a parsed stash written as format 2 parses
 * back to the same keys. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/util.h"
#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_store_keyring a, b;
    uint8_t *enc = NULL;
    size_t len = 0;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    if (ck_store_stash_parse_int(data, size, "fuzz", &a) != 0) {
        if (a.n != 0)
            abort();
        return 0;
    }
    if (a.n == 0 || a.n > CK_STASH_MAX_KEYS)
        abort();
    for (size_t i = 0; i < a.n; i++)
        if (a.keys[i].kvno == 0 || (i > 0 && a.keys[i].kvno <= a.keys[i - 1].kvno))
            abort();
    if (ck_store_stash_encode_int(&a, &enc, &len) != 0 ||
        ck_store_stash_parse_int(enc, len, "fuzz", &b) != 0 || b.n != a.n)
        abort();
    for (size_t i = 0; i < a.n; i++)
        if (a.keys[i].kvno != b.keys[i].kvno || a.keys[i].key.enctype != b.keys[i].key.enctype ||
            a.keys[i].key.length != b.keys[i].key.length ||
            memcmp(a.keys[i].key.contents, b.keys[i].key.contents, a.keys[i].key.length) != 0)
            abort();
    ck_free_secret(enc, len);
    ck_store_ring_clear_int(&a);
    ck_store_ring_clear_int(&b);
    return 0;
}
