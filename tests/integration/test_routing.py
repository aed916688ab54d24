"""Traffic coloring end to end: coursed loads a VirtualService and DestinationRule
file, requests take the routes Istio would give them (headers, full-match regex,
query parameters, bypass, sticky weighted split), the decision shows in the
access log and through response header operations, faults delay and abort, the
admin plane shows and explains the rules, and hot reload takes a good file,
refuses a bad one (the old rules stay; file:line:column logged and counted),
and reloads on SIGHUP. A broken file at start-up stops coursed with the place.
A slow reload (a large file), with /debug/routes asked throughout, and a FIFO
put in place of the file hold up neither the probes nor SIGTERM; a file over
routes.max_rules is refused with the limit named."""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time

from harness import Coursed, args, run

FAST = ["--set", "lifecycle.drain_delay=0", "--set", "routes.watch_interval=100ms",
        "--set", "routes.sticky_header=x-user-id"]

RULES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: coursed, namespace: school}
spec:
  hosts: [coursed.school.svc.cluster.local]
  http:
  - name: canary-by-header
    match:
    - headers: {x-canary: {exact: always}}
    - headers: {cookie: {regex: ".*canary=1.*"}}
    route:
    - destination: {host: coursed, subset: %(canary)s}
      headers: {response: {set: {x-served-by: %(canary)s}}}
    headers:
      request: {set: {x-request-id: routed-by-canary}}
  - name: beta-query
    match: [{queryParams: {beta: {exact: ""}}, method: {exact: GET}}]
    route: [{destination: {host: coursed, subset: v2}}]
    headers: {response: {add: {x-beta: "yes"}}}
  - name: slow-course
    match: [{uri: {exact: /v1/courses/2}}]
    route: [{destination: {host: coursed, subset: v1}}]
    fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}
  - name: broken
    match: [{uri: {prefix: /v1/courses/9}}]
    route: [{destination: {host: coursed, subset: v1}}]
    fault: {abort: {httpStatus: 503}}
  - name: split
    route:
    - destination: {host: coursed, subset: v1}
      weight: 50
      headers: {response: {set: {x-served-by: v1}}}
    - destination: {host: coursed, subset: v2}
      weight: 50
      headers: {response: {set: {x-served-by: v2}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: coursed, namespace: school}
spec:
  host: coursed.school.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"""


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)       # as a ConfigMap update or an editor does


def access_line(c, request_id):
    line = c.wait_for_log(lambda r: r.get("msg") == "request" and r.get("request_id") == request_id)
    assert line, "no access-log line for %s\n%s" % (request_id, c.output_tail())
    return line


def get(c, path, headers=None):
    return c.request("GET", path, headers=headers)


# ---- routing ------------------------------------------------------------------

def test_canary_header_and_cookie(c):
    status, h, _ = get(c, "/v1/courses", {"x-canary": "always", "x-request-id": "t-canary-1"})
    assert status == 200 and h.get("x-served-by") == "v2", (status, h)
    # the route's request header operation replaced the caller's id before the access log read it
    assert h.get("x-request-id") == "routed-by-canary", h
    line = access_line(c, "routed-by-canary")
    assert line.get("route") == "canary-by-header" and line.get("color") == "v2", line
    assert line.get("subset") == "v2", line
    status, h, _ = get(c, "/v1/courses", {"cookie": "a=b; canary=1; c=d", "x-user-id": "u1"})
    assert h.get("x-served-by") == "v2", h
    # exact is case-sensitive: "Always" takes the split route, the id stays the caller's
    status, h, _ = get(c, "/v1/courses", {"x-canary": "Always", "x-user-id": "pinned-v1-user"})
    assert h.get("x-request-id") != "routed-by-canary", h


def test_query_param_and_method(c):
    status, h, _ = get(c, "/v1/courses?beta", {"x-request-id": "t-beta-1"})
    assert status == 200 and h.get("x-beta") == "yes", h
    line = access_line(c, "t-beta-1")
    assert line.get("route") == "beta-query" and line.get("color") == "v2", line
    status, h, _ = get(c, "/v1/courses?beta=1", {"x-request-id": "t-beta-2"})
    assert "x-beta" not in h, h
    assert access_line(c, "t-beta-2").get("route") == "split"


def test_sticky_split(c):
    seen = {}
    for u in range(40):
        user = "user-%d" % u
        subsets = set()
        for _ in range(4):
            status, h, _ = get(c, "/ping", {"x-user-id": user})
            assert status == 200, status
            subsets.add(h.get("x-served-by"))
        assert len(subsets) == 1, (user, subsets)
        seen[user] = subsets.pop()
    counts = {s: list(seen.values()).count(s) for s in ("v1", "v2")}
    assert counts["v1"] >= 8 and counts["v2"] >= 8, counts   # 50/50 over 40 users


def test_bypass_header_forces_default(c):
    status, h, _ = get(c, "/v1/courses", {"x-canary": "always", "x-redline-bypass": "1",
                                          "x-request-id": "t-bypass-1"})
    assert status == 200 and h.get("x-request-id") == "t-bypass-1", h
    assert access_line(c, "t-bypass-1").get("route") == "split"


def test_fault_delay_and_abort(c):
    t0 = time.monotonic()
    status, h, _ = get(c, "/v1/courses/2", {"x-request-id": "t-slow-1"})
    took = time.monotonic() - t0
    assert status == 200 and took >= 0.38, (status, took)
    line = access_line(c, "t-slow-1")
    assert line.get("route") == "slow-course" and line.get("duration_ms", 0) >= 380, line
    status, h, body = get(c, "/v1/courses/9", {"x-request-id": "t-abort-1"})
    assert status == 503 and body == b"fault filter abort", (status, body)
    line = access_line(c, "t-abort-1")
    assert line.get("status") == 503 and line.get("route") == "broken", line


def test_debug_routes_and_explain(c):
    status, _, body = c.request("GET", "/debug/routes", admin=True)
    doc = json.loads(body)
    assert status == 200 and doc["enabled"] is True and doc["reload_failures"] == 0, doc
    names = [r["name"] for r in doc["rules"]["virtual_services"][0]["http"]]
    assert names == ["canary-by-header", "beta-query", "slow-course", "broken", "split"], names
    assert doc["rules"]["sticky_header"] == "x-user-id", doc["rules"]
    req = {"method": "POST", "path": "/v1/courses/9?x=1", "headers": {"Cookie": "canary=0"}}
    status, _, body = c.request("POST", "/debug/routes/explain", body=req, admin=True)
    ex = json.loads(body)
    assert status == 200 and ex["matched"] is True and ex["route"] == "broken", ex
    first = ex["tried"][0]["blocks"]
    assert first[0]["failed"]["field"] == "headers" and first[0]["failed"]["actual"] is None, first
    assert first[1]["failed"]["match"] == {"regex": ".*canary=1.*"}, first
    assert first[1]["failed"]["actual"] == "canary=0", first
    assert ex["tried"][1]["blocks"][0]["failed"]["field"] in ("method", "queryParams"), ex["tried"][1]
    assert ex["fault"]["abort_status"] == 503, ex
    status, _, body = c.request("POST", "/debug/routes/explain", body="{nope", admin=True)
    assert status == 400 and "1:5: expected a JSON object" in body.decode(), (status, body)
    status, _, body = c.request("POST", "/debug/routes/explain", body={"headers": {"x-a": 1}}, admin=True)
    assert status == 400 and "headers.x-a: expected a string value" in body.decode(), (status, body)


def test_hot_reload_good_bad_and_sighup(c, path):
    def loads():
        return sum(1 for r in c.logs() if r.get("msg") == "routes loaded")

    before = loads()
    write(path, RULES % {"canary": "v3"})
    assert c.wait_for_log(lambda r: r.get("msg") == "routes loaded" and loads() > before), \
        c.output_tail()
    status, h, _ = get(c, "/v1/courses", {"x-canary": "always"})
    assert h.get("x-served-by") == "v3", h

    bad = (RULES % {"canary": "v3"}).replace("exact: always", "exactly: always")
    write(path, bad)
    err = c.wait_for_log(lambda r: r.get("msg", "").startswith("routes file refused"))
    assert err and err.get("line") == 9 and err.get("column") == 28, err
    assert err.get("field") == "spec.http[0].match[0].headers.x-canary", err
    assert "unknown StringMatch kind 'exactly'" in err.get("error", ""), err
    status, h, _ = get(c, "/v1/courses", {"x-canary": "always"})
    assert h.get("x-served-by") == "v3", "the old rules must stay: %s" % h
    doc = json.loads(c.request("GET", "/debug/routes", admin=True)[2])
    assert doc["reload_failures"] == 1 and ":9:28:" in doc["last_error"], doc

    # a subset no DestinationRule defines is refused too
    write(path, RULES % {"canary": "v9"})
    assert c.wait_for_log(lambda r: "subset 'v9'" in r.get("error", "")), c.output_tail()

    with open(path, "w") as f:          # in place: the next poll would see it too
        f.write(RULES % {"canary": "v2"})
    os.kill(c.pid, signal.SIGHUP)
    assert c.wait_for_log(lambda r: r.get("msg") == "SIGHUP received: reloading routes")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if get(c, "/v1/courses", {"x-canary": "always"})[1].get("x-served-by") == "v2":
            break
        time.sleep(0.05)
    else:
        raise AssertionError("SIGHUP reload not applied\n" + c.output_tail())
    doc = json.loads(c.request("GET", "/debug/routes", admin=True)[2])
    assert doc["last_error"] is None and doc["reload_failures"] == 2, doc


def test_broken_file_at_start(binary, d):
    path = os.path.join(d, "broken.yaml")
    with open(path, "w") as f:
        f.write(RULES.replace("weight: 50\n      headers", "weight: fifty\n      headers", 1)
                % {"canary": "v2"})
    p = subprocess.run([binary, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                        "--data-dir", os.path.join(d, "var"), "--routes", path],
                       capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "%s:31:15" % path in out and "expected an integer" in out, out


def test_routing_off(binary):
    with Coursed(binary, args=["--set", "lifecycle.drain_delay=0"]) as c:
        status, _, body = c.request("GET", "/debug/routes", admin=True)
        assert status == 200 and json.loads(body) == {"enabled": False}, body
        status, h, _ = get(c, "/ping", {"x-canary": "always"})
        assert status == 200 and "x-served-by" not in h
        line = c.wait_for_log(lambda r: r.get("msg") == "request" and r.get("path") == "/ping")
        assert line and "route" not in line and "color" not in line, line

# ---- reloads that must not hold anything up ------------------------------------------

SLOW_ROUTES = 30000


def slow_rules():
    """About two seconds of parse (a regex per route), refused at its very end, so
    the small table in use stays and /debug/routes stays cheap."""
    out = ["routes:"]
    for i in range(SLOW_ROUTES):
        out.append('  - name: r%d\n    match: [{headers: {x-user: {regex: "u%d-[a-z]+[0-9]{2,4}"}}}]'
                   "\n    subset: v1" % (i, i))
    out.append("  - name: main\n    subset: [a, b]")
    return "\n".join(out) + "\n"


def healthz_ms(c):
    t0 = time.monotonic()
    try:
        status = c.request("GET", "/healthz", admin=True, timeout=5)[0]
    except OSError:
        status = None
    ms = (time.monotonic() - t0) * 1000
    return ms if status == 200 else float("inf")


def probe_while(c, busy, at_least=0.0):
    """/healthz every 20 ms while busy() (and for at_least seconds): the slowest, how many."""
    worst, n, t0 = 0.0, 0, time.monotonic()
    while busy() or time.monotonic() - t0 < at_least:
        worst = max(worst, healthz_ms(c))
        n += 1
        time.sleep(0.02)
    return worst, n


def refusals(c):
    return sum(1 for r in c.logs() if r.get("msg", "").startswith("routes file refused"))


def test_slow_reload_fifo_and_sigterm(binary, d):
    path = os.path.join(d, "slow.yaml")
    write(path, RULES % {"canary": "v2"})
    args_ = ["--set", "lifecycle.drain_delay=0", "--set", "routes.watch_interval=0",
             "--set", "routes.max_rules=%d" % (3 * SLOW_ROUTES + 10), "--routes", path]
    with Coursed(binary, args=args_) as c:
        # a slow SIGHUP reload while a client asks /debug/routes again and again
        write(path, slow_rules())
        before = refusals(c)
        done = threading.Event()

        def debug_reader():
            while not done.is_set():
                c.request("GET", "/debug/routes", admin=True, timeout=30)
                time.sleep(0.01)        # leave the probes the GIL and a core
        t = threading.Thread(target=debug_reader)
        t.start()
        os.kill(c.pid, signal.SIGHUP)
        t0 = time.monotonic()
        worst, n = probe_while(c, lambda: refusals(c) == before and time.monotonic() - t0 < 60)
        took = time.monotonic() - t0
        done.set()
        t.join()
        print("slow reload: %.1f s, %d probes, slowest /healthz %.0f ms" % (took, n, worst))
        assert worst < 100, "a probe waited %.0f ms during the reload" % worst
        assert n >= 5, "the reload was too fast to test anything (%d probes)" % n
        assert get(c, "/v1/courses", {"x-canary": "always"})[1].get("x-served-by") == "v2"

        # a FIFO in place of the file: refused at once, nothing blocks
        os.unlink(path)
        os.mkfifo(path)
        before = refusals(c)
        os.kill(c.pid, signal.SIGHUP)
        t0 = time.monotonic()
        worst, n = probe_while(c, lambda: refusals(c) == before and time.monotonic() - t0 < 10,
                               at_least=0.5)
        err = c.wait_for_log(lambda r: "is a FIFO" in r.get("error", ""))
        assert err.get("file") == path, err
        assert worst < 100, "a probe waited %.0f ms with a FIFO in place" % worst
        status, _, body = c.request("GET", "/readyz", admin=True, timeout=5)
        assert status == 200, (status, body)
        os.unlink(path)

        # SIGTERM during a slow reload: not ready at once, drained, exit 0
        write(path, slow_rules())
        before = refusals(c)
        os.kill(c.pid, signal.SIGHUP)
        time.sleep(0.3)
        assert refusals(c) == before, "the slow reload ended too soon to test SIGTERM"
        t0 = time.monotonic()
        c.proc.send_signal(signal.SIGTERM)
        c.wait_for_log(lambda r: r.get("msg") == "draining: not ready", timeout=30)
        unready = time.monotonic() - t0
        rc = c.proc.wait(60)        # the drain, then the parse's end: no second signal
        c.stop()
        print("SIGTERM during a slow reload: draining after %.0f ms, exit %s" % (unready * 1000, rc))
        assert unready < 0.5, "SIGTERM waited %.1f s for the reload" % unready
        assert rc == 0, c.output_tail()


def test_max_rules_refused(binary, d):
    path = os.path.join(d, "limit.yaml")
    write(path, "routes:\n  - name: main\n    subset: v1\n"
                "    headers: {response: {set: {x-served-by: v1}}}\n")
    with Coursed(binary, args=["--set", "lifecycle.drain_delay=0", "--set", "routes.watch_interval=0",
                               "--set", "routes.max_rules=12", "--routes", path]) as c:
        many = "routes:\n" + "".join("  - name: r%d\n    subset: v1\n" % i for i in range(7))
        write(path, many)           # 7 routes, 7 destinations: 14 rules
        os.kill(c.pid, signal.SIGHUP)
        err = c.wait_for_log(lambda r: "routes.max_rules" in r.get("error", ""))
        assert err.get("file") == path and "more than 12 rules" in err["error"], err
        assert err.get("line") == 14, err   # r6, the 13th rule
        doc = json.loads(c.request("GET", "/debug/routes", admin=True)[2])
        assert "routes.max_rules" in doc["last_error"], doc
        assert get(c, "/v1/courses")[1].get("x-served-by") == "v1"       # the rules stayed


def bind(test, *a):
    def bound():
        test(*a)
    bound.__name__ = test.__name__
    return bound


if __name__ == "__main__":
    opts = args()
    with tempfile.TemporaryDirectory(prefix="routing-test-") as d:
        rules = os.path.join(d, "routes.yaml")
        write(rules, RULES % {"canary": "v2"})
        with Coursed(opts.coursed, args=FAST + ["--routes", rules]) as c:
            tests = [bind(t, c) for t in (test_canary_header_and_cookie, test_query_param_and_method,
                                          test_sticky_split, test_bypass_header_forces_default,
                                          test_fault_delay_and_abort, test_debug_routes_and_explain)]
            tests.append(bind(test_hot_reload_good_bad_and_sighup, c, rules))
            tests.append(bind(test_broken_file_at_start, opts.coursed, d))
            tests.append(bind(test_routing_off, opts.coursed))
            tests.append(bind(test_slow_reload_fifo_and_sigterm, opts.coursed, d))
            tests.append(bind(test_max_rules_refused, opts.coursed, d))
            run(tests)
