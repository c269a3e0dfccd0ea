/* Text helpers shared by the MGCP and SDP codecs (lib/mgcp only). */
#ifndef CABLEKEY_MGCP_INT_H
#define CABLEKEY_MGCP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool ck_text_is_space(char c);
bool ck_text_is_printable(char c);
/* The line at *pos (without its LF or CRLF), *pos moved past it; *terminated tells whether a LF
 * ended it. CK_ERR_DECODE for a control character other than tab inside the line (a bare CR
 * included). */
int ck_text_next_line(const char *buf, size_t len, size_t *pos, const char **line, size_t *llen,
                      bool *terminated);
/* ASCII case-insensitive equality of a (alen bytes) and the string b. */
bool ck_text_eq_nocase(const char *a, size_t alen, const char *b);
/* Decimal digits only (no sign, no space), 1..max_digits of them, value <= max. */
int ck_text_parse_uint(const char *s, size_t n, size_t max_digits, uint64_t max, uint64_t *out);

/* A text assembled in a caller's buffer of size bytes (at least 1), kept NUL-terminated: an
 * append that would not fit with its NUL sets overflow, and nothing is appended after that. */
struct ck_text_buf {
    char *p;
    size_t len, size;
    bool overflow;
};

void ck_text_add(struct ck_text_buf *b, const char *s, size_t n);
void ck_text_str(struct ck_text_buf *b, const char *s);
void ck_text_uint(struct ck_text_buf *b, uint64_t v);

#endif
