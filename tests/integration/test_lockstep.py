#!/usr/bin/env python3
"""
Clips read the way a renderer's capture loop reads them (issue 21): for each output frame,
frame k of every clip of the composition, by two capture workers at once, with `jpg` at box
sizes (a transform per job) and PNG mixed in.

- the four segments of a 1080p composition (three 948x528 boxes, one 628x348, two sources),
  read in lockstep by two threads (frames 1-75 and 76-150): no read fails, and every image
  decodes to the pixels of the same slot read alone on a fresh store;
- eight segments, png and jpg mixed, three sizes, two sources, the same way.

Before the fix, 50-124 of the 600 reads of the first case failed with EIO ("the mjpeg
encoder failed"): one encoder per thread served every job, and libavcodec's mjpeg encoder
refuses a frame whose timestamp is not after the last one it encoded, which frames of
other jobs (other sources, other times) arrive with.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402


@h.generator("lock_clip.mp4")
def _gen_clip(out):
    h.ffmpeg_gen(out, ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "16"], "",
                 ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "23"])


@h.generator("lock_other.mp4")
def _gen_other(out):
    h.ffmpeg_gen(out, ["-f", "lavfi", "-i", "mandelbrot=size=1920x1080:rate=30", "-t", "7"], "",
                 ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "23"])


BOX = "w=948,h=528,fit=cover,hold"
SMALL = "w=628,h=348,fit=cover,hold"
FOUR = [
    ("lock_clip.mp4@10+5@30@jpg," + BOX, "jpg"),
    ("lock_clip.mp4@11+5@30@jpg," + BOX, "jpg"),
    ("lock_other.mp4@2+5@30@jpg," + BOX, "jpg"),
    ("lock_clip.mp4@5+5@30@jpg," + SMALL, "jpg"),
]
# Shorter (3 s: frames 1-45 and 46-90), so that the suite stays quick under ASan.
EIGHT = [(seg.replace("+5@", "+3@"), ext) for seg, ext in FOUR] + [
    ("lock_clip.mp4@0+3@30@w=480,h=270,fit=cover,hold", "png"),
    ("lock_other.mp4@1+3@30@jpg,q=5,w=480,h=270,fit=contain", "jpg"),
    ("lock_clip.mp4@2.5+3@30@" + SMALL, "png"),
    ("lock_other.mp4@0+3@30@jpg", "jpg"),
]


def frame_path(m, seg, ext, k):
    return m.path(seg, "frame_%05d.%s" % (k, ext))


def lockstep(m, segs, frames, workers=2):
    """Each worker reads its share of frame numbers; for each, frame k of every segment in
    turn. Returns ({(seg, k): bytes}, [errors])."""
    got, errors, lock = {}, [], threading.Lock()
    share = frames // workers

    def worker(first):
        for k in range(first, first + share):
            for seg, ext in segs:
                try:
                    with open(frame_path(m, seg, ext, k), "rb") as f:
                        data = f.read()
                except OSError as e:
                    with lock:
                        errors.append("%s/frame_%05d: %s" % (seg, k, e))
                    continue
                with lock:
                    got[(seg, k)] = data

    threads = [threading.Thread(target=worker, args=(1 + i * share,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got, errors


def alone(segs):
    """Every segment read by itself, one after the other, on a fresh store."""
    out = {}
    with h.Mount() as m:
        for seg, ext in segs:
            for k, blob in enumerate(m.read_segment(seg, ext)):
                out[(seg, k + 1)] = blob
    return out


def compare(segs, frames):
    with h.Mount() as m:
        for seg, _ in segs:
            info = m.info(seg)
            check(info.get("count") == frames and info.get("error") is None,
                  "%s: .hfinfo count %r error %r" % (seg, info.get("count"), info.get("error")))
        got, errors = lockstep(m, segs, frames)
        log = m.log_text(full=True)
    check(not errors, "%d of %d lockstep reads failed, e.g. %s; daemon log:\n%s"
          % (len(errors), frames * len(segs), "; ".join(errors[:3]), log[-2000:]))
    check("encoder failed" not in log, "the daemon logged an encoder failure:\n" + log[-2000:])
    ref = alone(segs)
    check(set(got) == set(ref), "lockstep read %d images, alone %d" % (len(got), len(ref)))
    for seg, ext in segs:
        ks = range(1, frames + 1)
        ours = h.decode_images([got[(seg, k)] for k in ks], ext)
        theirs = h.decode_images([ref[(seg, k)] for k in ks], ext)
        for k, (a, b) in enumerate(zip(ours, theirs)):
            check((a.w, a.h) == (b.w, b.h), "%s/frame_%05d: %dx%d in lockstep, %dx%d alone"
                  % (seg, k + 1, a.w, a.h, b.w, b.h))
            # The same source frame through the same chain and encoder: the same picture.
            check(a.data == b.data, "%s/frame_%05d: pixels differ from the slot read alone "
                  "(PSNR %.2f dB)" % (seg, k + 1, h.psnr(a, b)))


@test
def four_sized_jpg_clips_in_lockstep_from_two_workers():
    compare(FOUR, 150)


@test
def eight_clips_png_and_jpg_three_sizes_two_sources():
    compare(EIGHT, 90)


if __name__ == "__main__":
    h.main()
