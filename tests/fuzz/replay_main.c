/*
 * replay_main: an ordinary main() for the fuzz targets. It feeds every
 * regular file in the directories (or the files) named on the command line
 * to LLVMFuzzerTestOneInput once, so ctest replays the committed corpus on
 * every run without libFuzzer. Each input is copied into a heap buffer of
 * exactly its size, so an ASan build catches a read one byte past the end
 * as libFuzzer would.
 *
 * A crash ends the program (that is the failure ctest sees); otherwise the
 * last line is "replayed N inputs" and the exit status is 0, or 1 if a file
 * could not be read or nothing at all was replayed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"

/* Larger than any seed; libFuzzer's own default limit is far smaller. */
#define REPLAY_FILE_MAX (16 * 1024 * 1024)
#define REPLAY_PATH_MAX 4096

static size_t replayed;
static int errors;

static void replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *buf;
	size_t len;

	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		errors++;
		return;
	}
	if (fstat(fileno(f), &st) != 0 || st.st_size < 0 ||
	    st.st_size > REPLAY_FILE_MAX) {
		fprintf(stderr, "replay: %s: unreadable or too large\n", path);
		fclose(f);
		errors++;
		return;
	}
	len = (size_t)st.st_size;
	/* malloc(0) may return NULL; an empty input is still replayed. */
	buf = malloc(len > 0 ? len : 1);
	if (buf == NULL || fread(buf, 1, len, f) != len) {
		fprintf(stderr, "replay: %s: read failed\n", path);
		free(buf);
		fclose(f);
		errors++;
		return;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	replayed++;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays the regular files of DIR in name order, so runs are repeatable. */
static void replay_dir(const char *dir)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dp = opendir(dir);

	if (dp == NULL) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		errors++;
		return;
	}
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **p = realloc(names, ncap * sizeof(*p));
			if (p == NULL)
				break;
			names = p;
			cap = ncap;
		}
		names[n] = strdup(de->d_name);
		if (names[n] == NULL)
			break;
		n++;
	}
	closedir(dp);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char path[REPLAY_PATH_MAX];
		struct stat st;
		int w = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);

		if (w < 0 || (size_t)w >= sizeof(path)) {
			fprintf(stderr, "replay: %s/%s: path too long\n", dir,
				names[i]);
			errors++;
		} else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			replay_file(path);
		}
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
				strerror(errno));
			errors++;
		} else if (S_ISDIR(st.st_mode)) {
			replay_dir(argv[i]);
		} else {
			replay_file(argv[i]);
		}
	}
	printf("replayed %zu inputs, %d unreadable\n", replayed, errors);
	return errors > 0 || replayed == 0 ? 1 : 0;
}
