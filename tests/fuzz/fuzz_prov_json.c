/* Fuzzes cablekey-prov's API input decoders (api.c): the first byte picks a route (every
 * device action, customer add/modify, the device report, the console login), the rest is the
 * request body; a second pass feeds the same bytes as query values. Every input must end in a
 * message for the back or a 4xx error naming what was wrong, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *method, *path;
} routes[] = {
    {"POST", "/api/v1/devices/00:11:22:33:44:55/provision"},
    {"POST", "/api/v1/devices/00:11:22:33:44:55/change-service"},
    {"POST", "/api/v1/devices/00:11:22:33:44:55/deprovision"},
    {"POST", "/api/v1/devices/00:11:22:33:44:55/move"},
    {"POST", "/api/v1/devices/00:11:22:33:44:55/repair"},
    {"POST", "/api/v1/devices/00:11:22:33:44:55/return"},
    {"POST", "/api/v1/devices/00:11:22:33:44:55/loaner"},
    {"POST", "/api/v1/devices/00:11:22:33:44:55/revoke"},
    {"POST", "/api/v1/devices/report"},
    {"POST", "/api/v1/customers"},
    {"PATCH", "/api/v1/customers/9"},
    {"GET", "/api/v1/devices"},
    {"GET", "/api/v1/customers"},
    {"GET", "/api/v1/lines"},
    {"GET", "/api/v1/webhooks/deliveries"},
};

static const char *
query_all(void *arg, const char *key)
{
    (void)key;
    return arg;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct prov_route rt;
    char why[256], *text, *principal = NULL, *password = NULL, field[64];
    json_t *msg = NULL, *err = NULL;
    size_t pick;
    int st;

    if (size < 1 || size > 64 * 1024)
        return 0;
    pick = data[0] % (sizeof(routes) / sizeof(routes[0]) + 1);
    if ((text = malloc(size)) == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (pick == sizeof(routes) / sizeof(routes[0])) {
        st = prov_api_login_body(text, size - 1, &principal, &password, field, sizeof(field), why,
                                 sizeof(why));
        if (st == 0 && (principal == NULL || password == NULL))
            abort();
        free(principal);
        free(password);
        free(text);
        return 0;
    }
    if (prov_route(routes[pick].method, routes[pick].path, &rt, why, sizeof(why)) != 0)
        abort();
    st = prov_api_build(&rt, "fuzz@R", query_all, rt.body ? NULL : text,
                        rt.body ? text : NULL, rt.body ? size - 1 : 0,
                        (data[0] & 0x80) != 0 ? "fuzz-key" : NULL, &msg, &err);
    if ((st == 0) != (msg != NULL) || (st != 0 && (st < 400 || st > 499 || err == NULL)))
        abort();
    json_decref(msg);
    json_decref(err);
    /* The path decoder with the bytes as a path (NUL-terminated). */
    (void)prov_route("GET", text, &rt, why, sizeof(why));
    free(text);
    return 0;
}
