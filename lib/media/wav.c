/* WAV files (RIFF/WAVE, PCM 16-bit little-endian mono 8000 Hz), see cablekey/media.h. The one
 * format the phone simulator sends and records; anything else is refused with what it is rather
 * than converted. The parser takes hostile files: every chunk length is checked against what is
 * left, and the whole file against an explicit bound before it is read. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cablekey/error.h"
#include "cablekey/media.h"
#include "cablekey/util.h"

#define WAV_RATE 8000u
#define WAV_BITS 16u
#define WAV_HEADER_LEN 44u
#define WAV_FMT_PCM 1u
#define WAV_FMT_MIN 16u
/* Room for chunks other than fmt and data (LIST, fact, cue...) in a file that is read. */
#define WAV_OTHER_CHUNKS_MAX (1024u * 1024u)
#define WAV_MAX_FILE ((size_t)WAV_HEADER_LEN + 2u * (size_t)CK_WAV_MAX_SAMPLES + WAV_OTHER_CHUNKS_MAX)

static int
le16(ck_reader *r, uint16_t *v)
{
    const uint8_t *p;

    if (ck_reader_bytes(r, 2, &p) != 0)
        return CK_ERR_DECODE;
    *v = (uint16_t)(p[0] | p[1] << 8);
    return 0;
}

static int
le32(ck_reader *r, uint32_t *v)
{
    const uint8_t *p;

    if (ck_reader_bytes(r, 4, &p) != 0)
        return CK_ERR_DECODE;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return 0;
}

static int
check_fmt(const uint8_t *p, size_t len)
{
    uint16_t tag, channels, align, bits;
    uint32_t rate, byte_rate;
    ck_reader r;

    ck_reader_init(&r, p, len);
    if (len < WAV_FMT_MIN || le16(&r, &tag) != 0 || le16(&r, &channels) != 0 ||
        le32(&r, &rate) != 0 || le32(&r, &byte_rate) != 0 || le16(&r, &align) != 0 ||
        le16(&r, &bits) != 0)
        return ck_error_set(CK_ERR_DECODE, "WAV: fmt chunk of %zu bytes, expected at least 16",
                            len);
    if (tag != WAV_FMT_PCM || channels != 1 || rate != WAV_RATE || bits != WAV_BITS)
        return ck_error_set(CK_ERR_UNSUPPORTED,
                            "WAV: format %u, %u channel(s), %u Hz, %u bits; expected PCM (1), "
                            "mono, 8000 Hz, 16 bits",
                            (unsigned)tag, (unsigned)channels, (unsigned)rate, (unsigned)bits);
    if (align != 2 || byte_rate != 2 * WAV_RATE)
        return ck_error_set(CK_ERR_DECODE, "WAV: block align %u and byte rate %u do not match "
                            "16-bit mono 8000 Hz", (unsigned)align, (unsigned)byte_rate);
    return 0;
}

int
ck_wav_parse(const uint8_t *buf, size_t len, int16_t **samples, size_t *n)
{
    const uint8_t *id, *fmt = NULL, *data = NULL;
    uint32_t riff_len, data_len = 0;
    ck_reader r;
    int16_t *out = NULL;
    size_t count;
    int rc;

    if (samples == NULL || n == NULL)
        return ck_error_set(CK_ERR_INVAL, "WAV: no output");
    *samples = NULL;
    *n = 0;
    if (buf == NULL)
        return ck_error_set(CK_ERR_INVAL, "WAV: no input");
    ck_reader_init(&r, buf, len);
    if (ck_reader_bytes(&r, 4, &id) != 0 || memcmp(id, "RIFF", 4) != 0 || le32(&r, &riff_len) != 0 ||
        ck_reader_bytes(&r, 4, &id) != 0 || memcmp(id, "WAVE", 4) != 0)
        return ck_error_set(CK_ERR_DECODE, "WAV: not a RIFF/WAVE file");
    /* The RIFF length counts from "WAVE"; bytes after it are ignored, fewer is a truncation. */
    if (riff_len < 4 || riff_len - 4 > ck_reader_remaining(&r))
        return ck_error_set(CK_ERR_DECODE, "WAV: RIFF length %u but %zu bytes in the file",
                            (unsigned)riff_len, len);
    ck_reader_init(&r, buf + 12, riff_len - 4);
    while (ck_reader_remaining(&r) > 0) {
        const uint8_t *body;
        uint32_t clen;

        if (ck_reader_bytes(&r, 4, &id) != 0 || le32(&r, &clen) != 0)
            return ck_error_set(CK_ERR_DECODE, "WAV: truncated chunk header");
        if (ck_reader_bytes(&r, clen, &body) != 0)
            return ck_error_set(CK_ERR_DECODE, "WAV: a chunk of %u bytes is truncated",
                                (unsigned)clen);
        /* Odd chunks are followed by a pad byte (RIFF); tolerate its absence at the very end. */
        if ((clen & 1) && ck_reader_remaining(&r) > 0) {
            const uint8_t *pad;

            (void)ck_reader_bytes(&r, 1, &pad);
        }
        if (memcmp(id, "fmt ", 4) == 0) {
            if (fmt != NULL)
                return ck_error_set(CK_ERR_DECODE, "WAV: two fmt chunks");
            if ((rc = check_fmt(body, clen)) != 0)
                return rc;
            fmt = body;
        } else if (memcmp(id, "data", 4) == 0) {
            if (fmt == NULL)
                return ck_error_set(CK_ERR_DECODE, "WAV: data chunk before fmt");
            if (data != NULL)
                return ck_error_set(CK_ERR_DECODE, "WAV: two data chunks");
            data = body;
            data_len = clen;
        }
    }
    if (fmt == NULL || data == NULL)
        return ck_error_set(CK_ERR_DECODE, "WAV: no %s chunk", fmt == NULL ? "fmt" : "data");
    if (data_len % 2 != 0)
        return ck_error_set(CK_ERR_DECODE, "WAV: data of %u bytes is not whole 16-bit samples",
                            (unsigned)data_len);
    count = data_len / 2;
    if (count > CK_WAV_MAX_SAMPLES)
        return ck_error_set(CK_ERR_LIMIT, "WAV: %zu samples, at most %u", count,
                            (unsigned)CK_WAV_MAX_SAMPLES);
    if ((out = malloc(count > 0 ? count * sizeof(*out) : 1)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "WAV: %zu samples", count);
    for (size_t i = 0; i < count; i++)
        out[i] = (int16_t)(uint16_t)(data[2 * i] | data[2 * i + 1] << 8);
    *samples = out;
    *n = count;
    return 0;
}

int
ck_wav_read(const char *path, int16_t **samples, size_t *n)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t got = 0;
    int fd = -1, rc;

    if (samples == NULL || n == NULL || path == NULL)
        return ck_error_set(CK_ERR_INVAL, "WAV: no file or output");
    *samples = NULL;
    *n = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = ck_error_set(errno == ENOENT ? CK_ERR_NOTFOUND : CK_ERR_IO, "%s: %s", path,
                          strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = ck_error_set(CK_ERR_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ck_error_set(CK_ERR_IO, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > WAV_MAX_FILE) {
        rc = ck_error_set(CK_ERR_LIMIT, "%s: %lld bytes, more than an hour of 8 kHz audio", path,
                          (long long)st.st_size);
        goto out;
    }
    /* One byte more than accepted, in case the file grew since fstat. */
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        rc = ck_error_set(CK_ERR_NOMEM, "%s", path);
        goto out;
    }
    if ((rc = ck_fd_read_all(fd, buf, (size_t)st.st_size + 1, &got)) != 0) {
        ck_error_set(rc, "%s: read failed (%s)", path, ck_error_context());
        goto out;
    }
    if (got > (size_t)st.st_size) {
        rc = ck_error_set(CK_ERR_IO, "%s: changed while being read", path);
        goto out;
    }
    if ((rc = ck_wav_parse(buf, got, samples, n)) != 0) {
        char ctx[256];

        ck_strlcpy(ctx, ck_error_context(), sizeof(ctx));
        rc = ck_error_set(rc, "%s: %s", path, ctx);
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

static void
put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

int
ck_wav_write(const char *path, const int16_t *samples, size_t n)
{
    uint8_t *buf;
    size_t total;
    int rc;

    if (path == NULL || (samples == NULL && n > 0))
        return ck_error_set(CK_ERR_INVAL, "WAV: no file or samples");
    if (n > CK_WAV_MAX_SAMPLES)
        return ck_error_set(CK_ERR_LIMIT, "WAV: %zu samples, at most %u", n,
                            (unsigned)CK_WAV_MAX_SAMPLES);
    total = WAV_HEADER_LEN + 2 * n;
    if ((buf = malloc(total)) == NULL)
        return ck_error_set(CK_ERR_NOMEM, "WAV: %zu samples", n);
    memcpy(buf, "RIFF", 4);
    put_le32(buf + 4, (uint32_t)(total - 8));
    memcpy(buf + 8, "WAVEfmt ", 8);
    put_le32(buf + 16, WAV_FMT_MIN);
    put_le16(buf + 20, WAV_FMT_PCM);
    put_le16(buf + 22, 1);
    put_le32(buf + 24, WAV_RATE);
    put_le32(buf + 28, 2 * WAV_RATE);
    put_le16(buf + 32, 2);
    put_le16(buf + 34, WAV_BITS);
    memcpy(buf + 36, "data", 4);
    put_le32(buf + 40, (uint32_t)(2 * n));
    for (size_t i = 0; i < n; i++)
        put_le16(buf + WAV_HEADER_LEN + 2 * i, (uint16_t)samples[i]);
    rc = ck_file_write_atomic(path, buf, total, CK_WRITE_REPLACE);
    /* ck_file_write_atomic makes new files 0600; a recording is not a secret. The chmod comes
     * after the rename, so a reader may briefly see the complete file with the stricter mode. */
    if (rc == 0 && chmod(path, 0644) != 0)
        rc = ck_error_set(CK_ERR_IO, "%s: chmod: %s", path, strerror(errno));
    free(buf);
    return rc;
}
