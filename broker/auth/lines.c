/* The text of an access file (passwords, pre-shared keys, ACL) line by
 * line: what the three parsers share. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "xmalloc.h"

void
auth_text_error(struct auth_text *t, const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	t->nerr += conf_error(t->errs, "%s:%zu: %s", t->name, t->line, msg);
}

bool
auth_blank(char c)
{
	return c == ' ' || c == '\t';
}

char *
auth_trim(char *s)
{
	size_t n;

	while (auth_blank(*s))
		s++;
	n = strlen(s);
	while (n > 0 && (auth_blank(s[n - 1]) || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

void
auth_each_line(const char *buf, size_t len, size_t max, auth_line_fn *fn, void *arg)
{
	size_t off = 0, n, lineno = 0;
	const char *nl;
	char *line, *text, why[64];

	while (off < len) {
		lineno++;
		nl = memchr(buf + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
		if (n > max) {
			snprintf(why, sizeof(why), "line too long (more than %zu bytes)", max);
			fn(arg, lineno, NULL, why);
		} else if (memchr(buf + off, '\0', n) != NULL) {
			fn(arg, lineno, NULL, "NUL byte in line");
		} else {
			line = xmalloc(n + 1);
			memcpy(line, buf + off, n);
			line[n] = '\0';
			text = auth_trim(line);
			if (text[0] != '\0' && text[0] != '#')
				fn(arg, lineno, text, NULL);
			OPENSSL_cleanse(line, n);	/* a key, or a hash */
			free(line);
		}
		off += n + 1;
	}
}
