/*
 * rand: the CSPRNG. Everything random in snoopfs comes from here
 * (OpenSSL's RAND_bytes), never from rand() or the clock.
 */
#ifndef SNOOPFS_PKI_RAND_H
#define SNOOPFS_PKI_RAND_H

#include <stddef.h>
#include <stdint.h>

/* Fills BUF with LEN random bytes. Returns 0 or PKI_ECRYPTO. */
int pki_rand_bytes(void *buf, size_t len);

/* Returns a uniformly random 53-bit integer (safe as a JSON number). */
int pki_rand_u53(uint64_t *out);

/* Overwrites LEN bytes at P with zeros in a way the compiler keeps. */
void pki_wipe(void *p, size_t len);

/* Compares LEN bytes in constant time. Returns 0 if equal. */
int pki_memcmp_ct(const void *a, const void *b, size_t len);

/*
 * Frees what OpenSSL keeps for the calling thread (its random generators,
 * its error queue). A thread that did crypto calls it as its last step
 * when others may stop waiting for it before it has quite exited: OpenSSL
 * would otherwise free that state only in the thread's exit handlers, which
 * a process that ends at that moment never runs.
 */
void pki_thread_done(void);

#endif
