/*
 * refused: the log line that says in words why the tree answered a
 * program with an errno, which alone cannot say it: `cp f outbox/nobody/`
 * only sees "No such file or directory", the log says "no peer 'nobody'".
 * The line is at info level and ends with the errno's own words, and each
 * place that refuses writes at most one line a second (log_info_limited),
 * so a program retrying in a loop cannot flood the log. snoopfs(1) lists
 * every case under ERRORS IN THE TREE.
 */
#ifndef SNOOPFS_TREE_REFUSED_H
#define SNOOPFS_TREE_REFUSED_H

#include <string.h>

#include "lib/log.h"

/* Logs "FMT... (strerror(-ERR))" for this place in the code. */
#define tree_refused(err, fmt, ...)                                            \
	log_info_limited(fmt " (%s)", __VA_ARGS__, strerror(-(err)))

#endif
