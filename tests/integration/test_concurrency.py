#!/usr/bin/env python3
"""
SPEC 5 sharing under load: 100 threads reading random frames of cold, overlapping
segments (and two spellings of one) all get correct images, and every source frame is
encoded once between them; a request far ahead in a cold segment is served by a decode
that starts at the keyframe before it, without decoding the frames before that keyframe
(counted from .hfstats frames_decoded, not timed).
"""

import os
import random
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

SEGMENTS = [("cfr30.mp4", "0", "3", "30"),
            ("cfr30.mp4", "1.5", "2.5", "30"),
            ("cfr30.mp4", "1.50", "2.50", "30")]  # another spelling of the second


@test
def hundred_threads_random_frames_of_overlapping_segments():
    names = [h.seg_name(*s) for s in SEGMENTS]
    with h.Mount() as m:
        counts = {n: m.info(n)["count"] for n in names}
        got, errors = {}, []
        lock = threading.Lock()

        def reader(seed):
            rnd = random.Random(seed)
            for _ in range(15):
                n = rnd.choice(names)
                k = rnd.randrange(1, counts[n] + 1)
                try:
                    with open(m.path(n, "frame_%05d.png" % k), "rb") as f:
                        data = f.read()
                except OSError as e:
                    with lock:
                        errors.append("%s frame %d: %s" % (n, k, e))
                    continue
                with lock:
                    prev = got.setdefault((n, k), data)
                    if prev != data:
                        errors.append("%s frame %d: two reads returned different bytes" % (n, k))

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(not errors, "concurrent reads failed: %s" % errors[:5])
        check(len(got) > 100, "only %d distinct frames were read" % len(got))

        # What the threads read is what a full read returns, and that is proven against
        # the ffmpeg CLI (pixels, decoded on both sides).
        for s, n in zip(SEGMENTS, names):
            _, blobs, _ = h.check_segment(m, *s)
            for (gn, k), data in got.items():
                if gn == n:
                    check(blobs[k - 1] == data, "%s frame %d changed after the load" % (n, k))

        frames = h.probe_frames(h.fixture("cfr30.mp4"))
        want = set()
        for s in SEGMENTS:
            want |= set(h.model_slots(frames, *s[1:]))
        st = m.stats()
        print("  %d reads of %d distinct slots; %d images encoded for %d distinct frames; "
              "%d extractions, %d joined" % (100 * 15, len(got), st["images_encoded"], len(want),
                                             st["extractions_started"], st["joined"]))
        check(st["images_encoded"] == len(want),
              "images_encoded %d for %d distinct source frames: some frame was encoded twice"
              % (st["images_encoded"], len(want)))
        check(st["frames_decoded"] <= len(frames.pts) + 24 * st["extractions_started"],
              "frames_decoded %d for a %d-frame source in %d extractions"
              % (st["frames_decoded"], len(frames.pts), st["extractions_started"]))


@test
def far_ahead_request_decodes_from_its_keyframe():
    # cfr30.mp4 has a keyframe every 12 frames; slot 110 of @0+4@30 shows source frame 109,
    # whose keyframe is frame 108. eager=false so that only the request's own decode runs.
    seg = h.seg_name("cfr30.mp4", "0", "4", "30")
    with h.Mount(opts=["eager=false"]) as m:
        with open(m.path(seg, "frame_00110.png"), "rb") as f:
            blob = f.read()
        st = m.stats()
        print("  frame 110 of a cold segment: %d frames decoded, %d images encoded"
              % (st["frames_decoded"], st["images_encoded"]))
        check(st["frames_decoded"] <= 12,
              "frame 110 decoded %d frames; the decode should start at keyframe 108"
              % st["frames_decoded"])
        check(st["images_encoded"] == 1, "images_encoded %d" % st["images_encoded"])
        ours = h.decode_images([blob])
        ref = h.ref_fps(h.fixture("cfr30.mp4"), "0", "4", "30")
        h.assert_frames_equal(ours, [ref[109]], "far-ahead frame 110")


if __name__ == "__main__":
    h.main()
