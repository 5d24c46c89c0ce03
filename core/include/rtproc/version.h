/* rtproc — version and plugin ABI numbers.
 *
 * The ABI major changes whenever a struct a plugin sees changes layout or a
 * callback changes meaning; the host refuses a plugin built for another major.
 * The minor grows when something is only added: a plugin built against 1.2
 * runs on a 1.3 host, and a host checks the minor before it calls anything
 * newer than what the plugin was built with (the SQLite extension model).
 *
 * 1.1: rtp_plugin.default_max_inflight. */
#ifndef RTPROC_VERSION_H
#define RTPROC_VERSION_H

#define RTP_VERSION_STRING "0.1.0"
#define RTP_ABI_MAJOR 1
#define RTP_ABI_MINOR 1

#if defined(__GNUC__)
#define RTP_API __attribute__((visibility("default")))
#define RTP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RTP_API
#define RTP_PRINTF(f, a)
#endif

#endif
