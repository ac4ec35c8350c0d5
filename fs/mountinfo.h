/*
 * mountinfo: one line of /proc/PID/mountinfo, read as proc(5) lays it out:
 *   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
 * Pure functions, thread-safe.
 */
#ifndef HF_MOUNTINFO_H
#define HF_MOUNTINFO_H

struct mountinfo_line {
	unsigned long long id; /* the mount's ID (statx's stx_mnt_id) */
	char *point;           /* the mountpoint, its \ooo escapes undone */
	char *fstype;          /* e.g. "proc", "fuse.hfmount" */
};

/*
 * Splits line (modified in place; the fields point into it). 0, or -EINVAL when the line
 * is not a mount's.
 */
int mountinfo_parse(char *line, struct mountinfo_line *out);

#endif
