"""faiss_peer: exact top-k with FAISS IndexFlatIP on the factors of a recd artifact, one thread — bench/serve_scale's peer.

    OPENBLAS_NUM_THREADS=1 taskset -c 0 /usr/bin/python3 bench/faiss_peer.py --artifact model.recd --seconds 5 \
        [--k 10] [--batch 32] [--seed 1] [--mode single|batch|both] [--info]

Loads the item factors into an IndexFlatIP (exact inner product, the same scores recd computes for ALS), with
faiss.omp_set_num_threads(1) and OpenBLAS on one thread. For random known users it searches k + (the longest training
row) neighbours and drops the user's training items, so it answers what recd answers (checked against numpy for 20
users first). Runs, for --seconds each:
  single  one user per index.search call;
  batch   --batch users per call (FAISS hands nq >= its distance_compute_blas_threshold, 20 by default, to BLAS sgemm).
Prints which FAISS build it is (version, faiss.get_compile_options(): "GENERIC" means no AVX2 code paths, the BLAS
library and OpenBLAS's core) and, per mode, one line in bench/serve's RESULT format: requests = queries answered,
rps = queries/s, p50/p90/p99 = latency of one search call (a whole batch in batch mode), cpu_us_per_req = process
CPU time per query. --info prints the build line only.
"""

import argparse
import ctypes
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def blas_info():
    """The BLAS this process loaded (from /proc/self/maps) and, for OpenBLAS, its core and config."""
    libs = sorted({line.split()[-1] for line in open("/proc/self/maps") if "blas" in line.split()[-1]})
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return "%s (OpenBLAS %s, core %s)" % (path, lib.openblas_get_config().decode(),
                                                  lib.openblas_get_corename().decode())
        except (OSError, AttributeError):
            continue
    return ", ".join(libs) or "none found"


def build_line(faiss):
    opts = faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else "unknown"
    threshold = getattr(faiss.cvar, "distance_compute_blas_threshold", "unknown")
    return ("FAISS %s, compile options %r, omp threads %d, BLAS for nq >= %s; BLAS %s; numpy %s" %
            (faiss.__version__, opts, faiss.omp_get_max_threads(), threshold, blas_info(), np.__version__))


def result_line(latencies_s, queries, seconds, cpu_s):
    lat = sorted(latencies_s)
    pct = lambda p: lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1e6 if lat else 0
    return ("RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d non2xx=0 socket_errors=0 "
            "cpu_us_per_req=%.2f" % (queries, seconds * 1e6, queries / seconds, pct(50), pct(90), pct(99),
                                    cpu_s * 1e6 / queries if queries else 0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--artifact", required=True)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=("single", "batch", "both"), default="both")
    ap.add_argument("--info", action="store_true")
    args = ap.parse_args()

    import faiss
    faiss.omp_set_num_threads(1)
    print("faiss_peer: " + build_line(faiss), flush=True)
    if args.info:
        return
    from recd_artifact import Artifact

    art = Artifact(args.artifact)
    if art.kind != "als":
        sys.exit("faiss_peer: %s is a %s model; IndexFlatIP matches recd's scores for ALS only" % (args.artifact, art.kind))
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(art.n_factors)
    index.add(np.ascontiguousarray(art.item_factors))
    users = art.user_factors
    row_len = np.diff(art.row_ptr)
    k_search = args.k + int(row_len.max() if len(row_len) else 0)
    print("faiss_peer: %d items x %d factors indexed in %.2f s; searching k=%d (k + the longest training row) and "
          "dropping training items" % (art.n_items, art.n_factors, time.perf_counter() - t0, k_search), flush=True)
    rng = np.random.default_rng(args.seed)

    def answer(u, ids):
        train = art.training_items(u)
        keep = ids[~np.isin(ids, train)]
        return keep[:args.k]

    # the peer must answer what recd would: numpy's exact scores with the same exclusions
    for u in rng.integers(0, art.n_users, 20):
        _, ids = index.search(users[u:u + 1], k_search)
        got = answer(u, ids[0])
        scores = art.score(u)
        scores[art.training_items(u)] = -np.inf
        want = np.argsort(-scores, kind="stable")[:args.k]
        if not np.array_equal(np.sort(scores[got])[::-1], scores[want]):
            sys.exit("faiss_peer: FAISS's top %d for user %d differs from numpy's: %s against %s" %
                     (args.k, u, got, want))
    print("faiss_peer: FAISS answers 20 random users as numpy's exact scores do", flush=True)

    modes = ("single", "batch") if args.mode == "both" else (args.mode,)
    for mode in modes:
        n = 1 if mode == "single" else args.batch
        lat, queries = [], 0
        order = rng.integers(0, art.n_users, 1 << 16)
        cpu0, start = time.process_time(), time.perf_counter()
        end = start + args.seconds
        while True:
            sel = order[(queries + np.arange(n)) % len(order)]
            q = users[sel]
            t = time.perf_counter()
            _, ids = index.search(q, k_search)
            for row, u in zip(ids, sel):
                answer(u, row)
            now = time.perf_counter()
            lat.append(now - t)
            queries += n
            if now >= end:
                break
        print("%s %s" % (mode if mode == "single" else "batch-%d" % n,
                         result_line(lat, queries, time.perf_counter() - start, time.process_time() - cpu0)), flush=True)


if __name__ == "__main__":
    main()
