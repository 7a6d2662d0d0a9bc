/* The event loop both programs run. */
#ifndef COMMON_EVLOOP_H
#define COMMON_EVLOOP_H

struct event_base;

/* A libevent base that goes back to the kernel for ready descriptors and
 * timers after EVLOOP_MAX_CALLBACKS callbacks, or NULL.  libevent runs a
 * callback made active during its pass (event_active) in that same pass:
 * a reader that takes its share and makes itself active again for the
 * rest, under a peer that never stops writing, kept the loop from
 * polling for hundreds of milliseconds, and with it every socket that
 * was waiting to become writable. */
#define EVLOOP_MAX_CALLBACKS	16

struct event_base *evloop_new(void);

#endif
