/*
 * hfctl: the operator's tool for hfmount mounts and stores.
 *
 *   hfctl status MOUNT | top MOUNT | prefetch SEGMENT... | contact-sheet SEGMENT OUT.png
 *   hfctl path VIDEO START DUR FPS [OPTIONS] [--mount MNT]
 *   hfctl ls STORE | gc STORE [--max-size SIZE] [--dry-run] | verify STORE
 */
#include <stdio.h>
#include <string.h>

#include "tools/ctl.h"

/* tools/ctl_path.c; its place is tools/ctl.h ("on a segment"), owned elsewhere for now */
int ctl_path(int argc, char **argv);

#ifndef HF_VERSION
#define HF_VERSION "unknown"
#endif

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *args, *what;
} commands[] = {
	{"status", ctl_status, "MOUNT", "what MOUNT/.hfstats says, readable by a person"},
	{"top", ctl_top, "MOUNT", "live view of extractions: frames, fps, ETA"},
	{"prefetch", ctl_prefetch, "SEGMENT...", "extract segments now; exit 0 when complete"},
	{"contact-sheet", ctl_contact_sheet, "SEGMENT OUT.png",
	 "a grid of thumbnails with slot numbers and source times"},
	{"path", ctl_path, "VIDEO START DUR FPS",
	 "print a segment's canonical path (OPTS..., --mount MNT)"},
	{"ls", ctl_ls, "STORE", "stored segments: source, range, fps, frames, bytes, last use"},
	{"gc", ctl_gc, "STORE [--max-size SIZE] [--min-free SIZE] [--dry-run]",
	 "evict least recently used segments"},
	{"verify", ctl_verify, "STORE", "decode every stored image, report damaged ones"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: hfctl COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-14s %-22s %s\n", commands[i].name, commands[i].args, commands[i].what);
	fprintf(f, "\n  hfctl COMMAND --help   details of one command\n"
		   "  hfctl -V, --version\n\nSee hfctl(1).\n");
}

void ctl_fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("hfctl %s\n", HF_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "hfctl: unknown command \"%s\"; try hfctl --help\n", argv[1]);
	return 2;
}
