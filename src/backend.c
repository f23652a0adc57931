/*
 * backend.c: certs/ and the status text. Errors leave here as -errno.
 */
#include "src/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/node.h"
#include "src/status.h"

struct fill_ctx {
	struct node *n;
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
	struct fill_ctx f = { .n = ctx, .fill = fill, .buf = buf };
	return directory_each(f.n->dir, fill_one, &f);
}

static int be_read_cert(void *ctx, const char *name, enum fs_cert_form form,
			char **data, size_t *len)
{
	struct node *n = ctx;
	struct pki_cert *cert = strcmp(name, "root") == 0
					? pki_cert_dup(n->root)
					: directory_get1(n->dir, name);
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

static int be_status(void *ctx, char **text, size_t *len)
{
	return status_text(ctx, time(NULL), text, len);
}

const struct fs_backend node_backend = {
	.list_certs = be_list_certs,
	.read_cert = be_read_cert,
	.status = be_status,
};
