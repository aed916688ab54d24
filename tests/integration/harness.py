"""Shared harness for redline's integration tests (Python 3.11, stdlib only).

Starts the real coursed binary on loopback with ephemeral ports and a temporary
data directory, waits for it the way Kubernetes would (the "listening" log line,
then admin /readyz == 200), talks HTTP to it, and always stops it by PID.

    from harness import Coursed, args, run

    def test_ping(c):
        status, headers, body = c.request("GET", "/ping")
        assert status == 200 and body == b"pong\\n", (status, body)

    if __name__ == "__main__":
        with Coursed(args().coursed) as c:
            run([test_ping], c)

Every test file is run by ctest as `python3 FILE --coursed PATH --bindir BUILD_DIR`.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

READY_TIMEOUT = 20.0
LOG_TAIL = 60           # lines of the process's output shown when something fails

_args = None


def args():
    """The command line: --coursed PATH --bindir DIR [-k SUBSTRING] (parsed once)."""
    global _args
    if _args is None:
        p = argparse.ArgumentParser()
        p.add_argument("--coursed", required=True, help="path of the coursed binary")
        p.add_argument("--bindir", default=".", help="the build directory")
        p.add_argument("-k", dest="only", default="", help="run only tests whose name has this")
        _args = p.parse_args()
    return _args


class Headers(dict):
    """A response's headers: keys stored lower-case, looked up in any case."""

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


class ProcessFailed(RuntimeError):
    pass


class Coursed:
    """One coursed process (a context manager).

    binary:   path of the coursed executable
    data_dir: its --data-dir; None makes a temporary one that is removed afterwards
    args:     extra command-line arguments (after the listen/data-dir flags)
    env:      extra environment variables (on top of this process's environment)
    """

    def __init__(self, binary, data_dir=None, args=(), env=None, ready_timeout=READY_TIMEOUT):
        self.binary = binary
        self.extra_args = list(args)
        self.env = dict(env or {})
        self.ready_timeout = ready_timeout
        self._own_dir = data_dir is None
        self.data_dir = data_dir
        self.proc = None
        self.addr = self.admin_addr = None
        self.stdout_lines = []
        self.stderr_lines = []
        self._cond = threading.Condition()
        self._readers = []
        self.returncode = None

    # ---- lifecycle ---------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except ProcessFailed:
            self._cleanup(failed=False)     # the exception carries the output
            raise
        except BaseException:
            self._cleanup(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None and not (exc_type is SystemExit and not exc.code)
        self._cleanup(failed)
        return False

    def start(self):
        if self._own_dir:
            self.data_dir = tempfile.mkdtemp(prefix="coursed-test-")
        cmd = [self.binary, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
               "--data-dir", self.data_dir] + self.extra_args
        env = dict(os.environ)
        env.update(self.env)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        for stream, lines in ((self.proc.stdout, self.stdout_lines),
                              (self.proc.stderr, self.stderr_lines)):
            t = threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            t.start()
            self._readers.append(t)
        self._wait_listening()
        self._wait_ready()

    def _read(self, stream, lines):
        for raw in iter(stream.readline, b""):
            with self._cond:
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        stream.close()
        with self._cond:
            self._cond.notify_all()

    def _wait_listening(self):
        deadline = time.monotonic() + self.ready_timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.stdout_lines[seen:]:
                    rec = _json_or_none(line)
                    if rec and rec.get("msg") == "listening" and "addr" in rec:
                        self.addr = rec["addr"]
                        self.admin_addr = rec.get("admin_addr") or None
                        return
                seen = len(self.stdout_lines)
                if self.proc.poll() is not None:
                    self._cond.wait(0.2)        # let the readers collect the last output
                    raise ProcessFailed("coursed exited with status %d before listening\n%s"
                                        % (self.proc.returncode, self.output_tail()))
                if time.monotonic() > deadline:
                    raise ProcessFailed("coursed did not log 'listening' within %.0fs\n%s"
                                        % (self.ready_timeout, self.output_tail()))
                self._cond.wait(0.1)

    def _wait_ready(self):
        if not self.admin_addr:
            return
        deadline = time.monotonic() + self.ready_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ProcessFailed("coursed exited with status %d before ready\n%s"
                                    % (self.proc.returncode, self.output_tail()))
            try:
                status, _, _ = self.request("GET", "/readyz", admin=True, timeout=2)
                if status == 200:
                    return
                last = "status %d" % status
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        raise ProcessFailed("admin /readyz not 200 within %.0fs (last: %s)\n%s"
                            % (self.ready_timeout, last, self.output_tail()))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends sig and waits for the exit; returns the exit status (-N for signal N)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise ProcessFailed("coursed did not exit within %ss of %s\n%s"
                                    % (timeout, signal.Signals(sig).name, self.output_tail()))
        self._join_readers()
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        """SIGKILL by PID and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self._join_readers()
            self.returncode = self.proc.returncode

    def _join_readers(self):
        for t in self._readers:
            t.join(5)

    def _cleanup(self, failed):
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.stop(signal.SIGTERM, timeout=15)
                except ProcessFailed:
                    pass
            self.kill()
        finally:
            if failed:
                sys.stderr.write("---- coursed output (pid %s) ----\n%s\n"
                                 % (self.pid, self.output_tail()))
            if self._own_dir and self.data_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    # ---- what it said ------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def host(self):
        return self.addr.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self):
        return int(self.addr.rsplit(":", 1)[1])

    @property
    def admin_port(self):
        return int(self.admin_addr.rsplit(":", 1)[1]) if self.admin_addr else None

    def logs(self):
        """The stdout lines that are JSON objects, parsed."""
        with self._cond:
            lines = list(self.stdout_lines)
        return [r for r in map(_json_or_none, lines) if r is not None]

    def wait_for_log(self, pred, timeout=10.0):
        """Waits for a JSON log record for which pred(record) is true; returns it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.stdout_lines:
                    rec = _json_or_none(line)
                    if rec is not None and pred(rec):
                        return rec
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no matching log line within %.0fs\n%s"
                                         % (timeout, self.output_tail()))
                self._cond.wait(min(left, 0.2))

    def output_tail(self, n=LOG_TAIL):
        with self._cond:
            out = self.stdout_lines[-n:]
            err = self.stderr_lines[-n:]
        return ("stdout (last %d lines):\n  %s\nstderr (last %d lines):\n  %s"
                % (len(out), "\n  ".join(out), len(err), "\n  ".join(err)))

    # ---- talking to it -----------------------------------------------

    def request(self, method, path, headers=None, body=None, admin=False, timeout=30):
        """One request on a fresh connection: (status, Headers, body bytes).

        body may be bytes, str, or a dict/list (sent as JSON with
        Content-Type: application/json unless headers name another).
        """
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        port = self.admin_port if admin else self.port
        conn = http.client.HTTPConnection(self.host, port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            hdrs = Headers((k.lower(), v) for k, v in resp.getheaders())
            return resp.status, hdrs, data
        finally:
            conn.close()

    def raw(self, data, timeout=5.0, admin=False):
        """Sends raw bytes and reads until the server closes or timeout passes."""
        port = self.admin_port if admin else self.port
        chunks = []
        with socket.create_connection((self.host, port), timeout=timeout) as s:
            s.sendall(data)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                s.settimeout(left)
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)


def read_until_close(sock):
    """Reads from a connected socket until the peer closes it; returns every byte."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _json_or_none(line):
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def run(tests, *call_args, exit=True):
    """Runs each test as test(*call_args), prints "ok NAME" or "FAIL NAME: why",
    then "N passed, N failed"; exits 1 on any failure (or returns the count when
    exit is False). -k SUBSTRING on the command line picks tests by name."""
    only = args().only
    passed = failed = 0
    for t in tests:
        name = getattr(t, "__name__", repr(t))
        if only and only not in name:
            continue
        try:
            t(*call_args)
        except Exception as e:      # a failing test must not stop the others
            failed += 1
            why = str(e) or type(e).__name__
            print("FAIL %s: %s" % (name, why), flush=True)
            if not isinstance(e, AssertionError):
                traceback.print_exc(limit=6, file=sys.stdout)
        else:
            passed += 1
            print("ok %s" % name, flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    if exit and failed:
        sys.exit(1)
    return failed
