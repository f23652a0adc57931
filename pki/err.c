/*
 * err: the pki error codes in words, and draining OpenSSL's error queue
 * into the debug log (every pki/ file reports OpenSSL failures through it).
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

const char *pki_strerror(int code)
{
	switch (code) {
	case PKI_OK:
		return "success";
	case PKI_ENOMEM:
		return "out of memory";
	case PKI_EIO:
		return "file input/output failed";
	case PKI_EPARSE:
		return "not a well-formed PEM object";
	case PKI_ETOOBIG:
		return "input is larger than the PEM size limit";
	case PKI_EKEY:
		return "key is unusable (not RSA, too small, or not matching)";
	case PKI_ESIG:
		return "signature does not verify";
	case PKI_ENAME:
		return "subject name is missing or not a valid node name";
	case PKI_EVERIFY:
		return "certificate was not issued by the trusted CA";
	case PKI_EEXPIRED:
		return "certificate has expired or is not yet valid";
	case PKI_EPURPOSE:
		return "certificate is not usable for this purpose";
	case PKI_EINVAL:
		return "invalid argument";
	case PKI_ECRYPTO:
		return "cryptographic library failure";
	default:
		return "unknown pki error";
	}
}

int pki_ossl_fail(int code, const char *what)
{
	const char *data = NULL;
	int flags = 0;
	unsigned long e;
	char buf[256];

	/*
	 * The queue is per thread and OpenSSL never empties it by itself: if
	 * we left entries behind, a later unrelated failure would be blamed
	 * on them. So every failure path drains it here.
	 */
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		if (data != NULL && (flags & ERR_TXT_STRING) != 0)
			log_debug("pki: %s: %s (%s)", what, buf, data);
		else
			log_debug("pki: %s: %s", what, buf);
	}
	return code;
}

int pki_to_errno(int code)
{
	if (code < 0 && code >= -ERRCODES_ERRNO_MAX)
		return code;
	switch (code) {
	case PKI_OK:
		return 0;
	case PKI_ENOMEM:
		return -ENOMEM;
	case PKI_EINVAL:
		return -EINVAL;
	case PKI_ESIG:
	case PKI_EKEY:
		return -EBADMSG;
	default:
		return -EIO;
	}
}
