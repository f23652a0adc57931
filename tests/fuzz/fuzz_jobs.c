/*
 * fuzz_jobs: loading a job record (src/store/jobs.h). A record decides what is
 * sent to whom, and a damaged disk or a careless operator can leave any
 * bytes in one, so job_load() must refuse what job_save() would not have
 * written. The input is written as DIR/FUZZ_JOB_ID.job in a temporary
 * directory and loaded; a record that loads must save again, and the saved
 * record must load to the same job.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "store/jobs.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_fixed.h"

static char dir[] = "/tmp/snoopfs-fuzz-jobs.XXXXXX";
static char file[sizeof(dir) + sizeof(FUZZ_JOB_ID) + 8];
static struct job *job, *again;

static void cleanup(void)
{
	unlink(file);
	rmdir(dir);
	free(job);
	free(again);
}

static void setup(void)
{
	/* job_load warns about every malformed record; that is the norm here.
	 */
	log_init("fuzz_jobs", LOGL_ERROR);
	job = malloc(sizeof(*job));
	again = malloc(sizeof(*again));
	if (job == NULL || again == NULL || mkdtemp(dir) == NULL)
		abort();
	snprintf(file, sizeof(file), "%s/%s.job", dir, FUZZ_JOB_ID);
	atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd, rc;

	if (job == NULL)
		setup();
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);

	rc = job_load(dir, FUZZ_JOB_ID, job);
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL);
	if (rc != 0)
		return 0;
	FUZZ_ASSERT(strcmp(job->id, FUZZ_JOB_ID) == 0);
	FUZZ_ASSERT(job->nrecipients >= 1 &&
		    job->nrecipients <= JOB_RECIPIENTS_MAX);
	(void)job_complete(job);

	/* What loads is what save accepts, and it reads back the same. */
	FUZZ_ASSERT(job_save(dir, job) == 0);
	FUZZ_ASSERT(job_load(dir, FUZZ_JOB_ID, again) == 0);
	FUZZ_ASSERT(strcmp(job->folder, again->folder) == 0 &&
		    strcmp(job->path, again->path) == 0 &&
		    strcmp(job->sha256, again->sha256) == 0 &&
		    job->size == again->size &&
		    job->created == again->created &&
		    job->nrecipients == again->nrecipients &&
		    job->self_wrapped_len == again->self_wrapped_len &&
		    memcmp(job->self_wrapped, again->self_wrapped,
			   job->self_wrapped_len) == 0);
	for (int i = 0; i < job->nrecipients; i++) {
		const struct job_recipient *a = &job->recipients[i];
		const struct job_recipient *b = &again->recipients[i];

		FUZZ_ASSERT(
			strcmp(a->name, b->name) == 0 && a->done == b->done &&
			a->wrapped_len == b->wrapped_len &&
			memcmp(a->wrapped, b->wrapped, a->wrapped_len) == 0);
	}
	return 0;
}
