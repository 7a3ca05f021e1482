/*
 * Judge whether a program image can be covered by LD_PRELOAD (SPEC section
 * 9).  The dynamic loader of the C library tlsshim was built for is what
 * loads the shim, so a program is covered only when that loader runs it
 * with LD_PRELOAD honoured and the program then uses libc's socket calls:
 * an ELF image of our own class, byte order and machine, whose PT_INTERP is
 * a glibc loader, that is not a Go binary (raw system calls), not set-id and
 * without file capabilities (the loader drops LD_PRELOAD in secure mode).
 * A "#!" script is judged by its interpreter, and "#!/usr/bin/env NAME" by
 * NAME as env would find it.  Everything is read with pread() into stack
 * buffers; nothing is allocated, so the shim may call this between fork()
 * and execve().
 */
#include "config.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "inspect.h"

/* What execve() reads to decide the format (the kernel's BINPRM_BUF_SIZE):
 * a "#!" line longer than this is cut there. */
#define HEAD_SIZE 256
/* execvp()'s search path when PATH is unset (glibc's _CS_PATH). */
#define DEFAULT_SEARCH_PATH "/bin:/usr/bin"
/* The kernel refuses program header tables larger than this. */
#define MAX_PHDR_BYTES 65536
/* Bounds for tables that only the Go check reads. */
#define MAX_SECTIONS 65536
#define MAX_NOTES 4096
/* The Go toolchain's build ID note: owner "Go", type 4. */
#define GO_NOTE_TYPE 4

#if defined(__x86_64__) && defined(__ILP32__)
#define NATIVE_MACHINE EM_X86_64
static const char *const glibc_loaders[] = {"ld-linux-x32.so.2"};
#elif defined(__x86_64__)
#define NATIVE_MACHINE EM_X86_64
static const char *const glibc_loaders[] = {"ld-linux-x86-64.so.2"};
#elif defined(__i386__)
#define NATIVE_MACHINE EM_386
static const char *const glibc_loaders[] = {"ld-linux.so.2"};
#elif defined(__aarch64__)
#define NATIVE_MACHINE EM_AARCH64
static const char *const glibc_loaders[] = {"ld-linux-aarch64.so.1",
                                            "ld-linux-aarch64_be.so.1"};
#elif defined(__arm__)
#define NATIVE_MACHINE EM_ARM
static const char *const glibc_loaders[] = {"ld-linux-armhf.so.3",
                                            "ld-linux.so.3"};
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_MACHINE EM_RISCV
static const char *const glibc_loaders[] = {"ld-linux-riscv64-lp64d.so.1",
                                            "ld-linux-riscv64-lp64.so.1"};
#elif defined(__powerpc64__)
#define NATIVE_MACHINE EM_PPC64
static const char *const glibc_loaders[] = {"ld64.so.2", "ld64.so.1"};
#elif defined(__s390x__)
#define NATIVE_MACHINE EM_S390
static const char *const glibc_loaders[] = {"ld64.so.1"};
#else
/* Elsewhere the machine is the vDSO's and the loader is our own. */
#define NATIVE_MACHINE EM_NONE
static const char *const glibc_loaders[] = {"ld-linux.so.2"};
#endif

#if __SIZEOF_POINTER__ == 8
#define NATIVE_CLASS ELFCLASS64
#else
#define NATIVE_CLASS ELFCLASS32
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_DATA ELFDATA2LSB
#else
#define NATIVE_DATA ELFDATA2MSB
#endif

/* An open image and its size, which bounds every offset read from it. */
struct image {
    int fd;
    uint64_t size;
};

/* Section names, buffered when the name table is small (it always is for
 * what compilers produce); larger tables are read name by name. */
struct name_table {
    uint64_t offset, size;
    char buf[2048];
    int buffered;
};

static int judge_path(const char *path, const char *search_path, int depth,
                      char *reason, size_t len);

static const char *
errno_text(int err, char *buf, size_t len)
{
    /* GNU strerror_r: may return a static string instead of filling buf. */
    return strerror_r(err, buf, len);
}

static const char *
base_name(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash != NULL ? slash + 1 : path;
}

/* Read exactly len bytes at off, refusing anything outside the file. */
static int
image_read(const struct image *im, void *buf, uint64_t len, uint64_t off)
{
    unsigned char *p = buf;

    if (off > im->size || len > im->size - off)
        return -1;
    while (len > 0) {
        ssize_t n = pread(im->fd, p, (size_t)len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (uint64_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static unsigned
native_machine(void)
{
#if NATIVE_MACHINE == EM_NONE
    /* The vDSO is an ELF image of the machine we run on. */
    const ElfW(Ehdr) *vdso = (const ElfW(Ehdr) *)getauxval(AT_SYSINFO_EHDR);

    return vdso != NULL ? vdso->e_machine : EM_NONE;
#else
    return NATIVE_MACHINE;
#endif
}

/* The base name of our own program interpreter, found through the
 * auxiliary vector, or NULL. */
static const char *
own_loader(void)
{
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
    unsigned long n = getauxval(AT_PHNUM), i;
    uintptr_t bias = 0;
    int have_bias = 0;

    if (ph == NULL)
        return NULL;
    /* Without PT_PHDR the load bias of a PIE is unknown: give up rather
     * than read a wild pointer. */
    for (i = 0; i < n; i++)
        if (ph[i].p_type == PT_PHDR) {
            bias = (uintptr_t)ph - ph[i].p_vaddr;
            have_bias = 1;
        }
    for (i = 0; i < n && have_bias; i++)
        if (ph[i].p_type == PT_INTERP)
            return base_name((const char *)(bias + ph[i].p_vaddr));
    return NULL;
}

static int
is_glibc_loader(const char *path)
{
    const char *base = base_name(path), *own;
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(glibc_loaders); i++)
        if (strcmp(base, glibc_loaders[i]) == 0)
            return 1;
    own = own_loader();
    return own != NULL && strcmp(base, own) == 0;
}

static const char *
machine_name(unsigned machine, char *buf, size_t len)
{
    static const struct {
        unsigned machine;
        const char *name;
    } names[] = {
        {EM_386, "i386"},       {EM_X86_64, "x86-64"},
        {EM_AARCH64, "aarch64"}, {EM_ARM, "arm"},
        {EM_RISCV, "riscv"},    {EM_PPC, "powerpc"},
        {EM_PPC64, "ppc64"},    {EM_S390, "s390"},
        {EM_MIPS, "mips"},      {EM_SPARCV9, "sparc64"},
        {EM_LOONGARCH, "loongarch"},
    };
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(names); i++)
        if (names[i].machine == machine)
            return names[i].name;
    snprintf(buf, len, "machine %u", machine);
    return buf;
}

static const char *
class_name(unsigned elf_class)
{
    switch (elf_class) {
    case ELFCLASS32:
        return "32-bit";
    case ELFCLASS64:
        return "64-bit";
    default:
        return "unknown-class";
    }
}

/* Whether one PT_NOTE segment holds the Go build ID note. */
static int
notes_have_go(const struct image *im, const ElfW(Phdr) *ph)
{
    uint64_t align = ph->p_align == 8 ? 8 : 4;
    uint64_t pos = 0;
    unsigned count;

    if (ph->p_offset > im->size || ph->p_filesz > im->size - ph->p_offset)
        return 0;
    for (count = 0; count < MAX_NOTES && ph->p_filesz - pos >= 12; count++) {
        uint32_t hdr[3];
        char owner[4];
        uint64_t desc, next;

        if (image_read(im, hdr, sizeof(hdr), ph->p_offset + pos) != 0)
            return 0;
        /* 32-bit sizes: these sums cannot overflow 64 bits. */
        desc = pos + 12 + ((hdr[0] + align - 1) & ~(align - 1));
        next = desc + ((hdr[1] + align - 1) & ~(align - 1));
        if (next > ph->p_filesz)
            return 0;
        if (hdr[2] == GO_NOTE_TYPE && hdr[0] == 4 &&
            image_read(im, owner, 4, ph->p_offset + pos + 12) == 0 &&
            memcmp(owner, "Go\0\0", 4) == 0)
            return 1;
        pos = next;
    }
    return 0;
}

static int
section_name_is(const struct image *im, const struct name_table *names,
                uint64_t name, const char *want)
{
    char buf[32];
    size_t n = strlen(want) + 1;

    if (name >= names->size || n > names->size - name)
        return 0;
    if (names->buffered)
        return memcmp(names->buf + name, want, n) == 0;
    if (image_read(im, buf, n, names->offset + name) != 0)
        return 0;
    return memcmp(buf, want, n) == 0;
}

/* Whether the section table names a Go section.  A missing or damaged
 * section table is not an error: the kernel never reads it, and the build
 * ID note is found through the program headers anyway. */
static int
sections_have_go(const struct image *im, const ElfW(Ehdr) *eh)
{
    ElfW(Shdr) chunk[16], strtab;
    struct name_table names;
    uint64_t shnum = eh->e_shnum, shstrndx = eh->e_shstrndx, i, j;

    if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(ElfW(Shdr)))
        return 0;
    if (shnum == 0 || shstrndx == SHN_XINDEX) {
        /* Extended numbering keeps the real values in section 0. */
        if (image_read(im, chunk, sizeof(chunk[0]), eh->e_shoff) != 0)
            return 0;
        if (shnum == 0)
            shnum = chunk[0].sh_size;
        if (shstrndx == SHN_XINDEX)
            shstrndx = chunk[0].sh_link;
    }
    if (shnum > MAX_SECTIONS)
        shnum = MAX_SECTIONS;
    if (shstrndx >= shnum || eh->e_shoff > im->size ||
        shnum > (im->size - eh->e_shoff) / sizeof(ElfW(Shdr)))
        return 0;
    if (image_read(im, &strtab, sizeof(strtab),
                   eh->e_shoff + shstrndx * sizeof(ElfW(Shdr))) != 0)
        return 0;
    if (strtab.sh_type == SHT_NOBITS || strtab.sh_offset > im->size ||
        strtab.sh_size > im->size - strtab.sh_offset)
        return 0;
    names.offset = strtab.sh_offset;
    names.size = strtab.sh_size;
    names.buffered = names.size <= sizeof(names.buf) &&
        image_read(im, names.buf, names.size, names.offset) == 0;

    for (i = 0; i < shnum; i += j) {
        uint64_t n = shnum - i < TLSSHIM_NELEMS(chunk) ?
            shnum - i : TLSSHIM_NELEMS(chunk);
        if (image_read(im, chunk, n * sizeof(chunk[0]),
                       eh->e_shoff + i * sizeof(chunk[0])) != 0)
            return 0;
        for (j = 0; j < n; j++)
            if (section_name_is(im, &names, chunk[j].sh_name,
                                ".note.go.buildid") ||
                section_name_is(im, &names, chunk[j].sh_name,
                                ".go.buildinfo"))
                return 1;
    }
    return 0;
}

static int
judge_elf(const struct image *im, const struct stat *st,
          const unsigned char *head, size_t headlen, const char *path,
          char *reason, size_t len)
{
    ElfW(Ehdr) eh;
    ElfW(Phdr) chunk[16];
    char interp[PATH_MAX], mbuf[2][32];
    unsigned elf_class, elf_data, machine, native;
    uint64_t i, j, n;
    int go = 0, has_interp = 0, has_dynamic = 0;

    if (headlen < EI_NIDENT + 4) {
        snprintf(reason, len, "malformed ELF file (truncated header)");
        return INSPECT_UNCOVERED;
    }
    elf_class = head[EI_CLASS];
    elf_data = head[EI_DATA];
    machine = elf_data == ELFDATA2MSB ?
        (unsigned)head[18] << 8 | head[19] : (unsigned)head[19] << 8 | head[18];
    native = native_machine();
    if (elf_class != NATIVE_CLASS || elf_data != NATIVE_DATA ||
        (native != EM_NONE && machine != native)) {
        snprintf(reason, len,
                 "foreign architecture: %s %s%s, not %s %s as tlsshim",
                 class_name(elf_class),
                 machine_name(machine, mbuf[0], sizeof(mbuf[0])),
                 elf_data != NATIVE_DATA ? " (other byte order)" : "",
                 class_name(NATIVE_CLASS),
                 machine_name(native, mbuf[1], sizeof(mbuf[1])));
        return INSPECT_UNCOVERED;
    }
    if (headlen < sizeof(eh)) {
        snprintf(reason, len, "malformed ELF file (truncated header)");
        return INSPECT_UNCOVERED;
    }
    memcpy(&eh, head, sizeof(eh));
    if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) {
        snprintf(reason, len, "not an ELF executable (type %u)",
                 (unsigned)eh.e_type);
        return INSPECT_UNCOVERED;
    }

    /* The kernel grants set-group-ID only together with group execute. */
    if ((st->st_mode & S_ISUID) != 0 ||
        (st->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) {
        snprintf(reason, len, "set-id: the loader ignores LD_PRELOAD");
        return INSPECT_UNCOVERED;
    }
    if (fgetxattr(im->fd, "security.capability", NULL, 0) >= 0) {
        snprintf(reason, len,
                 "file capabilities: the loader ignores LD_PRELOAD");
        return INSPECT_UNCOVERED;
    }

    n = eh.e_phnum;
    if (eh.e_phentsize != sizeof(ElfW(Phdr)) || n == 0 ||
        n * sizeof(ElfW(Phdr)) > MAX_PHDR_BYTES || eh.e_phoff > im->size ||
        n > (im->size - eh.e_phoff) / sizeof(ElfW(Phdr))) {
        snprintf(reason, len, "malformed ELF file (program headers)");
        return INSPECT_UNCOVERED;
    }
    for (i = 0; i < n; i += j) {
        uint64_t m = n - i < TLSSHIM_NELEMS(chunk) ?
            n - i : TLSSHIM_NELEMS(chunk);
        if (image_read(im, chunk, m * sizeof(chunk[0]),
                       eh.e_phoff + i * sizeof(chunk[0])) != 0) {
            snprintf(reason, len, "malformed ELF file (program headers)");
            return INSPECT_UNCOVERED;
        }
        for (j = 0; j < m; j++) {
            const ElfW(Phdr) *ph = &chunk[j];

            if (ph->p_type == PT_INTERP && !has_interp) {
                /* As the kernel: the first one counts, NUL-terminated. */
                if (ph->p_filesz < 2 || ph->p_filesz > sizeof(interp) ||
                    image_read(im, interp, ph->p_filesz, ph->p_offset) != 0 ||
                    interp[ph->p_filesz - 1] != '\0') {
                    snprintf(reason, len, "malformed ELF file (PT_INTERP)");
                    return INSPECT_UNCOVERED;
                }
                has_interp = 1;
            } else if (ph->p_type == PT_NOTE && !go) {
                go = notes_have_go(im, ph);
            } else if (ph->p_type == PT_DYNAMIC) {
                has_dynamic = 1;
            }
        }
    }
    if (!go)
        go = sections_have_go(im, &eh);

    if (go) {
        snprintf(reason, len, "Go binary: makes raw system calls");
        return INSPECT_UNCOVERED;
    }
    if (!has_interp) {
        /* The glibc loader run as a command loads its argument itself,
         * preload list included. */
        if (has_dynamic && is_glibc_loader(path))
            return INSPECT_COVERED;
        snprintf(reason, len, "statically linked");
        return INSPECT_UNCOVERED;
    }
    if (!is_glibc_loader(interp)) {
        snprintf(reason, len, "not a glibc program (loader %s)", interp);
        return INSPECT_UNCOVERED;
    }
    return INSPECT_COVERED;
}

/*
 * The command that "#!/usr/bin/env ARG" runs.  The kernel passes the rest
 * of the line as one argument; env splits it only after -S, so words are
 * split here either way and env's own options and NAME=VALUE words are
 * skipped.  Returns 0 with the word in out, -1 when there is none.
 */
static int
env_command(const char *arg, char *out, size_t outlen)
{
    const char *p = arg;
    int skip_next = 0, options_done = 0;

    while (*p != '\0') {
        const char *word;
        size_t wlen;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        word = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        wlen = (size_t)(p - word);

        if (skip_next) {
            skip_next = 0;
            continue;
        }
        if (!options_done && word[0] == '-') {
            if (wlen == 2 && word[1] == '-') {
                options_done = 1;
            } else if (wlen > 2 && word[1] == 'S') {
                /* "-Spython3": the split string starts inside the word. */
                word += 2;
                wlen -= 2;
                goto command;
            } else if ((wlen == 2 && (word[1] == 'u' || word[1] == 'C')) ||
                       (wlen == 7 && memcmp(word, "--unset", 7) == 0) ||
                       (wlen == 7 && memcmp(word, "--chdir", 7) == 0)) {
                skip_next = 1;
            }
            continue;
        }
        if (memchr(word, '=', wlen) != NULL)
            continue;
    command:
        if (wlen == 0 || wlen >= outlen)
            return -1;
        memcpy(out, word, wlen);
        out[wlen] = '\0';
        return 0;
    }
    return -1;
}

/* A file that execve() refuses as ENOEXEC: execvp() and shells run it
 * with /bin/sh, so that is what runs. */
static int
judge_shell_fallback(const char *search_path, int depth, char *reason,
                     size_t len)
{
    char inner[512];
    int rv = judge_path("/bin/sh", search_path, depth + 1, inner,
                        sizeof(inner));

    if (rv != INSPECT_COVERED)
        snprintf(reason, len, "run by /bin/sh: %s", inner);
    return rv;
}

static int
judge_script(const unsigned char *head, size_t headlen,
             const char *search_path, int depth, char *reason, size_t len)
{
    char interp[HEAD_SIZE], arg[HEAD_SIZE], word[HEAD_SIZE];
    char found[PATH_MAX], inner[512];
    const unsigned char *p = head + 2, *end = head + headlen, *nl;
    size_t ilen, alen;
    int rv;

    if ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL)
        end = nl;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    for (ilen = 0; p + ilen < end && p[ilen] != ' ' && p[ilen] != '\t';)
        ilen++;
    memcpy(interp, p, ilen);
    interp[ilen] = '\0';
    p += ilen;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    alen = (size_t)(end - p);
    while (alen > 0 && (p[alen - 1] == ' ' || p[alen - 1] == '\t'))
        alen--;
    memcpy(arg, p, alen);
    arg[alen] = '\0';

    if (ilen == 0)
        return judge_shell_fallback(search_path, depth, reason, len);

    rv = judge_path(interp, search_path, depth + 1, inner, sizeof(inner));
    if (rv != INSPECT_COVERED) {
        snprintf(reason, len, "interpreter %s: %s", interp, inner);
        return rv;
    }
    if (strcmp(base_name(interp), "env") != 0 || alen == 0)
        return INSPECT_COVERED;

    /* env runs a command found through PATH; if it finds nothing, nothing
     * runs. */
    if (env_command(arg, word, sizeof(word)) != 0)
        return INSPECT_COVERED;
    if (inspect_find_command(word, search_path, found, sizeof(found)) != 0)
        return INSPECT_COVERED;
    rv = judge_path(found, search_path, depth + 1, inner, sizeof(inner));
    if (rv != INSPECT_COVERED)
        snprintf(reason, len, "interpreter %s (through %s): %s", found,
                 interp, inner);
    return rv;
}

static int
judge_path(const char *path, const char *search_path, int depth,
           char *reason, size_t len)
{
    unsigned char head[HEAD_SIZE];
    char ebuf[128];
    struct image im = {-1, 0};
    struct stat st;
    size_t headlen = 0;
    int rv = INSPECT_ERROR;

    if (depth > INSPECT_MAX_DEPTH) {
        snprintf(reason, len, "too many nested #! interpreters");
        rv = INSPECT_UNCOVERED;
        goto err;
    }
    /* O_NONBLOCK: a FIFO put where a program was expected must not hang
     * us; it is refused below as not a regular file. */
    im.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (im.fd < 0 || fstat(im.fd, &st) != 0) {
        snprintf(reason, len, "%s: %s", path,
                 errno_text(errno, ebuf, sizeof(ebuf)));
        goto err;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(reason, len, "%s: not a regular file", path);
        goto err;
    }
    im.size = (uint64_t)st.st_size;
    while (headlen < sizeof(head)) {
        ssize_t n = pread(im.fd, head + headlen, sizeof(head) - headlen,
                          (off_t)headlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(reason, len, "%s: %s", path,
                     errno_text(errno, ebuf, sizeof(ebuf)));
            goto err;
        }
        if (n == 0)
            break;
        headlen += (size_t)n;
    }

    if (headlen >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0) {
        rv = judge_elf(&im, &st, head, headlen, path, reason, len);
    } else {
        /* Set-id bits and capabilities of a script are ignored by the
         * kernel: only its interpreter matters. */
        close(im.fd);
        im.fd = -1;
        if (headlen >= 2 && head[0] == '#' && head[1] == '!')
            rv = judge_script(head, headlen, search_path, depth, reason, len);
        else
            rv = judge_shell_fallback(search_path, depth, reason, len);
    }
err:
    if (im.fd >= 0)
        close(im.fd);
    return rv;
}

int
inspect_command_path(const char *path, const char *search_path, char *reason,
                     size_t len)
{
    if (len > 0)
        reason[0] = '\0';
    return judge_path(path, search_path, 0, reason, len);
}

int
inspect_command(const char *path, char *reason, size_t len)
{
    return inspect_command_path(path, getenv("PATH"), reason, len);
}

/* 0 when path is an executable regular file, else ENOENT or EACCES as
 * execve() would fail. */
static int
check_executable(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return errno == EACCES ? EACCES : ENOENT;
    if (!S_ISREG(st.st_mode) ||
        faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) != 0)
        return EACCES;
    return 0;
}

int
inspect_find_command(const char *name, const char *search_path, char *out,
                     size_t outlen)
{
    const char *dir, *end;
    size_t namelen = strlen(name);
    int rv, saw_eacces = 0, saw_toolong = 0;

    if (namelen == 0)
        return ENOENT;
    if (strchr(name, '/') != NULL) {
        if (namelen >= outlen)
            return ENAMETOOLONG;
        memcpy(out, name, namelen + 1);
        return check_executable(out);
    }
    if (search_path == NULL)
        search_path = DEFAULT_SEARCH_PATH;
    for (dir = search_path;; dir = end + 1) {
        size_t dirlen;

        end = strchrnul(dir, ':');
        dirlen = (size_t)(end - dir);
        /* An empty entry is the current directory, as for execvp(). */
        if (dirlen + 1 + namelen >= outlen) {
            saw_toolong = 1;
        } else {
            memcpy(out, dir, dirlen);
            if (dirlen > 0)
                out[dirlen++] = '/';
            memcpy(out + dirlen, name, namelen + 1);
            if ((rv = check_executable(out)) == 0)
                return 0;
            if (rv == EACCES)
                saw_eacces = 1;
        }
        if (*end == '\0')
            break;
    }
    if (saw_eacces)
        return EACCES;
    return saw_toolong ? ENAMETOOLONG : ENOENT;
}
