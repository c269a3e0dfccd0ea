/* The CLI's client of cablekey-prov's JSON API (docs/cablekey-prov.md), for `cablekey customer`
 * and the provisioning verbs of `cablekey device`: HTTP Negotiate with the user's Kerberos
 * ticket, as admin_remote.c does for cablekey-admind, with the same transport rules (https with
 * a verified certificate, or plain http to loopback only; never a proxy). */
#ifndef CABLEKEY_CLI_PROV_REMOTE_H
#define CABLEKEY_CLI_PROV_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define PROV_REMOTE_DEFAULT_PORT "8088"  /* cablekey-prov's default listener */

struct prov_client;

/* Opens a client for --server URL (https://HOST[:PORT], or http:// to loopback) and --ca FILE
 * (NULL: the system store). CLI_OK, or CLI_USAGE / CLI_FAIL with the message printed. */
int prov_client_open(const char *what, const char *url, const char *ca,
                     struct prov_client **out);
void prov_client_close(struct prov_client *c);

/* One request: method on path (already escaped, "/api/v1/..."), body a JSON value or NULL (not
 * stolen). POSTs and PATCHes carry Idempotency-Key idem (NULL: a fresh random key, so every run is its own
 * action; a script that retries passes the same key with --idempotency-key). On 2xx, CLI_OK and
 * *out the decoded answer (json_decref it; may be NULL for an empty answer). Otherwise
 * CLI_FAIL, with the API's error ({"error":{"code","field","message"}}) printed on stderr as
 * "cablekey: WHAT: MESSAGE (field F)". */
int prov_client_call(struct prov_client *c, const char *what, const char *method,
                     const char *path, json_t *body, const char *idem, json_t **out);

/* Checks an --idempotency-key value: [A-Za-z0-9._:-]{1,128}. */
bool prov_idem_key_valid(const char *k);

/* Options both families of provisioning verbs take (customer.c, device_prov.c); each returns
 * CLI_OK or a usage error (printed). */
/* --limit N: 1..CK_PROV_LIST_MAX. */
int prov_opt_limit(const char *what, const char *arg, int64_t *out);
/* --idempotency-key K: prov_idem_key_valid. */
int prov_opt_idem(const char *what, const char *arg, const char **out);
/* --services JSON: a JSON object (a new reference in *out). */
int prov_opt_services(const char *what, const char *arg, json_t **out);
/* Only the options a verb documents (allowed: " name name ") and all the required ones
 * (" name "): used[] says which options were given. */
struct prov_opt_use {
    bool set;
    const char *name;
};
int prov_opt_check(const char *what, const struct prov_opt_use *used, size_t n,
                   const char *allowed, const char *required);

/* s %-escaped for a URL path segment or query value; malloc'd, NULL when out of memory. */
char *prov_escape(const char *s);
/* "/api/v1/PREFIX/<escaped item>SUFFIX"; malloc'd, NULL when out of memory. */
char *prov_path(const char *prefix, const char *item, const char *suffix);

/* Printers, in the style of the other families: "Label: value" blocks for one record, tab
 * separated lines for lists. */
void prov_print_device(const json_t *d);
void prov_print_device_line(const json_t *d);
void prov_print_customer(const json_t *u);
void prov_print_customer_line(const json_t *u);
void prov_print_history(const json_t *events);
void prov_print_certs(const json_t *certs);

/* device_prov.c: the provisioning verbs of `cablekey device` (argv[0] is the verb). */
extern const char cli_device_prov_help[];
bool cli_device_prov_verb(const char *verb);
int cli_device_prov(int argc, char **argv);

#endif
