/* Fuzzes what an endpoint takes from the network and from disk: the signaling first-line parser,
 * the ccache parser, and whole datagrams handed to an endpoint with an AP Request outstanding,
 * as if from the CMS's KMM port and from its ESP port. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/endpoint.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ck_creds *creds;

static int
drop(void *arg, const struct sockaddr *to, socklen_t to_len, const uint8_t *buf, size_t len)
{
    (void)arg;
    (void)to;
    (void)to_len;
    (void)buf;
    (void)len;
    return 0;
}

/* A ticket for cms/cms.test under a random service key nobody keeps: enough for the endpoint. */
static ck_creds *
make_creds(void)
{
    static const char *const svc[] = {"cms", "cms.test"};
    static const char *const mta[] = {"mta1"};
    CK_ENC_TICKET_PART *etp = CK_ENC_TICKET_PART_new();
    CK_TICKET *tkt = CK_TICKET_new();
    ck_creds *c = calloc(1, sizeof(*c));
    ck_key sk;
    uint8_t *der = NULL;
    size_t der_len = 0;

    if (etp == NULL || tkt == NULL || c == NULL ||
        ck_random_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, &sk) != 0 ||
        ck_random_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96, &c->session_key) != 0 ||
        ck_asn1_flags_set(&etp->flags, 0) != 0 || ck_key_to_asn1(&c->session_key, &etp->key) != 0 ||
        ck_asn1_kstring_set(&etp->crealm, "R") != 0 ||
        ck_asn1_principal_set(etp->cname, 1, mta, 1) != 0 ||
        ck_asn1_time_set(&etp->authtime, 1000000000) != 0 ||
        ck_asn1_time_set(&etp->endtime, 4000000000) != 0 ||
        ck_asn1_kstring_set(&tkt->realm, "R") != 0 ||
        ck_asn1_principal_set(tkt->sname, 2, svc, 2) != 0 ||
        ck_ticket_seal(tkt, etp, &sk, 1) != 0 || ck_asn1_ticket_encode(tkt, &der, &der_len) != 0 ||
        ck_principal_build("R", 1, mta, 1, &c->client) != 0 ||
        ck_principal_build("R", 2, svc, 2, &c->server) != 0)
        abort();
    c->ticket = ck_memdup(der, der_len);
    c->ticket_len = der_len;
    c->endtime = 4000000000;
    ck_asn1_free_der(der, der_len);
    CK_TICKET_free(tkt);
    CK_ENC_TICKET_PART_free(etp);
    ck_key_clear(&sk);
    return c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ck_endpoint_signal sig;
    struct ck_endpoint_cms cms;
    struct ck_endpoint_params p;
    struct sockaddr_in from;
    ck_endpoint *ep = NULL;
    ck_creds **list = NULL;
    size_t n = 0;
    int64_t now = 1700000000000;

    (void)ck_endpoint_signal_parse(data, size, &sig);
    if (ck_ccache_parse(data, size, &list, &n, NULL) == 0)
        ck_ccache_creds_free(list, n);

    if (creds == NULL)
        creds = make_creds();
    memset(&cms, 0, sizeof(cms));
    memset(&from, 0, sizeof(from));
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    from.sin_port = htons(1293);
    memcpy(&cms.kmm, &from, sizeof(from));
    cms.kmm_len = sizeof(from);
    memset(&p, 0, sizeof(p));
    p.creds = creds;
    p.cms = &cms;
    p.n_cms = 1;
    p.send = drop;
    if (ck_endpoint_new(&p, &ep) != 0 || ck_endpoint_start(ep, now) != 0)
        abort();
    (void)ck_endpoint_on_datagram(ep, data, size, (struct sockaddr *)&from, sizeof(from), now);
    from.sin_port = htons(CK_ENDPOINT_DEFAULT_SIG_PORT);
    (void)ck_endpoint_on_datagram(ep, data, size, (struct sockaddr *)&from, sizeof(from), now);
    (void)ck_endpoint_on_timer(ep, now + 5000);
    ck_endpoint_free(ep);
    return 0;
}
