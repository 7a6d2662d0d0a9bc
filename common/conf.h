/* Table-driven configuration files: `key value` lines, `#` comments.
 *
 * A table of struct conf_key names every key, its type, where it lives in
 * the caller's structure, its default and bounds, and whether a reload may
 * change it; it ends with an entry whose name is NULL.  One parser walks
 * the table; every error is reported as "FILE:LINE: message" and parsing
 * goes on, so that all errors are shown at once.  A bad value leaves the
 * key as it was.  A repeated key: the last one wins, except for lists.
 *
 * The file format: a line holds at most 4096 bytes (without its newline);
 * blanks around it are ignored, and so are empty lines and lines whose
 * first non-blank byte is '#'.  Otherwise the line is a key, blanks, and
 * a value, which is the rest of the line without its trailing blanks: a
 * '#' after a key is part of the value, not a comment ("dead_letter_topic
 * a/#" is the value "a/#").  A key without a value is an error; there is
 * no quoting.  A UTF-8 byte order mark at the start is skipped.
 *
 * Blocks (struct conf_block): a line whose key opens a block ("listener
 * 8883") starts a new structure of the block's own keys, and the lines
 * after it set those keys in it, until the next line that opens a block.
 * Keys of the main table may still appear anywhere and set the main
 * structure (as in mosquitto.conf); a key of a block before any block was
 * opened is an error. */
#ifndef COMMON_CONF_H
#define COMMON_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conf_type {
	CONF_BOOL,	/* bool: true/false, yes/no, on/off, 1/0 */
	CONF_UINT,	/* unsigned: decimal, within [min, max] */
	CONF_PORT,	/* unsigned: 0..65535 (0 disables a listener) */
	CONF_SIZE,	/* uint64_t: bytes, suffix k, m, g (powers of 1024,
			 * either case): "65536", "64k", "1M" */
	CONF_MSEC,	/* uint64_t milliseconds, written in seconds with at
			 * most 3 decimals: "10", "0.25" */
	CONF_STRING,	/* char *, malloc'd */
	CONF_LIST,	/* struct conf_list: every occurrence appends; the
			 * first one in a parse replaces the default */
};

struct conf_list {
	char   **v;
	char   **where;		/* of each element: "FILE:LINE" of the line that
				 * gave it, or NULL (a default, the command line) */
	size_t   n;
};

struct conf_key {
	const char     *name;
	enum conf_type  type;
	size_t          offset;		/* offsetof() into the caller's structure */
	const char     *def;		/* default, as written in a file; NULL for
					 * none (0, false, NULL, empty list) */
	double          min, max;	/* bounds for numbers, inclusive, in the unit
					 * written (seconds for CONF_MSEC); both 0:
					 * the type's own range */
	bool            reloadable;	/* SIGHUP may change it */
	const char     *help;		/* one line for broker.conf(5) and the example file */
	/* For strings and list items: NULL if the value is good, else what
	 * is expected (reported as FILE:LINE: bad value ...).  Optional. */
	const char   *(*check)(const char *value);
};

/*
 * A block of keys.  keys[0] is the key that opens one, and holds the
 * value of its opening line (its check applies).  Each block is a
 * structure of `size` bytes, set to the defaults of keys, appended to the
 * struct conf_blocks at `offset` in the main structure; the char * at
 * `where` in it is set to "FILE:LINE" of its opening line, for the errors
 * a check of the whole block finds later.  A table of blocks ends with an
 * entry whose keys are NULL.
 */
struct conf_block {
	const struct conf_key *keys;
	size_t                 size;
	size_t                 offset;
	size_t                 where;
};

struct conf_blocks {
	void   **v;			/* each a structure of the block's */
	size_t   n;
};

/*
 * A key of another program's files of the same syntax (mosquitto.conf's)
 * that is not one of ours.  A line that gives it sets the key alias
 * names, if any; else it is taken and changes nothing when its value is
 * accepted ("*": any value; a boolean is compared as a boolean); else it
 * is an error that says hint.  A name ending in '*' stands for every key
 * that starts with what comes before it ("bridge_*").  A table ends with
 * an entry whose name is NULL.
 */
struct conf_foreign {
	const char *name;
	const char *alias;		/* NULL, or the key it stands for */
	const char *accepted;		/* NULL: none */
	const char *hint;		/* what the error says after the key */
};

/* What a file may hold: the keys of the main structure and, optionally,
 * blocks, and the keys of another program it knows.  A file (not a
 * buffer) may include others: "include_dir DIR" reads the files of DIR
 * whose names end in ".conf", in the order of their names, as if they
 * stood in its place; an included file may not include more. */
struct conf_syntax {
	const struct conf_key     *keys;
	const struct conf_block   *blocks;	/* NULL: none */
	const struct conf_foreign *foreign;	/* NULL: none */
	const char                *foreign_of;	/* whose keys: "mosquitto" */
};

/* The messages kept: a file of junk is not millions of them. */
#define CONF_ERRORS_MAX 100
struct conf_errors {
	char   **msg;			/* "FILE:LINE: message" */
	size_t   n;
	size_t   more;			/* past CONF_ERRORS_MAX: counted only */
	char   **files;			/* the files the errors are in, each once, in
					 * the order found (conf_error_file) */
	size_t   nfiles;
	/* Warnings: the file is used, but a line is likely not what was
	 * meant (a key given twice: the last one applies). */
	char   **notes;			/* "FILE:LINE: message", CONF_ERRORS_MAX at most */
	size_t   nnotes;
};

/* Adds a warning to errs->notes (past CONF_ERRORS_MAX: dropped). */
void conf_note(struct conf_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sets every key to its default, without freeing what obj held (a bad
 * default is a bug: fatal). */
void conf_defaults(const struct conf_key *tab, void *obj);
/* Parses a file over obj.  Returns the number of errors added to errs; a
 * file that cannot be read is one error, "FILE: cannot open: reason". */
int  conf_parse_file(const struct conf_key *tab, void *obj, const char *path,
		     struct conf_errors *errs);
/* The same on a buffer; name is used in messages. */
int  conf_parse_buf(const struct conf_key *tab, void *obj, const char *name,
		    const char *buf, size_t len, struct conf_errors *errs);
/* The same with blocks.  given (NULL, or one slot per key of syn->keys)
 * gets, for every key of the main table a line of the file gives, where
 * the last such line is: "FILE:LINE", malloc'd (what the slot held is
 * freed); conf_given_free() frees them. */
int  conf_parse_syntax_file(const struct conf_syntax *syn, void *obj, const char *path,
			    char **given, struct conf_errors *errs);
int  conf_parse_syntax_buf(const struct conf_syntax *syn, void *obj, const char *name,
			   const char *buf, size_t len, char **given,
			   struct conf_errors *errs);
/* Frees the n slots of given and leaves them NULL. */
void conf_given_free(char **given, size_t n);
/* Frees every block of obj (their keys, their "FILE:LINE", themselves)
 * and leaves the lists empty. */
void conf_blocks_free(const struct conf_block *blocks, void *obj);
/* Sets one key (command-line overrides; a list gets one more element).
 * 0, or -1 with a message in errs prefixed by origin ("ORIGIN: ..."). */
int  conf_set(const struct conf_key *tab, void *obj, const char *key,
	      const char *value, const char *origin, struct conf_errors *errs);
const struct conf_key *conf_find(const struct conf_key *tab, const char *key);
/* Whether two objects differ in a key's value. */
bool conf_differs(const struct conf_key *k, const void *a, const void *b);
/* Copies every key's value from src to dst, duplicating strings and lists
 * so that dst owns its own.  What dst held is not freed: dst is fresh, or
 * a plain struct copy of src. */
void conf_copy(const struct conf_key *tab, void *dst, const void *src);
/* Frees strings and lists and leaves them NULL and empty. */
void conf_free(const struct conf_key *tab, void *obj);
void conf_errors_free(struct conf_errors *errs);
/* Appends a formatted message to errs (counts it, past CONF_ERRORS_MAX);
 * returns 1 (to count errors). */
int  conf_error(struct conf_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Notes that errors were found in file (once each): the parsers note the
 * files they read, for a summary that names them. */
void conf_error_file(struct conf_errors *errs, const char *file);

#endif
