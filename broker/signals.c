/* Signals are events: TERM/INT stop, HUP reloads, USR1 logs status, CHLD
 * reaps; USR2 is not used, but does not kill the master either.  Nothing
 * is done in a handler. */
#include <signal.h>
#include <stdlib.h>

#include <event2/event.h>

#include "broker.h"
#include "clock.h"
#include "log.h"

static void
arm(struct broker *b, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (evtimer_add(b->stop_timer, &tv) == -1)
		fatalx("cannot arm the shutdown timer");
}

/* Second phase: clients are closed and every topicd is asked to sync and
 * exit; the loop ends when the last one is reaped. */
static void
stop_children(struct broker *b)
{
	b->stop_phase = 2;
	clients_close_all(b);
	children_stop_all(b);
	if (children_all_gone(b))
		event_base_loopexit(b->base, NULL);
	else
		arm(b, b->set.shutdown_timeout);
}

/* Phase 1 polls until every request in flight to a topicd is answered (so
 * that a publisher gets the PUBREC or PUBCOMP it is owed) or the deadline
 * passes; phase 2's deadline kills the topicds that are still there. */
static void
on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	(void)fd;
	(void)what;
	if (b->stop_phase == 2) {
		log_warnx("shutdown: topicds still running after %llu ms; killing them",
		    (unsigned long long)b->set.shutdown_timeout);
		children_kill_all(b);
		return;
	}
	if (children_pending(b) == 0 || mono_ms() >= b->stop_deadline) {
		if (children_pending(b) > 0)
			log_warnx("shutdown: %u requests still unanswered after %llu ms",
			    children_pending(b), (unsigned long long)b->set.shutdown_timeout);
		stop_children(b);
		return;
	}
	arm(b, 20);
}

void
broker_shutdown(struct broker *b)
{
	if (b->stopping) {
		log_notice("already shutting down");
		return;
	}
	b->stopping = true;
	notify_stopping();
	b->stop_phase = 1;
	b->stop_deadline = mono_ms() + (int64_t)b->set.shutdown_timeout;
	log_notice("shutting down: closing listeners, finishing requests of %u client%s",
	    b->nclients, b->nclients == 1 ? "" : "s");
	listeners_close(b);
	clients_stop_reading(b);
	b->stop_timer = evtimer_new(b->base, on_stop_timer, b);
	if (b->stop_timer == NULL)
		fatalx("cannot create the shutdown timer");
	arm(b, 0);
}

/* SIGHUP: the log file first (after logrotate moved it, everything from
 * the signal on goes to the new one), the configuration (a bad file
 * changes nothing) and the TLS listeners' files, then the failed
 * topics.  Nothing once the broker is shutting down. */
static void
reload(struct broker *b)
{
	bool acl_changed = false;
	int rc;

	if (b->stopping) {
		/* A reload would tell the service manager READY=1 after
		 * STOPPING=1, and restart the topicds being stopped. */
		log_info("SIGHUP received while shutting down: ignored");
		return;
	}
	notify_reloading();
	log_reopen();
	log_notice("SIGHUP received: reloading");
	if ((rc = broker_reload(b, &acl_changed)) == 0) {
		broker_apply_logging(b);
		broker_check_limits(b);
		listeners_reload_tls(b);
		children_config(b);
		/* After the new log settings, here and in the topicds (their
		 * CONFIG goes before what the ACL takes back): what it does is
		 * logged at the level the reload asked for. */
		if (acl_changed)
			sessions_acl_changed(b);
		sys_stop(b);		/* sys_interval may have changed */
		sys_start(b);
	}
	children_retry_failed(b);
	notify_ready(rc == 0 ? "configuration reloaded" :
	    "reload failed: the configuration has errors; running with the previous one");
	b->title_dirty = true;	/* the next tick puts the live state back */
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct broker *b = arg;

	(void)what;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_notice("%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		broker_shutdown(b);
		break;
	case SIGHUP:
		reload(b);
		break;
	case SIGUSR1:
		status_log(b);
		break;
	case SIGUSR2:
		log_notice("SIGUSR2 received: not used (SIGUSR1 logs the status)");
		break;
	case SIGCHLD:
		children_reap(b);
		break;
	}
}

void
signals_init(struct broker *b)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD };
	struct sigaction sa = { .sa_handler = SIG_IGN };

	_Static_assert(sizeof(sigs) / sizeof(sigs[0]) <=
	    sizeof(((struct broker *)0)->sigs) / sizeof(((struct broker *)0)->sigs[0]),
	    "struct broker has an event for every signal");
	/* Writes to a vanished peer return EPIPE instead. */
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		fatal("sigaction(SIGPIPE)");
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		b->sigs[i] = evsignal_new(b->base, sigs[i], on_signal, b);
		if (b->sigs[i] == NULL || evsignal_add(b->sigs[i], NULL) == -1)
			fatalx("cannot install the handler for signal %d", sigs[i]);
	}
}

void
signals_free(struct broker *b)
{
	for (size_t i = 0; i < sizeof(b->sigs) / sizeof(b->sigs[0]); i++)
		if (b->sigs[i] != NULL)
			event_free(b->sigs[i]);
}
