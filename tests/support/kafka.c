/* kafka.c: the dev broker as a test server, and kcat as the test's consumer. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "base/clock.h"
#include "tests/support/fixtures.h"
#include "tests/support/kafka.h"

#define KCAT "/usr/bin/kcat"
#define CONFIRM_TIMEOUT_S 20.0
#define KCAT_TIMEOUT_S 30.0
#define POLL_MS 20

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The whole log file, NUL-terminated (malloc'ed), or NULL. */
static char *read_log(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL)
        return NULL;
    do {
        if (cap - len < 4096) {
            cap = cap * 2 + 8192;
            buf = realloc(buf, cap);
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Ready once the first line "bootstrap=...\n" is whole; it is in a file only this process writes, so it is its own. */
static int probe_bootstrap(const support_proc_t *p, void *data)
{
    support_kafka_t *k = data;
    char *log = read_log(p->log), *eol;
    int ready = 0;

    if (log != NULL && strncmp(log, "bootstrap=", 10) == 0 && (eol = strchr(log, '\n')) != NULL) {
        size_t n = (size_t)(eol - (log + 10));
        if (n > 0 && n < sizeof(k->bootstrap)) {
            memcpy(k->bootstrap, log + 10, n);
            k->bootstrap[n] = '\0';
            ready = 1;
        } else {
            ready = -1;
        }
    }
    free(log);
    return ready;
}

int support_kafka_start(support_kafka_t *k, const char *log)
{
    char path[512];

    memset(k, 0, sizeof(*k));
    support_binary_path("recd-kafka-dev-broker", path, sizeof(path));
    const char *argv[] = {path, NULL};
    support_proc_spec_t spec = {.argv = argv, .log = log, .probe = probe_bootstrap, .probe_data = k};
    if (support_proc_start(&k->proc, &spec) != 0) {
        fprintf(stderr, "support: the dev broker did not print its bootstrap line (log: %s)\n", log);
        return -1;
    }
    return 0;
}

/* Number of lines equal to line in the log. */
static int count_lines(const char *path, const char *line)
{
    char *log = read_log(path);
    size_t n = strlen(line);
    int count = 0;

    for (const char *p = log; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) == n && memcmp(p, line, n) == 0)
            ++count;
        p = eol + 1;
    }
    free(log);
    return count;
}

static int signal_and_confirm(support_kafka_t *k, int sig, const char *line, int *sent)
{
    double deadline = recd_monotonic_seconds() + CONFIRM_TIMEOUT_S;

    if (k->proc.pid <= 0 || kill(k->proc.pid, sig) != 0)
        return -1;
    ++*sent;
    while (count_lines(k->proc.log, line) < *sent) {
        if (recd_monotonic_seconds() > deadline) {
            fprintf(stderr, "support: the dev broker did not confirm \"%s\" within %.0f s (log: %s)\n", line, CONFIRM_TIMEOUT_S,
                    k->proc.log);
            return -1;
        }
        sleep_ms(POLL_MS);
    }
    return 0;
}

int support_kafka_set_down(support_kafka_t *k)
{
    return signal_and_confirm(k, SIGUSR1, "brokers=down", &k->downs);
}

int support_kafka_set_up(support_kafka_t *k)
{
    return signal_and_confirm(k, SIGUSR2, "brokers=up", &k->ups);
}

void support_kafka_stop(support_kafka_t *k)
{
    support_proc_stop(&k->proc, 5000);
}

int support_kcat_available(void)
{
    return access(KCAT, X_OK) == 0;
}

char *support_kafka_consume(const support_kafka_t *k, const char *topic, const char *format, size_t *len)
{
    char out_path[] = "/tmp/recd-kcat-XXXXXX";
    double deadline = recd_monotonic_seconds() + KCAT_TIMEOUT_S;
    char *out = NULL;
    int fd, status = -1;
    pid_t pid, parent = getpid();

    if ((fd = mkstemp(out_path)) < 0)
        return NULL;
    const char *argv[] = {KCAT, "-C", "-q", "-e", "-b", k->bootstrap, "-t", topic, "-o", "beginning", "-f", format, NULL};
    if ((pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(fd, STDOUT_FILENO);
        execv(KCAT, (char *const *)argv);
        _exit(127);
    }
    close(fd);
    if (pid < 0)
        goto Exit;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            goto Exit;
        if (recd_monotonic_seconds() > deadline) {
            fprintf(stderr, "support: kcat did not finish reading %s within %.0f s\n", topic, KCAT_TIMEOUT_S);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            goto Exit;
        }
        sleep_ms(POLL_MS);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "support: kcat failed reading %s (wait status %d)\n", topic, status);
        goto Exit;
    }
    if ((out = read_log(out_path)) != NULL)
        *len = strlen(out);
Exit:
    unlink(out_path);
    return out;
}
