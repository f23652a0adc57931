/*
 * errors: any error code of snoopfs in words, and as an errno.
 *
 * A function returns 0, a negative errno, or a negative code of one
 * family, each family in a range of its own (lib/errcodes.h): PKI_E*
 * (pki/err.h), NET_E* (net/err.h), and the registry's and the replay
 * store's below. errors_str says what any of them means and
 * errors_to_errno turns any of them into the -errno that FUSE and other
 * errno speakers need, so a code that travels further than its family's
 * own callers still comes out right.
 *
 * The registry's and the replay store's codes are defined here, not in
 * ca/registry.h and wire/replay.h (which include this header, so their
 * users see them as before): ca/ and wire/ sit above base/, and the words
 * of every code must be reachable from errors_str, which may not call up.
 */
#ifndef SNOOPFS_BASE_ERRORS_H
#define SNOOPFS_BASE_ERRORS_H

#include "lib/errcodes.h"

/* The CA registry's codes (ca/registry.h). */
enum registry_err {
	REGISTRY_OK = 0,
	REGISTRY_ENOTFOUND = -1201, /* no current certificate under that name */
	REGISTRY_ETAKEN =
		-1202, /* name held by a valid certificate, other key */
	REGISTRY_ESERIAL = -1203,  /* serial already used: issue again */
	REGISTRY_EDB = -1204,      /* SQLite failed (logged) */
	REGISTRY_EREVOKED = -1205, /* a certificate for that key was revoked */
	/* Join tokens (registry_token_*, registry_add_joined). */
	REGISTRY_ETOKEN = -1206,         /* no such token, or a wrong secret */
	REGISTRY_ETOKEN_NAME = -1207,    /* the token is for another name */
	REGISTRY_ETOKEN_USED = -1208,    /* the token was used already */
	REGISTRY_ETOKEN_EXPIRED = -1209, /* the token has expired */
	REGISTRY_ETOKEN_REVOKED = -1210, /* the operator withdrew the token */
};
/* The codes run from REGISTRY_ENOTFOUND down to this one without gaps. */
#define REGISTRY_ERR_LAST REGISTRY_ETOKEN_REVOKED
_Static_assert(ERRCODES_IN(REGISTRY_ENOTFOUND, ERRCODES_REGISTRY) &&
		       ERRCODES_IN(REGISTRY_ERR_LAST, ERRCODES_REGISTRY),
	       "registry codes stay in the registry's range");

/* The replay store's codes (wire/replay.h). */
enum replay_err {
	REPLAY_OK = 0,
	REPLAY_EWINDOW = -1301,   /* timestamp missing or outside the window */
	REPLAY_EREPLAYED = -1302, /* (sender, message_id) seen before */
	REPLAY_ESTORE = -1303,    /* the store failed: the message is refused */
	REPLAY_ENOMEM = -1304,
	REPLAY_EFULL = -1305,  /* the store's disk is full: refused for now */
	REPLAY_EFENCE = -1306, /* dated before the store's fence (a restore) */
};
/* The codes run from REPLAY_EWINDOW down to this one without gaps. */
#define REPLAY_ERR_LAST REPLAY_EFENCE
_Static_assert(ERRCODES_IN(REPLAY_EWINDOW, ERRCODES_REPLAY) &&
		       ERRCODES_IN(REPLAY_ERR_LAST, ERRCODES_REPLAY),
	       "replay codes stay in the replay store's range");

/*
 * A static English sentence for RC: "success" for 0, strerror() for a
 * negative errno, the family's own words for a family's code ("unknown
 * pki error" and the like for a number in a family's range that is no
 * code), "unknown error" for anything else.
 */
const char *errors_str(int rc);

/*
 * The errno for RC, for FUSE and everyone else who speaks errno: 0 and
 * positive values (byte counts) stay as they are, a negative errno stays
 * itself, a family's code becomes the -errno that says the same (no
 * memory -ENOMEM, a bad signature -EBADMSG, a timeout -ETIMEDOUT, a name
 * not in the registry -ENOENT, ...), and anything else is -EIO.
 */
int errors_to_errno(int rc);

#endif
