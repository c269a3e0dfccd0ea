/* PKINIT client internals shared with the unit test and the fuzz target (not public API): the
 * mechanism state behind ck_client_as_pkinit and its ck_as_mech callbacks, so a reply can be
 * processed without a network exchange. */
#ifndef CABLEKEY_PKINIT_CLIENT_INT_H
#define CABLEKEY_PKINIT_CLIENT_INT_H

#include "cablekey/pkinit_client.h"
#include "krb/client_int.h"

typedef struct ck_pkinit_client_ctx ck_pkinit_client_ctx;

/* Checks the parameters (identity, anchors, key type against the mode) and makes the state;
 * p must outlive it. */
int ck_pkinit_client_ctx_new(const ck_pkinit_client_params *p, ck_pkinit_client_ctx **out);
void ck_pkinit_client_ctx_free(ck_pkinit_client_ctx *c);
/* The ck_as_mech whose ctx is c. */
void ck_pkinit_client_mech(ck_pkinit_client_ctx *c, ck_as_mech *mech);
const ck_pkinit_client_info *ck_pkinit_client_ctx_info(const ck_pkinit_client_ctx *c);

#endif
