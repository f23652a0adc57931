/*
 * status.c: a plain-text report for people, one fact a line.
 */
#include "tree/status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs/certs.h"
#include "certs/renew.h"
#include "delivery/delivery.h"
#include "identity/self.h"
#include "store/intake.h"

struct text {
	char *data;
	size_t len, cap;
	int failed;
};

static void put(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
	if (t->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = 1;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap * 2 + (size_t)n;
		char *p = realloc(t->data, cap);
		if (!p) {
			t->failed = 1;
			return;
		}
		t->data = p;
		t->cap = cap;
	}
}

void status_time_left(time_t until, time_t now, char *out, size_t size)
{
	long long d = (long long)(until - now);
	if (d >= 0)
		snprintf(out, size, "%lld days %lld hours left", d / 86400,
			 (d % 86400) / 3600);
	else
		snprintf(out, size, "expired %lld days %lld hours ago",
			 -d / 86400, (-d % 86400) / 3600);
}

static void put_time(struct text *t, const char *label, time_t when)
{
	struct tm tm;
	char buf[64];
	gmtime_r(&when, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
	put(t, "%-13s%s\n", label, buf);
}

struct peers {
	struct text *t;
	struct directory *dir;
	time_t now;
};

static int put_peer(void *arg, const char *name)
{
	struct peers *p = arg;
	struct pki_cert *cert = directory_get1(p->dir, name);
	if (!cert)
		return 0;
	char addr[NET_ADDR_MAX] = "-", left[64];
	pki_cert_get_address(cert, addr, sizeof(addr));
	status_time_left(pki_cert_not_after(cert), p->now, left, sizeof(left));
	put(p->t, "  %-20s %-24s certificate %s\n", name, addr, left);
	pki_cert_free(cert);
	return 0;
}

int status_text(const struct status_parts *parts, time_t now, char **text,
		size_t *len)
{
	struct text t = { .data = malloc(1024), .cap = 1024 };
	if (!t.data)
		return -ENOMEM;
	t.data[0] = '\0';
	struct self *me = parts->self;
	const struct state_config *cfg = self_config(me);
	struct directory *dir = self_directory(me);
	bool ca = self_is_ca(me);
	char left[64], serial[64] = "?";
	struct pki_cert *self = self_cert_ref(me);
	if (!self) {
		free(t.data);
		return -ENOMEM;
	}
	char adv[NET_ADDR_MAX] = "?";
	pki_cert_get_serial(self, serial, sizeof(serial));
	pki_cert_get_address(self, adv, sizeof(adv));
	status_time_left(pki_cert_not_after(self), now, left, sizeof(left));
	time_t renews = renew_due(self);
	bool expired = pki_cert_not_after(self) <= now;
	pki_cert_free(self);

	put(&t, "%-13s%s\n", "node:", cfg->name);
	put(&t, "%-13s%s\n", "role:", ca ? "certificate authority" : "node");
	put(&t, "%-13s%s\n", "listening:", cfg->listen);
	/* What peers are told: the address the certificate carries. */
	put(&t, "%-13s%s\n", "advertised:", adv);
	put(&t, "%-13s%s\n", "state:", self_state(me));
	char found[NET_ADDR_MAX] = "";
	if (parts->certs)
		certs_ca_found_at(parts->certs, found, sizeof(found));
	if (!ca && found[0] && strcmp(found, cfg->ca_addr) != 0)
		put(&t, "%-13s%s at %s (it moved from %s, where --ca put it)\n",
		    "ca:", cfg->ca_name, found, cfg->ca_addr);
	else if (!ca)
		put(&t, "%-13s%s at %s\n", "ca:", cfg->ca_name, cfg->ca_addr);
	put(&t, "%-13sserial %s, %s\n", "certificate:", serial, left);
	if (!expired)
		put_time(&t, "renews at:", renews);
	struct pki_crl *crl = directory_get1_crl(dir);
	if (crl)
		put(&t, "%-13snumber %llu, %zu revoked (certs/crl.pem)\n",
		    "crl:", (unsigned long long)pki_crl_number(crl),
		    pki_crl_count(crl));
	else
		put(&t, "%-13s%s\n", "crl:", "none yet");
	time_t next = crl ? pki_crl_next_update(crl) : (time_t)-1;
	if (next != (time_t)-1 && next < now) {
		char ago[64];
		status_time_left(next, now, ago, sizeof(ago));
		put(&t,
		    "%-13sthe CRL is past its nextUpdate (%s): revocations "
		    "since then are not known here until the CA is reached\n",
		    "warning:", ago);
	}
	pki_crl_free(crl);

	time_t last_sync = 0, last_crl = 0;
	if (parts->certs)
		certs_refreshed(parts->certs, &last_sync, &last_crl);
	char last_error[SELF_ERROR_MAX];
	self_last_error(me, last_error, sizeof(last_error));
	if (last_sync)
		put_time(&t, "last sync:", last_sync);
	else
		put(&t, "%-13s%s\n", "last sync:", "never");
	/* A CA that stays unreachable leaves nodes on an ageing CRL. */
	if (last_crl)
		put_time(&t, "crl fetched:", last_crl);
	put(&t, "%-13severy %u s\n", "refresh:", parts->refresh_secs);
	if (last_error[0])
		put(&t, "%-13s%s\n", "last error:", last_error);

	put(&t, "%-13s%zu\n", "nodes:", directory_count(dir));
	struct peers p = { .t = &t, .dir = dir, .now = now };
	directory_each(dir, put_peer, &p);
	char *deliveries = NULL;
	size_t dlen = 0;
	if (parts->delivery &&
	    delivery_status(parts->delivery, &deliveries, &dlen) == 0) {
		put(&t, "%-13s\n%s",
		    "deliveries:", dlen ? deliveries : "  nothing pending\n");
		free(deliveries);
	}
	char *incoming = NULL;
	size_t ilen = 0;
	if (parts->intake &&
	    intake_status(parts->intake, &incoming, &ilen) == 0) {
		put(&t, "%-13s\n%s",
		    "incoming:", ilen ? incoming : "  nothing unfinished\n");
		free(incoming);
	}
	if (t.failed) {
		free(t.data);
		return -ENOMEM;
	}
	*text = t.data;
	*len = t.len;
	return 0;
}
