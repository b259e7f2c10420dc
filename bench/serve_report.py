"""serve_report: the summary tables of bench/serve and bench/serve_scale, from their results file.

    python3 bench/serve_report.py RESULTS_FILE [TITLE]

Each line of RESULTS_FILE is "MODE SERVER ROUND RESULT key=value ..." (a RESULT line of loadtest/recommendations.lua,
bench/rate_load or lib.sh's h2load_result, with cpu_us_per_req appended). Prints one table per mode, in the order the
modes first appear: per server the median and the spread (min..max over the rounds) of req/s, the medians of p50 and
p99 (and p99.9 where the generator gives it), of the CPU time per request, of the server's CPU use ("srv %": CPU per
request x req/s, in % of one core; near 100 the server's core was the limit) and of the load generator's ("gen %",
client_cpu_pct; near 100 the generator was); then, for every other server, recd's
ratio of req/s and the other's CPU per request over recd's (both > 1 when recd is ahead), and the same for recd's
batch variants (servers named NAME-batch-N, e.g. recd-batch-32) against the FAISS peers (servers named faiss...);
last, for modes "<N>-approx" with a "<N>-exact" beside them, each server's approximate/exact ratios.
"""

import statistics
import sys


def parse(path):
    runs = {}  # mode -> server -> [dict]
    for line in open(path):
        parts = line.split()
        if len(parts) < 4 or parts[3] != "RESULT":
            continue
        mode, server = parts[0], parts[1]
        fields = dict(p.split("=", 1) for p in parts[4:] if "=" in p)
        runs.setdefault(mode, {}).setdefault(server, []).append({k: float(v) for k, v in fields.items()})
    return runs


def med(runs, key):
    v = [r[key] for r in runs if key in r]
    return statistics.median_low(v) if v else None


def spread(runs, key):
    v = [r[key] for r in runs if key in r]
    return "%.0f..%.0f" % (min(v), max(v)) if v else ""


def ms(x):
    return "%.3f" % (x / 1000) if x is not None else "-"


def main():
    runs = parse(sys.argv[1])
    if len(sys.argv) > 2:
        print(sys.argv[2])
    for mode, servers in runs.items():
        print("\n[%s]  median (min..max) over %d round(s)" % (mode, max(len(v) for v in servers.values())))
        print("%-16s %10s %19s %9s %9s %9s %11s %6s %6s %9s" %
              ("server", "req/s", "(spread)", "p50 ms", "p99 ms", "p99.9 ms", "CPU us/req", "srv %", "gen %", "target"))
        for name, rs in servers.items():
            target = med(rs, "target_rps")
            busy = med([{"b": r["cpu_us_per_req"] * r["rps"] / 1e4} for r in rs if "cpu_us_per_req" in r], "b")
            gen = med(rs, "client_cpu_pct")
            print("%-16s %10.0f %19s %9s %9s %9s %11.2f %6s %6s %9s" %
                  (name, med(rs, "rps"), "(%s)" % spread(rs, "rps"), ms(med(rs, "p50_us")), ms(med(rs, "p99_us")),
                   ms(med(rs, "p999_us")), med(rs, "cpu_us_per_req"), "%.0f" % busy if busy else "-",
                   "%.0f" % gen if gen is not None else "-", "%.0f/s" % target if target else ""))
            lag = med(rs, "max_send_lag_us")
            if lag is not None:
                print("%-16s   generator's longest wait past a due time (median over rounds): %s ms; unanswered %d" %
                      ("", ms(lag), sum(r.get("unanswered", 0) for r in rs)))
        # recd against every other server; batch variants (recd-batch-32, ...) against the FAISS peers
        pairs = [("recd", n) for n in servers if "recd" in servers and n != "recd"]
        pairs += [(a, b) for a in servers if "-batch-" in a and not a.startswith("faiss")
                  for b in servers if b.startswith("faiss")]
        for mine, name in pairs:
            r, rs = servers[mine], servers[name]
            cpu_r, cpu_o = med(r, "cpu_us_per_req"), med(rs, "cpu_us_per_req")
            cpu = "%.3f" % (cpu_o / cpu_r) if cpu_r else "-"
            if med(r, "target_rps") is not None:  # fixed rates differ per server: compare latency, not req/s
                print("%s/%s at their own fixed rates: p99 %s ms against %s ms, CPU per request %s (%s/%s)" %
                      (mine, name, ms(med(r, "p99_us")), ms(med(rs, "p99_us")), cpu, name, mine))
            else:
                print("%s/%s: req/s %.3f, CPU per request %s (%s/%s)" %
                      (mine, name, med(r, "rps") / med(rs, "rps"), cpu, name, mine))

    # approximate against exact search on the same catalogue (bench/serve_scale's "<N>-approx" and "<N>-exact" modes)
    for mode in runs:
        if mode.endswith("-approx") and mode[:-len("approx")] + "exact" in runs:
            exact = runs[mode[:-len("approx")] + "exact"]
            for name, rs in runs[mode].items():
                if name in exact:
                    print("%s: %s approximate/exact req/s %.2f, CPU per request %.2f (exact/approximate)" %
                          (mode[:-len("-approx")], name, med(rs, "rps") / med(exact[name], "rps"),
                           med(exact[name], "cpu_us_per_req") / med(rs, "cpu_us_per_req")))


if __name__ == "__main__":
    main()
