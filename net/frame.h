/*
 * frame: the length-prefixed framing of the wire. A frame is a 4-byte
 * big-endian length followed by that many bytes, one JSON message per frame.
 * The length is checked against the caller's maximum before anything is
 * allocated, so a peer cannot make us reserve memory by announcing a size.
 */
#ifndef SNOOPFS_NET_FRAME_H
#define SNOOPFS_NET_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define NET_FRAME_HDR 4
/* Hard ceiling for any frame; a 64 KiB chunk in base64 JSON fits well. */
#define NET_FRAME_MAX (1024 * 1024)

/* Writes the header for a LEN-byte frame. NET_ETOOBIG if LEN > NET_FRAME_MAX.
 */
int net_frame_put_header(size_t len, uint8_t hdr[NET_FRAME_HDR]);

/* Reads a header. NET_ETOOBIG if the length exceeds MAX. */
int net_frame_get_header(const uint8_t hdr[NET_FRAME_HDR], size_t max,
			 size_t *len);

/*
 * Decodes one frame from the start of BUF (LEN bytes). On success sets
 * *PAYLOAD / *PLEN to the frame body inside BUF and *CONSUMED to the bytes
 * used. NET_EAGAIN if BUF holds less than one whole frame, NET_ETOOBIG if the
 * announced length exceeds MAX.
 */
int net_frame_decode(const uint8_t *buf, size_t len, size_t max,
		     const uint8_t **payload, size_t *plen, size_t *consumed);

#endif
