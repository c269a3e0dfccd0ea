/* libFuzzer target: the provisioning device channel (prov_wire.h).
 *   - ck_provdev_req_decode / ck_provdev_rep_decode on the input: what decodes re-encodes to
 *     the same bytes (the reply's text is sanitised on decode: compared around it);
 *   - ck_provdev_serve against a fixed keytab (prov/prov.test@TEST.REALM): whatever it answers
 *     parses as a reply frame of version 0xCB02.
 * Seeds: tests/fuzz/corpus/provdev/ (inner encodings written by `mtafqdn_pcap OUT --seeds`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/kpasswd.h"
#include "cablekey/log.h"
#include "cablekey/principal.h"
#include "cablekey/prov_wire.h"
#include "cablekey/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SERVICE "prov/prov.test@TEST.REALM"

static ck_keytab *kt;
static ck_rcache *rc;

static int
handle(void *arg, const char *client, const ck_provdev_req *req, ck_provdev_rep *rep)
{
    (void)arg;
    (void)client;
    rep->instruction = req->type == CK_PROVDEV_CHECK ? CK_PROVDEV_DROP : CK_PROVDEV_KEEP;
    return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ck_principal *p = NULL;
    ck_key key;

    (void)argc;
    (void)argv;
    ck_log_set_level(LOG_ERR);
    if (ck_random_key(CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96, &key) != 0 || ck_keytab_new(&kt) != 0 ||
        ck_principal_parse(SERVICE, NULL, 0, &p) != 0 || ck_keytab_add(kt, p, 1, 0, &key) != 0 ||
        ck_rcache_new(0, 600, &rc) != 0)
        abort();
    ck_key_clear(&key);
    ck_principal_free(p);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ck_provdev_req req;
    ck_provdev_rep rep;
    ck_kpasswd_rep fr;
    uint8_t *enc = NULL, *out = NULL;
    size_t len = 0, out_len = 0;

    if (ck_provdev_req_decode(data, size, &req) == 0) {
        if (ck_provdev_req_encode(&req, &enc, &len) != 0 || len != size ||
            memcmp(enc, data, size) != 0)
            abort();
        free(enc);
    }
    if (ck_provdev_rep_decode(data, size, &rep) == 0) {
        size_t tl = strlen(rep.text);

        if (ck_provdev_rep_encode(&rep, &enc, &len) != 0 || len != size ||
            memcmp(enc, data, 4) != 0 || memcmp(enc + 4 + tl, data + 4 + tl, size - 4 - tl) != 0)
            abort();
        free(enc);
        ck_provdev_rep_clear(&rep);
    }
    if (ck_provdev_serve(data, size, ck_ap_keytab_key_fn, kt, SERVICE, rc, 300, time(NULL),
                         handle, NULL, &out, &out_len) == 0) {
        if (out == NULL || ck_kpasswd_rep_parse(out, out_len, &fr) != 0 ||
            (!fr.is_error && fr.version != CK_PROVDEV_VERSION))
            abort();
        free(out);
    } else if (out != NULL) {
        abort();
    }
    ck_error_clear();
    return 0;
}
