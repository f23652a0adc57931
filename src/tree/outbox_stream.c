/*
 * outbox_stream.c: starting the streams of a file being written (see
 * outbox_stream.h and src/delivery/stream.h).
 */
#include "tree/outbox_stream.h"

#include <stdio.h>
#include <string.h>

#include "delivery/stream.h"
#include "lib/names.h"
#include "store/jobs.h"
#include "store/spool.h"
#include "store/spool_seal.h"
#include "tree/outbox_folder.h"
#include "tree/outbox_internal.h"

void outbox_stream_maybe(struct outbox *ob, struct spool *sp, const char *rel,
			 bool *streamed)
{
	if (!ob->delivery || !stream_enabled(ob->delivery)) {
		__atomic_store_n(streamed, true, __ATOMIC_RELAXED);
		return;
	}
	char hex[2 * PKI_BLOB_ID + 1];
	uint64_t sealed = 0;
	/* Small files keep the plain path: one request, no stream. */
	if (spool_ahead_progress(sp, hex, &sealed) != 0 ||
	    sealed < STREAM_MIN_CHUNKS)
		return;
	if (__atomic_exchange_n(streamed, true, __ATOMIC_RELAXED))
		return;
	char folder[JOB_FOLDER_MAX];
	const char *rest = NULL;
	char names[JOB_RECIPIENTS_MAX][NAMES_NODE_MAX + 1];
	int n = 0;
	/*
	 * An in-progress name (rsync's .name.XXXXXX) ships, if ever, under
	 * the name it is renamed to, which a trailer must match: streaming it
	 * would send it twice.
	 */
	if (outbox_split_rel(rel, folder, &rest) != 0 ||
	    names_in_progress(rest) ||
	    outbox_parse_folder(ob, folder, names, &n) != 0)
		return;
	/* The comma list exactly as the job will carry it (send.c). */
	char list[JOB_FOLDER_MAX + 1] = "";
	size_t used = 0;
	for (int i = 0; i < n; i++) {
		int len = snprintf(list + used, sizeof(list) - used, "%s%s",
				   i ? "," : "", names[i]);
		if (len < 0 || (size_t)len >= sizeof(list) - used)
			return;
		used += (size_t)len;
	}
	for (int i = 0; i < n; i++)
		stream_begin(ob->delivery, hex, rest, list, names[i]);
}
