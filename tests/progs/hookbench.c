/*
 * hookbench: what the hooks cost a program on descriptors tlsshim does not
 * track (DESIGN.md: "A plain, untracked fd must cost one load and a branch
 * on every hooked call").  Measures nanoseconds per call of
 *
 *   read() of 1 byte from a pipe            (2M calls)
 *   write() of 1 byte to a pipe             (2M calls)
 *   poll() on one pipe fd                   (1M calls, timeout 0)
 *   poll() over 1000 untracked pipe fds     (20k calls, timeout 0)
 *   epoll_wait() on a set of 1000 pipe fds  (1M calls, timeout 0)
 *
 * natively and with LD_PRELOAD=SHIMLIB, each in a fresh child (this
 * program run again with --child), and prints two tables:
 *
 * - ns per call of the program's calls, native process against shimmed
 *   process, and the ratio;
 * - the hooks alone: within each process, blocks of calls through the
 *   program's symbol (the hook, when preloaded) alternate with blocks
 *   through libc's own definition (dlsym on libc.so.6), so both see the
 *   same machine at the same moment.  The difference is what the hook
 *   adds to a call; the native process's difference is the control (0
 *   up to noise).  On a busy machine, whose system calls vary by far more
 *   than a few nanoseconds from one moment to the next, this is the
 *   figure that can resolve a load and a branch.
 *
 * Half the calls of each figure go through each path, in blocks of 100
 * (4 for poll over 1000 fds); a path's figure is its median block, so a
 * block that was preempted does not count.  With -r ROUNDS the two kinds
 * of child alternate ROUNDS times (the order swapped every round) and the
 * tables show medians over the rounds.
 *
 *     hookbench [-q] [-r ROUNDS] SHIMLIB
 *
 * -q: quick mode, a tenth of the calls.
 * Exit status: 0 success, 2 usage, 4 a measurement failed.
 */
#define _GNU_SOURCE

#include <dlfcn.h>
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
#define MAX_ROUNDS 99
#define MAX_BLOCK 1000

enum op { OP_READ, OP_WRITE, OP_POLL1, OP_POLL, OP_EPOLL, NOPS };

static const struct {
    const char *name;
    long calls; /* in all, half through each path */
    int block;  /* calls per timed block */
} ops[NOPS] = {
    {"read(pipe, 1 byte)", 2000000, 100},
    {"write(pipe, 1 byte)", 2000000, 100},
    {"poll(1 pipe fd, timeout 0)", 1000000, 100},
    {"poll(1000 untracked fds, timeout 0)", 20000, 4},
    {"epoll_wait(1000 untracked fds, 0)", 1000000, 100},
};

/* The calls measured, through one path. */
struct calls {
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    int (*poll)(struct pollfd *, nfds_t, int);
    int (*epoll_wait)(int, struct epoll_event *, int, int);
};

/* What the calls work on: one pipe, and 500 pipes also in an epoll set. */
struct fixture {
    int p[2];
    struct pollfd pfd;
    struct pollfd fds[2 * NPIPES];
    int ep;
};

/* ns per call through the program's symbol and through libc's own. */
struct result {
    double hooked[NOPS], libc[NOPS];
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

static void
fixture_open(struct fixture *fx)
{
    int p[2];

    if (pipe(fx->p) < 0)
        die("pipe");
    (void)fcntl(fx->p[1], F_SETPIPE_SZ, 1 << 20);
    fx->pfd.fd = fx->p[0];
    fx->pfd.events = POLLIN; /* nothing to read between blocks */
    if ((fx->ep = epoll_create1(0)) < 0)
        die("epoll_create1");
    for (int i = 0; i < NPIPES; i++) {
        if (pipe(p) < 0)
            die("pipe");
        fx->fds[2 * i].fd = p[0];
        fx->fds[2 * i + 1].fd = p[1];
    }
    for (int i = 0; i < 2 * NPIPES; i++) {
        struct epoll_event e;
        fx->fds[i].events = POLLIN; /* nothing to read anywhere */
        memset(&e, 0, sizeof(e));
        e.events = EPOLLIN;
        e.data.fd = fx->fds[i].fd;
        if (epoll_ctl(fx->ep, EPOLL_CTL_ADD, fx->fds[i].fd, &e) < 0)
            die("epoll_ctl");
    }
}

static void
fixture_close(struct fixture *fx)
{
    for (int i = 0; i < 2 * NPIPES; i++)
        close(fx->fds[i].fd);
    close(fx->ep);
    close(fx->p[0]);
    close(fx->p[1]);
}

/* Time n calls of op through c; the set-up around them is not timed. */
static double
run_block(enum op op, const struct calls *c, struct fixture *fx, int n)
{
    static char buf[MAX_BLOCK];
    struct epoll_event ev[64];
    double t0, spent = 0;
    char b = 'x';

    switch (op) {
    case OP_READ:
        if (write(fx->p[1], buf, (size_t)n) != n)
            die("write");
        t0 = now_ns();
        for (int i = 0; i < n; i++)
            if (c->read(fx->p[0], &b, 1) != 1)
                die("read");
        spent = now_ns() - t0;
        break;
    case OP_WRITE:
        t0 = now_ns();
        for (int i = 0; i < n; i++)
            if (c->write(fx->p[1], &b, 1) != 1)
                die("write");
        spent = now_ns() - t0;
        if (read(fx->p[0], buf, (size_t)n) != n)
            die("read");
        break;
    case OP_POLL1:
        t0 = now_ns();
        for (int i = 0; i < n; i++)
            if (c->poll(&fx->pfd, 1, 0) != 0)
                die("poll");
        spent = now_ns() - t0;
        break;
    case OP_POLL:
        t0 = now_ns();
        for (int i = 0; i < n; i++)
            if (c->poll(fx->fds, 2 * NPIPES, 0) != 0)
                die("poll");
        spent = now_ns() - t0;
        break;
    case OP_EPOLL:
        t0 = now_ns();
        for (int i = 0; i < n; i++)
            if (c->epoll_wait(fx->ep, ev, 64, 0) != 0)
                die("epoll_wait");
        spent = now_ns() - t0;
        break;
    case NOPS:
        break;
    }
    return spent;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
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

/* libc's own definitions, past any preloaded module. */
static void
libc_calls(struct calls *c)
{
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);

    if (libc == NULL) {
        fprintf(stderr, "hookbench: dlopen libc.so.6: %s\n", dlerror());
        exit(EXIT_IO);
    }
    *(void **)&c->read = dlsym(libc, "read");
    *(void **)&c->write = dlsym(libc, "write");
    *(void **)&c->poll = dlsym(libc, "poll");
    *(void **)&c->epoll_wait = dlsym(libc, "epoll_wait");
    if (c->read == NULL || c->write == NULL || c->poll == NULL ||
        c->epoll_wait == NULL) {
        fprintf(stderr, "hookbench: libc's own calls not found\n");
        exit(EXIT_IO);
    }
}

static int
child(int quick)
{
    long scale = quick ? 10 : 1;
    const char *preload = getenv("LD_PRELOAD");
    /* The program's symbols: the hooks, when the module is preloaded. */
    struct calls hooked = {read, write, poll, epoll_wait}, libc;
    struct fixture fx;

    if (preload != NULL && *preload != '\0') {
        const char *base = strrchr(preload, '/');
        if (!mapped(base != NULL ? base + 1 : preload)) {
            fprintf(stderr, "hookbench: %s is not loaded\n", preload);
            return EXIT_IO;
        }
    }
    libc_calls(&libc);
    fixture_open(&fx);
    for (int op = 0; op < NOPS; op++) {
        long blocks = ops[op].calls / scale / 2 / ops[op].block;
        double *ns[2];
        long done[2] = {0, 0};

        if ((ns[0] = calloc((size_t)blocks, sizeof(double))) == NULL ||
            (ns[1] = calloc((size_t)blocks, sizeof(double))) == NULL)
            die("calloc");
        /* Warm both paths up, then alternate, the order swapped every
         * pair of blocks.  The median block stands for each path: a
         * block that was preempted says nothing about the hook. */
        (void)run_block(op, &hooked, &fx, ops[op].block);
        (void)run_block(op, &libc, &fx, ops[op].block);
        for (long i = 0; i < 2 * blocks; i++) {
            int via_libc = (int)((i ^ (i >> 1)) & 1);
            ns[via_libc][done[via_libc]++] =
                run_block(op, via_libc ? &libc : &hooked, &fx, ops[op].block) /
                ops[op].block;
        }
        printf("%.2f %.2f ", median(ns[0], (int)blocks),
               median(ns[1], (int)blocks));
        free(ns[0]);
        free(ns[1]);
    }
    printf("\n");
    fixture_close(&fx);
    return 0;
}

/* Run this program with --child, with or without the preload. */
static void
measure(const char *self, const char *preload, int quick, struct result *r)
{
    int p[2], status;
    pid_t pid;
    char line[512], *s = line, *end;
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
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    for (int op = 0; op < NOPS && s != NULL; op++) {
        r->hooked[op] = strtod(s, &end);
        s = end == s ? NULL : end;
        if (s != NULL) {
            r->libc[op] = strtod(s, &end);
            s = end == s ? NULL : end;
        }
    }
    if (s == NULL) {
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

/* Medians over n rounds of op: the program's call, libc's own, and the
 * difference (taken per round: both halves ran at the same moment). */
static void
medians(const struct result *r, int n, int op, double *hooked, double *libc,
        double *diff)
{
    double h[MAX_ROUNDS], l[MAX_ROUNDS], d[MAX_ROUNDS];

    for (int i = 0; i < n; i++) {
        h[i] = r[i].hooked[op];
        l[i] = r[i].libc[op];
        d[i] = r[i].hooked[op] - r[i].libc[op];
    }
    *hooked = median(h, n);
    *libc = median(l, n);
    *diff = median(d, n);
}

int
main(int argc, char **argv)
{
    struct result natives[MAX_ROUNDS], shims[MAX_ROUNDS];
    int quick = 0, rounds = 1, argi = 1;
    char self[4096];
    ssize_t n;

    if (argc >= 2 && strcmp(argv[1], "--child") == 0)
        return child(argc >= 3 && strcmp(argv[2], "-q") == 0);
    while (argi < argc && argv[argi][0] == '-') {
        char *end;
        if (strcmp(argv[argi], "-q") == 0) {
            quick = 1;
            argi++;
        } else if (strcmp(argv[argi], "-r") == 0 && argi + 1 < argc) {
            rounds = (int)strtol(argv[argi + 1], &end, 10);
            if (*end != '\0' || rounds < 1 || rounds > MAX_ROUNDS)
                argi = argc; /* usage */
            argi += 2;
        } else {
            argi = argc;
        }
    }
    if (argc - argi != 1) {
        fprintf(stderr, "usage: hookbench [-q] [-r ROUNDS] SHIMLIB\n");
        return EXIT_USAGE;
    }
    if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0)
        die("readlink");
    self[n] = '\0';
    for (int i = 0; i < rounds; i++) {
        if (i % 2 == 0) {
            measure(self, NULL, quick, &natives[i]);
            measure(self, argv[argi], quick, &shims[i]);
        } else {
            measure(self, argv[argi], quick, &shims[i]);
            measure(self, NULL, quick, &natives[i]);
        }
    }

    double nat_h[NOPS], nat_l[NOPS], nat_d[NOPS];
    double shim_h[NOPS], shim_l[NOPS], shim_d[NOPS];
    for (int op = 0; op < NOPS; op++) {
        medians(natives, rounds, op, &nat_h[op], &nat_l[op], &nat_d[op]);
        medians(shims, rounds, op, &shim_h[op], &shim_l[op], &shim_d[op]);
    }
    printf("hookbench: ns per call on untracked fds%s\n",
           quick ? " (quick)" : "");
    if (rounds > 1)
        printf("medians of %d alternating rounds\n", rounds);
    printf("%-40s %10s %10s %7s\n", "call", "native", "shim", "ratio");
    for (int op = 0; op < NOPS; op++)
        printf("%-40s %10.1f %10.1f %7.2f\n", ops[op].name, nat_h[op],
               shim_h[op], nat_h[op] > 0 ? shim_h[op] / nat_h[op] : 0.0);

    printf(
        "\nhookbench: in-process, ns per call: the program's call (the hook) "
        "and libc's own,\nin alternating blocks; +ns is what the hook "
        "adds, control the same in the native process\n");
    printf("%-40s %10s %10s %8s %8s\n", "call", "libc", "hooked", "+ns",
           "control");
    for (int op = 0; op < NOPS; op++)
        printf("%-40s %10.1f %10.1f %8.1f %8.1f\n", ops[op].name, shim_l[op],
               shim_h[op], shim_d[op], nat_d[op]);
    return 0;
}
