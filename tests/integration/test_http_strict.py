"""The HTTP/1.1 server's limits and strictness, checked on the real coursed binary by raw socket.

Each case sends bytes a client (or an attacker) could send and checks the status, that the
connection is closed when framing is in doubt, and that the server still answers afterwards.
Limits and timeouts are set small on the command line so the cases run fast.
"""

import json
import socket
import time

from harness import Coursed, args, read_until_close, run

LIMITS = [
    "--set", "limits.max_request_line=1024",
    "--set", "limits.max_header_bytes=4096",
    "--set", "limits.max_headers=20",
    "--set", "limits.max_body=1024",
    "--set", "timeouts.header=1s",
    "--set", "timeouts.body=1s",
    "--set", "timeouts.idle=2s",
]


def parse_responses(data):
    """Splits raw bytes into [(status, headers, body)], following Content-Length or chunked."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("truncated response head: %r" % data[:200])
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        assert parts[0] == b"HTTP/1.1", lines[0]
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        if status < 200:
            out.append((status, headers, b""))
            data = rest
            continue
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                body += rest[:size]
                rest = rest[size + 2:]
                if size == 0:
                    break
        else:
            n = int(headers.get("content-length", "0"))
            body, rest = rest[:n], rest[n:]
        out.append((status, headers, body))
        data = rest
    return out


def exchange(c, data, timeout=5.0):
    """Sends data, reads until the server closes; returns (responses, closed_by_server)."""
    with socket.create_connection((c.host, c.port), timeout=timeout) as s:
        s.sendall(data)
        chunks, closed = [], False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
    return parse_responses(b"".join(chunks)), closed


def healthy(c):
    status, _, body = c.request("GET", "/ping")
    assert status == 200 and body == b"pong\n", "server unhealthy after the case: %s %r" % (status, body)


def expect_error(c, data, status, close=True):
    responses, closed = exchange(c, data, timeout=4.0)
    assert responses, "no response to %r" % data[:80]
    got = responses[-1]
    assert got[0] == status, "expected %d, got %d %r for %r" % (status, got[0], got[2], data[:80])
    if close:
        assert got[1].get("connection") == "close", "error response must say Connection: close"
        assert closed, "server kept the connection open after %d" % status
    healthy(c)
    return got


GET = b"GET /ping HTTP/1.1\r\nHost: t\r\n"


def test_uri_too_long(c):
    expect_error(c, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414)


def test_header_bytes_too_large(c):
    expect_error(c, GET + b"X-Big: " + b"b" * 5000 + b"\r\n\r\n", 431)


def test_too_many_headers(c):
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(25))
    expect_error(c, GET + many + b"\r\n", 431)


def test_body_too_large_content_length(c):
    expect_error(c, b"POST /v1/courses/1/enrollments HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n", 413)


def test_body_too_large_chunked(c):
    chunk = b"200\r\n" + b"x" * 0x200 + b"\r\n"
    expect_error(c, b"POST /v1/courses/1/enrollments HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + chunk * 3 + b"0\r\n\r\n", 413)


def test_content_length_with_transfer_encoding(c):
    expect_error(c, b"POST /ping HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)


def test_conflicting_content_length(c):
    expect_error(c, b"POST /ping HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                    b"Content-Length: 6\r\n\r\nhello!", 400)


def test_missing_host(c):
    expect_error(c, b"GET /ping HTTP/1.1\r\n\r\n", 400)


def test_two_hosts(c):
    expect_error(c, b"GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)


def test_unknown_version(c):
    expect_error(c, b"GET /ping HTTP/2.0\r\nHost: t\r\n\r\n", 505)


def test_garbage(c):
    expect_error(c, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", 400)


def test_space_before_colon(c):
    expect_error(c, b"POST /ping HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400)


def test_error_names_the_place(c):
    got = expect_error(c, b"POST /ping HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400)
    body = json.loads(got[2])
    assert body["code"] == "bad_request", body
    # The request line is 21 bytes, "Host: t" 9, "Transfer-Encoding" 17: the space is at offset 47.
    assert "colon" in body["message"] and "at offset 47 " in body["message"], body


def test_obs_fold(c):
    expect_error(c, b"GET /ping HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n", 400)


def test_unsupported_transfer_coding(c):
    expect_error(c, b"POST /ping HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501)


def test_transfer_encoding_on_http10(c):
    expect_error(c, b"POST /ping HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)


def test_unknown_method(c):
    expect_error(c, b"BREW /ping HTTP/1.1\r\nHost: t\r\n\r\n", 501)


def test_bad_chunk_framing(c):
    expect_error(c, b"POST /ping HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhelloXX0\r\n\r\n", 400)


def test_unknown_expectation(c):
    expect_error(c, b"POST /ping HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: teapot\r\n\r\nhi", 417)


def test_expect_100_continue(c):
    body = b'{"student":"expect"}'
    with socket.create_connection((c.host, c.port), timeout=5) as s:
        s.sendall(b"POST /v1/courses/1/enrollments HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        s.sendall(body)
        final = b""
        while b"\r\n\r\n" not in final:
            final += s.recv(4096)
        assert final.startswith(b"HTTP/1.1 201 "), final


def test_head_has_length_no_body(c):
    # parse_responses would read 5 body bytes for HEAD: check the raw exchange instead.
    with socket.create_connection((c.host, c.port), timeout=5) as s:
        s.sendall(b"HEAD /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        raw = read_until_close(s)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"\r\nContent-Length: 5" in head, head
    assert rest == b"", "HEAD response carried a body: %r" % rest


def test_date_header(c):
    status, headers, _ = c.request("GET", "/ping")
    date = headers.get("date", "")
    assert status == 200 and date.endswith(" GMT") and len(date) == 29, date
    time.strptime(date, "%a, %d %b %Y %H:%M:%S GMT")


def test_pipelining_in_order(c):
    ids = [3, 1, 6, 2, 5, 4, 1, 3]
    data = b"".join(b"GET /v1/courses/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in ids)
    data += b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    responses, closed = exchange(c, data)
    assert len(responses) == len(ids) + 1, len(responses)
    for i, (status, _, body) in zip(ids, responses):
        assert status == 200 and (b'"id":%d,' % i) in body, (i, status, body)
    assert responses[-1][2] == b"pong\n" and closed


def test_pipelined_error_answers_owed_first(c):
    data = (b"GET /v1/courses/1 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /v1/courses/2 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /bad path HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
    responses, closed = exchange(c, data)
    assert [r[0] for r in responses] == [200, 200, 400], [r[0] for r in responses]
    assert closed, "nothing may be processed after a framing error"


def test_http10_close_and_keep_alive(c):
    responses, closed = exchange(c, b"GET /ping HTTP/1.0\r\n\r\n")
    assert responses[0][0] == 200 and closed
    with socket.create_connection((c.host, c.port), timeout=5) as s:
        s.sendall(b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        raw = b""
        while not raw.endswith(b"pong\n"):
            raw += s.recv(4096)
        assert b"\r\nConnection: keep-alive\r\n" in raw, raw
        s.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
        raw = s.recv(4096)
        assert raw.startswith(b"HTTP/1.1 200 "), raw


def test_slowloris_header_timeout(c):
    with socket.create_connection((c.host, c.port), timeout=10) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n")
        start = time.monotonic()
        for _ in range(3):          # a byte now and then must not extend the deadline
            time.sleep(0.4)
            try:
                s.sendall(b"X")
            except OSError:
                break
        raw = read_until_close(s)
        elapsed = time.monotonic() - start
    assert raw.startswith(b"HTTP/1.1 408 "), raw
    assert elapsed < 10, "header timeout of 1s took %.1fs" % elapsed
    healthy(c)


def test_body_timeout(c):
    responses, closed = exchange(c, b"POST /ping HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
                                 timeout=8)
    assert responses and responses[0][0] == 408 and closed, responses


def test_silent_connection_closed(c):
    with socket.create_connection((c.host, c.port), timeout=10) as s:
        start = time.monotonic()
        data = s.recv(4096)
        assert data == b"", "a connection that sent nothing got %r" % data
        assert time.monotonic() - start < 10


def test_idle_keep_alive_timeout(c):
    with socket.create_connection((c.host, c.port), timeout=10) as s:
        s.sendall(GET + b"\r\n")
        raw = b""
        while not raw.endswith(b"pong\n"):
            raw += s.recv(4096)
        start = time.monotonic()
        assert s.recv(4096) == b"", "idle connection must close silently"
        idle = time.monotonic() - start
    assert 1.0 < idle < 20, "idle timeout of 2s closed after %.1fs" % idle


def test_backpressure_large_pipeline(c):
    """A client that writes many requests before reading gets every response, in order."""
    n = 3000
    data = b"".join(b"GET /v1/courses HTTP/1.1\r\nHost: t\r\n\r\n" for _ in range(n - 1))
    data += b"GET /v1/courses HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    with socket.create_connection((c.host, c.port), timeout=30) as s:
        s.setblocking(True)
        sent = 0
        raw = bytearray()
        s.settimeout(0.2)
        # Send everything first as far as the kernel takes it; the server must stop reading
        # rather than buffer without bound, and resume as we drain.
        while sent < len(data):
            try:
                sent += s.send(data[sent:sent + 65536])
            except socket.timeout:
                try:
                    raw += s.recv(1 << 20)
                except socket.timeout:
                    pass
        s.settimeout(30)
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            raw += chunk
    responses = parse_responses(bytes(raw))
    assert len(responses) == n, "got %d of %d responses" % (len(responses), n)
    assert all(r[0] == 200 for r in responses)
    healthy(c)


def test_half_close_still_answered(c):
    """A client that sends its requests and shuts down its write side still gets every answer."""
    data = b"".join(b"GET /v1/courses/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in (1, 2, 3))
    with socket.create_connection((c.host, c.port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        raw = read_until_close(s)
    responses = parse_responses(raw)
    assert [r[0] for r in responses] == [200, 200, 200], responses
    assert all((b'"id":%d,' % i) in r[2] for i, r in zip((1, 2, 3), responses))


def test_not_found_and_method_not_allowed(c):
    status, _, body = c.request("GET", "/no/such/route")
    assert status == 404 and b'"code":"not_found"' in body, (status, body)
    status, headers, _ = c.request("DELETE", "/v1/courses/1")
    assert status == 405 and "GET" in headers.get("allow", ""), (status, headers)


TESTS = [
    test_uri_too_long, test_header_bytes_too_large, test_too_many_headers,
    test_body_too_large_content_length, test_body_too_large_chunked,
    test_content_length_with_transfer_encoding, test_conflicting_content_length,
    test_missing_host, test_two_hosts, test_unknown_version, test_garbage,
    test_space_before_colon, test_error_names_the_place, test_obs_fold, test_unsupported_transfer_coding,
    test_transfer_encoding_on_http10, test_unknown_method, test_bad_chunk_framing,
    test_unknown_expectation, test_expect_100_continue, test_head_has_length_no_body,
    test_date_header, test_pipelining_in_order, test_pipelined_error_answers_owed_first,
    test_http10_close_and_keep_alive, test_slowloris_header_timeout, test_body_timeout,
    test_silent_connection_closed, test_idle_keep_alive_timeout, test_backpressure_large_pipeline,
    test_half_close_still_answered, test_not_found_and_method_not_allowed,
]

def test_connection_limit(c):
    """Past server.max_connections (per process) a new connection is answered 503 with
    Retry-After and closed at once (issue 15: it was closed without a word); the ones already
    open keep working and a slot frees when one of them closes."""
    held = [socket.create_connection((c.host, c.port), timeout=5) for _ in range(2)]
    for s in held:
        s.sendall(GET + b"\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    with socket.create_connection((c.host, c.port), timeout=5) as extra:
        try:
            extra.sendall(GET + b"\r\n")
            got = read_until_close(extra)
        except ConnectionResetError:
            got = b""
        head = got.split(b"\r\n\r\n", 1)[0]
        assert head.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: 1" in head and \
            b"\r\nConnection: close" in head, "a connection past the limit: %r" % got[:200]
    held[0].sendall(GET + b"\r\n")
    assert held[0].recv(4096).startswith(b"HTTP/1.1 200 "), "held connections must keep working"
    held.pop().close()
    deadline = time.monotonic() + 5
    while True:                     # the freed slot is noticed once the close is processed
        status = None
        try:
            status, _, _ = c.request("GET", "/ping", timeout=2)
        except (ConnectionError, OSError, Exception):
            pass
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200, "a slot freed by a close must be usable again"
    for s in held:
        s.close()


if __name__ == "__main__":
    failed = 0
    with Coursed(args().coursed, args=LIMITS) as c:
        failed += run(TESTS, c, exit=False)
    with Coursed(args().coursed, args=["--set", "server.threads=1", "--set", "server.max_connections=2"]) as c:
        failed += run([test_connection_limit], c, exit=False)
    raise SystemExit(1 if failed else 0)
