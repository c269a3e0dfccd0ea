/* The build split's witness (tests/interop/t_build_split.sh): linked with libcablekey_endpoint
 * alone, it reaches into every endpoint module, so a dependency of the endpoint set on server
 * code (the store, the daemon layer, the network server) fails this link. It also does a little
 * work with what it links, so a broken endpoint library cannot pass by linking dead code:
 * prints "endpoint linkcheck: ok" and exits 0, or says what failed and exits 1. */
#include <stdio.h>
#include <string.h>

#include "cablekey/ap.h"
#include "cablekey/client.h"
#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/krb5_asn1.h"
#include "cablekey/net.h"
#include "cablekey/pki.h"
#include "cablekey/pkinit_client.h"
#include "cablekey/safepriv.h"
#include "cablekey/util.h"

typedef void (*any_fn)(void);

/* Entry points the link must resolve without running them (they need a KDC or files). */
static volatile any_fn linked[] = {
    (any_fn)ck_kdc_send,         (any_fn)ck_client_as_password, (any_fn)ck_client_tgs,
    (any_fn)ck_client_as_pkinit, (any_fn)ck_pki_identity_load,  (any_fn)ck_keytab_read,
    (any_fn)ck_ap_req_verify,    (any_fn)ck_krb_priv_read,      (any_fn)ck_ccache_write,
};

static int
fail(const char *what)
{
    fprintf(stderr, "endpoint linkcheck: %s failed: %s\n", what, ck_error_context());
    return 1;
}

int
main(void)
{
    static const uint8_t tag[] = {1, 2, 3};
    struct ck_peer peer;
    ck_rcache *rc = NULL;
    ck_key key;
    uint8_t ct[128];
    size_t ct_len = 0;
    char host[64], buf[CK_NET_ADDRSTRLEN];
    uint16_t port = 0;
    int ret = 1;

    ck_key_clear(&key);
    if (linked[0] == NULL || ck_krb_tcp_framing.parse == NULL)
        return fail("link");
    if (ck_net_parse_listen("127.0.0.1:1293", 88, host, sizeof(host), &port) != 0 || port != 1293)
        return fail("ck_net_parse_listen");
    ck_peer_set(&peer, NULL, 0);
    if (strcmp(ck_peer_format(&peer, buf, sizeof(buf)), "-") != 0)
        return fail("ck_peer_format");
    if (ck_random_key(CK_ENCTYPE_AES128_CTS_HMAC_SHA256_128, &key) != 0)
        return fail("ck_random_key");
    if (ck_encrypt_length(key.enctype, sizeof(tag)) > sizeof(ct) ||
        ck_encrypt(&key, 1, tag, sizeof(tag), ct, sizeof(ct), &ct_len) != 0)
        goto out_fail;
    if (ck_rcache_new(1, 600, &rc) != 0 ||
        ck_rcache_check_and_store(rc, "a@R", "s@R", 1, 0, ct, ct_len, 100) != 0 ||
        ck_rcache_check_and_store(rc, "a@R", "s@R", 1, 0, ct, ct_len, 100) != CK_ERR_REPLAY)
        goto out_fail;
    if (ck_asn1_msg_type(tag, sizeof(tag)) >= 0)
        goto out_fail;
    printf("endpoint linkcheck: ok\n");
    ret = 0;
    goto out;
out_fail:
    ret = fail("crypto/rcache/asn1");
out:
    ck_rcache_free(rc);
    ck_key_clear(&key);
    return ret;
}
