/*
 * hookbench: what the hooks cost a program on descriptors tlsshim does not
 * track (DESIGN.md: "A plain, untracked fd must cost one load and a branch
 * on every hooked call").  Measures nanoseconds per call of
 *
 *   read() of 1 byte from a pipe            (2M calls)
 *   poll() over 1000 untracked pipe fds     (20k calls, timeout 0)
 *   epoll_wait() on a set of 1000 pipe fds  (1M calls, timeout 0)
 *
 * once natively and once with LD_PRELOAD=SHIMLIB, each in a fresh child
 * (this program run again with --child), and prints a table with the
 * ratios.
 *
 *     hookbench [-q] SHIMLIB
 *
 * -q: quick mode, a tenth of the calls.
 * Exit status: 0 success, 2 usage, 4 a measurement failed.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define EXIT_IO 4

#define NPIPES 500 /* both ends: 1000 fds, under the usual limit of 1024 */
#define FILL 65536

struct result {
    double read_ns, poll_ns, epoll_ns;
};

static void
die(const char *call)
{
    fprintf(stderr, "hookbench: %s: %s\n", call, strerror(errno));
    exit(EXIT_IO);
}

static double
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double
bench_read(long calls)
{
    static char fill[FILL];
    double spent = 0;
    long done = 0;
    int p[2];
    char b;

    if (pipe(p) < 0)
        die("pipe");
    (void)fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    while (done < calls) {
        long batch = calls - done < FILL ? calls - done : FILL;
        if (write(p[1], fill, (size_t)batch) != batch)
            die("write");
        double t0 = now_ns();
        for (long i = 0; i < batch; i++)
            if (read(p[0], &b, 1) != 1)
                die("read");
        spent += now_ns() - t0;
        done += batch;
    }
    close(p[0]);
    close(p[1]);
    return spent / (double)calls;
}

static double
bench_poll(long calls)
{
    struct pollfd fds[2 * NPIPES];
    int p[2];

    for (int i = 0; i < NPIPES; i++) {
        if (pipe(p) < 0)
            die("pipe");
        fds[2 * i].fd = p[0];
        fds[2 * i + 1].fd = p[1];
    }
    for (int i = 0; i < 2 * NPIPES; i++)
        fds[i].events = POLLIN; /* nothing to read anywhere */
    for (int i = 0; i < 100; i++)
        if (poll(fds, 2 * NPIPES, 0) != 0)
            die("poll");
    double t0 = now_ns();
    for (long i = 0; i < calls; i++)
        if (poll(fds, 2 * NPIPES, 0) != 0)
            die("poll");
    double ns = (now_ns() - t0) / (double)calls;
    for (int i = 0; i < 2 * NPIPES; i++)
        close(fds[i].fd);
    return ns;
}

static double
bench_epoll(long calls)
{
    int ep = epoll_create1(0), fds[2 * NPIPES];
    struct epoll_event ev[64];

    if (ep < 0)
        die("epoll_create1");
    for (int i = 0; i < NPIPES; i++)
        if (pipe(&fds[2 * i]) < 0)
            die("pipe");
    for (int i = 0; i < 2 * NPIPES; i++) {
        struct epoll_event e;
        memset(&e, 0, sizeof(e));
        e.events = EPOLLIN;
        e.data.fd = fds[i];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e) < 0)
            die("epoll_ctl");
    }
    for (int i = 0; i < 100; i++)
        if (epoll_wait(ep, ev, 64, 0) != 0)
            die("epoll_wait");
    double t0 = now_ns();
    for (long i = 0; i < calls; i++)
        if (epoll_wait(ep, ev, 64, 0) != 0)
            die("epoll_wait");
    double ns = (now_ns() - t0) / (double)calls;
    for (int i = 0; i < 2 * NPIPES; i++)
        close(fds[i]);
    close(ep);
    return ns;
}

/* Is a library whose path contains name mapped in this process? */
static int
mapped(const char *name)
{
    char line[4096];
    FILE *f = fopen("/proc/self/maps", "r");
    int found = 0;

    if (f == NULL)
        die("/proc/self/maps");
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, name) != NULL;
    fclose(f);
    return found;
}

static int
child(int quick)
{
    long scale = quick ? 10 : 1;
    const char *preload = getenv("LD_PRELOAD");

    if (preload != NULL && *preload != '\0') {
        const char *base = strrchr(preload, '/');
        if (!mapped(base != NULL ? base + 1 : preload)) {
            fprintf(stderr, "hookbench: %s is not loaded\n", preload);
            return EXIT_IO;
        }
    }
    printf("%.2f %.2f %.2f\n", bench_read(2000000 / scale),
           bench_poll(20000 / scale), bench_epoll(1000000 / scale));
    return 0;
}

/* Run this program with --child, with or without the preload. */
static void
measure(const char *self, const char *preload, int quick, struct result *r)
{
    int p[2], status;
    pid_t pid;
    char line[256];
    FILE *f;

    if (pipe(p) < 0)
        die("pipe");
    if ((pid = fork()) < 0)
        die("fork");
    if (pid == 0) {
        char *argv[] = {(char *)self, "--child", quick ? "-q" : NULL, NULL};
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        if (preload != NULL)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execv(self, argv);
        _exit(127);
    }
    close(p[1]);
    if ((f = fdopen(p[0], "r")) == NULL)
        die("fdopen");
    if (fgets(line, sizeof(line), f) == NULL ||
        sscanf(line, "%lf %lf %lf", &r->read_ns, &r->poll_ns, &r->epoll_ns) !=
            3) {
        fprintf(stderr, "hookbench: no figures from the %s run\n",
                preload ? "preloaded" : "native");
        exit(EXIT_IO);
    }
    fclose(f);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "hookbench: the %s run failed\n",
                preload ? "preloaded" : "native");
        exit(EXIT_IO);
    }
}

static void
row(const char *name, double native, double shim)
{
    printf("%-40s %10.1f %10.1f %7.2f\n", name, native, shim,
           native > 0 ? shim / native : 0.0);
}

int
main(int argc, char **argv)
{
    struct result native, shim;
    int quick = 0, argi = 1;
    char self[4096];
    ssize_t n;

    if (argc >= 2 && strcmp(argv[1], "--child") == 0)
        return child(argc >= 3 && strcmp(argv[2], "-q") == 0);
    if (argi < argc && strcmp(argv[argi], "-q") == 0) {
        quick = 1;
        argi++;
    }
    if (argc - argi != 1) {
        fprintf(stderr, "usage: hookbench [-q] SHIMLIB\n");
        return EXIT_USAGE;
    }
    if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0)
        die("readlink");
    self[n] = '\0';
    measure(self, NULL, quick, &native);
    measure(self, argv[argi], quick, &shim);
    printf("hookbench: ns per call on untracked fds%s\n",
           quick ? " (quick)" : "");
    printf("%-40s %10s %10s %7s\n", "call", "native", "shim", "ratio");
    row("read(pipe, 1 byte)", native.read_ns, shim.read_ns);
    row("poll(1000 untracked fds, timeout 0)", native.poll_ns, shim.poll_ns);
    row("epoll_wait(1000 untracked fds, 0)", native.epoll_ns, shim.epoll_ns);
    return 0;
}
