/* libFuzzer target: the will record of the master's store
 * (broker/mqtt/will_rec.c) on arbitrary bytes.
 *
 *   make build/fuzz/fuzz_will && build/fuzz/fuzz_will tests/fuzz/corpus/will
 *
 * Besides memory errors, it checks that a record read is written back to
 * the same bytes (the format has one spelling of each record), and that
 * what it points to lies within the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/will_rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s\n", #c); abort(); } } while (0)

static int
inside(const uint8_t *data, size_t size, const void *p, size_t n)
{
	const uint8_t *q = p;

	return q >= data && q <= data + size && n <= (size_t)(data + size - q);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct will_rec r;
	struct wbuf w;

	if (will_rec_decode(data, size, &r) == -1)
		return 0;
	CHECK(r.qos <= 2);
	CHECK(inside(data, size, r.topic, strlen(r.topic) + 1));
	CHECK(r.len == 0 || inside(data, size, r.payload, r.len));
	CHECK((r.props == NULL) == (r.props_len == 0));
	CHECK(r.props == NULL || inside(data, size, r.props, r.props_len));
	CHECK(r.user == NULL || inside(data, size, r.user, strlen(r.user) + 1));
	CHECK(r.listener == NULL || inside(data, size, r.listener, strlen(r.listener) + 1));
	wbuf_init(&w);
	will_rec_encode(&w, &r);
	CHECK(w.len == size && memcmp(w.data, data, size) == 0);
	wbuf_free(&w);
	return 0;
}
