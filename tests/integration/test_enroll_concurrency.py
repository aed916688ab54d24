"""1,000 concurrent enrollments into a 50-seat course: exactly 50 succeed, 950 get
course_full, and the database (read directly after coursed stops) agrees: no seat
oversold, none lost, no other course touched."""

import http.client
import json
import os
import sqlite3
import threading

from harness import Coursed, args, run

THREADS = 50
PER_THREAD = 20
COURSE = 3
CAPACITY = 50
SEEDED = {1: 120, 2: 80, 3: 50, 4: 60, 5: 3, 6: 40}


def client(c, n, barrier, results, lock):
    """One keep-alive connection sending PER_THREAD enrollments."""
    conn = http.client.HTTPConnection(c.host, c.port, timeout=60)
    barrier.wait()
    try:
        for i in range(PER_THREAD):
            body = json.dumps({"student": "student-%d-%d" % (n, i)})
            for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
                try:
                    conn.request("POST", "/v1/courses/%d/enrollments" % COURSE, body=body,
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    conn.close()
                    conn = http.client.HTTPConnection(c.host, c.port, timeout=60)
                    if attempt == 2:
                        raise
            with lock:
                results.append((resp.status, data))
    finally:
        conn.close()


def test_concurrent_enrollments():
    with Coursed(args().coursed, args=["--set", "lifecycle.drain_delay=0"]) as c:
        results, lock = [], threading.Lock()
        errors = []
        barrier = threading.Barrier(THREADS)

        def worker(n):
            try:
                client(c, n, barrier, results, lock)
            except Exception as e:      # reported below; a thread must not die silently
                with lock:
                    errors.append("thread %d: %r" % (n, e))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not any(t.is_alive() for t in threads), "client threads still running"
        assert not errors, errors[:5]
        assert len(results) == THREADS * PER_THREAD, len(results)

        by_status = {}
        for status, _ in results:
            by_status[status] = by_status.get(status, 0) + 1
        assert by_status == {201: CAPACITY, 409: THREADS * PER_THREAD - CAPACITY}, by_status
        created = [json.loads(b) for s, b in results if s == 201]
        assert all(json.loads(b)["code"] == "course_full" for s, b in results if s == 409)
        ids = {d["id"] for d in created}
        assert len(ids) == CAPACITY, "duplicate enrollment ids"

        status, _, body = c.request("GET", "/v1/courses/%d" % COURSE)
        doc = json.loads(body)
        assert status == 200 and doc["seats_taken"] == CAPACITY and doc["seats_remaining"] == 0, doc

        code = c.stop()
        assert code == 0, "coursed exited with %s\n%s" % (code, c.output_tail())

        db = sqlite3.connect(os.path.join(c.data_dir, "coursed.db"))
        try:
            taken = dict(db.execute("SELECT id, seats_taken FROM courses"))
            caps = dict(db.execute("SELECT id, capacity FROM courses"))
            rows = db.execute("SELECT id, course_id, student FROM enrollments").fetchall()
            check = db.execute("PRAGMA integrity_check").fetchone()[0]
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            try:        # the schema itself refuses an oversold course
                db.execute("UPDATE courses SET seats_taken = seats_taken + 1 WHERE id = ?",
                           (COURSE,))
                oversold = True
            except sqlite3.IntegrityError:
                oversold = False
            db.rollback()
        finally:
            db.close()
        assert check == "ok", check
        assert mode == "wal" and version == 1, (mode, version)
        assert not oversold, "CHECK (seats_taken <= capacity) missing"
        assert caps == SEEDED, caps
        assert taken == {cid: (CAPACITY if cid == COURSE else 0) for cid in SEEDED}, taken
        assert len(rows) == CAPACITY and all(r[1] == COURSE for r in rows), len(rows)
        assert {r[0] for r in rows} == ids, "the 201 answers and the database disagree"
        assert {r[2] for r in rows} == {d["student"] for d in created}


if __name__ == "__main__":
    run([test_concurrent_enrollments])
