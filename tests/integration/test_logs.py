"""Structured logs end to end (docs/logs.md).

The library through tests/integration/log_burst.c: 8 threads x 100,000 lines to
a file come out as exactly 800,000 whole, valid lines in each thread's order;
SIGTERM in the middle of a burst: every line accepted before the flush is in
the file when the flush returns.

coursed: one access line per request with the request id taken or made (and
echoed), the id reaching a line written on a pool worker, the level changed at
run time through the admin plane, SIGTERM in the middle of a request burst
(every answered request has its access line), SIGHUP reopening a file sink
after it was moved (logrotate), stdout's pipe raised to log.pipe_buffer
(or left alone at 0), and each I/O thread's ring of log.io_buffer.
"""

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import http.client

from harness import Coursed, args, run

TEXT = "q\"b\\n\nc\x01 caf\u00e9"
F_GETPIPE_SZ = 1032          # fcntl.F_GETPIPE_SZ from Python 3.10; Debian 12 has 3.11, named for clarity


def pipe_max_size():
    with open("/proc/sys/fs/pipe-max-size") as f:
        return int(f.read())


def burst_binary():
    path = os.path.join(args().bindir, "tests", "log_burst")
    assert os.access(path, os.X_OK), "log_burst not built at %s" % path
    return path


def check_lines(data, want_per_thread=None):
    """Parses every line; returns {thread: [seq, ...]} and asserts whole lines and exact fields."""
    assert data.endswith(b"\n") or not data, "the file ends inside a line"
    seqs = {}
    for raw in data.split(b"\n")[:-1]:
        rec = json.loads(raw)
        assert rec["msg"] == "burst" and rec["service"] == "log_burst", raw
        assert rec["text"] == TEXT, raw
        assert rec["ts"].endswith("Z") and len(rec["ts"]) == 30, raw
        seqs.setdefault(rec["t"], []).append(rec["seq"])
    for t, s in seqs.items():
        assert s == list(range(len(s))), "thread %d: lines missing or out of order" % t
        if want_per_thread is not None:
            assert len(s) == want_per_thread, (t, len(s))
    return seqs


def test_library_8_threads_100k_lines():
    d = tempfile.mkdtemp(prefix="log-burst-")
    try:
        path = os.path.join(d, "out.log")
        p = subprocess.run([burst_binary(), "lines", path, "8", "100000"], capture_output=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        with open(path, "rb") as f:
            data = f.read()
        assert data.count(b"\n") == 800000, data.count(b"\n")
        seqs = check_lines(data, want_per_thread=100000)
        assert sorted(seqs) == list(range(8)), sorted(seqs)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_library_sigterm_during_burst():
    d = tempfile.mkdtemp(prefix="log-term-")
    try:
        path = os.path.join(d, "out.log")
        p = subprocess.Popen([burst_binary(), "term", path, "4"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            first = json.loads(p.stdout.readline())
            assert first == {"started": True}, first
            time.sleep(0.3)                     # in the middle of the burst
            p.send_signal(signal.SIGTERM)
            result = json.loads(p.stdout.readline())
            p.wait(60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, p.stderr.read()
        assert result["flush"] == 0, result
        accepted = result["accepted"]
        assert sum(accepted) > 0, result
        with open(path, "rb") as f:
            data = f.read()
        # What the file held when the flush returned: every accepted line.
        prefix = data[:result["flushed_bytes"]]
        prefix = prefix[:prefix.rfind(b"\n") + 1]
        seen = check_lines(prefix)
        for t, n in enumerate(accepted):
            assert len(seen.get(t, [])) >= n, "thread %d: %d accepted, %d flushed" % (
                t, n, len(seen.get(t, [])))
        # And the whole file, after the clean exit: whole lines, nothing lost.
        check_lines(data)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- coursed ----------------------------------------------------------------

def access_line(c, rid, timeout=10):
    return c.wait_for_log(lambda r: r.get("msg") == "request" and r.get("request_id") == rid,
                          timeout)


def test_access_line_and_request_id(c):
    status, headers, _ = c.request("GET", "/v1/courses/3", headers={"X-Request-ID": "it-abc.1"})
    assert status == 200 and headers["X-Request-ID"] == "it-abc.1", headers
    rec = access_line(c, "it-abc.1")
    assert rec["level"] == "info" and rec["service"] == "coursed", rec
    assert rec["method"] == "GET" and rec["path"] == "/v1/courses/3", rec
    assert rec["http_route"] == "/v1/courses/{id}" and rec["status"] == 200, rec
    assert rec["bytes_in"] == 0 and rec["bytes_out"] > 0, rec
    assert isinstance(rec["duration_ms"], float) and rec["duration_ms"] >= 0, rec
    assert rec["peer"].startswith("127.0.0.1:"), rec
    hexdigits = set("0123456789abcdef")         # the tracing middleware's ids, as lowercase hex
    assert len(rec["trace_id"]) == 32 and set(rec["trace_id"]) <= hexdigits, rec
    assert len(rec["span_id"]) == 16 and set(rec["span_id"]) <= hexdigits, rec

    # an id that is not a sane token is replaced by a made one, echoed all the same
    status, headers, _ = c.request("GET", "/ping", headers={"X-Request-ID": "bad id\"<"})
    made = headers["X-Request-ID"]
    assert status == 200 and len(made) == 32 and all(ch in "0123456789abcdef" for ch in made), made
    rec = access_line(c, made)
    assert rec["path"] == "/ping", rec
    status, headers, _ = c.request("GET", "/ping")
    assert headers["X-Request-ID"] != made and len(headers["X-Request-ID"]) == 32, headers

    # unmatched routes are logged too, without a template
    status, headers, _ = c.request("GET", "/nope", headers={"X-Request-ID": "it-404"})
    rec = access_line(c, "it-404")
    assert status == 404 and rec["status"] == 404 and rec["http_route"] == "", rec


def test_request_id_reaches_pool_worker(c):
    status, headers, _ = c.request("POST", "/v1/courses/4/enrollments",
                                   headers={"X-Request-ID": "it-enroll-7"},
                                   body={"student": "grace hopper"})
    assert status == 201, status
    rec = c.wait_for_log(lambda r: r.get("msg") == "enrollment"
                         and r.get("request_id") == "it-enroll-7")
    assert rec["course_id"] == 4 and rec["status"] == 201 and rec["replayed"] is False, rec
    access = access_line(c, "it-enroll-7")
    assert access["status"] == 201 and access["bytes_in"] > 0, access


ADMIN_TOKEN = "it-admin-" + os.urandom(8).hex()   # the shared coursed's admin.token_file holds it
ADMIN = {"Authorization": "Bearer " + ADMIN_TOKEN}


def test_level_at_run_time(c):
    status, _, body = c.request("GET", "/debug/loglevel", admin=True)
    assert status == 200 and json.loads(body) == {"level": "info"}, body
    # a change needs the admin token: none or a wrong one is 401 and changes nothing
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        status, h, body = c.request("PUT", "/debug/loglevel", body="fatal", admin=True,
                                    headers=headers)
        assert status == 401 and h["WWW-Authenticate"] == 'Bearer realm="redline-admin"', body
    status, _, body = c.request("PUT", "/debug/loglevel", body="warn\n", admin=True, headers=ADMIN)
    assert status == 200 and json.loads(body) == {"level": "warn", "previous": "info"}, body
    c.wait_for_log(lambda r: r.get("msg") == "log level changed" and r.get("new_level") == "warn")
    c.request("GET", "/ping", headers={"X-Request-ID": "it-filtered"})
    status, _, body = c.request("PUT", "/debug/loglevel", body={"level": "INFO"}, admin=True,
                                headers=ADMIN)
    assert status == 200 and json.loads(body) == {"level": "info", "previous": "warn"}, body
    c.request("GET", "/ping", headers={"X-Request-ID": "it-visible"})
    access_line(c, "it-visible")
    # the line written at warn was filtered: it-visible came after it and is there, it-filtered is not
    assert not [r for r in c.logs() if r.get("request_id") == "it-filtered"]
    for bad in ("loud", "", '{"level":3}', '{"lvl":"info"}', '{"level":"info"', '["info"]',
                "info warn", "in fo", '{"level":"nope"}', "\u00e9"):
        status, _, body = c.request("PUT", "/debug/loglevel", body=bad, admin=True, headers=ADMIN)
        assert status == 400 and json.loads(body)["code"] == "invalid_level", (bad, body)
    status, _, body = c.request("GET", "/debug/log", admin=True)
    stats = json.loads(body)
    assert status == 200 and stats["level"] == "info" and stats["lines"] > 0, stats
    assert stats["dropped"] == 0 and stats["write_errors"] == 0, stats
    # the refusals and the change are on record (with the peer); the token never is
    assert [r for r in c.logs() if r.get("msg") == "admin change refused" and r.get("peer")]
    assert [r for r in c.logs() if r.get("msg") == "log level changed" and r.get("peer")]
    assert not [r for r in c.logs() if ADMIN_TOKEN in json.dumps(r) or "Bearer" in json.dumps(r)]
    # stdout is a pipe here, as in a pod: raised to log.pipe_buffer (1 MiB) where the system
    # allows it, and the figure is the pipe's real size as its reader sees it
    seen = fcntl.fcntl(c.proc.stdout.fileno(), F_GETPIPE_SZ)
    assert stats["pipe_bytes"] == seen, (stats, seen)
    if pipe_max_size() >= 1 << 20:
        assert seen == 1 << 20, seen


PROMTAIL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                        "observability", "promtail.yaml")
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def test_promtail_pipeline_fits_our_lines(c):
    """deploy/observability/promtail.yaml against coursed's real lines: what its stages extract
    exists, only service and level become labels, and ts is what the timestamp stage parses."""
    try:
        import yaml
    except ImportError:
        raise AssertionError("needs PyYAML (Debian python3-yaml, scripts/deps.sh)")
    with open(PROMTAIL) as f:
        cfg = yaml.safe_load(f)
    [job] = cfg["scrape_configs"]
    stages = {list(st)[0]: list(st.values())[0] for st in job["pipeline_stages"]}
    assert set(stages) == {"cri", "json", "labels", "timestamp"}, stages
    assert set(stages["labels"]) == {"service", "level"}, stages["labels"]
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert not targets & {"trace_id", "request_id", "path", "peer"}, targets
    assert stages["timestamp"] == {"source": "ts", "format": "RFC3339Nano"}, stages["timestamp"]
    c.request("GET", "/ping", headers={"X-Request-ID": "it-promtail"})
    access_line(c, "it-promtail")
    recs = c.logs()
    assert len(recs) >= 3, recs
    for rec in recs:
        extracted = {name: rec.get(expr) for name, expr in stages["json"]["expressions"].items()}
        assert RFC3339_NANO.match(extracted["ts"]), rec
        assert extracted["level"] in ("debug", "info", "warn", "error", "fatal"), rec
        assert extracted["service"] == "coursed", rec


def test_coursed_sigterm_during_burst():
    """Every request a client got an answer to has its access line after a SIGTERM mid-burst."""
    answered = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(c, n):
        i = 0
        while not stop.is_set():
            try:
                conn = http.client.HTTPConnection(c.host, c.port, timeout=5)
                while not stop.is_set():
                    rid = "burst-%d-%d" % (n, i)
                    i += 1
                    conn.request("GET", "/ping", headers={"X-Request-ID": rid})
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 200:
                        with lock:
                            answered.append(rid)
                    if resp.getheader("Connection", "").lower() == "close":
                        break
                conn.close()
            except (OSError, http.client.HTTPException):
                time.sleep(0.01)    # draining or gone: try a new connection until told to stop

    with Coursed(args().coursed, args=["--set", "lifecycle.drain_delay=300ms"]) as c:
        threads = [threading.Thread(target=client, args=(c, n), daemon=True) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.7)
        rc = c.stop(signal.SIGTERM)
        stop.set()
        for t in threads:
            t.join(10)
        assert rc == 0, c.output_tail()
        lines = c.stdout_lines
        logged = set()
        for line in lines:
            rec = json.loads(line)          # every line is whole, valid JSON
            if rec.get("msg") == "request":
                logged.add(rec["request_id"])
        assert len(answered) > 100, len(answered)
        missing = [rid for rid in answered if rid not in logged]
        assert not missing, "%d answered requests without an access line: %s" % (
            len(missing), missing[:5])
        assert json.loads(lines[-1])["msg"] == "stopped", lines[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, rid=None, method="GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers={"X-Request-ID": rid} if rid else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def stop_and_clean(p, d):
    """Kills p if it still runs (a test that failed midway) and removes its directory."""
    if p.poll() is None:
        p.kill()
        p.wait()
    shutil.rmtree(d, ignore_errors=True)


def test_file_sink_reopened_on_sighup():
    d = tempfile.mkdtemp(prefix="log-file-")
    log = os.path.join(d, "coursed.log")
    port, admin = free_port(), free_port()
    p = subprocess.Popen([args().coursed, "--listen", "127.0.0.1:%d" % port,
                          "--admin-listen", "127.0.0.1:%d" % admin, "--data-dir",
                          os.path.join(d, "data"), "--set", "log.sink=file",
                          "--set", "log.file=" + log, "--set", "lifecycle.drain_delay=0s"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if get(admin, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
            time.sleep(0.05)
        assert get(port, "/ping", "it-before")[0] == 200
        # The access line is written after the answer, by the writer thread: wait for it, so
        # that it belongs to the file being rotated.
        deadline = time.monotonic() + 10
        while b'"request_id":"it-before"' not in open(log, "rb").read():
            assert time.monotonic() < deadline, "access line of it-before not written"
            time.sleep(0.02)
        os.rename(log, log + ".1")                  # logrotate's move
        p.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while json.loads(get(admin, "/debug/log")[1])["reopens"] != 1:
            assert time.monotonic() < deadline, "no reopen"
            time.sleep(0.02)
        assert json.loads(get(admin, "/debug/log")[1])["pipe_bytes"] == 0   # a file, not a pipe
        assert get(port, "/ping", "it-after")[0] == 200
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        assert p.stdout.read() == b""               # everything went to the file
        with open(log + ".1") as f:
            old = [json.loads(line) for line in f]
        with open(log) as f:
            new = [json.loads(line) for line in f]
        assert any(r.get("request_id") == "it-before" for r in old), old
        assert not any(r.get("request_id") == "it-after" for r in old), old
        assert any(r.get("request_id") == "it-after" for r in new), new
        assert new[-1]["msg"] == "stopped", new[-1]
        assert any(r["msg"] == "listening" for r in old), old
    finally:
        stop_and_clean(p, d)


def test_pipe_left_alone_when_asked():
    """log.pipe_buffer=0: coursed's stdout pipe keeps the size its reader made it with."""
    d = tempfile.mkdtemp(prefix="log-pipe-")
    admin = free_port()
    p = subprocess.Popen([args().coursed, "--listen", "127.0.0.1:0", "--admin-listen",
                          "127.0.0.1:%d" % admin, "--data-dir", os.path.join(d, "data"),
                          "--set", "log.pipe_buffer=0", "--set", "lifecycle.drain_delay=0s"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        before = fcntl.fcntl(p.stdout.fileno(), F_GETPIPE_SZ)
        deadline = time.monotonic() + 20
        while True:
            try:
                status, body = get(admin, "/debug/log")
                if status == 200:
                    break
            except OSError:
                pass
            assert p.poll() is None and time.monotonic() < deadline, "coursed did not start"
            time.sleep(0.05)
        assert before < 1 << 20, before
        assert json.loads(body)["pipe_bytes"] == before, (body, before)
        assert fcntl.fcntl(p.stdout.fileno(), F_GETPIPE_SZ) == before
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    finally:
        stop_and_clean(p, d)
        p.stdout.close()


def test_io_threads_reserve_their_rings():
    """Each I/O thread makes its ring of log.io_buffer when it starts; other threads that log get
    rings of log.buffer; /debug/log's ring_bytes sums them."""
    d = tempfile.mkdtemp(prefix="log-rings-")
    admin, port = free_port(), free_port()
    mib = 1 << 20
    p = subprocess.Popen([args().coursed, "--listen", "127.0.0.1:%d" % port, "--admin-listen",
                          "127.0.0.1:%d" % admin, "--data-dir", os.path.join(d, "data"),
                          "--set", "server.threads=2", "--set", "log.io_buffer=2MiB",
                          "--set", "log.buffer=64KiB", "--set", "lifecycle.drain_delay=0s"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        rings = 0
        while rings < 4 * mib:
            assert p.poll() is None and time.monotonic() < deadline, "rings: %d" % rings
            try:
                status, body = get(admin, "/debug/log")
                rings = json.loads(body)["ring_bytes"] if status == 200 else 0
            except OSError:
                pass
            time.sleep(0.05)
        assert get(port, "/ping", "it-rings")[0] == 200
        rings = json.loads(get(admin, "/debug/log")[1])["ring_bytes"]
        rest = rings - 4 * mib          # the main, start-up and admin threads' own lines
        assert rest % (64 << 10) == 0 and 0 <= rest <= 8 * (64 << 10), rings
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    finally:
        stop_and_clean(p, d)


def test_bad_log_settings_refused():
    d = tempfile.mkdtemp(prefix="log-bad-")
    try:
        for setting, words in (("log.level=loud", "log.level"), ("log.sink=syslog", "log.sink"),
                               ("log.policy=maybe", "log.policy"), ("log.format=text", "log.format"),
                               ("log.sink=file", "log.file"),
                               ("log.io_buffer=100", "log.io_buffer")):
            p = subprocess.run([args().coursed, "--listen", "127.0.0.1:0", "--admin-listen", "",
                                "--data-dir", d, "--set", setting], capture_output=True, timeout=30)
            assert p.returncode != 0 and words.encode() in p.stderr, (setting, p.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def with_coursed(c, test):
    """test(c) as a test without arguments, under its own name."""
    def bound():
        test(c)
    bound.__name__ = test.__name__
    return bound


if __name__ == "__main__":
    token_dir = tempfile.mkdtemp(prefix="rdl-it-token-")
    token_file = os.path.join(token_dir, "token")
    with open(token_file, "w") as f:
        f.write(ADMIN_TOKEN + "\n")
    with Coursed(args().coursed, args=["--set", "lifecycle.drain_delay=0s",
                                       "--set", "admin.token_file=" + token_file]) as shared:
        run([test_library_8_threads_100k_lines, test_library_sigterm_during_burst]
            + [with_coursed(shared, t) for t in (test_access_line_and_request_id,
                                                 test_request_id_reaches_pool_worker,
                                                 test_level_at_run_time,
                                                 test_promtail_pipeline_fits_our_lines)]
            + [test_coursed_sigterm_during_burst, test_file_sink_reopened_on_sighup,
               test_pipe_left_alone_when_asked, test_io_threads_reserve_their_rings,
               test_bad_log_settings_refused])
    shutil.rmtree(token_dir, ignore_errors=True)
