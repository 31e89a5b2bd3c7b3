/*
 * emit.c — the JSON and Prometheus text pieces of emit.h.  Numbers take
 * the shortest of %.15g, %.16g and %.17g that strtod reads back
 * exactly, so a value served is the value the daemon sent, and most
 * print short.
 */
#include <math.h>
#include <stdlib.h>

#include "emit.h"

static void num_shortest(FILE *f, double v)
{
	char buf[40];

	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (prec == 17 || strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, f);
}

void emit_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void emit_json_num(FILE *f, double v)
{
	if (!isfinite(v))
		fputs("null", f);
	else
		num_shortest(f, v);
}

void emit_prom_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

void emit_prom_name(FILE *f, const char *prefix, const char *s)
{
	fputs(prefix, f);
	for (; *s; s++) {
		char c = *s;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		fputc(ok ? c : '_', f);
	}
}

void emit_prom_num(FILE *f, double v)
{
	if (isnan(v))
		fputs("NaN", f);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", f);
	else
		num_shortest(f, v);
}
