/*
 * outbox_folder.c: outbox paths, folders and their recipients (see
 * outbox_folder.h).
 */
#include "tree/outbox_folder.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "identity/self.h"
#include "identity/state.h"
#include "lib/names.h"
#include "tree/outbox_internal.h"
#include "tree/refused.h"

int outbox_split_rel(const char *rel, char folder[JOB_FOLDER_MAX],
		     const char **rest)
{
	const char *slash = strchr(rel, '/');
	size_t n = slash ? (size_t)(slash - rel) : strlen(rel);
	if (n == 0 || n >= JOB_FOLDER_MAX)
		return -ENOENT;
	memcpy(folder, rel, n);
	folder[n] = '\0';
	*rest = slash ? slash + 1 : "";
	return 0;
}

int outbox_path(const struct outbox *ob, const char *rel, char *out)
{
	if (rel[0] && names_path_error(rel))
		return -EINVAL;
	int n = snprintf(out, STATE_PATH_MAX, "%s%s%s", ob->root,
			 rel[0] ? "/" : "", rel);
	return n < 0 || n >= STATE_PATH_MAX ? -ENAMETOOLONG : 0;
}

/* outbox_parse_folder, saying why in WHY (OUTBOX_WHY_MAX) if not NULL. */
static int parse_folder(struct outbox *ob, const char *folder,
			char names[][NAMES_NODE_MAX + 1], int *count, char *why)
{
	char copy[JOB_FOLDER_MAX];
	snprintf(copy, sizeof(copy), "%s", folder);
	int k = 0;
	char *save = NULL;
	char local[JOB_RECIPIENTS_MAX][NAMES_NODE_MAX + 1];
	char ignored[OUTBOX_WHY_MAX];
	if (!why)
		why = ignored;
	for (char *name = strtok_r(copy, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		const char *bad = names_node_error(name);
		if (k == JOB_RECIPIENTS_MAX) {
			snprintf(why, OUTBOX_WHY_MAX,
				 "more than %d recipients in one folder",
				 JOB_RECIPIENTS_MAX);
			return -EINVAL;
		}
		if (bad) {
			snprintf(why, OUTBOX_WHY_MAX,
				 "'%.*s' is not a node name: %s",
				 NAMES_NODE_MAX, name, bad);
			return -EINVAL;
		}
		if (strcmp(name, self_name(ob->self)) == 0) {
			snprintf(why, OUTBOX_WHY_MAX,
				 "'%s' is this node, and a node does not send "
				 "to itself",
				 name);
			return -EINVAL;
		}
		struct pki_cert *c =
			directory_get1(self_directory(ob->self), name);
		/* "Key has been revoked" says why, where ENOENT would not. */
		if (!c &&
		    directory_is_revoked(self_directory(ob->self), name)) {
			snprintf(why, OUTBOX_WHY_MAX,
				 "the certificate of '%s' is revoked "
				 "(certs/crl.pem)",
				 name);
			return -EKEYREVOKED;
		}
		if (!c) {
			snprintf(why, OUTBOX_WHY_MAX,
				 "no peer '%s': certs/ has no %s.pem", name,
				 name);
			return -ENOENT;
		}
		pki_cert_free(c);
		for (int i = 0; i < k; i++)
			if (strcmp(local[i], name) == 0) {
				snprintf(why, OUTBOX_WHY_MAX,
					 "'%s' is named twice", name);
				return -EINVAL;
			}
		strcpy(local[k++], name);
	}
	/* strtok_r skips empty parts; a stray comma is still an error. */
	if (k == 0 || folder[0] == ',' || folder[strlen(folder) - 1] == ',' ||
	    strstr(folder, ",,")) {
		snprintf(why, OUTBOX_WHY_MAX,
			 "an empty name in the list of recipients");
		return -EINVAL;
	}
	if (names)
		memcpy(names, local, sizeof(local[0]) * (size_t)k);
	if (count)
		*count = k;
	return 0;
}

int outbox_parse_folder(struct outbox *ob, const char *folder,
			char names[][NAMES_NODE_MAX + 1], int *count)
{
	return parse_folder(ob, folder, names, count, NULL);
}

int outbox_folder_why(struct outbox *ob, const char *folder, char *why)
{
	why[0] = '\0';
	return parse_folder(ob, folder, NULL, NULL, why);
}

/*
 * One limit per kind of reason (no such peer, revoked, a bad list). A
 * lookup says "no such folder" without the errno's words, for programs
 * make different errors of it (cp: "Not a directory", mkdir: "Invalid
 * argument"); the kernel looks the name up before every mkdir or create,
 * so this one line covers those too. Nothing is logged for a list of
 * known peers that is not made yet.
 */
int outbox_no_folder(struct outbox *ob, const char *folder, int err)
{
	static struct log_limit limits[3];
	char why[OUTBOX_WHY_MAX];
	int rc = outbox_folder_why(ob, folder, why);
	int kind = rc == -ENOENT ? 0 : rc == -EKEYREVOKED ? 1 : 2;
	if (rc && err)
		log_limited(&limits[kind], LOGL_INFO, "outbox/%s: %s (%s)",
			    folder, why, strerror(-err));
	else if (rc)
		log_limited(&limits[kind], LOGL_INFO,
			    "outbox/%s: no such folder: %s", folder, why);
	return err ? err : -ENOENT;
}

int outbox_bad_path(const char *rel, int err)
{
	const char *why = names_path_error(rel);
	tree_refused(err, "outbox/%s: not a valid path: %s", rel,
		     why ? why : "too long");
	return err;
}

int outbox_outside_folder(const char *rel, int err)
{
	tree_refused(err,
		     "outbox/%s: a file goes into a peer's folder, "
		     "outbox/PEER/NAME",
		     rel);
	return err;
}

int outbox_rename_allowed(const char *from, const char *to, unsigned flags)
{
	char folder[JOB_FOLDER_MAX];
	const char *rest;
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		tree_refused(-EINVAL,
			     "outbox/%s: a rename in outbox/ may not exchange "
			     "(RENAME_EXCHANGE)",
			     from);
		return -EINVAL;
	}
	if (outbox_split_rel(from, folder, &rest) || !rest[0]) {
		tree_refused(-EPERM,
			     "outbox/%s: folders of outbox/ are not renamed "
			     "(a folder's name is its list of recipients: "
			     "mkdir the new one and move the files)",
			     from);
		return -EPERM;
	}
	if (outbox_split_rel(to, folder, &rest) || !rest[0])
		return outbox_outside_folder(to, -EPERM);
	return 0;
}

bool outbox_is_dir(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool outbox_folder_exists(struct outbox *ob, const char *folder)
{
	char path[STATE_PATH_MAX];
	if (outbox_path(ob, folder, path))
		return false;
	return outbox_is_dir(path) ||
	       (!strchr(folder, ',') &&
		outbox_parse_folder(ob, folder, NULL, NULL) == 0);
}

int outbox_ensure_folder(struct outbox *ob, const char *folder)
{
	char path[STATE_PATH_MAX];
	int rc = outbox_path(ob, folder, path);
	if (rc)
		return rc;
	/*
	 * Every create lands here: an lstat says the folder is there (a
	 * mkdir would fail with EEXIST, costlier); mkdir only for a peer's
	 * folder not made yet (outbox_folder_exists without the lstat).
	 */
	if (outbox_is_dir(path))
		return 0;
	if (strchr(folder, ',') ||
	    outbox_parse_folder(ob, folder, NULL, NULL) != 0)
		return -ENOENT;
	return state_mkdir(path);
}

bool outbox_is_final(const char *rel)
{
	const char *rest;
	char folder[JOB_FOLDER_MAX];
	return outbox_split_rel(rel, folder, &rest) == 0 && rest[0] &&
	       !names_in_progress(rest);
}
