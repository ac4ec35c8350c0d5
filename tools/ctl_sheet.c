#include <stdio.h>
#include "tools/ctl.h"
int ctl_contact_sheet(int argc, char **argv) { (void)argc; fprintf(stderr, "hfctl %s: not built yet\n", argv[0]); return 1; }
