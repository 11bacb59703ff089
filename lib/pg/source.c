/*
 * pg/source.c -- a sink's record sources (pg/source.h): the calls, each
 * passed to the input's own operation.
 */
#include <stddef.h>

#include "pg/source.h"

int
dp_source_connect(struct dp_source *s, struct dp_pgsink *sink, struct dp_buf *err)
{
	s->sink = sink;
	return s->ops->connect ? s->ops->connect(s, err) : 0;
}

bool
dp_source_resyncs(const struct dp_source *s)
{
	return s->ops->resync != NULL;
}

enum dp_source_event
dp_source_wait(struct dp_source *s, void (*tick)(void *), void *arg, int *status)
{
	*status = 0;
	return s->ops->wait(s, tick, arg, status);
}

bool
dp_source_ended(const struct dp_source *s)
{
	return s->ended;
}

void
dp_source_stop(struct dp_source *s)
{
	s->ended = true;
	if (s->ops->stop)
		s->ops->stop(s);
}

void
dp_source_pause(struct dp_source *s)
{
	if (s->ops->pause)
		s->ops->pause(s);
}

enum dp_source_idle_result
dp_source_idle(struct dp_source *s, int64_t ms, struct dp_buf *err, int *status)
{
	*status = 0;
	return s->ops->idle ? s->ops->idle(s, ms, err, status) : DP_SOURCE_IDLE_OK;
}

int
dp_source_resume(struct dp_source *s, struct dp_buf *err)
{
	return s->ops->resume ? s->ops->resume(s, err) : 0;
}

int
dp_source_failure(struct dp_source *s, struct dp_buf *err)
{
	return s->ops->failure ? s->ops->failure(s, err) : 0;
}

int
dp_source_resync(struct dp_source *s)
{
	return s->ops->resync ? s->ops->resync(s) : 0;
}

void
dp_source_commit(struct dp_source *s, bool wait)
{
	if (s->ops->commit)
		s->ops->commit(s, wait);
}

int
dp_source_assigned(struct dp_source *s)
{
	return s->ops->assigned ? s->ops->assigned(s) : 0;
}

int
dp_source_revoked(struct dp_source *s, bool finish)
{
	return s->ops->revoked ? s->ops->revoked(s, finish) : 0;
}

int64_t
dp_source_lag(const struct dp_source *s)
{
	return s->ops->lag ? s->ops->lag(s) : -1;
}

void
dp_source_close(struct dp_source *s)
{
	if (s->ops->close)
		s->ops->close(s);
}

const char *
dp_source_unit(const struct dp_source *s)
{
	return s->ops->unit;
}

void
dp_source_say_unwritten(const struct dp_source *s, struct dp_buf *out)
{
	if (s->ops->say_unwritten)
		s->ops->say_unwritten(s, out);
}

void
dp_source_say_written(const struct dp_source *s, struct dp_buf *out)
{
	if (s->ops->say_written)
		s->ops->say_written(s, out);
}

bool
dp_source_interrupted(struct dp_source *s, int status, uint64_t rows, struct dp_buf *said,
                      struct dp_source_left *left)
{
	*left = (struct dp_source_left){ NULL, 0, 0, -1 };
	return s->ops->interrupted ? s->ops->interrupted(s, status, rows, said, left) : true;
}

void
dp_source_free(struct dp_source *s)
{
	if (s)
		s->ops->free(s);
}
