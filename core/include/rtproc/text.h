/* rtproc — numbers from text.
 *
 * Inputs see numbers as byte views into what they read (not NUL-terminated),
 * millions of times a second, so these parsers take (s, len), never allocate
 * for ordinary input, never look at the locale, and never accept white space,
 * a trailing byte or an empty view: the whole view is the number or it is not
 * one. Each returns 0 and stores the value, or -1 and leaves *out alone.
 *
 *   rtp_parse_int64    [+-]digits. Leading zeros are fine ("007" is 7).
 *                      -1 on overflow.
 *   rtp_parse_double   [+-] then "12", "12.5", ".5" or "12.", with an
 *                      optional exponent e/E[+-]digits; or "inf", "infinity", "nan" in
 *                      any case, signed or not. The value is the one strtod
 *                      gives in the C locale (correctly rounded, ties to even);
 *                      underflow to a subnormal or zero is fine, but a finite
 *                      literal too large for a double is -1 rather than a
 *                      silent infinity. Hex floats and "nan(...)" are -1.
 *
 * rtp_classify_number decides what a cell of untyped text (CSV) should
 * become, and prefers a string whenever a number would lose something:
 *   RTP_INT     an integer literal that fits int64: "-42", "0", "-0" (as 0).
 *   RTP_DOUBLE  a decimal literal as read by rtp_parse_double: "0.5",
 *               "-1.25e3", ".5", "5.", "1e6". A literal whose value would
 *               overflow a double stays a string.
 *   RTP_STRING  everything else, and on purpose: a leading zero ("007",
 *               "02134", "00.5": codes, not quantities), a leading '+'
 *               ("+4420..." is a phone number), an integer too large for
 *               int64 (an id would lose digits as a double), and "nan"/"inf"
 *               (tickers such as NAN exist; a cell should not turn into a NaN
 *               that poisons every average downstream).
 * Only the pointer for the returned type is written; both must be valid. */
#ifndef RTPROC_TEXT_H
#define RTPROC_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "version.h"

RTP_API int rtp_parse_int64(const char *s, size_t len, int64_t *out);
RTP_API int rtp_parse_double(const char *s, size_t len, double *out);
RTP_API rtp_type rtp_classify_number(const char *s, size_t len, int64_t *i, double *d);

#endif
