/*
 * expo_gen.c: writes the exposition of the fuzz registry (tests/common/expo_fuzz.h)
 * built from a file's bytes, so the integration test can hand the same
 * outputs the fuzz target checks to promtool and to Prometheus' own parser.
 *
 *   expo_gen FILE [text|openmetrics]   > exposition
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../common/expo_fuzz.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: expo_gen FILE [text|openmetrics]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    static uint8_t data[1 << 20];
    size_t n = fread(data, 1, sizeof(data), f);
    fclose(f);
    rdl_format_t fmt = argc > 2 && strcmp(argv[2], "openmetrics") == 0 ? RDL_FMT_OPENMETRICS : RDL_FMT_TEXT;
    xf_input_t in;
    rdl_registry_t *r;
    xf_split(&in, data, n);
    if (xf_build(&in, &r) != 0) {
        xf_free(&in);
        return 1;
    }
    rdl_buf_t b;
    rdl_buf_init(&b);
    int rc = rdl_metrics_expose(r, fmt, &b);
    fwrite(b.data, 1, b.len, stdout);
    rdl_buf_close(&b);
    rdl_registry_free(r);
    xf_free(&in);
    return rc ? 1 : 0;
}
