/* Keying server messages (contract: cablekey/ksv_msg.h; layout: docs/PROTOCOL.md, "Keying
 * server", "Messages").
 *
 * One set of checks (check_*) serves both directions: the parser runs them on what it read
 * (refusing with CK_ERR_DECODE), the encoder on what it was given (refusing with CK_ERR_INVAL),
 * so the encoder cannot produce bytes the parser refuses. Counts over a limit are CK_ERR_LIMIT
 * either way. The parser fills a zeroed structure field by field and the encoder writes the
 * same fields in the same order, which makes parse(encode(m)) == m and encode(parse(b)) == b. */
#include <stdlib.h>
#include <string.h>

#include "cablekey/error.h"
#include "cablekey/ksv_msg.h"
#include "cablekey/util.h"

static uint16_t
allowed_flags(uint16_t type)
{
    switch (type) {
    case CK_KSV_REGISTER:
        return CK_KSV_F_REFRESH | CK_KSV_F_ACK_REQD;
    case CK_KSV_DELETE:
        return CK_KSV_F_ACK_REQD;
    default:
        return 0;
    }
}

static bool
known_type(uint16_t type)
{
    return type >= CK_KSV_ACK && type <= CK_KSV_RECOVER;
}

static bool
group_type(uint16_t type)
{
    return type == CK_KSV_GROUP_ACK || type == CK_KSV_RECOVER;
}

const char *
ck_ksv_type_name(uint16_t type)
{
    switch (type) {
    case CK_KSV_ACK:
        return "ACK";
    case CK_KSV_REGISTER:
        return "REGISTER";
    case CK_KSV_DELETE:
        return "DELETE";
    case CK_KSV_ALARM:
        return "ALARM";
    case CK_KSV_GROUP_ACK:
        return "GROUP_ACK";
    case CK_KSV_RECOVER:
        return "RECOVER";
    default:
        return "unknown";
    }
}

const char *
ck_ksv_alarm_name(uint16_t alarm)
{
    switch (alarm) {
    case CK_KSV_ALARM_SA_EXPIRED:
        return "SA_EXPIRED";
    case CK_KSV_ALARM_MALFORMED_PACKET:
        return "MALFORMED_PACKET";
    case CK_KSV_ALARM_SERVER_CONFLICT:
        return "SERVER_CONFLICT";
    case CK_KSV_ALARM_SIGN_FAILED:
        return "SIGN_FAILED";
    default:
        return "unknown";
    }
}

static size_t
addr_len(uint8_t family)
{
    return family == CK_KSV_AF_IPV4 ? 4 : family == CK_KSV_AF_IPV6 ? 16 : 0;
}

/* The unused tail of an address must be zero, or two messages with equal wire bytes would
 * differ in memory (and the round trip would not be exact). */
static int
check_addr(const struct ck_ksv_addr *a, bool none_ok, int err, const char *what)
{
    size_t n = addr_len(a->family);

    if (a->family != CK_KSV_AF_IPV4 && a->family != CK_KSV_AF_IPV6 &&
        !(none_ok && a->family == CK_KSV_AF_NONE))
        return ck_error_set(err, "KSV %s: address family %u", what, a->family);
    for (size_t i = n; i < sizeof(a->addr); i++)
        if (a->addr[i] != 0)
            return ck_error_set(err, "KSV %s: bytes beyond the address", what);
    return 0;
}

/* What a link SA and a group SA share: protocol, mode, SPI, algorithms, lifetime. */
static int
check_xform(uint8_t proto, uint8_t mode, uint32_t spi, uint16_t enc_alg, uint16_t auth_alg,
            uint32_t life_sec, int err, const char *what)
{
    if (proto != CK_KSV_PROTO_ESP && proto != CK_KSV_PROTO_AH)
        return ck_error_set(err, "KSV %s: protocol %u", what, proto);
    if (mode != CK_KSV_MODE_TRANSPORT && mode != CK_KSV_MODE_TUNNEL)
        return ck_error_set(err, "KSV %s: mode %u", what, mode);
    if (spi < CK_KSV_MIN_SPI)
        return ck_error_set(err, "KSV %s: SPI %u is reserved", what, spi);
    if (proto == CK_KSV_PROTO_AH && (enc_alg != 0 || auth_alg == 0))
        return ck_error_set(err, "KSV %s: AH takes an integrity algorithm only", what);
    if (proto == CK_KSV_PROTO_ESP && enc_alg == 0)
        return ck_error_set(err, "KSV %s: ESP without an encryption algorithm", what);
    if (life_sec == 0)
        return ck_error_set(err, "KSV %s: zero lifetime", what);
    return 0;
}

static int
check_sa(const struct ck_ksv_sa *sa, int err)
{
    int ret;

    if (sa->direction != CK_KSV_DIR_IN && sa->direction != CK_KSV_DIR_OUT)
        return ck_error_set(err, "KSV SA: direction %u", sa->direction);
    if (sa->proto != CK_KSV_PROTO_ESP && sa->proto != CK_KSV_PROTO_AH)
        return ck_error_set(err, "KSV SA: protocol %u", sa->proto);
    if ((ret = check_addr(&sa->peer, false, err, "SA peer")) != 0)
        return ret;
    if (sa->enc_key_len > CK_KSV_MAX_KEY || sa->auth_key_len > CK_KSV_MAX_KEY)
        return ck_error_set(CK_ERR_LIMIT, "KSV SA: key over %u bytes", CK_KSV_MAX_KEY);
    if ((ret = check_xform(sa->proto, sa->mode, sa->spi, sa->enc_alg, sa->auth_alg, sa->life_sec,
                           err, "SA")) != 0)
        return ret;
    if (sa->proto == CK_KSV_PROTO_AH && sa->enc_key_len != 0)
        return ck_error_set(err, "KSV SA: AH takes an integrity algorithm and key only");
    if ((sa->auth_alg == 0) != (sa->auth_key_len == 0))
        return ck_error_set(err, "KSV SA: integrity key and algorithm must come together");
    for (size_t i = sa->enc_key_len; i < CK_KSV_MAX_KEY; i++)
        if (sa->enc_key[i] != 0)
            return ck_error_set(err, "KSV SA: bytes beyond the encryption key");
    for (size_t i = sa->auth_key_len; i < CK_KSV_MAX_KEY; i++)
        if (sa->auth_key[i] != 0)
            return ck_error_set(err, "KSV SA: bytes beyond the integrity key");
    return 0;
}

int
ck_ksv_path_node(uint8_t degree, const uint8_t *member_id, uint8_t level, uint32_t *node)
{
    uint64_t n = 0;

    if (node == NULL || (member_id == NULL && level > 0) || degree < CK_KSV_MIN_DEGREE ||
        degree > CK_KSV_MAX_DEGREE || level > CK_KSV_MAX_DEPTH)
        return ck_error_set(CK_ERR_INVAL, "KSV path node: bad arguments");
    for (size_t i = 0; i < level; i++) {
        if (member_id[i] >= degree)
            return ck_error_set(CK_ERR_INVAL, "KSV path node: digit %u >= degree %u",
                                member_id[i], degree);
        n = n * degree + 1 + member_id[i];
        if (n > UINT32_MAX)
            return ck_error_set(CK_ERR_INVAL, "KSV path node: level %u is past 32-bit node ids",
                                level);
    }
    *node = (uint32_t)n;
    return 0;
}

int
ck_ksv_leaf_digits(uint8_t degree, uint32_t leaf, uint8_t member_id[CK_KSV_MAX_DEPTH],
                   uint8_t *id_len)
{
    uint8_t rev[CK_KSV_MAX_DEPTH];
    size_t n = 0;

    if (member_id == NULL || id_len == NULL || degree < CK_KSV_MIN_DEGREE ||
        degree > CK_KSV_MAX_DEGREE)
        return ck_error_set(CK_ERR_INVAL, "KSV leaf digits: bad arguments");
    while (leaf != 0) {
        if (n == CK_KSV_MAX_DEPTH)
            return ck_error_set(CK_ERR_LIMIT, "KSV leaf %u: deeper than %u levels", leaf,
                                CK_KSV_MAX_DEPTH);
        rev[n++] = (uint8_t)((leaf - 1) % degree);
        leaf = (leaf - 1) / degree;
    }
    memset(member_id, 0, CK_KSV_MAX_DEPTH);
    for (size_t i = 0; i < n; i++)
        member_id[i] = rev[n - 1 - i];
    *id_len = (uint8_t)n;
    return 0;
}

static bool
multicast_addr(const struct ck_ksv_addr *a)
{
    return (a->family == CK_KSV_AF_IPV4 && (a->addr[0] & 0xf0) == 0xe0) ||
           (a->family == CK_KSV_AF_IPV6 && a->addr[0] == 0xff);
}

static int
check_group(const struct ck_ksv_group *g, int err)
{
    int ret;

    if (g->keying > CK_KSV_KEYING_HYBRID)
        return ck_error_set(err, "KSV group %u: keying %u", g->group_id, g->keying);
    if (g->gflags & ~CK_KSV_GF_WANT_ACK)
        return ck_error_set(err, "KSV group %u: flags 0x%02x", g->group_id, g->gflags);
    if ((ret = check_addr(&g->mcast, false, err, "group address")) != 0)
        return ret;
    if (!multicast_addr(&g->mcast) || g->mcast_port == 0)
        return ck_error_set(err, "KSV group %u: not a multicast address and port", g->group_id);
    if ((ret = check_xform(g->proto, g->mode, g->spi, g->enc_alg, g->auth_alg, g->life_sec, err,
                           "group SA")) != 0)
        return ret;
    if (g->enc_key_len > CK_KSV_MAX_KEY || g->auth_key_len > CK_KSV_MAX_KEY)
        return ck_error_set(CK_ERR_LIMIT, "KSV group %u: group SA key over %u bytes", g->group_id,
                            CK_KSV_MAX_KEY);
    if (g->proto == CK_KSV_PROTO_AH && g->enc_key_len != 0)
        return ck_error_set(err, "KSV group %u: AH group SA with an encryption key", g->group_id);
    if ((g->auth_alg == 0) != (g->auth_key_len == 0))
        return ck_error_set(err, "KSV group %u: group SA integrity key and algorithm must come "
                            "together", g->group_id);
    /* Members derive both keys from one lkh_group_sa_key output: more could not be derived. */
    if ((unsigned)g->enc_key_len + g->auth_key_len > CK_KSV_GROUP_SA_MAX_KEYS)
        return ck_error_set(err, "KSV group %u: group SA keys of %u + %u bytes over %u",
                            g->group_id, g->enc_key_len, g->auth_key_len,
                            CK_KSV_GROUP_SA_MAX_KEYS);
    if (g->degree < CK_KSV_MIN_DEGREE || g->degree > CK_KSV_MAX_DEGREE)
        return ck_error_set(err, "KSV group %u: degree %u", g->group_id, g->degree);
    if (g->id_len > CK_KSV_MAX_DEPTH)
        return ck_error_set(CK_ERR_LIMIT, "KSV group %u: member ID of %u digits", g->group_id,
                            g->id_len);
    if (g->n_keys > CK_KSV_MAX_KEYS)
        return ck_error_set(CK_ERR_LIMIT, "KSV group %u: %u path keys", g->group_id, g->n_keys);
    for (size_t i = 0; i < CK_KSV_MAX_DEPTH; i++)
        if (i < g->id_len ? g->member_id[i] >= g->degree : g->member_id[i] != 0)
            return ck_error_set(err, "KSV group %u: member ID digit %zu", g->group_id, i);
    for (size_t i = 0; i < CK_KSV_MAX_KEYS; i++) {
        const struct ck_ksv_path_key *k = &g->keys[i];
        if (i >= g->n_keys) {
            /* Unused slots stay zero (see check_addr). */
            if (k->level != 0 || k->key_len != 0 || k->node != 0 || k->version != 0 ||
                k->key[0] != 0 ||
                memcmp(k->key, k->key + 1, sizeof(k->key) - 1) != 0)
                return ck_error_set(err, "KSV group %u: data in unused key slot %zu",
                                    g->group_id, i);
            continue;
        }
        uint32_t node = 0;
        if (k->level > g->id_len || (i > 0 && k->level <= g->keys[i - 1].level))
            return ck_error_set(err, "KSV group %u: path key levels must increase within the ID",
                                g->group_id);
        if (ck_ksv_path_node(g->degree, g->member_id, k->level, &node) != 0 || node != k->node)
            return ck_error_set(err, "KSV group %u: path key node %u is not level %u of the ID",
                                g->group_id, k->node, k->level);
        if (k->level == 0 && k->version != g->root_version)
            return ck_error_set(err, "KSV group %u: group key version %u, root version %u",
                                g->group_id, k->version, g->root_version);
        if (k->key_len == 0)
            return ck_error_set(err, "KSV group %u: empty path key", g->group_id);
        if (k->key_len > CK_KSV_MAX_KEY)
            return ck_error_set(CK_ERR_LIMIT, "KSV group %u: key over %u bytes", g->group_id,
                                CK_KSV_MAX_KEY);
        for (size_t j = k->key_len; j < CK_KSV_MAX_KEY; j++)
            if (k->key[j] != 0)
                return ck_error_set(err, "KSV group %u: bytes beyond a path key", g->group_id);
    }
    if (g->keying == CK_KSV_KEYING_EK && (g->n_keys != 1 || g->keys[0].level != 0))
        return ck_error_set(err, "KSV group %u: explicit keying sends the group key alone",
                            g->group_id);
    return 0;
}

static int
check_delete(const struct ck_ksv_delete *d, int err)
{
    int ret;

    if (d->direction != CK_KSV_DIR_IN && d->direction != CK_KSV_DIR_OUT)
        return ck_error_set(err, "KSV DELETE: direction %u", d->direction);
    if ((ret = check_addr(&d->peer, false, err, "DELETE peer")) != 0)
        return ret;
    if (d->spi != 0 && d->spi < CK_KSV_MIN_SPI)
        return ck_error_set(err, "KSV DELETE: SPI %u is reserved", d->spi);
    return 0;
}

/* The whole message, entries included, and that fields of other types are unused (zero). */
static int
check_msg(const struct ck_ksv_msg *m, int err)
{
    int ret;

    if (!known_type(m->type))
        return ck_error_set(err == CK_ERR_DECODE ? CK_ERR_UNSUPPORTED : err,
                            "KSV message type %u", m->type);
    if (m->flags & ~allowed_flags(m->type))
        return ck_error_set(err, "KSV %s: flags 0x%04x", ck_ksv_type_name(m->type), m->flags);
    if (m->n_sas > CK_KSV_MAX_SAS || m->n_deletes > CK_KSV_MAX_SAS ||
        m->n_groups > CK_KSV_MAX_GROUPS)
        return ck_error_set(CK_ERR_LIMIT, "KSV %s: too many entries", ck_ksv_type_name(m->type));
    if (m->type != CK_KSV_REGISTER && (m->n_sas != 0 || m->n_groups != 0))
        return ck_error_set(err, "KSV %s: SAs or groups outside REGISTER",
                            ck_ksv_type_name(m->type));
    if (m->type != CK_KSV_DELETE && m->n_deletes != 0)
        return ck_error_set(err, "KSV %s: deletions outside DELETE", ck_ksv_type_name(m->type));
    if (m->type != CK_KSV_ACK && (m->reflected_ts != 0 || m->acked_msg_id != 0))
        return ck_error_set(err, "KSV %s: ACK fields set", ck_ksv_type_name(m->type));
    if (!group_type(m->type) && (m->grp_id != 0 || m->grp_epoch != 0))
        return ck_error_set(err, "KSV %s: GROUP_ACK/RECOVER fields set",
                            ck_ksv_type_name(m->type));
    if (m->type == CK_KSV_ALARM) {
        if (m->alarm < CK_KSV_ALARM_SA_EXPIRED || m->alarm > CK_KSV_ALARM_SIGN_FAILED)
            return ck_error_set(err, "KSV ALARM: alarm type %u", m->alarm);
        if ((ret = check_addr(&m->alarm_peer, true, err, "ALARM peer")) != 0)
            return ret;
    } else if (m->alarm != 0 || m->alarm_peer.family != 0 || m->alarm_spi != 0 ||
               m->alarm_ref_id != 0 || check_addr(&m->alarm_peer, true, err, "peer") != 0) {
        return ck_error_set(err, "KSV %s: ALARM fields set", ck_ksv_type_name(m->type));
    }
    if (m->type == CK_KSV_DELETE && m->n_deletes == 0)
        return ck_error_set(err, "KSV DELETE: no entry");
    for (size_t i = 0; i < m->n_sas; i++) {
        if ((ret = check_sa(&m->sas[i], err)) != 0)
            return ret;
        /* An inbound SPI names one SA at this receiver (seed 3.2.1). */
        for (size_t j = 0; j < i; j++)
            if (m->sas[i].direction == CK_KSV_DIR_IN && m->sas[j].direction == CK_KSV_DIR_IN &&
                m->sas[i].spi == m->sas[j].spi)
                return ck_error_set(err, "KSV REGISTER: inbound SPI %u twice", m->sas[i].spi);
    }
    for (size_t i = 0; i < m->n_groups; i++) {
        if ((ret = check_group(&m->groups[i], err)) != 0)
            return ret;
        for (size_t j = 0; j < i; j++)
            if (m->groups[i].group_id == m->groups[j].group_id)
                return ck_error_set(err, "KSV REGISTER: group %u twice", m->groups[i].group_id);
    }
    for (size_t i = 0; i < m->n_deletes; i++)
        if ((ret = check_delete(&m->deletes[i], err)) != 0)
            return ret;
    return 0;
}

int
ck_ksv_msg_new(uint16_t type, struct ck_ksv_msg **out)
{
    struct ck_ksv_msg *m;

    *out = NULL;
    if (!known_type(type))
        return ck_error_set(CK_ERR_UNSUPPORTED, "KSV message type %u", type);
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return ck_error_set(CK_ERR_NOMEM, "KSV message");
    m->type = type;
    *out = m;
    return 0;
}

void
ck_ksv_msg_clear(struct ck_ksv_msg *m)
{
    if (m != NULL)
        ck_memzero(m, sizeof(*m));
}

void
ck_ksv_msg_free(struct ck_ksv_msg *m)
{
    ck_free_secret(m, m != NULL ? sizeof(*m) : 0);
}

int
ck_ksv_msg_add_sa(struct ck_ksv_msg *m, const struct ck_ksv_sa *sa)
{
    int ret;

    if (m == NULL || sa == NULL || m->type != CK_KSV_REGISTER)
        return ck_error_set(CK_ERR_INVAL, "KSV: SAs go in a REGISTER");
    if (m->n_sas >= CK_KSV_MAX_SAS)
        return ck_error_set(CK_ERR_LIMIT, "KSV REGISTER: more than %u SAs", CK_KSV_MAX_SAS);
    if ((ret = check_sa(sa, CK_ERR_INVAL)) != 0)
        return ret;
    for (size_t j = 0; j < m->n_sas; j++)
        if (sa->direction == CK_KSV_DIR_IN && m->sas[j].direction == CK_KSV_DIR_IN &&
            sa->spi == m->sas[j].spi)
            return ck_error_set(CK_ERR_INVAL, "KSV REGISTER: inbound SPI %u twice", sa->spi);
    m->sas[m->n_sas++] = *sa;
    return 0;
}

int
ck_ksv_msg_add_group(struct ck_ksv_msg *m, const struct ck_ksv_group *g)
{
    int ret;

    if (m == NULL || g == NULL || m->type != CK_KSV_REGISTER)
        return ck_error_set(CK_ERR_INVAL, "KSV: groups go in a REGISTER");
    if (m->n_groups >= CK_KSV_MAX_GROUPS)
        return ck_error_set(CK_ERR_LIMIT, "KSV REGISTER: more than %u groups",
                            CK_KSV_MAX_GROUPS);
    if ((ret = check_group(g, CK_ERR_INVAL)) != 0)
        return ret;
    for (size_t j = 0; j < m->n_groups; j++)
        if (g->group_id == m->groups[j].group_id)
            return ck_error_set(CK_ERR_INVAL, "KSV REGISTER: group %u twice", g->group_id);
    m->groups[m->n_groups++] = *g;
    return 0;
}

int
ck_ksv_msg_add_delete(struct ck_ksv_msg *m, const struct ck_ksv_delete *d)
{
    int ret;

    if (m == NULL || d == NULL || m->type != CK_KSV_DELETE)
        return ck_error_set(CK_ERR_INVAL, "KSV: deletions go in a DELETE");
    if (m->n_deletes >= CK_KSV_MAX_SAS)
        return ck_error_set(CK_ERR_LIMIT, "KSV DELETE: more than %u entries", CK_KSV_MAX_SAS);
    if ((ret = check_delete(d, CK_ERR_INVAL)) != 0)
        return ret;
    m->deletes[m->n_deletes++] = *d;
    return 0;
}

/* ---- encoding ---- */

static int
put_u64(ck_writer *w, uint64_t v)
{
    int ret = ck_writer_u32be(w, (uint32_t)(v >> 32));

    return ret != 0 ? ret : ck_writer_u32be(w, (uint32_t)v);
}

static int
put_addr(ck_writer *w, const struct ck_ksv_addr *a)
{
    int ret = ck_writer_u8(w, a->family);

    return ret != 0 ? ret : ck_writer_bytes(w, a->addr, addr_len(a->family));
}

static int
put_sa(ck_writer *w, const struct ck_ksv_sa *sa)
{
    int ret;

    if ((ret = ck_writer_u8(w, sa->direction)) != 0 || (ret = ck_writer_u8(w, sa->proto)) != 0 ||
        (ret = ck_writer_u8(w, sa->mode)) != 0 || (ret = put_addr(w, &sa->peer)) != 0 ||
        (ret = ck_writer_u32be(w, sa->spi)) != 0 || (ret = ck_writer_u16be(w, sa->enc_alg)) != 0 ||
        (ret = ck_writer_u16be(w, sa->auth_alg)) != 0 ||
        (ret = ck_writer_u32be(w, sa->life_sec)) != 0 ||
        (ret = ck_writer_u32be(w, sa->life_kbytes)) != 0 ||
        (ret = ck_writer_u8(w, sa->enc_key_len)) != 0 ||
        (ret = ck_writer_u8(w, sa->auth_key_len)) != 0 ||
        (ret = ck_writer_bytes(w, sa->enc_key, sa->enc_key_len)) != 0 ||
        (ret = ck_writer_bytes(w, sa->auth_key, sa->auth_key_len)) != 0)
        return ret;
    return 0;
}

static int
put_group(ck_writer *w, const struct ck_ksv_group *g)
{
    int ret;

    if ((ret = ck_writer_u32be(w, g->group_id)) != 0 || (ret = put_u64(w, g->epoch)) != 0 ||
        (ret = ck_writer_u32be(w, g->member_index)) != 0 ||
        (ret = ck_writer_u32be(w, g->root_version)) != 0 ||
        (ret = ck_writer_u8(w, g->degree)) != 0 || (ret = ck_writer_u8(w, g->id_len)) != 0 ||
        (ret = ck_writer_u8(w, g->n_keys)) != 0 || (ret = ck_writer_u8(w, g->keying)) != 0 ||
        (ret = ck_writer_u8(w, g->gflags)) != 0 || (ret = ck_writer_u8(w, g->proto)) != 0 ||
        (ret = ck_writer_u8(w, g->mode)) != 0 || (ret = ck_writer_u8(w, 0)) != 0 ||
        (ret = ck_writer_u32be(w, g->spi)) != 0 || (ret = ck_writer_u16be(w, g->enc_alg)) != 0 ||
        (ret = ck_writer_u16be(w, g->auth_alg)) != 0 ||
        (ret = ck_writer_u32be(w, g->life_sec)) != 0 ||
        (ret = ck_writer_u32be(w, g->life_kbytes)) != 0 ||
        (ret = ck_writer_u8(w, g->enc_key_len)) != 0 ||
        (ret = ck_writer_u8(w, g->auth_key_len)) != 0 ||
        (ret = ck_writer_u16be(w, g->mcast_port)) != 0 || (ret = put_addr(w, &g->mcast)) != 0 ||
        (ret = ck_writer_bytes(w, g->sign_pub, sizeof(g->sign_pub))) != 0 ||
        (ret = ck_writer_bytes(w, g->member_id, g->id_len)) != 0)
        return ret;
    for (size_t i = 0; i < g->n_keys; i++) {
        const struct ck_ksv_path_key *k = &g->keys[i];
        if ((ret = ck_writer_u8(w, k->level)) != 0 || (ret = ck_writer_u8(w, k->key_len)) != 0 ||
            (ret = ck_writer_u32be(w, k->node)) != 0 ||
            (ret = ck_writer_u32be(w, k->version)) != 0 ||
            (ret = ck_writer_bytes(w, k->key, k->key_len)) != 0)
            return ret;
    }
    return 0;
}

static int
put_body(ck_writer *w, const struct ck_ksv_msg *m)
{
    int ret = 0;

    switch (m->type) {
    case CK_KSV_ACK:
        if ((ret = put_u64(w, m->reflected_ts)) != 0)
            return ret;
        return ck_writer_u32be(w, m->acked_msg_id);
    case CK_KSV_GROUP_ACK:
    case CK_KSV_RECOVER:
        if ((ret = ck_writer_u32be(w, m->grp_id)) != 0)
            return ret;
        return put_u64(w, m->grp_epoch);
    case CK_KSV_ALARM:
        if ((ret = ck_writer_u16be(w, m->alarm)) != 0 || (ret = put_addr(w, &m->alarm_peer)) != 0 ||
            (ret = ck_writer_u32be(w, m->alarm_spi)) != 0)
            return ret;
        return ck_writer_u32be(w, m->alarm_ref_id);
    case CK_KSV_DELETE:
        if ((ret = ck_writer_u8(w, m->n_deletes)) != 0)
            return ret;
        for (size_t i = 0; i < m->n_deletes; i++)
            if ((ret = ck_writer_u8(w, m->deletes[i].direction)) != 0 ||
                (ret = put_addr(w, &m->deletes[i].peer)) != 0 ||
                (ret = ck_writer_u32be(w, m->deletes[i].spi)) != 0)
                return ret;
        return 0;
    default: /* REGISTER */
        if ((ret = ck_writer_u8(w, m->n_sas)) != 0 || (ret = ck_writer_u8(w, m->n_groups)) != 0 ||
            (ret = ck_writer_u16be(w, 0)) != 0)
            return ret;
        for (size_t i = 0; i < m->n_sas; i++)
            if ((ret = put_sa(w, &m->sas[i])) != 0)
                return ret;
        for (size_t i = 0; i < m->n_groups; i++)
            if ((ret = put_group(w, &m->groups[i])) != 0)
                return ret;
        return 0;
    }
}

int
ck_ksv_msg_encode(const struct ck_ksv_msg *m, uint8_t **out, size_t *out_len)
{
    ck_writer w;
    int ret;

    ck_writer_init(&w, CK_KSV_MAX_MSG, true);
    if (out == NULL || out_len == NULL || m == NULL) {
        ret = ck_error_set(CK_ERR_INVAL, "KSV encode: missing argument");
        goto out;
    }
    *out = NULL;
    *out_len = 0;
    if ((ret = check_msg(m, CK_ERR_INVAL)) != 0)
        goto out;
    /* The length is patched in once the body is written. */
    if ((ret = ck_writer_u16be(&w, m->type)) != 0 || (ret = ck_writer_u16be(&w, m->flags)) != 0 ||
        (ret = ck_writer_u16be(&w, 0)) != 0 || (ret = ck_writer_u8(&w, CK_KSV_VERSION)) != 0 ||
        (ret = ck_writer_u8(&w, 0)) != 0 || (ret = ck_writer_u32be(&w, m->key_id)) != 0 ||
        (ret = ck_writer_u32be(&w, m->msg_id)) != 0 || (ret = put_u64(&w, m->timestamp)) != 0 ||
        (ret = put_body(&w, m)) != 0)
        goto out;
    if (w.len > CK_KSV_MAX_MSG) { /* unreachable while the limits keep a message under it */
        ret = ck_error_set(CK_ERR_LIMIT, "KSV message over %u bytes", CK_KSV_MAX_MSG);
        goto out;
    }
    w.data[4] = (uint8_t)(w.len >> 8);
    w.data[5] = (uint8_t)w.len;
    *out = ck_writer_take(&w, out_len);
    if (*out == NULL)
        ret = ck_error_set(CK_ERR_NOMEM, "KSV encode");
out:
    ck_writer_free(&w);
    return ret;
}

/* ---- parsing ---- */

static int
get_u64(ck_reader *r, uint64_t *v)
{
    uint32_t hi = 0, lo = 0;
    int ret;

    if ((ret = ck_reader_u32be(r, &hi)) != 0 || (ret = ck_reader_u32be(r, &lo)) != 0)
        return ret;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

static int
get_addr(ck_reader *r, struct ck_ksv_addr *a, bool none_ok, const char *what)
{
    int ret = ck_reader_u8(r, &a->family);

    if (ret != 0)
        return ret;
    /* Check the family before using it as a length. */
    if ((ret = check_addr(a, none_ok, CK_ERR_DECODE, what)) != 0)
        return ret;
    return ck_reader_copy(r, a->addr, addr_len(a->family));
}

static int
get_sa(ck_reader *r, struct ck_ksv_sa *sa)
{
    int ret;

    if ((ret = ck_reader_u8(r, &sa->direction)) != 0 || (ret = ck_reader_u8(r, &sa->proto)) != 0 ||
        (ret = ck_reader_u8(r, &sa->mode)) != 0 ||
        (ret = get_addr(r, &sa->peer, false, "SA peer")) != 0 ||
        (ret = ck_reader_u32be(r, &sa->spi)) != 0 ||
        (ret = ck_reader_u16be(r, &sa->enc_alg)) != 0 ||
        (ret = ck_reader_u16be(r, &sa->auth_alg)) != 0 ||
        (ret = ck_reader_u32be(r, &sa->life_sec)) != 0 ||
        (ret = ck_reader_u32be(r, &sa->life_kbytes)) != 0 ||
        (ret = ck_reader_u8(r, &sa->enc_key_len)) != 0 ||
        (ret = ck_reader_u8(r, &sa->auth_key_len)) != 0)
        return ret;
    if (sa->enc_key_len > CK_KSV_MAX_KEY || sa->auth_key_len > CK_KSV_MAX_KEY)
        return ck_error_set(CK_ERR_LIMIT, "KSV SA: key over %u bytes", CK_KSV_MAX_KEY);
    if ((ret = ck_reader_copy(r, sa->enc_key, sa->enc_key_len)) != 0 ||
        (ret = ck_reader_copy(r, sa->auth_key, sa->auth_key_len)) != 0)
        return ret;
    return check_sa(sa, CK_ERR_DECODE);
}

static int
get_group(ck_reader *r, struct ck_ksv_group *g)
{
    uint8_t reserved = 0;
    int ret;

    if ((ret = ck_reader_u32be(r, &g->group_id)) != 0 || (ret = get_u64(r, &g->epoch)) != 0 ||
        (ret = ck_reader_u32be(r, &g->member_index)) != 0 ||
        (ret = ck_reader_u32be(r, &g->root_version)) != 0 ||
        (ret = ck_reader_u8(r, &g->degree)) != 0 || (ret = ck_reader_u8(r, &g->id_len)) != 0 ||
        (ret = ck_reader_u8(r, &g->n_keys)) != 0 || (ret = ck_reader_u8(r, &g->keying)) != 0 ||
        (ret = ck_reader_u8(r, &g->gflags)) != 0 || (ret = ck_reader_u8(r, &g->proto)) != 0 ||
        (ret = ck_reader_u8(r, &g->mode)) != 0 || (ret = ck_reader_u8(r, &reserved)) != 0 ||
        (ret = ck_reader_u32be(r, &g->spi)) != 0 ||
        (ret = ck_reader_u16be(r, &g->enc_alg)) != 0 ||
        (ret = ck_reader_u16be(r, &g->auth_alg)) != 0 ||
        (ret = ck_reader_u32be(r, &g->life_sec)) != 0 ||
        (ret = ck_reader_u32be(r, &g->life_kbytes)) != 0 ||
        (ret = ck_reader_u8(r, &g->enc_key_len)) != 0 ||
        (ret = ck_reader_u8(r, &g->auth_key_len)) != 0 ||
        (ret = ck_reader_u16be(r, &g->mcast_port)) != 0 ||
        (ret = get_addr(r, &g->mcast, false, "group address")) != 0 ||
        (ret = ck_reader_copy(r, g->sign_pub, sizeof(g->sign_pub))) != 0)
        return ret;
    if (reserved != 0)
        return ck_error_set(CK_ERR_DECODE, "KSV group %u: reserved byte set", g->group_id);
    if (g->id_len > CK_KSV_MAX_DEPTH)
        return ck_error_set(CK_ERR_LIMIT, "KSV group %u: member ID of %u digits", g->group_id,
                            g->id_len);
    if (g->n_keys > CK_KSV_MAX_KEYS)
        return ck_error_set(CK_ERR_LIMIT, "KSV group %u: %u path keys", g->group_id, g->n_keys);
    if ((ret = ck_reader_copy(r, g->member_id, g->id_len)) != 0)
        return ret;
    for (size_t i = 0; i < g->n_keys; i++) {
        struct ck_ksv_path_key *k = &g->keys[i];
        if ((ret = ck_reader_u8(r, &k->level)) != 0 || (ret = ck_reader_u8(r, &k->key_len)) != 0 ||
            (ret = ck_reader_u32be(r, &k->node)) != 0 ||
            (ret = ck_reader_u32be(r, &k->version)) != 0)
            return ret;
        if (k->key_len > CK_KSV_MAX_KEY)
            return ck_error_set(CK_ERR_LIMIT, "KSV group %u: key over %u bytes", g->group_id,
                                CK_KSV_MAX_KEY);
        if ((ret = ck_reader_copy(r, k->key, k->key_len)) != 0)
            return ret;
    }
    return check_group(g, CK_ERR_DECODE);
}

static int
get_body(ck_reader *r, struct ck_ksv_msg *m)
{
    uint16_t reserved = 0;
    int ret;

    switch (m->type) {
    case CK_KSV_ACK:
        if ((ret = get_u64(r, &m->reflected_ts)) != 0)
            return ret;
        return ck_reader_u32be(r, &m->acked_msg_id);
    case CK_KSV_GROUP_ACK:
    case CK_KSV_RECOVER:
        if ((ret = ck_reader_u32be(r, &m->grp_id)) != 0)
            return ret;
        return get_u64(r, &m->grp_epoch);
    case CK_KSV_ALARM:
        if ((ret = ck_reader_u16be(r, &m->alarm)) != 0 ||
            (ret = get_addr(r, &m->alarm_peer, true, "ALARM peer")) != 0 ||
            (ret = ck_reader_u32be(r, &m->alarm_spi)) != 0)
            return ret;
        return ck_reader_u32be(r, &m->alarm_ref_id);
    case CK_KSV_DELETE:
        if ((ret = ck_reader_u8(r, &m->n_deletes)) != 0)
            return ret;
        if (m->n_deletes > CK_KSV_MAX_SAS)
            return ck_error_set(CK_ERR_LIMIT, "KSV DELETE: %u entries", m->n_deletes);
        for (size_t i = 0; i < m->n_deletes; i++) {
            struct ck_ksv_delete *d = &m->deletes[i];
            if ((ret = ck_reader_u8(r, &d->direction)) != 0 ||
                (ret = get_addr(r, &d->peer, false, "DELETE peer")) != 0 ||
                (ret = ck_reader_u32be(r, &d->spi)) != 0)
                return ret;
        }
        return 0;
    default: /* REGISTER */
        if ((ret = ck_reader_u8(r, &m->n_sas)) != 0 || (ret = ck_reader_u8(r, &m->n_groups)) != 0 ||
            (ret = ck_reader_u16be(r, &reserved)) != 0)
            return ret;
        if (reserved != 0)
            return ck_error_set(CK_ERR_DECODE, "KSV REGISTER: reserved bytes set");
        if (m->n_sas > CK_KSV_MAX_SAS)
            return ck_error_set(CK_ERR_LIMIT, "KSV REGISTER: %u SAs", m->n_sas);
        if (m->n_groups > CK_KSV_MAX_GROUPS)
            return ck_error_set(CK_ERR_LIMIT, "KSV REGISTER: %u groups", m->n_groups);
        for (size_t i = 0; i < m->n_sas; i++)
            if ((ret = get_sa(r, &m->sas[i])) != 0)
                return ret;
        for (size_t i = 0; i < m->n_groups; i++)
            if ((ret = get_group(r, &m->groups[i])) != 0)
                return ret;
        return 0;
    }
}

int
ck_ksv_msg_parse(const uint8_t *buf, size_t len, struct ck_ksv_msg **out)
{
    struct ck_ksv_msg *m = NULL;
    ck_reader r;
    uint16_t length = 0;
    uint8_t version = 0, reserved = 0;
    int ret;

    if (out == NULL || (buf == NULL && len > 0)) {
        ret = ck_error_set(CK_ERR_INVAL, "KSV parse: missing argument");
        goto out;
    }
    *out = NULL;
    if (len > CK_KSV_MAX_MSG) {
        ret = ck_error_set(CK_ERR_LIMIT, "KSV message of %zu bytes", len);
        goto out;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        ret = ck_error_set(CK_ERR_NOMEM, "KSV message");
        goto out;
    }
    ck_reader_init(&r, buf, len);
    if ((ret = ck_reader_u16be(&r, &m->type)) != 0 || (ret = ck_reader_u16be(&r, &m->flags)) != 0 ||
        (ret = ck_reader_u16be(&r, &length)) != 0 || (ret = ck_reader_u8(&r, &version)) != 0 ||
        (ret = ck_reader_u8(&r, &reserved)) != 0 || (ret = ck_reader_u32be(&r, &m->key_id)) != 0 ||
        (ret = ck_reader_u32be(&r, &m->msg_id)) != 0 || (ret = get_u64(&r, &m->timestamp)) != 0)
        goto out;
    if (version != CK_KSV_VERSION) {
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "KSV message version %u", version);
        goto out;
    }
    if (!known_type(m->type)) {
        ret = ck_error_set(CK_ERR_UNSUPPORTED, "KSV message type %u", m->type);
        goto out;
    }
    if (reserved != 0) {
        ret = ck_error_set(CK_ERR_DECODE, "KSV header: reserved byte set");
        goto out;
    }
    if (length != len) {
        ret = ck_error_set(CK_ERR_DECODE, "KSV header: length %u, %zu bytes received", length, len);
        goto out;
    }
    if ((ret = get_body(&r, m)) != 0)
        goto out;
    if (ck_reader_remaining(&r) != 0) {
        ret = ck_error_set(CK_ERR_DECODE, "KSV %s: %zu trailing bytes", ck_ksv_type_name(m->type),
                           ck_reader_remaining(&r));
        goto out;
    }
    if ((ret = check_msg(m, CK_ERR_DECODE)) != 0)
        goto out;
    *out = m;
    m = NULL;
out:
    ck_ksv_msg_free(m);
    return ret;
}
