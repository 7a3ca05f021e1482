/*
 * The interface every fuzz target of tests/fuzz implements: libFuzzer's.
 * With --enable-fuzzers the targets are libFuzzer binaries; otherwise
 * driver.c gives them a main() that replays files (the seed corpora and
 * the saved crashes), so that make check keeps every input that once
 * found a bug as a regression test.
 */
#ifndef TLSSHIM_FUZZ_H
#define TLSSHIM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: run once before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * A check that an open, reported bug fails is skipped while its id is
 * listed in TLSSHIM_FUZZ_KNOWN_BUGS (tests/fuzz/run and regress set it
 * from tests/fuzz/known-bugs), so that fuzzing goes on finding new bugs;
 * regress still replays the saved input with the check on and says
 * whether the bug is still there.
 */
static inline int
fuzz_known_bug(const char *id)
{
    const char *list = getenv("TLSSHIM_FUZZ_KNOWN_BUGS");
    size_t n = strlen(id);

    while (list != NULL && *list != '\0') {
        size_t len = strcspn(list, ", ");
        if (len == n && strncmp(list, id, n) == 0)
            return 1;
        list += len;
        list += strspn(list, ", ");
    }
    return 0;
}

#endif
