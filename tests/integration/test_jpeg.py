"""
SPEC 4 Formats, `jpg`: baseline JFIF made by libjpeg-turbo from the decoded planes, with the
quantization tables of `ffmpeg -q:v Q`, with and without a SPEC 4a transform.

Byte identity with the CLI is given up (SPEC 4); each frame is held to bounds instead,
against the CLI's `ffmpeg -i SRC [-vf CHAIN] -fps_mode passthrough -q:v Q f%05d.jpg` of the
source frame the slot shows, and against the mount's PNG of the same slot (the decoded
source's RGB, itself checked against the CLI's PNG):
- PSNR against that PNG >= the CLI JPEG's - 0.1 dB. For sources of JFIF's own matrix
  (untagged, BT.601) the CLI JPEG is the plain command's; for other matrices the CLI would
  keep their coefficients in a JFIF file (shifted colours), so its JFIF with the right
  matrix is the reference (`scale=in_color_matrix=M:out_color_matrix=bt601:out_range=pc`).
- size <= 1.05x the plain CLI JPEG's;
- mean error per channel (the mean of the signed difference: a colour shift) against that
  PNG <= 0.5 levels.
On three kinds of source (grainy, camera-like, screen-like; small for speed) and on
BT.709-tagged, BT.601-tagged and full-range ones, with and without w/h/fit.
Refused (.hfinfo error, only .hfinfo listed) for alpha and >8-bit sources; accepted for a
tonemapped 10-bit HDR source, which is 8-bit BT.709 by then.
"""

import math
import operator
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

PSNR_SLACK = 0.1   # dB below the CLI's
SIZE_RATIO = 1.05  # of the CLI's file
MEAN_ERR = 0.5     # levels per channel, against the PNG


# 640x360 stand-ins for the three kinds of 1080p source of SPEC 10, 1 s at 30 fps.
def _gen(out, vf, codec, inputs=None):
    h.ffmpeg_gen(out, inputs or h._lavfi_src("640x360", 30, 1), vf, codec, "mp4")


@h.generator("jpg_grain.mp4")
def _gen_grain(out):
    # grainy: testsrc2 under temporal noise, untagged (BT.601 at this height). Heavier grain
    # (alls=20) puts even the CLI's own JPEG of a w=320,h=240 cover 0.9 levels off the PNG
    # in two channels (4:2:0 chroma of saturated grain, clipped in RGB).
    _gen(out, "noise=alls=12:allf=t+u,format=yuv420p",
         ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "15"])


@h.generator("jpg_camera.mp4")
def _gen_camera(out):
    # camera-like: soft picture, mild noise, x264 medium crf 23 with B-frames; BT.709
    _gen(out, "gblur=sigma=1.5,noise=alls=6:allf=t+u,"
         "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
         ["-c:v", "libx264", "-preset", "medium", "-crf", "23", "-bf", "3",
          "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
          "-color_range", "tv"])


@h.generator("jpg_screen.mp4")
def _gen_screen(out):
    # screen-like: flat colours and text-like bars, a moving picture-in-picture; BT.601
    _gen(out, "drawbox=x=0:y=0:w=640:h=40:color=0x2b3a55:t=fill,"
         "drawbox=x=20:y=60:w=200:h=12:color=white:t=fill,format=yuv420p",
         ["-c:v", "libx264", "-preset", "medium", "-crf", "23", "-colorspace", "smpte170m",
          "-color_primaries", "smpte170m", "-color_trc", "smpte170m"],
         ["-f", "lavfi", "-i", "color=c=0xe8e8e8:s=640x360:r=30:d=1[bg];"
          "testsrc2=size=192x108:rate=30:duration=1[fg];[bg][fg]overlay=x='40+t*300':y=120"])


@h.generator("jpg_full.mp4")
def _gen_full(out):
    # full range, BT.709 (a phone's recording)
    _gen(out, "noise=alls=8:allf=t+u,scale=out_color_matrix=bt709:out_range=full,"
         "format=yuvj420p",
         ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-colorspace", "bt709",
          "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "pc"])


def encoded(m):
    return m.stats()["images_encoded"]


def check_baseline(seg, blobs):
    for k, b in enumerate(blobs):
        where = "%s/frame_%05d.jpg" % (seg, k + 1)
        check(b[:2] == b"\xff\xd8", "%s: not a JPEG file (starts %r)" % (where, b[:12]))
        # Markers cannot hide in entropy-coded data (0xFF there is followed by 0x00).
        check(b"\xff\xc0" in b and b"\xff\xc2" not in b, "%s: not baseline (no SOF0, or a "
              "progressive SOF2)" % where)
    codec, pix, w, hh = h.probe_image(blobs[0], "jpg")
    check(codec == "mjpeg" and pix in ("yuvj420p", "yuvj422p", "yuvj444p"),
          "%s: ffprobe says %s %s" % (seg, codec, pix))


def read_jpg(m, name, start, dur, fps, opts, size):
    """Reads a jpg segment; checks listing, .hfinfo format/size/count, baseline JFIF.
    Returns (seg, blobs, decoded images)."""
    seg = h.seg_name(name, start, dur, fps, opts)
    info = m.info(seg)
    check(info.get("format") == "jpg" and info.get("error") is None,
          "%s: .hfinfo format %r, error %r" % (seg, info.get("format"), info.get("error")))
    check((info.get("width"), info.get("height")) == size, "%s: .hfinfo %rx%r, expected %dx%d"
          % (seg, info.get("width"), info.get("height"), size[0], size[1]))
    blobs = m.read_segment(seg, "jpg")
    n = len(h.model_slots(h.probe_frames(h.fixture(name)), start, dur, fps))
    check(len(blobs) == n and m.info(seg).get("count") == n, "%s: %d frames, .hfinfo count "
          "%r, expected %d" % (seg, len(blobs), m.info(seg).get("count"), n))
    check_baseline(seg, blobs)
    ours = h.decode_images(blobs, "jpg")
    check((ours[0].w, ours[0].h) == size, "%s: frames are %dx%d" % (seg, ours[0].w, ours[0].h))
    return seg, blobs, ours


def psnrs(imgs, truth):
    return [h.psnr(a, b) for a, b in zip(imgs, truth)]


def measure(a, b):
    """(PSNR of a against b over all samples, [mean signed error per channel]) of two
    same-sized 8-bit images."""
    check((a.w, a.h, a.depth) == (b.w, b.h, b.depth), "cannot compare %r with %r" % (a, b))
    sa, sb = a.samples(), b.samples()
    d = list(map(operator.sub, sa, sb))
    se = sum(map(operator.mul, d, d))
    n = a.w * a.h
    means = [(sum(sa[c::a.depth]) - sum(sb[c::b.depth])) / n for c in range(a.depth)]
    return (99.0 if se == 0 else 10 * math.log10(255 * 255 * len(sa) / se)), means


def check_bounds(m, name, start, dur, fps, opts, vf, qv, size, matrix=None):
    """Each jpg frame of the segment within SPEC 4's bounds (see the top). matrix: the
    source's matrix when not JFIF's (ffmpeg's name, e.g. "bt709"). Returns a summary."""
    src = h.fixture(name)
    seg, blobs, ours = read_jpg(m, name, start, dur, fps, opts, size)
    png_opts = ",".join(o for o in opts.split(",") if o != "jpg" and not o.startswith("q="))
    truth = h.decode_images(m.read_segment(h.seg_name(name, start, dur, fps, png_opts)))
    idx, cli_truth, _ = h.ref_model_chain(src, start, dur, fps, vf)
    # the PNG is the CLI's (untagged HD would be Chromium's guess: none of these is)
    h.assert_frames_equal(truth, cli_truth, "%s's PNG vs ffmpeg" % seg, 0, idx)
    _, cli, cli_blobs = h.ref_model_chain(src, start, dur, fps, vf, "jpg", qv)
    plain = cli
    if matrix:
        pre = vf + "," if vf else ""
        _, cli, _ = h.ref_model_chain(
            src, start, dur, fps, pre + "scale=in_color_matrix=%s:out_color_matrix=bt601:"
            "out_range=pc" % matrix, "jpg", qv)
        if vf:
            # A graph hands the encoder the PNG's RGB for other matrices (decode/extract.c),
            # which it keeps at 4:4:4 as the CLI does RGB: the CLI's JPEG of that RGB is
            # the reference, for quality and size.
            _, cli, cli_blobs = h.ref_model_chain(src, start, dur, fps, pre + "format=rgb24",
                                                  "jpg", qv)
    worst = {"psnr": 1e9, "size": 0.0, "mean": 0.0}
    for k, (a, c, t, b, cb, p) in enumerate(zip(ours, cli, truth, blobs, cli_blobs, plain)):
        where = "%s/frame_%05d.jpg" % (seg, k + 1)
        ps, means = measure(a, t)
        cli_ps, _ = measure(c, t)
        ratio = len(b) / len(cb)
        worst["psnr"] = min(worst["psnr"], ps - cli_ps)
        worst["size"] = max(worst["size"], ratio)
        worst["mean"] = max([worst["mean"]] + [abs(e) for e in means])
        check(ps >= cli_ps - PSNR_SLACK, "%s: PSNR %.3f dB against the PNG, more than %.1f dB "
              "below the CLI's -q:v %d JPEG (%.3f dB)" % (where, ps, PSNR_SLACK, qv, cli_ps))
        check(ratio <= SIZE_RATIO, "%s: %d bytes, %.3fx the CLI's -q:v %d JPEG (%d bytes); at "
              "most %.2fx" % (where, len(b), ratio, qv, len(cb), SIZE_RATIO))
        # Where the CLI's own JPEG of a JFIF-matrix picture is already further off (4:2:0
        # chroma of a scaled, saturated, grainy picture against the PNG's full chroma,
        # clipped in RGB), no further than it.
        limit = MEAN_ERR
        if not matrix:
            limit = max(limit, max(abs(e) for e in measure(p, t)[1]) + 0.1)
        check(max(abs(e) for e in means) <= limit, "%s: mean error per channel %s levels "
              "against the PNG; at most %.2f (colours shifted?)" % (
                  where, ", ".join("%+.2f" % e for e in means), limit))
    print("  %s: %d frames; PSNR vs the CLI's %+.2f dB at worst, size %.3fx at worst, worst "
          "channel mean error %.2f" % (seg, len(ours), worst["psnr"], worst["size"],
                                        worst["mean"]))
    return blobs


# (fixture, its matrix when not JFIF's, start): the three kinds of source and the tags
SOURCES = [("jpg_grain.mp4", None, "0.3"), ("jpg_camera.mp4", "bt709", "0.3"),
           ("jpg_screen.mp4", None, "0.3"), ("jpg_full.mp4", "bt709", "0.3")]


@test
def jpg_within_bounds_of_the_cli():
    with h.Mount() as m:
        for name, matrix, S in SOURCES:
            check_bounds(m, name, S, "0.1", "30", "jpg", "", 2, (640, 360), matrix)
        before = encoded(m)
        q2 = check_bounds(m, "wide640.mp4", "0.5", "0.1", "30", "jpg", "", 2, (640, 360))
        check(m.info(h.seg_name("wide640.mp4", "0.5", "0.1", "30", "jpg,q=2"))["segment"]
              == h.seg_name("wide640.mp4", "0.5", "0.1", "30", "jpg"),
              "jpg,q=2 is not spelled jpg")
        q5 = check_bounds(m, "wide640.mp4", "0.5", "0.1", "30", "q=5,jpg", "", 5, (640, 360))
        check(sum(map(len, q5)) < sum(map(len, q2)), "q=5 files (%d bytes) are not smaller "
              "than q=2 files (%d bytes)" % (sum(map(len, q5)), sum(map(len, q2))))
        # jpg and png of one frame are two images; q=2 and q=5 too.
        n = len(q2)
        check(encoded(m) - before == 3 * n, "%d images encoded for %d slots in png, jpg and "
              "jpg,q=5" % (encoded(m) - before, n))
        check_bounds(m, "jpg_camera.mp4", "0.5", "0.1", "30", "jpg,q=5", "", 5, (640, 360),
                     "bt709")
        check_bounds(m, "jpg_screen.mp4", "0.5", "0.1", "30", "jpg,q=10", "", 10,
                     (640, 360))


@test
def jpg_quant_tables_are_the_clis():
    # Not the bytes, but the DQT segments: q= keeps the meaning of -q:v.
    def dqt(b):
        out, pos = [], 2
        while pos + 4 <= len(b) and b[pos] == 0xFF and b[pos + 1] != 0xDA:
            n = int.from_bytes(b[pos + 2:pos + 4], "big")
            if b[pos + 1] == 0xDB:
                out.append(b[pos:pos + 2 + n])
            pos += 2 + n
        return out
    with h.Mount() as m:
        for qv in (2, 4, 31):
            cli = h.ref_files(h.fixture("wide640.mp4"), "", "jpg", qv, frames=1)[0]
            ours = m.read_segment("wide640.mp4@0+0.04@25@jpg,q=%d" % qv, "jpg")[0]
            check(dqt(ours) == dqt(cli) and len(dqt(cli)) == 1, "q=%d: DQT %r, the CLI's %r"
                  % (qv, [x.hex() for x in dqt(ours)], [x.hex() for x in dqt(cli)]))


@test
def jpg_is_jfif_like_the_cli():
    # The CLI's mjpeg files open with a JFIF APP0 segment (the encoder writes it when the
    # picture has a sample aspect ratio): what browsers and "JFIF" in SPEC 4 assume.
    cli = h.ref_files(h.fixture("wide640.mp4"), "", "jpg", 2, frames=1)[0]
    check(cli[2:4] == b"\xff\xe0" and cli[6:11] == b"JFIF\x00", "the CLI's JPEG starts %r; "
          "the premise of the test is wrong" % cli[:12])
    with h.Mount() as m:
        for seg in ("wide640.mp4@0.5+0.1@30@jpg", "bt709_360p.mp4@0.5+0.1@30@jpg,q=5",
                    "wide640.mp4@0.5+0.1@30@jpg,w=320,h=180"):
            for k, b in enumerate(m.read_segment(seg, "jpg")):
                check(b[:4] == b"\xff\xd8\xff\xe0" and b[6:11] == b"JFIF\x00"
                      and b[11:13] == cli[11:13],
                      "%s/frame_%05d.jpg: no JFIF APP0 segment (starts %r; the CLI's: %r)"
                      % (seg, k + 1, b[:14], cli[:14]))


@test
def jpg_with_a_transform():
    # The graph's output goes to the same encoder: yuvj for JFIF's matrix, RGB otherwise.
    with h.Mount() as m:
        for name, matrix, S in SOURCES:
            check_bounds(m, name, S, "0.1", "30", "jpg,w=320,h=240,fit=cover",
                         h.transform_chain(w=320, h=240, fit="cover"), 2, (320, 240), matrix)
        check_bounds(m, "wide640.mp4", "0.5", "0.1", "30", "h=181,jpg,q=5",
                     h.transform_chain(h=181), 5, (322, 181))
        check_bounds(m, "four3.mp4", "0.2", "0.1", "30", "jpg,w=301,h=301,fit=contain",
                     h.transform_chain(w=301, h=301, fit="contain"), 2, (301, 226))
        check_bounds(m, "rotated.mp4", "0.2", "0.1", "30", "jpg,w=120,h=90",
                     h.transform_chain(w=120, h=90), 2, (120, 90))
        check_bounds(m, "bt709_360p.mp4", "0.2", "0.1", "30", "jpg,w=320,h=180",
                     h.transform_chain(w=320, h=180), 2, (320, 180), "bt709")
        # An odd cover box of 4:2:0 is rounded down to even sides, as the CLI's crop does
        # for yuvj420p; there is no PNG of that size to measure against.
        seg, _, _ = read_jpg(m, "wide640.mp4", "0.5", "0.1", "30",
                             "jpg,w=255,h=255,fit=cover", (254, 254))


# Tonemapped pictures reach the encoder as RGB: the bounds of the old path (the CLI's
# right-matrix JFIF, from RGB or from YUV, less 0.5 dB; mean error <= 0.5).
def check_colours(m, name, start, dur, fps, opts, png_opts, vf, qv, size):
    """jpg decodes to the colours of the mount's PNG of the same slots (mean error per
    channel <= 0.5 levels) at the CLI's quality: PSNR against that PNG no worse than the
    CLI's own q=Q JFIF of that picture with the right matrix, less 0.5 dB.
    Returns the worst absolute mean error."""
    src = h.fixture(name)
    seg, blobs, ours = read_jpg(m, name, start, dur, fps, opts, size)
    truth = h.decode_images(m.read_segment(h.seg_name(name, start, dur, fps, png_opts)))
    check(len(truth) == len(ours), "%s: %d PNG slots, %d jpg" % (seg, len(truth), len(ours)))
    worst = 0.0
    for k, (a, b) in enumerate(zip(ours, truth)):
        errs = h.channel_errors(a, b)
        mean = max(abs(e[0]) for e in errs)
        worst = max(worst, mean)
        check(mean <= 0.5, "%s/frame_%05d.jpg: mean error per channel %s levels against the "
              "PNG; at most 0.5 (colours shifted?)" % (
                  seg, k + 1, ", ".join("%+.2f" % e[0] for e in errs)))
    # The CLI's quality: its own q=Q JFIF of the same picture with the right matrix, made
    # either way the CLI can (from the RGB picture, or straight from the chain's YUV with
    # BT.709 coefficients converted to BT.601 full range); the worse of the two is the floor.
    pre = vf + "," if vf else ""
    _, cli_truth, _ = h.ref_model_chain(src, start, dur, fps, vf)
    _, cli_rgb, _ = h.ref_model_chain(src, start, dur, fps, pre + "format=rgb24", "jpg", qv)
    _, cli_yuv, _ = h.ref_model_chain(
        src, start, dur, fps, pre + "scale=in_color_matrix=bt709:out_color_matrix=bt601:"
        "out_range=pc,format=yuvj420p", "jpg", qv)
    ps = psnrs(ours, truth)
    rgb_ps, yuv_ps = psnrs(cli_rgb, cli_truth), psnrs(cli_yuv, cli_truth)
    print("  %s: worst channel mean error %.3f, mean abs %s; PSNR min %.2f dB (the CLI's "
          "right-matrix JFIF: %.2f dB from RGB, %.2f dB from YUV)" % (seg, worst, ", ".join(
              "%.2f" % e[1] for e in h.channel_errors(ours[0], truth[0])), min(ps),
              min(rgb_ps), min(yuv_ps)))
    for k, (a, b, c) in enumerate(zip(ps, rgb_ps, yuv_ps)):
        check(a >= min(b, c) - 0.5, "%s/frame_%05d.jpg: PSNR %.2f dB, more than 0.5 dB below "
              "the CLI's q=%d JFIF of the same picture (%.2f dB from RGB, %.2f dB from YUV)"
              % (seg, k + 1, a, qv, b, c))
    return worst


@test
def jpg_refused_for_alpha_and_deep_but_not_tonemapped():
    with h.Mount() as m:
        for seg in ("alpha.webm@0+0.2@30@jpg", "alpha.webm@0+0.2@30@jpg,tonemap",
                    "alpha.webm@0+0.2@30@jpg,w=160,h=120", "hdr10.mp4@0+0.2@30@jpg",
                    "hdr10.mp4@0+0.2@30@jpg,w=160,h=120", "hlg720.mp4@0+0.2@30@jpg",
                    "hdr10.mp4@0+0.2@30@jpg,bt2020"):
            info = m.info(seg)
            err = info.get("error")
            check(info.get("state") == "error" and isinstance(err, str) and len(err) > 10
                  and "\n" not in err.strip(), "%s: .hfinfo state %r error %r (jpg must be "
                  "refused)" % (seg, info.get("state"), err))
            names = sorted(os.listdir(m.path(seg)))
            check(names == [".hfinfo"], "%s lists %s, expected only .hfinfo" % (seg, names[:6]))
        # Tonemapped, a 10-bit HDR source is 8-bit BT.709: jpg is fine, and shows the colours
        # of the tonemapped PNG.
        worst = check_colours(m, "hdr10.mp4", "0.2", "0.1", "30", "jpg,tonemap", "tonemap",
                              h.transform_chain(tonemap=True), 2, (320, 240))
        info = m.info("hdr10.mp4@0.2+0.1@30@jpg,tonemap")
        check(info.get("transform") == "tonemap" and info.get("not_applied") == "",
              ".hfinfo transform %r not_applied %r" % (info.get("transform"),
                                                       info.get("not_applied")))
        worst = max(worst, check_colours(
            m, "hlg720.mp4", "0.2", "0.1", "30", "tonemap=reinhard,w=640,h=360,jpg,q=5",
            "w=640,h=360,tonemap=reinhard", h.transform_chain(tonemap="reinhard", w=640, h=360),
            5, (640, 360)))
        print("  tonemapped jpg: worst channel mean error %.3f levels" % worst)


if __name__ == "__main__":
    h.main()
