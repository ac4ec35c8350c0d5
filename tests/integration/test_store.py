#!/usr/bin/env python3
"""
SPEC 6 backing store, seen from outside: frame-level dedupe (a 24 fps source read at 60
fps encodes each source frame once; overlapping segments encode only their new frames),
warm remounts serve identical pixels without encoding, zero-length store entries and
modified sources are never hits, kill -9 loses no complete work and serves nothing torn,
and an unmounted store holds no temp leftovers.
"""

import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

TEMP_NAME = re.compile(r"(^|[._-])(tmp|temp|part|partial|incomplete|new)([._-]|\d|$)|~$",
                       re.IGNORECASE)
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def distinct(name, start, dur, fps):
    return set(h.model_slots(h.probe_frames(h.fixture(name)), start, dur, fps))


def store_files(store):
    out = []
    for dirpath, _, files in os.walk(store):
        for f in files:
            out.append(os.path.join(dirpath, f))
    return out


def assert_clean_store(store):
    files = store_files(store)
    check(files, "the store is empty")
    leftovers = [os.path.relpath(p, store) for p in files
                 if TEMP_NAME.search(os.path.basename(p))]
    check(not leftovers, "temp leftovers in the store after unmount: %s" % leftovers[:10])
    torn = []
    for p in files:
        with open(p, "rb") as f:
            head = f.read(8)
            if head == h.PNG_SIG:
                f.seek(-12, os.SEEK_END)
                if f.read(12) != PNG_END:
                    torn.append(os.path.relpath(p, store))
    check(not torn, "torn PNG files in the store: %s" % torn[:10])


@test
def fps24_at_60_encodes_each_source_frame_once():
    want = distinct("fps24.mp4", "0", "2", "60")
    check(len(want) == 48, "model says %d distinct frames" % len(want))
    with h.Mount() as m:
        h.check_segment(m, "fps24.mp4", "0", "2", "60")
        st = m.stats()
        check(st["images_encoded"] == len(want),
              "120 slots of a 24 fps source: images_encoded %d, distinct source frames %d"
              % (st["images_encoded"], len(want)))
        check(st["store_images"] == len(want), "store_images %d, expected %d"
              % (st["store_images"], len(want)))


@test
def overlapping_segment_encodes_only_new_frames():
    first = distinct("fps24.mp4", "0", "2", "60")
    with h.Mount() as m:
        h.check_segment(m, "fps24.mp4", "0", "2", "60")
        e0 = m.stats()["images_encoded"]
        check(e0 == len(first), "first segment encoded %d, distinct %d" % (e0, len(first)))
        # Overlaps 1.0..2.0 s of the first and adds 2.0..2.5 s.
        second = distinct("fps24.mp4", "1", "1.5", "60")
        h.check_segment(m, "fps24.mp4", "1", "1.5", "60")
        e1 = m.stats()["images_encoded"]
        check(e1 - e0 == len(second - first),
              "overlapping segment encoded %d images, only %d of its frames are new"
              % (e1 - e0, len(second - first)))
        # Another rate over frames already stored encodes nothing.
        h.check_segment(m, "fps24.mp4", "0.5", "1", "30")
        e2 = m.stats()["images_encoded"]
        check(e2 == e1, "a 30 fps segment over stored frames encoded %d images" % (e2 - e1))
        st = m.stats()
        check(st["cache_hits"] > 0, "cache_hits is %r after re-reading stored frames"
              % st["cache_hits"])


@test
def remount_serves_identical_pixels_without_encoding():
    with h.tempdir() as store:
        with h.Mount(store=store) as m:
            _, _, first = h.check_segment(m, "fps24.mp4", "0.5", "2", "60")
            enc = m.stats()["images_encoded"]
        assert_clean_store(store)
        with h.Mount(store=store) as m:
            _, _, second = h.check_segment(m, "fps24.mp4", "0.5", "2", "60")
            st = m.stats()
            check(st["images_encoded"] == 0, "remount encoded %d images (first mount %d)"
                  % (st["images_encoded"], enc))
            check(st["store_images"] >= enc, "store_images %d after remount, %d were stored"
                  % (st["store_images"], enc))
            h.assert_frames_equal(second, first, "remount vs first mount")


@test
def store_has_no_temp_leftovers_after_unmount():
    with h.tempdir() as store:
        with h.Mount(store=store) as m:
            h.check_segment(m, "cfr30.mp4", "0", "2", "30")
            m.read_segment("cfr30.mp4@1+2@30@jpg", "jpg")
            for seg in ("garbage.mp4@0+1@30", "cfr30.mp4@10+1@30"):
                m.info(seg)
        assert_clean_store(store)


@test
def zero_length_store_entries_are_never_hits():
    # What a crash with fsync=off leaves behind: entries under their final names with no
    # bytes. Files the store holds before any extraction (its own metadata) are left
    # alone; every file the extraction wrote is cut to zero. The next mount must neither
    # serve them nor fail on them.
    seg = "cfr30.mp4@0.5+1@30"
    with h.tempdir() as store:
        with h.Mount(store=store):
            pass
        baseline = set(store_files(store))
        with h.Mount(store=store) as m:
            h.check_segment(m, "cfr30.mp4", "0.5", "1", "30")
        entries = [p for p in store_files(store) if p not in baseline]
        check(entries, "the extraction wrote nothing new into the store")
        for p in entries:
            os.truncate(p, 0)
        with h.Mount(store=store) as m:
            h.check_segment(m, "cfr30.mp4", "0.5", "1", "30")
            info = m.wait_info(seg, lambda i: i["state"] == "complete")
            check(info["state"] == "complete" and info["frames_done"] == 30,
                  "after zero-length entries: %r" % info)


@test
def zero_frame_segment_is_not_a_hit_after_source_fixed():
    with h.tempdir() as srcroot, h.tempdir() as store:
        clip = os.path.join(srcroot, "clip.mp4")
        shutil.copyfile(h.fixture("garbage.mp4"), clip)
        seg = "clip.mp4@0+1@30"
        with h.Mount(store=store, source_root=srcroot) as m:
            info = m.info(seg)
            check(info["error"] and not [n for n in os.listdir(m.path(seg)) if n != ".hfinfo"],
                  "garbage source: %r" % info)
        # The file becomes a real video (a different size and mtime: a new source).
        tmp = clip + ".new"
        shutil.copyfile(h.fixture("cfr30.mp4"), tmp)
        os.rename(tmp, clip)
        with h.Mount(store=store, source_root=srcroot) as m:
            info = m.info(seg)
            check(info["error"] is None and info["count"] == 30,
                  "after the source was fixed: %r" % info)
            blobs = m.read_segment(seg)
            h.assert_frames_equal(h.decode_images(blobs),
                                  h.ref_fps(h.fixture("cfr30.mp4"), "0", "1", "30"),
                                  "fixed source " + seg)


@test
def modified_source_is_a_new_source():
    with h.tempdir() as srcroot:
        clip = os.path.join(srcroot, "clip.mp4")
        shutil.copyfile(h.fixture("cfr30.mp4"), clip)
        with h.Mount(source_root=srcroot) as m:
            blobs = m.read_segment("clip.mp4@0+1@30")
            h.assert_frames_equal(h.decode_images(blobs),
                                  h.ref_fps(h.fixture("cfr30.mp4"), "0", "1", "30"),
                                  "before modification")
            tmp = clip + ".new"
            shutil.copyfile(h.fixture("fps24.mp4"), tmp)
            os.rename(tmp, clip)
            time.sleep(0.1)
            # A spelling the kernel has not cached: the same segment of the new file.
            seg = "clip.mp4@0.0+1.0@30"
            blobs = m.read_segment(seg)
            h.assert_frames_equal(h.decode_images(blobs),
                                  h.ref_fps(h.fixture("fps24.mp4"), "0", "1", "30"),
                                  "after the source was replaced: " + seg)


@test
def touched_segment_is_extracted_whole():
    seg = "cfr30.mp4@0+3@30"
    with h.Mount() as m:
        with open(m.path(seg, "frame_00001.png"), "rb") as f:
            f.read()
        info = m.wait_info(seg, lambda i: i["state"] in ("complete", "error"))
        check(info["state"] == "complete" and info["frames_done"] == 90,
              "one read of frame 1 (eager default): %r" % info)
        # The job counts itself completed just after its last image is stored.
        deadline = time.time() + 10
        st = m.stats()
        while st["extractions_completed"] < 1 and time.time() < deadline:
            time.sleep(0.05)
            st = m.stats()
        check(st["images_encoded"] == 90 and st["extractions_completed"] >= 1,
              "images_encoded %d, extractions_completed %d"
              % (st["images_encoded"], st["extractions_completed"]))


@test
def eager_false_extracts_what_is_read():
    seg = "cfr30.mp4@0+3@30"
    with h.Mount(opts=["eager=false"]) as m:
        for k in (1, 2, 3):
            with open(m.path(seg, "frame_%05d.png" % k), "rb") as f:
                f.read()
        time.sleep(1.5)  # give an eager extraction time to show itself
        st, info = m.stats(), m.info(seg)
        print("  eager=false: %d images encoded after reading 3 of 90 frames"
              % st["images_encoded"])
        check(3 <= st["images_encoded"] <= 90 // 4 and info["state"] != "complete",
              "eager=false: images_encoded %d, state %r after reading 3 of 90 frames"
              % (st["images_encoded"], info["state"]))
        # The rest still reads right.
        h.check_segment(m, "cfr30.mp4", "0", "3", "30")


@test
def identity_content_follows_a_copied_video():
    with h.tempdir() as srcroot, h.tempdir() as store:
        shutil.copyfile(h.fixture("cfr30.mp4"), os.path.join(srcroot, "a.mp4"))
        with h.Mount(store=store, source_root=srcroot, opts=["identity=content"]) as m:
            m.read_segment("a.mp4@1+1@30")
            enc = m.stats()["images_encoded"]
            check(enc == 30, "first read encoded %d images" % enc)
            shutil.copyfile(os.path.join(srcroot, "a.mp4"), os.path.join(srcroot, "b.mp4"))
            blobs = m.read_segment("b.mp4@1+1@30")
            check(m.stats()["images_encoded"] == enc, "identity=content: the copy encoded %d "
                  "new images" % (m.stats()["images_encoded"] - enc))
            h.assert_frames_equal(h.decode_images(blobs),
                                  h.ref_fps(h.fixture("cfr30.mp4"), "1", "1", "30"), "copy")


@test
def two_mounts_on_one_store_decode_once():
    import threading
    seg = "cfr30.mp4@0.2+3@30"
    want = distinct("cfr30.mp4", "0.2", "3", "30")
    with h.tempdir() as store:
        with h.Mount(store=store) as a, h.Mount(store=store) as b:
            results, errors = {}, []

            def reader(m, key):
                try:
                    results[key] = m.read_segment(seg)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
            threads = [threading.Thread(target=reader, args=(m, i))
                       for i, m in enumerate((a, b, a, b))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            check(not errors, "readers failed: %s" % errors)
            idx, ref = h.ref_model(h.fixture("cfr30.mp4"), "0.2", "3", "30")
            for key in sorted(results):
                h.assert_frames_equal(h.decode_images(results[key]), ref,
                                      "mount %s reader %d" % ("ab"[key % 2], key))
            ea, eb = a.stats()["images_encoded"], b.stats()["images_encoded"]
            check(ea + eb == len(want), "two mounts on one store encoded %d + %d images for "
                  "%d distinct frames" % (ea, eb, len(want)))
        assert_clean_store(store)


@test
def kill9_keeps_complete_images_and_serves_nothing_torn():
    name, S, D, F = "bt709_1080p.mp4", "0", "1", "30"
    seg = h.seg_name(name, S, D, F)
    want = distinct(name, S, D, F)
    with h.tempdir() as store:
        m = h.Mount(store=store)
        with m:
            with open(m.path(seg, "frame_00001.png"), "rb") as f:
                f.read()
            time.sleep(0.2)   # the extraction is running
            m.kill9()
        with h.Mount(store=store) as m:
            kept = m.stats()["store_images"]
            print("  kill -9 after frame 1: %d of %d images were complete" % (kept, len(want)))
            check(0 <= kept <= len(want), "store_images %d after crash" % kept)
            h.check_segment(m, name, S, D, F)
            enc = m.stats()["images_encoded"]
            check(enc == len(want) - kept,
                  "after kill -9, %d images were kept but %d of %d were encoded again"
                  % (kept, enc, len(want)))
        assert_clean_store(store)


if __name__ == "__main__":
    h.main()
