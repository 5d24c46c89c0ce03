/* hiredis's asynchronous context on the libuv loop.
 *
 * This is hiredis/adapters/libuv.h with one fix. The adapter of hiredis
 * 0.14 (Debian 12) drops poll callbacks that carry an error status, and
 * libuv reports a socket error (POLLERR: the server went away while we were
 * writing) exactly that way, after stopping the handle: hiredis never reads
 * the failure, never calls the disconnect callback, and the output waits
 * for ever. Here an error status is handed to hiredis as readiness for the
 * events it wanted, so its read or write fails and it disconnects, as
 * hiredis 1.0's adapter does. */
#include <stdlib.h>

#include <hiredis/hiredis.h>

#include <rtproc/alloc.h>

#include "redis_uv.h"

typedef struct redis_uv {
    redisAsyncContext *ac; /* NULL once hiredis let go of the context */
    uv_poll_t handle;
    int events;
} redis_uv;

static void on_poll(uv_poll_t *handle, int status, int events)
{
    redis_uv *p = handle->data;
    int ev = status < 0 ? p->events : events;
    if (p->ac && (ev & UV_READABLE)) redisAsyncHandleRead(p->ac);
    if (p->ac && (ev & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void update(redis_uv *p, int events)
{
    p->events = events;
    if (events)
        uv_poll_start(&p->handle, events, on_poll);
    else
        uv_poll_stop(&p->handle);
}

static void add_read(void *data)
{
    redis_uv *p = data;
    update(p, p->events | UV_READABLE);
}

static void del_read(void *data)
{
    redis_uv *p = data;
    update(p, p->events & ~UV_READABLE);
}

static void add_write(void *data)
{
    redis_uv *p = data;
    update(p, p->events | UV_WRITABLE);
}

static void del_write(void *data)
{
    redis_uv *p = data;
    update(p, p->events & ~UV_WRITABLE);
}

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *data)
{
    redis_uv *p = data;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->handle, on_close);
}

int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return REDIS_ERR;
    redis_uv *p = rtp_xcalloc(1, sizeof *p);
    if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->ac = ac;
    p->handle.data = p;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return REDIS_OK;
}
