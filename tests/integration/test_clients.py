#!/usr/bin/env python3
"""
Real clients against the mount: ls, stat, cat, cp -r, find, Node's fs (renderer.js) and
headless Chromium. Also SPEC 3's listing rules: listing a segment never decodes, used
segments show up beside their video (and still do after a remount), and a warm remount
serves frames without encoding anything.
"""

import errno
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STATS_KEYS = ("extractions_started", "extractions_completed", "extractions_failed",
              "frames_served", "images_encoded", "cache_hits", "cache_misses", "joined",
              "segments_known", "store_images", "store_bytes")
INFO_KEYS = ("segment", "source", "count", "width", "height", "format", "state",
             "frames_done", "error")


def sh(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, **kw)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(cmd), p.returncode,
                                                     p.stderr.decode(errors="replace")))
    return p.stdout.decode()


@test
def cat_hfstats_and_hfinfo():
    with h.Mount() as m:
        st = json.loads(sh(["cat", m.path(".hfstats")]))
        missing = [k for k in STATS_KEYS if k not in st]
        check(not missing, ".hfstats lacks %s" % missing)
        check(".hfstats" in sh(["ls", "-a", m.mnt]).split(), "ls -a does not show .hfstats")
        check(".hfstats" not in sh(["ls", m.mnt]).split(), "ls shows the hidden .hfstats")
        seg = "cfr30.mp4@0+1@30"
        info = json.loads(sh(["cat", m.path(seg, ".hfinfo")]))
        missing = [k for k in INFO_KEYS if k not in info]
        check(not missing, ".hfinfo lacks %s" % missing)
        with open(m.path(seg, "frame_00003.png"), "rb") as f:
            f.read()
        # The dynamic files change size as work is done; cat still gets whole JSON.
        json.loads(sh(["cat", m.path(seg, ".hfinfo")]))
        st2 = json.loads(sh(["cat", m.path(".hfstats")]))
        check(st2["frames_served"] > st["frames_served"], "frames_served did not grow")


@test
def ls_l_and_stat():
    seg = "cfr30.mp4@2+1@30"
    with h.Mount() as m:
        out = sh(["ls", "-l", "--time-style=+%s", m.path(seg)]).splitlines()
        check(out[0].startswith("total"), "ls -l output: %r" % out[:2])
        rows = [line.split() for line in out[1:]]
        names = [r[-1] for r in rows]
        check(names == ["frame_%05d.png" % (i + 1) for i in range(30)],
              "ls -l names: %s" % names[:4])
        for r in rows:
            check(r[0].startswith("-r") and "w" not in r[0], "frame mode %s" % r[0])
            size = int(r[4])
            with open(m.path(seg, r[-1]), "rb") as f:
                n = len(f.read())
            check(size == n, "%s: ls -l says %d bytes, a read returns %d" % (r[-1], size, n))
        kind, size = sh(["stat", "-c", "%F|%s", m.path(seg, "frame_00007.png")]).strip().split("|")
        check(kind == "regular file", "stat says frame is %r" % kind)
        with open(m.path(seg, "frame_00007.png"), "rb") as f:
            check(int(size) == len(f.read()), "stat size differs from bytes read")
        check(sh(["stat", "-c", "%F", m.path(seg)]).strip() == "directory",
              "segment is not a directory to stat")
        src = h.fixture("cfr30.mp4")
        check(sh(["stat", "-c", "%s", m.path("cfr30.mp4")]).strip()
              == str(os.path.getsize(src)), "mirrored file size differs")
        check(sh(["cmp", m.path("cfr30.mp4"), src]) == "", "mirrored file bytes differ")


@test
def cp_r_whole_segment():
    seg = "cfr30.mp4@1.2+1.5@30"
    with h.Mount() as m, h.tempdir() as tmp:
        sh(["cp", "-r", m.path(seg), tmp])
        out = os.path.join(tmp, seg)
        names = sorted(n for n in os.listdir(out) if n.startswith("frame_"))
        check(names == ["frame_%05d.png" % (i + 1) for i in range(45)],
              "cp -r copied %d frames: %s" % (len(names), names[:3]))
        blobs = [open(os.path.join(out, n), "rb").read() for n in names]
        ref = h.ref_fps(h.fixture("cfr30.mp4"), "1.2", "1.5", "30")
        h.assert_frames_equal(h.decode_images(blobs), ref, "cp -r copy of " + seg)
        if os.path.exists(os.path.join(out, ".hfinfo")):
            json.loads(open(os.path.join(out, ".hfinfo"), "rb").read())


@test
def find_counts_frames():
    seg = "fps24.mp4@0.5+2@60"
    with h.Mount() as m:
        out = sh(["find", m.path(seg), "-name", "frame_*"]).split()
        check(len(out) == 120, "find lists %d frame files, expected 120" % len(out))
        out = sh(["find", m.path(seg), "-name", "frame_*", "-type", "f", "-size", "+1k"]).split()
        check(len(out) == 120, "find -type f -size +1k lists %d, expected 120" % len(out))


@test
def listing_does_not_decode():
    seg = "cfr30.mp4@0.7+2@30"
    with h.Mount() as m:
        names = sh(["ls", "-1", m.path(seg)]).split()
        check(len(names) == 60, "ls lists %d frames, expected 60" % len(names))
        names = sh(["ls", "-1a", m.path(seg)]).split()
        check(".hfinfo" in names, "ls -a does not show .hfinfo")
        os.listdir(m.path(seg))
        os.stat(m.path(seg))
        info = m.info(seg)
        st = m.stats()
        check(st["images_encoded"] == 0 and st["extractions_started"] == 0,
              "listing decoded: images_encoded %d, extractions_started %d"
              % (st["images_encoded"], st["extractions_started"]))
        check(info["state"] == "listed" and info["frames_done"] == 0,
              "after ls: state %r frames_done %r" % (info["state"], info["frames_done"]))


@test
def used_segments_listed_beside_video():
    used = "cfr30.mp4@1+1@30"
    other = "cfr30.mp4@2+1@30"
    with h.tempdir() as store:
        with h.Mount(store=store) as m:
            root = os.listdir(m.mnt)
            check("cfr30.mp4" in root, "cfr30.mp4 not mirrored in the root")
            check(not [n for n in root if "@" in n and n != "we@ird+name.mp4"],
                  "segments listed before any use: %s" % [n for n in root if "@" in n])
            m.read_segment(used)
            m.wait_info(used, lambda i: i["state"] == "complete")
            os.listdir(m.path(other))   # listed, not used
            root = sh(["ls", "-1", m.mnt]).split()
            check(used in root, "used segment %s not listed beside its video: %s"
                  % (used, [n for n in root if "cfr30" in n]))
            check(other not in root, "a segment that was only listed appears as used")
        with h.Mount(store=store) as m:
            root = sh(["ls", "-1", m.mnt]).split()
            check(used in root, "after remount, %s is not listed: %s"
                  % (used, [n for n in root if "cfr30" in n]))
            check(m.stats()["images_encoded"] == 0, "listing the root encoded images")


@test
def warm_remount_does_not_reencode():
    seg = "ntsc.mp4@0.5+1.5@30000:1001"
    src = h.fixture("ntsc.mp4")
    with h.tempdir() as store:
        with h.Mount(store=store) as m:
            first = h.decode_images(m.read_segment(seg))
            check(m.stats()["images_encoded"] > 0, "first mount encoded nothing")
        with h.Mount(store=store) as m:
            names = os.listdir(m.path(seg))
            blobs = m.read_segment(seg)
            st = m.stats()
            check(st["images_encoded"] == 0, "warm remount encoded %d images"
                  % st["images_encoded"])
            check(st["extractions_started"] == 0, "warm remount started %d extractions"
                  % st["extractions_started"])
            check(len(names) == len(first) + 1, "listing changed across remount")
            second = h.decode_images(blobs)
            idx, ref = h.ref_model(src, "0.5", "1.5", "30000:1001")
            h.assert_frames_equal(second, ref, "warm " + seg)
            h.assert_frames_equal(second, first, "warm vs cold " + seg)


@test
def reads_of_any_offset_size_and_order_agree():
    """A frame's first read is answered by the daemon and the rest of the file is stored
    into the kernel's cache ahead of the reader: tail-first, scattered, small, large and
    mmap reads, on a warm remount (nothing cached) and after the kernel dropped the
    pages, all give the bytes the first mount served."""
    import mmap
    seg = "cfr30.mp4@0+1@30"
    with h.tempdir() as store:
        with h.Mount(store=store) as m:
            want = m.read_segment(seg)
        with h.Mount(store=store) as m:
            for k in (1, 2, 15, 30):
                w = want[k - 1]
                size = len(w)
                path = m.path(seg, "frame_%05d.png" % k)
                fd = os.open(path, os.O_RDONLY)
                try:
                    check(os.fstat(fd).st_size == size, "frame %d: size %d, served %d"
                          % (k, os.fstat(fd).st_size, size))
                    for off, n in ((size - 1000, 1000), (0, 4096), (size // 2, 100000),
                                   (size - 1, 10), (size, 10), (12345, 1 << 20)):
                        got = os.pread(fd, n, off)
                        check(got == w[off:off + n], "frame %d: %d bytes at %d differ"
                              % (k, n, off))
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    chunks = []
                    while True:
                        b = os.read(fd, 4096 if k % 2 else 1 << 20)
                        if not b:
                            break
                        chunks.append(b)
                    check(b"".join(chunks) == w, "frame %d: sequential reads differ" % k)
                    with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as mm:
                        check(mm[:] == w, "frame %d: mmap differs" % k)
                finally:
                    os.close(fd)
            with open(m.path(seg, "frame_00007.png"), "rb") as f:
                check(f.read() == want[6], "frame 7 read whole differs")


@test
def node_renderer_reads_every_frame():
    seg = "vfr.mp4@0+6@30"
    n = len(h.model_slots(h.probe_frames(h.fixture("vfr.mp4")), "0", "6", "30"))
    with h.Mount() as m:
        p = subprocess.run(["node", os.path.join(HERE, "renderer.js"), m.path(seg), str(n)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        out = p.stdout.decode()
        check(p.returncode == 0, "renderer.js failed (%d): %s %s"
              % (p.returncode, out, p.stderr.decode()))
        res = json.loads(out)
        check(res["ok"] and res["count"] == n, "renderer.js says %r" % res)
        # What it read is what the CLI makes.
        h.check_segment(m, "vfr.mp4", "0", "6", "30")


@test
def chromium_screenshot_of_a_frame():
    chromium = "/usr/bin/chromium"
    check(os.access(chromium, os.X_OK), "%s is missing (installed by the project's setup "
          "script)" % chromium)
    seg = "cfr30.mp4@1.5+1@30"
    with h.Mount() as m, h.tempdir() as tmp:
        for k in (1, 17):
            frame = m.path(seg, "frame_%05d.png" % k)
            page = os.path.join(tmp, "page%d.html" % k)
            with open(page, "w") as f:
                f.write('<!doctype html><html><body style="margin:0;background:#f0f">'
                        '<img style="display:block" src="file://%s"></body></html>' % frame)
            shot = os.path.join(tmp, "shot%d.png" % k)
            p = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                 "--force-device-scale-factor=1", "--force-color-profile=srgb",
                 "--user-data-dir=" + os.path.join(tmp, "profile"), "--screenshot=" + shot,
                 "--window-size=320,240", "file://" + page],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            check(p.returncode == 0 and os.path.exists(shot),
                  "chromium failed (%d): %s" % (p.returncode, p.stderr.decode()[-2000:]))
            got = h.decode_images([open(shot, "rb").read()])
            ref = h.ref_fps(h.fixture("cfr30.mp4"), "1.5", "1", "30")[k - 1:k]
            worst = h.assert_frames_equal(got, ref, "chromium screenshot of frame %d" % k,
                                          tolerance=2)
            print("  chromium frame %d: max abs diff %d" % (k, worst))


@test
def mirror_keeps_mode_owner_and_hides_mountpoint():
    with h.tempdir() as root:
        os.mkdir(os.path.join(root, "sub"), 0o750)
        f = os.path.join(root, "sub", "notes.txt")
        with open(f, "w") as fh:
            fh.write("hello\n")
        os.chmod(f, 0o640)
        os.chown(f, 1234, 5678)
        os.chown(os.path.join(root, "sub"), 4321, 8765)
        mnt = os.path.join(root, "mnt")   # the mountpoint lies inside source_root
        os.mkdir(mnt)
        with h.Mount(source_root=root, mountpoint=mnt) as m:
            names = set(os.listdir(m.mnt)) - {".hfstats"}
            check(names == {"sub"}, "root lists %s; the mountpoint must be hidden" % names)
            h.expect_errno(lambda: os.stat(m.path("mnt")), (errno.ENOENT,),
                           "stat of the mountpoint through itself")
            for rel in ("sub", "sub/notes.txt"):
                a, b = os.stat(os.path.join(root, rel)), os.stat(m.path(rel))
                real = (a.st_mode, a.st_uid, a.st_gid, a.st_size, a.st_mtime_ns)
                seen = (b.st_mode, b.st_uid, b.st_gid, b.st_size, b.st_mtime_ns)
                check(seen == real, "%s: mode/uid/gid/size/mtime %s through the mount, real %s"
                      % (rel, seen, real))
            check(sh(["cat", m.path("sub", "notes.txt")]) == "hello\n", "file content differs")


@test
def concurrent_readers_share_one_extraction():
    import threading
    seg = "cfr30.mp4@0.1+3@30"
    with h.Mount() as m:
        results, errors = {}, []

        def reader(i):
            try:
                results[i] = m.read_segment(seg)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
        threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        check(not errors, "readers failed: %s" % errors)
        idx, ref = h.ref_model(h.fixture("cfr30.mp4"), "0.1", "3", "30")
        imgs = h.decode_images(results[0])
        h.assert_frames_equal(imgs, ref, "concurrent " + seg)
        for i in range(1, 6):
            check(results[i] == results[0], "reader %d got different bytes" % i)
        st = m.stats()
        check(st["extractions_started"] == 1, "6 readers started %d extractions"
              % st["extractions_started"])
        check(st["images_encoded"] == len(set(idx)), "images_encoded %d, distinct frames %d"
              % (st["images_encoded"], len(set(idx))))


if __name__ == "__main__":
    h.main()
