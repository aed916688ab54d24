/*
 * fuzz_client_upstream.c: the upstream settings parsers (base URL, host and
 * port, "name=url,..." subsets, role and breaker words). Input: the url, a
 * newline, the subsets, a newline, the role. Invariants: nothing crashes; an
 * accepted upstream has a non-empty host, a port in 1..65535 and http://
 * base URLs for every subset; a refusal names an upstreams.payment.* key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redline/client.h"

static char *field(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *stop = nl ? nl : end;
    size_t n = (size_t)(stop - *p);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, *p, n);       /* never reads past the input, even at its end */
        s[n] = '\0';
    }
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *url = field(&p, end), *subsets = field(&p, end), *role = field(&p, end);
    rdl_config_t *cfg = NULL;
    rdl_upstreams_t *ups = NULL;
    rdl_error_t err;
    rdl_error_clear(&err);
    if (!url || !subsets || !role || rdl_config_new(&cfg) || rdl_upstreams_new(&ups) ||
        rdl_upstreams_declare(ups, cfg, "payment", RDL_UPSTREAM_STRONG))
        abort();
    bool set = rdl_config_set(cfg, "upstreams.payment.url", url, &err) == 0 &&
               rdl_config_set(cfg, "upstreams.payment.subsets", subsets, &err) == 0 &&
               rdl_config_set(cfg, "upstreams.payment.role", role, &err) == 0;
    if (set) {
        int rc = rdl_upstreams_finish(ups, &err);
        rdl_upstream_t *up = rdl_upstreams_get(ups, "payment");
        if (rc == 0 && up->configured) {
            if (!up->host[0] || up->port < 1 || up->port > 65535)
                abort();
            for (int i = 0; i < up->nsubsets; i++)
                if (strncmp(rdl_upstream_base_url(up, up->subset_names[i]), "http://", 7) != 0 ||
                    !up->subset_names[i][0])
                    abort();
        } else if (rc != 0 && rc != RDL_ENOMEM && strncmp(err.key, "upstreams.payment.", 18) != 0) {
            abort();
        }
    }
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
    free(url);
    free(subsets);
    free(role);
    return 0;
}
