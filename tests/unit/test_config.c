/*
 * test_config.c: the config loader's promises: every malformed file is
 * refused with the exact place (line, column, key) and a message that says
 * what was expected; valid files, environment variables and flags land in
 * their destinations with file < env < flag precedence; failed loads change
 * nothing; owned strings are freed (LSan checks); usage lists every key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "redline/config.h"

/* The schema every test uses; reset() restores the defaults. */
static char *listen_addr, *name, *endpoint;
static int64_t threads, attempts, pool;
static bool debug;
static uint64_t timeout_ms, max_body, max_header;
static double ratio;

static const rdl_cfg_key_t keys[] = {
    { "server.listen", RDL_CFG_ADDR, &listen_addr, 0, 0, NULL, "app listener", NULL },
    { "server.threads", RDL_CFG_INT, &threads, 0, 256, NULL, "I/O threads (0 = CPUs)", NULL },
    { "server.limits.timeout", RDL_CFG_DURATION, &timeout_ms, 1, 300000, NULL, "request timeout", NULL },
    { "server.limits.max_body", RDL_CFG_SIZE, &max_body, 0, 0, NULL, "largest request body", NULL },
    { "server.limits.max_header", RDL_CFG_SIZE, &max_header, 1024, 1 << 20, NULL, "largest header", NULL },
    { "debug", RDL_CFG_BOOL, &debug, 0, 0, NULL, "debug endpoints", NULL },
    { "name", RDL_CFG_STRING, &name, 0, 0, "APP_NAME", "service name", NULL },
    { "trace.ratio", RDL_CFG_DOUBLE, &ratio, 0, 1, NULL, "sampling ratio", NULL },
    { "trace.endpoint", RDL_CFG_STRING, &endpoint, 0, 0, NULL, "OTLP endpoint", NULL },
    { "retry.attempts", RDL_CFG_INT, &attempts, 0, 0, NULL, "attempts", NULL },
    { "db.pool", RDL_CFG_INT, &pool, 1, 64, NULL, "connections", NULL },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static void reset(void)
{
    listen_addr = "0.0.0.0:8080";       /* static literals: must never be freed */
    name = "coursed";
    endpoint = NULL;
    threads = 0;
    attempts = 3;
    pool = 4;
    debug = false;
    timeout_ms = 30000;
    max_body = 1 << 20;
    max_header = 8192;
    ratio = 0.5;
}

static int setup(void **state)
{
    rdl_config_t *cfg;

    reset();
    if (rdl_config_new(&cfg) != 0 || rdl_config_add(cfg, keys, NKEYS) != 0)
        return -1;
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    rdl_config_free(*state);
    return 0;
}

static int load(rdl_config_t *cfg, const char *yaml, rdl_error_t *err)
{
    return rdl_config_load_string(cfg, "test.yaml", yaml, strlen(yaml), err);
}

struct bad_case {
    const char *yaml;
    int line, column;
    const char *key;
    const char *msg;            /* a fragment the message must contain */
};

static const struct bad_case bad_cases[] = {
    /* unknown keys: a suggestion when one is close, else the valid names */
    { "server:\n  lisen: x\n", 2, 3, "server.lisen", "unknown key 'server.lisen'; did you mean 'server.listen'?" },
    { "sever:\n  listen: x\n", 1, 1, "sever", "did you mean 'server'?" },
    { "server.lisen: x", 1, 1, "server.lisen", "did you mean 'server.listen'?" },
    { "bogus: 1", 1, 1, "bogus", "valid top-level keys: server, debug, name, trace, retry, db" },
    { "server:\n  zzzzzz: 1", 2, 3, "server.zzzzzz", "valid keys in 'server': listen, threads, limits" },
    /* integers */
    { "server:\n  threads: 300", 2, 12, "server.threads", "expected an integer between 0 and 256, got '300'" },
    { "server:\n  threads: four", 2, 12, "server.threads", "got 'four'" },
    { "server:\n  threads: 4.0", 2, 12, "server.threads", "expected an integer between 0 and 256, got '4.0'" },
    { "server:\n  threads: 0x10", 2, 12, "server.threads", "got '0x10'" },
    { "retry:\n  attempts: 99999999999999999999", 2, 13, "retry.attempts", "expected an integer, got '99999999999999999999'" },
    { "db:\n  pool: 0", 2, 9, "db.pool", "expected an integer between 1 and 64, got '0'" },
    /* duplicates, at any level and in flow style */
    { "server:\n  threads: 4\n  threads: 5", 3, 3, "server.threads", "duplicate key 'server.threads' (first set at line 2, column 3)" },
    { "server:\n  listen: ':1'\nserver:\n  threads: 2", 3, 1, "server", "duplicate key 'server' (first set at line 1, column 1)" },
    { "{name: q, name: r}", 1, 11, "name", "duplicate key 'name' (first set at line 1, column 2)" },
    { "server:\n  limits: {timeout: 5s, timeout: 6s}", 2, 25, "server.limits.timeout", "first set at line 2, column 12" },
    /* booleans: YAML 1.2 core only */
    { "debug: yes", 1, 8, "debug", "expected true or false, got 'yes' (YAML 1.2 reads yes/no/on/off as strings)" },
    { "debug: on", 1, 8, "debug", "YAML 1.2 reads yes/no/on/off as strings" },
    { "debug: 1", 1, 8, "debug", "expected true or false, got '1'" },
    { "debug: tru", 1, 8, "debug", "got 'tru'" },
    /* durations and sizes */
    { "server:\n  limits:\n    timeout: fast", 3, 14, "server.limits.timeout", "expected a duration between 1ms and 5m (like 250ms, 30s or 5m), got 'fast'" },
    { "server:\n  limits:\n    timeout: 10m", 3, 14, "server.limits.timeout", "got '10m'" },
    { "server:\n  limits:\n    timeout: -1s", 3, 14, "server.limits.timeout", "got '-1s'" },
    { "server:\n  limits:\n    max_body: 10MB", 3, 15, "server.limits.max_body", "expected a size like 512, 16KiB or 1MiB, got '10MB'" },
    { "server: {limits: {max_header: 512}}", 1, 31, "server.limits.max_header", "expected a size between 1KiB and 1MiB" },
    /* addresses */
    { "server:\n  listen: 8080", 2, 11, "server.listen", "expected an address like host:port, [v6]:port or :port (port 0-65535), got '8080'" },
    { "server:\n  listen: ':70000'", 2, 11, "server.listen", "got ':70000'" },
    /* doubles */
    { "trace:\n  ratio: 2", 2, 10, "trace.ratio", "expected a number between 0 and 1, got '2'" },
    { "trace:\n  ratio: .nan", 2, 10, "trace.ratio", "got '.nan'" },
    { "trace: {ratio: ' 0.5'}", 1, 16, "trace.ratio", "got ' 0.5'" },
    /* shapes: section vs value, sequences, the root */
    { "server: 5", 1, 9, "server", "'server' is a section: expected a mapping of its keys (listen, threads, limits), got a scalar" },
    { "server:\n  listen: [a]", 2, 11, "server.listen", "got a sequence" },
    { "server:\n  listen:\n    host: x", 3, 5, "server.listen", "expected an address like host:port, [v6]:port or :port (port 0-65535), got a mapping" },
    { "- a\n- b", 1, 1, "", "expected a mapping of configuration keys at the top level, got a sequence" },
    { "just a string", 1, 1, "", "expected a mapping of configuration keys at the top level, got a scalar" },
    { "? [a]\n: 1", 1, 3, "", "expected a key name, got a sequence" },
    /* YAML features that have no place in configuration */
    { "name: &a x", 1, 7, "name", "anchors and aliases are not supported" },
    { "name: x\ntrace:\n  endpoint: *a", 3, 13, "trace.endpoint", "anchors and aliases are not supported" },
    { "name: !!str x", 1, 7, "name", "tags are not supported" },
    { "server: &s\n  threads: 1", 1, 9, "server", "anchors and aliases are not supported" },
    { "server: !!map\n  threads: 1", 1, 9, "server", "tags are not supported" },
    { "&r\nname: x", 1, 1, "", "anchors and aliases are not supported" },
    { "name: [*a]", 1, 7, "name", "got a sequence" },
    { "*a : 1", 1, 1, "", "anchors and aliases are not supported" },
    { "---\ndebug: true\n---\ndebug: false", 3, 1, "", "only one YAML document is allowed" },
    /* nulls and NULs */
    { "name:", 1, 1, "name", "expected a string, got no value (null); write '' for an empty string" },
    { "name: ~", 1, 7, "name", "got no value (null)" },
    { "server:\n  threads:\n", 2, 3, "server.threads", "expected an integer between 0 and 256, got no value (null)" },
    { "name: \"a\\0b\"", 1, 7, "name", "NUL byte" },
    /* text that is not printable UTF-8 never reaches the parser */
    { "%\xb3", 1, 2, "", "invalid YAML: byte 0xb3 is not valid UTF-8" },
    { "name: ok\n\xb3: 1", 2, 1, "", "byte 0xb3 is not valid UTF-8" },
    { "name: \xc3\xa9\xed\xa0\x80", 1, 8, "", "byte 0xed is not valid UTF-8" },
    { "name: a\x01", 1, 8, "", "control character U+0001 is not allowed" },
    { "name: a\r\nx\x7f", 2, 2, "", "control character U+007F" },
    /* found by fuzz_config: lone CRs mixed with CRLF in a quoted scalar leaked in libfyaml */
    { "server: {listen: \"a\r\n\r\r\r\n\r\r\n \"}", 2, 1, "", "a carriage return must be followed by a line feed" },
    { "name: a\rb", 1, 8, "", "a carriage return must be followed by a line feed" },
    { "name: a\r", 1, 8, "", "a carriage return must be followed by a line feed" },
    /* syntax errors: the parser's position and message */
    { "name: \"abc", 1, 8, "", "invalid YAML: double-quoted scalar without closing quote" },
    { "server:\n\tlisten: ':1'", 2, 1, "", "invalid YAML: tab characters are not allowed" },
    { "name: x\t# comment", 1, 8, "", "tab characters are not allowed" },
    { "? a:\t: b", 1, 5, "", "tab characters are not allowed" },       /* crashed libfyaml */
    { "server:\n  listen: ':1'\n threads: 2", 3, 2, "", "invalid YAML: invalid indentation in mapping" },
};

static void test_bad_cases(void **state)
{
    rdl_config_t *cfg = *state;
    size_t i;

    assert_true(sizeof(bad_cases) / sizeof(bad_cases[0]) >= 30);
    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        rdl_error_t err;
        int rc = load(cfg, c->yaml, &err);

        if (rc != RDL_EINVAL || err.code != RDL_EINVAL || err.line != c->line ||
            err.column != c->column || strcmp(err.key, c->key) != 0 ||
            strstr(err.msg, c->msg) == NULL || strcmp(err.file, "test.yaml") != 0)
            fail_msg("case %zu (%s): rc %d, got %d:%d key '%s' msg '%s'; want %d:%d key '%s' msg '%s'",
                     i, c->yaml, rc, err.line, err.column, err.key, err.msg, c->line, c->column,
                     c->key, c->msg);
    }
    /* nothing of any failed load was applied */
    assert_string_equal(name, "coursed");
    assert_int_equal(threads, 0);
    assert_false(debug);
}

static void test_valid_nested(void **state)
{
    rdl_config_t *cfg = *state;
    rdl_error_t err;
    const char *yaml =
        "# service configuration\n"
        "server:\n"
        "  listen: \"[::1]:9000\"\n"
        "  threads: 4\n"
        "  limits:\n"
        "    timeout: 1m30s\n"
        "    max_body: 16KiB\n"
        "    max_header: 1MiB\n"
        "debug: true\n"
        "name: 'course service'\n"
        "trace: {ratio: 0.25, endpoint: \"http://otel:4318\"}\n"
        "retry:\n"
        "  attempts: -2\n"
        "db.pool: 64\n";

    assert_int_equal(load(cfg, yaml, &err), 0);
    assert_string_equal(listen_addr, "[::1]:9000");
    assert_int_equal(threads, 4);
    assert_int_equal(timeout_ms, 90000);
    assert_int_equal(max_body, 16384);
    assert_int_equal(max_header, 1 << 20);
    assert_true(debug);
    assert_string_equal(name, "course service");
    assert_true(ratio == 0.25);
    assert_string_equal(endpoint, "http://otel:4318");
    assert_int_equal(attempts, -2);
    assert_int_equal(pool, 64);

    /* a second load replaces strings (the first ones are freed: LSan) */
    assert_int_equal(load(cfg, "name: second\nserver: {listen: ':1'}", &err), 0);
    assert_string_equal(name, "second");
    assert_string_equal(listen_addr, ":1");
    assert_int_equal(threads, 4);       /* untouched keys keep their values */
}

static void test_valid_empty(void **state)
{
    static const char *const empties[] = {
        "", "# only a comment\n", "---\n", "~", "---\n...\n", "server:\n", "server:\n  limits:\n",
        "{}", "server: {}",
    };
    rdl_config_t *cfg = *state;
    rdl_error_t err;
    size_t i;

    for (i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        if (load(cfg, empties[i], &err) != 0)
            fail_msg("'%s': %s", empties[i], err.msg);
    }
    assert_string_equal(name, "coursed");
    assert_int_equal(rdl_config_load_string(cfg, "n", NULL, 0, &err), 0);
}

static void test_failed_load_changes_nothing(void **state)
{
    rdl_config_t *cfg = *state;
    rdl_error_t err;

    assert_int_equal(load(cfg, "name: changed\nserver:\n  threads: 8\n  listen: nope\n", &err),
                     RDL_EINVAL);
    assert_int_equal(err.line, 4);
    assert_string_equal(name, "coursed");
    assert_int_equal(threads, 0);
}

static void test_quoted_values(void **state)
{
    static const struct { const char *yaml, *want; } cases[] = {
        { "name: 'it''s'", "it's" },
        { "name: ''", "" },       /* a run of '' escapes (libfyaml bug) */
        { "name: 'a\n  b  \n\n  c'", "a b\nc" },  /* folding: one break -> space */
        { "name: ' padded '", " padded " },
        { "name: \"tab\\there \\u00e9\"", "tab\there \xc3\xa9" },
        { "name: ''", "" },
        { "name: plain words here", "plain words here" },
        { "name: |\n  line one\n  line two\n", "line one\nline two\n" },
        { "'name': 'x'", "x" },
        /* CRLF line ends (files written on Windows) read as LF ones */
        { "name: \"a\r\n  b\"\r\n", "a b" },
        { "name: 'a\r\n\r\n  c'\r\n", "a\nc" },
        { "name: |\r\n  one\r\n  two\r\n", "one\ntwo\n" },
    };
    rdl_config_t *cfg = *state;
    rdl_error_t err;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (load(cfg, cases[i].yaml, &err) != 0)
            fail_msg("case %zu: %s", i, err.msg);
        if (strcmp(name, cases[i].want) != 0)
            fail_msg("case %zu: got '%s' want '%s'", i, name, cases[i].want);
    }
}

static void test_file(void **state)
{
    rdl_config_t *cfg = *state;
    char path[] = "/tmp/rdl_test_config_XXXXXX";
    const char *text = "server:\n  threads: 12\n  limits:\n    timeout: soon\n";
    rdl_error_t err;
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(rdl_config_load_file(cfg, path, &err), RDL_EINVAL);
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, 4);
    assert_int_equal(err.column, 14);
    assert_string_equal(err.key, "server.limits.timeout");

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, 22), 22);
    close(fd);
    assert_int_equal(rdl_config_load_file(cfg, path, &err), 0);
    assert_int_equal(threads, 12);
    unlink(path);

    assert_int_equal(rdl_config_load_file(cfg, "/nonexistent/redline.yaml", &err), RDL_ENOENT);
    assert_string_equal(err.file, "/nonexistent/redline.yaml");
    assert_non_null(strstr(err.msg, "No such file"));
    assert_int_equal(rdl_config_load_file(cfg, "/", &err), RDL_EIO);
    assert_int_equal(rdl_config_load_file(cfg, "/nonexistent", NULL), RDL_ENOENT);
}

static void test_env_and_precedence(void **state)
{
    rdl_config_t *cfg = *state;
    rdl_error_t err;

    assert_int_equal(load(cfg, "server:\n  threads: 2\n  listen: ':81'\nname: fromfile\n", &err), 0);
    setenv("REDLINE_SERVER_THREADS", "8", 1);
    setenv("APP_NAME", "fromenv", 1);               /* the key's own variable */
    setenv("REDLINE_SERVER_LIMITS_TIMEOUT", "250ms", 1);
    setenv("REDLINE_NAME", "ignored", 1);           /* name has env APP_NAME instead */
    assert_int_equal(rdl_config_apply_env(cfg, &err), 0);
    assert_int_equal(threads, 8);
    assert_string_equal(name, "fromenv");
    assert_int_equal(timeout_ms, 250);
    assert_string_equal(listen_addr, ":81");        /* no variable: the file's value stays */

    assert_int_equal(rdl_config_set(cfg, "server.threads", "16", &err), 0);
    assert_int_equal(threads, 16);
    assert_int_equal(rdl_config_set(cfg, "name", "fromflag", &err), 0);
    assert_string_equal(name, "fromflag");

    /* a bad variable names itself and changes nothing */
    setenv("REDLINE_DEBUG", "yes", 1);
    setenv("REDLINE_SERVER_THREADS", "9", 1);
    assert_int_equal(rdl_config_apply_env(cfg, &err), RDL_EINVAL);
    assert_string_equal(err.key, "REDLINE_DEBUG");
    assert_int_equal(err.line, 0);
    assert_non_null(strstr(err.msg, "environment variable REDLINE_DEBUG: expected true or false, got 'yes'"));
    assert_int_equal(threads, 16);
    assert_string_equal(name, "fromflag");
    unsetenv("REDLINE_DEBUG");
    setenv("REDLINE_SERVER_LISTEN", "nohost", 1);
    assert_int_equal(rdl_config_apply_env(cfg, &err), RDL_EINVAL);
    assert_string_equal(err.key, "REDLINE_SERVER_LISTEN");
    assert_non_null(strstr(err.msg, "environment variable REDLINE_SERVER_LISTEN: expected an address"));

    unsetenv("REDLINE_SERVER_THREADS");
    unsetenv("APP_NAME");
    unsetenv("REDLINE_SERVER_LIMITS_TIMEOUT");
    unsetenv("REDLINE_NAME");
    unsetenv("REDLINE_SERVER_LISTEN");
}

static void test_set(void **state)
{
    rdl_config_t *cfg = *state;
    rdl_error_t err;

    assert_int_equal(rdl_config_set(cfg, "server.limits.max_body", "2MiB", &err), 0);
    assert_int_equal(max_body, 2 << 20);
    assert_int_equal(rdl_config_set(cfg, "debug", "TRUE", &err), 0);
    assert_true(debug);
    assert_int_equal(rdl_config_set(cfg, "trace.ratio", "1e-1", &err), 0);
    assert_true(ratio > 0.09 && ratio < 0.11);
    assert_int_equal(rdl_config_set(cfg, "trace.endpoint", "", &err), 0);
    assert_string_equal(endpoint, "");

    assert_int_equal(rdl_config_set(cfg, "server.threds", "2", &err), RDL_EINVAL);
    assert_string_equal(err.key, "server.threds");
    assert_non_null(strstr(err.msg, "did you mean 'server.threads'?"));
    assert_int_equal(rdl_config_set(cfg, "server", "2", &err), RDL_EINVAL);
    assert_int_equal(rdl_config_set(cfg, "db.pool", "65", &err), RDL_EINVAL);
    assert_string_equal(err.key, "db.pool");
    assert_string_equal(err.msg, "expected an integer between 1 and 64, got '65'");
    assert_int_equal(pool, 4);
    assert_int_equal(rdl_config_set(cfg, "trace.ratio", "inf", &err), RDL_EINVAL);
    assert_int_equal(rdl_config_set(cfg, "trace.ratio", "0.5x", &err), RDL_EINVAL);
    assert_int_equal(rdl_config_set(cfg, "retry.attempts", "-9223372036854775808", &err), 0);
    assert_int_equal(attempts, INT64_MIN);
    assert_int_equal(rdl_config_set(cfg, "retry.attempts", "9223372036854775808", &err), RDL_EINVAL);
    assert_int_equal(rdl_config_set(cfg, "retry.attempts", "+7", &err), 0);
    assert_int_equal(attempts, 7);
    assert_int_equal(rdl_config_set(cfg, "retry.attempts", "", &err), RDL_EINVAL);
    assert_int_equal(rdl_config_set(cfg, "name", NULL, &err), RDL_EINVAL);
}

static void test_usage(void **state)
{
    rdl_config_t *cfg = *state;
    char *text = NULL;
    size_t len = 0, i;
    FILE *out = open_memstream(&text, &len);

    assert_non_null(out);
    assert_int_equal(rdl_config_set(cfg, "server.limits.timeout", "5m", NULL), 0);
    rdl_config_usage(cfg, out);
    fclose(out);
    for (i = 0; i < NKEYS; i++) {
        assert_non_null(strstr(text, keys[i].path));
        assert_non_null(strstr(text, keys[i].help));
    }
    assert_non_null(strstr(text, "REDLINE_SERVER_LIMITS_MAX_HEADER"));
    assert_non_null(strstr(text, "APP_NAME"));
    assert_non_null(strstr(text, "duration  5m"));
    assert_non_null(strstr(text, "\"coursed\""));
    assert_non_null(strstr(text, "(unset)"));
    free(text);
}

static void test_add(void **state)
{
    static int64_t a, b;
    static const rdl_cfg_key_t dup[] = { { "server.threads", RDL_CFG_INT, &a, 0, 0, NULL, "", NULL } };
    static const rdl_cfg_key_t leaf_over_section[] = { { "server", RDL_CFG_INT, &a, 0, 0, NULL, "", NULL } };
    static const rdl_cfg_key_t section_over_leaf[] = { { "debug.level", RDL_CFG_INT, &a, 0, 0, NULL, "", NULL } };
    static const rdl_cfg_key_t bad_path[] = { { "a..b", RDL_CFG_INT, &a, 0, 0, NULL, "", NULL } };
    static const rdl_cfg_key_t bad_bounds[] = { { "x", RDL_CFG_INT, &a, 5, 1, NULL, "", NULL } };
    static const rdl_cfg_key_t no_dst[] = { { "x", RDL_CFG_INT, NULL, 0, 0, NULL, "", NULL } };
    static const rdl_cfg_key_t half_bad[] = {
        { "extra.one", RDL_CFG_INT, &a, 0, 0, NULL, "", NULL },
        { "extra.one", RDL_CFG_INT, &b, 0, 0, NULL, "", NULL },
    };
    rdl_config_t *cfg = *state;
    rdl_error_t err;

    assert_int_equal(rdl_config_add(cfg, dup, 1), RDL_EEXIST);
    assert_int_equal(rdl_config_add(cfg, leaf_over_section, 1), RDL_EINVAL);
    assert_int_equal(rdl_config_add(cfg, section_over_leaf, 1), RDL_EINVAL);
    assert_int_equal(rdl_config_add(cfg, bad_path, 1), RDL_EINVAL);
    assert_int_equal(rdl_config_add(cfg, bad_bounds, 1), RDL_EINVAL);
    assert_int_equal(rdl_config_add(cfg, no_dst, 1), RDL_EINVAL);
    assert_int_equal(rdl_config_add(cfg, half_bad, 2), RDL_EEXIST);
    /* the failed batch added nothing */
    assert_int_equal(rdl_config_set(cfg, "extra.one", "1", &err), RDL_EINVAL);
    assert_int_equal(rdl_config_add(cfg, half_bad, 1), 0);
    assert_int_equal(rdl_config_set(cfg, "extra.one", "1", &err), 0);
    assert_int_equal(a, 1);
    assert_int_equal(rdl_config_add(cfg, NULL, 0), 0);
    rdl_config_free(NULL);
}

/* An ENUM key: words matched ignoring case, stored as their index, listed when refused. */
static void test_enum(void **state)
{
    static const char *const levels[] = { "debug", "info", "warn", "error", NULL };
    static int level = 1;
    static int64_t other;
    static const rdl_cfg_key_t lk[] = {
        { "log.level", RDL_CFG_ENUM, &level, 0, 0, NULL, "minimum level", levels } };
    static const rdl_cfg_key_t no_choices[] = { { "x.e", RDL_CFG_ENUM, &level, 0, 0, NULL, "", NULL } };
    static const char *const none[] = { NULL };
    static const rdl_cfg_key_t empty[] = { { "x.f", RDL_CFG_ENUM, &level, 0, 0, NULL, "", none } };
    static const rdl_cfg_key_t choices_on_int[] = {
        { "x.g", RDL_CFG_INT, &other, 0, 0, NULL, "", levels } };
    rdl_config_t *cfg = *state;
    rdl_error_t err;
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(rdl_config_add(cfg, no_choices, 1), RDL_EINVAL);
    assert_int_equal(rdl_config_add(cfg, empty, 1), RDL_EINVAL);
    assert_int_equal(rdl_config_add(cfg, choices_on_int, 1), RDL_EINVAL);
    assert_int_equal(rdl_config_add(cfg, lk, 1), 0);
    const char *yaml = "log:\n  level: WARN\n";
    assert_int_equal(rdl_config_load_string(cfg, "t.yaml", yaml, strlen(yaml), &err), 0);
    assert_int_equal(level, 2);
    yaml = "log:\n  level: loud\n";
    assert_int_equal(rdl_config_load_string(cfg, "t.yaml", yaml, strlen(yaml), &err), RDL_EINVAL);
    assert_int_equal(level, 2);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 10);
    assert_string_equal(err.key, "log.level");
    assert_non_null(strstr(err.msg, "expected one of debug, info, warn, error, got 'loud'"));
    assert_int_equal(rdl_config_set(cfg, "log.level", "debug", &err), 0);
    assert_int_equal(level, 0);
    assert_int_equal(rdl_config_set(cfg, "log.level", "", &err), RDL_EINVAL);
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    rdl_config_usage(cfg, out);
    fclose(out);
    assert_non_null(strstr(text, "enum"));
    assert_non_null(strstr(text, "debug  "));
    free(text);
}

/* Secrets print as <redacted> in --help once set; everything else as it is. */
static void test_usage_redacts(void **state)
{
    static char *token, *pass, *hdrs, *auth, *secret, *plain, *unset, *empty;
    static int64_t max_headers = 100;
    static const rdl_cfg_key_t sk[] = {
        { "admin.token_file", RDL_CFG_STRING, &token, 0, 0, NULL, "token file", NULL },
        { "db.Password", RDL_CFG_STRING, &pass, 0, 0, NULL, "db password", NULL },
        { "tracing.headers", RDL_CFG_STRING, &hdrs, 0, 0, NULL, "OTLP headers", NULL },
        { "tracing.otlp_headers", RDL_CFG_STRING, &auth, 0, 0, NULL, "OTLP headers", NULL },
        { "hook.client_secret", RDL_CFG_STRING, &secret, 0, 0, NULL, "secret", NULL },
        { "hook.authorization", RDL_CFG_STRING, &unset, 0, 0, NULL, "auth", NULL },
        { "hook.api_token", RDL_CFG_STRING, &empty, 0, 0, NULL, "empty token", NULL },
        { "token_dir.name", RDL_CFG_STRING, &plain, 0, 0, NULL, "only the last segment counts", NULL },
        { "limits.max_headers", RDL_CFG_INT, &max_headers, 0, 0, NULL, "not a string", NULL },
    };
    static const struct { const char *path; bool secret; } paths[] = {
        { "admin.token_file", true }, { "x.AUTHORIZATION", true }, { "tracing.headers", true },
        { "a.b.my_secret_key", true }, { "password", true }, { "token.name", false },
        { "routes.bypass_header", false }, { "server.listen", false }, { "", false },
    };
    rdl_config_t *cfg = *state;
    char *text = NULL;
    size_t len = 0;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (rdl_config_key_is_secret(paths[i].path) != paths[i].secret)
            fail_msg("%s: secret should be %d", paths[i].path, paths[i].secret);
    assert_false(rdl_config_key_is_secret(NULL));
    token = "s3cr3t-one";
    pass = "s3cr3t-two";
    hdrs = "authorization=Bearer s3cr3t-three";
    auth = "x-api-key=s3cr3t-four";
    secret = "s3cr3t-five";
    unset = NULL;
    empty = "";
    plain = "visible-name";
    assert_int_equal(rdl_config_add(cfg, sk, sizeof(sk) / sizeof(sk[0])), 0);
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    rdl_config_usage(cfg, out);
    fclose(out);
    assert_null(strstr(text, "s3cr3t"));
    assert_non_null(strstr(text, "\"visible-name\""));
    assert_non_null(strstr(text, "\"\""));
    assert_non_null(strstr(text, "(unset)"));
    size_t redacted = 0;
    for (const char *p = text; (p = strstr(p, "<redacted>")) != NULL; p++)
        redacted++;
    assert_int_equal(redacted, 5);
    free(text);
}

/* Unsets every REDLINE_* variable the test runner may have, so that only the test's count. */
static void clear_redline_env(void)
{
    extern char **environ;
    char var[256];

    for (;;) {
        char **e = environ;
        while (e != NULL && *e != NULL && strncmp(*e, "REDLINE_", 8) != 0)
            e++;
        if (e == NULL || *e == NULL)
            return;
        size_t n = strcspn(*e, "=");
        snprintf(var, sizeof(var), "%.*s", (int)(n < sizeof(var) ? n : sizeof(var) - 1), *e);
        unsetenv(var);
    }
}

/*
 * Unknown REDLINE_* variables are refused (issue 15: they used to start the
 * service without a word): the variable named, the closest declared one
 * suggested; the keys' own variables and the program's allowed ones pass.
 */
static void test_check_env(void **state)
{
    static const char *const own[] = { "REDLINE_CONFIG", NULL };
    static const struct { const char *var; const char *msg; } bad[] = {
        { "REDLINE_SERVER_THREDS", "unknown environment variable REDLINE_SERVER_THREDS; did you mean REDLINE_SERVER_THREADS?" },
        { "REDLINE_DEBGU", "unknown environment variable REDLINE_DEBGU; did you mean REDLINE_DEBUG?" },
        { "REDLINE_CONFIGG", "unknown environment variable REDLINE_CONFIGG; did you mean REDLINE_CONFIG?" },
        { "REDLINE_NAME", "unknown environment variable REDLINE_NAME: no configuration key reads it" },
        { "REDLINE_", "unknown environment variable REDLINE_: no configuration key reads it" },
        { "REDLINE_COMPLETELY_ELSE", "unknown environment variable REDLINE_COMPLETELY_ELSE: no configuration key reads it" },
    };
    rdl_config_t *cfg = *state;
    rdl_error_t err;

    clear_redline_env();
    assert_int_equal(rdl_config_check_env(NULL, own, &err), RDL_EINVAL);
    setenv("REDLINE_SERVER_THREADS", "8", 1);       /* a key's default-named variable */
    setenv("APP_NAME", "x", 1);                     /* a key's own variable */
    setenv("REDLINE_CONFIG", "x.yaml", 1);          /* the program's */
    setenv("OTEL_SERVICE_NAME", "x", 1);            /* not REDLINE_* */
    setenv("REDLINE_TRACE_ENDPOINT", "", 1);        /* set, even empty */
    assert_int_equal(rdl_config_check_env(cfg, own, &err), 0);
    assert_int_equal(rdl_config_check_env(cfg, own, NULL), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv(bad[i].var, "1", 1);
        if (rdl_config_check_env(cfg, own, &err) != RDL_EINVAL)
            fail_msg("%s: accepted", bad[i].var);
        if (strcmp(err.key, bad[i].var) != 0 || strstr(err.msg, bad[i].msg) == NULL || err.line != 0)
            fail_msg("%s: key '%s' msg '%s'", bad[i].var, err.key, err.msg);
        unsetenv(bad[i].var);
    }
    /* without the allowed list, the program's own variable is unknown too */
    assert_int_equal(rdl_config_check_env(cfg, NULL, &err), RDL_EINVAL);
    assert_string_equal(err.key, "REDLINE_CONFIG");
    unsetenv("REDLINE_SERVER_THREADS");
    unsetenv("APP_NAME");
    unsetenv("REDLINE_CONFIG");
    unsetenv("OTEL_SERVICE_NAME");
    unsetenv("REDLINE_TRACE_ENDPOINT");
    assert_int_equal(rdl_config_check_env(cfg, NULL, &err), 0);
}

/*
 * An ADDR_OPT key (a listener that may be off, server.admin_listen): an
 * address or '', refused at load with its position (issue 15: a bad admin
 * address used to pass the loader and fail when the server started).
 */
static void test_addr_opt(void **state)
{
    static char *admin;
    static const rdl_cfg_key_t ak[] = {
        { "server.admin_listen", RDL_CFG_ADDR_OPT, &admin, 0, 0, NULL, "admin listener", NULL } };
    static const struct { const char *yaml; int col; } bad[] = {
        { "server:\n  admin_listen: garbage\n", 17 },
        { "server:\n  admin_listen: 'host:'\n", 17 },
        { "server:\n  admin_listen: ':70000'\n", 17 },
        { "server:\n  admin_listen: 9090\n", 17 },
        { "server:\n  admin_listen:\n", 3 },
    };
    rdl_config_t *cfg = *state;
    rdl_error_t err;
    char *text = NULL;
    size_t len = 0;

    admin = "127.0.0.1:9090";
    assert_int_equal(rdl_config_add(cfg, ak, 1), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (load(cfg, bad[i].yaml, &err) != RDL_EINVAL)
            fail_msg("case %zu: accepted", i);
        if (err.line != 2 || err.column != bad[i].col || strcmp(err.key, "server.admin_listen") != 0 ||
            strstr(err.msg, "or '' for none") == NULL)
            fail_msg("case %zu: %d:%d %s: %s", i, err.line, err.column, err.key, err.msg);
        assert_string_equal(admin, "127.0.0.1:9090");
    }
    assert_int_equal(rdl_config_set(cfg, "server.admin_listen", "garbage", &err), RDL_EINVAL);
    assert_string_equal(err.key, "server.admin_listen");
    assert_int_equal(load(cfg, "server:\n  admin_listen: '[::1]:0'\n", &err), 0);
    assert_string_equal(admin, "[::1]:0");
    assert_int_equal(rdl_config_set(cfg, "server.admin_listen", "", &err), 0);
    assert_string_equal(admin, "");
    assert_int_equal(load(cfg, "server:\n  admin_listen: ''\n", &err), 0);
    assert_string_equal(admin, "");
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    rdl_config_usage(cfg, out);
    fclose(out);
    assert_non_null(strstr(text, "address?"));
    free(text);
}

/* --help prints a URL's user:password redacted, whatever the key's name. */
static void test_usage_redacts_url_userinfo(void **state)
{
    rdl_config_t *cfg = *state;
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(rdl_config_set(cfg, "trace.endpoint", "http://user:t0ken@collector:4318/v1/traces",
                                    NULL), 0);
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    rdl_config_usage(cfg, out);
    fclose(out);
    assert_null(strstr(text, "t0ken"));
    assert_null(strstr(text, "user:"));
    assert_non_null(strstr(text, "\"http://<redacted>@collector:4318/v1/traces\""));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_cases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_valid_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_valid_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_load_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quoted_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_and_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_redacts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addr_opt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_redacts_url_userinfo, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
