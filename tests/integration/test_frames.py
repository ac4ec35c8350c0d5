#!/usr/bin/env python3
"""
SPEC 4 frame semantics through a real mount: count and pictures of segments, proved
against the ffmpeg CLI (fps=F:round=up:start_time=S,trim=... whenever S*F is whole) and
against the exact slot model over ffprobe's packet timestamps (every case, including the
ones where S*F is not whole). Pixels are compared decoded, never as PNG bytes.
"""

import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402


@test
def reference_self_check():
    """The two references agree with each other (no product involved): if this fails,
    the harness or the installed ffmpeg is at fault, not hfmount."""
    for name, S, D, F in [("cfr30.mp4", "0.5", "2", "30"), ("vfr.mp4", "0", "6", "30"),
                          ("ntsc.mp4", "1.001", "1", "30000:1001"),
                          ("delayed.mp4", "0.25", "0.5", "60")]:
        src = h.fixture(name)
        idx, refm = h.ref_model(src, S, D, F)
        h.assert_frames_equal(h.ref_fps(src, S, D, F), refm, "reference self-check " + name)


@test
def cfr_start_on_keyframe():
    # -g 12 at 30 fps: keyframes at 0, 0.4, 0.8, ... s
    with h.Mount() as m:
        h.check_segment(m, "cfr30.mp4", "0.4", "1", "30")
        h.check_segment(m, "cfr30.mp4", "0", "1", "30")


@test
def cfr_start_on_frame_between_keyframes():
    # 0.5 s is frame 15, between keyframes 12 and 24; every slot time ties a frame exactly.
    with h.Mount() as m:
        h.check_segment(m, "cfr30.mp4", "0.5", "2", "30")
        h.check_segment(m, "cfr30.mp4", "2.3", "0.5", "30")


@test
def cfr_start_between_frames():
    with h.Mount() as m:
        # S*F whole (9) but S = 0.45 s falls between source frames 13 and 14.
        h.check_segment(m, "cfr30.mp4", "0.45", "1", "20")
        # S*F not whole: exact model only.
        h.check_segment(m, "cfr30.mp4", "0.51", "1", "30")
        h.check_segment(m, "cfr30.mp4", "1.237", "0.8", "7")
        # Between frames and between keyframes, at the source rate.
        h.check_segment(m, "cfr30.mp4", "0.85", "1.5", "30")


def own_rate_cadence(m, name, start, dur, fps, step=1):
    """A constant-rate millisecond source read from a frame-aligned start: slots show the
    window's source frames in order, each exactly once (every step-th one when read at a
    lower rate), pixel-equal to the slot model and, at the source's own rate, to
    `ffmpeg -ss S -i SRC -t D -vf fps=F`."""
    src = h.fixture(name)
    fr = h.probe_frames(src)
    check(fr.tb == h.Fraction(1, 1000), "%s: time base %s, not milliseconds" % (name, fr.tb))
    seg = h.seg_name(name, start, dur, fps)
    ours = h.decode_images(m.read_segment(seg))
    idx = h.model_slots(fr, start, dur, fps)
    first = idx[0]
    check(idx == list(range(first, first + step * len(idx), step)),
          "%s: the slot model shows %s, not every %s frame once" % (seg, idx[:12],
                                                                    "other" if step == 2 else ""))
    allf = h.ref_all(src)
    h.assert_frames_equal(ours, [allf[i] for i in idx], seg + " vs exact slot model", 0, idx,
                          allf)
    if step == 1:  # at another rate the CLI rounds to the nearest frame: not the reference
        h.assert_frames_equal(ours, h.ref_cli(src, start, dur, fps),
                              seg + " vs ffmpeg -ss -t -vf fps", 0, idx, allf)
    return len(ours)


@test
def millisecond_time_bases_show_every_frame():
    # WebM and Matroska at 1 ms: 30 fps frames at 0, 33, 67, 100 ms... read at 30 fps show
    # every frame once (without the half tick, every third slot repeats a frame and the
    # next frame is skipped); 30000/1001 likewise; 60 fps read at 30 shows every other one.
    with h.Mount() as m:
        n = own_rate_cadence(m, "ms30.mkv", "1", "1.5", "30")
        n += own_rate_cadence(m, "ms30.webm", "0.5", "2", "30")
        n += own_rate_cadence(m, "ms2997.mkv", "1.001", "1.5", "30000:1001")
        n += own_rate_cadence(m, "ms60.mkv", "0.5", "1", "30", step=2)
        print("  %d slots, each a distinct source frame, equal to the CLI's" % n)


@test
def ntsc_source_and_rate():
    with h.Mount() as m:
        h.check_segment(m, "ntsc.mp4", "1.001", "1", "30000:1001")
        h.check_segment(m, "ntsc.mp4", "0", "3", "30000:1001")
        h.check_segment(m, "ntsc.mp4", "0.5", "1", "29.97")
        h.check_segment(m, "ntsc.mp4", "0.2", "1", "30")


@test
def fps24_source_at_60():
    with h.Mount() as m:
        h.check_segment(m, "fps24.mp4", "0.5", "2", "60")
        h.check_segment(m, "fps24.mp4", "0.01", "0.5", "60")


@test
def fps30_source_at_12():
    with h.Mount() as m:
        h.check_segment(m, "cfr30.mp4", "1", "2", "12")
        h.check_segment(m, "cfr30.mp4", "0.25", "1.5", "12")


@test
def variable_frame_rate_with_gaps():
    src = h.fixture("vfr.mp4")
    fr = h.probe_frames(src)
    check(fr.pts == h.VFR_TICKS and fr.tb.denominator == 90000,
          "vfr fixture timestamps changed: %s" % fr.pts)
    with h.Mount() as m:
        h.check_segment(m, "vfr.mp4", "0", "6", "30")      # whole clip, 1.6 s and 1 s gaps
        h.check_segment(m, "vfr.mp4", "2.5", "0.5", "60")  # slot 0 ties frame 10 exactly
        h.check_segment(m, "vfr.mp4", "2", "4", "10")
        h.check_segment(m, "vfr.mp4", "0.95", "3.3", "25")  # S*F not whole
        h.check_segment(m, "vfr.mp4", "4.1", "2", "60")    # runs past the end (5.35 s)


@test
def container_start_time_is_time_zero():
    # offset.ts starts at 1.48 s; segment times count from there, as the CLI's do.
    check(h.probe_frames(h.fixture("offset.ts")).origin == h.Fraction(148, 100),
          "offset.ts start changed")
    with h.Mount() as m:
        h.check_segment(m, "offset.ts", "0.5", "1", "30")
        h.check_segment(m, "offset.ts", "0", "3", "25")
        h.check_segment(m, "offset.ts", "0.52", "2", "10")
        h.check_segment(m, "offset.ts", "2.5", "1", "30")  # runs past the end


@test
def frame_numbers_past_99999():
    # longgap.mp4: frames at 0 s, 1 s and 3400 s. At 30 fps, 102001 slots: names widen
    # past frame_99999 and every slot shows one of three pictures.
    src = h.fixture("longgap.mp4")
    fr = h.probe_frames(src)
    check(fr.pts == h.LONGGAP_TICKS, "longgap fixture timestamps changed: %s" % fr.pts)
    idx = h.model_slots(fr, "0", "3600", "30")
    n = len(idx)
    check(n == 102001, "model count %d" % n)
    seg = "longgap.mp4@0+3600@30"
    with h.Mount() as m:
        check(m.info(seg)["count"] == n, ".hfinfo count %r, expected %d"
              % (m.info(seg)["count"], n))
        names = os.listdir(m.path(seg))
        want = {"frame_%05d.png" % (k + 1) for k in range(n)} | {".hfinfo"}
        check(len(names) == len(want) and set(names) == want,
              "listing has %d entries, expected %d; e.g. %s"
              % (len(names), len(want), sorted(set(names) ^ want)[:4]))
        allf = h.ref_all(src)
        ks = [0, 1, 29, 30, 31, 99998, 99999, 100000, n - 2, n - 1]
        blobs = []
        for k in ks:
            with open(m.path(seg, "frame_%05d.png" % (k + 1)), "rb") as f:
                blobs.append(f.read())
        h.assert_frames_equal(h.decode_images(blobs), [allf[idx[k]] for k in ks],
                              seg + " slots %s" % ks, 0, [idx[k] for k in ks], allf)
        info = m.wait_info(seg, lambda i: i["state"] in ("complete", "error"), timeout=120)
        check(info["state"] == "complete", "state %r after 120 s" % info["state"])
        check(m.stats()["images_encoded"] == 3, "images_encoded %d for 3 distinct pictures"
              % m.stats()["images_encoded"])
        h.expect_errno(lambda: os.stat(m.path(seg, "frame_%05d.png" % (n + 1))),
                       (errno.ENOENT,), "frame past the count")


@test
def slots_before_the_first_frame_show_it():
    # delayed.mp4: the container starts at 0 (audio), the first video frame is at 0.5 s.
    fr = h.probe_frames(h.fixture("delayed.mp4"))
    check(fr.origin == 0 and fr.times()[0] == h.Fraction(1, 2), "delayed.mp4 changed")
    with h.Mount() as m:
        seg, blobs, ours = h.check_segment(m, "delayed.mp4", "0", "1", "30")
        check(len(ours) == 30, "%d frames, expected 30" % len(ours))
        h.check_segment(m, "delayed.mp4", "0.25", "0.5", "60")


@test
def segment_past_end_of_source():
    # cfr30.mp4 ends at 4.0 s: @3.5+2@30 has 15 slots, not 60.
    with h.Mount() as m:
        seg, blobs, _ = h.check_segment(m, "cfr30.mp4", "3.5", "2", "30")
        check(len(blobs) == 15, "%s: %d frames, expected 15" % (seg, len(blobs)))
        check(m.info(seg)["count"] == 15, ".hfinfo count is not 15")


@test
def name_with_at_and_plus():
    with h.Mount() as m:
        check(os.path.isfile(m.path("we@ird+name.mp4")), "we@ird+name.mp4 not mirrored")
        seg, blobs, _ = h.check_segment(m, "we@ird+name.mp4", "1", "1", "30")
        info = m.info(seg)
        check(info["source"] == h.fixture("we@ird+name.mp4"),
              ".hfinfo source is %r" % info["source"])
        h.check_segment(m, "we@ird+name.mp4", "0.5", "0.5", "60", opts="png")


@test
def two_spellings_share_frames():
    with h.Mount() as m:
        seg1, blobs1, ours1 = h.check_segment(m, "cfr30.mp4", "1.50", "2.0", "30")
        encoded = m.stats()["images_encoded"]
        check(encoded >= 60, "images_encoded is %d after 60 distinct frames" % encoded)
        seg2, blobs2, ours2 = h.check_segment(m, "cfr30.mp4", "1.5", "2", "30")
        h.assert_frames_equal(ours2, ours1, "second spelling vs first")
        st = m.stats()
        check(st["images_encoded"] == encoded,
              "second spelling encoded %d more images" % (st["images_encoded"] - encoded))
        c1, c2 = m.info(seg1)["segment"], m.info(seg2)["segment"]
        check(c1 == c2 and os.path.basename(c1) == "cfr30.mp4@1.5+2@30",
              ".hfinfo segment names: %r and %r" % (c1, c2))


@test
def hfinfo_fields_and_states():
    seg = "cfr30.mp4@0.2+1.5@30"
    with h.Mount() as m:
        info = m.info(seg)
        check(info["state"] == "listed", "cold segment state is %r" % info["state"])
        check(info["frames_done"] == 0, "cold frames_done is %r" % info["frames_done"])
        check(info["error"] is None, "error is %r" % info["error"])
        check(info["count"] == 45 and info["width"] == 320 and info["height"] == 240
              and info["format"] == "png",
              "count/width/height/format: %r" % {k: info.get(k) for k in
                                                 ("count", "width", "height", "format")})
        check(info["source"] == h.fixture("cfr30.mp4"), "source is %r" % info["source"])
        check(os.path.basename(info["segment"]) == seg, "segment is %r" % info["segment"])
        blobs = m.read_segment(seg)
        codec, pix, w, hh = h.probe_image(blobs[0])
        check((codec, pix, w, hh) == ("png", "rgb24", 320, 240),
              "frame_00001 is %s %s %dx%d" % (codec, pix, w, hh))
        info = m.wait_info(seg, lambda i: i["state"] == "complete")
        check(info["state"] == "complete" and info["frames_done"] == 45,
              "after reading every frame: state %r frames_done %r"
              % (info["state"], info["frames_done"]))


@test
def far_frame_first_then_rest():
    # Last frame of a cold segment first, then the rest: every slot still right.
    src = h.fixture("cfr30.mp4")
    seg = "cfr30.mp4@0.3+3.5@30"
    with h.Mount() as m:
        n = m.info(seg)["count"]
        with open(m.path(seg, "frame_%05d.png" % n), "rb") as f:
            last = f.read()
        idx, refm = h.ref_model(src, "0.3", "3.5", "30")
        check(n == len(idx), "count %d, expected %d" % (n, len(idx)))
        h.assert_frames_equal(h.decode_images([last]), refm[-1:], seg + " last frame first")
        h.check_segment(m, "cfr30.mp4", "0.3", "3.5", "30")


if __name__ == "__main__":
    h.main()
