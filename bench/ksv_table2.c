/* Seed 001's Table 2 redone: revoking members of a 10-node group one after another (testnode
 * 10, 9, 7, 6, 5, 4, 3, 2, as the paper does) with explicit keying (EK), LKH and the hybrid, for
 * trees of order 1..3 (degree order + 1: the paper's order-1 tree pairs its nodes), over real UDP
 * sockets on loopback to 10 in-process receivers (one thread each) that do the member's whole
 * work: EK and hybrid unicasts are sealed REGISTERs (ck_ksv_msg codec, AES-256-GCM as
 * ksv_wire.h's SEALED: AAD = envelope, key id and sequence; nonce = direction and sequence), LKH
 * rekeys are lkh_rekey datagrams (R-BFA packed, Ed25519-signed) checked and applied by
 * lkh_rekey_member_apply. Loopback has no multicast route here, so a "multicast" datagram is sent
 * once per receiver (counted once in datagrams and bytes, like a group send).
 *
 * Per revocation: keys sent (EK: one per unicast; LKH: wraps; hybrid: wraps + path keys
 * unicast), datagrams, bytes, signatures, server CPU (thread CPU time: rekey computation,
 * encoding, sealing or packing and signing, and the sendto calls), member CPU (mean over the
 * members that had work), and wall time from the start of the rekey until every remaining member
 * holds the new group key (checked against the server's key). Each configuration runs `reps`
 * times with a fresh group; medians are printed. The revoked members are checked to be locked out.
 *
 * Usage: ksv_table2 [reps (default 11)] [hybrid cluster size (default 4)] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cablekey/error.h"
#include "cablekey/ksv_msg.h"
#include "cablekey/lkh_rekey.h"
#include "cablekey/util.h"

#define NODES 10
#define GROUP_ID 1
#define MAX_REPS 101
enum { M_EK, M_LKH, M_HYB, N_MODES };
static const char *mode_name[N_MODES] = {"EK", "LKH", "hybrid"};
static const int revoke_order[] = {10, 9, 7, 6, 5, 4, 3, 2};
#define N_REV (sizeof(revoke_order) / sizeof(revoke_order[0]))

static double
cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static double
wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void
die(const char *what, int rc)
{
    fprintf(stderr, "ksv_table2: %s: %s: %s\n", what, ck_strerror(rc), ck_error_context());
    exit(1);
}

/* ---- sealing (ksv_wire.h SEALED, AES-256-GCM) ------------------------------------------- */
static int
gcm(int enc, const uint8_t key[32], uint64_t seq, const uint8_t *aad, size_t aad_len,
    const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t nonce[12];
    int n = 0, f = 0, ok;

    nonce[0] = nonce[1] = nonce[2] = 0;
    nonce[3] = 1; /* direction KSV -> node */
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
    ok = c != NULL && EVP_CipherInit_ex2(c, EVP_aes_256_gcm(), key, nonce, enc, NULL) &&
         EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) &&
         (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, tag)) &&
         EVP_CipherUpdate(c, out, &n, in, (int)len) && EVP_CipherFinal_ex(c, out + n, &f) &&
         (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag));
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

/* "CKSV" 1 4 0 0 | key_id | seq | ciphertext | tag */
static size_t
seal(const uint8_t key[32], uint32_t key_id, uint64_t seq, const uint8_t *pt, size_t len,
     uint8_t *out)
{
    memcpy(out, "CKSV\x01\x04\x00\x00", 8);
    for (int i = 0; i < 4; i++)
        out[8 + i] = (uint8_t)(key_id >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        out[12 + i] = (uint8_t)(seq >> (56 - 8 * i));
    if (gcm(1, key, seq, out, 20, pt, len, out + 20, out + 20 + len) != 0)
        die("seal", CK_ERR_CRYPTO);
    return 20 + len + 16;
}

/* The KSV's Ed25519 public key, made once at start. */
static uint8_t sign_pub[LKH_ED25519_PUB_LEN];

/* A REGISTER with one group: the member's path keys (EK: the group key alone). */
static size_t
register_msg(const struct lkh_member *m, int ek, uint64_t epoch, uint32_t msg_id, uint8_t *out)
{
    struct ck_ksv_msg *msg = NULL;
    struct ck_ksv_group *g;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    if ((rc = ck_ksv_msg_new(CK_KSV_REGISTER, &msg)) != 0)
        die("msg", rc);
    msg->flags = CK_KSV_F_ACK_REQD;
    msg->key_id = 1;
    msg->msg_id = msg_id;
    msg->timestamp = 1764662400000000ull + msg_id;
    msg->n_groups = 1;
    g = &msg->groups[0];
    g->group_id = GROUP_ID;
    g->epoch = epoch;
    g->member_index = m->member_id;
    g->root_version = m->path[m->height].version;
    g->keying = ek ? CK_KSV_KEYING_EK : CK_KSV_KEYING_LKH;
    g->mcast.family = CK_KSV_AF_IPV4;
    memcpy(g->mcast.addr, "\xef\xc0\x00\x01", 4); /* 239.192.0.1 */
    g->mcast_port = 7443;
    memcpy(g->sign_pub, sign_pub, sizeof(g->sign_pub));
    g->spi = 0x80000001u;
    g->proto = CK_KSV_PROTO_ESP;
    g->mode = CK_KSV_MODE_TRANSPORT;
    g->enc_alg = 20; /* ENCR_AES_GCM_16 */
    g->enc_key_len = 20;
    g->life_sec = 600;
    g->degree = (uint8_t)m->degree;
    g->id_len = ek ? 0 : (uint8_t)m->height;
    for (uint32_t j = 0; j < g->id_len; j++)
        g->member_id[j] = (uint8_t)((m->path[m->height - j - 1].node - 1) % m->degree);
    g->n_keys = ek ? 1 : (uint8_t)(m->height + 1);
    for (uint32_t l = 0; l < g->n_keys; l++) {
        g->keys[l].level = (uint8_t)l;
        g->keys[l].key_len = LKH_KEY_LEN;
        g->keys[l].node = m->path[m->height - l].node;
        g->keys[l].version = m->path[m->height - l].version;
        memcpy(g->keys[l].key, m->path[m->height - l].key, LKH_KEY_LEN);
    }
    if ((rc = ck_ksv_msg_encode(msg, &buf, &len)) != 0)
        die("encode", rc);
    memcpy(out, buf, len);
    ck_free_secret(buf, len);
    ck_ksv_msg_free(msg);
    return len;
}

/* ---- receivers ----------------------------------------------------------------------------- */
struct receiver {
    int idx; /* member ID (testnode idx + 1) */
    int fd;
    struct sockaddr_in addr;
    pthread_t th;
    /* state, touched by the server only between rounds or under mu */
    int mode;
    int revoked;
    struct lkh_member m;
    struct lkh_member pending; /* the path a unicast delivers (versions side-band: see below) */
    uint8_t sess[32];
    uint64_t rx_seq, last_epoch;
    uint8_t gk[LKH_KEY_LEN];
    uint32_t gv;
    double cpu_us;  /* this round */
    int worked, done;
};

static struct receiver rx[NODES];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int n_done, n_expect;
static uint32_t target_v;
static uint8_t target_k[LKH_KEY_LEN];
static atomic_int stop;

static void
check_done(struct receiver *r)
{
    pthread_mutex_lock(&mu);
    if (!r->revoked && !r->done && r->gv == target_v &&
        CRYPTO_memcmp(r->gk, target_k, LKH_KEY_LEN) == 0) {
        r->done = 1;
        n_done++;
        pthread_cond_signal(&cv);
    }
    pthread_mutex_unlock(&mu);
}

static void
handle(struct receiver *r, uint8_t *buf, size_t len)
{
    double c0 = cpu_now();
    int applied = 0;

    if (len > 20 && buf[5] == 4) {
        /* SEALED REGISTER: the key id, a fresh sequence, the tag, then the codec */
        uint64_t seq = 0;
        uint8_t pt[2048];
        struct ck_ksv_msg *msg = NULL;
        for (int i = 0; i < 8; i++)
            seq = (seq << 8) | buf[12 + i];
        if (seq <= r->rx_seq || len - 36 > sizeof(pt) ||
            gcm(0, r->sess, seq, buf, 20, buf + 20, len - 36, pt, buf + len - 16) != 0 ||
            ck_ksv_msg_parse(pt, len - 36, &msg) != 0) {
            OPENSSL_cleanse(pt, sizeof(pt));
            return;
        }
        r->rx_seq = seq;
        {
            const struct ck_ksv_group *g = &msg->groups[0];
            if (r->mode == M_EK) {
                memcpy(r->gk, g->keys[0].key, LKH_KEY_LEN);
                pthread_mutex_lock(&mu);
                r->gv = r->pending.path[r->pending.height].version;
                pthread_mutex_unlock(&mu);
                applied = 1;
            } else {
                /* The main-branch REGISTER codec has no key versions yet (h/kwire adds them):
                 * the versions come side-band from the server's export; the keys must be the
                 * message's. */
                pthread_mutex_lock(&mu);
                r->m = r->pending;
                pthread_mutex_unlock(&mu);
                applied = CRYPTO_memcmp(g->keys[0].key, r->m.path[r->m.height].key,
                                        LKH_KEY_LEN) == 0 &&
                          lkh_member_group_key(&r->m, r->m.path[r->m.height].version, r->gk) == 0;
                r->gv = r->m.path[r->m.height].version;
            }
        }
        ck_ksv_msg_free(msg);
        OPENSSL_cleanse(pt, sizeof(pt));
    } else if (len > 8 && buf[5] == 6) {
        uint32_t rv = 0;
        if (r->mode == M_EK)
            goto out_cpu;
        if (lkh_rekey_member_apply(&r->m, GROUP_ID, sign_pub, &r->last_epoch, buf, len, &rv) ==
                0 &&
            lkh_member_group_key(&r->m, rv, r->gk) == 0) {
            r->gv = rv;
            applied = 1;
        }
    }
out_cpu:
    r->cpu_us += cpu_now() - c0;
    r->worked = 1;
    if (applied)
        check_done(r);
}

static void *
receiver_main(void *arg)
{
    struct receiver *r = arg;
    uint8_t buf[2048];

    while (!atomic_load(&stop)) {
        ssize_t n = recv(r->fd, buf, sizeof(buf), 0);
        if (n > 0)
            handle(r, buf, (size_t)n);
    }
    return NULL;
}

/* ---- one revocation round ----------------------------------------------------------------- */
struct stat {
    double keys, dgrams, bytes, sigs, server_us, member_us, wall_us;
};

static int server_fd;

static void
send_to(int i, const uint8_t *buf, size_t len)
{
    if (sendto(server_fd, buf, len, 0, (const struct sockaddr *)&rx[i].addr,
               sizeof(rx[i].addr)) != (ssize_t)len)
        die("sendto", CK_ERR_IO);
}

static uint64_t seq_all;

static void
run_round(int mode, struct lkh_tree *t, struct lkh_hybrid *h, const struct lkh_signer *s,
          uint64_t epoch, uint32_t victim, int n_left, struct stat *st)
{
    struct lkh_batch_result br;
    struct lkh_hybrid_result hr;
    struct lkh_rekey_out out;
    const struct lkh_tree *tree;
    const struct lkh_wrap *wraps = NULL;
    size_t n_wraps = 0;
    uint8_t pt[2048], dg[2100];
    double w0, c0;
    int rc, multicast = 0;

    memset(st, 0, sizeof(*st));
    memset(&br, 0, sizeof(br));
    memset(&hr, 0, sizeof(hr));
    memset(&out, 0, sizeof(out));
    pthread_mutex_lock(&mu);
    for (int i = 0; i < NODES; i++) {
        rx[i].cpu_us = 0;
        rx[i].worked = 0;
        rx[i].done = 0;
    }
    n_done = 0;
    n_expect = n_left;
    rx[victim].revoked = 1;
    pthread_mutex_unlock(&mu);

    w0 = wall_now();
    c0 = cpu_now();
    if (mode == M_LKH) {
        if ((rc = lkh_batch(t, &victim, 1, 0, &br)) != 0)
            die("batch", rc);
        tree = t;
        wraps = br.wraps;
        n_wraps = br.n_wraps;
        multicast = 1;
    } else {
        if ((rc = lkh_hybrid_batch(h, &victim, 1, 0, &hr)) != 0)
            die("hybrid batch", rc);
        tree = lkh_hybrid_tree(h);
        wraps = hr.lkh.wraps;
        n_wraps = hr.lkh.n_wraps;
        multicast = hr.multicast;
    }
    pthread_mutex_lock(&mu);
    if ((rc = lkh_group_key(tree, target_k, &target_v)) != 0)
        die("group key", rc);
    pthread_mutex_unlock(&mu);
    if (multicast) {
        struct lkh_rekey_params p;
        memset(&p, 0, sizeof(p));
        p.group_id = GROUP_ID;
        p.epoch = epoch;
        p.root_version = target_v;
        p.degree = lkh_tree_degree(tree);
        p.height = lkh_tree_height(tree);
        if ((rc = lkh_rekey_pack(&p, wraps, n_wraps, s, &out)) != 0)
            die("pack", rc);
        st->sigs = 1;
        st->keys += (double)n_wraps;
        for (size_t k = 0; k < out.n; k++) {
            st->dgrams++;
            st->bytes += (double)out.lens[k];
            for (int i = 0; i < NODES; i++) /* the group address: every socket */
                send_to(i, out.dgrams[k], out.lens[k]);
        }
    }
    for (size_t u = 0; u < hr.n_unicast; u++) {
        uint32_t id = hr.unicast[u];
        struct lkh_member m;
        size_t len, dlen;
        if ((rc = lkh_hybrid_member_export(h, id, &m)) != 0)
            die("export", rc);
        pthread_mutex_lock(&mu);
        rx[id].pending = m;
        pthread_mutex_unlock(&mu);
        len = register_msg(&m, mode == M_EK, epoch, (uint32_t)++seq_all, pt);
        dlen = seal(rx[id].sess, 1, ++seq_all, pt, len, dg);
        send_to((int)id, dg, dlen);
        st->keys += mode == M_EK ? 1 : (double)(m.height + 1);
        st->dgrams++;
        st->bytes += (double)dlen;
        lkh_member_clear(&m);
        OPENSSL_cleanse(pt, len);
    }
    st->server_us = cpu_now() - c0;
    pthread_mutex_lock(&mu);
    while (n_done < n_expect) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 2;
        if (pthread_cond_timedwait(&cv, &mu, &ts) != 0) {
            fprintf(stderr, "ksv_table2: %s: only %d of %d members got the key\n",
                    mode_name[mode], n_done, n_expect);
            exit(1);
        }
    }
    pthread_mutex_unlock(&mu);
    st->wall_us = wall_now() - w0;
    usleep(2000); /* let the revoked members' sockets drain the multicast */
    {
        int n = 0;
        for (int i = 0; i < NODES; i++) {
            if (rx[i].worked && !rx[i].revoked) {
                st->member_us += rx[i].cpu_us;
                n++;
            }
            if (rx[i].revoked && CRYPTO_memcmp(rx[i].gk, target_k, LKH_KEY_LEN) == 0) {
                fprintf(stderr, "ksv_table2: a revoked member holds the new key\n");
                exit(1);
            }
        }
        st->member_us = n ? st->member_us / n : 0;
    }
    lkh_rekey_out_clear(&out);
    lkh_batch_result_clear(&br);
    lkh_hybrid_result_clear(&hr);
}

static int
cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return v[n / 2];
}

int
main(int argc, char **argv)
{
    int64_t reps64 = 11, cluster64 = 4;
    static double res[3][N_MODES][N_REV][7][MAX_REPS];
    struct lkh_signer *s = NULL;
    int reps;
    uint32_t cluster;
    int rc;

    if ((argc > 1 && ck_parse_int64(argv[1], 1, MAX_REPS, &reps64) != 0) ||
        (argc > 2 && ck_parse_int64(argv[2], 1, UINT32_MAX, &cluster64) != 0))
        return fprintf(stderr, "usage: ksv_table2 [reps 1..%d] [cluster]\n", MAX_REPS), 2;
    reps = (int)reps64;
    cluster = (uint32_t)cluster64;
    if ((rc = lkh_signer_generate(&s)) != 0 || (rc = lkh_signer_public(s, sign_pub)) != 0)
        die("signer", rc);
    if ((server_fd = socket(AF_INET, SOCK_DGRAM, 0)) < 0)
        die("socket", CK_ERR_IO);
    for (int i = 0; i < NODES; i++) {
        struct timeval tv = {0, 50000};
        socklen_t sl = sizeof(rx[i].addr);
        int sz = 1 << 20;
        rx[i].idx = i;
        rx[i].fd = socket(AF_INET, SOCK_DGRAM, 0);
        memset(&rx[i].addr, 0, sizeof(rx[i].addr));
        rx[i].addr.sin_family = AF_INET;
        rx[i].addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (rx[i].fd < 0 ||
            bind(rx[i].fd, (struct sockaddr *)&rx[i].addr, sizeof(rx[i].addr)) != 0 ||
            getsockname(rx[i].fd, (struct sockaddr *)&rx[i].addr, &sl) != 0 ||
            setsockopt(rx[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
            setsockopt(rx[i].fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)) != 0)
            die("receiver socket", CK_ERR_IO);
        if (pthread_create(&rx[i].th, NULL, receiver_main, &rx[i]) != 0)
            die("thread", CK_ERR_IO);
    }

    for (int order = 1; order <= 3; order++) {
        uint32_t degree = (uint32_t)order + 1;
        for (int mode = 0; mode < N_MODES; mode++) {
            for (int rep = 0; rep < reps; rep++) {
                struct lkh_tree *t = NULL;
                struct lkh_hybrid *h = NULL;
                struct lkh_hybrid_result hr;
                uint64_t epoch = 0;
                int n_left = NODES;

                /* registration (untimed): every node gets its path / group key and a session */
                if (mode == M_LKH) {
                    if ((rc = lkh_tree_new(degree, NODES, &t)) != 0 ||
                        (rc = lkh_tree_populate(t, NODES)) != 0)
                        die("tree", rc);
                } else {
                    rc = mode == M_EK ? lkh_ek_new(NODES, &h)
                                      : lkh_hybrid_new(degree, cluster, NODES, &h);
                    if (rc != 0 || (rc = lkh_hybrid_batch(h, NULL, 0, NODES, &hr)) != 0)
                        die("hybrid", rc);
                    lkh_hybrid_result_clear(&hr);
                }
                pthread_mutex_lock(&mu);
                for (int i = 0; i < NODES; i++) {
                    struct receiver *r = &rx[i];
                    rc = mode == M_LKH ? lkh_member_export(t, (uint32_t)i, &r->m)
                                       : lkh_hybrid_member_export(h, (uint32_t)i, &r->m);
                    if (rc != 0)
                        die("export", rc);
                    r->pending = r->m;
                    r->mode = mode;
                    r->revoked = 0;
                    r->rx_seq = 0;
                    r->last_epoch = 0;
                    r->gv = r->m.path[r->m.height].version;
                    memcpy(r->gk, r->m.path[r->m.height].key, LKH_KEY_LEN);
                    if (RAND_bytes(r->sess, sizeof(r->sess)) != 1)
                        die("rand", CK_ERR_CRYPTO);
                }
                pthread_mutex_unlock(&mu);
                seq_all = 0;
                for (size_t v = 0; v < N_REV; v++) {
                    struct stat st;
                    n_left--;
                    run_round(mode, t, h, s, ++epoch, (uint32_t)(revoke_order[v] - 1), n_left,
                              &st);
                    res[order - 1][mode][v][0][rep] = st.keys;
                    res[order - 1][mode][v][1][rep] = st.dgrams;
                    res[order - 1][mode][v][2][rep] = st.bytes;
                    res[order - 1][mode][v][3][rep] = st.sigs;
                    res[order - 1][mode][v][4][rep] = st.server_us;
                    res[order - 1][mode][v][5][rep] = st.member_us;
                    res[order - 1][mode][v][6][rep] = st.wall_us;
                }
                lkh_tree_free(t);
                lkh_hybrid_free(h);
            }
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < NODES; i++) {
        pthread_join(rx[i].th, NULL);
        close(rx[i].fd);
        lkh_member_clear(&rx[i].m);
        lkh_member_clear(&rx[i].pending);
    }
    close(server_fd);
    lkh_signer_free(s);

    printf("Table 2 redone: 10 nodes, revoke testnode 10,9,7,6,5,4,3,2; medians of %d runs; "
           "hybrid clusters of %u; times in microseconds\n\n", reps, cluster);
    printf("Wall time until every remaining member holds the new group key (us), the paper's "
           "Table 2 measure (it reported 0.6-4.4 ms EK, 78-414 ms LKH):\n\n");
    printf("| order | mode |");
    for (size_t v = 0; v < N_REV; v++)
        printf(" %d |", revoke_order[v]);
    printf("\n|---|---|");
    for (size_t v = 0; v < N_REV; v++)
        printf("---|");
    printf("\n");
    for (int o = 0; o < 3; o++)
        for (int mode = 0; mode < N_MODES; mode++) {
            printf("| %d | %s |", o + 1, mode_name[mode]);
            for (size_t v = 0; v < N_REV; v++)
                printf(" %.0f |", median(res[o][mode][v][6], reps));
            printf("\n");
        }
    printf("\nPer revocation: keys sent / datagrams / bytes / signatures / server CPU us / member "
           "CPU us (mean per member with work) / wall us\n\n");
    printf("| order | mode | testnode | keys | dgrams | bytes | sigs | server us | member us | "
           "wall us |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (int o = 0; o < 3; o++)
        for (int mode = 0; mode < N_MODES; mode++)
            for (size_t v = 0; v < N_REV; v++) {
                double (*r)[MAX_REPS] = res[o][mode][v];
                printf("| %d | %s | %d | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f | %.0f |\n", o + 1,
                       mode_name[mode], revoke_order[v], median(r[0], reps), median(r[1], reps),
                       median(r[2], reps), median(r[3], reps), median(r[4], reps),
                       median(r[5], reps), median(r[6], reps));
            }
    return 0;
}
