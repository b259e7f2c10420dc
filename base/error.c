/* error.c: the descriptions of the RECD_E* codes that every module returns. */
#include "base/error.h"

const char *recd_strerror(int err)
{
    switch (err) {
    case RECD_OK:
        return "success";
    case RECD_EINVAL:
        return "invalid argument";
    case RECD_ENOMEM:
        return "out of memory";
    case RECD_EIO:
        return "I/O error";
    case RECD_EFORMAT:
        return "malformed input";
    case RECD_ECHECKSUM:
        return "checksum mismatch";
    case RECD_EVERSION:
        return "unsupported format version";
    case RECD_ENOTFOUND:
        return "not found";
    case RECD_EEXIST:
        return "already exists";
    case RECD_ENUMERIC:
        return "numerical failure";
    case RECD_EBUSY:
        return "resource busy";
    case RECD_EOVERFLOW:
        return "value too large (numbers exhausted)";
    default:
        return "unknown error";
    }
}
