/*
 * fuzz_fixed: the fixed secrets the fuzz targets and the seed generator
 * share, so that seeds made once keep opening in every later run: a blob
 * content key and id, the name of the receiving node, a job id, and an RSA
 * key for unwrapping blob headers.
 *
 * The private key below exists only for fuzzing and is published here on
 * purpose; nothing outside tests/fuzz may use it.
 */
#ifndef SNOOPFS_TESTS_FUZZ_FIXED_H
#define SNOOPFS_TESTS_FUZZ_FIXED_H

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/key.h"

static const uint8_t fuzz_blob_key[PKI_AEAD_KEY] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
	0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
	0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

static const uint8_t fuzz_blob_id[PKI_BLOB_ID] = {
	0xf0, 0x0d, 0xca, 0xfe, 0x00, 0x11, 0x22, 0x33,
	0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
};

/* The node that reads blob headers (their extra "key:fuzzer"). */
#define FUZZ_SELF "fuzzer"

/* The job record fuzz_jobs loads is always DIR/FUZZ_JOB_ID.job. */
#define FUZZ_JOB_ID "0123456789abcdef0123456789abcdef"

/* RSA-2048, PKCS#8, for fuzzing only. */
static const char fuzz_rsa_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCyF8sh/zgodW2a\n"
	"BLxM3Eswq1MS5EJS2WGaXEkMjCg0rfkDR0q0BMuVIMm8Dd7EcfqlsGMpV72X4VpE\n"
	"ID5FOUTi8IMpsHRJGQ/pxw9pYqB8+yQ89jNVnrtVGGjGde5It8PSmW6Gu3oMByFb\n"
	"fERuaeH7fEd8ddB6V653EayX7d1+mptqQZ+IHd79PFAhVnWzU4xHZGQvX6C3cHAu\n"
	"9ZrRiCTF9Y0XeNg26q3ML+6+BdH1vdo8bnK6AdwB1JSY6TV/NcCYXh+bhYcQEhhT\n"
	"AVhDCfXXXT3FAHjpcbg1Ud2KeH/t6V0SvRX6JMqVo9A7NM2CFNXldsglKMz6rge8\n"
	"uxLCgz9NAgMBAAECggEALG+DX5guiunBzwwfb44HtL0KnUwWwFU85Sbhkx/laD+A\n"
	"QjEnkoMfyLXFoAZV7u4BfBXmqAocZCj2PMlOwDbp2TXphB1i5lo6fjoMvl69bHG9\n"
	"OPi1FkfktfbBLcN/EOXJFmLyEOv2J8ofqJP4/xOsLvNzYrqCqgP2o/7k8YOIIG5I\n"
	"NVojyxh0f8ThFEcVWmW+ZuCE3b+Nsv6+MfnlRk2/zQ9nJWmum73IcHbfG+5L907B\n"
	"rEIVZQvSoEb2fCa+syt7H8/pA/KkJNLa0sVAI3dY/ernjCfMeOArsR4aWLEYFI0f\n"
	"Qb3DrMUjcRqX7hpeQleYkZAWL51IGmQUo2QZXibsAQKBgQDnKqkqI02UNq1YWedJ\n"
	"P7HByB9o4piUfdmtzj2Sr+m33qK8z0if+GRQdYwTe668FcG/cjbdgVcIa7jDNSb6\n"
	"AWPezDOC3249gJyU9fxW5eiCMY91kTNvJ7Lq3Bt2HB3sqTvumQ85twg3mnz4I+df\n"
	"eua0jCeZyszFLQ4Oneeh3diJKQKBgQDFOYwKmnohUO6kOQdSAHvUUbKDF5rITW7p\n"
	"sYAPJFOvHTDuhArVd3FCEANMr9g22g4/8LvQueaSxU0O9hZ6NYUCLy/8HFjJ8cqv\n"
	"XIR1dE8Yozzp6Gn1tQXenLD22uMUbq2fVqhDzL4i6iYzokm6urB232+flCsQc0IO\n"
	"C2bHhvq1hQKBgQCqV6hiUbNoJUZlVZJ2SoZNWo+ytU9kFLzkM5bx0cky4c8fvMsy\n"
	"flJFa+k1ri1bkdi8n4hIf3fHz8FNr4wyK/YRBn5q0QQmM/CuX/l7e11zGtww8Tdq\n"
	"kGFqaZme1idC7o4oSweKKxLWDnRKUgK8PA9nOeQwkt2D6qhyIu++OoDGyQKBgQCV\n"
	"9/5fCbwYnVv5kEvatPd0KXNeb5KJASh3lztTSEJCBCZzGADM9XgvzdFUfNoiS4lO\n"
	"YZXPT6zeqhzAZawN3ah4Ur1gLYXueWewFN+8GGcUyvvEua/o4G/IKMn/y82kecyY\n"
	"PuLQO13RWs8VsC/0R4Vrvtc4NwjQB3SRDWZoDmGRqQKBgFO3I1Uw2Lsk0cLjfgeq\n"
	"vxCv8WxgsZiy0tJU82dxJA1gw0oaVJUZ0zFzZ3C0mjOX0Za05kd5Ua70WMV1knm7\n"
	"C0odNcOfg76ug26FahoT120zAUzcpSxVjyrJCdc8Ri3qoY1DQ3oLR8u9d3iY35T8\n"
	"8ZxUFU4zFND9kXr4tfjM/2p2\n"
	"-----END PRIVATE KEY-----\n";

/*
 * Loads fuzz_rsa_pem (pki_key_load reads only files, so it goes through a
 * temporary file that is removed at once). NULL on failure.
 */
static inline struct pki_key *fuzz_load_key(void)
{
	char path[] = "/tmp/snoopfs-fuzz-key.XXXXXX";
	struct pki_key *key = NULL;
	int fd = mkstemp(path);

	if (fd < 0)
		return NULL;
	if (write(fd, fuzz_rsa_pem, sizeof(fuzz_rsa_pem) - 1) ==
	    (ssize_t)(sizeof(fuzz_rsa_pem) - 1))
		(void)pki_key_load(path, &key);
	close(fd);
	unlink(path);
	return key;
}

#endif
