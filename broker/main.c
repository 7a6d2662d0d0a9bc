/* broker: the master process.  Parse the command line, load the
 * configuration, hand off to broker_run(). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/unistd.h>

#include "broker.h"
#include "log.h"
#include "xmalloc.h"

extern char **environ;

/* Asked for (-h, --help): on stdout, status 0; else a mistake: on
 * stderr, status 2. */
static void __attribute__((noreturn))
usage(bool asked)
{
	fprintf(asked ? stdout : stderr,
	    "usage: broker [-dTtVv] [-c FILE] [-D DATADIR] [-b ADDR] [-p MQTT_PORT]\n"
	    "              [-J CONSUMER_PORT:PUBLISHER_PORT]\n"
	    "       broker -h | --help | -V | --version\n"
	    "See broker(8) and broker.conf(5).\n");
	exit(asked ? 0 : 2);
}

/* -t: checked (broker_load_settings), say so; -T: print the
 * configuration. */
static int
test_settings(struct broker *b, bool dump)
{
	if (dump)
		broker_dump_settings(&b->set);
	else
		printf("%s: configuration ok\n", b->conf_path ? b->conf_path : "(built-in defaults)");
	settings_free(&b->set);
	auth_free(&b->auth);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		perror("broker: stdout");
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct broker b;
	bool test_only = false, dump = false;
	int ch, rc;

	memset(&b, 0, sizeof(b));
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};

	while ((ch = getopt_long(argc, argv, "c:D:b:p:J:dTtVvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': b.conf_path = xstrdup(optarg); break;
		case 'D': b.opt_data_dir = xstrdup(optarg); break;
		case 'b': b.opt_bind = xstrdup(optarg); break;
		case 'p': b.opt_mqtt_port = xstrdup(optarg); break;
		case 'J': b.opt_json_ports = xstrdup(optarg); break;
		case 'd': b.daemonize = true; break;
		case 'T': dump = test_only = true; break;
		case 't': test_only = true; break;
		case 'V': printf("broker %s\n", BROKER_VERSION); return 0;
		case 'v': b.verbose = true; break;
		case 'h': usage(true);
		default: usage(false);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "broker: unexpected argument '%s'\n", argv[optind]);
		usage(false);
	}
	setproctitle_init(argc, argv, environ);
	if (xmalloc_keep_freed() == -1)
		log_debug("the allocator keeps its own thresholds");
	log_init("broker", b.verbose ? LOG_LVL_DEBUG : LOG_LVL_NOTICE, LOG_DEST_STDERR, NULL);
	log_errors_to_stderr(true);	/* until started (broker_run) */
	if (broker_load_settings(&b, &b.set, &b.auth,
	    dump ? SETTINGS_PRINT : test_only ? SETTINGS_CHECK : SETTINGS_LOG_ERRORS) == -1)
		rc = 2;
	else if (test_only)
		rc = test_settings(&b, dump);
	else {
		broker_resolve_paths(&b.set);
		if (broker_start_logging(&b) == 0) {
			rc = broker_run(&b);
		} else {		/* nothing could be logged: not started */
			rc = 1;
			settings_free(&b.set);
			auth_free(&b.auth);
		}
	}
	free(b.conf_path);
	free(b.opt_data_dir);
	free(b.opt_bind);
	free(b.opt_mqtt_port);
	free(b.opt_json_ports);
	return rc;
}
