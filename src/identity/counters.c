/* counters.c: see counters.h. */
#include "identity/counters.h"

static const char *const names[COUNTER_N] = {
	[COUNTER_FILES_SENT] = "files_sent",
	[COUNTER_BYTES_SENT] = "bytes_sent",
	[COUNTER_FILES_RECEIVED] = "files_received",
	[COUNTER_BYTES_RECEIVED] = "bytes_received",
	[COUNTER_REFUSED] = "refused",
	[COUNTER_REFUSED_BY_PEERS] = "refused_by_peers",
};

void counters_init(struct counters *c, time_t since)
{
	for (int k = 0; k < COUNTER_N; k++)
		atomic_init(&c->n[k], 0);
	c->since = since;
}

void counters_add(struct counters *c, enum counter k, uint64_t n)
{
	atomic_fetch_add_explicit(&c->n[k], n, memory_order_relaxed);
}

uint64_t counters_get(const struct counters *c, enum counter k)
{
	/* A const object cannot be passed to atomic_load in C11. */
	return atomic_load_explicit((_Atomic uint64_t *)&c->n[k],
				    memory_order_relaxed);
}

const char *counters_name(enum counter k)
{
	return names[k];
}
