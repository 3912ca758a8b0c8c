/* text.c - prints untrusted strings from a trace (exe, cmdline, options) for a terminal.
 * Owns the quoting of text output.
 * Must never: pass a control byte through (a hostile or damaged trace must not drive
 * the terminal), or read past the length it is given. */
#include <string.h>

#include "race.h"

void text_str(FILE *f, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

/* Arguments as a shell would need them: quoted only where they must be, so a plain
 * command line reads plainly. */
static void text_arg(FILE *f, const char *s, size_t len)
{
    static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789_-./=:,+@%^";
    bool quote = len == 0;
    for (size_t i = 0; i < len && !quote; i++)
        quote = !memchr(plain, s[i], sizeof plain - 1);
    if (!quote) {
        text_str(f, s, len);
        return;
    }
    fputc('\'', f);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\'')
            fputs("'\\''", f);
        else
            text_str(f, s + i, 1);
    }
    fputc('\'', f);
}

void text_cmdline(FILE *f, const char *buf, size_t len)
{
    /* cmdline is argv, each string NUL-terminated; a last one may lack its NUL. */
    for (size_t i = 0; i < len;) {
        const char *nul = memchr(buf + i, 0, len - i);
        size_t n = nul ? (size_t)(nul - (buf + i)) : len - i;
        if (i)
            fputc(' ', f);
        text_arg(f, buf + i, n);
        i += n + 1;
    }
}
