/*
 * pki errors: every pki_* function returns 0 or one of these negative codes.
 * OpenSSL's error queue is read, logged (at debug level) and cleared inside
 * pki/, so callers only ever see these codes.
 */
#ifndef SNOOPFS_PKI_ERR_H
#define SNOOPFS_PKI_ERR_H

enum pki_err {
	PKI_OK = 0,
	PKI_ENOMEM = -1,    /* allocation failed */
	PKI_EIO = -2,       /* reading or writing a file failed (errno set) */
	PKI_EPARSE = -3,    /* not a well-formed PEM/DER object */
	PKI_ETOOBIG = -4,   /* input larger than PKI_PEM_MAX */
	PKI_EKEY = -5,      /* key unusable: not RSA, too small, mismatch */
	PKI_ESIG = -6,      /* a signature does not verify */
	PKI_ENAME = -7,     /* subject name missing or not a valid node name */
	PKI_EVERIFY = -8,   /* certificate chain verification failed */
	PKI_EEXPIRED = -9,  /* certificate expired or not yet valid */
	PKI_EPURPOSE = -10, /* certificate not usable for this purpose */
	PKI_EINVAL = -11,   /* bad argument */
	PKI_ECRYPTO = -12,  /* any other OpenSSL failure */
};

/* Returns a static English sentence for CODE. */
const char *pki_strerror(int code);

/*
 * The -errno for CODE, for callers that speak errno: 0 stays 0, a signature
 * or key that does not verify is -EBADMSG, bad input -EINVAL, no memory
 * -ENOMEM, and anything else -EIO.
 */
int pki_to_errno(int code);

/*
 * For pki/'s own files: logs every entry of OpenSSL's error queue at debug
 * level, prefixed with WHAT, and leaves the queue empty. Returns CODE so
 * that error paths can say "return pki_ossl_fail(PKI_ECRYPTO, "signing")".
 */
int pki_ossl_fail(int code, const char *what);

#endif
