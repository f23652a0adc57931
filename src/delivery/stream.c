/*
 * stream.c: sending a file while it is written (post/stream, the wire
 * format is in src/server/receive_stream.c). See stream.h.
 *
 * One thread per recipient follows the blob that the outbox seals ahead
 * (STATE/sealed/ID.blob): every whole chunk below the file's size is
 * sealed for good (chunks are written once, in order), so it is sent as
 * soon as it is there. When the file is closed and its job is sent,
 * send_entry claims the connection (stream_claim) and finishes it with
 * the signed trailer and the chunks sealed at the close. A stream that is
 * never claimed (the writer went back and the blob was thrown away, the
 * file was removed, the node stops, no new chunk for STREAM_STALL_S) just
 * closes its connection: the receiver keeps the chunks it has in its part
 * file, and the job, if there is one, is sent as post/blob, which resumes
 * from them (the receiver's "have").
 *
 * A file for several recipients that its job will relay
 * (src/delivery/relayed.c) streams to the first recipient only, the one
 * the job goes to directly; that one relays it once the trailer closed it.
 */
#include "delivery/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "certs/sync.h"
#include "delivery/internal.h"
#include "identity/self.h"
#include "lib/log.h"
#include "pki/blob.h"
#include "pki/verify.h"
#include "store/jobs.h"
#include "wire/proto.h"
#include "wire/transport.h"

#define STREAM_IDLE_FRAME  UINT64_C(0xfffffffffffffffd)
#define STREAM_ABORT_FRAME UINT64_C(0xfffffffffffffffe)
#define STREAM_CONNECT_MS  5000
#define STREAM_IO_MS       30000
/* Nothing new for this long: a keep-alive frame (receiver waits 30 s). */
#define STREAM_KEEPALIVE_MS 5000
/* How often the growing blob is looked at (adaptive, see follow()). */
#define STREAM_POLL_MIN_US 500
#define STREAM_POLL_MAX_US 20000

struct stream {
	struct delivery *d;
	char id[2 * PKI_BLOB_ID + 1];
	char peer[NAMES_NODE_MAX + 1];
	char path[NAMES_PATH_MAX + 1];
	char recipients[JOB_FOLDER_MAX + 1];
	pthread_t thread;
	/* Under streams_lock: */
	bool stop;             /* stop now (claim or node stop) */
	bool claimed;          /* ... and hand the connection over */
	bool done;             /* the thread ended; conn and sent are final */
	struct net_conn *conn; /* open, not yet ended, or NULL */
	uint64_t sent;
	struct stream *next;
};

static pthread_mutex_t streams_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t streams_cond = PTHREAD_COND_INITIALIZER;
static struct stream *streams;

bool stream_enabled(const struct delivery *d)
{
	return d->set.stream;
}

/* STREAM_STALL_S, or SNOOPFS_STREAM_STALL (seconds, for tests). */
static long long stall_ms(void)
{
	long long s = STREAM_STALL_S;
	const char *v = getenv("SNOOPFS_STREAM_STALL");
	if (v && *v) {
		char *end = NULL;
		long n = strtol(v, &end, 10);
		if (end && *end == '\0' && n > 0 && n <= STREAM_STALL_S)
			s = n;
	}
	return s * 1000;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static bool stopped(struct stream *st)
{
	pthread_mutex_lock(&streams_lock);
	bool s = st->stop;
	pthread_mutex_unlock(&streams_lock);
	return s;
}

/* The recipient's certificate and address, checked as send.c does. */
static struct pki_cert *peer_of(struct delivery *d, const char *name,
				char addr[NET_ADDR_MAX])
{
	struct directory *dir = self_directory(d->self);
	struct pki_cert *cert = directory_get1(dir, name);
	if (!cert)
		cert = sync_fetch_cert(d->certs, name);
	if (cert &&
	    (pki_verify_node_cert(self_root(d->self), cert, 0, NULL) != 0 ||
	     directory_get_addr(dir, name, addr) != 0)) {
		pki_cert_free(cert);
		cert = NULL;
	}
	return cert;
}

/* Opens the stream on a new connection; NULL if the peer says no. */
static struct net_conn *open_stream(struct stream *st)
{
	struct delivery *d = st->d;
	char addr[NET_ADDR_MAX], err[PROTO_ERR_MAX] = "";
	struct pki_cert *cert = peer_of(d, st->peer, addr);
	if (!cert)
		return NULL;
	struct net_connect_opts opts = { .timeout_ms = STREAM_CONNECT_MS };
	struct net_conn *c = NULL;
	struct msg_extra *x = msg_extra_new();
	int rc = x ? transport_connect(d->tr, addr, st->peer, &opts, &c, err)
		   : -1;
	if (rc == 0)
		rc = msg_extra_set_str(x, "id", st->id);
	if (rc == 0)
		rc = msg_extra_set_str(x, "recipients", st->recipients);
	uint64_t msg_id = 0;
	if (rc == 0) {
		net_conn_set_timeout(c, STREAM_IO_MS);
		struct proto_self self = proto_self_of(d->self, d->tr);
		struct proto_request req = { .method = "post/stream",
					     .args = st->path,
					     .extra = x };
		rc = proto_send_request(c, &self, &req, &msg_id);
	}
	struct msg *reply = NULL;
	if (rc == 0)
		rc = proto_recv_reply(c, "post/stream", msg_id, cert, st->peer,
				      &reply, err);
	msg_free(reply);
	msg_extra_free(x);
	pki_cert_free(cert);
	if (rc) {
		log_info("stream of %s to %s not started: %s", st->path,
			 st->peer, err[0] ? err : "refused");
		net_conn_close(c);
		return NULL;
	}
	return c;
}

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/*
 * Sends the whole chunks of the blob as they appear, until told to stop
 * or the blob is gone (thrown away: no job will ever claim this stream).
 * False if the stream is lost.
 */
static bool follow(struct stream *st, struct net_conn *c, uint8_t *frame)
{
	char path[STATE_PATH_MAX];
	if (delivery_sealed_path(st->d, st->id, path) != 0)
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = true;
	unsigned pause = STREAM_POLL_MIN_US;
	long long last = now_ms(), moved = last, stall = stall_ms();
	while (ok && !stopped(st)) {
		struct stat sb;
		if (fstat(fd, &sb) != 0 || sb.st_nlink == 0) {
			/*
			 * Thrown away (the writer went back, the file was
			 * removed): no job will resume this blob, so the
			 * receiver need not keep its part.
			 */
			put_be64(frame, STREAM_ABORT_FRAME);
			net_conn_send(c, frame, 8);
			ok = false;
			break;
		}
		uint64_t whole = (uint64_t)sb.st_size / PKI_BLOB_SEALED_CHUNK;
		if (st->sent >= whole) {
			/*
			 * A writer that holds its file open and writes
			 * nothing: the stream ends rather than hold a
			 * receiver's thread; the close sends the rest as
			 * post/blob, resuming.
			 */
			if (now_ms() - moved >= stall) {
				log_info("stream of %s to %s: no new chunk for "
					 "%lld s: ended; the close sends the "
					 "rest",
					 st->path, st->peer, stall / 1000);
				ok = false;
				break;
			}
			if (now_ms() - last >= STREAM_KEEPALIVE_MS) {
				put_be64(frame, STREAM_IDLE_FRAME);
				ok = net_conn_send(c, frame, 8) == 0;
				last = now_ms();
			}
			usleep(pause);
			pause = pause * 2 > STREAM_POLL_MAX_US
					? STREAM_POLL_MAX_US
					: pause * 2;
			continue;
		}
		pause = STREAM_POLL_MIN_US;
		size_t got = 0;
		if (fileio_pread_full(fd, frame + 8, PKI_BLOB_SEALED_CHUNK,
				      pki_blob_chunk_offset(st->sent),
				      &got) != 0 ||
		    got != PKI_BLOB_SEALED_CHUNK) {
			ok = false;
			break;
		}
		put_be64(frame, st->sent);
		ok = net_conn_send(c, frame, 8 + PKI_BLOB_SEALED_CHUNK) == 0;
		if (ok) {
			pthread_mutex_lock(&streams_lock);
			st->sent++;
			pthread_mutex_unlock(&streams_lock);
			last = moved = now_ms();
		}
	}
	close(fd);
	return ok;
}

static void *stream_main(void *arg)
{
	struct stream *st = arg;
	uint8_t *frame = malloc(8 + PKI_BLOB_SEALED_CHUNK);
	struct net_conn *c = frame ? open_stream(st) : NULL;
	pthread_mutex_lock(&streams_lock);
	st->conn = c;
	pthread_mutex_unlock(&streams_lock);
	bool ok = c && follow(st, c, frame);
	free(frame);
	pthread_mutex_lock(&streams_lock);
	bool hand = ok && st->claimed;
	if (!hand && c) {
		st->conn = NULL;
		pthread_mutex_unlock(&streams_lock);
		/*
		 * The receiver keeps the part of a stream without trailer
		 * for the post/blob that resumes it.
		 */
		net_conn_close(c);
		pthread_mutex_lock(&streams_lock);
	}
	st->done = true;
	pthread_cond_broadcast(&streams_cond);
	pthread_mutex_unlock(&streams_lock);
	return NULL;
}

/* Takes ST off the list, joins and frees it; lock not held. */
static void reap(struct stream *st);

/* Frees one stream of D that ended on its own (no job will claim it). */
static bool reap_one_ended(struct delivery *d)
{
	pthread_mutex_lock(&streams_lock);
	struct stream *st = streams;
	while (st && !(st->d == d && st->done && !st->claimed))
		st = st->next;
	if (st)
		st->claimed = true; /* nobody else reaps it */
	pthread_mutex_unlock(&streams_lock);
	if (st)
		reap(st);
	return st != NULL;
}

/*
 * False if the job of a file for RECIPIENTS will not go to PEER directly
 * at first: relayed.c sends a relayed job to the first recipient only.
 */
static bool direct(const struct delivery *d, const char *recipients,
		   const char *peer)
{
	const char *comma = strchr(recipients, ',');
	if (!comma || !d->set.relay)
		return true;
	size_t n = (size_t)(comma - recipients);
	return strlen(peer) == n && strncmp(recipients, peer, n) == 0;
}

void stream_begin(struct delivery *d, const char *id, const char *path,
		  const char *recipients, const char *peer)
{
	if (!direct(d, recipients, peer))
		return;
	while (reap_one_ended(d))
		;
	struct stream *st = calloc(1, sizeof(*st));
	if (!st)
		return;
	st->d = d;
	snprintf(st->id, sizeof(st->id), "%s", id);
	snprintf(st->peer, sizeof(st->peer), "%s", peer);
	snprintf(st->path, sizeof(st->path), "%s", path);
	snprintf(st->recipients, sizeof(st->recipients), "%s", recipients);
	pthread_mutex_lock(&streams_lock);
	if (d->stopping || pthread_create(&st->thread, NULL, stream_main, st)) {
		pthread_mutex_unlock(&streams_lock);
		free(st);
		return;
	}
	st->next = streams;
	streams = st;
	pthread_mutex_unlock(&streams_lock);
	log_info("streaming %s to %s while it is written (blob %s)", path, peer,
		 id);
}

static void reap(struct stream *st)
{
	pthread_mutex_lock(&streams_lock);
	for (struct stream **p = &streams; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
	pthread_mutex_unlock(&streams_lock);
	pthread_join(st->thread, NULL);
	if (st->conn)
		net_conn_close(st->conn);
	free(st);
}

struct net_conn *stream_claim(struct delivery *d, const char *id,
			      const char *peer, uint64_t *sent)
{
	pthread_mutex_lock(&streams_lock);
	struct stream *st = streams;
	/* One that is claimed is being reaped (reap_one_ended). */
	while (st && !(st->d == d && !st->claimed && strcmp(st->id, id) == 0 &&
		       strcmp(st->peer, peer) == 0))
		st = st->next;
	if (!st) {
		pthread_mutex_unlock(&streams_lock);
		return NULL;
	}
	st->stop = true;
	st->claimed = true;
	while (!st->done)
		pthread_cond_wait(&streams_cond, &streams_lock);
	struct net_conn *c = st->conn;
	st->conn = NULL;
	*sent = st->sent;
	pthread_mutex_unlock(&streams_lock);
	reap(st);
	return c;
}

void stream_stop_all(struct delivery *d)
{
	for (;;) {
		pthread_mutex_lock(&streams_lock);
		struct stream *st = streams;
		while (st && st->d != d)
			st = st->next;
		if (st) {
			st->stop = true;
			if (st->conn)
				net_conn_shutdown(st->conn);
		}
		pthread_mutex_unlock(&streams_lock);
		if (!st)
			return;
		reap(st);
	}
}
