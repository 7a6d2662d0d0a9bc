/* libFuzzer target: broker.conf(5) as the broker parses it, listener
 * blocks included, then the checks of the whole (settings_check).
 *
 * Besides memory errors, it checks that every message names the file,
 * that every block knows its line, and that a configuration without
 * errors has only listener blocks the listeners can be made of: a port
 * and address that split, a known protocol, TLS keys that go together. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const protocols[] = { "mqtt", "json_consumer", "json_publisher" };

static void
check_block(const struct listener_conf *l, bool clean)
{
	unsigned port;
	char *addr;
	bool known = false;

	if (l->where == NULL || strncmp(l->where, "fuzz:", 5) != 0)
		abort();
	if (!clean)
		return;
	if (l->listener == NULL || settings_listener(l->listener, &port, &addr) == -1 ||
	    port == 0 || port > 65535)
		abort();
	free(addr);
	for (size_t i = 0; i < 3; i++)
		known |= l->protocol != NULL && strcmp(l->protocol, protocols[i]) == 0;
	if (!known || (l->certfile == NULL) != (l->keyfile == NULL) ||
	    (l->use_identity_as_username && !l->require_certificate))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors errs = { 0 };
	char *given[64] = { NULL };
	struct settings s;
	int n;

	settings_init(&s);
	n = settings_parse_buf(&s, "fuzz", (const char *)data, size, given, &errs);
	settings_apply_blocks(&s, given);
	conf_given_free(given, sizeof(given) / sizeof(given[0]));
	n += settings_check(&s, "fuzz", &errs);
	if (n < 0 || (size_t)n != errs.n + errs.more)
		abort();
	for (size_t i = 0; i < errs.n; i++)
		if (strncmp(errs.msg[i], "fuzz", 4) != 0)
			abort();
	for (size_t i = 0; i < s.listeners.n; i++)
		check_block(s.listeners.v[i], errs.n + errs.more == 0);
	settings_free(&s);
	conf_errors_free(&errs);
	return 0;
}
