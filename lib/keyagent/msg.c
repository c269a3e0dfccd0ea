/* The key version service's messages (keyagent.h): the request framing and the inner encodings
 * carried in KRB-PRIV user data, on the bounded reader and writer. */
#include <string.h>

#include "cablekey/apenv.h"
#include "cablekey/error.h"
#include "cablekey/keyagent.h"
#include "cablekey/kpasswd.h"
#include "cablekey/util.h"

#define REQ_MAX (1 + 4 + 1 + CK_KEYAGENT_HOST_MAX)
#define REP_MAX                                                                            \
    (2 + 2 + CK_KEYAGENT_TEXT_MAX + 4 + 4 + 1 + 4 * CK_KEYAGENT_MAX_HELD + 1 +             \
     CK_KEYAGENT_MAX_KEYS * (4 + 4 + 2 + CK_KEY_MAX))

const char *
ck_keyagent_result_name(int code)
{
    switch (code) {
    case CK_KEYAGENT_OK: return "ok";
    case CK_KEYAGENT_MALFORMED: return "malformed request";
    case CK_KEYAGENT_HARDERROR: return "server failure";
    case CK_KEYAGENT_AUTHERROR: return "authentication failed";
    case CK_KEYAGENT_DENIED: return "denied";
    case CK_KEYAGENT_NOTFOUND: return "no such kvno";
    case CK_KEYAGENT_UNAVAILABLE: return "service unavailable";
    default: return "unknown result";
    }
}

bool
ck_keyagent_host_ok(const char *host)
{
    size_t n;

    if (host == NULL)
        return false;
    n = strnlen(host, CK_KEYAGENT_HOST_MAX + 1);
    if (n == 0 || n > CK_KEYAGENT_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

int
ck_keyagent_frame_parse(const uint8_t *msg, size_t len, ck_keyagent_frame *out)
{
    return ck_apenv_frame_parse(msg, len, CK_KEYAGENT_VERSION, "keyagent request", out);
}

int
ck_keyagent_req_encode(const ck_keyagent_req *req, uint8_t **out, size_t *out_len)
{
    ck_writer w;
    size_t hl;
    int rc;

    *out = NULL;
    *out_len = 0;
    if (req->type != CK_KEYAGENT_FETCH && req->type != CK_KEYAGENT_CONFIRM)
        return ck_error_set(CK_ERR_INVAL, "keyagent request: type %u", (unsigned)req->type);
    hl = strnlen(req->host, sizeof(req->host));
    if ((hl > 0 || req->type == CK_KEYAGENT_CONFIRM) && !ck_keyagent_host_ok(req->host))
        return ck_error_set(CK_ERR_INVAL, "keyagent request: bad host name");
    if (req->type == CK_KEYAGENT_CONFIRM && req->kvno == 0)
        return ck_error_set(CK_ERR_INVAL, "keyagent request: CONFIRM of kvno 0");
    ck_writer_init(&w, REQ_MAX, false);
    if ((rc = ck_writer_u8(&w, req->type)) != 0 || (rc = ck_writer_u32be(&w, req->kvno)) != 0 ||
        (rc = ck_writer_u8(&w, (uint8_t)hl)) != 0 ||
        (rc = ck_writer_bytes(&w, req->host, hl)) != 0) {
        ck_writer_free(&w);
        return rc;
    }
    *out = ck_writer_take(&w, out_len);
    return 0;
}

int
ck_keyagent_req_decode(const uint8_t *data, size_t len, ck_keyagent_req *out)
{
    ck_reader r;
    uint8_t hl;
    int rc;

    memset(out, 0, sizeof(*out));
    ck_reader_init(&r, data, len);
    if ((rc = ck_reader_u8(&r, &out->type)) != 0 || (rc = ck_reader_u32be(&r, &out->kvno)) != 0 ||
        (rc = ck_reader_u8(&r, &hl)) != 0 || (rc = ck_reader_copy(&r, out->host, hl)) != 0)
        return ck_error_set(CK_ERR_DECODE, "keyagent request: truncated");
    out->host[hl] = '\0';
    if (ck_reader_remaining(&r) != 0)
        return ck_error_set(CK_ERR_DECODE, "keyagent request: %zu trailing bytes",
                            ck_reader_remaining(&r));
    if (out->type != CK_KEYAGENT_FETCH && out->type != CK_KEYAGENT_CONFIRM)
        return ck_error_set(CK_ERR_DECODE, "keyagent request: unknown type %u",
                            (unsigned)out->type);
    /* strlen: a NUL inside the host would hide the bytes after it from every check. */
    if ((hl > 0 || out->type == CK_KEYAGENT_CONFIRM) &&
        (strlen(out->host) != hl || !ck_keyagent_host_ok(out->host)))
        return ck_error_set(CK_ERR_DECODE, "keyagent request: bad host name");
    if (out->type == CK_KEYAGENT_CONFIRM && out->kvno == 0)
        return ck_error_set(CK_ERR_DECODE, "keyagent request: CONFIRM of kvno 0");
    return 0;
}

int
ck_keyagent_rep_encode(const ck_keyagent_rep *rep, uint8_t **out, size_t *out_len)
{
    ck_writer w;
    size_t tl = strnlen(rep->text, sizeof(rep->text));
    int rc = 0;

    *out = NULL;
    *out_len = 0;
    if (tl > CK_KEYAGENT_TEXT_MAX)
        tl = CK_KEYAGENT_TEXT_MAX;
    if (rep->n_held > CK_KEYAGENT_MAX_HELD || rep->n_keys > CK_KEYAGENT_MAX_KEYS)
        return ck_error_set(CK_ERR_LIMIT, "keyagent reply: %zu kvnos, %zu keys", rep->n_held,
                            rep->n_keys);
    /* Secret: the writer wipes what it reallocates and frees. */
    ck_writer_init(&w, REP_MAX, true);
    if ((rc = ck_apenv_result_write(&w, rep->result, rep->text, tl)) != 0 ||
        (rc = ck_writer_u32be(&w, rep->current_kvno)) != 0 ||
        (rc = ck_writer_u32be(&w, rep->staged_kvno)) != 0 ||
        (rc = ck_writer_u8(&w, (uint8_t)rep->n_held)) != 0)
        goto out;
    for (size_t i = 0; i < rep->n_held; i++)
        if ((rc = ck_writer_u32be(&w, rep->held[i])) != 0)
            goto out;
    if ((rc = ck_writer_u8(&w, (uint8_t)rep->n_keys)) != 0)
        goto out;
    for (size_t i = 0; i < rep->n_keys; i++) {
        const ck_keyagent_key *k = &rep->keys[i];
        if ((rc = ck_writer_u32be(&w, k->kvno)) != 0 ||
            (rc = ck_writer_u32be(&w, (uint32_t)k->key.enctype)) != 0 ||
            (rc = ck_writer_u16be(&w, (uint16_t)k->key.length)) != 0 ||
            (rc = ck_writer_bytes(&w, k->key.contents, k->key.length)) != 0)
            goto out;
    }
    *out = ck_writer_take(&w, out_len);
out:
    ck_writer_free(&w);
    return rc;
}

int
ck_keyagent_rep_decode(const uint8_t *data, size_t len, ck_keyagent_rep *out)
{
    ck_reader r;
    uint16_t kl;
    uint8_t n;
    const uint8_t *p;
    int rc;

    memset(out, 0, sizeof(*out));
    ck_reader_init(&r, data, len);
    if ((rc = ck_apenv_result_read(&r, CK_KEYAGENT_TEXT_MAX, &out->result, out->text,
                                   "keyagent reply")) != 0)
        goto out;
    if ((rc = ck_reader_u32be(&r, &out->current_kvno)) != 0 ||
        (rc = ck_reader_u32be(&r, &out->staged_kvno)) != 0 || (rc = ck_reader_u8(&r, &n)) != 0)
        goto trunc;
    if (n > CK_KEYAGENT_MAX_HELD) {
        rc = ck_error_set(CK_ERR_DECODE, "keyagent reply: %u kvnos listed", (unsigned)n);
        goto out;
    }
    for (out->n_held = 0; out->n_held < n; out->n_held++)
        if ((rc = ck_reader_u32be(&r, &out->held[out->n_held])) != 0)
            goto trunc;
    if ((rc = ck_reader_u8(&r, &n)) != 0)
        goto trunc;
    if (n > CK_KEYAGENT_MAX_KEYS) {
        rc = ck_error_set(CK_ERR_DECODE, "keyagent reply: %u keys", (unsigned)n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        ck_keyagent_key *k = &out->keys[i];
        uint32_t et;

        if ((rc = ck_reader_u32be(&r, &k->kvno)) != 0 || (rc = ck_reader_u32be(&r, &et)) != 0 ||
            (rc = ck_reader_u16be(&r, &kl)) != 0 || (rc = ck_reader_bytes(&r, kl, &p)) != 0)
            goto trunc;
        if (k->kvno == 0 || !ck_enctype_is_supported((int32_t)et)) {
            rc = ck_error_set(CK_ERR_DECODE, "keyagent reply: key %zu: kvno %u enctype %d", i,
                              k->kvno, (int)(int32_t)et);
            goto out;
        }
        if ((rc = ck_key_init(&k->key, (int32_t)et, p, kl)) != 0) {
            rc = ck_error_set(CK_ERR_DECODE, "keyagent reply: key %zu: %u bytes for enctype %d",
                              i, (unsigned)kl, (int)(int32_t)et);
            goto out;
        }
        out->n_keys = i + 1;
    }
    if (ck_reader_remaining(&r) != 0) {
        rc = ck_error_set(CK_ERR_DECODE, "keyagent reply: %zu trailing bytes",
                          ck_reader_remaining(&r));
        goto out;
    }
    return 0;
trunc:
    rc = ck_error_set(CK_ERR_DECODE, "keyagent reply: truncated");
out:
    ck_keyagent_rep_clear(out);
    return rc;
}

void
ck_keyagent_rep_clear(ck_keyagent_rep *rep)
{
    if (rep == NULL)
        return;
    for (size_t i = 0; i < CK_KEYAGENT_MAX_KEYS; i++)
        ck_key_clear(&rep->keys[i].key);
    ck_memzero(rep, sizeof(*rep));
}
