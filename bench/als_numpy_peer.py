#!/usr/bin/python3
"""als_numpy_peer.py: a Python + numpy implicit ALS with the conjugate-gradient solver, the peer for bench/als_speed.

The same algorithm as recd's RECD_ALS_CG and the `implicit` library's pure-Python `_least_squares_cg`: for every row,
`cg_steps` CG steps warm-started from the row's current vector, with A p = (G + reg I) p + Y_u^T ((c_u - 1) * (Y_u p))
computed from the row's gathered item vectors (vectorised per row with numpy; one row at a time, as implicit's Python
version does). Confidence c = 1 + alpha * value, preference 1 for every stored entry, alpha 2 and reg 50 (recd's
defaults), 64 factors, 15 iterations, float32. Items are solved first from random user factors N(0, 0.01^2).

Data: MovieLens 100K u.data, every rating an interaction valued by the rating, split per user 75/25 at random (seed 42;
round(0.25 n) of a user's n ratings to test, users with fewer than 2 stay in train) -- the same sizes as recd's split,
not the same draw. Prints the minimum wall and CPU seconds of --repeat fits and, as a check that the peer learns what
recd learns, nDCG@10 on the test part.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/als_numpy_peer.py [--repeat 3] [--iterations 15] [--factors 64]
"""
import argparse
import math
import os
import sys
import time

import numpy as np


def load(path):
    raw = np.loadtxt(path, dtype=np.int64, usecols=(0, 1, 2))
    users, u_idx = np.unique(raw[:, 0], return_inverse=True)
    items, i_idx = np.unique(raw[:, 1], return_inverse=True)
    return u_idx, i_idx, raw[:, 2].astype(np.float32), len(users), len(items)


def split(u_idx, n_users, ratio, seed):
    rng = np.random.default_rng(seed)
    test = np.zeros(len(u_idx), dtype=bool)
    order = np.argsort(u_idx, kind="stable")
    bounds = np.searchsorted(u_idx[order], np.arange(n_users + 1))
    for u in range(n_users):
        rows = order[bounds[u]:bounds[u + 1]]
        n = len(rows)
        if n < 2:
            continue
        k = int(math.floor(ratio * n + 0.5))
        test[rng.permutation(rows)[:k]] = True
    return test


def csr(rows, cols, vals, n_rows):
    order = np.lexsort((cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    indptr = np.searchsorted(rows, np.arange(n_rows + 1))
    return indptr, cols.astype(np.int64), vals


def cg_half_step(indptr, indices, conf, fixed, out, reg, cg_steps):
    f = fixed.shape[1]
    G = fixed.T @ fixed + reg * np.eye(f, dtype=np.float32)
    for u in range(len(indptr) - 1):
        b, e = indptr[u], indptr[u + 1]
        if b == e:
            out[u] = 0
            continue
        Yu = fixed[indices[b:e]]
        c = conf[b:e]
        x = out[u]
        r = Yu.T @ (c - (c - 1) * (Yu @ x)) - G @ x
        p = r.copy()
        rs = r @ r
        for _ in range(cg_steps):
            if rs < 1e-20:
                break
            Ap = G @ p + Yu.T @ ((c - 1) * (Yu @ p))
            a = rs / (p @ Ap)
            x += a * p
            r -= a * Ap
            rs_new = r @ r
            p = r + (rs_new / rs) * p
            rs = rs_new
        out[u] = x


def fit(ui, iu, n_users, n_items, factors, iterations, alpha, reg, cg_steps, seed):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n_users, factors)) * 0.01).astype(np.float32)
    Y = np.zeros((n_items, factors), dtype=np.float32)
    cu = (1 + alpha * ui[2]).astype(np.float32)
    ci = (1 + alpha * iu[2]).astype(np.float32)
    for _ in range(iterations):
        cg_half_step(iu[0], iu[1], ci, X, Y, reg, cg_steps)
        cg_half_step(ui[0], ui[1], cu, Y, X, reg, cg_steps)
    return X, Y


def ndcg_at_10(X, Y, train, test, n_users):
    total, count = 0.0, 0
    scores_all = X @ Y.T
    for u in range(n_users):
        t = test[1][test[0][u]:test[0][u + 1]]
        if len(t) == 0:
            continue
        s = scores_all[u].copy()
        s[train[1][train[0][u]:train[0][u + 1]]] = -np.inf
        top = np.argpartition(-s, 10)[:10]
        top = top[np.argsort(-s[top], kind="stable")]
        rel = np.isin(top, t)
        dcg = np.sum(rel / np.log2(np.arange(2, 12)))
        idcg = np.sum(1 / np.log2(np.arange(2, 2 + min(10, len(t)))))
        total += dcg / idcg
        count += 1
    return total / count


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    data_dir = os.environ.get("RECD_DATA_DIR", os.path.join(here, "..", "..", "shared", "data"))
    ap.add_argument("--data", default=os.path.join(data_dir, "ml-100k", "u.data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--cg-steps", type=int, default=3)
    ap.add_argument("--alpha", type=float, default=2.0)
    ap.add_argument("--reg", type=float, default=50.0)
    args = ap.parse_args()
    if not os.path.exists(args.data):
        print(f"als_numpy_peer: skipped: {args.data} not found (set RECD_DATA_DIR)")
        return 0

    u, i, v, n_users, n_items = load(args.data)
    is_test = split(u, n_users, 0.25, 42)
    tr = ~is_test
    ui = csr(u[tr], i[tr], v[tr], n_users)
    iu = csr(i[tr], u[tr], v[tr], n_items)
    test = csr(u[is_test], i[is_test], v[is_test], n_users)
    print(f"# numpy {np.__version__}, python {sys.version.split()[0]}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}; train {int(tr.sum())} / test {int(is_test.sum())} "
          f"interactions; {args.factors} factors, {args.iterations} iterations, CG {args.cg_steps} steps, "
          f"alpha {args.alpha:g}, reg {args.reg:g}")
    best_wall, best_cpu, runs = math.inf, math.inf, []
    for _ in range(args.repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        X, Y = fit(ui, iu, n_users, n_items, args.factors, args.iterations, args.alpha, args.reg, args.cg_steps, 42)
        w, c = time.perf_counter() - w0, time.process_time() - c0
        runs.append(w)
        best_wall, best_cpu = min(best_wall, w), min(best_cpu, c)
    print(f"numpy-cg       1  {best_wall:11.3f}  {best_cpu:10.3f}  {best_wall / args.iterations:11.4f}  "
          f"{best_cpu / args.iterations:10.4f}  " + " ".join(f"{r:.3f}" for r in runs))
    print(f"# nDCG@10 on its test part: {ndcg_at_10(X, Y, ui, test, n_users):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
