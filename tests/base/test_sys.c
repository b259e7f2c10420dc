/* test_sys.c: base's out-of-memory-aborting allocators and recd_mkdir_parents. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "base/alloc.h"
#include "base/fs.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_sys_xcalloc_zeroes(void **state)
{
    unsigned char *p = recd_xcalloc(1000, 3);
    for (size_t i = 0; i != 3000; ++i)
        assert_int_equal(p[i], 0);
    free(p);
    free(recd_xcalloc(0, 8)); /* never NULL, even for nothing */
    free(recd_xmalloc(0));
}

static void test_sys_xrealloc_keeps_contents(void **state)
{
    int *a = recd_xreallocarray(NULL, 4, sizeof(int));
    for (int i = 0; i != 4; ++i)
        a[i] = i * 7;
    a = recd_xreallocarray(a, 100000, sizeof(int));
    for (int i = 0; i != 4; ++i)
        assert_int_equal(a[i], i * 7);
    a = recd_xrealloc(a, 2 * sizeof(int));
    assert_int_equal(a[1], 7);
    free(a);
}

static void test_sys_xaligned_alloc_aligned(void **state)
{
    for (size_t size = 0; size < 200; size += 37) {
        void *p = recd_xaligned_alloc(64, size);
        assert_int_equal((uintptr_t)p % 64, 0);
        memset(p, 0xab, size);
        free(p);
    }
}

static void test_sys_xstrdup_copies(void **state)
{
    const char *s = "user-42";
    char *d = recd_xstrdup(s), *n = recd_xstrndup(s, 4), *all = recd_xstrndup(s, 100);
    assert_ptr_not_equal(d, s);
    assert_string_equal(d, "user-42");
    assert_string_equal(n, "user");
    assert_string_equal(all, "user-42");
    free(d);
    free(n);
    free(all);
}

/* An overflowing n * size must abort with the message, not wrap around to a small allocation. */
static void test_sys_xcalloc_overflow_aborts(void **state)
{
    int pipefd[2], status;
    char msg[128] = "";
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        volatile size_t n = SIZE_MAX / 4 + 2; /* n * 4 wraps around to 4; volatile: the compiler rejects the constant */
        void *p = recd_xcalloc(n, 4);
        free(p);
        _exit(0);
    }
    close(pipefd[1]);
    ssize_t n = read(pipefd[0], msg, sizeof(msg) - 1);
    close(pipefd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_true(n > 0);
    assert_non_null(strstr(msg, "recd: out of memory ("));
}

static void test_sys_mkdir_parents_creates(void **state)
{
    char dir[] = "/tmp/recd-test-sys-XXXXXX", path[256], sub[256];
    assert_non_null(mkdtemp(dir));

    snprintf(path, sizeof(path), "%s/a//b/c/file.txt", dir);
    assert_int_equal(recd_mkdir_parents(path), 0);
    snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
    assert_true(is_dir(sub));
    snprintf(sub, sizeof(sub), "%s/a/b/c/file.txt", dir);
    assert_false(is_dir(sub));                     /* the last component is not created */
    assert_int_equal(recd_mkdir_parents(path), 0); /* everything exists already */
    assert_int_equal(recd_mkdir_parents("relative-name-without-parent"), 0);
    assert_int_equal(recd_mkdir_parents(""), 0);

    /* a regular file where a directory should be */
    snprintf(sub, sizeof(sub), "%s/plain", dir);
    int fd = open(sub, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/plain/x", dir);
    errno = 0;
    assert_int_equal(recd_mkdir_parents(path), -1);
    assert_int_equal(errno, ENOTDIR);
    snprintf(path, sizeof(path), "%s/plain/x/y", dir);
    errno = 0;
    assert_int_equal(recd_mkdir_parents(path), -1);
    assert_int_equal(errno, ENOTDIR);

    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_sys_fsync_path_checks_kind(void **state)
{
    char dir[] = "/tmp/recd-test-sys-XXXXXX", file[256];
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/f", dir);
    int fd = open(file, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);

    assert_int_equal(recd_fsync_path(dir, O_DIRECTORY), 0);
    assert_int_equal(recd_fsync_path(file, 0), 0);
    errno = 0;
    assert_int_equal(recd_fsync_path(file, O_DIRECTORY), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(unlink(file), 0);
    errno = 0;
    assert_int_equal(recd_fsync_path(file, 0), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(rmdir(dir), 0);
}

int test_sys_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sys_xcalloc_zeroes),          cmocka_unit_test(test_sys_xrealloc_keeps_contents),
        cmocka_unit_test(test_sys_xaligned_alloc_aligned),  cmocka_unit_test(test_sys_xstrdup_copies),
        cmocka_unit_test(test_sys_xcalloc_overflow_aborts), cmocka_unit_test(test_sys_mkdir_parents_creates),
        cmocka_unit_test(test_sys_fsync_path_checks_kind),
    };
    return cmocka_run_group_tests_name("sys", tests, NULL, NULL);
}
