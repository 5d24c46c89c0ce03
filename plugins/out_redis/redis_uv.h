/* out_redis: hiredis's asynchronous context driven by a libuv poll handle. */
#ifndef OUT_REDIS_UV_H
#define OUT_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Like redisLibuvAttach from hiredis/adapters/libuv.h: REDIS_OK or REDIS_ERR. */
int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
