/* main.c - the `race` command line: dispatch to the commands, help, version, usage
 * errors and the documented exit statuses.
 * Must never: read a trace itself (the commands do, through the reader), or let a usage
 * error exit with anything but 64 and the one-line message plus "Try 'race --help'.". */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "race.h"

static const char general_help[] =
    "Usage: race COMMAND [OPTION]... TRACE...\n"
    "Reads, offline, the trace files that librace.so writes (one per process,\n"
    "RACE_DIR/race.<exe>.<pid>.trace) and prints what they hold.\n"
    "\n"
    "Commands:\n"
    "  stats [--json] TRACE...            what each trace holds: process, options,\n"
    "                                     events by kind, entry point, Ractor and\n"
    "                                     thread, damage, time span, stacks,\n"
    "                                     watched functions and their probes\n"
    "  dump [--json] [--stacks] TRACE...  every event, one per line, in time order\n"
    "  report [--json] [--sarif[=FILE]] [--html FILE] TRACE...\n"
    "                                     the findings (use after free, overflow, double\n"
    "                                     free...) shaped like ASan's reports, then a\n"
    "                                     summary of each trace; --last MS: also every\n"
    "                                     event of the MS ms before the crash\n"
    "  run [OPTION]... -- COMMAND [ARG]... run COMMAND under librace.so (every\n"
    "                                     process it starts), then report on all\n"
    "                                     its traces; see race run --help\n"
    "  hunt [OPTION]... -- COMMAND [ARG]... run COMMAND under race run again and\n"
    "                                     again, guarding what each crash points\n"
    "                                     at, until a finding is confirmed; see\n"
    "                                     race hunt --help\n"
    "  help [COMMAND]                     this text, or one command's\n"
    "\n"
    "Options:\n"
    "  --json        JSON output (dump: JSON Lines, one event per line)\n"
    "  --stacks      dump: the symbolized free stack under each event\n"
    "  -h, --help    show help and exit\n"
    "  --version     show the version and the trace format it reads, and exit\n"
    "\n"
    "Exit status:\n"
    "  0   success\n"
    "  1   findings were reported (report)\n"
    "  2   a trace is unreadable, corrupt or truncated (2 wins over 1); whatever\n"
    "      could be read is still shown, and stderr names the file and the byte\n"
    "      offset of the problem\n"
    "  64  usage error\n";

struct command {
    const char *name;
    bool stacks_ok;
    const char *help;
};

static const struct command commands[] = {
    {"stats", false,
     "Usage: race stats [--json] TRACE...\n"
     "For each trace: the process (exe, pid, parent, command line, Ruby version,\n"
     "Ractor-id state, options in force, whether it exited cleanly); events by kind,\n"
     "entry point, Ractor id and thread id; valid, torn and corrupt record counts;\n"
     "records overwritten and events dropped; the time span of the surviving records;\n"
     "stack ids referenced, unique stacks in the depot, stacks not stored; crash\n"
     "records (the process's crashes, signals raised while one was handled); each\n"
     "watched function: its probes by kind and role, their hits, its events still in\n"
     "the ring, and why a probe was refused.\n"
     "\n"
     "  --json      one JSON document: {\"traces\": [ ... ]}\n"
     "  -h, --help  show this help and exit\n"
     "\n"
     "Exit status: 0 ok, 2 a trace is unreadable, corrupt or truncated, 64 usage error.\n"},
    {"dump", true,
     "Usage: race dump [--json] [--stacks] TRACE...\n"
     "Every valid event, one per line, sorted by time: time in microseconds since the\n"
     "trace started, thread id, Ractor id, per-thread sequence number, kind, entry\n"
     "point, address, size, aux (the new address for a moving realloc), stack id.\n"
     "A watched function's events (enter, exit, hit) show its name and the probe's\n"
     "role instead of an entry point; address is the probe's, size and aux the first\n"
     "two arguments (enter), the return value (exit) or the value checked (hit).\n"
     "Crash records (a fatal signal the shim saw before the program's handler) take\n"
     "their place in time as kind \"crash\": signal/si_code, fault address, pc (JSON:\n"
     "every register too), and which crash a later signal was raised while handling.\n"
     "\n"
     "  --json      JSON Lines: one object per event\n"
     "  --stacks    the free stack under each event, symbolized offline from the\n"
     "              trace's module map (function, file:line, else module+offset)\n"
     "  -h, --help  show this help and exit\n"
     "\n"
     "Exit status: 0 ok, 2 a trace is unreadable, corrupt or truncated, 64 usage error.\n"},
    {"report", false,
     "Usage: race report [--json] [--sarif[=FILE] [--source-root DIR]]\n"
     "                   [--html FILE [--window MS]] [--last MS] TRACE...\n"
     "Every finding the detectors recorded (use after free, buffer overflow, double\n"
     "and invalid free, write after free, stale call-info), shaped like an\n"
     "AddressSanitizer report: the access, by which thread and Ractor, its stack;\n"
     "where in the block; who freed it, how, when and where; who allocated it. Stacks\n"
     "are symbolized offline from each trace's module map. Then a summary of each\n"
     "trace, and the number of findings.\n"
     "A process that crashed (a fatal signal the recorder saw) is explained from its\n"
     "recorded frees: the block the faulting operand, the fault address or a register\n"
     "points into, who freed it, when (docs/crash.md). Such a crash-after-free counts as\n"
     "a finding, shown after the others; a crash no recorded free explains is shown and\n"
     "does not count.\n"
     "\n"
     "  --json      one JSON document: {\"findings\": [...], \"crashes\": [...],\n"
     "              \"nfindings\": N, \"traces\": [...]}\n"
     "  --sarif[=FILE]  SARIF 2.1.0 for code scanning, one result per group of\n"
     "              findings; without FILE on stdout instead of the report (FILE may\n"
     "              also follow as the next argument if it ends in .sarif or .json)\n"
     "  --source-root DIR  SARIF: source paths relative to DIR (the repository root)\n"
     "  --html FILE a self-contained timeline page: per trace with findings or\n"
     "              crashes, a lane per Ractor and thread, its frees, guarded\n"
     "              allocations and probe hits, each finding's free and use, each\n"
     "              crash; click an event for its stacks\n"
     "  --window MS the timeline's stretch, the last MS milliseconds of each trace\n"
     "              (default 50; extended back to each finding's free)\n"
     "  --last MS   for each trace, also every event of every thread and Ractor\n"
     "              (frees, guarded allocations, watched functions' events) and\n"
     "              finding in the last MS milliseconds (e.g. 5, 0.5) before the\n"
     "              process's crash (its first crash record), or before its last\n"
     "              event when it did not crash: in time order, each with its\n"
     "              thread/Ractor lane, ending with the crash and its stack (text\n"
     "              only; race dump --json has every event and crash record)\n"
     "  -h, --help  show this help and exit\n"
     "\n"
     "Exit status: 0 no findings, 1 findings, 2 a trace is unreadable, corrupt or\n"
     "truncated, or an output file cannot be written (2 wins over 1), 64 usage error.\n"},
    {"help", false,
     "Usage: race help [COMMAND]\n"
     "Show the general help, or COMMAND's.\n"},
};

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int usage_error(const char *who, const char *fmt, ...) RACE_PRINTF(2, 3);
static int usage_error(const char *who, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", who);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    /* race run has its own help (its many recorder options); the rest share race's */
    fprintf(stderr, "\nTry '%s --help'.\n", strcmp(who, "race run") == 0 ? who : "race");
    return RACE_EXIT_USAGE;
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int help(int argc, char **argv)
{
    if (argc == 0) {
        fputs(general_help, stdout);
        return RACE_EXIT_OK;
    }
    if (is_help(argv[0])) {
        fputs(find_command("help")->help, stdout);
        return RACE_EXIT_OK;
    }
    if (argc > 1)
        return usage_error("race help", "too many arguments");
    if (strcmp(argv[0], "run") == 0 || strcmp(argv[0], "hunt") == 0) {
        char *h[] = {(char *)"--help", NULL};
        return argv[0][0] == 'r' ? cmd_run(1, h) : cmd_hunt(1, h);
    }
    const struct command *c = find_command(argv[0]);
    if (!c)
        return usage_error("race help", "unknown command '%s'", argv[0]);
    fputs(c->help, stdout);
    return RACE_EXIT_OK;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

/* The report's output options, shared by race report and race run (which reports at the
 * end): --sarif, --source-root, --html, --window, --last. 1 consumed (and *i moved past
 * its value), 0 not one of them, -1 a usage error (already printed). */
int report_option(const char *who, int argc, char **argv, int *i, struct report_outputs *o)
{
    const char *a = argv[*i], *eq = strchr(a, '=');
    size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
    const char *name = NULL, *val = eq ? eq + 1 : NULL;
    static const char *const names[] = {"--sarif", "--html", "--window", "--source-root", "--last"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strlen(names[k]) == nlen && strncmp(a, names[k], nlen) == 0)
            name = names[k];
    if (!name)
        return 0;
    if (strcmp(name, "--sarif") == 0) {
        if (!val && *i + 1 < argc && (ends_with(argv[*i + 1], ".sarif") ||
                                       ends_with(argv[*i + 1], ".json") || strcmp(argv[*i + 1], "-") == 0))
            val = argv[++*i];
        o->sarif = val && *val ? val : "-";
        return 1;
    }
    if (!val) {
        if (*i + 1 >= argc) {
            usage_error(who, "option '%s' needs a value", name);
            return -1;
        }
        val = argv[++*i];
    }
    if (strcmp(name, "--last") == 0) {
        if (!last_parse(val, &report_last_ms)) {
            usage_error(who, "--last wants milliseconds > 0 (e.g. 5 or 0.5), not '%s'", val);
            return -1;
        }
    } else if (strcmp(name, "--html") == 0) {
        o->html = val;
    } else if (strcmp(name, "--source-root") == 0) {
        o->source_root = val;
    } else {
        char *end;
        double ms = strtod(val, &end);
        if (end == val || *end || !(ms > 0 && ms <= 1e9)) {
            usage_error(who, "--window %s: expected milliseconds, more than 0", val);
            return -1;
        }
        o->window_ms = ms;
    }
    return 1;
}

/* Output options that cannot go together with --json: 0, or the usage error's status. */
int report_options_check(const char *who, bool json, const struct report_outputs *o)
{
    if (json && report_last_ms > 0)
        return usage_error(who, "--last prints text; race dump --json has every event and crash record");
    if (json && o->sarif && strcmp(o->sarif, "-") == 0)
        return usage_error(who, "--json and --sarif both want %s: give --sarif a FILE",
                           strcmp(who, "race run") == 0 ? "the report's stream (stderr)" : "stdout");
    return 0;
}

static int run(const struct command *c, int argc, char **argv)
{
    char who[32];
    snprintf(who, sizeof who, "race %s", c->name);
    /* --help anywhere before "--" wins over everything else, errors included. */
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (is_help(argv[i])) {
            fputs(c->help, stdout);
            return RACE_EXIT_OK;
        }
    bool json = false, stacks = false, options = true;
    char **files = xcalloc((size_t)argc + 1, sizeof *files);
    int nfiles = 0;
    struct report_outputs outs = {.window_ms = 50};
    bool report = strcmp(c->name, "report") == 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int r = options && report ? report_option(who, argc, argv, &i, &outs) : 0;
        if (r < 0) {
            free(files);
            return RACE_EXIT_USAGE;
        } else if (r) {
            continue;
        } else if (options && strcmp(a, "--") == 0) {
            options = false;
        } else if (options && strcmp(a, "--json") == 0) {
            json = true;
        } else if (options && c->stacks_ok && strcmp(a, "--stacks") == 0) {
            stacks = true;
        } else if (options && a[0] == '-' && a[1]) {
            free(files);
            return usage_error(who, "unknown option '%s'", a);
        } else {
            files[nfiles++] = argv[i];
        }
    }
    int status;
    if (nfiles == 0)
        status = usage_error(who, "no trace file given");
    else if ((status = report_options_check(who, json, &outs)) != 0)
        ;
    else if (strcmp(c->name, "stats") == 0)
        status = cmd_stats(files, nfiles, json);
    else if (strcmp(c->name, "dump") == 0)
        status = cmd_dump(files, nfiles, json, stacks);
    else {
        report_set_outputs(&outs);
        status = cmd_report(files, nfiles, json, NULL);
    }
    free(files);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("race", "no command given");
    const char *a = argv[1];
    if (is_help(a)) {
        fputs(general_help, stdout);
        return RACE_EXIT_OK;
    }
    if (strcmp(a, "--version") == 0) {
        printf("race %s (reads trace format version %u)\n", RACE_VERSION_STRING,
               RACE_TRACE_VERSION);
        return RACE_EXIT_OK;
    }
    if (strcmp(a, "help") == 0)
        return help(argc - 2, argv + 2);
    if (strcmp(a, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(a, "hunt") == 0)
        return cmd_hunt(argc - 2, argv + 2);
    if (a[0] == '-')
        return usage_error("race", "unknown option '%s'", a);
    const struct command *c = find_command(a);
    if (!c)
        return usage_error("race", "unknown command '%s'", a);
    int status = run(c, argc - 2, argv + 2);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        /* A full disk or closed pipe must not pass for a complete answer. */
        fputs("race: error writing output\n", stderr);
        if (status == RACE_EXIT_OK)
            status = RACE_EXIT_BADINPUT;
    }
    return status;
}
