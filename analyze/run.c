/* run.c - `race run [OPTION]... -- COMMAND [ARG]...`: start a program under librace.so
 * the way heaptrack or valgrind start one, then report on every trace it left.
 * Owns: finding librace.so, turning command-line options into RACE_* variables (the
 * names come from common/options.def, the table the shim parses with: the shim alone
 * validates the values), the trace directory, waiting for the command while passing
 * on the signals meant for it, and the exit status.
 * Must never: validate a RACE_* value itself (a second parser would drift from the
 * shim's), or hide the command's own exit status when there is nothing to report. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include "race.h"

struct shim_opt {
    const char *name, *def, *unit, *help;
};
#define RACE_OPT(name, type, def, lo, hi, unit, check, help) {#name, #def, unit, help},
static const struct shim_opt shim_opts[] = {
#include "options.def"
};
#undef RACE_OPT
#define NSHIM (sizeof shim_opts / sizeof shim_opts[0])

/* race run's own statuses (besides the command's own, and 64 for usage). */
enum {
    RUN_EXIT_FINDINGS_DEFAULT = 66,
    RUN_EXIT_NOSHIM = 69,    /* librace.so not found */
    RUN_EXIT_CANTCREAT = 73, /* the trace directory cannot be made */
    RUN_EXIT_NOEXEC = 126,
    RUN_EXIT_NOTFOUND = 127,
};

static const char run_help_head[] =
    "Usage: race run [OPTION]... [--] COMMAND [ARG]...\n"
    "Runs COMMAND with librace.so preloaded, following every process it starts\n"
    "(fork and exec) into its own trace, then prints the report over all of them on\n"
    "stderr. The command's stdin, stdout and stderr are its own.\n"
    "\n"
    "Options of race run:\n"
    "  -d, --dir DIR          put the traces in DIR (created if missing); default: a\n"
    "                         new directory race.<command>.<pid> here\n"
    "      --json             the report as JSON (as `race report --json`)\n"
    "      --sarif[=FILE]     also SARIF 2.1.0 for code scanning in FILE (as `race\n"
    "                         report --sarif`); without FILE instead of the report\n"
    "      --source-root DIR  SARIF: source paths relative to DIR\n"
    "      --html FILE        also the timeline page in FILE (as `race report --html`)\n"
    "      --window MS        the page's stretch of each trace (default 50)\n"
    "      --last MS          the report also shows every event of the last MS ms\n"
    "                         before each process's crash (as `race report --last`)\n"
    "      --no-report        only record; `race report DIR/*.trace` reads them later\n"
    "                         (every trace is kept)\n"
    "      --keep=WHAT        findings (default): once a process has ended, its trace is\n"
    "                         removed unless it holds findings, crashes or damage (one\n"
    "                         line at the end says how many and their size); all: keep\n"
    "                         every trace\n"
    "      --error-exitcode=N exit with N when there are findings (default 66; 0: keep\n"
    "                         the command's status)\n"
    "      --library PATH     librace.so to preload (default: next to this race, in-tree\n"
    "                         ../shim/librace.so or installed ../lib/race/librace.so)\n"
    "  -h, --help             show this help and exit\n"
    "\n"
    "Options of the recorder (each sets the RACE_* variable of the same name; the\n"
    "recorder checks the value and stops the command with status 98 if it is bad):\n";

static const char run_help_tail[] =
    "\n"
    "Exit status: the command's (128+N when signal N killed it), except:\n"
    "  66   there were findings (--error-exitcode changes it)\n"
    "  64   usage error\n"
    "  69   librace.so not found\n"
    "  73   the trace directory cannot be created\n"
    "  126  COMMAND cannot be executed; 127 COMMAND not found\n"
    "  98/99 come from the recorder: a bad RACE_* value; a trace file it cannot create\n"
    "The report's own problems (a corrupt or truncated trace, a --sarif or --html file\n"
    "that cannot be written) are printed; they do not change the status.\n";

static void run_help(void)
{
    fputs(run_help_head, stdout);
    for (size_t i = 0; i < NSHIM; i++) {
        char flag[64];
        size_t k = 0;
        for (const char *p = shim_opts[i].name + 5; *p && k + 1 < sizeof flag; p++)
            flag[k++] = *p == '_' ? '-' : (char)(*p | 0x20);
        flag[k] = 0;
        if (strcmp(shim_opts[i].name, "RACE_DIR") == 0)
            continue; /* that is --dir */
        printf("      --%s=%s  (default %s)\n          %s\n", flag, *shim_opts[i].unit ? shim_opts[i].unit : "N",
               shim_opts[i].def, shim_opts[i].help);
    }
    fputs(run_help_tail, stdout);
}

static int usage(const char *fmt, const char *arg)
{
    fputs("race run: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'race run --help'.\n", stderr);
    return RACE_EXIT_USAGE;
}

/* --ring-mb -> RACE_RING_MB; NULL for a name that is not a recorder option. */
static const char *shim_name(const char *flag, size_t len)
{
    for (size_t i = 0; i < NSHIM; i++) {
        const char *n = shim_opts[i].name + 5;
        if (strlen(n) != len)
            continue;
        size_t k = 0;
        while (k < len && (n[k] == '_' ? flag[k] == '-' : (n[k] | 0x20) == flag[k]))
            k++;
        if (k == len)
            return shim_opts[i].name;
    }
    return NULL;
}

static bool readable_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, R_OK) == 0;
}

static char *find_library(const char *given)
{
    if (given)
        return readable_file(given) ? realpath(given, NULL) : NULL;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return NULL;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    static const char *const rel[] = {"../shim/librace.so", "../lib/race/librace.so"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char p[PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/%s", self, rel[i]);
        if (readable_file(p))
            return realpath(p, NULL);
    }
    return NULL;
}

/* librace.so first: a preload list the user already has keeps its order after it. */
static void set_preload(const char *lib)
{
    const char *old = getenv("LD_PRELOAD");
    if (!old || !*old) {
        setenv("LD_PRELOAD", lib, 1);
        return;
    }
    size_t n = strlen(lib) + strlen(old) + 2;
    char *v = xcalloc(n, 1);
    snprintf(v, n, "%s:%s", lib, old);
    setenv("LD_PRELOAD", v, 1);
    free(v);
}

static volatile sig_atomic_t child_pid;

/* A terminal's ^C or ^\ reaches the command by itself (same process group); race run
 * only outlives it, to report. Signals sent to race run alone are passed on. */
static void pass_on(int sig)
{
    if (child_pid > 0)
        kill(child_pid, sig);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every race.*.trace in dir, sorted (the pid in the name keeps a family together). */
char **list_traces(const char *dir, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    size_t cap = 16;
    char **v = xcalloc(cap, sizeof *v);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "race.", 5) != 0 || len < 11 || strcmp(e->d_name + len - 6, ".trace") != 0)
            continue;
        if ((size_t)*n + 1 >= cap) {
            cap *= 2;
            v = xreallocarray(v, cap, sizeof *v);
        }
        size_t plen = strlen(dir) + len + 2;
        v[*n] = xcalloc(plen, 1);
        snprintf(v[*n], plen, "%s/%s", dir, e->d_name);
        (*n)++;
    }
    closedir(d);
    qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

/* ---- Removing the traces nobody will read ----------------------------------------
 * A test suite under race run starts hundreds of processes; nearly all of them end
 * cleanly, and their traces would fill the disk before the report. While the command
 * runs (once a second) and after the report, each trace of this run whose process has
 * ended is judged once: kept when it holds findings, crashes or damage (what the report
 * shows a trace for: a problem of the file, torn or corrupt records), removed otherwise. */
struct prune {
    bool on;
    const char *dir;
    char **before;                /* traces of earlier runs: never touched */
    int before_n;
    char **kept;                  /* judged and kept (or unreadable): not judged again */
    size_t nkept, cap;
    unsigned long long removed, removed_bytes, removed_events;
};

static bool in_list(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* The trace's process has ended: its pid (from the header) names no process. A pid
 * reused by another process only delays the judgement. */
static bool process_ended(const char *path)
{
    struct race_hdr h;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    ssize_t n = pread(fd, &h, sizeof h, 0);
    close(fd);
    if (n != (ssize_t)sizeof h || memcmp(h.magic, RACE_TRACE_MAGIC, 8) != 0 || h.pid <= 0)
        return false; /* not written yet, or not a trace: left alone */
    return kill(h.pid, 0) != 0 && errno == ESRCH;
}

/* Findings, crashes or damage. Read quietly: the report prints each problem once. */
static bool worth_keeping(const char *path, unsigned long long *events)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved >= 0 && null >= 0)
        dup2(null, STDERR_FILENO);
    struct race_trace *t = trace_open(path);
    if (saved >= 0 && null >= 0)
        dup2(saved, STDERR_FILENO);
    if (saved >= 0)
        close(saved);
    if (null >= 0)
        close(null);
    bool keep = !t->identified || t->problems || t->nfind || t->find_dropped || t->find_incomplete ||
                t->n_torn || t->n_corrupt;
    const struct race_section *c = &t->hdr.crashes;
    if (!keep && c->size && c->off + sizeof(struct race_crash_hdr) <= t->size) {
        const struct race_crash_hdr *ch = (const struct race_crash_hdr *)(t->map + c->off);
        keep = ch->used != 0;
    }
    *events = t->n_valid;
    trace_close(t);
    return keep;
}

static void prune_pass(struct prune *p)
{
    if (!p->on)
        return;
    int n;
    char **all = list_traces(p->dir, &n);
    for (int k = 0; k < n; k++) {
        if (!in_list(p->before, (size_t)p->before_n, all[k]) && !in_list(p->kept, p->nkept, all[k]) &&
            process_ended(all[k])) {
            unsigned long long events = 0;
            struct stat st;
            bool have = stat(all[k], &st) == 0;
            if (!worth_keeping(all[k], &events) && have && unlink(all[k]) == 0) {
                p->removed++;
                p->removed_bytes += (unsigned long long)st.st_blocks * 512;
                p->removed_events += events;
            } else {
                if (p->nkept + 1 >= p->cap) {
                    p->cap = p->cap ? p->cap * 2 : 64;
                    p->kept = xreallocarray(p->kept, p->cap, sizeof *p->kept);
                }
                p->kept[p->nkept++] = all[k];
                all[k] = NULL;
            }
        }
        free(all[k]);
    }
    free(all);
}

static void prune_say(const struct prune *p)
{
    if (p->on && p->removed)
        fprintf(stderr, "race run: removed %llu trace%s of processes that ended without findings, crashes or "
                        "damage (%.1f MiB on disk, %llu events; --keep=all keeps them)\n",
                p->removed, p->removed == 1 ? "" : "s", (double)p->removed_bytes / 1048576.0, p->removed_events);
}

static void prune_free(struct prune *p)
{
    for (size_t i = 0; i < p->nkept; i++)
        free(p->kept[i]);
    free(p->kept);
}

/* waitpid for the command; with pruning on, a pass every second meanwhile. */
static void wait_pruning(pid_t pid, int *wst, struct prune *p, const sigset_t *chld)
{
    for (;;) {
        pid_t w = waitpid(pid, wst, p->on ? WNOHANG : 0);
        if (w == pid || (w < 0 && errno != EINTR))
            return;
        if (w == 0) {
            struct timespec second = {1, 0};
            sigtimedwait(chld, NULL, &second);
            prune_pass(p);
        }
    }
}

static char *default_dir(const char *cmd)
{
    const char *base = strrchr(cmd, '/');
    base = base ? base + 1 : cmd;
    char *d = xcalloc(strlen(base) + 40, 1);
    sprintf(d, "race.%.200s.%ld", base, (long)getpid());
    for (char *p = d + 5; *p; p++)
        if (*p == ' ' || *p == '/')
            *p = '_';
    return d;
}

int cmd_run(int argc, char **argv)
{
    const char *dir = NULL, *library = NULL;
    bool json = false, report = true, keep_all = false;
    long error_exitcode = RUN_EXIT_FINDINGS_DEFAULT;
    struct report_outputs outs = {.window_ms = 50};
    bool outs_given = false;
    int i = 0;
    for (; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || !a[1])
            break; /* the command */
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            run_help();
            return RACE_EXIT_OK;
        }
        /* The report's own options, parsed where race report parses them (main.c). */
        int r = report_option("race run", argc, argv, &i, &outs);
        if (r < 0)
            return RACE_EXIT_USAGE;
        if (r) {
            outs_given = true;
            continue;
        }
        if (a[1] != '-' && strcmp(a, "-d") != 0)
            return usage("unknown option '%s'", a);
        /* --name=value or --name value */
        const char *name = a[1] == '-' ? a + 2 : "dir";
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if ((nlen == 4 && strncmp(name, "json", 4) == 0) || (nlen == 9 && strncmp(name, "no-report", 9) == 0)) {
            if (eq)
                return usage("option '%s' takes no value", a);
            if (name[0] == 'j')
                json = true;
            else
                report = false;
            continue;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc)
                return usage("option '%s' needs a value", a);
            value = argv[++i];
        }
        if (nlen == 3 && strncmp(name, "dir", 3) == 0) {
            dir = value;
        } else if (nlen == 7 && strncmp(name, "library", 7) == 0) {
            library = value;
        } else if (nlen == 4 && strncmp(name, "keep", 4) == 0) {
            if (strcmp(value, "all") != 0 && strcmp(value, "findings") != 0)
                return usage("--keep wants 'findings' or 'all', not '%s'", value);
            keep_all = value[0] == 'a';
        } else if (nlen == 14 && strncmp(name, "error-exitcode", 14) == 0) {
            char *end;
            errno = 0;
            error_exitcode = strtol(value, &end, 10);
            if (errno || end == value || *end || error_exitcode < 0 || error_exitcode > 255)
                return usage("--error-exitcode wants a number from 0 to 255, not '%s'", value);
        } else {
            const char *var = shim_name(name, nlen);
            if (!var || strcmp(var, "RACE_DIR") == 0) {
                char flag[96];
                snprintf(flag, sizeof flag, "--%.*s", (int)(nlen < 80 ? nlen : 80), name);
                return usage("unknown option '%s'", flag);
            }
            setenv(var, value, 1);
        }
    }
    if (i >= argc)
        return usage("no command given%s", "");
    if (!report && outs_given)
        return usage("--no-report makes no report for --sarif, --html, --window, --source-root or "
                     "--last to shape%s", "");
    int bad = report_options_check("race run", json, &outs);
    if (bad)
        return bad;
    char **cmd = argv + i;

    char *lib = find_library(library);
    if (!lib) {
        fprintf(stderr, "race run: cannot find librace.so%s%s\n", library ? " at " : " next to this race (in-tree or installed)",
                library ? library : "");
        return RUN_EXIT_NOSHIM;
    }
    char *own_dir = dir ? NULL : default_dir(cmd[0]);
    if (!dir)
        dir = own_dir;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "race run: cannot create the trace directory %s: %s\n", dir, strerror(errno));
        return RUN_EXIT_CANTCREAT;
    }
    char *absdir = realpath(dir, NULL);
    struct stat st;
    if (!absdir || stat(absdir, &st) != 0 || !S_ISDIR(st.st_mode) || access(absdir, W_OK | X_OK) != 0) {
        fprintf(stderr, "race run: %s is not a writable directory\n", dir);
        return RUN_EXIT_CANTCREAT;
    }
    /* Traces left there by an earlier run are not this run's. */
    int before_n;
    char **before = list_traces(absdir, &before_n);

    setenv("RACE_DIR", absdir, 1);
    set_preload(lib);

    struct prune pr = {.on = report && !keep_all, .dir = absdir, .before = before, .before_n = before_n};
    /* SIGCHLD stays pending while race run waits, so the wait can time out for a
     * pruning pass and still wake the moment the command ends. */
    sigset_t chld, old_mask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old_mask);

    /* The exec error travels back through a close-on-exec pipe. */
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        fprintf(stderr, "race run: pipe: %s\n", strerror(errno));
        return RUN_EXIT_NOEXEC;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "race run: fork: %s\n", strerror(errno));
        return RUN_EXIT_NOEXEC;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        close(pfd[0]);
        execvp(cmd[0], cmd);
        int e = errno;
        ssize_t w = write(pfd[1], &e, sizeof e);
        (void)w;
        _exit(RUN_EXIT_NOEXEC);
    }
    child_pid = pid;
    close(pfd[1]);
    struct sigaction sa = {.sa_handler = pass_on};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction old_int, old_quit, old_term, old_hup;
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    /* ^C and ^\ on the terminal also reach the command: race run waits for it. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);

    int exec_errno = 0;
    ssize_t r;
    do
        r = read(pfd[0], &exec_errno, sizeof exec_errno);
    while (r < 0 && errno == EINTR);
    close(pfd[0]);
    int wst = 0;
    wait_pruning(pid, &wst, &pr, &chld);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    child_pid = 0;
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    if (r == (ssize_t)sizeof exec_errno) {
        fprintf(stderr, "race run: cannot run %s: %s\n", cmd[0], strerror(exec_errno));
        return exec_errno == ENOENT ? RUN_EXIT_NOTFOUND : RUN_EXIT_NOEXEC;
    }
    int status = WIFEXITED(wst) ? WEXITSTATUS(wst) : WIFSIGNALED(wst) ? 128 + WTERMSIG(wst) : 1;

    int n;
    char **all = list_traces(absdir, &n);
    char **mine = xcalloc((size_t)n + 1, sizeof *mine);
    int nmine = 0;
    for (int k = 0; k < n; k++) {
        bool old = false;
        for (int j = 0; j < before_n && !old; j++)
            old = strcmp(all[k], before[j]) == 0;
        if (!old)
            mine[nmine++] = all[k];
    }
    size_t nfind = 0;
    if (nmine == 0) {
        fprintf(stderr, "race run: %s left no trace in %s (it did not load librace.so, or "
                        "cleared LD_PRELOAD)\n", cmd[0], absdir);
    } else if (report) {
        /* The report goes to stderr, like valgrind's: the command's stdout stays its own. */
        fflush(stdout);
        int saved = dup(STDOUT_FILENO);
        if (saved >= 0 && dup2(STDERR_FILENO, STDOUT_FILENO) >= 0) {
            progress_enable(isatty(STDERR_FILENO));
            report_set_outputs(&outs);
            cmd_report(mine, nmine, json, &nfind);
            progress_enable(false);
            fflush(stdout);
            dup2(saved, STDOUT_FILENO);
        }
        if (saved >= 0)
            close(saved);
    }
    unsigned long long removed_before = pr.removed;
    prune_pass(&pr);
    prune_say(&pr);
    int left = nmine - (int)(pr.removed - removed_before);
    fprintf(stderr, "race run: %d trace%s in %s\n", left, left == 1 ? "" : "s", absdir);
    bool findings = nfind > 0;
    if (!report)
        for (int k = 0; k < nmine && !findings; k++) {
            struct race_trace *t = trace_open(mine[k]);
            findings = t->nfind > 0;
            trace_close(t);
        }
    for (int k = 0; k < n; k++)
        free(all[k]);
    for (int k = 0; k < before_n; k++)
        free(before[k]);
    free(all);
    free(before);
    free(mine);
    prune_free(&pr);
    free(absdir);
    free(own_dir);
    free(lib);
    if (findings && error_exitcode)
        return (int)error_exitcode;
    return status;
}
