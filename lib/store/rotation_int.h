/* Internal helpers of service-key rotation shared by its backends (store_rotation.c,
 * sqlite_rotation.c, pg_rotation.c). Only lib/store includes this header. */
#ifndef CK_ROTATION_INT_H
#define CK_ROTATION_INT_H

#include <stddef.h>

#include "cablekey/rotation.h"

/* A policy's host list as stored: names joined by commas (a host name never holds one). */
#define CK_ROT_HOSTS_TEXT_MAX (CK_ROT_HOSTS_MAX * CK_ROT_HOST_MAX)
int ck_rot_hosts_join(const ck_rotation_policy *pol, char *buf, size_t size);
/* Fills pol->hosts/n_hosts from the stored text; CK_ERR_DB for a malformed list. */
int ck_rot_hosts_split(const char *text, ck_rotation_policy *pol);
/* Confirmation rows kept per principal: the oldest goes when a new host would exceed it. */
#define CK_ROT_CONFIRM_ROWS CK_ROT_HOSTS_MAX

#endif
