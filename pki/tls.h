/*
 * tls: TLS 1.3 on a connected socket, with the PKI's own certificates.
 *
 * A node context presents the node's certificate (chain: node, root) and
 * verifies every peer against the root alone, strictly (RFC 5280), with the
 * TLS client or server purpose. The server asks for a client certificate
 * but does not require one: a connection without one is "anonymous" and
 * the layer above decides what it may do (enrollment only). An anonymous
 * client context presents nothing and checks the server after the
 * handshake against a pinned root fingerprint: that is how a node that has
 * no root yet reaches its CA.
 *
 * TLS 1.3 only, no SNI, no compression, no renegotiation, no session
 * tickets. Sockets stay non-blocking: reads and writes report "want read"
 * or "want write" and the caller waits (net/conn.c does, with its timeout).
 */
#ifndef SNOOPFS_PKI_TLS_H
#define SNOOPFS_PKI_TLS_H

#include "pki/cert.h"
#include "pki/key.h"
#include <stddef.h>
#include <sys/types.h>

/* What pki_tls_read and pki_tls_write return besides a byte count. */
#define PKI_TLS_EOF        0 /* read: the peer closed (close_notify or FIN) */
#define PKI_TLS_ERROR      (-1) /* the connection is unusable */
#define PKI_TLS_WANT_READ  (-2) /* wait until the socket is readable */
#define PKI_TLS_WANT_WRITE (-3) /* wait until the socket is writable */

struct pki_tls_ctx;
struct pki_tls;

/*
 * A context for a node: presents CERT and KEY, sends ROOT along so that an
 * enrolling client can check its pin, and verifies peers against ROOT. The
 * same context serves both ends. Caller frees with pki_tls_ctx_free().
 */
int pki_tls_ctx_new_node(const struct pki_cert *cert, const struct pki_key *key,
			 const struct pki_cert *root, struct pki_tls_ctx **out);

/* A client context without a certificate, for enrollment. */
int pki_tls_ctx_new_anon(struct pki_tls_ctx **out);

/* Contexts are reference-counted: another reference to CTX. */
struct pki_tls_ctx *pki_tls_ctx_ref(struct pki_tls_ctx *ctx);

void pki_tls_ctx_free(struct pki_tls_ctx *ctx);

/*
 * Server handshake on the connected non-blocking socket FD (not taken
 * over), finished within TIMEOUT_MS in all. On success *OUT is the session
 * and PEER (SIZE bytes, NAMES_NODE_MAX + 1 is enough) holds the client
 * certificate's node name, or "" if the client presented none. On failure
 * *WHY says why in words (static text).
 */
int pki_tls_accept(struct pki_tls_ctx *ctx, int fd, int timeout_ms, char *peer,
		   size_t size, struct pki_tls **out, const char **why);

/*
 * Client handshake on FD within TIMEOUT_MS. With a node context the server
 * must verify against the root and its certificate's name must be EXPECT.
 * With an anonymous context the server's chain must hold a root whose
 * SHA-256 fingerprint is PIN ("sha256:<64 lower hex>", required: there is
 * no trust on first use) and the server certificate must verify under that
 * root; EXPECT, if not NULL, is checked too.
 */
int pki_tls_connect(struct pki_tls_ctx *ctx, int fd, int timeout_ms,
		    const char *expect, const char *pin, struct pki_tls **out,
		    const char **why);

/*
 * What a server may check before it spends anything on a connection: is
 * the first TLS record in BUF (the LEN bytes received so far) whole? A
 * TLS 1.3 client sends its whole ClientHello at once, in one record, so a
 * peer whose first record is still short after a moment is stalling.
 * Returns 1 (whole), 0 (not yet: *NEED is how many bytes the record takes
 * in all) or -1 (not a TLS handshake record: the peer does not speak TLS).
 */
#define PKI_TLS_FIRST_MAX (5 + 16384)
int pki_tls_first_record(const unsigned char *buf, size_t len, size_t *need);

/* The peer's certificate (a new reference: pki_cert_free), or NULL. */
struct pki_cert *pki_tls_peer_cert(struct pki_tls *t);

/* Reads up to LEN bytes: a count, or one of PKI_TLS_EOF/ERROR/WANT_*. */
ssize_t pki_tls_read(struct pki_tls *t, void *buf, size_t len);

/*
 * Writes up to LEN bytes (LEN > 0): a count, or PKI_TLS_ERROR/WANT_*.
 * The records are kept and sent in large writes: once several hundred KiB
 * wait, or at pki_tls_flush, which the caller must reach before it waits
 * for an answer.
 */
ssize_t pki_tls_write(struct pki_tls *t, const void *buf, size_t len);

/*
 * Sends every record written so far: 0 once all are out,
 * PKI_TLS_WANT_WRITE (wait until the socket is writable, then call again)
 * or PKI_TLS_ERROR.
 */
int pki_tls_flush(struct pki_tls *t);

/* Sends close_notify if it can without waiting. */
void pki_tls_close_notify(struct pki_tls *t);

/* Frees the session; the socket stays open (its owner closes it). */
void pki_tls_free(struct pki_tls *t);

#endif
