#!/usr/bin/env python3
"""
SPEC 5 "Memory is a budget": frames in flight (decoded pictures, converted images, encode
buffers) stay within decode.memory whatever the number of encoder threads; a 4K 10-bit
segment does not make the daemon grow with the number of cores. Counted from .hfstats and
the daemon's own peak RSS (VmHWM), not timed; frames proved against the ffmpeg CLI.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

MB = 1 << 20


@test
def four_k_ten_bit_stays_within_the_budget_at_any_thread_count():
    name, seg = "hdr4k.mp4", "hdr4k.mp4@0+1@10@untagged=cli"  # untagged: the CLI reads it as BT.601
    ref = None
    peaks = []
    sanitized = False
    for threads in (2, 16):
        with h.Mount(opts=["threads=%d" % threads, "memory=256M"]) as m:
            blobs = m.read_segment(seg)
            st = m.stats()
            rss = m.peak_rss()
            # A sanitizer's shadow memory and quarantine make RSS say nothing about ours:
            # there, the budget's own accounting is what is checked.
            sanitized = m.sanitized()
            peaks.append((threads, rss, st["memory_in_flight_peak"]))
            check(st["memory_budget"] == 256 * MB, "budget %r" % st["memory_budget"])
            # one frame may always be in flight, however large; more only within the budget
            check(st["memory_in_flight_peak"] <= 256 * MB + 160 * MB,
                  "threads=%d: %d bytes in flight" % (threads, st["memory_in_flight_peak"]))
            check(sanitized or rss <= 400 * MB, "threads=%d: peak RSS %.0f MB" % (threads, rss / MB))
            if ref is None:  # pixels as the CLI decodes the frames (16 bits per sample)
                idx, ref = h.ref_model(h.fixture(name), "0", "1", "10", pix_fmt="rgb48be")
            h.assert_frames_equal(h.decode_images(blobs[:3], pix_fmt="rgb48be"), ref[:3],
                                  "%s threads=%d" % (seg, threads))
    print("  peak RSS / in flight: " + ", ".join("threads=%d %.0f MB / %.0f MB" % (t, r / MB, f / MB)
                                                for t, r, f in peaks))
    check(peaks[1][2] <= 256 * MB + 160 * MB and (sanitized or
                                                  peaks[1][1] <= peaks[0][1] * 1.25 + 32 * MB),
          "16 threads grew the daemon from %.0f to %.0f MB" % (peaks[0][1] / MB, peaks[1][1] / MB))
    if sanitized:
        print("  (a sanitizer build: RSS not judged, the in-flight accounting is)")


if __name__ == "__main__":
    h.main()
