/*
 * pki errors: every pki_* function returns 0 or one of these negative codes
 * (pki_fp_normalize, from enroll, returns -EINVAL). OpenSSL's error queue is
 * read, logged (at debug level) and cleared inside pki/, so callers only
 * ever see these codes. They have a range of their own (lib/errcodes.h):
 * code above pki/ prints any code with errors_str (base/errors.h).
 */
#ifndef SNOOPFS_PKI_ERR_H
#define SNOOPFS_PKI_ERR_H

#include "lib/errcodes.h"

enum pki_err {
	PKI_OK = 0,
	PKI_ENOMEM = -1001,  /* allocation failed */
	PKI_EIO = -1002,     /* reading or writing a file failed (errno set) */
	PKI_EPARSE = -1003,  /* not a well-formed PEM/DER object */
	PKI_ETOOBIG = -1004, /* input larger than PKI_PEM_MAX */
	PKI_EKEY = -1005,    /* key unusable: not RSA, too small, mismatch */
	PKI_ESIG = -1006,    /* a signature does not verify */
	PKI_ENAME = -1007,   /* subject name missing or not a valid node name */
	PKI_EVERIFY = -1008, /* certificate chain verification failed */
	PKI_EEXPIRED = -1009, /* certificate expired or not yet valid */
	PKI_EPURPOSE = -1010, /* certificate not usable for this purpose */
	PKI_EINVAL = -1011,   /* bad argument */
	PKI_ECRYPTO = -1012,  /* any other OpenSSL failure */
};
/* The codes run from PKI_ENOMEM down to this one without gaps. */
#define PKI_ERR_LAST PKI_ECRYPTO
_Static_assert(ERRCODES_IN(PKI_ENOMEM, ERRCODES_PKI) &&
		       ERRCODES_IN(PKI_ERR_LAST, ERRCODES_PKI),
	       "pki codes stay in pki's range (lib/errcodes.h)");

/*
 * A static English sentence for CODE, a pki code or PKI_OK ("unknown pki
 * error" for anything else: errors_str says what any code means).
 */
const char *pki_strerror(int code);

/*
 * The -errno for CODE, for callers that speak errno: 0 stays 0, a signature
 * or key that does not verify is -EBADMSG, bad input -EINVAL, no memory
 * -ENOMEM, and any other pki code -EIO. A negative errno stays itself.
 * errors_to_errno (base/errors.h) takes a code of any family.
 */
int pki_to_errno(int code);

/*
 * For pki/'s own files: logs every entry of OpenSSL's error queue at debug
 * level, prefixed with WHAT, and leaves the queue empty. Returns CODE so
 * that error paths can say "return pki_ossl_fail(PKI_ECRYPTO, "signing")".
 */
int pki_ossl_fail(int code, const char *what);

#endif
