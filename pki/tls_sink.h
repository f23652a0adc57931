/*
 * tls_sink: the write BIO under a TLS session (pki/tls.c only).
 */
#ifndef SNOOPFS_PKI_TLS_SINK_H
#define SNOOPFS_PKI_TLS_SINK_H

#include <stddef.h>

#include <openssl/bio.h>

/*
 * The write side of a session. OpenSSL hands its BIO one record (16 KiB
 * at most) at a time, from a buffer it reuses for the next record, so a
 * socket BIO costs one write(2) and one TCP push per record. The sink
 * collects the records instead and sends them when it holds
 * TLS_SINK_MAX bytes or when the caller flushes (pki_tls_flush, at the
 * end of each message): a 64 KiB chunk then leaves in one write(2), and
 * back-to-back chunks in writes of 256 KiB. The records are copied once
 * more for it (a memcpy per byte is cheaper than a system call and a
 * TCP segment per 16 KiB). The buffer grows as needed, and goes back
 * whenever the session waits to read with nothing left to send, so idle
 * connections hold none.
 */
#define TLS_SINK_MIN (32 * 1024)
#define TLS_SINK_MAX (256 * 1024)

struct tls_sink {
	int fd;
	unsigned char *buf;
	size_t alloc; /* bytes at buf */
	size_t off;   /* [off, len) waits to be sent */
	size_t len;
};

/*
 * A BIO that keeps what is written to it in S and sends it on socket FD;
 * S must outlive it. NULL if out of memory.
 */
BIO *tls_sink_bio(struct tls_sink *s, int fd);

/*
 * Sends what waits in S: 0 once all of it is out, TLS_SINK_FULL if the
 * socket takes no more now, -1 if it failed.
 */
#define TLS_SINK_FULL 1
int tls_sink_drain(struct tls_sink *s);

/* Gives the buffer back if nothing waits in it (the session is idle). */
void tls_sink_idle(struct tls_sink *s);

#endif
