/*
 * admin_auth.c: who may change the server through the admin plane.
 *
 * Reading the admin plane is open (probes, /metrics, /debug/vars and the GETs
 * of the debug pages): a kubelet or a scraper carries no credentials.
 * Changing state (PUT /debug/loglevel today; the alert webhook and other
 * actions to come) is an operator's act and needs a bearer token, so anyone
 * who can reach the admin port cannot, say, silence the access log. Every
 * such handler calls rdl__admin_authorized first.
 *
 * The token lives in a file (admin.token_file: a mounted Secret), never in
 * the configuration, the command line or the environment, where /debug/vars,
 * --help and process listings would show it. A rotated Secret is picked up
 * without a restart: the file's identity (device, inode, size, mtime) is
 * checked at most once a second on the admin thread, and read again only when
 * it changed. The comparison takes the same time wherever the bytes differ,
 * and neither the token nor the Authorization header is ever logged.
 *
 * Without a token file mutating endpoints answer 403, unless
 * admin.allow_unauthenticated says this is a local demo (make run).
 *
 * Thread-safety: called on the admin I/O thread only (a request on another
 * listener is refused), so the token state needs no lock.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "runtime/internal.h"

#define TOKEN_MAX 4096                   /* bytes of token file; a bearer token is far shorter */
#define RECHECK_NS 1000000000ull         /* the file is looked at once a second at most */

struct rt_admin_token {
    char *token;                         /* the file's content less one trailing newline */
    size_t len;
    bool have_id;                        /* the file identity below was read with token */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    uint64_t checked_ns;                 /* last look at the file; 0 = never */
    int state;                           /* 1 loaded, -1 unusable, 0 not yet: logs transitions */
    uint64_t refused_log_ns;             /* refusals are logged once a second at most */
};

void rdl__rt_admin_auth_free(rdl_server_t *srv)
{
    struct rt_admin_token *tk = srv->admin_token;
    if (!tk)
        return;
    if (tk->token) {
        explicit_bzero(tk->token, tk->len);
        free(tk->token);
    }
    free(tk);
    srv->admin_token = NULL;
}

static void forget(struct rt_admin_token *tk)
{
    if (tk->token) {
        explicit_bzero(tk->token, tk->len);
        free(tk->token);
    }
    tk->token = NULL;
    tk->len = 0;
    tk->have_id = false;
}

/* An unusable token file refuses every change; said once per transition, with the path only. */
static void unusable(rdl_server_t *srv, struct rt_admin_token *tk, const char *why)
{
    forget(tk);
    if (tk->state == -1)
        return;
    tk->state = -1;
    rdl_log_field_t f[] = { rdl_lf_str("key", "admin.token_file"), rdl_lf_str("error", why) };
    rdl_log(srv->log, RDL_LOG_WARN, "admin token unusable: admin changes are refused", f, 2);
}

static bool same_file(const struct rt_admin_token *tk, const struct stat *st)
{
    return tk->have_id && tk->dev == st->st_dev && tk->ino == st->st_ino &&
           tk->size == st->st_size && tk->mtime.tv_sec == st->st_mtim.tv_sec &&
           tk->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Reads the token file again when it changed (at most once a second). */
static void refresh(rdl_server_t *srv, struct rt_admin_token *tk, const char *path)
{
    uint64_t now = rdl_now_ns();
    if (tk->checked_ns && now - tk->checked_ns < RECHECK_NS)
        return;
    tk->checked_ns = now;
    struct stat st;
    if (stat(path, &st) != 0) {
        char why[320];
        snprintf(why, sizeof(why), "%s: cannot stat the file", path);
        unusable(srv, tk, why);
        return;
    }
    if (same_file(tk, &st))
        return;
    char *data = NULL;
    size_t len = 0;
    rdl_error_t err;
    rdl_error_clear(&err);
    if (rdl_read_file(path, TOKEN_MAX, &data, &len, &err) != 0) {
        char why[sizeof(err.msg) + sizeof(err.file) + 64];
        unusable(srv, tk, rdl_error_format(&err, why, sizeof(why)));
        return;
    }
    if (len && data[len - 1] == '\n')
        len--;                           /* echo token > file, and a Secret from a file, end so */
    if (len && data[len - 1] == '\r')
        len--;
    if (len == 0) {
        free(data);
        char why[320];
        snprintf(why, sizeof(why), "%s: the file is empty", path);
        unusable(srv, tk, why);
        return;
    }
    forget(tk);
    tk->token = data;
    tk->len = len;
    tk->have_id = true;
    tk->dev = st.st_dev;
    tk->ino = st.st_ino;
    tk->size = st.st_size;
    tk->mtime = st.st_mtim;
    rdl_log_field_t f = rdl_lf_str("key", "admin.token_file");
    rdl_log(srv->log, RDL_LOG_INFO, tk->state == 1 ? "admin token reloaded" : "admin token loaded",
            &f, 1);
    tk->state = 1;
}

/* The token of "Authorization: Bearer <token>", or NULL. */
static const char *bearer(rdl_req_t *req, size_t *len)
{
    size_t n;
    const char *v = rdl_req_header(req, "Authorization", &n);
    if (!v || n < 7 || !rdl_ascii_ieq(v, 7, "Bearer ", 7))
        return NULL;
    size_t i = 7;
    while (i < n && v[i] == ' ')
        i++;
    *len = n - i;
    return *len ? v + i : NULL;
}

/* A refusal on record: who and what, never a credential. Once a second at most. */
static void log_refusal(rdl_server_t *srv, rdl_req_t *req, int status, const char *why)
{
    struct rt_admin_token *tk = srv->admin_token;
    uint64_t now = rdl_now_ns();
    if (tk) {
        if (tk->refused_log_ns && now - tk->refused_log_ns < RECHECK_NS)
            return;
        tk->refused_log_ns = now;
    }
    size_t plen;
    const char *path = rdl_req_path(req, &plen);
    rdl_log_field_t f[] = { rdl_lf_str("method", rdl_req_method(req)), rdl_lf_strn("path", path, plen),
                            rdl_lf_int("status", status), rdl_lf_str("reason", why),
                            rdl_lf_str("peer", rdl_req_peer(req)) };
    rdl_log(srv->log, RDL_LOG_WARN, "admin change refused", f, 5);
}

static bool refuse(rdl_server_t *srv, rdl_req_t *req, int status, const char *why,
                   const char *message)
{
    log_refusal(srv, req, status, why);
    if (status == 401)
        rdl_resp_header(req, "WWW-Authenticate", "Bearer realm=\"redline-admin\"");
    rdl_resp_error(req, status, status == 401 ? "unauthorized" : "forbidden", message);
    return false;
}

bool rdl__admin_authorized(rdl_req_t *req)
{
    rdl_server_t *srv = req->conn->t->srv;
    const rdl_server_opts_t *o = &srv->opts;
    if (!req->conn->t->admin)
        return refuse(srv, req, 403, "not_admin_listener",
                      "admin changes are taken on the admin listener only");
    const char *path = o->admin_token_file ? o->admin_token_file : "";
    if (!path[0]) {
        if (o->admin_allow_unauthenticated)
            return true;
        return refuse(srv, req, 403, "no_token_file",
                      "admin changes are off: configure admin.token_file (or, for a local demo "
                      "only, admin.allow_unauthenticated: true)");
    }
    if (!srv->admin_token) {
        srv->admin_token = calloc(1, sizeof(*srv->admin_token));
        if (!srv->admin_token) {
            rdl_resp_error(req, 503, "unavailable", "out of memory");
            return false;
        }
    }
    struct rt_admin_token *tk = srv->admin_token;
    refresh(srv, tk, path);
    size_t len = 0;
    const char *given = bearer(req, &len);
    const char *msg = "this admin endpoint needs Authorization: Bearer <the token of admin.token_file>";
    if (!given)
        return refuse(srv, req, 401, "no_token", msg);
    if (!tk->token || !rdl_secret_equal(given, len, tk->token, tk->len))
        return refuse(srv, req, 401, tk->token ? "wrong_token" : "token_file_unusable", msg);
    return true;
}
