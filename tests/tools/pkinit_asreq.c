/* pkinit_asreq: sends one PKINIT AS-REQ (RFC or PacketCable form, with the faults the negative
 * tests need) to a KDC over TCP and reports the outcome, for tests/interop/t_pkinit_*.sh. Stock
 * clients cannot send the PacketCable draft forms or a malformed AuthPack; this can.
 *
 *   pkinit_asreq --kdc HOST:PORT --realm R --principal NAME --identity FILE.p12|FILE:cert,key
 *                [--password-file F] [--form rfc|rfc-pcsig|pktc|pktc-explicit|draft9]
 *                [--group modp2048|modp3072|modp4096|P-256|P-384|rsa] [--kdc-anchors PEM]
 *                [--freshness] [--ctime-offset SECONDS] [--nonce-mismatch] [--no-checksum]
 *                [--bad-checksum] [--corrupt signature|cms|authpack|padata] [--prov-srv NAME]
 *                [--freshness-wait SECONDS] [--now EPOCH] [--out FILE]
 *
 * Output and exit status: "ISSUE <client> etype <n>" and 0 when the AS-REP opened with the
 * derived reply key (KDC chain checked against --kdc-anchors if given); "KRB-ERROR <code>" and
 * 3 for a KRB-ERROR; a message on stderr and 1 for anything else. --out writes the AS-REQ to a
 * file and sends nothing (fuzz seeds). */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cablekey/pki.h"
#include "pkinit_asreq.h"

#define MAX_REPLY (1024 * 1024)
#define TIMEOUT_MS 10000

static int
io_all(int fd, uint8_t *buf, size_t len, bool writing)
{
    size_t done = 0;

    while (done < len) {
        struct pollfd p = {fd, writing ? POLLOUT : POLLIN, 0};
        ssize_t r;

        if (poll(&p, 1, TIMEOUT_MS) <= 0)
            return -1;
        r = writing ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

/* One request over TCP (RFC 4120 §7.2.2 framing); *rep is malloc'd. */
static int
send_tcp(const char *hostport, const uint8_t *req, size_t len, uint8_t **rep, size_t *rep_len)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    struct addrinfo hints, *ai = NULL;
    uint8_t hdr[4];
    uint32_t n;
    int fd = -1, rc = -1;

    *rep = NULL;
    if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host)) {
        fprintf(stderr, "pkinit_asreq: --kdc wants HOST:PORT\n");
        return -1;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL) {
        fprintf(stderr, "pkinit_asreq: cannot resolve %s\n", hostport);
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "pkinit_asreq: connect %s: %s\n", hostport, strerror(errno));
        goto out;
    }
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
    if (io_all(fd, hdr, 4, true) != 0 || io_all(fd, (uint8_t *)req, len, true) != 0 ||
        io_all(fd, hdr, 4, false) != 0) {
        fprintf(stderr, "pkinit_asreq: exchange with %s failed\n", hostport);
        goto out;
    }
    n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (n == 0 || n > MAX_REPLY || (*rep = malloc(n)) == NULL || io_all(fd, *rep, n, false) != 0) {
        fprintf(stderr, "pkinit_asreq: bad reply from %s\n", hostport);
        free(*rep);
        *rep = NULL;
        goto out;
    }
    *rep_len = n;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return rc;
}

static void
usage(void)
{
    fprintf(stderr, "usage: pkinit_asreq --kdc HOST:PORT --realm R --principal NAME --identity "
                    "SPEC [--password-file F] [--form rfc|rfc-pcsig|pktc|pktc-explicit|draft9] "
                    "[--group modp2048|modp3072|modp4096|P-256|P-384|rsa] [--kdc-anchors PEM] "
                    "[--freshness] [--ctime-offset S] [--nonce-mismatch] [--no-checksum] "
                    "[--bad-checksum] [--corrupt signature|cms|authpack|padata] "
                    "[--prov-srv NAME] [--freshness-wait S] [--now EPOCH] [--out FILE]\n");
}

static bool
parse_group(const char *s, ck_pkinit_group *g)
{
    static const struct {
        const char *name;
        ck_pkinit_group g;
    } groups[] = {{"modp2048", CK_PKINIT_GROUP_MODP2048}, {"modp3072", CK_PKINIT_GROUP_MODP3072},
                  {"modp4096", CK_PKINIT_GROUP_MODP4096}, {"P-256", CK_PKINIT_GROUP_P256},
                  {"P-384", CK_PKINIT_GROUP_P384},       {"rsa", CK_PKINIT_GROUP_NONE}};

    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
        if (strcmp(s, groups[i].name) == 0) {
            *g = groups[i].g;
            return true;
        }
    return false;
}

static bool
parse_form(const char *s, enum pk_form *f)
{
    static const struct {
        const char *name;
        enum pk_form f;
    } forms[] = {{"rfc", PK_FORM_RFC},          {"rfc-pcsig", PK_FORM_RFC_PCSIG},
                 {"pktc", PK_FORM_PKTC_IMPLICIT}, {"pktc-explicit", PK_FORM_PKTC_EXPLICIT},
                 {"draft9", PK_FORM_DRAFT9}};

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
        if (strcmp(s, forms[i].name) == 0) {
            *f = forms[i].f;
            return true;
        }
    return false;
}

/* Asks for the offers (an AS-REQ without padata) and keeps the PA-AS-FRESHNESS token. */
static int
fetch_freshness(const char *kdc, const struct pk_opts *o, uint8_t **tok, size_t *tok_len)
{
    struct pk_state st;
    CK_AS_REQ *req = NULL;
    CK_KRB_ERROR_MSG *e = NULL;
    CK_METHOD_DATA *md = NULL;
    const CK_PA_DATA *pa;
    uint8_t *der = NULL, *rep = NULL;
    size_t len = 0, rep_len = 0;
    int rc = -1;

    *tok = NULL;
    if (pk_build(o, &st) != 0 || ck_asn1_as_req_decode(st.req, st.req_len, &req) != 0)
        goto out;
    sk_CK_PA_DATA_pop_free(req->padata, CK_PA_DATA_free);
    req->padata = NULL;
    if (ck_asn1_as_req_encode(req, &der, &len) != 0 ||
        send_tcp(kdc, der, len, &rep, &rep_len) != 0 ||
        ck_asn1_krb_error_decode(rep, rep_len, &e) != 0 || e->e_data == NULL ||
        ck_asn1_method_data_decode(e->e_data->data, (size_t)e->e_data->length, &md) != 0 ||
        (pa = ck_asn1_padata_find(md, CK_PA_AS_FRESHNESS)) == NULL) {
        fprintf(stderr, "pkinit_asreq: no freshness token offered\n");
        goto out;
    }
    *tok_len = (size_t)pa->padata_value->length;
    *tok = OPENSSL_memdup(pa->padata_value->data, *tok_len);
    rc = *tok != NULL ? 0 : -1;
out:
    CK_METHOD_DATA_free(md);
    CK_KRB_ERROR_MSG_free(e);
    free(rep);
    ck_asn1_free_der(der, len);
    CK_AS_REQ_free(req);
    pk_state_free(&st);
    return rc;
}

int
main(int argc, char **argv)
{
    enum {
        O_KDC = 256, O_REALM, O_PRINCIPAL, O_IDENTITY, O_PWFILE, O_FORM, O_GROUP, O_ANCHORS,
        O_FRESH, O_CTIME, O_NONCE, O_NOCK, O_BADCK, O_CORRUPT, O_PROV, O_NOW, O_OUT, O_FWAIT
    };
    static const struct option longopts[] = {
        {"kdc", required_argument, NULL, O_KDC},
        {"realm", required_argument, NULL, O_REALM},
        {"principal", required_argument, NULL, O_PRINCIPAL},
        {"identity", required_argument, NULL, O_IDENTITY},
        {"password-file", required_argument, NULL, O_PWFILE},
        {"form", required_argument, NULL, O_FORM},
        {"group", required_argument, NULL, O_GROUP},
        {"kdc-anchors", required_argument, NULL, O_ANCHORS},
        {"freshness", no_argument, NULL, O_FRESH},
        {"freshness-wait", required_argument, NULL, O_FWAIT},
        {"ctime-offset", required_argument, NULL, O_CTIME},
        {"nonce-mismatch", no_argument, NULL, O_NONCE},
        {"no-checksum", no_argument, NULL, O_NOCK},
        {"bad-checksum", no_argument, NULL, O_BADCK},
        {"corrupt", required_argument, NULL, O_CORRUPT},
        {"prov-srv", required_argument, NULL, O_PROV},
        {"now", required_argument, NULL, O_NOW},
        {"out", required_argument, NULL, O_OUT},
        {NULL, 0, NULL, 0},
    };
    const char *kdc = NULL, *identity = NULL, *pwfile = NULL, *anchors_pem = NULL, *out = NULL;
    struct pk_opts o;
    struct pk_state st;
    ck_pki_identity *id = NULL;
    ck_pkinit_anchors *anchors = NULL;
    char *password = NULL;
    uint8_t *rep = NULL, *fresh = NULL;
    size_t rep_len = 0, fresh_len = 0;
    CK_KRB_ERROR_MSG *err = NULL;
    CK_KDC_REP *kr = NULL;
    CK_ENC_KDC_REP_PART *part = NULL;
    ck_key key;
    int64_t offset = 0, now, fresh_wait = 0;
    int32_t usec;
    bool want_fresh = false, fixed_now = false;
    int c, status = 1;

    memset(&o, 0, sizeof(o));
    memset(&st, 0, sizeof(st));
    ck_key_clear(&key);
    o.group = CK_PKINIT_GROUP_MODP2048;
    now = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_KDC: kdc = optarg; break;
        case O_REALM: o.realm = optarg; break;
        case O_PRINCIPAL: o.cname = optarg; break;
        case O_IDENTITY: identity = optarg; break;
        case O_PWFILE: pwfile = optarg; break;
        case O_FORM:
            if (!parse_form(optarg, &o.form)) {
                usage();
                return 2;
            }
            break;
        case O_GROUP:
            if (!parse_group(optarg, &o.group)) {
                usage();
                return 2;
            }
            break;
        case O_ANCHORS: anchors_pem = optarg; break;
        case O_FRESH: want_fresh = true; break;
        case O_FWAIT:
            if (ck_parse_int64(optarg, 0, 600, &fresh_wait) != 0) {
                usage();
                return 2;
            }
            want_fresh = true;
            break;
        case O_CTIME:
            if (ck_parse_int64(optarg, -100000000, 100000000, &offset) != 0) {
                usage();
                return 2;
            }
            break;
        case O_NONCE: o.authpack_nonce = 0x0badc0deu; break;
        case O_NOCK: o.no_checksum = true; break;
        case O_BADCK: o.bad_checksum = true; break;
        case O_CORRUPT:
            if (strcmp(optarg, "signature") == 0)
                o.corrupt = PK_CORRUPT_SIGNATURE;
            else if (strcmp(optarg, "cms") == 0)
                o.corrupt = PK_CORRUPT_CMS;
            else if (strcmp(optarg, "authpack") == 0)
                o.corrupt = PK_CORRUPT_AUTHPACK;
            else if (strcmp(optarg, "padata") == 0)
                o.corrupt = PK_CORRUPT_PADATA;
            else {
                usage();
                return 2;
            }
            break;
        case O_PROV: o.prov_srv = optarg; break;
        case O_NOW:
            if (ck_parse_int64(optarg, 0, INT64_MAX / 2, &now) != 0) {
                usage();
                return 2;
            }
            fixed_now = true;
            break;
        case O_OUT: out = optarg; break;
        default: usage(); return 2;
        }
    }
    if ((kdc == NULL && out == NULL) || o.realm == NULL || o.cname == NULL ||
        identity == NULL || optind != argc) {
        usage();
        return 2;
    }
    if (pwfile != NULL && ck_pki_password_read(pwfile, &password) != 0) {
        fprintf(stderr, "pkinit_asreq: %s\n", ck_error_context());
        goto done;
    }
    if (ck_pki_identity_load(identity, password, &id) != 0) {
        fprintf(stderr, "pkinit_asreq: %s\n", ck_error_context());
        goto done;
    }
    o.id = id;
    if (anchors_pem != NULL && (ck_pkinit_anchors_new(&anchors) != 0 ||
                                ck_pkinit_anchors_add_file(anchors, anchors_pem, 0, NULL) != 0)) {
        fprintf(stderr, "pkinit_asreq: %s\n", ck_error_context());
        goto done;
    }
    /* The clock is read once the (slow) PKCS#12 is open, so a short skew still passes. */
    if (!fixed_now)
        ck_now(&now, &usec);
    o.now = now + offset;
    if (want_fresh) {
        if (fetch_freshness(kdc, &o, &fresh, &fresh_len) != 0)
            goto done;
        o.fresh = fresh;
        o.fresh_len = fresh_len;
        /* Lets the token age while the AuthPack stays current. */
        if (fresh_wait > 0) {
            sleep((unsigned)fresh_wait);
            ck_now(&now, &usec);
            o.now = now + offset;
        }
    }
    if (pk_build(&o, &st) != 0) {
        fprintf(stderr, "pkinit_asreq: building the AS-REQ: %s\n", ck_error_context());
        goto done;
    }
    if (out != NULL) {
        FILE *f = fopen(out, "wb");
        if (f == NULL || fwrite(st.req, 1, st.req_len, f) != st.req_len) {
            fprintf(stderr, "pkinit_asreq: cannot write %s\n", out);
            if (f != NULL)
                fclose(f);
            goto done;
        }
        fclose(f);
        status = 0;
        goto done;
    }
    if (send_tcp(kdc, st.req, st.req_len, &rep, &rep_len) != 0)
        goto done;
    if (ck_asn1_krb_error_decode(rep, rep_len, &err) == 0) {
        printf("KRB-ERROR %d\n", (int)err->error_code);
        status = 3;
        goto done;
    }
    if (ck_asn1_kdc_rep_decode(rep, rep_len, &kr, NULL) != 0 ||
        pk_reply_key(&o, &st, kr, anchors, &key) != 0 ||
        pk_open_as_rep(&st, kr, &key, &part) != 0) {
        fprintf(stderr, "pkinit_asreq: the AS-REP does not open: %s\n", ck_error_context());
        goto done;
    }
    printf("ISSUE %s etype %d\n", o.cname, (int)kr->enc_part->etype);
    status = 0;
done:
    ck_key_clear(&key);
    CK_ENC_KDC_REP_PART_free(part);
    CK_KDC_REP_free(kr);
    CK_KRB_ERROR_MSG_free(err);
    free(rep);
    OPENSSL_free(fresh);
    pk_state_free(&st);
    ck_pkinit_anchors_free(anchors);
    ck_pki_identity_free(id);
    ck_pki_password_free(password);
    return status;
}
