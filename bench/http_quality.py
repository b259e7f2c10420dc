#!/usr/bin/env python3
"""http_quality.py: splits a MovieLens-format log outside recd-train, and measures a published model as recd serves it.

  http_quality.py split --input u.data --protocol stratified|leave-last-out [--test-ratio 0.25] [--seed 42]
                        --train TRAIN --test TEST
  http_quality.py measure --recd BIN --registry DIR --model NAME --test TEST [--k 10]

split writes two files in the input's format (user, item, rating, timestamp; tab separated). stratified: each user's
ratings shuffled with the seed, round(ratio * n) of them to test (users with one rating keep it in train);
leave-last-out: each user's latest rating by timestamp (ties: the later line) to test, users with one rating stay in
train. measure starts recd on a free 127.0.0.1 port, asks GET /v1/recommendations?user=U&k=K for every test user and
prints one JSON object: P, R, nDCG, MAP and HR at k with binary relevance (P = hits / k, R = hits / |test|, nDCG
against min(|test|, k) ideal hits, AP = sum of precision at each hit / |test|), the users and the fallbacks recd used.
This is an independent implementation: it shares no code with recd-train's evaluation.
"""
import argparse
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request


def read_log(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 4:
                rows.append(parts[:4])
    return rows


def split(args):
    rows = read_log(args.input)
    by_user = {}
    for index, r in enumerate(rows):
        by_user.setdefault(r[0], []).append(index)
    test = set()
    rng = random.Random(args.seed)
    for user in sorted(by_user, key=lambda u: (len(u), u)):
        idx = by_user[user]
        if len(idx) < 2:
            continue
        if args.protocol == "stratified":
            shuffled = list(idx)
            rng.shuffle(shuffled)
            n_test = min(len(idx) - 1, max(1, round(args.test_ratio * len(idx))))
            test.update(shuffled[:n_test])
        else:
            test.add(max(idx, key=lambda i: (int(rows[i][3]), i)))
    with open(args.train, "w") as tr, open(args.test, "w") as te:
        for index, r in enumerate(rows):
            (te if index in test else tr).write("\t".join(r) + "\n")
    print(json.dumps({"train": len(rows) - len(test), "test": len(test), "users": len(by_user)}))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def measure(args):
    test = {}
    for r in read_log(args.test):
        test.setdefault(r[0], set()).add(r[1])
    work = tempfile.mkdtemp(prefix="recd-http-quality-")
    port = free_port()
    log = open(os.path.join(work, "recd.log"), "w")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([args.recd, "--registry", args.registry, "--model", args.model, "--listen",
                             "127.0.0.1:%d" % port, "--threads", "1", "--events-path",
                             os.path.join(work, "events.jsonl")], stdout=log, stderr=log, env=env)
    base = "http://127.0.0.1:%d" % port
    try:
        for _ in range(200):
            try:
                get_json(base + "/readyz")
                break
            except Exception:
                if proc.poll() is not None:
                    sys.exit("http_quality: recd exited; see " + log.name)
                time.sleep(0.05)
        k = args.k
        sums = {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "map": 0.0, "hit_rate": 0.0}
        fallbacks = {}
        for user, relevant in sorted(test.items()):
            body = get_json(base + "/v1/recommendations?" + urllib.parse.urlencode({"user": user, "k": k}))
            fallbacks[body["fallback"]] = fallbacks.get(body["fallback"], 0) + 1
            hits, dcg, ap = 0, 0.0, 0.0
            for rank, entry in enumerate(body["items"][:k]):
                if entry["item"] in relevant:
                    hits += 1
                    dcg += 1.0 / math.log2(rank + 2)
                    ap += hits / (rank + 1)
            idcg = sum(1.0 / math.log2(r + 2) for r in range(min(len(relevant), k)))
            sums["precision"] += hits / k
            sums["recall"] += hits / len(relevant)
            sums["ndcg"] += dcg / idcg
            sums["map"] += ap / len(relevant)
            sums["hit_rate"] += 1.0 if hits else 0.0
        n = len(test)
        out = {m: v / n for m, v in sums.items()}
        out.update({"k": k, "users": n, "fallbacks": fallbacks, "model": body.get("model")})
        print(json.dumps(out))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        subprocess.run(["rm", "-rf", work], check=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("--input", required=True)
    s.add_argument("--protocol", choices=["stratified", "leave-last-out"], required=True)
    s.add_argument("--test-ratio", type=float, default=0.25)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--train", required=True)
    s.add_argument("--test", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--recd", required=True)
    m.add_argument("--registry", required=True)
    m.add_argument("--model", required=True)
    m.add_argument("--test", required=True)
    m.add_argument("--k", type=int, default=10)
    a = p.parse_args()
    split(a) if a.cmd == "split" else measure(a)


if __name__ == "__main__":
    main()
