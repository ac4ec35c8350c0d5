#!/usr/bin/env python3
"""
SPEC 6 "Private by default", "Only its own", "Checked" and 6a (Security), tried as an
unprivileged second user would on a mount made with allow_other by root:

- playlists (HLS), ffconcat lists and other formats that name other files give only
  .hfinfo with one sentence, and never a frame of what they name;
- a symlink to a video in a directory the caller cannot enter gives EACCES, also after
  another caller (root) had the source indexed;
- a FIFO named by a playlist, or a FIFO named directly, never blocks: the lookup answers
  within a second and every other name of that directory keeps answering;
- the store is private (0700 directories, 0600 files) and the second user reads nothing
  in it; .hfstats is the mount owner's.

The second user is a uid/gid with no passwd entry, taken with setpriv: nothing on the
machine is changed.
"""

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hftest as h  # noqa: E402
from hftest import check, test  # noqa: E402

UID = GID = 47291  # the second user: no passwd entry, no groups
AS_USER = ["setpriv", "--reuid=%d" % UID, "--regid=%d" % GID, "--clear-groups"]

PROBE = r"""
import errno, json, os, sys, time
out = []
for op, path in json.loads(sys.argv[1]):
    t = time.monotonic()
    try:
        if op == "stat":
            os.stat(path); r = "ok"
        elif op == "list":
            r = sorted(os.listdir(path))
        elif op == "read":
            with open(path, "rb") as f:
                r = len(f.read())
        elif op == "info":
            with open(os.path.join(path, ".hfinfo"), "rb") as f:
                r = json.loads(f.read())
    except OSError as e:
        r = "E" + errno.errorcode[e.errno]
    out.append([r, time.monotonic() - t])
print(json.dumps(out))
"""


def as_user(ops, timeout=30):
    """Runs [(op, path)...] as the second user; [(result, seconds)...]. A result is
    'ok', a list, a byte count, a dict (.hfinfo), or 'E<ERRNO>'."""
    p = subprocess.run(AS_USER + [sys.executable, "-c", PROBE, json.dumps(ops)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    check(p.returncode == 0, "probe as uid %d failed: %s" % (UID, p.stderr.decode()))
    return json.loads(p.stdout)


class Tree:
    """A source root: /private (0700, root) holding v.mp4 (0644) and secret.ts; home/
    (the second user's, 0755) where that user made a symlink, playlists and a FIFO."""

    def __init__(self, tmp):
        self.root = os.path.join(tmp, "src")
        self.private = os.path.join(self.root, "private")
        self.home = os.path.join(self.root, "home")
        os.makedirs(self.private)
        os.makedirs(self.home)
        os.chmod(tmp, 0o755)
        os.chmod(self.root, 0o755)
        os.chmod(self.private, 0o700)
        os.chown(self.home, UID, GID)
        shutil.copyfile(h.fixture("cfr30.mp4"), os.path.join(self.private, "v.mp4"))
        os.chmod(os.path.join(self.private, "v.mp4"), 0o644)
        self.secret = os.path.join(self.private, "secret.ts")
        h.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", h.fixture("cfr30.mp4"),
               "-c", "copy", "-f", "mpegts", self.secret])
        os.chmod(self.secret, 0o644)
        shutil.copyfile(h.fixture("cfr30.mp4"), os.path.join(self.home, "own.mp4"))
        self.fifo = os.path.join(self.home, "pipe.ts")  # an extension HLS accepts
        os.mkfifo(self.fifo)
        self.user_files = {
            "mine.mp4": None,  # symlink
            "q.mp4": "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n"
                     "#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\n%s\n#EXT-X-ENDLIST\n" % self.secret,
            "c.mp4": "ffconcat version 1.0\nfile %s\n" % self.secret,
            "f.mp4": "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n"
                     "#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\n%s\n#EXT-X-ENDLIST\n" % self.fifo,
        }
        os.symlink(os.path.join(self.private, "v.mp4"), os.path.join(self.home, "mine.mp4"))
        for name, text in self.user_files.items():
            if text is not None:
                with open(os.path.join(self.home, name), "w") as f:
                    f.write(text)
        os.mkfifo(os.path.join(self.home, "p.mp4"))
        for n in os.listdir(self.home):
            os.lchown(os.path.join(self.home, n), UID, GID)


class mount(h.Mount):
    """allow_other, on a mountpoint the second user can reach."""

    def __init__(self, tree, **kw):
        super().__init__(source_root=tree.root, opts=["allow_other"], **kw)

    def __enter__(self):
        super().__enter__()
        os.chmod(self.tmp, 0o755)
        return self


def only_hfinfo(res, what):
    listing, info = res
    check(listing[0] == [".hfinfo"], "%s lists %r, expected only .hfinfo" % (what, listing[0]))
    err = info[0].get("error") if isinstance(info[0], dict) else None
    check(isinstance(err, str) and len(err) > 10 and "\n" not in err.strip(),
          "%s: .hfinfo error is not one sentence: %r" % (what, info[0]))
    return err


@test
def playlists_and_lists_read_nothing_else():
    with h.tempdir() as tmp:
        tree = Tree(tmp)
        with mount(tree) as m:
            for name in ("q.mp4", "c.mp4"):
                seg = m.path("home", name + "@0+1@30")
                err = only_hfinfo(as_user([("list", seg), ("info", seg)]), name + " as the user")
                check("other files" in err, "%s: %r does not say why" % (name, err))
                # root gets the same: the daemon never reads what a file names
                check(sorted(os.listdir(seg)) == [".hfinfo"], "%s as root lists frames" % name)
            st = m.stats()
            check(st["images_encoded"] == 0, "images were encoded: %r" % st)
            print("  HLS and ffconcat: %s" % err)


@test
def symlink_into_a_private_directory_is_eacces():
    with h.tempdir() as tmp:
        tree = Tree(tmp)
        with mount(tree) as m:
            seg = m.path("home", "mine.mp4@0+2@2")
            r = as_user([("stat", seg), ("list", seg), ("read", os.path.join(seg, "frame_00001.png"))])
            check([x[0] for x in r] == ["EEACCES"] * 3, "the user got %r" % r)
            # Root may: the source is indexed and frames exist; the user is still refused.
            blobs = m.read_segment("home/mine.mp4@0+2@2")
            check(len(blobs) == 4, "root read %d frames" % len(blobs))
            r = as_user([("stat", seg), ("stat", m.path("private", "v.mp4@0+2@2")),
                         ("read", os.path.join(seg, "frame_00001.png"))])
            check([x[0] for x in r] == ["EEACCES"] * 3, "after root indexed it the user got %r" % r)
            # The user's own video is served to the user.
            own = m.path("home", "own.mp4@0+1@5")
            r = as_user([("list", own), ("read", os.path.join(own, "frame_00001.png"))])
            check(len(r[0][0]) == 6 and r[1][0] > 1000, "the user's own video: %r" % r)


@test
def fifos_never_block_a_lookup():
    with h.tempdir() as tmp:
        tree = Tree(tmp)
        with mount(tree) as m:
            results = {}

            def slow():
                results["f"] = as_user([("list", m.path("home", "f.mp4@0+1@30")),
                                        ("info", m.path("home", "f.mp4@0+1@30")),
                                        ("list", m.path("home", "p.mp4@0+1@30")),
                                        ("info", m.path("home", "p.mp4@0+1@30"))], timeout=60)

            t = threading.Thread(target=slow)
            t.start()
            time.sleep(0.3)
            r = as_user([("stat", m.path("home", "own.mp4")), ("list", m.path("home"))])
            t.join(60)
            check(not t.is_alive(), "a lookup through a FIFO playlist hangs")
            check(r[0][0] == "ok" and r[0][1] < 1 and r[1][1] < 1,
                  "sibling lookups meanwhile: %r" % r)
            f = results["f"]
            for i, what in ((0, "FIFO through a playlist"), (2, "a FIFO named directly")):
                check(f[i][1] < 1 and f[i + 1][1] < 1, "%s took %.2f s" % (what, f[i][1]))
                err = only_hfinfo((f[i], f[i + 1]), what)
                print("  %s: %s" % (what, err))
            check(m.alive(), "hfmount died")


def store_files(store):
    """Every directory and file of a store, but files that went while it was walked (a
    temp file renamed into place, an image evicted)."""
    for d, dirs, files in os.walk(store):
        yield d, True
        for n in files:
            p = os.path.join(d, n)
            if os.path.lexists(p):
                yield p, False


@test
def store_is_private_and_hfstats_the_owners():
    with h.tempdir() as tmp:
        tree = Tree(tmp)
        with mount(tree) as m:
            m.read_segment("home/own.mp4@0+1@5")
            m.wait_info("home/own.mp4@0+1@5", lambda i: i.get("state") == "complete")
            seen = 0
            for p, is_dir in store_files(m.store):
                try:
                    mode = stat.S_IMODE(os.lstat(p).st_mode)
                except FileNotFoundError:
                    continue
                want = 0o700 if is_dir else 0o600
                check(mode == want, "%s has mode %o, expected %o" % (p, mode, want))
                seen += 1
            check(seen > 10, "only %d store entries" % seen)
            imgs = [p for p, d in store_files(m.store) if p.endswith(".png")]
            r = as_user([("read", imgs[0]), ("list", m.store), ("read", m.path(".hfstats"))])
            check([x[0] for x in r] == ["EEACCES"] * 3, "the second user got %r" % r)
            check(isinstance(m.stats().get("uptime_s", m.stats().get("uptime")), (int, float)),
                  "root cannot read .hfstats")
            # .hfinfo: the user may read their own segment's
            r = as_user([("info", m.path("home", "own.mp4@0+1@5"))])
            check(isinstance(r[0][0], dict) and r[0][0].get("state") == "complete", "%r" % r)


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("HFMOUNT_")}


@test
def a_directory_that_is_not_a_store_is_refused_and_untouched():
    with h.tempdir() as tmp:
        mine = os.path.join(tmp, "home")  # what `hfmount ~ /mnt/frames` would be given
        for sub in ("tmp", "img/ab", "notes"):
            os.makedirs(os.path.join(mine, sub))
        for rel in ("tmp/build.1.2", "tmp/x", "img/ab/" + "ab" * 32 + ".png", "notes/a.txt"):
            with open(os.path.join(mine, rel), "w") as f:
                f.write("mine\n")
            old = time.time() - 3 * 86400
            os.utime(os.path.join(mine, rel), (old, old))
        before = h.tree_state(mine)
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        p = subprocess.run([h.HFMOUNT_BIN, "-f", mine, mnt], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, env=clean_env())
        err = p.stderr.decode().strip()
        check(p.returncode == 2 and len(err.splitlines()) == 1 and "not an hfmount store" in err,
              "hfmount on a non-store directory: exit %d, %r" % (p.returncode, err))
        check(not os.path.ismount(mnt), "it mounted")
        p = subprocess.run([h.HFCTL_BIN, "gc", mine, "--max-size", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, env=clean_env())
        check(p.returncode != 0, "hfctl gc on a non-store directory: exit 0")
        check(h.tree_state(mine) == before, "the directory was changed: %r -> %r"
              % (before, h.tree_state(mine)))
        # An empty directory is fine, and a store made there is hfmount's from then on.
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        with h.Mount(store=empty) as m:
            m.read_segment("cfr30.mp4@0+0.2@30")
        print("  %s" % err)


@test
def an_existing_store_is_tightened_and_a_group_may_share_one():
    with h.tempdir() as tmp:
        store = os.path.join(tmp, "store")
        with h.Mount(store=store) as m:
            m.read_segment("cfr30.mp4@0+0.2@30")
            m.wait_info("cfr30.mp4@0+0.2@30", lambda i: i.get("state") == "complete")
        # as an older hfmount left it
        for p, is_dir in store_files(store):
            os.chmod(p, 0o755 if is_dir else 0o644)
        with h.Mount(store=store) as m:
            for p, is_dir in store_files(store):
                mode = stat.S_IMODE(os.lstat(p).st_mode)
                check(mode == (0o700 if is_dir else 0o600), "%s not tightened: %o" % (p, mode))
        shared = os.path.join(tmp, "shared")
        gid = GID + 1
        with h.Mount(store=shared, opts=["group=%d" % gid]) as m:
            m.read_segment("cfr30.mp4@0+0.2@30")
            m.wait_info("cfr30.mp4@0+0.2@30", lambda i: i.get("state") == "complete")
            for p, is_dir in store_files(shared):
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue  # a temp file renamed meanwhile
                want = 0o2770 if is_dir else 0o660
                check(stat.S_IMODE(st.st_mode) == want and st.st_gid == gid,
                      "%s: mode %o group %d, expected %o group %d"
                      % (p, stat.S_IMODE(st.st_mode), st.st_gid, want, gid))
            img = [p for p, d in store_files(shared) if p.endswith(".png")][0]
            member = ["setpriv", "--reuid=%d" % UID, "--regid=%d" % GID, "--groups=%d" % gid]
            os.chmod(os.path.dirname(shared), 0o755)
            r = subprocess.run(member + ["cat", img], stdout=subprocess.PIPE, timeout=30)
            check(r.returncode == 0 and r.stdout[:8] == h.PNG_SIG, "a member cannot read %s" % img)
            r = subprocess.run(AS_USER + ["cat", img], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            check(r.returncode != 0, "a non-member read %s" % img)
        p = subprocess.run([h.HFMOUNT_BIN, "-f", "-o", "group=hfit-no-such-group",
                            os.path.join(tmp, "s2"), os.path.join(tmp, "mnt2")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                           env=clean_env())
        check(p.returncode == 2 and b"group" in p.stderr, "unknown group: %d %r"
              % (p.returncode, p.stderr))


def image_file_of(store, blob):
    for p, is_dir in store_files(store):
        if not is_dir and p.endswith(".png") and os.path.getsize(p) == len(blob):
            with open(p, "rb") as f:
                if f.read() == blob:
                    return p
    raise AssertionError("no stored image holds these %d bytes" % len(blob))


def reread(path):
    """The file's bytes as the daemon serves them now (the kernel's pages dropped first)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return os.pread(fd, 1 << 24, 0), os.fstat(fd).st_size
    finally:
        os.close(fd)


@test
def damaged_images_are_produced_again_never_served():
    seg = "cfr30.mp4@0+0.5@30"
    with h.tempdir() as tmp:
        store = os.path.join(tmp, "store")
        with h.Mount(store=store) as m:
            blobs = m.read_segment(seg)
            m.wait_info(seg, lambda i: i.get("state") == "complete")
            wait_manifests(store)
            for slot, cut in ((2, 5000), (5, 0)):
                victim = image_file_of(store, blobs[slot])
                with open(victim, "r+b") as f:
                    f.truncate(cut) if cut else f.write(b"GIF89a")  # short, or a wrong header
                data, size = reread(m.path(seg, "frame_%05d.png" % (slot + 1)))
                check(data == blobs[slot] and size == len(blobs[slot]),
                      "slot %d after damage: %d bytes (stat %d), expected the %d it had"
                      % (slot, len(data), size, len(blobs[slot])))
        # A later mount serves from the manifest: damage found there is produced again too.
        victim = image_file_of(store, blobs[7])
        with open(victim, "r+b") as f:
            f.truncate(5000)
        with h.Mount(store=store) as m:
            again = m.read_segment(seg)
            check(again == blobs, "after a remount with a truncated image: %r"
                  % [i for i, (a, b) in enumerate(zip(again, blobs)) if a != b])
            check(os.path.getsize(victim) == len(blobs[7]), "the damaged image was not replaced")


def wait_manifests(store, timeout=20):
    """Sizes of the complete segments' manifests, once there is one (a segment is complete
    a moment before its manifest is written)."""
    deadline = time.monotonic() + timeout
    while True:
        mans = [os.path.getsize(p) for p, d in store_files(store) if p.endswith(".seg")]
        if mans or time.monotonic() > deadline:
            return mans
        time.sleep(0.05)


def frame_at(frames, start, fps, k):
    """SPEC 4's choice for one slot (as hftest.model_slots, without walking every slot)."""
    from bisect import bisect_right
    t = h.q(start) + h.Fraction(k) / h.q(fps) + frames.tb / 2  # with the half tick
    return max(bisect_right(frames.times(), t) - 1, 0)


@test
def ten_million_slots_cost_what_their_frames_cost():
    # 10^7 slots over a 4 s, 120-frame video: plans, manifests and memory follow the 120
    # frames it shows, not the slots (any user could ask for this with one stat).
    src = h.fixture("cfr30.mp4")
    seg = "cfr30.mp4@0+4@2500000"
    frames = h.probe_frames(src)
    ref = h.ref_all(src)
    with h.tempdir() as tmp:
        store = os.path.join(tmp, "store")
        with h.Mount(store=store) as m:
            base = m.peak_rss() // 1024
            t = time.monotonic()
            size = os.stat(m.path(seg, "frame_00001.png")).st_size
            took = time.monotonic() - t
            check(size > 0, "frame 1 has size 0")
            info = m.wait_info(seg, lambda i: i.get("state") == "complete", timeout=120)
            check(info["count"] == 10 ** 7, "count %r" % info.get("count"))
            grew = m.peak_rss() // 1024 - base
            mans = wait_manifests(store)
            st = m.stats()
            print("  stat of frame 1: %.2f s; peak RSS grew %d kB; manifest %r bytes; %d images"
                  % (took, grew, mans, st["images_encoded"]))
            check(grew < 64 * 1024, "the daemon grew by %d kB for one segment" % grew)
            check(len(mans) == 1 and mans[0] < 64 * 1024, "manifests: %r bytes" % mans)
            check(st["images_encoded"] <= len(frames.pts), "%d images for %d frames"
                  % (st["images_encoded"], len(frames.pts)))
            picks = [0, 1, 83333, 2500000, 5000001, 10 ** 7 - 1]
            for k in picks:
                blob = open(m.path(seg, "frame_%05d.png" % (k + 1)), "rb").read()
                h.assert_frames_equal(h.decode_images([blob]), [ref[frame_at(frames, 0, 2500000, k)]],
                                      "slot %d" % k)
        with h.Mount(store=store) as m:  # warm: served from the manifest's runs
            for k in picks:
                blob = open(m.path(seg, "frame_%05d.png" % (k + 1)), "rb").read()
                h.assert_frames_equal(h.decode_images([blob]), [ref[frame_at(frames, 0, 2500000, k)]],
                                      "warm slot %d" % k)
            check(m.stats()["images_encoded"] == 0, "a warm segment encoded images")


if __name__ == "__main__":
    h.main()
