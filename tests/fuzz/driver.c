/*
 * A main() for the fuzz targets when they are not built with libFuzzer:
 * run LLVMFuzzerTestOneInput once per file named on the command line (a
 * directory stands for the files in it, sorted).  A target that finds a
 * bug crashes or trips a sanitizer, which fails the run; the files are
 * the seed corpus and the crashes saved under tests/fuzz/crashes.
 */
#include "config.h"

#ifndef TLSSHIM_LIBFUZZER

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

__attribute__((weak)) int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static int
run_file(const char *path)
{
    FILE *f;
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;
    int rv = -1;

    if ((f = fopen(path, "rb")) == NULL) {
        fprintf(stderr, "fuzz driver: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            unsigned char *nb;
            cap = cap ? cap * 2 : 4096;
            if ((nb = realloc(buf, cap)) == NULL)
                goto out;
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "fuzz driver: %s: read error\n", path);
        goto out;
    }
    /* An exact-size copy, so that an overread past the input is caught. */
    {
        unsigned char *exact = malloc(len ? len : 1);
        if (exact == NULL)
            goto out;
        memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    rv = 0;
out:
    free(buf);
    fclose(f);
    return rv;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
run_dir(const char *dir, int *count)
{
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rv = 0;

    if ((d = opendir(dir)) == NULL) {
        fprintf(stderr, "fuzz driver: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nn;
            cap = cap ? cap * 2 : 64;
            if ((nn = realloc(names, cap * sizeof(*names))) == NULL) {
                rv = -1;
                break;
            }
            names = nn;
        }
        if ((names[n] = strdup(e->d_name)) == NULL) {
            rv = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (rv == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) != 0)
                rv = -1;
            else
                (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rv;
}

int
main(int argc, char **argv)
{
    int count = 0, rv = 0;
    struct stat st;

    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "fuzz driver: %s: %s\n", argv[i],
                    strerror(errno));
            rv = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (run_dir(argv[i], &count) != 0)
                rv = 1;
        } else if (run_file(argv[i]) != 0) {
            rv = 1;
        } else {
            count++;
        }
    }
    printf("%s: %d inputs replayed\n", argv[0], count);
    return rv;
}

#endif
