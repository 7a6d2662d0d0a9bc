/* broker -t: what the start would find on this host besides the files
 * the configuration reads, found without starting anything or creating
 * a file: the user to become, the listeners' addresses (that they are
 * this host's), the data directory, the log file, the pid file (as the
 * user it is written as).
 * Each is an error of the configuration at the line that gave it,
 * reported with the others, all at once. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "xmalloc.h"

/* Where key was given: its line, "command line", or else the file. */
static const char *
where_given(const struct broker *b, char *const *given, const char *key)
{
	const char *w = given[conf_find(settings_table, key) - settings_table];

	return w != NULL ? w : b->conf_path ? b->conf_path : "built-in defaults";
}

static void
check_user(const struct broker *b, const struct settings *s, char *const *given,
    struct conf_errors *errs)
{
	char err[512];

	if (privs_check_user(s, err, sizeof(err)) == -1)
		conf_error(errs, "%s: %s", where_given(b, given, "user"), err);
}

/* Is the address one of this host's?  A bind to port 0 says, without
 * taking a port anyone uses.  0, or -1 with an error. */
static int
check_local(const struct addrinfo *ai, const char *addr, const char *where,
    const char *what, struct conf_errors *errs)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	int rc = 0;

	if (fd == -1) {			/* a family this host lacks (IPv6 off) */
		conf_error(errs, "%s: %s: cannot listen on %s: %s", where, what, addr,
		    strerror(errno));
		return -1;
	}
	/* Port 0 is in use only when the ports run out; EACCES is for a
	 * port, not an address. */
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 && errno != EADDRINUSE &&
	    errno != EACCES) {
		if (errno == EADDRNOTAVAIL)
			conf_error(errs, "%s: %s: %s is not an address of this host: listen on "
			    "one that is", where, what, addr);
		else
			conf_error(errs, "%s: %s: cannot listen on %s: %s", where, what, addr,
			    strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

/* As listen.c resolves it; 0, or -1 with an error "WHERE: WHAT: ...". */
static int
check_address(const char *addr, const char *where, const char *what,
    struct conf_errors *errs)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *res;
	int rc;

	if ((rc = getaddrinfo(addr, NULL, &hints, &res)) != 0) {
		conf_error(errs, "%s: %s: cannot resolve %s: %s: listen on an address of this "
		    "host", where, what, addr, gai_strerror(rc));
		return -1;
	}
	rc = check_local(res, addr, where, what, errs);	/* the start binds the first */
	freeaddrinfo(res);
	return rc;
}

/* bind_address, if a listener is on it: a shortcut port, or a block that
 * names no address of its own; and the blocks' own addresses. */
static void
check_addresses(const struct broker *b, const struct settings *s, char *const *given,
    struct conf_errors *errs)
{
	bool on_bind = s->mqtt_port != 0 || s->json_consumer_port != 0 ||
	    s->json_publisher_port != 0;
	char *addr, what[300];
	unsigned port;

	for (size_t i = 0; i < s->listeners.n; i++) {
		const struct listener_conf *c = s->listeners.v[i];

		if (c->listener == NULL || settings_listener(c->listener, &port, &addr) == -1)
			continue;	/* a bad listener line: its error is there */
		if (addr == NULL) {
			on_bind = true;
			continue;
		}
		snprintf(what, sizeof(what), "listener %s", c->listener);
		(void)check_address(addr, c->where, what, errs);
		free(addr);
	}
	if (on_bind && s->bind_address != NULL)
		(void)check_address(s->bind_address, where_given(b, given, "bind_address"),
		    "bind_address", errs);
}

/* The data directory is there, or can be made, for the master's user.
 * Only one given on the command line (-D), or as an absolute path in the
 * file: the default, and a relative data_dir, are relative to where the
 * broker starts, which need not be where it is checked (a service's unit
 * gives -D, which `broker -t -c FILE` does not see). */
static void
check_data_dir(const struct broker *b, const struct settings *s, char *const *given,
    struct conf_errors *errs)
{
	const char *where = given[conf_find(settings_table, "data_dir") - settings_table];
	char err[1024];

	if (where == NULL || s->data_dir == NULL ||
	    (s->data_dir[0] != '/' && strcmp(where, "command line") != 0))
		return;
	if (privs_check_data_dir(s, s->data_dir, err, sizeof(err)) == -1)
		conf_error(errs, "%s: %s", where_given(b, given, "data_dir"), err);
}

/* The log file opens (it is not created here). */
static void
check_log_file(const struct broker *b, const struct settings *s, struct conf_errors *errs)
{
	const struct conf_list *l = &s->log_dest;
	char msg[1024];

	for (size_t i = 0; i < l->n; i++) {
		const char *path = settings_log_file(l->v[i]);

		if (path == NULL || log_file_check(path) == 0)
			continue;
		broker_log_file_error(msg, sizeof(msg), l->where[i] != NULL ? l->where[i] :
		    b->conf_path ? b->conf_path : "configuration", path, errno);
		conf_error(errs, "%s", msg);
	}
}

/* Can the pid file be written (created in its directory, or written over)
 * as who writes it?  0 or an errno value.  A directory that does not exist
 * is not an error: a service manager makes /run's at the start
 * (systemd's RuntimeDirectory) and removes it at the stop. */
static int
pid_file_writable(const void *arg)
{
	const char *path = arg;
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	struct stat st;
	int rc = 0;

	if (slash == NULL)
		strcpy(dir, ".");
	else
		slash[slash == dir] = '\0';	/* "/run/broker.pid": "/run"; "/x": "/" */
	if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
		rc = ENOTDIR;
	else if (access(dir, W_OK | X_OK) == -1)
		rc = errno == ENOENT ? 0 : errno;
	else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		rc = EISDIR;
	else if (access(path, F_OK) == 0 && access(path, W_OK) == -1)
		rc = errno;
	free(dir);
	return rc;
}

/* The master writes its pid file once it is the user it becomes. */
static void
check_pid_file(const struct broker *b, const struct settings *s, char *const *given,
    struct conf_errors *errs)
{
	int rc;

	if (s->pid_file == NULL)
		return;
	if ((rc = privs_test_as(s, pid_file_writable, s->pid_file)) == -1)
		conf_error(errs, "%s: cannot check pid file %s as user %s", where_given(b, given,
		    "pid_file"), s->pid_file, s->user != NULL ? s->user : "root");
	else if (rc != 0)
		conf_error(errs, "%s: cannot write pid file %s%s%s: %s: %s, or change pid_file",
		    where_given(b, given, "pid_file"), s->pid_file,
		    geteuid() == 0 ? " as user " : "",
		    geteuid() != 0 ? "" : s->user != NULL ? s->user : "root", strerror(rc),
		    geteuid() == 0 ? "let that user write it" : "let the broker write it");
}

void
broker_check_host(const struct broker *b, const struct settings *s, char *const *given,
    struct conf_errors *errs)
{
	check_user(b, s, given, errs);
	check_addresses(b, s, given, errs);
	check_data_dir(b, s, given, errs);
	check_log_file(b, s, errs);
	check_pid_file(b, s, given, errs);
}
