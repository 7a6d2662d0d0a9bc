/* Integers beyond 64 bits in a client's line, masked for jansson and
 * written back digit for digit (bignum.c). */
#ifndef BROKER_JSON_JSON_BIGNUM_H
#define BROKER_JSON_JSON_BIGNUM_H

#include <stdbool.h>
#include <stddef.h>

struct jl_bignums {
	const char	*line;		/* the line they are in */
	size_t		*off;		/* where each one's text starts in it */
	size_t		*len;		/* and its length */
	size_t		 n, cap;
};

/* The line with each integer beyond 64 bits replaced by a marker
 * (malloc'd and NUL-terminated, *outlen bytes before the NUL), bn noting
 * them; NULL when there is none, or when the line holds a \u0000 escape.
 * bn points into line: it must outlive bn. */
char	*jl_bignums_mask(const char *line, size_t len, struct jl_bignums *bn,
	    size_t *outlen);
/* Is string s[0..n) one of bn's markers?  (bn may be NULL.) */
bool	 jl_bignums_marks(const struct jl_bignums *bn, const char *s, size_t n);
/* The integer's text that string s[0..n) marks; false when s is no
 * marker (bn may be NULL). */
bool	 jl_bignums_digits(const struct jl_bignums *bn, const char *s, size_t n,
	    const char **digits, size_t *dlen);
void	 jl_bignums_free(struct jl_bignums *bn);

#endif
