/*
 * addr: the rules for a node address, HOST:PORT, as an operator writes it
 * in --listen, --advertise and --ca. HOST is a DNS name, an IPv4 address or
 * an IPv6 address in brackets ([2001:db8::7]:7000); PORT is 1 to 65535.
 * A wildcard (0.0.0.0, [::] and the other spellings of the unspecified
 * address) may be bound but names no host to connect to, so it is never
 * advertised.
 */
#ifndef SNOOPFS_NET_ADDR_H
#define SNOOPFS_NET_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/* Room for a net_addr_check() reason. */
#define NET_ADDR_WHY_MAX 160

/*
 * Checks that ADDR is HOST:PORT as above. Returns NULL if it is, else WHY
 * (NET_ADDR_WHY_MAX bytes) saying what is wrong and how to write it, to
 * follow the option's name: "takes HOST:PORT with a port from 1 to 65535",
 * "takes an IPv6 address in brackets: [::1]:7100".
 */
const char *net_addr_check(const char *addr, char *why, size_t size);

/*
 * True if the host of ADDR (HOST:PORT, checked) is a wildcard: every IPv4
 * spelling of 0.0.0.0 and every IPv6 spelling of :: (also ::ffff:0.0.0.0).
 */
bool net_addr_is_wildcard(const char *addr);

#endif
