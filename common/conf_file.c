/* Configuration files: reading them, and the files they include
 * (include_dir, as in mosquitto.conf). */
#include "conf.h"

#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_int.h"
#include "log.h"
#include "xmalloc.h"

#define CONF_FILE_MAX	(16 << 20)	/* a configuration file is small */
#define CONF_INCLUDE_MAX 1000		/* files in an include_dir */

/* Reads a whole file; regular: it must be a regular file (an included
 * one: a FIFO put in include_dir does not hang a reload).  Returns 0, or
 * -1 with an error added. */
static int
read_file(const char *path, bool regular, char **bufp, size_t *lenp, struct conf_errors *errs)
{
	size_t len = 0, cap = 4096;
	struct stat st;
	char *buf;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | (regular ? O_NONBLOCK : 0))) == -1) {
		conf_error(errs, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (regular) {
		const char *why = fstat(fd, &st) == -1 ? strerror(errno) :
		    !S_ISREG(st.st_mode) ? "not a regular file" : NULL;

		if (why != NULL) {
			conf_error(errs, "%s: %s", path, why);
			if (close(fd) == -1)
				log_warn("close %s", path);
			return -1;
		}
	}
	buf = xmalloc(cap);
	for (;;) {
		if (len == cap)
			buf = xrealloc(buf, cap *= 2);
		if ((r = read(fd, buf + len, cap - len)) == -1 && errno == EINTR)
			continue;
		if (r <= 0 || (len += (size_t)r) > CONF_FILE_MAX)
			break;
	}
	if (r == -1)
		conf_error(errs, "%s: cannot read: %s", path, strerror(errno));
	else if (r > 0)
		conf_error(errs, "%s: too large (more than %d bytes)", path,
		    CONF_FILE_MAX);
	if (close(fd) == -1)
		log_warn("close %s", path);
	if (r != 0) {
		free(buf);
		return -1;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

int
conf_parse_syntax_file(const struct conf_syntax *syn, void *obj, const char *path,
    char **given, struct conf_errors *errs)
{
	struct parser p;
	char *buf;
	size_t len;

	if (read_file(path, false, &buf, &len, errs) == -1) {
		conf_error_file(errs, path);
		return 1;
	}
	conf_parser_init(&p, syn, obj, path, given, errs);
	p.files = true;
	conf_parse_text(&p, buf, len);
	free(buf);
	return conf_parser_done(&p);
}

int
conf_parse_file(const struct conf_key *tab, void *obj, const char *path,
    struct conf_errors *errs)
{
	const struct conf_syntax syn = { .keys = tab };

	return conf_parse_syntax_file(&syn, obj, path, NULL, errs);
}


/* dir as written, or relative to the directory of the including file. */
static char *
include_path(const struct parser *p, const char *dir)
{
	char *copy, *path;

	if (dir[0] == '/')
		return xstrdup(dir);
	copy = xstrdup(p->name);
	xasprintf(&path, "%s/%s", dirname(copy), dir);
	free(copy);
	return path;
}

/* mosquitto's order of included files: letter by letter, regardless of
 * case first, a capital before its small letter. */
static int
name_cmp(const void *a, const void *b)
{
	const unsigned char *x = *(const unsigned char *const *)a;
	const unsigned char *y = *(const unsigned char *const *)b;

	for (; *x != '\0' && *y != '\0'; x++, y++) {
		if (toupper(*x) != toupper(*y))
			return toupper(*x) - toupper(*y);
		if (*x != *y)
			return *x - *y;
	}
	return *x - *y;
}

static bool
conf_name(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".conf") == 0;
}

/* The .conf files of dir, sorted; their number, or -1 with an error. */
static ssize_t
list_files(struct parser *p, const char *dir, char ***names)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	*names = NULL;
	if ((d = opendir(dir)) == NULL) {
		conf_error(p->errs, "%s:%zu: include_dir %s: %s", p->name, p->lineno, dir,
		    strerror(errno));
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL && n <= CONF_INCLUDE_MAX) {
		if (!conf_name(de->d_name))
			continue;
		*names = xreallocarray(*names, n + 1, sizeof(**names));
		xasprintf(&(*names)[n++], "%s/%s", dir, de->d_name);
	}
	if (de == NULL && errno != 0)
		conf_error(p->errs, "%s:%zu: include_dir %s: %s", p->name, p->lineno, dir,
		    strerror(errno));
	else if (n > CONF_INCLUDE_MAX)
		conf_error(p->errs, "%s:%zu: include_dir %s: more than %d .conf files",
		    p->name, p->lineno, dir, CONF_INCLUDE_MAX);
	(void)closedir(d);	/* read only */
	if ((de == NULL && errno != 0) || n > CONF_INCLUDE_MAX) {
		for (size_t i = 0; i < n; i++)
			free((*names)[i]);
		free(*names);
		return -1;
	}
	if (n > 1)
		qsort(*names, n, sizeof(**names), name_cmp);
	return (ssize_t)n;
}

/* One included file: read from its first line outside any block, as
 * mosquitto does; the including file's block goes on after it. */
static void
include_file(struct parser *p, const char *path)
{
	const struct conf_block *cur = p->cur;
	void *cur_obj = p->cur_obj;
	bool *cur_seen = p->cur_seen;
	const char *name = p->name;
	size_t lineno = p->lineno;
	struct stat st;
	char *buf;
	size_t len;

	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return;		/* a directory named *.conf, say, or a FIFO */
	if (read_file(path, true, &buf, &len, p->errs) == -1) {
		conf_parser_error(p, path);
		return;
	}
	p->cur = NULL;
	p->cur_obj = NULL;
	p->cur_seen = NULL;
	p->name = path;
	p->lineno = 0;
	p->included = true;
	conf_parse_text(p, buf, len);
	free(buf);
	free(p->cur_seen);
	p->included = false;
	p->name = name;
	p->lineno = lineno;
	p->cur = cur;
	p->cur_obj = cur_obj;
	p->cur_seen = cur_seen;
}

void
conf_include_dir(struct parser *p, const char *dir)
{
	char *path, **names;
	ssize_t n;

	if (*dir == '\0' || p->included) {
		conf_parser_error(p, p->name);
		conf_error(p->errs, "%s:%zu: %s", p->name, p->lineno, *dir == '\0' ?
		    "missing value for key 'include_dir'" :
		    "include_dir in an included file: give it in the main file");
		return;
	}
	path = include_path(p, dir);
	if ((n = list_files(p, path, &names)) == -1)
		conf_parser_error(p, p->name);
	for (ssize_t i = 0; i < n; i++) {
		include_file(p, names[i]);
		free(names[i]);
	}
	free(names);
	free(path);
}
