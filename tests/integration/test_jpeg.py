#!/usr/bin/env python3
"""
SPEC 4 Formats, `jpg`: baseline JFIF through libavcodec's mjpeg encoder, with and without
a SPEC 4a transform.

- Untagged sources: decoded pixels equal the CLI's
  `ffmpeg -i SRC [-vf CHAIN] -fps_mode passthrough -q:v Q f%05d.jpg` for the source frame
  each slot shows, at q=2 (the default) and q=5; so their PSNR against the true picture
  (the PNG) is the CLI's.
- BT.709 sources: the CLI would keep BT.709 coefficients in a JFIF file (shifted colours);
  hfmount's JPEG decodes to the colours its own PNG of the same slot shows: mean error per
  channel <= 0.5 levels (the mean of the signed difference: a colour shift; the mean
  absolute difference of the CLI's own q=2 JPEG of an untagged picture is already ~1
  level), at the CLI's quality (PSNR no worse than the CLI's own q=Q JFIF of that picture
  with the right matrix).
- Refused (.hfinfo error, only .hfinfo listed) for alpha and >8-bit sources; accepted for a
  tonemapped 10-bit HDR source, which is 8-bit BT.709 by then.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402


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


def check_untagged(m, name, start, dur, fps, opts, vf, qv, size):
    """jpg of an untagged source equals the CLI's -q:v Q output slot by slot, and its PSNR
    against the mount's PNG of the same slots is at least the CLI's against its own PNG."""
    src = h.fixture(name)
    seg, blobs, ours = read_jpg(m, name, start, dur, fps, opts, size)
    idx, ref, _ = h.ref_model_chain(src, start, dur, fps, vf, "jpg", qv)
    h.assert_frames_equal(ours, ref, "%s vs ffmpeg%s -q:v %d" % (
        seg, " -vf " + vf if vf else "", qv), 0, idx)
    png_opts = ",".join(o for o in opts.split(",") if o != "jpg" and not o.startswith("q="))
    png_seg = h.seg_name(name, start, dur, fps, png_opts)
    truth = h.decode_images(m.read_segment(png_seg))
    _, cli_truth, _ = h.ref_model_chain(src, start, dur, fps, vf)
    h.assert_frames_equal(truth, cli_truth, png_seg + " vs ffmpeg", 0, idx)
    if (truth[0].w, truth[0].h) != size:
        # An odd cover crop of 4:2:0 JPEG is rounded down to even sides by the CLI's crop
        # filter: no PNG of that size to measure against; the pixels equal the CLI's above.
        print("  %s: %dx%d like the CLI's, the PNG is %dx%d" % (
            seg, size[0], size[1], truth[0].w, truth[0].h))
        return blobs
    ps, cli_ps = psnrs(ours, truth), psnrs(ref, cli_truth)
    print("  %s: PSNR vs the PNG min %.2f dB (the CLI's -q:v %d: %.2f dB), %d bytes"
          % (seg, min(ps), qv, min(cli_ps), sum(map(len, blobs))))
    for k, (a, b) in enumerate(zip(ps, cli_ps)):
        check(a >= b - 1e-9, "%s/frame_%05d.jpg: PSNR %.3f dB below the CLI's %.3f dB"
              % (seg, k + 1, a, b))
    return blobs


@test
def jpg_untagged_equals_the_cli():
    name, S, D, F = "wide640.mp4", "0.5", "0.2", "30"
    with h.Mount() as m:
        q2 = check_untagged(m, name, S, D, F, "jpg", "", 2, (640, 360))
        check(m.info(h.seg_name(name, S, D, F, "jpg,q=2"))["segment"]
              == h.seg_name(name, S, D, F, "jpg"), "jpg,q=2 is not spelled jpg")
        q5 = check_untagged(m, name, S, D, F, "q=5,jpg", "", 5, (640, 360))
        check(sum(map(len, q5)) < sum(map(len, q2)), "q=5 files (%d bytes) are not smaller "
              "than q=2 files (%d bytes)" % (sum(map(len, q5)), sum(map(len, q2))))
        # jpg and png of one frame are two images; q=2 and q=5 too.
        n = len(q2)
        check(encoded(m) == 3 * n, "%d images encoded for %d slots in png, jpg and jpg,q=5"
              % (encoded(m), n))


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
def jpg_untagged_with_a_transform():
    with h.Mount() as m:
        check_untagged(m, "wide640.mp4", "0.5", "0.1", "30", "jpg,w=320,h=240,fit=cover",
                       h.transform_chain(w=320, h=240, fit="cover"), 2, (320, 240))
        check_untagged(m, "wide640.mp4", "0.5", "0.1", "30", "h=181,jpg,q=5",
                       h.transform_chain(h=181), 5, (322, 181))
        # The CLI's crop rounds an odd cover box down to even sides for yuvj420p: 254x254.
        check_untagged(m, "wide640.mp4", "0.5", "0.1", "30", "jpg,w=255,h=255,fit=cover",
                       h.transform_chain(w=255, h=255, fit="cover"), 2, (254, 254))
        check_untagged(m, "four3.mp4", "0.2", "0.1", "30", "jpg,w=301,h=301,fit=contain",
                       h.transform_chain(w=301, h=301, fit="contain"), 2, (301, 226))
        check_untagged(m, "rotated.mp4", "0.2", "0.1", "30", "jpg,w=120,h=90",
                       h.transform_chain(w=120, h=90), 2, (120, 90))


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
def jpg_bt709_shows_the_png_colours():
    name, S, D, F = "bt709_360p.mp4", "0.2", "0.2", "30"
    src = h.fixture(name)
    # The fixture must tell the two conversions apart: the CLI's own JFIF of it (BT.709
    # coefficients kept) is off by more than 0.5 levels in some channel.
    _, cli_jpg, _ = h.ref_model_chain(src, S, D, F, "", "jpg", 2)
    _, cli_png, _ = h.ref_model_chain(src, S, D, F)
    shift = max(abs(e[0]) for e in h.channel_errors(cli_jpg[0], cli_png[0]))
    check(shift > 1.0, "the CLI's JFIF of the BT.709 fixture is off by only %.2f levels: the "
          "fixture does not discriminate" % shift)
    with h.Mount() as m:
        h.check_segment(m, name, S, D, F)  # the PNG is right (SPEC 4 Pixels)
        check_colours(m, name, S, D, F, "jpg", None, "", 2, (640, 360))
        check_colours(m, name, S, D, F, "jpg,q=5", None, "", 5, (640, 360))
        check_colours(m, name, S, D, F, "jpg,w=320,h=180", "w=320,h=180",
                      h.transform_chain(w=320, h=180), 2, (320, 180))


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
