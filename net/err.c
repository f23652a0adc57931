/*
 * net errors: the one table that turns a net_* or msg_* code into words,
 * and the one that turns it into an errno.
 */
#include "net/err.h"

#include <errno.h>

const char *net_strerror(int code)
{
	switch (code) {
	case NET_OK:
		return "success";
	case NET_ENOMEM:
		return "out of memory";
	case NET_EIO:
		return "network input/output error";
	case NET_EEOF:
		return "the peer closed the connection";
	case NET_ETIMEOUT:
		return "the peer did not answer in time";
	case NET_ETOOBIG:
		return "a frame or field is larger than allowed";
	case NET_EPROTO:
		return "the peer sent a malformed frame or message";
	case NET_EREFUSED:
		return "connection refused";
	case NET_EADDR:
		return "address is not HOST:PORT or does not resolve";
	case NET_EAGAIN:
		return "incomplete frame";
	case NET_ESIGN:
		return "signing the message failed";
	case NET_EBUSY:
		return "the server is at its connection limit";
	case NET_ESTOPPED:
		return "this node is stopping";
	}
	return "unknown network error";
}

int net_to_errno(int code)
{
	if (code < 0 && code >= -ERRCODES_ERRNO_MAX)
		return code;
	switch (code) {
	case NET_OK:
		return 0;
	case NET_ENOMEM:
		return -ENOMEM;
	case NET_EEOF:
		return -ECONNRESET;
	case NET_ETIMEOUT:
		return -ETIMEDOUT;
	case NET_ETOOBIG:
		return -EMSGSIZE;
	case NET_EPROTO:
		return -EPROTO;
	case NET_EREFUSED:
		return -ECONNREFUSED;
	case NET_EADDR:
		return -EINVAL;
	case NET_EAGAIN:
		return -EAGAIN;
	case NET_EBUSY:
		return -EBUSY;
	default: /* NET_EIO, NET_ESIGN, and codes of no family */
		return -EIO;
	}
}
