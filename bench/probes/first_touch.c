/* first_touch.c - what the first write to each page of a MAP_SHARED file costs, by how
 * the file was sized and advised: the trace file's case (fallocate, default readahead)
 * and the alternatives weighed in bench/README.md. A probe, not part of run.sh.
 *   usage: first_touch DIR fallocate|ftruncate|pwrite|populate|random|sequential
 *   build: cc -O2 -std=gnu11 -Wall -Wextra -Werror -o bench/out/first_touch bench/probes/first_touch.c */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define RING (16u << 20)
#define SIZE (25u << 20) /* header + 16 MiB ring + 8 MiB depot + module log, like a trace */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: first_touch DIR fallocate|ftruncate|pwrite|populate|random|sequential\n");
        return 2;
    }
    const char *how = argv[2];
    char path[512];
    snprintf(path, sizeof(path), "%s/first_touch.%d", argv[1], (int)getpid());
    double t0 = now();
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    unlink(path);
    int rc = 0;
    if (!strcmp(how, "ftruncate")) {
        rc = ftruncate(fd, SIZE);
    } else if (!strcmp(how, "pwrite")) {
        static char zero[1 << 20];
        for (size_t off = 0; off < SIZE && rc == 0; off += sizeof(zero))
            rc = pwrite(fd, zero, sizeof(zero), (off_t)off) == (ssize_t)sizeof(zero) ? 0 : -1;
    } else {
        rc = fallocate(fd, 0, 0, SIZE);
    }
    char *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (rc || m == MAP_FAILED) {
        perror("sizing or mapping");
        return 1;
    }
    if (!strcmp(how, "populate"))
        madvise(m, SIZE, MADV_POPULATE_WRITE);
    else if (!strcmp(how, "random"))
        madvise(m, SIZE, MADV_RANDOM);
    else if (!strcmp(how, "sequential"))
        madvise(m, SIZE, MADV_SEQUENTIAL);
    double t1 = now();
    /* A few scattered pages, as at start-up: header, depot header, module log. */
    m[0] = 1;
    m[4096] = 1;
    m[8192 + RING] = 1;
    m[8192 + RING + (8u << 20)] = 1;
    double t2 = now();
    for (size_t off = 8192; off < 8192 + RING; off += 4096)
        m[off] = 1; /* the ring, in order */
    double t3 = now();
    printf("%-10s setup %6.2f ms  scattered pages %6.2f ms  ring %6.2f ms (%.2f us/page)\n", how,
           (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t3 - t2) * 1e6 / (RING / 4096));
    return 0;
}
