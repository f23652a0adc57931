/*
 * fuzz_ustar: the tar header parser (src/base/ustar.h) that `snoopfs
 * ca-restore` runs on every header of a backup file. The input is cut or
 * padded with zeros to one header block. A header the parser takes must
 * say what the writer can say (a short name, a file or a directory, sizes
 * and modes in range), and written again it must read back the same.
 */
#include <string.h>

#include "base/ustar.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t block[USTAR_BLOCK] = { 0 };
	memcpy(block, data, size < sizeof(block) ? size : sizeof(block));
	struct ustar_member m, again;
	int rc = ustar_parse(block, &m);
	FUZZ_ASSERT(rc == 0 || rc == 1 || rc < 0);
	if (rc != 0)
		return 0;
	FUZZ_ASSERT(m.name[0] && strlen(m.name) <= USTAR_NAME_MAX);
	FUZZ_ASSERT(m.type == USTAR_FILE || m.type == USTAR_DIR);
	FUZZ_ASSERT(m.mode <= 07777 && m.size <= USTAR_SIZE_MAX);
	FUZZ_ASSERT(m.type == USTAR_FILE || m.size == 0);
	FUZZ_ASSERT(ustar_header(&m, block) == 0);
	FUZZ_ASSERT(ustar_parse(block, &again) == 0);
	FUZZ_ASSERT(memcmp(&m, &again, sizeof(m)) == 0);
	return 0;
}
