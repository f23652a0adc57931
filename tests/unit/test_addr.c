/*
 * test_addr: the rules of a node address (net/addr.h) and the stop switch
 * (net/stop.h) that ends a connection's waits at once: thrown before a
 * connect, and thrown while a connect waits between refused attempts.
 */
#include "net/addr.h"
#include "net/conn.h"
#include "net/err.h"
#include "net/stop.h"

#include "tests/unit/check.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* True if ADDR is refused with a reason that contains WANT. */
static bool says(const char *addr, const char *want)
{
	char why[NET_ADDR_WHY_MAX];
	const char *got = net_addr_check(addr, why, sizeof(why));
	if (!got || !strstr(got, want)) {
		fprintf(stderr, "  %s: got %s\n", addr, got ? got : "(ok)");
		return false;
	}
	return true;
}

static void test_check(void)
{
	char why[NET_ADDR_WHY_MAX];
	const char *good[] = { "10.0.0.2:7000", "alice.example.org:7000",
			       "[::1]:7100",    "[2001:db8::7]:65535",
			       "0.0.0.0:7000",  "[::]:7000" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(net_addr_check(good[i], why, sizeof(why)) == NULL);
	CHECK(says("::1:7100", "in brackets: [::1]:7100"));
	CHECK(says("2001:db8::7:7000", "in brackets: [2001:db8::7]:7000"));
	CHECK(says("fe80::1", "in brackets"));
	CHECK(says("10.0.0.2", "the port is missing"));
	CHECK(says("10.0.0.2:0", "a port from 1 to 65535"));
	CHECK(says("10.0.0.2:65536", "a port from 1 to 65535"));
	CHECK(says("10.0.0.2:x", "a port from 1 to 65535"));
	CHECK(says("[alice]:7000", "IPv6 address between the brackets"));
	CHECK(says("[::1]7000", "port from 1 to 65535"));
}

static void test_wildcard(void)
{
	const char *any[] = { "0.0.0.0:7000",
			      "0:7000",
			      "0.0:7000",
			      "[::]:7000",
			      "[0:0:0:0:0:0:0:0]:7000",
			      "[::ffff:0.0.0.0]:7000" };
	for (size_t i = 0; i < sizeof(any) / sizeof(any[0]); i++)
		CHECK(net_addr_is_wildcard(any[i]));
	const char *one[] = { "10.0.0.2:7000",      "127.0.0.1:7000",
			      "[::1]:7000",         "alice.example.org:7000",
			      "0.example.org:7000", "[::ffff:10.0.0.2]:7000" };
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++)
		CHECK(!net_addr_is_wildcard(one[i]));
}

/* A port on 127.0.0.1 where nobody listens. */
static int dead_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	getsockname(s, (struct sockaddr *)&a, &len);
	close(s);
	return ntohs(a.sin_port);
}

static void *throw_later(void *arg)
{
	usleep(200 * 1000);
	net_stop_throw(arg);
	return NULL;
}

static void test_stop(void)
{
	struct net_stop *stop = NULL;
	CHECK(net_stop_new(&stop) == NET_OK);
	CHECK(!net_stop_thrown(stop));
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", dead_port());
	/* Refused 8 times, with 1 s and more between: about a minute. */
	struct net_connect_opts o = { .timeout_ms = 1000,
				      .retries = 8,
				      .backoff_ms = 1000,
				      .stop = stop };
	struct net_conn *c = NULL;
	pthread_t t;
	pthread_create(&t, NULL, throw_later, stop);
	long t0 = now_ms();
	CHECK(net_conn_connect(addr, &o, &c) == NET_ESTOPPED);
	long took = now_ms() - t0;
	CHECK(took >= 150 && took < 1000);
	pthread_join(t, NULL);
	CHECK(net_stop_thrown(stop));
	/* Thrown stays thrown: the next connect fails before it starts. */
	t0 = now_ms();
	CHECK(net_conn_connect(addr, &o, &c) == NET_ESTOPPED);
	CHECK(now_ms() - t0 < 100);
	net_stop_throw(stop);
	net_stop_free(stop);
	net_stop_free(NULL);
}

int main(void)
{
	test_check();
	test_wildcard();
	test_stop();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
