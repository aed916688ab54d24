"""Lifecycle of the real coursed binary: readiness, drain on SIGTERM under load, forced exits.

The drain test is the Kubernetes rollout case: keep-alive clients hammer coursed (reads and
enrollments, so the pool is busy) when SIGTERM arrives. /readyz must turn 503 at once while the
app keeps serving for the drain delay; then the listener closes, and every request a client
managed to send on an accepted connection must get a complete response. The process exits 0.

As in a cluster, clients stop opening new connections to the pod once the endpoints have been
updated (here two thirds into the drain delay; that is what the delay is for), but keep using
the connections they have: those are in flight when the listener closes. A client that kept
reconnecting at full speed past that point could have its handshake completed by the kernel
and reset at the close, a request the application never saw.
"""

import json
import signal
import socket
import sqlite3
import threading
import time
import os

from harness import Coursed, args, read_until_close, run

DRAIN = ["--set", "lifecycle.drain_delay=1500ms", "--set", "lifecycle.grace=15s"]


class Client(threading.Thread):
    """A wrk-style keep-alive client that records every request's fate."""

    def __init__(self, host, port, ident, stop_at, moved):
        super().__init__(daemon=True)
        self.host, self.port, self.cid, self.stop_at = host, port, ident, stop_at
        self.moved = moved      # set when the load balancer no longer sends new connections here
        self.sent = 0
        self.completed = 0
        self.lost = []          # requests written whose connection ended without a full answer
        self.refused = 0
        self.enrolled = 0
        self.statuses = {}

    def request_bytes(self, n):
        if n % 4 == 3:
            body = json.dumps({"student": "c%d-%d" % (self.cid, n)}).encode()
            return (b"POST /v1/courses/1/enrollments HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        return b"GET /v1/courses/%d HTTP/1.1\r\nHost: t\r\n\r\n" % (n % 6 + 1)

    def read_response(self, s, buf):
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return None, buf
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            hdrs[k.strip().lower()] = v.strip().lower()
        n = int(hdrs.get(b"content-length", b"0"))
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                return None, buf
            rest += chunk
        return (status, hdrs.get(b"connection") == b"close"), rest[n:]

    def run(self):
        n = 0
        while time.monotonic() < self.stop_at and not self.moved.is_set():
            try:
                s = socket.create_connection((self.host, self.port), timeout=10)
            except ConnectionRefusedError:
                self.refused += 1
                return                              # the listener is closed: done
            with s:
                buf = b""
                while time.monotonic() < self.stop_at:
                    try:
                        s.sendall(self.request_bytes(n))
                    except OSError:
                        break                       # never sent: not a loss
                    self.sent += 1
                    try:
                        resp, buf = self.read_response(s, buf)
                    except OSError as e:
                        resp = None
                        err = e
                    else:
                        err = None
                    if resp is None:
                        self.lost.append((n, repr(err)))
                        break
                    status, close = resp
                    self.completed += 1
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    if status == 201:
                        self.enrolled += 1
                    n += 1
                    if close:
                        break


def test_drain_under_load_loses_nothing(c):
    stop_at = time.monotonic() + 30
    moved = threading.Event()
    clients = [Client(c.host, c.port, i, stop_at, moved) for i in range(8)]
    for t in clients:
        t.start()
    time.sleep(1.5)                                   # let the load settle
    before = sum(t.completed for t in clients)
    assert before > 100, "load never got going (%d responses)" % before
    c.proc.send_signal(signal.SIGTERM)
    threading.Timer(1.0, moved.set).start()          # the endpoints are updated within the delay
    # Readiness flips at once while the app keeps answering during the drain delay.
    time.sleep(0.3)
    status, _, body = c.request("GET", "/readyz", admin=True)
    assert status == 503 and b"draining" in body, (status, body)
    status, _, _ = c.request("GET", "/ping")
    assert status == 200, "app must keep serving during the drain delay"
    rc = c.proc.wait(30)
    for t in clients:
        t.join(30)
    sent = sum(t.sent for t in clients)
    completed = sum(t.completed for t in clients)
    lost = [l for t in clients for l in t.lost]
    assert rc == 0, "exit status %s after a clean drain" % rc
    assert not lost, "%d of %d requests lost: %s" % (len(lost), sent, lost[:5])
    assert completed == sent, (completed, sent)
    # Each client's last connection was closed by coursed at the drain (or it found the listener
    # closed): none ran on to stop_at, and a connection now is refused.
    assert all(not t.is_alive() for t in clients) and time.monotonic() < stop_at
    try:
        socket.create_connection((c.host, c.port), timeout=2).close()
        assert False, "the listener is still open after exit"
    except ConnectionRefusedError:
        pass
    statuses = {}
    for t in clients:
        for k, v in t.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    assert set(statuses) <= {200, 201, 409}, statuses
    # Every 201 the clients saw is a row, and nothing else was written.
    enrolled = sum(t.enrolled for t in clients)
    db = sqlite3.connect(os.path.join(c.data_dir, "coursed.db"))
    rows = db.execute("SELECT COUNT(*) FROM enrollments WHERE course_id = 1").fetchone()[0]
    taken = db.execute("SELECT seats_taken FROM courses WHERE id = 1").fetchone()[0]
    db.close()
    assert rows == enrolled == taken, (rows, enrolled, taken)
    c.wait_for_log(lambda r: r.get("msg", "").startswith("stop accepting"))
    c.wait_for_log(lambda r: r.get("msg") == "stopped")


def test_second_signal_forces_exit(c):
    # A half-sent request keeps the drain from finishing; the second SIGTERM must end it.
    s = socket.create_connection((c.host, c.port), timeout=5)
    s.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n")
    c.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    start = time.monotonic()
    c.proc.send_signal(signal.SIGTERM)
    rc = c.proc.wait(10)
    s.close()
    assert rc == 1, "forced exit must report failure, got %s" % rc
    assert time.monotonic() - start < 5
    c.wait_for_log(lambda r: "second signal" in r.get("msg", ""))


def test_grace_deadline_forces_exit(c):
    s = socket.create_connection((c.host, c.port), timeout=5)
    s.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n")    # never finished: header timeout is 60s here
    start = time.monotonic()
    c.proc.send_signal(signal.SIGTERM)
    rc = c.proc.wait(20)
    s.close()
    took = time.monotonic() - start
    assert rc == 1, rc
    assert 0.9 < took < 15, "drain 0.2s + grace 1s took %.1fs" % took
    c.wait_for_log(lambda r: "grace period over" in r.get("msg", ""))


def test_idle_connections_do_not_hold_the_drain(c):
    idle = [socket.create_connection((c.host, c.port), timeout=5) for _ in range(5)]
    for s in idle:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        s.recv(4096)
    # A probe or scraper keeping a connection to the admin listener must not hold the exit either.
    admin = [socket.create_connection((c.host, c.admin_port), timeout=5) for _ in range(2)]
    for s in admin:
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    idle += admin
    start = time.monotonic()
    c.proc.send_signal(signal.SIGTERM)
    rc = c.proc.wait(20)
    took = time.monotonic() - start
    for s in idle:
        s.close()
    assert rc == 0, rc
    assert took < 10, "idle keep-alive connections held the drain for %.1fs" % took


def test_lingering_close_ends_on_peer_fin(c):
    """After a final error response the server half-closes and lingers for the peer's FIN
    (up to 2 s); a peer that closes at once must not keep the connection, or the drain, waiting."""
    s = socket.create_connection((c.host, c.port), timeout=5)
    s.sendall(b"GET /ping HTTP/1.1\r\n\r\n")             # no Host: 400 and close
    raw = read_until_close(s)
    assert raw.startswith(b"HTTP/1.1 400 "), raw
    s.close()
    c.proc.send_signal(signal.SIGTERM)                          # drain 0 s, grace 1.5 s < linger 2 s
    rc = c.proc.wait(20)
    assert rc == 0, "the lingering connection outlived the grace period (exit %s)" % rc


if __name__ == "__main__":
    a = args()
    failed = 0
    with Coursed(a.coursed, args=DRAIN) as c:
        failed += run([test_drain_under_load_loses_nothing], c, exit=False)
    with Coursed(a.coursed, args=["--set", "lifecycle.drain_delay=100ms"]) as c:
        failed += run([test_second_signal_forces_exit], c, exit=False)
    with Coursed(a.coursed, args=["--set", "lifecycle.drain_delay=200ms", "--set", "lifecycle.grace=1s",
                                  "--set", "timeouts.header=60s"]) as c:
        failed += run([test_grace_deadline_forces_exit], c, exit=False)
    with Coursed(a.coursed, args=["--set", "lifecycle.drain_delay=100ms", "--set", "timeouts.idle=60s"]) as c:
        failed += run([test_idle_connections_do_not_hold_the_drain], c, exit=False)
    with Coursed(a.coursed, args=["--set", "lifecycle.drain_delay=0s", "--set", "lifecycle.grace=1500ms"]) as c:
        failed += run([test_lingering_close_ends_on_peer_fin], c, exit=False)
    raise SystemExit(1 if failed else 0)
