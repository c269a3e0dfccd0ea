/* The keying server's secure-topology file (see include/cablekey/ksv_topology.h for the syntax).
 *
 * Two passes. The first reads lines into raw records that still name each other by text, so a
 * link may name a node declared further down. The second sorts every table by name and resolves
 * the references with binary search; conflicts (a directed link twice, a node in two groups of
 * one address...) then show up as neighbours in a sorted array. Everything is O(n log n), so the
 * largest file the limits allow checks in well under a second and the fuzzer never times out.
 *
 * Errors do not stop the parse (except limits): --check should list every mistake of a file in
 * one run, sorted by line. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/ksv_topology.h"
#include "cablekey/lkh.h"
#include "cablekey/util.h"

/* ---- string arena: every name lives as long as the topology ------------------------------ */

#define ARENA_BLOCK 65536

struct arena_block {
    struct arena_block *next;
    size_t used, size;
    char data[];
};

static char *
arena_strndup(struct arena_block **head, const char *s, size_t n)
{
    struct arena_block *b = *head;
    char *p;

    if (b == NULL || b->size - b->used < n + 1) {
        size_t size = n + 1 > ARENA_BLOCK ? n + 1 : ARENA_BLOCK;
        if ((b = malloc(sizeof(*b) + size)) == NULL)
            return NULL;
        b->next = *head;
        b->used = 0;
        b->size = size;
        *head = b;
    }
    p = b->data + b->used;
    memcpy(p, s, n);
    p[n] = '\0';
    b->used += n + 1;
    return p;
}

static void
arena_free(struct arena_block *b)
{
    while (b != NULL) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
}

/* ---- the parsed topology ----------------------------------------------------------------- */

struct ksv {
    const char *name;
    const char *address;
    int line;
};

struct raw_link {
    const char *from, *to, *policy;
    bool both;
    int line;
};

struct raw_member {
    size_t group;              /* index into groups in file order (before the sort) */
    const char *node;
    int line;
};

/* One directed pair after resolution. */
struct dlink {
    size_t from, to, policy;
    int line;
};

struct grp {
    struct ck_ksvtopo_group pub;
    const char *policy_name;
    int policy_line;
    bool has_address, has_policy, has_degree, has_keying;
    size_t n_raw_members;
    size_t first_member;       /* into members_by_group, after resolution */
};

struct pol {
    struct ck_ksvtopo_policy pub;
    bool has_trans, has_sec, has_kbyte, has_enc, has_auth, has_mode, has_ack;
};

struct node_rec {
    struct ck_ksvtopo_node pub;
    size_t first_sa, n_sa, first_grp, n_grp;
};

struct ck_ksvtopo {
    struct arena_block *arena;
    struct node_rec *nodes;
    size_t n_nodes, cap_nodes;
    struct pol *pols;
    size_t n_pols, cap_pols;
    struct grp *grps;
    size_t n_grps, cap_grps;
    struct ksv *ksvs;
    size_t n_ksvs, cap_ksvs;
    struct raw_link *rlinks;
    size_t n_rlinks, cap_rlinks;
    struct raw_member *rmembers;
    size_t n_rmembers, cap_rmembers;
    size_t n_directed;
    struct ck_ksvtopo_sa *sas;             /* sorted by node, peer, direction */
    size_t n_sas;
    struct ck_ksvtopo_membership *mships;  /* sorted by node, group name */
    size_t n_mships;
    const struct ck_ksvtopo_node **members_by_group; /* per group, sorted by name */
};

struct parser {
    struct ck_ksvtopo *t;
    struct ck_ksvtopo_report *rep;
    struct ck_ksvtopo_report local;
    const char *file;
    int line;
    int first_err;             /* CK_ERR_CONFIG, or CK_ERR_LIMIT once a limit was hit */
    /* the open block */
    enum { BLK_NONE, BLK_POLICY, BLK_GROUP } blk;
    size_t blk_idx;
    int blk_line;
    char buf[CK_KSVTOPO_MAX_LINE + 1];
    char *tok[CK_KSVTOPO_MAX_LINE / 2 + 2];
};

static int
perr_at(struct parser *p, int line, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records an error; returns code so that callers can write return perr_at(...). */
static int
perr_at(struct parser *p, int line, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->rep->n < CK_KSVTOPO_MAX_ERRORS) {
        p->rep->err[p->rep->n].line = line;
        snprintf(p->rep->err[p->rep->n].msg, sizeof(p->rep->err[0].msg), "%s:%d: %s", p->file,
                 line, msg);
        p->rep->n++;
    } else {
        p->rep->dropped++;
    }
    /* A limit stops the parse: its message is the one the caller sees. Otherwise the earliest
     * line's error is chosen at the end, once the report is sorted. */
    if (code == CK_ERR_LIMIT) {
        p->first_err = code;
        ck_error_set(code, "%s:%d: %s", p->file, line, msg);
    } else if (p->first_err == 0) {
        p->first_err = code;
    }
    return code;
}

#define PERR(p, ...) perr_at((p), (p)->line, CK_ERR_CONFIG, __VA_ARGS__)

/* Grows an array by one slot; CK_ERR_LIMIT past max. */
static int
grow(struct parser *p, void **arr, size_t *n, size_t *cap, size_t elem, size_t max,
     const char *what)
{
    if (*n >= max)
        return perr_at(p, p->line, CK_ERR_LIMIT, "more than %zu %s", max, what);
    if (*n == *cap) {
        size_t ncap = *cap == 0 ? 16 : *cap * 2;
        void *na;
        if (ncap > max)
            ncap = max;
        if ((na = realloc(*arr, ncap * elem)) == NULL)
            return ck_error_set(CK_ERR_NOMEM, "topology: out of memory");
        *arr = na;
        *cap = ncap;
    }
    memset((char *)*arr + *n * elem, 0, elem);
    (*n)++;
    return 0;
}

#define GROW(p, field, max, what)                                                          \
    grow((p), (void **)&(p)->t->field, &(p)->t->n_##field, &(p)->t->cap_##field,           \
         sizeof(*(p)->t->field), (max), (what))

static const char *
sdup(struct parser *p, const char *s)
{
    const char *r = arena_strndup(&p->t->arena, s, strlen(s));

    if (r == NULL)
        ck_error_set(CK_ERR_NOMEM, "topology: out of memory");
    return r;
}

/* qsort with nothing to sort: the tables start out NULL, and qsort's base is declared nonnull. */
static void
sort_n(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

/* ---- lexical ----------------------------------------------------------------------------- */

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool
valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CK_KSVTOPO_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

/* Principals are printable and blank-free; their syntax is the KDC's business. */
static bool
valid_principal(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static size_t
tokenize(char *s, char **tok, size_t max)
{
    size_t n = 0;

    for (;;) {
        while (is_blank(*s))
            s++;
        if (*s == '\0' || n == max)
            return n;
        tok[n++] = s;
        while (*s != '\0' && !is_blank(*s))
            s++;
        if (*s != '\0')
            *s++ = '\0';
    }
}

/* Canonical text of an IP address; multicast selects which kind is wanted. */
static int
parse_address(struct parser *p, const char *s, bool multicast, const char **out)
{
    unsigned char a[16];
    char txt[INET6_ADDRSTRLEN];
    int af = strchr(s, ':') != NULL ? AF_INET6 : AF_INET;
    bool mc;

    if (inet_pton(af, s, a) != 1)
        return PERR(p, "\"%s\" is not an IPv4 or IPv6 address", s);
    mc = af == AF_INET ? (a[0] & 0xf0) == 0xe0 : a[0] == 0xff;
    if (multicast && !mc)
        return PERR(p, "group address %s is not a multicast address", s);
    if (!multicast && mc)
        return PERR(p, "node address %s is a multicast address", s);
    if (!multicast) {
        static const unsigned char zero[16], v4bcast[4] = {255, 255, 255, 255};
        bool bad = af == AF_INET ? a[0] == 0 || memcmp(a, v4bcast, 4) == 0
                                 : memcmp(a, zero, 16) == 0;
        if (bad)
            return PERR(p, "node address %s is not a unicast address", s);
    }
    if (inet_ntop(af, a, txt, sizeof(txt)) == NULL)
        return PERR(p, "\"%s\": cannot format the address", s);
    if ((*out = sdup(p, txt)) == NULL)
        return CK_ERR_NOMEM;
    return 0;
}

/* ---- names of the enumerations ----------------------------------------------------------- */

static const struct {
    const char *name;
    enum ck_ksvtopo_enc v;
    bool aead;
} enc_names[] = {
    {"aes-128-gcm", CK_KSVTOPO_ENC_AES128_GCM, true},
    {"aes-256-gcm", CK_KSVTOPO_ENC_AES256_GCM, true},
    {"chacha20-poly1305", CK_KSVTOPO_ENC_CHACHA20_POLY1305, true},
    {"aes-128-cbc", CK_KSVTOPO_ENC_AES128_CBC, false},
    {"aes-256-cbc", CK_KSVTOPO_ENC_AES256_CBC, false},
    {"null", CK_KSVTOPO_ENC_NULL, false},
};

static const struct {
    const char *name;
    enum ck_ksvtopo_auth v;
} auth_names[] = {
    {"none", CK_KSVTOPO_AUTH_NONE},
    {"hmac-sha256-128", CK_KSVTOPO_AUTH_HMAC_SHA256_128},
    {"hmac-sha384-192", CK_KSVTOPO_AUTH_HMAC_SHA384_192},
    {"hmac-sha512-256", CK_KSVTOPO_AUTH_HMAC_SHA512_256},
    {"hmac-sha1-96", CK_KSVTOPO_AUTH_HMAC_SHA1_96},
};

const char *
ck_ksvtopo_trans_name(enum ck_ksvtopo_trans t)
{
    return t == CK_KSVTOPO_AH ? "AH" : t == CK_KSVTOPO_ESP ? "ESP" : "?";
}

const char *
ck_ksvtopo_enc_name(enum ck_ksvtopo_enc e)
{
    if (e == CK_KSVTOPO_ENC_NONE)
        return "none";
    for (size_t i = 0; i < sizeof(enc_names) / sizeof(enc_names[0]); i++)
        if (enc_names[i].v == e)
            return enc_names[i].name;
    return "?";
}

const char *
ck_ksvtopo_auth_name(enum ck_ksvtopo_auth a)
{
    for (size_t i = 0; i < sizeof(auth_names) / sizeof(auth_names[0]); i++)
        if (auth_names[i].v == a)
            return auth_names[i].name;
    return "?";
}

const char *
ck_ksvtopo_mode_name(enum ck_ksvtopo_mode m)
{
    return m == CK_KSVTOPO_TUNNEL ? "tunnel" : "transport";
}

const char *
ck_ksvtopo_dir_name(enum ck_ksvtopo_dir d)
{
    return d == CK_KSVTOPO_IN ? "in" : "out";
}

static bool
enc_is_aead(enum ck_ksvtopo_enc e)
{
    for (size_t i = 0; i < sizeof(enc_names) / sizeof(enc_names[0]); i++)
        if (enc_names[i].v == e)
            return enc_names[i].aead;
    return false;
}

/* ---- blocks ------------------------------------------------------------------------------ */

static int
set_once(struct parser *p, bool *has, const char *key)
{
    if (*has)
        return PERR(p, "%s given twice", key);
    *has = true;
    return 0;
}

static int
policy_key(struct parser *p, struct pol *po, const char *key, const char *val)
{
    struct ck_ksvtopo_transform *xf = &po->pub.xf;
    int64_t v;
    int rc;

    if (strcasecmp(key, "TRANS-TYPE") == 0) {
        if ((rc = set_once(p, &po->has_trans, "TRANS-TYPE")) != 0)
            return rc;
        if (strcasecmp(val, "ESP") == 0)
            xf->trans = CK_KSVTOPO_ESP;
        else if (strcasecmp(val, "AH") == 0)
            xf->trans = CK_KSVTOPO_AH;
        else
            return PERR(p, "TRANS-TYPE = \"%s\": AH or ESP", val);
    } else if (strcasecmp(key, "LIFE-SEC") == 0) {
        if ((rc = set_once(p, &po->has_sec, "LIFE-SEC")) != 0)
            return rc;
        if (ck_parse_int64(val, CK_KSVTOPO_LIFE_SEC_MIN, CK_KSVTOPO_LIFE_SEC_MAX, &v) != 0)
            return PERR(p, "LIFE-SEC = \"%s\": seconds from %d to %d", val,
                        CK_KSVTOPO_LIFE_SEC_MIN, CK_KSVTOPO_LIFE_SEC_MAX);
        xf->life_sec = (uint32_t)v;
    } else if (strcasecmp(key, "LIFE-KBYTE") == 0) {
        if ((rc = set_once(p, &po->has_kbyte, "LIFE-KBYTE")) != 0)
            return rc;
        if (ck_parse_int64(val, 0, UINT32_MAX, &v) != 0)
            return PERR(p, "LIFE-KBYTE = \"%s\": kilobytes from 0 (no limit) to %u", val,
                        UINT32_MAX);
        xf->life_kbyte = (uint32_t)v;
    } else if (strcasecmp(key, "ENC-ALG") == 0) {
        size_t i;
        if ((rc = set_once(p, &po->has_enc, "ENC-ALG")) != 0)
            return rc;
        for (i = 0; i < sizeof(enc_names) / sizeof(enc_names[0]); i++)
            if (strcasecmp(val, enc_names[i].name) == 0)
                break;
        if (i == sizeof(enc_names) / sizeof(enc_names[0]))
            return PERR(p, "ENC-ALG = \"%s\": unknown cipher", val);
        xf->enc = enc_names[i].v;
    } else if (strcasecmp(key, "AUTH-ALG") == 0) {
        size_t i;
        if ((rc = set_once(p, &po->has_auth, "AUTH-ALG")) != 0)
            return rc;
        for (i = 0; i < sizeof(auth_names) / sizeof(auth_names[0]); i++)
            if (strcasecmp(val, auth_names[i].name) == 0)
                break;
        if (i == sizeof(auth_names) / sizeof(auth_names[0]))
            return PERR(p, "AUTH-ALG = \"%s\": unknown integrity algorithm", val);
        xf->auth = auth_names[i].v;
    } else if (strcasecmp(key, "MODE") == 0) {
        if ((rc = set_once(p, &po->has_mode, "MODE")) != 0)
            return rc;
        if (strcasecmp(val, "transport") == 0)
            xf->mode = CK_KSVTOPO_TRANSPORT;
        else if (strcasecmp(val, "tunnel") == 0)
            xf->mode = CK_KSVTOPO_TUNNEL;
        else
            return PERR(p, "MODE = \"%s\": transport or tunnel", val);
    } else if (strcasecmp(key, "ACK-REQD") == 0) {
        if ((rc = set_once(p, &po->has_ack, "ACK-REQD")) != 0)
            return rc;
        if (strcasecmp(val, "yes") == 0)
            xf->ack_reqd = true;
        else if (strcasecmp(val, "no") == 0)
            xf->ack_reqd = false;
        else
            return PERR(p, "ACK-REQD = \"%s\": yes or no", val);
    } else {
        return PERR(p, "unknown policy key \"%s\"", key);
    }
    return 0;
}

/* Defaults and consistency, when the policy's block closes. */
static void
policy_finish(struct parser *p, struct pol *po)
{
    struct ck_ksvtopo_transform *xf = &po->pub.xf;
    int line = po->pub.line;

    if (!po->has_trans) {
        perr_at(p, line, CK_ERR_CONFIG, "policy %s: TRANS-TYPE missing", po->pub.name);
        return;
    }
    if (!po->has_sec)
        perr_at(p, line, CK_ERR_CONFIG, "policy %s: LIFE-SEC missing", po->pub.name);
    if (xf->trans == 0)
        return; /* TRANS-TYPE was refused: its line already says why */
    if (xf->trans == CK_KSVTOPO_AH) {
        if (po->has_enc)
            perr_at(p, line, CK_ERR_CONFIG, "policy %s: AH takes no ENC-ALG", po->pub.name);
        xf->enc = CK_KSVTOPO_ENC_NONE;
        if (!po->has_auth)
            xf->auth = CK_KSVTOPO_AUTH_HMAC_SHA256_128;
        else if (xf->auth == CK_KSVTOPO_AUTH_NONE)
            perr_at(p, line, CK_ERR_CONFIG, "policy %s: AH needs an AUTH-ALG", po->pub.name);
        return;
    }
    if (!po->has_enc)
        xf->enc = CK_KSVTOPO_ENC_AES256_GCM;
    if (enc_is_aead(xf->enc)) {
        if (po->has_auth && xf->auth != CK_KSVTOPO_AUTH_NONE)
            perr_at(p, line, CK_ERR_CONFIG,
                    "policy %s: %s authenticates by itself (AUTH-ALG = none)", po->pub.name,
                    ck_ksvtopo_enc_name(xf->enc));
        xf->auth = CK_KSVTOPO_AUTH_NONE;
    } else if (!po->has_auth) {
        xf->auth = CK_KSVTOPO_AUTH_HMAC_SHA256_128;
    } else if (xf->auth == CK_KSVTOPO_AUTH_NONE) {
        /* Encryption without integrity is open to cut-and-paste attacks (RFC 8221 2.1). */
        perr_at(p, line, CK_ERR_CONFIG, "policy %s: ESP with %s needs an AUTH-ALG",
                po->pub.name, ck_ksvtopo_enc_name(xf->enc));
    }
}

static int
group_key(struct parser *p, struct grp *g, size_t gi, const char *key, char *val)
{
    int64_t v;
    int rc;

    if (strcasecmp(key, "address") == 0) {
        if ((rc = set_once(p, &g->has_address, "address")) != 0)
            return rc;
        return parse_address(p, val, true, &g->pub.address);
    }
    if (strcasecmp(key, "policy") == 0) {
        if ((rc = set_once(p, &g->has_policy, "policy")) != 0)
            return rc;
        if (!valid_name(val))
            return PERR(p, "policy = \"%s\": not a valid name", val);
        g->policy_line = p->line;
        return (g->policy_name = sdup(p, val)) == NULL ? CK_ERR_NOMEM : 0;
    }
    if (strcasecmp(key, "degree") == 0) {
        if ((rc = set_once(p, &g->has_degree, "degree")) != 0)
            return rc;
        if (ck_parse_int64(val, 2, LKH_MAX_DEGREE, &v) != 0)
            return PERR(p, "degree = \"%s\": from 2 to %u", val, (unsigned)LKH_MAX_DEGREE);
        g->pub.degree = (unsigned)v;
        return 0;
    }
    if (strcasecmp(key, "keying") == 0) {
        if ((rc = set_once(p, &g->has_keying, "keying")) != 0)
            return rc;
        if (strcasecmp(val, "lkh") == 0)
            g->pub.keying = CK_KSVTOPO_LKH;
        else if (strcasecmp(val, "ek") == 0)
            g->pub.keying = CK_KSVTOPO_EK;
        else if (strcasecmp(val, "hybrid") == 0)
            g->pub.keying = CK_KSVTOPO_HYBRID;
        else
            return PERR(p, "keying = \"%s\": lkh, ek or hybrid", val);
        return 0;
    }
    if (strcasecmp(key, "members") == 0) {
        size_t n = tokenize(val, p->tok, sizeof(p->tok) / sizeof(p->tok[0]));
        if (n == 0)
            return PERR(p, "members = names no node");
        for (size_t i = 0; i < n; i++) {
            struct raw_member *m;
            if (!valid_name(p->tok[i])) {
                PERR(p, "member \"%s\": not a valid node name", p->tok[i]);
                continue;
            }
            if ((rc = GROW(p, rmembers, CK_KSVTOPO_MAX_MEMBERSHIPS, "group memberships")) != 0)
                return rc;
            m = &p->t->rmembers[p->t->n_rmembers - 1];
            m->group = gi;
            m->line = p->line;
            if ((m->node = sdup(p, p->tok[i])) == NULL)
                return CK_ERR_NOMEM;
            g->n_raw_members++;
        }
        return 0;
    }
    return PERR(p, "unknown group key \"%s\"", key);
}

static void
group_finish(struct parser *p, struct grp *g)
{
    if (!g->has_address)
        perr_at(p, g->pub.line, CK_ERR_CONFIG, "group %s: address missing", g->pub.name);
    if (!g->has_policy)
        perr_at(p, g->pub.line, CK_ERR_CONFIG, "group %s: policy missing", g->pub.name);
    if (g->n_raw_members == 0)
        perr_at(p, g->pub.line, CK_ERR_CONFIG, "group %s has no members", g->pub.name);
}

/* "KEY = VALUE" inside a block (the value may be empty only to be refused). */
static int
block_line(struct parser *p, char *s)
{
    char *eq = strchr(s, '='), *key = s, *val, *end;

    if (eq == NULL)
        return PERR(p, "expected KEY = VALUE or }");
    *eq = '\0';
    val = eq + 1;
    while (is_blank(*key))
        key++;
    end = key + strlen(key);
    while (end > key && is_blank(end[-1]))
        *--end = '\0';
    while (is_blank(*val))
        val++;
    end = val + strlen(val);
    while (end > val && is_blank(end[-1]))
        *--end = '\0';
    if (*key == '\0')
        return PERR(p, "missing key before =");
    if (*val == '\0')
        return PERR(p, "%s: missing value", key);
    if (p->blk == BLK_POLICY)
        return policy_key(p, &p->t->pols[p->blk_idx], key, val);
    return group_key(p, &p->t->grps[p->blk_idx], p->blk_idx, key, val);
}

static void
close_block(struct parser *p)
{
    if (p->blk == BLK_POLICY)
        policy_finish(p, &p->t->pols[p->blk_idx]);
    else if (p->blk == BLK_GROUP)
        group_finish(p, &p->t->grps[p->blk_idx]);
    p->blk = BLK_NONE;
}

/* ---- top-level statements ---------------------------------------------------------------- */

static bool
is_arrow(const char *s, bool *both)
{
    if (strcmp(s, "=>") == 0) {
        *both = false;
        return true;
    }
    if (strcmp(s, "<->") == 0 || strcmp(s, "\xe2\x86\x94") == 0) {
        *both = true;
        return true;
    }
    return false;
}

static int
stmt_node(struct parser *p, char **tok, size_t n)
{
    struct node_rec *nr;
    int rc;

    if (n < 3)
        return PERR(p, "node NAME ADDRESS [principal P] [ksv K[,K...]]");
    if (!valid_name(tok[1]))
        return PERR(p, "node \"%s\": not a valid name", tok[1]);
    if ((rc = GROW(p, nodes, CK_KSVTOPO_MAX_NODES, "nodes")) != 0)
        return rc;
    nr = &p->t->nodes[p->t->n_nodes - 1];
    nr->pub.line = p->line;
    if ((nr->pub.name = sdup(p, tok[1])) == NULL)
        return CK_ERR_NOMEM;
    if ((rc = parse_address(p, tok[2], false, &nr->pub.address)) != 0) {
        nr->pub.address = NULL; /* resolved as an error: the node stays, for its references */
        if (rc != CK_ERR_CONFIG)
            return rc;
    }
    for (size_t i = 3; i < n; i += 2) {
        if (i + 1 >= n)
            return PERR(p, "node %s: \"%s\" needs a value", tok[1], tok[i]);
        if (strcasecmp(tok[i], "principal") == 0) {
            if (nr->pub.principal != NULL)
                return PERR(p, "node %s: principal given twice", tok[1]);
            if (!valid_principal(tok[i + 1]))
                return PERR(p, "node %s: principal \"%s\" is not valid", tok[1], tok[i + 1]);
            if ((nr->pub.principal = sdup(p, tok[i + 1])) == NULL)
                return CK_ERR_NOMEM;
        } else if (strcasecmp(tok[i], "ksv") == 0) {
            char *s = tok[i + 1], *comma;
            if (nr->pub.n_ksv != 0)
                return PERR(p, "node %s: ksv given twice", tok[1]);
            do {
                if ((comma = strchr(s, ',')) != NULL)
                    *comma = '\0';
                if (!valid_name(s))
                    return PERR(p, "node %s: ksv \"%s\" is not a valid name", tok[1], s);
                for (size_t k = 0; k < nr->pub.n_ksv; k++)
                    if (strcmp(nr->pub.ksv[k], s) == 0)
                        return PERR(p, "node %s: ksv %s listed twice", tok[1], s);
                if (nr->pub.n_ksv == CK_KSVTOPO_MAX_NODE_KSVS)
                    return perr_at(p, p->line, CK_ERR_LIMIT, "node %s: more than %d KSVs",
                                   tok[1], CK_KSVTOPO_MAX_NODE_KSVS);
                if ((nr->pub.ksv[nr->pub.n_ksv++] = sdup(p, s)) == NULL)
                    return CK_ERR_NOMEM;
                s = comma != NULL ? comma + 1 : NULL;
            } while (s != NULL);
        } else {
            return PERR(p, "node %s: unknown attribute \"%s\" (principal or ksv)", tok[1],
                        tok[i]);
        }
    }
    return 0;
}

static int
stmt_ksv(struct parser *p, char **tok, size_t n)
{
    struct ksv *k;
    int rc;

    if (n < 2 || n > 3)
        return PERR(p, "ksv NAME [ADDRESS]");
    if (!valid_name(tok[1]))
        return PERR(p, "ksv \"%s\": not a valid name", tok[1]);
    if ((rc = GROW(p, ksvs, CK_KSVTOPO_MAX_KSVS, "KSVs")) != 0)
        return rc;
    k = &p->t->ksvs[p->t->n_ksvs - 1];
    k->line = p->line;
    if ((k->name = sdup(p, tok[1])) == NULL)
        return CK_ERR_NOMEM;
    if (n == 3 && (rc = parse_address(p, tok[2], false, &k->address)) != 0)
        return rc;
    return 0;
}

static int
stmt_link(struct parser *p, char **tok, size_t n, bool both)
{
    struct raw_link *l;
    int rc;

    if (n != 4)
        return PERR(p, "a link is NODE %s NODE POLICY", both ? "<->" : "=>");
    for (size_t i = 0; i < 4; i += (i == 0 ? 2 : 1))
        if (!valid_name(tok[i]))
            return PERR(p, "\"%s\": not a valid name", tok[i]);
    if ((rc = GROW(p, rlinks, CK_KSVTOPO_MAX_LINKS, "links")) != 0)
        return rc;
    l = &p->t->rlinks[p->t->n_rlinks - 1];
    l->both = both;
    l->line = p->line;
    if ((l->from = sdup(p, tok[0])) == NULL || (l->to = sdup(p, tok[2])) == NULL ||
        (l->policy = sdup(p, tok[3])) == NULL)
        return CK_ERR_NOMEM;
    return 0;
}

static int
stmt_open(struct parser *p, char **tok, size_t n)
{
    bool is_policy = strcasecmp(tok[0], "policy") == 0;
    int rc;

    if (n != 3 || strcmp(tok[2], "{") != 0)
        return PERR(p, "%s NAME {", is_policy ? "policy" : "group");
    if (!valid_name(tok[1]))
        return PERR(p, "%s \"%s\": not a valid name", tok[0], tok[1]);
    if (is_policy) {
        struct pol *po;
        if ((rc = GROW(p, pols, CK_KSVTOPO_MAX_POLICIES, "policies")) != 0)
            return rc;
        po = &p->t->pols[p->t->n_pols - 1];
        po->pub.line = p->line;
        if ((po->pub.name = sdup(p, tok[1])) == NULL)
            return CK_ERR_NOMEM;
        p->blk = BLK_POLICY;
        p->blk_idx = p->t->n_pols - 1;
    } else {
        struct grp *g;
        if ((rc = GROW(p, grps, CK_KSVTOPO_MAX_GROUPS, "groups")) != 0)
            return rc;
        g = &p->t->grps[p->t->n_grps - 1];
        g->pub.line = p->line;
        g->pub.index = (unsigned)(p->t->n_grps - 1);
        g->pub.degree = CK_KSVTOPO_DEFAULT_DEGREE;
        if ((g->pub.name = sdup(p, tok[1])) == NULL)
            return CK_ERR_NOMEM;
        p->blk = BLK_GROUP;
        p->blk_idx = p->t->n_grps - 1;
    }
    p->blk_line = p->line;
    return 0;
}

static int
parse_line(struct parser *p, char *s)
{
    char *hash = strchr(s, '#');
    size_t n;
    bool both;

    if (hash != NULL)
        *hash = '\0';
    if (p->blk != BLK_NONE) {
        char *q = s;
        while (is_blank(*q))
            q++;
        if (*q == '\0')
            return 0;
        if (q[0] == '}') {
            char *r = q + 1;
            while (is_blank(*r))
                r++;
            close_block(p);
            return *r == '\0' ? 0 : PERR(p, "text after }");
        }
        if (strchr(q, '{') != NULL) {
            /* Most likely a forgotten }: report it where the block began, then go on. */
            perr_at(p, p->blk_line, CK_ERR_CONFIG, "block not closed before line %d", p->line);
            close_block(p);
        } else {
            return block_line(p, s);
        }
    }
    n = tokenize(s, p->tok, sizeof(p->tok) / sizeof(p->tok[0]));
    if (n == 0)
        return 0;
    if (n >= 2 && is_arrow(p->tok[1], &both))
        return stmt_link(p, p->tok, n, both);
    if (strcasecmp(p->tok[0], "node") == 0)
        return stmt_node(p, p->tok, n);
    if (strcasecmp(p->tok[0], "ksv") == 0)
        return stmt_ksv(p, p->tok, n);
    if (strcasecmp(p->tok[0], "policy") == 0 || strcasecmp(p->tok[0], "group") == 0)
        return stmt_open(p, p->tok, n);
    if (strcmp(p->tok[0], "}") == 0)
        return PERR(p, "} without a block");
    return PERR(p, "unknown statement \"%s\"", p->tok[0]);
}

/* ---- resolution -------------------------------------------------------------------------- */

static int
cmp_node(const void *a, const void *b)
{
    const struct node_rec *x = a, *y = b;
    int c = strcmp(x->pub.name, y->pub.name);
    return c != 0 ? c : (x->pub.line > y->pub.line) - (x->pub.line < y->pub.line);
}

static int
cmp_pol(const void *a, const void *b)
{
    const struct pol *x = a, *y = b;
    int c = strcmp(x->pub.name, y->pub.name);
    return c != 0 ? c : (x->pub.line > y->pub.line) - (x->pub.line < y->pub.line);
}

static int
cmp_grp(const void *a, const void *b)
{
    const struct grp *x = a, *y = b;
    int c = strcmp(x->pub.name, y->pub.name);
    return c != 0 ? c : (x->pub.line > y->pub.line) - (x->pub.line < y->pub.line);
}

static int
cmp_ksv(const void *a, const void *b)
{
    const struct ksv *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

static size_t
find_node_idx(const struct ck_ksvtopo *t, const char *name)
{
    size_t lo = 0, hi = t->n_nodes;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, t->nodes[mid].pub.name);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return SIZE_MAX;
}

static size_t
find_pol_idx(const struct ck_ksvtopo *t, const char *name)
{
    size_t lo = 0, hi = t->n_pols;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, t->pols[mid].pub.name);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return SIZE_MAX;
}

static size_t
find_grp_idx(const struct ck_ksvtopo *t, const char *name)
{
    size_t lo = 0, hi = t->n_grps;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, t->grps[mid].pub.name);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return SIZE_MAX;
}

static bool
ksv_declared(const struct ck_ksvtopo *t, const char *name)
{
    for (size_t i = 0; i < t->n_ksvs; i++)
        if (strcmp(t->ksvs[i].name, name) == 0)
            return true;
    return false;
}

/* Sorting arrays of pointers/indices needs the topology: qsort has no context argument, and
 * qsort_r's is not portable, so keyed records carry what they compare. */
struct addr_key {
    const char *key;
    const char *name;
    int line;
};

static int
cmp_addr_key(const void *a, const void *b)
{
    const struct addr_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* Two records sharing a key: reports the later one. */
static int
check_unique(struct parser *p, struct addr_key *k, size_t n, const char *what)
{
    sort_n(k, n, sizeof(*k), cmp_addr_key);
    for (size_t i = 1; i < n; i++)
        if (strcmp(k[i].key, k[i - 1].key) == 0)
            perr_at(p, k[i].line, CK_ERR_CONFIG, "%s %s of node %s already belongs to %s (line %d)",
                    what, k[i].key, k[i].name, k[i - 1].name, k[i - 1].line);
    return 0;
}

static int
cmp_dlink(const void *a, const void *b)
{
    const struct dlink *x = a, *y = b;
    if (x->from != y->from)
        return x->from < y->from ? -1 : 1;
    if (x->to != y->to)
        return x->to < y->to ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

struct mkey {
    size_t node, group;        /* sorted indices */
    const char *address;
    int line;
};

static int
cmp_mkey(const void *a, const void *b)
{
    const struct mkey *x = a, *y = b;
    int c;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    c = strcmp(x->address != NULL ? x->address : "", y->address != NULL ? y->address : "");
    if (c != 0)
        return c;
    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

struct sa_rec {
    size_t node;
    struct ck_ksvtopo_sa sa;
    size_t peer;
};

static int
cmp_sa_rec(const void *a, const void *b)
{
    const struct sa_rec *x = a, *y = b;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    if (x->peer != y->peer)
        return x->peer < y->peer ? -1 : 1;
    return (int)x->sa.dir - (int)y->sa.dir;
}

static int
cmp_member_ptr(const void *a, const void *b)
{
    const struct ck_ksvtopo_node *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Sorts the tables by name and checks names, addresses, principals and references to KSVs and
 * policies. *grp_pos_out maps a group's file position to its sorted index. */
static int
resolve_names(struct parser *p, size_t **grp_pos_out)
{
    struct ck_ksvtopo *t = p->t;
    struct addr_key *keys = NULL;
    size_t *grp_pos = NULL, n;
    int rc = 0;

    /* Names: sorted, and declared once. */
    sort_n(t->nodes, t->n_nodes, sizeof(*t->nodes), cmp_node);
    sort_n(t->pols, t->n_pols, sizeof(*t->pols), cmp_pol);
    sort_n(t->ksvs, t->n_ksvs, sizeof(*t->ksvs), cmp_ksv);
    /* Groups: remember where each file-order group went, for the raw members. */
    sort_n(t->grps, t->n_grps, sizeof(*t->grps), cmp_grp);
    if ((*grp_pos_out = grp_pos = calloc(t->n_grps + 1, sizeof(*grp_pos))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "topology: out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->n_grps; i++)
        grp_pos[t->grps[i].pub.index] = i;
#define DUPS(arr, cnt, nm_expr, ln_expr, what)                                              \
    for (size_t i = 1; i < (cnt); i++)                                                     \
        if (strcmp(arr[i].nm_expr, arr[i - 1].nm_expr) == 0)                                \
            perr_at(p, arr[i].ln_expr, CK_ERR_CONFIG, what " %s already declared at line %d", \
                    arr[i].nm_expr, arr[i - 1].ln_expr);
    DUPS(t->nodes, t->n_nodes, pub.name, pub.line, "node")
    DUPS(t->pols, t->n_pols, pub.name, pub.line, "policy")
    DUPS(t->grps, t->n_grps, pub.name, pub.line, "group")
    DUPS(t->ksvs, t->n_ksvs, name, line, "ksv")
#undef DUPS

    /* Addresses and principals: one node each. */
    if ((keys = calloc(t->n_nodes + 1, sizeof(*keys))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "topology: out of memory");
        goto out;
    }
    n = 0;
    for (size_t i = 0; i < t->n_nodes; i++)
        if (t->nodes[i].pub.address != NULL)
            keys[n++] = (struct addr_key){t->nodes[i].pub.address, t->nodes[i].pub.name,
                                          t->nodes[i].pub.line};
    check_unique(p, keys, n, "address");
    n = 0;
    for (size_t i = 0; i < t->n_nodes; i++)
        if (t->nodes[i].pub.principal != NULL)
            keys[n++] = (struct addr_key){t->nodes[i].pub.principal, t->nodes[i].pub.name,
                                          t->nodes[i].pub.line};
    check_unique(p, keys, n, "principal");
    for (size_t i = 0; i < t->n_nodes; i++)
        for (size_t j = 0; j < t->nodes[i].pub.n_ksv; j++)
            if (!ksv_declared(t, t->nodes[i].pub.ksv[j]))
                perr_at(p, t->nodes[i].pub.line, CK_ERR_CONFIG, "node %s: unknown ksv %s",
                        t->nodes[i].pub.name, t->nodes[i].pub.ksv[j]);

    /* Groups' policies. */
    for (size_t i = 0; i < t->n_grps; i++) {
        struct grp *g = &t->grps[i];
        size_t pi;
        if (g->policy_name == NULL)
            continue;
        if ((pi = find_pol_idx(t, g->policy_name)) == SIZE_MAX)
            perr_at(p, g->policy_line, CK_ERR_CONFIG, "group %s: unknown policy %s",
                    g->pub.name, g->policy_name);
        else
            g->pub.policy = &t->pols[pi].pub;
    }

out:
    free(keys);
    return rc;
}

/* Every link as directed pairs, each pair once, sorted by (from, to). */
static int
resolve_links(struct parser *p, struct dlink **dl_out, size_t *nd_out)
{
    struct ck_ksvtopo *t = p->t;
    struct dlink *dl;
    size_t nd = 0;
    int rc = 0;

    /* Links: every directed pair once. */
    if ((*dl_out = dl = calloc(2 * t->n_rlinks + 1, sizeof(*dl))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "topology: out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->n_rlinks; i++) {
        const struct raw_link *l = &t->rlinks[i];
        size_t a = find_node_idx(t, l->from), b = find_node_idx(t, l->to);
        size_t pi = find_pol_idx(t, l->policy);
        bool ok = true;
        if (a == SIZE_MAX)
            ok = perr_at(p, l->line, CK_ERR_CONFIG, "unknown node %s", l->from) == 0;
        if (b == SIZE_MAX)
            ok = perr_at(p, l->line, CK_ERR_CONFIG, "unknown node %s", l->to) == 0;
        if (pi == SIZE_MAX)
            ok = perr_at(p, l->line, CK_ERR_CONFIG, "unknown policy %s", l->policy) == 0;
        if (ok && a == b)
            ok = perr_at(p, l->line, CK_ERR_CONFIG, "link from %s to itself", l->from) == 0;
        /* An SA's addresses are its ends' (the outer header's, in tunnel mode): one family. */
        if (ok && t->nodes[a].pub.address != NULL && t->nodes[b].pub.address != NULL &&
            (strchr(t->nodes[a].pub.address, ':') == NULL) !=
                (strchr(t->nodes[b].pub.address, ':') == NULL))
            ok = perr_at(p, l->line, CK_ERR_CONFIG, "link %s %s %s: %s is %s, %s is %s",
                         l->from, l->both ? "<->" : "=>", l->to, l->from,
                         strchr(t->nodes[a].pub.address, ':') ? "IPv6" : "IPv4", l->to,
                         strchr(t->nodes[b].pub.address, ':') ? "IPv6" : "IPv4") == 0;
        if (!ok)
            continue;
        dl[nd++] = (struct dlink){a, b, pi, l->line};
        if (l->both)
            dl[nd++] = (struct dlink){b, a, pi, l->line};
    }
    if (nd > CK_KSVTOPO_MAX_LINKS) {
        rc = perr_at(p, p->line, CK_ERR_LIMIT, "more than %d directed links",
                     CK_KSVTOPO_MAX_LINKS);
        goto out;
    }
    sort_n(dl, nd, sizeof(*dl), cmp_dlink);
    {
        size_t w = 0;
        for (size_t i = 0; i < nd; i++) {
            if (w > 0 && dl[w - 1].from == dl[i].from && dl[w - 1].to == dl[i].to) {
                perr_at(p, dl[i].line, CK_ERR_CONFIG,
                        "link %s => %s defined twice (first at line %d)",
                        t->nodes[dl[i].from].pub.name, t->nodes[dl[i].to].pub.name,
                        dl[w - 1].line);
                continue;
            }
            dl[w++] = dl[i];
        }
        nd = w;
    }
    t->n_directed = nd;

out:
    *nd_out = nd;
    return rc;
}

/* Every membership once, with the conflicts of one node in one address. */
static int
resolve_members(struct parser *p, const size_t *grp_pos, struct mkey **mk_out, size_t *nm_out)
{
    struct ck_ksvtopo *t = p->t;
    struct mkey *mk;
    size_t nm = 0;
    int rc = 0;

    /* Memberships. */
    if ((*mk_out = mk = calloc(t->n_rmembers + 1, sizeof(*mk))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "topology: out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->n_rmembers; i++) {
        const struct raw_member *m = &t->rmembers[i];
        size_t ni = find_node_idx(t, m->node), gi = grp_pos[m->group];
        if (ni == SIZE_MAX) {
            perr_at(p, m->line, CK_ERR_CONFIG, "group %s: unknown node %s",
                    t->grps[gi].pub.name, m->node);
            continue;
        }
        if (t->grps[gi].pub.address != NULL && t->nodes[ni].pub.address != NULL &&
            (strchr(t->grps[gi].pub.address, ':') == NULL) !=
                (strchr(t->nodes[ni].pub.address, ':') == NULL)) {
            perr_at(p, m->line, CK_ERR_CONFIG, "group %s (%s): node %s has an %s address",
                    t->grps[gi].pub.name, t->grps[gi].pub.address, m->node,
                    strchr(t->nodes[ni].pub.address, ':') ? "IPv6" : "IPv4");
            continue;
        }
        mk[nm++] = (struct mkey){ni, gi, t->grps[gi].pub.address, m->line};
    }
    sort_n(mk, nm, sizeof(*mk), cmp_mkey);
    {
        size_t w = 0;
        for (size_t i = 0; i < nm; i++) {
            if (w > 0 && mk[w - 1].node == mk[i].node && mk[i].address != NULL &&
                mk[w - 1].address != NULL && strcmp(mk[w - 1].address, mk[i].address) == 0) {
                if (mk[w - 1].group == mk[i].group)
                    perr_at(p, mk[i].line, CK_ERR_CONFIG,
                            "node %s listed twice in group %s (first at line %d)",
                            t->nodes[mk[i].node].pub.name, t->grps[mk[i].group].pub.name,
                            mk[w - 1].line);
                else
                    perr_at(p, mk[i].line, CK_ERR_CONFIG,
                            "node %s in two groups of address %s: %s (line %d) and %s",
                            t->nodes[mk[i].node].pub.name, mk[i].address,
                            t->grps[mk[w - 1].group].pub.name, mk[w - 1].line,
                            t->grps[mk[i].group].pub.name);
                continue;
            }
            if (w > 0 && mk[w - 1].node == mk[i].node && mk[w - 1].group == mk[i].group) {
                perr_at(p, mk[i].line, CK_ERR_CONFIG,
                        "node %s listed twice in group %s (first at line %d)",
                        t->nodes[mk[i].node].pub.name, t->grps[mk[i].group].pub.name,
                        mk[w - 1].line);
                continue;
            }
            mk[w++] = mk[i];
        }
        nm = w;
    }
out:
    *nm_out = nm;
    return rc;
}

/* The per-node SA and membership slices, and each group's sorted member list. */
static int
build_views(struct parser *p, const struct dlink *dl, size_t nd, struct mkey *mk, size_t nm)
{
    struct ck_ksvtopo *t = p->t;
    struct sa_rec *sr = NULL;
    int rc = 0;

    /* The expansion tables. */
    if ((sr = calloc(2 * nd + 1, sizeof(*sr))) == NULL ||
        (t->sas = calloc(2 * nd + 1, sizeof(*t->sas))) == NULL ||
        (t->mships = calloc(nm + 1, sizeof(*t->mships))) == NULL ||
        (t->members_by_group = calloc(nm + 1, sizeof(*t->members_by_group))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "topology: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nd; i++) {
        const struct ck_ksvtopo_policy *po = &t->pols[dl[i].policy].pub;
        sr[2 * i] = (struct sa_rec){dl[i].from, {CK_KSVTOPO_OUT, &t->nodes[dl[i].to].pub, po,
                                                 dl[i].line}, dl[i].to};
        sr[2 * i + 1] = (struct sa_rec){dl[i].to, {CK_KSVTOPO_IN, &t->nodes[dl[i].from].pub,
                                                   po, dl[i].line}, dl[i].from};
    }
    sort_n(sr, 2 * nd, sizeof(*sr), cmp_sa_rec);
    t->n_sas = 2 * nd;
    for (size_t i = 0; i < t->n_sas; i++) {
        struct node_rec *nr = &t->nodes[sr[i].node];
        if (nr->n_sa == 0)
            nr->first_sa = i;
        nr->n_sa++;
        t->sas[i] = sr[i].sa;
    }
    /* mk is sorted by node, address, group; the view wants node, group name. */
    for (size_t i = 0; i < nm; i++)
        mk[i].address = NULL;
    sort_n(mk, nm, sizeof(*mk), cmp_mkey);
    t->n_mships = nm;
    for (size_t i = 0; i < nm; i++) {
        struct node_rec *nr = &t->nodes[mk[i].node];
        if (nr->n_grp == 0)
            nr->first_grp = i;
        nr->n_grp++;
        t->mships[i] = (struct ck_ksvtopo_membership){&t->grps[mk[i].group].pub, mk[i].line};
        t->grps[mk[i].group].pub.n_members++;
    }
    {
        size_t off = 0;
        for (size_t g = 0; g < t->n_grps; g++) {
            t->grps[g].first_member = off;
            off += t->grps[g].pub.n_members;
            t->grps[g].pub.n_members = 0;
        }
        for (size_t i = 0; i < nm; i++) {
            struct grp *g = &t->grps[mk[i].group];
            t->members_by_group[g->first_member + g->pub.n_members++] = &t->nodes[mk[i].node].pub;
        }
        for (size_t g = 0; g < t->n_grps; g++)
            sort_n(t->members_by_group + t->grps[g].first_member, t->grps[g].pub.n_members,
                  sizeof(*t->members_by_group), cmp_member_ptr);
    }

out:
    free(sr);
    return rc;
}

static int
resolve(struct parser *p)
{
    struct dlink *dl = NULL;
    struct mkey *mk = NULL;
    size_t *grp_pos = NULL, nd = 0, nm = 0;
    int rc;

    if ((rc = resolve_names(p, &grp_pos)) != 0 || (rc = resolve_links(p, &dl, &nd)) != 0 ||
        (rc = resolve_members(p, grp_pos, &mk, &nm)) != 0)
        goto out;
    if (p->first_err == 0) /* no expansion of a topology with errors */
        rc = build_views(p, dl, nd, mk, nm);
out:
    free(dl);
    free(mk);
    free(grp_pos);
    return rc;
}

/* ---- entry points ------------------------------------------------------------------------ */

/* By line, then by text: the same file always lists its errors in the same order. */
static int
cmp_report(const void *a, const void *b)
{
    const struct ck_ksvtopo_error *x = a, *y = b;

    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return strcmp(x->msg, y->msg);
}

void
ck_ksvtopo_free(struct ck_ksvtopo *t)
{
    if (t == NULL)
        return;
    free(t->nodes);
    free(t->pols);
    free(t->grps);
    free(t->ksvs);
    free(t->rlinks);
    free(t->rmembers);
    free(t->sas);
    free(t->mships);
    free(t->members_by_group);
    arena_free(t->arena);
    free(t);
}

int
ck_ksvtopo_parse(const char *text, size_t len, const char *name, struct ck_ksvtopo **out,
                 struct ck_ksvtopo_report *rep)
{
    struct parser *p = NULL;
    size_t pos = 0;
    int rc = 0;

    *out = NULL;
    if (rep != NULL)
        memset(rep, 0, sizeof(*rep));
    if (text == NULL && len != 0)
        return ck_error_set(CK_ERR_INVAL, "topology: no text");
    if ((p = calloc(1, sizeof(*p))) == NULL || (p->t = calloc(1, sizeof(*p->t))) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "topology: out of memory");
        goto out;
    }
    p->rep = rep != NULL ? rep : &p->local;
    p->file = name != NULL ? name : "<string>";
    if (len > CK_KSVTOPO_MAX_FILE) {
        rc = perr_at(p, 0, CK_ERR_LIMIT, "larger than %d bytes", CK_KSVTOPO_MAX_FILE);
        goto out;
    }
    if (len > 0 && memchr(text, '\0', len) != NULL) {
        rc = perr_at(p, 0, CK_ERR_CONFIG, "contains a NUL byte");
        goto out;
    }
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = (nl != NULL ? (size_t)(nl - text) : len) - pos;
        p->line++;
        if (ll > CK_KSVTOPO_MAX_LINE) {
            rc = perr_at(p, p->line, CK_ERR_LIMIT, "line longer than %d bytes",
                         CK_KSVTOPO_MAX_LINE);
            goto out;
        }
        memcpy(p->buf, text + pos, ll);
        p->buf[ll] = '\0';
        pos += ll + (nl != NULL ? 1 : 0);
        rc = parse_line(p, p->buf);
        if (rc == CK_ERR_LIMIT || rc == CK_ERR_NOMEM)
            goto out;
        rc = 0;
    }
    if (p->blk != BLK_NONE) {
        perr_at(p, p->blk_line, CK_ERR_CONFIG, "%s %s: block not closed",
                p->blk == BLK_POLICY ? "policy" : "group",
                p->blk == BLK_POLICY ? p->t->pols[p->blk_idx].pub.name
                                     : p->t->grps[p->blk_idx].pub.name);
        close_block(p);
    }
    if ((rc = resolve(p)) != 0)
        goto out;
    if (p->first_err != 0) {
        rc = p->first_err;
        goto out;
    }
    *out = p->t;
    p->t = NULL;
out:
    if (p != NULL) {
        if (rc == 0 || rc == CK_ERR_CONFIG || rc == CK_ERR_LIMIT)
            rc = p->first_err;
        sort_n(p->rep->err, p->rep->n, sizeof(p->rep->err[0]), cmp_report);
        if (rc == CK_ERR_CONFIG && p->rep->n > 0)
            ck_error_set(rc, "%s", p->rep->err[0].msg);
        ck_ksvtopo_free(p->t);
        free(p);
    }
    return rc;
}

int
ck_ksvtopo_load(const char *path, struct ck_ksvtopo **out, struct ck_ksvtopo_report *rep)
{
    char *buf = NULL;
    size_t len = 0;
    int fd = -1, rc;
    struct stat st;

    *out = NULL;
    if (rep != NULL)
        memset(rep, 0, sizeof(*rep));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = ck_error_set(CK_ERR_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = ck_error_set(CK_ERR_IO, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size > CK_KSVTOPO_MAX_FILE) {
        rc = ck_error_set(CK_ERR_LIMIT, "%s: larger than %d bytes", path, CK_KSVTOPO_MAX_FILE);
        goto out;
    }
    /* One byte more than the limit tells a file that grew since fstat from one that fits. */
    if ((buf = malloc(CK_KSVTOPO_MAX_FILE + 1)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((rc = ck_fd_read_all(fd, buf, CK_KSVTOPO_MAX_FILE + 1, &len)) != 0)
        goto out;
    if (len > CK_KSVTOPO_MAX_FILE) {
        rc = ck_error_set(CK_ERR_LIMIT, "%s: larger than %d bytes", path, CK_KSVTOPO_MAX_FILE);
        goto out;
    }
    rc = ck_ksvtopo_parse(buf, len, path, out, rep);
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

/* ---- queries ----------------------------------------------------------------------------- */

size_t
ck_ksvtopo_n_nodes(const struct ck_ksvtopo *t)
{
    return t != NULL ? t->n_nodes : 0;
}

const struct ck_ksvtopo_node *
ck_ksvtopo_node_at(const struct ck_ksvtopo *t, size_t i)
{
    return t != NULL && i < t->n_nodes ? &t->nodes[i].pub : NULL;
}

const struct ck_ksvtopo_node *
ck_ksvtopo_node_find(const struct ck_ksvtopo *t, const char *name)
{
    size_t i;

    if (t == NULL || name == NULL || (i = find_node_idx(t, name)) == SIZE_MAX)
        return NULL;
    return &t->nodes[i].pub;
}

const struct ck_ksvtopo_node *
ck_ksvtopo_node_by_principal(const struct ck_ksvtopo *t, const char *principal)
{
    if (t == NULL || principal == NULL)
        return NULL;
    for (size_t i = 0; i < t->n_nodes; i++)
        if (t->nodes[i].pub.principal != NULL &&
            strcmp(t->nodes[i].pub.principal, principal) == 0)
            return &t->nodes[i].pub;
    return NULL;
}

const struct ck_ksvtopo_policy *
ck_ksvtopo_policy_find(const struct ck_ksvtopo *t, const char *name)
{
    size_t i;

    if (t == NULL || name == NULL || (i = find_pol_idx(t, name)) == SIZE_MAX)
        return NULL;
    return &t->pols[i].pub;
}

size_t
ck_ksvtopo_n_groups(const struct ck_ksvtopo *t)
{
    return t != NULL ? t->n_grps : 0;
}

const struct ck_ksvtopo_group *
ck_ksvtopo_group_at(const struct ck_ksvtopo *t, size_t i)
{
    return t != NULL && i < t->n_grps ? &t->grps[i].pub : NULL;
}

const struct ck_ksvtopo_group *
ck_ksvtopo_group_find(const struct ck_ksvtopo *t, const char *name)
{
    size_t i;

    if (t == NULL || name == NULL || (i = find_grp_idx(t, name)) == SIZE_MAX)
        return NULL;
    return &t->grps[i].pub;
}

size_t
ck_ksvtopo_group_members(const struct ck_ksvtopo *t, const struct ck_ksvtopo_group *g,
                         const struct ck_ksvtopo_node **out, size_t max)
{
    size_t gi;

    if (t == NULL || g == NULL || (gi = find_grp_idx(t, g->name)) == SIZE_MAX)
        return 0;
    for (size_t i = 0; i < g->n_members && i < max; i++)
        out[i] = t->members_by_group[t->grps[gi].first_member + i];
    return g->n_members;
}

bool
ck_ksvtopo_may_register(const struct ck_ksvtopo *t, const char *node, const char *ksv)
{
    const struct ck_ksvtopo_node *n = ck_ksvtopo_node_find(t, node);

    if (n == NULL || ksv == NULL)
        return false;
    if (n->n_ksv == 0)
        return true;
    for (size_t i = 0; i < n->n_ksv; i++)
        if (strcmp(n->ksv[i], ksv) == 0)
            return true;
    return false;
}

int
ck_ksvtopo_node_view(const struct ck_ksvtopo *t, const char *node, struct ck_ksvtopo_view *out)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    if (t == NULL || node == NULL || (i = find_node_idx(t, node)) == SIZE_MAX)
        return ck_error_set(CK_ERR_NOTFOUND, "topology: no node %s", node != NULL ? node : "");
    out->node = &t->nodes[i].pub;
    out->n_sa = t->nodes[i].n_sa;
    out->sa = out->n_sa != 0 ? &t->sas[t->nodes[i].first_sa] : NULL;
    out->n_groups = t->nodes[i].n_grp;
    out->groups = out->n_groups != 0 ? &t->mships[t->nodes[i].first_grp] : NULL;
    return 0;
}

bool
ck_ksvtopo_transform_equal(const struct ck_ksvtopo_transform *a,
                           const struct ck_ksvtopo_transform *b)
{
    return a->trans == b->trans && a->enc == b->enc && a->auth == b->auth &&
           a->mode == b->mode && a->life_sec == b->life_sec && a->life_kbyte == b->life_kbyte &&
           a->ack_reqd == b->ack_reqd;
}

/* ---- diff -------------------------------------------------------------------------------- */

static int
push_change(struct ck_ksvtopo_diff *d, size_t *cap, const struct ck_ksvtopo_change *c)
{
    if (d->n == *cap) {
        size_t ncap = *cap == 0 ? 64 : *cap * 2;
        struct ck_ksvtopo_change *nc = realloc(d->changes, ncap * sizeof(*nc));
        if (nc == NULL)
            return ck_error_set(CK_ERR_NOMEM, "topology diff: out of memory");
        d->changes = nc;
        *cap = ncap;
    }
    d->changes[d->n++] = *c;
    return 0;
}

static int
cmp_sa_key(const struct ck_ksvtopo_sa *a, const struct ck_ksvtopo_sa *b)
{
    int c = strcmp(a->peer->name, b->peer->name);
    return c != 0 ? c : (int)a->dir - (int)b->dir;
}

static bool
group_same(const struct ck_ksvtopo_group *a, const struct ck_ksvtopo_group *b)
{
    return strcmp(a->address, b->address) == 0 &&
           ck_ksvtopo_transform_equal(&a->policy->xf, &b->policy->xf) &&
           a->degree == b->degree && a->keying == b->keying;
}

static bool
opt_equal(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static bool
node_same(const struct ck_ksvtopo_node *a, const struct ck_ksvtopo_node *b)
{
    if (strcmp(a->address, b->address) != 0 || !opt_equal(a->principal, b->principal) ||
        a->n_ksv != b->n_ksv)
        return false;
    /* The KSV list is a set: "ksv a,b" and "ksv b,a" say the same. */
    for (size_t i = 0; i < a->n_ksv; i++) {
        bool found = false;
        for (size_t j = 0; j < b->n_ksv && !found; j++)
            found = strcmp(a->ksv[i], b->ksv[j]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static int
diff_node(struct ck_ksvtopo_diff *d, size_t *cap, const char *name,
          const struct ck_ksvtopo_view *o, const struct ck_ksvtopo_view *n)
{
    size_t i = 0, j = 0;
    bool moved = o->node != NULL && n->node != NULL &&
                 strcmp(o->node->address, n->node->address) != 0;
    int rc;

    if (o->node == NULL || n->node == NULL || !node_same(o->node, n->node)) {
        struct ck_ksvtopo_change c = {.node = name, .is_node = true, .node_old = o->node,
                                      .node_new = n->node};
        c.kind = o->node == NULL   ? CK_KSVTOPO_ADDED
                 : n->node == NULL ? CK_KSVTOPO_REMOVED
                                   : CK_KSVTOPO_CHANGED;
        if ((rc = push_change(d, cap, &c)) != 0)
            return rc;
    }
    while (i < o->n_sa || j < n->n_sa) {
        struct ck_ksvtopo_change c = {.node = name};
        int k = i == o->n_sa ? 1 : j == n->n_sa ? -1 : cmp_sa_key(&o->sa[i], &n->sa[j]);
        if (k < 0) {
            c.kind = CK_KSVTOPO_REMOVED;
            c.sa_old = &o->sa[i++];
        } else if (k > 0) {
            c.kind = CK_KSVTOPO_ADDED;
            c.sa_new = &n->sa[j++];
        } else {
            const struct ck_ksvtopo_sa *a = &o->sa[i++], *b = &n->sa[j++];
            if (!moved && ck_ksvtopo_transform_equal(&a->policy->xf, &b->policy->xf) &&
                strcmp(a->peer->address, b->peer->address) == 0)
                continue;
            c.kind = CK_KSVTOPO_CHANGED;
            c.sa_old = a;
            c.sa_new = b;
        }
        if ((rc = push_change(d, cap, &c)) != 0)
            return rc;
    }
    i = j = 0;
    while (i < o->n_groups || j < n->n_groups) {
        struct ck_ksvtopo_change c = {.node = name, .is_group = true};
        int k = i == o->n_groups   ? 1
                : j == n->n_groups ? -1
                                   : strcmp(o->groups[i].group->name, n->groups[j].group->name);
        if (k < 0) {
            c.kind = CK_KSVTOPO_REMOVED;
            c.grp_old = &o->groups[i++];
        } else if (k > 0) {
            c.kind = CK_KSVTOPO_ADDED;
            c.grp_new = &n->groups[j++];
        } else {
            const struct ck_ksvtopo_membership *a = &o->groups[i++], *b = &n->groups[j++];
            if (group_same(a->group, b->group))
                continue;
            c.kind = CK_KSVTOPO_CHANGED;
            c.grp_old = a;
            c.grp_new = b;
        }
        if ((rc = push_change(d, cap, &c)) != 0)
            return rc;
    }
    return 0;
}

int
ck_ksvtopo_diff(const struct ck_ksvtopo *old_t, const struct ck_ksvtopo *new_t,
                struct ck_ksvtopo_diff *out)
{
    size_t i = 0, j = 0, cap = 0, no = ck_ksvtopo_n_nodes(old_t), nn = ck_ksvtopo_n_nodes(new_t);
    int rc = 0;

    memset(out, 0, sizeof(*out));
    while (i < no || j < nn) {
        struct ck_ksvtopo_view vo = {0}, vn = {0};
        int k = i == no   ? 1
                : j == nn ? -1
                          : strcmp(old_t->nodes[i].pub.name, new_t->nodes[j].pub.name);
        if (k <= 0)
            (void)ck_ksvtopo_node_view(old_t, old_t->nodes[i++].pub.name, &vo);
        if (k >= 0)
            (void)ck_ksvtopo_node_view(new_t, new_t->nodes[j++].pub.name, &vn);
        if ((rc = diff_node(out, &cap, k <= 0 ? vo.node->name : vn.node->name, &vo, &vn)) != 0)
            goto out;
    }
out:
    if (rc != 0)
        ck_ksvtopo_diff_free(out);
    return rc;
}

void
ck_ksvtopo_diff_free(struct ck_ksvtopo_diff *d)
{
    if (d == NULL)
        return;
    free(d->changes);
    d->changes = NULL;
    d->n = 0;
}
