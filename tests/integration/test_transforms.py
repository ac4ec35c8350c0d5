#!/usr/bin/env python3
"""
SPEC 4a transforms: w/h/fit, bt2020 and tonemap, each proved against the ffmpeg CLI running
the spec's own filter chain on the source frame each slot shows
(`ffmpeg -i SRC -vf CHAIN -fps_mode passthrough f%05d.png`, decoded to raw pixels), plus
the sharing rules (one image per size and frame whatever the spelling, none for a transform
that changes nothing, counted from .hfstats images_encoded), the .hfinfo fields
(width/height exact before any frame exists, "transform", "not_applied") and the PNG
colour tags.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

CICP_BT2020 = 9  # ITU-T H.273 colour primaries: BT.2020


def encoded(m):
    return m.stats()["images_encoded"]


def check_transform(m, name, start, dur, fps, opts, kw, size, transform, canonical=None,
                    pix_fmt="rgb24", ihdr=(8, 2), decoder=None, tolerance=0):
    """Reads segment name@start+dur@fps@opts and proves it against the CLI's chain for the
    options kw (transform_chain's arguments): .hfinfo's size before any frame is read, its
    transform text and not_applied, the count, the PNG's own size, bit depth and colour type
    (ihdr), and every slot's pixels (decoded as pix_fmt, within tolerance). Returns
    (seg, blobs, images, info)."""
    src = h.fixture(name)
    seg = h.seg_name(name, start, dur, fps, opts)
    ext = "jpg" if "jpg" in opts.split(",") else "png"
    info = m.info(seg)  # before any frame: the size is known from the container alone
    check((info.get("width"), info.get("height")) == size,
          "%s: .hfinfo says %rx%r before any frame was read, expected %dx%d"
          % (seg, info.get("width"), info.get("height"), size[0], size[1]))
    check(info.get("transform") == transform, "%s: .hfinfo transform %r, expected %r"
          % (seg, info.get("transform"), transform))
    check(info.get("not_applied") == "", "%s: .hfinfo not_applied %r, expected \"\" (every "
          "option applies)" % (seg, info.get("not_applied")))
    if canonical is not None:
        check(info.get("segment") == canonical, "%s: .hfinfo segment %r, expected %r"
              % (seg, info.get("segment"), canonical))
    blobs = m.read_segment(seg, ext)
    ours = h.decode_images(blobs, ext, pix_fmt)
    vf = h.transform_chain(**kw)
    idx, ref, _ = h.ref_model_chain(src, start, dur, fps, vf, pix_fmt=pix_fmt, decoder=decoder)
    check(len(idx) > 0, "%s: the model shows no slot; the case proves nothing" % seg)
    info = m.info(seg)
    check(info.get("count") == len(idx), "%s: .hfinfo count %r, expected %d"
          % (seg, info.get("count"), len(idx)))
    check(info.get("error") is None, "%s: .hfinfo error %r" % (seg, info.get("error")))
    check((ref[0].w, ref[0].h) == size, "test's own expectation: the CLI's %r gives %dx%d, "
          "not %dx%d" % (vf, ref[0].w, ref[0].h, size[0], size[1]))
    if ext == "png":
        for k, b in enumerate(blobs):
            w, hh, depth, ctype = h.png_header(b)
            check((w, hh, depth, ctype) == size + ihdr,
                  "%s/frame_%05d.png: IHDR %dx%d depth %d colour type %d, expected %dx%d "
                  "depth %d colour type %d" % ((seg, k + 1, w, hh, depth, ctype) + size + ihdr))
    worst = h.assert_frames_equal(ours, ref, "%s vs ffmpeg -vf %s" % (seg, vf), tolerance, idx)
    if tolerance:
        print("  %s: worst sample difference vs ffmpeg %d (allowed %d)" % (seg, worst, tolerance))
    return seg, blobs, ours, info


# (opts as a user might spell them, transform_chain arguments, output size, canonical
# transform text). Odd and even sides; one upscale; w alone and h alone.
WIDE = [  # 640x360, 16:9
    ("w=320,h=240", dict(w=320, h=240), (320, 240), "w=320,h=240"),
    ("fit=contain,h=301,w=301", dict(w=301, h=301, fit="contain"), (301, 169),
     "w=301,h=301,fit=contain"),
    ("w=255,h=255,fit=cover", dict(w=255, h=255, fit="cover"), (255, 255),
     "w=255,h=255,fit=cover"),
    ("w=300,fit=fill,h=100", dict(w=300, h=100), (300, 100), "w=300,h=100"),
    ("w=961", dict(w=961), (961, 541), "w=961"),  # upscale, odd both ways
    ("h=181", dict(h=181), (322, 181), "h=181"),
]
FOUR3 = [  # 480x360, 4:3
    ("w=640,h=360", dict(w=640, h=360), (640, 360), "w=640,h=360"),  # upscale, new aspect
    ("w=333,h=333,fit=contain", dict(w=333, h=333, fit="contain"), (333, 250),
     "w=333,h=333,fit=contain"),
    ("h=180,fit=cover,w=320", dict(w=320, h=180, fit="cover"), (320, 180),
     "w=320,h=180,fit=cover"),
    ("w=201", dict(w=201), (201, 151), "w=201"),
]
ROTATED = [  # 320x240 coded, 90 degrees in the display matrix: 240x320 as shown
    ("w=120,h=90", dict(w=120, h=90), (120, 90), "w=120,h=90"),
    ("w=200,h=200,fit=contain", dict(w=200, h=200, fit="contain"), (150, 200),
     "w=200,h=200,fit=contain"),
    ("fit=cover,w=200,h=100", dict(w=200, h=100, fit="cover"), (200, 100),
     "w=200,h=100,fit=cover"),
    ("w=121", dict(w=121), (121, 161), "w=121"),
    ("h=99", dict(h=99), (74, 99), "h=99"),
]


def run_cases(name, cases, start, dur, fps):
    with h.Mount() as m:
        for opts, kw, size, transform in cases:
            check_transform(m, name, start, dur, fps, opts, kw, size, transform,
                            h.seg_name(name, start, dur, fps, transform))
        t = m.stats().get("time_ms", {})
        check("transform" in t, ".hfstats time_ms has no \"transform\" phase: %s" % sorted(t))


@test
def fit_16x9():
    run_cases("wide640.mp4", WIDE, "0.25", "0.1", "30")


@test
def fit_4x3():
    run_cases("four3.mp4", FOUR3, "0.9", "0.1", "30")


@test
def fit_rotated():
    src = h.fixture("rotated.mp4")
    check(h.display_rotation(src) in (90, -90, 270, -270), "fixture is not rotated")
    # Slots between frames (0.505 s): the slot map, not the frame grid, picks the pictures.
    run_cases("rotated.mp4", ROTATED, "0.505", "0.1", "30")


@test
def size_keeps_alpha_and_depth():
    # A size alone keeps what the source has: RGBA for VP9 alpha (read by libvpx-vp9, as
    # SPEC 4 says), 16-bit for 10-bit PQ (one 10-bit code value of slack, as test_formats).
    with h.Mount() as m:
        check_transform(m, "alpha.webm", "0.5", "0.1", "30", "w=161,h=120,fit=cover",
                        dict(w=161, h=120, fit="cover"), (161, 120), "w=161,h=120,fit=cover",
                        pix_fmt="rgba", ihdr=(8, 6), decoder="libvpx-vp9")
        check_transform(m, "hdr10.mp4", "0.5", "0.1", "30", "h=120", dict(h=120), (160, 120),
                        "h=120", pix_fmt="rgb48be", ihdr=(16, 2), tolerance=64)


@test
def bt2020_on_bt709_and_untagged():
    with h.Mount() as m:
        for name, opts, kw, size, transform in (
                ("bt709_360p.mp4", "bt2020", dict(bt2020=True), (640, 360), "bt2020"),
                ("bt709_360p.mp4", "bt2020,h=180,w=320", dict(bt2020=True, w=320, h=180),
                 (320, 180), "w=320,h=180,bt2020"),
                ("wide640.mp4", "bt2020", dict(bt2020=True), (640, 360), "bt2020")):
            seg, blobs, ours, info = check_transform(m, name, "0.1", "0.1", "30", opts, kw,
                                                     size, transform)
            # The conversion really changes the picture (or the test proves nothing).
            plain = h.ref_model_chain(h.fixture(name), "0.1", "0.1", "30",
                                      h.transform_chain(w=kw.get("w"), h=kw.get("h")))[1]
            mx = max(h.diff_stats(a, b)[0] for a, b in zip(ours, plain))
            check(mx >= 8, "%s: bt2020 differs from the untransformed picture by only %d"
                  % (seg, mx))
            for k, b in enumerate(blobs):
                check(h.png_header(b)[2] == 8, "%s/frame_%05d.png is not 8-bit" % (seg, k + 1))
                cicp = [d for t, d in h.png_chunks(b) if t == "cICP"]
                check(cicp and cicp[0][0] == CICP_BT2020 and cicp[0][2] == 0,
                      "%s/frame_%05d.png: cICP %r, expected BT.2020 primaries (%d) and "
                      "matrix 0 (RGB)" % (seg, k + 1, cicp[0] if cicp else None, CICP_BT2020))


@test
def tonemap_pq_and_hlg():
    for name in ("hdr10.mp4", "hlg720.mp4"):
        st = h.ffprobe_json(["-select_streams", "v:0", "-show_entries",
                             "stream=pix_fmt,color_transfer"], h.fixture(name))["streams"][0]
        check(st["pix_fmt"] == "yuv420p10le" and st["color_transfer"] in
              ("smpte2084", "arib-std-b67"), "%s is %r" % (name, st))
    with h.Mount() as m:
        made = {}
        for name, opts, kw, size, transform in (
                ("hdr10.mp4", "tonemap", dict(tonemap=True), (320, 240), "tonemap"),
                ("hdr10.mp4", "tonemap=reinhard", dict(tonemap="reinhard"), (320, 240),
                 "tonemap=reinhard"),
                ("hlg720.mp4", "tonemap", dict(tonemap=True), (1280, 720), "tonemap"),
                ("hlg720.mp4", "tonemap=mobius", dict(tonemap="mobius"), (1280, 720),
                 "tonemap=mobius"),
                ("hlg720.mp4", "w=641,h=360,fit=contain,tonemap=clip",
                 dict(tonemap="clip", w=641, h=360, fit="contain"), (640, 360),
                 "w=641,h=360,fit=contain,tonemap=clip")):
            seg, blobs, ours, info = check_transform(m, name, "0.2", "0.1", "30", opts, kw,
                                                     size, transform)
            made[(name, opts)] = ours
            for k, b in enumerate(blobs):
                w, hh, depth, ctype = h.png_header(b)
                check((depth, ctype) == (8, 2), "%s/frame_%05d.png: bit depth %d colour type "
                      "%d, expected 8-bit RGB" % (seg, k + 1, depth, ctype))
            codec, pix, w, hh = h.probe_image(blobs[0])
            check(pix == "rgb24", "%s: ffprobe says %s" % (seg, pix))
        # The operators give different pictures, so each one was really checked.
        for a, b in ((("hdr10.mp4", "tonemap"), ("hdr10.mp4", "tonemap=reinhard")),
                     (("hlg720.mp4", "tonemap"), ("hlg720.mp4", "tonemap=mobius"))):
            mx = max(h.diff_stats(x, y)[0] for x, y in zip(made[a], made[b]))
            check(mx >= 4, "%s and %s differ by only %d" % (a[1], b[1], mx))
        # tonemap=hable is tonemap: the same images, nothing encoded again.
        before = encoded(m)
        seg = "hdr10.mp4@0.2+0.1@30@tonemap=hable"
        check(m.info(seg)["segment"] == "hdr10.mp4@0.2+0.1@30@tonemap",
              "%s is shown as %r" % (seg, m.info(seg)["segment"]))
        again = h.decode_images(m.read_segment(seg))
        check(encoded(m) == before, "tonemap=hable encoded %d images already made for tonemap"
              % (encoded(m) - before))
        h.assert_frames_equal(again, made[("hdr10.mp4", "tonemap")], seg + " vs tonemap")


@test
def spellings_share_sizes_do_not():
    name, S, D, F = "wide640.mp4", "0.5", "0.2", "30"
    n = len(h.model_slots(h.probe_frames(h.fixture(name)), S, D, F))
    check(n == 6, "the model gives %d slots, expected 6 distinct frames" % n)
    with h.Mount() as m:
        check_transform(m, name, S, D, F, "w=320,h=240", dict(w=320, h=240), (320, 240),
                        "w=320,h=240")
        check(encoded(m) == n, "w=320,h=240: %d images encoded for %d distinct frames"
              % (encoded(m), n))
        first = m.read_segment(h.seg_name(name, S, D, F, "w=320,h=240"))
        # Other spellings of the same size: one image per frame between them.
        for opts in ("h=240,w=320", "png,fit=fill,h=240,w=320", "w=0320,h=00240"):
            seg = "%s@0.50+0.20@30.0@%s" % (name, opts)
            info = m.info(seg)
            check(info["segment"] == h.seg_name(name, S, D, F, "w=320,h=240"),
                  "%s is shown as %r" % (seg, info["segment"]))
            blobs = m.read_segment(seg)
            check(encoded(m) == n, "%s: %d images encoded in all, expected still %d"
                  % (seg, encoded(m), n))
            check(blobs == first, "%s: other bytes than the first spelling's" % seg)
        listed = os.listdir(m.path())
        check(h.seg_name(name, S, D, F, "w=320,h=240") in listed
              and not any("fit=fill" in x or "h=240,w=320" in x for x in listed),
              "the mount root lists %s, expected the canonical name once" % sorted(listed))
        # Another size, another fit, the untransformed frames: new images each time.
        for opts, kw, size, tr in (
                ("w=322,h=240", dict(w=322, h=240), (322, 240), "w=322,h=240"),
                ("w=320,h=240,fit=cover", dict(w=320, h=240, fit="cover"), (320, 240),
                 "w=320,h=240,fit=cover")):
            before = encoded(m)
            check_transform(m, name, S, D, F, opts, kw, size, tr)
            check(encoded(m) == before + n, "%s: %d new images, expected %d"
                  % (opts, encoded(m) - before, n))
        before = encoded(m)
        h.check_segment(m, name, S, D, F)
        check(encoded(m) == before + n, "untransformed: %d new images, expected %d"
              % (encoded(m) - before, n))


@test
def one_size_through_two_spellings_of_the_box():
    # w=320 alone on a 16:9 source is 320x180, as w=320,h=180 is: the same pictures
    # (the CLI's scale=320:-1 and scale=320:180 agree), so one image per frame (SPEC 4a).
    name, S, D, F = "wide640.mp4", "1", "0.1", "30"
    a = h.ref_model_chain(h.fixture(name), S, D, F, h.transform_chain(w=320))[1]
    b = h.ref_model_chain(h.fixture(name), S, D, F, h.transform_chain(w=320, h=180))[1]
    check(all(x.data == y.data for x, y in zip(a, b)), "the CLI's scale=320:-1 and "
          "scale=320:180 differ on this source; the premise of the test is wrong")
    with h.Mount() as m:
        check_transform(m, name, S, D, F, "w=320,h=180", dict(w=320, h=180), (320, 180),
                        "w=320,h=180")
        before = encoded(m)
        check_transform(m, name, S, D, F, "w=320", dict(w=320), (320, 180), "w=320")
        check(encoded(m) == before, "w=320 encoded %d images already made for w=320,h=180"
              % (encoded(m) - before))


@test
def transforms_that_change_nothing_share():
    with h.Mount() as m:
        # tonemap on SDR, and a size equal to the source's, on a 16:9 untagged source.
        name, S, D, F = "wide640.mp4", "0.3", "0.2", "30"
        seg0, blobs0, ours0 = h.check_segment(m, name, S, D, F)
        n = encoded(m)
        check(n == len(blobs0), "untransformed: %d images for %d frames" % (n, len(blobs0)))
        for opts, why in (("tonemap", "tonemap"), ("tonemap=reinhard", "tonemap"),
                          ("w=640,h=360", None), ("w=640", None), ("h=360", None),
                          ("w=640,h=360,fit=cover", None), ("w=640,h=360,fit=contain", None)):
            seg = h.seg_name(name, S, D, F, opts)
            info = m.info(seg)
            check((info["width"], info["height"]) == (640, 360),
                  "%s: .hfinfo %sx%s" % (seg, info["width"], info["height"]))
            check(info.get("transform") == "", "%s: .hfinfo transform %r, expected \"\" (it "
                  "changes nothing)" % (seg, info.get("transform")))
            if why:
                na = info.get("not_applied")
                check(isinstance(na, str) and why in na and len(na) > len(why) + 10
                      and "\n" not in na.strip(), "%s: .hfinfo not_applied %r does not say "
                      "that %s did not apply and why" % (seg, na, why))
            blobs = m.read_segment(seg)
            check(encoded(m) == n, "%s: %d new images; it changes nothing, so it must share "
                  "the untransformed ones" % (seg, encoded(m) - n))
            check(blobs == blobs0, "%s: not the untransformed images" % seg)
        # The rotated source at its size as shown.
        seg_r, blobs_r, _ = h.check_segment(m, "rotated.mp4", S, D, F)
        n = encoded(m)
        for opts in ("w=240,h=320", "w=240"):
            seg = h.seg_name("rotated.mp4", S, D, F, opts)
            check(m.info(seg).get("transform") == "", "%s: transform %r" % (
                seg, m.info(seg).get("transform")))
            check(m.read_segment(seg) == blobs_r and encoded(m) == n,
                  "%s: does not share the untransformed rotated images" % seg)
        # bt2020 on a PQ source: the untransformed 16-bit images, and .hfinfo says why.
        seg_h, blobs_h, ours_h = h.check_segment(m, "hdr10.mp4", S, D, F, pix_fmt="rgb48be",
                                                 tolerance=64)
        n = encoded(m)
        seg = h.seg_name("hdr10.mp4", S, D, F, "bt2020")
        info = m.info(seg)
        na = info.get("not_applied")
        check(info.get("transform") == "" and isinstance(na, str) and "bt2020" in na
              and len(na) > 16, "%s: .hfinfo transform %r, not_applied %r"
              % (seg, info.get("transform"), na))
        blobs = m.read_segment(seg)
        check(blobs == blobs_h and encoded(m) == n, "%s: %d new images, expected to share the "
              "untransformed 16-bit ones" % (seg, encoded(m) - n))
        check(h.png_header(blobs[0])[2] == 16, "%s: not a 16-bit PNG" % seg)


if __name__ == "__main__":
    h.main()
