#ifndef RTP_METRICS_H
#define RTP_METRICS_H

void rtp_metrics_log_summary(void);
void rtp_metrics_free_all(void);

#endif
