#!/usr/bin/env python3
"""
SPEC 6 store lifecycle (issue 4): kill -9 at several points loses no complete image and
serves nothing torn; a small max_size stays bounded under continuous reads while every
read is right and open files keep working; a full store (a small tmpfs) keeps serving
what is stored and says why in .hfinfo/.hfstats; a source rewritten or touched while
mounted is a new source at the same path; identity = content follows a moved video; a
lease holder killed mid-decode does not block the other mount; hfctl ls/gc/verify on a
store, mounted or not.
"""

import errno
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_REFS = {}


def ref(name, start, dur, fps):
    key = (name, start, dur, fps)
    if key not in _REFS:
        _REFS[key] = h.ref_fps(h.fixture(name), start, dur, fps)
    return _REFS[key]


def check_read(m, name, start, dur, fps, what):
    blobs = m.read_segment(h.seg_name(name, start, dur, fps))
    h.assert_frames_equal(h.decode_images(blobs), ref(name, start, dur, fps), what)
    return blobs


def images(store):
    """(count, bytes) of complete images under STORE/img, and the torn ones."""
    n = size = 0
    torn = []
    top = os.path.join(store, "img")
    for dirpath, _, files in os.walk(top):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                with open(p, "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                continue  # evicted while we looked
            if data.startswith(h.PNG_SIG) and not data.endswith(PNG_END):
                torn.append(p)
            n += 1
            size += len(data)
    return n, size, torn


def hfctl(*args, check_rc=None):
    p = subprocess.run([h.HFCTL_BIN] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    if check_rc is not None and p.returncode != check_rc:
        raise AssertionError("hfctl %s: exit %d (expected %d)\n%s%s" % (
            " ".join(args), p.returncode, check_rc, p.stdout, p.stderr))
    return p


@test
def kill9_at_several_points_keeps_every_complete_image():
    name, S, D, F = "bt709_1080p.mp4", "0", "1", "30"
    seg = h.seg_name(name, S, D, F)
    want = len(set(h.model_slots(h.probe_frames(h.fixture(name)), S, D, F)))
    host = os.uname().nodename.replace(".", "_")
    for delay in (0.0, 0.3, 0.9, "complete"):
        with h.tempdir() as store:
            m = h.Mount(store=store)
            with m:
                with open(m.path(seg, "frame_00001.png"), "rb") as f:
                    f.read()
                if delay == "complete":
                    m.wait_info(seg, lambda i: i["state"] == "complete")
                else:
                    time.sleep(delay)
                m.kill9()
            kept, _, torn = images(store)
            check(not torn, "kill -9 at %s left torn images under final names: %s"
                  % (delay, torn[:3]))
            # A writer that died mid-write leaves a temp file: the next mount removes it.
            leftover = os.path.join(store, "tmp", "%s.999999999.1" % host)
            with open(leftover, "wb") as f:
                f.write(h.PNG_SIG + b"half an image")
            with h.Mount(store=store) as m:
                check(not os.path.exists(leftover), "a dead writer's temp file survived")
                h.check_segment(m, name, S, D, F)
                enc = m.stats()["images_encoded"]
                print("  kill -9 at %s: %d of %d images were complete, %d encoded after"
                      % (delay, kept, want, enc))
                check(enc == want - kept, "kill -9 at %s: %d images kept, %d encoded again "
                      "for %d distinct frames" % (delay, kept, enc, want))
                if delay == "complete":
                    check(enc == 0, "a complete segment was encoded again after kill -9")


@test
def small_max_size_stays_bounded_under_continuous_reads():
    max_size = 6 << 20
    segs = [("cfr30.mp4", str(s), "1", "30") for s in (0, 1, 2, 3)] + \
           [("fps24.mp4", "0", "1", "30")]
    with h.Mount(opts=["max_size=6M", "min_free=0"]) as m:
        first = m.path(h.seg_name(*segs[0]), "frame_00001.png")
        check_read(m, *segs[0], what="first read")
        held = open(first, "rb")
        want_held = held.read()
        try:
            for rnd in (1, 2):
                for s in segs:
                    check_read(m, *s, what="round %d %s" % (rnd, h.seg_name(*s)))
                    deadline = time.monotonic() + 12
                    while True:
                        _, size, torn = images(m.store)
                        check(not torn, "torn images in the store: %s" % torn[:3])
                        if size <= max_size or time.monotonic() > deadline:
                            break
                        time.sleep(0.2)
                    check(size <= max_size, "round %d after %s: the store holds %d bytes, "
                          "max_size is %d" % (rnd, h.seg_name(*s), size, max_size))
            # The kernel forgets the file's pages: the bytes come from the daemon, from
            # the stored image or, evicted, from the frame produced again.
            os.posix_fadvise(held.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            held.seek(0)
            check(held.read() == want_held, "an open frame file changed after eviction")
        finally:
            held.close()
        st = m.stats()
        print("  max_size 6M: %d evictions, %d images (%d bytes) evicted, %d encoded"
              % (st["evictions"], st["evicted_images"], st["evicted_bytes"],
                 st["images_encoded"]))
        check(st["evictions"] > 0 and st["store_max_size"] == max_size,
              "no eviction reported: %r" % st)


def fill(path):
    """Writes a file until the filesystem is full."""
    with open(path, "wb") as f:
        block = b"\0" * (64 << 10)
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError as e:
            check(e.errno == errno.ENOSPC, "filling: %s" % e)


@test
def full_store_keeps_serving_and_says_why():
    a = ("cfr30.mp4", "0", "1", "30")
    b = ("cfr30.mp4", "1", "2", "30")
    with h.tempdir() as d:
        fsdir = os.path.join(d, "fs")
        os.mkdir(fsdir)
        h.run(["mount", "-t", "tmpfs", "-o", "size=12m", "hfit-tmpfs", fsdir])
        try:
            store = os.path.join(fsdir, "store")
            with h.Mount(store=store, opts=["min_free=0"]) as m:
                check_read(m, *a, what="before the disk is full")
                time.sleep(2.5)  # a is no longer being read: it may be evicted
                filler = os.path.join(fsdir, "filler")
                fill(filler)
                segb = h.seg_name(*b)
                count = m.info(segb)["count"]
                failed = []
                for k in range(1, count + 1):
                    try:
                        with open(m.path(segb, "frame_%05d.png" % k), "rb") as f:
                            f.read()
                    except OSError as e:
                        check(e.errno == errno.EIO, "frame %d: %s" % (k, e))
                        failed.append(k)
                check(failed, "every frame of a 7.6 MB segment fitted in a full 12 MB store")
                info, st = m.info(segb), m.stats()
                print("  full store: %d of %d frames failed; .hfinfo error: %s"
                      % (len(failed), count, info["error"]))
                check(info["error"] and "No space left" in info["error"],
                      ".hfinfo does not say the store is full: %r" % info)
                check(st["store_error"] and "No space left" in st["store_error"],
                      ".hfstats does not say the store is full: %r" % st["store_error"])
                check(st["evictions"] >= 1, "a full store evicted nothing: %r" % st)
                # What is stored is still served, and right.
                ok = [k for k in range(1, count + 1) if k not in failed][:3]
                for k in ok:
                    with open(m.path(segb, "frame_%05d.png" % k), "rb") as f:
                        h.assert_frames_equal(h.decode_images([f.read()]),
                                              [ref(*b)[k - 1]], "stored frame %d" % k)
                os.unlink(filler)
                check_read(m, *b, what="after space was freed")
                st, info = m.stats(), m.info(segb)
                check(st["store_error"] is None and not info.get("error"),
                      "the store accepts writes again, yet .hfstats says %r and .hfinfo %r"
                      % (st["store_error"], info.get("error")))
                check_read(m, *a, what="the evicted segment again")
        finally:
            subprocess.run(["umount", "-l", fsdir])


@test
def a_store_below_min_free_at_mount_says_it_will_be_kept_empty():
    with h.tempdir() as d:
        fsdir = os.path.join(d, "fs")
        os.mkdir(fsdir)
        h.run(["mount", "-t", "tmpfs", "-o", "size=8m", "hfit-tmpfs", fsdir])
        try:
            with h.Mount(store=os.path.join(fsdir, "store"), opts=["min_free=64M"]) as m:
                check_read(m, "cfr30.mp4", "0", "0.2", "30", what="below min_free")
                log = m.log_text()
            check("kept as empty as it can be" in log and "min_free" in log,
                  "no warning that the store will be kept empty: %s" % log)
        finally:
            subprocess.run(["umount", "-l", fsdir])


def drop_kernel_caches():
    """The kernel forgets unused dentries and inodes: FUSE sends FORGET for our nodes."""
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


@test
def segments_nobody_uses_are_freed():
    # Counted, not timed: 1,500 distinct segments (three of them read), then the kernel
    # forgets them; the daemon must not keep them, nor their source, in memory.
    names = ["cfr30.mp4@%d.%03d+0.1@30" % (i // 1000, i % 1000) for i in range(1500)]
    with h.Mount() as m:
        for n in names:
            os.stat(m.path(n))
        blobs = [m.read_segment(n) for n in names[:3]]
        st = m.stats()
        check(st["segments_in_memory"] >= len(names) and st["sources_in_memory"] == 1,
              "after %d lookups: %r" % (len(names), st))
        for n in names[:3]:
            m.wait_info(n, lambda i: i.get("state") == "complete")
        deadline = time.monotonic() + 30
        while True:
            drop_kernel_caches()
            st = m.stats()
            if st["segments_in_memory"] == 0 and st["sources_in_memory"] == 0:
                break
            check(time.monotonic() < deadline, "still held after the kernel forgot them: %d "
                  "segments, %d sources" % (st["segments_in_memory"], st["sources_in_memory"]))
            time.sleep(0.5)
        print("  freed %d segments and %d sources" % (st["segments_freed"], st["sources_freed"]))
        check(st["segments_freed"] >= len(names), "%r" % st)
        # Looked up again: the same frames (from the manifest, or decoded again).
        again = [m.read_segment(n) for n in names[:3]]
        check(again == blobs, "frames changed after their segments were freed")
        os.stat(m.path(names[-1], "frame_00001.png"))
        check(m.alive(), "hfmount died")


@test
def source_rewritten_or_touched_while_mounted_is_a_new_source():
    with h.tempdir() as srcroot:
        clip = os.path.join(srcroot, "clip.mp4")
        shutil.copyfile(h.fixture("cfr30.mp4"), clip)
        seg = "clip.mp4@0+1@30"
        with h.Mount(source_root=srcroot) as m:
            old = m.read_segment(seg)
            h.assert_frames_equal(h.decode_images(old), ref("cfr30.mp4", "0", "1", "30"),
                                  "before")
            held = open(m.path(seg, "frame_00010.png"), "rb")
            # Rewritten in place: same inode, new bytes, the same path and spelling.
            with open(h.fixture("fps24.mp4"), "rb") as src, open(clip, "r+b") as dst:
                dst.truncate(0)
                shutil.copyfileobj(src, dst)
            new = m.read_segment(seg)
            h.assert_frames_equal(h.decode_images(new), ref("fps24.mp4", "0", "1", "30"),
                                  "after an in-place rewrite, same path")
            check(held.read() == old[9], "an open file of the old source changed")
            held.close()
            enc = m.stats()["images_encoded"]
            # Touched only: a new source for stat identity; frames are right again.
            os.utime(clip, ns=(time.time_ns(), time.time_ns() + 10**9))
            again = m.read_segment(seg)
            h.assert_frames_equal(h.decode_images(again), ref("fps24.mp4", "0", "1", "30"),
                                  "after touch")
            check(m.stats()["images_encoded"] > enc, "a touched source was not read again")


def wait_dropped(m, seg, ino, what):
    """Waits (at most 5 s) until the mount has dropped the segment directory from the
    kernel's cache: a fresh lookup gives it a new inode number."""
    deadline = time.monotonic() + 5
    while os.stat(m.path(seg)).st_ino == ino:
        check(time.monotonic() < deadline, "%s: the segment was not dropped in 5 s" % what)
        time.sleep(0.01)


@test
def changed_video_is_dropped_from_the_kernel_cache():
    """Cached frame pages are served by the kernel without asking the daemon, so a change
    must be noticed by the source watch (inotify), which drops the segment: frames read
    again by path, without listing the directory first, show the new video."""
    with h.tempdir() as srcroot:
        clip = os.path.join(srcroot, "clip.mp4")
        shutil.copyfile(h.fixture("cfr30.mp4"), clip)
        seg = "clip.mp4@0+1@30"
        frames = ("frame_00001.png", "frame_00005.png", "frame_00030.png")
        with h.Mount(source_root=srcroot) as m:
            def read_by_path():
                out = []
                for f in frames:
                    with open(m.path(seg, f), "rb") as fh:
                        out.append(fh.read())
                return out
            want = ref("cfr30.mp4", "0", "1", "30")
            first = read_by_path()
            h.assert_frames_equal(h.decode_images(first), [want[0], want[4], want[29]],
                                  "before")
            check(read_by_path() == first, "a cached re-read differs")
            ino = os.stat(m.path(seg)).st_ino
            with open(h.fixture("fps24.mp4"), "rb") as src, open(clip, "r+b") as dst:
                dst.truncate(0)
                shutil.copyfileobj(src, dst)
            wait_dropped(m, seg, ino, "rewritten in place")
            want = ref("fps24.mp4", "0", "1", "30")
            h.assert_frames_equal(h.decode_images(read_by_path()), [want[0], want[4], want[29]],
                                  "read by path after an in-place rewrite")
            # Touched only: dropped again (a new source for stat identity), frames right.
            ino = os.stat(m.path(seg)).st_ino
            enc = m.stats()["images_encoded"]
            os.utime(clip, ns=(time.time_ns(), time.time_ns() + 10**9))
            wait_dropped(m, seg, ino, "touched")
            h.assert_frames_equal(h.decode_images(read_by_path()), [want[0], want[4], want[29]],
                                  "read by path after touch")
            check(m.stats()["images_encoded"] > enc, "a touched source was not read again")


@test
def identity_content_follows_a_moved_video():
    with h.tempdir() as srcroot, h.tempdir() as store:
        shutil.copyfile(h.fixture("cfr30.mp4"), os.path.join(srcroot, "a.mp4"))
        with h.Mount(store=store, source_root=srcroot, opts=["identity=content"]) as m:
            m.read_segment("a.mp4@0.5+1@30")
            enc = m.stats()["images_encoded"]
            os.rename(os.path.join(srcroot, "a.mp4"), os.path.join(srcroot, "moved.mp4"))
            blobs = m.read_segment("moved.mp4@0.5+1@30")
            check(m.stats()["images_encoded"] == enc,
                  "a moved video encoded %d new images" % (m.stats()["images_encoded"] - enc))
            h.assert_frames_equal(h.decode_images(blobs), ref("cfr30.mp4", "0.5", "1", "30"),
                                  "moved")


@test
def lease_holder_killed_mid_decode_does_not_block_the_other():
    name, S, D, F = "bt709_1080p.mp4", "0", "1", "30"
    seg = h.seg_name(name, S, D, F)
    with h.tempdir() as store:
        a = h.Mount(store=store)
        with a, h.Mount(store=store) as b:
            with open(a.path(seg, "frame_00001.png"), "rb") as f:
                f.read()  # a holds the lease and decodes
            out, errors = {}, []

            def reader():
                try:
                    out["b"] = b.read_segment(seg)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
            t = threading.Thread(target=reader)
            t.start()
            time.sleep(0.3)
            a.kill9()
            t.join(120)
            check(not t.is_alive(), "the other mount is still waiting 120 s after the "
                  "lease holder died")
            check(not errors, "reader on the other mount failed: %s" % errors)
            h.assert_frames_equal(h.decode_images(out["b"]), ref(name, S, D, F),
                                  "after the holder died")
            print("  holder killed: the other mount encoded %d images"
                  % b.stats()["images_encoded"])


@test
def hfctl_ls_gc_verify_on_a_store():
    with h.tempdir() as store:
        with h.Mount(store=store) as m:
            check_read(m, "cfr30.mp4", "0", "1", "30", "ls fixture a")
            check_read(m, "cfr30.mp4", "2", "0.5", "30", "ls fixture b")
            # Mounted: the segments and the source's index were just used, gc keeps them
            # (a lease file nobody holds may go: its lock says it is not in use).
            before = h.tree_state(store)
            p = hfctl("gc", store, "--max-size", "0", "--dry-run", check_rc=1)
            check("kept 3 in use" in p.stdout and "complete" not in p.stdout,
                  "gc on a store in use: %s" % p.stdout)
        ls = hfctl("ls", store, check_rc=0).stdout
        check("cfr30.mp4@0+1@30" in ls and "cfr30.mp4@2+0.5@30" in ls and "complete" in ls,
              "hfctl ls: %s" % ls)
        check(ls.index("cfr30.mp4@0+1@30") < ls.index("cfr30.mp4@2+0.5@30"),
              "hfctl ls is not least recently used first:\n%s" % ls)
        check("2 segments" in ls and "45 images" in ls, "hfctl ls totals: %s" % ls)

        # verify: a flipped byte and a truncated image are found, by path.
        imgs = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(store, "img"))
                      for f in fs)
        with open(imgs[0], "r+b") as f:
            f.seek(os.path.getsize(imgs[0]) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x5A]))
        with open(imgs[1], "r+b") as f:
            f.truncate(os.path.getsize(imgs[1]) - 100)
        p = hfctl("verify", store, check_rc=1)
        check(imgs[0] in p.stdout and imgs[1] in p.stdout and "2 damaged" in p.stdout,
              "hfctl verify did not find the two damaged images:\n%s" % p.stdout)
        hfctl("verify", store, "--delete", check_rc=1)
        p = hfctl("verify", store, check_rc=0)
        check("43 images checked, 0 damaged" in p.stdout and "2 images named" in p.stdout,
              "after --delete: %s" % p.stdout)

        # gc --dry-run lists and removes nothing; gc removes least recently used first.
        before = h.tree_state(store)
        p = hfctl("gc", store, "--max-size", "3M", "--in-use", "0", "--dry-run", check_rc=0)
        check(p.stdout.startswith("would remove") and "cfr30.mp4@0+1@30" in p.stdout
              and "cfr30.mp4@2+0.5@30" not in p.stdout.splitlines()[0],
              "gc --dry-run output:\n%s" % p.stdout)
        check(h.tree_state(store) == before, "gc --dry-run changed the store")
        p = hfctl("gc", store, "--max-size", "3M", "--in-use", "0", check_rc=0)
        ls = hfctl("ls", store, check_rc=0).stdout
        check("cfr30.mp4@0+1@30" not in ls and "cfr30.mp4@2+0.5@30" in ls,
              "after gc --max-size 3M:\n%s\n%s" % (p.stdout, ls))
        # What gc removed (and what verify deleted) is extracted again, right.
        with h.Mount(store=store) as m:
            check_read(m, "cfr30.mp4", "0", "1", "30", "after gc")
            check_read(m, "cfr30.mp4", "2", "0.5", "30", "after verify --delete")
    p = hfctl("ls", "/nonexistent-store")
    check(p.returncode == 1 and "/nonexistent-store" in p.stderr, "ls of no store: %r" % (p,))


if __name__ == "__main__":
    h.main()
