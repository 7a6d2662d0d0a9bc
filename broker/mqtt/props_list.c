/* Property lists (mqtt_props.h): finding a property, reading its value,
 * and building a list to encode. */
#include "mqtt/wire.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

struct mqtt_prop *
mqtt_props_push(struct mqtt_props *ps)
{
	struct mqtt_prop *p;

	if (ps->n == ps->cap) {
		ps->cap = ps->cap == 0 ? 4 : 2 * ps->cap;
		ps->v = xreallocarray(ps->v, ps->cap, sizeof(*ps->v));
	}
	p = &ps->v[ps->n++];
	memset(p, 0, sizeof(*p));
	return p;
}

void
mqtt_props_free(struct mqtt_props *ps)
{
	free(ps->v);
	memset(ps, 0, sizeof(*ps));
}

const struct mqtt_prop *
mqtt_props_next(const struct mqtt_props *ps, uint8_t id, size_t *i)
{
	for (; *i < ps->n; (*i)++)
		if (ps->v[*i].id == id)
			return &ps->v[(*i)++];
	return NULL;
}

const struct mqtt_prop *
mqtt_props_find(const struct mqtt_props *ps, uint8_t id)
{
	size_t i = 0;

	return mqtt_props_next(ps, id, &i);
}

size_t
mqtt_props_count(const struct mqtt_props *ps, uint8_t id)
{
	size_t i = 0, n = 0;

	while (mqtt_props_next(ps, id, &i) != NULL)
		n++;
	return n;
}

static bool
is_integer(uint8_t id)
{
	enum mqtt_prop_type t = mqtt_prop_type(id);

	return t != MQTT_PT_UNKNOWN && t <= MQTT_PT_VARINT;
}

static bool
is_bytes(uint8_t id)
{
	enum mqtt_prop_type t = mqtt_prop_type(id);

	return t == MQTT_PT_STRING || t == MQTT_PT_BINARY;
}

bool
mqtt_props_get_u32(const struct mqtt_props *ps, uint8_t id, uint32_t *v)
{
	const struct mqtt_prop *p;

	if (!is_integer(id) || (p = mqtt_props_find(ps, id)) == NULL)
		return false;
	*v = p->num;
	return true;
}

bool
mqtt_props_get_string(const struct mqtt_props *ps, uint8_t id,
    struct mqtt_str *s)
{
	const struct mqtt_prop *p;

	if (!is_bytes(id) || (p = mqtt_props_find(ps, id)) == NULL)
		return false;
	*s = p->str;
	return true;
}

char *
mqtt_props_dup_string(const struct mqtt_props *ps, uint8_t id)
{
	struct mqtt_str s;
	char *d;

	if (mqtt_prop_type(id) != MQTT_PT_STRING ||
	    !mqtt_props_get_string(ps, id, &s))
		return NULL;
	d = xmalloc(s.len + 1);
	if (s.len > 0)
		memcpy(d, s.p, s.len);
	d[s.len] = '\0';
	return d;
}

int
mqtt_props_add_u32(struct mqtt_props *ps, uint8_t id, uint32_t v)
{
	if (!is_integer(id))
		return -1;
	return mqtt_props_add(ps, &(struct mqtt_prop){ .id = id, .num = v });
}

int
mqtt_props_add_string(struct mqtt_props *ps, uint8_t id, const char *s)
{
	if (mqtt_prop_type(id) != MQTT_PT_STRING || s == NULL)
		return -1;
	return mqtt_props_add(ps, &(struct mqtt_prop){ .id = id,
	    .str = { s, strlen(s) } });
}

int
mqtt_props_add_binary(struct mqtt_props *ps, uint8_t id, const void *p,
    size_t len)
{
	if (mqtt_prop_type(id) != MQTT_PT_BINARY || (p == NULL && len > 0))
		return -1;
	return mqtt_props_add(ps, &(struct mqtt_prop){ .id = id,
	    .str = { p, len } });
}

int
mqtt_props_add_user(struct mqtt_props *ps, const char *name,
    const char *value)
{
	if (name == NULL || value == NULL)
		return -1;
	return mqtt_props_add(ps, &(struct mqtt_prop){ .id = MQTT_PROP_USER,
	    .name = { name, strlen(name) }, .str = { value, strlen(value) } });
}

int
mqtt_props_add(struct mqtt_props *ps, const struct mqtt_prop *p)
{
	if (mqtt_prop_type(p->id) == MQTT_PT_UNKNOWN)
		return -1;
	*mqtt_props_push(ps) = *p;
	return 0;
}

void
mqtt_props_del(struct mqtt_props *ps, uint8_t id)
{
	size_t i, k = 0;

	for (i = 0; i < ps->n; i++)
		if (ps->v[i].id != id)
			ps->v[k++] = ps->v[i];
	ps->n = k;
}
