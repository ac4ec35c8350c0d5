/*
 * ctl: the subcommands of hfctl, the operator's tool.
 *
 * Each ctl_* function receives the arguments after its subcommand name (argv[0] is the
 * subcommand itself, as for getopt) and returns the process exit status: 0 success,
 * 1 the operation failed (a sentence on stderr says why), 2 bad usage.
 */
#ifndef HF_CTL_H
#define HF_CTL_H

#include <stdint.h>
#include <stdio.h>

/* on a mount (tools/ctl_mount.c) */
int ctl_status(int argc, char **argv);
int ctl_top(int argc, char **argv);
int ctl_prefetch(int argc, char **argv);

/* on a segment (tools/ctl_sheet.c) */
int ctl_contact_sheet(int argc, char **argv);

/* on a store, mounted or not (tools/ctl_store.c) */
int ctl_ls(int argc, char **argv);
int ctl_gc(int argc, char **argv);
int ctl_verify(int argc, char **argv);

/* "1.5 GiB", "312 KiB", "17 B" */
void ctl_fmt_size(uint64_t bytes, char *buf, size_t len);

#endif
