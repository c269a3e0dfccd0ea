/* prov_ad_read: reads the restricted-calls authorization data (prov_ad.h) out of a ticket in an
 * MIT ccache, as a service would: the ticket is opened with the service's keytab (test-only
 * program for tests/interop/t_kdc_unprov.sh).
 *
 *   prov_ad_read CCACHE KEYTAB SERVICE
 *
 * Prints "RESTRICTED mac=aa:bb:cc:dd:ee:ff key=<64 hex> numbers=611,911" or "UNRESTRICTED" and
 * exits 0; "ERROR: ..." and exit 1 when the ticket is missing, does not open, or the element is
 * malformed or repeated. Never prints keys. */
#include <stdio.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/endpoint.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/principal.h"
#include "cablekey/prov_ad.h"

static int
fail(const char *what)
{
    printf("ERROR: %s: %s\n", what, ck_error_context());
    return 1;
}

int
main(int argc, char **argv)
{
    ck_creds **creds = NULL;
    size_t n = 0;
    ck_keytab *kt = NULL;
    ck_principal *svc = NULL;
    CK_TICKET *t = NULL;
    CK_ENC_TICKET_PART *etp = NULL;
    const ck_keytab_entry *e;
    ck_ad_restricted ad;
    char name[512];
    bool found = false;
    int ret = 1;

    if (argc != 4) {
        fprintf(stderr, "usage: prov_ad_read CCACHE KEYTAB SERVICE@REALM\n");
        return 2;
    }
    if (ck_ccache_read(argv[1], &creds, &n, NULL) != 0) {
        ret = fail("ccache");
        goto out;
    }
    if (ck_keytab_read(argv[2], &kt) != 0) {
        ret = fail("keytab");
        goto out;
    }
    for (size_t i = 0; i < n && t == NULL; i++) {
        if (ck_principal_unparse_buf(creds[i]->server, 0, name, sizeof(name), NULL) != 0 ||
            strcmp(name, argv[3]) != 0)
            continue;
        if (ck_asn1_ticket_decode(creds[i]->ticket, creds[i]->ticket_len, &t) != 0) {
            ret = fail("ticket");
            goto out;
        }
        svc = NULL;
        if (ck_principal_parse(name, NULL, 0, &svc) != 0) {
            ret = fail("service name");
            goto out;
        }
    }
    if (t == NULL) {
        printf("ERROR: no ticket for %s in %s\n", argv[3], argv[1]);
        goto out;
    }
    e = ck_keytab_find(kt, svc, t->enc_part->kvno != NULL ? *t->enc_part->kvno : 0,
                       t->enc_part->etype);
    if (e == NULL) {
        printf("ERROR: no key for %s enctype %d in the keytab\n", argv[3],
               (int)t->enc_part->etype);
        goto out;
    }
    if (ck_ticket_open(t, &e->key, &etp) != 0) {
        ret = fail("ticket does not open with the keytab");
        goto out;
    }
    if (ck_ad_restricted_find(etp->authorization_data, &ad, &found) != 0) {
        ret = fail("restricted-calls element");
        goto out;
    }
    if (!found) {
        printf("UNRESTRICTED\n");
    } else {
        printf("RESTRICTED mac=%02x:%02x:%02x:%02x:%02x:%02x key=", ad.mac[0], ad.mac[1],
               ad.mac[2], ad.mac[3], ad.mac[4], ad.mac[5]);
        for (size_t i = 0; i < sizeof(ad.key_sha256); i++)
            printf("%02x", ad.key_sha256[i]);
        printf(" numbers=");
        for (size_t i = 0; i < ad.n_numbers; i++)
            printf("%s%s", i ? "," : "", ad.numbers[i]);
        printf("\n");
    }
    ret = 0;
out:
    CK_ENC_TICKET_PART_free(etp);
    CK_TICKET_free(t);
    ck_principal_free(svc);
    ck_keytab_free(kt);
    ck_ccache_creds_free(creds, n);
    return ret;
}
