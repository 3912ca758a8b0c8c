/* options.c - reads every RACE_* variable from environ against common/options.def,
 * before main runs. Owns race_opt and the exact wording of option errors. Runs in the
 * constructor only: no malloc, no stdio (the allocator may not be usable yet). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

extern char **environ;

struct race_options race_opt = {
#define RACE_OPT(name, type, def, lo, hi, unit, check, help) .name = def,
#include "options.def"
#undef RACE_OPT
};

#define RACE_IS_int 1
#define RACE_IS_str 0
/* Validators of structured strings: 1 when the value is well-formed. */
int race_parse_sizes(const char *s, uint64_t *lo, uint64_t *hi)
{
    uint64_t v[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        if (*s < '0' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9') {
            v[k] = v[k] * 10 + (uint64_t)(*s++ - '0');
            if (v[k] > (1u << 20))
                return 0;
        }
        if (k == 0 && *s++ != '-')
            return 0;
    }
    if (*s || v[0] < 1 || v[0] > v[1])
        return 0;
    *lo = v[0];
    *hi = v[1];
    return 1;
}

static int check_sizes(const char *s)
{
    uint64_t lo, hi;
    return race_parse_sizes(s, &lo, &hi);
}

static int check_sites(const char *s)
{
    /* comma-separated C identifiers, none empty */
    int len = 0;
    for (;; s++) {
        if (*s == ',' || !*s) {
            if (!len)
                return 0;
            if (!*s)
                return 1;
            len = 0;
        } else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
                   (len && *s >= '0' && *s <= '9') || *s == '.' || *s == '@') {
            len++;
        } else {
            return 0;
        }
    }
}

static int check_watch(const char *s)
{
    return strcmp(s, "none") == 0 || check_sites(s);
}

static int check_paths(const char *s)
{
    /* ':'-separated, none empty */
    for (const char *p = s;; p++) {
        if ((*p == ':' || !*p) && (p == s || p[-1] == ':'))
            return 0;
        if (!*p)
            return 1;
    }
}

static int check_on_finding(const char *s)
{
    return strcmp(s, "abort") == 0 || strcmp(s, "continue") == 0;
}

static const struct opt_desc {
    const char *name;
    int is_int;
    int64_t lo, hi;
    const char *unit;
    int (*check)(const char *);
    void *slot;
} descs[] = {
#define RACE_OPT(name, type, def, lo, hi, unit, check, help) {#name, RACE_IS_##type, lo, hi, unit, check, &race_opt.name},
#include "options.def"
#undef RACE_OPT
};
#define NDESC (sizeof(descs) / sizeof(descs[0]))

static __attribute__((noreturn)) void bad(const char *var, const char *why, const struct opt_desc *d)
{
    char range[96] = "";
    if (d && d->is_int) {
        char n[24];
        size_t k = race_strlcpy(range, "; expected an integer in ", sizeof(range));
        race_fmt_u64(n, (uint64_t)d->lo);
        k += race_strlcpy(range + k, n, sizeof(range) - k);
        k += race_strlcpy(range + k, "..", sizeof(range) - k);
        race_fmt_u64(n, (uint64_t)d->hi);
        k += race_strlcpy(range + k, n, sizeof(range) - k);
        if (d->unit[0]) {
            k += race_strlcpy(range + k, " (", sizeof(range) - k);
            k += race_strlcpy(range + k, d->unit, sizeof(range) - k);
            race_strlcpy(range + k, ")", sizeof(range) - k);
        }
    } else if (d && d->check) {
        size_t k = race_strlcpy(range, "; expected ", sizeof(range));
        race_strlcpy(range + k, d->unit, sizeof(range) - k);
    } else if (d) {
        race_strlcpy(range, "; expected a non-empty path", sizeof(range));
    }
    race_notice(var, ": ", why, range);
    _exit(RACE_EXIT_BADOPT);
}

static int parse_int(const char *s, int64_t *out)
{
    int64_t v = 0;
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        if (v > (INT64_MAX - (*s - '0')) / 10)
            return 0;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 1;
}

void race_options_parse(void)
{
    for (char **e = environ; e && *e; e++) {
        const char *var = *e;
        if (strncmp(var, "RACE_", 5) != 0)
            continue;
        const char *eq = strchr(var, '=');
        if (!eq)
            continue;
        size_t nlen = (size_t)(eq - var);
        const struct opt_desc *d = NULL;
        for (size_t i = 0; i < NDESC; i++)
            if (strlen(descs[i].name) == nlen && memcmp(descs[i].name, var, nlen) == 0)
                d = &descs[i];
        if (!d)
            bad(var, "unknown option", NULL);
        const char *val = eq + 1;
        if (!d->is_int) {
            if (!*val)
                bad(var, "empty value", d);
            if (d->check && !d->check(val))
                bad(var, "malformed", d);
            *(const char **)d->slot = val;
            continue;
        }
        int64_t v;
        if (!parse_int(val, &v))
            bad(var, "not an integer", d);
        if (v < d->lo || v > d->hi)
            bad(var, "out of range", d);
        *(int64_t *)d->slot = v;
    }
}

/* "NAME=value\n" for every option in force, for the trace header. */
size_t race_options_format(char *buf, size_t cap)
{
    size_t k = 0;
    char n[24];
    for (size_t i = 0; i < NDESC && k + 1 < cap; i++) {
        k += race_strlcpy(buf + k, descs[i].name, cap - k);
        k += race_strlcpy(buf + k, "=", cap - k);
        if (descs[i].is_int) {
            race_fmt_u64(n, (uint64_t) * (int64_t *)descs[i].slot);
            k += race_strlcpy(buf + k, n, cap - k);
        } else {
            k += race_strlcpy(buf + k, *(const char **)descs[i].slot, cap - k);
        }
        k += race_strlcpy(buf + k, "\n", cap - k);
    }
    return k < cap ? k : cap - 1;
}
