/*
 * cert: X.509 certificates as snoopfs uses them: parsed, saved, named,
 * fingerprinted, summarised for people, and used to verify signatures.
 */
#ifndef SNOOPFS_PKI_CERT_H
#define SNOOPFS_PKI_CERT_H

#include "pki/key.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct pki_cert;

/* Parses one PEM certificate of LEN bytes (<= PKI_PEM_MAX). Caller frees. */
int pki_cert_parse(const char *pem, size_t len, struct pki_cert **out);

/* Loads a PEM certificate file. Caller frees. */
int pki_cert_load(const char *path, struct pki_cert **out);

/* Saves as PEM, mode 0644, atomically (temporary file, fsync, rename). */
int pki_cert_save(const struct pki_cert *cert, const char *path);

/* PEM text in a new NUL-terminated buffer *PEM (free()), length *LEN. */
int pki_cert_to_pem(const struct pki_cert *cert, char **pem, size_t *len);

/* Another reference to the same certificate (free both). */
struct pki_cert *pki_cert_dup(const struct pki_cert *cert);

/* True if A and B are the same certificate, byte for byte. */
bool pki_cert_same(const struct pki_cert *a, const struct pki_cert *b);

/* Subject CN into NAME (NAMES_NODE_MAX + 1 bytes), PKI_ENAME if invalid. */
int pki_cert_get_name(const struct pki_cert *cert, char *name, size_t size);

/*
 * The node address from the subjectAltName URI "snoop://HOST:PORT" as
 * "HOST:PORT" in ADDR. PKI_EPARSE if there is none.
 */
int pki_cert_get_address(const struct pki_cert *cert, char *addr, size_t size);

/* Serial number as upper-case hex without separators. */
int pki_cert_get_serial(const struct pki_cert *cert, char *hex, size_t size);

/*
 * Normalises a fingerprint given by a person ("sha256:AB:CD..." in any case,
 * with or without colons or the prefix) to "sha256:<64 lower hex>" in OUT.
 * Returns 0 or -EINVAL.
 */
int pki_fp_normalize(const char *in, char out[PKI_FP_LEN]);

/* SHA-256 of the certificate DER, "sha256:<64 lower-case hex>". */
int pki_cert_fingerprint(const struct pki_cert *cert, char fp[PKI_FP_LEN]);

/* SHA-256 of the certificate's SubjectPublicKeyInfo, as for keys. */
int pki_cert_pub_fingerprint(const struct pki_cert *cert, char fp[PKI_FP_LEN]);

/*
 * The subject or issuer as an RFC 4514 string, most specific part first
 * ("CN=alice" or "CN=ca,O=snoopfs"), as `openssl x509 -nameopt RFC2253`
 * prints it: control characters and bytes above 0x7f are escaped, so the
 * text is printable ASCII. New buffer *OUT (free()).
 */
int pki_cert_get_subject(const struct pki_cert *cert, char **out);
int pki_cert_get_issuer(const struct pki_cert *cert, char **out);

/* The size of the certificate's public key in bits (0 if unreadable). */
int pki_cert_key_bits(const struct pki_cert *cert);

/* True if basicConstraints says CA:TRUE. */
bool pki_cert_is_ca(const struct pki_cert *cert);

/* notBefore / notAfter as Unix time. */
time_t pki_cert_not_before(const struct pki_cert *cert);
time_t pki_cert_not_after(const struct pki_cert *cert);

/*
 * When snoopfs renews a node certificate: at two-thirds of its life,
 * notBefore + 2/3 (notAfter - notBefore). (time_t)-1 if unreadable.
 */
time_t pki_cert_renew_at(const struct pki_cert *cert);

/* 0 if KEY is the private half of the certificate's public key. */
int pki_cert_matches_key(const struct pki_cert *cert,
			 const struct pki_key *key);

/* Verifies an RSA-PSS/SHA-256 signature made with the certificate's key. */
int pki_cert_verify_data(const struct pki_cert *cert, const void *data,
			 size_t len, const uint8_t *sig, size_t siglen);

/*
 * A summary for people, as `snoopfs inspect` and certs/NAME.txt show it:
 * subject, issuer, serial, SHA-256 fingerprint, not before, not after with
 * the time left relative to NOW, when a node certificate renews, key type
 * and size, address, whether it is a CA. New NUL-terminated buffer *TEXT
 * (free()).
 */
int pki_cert_summary(const struct pki_cert *cert, time_t now, char **text);

void pki_cert_free(struct pki_cert *cert);

#endif
