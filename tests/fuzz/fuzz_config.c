/*
 * fuzz_config.c: arbitrary bytes as a configuration file, against a schema
 * with every key type. The loader must never crash or leak, and every refusal
 * must come with a message and a sane position. The same bytes are also tried
 * as a command-line value for one of the keys, which drives the typed parsers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redline/config.h"

static void check_error(int rc, const rdl_error_t *err)
{
    if (rc == 0)
        return;
    if (err->code != rc || err->msg[0] == '\0' || err->line < 0 || err->column < 0 ||
        memchr(err->msg, '\0', sizeof(err->msg)) == NULL)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *listen = ":8080", *admin = "", *name = NULL;
    int64_t threads = 0, offset = 0;
    bool debug = false;
    uint64_t timeout = 1000, body = 1024;
    double ratio = 0.5, weight = 0;
    const rdl_cfg_key_t keys[] = {
        { "server.listen", RDL_CFG_ADDR, &listen, 0, 0, NULL, "listener", NULL },
        { "server.admin_listen", RDL_CFG_ADDR_OPT, &admin, 0, 0, NULL, "admin listener", NULL },
        { "server.threads", RDL_CFG_INT, &threads, 0, 256, NULL, "threads", NULL },
        { "server.limits.timeout", RDL_CFG_DURATION, &timeout, 1, 60000, NULL, "timeout", NULL },
        { "server.limits.body", RDL_CFG_SIZE, &body, 0, 0, NULL, "body", NULL },
        { "debug", RDL_CFG_BOOL, &debug, 0, 0, NULL, "debug", NULL },
        { "name", RDL_CFG_STRING, &name, 0, 0, NULL, "name", NULL },
        { "trace.ratio", RDL_CFG_DOUBLE, &ratio, 0, 1, NULL, "ratio", NULL },
        { "trace.weight", RDL_CFG_DOUBLE, &weight, 0, 0, NULL, "weight", NULL },
        { "offset", RDL_CFG_INT, &offset, 0, 0, NULL, "offset", NULL },
    };
    const size_t nkeys = sizeof(keys) / sizeof(keys[0]);
    rdl_config_t *cfg;
    rdl_error_t err;
    char *text;
    int rc;

    if (rdl_config_new(&cfg) != 0 || rdl_config_add(cfg, keys, nkeys) != 0)
        __builtin_trap();
    rc = rdl_config_load_string(cfg, "fuzz.yaml", (const char *)data, size, &err);
    check_error(rc, &err);
    if (rc == 0 && (listen == NULL || threads < 0 || threads > 256 || timeout < 1 || timeout > 60000 ||
                    ratio < 0 || ratio > 1))
        __builtin_trap();

    if (size > 0 && size < 512) {
        text = malloc(size);
        if (text == NULL)
            __builtin_trap();
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        rc = rdl_config_set(cfg, keys[data[0] % nkeys].path, text, &err);
        check_error(rc, &err);
        free(text);
    }
    rdl_config_free(cfg);
    return 0;
}
