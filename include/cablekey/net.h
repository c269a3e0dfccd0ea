/* Datagram and stream server core: one epoll loop per worker thread, each with its own
 * SO_REUSEPORT UDP socket and TCP listener per address, so the kernel spreads load over workers.
 * UDP is read and answered in batches (recvmmsg/sendmmsg) and replies leave from the address the
 * request arrived on. TCP carries several messages per connection, split by the stream framing
 * the protocol passes in (struct ck_net_framing; Kerberos' is ck_krb_tcp_framing, client.h).
 *
 * The core knows nothing of the protocol it carries: a handler turns request bytes into reply
 * bytes. Handlers run on worker threads; each worker has its own state made by worker_init. */
#ifndef CABLEKEY_NET_H
#define CABLEKEY_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CK_NET_DEFAULT_MAX_REQUEST 65536
#define CK_NET_DEFAULT_MAX_DGRAM 65535
#define CK_NET_DEFAULT_MAX_REPLY 65536
#define CK_NET_DEFAULT_TCP_MAX_CONNS 256
#define CK_NET_DEFAULT_TCP_IDLE_MS 30000
#define CK_NET_DEFAULT_TCP_BACKLOG 128
#define CK_NET_MAX_WORKERS 256
#define CK_NET_MAX_ADDRS 64           /* resolved listen addresses per server */
#define CK_NET_MAX_REQUEST_LIMIT (16u << 20) /* ceiling for max_request and max_reply */
#define CK_NET_ADDRSTRLEN 64          /* "[v6addr%scope]:port" */

enum ck_net_transport { CK_NET_UDP, CK_NET_TCP };

/* The stream framing refused a message from its header alone (declared longer than
 * max_request, or an invalid header such as RFC 4120's reserved high bit): data is NULL and len
 * is the declared length. A reply, if any, is sent and then the connection is closed. */
#define CK_NET_REQ_OVERSIZED 0x1u

/* ---- stream framing ----------------------------------------------------------------------- */

#define CK_NET_FRAME_HEADER_MAX 16    /* longest message header or reply prefix a framing uses */

enum ck_net_frame {
    CK_NET_FRAME_NEED,     /* need more header bytes: *need (> have) in total */
    CK_NET_FRAME_MESSAGE,  /* a message of *len bytes starts at offset *off (<= have); bytes
                              buf[*off..have) are its first bytes */
    CK_NET_FRAME_REFUSE,   /* oversized or invalid: *len is the declared length (or 0); the
                              handler sees it with CK_NET_REQ_OVERSIZED */
};

/* How a byte stream splits into messages. parse sees the first `have` bytes of the next message
 * (have starts at 0, and the server never reads past the *need it was given, so no byte of a
 * following message is ever passed); max_len is the server's max_request. write_prefix writes
 * the reply_prefix bytes that precede a reply of reply_len bytes. Both are pure functions,
 * called on worker threads. */
struct ck_net_framing {
    enum ck_net_frame (*parse)(const uint8_t *buf, size_t have, size_t max_len, size_t *need,
                               size_t *off, size_t *len);
    void (*write_prefix)(uint8_t *prefix, size_t reply_len);
    size_t reply_prefix;           /* <= CK_NET_FRAME_HEADER_MAX */
};

/* ---- peers -------------------------------------------------------------------------------- */

/* The remote end of a request, as the transport saw it. Protocol cores treat it as opaque: they
 * format it for their logs (or hand it back to a transport) and never look inside. */
struct ck_peer {
    struct sockaddr_storage addr;
    socklen_t addr_len;            /* 0: unknown */
};

/* Fills p from a socket address (len 0 or sa NULL: an unknown peer). */
void ck_peer_set(struct ck_peer *p, const struct sockaddr *sa, socklen_t len);
/* The address, or NULL for a NULL or unknown peer (*len may be NULL). */
const struct sockaddr *ck_peer_sockaddr(const struct ck_peer *p, socklen_t *len);
/* "192.0.2.1:88" / "[2001:db8::1]:88" into buf (CK_NET_ADDRSTRLEN is enough); "-" for a NULL
 * or unknown peer. Returns buf. */
const char *ck_peer_format(const struct ck_peer *p, char *buf, size_t size);
/* The host alone ("192.0.2.1", "2001:db8::1"); "-" for a NULL or unknown peer, "unknown" for a
 * family other than IPv4/IPv6. Returns buf or one of those constants. */
const char *ck_peer_format_host(const struct ck_peer *p, char *buf, size_t size);

struct ck_net_request {
    const uint8_t *data;
    size_t len;
    enum ck_net_transport transport;
    unsigned flags;                 /* CK_NET_REQ_* */
    const struct sockaddr *peer;    /* == ck_peer_sockaddr(remote) */
    socklen_t peer_len;
    const struct ck_peer *remote;   /* the same peer, for protocol cores (opaque to them) */
    const struct sockaddr *local;   /* address the request arrived on */
    socklen_t local_len;
};

/* Produces the reply for one request into reply (capacity reply_cap: max_reply over TCP, at most
 * 65527 bytes over UDP, which no datagram can exceed). *reply_len == 0, or a negative return,
 * means "send nothing"; over TCP that also closes the connection. */
typedef int (*ck_net_handler_fn)(void *worker_state, const struct ck_net_request *req,
                                 uint8_t *reply, size_t reply_cap, size_t *reply_len);

/* Makes the state of worker index (0-based) before it starts; returns 0 or a CK_ERR_* code. Both
 * init and fini run on the thread calling ck_net_server_start / ck_net_server_stop, never
 * concurrently; the state is then used by that worker's thread only. */
typedef int (*ck_net_worker_init_fn)(int index, void *arg, void **state);
typedef void (*ck_net_worker_fini_fn)(int index, void *arg, void *state);

struct ck_net_callbacks {
    ck_net_handler_fn handler;         /* required */
    ck_net_worker_init_fn worker_init; /* optional: state is NULL without it */
    ck_net_worker_fini_fn worker_fini; /* optional */
    void *arg;
};

/* Called on the worker's thread when it has handled everything that was ready and is about to
 * wait for more: the place for deferred work (writing batched log lines). Returns how long the
 * worker may then sleep before calling it again, in milliseconds (-1: until the next event). */
typedef int (*ck_net_idle_fn)(void *worker_state);

/* ---- admission control (UDP; issue 9, the mass reset) --------------------------------------
 *
 * When more datagrams arrive than a worker can answer, its queue grows; an answer that comes
 * after its client stopped listening is CPU spent for nothing, and a flooding source can fill the
 * queue so that nobody else is answered. Admission control decides before anything is decoded:
 *   - stale: a datagram that waited in the queue so long (kernel receive time, SO_TIMESTAMPNS)
 *     that with the measured time per answer it could not be answered within `window_ms` of its
 *     arrival is dropped (the estimated cost counts for at most half the window, and a datagram
 *     that did not wait is always taken). The window is how long clients keep listening: MIT's
 *     client resends after 1 s per KDC (3 s with one KDC) but takes a late answer to any earlier
 *     send until it gives up (17 s with one KDC, lib/krb5/os/sendto_kdc.c), so dropping at the
 *     first resend would only make it wait for the resend (measured: docs/PERFORMANCE.md, "Mass
 *     reset"); the default, 8 s, is the shortest wait left to a datagram MIT sends (its third);
 *   - share: while datagrams wait more than `congest_ms`, each source (IPv4 /prefix4, IPv6
 *     /prefix6) gets a token bucket refilled at the worker's measured capacity divided by the
 *     sources active in the last window; a source without a token is dropped, so a flooding source
 *     cannot crowd the others out of the queue. Without congestion nothing is dropped for share.
 * Per worker; the source table has max_sources entries (fixed at start: bounded memory whatever
 * the sources), keyed by a hash with a random per-worker seed, with a bounded probe that evicts
 * the least recently seen entry. Spoofed source addresses defeat per-source fairness (a fresh
 * source starts with a full bucket); staleness still bounds the work. TCP has its own limits
 * (tcp_max_conns). */
#define CK_ADMISSION_DEFAULT_WINDOW_MS 8000
#define CK_ADMISSION_DEFAULT_CONGEST_MS 100  /* or half the window if that is less */
#define CK_ADMISSION_MAX_WINDOW_MS 60000
#define CK_ADMISSION_DEFAULT_SOURCES 4096
#define CK_ADMISSION_MAX_SOURCES (1u << 20)

enum ck_admission_verdict {
    CK_ADMIT = 0,
    CK_DROP_STALE,   /* could not be answered within the window any more */
    CK_DROP_SHARE,   /* congested, and its source used its share */
};

/* Totals since start (or, in a report, since the previous report). */
struct ck_admission_stats {
    uint64_t admitted;
    uint64_t dropped_stale;
    uint64_t dropped_share;
    uint64_t evicted;          /* source entries reused while still in the last window */
    uint64_t service_ns;       /* current estimate of one answer's cost (wall ns; largest worker) */
    uint64_t sources;          /* sources active in the current window (sum over workers) */
};

/* Called at most once per second (from a worker thread, one at a time) while drops happen, and
 * once more after they stop: a log line's worth. */
typedef void (*ck_admission_report_fn)(void *arg, const struct ck_admission_stats *since_last,
                                       const struct ck_admission_stats *total);

struct ck_admission_config {
    bool enabled;
    int window_ms;             /* 0: CK_ADMISSION_DEFAULT_WINDOW_MS */
    int congest_ms;            /* 0: CK_ADMISSION_DEFAULT_CONGEST_MS */
    int prefix4;               /* 0: 24 (1..32) */
    int prefix6;               /* 0: 64 (1..128) */
    size_t max_sources;        /* 0: CK_ADMISSION_DEFAULT_SOURCES (16..CK_ADMISSION_MAX_SOURCES) */
    bool no_fairness;          /* staleness only (for comparisons) */
    ck_admission_report_fn report;  /* optional */
    void *report_arg;
};

/* The per-worker decision engine, usable on its own with any clock (times are nanoseconds on
 * one clock, e.g. CLOCK_REALTIME for kernel receive timestamps; arrival 0 = unknown, i.e. now). */
struct ck_admission;

/* Checks cfg's ranges; CK_ERR_CONFIG naming the field. */
int ck_admission_config_check(const struct ck_admission_config *cfg);
/* seed: hashing of sources (0: random from the DRBG). */
int ck_admission_new(const struct ck_admission_config *cfg, uint64_t seed,
                     struct ck_admission **out);
void ck_admission_free(struct ck_admission *a);  /* accepts NULL */
/* One datagram from src (IPv4/IPv6; other families share one source) that arrived at arrival_ns,
 * looked at now_ns. */
enum ck_admission_verdict ck_admission_check(struct ck_admission *a, const struct sockaddr *src,
                                             int64_t arrival_ns, int64_t now_ns);
/* n admitted datagrams took elapsed_ns to answer (a batch): feeds the cost estimate. */
void ck_admission_served(struct ck_admission *a, unsigned n, int64_t elapsed_ns);
/* Counters (safe from another thread: relaxed atomics). */
void ck_admission_get_stats(const struct ck_admission *a, struct ck_admission_stats *st);
/* Entries the source table holds (never more than max_sources). */
size_t ck_admission_table_size(const struct ck_admission *a);

/* Largest udp_rcvbuf accepted (the kernel doubles the value it is given). */
#define CK_NET_MAX_RCVBUF (256 * 1024 * 1024)

/* Zero fields take the defaults above. Strings are copied by ck_net_server_new. */
struct ck_net_config {
    const char *const *listen;  /* "127.0.0.1:88", "[::1]:88", "host", "::1", "88" (all addresses),
                                   "*:88"; port 0 = a kernel-chosen port shared by all workers */
    size_t n_listen;
    uint16_t default_port;      /* for entries without a port (0 is allowed) */
    int workers;                /* 0: number of online CPUs */
    size_t max_request;         /* largest TCP message accepted */
    size_t max_dgram;           /* largest datagram received; longer ones are dropped */
    size_t max_reply;           /* reply buffer handed to the handler */
    int tcp_max_conns;          /* per worker; when full the least recently active is closed */
    int tcp_idle_timeout_ms;    /* connections quiet this long are closed */
    int tcp_backlog;
    bool no_udp;                /* listen on TCP only */
    bool no_tcp;                /* listen on UDP only */
    /* How TCP messages are delimited: required unless no_tcp (copied by pointer: must outlive
     * the server; usually a static const). */
    const struct ck_net_framing *tcp_framing;
    /* One worker per CPU: worker i runs on CPU i and the kernel hands a datagram to the worker
     * of the CPU it arrived on, so a request is received, answered and its sender woken on one
     * CPU. Used only when the workers are exactly the CPUs the process may run on (0..n-1);
     * otherwise datagrams are spread by address hash as without it. */
    bool cpu_affinity;
    int steer_check_ms;         /* how often cpu_affinity checks that arrivals do spread (0: 1 s) */
    /* Receive buffer asked for each UDP socket, in bytes (0: the system default, as before).
     * SO_RCVBUFFORCE is tried first (root / CAP_NET_ADMIN: not capped by net.core.rmem_max),
     * then SO_RCVBUF (capped); a smaller buffer than asked is not an error. Datagrams that
     * arrive while the queue is full are dropped by the kernel. At most CK_NET_MAX_RCVBUF. */
    int udp_rcvbuf;
    /* Admission control for UDP (see above); off unless admission.enabled. */
    struct ck_admission_config admission;
};

struct ck_net_server;

/* Validates the configuration and allocates the server; no socket is opened yet. */
int ck_net_server_new(const struct ck_net_config *cfg, const struct ck_net_callbacks *cb,
                      struct ck_net_server **out);
/* Sets the idle callback (before ck_net_server_start; NULL: none). */
void ck_net_server_set_idle(struct ck_net_server *srv, ck_net_idle_fn idle);
/* Starting is two steps, so that a daemon can bind privileged ports and then drop privileges
 * before any worker state (database, keys) exists:
 *   ck_net_server_bind: resolves and binds every address for every worker (no thread, no
 *     worker_init yet); afterwards ck_net_server_addr reports the bound addresses.
 *   ck_net_server_run: runs worker_init for each worker, then starts the worker threads.
 * Errors are returned with the address in the context; on error nothing is left open (a failed
 * run closes the sockets bind made). ck_net_server_start does both. */
int ck_net_server_bind(struct ck_net_server *srv);
int ck_net_server_run(struct ck_net_server *srv);
int ck_net_server_start(struct ck_net_server *srv);
/* What a start would find, without taking the addresses: every entry of cfg->listen resolves,
 * each resolved address is one of this host's (bindable), and a privileged port may be bound by
 * this process. A port already in use (by the running daemon, say) is not an error: the address
 * is then checked on a kernel-chosen port and marked "(port in use now)" in desc, which gets the
 * resolved addresses, blank-separated. */
int ck_net_check_listen(const struct ck_net_config *cfg, char *desc, size_t desc_size);
/* Tells the workers to stop, joins them, runs worker_fini, closes every socket. Idempotent. */
void ck_net_server_stop(struct ck_net_server *srv);
/* Stops if running, then frees. Accepts NULL. */
void ck_net_server_free(struct ck_net_server *srv);

/* After start: number of bound addresses and the i-th one (with the actual port). */
size_t ck_net_server_n_addrs(const struct ck_net_server *srv);
int ck_net_server_addr(const struct ck_net_server *srv, size_t i, struct sockaddr_storage *ss,
                       socklen_t *len);
/* Workers in use (after the default is applied). */
int ck_net_server_workers(const struct ck_net_server *srv);
/* "a:88 [b]:88": the bound addresses, space-separated, for a start-up log line (truncated to
 * size). srv NULL or nothing bound: "". */
void ck_net_server_describe(const struct ck_net_server *srv, char *buf, size_t size);
/* Whether cpu_affinity took effect at start, and how many times since then it was suspended
 * because arrivals did not spread (a worker saturated while another idled). suspensions may be
 * NULL; it is read without synchronization (a statistic). */
bool ck_net_server_steering(const struct ck_net_server *srv, uint64_t *suspensions);
/* Admission control totals over all workers (zeros when it is off); see ck_admission_config. */
void ck_net_server_admission_stats(const struct ck_net_server *srv,
                                   struct ck_admission_stats *st);

/* Parses one listen entry into host (without brackets; "" = any) and port. */
int ck_net_parse_listen(const char *spec, uint16_t default_port, char *host, size_t host_size,
                        uint16_t *port);
/* "192.0.2.1:88" or "[2001:db8::1]:88" into buf (CK_NET_ADDRSTRLEN is enough). */
const char *ck_net_addr_format(const struct sockaddr *sa, char *buf, size_t size);
/* 127.0.0.0/8, ::1 or an IPv4-mapped 127.x address: traffic that never leaves the host (what
 * admin traffic without TLS is restricted to). Any other family: false. */
bool ck_net_addr_is_loopback(const struct sockaddr *sa);

#endif
