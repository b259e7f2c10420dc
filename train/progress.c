/* progress.c: the tuning progress display — a redrawn bar with ETA on a terminal, one plain line per step otherwise. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "base/clock.h"
#include "train/trainer.h"

void recd_progress_format(size_t done, size_t total, double elapsed, int width, char *buf, size_t len)
{
    char bar[128];
    if (width > (int)sizeof(bar) - 1)
        width = (int)sizeof(bar) - 1;
    int filled = total != 0 ? (int)((double)done / (double)total * width) : width;
    for (int i = 0; i != width; ++i)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    char eta[32] = "--:--";
    if (done != 0 && done <= total) {
        long s = (long)(elapsed / (double)done * (double)(total - done) + 0.5);
        snprintf(eta, sizeof(eta), "%ld:%02ld", s / 60, s % 60);
    }
    snprintf(buf, len, "[%s] %zu/%zu %3d%% ETA %s", bar, done, total, total != 0 ? (int)(100.0 * done / total) : 100, eta);
}

void recd_progress_init(recd_progress_t *p, FILE *out, size_t total)
{
    p->out = out;
    p->tty = isatty(fileno(out));
    p->total = total;
    p->done = 0;
    p->started = recd_monotonic_seconds();
    if (p->tty) {
        char line[256];
        recd_progress_format(0, total, 0, 30, line, sizeof(line));
        fprintf(out, "%s", line);
        fflush(out);
    }
}

void recd_progress_step(recd_progress_t *p, const char *message)
{
    char line[256];
    ++p->done;
    recd_progress_format(p->done, p->total, recd_monotonic_seconds() - p->started, 30, line, sizeof(line));
    if (p->tty) {
        /* the step's result on its own line, then the bar redrawn below it */
        fprintf(p->out, "\r\033[K%s\n%s", message, line);
    } else {
        const char *eta = strstr(line, "ETA ");
        fprintf(p->out, "%s  (%zu/%zu, %s)\n", message, p->done, p->total, eta != NULL ? eta : "");
    }
    fflush(p->out);
}

void recd_progress_finish(recd_progress_t *p)
{
    if (p->tty) {
        fputc('\n', p->out);
        fflush(p->out);
    }
}
