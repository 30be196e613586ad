#!/usr/bin/env python3
"""Whole-process benchmark: `idgraph reconcile` against the one-off Python script.

For each organisation size, generates the file exports with idgraph-synth (cached), then
measures, --repeat times each, the median wall time and peak RSS of:

  * idgraph reconcile on a fresh store (the first run, which opens every finding);
  * idgraph reconcile again on the store that run left (an unchanged rerun);
  * python3 bench/oneoff.py, the dictionary join people write instead.

Every run's findings by kind are checked against expected.json and against each other;
any disagreement stops the benchmark with a non-zero exit status.

  python3 bench/reconcile.py [--sizes 10000,200000,1000000] [--targets 20] [--repeat 3]
                             [--cache /var/tmp/idgraph-bench] [--json FILE]

Python 3.11+ standard library only.
"""

import argparse
import collections
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONEOFF = os.path.join(ROOT, "bench", "oneoff.py")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fail(message):
    log(f"FAILED: {message}")
    sys.exit(1)


def nonzero(counts):
    """Counts by kind without the kinds that did not occur (expected.json lists some as 0)."""
    return {kind: n for kind, n in sorted(counts.items()) if n}


def measure(cmd, stdout_path):
    """Runs cmd with stdout to a file; returns (wall seconds, peak RSS in KiB, stderr)."""
    with open(stdout_path, "wb") as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        fail(f"{' '.join(cmd)} exited with {proc.returncode}:\n{stderr[-4000:]}")
    return wall, usage.ru_maxrss, stderr


def generate(args, users, org):
    """Writes the organisation into org, unless a matching one is already there."""
    expected_path = os.path.join(org, "expected.json")
    if os.path.exists(expected_path) and not args.regenerate:
        with open(expected_path) as f:
            expected = json.load(f)
        if expected.get("users") == users and expected.get("targets") == args.targets:
            log(f"reusing {org}")
            return expected
    log(f"generating {users} users x {args.targets} targets into {org}")
    os.makedirs(org, exist_ok=True)
    for pattern in ("expected.json", "idgraph.toml", "idgraph.db*", "scim-users.json",
                    "identitystore-users.json", "target*-pg_user.csv"):
        for stale in glob.glob(os.path.join(org, pattern)):
            os.remove(stale)
    start = time.perf_counter()
    subprocess.run(
        [args.synth, "--users", str(users), "--targets", str(args.targets), "--out", org],
        check=True, stdout=subprocess.DEVNULL)
    log(f"generated in {time.perf_counter() - start:.1f} s")
    with open(expected_path) as f:
        return json.load(f)


def export_bytes(org):
    """Total size of the exports the config names."""
    with open(os.path.join(org, "idgraph.toml"), "rb") as f:
        config = tomllib.load(f)
    paths = [config["idp"]["path"], config["identity_center"]["path"]]
    paths += [t["path"] for t in config["targets"]]
    return sum(os.path.getsize(os.path.join(org, p)) for p in paths)


def idgraph_counts(path, what):
    with open(path) as f:
        report = json.load(f)
    if report.get("status") != "complete":
        fail(f"{what}: run status is {report.get('status')!r}, expected 'complete'")
    counts = collections.Counter(f["kind"] for f in report["findings"])
    return nonzero(counts), len(report["opened"]), len(report["resolved"])


def bench_size(args, users, workdir):
    org = os.path.join(args.cache, f"org{users}")
    expected = generate(args, users, org)
    want = nonzero(expected["findings"])
    total = sum(want.values())
    config = os.path.join(org, "idgraph.toml")
    reconcile = [args.idgraph, "reconcile", "--config", config, "--format", "json"]
    out = os.path.join(workdir, "stdout.json")
    runs = {"first": [], "rerun": [], "python": []}

    def check(name, got):
        if got != want:
            fail(f"{users} users: {name} reports {got}, expected.json says {want}")

    for i in range(1, args.repeat + 1):
        for stale in glob.glob(os.path.join(org, "idgraph.db*")):
            os.remove(stale)
        log(f"{users} users [{i}/{args.repeat}]: idgraph reconcile, fresh store")
        wall, rss, _ = measure(reconcile, out)
        got, opened, resolved = idgraph_counts(out, "idgraph first run")
        check("idgraph (first run)", got)
        if opened != total or resolved != 0:
            fail(f"{users} users: first run opened {opened} and resolved {resolved}, "
                 f"expected {total} and 0")
        runs["first"].append((wall, rss))
        log(f"  {wall:.2f} s, {rss / 1024:.0f} MiB")

        log(f"{users} users [{i}/{args.repeat}]: idgraph reconcile, unchanged rerun")
        wall, rss, _ = measure(reconcile, out)
        got, opened, resolved = idgraph_counts(out, "idgraph rerun")
        check("idgraph (rerun)", got)
        if opened != 0 or resolved != 0:
            fail(f"{users} users: unchanged rerun opened {opened} and resolved {resolved}")
        runs["rerun"].append((wall, rss))
        log(f"  {wall:.2f} s, {rss / 1024:.0f} MiB")

        log(f"{users} users [{i}/{args.repeat}]: python3 oneoff.py")
        wall, rss, _ = measure([sys.executable, ONEOFF, org], out)
        with open(out) as f:
            check("oneoff.py", nonzero(json.load(f)))
        runs["python"].append((wall, rss))
        log(f"  {wall:.2f} s, {rss / 1024:.0f} MiB")

    row = {
        "users": users,
        "targets": args.targets,
        "database_users": expected["database_users"],
        "export_bytes": export_bytes(org),
        "findings": want,
        "repeat": args.repeat,
    }
    for name, samples in runs.items():
        row[name] = {
            "wall_s": statistics.median(w for w, _ in samples),
            "max_rss_kib": statistics.median(r for _, r in samples),
            "samples": [{"wall_s": w, "max_rss_kib": r} for w, r in samples],
        }
    return row


def table(rows):
    def mib(kib):
        return f"{kib / 1024:.0f} MiB"

    lines = [
        "| users | targets | db users | exports | idgraph first run | idgraph rerun "
        "| python one-off | idgraph/python time | idgraph/python memory |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        first, rerun, py = r["first"], r["rerun"], r["python"]
        lines.append(
            f"| {r['users']:,} | {r['targets']} | {r['database_users']:,} "
            f"| {r['export_bytes'] / 1e6:.0f} MB "
            f"| {first['wall_s']:.2f} s / {mib(first['max_rss_kib'])} "
            f"| {rerun['wall_s']:.2f} s / {mib(rerun['max_rss_kib'])} "
            f"| {py['wall_s']:.2f} s / {mib(py['max_rss_kib'])} "
            f"| {first['wall_s'] / py['wall_s']:.2f} "
            f"| {first['max_rss_kib'] / py['max_rss_kib']:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,200000,1000000",
                        help="comma-separated numbers of people (default: %(default)s)")
    parser.add_argument("--targets", type=int, default=20,
                        help="database targets (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each measurement; the median is reported")
    parser.add_argument("--cache", default="/var/tmp/idgraph-bench",
                        help="where generated organisations are kept (default: %(default)s)")
    parser.add_argument("--regenerate", action="store_true",
                        help="generate the organisations even if cached")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--idgraph", default=os.path.join(ROOT, "target/release/idgraph"))
    parser.add_argument("--synth", default=os.path.join(ROOT, "target/release/idgraph-synth"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.repeat < 1 or args.targets < 1:
        parser.error("--repeat and --targets must be at least 1")
    for binary in (args.idgraph, args.synth):
        if not os.access(binary, os.X_OK):
            parser.error(f"{binary} is missing: build it with "
                         "`cargo build --release -p idgraph -p idgraph-bench`")

    rows = []
    with tempfile.TemporaryDirectory(prefix="idgraph-bench-") as workdir:
        for users in sizes:
            rows.append(bench_size(args, users, workdir))
    print(table(rows))
    if args.json:
        result = {
            "idgraph": args.idgraph,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "rows": rows,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
