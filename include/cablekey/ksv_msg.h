/* The keying server's (KSV, issue 11, seed 001) messages between the server and a node: REGISTER
 * (the SAs a node installs, its group memberships with their path keys), DELETE (SAs to remove),
 * ACK (the node's confirmation of a message sent with ACK_REQD) and ALARM (SA_EXPIRED,
 * MALFORMED_PACKET, SERVER_CONFLICT, SIGN_FAILED). The seed carried them as private ISAKMP
 * notification types; cablekey keeps its numbers (ACK = 32768 ... ALARM = 32771) and flags
 * (REFRESH, ACK_REQD) in a fixed binary layout of its own (docs/PROTOCOL.md, "Keying server").
 * Two types are cablekey additions for group keying: GROUP_ACK (a member confirms a rekey epoch,
 * RFC 8263 style) and RECOVER (a member that missed epochs asks for its current path by unicast).
 *
 * This module is the codec only: no protection. The messages travel sealed (ksv_wire.h) under
 * keys derived from the node's Kerberos AP exchange with the KSV; the header's key_id repeats the
 * session's key id (the sealing layer checks that they agree).
 *
 * Parsing is strict and total: the declared length must equal the bytes given, every count is
 * bounded (CK_KSV_MAX_*), every enumerated field, reserved byte and flag bit is checked, and the
 * body must end exactly where the message ends. The encoder applies the same checks, so anything
 * it writes parses back to the same message, and anything the parser accepts re-encodes to the
 * same bytes.
 *
 * Errors: CK_ERR_DECODE (truncated, bad length, bad field value, trailing bytes),
 * CK_ERR_UNSUPPORTED (another version or message type), CK_ERR_LIMIT (a count or size over
 * the limits), CK_ERR_INVAL (bad arguments; for the encoder, a message the parser would refuse),
 * CK_ERR_NOMEM.
 *
 * Secrets: SA keys and group path keys live inside struct ck_ksv_msg; ck_ksv_msg_free and
 * ck_ksv_msg_clear wipe the whole structure. An encoded REGISTER holds the keys in clear: the
 * caller frees it with ck_free_secret(buf, len). */
#ifndef CABLEKEY_KSV_MSG_H
#define CABLEKEY_KSV_MSG_H

#include <stddef.h>
#include <stdint.h>

/* Message types: the seed's KEYEXCHANGE_* notification numbers. */
#define CK_KSV_ACK 32768u
#define CK_KSV_REGISTER 32769u
#define CK_KSV_DELETE 32770u
#define CK_KSV_ALARM 32771u
/* cablekey additions (node -> KSV): group id and epoch only. */
#define CK_KSV_GROUP_ACK 32772u /* the member applied this epoch's rekey */
#define CK_KSV_RECOVER 32773u   /* the member's last applied epoch; it wants its current path */

/* Header flags. REFRESH (REGISTER only): the SAs are the node's complete set; every SA from an
 * earlier registration that is not in it is deleted. ACK_REQD (REGISTER, DELETE): the node
 * answers with an ACK once the message is applied. Other bits must be zero. */
#define CK_KSV_F_REFRESH 0x0001u
#define CK_KSV_F_ACK_REQD 0x0002u

/* Alarm types. */
#define CK_KSV_ALARM_SA_EXPIRED 1u       /* an SA ran out before a re-key; the node extended it */
#define CK_KSV_ALARM_MALFORMED_PACKET 2u /* the node could not parse or apply a KSV message */
#define CK_KSV_ALARM_SERVER_CONFLICT 3u  /* two KSVs configured the same thing differently */
#define CK_KSV_ALARM_SIGN_FAILED 4u      /* a group rekey's signature did not verify */

/* SA fields. Protocol numbers are IP protocol numbers; algorithms are IKEv2 transform IDs (RFC
 * 7296 §3.3.2, IANA "Transform Type 1/3"), opaque to the codec except that 0 means none. */
#define CK_KSV_DIR_IN 1u
#define CK_KSV_DIR_OUT 2u
#define CK_KSV_PROTO_ESP 50u
#define CK_KSV_PROTO_AH 51u
#define CK_KSV_MODE_TRANSPORT 1u
#define CK_KSV_MODE_TUNNEL 2u
#define CK_KSV_AF_NONE 0u /* ALARM only: no peer concerned */
#define CK_KSV_AF_IPV4 4u
#define CK_KSV_AF_IPV6 6u

#define CK_KSV_VERSION 1u
#define CK_KSV_HDR_LEN 24u
#define CK_KSV_MIN_SPI 256u        /* SPIs 1..255 are reserved (RFC 4303 §2.1) */

/* Limits. A full REGISTER (64 SAs with two 64-byte keys, 4 groups with 33 path keys of 64
 * bytes) is about 21 KB, under CK_KSV_MAX_MSG. */
#define CK_KSV_MAX_MSG 32768u     /* bytes, the whole message */
#define CK_KSV_MAX_SAS 64u        /* SAs per REGISTER, entries per DELETE */
#define CK_KSV_MAX_GROUPS 4u      /* group memberships per REGISTER */
#define CK_KSV_MAX_DEPTH 32u      /* member ID digits (tree depth) */
#define CK_KSV_MAX_KEYS (CK_KSV_MAX_DEPTH + 1u) /* path keys per group: leaf .. root */
#define CK_KSV_MAX_KEY 64u        /* bytes per key */
#define CK_KSV_GROUP_SA_MAX_KEYS 64u /* a group SA's enc + auth key bytes (lkh_group_sa_key) */
#define CK_KSV_MIN_DEGREE 2u
#define CK_KSV_MAX_DEGREE 16u

struct ck_ksv_addr {
    uint8_t family;   /* CK_KSV_AF_*; 4 or 16 bytes of addr are used */
    uint8_t addr[16];
};

struct ck_ksv_sa {
    uint8_t direction; /* CK_KSV_DIR_*, seen from the receiving node */
    uint8_t proto;     /* CK_KSV_PROTO_* (the seed's TRANS-TYPE) */
    uint8_t mode;      /* CK_KSV_MODE_* */
    struct ck_ksv_addr peer;
    uint32_t spi;      /* >= CK_KSV_MIN_SPI; unique per receiver */
    uint16_t enc_alg;  /* ESP: non-zero (ENCR_NULL is 11); AH: 0 */
    uint16_t auth_alg; /* AH: non-zero; ESP: 0 with a combined-mode cipher */
    uint32_t life_sec; /* LIFE-SEC, > 0 */
    uint32_t life_kbytes; /* LIFE-KBYTE, 0 = no volume limit */
    uint8_t enc_key_len, auth_key_len;
    uint8_t enc_key[CK_KSV_MAX_KEY];
    uint8_t auth_key[CK_KSV_MAX_KEY];
};

/* Group keying modes and flags. */
#define CK_KSV_KEYING_LKH 0u
#define CK_KSV_KEYING_EK 1u     /* explicit keying: the group key alone (n_keys 1, level 0) */
#define CK_KSV_KEYING_HYBRID 2u
#define CK_KSV_GF_WANT_ACK 0x01u /* rekeys of this group want a GROUP_ACK */

/* One key on a member's path in the LKH tree. The key's position is the member ID's first `level`
 * digits (the seed's "X10" for the parent of "X100"): level 0 is the root (the group key),
 * level id_len the member's leaf key. `node` is the same position as a heap node id (lkh.h: root
 * 0, child c of n is n * degree + 1 + c); the codec refuses a node that does not match the
 * digits (ck_ksv_path_node computes it). */
struct ck_ksv_path_key {
    uint8_t level;
    uint8_t key_len;  /* 1..CK_KSV_MAX_KEY */
    uint32_t node;    /* LKH heap node id */
    uint32_t version; /* the key's version (lkh.h); level 0: == the group's root_version */
    uint8_t key[CK_KSV_MAX_KEY];
};

struct ck_ksv_group {
    uint32_t group_id;  /* the seed's leading "X" */
    uint64_t epoch;     /* the group's key epoch these keys belong to */
    uint32_t member_index; /* the member's stable LKH member id */
    uint32_t root_version; /* the group key's version */
    uint8_t keying;     /* CK_KSV_KEYING_* */
    uint8_t gflags;     /* CK_KSV_GF_*; other bits zero */
    struct ck_ksv_addr mcast; /* the rekey (and data) multicast address: IPv4 224/4, IPv6 ff00::/8 */
    uint16_t mcast_port;      /* non-zero */
    uint8_t sign_pub[32];     /* the KSV's Ed25519 key for this group's rekeys */
    /* The group SA (one SPI for every member, seed 3.5). Its keys are NOT sent: members derive
     * them from the group key (lkh_group_sa_key), enc key then auth key, of exactly the lengths
     * given here (an IKEv2 ID alone does not tell AES-128-GCM from AES-256-GCM). Same rules as
     * struct ck_ksv_sa's fields, and the two lengths add up to at most CK_KSV_GROUP_SA_MAX_KEYS
     * (what members can derive). */
    uint32_t spi;       /* >= CK_KSV_MIN_SPI */
    uint16_t enc_alg, auth_alg;
    uint8_t proto, mode;
    uint32_t life_sec, life_kbytes;
    uint8_t enc_key_len, auth_key_len;
    uint8_t degree;     /* tree degree, CK_KSV_MIN_DEGREE..CK_KSV_MAX_DEGREE */
    uint8_t id_len;     /* member ID digits ("ID len") */
    uint8_t member_id[CK_KSV_MAX_DEPTH]; /* branch indices from the root, each < degree */
    uint8_t n_keys;     /* "Number of Keys"; levels strictly increasing, each <= id_len */
    struct ck_ksv_path_key keys[CK_KSV_MAX_KEYS];
};

struct ck_ksv_delete {
    uint8_t direction;
    struct ck_ksv_addr peer; /* IPv4 or IPv6 */
    uint32_t spi;            /* 0: every SA with this peer in this direction */
};

struct ck_ksv_msg {
    /* Header. */
    uint16_t type;      /* CK_KSV_ACK .. CK_KSV_RECOVER */
    uint16_t flags;     /* CK_KSV_F_* allowed for the type */
    uint32_t key_id;    /* protection key (sub-key epoch); 0 = unprotected draft */
    uint32_t msg_id;    /* sender's message sequence number */
    uint64_t timestamp; /* sender's clock, microseconds since the Unix epoch */
    /* ACK: the ACK'ing node's timestamp is the header's. */
    uint64_t reflected_ts; /* the acknowledged message's timestamp */
    uint32_t acked_msg_id; /* the acknowledged message's msg_id */
    /* ALARM: the node's timestamp is the header's. */
    uint16_t alarm;        /* CK_KSV_ALARM_* */
    struct ck_ksv_addr alarm_peer; /* AF_NONE allowed */
    uint32_t alarm_spi;    /* the SA concerned (SA_EXPIRED), else 0 */
    uint32_t alarm_ref_id; /* the msg_id of the message concerned, else 0 */
    /* GROUP_ACK (the epoch applied) and RECOVER (the last epoch applied). */
    uint32_t grp_id;
    uint64_t grp_epoch;
    /* REGISTER. */
    uint8_t n_sas, n_groups;
    struct ck_ksv_sa sas[CK_KSV_MAX_SAS];
    struct ck_ksv_group groups[CK_KSV_MAX_GROUPS];
    /* DELETE. */
    uint8_t n_deletes;
    struct ck_ksv_delete deletes[CK_KSV_MAX_SAS];
};

/* A zeroed message of the given type (CK_ERR_UNSUPPORTED for another type). */
int ck_ksv_msg_new(uint16_t type, struct ck_ksv_msg **out);
/* Wipes and frees; accepts NULL. */
void ck_ksv_msg_free(struct ck_ksv_msg *m);
/* Wipes a message the caller owns (e.g. on the stack). */
void ck_ksv_msg_clear(struct ck_ksv_msg *m);

/* Appends an entry, after checking it as the parser would (CK_ERR_LIMIT when full, CK_ERR_INVAL
 * for a bad entry or the wrong message type). The entry is copied; the caller wipes its own. */
int ck_ksv_msg_add_sa(struct ck_ksv_msg *m, const struct ck_ksv_sa *sa);
int ck_ksv_msg_add_group(struct ck_ksv_msg *m, const struct ck_ksv_group *g);
int ck_ksv_msg_add_delete(struct ck_ksv_msg *m, const struct ck_ksv_delete *d);

/* Encodes m into a new buffer (*out, *out_len; free with ck_free_secret). */
int ck_ksv_msg_encode(const struct ck_ksv_msg *m, uint8_t **out, size_t *out_len);
/* Parses one whole message into a new structure (free with ck_ksv_msg_free). */
int ck_ksv_msg_parse(const uint8_t *buf, size_t len, struct ck_ksv_msg **out);

/* The heap node id (lkh.h numbering) of the path key at `level` of a member ID: CK_ERR_INVAL for
 * a level over the ID's length, a digit >= degree or a node id over 32 bits. */
int ck_ksv_path_node(uint8_t degree, const uint8_t *member_id, uint8_t level, uint32_t *node);
/* The member ID digits of an LKH leaf (heap node id) in a tree of that degree, root first (a
 * 32-bit node id never needs more than CK_KSV_MAX_DEPTH digits): CK_ERR_INVAL for a bad
 * degree. */
int ck_ksv_leaf_digits(uint8_t degree, uint32_t leaf, uint8_t member_id[CK_KSV_MAX_DEPTH],
                       uint8_t *id_len);

/* Static names for logs: "REGISTER", "SA_EXPIRED"...; "unknown" otherwise. */
const char *ck_ksv_type_name(uint16_t type);
const char *ck_ksv_alarm_name(uint16_t alarm);

#endif
