/* The HTTP transport of the provisioning client (provclient.h): libcurl with HTTP Negotiate as
 * the first principal of the controller's keytab (provhttp.c). One object per thread. */
#ifndef CMS_PROVHTTP_H
#define CMS_PROVHTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct cms_prov_http;

/* url: provisioning_url (http:// or https://); ca_file: provisioning_ca or NULL (the system's
 * roots); keytab: the controller's; tag: a word telling this object's MEMORY: keytab and
 * ccache apart; stop: a flag that aborts a request in progress (may be NULL). Reads the keytab
 * now; curl_global_init must have been called. */
int cms_prov_http_new(const char *url, const char *ca_file, const char *keytab, const char *tag,
                      atomic_bool *stop, struct cms_prov_http **out);
void cms_prov_http_free(struct cms_prov_http *h);
/* The principal requests are authenticated as. */
const char *cms_prov_http_principal(const struct cms_prov_http *h);
/* struct cms_prov_transport.request; arg is the cms_prov_http. */
int cms_prov_http_request(void *arg, const char *method, const char *path, const char *body,
                          long timeout_s, long *status, char **answer, size_t *answer_len);

#endif
