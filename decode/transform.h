/*
 * transform: the transforms of SPEC §4a (size and fit, SDR to BT.2020, HDR tone mapping),
 * each the ffmpeg 5.1 CLI's filter chain built in-process with libavfilter, so that a
 * frame comes out pixel for pixel as `ffmpeg -i SRC -vf CHAIN f%05d.png` makes it.
 *
 * Two halves. The pure functions (tf_effective, tf_is_identity, tf_output, tf_canon) run
 * at listing time on what the container says, before any decode: which transforms apply to
 * a source, the image size they give, and the text that goes into image keys. They are
 * thread-safe and allocate nothing.
 *
 * The graph (transform_new/run/free) turns decoded frames: the CLI's autorotation, then
 * the chain, then the conversion to the encoder's pixel format, as the CLI negotiates it.
 * One transform is used by one thread at a time; several may run in parallel (each graph
 * runs on its caller's thread only). No libav types cross this header but AVFrame.
 */
#ifndef HF_TRANSFORM_H
#define HF_TRANSFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "decode/source.h"

struct AVFrame;

enum tf_fit { TF_FIT_NONE, TF_FIT_FILL, TF_FIT_CONTAIN, TF_FIT_COVER };
enum tf_tonemap { TF_TM_NONE, TF_TM_HABLE, TF_TM_REINHARD, TF_TM_MOBIUS, TF_TM_CLIP };

/* What a segment name asks for (SPEC §3 options). */
struct tf_spec {
	int w, h;	 /* 0 = not given */
	enum tf_fit fit; /* FILL when w and h given without fit; NONE when not both given */
	bool bt2020;
	enum tf_tonemap tonemap;
};

/* What the container says of the decoded picture (no decode). */
struct tf_input {
	int width, height; /* coded size, BEFORE orientation */
	/* Sample aspect ratio, 0/1 when unknown: the CLI's scale ignores it. */
	int sar_num, sar_den;
	enum source_orient orient;
	int depth; /* bits per component: 8, 10, 12 */
	bool alpha;
	/* AVColorPrimaries, AVColorTransferCharacteristic, AVColorSpace, AVColorRange codes */
	int primaries, trc, matrix, range;
};

/*
 * The part of spec that changes something for this input, in eff (which may be spec).
 * note gets one sentence naming what does not apply and why ("" when everything applies),
 * e.g. "tonemap does not apply: the source is not PQ or HLG". tonemap applies only to PQ
 * (smpte2084) or HLG (arib-std-b67) sources; bt2020 only to 8-bit sources whose matrix is
 * BT.709 or unspecified and that are not HDR; neither to sources with alpha (both chains
 * end in a format without it). A size that gives the oriented source's own size is none.
 */
void tf_effective(const struct tf_spec *spec, const struct tf_input *in, struct tf_spec *eff,
		  char *note, size_t notelen);

/* True when eff changes nothing (the untransformed images serve). */
bool tf_is_identity(const struct tf_spec *eff);

/*
 * Image size and bits per component after orientation and the chain, as the CLI computes
 * them (scale's -1 rounding, force_original_aspect_ratio, crop) for an RGB output
 * (PNG). 0, or -EINVAL when the chain cannot produce an image (a side rounds to 0, or
 * the image is larger than libav allows).
 */
int tf_output(const struct tf_spec *eff, const struct tf_input *in, int *w, int *h, int *depth);

/*
 * The same for the output pixel format out_pix_fmt (an AVPixelFormat): a chroma-subsampled
 * one (YUVJ420P for JPEG) makes fit=cover's crop round its size down to whole chroma
 * samples, as the CLI's crop does.
 */
int tf_output_fmt(const struct tf_spec *eff, const struct tf_input *in, int out_pix_fmt, int *w,
		  int *h, int *depth);

/*
 * Canonical text of everything eff changes, for image keys: "" when identity, otherwise
 * e.g. "scale=960:540:cover", "bt2020", "tonemap=hable;scale=960:-1". Spellings of the
 * same values give the same text. Its length, or -ENAMETOOLONG when it does not fit len.
 */
int tf_canon(const struct tf_spec *eff, char *buf, size_t len);

struct transform;

/*
 * 0 when libavfilter (loaded at first use, not linked) is there, or -ENOSYS with a
 * sentence in why (may be NULL). transform_new says the same.
 */
int transform_available(char *why, size_t whylen);

/*
 * A graph for frames like `first` (its size, pixel format, sample aspect ratio; colour
 * tags travel with each frame): the CLI's autorotation for `orient` (transpose, hflip,
 * vflip as ffmpeg 5.1 inserts them), then eff's §4a chain (may be identity: rotation
 * only), then the conversion to out_pix_fmt (an AVPixelFormat: RGB24, RGBA, RGB48BE,
 * YUVJ420P...) as the CLI's negotiation makes it when its encoder takes only that format.
 * Bicubic swscale. Runs on the calling thread only, yet cuts pictures into as many slices
 * as the CLI's default graph would here (cores + 1): zscale's slice edges change pixels,
 * so tone-mapped images, like the CLI's own, depend on the machine's core count.
 * 0, or a negative errno with a sentence in why.
 */
int transform_new(const struct tf_spec *eff, enum source_orient orient, const struct AVFrame *first,
		  int out_pix_fmt, struct transform **out, char *why, size_t whylen);

/*
 * One frame in, one frame out: out is unreferenced first and then holds a new reference
 * (in is not changed). A frame of another size or format than the graph's rebuilds it,
 * as the CLI reconfigures. 0 or a negative errno.
 */
int transform_run(struct transform *t, const struct AVFrame *in, struct AVFrame *out);

/* Frees the graph; accepts NULL and clears *t. */
void transform_free(struct transform **t);

#endif
