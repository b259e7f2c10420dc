/* fuzz_ingest.c: libFuzzer target for one ingestion parser, chosen at build time with -DFUZZ_PARSER=<n> (see fuzz/run). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "train/ingest.h"
#include "train/ingest_internal.h"

#define FUZZ_DELIMITED 1
#define FUZZ_JSONL 2
#define FUZZ_JSON_ARRAY 3
#define FUZZ_XML 4

#ifndef FUZZ_PARSER
#error "define FUZZ_PARSER"
#endif

/* Runs one parse and checks the report's bookkeeping, which must hold for any input. */
static void one(const uint8_t *data, size_t size, recd_format_t format, const char *user_col, const char *time_col)
{
    recd_ingest_options_t o;
    recd_interactions_t x;
    recd_ingest_report_t rep;
    char err[256];
    recd_ingest_options_init(&o);
    o.format = format;
    o.user_col = user_col;
    o.time_col = time_col;
    o.min_value = -1e6;
    o.max_value = 1e6;
    o.max_reject_rate = 0.5;
    o.max_samples = 3;
    recd_interactions_init(&x);
    int ret = ingest_buffer(data, size, NULL, &o, &x, &rep, err, sizeof(err));
    uint64_t sum = 0;
    for (int i = 0; i < RECD_REJECT__COUNT; i++)
        sum += rep.rejected[i];
    if (ret == RECD_OK || ret == RECD_EINVAL) {
        if (rep.rows_read != rep.rows_accepted + rep.rows_rejected || sum != rep.rows_rejected || x.n != rep.rows_accepted ||
            rep.n_samples > o.max_samples) {
            fprintf(stderr, "inconsistent report: read %llu accepted %llu rejected %llu sum %llu n %zu\n",
                    (unsigned long long)rep.rows_read, (unsigned long long)rep.rows_accepted, (unsigned long long)rep.rows_rejected,
                    (unsigned long long)sum, x.n);
            abort();
        }
        for (size_t i = 0; i < x.n; i++)
            if (x.user[i] >= recd_idmap_size(x.users) || x.item[i] >= recd_idmap_size(x.items) || !(x.value[i] == x.value[i]))
                abort();
    }
    char *js = recd_ingest_report_json(&rep);
    free(js);
    recd_ingest_report_dispose(&rep);
    recd_interactions_dispose(&x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#if FUZZ_PARSER == FUZZ_DELIMITED
    one(data, size, RECD_FORMAT_CSV, NULL, NULL);
    one(data, size, RECD_FORMAT_UDATA, "1", NULL);
    one(data, size, RECD_FORMAT_AUTO, NULL, "timestamp"); /* detection, and a named column */
#elif FUZZ_PARSER == FUZZ_JSONL
    one(data, size, RECD_FORMAT_JSONL, NULL, NULL);
    one(data, size, RECD_FORMAT_EVENTS, NULL, NULL);
#elif FUZZ_PARSER == FUZZ_JSON_ARRAY
    one(data, size, RECD_FORMAT_JSON, NULL, NULL);
    one(data, size, RECD_FORMAT_JSON, "uid", "when");
#elif FUZZ_PARSER == FUZZ_XML
    one(data, size, RECD_FORMAT_XML, NULL, NULL);
#endif
    return 0;
}
