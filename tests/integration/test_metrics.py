"""Metrics end to end: coursed's live /metrics passes promtool with 0 problems, content
negotiation and gzip, RED metrics by route template after a known number of requests, the
business metrics, /debug/vars, metrics.enabled=false, fuzz-style expositions through promtool,
and a real Prometheus 2.42 scraping coursed in both formats, whose rate() and
histogram_quantile() give exactly what Prometheus' own rules compute from the raw samples."""

import gzip
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

from harness import Coursed, args, run

FAST_STOP = ["--set", "lifecycle.drain_delay=0"]
OM_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROM_ACCEPT_242 = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                   "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
ROUTE = "/v1/courses/{id}"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def with_server(test, server):
    """test(server) as a test of no arguments that keeps its name."""
    def bound():
        test(server)
    bound.__name__ = test.__name__
    return bound


def scrape(c, headers=None, query=""):
    status, hdrs, body = c.request("GET", "/metrics" + query, headers=headers or {}, admin=True)
    assert status == 200, (status, body[:200])
    if hdrs.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return hdrs, body.decode()


def samples(text):
    """{(name, frozenset(labels)): value} of a text exposition (escapes undone)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "unparsable line %r" % line
        labels = frozenset((k, re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1), v))
                           for k, v in LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(smp, name, **labels):
    return smp.get((name, frozenset(labels.items())), 0.0)


def red_labels(method="GET", route=ROUTE, code="200"):
    return dict(method=method, route=route, code=code, color="")


def promtool(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode()


# ---- tests against one coursed ------------------------------------------------

def test_promtool_live(c):
    for _ in range(3):
        c.request("GET", "/v1/courses/3")
    c.request("GET", "/nowhere")
    _, text = scrape(c)
    rc, out = promtool(text)
    assert rc == 0 and out.strip() == "", "promtool: rc %d\n%s" % (rc, out)
    for family in ("http_server_request_duration_seconds", "http_server_active_requests",
                   "process_cpu_seconds_total", "process_resident_memory_bytes",
                   "process_open_fds", "process_start_time_seconds", "redline_event_loop_lag_seconds",
                   "redline_pool_queue_depth", "redline_pool_oldest_task_age_seconds",
                   "redline_malloc_in_use_bytes", "coursed_enrollments_total",
                   "coursed_course_seats_remaining"):
        assert "# TYPE %s " % family in text, family
    assert len(re.findall(r'^redline_event_loop_lag_seconds\{thread="[^"]+"\} ', text, re.M)) >= 2


def test_negotiation_and_gzip(c):
    h, text = scrape(c)
    assert h["Content-Type"] == TEXT_TYPE and "# EOF" not in text
    h, om = scrape(c, {"Accept": PROM_ACCEPT_242})
    assert h["Content-Type"] == OM_TYPE, h
    assert om.endswith("# EOF\n") and "\n# TYPE coursed_enrollments counter\n" in om
    assert "\ncoursed_enrollments_total{result=\"created\"}" in om
    h, forced = scrape(c, {"Accept": PROM_ACCEPT_242}, "?format=text")
    assert h["Content-Type"] == TEXT_TYPE and "# EOF" not in forced
    h, forced = scrape(c, {}, "?x=1&format=openmetrics")
    assert h["Content-Type"] == OM_TYPE
    status, hdrs, body = c.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"}, admin=True)
    assert hdrs.get("Content-Encoding") == "gzip" and "Accept-Encoding" in hdrs.get("Vary", "")
    assert gzip.decompress(body).decode().startswith("# HELP ")
    status, hdrs, body = c.request("GET", "/metrics", headers={"Accept-Encoding": "gzip;q=0, br"},
                                   admin=True)
    assert "Content-Encoding" not in hdrs and body.startswith(b"# HELP ")


def test_red_by_route_template(c):
    before = samples(scrape(c)[1])
    for i in range(7):
        c.request("GET", "/v1/courses/%d" % (i % 3 + 1))
    for _ in range(2):
        c.request("GET", "/v1/courses/99999")
    c.request("DELETE", "/v1/courses/1")
    c.request("GET", "/no/such/path")
    text = scrape(c)[1]
    after = samples(text)
    name = "http_server_request_duration_seconds_count"
    assert value(after, name, **red_labels()) - value(before, name, **red_labels()) == 7
    assert value(after, name, **red_labels(code="404")) - value(before, name, **red_labels(code="404")) == 2
    assert value(after, name, **red_labels("DELETE", "unmatched", "405")) - \
        value(before, name, **red_labels("DELETE", "unmatched", "405")) == 1
    assert value(after, name, **red_labels(route="unmatched", code="404")) >= 1
    assert "/v1/courses/1\"" not in text and "/no/such/path" not in text, "raw paths leaked into labels"
    # the +Inf bucket equals the count; response sizes count the same requests
    assert value(after, "http_server_request_duration_seconds_bucket", le="+Inf", **red_labels()) == \
        value(after, name, **red_labels())
    resp = value(after, "http_server_response_body_size_bytes_count", method="GET", route=ROUTE) - \
        value(before, "http_server_response_body_size_bytes_count", method="GET", route=ROUTE)
    assert resp == 9, resp
    assert value(after, "http_server_active_requests") == 0


def test_business_metrics(c):
    before = samples(scrape(c)[1])
    # KRN499 (id 5) has 3 seats
    codes = [c.request("POST", "/v1/courses/5/enrollments", body={"student": "s%d" % i})[0]
             for i in range(4)]
    assert codes == [201, 201, 201, 409], codes
    assert c.request("POST", "/v1/courses/424242/enrollments", body={"student": "x"})[0] == 404
    assert c.request("POST", "/v1/courses/1/enrollments", body=b"{", headers={"Content-Type": "application/json"})[0] == 400
    key = {"Idempotency-Key": "k-metrics-1"}
    assert c.request("POST", "/v1/courses/1/enrollments", body={"student": "r"}, headers=key)[0] == 201
    assert c.request("POST", "/v1/courses/1/enrollments", body={"student": "r"}, headers=key)[0] == 201
    after = samples(scrape(c)[1])
    d = {r: value(after, "coursed_enrollments_total", result=r) - value(before, "coursed_enrollments_total", result=r)
         for r in ("created", "full", "not_found", "invalid", "replayed", "error")}
    assert d == {"created": 4, "full": 1, "not_found": 1, "invalid": 1, "replayed": 1, "error": 0}, d
    assert value(after, "coursed_course_seats_remaining", course="KRN499") == 0
    assert value(after, "coursed_course_capacity", course="KRN499") == 3
    assert value(after, "coursed_course_seats_remaining", course="C101") == 120 - 1


def test_debug_vars(c):
    status, hdrs, body = c.request("GET", "/debug/vars", admin=True)
    assert status == 200 and hdrs["Content-Type"].startswith("application/json")
    v = json.loads(body)
    assert v["cmdline"][0].endswith("coursed") and "--data-dir" in v["cmdline"]
    assert v["threads"] >= 4 and v["uptime_seconds"] >= 0
    assert v["memstats"]["resident_bytes"] > 1 << 20
    assert v["coursed"]["enrollments"]["created"] >= 0
    key = 'http_server_request_duration_seconds{method="GET",route="/v1/courses/{id}",code="200",color=""}'
    c.request("GET", "/v1/courses/2")
    v2 = json.loads(c.request("GET", "/debug/vars", admin=True)[2])
    assert v2["metrics"][key]["count"] >= 1


def test_metrics_disabled():
    with Coursed(args().coursed, args=FAST_STOP + ["--set", "metrics.enabled=false"]) as c:
        c.request("GET", "/v1/courses/3")
        _, text = scrape(c)
        assert "http_server_request_duration_seconds" not in text
        assert "redline_event_loop_lag_seconds" not in text
        assert "coursed_enrollments_total" in text      # the application's own still come out
        rc, out = promtool(text)
        assert rc == 0, out


def test_fuzz_outputs_pass_promtool():
    """The fuzz target's generator (arbitrary help and label bytes) through Prometheus' parser."""
    gen = os.path.join(args().bindir, "tests", "expo_gen")
    corpus = os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus", "metrics_expose")
    inputs = [open(os.path.join(corpus, f), "rb").read() for f in sorted(os.listdir(corpus))]
    rnd = random.Random(20261124)
    alphabet = [b"\x00", b"\\", b'"', b"\n", b"\r", b"\t", b"\xff", b"\xc3\xa9", b"\xe2\x82",
                b"\xf0\x9f\x98\x80", b"{", b"}", b"=", b",", b"#", b" ", b"a", b"le", b"\x01"]
    for _ in range(12):
        inputs.append(b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 120))))
    with tempfile.TemporaryDirectory() as d:
        for i, data in enumerate(inputs):
            path = os.path.join(d, "in%d" % i)
            with open(path, "wb") as f:
                f.write(data)
            text = subprocess.run([gen, path, "text"], capture_output=True, check=True).stdout
            p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                               timeout=60)
            out = (p.stdout + p.stderr).decode(errors="replace")
            # 0 clean, 3 lint remarks only (e.g. "no help text" for an empty fuzzed help); 1 = parse error
            assert p.returncode in (0, 3) and "error" not in out, "input %r:\n%s\n%s" % (data, out, text[:2000])


# ---- a real Prometheus ----------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, target):
        self.dir = tempfile.mkdtemp(prefix="prom-test-")
        self.port = free_port()
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: om            # Prometheus' default Accept: OpenMetrics 1.0.0 first
    static_configs: [{targets: ['%(t)s']}]
  - job_name: text          # 2.42 cannot set Accept per job: ask with the documented params
    params: {format: [text]}
    static_configs: [{targets: ['%(t)s']}]
""" % {"t": target})
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port,
             "--web.external-url=http://127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s?%s" % (self.port, path, urllib.parse.urlencode(params))
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr, t=None):
        params = {"query": expr}
        if t is not None:
            params["time"] = "%.3f" % t
        return self.api("query", **params)

    def wait(self, expr, pred, timeout=40):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.query(expr)["result"]
                if pred(last):
                    return last
            except OSError as e:
                last = e
            time.sleep(0.25)
        raise AssertionError("timeout waiting for %s: %r\n%s" % (expr, last, self.tail()))

    def tail(self):
        self.log.flush()
        with open(os.path.join(self.dir, "log"), "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def prom_rate(points, t_ms, range_ms):
    """Prometheus 2.42's extrapolatedRate (promql/functions.go) for rate(), from raw samples."""
    if len(points) < 2:
        return None
    start, end = t_ms - range_ms, t_ms
    result = points[-1][1] - points[0][1]
    last = 0.0
    for _, v in points:
        if v < last:
            result += last
        last = v
    d_start = (points[0][0] - start) / 1000.0
    d_end = (end - points[-1][0]) / 1000.0
    sampled = (points[-1][0] - points[0][0]) / 1000.0
    avg = sampled / (len(points) - 1)
    if result > 0 and points[0][1] >= 0:
        d_zero = sampled * (points[0][1] / result)
        if d_zero < d_start:
            d_start = d_zero
    threshold = avg * 1.1
    interval = sampled
    interval += d_start if d_start < threshold else avg / 2
    interval += d_end if d_end < threshold else avg / 2
    return result * (interval / sampled) / (range_ms / 1000.0)


def bucket_quantile(q, buckets):
    """Prometheus 2.42's bucketQuantile over [(le, count)]."""
    buckets = sorted(buckets)
    if not math.isinf(buckets[-1][0]):
        return math.nan
    mono, top = [], 0.0
    for le, n in buckets:
        top = max(top, n)
        mono.append((le, top))
    total = mono[-1][1]
    if len(mono) < 2 or total == 0:
        return math.nan
    rank = q * total
    b = next(i for i in range(len(mono) - 1 + 1) if i == len(mono) - 1 or mono[i][1] >= rank)
    if b == len(mono) - 1:
        return mono[-2][0]
    if b == 0 and mono[0][0] <= 0:
        return mono[0][0]
    start, end, count = 0.0, mono[b][0], mono[b][1]
    if b > 0:
        start = mono[b - 1][0]
        count -= mono[b - 1][1]
        rank -= mono[b - 1][1]
    return start + (end - start) * (rank / count)


def points_of(series):
    return [(int(round(float(t) * 1000)), float(v)) for t, v in series["values"]]


def close(a, b):
    return a == b or (a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)))


def test_prometheus_scrapes_both_formats():
    if not shutil.which("prometheus"):
        raise AssertionError("prometheus is not installed (scripts/deps.sh)")
    N = 20
    with Coursed(args().coursed, args=FAST_STOP) as c:
        c.request("GET", "/v1/courses/3")          # the series exist (at 1) before the first scrape
        prom = Prometheus("127.0.0.1:%d" % c.admin_port)
        try:
            sel = ('http_server_request_duration_seconds_count{job="%s",method="GET",'
                   'route="/v1/courses/{id}",code="200"}')
            for job in ("om", "text"):
                prom.wait('up{job="%s"}' % job, lambda r: r and r[0]["value"][1] == "1")
                # two scrapes at 1 before the burst, so rate() has a baseline
                prom.wait("count_over_time(%s[30s])" % (sel % job),
                          lambda r: r and float(r[0]["value"][1]) >= 2)
            for i in range(N):
                c.request("GET", "/v1/courses/%d" % (i % 6 + 1))
            for job in ("om", "text"):
                prom.wait(sel % job, lambda r: r and float(r[0]["value"][1]) == N + 1)
            time.sleep(2.5)                          # a few scrapes after the burst
            t = time.time()
            t_ms = int(round(t * 1000))
            t = t_ms / 1000.0
            ours = samples(scrape(c, query="?format=text")[1])   # stable: no app traffic now
            for job in ("om", "text"):
                raw = prom.query("%s[30s]" % (sel % job), t)["result"]
                assert len(raw) == 1, raw
                pts = points_of(raw[0])
                assert pts[0][1] == 1 and pts[-1][1] == N + 1, (job, pts)
                got = float(prom.query("rate(%s[30s])" % (sel % job), t)["result"][0]["value"][1])
                want = prom_rate(pts, t_ms, 30000)
                assert close(got, want), (job, "rate", got, want, pts)
                # histogram_quantile over the scraped buckets equals the quantile of our own buckets
                bsel = ('http_server_request_duration_seconds_bucket{job="%s",method="GET",'
                        'route="/v1/courses/{id}",code="200"}') % job
                mine = [(float(dict(k[1])["le"]), v) for k, v in ours.items()
                        if k[0] == "http_server_request_duration_seconds_bucket" and
                        dict(k[1]).get("route") == ROUTE and dict(k[1]).get("code") == "200" and
                        dict(k[1]).get("method") == "GET"]
                assert len(mine) == 15 and max(v for _, v in mine) == N + 1, mine
                for q in (0.5, 0.9, 0.99):
                    got = float(prom.query("histogram_quantile(%g, %s)" % (q, bsel), t)["result"][0]["value"][1])
                    want = bucket_quantile(q, mine)
                    assert close(got, want), (job, q, got, want, mine)
                # and over rate(): each bucket's rate by the rule above, then the quantile
                rb = prom.query("%s[30s]" % bsel, t)["result"]
                rates = [(float(s["metric"]["le"]), prom_rate(points_of(s), t_ms, 30000)) for s in rb]
                got = float(prom.query("histogram_quantile(0.9, rate(%s[30s]))" % bsel, t)["result"][0]["value"][1])
                want = bucket_quantile(0.9, rates)
                assert close(got, want), (job, "rate quantile", got, want, rates)
                print("  job %s: %d samples, rate %.6g/s, p90 over rate %.6g s (both as Prometheus computes)"
                      % (job, len(pts), float(prom.query("rate(%s[30s])" % (sel % job), t)["result"][0]["value"][1]),
                         got), flush=True)
            # each job really got its format: OpenMetrics names the counter family without _total
            meta_om = prom.api("targets/metadata", match_target='{job="om"}', metric="coursed_enrollments")
            meta_text = prom.api("targets/metadata", match_target='{job="text"}',
                                 metric="coursed_enrollments_total")
            assert meta_om and meta_om[0]["type"] == "counter", meta_om
            assert meta_text and meta_text[0]["type"] == "counter", meta_text
            assert not prom.api("targets/metadata", match_target='{job="text"}', metric="coursed_enrollments")
            scr = samples(scrape(c, query="?format=text")[1])
            assert value(scr, "redline_metrics_scrapes_total", format="openmetrics") >= 3
            assert value(scr, "redline_metrics_scrapes_total", format="text") >= 3
        finally:
            prom.stop()


def test_debug_vars_and_start_up_lines_redact_secrets():
    """Anyone on the admin port reads /debug/vars: a credential given on the command line (a
    URL's user:password, a secret-named setting) is shown redacted there and in the log."""
    secret = "s3cr3t-" + os.urandom(6).hex()
    with Coursed(args().coursed, args=FAST_STOP + [
            "--set", "tracing.endpoint=http://user:%s@127.0.0.1:9/v1/traces" % secret,
            "--set", "admin.token_file=/run/no-such-%s" % secret]) as c:
        v = json.loads(c.request("GET", "/debug/vars", admin=True)[2])
        line = " ".join(v["cmdline"])
        assert secret not in line, line
        assert "tracing.endpoint=http://<redacted>@127.0.0.1:9/v1/traces" in v["cmdline"], line
        assert "admin.token_file=<redacted>" in v["cmdline"], line
        started = c.wait_for_log(lambda r: r.get("msg") == "tracing: exporting spans")
        assert started["endpoint"] == "http://<redacted>@127.0.0.1:9/v1/traces", started
        assert not [r for r in c.logs() if secret in json.dumps(r)]


if __name__ == "__main__":
    with Coursed(args().coursed, args=FAST_STOP) as shared:
        run([with_server(t, shared) for t in (test_promtool_live, test_negotiation_and_gzip,
                                               test_red_by_route_template, test_business_metrics,
                                               test_debug_vars)] +
            [test_metrics_disabled, test_debug_vars_and_start_up_lines_redact_secrets,
             test_fuzz_outputs_pass_promtool,
             test_prometheus_scrapes_both_formats])
