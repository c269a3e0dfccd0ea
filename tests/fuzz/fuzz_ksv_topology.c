/* Fuzzes the KSV's secure-topology parser from memory (lib/ksvtopo): the line parser, the
 * resolution pass (sorting, conflict detection), then, on a topology that parses, every node's
 * expansion and the reload diff against itself (which must be empty) and against nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/ksv_topology.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_ksvtopo *t = NULL;
    struct ck_ksvtopo_report rep;
    struct ck_ksvtopo_diff d;

    if (ck_ksvtopo_parse((const char *)data, size, "fuzz.conf", &t, &rep) != 0)
        return 0;
    for (size_t i = 0; i < ck_ksvtopo_n_nodes(t); i++) {
        const struct ck_ksvtopo_node *n = ck_ksvtopo_node_at(t, i);
        struct ck_ksvtopo_view v;
        if (ck_ksvtopo_node_view(t, n->name, &v) != 0)
            abort();
        for (size_t j = 0; j < v.n_sa; j++)
            if (v.sa[j].peer == NULL || v.sa[j].policy == NULL || v.sa[j].peer == n)
                abort();
        for (size_t j = 0; j < v.n_groups; j++)
            if (v.groups[j].group->policy == NULL)
                abort();
        (void)ck_ksvtopo_may_register(t, n->name, "ksv");
    }
    if (ck_ksvtopo_diff(t, t, &d) == 0) {
        if (d.n != 0)
            abort();
        ck_ksvtopo_diff_free(&d);
    }
    if (ck_ksvtopo_diff(NULL, t, &d) == 0)
        ck_ksvtopo_diff_free(&d);
    ck_ksvtopo_free(t);
    return 0;
}
