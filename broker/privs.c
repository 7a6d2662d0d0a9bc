/* Privileges.  Started as root, the master binds its ports, then becomes
 * `user`: that user's uid, primary group and supplementary groups, for
 * good (real, effective and saved ids), before it opens its stores or
 * starts any topicd.  The data directory must belong to that user.
 * Started as anyone else, nothing changes; `user root` keeps root, which
 * is not advised. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "xmalloc.h"

int
privs_target(const struct settings *s, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	if (s->user == NULL || s->user[0] == '\0' || strcmp(s->user, "root") == 0) {
		log_warnx("running as root: user is root, privileges are not dropped");
		return 0;
	}
	errno = 0;
	if ((pw = getpwnam(s->user)) == NULL) {
		if (errno != 0 && errno != ENOENT && errno != ESRCH)
			log_warn("cannot look up user %s", s->user);
		else
			log_warnx("user %s does not exist: create it (for example useradd "
			    "--system --no-create-home %s) or name another one with the user "
			    "setting", s->user, s->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_warnx("running as root: user %s has uid 0, privileges are not dropped",
		    s->user);
		return 0;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 1;
}

/* The name of a uid, for messages. */
static void
owner_name(uid_t uid, char *buf, size_t len)
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
		log_warn("data directory %s", path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_warnx("data directory %s is not a directory", path);
		return -1;
	}
	if (st.st_uid != uid) {
		owner_name(st.st_uid, who, sizeof(who));
		log_warnx("data directory %s belongs to %s, not to user %s: give it to %s "
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
			log_warn("cannot give the new data directory %s to user %s", dir, user);
			return -1;
		}
		log_notice("created data directory %s for user %s", dir, user);
	} else if (errno != EEXIST) {
		log_warn("cannot create data directory %s", dir);
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

	if (initgroups(user, gid) == -1) {
		log_warn("cannot set the groups of user %s", user);
		return -1;
	}
	if (setgid(gid) == -1) {
		log_warn("cannot change to group %ld", (long)gid);
		return -1;
	}
	if (setuid(uid) == -1) {
		log_warn("cannot change to user %s", user);
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
