/*
 * test_pki: unit tests for pki/, through its public headers only.
 *
 * It generates real keys, a root and node certificates in a temporary
 * directory, checks every public function on good and hostile input, and,
 * where the tools are installed, has `openssl` and GnuTLS `certtool`
 * verify what we issue, because interoperability is the point of the
 * certificate profile. The last line printed is "N passed, N failed"; the
 * exit status is non-zero if anything failed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/names.h"
#include "pki/ca.h"
#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/err.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "pki/verify.h"
#include "tests/unit/check.h"

/* Like CHECK(EXPR == WANT) for pki codes, but says what came back. */
#define CHECK_RC(expr, want)                                                   \
	do {                                                                   \
		int rc_ = (expr);                                              \
		if (rc_ == (want)) {                                           \
			passed++;                                              \
		} else {                                                       \
			failed++;                                              \
			fprintf(stderr,                                        \
				"%s:%d: %s returned %d (%s), "                 \
				"expected %d\n",                               \
				__FILE__, __LINE__, #expr, rc_,                \
				pki_strerror(rc_), (int)(want));               \
		}                                                              \
	} while (0)

static const char TRAD_RSA_2048[] =
	"-----BEGIN RSA PRIVATE KEY-----\n"
	"MIIEogIBAAKCAQEAuMoSPJ1bGzfXFlQHFyXRyhrPj2gLPlbv82X2S4elJP5sKAmh\n"
	"GuKgfCDv19ogkuJ2k/gcqvjl4GcQB8gh3kDfWAHXZ6qoVR6ODptoOUJfHc9NUcr6\n"
	"4/gCBBvp6VMunZKb6XWQaJIwh15mSdum1GbNn8TYD6YerWqRDuZP0LG5vijBCIr9\n"
	"2f5qljv/sqG+WJ6oz/vJkIWK+HiaSOhM6hIhlgTgRvlrNid9hNNQVmVpvxXB1i/i\n"
	"TQhPM4nsU59TcEl9W9+PDHu5BmJ8iEGMXjykQdeEssTLGlImHlCbyfMvVY04QeLP\n"
	"C04l2KJOtvDVPhftsgz0t+zwrs12YH3ay7LRDwIDAQABAoIBADQnjEghXXJsKz+5\n"
	"DZtB6FkzgfuGsQ2yOd0nnQEqUrkDOgF+3kKZThRas3bnsKPkWPVgZK74uuDAFe0s\n"
	"VirFgoPzWRmAOCx2CEAlKqBmlDP0q2z3biJjgCYqvrVE7fY5R9n3fX+WKy45vYMB\n"
	"BLAUJ9r9EsIv756gYjqjVEmhr7v0hncy9D1HRtcYVIbZP+6db5wwE2tHNlhtCzvd\n"
	"nIo0BfjJmEL70NJ1X34tt8zQDPi1kA8qhYrVrOU6E176bh+KJbGlXIcWbZEO5dD/\n"
	"2ZG9kxdtirWFgqabj82PINamvoZ9qQZGitbCrJLEeKhKM1i0OLl4gNVpPjhaR38Q\n"
	"Yi+pOSECgYEA/X6nbD6PXQu2vYMyYUtiy/NsqKAWciuhkjttrkm07u0yd/F8XaH9\n"
	"d/cnZkOlg6anOarmfAJP6CZ1fQRIUS0ySejt9R+C90uRt/6uMEZYRWytdRFiMc1H\n"
	"VWiz1KMfy5xzPrbgQIghNdLujMdzfwimTr3E6dvDsjIecESNLUO4g3ECgYEAup2X\n"
	"ZpbGwX+gRAmSVyTTekw2HV0R454jXT1XEpvfQC8QF5U4kzNya3pcmN269fy3bkq5\n"
	"LRX8kZVAtvypd3XWpcjnW3IA0QQs45iRrV4ynFoP1QtiIDntGE1wZrB4nCjfE/4G\n"
	"7bbR0t5zenRs8PhKXVCiFO/QHnsEFkwa9LI9XH8CgYBgvtm+4hFs/W983Hl50H+g\n"
	"PwMVSCPI5wX+/Vda0R6QoU5FoJBKW+yUwGr1CJQ+rnfb9nGImolMnIDyeZPwB0PO\n"
	"GWvXxXMCVoECq9xm6DIALP32U/AZ+bJj0lXvrWIRH2CMatcjSdEC7cHFUMmvjemK\n"
	"27ovVoRVmfMr/b2zrMjawQKBgBQezaYX95IBSqxLQ+X1aH+1G9iKolUiRbnV1T+C\n"
	"Ys2uxVNlmVX1pA6GgNlSfsfq2XQgxlpgFn0z1GhmUXc500zInnkzj3b5tkVLu9kv\n"
	"YNGOvEpCEfBbjn6iSs4nlLlxhqvHJcQXhAPyTA0V5HEOtCXffbo4KP5AUS5+QiHD\n"
	"3e3NAoGAGvujVqUtdrYqYWnkixN0mRuYOSq34DsyaDoT16Mg6D9cplANl+i5Onwy\n"
	"dFclndnJgJacu5DSJPB5Iv5yiKGk0JXFIepGi64ytRLAihZC75zbLM6Fa/kKplIj\n"
	"m2lLRHZjI2odvpfbcKQs9EKN02k6VZ3NwCcR7UF7VeZwhRjDl84=\n"
	"-----END RSA PRIVATE KEY-----\n";

static const char TRAD_RSA_1024[] =
	"-----BEGIN RSA PRIVATE KEY-----\n"
	"MIICWwIBAAKBgQCwg0pCBuJ7kKidlVPPVsRPtFkBvKAZz+chBDj03310tksi8BbX\n"
	"IMhBaZe/9dlR76AC1nobHnxxkbPH/zy0v5lYDjMQHVNJgF1q8nCVOSLbMBbanT2s\n"
	"OpcGdkydog/AYxEZvz58eSOE53eU7SNmPQe+tXUSmGeFA7qdBDiT9iNdfwIDAQAB\n"
	"AoGAf4NY8bnngzxNkwl9MhuMVcgDRK3vOrZmUgOq4btR9i56uRKYbXDROe/+ID6K\n"
	"cBabkXE/ZLfxTlnjdmd8g1amfzJUjSh8RjxPT73rnjyJnQCdgSTqknliOMbvFfN+\n"
	"l0NA/z0T7zPstdmHpMeV4ka9IVgkaWjQEMS6erh50S4DLAECQQDkevbi26fWWn6w\n"
	"6F3S2QoZUWV6mmvWcKnxUbdcKngBHth5SV0/2pexRgeoG5GXVv49RSr3Pu3yQrNQ\n"
	"yF5w0OFhAkEAxcXxnsZH/Mbm/lWgIEEzOp5Xyxthw8+TD7VxuO/dsuFe9WTrni8t\n"
	"t/sOWvKq4N7SLTu/wsMOLKj4ZILuRqlK3wJAKlED7NxV54N3N3ix990u26WRr/Vt\n"
	"x5eyQfmqhi1vcHWwDjaiSLNJqRGZVW9Vtbvs9pga7xP+qgHkiC+0HhzxwQJAReu/\n"
	"isTLOqEPlaesHvsuI3FL1LDvlYzTj2A0vo9/L/jh25w8eQZxAXSvFJRquWnNoNRY\n"
	"7YCMiFmMx+xKVY0QvQJAJhKvFu/R3LgVLdvbBhLW9FSURdDpwuFTwx8Rs8EW/dcU\n"
	"oHOYwL38VNYF+s9Qqsx5/zzfbKDQyVodEyBNsP++HA==\n"
	"-----END RSA PRIVATE KEY-----\n";

static const char EC_P256[] =
	"-----BEGIN EC PRIVATE KEY-----\n"
	"MHcCAQEEILraWPGKy+1eE8/gcjZn7q2r8S/xNAG74JBWLHD2rHqToAoGCCqGSM49\n"
	"AwEHoUQDQgAE18t8fWzdIk7GVCgOP6RYssY9sFVbTYjN+Ovu9tQ2K9AB5z0x9Kjb\n"
	"skcicgK5Nh5DS7Pig8SMyetSXIyQflXJUg==\n"
	"-----END EC PRIVATE KEY-----\n";

static const char ENCRYPTED_RSA[] =
	"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
	"MIIC3TBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQIZnmLSvLlMLgCAggA\n"
	"MAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAECBBAz4jCvxwKvCcvXWpNWiPLMBIIC\n"
	"gD3Otp3oK38LsSs9dOvh13kdm/4Yn859P2eQThRU0kaVU1PgNAaF8P3YBUso77g5\n"
	"e4uQkP26f8+yc0Y2w+ESxPzApdvPBMc2eXWon559A2U90053Yi6RESvL/D6EEOca\n"
	"pZHU9qa5S/DgMZqZ16NmrOTzVeE+7ZzC3GI8ehefiE4Io4mFXW0wJVivmPoVUVkB\n"
	"IODqQZ4jkqvsaw0oXT+mvbWb20cpuJPX4gv3vE0w1i2F53ShfJwf+wEJ3leJO0G4\n"
	"M+TIEw1pgg0BalNP/0vwOa8IqTbrcbDJ7eLr+EA4P4BcS/K+Q0II6eYgU0+vv4T2\n"
	"xrjqLDHdyfK3tqBg2Rb3O999LJIkFsvykGi3YxD2d3lAhuGYTG3ZwQmPNUXTyOFE\n"
	"damf4tyojMi0XbFZ3mbkJ5w0vitpouVkirp0ck2CLlPmXlPCVMCrLwOkPpNEjY2p\n"
	"E2o/JZzZrIm73qnQYSiAlO/zyHYPLhI6ibQv2FjRkDCa/xx3E5fLH1UjtqRZjuab\n"
	"VLcdDH2AQ/unb6Mwji+yMSVPMZGNwR152XGOOMASOBLuBEbi0lOouoXkaijVAfTJ\n"
	"ZPkHOKMMy2rPTtPx/vZTJn4IqY2lxKRXDcOO9ktSXd+v08FqHzEShVHBSp0T5xl0\n"
	"Hepp2UiZTOnPDmr2H9fMMxBtHwRjCL7iEfE9/Zr8nrGJf89BmKjoEjvLgzkTk+pV\n"
	"Pi8dHg2J99OUE3gvq7Uaxj4HDDmrDdUB5gbn0zWIfOhAof+FkwibanuhRkgpDi/A\n"
	"feteFlh5pPTvGQ5bLvTIiIgU3C/s3W8Jk/LRYYroIf1LfCaJn/fr6xPri2iRL+1N\n"
	"i3N/cnNpNL86ILhC3KTSEJc=\n"
	"-----END ENCRYPTED PRIVATE KEY-----\n";

/* CSRs made with `openssl req` that a CA must not take at face value. */
static const char CSR_CN_ROOT[] =
	"-----BEGIN CERTIFICATE REQUEST-----\n"
	"MIICVDCCATwCAQAwDzENMAsGA1UEAwwEcm9vdDCCASIwDQYJKoZIhvcNAQEBBQAD\n"
	"ggEPADCCAQoCggEBALjKEjydWxs31xZUBxcl0coaz49oCz5W7/Nl9kuHpST+bCgJ\n"
	"oRrioHwg79faIJLidpP4HKr45eBnEAfIId5A31gB12eqqFUejg6baDlCXx3PTVHK\n"
	"+uP4AgQb6elTLp2Sm+l1kGiSMIdeZknbptRmzZ/E2A+mHq1qkQ7mT9Cxub4owQiK\n"
	"/dn+apY7/7KhvlieqM/7yZCFivh4mkjoTOoSIZYE4Eb5azYnfYTTUFZlab8VwdYv\n"
	"4k0ITzOJ7FOfU3BJfVvfjwx7uQZifIhBjF48pEHXhLLEyxpSJh5Qm8nzL1WNOEHi\n"
	"zwtOJdiiTrbw1T4X7bIM9Lfs8K7NdmB92suy0Q8CAwEAAaAAMA0GCSqGSIb3DQEB\n"
	"CwUAA4IBAQAg5u6vaEP2ZbAeD85ANExnS6Rm9fFGflM65uxc9Mi4czvz3js02j49\n"
	"iNuvqV75xSc7D0LxD5pvtnw8w1ibKWBu/sqAQS5hXQM0QaM8IHmQe1dtzxyaKsxs\n"
	"GVdqT+mZR0hkVOcQJoAh7XVnG70cfSfH1gFBSRAS9P4xwuR8BDIANDbSsxcQz57E\n"
	"BhA/QydCK+4JyAuo7YXPvjtGnBKDlBKiy1F6D4v7sqPLKk8q7SijTaWwoe9u6Onz\n"
	"wVcaCvsXmPOXgD72gI3Bwd/BZIC03ZzXZa+Cw9Qz10qgQQb5jjNrX9T2hcJk7zmX\n"
	"7hfwsh50ZkYrq9OWeplRf7rxEcxF7AwU\n"
	"-----END CERTIFICATE REQUEST-----\n";

static const char CSR_TWO_CNS[] =
	"-----BEGIN CERTIFICATE REQUEST-----\n"
	"MIICYzCCAUsCAQAwHjEOMAwGA1UEAwwFYWxpY2UxDDAKBgNVBAMMA2JvYjCCASIw\n"
	"DQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBALjKEjydWxs31xZUBxcl0coaz49o\n"
	"Cz5W7/Nl9kuHpST+bCgJoRrioHwg79faIJLidpP4HKr45eBnEAfIId5A31gB12eq\n"
	"qFUejg6baDlCXx3PTVHK+uP4AgQb6elTLp2Sm+l1kGiSMIdeZknbptRmzZ/E2A+m\n"
	"Hq1qkQ7mT9Cxub4owQiK/dn+apY7/7KhvlieqM/7yZCFivh4mkjoTOoSIZYE4Eb5\n"
	"azYnfYTTUFZlab8VwdYv4k0ITzOJ7FOfU3BJfVvfjwx7uQZifIhBjF48pEHXhLLE\n"
	"yxpSJh5Qm8nzL1WNOEHizwtOJdiiTrbw1T4X7bIM9Lfs8K7NdmB92suy0Q8CAwEA\n"
	"AaAAMA0GCSqGSIb3DQEBCwUAA4IBAQBvJIrSriNKPOkJ9ha7mN2+dW17KJg+aNBD\n"
	"JXW/wXCGFrlGN73WfpkNBEdPuMn+r1iESA3BUbZrshrPBSE+D8V6GASFrtKDjPLV\n"
	"If6w+Df8JPEynM0k6xt2wMBB2tbhX1Zaxo68vjGF1K87Ks8mpSF8A2H+Snc62Trc\n"
	"yUJnlNKnkm7ruIbus6KoMbEIln5NmGNlGD84ShN2yeyZDIg+m4wipyxMJ2dCwVOV\n"
	"W48DNcE3PvJYvub2CHd0ER03I9IyzM5DdZONFqWVQuu9UlSvhWLRFVJ6o6IsV42m\n"
	"DLOxX5tGCwS13X3p/timYhEtGnfd4X1Ym09ok3c5CCAHEa9f0Jgn\n"
	"-----END CERTIFICATE REQUEST-----\n";

static const char CSR_NO_CN[] =
	"-----BEGIN CERTIFICATE REQUEST-----\n"
	"MIICVjCCAT4CAQAwETEPMA0GA1UECgwGbm9ib2R5MIIBIjANBgkqhkiG9w0BAQEF\n"
	"AAOCAQ8AMIIBCgKCAQEAuMoSPJ1bGzfXFlQHFyXRyhrPj2gLPlbv82X2S4elJP5s\n"
	"KAmhGuKgfCDv19ogkuJ2k/gcqvjl4GcQB8gh3kDfWAHXZ6qoVR6ODptoOUJfHc9N\n"
	"Ucr64/gCBBvp6VMunZKb6XWQaJIwh15mSdum1GbNn8TYD6YerWqRDuZP0LG5vijB\n"
	"CIr92f5qljv/sqG+WJ6oz/vJkIWK+HiaSOhM6hIhlgTgRvlrNid9hNNQVmVpvxXB\n"
	"1i/iTQhPM4nsU59TcEl9W9+PDHu5BmJ8iEGMXjykQdeEssTLGlImHlCbyfMvVY04\n"
	"QeLPC04l2KJOtvDVPhftsgz0t+zwrs12YH3ay7LRDwIDAQABoAAwDQYJKoZIhvcN\n"
	"AQELBQADggEBAA2t8gurPYMIJznXZYa0ulQMe4ECz8mOVHZqkGZSra4eIQ21tytx\n"
	"a/jiBJFzwdpBWrjN7gDEysSJptq4TnbUe2jeiLGRvIax+8DOJoy8TV9gbMszrTJ+\n"
	"QnlmCen5apwVPQdzfgzrHemFaJJ48KGYiTv/DXl7g59Crfrr+mwTFGBgJtrk8XY9\n"
	"oz+I76c0wNRPPN94TxPwbVmdG7o+tHVMbsPRDAG3CDlvU6ihYKNpe1HfHL6uH1ws\n"
	"ePAn/B+0Wdi+iJws6SCJOnIBSjA4y62EdF6nHUYge515LGQWowN3NEDRz7o0K3V0\n"
	"WApGptCJmz+sJix57JcCE7J3EJWjf0QE7jI=\n"
	"-----END CERTIFICATE REQUEST-----\n";

static const char CSR_RSA_1024[] =
	"-----BEGIN CERTIFICATE REQUEST-----\n"
	"MIIBTzCBuQIBADAQMQ4wDAYDVQQDDAVzbWFsbDCBnzANBgkqhkiG9w0BAQEFAAOB\n"
	"jQAwgYkCgYEAsINKQgbie5ConZVTz1bET7RZAbygGc/nIQQ49N99dLZLIvAW1yDI\n"
	"QWmXv/XZUe+gAtZ6Gx58cZGzx/88tL+ZWA4zEB1TSYBdavJwlTki2zAW2p09rDqX\n"
	"BnZMnaIPwGMRGb8+fHkjhOd3lO0jZj0HvrV1EphnhQO6nQQ4k/YjXX8CAwEAAaAA\n"
	"MA0GCSqGSIb3DQEBCwUAA4GBAGEzG+xw0He1/qluN7tZCMlxnBtDmXgz1NVHNg78\n"
	"daP+Op66OF5QNZRyvV4foxfmPzc6bnQ2gcUtBBjAFYyxSEKe6PMH5znDi1FPj0AL\n"
	"bZZwKKfMWu/3MJHZf141BhynCYu/KEoulnzCVh8EP/Rx1DponFHrA77bXl4yBfBr\n"
	"Hqz6\n"
	"-----END CERTIFICATE REQUEST-----\n";

static char tmpdir[] = "/tmp/test_pki.XXXXXX";

/* TMPDIR/NAME in a static buffer (one of four, so a few can coexist). */
static const char *path_of(const char *name)
{
	static char bufs[4][512];
	static int next;
	char *p = bufs[next++ % 4];

	snprintf(p, sizeof(bufs[0]), "%s/%s", tmpdir, name);
	return p;
}

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (f == NULL)
		return -1;
	ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int file_mode(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return -1;
	return (int)(st.st_mode & 07777);
}

/* Number of directory entries (without . and ..) in TMPDIR. */
static int count_entries(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlink(path_of(e->d_name));
	closedir(d);
	rmdir(tmpdir);
}

/*
 * Runs CMD with the shell in TMPDIR and returns its exit status (or -1).
 * Shows the command's output when it fails though SHOULD_PASS says not.
 */
static int run(const char *cmd, int should_pass)
{
	char full[2048];
	int st;

	snprintf(full, sizeof(full), "cd '%s' && %s >cmd.out 2>&1", tmpdir,
		 cmd);
	st = system(full);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	if (WEXITSTATUS(st) != 0 && should_pass) {
		char show[2048];

		snprintf(show, sizeof(show), "cat '%s/cmd.out' >&2", tmpdir);
		fprintf(stderr, "command failed: %s\n", cmd);
		if (system(show) == -1)
			fprintf(stderr, "(cannot show its output)\n");
	}
	return WEXITSTATUS(st);
}

static int is_fingerprint(const char *fp)
{
	size_t i;

	if (strncmp(fp, "sha256:", 7) != 0 || strlen(fp) != 7 + 64)
		return 0;
	for (i = 7; i < 7 + 64; i++)
		if (!((fp[i] >= '0' && fp[i] <= '9') ||
		      (fp[i] >= 'a' && fp[i] <= 'f')))
			return 0;
	return 1;
}

static void test_err(void)
{
	int codes[PKI_ENOMEM - PKI_ERR_LAST + 2], n = 0, i, j;

	/* PKI_OK, then the codes from PKI_ENOMEM down to PKI_ERR_LAST. */
	codes[n++] = PKI_OK;
	for (i = PKI_ENOMEM; i >= PKI_ERR_LAST; i--)
		codes[n++] = i;
	for (i = 0; i < n; i++) {
		const char *s = pki_strerror(codes[i]);
		CHECK(s != NULL && strlen(s) > 0);
		for (j = 0; j < i; j++)
			CHECK(strcmp(s, pki_strerror(codes[j])) != 0);
	}
	CHECK(strcmp(pki_strerror(PKI_ESIG), pki_strerror(-1000)) != 0);
	CHECK(pki_strerror(42) != NULL);
}

static void test_rand(void)
{
	uint8_t a[64], b[64], zero[64];
	uint64_t u, v;
	int i, differ = 0;

	memset(zero, 0, sizeof(zero));
	CHECK_RC(pki_rand_bytes(a, 0), 0);
	CHECK_RC(pki_rand_bytes(a, sizeof(a)), 0);
	CHECK_RC(pki_rand_bytes(b, sizeof(b)), 0);
	CHECK(memcmp(a, zero, sizeof(a)) != 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	for (i = 0; i < 16; i++) {
		CHECK_RC(pki_rand_u53(&u), 0);
		CHECK_RC(pki_rand_u53(&v), 0);
		CHECK(u < (UINT64_C(1) << 53) && v < (UINT64_C(1) << 53));
		differ += u != v;
	}
	CHECK(differ > 0);

	CHECK(pki_memcmp_ct(a, a, sizeof(a)) == 0);
	memcpy(b, a, sizeof(a));
	CHECK(pki_memcmp_ct(a, b, sizeof(a)) == 0);
	b[63] ^= 1;
	CHECK(pki_memcmp_ct(a, b, sizeof(a)) != 0);
	b[63] ^= 1;
	b[0] ^= 0x80;
	CHECK(pki_memcmp_ct(a, b, sizeof(a)) != 0);
	CHECK(pki_memcmp_ct(a, b, 0) == 0);

	pki_wipe(a, sizeof(a));
	CHECK(memcmp(a, zero, sizeof(a)) == 0);
	pki_wipe(NULL, 0);
}

/* Keys shared by the tests below: made once, because RSA is slow. */
static struct pki_key *root_key, *node_key, *other_key;

static void test_key(void)
{
	struct pki_key *k = NULL;
	char fp1[PKI_FP_LEN], fp2[PKI_FP_LEN], buf[64];
	uint8_t *sig = NULL, *sig2 = NULL;
	size_t siglen = 0, siglen2 = 0;
	char *big;
	FILE *f;
	int n;

	CHECK_RC(pki_key_generate(1024, &k), PKI_EINVAL);
	CHECK(k == NULL);
	CHECK_RC(pki_key_generate(PKI_KEY_BITS_MAX + 1, &k), PKI_EINVAL);
	CHECK_RC(pki_key_generate(2048, &root_key), 0);
	CHECK_RC(pki_key_generate(PKI_KEY_BITS_DEFAULT, &node_key), 0);
	if (root_key == NULL || node_key == NULL) {
		fprintf(stderr, "cannot go on without keys\n");
		exit(1);
	}
	CHECK(pki_key_bits(root_key) == 2048);
	CHECK(pki_key_bits(NULL) == 0);

	CHECK_RC(pki_key_pub_fingerprint(root_key, fp1), 0);
	CHECK(is_fingerprint(fp1));
	CHECK_RC(pki_key_pub_fingerprint(node_key, fp2), 0);
	CHECK(strcmp(fp1, fp2) != 0);

	/* Saved PKCS#8, 0600, atomically (no temporary left behind). */
	n = count_entries();
	CHECK_RC(pki_key_save(root_key, path_of("root.key")), 0);
	CHECK(file_mode(path_of("root.key")) == 0600);
	CHECK(count_entries() == n + 1);
	f = fopen(path_of("root.key"), "r");
	CHECK(f != NULL);
	if (f != NULL) {
		CHECK(fgets(buf, sizeof(buf), f) != NULL);
		CHECK(strcmp(buf, "-----BEGIN PRIVATE KEY-----\n") == 0);
		fclose(f);
	}
	/* Saving again replaces the file. */
	CHECK_RC(pki_key_save(root_key, path_of("root.key")), 0);
	CHECK(count_entries() == n + 1);
	CHECK_RC(pki_key_load(path_of("root.key"), &k), 0);
	CHECK_RC(pki_key_pub_fingerprint(k, fp2), 0);
	CHECK(strcmp(fp1, fp2) == 0);
	CHECK(pki_key_bits(k) == 2048);
	/*
	 * Derived secrets: the same for the same key and label (also once
	 * remembered, and for the key loaded again), different per label
	 * and per key; more labels than are remembered still derive right.
	 */
	{
		uint8_t d1[PKI_KEY_DERIVED], d2[PKI_KEY_DERIVED];
		uint8_t d3[PKI_KEY_DERIVED], d4[PKI_KEY_DERIVED];
		char label[32];
		CHECK_RC(pki_key_derive(root_key, "label a", d1), 0);
		CHECK_RC(pki_key_derive(root_key, "label a", d2), 0);
		CHECK(memcmp(d1, d2, sizeof(d1)) == 0);
		CHECK_RC(pki_key_derive(k, "label a", d3), 0);
		CHECK(memcmp(d1, d3, sizeof(d1)) == 0);
		CHECK_RC(pki_key_derive(root_key, "label b", d3), 0);
		CHECK(memcmp(d1, d3, sizeof(d1)) != 0);
		CHECK_RC(pki_key_derive(node_key, "label a", d4), 0);
		CHECK(memcmp(d1, d4, sizeof(d1)) != 0);
		for (int i = 0; i < 8; i++) {
			snprintf(label, sizeof(label), "label %d", i);
			CHECK_RC(pki_key_derive(root_key, label, d2), 0);
			CHECK_RC(pki_key_derive(k, label, d4), 0);
			CHECK(memcmp(d2, d4, sizeof(d2)) == 0);
		}
		CHECK_RC(pki_key_derive(root_key, "label b", d4), 0);
		CHECK(memcmp(d3, d4, sizeof(d3)) == 0);
		CHECK_RC(pki_key_derive(NULL, "label a", d4), PKI_EINVAL);
		CHECK_RC(pki_key_derive(root_key, NULL, d4), PKI_EINVAL);
	}
	pki_key_free(k);
	k = NULL;
	CHECK_RC(pki_key_save(node_key, path_of("node.key")), 0);
	CHECK_RC(pki_key_save(root_key, path_of("no/such/dir/x.key")), PKI_EIO);

	/* The traditional "BEGIN RSA PRIVATE KEY" form loads too. */
	CHECK(write_file(path_of("trad.key"), TRAD_RSA_2048,
			 strlen(TRAD_RSA_2048)) == 0);
	CHECK_RC(pki_key_load(path_of("trad.key"), &other_key), 0);
	CHECK(other_key != NULL && pki_key_bits(other_key) == 2048);
	if (other_key == NULL)
		exit(1);

	/* Small, non-RSA, encrypted, garbage, missing, oversized: refused. */
	CHECK(write_file(path_of("small.key"), TRAD_RSA_1024,
			 strlen(TRAD_RSA_1024)) == 0);
	CHECK_RC(pki_key_load(path_of("small.key"), &k), PKI_EKEY);
	CHECK(k == NULL);
	CHECK(write_file(path_of("ec.key"), EC_P256, strlen(EC_P256)) == 0);
	CHECK_RC(pki_key_load(path_of("ec.key"), &k), PKI_EKEY);
	CHECK(write_file(path_of("enc.key"), ENCRYPTED_RSA,
			 strlen(ENCRYPTED_RSA)) == 0);
	CHECK_RC(pki_key_load(path_of("enc.key"), &k), PKI_EPARSE);
	CHECK(write_file(path_of("junk.key"), "hello\n", 6) == 0);
	CHECK_RC(pki_key_load(path_of("junk.key"), &k), PKI_EPARSE);
	CHECK(write_file(path_of("empty.key"), "", 0) == 0);
	CHECK_RC(pki_key_load(path_of("empty.key"), &k), PKI_EPARSE);
	CHECK_RC(pki_key_load(path_of("missing.key"), &k), PKI_EIO);
	big = malloc(PKI_PEM_MAX + 1);
	CHECK(big != NULL);
	if (big != NULL) {
		memset(big, 'A', PKI_PEM_MAX + 1);
		memcpy(big, TRAD_RSA_2048, strlen(TRAD_RSA_2048));
		CHECK(write_file(path_of("big.key"), big, PKI_PEM_MAX + 1) ==
		      0);
		CHECK_RC(pki_key_load(path_of("big.key"), &k), PKI_ETOOBIG);
		free(big);
	}
	CHECK(k == NULL);

	/* Signatures: RSA-PSS is randomised, so two differ. */
	CHECK_RC(pki_key_sign(node_key, "hello", 5, &sig, &siglen), 0);
	CHECK(sig != NULL && siglen == 256);
	CHECK_RC(pki_key_sign(node_key, "hello", 5, &sig2, &siglen2), 0);
	CHECK(sig2 != NULL && siglen2 == siglen);
	CHECK(sig != NULL && sig2 != NULL && memcmp(sig, sig2, 256) != 0);
	free(sig2);
	free(sig);
	CHECK_RC(pki_key_sign(node_key, NULL, 0, &sig, &siglen), 0);
	free(sig);
	CHECK_RC(pki_key_sign(NULL, "x", 1, &sig, &siglen), PKI_EINVAL);
	CHECK_RC(pki_key_sign(node_key, NULL, 1, &sig, &siglen), PKI_EINVAL);
	pki_key_free(NULL);
}

/*
 * Flips one base64 character well inside the signature, the last thing
 * in a CSR's DER: the PEM still parses, but the signature cannot verify.
 */
static void tamper_signature(char *pem)
{
	char *end = strstr(pem, "-----END");
	int skip = 20;

	if (end == NULL)
		return;
	while (end > pem && skip > 0) {
		end--;
		if (*end != '\n' && *end != '=')
			skip--;
	}
	*end = *end == 'A' ? 'B' : 'A';
}

static void test_csr(void)
{
	static const char *const bad_names[] = {
		"",    ".hidden",    "a,b",    "root",
		"crl", "with space", "sl/ash", "caf\xc3\xa9",
	};
	struct pki_csr *csr = NULL, *csr2 = NULL;
	char name[NAMES_NODE_MAX + 1], fp1[PKI_FP_LEN], fp2[PKI_FP_LEN];
	char longname[NAMES_NODE_MAX + 2];
	char *pem = NULL, *big;
	uint8_t *sig = NULL;
	size_t len = 0, siglen = 0, i;

	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		CHECK_RC(pki_csr_new(node_key, bad_names[i], &csr), PKI_ENAME);
		CHECK(csr == NULL);
	}
	/* 64 characters is the longest name; 65 is one too many. */
	memset(name, 'n', NAMES_NODE_MAX);
	name[NAMES_NODE_MAX] = '\0';
	CHECK_RC(pki_csr_new(node_key, name, &csr), 0);
	pki_csr_free(csr);
	csr = NULL;
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK_RC(pki_csr_new(node_key, longname, &csr), PKI_ENAME);
	CHECK(csr == NULL);
	CHECK_RC(pki_csr_new(NULL, "bob", &csr), PKI_EINVAL);
	CHECK_RC(pki_csr_new(node_key, NULL, &csr), PKI_EINVAL);

	CHECK_RC(pki_csr_new(node_key, "bob", &csr), 0);
	CHECK_RC(pki_csr_verify(csr), 0);
	CHECK_RC(pki_csr_get_name(csr, name, sizeof(name)), 0);
	CHECK(strcmp(name, "bob") == 0);
	CHECK_RC(pki_csr_get_name(csr, name, 3), PKI_EINVAL);
	CHECK_RC(pki_csr_pub_fingerprint(csr, fp1), 0);
	CHECK_RC(pki_key_pub_fingerprint(node_key, fp2), 0);
	CHECK(strcmp(fp1, fp2) == 0);

	/* The get/csr message is signed with the key the CSR carries. */
	CHECK_RC(pki_key_sign(node_key, "get/csr", 7, &sig, &siglen), 0);
	CHECK_RC(pki_csr_verify_data(csr, "get/csr", 7, sig, siglen), 0);
	CHECK_RC(pki_csr_verify_data(csr, "get/crt", 7, sig, siglen), PKI_ESIG);
	free(sig);
	CHECK_RC(pki_key_sign(other_key, "get/csr", 7, &sig, &siglen), 0);
	CHECK_RC(pki_csr_verify_data(csr, "get/csr", 7, sig, siglen), PKI_ESIG);
	free(sig);

	/* PEM round trip. */
	CHECK_RC(pki_csr_to_pem(csr, &pem, &len), 0);
	CHECK(pem != NULL && strlen(pem) == len);
	CHECK(pem != NULL &&
	      strncmp(pem, "-----BEGIN CERTIFICATE REQUEST-----\n", 36) == 0);
	if (pem != NULL) {
		CHECK(write_file(path_of("bob.csr"), pem, len) == 0);
		CHECK_RC(pki_csr_parse(pem, len, &csr2), 0);
		CHECK_RC(pki_csr_verify(csr2), 0);
		CHECK_RC(pki_csr_pub_fingerprint(csr2, fp2), 0);
		CHECK(strcmp(fp1, fp2) == 0);
		pki_csr_free(csr2);
		csr2 = NULL;

		/* A tampered signature parses but does not verify. */
		tamper_signature(pem);
		CHECK_RC(pki_csr_parse(pem, len, &csr2), 0);
		CHECK_RC(pki_csr_verify(csr2), PKI_ESIG);
		pki_csr_free(csr2);
		csr2 = NULL;
		/* A CSR cut short does not parse. */
		CHECK_RC(pki_csr_parse(pem, len / 2, &csr2), PKI_EPARSE);
		CHECK(csr2 == NULL);
		free(pem);
	}
	/* Hostile CSRs: the signature is fine, the content is not. */
	CHECK_RC(pki_csr_parse(CSR_CN_ROOT, strlen(CSR_CN_ROOT), &csr2), 0);
	CHECK_RC(pki_csr_verify(csr2), 0);
	CHECK_RC(pki_csr_get_name(csr2, name, sizeof(name)), PKI_ENAME);
	pki_csr_free(csr2);
	CHECK_RC(pki_csr_parse(CSR_TWO_CNS, strlen(CSR_TWO_CNS), &csr2), 0);
	CHECK_RC(pki_csr_get_name(csr2, name, sizeof(name)), PKI_ENAME);
	pki_csr_free(csr2);
	CHECK_RC(pki_csr_parse(CSR_NO_CN, strlen(CSR_NO_CN), &csr2), 0);
	CHECK_RC(pki_csr_get_name(csr2, name, sizeof(name)), PKI_ENAME);
	pki_csr_free(csr2);
	CHECK_RC(pki_csr_parse(CSR_RSA_1024, strlen(CSR_RSA_1024), &csr2), 0);
	CHECK_RC(pki_csr_verify(csr2), PKI_EKEY);
	CHECK_RC(pki_csr_get_name(csr2, name, sizeof(name)), 0);
	CHECK(strcmp(name, "small") == 0);
	pki_csr_free(csr2);
	csr2 = NULL;

	CHECK_RC(pki_csr_parse("garbage", 7, &csr2), PKI_EPARSE);
	CHECK_RC(pki_csr_parse(NULL, 0, &csr2), PKI_EINVAL);
	big = malloc(PKI_PEM_MAX + 1);
	if (big != NULL) {
		memset(big, '\n', PKI_PEM_MAX + 1);
		CHECK_RC(pki_csr_parse(big, PKI_PEM_MAX + 1, &csr2),
			 PKI_ETOOBIG);
		free(big);
	}
	CHECK(csr2 == NULL);
	pki_csr_free(csr);
	pki_csr_free(NULL);
}

static int contains(const char *text, const char *needle)
{
	int ok = text != NULL && strstr(text, needle) != NULL;

	if (!ok)
		fprintf(stderr, "missing \"%s\" in:\n%s\n", needle,
			text != NULL ? text : "(null)");
	return ok;
}

/* A root of its own, for the "another CA" tests. */
static struct pki_cert *make_root(struct pki_key *key, const char *name,
				  unsigned days)
{
	struct pki_cert *root = NULL;

	CHECK_RC(pki_ca_make_root(key, name, days, &root), 0);
	return root;
}

static struct pki_cert *issue(struct pki_key *ca_key, struct pki_cert *root,
			      struct pki_key *key, const char *name,
			      const char *addr, unsigned days)
{
	struct pki_cert *cert = NULL;
	struct pki_csr *csr = NULL;

	CHECK_RC(pki_csr_new(key, name, &csr), 0);
	CHECK_RC(pki_csr_verify(csr), 0);
	CHECK_RC(pki_ca_issue(ca_key, root, csr, name, addr, days, &cert), 0);
	pki_csr_free(csr);
	return cert;
}

static void test_root(struct pki_cert *root)
{
	char name[NAMES_NODE_MAX + 1], addr[64], serial[64];
	char fp1[PKI_FP_LEN], fp2[PKI_FP_LEN];
	struct pki_cert *c = NULL;
	time_t now = time(NULL);
	char *text = NULL;

	CHECK_RC(pki_ca_make_root(root_key, "root", 30, &c), PKI_ENAME);
	CHECK_RC(pki_ca_make_root(root_key, "a,b", 30, &c), PKI_ENAME);
	CHECK_RC(pki_ca_make_root(root_key, "ca", 0, &c), PKI_EINVAL);
	CHECK_RC(pki_ca_make_root(NULL, "ca", 30, &c), PKI_EINVAL);
	CHECK(c == NULL);

	CHECK_RC(pki_ca_check_root(root), 0);
	CHECK_RC(pki_cert_get_name(root, name, sizeof(name)), 0);
	CHECK(strcmp(name, "ca") == 0);
	CHECK_RC(pki_cert_get_address(root, addr, sizeof(addr)), PKI_EPARSE);
	CHECK_RC(pki_cert_get_serial(root, serial, sizeof(serial)), 0);
	CHECK(strlen(serial) > 0 && strlen(serial) <= 40);
	CHECK(strlen(serial) < 40 || serial[0] <= '7');
	CHECK_RC(pki_cert_matches_key(root, root_key), 0);
	CHECK_RC(pki_cert_matches_key(root, node_key), PKI_EKEY);
	CHECK_RC(pki_cert_pub_fingerprint(root, fp1), 0);
	CHECK_RC(pki_key_pub_fingerprint(root_key, fp2), 0);
	CHECK(strcmp(fp1, fp2) == 0);
	CHECK(pki_cert_not_before(root) <= now - 290);
	CHECK(pki_cert_not_before(root) >= now - 310);
	CHECK(pki_cert_not_after(root) >=
	      now + (time_t)PKI_ROOT_DAYS_DEFAULT * 86400 - 10);
	CHECK(pki_cert_not_after(root) <=
	      now + (time_t)PKI_ROOT_DAYS_DEFAULT * 86400 + 10);

	CHECK_RC(pki_cert_summary(root, now, &text), 0);
	CHECK(contains(text, "Subject:      CN=ca, O=snoopfs\n"));
	CHECK(contains(text, "Issuer:       CN=ca, O=snoopfs\n"));
	CHECK(contains(text, "Key:          RSA 2048 bits\n"));
	CHECK(contains(text, "CA:           yes\n"));
	CHECK(contains(text, "SHA-256:      sha256:"));
	CHECK(text == NULL || strstr(text, "Address:") == NULL);
	free(text);

	CHECK_RC(pki_cert_save(root, path_of("root.pem")), 0);
	CHECK(file_mode(path_of("root.pem")) == 0644);
}

static void test_node(struct pki_cert *root, struct pki_cert *node)
{
	char name[NAMES_NODE_MAX + 1], addr[64], serial[64], serial2[64];
	char fp1[PKI_FP_LEN], fp2[PKI_FP_LEN], line[128];
	struct pki_cert *c = NULL, *dup;
	struct pki_csr *csr = NULL;
	time_t now = time(NULL), nb, na;
	char *text = NULL, *pem = NULL, *big;
	uint8_t *sig = NULL;
	size_t len = 0, siglen = 0;
	struct tm tm;

	CHECK_RC(pki_cert_get_name(node, name, sizeof(name)), 0);
	CHECK(strcmp(name, "bob") == 0);
	CHECK_RC(pki_cert_get_name(node, name, 2), PKI_EINVAL);
	CHECK_RC(pki_cert_get_address(node, addr, sizeof(addr)), 0);
	CHECK(strcmp(addr, "127.0.0.1:7001") == 0);
	CHECK_RC(pki_cert_get_address(node, addr, 5), PKI_EINVAL);
	CHECK_RC(pki_cert_get_serial(node, serial, sizeof(serial)), 0);
	CHECK_RC(pki_cert_get_serial(root, serial2, sizeof(serial2)), 0);
	CHECK(strcmp(serial, serial2) != 0);
	CHECK(strspn(serial, "0123456789ABCDEF") == strlen(serial));
	CHECK_RC(pki_cert_get_serial(node, serial2, 4), PKI_EINVAL);
	CHECK_RC(pki_cert_fingerprint(node, fp1), 0);
	CHECK(is_fingerprint(fp1));
	CHECK_RC(pki_cert_fingerprint(root, fp2), 0);
	CHECK(strcmp(fp1, fp2) != 0);
	CHECK_RC(pki_cert_pub_fingerprint(node, fp1), 0);
	CHECK_RC(pki_key_pub_fingerprint(node_key, fp2), 0);
	CHECK(strcmp(fp1, fp2) == 0);
	CHECK_RC(pki_cert_matches_key(node, node_key), 0);
	CHECK_RC(pki_cert_matches_key(node, other_key), PKI_EKEY);
	CHECK_RC(pki_cert_matches_key(node, root_key), PKI_EKEY);
	nb = pki_cert_not_before(node);
	na = pki_cert_not_after(node);
	CHECK(nb >= now - 310 && nb <= now - 290);
	CHECK(na >= now + 7 * 86400 - 10 && na <= now + 7 * 86400 + 10);

	/* Message signatures verify with the certificate's key only. */
	CHECK_RC(pki_key_sign(node_key, "msg", 3, &sig, &siglen), 0);
	CHECK_RC(pki_cert_verify_data(node, "msg", 3, sig, siglen), 0);
	CHECK_RC(pki_cert_verify_data(node, "msG", 3, sig, siglen), PKI_ESIG);
	CHECK_RC(pki_cert_verify_data(root, "msg", 3, sig, siglen), PKI_ESIG);
	CHECK_RC(pki_cert_verify_data(node, "msg", 3, sig, siglen - 1),
		 PKI_ESIG);
	sig[10] ^= 0x01;
	CHECK_RC(pki_cert_verify_data(node, "msg", 3, sig, siglen), PKI_ESIG);
	CHECK_RC(pki_cert_verify_data(node, "msg", 3, NULL, 0), PKI_EINVAL);
	sig[10] ^= 0x01;
	CHECK(write_file(path_of("msg.txt"), "msg", 3) == 0);
	CHECK(write_file(path_of("msg.sig"), sig, siglen) == 0);
	free(sig);

	/* Summary, now and after expiry. */
	CHECK_RC(pki_cert_summary(node, now, &text), 0);
	CHECK(contains(text, "Subject:      CN=bob\n"));
	CHECK(contains(text, "Issuer:       CN=ca, O=snoopfs\n"));
	snprintf(line, sizeof(line), "Serial:       %s\n", serial);
	CHECK(contains(text, line));
	snprintf(line, sizeof(line), "Not before:   ");
	gmtime_r(&nb, &tm);
	strftime(line + 14, sizeof(line) - 14, "%Y-%m-%d %H:%M:%S UTC\n", &tm);
	CHECK(contains(text, line));
	CHECK(contains(text, "Not after:    "));
	/* 7 days from issuance, less the seconds this test has taken. */
	CHECK(text != NULL && (strstr(text, " (7 days 0 hours left)\n") ||
			       strstr(text, " (6 days 23 hours left)\n")));
	CHECK(contains(text, "Key:          RSA 2048 bits\n"));
	CHECK(contains(text, "Address:      snoop://127.0.0.1:7001\n"));
	CHECK(contains(text, "CA:           no\n"));
	free(text);
	CHECK_RC(pki_cert_summary(node, na + 2 * 3600 + 5, &text), 0);
	CHECK(contains(text, "(expired 2 hours 0 minutes ago)\n"));
	free(text);
	CHECK_RC(pki_cert_summary(node, nb - 60, &text), 0);
	CHECK(contains(text, "(not valid for another 1 minute)\n"));
	free(text);

	/* PEM, save, load, dup. */
	CHECK_RC(pki_cert_to_pem(node, &pem, &len), 0);
	CHECK(pem != NULL && strlen(pem) == len &&
	      strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
	CHECK_RC(pki_cert_parse(pem, len, &c), 0);
	CHECK_RC(pki_cert_fingerprint(c, fp1), 0);
	CHECK_RC(pki_cert_fingerprint(node, fp2), 0);
	CHECK(strcmp(fp1, fp2) == 0);
	pki_cert_free(c);
	c = NULL;
	CHECK_RC(pki_cert_parse(pem, len / 2, &c), PKI_EPARSE);
	free(pem);
	CHECK_RC(pki_cert_save(node, path_of("node.pem")), 0);
	CHECK(file_mode(path_of("node.pem")) == 0644);
	CHECK_RC(pki_cert_load(path_of("node.pem"), &c), 0);
	CHECK_RC(pki_cert_fingerprint(c, fp1), 0);
	CHECK(strcmp(fp1, fp2) == 0);
	dup = pki_cert_dup(c);
	CHECK(dup != NULL);
	pki_cert_free(c);
	CHECK_RC(pki_cert_fingerprint(dup, fp1), 0);
	CHECK(strcmp(fp1, fp2) == 0);
	pki_cert_free(dup);
	CHECK(pki_cert_dup(NULL) == NULL);
	pki_cert_free(NULL);

	c = NULL;
	CHECK_RC(pki_cert_load(path_of("missing.pem"), &c), PKI_EIO);
	CHECK_RC(pki_cert_load(path_of("junk.key"), &c), PKI_EPARSE);
	CHECK_RC(pki_cert_parse("", 0, &c), PKI_EPARSE);
	big = malloc(PKI_PEM_MAX + 1);
	if (big != NULL) {
		memset(big, '\n', PKI_PEM_MAX + 1);
		CHECK_RC(pki_cert_parse(big, PKI_PEM_MAX + 1, &c), PKI_ETOOBIG);
		CHECK(write_file(path_of("big.pem"), big, PKI_PEM_MAX + 1) ==
		      0);
		CHECK_RC(pki_cert_load(path_of("big.pem"), &c), PKI_ETOOBIG);
		free(big);
	}
	CHECK(c == NULL);

	/* A node certificate is not a root. */
	CHECK_RC(pki_ca_check_root(node), PKI_EPURPOSE);

	/* pki_ca_issue refuses bad names, addresses, keys and days. */
	CHECK_RC(pki_csr_new(other_key, "carol", &csr), 0);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "root", "h:1", 7, &c),
		 PKI_ENAME);
	CHECK_RC(pki_ca_issue(root_key, root, csr, ".x", "h:1", 7, &c),
		 PKI_ENAME);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "a,b", "h:1", 7, &c),
		 PKI_ENAME);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "carol", "nocolon", 7, &c),
		 PKI_EINVAL);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "carol", "h:0", 7, &c),
		 PKI_EINVAL);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "carol", "h:65536", 7, &c),
		 PKI_EINVAL);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "carol", ":7001", 7, &c),
		 PKI_EINVAL);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "carol",
			      "h:1,DNS:evil.example", 7, &c),
		 PKI_EINVAL);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "carol", "h/x:1", 7, &c),
		 PKI_EINVAL);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "carol", "::1:7001", 7, &c),
		 PKI_EINVAL);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "carol", "h:1", 0, &c),
		 PKI_EINVAL);
	CHECK_RC(pki_ca_issue(other_key, root, csr, "carol", "h:1", 7, &c),
		 PKI_EKEY);
	CHECK(c == NULL);
	pki_csr_free(csr);
	csr = NULL;
	/* A CSR for a key below 2048 bits gets nothing. */
	CHECK_RC(pki_csr_parse(CSR_RSA_1024, strlen(CSR_RSA_1024), &csr), 0);
	CHECK_RC(pki_ca_issue(root_key, root, csr, "small", "h:1", 7, &c),
		 PKI_EKEY);
	CHECK(c == NULL);
	pki_csr_free(csr);
	csr = NULL;
	CHECK_RC(pki_csr_new(other_key, "carol", &csr), 0);
	/* IPv6 in brackets works, and the name comes from the caller. */
	CHECK_RC(pki_ca_issue(root_key, root, csr, "carol-2", "[::1]:7002", 1,
			      &c),
		 0);
	CHECK_RC(pki_cert_get_address(c, addr, sizeof(addr)), 0);
	CHECK(strcmp(addr, "[::1]:7002") == 0);
	CHECK_RC(pki_cert_get_name(c, name, sizeof(name)), 0);
	CHECK(strcmp(name, "carol-2") == 0);
	CHECK_RC(pki_verify_node_cert(root, c, 0, NULL), 0);
	pki_cert_free(c);
	pki_csr_free(csr);
}

static void test_verify(struct pki_cert *root, struct pki_cert *node)
{
	struct pki_cert *root2, *root3, *node2, *short_root, *c;
	time_t now = time(NULL);
	const char *why = NULL;

	CHECK_RC(pki_verify_node_cert(root, node, 0, &why), 0);
	CHECK(why == NULL);
	CHECK_RC(pki_verify_node_cert(root, node, now + 86400, NULL), 0);

	/* Expired, and not yet valid. */
	CHECK_RC(pki_verify_node_cert(root, node, now + 8 * 86400, &why),
		 PKI_EEXPIRED);
	CHECK(why != NULL && strlen(why) > 0);
	CHECK_RC(pki_verify_node_cert(root, node, now - 3600, &why),
		 PKI_EEXPIRED);

	/* The root itself (a CA) is no node certificate. */
	why = NULL;
	CHECK_RC(pki_verify_node_cert(root, root, 0, &why), PKI_EPURPOSE);
	CHECK(why != NULL);

	/*
	 * Another CA: one with a different name, and one with the very same
	 * name (only the key differs), must both be refused.
	 */
	root2 = make_root(other_key, "other-ca", 30);
	root3 = make_root(other_key, "ca", 30);
	why = NULL;
	CHECK_RC(pki_verify_node_cert(root2, node, 0, &why), PKI_EVERIFY);
	CHECK(why != NULL);
	CHECK_RC(pki_verify_node_cert(root3, node, 0, &why), PKI_EVERIFY);
	CHECK_RC(pki_ca_check_root(root3), 0);
	CHECK_RC(pki_cert_save(root3, path_of("root3.pem")), 0);

	/* A certificate from the other CA is refused by ours. */
	node2 = issue(other_key, root3, node_key, "bob", "127.0.0.1:7001", 7);
	CHECK_RC(pki_verify_node_cert(root3, node2, 0, NULL), 0);
	CHECK_RC(pki_verify_node_cert(root, node2, 0, NULL), PKI_EVERIFY);
	pki_cert_free(node2);

	/* A node certificate never outlives its root. */
	short_root = make_root(root_key, "ca", 1);
	c = issue(root_key, short_root, node_key, "dave", "h:9", 30);
	CHECK(c != NULL &&
	      pki_cert_not_after(c) == pki_cert_not_after(short_root));
	CHECK_RC(pki_verify_node_cert(short_root, c, 0, NULL), 0);
	pki_cert_free(c);
	pki_cert_free(short_root);

	CHECK_RC(pki_verify_node_cert(NULL, node, 0, NULL), PKI_EINVAL);
	pki_cert_free(root2);
	pki_cert_free(root3);
}

/*
 * The point of the profile: OpenSSL's and GnuTLS's own tools accept the
 * chain, read the CSR and key, and check our RSA-PSS signatures.
 */
static void test_tools(void)
{
	int have_openssl = access("/usr/bin/openssl", X_OK) == 0;
	int have_certtool = access("/usr/bin/certtool", X_OK) == 0;

	if (have_openssl) {
		CHECK(run("openssl verify -x509_strict -purpose sslclient "
			  "-CAfile root.pem node.pem",
			  1) == 0);
		CHECK(run("openssl verify -x509_strict -purpose sslserver "
			  "-CAfile root.pem node.pem",
			  1) == 0);
		CHECK(run("openssl verify -x509_strict -CAfile root.pem "
			  "root.pem",
			  1) == 0);
		CHECK(run("openssl verify -x509_strict -CAfile root3.pem "
			  "node.pem",
			  0) != 0);
		CHECK(run("openssl x509 -noout -text -in node.pem | grep -q "
			  "'URI:snoop://127.0.0.1:7001'",
			  1) == 0);
		CHECK(run("openssl x509 -noout -text -in node.pem | grep -q "
			  "'TLS Web Client Authentication, TLS Web Server "
			  "Authentication'",
			  1) == 0);
		CHECK(run("openssl x509 -noout -text -in node.pem | grep -q "
			  "'Version: 3 (0x2)'",
			  1) == 0);
		CHECK(run("openssl x509 -noout -text -in root.pem | grep -q "
			  "'CA:TRUE'",
			  1) == 0);
		CHECK(run("openssl req -verify -noout -in bob.csr", 1) == 0);
		CHECK(run("openssl pkey -in root.key -check -noout", 1) == 0);
		CHECK(run("openssl x509 -in node.pem -pubkey -noout >pub.pem "
			  "&& openssl dgst -sha256 -sigopt "
			  "rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest "
			  "-sigopt rsa_mgf1_md:sha256 -verify pub.pem "
			  "-signature msg.sig msg.txt",
			  1) == 0);
	} else {
		fprintf(stderr, "openssl not found: tool checks skipped\n");
	}
	if (have_certtool) {
		CHECK(run("certtool --verify --load-ca-certificate root.pem "
			  "--infile node.pem",
			  1) == 0);
		CHECK(run("certtool --verify --load-ca-certificate root3.pem "
			  "--infile node.pem",
			  0) != 0);
	} else {
		fprintf(stderr, "certtool not found: tool checks skipped\n");
	}
}

int main(void)
{
	struct pki_cert *root = NULL, *node = NULL;

	log_init("test_pki",
		 getenv("TEST_PKI_DEBUG") != NULL ? LOGL_DEBUG : LOGL_WARN);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_err();
	test_rand();
	test_key();
	test_csr();
	root = make_root(root_key, "ca", PKI_ROOT_DAYS_DEFAULT);
	if (root == NULL) {
		fprintf(stderr, "cannot go on without a root\n");
		return 1;
	}
	test_root(root);
	node = issue(root_key, root, node_key, "bob", "127.0.0.1:7001",
		     PKI_NODE_DAYS_DEFAULT);
	if (node == NULL) {
		fprintf(stderr, "cannot go on without a node certificate\n");
		return 1;
	}
	test_node(root, node);
	test_verify(root, node);
	test_tools();

	pki_cert_free(node);
	pki_cert_free(root);
	pki_key_free(root_key);
	pki_key_free(node_key);
	pki_key_free(other_key);
	if (getenv("TEST_PKI_KEEP") != NULL)
		fprintf(stderr, "kept %s\n", tmpdir);
	else
		remove_tmpdir();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
