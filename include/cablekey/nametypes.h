/* Kerberos principal name types (RFC 4120 §6.2, RFC 6111, RFC 6806), shared by the ASN.1 layer
 * and the principal-name module without pulling OpenSSL headers into the latter. */
#ifndef CABLEKEY_NAMETYPES_H
#define CABLEKEY_NAMETYPES_H

#define CK_NT_UNKNOWN 0
#define CK_NT_PRINCIPAL 1
#define CK_NT_SRV_INST 2   /* krbtgt/REALM and other service instances */
#define CK_NT_SRV_HST 3
#define CK_NT_SRV_XHST 4
#define CK_NT_UID 5
#define CK_NT_X500_PRINCIPAL 6
#define CK_NT_SMTP_NAME 7
#define CK_NT_ENTERPRISE 10
#define CK_NT_WELLKNOWN 11

#endif
