#!/usr/bin/env python3
"""How fast idgraph's watcher turns a deactivation into a finding, end to end.

The goal (issue 14): against scim2-server with 200,000 people, a person deactivated in
the IdP shows as an orphaned database user within one watch interval and a few requests,
the targeted re-check costs milliseconds whatever the size of the organisation, and an
idle watch costs one small request per interval.

What it does:

1. Starts scim2-server (from the test virtualenv, `.venv` at the repository root, or
   IDGRAPH_TEST_VENV) with a random bearer token and loads --users people with /Bulk,
   as bench/scim_ceiling.py does (every 7th person inactive, as there).
2. Writes an Identity Center file export (`aws identitystore list-users` JSON) with one
   user per person, linked by ExternalIds to the SCIM externalId, and starts a throwaway
   PostgreSQL (initdb into a temporary directory, as the `postgres` OS user when run as
   root) holding one `IAMA:<userName>` login per person, created by one DO block, and a
   reader login for idgraph.
3. Starts `target/release/idgraph run` with an hourly schedule (--cron), a watcher every
   --interval seconds, and its IdP behind a small counting reverse proxy in this script,
   which sees every request idgraph makes and the bytes in both directions. Waits for the
   first complete run (minutes at 200,000: the single-threaded server sorts every user
   for each page).
4. Idle: --idle-looks watch looks with nothing changing: requests and bytes per look,
   how long the server takes to answer one, and the daemon's CPU time meanwhile (while
   /metrics is scraped every 50 ms, as in the measurement below, so that it cancels out).
5. --repeat times: deactivates one active person with a SCIM PATCH (t0 when it returned),
   scrapes /metrics every 50 ms until `idgraph_orphaned_db_users{target="bench"}` goes
   up by one (t2), then reads the finding with `idgraph findings --format json`
   (first_seen_at, to the second) and its run's finished_at from the store (to the
   millisecond: t1, finding recorded). Where the time went: waiting for the next look,
   the look, the watched run (per source, from the store), the gauge. The PATCHes fall
   at different points of the interval, spread evenly. Also the change in
   `idgraph_detection_latency_seconds` and the daemon's CPU seconds for each
   deactivation-to-gauge window less what the same time costs when idle.
6. The daemon's RSS (VmRSS, VmHWM) after the first full run and after the re-checks.
7. A Markdown table of medians (and every round), optionally --json FILE. Exit status 2
   when something failed. Every process and temporary directory is removed on exit,
   also on Ctrl-C or SIGTERM; --log FILE keeps a copy of the daemon's log
   (`RUST_LOG=idgraph=debug`, JSON lines).

The token travels to idgraph in an environment variable and is never printed. (It is on
scim2-server's own command line: the server has no other way to take it.)

    python3 bench/watch_latency.py --users 200000 --repeat 3 --interval 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote_plus, urlencode

from scim_ceiling import (
    CLOCK_TICKS,
    REPO,
    BenchError,
    Server,
    count_users,
    exit_with,
    free_port,
    interrupt_on_signals,
    load_users,
    person,
)

TOKEN_ENV = "IDGRAPH_BENCH_SCIM_TOKEN"
PG_USER_ENV = "IDGRAPH_BENCH_PG_USER"
READER = "idgraph_reader"
TARGET = "bench"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
IC_ISSUER = "https://scim.example.com/bench/scim/v2"
ORPHANS = f'idgraph_orphaned_db_users{{target="{TARGET}"}}'
COMPLETE_RUNS = 'idgraph_reconcile_runs_total{status="complete"}'
PARTIAL_RUNS = 'idgraph_reconcile_runs_total{status="partial"}'
LATENCY = "idgraph_detection_latency_seconds"
SCRAPE_EVERY = 0.05


def log(message: str) -> None:
    print(f"watch_latency: {message}", file=sys.stderr, flush=True)


# --- the counting proxy -------------------------------------------------------------


class CountingProxy:
    """A reverse proxy between idgraph and scim2-server that records every request.

    One request per connection, as scim2-server (HTTP/1.0) closes each connection after
    its answer. Records when each request came and was answered, its method and path,
    the status and the bytes on the wire in each direction (heads included).
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.records: list[dict] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        start = time.time()
        with client:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    return
                data += chunk
            head_end = data.index(b"\r\n\r\n") + 4
            head = data[:head_end].decode("latin-1").split("\r\n")
            method, target = head[0].split(" ")[:2]
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            while len(data) < head_end + length:
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
            received, status, answered = 0, None, None
            try:
                with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                    upstream.sendall(data)
                    while True:
                        chunk = upstream.recv(1 << 16)
                        if not chunk:
                            break
                        if status is None:
                            answered = time.time()
                            status = int(chunk.split(b" ", 2)[1])
                        received += len(chunk)
                        client.sendall(chunk)
            except OSError:
                pass
        record = {
            "start": start,
            "first_byte": answered,
            "end": time.time(),
            "method": method,
            "target": target,
            "status": status,
            "bytes_in": len(data),
            "bytes_out": received,
        }
        with self.lock:
            self.records.append(record)

    def between(self, start: float, end: float) -> list[dict]:
        """The requests that came within [start, end), oldest first."""
        with self.lock:
            return sorted(
                (r for r in self.records if start <= r["start"] < end), key=lambda r: r["start"]
            )

    def stop(self) -> None:
        self.listener.close()


def is_look(record: dict) -> bool:
    """Whether a request is one of the watcher's: /Users filtered on meta.lastModified."""
    return "/Users" in record["target"] and "meta.lastModified" in unquote_plus(record["target"])


def is_listing(record: dict) -> bool:
    return "/Users" in record["target"] and "filter=" not in record["target"]


# --- Identity Center and PostgreSQL -------------------------------------------------


def write_identity_center(path: Path, n: int) -> None:
    """Identity Center users of people 0..n as `aws identitystore list-users` prints them."""
    with open(path, "w") as out:
        out.write('{"Users": [\n')
        for i in range(n):
            p = person(i)
            user = {
                "IdentityStoreId": "d-9067c1a2b3",
                "UserId": f"9067{i:06x}-{i % 65536:04x}-4a2b-8c3d-{i:012x}",
                "UserName": p["userName"],
                "Name": {
                    "GivenName": p["name"]["givenName"],
                    "FamilyName": p["name"]["familyName"],
                    "Formatted": p["name"]["formatted"],
                },
                "DisplayName": p["displayName"],
                "Emails": [{"Value": p["userName"], "Type": "work", "Primary": True}],
                "ExternalIds": [{"Issuer": IC_ISSUER, "Id": p["externalId"]}],
            }
            out.write(("," if i else "") + json.dumps(user) + "\n")
        out.write("]}\n")


def is_root() -> bool:
    return os.geteuid() == 0


def pg_bindir() -> Path:
    """The newest PostgreSQL server binaries under /usr/lib/postgresql."""
    found = []
    for version in Path("/usr/lib/postgresql").glob("*"):
        if (version / "bin/initdb").exists() and version.name.isdigit():
            found.append((int(version.name), version / "bin"))
    if not found:
        raise BenchError(
            "no PostgreSQL server binaries under /usr/lib/postgresql "
            "(apt-get install postgresql, as ./scripts/test does)"
        )
    return max(found)[1]


class Postgres:
    """A throwaway PostgreSQL instance in `directory` on a free port, trusting every login."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.bin = pg_bindir()
        self.port = free_port()
        self.data = directory / "data"
        self.started = False
        if is_root():
            subprocess.run(["chown", "-R", "postgres:postgres", str(directory)], check=True)
        self._as_owner(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )
        options = (
            f"-p {self.port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off"
        )
        self._as_owner(
            "pg_ctl", "-D", str(self.data), "-l", str(directory / "postgres.log"),
            "-o", options, "-w", "-t", "60", "start",
        )
        self.started = True

    def _as_owner(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if is_root():
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"{program} failed: {done.stderr.strip()[-1000:]}")

    def psql(self, sql: str) -> str:
        done = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-At",
             "-h", str(self.dir), "-p", str(self.port), "-d", "postgres"],
            input=sql, capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise BenchError(f"psql failed: {done.stderr.strip()[-1000:]}")
        return done.stdout

    def create_logins(self, n: int) -> None:
        """One `IAMA:<userName>` login per person, and the reader: the names are copied
        into a temporary table, then created by one DO block committing every 10,000."""
        names = "\n".join(f"IAMA:{person(i)['userName']}" for i in range(n))
        self.psql(
            "CREATE TABLE bench_logins (name text NOT NULL);\n"
            "COPY bench_logins FROM STDIN;\n" + names + "\n\\.\n"
            "DO $$\n"
            "DECLARE login record; made int := 0;\n"
            "BEGIN\n"
            "  FOR login IN SELECT name FROM bench_logins LOOP\n"
            "    EXECUTE format('CREATE ROLE %I LOGIN', login.name);\n"
            "    made := made + 1;\n"
            "    IF made % 10000 = 0 THEN COMMIT; END IF;\n"
            "  END LOOP;\n"
            "END $$;\n"
            "DROP TABLE bench_logins;\n"
            f"CREATE ROLE {READER} LOGIN;\n"
        )
        logins = int(self.psql("SELECT count(*) FROM pg_user WHERE usename LIKE 'IAMA:%';"))
        if logins != n:
            raise BenchError(f"PostgreSQL holds {logins} IAMA: logins, not {n}")

    def stop(self) -> None:
        if self.started:
            try:
                self._as_owner("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except BenchError as error:
                log(f"stopping PostgreSQL: {error}")
            self.started = False


# --- the daemon ---------------------------------------------------------------------


def write_config(workdir: Path, args, proxy_port: int, pg_port: int, http_port: int) -> Path:
    (workdir / "store").mkdir()
    config = workdir / "idgraph.toml"
    config.write_text(
        f"""[store]
path = "store/idgraph.db"

[schedule]
cron = "{args.cron}"

[http]
listen = "127.0.0.1:{http_port}"

[idp]
kind = "scim"
url = "http://127.0.0.1:{proxy_port}/v2"
token_env = "{TOKEN_ENV}"
paging = "index"
page_size = {args.page_size}
concurrency = {args.concurrency}
timeout_seconds = 600
deadline_seconds = {int(args.first_run_timeout)}

[identity_center]
kind = "file"
path = "identitystore-users.json"

[[targets]]
name = "{TARGET}"
kind = "postgres"
host = "127.0.0.1"
port = {pg_port}
database = "postgres"
user_env = "{PG_USER_ENV}"
sslmode = "disable"
master_user = "postgres"
timeout_seconds = 600

[watch]
interval_seconds = {args.interval}
"""
    )
    return config


class Daemon:
    """`idgraph run` in a process group of its own, its log in the work directory."""

    def __init__(self, binary: Path, config: Path, token: str, http_port: int, rust_log: str):
        self.binary = binary
        self.config = config
        self.token = token
        self.http_port = http_port
        self.log_path = config.parent / "daemon.log"
        self.log_file = open(self.log_path, "wb")
        env = dict(os.environ, RUST_LOG=rust_log, **{TOKEN_ENV: token, PG_USER_ENV: READER})
        self.env = env
        self.process = subprocess.Popen(
            [str(binary), "--log-format", "json", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=self.log_file,
            env=env,
            cwd=config.parent,
            start_new_session=True,
        )

    def metrics(self) -> dict[str, float]:
        """/metrics as series → value."""
        if self.process.poll() is not None:
            raise BenchError(f"idgraph run exited with {self.process.returncode}:\n{self.tail()}")
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        series = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    series[name] = float(value)
                except ValueError:
                    pass
        return series

    def wait_listening(self, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while True:
            try:
                self.metrics()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(f"idgraph run did not listen within {limit:.0f} s")
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM in MiB."""
        found = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
        return found

    def findings(self) -> list[dict]:
        done = subprocess.run(
            [str(self.binary), "findings", "--config", str(self.config), "--format", "json",
             "--kind", "orphaned_db_user", "--target", TARGET],
            capture_output=True, text=True, cwd=self.config.parent, env=self.env,
        )
        if done.returncode not in (0, 4):
            raise BenchError(f"idgraph findings exited with {done.returncode}: {done.stderr[-1000:]}")
        return json.loads(done.stdout)["findings"]

    def tail(self, lines: int = 30) -> str:
        self.log_file.flush()
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=30)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log_file.close()


def store_run(store: Path, run_id: int) -> dict:
    """A run's times and sources, read from the store (read-only, while the daemon runs)."""
    connection = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        started, finished, status = connection.execute(
            "SELECT started_at, finished_at, status FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        sources = {
            name: {"ms": ms, "objects": objects}
            for name, ms, objects in connection.execute(
                "SELECT name, duration_ms, objects FROM run_sources WHERE run_id = ?", (run_id,)
            )
        }
        full_runs = connection.execute("SELECT count(*) FROM runs WHERE scope IS NULL").fetchone()[0]
    finally:
        connection.close()
    return {
        "started": parse_time(started),
        "finished": parse_time(finished),
        "status": status,
        "sources": sources,
        "full_runs": full_runs,
    }


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- the benchmark ------------------------------------------------------------------


def wait_first_run(daemon: Daemon, limit: float) -> float:
    """Seconds until /metrics shows the first complete run."""
    start = time.monotonic()
    last_note = start
    while True:
        series = daemon.metrics()
        if series.get(COMPLETE_RUNS, 0) >= 1:
            return time.monotonic() - start
        if series.get(PARTIAL_RUNS, 0) >= 1:
            raise BenchError(f"the first run was partial:\n{daemon.tail()}")
        if time.monotonic() - start > limit:
            raise BenchError(f"no complete run within {limit:.0f} s:\n{daemon.tail()}")
        if time.monotonic() - last_note > 60:
            last_note = time.monotonic()
            log(f"waiting for the first full run ({last_note - start:.0f} s)")
        time.sleep(2)


def scrape_for(daemon: Daemon, seconds: float) -> None:
    """Scrapes /metrics every 50 ms for `seconds`, as the measurement does."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        daemon.metrics()
        time.sleep(SCRAPE_EVERY)


def next_look_end(proxy: CountingProxy, daemon: Daemon, after: float, limit: float) -> dict:
    """The first look that came after `after`, once it has been answered."""
    deadline = time.time() + limit
    while time.time() < deadline:
        looks = [r for r in proxy.between(after, time.time() + 1) if is_look(r)]
        if looks:
            return looks[0]
        daemon.metrics()
        time.sleep(SCRAPE_EVERY)
    raise BenchError(f"no watch look within {limit:.0f} s:\n{daemon.tail()}")


def measure_idle(args, daemon: Daemon, proxy: CountingProxy, server: Server) -> dict:
    """--idle-looks looks with nothing changing, from the end of one look to the end of
    the last, while /metrics is scraped every 50 ms."""
    first = next_look_end(proxy, daemon, time.time(), args.interval * 3 + 60)
    start = first["end"]
    cpu, server_cpu, wall = daemon.cpu_seconds(), server.cpu_seconds(), time.time()
    last = first
    for _ in range(args.idle_looks):
        last = next_look_end(proxy, daemon, last["start"] + 1e-6, args.interval * 3 + 120)
    cpu, server_cpu, wall = (
        daemon.cpu_seconds() - cpu, server.cpu_seconds() - server_cpu, time.time() - wall
    )
    requests = proxy.between(start, last["end"])
    looks = [r for r in requests if is_look(r)]
    others = [r for r in requests if not is_look(r)]
    if not looks:
        raise BenchError("no look in the idle window")
    return {
        "seconds": wall,
        "looks": len(looks),
        "other_requests": len(others),
        "requests_per_look": len(requests) / len(looks),
        "bytes_sent_per_look": statistics.mean(r["bytes_in"] for r in looks),
        "bytes_received_per_look": statistics.mean(r["bytes_out"] for r in looks),
        "look_seconds": statistics.median(r["end"] - r["start"] for r in looks),
        "look_seconds_max": max(r["end"] - r["start"] for r in looks),
        "statuses": sorted({r["status"] for r in looks}),
        "daemon_cpu_s": cpu,
        "daemon_cpu_per_s": cpu / wall,
        "server_cpu_per_look_s": server_cpu / len(looks),
    }


def resolve_ids(server: Server, people: list[int]) -> dict[int, str]:
    ids = {}
    for i in people:
        name = person(i)["userName"]
        query = urlencode({"filter": f'userName eq "{name}"'})
        status, answer = server.request("GET", "/Users?" + query)
        if status != 200 or not isinstance(answer, dict) or answer.get("totalResults") != 1:
            raise BenchError(f"looking up {name} answered {status}")
        ids[i] = answer["Resources"][0]["id"]
    return ids


def chosen_people(n: int, repeat: int) -> list[int]:
    """`repeat` active people (not a multiple of 7) spread over the organisation."""
    people = []
    for k in range(repeat):
        i = (n * (2 * k + 1)) // (2 * repeat)
        while i % 7 == 0 or i in people:
            i = (i + 1) % n
        people.append(i)
    return people


def deactivate(args, k: int, i: int, user_id: str, daemon: Daemon, proxy: CountingProxy,
               server: Server, idle: dict, store: Path) -> dict:
    """One deactivation, from the PATCH to the gauge, and where the time went."""
    login = person(i)["userName"]
    before = daemon.metrics()
    orphans = before.get(ORPHANS)
    if orphans is None:
        raise BenchError(f"/metrics has no {ORPHANS}")
    # PATCH at a point of the interval spread evenly over the rounds: the wait for the
    # next look is then about interval × (1 − (k + 0.5) / repeat).
    look = next_look_end(proxy, daemon, time.time(), args.interval * 3 + 60)
    phase = args.interval * (k + 0.5) / args.repeat
    while time.time() < look["end"] + phase:
        time.sleep(0.005)
    before = daemon.metrics()
    cpu = daemon.cpu_seconds()
    patch = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    sent = time.time()
    status, answer = server.request("PATCH", f"/Users/{user_id}", patch)
    t0 = time.time()
    if status not in (200, 204):
        raise BenchError(f"PATCH of {login} answered {status}: {str(answer)[:300]}")

    deadline = t0 + args.interval * 4 + 120
    while True:
        series = daemon.metrics()
        t2 = time.time()
        if series.get(ORPHANS, 0) >= orphans + 1:
            break
        if t2 > deadline:
            raise BenchError(f"{ORPHANS} did not go up within {t2 - t0:.0f} s:\n{daemon.tail()}")
        time.sleep(SCRAPE_EVERY)
    cpu = daemon.cpu_seconds() - cpu
    window = t2 - t0
    # When the server says the change happened (after the measurement: a request less
    # while the watcher looks).
    status, user = server.request("GET", f"/Users/{user_id}")
    if status != 200 or not isinstance(user, dict) or user.get("active") is not False:
        raise BenchError(f"{login} is not inactive after the PATCH: {status} {str(user)[:300]}")
    modified = parse_time(user["meta"]["lastModified"])

    db_user = f"IAMA:{login}"
    finding = next((f for f in daemon.findings() if f["db_user"] == db_user), None)
    if finding is None:
        raise BenchError(f"no open orphaned_db_user finding for {db_user}")
    run = store_run(store, finding["first_seen_run"])
    t1 = run["finished"]
    seen_at = parse_time(finding["first_seen_at"])
    if int(seen_at) != int(t1):
        raise BenchError(f"first_seen_at {finding['first_seen_at']} is not its run's finished_at")

    looks = [r for r in proxy.between(t0 - args.interval, t2) if is_look(r)]
    # The look that saw the change: the first one that started after the PATCH returned.
    seen = next((r for r in looks if r["start"] >= t0), None)
    requests = proxy.between(t0, t2)
    after = daemon.metrics()
    return {
        "person": i,
        "orphans_before": orphans,
        "patch_s": t0 - sent,
        "t1_s": t1 - t0,
        "t2_s": t2 - t0,
        "t1_from_last_modified_s": t1 - modified,
        "first_seen_at": finding["first_seen_at"],
        "run_id": finding["first_seen_run"],
        "run_status": run["status"],
        "wait_for_look_s": seen["start"] - t0 if seen else None,
        "look_s": seen["end"] - seen["start"] if seen else None,
        "look_bytes_received": seen["bytes_out"] if seen else None,
        "look_to_run_start_s": run["started"] - seen["end"] if seen else None,
        "run_s": run["finished"] - run["started"],
        "run_sources_ms": {name: s["ms"] for name, s in run["sources"].items()},
        "run_sources_objects": {name: s["objects"] for name, s in run["sources"].items()},
        "recorded_to_gauge_s": t2 - t1,
        "requests": len(requests),
        "requests_not_looks": len(requests) - sum(1 for r in requests if is_look(r)),
        "latency_count": after.get(f"{LATENCY}_count", 0) - before.get(f"{LATENCY}_count", 0),
        "latency_sum_s": after.get(f"{LATENCY}_sum", 0) - before.get(f"{LATENCY}_sum", 0),
        "daemon_cpu_window_s": cpu,
        "daemon_cpu_recheck_s": cpu - idle["daemon_cpu_per_s"] * window,
        "full_runs_so_far": run["full_runs"],
    }


def fmt(value, unit: str = "s", digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f} {unit}".strip()


def report(result: dict) -> str:
    rounds = result["rounds"]
    idle = result["idle"]
    med = result["median"]
    lines = [
        f"idgraph's watcher against scim2-server, {result['users']:,} people, "
        f"interval {result['interval']} s, median of {len(rounds)}:",
        "",
        "| | median | rounds |",
        "|---|---:|---|",
    ]

    def row(label: str, key: str, unit: str = "s", digits: int = 3) -> None:
        values = ", ".join(fmt(r[key], unit, digits) for r in rounds)
        lines.append(f"| {label} | {fmt(med[key], unit, digits)} | {values} |")

    row("PATCH → finding recorded (t1 − t0)", "t1_s")
    row("PATCH → gauge visible (t2 − t0)", "t2_s")
    row("lastModified → recorded, from the histogram", "latency_mean_s")
    row("… waiting for the next look", "wait_for_look_s")
    row("… the look that saw it", "look_s")
    row("… look answered → watched run starts", "look_to_run_start_s")
    row("… the watched run", "run_s")
    row("… recorded → gauge visible (≤ 50 ms scrape)", "recorded_to_gauge_s")
    row("the PATCH itself (t0 is when it returned)", "patch_s")
    row("daemon CPU, PATCH → gauge", "daemon_cpu_window_s")
    row("daemon CPU of the re-check (less idle)", "daemon_cpu_recheck_s")
    lines += [
        "",
        "| | |",
        "|---|---:|",
        f"| scim2-server: load {result['users']:,} users with /Bulk | {fmt(result['load_s'], 's', 1)} |",
        f"| first full run: start → /metrics shows it complete | {fmt(result['first_run_s'], 's', 1)} |",
        f"| first full run: requests / MB from the IdP | {result['first_run_requests']} / "
        f"{result['first_run_bytes'] / 1e6:.1f} MB |",
        f"| first full run: daemon CPU / scim2-server CPU | {fmt(result['first_run_cpu_s'], 's', 2)} "
        f"/ {fmt(result['first_run_server_cpu_s'], 's', 1)} |",
        f"| watch looks during the first full run, median answer time | {result['first_run_looks']}, "
        f"{fmt(result['first_run_look_seconds'])} |",
        f"| idle look: requests per look | {idle['requests_per_look']:.2f} ({idle['looks']} looks, "
        f"{idle['other_requests']} other requests) |",
        f"| idle look: bytes sent / received | {idle['bytes_sent_per_look']:.0f} B / "
        f"{idle['bytes_received_per_look']:.0f} B |",
        f"| idle look: server's answer time, median (max) | {fmt(idle['look_seconds'])} "
        f"({fmt(idle['look_seconds_max'])}) |",
        f"| idle look: scim2-server CPU per look | {fmt(idle['server_cpu_per_look_s'])} |",
        f"| idle: daemon CPU per second (scraped every 50 ms) | "
        f"{idle['daemon_cpu_per_s'] * 1000:.1f} ms |",
        f"| daemon RSS / peak after the first full run | {result['memory_after_first']['VmRSS']:.0f} MiB "
        f"/ {result['memory_after_first']['VmHWM']:.0f} MiB |",
        f"| daemon RSS / peak after the re-checks | {result['memory_after']['VmRSS']:.0f} MiB "
        f"/ {result['memory_after']['VmHWM']:.0f} MiB |",
    ]
    lines.append("")
    for r in rounds:
        sources = ", ".join(f"{name} {ms} ms" for name, ms in r["run_sources_ms"].items())
        lines.append(
            f"- person {r['person']}: run {r['run_id']} ({r['run_status']}, {sources}); "
            f"{r['requests']} requests to the IdP meanwhile ({r['requests_not_looks']} not looks); "
            f"histogram +{r['latency_count']:.0f} observations, {fmt(r['latency_sum_s'])} in all; "
            f"orphans {r['orphans_before']:.0f} → +1"
        )
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200_000, help="people to load (200000)")
    parser.add_argument("--repeat", type=int, default=3, help="deactivations, median taken (3)")
    parser.add_argument("--interval", type=int, default=5, help="[watch] interval_seconds (5)")
    parser.add_argument("--idle-looks", type=int, default=6, help="looks measured idle (6)")
    parser.add_argument("--cron", default="0 0 * * * *", help="[schedule] cron (hourly)")
    parser.add_argument(
        "--page-size", type=int, default=1000,
        help="[idp] page_size (1000, scim2-server's filter.maxResults)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="[idp] concurrency (4)")
    parser.add_argument(
        "--first-run-timeout", type=float, default=7200, help="seconds to wait for the first run"
    )
    parser.add_argument("--rust-log", default="idgraph=debug", help="the daemon's RUST_LOG")
    parser.add_argument(
        "--idgraph", type=Path, default=REPO / "target/release/idgraph", help="the release binary"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--log", type=Path, metavar="FILE", help="keep a copy of the daemon's log")
    args = parser.parse_args(argv)
    if args.users < 10 or args.repeat < 1 or args.interval < 1 or args.idle_looks < 1:
        parser.error("--users must be at least 10; --repeat, --interval, --idle-looks positive")
    return args


def run(args, workdir: Path, stack: list) -> dict:
    token = "bench-" + secrets.token_urlsafe(24)
    server = Server(token, workdir)
    stack.append(server.stop)
    log(f"scim2-server on port {server.port}")
    server.wait_until_listening()
    start = time.monotonic()
    load_users(server, args.users)
    total = count_users(server)
    if total != args.users:
        raise BenchError(f"the server holds {total} users, not {args.users}")
    load_s = time.monotonic() - start
    log(f"{total} users loaded in {load_s:.1f} s")
    people = chosen_people(args.users, args.repeat)
    ids = resolve_ids(server, people)
    loaded_at = time.time()

    write_identity_center(workdir / "identitystore-users.json", args.users)
    pg_dir = workdir / "pg"
    pg_dir.mkdir()
    pg = Postgres(pg_dir)
    stack.append(pg.stop)
    start = time.monotonic()
    pg.create_logins(args.users)
    log(f"PostgreSQL on port {pg.port}: {args.users} logins in {time.monotonic() - start:.1f} s")

    proxy = CountingProxy(server.port)
    stack.append(proxy.stop)
    http_port = free_port()
    config = write_config(workdir, args, proxy.port, pg.port, http_port)
    # The watcher starts from the time the daemon starts, less its 5 s overlap: users
    # loaded within it would look changed.
    while time.time() < loaded_at + 6:
        time.sleep(0.1)
    started, server_cpu = time.time(), server.cpu_seconds()
    daemon = Daemon(args.idgraph, config, token, http_port, args.rust_log)
    stack.append(daemon.stop)
    if args.log:
        stack.append(lambda: shutil.copyfile(daemon.log_path, args.log))
    daemon.wait_listening()
    log(f"idgraph run on port {http_port}; waiting for the first full run")
    first_run_s = wait_first_run(daemon, args.first_run_timeout)
    server_cpu = server.cpu_seconds() - server_cpu
    first_requests = [r for r in proxy.between(started, time.time()) if not is_look(r)]
    first_looks = [r for r in proxy.between(started, time.time()) if is_look(r)]
    first_run_cpu = daemon.cpu_seconds()
    memory_after_first = daemon.memory()
    log(f"first full run complete after {first_run_s:.1f} s; {daemon.metrics().get(ORPHANS)} orphans")

    idle = measure_idle(args, daemon, proxy, server)
    log(
        f"idle: {idle['looks']} looks, {idle['requests_per_look']:.2f} requests and "
        f"{idle['bytes_received_per_look']:.0f} bytes received per look, "
        f"answered in {idle['look_seconds']:.3f} s"
    )

    store = workdir / "store/idgraph.db"
    rounds = []
    for k, i in enumerate(people):
        r = deactivate(args, k, i, ids[i], daemon, proxy, server, idle, store)
        r["latency_mean_s"] = r["latency_sum_s"] / r["latency_count"] if r["latency_count"] else None
        rounds.append(r)
        log(
            f"round {k + 1}/{args.repeat}: recorded after {r['t1_s']:.3f} s, gauge after "
            f"{r['t2_s']:.3f} s (look {fmt(r['look_s'])}, watched run {r['run_s']:.3f} s)"
        )
    memory_after = daemon.memory()
    if token in daemon.log_path.read_text(errors="replace"):
        raise BenchError("idgraph logged the SCIM token")
    full_runs = rounds[-1]["full_runs_so_far"]
    if full_runs != 1:
        log(f"warning: {full_runs} full runs in the store: a scheduled run came in between")

    def median_of(key: str):
        values = [r[key] for r in rounds if r[key] is not None]
        return statistics.median(values) if values else None

    keys = [k for k, v in rounds[0].items() if isinstance(v, (int, float)) or v is None]
    return {
        "users": args.users,
        "interval": args.interval,
        "page_size": args.page_size,
        "load_s": load_s,
        "first_run_s": first_run_s,
        "first_run_requests": len(first_requests),
        "first_run_bytes": sum(r["bytes_out"] for r in first_requests),
        "first_run_listing_requests": sum(1 for r in first_requests if is_listing(r)),
        "first_run_cpu_s": first_run_cpu,
        "first_run_server_cpu_s": server_cpu,
        "first_run_looks": len(first_looks),
        "first_run_look_seconds": statistics.median(r["end"] - r["start"] for r in first_looks)
        if first_looks else None,
        "memory_after_first": memory_after_first,
        "memory_after": memory_after,
        "idle": idle,
        "rounds": rounds,
        "median": {key: median_of(key) for key in keys},
        "full_runs": full_runs,
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not args.idgraph.exists():
        raise BenchError(f"{args.idgraph} is missing: cargo build --release -p idgraph")
    if shutil.which("psql") is None:
        raise BenchError("psql is not installed")

    # SIGTERM and SIGHUP end the run like Ctrl-C, through the finally below.
    interrupt_on_signals()

    workdir = Path(tempfile.mkdtemp(prefix="watch-latency-"))
    # For the postgres OS user, which owns the instance's directory inside.
    workdir.chmod(0o755)
    stack: list = []
    try:
        result = run(args, workdir, stack)
    finally:
        for undo in reversed(stack):
            try:
                undo()
            except Exception as error:  # cleaning up goes on whatever failed
                log(f"cleaning up: {error}")
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    exit_with(main, log)
