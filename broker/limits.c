/* The process limits the settings may need: the open files (the soft
 * limit raised to the hard one) and the kernel's memory maps.  Checked at
 * start and after a reload that changes max_connections or max_topicds;
 * each shortfall is one warning. */
#include <sys/resource.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "log.h"

/* Descriptors the broker may need: per client connection (its socket,
 * and those it has with topicds), per running topicd (its channel, its
 * session sockets), and a margin (listeners, stores, logs). */
#define FDS_PER_CONNECTION	3
#define FDS_PER_TOPICD		12
#define FDS_MARGIN		64

static uint64_t
fds_needed(const struct settings *s)
{
	return FDS_PER_CONNECTION * (uint64_t)s->max_connections +
	    FDS_PER_TOPICD * (uint64_t)s->max_topicds + FDS_MARGIN;
}

/* The soft open-file limit goes up to the hard one (a shell's or service
 * manager's soft limit is often 1024); one warning if that is still
 * short of what max_connections and max_topicds may need.  The topicds
 * started later inherit the limit. */
static void
fd_limit_raise(const struct broker *b)
{
	uint64_t need = fds_needed(&b->set);
	struct rlimit rl;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return;
	}
	was = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("cannot raise the open-file limit from %llu to %llu",
			    (unsigned long long)was, (unsigned long long)rl.rlim_max);
			rl.rlim_cur = was;
		} else {
			log_info("open-file limit raised from %llu to %llu",
			    (unsigned long long)was, (unsigned long long)rl.rlim_cur);
		}
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warnx("open-file limit %llu is below the %llu descriptors that "
		    "max_connections %u and max_topicds %u may need: raise the hard limit "
		    "(LimitNOFILE, ulimit -Hn) or lower those settings",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)need,
		    b->set.max_connections, b->set.max_topicds);
}

/* Memory maps: the master maps two shared rings per running topicd (one
 * each way); a margin for its libraries, heap and thread stacks.  Past
 * the kernel's limit a ring cannot be mapped, and its topicd restarts. */
#define MAPS_PER_TOPICD		2
#define MAPS_MARGIN		1024
#define MAP_COUNT_FILE		"/proc/sys/vm/max_map_count"

static void
map_limit_check(const struct broker *b)
{
	uint64_t need = MAPS_PER_TOPICD * (uint64_t)b->set.max_topicds + MAPS_MARGIN;
	unsigned long long limit;
	FILE *f = fopen(MAP_COUNT_FILE, "re");
	int n;

	if (f == NULL) {
		log_info("cannot read %s: %s", MAP_COUNT_FILE, strerror(errno));
		return;
	}
	n = fscanf(f, "%llu", &limit);
	(void)fclose(f);
	if (n == 1 && limit < need)
		log_warnx("vm.max_map_count %llu is below the %llu memory maps that max_topicds "
		    "%u may need in the master: raise it (sysctl vm.max_map_count) or lower "
		    "max_topicds", limit, (unsigned long long)need, b->set.max_topicds);
}

void
broker_check_limits(const struct broker *b)
{
	static unsigned conns, topicds;		/* of the last check (0: none) */

	/* A reload that changes neither (logrotate's SIGHUP) says nothing
	 * again. */
	if (b->set.max_connections == conns && b->set.max_topicds == topicds)
		return;
	conns = b->set.max_connections;
	topicds = b->set.max_topicds;
	fd_limit_raise(b);
	map_limit_check(b);
}
