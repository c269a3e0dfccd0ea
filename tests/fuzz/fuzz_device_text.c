/* Fuzzes the device table's text parsers, which see attacker-chosen input (a MAC address from a
 * certificate subject; operator input): MAC normalisation, key-pin hex and the comment check.
 * Whatever is accepted must be canonical and round-trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), mac[CK_DEVICE_MAC_LEN + 1], again[CK_DEVICE_MAC_LEN + 1];
    char hex[2 * CK_DEVICE_SPKI_HASH_LEN + 1];
    uint8_t pin[CK_DEVICE_SPKI_HASH_LEN], pin2[CK_DEVICE_SPKI_HASH_LEN];

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (ck_device_mac_parse(text, mac) == 0) {
        if (strlen(mac) != CK_DEVICE_MAC_LEN || strspn(mac, "0123456789abcdef:") != 17 ||
            ck_device_mac_parse(mac, again) != 0 || strcmp(mac, again) != 0)
            abort();
        for (int i = 2; i < CK_DEVICE_MAC_LEN; i += 3)
            if (mac[i] != ':')
                abort();
    }
    if (ck_device_pin_parse_hex(text, pin) == 0) {
        ck_device_pin_format_hex(pin, hex);
        if (ck_device_pin_parse_hex(hex, pin2) != 0 || memcmp(pin, pin2, sizeof(pin)) != 0)
            abort();
    }
    if (ck_device_comment_check(text) == 0) {
        if (strlen(text) > CK_DEVICE_COMMENT_MAX)
            abort();
        for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
            if (*p < 0x20 || *p == 0x7f)
                abort();
    }
    free(text);
    return 0;
}
