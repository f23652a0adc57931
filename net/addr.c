/*
 * addr.c: checking HOST:PORT for people, with a reason that says how to
 * write it, and telling a wildcard from an address of one host.
 */
#include "net/addr.h"

#include "net/conn.h"
#include "net/err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* True if S is 1 to 5 digits naming a port from 1 to 65535. */
static bool port_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	return v >= 1 && v <= 65535;
}

static bool is_ipv6(const char *s)
{
	struct in6_addr a;
	return inet_pton(AF_INET6, s, &a) == 1;
}

/* The reason for an ADDR whose host holds a colon but no brackets. */
static const char *bare_ipv6(const char *addr, char *why, size_t size)
{
	char host[NET_HOST_MAX];
	const char *colon = strrchr(addr, ':');
	size_t hlen = (size_t)(colon - addr);
	if (hlen < sizeof(host)) {
		memcpy(host, addr, hlen);
		host[hlen] = '\0';
		/* "::1:7100": most likely [::1]:7100 was meant. */
		if (is_ipv6(host) && port_ok(colon + 1)) {
			snprintf(why, size,
				 "takes an IPv6 address in brackets: [%s]:%s",
				 host, colon + 1);
			return why;
		}
	}
	snprintf(why, size,
		 "takes an IPv6 address in brackets, then the port: "
		 "[2001:db8::7]:7000");
	return why;
}

const char *net_addr_check(const char *addr, char *why, size_t size)
{
	char host[NET_HOST_MAX], port[8];
	if (addr && net_split_hostport(addr, host, port) == NET_OK) {
		if (!port_ok(port)) {
			snprintf(why, size,
				 "takes HOST:PORT with a port from 1 to 65535");
			return why;
		}
		if (addr[0] == '[' && !is_ipv6(host)) {
			snprintf(why, size,
				 "takes an IPv6 address between the brackets "
				 "([2001:db8::7]:7000); a name or an IPv4 "
				 "address goes without them");
			return why;
		}
		return NULL;
	}
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	if (addr && addr[0] != '[' && colon &&
	    memchr(addr, ':', (size_t)(colon - addr)))
		return bare_ipv6(addr, why, size);
	if (!colon)
		snprintf(why, size, "takes HOST:PORT (the port is missing)");
	else
		snprintf(why, size,
			 "takes HOST:PORT with a port from 1 to 65535");
	return why;
}

bool net_addr_is_wildcard(const char *addr)
{
	char host[NET_HOST_MAX], port[8];
	if (net_split_hostport(addr, host, port) != NET_OK)
		return false;
	struct in_addr a4;
	/* inet_aton takes every spelling: "0", "0.0", "0x0", "0.0.0.0". */
	if (inet_aton(host, &a4) == 1)
		return a4.s_addr == htonl(INADDR_ANY);
	struct in6_addr a6;
	if (inet_pton(AF_INET6, host, &a6) != 1)
		return false;
	if (IN6_IS_ADDR_UNSPECIFIED(&a6))
		return true;
	static const unsigned char zero4[4];
	return IN6_IS_ADDR_V4MAPPED(&a6) && !memcmp(&a6.s6_addr[12], zero4, 4);
}
