/* MGCP text messages (RFC 3435 §3.2 syntax, the NCS profile's subset): the first line, parameter
 * lines, the optional SDP body; observed events. The SDP body itself is lib/mgcp/sdp.c. */
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/mgcp.h"
#include "cablekey/util.h"
#include "mgcp/mgcp_int.h"

#define MGCP_NAME_MAX (sizeof(((struct ck_mgcp_param *)0)->name) - 1)
#define MGCP_TXID_DIGITS 9

bool
ck_text_is_space(char c)
{
    return c == ' ' || c == '\t';
}

bool
ck_text_is_printable(char c)
{
    return c >= 0x20 && c <= 0x7e;
}

int
ck_text_next_line(const char *buf, size_t len, size_t *pos, const char **line, size_t *llen,
                  bool *terminated)
{
    const char *start = buf + *pos, *nl;
    size_t rest = len - *pos, n;

    nl = memchr(start, '\n', rest);
    if (nl == NULL) {
        n = rest;
        *pos = len;
        *terminated = false;
    } else {
        n = (size_t)(nl - start);
        *pos += n + 1;
        *terminated = true;
        /* CRLF is the line end; a bare LF is accepted (RFC 3435 §3.1 tolerates it). */
        if (n > 0 && start[n - 1] == '\r')
            n--;
    }
    for (size_t i = 0; i < n; i++)
        if (!ck_text_is_printable(start[i]) && start[i] != '\t')
            return ck_error_set(CK_ERR_DECODE, "line %s a control character",
                                start[i] == '\r' ? "with a bare CR:" : "contains");
    *line = start;
    *llen = n;
    return 0;
}

bool
ck_text_eq_nocase(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);

    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        char x = a[i], y = b[i];

        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

int
ck_text_parse_uint(const char *s, size_t n, size_t max_digits, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > max_digits)
        return CK_ERR_DECODE;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CK_ERR_DECODE;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return CK_ERR_DECODE;
    *out = v;
    return 0;
}

/* The next whitespace-separated token of [*p, end); false at the end of the line. */
static bool
next_token(const char **p, const char *end, const char **tok, size_t *tlen)
{
    const char *s = *p;

    while (s < end && ck_text_is_space(*s))
        s++;
    if (s == end)
        return false;
    *tok = s;
    while (s < end && !ck_text_is_space(*s))
        s++;
    *tlen = (size_t)(s - *tok);
    *p = s;
    return true;
}

static bool
tok_is(const char *tok, size_t tlen, const char *lit)
{
    return tlen == strlen(lit) && memcmp(tok, lit, tlen) == 0;
}

static bool
verb_ok(const char *v, size_t n)
{
    if (n != CK_MGCP_MAX_VERB)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 'A' || v[i] > 'Z')
            return false;
    return true;
}

/* local@domain, both parts non-empty, printable without whitespace (RFC 3435 §2.1.1; the
 * wildcards '*' and '$' are ordinary characters here). */
static bool
endpoint_ok(const char *e, size_t n)
{
    const char *at;

    if (n == 0 || n >= CK_MGCP_MAX_ENDPOINT)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!ck_text_is_printable(e[i]) || e[i] == ' ')
            return false;
    at = memchr(e, '@', n);
    return at != NULL && at != e && at != e + n - 1;
}

/* One or two letters (RFC 3435's C, M, ES, RM...) or "X-" and a token (extensions). */
static bool
param_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > MGCP_NAME_MAX)
        return false;
    if (n >= 3 && (s[0] == 'X' || s[0] == 'x') && s[1] == '-') {
        for (size_t i = 2; i < n; i++) {
            char c = s[i];

            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_'))
                return false;
        }
        return true;
    }
    if (n > 2)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
            return false;
    return true;
}

/* Printable (tab allowed inside), no leading or trailing whitespace: what the parser keeps of a
 * value, so that building then parsing gives the same string. */
static bool
value_ok(const char *s, size_t n)
{
    if (n >= CK_MGCP_MAX_PARAM_VALUE)
        return false;
    if (n > 0 && (ck_text_is_space(s[0]) || ck_text_is_space(s[n - 1])))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!ck_text_is_printable(s[i]) && s[i] != '\t')
            return false;
    return true;
}

static void
trim(const char **s, size_t *n)
{
    while (*n > 0 && ck_text_is_space((*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ck_text_is_space((*s)[*n - 1]))
        (*n)--;
}

static int
parse_txid(const char *tok, size_t tlen, uint32_t *txid)
{
    uint64_t v;

    if (ck_text_parse_uint(tok, tlen, MGCP_TXID_DIGITS, CK_MGCP_MAX_TXID, &v) != 0 || v == 0)
        return ck_error_set(CK_ERR_DECODE, "MGCP: transaction id is not 1..%u",
                            CK_MGCP_MAX_TXID);
    *txid = (uint32_t)v;
    return 0;
}

static int
parse_first_line(const char *line, size_t n, struct ck_mgcp_msg *m)
{
    const char *p = line, *end = line + n, *tok;
    size_t tlen;

    if (!next_token(&p, end, &tok, &tlen))
        return ck_error_set(CK_ERR_DECODE, "MGCP: empty first line");
    if (tok[0] >= '0' && tok[0] <= '9') {
        uint64_t code;
        const char *c;
        size_t clen;

        m->is_response = true;
        if (tlen != 3 || ck_text_parse_uint(tok, tlen, 3, 999, &code) != 0 || code < 100)
            return ck_error_set(CK_ERR_DECODE, "MGCP: response code is not three digits 100..999");
        m->code = (int)code;
        if (!next_token(&p, end, &tok, &tlen))
            return ck_error_set(CK_ERR_DECODE, "MGCP: response without a transaction id");
        if (parse_txid(tok, tlen, &m->txid) != 0)
            return CK_ERR_DECODE;
        c = p;
        clen = (size_t)(end - p);
        trim(&c, &clen);
        if (clen >= sizeof(m->comment))
            return ck_error_set(CK_ERR_LIMIT, "MGCP: response text longer than %zu bytes",
                                sizeof(m->comment) - 1);
        memcpy(m->comment, c, clen);
        return 0;
    }
    if (!verb_ok(tok, tlen))
        return ck_error_set(CK_ERR_DECODE, "MGCP: verb is not four capital letters");
    memcpy(m->verb, tok, tlen);
    if (!next_token(&p, end, &tok, &tlen) || parse_txid(tok, tlen, &m->txid) != 0)
        return ck_error_set(CK_ERR_DECODE, "MGCP: command without a valid transaction id");
    if (!next_token(&p, end, &tok, &tlen))
        return ck_error_set(CK_ERR_DECODE, "MGCP: command without an endpoint");
    if (tlen >= CK_MGCP_MAX_ENDPOINT)
        return ck_error_set(CK_ERR_LIMIT, "MGCP: endpoint name longer than %d bytes",
                            CK_MGCP_MAX_ENDPOINT - 1);
    if (!endpoint_ok(tok, tlen))
        return ck_error_set(CK_ERR_DECODE, "MGCP: endpoint name is not local@domain");
    memcpy(m->endpoint, tok, tlen);
    if (!next_token(&p, end, &tok, &tlen) || !tok_is(tok, tlen, "MGCP") ||
        !next_token(&p, end, &tok, &tlen) || !tok_is(tok, tlen, "1.0"))
        return ck_error_set(CK_ERR_DECODE, "MGCP: protocol version is not MGCP 1.0");
    if (next_token(&p, end, &tok, &tlen)) {
        if (!tok_is(tok, tlen, "NCS") || !next_token(&p, end, &tok, &tlen) ||
            !tok_is(tok, tlen, "1.0"))
            return ck_error_set(CK_ERR_DECODE, "MGCP: profile is not NCS 1.0");
        if (next_token(&p, end, &tok, &tlen))
            return ck_error_set(CK_ERR_DECODE, "MGCP: trailing text after the profile");
    }
    return 0;
}

static int
parse_param(const char *line, size_t n, struct ck_mgcp_msg *m)
{
    const char *colon = memchr(line, ':', n), *v;
    size_t nlen, vlen;

    if (colon == NULL)
        return ck_error_set(CK_ERR_DECODE, "MGCP: parameter line without ':'");
    nlen = (size_t)(colon - line);
    if (!param_name_ok(line, nlen))
        return ck_error_set(CK_ERR_DECODE, "MGCP: bad parameter name");
    v = colon + 1;
    vlen = n - nlen - 1;
    trim(&v, &vlen);
    if (vlen >= CK_MGCP_MAX_PARAM_VALUE)
        return ck_error_set(CK_ERR_LIMIT, "MGCP: parameter value longer than %d bytes",
                            CK_MGCP_MAX_PARAM_VALUE - 1);
    for (size_t i = 0; i < m->n_params; i++)
        if (ck_text_eq_nocase(line, nlen, m->params[i].name))
            return ck_error_set(CK_ERR_DECODE, "MGCP: duplicate parameter %s",
                                m->params[i].name);
    if (m->n_params == CK_MGCP_MAX_PARAMS)
        return ck_error_set(CK_ERR_LIMIT, "MGCP: more than %d parameters", CK_MGCP_MAX_PARAMS);
    memcpy(m->params[m->n_params].name, line, nlen);
    memcpy(m->params[m->n_params].value, v, vlen);
    m->n_params++;
    return 0;
}

int
ck_mgcp_parse(const uint8_t *buf, size_t len, struct ck_mgcp_msg *out)
{
    const char *text = (const char *)buf, *line;
    size_t pos = 0, llen;
    bool terminated, first = true;
    int rc;

    if (out == NULL)
        return ck_error_set(CK_ERR_INVAL, "MGCP: no output");
    memset(out, 0, sizeof(*out));
    if (buf == NULL)
        return ck_error_set(CK_ERR_INVAL, "MGCP: no buffer");
    if (len > CK_MGCP_MAX_MSG)
        return ck_error_set(CK_ERR_LIMIT, "MGCP: message of %zu bytes exceeds %d", len,
                            CK_MGCP_MAX_MSG);
    if (len == 0)
        return ck_error_set(CK_ERR_DECODE, "MGCP: empty message");
    if (memchr(buf, '\0', len) != NULL) {
        rc = ck_error_set(CK_ERR_DECODE, "MGCP: NUL byte in the message");
        goto out;
    }
    while (pos < len) {
        if ((rc = ck_text_next_line(text, len, &pos, &line, &llen, &terminated)) != 0) {
            ck_error_set(rc, "MGCP: control character in a line");
            goto out;
        }
        if (!terminated) {
            rc = ck_error_set(CK_ERR_DECODE, "MGCP: last line has no line end");
            goto out;
        }
        if (first) {
            if ((rc = parse_first_line(line, llen, out)) != 0)
                goto out;
            first = false;
            continue;
        }
        if (llen == 0) {
            /* The empty line: whatever follows is the session description (RFC 3435 §3.1). */
            out->sdp_len = len - pos;
            memcpy(out->sdp, text + pos, out->sdp_len);
            out->has_sdp = out->sdp_len > 0;
            break;
        }
        if ((rc = parse_param(line, llen, out)) != 0)
            goto out;
    }
    if (first) {
        rc = ck_error_set(CK_ERR_DECODE, "MGCP: no first line");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        ck_memzero(out, sizeof(*out));
    return rc;
}

const char *
ck_mgcp_param(const struct ck_mgcp_msg *m, const char *name)
{
    if (m == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < m->n_params && i < CK_MGCP_MAX_PARAMS; i++)
        if (ck_text_eq_nocase(name, strlen(name), m->params[i].name))
            return m->params[i].value;
    return NULL;
}

/* ---- builders ---- */

void
ck_text_add(struct ck_text_buf *b, const char *s, size_t n)
{
    if (b->overflow || n >= b->size - b->len) { /* keep room for the NUL */
        b->overflow = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
ck_text_str(struct ck_text_buf *b, const char *s)
{
    ck_text_add(b, s, strlen(s));
}

void
ck_text_uint(struct ck_text_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    ck_text_add(b, tmp + i, sizeof(tmp) - i);
}

static int
check_params(const struct ck_mgcp_param *params, size_t n_params)
{
    if (n_params > CK_MGCP_MAX_PARAMS)
        return ck_error_set(CK_ERR_INVAL, "MGCP: more than %d parameters", CK_MGCP_MAX_PARAMS);
    if (n_params > 0 && params == NULL)
        return ck_error_set(CK_ERR_INVAL, "MGCP: no parameter array");
    for (size_t i = 0; i < n_params; i++) {
        size_t nlen = strnlen(params[i].name, sizeof(params[i].name));
        size_t vlen = strnlen(params[i].value, sizeof(params[i].value));

        if (nlen == sizeof(params[i].name) || !param_name_ok(params[i].name, nlen))
            return ck_error_set(CK_ERR_INVAL, "MGCP: bad parameter name");
        if (vlen == sizeof(params[i].value) || !value_ok(params[i].value, vlen))
            return ck_error_set(CK_ERR_INVAL, "MGCP: bad value for parameter %s",
                                params[i].name);
        for (size_t j = 0; j < i; j++)
            if (ck_text_eq_nocase(params[i].name, nlen, params[j].name))
                return ck_error_set(CK_ERR_INVAL, "MGCP: duplicate parameter %s",
                                    params[i].name);
    }
    return 0;
}

/* The message is assembled in a buffer of CK_MGCP_MAX_MSG bytes (and its NUL), checked, then
 * handed to the writer in one piece, so a refused message leaves the writer as it was. It may
 * hold a key: wiped. */
static int
finish(struct ck_text_buf *b, const struct ck_mgcp_param *params, size_t n_params, const char *sdp,
       ck_writer *w)
{
    int rc;

    for (size_t i = 0; i < n_params; i++) {
        ck_text_str(b, params[i].name);
        ck_text_str(b, ": ");
        ck_text_str(b, params[i].value);
        ck_text_str(b, "\r\n");
    }
    if (sdp != NULL && sdp[0] != '\0') {
        size_t n = strnlen(sdp, CK_MGCP_MAX_MSG + 1);

        ck_text_str(b, "\r\n");
        if (n > CK_MGCP_MAX_MSG)
            b->overflow = true;
        else
            ck_text_add(b, sdp, n);
    }
    if (b->overflow) {
        rc = ck_error_set(CK_ERR_LIMIT, "MGCP: message longer than %d bytes", CK_MGCP_MAX_MSG);
        goto out;
    }
    rc = ck_writer_bytes(w, b->p, b->len);
out:
    ck_memzero(b->p, b->size);
    ck_memzero(b, sizeof(*b));
    return rc;
}

int
ck_mgcp_build_command(const char *verb, uint32_t txid, const char *endpoint,
                      const struct ck_mgcp_param *params, size_t n_params, const char *sdp,
                      ck_writer *w)
{
    char data[CK_MGCP_MAX_MSG + 1];
    struct ck_text_buf b = {data, 0, sizeof(data), false};
    int rc;

    if (verb == NULL || endpoint == NULL || w == NULL)
        return ck_error_set(CK_ERR_INVAL, "MGCP: missing argument");
    if (!verb_ok(verb, strnlen(verb, CK_MGCP_MAX_VERB + 1)))
        return ck_error_set(CK_ERR_INVAL, "MGCP: verb is not four capital letters");
    if (txid == 0 || txid > CK_MGCP_MAX_TXID)
        return ck_error_set(CK_ERR_INVAL, "MGCP: transaction id %u is not 1..%u", txid,
                            CK_MGCP_MAX_TXID);
    if (!endpoint_ok(endpoint, strnlen(endpoint, CK_MGCP_MAX_ENDPOINT)))
        return ck_error_set(CK_ERR_INVAL, "MGCP: bad endpoint name");
    if ((rc = check_params(params, n_params)) != 0)
        return rc;
    data[0] = '\0';
    ck_text_str(&b, verb);
    ck_text_str(&b, " ");
    ck_text_uint(&b, txid);
    ck_text_str(&b, " ");
    ck_text_str(&b, endpoint);
    ck_text_str(&b, " MGCP 1.0 NCS 1.0\r\n");
    return finish(&b, params, n_params, sdp, w);
}

int
ck_mgcp_build_response(int code, uint32_t txid, const char *comment,
                       const struct ck_mgcp_param *params, size_t n_params, const char *sdp,
                       ck_writer *w)
{
    char data[CK_MGCP_MAX_MSG + 1];
    struct ck_text_buf b = {data, 0, sizeof(data), false};
    size_t clen;
    int rc;

    if (w == NULL)
        return ck_error_set(CK_ERR_INVAL, "MGCP: missing argument");
    if (code < 100 || code > 999)
        return ck_error_set(CK_ERR_INVAL, "MGCP: response code %d is not 100..999", code);
    if (txid == 0 || txid > CK_MGCP_MAX_TXID)
        return ck_error_set(CK_ERR_INVAL, "MGCP: transaction id %u is not 1..%u", txid,
                            CK_MGCP_MAX_TXID);
    if (comment == NULL)
        comment = "";
    clen = strnlen(comment, CK_MGCP_MAX_COMMENT);
    if (clen == CK_MGCP_MAX_COMMENT || !value_ok(comment, clen))
        return ck_error_set(CK_ERR_INVAL, "MGCP: bad response text");
    if ((rc = check_params(params, n_params)) != 0)
        return rc;
    data[0] = '\0';
    ck_text_uint(&b, (uint64_t)code);
    ck_text_str(&b, " ");
    ck_text_uint(&b, txid);
    if (clen > 0) {
        ck_text_str(&b, " ");
        ck_text_str(&b, comment);
    }
    ck_text_str(&b, "\r\n");
    return finish(&b, params, n_params, sdp, w);
}

/* ---- observed events ---- */

static bool
digit_ok(char c)
{
    return (c >= '0' && c <= '9') || c == '*' || c == '#';
}

int
ck_mgcp_parse_observed(const char *value, enum ck_mgcp_event *ev, char *digits,
                       size_t digits_size)
{
    const char *p, *end, *v;
    size_t n = 0, vlen;

    if (value == NULL || ev == NULL)
        return ck_error_set(CK_ERR_INVAL, "MGCP: missing argument");
    vlen = strnlen(value, CK_MGCP_MAX_PARAM_VALUE);
    v = value;
    trim(&v, &vlen);
    /* An event may carry its package name: "L/hd" (line package), "D/5" (DTMF). */
    if (vlen > 2 && (v[0] == 'L' || v[0] == 'l') && v[1] == '/') {
        v += 2;
        vlen -= 2;
    }
    if (ck_text_eq_nocase(v, vlen, "hd")) {
        *ev = CK_MGCP_EV_OFFHOOK;
        return 0;
    }
    if (ck_text_eq_nocase(v, vlen, "hu")) {
        *ev = CK_MGCP_EV_ONHOOK;
        return 0;
    }
    if (digits == NULL || digits_size == 0)
        return ck_error_set(CK_ERR_INVAL, "MGCP: no room for the digits");
    p = v;
    end = v + vlen;
    for (;;) {
        while (p < end && ck_text_is_space(*p))
            p++;
        if (end - p >= 2 && (p[0] == 'D' || p[0] == 'd') && p[1] == '/')
            p += 2;
        if (p == end || !digit_ok(*p))
            goto bad;
        if (n == CK_MGCP_MAX_DIGITS || n + 1 >= digits_size) {
            ck_memzero(digits, digits_size);
            return ck_error_set(CK_ERR_LIMIT, "MGCP: more than %d dialled digits",
                                CK_MGCP_MAX_DIGITS);
        }
        digits[n++] = *p++;
        while (p < end && ck_text_is_space(*p))
            p++;
        if (p == end)
            break;
        if (*p != ',')
            goto bad;
        p++;
    }
    digits[n] = '\0';
    *ev = CK_MGCP_EV_DIGITS;
    return 0;
bad:
    ck_memzero(digits, digits_size);
    return ck_error_set(CK_ERR_DECODE, "MGCP: observed event is not hd, hu or a digit list");
}

int
ck_mgcp_format_digits(const char *digits, char *out, size_t size)
{
    size_t n, o = 0;

    if (digits == NULL || out == NULL || size == 0)
        return ck_error_set(CK_ERR_INVAL, "MGCP: missing argument");
    n = strnlen(digits, CK_MGCP_MAX_DIGITS + 1);
    if (n == 0 || n > CK_MGCP_MAX_DIGITS)
        return ck_error_set(CK_ERR_INVAL, "MGCP: a number is 1..%d digits", CK_MGCP_MAX_DIGITS);
    for (size_t i = 0; i < n; i++)
        if (!digit_ok(digits[i]))
            return ck_error_set(CK_ERR_INVAL, "MGCP: '%c' is not a dialling digit",
                                ck_text_is_printable(digits[i]) ? digits[i] : '?');
    if (2 * n > size) {
        out[0] = '\0';
        return ck_error_set(CK_ERR_LIMIT, "MGCP: digit list does not fit %zu bytes", size);
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return 0;
}

void
ck_mgcp_msg_clear(struct ck_mgcp_msg *m)
{
    if (m != NULL)
        ck_memzero(m, sizeof(*m));
}
