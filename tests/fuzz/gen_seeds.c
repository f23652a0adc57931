/*
 * gen_seeds: writes the valid seeds of the fuzz corpus with the library
 * itself, so they are exactly what a peer or the node would produce:
 * frames, signed messages, sealed chunks under the fixed key, whole blob
 * files whose key is wrapped for the fixed fuzzing key, and job records.
 * It was run once to make the files named gen-* in corpus/; run it again
 * only to refresh them (timestamps and signatures will differ):
 *
 *   build/tests/fuzz/fuzz_gen_seeds tests/fuzz/corpus
 *
 * Hand-written invalid seeds and the regress-* inputs are not made here.
 * The gen-* seeds of blob headers and job records were made when a node
 * wrapped keys for itself with RSA-OAEP, and are kept as they are: they
 * are what older versions left on disk. The gen-selfwrap-* ones are
 * copies of this program's output since (pki_wrap_for_key without RSA).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/b64.h"
#include "net/err.h"
#include "net/frame.h"
#include "net/msg.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/csr.h"
#include "pki/key.h"
#include "store/jobs.h"
#include "tests/fuzz/fuzz_fixed.h"

static const char *outdir;
static struct pki_key *key;
static struct pki_aead *aead;
static int failures;

static void save(const char *target, const char *name, const void *data,
		 size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/gen-%s", outdir, target, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "gen_seeds: %s: %s\n", path, strerror(errno));
		failures++;
	}
}

static void need(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "gen_seeds: %s failed\n", what);
		exit(1);
	}
}

static int sign_cb(void *arg, const void *data, size_t len, uint8_t **sig,
		   size_t *siglen)
{
	return pki_key_sign(arg, data, len, sig, siglen);
}

/* A signed message; *OUT is a new frame body (free()). */
static size_t build(const char *method, const char *args,
		    enum msg_payload_type type, const void *payload,
		    size_t plen, const struct msg_extra *x, bool sign,
		    char **out)
{
	struct msg_meta meta;
	size_t len = 0;

	memset(&meta, 0, sizeof(meta));
	snprintf(meta.method, sizeof(meta.method), "%s", method);
	snprintf(meta.args, sizeof(meta.args), "%s", args);
	snprintf(meta.id, sizeof(meta.id), "alice");
	meta.message_id = 7;
	meta.payload_type = type;
	need(msg_build(&meta, payload, plen, x, sign ? sign_cb : NULL,
		       sign ? key : NULL, out, &len) == NET_OK,
	     "msg_build");
	return len;
}

static void gen_frames(void)
{
	uint8_t buf[2048];
	char *m;
	size_t mlen, o;

	/* Selector byte 8 picks NET_FRAME_MAX as the maximum. */
	buf[0] = 8;
	need(net_frame_put_header(5, buf + 1) == 0, "header");
	memcpy(buf + 5, "hello", 5);
	save("fuzz_frame", "one", buf, 10);

	/* Two whole frames, an empty one and the start of a fourth. */
	o = 1;
	net_frame_put_header(3, buf + o);
	memcpy(buf + o + 4, "abc", 3);
	o += 7;
	net_frame_put_header(0, buf + o);
	o += 4;
	net_frame_put_header(2, buf + o);
	memcpy(buf + o + 4, "{}", 2);
	o += 6;
	net_frame_put_header(100, buf + o);
	memcpy(buf + o + 4, "partial", 7);
	o += 11;
	save("fuzz_frame", "stream", buf, o);

	/* Selector 5 is a 4096-byte maximum: this frame is too big for it. */
	buf[0] = 5;
	net_frame_put_header(5000, buf + 1);
	save("fuzz_frame", "toobig", buf, 5);

	mlen = build("get/crt", "bob", MSG_PAYLOAD_NONE, NULL, 0, NULL, true,
		     &m);
	need(mlen + 5 <= sizeof(buf), "frame size");
	buf[0] = 8;
	net_frame_put_header(mlen, buf + 1);
	memcpy(buf + 5, m, mlen);
	save("fuzz_frame", "message", buf, mlen + 5);
	free(m);
}

static void gen_messages(void)
{
	static const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n"
				  "-----END CERTIFICATE-----\n";
	static const uint8_t bytes[] = { 0, 1, 2, 0xfe, 0xff, '"', '\\' };
	struct msg_extra *x;
	char *m;
	size_t len;

	len = build("get/crt", "bob", MSG_PAYLOAD_NONE, NULL, 0, NULL, true,
		    &m);
	save("fuzz_msg", "none", m, len);
	free(m);

	len = build("post/csr", "", MSG_PAYLOAD_TEXT, pem, strlen(pem), NULL,
		    true, &m);
	save("fuzz_msg", "text", m, len);
	free(m);

	len = build("put/data", "a/b \xc3\xa9\xe2\x82\xac", MSG_PAYLOAD_BYTES,
		    bytes, sizeof(bytes), NULL, true, &m);
	save("fuzz_msg", "bytes", m, len);
	free(m);

	len = build("get/crt", "bob", MSG_PAYLOAD_NONE, NULL, 0, NULL, false,
		    &m);
	save("fuzz_msg", "unsigned", m, len);
	free(m);

	x = msg_extra_new();
	need(x != NULL && msg_extra_set_int(x, "re", 9007199254740991) == 0 &&
		     msg_extra_set_str(x, "status", "error") == 0 &&
		     msg_extra_set_str(x, "error", "no such node \"x\"\n") ==
			     0 &&
		     msg_extra_set_int(x, "n", -12) == 0,
	     "extras");
	len = build("reply", "get/crt", MSG_PAYLOAD_NONE, NULL, 0, x, true, &m);
	save("fuzz_msg", "reply", m, len);
	free(m);
	msg_extra_free(x);
}

/* The post/blob header for a SIZE-byte blob, key wrapped for NAME. */
static size_t blob_header(uint64_t size, const char *name, char **out)
{
	char hex[2 * PKI_BLOB_ID + 1], kname[80], *b64;
	uint8_t *wrapped = NULL;
	size_t wlen = 0, len;
	struct msg_extra *x = msg_extra_new();

	for (int i = 0; i < PKI_BLOB_ID; i++)
		snprintf(hex + 2 * i, 3, "%02x", fuzz_blob_id[i]);
	need(pki_wrap_for_key(key, fuzz_blob_key, PKI_AEAD_KEY, &wrapped,
			      &wlen) == 0,
	     "wrap");
	b64 = malloc(b64_encoded_size(wlen));
	need(b64 != NULL && x != NULL, "alloc");
	b64_encode(wrapped, wlen, b64);
	snprintf(kname, sizeof(kname), "key:%s", name);
	need(msg_extra_set_str(x, "id", hex) == 0 &&
		     msg_extra_set_int(x, "size", (int64_t)size) == 0 &&
		     msg_extra_set_int(x, "chunks",
				       (int64_t)pki_blob_chunks(size)) == 0 &&
		     msg_extra_set_str(x, "recipients", name) == 0 &&
		     msg_extra_set_str(x, kname, b64) == 0,
	     "blob extras");
	len = build("post/blob", "docs/report.txt", MSG_PAYLOAD_NONE, NULL, 0,
		    x, true, out);
	msg_extra_free(x);
	free(b64);
	free(wrapped);
	return len;
}

static void gen_blobs(void)
{
	static const uint64_t sizes[] = { 0, 1, 100, 4096, PKI_BLOB_CHUNK + 1 };
	uint8_t *pt = malloc(2 * PKI_BLOB_CHUNK);
	uint8_t *file = malloc(4 * PKI_BLOB_CHUNK);
	char name[64], *hdr;

	need(pt != NULL && file != NULL, "alloc");
	for (size_t i = 0; i < 2 * PKI_BLOB_CHUNK; i++)
		pt[i] = (uint8_t)(i * 7 + 3);

	/* Single chunks for fuzz_blob: index, final flag, sealed bytes. */
	static const struct {
		const char *name;
		uint64_t n;
		bool final;
		size_t len;
	} chunks[] = {
		{ "final-empty", 0, true, 0 },
		{ "final-small", 0, true, 100 },
		{ "middle", 1, false, 1000 },
		{ "high-index", UINT64_C(1) << 40, true, 10 },
	};
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		for (int i = 0; i < 8; i++)
			file[i] = (uint8_t)(chunks[c].n >> (56 - 8 * i));
		file[8] = chunks[c].final ? 1 : 0;
		need(pki_blob_seal_chunk(aead, fuzz_blob_id, chunks[c].n,
					 chunks[c].final, pt, chunks[c].len,
					 file + 9) == 0,
		     "seal");
		save("fuzz_blob", chunks[c].name, file,
		     9 + chunks[c].len + PKI_AEAD_TAG);
	}

	/* Whole blob files for fuzz_blobheader. */
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint64_t size = sizes[s], nch = pki_blob_chunks(size);
		size_t hlen = blob_header(size, FUZZ_SELF, &hdr), o;

		memcpy(file, "SNOOPIN1", 8);
		file[8] = (uint8_t)(hlen >> 24);
		file[9] = (uint8_t)(hlen >> 16);
		file[10] = (uint8_t)(hlen >> 8);
		file[11] = (uint8_t)hlen;
		memcpy(file + 12, hdr, hlen);
		o = 12 + hlen;
		for (uint64_t n = 0; n < nch; n++) {
			size_t clen = pki_blob_chunk_len(size, n);

			need(pki_blob_seal_chunk(aead, fuzz_blob_id, n,
						 n == nch - 1,
						 pt + n * PKI_BLOB_CHUNK, clen,
						 file + o) == 0,
			     "seal");
			o += clen + PKI_AEAD_TAG;
		}
		snprintf(name, sizeof(name), "size-%llu",
			 (unsigned long long)size);
		save("fuzz_blobheader", name, file, o);
		if (size == 100) {
			/* The header alone is also a post/blob message. */
			save("fuzz_msg", "post-blob", hdr, hlen);
		}
		free(hdr);
	}

	/* A header whose key is wrapped for another node does not open. */
	size_t hlen = blob_header(1, "other", &hdr);
	memcpy(file, "SNOOPIN1", 8);
	file[8] = (uint8_t)(hlen >> 24);
	file[9] = (uint8_t)(hlen >> 16);
	file[10] = (uint8_t)(hlen >> 8);
	file[11] = (uint8_t)hlen;
	memcpy(file + 12, hdr, hlen);
	need(pki_blob_seal_chunk(aead, fuzz_blob_id, 0, true, pt, 1,
				 file + 12 + hlen) == 0,
	     "seal");
	save("fuzz_blobheader", "other-node", file, 12 + hlen + 1 + 16);
	free(hdr);
	free(pt);
	free(file);
}

static void gen_jobs(void)
{
	char dir[] = "/tmp/snoopfs-gen-seeds.XXXXXX", path[256];
	struct job *j = calloc(1, sizeof(*j));
	uint8_t *wrapped = NULL;
	size_t wlen = 0;
	FILE *f;

	need(j != NULL && mkdtemp(dir) != NULL, "job dir");
	need(pki_wrap_for_key(key, fuzz_blob_key, PKI_AEAD_KEY, &wrapped,
			      &wlen) == 0 &&
		     wlen <= JOB_WRAPPED_MAX,
	     "wrap");
	snprintf(j->id, sizeof(j->id), "%s", FUZZ_JOB_ID);
	snprintf(j->folder, sizeof(j->folder), "bob");
	snprintf(j->path, sizeof(j->path), "docs/report.txt");
	j->size = 12345;
	snprintf(j->sha256, sizeof(j->sha256), "sha256:%064d", 0);
	j->created = 1767225600;
	memcpy(j->self_wrapped, wrapped, wlen);
	j->self_wrapped_len = wlen;
	j->nrecipients = 1;
	snprintf(j->recipients[0].name, sizeof(j->recipients[0].name), "bob");
	memcpy(j->recipients[0].wrapped, wrapped, wlen);
	j->recipients[0].wrapped_len = wlen;

	for (int v = 0; v < 2; v++) {
		if (v == 1) {
			/* Three recipients, one done, short keys. */
			snprintf(j->folder, sizeof(j->folder),
				 "bob,carol.x,d_9");
			j->nrecipients = 3;
			j->size = 0;
			snprintf(j->recipients[1].name,
				 sizeof(j->recipients[1].name), "carol.x");
			snprintf(j->recipients[2].name,
				 sizeof(j->recipients[2].name), "d_9");
			for (int r = 1; r < 3; r++) {
				j->recipients[r].done = r == 1;
				j->recipients[r].wrapped[0] = (uint8_t)r;
				j->recipients[r].wrapped_len = (size_t)r;
			}
		}
		need(job_save(dir, j) == 0, "job_save");
		snprintf(path, sizeof(path), "%s/%s.job", dir, FUZZ_JOB_ID);
		f = fopen(path, "rb");
		need(f != NULL, "job read");
		char buf[8192];
		size_t n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		save("fuzz_jobs", v == 0 ? "one" : "three", buf, n);
		unlink(path);
	}
	rmdir(dir);
	free(wrapped);
	free(j);
}

static void gen_csr(void)
{
	struct pki_csr *csr = NULL;
	char *pem = NULL, *buf;
	size_t len = 0;

	need(pki_csr_new(key, "alice", &csr) == 0 &&
		     pki_csr_to_pem(csr, &pem, &len) == 0,
	     "csr");
	buf = malloc(len + 1);
	need(buf != NULL, "alloc");
	buf[0] = 0; /* selector: CSR, PEM */
	memcpy(buf + 1, pem, len);
	save("fuzz_pki", "csr-lib", buf, len + 1);
	free(buf);
	free(pem);
	pki_csr_free(csr);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	key = fuzz_load_key();
	need(key != NULL && pki_aead_new(fuzz_blob_key, &aead) == 0, "keys");
	gen_frames();
	gen_messages();
	gen_blobs();
	gen_jobs();
	gen_csr();
	pki_aead_free(aead);
	pki_key_free(key);
	return failures ? 1 : 0;
}
