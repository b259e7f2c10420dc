/* idmap.c: external string id <-> dense index, an open-addressing hash table (linear probing, hash tags, string arena). */
#include <string.h>
#include "base/hash.h"
#include "models/model.h"
#include "models/train_internal.h"

/*
 * Ingestion interns two ids per row, so this table is on the hot path of every input file, and with many distinct ids
 * every lookup is a string of cache misses. A slot therefore holds everything a probe needs: the index, 32 bits of the
 * hash (compared before any bytes) and a pointer to the stored copy, whose length sits just before its bytes in the arena.
 * A hit touches one slot and one copy; a probe past another id usually only the slot. Load factor at most 1/2 keeps probe
 * runs short. Copies live in large arena blocks (never moved, so recd_idmap_id's pointers stay valid) instead of one
 * malloc each.
 */

#define EMPTY UINT32_MAX
#define ARENA_BLOCK ((size_t)1 << 20)

typedef struct st_slot_t {
    const char *id; /* the arena copy; its uint32_t length is stored in the 4 bytes before it */
    uint32_t index; /* EMPTY when free */
    uint32_t tag;   /* high 32 bits of the id's hash */
} slot_t;

typedef struct st_arena_block_t {
    struct st_arena_block_t *next;
    size_t used, size;
    char bytes[];
} arena_block_t;

struct st_recd_idmap_t {
    char **ids;       /* index -> NUL-terminated copy in the arena */
    uint64_t *hashes; /* index -> hash, so growing never rehashes strings */
    size_t size, capacity;
    slot_t *slots; /* power-of-two size */
    size_t mask;
    arena_block_t *arena; /* newest block first */
};

static slot_t *new_slots(size_t n)
{
    slot_t *slots = recd_xmalloc(n * sizeof(*slots));
    for (size_t i = 0; i != n; ++i)
        slots[i] = (slot_t){NULL, EMPTY, 0};
    return slots;
}

recd_idmap_t *recd_idmap_create(void)
{
    recd_idmap_t *map = recd_xcalloc(1, sizeof(*map));
    map->mask = 15;
    map->slots = new_slots(map->mask + 1);
    return map;
}

void recd_idmap_free(recd_idmap_t *map)
{
    if (map == NULL)
        return;
    for (arena_block_t *b = map->arena, *next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    free(map->ids);
    free(map->hashes);
    free(map->slots);
    free(map);
}

/* Returns the slot holding id, or the free slot where it would go. */
static size_t probe(const recd_idmap_t *map, const char *id, size_t len, uint64_t h)
{
    const uint32_t tag = (uint32_t)(h >> 32);
    size_t s = (size_t)h & map->mask;
    for (;;) {
        slot_t slot = map->slots[s];
        if (slot.index == EMPTY)
            return s;
        if (slot.tag == tag) {
            uint32_t stored_len;
            memcpy(&stored_len, slot.id - sizeof(stored_len), sizeof(stored_len));
            if (stored_len == len && memcmp(slot.id, id, len) == 0)
                return s;
        }
        s = (s + 1) & map->mask;
    }
}

static void grow_table(recd_idmap_t *map)
{
    size_t mask = map->mask * 2 + 1;
    slot_t *slots = new_slots(mask + 1);
    for (size_t i = 0; i != map->size; ++i) {
        size_t s = (size_t)map->hashes[i] & mask;
        while (slots[s].index != EMPTY)
            s = (s + 1) & mask;
        slots[s] = (slot_t){map->ids[i], (uint32_t)i, (uint32_t)(map->hashes[i] >> 32)};
    }
    free(map->slots);
    map->slots = slots;
    map->mask = mask;
}

/* A copy of id (NUL-terminated, its length in the 4 bytes before it) in the arena; blocks are never moved. */
static char *arena_copy(recd_idmap_t *map, const char *id, size_t len)
{
    const uint32_t len32 = (uint32_t)len;
    const size_t need = sizeof(len32) + len + 1;
    arena_block_t *b = map->arena;
    if (b == NULL || b->size - b->used < need) {
        size_t size = need > ARENA_BLOCK ? need : ARENA_BLOCK;
        b = recd_xmalloc(sizeof(*b) + size);
        b->next = map->arena;
        b->used = 0;
        b->size = size;
        map->arena = b;
    }
    char *rec = b->bytes + b->used;
    memcpy(rec, &len32, sizeof(len32));
    memcpy(rec + sizeof(len32), id, len);
    rec[sizeof(len32) + len] = '\0';
    b->used += need;
    return rec + sizeof(len32);
}

uint32_t recd_idmap_intern(recd_idmap_t *map, const char *id, size_t len)
{
    uint64_t h = recd_hash_id(id, len);
    size_t s = probe(map, id, len, h);
    if (map->slots[s].index != EMPTY)
        return map->slots[s].index;
    if (map->size >= UINT32_MAX - 1 || len > UINT32_MAX - 1) {
        fprintf(stderr, "recd: id map overflow\n");
        abort();
    }
    if (map->size == map->capacity) {
        map->capacity = map->capacity == 0 ? 16 : map->capacity * 2;
        map->ids = recd_xrealloc(map->ids, map->capacity * sizeof(*map->ids));
        map->hashes = recd_xrealloc(map->hashes, map->capacity * sizeof(*map->hashes));
    }
    uint32_t idx = (uint32_t)map->size++;
    map->ids[idx] = arena_copy(map, id, len);
    map->hashes[idx] = h;
    map->slots[s] = (slot_t){map->ids[idx], idx, (uint32_t)(h >> 32)};
    if (map->size * 2 > map->mask + 1) /* keep the load factor at most 1/2 */
        grow_table(map);
    return idx;
}

int64_t recd_idmap_find(const recd_idmap_t *map, const char *id, size_t len)
{
    size_t s = probe(map, id, len, recd_hash_id(id, len));
    return map->slots[s].index == EMPTY ? -1 : (int64_t)map->slots[s].index;
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
