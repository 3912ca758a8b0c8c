/* watch.h - what watch.c offers the checks built on it: registering for a function
 * name, finding every instance of a function in the loaded objects, installing a probe
 * with its record in the trace, and attaching a check to it. Start-up only, except the
 * accessors. watch.c knows no check by name: checks register themselves. */
#ifndef RACE_WATCH_H
#define RACE_WATCH_H

#include "debuginfo.h"
#include "probe.h"
#include "shim.h"

struct obj_instance {
    const char *path;              /* the object */
    uintptr_t bias;                /* its load bias */
    const struct race_instance *in;
    int index;                     /* which instance of the function */
};
struct race_watch_probe;
typedef void (*race_watch_check)(const struct race_regs *r, struct race_watch_probe *p);

int race_watch_instances(const char *name, void (*found)(const char *name, const struct obj_instance *oi, void *arg),
                         void *arg, char *why, size_t why_cap);
struct race_watch_probe *race_watch_install(const char *func, int role, int instance, uint64_t addr, uint64_t fn,
                                            uint64_t fn_size, const char *detail);
void race_watch_set_check(struct race_watch_probe *p, int greg, int disp, race_watch_check check);
uint64_t race_watch_reg(const struct race_regs *r, int greg);
const char *race_watch_chain(const struct race_watch_probe *p);
int race_watch_regno(const struct race_watch_probe *p);
int race_watch_disp(const struct race_watch_probe *p);

/* A check takes over the watch of one function: when RACE_WATCH names FUNC, install()
 * runs instead of the plain watch. It returns how many instances it probed, 0 with the
 * reason in why (a notice says so), or RACE_WATCH_NOT_HERE: the function cannot be in
 * this process (why says why; a notice only with RACE_VERBOSE). Register before
 * race_watch_init; returns 0, or -1 when the registry is full. */
#define RACE_WATCH_NOT_HERE (-1)
typedef int (*race_watch_installer)(const char *func, char *why, size_t why_cap);
int race_watch_register(const char *func, race_watch_installer install);

#endif
