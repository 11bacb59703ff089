/*
 * obs/metrics.h -- counters, gauges and histograms, and their Prometheus
 * text exposition.
 *
 * One registry per process (like every Prometheus client library): a
 * command's engines declare their families once (dp_metric_new), take a
 * labelled series of a family (dp_metric_series: "records out of topic
 * prices, partition 3") when the thing it counts appears, and add to it on
 * their hot path with one atomic operation (dp_series_add); nothing is
 * formatted until somebody asks (dp_metrics_write: the HTTP endpoint, the
 * textfile writer, the status topic).  A series whose thing went away (a
 * partition revoked) is dropped, so the exposition does not go on
 * reporting it.
 *
 * Format: "Exposition formats", text format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), and the
 * naming rules of https://prometheus.io/docs/practices/naming/ (base
 * units: seconds, bytes; counters end in _total).  Every series carries
 * the constant label command="dp-..." given to dp_metrics_init.
 *
 * Threads: everything here may be called from any thread.  Families and
 * series are never freed before dp_metrics_free (a dropped series is
 * unlinked and kept for late adders), so their pointers stay valid for
 * the life of the process; values are atomics.
 */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

enum dp_metric_type {
	DP_METRIC_COUNTER,      /* only goes up; name ends in _total */
	DP_METRIC_GAUGE,        /* goes up and down, or is set */
	DP_METRIC_HISTOGRAM,    /* observations counted into buckets */
};

struct dp_metric;               /* a family: name, help, type, label names */
struct dp_series;               /* one labelled series of a family */

/*
 * Start the registry for command (the constant label command="...",
 * borrowed: a string literal).  Until this is called every function
 * below does nothing and returns NULL: a command without --metrics pays
 * nothing but a branch.  0, or -1 when memory runs out.
 */
int dp_metrics_init(const char *command);

/* Whether dp_metrics_init was called. */
bool dp_metrics_on(void);

/* Free the registry and everything in it (at exit; nothing may use it after). */
void dp_metrics_free(void);

/*
 * Declare a family.  name and help are borrowed (string literals);
 * labels is a NULL-terminated list of label names (the list is copied,
 * the names are borrowed: string literals; NULL: none);
 * buckets (histograms only) are the upper bounds, ascending, n_buckets of
 * them (+Inf is added).  Declaring the same name twice returns the first;
 * with another type or other label names, NULL (a family has one shape).
 * NULL when the registry is off or memory runs out.
 */
struct dp_metric *dp_metric_new(const char *name, const char *help, enum dp_metric_type type,
                                const char *const *labels, const double *buckets,
                                size_t n_buckets);

/*
 * The series of m with these label values (as many as m has label names;
 * copied), made at 0 when new.  NULL when m is NULL or memory runs out:
 * every dp_series_* call accepts NULL, so a caller never checks.
 */
struct dp_series *dp_metric_series(struct dp_metric *m, const char *const *values);

/* The series of a family without labels (dp_metric_series(m, NULL)). */
struct dp_series *dp_metric_one(struct dp_metric *m);

/* Unlink s from the exposition (its thing went away); later adds are lost. */
void dp_series_drop(struct dp_series *s);

void dp_series_add(struct dp_series *s, double v);     /* counters, gauges */
void dp_series_set(struct dp_series *s, double v);     /* gauges */
void dp_series_observe(struct dp_series *s, double v); /* histograms */
double dp_series_get(const struct dp_series *s);       /* 0 for NULL; a histogram's count */

/*
 * Append the text exposition of every family with at least one series
 * to out.  0, or -1 when memory runs out (out then holds part of it).
 */
int dp_metrics_write(struct dp_buf *out);

#endif
