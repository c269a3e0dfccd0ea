/* The console's embedded files (daemons/prov/console.h): the paths served, nothing else, and the
 * properties the CSP relies on (no inline script or style, no external URL), checked on the
 * bytes the daemon really serves. */
#include <stdbool.h>
#include <string.h>

#include "ck_test.h"
#include "console.h"

/* needle in the asset's bytes (not NUL-terminated). */
static bool
has(const struct prov_asset *a, const char *needle)
{
    size_t n = strlen(needle);

    for (size_t i = 0; n <= a->len && i + n <= a->len; i++)
        if (memcmp(a->data + i, needle, n) == 0)
            return true;
    return false;
}

static void
test_paths(void)
{
    const struct prov_asset *a;

    CHECK((a = prov_console_asset("/")) != NULL);
    CHECK(a != NULL && strcmp(a->path, "/index.html") == 0);
    CHECK(a != NULL && strncmp(a->content_type, "text/html", 9) == 0);
    CHECK(prov_console_asset("/index.html") == a);
    CHECK((a = prov_console_asset("/console.js")) != NULL);
    CHECK(a != NULL && strncmp(a->content_type, "text/javascript", 15) == 0);
    CHECK((a = prov_console_asset("/console.css")) != NULL);
    CHECK(a != NULL && strncmp(a->content_type, "text/css", 8) == 0);
    CHECK(prov_console_asset(NULL) == NULL);
    CHECK(prov_console_asset("") == NULL);
    CHECK(prov_console_asset("/console.js/") == NULL);
    CHECK(prov_console_asset("/../console.js") == NULL);
    CHECK(prov_console_asset("console.js") == NULL);
    CHECK(prov_console_asset("/CONSOLE.JS") == NULL);
    CHECK(prov_console_asset("/api/v1/session") == NULL);
    CHECK_INT_EQ((long long)prov_console_n_assets, 3);
}

static void
test_csp_friendly(void)
{
    const struct prov_asset *html = prov_console_asset("/");
    const struct prov_asset *js = prov_console_asset("/console.js");

    CHECK(html != NULL && js != NULL);
    if (html == NULL || js == NULL)
        return;
    /* Every script is a file, every style a file: CSP default-src 'self' blocks inline ones. */
    CHECK(has(html, "<script src=\"/console.js\""));
    CHECK(!has(html, "<script>"));
    CHECK(!has(html, "<style"));
    CHECK(!has(html, "style=\""));
    CHECK(!has(html, " onclick="));
    CHECK(!has(html, " onsubmit="));
    /* Nothing fetched from elsewhere. */
    CHECK(!has(html, "http://") && !has(html, "https://") && !has(html, "//cdn"));
    CHECK(!has(js, "http://") && !has(js, "https://"));
    /* Values from the API reach the page as text only. */
    CHECK(!has(js, ".innerHTML") && !has(js, "eval(") && !has(js, "document.write"));
    /* The CSRF and idempotency headers of the API are sent. */
    CHECK(has(js, "X-CK-CSRF") && has(js, "Idempotency-Key"));
    CHECK(strstr(prov_console_csp, "default-src 'self'") != NULL);
    CHECK(strstr(prov_console_csp, "frame-ancestors 'none'") != NULL);
}

CK_TEST_MAIN("prov_console", CK_TEST_CASE(test_paths), CK_TEST_CASE(test_csp_friendly))
