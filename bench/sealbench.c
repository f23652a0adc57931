/*
 * sealbench: the CPU a sender's spool spends per GB to take a file written
 * in 1 MiB writes and seal it ahead into its blob (AES-256-GCM, SHA-256,
 * the blob's page-cache writes and its helper thread), without FUSE, TLS
 * or a daemon: a steadier comparison of two builds than a whole bulk run
 * on a shared machine. Not built by bench/run. From a worktree with a
 * build/ directory:
 *
 *   gcc -O2 -I. -Isrc -Ilib -o /tmp/sealbench bench/sealbench.c \
 *       build/src/libsnoopfs_store.a build/src/libsnoopfs_base.a \
 *       build/pki/libsnoopfs_pki.a build/net/libsnoopfs_net.a \
 *       build/lib/libsnoopfs_lib.a -lssl -lcrypto -lpthread
 *   mkdir -p /var/tmp/sb && /tmp/sealbench 256 /var/tmp/sb
 *
 * Usage: sealbench MIB DIR (DIR on the file system to measure; the files
 * it makes there are removed). Prints CPU seconds per GB (10^9 bytes).
 */
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "store/spool.h"
#include "store/spool_seal.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static double cpu(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 +
	       r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc != 3 || atoi(argv[1]) <= 0) {
		fprintf(stderr, "usage: sealbench MIB DIR\n");
		return 64;
	}
	int mb = atoi(argv[1]);
	const char *dir = argv[2];
	struct pki_key *key;
	char path[512], sdir[512];
	uint8_t *buf = malloc(1 << 20);
	if (buf == NULL || pki_rand_bytes(buf, 1 << 20) != 0 ||
	    pki_key_generate(2048, &key) != 0)
		return 1;
	snprintf(path, sizeof path, "%s/s.spool", dir);
	snprintf(sdir, sizeof sdir, "%s/sealed", dir);
	mkdir(sdir, 0700);
	struct spool *s;
	uint8_t bkey[PKI_AEAD_KEY], id[PKI_BLOB_ID];
	char hash[72];
	double c0 = cpu();
	if (spool_create(path, key, &s) || spool_seal_ahead(s, sdir))
		return 1;
	for (int i = 0; i < mb; i++)
		if (spool_write(s, buf, 1 << 20, (uint64_t)i << 20))
			return 2;
	if (spool_seal(s, sdir, bkey, id, hash))
		return 3;
	spool_close(s);
	double c1 = cpu();
	printf("%.3f\n", (c1 - c0) / (mb * 1048576.0 / 1e9));
	unlink(path);
	DIR *d = opendir(sdir);
	struct dirent *e;
	char p[1024];
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof p, "%s/%s", sdir, e->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(sdir);
	return 0;
}
