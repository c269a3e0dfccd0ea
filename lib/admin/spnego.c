/* HTTP Negotiate (SPNEGO, RFC 4559) on the accepting side, with MIT GSSAPI: shared by
 * cablekey-admind and cablekey-prov (both fronts accept operators' Kerberos tickets for
 * HTTP/<host>). The service keys are copied from the keytab file into a MEMORY keytab of the
 * process, so that the front needs no file access for them once it has dropped privileges. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "admin/spnego.h"
#include "cablekey/error.h"
#include "cablekey/principal.h"

static void
gss_error(const char *what, OM_uint32 major, OM_uint32 minor, char *out, size_t size)
{
    OM_uint32 min, ctx = 0;
    gss_buffer_desc msg = GSS_C_EMPTY_BUFFER;
    size_t n;

    n = (size_t)snprintf(out, size, "%s", what);
    /* The minor (mechanism) status says why: wrong key, skew, replay... */
    if (minor != 0 && gss_display_status(&min, minor, GSS_C_MECH_CODE, GSS_C_NO_OID, &ctx,
                                         &msg) == GSS_S_COMPLETE) {
        if (n < size)
            snprintf(out + n, size - n, ": %.*s", (int)msg.length, (const char *)msg.value);
        gss_release_buffer(&min, &msg);
    } else if (gss_display_status(&min, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &msg) ==
               GSS_S_COMPLETE) {
        if (n < size)
            snprintf(out + n, size - n, ": %.*s", (int)msg.length, (const char *)msg.value);
        gss_release_buffer(&min, &msg);
    }
}

static int
krb5_fail(krb5_context kctx, krb5_error_code ret, const char *what, const char *keytab)
{
    const char *msg = kctx != NULL ? krb5_get_error_message(kctx, ret) : NULL;
    int rc = ck_error_set(CK_ERR_CONFIG, "keytab %s: %s: %s", keytab, what,
                          msg != NULL ? msg : "krb5 error");

    if (msg != NULL)
        krb5_free_error_message(kctx, msg);
    return rc;
}

void
ck_spnego_acceptor_free(struct ck_spnego_acceptor *a)
{
    OM_uint32 minor;

    if (a->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&minor, &a->cred);
    if (a->mem != NULL)
        krb5_kt_close(a->kctx, a->mem);
    if (a->kctx != NULL)
        krb5_free_context(a->kctx);
    memset(a, 0, sizeof(*a));
}

int
ck_spnego_acceptor_init(const char *keytab, const char *label, struct ck_spnego_acceptor *a)
{
    char memname[64], why[256];
    krb5_keytab file = NULL;
    krb5_kt_cursor cur;
    krb5_keytab_entry ent;
    krb5_error_code ret;
    size_t n = 0;
    OM_uint32 major, minor;
    int rc;

    memset(a, 0, sizeof(*a));
    a->cred = GSS_C_NO_CREDENTIAL;
    if (access(keytab, R_OK) != 0)
        return ck_error_set(CK_ERR_IO, "keytab %s: %s", keytab, strerror(errno));
    snprintf(memname, sizeof(memname), "MEMORY:%s-%ld", label, (long)getpid());
    if ((ret = krb5_init_context(&a->kctx)) != 0) {
        a->kctx = NULL;
        return krb5_fail(NULL, ret, "krb5_init_context", keytab);
    }
    if ((ret = krb5_kt_resolve(a->kctx, keytab, &file)) != 0) {
        rc = krb5_fail(a->kctx, ret, "open", keytab);
        goto fail;
    }
    if ((ret = krb5_kt_resolve(a->kctx, memname, &a->mem)) != 0) {
        rc = krb5_fail(a->kctx, ret, "memory keytab", keytab);
        goto fail;
    }
    if ((ret = krb5_kt_start_seq_get(a->kctx, file, &cur)) != 0) {
        rc = krb5_fail(a->kctx, ret, "read", keytab);
        goto fail;
    }
    while ((ret = krb5_kt_next_entry(a->kctx, file, &ent, &cur)) == 0) {
        krb5_error_code r2 = krb5_kt_add_entry(a->kctx, a->mem, &ent);
        krb5_free_keytab_entry_contents(a->kctx, &ent);
        if (r2 != 0) {
            ret = r2;
            break;
        }
        n++;
    }
    krb5_kt_end_seq_get(a->kctx, file, &cur);
    if (ret != KRB5_KT_END) {
        rc = krb5_fail(a->kctx, ret, "read", keytab);
        goto fail;
    }
    if (n == 0) {
        rc = ck_error_set(CK_ERR_CONFIG, "keytab %s: holds no keys", keytab);
        goto fail;
    }
    {
        gss_key_value_element_desc el = {.key = "keytab", .value = memname};
        gss_key_value_set_desc store = {.count = 1, .elements = &el};

        major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
                                      GSS_C_ACCEPT, &store, &a->cred, NULL, NULL);
    }
    if (GSS_ERROR(major)) {
        gss_error("acquiring acceptor credentials", major, minor, why, sizeof(why));
        rc = ck_error_set(CK_ERR_CONFIG, "keytab %s: %s", keytab, why);
        goto fail;
    }
    krb5_kt_close(a->kctx, file);
    return 0;
fail:
    if (file != NULL)
        krb5_kt_close(a->kctx, file);
    ck_spnego_acceptor_free(a);
    return rc;
}

int
ck_spnego_b64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    unsigned char *buf;
    int n;

    /* Padding only at the end: "x=y=" is not base64. */
    if (len == 0 || len % 4 != 0 || len > CK_SPNEGO_MAX_TOKEN || strcspn(in, "=") < len - 2 ||
        (in[len - 2] == '=' && in[len - 1] != '='))
        return -1;
    if ((buf = malloc(len / 4 * 3 + 1)) == NULL)
        return -1;
    if ((n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len)) < 0) {
        free(buf);
        return -1;
    }
    /* EVP_DecodeBlock counts the padding as data. */
    if (in[len - 1] == '=')
        n--;
    if (in[len - 2] == '=')
        n--;
    *out = buf;
    *out_len = (size_t)n;
    return 0;
}

char *
ck_spnego_b64_encode(const void *in, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);

    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

int
ck_spnego_accept(struct ck_spnego_acceptor *a, const char *h, char **who, char **mutual,
                 char *why, size_t why_size)
{
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER, dn = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    OM_uint32 major, minor, flags = 0;
    unsigned char *tok = NULL;
    size_t tok_len;
    int rc = -1;

    *who = *mutual = NULL;
    if (h == NULL || strncasecmp(h, "Negotiate ", 10) != 0)
        return 1;
    h += 10;
    while (*h == ' ')
        h++;
    if (ck_spnego_b64_decode(h, strlen(h), &tok, &tok_len) != 0) {
        snprintf(why, why_size, "malformed Negotiate token");
        return -1;
    }
    in.value = tok;
    in.length = tok_len;
    major = gss_accept_sec_context(&minor, &ctx, a->cred, &in, GSS_C_NO_CHANNEL_BINDINGS, &src,
                                   NULL, &out, &flags, NULL, NULL);
    if (major == GSS_S_CONTINUE_NEEDED) {
        /* Kerberos finishes in one round; a mechanism that needs more (NTLM) is not offered. */
        snprintf(why, why_size, "multi-round negotiation is not supported");
        goto out;
    }
    if (GSS_ERROR(major)) {
        gss_error("Negotiate", major, minor, why, why_size);
        goto out;
    }
    if (flags & GSS_C_ANON_FLAG) {
        snprintf(why, why_size, "anonymous principals are not accepted");
        goto out;
    }
    if (GSS_ERROR(gss_display_name(&minor, src, &dn, NULL)) || dn.length == 0 ||
        dn.length > CK_PRINCIPAL_MAX_TEXT || memchr(dn.value, '\0', dn.length) != NULL) {
        snprintf(why, why_size, "cannot name the client principal");
        goto out;
    }
    if ((*who = strndup(dn.value, dn.length)) == NULL)
        goto out;
    if (out.length > 0 && (*mutual = ck_spnego_b64_encode(out.value, out.length)) == NULL) {
        free(*who);
        *who = NULL;
        goto out;
    }
    rc = 0;
out:
    gss_release_buffer(&minor, &out);
    gss_release_buffer(&minor, &dn);
    gss_release_name(&minor, &src);
    if (ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
    free(tok);
    return rc;
}
