/*
 * test_delivery: post/blob end to end on 127.0.0.1 between two in-process
 * nodes that share a throw-away CA: a sealed job is delivered, the receipt
 * removes it, the inbox copy decrypts to the original bytes; a job for an
 * unknown peer is reported as failed; delivery_stop returns promptly.
 *
 * No whole node is started: each side is made of the parts the delivery
 * queue and the server need (identity/self.h, wire/transport.h,
 * certs/certs.h, the stores, server/service.h), through their headers.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "certs/certs.h"
#include "delivery/delivery.h"
#include "identity/self.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/ca.h"
#include "pki/csr.h"
#include "server/service.h"
#include "store/blobfile.h"
#include "store/intake.h"
#include "store/received.h"
#include "tests/unit/check.h"
#include "wire/transport.h"
#include <pthread.h>

static struct pki_key *root_key;

/* One side: the parts of a node that sending and receiving use. */
struct side {
	struct self *self;
	struct transport *tr;
	struct certs *certs;
	struct received *received;
	struct intake *intake;
	struct server *service;
	struct pki_cert *cert;
};

/* OUT = STATE of N / the formatted relative path. */
static void in_state(char *out, const struct side *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void in_state(char *out, const struct side *n, const char *fmt, ...)
{
	char rel[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	CHECK(state_path(self_state(n->self), rel, out) == 0);
}
static struct pki_cert *root;

/*
 * A node named NAME under BASE/NAME, its certificate naming ADDR: its STATE
 * written as enrollment leaves it, then its parts made as node.c makes them.
 */
static struct side *make_node(const char *base, const char *name,
			      const char *addr)
{
	struct side *n = calloc(1, sizeof(*n));
	char state[STATE_PATH_MAX], path[STATE_PATH_MAX];
	snprintf(state, sizeof(state), "%s/%s", base, name);
	mkdir(state, 0700);
	struct state_config cfg = { 0 };
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	snprintf(cfg.listen, sizeof(cfg.listen), "%s", addr);
	CHECK(state_config_save(state, &cfg) == 0);
	struct pki_key *key = NULL;
	CHECK(pki_key_generate(2048, &key) == 0);
	struct pki_csr *csr = NULL;
	CHECK(pki_csr_new(key, name, &csr) == 0);
	CHECK(pki_ca_issue(root_key, root, csr, name, addr, 1, &n->cert) == 0);
	pki_csr_free(csr);
	CHECK(state_path(state, "node.key", path) == 0 &&
	      pki_key_save(key, path) == 0);
	CHECK(state_path(state, "node.pem", path) == 0 &&
	      pki_cert_save(n->cert, path) == 0);
	CHECK(state_path(state, "root.pem", path) == 0 &&
	      pki_cert_save(root, path) == 0);
	pki_key_free(key);
	const char *why = NULL;
	CHECK(self_load(state, NULL, &n->self, &why) == 0);
	/* Delivery runs over real mutual TLS, as between nodes. */
	CHECK(transport_new(n->self, &n->tr) == 0);
	CHECK(certs_new(n->self, n->tr, NULL, NULL, &n->certs) == 0);
	char received[STATE_PATH_MAX];
	in_state(received, n, "received.db");
	CHECK(received_open(received, &n->received) == 0);
	char incoming[STATE_PATH_MAX];
	in_state(incoming, n, "incoming");
	CHECK(intake_open(incoming, NULL, n->received, &n->intake) == 0);
	struct service_parts parts = {
		.self = n->self,
		.tr = n->tr,
		.certs = n->certs,
		.received = n->received,
		.intake = n->intake,
	};
	CHECK(service_new(&parts, &n->service) == 0);
	return n;
}

static void free_node(struct side *n)
{
	service_free(n->service);
	intake_free(n->intake);
	received_free(n->received);
	certs_free(n->certs);
	transport_free(n->tr);
	self_free(n->self);
	pki_cert_free(n->cert);
	free(n);
}

/* Seals DATA as job ID for RECIPIENT into A's STATE like the outbox does. */
static void make_job(struct side *a, struct pki_cert *to, const char *to_name,
		     const char *path, const uint8_t *data, size_t size,
		     struct job *j)
{
	uint8_t key[PKI_AEAD_KEY], id[PKI_BLOB_ID];
	CHECK(pki_blob_new_key(key, id) == 0);
	memset(j, 0, sizeof(*j));
	for (int i = 0; i < PKI_BLOB_ID; i++)
		snprintf(j->id + 2 * i, 3, "%02x", id[i]);
	snprintf(j->folder, sizeof(j->folder), "%s", to_name);
	snprintf(j->path, sizeof(j->path), "%s", path);
	j->size = size;
	j->created = time(NULL);

	char dir[STATE_PATH_MAX], file[STATE_PATH_MAX];
	in_state(dir, a, "sealed");
	mkdir(dir, 0700);
	in_state(file, a, "sealed/%s.blob", j->id);
	FILE *f = fopen(file, "wb");
	struct pki_aead *aead = NULL;
	CHECK(pki_aead_new(key, &aead) == 0);
	struct pki_sha256 *h = NULL;
	CHECK(pki_sha256_new(&h) == 0);
	static uint8_t out[PKI_BLOB_SEALED_CHUNK];
	uint64_t chunks = pki_blob_chunks(size);
	for (uint64_t c = 0; c < chunks; c++) {
		size_t len = pki_blob_chunk_len(size, c);
		CHECK(pki_blob_seal_chunk(aead, id, c, c + 1 == chunks,
					  data + c * PKI_BLOB_CHUNK, len,
					  out) == 0);
		fwrite(out, 1, len + PKI_AEAD_TAG, f);
		pki_sha256_update(h, out, len + PKI_AEAD_TAG);
	}
	fclose(f);
	pki_sha256_final(h, j->sha256);
	pki_aead_free(aead);

	uint8_t *w = NULL;
	size_t wlen = 0;
	CHECK(pki_wrap_for_key(self_key(a->self), key, sizeof(key), &w,
			       &wlen) == 0);
	memcpy(j->self_wrapped, w, wlen);
	j->self_wrapped_len = wlen;
	free(w);
	j->nrecipients = 1;
	snprintf(j->recipients[0].name, sizeof(j->recipients[0].name), "%s",
		 to_name);
	if (to)
		CHECK(pki_wrap_for_cert(to, key, sizeof(key), &w, &wlen) == 0);
	else
		CHECK(pki_wrap_for_key(self_key(a->self), key, sizeof(key), &w,
				       &wlen) == 0);
	memcpy(j->recipients[0].wrapped, w, wlen);
	j->recipients[0].wrapped_len = wlen;
	free(w);
	in_state(dir, a, "jobs");
	mkdir(dir, 0700);
	CHECK(job_save(dir, j) == 0);
}

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static int done_count;
static bool done_saw_record = true; /* every callback found its record */

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/*
 * ARG is the sender's node. The callback runs before delivery removes the
 * job's files, so the outbox can remove the record with its marker.
 */
static void on_done(void *arg, const struct job *j)
{
	char path[STATE_PATH_MAX];
	in_state(path, arg, "jobs/%s.job", j->id);
	bool record = exists(path);
	pthread_mutex_lock(&done_lock);
	done_count++;
	done_saw_record = done_saw_record && record;
	pthread_mutex_unlock(&done_lock);
}

/* Waits (bounded) until PATH is gone; true if it is. */
static bool gone(const char *path)
{
	for (int i = 0; i < 200 && exists(path); i++)
		usleep(10 * 1000);
	return !exists(path);
}

static int dones(void)
{
	pthread_mutex_lock(&done_lock);
	int n = done_count;
	pthread_mutex_unlock(&done_lock);
	return n;
}

int main(void)
{
	char base[] = "/tmp/test_delivery.XXXXXX";
	CHECK(mkdtemp(base) != NULL);
	CHECK(pki_key_generate(2048, &root_key) == 0);
	CHECK(pki_ca_make_root(root_key, "testca", 1, &root) == 0);

	int fd = -1;
	CHECK(net_listen("127.0.0.1:0", &fd) == 0);
	char addr_b[NET_ADDR_MAX];
	snprintf(addr_b, sizeof(addr_b), "127.0.0.1:%d", net_listen_port(fd));
	struct side *a = make_node(base, "alice", "127.0.0.1:1");
	struct side *b = make_node(base, "bob", addr_b);
	directory_put(self_directory(a->self), b->cert);
	directory_put(self_directory(b->self), a->cert);
	struct net_server *srv = NULL;
	struct net_server_opts sopts;
	service_server_opts(b->service, &sopts);
	CHECK(net_server_start(fd, &sopts, service_handle, b->service, &srv) ==
	      0);

	size_t size = 3 * PKI_BLOB_CHUNK + 1234;
	uint8_t *data = malloc(size);
	for (size_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 31 + 7);
	static struct job j, k;
	make_job(a, b->cert, "bob", "dir/data.bin", data, size, &j);

	struct delivery *d = NULL;
	const struct delivery_settings set = { .relay = true };
	CHECK(delivery_start(a->self, a->tr, a->certs, &set, on_done, a, &d) ==
	      0);
	for (int i = 0; i < 200 && dones() < 1; i++)
		usleep(50 * 1000);
	CHECK(dones() == 1);

	char path[STATE_PATH_MAX];
	in_state(path, a, "jobs/%s.job", j.id);
	CHECK(gone(path));
	in_state(path, a, "sealed/%s.blob", j.id);
	CHECK(gone(path));
	in_state(path, b, "incoming/alice/%s.part", j.id);
	CHECK(!exists(path));
	in_state(path, b, "inbox/alice/dir/data.bin");
	struct blobfile *bf = NULL;
	CHECK(blobfile_open(path, self_key(b->self), "bob", &bf) == 0);
	if (bf) {
		CHECK(blobfile_size(bf) == size);
		uint8_t *back = malloc(size);
		size_t got = 0, total = 0;
		while (total < size &&
		       blobfile_read(bf, back + total, size - total, total,
				     &got) == 0 &&
		       got > 0)
			total += got;
		CHECK(total == size && memcmp(back, data, size) == 0);
		free(back);
		blobfile_close(bf);
	}

	/* A second version of the same path replaces the first. */
	data[0] ^= 0xff;
	make_job(a, b->cert, "bob", "dir/data.bin", data, 10, &k);
	CHECK(delivery_submit(d, &k) == 0);
	CHECK(delivery_submit(d, &k) == -EEXIST);
	for (int i = 0; i < 200 && dones() < 2; i++)
		usleep(50 * 1000);
	CHECK(dones() == 2);
	pthread_mutex_lock(&done_lock);
	CHECK(done_saw_record);
	pthread_mutex_unlock(&done_lock);
	uint64_t sz = 0;
	CHECK(blobfile_peek_size(path, &sz) == 0 && sz == 10);

	/* Nobody called carol: the job waits, and says why. */
	make_job(a, NULL, "carol", "x.txt", data, 5, &k);
	CHECK(delivery_submit(d, &k) == 0);
	char text[512] = "";
	for (int i = 0; i < 100; i++) {
		CHECK(delivery_describe(d, k.id, text, sizeof(text)) == 0);
		if (strncmp(text, "failed: ", 8) == 0)
			break;
		usleep(50 * 1000);
	}
	CHECK(strstr(text, "failed: carol is not in certs/") == text);
	char *status = NULL;
	size_t slen = 0;
	CHECK(delivery_status(d, &status, &slen) == 0);
	CHECK(status && strstr(status, "  carol: 1 pending, last error: "));
	CHECK(status && strstr(status, "last delivery: never\n"));
	CHECK(status && strstr(status, "\n    x.txt  ") &&
	      strstr(strstr(status, "\n    x.txt  "), " failed: carol is not"));
	free(status);
	CHECK(delivery_describe(d, j.id, text, sizeof(text)) == -ENOENT);
	CHECK(delivery_cancel(d, k.id) == 0);
	CHECK(delivery_describe(d, k.id, text, sizeof(text)) == -ENOENT);
	CHECK(delivery_cancel(d, k.id) == -ENOENT);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	delivery_stop(d);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(t1.tv_sec - t0.tv_sec < 2);

	net_server_stop(srv);
	free_node(a);
	free_node(b);
	pki_cert_free(root);
	pki_key_free(root_key);
	free(data);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	CHECK(system(cmd) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
