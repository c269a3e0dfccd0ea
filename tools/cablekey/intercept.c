/* cablekey intercept add|list|revoke|records|get|purge|open|decrypt: the intercept
 * administrator's orders and records (lib/intercept, docs/cablekey-intercept.md) and the
 * law-enforcement side's opening of a record and decryption of a captured call with it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/intercept.h"
#include "cablekey/media.h"
#include "cablekey/pki.h"
#include "cablekey/util.h"
#include "intercept/li_int.h"
#include "cli.h"

enum {
    OPT_DB = 256, OPT_NUMBER, OPT_MAC, OPT_FROM, OPT_UNTIL, OPT_AUTHORITY, OPT_CERT, OPT_ACTOR,
    OPT_RECORD, OPT_KEY, OPT_PASS_FILE, OPT_SHOW_KEY, OPT_PCAP, OPT_OUT_PREFIX, OPT_ORDER,
    OPT_CALL, OPT_OUT, OPT_ESCROW_DIR, OPT_HELP,
};

static const struct option li_opts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"number", required_argument, NULL, OPT_NUMBER},
    {"mac", required_argument, NULL, OPT_MAC},
    {"from", required_argument, NULL, OPT_FROM},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"authority", required_argument, NULL, OPT_AUTHORITY},
    {"cert", required_argument, NULL, OPT_CERT},
    {"actor", required_argument, NULL, OPT_ACTOR},
    {"record", required_argument, NULL, OPT_RECORD},
    {"key", required_argument, NULL, OPT_KEY},
    {"pass-file", required_argument, NULL, OPT_PASS_FILE},
    {"show-key", no_argument, NULL, OPT_SHOW_KEY},
    {"pcap", required_argument, NULL, OPT_PCAP},
    {"out-prefix", required_argument, NULL, OPT_OUT_PREFIX},
    {"order", required_argument, NULL, OPT_ORDER},
    {"call", required_argument, NULL, OPT_CALL},
    {"out", required_argument, NULL, OPT_OUT},
    {"escrow-dir", required_argument, NULL, OPT_ESCROW_DIR},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char li_help[] =
    "usage: cablekey intercept SUBCOMMAND --db PATH [--actor TEXT] ... (intercept administrator)\n"
    "       cablekey intercept open|decrypt --record FILE --key FILE ... (law enforcement)\n"
    "\n"
    "  add (--number N | --mac MAC) --from TIME --until TIME --authority TEXT --cert FILE\n"
    "      a new order: calls to or from the target within [from, until) are escrowed to\n"
    "      the certificate (RSA or EC); the first add creates the database (mode 0600)\n"
    "  list                   every order: id, state, target, window, authority, cert\n"
    "  revoke ID              stop an order (kept, marked revoked)\n"
    "  records                escrowed records: order, call id, created, expires, size\n"
    "  get --order ID --call CALLID --out FILE\n"
    "                         export one record (DER EnvelopedData, written 0600)\n"
    "  purge [--escrow-dir DIR]\n"
    "                         delete records past their retention (and their drop files)\n"
    "  open --record FILE --key FILE [--pass-file F] [--show-key]\n"
    "                         print a record's fields; K_call only with --show-key\n"
    "  decrypt --record FILE --key FILE [--pass-file F] --pcap CAP --out-prefix P\n"
    "                         decrypt the call's media in a capture into P-sd.wav (source to\n"
    "                         destination) and P-ds.wav (destination to source)\n"
    "\n"
    "The database is the intercept administrator's own file: it is refused when others may\n"
    "read or write it (mode & 007). Every verb on it is audited with the actor: --actor TEXT\n"
    "(recorded with the Unix user running the command) or the Unix user alone. TIME is epoch\n"
    "seconds, YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]' (UTC). MAC: aa:bb:cc:dd:ee:ff,\n"
    "aa-bb-cc-dd-ee-ff or aabbccddeeff. --key is the certificate holder's private key: a PEM\n"
    "file, or PKCS#12 (its password in --pass-file). CAP is a pcap or pcapng file (Ethernet,\n"
    "loopback, raw IP or Linux cooked). See docs/cablekey-intercept.md.\n";

struct liopts {
    const char *db, *number, *mac, *authority, *cert, *actor, *record, *key, *pass_file;
    const char *pcap, *out_prefix, *call, *out, *escrow_dir;
    bool has_from, has_until, has_order, show_key;
    int64_t from, until, order;
    const char **args;
    size_t n_args;
};

static int
parse_opts(const char *what, int argc, char **argv, struct liopts *o)
{
    int c;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", li_opts, NULL)) != -1) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case OPT_NUMBER: o->number = optarg; break;
        case OPT_MAC: o->mac = optarg; break;
        case OPT_AUTHORITY: o->authority = optarg; break;
        case OPT_CERT: o->cert = optarg; break;
        case OPT_ACTOR: o->actor = optarg; break;
        case OPT_RECORD: o->record = optarg; break;
        case OPT_KEY: o->key = optarg; break;
        case OPT_PASS_FILE: o->pass_file = optarg; break;
        case OPT_SHOW_KEY: o->show_key = true; break;
        case OPT_PCAP: o->pcap = optarg; break;
        case OPT_OUT_PREFIX: o->out_prefix = optarg; break;
        case OPT_CALL: o->call = optarg; break;
        case OPT_OUT: o->out = optarg; break;
        case OPT_ESCROW_DIR: o->escrow_dir = optarg; break;
        case OPT_FROM:
            if (cli_parse_time(optarg, &o->from) != 0)
                return cli_usage_error(what, "--from: %s", ck_error_context());
            o->has_from = true;
            break;
        case OPT_UNTIL:
            if (cli_parse_time(optarg, &o->until) != 0)
                return cli_usage_error(what, "--until: %s", ck_error_context());
            o->has_until = true;
            break;
        case OPT_ORDER:
            if (ck_parse_int64(optarg, 1, INT64_MAX, &o->order) != 0)
                return cli_usage_error(what, "--order: not an order id");
            o->has_order = true;
            break;
        default: return cli_getopt_other(what, c, OPT_HELP, argv, li_help);
        }
    }
    o->args = (const char **)(argv + optind);
    o->n_args = (size_t)(argc - optind);
    return CLI_OK;
}

/* Accepts only the options a subcommand documents. */
static int
only(const char *what, const struct liopts *o, const char *allowed)
{
    const struct {
        bool set;
        const char *name;
    } used[] = {
        {o->db != NULL, "db"}, {o->number != NULL, "number"}, {o->mac != NULL, "mac"},
        {o->has_from, "from"}, {o->has_until, "until"}, {o->authority != NULL, "authority"},
        {o->cert != NULL, "cert"}, {o->actor != NULL, "actor"}, {o->record != NULL, "record"},
        {o->key != NULL, "key"}, {o->pass_file != NULL, "pass-file"},
        {o->show_key, "show-key"}, {o->pcap != NULL, "pcap"},
        {o->out_prefix != NULL, "out-prefix"}, {o->has_order, "order"},
        {o->call != NULL, "call"}, {o->out != NULL, "out"},
        {o->escrow_dir != NULL, "escrow-dir"},
    };
    char needle[32];

    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        snprintf(needle, sizeof(needle), " %s ", used[i].name);
        if (used[i].set && strstr(allowed, needle) == NULL)
            return cli_usage_error(what, "--%s does not apply here", used[i].name);
    }
    return CLI_OK;
}

static void
actor_of(const struct liopts *o, char *buf, size_t size)
{
    char unix_actor[256];

    cli_actor(unix_actor, sizeof(unix_actor));
    if (o->actor != NULL)
        snprintf(buf, size, "%s [%s]", o->actor, unix_actor);
    else
        ck_strlcpy(buf, unix_actor, size);
}

static int64_t
now_sec(void)
{
    int64_t s;
    int32_t us;

    ck_now(&s, &us);
    return s;
}

/* The database, and who is acting on it (every access is audited with the actor). */
static int
open_db(const char *what, const struct liopts *o, unsigned flags, ck_li **li, char *actor,
        size_t actor_size)
{
    int ret;

    if (o->db == NULL)
        return cli_usage_error(what, "--db PATH is required");
    if (o->actor != NULL && (*o->actor == '\0' || strlen(o->actor) > 128))
        return cli_usage_error(what, "--actor: 1 to 128 characters");
    if ((ret = ck_li_open(o->db, flags, li)) != 0)
        return cli_fail(what, ret);
    actor_of(o, actor, actor_size);
    return CLI_OK;
}

/* A verb that takes only options (those in allowed), no argument. */
static int
options_only(const char *what, const struct liopts *o, const char *allowed)
{
    int rc;

    if ((rc = only(what, o, allowed)) != CLI_OK)
        return rc;
    return cli_no_more_args(what, o->n_args ? o->args[0] : NULL);
}

/* A whole small file into memory (at most max bytes). */
static int
read_small(const char *path, size_t max, uint8_t **out, size_t *len)
{
    uint8_t *buf = NULL;
    struct stat sb;
    int fd, ret;

    *out = NULL;
    *len = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "%s: %s", path,
                            strerror(errno));
    /* A regular file's size bounds the buffer (a capture limit is large); a pipe gets max. */
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
        if ((uint64_t)sb.st_size > max) {
            close(fd);
            return ck_error_set(CK_ERR_LIMIT, "%s: larger than %zu bytes", path, max);
        }
        max = (size_t)sb.st_size;
    }
    if ((buf = malloc(max + 2)) == NULL) {
        close(fd);
        return ck_error_set(CK_ERR_NOMEM, "%s: out of memory", path);
    }
    ret = ck_fd_read_all(fd, buf, max + 1, len);
    close(fd);
    if (ret == 0 && *len > max)
        ret = ck_error_set(CK_ERR_LIMIT, "%s: larger than %zu bytes", path, max);
    if (ret != 0) {
        free(buf);
        *len = 0;
        return ret;
    }
    buf[*len] = '\0';
    *out = buf;
    return 0;
}

static int
do_add(const char *what, const struct liopts *o)
{
    ck_li *li = NULL;
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    char actor[512];
    int64_t id = 0;
    int rc, ret;

    if ((rc = only(what, o, " db number mac from until authority cert actor ")) != CLI_OK)
        return rc;
    if ((o->number == NULL) == (o->mac == NULL))
        return cli_usage_error(what, "exactly one of --number and --mac");
    if (!o->has_from || !o->has_until || o->authority == NULL || o->cert == NULL)
        return cli_usage_error(what, "--from, --until, --authority and --cert are required");
    if (o->n_args != 0)
        return cli_usage_error(what, "unexpected argument '%s'", o->args[0]);
    if ((ret = read_small(o->cert, CK_LI_MAX_CERT, &pem, &pem_len)) != 0)
        return cli_fail(what, ret);
    if ((rc = open_db(what, o, CK_LI_CREATE, &li, actor, sizeof(actor))) != CLI_OK)
        goto out;
    ret = ck_li_order_add(li, o->number != NULL ? CK_LI_TARGET_NUMBER : CK_LI_TARGET_MAC,
                          o->number != NULL ? o->number : o->mac, o->from, o->until,
                          o->authority, (const char *)pem, actor, now_sec(), &id);
    if (ret != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    printf("order %" PRId64 " added\n", id);
    rc = CLI_OK;
out:
    ck_li_close(li);
    free(pem);
    return rc;
}

static const char *
order_state(const struct ck_li_order *o, int64_t now)
{
    if (o->revoked != 0)
        return "revoked";
    if (now < o->not_before)
        return "pending";
    if (now >= o->not_after)
        return "expired";
    return "active";
}

static int
do_list(const char *what, const struct liopts *o)
{
    ck_li *li = NULL;
    struct ck_li_order *v = NULL;
    size_t n = 0;
    char actor[512], t1[64], t2[64];
    int64_t now = now_sec();
    int rc, ret;

    if ((rc = options_only(what, o, " db actor ")) != CLI_OK)
        return rc;
    if ((rc = open_db(what, o, 0, &li, actor, sizeof(actor))) != CLI_OK)
        return rc;
    if ((ret = ck_li_order_list(li, actor, now, &v, &n)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        cli_format_time(v[i].not_before, t1, sizeof(t1));
        cli_format_time(v[i].not_after, t2, sizeof(t2));
        printf("%" PRId64 "\t%s\t%s:%s\t%s\t%s\t%s\t%s\tsha256:%s\n", v[i].id,
               order_state(&v[i], now), v[i].kind == CK_LI_TARGET_NUMBER ? "number" : "mac",
               v[i].target, t1, t2, v[i].authority, v[i].cert_subject, v[i].cert_sha256);
    }
out:
    free(v);
    ck_li_close(li);
    return rc;
}

static int
do_revoke(const char *what, const struct liopts *o)
{
    ck_li *li = NULL;
    char actor[512];
    int64_t id;
    int rc, ret;

    if ((rc = only(what, o, " db actor ")) != CLI_OK)
        return rc;
    if (o->n_args != 1 || ck_parse_int64(o->args[0], 1, INT64_MAX, &id) != 0)
        return cli_usage_error(what, "expected one order id");
    if ((rc = open_db(what, o, 0, &li, actor, sizeof(actor))) != CLI_OK)
        return rc;
    if ((ret = ck_li_order_revoke(li, id, actor, now_sec())) != 0)
        rc = cli_fail(what, ret);
    else
        printf("order %" PRId64 " revoked\n", id);
    ck_li_close(li);
    return rc;
}

static int
do_records(const char *what, const struct liopts *o)
{
    ck_li *li = NULL;
    struct ck_li_record_info *v = NULL;
    size_t n = 0;
    char actor[512], t1[64], t2[64];
    int rc, ret;

    if ((rc = options_only(what, o, " db actor ")) != CLI_OK)
        return rc;
    if ((rc = open_db(what, o, 0, &li, actor, sizeof(actor))) != CLI_OK)
        return rc;
    if ((ret = ck_li_record_list(li, actor, now_sec(), &v, &n)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        cli_format_time(v[i].created, t1, sizeof(t1));
        cli_format_time(v[i].expires, t2, sizeof(t2));
        printf("%" PRId64 "\t%s\t%s\t%s\t%zu\n", v[i].order_id, v[i].call_id, t1, t2,
               v[i].der_len);
    }
out:
    free(v);
    ck_li_close(li);
    return rc;
}

static int
do_get(const char *what, const struct liopts *o)
{
    ck_li *li = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    char actor[512];
    int rc, ret;

    if ((rc = options_only(what, o, " db actor order call out ")) != CLI_OK)
        return rc;
    if (!o->has_order || o->call == NULL || o->out == NULL)
        return cli_usage_error(what, "--order, --call and --out are required");
    if ((rc = open_db(what, o, 0, &li, actor, sizeof(actor))) != CLI_OK)
        return rc;
    if ((ret = ck_li_record_get(li, o->order, o->call, actor, now_sec(), &der, &len)) != 0 ||
        (ret = ck_file_write_atomic(o->out, der, len, CK_WRITE_REPLACE)) != 0)
        rc = cli_fail(what, ret);
    free(der);
    ck_li_close(li);
    return rc;
}

static int
do_purge(const char *what, const struct liopts *o)
{
    ck_li *li = NULL;
    size_t purged = 0, files = 0;
    char actor[512];
    int rc, ret;

    if ((rc = options_only(what, o, " db actor escrow-dir ")) != CLI_OK)
        return rc;
    if ((rc = open_db(what, o, 0, &li, actor, sizeof(actor))) != CLI_OK)
        return rc;
    if ((ret = ck_li_purge_drops(li, actor, now_sec(), o->escrow_dir, &purged, &files)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    printf("%zu records purged", purged);
    if (o->escrow_dir != NULL)
        printf(", %zu drop files removed", files);
    printf("\n");
out:
    ck_li_close(li);
    return rc;
}

/* Reads the record file and opens it with the key: the law-enforcement side. */
static int
open_record(const char *what, const struct liopts *o, struct ck_li_call *call)
{
    uint8_t *der = NULL;
    size_t len = 0;
    char *pass = NULL;
    int ret;

    if (o->record == NULL || o->key == NULL)
        return cli_usage_error(what, "--record and --key are required");
    if (o->pass_file != NULL && (ret = ck_pki_password_read(o->pass_file, &pass)) != 0)
        return cli_fail(what, ret);
    ret = read_small(o->record, CK_LI_MAX_RECORD, &der, &len);
    if (ret == 0)
        ret = ck_li_record_open(der, len, o->key, pass, call);
    free(der);
    ck_pki_password_free(pass);
    if (ret != 0)
        return cli_fail(what, ret);
    return CLI_OK;
}

static int
do_open(const char *what, const struct liopts *o)
{
    struct ck_li_call c;
    char t[64];
    int rc;

    if ((rc = options_only(what, o, " record key pass-file show-key ")) != CLI_OK)
        return rc;
    if ((rc = open_record(what, o, &c)) != CLI_OK)
        return rc;
    cli_format_time(c.started, t, sizeof(t));
    printf("call-id: %s\ncaller: %s\ncallee: %s\ncaller-mac: %s\ncallee-mac: %s\n"
           "started: %s (%" PRId64 ")\nspi: 0x%08" PRIx32 "\nmedia: %s\nipsec: %s\n"
           "compat-seq: %s\nsource-media: %s\ndestination-media: %s\n",
           c.call_id, c.caller, c.callee, c.caller_mac[0] ? c.caller_mac : "-",
           c.callee_mac[0] ? c.callee_mac : "-", t, c.started, c.spi, c.media,
           c.ipsec_suite[0] ? c.ipsec_suite : "none", c.compat_seq ? "yes" : "no",
           c.src_media_addr[0] ? c.src_media_addr : "-",
           c.dst_media_addr[0] ? c.dst_media_addr : "-");
    if (o->show_key) {
        printf("k-call: ");
        for (size_t i = 0; i < CK_CALL_KEY_LEN; i++)
            printf("%02x", c.k_call[i]);
        printf("\n");
    } else {
        printf("k-call: (not shown; --show-key)\n");
    }
    ck_li_call_clear(&c);
    return CLI_OK;
}

/* ---- decrypt ---- */

struct endpoint_addr {
    int family;          /* 4, 6, or 0 for an unspecified address (port match only) */
    uint8_t addr[16];
    uint16_t port;
};

/* "ADDR PORT" as the record holds it (ADDR:PORT and [V6]:PORT are accepted too). */
static int
parse_media_addr(const char *s, struct endpoint_addr *out)
{
    char host[64];
    const char *sep = strrchr(s, ' ');
    size_t hl;
    int64_t port;

    memset(out, 0, sizeof(*out));
    if (sep == NULL)
        sep = strrchr(s, ':');
    if (sep == NULL || (hl = (size_t)(sep - s)) == 0 || hl >= sizeof(host))
        return ck_error_set(CK_ERR_DECODE, "media address '%s': not 'ADDR PORT'", s);
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    if (ck_parse_int64(sep + 1, 1, 65535, &port) != 0)
        return ck_error_set(CK_ERR_DECODE, "media address '%s': bad port", s);
    out->port = (uint16_t)port;
    if (inet_pton(AF_INET, host, out->addr) == 1)
        out->family = 4;
    else if (inet_pton(AF_INET6, host, out->addr) == 1)
        out->family = 6;
    else
        return ck_error_set(CK_ERR_DECODE, "media address '%s': bad address", s);
    {
        static const uint8_t zero[16];
        if (memcmp(out->addr, zero, out->family == 4 ? 4 : 16) == 0)
            out->family = 0;
    }
    return 0;
}

static bool
addr_is(const struct endpoint_addr *e, int family, const uint8_t *addr, uint16_t port)
{
    if (port != e->port)
        return false;
    if (e->family == 0)
        return true;
    return family == e->family && memcmp(addr, e->addr, family == 4 ? 4 : 16) == 0;
}

struct direction {
    const char *name;          /* "sd", "ds" */
    ck_media_ctx *ctx;
    uint64_t seen, ok, failed, replayed, other_pt;
    bool have_ts0;
    uint32_t ts0;
    int16_t *pcm;
    size_t n, cap;
};

struct decrypt_ctx {
    struct endpoint_addr src, dst;
    struct direction sd, ds;
};

/* Places a frame's samples at its RTP timestamp's offset from the stream's first packet, so a
 * lost packet leaves silence where it was and the two directions keep their timing. */
static int
place_samples(struct direction *d, uint32_t ts, const uint8_t *ulaw, size_t n)
{
    uint32_t off;
    size_t end;

    if (!d->have_ts0) {
        d->ts0 = ts;
        d->have_ts0 = true;
    }
    off = ts - d->ts0;
    if (off >= CK_WAV_MAX_SAMPLES || n > CK_WAV_MAX_SAMPLES - off)
        return 0; /* before the first packet (wrapped) or beyond an hour: not placed */
    end = (size_t)off + n;
    if (end > d->cap) {
        size_t cap = d->cap ? d->cap : 8000;
        int16_t *p;
        while (cap < end)
            cap *= 2;
        if (cap > CK_WAV_MAX_SAMPLES)
            cap = CK_WAV_MAX_SAMPLES;
        if ((p = realloc(d->pcm, cap * sizeof(*p))) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "decrypt: out of memory");
        memset(p + d->cap, 0, (cap - d->cap) * sizeof(*p));
        d->pcm = p;
        d->cap = cap;
    }
    ck_ulaw_decode_buf(ulaw, n, d->pcm + off);
    if (end > d->n)
        d->n = end;
    return 0;
}

static int
on_udp(void *arg, const struct ck_li_udp *u)
{
    struct decrypt_ctx *x = arg;
    struct direction *d;
    uint8_t buf[CK_RTP_MAX_PACKET + CK_MEDIA_MAX_OVERHEAD];
    struct ck_rtp_packet pkt;
    size_t len = u->len;
    int ret;

    /* By where it goes: an end need not send from the port it receives on (no symmetric RTP
     * assumed), but each end's media address is where the other sends. */
    if (addr_is(&x->dst, u->family, u->dst, u->dport))
        d = &x->sd;
    else if (addr_is(&x->src, u->family, u->dst, u->dport))
        d = &x->ds;
    else
        return 0;
    d->seen++;
    if (len > sizeof(buf)) {
        d->failed++;
        return 0;
    }
    memcpy(buf, u->payload, len);
    ret = ck_media_unprotect(d->ctx, buf, &len);
    if (ret == CK_ERR_REPLAY) {
        d->replayed++; /* a duplicate in the capture (e.g. captured on two interfaces) */
        return 0;
    }
    if (ret != 0 || ck_rtp_parse(buf, len, &pkt) != 0) {
        d->failed++;
        return 0;
    }
    d->ok++;
    if (pkt.hdr.payload_type != CK_RTP_PT_PCMU) {
        d->other_pt++;
        return 0;
    }
    return place_samples(d, pkt.hdr.timestamp, pkt.payload, pkt.payload_len);
}

static int
write_wav(const char *what, const char *prefix, const struct direction *d)
{
    char path[4096];
    int ret;

    if ((size_t)snprintf(path, sizeof(path), "%s-%s.wav", prefix, d->name) >= sizeof(path))
        return cli_usage_error(what, "--out-prefix too long");
    if ((ret = ck_wav_write(path, d->pcm, d->n)) != 0)
        return cli_fail(what, ret);
    /* ck_wav_write makes recordings 0644; an intercepted call's audio is for its holder. */
    if (chmod(path, 0600) != 0)
        return cli_fail(what, ck_error_set(CK_ERR_IO, "%s: chmod: %s", path, strerror(errno)));
    return CLI_OK;
}

static int
do_decrypt(const char *what, const struct liopts *o)
{
    struct ck_li_call c;
    struct decrypt_ctx x;
    struct ck_li_pcap_stats st;
    enum ck_media_mode mode;
    uint8_t *cap = NULL;
    size_t cap_len = 0;
    int rc, ret;

    memset(&x, 0, sizeof(x));
    x.sd.name = "sd";
    x.ds.name = "ds";
    if ((rc = options_only(what, o, " record key pass-file pcap out-prefix ")) != CLI_OK)
        return rc;
    if (o->pcap == NULL || o->out_prefix == NULL)
        return cli_usage_error(what, "--pcap and --out-prefix are required");
    if ((rc = open_record(what, o, &c)) != CLI_OK)
        return rc;
    if ((ret = parse_media_addr(c.src_media_addr, &x.src)) != 0 ||
        (ret = parse_media_addr(c.dst_media_addr, &x.dst)) != 0 ||
        (ret = ck_media_mode_parse(c.media, &mode)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    /* The destination receives s->d (is_source false), the source receives d->s. */
    if ((ret = ck_media_ctx_new(mode, CK_SRTP_RECV, false, mode == CK_MEDIA_RTP ? NULL : c.k_call,
                                mode == CK_MEDIA_RTP ? 0 : CK_CALL_KEY_LEN, c.spi,
                                &x.sd.ctx)) != 0 ||
        (ret = ck_media_ctx_new(mode, CK_SRTP_RECV, true, mode == CK_MEDIA_RTP ? NULL : c.k_call,
                                mode == CK_MEDIA_RTP ? 0 : CK_CALL_KEY_LEN, c.spi,
                                &x.ds.ctx)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    ck_li_call_clear(&c); /* the contexts hold the derived keys; K_call is not needed again */
    if ((ret = read_small(o->pcap, CK_LI_PCAP_MAX_FILE, &cap, &cap_len)) != 0 ||
        (ret = ck_li_pcap_walk(cap, cap_len, on_udp, &x, &st)) != 0) {
        rc = cli_fail(what, ret);
        goto out;
    }
    if ((rc = write_wav(what, o->out_prefix, &x.sd)) != CLI_OK ||
        (rc = write_wav(what, o->out_prefix, &x.ds)) != CLI_OK)
        goto out;
    printf("decrypt media=%s packets=%" PRIu64 " sd=%" PRIu64 "/%" PRIu64 " ds=%" PRIu64
           "/%" PRIu64 " failed=%" PRIu64 " replayed=%" PRIu64 " samples_sd=%zu "
           "samples_ds=%zu\n",
           ck_media_mode_name(mode), st.records, x.sd.ok, x.sd.seen, x.ds.ok, x.ds.seen,
           x.sd.failed + x.ds.failed, x.sd.replayed + x.ds.replayed, x.sd.n, x.ds.n);
    if (x.sd.seen + x.ds.seen == 0) {
        fprintf(stderr, "cablekey: %s: no packet of the call's media in %s\n", what, o->pcap);
        rc = CLI_FAIL;
    } else if (x.sd.failed + x.ds.failed != 0) {
        fprintf(stderr, "cablekey: %s: %" PRIu64 " packets did not decrypt (not this call's "
                        "keys, or altered)\n", what, x.sd.failed + x.ds.failed);
        rc = CLI_FAIL;
    }
out:
    ck_li_call_clear(&c);
    ck_media_ctx_free(x.sd.ctx);
    ck_media_ctx_free(x.ds.ctx);
    free(x.sd.pcm);
    free(x.ds.pcm);
    free(cap);
    return rc;
}

int
cli_intercept(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *what, const struct liopts *o);
    } subs[] = {
        {"add", do_add},         {"list", do_list},   {"revoke", do_revoke},
        {"records", do_records}, {"get", do_get},     {"purge", do_purge},
        {"open", do_open},       {"decrypt", do_decrypt},
    };
    char what[64];
    struct liopts o;
    int rc;

    if (cli_family_help(argc, argv, li_help, NULL, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) != 0)
            continue;
        snprintf(what, sizeof(what), "intercept %s", subs[i].name);
        rc = parse_opts(what, argc - 1, argv + 1, &o);
        if (rc == CLI_HELP_SHOWN)
            return CLI_OK;
        if (rc != CLI_OK)
            return rc;
        return subs[i].fn(what, &o);
    }
    return cli_unknown_verb("intercept", argv[1]);
}
