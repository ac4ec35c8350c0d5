#!/usr/bin/env python3
"""
SPEC 4 Hold: with `hold`, a segment has every slot k with k/F < D whatever the source's
length; slots at or past the end show the last frame (pixels equal to the ffmpeg CLI's
decode of it) and share its one stored image (.hfstats images_encoded); a start at or past
the end is no error. Without `hold`, the old behaviour: fewer slots, or only .hfinfo with
an error.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402


def encoded(m):
    return m.stats()["images_encoded"]


def expected_count(dur, fps):
    """Every k with k/F < D, exactly."""
    D, F = h.q(dur), h.q(fps)
    k = 0
    while h.Fraction(k) / F < D:
        k += 1
    return k


def check_hold(m, name, start, dur, fps, opts="hold", vf="", ext="png", qv=None):
    """Reads name@start+dur@fps@opts and proves it: count (from .hfinfo before any frame and
    from the listing) is every k with k/F < D, each slot equals the CLI's image of the frame
    the model picks (past the end: the last frame), held slots are one image. Returns
    (seg, slot -> frame indices, blobs)."""
    src = h.fixture(name)
    seg = h.seg_name(name, start, dur, fps, opts)
    n = expected_count(dur, fps)
    info = m.info(seg)
    check(info.get("count") == n, "%s: .hfinfo count %r before any frame, expected %d (every "
          "k with k/F < D)" % (seg, info.get("count"), n))
    check(info.get("error") is None and info.get("state") != "error",
          "%s: .hfinfo state %r, error %r" % (seg, info.get("state"), info.get("error")))
    blobs = m.read_segment(seg, ext)
    check(len(blobs) == n, "%s: %d frames listed, expected %d" % (seg, len(blobs), n))
    ours = h.decode_images(blobs, ext)
    fr = h.probe_frames(src)
    idx, ref, _ = h.ref_model_chain(src, start, dur, fps, vf, ext, qv, hold=True)
    check(len(idx) == n, "test's own model: %d slots, expected %d" % (len(idx), n))
    if ext == "jpg":
        # another JPEG encoder than the CLI's (SPEC 4): the same picture within JPEG's
        # error, where a neighbouring frame of this moving, grainy source is far off
        for k, (a, b) in enumerate(zip(ours, ref)):
            p = h.psnr(a, b)
            check(p >= 35, "%s: frame_%05d is %.1f dB from the CLI's JPEG of source frame #%d"
                  % (seg, k + 1, p, idx[k]))
    else:
        h.assert_frames_equal(ours, ref, "%s vs ffmpeg %s" % (seg, vf or "decode"), 0, idx)
    last = len(fr.pts) - 1
    F, S = h.q(fps), h.q(start)
    held = [k for k in range(n) if S + h.Fraction(k) / F >= fr.t_end()]
    check(held, "%s: no slot is past the end; the case proves nothing" % seg)
    check(all(idx[k] == last for k in held), "test's own model: a held slot is not the last "
          "frame")
    check(len(set(blobs[k] for k in held)) == 1, "%s: the held slots are not one image (%d "
          "different files)" % (seg, len(set(blobs[k] for k in held))))
    info = m.wait_info(seg, lambda i: i.get("state") in ("complete", "error"))
    check(info.get("state") == "complete" and info.get("error") is None
          and info.get("frames_done") == n, "%s: after reading, .hfinfo state %r frames_done %r "
          "error %r" % (seg, info.get("state"), info.get("frames_done"), info.get("error")))
    return seg, idx, blobs


@test
def hold_past_the_end():
    # cfr30.mp4: 4 s at 30 fps, its last frame ends at 4.0 s.
    fr = h.probe_frames(h.fixture("cfr30.mp4"))
    check(fr.t_end() == 4 and len(fr.pts) == 120, "cfr30.mp4 ends at %s with %d frames"
          % (fr.t_end(), len(fr.pts)))
    with h.Mount() as m:
        seg, idx, _ = check_hold(m, "cfr30.mp4", "3.5", "1", "30")
        check(m.info(seg)["segment"] == "cfr30.mp4@3.5+1@30@hold",
              "canonical name %r" % m.info(seg)["segment"])
        check(encoded(m) == len(set(idx)) == 15, "%d images encoded for %d distinct frames "
              "(15 expected): held slots must share the last frame's image"
              % (encoded(m), len(set(idx))))
        # A fractional duration: k/F < 0.35 is k = 0..10. Its frames are all stored already.
        seg, idx, _ = check_hold(m, "cfr30.mp4", "3.9", "0.35", "30", "png,hold")
        check(len(idx) == 11, "%s: %d slots" % (seg, len(idx)))
        check(encoded(m) == 15, "%s encoded %d images already stored" % (seg, encoded(m) - 15))
    # Milliseconds time base (WebM): the end is its last frame's pts plus its duration.
    with h.Mount() as m:
        seg, idx, _ = check_hold(m, "ms30.webm", "2.9", "0.5", "30")
        check(encoded(m) == len(set(idx)), "%s: %d images encoded for %d distinct frames"
              % (seg, encoded(m), len(set(idx))))


@test
def hold_start_at_or_past_the_end():
    src = h.fixture("cfr30.mp4")
    lastf = h.ref_all(src)[-1]
    with h.Mount() as m:
        for start, dur in (("4", "0.2"), ("5", "0.5"), ("3600", "0.1"), ("4.0001", "0.05")):
            seg, idx, blobs = check_hold(m, "cfr30.mp4", start, dur, "30")
            ours = h.decode_images(blobs)
            h.assert_frames_equal(ours, [lastf] * len(ours), seg + " vs the CLI's last frame")
            check(len(set(blobs)) == 1, "%s: %d different files" % (seg, len(set(blobs))))
        check(encoded(m) == 1, "%d images encoded; every slot of these segments is the last "
              "frame, one image" % encoded(m))


@test
def without_hold_the_old_behaviour():
    with h.Mount() as m:
        seg, blobs, ours = h.check_segment(m, "cfr30.mp4", "3.5", "1", "30")
        check(len(blobs) == 15, "%s: %d frames, expected 15 (up to the end)" % (seg, len(blobs)))
        for start in ("4", "5"):
            seg = h.seg_name("cfr30.mp4", start, "0.5", "30")
            info = m.info(seg)
            err = info.get("error")
            check(info.get("state") == "error" and isinstance(err, str) and "past" in err
                  and "\n" not in err.strip(), "%s: .hfinfo state %r error %r"
                  % (seg, info.get("state"), err))
            names = sorted(os.listdir(m.path(seg)))
            check(names == [".hfinfo"], "%s lists %s" % (seg, names[:6]))


@test
def hold_with_a_transform_and_jpg():
    # wide640.mp4: 2 s at 30 fps. Untagged, so the jpg slots are the CLI's -q:v 2 pictures
    # within JPEG's error.
    name = "wide640.mp4"
    with h.Mount() as m:
        seg, idx, _ = check_hold(m, name, "1.9", "0.3", "30", "hold,h=180,w=320",
                                 vf=h.transform_chain(w=320, h=180))
        check(m.info(seg)["segment"] == name + "@1.9+0.3@30@w=320,h=180,hold",
              "canonical name %r" % m.info(seg)["segment"])
        check(encoded(m) == len(set(idx)) == 3, "%s: %d images for %d distinct frames"
              % (seg, encoded(m), len(set(idx))))
        before = encoded(m)
        seg, idx, _ = check_hold(m, name, "1.9", "0.3", "30", "hold,jpg", ext="jpg", qv=2)
        check(m.info(seg)["segment"] == name + "@1.9+0.3@30@jpg,hold",
              "canonical name %r" % m.info(seg)["segment"])
        check(encoded(m) - before == len(set(idx)), "%s: %d images for %d distinct frames"
              % (seg, encoded(m) - before, len(set(idx))))


if __name__ == "__main__":
    h.main()
