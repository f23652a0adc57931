/*
 * smc_json.c: commas, escapes and numbers for the --json output of smc.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "smc/smc_fixed.h"
#include "smc/smc_json.h"

void smc_json_begin(struct smc_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	fputc('{', f);
	j->shut[0] = '}';
	j->depth = 1;
}

void smc_json_end(struct smc_json *j)
{
	while (j->depth > 0)
		smc_json_close(j);
	fputc('\n', j->f);
}

static void put_string(FILE *f, const char *s);

/* The comma before an item, and its key. */
static void item(struct smc_json *j, const char *key)
{
	if (j->more[j->depth - 1])
		fputc(',', j->f);
	j->more[j->depth - 1] = true;
	if (key) {
		put_string(j->f, key);
		fputc(':', j->f);
	}
}

static void open_item(struct smc_json *j, const char *key, char c, char shut)
{
	if (j->depth >= SMC_JSON_DEPTH)
		return;
	item(j, key);
	fputc(c, j->f);
	j->shut[j->depth] = shut;
	j->more[j->depth++] = false;
}

void smc_json_object(struct smc_json *j, const char *key)
{
	open_item(j, key, '{', '}');
}

void smc_json_array(struct smc_json *j, const char *key)
{
	open_item(j, key, '[', ']');
}

void smc_json_close(struct smc_json *j)
{
	if (j->depth > 0)
		fputc(j->shut[--j->depth], j->f);
}

/* Length of the valid UTF-8 sequence at S, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned min;
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2, min = 0x80;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, min = 0x800;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, min = 0x10000;
	else
		return 0;
	unsigned cp = c & (0x7F >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p++);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p++);
		} else {
			size_t n = utf8_len(p);
			if (n == 0) {
				fputs("\xEF\xBF\xBD", f);
				p++;
			} else {
				fwrite(p, 1, n, f);
				p += n;
			}
		}
	}
	fputc('"', f);
}

void smc_json_str(struct smc_json *j, const char *key, const char *s)
{
	item(j, key);
	put_string(j->f, s);
}

void smc_json_int(struct smc_json *j, const char *key, smc_i128 v)
{
	char buf[SMC_RESIDUE_TEXT];
	item(j, key);
	if (v < 0)
		fputc('-', j->f);
	fputs(smc_u128_format(v < 0 ? (smc_u128)0 - (smc_u128)v : (smc_u128)v,
			      buf),
	      j->f);
}

void smc_json_fixed(struct smc_json *j, const char *key, smc_i128 v)
{
	char buf[SMC_FIXED_TEXT];
	item(j, key);
	fputs(smc_fixed_format(v, 1, buf), j->f);
}

void smc_json_real(struct smc_json *j, const char *key, double v, bool ok)
{
	item(j, key);
	if (!ok || !isfinite(v)) {
		fputs("null", j->f);
		return;
	}
	/* The shortest of 15 to 17 significant digits that reads back as
	 * the same double: 0.5 rather than 0.50000000000000000. */
	char buf[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v == 0 ? 0.0 : v);
		if (strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, j->f);
}
