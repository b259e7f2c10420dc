/* bench_common.h: what the bench programs share — where MovieLens is, loading a log as recd-train does, scoring by factors. */
#ifndef RECD_BENCH_BENCH_COMMON_H
#define RECD_BENCH_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include "models/model.h"

/** Writes ${RECD_DATA_DIR:-<repo>/../shared/data}/ml-100k/u.data into buf (the data is read in place, never copied). */
void bench_ml100k_path(char *buf, size_t len);

/**
 * Reads path through recd-train's ingestion (default options; with binary, every value becomes 1) into a users x items
 * matrix with duplicates summed. *rows_read (may be NULL) receives the rows read. Returns RECD_OK, or a RECD_E* code with
 * a message in err — the caller reports the benchmark as skipped.
 */
int bench_load_csr(const char *path, int binary, recd_csr_t *all, size_t *rows_read, char *err, size_t errlen);

/** Row-major factors of a factor model, for bench_score_factors. */
typedef struct st_bench_factors_t {
    const float *X, *Y;
    uint32_t f;
    size_t n_items;
} bench_factors_t;

/** A recd_eval_score_cb: scores = Y · x_user (data is a bench_factors_t). */
void bench_score_factors(void *data, uint32_t user, float *scores);

#endif
