/* Logging for operators: one line per event, with time, program, pid and
 * level.  log_warn() appends strerror(errno); log_warnx() does not
 * (OpenBSD style).  log_err()/log_errx() are for what stops the program,
 * such as a failed start-up: the line says what to do about it.
 * fatal()/fatalx() log at level error and exit(1). */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG };

#define LOG_DEST_STDERR 0x1
#define LOG_DEST_SYSLOG 0x2
#define LOG_DEST_FILE   0x4

/* name is the program name shown in every line ("broker", "topicd").
 * Returns 0, or -1 with errno if file cannot be opened: the file open
 * before, if any, stays in use, else nothing is logged to a file. */
int  log_init(const char *name, enum log_level level, int dests, const char *file);
/* Whether log_init() could open file (0), without creating it: -1 and
 * errno if not. */
int  log_file_check(const char *file);
/* Reopens the log file (after logrotate); returns -1 and logs on failure,
 * writing on to the file open before. */
int  log_reopen(void);
/* Gives the log file to uid (when root is dropped); -1 and errno. */
int  log_file_give(uid_t uid);
/* While on, errors are also written to stderr when it is not one of the
 * destinations: a program that is starting says why it could not start
 * where it was started from, whatever its log_dest. */
void log_errors_to_stderr(bool on);
void log_set_level(enum log_level level);
/* The destinations and file given to log_init() (a child logs likewise). */
int  log_get_dests(void);
const char *log_get_file(void);
/* Does this process log to these destinations and this file (NULL: none)? */
bool log_dests_are(int dests, const char *file);
enum log_level log_get_level(void);
/* Parses "error", "warning", "notice", "information", "debug"; -1 if unknown. */
int  log_level_parse(const char *s);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* dst (size bytes) becomes src with what a terminal would act on escaped,
 * as every log line is: control characters and DEL (\n, \x1b), the C1
 * controls, line separators and bidirectional controls (\u202e).  For
 * what else shows a client's text, such as a process title. */
void log_escape(char *dst, size_t size, const char *src);
/* At a level chosen at run time (a level past LOG_LVL_DEBUG is not logged). */
void log_at(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
