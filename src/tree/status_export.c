/*
 * status_export.c: JSON and Prometheus text from a status snapshot (see
 * status_export.h). Strings go through lib/jsonw.h (JSON) or label_value
 * (Prometheus), so a name or a peer's error text cannot break either.
 */
#include "tree/status_export.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/jsonw.h"
#include "tree/status_snap.h"

/* Ends the memstream F whose buffer is *TEXT: 0, or -ENOMEM (freed). */
static int finish(FILE *f, char **text, size_t *len, size_t *flen)
{
	if (fclose(f) != 0) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	*len = *flen;
	return 0;
}

/* ---- JSON ---- */

/* A string, or null if it is empty. */
static void json_text_or_null(FILE *f, const char *s)
{
	jsonw_string(f, s[0] ? s : NULL);
}

/* A time, or null if it is 0 (never). */
static void json_time_or_null(FILE *f, time_t t)
{
	jsonw_time(f, t ? t : (time_t)-1);
}

static void json_files(FILE *f, const struct snap_peer *p)
{
	fputs("[", f);
	for (size_t i = 0; i < p->nfiles; i++) {
		const struct snap_file *x = &p->files[i];
		fputs(i ? ",\n        {\"path\": " : "\n        {\"path\": ",
		      f);
		jsonw_string(f, x->path);
		fprintf(f, ", \"bytes\": %" PRIu64 ", \"state\": ", x->bytes);
		jsonw_string(f, x->state);
		fprintf(f, ", \"percent\": %d, \"error\": ", x->percent);
		json_text_or_null(f, x->error);
		fputs("}", f);
	}
	fputs(p->nfiles ? "\n      ]" : "]", f);
}

static void json_peers(FILE *f, const struct status_snap *s)
{
	fputs("  \"peers\": [", f);
	for (size_t i = 0; i < s->npeers; i++) {
		const struct snap_peer *p = &s->peers[i];
		fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
		jsonw_string(f, p->name);
		fprintf(f,
			", \"pending_files\": %d, \"pending_bytes\": %" PRIu64
			", \"refused_files\": %d, \"sending\": %d,\n"
			"      \"pending\": ",
			p->pending, p->pending_bytes, p->refused, p->sending);
		json_files(f, p);
		fputs(",\n      \"last_error\": ", f);
		json_text_or_null(f, p->last_error);
		fputs(", \"last_delivery\": ", f);
		json_time_or_null(f, p->last_delivery);
		fputs("}", f);
	}
	fputs(s->npeers ? "\n  ],\n" : "],\n", f);
}

static void json_nodes(FILE *f, const struct status_snap *s)
{
	fputs("  \"nodes\": [", f);
	for (size_t i = 0; i < s->nnodes; i++) {
		const struct snap_node *n = &s->nodes[i];
		fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
		jsonw_string(f, n->name);
		fputs(", \"address\": ", f);
		json_text_or_null(f, n->address);
		fputs(", \"not_after\": ", f);
		jsonw_time(f, n->not_after);
		fprintf(f, ", \"seconds_left\": %lld}",
			(long long)(n->not_after - s->now));
	}
	fputs(s->nnodes ? "\n  ],\n" : "],\n", f);
}

int status_export_json(const struct status_snap *s, char **text, size_t *len)
{
	size_t flen = 0;
	*text = NULL;
	FILE *f = open_memstream(text, &flen);
	if (!f)
		return -ENOMEM;
	fputs("{\n  \"node\": ", f);
	jsonw_string(f, s->node);
	fprintf(f, ",\n  \"role\": \"%s\",\n  \"listen\": ",
		s->is_ca ? "ca" : "node");
	jsonw_string(f, s->listen);
	fputs(",\n  \"state\": ", f);
	jsonw_string(f, s->state);
	if (s->is_ca) {
		fputs(",\n  \"ca\": null", f);
	} else {
		fputs(",\n  \"ca\": {\"name\": ", f);
		jsonw_string(f, s->ca_name);
		fputs(", \"address\": ", f);
		jsonw_string(f, s->ca_addr);
		fputs("}", f);
	}
	fputs(",\n  \"since\": ", f);
	jsonw_time(f, s->since);
	fputs(",\n  \"certificate\": {\"serial\": ", f);
	jsonw_string(f, s->serial);
	fputs(", \"not_after\": ", f);
	jsonw_time(f, s->not_after);
	fprintf(f, ", \"seconds_left\": %lld, \"renews_at\": ",
		(long long)(s->not_after - s->now));
	jsonw_time(f, s->renews_at);
	fputs("},\n  \"crl\": {", f);
	if (s->has_crl)
		fprintf(f, "\"number\": %" PRIu64 ", \"revoked\": %zu",
			s->crl_number, s->crl_revoked);
	else
		fputs("\"number\": null, \"revoked\": null", f);
	fputs(", \"fetched\": ", f);
	json_time_or_null(f, s->crl_fetched);
	fputs("},\n  \"last_sync\": ", f);
	json_time_or_null(f, s->last_sync);
	fprintf(f, ",\n  \"refresh_seconds\": %u,\n  \"last_error\": ",
		s->refresh_secs);
	json_text_or_null(f, s->last_error);
	fputs(",\n", f);
	json_nodes(f, s);
	json_peers(f, s);
	fputs("  \"counters\": {", f);
	for (int k = 0; k < COUNTER_N; k++)
		fprintf(f, "%s\"%s\": %" PRIu64, k ? ", " : "",
			counters_name((enum counter)k), s->counters[k]);
	fputs("}\n}\n", f);
	return finish(f, text, len, &flen);
}

/* ---- Prometheus text exposition ---- */

/* A label value: '\', '"' and newlines escaped, as the format asks. */
static void label_value(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* The HELP and TYPE lines of the family NAME. */
static void family(FILE *f, const char *name, const char *type,
		   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* NAME{node="..."[,LABEL="VALUE"]}: a sample's name and labels. */
static void sample(FILE *f, const char *name, const struct status_snap *s,
		   const char *label, const char *value)
{
	fprintf(f, "%s{node=", name);
	label_value(f, s->node);
	if (label) {
		fprintf(f, ",%s=", label);
		label_value(f, value);
	}
	fputs("} ", f);
}

/* One family of a number per peer; WHICH picks it (-1: leave it out). */
static void per_peer(FILE *f, const struct status_snap *s, const char *name,
		     const char *help,
		     long long (*which)(const struct snap_peer *))
{
	family(f, name, "gauge", help);
	for (size_t i = 0; i < s->npeers; i++) {
		long long v = which(&s->peers[i]);
		if (v < 0)
			continue;
		sample(f, name, s, "peer", s->peers[i].name);
		fprintf(f, "%lld\n", v);
	}
}

static long long peer_pending(const struct snap_peer *p)
{
	return p->pending;
}

static long long peer_pending_bytes(const struct snap_peer *p)
{
	return (long long)p->pending_bytes;
}

static long long peer_refused(const struct snap_peer *p)
{
	return p->refused;
}

static long long peer_sending(const struct snap_peer *p)
{
	return p->sending;
}

static long long peer_failing(const struct snap_peer *p)
{
	return p->last_error[0] != '\0';
}

static long long peer_last_delivery(const struct snap_peer *p)
{
	return p->last_delivery ? (long long)p->last_delivery : -1;
}

/* A gauge of this node alone; a time of 0 (never) leaves it out. */
static void gauge(FILE *f, const struct status_snap *s, const char *name,
		  const char *help, long long v, bool is_time)
{
	family(f, name, "gauge", help);
	if (is_time && v == 0)
		return;
	sample(f, name, s, NULL, NULL);
	fprintf(f, "%lld\n", v);
}

int status_export_prometheus(const struct status_snap *s, char **text,
			     size_t *len)
{
	size_t flen = 0;
	*text = NULL;
	FILE *f = open_memstream(text, &flen);
	if (!f)
		return -ENOMEM;
	family(f, "snoopfs_info", "gauge",
	       "The node: its name, role and listening address (always 1).");
	fputs("snoopfs_info{node=", f);
	label_value(f, s->node);
	fprintf(f, ",role=\"%s\",listen=", s->is_ca ? "ca" : "node");
	label_value(f, s->listen);
	fputs("} 1\n", f);
	gauge(f, s, "snoopfs_start_time_seconds",
	      "When the node was mounted (Unix time): the counters start here.",
	      (long long)s->since, true);
	gauge(f, s, "snoopfs_certificate_seconds_left",
	      "Seconds until this node's certificate expires (negative once "
	      "it has).",
	      (long long)(s->not_after - s->now), false);
	gauge(f, s, "snoopfs_certificate_expiry_timestamp_seconds",
	      "When this node's certificate expires (Unix time).",
	      (long long)s->not_after, false);
	family(f, "snoopfs_crl_number", "gauge",
	       "The number of the CRL this node holds (none until it has "
	       "one).");
	if (s->has_crl) {
		sample(f, "snoopfs_crl_number", s, NULL, NULL);
		fprintf(f, "%" PRIu64 "\n", s->crl_number);
	}
	gauge(f, s, "snoopfs_crl_fetched_timestamp_seconds",
	      "When the CRL was last fetched from the CA (Unix time; none "
	      "before the first fetch).",
	      (long long)s->crl_fetched, true);
	gauge(f, s, "snoopfs_last_sync_timestamp_seconds",
	      "When the list of certificates was last refreshed from the CA "
	      "(Unix time; none before the first refresh).",
	      (long long)s->last_sync, true);
	gauge(f, s, "snoopfs_nodes",
	      "The nodes this node knows, itself included.",
	      (long long)s->nnodes, false);
	family(f, "snoopfs_node_certificate_seconds_left", "gauge",
	       "Seconds until the certificate of each known node expires.");
	for (size_t i = 0; i < s->nnodes; i++) {
		sample(f, "snoopfs_node_certificate_seconds_left", s, "name",
		       s->nodes[i].name);
		fprintf(f, "%lld\n",
			(long long)(s->nodes[i].not_after - s->now));
	}
	per_peer(f, s, "snoopfs_pending_files",
		 "Files waiting to be delivered to the peer.", peer_pending);
	per_peer(f, s, "snoopfs_pending_bytes",
		 "Bytes of the files waiting to be delivered to the peer.",
		 peer_pending_bytes);
	per_peer(f, s, "snoopfs_refused_files",
		 "Files the peer refused for good, still in the outbox.",
		 peer_refused);
	per_peer(f, s, "snoopfs_sending", "Transfers to the peer under way.",
		 peer_sending);
	per_peer(f, s, "snoopfs_peer_failing",
		 "1 while the last attempt to deliver to the peer failed.",
		 peer_failing);
	per_peer(f, s, "snoopfs_last_delivery_timestamp_seconds",
		 "The peer's last receipt since the mount (Unix time).",
		 peer_last_delivery);
	static const char *const help[COUNTER_N] = {
		[COUNTER_FILES_SENT] = "Files delivered (one per receipt: a "
				       "file for two peers counts twice).",
		[COUNTER_BYTES_SENT] = "Bytes of the files delivered.",
		[COUNTER_FILES_RECEIVED] = "Files received into inbox/.",
		[COUNTER_BYTES_RECEIVED] = "Bytes of the files received.",
		[COUNTER_REFUSED] = "Files (post/blob requests) this node "
				    "refused to receive.",
		[COUNTER_REFUSED_BY_PEERS] = "Files a peer refused for good.",
	};
	for (int k = 0; k < COUNTER_N; k++) {
		char name[64];
		snprintf(name, sizeof(name), "snoopfs_%s_total",
			 counters_name((enum counter)k));
		family(f, name, "counter", help[k]);
		sample(f, name, s, NULL, NULL);
		fprintf(f, "%" PRIu64 "\n", s->counters[k]);
	}
	return finish(f, text, len, &flen);
}
