/*
 * Start-up of a command: runs it RUNS times (stdout and stderr to
 * /dev/null), and prints the median wall time of one run and the largest
 * peak resident set size (the kernel's ru_maxrss of the child).
 *
 *   spawn_time RUNS COMMAND [ARG...]
 *
 * Prints one line: {"ms": <median milliseconds>, "min_ms": <fastest>, "rss_kib": <peak KiB>}
 * and exits non-zero when a run fails.
 */
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int runs, i;
    double *ms;
    long rss = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: %s RUNS COMMAND [ARG...]\n", argv[0]);
        return 2;
    }
    runs = atoi(argv[1]);
    if (runs < 1)
        runs = 1;
    ms = calloc((size_t)runs, sizeof *ms);
    if (!ms)
        return 1;
    for (i = 0; i < runs; i++) {
        posix_spawn_file_actions_t fa;
        struct rusage ru;
        pid_t pid;
        int status;
        double t0;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        t0 = now();
        if (posix_spawnp(&pid, argv[2], &fa, NULL, argv + 2, environ) != 0) {
            perror(argv[2]);
            return 1;
        }
        if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "%s failed\n", argv[2]);
            return 1;
        }
        ms[i] = (now() - t0) * 1e3;
        posix_spawn_file_actions_destroy(&fa);
        if (ru.ru_maxrss > rss)
            rss = ru.ru_maxrss;
    }
    qsort(ms, (size_t)runs, sizeof *ms, cmp);
    printf("{\"ms\": %.2f, \"min_ms\": %.2f, \"rss_kib\": %ld}\n", ms[runs / 2], ms[0], rss);
    free(ms);
    return 0;
}
