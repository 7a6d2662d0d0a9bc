/* What the configuration parser (conf.c) and the values of its keys
 * (conf_value.c) share. */
#ifndef COMMON_CONF_INT_H
#define COMMON_CONF_INT_H

#include "conf.h"

/* The field of key k in obj. */
void	*conf_field(const struct conf_key *k, void *obj);
/* Stores v into obj's field for k (a list gets one more element).
 * Returns 0, or -1 with *why set to a malloc'd "expected ..." text. */
int	 conf_apply(const struct conf_key *k, void *obj, const char *v, char **why);
void	 conf_list_free(struct conf_list *l);

#endif
