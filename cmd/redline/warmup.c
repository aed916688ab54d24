/*
 * warmup.c: `redline warmup --config FILE`, for a Kubernetes init container.
 * It declares every upstream the file names under `upstreams:`, loads that
 * section with the same keys and checks as the service, then resolves each
 * configured upstream and opens its warm connections once. One JSON line per
 * check on stdout; exit 0 when all pass, 1 when one fails, 2 on bad usage or
 * configuration. Other sections of the file (server.*, the service's own)
 * belong to the service and are not read here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redline/client.h"
#include "cli.h"

#define EXIT_USAGE 2

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "redline warmup: %s%s%s\n"
                    "usage: redline warmup --config FILE [--upstream NAME=URL]...\n",
            msg, arg ? " " : "", arg ? arg : "");
    return EXIT_USAGE;
}

static int config_error(const rdl_error_t *err)
{
    char text[1024];
    fprintf(stderr, "redline warmup: %s\n", rdl_error_format(err, text, sizeof(text)));
    return EXIT_USAGE;
}

int cli_warmup(int argc, char **argv)
{
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
        else if (strcmp(argv[i], "--upstream") == 0 && i + 1 < argc)
            i++;
        else if (strncmp(argv[i], "--upstream=", 11) != 0)
            return usage_error("unknown argument", argv[i]);
    }
    if (!file)
        return usage_error("--config FILE is required", NULL);

    rdl_error_t err;
    rdl_error_clear(&err);
    char names[RDL_UPSTREAMS_MAX][RDL_UPSTREAM_NAME_MAX];
    int n = rdl_upstreams_names_in_file(file, names, RDL_UPSTREAMS_MAX, &err);
    if (n < 0)
        return config_error(&err);
    rdl_config_t *cfg = NULL;
    rdl_upstreams_t *ups = NULL;
    int rc = rdl_config_new(&cfg);
    if (!rc)
        rc = rdl_upstreams_new(&ups);
    for (int i = 0; rc == 0 && i < n; i++)
        if ((rc = rdl_upstreams_declare(ups, cfg, names[i], RDL_UPSTREAM_STRONG)) != 0)
            rdl_error_set(&err, rc, 0, 0, "upstreams", "cannot declare upstream '%s': %s",
                          names[i], rdl_strerror(rc));
    if (!rc)
        rc = rdl_upstreams_load_file(cfg, file, &err);
    for (int i = 1; rc == 0 && i < argc; i++) {
        const char *v = strcmp(argv[i], "--upstream") == 0 ? argv[++i]
                        : strncmp(argv[i], "--upstream=", 11) == 0 ? argv[i] + 11 : NULL;
        if (v && strcmp(argv[i - 1], "--config") != 0)
            rc = rdl_upstreams_set_flag(ups, cfg, v, &err);
    }
    if (!rc)
        rc = rdl_upstreams_finish(ups, &err);
    int status;
    if (rc) {
        status = config_error(&err);
    } else {
        int failed = rdl_upstreams_warmup(ups, stdout);
        fprintf(stderr, "redline warmup: %d upstream(s) checked, %d failed\n", n, failed);
        status = failed ? 1 : 0;
    }
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
    return status;
}
