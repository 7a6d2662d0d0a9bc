/* The process limits the settings may need: the open files (the soft
 * limit raised to the hard one), the kernel's memory maps, and the tasks
 * (processes and threads) the user and the service's cgroup may have.  Checked at
 * start and after a reload that changes max_connections or max_topicds;
 * each shortfall is one warning. */
#include <sys/resource.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"

/* Descriptors the broker may need: per client connection (its socket,
 * and those it has with topicds), per running topicd (its channel, its
 * session sockets), one per spare topicd (its channel), and a margin
 * (listeners, stores, logs). */
#define FDS_PER_CONNECTION	3
#define FDS_PER_TOPICD		12
#define FDS_MARGIN		64

static uint64_t
fds_needed(const struct settings *s)
{
	return FDS_PER_CONNECTION * (uint64_t)s->max_connections +
	    FDS_PER_TOPICD * (uint64_t)s->max_topicds + s->topicd_spares + FDS_MARGIN;
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

/* Tasks: each topicd is two (its loop and its store's worker thread), a
 * spare one, the master two, and a margin.  Past RLIMIT_NPROC (of the user, counting
 * all its processes) or the cgroup's pids.max (systemd's TasksMax) a
 * topicd cannot be started. */
#define TASKS_PER_TOPICD	2
#define TASKS_MARGIN		16

/* The pids.max of this process's cgroup (v2, or v1's pids controller);
 * 0 if it has none or it cannot be read. */
static uint64_t
cgroup_pids_max(void)
{
	char line[4096], path[4200] = "", value[32];
	unsigned long long n = 0;
	FILE *f;

	if ((f = fopen("/proc/self/cgroup", "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *ctl = strchr(line, ':'), *at = ctl ? strchr(ctl + 1, ':') : NULL;

		if (at == NULL)
			continue;
		at[strcspn(at, "\n")] = '\0';
		if (strncmp(ctl, "::", 2) == 0 && path[0] == '\0')
			snprintf(path, sizeof(path), "/sys/fs/cgroup%s/pids.max", at + 1);
		else if (strncmp(ctl, ":pids:", 6) == 0)
			snprintf(path, sizeof(path), "/sys/fs/cgroup/pids%s/pids.max", at + 1);
	}
	(void)fclose(f);
	if (path[0] == '\0' || (f = fopen(path, "re")) == NULL)
		return 0;
	if (fgets(value, sizeof(value), f) == NULL || sscanf(value, "%llu", &n) != 1)
		n = 0;			/* "max" */
	(void)fclose(f);
	return n;
}

static void
task_limit_check(const struct broker *b)
{
	uint64_t need = TASKS_PER_TOPICD * (uint64_t)b->set.max_topicds + b->set.topicd_spares +
	    TASKS_MARGIN;
	uint64_t cg = cgroup_pids_max();
	struct rlimit rl;

	if (getrlimit(RLIMIT_NPROC, &rl) == -1)
		log_warn("getrlimit(RLIMIT_NPROC)");
	else if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warnx("process limit %llu is below the %llu tasks that max_topicds %u may "
		    "need (2 per topicd): raise it (LimitNPROC, ulimit -u) or lower max_topicds",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)need,
		    b->set.max_topicds);
	if (cg != 0 && cg < need)
		log_warnx("the cgroup's task limit (pids.max) %llu is below the %llu tasks that "
		    "max_topicds %u may need (2 per topicd): raise it (TasksMax) or lower "
		    "max_topicds", (unsigned long long)cg, (unsigned long long)need,
		    b->set.max_topicds);
}

void
broker_check_limits(const struct broker *b)
{
	static unsigned conns, topicds, spares;	/* of the last check (0: none) */

	/* A reload that changes none (logrotate's SIGHUP) says nothing
	 * again. */
	if (b->set.max_connections == conns && b->set.max_topicds == topicds &&
	    b->set.topicd_spares == spares)
		return;
	conns = b->set.max_connections;
	topicds = b->set.max_topicds;
	spares = b->set.topicd_spares;
	fd_limit_raise(b);
	map_limit_check(b);
	task_limit_check(b);
}
