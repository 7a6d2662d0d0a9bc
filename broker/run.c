/* The master's life: data directory and its lock, the event loop, and the
 * once-a-second tick that keeps the process title current. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/unistd.h>
#include <event2/event.h>

#include "broker.h"
#include "clock.h"
#include "log.h"
#include "xmalloc.h"

static int
make_dir(const char *path)
{
	if (mkdir(path, 0750) == -1 && errno != EEXIST) {
		log_warn("cannot create directory %s", path);
		return -1;
	}
	return 0;
}

/* One broker per data directory: an exclusive lock held for life. */
static int
lock_data_dir(struct broker *b)
{
	char *path;
	int fd;

	xasprintf(&path, "%s/broker.lock", b->set.data_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1) {
		log_warn("cannot open %s", path);
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			log_warnx("another broker is running on data directory %s (%s is locked)",
			    b->set.data_dir, path);
		else
			log_warn("cannot lock %s", path);
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	b->lock_fd = fd;
	return 0;
}

void
broker_title(struct broker *b)
{
	char ports[64] = "";
	unsigned p[3] = { b->set.mqtt_port, b->set.json_consumer_port, b->set.json_publisher_port };
	size_t off = 0;

	for (int i = 0; i < 3; i++) {
		if (p[i] == 0)
			continue;
		off += (size_t)snprintf(ports + off, sizeof(ports) - off, "%s%u", off ? "," : "", p[i]);
		if (off >= sizeof(ports))
			break;
	}
	setproctitle("master %s clients=%u topics=%d", ports, b->nclients, broker_count_topics(b));
	b->title_dirty = false;
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	(void)fd;
	(void)what;
	if (b->title_dirty)
		broker_title(b);
}

/* The classic way: fork, setsid, chdir /, stdio to /dev/null.  The data
 * directory is made absolute first. */
static int
daemonize(void)
{
	int fd;

	switch (fork()) {
	case -1:
		log_warn("fork");
		return -1;
	case 0:
		break;
	default:
		_exit(0);
	}
	if (setsid() == -1 || chdir("/") == -1) {
		log_warn("setsid/chdir");
		return -1;
	}
	if ((fd = open("/dev/null", O_RDWR)) == -1) {
		log_warn("/dev/null");
		return -1;
	}
	for (int i = 0; i < 3; i++)
		if (dup2(fd, i) == -1)
			return -1;
	if (fd > 2)
		close(fd);
	return 0;
}

static int
write_pid_file(struct broker *b)
{
	char buf[32];
	int fd, n;

	if (b->set.pid_file == NULL)
		return 0;
	fd = open(b->set.pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_warn("pid file %s", b->set.pid_file);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		log_warn("pid file %s", b->set.pid_file);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int
setup(struct broker *b)
{
	struct timeval one = { 1, 0 };
	char *topics_dir;

	if (getrandom(&b->boot_id, sizeof(b->boot_id), 0) != (ssize_t)sizeof(b->boot_id))
		b->boot_id = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 40);
	if (make_dir(b->set.data_dir) == -1 || lock_data_dir(b) == -1)
		return -1;
	if (b->daemonize) {
		/* After chdir("/") a relative data directory would be lost. */
		char *abs = realpath(b->set.data_dir, NULL);

		if (abs == NULL) {
			log_warn("data directory %s", b->set.data_dir);
			return -1;
		}
		free(b->set.data_dir);
		b->set.data_dir = abs;
	}
	xasprintf(&topics_dir, "%s/topics", b->set.data_dir);
	if (make_dir(topics_dir) == -1) {
		free(topics_dir);
		return -1;
	}
	free(topics_dir);
	if ((b->topicd_path = topicd_find(b->set.topicd_path)) == NULL)
		return -1;
	if (store_open(b) == -1)
		return -1;
	if ((b->base = event_base_new()) == NULL)
		fatalx("cannot create the event loop");
	signals_init(b);
	if (listeners_open(b) == -1)
		return -1;
	if (b->daemonize) {
		if (b->set.log_dest.n == 0)	/* stderr goes nowhere now */
			log_init("broker", log_get_level(), LOG_DEST_SYSLOG, NULL);
		if (daemonize() == -1)
			return -1;
		if (event_reinit(b->base) == -1)
			fatalx("cannot re-initialise the event loop after fork");
	}
	if (write_pid_file(b) == -1)
		return -1;
	sys_start(b);
	b->tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
	if (b->tick == NULL || event_add(b->tick, &one) == -1)
		fatalx("cannot arm the title timer");
	return 0;
}

int
broker_run(struct broker *b)
{
	RB_INIT(&b->children);
	RB_INIT(&b->clients);
	RB_INIT(&b->consumers);
	b->lock_fd = -1;
	b->started_ms = mono_ms();
	b->next_req = 1;
	if (setup(b) == -1)
		return 1;
	broker_title(b);
	log_notice("started: version %s, pid %ld, data %s, topicd %s, boot %016llx",
	    BROKER_VERSION, (long)getpid(), b->set.data_dir, b->topicd_path,
	    (unsigned long long)b->boot_id);
	if (event_base_dispatch(b->base) == -1)
		log_warnx("event loop failed");
	clients_free_all(b);
	children_free_all(b);
	store_close(b);
	sys_stop(b);
	signals_free(b);
	event_free(b->tick);
	if (b->stop_timer != NULL)
		event_free(b->stop_timer);
	event_base_free(b->base);
	free(b->topicd_path);
	settings_free(&b->set);
	close(b->lock_fd);
	if (b->set.pid_file != NULL && unlink(b->set.pid_file) == -1)
		log_warn("cannot remove pid file %s", b->set.pid_file);
	log_notice("stopped");
	return 0;
}
