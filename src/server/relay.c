/*
 * relay.c: what a recipient does after it stored a blob that the sender
 * allowed to be relayed: the plan, its receipt to the sender, the
 * forwarding (see relay.h and docs/relay.md).
 */
#include "server/relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/filepool.h"
#include "identity/self.h"
#include "lib/log.h"
#include "lib/names.h"
#include "server/internal.h"
#include "store/blobfile.h"
#include "store/jobs.h"
#include "wire/proto.h"

struct relay_work {
	int fd;                    /* the stored blob file, or -1 */
	struct filepool_hold hold; /* FD is never pooled while forwarded */
	uint64_t data_off;
	struct blob_info info;
	char hash[72];
	bool receipt; /* owed to the sender: the blob came through a relay */
	int nnext;
	char next[RELAY_FANOUT_MAX][NAMES_NODE_MAX + 1];
};

bool relay_enabled(const struct server *s)
{
	return s->relay;
}

int relay_split_names(const char *list, char names[][NAMES_NODE_MAX + 1])
{
	int n = 0;
	if (!list || !*list)
		return -1;
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len > NAMES_NODE_MAX || n >= JOB_RECIPIENTS_MAX)
			return -1;
		memcpy(names[n], p, len);
		names[n][len] = '\0';
		if (!names_node_valid(names[n]))
			return -1;
		n++;
		if (!comma)
			return n;
		p = comma + 1;
	}
}

int relay_fanout(const struct msg *m)
{
	int64_t k = 0;
	if (msg_extra_get_int(m, "relay", &k) != 0 || k < 1 ||
	    k > RELAY_FANOUT_MAX)
		return 0;
	return (int)k;
}

/*
 * The recipients SELF forwards M to, by the sender's plan: SELF is number
 * i of the signed list, and forwards to K*i+1 .. K*i+K (never to itself
 * or the sender). How many, into W.
 */
static void plan(const struct msg *m, const char *self, struct relay_work *w)
{
	static __thread char names[JOB_RECIPIENTS_MAX][NAMES_NODE_MAX + 1];
	int k = relay_fanout(m);
	int n = relay_split_names(msg_extra_get_str(m, "recipients"), names);
	int i = 0;
	while (i < n && strcmp(names[i], self) != 0)
		i++;
	w->nnext = 0;
	if (k == 0 || i >= n)
		return;
	const char *sender = msg_get0_meta(m)->id;
	for (int c = k * i + 1; c <= k * i + k && c < n; c++)
		if (strcmp(names[c], self) != 0 &&
		    strcmp(names[c], sender) != 0)
			snprintf(w->next[w->nnext++], NAMES_NODE_MAX + 1, "%s",
				 names[c]);
}

struct relay_work *relay_prepare(struct server *s, const struct msg *m,
				 const char *inbox, const char *path,
				 const char *hash, const char *relayed_by)
{
	struct relay_work *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->fd = -1;
	w->receipt = relayed_by != NULL;
	snprintf(w->hash, sizeof(w->hash), "%s", hash);
	if (relay_enabled(s))
		plan(m, self_name(s->self), w);
	if (w->nnext > 0) {
		char file[STATE_PATH_MAX];
		int len = snprintf(file, sizeof(file), "%s/%s", inbox, path);
		int rc = len < 0 || (size_t)len >= sizeof(file)
				 ? -ENAMETOOLONG
				 : blobfile_open_sealed(file, &w->fd,
							&w->data_off, &w->info,
							&w->hold);
		if (rc) {
			log_warn("relay: cannot reopen '%s' to forward it: %s",
				 path, strerror(-rc));
			w->nnext = 0;
		}
	}
	if (w->nnext == 0 && !w->receipt) {
		free(w);
		return NULL;
	}
	return w;
}

void relay_finish(struct server *s, const struct msg *m, struct relay_work *w)
{
	if (!w)
		return;
	if (w->receipt)
		relay_send_receipt(s, m, w->hash);
	/*
	 * One after the other, in this connection's thread: a relay spends
	 * no more than a sender would, and unmounting waits for it as for any
	 * transfer. A next hop that fails is the sender's to reach directly
	 * when its deadline passes (src/delivery/relayed.c).
	 */
	for (int i = 0; i < w->nnext; i++)
		relay_send_blob(s, m, w->fd, w->data_off, w->info.size,
				w->next[i]);
	filepool_unhold(&w->hold);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}
