/* provdev_stub: a device-channel server (include/cablekey/prov_wire.h, ck_provdev_serve) with
 * fixed answers, for tests/interop/t_mta_prov.sh: the real envelope, AP exchange and KRB-PRIV
 * under the prov/ service key from a keytab, but no customer database behind it.
 *   provdev_stub --listen ADDR:PORT --keytab KT --server prov/HOST@REALM
 *                [--cert DER]... [--cert-id N] [--check keep|drop] [--ready FILE]
 * FETCH answers the --cert files (the device's first, then its chain) with --cert-id (default
 * 1), or NO_CERT without --cert; ACK of that id is OK, of another NOTFOUND; CHECK answers the
 * --check instruction (default keep). UDP and TCP (4-byte length prefix), one request at a time.
 * One line per request on stdout: "provdev_stub: CLIENT FETCH|ACK|CHECK -> RESULT". Runs until
 * killed; --ready FILE is created once it listens. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cablekey/ap.h"
#include "cablekey/error.h"
#include "cablekey/keytab.h"
#include "cablekey/net.h"
#include "cablekey/prov_wire.h"
#include "cablekey/util.h"

#define MAX_CERTS CK_PROVDEV_MAX_CERTS

struct stub {
    uint8_t *certs[MAX_CERTS];
    size_t cert_lens[MAX_CERTS];
    size_t n_certs;
    int64_t cert_id;
    uint8_t instruction;
};

static int
usage(void)
{
    fprintf(stderr, "usage: provdev_stub --listen ADDR:PORT --keytab KT --server PRINCIPAL "
                    "[--cert DER]... [--cert-id N] [--check keep|drop] [--ready FILE]\n");
    return 2;
}

static int
read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(CK_PROVDEV_CERT_MAX + 1);
    size_t n;

    if (f == NULL || buf == NULL) {
        if (f != NULL)
            fclose(f);
        free(buf);
        return -1;
    }
    n = fread(buf, 1, CK_PROVDEV_CERT_MAX + 1, f);
    fclose(f);
    if (n == 0 || n > CK_PROVDEV_CERT_MAX) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int
handle(void *arg, const char *client, const ck_provdev_req *req, ck_provdev_rep *rep)
{
    const struct stub *s = arg;
    const char *type = req->type == CK_PROVDEV_FETCH ? "FETCH"
                       : req->type == CK_PROVDEV_ACK ? "ACK"
                       : req->type == CK_PROVDEV_CHECK ? "CHECK" : "?";

    rep->result = CK_PROVDEV_OK;
    if (req->type == CK_PROVDEV_FETCH) {
        if (s->n_certs == 0) {
            rep->result = CK_PROVDEV_NO_CERT;
        } else {
            rep->cert_id = s->cert_id;
            for (size_t i = 0; i < s->n_certs; i++) {
                if ((rep->certs[i] = ck_memdup(s->certs[i], s->cert_lens[i])) == NULL)
                    return CK_ERR_NOMEM;
                rep->cert_lens[i] = s->cert_lens[i];
                rep->n_certs = i + 1;
            }
        }
    } else if (req->type == CK_PROVDEV_ACK) {
        if (req->cert_id != s->cert_id || s->n_certs == 0)
            rep->result = CK_PROVDEV_NOTFOUND;
    } else if (req->type == CK_PROVDEV_CHECK) {
        rep->instruction = s->instruction;
    } else {
        rep->result = CK_PROVDEV_MALFORMED;
    }
    printf("provdev_stub: %s %s -> %s%s\n", client, type, ck_provdev_result_name(rep->result),
           req->type == CK_PROVDEV_CHECK
               ? (rep->instruction == CK_PROVDEV_DROP ? " DROP" : " KEEP") : "");
    fflush(stdout);
    return 0;
}

static int
bind_socket(int type, const struct sockaddr_storage *ss, socklen_t len)
{
    int one = 1, fd = socket(ss->ss_family, type | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 ||
        (type == SOCK_STREAM && listen(fd, 8) != 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int
read_full(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char *listen_spec = NULL, *kt_path = NULL, *server = NULL, *ready = NULL;
    struct stub s;
    ck_keytab *kt = NULL;
    ck_rcache *rc = NULL;
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char host[256], port_s[8];
    uint16_t port;
    int ufd, tfd;
    static uint8_t buf[CK_PROVDEV_MAX_MSG + 4];

    memset(&s, 0, sizeof(s));
    s.cert_id = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return usage();
        i++;
        if (strcmp(a, "--listen") == 0) {
            listen_spec = v;
        } else if (strcmp(a, "--keytab") == 0) {
            kt_path = v;
        } else if (strcmp(a, "--server") == 0) {
            server = v;
        } else if (strcmp(a, "--ready") == 0) {
            ready = v;
        } else if (strcmp(a, "--cert") == 0) {
            if (s.n_certs >= MAX_CERTS ||
                read_file(v, &s.certs[s.n_certs], &s.cert_lens[s.n_certs]) != 0) {
                fprintf(stderr, "provdev_stub: --cert %s: unreadable or too many\n", v);
                return 1;
            }
            s.n_certs++;
        } else if (strcmp(a, "--cert-id") == 0) {
            if (ck_parse_int64(v, 1, INT64_MAX, &s.cert_id) != 0)
                return usage();
        } else if (strcmp(a, "--check") == 0) {
            if (strcmp(v, "keep") != 0 && strcmp(v, "drop") != 0)
                return usage();
            s.instruction = strcmp(v, "drop") == 0 ? CK_PROVDEV_DROP : CK_PROVDEV_KEEP;
        } else {
            return usage();
        }
    }
    if (listen_spec == NULL || kt_path == NULL || server == NULL)
        return usage();
    if (ck_keytab_read(kt_path, &kt) != 0 || ck_rcache_new(4096, 600, &rc) != 0) {
        fprintf(stderr, "provdev_stub: %s: %s\n", kt_path, ck_error_context());
        return 1;
    }
    if (ck_net_parse_listen(listen_spec, CK_PROVDEV_PORT, host, sizeof(host), &port) != 0)
        return usage();
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(port_s, sizeof(port_s), "%u", port);
    if (getaddrinfo(host, port_s, &hints, &res) != 0 || res == NULL)
        return usage();
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    sslen = res->ai_addrlen;
    freeaddrinfo(res);
    if ((ufd = bind_socket(SOCK_DGRAM, &ss, sslen)) < 0 ||
        (tfd = bind_socket(SOCK_STREAM, &ss, sslen)) < 0) {
        fprintf(stderr, "provdev_stub: bind %s: %s\n", listen_spec, strerror(errno));
        return 1;
    }
    if (ready != NULL) {
        FILE *f = fopen(ready, "w");
        if (f != NULL)
            fclose(f);
    }
    for (;;) {
        struct pollfd pfd[2] = {{.fd = ufd, .events = POLLIN}, {.fd = tfd, .events = POLLIN}};
        uint8_t *out = NULL;
        size_t out_len = 0;
        int64_t now;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        ck_now(&now, NULL);
        if (pfd[0].revents & POLLIN) {
            struct sockaddr_storage from;
            socklen_t flen = sizeof(from);
            ssize_t n = recvfrom(ufd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
            if (n > 0 && ck_provdev_serve(buf, (size_t)n, ck_ap_keytab_key_fn, kt, server, rc,
                                          300, now, handle, &s, &out, &out_len) == 0) {
                sendto(ufd, out, out_len, 0, (struct sockaddr *)&from, flen);
            }
            free(out);
        }
        if (pfd[1].revents & POLLIN) {
            int c = accept4(tfd, NULL, NULL, SOCK_CLOEXEC);
            uint8_t hdr[4];
            uint32_t n;
            out = NULL;
            if (c < 0)
                continue;
            if (read_full(c, hdr, 4) == 0 && (n = ck_get_be32(hdr)) > 0 &&
                n <= CK_PROVDEV_MAX_MSG && read_full(c, buf, n) == 0 &&
                ck_provdev_serve(buf, n, ck_ap_keytab_key_fn, kt, server, rc, 300, now, handle,
                                 &s, &out, &out_len) == 0) {
                ck_put_be32(hdr, (uint32_t)out_len);
                if (ck_fd_write_all(c, hdr, 4) == 0)
                    (void)ck_fd_write_all(c, out, out_len);
            }
            free(out);
            close(c);
        }
    }
}
