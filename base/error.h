/* error.h: the RECD_E* codes every module returns, and their descriptions. */
#ifndef RECD_BASE_ERROR_H
#define RECD_BASE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define RECD_OK 0
#define RECD_EINVAL (-1)     /* invalid argument */
#define RECD_ENOMEM (-2)     /* out of memory */
#define RECD_EIO (-3)        /* I/O error (errno is kept) */
#define RECD_EFORMAT (-4)    /* malformed file or input */
#define RECD_ECHECKSUM (-5)  /* SHA-256 mismatch */
#define RECD_EVERSION (-6)   /* unsupported format version */
#define RECD_ENOTFOUND (-7)  /* no such user, item, model or version */
#define RECD_EEXIST (-8)     /* already exists */
#define RECD_ENUMERIC (-9)   /* numerical failure (e.g. matrix not positive definite) */
#define RECD_EBUSY (-10)     /* a bound was reached (queue full, log full); retry later */
#define RECD_EOVERFLOW (-11) /* a number would pass its largest value (version numbers exhausted) */

/** Returns a static English description of a RECD_E* code. */
const char *recd_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
