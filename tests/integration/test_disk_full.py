"""A full disk, end to end (issue 15, point 7): coursed's data directory on a small tmpfs
(mounted here when the test may, as root in CI), or else a file size limit on the process
(RLIMIT_FSIZE with SIGXFSZ ignored: writes fail with EFBIG, which coursed treats as a full disk).

- Filled: enrollments answer 503 `storage_full` with Retry-After, nothing is written, one
  error line with the real cause (not one per request); /readyz 503 with reason
  "storage_full" while /livez stays 200; counted as `unavailable` in coursed_enrollments_total.
- Space freed: with no request, the space probe finds it: /readyz is 200 again, one line says so,
  the next enrollment answers 201; no
  restart. `PRAGMA integrity_check` is ok on the database afterwards.
- The log on the full disk: its refused lines are counted in `lost` (/debug/log,
  log_lost_total) and the first loss is told once on stderr.
"""

import contextlib
import errno
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import http.client

from harness import Coursed, args, run, _json_or_none

FAST = ["--set", "lifecycle.drain_delay=0"]
PROBE = ["--set", "coursed.space_probe=200ms"]


class Disk:
    """A small filesystem to fill (tmpfs), or a file size limit set on the process later."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="coursed-full-")
        # COURSED_TEST_NO_MOUNT=1 tries the fallback where mounting would work
        self.mounted = not os.environ.get("COURSED_TEST_NO_MOUNT") and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", self.root],
            capture_output=True).returncode == 0
        self.filler = os.path.join(self.root, "filler")
        self.wrapper = None
        self.pid = None
        print("# disk full by %s" % ("a 2 MiB tmpfs" if self.mounted else "RLIMIT_FSIZE"),
              flush=True)

    def binary(self):
        """coursed itself, or a wrapper that ignores SIGXFSZ (inherited across exec)."""
        if self.mounted:
            return args().coursed
        fd, self.wrapper = tempfile.mkstemp(prefix="coursed-xfsz-", suffix=".sh")
        os.write(fd, b"#!/bin/sh\ntrap '' XFSZ\nexec \"$COURSED_REAL\" \"$@\"\n")
        os.close(fd)
        os.chmod(self.wrapper, 0o755)
        return self.wrapper

    def env(self):
        return {} if self.mounted else {"COURSED_REAL": os.path.abspath(args().coursed)}

    def fill(self, pid):
        self.pid = pid
        if not self.mounted:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
            return
        with open(self.filler, "wb") as f:
            block = b"\0" * 65536
            try:
                while True:
                    f.write(block)
                    f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC, e

    def free(self):
        if not self.mounted:
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            return
        os.unlink(self.filler)

    def close(self):
        if self.mounted:
            subprocess.run(["umount", "-l", self.root], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        if self.wrapper:
            os.unlink(self.wrapper)


def enroll(c, course, student):
    return c.request("POST", "/v1/courses/%d/enrollments" % course, body={"student": student})


def metric(c, name, labels=""):
    status, _, body = c.request("GET", "/metrics", admin=True)
    assert status == 200, status
    for line in body.decode().splitlines():
        if line.startswith(name + labels + " ") or line.startswith(name + labels + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def log_lines(c, msg):
    with c._cond:
        return [r for r in map(_json_or_none, c.stdout_lines) if r and r.get("msg") == msg]


def fill_until_refused(c, disk):
    """Fills the disk and enrolls until the store says so (the WAL may still have room)."""
    disk.fill(c.pid)
    for i in range(200):
        status, headers, body = enroll(c, 1 + i % 2, "full-%d" % i)
        if status == 503:
            return headers, json.loads(body)
        assert status == 201, (status, body)
    raise AssertionError("no 503 after 200 enrollments on a full disk")


def test_store_full_and_recovery():
    disk = Disk()
    try:
        data = os.path.join(disk.root, "data")
        os.mkdir(data)
        with Coursed(disk.binary(), data_dir=data, args=FAST + PROBE, env=disk.env()) as c:
            status, _, body = enroll(c, 1, "before")
            assert status == 201, (status, body)
            headers, err = fill_until_refused(c, disk)
            assert err["code"] == "storage_full", err
            assert headers.get("Retry-After"), headers
            for i in range(5):          # every request answered the same, logged once
                status, headers, body = enroll(c, 2, "again-%d" % i)
                assert status == 503 and json.loads(body)["code"] == "storage_full", body
                assert headers.get("Retry-After")
            c.wait_for_log(lambda r: r.get("msg", "").startswith("storage full"))
            full = [r for r in log_lines(c, "storage full: enrollments refused until space is "
                                            "freed")]
            assert len(full) == 1, full
            cause = full[0].get("error", "")
            assert "full" in cause or "space" in cause or "large" in cause, full[0]
            assert full[0].get("error.code") == "storage_full", full[0]

            status, _, body = c.request("GET", "/readyz", admin=True)
            assert status == 503, (status, body)
            ready = json.loads(body)
            assert ready["status"] == "not_ready" and ready["reason"] == "storage_full", ready
            assert c.request("GET", "/livez", admin=True)[0] == 200
            assert c.request("GET", "/v1/courses/1")[0] == 200      # reads still answer
            assert metric(c, "coursed_enrollments_total", '{result="unavailable"}') >= 6

            disk.free()
            # No enrollment reaches a pod out of rotation: the space probe finds the room.
            deadline = time.monotonic() + 10
            while c.request("GET", "/readyz", admin=True)[0] != 200:
                assert time.monotonic() < deadline, "still not ready 10 s after space was freed"
                time.sleep(0.1)
            c.wait_for_log(lambda r: r.get("msg", "").startswith("storage has room again"))
            status, _, body = enroll(c, 1, "after")
            assert status == 201, (status, body)
            assert len(log_lines(c, "storage full: enrollments refused until space is "
                                    "freed")) == 1
            assert c.stop() == 0
        db = sqlite3.connect(os.path.join(data, "coursed.db"))
        try:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            students = [r[0] for r in db.execute("SELECT student FROM enrollments")]
            assert "before" in students and "after" in students, students
            assert not any(s.startswith("again-") for s in students), students
        finally:
            db.close()
    finally:
        disk.close()


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_log_lines_lost_on_full_disk():
    """The log file on the full disk: lines counted as lost, the first loss on stderr once."""
    disk = Disk()
    port, admin = free_port(), free_port()
    data = os.path.join(disk.root, "data")
    os.mkdir(data)
    log = os.path.join(disk.root, "coursed.log")
    env = dict(os.environ)
    env.update(disk.env())
    p = subprocess.Popen([disk.binary(), "--listen", "127.0.0.1:%d" % port, "--admin-listen",
                          "127.0.0.1:%d" % admin, "--data-dir", data, "--set", "log.sink=file",
                          "--set", "log.file=" + log] + FAST,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                if get(admin, "/readyz")[0] == 200:
                    break
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
            time.sleep(0.05)
        disk.fill(p.pid)
        for _ in range(200):            # access lines into the full disk
            assert get(port, "/ping")[0] == 200
        deadline = time.monotonic() + 10
        while json.loads(get(admin, "/debug/log")[1])["lost"] < 100:
            assert time.monotonic() < deadline, get(admin, "/debug/log")
            time.sleep(0.05)
        st = json.loads(get(admin, "/debug/log")[1])
        assert st["write_errors"] >= 1 and st["dropped"] == 0, st
        _, body = get(admin, "/metrics")
        lost = [line for line in body.decode().splitlines() if line.startswith("log_lost_total ")]
        assert lost and float(lost[0].split()[1]) >= 100, lost
        disk.free()
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        err = p.stderr.read().decode()
        told = [line for line in err.splitlines() if "log lines are being lost" in line]
        assert len(told) == 1 and log in told[0], err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        disk.close()


if __name__ == "__main__":
    run([test_store_full_and_recovery, test_log_lines_lost_on_full_disk])
