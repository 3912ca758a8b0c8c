/* check.h - the assertion of the C unit tests: CHECK(name, expr[, fmt, ...]) prints
 * "ok - NAME" or "not ok - NAME: why (file:line: expr)" as tests/lib.sh's scripts do,
 * and check_summary() ends the program with its summary line and exit status. For
 * test programs only: stdio, no signal safety. */
#ifndef RACE_TESTS_CHECK_H
#define RACE_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int check_fails;

__attribute__((format(printf, 5, 6))) static int check_report(int ok, const char *name, const char *expr,
                                                              const char *where, const char *fmt, ...)
{
    if (ok) {
        printf("ok - %s\n", name);
    } else {
        printf("not ok - %s", name);
        if (fmt[2]) {
            va_list ap;
            va_start(ap, fmt);
            vprintf(fmt, ap);
            va_end(ap);
        }
        printf(" (%s: %s)\n", where, expr);
        check_fails++;
    }
    fflush(stdout);
    return ok;
}

#define CHECK_STR2(x) #x
#define CHECK_STR(x) CHECK_STR2(x)
/* The optional message is a printf format and its arguments, put after ": " (a
 * literal that also keeps the format non-empty when there is no message). */
#define CHECK(name, expr, ...) \
    check_report(!!(expr), name, #expr, __FILE__ ":" CHECK_STR(__LINE__), ": " __VA_ARGS__)

/* "all passed" or "FAILED", and the exit status: 0, or 1 after any failure. */
static inline int check_summary(void)
{
    printf("%s\n", check_fails ? "FAILED" : "all passed");
    return check_fails ? 1 : 0;
}

#endif
