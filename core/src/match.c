/* Tag patterns: '*' matches any run of characters (dots included), every
 * other character matches itself. "stocks.*" matches "stocks.aapl";
 * "*" matches everything, error routes included. */
#include "match.h"

bool rtp_match(const char *pat, const char *tag)
{
    const char *star = NULL, *resume = NULL;
    while (*tag) {
        if (*pat == '*') {
            star = pat++;
            resume = tag;
        } else if (*pat == *tag) {
            pat++;
            tag++;
        } else if (star) {
            pat = star + 1;
            tag = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*') pat++;
    return *pat == 0;
}

bool rtp_match_any(const rtp_strlist *pats, const char *tag)
{
    for (size_t i = 0; i < pats->n; i++)
        if (rtp_match(pats->v[i], tag)) return true;
    return false;
}
