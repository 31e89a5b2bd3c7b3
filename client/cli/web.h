/*
 * web.h — the dashboard's files, built into the grokwatch binary from
 * client/web/ (web.S, by the assembler's .incbin): the page and its
 * script are then always the ones this binary's API was built with, and
 * nothing is looked up on disk at run time.  Each is NUL-terminated; the
 * length does not count the NUL.
 */
#ifndef GW_CLI_WEB_H
#define GW_CLI_WEB_H

extern const char web_index_html[];
extern const unsigned int web_index_html_len;
extern const char web_dash_js[];
extern const unsigned int web_dash_js_len;

#endif
