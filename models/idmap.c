/* idmap.c: external string id <-> dense index, an open-addressing hash table (FNV-1a, linear probing). */
#include <string.h>
#include "models/model.h"
#include "models/train_internal.h"

#define EMPTY UINT32_MAX

struct st_recd_idmap_t {
    char **ids;       /* index -> NUL-terminated copy */
    uint32_t *lens;   /* index -> length */
    uint64_t *hashes; /* index -> hash, so growing never rehashes strings */
    size_t size, capacity;
    uint32_t *slots; /* open-addressing table of indexes, EMPTY when free; power-of-two size */
    size_t n_slots;
};

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i != len; ++i) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(0x100000001b3);
    }
    /* final avalanche so the low bits (the slot) depend on every byte */
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

recd_idmap_t *recd_idmap_create(void)
{
    recd_idmap_t *map = train_xcalloc(1, sizeof(*map));
    map->n_slots = 16;
    map->slots = train_xmalloc(map->n_slots * sizeof(*map->slots));
    memset(map->slots, 0xff, map->n_slots * sizeof(*map->slots));
    return map;
}

void recd_idmap_free(recd_idmap_t *map)
{
    if (map == NULL)
        return;
    for (size_t i = 0; i != map->size; ++i)
        free(map->ids[i]);
    free(map->ids);
    free(map->lens);
    free(map->hashes);
    free(map->slots);
    free(map);
}

/* Returns the slot holding id, or the free slot where it would go. */
static size_t probe(const recd_idmap_t *map, const char *id, size_t len, uint64_t h)
{
    size_t mask = map->n_slots - 1, s = (size_t)h & mask;
    for (;;) {
        uint32_t idx = map->slots[s];
        if (idx == EMPTY)
            return s;
        if (map->hashes[idx] == h && map->lens[idx] == len && memcmp(map->ids[idx], id, len) == 0)
            return s;
        s = (s + 1) & mask;
    }
}

static void grow_table(recd_idmap_t *map)
{
    size_t n_slots = map->n_slots * 2, mask = n_slots - 1;
    uint32_t *slots = train_xmalloc(n_slots * sizeof(*slots));
    memset(slots, 0xff, n_slots * sizeof(*slots));
    for (size_t i = 0; i != map->size; ++i) {
        size_t s = (size_t)map->hashes[i] & mask;
        while (slots[s] != EMPTY)
            s = (s + 1) & mask;
        slots[s] = (uint32_t)i;
    }
    free(map->slots);
    map->slots = slots;
    map->n_slots = n_slots;
}

uint32_t recd_idmap_intern(recd_idmap_t *map, const char *id, size_t len)
{
    uint64_t h = fnv1a(id, len);
    size_t s = probe(map, id, len, h);
    if (map->slots[s] != EMPTY)
        return map->slots[s];
    if (map->size >= UINT32_MAX - 1 || len > UINT32_MAX) {
        fprintf(stderr, "recd: id map overflow\n");
        abort();
    }
    if (map->size == map->capacity) {
        map->capacity = map->capacity == 0 ? 16 : map->capacity * 2;
        map->ids = train_xrealloc(map->ids, map->capacity * sizeof(*map->ids));
        map->lens = train_xrealloc(map->lens, map->capacity * sizeof(*map->lens));
        map->hashes = train_xrealloc(map->hashes, map->capacity * sizeof(*map->hashes));
    }
    uint32_t idx = (uint32_t)map->size++;
    char *copy = train_xmalloc(len + 1);
    memcpy(copy, id, len);
    copy[len] = '\0';
    map->ids[idx] = copy;
    map->lens[idx] = (uint32_t)len;
    map->hashes[idx] = h;
    map->slots[s] = idx;
    if (map->size * 4 > map->n_slots * 3) /* keep the load factor under 0.75 */
        grow_table(map);
    return idx;
}

int64_t recd_idmap_find(const recd_idmap_t *map, const char *id, size_t len)
{
    size_t s = probe(map, id, len, fnv1a(id, len));
    return map->slots[s] == EMPTY ? -1 : (int64_t)map->slots[s];
}

size_t recd_idmap_size(const recd_idmap_t *map)
{
    return map->size;
}

const char *recd_idmap_id(const recd_idmap_t *map, uint32_t index)
{
    return index < map->size ? map->ids[index] : NULL;
}

const char *const *recd_idmap_ids(const recd_idmap_t *map)
{
    return (const char *const *)map->ids;
}
