"""recd_artifact: reads a recd model artifact (models/artifact.c describes the format) into numpy arrays.

Used by the benchmark peers (bench/fastapi_peer.py, bench/faiss_peer.py) so that they serve exactly the factors recd
serves. Reads the 12 fixed sections of format version 1 and 2 (a v2 file's extension sections are not needed here and
are skipped); checks the magic, the version, the file size and the trailing SHA-256.
"""

import hashlib
import struct

import numpy as np

MAGIC = b"RECDMDL1"
KINDS = {1: "popularity", 2: "als", 3: "bpr", 4: "biased_mf"}
_HEADER = struct.Struct("<8sIIQQQIfffIIQ")  # the 72 bytes before the section table
(USER_IDS, ITEM_IDS, USER_FACTORS, ITEM_FACTORS, GRAM, POPULARITY, USER_BIAS, ITEM_BIAS, ROW_PTR, COLS, VALS,
 METADATA) = range(12)


def _ids(buf, n):
    """An id table: u64 offsets[n + 1], then the NUL-terminated ids."""
    offsets = np.frombuffer(buf, dtype="<u8", count=n + 1)
    text = bytes(buf[8 * (n + 1):8 * (n + 1) + int(offsets[n])])
    ids = text.split(b"\0")[:-1]
    if len(ids) != n:
        raise ValueError("id table holds %d ids, the header says %d" % (len(ids), n))
    return [i.decode("utf-8") for i in ids]


class Artifact:
    """The arrays of one artifact: kind, n_users, n_items, n_factors, user_ids, item_ids, user_factors (n_users x f),
    item_factors (n_items x f), popularity, user_bias, item_bias, global_bias, row_ptr and cols (the CSR of each user's
    training items), all float32 / int64 / uint32 numpy arrays over one copy of the file."""

    def __init__(self, path, verify=True):
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < _HEADER.size + 12 * 16 + 32:
            raise ValueError("%s: too short for an artifact" % path)
        (magic, version, kind, n_users, n_items, nnz, n_factors, _alpha, _reg, global_bias, _header_size, n_sections,
         file_size) = _HEADER.unpack_from(data, 0)
        if magic != MAGIC or version not in (1, 2) or n_sections < 12 or file_size != len(data):
            raise ValueError("%s: not a recd artifact of format 1 or 2 (magic %r, version %d)" % (path, magic, version))
        if verify and hashlib.sha256(data[:-32]).digest() != data[-32:]:
            raise ValueError("%s: SHA-256 mismatch" % path)
        table = struct.unpack_from("<24Q", data, _HEADER.size)
        view = memoryview(data)
        sec = [view[table[2 * i]:table[2 * i] + table[2 * i + 1]] for i in range(12)]

        def floats(i, shape):
            return np.frombuffer(sec[i], dtype="<f4").reshape(shape)

        self.kind = KINDS.get(kind, str(kind))
        self.n_users, self.n_items, self.n_factors = n_users, n_items, n_factors
        self.global_bias = global_bias
        self.user_ids = _ids(sec[USER_IDS], n_users)
        self.item_ids = _ids(sec[ITEM_IDS], n_items)
        self.user_factors = floats(USER_FACTORS, (n_users, n_factors))
        self.item_factors = floats(ITEM_FACTORS, (n_items, n_factors))
        self.popularity = floats(POPULARITY, (n_items,))
        self.user_bias = floats(USER_BIAS, (n_users,))
        self.item_bias = floats(ITEM_BIAS, (n_items,))
        self.row_ptr = np.frombuffer(sec[ROW_PTR], dtype="<u8").astype(np.int64)
        self.cols = np.frombuffer(sec[COLS], dtype="<u4", count=nnz)
        self.metadata = bytes(sec[METADATA]).decode("utf-8")

    def score(self, user):
        """Every item's score for user (an index with a stored vector), as recd scores it: the dot product of the item and
        user factors, plus the item bias for BPR, plus the global, user and item biases for biased MF."""
        scores = self.item_factors @ self.user_factors[user]
        if self.kind == "bpr":
            scores += self.item_bias
        elif self.kind == "biased_mf":
            scores += self.item_bias + np.float32(self.global_bias + self.user_bias[user])
        return scores

    def training_items(self, user):
        """The item indexes user (an index) was trained on: what recd excludes from that user's answers."""
        return self.cols[self.row_ptr[user]:self.row_ptr[user + 1]]
