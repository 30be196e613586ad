#!/usr/bin/env python3
"""idgraph's SCIM fetch against the ceiling of the SCIM server it reads.

The goal: against scim2-server with 10,000 users, idgraph's SCIM fetch takes at most
1.3x the server's own ceiling, measured by fetching the same pages in parallel with curl.

What it does:

1. Starts scim2-server (from the test virtualenv, `.venv` at the repository root, or
   IDGRAPH_TEST_VENV; created by ./scripts/test) on a free port with a random bearer
   token, loads --users users with /Bulk requests (as many operations per request as
   the server's /ServiceProviderConfig allows) and checks that /Users counts them.
2. The ceiling: every page (startIndex 1, 1+ps, ... with count ps) fetched by one
   `curl --parallel --parallel-max C` (all URLs known up front, nothing parsed), and
   for reference by one sequential curl; the bodies go to /dev/null.
3. idgraph: `target/release/idgraph check` with the SCIM IdP (index paging, the same
   page size and concurrency) plus tiny file sources for Identity Center and one
   target; its own measured SCIM fetch time (the `Fetched snapshot.` log event of
   source idp, duration_ms) and the wall time of the whole process.
4. Medians of --repeat rounds (the three measurements interleaved within a round),
   a Markdown table, optionally --json FILE; exit status 1 when idgraph's SCIM fetch
   takes more than --max-ratio times the curl ceiling, 2 when something failed.

The token travels in a curl config file (mode 0600) and in an environment variable,
never on a command line this script prints or in its output. (It is on scim2-server's
own command line: the server has no other way to take it.)

    python3 bench/scim_ceiling.py --users 10000 --page-size 100 1000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SCIM_JSON = "application/scim+json"
TOKEN_ENV = "IDGRAPH_BENCH_SCIM_TOKEN"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """User plus system CPU seconds of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def log(message: str) -> None:
    print(f"scim_ceiling: {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A failure that makes the figures meaningless."""


def interrupt_on_signals() -> None:
    """Makes SIGTERM and SIGHUP raise KeyboardInterrupt as Ctrl-C does, so that a run's
    `finally` blocks clean up whichever way it is stopped."""

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    # Also when started in the background by a shell that ignores SIGINT for it.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def exit_with(main, log) -> None:
    """Runs main(argv) and exits with its status: 2 after a BenchError, 130 when
    interrupted, each said through log."""
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        log(f"error: {error}")
        sys.exit(2)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)


# --- scim2-server -------------------------------------------------------------------


def venv_bin(name: str) -> Path:
    venv = Path(os.environ.get("IDGRAPH_TEST_VENV") or REPO / ".venv")
    path = venv / "bin" / name
    if not path.exists():
        raise BenchError(
            f"{path} is missing: create the test virtualenv first, as ./scripts/test "
            "does (python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt)"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """scim2-server in a process group of its own, stopped by stop()."""

    def __init__(self, token: str, workdir: Path):
        self.token = token
        self.port = free_port()
        self.log_path = workdir / "scim2-server.log"
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [
                str(venv_bin("scim2-server")),
                "--hostname",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--bearer-token",
                token,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=self.log_file,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}/v2"

    def wait_until_listening(self, limit: float = 30.0) -> None:
        deadline = time.monotonic() + limit
        while True:
            if self.process.poll() is not None:
                raise BenchError(
                    f"scim2-server exited with {self.process.returncode}; "
                    f"see {self.log_path}"
                )
            try:
                status, _ = self.request("GET", "/ServiceProviderConfig")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"scim2-server did not answer within {limit:.0f} s")
            time.sleep(0.1)

    def request(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Accept": SCIM_JSON}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = SCIM_JSON
            connection.request(method, "/v2" + path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw[:200].decode(errors="replace")
            return response.status, parsed
        finally:
            connection.close()

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far (its threads included)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait()
        self.log_file.close()


def person(i: int) -> dict:
    """A realistic User: userName, name, emails, active (every 7th inactive), externalId."""
    given = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"][i % 8]
    family = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen"][i % 7]
    login = f"{given.lower()}.{family.lower()}.{i:05d}@example.com"
    return {
        "schemas": [USER_SCHEMA],
        "userName": login,
        "externalId": f"00u{i:017x}",
        "name": {
            "givenName": given,
            "familyName": family,
            "formatted": f"{given} {family}",
        },
        "displayName": f"{given} {family}",
        "emails": [
            {"value": login, "type": "work", "primary": True},
            {"value": f"{given.lower()}{i}@home.example.org", "type": "home"},
        ],
        "active": i % 7 != 0,
    }


def load_users(server: Server, n: int) -> None:
    """Creates users 0..n with /Bulk, as many per request as the server allows."""
    status, config = server.request("GET", "/ServiceProviderConfig")
    if status != 200 or not isinstance(config, dict):
        raise BenchError(f"GET /ServiceProviderConfig answered {status}")
    bulk = config.get("bulk") or {}
    max_ops = int(bulk.get("maxOperations") or 0) if bulk.get("supported") else 0
    max_bytes = int(bulk.get("maxPayloadSize") or 0) or 1 << 20
    start = time.monotonic()
    if max_ops <= 0:
        log("the server announces no bulk support; creating users one POST at a time")
        for i in range(n):
            status, created = server.request("POST", "/Users", person(i))
            if status != 201:
                raise BenchError(f"POST /Users for user {i} answered {status}: {created}")
            if (i + 1) % 500 == 0 or i + 1 == n:
                log(f"loaded {i + 1}/{n} users ({time.monotonic() - start:.1f} s)")
        return

    i = 0
    while i < n:
        operations: list[dict] = []
        size = 200  # the envelope
        while i < n and len(operations) < max_ops:
            operation = {
                "method": "POST",
                "path": "/Users",
                "bulkId": f"u{i}",
                "data": person(i),
            }
            op_size = len(json.dumps(operation)) + 2
            if operations and size + op_size > max_bytes * 0.95:
                break
            operations.append(operation)
            size += op_size
            i += 1
        body = {"schemas": [BULK_REQUEST_SCHEMA], "failOnErrors": 1, "Operations": operations}
        status, answer = server.request("POST", "/Bulk", body)
        if status != 200 or not isinstance(answer, dict):
            raise BenchError(f"POST /Bulk answered {status}: {str(answer)[:300]}")
        failed = [
            op for op in answer.get("Operations", []) if not str(op.get("status", "")).startswith("201")
        ]
        if failed or len(answer.get("Operations", [])) != len(operations):
            raise BenchError(f"POST /Bulk did not create every user: {str(failed[:2])[:300]}")
        log(f"loaded {i}/{n} users ({time.monotonic() - start:.1f} s)")


def count_users(server: Server) -> int:
    status, answer = server.request("GET", "/Users?" + urlencode({"startIndex": 1, "count": 1}))
    if status != 200 or not isinstance(answer, dict):
        raise BenchError(f"GET /Users answered {status}")
    return int(answer["totalResults"])


# --- the curl ceiling ---------------------------------------------------------------


def page_urls(base: str, total: int, page_size: int) -> list[str]:
    """The pages idgraph asks for: startIndex 1, 1+ps, ..., count ps (less on the last)."""
    return [
        f"{base}/Users?" + urlencode({"startIndex": start, "count": min(page_size, total - start + 1)})
        for start in range(1, total + 1, page_size)
    ]


def write_curl_config(path: Path, token: str, urls: list[str]) -> None:
    lines = [
        f'header = "Authorization: Bearer {token}"',
        f'header = "Accept: {SCIM_JSON}"',
        'write-out = "%{http_code} %{size_download}\\n"',
        "silent",
        "show-error",
    ]
    for url in urls:
        lines += [f'url = "{url}"', 'output = "/dev/null"']
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


def run_curl(config: Path, pages: int, concurrency: int | None) -> tuple[float, int]:
    """Seconds to fetch every page, and the bytes received; checks every answer is 200."""
    command = ["curl", "-K", str(config)]
    if concurrency is not None:
        # --parallel-immediate: open the connections at once rather than wait to see
        # whether the first one can multiplex (it cannot: HTTP/1.x).
        command += ["--parallel", "--parallel-immediate", "--parallel-max", str(concurrency)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchError(f"curl exited with {done.returncode}: {done.stderr.strip()[:300]}")
    answers = [line.split() for line in done.stdout.splitlines() if line.strip()]
    bad = [a for a in answers if a[0] != "200"]
    if len(answers) != pages or bad:
        raise BenchError(f"curl: {len(answers)} answers for {pages} pages, not 200: {bad[:3]}")
    return elapsed, sum(int(a[1]) for a in answers)


# --- idgraph ------------------------------------------------------------------------


def write_idgraph_config(
    workdir: Path, base: str, page_size: int, concurrency: int, paging: str
) -> Path:
    (workdir / "ic.json").write_text('{"Users": []}\n')
    (workdir / "target.csv").write_text("usename,usesuper\n")
    config = workdir / f"idgraph-{page_size}-{concurrency}.toml"
    config.write_text(
        f"""[idp]
kind = "scim"
url = "{base}"
token_env = "{TOKEN_ENV}"
page_size = {page_size}
concurrency = {concurrency}
paging = "{paging}"
timeout_seconds = 300

[identity_center]
kind = "file"
path = "ic.json"

[[targets]]
name = "bench"
kind = "file"
path = "target.csv"
"""
    )
    return config


FETCHED_TEXT = re.compile(r"^idp\s+\S+\s+ok\s+(\d+) users in ([0-9.]+) s", re.MULTILINE)


def run_idgraph(binary: Path, config: Path, token: str, users: int) -> tuple[float, float, float]:
    """idgraph's own SCIM fetch time, the process's wall time and its CPU time, in seconds."""
    env = dict(os.environ, RUST_LOG="info", **{TOKEN_ENV: token})
    env.pop("IDGRAPH_LOG_FORMAT", None)
    command = [str(binary), "--log-format", "json", "check", "--config", str(config)]
    cpu = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=config.parent)
    wall = time.perf_counter() - start
    cpu = children_cpu() - cpu
    output = done.stdout + done.stderr
    if token in output:
        raise BenchError("idgraph printed the SCIM token")
    if done.returncode != 0:
        raise BenchError(
            f"idgraph check exited with {done.returncode}:\n{done.stdout}{done.stderr[-2000:]}"
        )
    fetch_ms = None
    for line in done.stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        fields = event.get("fields", {})
        if fields.get("message") == "Fetched snapshot." and fields.get("source") == "idp":
            if int(fields.get("objects", -1)) != users:
                raise BenchError(f"idgraph fetched {fields.get('objects')} users, not {users}")
            fetch_ms = float(fields["duration_ms"])
    if fetch_ms is None:
        # No log event (a changed log format): the check line's 0.1 s resolution.
        match = FETCHED_TEXT.search(done.stdout)
        if not match:
            raise BenchError(f"no SCIM duration in idgraph's output:\n{done.stdout}")
        if int(match.group(1)) != users:
            raise BenchError(f"idgraph fetched {match.group(1)} users, not {users}")
        fetch_ms = float(match.group(2)) * 1000
    return fetch_ms / 1000, wall, cpu


# --- the benchmark ------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure(args, server: Server, binary: Path, workdir: Path, page_size: int, concurrency: int) -> dict:
    urls = page_urls(server.base, args.users, page_size)
    curl_config = workdir / f"curl-{page_size}.conf"
    write_curl_config(curl_config, server.token, urls)
    idgraph_config = write_idgraph_config(workdir, server.base, page_size, concurrency, args.paging)

    # The first page alone: what idgraph must wait for before it knows the total.
    first_config = workdir / f"curl-{page_size}-first.conf"
    write_curl_config(first_config, server.token, urls[:1])

    for _ in range(args.warmup):
        run_curl(curl_config, len(urls), concurrency)
        run_idgraph(binary, idgraph_config, server.token, args.users)
    log(f"page size {page_size}, concurrency {concurrency}: warmed up")

    rounds: dict[str, list[float]] = {
        "curl_parallel_s": [],
        "curl_sequential_s": [],
        "curl_first_page_s": [],
        "idgraph_fetch_s": [],
        "idgraph_process_s": [],
        "server_cpu_curl_parallel_s": [],
        "server_cpu_idgraph_s": [],
        "curl_parallel_cpu_s": [],
        "idgraph_cpu_s": [],
    }
    body_bytes = 0
    for r in range(args.repeat):
        cpu, own = server.cpu_seconds(), children_cpu()
        elapsed, body_bytes = run_curl(curl_config, len(urls), concurrency)
        rounds["curl_parallel_s"].append(elapsed)
        rounds["curl_parallel_cpu_s"].append(children_cpu() - own)
        rounds["server_cpu_curl_parallel_s"].append(server.cpu_seconds() - cpu)

        if not args.no_sequential:
            rounds["curl_sequential_s"].append(run_curl(curl_config, len(urls), None)[0])
        rounds["curl_first_page_s"].append(run_curl(first_config, 1, None)[0])

        cpu = server.cpu_seconds()
        fetch, wall, own = run_idgraph(binary, idgraph_config, server.token, args.users)
        rounds["server_cpu_idgraph_s"].append(server.cpu_seconds() - cpu)
        rounds["idgraph_cpu_s"].append(own)
        rounds["idgraph_fetch_s"].append(fetch)
        rounds["idgraph_process_s"].append(wall)
        log(
            f"page size {page_size}, concurrency {concurrency}, round {r + 1}/{args.repeat}: "
            f"curl parallel {elapsed:.3f} s, idgraph SCIM {fetch:.3f} s (process {wall:.3f} s)"
        )

    result: dict = {
        "users": args.users,
        "page_size": page_size,
        "concurrency": concurrency,
        "pages": len(urls),
        "body_bytes": body_bytes,
        "rounds": rounds,
    }
    for key, values in rounds.items():
        result[key] = median(values) if values else None
    result["ratio"] = result["idgraph_fetch_s"] / result["curl_parallel_s"]
    result["ok"] = result["ratio"] <= args.max_ratio
    return result


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f} s"


def table(results: list[dict], max_ratio: float) -> str:
    lines = [
        "| page size | concurrency | pages | curl parallel | curl sequential "
        "| idgraph SCIM fetch | idgraph process | idgraph / curl parallel |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        verdict = "" if r["ok"] else f" ✗ > {max_ratio}"
        lines.append(
            f"| {r['page_size']} | {r['concurrency']} | {r['pages']} "
            f"| {seconds(r['curl_parallel_s'])} | {seconds(r['curl_sequential_s'])} "
            f"| {seconds(r['idgraph_fetch_s'])} | {seconds(r['idgraph_process_s'])} "
            f"| {r['ratio']:.2f}×{verdict} |"
        )
    return "\n".join(lines)


def details(results: list[dict]) -> str:
    lines = []
    for r in results:
        lines.append(
            f"- page size {r['page_size']}, concurrency {r['concurrency']}: first page alone "
            f"{seconds(r['curl_first_page_s'])}; scim2-server CPU per full listing "
            f"{seconds(r['server_cpu_curl_parallel_s'])} under curl, "
            f"{seconds(r['server_cpu_idgraph_s'])} under idgraph; "
            f"client CPU: curl {seconds(r['curl_parallel_cpu_s'])}, "
            f"idgraph {seconds(r['idgraph_cpu_s'])}; "
            f"{r['body_bytes'] / 1e6:.1f} MB of JSON"
        )
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10000, help="users to load (10000)")
    parser.add_argument(
        "--page-size", type=int, nargs="+", default=[100], help="count per page; several allowed (100)"
    )
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[4], help="pages in flight; several allowed (4)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds, median taken (3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (1)")
    parser.add_argument("--max-ratio", type=float, default=1.3, help="idgraph / curl parallel limit (1.3)")
    parser.add_argument("--paging", choices=["index", "auto"], default="index", help="idgraph's idp.paging (index)")
    parser.add_argument("--no-sequential", action="store_true", help="skip the sequential curl reference")
    parser.add_argument(
        "--idgraph", type=Path, default=REPO / "target/release/idgraph", help="the release binary"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.users < 1 or args.repeat < 1 or min(args.page_size) < 1 or min(args.concurrency) < 1:
        parser.error("--users, --repeat, --page-size and --concurrency must be positive")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if shutil.which("curl") is None:
        raise BenchError("curl is not installed")
    if not args.idgraph.exists():
        raise BenchError(
            f"{args.idgraph} is missing: cargo build --release -p idgraph -p idgraph-bench"
        )

    # SIGTERM and SIGHUP end the run like Ctrl-C, through the finally below.
    interrupt_on_signals()

    token = "bench-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="scim-ceiling-") as tmp:
        workdir = Path(tmp)
        server = Server(token, workdir)
        try:
            log(f"scim2-server on port {server.port}")
            server.wait_until_listening()
            start = time.monotonic()
            load_users(server, args.users)
            total = count_users(server)
            if total != args.users:
                raise BenchError(f"the server holds {total} users, not {args.users}")
            log(f"{total} users loaded in {time.monotonic() - start:.1f} s")

            results = []
            for page_size in args.page_size:
                for concurrency in args.concurrency:
                    results.append(measure(args, server, args.idgraph, workdir, page_size, concurrency))
        finally:
            server.stop()

    print(f"\nidgraph SCIM fetch vs. curl against scim2-server, {args.users} users, "
          f"median of {args.repeat}:\n")
    print(table(results, args.max_ratio))
    print()
    print(details(results))
    if args.json:
        args.json.write_text(
            json.dumps({"max_ratio": args.max_ratio, "results": results}, indent=2) + "\n"
        )
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    exit_with(main, log)
