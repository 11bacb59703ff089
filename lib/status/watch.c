/*
 * status/watch.c -- a long-running command's status and metrics started
 * together, in the order their ends need (status/watch.h).
 */
#include <string.h>

#include "core/log.h"
#include "status/watch.h"

int
dp_watch_validate(struct dp_watch_opts *o, const char *const *topics, size_t ntopics)
{
	if (dp_status_validate(&o->status) < 0 || dp_obs_validate(&o->obs) < 0)
		return -1;
	for (size_t i = 0; i < ntopics && o->status.topic; i++)
		if (topics[i] && !strcmp(topics[i], o->status.topic)) {
			dp_err("--status-topic '%s' is a topic of the data: status records "
			       "would be mixed with it", o->status.topic);
			return -1;
		}
	return 0;
}

int
dp_watch_start(const struct dp_watch_opts *o, const struct dp_kafka_opts *kafka,
               const struct dp_fsm *main, const char *command, const char *links)
{
	struct dp_obs_opts obs = o->obs;

	/* Its failure is a warning of its own: the run goes on without a status. */
	(void)dp_status_start(&o->status, kafka, main);
	/* The status's counts, lag, data age and readiness are the metrics'. */
	obs.read_elsewhere = dp_status_wanted(&o->status);
	return dp_obs_start(&obs, command, links);
}
