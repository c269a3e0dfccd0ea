/* The SDP subset (RFC 4566) of a call's session description and cablekey's a=X-ck-* key
 * attributes (docs/PROTOCOL.md "Call signaling"). */
#include <arpa/inet.h>
#include <string.h>

#include <openssl/evp.h>

#include "cablekey/error.h"
#include "cablekey/mgcp.h"
#include "cablekey/util.h"
#include "mgcp/mgcp_int.h"

#define SDP_B64_KEY_LEN 44 /* base64 of 32 bytes: 43 characters and one '=' */
#define SDP_SPI_HEX 8
#define SDP_ACK_HEX (2 * CK_CALL_ACK_LEN)
#define SDP_U64_DIGITS 20

static const struct {
    enum ck_sdp_media_mode mode;
    const char *name;
} media_names[] = {
    {CK_SDP_MEDIA_RTP, "rtp"},
    {CK_SDP_MEDIA_SRTP_AES_CM, "srtp-aes-cm"},
    {CK_SDP_MEDIA_SRTP_GCM, "srtp-gcm"},
    {CK_SDP_MEDIA_RTP_3DES, "rtp-3des"},
    {CK_SDP_MEDIA_RTP_3DES_MAC, "rtp-3des-mac"},
};

const char *
ck_sdp_media_name(enum ck_sdp_media_mode m)
{
    if (m == CK_SDP_MEDIA_NONE)
        return "none";
    for (size_t i = 0; i < sizeof(media_names) / sizeof(media_names[0]); i++)
        if (media_names[i].mode == m)
            return media_names[i].name;
    return "unknown";
}

int
ck_sdp_media_parse(const char *name, enum ck_sdp_media_mode *out)
{
    if (name == NULL || out == NULL)
        return ck_error_set(CK_ERR_INVAL, "SDP: missing argument");
    for (size_t i = 0; i < sizeof(media_names) / sizeof(media_names[0]); i++)
        if (strcmp(media_names[i].name, name) == 0) {
            *out = media_names[i].mode;
            return 0;
        }
    return ck_error_set(CK_ERR_UNSUPPORTED, "SDP: unknown media mode");
}

void
ck_sdp_clear(struct ck_sdp *s)
{
    if (s != NULL)
        ck_memzero(s, sizeof(*s));
}

/* ---- parser ---- */

/* Which cablekey attributes were seen (each may appear once). */
enum {
    SEEN_V = 1 << 0,
    SEEN_O = 1 << 1,
    SEEN_S = 1 << 2,
    SEEN_C = 1 << 3,
    SEEN_T = 1 << 4,
    SEEN_M = 1 << 5,
    SEEN_SECRET = 1 << 6,
    SEEN_SPI = 1 << 7,
    SEEN_ROLE = 1 << 8,
    SEEN_MEDIA = 1 << 9,
    SEEN_IPSEC = 1 << 10,
    SEEN_SIG = 1 << 11,
    SEEN_ACK = 1 << 12,
};

struct cursor {
    const char *p, *end;
};

static bool
cur_token(struct cursor *c, const char **tok, size_t *tlen)
{
    const char *s = c->p;

    if (s == c->end || *s == ' ')
        return false;
    while (s < c->end && *s != ' ')
        s++;
    *tok = c->p;
    *tlen = (size_t)(s - c->p);
    c->p = s;
    return true;
}

/* SDP fields are separated by exactly one space (RFC 4566 §5). */
static bool
cur_space(struct cursor *c)
{
    if (c->p == c->end || *c->p != ' ')
        return false;
    c->p++;
    return true;
}

static bool
tok_eq(const char *tok, size_t tlen, const char *lit)
{
    return tlen == strlen(lit) && memcmp(tok, lit, tlen) == 0;
}

static int
hex_decode(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i += 2) {
        int hi = ck_hex_digit((unsigned char)s[i]), lo = ck_hex_digit((unsigned char)s[i + 1]);

        if (hi < 0 || lo < 0)
            return CK_ERR_DECODE;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static bool
b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* Exactly 32 bytes in canonical padded base64: 43 alphabet characters and '='. The last
 * character before the '=' carries 4 bits of key and 2 unused bits, which must be 0, so every
 * key has one spelling (and the text round-trips). EVP_DecodeBlock is given only validated
 * input; its output length counts the padding, hence 33. */
static int
parse_key(const char *s, size_t n, uint8_t key[CK_CALL_KEY_LEN])
{
    uint8_t tmp[CK_CALL_KEY_LEN + 3];
    const char *last_bits = "AEIMQUYcgkosw048";
    int rc, got;

    if (n != SDP_B64_KEY_LEN || s[n - 1] != '=')
        return ck_error_set(CK_ERR_DECODE, "SDP: X-ck-secret is not 32 bytes of base64");
    for (size_t i = 0; i < n - 1; i++)
        if (!b64_char(s[i]))
            return ck_error_set(CK_ERR_DECODE, "SDP: X-ck-secret is not base64");
    if (strchr(last_bits, s[n - 2]) == NULL)
        return ck_error_set(CK_ERR_DECODE, "SDP: X-ck-secret is not canonical base64");
    got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (got != CK_CALL_KEY_LEN + 1) {
        rc = ck_error_set(CK_ERR_DECODE, "SDP: X-ck-secret does not decode to 32 bytes");
        goto out;
    }
    memcpy(key, tmp, CK_CALL_KEY_LEN);
    rc = 0;
out:
    ck_memzero(tmp, sizeof(tmp));
    return rc;
}

static int
parse_port(const char *s, size_t n, uint16_t *port)
{
    uint64_t v;

    if (ck_text_parse_uint(s, n, 5, 65535, &v) != 0 || v == 0)
        return ck_error_set(CK_ERR_DECODE, "SDP: port is not 1..65535");
    *port = (uint16_t)v;
    return 0;
}

/* "IN IP4|IP6 <numeric address>"; the address is copied when addr is not NULL. */
static int
parse_conn(struct cursor *c, int *family, char *addr, size_t addr_size)
{
    const char *tok;
    size_t tlen;
    char tmp[64];
    uint8_t bin[16];
    int fam;

    if (!cur_token(c, &tok, &tlen) || !tok_eq(tok, tlen, "IN") || !cur_space(c) ||
        !cur_token(c, &tok, &tlen))
        return ck_error_set(CK_ERR_DECODE, "SDP: network type is not IN");
    if (tok_eq(tok, tlen, "IP4"))
        fam = 4;
    else if (tok_eq(tok, tlen, "IP6"))
        fam = 6;
    else
        return ck_error_set(CK_ERR_DECODE, "SDP: address type is not IP4 or IP6");
    if (!cur_space(c) || !cur_token(c, &tok, &tlen) || c->p != c->end)
        return ck_error_set(CK_ERR_DECODE, "SDP: bad address field");
    if (tlen >= sizeof(tmp))
        return ck_error_set(CK_ERR_DECODE, "SDP: address too long");
    memcpy(tmp, tok, tlen);
    tmp[tlen] = '\0';
    if (inet_pton(fam == 4 ? AF_INET : AF_INET6, tmp, bin) != 1)
        return ck_error_set(CK_ERR_DECODE, "SDP: address is not a numeric IP%d address", fam);
    if (family != NULL)
        *family = fam;
    if (addr != NULL)
        ck_strlcpy(addr, tmp, addr_size);
    return 0;
}

/* Decimal 0..2^64-1 (up to 20 digits; a 20-digit string compares as a number). */
static bool
parse_u64(const char *tok, size_t tlen, uint64_t *v)
{
    if (tlen == SDP_U64_DIGITS && memcmp(tok, "18446744073709551615", tlen) > 0)
        return false;
    return ck_text_parse_uint(tok, tlen, SDP_U64_DIGITS, UINT64_MAX, v) == 0;
}

/* "<username> <sess-id> <sess-version> IN IP4|IP6 <addr>": only the session id is kept. */
static int
parse_origin(struct cursor *c, struct ck_sdp *out)
{
    const char *tok;
    size_t tlen;
    uint64_t v;

    if (!cur_token(c, &tok, &tlen) || !cur_space(c) || !cur_token(c, &tok, &tlen) ||
        !parse_u64(tok, tlen, &v))
        return ck_error_set(CK_ERR_DECODE, "SDP: bad o= session id");
    out->session_id = v;
    if (!cur_space(c) || !cur_token(c, &tok, &tlen) || !parse_u64(tok, tlen, &v) ||
        !cur_space(c))
        return ck_error_set(CK_ERR_DECODE, "SDP: bad o= session version");
    return parse_conn(c, NULL, NULL, 0);
}

/* "audio <port> RTP/AVP|RTP/SAVP <fmt> ...", payload types 0..127. */
static int
parse_media(struct cursor *c, struct ck_sdp *out)
{
    const char *tok;
    size_t tlen;
    uint64_t pt;

    if (!cur_token(c, &tok, &tlen) || !tok_eq(tok, tlen, "audio") || !cur_space(c))
        return ck_error_set(CK_ERR_DECODE, "SDP: m= is not audio");
    if (!cur_token(c, &tok, &tlen) || parse_port(tok, tlen, &out->media_port) != 0)
        return ck_error_set(CK_ERR_DECODE, "SDP: m= port is not 1..65535");
    if (!cur_space(c) || !cur_token(c, &tok, &tlen))
        return ck_error_set(CK_ERR_DECODE, "SDP: m= without a transport");
    if (tok_eq(tok, tlen, "RTP/SAVP"))
        out->secure_profile = true;
    else if (!tok_eq(tok, tlen, "RTP/AVP"))
        return ck_error_set(CK_ERR_DECODE, "SDP: m= transport is not RTP/AVP or RTP/SAVP");
    do {
        if (!cur_space(c) || !cur_token(c, &tok, &tlen) ||
            ck_text_parse_uint(tok, tlen, 3, 127, &pt) != 0)
            return ck_error_set(CK_ERR_DECODE, "SDP: m= payload type is not 0..127");
    } while (c->p != c->end);
    return 0;
}

static int
parse_ck_attr(const char *name, size_t nlen, const char *v, size_t vlen, unsigned *seen,
              struct ck_sdp *out)
{
    static const struct {
        const char *name;
        unsigned bit;
    } attrs[] = {
        {"X-ck-secret", SEEN_SECRET}, {"X-ck-spi", SEEN_SPI},     {"X-ck-role", SEEN_ROLE},
        {"X-ck-media", SEEN_MEDIA},   {"X-ck-ipsec", SEEN_IPSEC}, {"X-ck-sig", SEEN_SIG},
        {"X-ck-ack", SEEN_ACK},
    };
    unsigned bit = 0;
    const char *which = NULL;

    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
        if (ck_text_eq_nocase(name, nlen, attrs[i].name)) {
            bit = attrs[i].bit;
            which = attrs[i].name;
        }
    if (bit == 0)
        return 0; /* another attribute: ignored (RFC 4566 §5.13) */
    if (*seen & bit)
        return ck_error_set(CK_ERR_DECODE, "SDP: duplicate a=%s", which);
    *seen |= bit;
    switch (bit) {
    case SEEN_SECRET:
        if (vlen < 7 || memcmp(v, "base64:", 7) != 0)
            return ck_error_set(CK_ERR_DECODE, "SDP: X-ck-secret is not base64:<key>");
        if (parse_key(v + 7, vlen - 7, out->key) != 0)
            return CK_ERR_DECODE;
        out->has_key = true;
        return 0;
    case SEEN_SPI: {
        uint8_t b[4];

        if (vlen != SDP_SPI_HEX || hex_decode(v, vlen, b) != 0)
            return ck_error_set(CK_ERR_DECODE, "SDP: X-ck-spi is not 8 hex digits");
        out->spi = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (out->spi < CK_CALL_SPI_MIN || out->spi > CK_CALL_SPI_MAX)
            return ck_error_set(CK_ERR_DECODE, "SDP: X-ck-spi 0x%08x outside 0x%08x..0x%08x",
                                out->spi, CK_CALL_SPI_MIN, CK_CALL_SPI_MAX);
        out->has_spi = true;
        return 0;
    }
    case SEEN_ROLE:
        if (tok_eq(v, vlen, "source"))
            out->role = CK_CALL_ACK_SOURCE;
        else if (tok_eq(v, vlen, "destination"))
            out->role = CK_CALL_ACK_DESTINATION;
        else
            return ck_error_set(CK_ERR_DECODE, "SDP: X-ck-role is not source or destination");
        return 0;
    case SEEN_MEDIA:
        for (size_t i = 0; i < sizeof(media_names) / sizeof(media_names[0]); i++)
            if (tok_eq(v, vlen, media_names[i].name))
                out->media = media_names[i].mode;
        if (out->media == CK_SDP_MEDIA_NONE)
            return ck_error_set(CK_ERR_DECODE, "SDP: unknown X-ck-media mode");
        return 0;
    case SEEN_IPSEC: {
        const char *sp = memchr(v, ' ', vlen);
        size_t slen = sp != NULL ? (size_t)(sp - v) : vlen;
        char suite[32];

        if (sp != NULL) {
            if (!tok_eq(sp + 1, vlen - slen - 1, "compat-seq"))
                return ck_error_set(CK_ERR_DECODE, "SDP: X-ck-ipsec option is not compat-seq");
            out->compat_seq = true;
        }
        if (slen == 0 || slen >= sizeof(suite))
            return ck_error_set(CK_ERR_DECODE, "SDP: bad X-ck-ipsec suite");
        memcpy(suite, v, slen);
        suite[slen] = '\0';
        if (ck_kmm_suite_from_short_name(CK_KMM_DOI_IPSEC, suite, &out->ipsec_suite) != 0)
            return ck_error_set(CK_ERR_DECODE, "SDP: unknown X-ck-ipsec suite");
        out->has_ipsec = true;
        return 0;
    }
    case SEEN_SIG:
        return parse_port(v, vlen, &out->sig_port);
    case SEEN_ACK:
        if (vlen != SDP_ACK_HEX || hex_decode(v, vlen, out->ack) != 0)
            return ck_error_set(CK_ERR_DECODE, "SDP: X-ck-ack is not %d hex digits",
                                SDP_ACK_HEX);
        out->has_ack = true;
        return 0;
    default:
        return ck_error_set(CK_ERR_DECODE, "SDP: internal attribute table error");
    }
}

static int
parse_attr(const char *v, size_t vlen, unsigned *seen, struct ck_sdp *out)
{
    const char *colon = memchr(v, ':', vlen);
    size_t nlen = colon != NULL ? (size_t)(colon - v) : vlen;

    if (nlen == 0)
        return ck_error_set(CK_ERR_DECODE, "SDP: a= without a name");
    if (colon == NULL)
        return 0; /* a property attribute ("a=recvonly"): none of ours */
    return parse_ck_attr(v, nlen, colon + 1, vlen - nlen - 1, seen, out);
}

static int
parse_line(const char *line, size_t llen, unsigned *seen, struct ck_sdp *out)
{
    struct cursor c;
    unsigned bit;

    if (llen < 2 || line[1] != '=')
        return ck_error_set(CK_ERR_DECODE, "SDP: line is not <type>=<value>");
    for (size_t i = 0; i < llen; i++)
        if (line[i] == '\t')
            return ck_error_set(CK_ERR_DECODE, "SDP: tab in a line");
    c.p = line + 2;
    c.end = line + llen;
    if (!(*seen & SEEN_V) && line[0] != 'v')
        return ck_error_set(CK_ERR_DECODE, "SDP: does not start with v=");
    switch (line[0]) {
    case 'v': bit = SEEN_V; break;
    case 'o': bit = SEEN_O; break;
    case 's': bit = SEEN_S; break;
    case 'c': bit = SEEN_C; break;
    case 't': bit = SEEN_T; break;
    case 'm': bit = SEEN_M; break;
    case 'a': return parse_attr(c.p, llen - 2, seen, out);
    default:
        return ck_error_set(CK_ERR_DECODE, "SDP: line type %c= not supported",
                            ck_text_is_printable(line[0]) ? line[0] : '?');
    }
    if (*seen & bit)
        return ck_error_set(CK_ERR_DECODE, "SDP: duplicate %c= line", line[0]);
    *seen |= bit;
    switch (line[0]) {
    case 'v':
        if (!tok_eq(c.p, llen - 2, "0"))
            return ck_error_set(CK_ERR_DECODE, "SDP: version is not 0");
        return 0;
    case 'o':
        return parse_origin(&c, out);
    case 'c':
        return parse_conn(&c, &out->family, out->addr, sizeof(out->addr));
    case 'm':
        return parse_media(&c, out);
    default: /* s= and t= carry nothing for us */
        return 0;
    }
}

int
ck_sdp_parse(const char *text, size_t len, struct ck_sdp *out)
{
    size_t pos = 0, llen;
    const char *line;
    bool terminated;
    unsigned seen = 0;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "SDP: no output");
    memset(out, 0, sizeof(*out));
    if (text == NULL)
        return ck_error_set(CK_ERR_INVAL, "SDP: no text");
    if (len > CK_MGCP_MAX_MSG)
        return ck_error_set(CK_ERR_LIMIT, "SDP: %zu bytes exceed %d", len, CK_MGCP_MAX_MSG);
    if (memchr(text, '\0', len) != NULL)
        return ck_error_set(CK_ERR_DECODE, "SDP: NUL byte");
    while (pos < len) {
        if ((rc = ck_text_next_line(text, len, &pos, &line, &llen, &terminated)) != 0) {
            ck_error_set(rc, "SDP: control character in a line");
            goto out;
        }
        if ((rc = parse_line(line, llen, &seen, out)) != 0)
            goto out;
    }
    if (!(seen & SEEN_V) || !(seen & SEEN_M)) {
        rc = ck_error_set(CK_ERR_DECODE, "SDP: no %s= line", (seen & SEEN_V) ? "m" : "v");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        ck_memzero(out, sizeof(*out));
        rc = rc == CK_ERR_LIMIT ? rc : CK_ERR_DECODE;
    }
    return rc;
}

/* ---- builder ---- */

static void
text_hex(struct ck_text_buf *b, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        char h[2] = {digits[p[i] >> 4], digits[p[i] & 0xf]};

        ck_text_add(b, h, 2);
    }
}

static int
check_build(const struct ck_sdp *s)
{
    uint8_t bin[16];

    if (s->family != 0) {
        if ((s->family != 4 && s->family != 6) ||
            memchr(s->addr, '\0', sizeof(s->addr)) == NULL ||
            inet_pton(s->family == 4 ? AF_INET : AF_INET6, s->addr, bin) != 1)
            return ck_error_set(CK_ERR_INVAL, "SDP: bad connection address");
    }
    if (s->media_port == 0)
        return ck_error_set(CK_ERR_INVAL, "SDP: no media port (m= is mandatory)");
    if (s->has_spi && (s->spi < CK_CALL_SPI_MIN || s->spi > CK_CALL_SPI_MAX))
        return ck_error_set(CK_ERR_INVAL, "SDP: SPI 0x%08x outside the call range", s->spi);
    if (s->role != 0 && s->role != CK_CALL_ACK_SOURCE && s->role != CK_CALL_ACK_DESTINATION)
        return ck_error_set(CK_ERR_INVAL, "SDP: bad role");
    if (s->media != CK_SDP_MEDIA_NONE && strcmp(ck_sdp_media_name(s->media), "unknown") == 0)
        return ck_error_set(CK_ERR_INVAL, "SDP: bad media mode");
    if (s->has_ipsec &&
        strcmp(ck_kmm_suite_short_name(CK_KMM_DOI_IPSEC, s->ipsec_suite), "unknown") == 0)
        return ck_error_set(CK_ERR_INVAL, "SDP: IPsec suite without a name");
    if (s->compat_seq && !s->has_ipsec)
        return ck_error_set(CK_ERR_INVAL, "SDP: compat-seq without an IPsec suite");
    return 0;
}

int
ck_sdp_build(const struct ck_sdp *s, char *buf, size_t size, size_t *len)
{
    struct ck_text_buf b = {buf, 0, size, false};
    const char *ip = "IP4", *addr = "0.0.0.0";
    int rc;

    if (s == NULL || buf == NULL || size == 0)
        return ck_error_set(CK_ERR_INVAL, "SDP: missing argument");
    buf[0] = '\0';
    if ((rc = check_build(s)) != 0)
        return rc;
    if (s->family != 0) {
        ip = s->family == 4 ? "IP4" : "IP6";
        addr = s->addr;
    }
    ck_text_str(&b, "v=0\r\no=- ");
    ck_text_uint(&b, s->session_id);
    ck_text_str(&b, " ");
    ck_text_uint(&b, s->session_id);
    ck_text_str(&b, " IN ");
    ck_text_str(&b, ip);
    ck_text_str(&b, " ");
    ck_text_str(&b, addr);
    ck_text_str(&b, "\r\ns=-\r\n");
    if (s->family != 0) {
        ck_text_str(&b, "c=IN ");
        ck_text_str(&b, ip);
        ck_text_str(&b, " ");
        ck_text_str(&b, addr);
        ck_text_str(&b, "\r\n");
    }
    ck_text_str(&b, "t=0 0\r\nm=audio ");
    ck_text_uint(&b, s->media_port);
    ck_text_str(&b, s->secure_profile ? " RTP/SAVP 0\r\n" : " RTP/AVP 0\r\n");
    ck_text_str(&b, "a=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n");
    if (s->has_key) {
        char b64[SDP_B64_KEY_LEN + 1];

        EVP_EncodeBlock((unsigned char *)b64, s->key, CK_CALL_KEY_LEN);
        ck_text_str(&b, "a=X-ck-secret:base64:");
        ck_text_add(&b, b64, SDP_B64_KEY_LEN);
        ck_text_str(&b, "\r\n");
        ck_memzero(b64, sizeof(b64));
    }
    if (s->has_spi) {
        uint8_t spi[4] = {(uint8_t)(s->spi >> 24), (uint8_t)(s->spi >> 16),
                          (uint8_t)(s->spi >> 8), (uint8_t)s->spi};

        ck_text_str(&b, "a=X-ck-spi:");
        text_hex(&b, spi, sizeof(spi));
        ck_text_str(&b, "\r\n");
    }
    if (s->role != 0) {
        ck_text_str(&b, "a=X-ck-role:");
        ck_text_str(&b, s->role == CK_CALL_ACK_SOURCE ? "source" : "destination");
        ck_text_str(&b, "\r\n");
    }
    if (s->media != CK_SDP_MEDIA_NONE) {
        ck_text_str(&b, "a=X-ck-media:");
        ck_text_str(&b, ck_sdp_media_name(s->media));
        ck_text_str(&b, "\r\n");
    }
    if (s->has_ipsec) {
        ck_text_str(&b, "a=X-ck-ipsec:");
        ck_text_str(&b, ck_kmm_suite_short_name(CK_KMM_DOI_IPSEC, s->ipsec_suite));
        ck_text_str(&b, s->compat_seq ? " compat-seq\r\n" : "\r\n");
    }
    if (s->sig_port != 0) {
        ck_text_str(&b, "a=X-ck-sig:");
        ck_text_uint(&b, s->sig_port);
        ck_text_str(&b, "\r\n");
    }
    if (s->has_ack) {
        ck_text_str(&b, "a=X-ck-ack:");
        text_hex(&b, s->ack, CK_CALL_ACK_LEN);
        ck_text_str(&b, "\r\n");
    }
    if (b.overflow || b.len > CK_MGCP_MAX_MSG) {
        ck_memzero(buf, size);
        return ck_error_set(CK_ERR_LIMIT, "SDP: does not fit %zu bytes", size);
    }
    if (len != NULL)
        *len = b.len;
    return 0;
}
