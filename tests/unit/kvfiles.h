/* A store named NAME in a test's scratch directory: its files, and
 * opening it.  Include after cmocka.h, kvstore.h and tmpdir.h, with NAME
 * defined. */
#ifndef TESTS_UNIT_KVFILES_H
#define TESTS_UNIT_KVFILES_H

#include <stdio.h>

/* DIR/NAME followed by suffix (a static buffer). */
static inline char *
path_of(const struct tmpdir *fx, const char *suffix)
{
	static char p[320];

	snprintf(p, sizeof(p), "%s/%s%s", fx->dir, NAME, suffix);
	return p;
}

static inline char *
seg_path(const struct tmpdir *fx, unsigned n)
{
	char suffix[32];

	snprintf(suffix, sizeof(suffix), ".journal.%08u", n);
	return path_of(fx, suffix);
}

static inline struct kv *
open_store(const struct tmpdir *fx, uint64_t ckpt, int inline_jobs)
{
	char *err = NULL;
	struct kv *kv = kv_open(fx->dir, NAME, ckpt, &err);

	if (kv == NULL)
		fail_msg("kv_open: %s", err ? err : "?");
	kv_set_inline(kv, inline_jobs);
	return kv;
}

#endif
