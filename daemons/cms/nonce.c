/* The server nonce of a server-started exchange (Wake Up, Rekey), kept stateless as CONTRACT7
 * fixes it: an HMAC of the endpoint address and the time window under a secret made at start, so
 * checking an echoed nonce needs no table, and a restart (new secret) only costs the endpoints
 * one more round trip (their AP-REQ is refused, they start over with nonce 0 or the next Wake
 * Up). */
#include <string.h>

#include <openssl/evp.h>

#include "cablekey/crypto.h"
#include "cablekey/error.h"
#include "cablekey/util.h"
#include "cms.h"

#define NONCE_LABEL "cablekey kmm nonce"

int
cms_nonce_init(struct cms_nonce *n, int64_t window)
{
    if (window <= 0)
        return ck_error_set(CK_ERR_INVAL, "nonce window %lld", (long long)window);
    n->window = window;
    return ck_random_bytes(n->secret, sizeof(n->secret));
}

uint32_t
cms_nonce_make(const struct cms_nonce *n, const struct cms_addr *ep, int64_t epoch)
{
    uint8_t msg[sizeof(NONCE_LABEL) - 1 + 8 + 16 + 2], mac[EVP_MAX_MD_SIZE];
    size_t len = 0, alen = ep->family == 4 ? 4 : 16, mac_len = 0;
    uint32_t v;

    memcpy(msg, NONCE_LABEL, sizeof(NONCE_LABEL) - 1);
    len = sizeof(NONCE_LABEL) - 1;
    for (int i = 0; i < 8; i++)
        msg[len++] = (uint8_t)((uint64_t)epoch >> (56 - 8 * i));
    memcpy(msg + len, ep->addr, alen);
    len += alen;
    msg[len++] = (uint8_t)(ep->port >> 8);
    msg[len++] = (uint8_t)ep->port;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, n->secret, sizeof(n->secret), msg, len,
                  mac, sizeof(mac), &mac_len) == NULL || mac_len < 4)
        return 1; /* never matches a real nonce by chance more than any other value */
    v = (uint32_t)mac[0] << 24 | (uint32_t)mac[1] << 16 | (uint32_t)mac[2] << 8 | mac[3];
    ck_memzero(mac, sizeof(mac));
    return v == 0 ? 1 : v;
}

static int64_t
epoch_of(const struct cms_nonce *n, int64_t now)
{
    return now >= 0 ? now / n->window : -((-now + n->window - 1) / n->window);
}

uint32_t
cms_nonce_for(const struct cms_nonce *n, const struct cms_addr *ep, int64_t now)
{
    return cms_nonce_make(n, ep, epoch_of(n, now));
}

bool
cms_nonce_check(const struct cms_nonce *n, const struct cms_addr *ep, uint32_t nonce,
                int64_t now)
{
    int64_t e = epoch_of(n, now);
    uint32_t a = cms_nonce_make(n, ep, e), b = cms_nonce_make(n, ep, e - 1);

    /* Both computed: the time taken says nothing about which one matched. */
    return (int)(a == nonce) | (int)(b == nonce);
}
