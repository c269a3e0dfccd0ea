/* Fuzzes the group rekey datagram parser (lkh_rekey_parse), the verifier under a fixed Ed25519
 * key (lkh_rekey_verify: the seeds in tests/fuzz/corpus/lkh_rekey are signed with it, so mutants
 * reach the hash-tree and signature code), and a member applying the parsed wraps. Whatever the
 * parser refuses leaves no view behind and never verifies; whatever it accepts keeps the view's
 * promises (apply order, leaf range, sizes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/lkh_rekey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The seeds' signing key: raw private bytes 01 02 .. 20 (the seeds are lkh_rekey_pack output: a
 * revoke of one of 64 at degree 4, six datagrams of a 40-leave batch at degree 2 in 700-byte
 * datagrams with ACK_REQD, an empty batch). */
static uint8_t pub[LKH_ED25519_PUB_LEN];
static int have_pub;

static void
init_key(void)
{
    uint8_t priv[32];
    struct lkh_signer *s = NULL;

    for (int i = 0; i < 32; i++)
        priv[i] = (uint8_t)(i + 1);
    if (lkh_signer_from_raw(priv, &s) != 0 || lkh_signer_public(s, pub) != 0)
        abort();
    lkh_signer_free(s);
    have_pub = 1;
}

/* A member on the datagram's first leaf, path ids from the shape, zero keys: apply must fail or
 * succeed cleanly, never crash. */
static void
member_try(const uint8_t *data, const struct lkh_rekey_view *v)
{
    struct lkh_member m;
    uint32_t node = v->leaf_lo, d = data[25], h = data[26];

    memset(&m, 0, sizeof(m));
    m.degree = d;
    m.height = h;
    for (uint32_t l = 0; l <= h; l++) {
        m.path[l].node = node;
        m.path[l].version = 1;
        node = node == 0 ? 0 : (node - 1) / d;
    }
    (void)lkh_member_apply(&m, v->wraps, v->n_wraps);
    lkh_member_clear(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lkh_rekey_view v;
    size_t entries;
    int rc, vr;

    if (!have_pub)
        init_key();
    rc = lkh_rekey_parse(data, size, &v);
    vr = lkh_rekey_verify(data, size, pub);
    if (rc != 0) {
        if (rc > 0 || v.wraps != NULL || v.nodes != NULL || v.n_wraps != 0 || vr == 0)
            abort();
        return 0;
    }
    /* node entries on the wire (the view's node list adds rekeyed children named only in
     * their parent's wrap) */
    entries = (size_t)((data[40] << 8) | data[41]);
    if (v.leaf_lo > v.leaf_hi || v.index >= v.n_dgrams || v.epoch == 0 || v.n_nodes < entries ||
        LKH_REKEY_HDR_LEN + entries * LKH_REKEY_NODE_LEN + v.n_wraps * LKH_REKEY_WRAP_LEN +
                LKH_ED25519_SIG_LEN + 1 > size)
        abort();
    for (size_t i = 1; i < v.n_wraps; i++)
        if (v.wraps[i].node > v.wraps[i - 1].node ||
            (v.wraps[i].node == v.wraps[i - 1].node && v.wraps[i].child <= v.wraps[i - 1].child))
            abort();
    for (size_t i = 1; i < v.n_nodes; i++)
        if (v.nodes[i] >= v.nodes[i - 1])
            abort();
    member_try(data, &v);
    lkh_rekey_view_clear(&v);
    return 0;
}
