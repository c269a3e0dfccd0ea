/* cablekey pki init|issue-device|issue-client|issue-server|import|export|show|verify: the
 * operator's certificate authority for PKINIT (PacketCable's two hierarchies).
 *
 * Layout of a PKI directory (mode 0700, every file 0600):
 *   pki.conf                         realm, organisations, key type (written last by init/import)
 *   sp-root.pem   sp-root-key.pem    service-provider root CA (trust anchor for clients)
 *   sp-ca.pem     sp-ca-key.pem      service-provider CA: issues KDC, server and client certs
 *   mfg-root.pem  mfg-root-key.pem   MTA root CA (trust anchor for device certificates)
 *   mfg-ca.pem    mfg-ca-key.pem     manufacturer CA: issues MTA device certificates
 *   prov-ca.pem   prov-ca-key.pem    provisioning CA (under sp-root): cablekey-prov's signer
 *                                    issues the operator device certificates with it
 *   phone-id.key                     32 random bytes: the HMAC key of the phone IDs
 *   kdc.p12 kdc.pem                  KDC identity (id-pkinit-KPKdc, krbtgt/REALM@REALM)
 *   cms.p12 prov.p12                 signaling controller and provisioning server identities
 *   issued.log                       one line per certificate issued (serial, subject, expiry)
 * CA keys are PKCS#8 PEM encrypted with the CA password; identities are PKCS#12 encrypted with
 * the --password-file password. Passwords come from files or a no-echo prompt, never argv. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ui.h>
#include <openssl/x509v3.h>

#include "cablekey/error.h"
#include "cablekey/pki.h"
#include "cablekey/principal.h"
#include "cablekey/profile.h"
#include "cablekey/util.h"
#include "cli.h"

#define ROOT_DAYS 7300
#define CA_DAYS 3650
#define LEAF_DAYS 365
#define MAX_DAYS 36500
/* Certificates start a little in the past so that a device whose clock lags can use them. */
#define BACKDATE_SECS 300
#define OU_PACKETCABLE "PacketCable"

enum {
    OPT_DIR = 256, OPT_REALM, OPT_ORG, OPT_MFG_ORG, OPT_COUNTRY, OPT_PASSWORD_FILE,
    OPT_CA_PASSWORD_FILE, OPT_KEY, OPT_DAYS, OPT_NOT_BEFORE, OPT_NOT_AFTER, OPT_LEGACY,
    OPT_FORCE, OPT_MAC, OPT_PRINCIPAL, OPT_DNS, OPT_OUT, OPT_PEM_OUT, OPT_PEM_NOPASS,
    OPT_ANCHORS, OPT_UNTRUSTED, OPT_CA, OPT_KDC, OPT_MFG_CA, OPT_MFG_ROOT, OPT_SP_ROOT,
    OPT_CMS_DNS, OPT_PROV_DNS, OPT_HELP,
};

static const struct option all_opts[] = {
    {"dir", required_argument, NULL, OPT_DIR},
    {"realm", required_argument, NULL, OPT_REALM},
    {"org", required_argument, NULL, OPT_ORG},
    {"mfg-org", required_argument, NULL, OPT_MFG_ORG},
    {"country", required_argument, NULL, OPT_COUNTRY},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"ca-password-file", required_argument, NULL, OPT_CA_PASSWORD_FILE},
    {"key", required_argument, NULL, OPT_KEY},
    {"days", required_argument, NULL, OPT_DAYS},
    {"not-before", required_argument, NULL, OPT_NOT_BEFORE},
    {"not-after", required_argument, NULL, OPT_NOT_AFTER},
    {"legacy", no_argument, NULL, OPT_LEGACY},
    {"force", no_argument, NULL, OPT_FORCE},
    {"mac", required_argument, NULL, OPT_MAC},
    {"principal", required_argument, NULL, OPT_PRINCIPAL},
    {"dns", required_argument, NULL, OPT_DNS},
    {"out", required_argument, NULL, OPT_OUT},
    {"pem-out", required_argument, NULL, OPT_PEM_OUT},
    {"pem-nopass", no_argument, NULL, OPT_PEM_NOPASS},
    {"anchors", required_argument, NULL, OPT_ANCHORS},
    {"untrusted", required_argument, NULL, OPT_UNTRUSTED},
    {"ca", required_argument, NULL, OPT_CA},
    {"kdc", required_argument, NULL, OPT_KDC},
    {"mfg-ca", required_argument, NULL, OPT_MFG_CA},
    {"mfg-root", required_argument, NULL, OPT_MFG_ROOT},
    {"sp-root", required_argument, NULL, OPT_SP_ROOT},
    {"cms-dns", required_argument, NULL, OPT_CMS_DNS},
    {"prov-dns", required_argument, NULL, OPT_PROV_DNS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct pki_opts {
    const char *dir, *realm, *org, *mfg_org, *country;
    const char *password_file, *ca_password_file;
    const char *key;            /* --key TYPE; for phone-id: the key file */
    ck_pki_key_type key_type;
    bool has_days, has_not_before, has_not_after, legacy, force, pem_nopass;
    int64_t days, not_before, not_after;
    const char *mac, *principal, *out, *pem_out, *anchors, *untrusted;
    const char *dns[CK_PKI_MAX_DNS_NAMES];
    size_t n_dns;
    const char *ca, *kdc, *mfg_ca, *mfg_root, *sp_root, *cms_dns, *prov_dns;
    const char **args;
    size_t n_args;
};

static const char pki_help[] =
    "usage: cablekey pki SUBCOMMAND [options]\n"
    "\n"
    "  init --dir DIR --realm REALM --org ORG --password-file F [--ca-password-file F]\n"
    "      [--mfg-org ORG] [--country CC] [--key TYPE] [--days N] [--legacy]\n"
    "      [--cms-dns NAME] [--prov-dns NAME]\n"
    "  issue-device --dir DIR --mac MAC --out FILE.p12 --password-file F [issue options]\n"
    "  issue-client --dir DIR --principal NAME --out FILE.p12 --password-file F [issue options]\n"
    "  issue-server --dir DIR --dns NAME [--dns NAME...] --out FILE.p12 --password-file F\n"
    "      [issue options]\n"
    "      issue options: [--ca-password-file F] [--key TYPE] [--days N] [--not-before TIME]\n"
    "      [--not-after TIME] [--legacy] [--pem-out PREFIX [--pem-nopass]] [--force]\n"
    "  import --dir DIR --ca FILE.p12 --password-file F [--ca-password-file F] [--kdc FILE.p12]\n"
    "      [--sp-root PEM] [--mfg-ca FILE.p12] [--mfg-root PEM] [--realm REALM] [--org ORG]\n"
    "      [--legacy]\n"
    "  export FILE.p12 --pem-out PREFIX --password-file F [--pem-nopass] [--legacy] [--force]\n"
    "  show FILE [--password-file F]\n"
    "  verify FILE --anchors PEM[,PEM...] [--untrusted PEM] [--password-file F]\n"
    "  phone-id --key FILE NUMBER\n"
    "\n"
    "init makes the service-provider hierarchy (root -> CA -> KDC, signaling controller,\n"
    "provisioning server) and the manufacturer hierarchy (MTA root -> manufacturer CA) in DIR\n"
    "(mode 0700, files 0600): trust anchors DIR/sp-root.pem and DIR/mfg-root.pem, the KDC\n"
    "identity DIR/kdc.p12, the provisioning CA DIR/prov-ca.pem (under sp-root; it issues the\n"
    "operator device certificates) and the phone-ID key DIR/phone-id.key. CA keys are\n"
    "encrypted with the --ca-password-file password (default: the --password-file one);\n"
    "PKCS#12 files with the --password-file password. Without\n"
    "--password-file, a terminal prompts (no echo); passwords are never taken from argv.\n"
    "TYPE: rsa (rsa-2048, the default), rsa-3072, ec-p256, ec-p384. --days: end-entity\n"
    "validity (default 365). --legacy: 3DES and a SHA-1 MAC in PKCS#12 (for old devices)\n"
    "instead of AES-256/PBKDF2 and SHA-256. --pem-out PREFIX also writes\n"
    "PREFIX-cert.pem and PREFIX-key.pem (key encrypted unless --pem-nopass; with --legacy in\n"
    "the traditional PEM form Heimdal reads, whose password KDF is weak). An existing\n"
    "output file is kept unless --force. TIME is epoch seconds or 'YYYY-MM-DD[ HH:MM:SS]' UTC.\n"
    "phone-id prints the phone ID of NUMBER (digits) under the key FILE (DIR/phone-id.key) as\n"
    "hex: what an operator device certificate carries for that number.\n";

static int
parse_opts(const char *what, int argc, char **argv, struct pki_opts *o)
{
    int c;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", all_opts, NULL)) != -1) {
        switch (c) {
        case OPT_DIR: o->dir = optarg; break;
        case OPT_REALM: o->realm = optarg; break;
        case OPT_ORG: o->org = optarg; break;
        case OPT_MFG_ORG: o->mfg_org = optarg; break;
        case OPT_COUNTRY: o->country = optarg; break;
        case OPT_PASSWORD_FILE: o->password_file = optarg; break;
        case OPT_CA_PASSWORD_FILE: o->ca_password_file = optarg; break;
        case OPT_KEY:
            /* phone-id's --key names the phone-ID key file, not a key type. */
            if (strcmp(what, "pki phone-id") == 0) {
                o->key = optarg;
                break;
            }
            if (ck_pki_key_type_parse(optarg, &o->key_type) != 0)
                return cli_usage_error(what, "--key: %s", ck_error_context());
            o->key = optarg;
            break;
        case OPT_DAYS:
            if (ck_parse_int64(optarg, 1, MAX_DAYS, &o->days) != 0)
                return cli_usage_error(what, "--days: expected 1..%d", MAX_DAYS);
            o->has_days = true;
            break;
        case OPT_NOT_BEFORE:
            if (cli_parse_time(optarg, &o->not_before) != 0)
                return cli_usage_error(what, "--not-before: %s", ck_error_context());
            o->has_not_before = true;
            break;
        case OPT_NOT_AFTER:
            if (cli_parse_time(optarg, &o->not_after) != 0)
                return cli_usage_error(what, "--not-after: %s", ck_error_context());
            o->has_not_after = true;
            break;
        case OPT_LEGACY: o->legacy = true; break;
        case OPT_FORCE: o->force = true; break;
        case OPT_MAC: o->mac = optarg; break;
        case OPT_PRINCIPAL: o->principal = optarg; break;
        case OPT_DNS:
            if (o->n_dns >= CK_PKI_MAX_DNS_NAMES)
                return cli_usage_error(what, "more than %d --dns names", CK_PKI_MAX_DNS_NAMES);
            o->dns[o->n_dns++] = optarg;
            break;
        case OPT_OUT: o->out = optarg; break;
        case OPT_PEM_OUT: o->pem_out = optarg; break;
        case OPT_PEM_NOPASS: o->pem_nopass = true; break;
        case OPT_ANCHORS: o->anchors = optarg; break;
        case OPT_UNTRUSTED: o->untrusted = optarg; break;
        case OPT_CA: o->ca = optarg; break;
        case OPT_KDC: o->kdc = optarg; break;
        case OPT_MFG_CA: o->mfg_ca = optarg; break;
        case OPT_MFG_ROOT: o->mfg_root = optarg; break;
        case OPT_SP_ROOT: o->sp_root = optarg; break;
        case OPT_CMS_DNS: o->cms_dns = optarg; break;
        case OPT_PROV_DNS: o->prov_dns = optarg; break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, pki_help);
        }
    }
    o->args = (const char **)(argv + optind);
    o->n_args = (size_t)(argc - optind);
    return CLI_OK;
}

/* Accepts only the options a subcommand documents, so a misplaced option is not ignored. */
static int
only(const char *what, const struct pki_opts *o, const char *allowed)
{
    const struct {
        bool set;
        const char *name;
    } used[] = {
        {o->dir != NULL, "dir"}, {o->realm != NULL, "realm"}, {o->org != NULL, "org"},
        {o->mfg_org != NULL, "mfg-org"}, {o->country != NULL, "country"},
        {o->password_file != NULL, "password-file"},
        {o->ca_password_file != NULL, "ca-password-file"}, {o->key != NULL, "key"},
        {o->has_days, "days"}, {o->has_not_before, "not-before"},
        {o->has_not_after, "not-after"}, {o->legacy, "legacy"}, {o->force, "force"},
        {o->mac != NULL, "mac"}, {o->principal != NULL, "principal"}, {o->n_dns > 0, "dns"},
        {o->out != NULL, "out"}, {o->pem_out != NULL, "pem-out"},
        {o->pem_nopass, "pem-nopass"}, {o->anchors != NULL, "anchors"},
        {o->untrusted != NULL, "untrusted"}, {o->ca != NULL, "ca"}, {o->kdc != NULL, "kdc"},
        {o->mfg_ca != NULL, "mfg-ca"}, {o->mfg_root != NULL, "mfg-root"},
        {o->sp_root != NULL, "sp-root"}, {o->cms_dns != NULL, "cms-dns"},
        {o->prov_dns != NULL, "prov-dns"},
    };

    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        char key[40];
        snprintf(key, sizeof(key), " %s ", used[i].name);
        if (used[i].set && strstr(allowed, key) == NULL)
            return cli_usage_error(what, "option --%s does not apply here", used[i].name);
    }
    if (o->pem_nopass && o->pem_out == NULL)
        return cli_usage_error(what, "--pem-nopass needs --pem-out");
    return CLI_OK;
}

static int
no_args(const char *what, const struct pki_opts *o)
{
    return cli_no_more_args(what, o->n_args != 0 ? o->args[0] : NULL);
}

/* ------------------------------------------------------------------------------------------- */
/* Passwords */

/* The password of a --password-file, or a no-echo prompt when stdin is a terminal (confirm:
 * ask twice, for a new password). Missing both is a usage error: nothing else is accepted. */
static int
get_password(const char *what, const char *file, const char *option, const char *prompt,
             bool confirm, char **out)
{
    char buf[CK_PKI_PASSWORD_MAX + 1];
    int ret;

    *out = NULL;
    if (file != NULL) {
        if ((ret = ck_pki_password_read(file, out)) != 0)
            return cli_fail(what, ret);
        return CLI_OK;
    }
    if (!isatty(STDIN_FILENO))
        return cli_usage_error(what, "%s F is required (no terminal to prompt on)", option);
    if (EVP_read_pw_string_min(buf, 1, sizeof(buf), prompt, confirm) != 0) {
        ck_memzero(buf, sizeof(buf));
        ERR_clear_error();
        return cli_fail(what, ck_error_set(CK_ERR_INVAL, "no password entered (or the two "
                                                         "entries differ)"));
    }
    *out = ck_memdup(buf, strlen(buf) + 1);
    ck_memzero(buf, sizeof(buf));
    if (*out == NULL)
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "password"));
    return CLI_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* The PKI directory */

struct pki_conf {
    char *realm, *org, *mfg_org, *country;
    ck_pki_key_type key_type;
};

static void
pki_conf_free(struct pki_conf *c)
{
    free(c->realm);
    free(c->org);
    free(c->mfg_org);
    free(c->country);
    memset(c, 0, sizeof(*c));
}

static int
path_in(const char *what, const char *dir, const char *name, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= size)
        return cli_fail(what, ck_error_set(CK_ERR_LIMIT, "path %s/%s too long", dir, name));
    return CLI_OK;
}

/* A PKI directory (or a CA key in it) must be the user's and closed to group and others. */
static int
check_private(const char *path, bool want_dir)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "%s: %s", path,
                            strerror(errno));
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        return ck_error_set(CK_ERR_INVAL, "%s is not a %s", path,
                            want_dir ? "directory" : "regular file");
    if (st.st_uid != geteuid())
        return ck_error_set(CK_ERR_PERM, "%s is owned by uid %u, not by uid %u", path,
                            (unsigned)st.st_uid, (unsigned)geteuid());
    if ((st.st_mode & 077) != 0)
        return ck_error_set(CK_ERR_PERM, "%s has mode %04o; it must be %s", path,
                            (unsigned)(st.st_mode & 07777), want_dir ? "0700" : "0600");
    return 0;
}

static int
conf_dup(const struct ck_profile *prof, const char *key, bool required, char **out)
{
    const char *v = ck_profile_get(prof, "pki", key, NULL);

    *out = NULL;
    if (v == NULL)
        return required ? ck_error_set(CK_ERR_CONFIG, "pki.conf: no %s", key) : 0;
    if ((*out = strdup(v)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "pki.conf");
    return 0;
}

static int
pki_conf_load(const char *what, const char *dir, struct pki_conf *c)
{
    char path[4096];
    struct ck_profile *prof = NULL;
    const char *key;
    int rc, ret;

    memset(c, 0, sizeof(*c));
    if ((ret = check_private(dir, true)) != 0)
        return cli_fail(what, ret);
    if ((rc = path_in(what, dir, "pki.conf", path, sizeof(path))) != CLI_OK)
        return rc;
    if (access(path, F_OK) != 0)
        return cli_fail(what, ck_error_set(CK_ERR_NOTFOUND, "%s holds no PKI (no pki.conf; run "
                                                            "'cablekey pki init')", dir));
    if ((ret = ck_profile_load(path, &prof)) != 0)
        return cli_fail(what, ret);
    key = ck_profile_get(prof, "pki", "key", NULL);
    if ((ret = conf_dup(prof, "realm", true, &c->realm)) != 0 ||
        (ret = conf_dup(prof, "org", true, &c->org)) != 0 ||
        (ret = conf_dup(prof, "mfg_org", false, &c->mfg_org)) != 0 ||
        (ret = conf_dup(prof, "country", false, &c->country)) != 0 ||
        (ret = ck_pki_key_type_parse(key != NULL ? key : "rsa-2048", &c->key_type)) != 0) {
        ck_profile_free(prof);
        pki_conf_free(c);
        return cli_fail(what, ck_error_set(ret, "%s: %s", path, ck_error_context()));
    }
    ck_profile_free(prof);
    return CLI_OK;
}

/* Appends a profile relation with the value quoted, so any text survives the round trip. */
static void
conf_line(FILE *f, const char *key, const char *value)
{
    if (value == NULL)
        return;
    fprintf(f, "    %s = \"", key);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', f);
        fputc(*p, f);
    }
    fputs("\"\n", f);
}

static int
pki_conf_write(const char *path, const struct pki_conf *c, const char *by)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int ret;

    if (f == NULL)
        return ck_error_set(CK_ERR_NOMEM, "pki.conf");
    fprintf(f, "# cablekey PKI, written by 'cablekey pki %s'. The issue-* commands read it.\n"
               "[pki]\n", by);
    conf_line(f, "realm", c->realm);
    conf_line(f, "org", c->org);
    conf_line(f, "mfg_org", c->mfg_org);
    conf_line(f, "country", c->country);
    conf_line(f, "key", ck_pki_key_type_name(c->key_type));
    if (fclose(f) != 0) {
        free(text);
        return ck_error_set(CK_ERR_NOMEM, "pki.conf");
    }
    ret = ck_pki_file_write(path, text, len, 0);
    free(text);
    return ret;
}

/* Files a command created, removed again if it fails half way. */
#define MAX_CREATED 24
struct created {
    char *paths[MAX_CREATED];
    size_t n;
};

static int
created_add(struct created *cr, const char *path)
{
    if (cr->n >= MAX_CREATED || (cr->paths[cr->n] = strdup(path)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "file list");
    cr->n++;
    return 0;
}

static void
created_finish(struct created *cr, bool ok)
{
    for (size_t i = 0; i < cr->n; i++) {
        if (!ok)
            unlink(cr->paths[i]);
        free(cr->paths[i]);
    }
    cr->n = 0;
}

/* Writes through a callback-free switch: each kind of file the CLI writes. */
enum out_kind { OUT_CERTS, OUT_KEY, OUT_P12 };

static int
write_out(struct created *cr, enum out_kind kind, const char *path, const ck_pki_identity *id,
          X509 *cert, STACK_OF(X509) *more, EVP_PKEY *key, const char *password,
          const char *name, unsigned flags)
{
    int ret;

    switch (kind) {
    case OUT_CERTS: ret = ck_pki_certs_write_pem(path, cert, more, flags); break;
    case OUT_KEY: ret = ck_pki_key_write_pem(path, key, password, flags); break;
    case OUT_P12: ret = ck_pki_p12_write(path, id, password, name, flags); break;
    default: ret = ck_error_set(CK_ERR_INVAL, "output kind"); break;
    }
    if (ret == 0 && cr != NULL)
        ret = created_add(cr, path);
    return ret;
}

/* One line per issued certificate: what a later revocation list needs. Best effort: the
 * certificate is already written when this runs. */
static void
issued_log(const char *dir, X509 *cert, const char *file)
{
    char path[4096], subj[512] = "", nb[64], na[64];
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *serial = bn != NULL ? BN_bn2hex(bn) : NULL;
    struct tm tm;
    FILE *f;
    int fd;

    X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof(subj));
    nb[0] = na[0] = '\0';
    if (ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm))
        strftime(nb, sizeof(nb), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm))
        strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (snprintf(path, sizeof(path), "%s/issued.log", dir) < (int)sizeof(path) &&
        (fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) >= 0) {
        if ((f = fdopen(fd, "a")) != NULL) {
            fprintf(f, "%s\t%s\t%s\t%s\t%s\n", serial ? serial : "?", nb, na, subj, file);
            fclose(f);
        } else {
            close(fd);
        }
    }
    OPENSSL_free(serial);
    BN_free(bn);
}

/* A CA of the directory: its certificate (plus any intermediates above it, as in sp-ca.pem
 * written by import) and its decrypted key. */
struct ca {
    X509 *cert;
    STACK_OF(X509) *chain;
    EVP_PKEY *key;
};

static void
ca_free(struct ca *ca)
{
    X509_free(ca->cert);
    sk_X509_pop_free(ca->chain, X509_free);
    EVP_PKEY_free(ca->key);
    memset(ca, 0, sizeof(*ca));
}

static int
ca_load(const char *what, const char *dir, const char *name, const char *password,
        struct ca *ca)
{
    char cpath[4096], kpath[4096], cname[64], kname[64];
    STACK_OF(X509) *certs = NULL;
    int rc, ret;

    memset(ca, 0, sizeof(*ca));
    snprintf(cname, sizeof(cname), "%s.pem", name);
    snprintf(kname, sizeof(kname), "%s-key.pem", name);
    if ((rc = path_in(what, dir, cname, cpath, sizeof(cpath))) != CLI_OK ||
        (rc = path_in(what, dir, kname, kpath, sizeof(kpath))) != CLI_OK)
        return rc;
    if ((ret = check_private(kpath, false)) != 0)
        return cli_fail(what, ret);
    if ((ret = ck_pki_certs_load_pem(cpath, &certs)) != 0)
        return cli_fail(what, ret);
    if ((ret = ck_pki_key_load_pem(kpath, password, &ca->key)) != 0) {
        sk_X509_pop_free(certs, X509_free);
        /* The message names the file and says "wrong password or corrupted key". */
        return cli_fail(what, ck_error_set(ret, "CA key %s", ck_error_context()));
    }
    ca->cert = sk_X509_shift(certs);
    ca->chain = certs;
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ERR_clear_error();
        ca_free(ca);
        return cli_fail(what, ck_error_set(CK_ERR_INVAL, "%s does not match %s", kpath, cpath));
    }
    return CLI_OK;
}

/* Issues one certificate and builds its identity (key, cert, chain = the issuer and the
 * issuer's own chain). */
static int
issue_identity(const ck_pki_cert_spec *spec, ck_pki_key_type kt, const struct ca *ca,
               ck_pki_identity **out)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *chain = NULL;
    int ret;

    *out = NULL;
    if ((ret = ck_pki_key_generate(kt, &key)) != 0 ||
        (ret = ck_pki_cert_issue(spec, key, ca->cert, ca->key, &cert)) != 0)
        goto out;
    if ((chain = sk_X509_new_null()) == NULL || !sk_X509_push(chain, ca->cert)) {
        ret = ck_error_set(CK_ERR_NOMEM, "chain");
        goto out;
    }
    for (int i = 0; ca->chain != NULL && i < sk_X509_num(ca->chain); i++) {
        if (!sk_X509_push(chain, sk_X509_value(ca->chain, i))) {
            ret = ck_error_set(CK_ERR_NOMEM, "chain");
            goto out;
        }
    }
    ret = ck_pki_identity_new(key, cert, chain, out);
out:
    sk_X509_free(chain);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ret;
}

/* PREFIX-cert.pem (certificate and chain) and PREFIX-key.pem, for Heimdal's
 * FILE:cert.pem,key.pem and MIT's FILE: identities. */
static int
write_pem_pair(struct created *cr, const char *prefix, const ck_pki_identity *id,
               const char *password, unsigned flags)
{
    char cpath[4096], kpath[4096];
    int ret;

    if (snprintf(cpath, sizeof(cpath), "%s-cert.pem", prefix) >= (int)sizeof(cpath) ||
        snprintf(kpath, sizeof(kpath), "%s-key.pem", prefix) >= (int)sizeof(kpath))
        return ck_error_set(CK_ERR_LIMIT, "--pem-out prefix too long");
    if ((ret = write_out(cr, OUT_CERTS, cpath, NULL, id->cert, id->chain, NULL, NULL, NULL,
                         flags)) != 0)
        return ret;
    /* --legacy: the traditional encrypted form, the only one Heimdal's hx509 decrypts. */
    return write_out(cr, OUT_KEY, kpath, NULL, NULL, NULL, id->key, password, NULL,
                     (flags & CK_PKI_WRITE_REPLACE) |
                         ((flags & CK_PKI_P12_LEGACY) ? CK_PKI_PEM_TRADITIONAL : 0));
}

static void
format_time(const ASN1_TIME *t, char *buf, size_t size)
{
    struct tm tm;

    if (!ASN1_TIME_to_tm(t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, size, "(unreadable time)");
}

/* Validity of an end-entity certificate from the options (now - backdate .. + days). */
static int
leaf_validity(const char *what, const struct pki_opts *o, int64_t *nb, int64_t *na)
{
    int64_t now = (int64_t)time(NULL);

    if (o->has_days && o->has_not_after)
        return cli_usage_error(what, "--days and --not-after exclude each other");
    *nb = o->has_not_before ? o->not_before : now - BACKDATE_SECS;
    if (o->has_not_after)
        *na = o->not_after;
    else
        *na = (o->has_not_before ? o->not_before : now) +
              (o->has_days ? o->days : LEAF_DAYS) * 86400;
    if (*na <= *nb)
        return cli_usage_error(what, "the certificate would expire before it starts");
    return CLI_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* init */

static int
make_dir(const char *what, const char *dir)
{
    char path[4096];
    int rc, ret;

    if (mkdir(dir, 0700) == 0)
        return CLI_OK;
    if (errno != EEXIST)
        return cli_fail(what, ck_error_set(CK_ERR_IO, "%s: %s", dir, strerror(errno)));
    if ((ret = check_private(dir, true)) != 0)
        return cli_fail(what, ret);
    if ((rc = path_in(what, dir, "pki.conf", path, sizeof(path))) != CLI_OK)
        return rc;
    if (access(path, F_OK) == 0)
        return cli_fail(what, ck_error_set(CK_ERR_EXISTS, "%s already holds a PKI", dir));
    return CLI_OK;
}

/* "cms.example.com" style defaults from the realm, which must then be a valid DNS name. */
static int
default_dns(const char *realm, const char *label, char *out, size_t size)
{
    size_t n = 0;
    int w = snprintf(out, size, "%s.", label);

    if (w < 0 || (size_t)w >= size)
        return ck_error_set(CK_ERR_LIMIT, "DNS name");
    n = (size_t)w;
    for (const char *p = realm; *p; p++) {
        if (n + 1 >= size)
            return ck_error_set(CK_ERR_LIMIT, "DNS name");
        out[n++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
    }
    out[n] = '\0';
    return 0;
}

static int
do_init(const char *what, const struct pki_opts *o)
{
    struct pki_conf conf = {0};
    struct created cr = {{0}, 0};
    struct ca sp_root = {0}, sp_ca = {0}, mfg_root = {0}, mfg_ca = {0}, prov_ca = {0};
    ck_pki_identity *kdc = NULL, *cms = NULL, *prov = NULL;
    char *pw = NULL, *ca_pw = NULL, kdc_princ[600], cms_dns[300], prov_dns[300];
    char cn[200], path[4096];
    const char *dns_one[1];
    ck_principal *tgs = NULL;
    int64_t now = (int64_t)time(NULL), nb = now - BACKDATE_SECS, leaf_na;
    unsigned p12_flags = o->legacy ? CK_PKI_P12_LEGACY : 0;
    bool ok = false;
    int rc, ret = 0;

    if ((rc = only(what, o, " dir realm org mfg-org country password-file ca-password-file key"
                            " days legacy cms-dns prov-dns ")) != CLI_OK ||
        (rc = no_args(what, o)) != CLI_OK)
        return rc;
    if (o->dir == NULL || o->realm == NULL || o->org == NULL)
        return cli_usage_error(what, "--dir DIR, --realm REALM and --org ORG are required");
    leaf_na = now + (o->has_days ? o->days : LEAF_DAYS) * 86400;
    /* The realm must make a valid krbtgt name before anything is written. */
    if (snprintf(kdc_princ, sizeof(kdc_princ), "%s/%s@%s", CK_TGS_NAME, o->realm, o->realm) >=
            (int)sizeof(kdc_princ) ||
        ck_principal_parse(kdc_princ, NULL, CK_PRINCIPAL_PARSE_REQUIRE_REALM, &tgs) != 0 ||
        !ck_principal_is_tgs(tgs, o->realm) || strchr(o->realm, '/') != NULL)
        rc = cli_usage_error(what, "--realm: '%s' is not a usable realm name", o->realm);
    ck_principal_free(tgs);
    if (rc != CLI_OK)
        return rc;
    if (o->cms_dns != NULL)
        ck_strlcpy(cms_dns, o->cms_dns, sizeof(cms_dns));
    else if (default_dns(o->realm, "cms", cms_dns, sizeof(cms_dns)) != 0)
        return cli_usage_error(what, "realm too long for a DNS name; give --cms-dns");
    if (o->prov_dns != NULL)
        ck_strlcpy(prov_dns, o->prov_dns, sizeof(prov_dns));
    else if (default_dns(o->realm, "prov", prov_dns, sizeof(prov_dns)) != 0)
        return cli_usage_error(what, "realm too long for a DNS name; give --prov-dns");

    conf.key_type = o->key != NULL ? o->key_type : CK_PKI_KEY_RSA_2048;
    if ((conf.realm = strdup(o->realm)) == NULL || (conf.org = strdup(o->org)) == NULL ||
        (conf.mfg_org = strdup(o->mfg_org ? o->mfg_org : o->org)) == NULL ||
        (o->country != NULL && (conf.country = strdup(o->country)) == NULL)) {
        rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "init"));
        goto out;
    }
    if ((rc = get_password(what, o->password_file, "--password-file",
                           "Password for the PKCS#12 files: ", true, &pw)) != CLI_OK)
        goto out;
    if (o->ca_password_file != NULL &&
        (rc = get_password(what, o->ca_password_file, "--ca-password-file", "CA key password: ",
                           true, &ca_pw)) != CLI_OK)
        goto out;
    if ((rc = make_dir(what, o->dir)) != CLI_OK)
        goto out;

    {
        /* Both hierarchies, top down. Subjects: O=ORG, OU=PacketCable, CN=<role>. */
        struct {
            struct ca *ca, *issuer;
            ck_pki_profile profile;
            const char *org, *cn_fmt, *file;
            int path_len, days;
        } cas[] = {
            {&sp_root, NULL, CK_PKI_PROFILE_ROOT_CA, conf.org, "%s Service Provider Root CA",
             "sp-root", -1, ROOT_DAYS},
            {&sp_ca, &sp_root, CK_PKI_PROFILE_CA, conf.org, "%s Service Provider CA", "sp-ca", 0,
             CA_DAYS},
            {&mfg_root, NULL, CK_PKI_PROFILE_ROOT_CA, conf.mfg_org,
             "%s Root Device Certificate Authority", "mfg-root", -1, ROOT_DAYS},
            {&mfg_ca, &mfg_root, CK_PKI_PROFILE_CA, conf.mfg_org, "%s MTA Manufacturer CA",
             "mfg-ca", 0, CA_DAYS},
            /* Beside sp-ca, not under it: a KDC can trust the operator's device certificates
             * (pkinit_operator_anchors) without trusting every server certificate as one. */
            {&prov_ca, &sp_root, CK_PKI_PROFILE_CA, conf.org, "%s Provisioning CA", "prov-ca",
             0, CA_DAYS},
        };
        for (size_t i = 0; i < sizeof(cas) / sizeof(cas[0]); i++) {
            ck_pki_cert_spec spec = {0};
            char kname[64];
            /* Names longer than the CN bound fall back to the role alone. */
            snprintf(cn, sizeof(cn), cas[i].cn_fmt, cas[i].org);
            if (strlen(cn) > 64)
                snprintf(cn, sizeof(cn), cas[i].cn_fmt, "PacketCable");
            spec.profile = cas[i].profile;
            spec.country = conf.country;
            spec.org = cas[i].org;
            spec.org_unit = OU_PACKETCABLE;
            spec.common_name = cn;
            spec.path_len = cas[i].path_len;
            spec.not_before = nb;
            spec.not_after = now + (int64_t)cas[i].days * 86400;
            if ((ret = ck_pki_key_generate(conf.key_type, &cas[i].ca->key)) != 0 ||
                (ret = ck_pki_cert_issue(&spec, cas[i].ca->key,
                                         cas[i].issuer ? cas[i].issuer->cert : NULL,
                                         cas[i].issuer ? cas[i].issuer->key : cas[i].ca->key,
                                         &cas[i].ca->cert)) != 0)
                goto fail;
            snprintf(kname, sizeof(kname), "%s.pem", cas[i].file);
            if ((rc = path_in(what, o->dir, kname, path, sizeof(path))) != CLI_OK)
                goto out;
            if ((ret = write_out(&cr, OUT_CERTS, path, NULL, cas[i].ca->cert, NULL, NULL, NULL,
                                 NULL, 0)) != 0)
                goto fail;
            issued_log(o->dir, cas[i].ca->cert, path);
            snprintf(kname, sizeof(kname), "%s-key.pem", cas[i].file);
            if ((rc = path_in(what, o->dir, kname, path, sizeof(path))) != CLI_OK)
                goto out;
            if ((ret = write_out(&cr, OUT_KEY, path, NULL, NULL, NULL, cas[i].ca->key,
                                 ca_pw != NULL ? ca_pw : pw, NULL, 0)) != 0)
                goto fail;
        }
    }
    {
        /* The service provider's servers. */
        ck_pki_cert_spec spec = {0};
        struct {
            ck_pki_identity **id;
            ck_pki_profile profile;
            const char *cn, *principal, *dns, *file, *name;
        } leaves[] = {
            {&kdc, CK_PKI_PROFILE_KDC, "KDC", kdc_princ, NULL, "kdc", "kdc"},
            {&cms, CK_PKI_PROFILE_SIGNALING, cms_dns, NULL, cms_dns, "cms", "cms"},
            {&prov, CK_PKI_PROFILE_SERVER, prov_dns, NULL, prov_dns, "prov", "prov"},
        };
        for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
            char fname[64];
            memset(&spec, 0, sizeof(spec));
            spec.profile = leaves[i].profile;
            spec.country = conf.country;
            spec.org = conf.org;
            spec.org_unit = OU_PACKETCABLE;
            spec.common_name = leaves[i].cn;
            spec.principal = leaves[i].principal;
            dns_one[0] = leaves[i].dns;
            spec.dns_names = dns_one;
            spec.n_dns_names = leaves[i].dns != NULL ? 1 : 0;
            spec.path_len = -1;
            spec.not_before = nb;
            spec.not_after = leaf_na;
            if (strlen(leaves[i].cn) > 64) {
                ret = ck_error_set(CK_ERR_INVAL, "DNS name %s is longer than a CN may be",
                                   leaves[i].cn);
                goto fail;
            }
            if ((ret = issue_identity(&spec, conf.key_type, &sp_ca, leaves[i].id)) != 0)
                goto fail;
            snprintf(fname, sizeof(fname), "%s.p12", leaves[i].file);
            if ((rc = path_in(what, o->dir, fname, path, sizeof(path))) != CLI_OK)
                goto out;
            if ((ret = write_out(&cr, OUT_P12, path, *leaves[i].id, NULL, NULL, NULL, pw,
                                 leaves[i].name, p12_flags)) != 0)
                goto fail;
            issued_log(o->dir, (*leaves[i].id)->cert, path);
            snprintf(fname, sizeof(fname), "%s.pem", leaves[i].file);
            if ((rc = path_in(what, o->dir, fname, path, sizeof(path))) != CLI_OK)
                goto out;
            if ((ret = write_out(&cr, OUT_CERTS, path, NULL, (*leaves[i].id)->cert,
                                 (*leaves[i].id)->chain, NULL, NULL, NULL, 0)) != 0)
                goto fail;
        }
    }
    if ((rc = path_in(what, o->dir, "phone-id.key", path, sizeof(path))) != CLI_OK)
        goto out;
    if ((ret = ck_pki_phone_id_key_create(path)) != 0 || (ret = created_add(&cr, path)) != 0)
        goto fail;
    /* pki.conf last: its presence means a complete directory. */
    if ((rc = path_in(what, o->dir, "pki.conf", path, sizeof(path))) != CLI_OK)
        goto out;
    if ((ret = pki_conf_write(path, &conf, "init")) != 0 || (ret = created_add(&cr, path)) != 0)
        goto fail;
    ok = true;
    printf("PKI for realm %s in %s (%s keys)\n", conf.realm, o->dir,
           ck_pki_key_type_name(conf.key_type));
    printf("  trust anchors:   %s/sp-root.pem (service provider), %s/mfg-root.pem (devices)\n",
           o->dir, o->dir);
    printf("  KDC identity:    %s/kdc.p12 (krbtgt/%s@%s)\n", o->dir, conf.realm, conf.realm);
    printf("  servers:         %s/cms.p12 (%s), %s/prov.p12 (%s)\n", o->dir, cms_dns, o->dir,
           prov_dns);
    printf("  provisioning:    %s/prov-ca.pem (operator device certificates), %s/phone-id.key\n",
           o->dir, o->dir);
    printf("  CA keys:         %s/*-key.pem (encrypted; move the root keys offline)\n", o->dir);
    rc = CLI_OK;
    goto out;
fail:
    rc = cli_fail(what, ret);
out:
    /* On failure the files are removed (and the log of what was issued, which had no PKI
     * before); the directory itself stays, it may have existed. */
    if (!ok && rc != CLI_USAGE && path_in(what, o->dir, "issued.log", path, sizeof(path)) == 0 &&
        cr.n > 0)
        unlink(path);
    created_finish(&cr, ok);
    ck_pki_identity_free(kdc);
    ck_pki_identity_free(cms);
    ck_pki_identity_free(prov);
    ca_free(&sp_root);
    ca_free(&sp_ca);
    ca_free(&mfg_root);
    ca_free(&mfg_ca);
    ca_free(&prov_ca);
    ck_pki_password_free(pw);
    ck_pki_password_free(ca_pw);
    pki_conf_free(&conf);
    return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* issue-device, issue-client, issue-server */

enum issue_kind { ISSUE_DEVICE, ISSUE_CLIENT, ISSUE_SERVER };

static int
do_issue(const char *what, const struct pki_opts *o, enum issue_kind kind)
{
    static const char *const allowed[] = {
        " dir mac out password-file ca-password-file key days not-before not-after legacy"
        " pem-out pem-nopass force ",
        " dir principal out password-file ca-password-file key days not-before not-after legacy"
        " pem-out pem-nopass force ",
        " dir dns out password-file ca-password-file key days not-before not-after legacy"
        " pem-out pem-nopass force ",
    };
    struct pki_conf conf = {0};
    struct created cr = {{0}, 0};
    struct ca ca = {0};
    ck_pki_identity *id = NULL;
    ck_pki_cert_spec spec = {0};
    ck_principal *princ = NULL;
    char *pw = NULL, *ca_pw = NULL, *pname = NULL, macbuf[CK_PKI_MAC_TEXT], cn[65];
    char when[64], label[600];
    uint8_t mac[6];
    unsigned flags = (o->legacy ? CK_PKI_P12_LEGACY : 0) | (o->force ? CK_PKI_WRITE_REPLACE : 0);
    bool ok = false;
    int rc, ret = 0;

    if ((rc = only(what, o, allowed[kind])) != CLI_OK || (rc = no_args(what, o)) != CLI_OK)
        return rc;
    if (o->dir == NULL || o->out == NULL)
        return cli_usage_error(what, "--dir DIR and --out FILE.p12 are required");
    if (kind == ISSUE_DEVICE && o->mac == NULL)
        return cli_usage_error(what, "--mac MAC is required");
    if (kind == ISSUE_CLIENT && o->principal == NULL)
        return cli_usage_error(what, "--principal NAME is required");
    if (kind == ISSUE_SERVER && o->n_dns == 0)
        return cli_usage_error(what, "--dns NAME is required");
    if (kind == ISSUE_DEVICE && ck_pki_mac_parse(o->mac, mac) != 0)
        return cli_usage_error(what, "--mac: %s", ck_error_context());
    if ((rc = leaf_validity(what, o, &spec.not_before, &spec.not_after)) != CLI_OK)
        return rc;
    if ((rc = pki_conf_load(what, o->dir, &conf)) != CLI_OK)
        return rc;
    spec.country = conf.country;
    spec.org = conf.org;
    spec.org_unit = OU_PACKETCABLE;
    spec.path_len = -1;
    switch (kind) {
    case ISSUE_DEVICE:
        /* PacketCable: the manufacturer issues it, the MAC address is the CN. */
        ck_pki_mac_format(mac, macbuf);
        spec.profile = CK_PKI_PROFILE_DEVICE;
        spec.org = conf.mfg_org != NULL ? conf.mfg_org : conf.org;
        spec.common_name = macbuf;
        snprintf(label, sizeof(label), "device %s", macbuf);
        break;
    case ISSUE_CLIENT:
        if ((ret = ck_principal_parse(o->principal, conf.realm, 0, &princ)) != 0 ||
            (ret = ck_principal_unparse(princ, 0, &pname)) != 0) {
            rc = cli_fail(what, ck_error_set(ret, "--principal: %s", ck_error_context()));
            goto out;
        }
        /* The CN is for people; the SAN is what the KDC matches. */
        if (strlen(pname) <= 64)
            ck_strlcpy(cn, pname, sizeof(cn));
        else if (ck_principal_unparse_buf(princ, CK_PRINCIPAL_UNPARSE_NO_REALM, cn, sizeof(cn),
                                          &(size_t){0}) != 0) {
            rc = cli_fail(what, ck_error_set(CK_ERR_LIMIT, "principal %s is too long for a "
                                                           "certificate CN", pname));
            goto out;
        }
        spec.profile = CK_PKI_PROFILE_CLIENT;
        spec.common_name = cn;
        spec.principal = pname;
        snprintf(label, sizeof(label), "client %s", pname);
        break;
    case ISSUE_SERVER:
        if (strlen(o->dns[0]) > 64) {
            rc = cli_fail(what, ck_error_set(CK_ERR_LIMIT, "DNS name %s is longer than a CN "
                                                           "may be", o->dns[0]));
            goto out;
        }
        spec.profile = CK_PKI_PROFILE_SERVER;
        spec.common_name = o->dns[0];
        spec.dns_names = o->dns;
        spec.n_dns_names = o->n_dns;
        snprintf(label, sizeof(label), "server %s", o->dns[0]);
        break;
    }
    if (!o->force && access(o->out, F_OK) == 0) {
        rc = cli_fail(what, ck_error_set(CK_ERR_EXISTS, "%s already exists (--force replaces "
                                                        "it)", o->out));
        goto out;
    }
    if ((rc = get_password(what, o->password_file, "--password-file",
                           "Password for the PKCS#12 file: ", true, &pw)) != CLI_OK)
        goto out;
    if (o->ca_password_file != NULL &&
        (rc = get_password(what, o->ca_password_file, "--ca-password-file", "CA key password: ",
                           false, &ca_pw)) != CLI_OK)
        goto out;
    if ((rc = ca_load(what, o->dir, kind == ISSUE_DEVICE ? "mfg-ca" : "sp-ca",
                      ca_pw != NULL ? ca_pw : pw, &ca)) != CLI_OK)
        goto out;
    if ((ret = issue_identity(&spec, o->key != NULL ? o->key_type : conf.key_type, &ca, &id)) !=
            0 ||
        (ret = write_out(&cr, OUT_P12, o->out, id, NULL, NULL, NULL, pw, spec.common_name,
                         flags)) != 0 ||
        (o->pem_out != NULL &&
         (ret = write_pem_pair(&cr, o->pem_out, id, o->pem_nopass ? NULL : pw, flags)) != 0)) {
        rc = cli_fail(what, ret);
        goto out;
    }
    issued_log(o->dir, id->cert, o->out);
    ok = true;
    format_time(X509_get0_notAfter(id->cert), when, sizeof(when));
    printf("Issued %s certificate: %s (valid until %s)\n", label, o->out, when);
    rc = CLI_OK;
out:
    created_finish(&cr, ok);
    ck_pki_identity_free(id);
    ca_free(&ca);
    ck_principal_free(princ);
    free(pname);
    ck_pki_password_free(pw);
    ck_pki_password_free(ca_pw);
    pki_conf_free(&conf);
    return rc;
}

static int
do_issue_device(const char *what, const struct pki_opts *o)
{
    return do_issue(what, o, ISSUE_DEVICE);
}

static int
do_issue_client(const char *what, const struct pki_opts *o)
{
    return do_issue(what, o, ISSUE_CLIENT);
}

static int
do_issue_server(const char *what, const struct pki_opts *o)
{
    return do_issue(what, o, ISSUE_SERVER);
}

/* ------------------------------------------------------------------------------------------- */
/* import */

static int
load_p12_identity(const char *what, const char *path, const char *pw, ck_pki_identity **out)
{
    char spec[4200];
    int ret;

    if (snprintf(spec, sizeof(spec), "PKCS12:%s", path) >= (int)sizeof(spec))
        return cli_fail(what, ck_error_set(CK_ERR_LIMIT, "path too long"));
    if ((ret = ck_pki_identity_load(spec, pw, out)) != 0)
        return cli_fail(what, ret);
    return CLI_OK;
}

/* The first O= of a certificate subject, or NULL. */
static char *
subject_org(X509 *cert)
{
    const X509_NAME *name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_organizationName, -1);
    unsigned char *utf8 = NULL;
    char *out = NULL;
    int len;

    if (idx < 0)
        return NULL;
    len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
    if (len > 0 && memchr(utf8, '\0', (size_t)len) == NULL)
        out = strndup((const char *)utf8, (size_t)len);
    OPENSSL_free(utf8);
    return out;
}

static bool
is_self_signed(X509 *x)
{
    return X509_check_issued(x, x) == X509_V_OK;
}

/* Verifies cert (with untrusted intermediates) against one anchor; 0 or CK_ERR_POLICY with the
 * verifier's reason. */
static int
verify_chain(X509 *cert, STACK_OF(X509) *untrusted, STACK_OF(X509) *anchors, int *depth)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ret = 0;

    *depth = -1;
    if (store == NULL || ctx == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "verify");
        goto out;
    }
    for (int i = 0; i < sk_X509_num(anchors); i++) {
        if (!X509_STORE_add_cert(store, sk_X509_value(anchors, i))) {
            ret = ck_error_set_ssl(CK_ERR_NOMEM, "verify");
            goto out;
        }
    }
    if (!X509_STORE_CTX_init(ctx, store, cert, untrusted)) {
        ret = ck_error_set_ssl(CK_ERR_NOMEM, "verify");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        *depth = X509_STORE_CTX_get_error_depth(ctx);
        ret = ck_error_set(CK_ERR_POLICY, "%s", X509_verify_cert_error_string(err));
    }
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ret;
}

static ck_pki_key_type
key_type_of(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "EC"))
        return EVP_PKEY_get_bits(key) > 256 ? CK_PKI_KEY_EC_P384 : CK_PKI_KEY_EC_P256;
    return EVP_PKEY_get_bits(key) > 2048 ? CK_PKI_KEY_RSA_3072 : CK_PKI_KEY_RSA_2048;
}

/* Splits a CA identity into DIR/<name>.pem (cert + intermediates, root excluded),
 * DIR/<name>-key.pem and DIR/<rootname>.pem (the self-signed top, from the PKCS#12 or the
 * given PEM file). */
static int
import_ca(const char *what, struct created *cr, const char *dir, const ck_pki_identity *id,
          const char *root_pem, const char *name, const char *rootname, const char *ca_pw)
{
    STACK_OF(X509) *inter = NULL, *roots = NULL;
    X509 *root = NULL;
    char path[4096], fname[64];
    int depth, rc = CLI_OK, ret;

    if (X509_check_ca(id->cert) == 0) {
        return cli_fail(what, ck_error_set(CK_ERR_INVAL, "the %s certificate is not a CA "
                                                         "certificate", name));
    }
    if ((inter = sk_X509_new_null()) == NULL)
        return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "import"));
    if (root_pem != NULL) {
        if ((ret = ck_pki_certs_load_pem(root_pem, &roots)) != 0) {
            rc = cli_fail(what, ret);
            goto out;
        }
        root = sk_X509_value(roots, 0);
    } else if (is_self_signed(id->cert)) {
        root = id->cert;
    }
    for (int i = 0; i < sk_X509_num(id->chain); i++) {
        X509 *c = sk_X509_value(id->chain, i);
        if (is_self_signed(c)) {
            if (root == NULL)
                root = c;
        } else if (!sk_X509_push(inter, c)) {
            rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "import"));
            goto out;
        }
    }
    if (root == NULL) {
        rc = cli_fail(what, ck_error_set(CK_ERR_NOTFOUND, "the %s PKCS#12 holds no root "
                                                          "certificate; give it with --%s PEM",
                                         name, rootname));
        goto out;
    }
    if (!is_self_signed(root)) {
        rc = cli_fail(what, ck_error_set(CK_ERR_INVAL, "the %s root is not self-signed", name));
        goto out;
    }
    {
        STACK_OF(X509) *one = sk_X509_new_null();
        if (one == NULL || !sk_X509_push(one, root)) {
            sk_X509_free(one);
            rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "import"));
            goto out;
        }
        ret = verify_chain(id->cert, inter, one, &depth);
        sk_X509_free(one);
        if (ret != 0) {
            rc = cli_fail(what, ck_error_set(ret, "the %s certificate does not chain to its root: "
                                                  "%s", name, ck_error_context()));
            goto out;
        }
    }
    snprintf(fname, sizeof(fname), "%s.pem", name);
    if ((rc = path_in(what, dir, fname, path, sizeof(path))) != CLI_OK)
        goto out;
    if ((ret = write_out(cr, OUT_CERTS, path, NULL, id->cert, inter, NULL, NULL, NULL, 0)) != 0)
        goto fail;
    snprintf(fname, sizeof(fname), "%s-key.pem", name);
    if ((rc = path_in(what, dir, fname, path, sizeof(path))) != CLI_OK)
        goto out;
    if ((ret = write_out(cr, OUT_KEY, path, NULL, NULL, NULL, id->key, ca_pw, NULL, 0)) != 0)
        goto fail;
    snprintf(fname, sizeof(fname), "%s.pem", rootname);
    if ((rc = path_in(what, dir, fname, path, sizeof(path))) != CLI_OK)
        goto out;
    if ((ret = write_out(cr, OUT_CERTS, path, NULL, root, NULL, NULL, NULL, NULL, 0)) != 0)
        goto fail;
    goto out;
fail:
    rc = cli_fail(what, ret);
out:
    sk_X509_pop_free(roots, X509_free);
    sk_X509_free(inter);
    return rc;
}

static int
do_import(const char *what, const struct pki_opts *o)
{
    struct pki_conf conf = {0};
    struct created cr = {{0}, 0};
    ck_pki_identity *ca = NULL, *kdc = NULL, *mfg = NULL;
    ck_principal *sans[4] = {NULL};
    size_t n_sans = 0;
    char *pw = NULL, *ca_pw = NULL, path[4096];
    unsigned p12_flags = o->legacy ? CK_PKI_P12_LEGACY : 0;
    bool ok = false;
    int rc, ret = 0;

    if ((rc = only(what, o, " dir ca kdc mfg-ca mfg-root sp-root realm org password-file"
                            " ca-password-file legacy ")) != CLI_OK ||
        (rc = no_args(what, o)) != CLI_OK)
        return rc;
    if (o->dir == NULL || o->ca == NULL)
        return cli_usage_error(what, "--dir DIR and --ca FILE.p12 are required");
    if ((rc = get_password(what, o->password_file, "--password-file",
                           "Password of the PKCS#12 files: ", false, &pw)) != CLI_OK)
        goto out;
    if (o->ca_password_file != NULL &&
        (rc = get_password(what, o->ca_password_file, "--ca-password-file", "CA key password: ",
                           true, &ca_pw)) != CLI_OK)
        goto out;
    if ((rc = load_p12_identity(what, o->ca, pw, &ca)) != CLI_OK ||
        (o->kdc != NULL && (rc = load_p12_identity(what, o->kdc, pw, &kdc)) != CLI_OK) ||
        (o->mfg_ca != NULL && (rc = load_p12_identity(what, o->mfg_ca, pw, &mfg)) != CLI_OK))
        goto out;
    /* The realm: given, or the KDC certificate's krbtgt/REALM@REALM. */
    if (o->realm != NULL) {
        if ((conf.realm = strdup(o->realm)) == NULL) {
            rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "import"));
            goto out;
        }
    } else if (kdc != NULL) {
        if ((ret = ck_pki_cert_san_principals(kdc->cert, sans, 4, &n_sans)) != 0) {
            rc = cli_fail(what, ret);
            goto out;
        }
        for (size_t i = 0; i < n_sans && conf.realm == NULL; i++) {
            if (ck_principal_is_tgs(sans[i], NULL))
                conf.realm = strdup(sans[i]->realm);
        }
    }
    if (conf.realm == NULL) {
        rc = cli_usage_error(what, "--realm REALM is required (no KDC certificate naming "
                                   "krbtgt/REALM@REALM)");
        goto out;
    }
    conf.org = o->org != NULL ? strdup(o->org) : subject_org(ca->cert);
    if (conf.org == NULL) {
        rc = cli_usage_error(what, "--org ORG is required (the CA subject has no O=)");
        goto out;
    }
    conf.mfg_org = mfg != NULL ? subject_org(mfg->cert) : NULL;
    conf.key_type = key_type_of(ca->key);
    if ((rc = make_dir(what, o->dir)) != CLI_OK)
        goto out;
    if ((rc = import_ca(what, &cr, o->dir, ca, o->sp_root, "sp-ca", "sp-root",
                        ca_pw != NULL ? ca_pw : pw)) != CLI_OK)
        goto out;
    if (mfg != NULL && (rc = import_ca(what, &cr, o->dir, mfg, o->mfg_root, "mfg-ca", "mfg-root",
                                       ca_pw != NULL ? ca_pw : pw)) != CLI_OK)
        goto out;
    if (mfg == NULL && o->mfg_root != NULL) {
        /* An anchor only: the KDC can verify devices, this PKI cannot issue them. */
        STACK_OF(X509) *roots = NULL;
        if ((ret = ck_pki_certs_load_pem(o->mfg_root, &roots)) != 0 ||
            (rc = path_in(what, o->dir, "mfg-root.pem", path, sizeof(path))) != CLI_OK ||
            (ret = write_out(&cr, OUT_CERTS, path, NULL, sk_X509_value(roots, 0), NULL, NULL,
                             NULL, NULL, 0)) != 0) {
            sk_X509_pop_free(roots, X509_free);
            if (rc == CLI_OK)
                rc = cli_fail(what, ret);
            goto out;
        }
        sk_X509_pop_free(roots, X509_free);
    }
    if (kdc != NULL) {
        if ((rc = path_in(what, o->dir, "kdc.p12", path, sizeof(path))) != CLI_OK)
            goto out;
        if ((ret = write_out(&cr, OUT_P12, path, kdc, NULL, NULL, NULL, pw, "kdc", p12_flags)) !=
            0) {
            rc = cli_fail(what, ret);
            goto out;
        }
        if ((rc = path_in(what, o->dir, "kdc.pem", path, sizeof(path))) != CLI_OK)
            goto out;
        if ((ret = write_out(&cr, OUT_CERTS, path, NULL, kdc->cert, kdc->chain, NULL, NULL, NULL,
                             0)) != 0) {
            rc = cli_fail(what, ret);
            goto out;
        }
    }
    if ((rc = path_in(what, o->dir, "pki.conf", path, sizeof(path))) != CLI_OK)
        goto out;
    if ((ret = pki_conf_write(path, &conf, "import")) != 0 ||
        (ret = created_add(&cr, path)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    ok = true;
    printf("Imported PKI for realm %s into %s (%zu files)\n", conf.realm, o->dir, cr.n);
    rc = CLI_OK;
out:
    created_finish(&cr, ok);
    for (size_t i = 0; i < n_sans; i++)
        ck_principal_free(sans[i]);
    ck_pki_identity_free(ca);
    ck_pki_identity_free(kdc);
    ck_pki_identity_free(mfg);
    ck_pki_password_free(pw);
    ck_pki_password_free(ca_pw);
    pki_conf_free(&conf);
    return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* export, show, verify */

static int
do_export(const char *what, const struct pki_opts *o)
{
    struct created cr = {{0}, 0};
    ck_pki_identity *id = NULL;
    char *pw = NULL;
    bool ok = false;
    int rc, ret;

    if ((rc = only(what, o, " pem-out pem-nopass password-file force legacy ")) != CLI_OK)
        return rc;
    if (o->n_args != 1 || o->pem_out == NULL)
        return cli_usage_error(what, "expected FILE.p12 and --pem-out PREFIX");
    if ((rc = get_password(what, o->password_file, "--password-file",
                           "Password of the PKCS#12 file: ", false, &pw)) != CLI_OK)
        return rc;
    if ((rc = load_p12_identity(what, o->args[0], pw, &id)) != CLI_OK)
        goto out;
    if ((ret = write_pem_pair(&cr, o->pem_out, id, o->pem_nopass ? NULL : pw,
                              (o->force ? CK_PKI_WRITE_REPLACE : 0) |
                                  (o->legacy ? CK_PKI_P12_LEGACY : 0))) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    ok = true;
    printf("Wrote %s-cert.pem and %s-key.pem (key %s)\n", o->pem_out, o->pem_out,
           o->pem_nopass ? "not encrypted, mode 0600" : "encrypted");
out:
    created_finish(&cr, ok);
    ck_pki_identity_free(id);
    ck_pki_password_free(pw);
    return rc;
}

/* Prints text with control characters (C0, DEL and UTF-8 C1) escaped: certificate contents are
 * chosen by whoever made them and must not drive the terminal. */
static void
print_safe(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    for (; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            printf("\\x%02x", *p);
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            printf("\\x%02x\\x%02x", p[0], p[1]);
            p++;
        } else
            putchar(*p);
    }
}

static void
print_name(const char *label, const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;

    printf("  %-14s ", label);
    if (bio != NULL &&
        X509_NAME_print_ex(bio, name, 0, (XN_FLAG_ONELINE & ~XN_FLAG_SPC_EQ)) >= 0 &&
        BIO_write(bio, "", 1) == 1 && (len = BIO_get_mem_data(bio, &data)) > 0)
        print_safe(data);
    putchar('\n');
    BIO_free(bio);
}

static void
print_key(EVP_PKEY *pkey)
{
    char group[64];

    if (pkey == NULL) {
        printf("(unreadable)");
    } else if (EVP_PKEY_is_a(pkey, "EC") &&
               EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL)) {
        printf("EC %s (%d bits)", group, EVP_PKEY_get_bits(pkey));
    } else {
        printf("%s %d bits", EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "?",
               EVP_PKEY_get_bits(pkey));
    }
}

static void
print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

/* An operator certificate's phone IDs (keyed hashes: the numbers themselves are not in it). */
static void
show_phone_ids(X509 *x)
{
    uint8_t ids[CK_PKI_MAX_PHONE_IDS][CK_PKI_PHONE_ID_LEN];
    size_t n = 0;
    int ret = ck_pki_cert_phone_ids(x, ids, CK_PKI_MAX_PHONE_IDS, &n);

    if (ret == CK_ERR_NOTFOUND)
        return;
    if (ret != 0) {
        printf("  %-14s (malformed: %s)\n", "Phone IDs:", ck_error_context());
        return;
    }
    if (n == 0)
        printf("  %-14s (none)\n", "Phone IDs:");
    for (size_t i = 0; i < n; i++) {
        printf("  %-14s ", i == 0 ? "Phone IDs:" : "");
        print_hex(ids[i], CK_PKI_PHONE_ID_LEN);
        putchar('\n');
    }
}

static void
show_cert(X509 *x, const char *role)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } kus[] = {
        {KU_DIGITAL_SIGNATURE, "digitalSignature"}, {KU_NON_REPUDIATION, "nonRepudiation"},
        {KU_KEY_ENCIPHERMENT, "keyEncipherment"},   {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
        {KU_KEY_AGREEMENT, "keyAgreement"},         {KU_KEY_CERT_SIGN, "keyCertSign"},
        {KU_CRL_SIGN, "cRLSign"},
    };
    char nb[64], na[64], oid[80];
    uint8_t spki[32], mac[6];
    char macbuf[CK_PKI_MAC_TEXT];
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *serial = bn != NULL ? BN_bn2hex(bn) : NULL;
    EXTENDED_KEY_USAGE *eku;
    GENERAL_NAMES *gens;
    ck_principal *sans[8];
    size_t n_sans = 0;
    uint32_t ku;

    printf("Certificate (%s)\n", role);
    print_name("Subject:", X509_get_subject_name(x));
    print_name("Issuer:", X509_get_issuer_name(x));
    printf("  %-14s %s\n", "Serial:", serial ? serial : "?");
    format_time(X509_get0_notBefore(x), nb, sizeof(nb));
    format_time(X509_get0_notAfter(x), na, sizeof(na));
    printf("  %-14s %s\n  %-14s %s\n", "Not before:", nb, "Not after:", na);
    printf("  %-14s ", "Key:");
    print_key(X509_get0_pubkey(x));
    putchar('\n');
    if (ck_pki_spki_sha256(x, spki) == 0) {
        printf("  %-14s ", "SPKI SHA-256:");
        print_hex(spki, sizeof(spki));
        putchar('\n');
    }
    if (X509_get_extension_flags(x) & EXFLAG_CA) {
        long pl = X509_get_pathlen(x);
        if (pl >= 0)
            printf("  %-14s yes (path length %ld)\n", "CA:", pl);
        else
            printf("  %-14s yes\n", "CA:");
    } else {
        printf("  %-14s no\n", "CA:");
    }
    ku = X509_get_key_usage(x);
    if (ku != UINT32_MAX) {
        const char *sep = "";
        printf("  %-14s ", "Key usage:");
        for (size_t i = 0; i < sizeof(kus) / sizeof(kus[0]); i++) {
            if (ku & kus[i].bit) {
                printf("%s%s", sep, kus[i].name);
                sep = ", ";
            }
        }
        putchar('\n');
    }
    if ((eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL)) != NULL) {
        printf("  %-14s ", "EKU:");
        for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
            const ASN1_OBJECT *obj = sk_ASN1_OBJECT_value(eku, i);
            const char *name;
            switch (OBJ_obj2nid(obj)) {
            case NID_pkInitKDC: name = "id-pkinit-KPKdc"; break;
            case NID_pkInitClientAuth: name = "id-pkinit-KPClientAuth"; break;
            case NID_server_auth: name = "serverAuth"; break;
            case NID_client_auth: name = "clientAuth"; break;
            case NID_ipsec_IKE: name = "ipsecIKE"; break;
            default: name = NULL; break;
            }
            OBJ_obj2txt(oid, sizeof(oid), obj, 1);
            if (name != NULL)
                printf("%s%s (%s)", i ? ", " : "", name, oid);
            else
                printf("%s%s", i ? ", " : "", oid);
        }
        putchar('\n');
        sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    }
    if (ck_pki_cert_san_principals(x, sans, 8, &n_sans) != 0) {
        printf("  %-14s (malformed: %s)\n", "PKINIT SAN:", ck_error_context());
    }
    for (size_t i = 0; i < n_sans; i++) {
        char *text = NULL;
        if (ck_principal_unparse(sans[i], 0, &text) == 0) {
            printf("  %-14s ", "PKINIT SAN:");
            print_safe(text);
            putchar('\n');
        }
        free(text);
        ck_principal_free(sans[i]);
    }
    if ((gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL)) != NULL) {
        for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
            if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
                const ASN1_IA5STRING *s = g->d.ia5;
                char *copy = strndup((const char *)ASN1_STRING_get0_data(s),
                                     (size_t)ASN1_STRING_length(s));
                printf("  %-14s ", g->type == GEN_DNS ? "DNS name:" :
                                   g->type == GEN_EMAIL ? "Email:" : "URI:");
                print_safe(copy != NULL ? copy : "?");
                putchar('\n');
                free(copy);
            }
        }
        GENERAL_NAMES_free(gens);
    }
    if (ck_pki_cert_device_mac(x, mac) == 0) {
        ck_pki_mac_format(mac, macbuf);
        printf("  %-14s %s\n", "MAC address:", macbuf);
    }
    show_phone_ids(x);
    ERR_clear_error();
    OPENSSL_free(serial);
    BN_free(bn);
}

/* Loads FILE as PKCS#12 (with a password) or as PEM certificates. *id is set for PKCS#12. */
static int
load_any(const char *what, const struct pki_opts *o, const char *file, ck_pki_identity **id,
         X509 **cert, STACK_OF(X509) **rest)
{
    unsigned char first = 0;
    FILE *f = fopen(file, "rb");
    int rc = CLI_OK, ret;

    *id = NULL;
    *cert = NULL;
    *rest = NULL;
    if (f == NULL)
        return cli_fail(what, ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO,
                                           "%s: %s", file, strerror(errno)));
    if (fread(&first, 1, 1, f) != 1)
        first = 0;
    fclose(f);
    if (first == 0x30) {
        char *pw = NULL;
        if ((rc = get_password(what, o->password_file, "--password-file",
                               "Password of the PKCS#12 file: ", false, &pw)) != CLI_OK)
            return rc;
        rc = load_p12_identity(what, file, pw, id);
        ck_pki_password_free(pw);
        if (rc != CLI_OK)
            return rc;
        X509_up_ref((*id)->cert);
        *cert = (*id)->cert;
        *rest = X509_chain_up_ref((*id)->chain);
        if (*rest == NULL)
            return cli_fail(what, ck_error_set(CK_ERR_NOMEM, "chain"));
        return CLI_OK;
    }
    if ((ret = ck_pki_certs_load_pem(file, rest)) != 0)
        return cli_fail(what, ret);
    *cert = sk_X509_shift(*rest);
    return CLI_OK;
}

static int
do_show(const char *what, const struct pki_opts *o)
{
    ck_pki_identity *id = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *rest = NULL;
    int rc;

    if ((rc = only(what, o, " password-file ")) != CLI_OK)
        return rc;
    if (o->n_args != 1)
        return cli_usage_error(what, "expected one FILE (PKCS#12 or PEM)");
    if ((rc = load_any(what, o, o->args[0], &id, &cert, &rest)) != CLI_OK)
        goto out;
    if (id != NULL) {
        printf("PKCS#12 identity: private key ");
        print_key(id->key);
        printf(", matches the certificate; %d chain certificate(s)\n", sk_X509_num(id->chain));
    }
    show_cert(cert, id != NULL ? "identity" : "1");
    for (int i = 0; i < sk_X509_num(rest); i++) {
        char role[32];
        snprintf(role, sizeof(role), id != NULL ? "chain %d" : "%d", i + (id != NULL ? 1 : 2));
        show_cert(sk_X509_value(rest, i), role);
    }
out:
    ck_pki_identity_free(id);
    X509_free(cert);
    sk_X509_pop_free(rest, X509_free);
    return rc;
}

static int
do_verify(const char *what, const struct pki_opts *o)
{
    ck_pki_identity *id = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *rest = NULL, *anchors = NULL, *more = NULL;
    char *list = NULL, *save = NULL, subj[256] = "";
    int depth = -1, rc, ret;

    if ((rc = only(what, o, " anchors untrusted password-file ")) != CLI_OK)
        return rc;
    if (o->n_args != 1 || o->anchors == NULL)
        return cli_usage_error(what, "expected FILE and --anchors PEM[,PEM...]");
    if ((rc = load_any(what, o, o->args[0], &id, &cert, &rest)) != CLI_OK)
        goto out;
    if ((anchors = sk_X509_new_null()) == NULL || (list = strdup(o->anchors)) == NULL) {
        rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "anchors"));
        goto out;
    }
    for (char *f = strtok_r(list, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
        STACK_OF(X509) *one = NULL;
        if ((ret = ck_pki_certs_load_pem(f, &one)) != 0) {
            rc = cli_fail(what, ret);
            goto out;
        }
        while (sk_X509_num(one) > 0) {
            X509 *a = sk_X509_shift(one);
            if (sk_X509_num(anchors) >= CK_PKI_MAX_ANCHORS || !sk_X509_push(anchors, a)) {
                X509_free(a);
                sk_X509_pop_free(one, X509_free);
                rc = cli_fail(what, ck_error_set(CK_ERR_LIMIT, "more than %d anchors",
                                                 CK_PKI_MAX_ANCHORS));
                goto out;
            }
        }
        sk_X509_free(one);
    }
    if (o->untrusted != NULL) {
        if ((ret = ck_pki_certs_load_pem(o->untrusted, &more)) != 0) {
            rc = cli_fail(what, ret);
            goto out;
        }
        while (sk_X509_num(more) > 0) {
            X509 *c = sk_X509_shift(more);
            if (!sk_X509_push(rest, c)) {
                X509_free(c);
                rc = cli_fail(what, ck_error_set(CK_ERR_NOMEM, "untrusted"));
                goto out;
            }
        }
    }
    if ((ret = verify_chain(cert, rest, anchors, &depth)) != 0) {
        rc = cli_fail(what, ck_error_set(ret, "%s: %s (at depth %d)", o->args[0],
                                         ck_error_context(), depth));
        goto out;
    }
    X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof(subj));
    printf("%s: OK (", o->args[0]);
    print_safe(subj);
    printf(")\n");
    rc = CLI_OK;
out:
    free(list);
    ck_pki_identity_free(id);
    X509_free(cert);
    sk_X509_pop_free(rest, X509_free);
    sk_X509_pop_free(more, X509_free);
    sk_X509_pop_free(anchors, X509_free);
    return rc;
}

static int
do_phone_id(const char *what, const struct pki_opts *o)
{
    uint8_t key[CK_PKI_PHONE_ID_KEY_LEN], id[CK_PKI_PHONE_ID_LEN];
    int rc, ret;

    if ((rc = only(what, o, " key ")) != CLI_OK)
        return rc;
    if (o->key == NULL || o->n_args != 1)
        return cli_usage_error(what, "expected --key FILE and one NUMBER");
    if ((ret = ck_pki_phone_id_key_load(o->key, key)) != 0)
        return cli_fail(what, ret);
    ret = ck_pki_phone_id(key, o->args[0], id);
    ck_memzero(key, sizeof(key));
    if (ret != 0)
        return cli_fail(what, ret);
    print_hex(id, sizeof(id));
    putchar('\n');
    return CLI_OK;
}

int
cli_pki(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct pki_opts *o);
    } subs[] = {
        {"init", do_init},           {"issue-device", do_issue_device},
        {"issue-client", do_issue_client}, {"issue-server", do_issue_server},
        {"import", do_import},       {"export", do_export},
        {"show", do_show},           {"verify", do_verify},
        {"phone-id", do_phone_id},
    };
    char what[64];
    struct pki_opts o;
    int rc;

    if (cli_family_help(argc, argv, pki_help, NULL, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "pki %s", subs[i].name);
        rc = parse_opts(what, argc - 1, argv + 1, &o);
        if (rc < 0)
            return CLI_OK; /* --help */
        if (rc != CLI_OK)
            return rc;
        return subs[i].fn(what, &o);
    }
    return cli_unknown_verb("pki", argv[1]);
}
