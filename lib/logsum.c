/*
 * logsum: counts events about strangers per interval and summarises them
 * in one line (see logsum.h). The tables are small and fixed: a flood from
 * more hosts or for more reasons than they hold is still counted, under
 * "other".
 */
#include "lib/logsum.h"

#include "lib/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Hosts and reasons told apart per interval; the rest count as other. */
#define LOGSUM_HOSTS   64
#define LOGSUM_REASONS 8
/* Longest host kept ("[" IPv6 "]" is 47) and reason (longer is cut). */
#define LOGSUM_HOST_MAX   64
#define LOGSUM_REASON_MAX 96
/* Hosts named in a summary, those with the most events first. */
#define LOGSUM_TOP      3
#define LOGSUM_LINE_MAX 1024

struct tally {
	unsigned long n;
	char key[LOGSUM_REASON_MAX];
};

/* The lock protects everything below it; log_msg's lock is taken inside. */
struct logsum {
	int interval_s;
	pthread_mutex_t lock;
	long start; /* monotonic ms of the interval's first event; 0 none */
	unsigned long total, shown;
	unsigned long other_hosts, other_reasons;
	int nhosts, nreasons;
	struct tally hosts[LOGSUM_HOSTS];
	struct tally reasons[LOGSUM_REASONS];
};

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Never 0, which means "no interval open". */
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L + 1;
}

struct logsum *logsum_new(int interval_s)
{
	struct logsum *ls = calloc(1, sizeof(*ls));
	if (ls == NULL)
		return NULL;
	ls->interval_s = interval_s > 0 ? interval_s : LOGSUM_INTERVAL_S;
	if (pthread_mutex_init(&ls->lock, NULL) != 0) {
		free(ls);
		return NULL;
	}
	return ls;
}

/* Counts KEY (cut to fit) in TABLE of *N entries; false if it is full. */
static bool count(struct tally *table, int *n, int max, const char *key,
		  size_t keylen)
{
	if (keylen >= LOGSUM_REASON_MAX)
		keylen = LOGSUM_REASON_MAX - 1;
	for (int i = 0; i < *n; i++) {
		if (strncmp(table[i].key, key, keylen) == 0 &&
		    table[i].key[keylen] == '\0') {
			table[i].n++;
			return true;
		}
	}
	if (*n == max)
		return false;
	memcpy(table[*n].key, key, keylen);
	table[*n].key[keylen] = '\0';
	table[*n].n = 1;
	(*n)++;
	return true;
}

/* The host part of "HOST:PORT" or "[V6]:PORT": its length in PEER. */
static size_t host_len(const char *peer)
{
	if (peer[0] == '[') {
		const char *end = strchr(peer, ']');
		return end ? (size_t)(end - peer) + 1 : strlen(peer);
	}
	const char *colon = strrchr(peer, ':');
	return colon ? (size_t)(colon - peer) : strlen(peer);
}

/* Appends to LINE (of LOGSUM_LINE_MAX) at *LEN; cuts silently when full. */
static void add(char *line, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add(char *line, size_t *len, const char *fmt, ...)
{
	if (*len >= LOGSUM_LINE_MAX - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + *len, LOGSUM_LINE_MAX - *len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*len += (size_t)n;
	if (*len > LOGSUM_LINE_MAX - 1)
		*len = LOGSUM_LINE_MAX - 1;
}

static int by_count(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;
	return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
}

/* Writes the summary if anything went unlogged, and starts afresh. */
static void flush_locked(struct logsum *ls, long now)
{
	if (ls->total > ls->shown) {
		char line[LOGSUM_LINE_MAX];
		size_t len = 0;
		add(line, &len,
		    "strangers in the last %ld s: %lu connection(s) failed or "
		    "refused, %lu not logged one by one:",
		    (now - ls->start + 500) / 1000, ls->total,
		    ls->total - ls->shown);
		qsort(ls->reasons, (size_t)ls->nreasons, sizeof(ls->reasons[0]),
		      by_count);
		for (int i = 0; i < ls->nreasons; i++)
			add(line, &len, "%s %lu %s", i ? "," : "",
			    ls->reasons[i].n, ls->reasons[i].key);
		if (ls->other_reasons)
			add(line, &len, ", %lu for other reasons",
			    ls->other_reasons);
		qsort(ls->hosts, (size_t)ls->nhosts, sizeof(ls->hosts[0]),
		      by_count);
		unsigned long rest = ls->other_hosts;
		int others = ls->other_hosts ? 1 : 0;
		for (int i = 0; i < ls->nhosts; i++) {
			if (i < LOGSUM_TOP) {
				add(line, &len, "%s %s (%lu)",
				    i ? "," : "; from", ls->hosts[i].key,
				    ls->hosts[i].n);
			} else {
				rest += ls->hosts[i].n;
				others++;
			}
		}
		if (others)
			add(line, &len, " and %s%d other address(es) (%lu)",
			    ls->other_hosts ? "more than " : "", others, rest);
		log_warn("%s", line);
	}
	ls->start = 0;
	ls->total = ls->shown = 0;
	ls->other_hosts = ls->other_reasons = 0;
	ls->nhosts = ls->nreasons = 0;
}

void logsum_note(struct logsum *ls, const char *peer, const char *reason,
		 const char *fmt, ...)
{
	bool show = true;
	if (ls != NULL) {
		long now = now_ms();
		pthread_mutex_lock(&ls->lock);
		if (ls->start != 0 && now - ls->start >= ls->interval_s * 1000L)
			flush_locked(ls, now);
		if (ls->start == 0)
			ls->start = now;
		ls->total++;
		if (!count(ls->hosts, &ls->nhosts, LOGSUM_HOSTS, peer,
			   host_len(peer)))
			ls->other_hosts++;
		if (!count(ls->reasons, &ls->nreasons, LOGSUM_REASONS, reason,
			   strlen(reason)))
			ls->other_reasons++;
		show = ls->shown < LOGSUM_DETAIL;
		if (show)
			ls->shown++;
		pthread_mutex_unlock(&ls->lock);
	}
	if (!show)
		return;
	/* Formatted only when written: a flood costs no formatting. */
	char line[LOGSUM_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_info("%s", line);
}

void logsum_tick(struct logsum *ls)
{
	if (ls == NULL)
		return;
	long now = now_ms();
	pthread_mutex_lock(&ls->lock);
	if (ls->start != 0 && now - ls->start >= ls->interval_s * 1000L)
		flush_locked(ls, now);
	pthread_mutex_unlock(&ls->lock);
}

void logsum_free(struct logsum *ls)
{
	if (ls == NULL)
		return;
	pthread_mutex_lock(&ls->lock);
	if (ls->start != 0)
		flush_locked(ls, now_ms());
	pthread_mutex_unlock(&ls->lock);
	pthread_mutex_destroy(&ls->lock);
	free(ls);
}
