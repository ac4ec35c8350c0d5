#!/usr/bin/env python3
"""
SPEC 5 "Cost follows the window": a segment of a long video reads only the bytes around
its window (the container's own index finds the keyframe before it), whatever the length
of the video; what was learnt is kept in the store and not read again. Counted from
.hfstats (index_bytes_read), never timed. Frames are proved against the ffmpeg CLI and
the count against the exact slot model over ffprobe's timestamps of the whole file.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

MB = 1 << 20




def cli_bytes(src, start, dur):
    """Bytes the CLI reads from the file to extract the same window: a shell's
    /proc/PID/io counts what its reaped children read; less what a bare shell reads."""
    def rchar(cmd):
        out = h.run(["sh", "-c", cmd + '; grep "^rchar" /proc/$$/io', "sh", src, start, dur])
        return int(out.stdout.split()[-1])
    return rchar('ffmpeg -nostdin -v error -ss "$2" -i "$1" -t "$3" -f null -') - rchar("true")


def window(m, name, start, dur="2", fps="30"):
    """Reads a segment cold; returns the index bytes it took. Its count is the exact
    model's over the whole file's timestamps and each slot's pixels are the CLI's decode
    of the source frame the model picks."""
    src = h.fixture(name)
    seg = h.seg_name(name, start, dur, fps)
    before = m.stats()["index_bytes_read"]
    blobs = m.read_segment(seg)
    used = m.stats()["index_bytes_read"] - before
    frames = h.probe_frames(src)
    idx = h.model_slots(frames, start, dur, fps)
    check(len(blobs) == len(idx), "%s: %d frames, the model says %d" % (seg, len(blobs), len(idx)))
    h.assert_frames_equal(h.decode_images(blobs), h.ref_source_frames(src, frames, idx),
                          seg + " vs the CLI's decode of the model's frames")
    return used


@test
def a_window_near_the_end_reads_only_around_it():
    sizes = {}
    with h.Mount() as m:
        for name, start in (("long3.mp4", "170"), ("long12.mp4", "710"), ("long12fs.mp4", "710"),
                            ("long3.mkv", "170"), ("long12.mkv", "710"), ("long12.ts", "700"),
                            ("long3.webm", "170")):
            used = window(m, name, start)
            size = os.path.getsize(h.fixture(name))
            cli = cli_bytes(h.fixture(name), start, "2")
            sizes[name] = used
            print("  %-13s @%s+2@30: index read %7.1f kB (the CLI reads %7.1f kB) of %6.1f MB"
                  % (name, start, used / 1e3, cli / 1e3, size / MB))
            check(used <= 2 * cli + 64 * 1024 and used < size / 2,
                  "%s: %d bytes read for a 2 s window of %d (the CLI reads %d)"
                  % (name, used, size, cli))
    # A 4x longer video costs about the same for a window near its end.
    for short, long_ in (("long3.mp4", "long12.mp4"), ("long3.mkv", "long12.mkv")):
        check(sizes[long_] <= 2 * sizes[short] + 512 * 1024,
              "%s read %d bytes, %s %d: the cost follows the video, not the window"
              % (long_, sizes[long_], short, sizes[short]))


@test
def what_was_learnt_is_not_read_again():
    with h.tempdir() as tmp:
        store = os.path.join(tmp, "store")
        with h.Mount(store=store) as m:
            first = window(m, "long12.mkv", "400", "3")
            check(first > 0, "nothing was read")
        with h.Mount(store=store) as m:  # a later mount, another segment inside that window
            again = window(m, "long12.mkv", "400.5", "2", "25")  # inside it, another rate
            st = m.stats()
            check(again == 0 and st["windows_from_store"] >= 1,
                  "the window was read again: %d bytes, %r" % (again, st))
            info = m.info("long12.mkv@400.5+2@25")
            check(info["index_bytes_read"] == 0 and info["index_ms"] >= 0,
                  ".hfinfo of a segment of a known window: %r" % info)
            # a window elsewhere is read, and then known too
            elsewhere = window(m, "long12.mkv", "100")
            check(elsewhere > 0, "a new window read nothing")
        print("  first mount %d bytes; remount, same window: %d; another window: %d"
              % (first, again, elsewhere))


@test
def windows_and_whole_file_agree_near_keyframes():
    # Starts on, just before and just after a keyframe (1 s GOPs), and a window that
    # crosses the one learnt before: counts and frames as the CLI's.
    with h.Mount() as m:
        for start in ("300", "299.99", "300.01", "301.5"):
            window(m, "long12.mp4", start, "1.2")


@test
def a_slow_lookup_does_not_hold_its_directory():
    # Indexing made slow on purpose (HF_TEST_INDEX_DELAY_MS, read by the daemon only for
    # tests): while one video's segment is being indexed (listed), every other name in
    # the same directory answers at once: files, other videos' segments, and other
    # segments of that same video (a lookup never indexes; listing does, holding only the
    # segment's own directory).
    import threading
    import time
    os.environ["HF_TEST_INDEX_DELAY_MS"] = "1500"
    try:
        with h.Mount() as m:
            done = {}

            def slow():  # listing a cold segment indexes its video
                t = time.monotonic()
                os.listdir(m.path("long3.mkv@10+1@30"))
                done["slow"] = time.monotonic() - t

            th = threading.Thread(target=slow)
            th.start()
            time.sleep(0.3)  # the slow lookup is under way
            waits = []
            for name in ("cfr30.mp4", "ntsc.mp4", "long12.mp4", "garbage.mp4",
                         "long3.mkv", "long12.mkv@300+2@30", "long3.mkv@20+1@30"):
                t = time.monotonic()
                os.stat(m.path(name))
                waits.append((time.monotonic() - t, name))
            th.join(30)
            print("  sibling stats while a lookup indexes (%.2f s): %s" % (
                done.get("slow", -1), ", ".join("%s %.1f ms" % (n, w * 1e3) for w, n in waits)))
            check(done.get("slow", 0) >= 1.4, "the slow lookup was not slow: %r" % done)
            worst = max(waits)
            check(worst[0] < 0.1, "stat of %s waited %.2f s behind the slow lookup" % (worst[1],
                                                                                     worst[0]))
    finally:
        del os.environ["HF_TEST_INDEX_DELAY_MS"]


def lease_holders(store):
    """How many open-file-description locks are held now on the store's lease files."""
    inodes = {os.stat(os.path.join(store, "lock", n)).st_ino
              for n in os.listdir(os.path.join(store, "lock"))} if os.path.isdir(
                  os.path.join(store, "lock")) else set()
    n = 0
    with open("/proc/locks") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 5 and parts[1] == "OFDLCK" and int(parts[5].split(":")[-1]) in inodes:
                n += 1
    return n


@test
def two_mounts_decode_disjoint_windows_at_once_and_overlaps_once():
    import threading
    import time
    with h.tempdir() as tmp:
        store = os.path.join(tmp, "store")
        with h.Mount(store=store) as a, h.Mount(store=store) as b:
            most, stop = [0], []

            def watch():
                while not stop:
                    try:
                        most[0] = max(most[0], lease_holders(store))
                    except OSError:
                        pass
                    time.sleep(0.001)
            w = threading.Thread(target=watch)
            w.start()
            h.in_threads((a.read_segment, "long12.mkv@100+40@30"),
                         (b.read_segment, "long12.mkv@400+40@30"))
            stop.append(1)
            w.join()
            sa, sb = a.stats(), b.stats()
            print("  disjoint windows: at most %d leases held at once; encoded %d + %d"
                  % (most[0], sa["images_encoded"], sb["images_encoded"]))
            check(most[0] >= 2, "the two windows were never decoded at once (%d lease)" % most[0])
            check(sa["images_encoded"] == 1200 and sb["images_encoded"] == 1200,
                  "encoded %d + %d for 1200 + 1200 frames" % (sa["images_encoded"],
                                                           sb["images_encoded"]))
            # overlapping windows: each image once between the two mounts
            ea, eb = sa["images_encoded"], sb["images_encoded"]
            h.in_threads((a.read_segment, "long12.mkv@200+20@30"),
                         (b.read_segment, "long12.mkv@205+20@30"))
            enc = a.stats()["images_encoded"] - ea + b.stats()["images_encoded"] - eb
            distinct = len(set(h.model_slots(h.probe_frames(h.fixture("long12.mkv")), "200",
                                             "25", "30")))
            print("  overlapping windows: %d images encoded between them for %d distinct frames"
                  % (enc, distinct))
            check(enc == distinct, "%d images encoded for %d distinct frames" % (enc, distinct))


def clip_during_clip(m, name, running, other, union):
    """Reads clip `other` (start, dur) while clip `running` (start, dur) is being read
    from its first frame on; returns the hand-overs and images encoded meanwhile, checks
    each image was encoded once (the distinct frames of `union`) and both clips' frames."""
    import threading
    before = m.stats()
    seg = h.seg_name(name, running[0], running[1], "30")
    with open(os.path.join(m.mnt, seg, "frame_00001.png"), "rb") as f:
        f.read()
    t = threading.Thread(target=m.read_segment, args=(seg,))
    t.start()
    window(m, name, other[0], other[1])
    t.join()
    after = m.stats()
    handovers = after["lease_handovers"] - before["lease_handovers"]
    encoded = after["images_encoded"] - before["images_encoded"]
    distinct = len(set(h.model_slots(h.probe_frames(h.fixture(name)), union[0], union[1],
                                     "30")))
    print("  %s while %s runs: hand-overs %d, images encoded %d for %d distinct frames"
          % (other, running, handovers, encoded, distinct))
    check(encoded == distinct, "%d images encoded for %d distinct frames" % (encoded, distinct))
    window(m, name, running[0], running[1])  # its frames (now stored) are the CLI's too
    return handovers


@test
def overlapping_clips_split_the_decode_and_encode_each_frame_once():
    """SPEC 5, one render reading overlapping clips of one video: a clip whose first frame
    lies in another clip's running decode does not wait for it to get there, and every
    image is encoded once between them."""
    name = "long12.mkv"
    with h.Mount() as m:
        # B runs from 303 s; A starts 3 s before B: A decodes up to where B's range
        # starts and adopts B's images from there.
        check(clip_during_clip(m, name, ("303", "120"), ("300", "10"), ("300", "123")) >= 1,
              "clip A waited for clip B's decode instead of decoding its own start")
        # C runs from 500 s; D starts 40 s into C's range, far ahead of C's decode: C
        # hands D the rest of its range, stops at 540 s, adopts D's images, then decodes
        # on from where D's range ends.
        check(clip_during_clip(m, name, ("500", "60"), ("540", "4"), ("500", "60")) >= 1,
              "clip D waited for clip C's decode to reach it")


if __name__ == "__main__":
    h.main()
