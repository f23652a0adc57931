/*
 * frame: the 4-byte big-endian length prefix of the wire. Pure functions, so
 * they can be fuzzed and tested without sockets. The length goes through
 * shifts rather than a struct cast so byte order and alignment never matter.
 */
#include "net/frame.h"

#include "net/err.h"

int net_frame_put_header(size_t len, uint8_t hdr[NET_FRAME_HDR])
{
	if (len > NET_FRAME_MAX)
		return NET_ETOOBIG;
	uint32_t v = (uint32_t)len;
	hdr[0] = (uint8_t)(v >> 24);
	hdr[1] = (uint8_t)(v >> 16);
	hdr[2] = (uint8_t)(v >> 8);
	hdr[3] = (uint8_t)v;
	return NET_OK;
}

int net_frame_get_header(const uint8_t hdr[NET_FRAME_HDR], size_t max,
			 size_t *len)
{
	uint32_t v = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
		     (uint32_t)hdr[2] << 8 | (uint32_t)hdr[3];
	/* NET_FRAME_MAX is the ceiling whatever the caller asks for. */
	if (v > max || v > NET_FRAME_MAX)
		return NET_ETOOBIG;
	*len = v;
	return NET_OK;
}

int net_frame_decode(const uint8_t *buf, size_t len, size_t max,
		     const uint8_t **payload, size_t *plen, size_t *consumed)
{
	size_t body;

	if (len < NET_FRAME_HDR)
		return NET_EAGAIN;
	int rc = net_frame_get_header(buf, max, &body);
	if (rc != NET_OK)
		return rc;
	if (len - NET_FRAME_HDR < body)
		return NET_EAGAIN;
	*payload = buf + NET_FRAME_HDR;
	*plen = body;
	*consumed = NET_FRAME_HDR + body;
	return NET_OK;
}
