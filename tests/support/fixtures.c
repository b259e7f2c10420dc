/* fixtures.c: shared test fixtures: temp directories, the built binaries, a generated model artifact and registry. */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include "models/model.h"
#include "registry/registry.h"
#include "tests/support/fixtures.h"

int support_tmpdir_create(char *out, size_t outlen, const char *prefix)
{
    if (snprintf(out, outlen, "/tmp/%s-XXXXXX", prefix) >= (int)outlen)
        return -1;
    return mkdtemp(out) != NULL ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    return remove(path);
}

int support_remove_tree(const char *dir)
{
    if (dir[0] == '\0' || getenv("RECD_KEEP_TMP") != NULL)
        return 0;
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0) {
        fprintf(stderr, "support: cannot remove %s\n", dir);
        return -1;
    }
    return 0;
}

int support_tmpfs_mount(const char *dir, const char *size)
{
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%s,mode=0755", size);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return -1;
    return mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts);
}

int support_tmpfs_resize(const char *dir, const char *size)
{
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%s", size);
    return mount(NULL, dir, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV, opts);
}

int support_tmpfs_unmount(const char *dir)
{
    return umount2(dir, MNT_DETACH);
}

void support_binary_path(const char *name, char *out, size_t outlen)
{
    const char *bindir = getenv("RECD_BINARY_DIR");
    snprintf(out, outlen, "%s/%s", bindir != NULL ? bindir : ".", name);
}

int support_fixture_write_artifact(const char *path, int variant, int corrupt)
{
    enum {
        G = SUPPORT_FIXTURE_N_GROUPS,
        NI = G * SUPPORT_FIXTURE_ITEMS_PER_GROUP,
        NU = G * SUPPORT_FIXTURE_USERS_PER_GROUP,
        F = G
    };
    char *user_ids[NU], *item_ids[NI], err[256];
    float user_f[NU * F], item_f[NI * F], pop[NI];
    uint32_t rows[NU * 3], cols[NU * 3];
    recd_csr_t csr = {0};
    int ret = -1;

    for (int i = 0; i < NI; ++i) {
        int g = i / SUPPORT_FIXTURE_ITEMS_PER_GROUP, n = i % SUPPORT_FIXTURE_ITEMS_PER_GROUP;
        item_ids[i] = malloc(16);
        snprintf(item_ids[i], 16, "i%d%d", g, n);
        for (int f = 0; f < F; ++f)
            item_f[i * F + f] =
                f == g ? 1.0f - 0.05f * (float)((n + variant * 3) % SUPPORT_FIXTURE_ITEMS_PER_GROUP) : 0.02f * (float)((i + f) % 3);
        pop[i] = (float)(NI - i) + (variant ? (float)(i % 7) : 0);
    }
    for (int u = 0; u < NU; ++u) {
        int g = u / SUPPORT_FIXTURE_USERS_PER_GROUP;
        user_ids[u] = malloc(16);
        snprintf(user_ids[u], 16, "u%d%d", g, u % SUPPORT_FIXTURE_USERS_PER_GROUP);
        for (int f = 0; f < F; ++f)
            user_f[u * F + f] = f == g ? 1.0f : 0.0f;
        for (int j = 0; j < 3; ++j) {
            rows[u * 3 + j] = (uint32_t)u;
            cols[u * 3 + j] = (uint32_t)(g * SUPPORT_FIXTURE_ITEMS_PER_GROUP + j);
        }
    }
    if (recd_csr_from_coo(&csr, NU, NI, rows, cols, NULL, NU * 3, RECD_MERGE_SUM) != 0)
        goto Exit;
    recd_model_spec_t spec = {.kind = RECD_MODEL_ALS,
                              .n_factors = F,
                              .n_users = NU,
                              .n_items = NI,
                              .user_ids = (const char *const *)user_ids,
                              .item_ids = (const char *const *)item_ids,
                              .user_factors = user_f,
                              .item_factors = item_f,
                              .item_popularity = pop,
                              .alpha = 10.0f,
                              .reg = 0.1f,
                              .user_items = &csr,
                              .metadata_json = "{\"trainer\":\"harness\"}"};
    if (recd_model_write(&spec, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "support: %s\n", err);
        goto Exit;
    }
    if (corrupt) {
        int fd = open(path, O_RDWR);
        unsigned char c;
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || pread(fd, &c, 1, st.st_size / 2) != 1) {
            if (fd >= 0)
                close(fd);
            goto Exit;
        }
        c ^= 0x5a;
        int wrote = pwrite(fd, &c, 1, st.st_size / 2) == 1;
        close(fd);
        if (!wrote)
            goto Exit;
    }
    ret = 0;
Exit:
    recd_csr_dispose(&csr);
    for (int i = 0; i < NI; ++i)
        free(item_ids[i]);
    for (int u = 0; u < NU; ++u)
        free(user_ids[u]);
    return ret;
}

uint64_t support_fixture_publish(const char *registry, const char *model, int variant, int corrupt)
{
    char staging[1024], path[1200];
    uint64_t version = 0;
    if (recd_registry_stage(registry, model, staging, sizeof(staging)) != 0)
        return 0;
    snprintf(path, sizeof(path), "%s/%s", staging, RECD_REGISTRY_ARTIFACT);
    if (support_fixture_write_artifact(path, variant, corrupt) != 0 ||
        recd_registry_commit(registry, model, staging, &version) != 0)
        return 0;
    return version;
}
