#!/usr/bin/env python3
"""
SPEC 5 "Cost follows the window", in bytes, on long GOPs (keyframes 10 s apart, as screen
recordings have them; x264 with B-frames and its default b-pyramid): a window near the end
of a few-minute source reads at most 1.5x the source bytes the ffmpeg CLI reads to extract
it (`ffmpeg -ss S -i SRC -t D -vf fps=30 -f null -`), for MP4 (faststart and moov at the
end), Matroska, WebM (VP9) and MPEG-TS. Counted (.hfstats source_bytes_read, which holds
the index's bytes and the decoders'; the CLI's /proc io), never timed. The count and each
slot's source frame are the exact model's over ffprobe's timestamps of the whole file, the
pixels the CLI's decode of those frames; a remount reads nothing again for the window.
"""

import atexit
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

SECONDS = 150  # keyframes at 0, 10, ..., 140
GOP = ["-g", "300", "-keyint_min", "300", "-sc_threshold", "0"]
# Windows near the end: ending 2 s before a keyframe (a whole-GOP scan past it would read
# 8 s more), ending just after one, and running into the stream's end.
WINDOWS = (("134", "4"), ("137.5", "3"), ("147", "4"))




_SOURCES = []


def sources():
    """The sources, made once per run in a directory of their own: (dir, names)."""
    if not _SOURCES:
        d = tempfile.mkdtemp(prefix="hfit-gop10-")
        atexit.register(shutil.rmtree, d, True)
        _SOURCES.extend([d, make_sources(d)])
    return _SOURCES[0], _SOURCES[1]


def make_sources(d):
    base = os.path.join(d, "gop10.mp4")
    src = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=%d" % SECONDS]
    h.run(["ffmpeg", "-nostdin", "-y", "-v", "error"] + src +
          ["-vf", "format=yuv420p", "-c:v", "libx264", "-preset", "veryfast", "-crf", "14",
           "-bf", "3", "-threads", "2"] + GOP + [base])

    def remux(name, fmt, extra=()):
        h.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", base, "-c", "copy"]
              + list(extra) + ["-f", fmt, os.path.join(d, name)])
    remux("gop10fs.mp4", "mp4", ["-movflags", "+faststart"])
    remux("gop10.mkv", "matroska")
    remux("gop10.ts", "mpegts", ["-muxdelay", "0", "-muxpreload", "0"])
    h.run(["ffmpeg", "-nostdin", "-y", "-v", "error"] + src +
          ["-vf", "format=yuv420p", "-c:v", "libvpx-vp9", "-deadline", "realtime",
           "-cpu-used", "8", "-row-mt", "1", "-threads", "2", "-b:v", "1M"] + GOP +
          [os.path.join(d, "gop10.webm")])
    return ["gop10.mp4", "gop10fs.mp4", "gop10.mkv", "gop10.webm", "gop10.ts"]


def cli_bytes(src, start, dur):
    """Bytes the CLI reads to extract the window: a shell's /proc/PID/io counts what its
    reaped children read; less what a bare shell reads."""
    def rchar(cmd):
        out = h.run(["sh", "-c", cmd + '; grep "^rchar" /proc/$$/io', "sh", src, start, dur])
        return int(out.stdout.split()[-1])
    return (rchar('ffmpeg -nostdin -v error -ss "$2" -i "$1" -t "$3" -vf fps=30 -f null -')
            - rchar("true"))


def settled(m, timeout=30):
    """.hfstats once no extraction runs (a decoder's bytes are counted when it ends)."""
    deadline = time.monotonic() + timeout
    while True:
        st = m.stats()
        if (st["jobs_running"] == 0 and st["extractions_started"] ==
                st["extractions_completed"] + st["extractions_failed"]) or \
                time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def read_window(m, d, name, start, dur, fps="30"):
    """Reads a segment; returns the source bytes it took. Count and frames as the exact
    model over the whole file's timestamps says, pixels as the CLI decodes them."""
    src = os.path.join(d, name)
    seg = h.seg_name(name, start, dur, fps)
    before = m.stats()["source_bytes_read"]
    blobs = m.read_segment(seg)
    used = settled(m)["source_bytes_read"] - before
    frames = h.probe_frames(src)
    idx = h.model_slots(frames, start, dur, fps)
    check(len(blobs) == len(idx), "%s: %d frames, the model says %d"
          % (seg, len(blobs), len(idx)))
    check(m.info(seg).get("count") == len(idx), "%s: .hfinfo count %r, the model says %d"
          % (seg, m.info(seg).get("count"), len(idx)))
    h.assert_frames_equal(h.decode_images(blobs), h.ref_source_frames(src, frames, idx),
                          seg + " vs the CLI's decode of the model's frames")
    return used


@test
def a_long_gop_window_reads_about_what_the_cli_reads():
    d, names = sources()
    worst, over = {}, []
    with h.tempdir() as tmp:
        for name in names:
            for start, dur in WINDOWS:
                store = os.path.join(tmp, "store-%s-%s" % (name, start))
                with h.Mount(store=store, source_root=d) as m:  # a fresh store
                    used = read_window(m, d, name, start, dur)
                cli = cli_bytes(os.path.join(d, name), start, dur)
                ratio = used / cli
                worst[name] = max(worst.get(name, 0), ratio)
                print("  %-12s @%s+%s@30: read %7.1f kB, the CLI %7.1f kB: %.2fx"
                      % (name, start, dur, used / 1e3, cli / 1e3, ratio))
                if ratio > 1.5:
                    over.append("%s @%s+%s: %d bytes read, the CLI reads %d (%.2fx)"
                                % (name, start, dur, used, cli, ratio))
                if start == WINDOWS[0][0]:
                    # a remount reads nothing again for a known window
                    with h.Mount(store=store, source_root=d) as m:
                        again = read_window(m, d, name, start, dur)
                        st = m.stats()
                        check(again == 0 and st["index_bytes_read"] == 0,
                              "%s: a remount read %d bytes for a known window: %r"
                              % (name, again, st))
                shutil.rmtree(store, ignore_errors=True)
    print("  worst ratio: " + ", ".join("%s %.2fx" % kv for kv in worst.items()))
    check(not over, "more than 1.5x the CLI's bytes:\n  " + "\n  ".join(over))


@test
def windows_of_a_long_gop_agree_with_the_whole_file():
    # Windows starting and ending on, just before and just after keyframes, crossing a
    # GOP boundary, at another rate and with hold past the end: counts and frames as the
    # exact model over the whole file's timestamps.
    d, names = sources()
    with h.Mount(source_root=d) as m:
        for name in names:
            for start, dur, fps in (("129.99", "0.5", "30"), ("130.01", "1", "30"),
                                    ("129", "1", "30"), ("138.9", "1.2", "24"),
                                    ("119.5", "0.6", "60"), ("148.5", "1.5", "30")):
                read_window(m, d, name, start, dur, fps)
        # hold past the end: every slot at or past the last frame shows it
        name = "gop10.mkv"
        seg = h.seg_name(name, "149", "2", "30", "hold")
        blobs = m.read_segment(seg)
        frames = h.probe_frames(os.path.join(d, name))
        idx = h.model_slots(frames, "149", "2", "30", hold=True)
        check(len(blobs) == len(idx) == 60, "%s: %d frames, the model says %d"
              % (seg, len(blobs), len(idx)))
        h.assert_frames_equal(h.decode_images(blobs),
                              h.ref_source_frames(os.path.join(d, name), frames, idx),
                              seg + " vs the CLI's decode of the model's frames")



@test
def past_the_bound_the_decode_reads_the_file_again():
    # decode.memory too small to keep the index pass's packets (a quarter of it): the
    # decode seeks in the file itself, on long GOPs too (MPEG-TS bisects and can land
    # after the keyframe), and the frames are the same.
    d, names = sources()
    with h.Mount(source_root=d, opts=["memory=1M"]) as m:
        for name in names:
            for start, dur in WINDOWS:
                before = m.stats()["index_bytes_read"]
                used = read_window(m, d, name, start, dur)
                index = m.stats()["index_bytes_read"] - before
                check(used > index, "%s @%s+%s: the decode read nothing (%d bytes in all)"
                      % (name, start, dur, used))

if __name__ == "__main__":
    h.main()
