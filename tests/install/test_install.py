#!/usr/bin/env python3
"""
The install, as a user meets it: installs the build into a temporary DESTDIR, checks the files
there, builds tests/install/hello OUTSIDE the source tree against that install three ways
(pkg-config with the shared library, pkg-config with the static one, CMake's
find_package(redline) for both), runs each build on ephemeral ports, checks its answer, its log
line and its /metrics (its own counter and breaker gauge, the runtime's RED metrics), stops it
with SIGTERM and expects exit status 0. The temporary directory goes at the end, pass or fail.

usage: test_install.py --build DIR --prefix PREFIX --cc CC --cmake CMAKE --hello DIR
"""
import argparse
import glob
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT = 30.0


class Failure(Exception):
    pass


def run(cmd, env=None, cwd=None):
    """Runs cmd; a non-zero exit is a failure that shows the command and its output."""
    p = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if p.returncode != 0:
        raise Failure("%s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stdout))
    return p.stdout


def install(args, destdir):
    """`cmake --install` with DESTDIR, as `make install DESTDIR=...` does; returns the root."""
    env = dict(os.environ, DESTDIR=destdir)
    run([args.cmake, "--install", args.build], env=env)
    root = destdir + args.prefix
    for rel in ("include/redline/runtime.h", "include/redline/common.h",
                "include/redline/version.h"):
        if not os.path.isfile(os.path.join(root, rel)):
            raise Failure("not installed: %s" % rel)
    for name in ("libredline.a", "libredline.so", "pkgconfig/redline.pc",
                 "cmake/redline/redline-config.cmake", "cmake/redline/redline-targets.cmake"):
        if not glob.glob(os.path.join(root, "lib*", "**", name), recursive=True):
            raise Failure("not installed under %s/lib*: %s" % (root, name))
    return root


def version_of(root):
    with open(os.path.join(root, "include/redline/version.h")) as f:
        m = re.search(r'#define RDL_VERSION_STRING "([0-9]+\.[0-9]+\.[0-9]+)"', f.read())
    if not m:
        raise Failure("version.h has no RDL_VERSION_STRING")
    return m.group(1)


def needs_libredline_so(binary):
    return "libredline.so" in run(["readelf", "-d", binary])


def build_with_pkg_config(args, destdir, root, out):
    """hello with a plain compiler command line from redline.pc; returns {name: (binary, env)}."""
    pcdir = os.path.dirname(glob.glob(os.path.join(root, "lib*", "**", "pkgconfig", "redline.pc"),
                                      recursive=True)[0])
    env = dict(os.environ, PKG_CONFIG_PATH=pcdir, PKG_CONFIG_SYSROOT_DIR=destdir)
    pc = lambda *a: run(["pkg-config"] + list(a) + ["redline"], env=env).split()
    src = os.path.join(args.hello, "hello.c")
    cflags = pc("--cflags") + ["-Wall", "-Wextra", "-Werror"]
    shared = os.path.join(out, "hello-pc-shared")
    run([args.cc, src, "-o", shared] + cflags + pc("--libs"))
    # The archive with the system's shared dependencies: redline.pc's own Libs and Libs.private
    # (depth 2: redline, not its dependencies' private libraries, which Debian's libcurl lists
    # without shipping them), then the Requires.private modules' libraries. -lredline takes the
    # .so when both are installed, so a static link names the archive.
    own = pc("--static", "--maximum-traverse-depth=2", "--libs")
    if "-lredline" not in own:
        raise Failure("pkg-config --static --libs redline has no -lredline: %r" % own)
    deps = pc("--print-requires-private")
    static_libs = ["-l:libredline.a" if f == "-lredline" else f for f in own]
    static_libs += run(["pkg-config", "--libs"] + deps, env=env).split()
    static = os.path.join(out, "hello-pc-static")
    run([args.cc, src, "-o", static] + cflags + static_libs)
    libdir = pc("--variable=libdir")[0]          # the sysroot (DESTDIR) included
    return {"pkg-config shared": (shared, {"LD_LIBRARY_PATH": libdir}),
            "pkg-config static": (static, {})}


def build_with_cmake(args, root, out):
    """hello through find_package(redline): redline::redline and redline::redline_static."""
    build = os.path.join(out, "hello-cmake")
    run([args.cmake, "-S", args.hello, "-B", build, "-DCMAKE_PREFIX_PATH=" + root,
         "-DCMAKE_C_COMPILER=" + args.cc, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"])
    run([args.cmake, "--build", build])
    return {"cmake shared": (os.path.join(build, "hello"), {}),
            "cmake static": (os.path.join(build, "hello_static"), {})}


def get(addr, path):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


class Service:
    """A running hello: its log lines (JSON on stdout) collected by a thread."""

    def __init__(self, binary, extra_env):
        env = dict(os.environ, REDLINE_LISTEN="127.0.0.1:0", REDLINE_ADMIN_LISTEN="127.0.0.1:0",
                   REDLINE_LIFECYCLE_DRAIN_DELAY="0ms", REDLINE_POOL_THREADS="2",
                   REDLINE_SERVER_THREADS="2", **extra_env)
        self.proc = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def records(self):
        out = []
        with self.cond:
            lines = list(self.lines)
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_record(self, msg):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for rec in self.records():
                if rec.get("msg") == msg:
                    return rec
            if self.proc.poll() is not None:
                self.reader.join(5)
                raise Failure("exited %d before logging %r:\n%s"
                              % (self.proc.returncode, msg, "\n".join(self.lines)))
            with self.cond:
                self.cond.wait(0.1)
        raise Failure("no %r log line within %.0fs:\n%s" % (msg, TIMEOUT, "\n".join(self.lines)))

    def stop(self):
        """SIGTERM by PID; returns the exit status."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("did not exit within %.0fs of SIGTERM:\n%s"
                          % (TIMEOUT, "\n".join(self.lines)))


def metric_value(text, name, labels=()):
    """The value of the first sample of name whose labels include each of labels."""
    for line in text.splitlines():
        if not line.startswith(name) or line[len(name):len(name) + 1] not in ("{", " "):
            continue
        if all(l in line for l in labels):
            return float(line.rsplit(" ", 1)[1])
    return None


def exercise(name, binary, extra_env, version):
    svc = Service(binary, extra_env)
    try:
        rec = svc.wait_record("listening")
        addr, admin = rec["addr"], rec.get("admin_addr")
        if not admin:
            raise Failure("no admin_addr in %r" % rec)
        for who in ("world", "redline"):
            status, body = get(addr, "/hello/" + who)
            if status != 200 or body != "hello, %s\n" % who:
                raise Failure("GET /hello/%s: %d %r" % (who, status, body))
        status, text = get(admin, "/metrics")
        if status != 200:
            raise Failure("GET /metrics: %d" % status)
        expect = [("hello_greetings_total", (), 2.0),
                  ("hello_breaker_state", (), 0.0),
                  ("http_server_request_duration_seconds_count",
                   ('route="/hello/{name}"', 'code="200"', 'method="GET"'), 2.0)]
        for metric, labels, want in expect:
            got = metric_value(text, metric, labels)
            if got != want:
                raise Failure("/metrics: %s%s is %r, expected %r\n%s"
                              % (metric, list(labels), got, want, text))
    finally:
        status = svc.stop()
    if status != 0:
        raise Failure("exit status %d after SIGTERM:\n%s" % (status, "\n".join(svc.lines)))
    # Log lines reach stdout from the logger's writer thread, all of them by the exit, each I/O
    # thread's in its own order.
    svc.reader.join(TIMEOUT)
    greeted = [r for r in svc.records() if r.get("msg") == "greeted"]
    if sorted(r.get("name") for r in greeted) != ["redline", "world"]:    # one ring per thread
        raise Failure("log lines 'greeted': %r\n%s" % (greeted, "\n".join(svc.lines)))
    if greeted[0].get("redline") != version or greeted[0].get("service") != "hello":
        raise Failure("log line %r: expected service hello, redline %s" % (greeted[0], version))
    print("ok: %s (%s)" % (name, binary))


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--build", "--prefix", "--cc", "--cmake", "--hello"):
        ap.add_argument(opt, required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="redline-install-")
    try:
        destdir = os.path.join(tmp, "dest")
        root = install(args, destdir)
        version = version_of(root)
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        builds = build_with_pkg_config(args, destdir, root, out)
        builds.update(build_with_cmake(args, root, out))
        for name, (binary, extra_env) in builds.items():
            want_so = name.endswith("shared")
            if needs_libredline_so(binary) != want_so:
                raise Failure("%s: %s libredline.so" % (name, "does not need" if want_so else "needs"))
            exercise(name, binary, extra_env, version)
    except Failure as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok: installed, built outside the tree 4 ways, served, scraped, stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
