/* json.c - writes JSON string literals from untrusted bytes. Owns escaping only; the
 * commands lay out their objects themselves.
 * Must never: emit invalid UTF-8 or a raw control character (trace strings are whatever
 * bytes the file holds): bad bytes become U+FFFD, so every line still parses. */
#include <string.h>

#include "race.h"

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), 0 if malformed. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void json_str(FILE *f, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        unsigned c = u[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else if (c >= 0x80) {
            size_t n = utf8_len(u + i, len - i);
            if (n == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(u + i, 1, n, f);
                i += n;
            }
            continue;
        } else {
            fputc((int)c, f);
        }
        i++;
    }
    fputc('"', f);
}

void json_cstr(FILE *f, const char *s)
{
    if (s)
        json_str(f, s, strlen(s));
    else
        fputs("null", f);
}

void json_hex(FILE *f, uint64_t v)
{
    fprintf(f, "\"0x%llx\"", (unsigned long long)v);
}
