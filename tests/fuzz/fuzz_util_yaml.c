/*
 * fuzz_util_yaml.c: the shared YAML reader (util/yaml.h) on arbitrary bytes:
 * every document's root read as a mapping of known fields with each typed
 * reader (string, integer, number, boolean, duration, size, enum, list,
 * nested mapping), and every scalar's text through the token helpers.
 * Invariants: nothing crashes or leaks; a refusal has a code, a message and a
 * sane position; an accepted value is within the bounds asked for.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/yaml.h"

static int read_doc(rdl__yaml_t *y, struct fy_node *root, void *arg)
{
    static const char *const fields[] = { "s", "i", "n", "b", "d", "z", "e", "l", "m", NULL };
    static const char *const words[] = { "count", "time", NULL };
    struct fy_node *v;
    long long i;
    double n;
    bool b;
    uint64_t d, z;
    int e;
    const char **l;
    size_t nl;
    (void)arg;
    if (rdl__yaml_is_null(root))
        return 0;
    if (rdl__yaml_check_map(y, root, "", "a document", fields, NULL))
        return y->err->code;
    if ((v = rdl__yaml_get(root, "s")) && !rdl__yaml_string(y, v, "s", NULL))
        return y->err->code;
    if ((v = rdl__yaml_get(root, "i"))) {
        if (rdl__yaml_int(y, v, "i", 0, 1000, &i))
            return y->err->code;
        if (i < 0 || i > 1000)
            abort();
    }
    if ((v = rdl__yaml_get(root, "n"))) {
        if (rdl__yaml_number(y, v, "n", 0, 1, &n))
            return y->err->code;
        if (!(n >= 0 && n <= 1))
            abort();
    }
    if ((v = rdl__yaml_get(root, "b")) && rdl__yaml_bool(y, v, "b", &b))
        return y->err->code;
    if ((v = rdl__yaml_get(root, "d"))) {
        if (rdl__yaml_duration(y, v, "d", 1, 3600000, &d))
            return y->err->code;
        if (d < 1 || d > 3600000)
            abort();
    }
    if ((v = rdl__yaml_get(root, "z"))) {
        if (rdl__yaml_size(y, v, "z", 0, 1u << 30, &z))
            return y->err->code;
        if (z > 1u << 30)
            abort();
    }
    if ((v = rdl__yaml_get(root, "e"))) {
        if (rdl__yaml_enum(y, v, "e", words, &e))
            return y->err->code;
        if (e < 0 || e > 1)
            abort();
    }
    if ((v = rdl__yaml_get(root, "l")) && rdl__yaml_string_list(y, v, "l", &l, &nl))
        return y->err->code;
    if ((v = rdl__yaml_get(root, "m"))) {
        static const char *const mfields[] = { "x", NULL };
        if (rdl__yaml_check_map(y, v, "m", "m", mfields, NULL))
            return y->err->code;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    rdl_arena_t arena;
    rdl_error_t err;
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    rdl_error_clear(&err);
    rdl_arena_init(&arena, 4096);
    rdl__yaml_t y = { .err = &err, .input = text, .input_len = size, .arena = &arena,
                      .what = "fuzzing" };
    int rc = rdl__yaml_each_document(&y, read_doc, NULL);
    if (rc != 0 && (err.code != rc || !err.msg[0] || err.line < 0 || err.column < 0 ||
                    memchr(err.msg, '\0', sizeof(err.msg)) == NULL))
        abort();
    rdl_arena_close(&arena);
    free(text);
    return 0;
}
