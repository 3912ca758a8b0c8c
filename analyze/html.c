#include "race.h"
int html_write(const struct report_outputs *o, struct race_trace **t, struct race_sym **sym,
               int n, const struct race_member *m, size_t total)
{ (void)o; (void)t; (void)sym; (void)n; (void)m; (void)total; return 0; }
