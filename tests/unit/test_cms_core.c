/* cablekey-cms core pieces: the stateless nonce, the SA table (full, expiry, superseded, memory
 * per endpoint), configuration validation, ciphersuite choice and the keytab reload rules. */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "ck_test.h"
#include "cms_fixture.h"
#include "peer.h"

static void
addr(struct cms_addr *a, const char *ip, uint16_t port)
{
    struct sockaddr_in sin;

    fx_peer(&sin, ip, port);
    CHECK_OK(cms_addr_from_sockaddr((struct sockaddr *)&sin, a));
}

static void
test_nonce(void)
{
    struct cms_nonce n, other;
    struct cms_addr a, b;
    int64_t t = 1767225600;
    uint32_t v;

    CHECK_OK(cms_nonce_init(&n, 30));
    CHECK_OK(cms_nonce_init(&other, 30));
    addr(&a, "192.0.2.1", 1000);
    addr(&b, "192.0.2.1", 1001);
    v = cms_nonce_for(&n, &a, t);
    CHECK(v != 0);
    CHECK_INT_EQ(v, cms_nonce_for(&n, &a, t + 29));       /* same epoch */
    CHECK(cms_nonce_check(&n, &a, v, t));
    CHECK(cms_nonce_check(&n, &a, v, t + 30));             /* previous epoch */
    CHECK(!cms_nonce_check(&n, &a, v, t + 60));            /* two epochs: stale */
    CHECK(!cms_nonce_check(&n, &b, v, t));                 /* another port */
    CHECK(!cms_nonce_check(&other, &a, v, t));             /* another server secret */
    CHECK(!cms_nonce_check(&n, &a, 0, t));
    CHECK(cms_nonce_for(&n, &a, t) != cms_nonce_for(&n, &a, t + 30));
    CHECK_INT_EQ(cms_nonce_init(&n, 0), CK_ERR_INVAL);
}

static struct cms_sa *
new_sa(uint32_t spi, const char *ip, uint16_t port, int64_t expires, bool with_esp)
{
    static const uint8_t ek[16] = {1}, ak[20] = {2};
    struct cms_sa *sa = cms_sa_alloc("mta1@TEST.REALM");
    struct ck_esp_sa_params p = {.enc = CK_KMM_ENC_AES128, .auth = CK_KMM_AUTH_HMAC_SHA1_96,
                                 .enc_key = ek, .enc_key_len = 16, .auth_key = ak,
                                 .auth_key_len = 20, .expires = expires};

    CHECK(sa != NULL);
    sa->spi_in = spi;
    sa->spi_out = spi + 1;
    sa->expires = expires;
    addr(&sa->ep, ip, port);
    if (with_esp) {
        p.spi = sa->spi_in;
        CHECK_OK(ck_esp_sa_new(&p, &sa->in));
        p.spi = sa->spi_out;
        CHECK_OK(ck_esp_sa_new(&p, &sa->out));
    }
    return sa;
}

static int
count_fn(struct cms_sa *sa, void *arg)
{
    (*(int *)arg)++;
    return sa->expires <= 100 ? 1 : 0;
}

static int
flags_fn(struct cms_sa *sa, void *arg)
{
    *(uint8_t *)arg = sa->flags;
    return 0;
}

static void
test_sa_table(void)
{
    struct cms_sa_table *t = NULL;
    struct cms_sa *sa;
    struct cms_addr ep;
    uint32_t prev = 0;
    uint8_t flags = 0;
    int visited = 0;
    size_t fp;

    CHECK_INT_EQ(cms_sa_table_new(0, &t), CK_ERR_INVAL);
    CHECK_OK(cms_sa_table_new(3, &t));
    CHECK_OK(cms_sa_table_insert(t, new_sa(1000, "192.0.2.1", 1, 100, false), &prev));
    CHECK_INT_EQ(prev, 0);
    /* The same SPI again: refused, and the caller keeps its entry. */
    sa = new_sa(1000, "192.0.2.2", 1, 200, false);
    CHECK_INT_EQ(cms_sa_table_insert(t, sa, NULL), CK_ERR_EXISTS);
    cms_sa_free(sa);
    /* The same endpoint re-keys: the older SA is superseded. */
    CHECK_OK(cms_sa_table_insert(t, new_sa(2000, "192.0.2.1", 1, 200, false), &prev));
    CHECK_INT_EQ(prev, 1000);
    CHECK_OK(cms_sa_table_with(t, 1000, flags_fn, &flags));
    CHECK(flags & CMS_SA_SUPERSEDED);
    addr(&ep, "192.0.2.1", 1);
    CHECK_INT_EQ(cms_sa_table_newest(t, &ep), 2000);
    CHECK_OK(cms_sa_table_insert(t, new_sa(3000, "192.0.2.3", 1, 300, false), NULL));
    /* Full. */
    sa = new_sa(4000, "192.0.2.4", 1, 400, false);
    CHECK_INT_EQ(cms_sa_table_insert(t, sa, NULL), CK_ERR_LIMIT);
    cms_sa_free(sa);
    CHECK_INT_EQ(cms_sa_table_count(t), 3);
    CHECK_INT_EQ(cms_sa_table_with(t, 4000, flags_fn, &flags), CK_ERR_NOTFOUND);
    /* Expiry sweep removes the SA that expired (at 100), keeps the rest. */
    CHECK_OK(cms_sa_table_scan(t, count_fn, NULL, &visited));
    CHECK_INT_EQ(visited, 3);
    CHECK_INT_EQ(cms_sa_table_count(t), 2);
    CHECK(!cms_sa_table_has(t, 1000));
    CHECK_INT_EQ(cms_sa_table_newest(t, &ep), 2000); /* the index kept the newer SA */
    CHECK_OK(cms_sa_table_remove(t, 2000));
    CHECK_INT_EQ(cms_sa_table_newest(t, &ep), 0);
    CHECK_INT_EQ(cms_sa_table_remove(t, 2000), CK_ERR_NOTFOUND);
    /* Now there is room again. */
    CHECK_OK(cms_sa_table_insert(t, new_sa(5000, "192.0.2.5", 1, 500, false), NULL));
    cms_sa_table_free(t);

    /* Memory per endpoint in a table sized for 200,000, ESP SAs included: at most 1 KiB. */
    CHECK_OK(cms_sa_table_new(200000, &t));
    sa = new_sa(6000, "192.0.2.6", 1, 600, true);
    fp = cms_sa_footprint(t, sa);
    printf("# SA table: %zu bytes per endpoint (entry %zu, ESP SAs %zu + %zu, client \"%s\")\n",
           fp, sizeof(*sa), ck_esp_sa_footprint(sa->in), ck_esp_sa_footprint(sa->out),
           sa->client);
    CHECK(fp <= 1024);
    CHECK_OK(cms_sa_table_insert(t, sa, NULL));
    cms_sa_table_free(t);
}

static void
test_suites(void)
{
    struct ck_kmm_suite allowed[CMS_MAX_SUITES], offered[4], out = {0, 0};
    size_t n = 0;
    char b[32];

    CHECK_OK(cms_suites_parse("sha1-aes128, sha1-3des sha1-null sha1-null", allowed,
                              CMS_MAX_SUITES, &n));
    CHECK_INT_EQ(n, 3);
    CHECK_INT_EQ(cms_suites_parse("sha1-aes256", allowed, CMS_MAX_SUITES, &n), CK_ERR_CONFIG);
    CHECK_INT_EQ(cms_suites_parse(" ", allowed, CMS_MAX_SUITES, &n), CK_ERR_CONFIG);
    CHECK_OK(cms_suites_parse("sha1-null sha1-3des sha1-aes128", allowed, CMS_MAX_SUITES, &n));
    /* The strongest common one, whatever order either side lists. */
    offered[0] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_NULL};
    offered[1] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_AES128};
    offered[2] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_3DES};
    CHECK_OK(cms_suite_choose(CK_KMM_DOI_IPSEC, allowed, n, offered, 3, &out));
    CHECK_INT_EQ(out.enc, CK_KMM_ENC_AES128);
    CHECK(strcmp(cms_suite_name(CK_KMM_DOI_IPSEC, out, b, sizeof(b)), "sha1-aes128") == 0);
    /* Only what the configuration allows. */
    CHECK_OK(cms_suites_parse("sha1-3des sha1-null", allowed, CMS_MAX_SUITES, &n));
    CHECK_OK(cms_suite_choose(CK_KMM_DOI_IPSEC, allowed, n, offered, 3, &out));
    CHECK_INT_EQ(out.enc, CK_KMM_ENC_3DES);
    /* Unimplemented (RC5) or not allowed: none. */
    offered[0] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_SHA1_96, CK_KMM_ENC_RC5};
    offered[1] = (struct ck_kmm_suite){CK_KMM_AUTH_HMAC_MD5_96, CK_KMM_ENC_AES128};
    CHECK_INT_EQ(cms_suite_choose(CK_KMM_DOI_IPSEC, allowed, n, offered, 2, &out),
                 CK_ERR_UNSUPPORTED);
    CHECK_INT_EQ(cms_suite_choose(CK_KMM_DOI_IPSEC, allowed, n, offered, 0, &out),
                 CK_ERR_UNSUPPORTED);
    /* SNMPv3: the list is of IPsec suites; the strongest implemented one wins. */
    offered[0] = (struct ck_kmm_suite){CK_KMM_SNMP_AUTH_MD5, CK_KMM_SNMP_PRIV_NULL};
    offered[1] = (struct ck_kmm_suite){CK_KMM_SNMP_AUTH_SHA1, CK_KMM_SNMP_PRIV_DES};
    CHECK_OK(cms_suite_choose(CK_KMM_DOI_SNMPV3, allowed, n, offered, 2, &out));
    CHECK_INT_EQ(out.auth, CK_KMM_SNMP_AUTH_SHA1);
    CHECK_INT_EQ(out.enc, CK_KMM_SNMP_PRIV_DES);
}

static int
parse(const char *text, struct cms_config *cfg)
{
    struct ck_profile *p = NULL;
    int rc;

    cms_config_init(cfg);
    if ((rc = ck_profile_parse_string(text, "cms.conf", &p)) != 0)
        return rc;
    rc = cms_config_apply_profile(cfg, p);
    ck_profile_free(p);
    return rc;
}

static void
test_config(void)
{
    struct cms_config cfg;
    struct cms_flags fl;
    char path[] = "/tmp/ck-cms-conf.XXXXXX";
    int fd;

    CHECK_OK(parse("[cms]\n listen = 127.0.0.1:1293 [::1]:1293\n keytab = /k\n"
                   " service = cms/a@R\n clockskew = 5m\n sa_lifetime = 2h\n grace = 10m\n"
                   " ack_required = true\n suites = sha1-3des sha1-aes128\n max_sas = 1000\n"
                   " replay_cache_size = 5000\n solicited_key_timeout = 10\n rekey_margin = 60\n"
                   " sa_life_kbytes = 1024\n log = FILE:/tmp/x.log\n log_level = debug\n"
                   " pid_file = /run/x.pid\n user = nobody\n signaling_listen = 127.0.0.1:4500\n",
                   &cfg));
    CHECK_INT_EQ(cfg.n_listen, 2);
    CHECK_INT_EQ(cfg.clockskew, 300);
    CHECK_INT_EQ(cfg.sa_lifetime, 7200);
    CHECK_INT_EQ(cfg.grace, 600);
    CHECK(cfg.ack_required);
    CHECK_INT_EQ(cfg.n_suites, 2);
    CHECK_INT_EQ(cfg.suites[0].enc, CK_KMM_ENC_3DES);
    CHECK_INT_EQ(cfg.max_sas, 1000);
    CHECK_INT_EQ(cms_config_rekey_margin(&cfg), 60);
    CHECK_INT_EQ(cfg.log.dest, CK_LOG_FILE);
    CHECK_INT_EQ(cfg.log_level, LOG_DEBUG);
    cms_config_free(&cfg);
    /* Fails closed, naming the line. */
    CHECK_INT_EQ(parse("[cms]\n keytab = /k\n lisen = 1293\n", &cfg), CK_ERR_CONFIG);
    CHECK(strstr(ck_error_context(), "cms.conf:3") != NULL);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cmss]\n keytab = /k\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n suites = sha1-aes128 rot13\n", &cfg), CK_ERR_CONFIG);
    CHECK(strstr(ck_error_context(), "rot13") != NULL);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n ack_required = perhaps\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n max_sas = 0\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n keytab = /a\n keytab = /b\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n listen = 127.0.0.1:99999\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);

    /* The whole load: file, then flags over it; defaults; cross-checks. */
    CHECK((fd = mkstemp(path)) >= 0);
    CHECK(write(fd, "[cms]\n keytab = /file.keytab\n grace = 1h\n sa_lifetime = 1h\n", 57) == 57);
    close(fd);
    memset(&fl, 0, sizeof(fl));
    fl.common.config = path;
    CHECK_INT_EQ(cms_config_load(&fl, &cfg), CK_ERR_CONFIG); /* grace >= lifetime */
    cms_config_free(&cfg);
    CHECK((fd = open(path, O_WRONLY | O_TRUNC)) >= 0);
    CHECK(write(fd, "[cms]\n keytab = /file.keytab\n", 29) == 29);
    close(fd);
    fl.keytab = "/flag.keytab";
    fl.listen[0] = "127.0.0.1:2000";
    fl.listen[1] = "127.0.0.2:2000";
    fl.n_listen = 2;
    CHECK_OK(cms_config_load(&fl, &cfg));
    CHECK(strcmp(cfg.keytab, "/flag.keytab") == 0);
    CHECK_INT_EQ(cfg.n_listen, 2);
    CHECK(cfg.n_listen == 2 && strcmp(cfg.listen[1], "127.0.0.2:2000") == 0);
    CHECK_INT_EQ(cfg.n_signaling_listen, 1);
    CHECK(cfg.n_signaling_listen == 1 && strcmp(cfg.signaling_listen[0], "4500") == 0);
    CHECK_INT_EQ(cms_config_rekey_margin(&cfg), CMS_DEFAULT_GRACE / 2);
    cms_config_free(&cfg);
    unlink(path);
    /* Without a keytab anywhere. */
    memset(&fl, 0, sizeof(fl));
    fl.common.config = "/nonexistent/cms.conf";
    CHECK(cms_config_load(&fl, &cfg) != 0);
    cms_config_free(&cfg);
}

/* The call keys of CONTRACT8: defaults, values, repeatable lines and routes with their own
 * file:line in errors, longest-prefix routing. */
static void
test_config_calls(void)
{
    struct cms_config cfg;
    const struct cms_route *r;
    const struct cms_line *l;

    CHECK_OK(parse("[cms]\n keytab = /k\n", &cfg));
    CHECK_INT_EQ(cfg.call_mode, CMS_CALL_NCS);
    CHECK_INT_EQ(cfg.media, CK_SDP_MEDIA_SRTP_AES_CM);
    CHECK_INT_EQ(cfg.call_suite.enc, CK_KMM_ENC_AES128);
    CHECK_INT_EQ(cfg.call_retry_ms, 500);
    CHECK_INT_EQ(cfg.call_tries, 4);
    CHECK_INT_EQ(cfg.escrow_retention, 90 * 86400);
    CHECK(!cfg.compat_seq && cfg.intercept_db == NULL && cfg.n_lines == 0);
    cms_config_free(&cfg);
    CHECK_OK(parse("[cms]\n call_mode = sgcp\n media = rtp-3des-mac\n"
                   " call_ipsec_suite = md5-3des\n compat_seq = yes\n call_retry_ms = 50\n"
                   " call_tries = 2\n kdc = 127.0.0.1:88 [::1]:88\n"
                   " line = 5551001 mta/a.example.net@EXAMPLE.NET mac=0011223344AA\n"
                   " line = 5559000 mg/gw.example.net@EXAMPLE.NET server\n"
                   " route = 555 cms/cb@EXAMPLE.NET 127.0.0.1:11293\n"
                   " route = 5552 cms/cc@EXAMPLE.NET 127.0.0.1:12293 sig=14500\n"
                   " intercept_db = /tmp/li.db\n escrow_dir = /tmp\n escrow_retention = 7d\n"
                   " export_wireshark = /tmp/esp_sa\n", &cfg));
    CHECK_INT_EQ(cfg.call_mode, CMS_CALL_SGCP);
    CHECK_INT_EQ(cfg.media, CK_SDP_MEDIA_RTP_3DES_MAC);
    CHECK_INT_EQ(cfg.call_suite.auth, CK_KMM_AUTH_HMAC_MD5_96);
    CHECK(cfg.compat_seq);
    CHECK_INT_EQ(cfg.call_retry_ms, 50);
    CHECK_INT_EQ(cfg.call_tries, 2);
    CHECK_INT_EQ(cfg.n_lines, 2);
    CHECK_INT_EQ(cfg.n_routes, 2);
    CHECK_INT_EQ(cfg.escrow_retention, 7 * 86400);
    CHECK((l = cms_config_line(&cfg, "5551001")) != NULL && strcmp(l->mac, "0011223344aa") == 0 &&
          !l->server);
    CHECK((l = cms_config_line(&cfg, "5559000")) != NULL && l->server);
    CHECK(cms_config_line(&cfg, "555100") == NULL);
    CHECK(cms_config_line_by_principal(&cfg, "mg/gw.example.net@EXAMPLE.NET") == l);
    CHECK((r = cms_config_route(&cfg, "5552001")) != NULL && r->sig_port == 14500 &&
          strcmp(r->principal, "cms/cc@EXAMPLE.NET") == 0);
    CHECK((r = cms_config_route(&cfg, "5553001")) != NULL && r->sig_port == 4500 &&
          strcmp(r->kmm, "127.0.0.1:11293") == 0);
    CHECK(cms_config_route(&cfg, "4441234") == NULL);
    CHECK(strcmp(cms_media_name(cfg.media), "rtp-3des-mac") == 0);
    cms_config_free(&cfg);
    /* Each bad repeatable value names its own line. */
    CHECK_INT_EQ(parse("[cms]\n line = 5551001 mta/a@R\n line = 12ab mta/b@R\n", &cfg),
                 CK_ERR_CONFIG);
    CHECK(strstr(ck_error_context(), "cms.conf:3") != NULL);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n line = 5551001 mta/a@R\n line = 5551001 mta/b@R\n", &cfg),
                 CK_ERR_CONFIG);
    CHECK(strstr(ck_error_context(), "twice") != NULL);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n line = 1234567890123456 mta/a@R\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n line = 5551001 mta/a@R mac=00112233\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n line = 5551001 noatsign\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n\n route = 555 cms/b@R\n", &cfg), CK_ERR_CONFIG);
    CHECK(strstr(ck_error_context(), "cms.conf:3") != NULL);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n route = 555 cms/b@R 127.0.0.1:1 sig=0\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n call_mode = h323\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n media = rtp\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n call_ipsec_suite = sha1-aes128 sha1-3des\n", &cfg),
                 CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n call_tries = 0\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    CHECK_INT_EQ(parse("[cms]\n compat_seq = maybe\n", &cfg), CK_ERR_CONFIG);
    cms_config_free(&cfg);
    /* The controller's endpoint name towards its peers. */
    {
        char self[64];
        cms_peers_self_name("cms/ca.example.net@EXAMPLE.NET", self, sizeof(self));
        CHECK(strcmp(self, "cms@ca.example.net") == 0);
        cms_peers_self_name("cms@EXAMPLE.NET", self, sizeof(self));
        CHECK(strcmp(self, "cms@cms") == 0);
    }
}

/* A keytab replaced by garbage or by one without the service keeps the old keys. */
static void
test_keyset_reload(void)
{
    char dir[] = "/tmp/ck-cms-ks.XXXXXX", path[128];
    ck_keyset *ks = NULL;
    ck_key k1, k2;
    bool changed = true;
    size_t n = 0;
    uint32_t kvno = 0;
    int fd;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/k.keytab", dir);
    CHECK_OK(ck_random_key(FX_ETYPE, &k1));
    CHECK_OK(ck_random_key(FX_ETYPE, &k2));
    CHECK_OK(fx_write_keytab(path, &k1, 3, NULL));
    CHECK_INT_EQ(ck_keyset_new(path, "other/x@TEST.REALM", &ks), CK_ERR_NOTFOUND);
    CHECK_OK(ck_keyset_new(path, NULL, &ks)); /* the first principal */
    CHECK(strcmp(ck_keyset_service(ks), FX_SERVICE) == 0);
    CHECK_OK(ck_keyset_refresh(ks, false, &changed));
    CHECK(!changed);
    /* Garbage: refused once, old keys kept, then not reported again. */
    CHECK((fd = open(path, O_WRONLY | O_TRUNC)) >= 0);
    CHECK(write(fd, "\x05\x02garbage", 9) == 9);
    close(fd);
    CHECK(ck_keyset_refresh(ks, false, &changed) != 0);
    CHECK(!changed);
    CHECK_OK(ck_keyset_refresh(ks, false, &changed));
    ck_keyset_describe(ks, &n, &kvno);
    CHECK_INT_EQ(n, 1);
    CHECK_INT_EQ(kvno, 3);
    /* A good one: both kvnos. */
    CHECK_OK(fx_write_keytab(path, &k2, 4, &k1));
    CHECK_OK(ck_keyset_refresh(ks, false, &changed));
    CHECK(changed);
    ck_keyset_describe(ks, &n, &kvno);
    CHECK_INT_EQ(n, 2);
    CHECK_INT_EQ(kvno, 4);
    /* Deleted: an error, keys kept. */
    unlink(path);
    CHECK(ck_keyset_refresh(ks, true, &changed) != 0);
    ck_keyset_describe(ks, &n, &kvno);
    CHECK_INT_EQ(n, 2);
    ck_keyset_free(ks);
    rmdir(dir);
    ck_key_clear(&k1);
    ck_key_clear(&k2);
}

static void
test_addr(void)
{
    struct sockaddr_in6 s6;
    struct sockaddr_storage ss;
    struct cms_addr a, b;
    char buf[CMS_ADDRSTRLEN];

    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(1293);
    inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
    CHECK_OK(cms_addr_from_sockaddr((struct sockaddr *)&s6, &a));
    CHECK(strcmp(cms_addr_format(&a, buf, sizeof(buf)), "[2001:db8::1]:1293") == 0);
    CHECK_INT_EQ(cms_addr_to_sockaddr(&a, &ss), sizeof(s6));
    CHECK_OK(cms_addr_from_sockaddr((struct sockaddr *)&ss, &b));
    CHECK(cms_addr_equal(&a, &b));
    addr(&b, "192.0.2.1", 1293);
    CHECK(!cms_addr_equal(&a, &b));
    CHECK(strcmp(cms_addr_format(&b, buf, sizeof(buf)), "192.0.2.1:1293") == 0);
}

CK_TEST_MAIN("cms_core", CK_TEST_CASE(test_nonce), CK_TEST_CASE(test_sa_table),
             CK_TEST_CASE(test_suites), CK_TEST_CASE(test_config), CK_TEST_CASE(test_config_calls),
             CK_TEST_CASE(test_keyset_reload), CK_TEST_CASE(test_addr))
