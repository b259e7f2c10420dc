/* proc.h: start a server process for a test (recd, redis-server, a broker), tell when it is ready by probing, stop it. */
#ifndef RECD_TESTS_SUPPORT_PROC_H
#define RECD_TESTS_SUPPORT_PROC_H

#include <sys/types.h>

typedef struct st_support_proc_t support_proc_t;

/**
 * Asks the started process whether it is ready. Returns 1 when it answered on its port and the answer came from this
 * very process (the probe compares an identity the server reports, such as its pid, with p->pid), 0 when it does not
 * answer yet (the probe runs again), or -1 when something else answers on that port (start fails at once).
 */
typedef int (*support_probe_cb)(const support_proc_t *p, void *data);

/** A started server process. */
struct st_support_proc_t {
    pid_t pid;     /* -1 once stopped or when it never started */
    int port;      /* the port it was told to listen on, for the probe and the test */
    int status;    /* the raw wait status once it was reaped */
    char log[512]; /* its stdout and stderr ("" when they were inherited) */
};

/** How to start a server process; unset members are zero. */
typedef struct st_support_proc_spec_t {
    const char *const *argv; /* argv[0] is the path of the program; NULL-terminated */
    const char *const *env;  /* NAME=VALUE entries added to (or replacing in) the test's environment, NULL-terminated */
    const char *log;         /* file that receives the process's stdout and stderr (truncated); NULL: inherit the test's */
    int port;                /* copied to the proc for the probe; pick it with support_free_port */
    support_probe_cb probe;  /* NULL: ready as soon as it is started */
    void *probe_data;
    unsigned ready_timeout_ms; /* bound on the wait for readiness (0: 30 s, room for sanitizer builds) */
} support_proc_spec_t;

/**
 * Forks and execs spec->argv and probes until the process is ready. The child gets SIGTERM when the thread that started
 * it exits, so a failed assertion never leaves a server behind; start from a thread that outlives it. Returns 0 when
 * ready, or -1 (with a line on stderr) when the exec failed, the process exited, the probe found another process on the
 * port, or the bound passed; the process is then stopped and reaped, so no support_proc_stop is needed.
 */
int support_proc_start(support_proc_t *p, const support_proc_spec_t *spec);

/**
 * Sends SIGTERM, waits up to grace_ms for the process to exit, then sends SIGKILL and reaps it. Returns its exit code
 * when it exited by itself, or -1 when it was killed by a signal (p->status tells which) or was not running.
 */
int support_proc_stop(support_proc_t *p, unsigned grace_ms);

/** Probe for recd: GET /healthz answers 200 with "pid" equal to p->pid. */
int support_probe_recd(const support_proc_t *p, void *data);

/** Probe for redis-server: PING answers +PONG and INFO server reports process_id equal to p->pid. */
int support_probe_redis(const support_proc_t *p, void *data);

#endif
