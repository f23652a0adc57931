/*
 * status.c: a plain-text report for people, one fact a line.
 */
#include "tree/status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs/certs.h"
#include "certs/renew.h"
#include "delivery/delivery.h"
#include "identity/self.h"
#include "lib/textbuf.h"
#include "store/intake.h"

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

static void put_time(struct textbuf *t, const char *label, time_t when)
{
	struct tm tm;
	char buf[64];
	gmtime_r(&when, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
	textbuf_put(t, "%-13s%s\n", label, buf);
}

struct peers {
	struct textbuf *t;
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
	textbuf_put(p->t, "  %-20s %-24s certificate %s\n", name, addr, left);
	pki_cert_free(cert);
	return 0;
}

int status_text(const struct status_parts *parts, time_t now, char **text,
		size_t *len)
{
	struct textbuf t;
	if (textbuf_init(&t, 1024, 0))
		return -ENOMEM;
	struct self *me = parts->self;
	const struct state_config *cfg = self_config(me);
	struct directory *dir = self_directory(me);
	bool ca = self_is_ca(me);
	char left[64], serial[64] = "?";
	struct pki_cert *self = self_cert_ref(me);
	if (!self) {
		textbuf_free(&t);
		return -ENOMEM;
	}
	char adv[NET_ADDR_MAX] = "?";
	pki_cert_get_serial(self, serial, sizeof(serial));
	pki_cert_get_address(self, adv, sizeof(adv));
	status_time_left(pki_cert_not_after(self), now, left, sizeof(left));
	time_t renews = renew_due(self);
	bool expired = pki_cert_not_after(self) <= now;
	pki_cert_free(self);

	textbuf_put(&t, "%-13s%s\n", "node:", cfg->name);
	textbuf_put(&t, "%-13s%s\n",
		    "role:", ca ? "certificate authority" : "node");
	textbuf_put(&t, "%-13s%s\n", "listening:", cfg->listen);
	/* What peers are told: the address the certificate carries. */
	textbuf_put(&t, "%-13s%s\n", "advertised:", adv);
	textbuf_put(&t, "%-13s%s\n", "state:", self_state(me));
	char found[NET_ADDR_MAX] = "";
	if (parts->certs)
		certs_ca_found_at(parts->certs, found, sizeof(found));
	if (!ca && found[0] && strcmp(found, cfg->ca_addr) != 0)
		textbuf_put(
			&t,
			"%-13s%s at %s (it moved from %s, where --ca put it)\n",
			"ca:", cfg->ca_name, found, cfg->ca_addr);
	else if (!ca)
		textbuf_put(&t, "%-13s%s at %s\n", "ca:", cfg->ca_name,
			    cfg->ca_addr);
	textbuf_put(&t, "%-13sserial %s, %s\n", "certificate:", serial, left);
	if (!expired)
		put_time(&t, "renews at:", renews);
	struct pki_crl *crl = directory_get1_crl(dir);
	if (crl)
		textbuf_put(&t,
			    "%-13snumber %llu, %zu revoked (certs/crl.pem)\n",
			    "crl:", (unsigned long long)pki_crl_number(crl),
			    pki_crl_count(crl));
	else
		textbuf_put(&t, "%-13s%s\n", "crl:", "none yet");
	time_t next = crl ? pki_crl_next_update(crl) : (time_t)-1;
	if (next != (time_t)-1 && next < now) {
		char ago[64];
		status_time_left(next, now, ago, sizeof(ago));
		textbuf_put(
			&t,
			"%-13sthe CRL is past its nextUpdate (%s): revocations "
			"since then are not known here until the CA is "
			"reached\n",
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
		textbuf_put(&t, "%-13s%s\n", "last sync:", "never");
	/* A CA that stays unreachable leaves nodes on an ageing CRL. */
	if (last_crl)
		put_time(&t, "crl fetched:", last_crl);
	textbuf_put(&t, "%-13severy %u s\n", "refresh:", parts->refresh_secs);
	if (last_error[0])
		textbuf_put(&t, "%-13s%s\n", "last error:", last_error);

	textbuf_put(&t, "%-13s%zu\n", "nodes:", directory_count(dir));
	struct peers p = { .t = &t, .dir = dir, .now = now };
	directory_each(dir, put_peer, &p);
	char *deliveries = NULL;
	size_t dlen = 0;
	if (parts->delivery &&
	    delivery_status(parts->delivery, &deliveries, &dlen) == 0) {
		textbuf_put(&t, "%-13s\n%s", "deliveries:",
			    dlen ? deliveries : "  nothing pending\n");
		free(deliveries);
	}
	char *incoming = NULL;
	size_t ilen = 0;
	if (parts->intake &&
	    intake_status(parts->intake, &incoming, &ilen) == 0) {
		textbuf_put(&t, "%-13s\n%s", "incoming:",
			    ilen ? incoming : "  nothing unfinished\n");
		free(incoming);
	}
	return textbuf_take(&t, text, len);
}
