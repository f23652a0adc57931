/*
 * backend.c: the tree fs/ shows, from the node: certs/, inbox/, outbox/
 * and the status text. Errors leave here as -errno: what the parts below
 * return goes through errors_to_errno, so a code of any family that got
 * this far still reaches the kernel as an errno (an errno stays itself).
 */
#include "tree/backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/errors.h"
#include "identity/self.h"
#include "tree/inbox.h"
#include "tree/outbox.h"
#include "tree/refused.h"
#include "tree/status.h"
#include "tree/status_export.h"
#include "tree/status_snap.h"

/* The two trees the backend serves besides certs/. */
enum tree { TREE_INBOX, TREE_OUTBOX };

/*
 * A FUSE handle remembers which tree made it. Live handles are listed in
 * the backend so that those the kernel never releases (a lazy unmount with
 * files open) are closed at shutdown.
 */
struct tree_handle {
	struct tree_handle *prev, *next;
	enum tree tree;
	uint64_t inner;
};

/* The ctx fs/ passes back: the node's tree, and the handles open on it. */
struct backend {
	struct self *self;
	struct outbox *outbox;
	const struct status_parts *status;
	/* lock protects the list of live handles headed by handles */
	pthread_mutex_t lock;
	struct tree_handle handles;
};

int backend_new(struct self *self, struct outbox *outbox,
		const struct status_parts *status, struct backend **out)
{
	struct backend *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->self = self;
	b->outbox = outbox;
	b->status = status;
	pthread_mutex_init(&b->lock, NULL);
	b->handles.next = b->handles.prev = &b->handles;
	*out = b;
	return 0;
}

void backend_free(struct backend *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

struct fill_ctx {
	fs_fill_fn fill;
	void *buf;
};

static int fill_one(void *arg, const char *name)
{
	struct fill_ctx *f = arg;
	return f->fill(f->buf, name);
}

static int be_list_certs(void *ctx, fs_fill_fn fill, void *buf)
{
	struct backend *b = ctx;
	struct fill_ctx f = { .fill = fill, .buf = buf };
	return errors_to_errno(
		directory_each(self_directory(b->self), fill_one, &f));
}

/* certs/crl.pem: the CRL this node holds, as PEM. */
static int read_crl(struct backend *b, char **data, size_t *len)
{
	struct pki_crl *crl = directory_get1_crl(self_directory(b->self));
	if (!crl)
		return -ENOENT;
	int rc = pki_crl_to_pem(crl, data, len);
	pki_crl_free(crl);
	return rc ? -EIO : 0;
}

static int be_read_cert(void *ctx, const char *name, enum fs_cert_form form,
			char **data, size_t *len)
{
	struct backend *b = ctx;
	if (strcmp(name, "crl") == 0)
		return form == FS_CERT_PEM ? read_crl(b, data, len) : -ENOENT;
	struct pki_cert *cert =
		strcmp(name, "root") == 0
			? pki_cert_dup(self_root(b->self))
			: directory_get1(self_directory(b->self), name);
	if (!cert)
		return -ENOENT;
	int rc = form == FS_CERT_PEM ? pki_cert_to_pem(cert, data, len)
				     : pki_cert_summary(cert, time(NULL), data);
	pki_cert_free(cert);
	if (rc)
		return -EIO;
	if (form == FS_CERT_TXT)
		*len = strlen(*data);
	return 0;
}

static int be_status(void *ctx, enum fs_status_form form, char **text,
		     size_t *len)
{
	struct backend *b = ctx;
	time_t now = time(NULL);
	if (form == FS_STATUS_TEXT)
		return errors_to_errno(status_text(b->status, now, text, len));
	/* --json and --prometheus: two renderings of one snapshot. */
	struct status_snap snap;
	int rc = status_snap_take(b->status, now, &snap);
	if (rc)
		return rc;
	rc = form == FS_STATUS_JSON
		     ? status_export_json(&snap, text, len)
		     : status_export_prometheus(&snap, text, len);
	status_snap_clear(&snap);
	return rc;
}

/* ---- inbox/ and outbox/: route by the first part of the path ---- */

/* Which tree PATH is in, and the path inside it ("" for its top). */
static enum tree route(const char *path, const char **rel)
{
	bool inbox = strncmp(path, "/inbox", 6) == 0;
	const char *r = path + (inbox ? 6 : 7);
	*rel = *r == '/' ? r + 1 : r;
	return inbox ? TREE_INBOX : TREE_OUTBOX;
}

/* -EACCES for PATH, a change in the read-only inbox/, with the reason logged.
 */
static int inbox_read_only(const char *path)
{
	tree_refused(-EACCES, "%s: inbox/ is read-only (rm consumes a file)",
		     path ? path + 1 : "inbox");
	return -EACCES;
}

static int wrap_handle(void *ctx, enum tree tree, uint64_t inner, uint64_t *fh)
{
	struct backend *b = ctx;
	struct tree_handle *h = malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->tree = tree;
	h->inner = inner;
	pthread_mutex_lock(&b->lock);
	h->next = b->handles.next;
	h->prev = &b->handles;
	b->handles.next->prev = h;
	b->handles.next = h;
	pthread_mutex_unlock(&b->lock);
	*fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static void unlist_handle(void *ctx, struct tree_handle *h)
{
	struct backend *b = ctx;
	pthread_mutex_lock(&b->lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&b->lock);
}

static struct tree_handle *handle(uint64_t fh)
{
	return (struct tree_handle *)(uintptr_t)fh;
}

static int be_getattr(void *ctx, const char *path, struct stat *st)
{
	struct backend *b = ctx;
	const char *rel;
	return errors_to_errno(route(path, &rel) == TREE_INBOX
				       ? inbox_getattr(b->self, rel, st)
				       : outbox_getattr(b->outbox, rel, st));
}

static int be_readdir(void *ctx, const char *path, fs_fill_fn fill, void *buf)
{
	struct backend *b = ctx;
	const char *rel;
	return errors_to_errno(
		route(path, &rel) == TREE_INBOX
			? inbox_readdir(b->self, rel, fill, buf)
			: outbox_readdir(b->outbox, rel, fill, buf));
}

static int be_mkdir(void *ctx, const char *path)
{
	struct backend *b = ctx;
	const char *rel;
	return route(path, &rel) == TREE_INBOX
		       ? inbox_read_only(path)
		       : errors_to_errno(outbox_mkdir(b->outbox, rel));
}

static int be_rmdir(void *ctx, const char *path)
{
	struct backend *b = ctx;
	const char *rel;
	return errors_to_errno(route(path, &rel) == TREE_INBOX
				       ? inbox_rmdir(b->self, rel)
				       : outbox_rmdir(b->outbox, rel));
}

static int be_unlink(void *ctx, const char *path)
{
	struct backend *b = ctx;
	const char *rel;
	return errors_to_errno(route(path, &rel) == TREE_INBOX
				       ? inbox_unlink(b->self, rel)
				       : outbox_unlink(b->outbox, rel));
}

static int be_rename(void *ctx, const char *from, const char *to,
		     unsigned flags)
{
	struct backend *b = ctx;
	const char *rfrom, *rto;
	if (route(from, &rfrom) != TREE_OUTBOX)
		return inbox_read_only(from);
	if (route(to, &rto) != TREE_OUTBOX)
		return inbox_read_only(to);
	return errors_to_errno(outbox_rename(b->outbox, rfrom, rto, flags));
}

static int be_create(void *ctx, const char *path, int flags, uint64_t *fh)
{
	struct backend *b = ctx;
	const char *rel;
	uint64_t inner;
	if (route(path, &rel) == TREE_INBOX)
		return inbox_read_only(path);
	int rc = outbox_create(b->outbox, rel, flags, &inner);
	if (rc == 0 && (rc = wrap_handle(ctx, TREE_OUTBOX, inner, fh)) != 0)
		outbox_release(b->outbox, inner);
	return errors_to_errno(rc);
}

static int be_open(void *ctx, const char *path, int flags, uint64_t *fh)
{
	struct backend *b = ctx;
	const char *rel;
	uint64_t inner;
	enum tree t = route(path, &rel);
	int rc = t == TREE_INBOX
			 ? inbox_open(b->self, rel, flags, &inner)
			 : outbox_open_file(b->outbox, rel, flags, &inner);
	if (rc == 0 && (rc = wrap_handle(ctx, t, inner, fh)) != 0) {
		if (t == TREE_INBOX)
			inbox_release(inner);
		else
			outbox_release(b->outbox, inner);
	}
	return errors_to_errno(rc);
}

static int be_read(void *ctx, uint64_t fh, char *buf, size_t size, uint64_t off)
{
	struct backend *b = ctx;
	struct tree_handle *h = handle(fh);
	return errors_to_errno(
		h->tree == TREE_INBOX
			? inbox_read(h->inner, buf, size, off)
			: outbox_read(b->outbox, h->inner, buf, size, off));
}

static int be_write(void *ctx, uint64_t fh, const char *buf, size_t size,
		    uint64_t off)
{
	struct backend *b = ctx;
	struct tree_handle *h = handle(fh);
	return h->tree == TREE_INBOX
		       ? -EACCES
		       : errors_to_errno(outbox_write(b->outbox, h->inner, buf,
						      size, off));
}

static int be_truncate(void *ctx, const char *path, bool has_fh, uint64_t fh,
		       uint64_t size)
{
	struct backend *b = ctx;
	const char *rel = "";
	/* With a handle, PATH may be NULL (the file was removed while open). */
	enum tree t = has_fh ? handle(fh)->tree : route(path, &rel);
	if (t == TREE_INBOX)
		return inbox_read_only(path);
	return errors_to_errno(outbox_truncate(
		b->outbox, rel, has_fh, has_fh ? handle(fh)->inner : 0, size));
}

static int be_flush(void *ctx, uint64_t fh)
{
	struct backend *b = ctx;
	struct tree_handle *h = handle(fh);
	return h->tree == TREE_INBOX
		       ? 0
		       : errors_to_errno(outbox_flush(b->outbox, h->inner));
}

static int be_fsync(void *ctx, uint64_t fh)
{
	struct backend *b = ctx;
	struct tree_handle *h = handle(fh);
	return h->tree == TREE_INBOX
		       ? 0
		       : errors_to_errno(outbox_fsync(b->outbox, h->inner));
}

static int be_release(void *ctx, const char *path, uint64_t fh)
{
	(void)path;
	struct backend *b = ctx;
	struct tree_handle *h = handle(fh);
	unlist_handle(ctx, h);
	int rc = h->tree == TREE_INBOX ? inbox_release(h->inner)
				       : outbox_release(b->outbox, h->inner);
	free(h);
	return errors_to_errno(rc);
}

static void be_shutdown(void *ctx)
{
	struct backend *b = ctx;
	pthread_mutex_lock(&b->lock);
	while (b->handles.next != &b->handles) {
		struct tree_handle *h = b->handles.next;
		b->handles.next = h->next;
		if (h->tree == TREE_INBOX)
			inbox_release(h->inner);
		else
			outbox_drop_handle(h->inner);
		free(h);
	}
	b->handles.prev = &b->handles;
	pthread_mutex_unlock(&b->lock);
}

static int be_set_owner(void *ctx, const char *path, uid_t uid)
{
	struct backend *b = ctx;
	const char *rel;
	return route(path, &rel) == TREE_OUTBOX
		       ? outbox_set_owner(b->outbox, rel, uid)
		       : -EACCES;
}

static int be_state(void *ctx, const char *path, char **text, size_t *len)
{
	struct backend *b = ctx;
	const char *rel;
	if (route(path, &rel) == TREE_OUTBOX)
		return errors_to_errno(outbox_state(b->outbox, rel, text, len));
	struct stat st;
	if (inbox_getattr(b->self, rel, &st) != 0 || !S_ISREG(st.st_mode))
		return -ENODATA;
	*text = strdup("received");
	if (!*text)
		return -ENOMEM;
	*len = strlen(*text);
	return 0;
}

const struct fs_backend backend_ops = {
	.list_certs = be_list_certs,
	.read_cert = be_read_cert,
	.status = be_status,
	.getattr = be_getattr,
	.readdir = be_readdir,
	.mkdir = be_mkdir,
	.rmdir = be_rmdir,
	.unlink = be_unlink,
	.rename = be_rename,
	.create = be_create,
	.open = be_open,
	.read = be_read,
	.write = be_write,
	.truncate = be_truncate,
	.flush = be_flush,
	.fsync = be_fsync,
	.release = be_release,
	.set_owner = be_set_owner,
	.state = be_state,
	.shutdown = be_shutdown,
};
