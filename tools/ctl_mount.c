#include <stdio.h>
#include "tools/ctl.h"
int ctl_status(int argc, char **argv) { (void)argc; fprintf(stderr, "hfctl %s: not built yet\n", argv[0]); return 1; }
int ctl_top(int argc, char **argv) { (void)argc; fprintf(stderr, "hfctl %s: not built yet\n", argv[0]); return 1; }
int ctl_prefetch(int argc, char **argv) { (void)argc; fprintf(stderr, "hfctl %s: not built yet\n", argv[0]); return 1; }
