/* The CSR web console's static files (daemons/prov/console/), embedded in cablekey-prov at
 * build time (CMake writes prov_generated/console_assets.c from the three files), so the
 * daemon serves them with no file access and no path taken from the request. */
#ifndef CABLEKEY_PROV_CONSOLE_H
#define CABLEKEY_PROV_CONSOLE_H

#include <stddef.h>

struct prov_asset {
    const char *path;           /* "/index.html", "/console.js", "/console.css" */
    const unsigned char *data;
    size_t len;
    const char *content_type;   /* with charset */
};

/* The asset for a request path ("/" is /index.html); NULL for any other path (the caller
 * answers 404). The query string must already be removed. The front adds
 * Content-Security-Policy: default-src 'self' (prov_console_csp) and X-Content-Type-Options:
 * nosniff to these answers. */
const struct prov_asset *prov_console_asset(const char *path);

/* The Content-Security-Policy header value for the console's answers. */
extern const char prov_console_csp[];

/* Generated (console_assets.c): the table of the embedded files. */
extern const struct prov_asset prov_console_assets[];
extern const size_t prov_console_n_assets;

#endif
