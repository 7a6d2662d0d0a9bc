/* What the configuration parser (conf.c), its files (conf_file.c) and
 * the values of its keys (conf_value.c) share. */
#ifndef COMMON_CONF_INT_H
#define COMMON_CONF_INT_H

#include "conf.h"

/* The field of key k in obj. */
void	*conf_field(const struct conf_key *k, void *obj);
/* Stores v into obj's field for k (a list gets one more element).
 * Returns 0, or -1 with *why set to a malloc'd "expected ..." text. */
int	 conf_apply(const struct conf_key *k, void *obj, const char *v, char **why);
void	 conf_list_free(struct conf_list *l);

/* One parse: the lines of a file (and of the files it includes) over
 * one structure. */
struct parser {
	const struct conf_syntax *syn;
	const struct conf_key   *tab;
	const struct conf_block *blocks;	/* NULL: none */
	void                    *obj;
	const char              *name;		/* of the file being read */
	size_t                   lineno;
	struct conf_errors      *errs;
	int                      nerr;
	bool                    *seen;		/* per key of tab: met in this parse */
	char                   **given;		/* the caller's, or NULL */
	/* The block the lines are in, or NULL. */
	const struct conf_block *cur;
	void                    *cur_obj;
	bool                    *cur_seen;	/* per key of cur->keys */
	/* include_dir: the files may include others (a parse of a file, not
	 * of a buffer), and one is being included. */
	bool                     files;
	bool                     included;
};

void	 conf_parser_init(struct parser *p, const struct conf_syntax *syn, void *obj,
	    const char *name, char **given, struct conf_errors *errs);
/* Counts an error of the parse, found in file (noted in p->errs). */
void	 conf_parser_error(struct parser *p, const char *file);
/* Frees what p holds; the number of errors it found. */
int	 conf_parser_done(struct parser *p);
/* The lines of buf, counted from p->lineno + 1. */
void	 conf_parse_text(struct parser *p, const char *buf, size_t len);
/* include_dir DIR (conf_file.c): the .conf files of DIR, in the order of
 * their names, read as if they stood in place of the line. */
void	 conf_include_dir(struct parser *p, const char *dir);
/* A key or value as shown in a message: control bytes as \xNN, cut
 * short.  malloc'd. */
char	*conf_show(const char *s);

#endif
