/* Pieces shared by the daemons' HTTP fronts (cablekey-admind, cablekey-prov): listen addresses,
 * URL decoding, libmicrohttpd's log (lib/admin/httpd.c). */
#ifndef CABLEKEY_ADMIN_HTTPD_H
#define CABLEKEY_ADMIN_HTTPD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Resolves one listen entry ("127.0.0.1", "[::1]:8088", ...): numeric addresses only (a name
 * could resolve to something else at the next start). Without tls a non-loopback address is
 * refused (CK_ERR_CONFIG), the message ending with cleartext_why. */
int ck_admin_listen_resolve(const char *spec, uint16_t default_port, bool tls,
                            const char *cleartext_why, struct sockaddr_storage *ss,
                            socklen_t *sslen);
/* A listening TCP socket (close-on-exec, SO_REUSEADDR, v6-only for IPv6). */
int ck_admin_listen_bind(const struct sockaddr_storage *ss, socklen_t sslen, int *fd_out);
/* Decodes %XX in place; -1 on a bad escape or an encoded NUL. */
int ck_admin_pct_decode(char *s);
/* MHD_OPTION_EXTERNAL_LOGGER: libmicrohttpd's messages to our log (info), control characters
 * replaced. */
void ck_admin_mhd_log(void *cls, const char *fmt, va_list ap);

#endif
