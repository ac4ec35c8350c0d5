#!/usr/bin/env python3
"""
SPEC 3 "Errors a user sees": malformed names and missing sources are ENOENT, undecodable
sources and starts past the end give a directory holding only .hfinfo with a one-sentence
error, a truncated video serves the frames before the damage (pixel-exact) and EIO after
it, every write is refused with EROFS/EACCES, and the daemon keeps serving throughout.
"""

import errno
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

READONLY = (errno.EROFS, errno.EACCES)


def one_sentence(s, what):
    check(isinstance(s, str) and len(s.strip()) > 10 and "\n" not in s.strip(),
          "%s: .hfinfo error is not a one-sentence string: %r" % (what, s))


def assert_serving(m, name="cfr30.mp4"):
    """The daemon is alive and still serves correct frames and .hfstats. name is a copy
    of cfr30.mp4 in the mount's source root."""
    seg = name + "@0.5+0.2@30"
    check(m.alive(), "hfmount died:\n" + m.log_text())
    st = m.stats()
    check(isinstance(st.get("frames_served"), int), ".hfstats unreadable: %r" % st)
    blobs = m.read_segment(seg)
    idx, ref = h.ref_model(h.fixture("cfr30.mp4"), "0.5", "0.2", "30")
    h.assert_frames_equal(h.decode_images(blobs), ref, "after errors: " + seg)


BAD_NAMES = [
    "cfr30.mp4@1.5+2",                  # no fps
    "cfr30.mp4@1.5@30",                 # no dur
    "cfr30.mp4+1@30",                   # no start
    "cfr30.mp4@-1+2@30",                # sign
    "cfr30.mp4@+1+2@30",                # sign (parsed from the right: start is "+1")
    "cfr30.mp4@1e1+2@30",               # exponent
    "cfr30.mp4@1.+2@30",                # no digit after the point
    "cfr30.mp4@.5+2@30",                # no digit before the point
    "cfr30.mp4@1,5+2@30",               # comma
    "cfr30.mp4@ 1+2@30",                # space
    "cfr30.mp4@1+2@30 ",                # trailing space
    "cfr30.mp4@1+0@30",                 # dur 0
    "cfr30.mp4@1+0.000@30",             # dur 0
    "cfr30.mp4@1+2@0",                  # fps 0
    "cfr30.mp4@1+2@0.0",                # fps 0
    "cfr30.mp4@1+2@30:0",               # fps denominator 0
    "cfr30.mp4@1+2@0:1001",             # fps 0
    "cfr30.mp4@1+2@29.97:1",            # ratio of a decimal
    "cfr30.mp4@1+2@30:1001:1",          # two colons
    "cfr30.mp4@1+2@30@gif",             # unknown option
    "cfr30.mp4@1+2@30@",                # empty options
    "cfr30.mp4@1+2@30@q=1234",          # q has 1 to 3 digits
    "cfr30.mp4@0+400000@30",            # 12 000 000 slots > 10^7
    "cfr30.mp4@1234567890.123456789+1@30",  # 19 digits
    "@1+2@30",                          # empty NAME
    "cfr30.mp4@@1+2@30",                # NAME "cfr30.mp4@" does not exist either way
]


@test
def malformed_names_are_enoent():
    with h.Mount() as m:
        bad = []
        for name in BAD_NAMES:
            p = m.path(name)
            for what, fn in (("stat", os.stat), ("listdir", os.listdir)):
                try:
                    fn(p)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    bad.append("%s(%r): %s" % (what, name, e))
                else:
                    bad.append("%s(%r) succeeded" % (what, name))
        check(not bad, "expected ENOENT:\n  " + "\n  ".join(bad))
        root = os.listdir(m.mnt)
        check(not any(n in root for n in BAD_NAMES), "a malformed name is listed in the root")
        assert_serving(m)


@test
def range_limits_are_literal():
    # dur*fps of exactly 10^7 is not over the limit; 18 digits are allowed.
    with h.Mount() as m:
        for name, count in (("cfr30.mp4@0+1000000@10", 40),
                            ("cfr30.mp4@0.00000000000000001+1@30", 30),
                            ("cfr30.mp4@0+1@30000:1001", 30)):
            try:
                info = m.info(name)
            except OSError as e:
                raise AssertionError("%s: %s (the name is valid)" % (name, e))
            check(info["count"] == count, "%s: count %r, expected %d"
                  % (name, info["count"], count))


@test
def missing_source_is_enoent():
    with h.Mount() as m:
        for name in ("nothere.mp4@0+1@30", "nosuchdir/x.mp4@0+1@30", "nothere.mp4"):
            h.expect_errno(lambda: os.stat(m.path(name)), (errno.ENOENT,), "stat " + name)
        assert_serving(m)


@test
def garbage_source_has_only_hfinfo():
    seg = "garbage.mp4@0+1@30"
    with h.Mount() as m:
        check(os.path.isdir(m.path(seg)), "%s is not a directory" % seg)
        names = sorted(os.listdir(m.path(seg)))
        check(names == [".hfinfo"], "%s lists %s, expected only .hfinfo" % (seg, names[:5]))
        info = m.info(seg)
        one_sentence(info.get("error"), seg)
        check(info.get("state") == "error", "state is %r" % info.get("state"))
        check(info.get("count") in (0, None), "count is %r" % info.get("count"))
        h.expect_errno(lambda: open(m.path(seg, "frame_00001.png"), "rb").read(),
                       (errno.ENOENT,), "frame_00001.png of a garbage source")
        assert_serving(m)


@test
def start_past_end():
    # cfr30.mp4 lasts exactly 4.000 s: start 4 is at the end, start 12 past it.
    with h.Mount() as m:
        for seg in ("cfr30.mp4@12+1@30", "cfr30.mp4@4+1@30", "cfr30.mp4@4.0+0.5@60"):
            check(os.path.isdir(m.path(seg)), "%s is not a directory" % seg)
            names = sorted(os.listdir(m.path(seg)))
            check(names == [".hfinfo"], "%s lists %s, expected only .hfinfo" % (seg, names[:5]))
            err = m.info(seg).get("error")
            one_sentence(err, seg)
            check("past the end" in err, "%s: error does not say 'past the end': %r"
                  % (seg, err))
        # Just before the end is fine: one slot.
        check(m.info("cfr30.mp4@3.99+1@30")["count"] == 1, "@3.99+1@30 should have 1 frame")
        assert_serving(m)


@test
def truncated_video():
    full = h.fixture("faststart.mp4")
    trunc = h.fixture("truncated.mp4")
    cut = os.path.getsize(trunc)
    check(cut == os.path.getsize(full) // 2, "truncated fixture is not half of faststart.mp4")
    j = h.ffprobe_json(["-select_streams", "v:0", "-show_entries", "packet=pts,pos,size"], full)
    pk = sorted((int(p["pts"]), int(p["pos"]), int(p["size"])) for p in j["packets"])
    # No B-frames: frame i needs packets <= i only; packet order is frame order.
    early = [i for i, (_, pos, size) in enumerate(pk) if pos + size <= cut]
    late = [i for i, (_, pos, size) in enumerate(pk) if pos >= cut]
    check(early and late and early == list(range(len(early))), "fixture cut is unexpected")
    straddle = len(early)  # the frame whose packet the cut splits
    seg = "truncated.mp4@0+4@30"   # slot k shows frame k (same rate, start 0)
    ref = h.ref_fps(full, "0", "4", "30")
    names = ["frame_%05d.png" % (k + 1) for k in range(120)]
    with h.Mount() as m:
        # Frames before the damage: served and pixel-exact against the intact file.
        blobs = []
        for k in early:
            with open(m.path(seg, names[k]), "rb") as f:
                blobs.append(f.read())
        h.assert_frames_equal(h.decode_images(blobs), ref[:len(early)],
                              seg + " frames before the damage")
        # N comes from the container's index (SPEC 4 Count), which still lists 120 frames.
        info = m.info(seg)
        check(info["count"] == 120, "count %r: the container's index says 120 frames, so "
              "frames after the damage must be listed and fail with EIO" % info["count"])
        listed = sorted(n for n in os.listdir(m.path(seg)) if n != ".hfinfo")
        check(listed == names, "truncated segment lists %d frames" % len(listed))
        # The split frame: EIO, or a correct picture; never a broken one.
        try:
            with open(m.path(seg, names[straddle]), "rb") as f:
                b = f.read()
            h.assert_frames_equal(h.decode_images([b]), [ref[straddle]],
                                  seg + " frame split by the cut")
        except OSError as e:
            check(e.errno == errno.EIO, "split frame: %s" % e)
        # Frames after the damage: stat, open or read fails with EIO.
        for k in (late[0], late[len(late) // 2], late[-1]):
            p = m.path(seg, names[k])

            def access(p=p):
                os.stat(p)
                with open(p, "rb") as f:
                    f.read()
            h.expect_errno(access, (errno.EIO,), "%s/%s after the damage" % (seg, names[k]))
        info = m.info(seg)
        err = info.get("error")
        one_sentence(err, seg)
        check("frame" in err and any(c.isdigit() for c in err),
              "%s: error does not say which frame: %r" % (seg, err))
        check(info.get("state") == "error", "state is %r" % info.get("state"))
        st = m.stats()
        check(st["extractions_failed"] >= 1, ".hfstats extractions_failed is %r"
              % st["extractions_failed"])
        assert_serving(m)


@test
def everything_is_read_only():
    with h.tempdir() as srcroot:
        shutil.copyfile(h.fixture("cfr30.mp4"), os.path.join(srcroot, "clip.mp4"))
        os.mkdir(os.path.join(srcroot, "sub"))
        before = os.stat(os.path.join(srcroot, "clip.mp4"))
        with h.Mount(source_root=srcroot) as m:
            seg = "clip.mp4@0+1@30"
            frame = m.path(seg, "frame_00001.png")
            with open(frame, "rb") as f:
                f.read()
            clip = m.path("clip.mp4")
            ops = [
                ("open clip r+", lambda: open(clip, "r+b")),
                ("open clip append", lambda: open(clip, "ab")),
                ("create file in root", lambda: open(m.path("new.txt"), "wb")),
                ("create file in sub", lambda: open(m.path("sub", "new.txt"), "wb")),
                ("create file in segment", lambda: open(m.path(seg, "x.png"), "wb")),
                ("open frame r+", lambda: open(frame, "r+b")),
                ("mkdir", lambda: os.mkdir(m.path("newdir"))),
                ("mkdir in segment", lambda: os.mkdir(m.path(seg, "d"))),
                ("unlink clip", lambda: os.unlink(clip)),
                ("unlink frame", lambda: os.unlink(frame)),
                ("unlink .hfinfo", lambda: os.unlink(m.path(seg, ".hfinfo"))),
                ("rmdir sub", lambda: os.rmdir(m.path("sub"))),
                ("rmdir segment", lambda: os.rmdir(m.path(seg))),
                ("rename clip", lambda: os.rename(clip, m.path("moved.mp4"))),
                ("rename frame", lambda: os.rename(frame, m.path(seg, "frame_x.png"))),
                ("rename segment", lambda: os.rename(m.path(seg), m.path("seg2"))),
                ("chmod clip", lambda: os.chmod(clip, 0o777)),
                ("chmod frame", lambda: os.chmod(frame, 0o777)),
                ("chmod segment", lambda: os.chmod(m.path(seg), 0o777)),
                ("chown clip", lambda: os.chown(clip, 1, 1)),
                ("truncate clip", lambda: os.truncate(clip, 0)),
                ("truncate frame", lambda: os.truncate(frame, 0)),
                ("utime clip", lambda: os.utime(clip, (0, 0))),
                ("symlink", lambda: os.symlink("clip.mp4", m.path("lnk"))),
                ("hard link", lambda: os.link(clip, m.path("hard.mp4"))),
                ("setxattr", lambda: os.setxattr(clip, "user.x", b"1")),
            ]
            bad = []
            for what, fn in ops:
                try:
                    h.expect_errno(fn, READONLY, what)
                except AssertionError as e:
                    bad.append(str(e))
            check(not bad, "not refused with EROFS/EACCES:\n  " + "\n  ".join(bad))
            assert_serving(m, "clip.mp4")
        after = os.stat(os.path.join(srcroot, "clip.mp4"))
        check((after.st_size, after.st_mode, after.st_mtime_ns)
              == (before.st_size, before.st_mode, before.st_mtime_ns),
              "the source file was changed through the mount")
        check(sorted(os.listdir(srcroot)) == ["clip.mp4", "sub"],
              "the source directory was changed: %s" % os.listdir(srcroot))


@test
def daemon_survives_everything():
    """All of the above on one mount, then it still serves."""
    with h.Mount() as m:
        for name in BAD_NAMES[:8] + ["nothere.mp4@0+1@30"]:
            try:
                os.listdir(m.path(name))
            except OSError:
                pass
        for seg in ("garbage.mp4@0+1@30", "cfr30.mp4@12+1@30", "truncated.mp4@1.5+2.5@30"):
            try:
                for n in sorted(os.listdir(m.path(seg))):
                    try:
                        with open(m.path(seg, n), "rb") as f:
                            f.read()
                    except OSError:
                        pass
            except OSError:
                pass
        for fn in (lambda: open(m.path("x"), "wb"), lambda: os.mkdir(m.path("y"))):
            try:
                fn()
            except OSError:
                pass
        assert_serving(m)
        # And it unmounts cleanly.
        rc = m.unmount()
        check(rc == 0, "hfmount exited with status %r after unmount:\n%s" % (rc, m.log_text()))


if __name__ == "__main__":
    h.main()
