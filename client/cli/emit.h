/*
 * emit.h — values written into the texts `grokwatch serve` sends: JSON
 * strings and numbers, and the Prometheus text format's label values,
 * metric names and sample values.  Each writes to a FILE (an
 * open_memstream buffer, as serve builds every reply), whose error state
 * keeps a failed write; none allocates or keeps state.  Any thread.
 */
#ifndef GW_CLI_EMIT_H
#define GW_CLI_EMIT_H

#include <stdio.h>

/* s as a JSON string, quoted: '"', '\\' and control characters escaped
 * (the bytes are otherwise copied: the texts come from the daemons'
 * JSON, which is UTF-8). */
void emit_json_str(FILE *f, const char *s);

/* v as the shortest JSON number that reads back as the same double
 * (%.15g, else %.16g, else %.17g); null where not finite. */
void emit_json_num(FILE *f, double v);

/* s as a Prometheus label value between the quotes: '\\', '"' and
 * newline escaped as the text format asks. */
void emit_prom_label(FILE *f, const char *s);

/* prefix and s as a Prometheus metric name: every byte that is not
 * [A-Za-z0-9_] becomes '_' (a leading digit is made safe by the
 * prefix, which must start with a letter). */
void emit_prom_name(FILE *f, const char *prefix, const char *s);

/* v as a Prometheus sample value: shortest round trip, or NaN, +Inf,
 * -Inf. */
void emit_prom_num(FILE *f, double v);

#endif
