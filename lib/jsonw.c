/* jsonw.c: see jsonw.h. */
#include "lib/jsonw.h"

#include <stddef.h>
#include <stdint.h>

/*
 * The length of the UTF-8 sequence at S (1 to 4), or 0 if it is not one:
 * no overlong forms, no surrogates, nothing above U+10FFFF.
 */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1fu;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0fu;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07u;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

void jsonw_string(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	const unsigned char *p = (const unsigned char *)s;
	fputc('"', f);
	while (*p) {
		unsigned char c = *p;
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
			p++;
		} else if (c == '\n') {
			fputs("\\n", f);
			p++;
		} else if (c == '\t') {
			fputs("\\t", f);
			p++;
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
			p++;
		} else {
			size_t n = utf8_len(p);
			if (n == 0) {
				fputs("\\ufffd", f);
				n = 1;
			} else {
				fwrite(p, 1, n, f);
			}
			p += n;
		}
	}
	fputc('"', f);
}

void jsonw_format_time(time_t t, char out[JSONW_TIME_MAX])
{
	struct tm tm;
	out[0] = '\0';
	if (t == (time_t)-1 || !gmtime_r(&t, &tm) ||
	    strftime(out, JSONW_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
}

void jsonw_time(FILE *f, time_t t)
{
	char text[JSONW_TIME_MAX];
	jsonw_format_time(t, text);
	if (text[0])
		fprintf(f, "\"%s\"", text);
	else
		fputs("null", f);
}
