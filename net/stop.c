/*
 * stop.c: the switch is an eventfd that is written once and never read, so
 * that it stays readable for every poll() that includes it.
 */
#include "net/stop.h"

#include "net/err.h"

#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct net_stop {
	int fd;
};

int net_stop_new(struct net_stop **out)
{
	struct net_stop *s = malloc(sizeof(*s));
	if (!s)
		return NET_ENOMEM;
	s->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->fd < 0) {
		free(s);
		return NET_EIO;
	}
	*out = s;
	return NET_OK;
}

void net_stop_throw(struct net_stop *s)
{
	uint64_t one = 1;
	/* A full counter (never: it is written once) is thrown already. */
	ssize_t n = write(s->fd, &one, sizeof(one));
	(void)n;
}

bool net_stop_thrown(const struct net_stop *s)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

int net_stop_fd(const struct net_stop *s)
{
	return s->fd;
}

void net_stop_free(struct net_stop *s)
{
	if (!s)
		return;
	close(s->fd);
	free(s);
}
