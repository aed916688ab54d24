"""Listeners of the real coursed: one address per plane, one process per port, and what
happens at the connection limits (docs/runtime.md, "Listeners" and "Connection limits").

Every listener sets SO_REUSEPORT, so without the start-up checks a second coursed on the
same --listen would silently share the port (and split enrollments between two databases),
and --listen X --admin-listen X would let the two planes answer each other's requests.
"""

import os
import resource
import socket
import subprocess
import tempfile
import time

from harness import Coursed, args, run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fails(listen, admin):
    """Runs coursed on these listeners; (exit status, stderr) of a process that must not start."""
    with tempfile.TemporaryDirectory(prefix="coursed-test-") as d:
        try:
            p = subprocess.run([args().coursed, "--listen", listen, "--admin-listen", admin,
                                "--data-dir", d], stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=10)
        except subprocess.TimeoutExpired:       # run() killed it
            return None, "still running after 10 s: it started"
    return p.returncode, p.stderr.decode(errors="replace")


def test_second_process_on_the_same_listen_exits(c):
    rc, err = start_fails(c.addr, "127.0.0.1:0")
    assert rc == 1, "a second coursed on %s started or exited %s: %s" % (c.addr, rc, err)
    assert c.addr in err and "another process listens on it" in err, err
    status, _, body = c.request("GET", "/ping")                 # the first one is untouched
    assert status == 200, (status, body)


def test_app_and_admin_on_one_address_refused(c):
    p = free_port()
    for app, admin in (("127.0.0.1:%d" % p, "127.0.0.1:%d" % p),
                       ("0.0.0.0:%d" % p, "127.0.0.1:%d" % p)):
        rc, err = start_fails(app, admin)
        assert rc == 2, "coursed started with --listen %s --admin-listen %s (exit %s): %s" % (
            app, admin, rc, err)
        assert "server.listen" in err and "server.admin_listen" in err, err


def metric(c, series):
    status, _, body = c.request("GET", "/metrics?format=text", admin=True, timeout=5)
    assert status == 200, (status, body[:200])
    for line in body.decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[1])
    return None


def test_out_of_descriptors_admin_still_answers(c):
    """RLIMIT_NOFILE lowered to a few above what coursed holds, then more clients than that:
    the app's accept pauses (counted, logged), the admin plane still answers its probes with
    its spare descriptor, and service resumes once the clients go (before: the admin probes
    were reset by libuv's silent accept-and-close, and nothing counted or logged it)."""
    fds = [int(f) for f in os.listdir("/proc/%d/fd" % c.pid)]
    soft, hard = resource.prlimit(c.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(c.pid, resource.RLIMIT_NOFILE, (max(fds) + 4, hard))
    clients = []
    try:
        for _ in range(12):
            clients.append(socket.create_connection((c.host, c.port), timeout=5))
        rec = c.wait_for_log(lambda r: r.get("msg") == "out of file descriptors: accepting paused")
        assert rec.get("refused_total", 0) >= 1, rec
        for _ in range(3):
            status, _, body = c.request("GET", "/healthz", admin=True, timeout=5)
            assert status == 200, (status, body)
        refused = metric(c, 'http_server_connections_rejected_total{reason="fd"}')
        assert refused is not None and refused >= 1, refused
    finally:
        for s in clients:
            s.close()
        resource.prlimit(c.pid, resource.RLIMIT_NOFILE, (soft, hard))
    deadline = time.monotonic() + 10
    while True:                                  # the backlog is taken again within the backoff
        try:
            status, _, _ = c.request("GET", "/ping", timeout=2)
            if status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the app plane did not resume\n" + c.output_tail()
        time.sleep(0.2)


if __name__ == "__main__":
    a = args()
    failed = 0
    with Coursed(a.coursed) as c:
        failed += run([test_second_process_on_the_same_listen_exits,
                       test_app_and_admin_on_one_address_refused], c, exit=False)
    with Coursed(a.coursed) as c:
        failed += run([test_out_of_descriptors_admin_still_answers], c, exit=False)
    raise SystemExit(1 if failed else 0)
