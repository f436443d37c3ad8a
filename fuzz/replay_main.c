/* replay_main: a standalone driver for the harnesses, for builds without
 * libFuzzer (any compiler; the CTest tests fuzz_replay_<harness>).
 *
 * Usage: replay_<harness> PATH...   Every regular file in each directory
 * (sorted by name, not recursive) and every file named directly is passed to
 * LLVMFuzzerTestOneInput() once, from a heap buffer of exactly its size. A
 * path that does not exist is reported and skipped (a harness may have no
 * regressions yet). Exit 0 when at least one input ran and none trapped (a
 * broken invariant aborts the process, naming the input first on stderr);
 * exit 1 when no input was found or a file could not be read. */
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#define REPLAY_MAX_FILE (16u << 20) /* bigger files are an error, not an input */

/* LLVMFuzzerInitialize is optional for a harness. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;
    int rc = -1;

    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > (long)REPLAY_MAX_FILE ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "replay: %s: cannot size (or over %u bytes)\n", path, REPLAY_MAX_FILE);
        goto out_close;
    }
    buf = malloc(n ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "replay: %s: read failed\n", path);
        goto out_free;
    }
    /* Name the input before running it, so a trap is attributable. */
    fprintf(stderr, "replay: %s (%ld bytes)\n", path, n);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    rc = 0;
out_free:
    free(buf);
out_close:
    fclose(f);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir in name order; adds to *count. */
static int run_dir(const char *dir, unsigned long *count)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    int rc = 0;

    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap ? cap * 2 : 64) * sizeof(*names));
            if (!nn) {
                rc = -1;
                goto out;
            }
            names = nn;
            cap = cap ? cap * 2 : 64;
        }
        names[n] = malloc(strlen(dir) + strlen(de->d_name) + 2);
        if (!names[n]) {
            rc = -1;
            goto out;
        }
        snprintf(names[n], strlen(dir) + strlen(de->d_name) + 2, "%s/%s", dir, de->d_name);
        n++;
    }
    qsort(names, n, sizeof(*names), cmp_names);
    for (i = 0; i < n && rc == 0; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        rc = run_file(names[i]);
        if (rc == 0)
            (*count)++;
    }
out:
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned long count = 0;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++) {
        struct stat st;
        int rc;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: absent, skipped\n", argv[i]);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = run_dir(argv[i], &count);
        } else {
            rc = run_file(argv[i]);
            count += rc == 0;
        }
        if (rc != 0)
            return 1;
    }
    printf("replay: %lu inputs, no failure\n", count);
    return count > 0 ? 0 : 1;
}
