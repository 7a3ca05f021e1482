/*
 * Whether a program can be covered by the preloaded shim (SPEC section 9):
 * its ELF class, machine and loader, a Go build note, set-id bits and file
 * capabilities, and for a "#!" script its interpreter, recursively.  The
 * shim reuses this at execve(), possibly in a forked child of a threaded
 * program, so nothing here allocates, prints, exits or keeps state: files
 * are read with bounded pread() calls into stack buffers and every offset
 * an ELF file gives is checked against the file before it is used.
 */
#ifndef TLSSHIM_INSPECT_H
#define TLSSHIM_INSPECT_H

#include <stddef.h>

#include "util.h"

/* Results of inspect_command(). */
#define INSPECT_COVERED   0
#define INSPECT_UNCOVERED 1
#define INSPECT_ERROR     (-1)

/* Nested "#!" interpreters followed before giving up (the kernel allows
 * fewer, so a deeper chain would not run anyway). */
#define INSPECT_MAX_DEPTH 8

/*
 * Judge the program at path (a file name, not looked up in PATH).  Returns
 * INSPECT_COVERED, INSPECT_UNCOVERED with the reason in reason (e.g.
 * "statically linked"), or INSPECT_ERROR when the file cannot be read,
 * with the cause in reason.  "#!/usr/bin/env NAME" looks NAME up in the
 * PATH of the environment.
 */
int inspect_command(const char *path, char *reason, size_t len)
    TLSSHIM_WARN_UNUSED;

/* As inspect_command(), with the PATH that "#!/usr/bin/env NAME" searches
 * given explicitly (the shim passes the one of the new image's
 * environment); NULL means the default search path of execvp(). */
int inspect_command_path(const char *path, const char *search_path,
                         char *reason, size_t len) TLSSHIM_WARN_UNUSED;

/*
 * Find a command as execvp() would: a name containing '/' is taken as it
 * is, otherwise each directory of search_path (NULL: execvp()'s default) is
 * tried in order.  Writes the file name into out and returns 0, or returns
 * ENOENT (nothing found), EACCES (found, but nothing executable) or
 * ENAMETOOLONG.
 */
int inspect_find_command(const char *name, const char *search_path,
                         char *out, size_t outlen) TLSSHIM_WARN_UNUSED;

#endif
