/* cablekey-admind's back process, driven over its socketpair as the front drives it: the
 * operations work on a real store, replies never carry key bytes, and anything outside the closed
 * operation list (unknown op or member, non-canonical or foreign name, a body the front should
 * have refused, a malformed or oversize frame) ends the process instead of being served. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admind.h"
#include "cablekey/crypto.h"
#include "cablekey/store.h"
#include "cablekey/util.h"
#include "ck_test.h"
#include "store_fixture.h"

#define REALM "TEST.REALM"

static struct admind_config cfg;

static void
fixture_up(void)
{
    static const int32_t enctypes[] = {CK_ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                       CK_ENCTYPE_AES128_CTS_HMAC_SHA1_96};

    store_fixture_up("admind", REALM, enctypes, 2);
    memset(&cfg, 0, sizeof(cfg));
    cfg.realm = REALM;
    cfg.database = db;
    cfg.stash = stash;
}

struct back {
    int fd;
    pid_t pid;
};

static struct back
start_back(void)
{
    struct back b = {-1, -1};
    int sv[2];
    char *msg = NULL;
    size_t len;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    fflush(NULL);
    if ((b.pid = fork()) == 0) {
        close(sv[0]);
        admind_back_main(&cfg, sv[1]);
    }
    close(sv[1]);
    b.fd = sv[0];
    CHECK_OK(admind_ipc_recv(b.fd, 4096, &msg, &len));
    CHECK(msg != NULL && strcmp(msg, "ok") == 0);
    free(msg);
    return b;
}

/* Closes the channel and returns the back process's exit status (-1 if killed). */
static int
stop_back(struct back *b)
{
    int st = 0;

    close(b->fd);
    if (waitpid(b->pid, &st, 0) != b->pid)
        return -2;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* One exchange; returns the reply text (malloc'd) or NULL if the channel ended. */
static char *
call(struct back *b, const char *req)
{
    char *reply = NULL;
    size_t len;

    if (admind_ipc_send(b->fd, req, strlen(req)) != 0)
        return NULL;
    if (admind_ipc_recv(b->fd, ADMIND_IPC_MAX_REPLY, &reply, &len) != 0)
        return NULL;
    return reply;
}

static void
expect_reply(struct back *b, const char *req, const char *want)
{
    char *reply = call(b, req);

    if (reply == NULL || strstr(reply, want) == NULL) {
        fprintf(stderr, "  %s\n  -> %s (want %s)\n", req, reply != NULL ? reply : "(closed)",
                want);
        ck_test_case_failed = 1;
    }
    free(reply);
}

static void
test_operations(void)
{
    struct back b;
    ck_store *s = NULL;
    ck_db_principal *p = NULL;
    ck_db_key *keys = NULL;
    size_t n_keys = 0;
    char *reply;

    fixture_up();
    b = start_back();
    expect_reply(&b, "{\"op\":\"realm.get\",\"actor\":\"joe/admin@TEST.REALM\"}",
                 "{\"status\":200,\"body\":{\"name\":\"TEST.REALM\"");
    expect_reply(&b, "{\"op\":\"principal.create\",\"actor\":\"joe/admin@TEST.REALM\","
                     "\"name\":\"bob@TEST.REALM\",\"req\":{\"password\":\"Bob-pw-1\","
                     "\"flags\":{\"disallow_svr\":true}}}",
                 "\"status\":201");
    expect_reply(&b, "{\"op\":\"principal.create\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"bob@TEST.REALM\",\"req\":{\"random_key\":true}}",
                 "{\"status\":409,\"error\":{\"code\":\"exists\"");
    expect_reply(&b, "{\"op\":\"principal.list\",\"actor\":\"a@TEST.REALM\",\"pattern\":\"*@TEST.REALM\","
                     "\"limit\":1}",
                 "{\"principals\":[\"bob@TEST.REALM\"],\"next\":\"bob@TEST.REALM\"}");
    expect_reply(&b, "{\"op\":\"principal.list\",\"actor\":\"a@TEST.REALM\",\"pattern\":\"*@TEST.REALM\","
                     "\"after\":\"bob@TEST.REALM\",\"limit\":10}",
                 "{\"principals\":[\"krbtgt/TEST.REALM@TEST.REALM\"],\"next\":null}");
    expect_reply(&b, "{\"op\":\"principal.modify\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\","
                     "\"req\":{\"max_life\":60}}", "\"max_life\":60");
    /* A password is a password change (the policy applies; the enctypes stay): no keep. */
    expect_reply(&b, "{\"op\":\"principal.keys\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\","
                     "\"req\":{\"password\":\"Bob-pw-2\",\"keep\":1}}",
                 "{\"status\":400,\"error\":{\"code\":\"bad_request\"");
    expect_reply(&b, "{\"op\":\"principal.keys\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\","
                     "\"req\":{\"password\":\"Bob-pw-2\"}}", "\"kvno\":2");
    expect_reply(&b, "{\"op\":\"principal.get\",\"actor\":\"a@TEST.REALM\",\"name\":\"nobody@TEST.REALM\"}",
                 "{\"status\":404,\"error\":{\"code\":\"not_found\"");
    expect_reply(&b, "{\"op\":\"device.list\",\"actor\":\"a@TEST.REALM\",\"limit\":5}",
                 "{\"devices\":[],\"next\":null}");
    expect_reply(&b, "{\"op\":\"device.get\",\"actor\":\"a@TEST.REALM\",\"mac\":\"00:11:22:33:44:55\"}",
                 "\"status\":404");

    /* What the back process wrote is what the request asked: keys from the new password,
     * attributes, and the old kvno kept beside them. */
    CHECK_OK(ck_store_open(db, stash, CK_STORE_READONLY, &s));
    if (s != NULL && ck_store_get_principal(s, "bob@TEST.REALM", &p) == 0) {
        CHECK_INT_EQ(p->kvno, 2);
        CHECK_INT_EQ(p->max_life, 60);
        CHECK_INT_EQ(p->attributes, CK_ATTR_REQUIRES_PREAUTH | CK_ATTR_DISALLOW_SVR);
        CHECK_INT_EQ(p->n_keys, 4);
        CHECK(p->last_pwd_change != 0);
        CHECK_OK(ck_db_keys_make("bob@TEST.REALM", "Bob-pw-2", 8, ck_store_realm(s)->enctypes,
                                 ck_store_realm(s)->n_enctypes, 2, &keys, &n_keys));
        for (size_t i = 0; i < n_keys && i < p->n_keys; i++) {
            const ck_db_key *k = ck_db_principal_find_key(p, 2, keys[i].enctype);
            CHECK(k != NULL && k->key.length == keys[i].key.length &&
                  memcmp(k->key.contents, keys[i].key.contents, k->key.length) == 0);
        }
        /* The reply for bob does not contain any of his key bytes. */
        reply = call(&b, "{\"op\":\"principal.get\",\"actor\":\"a@TEST.REALM\","
                         "\"name\":\"bob@TEST.REALM\"}");
        CHECK(reply != NULL);
        for (size_t i = 0; reply != NULL && i < p->n_keys; i++)
            CHECK(memmem(reply, strlen(reply), p->keys[i].key.contents, 8) == NULL);
        CHECK(reply != NULL && strstr(reply, "\"key\"") == NULL);
        free(reply);
    } else {
        CHECK(!"bob readable");
    }
    ck_db_keys_free(keys, n_keys);
    ck_db_principal_free(p);
    ck_store_close(s);
    /* Policies: a named one must exist; a password must satisfy it; "default" applies when the
     * request names none; null means none at all. Unlock answers with the record. */
    {
        ck_store *w = NULL;
        ck_policy pol = {.name = "default", .min_length = 10};
        ck_policy strict = {.name = "strict", .min_length = 20};

        CHECK_OK(ck_store_open(db, stash, 0, &w));
        CHECK_OK(ck_store_create_policy(w, &pol));
        CHECK_OK(ck_store_create_policy(w, &strict));
        ck_store_close(w);
    }
    expect_reply(&b, "{\"op\":\"principal.create\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"pol1@TEST.REALM\",\"req\":{\"password\":\"short\"}}",
                 "{\"status\":400,\"error\":{\"code\":\"bad_request\",\"message\":"
                 "\"pol1@TEST.REALM: password is too short");
    expect_reply(&b, "{\"op\":\"principal.create\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"pol1@TEST.REALM\",\"req\":{\"password\":\"long-enough-1\"}}",
                 "\"policy\":\"default\"");
    expect_reply(&b, "{\"op\":\"principal.create\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"pol2@TEST.REALM\",\"req\":{\"random_key\":true,\"policy\":null}}",
                 "\"policy\":null");
    expect_reply(&b, "{\"op\":\"principal.create\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"pol3@TEST.REALM\",\"req\":{\"random_key\":true,\"policy\":\"nope\"}}",
                 "\"status\":400");
    expect_reply(&b, "{\"op\":\"principal.modify\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"pol1@TEST.REALM\",\"req\":{\"policy\":\"strict\"}}",
                 "\"policy\":\"strict\"");
    expect_reply(&b, "{\"op\":\"principal.keys\",\"actor\":\"a@TEST.REALM\",\"name\":\"pol1@TEST.REALM\","
                     "\"req\":{\"password\":\"long-enough-2\"}}",
                 "{\"status\":400,\"error\":{\"code\":\"bad_request\"");
    expect_reply(&b, "{\"op\":\"principal.modify\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"pol1@TEST.REALM\",\"req\":{\"policy\":\"nope\"}}",
                 "{\"status\":400,\"error\":{\"code\":\"bad_request\",\"message\":"
                 "\"pol1@TEST.REALM: no policy named nope\"");
    expect_reply(&b, "{\"op\":\"principal.modify\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"nobody@TEST.REALM\",\"req\":{\"policy\":\"strict\"}}",
                 "\"status\":404");
    expect_reply(&b, "{\"op\":\"principal.modify\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"pol1@TEST.REALM\",\"req\":{\"policy\":null}}",
                 "\"policy\":null");
    expect_reply(&b, "{\"op\":\"principal.unlock\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"pol1@TEST.REALM\"}", "\"failed_attempts\":0");
    expect_reply(&b, "{\"op\":\"principal.unlock\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"nobody@TEST.REALM\"}", "\"status\":404");
    /* Rename: the record answers under its new name and keeps its keys (salts included). */
    expect_reply(&b, "{\"op\":\"principal.rename\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"bob@TEST.REALM\",\"new_name\":\"bob2@TEST.REALM\"}",
                 "{\"status\":200,\"body\":{");
    expect_reply(&b, "{\"op\":\"principal.get\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob2@TEST.REALM\"}",
                 "\"kvno\":2");
    expect_reply(&b, "{\"op\":\"principal.get\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\"}",
                 "\"status\":404");
    expect_reply(&b, "{\"op\":\"principal.rename\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"nobody@TEST.REALM\",\"new_name\":\"x@TEST.REALM\"}",
                 "{\"status\":404,\"error\":{\"code\":\"not_found\"");
    expect_reply(&b, "{\"op\":\"principal.rename\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"krbtgt/TEST.REALM@TEST.REALM\",\"new_name\":\"x@TEST.REALM\"}",
                 "{\"status\":409,\"error\":{\"code\":\"conflict\"");
    expect_reply(&b, "{\"op\":\"principal.rename\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"bob2@TEST.REALM\",\"new_name\":\"krbtgt/TEST.REALM@TEST.REALM\"}",
                 "\"status\":409");
    /* Realm changes: applied, answered with the new record, and used by the next create. */
    expect_reply(&b, "{\"op\":\"realm.modify\",\"actor\":\"a@TEST.REALM\",\"req\":"
                     "{\"max_life\":7200,\"default_flags\":[\"disallow_svr\"],"
                     "\"enctypes\":[\"aes128-cts-hmac-sha1-96\"]}}",
                 "\"max_life\":7200,\"max_renew\":604800,\"master_kvno\":1,"
                 "\"default_flags\":[\"disallow_svr\"]}");
    expect_reply(&b, "{\"op\":\"principal.create\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"carol@TEST.REALM\",\"req\":{\"random_key\":true}}",
                 "\"flags\":[\"disallow_svr\"],\"keys\":[{\"kvno\":1,\"enctype\":"
                 "\"aes128-cts-hmac-sha1-96\"");
    expect_reply(&b, "{\"op\":\"realm.get\",\"actor\":\"a@TEST.REALM\"}", "\"max_life\":7200");
    /* A value the decoder passes but the store refuses (max_renew is fine, enctype range is
     * the store's): still an answer, not an exit. */
    expect_reply(&b, "{\"op\":\"realm.modify\",\"actor\":\"a@TEST.REALM\",\"req\":"
                     "{\"max_renew\":2147483647}}", "\"status\":200");
    expect_reply(&b, "{\"op\":\"principal.delete\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob2@TEST.REALM\"}",
                 "{\"status\":204}");
    CHECK_INT_EQ(stop_back(&b), 0); /* closing the channel: a clean exit */
    /* What the back process wrote is in the database for everyone else. */
    CHECK_OK(ck_store_open(db, stash, CK_STORE_READONLY, &s));
    if (s != NULL) {
        CHECK_INT_EQ(ck_store_realm(s)->max_life, 7200);
        CHECK_INT_EQ(ck_store_realm(s)->default_attributes, CK_ATTR_DISALLOW_SVR);
        CHECK_INT_EQ(ck_store_realm(s)->n_enctypes, 1);
        CHECK(ck_store_get_principal(s, "bob2@TEST.REALM", &p) == CK_ERR_NOTFOUND);
    }
    ck_store_close(s);
    fixture_down();
}

/* The policy operations: create, get, list, modify (the given rules only), delete, with the
 * store's own checks (min_life < max_life, in use) answered as errors, not served. */
static void
test_policies(void)
{
    struct back b;
    ck_store *s = NULL;
    ck_policy pol;

    fixture_up();
    b = start_back();
    expect_reply(&b, "{\"op\":\"policy.create\",\"actor\":\"joe/admin@TEST.REALM\",\"name\":\"strict\","
                     "\"req\":{\"min_length\":12,\"max_failure\":3,\"lockout_duration\":600}}",
                 "{\"status\":201,\"body\":{");
    expect_reply(&b, "{\"op\":\"policy.create\",\"actor\":\"a@TEST.REALM\",\"name\":\"empty\","
                     "\"req\":{}}", "\"status\":201");
    expect_reply(&b, "{\"op\":\"policy.create\",\"actor\":\"a@TEST.REALM\",\"name\":\"strict\","
                     "\"req\":{}}", "{\"status\":409,\"error\":{\"code\":\"exists\"");
    /* The store's cross-field rule, checked again behind the front. */
    expect_reply(&b, "{\"op\":\"policy.create\",\"actor\":\"a@TEST.REALM\",\"name\":\"bad\","
                     "\"req\":{\"min_life\":7200,\"max_life\":3600}}",
                 "{\"status\":400,\"error\":{\"code\":\"bad_request\",\"message\":\"policy bad: "
                 "policy min-life must be shorter");
    expect_reply(&b, "{\"op\":\"policy.get\",\"actor\":\"a@TEST.REALM\",\"name\":\"strict\"}",
                 "\"min_length\":12,\"min_classes\":0,\"history\":0,\"min_life\":0,\"max_life\":0,"
                 "\"max_failure\":3,\"failure_interval\":0,\"lockout_duration\":600,\"name\":\"strict\","
                 "\"principals\":0");
    expect_reply(&b, "{\"op\":\"policy.get\",\"actor\":\"a@TEST.REALM\",\"name\":\"nope\"}",
                 "{\"status\":404,\"error\":{\"code\":\"not_found\",\"message\":\"policy nope: "
                 "not found\"");
    expect_reply(&b, "{\"op\":\"policy.list\",\"actor\":\"a@TEST.REALM\"}",
                 "{\"status\":200,\"body\":{\"policies\":[\"empty\",\"strict\"]}}");
    expect_reply(&b, "{\"op\":\"policy.modify\",\"actor\":\"a@TEST.REALM\",\"name\":\"strict\","
                     "\"req\":{\"min_length\":14}}", "\"min_length\":14,");
    expect_reply(&b, "{\"op\":\"policy.modify\",\"actor\":\"a@TEST.REALM\",\"name\":\"nope\","
                     "\"req\":{\"min_length\":14}}", "{\"status\":404");
    expect_reply(&b, "{\"op\":\"principal.create\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"bob@TEST.REALM\",\"req\":{\"password\":\"short\",\"policy\":\"strict\"}}",
                 "password is too short");
    expect_reply(&b, "{\"op\":\"principal.create\",\"actor\":\"a@TEST.REALM\","
                     "\"name\":\"bob@TEST.REALM\",\"req\":{\"random_key\":true,\"policy\":\"strict\"}}",
                 "\"status\":201");
    expect_reply(&b, "{\"op\":\"policy.delete\",\"actor\":\"a@TEST.REALM\",\"name\":\"strict\"}",
                 "{\"status\":409,\"error\":{\"code\":\"conflict\"");
    expect_reply(&b, "{\"op\":\"policy.delete\",\"actor\":\"a@TEST.REALM\",\"name\":\"empty\"}",
                 "{\"status\":204");
    expect_reply(&b, "{\"op\":\"policy.delete\",\"actor\":\"a@TEST.REALM\",\"name\":\"empty\"}",
                 "{\"status\":404");
    CHECK_INT_EQ(stop_back(&b), 0);
    /* What the store holds afterwards. */
    CHECK_OK(ck_store_open(db, stash, CK_STORE_READONLY, &s));
    if (s != NULL) {
        CHECK_OK(ck_store_get_policy(s, "strict", &pol));
        CHECK_INT_EQ(pol.min_length, 14);
        CHECK_INT_EQ(pol.max_failure, 3);
        CHECK_INT_EQ(pol.lockout_duration, 600);
        CHECK_INT_EQ(pol.ref_count, 1);
        CHECK(ck_store_get_policy(s, "empty", &pol) == CK_ERR_NOTFOUND);
        CHECK(ck_store_get_policy(s, "bad", &pol) == CK_ERR_NOTFOUND);
    }
    ck_store_close(s);
    fixture_down();
}

/* Each frame must make the back process exit with status 3 without answering. */
static void
test_protocol_violations(void)
{
    static const char *const bad[] = {
        "{\"op\":\"principal.extract\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\"}",
        "{\"op\":\"principal.get\",\"name\":\"bob@TEST.REALM\"}",
        "{\"op\":\"principal.get\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob\"}",
        "{\"op\":\"principal.get\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@OTHER.REALM\"}",
        "{\"op\":\"principal.get\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\","
        "\"req\":{}}",
        "{\"op\":\"principal.create\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\","
        "\"req\":{\"password\":\"x\",\"random_key\":true}}",
        "{\"op\":\"principal.modify\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\"}",
        "{\"op\":\"principal.list\",\"actor\":\"a@TEST.REALM\",\"pattern\":\"*\",\"limit\":0}",
        "{\"op\":\"realm.get\",\"actor\":\"\"}",
        /* The two changes added with `cablekey --server`: the same rules. */
        "{\"op\":\"realm.modify\",\"actor\":\"a@TEST.REALM\",\"req\":{}}",
        "{\"op\":\"realm.modify\",\"actor\":\"a@TEST.REALM\"}",
        "{\"op\":\"realm.modify\",\"actor\":\"a@TEST.REALM\",\"req\":{\"max_life\":0}}",
        "{\"op\":\"realm.modify\",\"actor\":\"a@TEST.REALM\",\"req\":{\"max_life\":60},"
        "\"name\":\"bob@TEST.REALM\"}",
        "{\"op\":\"principal.rename\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\"}",
        "{\"op\":\"principal.unlock\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\","
        "\"req\":{}}",
        "{\"op\":\"principal.create\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\","
        "\"req\":{\"random_key\":true,\"policy\":\"has space\"}}",
        "{\"op\":\"principal.rename\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\","
        "\"new_name\":\"carol\"}",
        "{\"op\":\"principal.rename\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\","
        "\"new_name\":\"carol@OTHER.REALM\"}",
        "{\"op\":\"principal.rename\",\"actor\":\"a@TEST.REALM\",\"name\":\"bob@TEST.REALM\","
        "\"new_name\":[\"carol@TEST.REALM\"]}",
        /* Policies: names and rules the front checks, checked again. */
        "{\"op\":\"policy.get\",\"actor\":\"a@TEST.REALM\",\"name\":\"has space\"}",
        "{\"op\":\"policy.get\",\"actor\":\"a@TEST.REALM\"}",
        "{\"op\":\"policy.list\",\"actor\":\"a@TEST.REALM\",\"name\":\"p\"}",
        "{\"op\":\"policy.create\",\"actor\":\"a@TEST.REALM\",\"name\":\"p\"}",
        "{\"op\":\"policy.create\",\"actor\":\"a@TEST.REALM\",\"name\":\"p\","
        "\"req\":{\"min_classes\":6}}",
        "{\"op\":\"policy.create\",\"actor\":\"a@TEST.REALM\",\"name\":\"p\","
        "\"req\":{\"principals\":0}}",
        "{\"op\":\"policy.modify\",\"actor\":\"a@TEST.REALM\",\"name\":\"p\",\"req\":{}}",
        "{\"op\":\"policy.delete\",\"actor\":\"a@TEST.REALM\",\"name\":\"p\",\"req\":{}}",
        "{\"op\":\"realm.get\"",
        "[\"realm.get\"]",
    };
    uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};

    fixture_up();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct back b = start_back();
        char *reply = call(&b, bad[i]);
        int st;

        if (reply != NULL) {
            fprintf(stderr, "  served %s -> %s\n", bad[i], reply);
            ck_test_case_failed = 1;
        }
        free(reply);
        st = stop_back(&b);
        if (st != 3) {
            fprintf(stderr, "  %s: exit %d, want 3\n", bad[i], st);
            ck_test_case_failed = 1;
        }
    }
    {
        /* A frame header announcing more than the limit: refused before any allocation. */
        struct back b = start_back();
        CHECK(write(b.fd, huge, 4) == 4);
        CHECK_INT_EQ(stop_back(&b), 3);
    }
    fixture_down();
}

static void
test_store_refused(void)
{
    int sv[2], st = 0;
    char *msg = NULL;
    size_t len;
    pid_t pid;

    fixture_up();
    cfg.realm = "OTHER.REALM";
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    fflush(NULL);
    if ((pid = fork()) == 0) {
        close(sv[0]);
        admind_back_main(&cfg, sv[1]);
    }
    close(sv[1]);
    CHECK_OK(admind_ipc_recv(sv[0], 4096, &msg, &len));
    CHECK(msg != NULL && strstr(msg, "holds realm TEST.REALM, not OTHER.REALM") != NULL);
    free(msg);
    close(sv[0]);
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 1);
    cfg.realm = REALM;
    fixture_down();
}

CK_TEST_MAIN("admin_back", CK_TEST_CASE(test_operations), CK_TEST_CASE(test_policies),
             CK_TEST_CASE(test_protocol_violations),
             CK_TEST_CASE(test_store_refused))
