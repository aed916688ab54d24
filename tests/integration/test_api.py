"""coursed's HTTP API end to end: every endpoint, every documented error, idempotent
replay, a course filling up, HEAD, persistence across a restart and the command line."""

import json
import os
import re
import sqlite3
import subprocess
import tempfile
import time
import uuid

from harness import Coursed, args, run

SEED = [
    (1, "C101", "Intro to C", 120),
    (2, "SYS201", "Systems Programming", 80),
    (3, "OBS301", "Distributed Tracing", 50),
    (4, "SRE210", "SRE Fundamentals", 60),
    (5, "KRN499", "Kernel Hacking Seminar", 3),
    (6, "CMP330", "Compilers", 40),
]
# These tests stop coursed often and do not test draining: skip the drain delay.
FAST_STOP = ["--set", "lifecycle.drain_delay=0"]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def get_json(c, path, want=200):
    status, headers, body = c.request("GET", path)
    assert status == want, (path, status, body)
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    return json.loads(body)


def enroll(c, course, student, key=None, headers=None):
    h = dict(headers or {})
    if key is not None:
        h["Idempotency-Key"] = key
    status, hdrs, body = c.request("POST", "/v1/courses/%s/enrollments" % course, headers=h,
                                   body={"student": student})
    return status, hdrs, json.loads(body) if body else None


def assert_error(status, body, want_status, want_code, fragment=""):
    assert status == want_status, (status, body)
    doc = json.loads(body) if isinstance(body, (bytes, str)) else body
    assert doc.get("code") == want_code, doc
    assert isinstance(doc.get("message"), str) and doc["message"], doc
    assert fragment in doc["message"], (fragment, doc)


def seats(c, course):
    return get_json(c, "/v1/courses/%d" % course)["seats_taken"]


# ---- reads ----------------------------------------------------------------

def test_ping(c):
    status, headers, body = c.request("GET", "/ping")
    assert status == 200 and body == b"pong\n", (status, body)
    assert headers["Content-Type"].startswith("text/plain"), headers


def test_list_courses(c):
    doc = get_json(c, "/v1/courses")
    got = [(x["id"], x["code"], x["title"], x["capacity"]) for x in doc["courses"]]
    assert got == SEED, got
    for x in doc["courses"]:
        assert x["seats_remaining"] == x["capacity"] - x["seats_taken"], x
        assert set(x) == {"id", "code", "title", "capacity", "seats_taken", "seats_remaining"}, x


def test_get_course(c):
    for cid, code, title, cap in SEED:
        x = get_json(c, "/v1/courses/%d" % cid)
        assert (x["id"], x["code"], x["title"], x["capacity"]) == (cid, code, title, cap), x
        assert x["seats_remaining"] == cap - x["seats_taken"], x


def test_get_course_not_found(c):
    for cid in ("999", "9223372036854775807", "0007000"):
        status, headers, body = c.request("GET", "/v1/courses/" + cid)
        assert_error(status, body, 404, "course_not_found", str(int(cid)))
        assert headers["Content-Type"].startswith("application/json"), headers


def test_get_course_invalid_id(c):
    for bad in ("abc", "0", "-1", "1.5", "+1", "1e3", "%201", "9223372036854775808",
                "99999999999999999999999"):
        status, _, body = c.request("GET", "/v1/courses/" + bad)
        assert_error(status, body, 400, "invalid_id", "integer")


def test_head(c):
    for path in ("/ping", "/v1/courses", "/v1/courses/1"):
        gs, gh, gb = c.request("GET", path)
        hs, hh, hb = c.request("HEAD", path)
        assert gs == hs == 200, (path, gs, hs)
        assert hb == b"", (path, hb)
        assert hh.get("Content-Length") == str(len(gb)), (path, hh, len(gb))
        assert hh.get("Content-Type") == gh.get("Content-Type"), (path, hh, gh)


# ---- enrollment -------------------------------------------------------------

def test_enroll_and_fetch(c):
    before = seats(c, 2)
    status, headers, doc = enroll(c, 2, "ada lovelace")
    assert status == 201, (status, doc)
    assert doc["course_id"] == 2 and doc["student"] == "ada lovelace", doc
    assert isinstance(doc["id"], int) and doc["id"] >= 1, doc
    assert RFC3339.match(doc["created_at"]), doc
    assert headers["Location"] == "/v1/enrollments/%d" % doc["id"], headers
    assert headers["Content-Type"].startswith("application/json"), headers
    assert seats(c, 2) == before + 1
    assert get_json(c, headers["Location"]) == doc


def test_enroll_student_is_kept_exactly(c):
    for student in ('quote " backslash \\ tab \t', "ünïcødé ✓", "x" * 200, "é" * 100):
        status, headers, doc = enroll(c, 6, student)
        assert status == 201, (student, status, doc)
        assert doc["student"] == student, doc
        assert get_json(c, headers["Location"])["student"] == student


def test_enroll_content_type_parameters(c):
    status, _, body = c.request("POST", "/v1/courses/6/enrollments",
                                headers={"Content-Type": "Application/JSON; charset=utf-8"},
                                body=b'{"student":"grace"}')
    assert status == 201, (status, body)


def test_get_enrollment_errors(c):
    status, _, body = c.request("GET", "/v1/enrollments/987654321")
    assert_error(status, body, 404, "enrollment_not_found", "987654321")
    for bad in ("x", "0", "-5", "18446744073709551616"):
        status, _, body = c.request("GET", "/v1/enrollments/" + bad)
        assert_error(status, body, 400, "invalid_id", "integer")


def test_enroll_unknown_course(c):
    status, _, doc = enroll(c, 4242, "nobody")
    assert_error(status, doc, 404, "course_not_found", "4242")
    status, _, doc = enroll(c, "abc", "nobody")
    assert_error(status, doc, 400, "invalid_id")


def test_enroll_invalid_json(c):
    before = seats(c, 1)
    for body, where in ((b'{"student": ', "line 1 column"), (b'{\n  "student": nope}', "line 2"),
                        (b"", "line"), (b'{"student":"a"} trailing', "line 1"),
                        (b'{"student":"a","student":"b"}', "line 1")):
        status, headers, resp = c.request("POST", "/v1/courses/1/enrollments", body=body,
                                          headers={"Content-Type": "application/json"})
        assert_error(status, resp, 400, "invalid_json", where)
        assert headers["Content-Type"].startswith("application/json"), headers
    assert seats(c, 1) == before


def test_enroll_invalid_field(c):
    before = seats(c, 1)
    for body in ({}, {"student": 5}, {"student": ""}, {"student": None}, {"student": ["a"]},
                 {"name": "x"}, ["student"], {"student": "x" * 201}, {"student": "é" * 101}):
        status, _, resp = c.request("POST", "/v1/courses/1/enrollments", body=body)
        assert_error(status, resp, 422, "invalid_field",
                     "field 'student' must be a non-empty string")
    assert seats(c, 1) == before


def test_enroll_unsupported_media_type(c):
    before = seats(c, 1)
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx", None):
        headers = {"Content-Type": ctype} if ctype else {}
        status, _, resp = c.request("POST", "/v1/courses/1/enrollments", headers=headers,
                                    body=b'{"student":"x"}')
        assert_error(status, resp, 415, "unsupported_media_type", "application/json")
    assert seats(c, 1) == before


def test_course_fills_up(c):
    assert seats(c, 5) == 0
    ids = []
    for i in range(3):
        status, _, doc = enroll(c, 5, "seminar-%d" % i)
        assert status == 201, (i, status, doc)
        ids.append(doc["id"])
    assert len(set(ids)) == 3, ids
    status, _, doc = enroll(c, 5, "one too many")
    assert_error(status, doc, 409, "course_full", "full")
    x = get_json(c, "/v1/courses/5")
    assert x["seats_taken"] == 3 and x["seats_remaining"] == 0, x


# ---- idempotency --------------------------------------------------------------

def test_idempotent_replay(c):
    key = "retry-" + uuid.uuid4().hex
    before = seats(c, 4)
    s1, h1, b1 = c.request("POST", "/v1/courses/4/enrollments", headers={"Idempotency-Key": key},
                           body={"student": "linus"})
    assert s1 == 201, (s1, b1)
    assert "Idempotent-Replayed" not in h1, h1
    for _ in range(3):
        s2, h2, b2 = c.request("POST", "/v1/courses/4/enrollments",
                               headers={"Idempotency-Key": key}, body={"student": "linus"})
        assert (s2, b2) == (s1, b1), (s2, b2, b1)
        assert h2.get("Idempotent-Replayed") == "true", h2
        assert h2.get("Location") == h1["Location"], (h1, h2)
    assert seats(c, 4) == before + 1
    # a different key is a different request
    s3, _, b3 = c.request("POST", "/v1/courses/4/enrollments",
                          headers={"Idempotency-Key": key + "-2"}, body={"student": "linus"})
    assert s3 == 201 and json.loads(b3)["id"] != json.loads(b1)["id"], (s3, b3)
    assert seats(c, 4) == before + 2


def test_idempotent_replay_of_full_course(c):
    key = "full-" + uuid.uuid4().hex
    s1, h1, d1 = enroll(c, 5, "late", key=key)
    s2, h2, d2 = enroll(c, 5, "late", key=key)
    assert s1 == s2 == 409 and d1 == d2 and d1["code"] == "course_full", (s1, s2, d1, d2)
    assert h2.get("Idempotent-Replayed") == "true", h2


def test_idempotency_key_reused(c):
    key = "reuse-" + uuid.uuid4().hex
    before = seats(c, 4)
    status, _, doc = enroll(c, 4, "ken", key=key)
    assert status == 201, doc
    for course, student in ((3, "ken"), (4, "dennis")):
        status, headers, doc = enroll(c, course, student, key=key)
        assert_error(status, doc, 422, "idempotency_key_reused")
        assert "Idempotent-Replayed" not in headers, headers
    assert seats(c, 4) == before + 1


def test_idempotency_key_format(c):
    before = seats(c, 4)
    for key in ("a b", "k" * 256, "caf\u00e9".encode("utf-8").decode("latin-1")):
        status, _, doc = enroll(c, 4, "x", key=key)
        assert_error(status, doc, 400, "invalid_idempotency_key", "Idempotency-Key")
    assert seats(c, 4) == before
    status, _, doc = enroll(c, 4, "x", key="k" * 255)
    assert status == 201, doc


def api_tests():
    return [test_ping, test_list_courses, test_get_course, test_get_course_not_found,
            test_get_course_invalid_id, test_head, test_enroll_and_fetch,
            test_enroll_student_is_kept_exactly, test_enroll_content_type_parameters,
            test_get_enrollment_errors, test_enroll_unknown_course, test_enroll_invalid_json,
            test_enroll_invalid_field, test_enroll_unsupported_media_type, test_course_fills_up,
            test_idempotent_replay, test_idempotent_replay_of_full_course,
            test_idempotency_key_reused, test_idempotency_key_format]


# ---- process-level: restart, configuration, command line ------------------------

def test_persists_across_restart():
    with tempfile.TemporaryDirectory(prefix="coursed-restart-") as d:
        with Coursed(args().coursed, data_dir=d, args=FAST_STOP) as c:
            status, headers, doc = enroll(c, 3, "durable")
            assert status == 201, doc
            status, _, _ = enroll(c, 3, "durable2", key="restart-key")
            assert status == 201
            assert c.stop() == 0, c.output_tail()
        with Coursed(args().coursed, data_dir=d, args=FAST_STOP) as c:
            courses = get_json(c, "/v1/courses")["courses"]
            assert [x["code"] for x in courses] == [s[1] for s in SEED], courses
            assert courses[2]["seats_taken"] == 2, courses[2]
            assert sum(x["seats_taken"] for x in courses) == 2, courses
            assert get_json(c, headers["Location"]) == doc
            status, h, _ = enroll(c, 3, "durable2", key="restart-key")
            assert status == 201 and h.get("Idempotent-Replayed") == "true", (status, h)
            assert c.stop() == 0, c.output_tail()


def test_seed_off():
    with Coursed(args().coursed, args=FAST_STOP + ["--set", "coursed.seed=false"]) as c:
        assert get_json(c, "/v1/courses") == {"courses": []}
        status, _, doc = enroll(c, 1, "x")
        assert_error(status, doc, 404, "course_not_found")


def test_config_file_and_precedence():
    with tempfile.TemporaryDirectory(prefix="coursed-cfg-") as d:
        cfg = os.path.join(d, "coursed.yaml")
        with open(cfg, "w") as f:
            f.write("coursed:\n  seed: false\n  data_dir: %s\n" % os.path.join(d, "from-file"))
        env_dir = os.path.join(d, "from-env")
        flag_dir = os.path.join(d, "from-flag", "nested")
        # file says no seed; env overrides the file's data_dir; the flag (harness) overrides env
        with Coursed(args().coursed, data_dir=flag_dir, args=FAST_STOP + ["--config", cfg],
                     env={"REDLINE_DATA_DIR": env_dir}) as c:
            assert get_json(c, "/v1/courses") == {"courses": []}
            assert c.stop() == 0, c.output_tail()
        assert os.path.exists(os.path.join(flag_dir, "coursed.db"))
        assert not os.path.exists(env_dir) and not os.path.exists(os.path.join(d, "from-file"))


def run_cli(argv, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([args().coursed] + argv, capture_output=True, text=True, timeout=30,
                       env=e, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def test_help():
    for argv in (["--help"], ["help"], ["serve", "--help"]):
        code, out, err = run_cli(argv)
        assert code == 0, (argv, code, err)
        for word in ("usage: coursed", "--data-dir", "coursed.data_dir", "REDLINE_DATA_DIR",
                     "coursed.seed", "server.listen"):
            assert word in out, (argv, word, out)


def test_bad_command_line():
    with tempfile.TemporaryDirectory(prefix="coursed-bad-") as d:
        base = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", d]
        cases = [
            (["--bogus"], "--bogus"),
            (["frobnicate"], "frobnicate"),
            (["--listen"], "--listen"),
            (base + ["--set", "coursed.seed=maybe"], "coursed.seed"),
            (base + ["--set", "coursed.nope=1"], "coursed.nope"),
            (base + ["--set", "noequals"], "noequals"),
            (base + ["--listen", "not-an-address"], "listen"),
        ]
        for argv, named in cases:
            code, out, err = run_cli(argv)
            assert code == 2, (argv, code, out, err)
            assert named in err, (argv, named, err)
        bad = os.path.join(d, "bad.yaml")
        with open(bad, "w") as f:
            f.write("coursed:\n  seed: 12\n")
        code, _, err = run_cli(base + ["--config", bad])
        assert code == 2 and "coursed.seed" in err and ":2:" in err, (code, err)
        code, _, err = run_cli(base, env={"REDLINE_CONFIG": bad})
        assert code == 2 and "coursed.seed" in err, (code, err)
        assert not os.path.exists(os.path.join(d, "coursed.db")), "started despite bad config"


def test_locked_database_answers_503_and_writes_nothing():
    # The request deadline (1s) is far shorter than the lock is held (3s): the
    # worker must give up at the deadline, not commit once the lock is released.
    with Coursed(args().coursed, args=FAST_STOP + ["--set", "timeouts.request=1s"]) as c:
        before = seats(c, 2)
        db = sqlite3.connect(os.path.join(c.data_dir, "coursed.db"), isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            status, _, doc = enroll(c, 2, "blocked")
            assert status == 503, (status, doc)
            time.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
            db.execute("ROLLBACK")
        finally:
            db.close()
        time.sleep(0.5)
        assert seats(c, 2) == before, "an enrollment answered 503 was committed"
        status, _, doc = enroll(c, 2, "after")
        assert status == 201, (status, doc)


def test_unusable_data_dir_or_schema():
    with tempfile.TemporaryDirectory(prefix="coursed-bad-") as d:
        base = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]
        not_dir = os.path.join(d, "file")
        open(not_dir, "w").close()
        for data_dir in (not_dir, os.path.join(not_dir, "below")):
            code, _, err = run_cli(base + ["--data-dir", data_dir])
            assert code == 1 and "coursed.data_dir" in err, (data_dir, code, err)
        newer = os.path.join(d, "newer")
        os.mkdir(newer)
        db = sqlite3.connect(os.path.join(newer, "coursed.db"))
        db.execute("PRAGMA user_version = 99")
        db.close()
        code, _, err = run_cli(base + ["--data-dir", newer])
        assert code == 1 and "schema version 99" in err, (code, err)


def with_server(test, server):
    """test(server) as a test of no arguments that keeps its name."""
    def bound():
        test(server)
    bound.__name__ = test.__name__
    return bound


if __name__ == "__main__":
    with Coursed(args().coursed, args=FAST_STOP) as shared:
        def test_clean_exit():
            code = shared.stop()
            assert code == 0, "coursed exited with %s\n%s" % (code, shared.output_tail())

        run([with_server(t, shared) for t in api_tests()] + [test_clean_exit] +
            [test_persists_across_restart, test_seed_off, test_config_file_and_precedence,
             test_help, test_bad_command_line, test_unusable_data_dir_or_schema,
             test_locked_database_answers_503_and_writes_nothing])
