/* temp_catalog_experiments.c: TEMP until "versions" lands recd_catalog_experiments in registry/catalog.c (Contract 1):
 * no snapshot has experiments yet. Alone in its file so tests can link their own; drop at merge. */
#include "registry/catalog.h"

const recd_control_experiment_t *recd_catalog_experiments(const recd_catalog_t *c, const char *name, size_t len, size_t *n)
{
    *n = 0;
    return NULL;
}
