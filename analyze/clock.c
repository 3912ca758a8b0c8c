/* clock.c - turns a record's ts into nanoseconds since the trace started, per the
 * header's clock source (FORMAT.md, "Clock"). Owns the TSC calibration.
 * Must never: read the local machine's TSC or clocks (the trace may come from another
 * host), or fail: a trace that cannot be calibrated still gets times, with a note. */
#include <math.h>

#include "race.h"

/* Outside this band a "frequency" is a corrupt pair, not a CPU. */
#define MIN_NS_PER_TICK 0.01 /* 100 GHz */
#define MAX_NS_PER_TICK 100.0 /* 10 MHz */

void clock_init(struct race_timebase *c, const struct race_hdr *h)
{
    *c = (struct race_timebase){.source = h->clock, .mono0 = h->clock_mono0, .ns_per_tick = 1.0};
    if (h->clock_ts0)
        clock_add_pair(c, h->clock_ts0, h->clock_mono0);
    if (h->clock_ts1)
        clock_add_pair(c, h->clock_ts1, h->clock_mono1);
}

/* Only the extremes matter: the furthest-apart pairs divide the reading jitter of
 * rdtsc and clock_gettime by the longest interval. */
void clock_add_pair(struct race_timebase *c, uint64_t ts, uint64_t mono)
{
    if (c->npairs == 0 || ts < c->ts_lo) {
        c->ts_lo = ts;
        c->mono_lo = mono;
    }
    if (c->npairs == 0 || ts > c->ts_hi) {
        c->ts_hi = ts;
        c->mono_hi = mono;
    }
    c->npairs++;
}

void clock_finish(struct race_timebase *c, const struct race_trace *t)
{
    if (c->source == RACE_CLOCK_MONOTONIC) {
        c->calibrated = true;
        return;
    }
    if (c->source != RACE_CLOCK_TSC)
        return; /* the reader has reported the unknown source; show raw ticks */
    if (c->ts_hi > c->ts_lo && c->mono_hi > c->mono_lo) {
        double r = (double)(c->mono_hi - c->mono_lo) / (double)(c->ts_hi - c->ts_lo);
        if (r >= MIN_NS_PER_TICK && r <= MAX_NS_PER_TICK) {
            c->ns_per_tick = r;
            c->calibrated = true;
            return;
        }
    }
    /* A trace without events (a fork child that went straight to exec) has no time
     * to show: nothing to note. */
    if (t->n_valid || t->nfind)
        diag_note(t, "cannot calibrate the TSC from %u clock pair%s; times assume 1 GHz",
                  c->npairs, c->npairs == 1 ? "" : "s");
    c->ns_per_tick = 1.0;
    c->ts_lo = t->hdr.clock_ts0;
    c->mono_lo = t->hdr.clock_mono0;
}

int64_t clock_ns(const struct race_timebase *c, uint64_t ts)
{
    if (c->source == RACE_CLOCK_MONOTONIC)
        return (int64_t)(ts - c->mono0);
    if (c->source != RACE_CLOCK_TSC)
        return (int64_t)(ts - c->ts_lo);
    /* Signed differences: a corrupt ts may lie before the reference pair. */
    double ns = (double)(int64_t)(ts - c->ts_lo) * c->ns_per_tick
                + (double)(int64_t)(c->mono_lo - c->mono0);
    if (!(fabs(ns) < 9.0e18))
        return ns < 0 ? INT64_MIN : INT64_MAX;
    return (int64_t)llround(ns); /* 999.9999 ticks-worth is 1000 ns, not 999 */
}
