/* remember.c: accepted events into the feature store, one append per user, no fold-in on the event path. */
#include <stdlib.h>
#include <string.h>
#include "base/text.h"
#include "serve/serve_internal.h"

typedef struct st_ref_t {
    const recd_serve_event_t *ev;
    size_t index;
} ref_t;

static int cmp_id(recd_serve_id_t a, recd_serve_id_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.base, b.base, n);
    return c != 0 ? c : (a.len > b.len) - (a.len < b.len);
}

/* By user, then by position in the batch, so each user's events keep their order. */
static int cmp_user_then_index(const void *a, const void *b)
{
    const ref_t *x = a, *y = b;
    int c = cmp_id(x->ev->user, y->ev->user);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

typedef struct st_group_t {
    size_t first, n; /* a run of the sorted refs */
    size_t last;     /* batch position of the user's last event */
} group_t;

static int cmp_last(const void *a, const void *b)
{
    const group_t *x = a, *y = b;
    return (x->last > y->last) - (x->last < y->last);
}

void recd_serve_remember(recd_serve_ctx_t *ctx, const recd_serve_event_t *events, size_t n)
{
    recd_serve_t *s = ctx->worker->serve;
    size_t unknown = 0, n_groups = 0;
    const recd_serve_event_t *first_unknown = NULL;

    if (n == 0)
        return;
    recd_serve_attribute(ctx, events, n);
    if (s->config.store_written_by_updater)
        return; /* the updater folds these events into the store from the topic; a second append would count them twice */
    ref_t *refs = recd_serve_ctx_alloc(ctx, sizeof(*refs) * n);
    for (size_t i = 0; i < n; ++i) {
        refs[i] = (ref_t){&events[i], i};
        if (ctx->model != NULL && recd_model_find_item(ctx->model, events[i].item.base, events[i].item.len) < 0 && unknown++ == 0)
            first_unknown = &events[i];
    }
    qsort(refs, n, sizeof(*refs), cmp_user_then_index);
    group_t *groups = recd_serve_ctx_alloc(ctx, sizeof(*groups) * n);
    for (size_t i = 0; i < n; ++i) {
        if (i == 0 || cmp_id(refs[i - 1].ev->user, refs[i].ev->user) != 0)
            groups[n_groups++] = (group_t){i, 0, 0};
        groups[n_groups - 1].n++;
        groups[n_groups - 1].last = refs[i].index;
    }
    /* users in the order of their last event: the store's recency (its eviction order) is what one append per event gave */
    qsort(groups, n_groups, sizeof(*groups), cmp_last);
    recd_feature_item_t *items = recd_serve_ctx_alloc(ctx, sizeof(*items) * n);
    for (size_t g = 0; g < n_groups; ++g) {
        const recd_serve_event_t *first = refs[groups[g].first].ev;
        for (size_t i = 0; i < groups[g].n; ++i) {
            const recd_serve_event_t *ev = refs[groups[g].first + i].ev;
            items[i] = (recd_feature_item_t){ev->item.base, ev->item.len, ev->weight};
        }
        recd_feature_store_append(s->store, first->user.base, first->user.len, items, groups[g].n);
    }

    if (unknown > 0 && recd_log_enabled(s->log, RECD_LOG_INFO)) {
        char qitem[600];
        recd_log_write(s->log, RECD_LOG_INFO, "events for items unknown to the model",
                       "\"count\":%zu,\"first_item\":%s,\"version\":%llu", unknown,
                       recd_json_quote(qitem, sizeof(qitem), first_unknown->item.base, first_unknown->item.len),
                       (unsigned long long)recd_model_version(ctx->model));
    }
}
