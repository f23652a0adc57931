/*
 * say.c: see say.h.
 */
#include "wire/say.h"

#include <stdarg.h>
#include <stdio.h>

void proto_say(char *err, const char *fmt, ...)
{
	if (!err)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, PROTO_ERR_MAX, fmt, ap);
	va_end(ap);
}
