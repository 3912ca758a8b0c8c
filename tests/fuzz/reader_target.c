/* reader_target.c - the libFuzzer target over the trace reader as the commands use it:
 * each input is a trace file, read by `race stats`, `race dump --stacks` and
 * `race report`, in text and JSON, exactly as the command line calls them. Built with
 * clang's -fsanitize=fuzzer,address,undefined by `make fuzz` (the analyzer's sources
 * without main.c); tests/t_fuzz_replay.sh replays the kept corpus through
 * analyze/race-asan. Must never: hold state across inputs, or judge the output (the
 * sanitizers and the exit statuses are the oracle). */
#define _GNU_SOURCE /* memfd_create */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "race.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* The reports themselves are not the point: stdout to /dev/null, buffered. */
    if (!freopen("/dev/null", "w", stdout))
        abort();
    return 0;
}

static void check(const char *cmd, int status)
{
    /* The documented statuses: 0, 1 (findings, report only), 2 (bad input). */
    if (status != RACE_EXIT_OK && status != RACE_EXIT_BADINPUT &&
        !(status == RACE_EXIT_FINDINGS && cmd[0] == 'r')) {
        fprintf(stderr, "reader_target: race %s exited %d\n", cmd, status);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("trace", MFD_CLOEXEC);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char *paths[] = {path};
    for (int json = 0; json < 2; json++) {
        check("stats", cmd_stats(paths, 1, json));
        check("dump", cmd_dump(paths, 1, json, true));
        check("report", cmd_report(paths, 1, json, NULL));
    }
    fflush(stdout);
    close(fd);
    return 0;
}
