"""Clients that stop reading (issue 15, point 1: slow read), end to end.

50 clients with a 4 KiB receive buffer pipeline `GET /v1/courses` in batches of 200 and never
read. They keep sending until the server stops reading them: on loopback the kernel's
autotuned send buffer (tcp_wmem, up to 4 MiB) first takes the answers, so one batch alone
leaves nothing unsent in the process and nothing to time out; and the test only peeks at
its sockets, never reads. With `timeouts.send=2s`, `limits.max_output_total=8MiB` and
`limits.max_output_buffer=256KiB`, coursed's RSS stays under a loose bound (start + 40 MB;
before the send timeout every such connection held its output for good), every such
connection is closed by the server, either when no byte has left for the send timeout
(`send timeout` line, http_server_send_timeouts_total) or, stalled longest, by the total
(`limits.max_output_total reached` line), all within 45 s (about 10 s on the optimised build; the
bound is for the sanitizer builds, three times slower); and a slow but progressing reader
(4 KiB every 500 ms) on the same server is not cut during the test.
"""

import socket
import threading
import time

from harness import Coursed, args, run

SEND_TIMEOUT = 2.0
CLIENTS = 50
PIPELINED = 200
WALL = 45.0          # the stalled clients' phase, at most (ASan+UBSan: ~20 s)
RSS_SLACK_KB = 40 * 1024


def sanitized(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def small_socket(c):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)     # before connect: the window
    s.connect((c.host, c.port))
    return s


def closed_by_server(s):
    """True once the server has closed, seen without reading (a peek: EOF, or RST)."""
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return True


class SlowReader(threading.Thread):
    """Reads 4 KiB every 500 ms from a large pipelined answer; notes if the server cut it."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.s = small_socket(c)
        self.s.sendall(b"GET /v1/courses HTTP/1.1\r\nHost: t\r\n\r\n" * PIPELINED)
        self.s.settimeout(5)
        self.read = 0
        self.cut = None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                data = self.s.recv(4096)
            except OSError as e:
                self.cut = repr(e)
                return
            if not data:
                self.cut = "EOF after %d bytes" % self.read
                return
            self.read += len(data)
            self.stop.wait(0.5)


def test_stalled_readers_closed_and_memory_bounded():
    opts = ["--set", "timeouts.send=%ds" % SEND_TIMEOUT, "--set", "limits.max_output_total=8MiB",
            "--set", "limits.max_output_buffer=256KiB", "--set", "lifecycle.drain_delay=0",
            "--set", "log.access=false"]
    with Coursed(args().coursed, args=opts) as c:
        base = rss_kb(c.pid)
        slow = SlowReader(c)
        slow.start()
        batch = b"GET /v1/courses HTTP/1.1\r\nHost: t\r\n\r\n" * PIPELINED
        socks = []
        for _ in range(CLIENTS):
            s = small_socket(c)
            s.setblocking(False)
            socks.append(s)
        t0 = time.monotonic()
        peak = base
        open_socks = list(socks)
        deadline = t0 + WALL
        while open_socks and time.monotonic() < deadline:
            peak = max(peak, rss_kb(c.pid))
            for s in list(open_socks):
                gone = False
                try:
                    s.send(batch)           # keep pipelining until the server stops reading
                except BlockingIOError:
                    pass
                except OSError:
                    gone = True             # reset by the server
                if gone or closed_by_server(s):
                    open_socks.remove(s)
            time.sleep(0.005)
        peak = max(peak, rss_kb(c.pid))
        for s in socks:
            s.close()
        assert not open_socks, "%d of %d stalled connections still open after %.1fs" % (
            len(open_socks), CLIENTS, time.monotonic() - t0)
        # Under ASan, RSS is not the process's own memory (freed blocks sit in its quarantine,
        # and shadow memory grows with them): the bound is checked on plain builds only.
        if not sanitized(args().coursed):
            assert peak - base < RSS_SLACK_KB, "RSS grew by %d kB (from %d kB)" % (peak - base,
                                                                                  base)

        assert slow.cut is None and slow.is_alive(), slow.cut
        assert slow.read > 0, "the slow reader got nothing"
        slow.stop.set()
        slow.join(5)
        slow.s.close()

        status, _, body = c.request("GET", "/metrics", admin=True)
        assert status == 200
        counted = [line for line in body.decode().splitlines()
                   if line.startswith("http_server_send_timeouts_total ")]
        c.wait_for_log(lambda r: len([x for x in c.logs() if x.get("level") == "warn"])
                       >= CLIENTS, timeout=10)                   # the writer may lag a little
        timeouts = [r for r in c.logs() if r.get("msg", "").startswith("send timeout")]
        sheds = [r for r in c.logs() if r.get("msg", "").startswith("limits.max_output_total")]
        assert counted and float(counted[0].split()[1]) == len(timeouts), (counted, len(timeouts))
        # each one closed by the server for one of the two reasons, said in one line each
        assert len(timeouts) + len(sheds) == CLIENTS, (len(timeouts), len(sheds))
        assert all(r.get("unsent_bytes", 0) > 0 for r in timeouts + sheds), timeouts + sheds
        print("# RSS %d kB -> peak %d kB; %d send timeouts, %d closed by the total; "
              "slow reader read %d bytes; all closed %.1fs after the start"
              % (base, peak, len(timeouts), len(sheds), slow.read, time.monotonic() - t0),
              flush=True)
        assert c.stop() == 0


if __name__ == "__main__":
    run([test_stalled_readers_closed_and_memory_bounded])
