"""Benchmark: what a foreground ``smlocal serve`` pays for showing a log line per request.

Runs two foreground serves of the reference sklearn image side by side, each a subprocess
with its own SMLOCAL_HOME (so each runs its service in its own process, as a user's
``smlocal serve`` does) and its stdout to a pipe (``--pty``: to a pseudo-terminal, so rich
sees a terminal and styles the lines):

- "logging": the image as shipped, whose gunicorn writes an access-log line per request,
  which the serve prints;
- "quiet": the same image with ``SAGEMAKER_CONTAINER_LOG_LEVEL=warning`` (the image's own
  setting; below info gunicorn writes no access log), so nothing is printed per request;
- with ``--unshown``, also "unshown": the image as shipped under ``serve --quiet``, whose log
  lines reach the log file but not stdout (what the file side costs, apart from the terminal).

It sends ``--requests`` sequential keep-alive InvokeEndpoint calls to each, interleaved in
``--rounds`` (the order alternates, so drift on a noisy machine hits both alike), and prints,
from the same run:

1. the serving process's CPU per request (``/proc/PID/stat`` utime + stime: its threads, not
   its children and not the container) for each serve, and the ratio logging / quiet;
2. whether every access-log line reached the logging serve's stdout, and how long
   after a round's last request its last line appeared (the worst round).

Goal (issue 15): logging costs <= 10 % more CPU per request than quiet (a ratio <= 1.10);
every line still shows, within ~0.5 s.

Needs Docker and the image: ``make sklearn-image``.
Run: .venv/bin/python benchmarks/serve_logging.py [--requests 500] [--rounds 8] [--pty]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

IMAGE = "smlocal/sklearn-iris:latest"
MODEL = Path(__file__).resolve().parent.parent / "containers/sklearn/build/model.tar.gz"
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
SMLOCAL = str(Path(sys.executable).parent / "smlocal")
# gunicorn's access-log line for an invocation (the image's format: '%(h)s "%(r)s" ...').
_ACCESS = '"POST /invocations '
_URL = re.compile(r"smlocal service at (http://[\d.]+:\d+)")


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (its threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Serve:
    """One foreground ``smlocal serve`` subprocess and what it has printed so far."""

    mode: str
    process: subprocess.Popen[bytes]
    stdout_fd: int
    stderr_text: list[str] = field(default_factory=list)
    access_lines: int = 0
    last_line_at: float = 0.0
    stdout_bytes: int = 0
    _partial: bytes = b""

    def drain(self) -> None:
        """Read the serve's stdout until it closes; count access-log lines as they come."""
        while True:
            try:
                data = os.read(self.stdout_fd, 65536)
            except OSError:  # a pty's master reads EIO once the serve has exited
                return
            if not data:
                return
            self.stdout_bytes += len(data)
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                if _ACCESS in text:
                    self.access_lines += 1
                    self.last_line_at = time.monotonic()

    def drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_text.append(line.decode(errors="replace"))

    def url(self, timeout_s: float) -> str:
        """The service's URL once the endpoint is InService (from what serve tells stderr)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = "".join(self.stderr_text)
            found = _URL.search(text)
            if found and "InService" in text:
                return found.group(1)
            if self.process.poll() is not None or "Failed" in text:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.mode} serve did not come up:\n{''.join(self.stderr_text)}")


def start(mode: str, *, pty: bool) -> Serve:
    env = {**os.environ, "SMLOCAL_HOME": tempfile.mkdtemp(prefix=f"smlocal-bench-{mode}-")}
    argv = [SMLOCAL, "serve", IMAGE, "--model", str(MODEL), "--name", f"bench-{mode}"]
    argv += ["--port", "0"]
    if mode == "quiet":
        argv += ["--env", "SAGEMAKER_CONTAINER_LOG_LEVEL=warning"]
    if mode == "unshown":
        argv += ["--quiet"]
    if pty:
        import pty as ptys

        master, slave = ptys.openpty()
        env.setdefault("TERM", "xterm-256color")
        process = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, env=env)
        os.close(slave)
        stdout_fd = master
    else:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert process.stdout is not None
        stdout_fd = process.stdout.fileno()
    serve = Serve(mode, process, stdout_fd)
    threading.Thread(target=serve.drain, daemon=True).start()
    threading.Thread(target=serve.drain_stderr, daemon=True).start()
    return serve


def _requests(conn: http.client.HTTPConnection, name: str, count: int) -> None:
    for _ in range(count):
        conn.request(
            "POST",
            f"/endpoints/{name}/invocations",
            body=BODY,
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{name} answered {response.status}")


def _stop(serve: Serve) -> None:
    if serve.process.poll() is None:
        serve.process.send_signal(signal.SIGINT)  # Ctrl-C: the serve deletes its endpoint
    try:
        serve.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        serve.process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="per serve per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--settle", type=float, default=0.6, help="seconds after each round")
    parser.add_argument("--pty", action="store_true", help="stdout to a pseudo-terminal")
    parser.add_argument("--unshown", action="store_true", help="also a `serve --quiet`")
    args = parser.parse_args()
    modes = ("logging", "quiet", "unshown") if args.unshown else ("logging", "quiet")
    serves = {mode: start(mode, pty=args.pty) for mode in modes}
    try:
        conns = {}
        for mode, serve in serves.items():
            url = serve.url(timeout_s=120)
            host, port = url.removeprefix("http://").rsplit(":", 1)
            conns[mode] = http.client.HTTPConnection(host, int(port), timeout=30)
            _requests(conns[mode], f"bench-{mode}", 200)  # warm up
        time.sleep(args.settle)
        logging = serves["logging"]
        cpu = dict.fromkeys(serves, 0.0)
        lines_before = logging.access_lines
        worst_lag = 0.0
        order = list(serves)
        for round_ in range(args.rounds):
            for mode in order if round_ % 2 == 0 else order[::-1]:
                serve = serves[mode]
                before = _process_cpu_s(serve.process.pid)
                _requests(conns[mode], f"bench-{mode}", args.requests)
                sent_at = time.monotonic()
                expected = lines_before + (round_ + 1) * args.requests
                time.sleep(args.settle)
                cpu[mode] += _process_cpu_s(serve.process.pid) - before
                if mode == "logging":
                    while logging.access_lines < expected and time.monotonic() - sent_at < 5:
                        time.sleep(0.01)
                    worst_lag = max(worst_lag, logging.last_line_at - sent_at)
        total = args.requests * args.rounds
        shown = logging.access_lines - lines_before
        where = "a pty" if args.pty else "a pipe"
        print(f"foreground serve of {IMAGE}, stdout to {where}")
        print(f"  {args.rounds} interleaved rounds x {args.requests} sequential requests each")
        per = {mode: used / total * 1e6 for mode, used in cpu.items()}
        for mode, figure in per.items():
            print(f"  serving process CPU per request, {mode + ':':8s} {figure:7.0f} µs")
        extra, ratio = per["logging"] - per["quiet"], per["logging"] / per["quiet"]
        print(f"  logging costs {extra:+.0f} µs per request; ratio {ratio:.3f} (goal <= 1.10)")
        print(f"  access-log lines shown: {shown} of {total} requests")
        print(f"  last line of a round shown at most {worst_lag:.2f} s after its last request")
    finally:
        for serve in serves.values():
            _stop(serve)
    for serve in serves.values():
        if serve.process.returncode != 0:
            print(f"  {serve.mode} serve exited {serve.process.returncode}:")
            print("".join(serve.stderr_text[-5:]))


if __name__ == "__main__":
    main()
