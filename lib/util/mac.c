/* Ethernet MAC addresses as operators write them. One syntax for the whole project: the device
 * table, certificate subjects and the CLI all accept exactly these forms, so a MAC that one
 * component takes is never refused by another. */
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/util.h"

int
ck_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
ck_mac_parse(const char *text, uint8_t mac[CK_MAC_LEN])
{
    size_t n, step;
    char sep = '\0';

    if (text == NULL)
        return ck_error_set(CK_ERR_INVAL, "no MAC address");
    /* The input is not echoed: it may come from a certificate and end up in a log line. */
    n = strnlen(text, CK_MAC_TEXT);
    if (n == 2 * CK_MAC_LEN) {
        step = 2;
    } else if (n == CK_MAC_TEXT - 1 && (text[2] == ':' || text[2] == '-')) {
        sep = text[2];
        step = 3;
    } else {
        goto bad;
    }
    for (size_t i = 0; i < CK_MAC_LEN; i++) {
        const char *g = text + i * step;
        int hi = ck_hex_digit((unsigned char)g[0]), lo = ck_hex_digit((unsigned char)g[1]);

        if (hi < 0 || lo < 0 || (sep != '\0' && i + 1 < CK_MAC_LEN && g[2] != sep))
            goto bad;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
bad:
    memset(mac, 0, CK_MAC_LEN);
    return ck_error_set(CK_ERR_INVAL, "malformed MAC address (use aa:bb:cc:dd:ee:ff, "
                                      "aa-bb-cc-dd-ee-ff or aabbccddeeff)");
}

void
ck_mac_format(const uint8_t mac[CK_MAC_LEN], char out[CK_MAC_TEXT])
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < CK_MAC_LEN; i++) {
        out[3 * i] = digits[mac[i] >> 4];
        out[3 * i + 1] = digits[mac[i] & 0xf];
        out[3 * i + 2] = i + 1 < CK_MAC_LEN ? ':' : '\0';
    }
}

int
ck_mac_canonical(const char *text, char out[CK_MAC_TEXT])
{
    uint8_t mac[CK_MAC_LEN];
    int ret;

    out[0] = '\0';
    if ((ret = ck_mac_parse(text, mac)) != 0)
        return ret;
    ck_mac_format(mac, out);
    return 0;
}
