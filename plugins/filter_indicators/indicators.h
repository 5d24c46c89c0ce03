/* indicators: the arithmetic of filter_indicators, with no engine in sight.
 *
 * One series (one symbol's close, one currency's rate) is an ind_state: a
 * fixed header followed by ring buffers and running sums whose sizes depend
 * only on the configuration, so every series of an instance has the same
 * size and lives in one allocation (the rtp_map value). ind_update takes one
 * accepted value and returns the indicators that are warm, in O(1): no loop
 * over a window except the exact recomputation every IND_EXACT_EVERY window
 * lengths, which costs O(window) and so O(1/IND_EXACT_EVERY) per value.
 *
 * Numerical stability. Windowed sums are kept as (sum, error) pairs updated
 * with Knuth's TwoSum, so adding a value and later removing the very same
 * double leaves no residue; they are sums of (x - shift), where shift is
 * recentred on the window mean at every exact recomputation, so the
 * variance (s2 - s1^2/n) never subtracts two large, nearly equal numbers.
 * A run of equal values as long as the window gives a variance of exactly
 * zero (a pegged currency must not show noise). Recursive averages (EMA,
 * Wilder) need none of this: they forget their errors geometrically.
 *
 * docs/indicators.md states every convention; the comments here say how. */
#ifndef RTP_INDICATORS_H
#define RTP_INDICATORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IND_MAX_PERIODS 8     /* periods in sma = ... and in ema = ... */
#define IND_MAX_PERIOD 100000 /* longest window: memory is max_series * state */
#define IND_EXACT_EVERY 8     /* exact recomputation every 8 window lengths */

/* Output slots, in the order fields are added to a record. */
enum ind_slot {
    IND_SMA = 0,                         /* + i for the i-th period of sma */
    IND_EMA = IND_SMA + IND_MAX_PERIODS, /* + i for the i-th period of ema */
    IND_RSI = IND_EMA + IND_MAX_PERIODS,
    IND_MACD,
    IND_MACD_SIGNAL,
    IND_MACD_HIST,
    IND_BB_UPPER,
    IND_BB_MIDDLE,
    IND_BB_LOWER,
    IND_BB_PCTB,
    IND_BB_WIDTH,
    IND_VOLATILITY,
    IND_PCT_CHANGE,
    IND_VOLUME_AVG,
    IND_VWAP,
    IND_NSLOTS
};

/* A compensated sum: the value is s + c. */
typedef struct ind_sum {
    double s, c;
} ind_sum;

/* A ring of the newest `cap` values with sums over windows of its newest
 * `period[k]` values (k < nwin). */
typedef struct ind_ring_spec {
    uint32_t cap; /* 0: the ring is not used */
    uint32_t nwin;
    uint32_t period[IND_MAX_PERIODS + 1];
    size_t off; /* offset of the ring in the state */
} ind_ring_spec;

typedef struct ind_ema_spec {
    uint32_t n;
    double alpha, keep, den; /* 2/(n+1), 1 - alpha, keep + alpha (pandas' form) */
} ind_ema_spec;

typedef struct ind_ema {
    double value;
    ind_sum seed; /* sum of the first n inputs (seed = sma) */
} ind_ema;

typedef struct ind_config {
    /* what the user asked for; a period of 0 turns the indicator off */
    uint32_t n_sma, sma[IND_MAX_PERIODS];
    uint32_t n_ema, ema[IND_MAX_PERIODS];
    uint32_t rsi;
    uint32_t macd_fast, macd_slow, macd_signal;
    uint32_t bb_n;
    double bb_k;
    uint32_t volatility;
    double annualize; /* 0: volatility not annualised */
    uint32_t volume_avg;
    bool pct_change;
    bool vwap;
    bool vwap_daily; /* reset at each UTC day of event time */
    bool seed_first; /* EMAs seeded with the first value (pandas adjust=False) */

    /* derived by ind_config_finish */
    ind_ring_spec price, returns, volume;
    uint32_t sma_win[IND_MAX_PERIODS]; /* window of price for each sma period */
    uint32_t bb_win;
    uint32_t n_emas; /* distinct EMA periods of ema and macd */
    ind_ema_spec emas[IND_MAX_PERIODS + 2];
    uint32_t ema_of[IND_MAX_PERIODS]; /* index in emas of each ema period */
    uint32_t macd_fast_i, macd_slow_i;
    ind_ema_spec signal;
    double vol_scale; /* 100 * sqrt(annualize or 1) */
    size_t off_emas;
    size_t state_size;
    uint32_t enabled; /* slots this configuration can produce */
} ind_config;

/* The fixed part of a series' state; rings and EMAs follow at the offsets
 * ind_config_finish computed. */
typedef struct ind_state {
    int64_t last_time; /* event time of the newest accepted value; 0: none */
    uint64_t count;    /* values accepted */
    double prev;       /* the newest accepted value */
    double avg_gain, avg_loss;
    ind_sum gain_seed, loss_seed;
    ind_ema signal;
    int64_t vwap_day;
    ind_sum pv, v; /* VWAP: sums of price * volume and of volume */
} ind_state;

/* What one record gives a series. */
typedef struct ind_input {
    double price;   /* finite and > 0: the caller rejects the rest */
    double volume;  /* valid only when has_volume */
    bool has_volume;
    double typical; /* VWAP price: (high + low + price) / 3 or price */
    int64_t day;    /* UTC day of the event time (VWAP reset) */
} ind_input;

/* Checks periods (0 is off; the rest must lie in 1..IND_MAX_PERIOD) and
 * derives the layout; NULL, or what is wrong with the option *opt. */
const char *ind_config_finish(ind_config *cfg, const char **opt);
/* Prepares a zeroed state of cfg->state_size bytes. */
void ind_state_init(const ind_config *cfg, ind_state *st);
/* Takes one value; writes the warm indicators into out[slot] and returns
 * the mask of the slots written (bit slot). */
uint32_t ind_update(const ind_config *cfg, ind_state *st, const ind_input *in, double *out);
/* Field name of a slot: "sma_20", "bb_upper", ...; returns its length. */
int ind_slot_name(const ind_config *cfg, int slot, char *buf, size_t cap);

#endif
