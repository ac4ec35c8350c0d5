#include <stdio.h>
#include "tools/ctl.h"
int ctl_ls(int argc, char **argv) { (void)argc; fprintf(stderr, "hfctl %s: not built yet\n", argv[0]); return 1; }
int ctl_gc(int argc, char **argv) { (void)argc; fprintf(stderr, "hfctl %s: not built yet\n", argv[0]); return 1; }
int ctl_verify(int argc, char **argv) { (void)argc; fprintf(stderr, "hfctl %s: not built yet\n", argv[0]); return 1; }
