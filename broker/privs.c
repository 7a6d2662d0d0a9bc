/* Privileges.  Started as root, the master binds its ports, then becomes
 * `user`: that user's uid, primary group and supplementary groups, for
 * good (real, effective and saved ids), before it opens its stores or
 * starts any topicd.  The data directory must belong to that user.
 * Started as anyone else, nothing changes; `user root` keeps root, which
 * is not advised.  Every refusal is one error line that says what to do. */
#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "xmalloc.h"

static void uid_name(uid_t uid, char *buf, size_t len);

/* Does the master change user, to whom?  1 with *pw, 0 (it stays who it
 * is, a warning says why when that is root), -1 with err set. */
static int
lookup_target(const struct settings *s, struct passwd **pw, char *err, size_t len,
    bool warn)
{
	if (geteuid() != 0)
		return 0;
	if (s->user == NULL || s->user[0] == '\0' || strcmp(s->user, "root") == 0) {
		if (warn)
			log_warnx("running as root: user is root, privileges are not dropped");
		return 0;
	}
	errno = 0;
	if ((*pw = getpwnam(s->user)) == NULL) {
		if (errno != 0 && errno != ENOENT && errno != ESRCH)
			snprintf(err, len, "cannot look up user %s: %s: check the user database "
			    "(getent passwd %s)", s->user, strerror(errno), s->user);
		else
			snprintf(err, len, "user %s does not exist: create it (for example useradd "
			    "--system --no-create-home %s) or name another one with the user "
			    "setting", s->user, s->user);
		return -1;
	}
	if ((*pw)->pw_uid == 0) {
		if (warn)
			log_warnx("running as root: user %s has uid 0, privileges are not dropped",
			    s->user);
		return 0;
	}
	return 1;
}

int
privs_target(const struct settings *s, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;
	char err[512];
	int rc = lookup_target(s, &pw, err, sizeof(err), true);

	if (rc == -1)
		log_errx("%s", err);
	if (rc == 1) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
	return rc;
}

int
privs_check_user(const struct settings *s, char *err, size_t len)
{
	struct passwd *pw;

	return lookup_target(s, &pw, err, len, false) == -1 ? -1 : 0;
}

/* As the user (privs_test_as): may it write in the directory arg? */
static int
dir_writable(const void *arg)
{
	return access(arg, W_OK | X_OK) == -1 ? errno : 0;
}

/* As the user: may it reach the directory arg (to use what root makes
 * in it)? */
static int
dir_searchable(const void *arg)
{
	return access(arg, X_OK) == -1 ? errno : 0;
}

int
privs_check_data_dir(const struct settings *s, const char *dir, char *err, size_t len)
{
	struct passwd *pw;
	struct stat st;
	char *copy, *parent, who[64];
	int drop = lookup_target(s, &pw, err, len, false), rc;

	if (drop == -1)
		return 0;		/* the user's own error is reported apart */
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, len, "data directory %s is not a directory: set data_dir", dir);
			return -1;
		}
		if (drop == 1 && st.st_uid != pw->pw_uid) {
			uid_name(st.st_uid, who, sizeof(who));
			snprintf(err, len, "data directory %s belongs to %s, not to user %s: give "
			    "it to %s (chown -R %s: %s) or set user", dir, who, s->user, s->user,
			    s->user, dir);
			return -1;
		}
		if ((rc = privs_test_as(s, dir_writable, dir)) > 0) {
			snprintf(err, len, "data directory %s is not writable%s%s: %s: let %s "
			    "write it, or set data_dir", dir, drop == 1 ? " by user " : "",
			    drop == 1 ? s->user : "", strerror(rc), drop == 1 ? "that user" :
			    "the broker");
			return -1;
		}
		return 0;
	}
	if (errno != ENOENT) {
		snprintf(err, len, "data directory %s: %s: check it, or set data_dir", dir,
		    strerror(errno));
		return -1;
	}
	/* The start makes it: as root for the user, who must reach it, or
	 * as itself. */
	copy = xstrdup(dir);
	parent = dirname(copy);
	rc = access(parent, drop == 1 ? F_OK : W_OK | X_OK) == -1 ? errno :
	    drop == 1 ? privs_test_as(s, dir_searchable, parent) : 0;
	if (rc > 0)
		snprintf(err, len, "cannot create data directory %s%s%s: %s: create it%s, or "
		    "set data_dir", dir, drop == 1 ? " for user " : "", drop == 1 ? s->user : "",
		    strerror(rc), drop == 1 ? " where that user can reach it" : "");
	free(copy);
	return rc > 0 ? -1 : 0;
}

int
privs_test_as(const struct settings *s, int (*fn)(const void *), const void *arg)
{
	struct passwd *pw;
	char err[512];
	pid_t pid;
	int status;

	if (lookup_target(s, &pw, err, sizeof(err), false) != 1)
		return fn(arg);		/* as itself (an unknown user is reported apart) */
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		if (initgroups(pw->pw_name, pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
		    setuid(pw->pw_uid) == -1)
			_exit(255);
		_exit(fn(arg) & 0xff);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 255)
		return -1;
	return WEXITSTATUS(status);
}

/* A uid for messages: "user broker (uid 1883)", or "uid 5000" when it has
 * no name (docker run --user with an id the image does not know). */
static void
describe_uid(uid_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL)
		snprintf(buf, len, "user %s (uid %ld)", pw->pw_name, (long)uid);
	else
		snprintf(buf, len, "uid %ld", (long)uid);
}

void
privs_log_cannot_create(const char *dir, uid_t uid, gid_t gid, int err)
{
	log_errx("cannot create data directory %s: %s: create it (mkdir -p %s && "
	    "chown %ld:%ld %s), or set data_dir", dir, strerror(err), dir, (long)uid,
	    (long)gid, dir);
}

/* How to make path (the data directory dir, or a file in it) writable by
 * this process, whose file it is not or whose mode forbids it. */
static void
log_not_ours(const char *dir, const char *path, const struct stat *st)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	char me[96], owner[96];

	describe_uid(uid, me, sizeof(me));
	describe_uid(st->st_uid, owner, sizeof(owner));
	if (st->st_uid == uid)
		log_errx("data directory %s is not writable by %s: %s has mode %04o: "
		    "chmod -R u+rwX %s", dir, me, path, (unsigned)(st->st_mode & 07777), dir);
	else if (st->st_uid == 0)
		log_errx("data directory %s is not writable by %s: %s belongs to root: "
		    "chown -R %ld:%ld %s", dir, me, path, (long)uid, (long)gid, dir);
	else
		log_errx("data directory %s is not writable by %s: %s belongs to %s: "
		    "chown -R %ld:%ld %s, or run the broker as its owner (docker run --user "
		    "%ld:%ld)", dir, me, path, owner, (long)uid, (long)gid, dir,
		    (long)st->st_uid, (long)st->st_gid);
}

void
privs_log_unwritable(const char *dir, const char *path, int err)
{
	struct stat st;

	if (err == EROFS) {
		log_errx("data directory %s is on a read-only file system: mount it "
		    "read-write, or set data_dir", dir);
		return;
	}
	if (err == EACCES || err == EPERM) {
		if (stat(path, &st) == 0) {
			log_not_ours(dir, path, &st);
			return;
		}
		if (stat(dir, &st) == 0) {
			log_not_ours(dir, dir, &st);
			return;
		}
	}
	log_errx("cannot write %s in data directory %s: %s: check the directory (free "
	    "space, permissions), or set data_dir", path, dir, strerror(err));
}

/* The name of a uid, for messages. */
static void
uid_name(uid_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "uid %ld", (long)uid);
}

/* A directory of the data directory must belong to the user; a missing
 * one is fine only if optional (it is created later, by the user). */
static int
check_owner(const char *path, const char *user, uid_t uid, const char *top, bool optional)
{
	char who[64];
	struct stat st;

	if (stat(path, &st) == -1) {
		if (errno == ENOENT && optional)
			return 0;
		log_errx("data directory %s: %s: check it, or set data_dir", path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_errx("data directory %s is not a directory: move it away, or set data_dir",
		    path);
		return -1;
	}
	if (st.st_uid != uid) {
		uid_name(st.st_uid, who, sizeof(who));
		log_errx("data directory %s belongs to %s, not to user %s: give it to %s "
		    "(chown -R %s: %s) or set user", path, who, user, user, user, top);
		return -1;
	}
	return 0;
}

int
privs_data_dir(const char *dir, const char *user, uid_t uid, gid_t gid)
{
	char *topics;
	int rc;

	if (mkdir(dir, 0750) == 0) {
		if (chown(dir, uid, gid) == -1) {
			log_errx("cannot give the new data directory %s to user %s: %s: "
			    "chown %s: %s", dir, user, strerror(errno), user, dir);
			return -1;
		}
		log_notice("created data directory %s for user %s", dir, user);
	} else if (errno != EEXIST) {
		privs_log_cannot_create(dir, uid, gid, errno);
		return -1;
	}
	if (check_owner(dir, user, uid, dir, false) == -1)
		return -1;
	xasprintf(&topics, "%s/topics", dir);
	rc = check_owner(topics, user, uid, dir, true);
	free(topics);
	return rc;
}

int
privs_drop(const char *user, uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (initgroups(user, gid) == -1 || setgid(gid) == -1 || setuid(uid) == -1) {
		log_errx("cannot become user %s (uid %ld, gid %ld): %s: grant the broker "
		    "CAP_SETUID and CAP_SETGID, or start it as that user", user, (long)uid,
		    (long)gid, strerror(errno));
		return -1;
	}
	if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1)
		fatal("getresuid");
	if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
		fatalx("user %s: the process ids did not all change", user);
	if (setuid(0) != -1 || setgid(0) != -1)
		fatalx("user %s: root could be regained after dropping it", user);
	log_notice("running as user %s (uid %ld, gid %ld)", user, (long)uid, (long)gid);
	return 0;
}
