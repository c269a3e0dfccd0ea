/* cablekey-cms and provisioning (issue 10): a client whose ticket carries the restricted-calls
 * element (prov_ad.h) may call only the numbers in it; everything else is refused as an unknown
 * number. Two controller cores wired together, fake endpoints, injected clock (call_world.h). */
#include <unistd.h>

#include "ck_test.h"
#include "call_world.h"
#include "cablekey/prov_ad.h"

enum { A = 0, A2 = 1, GW = 2, B = 3 };

static struct world w;

static void
restriction_for_a(ck_ad_restricted *r)
{
    static const uint8_t mac[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0xaa};

    memset(r, 0, sizeof(*r));
    memcpy(r->mac, mac, sizeof(mac));
    memset(r->key_sha256, 0x5a, sizeof(r->key_sha256));
    r->n_numbers = 2;
    ck_strlcpy(r->numbers[0], "5551002", sizeof(r->numbers[0]));   /* the CSR's line */
    ck_strlcpy(r->numbers[1], "911", sizeof(r->numbers[1]));
}

static void
test_restricted_refused_then_allowed(void)
{
    struct cms_call_stats st;
    ck_ad_restricted r;

    CHECK_OK(w_init(&w, false, true, 500, 4));
    restriction_for_a(&r);
    cms_call_set_restriction(w.core[0], "mta/a@R", &r);
    /* A number outside the list, reachable otherwise: refused like an unknown number. */
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[B].crcx, 0);
    CHECK(strcmp(w.ph[A].last_reason, "unknown-number") == 0);
    CHECK_INT_EQ(w_log_count(&w, 0, "to 5552001 result failed reason=unknown-number"), 1);
    cms_call_get_stats(w.core[0], &st);
    CHECK_INT_EQ(st.restricted_refused, 1);
    /* A prefix of an allowed number is not allowed. */
    CHECK_OK(w_ntfy(&w, A, "hu"));
    CHECK_OK(w_dial(&w, A, "555100"));
    w_pump(&w);
    cms_call_get_stats(w.core[0], &st);
    CHECK_INT_EQ(st.restricted_refused, 2);
    /* The CSR's number in the list: the call goes through. */
    CHECK_OK(w_ntfy(&w, A, "hu"));
    CHECK_OK(w_dial(&w, A, "5551002"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[A2].crcx, 1);
    cms_call_get_stats(w.core[0], &st);
    CHECK_INT_EQ(st.restricted_refused, 2);
    CHECK_OK(w_ntfy(&w, A, "hu"));
    w_pump(&w);
    /* A new SA from an unrestricted ticket lifts it. */
    cms_call_set_restriction(w.core[0], "mta/a@R", NULL);
    CHECK_OK(w_dial(&w, A, "5552001"));
    w_pump(&w);
    CHECK_INT_EQ(w.ph[B].crcx, 1);
    cms_call_get_stats(w.core[0], &st);
    CHECK_INT_EQ(st.restricted_refused, 2);
    /* Unknown clients and a NULL core are ignored. */
    cms_call_set_restriction(w.core[0], "mta/stranger@R", &r);
    cms_call_set_restriction(NULL, "mta/a@R", &r);
    w_fini(&w);
}

CK_TEST_MAIN("cms_prov", CK_TEST_CASE(test_restricted_refused_then_allowed))
