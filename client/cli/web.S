/* web.S — client/web's page and script as read-only data (web.h). */
	.section .rodata
	.global web_index_html
	.type web_index_html, @object
web_index_html:
	.incbin "client/web/index.html"
1:
	.byte 0
	.size web_index_html, . - web_index_html

	.global web_dash_js
	.type web_dash_js, @object
web_dash_js:
	.incbin "client/web/dash.js"
2:
	.byte 0
	.size web_dash_js, . - web_dash_js

	.balign 4
	.global web_index_html_len
	.type web_index_html_len, @object
web_index_html_len:
	.long 1b - web_index_html
	.size web_index_html_len, 4
	.global web_dash_js_len
	.type web_dash_js_len, @object
web_dash_js_len:
	.long 2b - web_dash_js
	.size web_dash_js_len, 4

	.section .note.GNU-stack,"",@progbits
