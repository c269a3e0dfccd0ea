/* cablekey device add|list|show|revoke|reinstate|delete|pin|unpin: the device table, which maps a
 * PacketCable device's MAC address to its principal and pins its key (see store.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/store.h"
#include "cablekey/principal.h"
#include "cablekey/util.h"
#include "admin_ops.h"
#include "cli.h"
#include "prov_remote.h"

#define CERT_FILE_MAX (1 << 20)  /* a certificate or a device PKCS#12 is a few KiB */
#define LIST_PAGE 1000

enum {
    OPT_DB = 256, OPT_STASH, OPT_MAC, OPT_PRINCIPAL, OPT_COMMENT, OPT_CERT, OPT_PASSWORD_FILE,
    OPT_SPKI, OPT_AFTER, OPT_LIMIT, OPT_YES, OPT_HELP, OPT_SERVER, OPT_CA,
};

static const struct option all_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"stash", required_argument, NULL, OPT_STASH},
    {"mac", required_argument, NULL, OPT_MAC},
    {"principal", required_argument, NULL, OPT_PRINCIPAL},
    {"comment", required_argument, NULL, OPT_COMMENT},
    {"cert", required_argument, NULL, OPT_CERT},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"spki-sha256", required_argument, NULL, OPT_SPKI},
    {"after", required_argument, NULL, OPT_AFTER},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"yes", no_argument, NULL, OPT_YES},
    {"server", required_argument, NULL, OPT_SERVER},
    {"ca", required_argument, NULL, OPT_CA},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct dopts {
    const char *db, *stash;
    const char *server, *ca;  /* list, show: a remote executor (cli_executor_open) */
    bool has_mac, has_after, has_spki, yes;
    char mac[CK_DEVICE_MAC_LEN + 1];
    char after[CK_DEVICE_MAC_LEN + 1];
    uint8_t spki[CK_DEVICE_SPKI_HASH_LEN];
    const char *principal, *comment, *cert, *password_file;
    int64_t limit;
};

static const char device_help[] =
    "usage: cablekey device SUBCOMMAND --db PATH|URI [--stash FILE] ...\n"
    "       cablekey device list|show --server URL [--ca FILE] ...\n"
    "\n"
    "  add --mac MAC --principal NAME [--comment TEXT]\n"
    "      [--cert FILE [--password-file F] | --spki-sha256 HEX]\n"
    "  list [--principal NAME] [--after MAC] [--limit N]\n"
    "  show --mac MAC\n"
    "  revoke --mac MAC         refuse the device from its next login on (record kept)\n"
    "  reinstate --mac MAC      undo a revocation\n"
    "  delete --mac MAC [--yes]  asks on a terminal; --yes is required otherwise\n"
    "  pin --mac MAC (--cert FILE [--password-file F] | --spki-sha256 HEX)\n"
    "  unpin --mac MAC          forget the key: the next successful login pins it again\n"
    "\n"
    "MAC: aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff or aabbccddeeff. NAME without @REALM is in the\n"
    "database's realm and must exist. The pin is the SHA-256 of the certificate's\n"
    "SubjectPublicKeyInfo: from --cert (PEM or DER certificate, or PKCS#12 with --password-file),\n"
    "or --spki-sha256 (64 hex digits, as printed by `openssl x509 -pubkey -noout -in C |\n"
    "openssl pkey -pubin -outform DER | sha256sum`). Without a pin, the device's first\n"
    "successful PKINIT login pins its key (trust on first use); afterwards another key\n"
    "presenting the same MAC is refused as a possible clone. list prints one device per line:\n"
    "MAC, state, pin (or -), principal and comment, separated by tabs.\n";

static int
parse_opts(const char *what, int argc, char **argv, struct dopts *o)
{
    int c;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", all_opts, NULL)) != -1) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_STASH: o->stash = optarg; break;
        case OPT_SERVER: o->server = optarg; break;
        case OPT_CA: o->ca = optarg; break;
        case OPT_PRINCIPAL: o->principal = optarg; break;
        case OPT_COMMENT: o->comment = optarg; break;
        case OPT_YES: o->yes = true; break;
        case OPT_CERT: o->cert = optarg; break;
        case OPT_PASSWORD_FILE: o->password_file = optarg; break;
        case OPT_MAC:
            if (ck_device_mac_parse(optarg, o->mac) != 0)
                return cli_usage_error(what, "--mac: %s", ck_error_context());
            o->has_mac = true;
            break;
        case OPT_AFTER:
            if (ck_device_mac_parse(optarg, o->after) != 0)
                return cli_usage_error(what, "--after: %s", ck_error_context());
            o->has_after = true;
            break;
        case OPT_SPKI:
            if (ck_device_pin_parse_hex(optarg, o->spki) != 0)
                return cli_usage_error(what, "--spki-sha256: %s", ck_error_context());
            o->has_spki = true;
            break;
        case OPT_LIMIT:
            if (ck_parse_int64(optarg, 1, CK_DEVICE_LIST_MAX, &o->limit) != 0)
                return cli_usage_error(what, "--limit: a number from 1 to %d",
                                       CK_DEVICE_LIST_MAX);
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, device_help);
        }
    }
    return cli_no_more_args(what, optind < argc ? argv[optind] : NULL);
}

/* Accepts only the options a subcommand documents, so typos do not silently do nothing. */
static int
only(const char *what, const struct dopts *o, const char *allowed)
{
    struct {
        bool set;
        const char *name;
    } used[] = {
        {o->has_mac, "mac"},           {o->principal != NULL, "principal"},
        {o->comment != NULL, "comment"}, {o->cert != NULL, "cert"},
        {o->password_file != NULL, "password-file"}, {o->has_spki, "spki-sha256"},
        {o->has_after, "after"},       {o->limit != 0, "limit"},
        {o->yes, "yes"},               {o->server != NULL, "server"},
        {o->ca != NULL, "ca"},
    };

    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        char key[40];
        snprintf(key, sizeof(key), " %s ", used[i].name);
        if (used[i].set && strstr(allowed, key) == NULL)
            return cli_usage_error(what, "option --%s does not apply here", used[i].name);
    }
    if (strstr(allowed, " mac ") != NULL && !o->has_mac)
        return cli_usage_error(what, "--mac MAC is required");
    return CLI_OK;
}

/* The pin options: at most one source, and --password-file only with --cert. */
static int
check_pin_opts(const char *what, const struct dopts *o, bool required)
{
    if (o->cert != NULL && o->has_spki)
        return cli_usage_error(what, "--cert and --spki-sha256 exclude each other");
    if (o->password_file != NULL && o->cert == NULL)
        return cli_usage_error(what, "--password-file goes with --cert");
    if (required && o->cert == NULL && !o->has_spki)
        return cli_usage_error(what, "one of --cert or --spki-sha256 is required");
    return CLI_OK;
}

/* Reads a whole regular file of at most max bytes. */
static int
read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t n = 0;
    int fd, ret;

    *out = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "%s: %s", path,
                            strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ret = ck_error_set(CK_ERR_IO, "%s: not a regular file", path);
        goto out;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "%s", path);
        goto out;
    }
    if ((ret = ck_fd_read_all(fd, buf, max + 1, &n)) != 0) {
        ret = ck_error_set(ret, "%s: %s", path, ck_error_context());
        goto out;
    }
    if (n > max) {
        ret = ck_error_set(CK_ERR_LIMIT, "%s: larger than %zu bytes", path, max);
        goto out;
    }
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return ret;
}

/* Loads the end-entity certificate: PEM (the first certificate), PKCS#12 (needs the password)
 * or DER. */
static int
load_certificate(const char *path, const char *password_file, X509 **out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    const unsigned char *p;
    char *pw = NULL;
    PKCS12 *p12 = NULL;
    ck_pki_identity *id = NULL;
    BIO *bio = NULL;
    int ret = 0;

    *out = NULL;
    if ((ret = read_file(path, CERT_FILE_MAX, &buf, &len)) != 0)
        return ret;
    if (memmem(buf, len, "-----BEGIN", 10) != NULL) {
        bio = BIO_new_mem_buf(buf, (int)len);
        if (bio == NULL || (*out = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL)
            ret = ck_error_set_ssl(CK_ERR_DECODE, "%s: no PEM certificate", path);
        goto out;
    }
    p = buf;
    if ((p12 = d2i_PKCS12(NULL, &p, (long)len)) != NULL) {
        if (password_file == NULL) {
            ret = ck_error_set(CK_ERR_INVAL, "%s is a PKCS#12 file: --password-file is needed",
                               path);
            goto out;
        }
        if ((ret = ck_pki_password_read(password_file, &pw)) != 0 ||
            (ret = ck_pki_identity_from_p12(buf, len, pw, &id)) != 0)
            goto out;
        *out = id->cert;
        id->cert = NULL;
        goto out;
    }
    p = buf;
    if ((*out = d2i_X509(NULL, &p, (long)len)) == NULL || p != buf + len) {
        X509_free(*out);
        *out = NULL;
        ret = ck_error_set_ssl(CK_ERR_DECODE, "%s: not a PEM, DER or PKCS#12 certificate", path);
    }
out:
    ERR_clear_error();
    ck_pki_password_free(pw);
    ck_pki_identity_free(id);
    PKCS12_free(p12);
    BIO_free(bio);
    free(buf);
    return ret;
}

/* A MAC address in the certificate subject (PacketCable puts it in the CN), if any. */
static bool
subject_mac(X509 *cert, char mac[CK_DEVICE_MAC_LEN + 1])
{
    const X509_NAME *name = X509_get_subject_name(cert);

    for (int i = 0; name != NULL && i < X509_NAME_entry_count(name); i++) {
        const ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        char buf[CK_DEVICE_MAC_LEN + 1];
        int n = ASN1_STRING_length(v);

        if (n != 12 && n != CK_DEVICE_MAC_LEN)
            continue;
        memcpy(buf, ASN1_STRING_get0_data(v), (size_t)n);
        buf[n] = '\0';
        if (ck_device_mac_parse(buf, mac) == 0)
            return true;
    }
    return false;
}

/* The pin of a certificate file: SHA-256 over the DER SubjectPublicKeyInfo, exactly as the KDC
 * computes it (store.h). A certificate naming another MAC is refused: pinning it would lock the
 * device out. */
static int
cert_pin(const char *path, const char *password_file, const char *mac,
         uint8_t out[CK_DEVICE_SPKI_HASH_LEN])
{
    X509 *cert = NULL;
    char cmac[CK_DEVICE_MAC_LEN + 1];
    int ret;

    if ((ret = load_certificate(path, password_file, &cert)) != 0)
        return ret;
    if (subject_mac(cert, cmac) && strcmp(cmac, mac) != 0) {
        ret = ck_error_set(CK_ERR_INVAL, "%s is the certificate of device %s, not %s", path,
                           cmac, mac);
        goto out;
    }
    ret = ck_pki_spki_sha256(cert, out);
out:
    X509_free(cert);
    return ret;
}

/* The pin the options give, if any. */
static int
opts_pin(const char *what, const struct dopts *o, bool *has, uint8_t pin[CK_DEVICE_SPKI_HASH_LEN])
{
    int ret;

    *has = false;
    if (o->has_spki) {
        memcpy(pin, o->spki, CK_DEVICE_SPKI_HASH_LEN);
        *has = true;
    } else if (o->cert != NULL) {
        if ((ret = cert_pin(o->cert, o->password_file, o->mac, pin)) != 0)
            return cli_fail(what, ret);
        *has = true;
    }
    return CLI_OK;
}

static int
do_add(const char *what, const struct dopts *o, ck_store *store)
{
    ck_db_device d;
    char *name = NULL, hex[2 * CK_DEVICE_SPKI_HASH_LEN + 1];
    int rc, ret;

    memset(&d, 0, sizeof(d));
    if ((rc = opts_pin(what, o, &d.has_pin, d.spki_sha256)) != CLI_OK ||
        (rc = cli_canonical_name(what, store, o->principal, &name)) != CLI_OK)
        goto out;
    memcpy(d.mac, o->mac, sizeof(d.mac));
    d.principal = name;
    d.comment = (char *)o->comment;
    d.state = CK_DEVICE_ACTIVE;
    if ((ret = ck_store_add_device(store, &d)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    if (d.has_pin) {
        ck_device_pin_format_hex(d.spki_sha256, hex);
        printf("Device %s added for %s, key pinned (SPKI SHA-256 %s).\n", d.mac, name, hex);
    } else {
        printf("Device %s added for %s, not pinned: its first successful PKINIT login pins its "
               "key.\n", d.mac, name);
    }
    rc = CLI_OK;
out:
    free(name);
    return rc;
}

struct list_ctx {
    char last[CK_DEVICE_MAC_LEN + 1];
};

void
cli_print_device_line(const ck_db_device *d)
{
    char hex[2 * CK_DEVICE_SPKI_HASH_LEN + 1] = "-";

    if (d->has_pin)
        ck_device_pin_format_hex(d->spki_sha256, hex);
    printf("%s\t%s\t%s\t%s\t%s\n", d->mac, ck_device_state_name(d->state), hex, d->principal,
           d->comment);
}

static int
print_device_line(const ck_db_device *d, void *arg)
{
    struct list_ctx *ctx = arg;

    cli_print_device_line(d);
    memcpy(ctx->last, d->mac, sizeof(ctx->last));
    return 0;
}

/* --principal NAME in the executor's realm (a remote one's realm record, GET /v1/realm). */
static int
device_principal(const char *what, const struct dopts *o, const struct cli_admin_ops *ops,
                 void *ctx, char **out)
{
    ck_realm_info ri;
    ck_principal *p = NULL;
    int ret;

    *out = NULL;
    if ((ret = ops->realm_get(ctx, &ri)) != 0)
        return cli_fail(what, ret);
    ret = ck_principal_parse(o->principal, ri.name, 0, &p);
    if (ret == 0)
        ret = ck_principal_unparse(p, 0, out);
    ck_principal_free(p);
    return ret != 0 ? cli_fail(what, ret) : CLI_OK;
}

static int
do_list(const char *what, const struct dopts *o, const struct cli_admin_ops *ops, void *ctx)
{
    struct list_ctx lc;
    size_t page = o->limit != 0 ? (size_t)o->limit : LIST_PAGE, n = 0;
    char *name = NULL;
    int rc, ret;

    memset(&lc, 0, sizeof(lc));
    if (o->principal != NULL && (rc = device_principal(what, o, ops, ctx, &name)) != CLI_OK)
        return rc;
    if (o->has_after)
        memcpy(lc.last, o->after, sizeof(lc.last));
    /* --limit: one page; otherwise every device, a bounded page at a time. */
    do {
        ret = ops->device_list(ctx, name, lc.last[0] ? lc.last : NULL, page, print_device_line,
                               &lc, &n);
        if (ret != 0) {
            rc = cli_fail(what, ret);
            goto out;
        }
    } while (o->limit == 0 && n == page);
    rc = CLI_OK;
out:
    free(name);
    return rc;
}

static void
print_when(const char *label, int64_t t, const char *zero)
{
    char buf[64];

    if (t == 0) {
        printf("%s: %s\n", label, zero);
        return;
    }
    cli_format_time(t, buf, sizeof(buf));
    printf("%s: %s\n", label, buf);
}

void
cli_print_device(const ck_db_device *d)
{
    char hex[2 * CK_DEVICE_SPKI_HASH_LEN + 1];

    printf("Device: %s\n", d->mac);
    printf("Principal: %s\n", d->principal);
    printf("State: %s\n", ck_device_state_name(d->state));
    if (d->has_pin) {
        ck_device_pin_format_hex(d->spki_sha256, hex);
        printf("Key pin (SPKI SHA-256): %s\n", hex);
    } else {
        printf("Key pin (SPKI SHA-256): [none: the next successful login pins it]\n");
    }
    print_when("Created", d->created, "[unknown]");
    print_when("Last modified", d->modified, "[unknown]");
    print_when("Revoked", d->revoked, "[no]");
    printf("Comment: %s\n", d->comment);
}

static int
do_show(const char *what, const struct dopts *o, const struct cli_admin_ops *ops, void *ctx)
{
    ck_db_device *d = NULL;
    int ret;

    if ((ret = ops->device_get(ctx, o->mac, &d)) != 0)
        return cli_fail(what, ret);
    cli_print_device(d);
    ck_db_device_free(d);
    return CLI_OK;
}

static int
do_state(const char *what, const struct dopts *o, ck_store *store, enum ck_device_state state)
{
    bool changed = false;
    int ret;

    if ((ret = ck_store_set_device_state(store, o->mac, state, &changed)) != 0)
        return cli_fail(what, ret);
    if (state == CK_DEVICE_REVOKED)
        printf(changed ? "Device %s revoked: its logins are refused from now on.\n"
                       : "Device %s was already revoked.\n", o->mac);
    else
        printf(changed ? "Device %s reinstated.\n" : "Device %s was already active.\n", o->mac);
    return CLI_OK;
}

static int
do_revoke(const char *what, const struct dopts *o, ck_store *store)
{
    return do_state(what, o, store, CK_DEVICE_REVOKED);
}

static int
do_reinstate(const char *what, const struct dopts *o, ck_store *store)
{
    return do_state(what, o, store, CK_DEVICE_ACTIVE);
}

static int
do_delete(const char *what, const struct dopts *o, ck_store *store)
{
    ck_db_device *d = NULL;
    char question[128] = "";
    int rc, ret;

    /* Ask about a device that exists: a typo fails before the question. */
    if (!o->yes) {
        if ((ret = ck_store_get_device(store, o->mac, &d)) != 0)
            return cli_fail(what, ret);
        snprintf(question, sizeof(question), "Delete device %s (principal %s) and its pin?",
                 o->mac, d->principal);
        ck_db_device_free(d);
    }
    if ((rc = cli_confirm(what, o->yes, question)) != CLI_OK)
        return rc;
    if ((ret = ck_store_delete_device(store, o->mac)) != 0)
        return cli_fail(what, ret);
    printf("Device %s deleted.\n", o->mac);
    return CLI_OK;
}

static int
do_pin(const char *what, const struct dopts *o, ck_store *store)
{
    uint8_t pin[CK_DEVICE_SPKI_HASH_LEN];
    char hex[2 * CK_DEVICE_SPKI_HASH_LEN + 1];
    bool has = false;
    int rc, ret;

    if ((rc = opts_pin(what, o, &has, pin)) != CLI_OK)
        return rc;
    if ((ret = ck_store_set_device_pin(store, o->mac, pin)) != 0)
        return cli_fail(what, ret);
    ck_device_pin_format_hex(pin, hex);
    printf("Device %s pinned to SPKI SHA-256 %s.\n", o->mac, hex);
    return CLI_OK;
}

static int
do_unpin(const char *what, const struct dopts *o, ck_store *store)
{
    int ret;

    if ((ret = ck_store_set_device_pin(store, o->mac, NULL)) != 0)
        return cli_fail(what, ret);
    printf("Device %s unpinned: its next successful PKINIT login pins its key.\n", o->mac);
    return CLI_OK;
}

int
cli_device(int argc, char **argv)
{
    /* pin: -1 no pin options, 0 optional, 1 required. */
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct dopts *o, ck_store *store);
        bool readonly;
        const char *allowed;
        int pin;
    } subs[] = {
        {"add", do_add, false, " mac principal comment cert password-file spki-sha256 ", 0},
        {"list", NULL, true, " principal after limit server ca ", -1},
        {"show", NULL, true, " mac server ca ", -1},
        {"revoke", do_revoke, false, " mac ", -1},
        {"reinstate", do_reinstate, false, " mac ", -1},
        {"delete", do_delete, false, " mac yes ", -1},
        {"pin", do_pin, false, " mac cert password-file spki-sha256 ", 1},
        {"unpin", do_unpin, false, " mac ", -1},
    };
    char what[64];
    struct dopts o;
    ck_store *store = NULL;
    struct cli_executor ex;
    int rc;

    if (cli_family_help(argc, argv, device_help, cli_device_prov_help, &rc))
        return rc;
    /* The provisioning verbs go to cablekey-prov (device_prov.c). */
    if (cli_device_prov_verb(argv[1]))
        return cli_device_prov(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "device %s", subs[i].name);
        for (int a = 2; a < argc; a++) {
            if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
                if (!cli_verb_help(stdout, "device", device_help, subs[i].name))
                    fputs(device_help, stdout);
                return CLI_OK;
            }
        }
        rc = parse_opts(what, argc - 1, argv + 1, &o);
        if (rc < 0)
            return CLI_OK; /* --help */
        if (rc != CLI_OK)
            return rc;
        /* Every option is checked before the database is opened. */
        if ((rc = only(what, &o, subs[i].allowed)) != CLI_OK ||
            (subs[i].pin >= 0 && (rc = check_pin_opts(what, &o, subs[i].pin > 0)) != CLI_OK))
            return rc;
        if (subs[i].fn == do_add && o.principal == NULL)
            return cli_usage_error(what, "--principal NAME is required");
        if (subs[i].fn == NULL) {
            /* The read verbs: the local store or cablekey-admind. */
            if ((rc = cli_executor_open(what, o.db, o.stash, o.server, o.ca, true, &ex)) != CLI_OK)
                return rc;
            rc = strcmp(subs[i].name, "list") == 0 ? do_list(what, &o, ex.ops, ex.ctx)
                                                   : do_show(what, &o, ex.ops, ex.ctx);
            cli_executor_close(&ex);
            return rc;
        }
        if ((rc = cli_open_store(what, o.db, o.stash, subs[i].readonly, &store)) != CLI_OK)
            return rc;
        rc = subs[i].fn(what, &o, store);
        ck_store_close(store);
        return rc;
    }
    return cli_unknown_verb("device", argv[1]);
}
