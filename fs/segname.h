/*
 * segname: the segment directory name grammar (SPEC §3), parsed from the right.
 *
 *   segment = NAME "@" start "+" dur "@" fps [ "@" opts ]
 *   start   = decimal (>= 0)    dur = decimal (> 0)    fps = decimal | int ":" int (> 0)
 *   decimal = 1*DIGIT [ "." 1*DIGIT ]      (no sign, no exponent)
 *   opts    = opt *( "," opt )
 *   opt     = "png" | "jpg" | "q=" 1*3DIGIT | "w=" 1*5DIGIT | "h=" 1*5DIGIT
 *           | "fit=" ("fill" | "contain" | "cover") | "hold" | "bt2020"
 *           | "tonemap" [ "=" ("hable" | "reinhard" | "mobius" | "clip") ]
 *           | "untagged=cli"
 *
 * Canonical options, in this order, defaults left out: jpg, q=N (not 2), w=W, h=H,
 * fit=contain|cover (fill is the default once w and h are both given), bt2020,
 * tonemap[=OP] (hable is the default), hold, untagged=cli.
 * NAME may itself contain '@' and '+'. Numbers are exact rationals (1.37 = 137/100).
 * Pure functions, thread-safe.
 */
#ifndef HF_SEGNAME_H
#define HF_SEGNAME_H

#include <stdbool.h>
#include <stddef.h>

#include "decode/slots.h"

enum seg_format { SEG_PNG, SEG_JPG };
enum seg_fit { SEG_FIT_NONE, SEG_FIT_FILL, SEG_FIT_CONTAIN, SEG_FIT_COVER };
enum seg_tonemap { SEG_TM_NONE, SEG_TM_HABLE, SEG_TM_REINHARD, SEG_TM_MOBIUS, SEG_TM_CLIP };

#define SEGNAME_MAX_SLOTS 10000000 /* dur*fps above this is out of range */
#define SEGNAME_MAX_DIGITS 18      /* digits in one number (integer and fraction together) */
#define SEGNAME_DEFAULT_Q 2
#define SEGNAME_MAX_SIDE 16384     /* w= and h= above this are out of range */

struct segname {
	size_t name_len;        /* NAME is the first name_len bytes of the parsed string */
	struct hf_q start;      /* seconds, reduced, >= 0 */
	struct hf_q dur;        /* seconds, reduced, > 0 */
	struct hf_q fps;        /* frames per second, reduced, > 0 */
	enum seg_format format; /* SEG_PNG unless "jpg" */
	int q;                  /* jpeg qscale 1..31; SEGNAME_DEFAULT_Q unless "q=" given (jpg only) */
	int w, h;               /* output box, 0 when not given; 1..SEGNAME_MAX_SIDE */
	enum seg_fit fit;       /* SEG_FIT_FILL when w and h are both given without fit=, else NONE */
	bool hold;              /* slots past the end show the last frame */
	bool bt2020;            /* SDR to BT.2020 */
	enum seg_tonemap tonemap; /* SEG_TM_NONE unless "tonemap" (bare: SEG_TM_HABLE) */
	bool untagged_cli;      /* a picture without a matrix is BT.601, as the CLI reads it */
};

/*
 * Parses a directory entry name. 0 on success, -ENOENT when it does not match the
 * grammar or a number is out of range (empty NAME, more than 18 digits in a number,
 * dur or fps zero, dur*fps over SEGNAME_MAX_SLOTS, q outside 1..31, q without jpg,
 * an option repeated, both png and jpg, w= or h= 0 or above SEGNAME_MAX_SIDE, fit= without
 * both w= and h=, bt2020 with tonemap, an unknown tonemap operator).
 */
int segname_parse(const char *s, struct segname *out);

/*
 * Writes the canonical spelling "NAME@start+dur@fps[@opts]" for sn with the given NAME:
 * decimals without trailing zeros ("1.5", "2", "0"), fps as a decimal when it has a
 * finite decimal expansion of at most 18 digits else "num:den" ("30000:1001"), opts
 * omitted when every option is a default, else the canonical options above joined by ","
 * ("jpg,q=5,w=960,h=540,fit=cover,hold"). Two spellings of the
 * same values give the same string. Returns the length, or -ENAMETOOLONG if it does
 * not fit in len (with the terminating NUL).
 */
int segname_format(const struct segname *sn, const char *name, size_t name_len, char *buf,
		   size_t len);

/* Formats a decimal rational as segname_format does ("1.5"); used for messages. */
int segname_format_q(struct hf_q q, char *buf, size_t len);

/* "tonemap" operator names: "hable", "reinhard", "mobius", "clip" ("" for SEG_TM_NONE). */
const char *segname_tonemap_name(enum seg_tonemap t);

/* "png" or "jpg". */
const char *segname_ext(const struct segname *sn);

#endif
