/* bench_common.c: the MovieLens path, log loading and factor scoring shared by the bench programs. */
#include <stdio.h>
#include <stdlib.h>
#include <cblas.h>
#include "train/ingest.h"
#include "bench/bench_common.h"

void bench_ml100k_path(char *buf, size_t len)
{
    const char *dir = getenv("RECD_DATA_DIR");
    snprintf(buf, len, "%s/ml-100k/u.data", dir != NULL ? dir : RECD_SOURCE_DIR "/../shared/data");
}

int bench_load_csr(const char *path, int binary, recd_csr_t *all, size_t *rows_read, char *err, size_t errlen)
{
    recd_ingest_options_t o;
    recd_interactions_t x;
    recd_ingest_report_t report = {0};
    int ret;

    recd_ingest_options_init(&o);
    recd_interactions_init(&x);
    if ((ret = recd_ingest_file(path, &o, &x, &report, err, errlen)) != RECD_OK)
        goto Exit;
    if (binary)
        for (size_t i = 0; i != x.n; ++i)
            x.value[i] = 1;
    if ((ret = recd_csr_from_coo(all, recd_idmap_size(x.users), recd_idmap_size(x.items), x.user, x.item, x.value, x.n,
                                 RECD_MERGE_SUM)) != RECD_OK) {
        snprintf(err, errlen, "building the matrix: %s", recd_strerror(ret));
        goto Exit;
    }
    if (rows_read != NULL)
        *rows_read = x.n;
Exit:
    recd_interactions_dispose(&x);
    recd_ingest_report_dispose(&report);
    return ret;
}

void bench_score_factors(void *data, uint32_t user, float *scores)
{
    const bench_factors_t *s = data;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)s->n_items, (int)s->f, 1.0f, s->Y, (int)s->f, s->X + (size_t)user * s->f, 1, 0.0f,
                scores, 1);
}
