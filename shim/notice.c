/* notice.c - the shim's only voice: one line on stderr, prefixed "race: ", built in a
 * stack buffer and written with one write(2). Async-signal-safe; never allocates. */
#include <string.h>
#include <unistd.h>

#include "shim.h"

size_t race_strlcpy(char *dst, const char *src, size_t cap)
{
    size_t n = 0;
    if (!cap)
        return 0;
    while (src && src[n] && n + 1 < cap) {
        dst[n] = src[n];
        n++;
    }
    dst[n] = 0;
    return n;
}

size_t race_fmt_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return n;
}

size_t race_fmt_hex(char *buf, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return n;
}

void race_notice(const char *a, const char *b, const char *c, const char *d)
{
    char line[1024];
    size_t k = race_strlcpy(line, "race: ", sizeof(line) - 1);
    const char *parts[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        if (parts[i])
            k += race_strlcpy(line + k, parts[i], sizeof(line) - 1 - k);
    line[k++] = '\n';
    ssize_t w = write(2, line, k);
    (void)w;
}
