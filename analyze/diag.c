/* diag.c - every message the analyzer prints on stderr about a trace, in one shape
 * ("race: FILE: ..."), and the count of problems that turns into exit status 2; also the
 * allocation wrappers, whose only failure mode is a message and exit 2; and the progress
 * line race run shows on a terminal.
 * Must never: print to stdout (that is the commands' output), or flood stderr: a
 * file with thousands of problems gets a bounded number of lines. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "race.h"

/* Enough to see what went wrong first; the counts in `race stats` say the rest. */
#define DIAG_MAX_LINES 12

void diag_problem(struct race_trace *t, const char *fmt, ...)
{
    va_list ap;
    if (t->problems == 0) {
        va_start(ap, fmt);
        vsnprintf(t->first_problem, sizeof t->first_problem, fmt, ap);
        va_end(ap);
    }
    t->problems++;
    if (t->problems > DIAG_MAX_LINES) {
        if (t->problems == DIAG_MAX_LINES + 1) {
            progress(NULL, 0, 0);
            fprintf(stderr, "race: %s: further problems not shown\n", t->path);
        }
        return;
    }
    progress(NULL, 0, 0);
    fprintf(stderr, "race: %s: ", t->path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void diag_note(const struct race_trace *t, const char *fmt, ...)
{
    va_list ap;
    progress(NULL, 0, 0);
    fprintf(stderr, "race: %s: note: ", t->path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void oom(void)
{
    fputs("race: out of memory\n", stderr);
    exit(RACE_EXIT_BADINPUT);
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        oom();
    size_t bytes = n * size;
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q)
        oom();
    return q;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        oom();
    return p;
}

static bool progress_on, progress_shown;

void progress_enable(bool on)
{
    progress(NULL, 0, 0);
    progress_on = on;
}

/* One line, rewritten in place; cleared before any other message so they never mix. */
void progress(const char *what, int i, int n)
{
    if (!progress_on)
        return;
    if (!what) {
        if (progress_shown)
            fputs("\r\033[K", stderr);
        progress_shown = false;
        return;
    }
    fprintf(stderr, "\r\033[Krace: %s %d/%d", what, i, n);
    fflush(stderr);
    progress_shown = true;
}
