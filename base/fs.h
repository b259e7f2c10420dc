/* fs.h: filesystem helpers shared by every module — parent directories, fsync of a path. */
#ifndef RECD_BASE_FS_H
#define RECD_BASE_FS_H

/**
 * Creates every missing parent directory of path (mode 0755), like `mkdir -p "$(dirname path)"`; path itself is not
 * created. Returns 0 when every parent exists as a directory, or -1 with errno set (ENOTDIR when one is something else).
 */
int recd_mkdir_parents(const char *path);

/**
 * fsyncs the file or directory at path, opened read-only with extra open(2) flags (O_DIRECTORY for a directory whose
 * entries, such as a rename into it, must be durable). Returns 0, or -1 with errno from open or fsync.
 */
int recd_fsync_path(const char *path, int open_flags);

#endif
