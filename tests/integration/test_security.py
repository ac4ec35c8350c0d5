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
  in it; .hfstats is the mount owner's;
- issue 18: the mirror is read as the caller (a descriptor she opened stays hers when its
  path becomes a symlink to /etc/shadow; a directory swapped for a link to a 0700 one
  shows nothing); /proc/PID/cwd and /proc/self/fd/N links give nothing and a mount of /
  shows no pseudo-filesystem; an ACL denial holds through the mirror; files swapped for
  FIFOs after the open block nobody; chmod or a deny ACL revokes within seconds; used
  segments are listed only to who may read the video; a name cannot forge a log line and
  .hfinfo stays UTF-8.

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

UID = GID = h.SECOND_UID  # the second user: no passwd entry, no groups
AS_USER = h.setpriv(UID)


def as_user(ops, timeout=30):
    """Runs [(op, path)...] as the second user (hftest.probe_as)."""
    return h.probe_as(UID, ops, timeout)


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


class mount(h.SharedMount):
    """allow_other, on a mountpoint the second user can reach, over a tree's root."""

    def __init__(self, tree, **kw):
        super().__init__(tree.root, **kw)


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


# ---------------------------------------------------------------------------------------
# Issue 18 items 1-4, 10-12: the mirror, /proc magic links, ACLs, swapped FIFOs, revoked
# permissions, other users' segments in listings, names in logs and .hfinfo.

USER_PRELUDE = r"""
import base64, errno, json, os, stat, sys, threading, time
ARG = json.loads(sys.argv[1])
def E(e):
    return "E" + errno.errorcode.get(e.errno, str(e.errno))
def emit(x):
    sys.stdout.write(json.dumps(x) + "\n")
    sys.stdout.flush()
"""


def user_py(body, arg, timeout=30):
    """Runs PRELUDE + body as the second user with ARG = arg; the JSON it emit()ted last."""
    p = subprocess.run(AS_USER + [sys.executable, "-c", USER_PRELUDE + body, json.dumps(arg)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    check(p.returncode == 0 and p.stdout.strip(), "user script failed (exit %d): %s"
          % (p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def is_err(r, errnos=("EACCES", "ENOENT")):
    return isinstance(r, str) and r in ["E" + e for e in errnos]


def results(r):
    return [x[0] for x in r]


def short(rs):
    """Probe results for a message: byte counts, listings' sizes, .hfinfo's state."""
    def one(x):
        if isinstance(x, dict):
            return ".hfinfo(%s)" % x.get("state")
        if isinstance(x, list):
            return "%d names" % len(x)
        if isinstance(x, int):
            return "%d bytes" % x
        return x
    return "[%s]" % ", ".join(map(one, rs))


class Root:
    """A source root (0755) holding home/ (the second user's), pub/ (root's, 0755) and
    private/ (root's, 0700)."""

    def __init__(self, tmp):
        os.chmod(tmp, 0o755)
        self.root = os.path.join(tmp, "src")
        self.home = os.path.join(self.root, "home")
        self.pub = os.path.join(self.root, "pub")
        self.private = os.path.join(self.root, "private")
        for d, mode in ((self.root, 0o755), (self.home, 0o755), (self.pub, 0o755),
                        (self.private, 0o700)):
            os.mkdir(d)
            os.chmod(d, mode)
        os.chown(self.home, UID, GID)

    def video(self, d, name, mode=0o644, fixture="cfr30.mp4", owner=None):
        p = os.path.join(d, name)
        shutil.copyfile(h.fixture(fixture), p)
        os.chmod(p, mode)
        if owner is not None:
            os.chown(p, owner, owner)
        return p

    def file(self, d, name, data, mode=0o644, owner=None):
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
        if owner is not None:
            os.chown(p, owner, owner)
        return p


ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 1, 2, 4, 8, 0x10, 0x20
ACL_UNDEFINED_ID = 0xFFFFFFFF


def set_acl(path, entries):
    """Writes system.posix_acl_access: [(tag, perm, id)...] (id None: undefined)."""
    import struct
    ents = sorted((t, p, ACL_UNDEFINED_ID if i is None else i) for t, p, i in entries)
    blob = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in ents)
    os.setxattr(path, "system.posix_acl_access", blob)


def deny_user_acl(path):
    """user::rw- user:UID:--- group::r-- mask::r-- other::r-- (the mode stays 0644)."""
    set_acl(path, [(ACL_USER_OBJ, 6, None), (ACL_USER, 0, UID), (ACL_GROUP_OBJ, 4, None),
                   (ACL_MASK, 4, None), (ACL_OTHER, 4, None)])


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


SWAP_AND_PREAD = r"""
import base64
out = {}
for name, mnt_path, real_path, target in ARG:
    try:
        fd = os.open(mnt_path, os.O_RDONLY)
    except OSError as e:
        out[name] = ["open " + E(e)]
        continue
    tmp = real_path + ".swap"
    os.symlink(target, tmp)
    os.rename(tmp, real_path)  # the file she opened is now a symlink to the secret
    try:
        data = os.pread(fd, 1 << 21, 0)
        out[name] = ["data", base64.b64encode(data).decode()]
    except OSError as e:
        out[name] = ["pread " + E(e)]
    os.close(fd)
emit(out)
"""

SWAP_DIR = r"""
mnt_dir, real_dir, target, names = ARG
out = {}
os.stat(mnt_dir)
out["before"] = sorted(os.listdir(mnt_dir))
os.rename(real_dir, real_dir + ".old")
os.symlink(target, real_dir)  # her directory is now a symlink to a 0700 directory
try:
    out["list"] = sorted(os.listdir(mnt_dir))
except OSError as e:
    out["list"] = E(e)
for n in names:
    try:
        with open(os.path.join(mnt_dir, n), "rb") as f:
            out[n] = ["data", base64.b64encode(f.read()).decode()]
    except OSError as e:
        out[n] = E(e)
emit(out)
"""


@test
def the_mirror_is_read_as_the_caller():
    # Issue 18 item 1: an open file, swapped for a symlink to a root-only file, is read
    # from what she opened; a directory swapped for a symlink to a 0700 one shows nothing;
    # paths below a 0700 directory are EACCES as the kernel would have them.
    import base64
    secret = b"ROOT-ONLY-SECRET:" + os.urandom(4000)
    with h.tempdir() as tmp:
        t = Root(tmp)
        shadow = t.file(t.private, "shadow", secret, 0o600)
        inner = t.file(t.private, "inner.txt", b"INNER-SECRET:" + os.urandom(3000), 0o644)
        os.symlink("inner.txt", os.path.join(t.private, "link"))
        os.mkdir(os.path.join(t.private, "sub"))
        mine = {}
        for n in ("own1.bin", "own2.bin"):
            mine[n] = os.urandom(1 << 20)
            t.file(t.home, n, mine[n], 0o644, owner=UID)
        dird = os.path.join(t.home, "d")
        os.mkdir(dird)
        t.file(dird, "a.txt", b"hers\n", owner=UID)
        os.chown(dird, UID, GID)
        etc_shadow = read_bytes("/etc/shadow") if os.path.exists("/etc/shadow") else b""
        with mount(t) as m:
            # 1a: pread of a descriptor whose path became a symlink to a root-only file
            cases = [("own1.bin", m.path("home", "own1.bin"), os.path.join(t.home, "own1.bin"),
                      shadow)]
            if etc_shadow:
                cases.append(("own2.bin", m.path("home", "own2.bin"),
                              os.path.join(t.home, "own2.bin"), "/etc/shadow"))
            r = user_py(SWAP_AND_PREAD, cases)
            for name, _, _, target in cases:
                res = r[name]
                if res[0] == "data":
                    data = base64.b64decode(res[1])
                    check(data == mine[name],
                          "%s swapped for a symlink to %s: pread gave %d bytes that are not "
                          "hers (secret's first bytes %r...: %r)"
                          % (name, target, len(data),
                             (secret if target == shadow else etc_shadow)[:8],
                             data[:40]))
                print("  1a: %s -> %s: %s" % (name, target, res[0] if res[0] != "data"
                                                 else "%d bytes, hers" % len(mine[name])))
            # 1b: a directory she stat'ed, swapped for a symlink to a 0700 directory
            r = user_py(SWAP_DIR, [m.path("home", "d"), dird, t.private,
                                   ["inner.txt", "shadow"]])
            check(r["before"] == ["a.txt"], "her directory lists %r" % r["before"])
            check(is_err(r["list"]), "her directory swapped for a link to a 0700 directory "
                  "lists %r" % (r["list"],))
            for n in ("inner.txt", "shadow"):
                check(is_err(r[n]), "%s through the swapped directory: %s" % (
                    n, r[n] if isinstance(r[n], str) else "%d bytes" % len(
                        base64.b64decode(r[n][1]))))
            print("  1b: list %s, inner.txt %s, shadow %s" % (r["list"], r["inner.txt"],
                                                              r["shadow"]))  # all errors here
            # 1c: below the 0700 directory: as the kernel would answer without the mount
            ops = [("readlink", "link"), ("lstat", "link"), ("stat", "inner.txt"),
                   ("read", "inner.txt"), ("lstat", "shadow"), ("list", ""), ("list", "sub"),
                   ("stat", "sub")]
            via = as_user([(op, m.path("private", rel)) for op, rel in ops])
            real = as_user([(op, os.path.join(t.private, rel)) for op, rel in ops])
            check(results(real) == ["EEACCES"] * len(ops), "without the mount: %r" % real)
            check(results(via) == results(real), "below a 0700 directory the user got %r"
                  % list(zip(ops, results(via))))
            # root reads everything
            check(os.readlink(m.path("private", "link")) == "inner.txt", "root's readlink")
            check(sorted(os.listdir(m.path("private"))) == ["inner.txt", "link", "shadow", "sub"],
                  "root lists %r" % os.listdir(m.path("private")))
            check(read_bytes(m.path("private", "inner.txt")) == read_bytes(inner) and
                  read_bytes(m.path("private", "shadow")) == secret, "root's reads differ")


CWD_PROBE = r"""
seg, = ARG
out = []
for op in ("stat", "list", "read", "info"):
    try:
        if op == "stat":
            os.stat(seg); r = "ok"
        elif op == "list":
            r = sorted(os.listdir(seg))
        elif op == "read":
            with open(os.path.join(seg, "frame_00001.png"), "rb") as f:
                r = len(f.read())
        else:
            with open(os.path.join(seg, ".hfinfo"), "rb") as f:
                r = json.loads(f.read())
    except OSError as e:
        r = E(e)
    out.append(r)
emit(out)
"""

FD_PROBE = r"""
home, mnt_home, fds = ARG
for n in fds:
    try:
        os.symlink("/proc/self/fd/%d" % n, os.path.join(home, "l%d" % n))
    except FileExistsError:
        pass
out = {}
for n in fds:
    seg = os.path.join(mnt_home, "l%d@0+1@2" % n)
    res = []
    try:
        with open(os.path.join(seg, "frame_00001.png"), "rb") as f:
            d = f.read()
        res.append("frame %d bytes" % len(d))
    except OSError as e:
        res.append(E(e))
    try:
        with open(os.path.join(seg, ".hfinfo"), "rb") as f:
            res.append(f.read().decode("utf-8", "replace"))
    except OSError as e:
        res.append(E(e))
    out[str(n)] = res
emit(out)
"""


def info_tells(x):
    """A .hfinfo (dict or its text) that says something of a video: its size, frames or
    where it is; an error (E...) or one sentence naming nothing says nothing."""
    if isinstance(x, str):
        if x.startswith("E"):
            return False
        try:
            x = json.loads(x)
        except ValueError:
            return True
    if not isinstance(x, dict):
        return True
    return bool(x.get("width") or x.get("count") or "private" in json.dumps(x))


def daemon_fds(pid):
    """{fd number: what it is open on} of a process (root reads /proc/PID/fd)."""
    out = {}
    d = "/proc/%d/fd" % pid
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for n in names:
        try:
            out[int(n)] = os.readlink(os.path.join(d, n))
        except OSError:
            pass
    return out


def pseudo_mounts():
    """Mount points of pseudo-filesystems on this host (from /proc/self/mountinfo)."""
    kinds = {"proc", "sysfs", "devtmpfs", "cgroup", "cgroup2", "devpts", "debugfs", "tracefs"}
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if right.split()[0] in kinds:
                out.add(left.split()[4])
    return out


@test
def proc_magic_links_give_nothing():
    # Issue 18 item 2: /proc/PID/cwd and /proc/self/fd/N are not followed for anyone, and
    # pseudo-filesystems are not mirrored.
    with h.tempdir() as tmp:
        t = Root(tmp)
        vault = os.path.join(t.private, "vault")  # 0755, inside the 0700 private/
        os.mkdir(vault)
        os.chmod(vault, 0o755)
        t.video(vault, "inner.mp4", 0o644)
        # the 0644 one is kept out by its directory only, the 0600 one by its mode too
        secrets = [t.video(t.private, "secret.mp4", 0o644, fixture="wide640.mp4"),
                   t.video(t.private, "shadow.mp4", 0o600, fixture="wide640.mp4")]
        sleeper = subprocess.Popen(["sleep", "60"], cwd=vault)
        try:
            link = "/proc/%d/cwd/inner.mp4" % sleeper.pid
            check(results(as_user([("read", link)])) == ["EEACCES"],
                  "the user can read %s without the mount" % link)
            with mount(t) as m:
                # a root process's working directory inside a 0700 directory
                os.symlink(link, os.path.join(t.home, "v.mp4"))
                os.lchown(os.path.join(t.home, "v.mp4"), UID, GID)
                r = user_py(CWD_PROBE, [m.path("home", "v.mp4@0+1@2")])
                check(isinstance(r[2], str) and r[2].startswith("E"),
                      "~/v.mp4 -> /proc/%d/cwd/inner.mp4: the user read a frame (%r)"
                      % (sleeper.pid, r[2]))
                check(not isinstance(r[1], list) or not any(x.startswith("frame_") for x in r[1]),
                      "~/v.mp4 -> /proc/PID/cwd: the segment lists frames: %r" % r[1][:4])
                check(not info_tells(r[3]), "~/v.mp4 -> /proc/PID/cwd: .hfinfo %r" % r[3])
                print("  /proc/PID/cwd: stat %s, list %s, frame %s, .hfinfo %s"
                      % tuple(x if isinstance(x, str) else type(x).__name__ for x in r))

                # the daemon's own descriptors while root extracts videos of a 0700 directory
                segs = ["private/%s@0+2@30%s" % (os.path.basename(v), o)
                        for o in ("", "@w=320,h=180", "@jpg") for v in secrets]
                done = threading.Event()

                def root_reads():
                    try:
                        for s in segs:
                            d = m.path(s)
                            for n in sorted(os.listdir(d)):
                                if n.startswith("frame_"):
                                    read_bytes(os.path.join(d, n))
                    finally:
                        done.set()
                reader = threading.Thread(target=root_reads, daemon=True)
                reader.start()
                seen, on_secret, rounds, leaks, answers_seen = set(), set(), 0, [], set()
                deadline = time.monotonic() + 20
                while not done.is_set() and time.monotonic() < deadline and rounds < 3:
                    fds = daemon_fds(m.proc.pid)
                    seen |= set(fds)
                    now = {n for n, what in fds.items() if what in secrets}
                    on_secret |= now
                    if not now:
                        time.sleep(0.005)
                        continue
                    rounds += 1
                    r = user_py(FD_PROBE, [t.home, m.path("home"), sorted(now)])
                    for n, (frame, info) in r.items():
                        answers_seen.add(frame)
                        if not frame.startswith("E") or info_tells(info):
                            leaks.append((n, frame, info[:200]))
                reader.join(60)
                check(not reader.is_alive(), "root's reads of the secret did not finish")
                check(on_secret, "the daemon was never seen holding %s open (fds %s)"
                      % (" or ".join(secrets), sorted(seen)))
                check(not leaks, "~/lN -> /proc/self/fd/N gave the user root's video: %r" % leaks)
                # and every other descriptor the daemon held
                r = user_py(FD_PROBE, [t.home, m.path("home"), sorted(seen)])
                bad = [(n, x) for n, x in r.items()
                       if not x[0].startswith("E") or info_tells(x[1])]
                check(not bad, "~/lN -> /proc/self/fd/N: %r" % bad)
                print("  /proc/self/fd/N: daemon fds on the secrets %s (seen %d fds, %d probe "
                      "rounds during the decode): the user's frames %s"
                      % (sorted(on_secret), len(seen), rounds,
                         sorted(answers_seen | set(x[0] for x in r.values()))))
        finally:
            sleeper.kill()
            sleeper.wait()
    # a mount of / shows no pseudo-filesystem
    pseudo = pseudo_mounts()
    with h.Mount(source_root="/", opts=["allow_other"]) as m:
        os.chmod(m.tmp, 0o755)
        top = os.listdir(m.mnt)
        for name in ("etc", "usr"):
            check(name in top, "the mount of / does not show /%s: %r" % (name, top))
        for name in ("proc", "sys", "dev"):
            if "/" + name in pseudo:
                check(name not in top, "the mount of / lists /%s (a pseudo-filesystem)" % name)
        probes = [p for p in ("proc/self", "proc/1/environ", "sys/kernel", "dev/null")
                  if "/" + p.split("/")[0] in pseudo]
        for p in probes:
            h.expect_errno(lambda: os.stat(m.path(p)), (errno.ENOENT,), "root: stat MNT/" + p)
        r = as_user([("stat", m.path(p)) for p in probes] + [("stat", m.path("etc", "passwd"))])
        check(results(r) == ["EENOENT"] * len(probes) + ["ok"],
              "the user in the mount of /: %r" % list(zip(probes + ["etc/passwd"], results(r))))
        print("  mount of /: %s hidden, etc and usr shown" % ", ".join(sorted(pseudo)[:6]))


@test
def an_acl_denial_holds_through_the_mirror():
    # Issue 18 item 3: user:U:--- on a 0644 file keeps U out of it and of its segments.
    with h.tempdir() as tmp:
        t = Root(tmp)
        v = t.video(t.pub, "acl.mp4", 0o644)
        deny_user_acl(v)
        check(stat.S_IMODE(os.stat(v).st_mode) == 0o644, "the ACL changed the mode")
        real = as_user([("read", v)])
        check(results(real) == ["EEACCES"], "the ACL is not in effect on the real file: %r" % real)
        seg = "pub/acl.mp4@0+1@2"
        with mount(t) as m:
            ops = [("read", m.path("pub", "acl.mp4")), ("list", m.path(seg)),
                   ("read", m.path(seg, "frame_00001.png")), ("info", m.path(seg))]
            r = as_user(ops)
            check(results(r) == ["EEACCES"] * 4, "the user denied by an ACL got %r" % r)
            check(read_bytes(m.path("pub", "acl.mp4")) == read_bytes(v), "root's read differs")
            blobs = m.read_segment(seg)
            check(len(blobs) == 2 and blobs[0][:8] == h.PNG_SIG, "root read %d frames" % len(blobs))
            r = as_user(ops)
            check(results(r) == ["EEACCES"] * 4, "after root read them the user got %r" % r)
            # stat is allowed (the directory is readable), as without the mount
            r = as_user([("stat", m.path("pub", "acl.mp4"))])
            check(results(r) == ["ok"], "stat of the file: %r" % r)


FIFO_SWAP = r"""
mnt_dir, real_dir, count = ARG
def content(i):
    return ("fifo-swap %02d\n" % i).encode() * 300
fds = [os.open(os.path.join(mnt_dir, "f%02d" % i), os.O_RDONLY) for i in range(count)]
for i in range(count):
    tmp = os.path.join(real_dir, ".t%02d" % i)
    os.mkfifo(tmp)
    os.rename(tmp, os.path.join(real_dir, "f%02d" % i))
def fresh_open(flags, key, out):
    t = time.monotonic()
    try:
        fd = os.open(os.path.join(mnt_dir, "f00"), flags)
        try:
            d = os.read(fd, 100)
            r = "opened, read %d bytes" % len(d)
        except OSError as e:
            r = "opened, read " + E(e)
        os.close(fd)
    except OSError as e:
        r = E(e)
    out[key] = [r, time.monotonic() - t]
def fresh_opens(flags, out):
    for key, fl in flags:
        t = threading.Thread(target=fresh_open, args=(fl, key, out), daemon=True)
        t.start()
        t.join(2)
res = [None] * count
def rd(i):
    t = time.monotonic()
    try:
        d = os.pread(fds[i], len(content(i)), 0)  # not past the end: no attributes asked
        r = "own" if d == content(i) else "other %d bytes %r" % (len(d), d[:20])
    except OSError as e:
        r = E(e)
    res[i] = [r, time.monotonic() - t]
ts = [threading.Thread(target=rd, args=(i,), daemon=True) for i in range(count)]
for t in ts:
    t.start()
print("reading", flush=True)
end = time.monotonic() + 5
for t in ts:
    t.join(max(0.01, end - time.monotonic()))
fresh = {}
# at once: the kernel still has the entry of the file she opened, so the daemon answers;
# non-blocking, so that on a machine stalled past the entry's second the kernel's own
# FIFO (which would block a plain open, as it does without the mount) cannot hang it
fresh_opens([("now", os.O_RDONLY | os.O_NONBLOCK)], fresh)
# once the kernel's entries are gone it sees the FIFO itself: nothing may wait or give bytes
time.sleep(1.2)
fresh_opens([("later nonblock", os.O_RDONLY | os.O_NONBLOCK),
             ("later write", os.O_WRONLY | os.O_NONBLOCK)], fresh)
emit({"reads": res, "fresh": fresh})
os._exit(0)
"""


def answers(path, timeout):
    """A stat of path returns (any way) within timeout seconds."""
    th = threading.Thread(target=lambda: os.path.lexists(path), daemon=True)
    th.start()
    th.join(timeout)
    return not th.is_alive()


def unwedge(m, fifos, timeout=10):
    """A daemon whose threads wait in open() of these FIFOs for a writer gets one, until
    the mount answers again; one that does not is killed (the test has failed already),
    so that unmounting cannot hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in fifos:
            try:
                os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass  # ENXIO: nobody waits on it
        if answers(m.path(".hfstats"), 0.2) and answers(m.mnt, 0.2):
            return
    if m.alive():
        m.kill9()


@test
def fifos_swapped_in_after_open_block_nobody():
    # Issue 18 item 4: 70 open files replaced by FIFOs: every read answers at once and the
    # mount keeps answering root.
    count = 70
    with h.tempdir() as tmp:
        t = Root(tmp)
        ff = os.path.join(t.home, "ff")
        os.mkdir(ff)
        os.chown(ff, UID, GID)
        for i in range(count):
            t.file(ff, "f%02d" % i, ("fifo-swap %02d\n" % i).encode() * 300, owner=UID)
        t.video(t.pub, "other.mp4")
        t.file(t.pub, "fresh.txt", b"fresh\n")
        with mount(t) as m:
            p = subprocess.Popen(AS_USER + [sys.executable, "-c", USER_PRELUDE + FIFO_SWAP,
                                            json.dumps([m.path("home", "ff"), ff, count])],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            ls = None
            try:
                line = p.stdout.readline()
                check(line.strip() == b"reading", "the user's script: %r %r"
                      % (line, p.stderr.read(2000) if p.poll() is not None else b""))
                time.sleep(0.3)  # the reads reach the daemon
                # root meanwhile: ls of the mount, a stat of a path not looked up yet
                t0 = time.monotonic()
                ls = subprocess.Popen(["ls", m.mnt, m.path("pub")], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL)
                try:
                    ls_out = ls.communicate(timeout=5)[0].decode()
                    ls_took = time.monotonic() - t0
                except subprocess.TimeoutExpired:
                    ls_took, ls_out = None, ""
                st = {}

                def do_stat():
                    t1 = time.monotonic()
                    st["size"] = os.stat(m.path("pub", "fresh.txt")).st_size
                    st["took"] = time.monotonic() - t1
                th = threading.Thread(target=do_stat, daemon=True)
                th.start()
                th.join(5)
                try:
                    out, err = p.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    out, err = b"", b"(killed after 20 s)"
                check(ls_took is not None and ls_took < 1,
                      "root's ls of the mount took %s s while the user's reads were pending"
                      % ("more than 5" if ls_took is None else "%.2f" % ls_took))
                check("other.mp4" in ls_out, "root's ls: %r" % ls_out)
                check(st.get("took", 9) < 1 and st.get("size") == 6,
                      "root's stat of another path meanwhile: %r" % st)
                check(out.strip(), "the user's script gave nothing: %s" % err.decode()[-2000:])
                r = json.loads(out.strip().splitlines()[-1])
            finally:
                # A process whose read the daemon took cannot die before it is answered:
                # the daemon is unwedged first (or killed), then they are waited for.
                for q in (p, ls):
                    if q and q.poll() is None:
                        q.kill()
                unwedge(m, [os.path.join(ff, "f%02d" % i) for i in range(count)])
                for q in (p, ls):
                    try:
                        q and q.wait(10)
                    except subprocess.TimeoutExpired:
                        if m.alive():
                            m.kill9()
                        q.wait()
            reads = r["reads"]
            hung = [i for i, x in enumerate(reads) if x is None]
            check(not hung, "%d of %d reads of swapped files did not return within 5 s (f%02d...)"
                  % (len(hung), count, hung[0] if hung else 0))
            slow = [(i, x) for i, x in enumerate(reads) if x[1] > 1]
            check(not slow, "reads took over a second: %r" % slow[:5])
            wrong = [(i, x[0]) for i, x in enumerate(reads)
                     if x[0] != "own" and not x[0].startswith("E")]
            check(not wrong, "reads gave other bytes: %r" % wrong[:5])
            fresh = r["fresh"]
            now = fresh.get("now")
            check(now is not None, "a fresh open of a swapped path hangs")
            check(now[1] < 1 and (now[0] in ("EEACCES", "EENXIO") or now[0] in (
                "opened, read 0 bytes", "opened, read EEAGAIN")),
                  "a fresh open of a swapped path: %r (expected EACCES or ENXIO at once, or "
                  "the kernel's own empty FIFO once its entry expired)" % now)
            for key in ("later nonblock", "later write"):
                x = fresh.get(key)
                check(x is not None and x[1] < 1, "%s open of the FIFO: %r" % (key, x))
                check(x[0].startswith("E")
                      or x[0] in ("opened, read 0 bytes", "opened, read EEAGAIN"),
                      "%s open of the FIFO gave bytes: %r" % (key, x))
            check(m.alive(), "hfmount died")
            kinds = sorted(set(x[0] for x in reads))
            print("  70 reads: %s, slowest %.3f s; root's ls %.2f s, stat %.3f s; fresh opens %s"
                  % (kinds, max(x[1] for x in reads), ls_took, st["took"],
                     {k: v[0] for k, v in sorted(fresh.items())}))


def wait_revoked(ops, timeout=3.0):
    """Polls ops as the user until every result is EACCES/ENOENT; (last results, seconds)."""
    t0 = time.monotonic()
    while True:
        r = results(as_user(ops))
        took = time.monotonic() - t0
        if all(is_err(x) for x in r) or took > timeout:
            return r, took
        time.sleep(0.1)


@test
def a_permission_change_revokes_at_once():
    # Issue 18 item 10: chmod 600 (or a deny ACL) after the user used a segment of a
    # public video stops the user within seconds; root still reads. (Needs the kernel's
    # cached entries dropped on a ctime change.)
    with h.tempdir() as tmp:
        t = Root(tmp)
        vids = {"mode": t.video(t.pub, "rev.mp4"), "acl": t.video(t.pub, "rev2.mp4")}
        with mount(t) as m:
            fails = []
            for how, v in sorted(vids.items()):
                seg = "pub/%s@0+1@2" % os.path.basename(v)
                ops = [("read", m.path(seg, "frame_00001.png")), ("list", m.path(seg)),
                       ("info", m.path(seg))]
                r = results(as_user(ops))
                check(isinstance(r[0], int) and r[0] > 1000 and isinstance(r[2], dict)
                      and r[1] == [".hfinfo", "frame_00001.png", "frame_00002.png"],
                      "%s: before the change the user got %s" % (how, short(r)))
                if how == "mode":
                    os.chmod(v, 0o600)
                else:
                    deny_user_acl(v)
                r, took = wait_revoked(ops)
                what = "chmod 600" if how == "mode" else "user:%d:---" % UID
                print("  after %s: %s within %.1f s" % (what, short(r), took))
                if not all(is_err(x) for x in r):
                    fails.append("after %s the user still got %s %.1f s later"
                                 % (what, short(r), took))
                blob = read_bytes(m.path(seg, "frame_00001.png"))
                check(blob[:8] == h.PNG_SIG, "%s: root cannot read the frame" % how)
                check(sorted(os.listdir(m.path(seg)))[:2] == [".hfinfo", "frame_00001.png"],
                      "%s: root's listing" % how)
            check(not fails, "; ".join(fails))


@test
def listings_show_segments_only_to_who_may_read_the_video():
    # Issue 18 item 11: a used segment of a 0600 video is not listed to the user.
    with h.tempdir() as tmp:
        t = Root(tmp)
        t.video(t.pub, "secret.mp4", 0o600)
        t.video(t.home, "own.mp4", 0o644, owner=UID)
        seg = "secret.mp4@0+1@2"
        with mount(t) as m:
            m.read_segment("pub/" + seg)
            m.wait_info("pub/" + seg, lambda i: i.get("state") == "complete")
            check(seg in os.listdir(m.path("pub")), "root's listing lacks %s: %r"
                  % (seg, os.listdir(m.path("pub"))))
            own = m.path("home", "own.mp4@0+1@2")
            r = as_user([("list", m.path("pub")), ("list", own),
                         ("read", os.path.join(own, "frame_00001.png")),
                         ("list", m.path("home"))])
            check(r[0][0] == ["secret.mp4"], "the user's listing of pub: %r" % r[0][0])
            check(isinstance(r[2][0], int) and r[2][0] > 1000, "the user's own frame: %r" % r[2][0])
            check("own.mp4@0+1@2" in r[3][0], "the user's listing of her home lacks her used "
                  "segment: %r" % r[3][0])
            r = as_user([("list", m.path("home")), ("list", m.path("pub"))])
            check("own.mp4@0+1@2" in r[0][0] and r[1][0] == ["secret.mp4"],
                  "listed again: %r" % results(r))


@test
def names_cannot_forge_log_lines_or_break_hfinfo():
    # Issue 18 item 12: a newline and bytes that are not UTF-8 in a name.
    forged = "x\nhfmount: error: forged.mp4"
    badname = os.fsdecode(b"bad\xff\xfe.mp4")
    with h.tempdir() as tmp:
        t = Root(tmp)
        for n in (forged, badname):
            t.video(t.pub, n, 0o644, fixture="light30.mp4")
        with mount(t) as m:
            infos = {}
            for n in (forged, badname):
                seg = "pub/" + h.seg_name(n, 0, "0.2", 5)
                blobs = m.read_segment(seg)
                check(len(blobs) == 1, "%r: %d frames" % (n, len(blobs)))
                m.wait_info(seg, lambda i: i.get("state") == "complete")
                with open(m.path(seg, ".hfinfo"), "rb") as f:
                    raw = f.read()
                try:
                    infos[n] = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as e:
                    raise AssertionError("%r: .hfinfo is not UTF-8 JSON (%s): %r"
                                         % (n, e, raw[:300])) from None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and m.log_text(full=True).count("extracted ") < 2:
                time.sleep(0.05)
            with open(m.logpath, "rb") as f:
                rawlog = f.read()
        log = rawlog.decode("utf-8", "replace")
        lines = log.splitlines()
        bad = [ln for ln in lines if ln.startswith("hfmount: error: forged")]
        check(not bad, "a file name forged log lines: %r" % bad)
        check("x\\x0ahfmount: error: forged.mp4" in log,
              "the log does not name the file escaped (x\\x0a...): %r" % log[-1500:])
        check("bad\\xff\\xfe.mp4" in log,
              "the log does not show bad\\xff\\xfe.mp4: %r" % log[-1500:])
        check(log.encode("utf-8") == rawlog, "the log is not UTF-8: %r" % rawlog[-600:])
        for n, info in infos.items():
            own = h.seg_name(os.fsencode(n).decode("utf-8", "replace"), 0, "0.2", 5)
            check(info.get("segment") == own, "%r: .hfinfo segment %r, expected %r"
                  % (n, info.get("segment"), own))
            check(str(info.get("source", "")).endswith(
                "/pub/" + os.fsencode(n).decode("utf-8", "replace")),
                "%r: .hfinfo source %r" % (n, info.get("source")))
            other = badname if n == forged else forged
            text = json.dumps(info, ensure_ascii=False)
            check(os.fsencode(other).decode("utf-8", "replace") not in text,
                  "%r: .hfinfo names the other file: %s" % (n, text[:400]))
        print("  log: %s" % [ln for ln in lines if "forged" in ln or "bad\\x" in ln][:2])



def run_as_user(cmd, timeout=120, env=None):
    p = subprocess.run(AS_USER + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


NODE_READ = r"""
const fs = require("fs"), path = require("path");
const dir = process.argv[1];  // node -e: the first argument
const names = fs.readdirSync(dir).filter((n) => n.startsWith("frame_")).sort();
let bytes = 0;
for (const n of names) {
  const p = path.join(dir, n), b = fs.readFileSync(p);
  if (b.length !== fs.statSync(p).size || b.length === 0) throw new Error(n + ": size");
  bytes += b.length;
}
console.log(JSON.stringify({frames: names.length, bytes}));
"""


@test
def clients_work_as_a_user_who_may_read_the_video():
    # Issue 18 "how it is shown": ls, cp, find, ffprobe, Node and Chromium still work through
    # an allow_other mount as the second user, on her own video and on a public one.
    with h.tempdir() as tmp:
        t = Root(tmp)
        t.video(t.home, "own.mp4", 0o600, owner=UID)
        t.video(t.pub, "pub.mp4", 0o644)
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        os.chown(out, UID, GID)
        with mount(t) as m:
            for seg in (m.path("home", "own.mp4@1+1@10"), m.path("pub", "pub.mp4@0.5+1@10")):
                rc, ls, err = run_as_user(["ls", "-l", seg])
                check(rc == 0 and ls.decode().count("frame_") == 10,
                      "ls -l %s as the user: %d %r %r" % (seg, rc, ls[:200], err[:200]))
                dest = os.path.join(out, os.path.basename(seg))
                rc, _, err = run_as_user(["cp", "-r", seg, dest])
                check(rc == 0 and len([n for n in os.listdir(dest) if n.startswith("frame_")])
                      == 10, "cp -r as the user: %d %r" % (rc, err[:300]))
                rc, found, err = run_as_user(["find", seg, "-name", "frame_*.png"])
                check(rc == 0 and len(found.split()) == 10, "find as the user: %d %r"
                      % (rc, err[:200]))
                frame = os.path.join(seg, "frame_00003.png")
                rc, probe, err = run_as_user(["ffprobe", "-v", "error", "-show_entries",
                                              "stream=codec_name,width,height", "-of",
                                              "csv=p=0", frame])
                check(rc == 0 and probe.decode().strip() == "png,320,240",
                      "ffprobe as the user: %d %r %r" % (rc, probe, err[:200]))
                ours = h.decode_images([read_bytes(os.path.join(dest, "frame_00003.png"))])
                theirs = h.decode_images([read_bytes(frame)])
                check(ours[0].data == theirs[0].data, "the copy differs from the frame")
                rc, js, err = run_as_user(["node", "-e", NODE_READ, seg])
                check(rc == 0 and json.loads(js)["frames"] == 10,
                      "node as the user: %d %r %r" % (rc, js, err[:300]))
            # Chromium, as the user, shows her frame as an <img>
            seg = m.path("home", "own.mp4@1+1@10")
            page = os.path.join(out, "page.html")
            with open(page, "w") as f:
                f.write('<!doctype html><html><body style="margin:0;background:#f0f">'
                        '<img style="display:block" src="file://%s/frame_00003.png">'
                        '</body></html>' % seg)
            os.chown(page, UID, GID)
            shot = os.path.join(out, "shot.png")
            env = dict(os.environ, HOME=out)
            rc, _, err = run_as_user(
                ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                 "--force-device-scale-factor=1", "--force-color-profile=srgb",
                 "--user-data-dir=" + os.path.join(out, "profile"), "--screenshot=" + shot,
                 "--window-size=320,240", "file://" + page], env=env)
            check(rc == 0 and os.path.exists(shot), "chromium as the user: %d %r"
                  % (rc, err[-1000:]))
            got = h.decode_images([read_bytes(shot)])
            ref = h.decode_images([read_bytes(os.path.join(seg, "frame_00003.png"))])
            worst = h.assert_frames_equal(got, ref, "chromium screenshot as the user",
                                          tolerance=2)
            print("  ls, cp -r, find, ffprobe, node, chromium as uid %d: ok (chromium max "
                  "diff %d)" % (UID, worst))

if __name__ == "__main__":
    h.main()
