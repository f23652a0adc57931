/*
 * outbox_folder: what a path in outbox/ means. "bob/a.csv" is the file
 * a.csv of folder "bob", whose name lists its recipients ("bob", or
 * "bob,carol" for several: known peers, not this node, no repeats); it
 * lives at STATE/outbox/bob/a.csv. Used by the files of the outbox only.
 */
#ifndef SNOOPFS_TREE_OUTBOX_FOLDER_H
#define SNOOPFS_TREE_OUTBOX_FOLDER_H

#include "store/jobs.h"
#include <stdbool.h>

struct outbox;

/*
 * Splits REL into its FOLDER and the REST ("" if REL is the folder).
 * 0, or -ENOENT if the folder part is empty or too long.
 */
int outbox_split_rel(const char *rel, char folder[JOB_FOLDER_MAX],
		     const char **rest);

/*
 * STATE/outbox/REL into OUT (STATE_PATH_MAX), after checking REL's path
 * rules. 0, -EINVAL or -ENAMETOOLONG.
 */
int outbox_path(const struct outbox *ob, const char *rel, char *out);

/* Room for what outbox_folder_why says, with a name of any length. */
#define OUTBOX_WHY_MAX (2 * NAMES_NODE_MAX + 96)

/*
 * Checks that FOLDER names recipients: one or more known peers (not this
 * node), comma-separated, no repeats. Fills NAMES/COUNT if not NULL. 0,
 * -ENOENT (a peer nobody knows), -EKEYREVOKED (a revoked one), -EINVAL.
 */
int outbox_parse_folder(struct outbox *ob, const char *folder,
			char names[][NAMES_NODE_MAX + 1], int *count);

/*
 * Why FOLDER names no recipients, in words for the log, into WHY
 * (OUTBOX_WHY_MAX): "no node 'bob' in certs/", "'ca' is revoked", "'alice'
 * is this node", "'root' is not a node name: ...". Returns what
 * outbox_parse_folder returns.
 */
int outbox_folder_why(struct outbox *ob, const char *folder, char *why);

/*
 * True if FOLDER exists: it is in STATE already, or names one known peer
 * (each peer has its folder from the start; several-recipient folders are
 * made with mkdir).
 */
bool outbox_folder_exists(struct outbox *ob, const char *folder);

/*
 * The refusals that concern what a path means, each said in words in the
 * log (tree/refused.h) and returned. outbox_no_folder: ERR for FOLDER,
 * which names no recipients (ERR 0: a lookup, answered -ENOENT);
 * outbox_bad_path: ERR for REL, which breaks the path rules;
 * outbox_outside_folder: ERR for REL, a file in outbox/ itself.
 */
int outbox_no_folder(struct outbox *ob, const char *folder, int err);
int outbox_bad_path(const char *rel, int err);
int outbox_outside_folder(const char *rel, int err);

/*
 * 0 if what FROM and TO mean allows renaming one to the other with FLAGS
 * (only RENAME_NOREPLACE; files, not folders, and into a folder), else the
 * refusal (-EINVAL, -EPERM), logged.
 */
int outbox_rename_allowed(const char *from, const char *to, unsigned flags);

/* Makes sure STATE/outbox/FOLDER exists. 0 or -errno. ob->lock held. */
int outbox_ensure_folder(struct outbox *ob, const char *folder);

/* True if REL is a file in a folder under a final (not in-progress) name. */
bool outbox_is_final(const char *rel);

/* True if PATH is a directory (not followed if a link). */
bool outbox_is_dir(const char *path);

#endif
