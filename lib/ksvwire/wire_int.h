/* Shared by lib/ksvwire's files; not an interface. */
#ifndef CABLEKEY_KSVWIRE_INT_H
#define CABLEKEY_KSVWIRE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cablekey/ksv_wire.h"

/* Writes the 8-byte envelope header of the given kind. */
void ck_ksvw_put_env(uint8_t *p, enum ck_ksv_kind kind);
/* Checks the envelope and that it is of kind want (CK_ERR_DECODE otherwise). */
int ck_ksvw_expect(const uint8_t *buf, size_t len, enum ck_ksv_kind want);
/* A topology name: [A-Za-z0-9][A-Za-z0-9._-]*, 1..CK_KSV_MAX_NAME bytes. */
bool ck_ksvw_name_ok(const uint8_t *s, size_t n);
/* The 64-wide replay window of a seal's receive direction. */
int ck_ksvw_replay_check(const struct ck_ksv_seal *s, uint64_t seq);
void ck_ksvw_replay_update(struct ck_ksv_seal *s, uint64_t seq);

#endif
