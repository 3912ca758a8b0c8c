/* options_doc.c - prints README's option table from common/options.def, the one table
 * of RACE_* options; tests/t_options.sh demands README carries exactly this. */
#include <stdio.h>

#define RACE_OPT(name, type, def, lo, hi, unit, check, help) \
    print(#name, #type, #def, (long long)(lo), (long long)(hi), unit, help);

static void print(const char *name, const char *type, const char *def, long long lo, long long hi,
                  const char *unit, const char *help)
{
    char range[64];
    if (type[0] == 'i')
        snprintf(range, sizeof(range), "%lld..%lld%s%s", lo, hi, unit[0] ? " " : "", unit);
    else
        snprintf(range, sizeof(range), "%s", unit);
    printf("| `%s` | %s | `%s` | %s | %s |\n", name, type[0] == 'i' ? "integer" : "string", def,
           range, help);
}

int main(void)
{
    printf("| variable | type | default | range | meaning |\n");
    printf("|---|---|---|---|---|\n");
#include "options.def"
    return 0;
}
