/* The KSV's secure topology: example topologies in the seed's terms (policy groups with
 * TRANS-TYPE, LIFE-SEC, LIFE-KBYTE; links => and <->; multicast groups) expand to the exact SAs
 * and memberships each node receives; every error carries its line; the reload diff names exactly
 * what changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/ksv_topology.h"
#include "ck_test.h"

/* Seed 001 3.2.1's policy values (TRANS-TYPE = AH or ESP, LIFE-SEC = 100, LIFE-KBYTE = 10000),
 * and three nodes of its Figure 9. */
static const char seed_topo[] =
    "# seed 001, 3.2.1\n"                                     /* 1 */
    "ksv ksv1 192.168.0.1\n"                                  /* 2 */
    "ksv ksv2\n"                                              /* 3 */
    "policy authonly {\n"                                     /* 4 */
    "    TRANS-TYPE = AH\n"                                   /* 5 */
    "    LIFE-SEC = 100\n"                                    /* 6 */
    "    LIFE-KBYTE = 10000\n"                                /* 7 */
    "}\n"                                                     /* 8 */
    "policy secret {\n"                                       /* 9 */
    "    trans-type = esp   # keys are case-insensitive\n"    /* 10 */
    "    LIFE-SEC = 100\n"                                    /* 11 */
    "    LIFE-KBYTE = 10000\n"                                /* 12 */
    "    ENC-ALG = aes-128-cbc\n"                             /* 13 */
    "    AUTH-ALG = hmac-sha256-128\n"                        /* 14 */
    "    MODE = tunnel\n"                                     /* 15 */
    "    ACK-REQD = yes\n"                                    /* 16 */
    "}\n"                                                     /* 17 */
    "node a 192.168.1.1 principal host/a@EXAMPLE.TEST ksv ksv1\n" /* 18 */
    "node b 192.168.1.2 ksv ksv1,ksv2\n"                      /* 19 */
    "node c 192.168.5.0\n"                                    /* 20 */
    "a => b authonly\n"                                       /* 21 */
    "b <-> c secret\n"                                        /* 22 */
    "group g1 {\n"                                            /* 23 */
    "    address = 239.0.0.1\n"                               /* 24 */
    "    policy = secret\n"                                   /* 25 */
    "    members = b a\n"                                     /* 26 */
    "    members = c\n"                                       /* 27 */
    "}\n";                                                    /* 28 */

static struct ck_ksvtopo *
parse_ok(const char *text)
{
    struct ck_ksvtopo *t = NULL;
    struct ck_ksvtopo_report rep;

    CHECK_OK(ck_ksvtopo_parse(text, strlen(text), "t.conf", &t, &rep));
    CHECK_INT_EQ(rep.n, 0);
    return t;
}

/* Renders a node's view as one line, e.g. "b:out:c:secret c:in:c:secret | g1". */
static void
render(const struct ck_ksvtopo *t, const char *node, char *buf, size_t size)
{
    struct ck_ksvtopo_view v;
    size_t off = 0;

    buf[0] = '\0';
    if (ck_ksvtopo_node_view(t, node, &v) != 0) {
        snprintf(buf, size, "(none)");
        return;
    }
    for (size_t i = 0; i < v.n_sa; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s:%s:%s", i ? " " : "",
                                v.sa[i].peer->name, ck_ksvtopo_dir_name(v.sa[i].dir),
                                v.sa[i].policy->name);
    off += (size_t)snprintf(buf + off, size - off, " |");
    for (size_t i = 0; i < v.n_groups; i++)
        off += (size_t)snprintf(buf + off, size - off, " %s", v.groups[i].group->name);
}

#define CHECK_VIEW(t, node, expect)                                                        \
    do {                                                                                   \
        char got_[1024];                                                                   \
        render((t), (node), got_, sizeof(got_));                                           \
        if (strcmp(got_, (expect)) != 0) {                                                 \
            fprintf(stderr, "  %s:%d: view of %s is \"%s\", expected \"%s\"\n", __FILE__,   \
                    __LINE__, (node), got_, (expect));                                     \
            ck_test_case_failed = 1;                                                       \
        }                                                                                  \
    } while (0)

static void
test_seed_expansion(void)
{
    struct ck_ksvtopo *t = parse_ok(seed_topo);
    const struct ck_ksvtopo_policy *ah, *esp;
    const struct ck_ksvtopo_group *g;
    const struct ck_ksvtopo_node *members[4];
    struct ck_ksvtopo_view v;

    if (t == NULL)
        return;
    /* => gives the sender an outbound SA and the receiver the inbound one; <-> both, to both. */
    CHECK_VIEW(t, "a", "b:out:authonly | g1");
    CHECK_VIEW(t, "b", "a:in:authonly c:out:secret c:in:secret | g1");
    CHECK_VIEW(t, "c", "b:out:secret b:in:secret | g1");
    CHECK_VIEW(t, "zz", "(none)");

    ah = ck_ksvtopo_policy_find(t, "authonly");
    esp = ck_ksvtopo_policy_find(t, "secret");
    CHECK(ah != NULL && esp != NULL);
    if (ah == NULL || esp == NULL)
        goto out;
    CHECK_INT_EQ(ah->xf.trans, CK_KSVTOPO_AH);
    CHECK_INT_EQ(ah->xf.life_sec, 100);
    CHECK_INT_EQ(ah->xf.life_kbyte, 10000);
    CHECK_INT_EQ(ah->xf.enc, CK_KSVTOPO_ENC_NONE);
    CHECK_INT_EQ(ah->xf.auth, CK_KSVTOPO_AUTH_HMAC_SHA256_128); /* the default */
    CHECK_INT_EQ(ah->xf.mode, CK_KSVTOPO_TRANSPORT);
    CHECK(!ah->xf.ack_reqd);
    CHECK_INT_EQ(esp->xf.trans, CK_KSVTOPO_ESP);
    CHECK_INT_EQ(esp->xf.enc, CK_KSVTOPO_ENC_AES128_CBC);
    CHECK_INT_EQ(esp->xf.auth, CK_KSVTOPO_AUTH_HMAC_SHA256_128);
    CHECK_INT_EQ(esp->xf.mode, CK_KSVTOPO_TUNNEL);
    CHECK(esp->xf.ack_reqd);

    /* The SA records carry the peer's address and the link's line. */
    CHECK_OK(ck_ksvtopo_node_view(t, "b", &v));
    CHECK_INT_EQ(v.n_sa, 3);
    if (v.n_sa == 3) {
        CHECK(strcmp(v.sa[0].peer->address, "192.168.1.1") == 0);
        CHECK_INT_EQ(v.sa[0].line, 21);
        CHECK_INT_EQ(v.sa[1].line, 22);
        CHECK(v.sa[1].policy == esp);
    }
    CHECK(strcmp(v.node->address, "192.168.1.2") == 0);

    g = ck_ksvtopo_group_find(t, "g1");
    CHECK(g != NULL);
    if (g != NULL) {
        CHECK(strcmp(g->address, "239.0.0.1") == 0);
        CHECK(g->policy == esp);
        CHECK_INT_EQ(g->degree, CK_KSVTOPO_DEFAULT_DEGREE);
        CHECK_INT_EQ(g->keying, CK_KSVTOPO_LKH);
        CHECK_INT_EQ(ck_ksvtopo_group_members(t, g, members, 4), 3);
        CHECK(strcmp(members[0]->name, "a") == 0 && strcmp(members[1]->name, "b") == 0 &&
              strcmp(members[2]->name, "c") == 0);
    }

    /* Which KSV a node may register with. */
    CHECK(ck_ksvtopo_may_register(t, "a", "ksv1"));
    CHECK(!ck_ksvtopo_may_register(t, "a", "ksv2"));
    CHECK(ck_ksvtopo_may_register(t, "b", "ksv2"));
    CHECK(ck_ksvtopo_may_register(t, "c", "ksv2")); /* no list: any */
    CHECK(!ck_ksvtopo_may_register(t, "nobody", "ksv1"));
    CHECK(ck_ksvtopo_node_by_principal(t, "host/a@EXAMPLE.TEST") ==
          ck_ksvtopo_node_find(t, "a"));
    CHECK(ck_ksvtopo_node_by_principal(t, "host/b@EXAMPLE.TEST") == NULL);
out:
    ck_ksvtopo_free(t);
}

/* The same topology written in another order, with "↔", expands identically. */
static void
test_order_independent(void)
{
    static const char shuffled[] =
        "group g1 {\n  members = c a b\n  policy = secret\n  address = 239.0.0.1\n}\n"
        "c \xe2\x86\x94 b secret\n"
        "a => b authonly\n"
        "node c 192.168.5.0\nnode b 192.168.1.2 ksv ksv2,ksv1\n"
        "node a 192.168.1.1 ksv ksv1 principal host/a@EXAMPLE.TEST\n"
        "policy secret {\n TRANS-TYPE=ESP\n LIFE-SEC=100\n LIFE-KBYTE=10000\n"
        " ENC-ALG=AES-128-CBC\n AUTH-ALG=hmac-sha256-128\n MODE=tunnel\n ACK-REQD=yes\n}\n"
        "policy authonly {\nTRANS-TYPE = AH\nLIFE-SEC = 100\nLIFE-KBYTE = 10000\n}\n"
        "ksv ksv2\nksv ksv1 192.168.0.1\n";
    struct ck_ksvtopo *a = parse_ok(seed_topo), *b = parse_ok(shuffled);
    struct ck_ksvtopo_diff d;

    if (a != NULL && b != NULL) {
        CHECK_VIEW(b, "a", "b:out:authonly | g1");
        CHECK_VIEW(b, "b", "a:in:authonly c:out:secret c:in:secret | g1");
        CHECK_VIEW(b, "c", "b:out:secret b:in:secret | g1");
        CHECK_OK(ck_ksvtopo_diff(a, b, &d));
        CHECK_INT_EQ(d.n, 0);
        ck_ksvtopo_diff_free(&d);
    }
    ck_ksvtopo_free(a);
    ck_ksvtopo_free(b);
}

/* Policy defaults and the algorithms' rules. */
static void
test_policy_defaults(void)
{
    struct ck_ksvtopo *t = parse_ok("policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 3600\n}\n"
                                    "policy q {\nTRANS-TYPE = ESP\nLIFE-SEC = 10\n"
                                    "ENC-ALG = null\nAUTH-ALG = hmac-sha512-256\n}\n"
                                    "node x 2001:db8::2\nnode y 2001:DB8::1\nx => y p\ny => x q\n");
    const struct ck_ksvtopo_policy *p, *q;
    struct ck_ksvtopo_view v;

    if (t == NULL)
        return;
    p = ck_ksvtopo_policy_find(t, "p");
    q = ck_ksvtopo_policy_find(t, "q");
    CHECK(p != NULL && q != NULL);
    if (p != NULL && q != NULL) {
        CHECK_INT_EQ(p->xf.enc, CK_KSVTOPO_ENC_AES256_GCM);
        CHECK_INT_EQ(p->xf.auth, CK_KSVTOPO_AUTH_NONE);
        CHECK_INT_EQ(p->xf.life_kbyte, 0);
        CHECK_INT_EQ(q->xf.enc, CK_KSVTOPO_ENC_NULL);
        CHECK_INT_EQ(q->xf.auth, CK_KSVTOPO_AUTH_HMAC_SHA512_256);
        CHECK_INT_EQ(q->xf.life_sec, 10);
    }
    /* IPv6 addresses are kept in canonical form. */
    CHECK_OK(ck_ksvtopo_node_view(t, "y", &v));
    CHECK(strcmp(v.node->address, "2001:db8::1") == 0);
    CHECK_VIEW(t, "x", "y:out:p y:in:q |");
    ck_ksvtopo_free(t);
    /* AES-CBC with HMAC-SHA-1-96: the transform cablekey's userspace ESP runs. */
    t = parse_ok("policy r {\nTRANS-TYPE = ESP\nLIFE-SEC = 60\nENC-ALG = aes-128-cbc\n"
                 "AUTH-ALG = HMAC-SHA1-96\n}\nnode x 10.0.0.1\nnode y 10.0.0.2\nx => y r\n");
    if (t == NULL)
        return;
    p = ck_ksvtopo_policy_find(t, "r");
    CHECK(p != NULL && p->xf.auth == CK_KSVTOPO_AUTH_HMAC_SHA1_96 &&
          p->xf.enc == CK_KSVTOPO_ENC_AES128_CBC);
    CHECK(strcmp(ck_ksvtopo_auth_name(CK_KSVTOPO_AUTH_HMAC_SHA1_96), "hmac-sha1-96") == 0);
    ck_ksvtopo_free(t);
}

/* Parses text that must fail; checks the returned code, that the report holds exactly the
 * expected messages (each "t.conf:LINE: ...substring") in line order, and that the error context
 * names the first. */
static void
expect_errors(const char *text, int code, const char *const *expect, size_t n_expect,
              int src_line)
{
    struct ck_ksvtopo *t = (struct ck_ksvtopo *)1;
    struct ck_ksvtopo_report rep;
    int rc = ck_ksvtopo_parse(text, strlen(text), "t.conf", &t, &rep);
    bool ok = rc == code && t == NULL && rep.n == n_expect;

    for (size_t i = 0; ok && i < n_expect; i++) {
        const char *colon = strchr(expect[i], ' ');
        size_t prefix = colon != NULL ? (size_t)(colon - expect[i]) : strlen(expect[i]);
        /* expect: "LINE text": the message starts with t.conf:LINE: and contains text */
        char head[32];
        snprintf(head, sizeof(head), "t.conf:%.*s: ", (int)prefix, expect[i]);
        if (strncmp(rep.err[i].msg, head, strlen(head)) != 0 ||
            (colon != NULL && strstr(rep.err[i].msg, colon + 1) == NULL))
            ok = false;
    }
    if (ok && n_expect > 0 && strcmp(ck_error_context(), rep.err[0].msg) != 0)
        ok = false;
    if (!ok) {
        fprintf(stderr, "  %s:%d: rc %d (want %d), %zu errors (want %zu), context \"%s\":\n",
                __FILE__, src_line, rc, code, rep.n, n_expect, ck_error_context());
        for (size_t i = 0; i < rep.n; i++)
            fprintf(stderr, "    %s\n", rep.err[i].msg);
        ck_test_case_failed = 1;
    }
    if (t != NULL && t != (struct ck_ksvtopo *)1)
        ck_ksvtopo_free(t);
}

#define EXPECT_ERRORS(text, ...)                                                           \
    do {                                                                                   \
        static const char *const e_[] = {__VA_ARGS__};                                      \
        expect_errors((text), CK_ERR_CONFIG, e_, sizeof(e_) / sizeof(e_[0]), __LINE__);     \
    } while (0)

#define BASE                                                                               \
    "policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 100\n}\n" /* 1-4 */                          \
    "node a 10.0.0.1\nnode b 10.0.0.2\nnode c 10.0.0.3\n" /* 5-7 */

static void
test_conflicts(void)
{
    /* A link defined twice: the same =>, or => against a <-> that contains it. */
    EXPECT_ERRORS(BASE "a => b p\nb => c p\na => b p\n",
                  "10 link a => b defined twice (first at line 8)");
    EXPECT_ERRORS(BASE "b => a p\na <-> b p\n", "9 link b => a defined twice (first at line 8)");
    /* The tree degree is bounded by what the LKH module and the REGISTER codec carry. */
    EXPECT_ERRORS(BASE "group g {\naddress = 239.1.1.1\npolicy = p\nmembers = a b\ndegree = 17\n}\n",
                  "12 degree = \"17\": from 2 to 16");
    EXPECT_ERRORS(BASE "a <-> b p\nb <-> a p\n", "9 link a => b defined twice (first at line 8)",
                  "9 link b => a defined twice (first at line 8)");
    /* a => b and b => a are two different SAs, not a conflict. */
    {
        struct ck_ksvtopo *t = parse_ok(BASE "a => b p\nb => a p\n");
        CHECK_VIEW(t, "a", "b:out:p b:in:p |");
        ck_ksvtopo_free(t);
    }
    /* Unknown policy, unknown node, self link. */
    EXPECT_ERRORS(BASE "a => b nope\n", "8 unknown policy nope");
    EXPECT_ERRORS(BASE "a => zz p\n", "8 unknown node zz");
    EXPECT_ERRORS(BASE "a <-> a p\n", "8 link from a to itself");
    EXPECT_ERRORS(BASE "node v6 2001:db8::1\na => b p\nv6 <-> a p\n",
                  "10 link v6 <-> a: v6 is IPv6, a is IPv4");
    /* A node in two groups of one address; in one group twice; groups of different addresses
     * may share members. */
    EXPECT_ERRORS(BASE "group g1 {\naddress = 239.1.1.1\npolicy = p\nmembers = a b\n}\n"
                       "group g2 {\naddress = 239.1.1.1\npolicy = p\nmembers = c b\n}\n",
                  "16 node b in two groups of address 239.1.1.1: g1 (line 11) and g2");
    EXPECT_ERRORS(BASE "group g1 {\naddress = 239.1.1.1\npolicy = p\nmembers = a b\n"
                       "members = a\n}\n",
                  "12 node a listed twice in group g1 (first at line 11)");
    {
        struct ck_ksvtopo *t = parse_ok(
            BASE "group g1 {\naddress = 239.1.1.1\npolicy = p\nmembers = a b\n}\n"
                 "group g2 {\naddress = 239.1.1.2\npolicy = p\nmembers = b\nkeying = hybrid\n"
                 "degree = 2\n}\n");
        CHECK_VIEW(t, "b", " | g1 g2");
        if (t != NULL) {
            const struct ck_ksvtopo_group *g2 = ck_ksvtopo_group_find(t, "g2");
            CHECK(g2 != NULL && g2->keying == CK_KSVTOPO_HYBRID && g2->degree == 2 &&
                  g2->index == 1 && strcmp(g2->address, "239.1.1.2") == 0);
        }
        ck_ksvtopo_free(t);
    }
    EXPECT_ERRORS(BASE "node v6 2001:db8::1\n"
                       "group g {\naddress = FF05::1:3\npolicy = p\nmembers = v6 a\n}\n",
                  "12 group g (ff05::1:3): node a has an IPv4 address");
    /* A group without members, without address or policy, with an unknown policy or node. */
    EXPECT_ERRORS(BASE "group g {\naddress = 239.1.1.1\npolicy = p\n}\n",
                  "8 group g has no members");
    EXPECT_ERRORS(BASE "group g {\nmembers = a\n}\n", "8 group g: address missing",
                  "8 group g: policy missing");
    EXPECT_ERRORS(BASE "group g {\naddress = 239.1.1.1\npolicy = q\nmembers = a zz\n}\n",
                  "10 group g: unknown policy q", "11 group g: unknown node zz");
    EXPECT_ERRORS(BASE "group g {\naddress = 10.1.1.1\npolicy = p\nmembers = a\n}\n",
                  "9 group address 10.1.1.1 is not a multicast address");
    /* Names and addresses declared twice. */
    EXPECT_ERRORS(BASE "node a 10.0.0.9\n", "8 node a already declared at line 5");
    EXPECT_ERRORS(BASE "node d 10.0.0.1\n", "8 address 10.0.0.1 of node d already belongs to a");
    EXPECT_ERRORS(BASE "policy p {\nTRANS-TYPE = AH\nLIFE-SEC = 100\n}\n",
                  "8 policy p already declared at line 1");
    EXPECT_ERRORS("node a 10.0.0.1 principal x@R\nnode b 10.0.0.2 principal x@R\n",
                  "2 principal x@R of node b already belongs to a");
    EXPECT_ERRORS("ksv k\nnode a 10.0.0.1 ksv k,other\n", "2 node a: unknown ksv other");
    EXPECT_ERRORS("ksv k\nksv k\n", "2 ksv k already declared at line 1");
    EXPECT_ERRORS("ksv k\nnode a 10.0.0.1 ksv k,k\n", "2 node a: ksv k listed twice");
    EXPECT_ERRORS("node m 239.0.0.1\n", "1 node address 239.0.0.1 is a multicast address");
    EXPECT_ERRORS("node m ::\nnode n 0.1.2.3\n", "1 node address :: is not a unicast address",
                  "2 node address 0.1.2.3 is not a unicast address");
    EXPECT_ERRORS("node m 10.0.0.300\n", "1 \"10.0.0.300\" is not an IPv4 or IPv6 address");
}

static void
test_policy_errors(void)
{
    /* Bad and missing lifetimes. */
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 0\n}\n",
                  "3 LIFE-SEC = \"0\": seconds from 10 to 31536000");
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 31536001\nLIFE-KBYTE = -1\n}\n",
                  "3 LIFE-SEC = \"31536001\"",
                  "4 LIFE-KBYTE = \"-1\"");
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 1h\n}\n", "3 LIFE-SEC = \"1h\"");
    EXPECT_ERRORS("policy p {\nLIFE-SEC = 100\nLIFE-KBYTE = 4294967296\n}\n",
                  "1 policy p: TRANS-TYPE missing", "3 LIFE-KBYTE = \"4294967296\"");
    /* A refused TRANS-TYPE is reported once, not again as a bad transform. */
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = GRE\nLIFE-SEC = 100\nENC-ALG = null\n"
                  "AUTH-ALG = none\n}\n",
                  "2 TRANS-TYPE = \"GRE\": AH or ESP");
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 100\nLIFE-SEC = 200\n}\n",
                  "4 LIFE-SEC given twice");
    /* Transforms that make no sense. */
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = AH\nLIFE-SEC = 100\nENC-ALG = aes-256-gcm\n}\n",
                  "1 policy p: AH takes no ENC-ALG");
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = AH\nLIFE-SEC = 100\nAUTH-ALG = none\n}\n",
                  "1 policy p: AH needs an AUTH-ALG");
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 100\nAUTH-ALG = hmac-sha384-192\n}\n",
                  "1 policy p: aes-256-gcm authenticates by itself");
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 100\nENC-ALG = aes-256-cbc\n"
                  "AUTH-ALG = none\n}\n",
                  "1 policy p: ESP with aes-256-cbc needs an AUTH-ALG");
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 100\nENC-ALG = des\nMODE = beet\n"
                  "ACK-REQD = maybe\nCOLOUR = red\n}\n",
                  "4 ENC-ALG = \"des\": unknown cipher", "5 MODE = \"beet\"",
                  "6 ACK-REQD = \"maybe\"", "7 unknown policy key \"COLOUR\"");
}

static void
test_syntax_errors(void)
{
    EXPECT_ERRORS("hello world\n", "1 unknown statement \"hello\"");
    EXPECT_ERRORS("}\n", "1 } without a block");
    EXPECT_ERRORS("node a\n", "1 node NAME ADDRESS");
    EXPECT_ERRORS("node -a 10.0.0.1\n", "1 node \"-a\": not a valid name");
    EXPECT_ERRORS("node a 10.0.0.1 colour red\n", "1 node a: unknown attribute \"colour\"");
    EXPECT_ERRORS("node a 10.0.0.1 principal\n", "1 node a: \"principal\" needs a value");
    EXPECT_ERRORS("\n\na => b\n", "3 a link is NODE => NODE POLICY");
    EXPECT_ERRORS("a <-> b p extra\n", "1 a link is NODE <-> NODE POLICY");
    EXPECT_ERRORS("policy p\n", "1 policy NAME {");
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 100\n", "1 policy p: block not closed");
    EXPECT_ERRORS("policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 100\ngroup g {\n"
                  "address = 239.0.0.1\npolicy = p\nmembers = a\n}\nnode a 10.0.0.1\n",
                  "1 block not closed before line 4");
    EXPECT_ERRORS("policy p {\nTRANS-TYPE ESP\n= 5\nLIFE-SEC =\n} x\n",
                  "1 policy p: TRANS-TYPE missing", "2 expected KEY = VALUE or }",
                  "3 missing key before =", "4 LIFE-SEC: missing value", "5 text after }");
    EXPECT_ERRORS("group g {\naddress = 239.0.0.1\npolicy = p\nmembers =   \n}\n",
                  "1 group g has no members", "3 group g: unknown policy p",
                  "4 members: missing value");
}

static void
test_limits(void)
{
    struct ck_ksvtopo *t = NULL;
    struct ck_ksvtopo_report rep;
    size_t big = CK_KSVTOPO_MAX_LINE + 3;
    char *s = malloc(CK_KSVTOPO_MAX_FILE + 2);

    if (s == NULL)
        abort();
    /* A line too long. */
    memset(s, '#', big);
    memcpy(s, "\n\n", 2);
    CHECK_INT_EQ(ck_ksvtopo_parse(s, big, "t.conf", &t, &rep), CK_ERR_LIMIT);
    CHECK(strstr(ck_error_context(), "t.conf:3: line longer than 4096 bytes") != NULL);
    CHECK(t == NULL);
    /* A line of exactly the limit is fine. */
    memset(s, '#', CK_KSVTOPO_MAX_LINE);
    CHECK_OK(ck_ksvtopo_parse(s, CK_KSVTOPO_MAX_LINE, "t.conf", &t, NULL));
    ck_ksvtopo_free(t);
    t = NULL;
    /* A file too large. */
    memset(s, '\n', CK_KSVTOPO_MAX_FILE + 1);
    CHECK_INT_EQ(ck_ksvtopo_parse(s, CK_KSVTOPO_MAX_FILE + 1, "t.conf", &t, &rep), CK_ERR_LIMIT);
    /* A NUL byte. */
    CHECK_INT_EQ(ck_ksvtopo_parse("node a\0 10.0.0.1\n", 17, "t.conf", &t, &rep), CK_ERR_CONFIG);
    /* Too many KSVs: the limit stops the parse and its message is the one returned. */
    {
        size_t off = 0;
        for (int i = 0; i <= CK_KSVTOPO_MAX_KSVS; i++)
            off += (size_t)snprintf(s + off, 64, "ksv k%d\n", i);
        CHECK_INT_EQ(ck_ksvtopo_parse(s, off, "t.conf", &t, &rep), CK_ERR_LIMIT);
        CHECK(strstr(ck_error_context(), "t.conf:65: more than 64 KSVs") != NULL);
    }
    /* Too many groups, too many nodes. */
    {
        size_t off = 0;
        for (int i = 0; i <= CK_KSVTOPO_MAX_GROUPS; i++)
            off += (size_t)snprintf(s + off, 64, "group g%d {\n}\n", i);
        CHECK_INT_EQ(ck_ksvtopo_parse(s, off, "t.conf", &t, &rep), CK_ERR_LIMIT);
        CHECK(strstr(ck_error_context(), "t.conf:2049: more than 1024 groups") != NULL);
        off = 0;
        for (int i = 0; i <= CK_KSVTOPO_MAX_NODES; i++)
            off += (size_t)snprintf(s + off, 64, "node n%d 10.%d.%d.1\n", i, i / 256 % 256,
                                    i % 256);
        CHECK_INT_EQ(ck_ksvtopo_parse(s, off, "t.conf", &t, &rep), CK_ERR_LIMIT);
        CHECK(strstr(ck_error_context(), "t.conf:65537: more than 65536 nodes") != NULL);
        CHECK(t == NULL);
    }
    /* Too many directed links: <-> counts two. */
    {
        size_t off = (size_t)snprintf(s, 128, "policy p {\nTRANS-TYPE = AH\nLIFE-SEC = 60\n}\n"
                                              "node a 10.0.0.1\nnode b 10.0.0.2\n");
        for (int i = 0; i <= CK_KSVTOPO_MAX_LINKS / 2; i++)
            off += (size_t)snprintf(s + off, 64, "a <-> b p\n");
        CHECK_INT_EQ(ck_ksvtopo_parse(s, off, "t.conf", &t, &rep), CK_ERR_LIMIT);
        CHECK(strstr(ck_error_context(), "more than 262144 directed links") != NULL);
        CHECK(t == NULL);
    }
    /* A name too long. */
    {
        char line[128];
        snprintf(line, sizeof(line), "node %.*s 10.0.0.1\n", 64,
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        CHECK_INT_EQ(ck_ksvtopo_parse(line, strlen(line), "t.conf", &t, &rep), CK_ERR_CONFIG);
    }
    /* Many errors: the report keeps the first 32 by line and counts the rest. */
    {
        size_t off = 0;
        for (int i = 0; i < 40; i++)
            off += (size_t)snprintf(s + off, 64, "bad%d\n", i);
        CHECK_INT_EQ(ck_ksvtopo_parse(s, off, "t.conf", &t, &rep), CK_ERR_CONFIG);
        CHECK_INT_EQ(rep.n, CK_KSVTOPO_MAX_ERRORS);
        CHECK_INT_EQ(rep.dropped, 8);
        CHECK(strstr(rep.err[0].msg, "t.conf:1: ") == rep.err[0].msg);
    }
    /* A big but legal topology: 20,000 nodes in a ring of <-> links, one group of all. */
    {
        size_t off = 0, cap = CK_KSVTOPO_MAX_FILE;
        const int n = 20000;
        struct ck_ksvtopo_view v;
        off += (size_t)snprintf(s + off, cap - off,
                                "policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 60\n}\n");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(s + off, cap - off, "node n%d 10.%d.%d.1\n", i, i / 256,
                                    i % 256);
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(s + off, cap - off, "n%d <-> n%d p\n", i, (i + 1) % n);
        off += (size_t)snprintf(s + off, cap - off,
                                "group all {\naddress = 239.9.9.9\npolicy = p\n");
        for (int i = 0; i < n; i += 100) {
            off += (size_t)snprintf(s + off, cap - off, "members =");
            for (int j = i; j < i + 100; j++)
                off += (size_t)snprintf(s + off, cap - off, " n%d", j);
            off += (size_t)snprintf(s + off, cap - off, "\n");
        }
        off += (size_t)snprintf(s + off, cap - off, "}\n");
        CHECK(off < cap);
        CHECK_OK(ck_ksvtopo_parse(s, off, "big.conf", &t, &rep));
        CHECK_INT_EQ(ck_ksvtopo_n_nodes(t), n);
        CHECK_OK(ck_ksvtopo_node_view(t, "n0", &v));
        CHECK_INT_EQ(v.n_sa, 4);
        CHECK_INT_EQ(v.n_groups, 1);
        CHECK_VIEW(t, "n5", "n4:out:p n4:in:p n6:out:p n6:in:p | all");
        ck_ksvtopo_free(t);
        t = NULL;
    }
    free(s);
}

/* ---- reload diff ------------------------------------------------------------------------- */

static void
render_diff(const struct ck_ksvtopo_diff *d, char *buf, size_t size)
{
    static const char *kinds[] = {"+", "-", "~"};
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < d->n; i++) {
        const struct ck_ksvtopo_change *c = &d->changes[i];
        if (c->is_node) {
            off += (size_t)snprintf(buf + off, size - off, "%s%s%s:node", i ? " " : "",
                                    kinds[c->kind], c->node);
            if ((c->kind == CK_KSVTOPO_ADDED) != (c->node_old == NULL) ||
                (c->kind == CK_KSVTOPO_REMOVED) != (c->node_new == NULL))
                off += (size_t)snprintf(buf + off, size - off, "!");
            continue;
        }
        if (c->is_group) {
            const struct ck_ksvtopo_membership *m = c->grp_new != NULL ? c->grp_new : c->grp_old;
            off += (size_t)snprintf(buf + off, size - off, "%s%s%s:group:%s", i ? " " : "",
                                    kinds[c->kind], c->node, m->group->name);
        } else {
            const struct ck_ksvtopo_sa *sa = c->sa_new != NULL ? c->sa_new : c->sa_old;
            off += (size_t)snprintf(buf + off, size - off, "%s%s%s:%s:%s", i ? " " : "",
                                    kinds[c->kind], c->node, ck_ksvtopo_dir_name(sa->dir),
                                    sa->peer->name);
        }
        /* Both sides where they must be. */
        if ((c->kind == CK_KSVTOPO_ADDED) != (c->sa_old == NULL && c->grp_old == NULL) ||
            (c->kind == CK_KSVTOPO_REMOVED) != (c->sa_new == NULL && c->grp_new == NULL))
            off += (size_t)snprintf(buf + off, size - off, "!");
    }
}

static void
expect_diff(const char *old_text, const char *new_text, const char *expect, int src_line)
{
    struct ck_ksvtopo *a = old_text != NULL ? parse_ok(old_text) : NULL;
    struct ck_ksvtopo *b = new_text != NULL ? parse_ok(new_text) : NULL;
    struct ck_ksvtopo_diff d;
    char got[2048];

    CHECK_OK(ck_ksvtopo_diff(a, b, &d));
    render_diff(&d, got, sizeof(got));
    if (strcmp(got, expect) != 0) {
        fprintf(stderr, "  %s:%d: diff is \"%s\", expected \"%s\"\n", __FILE__, src_line, got,
                expect);
        ck_test_case_failed = 1;
    }
    ck_ksvtopo_diff_free(&d);
    ck_ksvtopo_free(a);
    ck_ksvtopo_free(b);
}

#define POLICIES                                                                           \
    "policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 100\n}\n"                                    \
    "policy p2 {\nTRANS-TYPE = ESP\nLIFE-SEC = 100\n}\n"                                   \
    "policy q {\nTRANS-TYPE = AH\nLIFE-SEC = 100\n}\n"
#define NODES "node a 10.0.0.1\nnode b 10.0.0.2\nnode c 10.0.0.3\n"
#define GROUP(m) "group g {\naddress = 239.0.0.1\npolicy = p\nmembers = " m "\n}\n"

static void
test_diff(void)
{
    const char *base = POLICIES NODES "a => b p\nb <-> c p\n" GROUP("a b");

    /* Nothing changed; a policy renamed to one of equal content pushes nothing either. */
    expect_diff(base, base, "", __LINE__);
    expect_diff(base, POLICIES NODES "a => b p2\nb <-> c p\n" GROUP("a b"), "", __LINE__);
    /* A link added: both ends get an SA, nobody else anything. */
    expect_diff(base, POLICIES NODES "a => b p\nb <-> c p\nc => a q\n" GROUP("a b"),
                "+a:in:c +c:out:a", __LINE__);
    /* A link removed (=> that was half of nothing, and a <-> whole). */
    expect_diff(base, POLICIES NODES "b <-> c p\n" GROUP("a b"), "-a:out:b -b:in:a", __LINE__);
    expect_diff(base, POLICIES NODES "a => b p\n" GROUP("a b"),
                "-b:out:c -b:in:c -c:out:b -c:in:b", __LINE__);
    /* <-> narrowed to =>: only the reverse direction goes. */
    expect_diff(base, POLICIES NODES "a => b p\nb => c p\n" GROUP("a b"), "-b:in:c -c:out:b",
                __LINE__);
    /* A link's policy changed (ESP to AH): both ends' SAs change. */
    expect_diff(base, POLICIES NODES "a => b q\nb <-> c p\n" GROUP("a b"), "~a:out:b ~b:in:a",
                __LINE__);
    /* A policy's content changed: every SA and group under it. */
    expect_diff(base,
                "policy p {\nTRANS-TYPE = ESP\nLIFE-SEC = 200\n}\n"
                "policy p2 {\nTRANS-TYPE = ESP\nLIFE-SEC = 100\n}\n"
                "policy q {\nTRANS-TYPE = AH\nLIFE-SEC = 100\n}\n" NODES
                "a => b p\nb <-> c p\n" GROUP("a b"),
                "~a:out:b ~a:group:g ~b:in:a ~b:out:c ~b:in:c ~b:group:g ~c:out:b ~c:in:b",
                __LINE__);
    /* A node's address changed: the SAs toward it change at its peers, and all of its own. */
    expect_diff(base,
                POLICIES "node a 10.0.0.1\nnode b 10.0.0.2\nnode c 10.0.0.33\n"
                         "a => b p\nb <-> c p\n" GROUP("a b"),
                "~b:out:c ~b:in:c ~c:node ~c:out:b ~c:in:b", __LINE__);
    /* Principal or KSV list changed: the node only (a reordered KSV list is the same). */
    expect_diff("ksv k1\nksv k2\n" POLICIES NODES "node d 10.0.0.4 ksv k1,k2\na => b p\n",
                "ksv k1\nksv k2\n" POLICIES
                "node a 10.0.0.1 principal host/a@R\nnode b 10.0.0.2\nnode c 10.0.0.3 ksv k2\n"
                "node d 10.0.0.4 ksv k2,k1\na => b p\n",
                "~a:node ~c:node", __LINE__);
    /* Group membership: a member joins, another leaves; a group's address moves. */
    expect_diff(base, POLICIES NODES "a => b p\nb <-> c p\n" GROUP("b c"),
                "-a:group:g +c:group:g", __LINE__);
    expect_diff(base,
                POLICIES NODES "a => b p\nb <-> c p\n"
                               "group g {\naddress = 239.0.0.2\npolicy = p\nmembers = a b\n}\n",
                "~a:group:g ~b:group:g", __LINE__);
    /* A node removed with its links; a topology from nothing; to nothing. */
    expect_diff(base, POLICIES "node a 10.0.0.1\nnode b 10.0.0.2\na => b p\n" GROUP("a b"),
                "-b:out:c -b:in:c -c:node -c:out:b -c:in:b", __LINE__);
    expect_diff(NULL, POLICIES NODES "a <-> b p\n",
                "+a:node +a:out:b +a:in:b +b:node +b:out:a +b:in:a +c:node", __LINE__);
    expect_diff(POLICIES NODES "a <-> b p\n", NULL,
                "-a:node -a:out:b -a:in:b -b:node -b:out:a -b:in:a -c:node", __LINE__);
}

/* The documented example loads and says what its comments say. */
static void
test_example_file(void)
{
    struct ck_ksvtopo *t = NULL;
    struct ck_ksvtopo_report rep;

    CHECK_OK(ck_ksvtopo_load("../docs/ksv-topology.example", &t, &rep));
    CHECK_INT_EQ(rep.n, 0);
    if (t != NULL) {
        CHECK_VIEW(t, "kdc1", "kdc2:out:kdc-sync kdc2:in:kdc-sync prov1:in:provisioning | ops");
        CHECK(ck_ksvtopo_may_register(t, "gw1", "ksv-east"));
        CHECK(!ck_ksvtopo_may_register(t, "gw1", "ksv-west"));
    }
    ck_ksvtopo_free(t);
    CHECK_INT_EQ(ck_ksvtopo_load("no/such/file", &t, &rep), CK_ERR_IO);
}

CK_TEST_MAIN("ksv_topology", CK_TEST_CASE(test_seed_expansion),
             CK_TEST_CASE(test_order_independent), CK_TEST_CASE(test_policy_defaults),
             CK_TEST_CASE(test_conflicts), CK_TEST_CASE(test_policy_errors),
             CK_TEST_CASE(test_syntax_errors), CK_TEST_CASE(test_limits),
             CK_TEST_CASE(test_diff), CK_TEST_CASE(test_example_file))
