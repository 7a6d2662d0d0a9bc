/* The daemon: the master's command line, configuration, signals,
 * privileges, listeners, status and its life (start-up, the loop,
 * shutdown).  It calls the protocols (broker/mqtt, broker/json) and the
 * core (broker/core); nothing calls it. */
#ifndef BROKER_BROKER_H
#define BROKER_BROKER_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/core.h"
#include "json/json.h"
#include "mqtt/mqtt.h"
#include "core/settings.h"

/* run.c */
int	 broker_run(struct broker *b);
void	 broker_title(struct broker *b);
/* signals.c */
void	 signals_init(struct broker *b);
void	 signals_free(struct broker *b);
void	 broker_shutdown(struct broker *b);
/* config.c */
/* How broker_load_settings() reports a bad configuration: printed (-T;
 * -t, which also checks what the start would find: broker_check_host),
 * logged as errors (start-up: the broker does not start), logged as
 * warnings (SIGHUP: the running configuration stays). */
enum settings_report { SETTINGS_PRINT, SETTINGS_CHECK, SETTINGS_LOG_ERRORS,
	SETTINGS_LOG_WARNINGS };
/* auth (NULL: not loaded) gets the files the settings name: their
 * errors are errors of the configuration. */
int	 broker_load_settings(struct broker *b, struct settings *s, struct auth *auth,
	    enum settings_report how);
/* *acl_changed: the online sessions are to be brought in line
 * (sessions_acl_changed), which the caller does once the new logging and
 * the topicds' settings apply. */
int	 broker_reload(struct broker *b, bool *acl_changed);
/* Start-up: logging as the settings say; -1 (logged, on stderr too) if
 * the log file cannot be opened. */
int	 broker_start_logging(struct broker *b);
/* Reload: the same; a log file that cannot be opened is a warning, and
 * the one open before stays in use. */
void	 broker_apply_logging(struct broker *b);
/* "WHERE: cannot open log file PATH: reason: what to do" (err: errno). */
void	 broker_log_file_error(char *buf, size_t len, const char *where, const char *path,
	    int err);
void	 broker_resolve_paths(struct settings *s);
char	*broker_absolute(const char *path);
void	 broker_dump_settings(const struct settings *s);
/* check.c: -t, what the start would find on this host: the user, the
 * listeners' addresses, the log file.  given: where each key of
 * settings_table was given (broker_load_settings). */
void	 broker_check_host(const struct broker *b, const struct settings *s,
	    char *const *given, struct conf_errors *errs);
/* access.c: the struct auth of the settings */
bool	 settings_loopback_only(const struct settings *s);
int	 broker_load_auth(const struct settings *s, struct auth *a, struct conf_errors *errs);
int	 broker_load_listener_auth(const struct settings *s, const struct listener_conf *c,
	    struct auth *a, bool checked, struct conf_errors *errs);
void	 broker_log_auth(const struct broker *b);
/* Did the ACL change? */
bool	 broker_reload_auth(struct broker *b);
/* limits.c: warns when the open-file limit or vm.max_map_count is short
 * of what the settings may need (the soft open-file limit raised first) */
void	 broker_check_limits(const struct broker *b);
/* listen.c */
int	 listeners_open(struct broker *b);
/* Shutdown: stop accepting; listeners_free once no client is left. */
void	 listeners_close(struct broker *b);
void	 listeners_free(struct broker *b);
void	 listeners_reload_tls(struct broker *b);
/* -t: every TLS listener's files load; each that does not is an error
 * at its block's line.  Returns their number. */
int	 listeners_check_tls(const struct settings *s, struct conf_errors *errs);
void	 listeners_ports(const struct broker *b, char *buf, size_t len);
/* tlsctx.c: the TLS context of a listener block; NULL with err set to
 * "KEY FILE: reason" if it cannot be made. */
struct ssl_ctx_st *tls_context_new(const struct listener_conf *l, char *err, size_t len);
/* Whether the block's context can be made (a plain block's can). */
bool	 tls_context_loads(const struct listener_conf *l, char *err, size_t len);
/* Its certificate's name, serial and end (and the hint of its pre-shared
 * keys); true if the certificate has expired. */
bool	 tls_context_describe(struct ssl_ctx_st *ctx, const struct listener_conf *l,
	    char *buf, size_t len);
/* status.c */
void	 status_log(struct broker *b);

/* privs.c: started as root, become `user` once the ports are bound */
/* 1: the master is to become uid/gid; 0: it stays who it is; -1: error (logged) */
int	 privs_target(const struct settings *s, uid_t *uid, gid_t *gid);
/* -t: would privs_target() find the user?  0, or -1 with err set (what
 * it would log). */
int	 privs_check_user(const struct settings *s, char *err, size_t len);
/* -t: fn(arg) run as the user the master would become (in a child
 * process when that is another user): its result, an errno value or 0;
 * -1 if it could not be run. */
int	 privs_test_as(const struct settings *s, int (*fn)(const void *), const void *arg);
/* -t: would the start find or create the data directory dir, the user's?
 * 0, or -1 with err set (what it would log). */
int	 privs_check_data_dir(const struct settings *s, const char *dir, char *err,
	    size_t len);
/* Creates the data directory for the user, or checks that it is the user's. */
int	 privs_data_dir(const char *dir, const char *user, uid_t uid, gid_t gid);
int	 privs_drop(const char *user, uid_t uid, gid_t gid);
/* Error lines that say what to do: the data directory dir cannot be
 * created for uid:gid; path (dir, or a file in it) cannot be written by
 * this process (err is the errno of the attempt). */
void	 privs_log_cannot_create(const char *dir, uid_t uid, gid_t gid, int err);
void	 privs_log_unwritable(const char *dir, const char *path, int err);

/* notify.c: sd_notify(3) for a systemd unit of Type=notify */
void	 notify_ready(const char *status);
void	 notify_reloading(void);
void	 notify_stopping(void);
void	 notify_status(const char *status);

#endif
