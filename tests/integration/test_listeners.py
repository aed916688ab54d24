"""Listeners of the real coursed: one address per plane, one process per port, and what
happens at the connection limits (docs/runtime.md, "Listeners" and "Connection limits").

Every listener sets SO_REUSEPORT, so without the start-up checks a second coursed on the
same --listen would silently share the port (and split enrollments between two databases),
and --listen X --admin-listen X would let the two planes answer each other's requests.
"""

import socket
import subprocess
import tempfile

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
        assert rc == 1, "coursed started with --listen %s --admin-listen %s (exit %s): %s" % (
            app, admin, rc, err)
        assert "server.listen" in err and "server.admin_listen" in err, err


if __name__ == "__main__":
    a = args()
    failed = 0
    with Coursed(a.coursed) as c:
        failed += run([test_second_process_on_the_same_listen_exits,
                       test_app_and_admin_on_one_address_refused], c, exit=False)
    raise SystemExit(1 if failed else 0)
