/*
 * fuzz_blobheader: a received file at rest (src/store/blobfile.h), read as the
 * inbox reads it. The input is the whole file: "SNOOPIN1", the header
 * length, the signed post/blob header and the sealed chunks. It is written
 * to a temporary file (blobfile works on paths, and O_NOFOLLOW rules out
 * /proc/self/fd links), then blobfile_peek_size() and blobfile_open() run
 * with the fixed fuzzing key as node FUZZ_SELF, and an opened file is read
 * whole, in pieces that cross chunk boundaries, and past its end.
 *
 * blobfile's behaviour is unchanged: this drives its public functions only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pki/key.h"
#include "store/blobfile.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_fixed.h"

static struct pki_key *key;
static char path[] = "/tmp/snoopfs-fuzz-blob.XXXXXX";
static int fd = -1;

static void cleanup(void)
{
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	pki_key_free(key);
}

static void setup(void)
{
	key = fuzz_load_key();
	fd = mkstemp(path);
	if (key == NULL || fd < 0) {
		fprintf(stderr, "fuzz_blobheader: setup failed\n");
		abort();
	}
	atexit(cleanup);
}

/* Reads B whole in STEP-byte reads and checks what each returns. */
static void read_all(struct blobfile *b, uint64_t size, size_t step,
		     uint8_t *buf)
{
	uint64_t off = 0;

	while (off < size) {
		size_t got = 0;
		int rc = blobfile_read(b, buf, step, off, &got);

		FUZZ_ASSERT(rc == 0 || rc == -EIO);
		if (rc != 0)
			return;
		FUZZ_ASSERT(got <= step && got > 0 && got <= size - off);
		off += got;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blobfile *b = NULL;
	uint64_t peeked = 0, bsize;
	int prc, orc;

	if (fd < 0)
		setup();
	if (ftruncate(fd, 0) != 0 ||
	    (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();

	prc = blobfile_peek_size(path, &peeked);
	FUZZ_ASSERT(prc == 0 || prc == -EBADMSG);
	orc = blobfile_open(path, key, FUZZ_SELF, &b);
	FUZZ_ASSERT(orc == 0 || orc == -EBADMSG);
	if (orc != 0) {
		FUZZ_ASSERT(b == NULL);
		return 0;
	}
	/* Whatever opens has a header that peeks to the same size. */
	bsize = blobfile_size(b);
	FUZZ_ASSERT(prc == 0 && peeked == bsize);
	FUZZ_ASSERT(bsize <= size);

	uint8_t *buf = malloc(PKI_BLOB_CHUNK + 1);
	size_t got = 1;
	FUZZ_ASSERT(buf != NULL);
	read_all(b, bsize, PKI_BLOB_CHUNK + 1, buf);
	read_all(b, bsize, 4093, buf);
	FUZZ_ASSERT(blobfile_read(b, buf, 16, bsize, &got) == 0 && got == 0);
	FUZZ_ASSERT(blobfile_read(b, buf, 16, UINT64_MAX, &got) == 0 &&
		    got == 0);
	free(buf);
	blobfile_close(b);
	return 0;
}
