/* Logging: stderr, syslog and/or a file; one line per event. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"

static struct {
	char           name[32];
	enum log_level level;
	int            dests;
	char          *path;
	int            fd;
	bool           errors_to_stderr;	/* log_errors_to_stderr() */
} L = { "broker", LOG_LVL_NOTICE, LOG_DEST_STDERR, NULL, -1, false };

static const char *const level_names[] = {
	"error", "warning", "notice", "information", "debug",
};

/* Not through a link: one left by whoever may write the directory would
 * have root append lines to any file. */
#define LOG_OPEN_FLAGS	(O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)

static int
open_file(void)
{
	int fd = open(L.path, LOG_OPEN_FLAGS | O_CREAT, 0640);

	if (fd == -1)
		return -1;
	if (L.fd != -1)
		close(L.fd);
	L.fd = fd;
	return 0;
}

static void
close_file(void)
{
	if (L.fd != -1)
		close(L.fd);
	L.fd = -1;
	free(L.path);
	L.path = NULL;
}

/* Again (a reload): a file already open stays open (log_reopen() opens
 * its path again), and one that cannot be opened leaves the one open
 * before in use. */
int
log_init(const char *name, enum log_level level, int dests, const char *file)
{
	char *was = L.path;
	int fd = L.fd, rc = 0, e;

	snprintf(L.name, sizeof(L.name), "%s", name);
	L.level = level;
	L.dests = dests;
	if (!(dests & LOG_DEST_FILE) || file == NULL) {
		close_file();
	} else if (L.path == NULL || strcmp(L.path, file) != 0) {
		L.fd = -1;
		if ((L.path = strdup(file)) == NULL || open_file() == -1) {
			e = errno;
			free(L.path);
			L.path = was;
			L.fd = fd;
			if (fd == -1)
				L.dests &= ~LOG_DEST_FILE;
			errno = e;
			rc = -1;
		} else {
			if (fd != -1)
				close(fd);
			free(was);
		}
	}
	e = errno;		/* the file's, not the syslog socket's */
	if (dests & LOG_DEST_SYSLOG)
		openlog(L.name, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	errno = e;
	return rc;
}

/* What open_file() would meet, without creating the file: an existing one
 * is opened (not written), a missing one needs a directory this process
 * may write. */
int
log_file_check(const char *path)
{
	char *copy, *dir;
	int fd, rc;

	fd = open(path, LOG_OPEN_FLAGS | O_NONBLOCK);	/* a FIFO does not hang a check */
	if (fd != -1)
		return close(fd);
	if (errno != ENOENT)
		return -1;
	if ((copy = strdup(path)) == NULL)
		return -1;
	dir = dirname(copy);
	rc = access(dir, W_OK | X_OK);
	free(copy);
	return rc;
}

/* The log file becomes uid's (its group stays), so that a master that
 * drops root, and its topicds, can open it again; not one with other
 * names (a hard link). */
int
log_file_give(uid_t uid)
{
	struct stat st;

	if (L.fd == -1)
		return 0;
	if (fstat(L.fd, &st) == -1)
		return -1;
	if (st.st_uid == uid)
		return 0;
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		errno = EPERM;
		return -1;
	}
	return fchown(L.fd, uid, (gid_t)-1);
}

int
log_reopen(void)
{
	if (!(L.dests & LOG_DEST_FILE) || L.path == NULL)
		return 0;
	if (open_file() == -1) {
		/* The lines go on to the file open before (moved, or deleted):
		 * better than none, and this one says why. */
		log_warnx("cannot reopen log file %s: %s; still writing to the one open before",
		    L.path, strerror(errno));
		return -1;
	}
	return 0;
}

void
log_errors_to_stderr(bool on)
{
	L.errors_to_stderr = on;
}

void
log_set_level(enum log_level level)
{
	L.level = level;
}

int
log_get_dests(void)
{
	return L.dests;
}

const char *
log_get_file(void)
{
	return (L.dests & LOG_DEST_FILE) ? L.path : NULL;
}

bool
log_dests_are(int dests, const char *file)
{
	const char *mine = log_get_file();

	if (L.dests != dests)
		return false;
	if (mine == NULL || file == NULL)
		return mine == file;
	return strcmp(mine, file) == 0;
}

enum log_level
log_get_level(void)
{
	return L.level;
}

int
log_level_parse(const char *s)
{
	static const char *const alias[] = { "err", "warn", "notice", "info", "debug" };

	for (int i = 0; i <= LOG_LVL_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0 || strcmp(s, alias[i]) == 0)
			return i;
	return -1;
}

/* The escape of one byte that must not reach a log as is: 0 for the
 * others (UTF-8 sequences included). */
static size_t
escape_byte(unsigned char c, char out[5])
{
	static const char hex[] = "0123456789abcdef";

	if (c >= 0x20 && c != 0x7f)
		return 0;
	out[0] = '\\';
	switch (c) {
	case '\n': out[1] = 'n'; return 2;
	case '\r': out[1] = 'r'; return 2;
	case '\t': out[1] = 't'; return 2;
	default:
		out[1] = 'x';
		out[2] = hex[c >> 4];
		out[3] = hex[c & 0xf];
		return 4;
	}
}

/* The UTF-8 characters at s that a terminal would act on or that reorder
 * what follows them: the C1 controls (U+0080-U+009F: 0x9b starts an
 * escape sequence as ESC [ does), the line and paragraph separators
 * (U+2028, U+2029) and the bidirectional marks, embeddings, overrides and
 * isolates (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069), with
 * which a name could show as another.  Their length,
 * with their code point; 0 for the others. */
static size_t
unicode_control(const unsigned char *s, unsigned *cp)
{
	if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
		*cp = s[1];
		return 2;
	}
	if (s[0] == 0xd8 && s[1] == 0x9c) {
		*cp = 0x61c;
		return 2;
	}
	if (s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0x8e || s[2] == 0x8f ||
	    (s[2] >= 0xa8 && s[2] <= 0xae))) {
		*cp = 0x2000 + (unsigned)(s[2] - 0x80);
		return 3;
	}
	if (s[0] == 0xe2 && s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9) {
		*cp = 0x2040 + (unsigned)(s[2] - 0x80);
		return 3;
	}
	return 0;
}

/* dst (size bytes, NUL-terminated) becomes src with its control
 * characters and DEL escaped (a newline as the two characters \n, an ESC
 * as \x1b, a right-to-left override as \u202e): what a client sends (a
 * user name, a client id, a topic) cannot make a line of its own in the
 * log, nor change how one reads.  An escape that does not fit is left out
 * whole. */
void
log_escape(char *dst, size_t size, const char *src)
{
	size_t o = 0, k, n;
	unsigned cp;
	char e[8];

	for (; *src != '\0'; src += n) {
		if ((n = unicode_control((const unsigned char *)src, &cp)) != 0) {
			k = (size_t)snprintf(e, sizeof(e), "\\u%04x", cp);
		} else {
			n = 1;
			if ((k = escape_byte((unsigned char)*src, e)) == 0) {
				e[0] = *src;
				k = 1;
			}
		}
		if (o + k >= size)
			break;
		memcpy(dst + o, e, k);
		o += k;
	}
	dst[o] = '\0';
}

static void
vlog(enum log_level lvl, int with_errno, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };
	int saved = errno;
	char raw[2048], msg[2048], line[2300], stamp[40];
	bool to_stderr = (L.dests & LOG_DEST_STDERR) ||
	    (L.errors_to_stderr && lvl == LOG_LVL_ERR);
	struct timespec ts;
	struct tm tm;
	int n;

	if (lvl > L.level)
		return;
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	if (n >= 0 && with_errno && (size_t)n < sizeof(raw))
		snprintf(raw + n, sizeof(raw) - (size_t)n, ": %s", strerror(saved));
	if (n < 0)
		raw[0] = '\0';
	log_escape(msg, sizeof(msg), raw);
	if (L.dests & LOG_DEST_SYSLOG)
		syslog(prio[lvl], "%s: %s", level_names[lvl], msg);
	if (to_stderr || (L.dests & LOG_DEST_FILE)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld]: %s: %s\n", stamp,
			     ts.tv_nsec / 1000000, L.name, (long)getpid(), level_names[lvl], msg);
		if (n < 0)
			n = 0;
		if ((size_t)n >= sizeof(line))
			n = sizeof(line) - 1;
		if (to_stderr)
			(void)write_all(STDERR_FILENO, line, (size_t)n);	/* nowhere to report it */
		if ((L.dests & LOG_DEST_FILE) && L.fd != -1)
			(void)write_all(L.fd, line, (size_t)n);
	}
	errno = saved;
}

#define LOGFN(fn, lvl, with_errno)			\
	void fn(const char *fmt, ...)			\
	{						\
		va_list ap;				\
		va_start(ap, fmt);			\
		vlog(lvl, with_errno, fmt, ap);		\
		va_end(ap);				\
	}

LOGFN(log_err, LOG_LVL_ERR, 1)
LOGFN(log_errx, LOG_LVL_ERR, 0)
LOGFN(log_warn, LOG_LVL_WARN, 1)
LOGFN(log_warnx, LOG_LVL_WARN, 0)
LOGFN(log_notice, LOG_LVL_NOTICE, 0)
LOGFN(log_info, LOG_LVL_INFO, 0)
LOGFN(log_debug, LOG_LVL_DEBUG, 0)

void
log_at(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(lvl, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
