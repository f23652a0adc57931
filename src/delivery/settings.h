/*
 * settings: how a node delivers, from its node.conf (mount --relay,
 * --relay-wait, --stream), given to delivery_start and read by the
 * transfers.
 */
#ifndef SNOOPFS_DELIVERY_SETTINGS_H
#define SNOOPFS_DELIVERY_SETTINGS_H

#include <stdbool.h>

struct delivery_settings {
	bool relay;          /* ask recipients to relay (docs/relay.md) */
	unsigned relay_wait; /* seconds per relay hop; 0: from the size */
	bool stream;         /* stream files while they are written */
};

#endif
