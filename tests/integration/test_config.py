"""Configuration errors stop coursed at load, with exit status 2 and a message that names the
place (file:line:column, the flag's key or the variable), before anything starts: unknown
REDLINE_* variables, and the values that used to pass the loader and fail only when the server
started (the admin address, OTEL_* variables, tracing.endpoint, log.file's directory). And a
credential in the OTLP endpoint is printed nowhere: not in /debug/vars, --help, errors or logs.
`coursed check-config` (or --check-config) runs the same checks, the routes file included, and
exits 0 with one line or 2 with the error, creating nothing."""

import json
import os
import subprocess
import tempfile

from harness import Coursed, args, run

FAST_STOP = ["--set", "lifecycle.drain_delay=0", "--set", "lifecycle.grace=2s"]


def run_cli(argv, env=None):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("REDLINE_") and not k.startswith("OTEL_")}
    e.update(env or {})
    p = subprocess.run([args().coursed] + argv, capture_output=True, text=True, timeout=30,
                       env=e, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def base(d):
    return ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir",
            os.path.join(d, "data")]


def refused(argv, env, named, d):
    """coursed exits 2, names the place on stderr, and creates no database."""
    code, out, err = run_cli(argv, env)
    assert code == 2, (argv, env, code, out, err)
    for word in named:
        assert word in err, (argv, env, word, err)
    assert not os.path.exists(os.path.join(d, "data", "coursed.db")), (argv, env, "started")
    return err


def test_unknown_redline_variable_refused():
    with tempfile.TemporaryDirectory(prefix="coursed-env-") as d:
        refused(base(d), {"REDLINE_LOG_LEVL": "debug"},
                ["REDLINE_LOG_LEVL", "did you mean REDLINE_LOG_LEVEL?"], d)
        refused(base(d), {"REDLINE_SERVER_THREDS": "2"},
                ["REDLINE_SERVER_THREDS", "did you mean REDLINE_SERVER_THREADS?"], d)
        refused(base(d), {"REDLINE_CONFIGG": "x.yaml"},
                ["REDLINE_CONFIGG", "did you mean REDLINE_CONFIG?"], d)
        refused(base(d), {"REDLINE_WHATEVER": "1"},
                ["REDLINE_WHATEVER", "unknown environment variable"], d)


def test_known_variables_still_accepted():
    # A key's own variable (default-named and declared), REDLINE_CONFIG, and OTEL_*.
    with tempfile.TemporaryDirectory(prefix="coursed-env-") as d:
        cfg = os.path.join(d, "c.yaml")
        with open(cfg, "w") as f:
            f.write("coursed:\n  seed: false\n")
        env = {"REDLINE_CONFIG": cfg, "REDLINE_LOG_LEVEL": "INFO", "REDLINE_DATA_DIR": d,
               "REDLINE_SERVER_THREADS": "1", "OTEL_SERVICE_NAME": "x"}
        with Coursed(args().coursed, args=FAST_STOP, env=env) as c:
            status, _, body = c.request("GET", "/v1/courses")
            assert status == 200 and json.loads(body) == {"courses": []}, (status, body)
            assert c.stop() == 0, c.output_tail()


def test_values_checked_at_load():
    with tempfile.TemporaryDirectory(prefix="coursed-late-") as d:
        b = base(d)
        flags = [
            (["--admin-listen", "garbage"], ["server.admin_listen", "'garbage'"]),
            (["--set", "server.admin_listen=host:"], ["server.admin_listen"]),
            (["--set", "log.level=verbose"], ["log.level", "verbose"]),
            (["--set", "log.sink=syslog"], ["log.sink", "syslog"]),
            (["--set", "log.sink=file", "--set", "log.file=" + os.path.join(d, "no", "dir", "x.log")],
             ["log.file", os.path.join(d, "no", "dir")]),
            (["--set", "log.sink=file"], ["log.file", "expected a file path"]),
            (["--set", "tracing.endpoint=collector:4318"], ["tracing.endpoint", "http://"]),
            (["--set", "tracing.propagators=tracecontext,bogus"], ["tracing.propagators"]),
        ]
        for extra, named in flags:
            refused(b + extra, {}, named, d)
        envs = [
            ({"OTEL_TRACES_SAMPLER": "bogus"}, ["OTEL_TRACES_SAMPLER", "bogus"]),
            ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
             ["OTEL_TRACES_SAMPLER_ARG"]),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, ["OTEL_EXPORTER_OTLP_ENDPOINT", "http://"]),
            ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ["OTEL_EXPORTER_OTLP_PROTOCOL"]),
            ({"OTEL_TRACES_EXPORTER": "zipkin"}, ["OTEL_TRACES_EXPORTER"]),
            ({"OTEL_BSP_MAX_QUEUE_SIZE": "lots"}, ["OTEL_BSP_MAX_QUEUE_SIZE"]),
            ({"OTEL_PROPAGATORS": "bogus"}, ["OTEL_PROPAGATORS"]),
            ({"REDLINE_ADMIN_LISTEN": "garbage"}, ["REDLINE_ADMIN_LISTEN"]),
        ]
        for env, named in envs:
            refused(b, env, named, d)
        # From the file: with its position.
        cfg = os.path.join(d, "c.yaml")
        with open(cfg, "w") as f:
            f.write("server:\n  admin_listen: garbage\n")
        refused(base(d)[:2] + ["--data-dir", os.path.join(d, "data"), "--config", cfg], {},
                ["c.yaml:2:17:", "server.admin_listen"], d)
        with open(cfg, "w") as f:
            f.write("log:\n  level: verbose\n")
        refused(b + ["--config", cfg], {}, ["c.yaml:2:10:", "log.level"], d)
        # The admin listener may still be off.
        code, out, err = run_cli(["warmup", "--admin-listen", "", "--data-dir", os.path.join(d, "w")])
        assert code == 0, (code, out, err)


def test_endpoint_credentials_never_printed():
    secret = "t0ken-" + os.urandom(6).hex()
    url = "http://user%s:%s@127.0.0.1:9/v1/traces" % (secret, secret)
    # --help, with the endpoint set on the command line and in the environment.
    code, out, err = run_cli(["--set", "tracing.endpoint=" + url, "--help"],
                             {"REDLINE_TRACING_ENDPOINT": url})
    assert code == 0 and "tracing.endpoint" in out, (code, err)
    assert secret not in out + err, (out, err)
    # A refused endpoint's error message.
    with tempfile.TemporaryDirectory(prefix="coursed-sec-") as d:
        bad = "ftp://user%s:%s@127.0.0.1:9/" % (secret, secret)
        err = refused(base(d) + ["--set", "tracing.endpoint=" + bad], {}, ["tracing.endpoint"], d)
        assert secret not in err, err
        err = refused(base(d), {"OTEL_EXPORTER_OTLP_ENDPOINT": bad}, ["OTEL_EXPORTER_OTLP_ENDPOINT"], d)
        assert secret not in err, err
    # A running server: /debug/vars and every line it prints, failed exports included.
    env = {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_EXPORTER_OTLP_TIMEOUT": "200"}
    with Coursed(args().coursed, args=FAST_STOP + ["--set", "tracing.endpoint=" + url], env=env) as c:
        v = c.request("GET", "/debug/vars", admin=True)[2].decode()
        assert secret not in v and "<redacted>" in v, v
        for _ in range(5):
            c.request("GET", "/v1/courses")
        c.wait_for_log(lambda r: r.get("msg") == "tracing: exporting spans")
        assert c.stop() == 0, c.output_tail()
        out = "\n".join(c.stdout_lines + c.stderr_lines)
        assert secret not in out, out[-2000:]
    # The same through the OTEL_* variables, with a header list that carries a token.
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:%s@127.0.0.1:9" % secret,
                "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%%20%s" % secret})
    with Coursed(args().coursed, args=FAST_STOP, env=env) as c:
        v = c.request("GET", "/debug/vars", admin=True)[2].decode()
        assert secret not in v, v
        c.request("GET", "/v1/courses")
        started = c.wait_for_log(lambda r: r.get("msg") == "tracing: exporting spans")
        assert started["endpoint"] == "http://<redacted>@127.0.0.1:9/v1/traces", started
        assert c.stop() == 0, c.output_tail()
        out = "\n".join(c.stdout_lines + c.stderr_lines)
        assert secret not in out, out[-2000:]


ROUTES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: coursed}
spec:
  hosts: [coursed]
  http:
  - name: split
    route:
    - destination: {host: coursed, subset: v1}
      weight: %s
    - destination: {host: coursed, subset: v2}
      weight: 50
"""


def checked(argv, env=None):
    """check-config on argv; the data directory it names (missing) stays missing."""
    with tempfile.TemporaryDirectory(prefix="coursed-check-") as d:
        data = os.path.join(d, "no", "data")
        code, out, err = run_cli(argv(d) + ["--data-dir", data], env)
        assert not os.path.exists(os.path.join(d, "no")), (argv(d), "created the data directory")
        return code, out, err


def test_check_config_valid():
    def argv(d):
        cfg = os.path.join(d, "c.yaml")
        with open(cfg, "w") as f:
            f.write("server:\n  listen: 127.0.0.1:0\ncoursed:\n  seed: false\n")
        routes = os.path.join(d, "routes.yaml")
        with open(routes, "w") as f:
            f.write(ROUTES % "50")
        return ["--check-config", "--config", cfg, "--routes", routes]
    code, out, err = checked(argv)
    assert code == 0 and out.startswith("configuration ok: ") and out.endswith("c.yaml\n"), \
        (code, out, err)
    assert out.count("\n") == 1 and err == "", (out, err)
    # The word form, nothing but defaults; the file from REDLINE_CONFIG is named too.
    code, out, err = checked(lambda d: ["check-config"])
    assert (code, out) == (0, "configuration ok: defaults\n"), (code, out, err)
    with tempfile.TemporaryDirectory(prefix="coursed-check-") as d:
        cfg = os.path.join(d, "env.yaml")
        with open(cfg, "w") as f:
            f.write("log:\n  level: debug\n")
        code, out, err = run_cli(["check-config"], {"REDLINE_CONFIG": cfg})
        assert (code, out) == (0, "configuration ok: %s\n" % cfg), (code, out, err)


def test_check_config_refused():
    def typo(d):
        cfg = os.path.join(d, "c.yaml")
        with open(cfg, "w") as f:
            f.write("server:\n  threds: 2\n")
        return ["--check-config", "--config", cfg]
    code, out, err = checked(typo)
    assert code == 2 and out == "", (code, out, err)
    assert "c.yaml:2:3: server.threds" in err and "did you mean 'server.threads'?" in err, err

    def bad_value(d):
        cfg = os.path.join(d, "c.yaml")
        with open(cfg, "w") as f:
            f.write("pool:\n  threads: lots\n")
        return ["check-config", "--config", cfg]
    code, out, err = checked(bad_value)
    assert code == 2 and out == "" and "c.yaml:2:12: pool.threads" in err, (code, out, err)
    code, out, err = checked(lambda d: ["check-config", "--set", "log.level=verbose"])
    assert code == 2 and "log.level" in err and "verbose" in err, (code, out, err)

    def broken_routes(d):
        routes = os.path.join(d, "routes.yaml")
        with open(routes, "w") as f:
            f.write(ROUTES % "fifty")
        return ["--check-config", "--routes", routes]
    code, out, err = checked(broken_routes)
    assert code == 2 and out == "", (code, out, err)
    assert "routes.yaml:10:15:" in err and "expected an integer" in err, err

    code, out, err = checked(lambda d: ["--check-config"], {"REDLINE_SERVER_THREDS": "2"})
    assert code == 2 and out == "", (code, out, err)
    assert "REDLINE_SERVER_THREDS: unknown environment variable" in err, err
    assert "did you mean REDLINE_SERVER_THREADS?" in err, err


if __name__ == "__main__":
    run([test_unknown_redline_variable_refused, test_known_variables_still_accepted,
         test_values_checked_at_load, test_endpoint_credentials_never_printed,
         test_check_config_valid, test_check_config_refused])
