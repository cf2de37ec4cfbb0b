/* utf8.c — UTF-8 sanitizing, whole or streamed; see utf8.h. */
#include "utf8.h"

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Well-formed sequences (Unicode Table 3-7): the length a lead byte announces and the range
 * of its second byte; 0 for a byte that cannot start one. */
static int lead_info(unsigned char b, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b == 0xE0) {
        *lo = 0xA0;
        return 3;
    }
    if (b == 0xED) {
        *hi = 0x9F;
        return 3;
    }
    if (b >= 0xE1 && b <= 0xEF) return 3;
    if (b == 0xF0) {
        *lo = 0x90;
        return 4;
    }
    if (b == 0xF4) {
        *hi = 0x8F;
        return 4;
    }
    if (b >= 0xF1 && b <= 0xF3) return 4;
    return 0;
}

size_t roe_utf8_sanitize(const char *s, size_t n, int final, struct roe_strbuf *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of the pending valid bytes, copied in one append */
    while (i < n) {
        const unsigned char b = u[i];
        if (b >= 0x01 && b <= 0x7F) {
            i++;
            continue;
        }
        unsigned char lo, hi;
        const int len = b == 0 ? 0 : lead_info(b, &lo, &hi);
        size_t k = 1; /* bytes of the sequence that are valid so far */
        while (len && k < (size_t)len && i + k < n) {
            const unsigned char c = u[i + k];
            if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) break;
            k++;
        }
        if (len && k == (size_t)len) { /* a whole character */
            i += k;
            continue;
        }
        if (len && i + k == n && !final) break; /* incomplete: it may complete with more bytes */
        roe_strbuf_append(out, s + run, i - run);
        roe_strbuf_append(out, REPLACEMENT, 3);
        i += len ? k : 1; /* a maximal subpart, or one byte that starts nothing */
        run = i;
    }
    roe_strbuf_append(out, s + run, i - run);
    return i;
}

int roe_utf8_valid(const char *s, size_t n) {
    struct roe_strbuf tmp = {0};
    const size_t used = roe_utf8_sanitize(s, n, 1, &tmp);
    const int ok = !tmp.oom && used == n && tmp.len == n;
    roe_strbuf_free(&tmp);
    return ok;
}
