/*
 * test_ustar: tar headers as ca-backup writes them, read back; what the
 * reader refuses; and that GNU tar reads what the writer makes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/ustar.h"
#include "tests/unit/check.h"

static void test_roundtrip(void)
{
	struct ustar_member m = { .type = USTAR_FILE,
				  .mode = 0600,
				  .size = 1234,
				  .mtime = 1800000000 };
	snprintf(m.name, sizeof(m.name), "dir/root.key");
	uint8_t block[USTAR_BLOCK];
	CHECK(ustar_header(&m, block) == 0);
	struct ustar_member got;
	CHECK(ustar_parse(block, &got) == 0);
	CHECK(strcmp(got.name, "dir/root.key") == 0);
	CHECK(got.type == USTAR_FILE && got.mode == 0600);
	CHECK(got.size == 1234 && got.mtime == 1800000000);

	/* The largest size fits; one more does not. */
	m.size = USTAR_SIZE_MAX;
	CHECK(ustar_header(&m, block) == 0);
	CHECK(ustar_parse(block, &got) == 0 && got.size == USTAR_SIZE_MAX);
	m.size = USTAR_SIZE_MAX + 1;
	CHECK(ustar_header(&m, block) != 0);

	struct ustar_member d = { .type = USTAR_DIR, .mode = 0700 };
	snprintf(d.name, sizeof(d.name), "dir/");
	CHECK(ustar_header(&d, block) == 0);
	CHECK(ustar_parse(block, &got) == 0 && got.type == USTAR_DIR);
	d.size = 1; /* a directory has no data */
	CHECK(ustar_header(&d, block) != 0);

	memset(block, 0, sizeof(block));
	CHECK(ustar_parse(block, &got) == 1);
	CHECK(ustar_padding(0) == 0 && ustar_padding(1) == 511);
	CHECK(ustar_padding(512) == 0 && ustar_padding(513) == 511);
}

static void test_refused(void)
{
	struct ustar_member m = { .type = USTAR_FILE, .mode = 0644, .size = 7 };
	snprintf(m.name, sizeof(m.name), "x");
	uint8_t good[USTAR_BLOCK], block[USTAR_BLOCK];
	struct ustar_member got;
	CHECK(ustar_header(&m, good) == 0);
	/* Any flipped byte breaks the checksum or a field. */
	int accepted = 0;
	for (int i = 0; i < USTAR_BLOCK; i++) {
		memcpy(block, good, sizeof(block));
		block[i] ^= 0x01;
		accepted += ustar_parse(block, &got) == 0;
	}
	CHECK(accepted == 0);
	/* A symlink with a right checksum is still refused. */
	memcpy(block, good, sizeof(block));
	block[156] = '2';
	unsigned sum = 0;
	memset(block + 148, ' ', 8);
	for (int i = 0; i < USTAR_BLOCK; i++)
		sum += block[i];
	snprintf((char *)block + 148, 8, "%06o", sum);
	CHECK(ustar_parse(block, &got) == -EINVAL);
	/* Names that do not fit are refused by the writer. */
	memset(m.name, 'a', USTAR_NAME_MAX);
	m.name[USTAR_NAME_MAX] = '\0';
	CHECK(ustar_header(&m, block) == 0);
	m.name[0] = '\0';
	CHECK(ustar_header(&m, block) != 0);
}

/* GNU tar lists and unpacks an archive made of these headers. */
static void test_gnu_tar(void)
{
	char dir[] = "/tmp/test_ustar.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[128], cmd[512];
	snprintf(path, sizeof(path), "%s/a.tar", dir);
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	if (!f)
		return;
	uint8_t block[USTAR_BLOCK], zeros[2 * USTAR_BLOCK] = { 0 };
	struct ustar_member d = { .type = USTAR_DIR, .mode = 0700 };
	snprintf(d.name, sizeof(d.name), "top/");
	CHECK(ustar_header(&d, block) == 0);
	fwrite(block, 1, sizeof(block), f);
	struct ustar_member m = { .type = USTAR_FILE, .mode = 0600, .size = 6 };
	snprintf(m.name, sizeof(m.name), "top/hello");
	CHECK(ustar_header(&m, block) == 0);
	fwrite(block, 1, sizeof(block), f);
	fwrite("hello\n", 1, 6, f);
	fwrite(zeros, 1, ustar_padding(6), f);
	fwrite(zeros, 1, sizeof(zeros), f);
	CHECK(fclose(f) == 0);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && tar xf a.tar && test \"$(cat top/hello)\" = hello "
		 "&& test \"$(stat -c %%a top/hello)\" = 600",
		 dir);
	CHECK(system(cmd) == 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	test_roundtrip();
	test_refused();
	test_gnu_tar();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
