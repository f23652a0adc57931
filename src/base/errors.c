/*
 * errors.c: see errors.h. The words and errno of pki and net codes stay
 * with their families (pki/err.c, net/err.c); those of the registry and
 * the replay store, whose folders are above this one, are here.
 */
#include "base/errors.h"

#include <errno.h>
#include <string.h>

#include "net/err.h"
#include "pki/err.h"

/* Each family in a range of its own, none overlapping errno's or another's. */
_Static_assert(ERRCODES_PKI <= -ERRCODES_ERRNO_MAX - 1 &&
		       ERRCODES_NET <= ERRCODES_PKI - ERRCODES_SPAN &&
		       ERRCODES_REGISTRY <= ERRCODES_NET - ERRCODES_SPAN &&
		       ERRCODES_REPLAY <= ERRCODES_REGISTRY - ERRCODES_SPAN,
	       "the families' ranges are disjoint (lib/errcodes.h)");

static const char *registry_words(int rc)
{
	switch (rc) {
	case REGISTRY_ENOTFOUND:
		return "no certificate under that name";
	case REGISTRY_ETAKEN:
		return "the name is taken by a valid certificate for another "
		       "key";
	case REGISTRY_ESERIAL:
		return "serial number already used";
	case REGISTRY_EDB:
		return "the CA registry database failed";
	case REGISTRY_EREVOKED:
		return "a certificate for this key was revoked: enroll with a "
		       "new key";
	case REGISTRY_ETOKEN:
		return "unknown join token or wrong secret";
	case REGISTRY_ETOKEN_NAME:
		return "the join token was issued for another name";
	case REGISTRY_ETOKEN_USED:
		return "the join token was already used";
	case REGISTRY_ETOKEN_EXPIRED:
		return "the join token has expired";
	case REGISTRY_ETOKEN_REVOKED:
		return "the join token was revoked by the CA operator";
	}
	return "unknown registry error";
}

static int registry_errno(int rc)
{
	switch (rc) {
	case REGISTRY_ENOTFOUND:
		return -ENOENT;
	case REGISTRY_ETAKEN:
	case REGISTRY_ESERIAL:
		return -EEXIST;
	case REGISTRY_EREVOKED:
	case REGISTRY_ETOKEN:
	case REGISTRY_ETOKEN_NAME:
	case REGISTRY_ETOKEN_USED:
	case REGISTRY_ETOKEN_EXPIRED:
	case REGISTRY_ETOKEN_REVOKED:
		return -EPERM;
	default: /* REGISTRY_EDB, and numbers that are no code */
		return -EIO;
	}
}

static const char *replay_words(int rc)
{
	switch (rc) {
	case REPLAY_EWINDOW:
		return "timestamp outside the ±5 minute window: check the "
		       "clocks";
	case REPLAY_EREPLAYED:
		return "replayed message";
	case REPLAY_ESTORE:
		return "this node cannot record the message id (replay store "
		       "failed)";
	case REPLAY_ENOMEM:
		return "out of memory";
	case REPLAY_EFULL:
		return "no space left on this node (its replay store cannot "
		       "record the message id)";
	case REPLAY_EFENCE:
		return "the message is dated before this node was restored "
		       "from a backup: send it again";
	}
	return "unknown replay error";
}

static int replay_errno(int rc)
{
	switch (rc) {
	case REPLAY_EWINDOW:
	case REPLAY_EFENCE:
		return -ESTALE;
	case REPLAY_EREPLAYED:
		return -EALREADY;
	case REPLAY_ENOMEM:
		return -ENOMEM;
	case REPLAY_EFULL:
		return -ENOSPC;
	default: /* REPLAY_ESTORE, and numbers that are no code */
		return -EIO;
	}
}

const char *errors_str(int rc)
{
	if (rc == 0)
		return "success";
	if (rc < 0 && rc >= -ERRCODES_ERRNO_MAX)
		return strerror(-rc);
	if (ERRCODES_IN(rc, ERRCODES_PKI))
		return pki_strerror(rc);
	if (ERRCODES_IN(rc, ERRCODES_NET))
		return net_strerror(rc);
	if (ERRCODES_IN(rc, ERRCODES_REGISTRY))
		return registry_words(rc);
	if (ERRCODES_IN(rc, ERRCODES_REPLAY))
		return replay_words(rc);
	return "unknown error";
}

int errors_to_errno(int rc)
{
	if (rc >= -ERRCODES_ERRNO_MAX)
		return rc; /* 0, a count, or an errno already */
	if (ERRCODES_IN(rc, ERRCODES_PKI))
		return pki_to_errno(rc);
	if (ERRCODES_IN(rc, ERRCODES_NET))
		return net_to_errno(rc);
	if (ERRCODES_IN(rc, ERRCODES_REGISTRY))
		return registry_errno(rc);
	if (ERRCODES_IN(rc, ERRCODES_REPLAY))
		return replay_errno(rc);
	return -EIO;
}
