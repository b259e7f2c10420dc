#!/usr/bin/env python3
"""realtime_fresh.py: event-to-fresh-recommendation latency across two recd replicas (used by bench/realtime).

  realtime_fresh.py PORT_A PORT_B ITEMS_FILE USERS CONCURRENCY

For each of USERS new users ("rt-bench-<run>-<n>"), posts three purchase events to replica A and polls replica B every
2 ms until that user's answer is personalised (fallback not "popular") and none of the posted items is in it. Prints
one line: FRESH users=N p50_ms=X p99_ms=X max_ms=X timeouts=N.
"""
import http.client
import json
import random
import sys
import threading
import time

port_a, port_b, items_file, n_users, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
items = [line.strip() for line in open(items_file) if line.strip()]
run = "%x" % int(time.time())
latencies, timeouts, lock = [], [0], threading.Lock()


def one_user(n, conn_a, conn_b):
    user = "rt-bench-%s-%d" % (run, n)
    posted = random.Random(n).sample(items, 3)
    body = json.dumps({"events": [{"user": user, "item": i, "type": "purchase"} for i in posted]})
    t0 = time.monotonic()
    conn_a.request("POST", "/v1/events", body, {"Content-Type": "application/json"})
    res = conn_a.getresponse()
    res.read()
    if res.status != 202:
        raise SystemExit("POST /v1/events -> %d" % res.status)
    while time.monotonic() - t0 < 30:
        conn_b.request("GET", "/v1/recommendations?user=%s&k=10" % user)
        answer = json.loads(conn_b.getresponse().read())
        got = [x["item"] for x in answer.get("items", [])]
        if answer.get("fallback") != "popular" and got and not set(got) & set(posted):
            with lock:
                latencies.append(time.monotonic() - t0)
            return
        time.sleep(0.002)
    with lock:
        timeouts[0] += 1


def worker(ns):
    conn_a = http.client.HTTPConnection("127.0.0.1", int(port_a), timeout=10)
    conn_b = http.client.HTTPConnection("127.0.0.1", int(port_b), timeout=10)
    for n in ns:
        one_user(n, conn_a, conn_b)


threads = [threading.Thread(target=worker, args=(range(w, n_users, concurrency),)) for w in range(concurrency)]
for t in threads:
    t.start()
for t in threads:
    t.join()
latencies.sort()
if not latencies:
    raise SystemExit("no user became fresh within 30 s")
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3
print("FRESH users=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f timeouts=%d" % (len(latencies), pick(0.5), pick(0.99),
                                                                        latencies[-1] * 1e3, timeouts[0]))
