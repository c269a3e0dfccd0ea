/* Small utilities shared by all modules: secret memory, constant-time compare, bounded byte
 * reader/writer for non-ASN.1 formats, time. */
#ifndef CABLEKEY_UTIL_H
#define CABLEKEY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Wipes memory in a way the compiler cannot elide. */
void ck_memzero(void *p, size_t len);
/* Wipes then frees; accepts NULL. */
void ck_free_secret(void *p, size_t len);
/* Constant-time equality of two equal-length buffers. */
bool ck_ct_equal(const void *a, const void *b, size_t len);
/* Duplicates a buffer (NULL on allocation failure; returns a 1-byte allocation for len 0). */
void *ck_memdup(const void *p, size_t len);
/* Bounded string copy: copies at most dstsize-1 bytes, always NUL-terminates; returns the
 * length of src (truncated if >= dstsize). */
size_t ck_strlcpy(char *dst, const char *src, size_t dstsize);
/* Parses a decimal integer within [min, max]; 0 on success, CK_ERR_INVAL otherwise. */
int ck_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Bounded reader: every getter checks the remaining length and returns CK_ERR_DECODE on overrun. */
typedef struct ck_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
} ck_reader;

void ck_reader_init(ck_reader *r, const uint8_t *data, size_t len);
size_t ck_reader_remaining(const ck_reader *r);
int ck_reader_u8(ck_reader *r, uint8_t *v);
int ck_reader_u16be(ck_reader *r, uint16_t *v);
int ck_reader_u32be(ck_reader *r, uint32_t *v);
/* Points *p at the next n bytes without copying. */
int ck_reader_bytes(ck_reader *r, size_t n, const uint8_t **p);
int ck_reader_copy(ck_reader *r, void *dst, size_t n);

/* Growable writer with an explicit maximum size (CK_ERR_LIMIT beyond it). */
typedef struct ck_writer {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;
    bool secret; /* wipe on growth and on free */
} ck_writer;

void ck_writer_init(ck_writer *w, size_t max, bool secret);
int ck_writer_u8(ck_writer *w, uint8_t v);
int ck_writer_u16be(ck_writer *w, uint16_t v);
int ck_writer_u32be(ck_writer *w, uint32_t v);
int ck_writer_bytes(ck_writer *w, const void *p, size_t n);
/* Hands the buffer to the caller (who frees it) and resets the writer. */
uint8_t *ck_writer_take(ck_writer *w, size_t *len);
void ck_writer_free(ck_writer *w);

/* Writes all len bytes to fd, retrying on EINTR and short writes. CK_ERR_IO ("write: <errno>")
 * on failure; callers add what the file is. */
int ck_fd_write_all(int fd, const void *buf, size_t len);
/* Reads from fd until end of file or until cap bytes are read (*len tells how many; a caller that
 * passes one byte more than it accepts detects oversized files). CK_ERR_IO on failure. */
int ck_fd_read_all(int fd, void *buf, size_t cap, size_t *len);

/* ck_file_write_atomic flags. */
#define CK_WRITE_REPLACE 0x1  /* replace an existing file (without it: CK_ERR_EXISTS) */
#define CK_WRITE_PRESERVE 0x2 /* implies REPLACE: a symlink is followed and its target written;
                               * an existing target keeps its owner, group and mode */
/* Writes a whole file so that a reader sees the old content or the new one, never a mix: a
 * temporary file in the target's directory (mode 0600 whatever the umask), fsync, then rename
 * (CK_WRITE_REPLACE) or link (no replace: refuses an existing name atomically, a dangling symlink
 * included), and an fsync of the directory. New files are 0600. With CK_WRITE_PRESERVE the
 * temporary file gets the old file's owner, group and mode (fchown/fchmod) before it is renamed;
 * if that is impossible (not root and not the owner) the write is refused and nothing changes.
 * A target that exists but is not a regular file is refused. Errors name path. */
int ck_file_write_atomic(const char *path, const void *data, size_t len, unsigned flags);

/* Ethernet MAC addresses (lib/util/mac.c), the one syntax every component accepts:
 * aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff or aabbccddeeff, either case. The canonical text form is
 * lower case with colons. Errors never echo the input (it may come from a certificate). */
#define CK_MAC_LEN 6
#define CK_MAC_TEXT 18 /* "aa:bb:cc:dd:ee:ff" and its NUL */
int ck_mac_parse(const char *text, uint8_t mac[CK_MAC_LEN]);
void ck_mac_format(const uint8_t mac[CK_MAC_LEN], char out[CK_MAC_TEXT]);
/* Parse, then format: out is "" on error. */
int ck_mac_canonical(const char *text, char out[CK_MAC_TEXT]);
/* The value of a hex digit, or -1. */
int ck_hex_digit(int c);

/* Wall clock seconds and microseconds. */
void ck_now(int64_t *sec, int32_t *usec);
/* Monotonic milliseconds. */
int64_t ck_monotonic_ms(void);

/* Anti-replay window (RFC 4303 §3.4.3, RFC 4302 §3.4.3) over a ring of nbits bits indexed by
 * sequence number mod nbits: nbits a power of two, a multiple of 64 and at least the window; top
 * is the highest sequence number accepted. Check before the ICV, update only after it verified. */
enum ck_replay_verdict { CK_REPLAY_NEW = 0, CK_REPLAY_TOO_OLD, CK_REPLAY_SEEN };
enum ck_replay_verdict ck_replay_check(const uint64_t *ring, uint32_t nbits, uint32_t top,
                                       uint32_t window, uint32_t seq);
void ck_replay_update(uint64_t *ring, uint32_t nbits, uint32_t *top, uint32_t seq);

/* Big-endian 32-bit store and load (wire fields, PRF seeds). */
static inline void
ck_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t
ck_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The earlier of two deadlines where a negative one means "none" (the timer queries of the
 * injected-clock state machines). */
static inline int64_t
ck_deadline_min(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

#endif
