/*
 * io: the file and memory plumbing pki/ shares: reading PEM files with a
 * size limit, replacing files atomically (temporary name, fsync, rename,
 * fsync of the directory), and moving PEM text in and out of BIOs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>

#include "lib/log.h"
#include "pki/err.h"
#include "pki/internal.h"
#include "pki/rand.h"

/* How often a colliding temporary name is retried before giving up. */
#define TMP_TRIES 8

int pki_file_read(const char *path, char **buf, size_t *len)
{
	struct stat st;
	size_t used = 0;
	char *p;
	int fd, saved;

	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return PKI_EIO;
	if (fstat(fd, &st) != 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return PKI_EIO;
	}
	/* Refuse early when the size is known; the read loop catches FIFOs. */
	if (S_ISREG(st.st_mode) && st.st_size > (off_t)PKI_PEM_MAX) {
		close(fd);
		return PKI_ETOOBIG;
	}
	p = malloc(PKI_PEM_MAX + 1);
	if (p == NULL) {
		close(fd);
		return PKI_ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, p + used, PKI_PEM_MAX + 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			pki_wipe(p, used);
			free(p);
			close(fd);
			errno = saved;
			return PKI_EIO;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > PKI_PEM_MAX) {
			pki_wipe(p, used);
			free(p);
			close(fd);
			return PKI_ETOOBIG;
		}
	}
	close(fd);
	*buf = p;
	*len = used;
	return 0;
}

/* Splits PATH into the directory part (with its '/') and the base name. */
static int tmp_name(const char *path, char *tmp, size_t size)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	int dirlen = (int)(base - path);
	unsigned char rnd[8];
	int n;

	if (*base == '\0')
		return PKI_EINVAL;
	if (pki_rand_bytes(rnd, sizeof(rnd)) != 0)
		return PKI_ECRYPTO;
	/* Hidden, so that nobody lists or ships a half-written file. */
	n = snprintf(tmp, size, "%.*s.%s.tmp-%02x%02x%02x%02x%02x%02x%02x%02x",
		     dirlen, path, base, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
		     rnd[5], rnd[6], rnd[7]);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return PKI_EIO;
	}
	return 0;
}

/* Makes the rename durable: fsync the directory that holds PATH. */
static int sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd, rc = 0;

	if (slash == NULL) {
		dir[0] = '.';
		dir[1] = '\0';
	} else if (slash == path) {
		dir[0] = '/';
		dir[1] = '\0';
	} else {
		size_t n = (size_t)(slash - path);

		if (n >= sizeof(dir)) {
			errno = ENAMETOOLONG;
			return PKI_EIO;
		}
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return PKI_EIO;
	/* Some file systems cannot sync directories; that is not our error. */
	if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP)
		rc = PKI_EIO;
	close(fd);
	return rc;
}

int pki_file_write(const char *path, const void *data, size_t len, mode_t mode)
{
	const char *p = data;
	char tmp[4096];
	size_t done = 0;
	int fd = -1, rc, saved, i;

	if (path == NULL || (data == NULL && len > 0))
		return PKI_EINVAL;
	for (i = 0; i < TMP_TRIES && fd < 0; i++) {
		rc = tmp_name(path, tmp, sizeof(tmp));
		if (rc != 0)
			return rc;
		/* 0600 at first: a key must never be readable, even briefly. */
		fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			return PKI_EIO;
	}
	if (fd < 0)
		return PKI_EIO;
	/* fchmod, not the open mode, so the umask cannot change what we say. */
	if (fchmod(fd, mode) != 0)
		goto fail;
	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		done += (size_t)n;
	}
	if (fsync(fd) != 0)
		goto fail;
	rc = close(fd);
	fd = -1;
	if (rc != 0)
		goto fail;
	if (rename(tmp, path) != 0)
		goto fail;
	return sync_dir(path);
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
	return PKI_EIO;
}

int pki_bio_to_buf(BIO *b, char **pem, size_t *len)
{
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	char *out;

	if (n < 0 || (n > 0 && data == NULL))
		return pki_ossl_fail(PKI_ECRYPTO, "reading memory BIO");
	out = malloc((size_t)n + 1);
	if (out == NULL)
		return PKI_ENOMEM;
	if (n > 0)
		memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*pem = out;
	*len = (size_t)n;
	return 0;
}

int pki_pem_bio(const char *pem, size_t len, BIO **out)
{
	BIO *b;

	*out = NULL;
	if (pem == NULL)
		return PKI_EINVAL;
	/* The limit comes first: nothing of an oversized input is parsed. */
	if (len > PKI_PEM_MAX)
		return PKI_ETOOBIG;
	b = BIO_new_mem_buf(pem, (int)len);
	if (b == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "memory BIO");
	*out = b;
	return 0;
}

int pki_load_file(const char *path, pki_pem_parser parse, void *out)
{
	size_t len;
	char *buf;
	int rc;

	rc = pki_file_read(path, &buf, &len);
	if (rc != 0)
		return rc;
	rc = parse(buf, len, out);
	pki_wipe(buf, len);
	free(buf);
	return rc;
}

int pki_pem_encode(pki_pem_writer write, const void *obj, const char *what,
		   char **pem, size_t *len)
{
	BIO *b;
	int rc;

	*pem = NULL;
	*len = 0;
	b = BIO_new(BIO_s_mem());
	if (b == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "memory BIO");
	if (write(b, obj) != 1) {
		BIO_free(b);
		return pki_ossl_fail(PKI_ECRYPTO, what);
	}
	rc = pki_bio_to_buf(b, pem, len);
	BIO_free(b);
	return rc;
}

int pki_pem_save(pki_pem_writer write, const void *obj, const char *what,
		 const char *path)
{
	size_t len;
	char *pem;
	int rc;

	rc = pki_pem_encode(write, obj, what, &pem, &len);
	if (rc != 0)
		return rc;
	rc = pki_file_write(path, pem, len, 0644);
	free(pem);
	return rc;
}
