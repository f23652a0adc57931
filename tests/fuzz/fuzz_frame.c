/*
 * fuzz_frame: the length-prefixed frame decoder (net/frame.h). The first
 * input byte picks the caller's maximum, from 0 through NET_FRAME_MAX to
 * SIZE_MAX (which the decoder must still cap at NET_FRAME_MAX); the rest is
 * a byte stream decoded frame after frame, as a connection would. Each
 * frame found must lie inside the buffer, respect both limits, and carry a
 * header that net_frame_put_header() writes identically.
 */
#include <string.h>

#include "net/err.h"
#include "net/frame.h"
#include "tests/fuzz/fuzz.h"

static const size_t maxes[] = {
	0,
	1,
	3,
	4,
	255,
	4096,
	65536,
	NET_FRAME_MAX - 1,
	NET_FRAME_MAX,
	NET_FRAME_MAX + 1,
	SIZE_MAX,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max, off = 0;

	if (size < 1)
		return 0;
	max = maxes[data[0] % (sizeof(maxes) / sizeof(maxes[0]))];
	data++;
	size--;

	while (off <= size) {
		const uint8_t *payload = NULL;
		size_t plen = 0, used = 0, hlen = 0;
		uint8_t hdr[NET_FRAME_HDR];
		int rc = net_frame_decode(data + off, size - off, max, &payload,
					  &plen, &used);

		if (rc != NET_OK) {
			FUZZ_ASSERT(rc == NET_EAGAIN || rc == NET_ETOOBIG);
			FUZZ_ASSERT(rc != NET_EAGAIN ||
				    size - off < NET_FRAME_HDR ||
				    net_frame_get_header(data + off, max,
							 &hlen) == NET_OK);
			break;
		}
		FUZZ_ASSERT(plen <= max && plen <= NET_FRAME_MAX);
		FUZZ_ASSERT(used == NET_FRAME_HDR + plen);
		FUZZ_ASSERT(used <= size - off);
		FUZZ_ASSERT(payload == data + off + NET_FRAME_HDR);
		FUZZ_ASSERT(net_frame_get_header(data + off, max, &hlen) ==
				    NET_OK &&
			    hlen == plen);
		FUZZ_ASSERT(net_frame_put_header(plen, hdr) == NET_OK);
		FUZZ_ASSERT(memcmp(hdr, data + off, NET_FRAME_HDR) == 0);
		/* Touch every payload byte so ASan sees any overread. */
		volatile uint8_t sink = 0;
		for (size_t i = 0; i < plen; i++)
			sink ^= payload[i];
		(void)sink;
		off += used;
	}
	return 0;
}
